/* Dropout from the shared counter RNG: element i of the call is kept iff
 * af_dropout_keep(seed, offset + i, p), so forward and backward regenerate the same mask
 * without storing it and the CUDA backend produces the same bits. */
#include "kernels/cpu/cpu_backend.h"
#include <string.h>
#include "kernels/cpu/dropout_mask.h"

#define CHUNK 8192

/* out[n] (may equal inp), inp[n] */
void af_cpu_dropout_forward(af_backend *be, float *out, const float *inp, size_t n, float p,
                            uint64_t seed, uint64_t offset) {
  (void)be;
  if (p <= 0.0f) {
    if (out != inp) memmove(out, inp, n * sizeof(float));
    return;
  }
  float s = 1.0f / (1.0f - p);
  long nn = (long)n, nch = (nn + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (nn >= AF_CPU_PAR_MIN / 4)
  for (long c = 0; c < nch; c++) {
    long i0 = c * CHUNK, len = nn - i0 < CHUNK ? nn - i0 : CHUNK;
    af_cpu_dropout_apply(out + i0, inp + i0, len, p, s, seed, offset + (uint64_t)i0);
  }
}

/* dinp[n] (may equal dout), dout[n] */
void af_cpu_dropout_backward(af_backend *be, float *dinp, const float *dout, size_t n, float p,
                             uint64_t seed, uint64_t offset) {
  af_cpu_dropout_forward(be, dinp, dout, n, p, seed, offset);
}
