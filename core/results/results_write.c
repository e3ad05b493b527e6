/* The HDF5 results writer (layout: docs/results-format.md). Rows and attributes are buffered
 * and written only in af_results_flush, which ends with H5Fflush, so between flushes the file
 * on disk is never half-updated: a SIGKILL leaves the state of the last flush. The default
 * (earliest) HDF5 file format is kept on purpose: the 1.10 "latest" format marks the file as
 * open for writing and refuses to open it after a crash until h5clear. */
#include "core/results/results.h"
#include "core/results/results_hdf5.h"
#include "core/base/fsutil.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_VERSION
#define AF_VERSION "unknown"
#endif
#ifndef AF_GIT_REV
#define AF_GIT_REV "unknown"
#endif

enum { STEP_CAP = 1024, IV_CHUNK = 64, EVAL_CHUNK = 64 };

/* ---------------------------------------------------------------- layout tables */

enum { K_I64, K_I32, K_F64 };
static hid_t file_type(int k) { return k == K_I64 ? H5T_STD_I64LE : k == K_I32 ? H5T_STD_I32LE : H5T_IEEE_F64LE; }
static hid_t mem_type(int k) { return k == K_I64 ? H5T_NATIVE_LLONG : k == K_I32 ? H5T_NATIVE_INT : H5T_NATIVE_DOUBLE; }

#define SCOL(f, k, u) {#f, k, offsetof(af_step_record, f), u}
static const struct { const char *name; int kind; size_t off; const char *units; } step_cols[] = {
    SCOL(step, K_I64, "optimizer steps done"),
    SCOL(epoch, K_I32, "epoch (0-based)"),
    SCOL(loss, K_F64, "training loss, mean over the batch"),
    SCOL(lr, K_F64, "learning rate"),
    SCOL(frozen_depth, K_I32, "frozen encoder layers"),
    SCOL(t_data, K_F64, "s"),
    SCOL(t_forward, K_F64, "s"),
    SCOL(t_backward, K_F64, "s"),
    SCOL(t_optimizer, K_F64, "s"),
    SCOL(t_total, K_F64, "s"),
    SCOL(wall, K_F64, "s since the run started"),
    SCOL(examples, K_I64, "training examples seen"),
    SCOL(comm_bytes, K_I64, "bytes all-reduced by each rank"),
    SCOL(t_comm, K_F64, "s"),
};
#define N_STEP_COLS ((int)(sizeof step_cols / sizeof step_cols[0]))

enum { IV_INTERVAL, IV_STEP, IV_BEFORE, IV_AFTER, IV_L1, IV_L2, IV_RATIO, IV_VAL, IV_LR, N_IV };
static const struct { const char *name; int kind; int twod; const char *units; } iv_cols[N_IV] = {
    {"interval", K_I32, 0, "interval index (0-based)"},
    {"step", K_I64, 0, "optimizer steps done at the decision"},
    {"depth_before", K_I32, 0, "frozen encoder layers"},
    {"depth_after", K_I32, 0, "frozen encoder layers"},
    {"l1", K_F64, 1, "sum over the layer's tensors of the L1 norm of the interval's summed gradient"},
    {"l2", K_F64, 1, "L2 norm of the layer's interval-summed gradient"},
    {"ratio", K_F64, 1, "change ratio vs the previous interval (NaN: undefined)"},
    {"val_metric", K_F64, 0, "the policy's validation-slice metric before the decision (NaN: no slice)"},
    {"lr_factor", K_F64, 1, "the layer's learning-rate factor in the interval's last step (1: the schedule's rate)"},
};

enum { G_ROOT, G_CONFIG, G_STEPS, G_INTERVALS, G_EVALS, G_CACHE, G_SUMMARY, N_GROUPS };
static const char *group_names[N_GROUPS] = {"", "config", "steps", "intervals", "evals", "cache", "summary"};

/* ---------------------------------------------------------------- the buffers and attributes */

enum { ATTR_STR, ATTR_INT, ATTR_DOUBLE };

typedef struct {
  int group;
  char *key;
  int type;   /* ATTR_STR / ATTR_INT / ATTR_DOUBLE */
  char *s;
  long long i;
  double d;
} pending_attr;

typedef struct {
  char *name;
  hid_t ds;          /* < 0 until created at a flush */
  hsize_t written;   /* rows in the file */
} metric;

typedef struct { size_t row; int metric; double v; } eval_value;

struct af_results {
  char *path;
  int L;
  af_status broken;          /* a failed flush leaves the writer unusable */
  hid_t file, g[N_GROUPS];
  hid_t ds_step[N_STEP_COLS];
  hid_t ds_iv[N_IV];
  hid_t ds_eval[3];          /* step, epoch, wall */
  /* steps */
  af_step_record rows[STEP_CAP];
  int nrows;
  hsize_t steps_written;
  unsigned char tmp[STEP_CAP * 8];
  /* intervals */
  int *iv_i32[3];            /* interval, depth_before, depth_after */
  long long *iv_step;
  double *iv_d[4];           /* l1, l2, ratio, lr_factor: [n * L] */
  double *iv_val;            /* val_metric: [n] */
  int iv_n, iv_cap;
  hsize_t iv_written;
  /* evals */
  long long *ev_step;
  int *ev_epoch;
  double *ev_wall;
  int ev_n, ev_cap;
  eval_value *ev_vals;
  size_t ev_nvals, ev_capvals;
  hsize_t ev_written;
  metric *metrics;
  int nmetrics, capmetrics;
  /* attributes */
  pending_attr *attrs;
  int nattrs, capattrs;
};

static af_status check_key(const char *what, const char *key) {
  if (!key || !key[0] || strchr(key, '/') || !strcmp(key, "."))
    return AF_FAIL(AF_ERR_ARG, "results %s name '%s' is invalid (non-empty, no '/')", what, key ? key : "(null)");
  return AF_OK;
}

static int group_index(const char *group) {
  for (int i = 0; i < N_GROUPS; i++)
    if (!strcmp(group ? group : "", group_names[i])) return i;
  return -1;
}

static af_status push_attr(af_results *r, const char *group, const char *key, int type, const char *s,
                           long long i, double d) {
  if (!r) return AF_FAIL(AF_ERR_ARG, "results: no file");
  if (r->broken) return AF_FAIL(r->broken, "results file %s: unusable after an earlier error", r->path);
  int g = group_index(group);
  if (g < 0) return AF_FAIL(AF_ERR_ARG, "results: unknown group '%s'", group);
  AF_TRY(check_key("attribute", key));
  AF_TRY(af_results_grow((void **)&r->attrs, &r->capattrs, r->nattrs + 1, sizeof *r->attrs, "attribute"));
  pending_attr *a = &r->attrs[r->nattrs];
  *a = (pending_attr){.group = g, .type = type, .i = i, .d = d};
  a->key = strdup(key);
  a->s = type == ATTR_STR ? strdup(s ? s : "") : NULL;
  if (!a->key || (type == ATTR_STR && !a->s)) {
    free(a->key);
    free(a->s);
    return AF_FAIL(AF_ERR_NOMEM, "out of memory for a results attribute");
  }
  r->nattrs++;
  return AF_OK;
}

af_status af_results_group_attr_str(af_results *r, const char *group, const char *key, const char *value) {
  return push_attr(r, group, key, ATTR_STR, value, 0, 0);
}
af_status af_results_group_attr_int(af_results *r, const char *group, const char *key, long long value) {
  return push_attr(r, group, key, ATTR_INT, NULL, value, 0);
}
af_status af_results_group_attr_double(af_results *r, const char *group, const char *key, double value) {
  return push_attr(r, group, key, ATTR_DOUBLE, NULL, 0, value);
}
af_status af_results_attr_str(af_results *r, const char *key, const char *value) {
  return af_results_group_attr_str(r, "config", key, value);
}
af_status af_results_attr_int(af_results *r, const char *key, long long value) {
  return af_results_group_attr_int(r, "config", key, value);
}
af_status af_results_attr_double(af_results *r, const char *key, double value) {
  return af_results_group_attr_double(r, "config", key, value);
}
af_status af_results_set_summary_str(af_results *r, const char *key, const char *value) {
  return af_results_group_attr_str(r, "summary", key, value);
}
af_status af_results_set_summary_double(af_results *r, const char *key, double value) {
  return af_results_group_attr_double(r, "summary", key, value);
}
af_status af_results_set_summary_int(af_results *r, const char *key, long long value) {
  return af_results_group_attr_int(r, "summary", key, value);
}

af_status af_results_set_summary_best(af_results *r, const char *metric_name, double value, long step,
                                      double time_to_best) {
  AF_TRY(af_results_set_summary_str(r, "best_metric", metric_name));
  AF_TRY(af_results_set_summary_double(r, "best_value", value));
  AF_TRY(af_results_set_summary_int(r, "best_step", step));
  return af_results_set_summary_double(r, "time_to_best", time_to_best);
}

af_status af_results_set_summary_final(af_results *r, int n, const char *const *names, const double *values) {
  for (int i = 0; i < n; i++) {
    char key[256];
    AF_TRY(check_key("metric", names[i]));
    snprintf(key, sizeof key, "final_%s", names[i]);
    AF_TRY(af_results_set_summary_double(r, key, values[i]));
  }
  return AF_OK;
}

af_status af_results_set_cache(af_results *r, const af_cache_record *c) {
  AF_TRY(af_results_group_attr_int(r, "cache", "entries", c->entries));
  AF_TRY(af_results_group_attr_int(r, "cache", "bytes", c->bytes));
  AF_TRY(af_results_group_attr_int(r, "cache", "hits", c->hits));
  AF_TRY(af_results_group_attr_int(r, "cache", "misses", c->misses));
  AF_TRY(af_results_group_attr_int(r, "cache", "bytes_read", c->bytes_read));
  AF_TRY(af_results_group_attr_int(r, "cache", "bytes_written", c->bytes_written));
  AF_TRY(af_results_group_attr_double(r, "cache", "io_time", c->io_time));
  long long q = c->hits + c->misses;
  AF_TRY(af_results_group_attr_double(r, "cache", "hit_rate", q > 0 ? (double)c->hits / (double)q : NAN));
  AF_TRY(af_results_group_attr_str(r, "cache", "tier", c->tier ? c->tier : ""));
  AF_TRY(af_results_group_attr_str(r, "cache", "requested", c->requested ? c->requested : ""));
  AF_TRY(af_results_group_attr_str(r, "cache", "memory_tier", c->memory_tier));
  AF_TRY(af_results_group_attr_str(r, "cache", "disk_tier", c->disk_tier));
  return af_results_group_attr_str(r, "cache", "disabled_reason", c->disabled_reason ? c->disabled_reason : "");
}

/* ---------------------------------------------------------------- the flush */

/* 1 when the existing attribute can be overwritten in place (same kind of value): a single
 * small write instead of a delete and a create in the object header. */
static int same_kind(hid_t attr, int type) {
  hid_t t = H5Aget_type(attr);
  H5T_class_t c = H5Tget_class(t);
  int ok = type == ATTR_STR ? c == H5T_STRING && H5Tis_variable_str(t) > 0
         : type == ATTR_INT ? c == H5T_INTEGER && H5Tget_size(t) == 8
                               : c == H5T_FLOAT && H5Tget_size(t) == 8;
  H5Tclose(t);
  return ok;
}

/* 1 when an existing attribute of the same kind already holds a's value. Skipping such
 * writes matters: each variable-length string write takes new global-heap space. */
static int same_value(hid_t attr, const pending_attr *a) {
  int same = 0;
  if (a->type == ATTR_STR) {
    hid_t mt = af_results_h5_vlen_str(H5T_CSET_UTF8);
    char *cur = NULL;
    if (H5Aread(attr, mt, &cur) >= 0 && cur) same = !strcmp(cur, a->s);
    H5free_memory(cur);
    H5Tclose(mt);
  } else if (a->type == ATTR_INT) {
    long long cur;
    same = H5Aread(attr, H5T_NATIVE_LLONG, &cur) >= 0 && cur == a->i;
  } else {
    double cur;
    same = H5Aread(attr, H5T_NATIVE_DOUBLE, &cur) >= 0 && memcmp(&cur, &a->d, sizeof cur) == 0;
  }
  H5Eclear2(H5E_DEFAULT);
  return same;
}

static af_status write_attr(af_results *r, const pending_attr *a) {
  hid_t loc = r->g[a->group];
  hid_t space = H5Screate(H5S_SCALAR), ftype, mtype, attr = H5I_INVALID_HID;
  if (H5Aexists(loc, a->key) > 0) {
    attr = H5Aopen(loc, a->key, H5P_DEFAULT);
    if (attr >= 0 && !same_kind(attr, a->type)) {
      H5Aclose(attr);
      attr = H5I_INVALID_HID;
      if (H5Adelete(loc, a->key) < 0) {
        H5Sclose(space);
        return H5FAIL(r->path, "replacing an attribute");
      }
    }
  }
  const void *buf;
  const char *sp = a->s;
  if (a->type == ATTR_STR) {
    ftype = mtype = af_results_h5_vlen_str(H5T_CSET_UTF8);
    buf = &sp;
  } else if (a->type == ATTR_INT) {
    ftype = H5T_STD_I64LE;
    mtype = H5T_NATIVE_LLONG;
    buf = &a->i;
  } else {
    ftype = H5T_IEEE_F64LE;
    mtype = H5T_NATIVE_DOUBLE;
    buf = &a->d;
  }
  if (attr >= 0 && same_value(attr, a)) {   /* unchanged: write nothing */
    H5Aclose(attr);
    if (a->type == ATTR_STR) H5Tclose(ftype);
    H5Sclose(space);
    return AF_OK;
  }
  if (attr < 0) attr = H5Acreate2(loc, a->key, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = attr < 0 ? -1 : H5Awrite(attr, mtype, buf);
  if (attr >= 0) H5Aclose(attr);
  if (a->type == ATTR_STR) H5Tclose(ftype);
  H5Sclose(space);
  if (e < 0) {
    char what[300];
    snprintf(what, sizeof what, "writing attribute %s/%s", group_names[a->group], a->key);
    return H5FAIL(r->path, what);
  }
  return AF_OK;
}

/* An empty extendible chunked dataset: [0] or [0, cols] with unlimited rows. */
static af_status make_dataset(af_results *r, hid_t loc, const char *name, int kind, int cols, hsize_t chunk,
                              const char *units, hid_t *out) {
  hsize_t dims[2] = {0, (hsize_t)cols}, maxd[2] = {H5S_UNLIMITED, (hsize_t)cols}, ch[2] = {chunk, (hsize_t)cols};
  int rank = cols > 0 ? 2 : 1;
  hid_t space = H5Screate_simple(rank, dims, maxd);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, rank, ch);
  if (kind == K_F64) {
    double nan = NAN;
    H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &nan);
  }
  *out = H5Dcreate2(loc, name, file_type(kind), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Pclose(dcpl);
  H5Sclose(space);
  if (*out < 0) {
    char what[300];
    snprintf(what, sizeof what, "creating dataset %s", name);
    return H5FAIL(r->path, what);
  }
  if (units) {
    const char *u = units;
    hid_t t = af_results_h5_vlen_str(H5T_CSET_UTF8);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(*out, "units", t, s, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, t, &u);
    if (a >= 0) H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
    H5TRY(e, r->path, "writing a units attribute");
  }
  return AF_OK;
}

/* Append n rows (n x cols when cols > 0) to an extendible dataset that holds `have` rows. */
static af_status append_rows(af_results *r, hid_t ds, int kind, hsize_t have, size_t n, int cols, const void *buf,
                             const char *what) {
  if (n == 0) return AF_OK;
  int rank = cols > 0 ? 2 : 1;
  hsize_t ext[2] = {have + n, (hsize_t)cols}, start[2] = {have, 0}, count[2] = {n, (hsize_t)cols};
  H5TRY(H5Dset_extent(ds, ext), r->path, what);
  hid_t fs = H5Dget_space(ds);
  hid_t ms = H5Screate_simple(rank, count, NULL);
  herr_t e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
  if (e >= 0) e = H5Dwrite(ds, mem_type(kind), ms, fs, H5P_DEFAULT, buf);
  H5Sclose(ms);
  H5Sclose(fs);
  H5TRY(e, r->path, what);
  return AF_OK;
}

static af_status flush_steps(af_results *r) {
  size_t n = (size_t)r->nrows;
  if (!n) return AF_OK;
  for (int c = 0; c < N_STEP_COLS; c++) {
    for (size_t i = 0; i < n; i++) {
      const char *row = (const char *)&r->rows[i] + step_cols[c].off;
      if (step_cols[c].kind == K_I64) ((long long *)r->tmp)[i] = *(const long *)row;
      else if (step_cols[c].kind == K_I32) ((int *)r->tmp)[i] = *(const int *)row;
      else ((double *)r->tmp)[i] = *(const double *)row;
    }
    char what[96];
    snprintf(what, sizeof what, "appending to steps/%s", step_cols[c].name);
    AF_TRY(append_rows(r, r->ds_step[c], step_cols[c].kind, r->steps_written, n, 0, r->tmp, what));
  }
  r->steps_written += n;
  r->nrows = 0;
  return AF_OK;
}

static af_status flush_intervals(af_results *r) {
  size_t n = (size_t)r->iv_n;
  if (!n) return AF_OK;
  const void *bufs[N_IV] = {r->iv_i32[0], r->iv_step, r->iv_i32[1], r->iv_i32[2],
                            r->iv_d[0],   r->iv_d[1], r->iv_d[2],   r->iv_val, r->iv_d[3]};
  for (int c = 0; c < N_IV; c++) {
    char what[96];
    snprintf(what, sizeof what, "appending to intervals/%s", iv_cols[c].name);
    AF_TRY(append_rows(r, r->ds_iv[c], iv_cols[c].kind, r->iv_written, n, iv_cols[c].twod ? r->L : 0, bufs[c], what));
  }
  r->iv_written += n;
  r->iv_n = 0;
  return AF_OK;
}

static af_status flush_evals(af_results *r) {
  size_t n = (size_t)r->ev_n;
  hsize_t total = r->ev_written + n;
  if (n) {
    AF_TRY(append_rows(r, r->ds_eval[0], K_I64, r->ev_written, n, 0, r->ev_step, "appending to evals/step"));
    AF_TRY(append_rows(r, r->ds_eval[1], K_I32, r->ev_written, n, 0, r->ev_epoch, "appending to evals/epoch"));
    AF_TRY(append_rows(r, r->ds_eval[2], K_F64, r->ev_written, n, 0, r->ev_wall, "appending to evals/wall"));
  }
  /* Every metric dataset is brought to `total` rows; rows without a value hold NaN. */
  for (int m = 0; m < r->nmetrics; m++) {
    metric *mt = &r->metrics[m];
    if (mt->ds < 0) AF_TRY(make_dataset(r, r->g[G_EVALS], mt->name, K_F64, 0, EVAL_CHUNK, "metric value", &mt->ds));
    size_t need = (size_t)(total - mt->written);
    if (!need) continue;
    double *v = malloc(need * sizeof *v);
    if (!v) return AF_FAIL(AF_ERR_NOMEM, "out of memory writing evals/%s", mt->name);
    for (size_t i = 0; i < need; i++) v[i] = NAN;
    for (size_t k = 0; k < r->ev_nvals; k++) {
      const eval_value *e = &r->ev_vals[k];
      if (e->metric == m && e->row >= mt->written) v[e->row - mt->written] = e->v;
    }
    char what[300];
    snprintf(what, sizeof what, "appending to evals/%s", mt->name);
    af_status s = append_rows(r, mt->ds, K_F64, mt->written, need, 0, v, what);
    free(v);
    AF_TRY(s);
    mt->written = total;
  }
  r->ev_written = total;
  r->ev_n = 0;
  r->ev_nvals = 0;
  return AF_OK;
}

static void free_pending_attrs(af_results *r) {
  for (int i = 0; i < r->nattrs; i++) {
    free(r->attrs[i].key);
    free(r->attrs[i].s);
  }
  r->nattrs = 0;
}

static af_status flush_all(af_results *r) {
  AF_TRY(flush_steps(r));
  AF_TRY(flush_intervals(r));
  AF_TRY(flush_evals(r));
  for (int i = 0; i < r->nattrs; i++) AF_TRY(write_attr(r, &r->attrs[i]));
  free_pending_attrs(r);
  H5TRY(H5Fflush(r->file, H5F_SCOPE_LOCAL), r->path, "H5Fflush");
  /* Commit: only now do the groups' row counts move. A kill during the data writes above
   * leaves columns of unequal length or rows of fill values past the old counts; readers
   * take the first `rows` rows and never see them. The count is overwritten in place. */
  const struct { int g; hsize_t n; } commit[3] = {
      {G_STEPS, r->steps_written}, {G_INTERVALS, r->iv_written}, {G_EVALS, r->ev_written}};
  for (int k = 0; k < 3; k++) {
    pending_attr a = {.group = commit[k].g, .key = "rows", .type = ATTR_INT, .i = (long long)commit[k].n};
    AF_TRY(write_attr(r, &a));
  }
  H5TRY(H5Fflush(r->file, H5F_SCOPE_LOCAL), r->path, "H5Fflush");
  return AF_OK;
}

/* A write that fails part-way (a full disk, a file-size limit) can leave a superblock that
 * names an end of file past the real one, and HDF5 then refuses to open the whole file. So
 * the room a flush may need is reserved first: if it cannot be had, nothing is written and
 * the file stays as the last flush left it. The bound is generous: the buffered rows, a new
 * chunk for every dataset, and 1 MiB for HDF5's own metadata. */
static af_status reserve_room(af_results *r) {
  const long long need = (long long)r->nrows * N_STEP_COLS * 8 + (long long)r->iv_n * (4LL * r->L + 5) * 8 +
                         (long long)r->ev_n * (3 + r->nmetrics) * 8 + (long long)r->nattrs * 1024 +
                         (long long)(N_STEP_COLS * STEP_CAP * 8) + (long long)(N_IV * IV_CHUNK * 8 * (r->L + 1)) +
                         (1LL << 20);
  int fd = open(r->path, O_WRONLY | O_CLOEXEC);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    return AF_FAIL(AF_ERR_IO, "results file %s: %s", r->path, strerror(e));
  }
  int e = posix_fallocate(fd, 0, (off_t)sb.st_size + (off_t)need);
  close(fd);
  if (e == EINVAL || e == EOPNOTSUPP) return AF_OK;  /* a file system that cannot reserve: write as before */
  if (e)
    return AF_FAIL(AF_ERR_IO, "results file %s: no room to write the next rows (%s); it holds everything up to the "
                   "last flush", r->path, strerror(e));
  return AF_OK;
}

/* Gives back what reserve_room took beyond HDF5's own end of file. */
static void trim_room(af_results *r) {
  hsize_t size = 0;
  struct stat sb;
  if (H5Fget_filesize(r->file, &size) < 0) {
    H5Eclear2(H5E_DEFAULT);
    return;
  }
  /* a tail left in place (truncate failing) is harmless: HDF5 opens a file longer than its end */
  if (stat(r->path, &sb) == 0 && (hsize_t)sb.st_size > size && truncate(r->path, (off_t)size) != 0) return;
}

static af_status af_results_flush_unlocked(af_results *r) {
  if (!r) return AF_FAIL(AF_ERR_ARG, "results: no file");
  if (r->broken) return AF_FAIL(r->broken, "results file %s: unusable after an earlier error", r->path);
  AF_TRY(reserve_room(r));  /* nothing written yet: the writer stays usable */
  af_status s = flush_all(r);
  if (s != AF_OK) r->broken = s;
  else trim_room(r);
  return s;
}

/* ---------------------------------------------------------------- buffering rows */

af_status af_results_append_step(af_results *r, const af_step_record *s) {
  if (!r) return AF_FAIL(AF_ERR_ARG, "results: no file");
  if (r->nrows == STEP_CAP) AF_TRY(af_results_flush(r));
  r->rows[r->nrows++] = *s;
  return AF_OK;
}

af_status af_results_append_interval(af_results *r, int interval, long step, int depth_before, int depth_after,
                                     const double *l1, const double *l2, const double *ratio, double val_metric,
                                     const double *lr_factor) {
  if (!r) return AF_FAIL(AF_ERR_ARG, "results: no file");
  int cap = r->iv_cap;
  if (r->iv_n + 1 > cap) {
    int nc = cap ? 2 * cap : 32;
    for (int k = 0; k < 3; k++) {
      int c = cap;
      AF_TRY(af_results_grow((void **)&r->iv_i32[k], &c, nc, sizeof(int), "interval"));
    }
    for (int k = 0; k < 4; k++) {
      int c = cap;
      AF_TRY(af_results_grow((void **)&r->iv_d[k], &c, nc, (size_t)r->L * sizeof(double), "interval"));
    }
    int c = cap;
    AF_TRY(af_results_grow((void **)&r->iv_step, &c, nc, sizeof(long long), "interval"));
    c = cap;
    AF_TRY(af_results_grow((void **)&r->iv_val, &c, nc, sizeof(double), "interval"));
    r->iv_cap = nc;
  }
  int i = r->iv_n;
  r->iv_i32[0][i] = interval;
  r->iv_i32[1][i] = depth_before;
  r->iv_i32[2][i] = depth_after;
  r->iv_step[i] = step;
  r->iv_val[i] = val_metric;
  const double *src[4] = {l1, l2, ratio, lr_factor};
  for (int k = 0; k < 4; k++)
    for (int l = 0; l < r->L; l++) r->iv_d[k][(size_t)i * r->L + l] = src[k] ? src[k][l] : NAN;
  r->iv_n++;
  return AF_OK;
}

/* 1 for the columns every evaluation has (not metrics). */
static int eval_column(const char *name) {
  return !strcmp(name, "step") || !strcmp(name, "epoch") || !strcmp(name, "wall");
}

/* A metric seen for the first time; its dataset is created at the next flush. */
static af_status add_metric(af_results *r, const char *name) {
  AF_TRY(af_results_grow((void **)&r->metrics, &r->capmetrics, r->nmetrics + 1, sizeof *r->metrics, "metric"));
  char *nm = strdup(name);
  if (!nm) return AF_FAIL(AF_ERR_NOMEM, "out of memory for a metric name");
  r->metrics[r->nmetrics++] = (metric){.name = nm, .ds = H5I_INVALID_HID, .written = 0};
  return AF_OK;
}

af_status af_results_append_eval(af_results *r, long step, int epoch, double wall, int n,
                                 const char *const *names, const double *values) {
  if (!r) return AF_FAIL(AF_ERR_ARG, "results: no file");
  for (int k = 0; k < n; k++) {
    AF_TRY(check_key("metric", names[k]));
    if (eval_column(names[k]))
      return AF_FAIL(AF_ERR_ARG, "results: metric name '%s' is reserved in /evals", names[k]);
  }
  AF_TRY(af_results_grow((void **)&r->ev_step, &(int){r->ev_cap}, r->ev_n + 1, sizeof *r->ev_step, "eval"));
  AF_TRY(af_results_grow((void **)&r->ev_epoch, &(int){r->ev_cap}, r->ev_n + 1, sizeof *r->ev_epoch, "eval"));
  int cap = r->ev_cap;
  AF_TRY(af_results_grow((void **)&r->ev_wall, &cap, r->ev_n + 1, sizeof *r->ev_wall, "eval"));
  r->ev_cap = cap;
  size_t row = (size_t)(r->ev_written + (hsize_t)r->ev_n);
  for (int k = 0; k < n; k++) {
    int m = 0;
    while (m < r->nmetrics && strcmp(r->metrics[m].name, names[k])) m++;
    if (m == r->nmetrics) AF_TRY(add_metric(r, names[k]));
    if (r->ev_nvals == r->ev_capvals) {
      size_t c = r->ev_capvals ? 2 * r->ev_capvals : 64;
      eval_value *q = realloc(r->ev_vals, c * sizeof *q);
      if (!q) return AF_FAIL(AF_ERR_NOMEM, "out of memory growing the eval buffer");
      r->ev_vals = q;
      r->ev_capvals = c;
    }
    r->ev_vals[r->ev_nvals++] = (eval_value){.row = row, .metric = m, .v = values[k]};
  }
  r->ev_step[r->ev_n] = step;
  r->ev_epoch[r->ev_n] = epoch;
  r->ev_wall[r->ev_n] = wall;
  r->ev_n++;
  return AF_OK;
}

/* ---------------------------------------------------------------- create, resume, close */

static void release(af_results *r) {
  for (int m = 0; m < r->nmetrics; m++) {
    if (r->metrics[m].ds >= 0) H5Dclose(r->metrics[m].ds);
    free(r->metrics[m].name);
  }
  for (int c = 0; c < N_STEP_COLS; c++) if (r->ds_step[c] >= 0) H5Dclose(r->ds_step[c]);
  for (int c = 0; c < N_IV; c++) if (r->ds_iv[c] >= 0) H5Dclose(r->ds_iv[c]);
  for (int c = 0; c < 3; c++) if (r->ds_eval[c] >= 0) H5Dclose(r->ds_eval[c]);
  for (int g = 1; g < N_GROUPS; g++) if (r->g[g] >= 0) H5Gclose(r->g[g]);
  if (r->file >= 0) H5Fclose(r->file);
  free_pending_attrs(r);
  free(r->attrs);
  free(r->metrics);
  for (int k = 0; k < 3; k++) free(r->iv_i32[k]);
  for (int k = 0; k < 4; k++) free(r->iv_d[k]);
  free(r->iv_step);
  free(r->iv_val);
  free(r->ev_step);
  free(r->ev_epoch);
  free(r->ev_wall);
  free(r->ev_vals);
  free(r->path);
  free(r);
}

static af_status create_layout(af_results *r) {
  /* A local heap big enough for every link name up front: adding a metric dataset to /evals
   * then never relocates the heap, so a kill during that flush cannot hide older links. */
  hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
  H5Pset_local_heap_size_hint(gcpl, 4096);
  for (int g = 1; g < N_GROUPS; g++) {
    r->g[g] = H5Gcreate2(r->file, group_names[g], H5P_DEFAULT, gcpl, H5P_DEFAULT);
    if (r->g[g] < 0) {
      H5Pclose(gcpl);
      return H5FAIL(r->path, "creating a group");
    }
  }
  H5Pclose(gcpl);
  for (int c = 0; c < N_STEP_COLS; c++)
    AF_TRY(make_dataset(r, r->g[G_STEPS], step_cols[c].name, step_cols[c].kind, 0, STEP_CAP, step_cols[c].units,
                        &r->ds_step[c]));
  for (int c = 0; c < N_IV; c++)
    AF_TRY(make_dataset(r, r->g[G_INTERVALS], iv_cols[c].name, iv_cols[c].kind, iv_cols[c].twod ? r->L : 0,
                        iv_cols[c].twod ? 16 : IV_CHUNK, iv_cols[c].units, &r->ds_iv[c]));
  AF_TRY(make_dataset(r, r->g[G_EVALS], "step", K_I64, 0, EVAL_CHUNK, "optimizer steps done", &r->ds_eval[0]));
  AF_TRY(make_dataset(r, r->g[G_EVALS], "epoch", K_I32, 0, EVAL_CHUNK, "epoch (0-based)", &r->ds_eval[1]));
  AF_TRY(make_dataset(r, r->g[G_EVALS], "wall", K_F64, 0, EVAL_CHUNK, "s since the run started", &r->ds_eval[2]));

  AF_TRY(af_results_group_attr_str(r, "", "format", "autofreeze-results"));
  AF_TRY(af_results_group_attr_int(r, "", "format_version", AF_RESULTS_FORMAT_VERSION));
  AF_TRY(af_results_group_attr_int(r, "", "layers", r->L));
  AF_TRY(af_results_attr_str(r, "autofreeze_version", AF_VERSION));
  AF_TRY(af_results_attr_str(r, "git_revision", AF_GIT_REV));
  unsigned maj, min, rel;
  H5get_libversion(&maj, &min, &rel);
  char buf[256];
  snprintf(buf, sizeof buf, "%u.%u.%u", maj, min, rel);
  AF_TRY(af_results_attr_str(r, "hdf5_version", buf));
  if (gethostname(buf, sizeof buf) != 0) snprintf(buf, sizeof buf, "unknown");
  buf[sizeof buf - 1] = 0;
  AF_TRY(af_results_attr_str(r, "host", buf));
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  AF_TRY(af_results_attr_str(r, "created", buf));
  AF_TRY(af_results_set_cache(r, &(af_cache_record){.disabled_reason = "not configured", .requested = "off",
                                                     .memory_tier = "not asked for", .disk_tier = "not asked for"}));
  AF_TRY(af_results_set_summary_str(r, "status", "running"));
  /* The summary's usual keys exist from the start, so setting them later rewrites values in
   * place instead of growing the object header during a run (see the crash notes in
   * docs/results-format.md). */
  AF_TRY(af_results_set_summary_str(r, "best_metric", ""));
  AF_TRY(af_results_set_summary_double(r, "best_value", NAN));
  AF_TRY(af_results_set_summary_int(r, "best_step", -1));
  AF_TRY(af_results_set_summary_double(r, "time_to_best", NAN));
  AF_TRY(af_results_set_summary_double(r, "total_time", NAN));
  return af_results_flush(r);
}

/* A writer for path with nothing open yet: every handle is marked invalid, so release()
 * closes exactly what was opened. */
static af_status new_writer(const char *path, int L, af_results **out) {
  af_results *r;
  AF_TRY(af_calloc((void **)&r, 1, sizeof *r, "results writer"));
  r->L = L;
  r->file = H5I_INVALID_HID;
  for (int g = 0; g < N_GROUPS; g++) r->g[g] = H5I_INVALID_HID;
  for (int c = 0; c < N_STEP_COLS; c++) r->ds_step[c] = H5I_INVALID_HID;
  for (int c = 0; c < N_IV; c++) r->ds_iv[c] = H5I_INVALID_HID;
  for (int c = 0; c < 3; c++) r->ds_eval[c] = H5I_INVALID_HID;
  r->path = strdup(path);
  if (!r->path) {
    free(r);
    return AF_FAIL(AF_ERR_NOMEM, "out of memory");
  }
  *out = r;
  return AF_OK;
}

static af_status af_results_create_unlocked(const char *path, int L, af_results **out) {
  *out = NULL;
  if (L < 1) return AF_FAIL(AF_ERR_ARG, "results file %s: need at least one layer, got %d", path, L);
  char dir[PATH_MAX];
  af_path_dir(path, dir, sizeof dir);
  if (!af_is_dir(dir))
    return AF_FAIL(AF_ERR_IO, "cannot create results file %s: directory %s does not exist", path, dir);
  af_results_h5_quiet();
  af_results *r;
  AF_TRY(new_writer(path, L, &r));
  r->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (r->file < 0) {
    af_status s = H5FAIL(path, "creating the file");
    release(r);
    return s == AF_ERR_BACKEND ? AF_ERR_IO : s;
  }
  r->g[G_ROOT] = r->file;   /* not closed as a group: g[] from 1 on are */
  af_status s = create_layout(r);
  if (s != AF_OK) {
    release(r);
    return s;
  }
  *out = r;
  return AF_OK;
}

/* Rows of a group to keep on resume: committed ones with step <= keep_step. */
static af_status kept_rows(af_results *r, hid_t g, const char *gname, long keep_step, hsize_t *keep) {
  long long rows = 0;
  if (af_results_h5_rows(g, ".", &rows) < 0)
    return AF_FAIL(AF_ERR_FORMAT, "results file %s: /%s has no committed row count", r->path, gname);
  hid_t ds = H5Dopen2(g, "step", H5P_DEFAULT);
  if (ds < 0) return H5FAIL(r->path, "opening a step dataset");
  hid_t sp = H5Dget_space(ds);
  hsize_t d[1] = {0};
  H5Sget_simple_extent_dims(sp, d, NULL);
  hsize_t n = (hsize_t)rows < d[0] ? (hsize_t)rows : d[0];
  long long *v = malloc((n ? n : 1) * sizeof *v);
  herr_t e = -1;
  if (v) {
    hsize_t start[1] = {0}, count[1] = {n};
    hid_t ms = H5Screate_simple(1, count, NULL);
    e = n ? H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL) : 0;
    if (n && e >= 0) e = H5Dread(ds, H5T_NATIVE_LLONG, ms, sp, H5P_DEFAULT, v);
    H5Sclose(ms);
  }
  H5Sclose(sp);
  H5Dclose(ds);
  if (!v) return AF_FAIL(AF_ERR_NOMEM, "out of memory reading %s/step", gname);
  if (e < 0) {
    free(v);
    return H5FAIL(r->path, "reading a step dataset");
  }
  hsize_t k = 0;
  while (k < n && v[k] <= keep_step) k++;
  free(v);
  *keep = k;
  return AF_OK;
}

static af_status open_ds(af_results *r, hid_t g, const char *name, hsize_t rows, int cols, hid_t *out) {
  *out = H5Dopen2(g, name, H5P_DEFAULT);
  if (*out < 0) {
    char what[300];
    snprintf(what, sizeof what, "opening dataset %s", name);
    return H5FAIL(r->path, what);
  }
  hsize_t ext[2] = {rows, (hsize_t)cols};
  H5TRY(H5Dset_extent(*out, ext), r->path, "truncating a dataset");
  return AF_OK;
}

static herr_t metric_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  af_results *r = data;
  if (eval_column(name)) return 0;
  return add_metric(r, name) == AF_OK ? 0 : -1;
}

static af_status reopen_layout(af_results *r, long keep_step) {
  for (int g = 1; g < N_GROUPS; g++) {
    r->g[g] = H5Gopen2(r->file, group_names[g], H5P_DEFAULT);
    if (r->g[g] < 0) return H5FAIL(r->path, "opening a group");
  }
  int L = 0;
  hid_t a = H5Aopen(r->file, "layers", H5P_DEFAULT);
  herr_t e = a < 0 ? -1 : H5Aread(a, H5T_NATIVE_INT, &L);
  if (a >= 0) H5Aclose(a);
  if (e < 0 || L != r->L) {
    H5Eclear2(H5E_DEFAULT);
    return AF_FAIL(AF_ERR_ARG, "results file %s: has %d layers, the run has %d", r->path, L, r->L);
  }
  AF_TRY(kept_rows(r, r->g[G_STEPS], "steps", keep_step, &r->steps_written));
  AF_TRY(kept_rows(r, r->g[G_INTERVALS], "intervals", keep_step, &r->iv_written));
  AF_TRY(kept_rows(r, r->g[G_EVALS], "evals", keep_step, &r->ev_written));
  for (int c = 0; c < N_STEP_COLS; c++)
    AF_TRY(open_ds(r, r->g[G_STEPS], step_cols[c].name, r->steps_written, 0, &r->ds_step[c]));
  for (int c = 0; c < N_IV; c++) {
    const int cols = iv_cols[c].twod ? r->L : 0;
    if (iv_cols[c].kind == K_F64 && H5Lexists(r->g[G_INTERVALS], iv_cols[c].name, H5P_DEFAULT) == 0) {
      /* a file from before this column: add it, NaN (its fill value) for the rows it has */
      hsize_t ext[2] = {r->iv_written, (hsize_t)cols};
      AF_TRY(make_dataset(r, r->g[G_INTERVALS], iv_cols[c].name, K_F64, cols, cols ? 16 : IV_CHUNK,
                          iv_cols[c].units, &r->ds_iv[c]));
      H5TRY(H5Dset_extent(r->ds_iv[c], ext), r->path, "extending a dataset");
      continue;
    }
    AF_TRY(open_ds(r, r->g[G_INTERVALS], iv_cols[c].name, r->iv_written, cols, &r->ds_iv[c]));
  }
  const char *ev[3] = {"step", "epoch", "wall"};
  for (int c = 0; c < 3; c++) AF_TRY(open_ds(r, r->g[G_EVALS], ev[c], r->ev_written, 0, &r->ds_eval[c]));
  hsize_t idx = 0;
  H5TRY(H5Literate(r->g[G_EVALS], H5_INDEX_NAME, H5_ITER_INC, &idx, metric_cb, r), r->path, "listing /evals");
  for (int m = 0; m < r->nmetrics; m++) {
    hsize_t cur[1] = {0};
    AF_TRY(open_ds(r, r->g[G_EVALS], r->metrics[m].name, r->ev_written, 0, &r->metrics[m].ds));
    hid_t sp = H5Dget_space(r->metrics[m].ds);
    H5Sget_simple_extent_dims(sp, cur, NULL);
    H5Sclose(sp);
    r->metrics[m].written = cur[0];
  }
  AF_TRY(af_results_set_summary_str(r, "status", "running"));
  return af_results_flush(r);
}

static af_status af_results_open_append_unlocked(const char *path, int L, long keep_step, af_results **out) {
  *out = NULL;
  af_results_h5_quiet();
  if (access(path, R_OK | W_OK) != 0)
    return AF_FAIL(AF_ERR_IO, "cannot resume results file %s: no such writable file", path);
  af_results *r;
  AF_TRY(new_writer(path, L, &r));
  r->file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  af_status s;
  if (r->file < 0) {
    H5FAIL(path, "opening for resume");
    s = AF_ERR_FORMAT;
  } else {
    r->g[G_ROOT] = r->file;
    s = reopen_layout(r, keep_step);
  }
  if (s != AF_OK) {
    release(r);
    return s;
  }
  *out = r;
  return AF_OK;
}

static af_status af_results_close_unlocked(af_results **rp, const char *status) {
  if (!rp || !*rp) return AF_OK;
  af_results *r = *rp;
  *rp = NULL;
  af_status s = r->broken;
  if (s == AF_OK) {
    s = af_results_set_summary_str(r, "status", status ? status : "complete");
    if (s == AF_OK) s = af_results_flush(r);
  }
  release(r);
  return s;
}


/* ---- locked entry points: every HDF5 call holds af_h5_lock (see h5lock.h) ---- */

af_status af_results_create(const char *path, int L, af_results **out) {
  AF_RESULTS_LOCKED(af_status, af_results_create_unlocked(path, L, out));
}

af_status af_results_open_append(const char *path, int L, long keep_step, af_results **out) {
  AF_RESULTS_LOCKED(af_status, af_results_open_append_unlocked(path, L, keep_step, out));
}

af_status af_results_flush(af_results *r) { AF_RESULTS_LOCKED(af_status, af_results_flush_unlocked(r)); }

af_status af_results_close(af_results **rp, const char *status) {
  AF_RESULTS_LOCKED(af_status, af_results_close_unlocked(rp, status));
}
