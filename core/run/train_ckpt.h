/* Run checkpoints for --resume (parameters, AdamW moments, the interval gradient sum and
 * the loop's counters in one safetensors file, written atomically at interval boundaries
 * and on SIGINT/SIGTERM), and reopening a run's results file on resume. */
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
  uint64_t seed;
  const char *labels;           /* save: the task's label names joined by '\n' ("" for regression) */
  const char *run_config;       /* save: what decides the run's trajectory ("k=v;k=v") */
  char run_config_in[2048];     /* load: the same, "" for a checkpoint written before it was kept */
} af_train_state;

/* DIR/last.safetensors (through a temporary file and a rename). */
af_status af_train_ckpt_save(const char *dir, const af_bert *m, const af_train_state *st, const char *model_dir);
af_status af_train_ckpt_load(const char *dir, af_bert *m, af_train_state *st);
/* The model directory, label count and label names (joined by '\n'; "" when unknown) a
 * checkpoint was trained from (for export). */
af_status af_train_ckpt_info(const char *dir, char *model_dir, size_t cap, int *num_labels, char *labels,
                             size_t labels_cap);
/* Parameters of a checkpoint into a host buffer of `total` floats. */
af_status af_train_ckpt_params(const char *dir, float *params, size_t total);

/* resume_step < 0 (or no file yet): create path fresh. Else reopen it keeping the rows with
 * step <= resume_step (af_results_open_append), so a resumed run's file is complete. */
af_status af_train_results_open(const char *path, int L, long resume_step, af_results **res);

#endif
