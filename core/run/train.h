/* One fine-tuning run: model + task + freeze policy (+ activation cache) -> an HDF5
 * results file. Used by `autofreeze train` and by the Lua binding `af.train{...}`. */
#ifndef AF_TRAIN_H
#define AF_TRAIN_H
#include <stdint.h>
#include "core/run/freeze.h"
#include "core/data/metrics.h"
#include "core/model/optim.h"
#include "core/base/status.h"

typedef enum { AF_CACHE_OFF = 0, AF_CACHE_MEMORY, AF_CACHE_DISK, AF_CACHE_AUTO } af_cache_mode;
typedef enum { AF_DTYPE_F32 = 0, AF_DTYPE_F16, AF_DTYPE_BF16 } af_cache_dtype;

typedef struct {
  const char *model_dir;     /* HF layout: config.json, vocab.txt, model.safetensors */
  const char *task;          /* task name (core/data/task.h) */
  const char *data_dir;      /* the task's files */
  const char *out;           /* results file (.h5) */
  const char *device;        /* "cpu" | "cuda" | "auto" */
  int threads;               /* <= 0: all cores */
  af_policy *policy;         /* borrowed; NULL = none */
  af_freeze_opts freeze;     /* max depth, signed ratio */
  int frozen_dropout;        /* frozen layers keep dropout in training (needs cache off) */
  int intervals;             /* decision intervals over the run (20) */
  long interval_steps;       /* > 0: fixed interval length instead of `intervals` */
  int epochs;                /* 3 */
  int batch;                 /* examples per optimizer step (32) */
  int accum;                 /* micro-batches per step (1) */
  int max_len;               /* tokens per example (128) */
  int bucket;                /* length-bucketed batches */
  int recipe_paper;          /* the AutoFreeze paper's recipe (see optim.h) */
  af_optim_opts optim;       /* filled from the recipe, then overridden */
  float lr;                  /* <= 0: the recipe's */
  uint64_t seed;             /* shuffling, dropout, head init (1) */
  long eval_every;           /* steps between dev evaluations; 0: at each interval boundary */
  long max_steps;            /* > 0: stop after this many steps (the schedule still spans the run) */
  size_t max_train_rows, max_eval_rows;  /* 0: all */
  int skip_bad_rows;
  /* the generic task (task = "generic"): see af_task_opts in core/data/task.h */
  const char *text_cols;     /* "sentence" or "question,sentence" or 1-based "2,3" */
  const char *label_col;     /* header name, 1-based number, or "last" */
  const char *labels;        /* comma-separated label list; NULL with regression */
  const char *format;        /* "tsv" | "csv" | NULL (from the file name) */
  int regression, no_header;
  af_cache_mode cache;
  af_cache_dtype cache_dtype;
  size_t cache_budget;       /* bytes for the memory tier (0: a safe fraction of free RAM) */
  const char *cache_dir;     /* disk tier folder (NULL: next to the results file) */
  int cache_compress;        /* gzip level for the disk tier (0 off) */
  const char *checkpoint_dir;/* NULL: OUT.ckpt/ ; checkpoints at interval boundaries */
  int no_checkpoints;
  int resume;                /* continue from checkpoint_dir's last checkpoint */
  int progress;              /* -1 auto (stderr is a tty), 0 off, 1 on */
  int quiet;                 /* no log lines on stderr */
  long interrupt_at_step;    /* > 0: behave as if SIGINT arrived during this step (tests) */
} af_train_opts;

void af_train_opts_default(af_train_opts *o);

typedef struct {
  char status[16];           /* "complete", "interrupted", "failed" */
  long steps;
  int final_depth;
  double total_time;         /* seconds, the whole run */
  char metric[32];           /* primary metric name */
  double best, final;        /* primary metric: best over evaluations, and at the end */
  long best_step;
  double time_to_best;
  double final_loss;
  af_metrics final_metrics;
  long long cache_hits, cache_misses, cache_bytes;
} af_train_summary;

/* Run to completion (or until SIGINT/SIGTERM, which finish the step, flush and return
 * AF_ERR_INTERRUPTED with the summary filled). */
af_status af_train(const af_train_opts *o, af_train_summary *sum);

#endif
