/* The op interface: one table of forward/backward pairs that every backend (kernels/cpu,
 * kernels/cuda) fills with functions of identical signatures. The model code in core/
 * calls only this table, so it holds no backend #ifdef. All tensors are row-major fp32
 * buffers owned by the backend (host memory for cpu, device memory for cuda).
 *
 * Shape letters: B batch, T tokens (padded length), C hidden, NH heads, HS = C/NH,
 * I intermediate, V vocab, P max positions, TV type vocab, NL labels, N rows (= B*T).
 *
 * Argument order: outputs and gradients first, then inputs, weights, scratch, sizes.
 * Accumulation rule (the only one): parameter gradients (dw, db, dwte, ...) are
 * ACCUMULATED (+=) so micro-batches add up; every other output, including every input
 * gradient (dinp), is OVERWRITTEN. */
#ifndef AF_OPS_H
#define AF_OPS_H
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include "core/base/status.h"

typedef enum { AF_GELU_ERF = 0, AF_GELU_TANH = 1 } af_gelu_kind;

/* The compute precision of the GEMMs inside an op (its last argument). FP32: fp32 inputs,
 * fp32 accumulation. BF16: the GEMM inputs are rounded to bf16 (to nearest even), products
 * accumulate in fp32 and the result is fp32; nothing else changes: buffers stay fp32, and
 * biases, softmax, dropout, the parameter-gradient accumulation (+=) run in fp32. An op
 * called with FP32 computes exactly what it did before bf16 existed. */
typedef enum { AF_PREC_FP32 = 0, AF_PREC_BF16 = 1 } af_precision;

/* How a GEMM operand that an op reads from memory is stored. BF16: raw bfloat16 bits, made
 * by the table's to_bf16 (round to nearest even). Only the operands marked below take it,
 * and only with AF_PREC_BF16: there the op would round an fp32 operand to exactly these bits
 * before its GEMMs, so both storages give the same results, and the model keeps the
 * activations that backward reads only as GEMM operands in half the bytes (core/model/bert.c). */
typedef enum { AF_STORE_F32 = 0, AF_STORE_BF16 = 1 } af_store;

typedef struct af_backend af_backend;
struct af_backend {
  const char *name;      /* "cpu" or "cuda" */
  char gemm_name[128];   /* library and kernel, e.g. "oneDNN 2.6 (avx512_core)" */
  char bf16_name[160];   /* what runs AF_PREC_BF16 GEMMs, e.g. "oneDNN 2.6.3 matmul bf16 (gemm:jit,
                            avx512_core_bf16)" or "cuBLAS 12.4 GemmEx bf16 (NVIDIA H100)" */
  int bf16_native;       /* 1: bf16 GEMMs run on hardware made for them (CPU: AMX or AVX512-BF16
                            used by oneDNN; GPU: bf16 tensor cores, sm_80+); 0: emulated, slower */
  char bf16_why[160];    /* the evidence, e.g. "the CPU has avx512_bf16 (no amx_bf16)" */
  void *ctx;             /* backend-private state (handles, streams, scratch) */

  /* ---- memory: a backend owns its buffers ---- */
  af_status (*alloc)(af_backend *be, void **p, size_t bytes);  /* zero-filled */
  void (*free)(af_backend *be, void *p);                      /* NULL is fine */
  af_status (*to_device)(af_backend *be, void *dst, const void *host_src, size_t bytes);
  af_status (*to_host)(af_backend *be, void *host_dst, const void *src, size_t bytes);
  void (*zero)(af_backend *be, void *p, size_t bytes);
  af_status (*sync)(af_backend *be);  /* waits for queued work, reports async errors */
  void (*destroy)(af_backend *be);

  /* ---- GEMM: C = alpha*op(A)*op(B) + beta*C, row-major, op(A) is MxK, op(B) is KxN;
   * batch > 1 repeats with the given element strides; prec: see af_precision. ---- */
  void (*gemm)(af_backend *be, int transA, int transB, int M, int N, int K, float alpha,
               const float *A, int lda, long strideA, const float *B, int ldb, long strideB,
               float beta, float *C, int ldc, long strideC, int batch, af_precision prec);
  /* The GEMM implementations built in, for benchmarks and tests: gemm_impls returns their
   * count, writes up to cap names into names (the form of gemm_name; valid while the
   * backend is open) and, when current is not NULL, the index of the one in use into
   * *current. gemm_use(i), 0 <= i < count, makes implementation i run every later GEMM of
   * the backend (gemm and the ops built on it) and updates gemm_name; AF_ERR_ARG for any
   * other i. On cpu the choice is process-wide (oneDNN sgemm, OpenBLAS, oneDNN matmul
   * primitives); cuda has one (cuBLAS). It applies to fp32 GEMMs; bf16 ones run as bf16_name
   * says (on cpu: oneDNN's bf16 matmul, or, with OpenBLAS, bf16-rounded inputs in sgemm). */
  int (*gemm_impls)(af_backend *be, const char **names, int cap, int *current);
  af_status (*gemm_use)(af_backend *be, int i);

  /* ---- linear: out[N,OC] = inp[N,C] @ w[OC,C]^T + b[OC]  (b may be NULL) ---- */
  void (*linear_forward)(af_backend *be, float *out, const float *inp, const float *w,
                         const float *b, int N, int C, int OC, af_precision prec);
  /* dinp[N,C] = dout @ w (skipped when dinp is NULL); dw[OC,C] += dout^T @ inp;
   * db[OC] += colsum(dout) (skipped when NULL). prec: both GEMMs; db and the += are fp32.
   * inp is float[N*C] (AF_STORE_F32) or, with AF_PREC_BF16, uint16_t[N*C] (AF_STORE_BF16). */
  void (*linear_backward)(af_backend *be, float *dinp, float *dw, float *db, const float *dout,
                          const void *inp, af_store inp_store, const float *w, int N, int C, int OC,
                          af_precision prec);

  /* ---- embeddings: out[B,T,C] = wte[ids] + wpe[t] + wtt[type_ids] ---- */
  void (*embedding_forward)(af_backend *be, float *out, const int32_t *ids, const int32_t *type_ids,
                            const float *wte, const float *wpe, const float *wtt, int B, int T, int C);
  void (*embedding_backward)(af_backend *be, float *dwte, float *dwpe, float *dwtt, const float *dout,
                             const int32_t *ids, const int32_t *type_ids, int B, int T, int C);

  /* ---- layernorm over the last dim; saves mean[N], rstd[N] for backward ---- */
  void (*layernorm_forward)(af_backend *be, float *out, float *mean, float *rstd, const float *inp,
                            const float *w, const float *b, int N, int C, float eps);
  void (*layernorm_backward)(af_backend *be, float *dinp, float *dw, float *db, const float *dout,
                             const float *inp, const float *w, const float *mean, const float *rstd,
                             int N, int C);

  /* ---- GELU, erf form or tanh form (gelu_new) ---- */
  void (*gelu_forward)(af_backend *be, float *out, const float *inp, size_t n, af_gelu_kind kind);
  void (*gelu_backward)(af_backend *be, float *dinp, const float *dout, const float *inp, size_t n,
                        af_gelu_kind kind);

  /* ---- tanh (pooler) ---- */
  void (*tanh_forward)(af_backend *be, float *out, const float *inp, size_t n);
  void (*tanh_backward)(af_backend *be, float *dinp, const float *dout, const float *out, size_t n);

  /* ---- masked scaled-dot-product self-attention with dropout on the probabilities.
   * qkv[B,T,3C] holds Q|K|V per token; mask[B,T] is 1 for real tokens, 0 for padding
   * (padded keys get zero probability). att[B,NH,T,T] receives the softmax probabilities
   * (before dropout) for backward; the dropout mask is regenerated from (seed, offset).
   * scratch holds attention_scratch_floats(B,T,C,NH) floats. prec: the GEMMs Q K^T and P V
   * and the four of backward; scores, softmax and its backward stay fp32. qkv is float
   * (AF_STORE_F32) or, with AF_PREC_BF16, bf16 bits (AF_STORE_BF16), in both ops. ---- */
  size_t (*attention_scratch_floats)(int B, int T, int C, int NH);
  void (*attention_forward)(af_backend *be, float *out, float *att, const void *qkv, af_store qkv_store,
                            const float *mask, float *scratch, int B, int T, int C, int NH,
                            float dropout_p, uint64_t seed, uint64_t offset, af_precision prec);
  void (*attention_backward)(af_backend *be, float *dqkv, const float *dout, const void *qkv,
                             af_store qkv_store, const float *att, const float *mask, float *scratch,
                             int B, int T, int C, int NH, float dropout_p, uint64_t seed,
                             uint64_t offset, af_precision prec);

  /* ---- dropout from a counter-based RNG: element i is kept iff
   * af_dropout_keep(seed, offset + i, p); kept values are scaled by 1/(1-p).
   * p == 0 copies (out may equal inp). ---- */
  void (*dropout_forward)(af_backend *be, float *out, const float *inp, size_t n, float p,
                          uint64_t seed, uint64_t offset);
  void (*dropout_backward)(af_backend *be, float *dinp, const float *dout, size_t n, float p,
                           uint64_t seed, uint64_t offset);

  /* ---- out[i] = bf16(inp[i]), round to nearest even: for every non-NaN value the bits
   * core/base/half.c's af_f32_to_bf16 gives (NaN stays NaN); the AF_STORE_BF16 storage ---- */
  void (*to_bf16)(af_backend *be, uint16_t *out, const float *inp, size_t n);

  /* ---- elementwise: out = a + b; y += x; x *= s ---- */
  void (*add)(af_backend *be, float *out, const float *a, const float *b, size_t n);
  void (*accumulate)(af_backend *be, float *y, const float *x, size_t n);
  void (*scale)(af_backend *be, float *x, float s, size_t n);

  /* ---- [CLS] rows: out[B,C] = h[b,0,:]; backward writes dh[B,T,C] (zeros but row 0) ---- */
  void (*cls_forward)(af_backend *be, float *out, const float *h, int B, int T, int C);
  void (*cls_backward)(af_backend *be, float *dh, const float *dout, int B, int T, int C);

  /* ---- losses. Classification: losses[B] = -log softmax(logits)[target], probs[B,NL]
   * saved; targets hold class indices as floats. Regression (NL = 1): losses[B] =
   * (pred - target)^2. Backward writes dlogits = scale * dloss/dlogits (scale = 1/batch). ---- */
  void (*cross_entropy_forward)(af_backend *be, float *losses, float *probs, const float *logits,
                                const float *targets, int B, int NL);
  void (*cross_entropy_backward)(af_backend *be, float *dlogits, const float *probs,
                                 const float *targets, int B, int NL, float scale);
  void (*mse_forward)(af_backend *be, float *losses, const float *preds, const float *targets, int B);
  void (*mse_backward)(af_backend *be, float *dpreds, const float *preds, const float *targets, int B,
                       float scale);

  /* ---- AdamW on one contiguous span: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
   * p -= lr * ( (m/bc1) / (sqrt(v/bc2) + eps) + wd * p ). bc1 = 1-b1^t, bc2 = 1-b2^t, or 1
   * for no bias correction (BERTAdam). ---- */
  void (*adamw_update)(af_backend *be, float *params, const float *grads, float *m, float *v,
                       size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                       float bc1, float bc2);

  /* ---- per-segment norms, results on the host: for segment s = x[off[s] .. off[s+1]),
   * l1[s] = sum |x|, l2sq[s] = sum x^2 (double accumulation). Either output may be NULL. ---- */
  af_status (*segment_norms)(af_backend *be, double *l1, double *l2sq, const float *x,
                             const size_t *off, int nseg);
};

/* Counter-based RNG shared by every backend (same bits on CPU and GPU): a 64-bit mix
 * (splitmix64 finaliser) of seed and counter. */
static inline uint64_t af_rng_mix(uint64_t seed, uint64_t ctr) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (ctr + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static inline int af_dropout_keep(uint64_t seed, uint64_t ctr, float p) {
  return (float)(af_rng_mix(seed, ctr) >> 40) * (1.0f / 16777216.0f) >= p;
}

/* Open a backend by name: "cpu", "cuda" or "auto" (cuda when built and a GPU is present).
 * threads (cpu only) <= 0 keeps the OpenMP default. */
af_status af_backend_open(const char *name, int threads, af_backend **be);
void af_backend_close(af_backend *be);  /* NULL is fine */
int af_backend_cuda_built(void);
/* First thing in main(), before any thread or library starts: the CPU backend may re-exec
 * the process to give OpenBLAS the right kernel set (kernels/cpu/gemm.h says why). */
void af_backend_preinit(char **argv);

/* pthread_sigmask(how, set) on the calling thread and on every thread of the compute pool
 * (OpenMP's team, which later threads inherit from). A caller that handles a signal and
 * returns must keep it off these threads: oneDNN 2.6's JIT sgemm points rsp at a heap
 * workspace, so a signal frame written there corrupts the heap (oneDNN issue #4845,
 * fixed upstream in 2026 by PR #4855, after the Debian 2.6 package). */
void af_compute_threads_sigmask(int how, const sigset_t *set);

#endif
