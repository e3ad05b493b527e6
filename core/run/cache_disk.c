/* The activation cache's disk tier: one HDF5 file per run, a chunked extendible [rows, C]
 * dataset "/act" plus header attributes on the root (format, format_version, run_key,
 * hidden, dtype). The serial HDF5 library is not thread-safe, so every call here runs
 * under the process-wide af_h5_lock; the reader thread and the training thread share it. */
#define _GNU_SOURCE  /* memfd_create */
#include "core/run/cache_disk.h"
#include "core/base/fsutil.h"
#include "core/base/h5lock.h"
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Rows per chunk: 64 tokens is a fraction of a typical entry, so reading one entry touches
 * 2-3 chunks (64 x 384 x 2 B = 48 KiB for MiniLM in fp16; 192 KiB for BERT-base fp32). */
#define CHUNK_ROWS 64
/* The dataset grows by at least this many rows per resize (about 1.5-6 MiB of entries). */
#define GROW_ROWS 4096

struct af_cache_file {
  char *path;
  hid_t file, dset, mtype;
  int hidden;
  size_t esize;
  uint64_t extent;      /* rows in the dataset's current extent */
  int fd;               /* HDF5's own descriptor (sec2 driver), for the health check */
  long long max_size;   /* largest size seen: the file only grows unless someone truncates it */
};

static uint64_t fnv1a(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; s && *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return h;
}

static herr_t attr_str(hid_t obj, const char *name, const char *v) {
  hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a = -1;
  herr_t e = -1;
  if (t >= 0 && sp >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 && H5Tset_cset(t, H5T_CSET_UTF8) >= 0) {
    a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) e = H5Awrite(a, t, &v);
  }
  if (a >= 0) H5Aclose(a);
  if (sp >= 0) H5Sclose(sp);
  if (t >= 0) H5Tclose(t);
  return e;
}

static herr_t attr_int(hid_t obj, const char *name, long long v) {
  hid_t sp = H5Screate(H5S_SCALAR), a = -1;
  herr_t e = -1;
  if (sp >= 0) a = H5Acreate2(obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) e = H5Awrite(a, H5T_NATIVE_LLONG, &v);
  if (a >= 0) H5Aclose(a);
  if (sp >= 0) H5Sclose(sp);
  return e;
}

/* String attribute into out (empty string and -1 when missing or not a string). */
static int read_attr_str(hid_t obj, const char *name, char *out, size_t n) {
  out[0] = 0;
  if (H5Aexists(obj, name) <= 0) return -1;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a);
  int rc = -1;
  if (ft >= 0 && H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) > 0) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char *s = NULL;
    if (H5Aread(a, t, &s) >= 0 && s) {
      snprintf(out, n, "%s", s);
      H5free_memory(s);
      rc = 0;
    }
    H5Tclose(t);
  }
  if (ft >= 0) H5Tclose(ft);
  H5Aclose(a);
  return rc;
}

static int read_attr_int(hid_t obj, const char *name, long long *v) {
  if (H5Aexists(obj, name) <= 0) return -1;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return -1;
  int rc = H5Aread(a, H5T_NATIVE_LLONG, v) >= 0 ? 0 : -1;
  H5Aclose(a);
  return rc;
}

/* 0: an HDF5 file carrying our format attribute (whatever its key); -1 otherwise. */
static int is_cache_file(const char *path) {
  if (H5Fis_hdf5(path) <= 0) return -1;
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return -1;
  char fmt[64];
  int rc = read_attr_str(f, "format", fmt, sizeof fmt) == 0 && !strcmp(fmt, AF_CACHE_FORMAT) ? 0 : -1;
  H5Fclose(f);
  return rc;
}

af_status af_act_cache_file_check(const char *path, const char *run_key, int hidden, af_cache_dtype dtype) {
  af_h5_lock();
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  af_status st = AF_OK;
  hid_t f = -1;
  if (H5Fis_hdf5(path) <= 0) {
    st = AF_FAIL(AF_ERR_FORMAT, "%s: not an HDF5 file (or unreadable)", path);
    goto out;
  }
  f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    st = AF_FAIL(AF_ERR_IO, "%s: cannot open the HDF5 file", path);
    goto out;
  }
  char s[4096];
  long long v = -1;
  if (read_attr_str(f, "format", s, sizeof s) || strcmp(s, AF_CACHE_FORMAT)) {
    st = AF_FAIL(AF_ERR_FORMAT, "%s: attribute format is '%s', expected '%s'", path, s, AF_CACHE_FORMAT);
  } else if (read_attr_int(f, "format_version", &v) || v != AF_CACHE_FORMAT_VERSION) {
    st = AF_FAIL(AF_ERR_FORMAT, "%s: format_version %lld, expected %d", path, v, AF_CACHE_FORMAT_VERSION);
  } else if (read_attr_str(f, "run_key", s, sizeof s) || strcmp(s, run_key ? run_key : "")) {
    st = AF_FAIL(AF_ERR_FORMAT, "%s: written for run_key '%s', expected '%s'", path, s, run_key ? run_key : "");
  } else if (read_attr_int(f, "hidden", &v) || v != hidden) {
    st = AF_FAIL(AF_ERR_FORMAT, "%s: hidden %lld, expected %d", path, v, hidden);
  } else if (read_attr_str(f, "dtype", s, sizeof s) || strcmp(s, af_cache_dtype_name(dtype))) {
    st = AF_FAIL(AF_ERR_FORMAT, "%s: dtype '%s', expected '%s'", path, s, af_cache_dtype_name(dtype));
  }
out:
  if (f >= 0) H5Fclose(f);
  af_h5_unlock();
  return st;
}

/* Detects a file truncated or deleted under us. HDF5's sec2 driver reads past the end of
 * the file as zeros without an error, so without this a truncated file would silently
 * return zeroed activations. */
static af_status health(af_cache_file *f) {
  struct stat sb;
  if (fstat(f->fd, &sb) != 0) return AF_FAIL(AF_ERR_IO, "cache file %s: fstat: %s", f->path, strerror(errno));
  if (sb.st_nlink == 0) return AF_FAIL(AF_ERR_IO, "cache file %s was deleted", f->path);
  if ((long long)sb.st_size < f->max_size)
    return AF_FAIL(AF_ERR_IO, "cache file %s was truncated (%lld bytes, was %lld)", f->path, (long long)sb.st_size,
                   f->max_size);
  f->max_size = (long long)sb.st_size;
  return AF_OK;
}

static void file_free(af_cache_file *f) {
  /* The file is about to be unlinked, so what HDF5 flushes at close (dirty chunks and
   * metadata) is waste, and on a full disk or a truncated file it fails, which leaves the
   * file half-closed and crashes the library at exit. Point HDF5's descriptor at an
   * anonymous in-memory file first: the closing writes then succeed and vanish. */
  if (f->fd >= 0) {
    int mfd = memfd_create("afcache-discard", MFD_CLOEXEC);
    if (mfd >= 0) {
      dup2(mfd, f->fd);
      close(mfd);
    }
  }
  if (f->dset >= 0) H5Dclose(f->dset);
  if (f->file >= 0) H5Fclose(f->file);
  free(f->path);
  free(f);
}

af_status af_cache_file_create(const char *dir, const char *run_key, int hidden, af_cache_dtype dtype, int compress,
                               af_cache_file **out) {
  *out = NULL;
  if (!dir || !*dir) dir = getenv("TMPDIR");
  if (!dir || !*dir) dir = "/tmp";
  af_cache_file *f = calloc(1, sizeof *f);
  size_t plen = strlen(dir) + 64;
  if (!f || !(f->path = malloc(plen))) {
    free(f);
    return AF_FAIL(AF_ERR_NOMEM, "out of memory for the cache file");
  }
  f->file = f->dset = -1;
  f->fd = -1;
  f->hidden = hidden;
  f->esize = af_cache_dtype_size(dtype);
  f->mtype = dtype == AF_DTYPE_F32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_USHORT;
  snprintf(f->path, plen, "%s/afcache-%016llx-%ld.h5", dir, (unsigned long long)fnv1a(run_key), (long)getpid());

  int derr = af_dir_errno(dir);
  if (derr) {
    af_status st = AF_FAIL(AF_ERR_IO, "cache dir %s: %s", dir, derr == ENOTDIR ? "not a directory" : strerror(derr));
    free(f->path);
    free(f);
    return st;
  }
  if (access(dir, W_OK | X_OK) != 0) {
    af_status st = AF_FAIL(AF_ERR_IO, "cache dir %s is not writable: %s", dir, strerror(errno));
    free(f->path);
    free(f);
    return st;
  }

  af_h5_lock();
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  af_status st = AF_OK;
  hid_t fapl = -1, sp = -1, dcpl = -1, dapl = -1;
  if (access(f->path, F_OK) == 0) {
    /* A leftover of a crashed run whose pid came round again. It is never read: ours
     * (whatever key) is removed, anything else is left alone and the cache stays off. */
    if (is_cache_file(f->path) != 0) {
      st = AF_FAIL(AF_ERR_IO, "%s exists and is not an autofreeze cache file; not touching it", f->path);
      goto out;
    }
    if (unlink(f->path) != 0) {
      st = AF_FAIL(AF_ERR_IO, "cannot remove the stale cache file %s: %s", f->path, strerror(errno));
      goto out;
    }
  }
  fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
    st = AF_FAIL(AF_ERR_BACKEND, "HDF5: cannot make a file access property list");
    goto out;
  }
  errno = 0;
  f->file = H5Fcreate(f->path, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
  if (f->file < 0) {
    st = AF_FAIL(AF_ERR_IO, "cannot create the cache file %s%s%s", f->path, errno ? ": " : "",
                 errno ? strerror(errno) : "");
    goto out;
  }
  if (attr_str(f->file, "format", AF_CACHE_FORMAT) < 0 ||
      attr_int(f->file, "format_version", AF_CACHE_FORMAT_VERSION) < 0 ||
      attr_str(f->file, "run_key", run_key ? run_key : "") < 0 || attr_int(f->file, "hidden", hidden) < 0 ||
      attr_str(f->file, "dtype", af_cache_dtype_name(dtype)) < 0) {
    st = AF_FAIL(AF_ERR_IO, "cache file %s: cannot write the header attributes", f->path);
    goto out;
  }
  hsize_t dims[2] = {0, (hsize_t)hidden}, maxd[2] = {H5S_UNLIMITED, (hsize_t)hidden},
          chunk[2] = {CHUNK_ROWS, (hsize_t)hidden};
  sp = H5Screate_simple(2, dims, maxd);
  dcpl = H5Pcreate(H5P_DATASET_CREATE);
  dapl = H5Pcreate(H5P_DATASET_ACCESS);
  if (sp < 0 || dcpl < 0 || dapl < 0 || H5Pset_chunk(dcpl, 2, chunk) < 0 ||
      (compress > 0 && (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)compress) < 0)) ||
      H5Pset_chunk_cache(dapl, 10007, 8u << 20, 1.0) < 0) {
    st = AF_FAIL(AF_ERR_BACKEND, "HDF5: cannot set up the cache dataset (compress %d)", compress);
    goto out;
  }
  f->dset = H5Dcreate2(f->file, "act", dtype == AF_DTYPE_F32 ? H5T_IEEE_F32LE : H5T_STD_U16LE, sp, H5P_DEFAULT, dcpl,
                       dapl);
  if (f->dset < 0 || attr_str(f->dset, "dtype", af_cache_dtype_name(dtype)) < 0) {
    st = AF_FAIL(AF_ERR_IO, "cache file %s: cannot create dataset /act", f->path);
    goto out;
  }
  void *h = NULL;
  if (H5Fflush(f->file, H5F_SCOPE_LOCAL) < 0 || H5Fget_vfd_handle(f->file, H5P_DEFAULT, &h) < 0 || !h) {
    st = AF_FAIL(AF_ERR_IO, "cache file %s: cannot flush the header", f->path);
    goto out;
  }
  f->fd = *(int *)h;
  st = health(f);
out:
  if (dapl >= 0) H5Pclose(dapl);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (sp >= 0) H5Sclose(sp);
  if (fapl >= 0) H5Pclose(fapl);
  if (st != AF_OK) {
    int created = f->file >= 0;
    char *p = f->path;
    f->path = NULL;
    file_free(f);
    if (created) unlink(p);
    free(p);
  } else {
    *out = f;
  }
  af_h5_unlock();
  return st;
}

/* Select rows [row, row+len) of the dataset; returns the file and memory spaces. */
static af_status select_rows(af_cache_file *f, uint64_t row, int len, hid_t *fsp, hid_t *msp) {
  hsize_t start[2] = {row, 0}, count[2] = {(hsize_t)len, (hsize_t)f->hidden};
  *fsp = H5Dget_space(f->dset);
  *msp = H5Screate_simple(2, count, NULL);
  if (*fsp < 0 || *msp < 0 || H5Sselect_hyperslab(*fsp, H5S_SELECT_SET, start, NULL, count, NULL) < 0)
    return AF_FAIL(AF_ERR_BACKEND, "HDF5: cannot select rows %llu..%llu of %s", (unsigned long long)row,
                   (unsigned long long)row + (unsigned long long)len, f->path);
  return AF_OK;
}

af_status af_cache_file_write(af_cache_file *f, uint64_t row, int len, const void *data) {
  af_h5_lock();
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t fsp = -1, msp = -1;
  af_status st = health(f);
  if (st == AF_OK && row + (uint64_t)len > f->extent) {
    uint64_t want = row + (uint64_t)len, grown = f->extent + GROW_ROWS;
    hsize_t dims[2] = {want > grown ? want : grown, (hsize_t)f->hidden};
    if (H5Dset_extent(f->dset, dims) < 0)
      st = AF_FAIL(AF_ERR_IO, "cache file %s: cannot extend to %llu rows", f->path, (unsigned long long)dims[0]);
    else
      f->extent = dims[0];
  }
  if (st == AF_OK) st = select_rows(f, row, len, &fsp, &msp);
  if (st == AF_OK && H5Dwrite(f->dset, f->mtype, msp, fsp, H5P_DEFAULT, data) < 0)
    st = AF_FAIL(AF_ERR_IO, "cache file %s: writing %d rows at row %llu failed%s%s", f->path, len,
                 (unsigned long long)row, errno ? ": " : "", errno ? strerror(errno) : "");
  if (st == AF_OK) st = health(f);
  if (msp >= 0) H5Sclose(msp);
  if (fsp >= 0) H5Sclose(fsp);
  af_h5_unlock();
  return st;
}

af_status af_cache_file_read(af_cache_file *f, uint64_t row, int len, void *data) {
  af_h5_lock();
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t fsp = -1, msp = -1;
  af_status st = health(f);
  if (st == AF_OK && row + (uint64_t)len > f->extent)
    st = AF_FAIL(AF_ERR_IO, "cache file %s: rows %llu..%llu are past the end (%llu)", f->path,
                 (unsigned long long)row, (unsigned long long)row + (unsigned long long)len,
                 (unsigned long long)f->extent);
  if (st == AF_OK) st = select_rows(f, row, len, &fsp, &msp);
  if (st == AF_OK && H5Dread(f->dset, f->mtype, msp, fsp, H5P_DEFAULT, data) < 0)
    st = AF_FAIL(AF_ERR_IO, "cache file %s: reading %d rows at row %llu failed", f->path, len,
                 (unsigned long long)row);
  /* After the read too: a truncation during it reads as zeros, not as an error. */
  if (st == AF_OK) st = health(f);
  if (msp >= 0) H5Sclose(msp);
  if (fsp >= 0) H5Sclose(fsp);
  af_h5_unlock();
  return st;
}

af_status af_cache_file_flush(af_cache_file *f) {
  af_h5_lock();
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  af_status st = health(f);
  if (st == AF_OK && H5Fflush(f->file, H5F_SCOPE_LOCAL) < 0)
    st = AF_FAIL(AF_ERR_IO, "cache file %s: flush failed%s%s", f->path, errno ? ": " : "", errno ? strerror(errno) : "");
  if (st == AF_OK) st = health(f);
  af_h5_unlock();
  return st;
}

long long af_cache_file_size(const af_cache_file *f) {
  struct stat sb;
  if (!f || f->fd < 0 || fstat(f->fd, &sb) != 0) return -1;
  return (long long)sb.st_size;
}

const char *af_cache_file_path(const af_cache_file *f) { return f ? f->path : NULL; }

void af_cache_file_close(af_cache_file *f) {
  if (!f) return;
  af_h5_lock();
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  char *p = f->path;
  f->path = NULL;
  file_free(f);
  af_h5_unlock();
  if (p) unlink(p);
  free(p);
}
