/* The results file of one run (HDF5), the reader: what the plots, Lua and tests read back.
 * Every dataset is read up to its group's committed row count (`rows`), so a file left by a
 * killed run reads as of its last flush. Layout: docs/results-format.md; the writer is
 * core/results/results.h. */
#ifndef AF_RESULTS_READ_H
#define AF_RESULTS_READ_H
#include <stddef.h>
#include "core/base/status.h"

typedef struct af_results_reader af_results_reader;

typedef enum { AF_ATTR_STR, AF_ATTR_INT, AF_ATTR_DOUBLE, AF_ATTR_OTHER } af_attr_type;
typedef struct {
  char *key;
  af_attr_type type;
  char *s;          /* AF_ATTR_STR */
  long long i;      /* AF_ATTR_INT */
  double d;         /* AF_ATTR_DOUBLE (also set for INT) */
} af_attr;

af_status af_results_open_read(const char *path, af_results_reader **out);
void af_results_close_read(af_results_reader **rr);   /* NULL-safe, sets *rr = NULL */
int af_results_format_version(const af_results_reader *rr);
int af_results_layers(const af_results_reader *rr);    /* L, from the root attribute */
/* 1 if the dataset or group exists (path like "steps/loss"), else 0. */
int af_results_has(af_results_reader *rr, const char *path);
/* A 1-D dataset of any numeric type as doubles; *v malloc'ed (free()), NULL when n = 0. */
af_status af_results_read_1d(af_results_reader *rr, const char *path, double **v, size_t *n);
/* The number of dimensions of a dataset (1, or 2 for intervals/l1, l2, ratio, lr_factor);
 * -1 when there is no such dataset. */
int af_results_rank(af_results_reader *rr, const char *path);
/* A 2-D dataset (intervals/l1, l2, ratio, lr_factor) as row-major doubles [rows, cols]. */
af_status af_results_read_2d(af_results_reader *rr, const char *path, double **v, size_t *rows, size_t *cols);
/* The attributes of a group ("config", "summary", "cache", "" = root), in name order. */
af_status af_results_read_attrs(af_results_reader *rr, const char *group, af_attr **attrs, int *n);
void af_results_free_attrs(af_attr *attrs, int n);
/* Look one attribute up in an array from af_results_read_attrs; NULL when absent. */
const af_attr *af_results_find_attr(const af_attr *attrs, int n, const char *key);
/* The dataset names of a group (e.g. the metrics of "evals"), in name order. */
af_status af_results_list(af_results_reader *rr, const char *group, char ***names, int *n);
void af_results_free_names(char **names, int n);

#endif
