/* The CPU GEMM layer: one small row-major fp32 sgemm API over whichever BLAS is fastest
 * here (oneDNN's dnnl_sgemm when built with it, else OpenBLAS), so the ops never name a
 * library, and its bf16 form (bf16 inputs, fp32 accumulation and output) over oneDNN's
 * matmul primitives. Outside kernels/ the choice is reached through the backend table
 * (gemm_impls/gemm_use in kernels/ops.h). */
#ifndef AF_CPU_GEMM_H
#define AF_CPU_GEMM_H
#include <stddef.h>
#include <stdint.h>
#include "core/base/status.h"
#include "kernels/ops.h"

/* ONEDNN: dnnl_sgemm; OPENBLAS: cblas_sgemm; ONEDNN_MATMUL: oneDNN fp32 matmul primitives
 * (gemm_matmul.c). On this project's AVX-512 machines the last two oneDNN paths run the
 * same JIT kernel at the same speed and give the same bits (docs/benchmarks.md), so
 * dnnl_sgemm, which needs no primitive cache, stays the default; the matmul path is there
 * for CPUs (AMX) where oneDNN's primitive picks a faster kernel: AF_GEMM=onednn-matmul. */
typedef enum { AF_GEMM_ONEDNN = 0, AF_GEMM_OPENBLAS = 1, AF_GEMM_ONEDNN_MATMUL = 2, AF_GEMM_NLIBS } af_gemm_lib;

/* Choose the library once per process: env AF_GEMM=onednn|openblas|onednn-matmul overrides the default
 * (oneDNN when available). Safe to call many times; the first call decides. AF_ERR_ARG for
 * an unknown AF_GEMM value, AF_ERR_UNSUPPORTED when the requested library is not built. */
af_status af_gemm_init(void);
int af_gemm_available(af_gemm_lib lib);
af_gemm_lib af_gemm_current(void);
/* Switch library (the CPU backend's gemm_use); AF_ERR_UNSUPPORTED when not built. */
af_status af_gemm_select(af_gemm_lib lib);
/* "oneDNN 2.6.3 (avx512_core_vnni)" / "OpenBLAS 0.3.21 (SkylakeX)" for lib. */
const char *af_gemm_lib_name(af_gemm_lib lib);
/* Threads used by one threaded GEMM call (OpenMP for oneDNN, OpenBLAS's own pool). */
void af_gemm_set_threads(int threads);

/* C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, row-major, trans* != 0 transposes.
 * Uses all threads unless called inside af_gemm_serial_begin/end. */
void af_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);
/* batch independent GEMMs at element strides; parallel over the batch with single-threaded
 * GEMMs when batch > 1, else one threaded GEMM. */
void af_sgemm_batched(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                      int lda, long strideA, const float *B, int ldb, long strideB, float beta,
                      float *C, int ldc, long strideC, int batch);
/* ---- bf16 ---- */

/* C[M,N] = alpha * op(A) op(B) + beta * C with A, B in bf16 (raw uint16_t bits), products
 * accumulated in fp32, C fp32. oneDNN's bf16 matmul when oneDNN is built in (whatever the
 * fp32 library choice), else A and B widened to fp32 in this thread's scratch and sgemm
 * (af_gemm_unbuffered when that scratch finds no memory).
 * Threaded like af_sgemm (single-threaded inside an OpenMP region). */
void af_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const uint16_t *A, int lda,
                  const uint16_t *B, int ldb, float beta, float *C, int ldc);
/* af_sgemm at a compute precision: FP32 is af_sgemm itself; BF16 rounds the used part of A
 * and B to bf16 into this thread's reusable scratch (grown on first use, kept) and runs
 * af_gemm_bf16. */
void af_gemm(af_precision prec, int transA, int transB, int M, int N, int K, float alpha, const float *A,
             int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* af_sgemm_batched at a compute precision (bf16 converts each batch member as af_gemm does). */
void af_gemm_batched(af_precision prec, int transA, int transB, int M, int N, int K, float alpha,
                     const float *A, int lda, long strideA, const float *B, int ldb, long strideB,
                     float beta, float *C, int ldc, long strideC, int batch);
/* src[rows, cols] (row stride lds) rounded to bf16 into this thread's scratch slot (0 or 1,
 * apart from af_gemm's own), packed (row stride cols); valid until the slot's next use by
 * this thread. NULL when out of memory. For ops that reuse one converted operand in several
 * bf16 GEMMs (linear backward: dout in both). */
uint16_t *af_bf16_copy(int slot, const float *src, long lds, long rows, long cols);
/* How af_gemm_unbuffered reads an operand: fp32, bf16 bits, or fp32 rounded to bf16 as read. */
typedef enum { AF_OPD_F32, AF_OPD_BF16, AF_OPD_F32_AS_BF16 } af_operand;
/* C = alpha op(A) op(B) + beta C (beta 0: C is not read) with the operands read as ka/kb say,
 * fp32 accumulation, no allocation: where the converted operands find no memory the bf16
 * GEMMs come here, so a run gets the same products (slowly) instead of a skipped GEMM. */
void af_gemm_unbuffered(int transA, int transB, int M, int N, int K, float alpha, const void *A, af_operand ka,
                        int lda, const void *B, af_operand kb, int ldb, float beta, float *C, int ldc);
/* Tests: scratch requests above bytes fail as if out of memory (0: no limit). */
void af_gemm_scratch_limit(size_t bytes);
/* dst[r*ldd + c] = bf16(src[r*lds + c]) for r < rows, c < cols, rounding to nearest even
 * (bit-identical to core/base/half.h's af_f32_to_bf16). Threaded over rows when large and
 * not already inside an OpenMP region. */
void af_f32_to_bf16_rows(uint16_t *dst, long ldd, const float *src, long lds, long rows, long cols);
/* The bf16 path's name ("oneDNN 2.6.3 matmul bf16 (gemm:jit, avx512_core_bf16)"), whether the
 * CPU runs it natively (oneDNN uses AVX512-BF16 or AMX) and the evidence (the CPU's flags
 * from /proc/cpuinfo and oneDNN's ISA), for the backend's bf16_name/bf16_native/bf16_why. */
int af_gemm_bf16_info(char *name, size_t name_cap, char *why, size_t why_cap);

/* ---- oneDNN matmul primitives (gemm_matmul.c), behind af_sgemm (ONEDNN_MATMUL) and
 * af_gemm_bf16 ---- */
/* C = alpha op(A) op(B) + beta C, A and B fp32 (bf16 = 0) or bf16 (bf16 = 1), C fp32.
 * 0 on success; -1 when oneDNN is not built in or refuses the shape (the caller falls back). */
int af_matmul(int bf16, int transA, int transB, int M, int N, int K, float alpha, const void *A, int lda,
              const void *B, int ldb, float beta, float *C, int ldc);
/* oneDNN's implementation name for a bf16 (or fp32) matmul of a BERT-like shape, e.g.
 * "gemm:jit" or "brg:avx512_core_amx"; "" without oneDNN. */
const char *af_matmul_impl_name(int bf16);
/* Primitives created so far (cached by shape, plus runtime-shape ones); for tests. */
int af_matmul_primitives(void);

/* Bracket an OpenMP region whose threads each call af_sgemm: makes every call single-threaded
 * (oneDNN already is inside a parallel region; OpenBLAS's pthread pool is set to 1). Not
 * nestable; call from the serial part of the program. */
void af_gemm_serial_begin(void);
void af_gemm_serial_end(void);

/* Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels in a library constructor from
 * CPUID, and mis-detects very recent Xeons as Prescott/generic. The only override,
 * OPENBLAS_CORETYPE, is read in that constructor, i.e. before main() runs, so setting it
 * with setenv() in main is too late. This re-execs the process (/proc/self/exe, same argv)
 * with OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell (AVX2) when OpenBLAS is the chosen
 * library, its corename is Prescott/generic-class and CPUID shows better. A value the user
 * already set is respected; AF_NO_REEXEC=1 disables it. Call first thing in main(). */
void af_gemm_preinit(char **argv);
#endif
