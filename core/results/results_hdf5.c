/* HDF5 helpers shared by the results writer and reader; see results_hdf5.h. */
#include "core/results/results_hdf5.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static herr_t walk_innermost(unsigned n, const H5E_error2_t *e, void *data) {
  if (n == 0 && e->desc) snprintf(data, 512, "%s", e->desc);
  return 0;
}

/* HDF5's file driver names the errno of a failed system call in its innermost message; any
 * other failure keeps its description, cut to one line. */
af_status af_results_h5_fail(const char *file, int line, const char *path, const char *what) {
  char inner[512] = "";
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_innermost, inner);
  H5Eclear2(H5E_DEFAULT);
  const char *e = strstr(inner, "errno = ");
  int err = e ? atoi(e + 8) : 0;
  if (err > 0)
    return af_fail(AF_ERR_IO, file, line, "results file %s: %s failed: %s", path, what, strerror(err));
  inner[strcspn(inner, "\n")] = 0;
  return af_fail(AF_ERR_BACKEND, file, line, "results file %s: %s failed%s%s%s", path, what,
                 inner[0] ? " (HDF5: " : "", inner, inner[0] ? ")" : "");
}

void af_results_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

hid_t af_results_h5_vlen_str(H5T_cset_t cset) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, cset);
  return t;
}

int af_results_h5_rows(hid_t loc, const char *obj, long long *rows) {
  hid_t a = H5Aopen_by_name(loc, obj, "rows", H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a < 0 ? -1 : H5Aread(a, H5T_NATIVE_LLONG, rows);
  if (a >= 0) H5Aclose(a);
  if (e < 0) {
    H5Eclear2(H5E_DEFAULT);
    return -1;
  }
  return 0;
}

af_status af_results_grow(void **p, int *cap, int need, size_t elem, const char *what) {
  if (need <= *cap) return AF_OK;
  int c = *cap ? *cap : 16;
  while (c < need) c *= 2;
  void *q = realloc(*p, (size_t)c * elem);
  if (!q) return AF_FAIL(AF_ERR_NOMEM, "out of memory growing the results %s buffer", what);
  *p = q;
  *cap = c;
  return AF_OK;
}
