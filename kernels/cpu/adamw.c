/* AdamW on one contiguous span (the trainable suffix of the parameter arena), exactly the
 * formula in ops.h: decoupled weight decay applied with the same lr, bias corrections
 * passed in (1 for BERTAdam). Memory-bound: one fused pass over p, g, m, v, in chunks
 * compiled for AVX-512/AVX2 (the sqrt and divide vectorise only without errno semantics;
 * they stay correctly rounded; the clones may contract multiply-adds into FMAs, which moves
 * the last bit the way every other AF_CPU_CLONES kernel already does). */
#include "kernels/cpu/vmath.h" /* first: see its pragma */
#pragma GCC optimize("no-math-errno")
#include "kernels/cpu/cpu_backend.h"
#include <math.h>

#define CHUNK 16384

AF_CPU_CLONES static void adamw_chunk(float *restrict params, const float *restrict grads, float *restrict m,
                                      float *restrict v, long n, float lr, float beta1, float beta2, float eps,
                                      float weight_decay, float ib1, float ib2) {
#pragma omp simd
  for (long i = 0; i < n; i++) {
    float g = grads[i];
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float p = params[i];
    params[i] = p - lr * ((mi * ib1) / (sqrtf(vi * ib2) + eps) + weight_decay * p);
  }
}

void af_cpu_adamw_update(af_backend *be, float *params, const float *grads, float *m, float *v,
                         size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                         float bc1, float bc2) {
  (void)be;
  long nn = (long)n, nch = (nn + CHUNK - 1) / CHUNK;
  float ib1 = 1.0f / bc1, ib2 = 1.0f / bc2;
#pragma omp parallel for schedule(static) if (nn >= AF_CPU_PAR_MIN)
  for (long c = 0; c < nch; c++) {
    long i0 = c * CHUNK, len = nn - i0 < CHUNK ? nn - i0 : CHUNK;
    adamw_chunk(params + i0, grads + i0, m + i0, v + i0, len, lr, beta1, beta2, eps, weight_decay, ib1, ib2);
  }
}
