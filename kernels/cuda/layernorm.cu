/* LayerNorm over the last dim. Forward and the input gradient use one warp per row (the
 * row is read from global memory twice; C is small, it stays in L1/L2); the forward
 * statistics are accumulated in double like the CPU backend's. The
 * parameter gradients are a column reduction with a fixed order: deterministic, no atomics. */
#include "kernels/cuda/cuda_common.cuh"

#define LN_BLOCK 256  /* 8 warps, 8 rows per block */

__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                         const float *w, const float *b, int N, int C, float eps) {
  int lane = threadIdx.x % 32;
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= N) return;  /* whole warp leaves together: the shuffles stay full-warp */
  const float *x = inp + (size_t)row * C;
  /* sum and sum of squares in double, one pass, as the CPU backend does */
  double s = 0.0, ss = 0.0;
  for (int i = lane; i < C; i += 32) {
    double v = (double)x[i];
    s += v;
    ss += v * v;
  }
  for (int o = 16; o > 0; o >>= 1) {
    s += __shfl_xor_sync(0xffffffffu, s, o);
    ss += __shfl_xor_sync(0xffffffffu, ss, o);
  }
  double md = s / C;
  double var = ss / C - md * md;
  if (var < 0.0) var = 0.0;
  float m = (float)md, r = (float)(1.0 / sqrt(var + (double)eps));
  float *o = out + (size_t)row * C;
  for (int i = lane; i < C; i += 32) {
    float n = (x[i] - m) * r;
    o[i] = n * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
  }
  if (lane == 0) {
    if (mean) mean[row] = m;
    if (rstd) rstd[row] = r;
  }
}

/* dinp = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = w * dout. */
__global__ void layernorm_backward_dinp_kernel(float *dinp, const float *dout, const float *inp,
                                               const float *w, const float *mean, const float *rstd,
                                               int N, int C) {
  int lane = threadIdx.x % 32;
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= N) return;
  const float *x = inp + (size_t)row * C;
  const float *dy = dout + (size_t)row * C;
  float m = mean[row], r = rstd[row];
  float sd = 0.0f, sdn = 0.0f;
  for (int i = lane; i < C; i += 32) {
    float n = (x[i] - m) * r;
    float dn = (w ? w[i] : 1.0f) * dy[i];
    sd += dn;
    sdn += dn * n;
  }
  float dnorm_mean = af_warp_sum(sd) / (float)C;
  float dnorm_norm_mean = af_warp_sum(sdn) / (float)C;
  float *dx = dinp + (size_t)row * C;
  for (int i = lane; i < C; i += 32) {
    float n = (x[i] - m) * r;
    float dn = (w ? w[i] : 1.0f) * dy[i];
    dx[i] = (dn - dnorm_mean - n * dnorm_norm_mean) * r;
  }
}

/* dw[c] += sum_n dout[n,c] * norm[n,c]; db[c] += sum_n dout[n,c]. 32 columns per block,
 * 8 row groups summed through shared memory in a fixed order. */
__global__ void layernorm_backward_params_kernel(float *dw, float *db, const float *dout, const float *inp,
                                                 const float *mean, const float *rstd, int N, int C) {
  __shared__ float pw[8][33], pb[8][33];
  int c = blockIdx.x * 32 + threadIdx.x;
  float sw = 0.0f, sb = 0.0f;
  if (c < C)
    for (int n = threadIdx.y; n < N; n += 8) {
      size_t k = (size_t)n * C + c;
      sw += dout[k] * ((inp[k] - mean[n]) * rstd[n]);
      sb += dout[k];
    }
  pw[threadIdx.y][threadIdx.x] = sw;
  pb[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float tw = 0.0f, tb = 0.0f;
    for (int k = 0; k < 8; k++) {
      tw += pw[k][threadIdx.x];
      tb += pb[k][threadIdx.x];
    }
    if (dw) dw[c] += tw;
    if (db) db[c] += tb;
  }
}

void af_cuda_layernorm_forward(af_backend *be, float *out, float *mean, float *rstd, const float *inp,
                               const float *w, const float *b, int N, int C, float eps) {
  if (N <= 0 || C <= 0) return;
  int rows_per_block = LN_BLOCK / 32;
  unsigned grid = (unsigned)((N + rows_per_block - 1) / rows_per_block);
  layernorm_forward_kernel<<<grid, LN_BLOCK, 0, af_cuda_stream(be)>>>(out, mean, rstd, inp, w, b, N, C, eps);
  AF_CUDA_CHECK_LAUNCH(be, "layernorm_forward_kernel");
}

void af_cuda_layernorm_backward(af_backend *be, float *dinp, float *dw, float *db, const float *dout,
                                const float *inp, const float *w, const float *mean, const float *rstd,
                                int N, int C) {
  if (N <= 0 || C <= 0) return;
  cudaStream_t st = af_cuda_stream(be);
  /* parameter gradients first: they still read dout if the caller passes dinp == dout */
  if (dw || db) {
    layernorm_backward_params_kernel<<<(C + 31) / 32, dim3(32, 8), 0, st>>>(dw, db, dout, inp, mean, rstd, N, C);
    AF_CUDA_CHECK_LAUNCH(be, "layernorm_backward_params_kernel");
  }
  if (dinp) {
    int rows_per_block = LN_BLOCK / 32;
    unsigned grid = (unsigned)((N + rows_per_block - 1) / rows_per_block);
    layernorm_backward_dinp_kernel<<<grid, LN_BLOCK, 0, st>>>(dinp, dout, inp, w, mean, rstd, N, C);
    AF_CUDA_CHECK_LAUNCH(be, "layernorm_backward_dinp_kernel");
  }
}
