/* Shared test helpers; see testutil.h. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "tests/testutil.h"
#include "core/model/safetensors.h"
#include "core/results/results_read.h"
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int af_test_failures = 0;

int af_test_close_d(const char *label, const double *got, const double *ref, size_t n, double atol, double rtol) {
  int bad = 0;
  double maxabs = 0, maxrel = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs(got[i] - ref[i]);
    double r = d / (fabs(ref[i]) + 1e-30);
    if (!(d <= atol + rtol * fabs(ref[i]))) {  /* NaN fails too */
      if (bad < 5) fprintf(stderr, "  %s[%zu]: got %.9g want %.9g (abs %.3g)\n", label, i, got[i], ref[i], d);
      bad++;
    }
    if (d > maxabs || isnan(d)) maxabs = d;
    if (fabs(ref[i]) > atol && r > maxrel) maxrel = r;
  }
  printf("%-48s n=%-8zu max_abs=%.3e max_rel=%.3e %s\n", label, n, maxabs, maxrel, bad ? "FAIL" : "ok");
  if (bad) af_test_failures++;
  return bad;
}

int af_test_close(const char *label, const float *got, const float *ref, size_t n, double atol, double rtol) {
  double *g = malloc(n * sizeof *g), *r = malloc(n * sizeof *r);
  if (!g || !r) { fprintf(stderr, "out of memory\n"); exit(1); }
  for (size_t i = 0; i < n; i++) { g[i] = got[i]; r[i] = ref[i]; }
  int bad = af_test_close_d(label, g, r, n, atol, rtol);
  free(g);
  free(r);
  return bad;
}

int af_test_done(const char *name) {
  if (af_test_failures) {
    printf("%s: %d check(s) FAILED\n", name, af_test_failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}

void af_test_skip(const char *why) {
  printf("SKIPPED: %s\n", why);
  exit(77);
}

const char *af_test_source_dir(void) {
  const char *s = getenv("AF_SOURCE_DIR");
  return s ? s : ".";
}

const char *af_test_model_dir(void) {
  const char *m = getenv("AF_MODEL_DIR");
  if (!m) return NULL;
  char p[4096];
  snprintf(p, sizeof p, "%s/model.safetensors", m);
  return access(p, R_OK) == 0 ? m : NULL;
}

static char tmp_dir[4096];
static pid_t tmp_owner;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

/* At exit of the process that made it (not of a forked child): the folder goes, unless a check
 * failed or AF_KEEP_TMP is set, when it stays for a look and its path is printed. */
static void remove_tmpdir(void) {
  if (!tmp_dir[0] || getpid() != tmp_owner) return;
  if (af_test_failures || getenv("AF_KEEP_TMP")) {
    fprintf(stderr, "test files kept in %s\n", tmp_dir);
    return;
  }
  nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *af_test_tmpdir(void) {
  if (tmp_dir[0]) return tmp_dir;
  const char *t = getenv("TMPDIR");
  snprintf(tmp_dir, sizeof tmp_dir, "%s/aftest.XXXXXX", t ? t : "/tmp");
  if (!mkdtemp(tmp_dir)) { perror("mkdtemp"); exit(1); }
  tmp_owner = getpid();
  atexit(remove_tmpdir);
  return tmp_dir;
}

static const char *const tiny_words[] = {"the", "of", "and", "to", "a", "in", "is", "it", "that", "was", "for", "on",
                                         "are", "as", "with", "his", "they", "at", "be", "this", "from", "have", "or",
                                         "by", "one"};

void af_test_write_you_split(const char *dir, const char *name, int n, uint64_t seed, int min_len, int len_span) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s.tsv", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) { perror(path); exit(1); }
  fprintf(f, "sentence\tlabel\n");
  uint64_t x = seed;
  for (int i = 0; i < n; i++) {
    int len = min_len + (int)((x = x * 6364136223846793005ull + 1442695040888963407ull) >> 60) % len_span;
    int label = i % 2, pos = (int)((x >> 33) % (uint64_t)len);
    for (int w = 0; w < len; w++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      fprintf(f, "%s%s", w ? " " : "", (label && w == pos) ? "you" : tiny_words[(x >> 35) % 25]);
    }
    fprintf(f, "\t%d\n", label);
  }
  fclose(f);
}

int af_test_tiny_setup(char *model, char *data, size_t cap) {
  snprintf(model, cap, "%s/tests/fixtures/bert_tiny/cls", af_test_source_dir());
  snprintf(data, cap, "%s/task", af_test_tmpdir());
  if (mkdir(data, 0755) != 0 && errno != EEXIST) return -1;
  af_test_write_you_split(data, "train", 320, 1, 4, 7);
  af_test_write_you_split(data, "dev", 64, 2, 4, 7);
  return 0;
}

void af_test_tiny_train_opts(af_train_opts *o, const char *model, const char *data, const char *out, af_policy *p) {
  af_train_opts_default(o);
  o->model_dir = model;
  o->task = "sst2";
  o->data_dir = data;
  o->out = out;
  o->policy = p;
  o->epochs = 6;
  o->batch = 16;
  o->max_len = 16;
  o->optim.lr = 3e-3f;
  o->intervals = 6;
  o->threads = 1;  /* the suite may run next to other programs; one thread also fixes the GEMM split */
  o->quiet = 1;
  o->seed = 3;
}

static double *read_dataset(const char *file, const char *path, int twod, size_t *n) {
  af_results_reader *rr = NULL;
  double *v = NULL;
  size_t rows = 0, cols = 1;
  *n = 0;
  af_status s = af_results_open_read(file, &rr);
  if (s == AF_OK) s = twod ? af_results_read_2d(rr, path, &v, &rows, &cols) : af_results_read_1d(rr, path, &v, &rows);
  if (s != AF_OK) {
    af_test_failures++;
    fprintf(stderr, "reading %s from %s: %s\n", path, file, af_last_error());
  }
  af_results_close_read(&rr);
  if (s == AF_OK) *n = rows * cols;
  return s == AF_OK ? v : NULL;
}

double *af_test_read_col(const char *file, const char *path, size_t *n) { return read_dataset(file, path, 0, n); }
double *af_test_read_flat(const char *file, const char *path, size_t *n) { return read_dataset(file, path, 1, n); }

int af_test_same_col(const char *a_file, const char *b_file, const char *col) {
  size_t na = 0, nb = 0;
  double *a = af_test_read_col(a_file, col, &na), *b = af_test_read_col(b_file, col, &nb);
  int same = na == nb && na > 0 && a && b && !memcmp(a, b, na * sizeof *a);
  free(a);
  free(b);
  return same;
}

const char *af_test_st_meta(const char *dir, const char *name, const char *key, char *buf, size_t cap) {
  char path[4600];
  af_st *st = NULL;
  buf[0] = 0;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (af_st_open(path, &st) != AF_OK) return buf;
  const char *v = af_st_metadata(st, key);
  snprintf(buf, cap, "%s", v ? v : "");
  af_st_close(st);
  return buf;
}
