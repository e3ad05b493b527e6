/* The CPU backend table: host memory (64-byte aligned, zero-filled), the GEMM layer's
 * library choice (gemm_impls/gemm_use), what runs bf16 GEMMs (bf16_name/native/why), and
 * the af_cpu_* ops from the neighbouring files. */
#include "kernels/cpu/cpu_backend.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include "kernels/cpu/gemm.h"

static af_status cpu_alloc(af_backend *be, void **p, size_t bytes) {
  (void)be;
  *p = NULL;
  size_t sz = (bytes + 63) & ~(size_t)63;
  if (sz == 0) sz = 64;
  void *q = NULL;
  if (posix_memalign(&q, 64, sz) != 0 || !q)
    return AF_FAIL(AF_ERR_NOMEM, "cpu backend: cannot allocate %zu bytes", bytes);
  memset(q, 0, sz);
  *p = q;
  return AF_OK;
}
static void cpu_free(af_backend *be, void *p) { (void)be; free(p); }
static af_status cpu_copy_in(af_backend *be, void *dst, const void *src, size_t bytes) {
  (void)be;
  if (bytes) memmove(dst, src, bytes);
  return AF_OK;
}
static void cpu_zero(af_backend *be, void *p, size_t bytes) { (void)be; if (bytes) memset(p, 0, bytes); }
static af_status cpu_sync(af_backend *be) { (void)be; return AF_OK; }
static void cpu_destroy(af_backend *be) { free(be); }

void af_cpu_gemm(af_backend *be, int transA, int transB, int M, int N, int K, float alpha,
                 const float *A, int lda, long strideA, const float *B, int ldb, long strideB,
                 float beta, float *C, int ldc, long strideC, int batch, af_precision prec) {
  (void)be;
  af_gemm_batched(prec, transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc,
                  strideC, batch);
}

/* Implementation i is the i-th library built in, in af_gemm_lib order. */
static int cpu_gemm_impls(af_backend *be, const char **names, int cap, int *current) {
  (void)be;
  af_gemm_lib cur = af_gemm_current();
  int n = 0;
  if (current) *current = -1;
  for (int lib = 0; lib < AF_GEMM_NLIBS; lib++) {
    if (!af_gemm_available((af_gemm_lib)lib)) continue;
    if (names && n < cap) names[n] = af_gemm_lib_name((af_gemm_lib)lib);
    if (current && lib == (int)cur) *current = n;
    n++;
  }
  return n;
}

static af_status cpu_gemm_use(af_backend *be, int i) {
  int n = 0;
  for (int lib = 0; lib < AF_GEMM_NLIBS; lib++) {
    if (!af_gemm_available((af_gemm_lib)lib)) continue;
    if (n++ != i) continue;
    AF_TRY(af_gemm_select((af_gemm_lib)lib));
    snprintf(be->gemm_name, sizeof be->gemm_name, "%s", af_gemm_lib_name((af_gemm_lib)lib));
    return AF_OK;
  }
  return AF_FAIL(AF_ERR_ARG, "cpu backend: GEMM implementation %d: expected 0..%d", i, n - 1);
}

af_status af_cpu_backend_create(int threads, af_backend **out) {
  *out = NULL;
  AF_TRY(af_gemm_init());
  if (threads > 0) af_gemm_set_threads(threads);
  af_backend *be = calloc(1, sizeof *be);
  if (!be) return AF_FAIL(AF_ERR_NOMEM, "cpu backend: out of memory");
  be->name = "cpu";
  strncpy(be->gemm_name, af_gemm_lib_name(af_gemm_current()), sizeof be->gemm_name - 1);
  be->bf16_native = af_gemm_bf16_info(be->bf16_name, sizeof be->bf16_name, be->bf16_why, sizeof be->bf16_why);
  be->alloc = cpu_alloc;
  be->free = cpu_free;
  be->to_device = cpu_copy_in;
  be->to_host = cpu_copy_in;
  be->zero = cpu_zero;
  be->sync = cpu_sync;
  be->destroy = cpu_destroy;
  be->gemm = af_cpu_gemm;
  be->gemm_impls = cpu_gemm_impls;
  be->gemm_use = cpu_gemm_use;
  be->linear_forward = af_cpu_linear_forward;
  be->linear_backward = af_cpu_linear_backward;
  be->embedding_forward = af_cpu_embedding_forward;
  be->embedding_backward = af_cpu_embedding_backward;
  be->layernorm_forward = af_cpu_layernorm_forward;
  be->layernorm_backward = af_cpu_layernorm_backward;
  be->gelu_forward = af_cpu_gelu_forward;
  be->gelu_backward = af_cpu_gelu_backward;
  be->tanh_forward = af_cpu_tanh_forward;
  be->tanh_backward = af_cpu_tanh_backward;
  be->attention_scratch_floats = af_cpu_attention_scratch_floats;
  be->attention_forward = af_cpu_attention_forward;
  be->attention_backward = af_cpu_attention_backward;
  be->dropout_forward = af_cpu_dropout_forward;
  be->dropout_backward = af_cpu_dropout_backward;
  be->to_bf16 = af_cpu_to_bf16;
  be->add = af_cpu_add;
  be->accumulate = af_cpu_accumulate;
  be->scale = af_cpu_scale;
  be->cls_forward = af_cpu_cls_forward;
  be->cls_backward = af_cpu_cls_backward;
  be->cross_entropy_forward = af_cpu_cross_entropy_forward;
  be->cross_entropy_backward = af_cpu_cross_entropy_backward;
  be->mse_forward = af_cpu_mse_forward;
  be->mse_backward = af_cpu_mse_backward;
  be->adamw_update = af_cpu_adamw_update;
  be->segment_norms = af_cpu_segment_norms;
  *out = be;
  return AF_OK;
}
