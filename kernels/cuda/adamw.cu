/* AdamW on one contiguous span of parameters (the optimizer walks its arena views).
 * Uses correctly rounded sqrt/divide intrinsics so --use_fast_math does not move the
 * update away from the CPU backend's IEEE arithmetic. */
#include "kernels/cuda/cuda_common.cuh"

#define ADAM_BLOCK 256

__global__ void adamw_kernel(float *params, const float *grads, float *m, float *v, size_t n, float lr,
                             float beta1, float beta2, float eps, float weight_decay, float ib1, float ib2) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float g = grads[i];
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float p = params[i];
    params[i] = p - lr * (__fdiv_rn(mi * ib1, __fsqrt_rn(vi * ib2) + eps) + weight_decay * p);
  }
}

void af_cuda_adamw_update(af_backend *be, float *params, const float *grads, float *m, float *v,
                          size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                          float bc1, float bc2) {
  if (n == 0) return;
  /* reciprocals of the bias corrections on the host, as the CPU backend computes them */
  float ib1 = 1.0f / bc1, ib2 = 1.0f / bc2;
  adamw_kernel<<<af_cuda_blocks(n, ADAM_BLOCK), ADAM_BLOCK, 0, af_cuda_stream(be)>>>(
      params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, ib1, ib2);
  AF_CUDA_CHECK_LAUNCH(be, "adamw_kernel");
}
