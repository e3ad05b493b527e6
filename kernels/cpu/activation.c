/* GELU (erf form as in BERT, tanh form as in gelu_new) and tanh (pooler). GELU runs on the
 * [B*T, I] FFN activations, so it uses the vectorised exp/erf of vmath.h on chunks compiled
 * for AVX-512/AVX2, with OpenMP over chunks. */
#include "kernels/cpu/vmath.h" /* first: see its pragma */
#include "kernels/cpu/cpu_backend.h"
#include <math.h>

#define AF_SQRT1_2 0.70710678118654752f
#define AF_INV_SQRT_2PI 0.39894228040143268f
#define AF_SQRT_2_PI 0.79788456080286536f
#define AF_GELU_C 0.044715f
#define CHUNK 8192

AF_CPU_CLONES static void gelu_fwd_chunk(float *out, const float *inp, long n, int tanh_form) {
  if (tanh_form) {
#pragma omp simd
    for (long i = 0; i < n; i++) {
      float x = inp[i];
      float u = AF_SQRT_2_PI * (x + AF_GELU_C * x * x * x);
      out[i] = 0.5f * x * (1.0f + af_vtanhf(u));
    }
  } else {
#pragma omp simd
    for (long i = 0; i < n; i++) {
      float x = inp[i];
      out[i] = 0.5f * x * (1.0f + af_verff(x * AF_SQRT1_2));
    }
  }
}

AF_CPU_CLONES static void gelu_bwd_chunk(float *dinp, const float *dout, const float *inp, long n, int tanh_form) {
  if (tanh_form) {
#pragma omp simd
    for (long i = 0; i < n; i++) {
      float x = inp[i];
      float u = AF_SQRT_2_PI * (x + AF_GELU_C * x * x * x);
      float th = af_vtanhf(u);
      float du = AF_SQRT_2_PI * (1.0f + 3.0f * AF_GELU_C * x * x);
      dinp[i] = dout[i] * (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du);
    }
  } else {
#pragma omp simd
    for (long i = 0; i < n; i++) {
      float x = inp[i];
      float cdf = 0.5f * (1.0f + af_verff(x * AF_SQRT1_2));
      float pdf = AF_INV_SQRT_2PI * af_vexpf(-0.5f * x * x);
      dinp[i] = dout[i] * (cdf + x * pdf);
    }
  }
}

/* out[n], inp[n] */
void af_cpu_gelu_forward(af_backend *be, float *out, const float *inp, size_t n, af_gelu_kind kind) {
  (void)be;
  long nn = (long)n, nch = (nn + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (nn >= AF_CPU_PAR_MIN)
  for (long c = 0; c < nch; c++) {
    long i0 = c * CHUNK, len = nn - i0 < CHUNK ? nn - i0 : CHUNK;
    gelu_fwd_chunk(out + i0, inp + i0, len, kind == AF_GELU_TANH);
  }
}

/* dinp[n] overwritten (may equal dout); dout, inp [n] */
void af_cpu_gelu_backward(af_backend *be, float *dinp, const float *dout, const float *inp, size_t n,
                          af_gelu_kind kind) {
  (void)be;
  long nn = (long)n, nch = (nn + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (nn >= AF_CPU_PAR_MIN)
  for (long c = 0; c < nch; c++) {
    long i0 = c * CHUNK, len = nn - i0 < CHUNK ? nn - i0 : CHUNK;
    gelu_bwd_chunk(dinp + i0, dout + i0, inp + i0, len, kind == AF_GELU_TANH);
  }
}

/* out[n] = tanh(inp) (libm: only B*C values, so exactness wins) */
void af_cpu_tanh_forward(af_backend *be, float *out, const float *inp, size_t n) {
  (void)be;
  for (size_t i = 0; i < n; i++) out[i] = tanhf(inp[i]);
}

/* dinp[n] = dout * (1 - out^2) */
void af_cpu_tanh_backward(af_backend *be, float *dinp, const float *dout, const float *out, size_t n) {
  (void)be;
  for (size_t i = 0; i < n; i++) dinp[i] = dout[i] * (1.0f - out[i] * out[i]);
}
