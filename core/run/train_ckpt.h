/* Run checkpoints for --resume, and reopening a run's results file on resume.
 *
 * A checkpoint is two safetensors files in the checkpoint folder (docs/cli.md, "Checkpoints"):
 *   prefix-<depth>.safetensors  params, adam_m, adam_v of the frozen prefix [0, F) of that
 *                               depth (F = af_param_frozen_end): frozen tensors no longer
 *                               change, so it is written once per depth;
 *   last.safetensors            params, adam_m, adam_v from F on, the interval gradient sum
 *                               (whole) and the loop's counters as metadata, naming its
 *                               prefix file (prefix_file, prefix_end, prefix_id).
 * At depth 0 (F = 0) last.safetensors holds the whole arrays and names no prefix, which is
 * also the layout of checkpoints written before the split; both load. Every file is written
 * through a temporary file and a rename; last.safetensors last, so the files it names are
 * complete before it is in place. The writing runs on a thread (train_ckpt_writer.h) from a
 * host snapshot. */
#ifndef AF_TRAIN_CKPT_H
#define AF_TRAIN_CKPT_H
#include <stdint.h>
#include "core/model/bert.h"
#include "core/results/results.h"

typedef struct {
  long step, examples, total_steps, best_step, last_eval_step;
  int epoch, depth, L, intervals_done, have_best, has_prev;
  size_t batch_in_epoch;        /* batches of `epoch` already done */
  const double *prev_scores;    /* save: [L] or NULL */
  double *prev_scores_out;      /* load: caller's buffer [L] (L <= 512) */
  double best, best_train_time, train_time;
  double loss_sum, loss_min;    /* the controller's af_freeze_loss_state: the interval's losses so far */
  long loss_steps;              /* (sum, count) and the smallest interval mean at a boundary */
  int has_loss;                 /* load: 0 for a checkpoint written before they were kept */
  long wait_end;                /* af_freeze_ctl_wait_end; load: -1 when absent */
  uint64_t seed;
  const char *labels;           /* save: the task's label names joined by '\n' ("" for regression) */
  const char *run_config;       /* save: what decides the run's trajectory ("k=v;k=v") */
  char run_config_in[2048];     /* load: the same, "" for a checkpoint written before it was kept */
  int prefix_depth;             /* load: the depth whose prefix file it names; -1: none (depth 0, or one file) */
  uint64_t prefix_id;           /* load: that prefix file's id */
} af_train_state;

/* One checkpoint on the host, as the writer writes it: nothing in it points into the run. */
typedef struct {
  af_train_state st;            /* st.prev_scores, st.labels, st.run_config: the writer's copies */
  const char *model_dir;        /* absolute, so that `autofreeze export` finds it from anywhere */
  int num_labels;
  size_t P, E, F;               /* floats: parameters, interval sum, frozen prefix of st.depth */
  const float *tail;            /* [3 (P-F)]: params, adam_m, adam_v from F on, one after another */
  const float *acc;             /* [E] */
  const float *prefix;          /* [3 F]: the same below F, to write prefix-<depth>; NULL: already on disk */
  uint64_t prefix_id;           /* of the prefix file last.safetensors names (F > 0) */
} af_ckpt_snapshot;

/* DIR/prefix-<st.depth>.safetensors from s->prefix (temporary file + rename). */
af_status af_train_ckpt_write_prefix(const char *dir, const af_ckpt_snapshot *s);
/* DIR/last.safetensors.tmp, complete and synced; af_train_ckpt_commit renames it into place. */
af_status af_train_ckpt_write_last_tmp(const char *dir, const af_ckpt_snapshot *s);
af_status af_train_ckpt_commit(const char *dir);
/* Removes DIR/prefix-<d>.safetensors (and its temporary file) for d in 1..L except keep. */
void af_train_ckpt_remove_prefixes(const char *dir, int keep, int L);

/* Loads either layout into the model; fills st (prefix_depth/prefix_id included). */
af_status af_train_ckpt_load(const char *dir, af_bert *m, af_train_state *st);
/* The model directory, label count and label names (joined by '\n'; "" when unknown) a
 * checkpoint was trained from (for export). */
af_status af_train_ckpt_info(const char *dir, char *model_dir, size_t cap, int *num_labels, char *labels,
                             size_t labels_cap);
/* Parameters of a checkpoint (either layout) into a host buffer of `total` floats. */
af_status af_train_ckpt_params(const char *dir, float *params, size_t total);

/* resume_step < 0 (or no file yet): create path fresh. Else reopen it keeping the rows with
 * step <= resume_step (af_results_open_append), so a resumed run's file is complete. */
af_status af_train_results_open(const char *path, int L, long resume_step, af_results **res);

#endif
