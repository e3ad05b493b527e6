/* The CPU backend's ops (af_cpu_*), one file per op family, and its constructor. All
 * semantics are exactly those of kernels/ops.h; the table is filled in cpu_backend.c.
 * Reductions that cross threads (param grads, norms) combine per-thread partials in a
 * fixed order, so results are bit-identical run to run for a given thread count. */
#ifndef AF_CPU_BACKEND_H
#define AF_CPU_BACKEND_H
#include "kernels/ops.h"

af_status af_cpu_backend_create(int threads, af_backend **be);

void af_cpu_gemm(af_backend *be, int transA, int transB, int M, int N, int K, float alpha,
                 const float *A, int lda, long strideA, const float *B, int ldb, long strideB,
                 float beta, float *C, int ldc, long strideC, int batch, af_precision prec);
void af_cpu_linear_forward(af_backend *be, float *out, const float *inp, const float *w,
                           const float *b, int N, int C, int OC, af_precision prec);
void af_cpu_linear_backward(af_backend *be, float *dinp, float *dw, float *db, const float *dout,
                            const void *inp, af_store inp_store, const float *w, int N, int C, int OC,
                            af_precision prec);
void af_cpu_embedding_forward(af_backend *be, float *out, const int32_t *ids, const int32_t *type_ids,
                              const float *wte, const float *wpe, const float *wtt, int B, int T, int C);
void af_cpu_embedding_backward(af_backend *be, float *dwte, float *dwpe, float *dwtt, const float *dout,
                               const int32_t *ids, const int32_t *type_ids, int B, int T, int C);
void af_cpu_layernorm_forward(af_backend *be, float *out, float *mean, float *rstd, const float *inp,
                              const float *w, const float *b, int N, int C, float eps);
void af_cpu_layernorm_backward(af_backend *be, float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean, const float *rstd,
                               int N, int C);
void af_cpu_gelu_forward(af_backend *be, float *out, const float *inp, size_t n, af_gelu_kind kind);
void af_cpu_gelu_backward(af_backend *be, float *dinp, const float *dout, const float *inp, size_t n,
                          af_gelu_kind kind);
void af_cpu_tanh_forward(af_backend *be, float *out, const float *inp, size_t n);
void af_cpu_tanh_backward(af_backend *be, float *dinp, const float *dout, const float *out, size_t n);
size_t af_cpu_attention_scratch_floats(int B, int T, int C, int NH);
void af_cpu_attention_forward(af_backend *be, float *out, float *att, const void *qkv, af_store qkv_store,
                              const float *mask, float *scratch, int B, int T, int C, int NH,
                              float dropout_p, uint64_t seed, uint64_t offset, af_precision prec);
void af_cpu_attention_backward(af_backend *be, float *dqkv, const float *dout, const void *qkv,
                               af_store qkv_store, const float *att, const float *mask, float *scratch,
                               int B, int T, int C, int NH, float dropout_p, uint64_t seed,
                               uint64_t offset, af_precision prec);
void af_cpu_dropout_forward(af_backend *be, float *out, const float *inp, size_t n, float p,
                            uint64_t seed, uint64_t offset);
void af_cpu_dropout_backward(af_backend *be, float *dinp, const float *dout, size_t n, float p,
                             uint64_t seed, uint64_t offset);
void af_cpu_to_bf16(af_backend *be, uint16_t *out, const float *inp, size_t n);
void af_cpu_add(af_backend *be, float *out, const float *a, const float *b, size_t n);
void af_cpu_accumulate(af_backend *be, float *y, const float *x, size_t n);
void af_cpu_scale(af_backend *be, float *x, float s, size_t n);
void af_cpu_cls_forward(af_backend *be, float *out, const float *h, int B, int T, int C);
void af_cpu_cls_backward(af_backend *be, float *dh, const float *dout, int B, int T, int C);
void af_cpu_cross_entropy_forward(af_backend *be, float *losses, float *probs, const float *logits,
                                  const float *targets, int B, int NL);
void af_cpu_cross_entropy_backward(af_backend *be, float *dlogits, const float *probs,
                                   const float *targets, int B, int NL, float scale);
void af_cpu_mse_forward(af_backend *be, float *losses, const float *preds, const float *targets, int B);
void af_cpu_mse_backward(af_backend *be, float *dpreds, const float *preds, const float *targets, int B,
                         float scale);
void af_cpu_adamw_update(af_backend *be, float *params, const float *grads, float *m, float *v,
                         size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                         float bc1, float bc2);
af_status af_cpu_segment_norms(af_backend *be, double *l1, double *l2sq, const float *x,
                               const size_t *off, int nseg);

/* Elementwise loops below this many elements stay on one thread (fork/join costs more). */
#define AF_CPU_PAR_MIN 32768
#endif
