/* AdamW on one contiguous span (the trainable suffix of the parameter arena), exactly the
 * formula in ops.h: decoupled weight decay applied with the same lr, bias corrections
 * passed in (1 for BERTAdam). Memory-bound: one fused pass over p, g, m, v in chunks, OpenMP
 * over chunks. Without -fno-math-errno GCC keeps sqrtf scalar (and target_clones drops an
 * optimize("no-math-errno") pragma), so the AVX-512 chunk is written with intrinsics and
 * chosen at run time; sqrt and divide are correctly rounded in both paths. */
#include "kernels/cpu/cpu_backend.h"
#include <math.h>
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define AF_HAVE_X86 1
#endif

#define CHUNK 16384

typedef struct { float lr, b1, b2, eps, wd, ib1, ib2; } adam_k;

static void chunk_scalar(float *restrict params, const float *restrict grads, float *restrict m,
                         float *restrict v, long n, const adam_k *k) {
  for (long i = 0; i < n; i++) {
    float g = grads[i];
    float mi = k->b1 * m[i] + (1.0f - k->b1) * g;
    float vi = k->b2 * v[i] + (1.0f - k->b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float p = params[i];
    params[i] = p - k->lr * ((mi * k->ib1) / (sqrtf(vi * k->ib2) + k->eps) + k->wd * p);
  }
}

#ifdef AF_HAVE_X86
__attribute__((target("avx512f"))) static void chunk_avx512(float *restrict params, const float *restrict grads,
                                                             float *restrict m, float *restrict v, long n,
                                                             const adam_k *k) {
  const __m512 b1 = _mm512_set1_ps(k->b1), c1 = _mm512_set1_ps(1.0f - k->b1);
  const __m512 b2 = _mm512_set1_ps(k->b2), c2 = _mm512_set1_ps(1.0f - k->b2);
  const __m512 lr = _mm512_set1_ps(k->lr), eps = _mm512_set1_ps(k->eps), wd = _mm512_set1_ps(k->wd);
  const __m512 ib1 = _mm512_set1_ps(k->ib1), ib2 = _mm512_set1_ps(k->ib2);
  long i = 0;
  for (; i < n; i += 16) {
    __mmask16 live = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    __m512 g = _mm512_maskz_loadu_ps(live, grads + i);
    __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_maskz_loadu_ps(live, m + i)), _mm512_mul_ps(c1, g));
    __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_maskz_loadu_ps(live, v + i)),
                              _mm512_mul_ps(_mm512_mul_ps(c2, g), g));
    _mm512_mask_storeu_ps(m + i, live, mi);
    _mm512_mask_storeu_ps(v + i, live, vi);
    __m512 p = _mm512_maskz_loadu_ps(live, params + i);
    __m512 u = _mm512_div_ps(_mm512_mul_ps(mi, ib1), _mm512_add_ps(_mm512_sqrt_ps(_mm512_mul_ps(vi, ib2)), eps));
    u = _mm512_add_ps(u, _mm512_mul_ps(wd, p));
    _mm512_mask_storeu_ps(params + i, live, _mm512_sub_ps(p, _mm512_mul_ps(lr, u)));
  }
}
#endif

typedef void (*chunk_fn)(float *restrict, const float *restrict, float *restrict, float *restrict, long,
                         const adam_k *);

static chunk_fn pick(void) {
#ifdef AF_HAVE_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return chunk_avx512;
#endif
  return chunk_scalar;
}

void af_cpu_adamw_update(af_backend *be, float *params, const float *grads, float *m, float *v,
                         size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                         float bc1, float bc2) {
  (void)be;
  static chunk_fn fn; /* benign race: every thread computes the same pointer */
  chunk_fn f = __atomic_load_n(&fn, __ATOMIC_RELAXED);
  if (!f) {
    f = pick();
    __atomic_store_n(&fn, f, __ATOMIC_RELAXED);
  }
  const adam_k k = {lr, beta1, beta2, eps, weight_decay, 1.0f / bc1, 1.0f / bc2};
  long nn = (long)n, nch = (nn + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (nn >= AF_CPU_PAR_MIN)
  for (long c = 0; c < nch; c++) {
    long i0 = c * CHUNK, len = nn - i0 < CHUNK ? nn - i0 : CHUNK;
    f(params + i0, grads + i0, m + i0, v + i0, len, &k);
  }
}
