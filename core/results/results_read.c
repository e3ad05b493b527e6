/* The HDF5 results reader (layout: docs/results-format.md): open a file, read its 1-D and 2-D
 * datasets as doubles up to their group's committed row count, its attributes and its
 * dataset names. Every entry point holds af_h5_lock. */
#include "core/results/results_read.h"
#include "core/results/results.h"   /* AF_RESULTS_FORMAT_VERSION */
#include "core/results/results_hdf5.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct af_results_reader {
  char *path;
  hid_t file;
  int version, L;
};

static af_status read_root_int(af_results_reader *rr, const char *name, int *v) {
  hid_t a = H5Aopen(rr->file, name, H5P_DEFAULT);
  if (a < 0) {
    H5Eclear2(H5E_DEFAULT);
    return AF_FAIL(AF_ERR_FORMAT, "%s is not an autofreeze results file (no root attribute '%s')", rr->path, name);
  }
  herr_t e = H5Aread(a, H5T_NATIVE_INT, v);
  H5Aclose(a);
  H5TRY(e, rr->path, "reading a root attribute");
  return AF_OK;
}

static af_status af_results_open_read_unlocked(const char *path, af_results_reader **out) {
  *out = NULL;
  af_results_h5_quiet();
  if (access(path, R_OK) != 0) return AF_FAIL(AF_ERR_IO, "cannot read results file %s: no such readable file", path);
  af_results_reader *rr;
  AF_TRY(af_calloc((void **)&rr, 1, sizeof *rr, "results reader"));
  rr->path = strdup(path);
  rr->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  af_status s = AF_OK;
  if (rr->file < 0) {
    H5FAIL(path, "opening");   /* HDF5's reason in the message; the status says "not a results file" */
    s = AF_ERR_FORMAT;
  }
  if (s == AF_OK) s = read_root_int(rr, "format_version", &rr->version);
  if (s == AF_OK) s = read_root_int(rr, "layers", &rr->L);
  if (s == AF_OK && rr->version > AF_RESULTS_FORMAT_VERSION)
    s = AF_FAIL(AF_ERR_UNSUPPORTED, "results file %s has format version %d; this build reads up to %d", path,
                rr->version, AF_RESULTS_FORMAT_VERSION);
  if (s != AF_OK) {
    af_results_close_read(&rr);
    return s;
  }
  *out = rr;
  return AF_OK;
}

static void af_results_close_read_unlocked(af_results_reader **rp) {
  if (!rp || !*rp) return;
  af_results_reader *rr = *rp;
  if (rr->file >= 0) H5Fclose(rr->file);
  free(rr->path);
  free(rr);
  *rp = NULL;
}

int af_results_format_version(const af_results_reader *rr) { return rr->version; }
int af_results_layers(const af_results_reader *rr) { return rr->L; }

static int af_results_has_unlocked(af_results_reader *rr, const char *path) {
  char buf[1024];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf) return 0;
  memcpy(buf, path, n + 1);
  /* H5Lexists needs every intermediate link to exist, so test each prefix. */
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != 0) continue;
    char c = buf[i];
    buf[i] = 0;
    htri_t e = H5Lexists(rr->file, buf, H5P_DEFAULT);
    buf[i] = c;
    if (e <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return 0;
    }
  }
  return 1;
}

/* The committed row count of the group holding path ("steps/loss" -> /steps@rows); files
 * without it (none yet) are taken whole. */
static hsize_t committed_rows(af_results_reader *rr, const char *path) {
  char grp[256];
  const char *slash = strrchr(path, '/');
  size_t n = slash ? (size_t)(slash - path) : 0;
  if (n == 0 || n >= sizeof grp) return (hsize_t)-1;
  memcpy(grp, path, n);
  grp[n] = 0;
  long long rows = -1;
  return af_results_h5_rows(rr->file, grp, &rows) < 0 || rows < 0 ? (hsize_t)-1 : (hsize_t)rows;
}

static af_status read_nd(af_results_reader *rr, const char *path, int want_rank, double **v, size_t *dims) {
  *v = NULL;
  if (!af_results_has(rr, path))
    return AF_FAIL(AF_ERR_FORMAT, "results file %s has no dataset %s", rr->path, path);
  hid_t ds = H5Dopen2(rr->file, path, H5P_DEFAULT);
  if (ds < 0) return H5FAIL(rr->path, path);
  hid_t sp = H5Dget_space(ds);
  hsize_t d[2] = {0, 0};
  int rank = H5Sget_simple_extent_ndims(sp);
  if (rank != want_rank) {
    H5Sclose(sp);
    H5Dclose(ds);
    return AF_FAIL(AF_ERR_FORMAT, "results file %s: %s has %d dimension(s), expected %d", rr->path, path, rank,
                   want_rank);
  }
  H5Sget_simple_extent_dims(sp, d, NULL);
  hsize_t committed = committed_rows(rr, path);
  if (committed < d[0]) d[0] = committed;
  size_t total = (size_t)d[0] * (want_rank == 2 ? (size_t)d[1] : 1);
  herr_t e = 0;
  if (total > 0) {
    *v = malloc(total * sizeof **v);
    hsize_t start[2] = {0, 0};
    hid_t ms = H5Screate_simple(want_rank, d, NULL);
    if (!*v) e = -2;
    else e = H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, d, NULL);
    if (e >= 0) e = H5Dread(ds, H5T_NATIVE_DOUBLE, ms, sp, H5P_DEFAULT, *v);
    H5Sclose(ms);
  }
  H5Sclose(sp);
  H5Dclose(ds);
  if (e == -2) return AF_FAIL(AF_ERR_NOMEM, "out of memory reading %s", path);
  if (e < 0) {
    free(*v);
    *v = NULL;
    return H5FAIL(rr->path, path);
  }
  dims[0] = (size_t)d[0];
  dims[1] = (size_t)d[1];
  return AF_OK;
}

static int af_results_rank_unlocked(af_results_reader *rr, const char *path) {
  if (!af_results_has_unlocked(rr, path)) return -1;
  hid_t ds = H5Dopen2(rr->file, path, H5P_DEFAULT);
  if (ds < 0) {
    H5Eclear2(H5E_DEFAULT);
    return -1;
  }
  hid_t sp = H5Dget_space(ds);
  int rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
  if (sp >= 0) H5Sclose(sp);
  H5Dclose(ds);
  return rank;
}

static af_status af_results_read_1d_unlocked(af_results_reader *rr, const char *path, double **v, size_t *n) {
  size_t d[2];
  AF_TRY(read_nd(rr, path, 1, v, d));
  *n = d[0];
  return AF_OK;
}

static af_status af_results_read_2d_unlocked(af_results_reader *rr, const char *path, double **v, size_t *rows, size_t *cols) {
  size_t d[2];
  AF_TRY(read_nd(rr, path, 2, v, d));
  *rows = d[0];
  *cols = d[1];
  return AF_OK;
}

typedef struct {
  af_attr *a;
  int n, cap;
  int err;
} attr_list;

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
  attr_list *L = data;
  if (af_results_grow((void **)&L->a, &L->cap, L->n + 1, sizeof *L->a, "attribute") != AF_OK) return -1;
  af_attr *x = &L->a[L->n];
  memset(x, 0, sizeof *x);
  x->key = strdup(name);
  if (!x->key) return -1;
  L->n++;
  x->type = AF_ATTR_OTHER;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
  H5T_class_t cls = H5Tget_class(t);
  int scalar = H5Sget_simple_extent_npoints(sp) == 1;
  herr_t e = 0;
  if (scalar && cls == H5T_INTEGER) {
    e = H5Aread(a, H5T_NATIVE_LLONG, &x->i);
    x->d = (double)x->i;
    x->type = AF_ATTR_INT;
  } else if (scalar && cls == H5T_FLOAT) {
    e = H5Aread(a, H5T_NATIVE_DOUBLE, &x->d);
    x->type = AF_ATTR_DOUBLE;
  } else if (scalar && cls == H5T_STRING) {
    if (H5Tis_variable_str(t) > 0) {
      char *s = NULL;
      hid_t mt = af_results_h5_vlen_str(H5Tget_cset(t));
      e = H5Aread(a, mt, &s);
      if (e >= 0) {
        x->s = strdup(s ? s : "");
        H5free_memory(s);
      }
      H5Tclose(mt);
    } else {
      size_t sz = H5Tget_size(t);
      x->s = calloc(sz + 1, 1);
      hid_t mt = H5Tcopy(t);
      if (x->s) e = H5Aread(a, mt, x->s);
      H5Tclose(mt);
    }
    if (e >= 0 && !x->s) e = -1;
    x->type = AF_ATTR_STR;
  }
  H5Sclose(sp);
  H5Tclose(t);
  H5Aclose(a);
  if (e < 0) {   /* unreadable value (a kill during its update): report the key, type OTHER */
    H5Eclear2(H5E_DEFAULT);
    free(x->s);
    x->s = NULL;
    x->type = AF_ATTR_OTHER;
  }
  return 0;
}

void af_results_free_attrs(af_attr *attrs, int n) {
  if (!attrs) return;
  for (int i = 0; i < n; i++) {
    free(attrs[i].key);
    free(attrs[i].s);
  }
  free(attrs);
}

/* A group ("" or NULL: the root) into *g, or AF_ERR_FORMAT naming it. */
static af_status open_group(af_results_reader *rr, const char *group, hid_t *g) {
  if (!group || !group[0]) *g = H5Gopen2(rr->file, "/", H5P_DEFAULT);
  else *g = af_results_has(rr, group) ? H5Gopen2(rr->file, group, H5P_DEFAULT) : H5I_INVALID_HID;
  if (*g < 0) {
    H5Eclear2(H5E_DEFAULT);
    return AF_FAIL(AF_ERR_FORMAT, "results file %s has no group /%s", rr->path, group);
  }
  return AF_OK;
}

static af_status af_results_read_attrs_unlocked(af_results_reader *rr, const char *group, af_attr **attrs, int *n) {
  *attrs = NULL;
  *n = 0;
  hid_t g;
  AF_TRY(open_group(rr, group, &g));
  attr_list L = {0};
  hsize_t idx = 0;
  herr_t e = H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, &L);
  H5Gclose(g);
  if (e < 0) {
    af_results_free_attrs(L.a, L.n);
    char what[300];
    snprintf(what, sizeof what, "reading the attributes of /%s", group);
    return H5FAIL(rr->path, what);
  }
  *attrs = L.a;
  *n = L.n;
  return AF_OK;
}

const af_attr *af_results_find_attr(const af_attr *attrs, int n, const char *key) {
  for (int i = 0; i < n; i++)
    if (!strcmp(attrs[i].key, key)) return &attrs[i];
  return NULL;
}

typedef struct {
  char **v;
  int n, cap;
} name_list;

static herr_t link_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  name_list *L = data;
  hid_t o = H5Oopen(g, name, H5P_DEFAULT);
  if (o < 0) {   /* a dataset whose creation a kill interrupted: never committed, skip it */
    H5Eclear2(H5E_DEFAULT);
    return 0;
  }
  int is_ds = H5Iget_type(o) == H5I_DATASET;
  H5Oclose(o);
  if (!is_ds) return 0;
  if (af_results_grow((void **)&L->v, &L->cap, L->n + 1, sizeof *L->v, "name") != AF_OK) return -1;
  L->v[L->n] = strdup(name);
  if (!L->v[L->n]) return -1;
  L->n++;
  return 0;
}

void af_results_free_names(char **names, int n) {
  if (!names) return;
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
}

static af_status af_results_list_unlocked(af_results_reader *rr, const char *group, char ***names, int *n) {
  *names = NULL;
  *n = 0;
  hid_t g;
  AF_TRY(open_group(rr, group, &g));
  name_list L = {0};
  hsize_t idx = 0;
  herr_t e = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, link_cb, &L);
  H5Gclose(g);
  if (e < 0) {
    af_results_free_names(L.v, L.n);
    return H5FAIL(rr->path, "listing a group");
  }
  *names = L.v;
  *n = L.n;
  return AF_OK;
}

/* ---- locked entry points: every HDF5 call holds af_h5_lock (see h5lock.h) ---- */

af_status af_results_open_read(const char *path, af_results_reader **out) {
  AF_RESULTS_LOCKED(af_status, af_results_open_read_unlocked(path, out));
}

void af_results_close_read(af_results_reader **rp) {
  af_h5_lock();
  af_results_close_read_unlocked(rp);
  af_h5_unlock();
}

int af_results_has(af_results_reader *rr, const char *path) {
  AF_RESULTS_LOCKED(int, af_results_has_unlocked(rr, path));
}

int af_results_rank(af_results_reader *rr, const char *path) {
  AF_RESULTS_LOCKED(int, af_results_rank_unlocked(rr, path));
}

af_status af_results_read_1d(af_results_reader *rr, const char *path, double **v, size_t *n) {
  AF_RESULTS_LOCKED(af_status, af_results_read_1d_unlocked(rr, path, v, n));
}

af_status af_results_read_2d(af_results_reader *rr, const char *path, double **v, size_t *rows, size_t *cols) {
  AF_RESULTS_LOCKED(af_status, af_results_read_2d_unlocked(rr, path, v, rows, cols));
}

af_status af_results_read_attrs(af_results_reader *rr, const char *group, af_attr **attrs, int *n) {
  AF_RESULTS_LOCKED(af_status, af_results_read_attrs_unlocked(rr, group, attrs, n));
}

af_status af_results_list(af_results_reader *rr, const char *group, char ***names, int *n) {
  AF_RESULTS_LOCKED(af_status, af_results_list_unlocked(rr, group, names, n));
}
