/* One training run's state, shared by the files of core/run/ that carry it out: train.c
 * (set-up, the step, the loop), train_cache.c (the frozen prefix through the activation
 * cache) and run_record.c (resolved options, results file, checkpoints). Not a public API:
 * front-ends use train.h. */
#ifndef AF_RUN_H
#define AF_RUN_H
#include "core/base/timing.h"
#include "core/data/batcher.h"
#include "core/data/task.h"
#include "core/data/tokenizer.h"
#include "core/model/bert.h"
#include "core/model/config.h"
#include "core/results/results.h"
#include "core/run/cache.h"
#include "core/run/grad_sync.h"
#include "core/run/train.h"
#include "core/run/train_ckpt_writer.h"

typedef struct af_run af_run;
struct af_run {
  const af_train_opts *o;   /* as given */
  af_train_opts ro;         /* resolved: canonical task, the recipe's optimizer, max depth, device */
  af_config cfg;
  af_tokenizer *tok;
  af_task *task;
  af_split *train, *evals[2];
  int n_eval, NL, L, C;
  af_backend *be;
  af_bert m;
  float *host_params;
  af_policy *policy;        /* the run's: o->policy, or own_policy made from o->policy_kind */
  af_policy *own_policy;
  af_policy *guard;         /* --freeze-after / --max-freeze-step around the policy (NULL: none) */
  double *lr_decay;         /* [2*(L+2)] --layer-lr-decay's factors per group, then the step's (train_lr.c);
                               NULL: every group at the scheduled rate */
  af_split val;             /* the policy's validation slice, carved from the training split (train_val.c) */
  int have_val;
  double when_learned;      /* --freeze-when-learned as it applies (its default resolved) */
  af_freeze_ctl *ctl;
  af_results *res;
  af_act_cache *cache;
  af_act_cache *eval_cache[2];   /* per evaluation split: h[depth] of dev rows (train_eval.c) */
  const char *cache_off_reason;  /* a cache was asked for but not opened: why */
  af_batcher *bt;
  long total_steps, step, examples;
  int epoch, depth;
  size_t batch_in_epoch;
  double t0, eval_time, train_time_offset;
  /* wall-time split of this process (the results' /summary): set-up until t0, steps, the rest */
  double t_start, step_time;
  double ckpt_time;          /* checkpointing on the critical path (snapshot, waiting for the writer) */
  /* interval statistics */
  size_t *seg_off;        /* [L*AF_LP_COUNT + 1] offsets of encoder tensors in m.acc */
  double *seg_l1, *seg_sq, *l1, *l2;
  /* activation cache assembly */
  float *hbuf;            /* [B*T*C] host: the batch's h[depth] */
  float *hsub;            /* [B*T*C] host: one group's entries to advance, then its h[depth] */
  int32_t *sub_ids, *sub_tt;  /* [B*T] a group of rows as a sub-batch */
  float *sub_mask, *sub_tgt;  /* [B*T], [B] */
  int *sub_rows, *grp;        /* [B] */
  /* evaluation */
  float *scores;          /* [n_eval_max * NL] */
  float *logits;          /* [max_B * NL] */
  /* best metric */
  double best, best_train_time;
  long best_step, last_eval_step;
  int have_best;
  af_metrics last_metrics;
  double last_loss;
  char ckpt_dir[4096];
  char *labels;           /* the task's label names joined by '\n', for checkpoints and export */
  int progress;
  /* checkpoint writer */
  af_ckpt_writer *ckw;    /* NULL: no checkpoints */
  int ckpt_have;          /* a checkpoint of this run exists (written, or resumed from) */
  long ckpt_step, ckpt_eval_step;  /* the step and last_eval_step it holds */
  double ckpt_train_time; /* af_run_train_time when it was taken (for a period in time) */
  int ckpt_prefix_depth;  /* resumed: the prefix file the checkpoint names (-1: none) */
  uint64_t ckpt_prefix_id;
  /* data parallelism (train_dist.c): this process's rank of nranks; 1 rank: all below unused */
  int rank, nranks;
  af_grad_sync *gsync;    /* the gradient all-reduce (grad_sync.h); NULL with one rank */
};

static inline double af_run_train_time(const af_run *r) {
  return af_now() - r->t0 - r->eval_time + r->train_time_offset;
}

/* run_record.c */
af_status af_run_resolve(af_run *r);            /* r->ro from r->o, the task, the controller, the backend */
af_status af_run_write_config(af_run *r);       /* /config attributes: every option, resolved */
af_status af_run_load_ckpt(af_run *r);          /* refuses a checkpoint of another run, naming the setting */
af_status af_run_ckpt_open(af_run *r);          /* the checkpoint writer (none with checkpoints off), after a load */
int af_run_ckpt_due(const af_run *r, int boundary);  /* checkpoint_every says: now (boundary: at one) */
af_status af_run_save_ckpt(af_run *r);          /* snapshot + hand-off; nothing when the latest holds this state */
af_status af_run_ckpt_wait(af_run *r);          /* the write in flight; its error */
af_status af_run_ckpt_end(af_run *r, af_status s);  /* after the loop: waits; a failed run keeps its error */
void af_run_summarize(af_run *r, af_train_summary *sum, const char *status);
void af_run_finish_results(af_run *r, const char *status, af_train_summary *sum);

/* train_eval.c */
af_status af_run_evaluate(af_run *r, af_metrics *out0);  /* every eval split; results rows, best */
void af_run_eval_cache_record(af_run *r);                /* /cache@eval_*: the dev rows' cache */

/* train_lr.c: the learning rate per layer group (embeddings, layer 0..L-1, head) as factors of
 * the scheduled one: --layer-lr-decay's times the policy's (af_policy.lr_scale) */
af_status af_run_lr_open(af_run *r);                          /* after the policy; nothing when all are 1 */
const double *af_run_lr_scales(af_run *r, long step);        /* [L+2] for af_optim_step_scaled, or NULL */
const double *af_run_lr_last(const af_run *r);               /* the last step's [L+2] (the results), or NULL */

/* train_val.c */
af_status af_run_carve_val(af_run *r);               /* r->val out of r->train (before the batcher) */
af_status af_run_val_metric(af_run *r, double *out); /* the primary metric on r->val at the current depth */
void af_run_val_free(af_run *r);

/* train_cache.c */
af_status af_run_open_cache(af_run *r);
af_status af_run_cache_prepare(af_run *r, const af_batch *b, int *start, int *store, double *t_prefix);
af_status af_run_cache_store(af_run *r, const af_batch *b);
void af_run_cache_prefetch_next(af_run *r);

/* train_dist.c: data parallelism across ranks (core/run/dist.h; docs/distributed.md) */
af_status af_run_dist_device(af_run *r);           /* a GPU rank's device by local rank; before set-up */
af_status af_run_dist_open(af_run *r);             /* rank and size; after the model is built */
/* Before the backward that completes the step's gradients: buckets start during it. */
void af_run_dist_arm(af_run *r, int depth);
void af_run_dist_slice(const af_run *r, int B, int *lo, int *hi);  /* this rank's rows of a global batch */
/* After backward: sums the trainable gradients (frozen layers send nothing) and *loss_sum
 * over the ranks; *bytes: the gradient bytes this rank handed to the all-reduce; *t_comm: the
 * communication time the backward did not hide (grad_sync.h). */
af_status af_run_dist_grads(af_run *r, int depth, double *loss_sum, long long *bytes, double *t_comm);
int af_run_dist_stop(af_run *r, int sig);          /* the stop signal any rank saw (all ranks agree) */
af_status af_run_dist_check_ckpt(const af_run *r, const char *ckpt_config);  /* same rank count */
void af_run_dist_config(const af_run *r, char *cfg, size_t cap);  /* appends ";ranks=N" (N > 1) */
void af_run_dist_free(af_run *r);

/* test hook (tests/): the next run to finish this step behaves as if SIGINT arrived during it */
void af_run_test_interrupt_at(long step);
/* test hook (tests/): the checkpoint of this step (0: off) ends the process with SIGKILL after
 * its temporary file is written, before the rename, once the training thread waits for it
 * (so the kill cuts no results-file write in half). Read when a run starts. */
void af_run_test_kill_in_ckpt_write(long step);

#endif
