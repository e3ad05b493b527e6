/* Vectorisable float exp and erf for the elementwise kernels. glibc's expf/erff are
 * scalar calls unless the whole build uses -ffast-math, which would make GELU cost more
 * than the FFN GEMMs feed it; these inline forms vectorise under `omp simd`. exp: Cephes
 * range reduction + degree-6 polynomial (~1 ulp); erf: Numerical Recipes erfc Chebyshev
 * fit (relative error < 1.2e-7 in erfc, absolute < 2e-7 in erf). */
#ifndef AF_CPU_VMATH_H
#define AF_CPU_VMATH_H
#include <stdint.h>
#include <string.h>

/* The clamps and selects below only if-convert (and so vectorise) when comparisons may not
 * trap; without -fno-trapping-math on the command line this pragma says so for every
 * function that follows, so include this header FIRST in a .c file (functions defined
 * before it would get other optimize flags and not be inlined into the hot loops). */
#if defined(__GNUC__) && !defined(__clang__)  /* GCC only; clang has no such pragma */
#pragma GCC optimize("no-trapping-math")
#endif

/* Hot loops are compiled for AVX-512 and AVX2+FMA besides the baseline and picked at load
 * time (GCC ifunc), since the build uses no -march. ("arch=..." clones would not inline these helpers.) Apply to plain chunk functions, not to
 * functions holding OpenMP regions. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__)  /* sanitizers: an instrumented ifunc resolver runs before their runtime */
#define AF_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define AF_CPU_CLONES
#endif

static inline float af_vexpf(float x) {
  /* branch-free so GCC if-converts and vectorises without -ffast-math: a < b ? a : b is
   * exactly minss; rounding to nearest by adding and subtracting 1.5 * 2^23 */
  x = x < 88.3762626647949f ? x : 88.3762626647949f;
  x = x > -87.3365478515625f ? x : -87.3365478515625f;
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float r2 = r * r;
  float y = 1.9875691500E-4f;
  y = y * r + 1.3981999507E-3f;
  y = y * r + 8.3334519073E-3f;
  y = y * r + 4.1665795894E-2f;
  y = y * r + 1.6666665459E-1f;
  y = y * r + 5.0000001201E-1f;
  y = y * r2 + r + 1.0f;
  union { int32_t i; float f; } e = {((int32_t)n + 127) << 23};  /* 2^n (union punning is C) */
  return y * e.f;
}

static inline float af_verff(float x) {
  float z = x < 0 ? -x : x;
  float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  float erfc = t * af_vexpf(-z * z + p);
  float r = 1.0f - erfc;
  return x < 0 ? -r : r;
}

/* tanh via exp, accurate to ~2e-7 absolute (fine for GELU's tanh form). */
static inline float af_vtanhf(float x) {
  float z = x < 0 ? -x : x;
  float e = af_vexpf(-2.0f * z);
  float r = (1.0f - e) / (1.0f + e);
  return x < 0 ? -r : r;
}
#endif
