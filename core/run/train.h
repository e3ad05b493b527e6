/* One fine-tuning run: model + task + freeze policy (+ activation cache) -> an HDF5
 * results file. Used by `autofreeze train` and by the Lua binding `af.train{...}`. */
#ifndef AF_TRAIN_H
#define AF_TRAIN_H
#include <stdint.h>
#include "core/run/cache.h"
#include "core/run/freeze.h"
#include "core/run/options.h"
#include "core/data/metrics.h"
#include "core/model/optim.h"
#include "core/base/status.h"

/* af_train_opts.val_rows = "auto" (--val-rows auto): gated's own slice size, asked for by any policy */
#define AF_VAL_ROWS_AUTO SIZE_MAX

typedef enum { AF_RECIPE_HF = 0, AF_RECIPE_PAPER, AF_RECIPE_REFERENCE } af_recipe;  /* reference: paper + 10 intervals */
typedef enum { AF_DEVICE_CPU = 0, AF_DEVICE_CUDA, AF_DEVICE_AUTO } af_device;
typedef enum { AF_FORMAT_AUTO = 0, AF_FORMAT_TSV, AF_FORMAT_CSV } af_format;
/* --precision: af_precision's values (kernels/ops.h: FP32, BF16), or auto, which set-up
 * resolves from the backend's bf16_native (af_run_resolve) */
enum { AF_PRECISION_AUTO = 2 };

/* The fields of one run. Each is an option of core/run/options.c's table (its row says the
 * default, range and meaning), except `policy`, a policy object that Lua and tests pass
 * instead of policy_kind/frozen/percentile. */
typedef struct af_train_opts {
  /* the run */
  const char *model_dir, *task, *data_dir, *out;
  int epochs, batch, accum, max_len, bucket;
  size_t max_train_rows, max_eval_rows;
  uint64_t seed;
  int eval_batch;            /* 0: the training micro-batch */
  long eval_every, max_steps;
  int skip_bad_rows;
  int device;                /* af_device */
  int threads;               /* 0: all cores */
  int precision;             /* af_precision, or AF_PRECISION_AUTO */
  int frozen_precision;      /* af_precision of the frozen prefix's forward (BF16 also under FP32) */
  /* the generic task's columns (core/data/task.h: af_task_opts) */
  const char *text_cols, *label_col, *labels;
  int format;                /* af_format */
  int regression, header;
  /* freezing */
  int policy_kind;           /* af_policy_kind (core/run/freeze.h), when policy is NULL */
  af_policy *policy;         /* borrowed: a policy object (Lua, custom); NULL: from policy_kind */
  int frozen;                /* static: layers frozen from the start (-1 unset) */
  double percentile;         /* adaptive */
  af_freeze_opts freeze;     /* max depth (-1: layers-1), signed ratio */
  int frozen_dropout;
  int intervals;             /* 0: the recipe's (20; reference: 10) */
  long interval_steps;       /* > 0: fixed interval length instead of intervals */
  double freeze_after;       /* any policy: no freezing before this fraction of the run (-1: warm-up end) */
  int max_freeze_step;       /* any policy: layers one decision may add (-1: unlimited) */
  double freeze_when_learned; /* any policy: no freezing until an interval's loss < (1-F) x the label prior's
                                 (0: off; -1: the policy's default, default_when_learned in train.c) */
  double alpha;              /* pipe */
  double tolerance;          /* gated */
  size_t val_rows;           /* validation slice carved from the training split (0: none, gated: auto;
                                AF_VAL_ROWS_AUTO: 10% of the rows, at most 2000, under any policy) */
  double freezeout_t0;       /* freezeout: layer 0's freeze time (af_freezeout_opts) */
  int freezeout_schedule;    /* freezeout: af_freezeout_schedule_names index (1: cubic) */
  int freezeout_scaled;      /* freezeout: rates divided by the freeze times */
  /* optimizer: the recipe's values, each overridden by a field >= 0 (lr: > 0 or NaN) */
  int recipe;                /* af_recipe */
  af_optim_opts optim;
  double layer_lr_decay;     /* layer-wise lr decay X in (0, 1]: layer l gets X^(L-l), embeddings X^(L+1) */
  /* activation cache */
  int cache;                 /* af_cache_mode */
  int cache_dtype;           /* af_cache_dtype */
  size_t cache_budget;
  const char *cache_dir;
  int cache_compress;
  /* checkpoints and output */
  const char *checkpoint_dir;
  int checkpoints, resume;
  af_period checkpoint_every;  /* besides the end of the run and a stop */
  int progress;              /* -1 auto (stderr is a terminal) */
  int quiet;
} af_train_opts;

void af_train_opts_default(af_train_opts *o);
/* The optimizer a run uses: o->recipe's settings with the ones o->optim sets. */
void af_train_optim(const af_train_opts *o, af_optim_opts *out);

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
  /* where this process's wall time went: wall = setup + steps + eval + checkpoints + other */
  double wall_time, setup_time, step_time, eval_time, checkpoint_time, other_time;
} af_train_summary;

/* Run to completion (or until SIGINT/SIGTERM, which finish the step, flush and return
 * AF_ERR_INTERRUPTED with the summary filled). */
af_status af_train(const af_train_opts *o, af_train_summary *sum);

/* The policy a run with options o runs, as af_train makes it: o->policy or the one
 * o->policy_kind names, inside the guard that --freeze-after, --max-freeze-step,
 * --freeze-when-learned (its default resolved by policy) or --val-rows asks for. Its name
 * and knobs are what /config records as policy and policy_knobs. */
typedef struct af_run_policy {
  af_policy *policy;     /* the one to run: guard, else own, else o->policy */
  af_policy *own;        /* made here from o->policy_kind (NULL when o->policy is given) */
  af_policy *guard;      /* NULL: none */
  double when_learned;   /* --freeze-when-learned as it applies */
} af_run_policy;
af_status af_run_policy_make(const af_train_opts *o, af_run_policy *rp);
void af_run_policy_free(af_run_policy *rp);

#endif
