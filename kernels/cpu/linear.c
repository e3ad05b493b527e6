/* Linear layer: out = inp @ w^T + b on the GEMM layer. The bias is written into out first
 * and the GEMM adds onto it (beta = 1), which saves a pass over out. db's column sums run
 * over fixed column blocks, so the sum order never depends on the thread count. With
 * AF_PREC_BF16 the three GEMMs take bf16-rounded operands (af_gemm); the bias, db and the
 * accumulation into dw (beta = 1 on the fp32 gradient) stay fp32. */
#include "kernels/cpu/cpu_backend.h"
#include <string.h>
#include "kernels/cpu/gemm.h"

/* out[N,OC], inp[N,C], w[OC,C], b[OC] or NULL */
void af_cpu_linear_forward(af_backend *be, float *out, const float *inp, const float *w,
                           const float *b, int N, int C, int OC, af_precision prec) {
  (void)be;
  float beta = 0.0f;
  if (b) {
#pragma omp parallel for schedule(static) if ((long)N * OC >= AF_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, b, (size_t)OC * sizeof(float));
    beta = 1.0f;
  }
  af_gemm(prec, 0, 1, N, OC, C, 1.0f, inp, C, w, C, beta, out, OC);
}

/* dinp[N,C] overwritten (skipped if NULL); dw[OC,C] += dout^T inp; db[OC] += colsum(dout).
 * inp is fp32, or bf16 bits (AF_STORE_BF16: its GEMM is bf16 whatever prec says). */
void af_cpu_linear_backward(af_backend *be, float *dinp, float *dw, float *db, const float *dout,
                            const void *inp, af_store inp_store, const float *w, int N, int C, int OC,
                            af_precision prec) {
  (void)be;
  const int inp16 = inp_store == AF_STORE_BF16;
  /* dout rounded once for both GEMMs; needed alone when inp is already bf16 */
  uint16_t *d16 = (prec == AF_PREC_BF16 && dinp && dw) || (inp16 && dw) ? af_bf16_copy(0, dout, OC, N, OC) : NULL;
  if (dinp) {
    uint16_t *w16 = d16 ? af_bf16_copy(1, w, C, OC, C) : NULL;
    if (w16) af_gemm_bf16(0, 0, N, C, OC, 1.0f, d16, OC, w16, C, 0.0f, dinp, C);
    else af_gemm(prec, 0, 0, N, C, OC, 1.0f, dout, OC, w, C, 0.0f, dinp, C);
  }
  if (dw && inp16) {
    if (d16) af_gemm_bf16(1, 0, OC, C, N, 1.0f, d16, OC, (const uint16_t *)inp, C, 1.0f, dw, C);
    else af_gemm_unbuffered(1, 0, OC, C, N, 1.0f, dout, AF_OPD_F32_AS_BF16, OC, inp, AF_OPD_BF16, C, 1.0f, dw, C);
  } else if (dw) {
    uint16_t *i16 = d16 ? af_bf16_copy(1, (const float *)inp, C, N, C) : NULL;
    if (i16) af_gemm_bf16(1, 0, OC, C, N, 1.0f, d16, OC, i16, C, 1.0f, dw, C);
    else af_gemm(prec, 1, 0, OC, C, N, 1.0f, dout, OC, (const float *)inp, C, 1.0f, dw, C);
  }
  if (db) {
    enum { CB = 64 };
    int nblk = (OC + CB - 1) / CB;
#pragma omp parallel for schedule(static) if ((long)N * OC >= AF_CPU_PAR_MIN)
    for (int blk = 0; blk < nblk; blk++) {
      int c0 = blk * CB, c1 = c0 + CB < OC ? c0 + CB : OC;
      float acc[CB] = {0};
      for (int n = 0; n < N; n++) {
        const float *row = dout + (size_t)n * OC;
#pragma omp simd
        for (int c = c0; c < c1; c++) acc[c - c0] += row[c];
      }
      for (int c = c0; c < c1; c++) db[c] += acc[c - c0];
    }
  }
}
