/* HDF5 helpers shared by the results writer (results_write.c) and reader (results_read.c):
 * HDF5 errors turned into a status, the variable-length string type, the committed row count
 * of a group, a growable buffer, and the lock every entry point takes. Internal to
 * core/results; not a public API. */
#ifndef AF_RESULTS_HDF5_H
#define AF_RESULTS_HDF5_H
#include <hdf5.h>
#include "core/base/h5lock.h"
#include "core/base/status.h"

/* Turn the HDF5 error stack into a status: "results file PATH: WHAT failed" plus HDF5's
 * innermost reason. A failed system call (a full disk, a size limit, an I/O error) is
 * AF_ERR_IO with the system's message; anything else is AF_ERR_BACKEND. */
af_status af_results_h5_fail(const char *file, int line, const char *path, const char *what);
#define H5FAIL(path, what) af_results_h5_fail(__FILE__, __LINE__, (path), (what))
#define H5TRY(expr, path, what) do { if ((expr) < 0) return H5FAIL((path), (what)); } while (0)

/* Turn off HDF5's own error printing (errors become statuses). */
void af_results_h5_quiet(void);

/* A variable-length string type in character set cset; the caller H5Tclose()s it. */
hid_t af_results_h5_vlen_str(H5T_cset_t cset);

/* The committed row count, attribute `rows` of the group obj (relative to loc; "." for loc
 * itself). 0 and *rows set, or -1 (HDF5's error stack cleared) when it is missing or
 * unreadable. */
int af_results_h5_rows(hid_t loc, const char *obj, long long *rows);

/* Grow *p (of *cap elements of elem bytes) to hold at least need; AF_ERR_NOMEM names what. */
af_status af_results_grow(void **p, int *cap, int need, size_t elem, const char *what);

/* The body of a public entry point: call its _unlocked implementation under af_h5_lock
 * (see h5lock.h) and return what it returned. */
#define AF_RESULTS_LOCKED(type, call) \
  do {                                \
    af_h5_lock();                     \
    type locked_v_ = (call);          \
    af_h5_unlock();                   \
    return locked_v_;                 \
  } while (0)

#endif
