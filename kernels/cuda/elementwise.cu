/* Elementwise ops: GELU (erf and tanh forms), tanh, dropout from the shared counter-based
 * RNG, add/accumulate/scale, and the [CLS] row gather/scatter. All are grid-stride loops
 * over size_t indices, so any n works with a capped grid. */
#include "kernels/cuda/cuda_common.cuh"

#define EW_BLOCK 256
#define GRID_STRIDE(i, n) \
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* --use_fast_math (set for the whole library) turns tanhf into tanh.approx.f32 (relative
 * error ~5e-4) and expf into ex2.approx: too coarse for parity with the CPU backend. The
 * transcendental is evaluated in double (full rate on sm_80/sm_90; these kernels are
 * memory-bound) and the rest stays in float. */
__device__ __forceinline__ float tanh_acc(float x) { return (float)tanh((double)x); }
__device__ __forceinline__ float erf_acc(float x) { return (float)erf((double)x); }
__device__ __forceinline__ float exp_acc(float x) { return (float)exp((double)x); }

#define SQRT_2_OVER_PI 0.7978845608028654f
#define INV_SQRT_2 0.7071067811865476f
#define INV_SQRT_2PI 0.3989422804014327f
#define GELU_TANH_C 0.044715f

/* ---- GELU ---- */
__global__ void gelu_forward_kernel(float *out, const float *inp, size_t n, int tanh_form) {
  GRID_STRIDE(i, n) {
    float x = inp[i];
    if (tanh_form) {
      float u = SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
      out[i] = 0.5f * x * (1.0f + tanh_acc(u));
    } else {
      out[i] = 0.5f * x * (1.0f + erf_acc(x * INV_SQRT_2));
    }
  }
}

__global__ void gelu_backward_kernel(float *dinp, const float *dout, const float *inp, size_t n, int tanh_form) {
  GRID_STRIDE(i, n) {
    float x = inp[i], g;
    if (tanh_form) {
      float u = SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
      float t = tanh_acc(u);
      float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_C * x * x);
      g = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
    } else {
      float cdf = 0.5f * (1.0f + erf_acc(x * INV_SQRT_2));
      float pdf = INV_SQRT_2PI * exp_acc(-0.5f * x * x);
      g = cdf + x * pdf;
    }
    dinp[i] = dout[i] * g;
  }
}

void af_cuda_gelu_forward(af_backend *be, float *out, const float *inp, size_t n, af_gelu_kind kind) {
  if (n == 0) return;
  gelu_forward_kernel<<<af_cuda_blocks(n, EW_BLOCK), EW_BLOCK, 0, af_cuda_stream(be)>>>(out, inp, n, kind == AF_GELU_TANH);
  AF_CUDA_CHECK_LAUNCH(be, "gelu_forward_kernel");
}

void af_cuda_gelu_backward(af_backend *be, float *dinp, const float *dout, const float *inp, size_t n,
                           af_gelu_kind kind) {
  if (n == 0) return;
  gelu_backward_kernel<<<af_cuda_blocks(n, EW_BLOCK), EW_BLOCK, 0, af_cuda_stream(be)>>>(dinp, dout, inp, n,
                                                                                       kind == AF_GELU_TANH);
  AF_CUDA_CHECK_LAUNCH(be, "gelu_backward_kernel");
}

/* ---- tanh ---- */
__global__ void tanh_forward_kernel(float *out, const float *inp, size_t n) {
  GRID_STRIDE(i, n) out[i] = tanh_acc(inp[i]);
}

__global__ void tanh_backward_kernel(float *dinp, const float *dout, const float *out, size_t n) {
  GRID_STRIDE(i, n) {
    float y = out[i];
    dinp[i] = dout[i] * (1.0f - y * y);
  }
}

void af_cuda_tanh_forward(af_backend *be, float *out, const float *inp, size_t n) {
  if (n == 0) return;
  tanh_forward_kernel<<<af_cuda_blocks(n, EW_BLOCK), EW_BLOCK, 0, af_cuda_stream(be)>>>(out, inp, n);
  AF_CUDA_CHECK_LAUNCH(be, "tanh_forward_kernel");
}

void af_cuda_tanh_backward(af_backend *be, float *dinp, const float *dout, const float *out, size_t n) {
  if (n == 0) return;
  tanh_backward_kernel<<<af_cuda_blocks(n, EW_BLOCK), EW_BLOCK, 0, af_cuda_stream(be)>>>(dinp, dout, out, n);
  AF_CUDA_CHECK_LAUNCH(be, "tanh_backward_kernel");
}

/* ---- dropout: element i kept iff keep(seed, offset + i, p), kept values times scale.
 * scale = 1/(1-p) is computed on the host in IEEE single precision (as the CPU backend
 * does), so with one correctly rounded multiply per element the bits match. Forward and
 * backward are the same map. ---- */
__global__ void dropout_kernel(float *out, const float *inp, size_t n, float p, float scale,
                               uint64_t seed, uint64_t offset) {
  GRID_STRIDE(i, n) out[i] = af_cuda_dropout_keep(seed, offset + i, p) ? __fmul_rn(inp[i], scale) : 0.0f;
}

static void dropout_apply(af_backend *be, float *out, const float *inp, size_t n, float p, uint64_t seed,
                          uint64_t offset) {
  if (n == 0) return;
  if (p == 0.0f) {
    if (out != inp) AF_CUDA_CHECK(be, cudaMemcpyAsync(out, inp, n * sizeof(float), cudaMemcpyDeviceToDevice,
                                                      af_cuda_stream(be)));
    return;
  }
  float scale = 1.0f / (1.0f - p);
  dropout_kernel<<<af_cuda_blocks(n, EW_BLOCK), EW_BLOCK, 0, af_cuda_stream(be)>>>(out, inp, n, p, scale, seed,
                                                                                  offset);
  AF_CUDA_CHECK_LAUNCH(be, "dropout_kernel");
}

void af_cuda_dropout_forward(af_backend *be, float *out, const float *inp, size_t n, float p,
                             uint64_t seed, uint64_t offset) {
  dropout_apply(be, out, inp, n, p, seed, offset);
}

void af_cuda_dropout_backward(af_backend *be, float *dinp, const float *dout, size_t n, float p,
                              uint64_t seed, uint64_t offset) {
  dropout_apply(be, dinp, dout, n, p, seed, offset);
}

/* ---- add / accumulate / scale ---- */
__global__ void add_kernel(float *out, const float *a, const float *b, size_t n) {
  GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}
__global__ void accumulate_kernel(float *y, const float *x, size_t n) {
  GRID_STRIDE(i, n) y[i] += x[i];
}
__global__ void scale_kernel(float *x, float s, size_t n) {
  GRID_STRIDE(i, n) x[i] *= s;
}

void af_cuda_add(af_backend *be, float *out, const float *a, const float *b, size_t n) {
  if (n == 0) return;
  add_kernel<<<af_cuda_blocks(n, EW_BLOCK), EW_BLOCK, 0, af_cuda_stream(be)>>>(out, a, b, n);
  AF_CUDA_CHECK_LAUNCH(be, "add_kernel");
}

void af_cuda_accumulate(af_backend *be, float *y, const float *x, size_t n) {
  if (n == 0) return;
  accumulate_kernel<<<af_cuda_blocks(n, EW_BLOCK), EW_BLOCK, 0, af_cuda_stream(be)>>>(y, x, n);
  AF_CUDA_CHECK_LAUNCH(be, "accumulate_kernel");
}

void af_cuda_scale(af_backend *be, float *x, float s, size_t n) {
  if (n == 0) return;
  scale_kernel<<<af_cuda_blocks(n, EW_BLOCK), EW_BLOCK, 0, af_cuda_stream(be)>>>(x, s, n);
  AF_CUDA_CHECK_LAUNCH(be, "scale_kernel");
}

/* ---- [CLS] rows: out[b,:] = h[b,0,:]; dh[b,t,:] = t == 0 ? dout[b,:] : 0 ---- */
__global__ void cls_forward_kernel(float *out, const float *h, int B, int T, int C) {
  size_t n = (size_t)B * C;
  GRID_STRIDE(i, n) {
    size_t b = i / (size_t)C, c = i % (size_t)C;
    out[i] = h[b * (size_t)T * C + c];
  }
}

__global__ void cls_backward_kernel(float *dh, const float *dout, int B, int T, int C) {
  size_t n = (size_t)B * T * C;
  GRID_STRIDE(i, n) {
    size_t c = i % (size_t)C, t = (i / (size_t)C) % (size_t)T, b = i / ((size_t)C * T);
    dh[i] = t == 0 ? dout[b * (size_t)C + c] : 0.0f;
  }
}

void af_cuda_cls_forward(af_backend *be, float *out, const float *h, int B, int T, int C) {
  size_t n = (size_t)B * C;
  if (B <= 0 || C <= 0) return;
  cls_forward_kernel<<<af_cuda_blocks(n, EW_BLOCK), EW_BLOCK, 0, af_cuda_stream(be)>>>(out, h, B, T, C);
  AF_CUDA_CHECK_LAUNCH(be, "cls_forward_kernel");
}

void af_cuda_cls_backward(af_backend *be, float *dh, const float *dout, int B, int T, int C) {
  size_t n = (size_t)B * T * C;
  if (B <= 0 || T <= 0 || C <= 0) return;
  cls_backward_kernel<<<af_cuda_blocks(n, EW_BLOCK), EW_BLOCK, 0, af_cuda_stream(be)>>>(dh, dout, B, T, C);
  AF_CUDA_CHECK_LAUNCH(be, "cls_backward_kernel");
}
