/* BERT embeddings: word + position + token type, and the backward that scatters into
 * the three tables. Backward uses atomicAdd (repeated ids collide), so the parameter
 * gradients are accumulated (+=) as ops.h requires, in a nondeterministic order.
 * type_ids == NULL means type 0 everywhere; wtt == NULL (or dwtt) skips the type table. */
#include "kernels/cuda/cuda_common.cuh"

#define EMB_BLOCK 256

/* out[b,t,c] = wte[ids[b,t], c] + wpe[t, c] + wtt[type_ids[b,t], c] */
__global__ void embedding_forward_kernel(float *out, const int32_t *ids, const int32_t *type_ids,
                                         const float *wte, const float *wpe, const float *wtt,
                                         int B, int T, int C) {
  size_t n = (size_t)B * T * C;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    size_t bt = i / (size_t)C, c = i % (size_t)C;
    size_t t = bt % (size_t)T;
    float v = wte[(size_t)ids[bt] * C + c] + wpe[t * C + c];
    if (wtt) v += wtt[(size_t)(type_ids ? type_ids[bt] : 0) * C + c];
    out[i] = v;
  }
}

__global__ void embedding_backward_kernel(float *dwte, float *dwpe, float *dwtt, const float *dout,
                                          const int32_t *ids, const int32_t *type_ids, int B, int T, int C) {
  size_t n = (size_t)B * T * C;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    size_t bt = i / (size_t)C, c = i % (size_t)C;
    size_t t = bt % (size_t)T;
    float g = dout[i];
    if (dwte) atomicAdd(&dwte[(size_t)ids[bt] * C + c], g);
    if (dwpe) atomicAdd(&dwpe[t * C + c], g);
    if (dwtt) atomicAdd(&dwtt[(size_t)(type_ids ? type_ids[bt] : 0) * C + c], g);
  }
}

void af_cuda_embedding_forward(af_backend *be, float *out, const int32_t *ids, const int32_t *type_ids,
                               const float *wte, const float *wpe, const float *wtt, int B, int T, int C) {
  size_t n = (size_t)B * T * C;
  if (B <= 0 || T <= 0 || C <= 0) return;
  embedding_forward_kernel<<<af_cuda_blocks(n, EMB_BLOCK), EMB_BLOCK, 0, af_cuda_stream(be)>>>(
      out, ids, type_ids, wte, wpe, wtt, B, T, C);
  AF_CUDA_CHECK_LAUNCH(be, "embedding_forward_kernel");
}

void af_cuda_embedding_backward(af_backend *be, float *dwte, float *dwpe, float *dwtt, const float *dout,
                                const int32_t *ids, const int32_t *type_ids, int B, int T, int C) {
  size_t n = (size_t)B * T * C;
  if (B <= 0 || T <= 0 || C <= 0 || (!dwte && !dwpe && !dwtt)) return;
  embedding_backward_kernel<<<af_cuda_blocks(n, EMB_BLOCK), EMB_BLOCK, 0, af_cuda_stream(be)>>>(
      dwte, dwpe, dwtt, dout, ids, type_ids, B, T, C);
  AF_CUDA_CHECK_LAUNCH(be, "embedding_backward_kernel");
}
