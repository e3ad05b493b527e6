/* Finite-difference checks of every CPU op with a backward: L = sum(out * R) with random R,
 * central differences of the fp32 forward accumulated in double, against the analytic
 * backward called with dout = R. Each comparison is followed by a negative control (the
 * negated gradient must fail the same tolerance), so a loose tolerance cannot pass a wrong
 * sign. Also: the accumulation rule (param grads +=, dinp overwritten), GEMM against a naive
 * loop for every transpose/stride/implementation (gemm_impls/gemm_use), AdamW and segment
 * norms against scalar references, the attention forward (masking, dropout counter layout)
 * against a naive double reference, and dropout's keep rate and determinism. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/ops.h"
#include "tests/testutil.h"

static af_backend *be;

/* ---- random numbers ---- */
static uint64_t rs = 0x1234567ull;
static double urand(void) { rs = rs * 6364136223846793005ull + 1442695040888963407ull; return (double)(rs >> 11) / 9007199254740992.0; }
static float frand(float lo, float hi) { return (float)(lo + (hi - lo) * urand()); }
static float *rnd(size_t n, float lo, float hi) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  for (size_t i = 0; i < n; i++) p[i] = frand(lo, hi);
  return p;
}
static float *fill(size_t n, float v) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  for (size_t i = 0; i < n; i++) p[i] = v;
  return p;
}
static float *dup(const float *x, size_t n) { float *p = malloc(n * sizeof *p); memcpy(p, x, n * sizeof *p); return p; }

/* ---- the finite-difference harness ---- */
typedef void (*fwd_fn)(float *out);
static double loss_of(fwd_fn f, float *out, const float *R, size_t nout) {
  f(out);
  double L = 0;
  for (size_t i = 0; i < nout; i++) L += (double)out[i] * R[i];
  return L;
}

/* Compare analytic gradient g[nx] of L w.r.t. x[nx] with central differences on all
 * elements (or 200 random ones for bigger tensors). */
static void fd_check(const char *label, fwd_fn f, float *out, const float *R, size_t nout, float *x,
                     size_t nx, const float *g, float eps, double atol, double rtol) {
  size_t k = nx <= 200 ? nx : 200;
  double *num = malloc(k * sizeof *num), *ana = malloc(k * sizeof *ana);
  for (size_t s = 0; s < k; s++) {
    size_t i = nx <= 200 ? s : (size_t)(urand() * nx) % nx;
    float x0 = x[i];
    float xp = x0 + eps, xm = x0 - eps;
    x[i] = xp;
    double Lp = loss_of(f, out, R, nout);
    x[i] = xm;
    double Lm = loss_of(f, out, R, nout);
    x[i] = x0;
    num[s] = (Lp - Lm) / ((double)xp - (double)xm);
    ana[s] = g[i];
  }
  af_test_close_d(label, ana, num, k, atol, rtol);
  /* negative control: a sign-flipped gradient must fail this tolerance */
  int bad = 0, big = 0;
  for (size_t s = 0; s < k; s++) {
    if (fabs(num[s]) > 10 * atol) big++;
    if (!(fabs(-ana[s] - num[s]) <= atol + rtol * fabs(num[s]))) bad++;
  }
  if (big && !bad) {
    fprintf(stderr, "  %s: negative control passed (tolerance too loose)\n", label);
    af_test_failures++;
  }
  if (!big) {
    fprintf(stderr, "  %s: all reference gradients tiny; test is vacuous\n", label);
    af_test_failures++;
  }
  free(num);
  free(ana);
}

/* analytic param grad = after - before (the op must accumulate) */
static float *diff(const float *after, const float *before, size_t n) {
  float *d = malloc(n * sizeof *d);
  for (size_t i = 0; i < n; i++) d[i] = after[i] - before[i];
  return d;
}

#define EPS 1e-2f  /* fp32 forward rounding noise ~1/eps dominates truncation ~eps^2 */
#define ATOL 1e-4
#define RTOL 1e-2

/* ---- linear ---- */
static struct { float *inp, *w, *b; int N, C, OC; } LN_;
static void linear_fwd(float *out) { be->linear_forward(be, out, LN_.inp, LN_.w, LN_.b, LN_.N, LN_.C, LN_.OC, AF_PREC_FP32); }
static void test_linear(void) {
  int N = 5, C = 7, OC = 6;
  LN_.N = N; LN_.C = C; LN_.OC = OC;
  LN_.inp = rnd(N * C, -1, 1); LN_.w = rnd(OC * C, -1, 1); LN_.b = rnd(OC, -1, 1);
  float *out = fill(N * OC, 0), *R = rnd(N * OC, -1, 1);
  float *dinp = fill(N * C, 777.0f), *dw0 = rnd(OC * C, -1, 1), *db0 = rnd(OC, -1, 1);
  float *dw = dup(dw0, OC * C), *db = dup(db0, OC);
  be->linear_backward(be, dinp, dw, db, R, LN_.inp, AF_STORE_F32, LN_.w, N, C, OC, AF_PREC_FP32);
  float *gw = diff(dw, dw0, OC * C), *gb = diff(db, db0, OC);
  fd_check("linear dinp", linear_fwd, out, R, N * OC, LN_.inp, N * C, dinp, EPS, ATOL, RTOL);
  fd_check("linear dw (+=)", linear_fwd, out, R, N * OC, LN_.w, OC * C, gw, EPS, ATOL, RTOL);
  fd_check("linear db (+=)", linear_fwd, out, R, N * OC, LN_.b, OC, gb, EPS, ATOL, RTOL);
  /* b = NULL, dinp = NULL, db = NULL paths */
  float *out2 = fill(N * OC, 5.0f), *ref = fill(N * OC, 0);
  be->linear_forward(be, out2, LN_.inp, LN_.w, NULL, N, C, OC, AF_PREC_FP32);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = 0;
      for (int c = 0; c < C; c++) s += (double)LN_.inp[n * C + c] * LN_.w[o * C + c];
      ref[n * OC + o] = (float)s;
    }
  af_test_close("linear forward (no bias) vs naive", out2, ref, N * OC, 1e-5, 1e-5);
  float *dw2 = dup(dw0, OC * C);
  be->linear_backward(be, NULL, dw2, NULL, R, LN_.inp, AF_STORE_F32, LN_.w, N, C, OC, AF_PREC_FP32);
  af_test_close("linear dw with dinp=db=NULL", dw2, dw, OC * C, 1e-6, 1e-6);
  free(out); free(R); free(dinp); free(dw0); free(db0); free(dw); free(db); free(gw); free(gb);
  free(out2); free(ref); free(dw2); free(LN_.inp); free(LN_.w); free(LN_.b);
}

/* ---- embedding ---- */
static struct { int32_t *ids, *tt; float *wte, *wpe, *wtt; int B, T, C; } EM;
static void emb_fwd(float *out) { be->embedding_forward(be, out, EM.ids, EM.tt, EM.wte, EM.wpe, EM.wtt, EM.B, EM.T, EM.C); }
static void test_embedding(void) {
  int B = 2, T = 5, C = 40, V = 9, P = 6, TV = 2;  /* C = 40: channel slices of 16 + a tail */
  EM.B = B; EM.T = T; EM.C = C;
  int32_t ids[] = {1, 4, 4, 7, 0, 4, 1, 8, 8, 2}, tt[] = {0, 0, 1, 1, 1, 0, 0, 0, 1, 1};
  EM.ids = ids; EM.tt = tt;
  EM.wte = rnd(V * C, -1, 1); EM.wpe = rnd(P * C, -1, 1); EM.wtt = rnd(TV * C, -1, 1);
  float *out = fill(B * T * C, 0), *R = rnd(B * T * C, -1, 1);
  float *g0e = rnd(V * C, -1, 1), *g0p = rnd(P * C, -1, 1), *g0t = rnd(TV * C, -1, 1);
  float *ge = dup(g0e, V * C), *gp = dup(g0p, P * C), *gt = dup(g0t, TV * C);
  be->embedding_backward(be, ge, gp, gt, R, ids, tt, B, T, C);
  float *de = diff(ge, g0e, V * C), *dp = diff(gp, g0p, P * C), *dt = diff(gt, g0t, TV * C);
  fd_check("embedding dwte (+=, repeated ids)", emb_fwd, out, R, B * T * C, EM.wte, V * C, de, EPS, ATOL, RTOL);
  fd_check("embedding dwpe (+=)", emb_fwd, out, R, B * T * C, EM.wpe, P * C, dp, EPS, ATOL, RTOL);
  fd_check("embedding dwtt (+=)", emb_fwd, out, R, B * T * C, EM.wtt, TV * C, dt, EPS, ATOL, RTOL);
  free(out); free(R); free(g0e); free(g0p); free(g0t); free(ge); free(gp); free(gt); free(de); free(dp); free(dt);
  free(EM.wte); free(EM.wpe); free(EM.wtt);
}

/* ---- layernorm ---- */
static struct { float *inp, *w, *b, *mean, *rstd; int N, C; } LY;
static void ln_fwd(float *out) { be->layernorm_forward(be, out, LY.mean, LY.rstd, LY.inp, LY.w, LY.b, LY.N, LY.C, 1e-5f); }
static void test_layernorm(void) {
  int N = 4, C = 24;
  LY.N = N; LY.C = C;
  LY.inp = rnd(N * C, -2, 2); LY.w = rnd(C, 0.5f, 1.5f); LY.b = rnd(C, -1, 1);
  LY.mean = fill(N, 0); LY.rstd = fill(N, 0);
  for (int i = 0; i < C; i++) LY.inp[C + i] += 3.0f;  /* a row with a large mean */
  float *out = fill(N * C, 0), *R = rnd(N * C, -1, 1);
  ln_fwd(out);
  /* forward vs double reference */
  float *ref = fill(N * C, 0);
  for (int n = 0; n < N; n++) {
    double m = 0, v = 0;
    for (int c = 0; c < C; c++) m += LY.inp[n * C + c];
    m /= C;
    for (int c = 0; c < C; c++) v += (LY.inp[n * C + c] - m) * (LY.inp[n * C + c] - m);
    v /= C;
    for (int c = 0; c < C; c++) ref[n * C + c] = (float)((LY.inp[n * C + c] - m) / sqrt(v + 1e-5) * LY.w[c] + LY.b[c]);
  }
  af_test_close("layernorm forward vs double reference", out, ref, N * C, 1e-5, 1e-5);
  float *dinp = fill(N * C, -3.0f), *dw0 = rnd(C, -1, 1), *db0 = rnd(C, -1, 1);
  float *dw = dup(dw0, C), *db = dup(db0, C);
  be->layernorm_backward(be, dinp, dw, db, R, LY.inp, LY.w, LY.mean, LY.rstd, N, C);
  float *gw = diff(dw, dw0, C), *gb = diff(db, db0, C);
  fd_check("layernorm dinp", ln_fwd, out, R, N * C, LY.inp, N * C, dinp, EPS, ATOL, RTOL);
  fd_check("layernorm dw (+=)", ln_fwd, out, R, N * C, LY.w, C, gw, EPS, ATOL, RTOL);
  fd_check("layernorm db (+=)", ln_fwd, out, R, N * C, LY.b, C, gb, EPS, ATOL, RTOL);
  free(out); free(R); free(ref); free(dinp); free(dw0); free(db0); free(dw); free(db); free(gw); free(gb);
  free(LY.inp); free(LY.w); free(LY.b); free(LY.mean); free(LY.rstd);
}

/* ---- GELU (both forms), tanh ---- */
static struct { float *inp; size_t n; af_gelu_kind kind; } GE;
static void gelu_fwd(float *out) { be->gelu_forward(be, out, GE.inp, GE.n, GE.kind); }
static void tanh_fwd(float *out) { be->tanh_forward(be, out, GE.inp, GE.n); }
static void test_gelu_tanh(void) {
  size_t n = 97;
  GE.n = n;
  GE.inp = rnd(n, -4, 4);
  float *out = fill(n, 0), *R = rnd(n, -1, 1), *dinp = fill(n, 9.0f), *ref = fill(n, 0);
  for (int kind = 0; kind < 2; kind++) {
    GE.kind = (af_gelu_kind)kind;
    gelu_fwd(out);
    for (size_t i = 0; i < n; i++) {
      double x = GE.inp[i];
      ref[i] = kind == AF_GELU_ERF ? (float)(0.5 * x * (1 + erf(x / sqrt(2.0))))
                                   : (float)(0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))));
    }
    af_test_close(kind ? "gelu tanh forward vs double reference" : "gelu erf forward vs double reference", out, ref, n, 1e-6, 1e-5);
    be->gelu_backward(be, dinp, R, GE.inp, n, GE.kind);
    fd_check(kind ? "gelu tanh dinp" : "gelu erf dinp", gelu_fwd, out, R, n, GE.inp, n, dinp, EPS, ATOL, RTOL);
  }
  /* the big-n (parallel, vectorised) path equals the small-n one elementwise */
  size_t nb = 200003;
  float *xb = rnd(nb, -6, 6), *ob = fill(nb, 0), *o1 = fill(1, 0);
  be->gelu_forward(be, ob, xb, nb, AF_GELU_ERF);
  int same = 1;
  for (size_t i = 0; i < nb; i += 997) { be->gelu_forward(be, o1, xb + i, 1, AF_GELU_ERF); same &= o1[0] == ob[i]; }
  CHECK(same);
  free(xb); free(ob); free(o1);
  tanh_fwd(out);
  be->tanh_backward(be, dinp, R, out, n);
  fd_check("tanh dinp", tanh_fwd, out, R, n, GE.inp, n, dinp, EPS, ATOL, RTOL);
  free(out); free(R); free(dinp); free(ref); free(GE.inp);
}

/* ---- attention ---- */
static struct { float *qkv, *mask, *att, *scratch; int B, T, C, NH; float p; uint64_t seed, off; } AT;
static void att_fwd(float *out) {
  be->attention_forward(be, out, AT.att, AT.qkv, AF_STORE_F32, AT.mask, AT.scratch, AT.B, AT.T, AT.C, AT.NH, AT.p, AT.seed, AT.off, AF_PREC_FP32);
}
/* naive double reference of the forward, with the documented dropout counter layout */
static void att_ref(float *out, float *att) {
  int B = AT.B, T = AT.T, C = AT.C, NH = AT.NH, HS = C / NH;
  double *pr = malloc(T * sizeof *pr);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int i = 0; i < T; i++) {
        const float *q = AT.qkv + (size_t)(b * T + i) * 3 * C + h * HS;
        double mx = -1e300, sum = 0;
        for (int j = 0; j < T; j++) {
          const float *k = AT.qkv + (size_t)(b * T + j) * 3 * C + C + h * HS;
          double s = 0;
          for (int d = 0; d < HS; d++) s += (double)q[d] * k[d];
          pr[j] = s / sqrt((double)HS);
          if (AT.mask[b * T + j] != 0 && pr[j] > mx) mx = pr[j];
        }
        for (int j = 0; j < T; j++) {
          pr[j] = AT.mask[b * T + j] != 0 ? exp(pr[j] - mx) : 0.0;
          sum += pr[j];
        }
        for (int j = 0; j < T; j++) {
          pr[j] = sum > 0 ? pr[j] / sum : 0.0;
          att[(((size_t)b * NH + h) * T + i) * T + j] = (float)pr[j];
          if (AT.p > 0) {
            uint64_t ctr = AT.off + (((uint64_t)b * NH + h) * T + i) * T + j;
            pr[j] = af_dropout_keep(AT.seed, ctr, AT.p) ? pr[j] / (1.0 - AT.p) : 0.0;
          }
        }
        for (int d = 0; d < HS; d++) {
          double s = 0;
          for (int j = 0; j < T; j++) s += pr[j] * AT.qkv[(size_t)(b * T + j) * 3 * C + 2 * C + h * HS + d];
          out[(size_t)(b * T + i) * C + h * HS + d] = (float)s;
        }
      }
  free(pr);
}
static void test_attention(float p, const char *tag) {
  int B = 3, T = 7, C = 12, NH = 3;
  AT.B = B; AT.T = T; AT.C = C; AT.NH = NH; AT.p = p; AT.seed = 42; AT.off = 1000;
  AT.qkv = rnd((size_t)B * T * 3 * C, -1.5f, 1.5f);
  /* batch 0: no padding; batch 1: last 3 padded; batch 2: a hole and a padded tail */
  float mask[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0};
  AT.mask = mask;
  size_t natt = (size_t)B * NH * T * T;
  AT.att = fill(natt, 0);
  AT.scratch = fill(be->attention_scratch_floats(B, T, C, NH), 0);
  float *out = fill((size_t)B * T * C, 0), *R = rnd((size_t)B * T * C, -1, 1);
  float *ref = fill((size_t)B * T * C, 0), *aref = fill(natt, 0);
  att_fwd(out);
  att_ref(ref, aref);
  char lab[128];
  snprintf(lab, sizeof lab, "attention %s forward vs naive", tag);
  af_test_close(lab, out, ref, (size_t)B * T * C, 1e-5, 1e-4);
  snprintf(lab, sizeof lab, "attention %s probabilities vs naive", tag);
  af_test_close(lab, AT.att, aref, natt, 1e-6, 1e-4);
  int zero_ok = 1;
  for (int b = 0; b < B; b++)
    for (int j = 0; j < T; j++)
      if (mask[b * T + j] == 0)
        for (int r = 0; r < NH * T; r++) zero_ok &= AT.att[((size_t)b * NH * T + r) * T + j] == 0.0f;
  CHECK(zero_ok);  /* padded keys get exactly zero probability */
  float *dqkv = fill((size_t)B * T * 3 * C, 55.0f);
  be->attention_backward(be, dqkv, R, AT.qkv, AF_STORE_F32, AT.att, AT.mask, AT.scratch, B, T, C, NH, p, AT.seed, AT.off, AF_PREC_FP32);
  snprintf(lab, sizeof lab, "attention %s dqkv", tag);
  fd_check(lab, att_fwd, out, R, (size_t)B * T * C, AT.qkv, (size_t)B * T * 3 * C, dqkv, EPS, ATOL, RTOL);
  free(AT.qkv); free(AT.att); free(AT.scratch); free(out); free(R); free(ref); free(aref); free(dqkv);
}

/* ---- dropout ---- */
static struct { float *inp; size_t n; float p; } DR;
static void drop_fwd(float *out) { be->dropout_forward(be, out, DR.inp, DR.n, DR.p, 7, 123); }
static void test_dropout(void) {
  size_t n = 150;
  DR.n = n; DR.p = 0.25f; DR.inp = rnd(n, -1, 1);
  float *out = fill(n, 0), *R = rnd(n, -1, 1), *dinp = fill(n, 4.0f);
  be->dropout_backward(be, dinp, R, n, DR.p, 7, 123);
  fd_check("dropout dinp (p=0.25)", drop_fwd, out, R, n, DR.inp, n, dinp, EPS, ATOL, RTOL);
  /* keep rate, determinism, element i uses counter offset + i, p = 0 copies in place */
  size_t nb = 1000003;
  float *x = fill(nb, 1.0f), *y = fill(nb, 0), *y2 = fill(nb, 0);
  float ps[] = {0.1f, 0.5f};
  for (int k = 0; k < 2; k++) {
    be->dropout_forward(be, y, x, nb, ps[k], 99, 5);
    be->dropout_forward(be, y2, x, nb, ps[k], 99, 5);
    size_t kept = 0;
    int layout = 1;
    for (size_t i = 0; i < nb; i++) {
      kept += y[i] != 0.0f;
      layout &= (y[i] != 0.0f) == af_dropout_keep(99, 5 + i, ps[k]);
      if (y[i] != 0.0f) layout &= fabsf(y[i] - 1.0f / (1.0f - ps[k])) < 1e-6f;
    }
    double rate = (double)kept / nb;
    printf("dropout p=%.2f keep rate %.5f (expect %.5f)\n", ps[k], rate, 1.0 - ps[k]);
    CHECK(fabs(rate - (1.0 - ps[k])) < 0.003);
    CHECK(!memcmp(y, y2, nb * sizeof *y));
    CHECK(layout);
  }
  be->dropout_forward(be, y, x, nb, 0.1f, 100, 5);
  CHECK(memcmp(y, y2, nb * sizeof *y) != 0);  /* another seed, another mask */
  memcpy(y, R, n * sizeof *y);
  be->dropout_forward(be, y, y, n, 0.0f, 1, 0);
  CHECK(!memcmp(y, R, n * sizeof *y));
  free(x); free(y); free(y2); free(out); free(R); free(dinp); free(DR.inp);
}

/* ---- cls ---- */
static struct { float *h; int B, T, C; } CL;
static void cls_fwd(float *out) { be->cls_forward(be, out, CL.h, CL.B, CL.T, CL.C); }
static void test_cls(void) {
  int B = 3, T = 4, C = 5;
  CL.B = B; CL.T = T; CL.C = C; CL.h = rnd(B * T * C, -1, 1);
  float *out = fill(B * C, 0), *R = rnd(B * C, -1, 1), *dh = fill(B * T * C, 3.0f);
  be->cls_backward(be, dh, R, B, T, C);
  fd_check("cls dh (overwritten, zeros off row 0)", cls_fwd, out, R, B * C, CL.h, B * T * C, dh, EPS, ATOL, RTOL);
  free(out); free(R); free(dh); free(CL.h);
}

/* ---- losses: L = scale * sum_b losses[b] ---- */
static struct { float *logits, *probs, *targets; int B, NL; float scale; } LS;
static void ce_fwd(float *out) { be->cross_entropy_forward(be, out, LS.probs, LS.logits, LS.targets, LS.B, LS.NL); }
static void mse_fwd(float *out) { be->mse_forward(be, out, LS.logits, LS.targets, LS.B); }
static void test_losses(void) {
  int B = 6, NL = 4;
  float sc = 0.37f;
  LS.B = B; LS.NL = NL; LS.scale = sc;
  LS.logits = rnd(B * NL, -3, 3);
  LS.logits[0] = 80.0f;  /* stability: a huge logit must not overflow */
  LS.probs = fill(B * NL, 0);
  float tg[] = {0, 3, 1, 2, 2, 0};
  LS.targets = tg;
  float *losses = fill(B, 0), *R = fill(B, sc), *dl = fill(B * NL, 8.0f);
  ce_fwd(losses);
  int finite = 1;
  for (int b = 0; b < B; b++) finite &= isfinite(losses[b]);
  CHECK(finite);
  be->cross_entropy_backward(be, dl, LS.probs, LS.targets, B, NL, sc);
  fd_check("cross_entropy dlogits", ce_fwd, losses, R, B, LS.logits, B * NL, dl, EPS, ATOL, RTOL);
  float tr[] = {0.5f, -1.0f, 2.0f, 0.0f, 1.5f, -0.25f};
  LS.targets = tr;
  float *dp = fill(B, 8.0f);
  be->mse_backward(be, dp, LS.logits, LS.targets, B, sc);
  fd_check("mse dpreds", mse_fwd, losses, R, B, LS.logits, B, dp, EPS, ATOL, RTOL);
  free(losses); free(R); free(dl); free(dp); free(LS.logits); free(LS.probs);
}

/* ---- add / accumulate / scale semantics ---- */
static void test_elementwise(void) {
  size_t n = 100001;
  float *a = rnd(n, -1, 1), *b = rnd(n, -1, 1), *o = fill(n, 0), *y = dup(a, n);
  be->add(be, o, a, b, n);
  be->accumulate(be, y, b, n);
  int ok = 1;
  for (size_t i = 0; i < n; i++) ok &= o[i] == a[i] + b[i] && y[i] == a[i] + b[i];
  be->scale(be, y, -0.5f, n);
  for (size_t i = 0; i < n; i++) ok &= y[i] == (a[i] + b[i]) * -0.5f;
  CHECK(ok);
  printf("%-48s %s\n", "add / accumulate / scale exact", ok ? "ok" : "FAIL");
  free(a); free(b); free(o); free(y);
}

/* ---- GEMM layer vs naive, every transpose, padded leading dims, batched strides ---- */
static void naive_gemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < K; k++)
        s += (double)(tA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) * (tB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
      C[(size_t)i * ldc + j] = (float)(alpha * s + beta * C[(size_t)i * ldc + j]);
    }
}
/* The implementation list: at least one, names as gemm_name, gemm_use switches gemm_name
 * and refuses an index out of range. */
static int gemm_impl_list(const char **names, int cap, int *prev) {
  int n = be->gemm_impls(be, names, cap, prev);
  CHECK(n >= 1 && n <= cap && *prev >= 0 && *prev < n);
  if (n < 1 || n > cap || *prev < 0 || *prev >= n) return 0;
  CHECK(!strcmp(names[*prev], be->gemm_name));
  CHECK(be->gemm_impls(be, NULL, 0, NULL) == n);
  CHECK(be->gemm_use(be, n) == AF_ERR_ARG);
  CHECK(be->gemm_use(be, -1) == AF_ERR_ARG);
  printf("%-48s %d (%s in use)\n", "gemm implementations", n, names[*prev]);
  return n;
}

static void test_gemm(void) {
  const char *names[8];
  int prev = -1, n = gemm_impl_list(names, 8, &prev);
  for (int li = 0; li < n; li++) {
    CHECK_OK(be->gemm_use(be, li));
    int cur = -1;
    be->gemm_impls(be, NULL, 0, &cur);
    CHECK(cur == li && !strcmp(be->gemm_name, names[li]));
    for (int t = 0; t < 4; t++) {
      int tA = t & 1, tB = t >> 1, M = 37, N = 29, K = 45, batch = 3;
      int lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 5, ldc = N + 2;
      long sA = (long)(tA ? K : M) * lda + 7, sB = (long)(tB ? N : K) * ldb + 1, sC = (long)M * ldc + 4;
      float *A = rnd(sA * batch, -1, 1), *Bm = rnd(sB * batch, -1, 1), *C = rnd(sC * batch, -1, 1);
      float *Cr = dup(C, sC * batch);
      be->gemm(be, tA, tB, M, N, K, 0.75f, A, lda, sA, Bm, ldb, sB, -0.5f, C, ldc, sC, batch, AF_PREC_FP32);
      for (int bi = 0; bi < batch; bi++)
        naive_gemm(tA, tB, M, N, K, 0.75f, A + bi * sA, lda, Bm + bi * sB, ldb, -0.5f, Cr + bi * sC, ldc);
      char lab[96];
      snprintf(lab, sizeof lab, "gemm %.*s tA=%d tB=%d batch=3", (int)strcspn(names[li], " "), names[li], tA, tB);
      af_test_close(lab, C, Cr, sC * batch, 1e-5, 1e-4);  /* includes the untouched padding */
      float *C1 = dup(Cr, sC);
      naive_gemm(tA, tB, M, N, K, 1.0f, A, lda, Bm, ldb, 0.0f, C1, ldc);
      float *C2 = dup(Cr, sC);
      be->gemm(be, tA, tB, M, N, K, 1.0f, A, lda, 0, Bm, ldb, 0, 0.0f, C2, ldc, 0, 1, AF_PREC_FP32);
      snprintf(lab, sizeof lab, "gemm %.*s tA=%d tB=%d single", (int)strcspn(names[li], " "), names[li], tA, tB);
      af_test_close(lab, C2, C1, sC, 1e-5, 1e-4);
      free(A); free(Bm); free(C); free(Cr); free(C1); free(C2);
    }
  }
  if (n > 0) CHECK_OK(be->gemm_use(be, prev));
}

/* ---- AdamW vs a double scalar reference ---- */
static void test_adamw(void) {
  size_t n = 100003;
  for (int bc = 0; bc < 2; bc++) {
    float *p = rnd(n, -1, 1), *g = rnd(n, -1, 1), *m = rnd(n, -0.1f, 0.1f), *v = rnd(n, 0, 0.01f);
    float *pr = dup(p, n), *mr = dup(m, n), *vr = dup(v, n);
    float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-6f, wd = 0.01f;
    float bc1 = bc ? 1.0f - powf(b1, 3) : 1.0f, bc2 = bc ? 1.0f - powf(b2, 3) : 1.0f;
    be->adamw_update(be, p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2);
    for (size_t i = 0; i < n; i++) {
      double mi = (double)b1 * mr[i] + (1.0 - b1) * g[i];
      double vi = (double)b2 * vr[i] + (1.0 - b2) * (double)g[i] * g[i];
      mr[i] = (float)mi;
      vr[i] = (float)vi;
      pr[i] = (float)(pr[i] - lr * ((mi / bc1) / (sqrt(vi / bc2) + eps) + wd * pr[i]));
    }
    af_test_close(bc ? "adamw params (bias corrected)" : "adamw params (BERTAdam)", p, pr, n, 1e-7, 1e-5);
    af_test_close("adamw m", m, mr, n, 1e-8, 1e-5);
    af_test_close("adamw v", v, vr, n, 1e-10, 1e-5);
    free(p); free(g); free(m); free(v); free(pr); free(mr); free(vr);
  }
}

/* ---- segment norms vs naive double sums ---- */
static void test_segment_norms(void) {
  size_t off[] = {0, 10, 10, 300007, 300010, 1000000};
  int nseg = 5;
  float *x = rnd(off[nseg], -2, 2);
  double l1[5], l2[5], r1[5] = {0}, r2[5] = {0}, l1b[5];
  for (int s = 0; s < nseg; s++)
    for (size_t i = off[s]; i < off[s + 1]; i++) { r1[s] += fabs(x[i]); r2[s] += (double)x[i] * x[i]; }
  CHECK_OK(be->segment_norms(be, l1, l2, x, off, nseg));
  af_test_close_d("segment_norms l1", l1, r1, nseg, 1e-9, 1e-11);
  af_test_close_d("segment_norms l2sq", l2, r2, nseg, 1e-9, 1e-11);
  CHECK_OK(be->segment_norms(be, l1b, NULL, x, off, nseg));
  CHECK(!memcmp(l1, l1b, sizeof l1));  /* deterministic */
  free(x);
}

int main(void) {
  af_set_quiet(1);
  if (af_backend_open("cpu", 0, &be) != AF_OK) {
    fprintf(stderr, "cannot open cpu backend: %s\n", af_last_error());
    return 1;
  }
  printf("backend %s, gemm %s\n", be->name, be->gemm_name);
  test_gemm();
  test_linear();
  test_embedding();
  test_layernorm();
  test_gelu_tanh();
  test_attention(0.0f, "mask p=0");
  test_attention(0.3f, "mask+dropout p=0.3");
  test_dropout();
  test_cls();
  test_losses();
  test_elementwise();
  test_adamw();
  test_segment_norms();
  af_backend_close(be);
  return af_test_done("test_ops_fd");
}
