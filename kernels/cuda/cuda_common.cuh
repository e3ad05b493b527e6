/* Private to kernels/cuda: the backend context, error conversion helpers, launch-size
 * helpers, the device copy of the shared dropout RNG, and the declarations of every
 * af_cuda_* op (backend.cu puts them in the table). Not for use outside kernels/cuda. */
#ifndef AF_CUDA_COMMON_CUH
#define AF_CUDA_COMMON_CUH
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "core/base/status.h"
#include "kernels/ops.h"
}

/* segment_norms reduces up to AF_CUDA_SEG_CHUNK segments per launch, each with
 * AF_CUDA_SEG_BLOCKS blocks whose partial sums are added on the host in a fixed order. */
#define AF_CUDA_SEG_CHUNK 1024
#define AF_CUDA_SEG_BLOCKS 64

typedef struct af_cuda_ctx {
  int device;
  cudaStream_t stream;     /* every op is enqueued here */
  cublasHandle_t cublas;   /* bound to stream */
  af_status err;           /* first error recorded by a void op; reported by sync */
  char errmsg[512];
  double *seg_partial_d;   /* [AF_CUDA_SEG_CHUNK][AF_CUDA_SEG_BLOCKS][2] */
  double *seg_partial_h;   /* host copy of the same */
  unsigned long long *seg_off_d;  /* [AF_CUDA_SEG_CHUNK + 1] */
  void *bf16_a, *bf16_b;   /* bf16 copies of a GEMM's operands (gemm.cu), grown on first use */
  size_t bf16_a_cap, bf16_b_cap;  /* bytes */
} af_cuda_ctx;

static inline af_cuda_ctx *af_cuda_ctx_of(af_backend *be) { return (af_cuda_ctx *)be->ctx; }
static inline cudaStream_t af_cuda_stream(af_backend *be) { return af_cuda_ctx_of(be)->stream; }

/* Record the first error of a void op (later ones are dropped: they usually follow it). */
void af_cuda_record(af_backend *be, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
const char *af_cuda_cublas_string(cublasStatus_t s);

/* In void ops: remember the failure, report it at the next sync. */
#define AF_CUDA_CHECK(be, call) do { cudaError_t e_ = (call); \
    if (e_ != cudaSuccess) af_cuda_record((be), __FILE__, __LINE__, "%s: %s", #call, cudaGetErrorString(e_)); } while (0)
#define AF_CUDA_CHECK_LAUNCH(be, what) do { cudaError_t e_ = cudaGetLastError(); \
    if (e_ != cudaSuccess) af_cuda_record((be), __FILE__, __LINE__, "launch of %s: %s", (what), cudaGetErrorString(e_)); } while (0)
#define AF_CUBLAS_CHECK(be, call) do { cublasStatus_t e_ = (call); \
    if (e_ != CUBLAS_STATUS_SUCCESS) af_cuda_record((be), __FILE__, __LINE__, "%s: %s", #call, af_cuda_cublas_string(e_)); } while (0)
/* In status-returning functions: convert at the call. */
#define AF_CUDA_TRY(call) do { cudaError_t e_ = (call); \
    if (e_ != cudaSuccess) return AF_FAIL(AF_ERR_BACKEND, "%s: %s", #call, cudaGetErrorString(e_)); } while (0)

/* Blocks for a grid-stride loop over n items; capped, the loop covers the rest. */
static inline unsigned af_cuda_blocks(size_t n, int block) {
  size_t g = (n + (size_t)block - 1) / (size_t)block;
  if (g > 65536u * 8u) g = 65536u * 8u;
  return g ? (unsigned)g : 1u;
}

/* Device copies of af_rng_mix/af_dropout_keep from ops.h (plain C static inline functions
 * cannot be called from device code). Integer ops and an exact 24-bit conversion, so the
 * bits match the host versions exactly, --use_fast_math or not. */
__device__ __forceinline__ uint64_t af_cuda_rng_mix(uint64_t seed, uint64_t ctr) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (ctr + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
__device__ __forceinline__ int af_cuda_dropout_keep(uint64_t seed, uint64_t ctr, float p) {
  return (float)(af_cuda_rng_mix(seed, ctr) >> 40) * (1.0f / 16777216.0f) >= p;
}

/* Warp reductions over all 32 lanes. */
__device__ __forceinline__ float af_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float af_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/* ---- the ops (signatures identical to the af_backend table in ops.h) ---- */
void af_cuda_gemm(af_backend *be, int transA, int transB, int M, int N, int K, float alpha,
                  const float *A, int lda, long strideA, const float *B, int ldb, long strideB,
                  float beta, float *C, int ldc, long strideC, int batch, af_precision prec);
void af_cuda_linear_forward(af_backend *be, float *out, const float *inp, const float *w,
                            const float *b, int N, int C, int OC, af_precision prec);
void af_cuda_linear_backward(af_backend *be, float *dinp, float *dw, float *db, const float *dout,
                             const void *inp, af_store inp_store, const float *w, int N, int C, int OC,
                             af_precision prec);
void af_cuda_embedding_forward(af_backend *be, float *out, const int32_t *ids, const int32_t *type_ids,
                               const float *wte, const float *wpe, const float *wtt, int B, int T, int C);
void af_cuda_embedding_backward(af_backend *be, float *dwte, float *dwpe, float *dwtt, const float *dout,
                                const int32_t *ids, const int32_t *type_ids, int B, int T, int C);
void af_cuda_layernorm_forward(af_backend *be, float *out, float *mean, float *rstd, const float *inp,
                               const float *w, const float *b, int N, int C, float eps);
void af_cuda_layernorm_backward(af_backend *be, float *dinp, float *dw, float *db, const float *dout,
                                const float *inp, const float *w, const float *mean, const float *rstd,
                                int N, int C);
void af_cuda_gelu_forward(af_backend *be, float *out, const float *inp, size_t n, af_gelu_kind kind);
void af_cuda_gelu_backward(af_backend *be, float *dinp, const float *dout, const float *inp, size_t n,
                           af_gelu_kind kind);
void af_cuda_tanh_forward(af_backend *be, float *out, const float *inp, size_t n);
void af_cuda_tanh_backward(af_backend *be, float *dinp, const float *dout, const float *out, size_t n);
size_t af_cuda_attention_scratch_floats(int B, int T, int C, int NH);
void af_cuda_attention_forward(af_backend *be, float *out, float *att, const void *qkv, af_store qkv_store,
                               const float *mask, float *scratch, int B, int T, int C, int NH,
                               float dropout_p, uint64_t seed, uint64_t offset, af_precision prec);
void af_cuda_attention_backward(af_backend *be, float *dqkv, const float *dout, const void *qkv,
                                af_store qkv_store, const float *att, const float *mask, float *scratch,
                                int B, int T, int C, int NH, float dropout_p, uint64_t seed,
                                uint64_t offset, af_precision prec);
void af_cuda_dropout_forward(af_backend *be, float *out, const float *inp, size_t n, float p,
                             uint64_t seed, uint64_t offset);
void af_cuda_dropout_backward(af_backend *be, float *dinp, const float *dout, size_t n, float p,
                              uint64_t seed, uint64_t offset);
void af_cuda_to_bf16(af_backend *be, uint16_t *out, const float *inp, size_t n);
void af_cuda_add(af_backend *be, float *out, const float *a, const float *b, size_t n);
void af_cuda_accumulate(af_backend *be, float *y, const float *x, size_t n);
void af_cuda_scale(af_backend *be, float *x, float s, size_t n);
void af_cuda_cls_forward(af_backend *be, float *out, const float *h, int B, int T, int C);
void af_cuda_cls_backward(af_backend *be, float *dh, const float *dout, int B, int T, int C);
void af_cuda_cross_entropy_forward(af_backend *be, float *losses, float *probs, const float *logits,
                                   const float *targets, int B, int NL);
void af_cuda_cross_entropy_backward(af_backend *be, float *dlogits, const float *probs,
                                    const float *targets, int B, int NL, float scale);
void af_cuda_mse_forward(af_backend *be, float *losses, const float *preds, const float *targets, int B);
void af_cuda_mse_backward(af_backend *be, float *dpreds, const float *preds, const float *targets, int B,
                          float scale);
void af_cuda_adamw_update(af_backend *be, float *params, const float *grads, float *m, float *v,
                          size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                          float bc1, float bc2);
af_status af_cuda_segment_norms(af_backend *be, double *l1, double *l2sq, const float *x,
                                const size_t *off, int nseg);

#endif
