/* The CUDA backend table: device memory, the one stream every op runs on, the cuBLAS
 * handle, and the conversion of CUDA/cuBLAS errors into af_status. Void ops record their
 * first error in the context; sync (and every status-returning call) reports it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_backend.h"

void af_cuda_record(af_backend *be, const char *file, int line, const char *fmt, ...) {
  af_cuda_ctx *ctx = af_cuda_ctx_of(be);
  if (ctx->err != AF_OK) return;
  int n = snprintf(ctx->errmsg, sizeof ctx->errmsg, "%s:%d: ", file, line);
  if (n < 0 || (size_t)n >= sizeof ctx->errmsg) n = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->errmsg + n, sizeof ctx->errmsg - (size_t)n, fmt, ap);
  va_end(ap);
  ctx->err = AF_ERR_BACKEND;
}

const char *af_cuda_cublas_string(cublasStatus_t s) {
  switch (s) {
  case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
  case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
  case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
  case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
  case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "unknown cuBLAS status";
}

/* Report (and clear) an error recorded by a void op. */
static af_status take_recorded(af_cuda_ctx *ctx) {
  if (ctx->err == AF_OK) return AF_OK;
  af_status s = ctx->err;
  ctx->err = AF_OK;
  return AF_FAIL(s, "CUDA backend: %s", ctx->errmsg);
}

static af_status af_cuda_sync(af_backend *be) {
  af_cuda_ctx *ctx = af_cuda_ctx_of(be);
  cudaError_t e = cudaStreamSynchronize(ctx->stream);
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess) {
    af_status rec = take_recorded(ctx);  /* the earlier, more precise message wins */
    if (rec != AF_OK) return rec;
    return AF_FAIL(AF_ERR_BACKEND, "CUDA backend: asynchronous error: %s", cudaGetErrorString(e));
  }
  return take_recorded(ctx);
}

static af_status af_cuda_alloc(af_backend *be, void **p, size_t bytes) {
  af_cuda_ctx *ctx = af_cuda_ctx_of(be);
  *p = NULL;
  if (bytes == 0) return AF_OK;
  cudaError_t e = cudaMalloc(p, bytes);
  if (e != cudaSuccess) {
    *p = NULL;
    cudaGetLastError();  /* an allocation failure is not sticky; clear it */
    return AF_FAIL(e == cudaErrorMemoryAllocation ? AF_ERR_NOMEM : AF_ERR_BACKEND,
                   "cudaMalloc of %zu bytes: %s", bytes, cudaGetErrorString(e));
  }
  e = cudaMemsetAsync(*p, 0, bytes, ctx->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(ctx->stream);
  if (e != cudaSuccess) {
    cudaFree(*p);
    *p = NULL;
    return AF_FAIL(AF_ERR_BACKEND, "zero-filling %zu device bytes: %s", bytes, cudaGetErrorString(e));
  }
  return AF_OK;
}

static void af_cuda_free(af_backend *be, void *p) {
  if (!p) return;
  AF_CUDA_CHECK(be, cudaFree(p));  /* cudaFree waits for the device */
}

/* Host buffers may be reused as soon as these return, so both copies finish before
 * returning; going through our stream also orders them after the queued ops. */
static af_status af_cuda_to_device(af_backend *be, void *dst, const void *host_src, size_t bytes) {
  if (bytes == 0) return af_cuda_sync(be);
  af_cuda_ctx *ctx = af_cuda_ctx_of(be);
  AF_CUDA_TRY(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, ctx->stream));
  return af_cuda_sync(be);
}

static af_status af_cuda_to_host(af_backend *be, void *host_dst, const void *src, size_t bytes) {
  if (bytes == 0) return af_cuda_sync(be);
  af_cuda_ctx *ctx = af_cuda_ctx_of(be);
  AF_CUDA_TRY(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream));
  return af_cuda_sync(be);
}

static void af_cuda_zero(af_backend *be, void *p, size_t bytes) {
  if (bytes == 0) return;
  AF_CUDA_CHECK(be, cudaMemsetAsync(p, 0, bytes, af_cuda_stream(be)));
}

/* One implementation: cuBLAS, named by gemm_name. */
static int af_cuda_gemm_impls(af_backend *be, const char **names, int cap, int *current) {
  if (names && cap > 0) names[0] = be->gemm_name;
  if (current) *current = 0;
  return 1;
}

static af_status af_cuda_gemm_use(af_backend *be, int i) {
  if (i != 0) return AF_FAIL(AF_ERR_ARG, "CUDA backend: GEMM implementation %d: expected 0 (%s)", i, be->gemm_name);
  return AF_OK;
}

static void release(af_backend *be) {
  if (!be) return;
  af_cuda_ctx *ctx = af_cuda_ctx_of(be);
  if (ctx) {
    if (ctx->stream) cudaStreamSynchronize(ctx->stream);
    if (ctx->cublas) cublasDestroy(ctx->cublas);
    if (ctx->seg_partial_d) cudaFree(ctx->seg_partial_d);
    if (ctx->seg_off_d) cudaFree(ctx->seg_off_d);
    if (ctx->bf16_a) cudaFree(ctx->bf16_a);
    if (ctx->bf16_b) cudaFree(ctx->bf16_b);
    if (ctx->stream) cudaStreamDestroy(ctx->stream);
    free(ctx->seg_partial_h);
    free(ctx);
  }
  free(be);
}

static void af_cuda_destroy(af_backend *be) { release(be); }

extern "C" int af_cuda_device_count(void) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  /* no driver / no device: not an error for the caller */
    return 0;
  }
  return n;
}

extern "C" af_status af_cuda_select_device(int local_rank, int *device) {
  const int n = af_cuda_device_count();
  *device = -1;
  if (n <= 0) return AF_OK;  /* nothing to choose: the run says so when it opens a backend */
  const int d = (local_rank < 0 ? 0 : local_rank) % n;
  AF_CUDA_TRY(cudaSetDevice(d));
  *device = d;
  return AF_OK;
}

static af_status setup(af_backend *be, af_cuda_ctx *ctx) {
  AF_CUDA_TRY(cudaGetDevice(&ctx->device));
  AF_CUDA_TRY(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
  cublasStatus_t cs = cublasCreate(&ctx->cublas);
  if (cs != CUBLAS_STATUS_SUCCESS) {
    ctx->cublas = NULL;
    return AF_FAIL(AF_ERR_BACKEND, "cublasCreate: %s", af_cuda_cublas_string(cs));
  }
  cs = cublasSetStream(ctx->cublas, ctx->stream);
  if (cs != CUBLAS_STATUS_SUCCESS)
    return AF_FAIL(AF_ERR_BACKEND, "cublasSetStream: %s", af_cuda_cublas_string(cs));
  /* Plain fp32 unless asked: TF32 changes results by ~1e-3 and breaks CPU parity. */
  const char *tf32 = getenv("AF_CUDA_TF32");
  int use_tf32 = tf32 && tf32[0] && strcmp(tf32, "0") != 0;
  cs = cublasSetMathMode(ctx->cublas, use_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
  if (cs != CUBLAS_STATUS_SUCCESS)
    return AF_FAIL(AF_ERR_BACKEND, "cublasSetMathMode: %s", af_cuda_cublas_string(cs));
  int major = 0, minor = 0, patch = 0;
  cublasGetProperty(MAJOR_VERSION, &major);
  cublasGetProperty(MINOR_VERSION, &minor);
  cublasGetProperty(PATCH_LEVEL, &patch);
  cudaDeviceProp prop;
  AF_CUDA_TRY(cudaGetDeviceProperties(&prop, ctx->device));
  snprintf(be->gemm_name, sizeof be->gemm_name, "cuBLAS %d.%d.%d%s (%.80s)", major, minor, patch,
           use_tf32 ? " TF32" : "", prop.name);
  snprintf(be->bf16_name, sizeof be->bf16_name, "cuBLAS %d.%d.%d GemmEx bf16, COMPUTE_32F (%.80s)", major, minor, patch,
           prop.name);
  be->bf16_native = prop.major >= 8;
  snprintf(be->bf16_why, sizeof be->bf16_why, "the GPU (%.80s) is sm_%d%d: %s", prop.name, prop.major, prop.minor,
           prop.major >= 8 ? "bf16 tensor cores" : "no bf16 tensor cores (they need sm_80 or later)");

  size_t nseg = (size_t)AF_CUDA_SEG_CHUNK * AF_CUDA_SEG_BLOCKS * 2;
  AF_CUDA_TRY(cudaMalloc(&ctx->seg_partial_d, nseg * sizeof(double)));
  AF_CUDA_TRY(cudaMalloc(&ctx->seg_off_d, (AF_CUDA_SEG_CHUNK + 1) * sizeof(unsigned long long)));
  ctx->seg_partial_h = (double *)malloc(nseg * sizeof(double));
  if (!ctx->seg_partial_h) return AF_FAIL(AF_ERR_NOMEM, "CUDA backend: host buffer of %zu doubles", nseg);
  return AF_OK;
}

extern "C" af_status af_cuda_backend_create(af_backend **out) {
  *out = NULL;
  if (af_cuda_device_count() == 0)
    return AF_FAIL(AF_ERR_UNSUPPORTED, "CUDA backend: no CUDA device (or no driver) found");
  af_backend *be = (af_backend *)calloc(1, sizeof *be);
  af_cuda_ctx *ctx = (af_cuda_ctx *)calloc(1, sizeof *ctx);
  if (!be || !ctx) {
    free(be);
    free(ctx);
    return AF_FAIL(AF_ERR_NOMEM, "CUDA backend: out of host memory");
  }
  be->ctx = ctx;
  ctx->err = AF_OK;
  af_status s = setup(be, ctx);
  if (s != AF_OK) {
    release(be);
    return s;
  }
  be->name = "cuda";
  be->alloc = af_cuda_alloc;
  be->free = af_cuda_free;
  be->to_device = af_cuda_to_device;
  be->to_host = af_cuda_to_host;
  be->zero = af_cuda_zero;
  be->sync = af_cuda_sync;
  be->destroy = af_cuda_destroy;
  be->gemm = af_cuda_gemm;
  be->gemm_impls = af_cuda_gemm_impls;
  be->gemm_use = af_cuda_gemm_use;
  be->linear_forward = af_cuda_linear_forward;
  be->linear_backward = af_cuda_linear_backward;
  be->embedding_forward = af_cuda_embedding_forward;
  be->embedding_backward = af_cuda_embedding_backward;
  be->layernorm_forward = af_cuda_layernorm_forward;
  be->layernorm_backward = af_cuda_layernorm_backward;
  be->gelu_forward = af_cuda_gelu_forward;
  be->gelu_backward = af_cuda_gelu_backward;
  be->tanh_forward = af_cuda_tanh_forward;
  be->tanh_backward = af_cuda_tanh_backward;
  be->attention_scratch_floats = af_cuda_attention_scratch_floats;
  be->attention_forward = af_cuda_attention_forward;
  be->attention_backward = af_cuda_attention_backward;
  be->dropout_forward = af_cuda_dropout_forward;
  be->dropout_backward = af_cuda_dropout_backward;
  be->to_bf16 = af_cuda_to_bf16;
  be->add = af_cuda_add;
  be->accumulate = af_cuda_accumulate;
  be->scale = af_cuda_scale;
  be->cls_forward = af_cuda_cls_forward;
  be->cls_backward = af_cuda_cls_backward;
  be->cross_entropy_forward = af_cuda_cross_entropy_forward;
  be->cross_entropy_backward = af_cuda_cross_entropy_backward;
  be->mse_forward = af_cuda_mse_forward;
  be->mse_backward = af_cuda_mse_backward;
  be->adamw_update = af_cuda_adamw_update;
  be->segment_norms = af_cuda_segment_norms;
  *out = be;
  return AF_OK;
}
