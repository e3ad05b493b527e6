/* Small elementwise ops (add, accumulate, scale) and the [CLS] row gather/scatter. */
#include "kernels/cpu/cpu_backend.h"
#include <string.h>

void af_cpu_add(af_backend *be, float *out, const float *a, const float *b, size_t n) {
  (void)be;
  long nn = (long)n;
#pragma omp parallel for simd schedule(static) if (nn >= AF_CPU_PAR_MIN)
  for (long i = 0; i < nn; i++) out[i] = a[i] + b[i];
}

void af_cpu_accumulate(af_backend *be, float *y, const float *x, size_t n) {
  (void)be;
  long nn = (long)n;
#pragma omp parallel for simd schedule(static) if (nn >= AF_CPU_PAR_MIN)
  for (long i = 0; i < nn; i++) y[i] += x[i];
}

void af_cpu_scale(af_backend *be, float *x, float s, size_t n) {
  (void)be;
  long nn = (long)n;
#pragma omp parallel for simd schedule(static) if (nn >= AF_CPU_PAR_MIN)
  for (long i = 0; i < nn; i++) x[i] *= s;
}

/* out[B,C] = h[b,0,:] */
void af_cpu_cls_forward(af_backend *be, float *out, const float *h, int B, int T, int C) {
  (void)be;
  for (int b = 0; b < B; b++) memcpy(out + (size_t)b * C, h + (size_t)b * T * C, (size_t)C * sizeof(float));
}

/* dh[B,T,C] overwritten: row 0 of each sequence = dout[b], the rest zero */
void af_cpu_cls_backward(af_backend *be, float *dh, const float *dout, int B, int T, int C) {
  (void)be;
#pragma omp parallel for schedule(static) if ((long)B * T * C >= AF_CPU_PAR_MIN)
  for (int b = 0; b < B; b++) {
    float *d = dh + (size_t)b * T * C;
    memcpy(d, dout + (size_t)b * C, (size_t)C * sizeof(float));
    memset(d + C, 0, (size_t)(T - 1) * C * sizeof(float));
  }
}
