/* Every op of the CUDA backend against the CPU backend (fp32, and bf16 compute for the
 * GEMM-bearing ops): the same random inputs go to both,
 * the outputs come back to the host and are compared with a per-op tolerance (max errors
 * printed). Dropout masks must match bit for bit. Exits 77 without a CUDA build or device.
 * Plain C: it sees the backends only through kernels/ops.h and af_backend_open. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/base/half.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

static af_backend *be2[2]; /* [0] cpu (reference), [1] cuda */

/* ---- host helpers ---- */
static uint64_t rng_state = 0x1234567887654321ull;
static float frand(void) { /* uniform in [-1, 1) */
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}
static float *hrand(size_t n, float scale) {
  float *h = malloc((n ? n : 1) * sizeof *h);
  if (!h) { fprintf(stderr, "out of memory\n"); exit(1); }
  for (size_t i = 0; i < n; i++) h[i] = frand() * scale;
  return h;
}
static float *hbuf(size_t n) {
  float *h = calloc(n ? n : 1, sizeof *h);
  if (!h) { fprintf(stderr, "out of memory\n"); exit(1); }
  return h;
}

/* ---- backend buffers: upload a host array / allocate zeros / download ---- */
static void *up(af_backend *be, const void *h, size_t bytes) {
  void *d = NULL;
  CHECK_OK(be->alloc(be, &d, bytes ? bytes : 4));
  if (d && bytes) CHECK_OK(be->to_device(be, d, h, bytes));
  return d;
}
static float *upf(af_backend *be, const float *h, size_t n) { return up(be, h, n * sizeof(float)); }
static float *zeros(af_backend *be, size_t n) {
  void *d = NULL;
  CHECK_OK(be->alloc(be, &d, (n ? n : 1) * sizeof(float)));
  return d;
}
static void down(af_backend *be, float *h, const float *d, size_t n) {
  CHECK_OK(be->sync(be));
  CHECK_OK(be->to_host(be, h, d, n * sizeof(float)));
}
static void release(af_backend *be, void *d) { be->free(be, d); }

/* compare the cuda result [1] against the cpu result [0] */
static void cmp(const char *label, float *got[2], size_t n, double atol, double rtol) {
  af_test_close(label, got[1], got[0], n, atol, rtol);
}

/* ---- GEMM: every transpose combination, batched with strides, beta != 0 ---- */
static void test_gemm(void) {
  const int M = 37, N = 29, K = 53, batch = 3;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      int lda = ta ? M + 3 : K + 1, ldb = tb ? K + 2 : N, ldc = N + 5; /* padded leading dims */
      long sA = (long)lda * (ta ? K : M), sB = (long)ldb * (tb ? N : K), sC = (long)ldc * M;
      float *hA = hrand((size_t)sA * batch, 1), *hB = hrand((size_t)sB * batch, 1), *hC = hrand((size_t)sC * batch, 1);
      float *res[2];
      for (int k = 0; k < 2; k++) {
        af_backend *be = be2[k];
        float *A = upf(be, hA, (size_t)sA * batch), *B = upf(be, hB, (size_t)sB * batch), *C = upf(be, hC, (size_t)sC * batch);
        be->gemm(be, ta, tb, M, N, K, 0.75f, A, lda, sA, B, ldb, sB, 0.5f, C, ldc, sC, batch, AF_PREC_FP32);
        res[k] = hbuf((size_t)sC * batch);
        down(be, res[k], C, (size_t)sC * batch);
        release(be, A); release(be, B); release(be, C);
      }
      char label[64];
      snprintf(label, sizeof label, "gemm transA=%d transB=%d batch=%d", ta, tb, batch);
      cmp(label, res, (size_t)sC * batch, 3e-5, 1e-4);
      /* single (batch = 1) call through the non-batched path */
      for (int k = 0; k < 2; k++) {
        af_backend *be = be2[k];
        float *A = upf(be, hA, (size_t)sA), *B = upf(be, hB, (size_t)sB), *C = upf(be, hC, (size_t)sC);
        be->gemm(be, ta, tb, M, N, K, 1.0f, A, lda, 0, B, ldb, 0, 0.0f, C, ldc, 0, 1, AF_PREC_FP32);
        down(be, res[k], C, (size_t)sC);
        release(be, A); release(be, B); release(be, C);
      }
      snprintf(label, sizeof label, "gemm transA=%d transB=%d batch=1", ta, tb);
      cmp(label, res, (size_t)sC, 3e-5, 1e-4);
      free(res[0]); free(res[1]); free(hA); free(hB); free(hC);
    }
}

/* ---- linear forward/backward; parameter grads accumulate onto nonzero values ---- */
static void test_linear(void) {
  const int N = 67, C = 48, OC = 72;
  float *hin = hrand((size_t)N * C, 1), *hw = hrand((size_t)OC * C, 0.2f), *hb = hrand(OC, 1);
  float *hdout = hrand((size_t)N * OC, 1), *hdw0 = hrand((size_t)OC * C, 1), *hdb0 = hrand(OC, 1);
  float *out[2], *outnb[2], *dinp[2], *dw[2], *db[2], *dw2[2];
  for (int k = 0; k < 2; k++) {
    af_backend *be = be2[k];
    float *in = upf(be, hin, (size_t)N * C), *w = upf(be, hw, (size_t)OC * C), *b = upf(be, hb, OC);
    float *o = zeros(be, (size_t)N * OC), *dout = upf(be, hdout, (size_t)N * OC);
    float *di = zeros(be, (size_t)N * C), *gw = upf(be, hdw0, (size_t)OC * C), *gb = upf(be, hdb0, OC);
    be->linear_forward(be, o, in, w, b, N, C, OC, AF_PREC_FP32);
    out[k] = hbuf((size_t)N * OC); down(be, out[k], o, (size_t)N * OC);
    be->linear_forward(be, o, in, w, NULL, N, C, OC, AF_PREC_FP32);
    outnb[k] = hbuf((size_t)N * OC); down(be, outnb[k], o, (size_t)N * OC);
    be->linear_backward(be, di, gw, gb, dout, in, AF_STORE_F32, w, N, C, OC, AF_PREC_FP32);
    dinp[k] = hbuf((size_t)N * C); down(be, dinp[k], di, (size_t)N * C);
    dw[k] = hbuf((size_t)OC * C); down(be, dw[k], gw, (size_t)OC * C);
    db[k] = hbuf(OC); down(be, db[k], gb, OC);
    /* dinp == NULL and db == NULL: only dw, accumulated a second time */
    be->linear_backward(be, NULL, gw, NULL, dout, in, AF_STORE_F32, w, N, C, OC, AF_PREC_FP32);
    dw2[k] = hbuf((size_t)OC * C); down(be, dw2[k], gw, (size_t)OC * C);
    release(be, in); release(be, w); release(be, b); release(be, o); release(be, dout);
    release(be, di); release(be, gw); release(be, gb);
  }
  cmp("linear_forward out", out, (size_t)N * OC, 1e-5, 1e-4);
  cmp("linear_forward out (no bias)", outnb, (size_t)N * OC, 1e-5, 1e-4);
  cmp("linear_backward dinp", dinp, (size_t)N * C, 1e-5, 1e-4);
  cmp("linear_backward dw (+=)", dw, (size_t)OC * C, 1e-4, 1e-4);
  cmp("linear_backward db (+=)", db, OC, 1e-4, 1e-4);
  cmp("linear_backward dw (+= twice, dinp NULL)", dw2, (size_t)OC * C, 1e-4, 1e-4);
  for (int k = 0; k < 2; k++) { free(out[k]); free(outnb[k]); free(dinp[k]); free(dw[k]); free(db[k]); free(dw2[k]); }
  free(hin); free(hw); free(hb); free(hdout); free(hdw0); free(hdb0);
}

/* ---- embeddings: repeated ids collide in backward ---- */
static void test_embedding(void) {
  const int B = 3, T = 17, C = 40, V = 11, P = 20, TV = 2;
  int32_t ids[B * T], types[B * T];
  for (int i = 0; i < B * T; i++) {
    ids[i] = (int32_t)((i * 7 + i / 5) % V);
    types[i] = (int32_t)((i / 3) % TV);
  }
  float *hwte = hrand((size_t)V * C, 1), *hwpe = hrand((size_t)P * C, 1), *hwtt = hrand((size_t)TV * C, 1);
  float *hdout = hrand((size_t)B * T * C, 1), *hg0 = hrand((size_t)V * C, 1);
  float *out[2], *outnt[2], *dwte[2], *dwpe[2], *dwtt[2];
  for (int k = 0; k < 2; k++) {
    af_backend *be = be2[k];
    int32_t *dids = up(be, ids, sizeof ids), *dtypes = up(be, types, sizeof types);
    float *wte = upf(be, hwte, (size_t)V * C), *wpe = upf(be, hwpe, (size_t)P * C), *wtt = upf(be, hwtt, (size_t)TV * C);
    float *o = zeros(be, (size_t)B * T * C), *dout = upf(be, hdout, (size_t)B * T * C);
    float *gte = upf(be, hg0, (size_t)V * C), *gpe = zeros(be, (size_t)P * C), *gtt = zeros(be, (size_t)TV * C);
    be->embedding_forward(be, o, dids, dtypes, wte, wpe, wtt, B, T, C);
    out[k] = hbuf((size_t)B * T * C); down(be, out[k], o, (size_t)B * T * C);
    be->embedding_forward(be, o, dids, NULL, wte, wpe, wtt, B, T, C);
    outnt[k] = hbuf((size_t)B * T * C); down(be, outnt[k], o, (size_t)B * T * C);
    be->embedding_backward(be, gte, gpe, gtt, dout, dids, dtypes, B, T, C);
    dwte[k] = hbuf((size_t)V * C); down(be, dwte[k], gte, (size_t)V * C);
    dwpe[k] = hbuf((size_t)P * C); down(be, dwpe[k], gpe, (size_t)P * C);
    dwtt[k] = hbuf((size_t)TV * C); down(be, dwtt[k], gtt, (size_t)TV * C);
    release(be, dids); release(be, dtypes); release(be, wte); release(be, wpe); release(be, wtt);
    release(be, o); release(be, dout); release(be, gte); release(be, gpe); release(be, gtt);
  }
  cmp("embedding_forward out", out, (size_t)B * T * C, 1e-6, 1e-6);
  cmp("embedding_forward out (type_ids NULL)", outnt, (size_t)B * T * C, 1e-6, 1e-6);
  cmp("embedding_backward dwte (+=)", dwte, (size_t)V * C, 1e-5, 1e-5);
  cmp("embedding_backward dwpe (+=)", dwpe, (size_t)P * C, 1e-5, 1e-5);
  cmp("embedding_backward dwtt (+=)", dwtt, (size_t)TV * C, 1e-5, 1e-5);
  for (int k = 0; k < 2; k++) { free(out[k]); free(outnt[k]); free(dwte[k]); free(dwpe[k]); free(dwtt[k]); }
  free(hwte); free(hwpe); free(hwtt); free(hdout); free(hg0);
}

/* ---- layernorm (C not a multiple of 32, rows with an offset mean) ---- */
static void test_layernorm(void) {
  const int N = 45, C = 100;
  float *hin = hrand((size_t)N * C, 2), *hw = hrand(C, 1), *hb = hrand(C, 1), *hdout = hrand((size_t)N * C, 1);
  float *hdw0 = hrand(C, 1), *hdb0 = hrand(C, 1);
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) hin[(size_t)n * C + c] += (float)(n % 5) - 2.0f;
  float *out[2], *mean[2], *rstd[2], *dinp[2], *dw[2], *db[2];
  for (int k = 0; k < 2; k++) {
    af_backend *be = be2[k];
    float *in = upf(be, hin, (size_t)N * C), *w = upf(be, hw, C), *b = upf(be, hb, C);
    float *o = zeros(be, (size_t)N * C), *m = zeros(be, N), *r = zeros(be, N);
    float *dout = upf(be, hdout, (size_t)N * C), *di = zeros(be, (size_t)N * C);
    float *gw = upf(be, hdw0, C), *gb = upf(be, hdb0, C);
    be->layernorm_forward(be, o, m, r, in, w, b, N, C, 1e-12f);
    out[k] = hbuf((size_t)N * C); down(be, out[k], o, (size_t)N * C);
    mean[k] = hbuf(N); down(be, mean[k], m, N);
    rstd[k] = hbuf(N); down(be, rstd[k], r, N);
    be->layernorm_backward(be, di, gw, gb, dout, in, w, m, r, N, C);
    dinp[k] = hbuf((size_t)N * C); down(be, dinp[k], di, (size_t)N * C);
    dw[k] = hbuf(C); down(be, dw[k], gw, C);
    db[k] = hbuf(C); down(be, db[k], gb, C);
    release(be, in); release(be, w); release(be, b); release(be, o); release(be, m); release(be, r);
    release(be, dout); release(be, di); release(be, gw); release(be, gb);
  }
  cmp("layernorm_forward out", out, (size_t)N * C, 1e-5, 1e-5);
  cmp("layernorm_forward mean", mean, N, 1e-6, 1e-6);
  cmp("layernorm_forward rstd", rstd, N, 1e-6, 1e-5);
  cmp("layernorm_backward dinp", dinp, (size_t)N * C, 1e-5, 1e-4);
  cmp("layernorm_backward dw (+=)", dw, C, 1e-4, 1e-4);
  cmp("layernorm_backward db (+=)", db, C, 1e-4, 1e-4);
  for (int k = 0; k < 2; k++) { free(out[k]); free(mean[k]); free(rstd[k]); free(dinp[k]); free(dw[k]); free(db[k]); }
  free(hin); free(hw); free(hb); free(hdout); free(hdw0); free(hdb0);
}

/* ---- GELU (both forms) and tanh ---- */
static void test_activations(void) {
  const size_t n = 10007;
  float *hin = hrand(n, 5), *hdout = hrand(n, 1);
  for (int kind = 0; kind < 2; kind++) {
    float *out[2], *dinp[2];
    for (int k = 0; k < 2; k++) {
      af_backend *be = be2[k];
      float *in = upf(be, hin, n), *dout = upf(be, hdout, n), *o = zeros(be, n), *di = zeros(be, n);
      be->gelu_forward(be, o, in, n, (af_gelu_kind)kind);
      be->gelu_backward(be, di, dout, in, n, (af_gelu_kind)kind);
      out[k] = hbuf(n); down(be, out[k], o, n);
      dinp[k] = hbuf(n); down(be, dinp[k], di, n);
      release(be, in); release(be, dout); release(be, o); release(be, di);
    }
    cmp(kind == AF_GELU_TANH ? "gelu_forward (tanh)" : "gelu_forward (erf)", out, n, 2e-6, 1e-5);
    cmp(kind == AF_GELU_TANH ? "gelu_backward (tanh)" : "gelu_backward (erf)", dinp, n, 2e-6, 1e-5);
    for (int k = 0; k < 2; k++) { free(out[k]); free(dinp[k]); }
  }
  float *out[2], *dinp[2];
  for (int k = 0; k < 2; k++) {
    af_backend *be = be2[k];
    float *in = upf(be, hin, n), *dout = upf(be, hdout, n), *o = zeros(be, n), *di = zeros(be, n);
    be->tanh_forward(be, o, in, n);
    out[k] = hbuf(n); down(be, out[k], o, n);
    /* backward from the cpu's forward output, so only the backward formula is compared */
    float *y0 = upf(be, out[0], n);
    be->tanh_backward(be, di, dout, y0, n);
    dinp[k] = hbuf(n); down(be, dinp[k], di, n);
    release(be, in); release(be, dout); release(be, o); release(be, di); release(be, y0);
  }
  cmp("tanh_forward", out, n, 2e-6, 1e-5);
  cmp("tanh_backward", dinp, n, 1e-6, 1e-6);
  for (int k = 0; k < 2; k++) { free(out[k]); free(dinp[k]); }
  free(hin); free(hdout);
}

/* ---- attention with padding (a masked key inside the sequence, a trailing pad, and a
 * sequence with no real token), with and without dropout ---- */
static void test_attention(void) {
  const int B = 4, T = 37, C = 48, NH = 4;
  const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
  float *hqkv = hrand(nqkv, 2), *hdout = hrand(nout, 1);
  float hmask[B * T];
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      float m = 1.0f;
      if (b == 1 && t >= T - 13) m = 0.0f;            /* trailing padding */
      if (b == 2 && (t == 3 || t >= 30)) m = 0.0f;    /* a hole and padding */
      if (b == 3) m = 0.0f;                           /* nothing real */
      hmask[b * T + t] = m;
    }
  const float ps[2] = {0.0f, 0.1f};
  for (int pi = 0; pi < 2; pi++) {
    float p = ps[pi];
    uint64_t seed = 0x5eed, offset = (1ull << 33) + 12345;
    float *out[2], *att[2], *dqkv[2];
    for (int k = 0; k < 2; k++) {
      af_backend *be = be2[k];
      size_t ns = be->attention_scratch_floats(B, T, C, NH);
      float *qkv = upf(be, hqkv, nqkv), *mask = upf(be, hmask, (size_t)B * T), *dout = upf(be, hdout, nout);
      float *o = zeros(be, nout), *a = zeros(be, natt), *dq = zeros(be, nqkv), *scratch = zeros(be, ns);
      be->attention_forward(be, o, a, qkv, AF_STORE_F32, mask, scratch, B, T, C, NH, p, seed, offset, AF_PREC_FP32);
      out[k] = hbuf(nout); down(be, out[k], o, nout);
      att[k] = hbuf(natt); down(be, att[k], a, natt);
      /* poison dqkv: backward must overwrite all of it */
      float *poison = hrand(nqkv, 100);
      CHECK_OK(be->to_device(be, dq, poison, nqkv * sizeof(float)));
      free(poison);
      be->attention_backward(be, dq, dout, qkv, AF_STORE_F32, a, mask, scratch, B, T, C, NH, p, seed, offset,
                             AF_PREC_FP32);
      dqkv[k] = hbuf(nqkv); down(be, dqkv[k], dq, nqkv);
      release(be, qkv); release(be, mask); release(be, dout); release(be, o); release(be, a);
      release(be, dq); release(be, scratch);
    }
    char label[64];
    snprintf(label, sizeof label, "attention_forward out (p=%.1f)", p);
    cmp(label, out, nout, 2e-5, 1e-3);
    snprintf(label, sizeof label, "attention_forward att (p=%.1f)", p);
    cmp(label, att, natt, 1e-6, 1e-4);
    snprintf(label, sizeof label, "attention_backward dqkv (p=%.1f)", p);
    cmp(label, dqkv, nqkv, 2e-5, 1e-3);
    for (int k = 0; k < 2; k++) { free(out[k]); free(att[k]); free(dqkv[k]); }
  }
  free(hqkv); free(hdout);
}

/* ---- bf16 compute (AF_PREC_BF16): cuBLAS GemmEx against oneDNN's bf16 matmul. Both round
 * the same inputs to bf16 and multiply them exactly into fp32 accumulators, so GEMMs and
 * linears differ only in summation order (fp32-level tolerances). Attention's probabilities
 * come from two fp32 softmaxes (expf vs the CPU's polynomial exp) before they are rounded
 * to bf16, so a probability can land one bf16 step (2^-8 of itself) apart: tolerances of
 * bf16's size there. ---- */
static void test_bf16(void) {
  printf("bf16: cpu %s; cuda %s (native %d: %s)\n", be2[0]->bf16_name, be2[1]->bf16_name, be2[1]->bf16_native,
         be2[1]->bf16_why);
  const int M = 37, N = 29, K = 53, batch = 3;
  for (int t = 0; t < 4; t++) {
    int ta = t & 1, tb = t >> 1, lda = ta ? M + 3 : K + 1, ldb = tb ? K + 2 : N, ldc = N + 5;
    long sA = (long)lda * (ta ? K : M), sB = (long)ldb * (tb ? N : K), sC = (long)ldc * M;
    float *hA = hrand((size_t)sA * batch, 1), *hB = hrand((size_t)sB * batch, 1), *hC = hrand((size_t)sC * batch, 1);
    float *res[2];
    for (int k = 0; k < 2; k++) {
      af_backend *be = be2[k];
      float *A = upf(be, hA, (size_t)sA * batch), *B = upf(be, hB, (size_t)sB * batch), *C = upf(be, hC, (size_t)sC * batch);
      be->gemm(be, ta, tb, M, N, K, 0.75f, A, lda, sA, B, ldb, sB, 0.5f, C, ldc, sC, batch, AF_PREC_BF16);
      res[k] = hbuf((size_t)sC * batch);
      down(be, res[k], C, (size_t)sC * batch);
      release(be, A); release(be, B); release(be, C);
    }
    char label[64];
    snprintf(label, sizeof label, "gemm bf16 transA=%d transB=%d batch=%d", ta, tb, batch);
    cmp(label, res, (size_t)sC * batch, 5e-5, 1e-4);
    free(res[0]); free(res[1]); free(hA); free(hB); free(hC);
  }
  const int NR = 67, CI = 48, OC = 72;
  float *hin = hrand((size_t)NR * CI, 1), *hw = hrand((size_t)OC * CI, 0.2f), *hb = hrand(OC, 1);
  float *hdout = hrand((size_t)NR * OC, 1), *hdw0 = hrand((size_t)OC * CI, 1);
  float *out[2], *dinp[2], *dw[2];
  for (int k = 0; k < 2; k++) {
    af_backend *be = be2[k];
    float *in = upf(be, hin, (size_t)NR * CI), *w = upf(be, hw, (size_t)OC * CI), *b = upf(be, hb, OC);
    float *o = zeros(be, (size_t)NR * OC), *dout = upf(be, hdout, (size_t)NR * OC);
    float *di = zeros(be, (size_t)NR * CI), *gw = upf(be, hdw0, (size_t)OC * CI);
    be->linear_forward(be, o, in, w, b, NR, CI, OC, AF_PREC_BF16);
    be->linear_backward(be, di, gw, NULL, dout, in, AF_STORE_F32, w, NR, CI, OC, AF_PREC_BF16);
    out[k] = hbuf((size_t)NR * OC); down(be, out[k], o, (size_t)NR * OC);
    dinp[k] = hbuf((size_t)NR * CI); down(be, dinp[k], di, (size_t)NR * CI);
    dw[k] = hbuf((size_t)OC * CI); down(be, dw[k], gw, (size_t)OC * CI);
    release(be, in); release(be, w); release(be, b); release(be, o); release(be, dout); release(be, di); release(be, gw);
  }
  cmp("linear_forward bf16", out, (size_t)NR * OC, 2e-5, 1e-4);
  cmp("linear_backward bf16 dinp", dinp, (size_t)NR * CI, 2e-5, 1e-4);
  cmp("linear_backward bf16 dw (+=)", dw, (size_t)OC * CI, 1e-4, 1e-4);
  for (int k = 0; k < 2; k++) { free(out[k]); free(dinp[k]); free(dw[k]); }
  free(hin); free(hw); free(hb); free(hdout); free(hdw0);
  const int B = 3, T = 37, C = 48, NH = 4;
  const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C;
  float *hqkv = hrand(nqkv, 2), *hd = hrand(nout, 1), hmask[B * T];
  for (int i = 0; i < B * T; i++) hmask[i] = !(i / T == 1 && i % T >= 25);
  for (int pi = 0; pi < 2; pi++) {
    float p = pi ? 0.1f : 0.0f, *ao[2], *aq[2];
    for (int k = 0; k < 2; k++) {
      af_backend *be = be2[k];
      float *qkv = upf(be, hqkv, nqkv), *mask = upf(be, hmask, (size_t)B * T), *dout = upf(be, hd, nout);
      float *o = zeros(be, nout), *a = zeros(be, (size_t)B * NH * T * T), *dq = zeros(be, nqkv);
      float *scratch = zeros(be, be->attention_scratch_floats(B, T, C, NH));
      be->attention_forward(be, o, a, qkv, AF_STORE_F32, mask, scratch, B, T, C, NH, p, 7, 99, AF_PREC_BF16);
      be->attention_backward(be, dq, dout, qkv, AF_STORE_F32, a, mask, scratch, B, T, C, NH, p, 7, 99, AF_PREC_BF16);
      ao[k] = hbuf(nout); down(be, ao[k], o, nout);
      aq[k] = hbuf(nqkv); down(be, aq[k], dq, nqkv);
      release(be, qkv); release(be, mask); release(be, dout); release(be, o); release(be, a); release(be, dq);
      release(be, scratch);
    }
    char label[64];
    snprintf(label, sizeof label, "attention_forward bf16 out (p=%.1f)", p);
    cmp(label, ao, nout, 2e-3, 1e-2);
    snprintf(label, sizeof label, "attention_backward bf16 dqkv (p=%.1f)", p);
    cmp(label, aq, nqkv, 2e-3, 1e-2);
    for (int k = 0; k < 2; k++) { free(ao[k]); free(aq[k]); }
  }
  free(hqkv); free(hd);
}

/* ---- bf16 storage of saved GEMM operands (AF_STORE_BF16), on each backend: to_bf16 gives
 * core/base/half.c's bits for finite values, and linear backward and attention given the
 * stored bf16 operand match the same ops rounding the fp32 one themselves (the same bf16
 * GEMM inputs: equal up to the GEMM library's choice of algorithm, 1e-6). ---- */
static void test_bf16_storage(void) {
  const int NR = 67, CI = 48, OC = 72, B = 3, T = 37, C = 48, NH = 4;
  const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
  float *hin = hrand((size_t)NR * CI, 1), *hw = hrand((size_t)OC * CI, 0.2f), *hdout = hrand((size_t)NR * OC, 1);
  float *hqkv = hrand(nqkv, 2), *hd = hrand(nout, 1), hmask[B * T];
  for (int i = 0; i < B * T; i++) hmask[i] = !(i / T == 1 && i % T >= 25);
  for (int k = 0; k < 2; k++) {
    af_backend *be = be2[k];
    char label[96];
    /* rounding */
    uint16_t *h16 = malloc(nqkv * sizeof *h16);
    float *qkv = upf(be, hqkv, nqkv);
    uint16_t *q16 = (uint16_t *)zeros(be, (nqkv + 1) / 2);
    be->to_bf16(be, q16, qkv, nqkv);
    CHECK_OK(be->sync(be));
    CHECK_OK(be->to_host(be, h16, q16, nqkv * sizeof *h16));
    size_t bad = 0;
    for (size_t i = 0; i < nqkv; i++) bad += h16[i] != af_f32_to_bf16(hqkv[i]);
    printf("%s: to_bf16 of %zu values: %zu differ from af_f32_to_bf16 %s\n", be->name, nqkv, bad, bad ? "FAIL" : "ok");
    CHECK(bad == 0);
    /* linear backward: fp32 input vs the same input stored bf16 */
    float *in = upf(be, hin, (size_t)NR * CI), *w = upf(be, hw, (size_t)OC * CI), *dout = upf(be, hdout, (size_t)NR * OC);
    uint16_t *in16 = (uint16_t *)zeros(be, ((size_t)NR * CI + 1) / 2);
    be->to_bf16(be, in16, in, (size_t)NR * CI);
    float *di[2], *gw[2], *r_di[2], *r_gw[2];
    for (int st = 0; st < 2; st++) {
      di[st] = zeros(be, (size_t)NR * CI), gw[st] = zeros(be, (size_t)OC * CI);
      be->linear_backward(be, di[st], gw[st], NULL, dout, st ? (const void *)in16 : in, st ? AF_STORE_BF16 : AF_STORE_F32,
                          w, NR, CI, OC, AF_PREC_BF16);
      r_di[st] = hbuf((size_t)NR * CI), r_gw[st] = hbuf((size_t)OC * CI);
      down(be, r_di[st], di[st], (size_t)NR * CI), down(be, r_gw[st], gw[st], (size_t)OC * CI);
    }
    snprintf(label, sizeof label, "%s: linear_backward bf16 dinp, input stored bf16", be->name);
    af_test_close(label, r_di[1], r_di[0], (size_t)NR * CI, 0, 1e-6);
    snprintf(label, sizeof label, "%s: linear_backward bf16 dw, input stored bf16", be->name);
    af_test_close(label, r_gw[1], r_gw[0], (size_t)OC * CI, 0, 1e-6);
    /* attention: fp32 qkv vs qkv stored bf16, forward and backward */
    float *mask = upf(be, hmask, (size_t)B * T), *dA = upf(be, hd, nout);
    float *scratch = zeros(be, be->attention_scratch_floats(B, T, C, NH));
    float *r_o[2], *r_a[2], *r_dq[2];
    for (int st = 0; st < 2; st++) {
      const void *src = st ? (const void *)q16 : qkv;
      af_store sto = st ? AF_STORE_BF16 : AF_STORE_F32;
      float *o = zeros(be, nout), *a = zeros(be, natt), *dq = zeros(be, nqkv);
      be->attention_forward(be, o, a, src, sto, mask, scratch, B, T, C, NH, 0.1f, 7, 99, AF_PREC_BF16);
      be->attention_backward(be, dq, dA, src, sto, a, mask, scratch, B, T, C, NH, 0.1f, 7, 99, AF_PREC_BF16);
      r_o[st] = hbuf(nout), r_a[st] = hbuf(natt), r_dq[st] = hbuf(nqkv);
      down(be, r_o[st], o, nout), down(be, r_a[st], a, natt), down(be, r_dq[st], dq, nqkv);
      release(be, o); release(be, a); release(be, dq);
    }
    snprintf(label, sizeof label, "%s: attention bf16 out, qkv stored bf16", be->name);
    af_test_close(label, r_o[1], r_o[0], nout, 0, 1e-6);
    snprintf(label, sizeof label, "%s: attention bf16 probabilities, qkv stored bf16", be->name);
    af_test_close(label, r_a[1], r_a[0], natt, 0, 1e-6);
    snprintf(label, sizeof label, "%s: attention bf16 dqkv, qkv stored bf16", be->name);
    af_test_close(label, r_dq[1], r_dq[0], nqkv, 0, 1e-6);
    for (int st = 0; st < 2; st++) {
      release(be, di[st]); release(be, gw[st]);
      free(r_di[st]); free(r_gw[st]); free(r_o[st]); free(r_a[st]); free(r_dq[st]);
    }
    release(be, qkv); release(be, q16); release(be, in); release(be, w); release(be, dout); release(be, in16);
    release(be, mask); release(be, dA); release(be, scratch);
    free(h16);
  }
  free(hin); free(hw); free(hdout); free(hqkv); free(hd);
}

/* ---- dropout: the masks must be identical, the values bit-exact ---- */
static void test_dropout(void) {
  const size_t n = 100003;
  float *hin = hrand(n, 3);
  const float ps[3] = {0.1f, 0.5f, 0.0f};
  for (int pi = 0; pi < 3; pi++) {
    float p = ps[pi];
    uint64_t seed = 42 + (uint64_t)pi, offset = (1ull << 40) + 7;
    float *out[2], *din[2], *inpl[2];
    for (int k = 0; k < 2; k++) {
      af_backend *be = be2[k];
      float *in = upf(be, hin, n), *o = zeros(be, n), *d = zeros(be, n);
      be->dropout_forward(be, o, in, n, p, seed, offset);
      be->dropout_backward(be, d, in, n, p, seed, offset);
      out[k] = hbuf(n); down(be, out[k], o, n);
      din[k] = hbuf(n); down(be, din[k], d, n);
      be->dropout_forward(be, in, in, n, p, seed, offset + 3); /* in place */
      inpl[k] = hbuf(n); down(be, inpl[k], in, n);
      release(be, in); release(be, o); release(be, d);
    }
    char label[64];
    snprintf(label, sizeof label, "dropout_forward p=%.1f (bit-exact)", p);
    cmp(label, out, n, 0, 0);
    snprintf(label, sizeof label, "dropout_backward p=%.1f (bit-exact)", p);
    cmp(label, din, n, 0, 0);
    snprintf(label, sizeof label, "dropout_forward in place p=%.1f (bit-exact)", p);
    cmp(label, inpl, n, 0, 0);
    if (p > 0) { /* the kept fraction is about 1-p: the RNG is not degenerate */
      size_t kept = 0;
      for (size_t i = 0; i < n; i++) kept += out[1][i] != 0.0f;
      double frac = (double)kept / n;
      CHECK(fabs(frac - (1.0 - p)) < 0.01);
    }
    for (int k = 0; k < 2; k++) { free(out[k]); free(din[k]); free(inpl[k]); }
  }
  free(hin);
}

/* ---- add / accumulate / scale / cls: exact ---- */
static void test_elementwise(void) {
  const int B = 5, T = 9, C = 33;
  const size_t n = (size_t)B * T * C;
  float *ha = hrand(n, 1), *hb = hrand(n, 1), *hdc = hrand((size_t)B * C, 1);
  float *add[2], *acc[2], *scl[2], *cls[2], *dcls[2];
  for (int k = 0; k < 2; k++) {
    af_backend *be = be2[k];
    float *a = upf(be, ha, n), *b = upf(be, hb, n), *o = zeros(be, n), *dc = upf(be, hdc, (size_t)B * C);
    float *co = zeros(be, (size_t)B * C), *dh = upf(be, hb, n); /* dh starts nonzero: must be overwritten */
    be->add(be, o, a, b, n);
    add[k] = hbuf(n); down(be, add[k], o, n);
    be->accumulate(be, o, a, n);
    acc[k] = hbuf(n); down(be, acc[k], o, n);
    be->scale(be, o, -0.37f, n);
    scl[k] = hbuf(n); down(be, scl[k], o, n);
    be->cls_forward(be, co, a, B, T, C);
    cls[k] = hbuf((size_t)B * C); down(be, cls[k], co, (size_t)B * C);
    be->cls_backward(be, dh, dc, B, T, C);
    dcls[k] = hbuf(n); down(be, dcls[k], dh, n);
    release(be, a); release(be, b); release(be, o); release(be, dc); release(be, co); release(be, dh);
  }
  cmp("add", add, n, 0, 0);
  cmp("accumulate", acc, n, 0, 0);
  cmp("scale", scl, n, 0, 0);
  cmp("cls_forward", cls, (size_t)B * C, 0, 0);
  cmp("cls_backward", dcls, n, 0, 0);
  for (int k = 0; k < 2; k++) { free(add[k]); free(acc[k]); free(scl[k]); free(cls[k]); free(dcls[k]); }
  free(ha); free(hb); free(hdc);
}

/* ---- losses (one target out of range: ignored) ---- */
static void test_losses(void) {
  const int B = 7, NL = 5;
  float *hlogits = hrand((size_t)B * NL, 4), htargets[B], *hpred = hrand(B, 2), *hy = hrand(B, 2);
  for (int b = 0; b < B; b++) htargets[b] = (float)(b % NL);
  htargets[3] = -1.0f;
  float *loss[2], *probs[2], *dlog[2], *mse[2], *dmse[2];
  for (int k = 0; k < 2; k++) {
    af_backend *be = be2[k];
    float *lg = upf(be, hlogits, (size_t)B * NL), *tg = upf(be, htargets, B), *pr = zeros(be, (size_t)B * NL);
    float *ls = zeros(be, B), *dl = zeros(be, (size_t)B * NL), *pd = upf(be, hpred, B), *y = upf(be, hy, B);
    float *ms = zeros(be, B), *dm = zeros(be, B);
    be->cross_entropy_forward(be, ls, pr, lg, tg, B, NL);
    be->cross_entropy_backward(be, dl, pr, tg, B, NL, 1.0f / B);
    be->mse_forward(be, ms, pd, y, B);
    be->mse_backward(be, dm, pd, y, B, 1.0f / B);
    loss[k] = hbuf(B); down(be, loss[k], ls, B);
    probs[k] = hbuf((size_t)B * NL); down(be, probs[k], pr, (size_t)B * NL);
    dlog[k] = hbuf((size_t)B * NL); down(be, dlog[k], dl, (size_t)B * NL);
    mse[k] = hbuf(B); down(be, mse[k], ms, B);
    dmse[k] = hbuf(B); down(be, dmse[k], dm, B);
    release(be, lg); release(be, tg); release(be, pr); release(be, ls); release(be, dl);
    release(be, pd); release(be, y); release(be, ms); release(be, dm);
  }
  cmp("cross_entropy_forward losses", loss, B, 1e-6, 1e-6);
  cmp("cross_entropy_forward probs", probs, (size_t)B * NL, 1e-7, 1e-6);
  cmp("cross_entropy_backward dlogits", dlog, (size_t)B * NL, 1e-7, 1e-6);
  cmp("mse_forward losses", mse, B, 1e-6, 1e-6);
  cmp("mse_backward dpreds", dmse, B, 1e-7, 1e-6);
  for (int k = 0; k < 2; k++) { free(loss[k]); free(probs[k]); free(dlog[k]); free(mse[k]); free(dmse[k]); }
  free(hlogits); free(hpred); free(hy);
}

/* ---- AdamW: three steps with bias correction, then one BERTAdam step ---- */
static void test_adamw(void) {
  const size_t n = 5000;
  float *hp = hrand(n, 1), *hg = hrand(n, 0.1f);
  float *par[2], *m1[2], *v1[2];
  for (int k = 0; k < 2; k++) {
    af_backend *be = be2[k];
    float *p = upf(be, hp, n), *g = upf(be, hg, n), *m = zeros(be, n), *v = zeros(be, n);
    for (int t = 1; t <= 3; t++) {
      float bc1 = 1.0f - powf(0.9f, (float)t), bc2 = 1.0f - powf(0.999f, (float)t);
      be->adamw_update(be, p, g, m, v, n, 2e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, bc1, bc2);
      be->scale(be, g, -0.7f, n);
    }
    be->adamw_update(be, p, g, m, v, n, 2e-3f, 0.9f, 0.999f, 1e-6f, 0.0f, 1.0f, 1.0f);
    par[k] = hbuf(n); down(be, par[k], p, n);
    m1[k] = hbuf(n); down(be, m1[k], m, n);
    v1[k] = hbuf(n); down(be, v1[k], v, n);
    release(be, p); release(be, g); release(be, m); release(be, v);
  }
  cmp("adamw_update params", par, n, 1e-6, 1e-5);
  cmp("adamw_update m", m1, n, 1e-7, 1e-5);
  cmp("adamw_update v", v1, n, 1e-9, 1e-5);
  for (int k = 0; k < 2; k++) { free(par[k]); free(m1[k]); free(v1[k]); }
  free(hp); free(hg);
}

/* ---- segment norms: an empty segment, a long one, NULL outputs; more segments than
 * one CUDA chunk (1024) ---- */
static void test_segment_norms(void) {
  enum { NSEG = 1500 };
  static size_t off[NSEG + 1];
  off[0] = 0;
  for (int s = 0; s < NSEG; s++) {
    size_t len = s == 1 ? 0 : s == 2 ? 300000 : (size_t)(s % 97) * 13 + 1;
    off[s + 1] = off[s] + len;
  }
  size_t n = off[NSEG];
  float *hx = hrand(n, 1);
  static double l1[2][NSEG], l2[2][NSEG], l2only[2][NSEG];
  for (int k = 0; k < 2; k++) {
    af_backend *be = be2[k];
    float *x = upf(be, hx, n);
    CHECK_OK(be->segment_norms(be, l1[k], l2[k], x, off, NSEG));
    CHECK_OK(be->segment_norms(be, NULL, l2only[k], x, off + 2, 5)); /* a sub-range, l1 NULL */
    release(be, x);
  }
  af_test_close_d("segment_norms l1", l1[1], l1[0], NSEG, 1e-9, 1e-10);
  af_test_close_d("segment_norms l2sq", l2[1], l2[0], NSEG, 1e-9, 1e-10);
  af_test_close_d("segment_norms l2sq (sub-range, l1 NULL)", l2only[1], l2only[0], 5, 1e-9, 1e-10);
  free(hx);
}

/* ---- CUDA only: one GEMM implementation (cuBLAS), named by gemm_name ---- */
static void test_gemm_impls(void) {
  af_backend *be = be2[1];
  const char *names[4] = {NULL};
  int cur = -1, n = be->gemm_impls(be, names, 4, &cur);
  CHECK(n == 1 && cur == 0 && names[0] && !strcmp(names[0], be->gemm_name));
  CHECK_OK(be->gemm_use(be, 0));
  CHECK(be->gemm_use(be, 1) == AF_ERR_ARG);
  printf("gemm implementations: %d (%s)\n", n, names[0] ? names[0] : "?");
}

/* ---- CUDA only: a cuBLAS error surfaces at sync as AF_ERR_BACKEND, then clears ---- */
static void test_error_reporting(void) {
  af_backend *be = be2[1];
  float *A = zeros(be, 64), *B = zeros(be, 64), *C = zeros(be, 64);
  be->gemm(be, 0, 0, 4, 4, 4, 1.0f, A, 0 /* lda < K: invalid */, 0, B, 4, 0, 0.0f, C, 4, 0, 1, AF_PREC_FP32);
  af_status s = be->sync(be);
  CHECK(s == AF_ERR_BACKEND);
  printf("error reporting: sync after a bad gemm -> %s: %s\n", af_status_name(s), af_last_error());
  CHECK(be->sync(be) == AF_OK);
  release(be, A); release(be, B); release(be, C);
}

int main(void) {
  if (!af_backend_cuda_built()) af_test_skip("no CUDA device (this build has no CUDA backend)");
  af_status s = af_backend_open("cuda", 0, &be2[1]);
  if (s == AF_ERR_UNSUPPORTED) af_test_skip("no CUDA device");
  if (s != AF_OK) {
    fprintf(stderr, "opening the cuda backend failed: %s\n", af_last_error());
    return 1;
  }
  if (af_backend_open("cpu", 0, &be2[0]) != AF_OK) {
    fprintf(stderr, "opening the cpu backend failed: %s\n", af_last_error());
    return 1;
  }
  printf("reference: %s (%s); tested: %s (%s)\n", be2[0]->name, be2[0]->gemm_name, be2[1]->name, be2[1]->gemm_name);
  test_gemm();
  test_linear();
  test_embedding();
  test_layernorm();
  test_activations();
  test_attention();
  test_bf16();
  test_bf16_storage();
  test_dropout();
  test_elementwise();
  test_losses();
  test_adamw();
  test_segment_norms();
  test_gemm_impls();
  test_error_reporting();
  CHECK_OK(be2[1]->sync(be2[1]));
  af_backend_close(be2[1]);
  af_backend_close(be2[0]);
  return af_test_done("test_cuda_ops");
}
