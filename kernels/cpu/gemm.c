/* The CPU GEMM layer (see gemm.h): library choice, names with versions and ISA, row-major
 * sgemm and its strided batched form, the bf16 forms (fp32 -> bf16 rounding into per-thread
 * scratch, then oneDNN's bf16 matmul in gemm_matmul.c), and the OpenBLAS core-type re-exec. */
#include "kernels/cpu/gemm.h"
#include <ctype.h>
#include "core/base/half.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <omp.h>
#include <cblas.h>
#ifdef AF_HAVE_DNNL
#include <dnnl.h>
#endif

static int g_init = 0;
static af_gemm_lib g_lib = AF_GEMM_OPENBLAS;
static int g_serial = 0;
static int g_blas_threads = 0;  /* OpenBLAS pool size outside serial regions */
static char g_names[AF_GEMM_NLIBS][128];

int af_gemm_available(af_gemm_lib lib) {
#ifdef AF_HAVE_DNNL
  if (lib == AF_GEMM_ONEDNN || lib == AF_GEMM_ONEDNN_MATMUL) return 1;
#endif
  return lib == AF_GEMM_OPENBLAS;
}

#ifdef AF_HAVE_DNNL
static const char *dnnl_isa_name(void) {
  switch ((int)dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "isa?";
  }
}
#endif

const char *af_gemm_lib_name(af_gemm_lib lib) {
  if (lib < 0 || lib >= AF_GEMM_NLIBS || !af_gemm_available(lib)) return "unavailable";
  char *s = g_names[lib];
  if (s[0]) return s;
  if (lib == AF_GEMM_OPENBLAS) {
    /* openblas_get_config() = "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..."; keep name+version */
    char ver[32] = "?";
    const char *cfg = openblas_get_config();
    if (cfg && !strncmp(cfg, "OpenBLAS ", 9)) sscanf(cfg + 9, "%31s", ver);
    snprintf(s, 128, "OpenBLAS %s (%s)", ver, openblas_get_corename());
  }
#ifdef AF_HAVE_DNNL
  if (lib == AF_GEMM_ONEDNN) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(s, 128, "oneDNN %d.%d.%d (%s)", v->major, v->minor, v->patch, dnnl_isa_name());
  }
  if (lib == AF_GEMM_ONEDNN_MATMUL) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(s, 128, "oneDNN %d.%d.%d matmul (%s, %s)", v->major, v->minor, v->patch, af_matmul_impl_name(0),
             dnnl_isa_name());
  }
#endif
  return s;
}

af_status af_gemm_init(void) {
  if (g_init) return AF_OK;
  af_gemm_lib lib = af_gemm_available(AF_GEMM_ONEDNN) ? AF_GEMM_ONEDNN : AF_GEMM_OPENBLAS;
  const char *e = getenv("AF_GEMM");
  if (e && *e) {
    if (!strcasecmp(e, "onednn") || !strcasecmp(e, "dnnl")) lib = AF_GEMM_ONEDNN;
    else if (!strcasecmp(e, "openblas")) lib = AF_GEMM_OPENBLAS;
    else if (!strcasecmp(e, "onednn-matmul") || !strcasecmp(e, "matmul")) lib = AF_GEMM_ONEDNN_MATMUL;
    else return AF_FAIL(AF_ERR_ARG, "AF_GEMM=%s: expected onednn, openblas or onednn-matmul", e);
    if (!af_gemm_available(lib))
      return AF_FAIL(AF_ERR_UNSUPPORTED, "AF_GEMM=%s: this build has no oneDNN (libdnnl-dev was not found)", e);
  }
  g_lib = lib;
  g_init = 1;
  return AF_OK;
}

af_gemm_lib af_gemm_current(void) {
  if (!g_init) (void)af_gemm_init();
  return g_lib;
}

af_status af_gemm_select(af_gemm_lib lib) {
  if (lib < 0 || lib >= AF_GEMM_NLIBS || !af_gemm_available(lib))
    return AF_FAIL(AF_ERR_UNSUPPORTED, "GEMM library %d is not built in", (int)lib);
  g_init = 1;
  g_lib = lib;
  return AF_OK;
}

void af_gemm_set_threads(int threads) {
  if (threads <= 0) return;
  g_blas_threads = threads;
  openblas_set_num_threads(threads);
  omp_set_num_threads(threads);
}

void af_gemm_serial_begin(void) {
  g_serial = 1;
  if (af_gemm_current() == AF_GEMM_OPENBLAS) {
    if (!g_blas_threads) g_blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
  }
}

void af_gemm_serial_end(void) {
  g_serial = 0;
  if (af_gemm_current() == AF_GEMM_OPENBLAS && g_blas_threads > 0) openblas_set_num_threads(g_blas_threads);
}

void af_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
#ifdef AF_HAVE_DNNL
  af_gemm_lib lib = af_gemm_current();
  if (lib == AF_GEMM_ONEDNN_MATMUL && af_matmul(0, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
    return;
  if (lib == AF_GEMM_ONEDNN || lib == AF_GEMM_ONEDNN_MATMUL) {
    /* dnnl_sgemm is row-major; inside an OpenMP region it runs on the calling thread. */
    dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#endif
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
              M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void af_sgemm_batched(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                      int lda, long strideA, const float *B, int ldb, long strideB, float beta,
                      float *C, int ldc, long strideC, int batch) {
  if (batch <= 1 || g_serial || omp_in_parallel()) {
    for (int i = 0; i < batch; i++)
      af_sgemm(transA, transB, M, N, K, alpha, A + i * strideA, lda, B + i * strideB, ldb, beta,
               C + i * strideC, ldc);
    return;
  }
  af_gemm_serial_begin();
#pragma omp parallel for schedule(static)
  for (int i = 0; i < batch; i++)
    af_sgemm(transA, transB, M, N, K, alpha, A + (long)i * strideA, lda, B + (long)i * strideB, ldb, beta,
             C + (long)i * strideC, ldc);
  af_gemm_serial_end();
}

/* ---- bf16 ---- */

static void widen_rows(float *dst, long ldd, const uint16_t *src, long lds, long rows, long cols) {
#pragma omp parallel for schedule(static) if (rows * cols >= (1L << 16) && !omp_in_parallel())
  for (long r = 0; r < rows; r++)
    for (long c = 0; c < cols; c++) {
      uint32_t x = (uint32_t)src[r * lds + c] << 16;
      memcpy(dst + r * ldd + c, &x, sizeof x);
    }
}

/* Per-thread scratch for converted operands, grown on first use and kept (the steps of a
 * run reuse it): slots 0-1 bf16 A and B, 2-3 their fp32 widening (no oneDNN), 4-5 the
 * callers' (af_bf16_copy). */
typedef struct { void *p; size_t cap; } tls_buf;
static __thread tls_buf t_buf[6];
static size_t g_scratch_limit;  /* tests: requests above it fail as if out of memory */

void af_gemm_scratch_limit(size_t bytes) { g_scratch_limit = bytes; }

static void *scratch(int i, size_t bytes) {
  if (g_scratch_limit && bytes > g_scratch_limit) return NULL;
  if (t_buf[i].cap >= bytes) return t_buf[i].p;
  free(t_buf[i].p);
  t_buf[i].p = NULL;
  t_buf[i].cap = 0;
  if (posix_memalign(&t_buf[i].p, 64, bytes ? bytes : 64) != 0) {
    t_buf[i].p = NULL;
    return NULL;
  }
  t_buf[i].cap = bytes;
  return t_buf[i].p;
}

static void out_of_scratch(size_t bytes);

uint16_t *af_bf16_copy(int slot, const float *src, long lds, long rows, long cols) {
  size_t bytes = (size_t)(rows * cols) * sizeof(uint16_t);
  uint16_t *d = scratch(4 + (slot != 0), bytes);
  if (!d) {
    out_of_scratch(bytes);
    return NULL;
  }
  af_f32_to_bf16_rows(d, cols, src, lds, rows, cols);
  return d;
}

static void out_of_scratch(size_t bytes) {
  static int warned;
  if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
    af_warn("bf16 GEMM: no memory for %zu bytes of converted operands; computing such GEMMs without buffers "
            "(the same products, slower)", bytes);
}

static inline float operand(const void *X, af_operand k, size_t i) {
  switch (k) {
    case AF_OPD_BF16: return af_bf16_to_f32(((const uint16_t *)X)[i]);
    case AF_OPD_F32_AS_BF16: return af_bf16_to_f32(af_f32_to_bf16(((const float *)X)[i]));
    default: return ((const float *)X)[i];
  }
}

void af_gemm_unbuffered(int transA, int transB, int M, int N, int K, float alpha, const void *A, af_operand ka,
                        int lda, const void *B, af_operand kb, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
#pragma omp parallel for schedule(static) if ((long)M * N * (K > 0 ? K : 1) >= (1L << 18) && !omp_in_parallel())
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float s = 0.0f;
      for (int k = 0; k < K; k++)
        s += operand(A, ka, transA ? (size_t)k * lda + i : (size_t)i * lda + k) *
             operand(B, kb, transB ? (size_t)j * ldb + k : (size_t)k * ldb + j);
      float *c = C + (size_t)i * ldc + j;
      *c = beta == 0.0f ? alpha * s : alpha * s + beta * *c;  /* beta 0: C may be uninitialised */
    }
}

void af_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const uint16_t *A, int lda,
                  const uint16_t *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K > 0 && af_matmul(1, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0) return;
  /* no oneDNN (or it refused): the same products from the widened bf16 values */
  const long ar = transA ? K : M, ac = transA ? M : K, br = transB ? N : K, bc = transB ? K : N;
  size_t na = (size_t)(ar * ac) * sizeof(float), nb = (size_t)(br * bc) * sizeof(float);
  float *a = scratch(2, na), *b = scratch(3, nb);
  if (!a || !b) {
    out_of_scratch(na + nb);
    af_gemm_unbuffered(transA, transB, M, N, K, alpha, A, AF_OPD_BF16, lda, B, AF_OPD_BF16, ldb, beta, C, ldc);
    return;
  }
  widen_rows(a, ac, A, lda, ar, ac);
  widen_rows(b, bc, B, ldb, br, bc);
  af_sgemm(transA, transB, M, N, K, alpha, a, (int)(ac ? ac : 1), b, (int)(bc ? bc : 1), beta, C, ldc);
}

void af_gemm(af_precision prec, int transA, int transB, int M, int N, int K, float alpha, const float *A,
             int lda, const float *B, int ldb, float beta, float *C, int ldc) {
  if (prec != AF_PREC_BF16 || K <= 0) {
    af_sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (M <= 0 || N <= 0) return;
  const long ar = transA ? K : M, ac = transA ? M : K, br = transB ? N : K, bc = transB ? K : N;
  size_t na = (size_t)(ar * ac) * sizeof(uint16_t), nb = (size_t)(br * bc) * sizeof(uint16_t);
  uint16_t *a = scratch(0, na), *b = scratch(1, nb);
  if (!a || !b) {
    out_of_scratch(na + nb);
    af_gemm_unbuffered(transA, transB, M, N, K, alpha, A, AF_OPD_F32_AS_BF16, lda, B, AF_OPD_F32_AS_BF16, ldb, beta,
                       C, ldc);
    return;
  }
  af_f32_to_bf16_rows(a, ac, A, lda, ar, ac);
  af_f32_to_bf16_rows(b, bc, B, ldb, br, bc);
  af_gemm_bf16(transA, transB, M, N, K, alpha, a, (int)ac, b, (int)bc, beta, C, ldc);
}

void af_gemm_batched(af_precision prec, int transA, int transB, int M, int N, int K, float alpha,
                     const float *A, int lda, long strideA, const float *B, int ldb, long strideB,
                     float beta, float *C, int ldc, long strideC, int batch) {
  if (prec != AF_PREC_BF16) {
    af_sgemm_batched(transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC,
                     batch);
    return;
  }
  if (batch <= 1 || g_serial || omp_in_parallel()) {
    for (int i = 0; i < batch; i++)
      af_gemm(prec, transA, transB, M, N, K, alpha, A + i * strideA, lda, B + i * strideB, ldb, beta,
              C + i * strideC, ldc);
    return;
  }
  af_gemm_serial_begin();
#pragma omp parallel for schedule(static)
  for (int i = 0; i < batch; i++)
    af_gemm(prec, transA, transB, M, N, K, alpha, A + (long)i * strideA, lda, B + (long)i * strideB, ldb, beta,
            C + (long)i * strideC, ldc);
  af_gemm_serial_end();
}

/* The "flags" line of /proc/cpuinfo has word w ("avx512_bf16"); -1 when unreadable. */
static int cpu_flag(const char *w) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return -1;
  char line[8192];
  int found = 0, seen = 0;
  while (!seen && fgets(line, sizeof line, f)) {
    if (strncmp(line, "flags", 5)) continue;
    seen = 1;
    size_t n = strlen(w);
    for (char *p = strstr(line, w); p && !found; p = strstr(p + 1, w))
      found = (p[-1] == ' ' || p[-1] == '\t' || p[-1] == ':') && (p[n] == ' ' || p[n] == '\n' || !p[n]);
  }
  fclose(f);
  return seen ? found : -1;
}

int af_gemm_bf16_info(char *name, size_t name_cap, char *why, size_t why_cap) {
  int amx = cpu_flag("amx_bf16"), avx = cpu_flag("avx512_bf16");
  char flags[96];
  if (amx < 0) snprintf(flags, sizeof flags, "/proc/cpuinfo unreadable");
  else if (amx || avx) snprintf(flags, sizeof flags, "the CPU has %s%s%s", amx ? "amx_bf16" : "",
                                amx && avx ? " and " : "", avx ? "avx512_bf16" : "");
  else snprintf(flags, sizeof flags, "the CPU has neither amx_bf16 nor avx512_bf16");
#ifdef AF_HAVE_DNNL
  const dnnl_version_t *v = dnnl_version();
  const char *isa = dnnl_isa_name();
  snprintf(name, name_cap, "oneDNN %d.%d.%d matmul bf16 (%s, %s)", v->major, v->minor, v->patch,
           af_matmul_impl_name(1), isa);
  int eff = (int)dnnl_get_effective_cpu_isa();
  int native = eff == dnnl_cpu_isa_avx512_core_bf16 || eff == dnnl_cpu_isa_avx512_core_amx;
  snprintf(why, why_cap, "%s; oneDNN runs %s", flags, isa);
  return native;
#else
  snprintf(name, name_cap, "OpenBLAS sgemm on bf16-rounded inputs (no oneDNN: emulated)");
  snprintf(why, why_cap, "%s; no oneDNN in this build, so bf16 is emulated", flags);
  return 0;
#endif
}

/* ---- OpenBLAS core type ---- */
static int weak_core(const char *c) {
  static const char *const weak[] = {"prescott", "generic", "core2", "katmai", "coppermine",
                                     "northwood", "penryn", "dunnington", "nehalem", "atom", NULL};
  for (int i = 0; weak[i]; i++)
    if (!strcasecmp(c, weak[i])) return 1;
  return 0;
}

void af_gemm_preinit(char **argv) {
  if (getenv("OPENBLAS_CORETYPE") || getenv("AF_NO_REEXEC") || getenv("AF_GEMM_PREINIT_DONE")) return;
  if (af_gemm_current() != AF_GEMM_OPENBLAS) return;
  const char *core = openblas_get_corename();
  if (!core || !weak_core(core)) return;
  __builtin_cpu_init();
  const char *want = NULL;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    want = "SkylakeX";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    want = "Haswell";
  if (!want) return;
  setenv("OPENBLAS_CORETYPE", want, 1);
  setenv("AF_GEMM_PREINIT_DONE", "1", 1);  /* never loop */
  fflush(NULL);
  execv("/proc/self/exe", argv);
  /* exec failed: carry on with the slow kernels, but say so */
  fprintf(stderr, "autofreeze: warning: OpenBLAS chose %s kernels; re-exec with OPENBLAS_CORETYPE=%s failed; "
          "set it in the environment for full speed\n", core, want);
}
