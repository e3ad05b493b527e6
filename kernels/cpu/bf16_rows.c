/* fp32 -> bf16 rounding of GEMM operands (gemm.h: af_f32_to_bf16_rows), vectorised: the
 * bf16 GEMMs convert every operand on each call, so a scalar loop here would eat a good
 * part of what bf16 saves. The same bits as core/base/half.c's af_f32_to_bf16 (round to
 * nearest even, NaN kept quiet; tested in test_bf16_ops). */
#include "kernels/cpu/vmath.h" /* first: see its pragma */
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/cpu_backend.h"
#include <omp.h>

typedef uint32_t u32_alias __attribute__((may_alias));

/* rows [r0, r1): written with selects on the float's bits so the loop vectorises */
AF_CPU_CLONES static void rows_chunk(uint16_t *dst, long ldd, const float *src, long lds, long r0, long r1, long cols) {
  for (long r = r0; r < r1; r++) {
    uint16_t *d = dst + r * ldd;
    const u32_alias *s = (const u32_alias *)(src + r * lds);
#pragma omp simd
    for (long c = 0; c < cols; c++) {
      uint32_t x = s[c];
      uint32_t rn = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16, q = (x >> 16) | 0x40u;
      d[c] = (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? q : rn);
    }
  }
}

void af_f32_to_bf16_rows(uint16_t *dst, long ldd, const float *src, long lds, long rows, long cols) {
  if (rows * cols < (1L << 16) || omp_in_parallel()) {
    rows_chunk(dst, ldd, src, lds, 0, rows, cols);
    return;
  }
#pragma omp parallel
  {
    int t = omp_get_thread_num(), n = omp_get_num_threads();
    rows_chunk(dst, ldd, src, lds, rows * t / n, rows * (t + 1) / n, cols);
  }
}

/* The table's to_bf16: the flat array as rows of 4096 (so the rows thread), then the tail. */
void af_cpu_to_bf16(af_backend *be, uint16_t *out, const float *inp, size_t n) {
  (void)be;
  enum { W = 4096 };
  const size_t rows = n / W, done = rows * W;
  if (rows) af_f32_to_bf16_rows(out, W, inp, W, (long)rows, W);
  if (n > done) af_f32_to_bf16_rows(out + done, (long)(n - done), inp + done, (long)(n - done), 1, (long)(n - done));
}
