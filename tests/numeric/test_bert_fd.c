/* Whole-model numerics on a tiny config: (1) the loss gradient w.r.t. a sample of every
 * parameter tensor matches central finite differences (with dropout on: the masks are a
 * function of the seed, so the loss is a deterministic function of the parameters);
 * (2) with frozen depth k the trainable gradients equal the full model's and the frozen
 * ones stay zero; (3) after optimizer steps frozen parameters are bit-for-bit unchanged
 * and a forward started at layer k from h[k] gives the same loss as a full forward;
 * (4) with frozen_dropout (dropout on) a frozen-depth-k step is the full model's step minus
 * the frozen backward: the same loss and the same trainable gradients. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/model/bert.h"
#include "core/model/optim.h"
#include "tests/testutil.h"

enum { B = 3, T = 7, NL = 3 };

static af_backend *be;
static int32_t ids[B * T], tt[B * T];
static float mask[B * T], tgt[B];

static void make_batch(const af_config *c, int regression) {
  const int len[B] = {7, 5, 2};
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int i = b * T + t;
      ids[i] = t < len[b] ? (int32_t)(af_rng_mix(11, (uint64_t)i) % (uint64_t)c->vocab_size) : 0;
      tt[i] = t < len[b] && t >= len[b] / 2;
      mask[i] = t < len[b];
    }
  for (int b = 0; b < B; b++) tgt[b] = regression ? 0.7f * (float)b - 0.4f : (float)((b * 2) % NL);
}

static float loss_at(af_bert *m, float *host, int depth, int train) {
  float loss = 0;
  af_bert_set_params(m, host);
  af_status s = af_bert_forward(m, B, T, 0, depth, train, 5, &loss);
  if (s != AF_OK) { fprintf(stderr, "forward: %s\n", af_last_error()); exit(1); }
  return loss;
}

static void init_params(const af_param_layout *lay, float *p) {
  for (int i = 0; i < lay->n; i++) {
    const af_param_info *t = &lay->t[i];
    int is_ln_w = strstr(t->name, "LayerNorm.weight") != NULL;
    for (size_t j = 0; j < t->numel; j++) {
      float r = (float)((af_rng_mix(3 + (uint64_t)i, j) >> 40) / 16777216.0) - 0.5f;
      p[t->offset + j] = is_ln_w ? 1.0f + 0.2f * r : 0.6f * r;
    }
  }
}

static void fd_check(const af_config *cfg, int nl, int train, const char *label) {
  af_bert m;
  CHECK_OK(af_bert_init(&m, be, cfg, nl, B, T, 0));
  make_batch(cfg, nl == 1);
  af_bert_input bt = {ids, tt, mask, tgt, B, T};
  CHECK_OK(af_bert_load_batch(&m, &bt));
  float *p = malloc(m.lay.total * sizeof *p), *g = malloc(m.lay.total * sizeof *g);
  init_params(&m.lay, p);
  float loss;
  CHECK_OK(af_bert_set_params(&m, p));
  af_grads_zero(&m, 0);
  CHECK_OK(af_bert_forward(&m, B, T, 0, 0, train, 5, &loss));
  CHECK_OK(af_bert_backward(&m, B, T, 0, 5, 1.0f / B));
  be->to_host(be, g, m.grads, m.lay.total * sizeof *g);
  /* a sample of every tensor; word embeddings only at rows the batch uses */
  int nsample = 0, bad = 0, big = 0, flip_ok = 0;
  double maxrel = 0;
  for (int ti = 0; ti < m.lay.n; ti++) {
    const af_param_info *t = &m.lay.t[ti];
    for (int s = 0; s < 4; s++) {
      size_t j = af_rng_mix(17 + (uint64_t)ti, (uint64_t)s) % t->numel;
      if (ti == af_param_emb(AF_EP_WTE)) j = (size_t)ids[(s * 5) % (B * T)] * cfg->hidden_size + (size_t)s;
      if (ti == af_param_emb(AF_EP_WPE)) j = (size_t)(s % T) * cfg->hidden_size + (size_t)s;
      size_t at = t->offset + j;
      float old = p[at];
      const float eps = 1e-2f;
      p[at] = old + eps;
      double lp = loss_at(&m, p, 0, train);
      p[at] = old - eps;
      double lm = loss_at(&m, p, 0, train);
      p[at] = old;
      double fd = (lp - lm) / (2.0 * eps), an = g[at];
      double err = fabs(fd - an), rel = err / (fabs(fd) + 1e-6);
      if (err > 2e-3 + 3e-2 * fabs(fd)) {
        if (bad < 8) fprintf(stderr, "  %s %s[%zu]: analytic %.6g fd %.6g\n", label, t->name, j, an, fd);
        bad++;
      }
      if (fabs(fd) > 1e-3 && rel > maxrel) maxrel = rel;
      if (fabs(fd) > 2e-2) {  /* well above the absolute tolerance: a wrong sign must fail */
        big++;
        flip_ok += fabs(-an - fd) <= 2e-3 + 3e-2 * fabs(fd);
      }
      nsample++;
    }
  }
  printf("%-40s %d samples over %d tensors (%d with |fd| > 2e-2), max rel err %.2e (|fd|>1e-3) %s\n", label,
         nsample, m.lay.n, big, maxrel, bad ? "FAIL" : "ok");
  if (bad) af_test_failures++;
  /* negative control: enough samples are large for the tolerance to bite, and a sign-flipped
   * gradient fails at every one of them */
  if (big < nsample / 8 || flip_ok) {
    fprintf(stderr, "  %s: vacuous check (%d of %d samples large, %d pass sign-flipped)\n", label, big, nsample, flip_ok);
    af_test_failures++;
  }
  free(p);
  free(g);
  af_bert_free(&m);
}

/* One training step (seed 9) of the full model and of fz at depth k from the same
 * parameters: the same loss, the same trainable gradients, none for the frozen prefix. */
static void same_step(af_bert *full, af_bert *fz, int k, float *g0, float *g1, const char *label) {
  const size_t n = full->lay.total, fe = af_param_frozen_end(&fz->lay, k);
  float l0, l1;
  af_grads_zero(full, 0);
  af_grads_zero(fz, k);
  CHECK_OK(af_bert_forward(full, B, T, 0, 0, 1, 9, &l0));
  CHECK_OK(af_bert_forward(fz, B, T, 0, k, 1, 9, &l1));
  CHECK(l0 == l1);
  CHECK_OK(af_bert_backward(full, B, T, 0, 9, 1.0f / B));
  CHECK_OK(af_bert_backward(fz, B, T, k, 9, 1.0f / B));
  be->to_host(be, g0, full->grads, n * sizeof(float));
  be->to_host(be, g1, fz->grads, n * sizeof(float));
  af_test_close(label, g1 + fe, g0 + fe, n - fe, 1e-7, 1e-5);
  int nonzero = 0;
  for (size_t i = 0; i < fe; i++) nonzero += g1[i] != 0.f;
  CHECK(nonzero == 0);
}

/* Frozen depth k: trainable gradients equal the full model's, frozen stay zero; frozen
 * parameters unchanged after steps; a forward from h[k] equals the full forward. */
static void freeze_check(const af_config *cfg) {
  const int L = cfg->num_hidden_layers, k = 2;
  af_bert full, fz;
  make_batch(cfg, 0);
  af_bert_input bt = {ids, tt, mask, tgt, B, T};
  size_t n;
  float l0, l1;
  /* dropout off: the frozen model's prefix runs without dropout, the full model's with it,
   * so only at p = 0 must their gradients agree exactly */
  af_config c0 = *cfg;
  c0.hidden_dropout_prob = c0.attention_probs_dropout_prob = 0;
  CHECK_OK(af_bert_init(&full, be, &c0, NL, B, T, 0));
  CHECK_OK(af_bert_init(&fz, be, &c0, NL, B, T, k));
  CHECK_OK(af_bert_load_batch(&full, &bt));
  CHECK_OK(af_bert_load_batch(&fz, &bt));
  n = full.lay.total;
  float *p = malloc(n * sizeof *p), *g0 = malloc(n * sizeof *g0), *g1 = malloc(n * sizeof *g1), *p1 = malloc(n * sizeof *p1);
  init_params(&full.lay, p);
  af_bert_set_params(&full, p);
  af_bert_set_params(&fz, p);
  same_step(&full, &fz, k, g0, g1, "trainable grads, depth 2 vs full");
  size_t fe = af_param_frozen_end(&fz.lay, k);
  /* steps: frozen prefix bit-for-bit unchanged */
  af_optim_opts oo;
  af_optim_defaults_hf(&oo);
  for (int st = 1; st <= 3; st++) {
    double gn;
    af_grads_zero(&fz, k);
    CHECK_OK(af_bert_forward(&fz, B, T, 0, k, 1, (uint64_t)st, &l1));
    CHECK_OK(af_bert_backward(&fz, B, T, k, (uint64_t)st, 1.0f / B));
    CHECK_OK(af_optim_step(&fz, &oo, k, 1e-3f, st, &gn));
  }
  af_bert_get_params(&fz, p1);
  CHECK(memcmp(p1, p, fe * sizeof(float)) == 0);
  int changed = 0;
  for (size_t i = fe; i < n; i++) changed += p1[i] != p[i];
  CHECK(changed > (int)((n - fe) / 2));
  /* forward from h[k] equals the full forward (eval mode) */
  float *h = malloc((size_t)B * T * c0.hidden_size * sizeof(float));
  CHECK_OK(af_bert_forward(&fz, B, T, 0, k, 0, 1, &l0));
  be->to_host(be, h, af_bert_hidden(&fz, k), (size_t)B * T * c0.hidden_size * sizeof(float));
  CHECK_OK(af_bert_load_hidden(&fz, k, h, B, T));
  CHECK_OK(af_bert_forward(&fz, B, T, k, k, 0, 1, &l1));
  CHECK(l0 == l1);
  printf("freezing: depth %d of %d, frozen prefix %zu floats unchanged, loss from h[k] %s\n", k, L, fe,
         l0 == l1 ? "identical" : "DIFFERENT");
  free(h);
  free(p);
  free(p1);
  free(g0);
  free(g1);
  af_bert_free(&full);
  af_bert_free(&fz);
}

/* frozen_dropout: the frozen prefix draws the full model's masks (same seed, same sites),
 * so loss and trainable gradients equal full fine-tuning's with dropout on; without it they
 * differ (the negative control); evaluation forwards are unaffected. */
static void frozen_dropout_check(const af_config *cfg) {
  const int k = 2;
  af_bert full, fz;
  make_batch(cfg, 0);
  af_bert_input bt = {ids, tt, mask, tgt, B, T};
  CHECK_OK(af_bert_init(&full, be, cfg, NL, B, T, 0));
  CHECK_OK(af_bert_init(&fz, be, cfg, NL, B, T, k));
  CHECK_OK(af_bert_load_batch(&full, &bt));
  CHECK_OK(af_bert_load_batch(&fz, &bt));
  size_t n = full.lay.total;
  float *p = malloc(n * sizeof *p), *g0 = malloc(n * sizeof *g0), *g1 = malloc(n * sizeof *g1);
  init_params(&full.lay, p);
  af_bert_set_params(&full, p);
  af_bert_set_params(&fz, p);
  float l0, l1, e0, e1;
  CHECK_OK(af_bert_forward(&fz, B, T, 0, k, 1, 9, &l1));  /* the default: frozen prefix without dropout */
  CHECK_OK(af_bert_forward(&full, B, T, 0, 0, 1, 9, &l0));
  CHECK(l0 != l1);
  CHECK_OK(af_bert_forward(&fz, B, T, 0, k, 0, 9, &e0));
  fz.frozen_dropout = 1;
  same_step(&full, &fz, k, g0, g1, "frozen_dropout: trainable grads, depth 2 vs full, dropout 0.1");
  CHECK_OK(af_bert_forward(&fz, B, T, 0, k, 0, 9, &e1));
  CHECK(e0 == e1);
  free(p), free(g0), free(g1);
  af_bert_free(&full);
  af_bert_free(&fz);
}

/* Gradient accumulation: the batch's gradient equals the sum of its two halves' gradients,
 * each half scaled by 1/B (what train.c does with --accum 2). Dropout off: the masks of a
 * half-batch are drawn at other counters. */
static void accum_check(const af_config *cfg) {
  af_config c0 = *cfg;
  c0.hidden_dropout_prob = c0.attention_probs_dropout_prob = c0.classifier_dropout = 0;
  af_bert m;
  CHECK_OK(af_bert_init(&m, be, &c0, NL, B, T, 0));
  make_batch(&c0, 0);
  size_t n = m.lay.total;
  float *p = malloc(n * sizeof *p), *g1 = malloc(n * sizeof *g1), *g2 = malloc(n * sizeof *g2), loss;
  init_params(&m.lay, p);
  af_bert_set_params(&m, p);
  af_bert_input all = {ids, tt, mask, tgt, B, T};
  CHECK_OK(af_bert_load_batch(&m, &all));
  af_grads_zero(&m, 0);
  CHECK_OK(af_bert_forward(&m, B, T, 0, 0, 1, 1, &loss));
  CHECK_OK(af_bert_backward(&m, B, T, 0, 1, 1.0f / B));
  be->to_host(be, g1, m.grads, n * sizeof(float));
  af_grads_zero(&m, 0);
  const int split[3] = {0, 2, B};
  for (int h = 0; h < 2; h++) {
    int lo = split[h], nb = split[h + 1] - lo;
    af_bert_input part = {ids + lo * T, tt + lo * T, mask + lo * T, tgt + lo, nb, T};
    CHECK_OK(af_bert_load_batch(&m, &part));
    CHECK_OK(af_bert_forward(&m, nb, T, 0, 0, 1, 1, &loss));
    CHECK_OK(af_bert_backward(&m, nb, T, 0, 1, 1.0f / B));
  }
  be->to_host(be, g2, m.grads, n * sizeof(float));
  af_test_close("gradient: 2 micro-batches vs one batch", g2, g1, n, 1e-6, 1e-4);
  free(p);
  free(g1);
  free(g2);
  af_bert_free(&m);
}

int main(void) {
  CHECK_OK(af_backend_open("cpu", 0, &be));
  if (!be) return 1;
  af_config cfg;
  CHECK_OK(af_config_named("tiny", &cfg));
  cfg.num_hidden_layers = 3;
  af_config nodrop = cfg;
  nodrop.hidden_dropout_prob = nodrop.attention_probs_dropout_prob = 0.f;
  nodrop.classifier_dropout = 0.f;
  fd_check(&nodrop, NL, 1, "classification, no dropout");
  cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.1f;
  cfg.classifier_dropout = -1;
  fd_check(&cfg, NL, 1, "classification, dropout 0.1");
  af_config tanhc = nodrop;
  tanhc.hidden_act = AF_GELU_TANH;
  fd_check(&tanhc, 1, 1, "regression, gelu_new");
  freeze_check(&cfg);
  frozen_dropout_check(&cfg);
  accum_check(&cfg);
  af_backend_close(be);
  return af_test_done("test_bert_fd");
}
