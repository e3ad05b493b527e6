/* `autofreeze bench gemm`: fp32 GEMM GFLOP/s of the training step's linear-layer shapes
 * for every GEMM library built in (oneDNN, OpenBLAS), median of repeats after warm-up.
 * Talks to the CPU GEMM layer directly: this benchmark is about the libraries. */
#include "core/timing.h"
#include "core/bench_gemm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>
#include "core/bench.h"
#include "core/status.h"
#include "kernels/cpu/gemm.h"

typedef struct { const char *name; int tA, tB, M, N, K; } gemm_shape;

/* the 12 GEMMs of one encoder layer: for each linear (OC x IC) forward, dinp, dw */
static int layer_shapes(gemm_shape *s, int C, int I, int N) {
  static const char *const lin[4] = {"qkv", "attn_out", "ffn_up", "ffn_down"};
  static const char *const names[4][3] = {{"qkv fwd", "qkv dinp", "qkv dw"},
                                          {"attn_out fwd", "attn_out dinp", "attn_out dw"},
                                          {"ffn_up fwd", "ffn_up dinp", "ffn_up dw"},
                                          {"ffn_down fwd", "ffn_down dinp", "ffn_down dw"}};
  int oc[4] = {3 * C, C, I, C}, ic[4] = {C, C, C, I};
  int n = 0;
  for (int l = 0; l < 4; l++) {
    (void)lin;
    s[n++] = (gemm_shape){names[l][0], 0, 1, N, oc[l], ic[l]};  /* out = inp w^T */
    s[n++] = (gemm_shape){names[l][1], 0, 0, N, ic[l], oc[l]};  /* dinp = dout w */
    s[n++] = (gemm_shape){names[l][2], 1, 0, oc[l], ic[l], N};  /* dw += dout^T inp */
  }
  return n;
}

/* median seconds of one GEMM; -1 on allocation failure */
static double time_shape(const gemm_shape *s, int warmup, int repeats) {
  size_t na = (size_t)s->M * s->K, nb = (size_t)s->K * s->N, nc = (size_t)s->M * s->N;
  float *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B), *Cm = malloc(nc * sizeof *Cm);
  if (!A || !B || !Cm) { free(A); free(B); free(Cm); return -1; }
  for (size_t i = 0; i < na; i++) A[i] = (float)((i * 7919u) % 1000) * 1e-3f - 0.5f;
  for (size_t i = 0; i < nb; i++) B[i] = (float)((i * 104729u) % 1000) * 1e-3f - 0.5f;
  memset(Cm, 0, nc * sizeof *Cm);
  int lda = s->tA ? s->M : s->K, ldb = s->tB ? s->K : s->N;
  double t[64];
  if (repeats > 64) repeats = 64;
  for (int r = 0; r < warmup + repeats; r++) {
    double t0 = af_now();
    af_sgemm(s->tA, s->tB, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, Cm, s->N);
    double dt = af_now() - t0;
    if (r >= warmup) t[r - warmup] = dt;
  }
  qsort(t, repeats, sizeof *t, af_cmp_double);
  free(A); free(B); free(Cm);
  return t[repeats / 2];
}

static double shape_flops(const gemm_shape *s) { return 2.0 * s->M * s->N * s->K; }

/* FLOP-weighted rate of a shape set for the current library; fills per-shape rates */
static double run_set(const gemm_shape *s, int n, int warmup, int repeats, double *rates) {
  double flops = 0, secs = 0;
  for (int i = 0; i < n; i++) {
    double t = time_shape(&s[i], warmup, repeats);
    if (t <= 0) return -1;
    if (rates) rates[i] = shape_flops(&s[i]) / t * 1e-9;
    flops += shape_flops(&s[i]);
    secs += t;
  }
  return flops / secs * 1e-9;
}

double af_bench_best_sgemm_gflops(int C, int I, int N) {
  if (af_gemm_init() != AF_OK) return -1;
  gemm_shape s[12];
  int n = layer_shapes(s, C, I, N);
  af_gemm_lib prev = af_gemm_current();
  double best = -1;
  for (int lib = 0; lib < AF_GEMM_NLIBS; lib++) {
    if (!af_gemm_available((af_gemm_lib)lib) || af_gemm_select((af_gemm_lib)lib) != AF_OK) continue;
    double r = run_set(s, n, 1, 3, NULL);
    if (r > best) best = r;
  }
  (void)af_gemm_select(prev);
  return best;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: autofreeze bench gemm [--threads N] [--shapes minilm|bert-base|all] [--rows N]\n"
          "                             [--repeats R]\n\n"
          "Times fp32 GEMM (GFLOP/s, median of R repeats after one warm-up) for one encoder\n"
          "layer's linear layers at N = B*T rows (default 4096 = 32 x 128): forward, dinp and\n"
          "dw of QKV, attention output, FFN up and FFN down, for every GEMM library built in.\n"
          "The FLOP-weighted rate of the best library is the yardstick of 'bench step'.\n"
          "  --threads N   threads (default: OpenMP default)\n"
          "  --shapes S    minilm (C=384, I=1536), bert-base (C=768, I=3072) or all (default)\n"
          "  --rows N      rows N = B*T (default 4096)\n"
          "  --repeats R   timed repeats per shape (default 5)\n"
          "environment: AF_GEMM=onednn|openblas picks the library used for training;\n"
          "OPENBLAS_CORETYPE overrides OpenBLAS's kernel choice (see docs).\n");
}

int af_bench_gemm(int argc, char **argv) {
  int threads = 0, rows = 4096, repeats = 5;
  const char *shapes = "all";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    if (i + 1 >= argc) { fprintf(stderr, "autofreeze bench gemm: %s needs a value (or unknown option)\n", a); usage(stderr); return 2; }
    const char *v = argv[++i];
    char *end = NULL;
    if (!strcmp(a, "--threads")) threads = (int)strtol(v, &end, 10);
    else if (!strcmp(a, "--rows")) rows = (int)strtol(v, &end, 10);
    else if (!strcmp(a, "--repeats")) repeats = (int)strtol(v, &end, 10);
    else if (!strcmp(a, "--shapes")) { shapes = v; end = (char *)v + strlen(v); }
    else { fprintf(stderr, "autofreeze bench gemm: unknown option '%s'\n", a); usage(stderr); return 2; }
    if (!end || *end || (strcmp(a, "--shapes") && strtol(v, NULL, 10) <= 0)) {
      fprintf(stderr, "autofreeze bench gemm: %s %s: expected a positive integer\n", a, v);
      return 2;
    }
  }
  if (strcmp(shapes, "minilm") && strcmp(shapes, "bert-base") && strcmp(shapes, "all")) {
    fprintf(stderr, "autofreeze bench gemm: --shapes %s: expected minilm, bert-base or all\n", shapes);
    return 2;
  }
  if (repeats > 64) repeats = 64;
  if (af_gemm_init() != AF_OK) { fprintf(stderr, "autofreeze bench gemm: %s\n", af_last_error()); return 1; }
  if (threads > 0) af_gemm_set_threads(threads);
  af_gemm_lib prev = af_gemm_current();
  printf("threads %d, rows N=%d, median of %d after 1 warm-up; training uses %s\n", omp_get_max_threads(), rows,
         repeats, af_gemm_lib_name(prev));
  double la[3];
  if (getloadavg(la, 3) == 3) printf("load average: %.2f %.2f %.2f (the machine may be shared)\n", la[0], la[1], la[2]);
  struct { const char *name; int C, I; } sets[2] = {{"minilm", 384, 1536}, {"bert-base", 768, 3072}};
  for (int si = 0; si < 2; si++) {
    if (strcmp(shapes, "all") && strcmp(shapes, sets[si].name)) continue;
    gemm_shape s[12];
    int n = layer_shapes(s, sets[si].C, sets[si].I, rows);
    double rates[AF_GEMM_NLIBS][12], total[AF_GEMM_NLIBS];
    int have[AF_GEMM_NLIBS] = {0};
    for (int lib = 0; lib < AF_GEMM_NLIBS; lib++) {
      if (!af_gemm_available((af_gemm_lib)lib) || af_gemm_select((af_gemm_lib)lib) != AF_OK) continue;
      total[lib] = run_set(s, n, 1, repeats, rates[lib]);
      if (total[lib] <= 0) { fprintf(stderr, "autofreeze bench gemm: out of memory\n"); return 1; }
      have[lib] = 1;
    }
    printf("\n%s (C=%d, I=%d, N=%d)\n%-15s %2s %2s %6s %6s %6s", sets[si].name, sets[si].C, sets[si].I, rows, "gemm",
           "tA", "tB", "M", "N", "K");
    for (int lib = 0; lib < AF_GEMM_NLIBS; lib++)
      if (have[lib]) printf("  %10s", lib == AF_GEMM_ONEDNN ? "oneDNN" : "OpenBLAS");
    printf("   GFLOP/s\n");
    for (int i = 0; i < n; i++) {
      printf("%-15s %2d %2d %6d %6d %6d", s[i].name, s[i].tA, s[i].tB, s[i].M, s[i].N, s[i].K);
      for (int lib = 0; lib < AF_GEMM_NLIBS; lib++)
        if (have[lib]) printf("  %10.1f", rates[lib][i]);
      printf("\n");
    }
    printf("%-36s", "layer (FLOP-weighted)");
    int best = -1;
    for (int lib = 0; lib < AF_GEMM_NLIBS; lib++)
      if (have[lib]) {
        printf("  %10.1f", total[lib]);
        if (best < 0 || total[lib] > total[best]) best = lib;
      }
    printf("\n");
    for (int lib = 0; lib < AF_GEMM_NLIBS; lib++)
      if (have[lib]) printf("  %s\n", af_gemm_lib_name((af_gemm_lib)lib));
    if (best >= 0)
      printf("best sgemm rate %s: %.1f GFLOP/s (%s)\n", sets[si].name, total[best], af_gemm_lib_name((af_gemm_lib)best));
  }
  (void)af_gemm_select(prev);
  return 0;
}
