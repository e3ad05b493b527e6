/* Vectorised af_dropout_keep. Two exact rewrites of the scalar definition make it cheap:
 * (1) the splitmix input seed + K*(ctr+1) for consecutive counters advances by K, so it is
 *     an addition instead of a 64-bit multiply;
 * (2) (float)(r >> 40) * 2^-24 >= p is exact arithmetic on a 24-bit integer, so it equals
 *     the integer test (r >> 40) >= ceil(p * 2^24), i.e. r >= ceil(p * 2^24) << 40.
 * The two remaining 64-bit multiplies of the mixer need AVX-512DQ (vpmullq); the function is
 * compiled for it with a target attribute and chosen at run time, with a scalar fallback
 * that uses the same rewrites. */
#include "kernels/cpu/dropout_mask.h"
#include <math.h>
#include <string.h>
#include "kernels/ops.h"
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define AF_HAVE_X86 1
#endif

#define K_GOLD 0x9E3779B97F4A7C15ull
#define K_M1 0xBF58476D1CE4E5B9ull
#define K_M2 0x94D049BB133111EBull

/* threshold on r: keep iff r >= thr; returns 0 when p >= 1 (nothing kept) via *none */
static uint64_t keep_threshold(float p, int *none) {
  *none = 0;
  if (p != p) { *none = 1; return 0; } /* NaN: the scalar comparison is false everywhere */
  if (!(p > 0.0f)) return 0; /* p <= 0: every element kept, as the scalar test says */
  double t = ceil((double)p * 16777216.0);
  if (t >= 16777216.0) { *none = 1; return 0; }
  return (uint64_t)t << 40;
}

static inline uint64_t mix_z(uint64_t z) {
  z = (z ^ (z >> 30)) * K_M1;
  z = (z ^ (z >> 27)) * K_M2;
  return z ^ (z >> 31);
}

static void apply_scalar(float *dst, const float *src, long n, uint64_t thr, float s, uint64_t seed,
                         uint64_t ctr0) {
  uint64_t z = seed + K_GOLD * (ctr0 + 1);
  for (long i = 0; i < n; i++, z += K_GOLD) dst[i] = mix_z(z) >= thr ? src[i] * s : 0.0f;
}

#ifdef AF_HAVE_X86
__attribute__((target("avx512f,avx512dq"))) static inline __m512i mix_v(__m512i z, __m512i m1, __m512i m2) {
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), m1);
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), m2);
  return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

__attribute__((target("avx512f,avx512dq"))) static void apply_avx512(float *dst, const float *src, long n,
                                                                      uint64_t thr, float s, uint64_t seed,
                                                                      uint64_t ctr0) {
  const __m512i m1 = _mm512_set1_epi64((long long)K_M1), m2 = _mm512_set1_epi64((long long)K_M2);
  const __m512i vthr = _mm512_set1_epi64((long long)thr);
  const __m512i step = _mm512_set1_epi64((long long)(16 * K_GOLD));
  const __m512 vs = _mm512_set1_ps(s);
  uint64_t z0 = seed + K_GOLD * (ctr0 + 1);
  __m512i za = _mm512_set_epi64((long long)(z0 + 7 * K_GOLD), (long long)(z0 + 6 * K_GOLD),
                                (long long)(z0 + 5 * K_GOLD), (long long)(z0 + 4 * K_GOLD),
                                (long long)(z0 + 3 * K_GOLD), (long long)(z0 + 2 * K_GOLD),
                                (long long)(z0 + K_GOLD), (long long)z0);
  __m512i zb = _mm512_add_epi64(za, _mm512_set1_epi64((long long)(8 * K_GOLD)));
  long i = 0;
  for (; i + 16 <= n; i += 16) {
    __mmask8 ka = _mm512_cmpge_epu64_mask(mix_v(za, m1, m2), vthr);
    __mmask8 kb = _mm512_cmpge_epu64_mask(mix_v(zb, m1, m2), vthr);
    __mmask16 k = (__mmask16)(ka | ((unsigned)kb << 8));
    _mm512_storeu_ps(dst + i, _mm512_maskz_mul_ps(k, _mm512_loadu_ps(src + i), vs));
    za = _mm512_add_epi64(za, step);
    zb = _mm512_add_epi64(zb, step);
  }
  if (i < n) {
    __mmask16 live = (__mmask16)((1u << (n - i)) - 1);
    __mmask8 ka = _mm512_cmpge_epu64_mask(mix_v(za, m1, m2), vthr);
    __mmask8 kb = _mm512_cmpge_epu64_mask(mix_v(zb, m1, m2), vthr);
    __mmask16 k = (__mmask16)(ka | ((unsigned)kb << 8)) & live;
    __m512 x = _mm512_maskz_loadu_ps(live, src + i);
    _mm512_mask_storeu_ps(dst + i, live, _mm512_maskz_mul_ps(k, x, vs));
  }
}
#endif

typedef void (*apply_fn)(float *, const float *, long, uint64_t, float, uint64_t, uint64_t);

static apply_fn pick(void) {
#ifdef AF_HAVE_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) return apply_avx512;
#endif
  return apply_scalar;
}

void af_cpu_dropout_apply(float *dst, const float *src, long n, float p, float s, uint64_t seed, uint64_t ctr0) {
  static apply_fn fn; /* benign race: every thread computes the same pointer */
  if (n <= 0) return;
  int none;
  uint64_t thr = keep_threshold(p, &none);
  if (none) {
    memset(dst, 0, (size_t)n * sizeof(float));
    return;
  }
  apply_fn f = __atomic_load_n(&fn, __ATOMIC_RELAXED);
  if (!f) {
    f = pick();
    __atomic_store_n(&fn, f, __ATOMIC_RELAXED);
  }
  f(dst, src, n, thr, s, seed, ctr0);
}
