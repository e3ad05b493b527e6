/* The CPU GEMM layer: one small row-major fp32 sgemm API over whichever BLAS is fastest
 * here (oneDNN's dnnl_sgemm when built with it, else OpenBLAS), so the ops never name a
 * library. Outside kernels/ the choice is reached through the backend table
 * (gemm_impls/gemm_use in kernels/ops.h). */
#ifndef AF_CPU_GEMM_H
#define AF_CPU_GEMM_H
#include "core/base/status.h"

typedef enum { AF_GEMM_ONEDNN = 0, AF_GEMM_OPENBLAS = 1, AF_GEMM_NLIBS } af_gemm_lib;

/* Choose the library once per process: env AF_GEMM=onednn|openblas overrides the default
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
