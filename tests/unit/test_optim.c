/* Learning-rate schedules and the two optimizer recipes: values worked out by hand. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/model/optim.h"
#include "tests/testutil.h"

static void test_clip_modes(void);
static void test_layer_scale(void);

static void near(const char *what, double got, double want) {
  if (fabs(got - want) > 1e-6 * fabs(want) + 1e-12) {  /* af_lr_at is float */
    fprintf(stderr, "  %s: got %.10g want %.10g\n", what, got, want);
    af_test_failures++;
  }
}

int main(void) {
  af_optim_opts o;
  af_optim_defaults_hf(&o);
  CHECK(o.bias_correction == 1 && o.clip == AF_CLIP_GLOBAL && o.max_grad_norm == 1.0f && o.weight_decay == 0.01f);
  o.lr = 1.0f;
  o.warmup_frac = 0.1f;
  /* 100 steps, 10 of warm-up: step s < 10 -> (s+1)/10; then (100 - s)/90 */
  near("linear step 0", af_lr_at(&o, 0, 100), 0.1);
  near("linear step 9", af_lr_at(&o, 9, 100), 1.0);
  near("linear step 10", af_lr_at(&o, 10, 100), 1.0);
  near("linear step 55", af_lr_at(&o, 55, 100), 45.0 / 90.0);
  near("linear step 99", af_lr_at(&o, 99, 100), 1.0 / 90.0);
  o.warmup_frac = 0;
  near("no warm-up step 0", af_lr_at(&o, 0, 100), 1.0);

  af_optim_defaults_paper(&o);
  CHECK(o.bias_correction == 0 && o.clip == AF_CLIP_PER_TENSOR && o.eps == 1e-6f && o.lr == 1e-5f);
  o.lr = 1.0f;
  /* the paper: x1 until 30% of the steps, x0.7 until 60%, x0.4 after; no warm-up */
  near("stepped 0", af_lr_at(&o, 0, 100), 1.0);
  near("stepped 29", af_lr_at(&o, 29, 100), 1.0);
  near("stepped 30", af_lr_at(&o, 30, 100), 0.7);
  near("stepped 59", af_lr_at(&o, 59, 100), 0.7);
  near("stepped 60", af_lr_at(&o, 60, 100), 0.4);
  near("stepped 99", af_lr_at(&o, 99, 100), 0.4);
  o.schedule = AF_SCHED_CONSTANT;
  near("constant", af_lr_at(&o, 77, 100), 1.0);

  test_clip_modes();
  test_layer_scale();
  return af_test_done("test_optim");
}

/* ---- af_optim_step with per-tensor clipping and without clipping ----
 *
 * A tiny model (af_config_named "tiny": 2 layers, C 32) gets known parameters, moments and
 * gradients; every tensor's gradient is a random direction scaled to a chosen norm, cycling
 * through multiples of max_grad_norm above it (1.01, 1.7, 3, 12), below it (0.99, 0.4,
 * 0.05) and 0, and the frozen tensors get a huge one (their gradient must not count). One
 * af_optim_step at step t = 3 (nonzero moments, bias correction not 1) is compared, element
 * by element and for every tensor, with AdamW worked out here in double:
 *   s = max/(||g_tensor|| + 1e-6) if ||g_tensor|| > max else 1   (AF_CLIP_PER_TENSOR)
 *   s = 1                                                      (AF_CLIP_NONE)
 *   g' = s g;  m' = b1 m + (1-b1) g';  v' = b2 v + (1-b2) g'^2
 *   p' = p - lr ( (m'/bc1) / (sqrt(v'/bc2) + eps) + wd p ),  wd = 0 for biases and LayerNorm
 * with bc = 1 - beta^t (bias_correction 1) or 1 (0, BERTAdam). The clip formula is
 * torch.nn.utils.clip_grad_norm_'s applied to one tensor at a time, as the paper's code
 * does. Frozen tensors (depth 1: embeddings and layer 0) must keep p, m, v bit for bit, and
 * the returned norm is the global norm of the trainable gradients before clipping.
 *
 * Tolerance: the step runs in fp32, the reference in double from the same fp32 inputs.
 * Each of m', v' is a few roundings (<= 2^-24 relative each) of terms of known magnitude,
 * so |m' - ref| <= 1e-6 (|b1 m| + |(1-b1) g'|) and |v' - ref| <= 1e-6 v' (about 16 ulp);
 * p' adds 2 ulp of p' plus lr times the propagated error of the update. The bias
 * corrections are taken as the kernel gets them, 1 - powf(beta, t) in fp32: 1 - 0.999^3 in
 * fp32 carries a cancellation error up to ~1e-5 relative, which is fp32, not clipping.
 * Controls: the same step checked against the other clip mode's reference must differ in
 * exactly the tensors whose norm exceeds max (and against global clipping, and with the
 * other bias correction, in many elements), so the comparison can tell the modes apart. */

static uint64_t rng_state;
static double urand(void) { /* splitmix64 -> [0, 1) */
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static const double norm_mult[] = {3.0, 0.4, 0.0, 1.01, 0.99, 12.0, 0.05, 1.7};
enum { N_MULT = sizeof norm_mult / sizeof norm_mult[0] };

/* p, m, v and g for every tensor; frozen tensors (offset < fe) get a gradient of norm 1000 max */
static void make_inputs(const af_param_layout *lay, size_t fe, float max_norm, float *p, float *g, float *m,
                        float *v, double *target) {
  rng_state = 12345;
  for (int i = 0; i < lay->n; i++) {
    const af_param_info *t = &lay->t[i];
    double want = t->offset < fe ? 1000.0 * max_norm : norm_mult[i % N_MULT] * max_norm, sq = 0;
    double *dir = malloc(t->numel * sizeof *dir);
    for (size_t j = 0; j < t->numel; j++) {
      dir[j] = 2 * urand() - 1;
      sq += dir[j] * dir[j];
    }
    for (size_t j = 0; j < t->numel; j++) {
      size_t k = t->offset + j;
      g[k] = (float)(dir[j] * want / sqrt(sq));
      p[k] = (float)(urand() - 0.5);
      m[k] = (float)((2 * urand() - 1) * 1e-3);
      v[k] = (float)((0.5 + urand()) * 1e-6);
    }
    target[i] = want;
    free(dir);
  }
}

static double tensor_norm(const af_param_info *t, const float *g) {
  double sq = 0;
  for (size_t j = 0; j < t->numel; j++) sq += (double)g[t->offset + j] * g[t->offset + j];
  return sqrt(sq);
}

/* AdamW in double with the given clip mode and bias correction; frozen tensors unchanged.
 * tlr: each tensor's learning rate (NULL: lr for all) */
static void reference(const af_param_layout *lay, size_t fe, const af_optim_opts *o, af_clip clip, int bias_corr,
                      float lr, const double *tlr, long t, const float *p, const float *g, const float *m,
                      const float *v, double *rp, double *rm, double *rv, double *gnorm) {
  double sq = 0;
  for (int i = 0; i < lay->n; i++)
    if (lay->t[i].offset >= fe) sq += tensor_norm(&lay->t[i], g) * tensor_norm(&lay->t[i], g);
  *gnorm = sqrt(sq);
  const double b1 = o->beta1, b2 = o->beta2, eps = o->eps, mx = o->max_grad_norm;
  const double bc1 = bias_corr ? (double)(1.0f - powf(o->beta1, (float)t)) : 1.0;
  const double bc2 = bias_corr ? (double)(1.0f - powf(o->beta2, (float)t)) : 1.0;
  for (int i = 0; i < lay->n; i++) {
    const af_param_info *ti = &lay->t[i];
    double sc = 1, nrm = tensor_norm(ti, g);
    if (clip == AF_CLIP_PER_TENSOR && nrm > mx) sc = mx / (nrm + 1e-6);
    if (clip == AF_CLIP_GLOBAL && *gnorm > mx) sc = mx / (*gnorm + 1e-6);
    const double wd = ti->decay ? o->weight_decay : 0.0, lri = tlr ? tlr[i] : lr;
    for (size_t j = 0; j < ti->numel; j++) {
      size_t k = ti->offset + j;
      if (ti->offset < fe) {
        rp[k] = p[k];
        rm[k] = m[k];
        rv[k] = v[k];
        continue;
      }
      double gg = g[k] * sc, mm = b1 * m[k] + (1 - b1) * gg, vv = b2 * v[k] + (1 - b2) * gg * gg;
      rm[k] = mm;
      rv[k] = vv;
      rp[k] = p[k] - lri * ((mm / bc1) / (sqrt(vv / bc2) + eps) + wd * p[k]);
    }
  }
}

/* Element-wise comparison of the step's p, m, v (after) with a reference; bad[i] = 1 for
 * each tensor with a mismatch. Returns the number of mismatching elements; *worst (may be
 * NULL) the largest error as a fraction of its tolerance. */
static long compare(const af_param_layout *lay, const af_optim_opts *o, float lr, const double *tlr, int bias_corr,
                    long t, const float *p0, const float *m0, const float *p, const float *m, const float *v,
                    const double *rp, const double *rm, const double *rv, int *bad, int verbose, double *worst) {
  const double b1 = o->beta1, bc1 = bias_corr ? (double)(1.0f - powf(o->beta1, (float)t)) : 1.0;
  const double bc2 = bias_corr ? (double)(1.0f - powf(o->beta2, (float)t)) : 1.0;
  long nbad = 0;
  double w = 0;
  for (int i = 0; i < lay->n; i++) {
    const af_param_info *ti = &lay->t[i];
    const double lri = tlr ? tlr[i] : lr;
    bad[i] = 0;
    for (size_t j = 0; j < ti->numel; j++) {
      size_t k = ti->offset + j;
      /* magnitudes of the terms, from the reference's g' = (m' - b1 m) / (1 - b1) */
      double gg = (rm[k] - b1 * m0[k]) / (1 - b1);
      double tol_m = 1e-6 * (fabs(b1 * m0[k]) + fabs((1 - b1) * gg));
      double tol_v = 1e-6 * rv[k];
      double den = sqrt(rv[k] / bc2) + o->eps, u = (rm[k] / bc1) / den;
      double wd = ti->decay ? o->weight_decay : 0.0;
      double tol_p = 2.4e-7 * fabs(rp[k]) + lri * (2e-6 * fabs(u) + 1e-6 * wd * fabs(p0[k]) + tol_m / bc1 / den);
      int ok = fabs(m[k] - rm[k]) <= tol_m && fabs(v[k] - rv[k]) <= tol_v && fabs(p[k] - rp[k]) <= tol_p;
      double r = fmax(fabs(m[k] - rm[k]) / (tol_m + 1e-300),
                      fmax(fabs(v[k] - rv[k]) / (tol_v + 1e-300), fabs(p[k] - rp[k]) / (tol_p + 1e-300)));
      if (!(r <= w)) w = r;
      if (!ok) {
        if (verbose && nbad < 5)
          fprintf(stderr, "  %s[%zu]: p %.9g want %.9g, m %.9g want %.9g, v %.9g want %.9g\n", ti->name, j, p[k],
                  rp[k], m[k], rm[k], v[k], rv[k]);
        nbad++;
        bad[i] = 1;
      }
    }
  }
  if (worst) *worst = w;
  return nbad;
}

static void test_clip_modes(void) {
  af_config cfg;
  af_backend *be = NULL;
  af_bert mdl;
  memset(&mdl, 0, sizeof mdl);
  CHECK_OK(af_config_named("tiny", &cfg));
  CHECK_OK(af_backend_open("cpu", 1, &be));
  if (!be) return;
  CHECK_OK(af_bert_init(&mdl, be, &cfg, 3, 1, 4, 0));
  if (!mdl.params) {
    af_backend_close(be);
    return;
  }
  const af_param_layout *lay = &mdl.lay;
  const size_t P = lay->total;
  float *p0 = malloc(P * sizeof(float)), *g0 = malloc(P * sizeof(float)), *m0 = malloc(P * sizeof(float));
  float *v0 = malloc(P * sizeof(float)), *p = malloc(P * sizeof(float)), *m = malloc(P * sizeof(float));
  float *v = malloc(P * sizeof(float));
  double *rp = malloc(P * sizeof(double)), *rm = malloc(P * sizeof(double)), *rv = malloc(P * sizeof(double));
  double *target = malloc((size_t)lay->n * sizeof(double));
  int *bad = malloc((size_t)lay->n * sizeof(int));
  const float lr = 1e-2f;
  const long t = 3;
  struct { af_clip clip; int bias_corr, depth; const char *name; } cases[] = {
      {AF_CLIP_PER_TENSOR, 1, 1, "per-tensor clip, AdamW, depth 1"},
      {AF_CLIP_PER_TENSOR, 0, 0, "per-tensor clip, BERTAdam, depth 0"},
      {AF_CLIP_NONE, 1, 1, "no clip, AdamW, depth 1"},
      {AF_CLIP_NONE, 0, 0, "no clip, BERTAdam, depth 0"},
  };
  for (int c = 0; c < 4; c++) {
    af_optim_opts o;
    af_optim_defaults_hf(&o);
    o.clip = cases[c].clip;
    o.bias_correction = cases[c].bias_corr;
    o.max_grad_norm = 0.5f;
    o.lr = lr;
    const int depth = cases[c].depth;
    const size_t fe = af_param_frozen_end(lay, depth);
    make_inputs(lay, fe, o.max_grad_norm, p0, g0, m0, v0, target);
    int above = 0, below = 0;
    for (int i = 0; i < lay->n; i++)
      if (lay->t[i].offset >= fe) {
        double nrm = tensor_norm(&lay->t[i], g0);
        above += nrm > o.max_grad_norm;
        below += nrm <= o.max_grad_norm;
        CHECK(fabs(nrm - target[i]) <= 1e-6 * target[i]);  /* the norms are the intended ones */
      }
    CHECK(above >= 8 && below >= 8);
    CHECK_OK(be->to_device(be, mdl.params, p0, P * sizeof(float)));
    CHECK_OK(be->to_device(be, mdl.grads, g0, P * sizeof(float)));
    CHECK_OK(be->to_device(be, mdl.m, m0, P * sizeof(float)));
    CHECK_OK(be->to_device(be, mdl.v, v0, P * sizeof(float)));
    double gn = -1, rgn;
    CHECK_OK(af_optim_step(&mdl, &o, depth, lr, t, &gn));
    CHECK_OK(be->sync(be));
    CHECK_OK(be->to_host(be, p, mdl.params, P * sizeof(float)));
    CHECK_OK(be->to_host(be, m, mdl.m, P * sizeof(float)));
    CHECK_OK(be->to_host(be, v, mdl.v, P * sizeof(float)));
    reference(lay, fe, &o, o.clip, o.bias_correction, lr, NULL, t, p0, g0, m0, v0, rp, rm, rv, &rgn);
    /* the returned norm: all trainable gradients, before clipping, frozen ones left out */
    if (!(fabs(gn - rgn) <= 1e-9 * rgn)) fprintf(stderr, "  %s: grad norm %.12g want %.12g\n", cases[c].name, gn, rgn);
    CHECK(fabs(gn - rgn) <= 1e-9 * rgn);
    /* frozen: untouched, bit for bit */
    CHECK(memcmp(p, p0, fe * sizeof(float)) == 0 && memcmp(m, m0, fe * sizeof(float)) == 0 &&
          memcmp(v, v0, fe * sizeof(float)) == 0);
    double worst = 0;
    long nb = compare(lay, &o, lr, NULL, o.bias_correction, t, p0, m0, p, m, v, rp, rm, rv, bad, 1, &worst);
    size_t changed = 0;
    for (size_t k = fe; k < P; k++) changed += p[k] != p0[k];
    printf("%-36s %zu trainable floats (%d tensors above max, %d not): %ld mismatches, worst error %.2f of its tolerance\n",
           cases[c].name, P - fe, above, below, nb, worst);
    CHECK(nb == 0);
    CHECK(changed > (P - fe) * 9 / 10);
    /* controls: against the other mode's reference, exactly the tensors above max differ */
    af_clip other = o.clip == AF_CLIP_PER_TENSOR ? AF_CLIP_NONE : AF_CLIP_PER_TENSOR;
    reference(lay, fe, &o, other, o.bias_correction, lr, NULL, t, p0, g0, m0, v0, rp, rm, rv, &rgn);
    compare(lay, &o, lr, NULL, o.bias_correction, t, p0, m0, p, m, v, rp, rm, rv, bad, 0, NULL);
    int exact = 1, ndiff = 0;
    for (int i = 0; i < lay->n; i++) {
      int should = lay->t[i].offset >= fe && tensor_norm(&lay->t[i], g0) > o.max_grad_norm;
      exact &= bad[i] == should;
      ndiff += bad[i];
    }
    printf("  control: vs the %s reference, %d tensors differ (%s the %d above max)\n",
           other == AF_CLIP_NONE ? "unclipped" : "per-tensor clipped", ndiff, exact ? "exactly" : "NOT", above);
    CHECK(exact);
    reference(lay, fe, &o, AF_CLIP_GLOBAL, o.bias_correction, lr, NULL, t, p0, g0, m0, v0, rp, rm, rv, &rgn);
    long ng = compare(lay, &o, lr, NULL, o.bias_correction, t, p0, m0, p, m, v, rp, rm, rv, bad, 0, NULL);
    reference(lay, fe, &o, o.clip, !o.bias_correction, lr, NULL, t, p0, g0, m0, v0, rp, rm, rv, &rgn);
    long nbc = compare(lay, &o, lr, NULL, !o.bias_correction, t, p0, m0, p, m, v, rp, rm, rv, bad, 0, NULL);
    printf("  control: vs global clipping %ld, vs bias_correction %d %ld mismatching floats\n", ng,
           !o.bias_correction, nbc);
    CHECK(ng > (long)(P - fe) / 2 && nbc > (long)(P - fe) / 2);
  }
  free(p0);
  free(g0);
  free(m0);
  free(v0);
  free(p);
  free(m);
  free(v);
  free(rp);
  free(rm);
  free(rv);
  free(target);
  free(bad);
  af_bert_free(&mdl);
  af_backend_close(be);
}

/* ---- per-layer learning rates (--layer-lr-decay, FreezeOut's factors) ----
 *
 * The tiny fixture model (tests/fixtures/bert_tiny/cls: 3 layers) with the inputs above, one
 * af_optim_step_scaled with layer-wise decay X = 0.8 against the reference AdamW loop in
 * double, where each tensor's rate is worked out here from its Hugging Face name: the head
 * (pooler, classifier) lr, "encoder.layer.l." lr*X^(L-l), "embeddings." lr*X^(L+1). Global
 * clipping (the recipe's default, where adjacent tensors are merged into one update span) and
 * per-tensor clipping, at depth 0 and 1. Controls: against the reference without decay,
 * exactly the trainable non-head tensors differ. Then X = 1 passed as factors is bit for bit
 * the plain step (NULL), and a factor of 0 (FreezeOut past a layer's freeze time) leaves that
 * layer's parameters bit for bit as they were. */
static double name_factor(const char *name, int L, double x) {
  int l;
  if (!strncmp(name, "embeddings.", 11)) return pow(x, L + 1);
  if (sscanf(name, "encoder.layer.%d.", &l) == 1) return pow(x, L - l);
  return 1.0;  /* pooler, classifier */
}

typedef struct {
  af_bert *m;
  float *p0, *g0, *m0, *v0, *p, *mm, *v;
} opt_bufs;

static void step_with(opt_bufs *b, const af_optim_opts *o, int depth, float lr, const double *scale, long t) {
  af_backend *be = b->m->be;
  const size_t P = b->m->lay.total;
  double gn;
  CHECK_OK(be->to_device(be, b->m->params, b->p0, P * sizeof(float)));
  CHECK_OK(be->to_device(be, b->m->grads, b->g0, P * sizeof(float)));
  CHECK_OK(be->to_device(be, b->m->m, b->m0, P * sizeof(float)));
  CHECK_OK(be->to_device(be, b->m->v, b->v0, P * sizeof(float)));
  CHECK_OK(af_optim_step_scaled(b->m, o, depth, lr, scale, t, &gn));
  CHECK_OK(be->sync(be));
  CHECK_OK(be->to_host(be, b->p, b->m->params, P * sizeof(float)));
  CHECK_OK(be->to_host(be, b->mm, b->m->m, P * sizeof(float)));
  CHECK_OK(be->to_host(be, b->v, b->m->v, P * sizeof(float)));
}

static void test_layer_scale(void) {
  char path[4200];
  snprintf(path, sizeof path, "%s/tests/fixtures/bert_tiny/cls/config.json", af_test_source_dir());
  af_config cfg;
  af_backend *be = NULL;
  af_bert mdl;
  memset(&mdl, 0, sizeof mdl);
  memset(&cfg, 0, sizeof cfg);
  CHECK_OK(af_config_load(path, &cfg));
  if (cfg.num_hidden_layers != 3) return;  /* the fixture is missing: counted above */
  CHECK_OK(af_backend_open("cpu", 1, &be));
  if (!be) return;
  CHECK_OK(af_bert_init(&mdl, be, &cfg, 3, 1, 4, 0));
  if (!mdl.params) {
    af_backend_close(be);
    return;
  }
  const af_param_layout *lay = &mdl.lay;
  const int L = lay->L, nt = lay->n;
  const size_t P = lay->total;
  CHECK(L == 3);
  opt_bufs b = {.m = &mdl};
  float **bufs[] = {&b.p0, &b.g0, &b.m0, &b.v0, &b.p, &b.mm, &b.v};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) *bufs[i] = malloc(P * sizeof(float));
  float *p1 = malloc(P * sizeof(float)), *m1 = malloc(P * sizeof(float)), *v1 = malloc(P * sizeof(float));
  double *rp = malloc(P * sizeof(double)), *rm = malloc(P * sizeof(double)), *rv = malloc(P * sizeof(double));
  double *target = malloc((size_t)nt * sizeof(double)), *tlr = malloc((size_t)nt * sizeof(double));
  int *bad = malloc((size_t)nt * sizeof(int));
  const float lr = 1e-2f;
  const double X = 0.8;
  const long t = 3;
  double scale[64];  /* the optimizer's layout: [0] embeddings, [1 + l] layer l, [L + 1] head */
  scale[0] = pow(X, L + 1);
  for (int l = 0; l < L; l++) scale[1 + l] = pow(X, L - l);
  scale[L + 1] = 1.0;
  struct { af_clip clip; int bias_corr, depth; const char *name; } cases[] = {
      {AF_CLIP_GLOBAL, 1, 0, "decay 0.8, global clip, AdamW, depth 0"},
      {AF_CLIP_PER_TENSOR, 0, 1, "decay 0.8, per-tensor clip, BERTAdam, depth 1"},
  };
  for (int c = 0; c < 2; c++) {
    af_optim_opts o;
    af_optim_defaults_hf(&o);
    o.clip = cases[c].clip;
    o.bias_correction = cases[c].bias_corr;
    o.max_grad_norm = 0.5f;
    const int depth = cases[c].depth;
    const size_t fe = af_param_frozen_end(lay, depth);
    make_inputs(lay, fe, o.max_grad_norm, b.p0, b.g0, b.m0, b.v0, target);
    step_with(&b, &o, depth, lr, scale, t);
    for (int i = 0; i < nt; i++) tlr[i] = (double)lr * name_factor(lay->t[i].name, L, X);
    double rgn, worst = 0;
    reference(lay, fe, &o, o.clip, o.bias_correction, lr, tlr, t, b.p0, b.g0, b.m0, b.v0, rp, rm, rv, &rgn);
    long nb = compare(lay, &o, lr, tlr, o.bias_correction, t, b.p0, b.m0, b.p, b.mm, b.v, rp, rm, rv, bad, 1, &worst);
    CHECK(memcmp(b.p, b.p0, fe * sizeof(float)) == 0);  /* frozen: untouched */
    /* control: without the decay, exactly the trainable tensors whose factor is not 1 differ */
    reference(lay, fe, &o, o.clip, o.bias_correction, lr, NULL, t, b.p0, b.g0, b.m0, b.v0, rp, rm, rv, &rgn);
    compare(lay, &o, lr, NULL, o.bias_correction, t, b.p0, b.m0, b.p, b.mm, b.v, rp, rm, rv, bad, 0, NULL);
    int exact = 1, ndiff = 0, should_n = 0;
    for (int i = 0; i < nt; i++) {
      int should = lay->t[i].offset >= fe && name_factor(lay->t[i].name, L, X) != 1.0;
      exact &= bad[i] == should;
      ndiff += bad[i];
      should_n += should;
    }
    printf("%-46s %ld mismatches, worst %.2f of its tolerance\n  control: vs no decay, %d tensors differ (%s the %d "
           "scaled ones)\n", cases[c].name, nb, worst, ndiff, exact ? "exactly" : "NOT", should_n);
    CHECK(nb == 0 && exact && should_n > 10);
  }
  /* factors of exactly 1: the plain step, bit for bit; a factor 0: that layer stays put */
  af_optim_opts o;
  af_optim_defaults_hf(&o);
  make_inputs(lay, 0, o.max_grad_norm, b.p0, b.g0, b.m0, b.v0, target);
  step_with(&b, &o, 0, lr, NULL, t);
  memcpy(p1, b.p, P * sizeof(float));
  memcpy(m1, b.mm, P * sizeof(float));
  memcpy(v1, b.v, P * sizeof(float));
  for (int k = 0; k < L + 2; k++) scale[k] = 1.0;
  step_with(&b, &o, 0, lr, scale, t);
  int same = !memcmp(p1, b.p, P * sizeof(float)) && !memcmp(m1, b.mm, P * sizeof(float)) &&
             !memcmp(v1, b.v, P * sizeof(float));
  printf("factors 1 vs no factors: %s\n", same ? "bit for bit the same" : "DIFFERENT");
  CHECK(same);
  scale[1] = 0.0;  /* layer 0 */
  step_with(&b, &o, 0, lr, scale, t);
  size_t l0 = lay->group_begin[1], l0_end = lay->group_begin[2], moved = 0, others = 0;
  for (size_t k = l0; k < l0_end; k++) moved += b.p[k] != b.p0[k];
  for (size_t k = 0; k < P; k++) others += (k < l0 || k >= l0_end) && b.p[k] != p1[k];
  printf("factor 0 for layer 0: %zu of its %zu parameters moved; %zu elsewhere differ from the plain step\n", moved,
         l0_end - l0, others);
  CHECK(moved == 0 && others == 0 && memcmp(b.mm + l0, b.m0 + l0, (l0_end - l0) * sizeof(float)) != 0);
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(*bufs[i]);
  free(p1);
  free(m1);
  free(v1);
  free(rp);
  free(rm);
  free(rv);
  free(target);
  free(tlr);
  free(bad);
  af_bert_free(&mdl);
  af_backend_close(be);
}
