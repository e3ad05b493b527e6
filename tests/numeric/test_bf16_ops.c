/* bf16 compute (AF_PREC_BF16, kernels/ops.h) against fp32, op by op, on the CPU backend.
 *
 * The bound. bf16 keeps 8 significant bits, so rounding an input moves it by at most 2^-9
 * of itself and a product of two rounded inputs by about 2^-8 of itself. A GEMM output sums
 * K such products with independent rounding errors, which grow like sqrt(K), while fp32
 * accumulation adds nothing comparable. So for an output of a reduction of length K over
 * operands A and B:
 *     |bf16 - fp32| <= c * 2^-8 * sqrt(K) * rms(A) * rms(B),   c = 3
 * (rms over the operands' elements; for these random inputs the error's standard deviation
 * is about 0.4 * 2^-8 * sqrt(K) * rms(A) rms(B), so c = 3 is about 7 standard deviations).
 * Ops that chain GEMMs (attention: scores -> softmax -> P V) use the same form with the
 * chain's reductions and scales named where they are checked.
 *
 * Every comparison has two controls: the bf16 result is not the fp32 one (bf16 really ran:
 * most elements differ), and its negation fails the same bound (the bound is tight enough
 * to see a wrong sign). The GEMM is also checked for exactly the documented semantics: the
 * result equals a double-precision product of the bf16-rounded inputs up to fp32
 * accumulation error, and the rounding itself gives core/base/half.c's bits. Every GEMM implementation is run (oneDNN's bf16 matmul, and the
 * widening path used with OpenBLAS), including shapes past the primitive cache. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/base/half.h"
#include "kernels/cpu/gemm.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

#define U8 (1.0 / 256.0) /* 2^-8 */
#define CB 3.0           /* the bound's constant c */

static af_backend *be;

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static double urand(void) { rs = rs * 6364136223846793005ull + 1442695040888963407ull; return (double)(rs >> 11) / 9007199254740992.0; }
static float *rnd(size_t n, float lo, float hi) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  for (size_t i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * urand());
  return p;
}
static float *dup(const float *x, size_t n) { float *p = malloc(n * sizeof *p); memcpy(p, x, n * sizeof *p); return p; }
static float bfr(float x) { return af_bf16_to_f32(af_f32_to_bf16(x)); }
static double rms(const float *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return n ? sqrt(s / n) : 0;
}

/* got (bf16) vs ref (fp32) within tol, with both controls; prints err/tol */
static void bf16_close(const char *label, const float *got, const float *ref, size_t n, double tol) {
  double maxerr = 0, maxref = 0;
  size_t differ = 0, bad = 0, flip_bad = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - ref[i]);
    if (d > maxerr || isnan(d)) maxerr = d;
    if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    differ += got[i] != ref[i];
    if (!(d <= tol)) {
      if (bad < 4) fprintf(stderr, "  %s[%zu]: bf16 %.9g fp32 %.9g (|diff| %.3g > %.3g)\n", label, i, got[i], ref[i], d, tol);
      bad++;
    }
    flip_bad += !(fabs(-(double)got[i] - ref[i]) <= tol);
  }
  printf("%-52s n=%-6zu max|bf16-fp32| %.3e = %.2f of the bound, %zu differ %s\n", label, n, maxerr, maxerr / tol,
         differ, bad ? "FAIL" : "ok");
  if (bad) af_test_failures++;
  if (differ < n / 2) {
    fprintf(stderr, "  %s: only %zu of %zu elements differ from fp32: did bf16 run?\n", label, differ, n);
    af_test_failures++;
  }
  if (maxref > 10 * tol && flip_bad == 0) {
    fprintf(stderr, "  %s: the negated result passes too: the bound is vacuous\n", label);
    af_test_failures++;
  }
}

static void naive_gemm(int tA, int tB, int M, int N, int K, double alpha, const float *A, int lda, const float *B,
                       int ldb, double beta, float *C, int ldc, int round_inputs) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < K; k++) {
        float a = tA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k], b = tB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        if (round_inputs) a = bfr(a), b = bfr(b);
        s += (double)a * b;
      }
      C[(size_t)i * ldc + j] = (float)(alpha * s + beta * C[(size_t)i * ldc + j]);
    }
}

/* one shape, every transpose, batched with padded strides; bound over the used elements */
static void gemm_case(const char *impl, int M, int N, int K, int batch) {
  for (int t = 0; t < 4; t++) {
    int tA = t & 1, tB = t >> 1;
    int lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 5, ldc = N + 2;
    long sA = (long)(tA ? K : M) * lda + 7, sB = (long)(tB ? N : K) * ldb + 1, sC = (long)M * ldc + 4;
    float *A = rnd(sA * batch, -1, 1), *B = rnd(sB * batch, -1, 1), *C0 = rnd(sC * batch, -1, 1);
    float *C = dup(C0, sC * batch), *Cf = dup(C0, sC * batch), *Cr = dup(C0, sC * batch);
    be->gemm(be, tA, tB, M, N, K, 0.75f, A, lda, sA, B, ldb, sB, -0.5f, C, ldc, sC, batch, AF_PREC_BF16);
    be->gemm(be, tA, tB, M, N, K, 0.75f, A, lda, sA, B, ldb, sB, -0.5f, Cf, ldc, sC, batch, AF_PREC_FP32);
    for (int bi = 0; bi < batch; bi++)
      naive_gemm(tA, tB, M, N, K, 0.75, A + bi * sA, lda, B + bi * sB, ldb, -0.5, Cr + bi * sC, ldc, 1);
    char lab[128];
    /* bound: alpha * c 2^-8 sqrt(K) rms(A) rms(B); inputs uniform in [-1, 1]: rms 1/sqrt(3) */
    double tol = 0.75 * CB * U8 * sqrt((double)K) / 3.0;
    snprintf(lab, sizeof lab, "gemm bf16 %s %dx%dx%d tA=%d tB=%d b=%d", impl, M, N, K, tA, tB, batch);
    bf16_close(lab, C, Cf, sC * batch, tol);
    /* semantics: the double product of the rounded inputs, up to fp32 accumulation */
    snprintf(lab, sizeof lab, "  = rounded inputs, fp32 accumulation (%s)", impl);
    af_test_close(lab, C, Cr, sC * batch, 4e-7 * sqrt((double)K), 1e-6);
    free(A), free(B), free(C0), free(C), free(Cf), free(Cr);
  }
}

static void test_gemm(void) {
  const char *names[8];
  int prev = -1, n = be->gemm_impls(be, names, 8, &prev);
  for (int li = 0; li < n; li++) {
    CHECK_OK(be->gemm_use(be, li));
    char impl[32];
    snprintf(impl, sizeof impl, "%.*s", (int)strcspn(names[li], " ("), names[li]);
    if (strstr(names[li], "matmul")) snprintf(impl, sizeof impl, "oneDNN-matmul");
    gemm_case(impl, 37, 29, 45, 3);  /* batched: per-member GEMMs on the OpenMP threads */
    gemm_case(impl, 150, 70, 260, 1);  /* one threaded GEMM */
  }
  CHECK_OK(be->gemm_use(be, prev));
  printf("%-52s %s; %d matmul primitives cached so far\n", "bf16 GEMMs run by", be->bf16_name, af_matmul_primitives());
}

/* Past the shape cache: many distinct shapes still give the same results as the first
 * time each ran (the runtime-shape primitive serves the rest). */
static void test_many_shapes(void) {
  const int K = 24;
  float *A = rnd(64 * K, -1, 1), *B = rnd(K * 64, -1, 1), *C = rnd(64 * 64, -1, 1), *R = rnd(64 * 64, -1, 1);
  int same = 1, before = af_matmul_primitives();
  for (int rep = 0; rep < 2; rep++)
    for (int M = 1; M <= 64; M++)
      for (int N = 1; N <= 64; N += 1) {
        if (rep == 0 && N > 2) continue;  /* the second pass adds ~4000 new shapes */
        be->gemm(be, 0, 0, M, N, K, 1.0f, A, K, 0, B, 64, 0, 0.0f, C, 64, 0, 1, AF_PREC_BF16);
        naive_gemm(0, 0, M, N, K, 1.0, A, K, B, 64, 0.0, R, 64, 1);
        for (int i = 0; i < M; i++)
          for (int j = 0; j < N; j++) same &= fabsf(C[i * 64 + j] - R[i * 64 + j]) <= 1e-5f;
      }
  printf("%-52s %d primitives (from %d), every result = rounded inputs: %s\n", "4096 shapes through the matmul cache",
         af_matmul_primitives(), before, same ? "ok" : "FAIL");
  CHECK(same);
  free(A), free(B), free(C), free(R);
}

static void test_linear(void) {
  const int N = 67, C = 48, OC = 72;
  float *inp = rnd((size_t)N * C, -1, 1), *w = rnd((size_t)OC * C, -0.5f, 0.5f), *b = rnd(OC, -1, 1);
  float *dout = rnd((size_t)N * OC, -1, 1), *dw0 = rnd((size_t)OC * C, -1, 1), *db0 = rnd(OC, -1, 1);
  float *out[2], *dinp[2], *dw[2], *db[2];
  for (int p = 0; p < 2; p++) {
    af_precision prec = p ? AF_PREC_BF16 : AF_PREC_FP32;
    out[p] = rnd((size_t)N * OC, 0, 1), dinp[p] = rnd((size_t)N * C, 0, 1);
    dw[p] = dup(dw0, (size_t)OC * C), db[p] = dup(db0, OC);
    be->linear_forward(be, out[p], inp, w, b, N, C, OC, prec);
    be->linear_backward(be, dinp[p], dw[p], db[p], dout, inp, AF_STORE_F32, w, N, C, OC, prec);
  }
  /* the input stored in bf16 (what the model keeps for backward under bf16): the same bits
   * as the fp32 input rounded inside the op, with and without dinp */
  uint16_t *inp16 = malloc((size_t)N * C * sizeof *inp16);
  be->to_bf16(be, inp16, inp, (size_t)N * C);
  float *dinp16 = rnd((size_t)N * C, 0, 1), *dw16 = dup(dw0, (size_t)OC * C), *db16 = dup(db0, OC);
  float *dw16b = dup(dw0, (size_t)OC * C), *dw32b = dup(dw0, (size_t)OC * C);
  be->linear_backward(be, dinp16, dw16, db16, dout, inp16, AF_STORE_BF16, w, N, C, OC, AF_PREC_BF16);
  be->linear_backward(be, NULL, dw16b, NULL, dout, inp16, AF_STORE_BF16, w, N, C, OC, AF_PREC_BF16);
  be->linear_backward(be, NULL, dw32b, NULL, dout, inp, AF_STORE_F32, w, N, C, OC, AF_PREC_BF16);
  int same16 = !memcmp(dinp16, dinp[1], (size_t)N * C * sizeof(float)) &&
               !memcmp(dw16, dw[1], (size_t)OC * C * sizeof(float)) && !memcmp(db16, db[1], OC * sizeof(float)) &&
               !memcmp(dw16b, dw32b, (size_t)OC * C * sizeof(float));
  printf("%-52s %s\n", "linear bf16 backward, input stored bf16: same bits", same16 ? "ok" : "FAIL");
  CHECK(same16);
  free(inp16), free(dinp16), free(dw16), free(db16), free(dw16b), free(dw32b);
  double ri = rms(inp, (size_t)N * C), rw = rms(w, (size_t)OC * C), rd = rms(dout, (size_t)N * OC);
  /* forward: K = C over inp, w; dinp: K = OC over dout, w; dw: K = N over dout, inp */
  bf16_close("linear bf16 forward (K = C)", out[1], out[0], (size_t)N * OC, CB * U8 * sqrt(C) * ri * rw);
  bf16_close("linear bf16 dinp (K = OC)", dinp[1], dinp[0], (size_t)N * C, CB * U8 * sqrt(OC) * rd * rw);
  /* dw accumulates onto dw0 in fp32: the difference is the GEMM's alone */
  bf16_close("linear bf16 dw += (K = N)", dw[1], dw[0], (size_t)OC * C, CB * U8 * sqrt(N) * rd * ri);
  CHECK(!memcmp(db[1], db[0], OC * sizeof(float)));  /* db is an fp32 column sum in both */
  printf("%-52s %s\n", "linear bf16 db (fp32 column sums) bit-identical", memcmp(db[1], db[0], OC * sizeof(float)) ? "FAIL" : "ok");
  for (int p = 0; p < 2; p++) free(out[p]), free(dinp[p]), free(dw[p]), free(db[p]);
  free(inp), free(w), free(b), free(dout), free(dw0), free(db0);
}

/* Out of memory for the converted operands (simulated: af_gemm_scratch_limit): every bf16
 * GEMM still computes the rounded inputs' products (af_gemm_unbuffered), where it once fell
 * back to fp32 (af_gemm) or skipped the product (the stored-bf16 dw, the widening path). */
static void test_out_of_scratch(void) {
  const int M = 37, N = 29, K = 45, batch = 3;
  const long sA = (long)M * K, sB = (long)K * N, sC = (long)M * N;
  float *A = rnd(sA * batch, -1, 1), *B = rnd(sB * batch, -1, 1), *C0 = rnd(sC * batch, -1, 1);
  float *C = dup(C0, sC * batch), *Cf = dup(C0, sC * batch), *Cr = dup(C0, sC * batch);
  af_gemm_scratch_limit(1);
  be->gemm(be, 0, 1, M, N, K, 0.75f, A, K, sA, B, K, sB, -0.5f, C, N, sC, batch, AF_PREC_BF16);
  be->gemm(be, 0, 1, M, N, K, 0.75f, A, K, sA, B, K, sB, -0.5f, Cf, N, sC, batch, AF_PREC_FP32);
  for (int bi = 0; bi < batch; bi++)
    naive_gemm(0, 1, M, N, K, 0.75, A + bi * sA, K, B + bi * sB, K, -0.5, Cr + bi * sC, N, 1);
  long differ = 0;
  for (long i = 0; i < sC * batch; i++) differ += C[i] != Cf[i];
  printf("%-52s %ld of %ld differ from fp32\n", "no scratch: gemm bf16 still rounds", differ, sC * batch);
  CHECK(differ > sC * batch / 2);
  af_test_close("no scratch: gemm = rounded inputs, fp32 accumulation", C, Cr, sC * batch, 4e-7 * sqrt((double)K), 1e-6);
  /* the widening path's own fallback: bf16 operands straight in */
  uint16_t *A16 = malloc(sA * sizeof *A16), *B16 = malloc(sB * sizeof *B16);
  be->to_bf16(be, A16, A, sA);
  be->to_bf16(be, B16, B, sB);
  float *D = rnd((size_t)K * N, -1, 1), *Dr = dup(D, (size_t)K * N);
  af_gemm_unbuffered(1, 0, K, N, M, 1.5f, A16, AF_OPD_BF16, K, A16, AF_OPD_BF16, K, 0.0f, D, N);
  naive_gemm(1, 0, K, N, M, 1.5, A, K, A, K, 0.0, Dr, N, 1);
  af_test_close("unbuffered bf16 x bf16, transposed, beta 0", D, Dr, (size_t)K * N, 4e-7 * sqrt((double)M) * 2, 1e-6);
  /* linear backward with the input stored in bf16: dw and dinp as with scratch */
  const int Nr = 67, Ci = 48, OC = 72;
  float *inp = rnd((size_t)Nr * Ci, -1, 1), *w = rnd((size_t)OC * Ci, -0.5f, 0.5f), *dout = rnd((size_t)Nr * OC, -1, 1);
  float *dw0 = rnd((size_t)OC * Ci, -1, 1);
  uint16_t *inp16 = malloc((size_t)Nr * Ci * sizeof *inp16);
  be->to_bf16(be, inp16, inp, (size_t)Nr * Ci);
  float *dinp[2], *dw[2];
  for (int lim = 0; lim < 2; lim++) {
    af_gemm_scratch_limit(lim ? 1 : 0);
    dinp[lim] = rnd((size_t)Nr * Ci, 0, 1), dw[lim] = dup(dw0, (size_t)OC * Ci);
    be->linear_backward(be, dinp[lim], dw[lim], NULL, dout, inp16, AF_STORE_BF16, w, Nr, Ci, OC, AF_PREC_BF16);
  }
  af_gemm_scratch_limit(0);
  af_test_close("no scratch: linear dinp (input stored bf16)", dinp[1], dinp[0], (size_t)Nr * Ci, 4e-7 * sqrt((double)OC), 1e-6);
  af_test_close("no scratch: linear dw += (input stored bf16)", dw[1], dw[0], (size_t)OC * Ci, 4e-7 * sqrt((double)Nr), 1e-6);
  for (int i = 0; i < 2; i++) free(dinp[i]), free(dw[i]);
  free(inp), free(w), free(dout), free(dw0), free(inp16), free(A16), free(B16), free(D), free(Dr);
  free(A), free(B), free(C0), free(C), free(Cf), free(Cr);
}

/* Attention chains GEMMs through the softmax. For one GEMM, rms(C) is about sqrt(K) rms(A)
 * rms(B) for these inputs, so the GEMM bound reads c 2^-8 rms(C): the same bound in the
 * output's own scale, which the chained outputs have at hand. The scores S = scale q k^T
 * (K = HS) are off by about 2^-8 s_S, s_S = scale sqrt(HS) rms(q) rms(k); softmax turns
 * that into a relative error of at most 2 s_S 2^-8 in each probability (dP = P (dS -
 * sum P dS)), which the later GEMMs carry, each adding its own rounding (one unit per GEMM
 * stage: P v in forward; dP = dO v^T then dq = scale dS k, dk = scale dS^T q in backward):
 *     probabilities P:  |bf16 - fp32| <= c 2^-8 (2 s_S) P_fp32       (element by element)
 *     out:              |bf16 - fp32| <= c 2^-8 (1 + 2 s_S) rms(out_fp32)
 *     dqkv:             |bf16 - fp32| <= c 2^-8 (2 + 2 s_S) rms(dqkv_fp32) */
static void prob_close(const char *label, const float *got, const float *ref, size_t n, double rel) {
  double worst = 0;
  size_t bad = 0, differ = 0, zeros_ok = 1;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - ref[i]);
    differ += got[i] != ref[i];
    if (ref[i] == 0.0f) zeros_ok &= got[i] == 0.0f;  /* masked keys: exactly zero in both */
    else if (d / ref[i] > worst) worst = d / ref[i];
    bad += !(d <= rel * ref[i]);
  }
  printf("%-52s n=%-6zu max|bf16-fp32|/P %.3e = %.2f of the bound, %zu differ %s\n", label, n, worst, worst / rel,
         differ, bad || !zeros_ok ? "FAIL" : "ok");
  CHECK(!bad && zeros_ok && differ > n / 2 && rel < 0.5);  /* rel < 0.5: a sign flip (2P) fails */
}

static void test_attention(float p, const char *tag) {
  const int B = 3, T = 33, C = 48, NH = 4, HS = C / NH;
  const size_t BTC = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
  float *qkv = rnd(BTC * 3, -1.5f, 1.5f), *dout = rnd(BTC, -1, 1);
  float *mask = malloc((size_t)B * T * sizeof *mask);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) mask[b * T + t] = b == 0 || (b == 1 && t < 20) || (b == 2 && t != 5 && t < 30);
  float *out[2], *att[2], *dqkv[2];
  float *scratch = calloc(be->attention_scratch_floats(B, T, C, NH), sizeof(float));
  for (int q = 0; q < 2; q++) {
    af_precision prec = q ? AF_PREC_BF16 : AF_PREC_FP32;
    out[q] = rnd(BTC, 0, 1), att[q] = rnd(natt, 0, 1), dqkv[q] = rnd(BTC * 3, 0, 1);
    be->attention_forward(be, out[q], att[q], qkv, AF_STORE_F32, mask, scratch, B, T, C, NH, p, 42, 1000, prec);
    be->attention_backward(be, dqkv[q], dout, qkv, AF_STORE_F32, att[q], mask, scratch, B, T, C, NH, p, 42, 1000,
                           prec);
  }
  /* qkv stored in bf16: the same bits as the fp32 qkv rounded inside the ops */
  uint16_t *qkv16 = malloc(BTC * 3 * sizeof *qkv16);
  be->to_bf16(be, qkv16, qkv, BTC * 3);
  float *out16 = rnd(BTC, 0, 1), *att16 = rnd(natt, 0, 1), *dqkv16 = rnd(BTC * 3, 0, 1);
  be->attention_forward(be, out16, att16, qkv16, AF_STORE_BF16, mask, scratch, B, T, C, NH, p, 42, 1000, AF_PREC_BF16);
  be->attention_backward(be, dqkv16, dout, qkv16, AF_STORE_BF16, att16, mask, scratch, B, T, C, NH, p, 42, 1000,
                         AF_PREC_BF16);
  int same16 = !memcmp(out16, out[1], BTC * sizeof(float)) && !memcmp(att16, att[1], natt * sizeof(float)) &&
               !memcmp(dqkv16, dqkv[1], BTC * 3 * sizeof(float));
  char lab16[96];
  snprintf(lab16, sizeof lab16, "attention bf16 %s, qkv stored bf16: same bits", tag);
  printf("%-52s %s\n", lab16, same16 ? "ok" : "FAIL");
  CHECK(same16);
  free(qkv16), free(out16), free(att16), free(dqkv16);
  const double r = rms(qkv, BTC * 3), sS = (1.0 / sqrt((double)HS)) * sqrt((double)HS) * r * r;  /* s_S */
  char lab[96];
  snprintf(lab, sizeof lab, "attention bf16 %s probabilities", tag);
  prob_close(lab, att[1], att[0], natt, CB * U8 * 2 * sS);
  snprintf(lab, sizeof lab, "attention bf16 %s out", tag);
  bf16_close(lab, out[1], out[0], BTC, CB * U8 * (1 + 2 * sS) * rms(out[0], BTC));
  snprintf(lab, sizeof lab, "attention bf16 %s dqkv", tag);
  bf16_close(lab, dqkv[1], dqkv[0], BTC * 3, CB * U8 * (2 + 2 * sS) * rms(dqkv[0], BTC * 3));
  /* padded keys: exactly zero probability and zero dk, dv, as in fp32 */
  int zero = 1;
  for (int h = 0; h < NH; h++)
    for (int i = 0; i < T; i++) zero &= att[1][(((size_t)1 * NH + h) * T + i) * T + 25] == 0.0f;
  for (int d = 0; d < 2 * C; d++) zero &= dqkv[1][((size_t)1 * T + 25) * 3 * C + C + d] == 0.0f;
  CHECK(zero);
  for (int q = 0; q < 2; q++) free(out[q]), free(att[q]), free(dqkv[q]);
  free(qkv), free(dout), free(mask), free(scratch);
}

/* The operands' rounding (af_f32_to_bf16_rows, vectorised) gives core/base/half.c's bits for
 * every sign and exponent with edge mantissas (ties to even both ways, the largest finite
 * values rounding to Inf, subnormals, Inf, NaN) and for a million random patterns; the
 * threaded path (a big block) and a strided one agree with it too. */
static void test_rounding(void) {
  const uint32_t mant[] = {0, 1, 0x7fff, 0x8000, 0x8001, 0x17fff, 0x18000, 0x18001, 0x7f7fff, 0x7f8000, 0x7fffff};
  size_t n = 0, cap = 2 * 256 * 11 + (1u << 20);
  float *x = malloc(cap * sizeof *x);
  for (uint32_t sgn = 0; sgn < 2; sgn++)
    for (uint32_t e = 0; e < 256; e++)
      for (size_t m = 0; m < sizeof mant / sizeof mant[0]; m++) {
        uint32_t u = sgn << 31 | e << 23 | mant[m];
        memcpy(&x[n++], &u, 4);
      }
  while (n < cap) {
    uint32_t u = (uint32_t)(urand() * 4294967296.0);
    memcpy(&x[n++], &u, 4);
  }
  uint16_t *y = malloc(cap * sizeof *y);
  af_f32_to_bf16_rows(y, 1024, x, 1024, (long)(cap / 1024), 1024);  /* threaded */
  size_t bad = 0;
  for (size_t i = 0; i < cap - cap % 1024; i++) bad += y[i] != af_f32_to_bf16(x[i]);
  af_f32_to_bf16_rows(y, 40, x + 3, 70, 300, 37);  /* strided, small: one thread */
  for (int r = 0; r < 300; r++)
    for (int c = 0; c < 37; c++) bad += y[r * 40 + c] != af_f32_to_bf16(x[3 + r * 70 + c]);
  printf("%-52s %zu values, %zu differ from af_f32_to_bf16 %s\n", "fp32 -> bf16 operand rounding", cap, bad,
         bad ? "FAIL" : "ok");
  CHECK(bad == 0);
  /* the table's to_bf16 (flat, threaded in rows of 4096, with a tail) */
  size_t bad_op = 0, nop = cap - 123;
  be->to_bf16(be, y, x, nop);
  for (size_t i = 0; i < nop; i++) bad_op += y[i] != af_f32_to_bf16(x[i]);
  printf("%-52s %zu values, %zu differ from af_f32_to_bf16 %s\n", "backend to_bf16 (activation storage)", nop, bad_op,
         bad_op ? "FAIL" : "ok");
  bad += bad_op;
  CHECK(bad == 0);
  free(x), free(y);
}

int main(void) {
  af_set_quiet(1);
  if (af_backend_open("cpu", 0, &be) != AF_OK) {
    fprintf(stderr, "cannot open cpu backend: %s\n", af_last_error());
    return 1;
  }
  printf("backend %s, fp32 gemm %s\nbf16: %s (native %d: %s)\n", be->name, be->gemm_name, be->bf16_name,
         be->bf16_native, be->bf16_why);
  test_rounding();
  test_gemm();
  test_linear();
  test_out_of_scratch();
  test_attention(0.0f, "mask p=0");
  test_attention(0.3f, "mask+dropout p=0.3");
  test_many_shapes();
  af_backend_close(be);
  return af_test_done("test_bf16_ops");
}
