/* Losses for the classifier head: softmax cross-entropy (targets are class indices stored
 * as floats) and squared error for regression, with backward scaled by `scale` (1/batch).
 * B and NL are small (a batch of a few labels): one thread per example is plenty. */
#include "kernels/cuda/cuda_common.cuh"

#define LOSS_BLOCK 128

/* probs[b,:] = softmax(logits[b,:]); losses[b] = logsumexp - logits[target], in double
 * like the CPU backend. A target outside [0, NL) is ignored (loss 0, gradient 0), as
 * PyTorch's ignore_index. */
__global__ void cross_entropy_forward_kernel(float *losses, float *probs, const float *logits,
                                             const float *targets, int B, int NL) {
  int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= B) return;
  const float *z = logits + (size_t)b * NL;
  float *p = probs + (size_t)b * NL;
  float mx = z[0];
  for (int k = 1; k < NL; k++) mx = fmaxf(mx, z[k]);
  double s = 0.0;
  for (int k = 0; k < NL; k++) s += exp((double)z[k] - mx);
  double lse = mx + log(s);
  for (int k = 0; k < NL; k++) p[k] = (float)exp((double)z[k] - lse);
  int t = (int)targets[b];
  losses[b] = (t >= 0 && t < NL) ? (float)(lse - z[t]) : 0.0f;
}

/* dlogits[b,k] = scale * (probs[b,k] - [k == target]) */
__global__ void cross_entropy_backward_kernel(float *dlogits, const float *probs, const float *targets,
                                              int B, int NL, float scale) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B * NL) return;
  int b = i / NL, k = i % NL;
  int t = (int)targets[b];
  dlogits[i] = (t >= 0 && t < NL) ? scale * (probs[i] - (k == t ? 1.0f : 0.0f)) : 0.0f;
}

__global__ void mse_forward_kernel(float *losses, const float *preds, const float *targets, int B) {
  int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= B) return;
  float d = preds[b] - targets[b];
  losses[b] = d * d;
}

__global__ void mse_backward_kernel(float *dpreds, const float *preds, const float *targets, int B, float scale) {
  int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= B) return;
  dpreds[b] = scale * 2.0f * (preds[b] - targets[b]);
}

static unsigned blocks(int n) { return (unsigned)((n + LOSS_BLOCK - 1) / LOSS_BLOCK); }

void af_cuda_cross_entropy_forward(af_backend *be, float *losses, float *probs, const float *logits,
                                   const float *targets, int B, int NL) {
  if (B <= 0 || NL <= 0) return;
  cross_entropy_forward_kernel<<<blocks(B), LOSS_BLOCK, 0, af_cuda_stream(be)>>>(losses, probs, logits, targets, B, NL);
  AF_CUDA_CHECK_LAUNCH(be, "cross_entropy_forward_kernel");
}

void af_cuda_cross_entropy_backward(af_backend *be, float *dlogits, const float *probs,
                                    const float *targets, int B, int NL, float scale) {
  if (B <= 0 || NL <= 0) return;
  cross_entropy_backward_kernel<<<blocks(B * NL), LOSS_BLOCK, 0, af_cuda_stream(be)>>>(dlogits, probs, targets, B,
                                                                                      NL, scale);
  AF_CUDA_CHECK_LAUNCH(be, "cross_entropy_backward_kernel");
}

void af_cuda_mse_forward(af_backend *be, float *losses, const float *preds, const float *targets, int B) {
  if (B <= 0) return;
  mse_forward_kernel<<<blocks(B), LOSS_BLOCK, 0, af_cuda_stream(be)>>>(losses, preds, targets, B);
  AF_CUDA_CHECK_LAUNCH(be, "mse_forward_kernel");
}

void af_cuda_mse_backward(af_backend *be, float *dpreds, const float *preds, const float *targets, int B,
                          float scale) {
  if (B <= 0) return;
  mse_backward_kernel<<<blocks(B), LOSS_BLOCK, 0, af_cuda_stream(be)>>>(dpreds, preds, targets, B, scale);
  AF_CUDA_CHECK_LAUNCH(be, "mse_backward_kernel");
}
