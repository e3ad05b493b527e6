/* The HDF5 results file: a round trip checked through the raw HDF5 API and through the
 * reader, error paths, and crash safety (a child SIGKILLs itself after unflushed writes, and
 * children killed at random moments while writing). With a path argument it only writes the
 * small deterministic file used by test_results_layout.sh. */
#include "core/results/results.h"
#include "core/results/results_read.h"
#include "tests/testutil.h"
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void path_in_tmp(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", af_test_tmpdir(), name); }

static af_step_record step_row(long i) {
  return (af_step_record){.step = i, .epoch = (int)(i / 1000), .loss = 1.0 / (double)i, .lr = 2e-5 * (double)(i % 7),
                          .frozen_depth = (int)(i / 900), .t_data = 0.001 * (double)i, .t_forward = 0.01,
                          .t_backward = 0.02, .t_optimizer = 0.003, .t_total = 0.034, .wall = 0.5 * (double)i,
                          .examples = 32 * i};
}

/* ---- raw HDF5 helpers (deliberately not the reader under test) ---- */
static double *h5_read(hid_t f, const char *path, int rank, hsize_t *dims, H5T_class_t want_class, size_t want_size) {
  hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
  if (ds < 0) { af_test_failures++; fprintf(stderr, "missing dataset %s\n", path); return NULL; }
  hid_t sp = H5Dget_space(ds), t = H5Dget_type(ds), dcpl = H5Dget_create_plist(ds);
  hsize_t maxd[2] = {0, 0};
  dims[0] = dims[1] = 0;
  int r = H5Sget_simple_extent_ndims(sp);
  H5Sget_simple_extent_dims(sp, dims, maxd);
  if (r != rank || maxd[0] != H5S_UNLIMITED || H5Pget_layout(dcpl) != H5D_CHUNKED ||
      H5Tget_class(t) != want_class || H5Tget_size(t) != want_size) {
    af_test_failures++;
    fprintf(stderr, "%s: rank %d, maxdim0 %llu, chunked %d, class %d size %zu\n", path, r,
            (unsigned long long)maxd[0], H5Pget_layout(dcpl) == H5D_CHUNKED, (int)H5Tget_class(t), H5Tget_size(t));
  }
  size_t n = (size_t)dims[0] * (rank == 2 ? (size_t)dims[1] : 1);
  double *v = malloc((n ? n : 1) * sizeof *v);
  if (n && H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
    af_test_failures++;
    fprintf(stderr, "reading %s failed\n", path);
  }
  H5Pclose(dcpl);
  H5Tclose(t);
  H5Sclose(sp);
  H5Dclose(ds);
  return v;
}

static int h5_attr_str(hid_t f, const char *obj, const char *name, char *out, size_t n) {
  hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  char *s = NULL;
  herr_t e = H5Aread(a, t, &s);
  if (e >= 0) snprintf(out, n, "%s", s);
  H5free_memory(s);
  H5Tclose(t);
  H5Aclose(a);
  return e < 0 ? -1 : 0;
}

static double h5_attr_num(hid_t f, const char *obj, const char *name) {
  double v = NAN;
  hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) return NAN;
  H5Aread(a, H5T_NATIVE_DOUBLE, &v);
  H5Aclose(a);
  return v;
}

#define CHECK_STR_ATTR(f, obj, name, want)                                                           \
  do {                                                                                               \
    char got_[256] = "";                                                                             \
    if (h5_attr_str((f), (obj), (name), got_, sizeof got_) != 0 || strcmp(got_, (want)) != 0) {     \
      af_test_failures++;                                                                            \
      fprintf(stderr, "%s:%d: attribute %s@%s = '%s', expected '%s'\n", __FILE__, __LINE__, (obj),   \
              (name), got_, (want));                                                                 \
    }                                                                                                \
  } while (0)

enum { NSTEPS = 2500, L4 = 4 };

static void write_full(const char *path) {
  af_results *r = NULL;
  CHECK_OK(af_results_create(path, L4, &r));
  if (!r) return;
  CHECK_OK(af_results_attr_str(r, "model", "models/tiny"));
  CHECK_OK(af_results_attr_str(r, "task", "sst2"));
  CHECK_OK(af_results_attr_str(r, "policy", "adaptive"));
  CHECK_OK(af_results_attr_double(r, "percentile", 50));
  CHECK_OK(af_results_attr_int(r, "seed", 42));
  CHECK_OK(af_results_attr_int(r, "seed", 7));   /* replaced */
  CHECK_OK(af_results_attr_str(r, "task", "sst2-dev"));   /* replaced with a longer string */
  for (long i = 1; i <= NSTEPS; i++) {
    af_step_record s = step_row(i);
    CHECK_OK(af_results_append_step(r, &s));
    if (i == 700) CHECK_OK(af_results_flush(r));
    if (i % 1000 == 0) {
      int iv = (int)(i / 1000) - 1;
      double l1[L4], l2[L4], ratio[L4];
      for (int l = 0; l < L4; l++) {
        l1[l] = 10 * iv + l;
        l2[l] = 0.5 * l1[l];
        ratio[l] = iv == 0 || l < iv ? NAN : 0.1 * l;
      }
      CHECK_OK(af_results_append_interval(r, iv, i, iv, iv + 1, l1, l2, ratio, iv == 0 ? NAN : 0.625 * iv, l2));
    }
  }
  /* evals: accuracy at the first two, f1 from the second on (row 0 NaN for f1, row 2 NaN
   * for accuracy); a flush between them so a metric is created after rows were written. */
  const char *n1[] = {"accuracy"};
  const char *n2[] = {"accuracy", "f1"};
  const char *n3[] = {"f1"};
  CHECK_OK(af_results_append_eval(r, 1000, 0, 500.0, 1, n1, (double[]){0.5}));
  CHECK_OK(af_results_flush(r));
  CHECK_OK(af_results_append_eval(r, 2000, 1, 1000.0, 2, n2, (double[]){0.75, 0.6}));
  CHECK_OK(af_results_append_eval(r, 2500, 2, 1250.0, 1, n3, (double[]){0.7}));
  CHECK_OK(af_results_set_cache(r, &(af_cache_record){.entries = 100, .bytes = 1 << 20, .hits = 3, .misses = 1,
                                                       .bytes_read = 5000, .bytes_written = 6000, .io_time = 0.25,
                                                       .tier = "memory"}));
  CHECK_OK(af_results_set_summary_best(r, "accuracy", 0.75, 2000, 1000.0));
  CHECK_OK(af_results_set_summary_final(r, 1, n3, (double[]){0.7}));
  CHECK_OK(af_results_set_summary_double(r, "total_time", 1250.0));
  /* Bad names are refused, nothing half-written. */
  CHECK(af_results_attr_str(r, "", "x") == AF_ERR_ARG);
  CHECK(af_results_attr_str(r, "a/b", "x") == AF_ERR_ARG);
  CHECK(af_results_group_attr_str(r, "steps2", "k", "x") == AF_ERR_ARG);
  const char *bad[] = {"wall"};
  CHECK(af_results_append_eval(r, 1, 0, 0, 1, bad, (double[]){1}) == AF_ERR_ARG);
  CHECK_OK(af_results_close(&r, "complete"));
  CHECK(r == NULL);
  CHECK_OK(af_results_close(&r, "complete"));   /* safe twice */
  CHECK_OK(af_results_close(NULL, NULL));
}

static void check_raw(const char *path) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  CHECK(f >= 0);
  if (f < 0) return;
  CHECK_STR_ATTR(f, "/", "format", "autofreeze-results");
  CHECK(h5_attr_num(f, "/", "format_version") == AF_RESULTS_FORMAT_VERSION);
  CHECK(h5_attr_num(f, "/", "layers") == L4);
  CHECK_STR_ATTR(f, "config", "model", "models/tiny");
  CHECK_STR_ATTR(f, "config", "task", "sst2-dev");
  CHECK_STR_ATTR(f, "config", "policy", "adaptive");
  CHECK(h5_attr_num(f, "config", "seed") == 7);
  CHECK(h5_attr_num(f, "config", "percentile") == 50);
  char buf[256];
  CHECK(h5_attr_str(f, "config", "git_revision", buf, sizeof buf) == 0 && buf[0]);
  CHECK(h5_attr_str(f, "config", "host", buf, sizeof buf) == 0 && buf[0]);
  CHECK(h5_attr_str(f, "config", "hdf5_version", buf, sizeof buf) == 0 && !strncmp(buf, "1.", 2));
  CHECK_STR_ATTR(f, "summary", "status", "complete");
  CHECK_STR_ATTR(f, "summary", "best_metric", "accuracy");
  CHECK(h5_attr_num(f, "summary", "best_value") == 0.75 && h5_attr_num(f, "summary", "best_step") == 2000);
  CHECK(h5_attr_num(f, "summary", "time_to_best") == 1000.0 && h5_attr_num(f, "summary", "total_time") == 1250.0);
  CHECK(h5_attr_num(f, "summary", "final_f1") == 0.7);
  CHECK(h5_attr_num(f, "cache", "entries") == 100 && h5_attr_num(f, "cache", "bytes") == 1 << 20);
  CHECK(h5_attr_num(f, "cache", "hits") == 3 && h5_attr_num(f, "cache", "misses") == 1);
  CHECK(h5_attr_num(f, "cache", "bytes_read") == 5000 && h5_attr_num(f, "cache", "bytes_written") == 6000);
  CHECK(h5_attr_num(f, "cache", "io_time") == 0.25 && h5_attr_num(f, "cache", "hit_rate") == 0.75);
  CHECK_STR_ATTR(f, "cache", "disabled_reason", "");
  CHECK_STR_ATTR(f, "cache", "tier", "memory");
  CHECK_STR_ATTR(f, "steps/t_forward", "units", "s");

  /* steps: every column, every row */
  static const struct { const char *name; H5T_class_t cls; size_t size; } cols[] = {
      {"step", H5T_INTEGER, 8}, {"epoch", H5T_INTEGER, 4}, {"loss", H5T_FLOAT, 8}, {"lr", H5T_FLOAT, 8},
      {"frozen_depth", H5T_INTEGER, 4}, {"t_data", H5T_FLOAT, 8}, {"t_forward", H5T_FLOAT, 8},
      {"t_backward", H5T_FLOAT, 8}, {"t_optimizer", H5T_FLOAT, 8}, {"t_total", H5T_FLOAT, 8},
      {"wall", H5T_FLOAT, 8}, {"examples", H5T_INTEGER, 8}};
  double *ref = malloc(NSTEPS * sizeof *ref);
  for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
    char p[64];
    snprintf(p, sizeof p, "steps/%s", cols[c].name);
    hsize_t d[2];
    double *v = h5_read(f, p, 1, d, cols[c].cls, cols[c].size);
    CHECK(d[0] == NSTEPS);
    for (long i = 1; i <= NSTEPS; i++) {
      af_step_record s = step_row(i);
      double x[] = {(double)s.step, s.epoch, s.loss, s.lr, s.frozen_depth, s.t_data, s.t_forward,
                    s.t_backward, s.t_optimizer, s.t_total, s.wall, (double)s.examples};
      ref[i - 1] = x[c];
    }
    if (v && d[0] == NSTEPS) af_test_close_d(p, v, ref, NSTEPS, 0, 0);
    free(v);
  }
  free(ref);

  /* intervals */
  hsize_t d[2];
  double *iv = h5_read(f, "intervals/interval", 1, d, H5T_INTEGER, 4);
  CHECK(d[0] == 2 && iv && iv[0] == 0 && iv[1] == 1);
  free(iv);
  double *st = h5_read(f, "intervals/step", 1, d, H5T_INTEGER, 8);
  CHECK(d[0] == 2 && st && st[0] == 1000 && st[1] == 2000);
  free(st);
  double *db = h5_read(f, "intervals/depth_before", 1, d, H5T_INTEGER, 4);
  double *da = h5_read(f, "intervals/depth_after", 1, d, H5T_INTEGER, 4);
  CHECK(db && da && db[0] == 0 && db[1] == 1 && da[0] == 1 && da[1] == 2);
  free(db);
  free(da);
  double *l1 = h5_read(f, "intervals/l1", 2, d, H5T_FLOAT, 8);
  CHECK(d[0] == 2 && d[1] == L4);
  double *l2 = h5_read(f, "intervals/l2", 2, d, H5T_FLOAT, 8);
  double *ra = h5_read(f, "intervals/ratio", 2, d, H5T_FLOAT, 8);
  if (l1 && l2 && ra && d[0] == 2 && d[1] == L4)
    for (int i = 0; i < 2; i++)
      for (int l = 0; l < L4; l++) {
        CHECK(l1[i * L4 + l] == 10 * i + l);
        CHECK(l2[i * L4 + l] == 0.5 * (10 * i + l));
        double want = i == 0 || l < i ? NAN : 0.1 * l;
        CHECK(isnan(want) ? isnan(ra[i * L4 + l]) : ra[i * L4 + l] == want);
      }
  free(l1);
  free(l2);
  free(ra);
  double *vm = h5_read(f, "intervals/val_metric", 1, d, H5T_FLOAT, 8);
  CHECK(d[0] == 2 && vm && isnan(vm[0]) && vm[1] == 0.625);
  free(vm);
  double *lf = h5_read(f, "intervals/lr_factor", 2, d, H5T_FLOAT, 8);
  CHECK(d[0] == 2 && d[1] == L4 && lf);
  for (int i = 0; lf && d[0] == 2 && i < 2 * L4; i++) CHECK(lf[i] == 0.5 * (10 * (i / L4) + i % L4));
  free(lf);

  /* evals */
  double *es = h5_read(f, "evals/step", 1, d, H5T_INTEGER, 8);
  CHECK(d[0] == 3 && es && es[0] == 1000 && es[1] == 2000 && es[2] == 2500);
  free(es);
  double *ee = h5_read(f, "evals/epoch", 1, d, H5T_INTEGER, 4);
  CHECK(d[0] == 3 && ee && ee[0] == 0 && ee[1] == 1 && ee[2] == 2);
  free(ee);
  double *ew = h5_read(f, "evals/wall", 1, d, H5T_FLOAT, 8);
  CHECK(d[0] == 3 && ew && ew[0] == 500 && ew[1] == 1000 && ew[2] == 1250);
  free(ew);
  double *acc = h5_read(f, "evals/accuracy", 1, d, H5T_FLOAT, 8);
  CHECK(d[0] == 3 && acc && acc[0] == 0.5 && acc[1] == 0.75 && isnan(acc[2]));
  free(acc);
  double *f1 = h5_read(f, "evals/f1", 1, d, H5T_FLOAT, 8);
  CHECK(d[0] == 3 && f1 && isnan(f1[0]) && f1[1] == 0.6 && f1[2] == 0.7);
  free(f1);
  H5Fclose(f);
}

static void check_reader(const char *path) {
  af_results_reader *rr = NULL;
  CHECK_OK(af_results_open_read(path, &rr));
  if (!rr) return;
  CHECK(af_results_format_version(rr) == AF_RESULTS_FORMAT_VERSION && af_results_layers(rr) == L4);
  CHECK(af_results_has(rr, "steps/loss") && af_results_has(rr, "evals") && !af_results_has(rr, "nope/loss"));
  double *v;
  size_t n, rows, cols;
  CHECK_OK(af_results_read_1d(rr, "steps/loss", &v, &n));
  CHECK(n == NSTEPS && v[0] == 1.0 && v[NSTEPS - 1] == 1.0 / NSTEPS);
  free(v);
  CHECK_OK(af_results_read_1d(rr, "steps/examples", &v, &n));
  CHECK(n == NSTEPS && v[9] == 320);
  free(v);
  CHECK(af_results_read_1d(rr, "steps/nothing", &v, &n) == AF_ERR_FORMAT && strstr(af_last_error(), "steps/nothing"));
  CHECK(af_results_read_1d(rr, "intervals/l1", &v, &n) == AF_ERR_FORMAT);   /* 2-D */
  CHECK_OK(af_results_read_2d(rr, "intervals/ratio", &v, &rows, &cols));
  CHECK(rows == 2 && cols == L4 && isnan(v[0]) && v[L4 + 1] == 0.1);
  free(v);
  af_attr *a;
  int na;
  CHECK_OK(af_results_read_attrs(rr, "config", &a, &na));
  const af_attr *x = af_results_find_attr(a, na, "task");
  CHECK(x && x->type == AF_ATTR_STR && !strcmp(x->s, "sst2-dev"));
  x = af_results_find_attr(a, na, "seed");
  CHECK(x && x->type == AF_ATTR_INT && x->i == 7);
  x = af_results_find_attr(a, na, "percentile");
  CHECK(x && x->type == AF_ATTR_DOUBLE && x->d == 50);
  for (int i = 1; i < na; i++) CHECK(strcmp(a[i - 1].key, a[i].key) < 0);   /* name order */
  af_results_free_attrs(a, na);
  CHECK_OK(af_results_read_attrs(rr, "summary", &a, &na));
  x = af_results_find_attr(a, na, "status");
  CHECK(x && !strcmp(x->s, "complete"));
  af_results_free_attrs(a, na);
  CHECK_OK(af_results_read_attrs(rr, "", &a, &na));
  CHECK(af_results_find_attr(a, na, "format") != NULL);
  af_results_free_attrs(a, na);
  CHECK(af_results_read_attrs(rr, "nogroup", &a, &na) == AF_ERR_FORMAT);
  char **names;
  int nn;
  CHECK_OK(af_results_list(rr, "evals", &names, &nn));
  CHECK(nn == 5 && !strcmp(names[0], "accuracy") && !strcmp(names[1], "epoch") && !strcmp(names[2], "f1"));
  af_results_free_names(names, nn);
  af_results_close_read(&rr);
  CHECK(rr == NULL);
  af_results_close_read(&rr);
}

static void test_errors(void) {
  af_results *r = (af_results *)1;
  char p[4200];
  path_in_tmp(p, sizeof p, "no/such/dir/x.h5");
  CHECK(af_results_create(p, 4, &r) == AF_ERR_IO && r == NULL);
  CHECK(strstr(af_last_error(), "no/such/dir") && strstr(af_last_error(), "does not exist"));
  path_in_tmp(p, sizeof p, "x.h5");
  CHECK(af_results_create(p, 0, &r) == AF_ERR_ARG);
  af_results_reader *rr;
  path_in_tmp(p, sizeof p, "missing.h5");
  CHECK(af_results_open_read(p, &rr) == AF_ERR_IO && rr == NULL);
  path_in_tmp(p, sizeof p, "text.h5");
  FILE *f = fopen(p, "w");
  fputs("not hdf5\n", f);
  fclose(f);
  CHECK(af_results_open_read(p, &rr) == AF_ERR_FORMAT && rr == NULL);
  /* A valid HDF5 file that is not ours. */
  path_in_tmp(p, sizeof p, "other.h5");
  hid_t h = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  H5Fclose(h);
  CHECK(af_results_open_read(p, &rr) == AF_ERR_FORMAT && strstr(af_last_error(), "not an autofreeze"));
}

/* A file from a newer build (format_version + 1) is refused by name, not misread. */
static void test_newer_format(const char *full) {
  char p[4200], cmd[8600];
  path_in_tmp(p, sizeof p, "newer.h5");
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", full, p);
  CHECK(system(cmd) == 0);
  hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t a = f >= 0 ? H5Aopen(f, "format_version", H5P_DEFAULT) : -1;
  int v = AF_RESULTS_FORMAT_VERSION + 1;
  CHECK(a >= 0 && H5Awrite(a, H5T_NATIVE_INT, &v) >= 0);
  if (a >= 0) H5Aclose(a);
  if (f >= 0) H5Fclose(f);
  af_results_reader *rr = (af_results_reader *)1;
  CHECK(af_results_open_read(p, &rr) == AF_ERR_UNSUPPORTED && rr == NULL);
  char want[64];
  snprintf(want, sizeof want, "format version %d", v);
  CHECK(strstr(af_last_error(), want) && strstr(af_last_error(), "newer.h5"));
}

/* A child writes and flushes, writes more without flushing, then SIGKILLs itself. */
static void test_crash_after_flush(void) {
  char p[4200];
  path_in_tmp(p, sizeof p, "crash.h5");
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    af_results *r;
    if (af_results_create(p, 3, &r) != AF_OK) _exit(3);
    af_results_attr_str(r, "model", "m");
    for (long i = 1; i <= 10; i++) { af_step_record s = step_row(i); af_results_append_step(r, &s); }
    double z[3] = {1, 2, 3};
    af_results_append_interval(r, 0, 10, 0, 0, z, z, z, NAN, NULL);
    const char *nm[] = {"accuracy"};
    af_results_append_eval(r, 10, 0, 5.0, 1, nm, (double[]){0.5});
    if (af_results_flush(r) != AF_OK) _exit(4);
    for (long i = 11; i <= 600; i++) { af_step_record s = step_row(i); af_results_append_step(r, &s); }
    af_results_append_interval(r, 1, 600, 0, 1, z, z, z, NAN, NULL);
    af_results_attr_str(r, "late", "never flushed");
    af_results_set_summary_str(r, "status", "complete");
    raise(SIGKILL);
    _exit(5);
  }
  int ws;
  waitpid(pid, &ws, 0);
  CHECK(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
  af_results_reader *rr = NULL;
  CHECK_OK(af_results_open_read(p, &rr));
  if (!rr) return;
  double *v;
  size_t n;
  CHECK_OK(af_results_read_1d(rr, "steps/step", &v, &n));
  CHECK(n >= 10);
  for (size_t i = 0; i < n; i++) CHECK(v[i] == (double)(i + 1));
  free(v);
  CHECK_OK(af_results_read_1d(rr, "steps/loss", &v, &n));
  CHECK(n >= 10 && v[9] == 0.1);
  free(v);
  CHECK_OK(af_results_read_1d(rr, "evals/accuracy", &v, &n));
  CHECK(n == 1 && v[0] == 0.5);
  free(v);
  CHECK_OK(af_results_read_1d(rr, "intervals/step", &v, &n));
  CHECK(n >= 1 && v[0] == 10);
  free(v);
  af_attr *a;
  int na;
  CHECK_OK(af_results_read_attrs(rr, "summary", &a, &na));
  const af_attr *s = af_results_find_attr(a, na, "status");
  CHECK(s && !strcmp(s->s, "running"));   /* what an interrupted run looks like */
  af_results_free_attrs(a, na);
  CHECK_OK(af_results_read_attrs(rr, "config", &a, &na));
  CHECK(af_results_find_attr(a, na, "model") != NULL);
  af_results_free_attrs(a, na);
  af_results_close_read(&rr);
}

/* Children write and flush in a tight loop and are killed at varied moments: every file must
 * open, and its step columns must agree and hold 1..n. */
static void test_kill_anytime(void) {
  for (int k = 0; k < 6; k++) {
    char p[4200];
    snprintf(p, sizeof p, "%s/kill%d.h5", af_test_tmpdir(), k);
    int fd[2];
    if (pipe(fd) != 0) { perror("pipe"); af_test_failures++; return; }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      close(fd[0]);
      af_results *r;
      if (af_results_create(p, 6, &r) != AF_OK) _exit(3);
      if (write(fd[1], "x", 1) != 1) _exit(6);   /* created and flushed once */
      double z[6] = {1, 2, 3, 4, 5, 6};
      const char *nm[] = {"accuracy"};
      for (long i = 1;; i++) {
        af_step_record s = step_row(i);
        af_results_append_step(r, &s);
        if (i % 50 == 0) {
          af_results_append_interval(r, (int)(i / 50), i, 0, 0, z, z, z, NAN, NULL);
          af_results_append_eval(r, i, 0, 1.0, 1, nm, (double[]){0.5});
          af_results_set_summary_double(r, "total_time", (double)i);
          af_results_set_summary_best(r, "accuracy", 0.5, i, (double)i);
          af_results_set_cache(r, &(af_cache_record){.entries = i, .tier = "memory"});
          if (af_results_flush(r) != AF_OK) _exit(4);
        }
      }
    }
    close(fd[1]);
    char c;
    if (read(fd[0], &c, 1) != 1) { af_test_failures++; fprintf(stderr, "kill %d: child did not start\n", k); }
    close(fd[0]);
    struct timespec ts = {0, 1000000L * (3 + 7 * k)};   /* 3..38 ms of writing */
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int ws;
    waitpid(pid, &ws, 0);
    af_results_reader *rr = NULL;
    af_status st = af_results_open_read(p, &rr);
    if (st != AF_OK) {
      af_test_failures++;
      fprintf(stderr, "kill %d: file does not open: %s\n", k, af_last_error());
      continue;
    }
    double *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_OK(af_results_read_1d(rr, "steps/step", &a, &na));
    CHECK_OK(af_results_read_1d(rr, "steps/examples", &b, &nb));
    CHECK(na == nb);
    for (size_t i = 0; i < na && i < nb; i++) CHECK(a[i] == (double)(i + 1) && b[i] == 32.0 * (double)(i + 1));
    free(a);
    free(b);
    CHECK_OK(af_results_read_1d(rr, "intervals/step", &b, &nb));
    for (size_t i = 0; i < nb; i++) CHECK(b[i] == 50.0 * (double)(i + 1));
    free(b);
    CHECK_OK(af_results_read_1d(rr, "evals/step", &b, &nb));
    free(b);
    /* The metric dataset is created by the first flush with an eval; once evals rows are
     * committed it must be complete. */
    if (nb > 0) {
      size_t nm = 0;
      CHECK_OK(af_results_read_1d(rr, "evals/accuracy", &b, &nm));
      CHECK(nm == nb);
      for (size_t i = 0; i < nm; i++) CHECK(b[i] == 0.5);
      free(b);
    }
    af_attr *at;
    int nat;
    CHECK_OK(af_results_read_attrs(rr, "summary", &at, &nat));
    af_results_free_attrs(at, nat);
    printf("kill %d after %ld ms: %zu steps on disk\n", k, ts.tv_nsec / 1000000L, na);
    af_results_close_read(&rr);
  }
}

/* Resume: rows after the checkpoint's step are dropped, appending continues. */
static void test_resume(void) {
  char p[4200];
  path_in_tmp(p, sizeof p, "resume.h5");
  af_results *r = NULL;
  CHECK_OK(af_results_create(p, 3, &r));
  if (!r) return;
  CHECK_OK(af_results_attr_str(r, "model", "m"));
  double z[3] = {1, 2, 3};
  const char *acc[] = {"accuracy"}, *both[] = {"accuracy", "f1"};
  for (long i = 1; i <= 30; i++) {
    af_step_record s = step_row(i);
    CHECK_OK(af_results_append_step(r, &s));
    if (i % 10 == 0) {
      CHECK_OK(af_results_append_interval(r, (int)(i / 10) - 1, i, 0, 0, z, z, z, NAN, NULL));
      CHECK_OK(af_results_append_eval(r, i, 0, (double)i, i == 20 ? 2 : 1, i == 20 ? both : acc,
                                      (double[]){0.01 * (double)i, 0.5}));
      CHECK_OK(af_results_flush(r));
    }
  }
  CHECK_OK(af_results_close(&r, "interrupted"));
  /* a file written before intervals/val_metric existed: resuming adds the column */
  hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
  CHECK(f >= 0 && H5Ldelete(f, "intervals/val_metric", H5P_DEFAULT) >= 0 &&
        H5Ldelete(f, "intervals/lr_factor", H5P_DEFAULT) >= 0);
  if (f >= 0) H5Fclose(f);
  CHECK(af_results_open_append(p, 4, 20, &r) == AF_ERR_ARG && r == NULL);
  CHECK_OK(af_results_open_append(p, 3, 20, &r));
  if (!r) return;
  for (long i = 21; i <= 25; i++) {
    af_step_record s = step_row(i);
    s.loss = -(double)i;
    CHECK_OK(af_results_append_step(r, &s));
  }
  CHECK_OK(af_results_append_eval(r, 25, 0, 25.0, 1, acc, (double[]){0.9}));
  CHECK_OK(af_results_append_interval(r, 2, 25, 0, 0, z, z, z, 0.75, z));
  CHECK_OK(af_results_close(&r, NULL));
  af_results_reader *rr = NULL;
  CHECK_OK(af_results_open_read(p, &rr));
  if (!rr) return;
  double *v;
  size_t n;
  CHECK_OK(af_results_read_1d(rr, "steps/step", &v, &n));
  CHECK(n == 25);
  for (size_t i = 0; i < n; i++) CHECK(v[i] == (double)(i + 1));
  free(v);
  CHECK_OK(af_results_read_1d(rr, "steps/loss", &v, &n));
  CHECK(n == 25 && v[19] == 1.0 / 20 && v[20] == -21 && v[24] == -25);
  free(v);
  CHECK_OK(af_results_read_1d(rr, "intervals/step", &v, &n));
  CHECK(n == 3 && v[1] == 20 && v[2] == 25);
  free(v);
  CHECK_OK(af_results_read_1d(rr, "intervals/val_metric", &v, &n));
  CHECK(n == 3 && isnan(v[0]) && isnan(v[1]) && v[2] == 0.75);
  free(v);
  size_t cols = 0;
  CHECK_OK(af_results_read_2d(rr, "intervals/lr_factor", &v, &n, &cols));
  CHECK(n == 3 && cols == 3 && isnan(v[0]) && isnan(v[5]) && v[6] == 1 && v[7] == 2 && v[8] == 3);
  free(v);
  CHECK_OK(af_results_read_1d(rr, "evals/step", &v, &n));
  CHECK(n == 3 && v[0] == 10 && v[1] == 20 && v[2] == 25);
  free(v);
  CHECK_OK(af_results_read_1d(rr, "evals/accuracy", &v, &n));
  CHECK(n == 3 && v[0] == 0.1 && v[1] == 0.2 && v[2] == 0.9);
  free(v);
  CHECK_OK(af_results_read_1d(rr, "evals/f1", &v, &n));
  CHECK(n == 3 && isnan(v[0]) && v[1] == 0.5 && isnan(v[2]));
  free(v);
  af_attr *a;
  int na;
  CHECK_OK(af_results_read_attrs(rr, "summary", &a, &na));
  const af_attr *st = af_results_find_attr(a, na, "status");
  CHECK(st && !strcmp(st->s, "complete"));
  af_results_free_attrs(a, na);
  CHECK_OK(af_results_read_attrs(rr, "config", &a, &na));
  CHECK(af_results_find_attr(a, na, "model") != NULL);
  af_results_free_attrs(a, na);
  af_results_close_read(&rr);
}

/* The small deterministic file behind tests/fixtures/results_layout.txt. */
static int write_layout(const char *path) {
  af_results *r;
  if (af_results_create(path, 6, &r) != AF_OK) { fprintf(stderr, "%s\n", af_last_error()); return 1; }
  af_results_attr_str(r, "model", "models/all-MiniLM-L6-v2");
  af_results_attr_str(r, "task", "debian-sections");
  af_results_attr_str(r, "policy", "adaptive");
  af_results_attr_str(r, "policy_knobs", "percentile=50");
  af_results_attr_int(r, "seed", 1);
  af_results_attr_int(r, "threads", 2);
  af_results_attr_str(r, "gemm", "openblas");
  for (long i = 1; i <= 5; i++) { af_step_record s = step_row(i); af_results_append_step(r, &s); }
  double v[6] = {1, 2, 3, 4, 5, 6};
  af_results_append_interval(r, 0, 5, 0, 0, v, v, v, NAN, NULL);
  const char *nm[] = {"accuracy", "f1"};
  af_results_append_eval(r, 5, 0, 2.5, 2, nm, (double[]){0.5, 0.4});
  af_results_set_summary_best(r, "accuracy", 0.5, 5, 2.5);
  af_results_set_summary_final(r, 2, nm, (double[]){0.5, 0.4});
  af_results_set_summary_double(r, "total_time", 2.5);
  af_status s = af_results_close(&r, "complete");
  if (s != AF_OK) { fprintf(stderr, "%s\n", af_last_error()); return 1; }
  return 0;
}

/* A full disk (a file-size limit at the file's size after its first flush): the flush that
 * finds no room returns an I/O error and writes nothing, so the file still opens with what
 * the first flush committed; once there is room again the next flush writes everything that
 * was buffered. In a child, so that the limit stays there. */
static void test_disk_full(void) {
  char p[4200];
  path_in_tmp(p, sizeof p, "full-disk.h5");
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    af_results *r;
    if (af_results_create(p, 3, &r) != AF_OK) _exit(3);
    for (long i = 1; i <= 10; i++) { af_step_record s = step_row(i); af_results_append_step(r, &s); }
    if (af_results_flush(r) != AF_OK) _exit(4);
    struct stat sb;
    if (stat(p, &sb) != 0) _exit(5);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)sb.st_size;
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(6);
    af_status s = AF_OK;
    long last = 10;
    for (long i = 11; i <= 5000 && s == AF_OK; i++) {
      af_step_record st = step_row(i);
      if ((s = af_results_append_step(r, &st)) == AF_OK) last = i;
    }
    if (s != AF_ERR_IO || !strstr(af_last_error(), "no room")) {
      fprintf(stderr, "  disk full: status %d: %s\n", (int)s, af_last_error());
      _exit(7);
    }
    printf("disk full: %s\n", af_last_error());
    fflush(stdout);
    /* the file as the first flush left it: opens, 10 rows */
    af_results_reader *rr = NULL;
    double *v = NULL;
    size_t n = 0;
    if (af_results_open_read(p, &rr) != AF_OK || af_results_read_1d(rr, "steps/step", &v, &n) != AF_OK || n != 10)
      _exit(8);
    free(v);
    af_results_close_read(&rr);
    if (af_results_flush(r) != AF_ERR_IO) _exit(9);  /* still no room */
    if (setrlimit(RLIMIT_FSIZE, &old) != 0) _exit(10);
    if (af_results_flush(r) != AF_OK) _exit(11);     /* room again: the buffered rows go out */
    if (af_results_close(&r, "complete") != AF_OK) _exit(12);
    _exit(last == 1034 ? 0 : 13);                     /* 1,024 rows buffered after the first flush */
  }
  int ws = 0;
  CHECK(pid > 0 && waitpid(pid, &ws, 0) == pid);
  CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
  if (WIFEXITED(ws) && WEXITSTATUS(ws)) fprintf(stderr, "  disk full: child exit %d\n", WEXITSTATUS(ws));
  af_results_reader *rr = NULL;
  CHECK_OK(af_results_open_read(p, &rr));
  if (!rr) return;
  double *v = NULL;
  size_t n = 0;
  CHECK_OK(af_results_read_1d(rr, "steps/step", &v, &n));
  CHECK(n == 1034 && v);
  for (size_t i = 0; v && i < n; i++) CHECK(v[i] == (double)(i + 1));
  printf("disk full, then room again: the file opens with %zu steps\n", n);
  free(v);
  af_results_close_read(&rr);
}

int main(int argc, char **argv) {
  if (argc > 1) return write_layout(argv[1]);
  af_set_quiet(1);
  char p[4200];
  path_in_tmp(p, sizeof p, "full.h5");
  write_full(p);
  check_raw(p);
  check_reader(p);
  test_newer_format(p);
  test_errors();
  test_resume();
  test_crash_after_flush();
  test_kill_anytime();
  test_disk_full();
  return af_test_done("test_results");
}
