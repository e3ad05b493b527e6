/* The results file of one run (HDF5), the writer: config and environment as attributes, one
 * row per optimizer step, per interval (per-layer scores, ratios, decision), per evaluation,
 * cache statistics and a summary. Layout: docs/results-format.md. Every row is buffered in
 * memory and the file is touched only inside af_results_flush (and create/close), which ends
 * with H5Fflush: a SIGKILL at any moment leaves a file that opens and holds everything up to
 * the last flush. The reader (plots, Lua) is core/results/results_read.h. */
#ifndef AF_RESULTS_H
#define AF_RESULTS_H
#include <stddef.h>
#include "core/base/status.h"

#define AF_RESULTS_FORMAT_VERSION 1

/* One optimizer step. Times in seconds; wall = seconds since the run started. */
typedef struct {
  long step;          /* optimizer steps done, 1-based */
  int epoch;          /* 0-based */
  double loss, lr;
  int frozen_depth;
  double t_data, t_forward, t_backward, t_optimizer, t_total;
  double wall;
  long examples;      /* training examples seen so far */
  long comm_bytes;    /* gradient bytes this rank handed to the all-reduce (0: one process) */
  double t_comm;      /* s, the all-reduce (inside t_optimizer) */
} af_step_record;

/* Activation-cache statistics (written as /cache attributes, overwritten on each call). */
typedef struct {
  long long entries, bytes, hits, misses, bytes_read, bytes_written;
  double io_time;               /* seconds spent in cache I/O */
  const char *tier;             /* "memory", "disk", "memory+disk", or NULL */
  const char *disabled_reason;  /* NULL or "" when the cache is enabled */
  /* What was asked for and what each tier did (NULL or "" written as ""): requested is
   * "off", "memory", "disk" or "auto"; a tier's state is "on", "off: <why>" or
   * "not asked for". Held here, so a record outlives the cache it came from. */
  const char *requested;
  char memory_tier[600], disk_tier[600];
} af_cache_record;

typedef struct af_results af_results;

/* Create (truncate) path. Fails clearly (AF_ERR_IO) when its directory is missing. L is the
 * number of encoder layers (the width of the interval arrays). Writes the format version,
 * autofreeze version, git revision, HDF5 version, host and creation time, sets
 * /summary status = "running", and flushes. */
af_status af_results_create(const char *path, int L, af_results **out);

/* Resume: reopen an existing results file for writing, keep only the committed rows whose
 * step <= keep_step (rows written after the checkpoint being resumed are dropped, so the
 * resumed run appends exactly where it restarts), and continue appending. The config,
 * cache and summary attributes are kept (set them again to change them); /summary status
 * becomes "running". L must match the file. */
af_status af_results_open_append(const char *path, int L, long keep_step, af_results **out);

/* /config attributes (model, task, policy and knobs, seed, threads, gemm library ...).
 * Setting a key again replaces it. Keys must be non-empty and contain no '/'. */
af_status af_results_attr_str(af_results *r, const char *key, const char *value);
af_status af_results_attr_int(af_results *r, const char *key, long long value);
af_status af_results_attr_double(af_results *r, const char *key, double value);
/* Any group's attributes: group is "config", "cache", "summary" or "" (the root). */
af_status af_results_group_attr_str(af_results *r, const char *group, const char *key, const char *value);
af_status af_results_group_attr_int(af_results *r, const char *group, const char *key, long long value);
af_status af_results_group_attr_double(af_results *r, const char *group, const char *key, double value);

/* Buffer one step row (no I/O; a full buffer triggers af_results_flush). */
af_status af_results_append_step(af_results *r, const af_step_record *s);
/* Buffer one interval row; l1, l2, ratio are [L] (ratio may hold NaN); val_metric is the
 * metric on the policy's validation slice that the decision saw (NaN: the policy has none);
 * lr_factor [L] each encoder layer's learning-rate factor in the interval's last step (NULL:
 * NaN, not known). */
af_status af_results_append_interval(af_results *r, int interval, long step, int depth_before, int depth_after,
                                     const double *l1, const double *l2, const double *ratio, double val_metric,
                                     const double *lr_factor);
/* Buffer one evaluation: n metrics by name (a dataset /evals/<name> per metric, created on
 * first use; rows of evaluations without that metric hold NaN). Names: non-empty, no '/',
 * not step/epoch/wall. */
af_status af_results_append_eval(af_results *r, long step, int epoch, double wall, int n,
                                 const char *const *names, const double *values);
/* Cache statistics (/cache attributes). */
af_status af_results_set_cache(af_results *r, const af_cache_record *c);

/* /summary: best metric, and any other key (total_time, final_<metric>, ...). */
af_status af_results_set_summary_best(af_results *r, const char *metric, double value, long step,
                                      double time_to_best);
af_status af_results_set_summary_final(af_results *r, int n, const char *const *names, const double *values);
af_status af_results_set_summary_str(af_results *r, const char *key, const char *value);
af_status af_results_set_summary_double(af_results *r, const char *key, double value);
af_status af_results_set_summary_int(af_results *r, const char *key, long long value);

/* Write every buffered row and attribute, then H5Fflush. Called by the training loop at each
 * interval boundary and evaluation. */
af_status af_results_flush(af_results *r);
/* Flush, set /summary status (status NULL: "complete"; else "complete", "interrupted",
 * "failed"), close the file and free *r; *r = NULL. NULL-safe and safe twice. The first error
 * is returned but everything is still released. */
af_status af_results_close(af_results **r, const char *status);

#endif
