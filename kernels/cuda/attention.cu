/* Masked scaled-dot-product self-attention with dropout on the probabilities.
 * Q K^T and P V run as cuBLAS strided-batched GEMMs over the B*NH heads; small kernels move
 * qkv[B,T,3C] into head-major q,k,v[B,NH,T,HS] and back, and one warp per attention row
 * does the masked softmax (and its backward). The dropout counter of probability
 * (b, h, query i, key j) is offset + ((b*NH + h)*T + i)*T + j, i.e. its index in
 * att[B,NH,T,T]; the mask is regenerated in backward, never stored.
 *
 * scratch (floats), BTC = B*T*C, ATT = B*NH*T*T:
 *   q, k, v [B,NH,T,HS] | y [B,NH,T,HS] (head outputs / their gradient)
 *   | dq, dk, dv [B,NH,T,HS] (backward only) | P [B,NH,T,T] (dropped probs / dP / dpreatt)
 * AF_PREC_BF16: the six GEMMs run through af_cuda_gemm's bf16 path (operands rounded to bf16,
 * fp32 accumulation); the softmax kernels stay fp32. A qkv stored in bf16 (AF_STORE_BF16) is
 * widened exactly into q, k, v, which the bf16 GEMMs round back to the same bits. */
#include <math.h>
#include <cuda_bf16.h>
#include "kernels/cuda/cuda_common.cuh"

#define ATT_BLOCK 256  /* 8 warps: 8 attention rows per block */

size_t af_cuda_attention_scratch_floats(int B, int T, int C, int NH) {
  size_t btc = (size_t)B * T * C, att = (size_t)B * NH * T * T;
  return 7 * btc + att;
}

__device__ __forceinline__ float widen(float x) { return x; }
__device__ __forceinline__ float widen(__nv_bfloat16 x) { return __bfloat162float(x); }

/* dst_p[b,h,t,d] = src[(b*T + t)*src_stride + p*C + h*HS + d] for each non-NULL dst_p */
template <typename S>
__global__ void to_heads_kernel(float *dst0, float *dst1, float *dst2, const S *src, int src_stride,
                                int B, int T, int NH, int HS) {
  size_t n = (size_t)B * NH * T * HS, C = (size_t)NH * HS;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    size_t d = i % HS, t = (i / HS) % T, h = (i / ((size_t)HS * T)) % NH, b = i / ((size_t)HS * T * NH);
    size_t s = (b * T + t) * (size_t)src_stride + h * HS + d;
    dst0[i] = widen(src[s]);
    if (dst1) dst1[i] = widen(src[s + C]);
    if (dst2) dst2[i] = widen(src[s + 2 * C]);
  }
}

/* dst[(b*T + t)*dst_stride + p*C + h*HS + d] = src_p[b,h,t,d] for each non-NULL src_p */
__global__ void from_heads_kernel(float *dst, int dst_stride, const float *src0, const float *src1,
                                  const float *src2, int B, int T, int NH, int HS) {
  size_t n = (size_t)B * NH * T * HS, C = (size_t)NH * HS;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    size_t d = i % HS, t = (i / HS) % T, h = (i / ((size_t)HS * T)) % NH, b = i / ((size_t)HS * T * NH);
    size_t s = (b * T + t) * (size_t)dst_stride + h * HS + d;
    dst[s] = src0[i];
    if (src1) dst[s + C] = src1[i];
    if (src2) dst[s + 2 * C] = src2[i];
  }
}

__device__ __forceinline__ bool real_key(const float *mask_row, int j) { return !mask_row || mask_row[j] != 0.0f; }

/* In place on att (holding the scaled scores): softmax over the real keys of each row,
 * zero for padded keys (and for a row with no real key at all). With dropout, the dropped
 * and rescaled probabilities go to P; att keeps the undropped ones for backward. */
__global__ void softmax_forward_kernel(float *att, float *P, const float *mask, int B, int NH, int T,
                                       float p, float scale, uint64_t seed, uint64_t offset) {
  int lane = threadIdx.x % 32;
  size_t row = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= (size_t)B * NH * T) return;  /* whole warp leaves together */
  size_t b = row / ((size_t)NH * T);
  const float *mrow = mask ? mask + b * T : NULL;
  float *a = att + row * T;
  float mx = -INFINITY;
  for (int j = lane; j < T; j += 32)
    if (real_key(mrow, j)) mx = fmaxf(mx, a[j]);
  mx = af_warp_max(mx);
  float sum = 0.0f;
  for (int j = lane; j < T; j += 32)
    if (real_key(mrow, j)) sum += expf(a[j] - mx);
  sum = af_warp_sum(sum);
  float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int j = lane; j < T; j += 32) {
    float pr = real_key(mrow, j) ? expf(a[j] - mx) * inv : 0.0f;
    a[j] = pr;
    if (P) {
      uint64_t ctr = offset + row * (uint64_t)T + (uint64_t)j;
      P[row * T + j] = af_cuda_dropout_keep(seed, ctr, p) ? __fmul_rn(pr, scale) : 0.0f;
    }
  }
}

/* In place on dP (gradient w.r.t. the dropped probabilities): undo the dropout, then the
 * softmax backward dpre = att * (dprob - sum_j att*dprob). Padded keys have att = 0. */
__global__ void softmax_backward_kernel(float *dP, const float *att, int B, int NH, int T, float p, float scale,
                                        uint64_t seed, uint64_t offset) {
  int lane = threadIdx.x % 32;
  size_t row = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= (size_t)B * NH * T) return;
  float *g = dP + row * T;
  const float *a = att + row * T;
  float s = 0.0f;
  for (int j = lane; j < T; j += 32) {
    float dp = g[j];
    if (p > 0.0f) {
      uint64_t ctr = offset + row * (uint64_t)T + (uint64_t)j;
      dp = af_cuda_dropout_keep(seed, ctr, p) ? __fmul_rn(dp, scale) : 0.0f;
      g[j] = dp;
    }
    s += a[j] * dp;
  }
  s = af_warp_sum(s);
  for (int j = lane; j < T; j += 32) g[j] = a[j] * (g[j] - s);
}

static unsigned row_blocks(size_t rows) { return (unsigned)((rows + ATT_BLOCK / 32 - 1) / (ATT_BLOCK / 32)); }

/* q, k, v [B,NH,T,HS] fp32 from qkv [B,T,3C] stored as st; a bf16 qkv makes the GEMMs bf16 */
static void qkv_to_heads(af_backend *be, float *q, float *k, float *v, const void *qkv, af_store st, int B, int T,
                         int NH, int HS, af_precision *prec) {
  size_t btc = (size_t)B * T * NH * HS;
  if (st == AF_STORE_BF16) {
    *prec = AF_PREC_BF16;
    to_heads_kernel<<<af_cuda_blocks(btc, 256), 256, 0, af_cuda_stream(be)>>>(
        q, k, v, (const __nv_bfloat16 *)qkv, 3 * NH * HS, B, T, NH, HS);
  } else {
    to_heads_kernel<<<af_cuda_blocks(btc, 256), 256, 0, af_cuda_stream(be)>>>(q, k, v, (const float *)qkv,
                                                                             3 * NH * HS, B, T, NH, HS);
  }
  AF_CUDA_CHECK_LAUNCH(be, "to_heads_kernel");
}

/* out[B,T,C]; att[B,NH,T,T] (probabilities before dropout); qkv[B,T,3C]; mask[B,T] */
void af_cuda_attention_forward(af_backend *be, float *out, float *att, const void *qkv, af_store qkv_store,
                               const float *mask, float *scratch, int B, int T, int C, int NH,
                               float dropout_p, uint64_t seed, uint64_t offset, af_precision prec) {
  if (B <= 0 || T <= 0 || C <= 0 || NH <= 0) return;
  if (C % NH != 0) {
    af_cuda_record(be, __FILE__, __LINE__, "attention_forward: C = %d is not a multiple of NH = %d", C, NH);
    return;
  }
  cudaStream_t st = af_cuda_stream(be);
  int HS = C / NH, BNH = B * NH;
  size_t btc = (size_t)B * T * C, ntt = (size_t)T * T, nths = (size_t)T * HS;
  float *q = scratch, *k = q + btc, *v = k + btc, *y = v + btc, *P = y + 4 * btc;
  float alpha = 1.0f / sqrtf((float)HS);

  qkv_to_heads(be, q, k, v, qkv, qkv_store, B, T, NH, HS, &prec);
  /* att = alpha * q @ k^T, per head */
  af_cuda_gemm(be, 0, 1, T, T, HS, alpha, q, HS, (long)nths, k, HS, (long)nths, 0.0f, att, T, (long)ntt, BNH, prec);
  int drop = dropout_p > 0.0f;
  float dscale = drop ? 1.0f / (1.0f - dropout_p) : 1.0f;
  size_t rows = (size_t)BNH * T;
  softmax_forward_kernel<<<row_blocks(rows), ATT_BLOCK, 0, st>>>(att, drop ? P : NULL, mask, B, NH, T,
                                                                 dropout_p, dscale, seed, offset);
  AF_CUDA_CHECK_LAUNCH(be, "softmax_forward_kernel");
  /* y = probs @ v, per head */
  const float *probs = drop ? P : att;
  af_cuda_gemm(be, 0, 0, T, HS, T, 1.0f, probs, T, (long)ntt, v, HS, (long)nths, 0.0f, y, HS, (long)nths, BNH, prec);
  from_heads_kernel<<<af_cuda_blocks(btc, 256), 256, 0, st>>>(out, C, y, NULL, NULL, B, T, NH, HS);
  AF_CUDA_CHECK_LAUNCH(be, "from_heads_kernel");
}

/* dqkv[B,T,3C] overwritten; dout[B,T,C]; qkv, att, mask as in forward */
void af_cuda_attention_backward(af_backend *be, float *dqkv, const float *dout, const void *qkv,
                                af_store qkv_store, const float *att, const float *mask, float *scratch,
                                int B, int T, int C, int NH, float dropout_p, uint64_t seed,
                                uint64_t offset, af_precision prec) {
  (void)mask;  /* padded keys already have att = 0, which zeroes their gradient */
  if (B <= 0 || T <= 0 || C <= 0 || NH <= 0) return;
  if (C % NH != 0) {
    af_cuda_record(be, __FILE__, __LINE__, "attention_backward: C = %d is not a multiple of NH = %d", C, NH);
    return;
  }
  cudaStream_t st = af_cuda_stream(be);
  int HS = C / NH, BNH = B * NH;
  size_t btc = (size_t)B * T * C, ntt = (size_t)T * T, nths = (size_t)T * HS;
  float *q = scratch, *k = q + btc, *v = k + btc, *dy = v + btc;
  float *dq = dy + btc, *dk = dq + btc, *dv = dk + btc, *P = dv + btc;
  float alpha = 1.0f / sqrtf((float)HS);
  int drop = dropout_p > 0.0f;
  float dscale = drop ? 1.0f / (1.0f - dropout_p) : 1.0f;

  qkv_to_heads(be, q, k, v, qkv, qkv_store, B, T, NH, HS, &prec);
  to_heads_kernel<<<af_cuda_blocks(btc, 256), 256, 0, st>>>(dy, NULL, NULL, dout, C, B, T, NH, HS);
  AF_CUDA_CHECK_LAUNCH(be, "to_heads_kernel");
  /* the probabilities the forward multiplied with v: dropped ones regenerated from the
   * counters (same layout: index in att), else att itself */
  const float *probs = att;
  if (drop) {
    af_cuda_dropout_forward(be, P, att, (size_t)BNH * ntt, dropout_p, seed, offset);
    probs = P;
  }
  /* dv = probs^T @ dy */
  af_cuda_gemm(be, 1, 0, T, HS, T, 1.0f, probs, T, (long)ntt, dy, HS, (long)nths, 0.0f, dv, HS, (long)nths, BNH, prec);
  /* dP = dy @ v^T (overwrites P after dv has used it: same stream, in order) */
  af_cuda_gemm(be, 0, 1, T, T, HS, 1.0f, dy, HS, (long)nths, v, HS, (long)nths, 0.0f, P, T, (long)ntt, BNH, prec);
  size_t rows = (size_t)BNH * T;
  softmax_backward_kernel<<<row_blocks(rows), ATT_BLOCK, 0, st>>>(P, att, B, NH, T, dropout_p, dscale, seed,
                                                                  offset);
  AF_CUDA_CHECK_LAUNCH(be, "softmax_backward_kernel");
  /* scores = alpha * q k^T: dq = alpha * dpre @ k, dk = alpha * dpre^T @ q */
  af_cuda_gemm(be, 0, 0, T, HS, T, alpha, P, T, (long)ntt, k, HS, (long)nths, 0.0f, dq, HS, (long)nths, BNH, prec);
  af_cuda_gemm(be, 1, 0, T, HS, T, alpha, P, T, (long)ntt, q, HS, (long)nths, 0.0f, dk, HS, (long)nths, BNH, prec);
  from_heads_kernel<<<af_cuda_blocks(btc, 256), 256, 0, st>>>(dqkv, 3 * C, dq, dk, dv, B, T, NH, HS);
  AF_CUDA_CHECK_LAUNCH(be, "from_heads_kernel");
}
