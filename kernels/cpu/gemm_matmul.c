/* oneDNN matmul primitives for the CPU GEMM layer (gemm.h): C = alpha op(A) op(B) + beta C,
 * row-major, A and B fp32 or bf16, C fp32 (bf16 products accumulate in fp32).
 *
 * Creating a primitive costs far more than a small GEMM (JIT code, blocking decisions), so a
 * primitive is created once per shape and kept: a table keyed by (data type, transposes,
 * M, N, K, leading dimensions, beta, threads). Runs with very many distinct shapes (dynamic
 * padding makes N = B*T and the attention key counts vary) could fill it; past MM_SHAPES
 * entries one primitive per (data type, transposes, beta, threads) with runtime dimensions
 * serves every further shape (on this project's AVX-512 machines it runs the same kernel at
 * the same speed; measured in docs/benchmarks.md). alpha is a runtime output scale; beta is a
 * sum post-op, fixed at creation, so it is part of the key.
 *
 * Threads: oneDNN sizes a primitive's work split for the threads it sees at creation and an
 * OpenMP build runs a primitive single-threaded inside a parallel region, so calls from
 * inside one (attention's per-head GEMMs) use primitives created for one thread (the key's
 * thread count). Each thread has its own stream. The table is guarded by one mutex: a
 * lookup is a hash probe, far shorter than the smallest GEMM it serves. */
#include "kernels/cpu/gemm.h"
#ifdef AF_HAVE_DNNL
#include <dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

enum { MM_SLOTS = 4096, MM_SHAPES = 3968 };  /* slots left above MM_SHAPES: runtime-shape primitives */

typedef struct {
  int used;
  int bf16, tA, tB, M, N, K, lda, ldb, ldc, nthr;  /* M = -1: the runtime-shape primitive */
  float beta;
  dnnl_primitive_t prim;
} mm_entry;

static mm_entry g_tab[MM_SLOTS];
static int g_shapes, g_count;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t g_engine;
static int g_engine_failed;
static __thread dnnl_stream_t t_stream;
static char g_impl[2][64];

static unsigned key_hash(const mm_entry *k) {
  unsigned h = 2166136261u;
  const int v[] = {k->bf16, k->tA, k->tB, k->M, k->N, k->K, k->lda, k->ldb, k->ldc, k->nthr};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) h = (h ^ (unsigned)v[i]) * 16777619u;
  unsigned b;
  memcpy(&b, &k->beta, sizeof b);
  return (h ^ b) * 16777619u;
}

static int same_key(const mm_entry *a, const mm_entry *b) {
  return a->bf16 == b->bf16 && a->tA == b->tA && a->tB == b->tB && a->M == b->M && a->N == b->N && a->K == b->K &&
         a->lda == b->lda && a->ldb == b->ldb && a->ldc == b->ldc && a->nthr == b->nthr && a->beta == b->beta;
}

/* Memory descriptors of op(A)[M,K], op(B)[K,N], C[M,N] as strides over row-major storage;
 * runtime = 1 leaves every dimension and stride to execution time. */
static int init_mds(const mm_entry *k, int runtime, dnnl_memory_desc_t *a, dnnl_memory_desc_t *b,
                    dnnl_memory_desc_t *c) {
  const dnnl_dim_t R = DNNL_RUNTIME_DIM_VAL;
  dnnl_dim_t M = runtime ? R : k->M, N = runtime ? R : k->N, K = runtime ? R : k->K;
  dnnl_dim_t lda = runtime ? R : k->lda, ldb = runtime ? R : k->ldb, ldc = runtime ? R : k->ldc;
  dnnl_dims_t da = {M, K}, db = {K, N}, dc = {M, N};
  dnnl_dims_t sa = {k->tA ? 1 : lda, k->tA ? lda : 1}, sb = {k->tB ? 1 : ldb, k->tB ? ldb : 1}, sc = {ldc, 1};
  dnnl_data_type_t dt = k->bf16 ? dnnl_bf16 : dnnl_f32;
  return dnnl_memory_desc_init_by_strides(a, 2, da, dt, sa) != dnnl_success ||
         dnnl_memory_desc_init_by_strides(b, 2, db, dt, sb) != dnnl_success ||
         dnnl_memory_desc_init_by_strides(c, 2, dc, dnnl_f32, sc) != dnnl_success;
}

/* A primitive for key k (runtime: any shape), created for k->nthr threads; NULL on failure. */
static dnnl_primitive_t create(const mm_entry *k, int runtime, char *impl, size_t impl_cap) {
  dnnl_memory_desc_t a, b, c;
  dnnl_matmul_desc_t d;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t po = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_t p = NULL;
  const float rt_scale = DNNL_RUNTIME_F32_VAL;
  if (init_mds(k, runtime, &a, &b, &c) || dnnl_matmul_desc_init(&d, &a, &b, NULL, &c) != dnnl_success ||
      dnnl_primitive_attr_create(&attr) != dnnl_success ||
      dnnl_primitive_attr_set_output_scales(attr, 1, 0, &rt_scale) != dnnl_success)
    goto out;
  if (k->beta != 0.0f && (dnnl_post_ops_create(&po) != dnnl_success || dnnl_post_ops_append_sum(po, k->beta) != dnnl_success ||
                          dnnl_primitive_attr_set_post_ops(attr, po) != dnnl_success))
    goto out;
  /* oneDNN reads the thread count at creation: inside a parallel region pretend one */
  int saved = omp_get_max_threads();
  if (k->nthr == 1) omp_set_num_threads(1);
  dnnl_status_t st = dnnl_primitive_desc_create(&pd, &d, attr, g_engine, NULL);
  if (k->nthr == 1) omp_set_num_threads(saved);
  if (st != dnnl_success) goto out;
  const char *name = NULL;
  if (impl && dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success && name)
    snprintf(impl, impl_cap, "%s", name);
  if (dnnl_primitive_create(&p, pd) != dnnl_success) p = NULL;
out:
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (po) dnnl_post_ops_destroy(po);
  if (attr) dnnl_primitive_attr_destroy(attr);
  return p;
}

/* The slot for key k: found, or new (NULL when the table is full). Called under g_lock. */
static mm_entry *slot(const mm_entry *k) {
  unsigned i = key_hash(k) % MM_SLOTS;
  for (int probe = 0; probe < MM_SLOTS; probe++, i = (i + 1) % MM_SLOTS) {
    if (!g_tab[i].used) return &g_tab[i];
    if (same_key(&g_tab[i], k)) return &g_tab[i];
  }
  return NULL;
}

/* The primitive for key k: cached by shape while there is room, else the runtime-shape one. */
static dnnl_primitive_t lookup(const mm_entry *k) {
  dnnl_primitive_t p = NULL;
  pthread_mutex_lock(&g_lock);
  if (!g_engine && !g_engine_failed && dnnl_engine_create(&g_engine, dnnl_cpu, 0) != dnnl_success) {
    g_engine = NULL;
    g_engine_failed = 1;
  }
  if (g_engine) {
    mm_entry *e = slot(k);
    if (e && e->used) p = e->prim;
    else if (e && g_shapes < MM_SHAPES && (p = create(k, 0, NULL, 0)) != NULL) {
      *e = *k;
      e->used = 1;
      e->prim = p;
      g_shapes++, g_count++;
    }
    if (!p) { /* table full or the shape refused: the runtime-shape primitive of this kind */
      mm_entry rk = *k;
      rk.M = rk.N = rk.K = rk.lda = rk.ldb = rk.ldc = -1;
      mm_entry *r = slot(&rk);
      if (r && r->used) p = r->prim;
      else if (r && (p = create(&rk, 1, NULL, 0)) != NULL) {
        *r = rk;
        r->used = 1;
        r->prim = p;
        g_count++;
      }
    }
  }
  pthread_mutex_unlock(&g_lock);
  return p;
}

int af_matmul(int bf16, int transA, int transB, int M, int N, int K, float alpha, const void *A, int lda,
              const void *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return 0;
  if (K <= 0) return -1;  /* C = beta C: the caller's sgemm does it */
  const int in_par = omp_in_parallel();
  mm_entry k = {0, bf16 != 0, transA != 0, transB != 0, M, N, K, lda, ldb, ldc, in_par ? 1 : omp_get_max_threads(),
                beta, NULL};
  dnnl_primitive_t p = lookup(&k);
  if (!p) return -1;
  if (!t_stream && dnnl_stream_create(&t_stream, g_engine, dnnl_stream_default_flags) != dnnl_success) {
    t_stream = NULL;
    return -1;
  }
  dnnl_memory_desc_t a, b, c, sd;
  dnnl_dims_t one = {1};
  if (init_mds(&k, 0, &a, &b, &c) || dnnl_memory_desc_init_by_tag(&sd, 1, one, dnnl_f32, dnnl_a) != dnnl_success)
    return -1;
  dnnl_memory_t ma = NULL, mb = NULL, mc = NULL, ms = NULL;
  int rc = -1;
  if (dnnl_memory_create(&ma, &a, g_engine, (void *)A) == dnnl_success &&
      dnnl_memory_create(&mb, &b, g_engine, (void *)B) == dnnl_success &&
      dnnl_memory_create(&mc, &c, g_engine, C) == dnnl_success &&
      dnnl_memory_create(&ms, &sd, g_engine, &alpha) == dnnl_success) {
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc},
                               {DNNL_ARG_ATTR_OUTPUT_SCALES, ms}};
    rc = dnnl_primitive_execute(p, t_stream, 4, args) == dnnl_success ? 0 : -1;
  }
  if (ma) dnnl_memory_destroy(ma);
  if (mb) dnnl_memory_destroy(mb);
  if (mc) dnnl_memory_destroy(mc);
  if (ms) dnnl_memory_destroy(ms);
  return rc;
}

const char *af_matmul_impl_name(int bf16) {
  char *s = g_impl[bf16 != 0];
  pthread_mutex_lock(&g_lock);
  if (!s[0]) {
    if (!g_engine && !g_engine_failed && dnnl_engine_create(&g_engine, dnnl_cpu, 0) != dnnl_success) {
      g_engine = NULL;
      g_engine_failed = 1;
    }
    /* a BERT-base linear (N = 32 x 128 tokens, C = 768), created only to read its name */
    mm_entry k = {0, bf16 != 0, 0, 1, 4096, 768, 768, 768, 768, 768, omp_get_max_threads(), 0.0f, NULL};
    dnnl_primitive_t p = g_engine ? create(&k, 0, s, 64) : NULL;
    if (p) dnnl_primitive_destroy(p);
    if (!s[0]) snprintf(s, 64, "unavailable");
  }
  pthread_mutex_unlock(&g_lock);
  return s;
}

int af_matmul_primitives(void) {
  pthread_mutex_lock(&g_lock);
  int n = g_count;
  pthread_mutex_unlock(&g_lock);
  return n;
}

#else /* no oneDNN */

int af_matmul(int bf16, int transA, int transB, int M, int N, int K, float alpha, const void *A, int lda,
              const void *B, int ldb, float beta, float *C, int ldc) {
  return -1;
}
const char *af_matmul_impl_name(int bf16) { return ""; }
int af_matmul_primitives(void) { return 0; }

#endif
