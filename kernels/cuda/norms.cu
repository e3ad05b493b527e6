/* Per-segment L1 norm and sum of squares in double (per-layer gradient norms for the
 * freeze rule). Each segment gets AF_CUDA_SEG_BLOCKS blocks; every block writes its
 * partial sums, and the host adds the partials in a fixed order, so the result is the
 * same run to run. The partial buffers live in the backend context (no allocation here);
 * more than AF_CUDA_SEG_CHUNK segments are processed in chunks. */
#include "kernels/cuda/cuda_common.cuh"

#define NORM_BLOCK 256

/* grid (AF_CUDA_SEG_BLOCKS, nseg): block (k, s) covers elements k*NORM_BLOCK + tid,
 * striding by AF_CUDA_SEG_BLOCKS*NORM_BLOCK, of segment s = x[off[s] .. off[s+1]). */
__global__ void segment_norms_kernel(double *partial, const float *x, const unsigned long long *off) {
  __shared__ double s1[NORM_BLOCK], s2[NORM_BLOCK];
  int s = blockIdx.y;
  unsigned long long lo = off[s], hi = off[s + 1];
  double a1 = 0.0, a2 = 0.0;
  for (unsigned long long i = lo + (unsigned long long)blockIdx.x * NORM_BLOCK + threadIdx.x; i < hi;
       i += (unsigned long long)gridDim.x * NORM_BLOCK) {
    double v = (double)x[i];
    a1 += fabs(v);
    a2 += v * v;
  }
  s1[threadIdx.x] = a1;
  s2[threadIdx.x] = a2;
  __syncthreads();
  for (int w = NORM_BLOCK / 2; w > 0; w >>= 1) {
    if ((int)threadIdx.x < w) {
      s1[threadIdx.x] += s1[threadIdx.x + w];
      s2[threadIdx.x] += s2[threadIdx.x + w];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    size_t k = ((size_t)s * gridDim.x + blockIdx.x) * 2;
    partial[k] = s1[0];
    partial[k + 1] = s2[0];
  }
}

af_status af_cuda_segment_norms(af_backend *be, double *l1, double *l2sq, const float *x,
                                const size_t *off, int nseg) {
  af_cuda_ctx *ctx = af_cuda_ctx_of(be);
  if (nseg < 0) return AF_FAIL(AF_ERR_ARG, "segment_norms: nseg = %d, expected >= 0", nseg);
  unsigned long long hoff[AF_CUDA_SEG_CHUNK + 1];
  for (int s0 = 0; s0 < nseg; s0 += AF_CUDA_SEG_CHUNK) {
    int ns = nseg - s0 < AF_CUDA_SEG_CHUNK ? nseg - s0 : AF_CUDA_SEG_CHUNK;
    for (int s = 0; s <= ns; s++) hoff[s] = (unsigned long long)off[s0 + s];
    for (int s = 0; s < ns; s++)
      if (hoff[s + 1] < hoff[s])
        return AF_FAIL(AF_ERR_ARG, "segment_norms: offset %d (%llu) is below offset %d (%llu)", s0 + s + 1,
                       hoff[s + 1], s0 + s, hoff[s]);
    AF_CUDA_TRY(cudaMemcpyAsync(ctx->seg_off_d, hoff, (size_t)(ns + 1) * sizeof hoff[0], cudaMemcpyHostToDevice,
                                ctx->stream));
    segment_norms_kernel<<<dim3(AF_CUDA_SEG_BLOCKS, (unsigned)ns), NORM_BLOCK, 0, ctx->stream>>>(
        ctx->seg_partial_d, x, ctx->seg_off_d);
    AF_CUDA_TRY(cudaGetLastError());
    size_t np = (size_t)ns * AF_CUDA_SEG_BLOCKS * 2;
    AF_CUDA_TRY(cudaMemcpyAsync(ctx->seg_partial_h, ctx->seg_partial_d, np * sizeof(double),
                                cudaMemcpyDeviceToHost, ctx->stream));
    AF_TRY(be->sync(be));  /* also waits for hoff before it goes out of use */
    for (int s = 0; s < ns; s++) {
      double a1 = 0.0, a2 = 0.0;
      for (int k = 0; k < AF_CUDA_SEG_BLOCKS; k++) {
        a1 += ctx->seg_partial_h[((size_t)s * AF_CUDA_SEG_BLOCKS + k) * 2];
        a2 += ctx->seg_partial_h[((size_t)s * AF_CUDA_SEG_BLOCKS + k) * 2 + 1];
      }
      if (l1) l1[s0 + s] = a1;
      if (l2sq) l2sq[s0 + s] = a2;
    }
  }
  return AF_OK;
}
