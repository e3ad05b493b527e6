/* A bf16 training step of the whole model against fp32, on the tiny fixture model
 * (tests/fixtures/bert_tiny/cls, 3 layers, hidden 32) with dropout 0.1, on the CPU backend.
 *
 * Tolerances (stated once, checked below):
 *   - loss: |loss_bf16 - loss_fp32| <= 2^-5 |loss_fp32|. Every GEMM of the forward rounds
 *     its inputs to 8 significant bits (about 2^-9 each, 2^-8 per product); 3 layers x 6
 *     GEMMs plus the head chain them, and this model is confident (loss ~0.3), so the
 *     logits' error is a larger part of the loss: a few units of 2^-8 relative is the
 *     expected size (measured ~3) and 2^-5 = 8 units the bound.
 *   - gradients: per trainable tensor, ||g_bf16 - g_fp32||_2 <= 2^-4 ||g_fp32||_2 (6%):
 *     the backward doubles the GEMMs and a gradient tensor is a sum over the whole batch
 *     of products of such errors. Measured ~1-3%; the bound leaves room for other CPUs'
 *     kernels. Except the attention key biases: their exact gradient is 0 (softmax does
 *     not see a shift of a row's scores), so both values are rounding noise; they are held
 *     to 2^-4 of their layer's query-bias gradient norm instead.
 *   - --frozen-precision bf16 at depth 1 (only layer 0's forward in bf16): loss within
 *     2^-7 and trainable gradients within 2^-4 of fp32 at the same depth (one layer's
 *     rounding, but it reaches every later activation and so every gradient; measured
 *     ~3% on a query bias, whose gradient is a small difference); frozen tensors get no
 *     gradient at all.
 * Controls: bf16 really differs from fp32 (the loss and most gradient elements are not
 * bit-identical); a forward started at layer k from the prefix's output equals a forward
 * from the tokens bit for bit under --frozen-precision bf16 (what the activation cache
 * relies on); an fp32 model is unaffected by another model running bf16 (no shared state).
 * bf16 storage of the activations backward reads as GEMM operands: bit-identical steps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/model/bert.h"
#include "core/model/checkpoint.h"
#include "core/model/optim.h"
#include "tests/testutil.h"

enum { B = 4, T = 12 };

static af_backend *be;
static af_config cfg;
static int NL = 3;
static int32_t ids[B * T], tt[B * T];
static float mask[B * T], tgt[B];
static float *params;

static void make_batch(void) {
  const int len[B] = {12, 9, 5, 11};
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int i = b * T + t;
      ids[i] = t < len[b] ? (int32_t)(1 + af_rng_mix(21, (uint64_t)i) % (uint64_t)(cfg.vocab_size - 1)) : 0;
      tt[i] = t < len[b] && t >= len[b] / 2;
      mask[i] = t < len[b];
    }
  for (int b = 0; b < B; b++) tgt[b] = (float)(b % NL);
}

/* One step at depth k with the given precisions: loss, and the gradients into g (host).
 * store16: set them with af_bert_set_precision (bf16 storage of the GEMM operands kept
 * for backward under BF16); else by hand on the fp32 layout (fp32 storage). */
static float step_as(af_precision prec, af_precision fprec, int k, float *g, size_t n, int store16, size_t *bytes) {
  af_bert m;
  float loss = NAN;
  CHECK_OK(af_bert_init(&m, be, &cfg, NL, B, T, 0));
  if (store16) {
    CHECK_OK(af_bert_set_precision(&m, prec, fprec));
  } else {
    m.precision = prec;
    m.frozen_precision = fprec;
  }
  if (bytes) *bytes = af_bert_activation_bytes(&m);
  af_bert_input bt = {ids, tt, mask, tgt, B, T};
  CHECK_OK(af_bert_set_params(&m, params));
  CHECK_OK(af_bert_load_batch(&m, &bt));
  af_grads_zero(&m, 0);
  CHECK_OK(af_bert_forward(&m, B, T, 0, k, 1, 77, &loss));
  CHECK_OK(af_bert_backward(&m, B, T, k, 77, 1.0f / B));
  CHECK_OK(be->to_host(be, g, m.grads, n * sizeof(float)));
  af_bert_free(&m);
  return loss;
}
static float step(af_precision prec, af_precision fprec, int k, float *g, size_t n) {
  return step_as(prec, fprec, k, g, n, 1, NULL);
}

/* Per trainable tensor (from float offset `from`): ||g - r|| <= rel ||r||; the worst ratio. */
static void grads_close(const char *label, const af_param_layout *lay, const float *g, const float *r, size_t from,
                        double rel) {
  double worst = 0;
  int bad = 0, ntens = 0;
  size_t differ = 0, total = 0;
  const char *worst_name = "";
  for (int ti = 0; ti < lay->n; ti++) {
    const af_param_info *t = &lay->t[ti];
    if (t->offset < from) continue;
    double d2 = 0, r2 = 0;
    for (size_t j = 0; j < t->numel; j++) {
      double d = (double)g[t->offset + j] - r[t->offset + j];
      d2 += d * d, r2 += (double)r[t->offset + j] * r[t->offset + j];
      differ += g[t->offset + j] != r[t->offset + j];
    }
    total += t->numel;
    ntens++;
    if (strstr(t->name, "attention.self.key.bias")) {  /* exactly 0: noise against the query bias */
      const af_param_info *qb = &lay->t[ti - 1];  /* AF_LP_QB precedes AF_LP_KB */
      r2 = 0;
      for (size_t j = 0; j < qb->numel; j++) r2 += (double)r[qb->offset + j] * r[qb->offset + j];
    }
    if (r2 == 0) continue;
    double q = sqrt(d2 / r2);
    if (q > worst) worst = q, worst_name = t->name;
    if (!(q <= rel)) {
      if (bad < 4) fprintf(stderr, "  %s: %s off by %.3g of its norm (bound %.3g)\n", label, t->name, q, rel);
      bad++;
    }
  }
  printf("%-46s %d tensors, worst ||diff||/||fp32|| %.2e (%s) = %.2f of the bound, %zu of %zu differ %s\n", label,
         ntens, worst, worst_name, worst / rel, differ, total, bad ? "FAIL" : "ok");
  if (bad) af_test_failures++;
  if (differ < total / 2) {
    fprintf(stderr, "  %s: most gradients are bit-identical to fp32: did bf16 run?\n", label);
    af_test_failures++;
  }
}

static void loss_close(const char *label, float got, float ref, double rel) {
  double d = fabs((double)got - ref);
  printf("%-46s bf16 %.7f fp32 %.7f, |diff| = %.2e of the loss = %.2f of the bound %s\n", label, got, ref,
         d / fabs(ref), d / fabs(ref) / rel, d <= rel * fabs(ref) && got != ref ? "ok" : "FAIL");
  CHECK(d <= rel * fabs(ref));
  CHECK(got != ref);
}

/* bf16 everywhere vs fp32, full fine-tuning (depth 0: the embeddings get gradients too) */
static void full_step(const af_param_layout *lay) {
  size_t n = lay->total;
  float *g0 = malloc(n * sizeof *g0), *g1 = malloc(n * sizeof *g1), *g2 = malloc(n * sizeof *g2);
  float l0 = step(AF_PREC_FP32, AF_PREC_FP32, 0, g0, n);
  float l1 = step(AF_PREC_BF16, AF_PREC_FP32, 0, g1, n);
  loss_close("step loss, --precision bf16", l1, l0, ldexp(1, -5));
  grads_close("step gradients, --precision bf16", lay, g1, g0, 0, ldexp(1, -4));
  /* fp32 again after a bf16 model ran: bit for bit the first fp32 step */
  float l2 = step(AF_PREC_FP32, AF_PREC_FP32, 0, g2, n);
  CHECK(l2 == l0 && !memcmp(g2, g0, n * sizeof *g0));
  free(g0), free(g1), free(g2);
}

/* Under --precision bf16 the model keeps qkv, the attention context, LayerNorm 1's output and
 * the GELU output in bf16 (af_bert_set_precision): the step is bit for bit the one over fp32 storage (the bf16
 * GEMMs round those operands to the same bits), at depth 0 and 1, and the arena shrinks by
 * 2 bytes per value of the three in every layer (all may train here: min_depth 0). */
static void storage_step(const af_param_layout *lay) {
  size_t n = lay->total, b32, b16;
  float *g0 = malloc(n * sizeof *g0), *g1 = malloc(n * sizeof *g1);
  for (int k = 0; k < 2; k++) {
    float l0 = step_as(AF_PREC_BF16, AF_PREC_FP32, k, g0, n, 0, &b32);
    float l1 = step_as(AF_PREC_BF16, AF_PREC_FP32, k, g1, n, 1, &b16);
    int same = l0 == l1 && !memcmp(g0, g1, n * sizeof *g0);
    printf("%-46s depth %d: loss %.7f / %.7f, gradients %s\n", "bf16 storage of GEMM operands vs fp32 storage", k, l1,
           l0, same ? "bit-identical: ok" : "DIFFER: FAIL");
    CHECK(same);
  }
  const size_t N = (size_t)B * T, C = cfg.hidden_size, I = cfg.intermediate_size, L = cfg.num_hidden_layers;
  /* per layer: 3C + C + C + I floats become as many bf16 (carving rounds each to 16 floats) */
#define UP16(x) ((((x) + 15) / 16) * 16)
  size_t saved = 0;
  for (size_t l = 0; l < L; l++) {
    const size_t v[4] = {N * 3 * C, N * C, N * C, N * I};
    for (int j = 0; j < 4; j++) saved += (UP16(v[j]) - UP16((v[j] + 1) / 2)) * sizeof(float);
  }
#undef UP16
  printf("%-46s %zu -> %zu bytes (%.1f%% less; expected %zu less)\n", "activation arena, bf16 storage", b32, b16,
         100.0 * (double)(b32 - b16) / (double)b32, saved);
  CHECK(b16 + saved == b32);
  /* the layout follows af_bert_set_precision only: a hand-set precision that does not fit it
   * is refused, and FP32 set back gives the fp32 step bit for bit */
  af_bert m;
  float loss, lf, *gf = malloc(n * sizeof *gf);
  CHECK_OK(af_bert_init(&m, be, &cfg, NL, B, T, 0));
  CHECK_OK(af_bert_set_precision(&m, AF_PREC_BF16, AF_PREC_FP32));
  m.precision = AF_PREC_FP32;
  af_bert_input bt = {ids, tt, mask, tgt, B, T};
  CHECK_OK(af_bert_set_params(&m, params));
  CHECK_OK(af_bert_load_batch(&m, &bt));
  af_status st = af_bert_forward(&m, B, T, 0, 0, 1, 77, &loss);
  printf("%-46s %s (%s)\n", "hand-set fp32 on the bf16 layout", st == AF_ERR_ARG ? "refused: ok" : "FAIL",
         af_last_error());
  CHECK(st == AF_ERR_ARG && strstr(af_last_error(), "af_bert_set_precision"));
  CHECK_OK(af_bert_set_precision(&m, AF_PREC_FP32, AF_PREC_FP32));
  CHECK(af_bert_activation_bytes(&m) == b32);
  CHECK_OK(af_bert_load_batch(&m, &bt));
  af_grads_zero(&m, 0);
  CHECK_OK(af_bert_forward(&m, B, T, 0, 0, 1, 77, &loss));
  CHECK_OK(af_bert_backward(&m, B, T, 0, 77, 1.0f / B));
  CHECK_OK(be->to_host(be, g1, m.grads, n * sizeof(float)));
  af_bert_free(&m);
  lf = step_as(AF_PREC_FP32, AF_PREC_FP32, 0, gf, n, 0, NULL);
  CHECK(loss == lf && !memcmp(g1, gf, n * sizeof *gf));
  free(g0), free(g1), free(gf);
}

/* --frozen-precision bf16 at depth 1: only layer 0's forward in bf16 */
static void frozen_step(const af_param_layout *lay) {
  const int k = 1;
  size_t n = lay->total, fe = af_param_frozen_end(lay, k);
  float *g0 = malloc(n * sizeof *g0), *g1 = malloc(n * sizeof *g1);
  float l0 = step(AF_PREC_FP32, AF_PREC_FP32, k, g0, n);
  float l1 = step(AF_PREC_FP32, AF_PREC_BF16, k, g1, n);
  loss_close("step loss, --frozen-precision bf16, depth 1", l1, l0, ldexp(1, -7));
  grads_close("trainable gradients, --frozen-precision bf16", lay, g1, g0, fe, ldexp(1, -4));
  int nonzero = 0;
  for (size_t i = 0; i < fe; i++) nonzero += g1[i] != 0.0f;
  CHECK(nonzero == 0);
  free(g0), free(g1);
}

/* The cache's invariant under --frozen-precision bf16: the frozen prefix's output computed
 * alone (af_bert_forward_prefix, as cache fills are) and then a forward from layer k gives
 * the loss of a forward from the tokens, bit for bit (evaluation mode). */
static void prefix_consistent(void) {
  const int k = 2;
  af_bert m;
  CHECK_OK(af_bert_init(&m, be, &cfg, NL, B, T, 0));
  m.frozen_precision = AF_PREC_BF16;
  af_bert_input bt = {ids, tt, mask, tgt, B, T};
  CHECK_OK(af_bert_set_params(&m, params));
  CHECK_OK(af_bert_load_batch(&m, &bt));
  float l_tokens, l_cached, l_fp32;
  float *h = malloc((size_t)B * T * cfg.hidden_size * sizeof *h);
  CHECK_OK(af_bert_forward(&m, B, T, 0, k, 0, 1, &l_tokens));
  CHECK_OK(af_bert_forward_prefix(&m, B, T, 0, k));
  CHECK_OK(be->to_host(be, h, af_bert_hidden(&m, k), (size_t)B * T * cfg.hidden_size * sizeof *h));
  CHECK_OK(af_bert_load_hidden(&m, k, h, B, T));
  CHECK_OK(af_bert_forward(&m, B, T, k, k, 0, 1, &l_cached));
  m.frozen_precision = AF_PREC_FP32;
  CHECK_OK(af_bert_forward(&m, B, T, 0, k, 0, 1, &l_fp32));
  printf("%-46s from tokens %.7f, from h[%d] %.7f (%s), fp32 prefix %.7f\n", "--frozen-precision bf16 prefix", l_tokens,
         k, l_cached, l_tokens == l_cached ? "identical" : "DIFFERENT", l_fp32);
  CHECK(l_tokens == l_cached);
  CHECK(l_tokens != l_fp32);
  free(h);
  af_bert_free(&m);
}

int main(void) {
  af_set_quiet(1);
  CHECK_OK(af_backend_open("cpu", 0, &be));
  if (!be) return 1;
  char dir[4200], path[4300];
  snprintf(dir, sizeof dir, "%s/tests/fixtures/bert_tiny/cls", af_test_source_dir());
  snprintf(path, sizeof path, "%s/config.json", dir);
  CHECK_OK(af_config_load(path, &cfg));
  cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.1f;  /* the masks are the same in both */
  af_param_layout lay;
  CHECK_OK(af_param_layout_build(&cfg, NL, &lay));
  params = malloc(lay.total * sizeof *params);
  CHECK_OK(af_checkpoint_load(dir, &cfg, &lay, params, 5, NULL, 0));
  make_batch();
  printf("tiny fixture: %d layers, hidden %d; bf16 GEMMs: %s\n", cfg.num_hidden_layers, cfg.hidden_size, be->bf16_name);
  full_step(&lay);
  storage_step(&lay);
  frozen_step(&lay);
  prefix_consistent();
  free(params);
  af_param_layout_free(&lay);
  af_backend_close(be);
  return af_test_done("test_bf16_model");
}
