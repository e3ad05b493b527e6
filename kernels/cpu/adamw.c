/* AdamW on one contiguous span (the trainable suffix of the parameter arena), exactly the
 * formula in ops.h: decoupled weight decay applied with the same lr, bias corrections
 * passed in (1 for BERTAdam). Memory-bound: one fused pass over p, g, m, v. */
#include "kernels/cpu/cpu_backend.h"
#include <math.h>

void af_cpu_adamw_update(af_backend *be, float *params, const float *grads, float *m, float *v,
                         size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                         float bc1, float bc2) {
  (void)be;
  long nn = (long)n;
  float ib1 = 1.0f / bc1, ib2 = 1.0f / bc2;
#pragma omp parallel for simd schedule(static) if (nn >= AF_CPU_PAR_MIN)
  for (long i = 0; i < nn; i++) {
    float g = grads[i];
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float p = params[i];
    params[i] = p - lr * ((mi * ib1) / (sqrtf(vi * ib2) + eps) + weight_decay * p);
  }
}
