/* `autofreeze bench gemm`: fp32 GEMM GFLOP/s of the training step's linear-layer shapes
 * for every GEMM implementation the CPU backend has built in (oneDNN sgemm, OpenBLAS,
 * oneDNN matmul primitives), and the bf16 compute path (AF_PREC_BF16: fp32 operands rounded
 * to bf16, then the bf16 GEMM; the rounding is timed too), median of repeats after warm-up. Goes through the op table only (gemm_impls/gemm_use/gemm), with
 * the operands in the backend's own memory, so it would time a device backend alike. */
#include "core/base/timing.h"
#include "core/bench/bench_gemm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>
#include "core/bench/bench.h"
#include "core/base/status.h"
#include "kernels/ops.h"

enum { MAX_IMPLS = 8, MAX_SHAPES = 12, MAX_REPEATS = 64 };

typedef struct { const char *name; int tA, tB, M, N, K; } gemm_shape;

/* the 12 GEMMs of one encoder layer: for each linear (OC x IC) forward, dinp, dw */
static int layer_shapes(gemm_shape *s, int C, int I, int N) {
  static const char *const names[4][3] = {{"qkv fwd", "qkv dinp", "qkv dw"},
                                          {"attn_out fwd", "attn_out dinp", "attn_out dw"},
                                          {"ffn_up fwd", "ffn_up dinp", "ffn_up dw"},
                                          {"ffn_down fwd", "ffn_down dinp", "ffn_down dw"}};
  int oc[4] = {3 * C, C, I, C}, ic[4] = {C, C, C, I};
  int n = 0;
  for (int l = 0; l < 4; l++) {
    s[n++] = (gemm_shape){names[l][0], 0, 1, N, oc[l], ic[l]};  /* out = inp w^T */
    s[n++] = (gemm_shape){names[l][1], 0, 0, N, ic[l], oc[l]};  /* dinp = dout w */
    s[n++] = (gemm_shape){names[l][2], 1, 0, oc[l], ic[l], N};  /* dw += dout^T inp */
  }
  return n;
}

static double shape_flops(const gemm_shape *s) { return 2.0 * s->M * s->N * s->K; }

/* The backend's GEMM implementations: names (at most MAX_IMPLS), count returned, the one in
 * use into *current. */
static int impls(af_backend *be, const char **names, int *current) {
  int n = be->gemm_impls(be, names, MAX_IMPLS, current);
  return n > MAX_IMPLS ? MAX_IMPLS : n;
}

/* A, B and C in backend memory, large enough for every shape; A and B hold fixed values in
 * [-0.5, 0.5), C starts zeroed. */
typedef struct { float *A, *B, *C; } operands;

static void operands_free(af_backend *be, operands *o) {
  be->free(be, o->A), be->free(be, o->B), be->free(be, o->C);
  o->A = o->B = o->C = NULL;
}

static int operands_alloc(af_backend *be, const gemm_shape *s, int n, operands *o) {
  size_t na = 0, nb = 0, nc = 0;
  for (int i = 0; i < n; i++) {
    size_t a = (size_t)s[i].M * s[i].K, b = (size_t)s[i].K * s[i].N, c = (size_t)s[i].M * s[i].N;
    na = a > na ? a : na, nb = b > nb ? b : nb, nc = c > nc ? c : nc;
  }
  *o = (operands){NULL, NULL, NULL};
  float *host = malloc((na > nb ? na : nb) * sizeof *host);
  int ok = host && be->alloc(be, (void **)&o->A, na * sizeof(float)) == AF_OK &&
           be->alloc(be, (void **)&o->B, nb * sizeof(float)) == AF_OK &&
           be->alloc(be, (void **)&o->C, nc * sizeof(float)) == AF_OK;
  if (ok) {
    for (size_t i = 0; i < na; i++) host[i] = (float)((i * 7919u) % 1000) * 1e-3f - 0.5f;
    ok = be->to_device(be, o->A, host, na * sizeof(float)) == AF_OK;
  }
  if (ok) {
    for (size_t i = 0; i < nb; i++) host[i] = (float)((i * 104729u) % 1000) * 1e-3f - 0.5f;
    ok = be->to_device(be, o->B, host, nb * sizeof(float)) == AF_OK;
  }
  free(host);
  if (!ok) operands_free(be, o);
  return ok ? 0 : -1;
}

/* Seconds of one GEMM of shape g, waited for; < 0 when the backend reports an error. */
static double time_gemm(af_backend *be, const gemm_shape *g, const operands *o, af_precision prec) {
  int lda = g->tA ? g->M : g->K, ldb = g->tB ? g->K : g->N;
  double t0 = af_now();
  be->gemm(be, g->tA, g->tB, g->M, g->N, g->K, 1.0f, o->A, lda, 0, o->B, ldb, 0, 0.0f, o->C, g->N, 0, 1, prec);
  if (be->sync(be) != AF_OK) return -1;
  return af_now() - t0;
}

/* Per implementation 0..nl-1 of be: FLOP-weighted rate of the shape set into total[li] and
 * per-shape rates (median over repeats) into rates[li][shape] when given; -1 on allocation
 * failure, -2 when the backend reports an error (af_last_error says which). The
 * implementations take turns by rounds (each round times every shape once per
 * implementation, in a rotating order), so that load drift on a shared machine hits them
 * alike. Not call by call: OpenBLAS's workers spin for a while after a call and slow down a
 * oneDNN call right after it (oneDNN lost up to 3x that way), so each turn starts after a
 * pause and one untimed call. Column nl (when bf16_col) is the bf16 path, with the library
 * `cur` (its rounding and oneDNN's bf16 matmul do not depend on the fp32 library). */
static int run_set(af_backend *be, const gemm_shape *s, int n, int nl, int bf16_col, int cur, int warmup, int repeats,
                   double rates[][MAX_SHAPES], double *total) {
  const int nc = nl + (bf16_col != 0);
  operands o;
  double (*t)[MAX_SHAPES][MAX_REPEATS] = malloc(sizeof(double[MAX_IMPLS + 1][MAX_SHAPES][MAX_REPEATS]));
  if (!t || operands_alloc(be, s, n, &o) != 0) { free(t); return -1; }
  if (repeats > MAX_REPEATS) repeats = MAX_REPEATS;
  int rc = 0;
  for (int r = 0; r < warmup + repeats && rc == 0; r++)
    for (int j = 0; j < nc && rc == 0; j++) {
      int li = (j + r) % nc;
      if (be->gemm_use(be, li < nl ? li : cur) != AF_OK) { rc = -2; break; }
      if (nc > 1) nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
      for (int i = -1; i < n; i++) {
        double dt = time_gemm(be, &s[i < 0 ? 0 : i], &o, li < nl ? AF_PREC_FP32 : AF_PREC_BF16);
        if (dt < 0) { rc = -2; break; }
        if (i >= 0 && r >= warmup) t[li][i][r - warmup] = dt;
      }
    }
  double flops = 0, secs[MAX_IMPLS] = {0};
  for (int i = 0; i < n && rc == 0; i++) {
    flops += shape_flops(&s[i]);
    for (int li = 0; li < nc; li++) {
      qsort(t[li][i], repeats, sizeof(double), af_cmp_double);
      double med = t[li][i][repeats / 2];
      if (rates) rates[li][i] = shape_flops(&s[i]) / med * 1e-9;
      secs[li] += med;
    }
  }
  for (int li = 0; li < nc && rc == 0; li++) total[li] = flops / secs[li] * 1e-9;
  operands_free(be, &o);
  free(t);
  return rc;
}

double af_bench_best_sgemm_gflops(int C, int I, int N) {
  af_backend *be = NULL;
  if (af_backend_open("cpu", 0, &be) != AF_OK) return -1;
  gemm_shape s[MAX_SHAPES];
  const char *names[MAX_IMPLS];
  int prev = -1, n = layer_shapes(s, C, I, N), nl = impls(be, names, &prev);
  double total[MAX_IMPLS], best = -1;
  if (nl > 0 && run_set(be, s, n, nl, 0, prev, 1, 3, NULL, total) == 0)
    for (int li = 0; li < nl; li++) best = total[li] > best ? total[li] : best;
  if (prev >= 0) (void)be->gemm_use(be, prev);
  af_backend_close(be);
  return best;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: autofreeze bench gemm [--threads N] [--shapes minilm|bert-base|all] [--rows N]\n"
          "                             [--repeats R]\n\n"
          "Times fp32 GEMM (GFLOP/s, median of R repeats after one warm-up; the libraries\n"
          "take turns round by round), and the bf16 path (fp32 operands rounded to bf16, then\n"
          "oneDNN's bf16 matmul; the rounding counts), for one encoder\n"
          "layer's linear layers at N = B*T rows (default 4096 = 32 x 128): forward, dinp and\n"
          "dw of QKV, attention output, FFN up and FFN down, for every GEMM library built in.\n"
          "The FLOP-weighted rate of the best library is the yardstick of 'bench step'.\n"
          "  --threads N   threads (default: OpenMP default)\n"
          "  --shapes S    minilm (C=384, I=1536), bert-base (C=768, I=3072) or all (default)\n"
          "  --rows N      rows N = B*T (default 4096)\n"
          "  --repeats R   timed repeats per shape (default 5)\n"
          "environment: AF_GEMM=onednn|openblas|onednn-matmul picks the fp32 library used for training;\n"
          "OPENBLAS_CORETYPE overrides OpenBLAS's kernel choice (see docs).\n");
}

typedef struct {
  int threads, rows, repeats;
  const char *shapes;
} gemm_opts;

/* -1 to go on, else the exit code (help, usage error). */
static int parse_opts(int argc, char **argv, gemm_opts *o) {
  *o = (gemm_opts){0, 4096, 5, "all"};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    if (i + 1 >= argc) { fprintf(stderr, "autofreeze bench gemm: %s needs a value (or unknown option)\n", a); usage(stderr); return 2; }
    const char *v = argv[++i];
    char *end = NULL;
    if (!strcmp(a, "--threads")) o->threads = (int)strtol(v, &end, 10);
    else if (!strcmp(a, "--rows")) o->rows = (int)strtol(v, &end, 10);
    else if (!strcmp(a, "--repeats")) o->repeats = (int)strtol(v, &end, 10);
    else if (!strcmp(a, "--shapes")) { o->shapes = v; end = (char *)v + strlen(v); }
    else { fprintf(stderr, "autofreeze bench gemm: unknown option '%s'\n", a); usage(stderr); return 2; }
    if (!end || *end || (strcmp(a, "--shapes") && strtol(v, NULL, 10) <= 0)) {
      fprintf(stderr, "autofreeze bench gemm: %s %s: expected a positive integer\n", a, v);
      return 2;
    }
  }
  if (strcmp(o->shapes, "minilm") && strcmp(o->shapes, "bert-base") && strcmp(o->shapes, "all")) {
    fprintf(stderr, "autofreeze bench gemm: --shapes %s: expected minilm, bert-base or all\n", o->shapes);
    return 2;
  }
  if (o->repeats > MAX_REPEATS) o->repeats = MAX_REPEATS;
  return -1;
}

/* The table of one shape set: a column per implementation (headed by the first word of its
 * name), the FLOP-weighted layer rate, the full names and the best one. */
static void print_set(const char *set, int C, int I, int rows, const gemm_shape *s, int n, const char **names,
                      int nl, int nc, double rates[][MAX_SHAPES], const double *total) {
  printf("\n%s (C=%d, I=%d, N=%d)\n%-15s %2s %2s %6s %6s %6s", set, C, I, rows, "gemm", "tA", "tB", "M", "N", "K");
  for (int li = 0; li < nc; li++)
    printf("  %10.*s", (int)strcspn(names[li], " "), li == nl ? "bf16" : strstr(names[li], "matmul") ? "matmul" : names[li]);
  printf("   GFLOP/s\n");
  for (int i = 0; i < n; i++) {
    printf("%-15s %2d %2d %6d %6d %6d", s[i].name, s[i].tA, s[i].tB, s[i].M, s[i].N, s[i].K);
    for (int li = 0; li < nc; li++) printf("  %10.1f", rates[li][i]);
    printf("\n");
  }
  printf("%-36s", "layer (FLOP-weighted)");
  int best = -1;
  for (int li = 0; li < nc; li++) {
    printf("  %10.1f", total[li]);
    if (li < nl && (best < 0 || total[li] > total[best])) best = li;
  }
  printf("\n");
  for (int li = 0; li < nc; li++) printf("  %s%s\n", li == nl ? "bf16: " : "", names[li]);
  if (best >= 0) printf("best sgemm rate %s: %.1f GFLOP/s (%s)\n", set, total[best], names[best]);
  if (nc > nl && best >= 0) printf("bf16 / best fp32 %s: %.2fx\n", set, total[nl] / total[best]);
}

int af_bench_gemm(int argc, char **argv) {
  gemm_opts o;
  int rc = parse_opts(argc, argv, &o);
  if (rc >= 0) return rc;
  af_backend *be = NULL;
  if (af_backend_open("cpu", o.threads, &be) != AF_OK) {
    fprintf(stderr, "autofreeze bench gemm: %s\n", af_last_error());
    return 1;
  }
  const char *names[MAX_IMPLS + 1];
  int prev = -1, nl = impls(be, names, &prev);
  names[nl] = be->bf16_name;
  printf("threads %d, rows N=%d, median of %d after 1 warm-up; training uses %s\n", omp_get_max_threads(), o.rows,
         o.repeats, be->gemm_name);
  double la[3];
  if (getloadavg(la, 3) == 3) printf("load average: %.2f %.2f %.2f (the machine may be shared)\n", la[0], la[1], la[2]);
  struct { const char *name; int C, I; } sets[2] = {{"minilm", 384, 1536}, {"bert-base", 768, 3072}};
  rc = 0;
  for (int si = 0; si < 2 && rc == 0; si++) {
    if (strcmp(o.shapes, "all") && strcmp(o.shapes, sets[si].name)) continue;
    gemm_shape s[MAX_SHAPES];
    int n = layer_shapes(s, sets[si].C, sets[si].I, o.rows);
    double rates[MAX_IMPLS + 1][MAX_SHAPES], total[MAX_IMPLS + 1];
    int r = run_set(be, s, n, nl, 1, prev, 1, o.repeats, rates, total);
    if (r != 0) {
      if (r == -1) fprintf(stderr, "autofreeze bench gemm: out of memory\n");
      else fprintf(stderr, "autofreeze bench gemm: %s\n", af_last_error());
      rc = 1;
      break;
    }
    print_set(sets[si].name, sets[si].C, sets[si].I, o.rows, s, n, names, nl, nl + 1, rates, total);
  }
  if (prev >= 0) (void)be->gemm_use(be, prev);
  af_backend_close(be);
  return rc;
}
