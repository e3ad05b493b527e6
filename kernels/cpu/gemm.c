/* The CPU GEMM layer (see gemm.h): library choice, names with versions and ISA, row-major
 * sgemm and its strided batched form, and the OpenBLAS core-type re-exec. */
#include "kernels/cpu/gemm.h"
#include <ctype.h>
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
  if (lib == AF_GEMM_ONEDNN) return 1;
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
    else return AF_FAIL(AF_ERR_ARG, "AF_GEMM=%s: expected onednn or openblas", e);
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
  if (af_gemm_current() == AF_GEMM_ONEDNN) {
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
