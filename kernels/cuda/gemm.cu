/* GEMM and the linear layer on cuBLAS. cuBLAS is column-major; a row-major MxN matrix is
 * the column-major NxM transpose, so row-major C = op(A) op(B) is computed as
 * column-major C^T = op(B)^T op(A)^T: swap the operands and M/N, keep the op flags.
 * AF_PREC_BF16: the operands' spans are rounded to bf16 (to nearest even) into the
 * context's scratch, keeping their leading dimensions and strides, and cublasGemmEx /
 * cublasGemmStridedBatchedEx multiply them with CUBLAS_COMPUTE_32F into the fp32 C; an operand
 * already stored in bf16 (linear backward's AF_STORE_BF16 input) is used as it is. */
#include <cuda_bf16.h>
#include "kernels/cuda/cuda_common.cuh"

__global__ void f32_to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}

/* Elements from the first to the last one a (possibly batched) row-major operand reads. */
static size_t span(int rows, int cols, int ld, long stride, int batch) {
  return (size_t)(batch - 1) * (size_t)stride + (size_t)(rows - 1) * (size_t)ld + (size_t)cols;
}

/* *buf (capacity *cap bytes) holding at least bytes; grown with cudaMalloc (cudaFree of the
 * old one waits for the device, so queued GEMMs finish with it first). */
static __nv_bfloat16 *grow(af_backend *be, void **buf, size_t *cap, size_t bytes) {
  if (*cap >= bytes) return (__nv_bfloat16 *)*buf;
  if (*buf) AF_CUDA_CHECK(be, cudaFree(*buf));
  *buf = NULL;
  *cap = 0;
  cudaError_t e = cudaMalloc(buf, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *buf = NULL;
    af_cuda_record(be, __FILE__, __LINE__, "bf16 GEMM operands: cudaMalloc of %zu bytes: %s", bytes,
                   cudaGetErrorString(e));
    return NULL;
  }
  *cap = bytes;
  return (__nv_bfloat16 *)*buf;
}

static __nv_bfloat16 *to_bf16(af_backend *be, void **buf, size_t *cap, const float *src, size_t n) {
  __nv_bfloat16 *d = grow(be, buf, cap, n * sizeof(__nv_bfloat16));
  if (!d) return NULL;
  f32_to_bf16_kernel<<<af_cuda_blocks(n, 256), 256, 0, af_cuda_stream(be)>>>(d, src, n);
  AF_CUDA_CHECK_LAUNCH(be, "f32_to_bf16_kernel");
  return d;
}

void af_cuda_to_bf16(af_backend *be, uint16_t *out, const float *inp, size_t n) {
  if (n == 0) return;
  f32_to_bf16_kernel<<<af_cuda_blocks(n, 256), 256, 0, af_cuda_stream(be)>>>((__nv_bfloat16 *)out, inp, n);
  AF_CUDA_CHECK_LAUNCH(be, "f32_to_bf16_kernel");
}

/* A and B fp32 (rounded here) or, with a16/b16, bf16 already */
static void gemm_bf16(af_backend *be, cublasOperation_t opA, cublasOperation_t opB, int M, int N, int K, float alpha,
                      const void *A, int a16, int lda, long strideA, const void *B, int b16, int ldb, long strideB,
                      float beta, float *C, int ldc, long strideC, int batch) {
  af_cuda_ctx *ctx = af_cuda_ctx_of(be);
  const int transA = opA == CUBLAS_OP_T, transB = opB == CUBLAS_OP_T;
  size_t na = span(transA ? K : M, transA ? M : K, lda, strideA, batch);
  size_t nb = span(transB ? N : K, transB ? K : N, ldb, strideB, batch);
  const __nv_bfloat16 *A16 = a16 ? (const __nv_bfloat16 *)A : to_bf16(be, &ctx->bf16_a, &ctx->bf16_a_cap, (const float *)A, na);
  const __nv_bfloat16 *B16 = b16 ? (const __nv_bfloat16 *)B : to_bf16(be, &ctx->bf16_b, &ctx->bf16_b_cap, (const float *)B, nb);
  if (!A16 || !B16) return;
  if (batch == 1) {
    AF_CUBLAS_CHECK(be, cublasGemmEx(ctx->cublas, opB, opA, N, M, K, &alpha, B16, CUDA_R_16BF, ldb, A16, CUDA_R_16BF,
                                     lda, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  } else {
    AF_CUBLAS_CHECK(be, cublasGemmStridedBatchedEx(ctx->cublas, opB, opA, N, M, K, &alpha, B16, CUDA_R_16BF, ldb,
                                                   (long long)strideB, A16, CUDA_R_16BF, lda, (long long)strideA,
                                                   &beta, C, CUDA_R_32F, ldc, (long long)strideC, batch,
                                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

void af_cuda_gemm(af_backend *be, int transA, int transB, int M, int N, int K, float alpha,
                  const float *A, int lda, long strideA, const float *B, int ldb, long strideB,
                  float beta, float *C, int ldc, long strideC, int batch, af_precision prec) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  cublasHandle_t h = af_cuda_ctx_of(be)->cublas;
  cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (prec == AF_PREC_BF16 && K > 0) {
    gemm_bf16(be, opA, opB, M, N, K, alpha, A, 0, lda, strideA, B, 0, ldb, strideB, beta, C, ldc, strideC, batch);
    return;
  }
  if (batch == 1) {
    AF_CUBLAS_CHECK(be, cublasSgemm(h, opB, opA, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
  } else {
    AF_CUBLAS_CHECK(be, cublasSgemmStridedBatched(h, opB, opA, N, M, K, &alpha, B, ldb, (long long)strideB,
                                                  A, lda, (long long)strideA, &beta, C, ldc,
                                                  (long long)strideC, batch));
  }
}

/* out[n,o] += b[o]; out holds the GEMM result. */
__global__ void bias_add_kernel(float *out, const float *b, size_t N, int OC) {
  size_t total = N * (size_t)OC;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
    out[i] += b[i % (size_t)OC];
}

/* A 32-column stripe per block, 8 row-groups per column reduced through shared memory in
 * a fixed order (deterministic, no atomics): db[c] += sum_n x[n,c]. */
__global__ void colsum_accumulate_kernel(float *db, const float *x, int N, int C) {
  __shared__ float part[8][33];
  int c = blockIdx.x * 32 + threadIdx.x;
  float s = 0.0f;
  if (c < C)
    for (int n = threadIdx.y; n < N; n += 8) s += x[(size_t)n * C + c];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float t = 0.0f;
    for (int k = 0; k < 8; k++) t += part[k][threadIdx.x];
    db[c] += t;
  }
}

static void colsum_accumulate(af_backend *be, float *db, const float *x, int N, int C) {
  if (C <= 0 || N <= 0) return;
  colsum_accumulate_kernel<<<(C + 31) / 32, dim3(32, 8), 0, af_cuda_stream(be)>>>(db, x, N, C);
  AF_CUDA_CHECK_LAUNCH(be, "colsum_accumulate_kernel");
}

/* out[N,OC] = inp[N,C] @ w[OC,C]^T + b[OC] */
void af_cuda_linear_forward(af_backend *be, float *out, const float *inp, const float *w,
                            const float *b, int N, int C, int OC, af_precision prec) {
  if (N <= 0 || OC <= 0) return;
  af_cuda_gemm(be, 0, 1, N, OC, C, 1.0f, inp, C, 0, w, C, 0, 0.0f, out, OC, 0, 1, prec);
  if (b) {
    size_t total = (size_t)N * OC;
    bias_add_kernel<<<af_cuda_blocks(total, 256), 256, 0, af_cuda_stream(be)>>>(out, b, (size_t)N, OC);
    AF_CUDA_CHECK_LAUNCH(be, "bias_add_kernel");
  }
}

/* dinp[N,C] = dout[N,OC] @ w[OC,C] (overwritten); dw[OC,C] += dout^T @ inp; db[OC] += colsum(dout).
 * inp fp32, or bf16 (AF_STORE_BF16: its GEMM is bf16 whatever prec says). */
void af_cuda_linear_backward(af_backend *be, float *dinp, float *dw, float *db, const float *dout,
                             const void *inp, af_store inp_store, const float *w, int N, int C, int OC,
                             af_precision prec) {
  if (dinp) af_cuda_gemm(be, 0, 0, N, C, OC, 1.0f, dout, OC, 0, w, C, 0, 0.0f, dinp, C, 0, 1, prec);
  if (dw && inp_store == AF_STORE_BF16) {
    if (OC > 0 && C > 0 && N > 0)
      gemm_bf16(be, CUBLAS_OP_T, CUBLAS_OP_N, OC, C, N, 1.0f, dout, 0, OC, 0, inp, 1, C, 0, 1.0f, dw, C, 0, 1);
  } else if (dw) {
    af_cuda_gemm(be, 1, 0, OC, C, N, 1.0f, dout, OC, 0, (const float *)inp, C, 0, 1.0f, dw, C, 0, 1, prec);
  }
  if (db) colsum_accumulate(be, db, dout, N, OC);
}
