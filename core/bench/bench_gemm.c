/* `autofreeze bench gemm`: fp32 GEMM GFLOP/s of the training step's linear-layer shapes
 * for every GEMM library built in (oneDNN, OpenBLAS), median of repeats after warm-up.
 * Talks to the CPU GEMM layer directly: this benchmark is about the libraries. */
#include "core/base/timing.h"
#include "core/bench/bench_gemm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>
#include "core/bench/bench.h"
#include "core/base/status.h"
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

static double shape_flops(const gemm_shape *s) { return 2.0 * s->M * s->N * s->K; }

/* The libraries built in: their ids into libs, their count returned. */
static int built_libs(int *libs) {
  int nl = 0;
  for (int lib = 0; lib < AF_GEMM_NLIBS; lib++)
    if (af_gemm_available((af_gemm_lib)lib)) libs[nl++] = lib;
  return nl;
}

/* Per library: FLOP-weighted rate of the shape set into total[li] and per-shape rates
 * (median over repeats) into rates[li][shape] when given; -1 on allocation failure.
 * The libraries take turns by rounds (each round times every shape once per library, in
 * a rotating order), so that load drift on a shared machine hits them alike. Not call by
 * call: OpenBLAS's workers spin for a while after a call and slow down a oneDNN call
 * right after it (oneDNN lost up to 3x that way), so each turn starts after a pause and
 * one untimed call. */
static int run_set(const gemm_shape *s, int n, const int *libs, int nl, int warmup, int repeats,
                   double rates[][12], double *total) {
  size_t na = 0, nb = 0, nc = 0;
  for (int i = 0; i < n; i++) {
    size_t a = (size_t)s[i].M * s[i].K, b = (size_t)s[i].K * s[i].N, c = (size_t)s[i].M * s[i].N;
    na = a > na ? a : na, nb = b > nb ? b : nb, nc = c > nc ? c : nc;
  }
  float *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B), *Cm = calloc(nc, sizeof *Cm);
  double (*t)[12][64] = malloc(sizeof(double[AF_GEMM_NLIBS][12][64]));
  if (!A || !B || !Cm || !t) { free(A); free(B); free(Cm); free(t); return -1; }
  for (size_t i = 0; i < na; i++) A[i] = (float)((i * 7919u) % 1000) * 1e-3f - 0.5f;
  for (size_t i = 0; i < nb; i++) B[i] = (float)((i * 104729u) % 1000) * 1e-3f - 0.5f;
  if (repeats > 64) repeats = 64;
  for (int r = 0; r < warmup + repeats; r++)
    for (int j = 0; j < nl; j++) {
      int li = (j + r) % nl;
      (void)af_gemm_select((af_gemm_lib)libs[li]);
      if (nl > 1) nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
      for (int i = -1; i < n; i++) {
        const gemm_shape *g = &s[i < 0 ? 0 : i];
        int lda = g->tA ? g->M : g->K, ldb = g->tB ? g->K : g->N;
        double t0 = af_now();
        af_sgemm(g->tA, g->tB, g->M, g->N, g->K, 1.0f, A, lda, B, ldb, 0.0f, Cm, g->N);
        double dt = af_now() - t0;
        if (i >= 0 && r >= warmup) t[li][i][r - warmup] = dt;
      }
    }
  double flops = 0, secs[AF_GEMM_NLIBS] = {0};
  for (int i = 0; i < n; i++) {
    flops += shape_flops(&s[i]);
    for (int li = 0; li < nl; li++) {
      qsort(t[li][i], repeats, sizeof(double), af_cmp_double);
      double med = t[li][i][repeats / 2];
      if (rates) rates[li][i] = shape_flops(&s[i]) / med * 1e-9;
      secs[li] += med;
    }
  }
  for (int li = 0; li < nl; li++) total[li] = flops / secs[li] * 1e-9;
  free(A); free(B); free(Cm); free(t);
  return 0;
}

double af_bench_best_sgemm_gflops(int C, int I, int N) {
  if (af_gemm_init() != AF_OK) return -1;
  gemm_shape s[12];
  int n = layer_shapes(s, C, I, N), libs[AF_GEMM_NLIBS], nl = built_libs(libs);
  af_gemm_lib prev = af_gemm_current();
  double total[AF_GEMM_NLIBS], best = -1;
  if (nl > 0 && run_set(s, n, libs, nl, 1, 3, NULL, total) == 0)
    for (int li = 0; li < nl; li++) best = total[li] > best ? total[li] : best;
  (void)af_gemm_select(prev);
  return best;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: autofreeze bench gemm [--threads N] [--shapes minilm|bert-base|all] [--rows N]\n"
          "                             [--repeats R]\n\n"
          "Times fp32 GEMM (GFLOP/s, median of R repeats after one warm-up; the libraries\n"
          "take turns round by round) for one encoder\n"
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
    int libs[AF_GEMM_NLIBS], nl = built_libs(libs);
    if (run_set(s, n, libs, nl, 1, repeats, rates, total) != 0) {
      fprintf(stderr, "autofreeze bench gemm: out of memory\n");
      return 1;
    }
    printf("\n%s (C=%d, I=%d, N=%d)\n%-15s %2s %2s %6s %6s %6s", sets[si].name, sets[si].C, sets[si].I, rows, "gemm",
           "tA", "tB", "M", "N", "K");
    for (int li = 0; li < nl; li++) printf("  %10s", libs[li] == AF_GEMM_ONEDNN ? "oneDNN" : "OpenBLAS");
    printf("   GFLOP/s\n");
    for (int i = 0; i < n; i++) {
      printf("%-15s %2d %2d %6d %6d %6d", s[i].name, s[i].tA, s[i].tB, s[i].M, s[i].N, s[i].K);
      for (int li = 0; li < nl; li++) printf("  %10.1f", rates[li][i]);
      printf("\n");
    }
    printf("%-36s", "layer (FLOP-weighted)");
    int best = -1;
    for (int li = 0; li < nl; li++) {
      printf("  %10.1f", total[li]);
      if (best < 0 || total[li] > total[best]) best = li;
    }
    printf("\n");
    for (int li = 0; li < nl; li++) printf("  %s\n", af_gemm_lib_name((af_gemm_lib)libs[li]));
    if (best >= 0)
      printf("best sgemm rate %s: %.1f GFLOP/s (%s)\n", sets[si].name, total[best],
             af_gemm_lib_name((af_gemm_lib)libs[best]));
  }
  (void)af_gemm_select(prev);
  return 0;
}
