/* The dropout mask of kernels/ops.h (af_dropout_keep) applied to a contiguous run of
 * counters, vectorised. Shared by the dropout op and the attention kernel, which need the
 * same bits as the scalar definition (the CUDA backend and the tests rely on them). */
#ifndef AF_CPU_DROPOUT_MASK_H
#define AF_CPU_DROPOUT_MASK_H
#include <stdint.h>

/* dst[i] = af_dropout_keep(seed, ctr0 + i, p) ? src[i] * s : 0 for i < n; dst may equal
 * src. Bit-identical to the scalar definition for every p (including p <= 0 and p >= 1). */
void af_cpu_dropout_apply(float *dst, const float *src, long n, float p, float s, uint64_t seed,
                          uint64_t ctr0);
#endif
