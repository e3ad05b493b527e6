/* The training run: loads model, tokenizer and task, then runs optimizer steps with the
 * freeze controller deciding the frozen depth at interval boundaries, the activation
 * cache serving the frozen prefix, dev evaluations on a schedule, checkpoints for resume,
 * and every number recorded in the results file. See train.h and docs/architecture.md. */
#include "core/run/train.h"
#include "core/base/timing.h"
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "core/data/batcher.h"
#include "core/model/bert.h"
#include "core/run/cache.h"
#include "core/model/checkpoint.h"
#include "core/results/results.h"
#include "core/run/stop_signal.h"
#include "core/data/task.h"
#include "core/data/tokenizer.h"
#include "core/run/train_ckpt.h"

void af_train_opts_default(af_train_opts *o) {
  memset(o, 0, sizeof *o);
  o->device = "cpu";
  o->intervals = 20;
  o->epochs = 3;
  o->batch = 32;
  o->accum = 1;
  o->max_len = 128;
  o->seed = 1;
  o->freeze.max_depth = -1;
  o->progress = -1;
  o->cache = AF_CACHE_OFF;
  af_optim_defaults_hf(&o->optim);
}

typedef struct {
  const af_train_opts *o;
  af_config cfg;
  af_tokenizer *tok;
  af_task *task;
  af_split *train, *evals[2];
  int n_eval, NL, L, C;
  af_backend *be;
  af_bert m;
  float *host_params;
  af_policy *none_policy;
  af_freeze_ctl *ctl;
  af_results *res;
  af_act_cache *cache;
  const char *cache_off_reason;  /* a cache was asked for but not opened: why */
  af_batcher *bt;
  af_optim_opts optim;
  long total_steps, step, examples;
  int epoch, depth;
  size_t batch_in_epoch;
  double t0, eval_time, train_time_offset;
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
} run;

static double train_time(const run *r) { return af_now() - r->t0 - r->eval_time + r->train_time_offset; }

/* ---- set-up ---- */

static af_status open_data(run *r) {
  const af_train_opts *o = r->o;
  char path[4096];
  AF_TRY(af_model_dir_check(o->model_dir));
  snprintf(path, sizeof path, "%s/config.json", o->model_dir);
  AF_TRY(af_config_load(path, &r->cfg));
  AF_TRY(af_tokenizer_load(o->model_dir, NULL, &r->tok));
  if (af_tokenizer_vocab_size(r->tok) > r->cfg.vocab_size)
    return AF_FAIL(AF_ERR_FORMAT, "%s/vocab.txt has %d tokens but config.json says vocab_size %d", o->model_dir,
                   af_tokenizer_vocab_size(r->tok), r->cfg.vocab_size);
  if (o->max_len > r->cfg.max_position_embeddings)
    return AF_FAIL(AF_ERR_ARG, "--seq %d exceeds max_position_embeddings %d in %s", o->max_len,
                   r->cfg.max_position_embeddings, path);
  af_task_opts to;
  af_task_opts_default(&to);
  to.skip_bad_rows = o->skip_bad_rows;
  if (o->text_cols) to.text_cols = o->text_cols;
  if (o->label_col) to.label_col = o->label_col;
  if (o->labels) to.labels = o->labels;
  if (o->format) to.format = o->format;
  if (o->regression) to.regression = 1;
  if (o->no_header) to.header = 0;
  AF_TRY(af_task_open(o->task, o->data_dir, &to, &r->task));
  r->NL = af_task_num_labels(r->task);
  size_t lsize = 1;
  for (int k = 0; k < r->NL; k++) lsize += strlen(af_task_label_name(r->task, k) ? af_task_label_name(r->task, k) : "") + 1;
  AF_TRY(af_calloc((void **)&r->labels, lsize, 1, "label names"));
  for (int k = 0; k < r->NL && af_task_label_name(r->task, k); k++) {
    if (k) strcat(r->labels, "\n");
    strcat(r->labels, af_task_label_name(r->task, k));
  }
  AF_TRY(af_task_load(r->task, af_task_train_split(r->task), r->tok, o->max_len, &r->train));
  if (r->train->n == 0) return AF_FAIL(AF_ERR_FORMAT, "%s: the training split has no examples", r->train->path);
  r->n_eval = af_task_num_eval_splits(r->task);
  if (r->n_eval > 2) r->n_eval = 2;
  for (int i = 0; i < r->n_eval; i++) {
    AF_TRY(af_task_load(r->task, af_task_eval_split(r->task, i), r->tok, o->max_len, &r->evals[i]));
    if (!r->evals[i]->has_labels)
      return AF_FAIL(AF_ERR_FORMAT, "%s: the evaluation split has no labels", r->evals[i]->path);
  }
  return AF_OK;
}

static af_status setup(run *r) {
  const af_train_opts *o = r->o;
  AF_TRY(open_data(r));
  /* --max-*-rows: a fixed pseudo-random subset, not the first rows of a possibly sorted file */
  AF_TRY(af_split_subset(r->train, o->max_train_rows));
  for (int i = 0; i < r->n_eval; i++) AF_TRY(af_split_subset(r->evals[i], o->max_eval_rows));
  r->L = r->cfg.num_hidden_layers;
  r->C = r->cfg.hidden_size;
  if (o->batch < 1 || o->accum < 1 || o->batch % o->accum)
    return AF_FAIL(AF_ERR_ARG, "--batch %d must be a positive multiple of --accum %d", o->batch, o->accum);
  if (o->epochs < 1) return AF_FAIL(AF_ERR_ARG, "--epochs must be >= 1 (got %d)", o->epochs);
  if (o->frozen_dropout && o->cache != AF_CACHE_OFF)
    return AF_FAIL(AF_ERR_ARG, "--frozen-dropout needs --cache off: with dropout in the frozen layers their "
                   "output changes at every step, so there is nothing fixed to cache");
  af_policy *pol = o->policy;
  if (!pol) {
    AF_TRY(af_policy_none(&r->none_policy));
    pol = r->none_policy;
  }
  AF_TRY(af_freeze_ctl_create(r->L, &o->freeze, pol, &r->ctl));
  r->depth = af_freeze_ctl_depth(r->ctl);
  AF_TRY(af_backend_open(o->device, o->threads, &r->be));
  const int micro = o->batch / o->accum;
  /* activations for one micro-batch; evaluation uses batches of the same size */
  AF_TRY(af_bert_init(&r->m, r->be, &r->cfg, r->NL, micro, o->max_len, r->depth));
  r->m.frozen_dropout = o->frozen_dropout != 0;
  AF_TRY(af_malloc((void **)&r->host_params, r->m.lay.total * sizeof(float), "parameters"));
  char report[1024] = "";
  AF_TRY(af_checkpoint_load(o->model_dir, &r->cfg, &r->m.lay, r->host_params, o->seed, report, sizeof report));
  if (!o->quiet && report[0]) fprintf(stderr, "autofreeze: %s\n", report);
  AF_TRY(af_bert_set_params(&r->m, r->host_params));

  af_batcher_opts bo;
  af_batcher_opts_default(&bo);
  bo.batch = o->batch;
  bo.seed = o->seed;
  bo.bucket = o->bucket;
  AF_TRY(af_batcher_init(&r->bt, r->train, &bo));
  long per_epoch = (long)af_batcher_num_batches(r->bt);
  r->total_steps = per_epoch * o->epochs;
  if (o->interval_steps <= 0 && o->intervals < 1)
    return AF_FAIL(AF_ERR_ARG, "--intervals must be >= 1 (got %d)", o->intervals);

  r->optim = o->optim;
  if (o->lr > 0) r->optim.lr = o->lr;

  /* interval statistics: one segment per encoder tensor */
  const int nseg = r->L * AF_LP_COUNT;
  AF_TRY(af_calloc((void **)&r->seg_off, (size_t)nseg + 1, sizeof(size_t), "interval statistics"));
  AF_TRY(af_calloc((void **)&r->seg_l1, (size_t)nseg, sizeof(double), "interval statistics"));
  AF_TRY(af_calloc((void **)&r->seg_sq, (size_t)nseg, sizeof(double), "interval statistics"));
  AF_TRY(af_calloc((void **)&r->l1, (size_t)r->L, sizeof(double), "interval statistics"));
  AF_TRY(af_calloc((void **)&r->l2, (size_t)r->L, sizeof(double), "interval statistics"));
  for (int s = 0; s < nseg; s++) r->seg_off[s] = r->m.lay.t[AF_EP_COUNT + s].offset - r->m.enc_begin;
  r->seg_off[nseg] = r->m.enc_end - r->m.enc_begin;

  const size_t BT = (size_t)o->batch * o->max_len;
  AF_TRY(af_malloc((void **)&r->hbuf, BT * r->C * sizeof(float), "cache staging"));
  if (o->cache != AF_CACHE_OFF) {
    AF_TRY(af_malloc((void **)&r->hsub, BT * r->C * sizeof(float), "cache staging"));
    AF_TRY(af_malloc((void **)&r->sub_ids, BT * sizeof(int32_t), "cache staging"));
    AF_TRY(af_malloc((void **)&r->sub_tt, BT * sizeof(int32_t), "cache staging"));
    AF_TRY(af_malloc((void **)&r->sub_mask, BT * sizeof(float), "cache staging"));
    AF_TRY(af_malloc((void **)&r->sub_tgt, (size_t)o->batch * sizeof(float), "cache staging"));
    AF_TRY(af_malloc((void **)&r->sub_rows, (size_t)o->batch * sizeof(int), "cache staging"));
    AF_TRY(af_malloc((void **)&r->grp, (size_t)o->batch * sizeof(int), "cache staging"));
  }
  size_t nmax = 0;
  for (int i = 0; i < r->n_eval; i++) nmax = r->evals[i]->n > nmax ? r->evals[i]->n : nmax;
  AF_TRY(af_malloc((void **)&r->scores, (nmax ? nmax : 1) * (size_t)r->NL * sizeof(float), "evaluation scores"));
  AF_TRY(af_malloc((void **)&r->logits, (size_t)r->m.max_B * r->NL * sizeof(float), "evaluation logits"));

  if (o->checkpoint_dir) snprintf(r->ckpt_dir, sizeof r->ckpt_dir, "%s", o->checkpoint_dir);
  else snprintf(r->ckpt_dir, sizeof r->ckpt_dir, "%s.ckpt", o->out);
  r->progress = o->progress >= 0 ? o->progress : isatty(2);
  if (o->quiet) r->progress = 0;
  return AF_OK;
}

static const char *cache_mode_name(af_cache_mode m) {
  switch (m) {
  case AF_CACHE_OFF: return "off";
  case AF_CACHE_MEMORY: return "memory";
  case AF_CACHE_DISK: return "disk";
  case AF_CACHE_AUTO: return "auto";
  }
  return "?";
}
static const char *dtype_name(af_cache_dtype d) { return d == AF_DTYPE_F16 ? "f16" : d == AF_DTYPE_BF16 ? "bf16" : "f32"; }

static af_status open_cache(run *r) {
  const af_train_opts *o = r->o;
  if (o->cache == AF_CACHE_OFF) return AF_OK;
  if (o->accum > 1) {  /* entries are gathered per whole batch */
    af_warn("the activation cache needs --accum 1; running without it");
    r->cache_off_reason = "the activation cache needs --accum 1";
    return AF_OK;
  }
  char dir[4096], key[512];
  if (o->cache_dir) snprintf(dir, sizeof dir, "%s", o->cache_dir);
  else {
    snprintf(dir, sizeof dir, "%s", o->out);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
  }
  snprintf(key, sizeof key, "model=%s;task=%s;seed=%llu;max_len=%d;pid=%ld;t=%.6f", o->model_dir, o->task,
           (unsigned long long)o->seed, o->max_len, (long)getpid(), af_now());
  af_act_cache_opts co = {.mode = o->cache, .dtype = o->cache_dtype, .budget_bytes = o->cache_budget, .dir = dir,
                          .compress = o->cache_compress, .n_examples = r->train->n, .hidden = r->C, .run_key = key};
  return af_act_cache_open(&co, &r->cache);
}

static af_status write_config(run *r) {
  const af_train_opts *o = r->o;
  af_results *res = r->res;
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  AF_TRY(af_results_attr_str(res, "model", o->model_dir));
  AF_TRY(af_results_attr_str(res, "task", af_task_name(r->task)));
  AF_TRY(af_results_attr_str(res, "data", o->data_dir));
  const af_policy *p = o->policy ? o->policy : r->none_policy;
  AF_TRY(af_results_attr_str(res, "policy", p->name));
  AF_TRY(af_results_attr_str(res, "policy_knobs", p->knobs));
  AF_TRY(af_results_attr_int(res, "max_depth", af_freeze_ctl_max_depth(r->ctl)));
  AF_TRY(af_results_attr_int(res, "frozen_dropout", o->frozen_dropout != 0));
  AF_TRY(af_results_attr_int(res, "intervals", o->intervals));
  AF_TRY(af_results_attr_int(res, "interval_steps", o->interval_steps));
  AF_TRY(af_results_attr_int(res, "total_steps", r->total_steps));
  AF_TRY(af_results_attr_int(res, "epochs", o->epochs));
  AF_TRY(af_results_attr_int(res, "batch", o->batch));
  AF_TRY(af_results_attr_int(res, "accum", o->accum));
  AF_TRY(af_results_attr_int(res, "max_len", o->max_len));
  AF_TRY(af_results_attr_int(res, "seed", (long long)o->seed));
  AF_TRY(af_results_attr_str(res, "recipe", o->recipe_paper ? "paper" : "hf"));
  AF_TRY(af_results_attr_double(res, "lr", r->optim.lr));
  AF_TRY(af_results_attr_double(res, "weight_decay", r->optim.weight_decay));
  AF_TRY(af_results_attr_double(res, "adam_eps", r->optim.eps));
  AF_TRY(af_results_attr_int(res, "bias_correction", r->optim.bias_correction));
  AF_TRY(af_results_attr_str(res, "clip", r->optim.clip == AF_CLIP_GLOBAL ? "global" :
                                              r->optim.clip == AF_CLIP_PER_TENSOR ? "per_tensor" : "none"));
  AF_TRY(af_results_attr_str(res, "schedule", r->optim.schedule == AF_SCHED_LINEAR ? "linear" :
                                                  r->optim.schedule == AF_SCHED_STEPPED ? "stepped" : "constant"));
  AF_TRY(af_results_attr_str(res, "cache", cache_mode_name(o->cache)));
  AF_TRY(af_results_attr_str(res, "cache_dtype", dtype_name(o->cache_dtype)));
  AF_TRY(af_results_attr_str(res, "device", r->be->name));
  AF_TRY(af_results_attr_str(res, "gemm", r->be->gemm_name));
  AF_TRY(af_results_attr_int(res, "threads", o->threads));
  AF_TRY(af_results_attr_str(res, "host", host));
  AF_TRY(af_results_attr_int(res, "layers", r->L));
  AF_TRY(af_results_attr_int(res, "hidden", r->C));
  AF_TRY(af_results_attr_int(res, "num_labels", r->NL));
  AF_TRY(af_results_attr_int(res, "train_examples", (long long)r->train->n));
  AF_TRY(af_results_attr_int(res, "train_bad_rows", (long long)r->train->bad_rows));
  AF_TRY(af_results_attr_int(res, "train_truncated", (long long)r->train->n_truncated));
  if (r->n_eval > 0) AF_TRY(af_results_attr_int(res, "eval_examples", (long long)r->evals[0]->n));
  if (r->cache_off_reason)  /* asked for but not opened: say why in the file too */
    AF_TRY(af_results_set_cache(res, &(af_cache_record){.disabled_reason = r->cache_off_reason}));
  AF_TRY(af_results_attr_str(res, "metric", af_metric_name(af_task_metrics(r->task)->primary)));
  return AF_OK;
}

/* ---- one step ---- */

/* Row i's cache entry into dst [T,C], its padding rows zeroed; *depth is the entry's depth,
 * or -1 when it was lost meanwhile (the cache turned off; the get counts the miss). */
static af_status read_entry(run *r, const af_batch *b, int i, float *dst, int *depth) {
  int len;
  AF_TRY(af_act_cache_get(r->cache, (size_t)b->index[i], dst, &len, depth));
  if (len != b->len[i]) *depth = -1;
  else memset(dst + (size_t)len * r->C, 0, (size_t)(b->T - len) * r->C * sizeof(float));
  return AF_OK;
}

/* The frozen prefix of a batch, through the activation cache, entry by entry: entries at
 * the current depth k are read as they are; entries at a lower depth j are read and pushed
 * through layers j..k-1 (the advance); absent entries are computed from the tokens. On
 * return *start is where the step's forward begins, from r->hbuf [B,T,C] when > 0.
 * When every row starts from the same depth j < k (the common case: the first epoch after
 * a freeze), the step's own forward runs from j and *store is set: the caller stores h[k]
 * after it (cache_store), so filling costs no more than running without the cache.
 * A batch mixing depths runs either whole from the tokens (the same, *start 0) or, when
 * enough of it hits, each group of rows as one sub-batch of the batch's padded length,
 * its h[k] rows stored and placed into r->hbuf, and *start is k. The caller loads the
 * full batch after; *t_prefix is the time those sub-batch forwards took (forward time,
 * not data time, in the results). */
static af_status cache_prepare(run *r, const af_batch *b, int *start, int *store, double *t_prefix) {
  *start = 0;
  *store = 0;
  *t_prefix = 0;
  if (!r->cache || r->depth == 0) return AF_OK;
  const int k = r->depth, B = b->B, T = b->T;
  const size_t row = (size_t)T * (size_t)r->C;
  int *grp = r->grp;  /* [B]: the depth a row starts from (0: the tokens), k for a hit */
  int same = 1, d;
  for (int i = 0; i < B; i++) {
    d = af_act_cache_depth(r->cache, (size_t)b->index[i]);
    if (d < 0) af_act_cache_count_miss(r->cache);  /* absent: computed from the tokens */
    grp[i] = d > 0 && d <= k ? d : 0;
    same &= grp[i] == grp[0];
  }
  if (same && grp[0] < k) {
    const int j = grp[0];
    for (int i = 0; i < B && j > 0; i++) {
      AF_TRY(read_entry(r, b, i, r->hbuf + (size_t)i * row, &d));
      if (d != j) {  /* lost: all from the tokens */
        *store = 1;
        return AF_OK;
      }
    }
    *start = j;
    *store = 1;
    return AF_OK;
  }
  /* Mixed depths: per-group sub-batches do sum(k - grp) row-layers of prefix, one forward
   * from the tokens B*k. A sub-batch row costs about 1.5x a full-batch row (MiniLM, batch
   * 16: separate small GEMMs), so the sub-batches win only when the hits save enough. */
  long w_sub = 0;
  for (int i = 0; i < B; i++) w_sub += k - grp[i];
  if (2L * B * k <= 3L * w_sub) {
    for (int i = 0; i < B; i++)
      if (grp[i] > 0) af_act_cache_count_miss(r->cache);  /* stored, but recomputed with the batch */
    *store = 1;
    return AF_OK;
  }
  for (int i = 0; i < B; i++) {
    if (grp[i] != k) continue;
    AF_TRY(read_entry(r, b, i, r->hbuf + (size_t)i * row, &d));
    if (d != k) grp[i] = 0;  /* lost: recompute */
  }
  for (int j = k - 1; j >= 0; j--) {  /* the tokens group last: lost entries join it */
    int n = 0;
    for (int i = 0; i < B; i++) {
      if (grp[i] != j) continue;
      if (j > 0) {  /* the stored entry at depth j, to advance */
        AF_TRY(read_entry(r, b, i, r->hsub + (size_t)n * row, &d));
        if (d != j) {  /* lost: from the tokens */
          grp[i] = 0;
          continue;
        }
      }
      const size_t src = (size_t)i * T, dst = (size_t)n * T;
      memcpy(r->sub_ids + dst, b->ids + src, (size_t)T * sizeof(int32_t));
      memcpy(r->sub_tt + dst, b->type_ids + src, (size_t)T * sizeof(int32_t));
      memcpy(r->sub_mask + dst, b->mask + src, (size_t)T * sizeof(float));
      r->sub_tgt[n] = b->targets[i];
      r->sub_rows[n] = i;
      n++;
    }
    if (n == 0) continue;
    af_bert_input in = {r->sub_ids, r->sub_tt, r->sub_mask, r->sub_tgt, n, T};
    AF_TRY(af_bert_load_batch(&r->m, &in));
    if (j > 0) AF_TRY(af_bert_load_hidden(&r->m, j, r->hsub, n, T));
    double a = af_now();
    AF_TRY(af_bert_forward_prefix(&r->m, n, T, j, k));
    AF_TRY(r->be->to_host(r->be, r->hsub, af_bert_hidden(&r->m, k), (size_t)n * row * sizeof(float)));
    *t_prefix += af_now() - a;
    for (int q = 0; q < n; q++) {
      const int i = r->sub_rows[q];
      memcpy(r->hbuf + (size_t)i * row, r->hsub + (size_t)q * row, row * sizeof(float));
      AF_TRY(af_act_cache_put(r->cache, (size_t)b->index[i], k, r->hsub + (size_t)q * row, b->len[i]));
    }
  }
  *start = k;
  return AF_OK;
}

/* After a forward from below the frozen depth k: h[k] of every row into the cache. */
static af_status cache_store(run *r, const af_batch *b) {
  const int k = r->depth, B = b->B, T = b->T;
  const size_t row = (size_t)T * (size_t)r->C;
  AF_TRY(r->be->to_host(r->be, r->hsub, af_bert_hidden(&r->m, k), (size_t)B * row * sizeof(float)));
  for (int i = 0; i < B; i++)
    AF_TRY(af_act_cache_put(r->cache, (size_t)b->index[i], k, r->hsub + (size_t)i * row, b->len[i]));
  return AF_OK;
}

static void cache_prefetch_next(run *r) {
  if (!r->cache || r->depth == 0) return;
  size_t k = r->batch_in_epoch;  /* the batch after the current one */
  size_t nb = af_batcher_num_batches(r->bt), n = af_batcher_num_examples(r->bt);
  if (k >= nb) return;
  const int64_t *order = af_batcher_order(r->bt);
  size_t lo = k * (size_t)r->o->batch, hi = lo + (size_t)r->o->batch;
  if (hi > n) hi = n;
  size_t idx[1024];
  int cnt = 0;
  for (size_t i = lo; i < hi && cnt < 1024; i++) idx[cnt++] = (size_t)order[i];
  af_act_cache_prefetch(r->cache, idx, cnt);
}

/* A sub-batch view: rows [lo, lo+n) of b. */
static af_bert_input rows(const af_batch *b, int lo, int n) {
  const size_t T = (size_t)b->T;
  return (af_bert_input){b->ids + lo * T, b->type_ids + lo * T, b->mask + lo * T, b->targets + lo, n, b->T};
}

static af_status train_step(run *r, const af_batch *b, af_step_record *rec) {
  af_backend *be = r->be;
  const int depth = r->depth, micro = r->o->batch / r->o->accum;
  double t_data = 0, t_fwd = 0, t_bwd = 0, t_opt, a;
  double loss_sum = 0;
  af_grads_zero(&r->m, depth);
  for (int lo = 0; lo < b->B; lo += micro) {
    int n = b->B - lo < micro ? b->B - lo : micro;
    a = af_now();
    int start = 0, store = 0;
    double t_prefix;
    AF_TRY(cache_prepare(r, b, &start, &store, &t_prefix));  /* the cache is off with accum > 1 */
    af_bert_input in = rows(b, lo, n);
    AF_TRY(af_bert_load_batch(&r->m, &in));
    if (start > 0) AF_TRY(af_bert_load_hidden(&r->m, start, r->hbuf, n, b->T));
    t_data += af_now() - a - t_prefix;
    t_fwd += t_prefix;
    a = af_now();
    float loss;
    AF_TRY(af_bert_forward(&r->m, n, b->T, start, depth, 1, r->o->seed * 1000003u + (uint64_t)r->step * 64 + (uint64_t)lo, &loss));
    be->sync(be);
    t_fwd += af_now() - a;
    if (store) {
      a = af_now();
      AF_TRY(cache_store(r, b));
      t_data += af_now() - a;
    }
    a = af_now();
    AF_TRY(af_bert_backward(&r->m, n, b->T, depth, r->o->seed * 1000003u + (uint64_t)r->step * 64 + (uint64_t)lo,
                            1.0f / (float)b->B));
    be->sync(be);
    t_bwd += af_now() - a;
    loss_sum += (double)loss * n;
  }
  a = af_now();
  /* the interval statistic: gradients summed with their signs, before clipping */
  size_t tb = af_bert_trainable_begin(&r->m, depth);
  if (tb < r->m.enc_begin) tb = r->m.enc_begin;
  if (tb < r->m.enc_end) be->accumulate(be, r->m.acc + (tb - r->m.enc_begin), r->m.grads + tb, r->m.enc_end - tb);
  float lr = af_lr_at(&r->optim, r->step, r->total_steps);
  double gnorm;
  AF_TRY(af_optim_step(&r->m, &r->optim, depth, lr, r->step + 1, &gnorm));
  AF_TRY(be->sync(be));
  t_opt = af_now() - a;
  double loss = loss_sum / b->B;
  if (!isfinite(loss)) return AF_FAIL(AF_ERR_NUMERIC, "the loss is %g", loss);
  r->step++;
  r->examples += b->B;
  r->last_loss = loss;
  *rec = (af_step_record){.step = r->step, .epoch = r->epoch, .loss = loss, .lr = lr, .frozen_depth = depth,
                          .t_data = t_data, .t_forward = t_fwd, .t_backward = t_bwd, .t_optimizer = t_opt,
                          .t_total = t_data + t_fwd + t_bwd + t_opt, .wall = af_now() - r->t0, .examples = r->examples};
  return AF_OK;
}

/* ---- interval boundary ---- */

/* The run is cut into `intervals` equal parts: boundary k (1..N) falls after step
 * ceil(k * total / N), so there are exactly N decisions, the last at the end of the run
 * (a run shorter than N steps decides after every step). With --interval-steps the
 * boundaries are its multiples. */
static int at_boundary(const run *r, long step) {
  if (r->o->interval_steps > 0) return step % r->o->interval_steps == 0;
  long N = r->o->intervals, T = r->total_steps;
  return T < N || (step * N) / T != ((step - 1) * N) / T;
}

static af_status end_interval(run *r) {
  af_backend *be = r->be;
  const int nseg = r->L * AF_LP_COUNT;
  AF_TRY(be->segment_norms(be, r->seg_l1, r->seg_sq, r->m.acc, r->seg_off, nseg));
  for (int l = 0; l < r->L; l++) {
    double s1 = 0, s2 = 0;
    for (int p = 0; p < AF_LP_COUNT; p++) {
      s1 += r->seg_l1[l * AF_LP_COUNT + p];
      s2 += r->seg_sq[l * AF_LP_COUNT + p];
    }
    r->l1[l] = s1;
    r->l2[l] = sqrt(s2);
  }
  af_freeze_decision d;
  AF_TRY(af_freeze_ctl_end_interval(r->ctl, r->step, r->l1, r->l2, &d));
  AF_TRY(af_results_append_interval(r->res, d.interval, d.step, d.depth_before, d.depth_after, d.l1, d.l2, d.ratio));
  be->zero(be, r->m.acc, (r->m.enc_end - r->m.enc_begin) * sizeof(float));
  if (d.depth_after != r->depth) {
    if (!r->o->quiet)
      fprintf(stderr, "%sautofreeze: step %ld: interval %d: frozen depth %d -> %d\n", r->progress ? "\r\033[K" : "",
              r->step, d.interval, r->depth, d.depth_after);
    r->depth = d.depth_after;
  }
  return AF_OK;
}

/* ---- evaluation ---- */

static af_status evaluate(run *r, af_metrics *out0) {
  double a = af_now();
  af_backend *be = r->be;
  (void)be;
  char line[512] = "";
  size_t used = 0;
  const char *names[2 * AF_METRIC_COUNT];
  double values[2 * AF_METRIC_COUNT];
  char namebuf[2 * AF_METRIC_COUNT][48];
  int nv = 0;
  for (int e = 0; e < r->n_eval; e++) {
    af_split *s = r->evals[e];
    af_batcher *eb = NULL;
    af_batcher_opts bo;
    af_batcher_opts_default(&bo);
    bo.batch = r->m.max_B;
    bo.shuffle = 0;
    AF_TRY(af_batcher_init(&eb, s, &bo));
    af_status st = af_batcher_begin(eb, 0);
    af_batch b;
    while (st == AF_OK && af_batcher_next(eb, &b)) {
      af_bert_input in = rows(&b, 0, b.B);
      float loss;
      if ((st = af_bert_load_batch(&r->m, &in)) != AF_OK) break;
      if ((st = af_bert_forward(&r->m, b.B, b.T, 0, r->depth, 0, 0, &loss)) != AF_OK) break;
      float *lg = r->logits;
      if ((st = af_bert_logits(&r->m, b.B, lg)) != AF_OK) break;
      for (int i = 0; i < b.B; i++)
        memcpy(r->scores + (size_t)b.index[i] * r->NL, lg + (size_t)i * r->NL, (size_t)r->NL * sizeof(float));
    }
    af_batcher_free(eb);
    AF_TRY(st);
    af_metrics m;
    AF_TRY(af_task_score(r->task, s, r->scores, &m));
    if (e == 0) *out0 = m;
    const af_metric_set *set = af_task_metrics(r->task);
    for (int i = 0; i < set->n && nv < 2 * AF_METRIC_COUNT; i++) {
      af_metric k = set->list[i];
      if (!m.have[k]) continue;
      if (r->n_eval > 1) snprintf(namebuf[nv], sizeof namebuf[nv], "%s_%s", s->name, af_metric_name(k));
      else snprintf(namebuf[nv], sizeof namebuf[nv], "%s", af_metric_name(k));
      names[nv] = namebuf[nv];
      values[nv] = m.value[k];
      nv++;
    }
    char buf[256];
    af_metrics_format(set, &m, buf, sizeof buf);
    used += (size_t)snprintf(line + used, used < sizeof line ? sizeof line - used : 0, "%s%s: %s", e ? "; " : "",
                             s->name, buf);
  }
  r->eval_time += af_now() - a;
  r->last_eval_step = r->step;
  AF_TRY(af_results_append_eval(r->res, r->step, r->epoch, af_now() - r->t0, nv, names, values));
  if (!r->o->quiet)
    fprintf(stderr, "%sautofreeze: step %ld: eval %s\n", r->progress ? "\r\033[K" : "", r->step, line);
  r->last_metrics = *out0;
  if (!r->have_best || out0->primary_value > r->best) {
    r->have_best = 1;
    r->best = out0->primary_value;
    r->best_step = r->step;
    r->best_train_time = train_time(r);
    AF_TRY(af_results_set_summary_best(r->res, af_metric_name(out0->primary), r->best, r->best_step,
                                       r->best_train_time));
  }
  return AF_OK;
}

static void progress_line(run *r) {
  if (!r->progress) return;
  double el = train_time(r);
  double rate = r->examples / (el > 0 ? el : 1);
  long left = r->total_steps - r->step;
  double eta = r->step > 0 ? el / r->step * left : 0;
  fprintf(stderr, "\r\033[K[epoch %d/%d] step %ld/%ld loss %.4f depth %d/%d %.1f ex/s ETA %dm%02ds", r->epoch + 1,
          r->o->epochs, r->step, r->total_steps, r->last_loss, r->depth, r->L, rate, (int)(eta / 60),
          (int)eta % 60);
}

/* ---- checkpoints ---- */

/* What decides a run's trajectory besides the layers, total steps and seed checked on their
 * own: a checkpoint is resumed only by a run that agrees on all of it. Threads, device,
 * cache, evaluation cadence and --max-steps may change between the two. */
static void run_config(const run *r, char *buf, size_t cap) {
  const af_train_opts *o = r->o;
  const af_policy *p = o->policy ? o->policy : r->none_policy;
  const af_optim_opts *q = &r->optim;
  snprintf(buf, cap,
           "task=%s;batch=%d;accum=%d;max_len=%d;bucket=%d;max_train_rows=%zu;max_eval_rows=%zu;policy=%s;"
           "policy_knobs=%s;max_depth=%d;signed_ratio=%d;frozen_dropout=%d;intervals=%d;interval_steps=%ld;lr=%.8g;beta1=%.8g;"
           "beta2=%.8g;eps=%.8g;weight_decay=%.8g;bias_correction=%d;clip=%d;max_grad_norm=%.8g;schedule=%d;"
           "warmup=%.8g",
           af_task_name(r->task), o->batch, o->accum, o->max_len, o->bucket, o->max_train_rows, o->max_eval_rows,
           p->name, p->knobs, af_freeze_ctl_max_depth(r->ctl), o->freeze.signed_ratio, o->frozen_dropout != 0, o->intervals,
           o->interval_steps, (double)q->lr, (double)q->beta1, (double)q->beta2, (double)q->eps,
           (double)q->weight_decay, q->bias_correction, (int)q->clip, (double)q->max_grad_norm, (int)q->schedule,
           (double)q->warmup_frac);
}

/* Copies into `pair` the first "key=value" of a that b does not hold, and into `other` b's
 * pair with that key ("" when b lacks the key); returns 0 when b holds every pair of a. */
static int config_diff(const char *a, const char *b, char *pair, size_t cap, char *other, size_t ocap) {
  for (const char *p = a; *p;) {
    size_t n = strcspn(p, ";"), kn = strcspn(p, "=");
    if (kn > n) kn = n;
    int same = 0;
    other[0] = 0;
    for (const char *q = b; *q;) {
      size_t qn = strcspn(q, ";");
      if (qn > kn && q[kn] == '=' && !strncmp(q, p, kn)) {  /* the same key */
        snprintf(other, ocap, "%.*s", (int)qn, q);
        same = qn == n && !strncmp(q, p, n);
        break;
      }
      q += qn;
      if (*q) q++;
    }
    if (!same) {
      snprintf(pair, cap, "%.*s", (int)n, p);
      return 1;
    }
    p += n;
    if (*p) p++;
  }
  return 0;
}

static af_status save_ckpt(run *r) {
  if (r->o->no_checkpoints) return AF_OK;
  af_train_state st = {.step = r->step, .epoch = r->epoch, .batch_in_epoch = r->batch_in_epoch,
                       .depth = r->depth, .examples = r->examples,
                       .intervals_done = af_freeze_ctl_intervals(r->ctl),
                       .prev_scores = af_freeze_ctl_prev_scores(r->ctl), .L = r->L, .have_best = r->have_best,
                       .best = r->best, .best_step = r->best_step, .best_train_time = r->best_train_time,
                       .train_time = train_time(r), .seed = r->o->seed, .total_steps = r->total_steps,
                       .last_eval_step = r->last_eval_step, .labels = r->labels};
  char cfg[2048];
  run_config(r, cfg, sizeof cfg);
  st.run_config = cfg;
  return af_train_ckpt_save(r->ckpt_dir, &r->m, &st, r->o->model_dir);
}

static af_status load_ckpt(run *r) {
  af_train_state st;
  double prev[512];
  st.prev_scores_out = prev;
  AF_TRY(af_train_ckpt_load(r->ckpt_dir, &r->m, &st));
  if (st.L != r->L || st.total_steps != r->total_steps || st.seed != r->o->seed)
    return AF_FAIL(AF_ERR_ARG,
                   "%s: the checkpoint is from another run (layers %d, total steps %ld, seed %llu; this run: %d, %ld, %llu)",
                   r->ckpt_dir, st.L, st.total_steps, (unsigned long long)st.seed, r->L, r->total_steps,
                   (unsigned long long)r->o->seed);
  char cfg[2048], theirs[512], mine[512];
  run_config(r, cfg, sizeof cfg);
  if (st.run_config_in[0] && config_diff(st.run_config_in, cfg, theirs, sizeof theirs, mine, sizeof mine))
    return AF_FAIL(AF_ERR_ARG, "%s: the checkpoint is from another run (it has %s; this run: %s)", r->ckpt_dir,
                   theirs, mine[0] ? mine : "no such setting");
  AF_TRY(af_freeze_ctl_restore(r->ctl, st.intervals_done, st.depth, st.has_prev ? prev : NULL));
  r->step = st.step;
  r->epoch = st.epoch;
  r->batch_in_epoch = st.batch_in_epoch;
  r->depth = st.depth;
  r->examples = st.examples;
  r->have_best = st.have_best;
  r->best = st.best;
  r->best_step = st.best_step;
  r->best_train_time = st.best_train_time;
  r->train_time_offset = st.train_time;
  r->last_eval_step = st.last_eval_step;
  if (!r->o->quiet)
    fprintf(stderr, "autofreeze: resuming %s at step %ld (epoch %d, frozen depth %d)\n", r->ckpt_dir, r->step,
            r->epoch + 1, r->depth);
  return AF_OK;
}

/* ---- the run ---- */

static af_status loop(run *r, af_train_summary *sum) {
  const af_train_opts *o = r->o;
  long max_steps = o->max_steps > 0 && o->max_steps < r->total_steps ? o->max_steps : r->total_steps;
  /* evaluations every eval_every steps, or at each interval boundary */
  af_metrics m;
  /* the epoch advances only when its batches are done: a run stopped by --max-steps mid-epoch
   * checkpoints the batch it stopped at, and a resume continues there */
  for (; r->epoch < o->epochs && r->step < max_steps; r->epoch++, r->batch_in_epoch = 0) {
    AF_TRY(af_batcher_begin(r->bt, r->epoch));
    af_batch b;
    for (size_t k = r->batch_in_epoch; r->step < max_steps && k < af_batcher_num_batches(r->bt); k++) {
      double a = af_now();
      AF_TRY(af_batcher_get(r->bt, k, &b));
      r->batch_in_epoch = k + 1;
      cache_prefetch_next(r);
      double t_batch = af_now() - a;
      af_step_record rec;
      af_status st = train_step(r, &b, &rec);
      if (st != AF_OK) {
        af_error_prefix("step %ld (epoch %d): ", r->step + 1, r->epoch + 1);
        return st;
      }
      rec.t_data += t_batch;
      rec.t_total += t_batch;
      AF_TRY(af_results_append_step(r->res, &rec));
      int boundary = at_boundary(r, r->step);
      if (boundary) AF_TRY(end_interval(r));
      int eval_due = o->eval_every > 0 ? r->step % o->eval_every == 0 : boundary;
      int evaluated = r->n_eval > 0 && eval_due && r->step < max_steps;
      if (evaluated) AF_TRY(evaluate(r, &m));
      if (boundary) AF_TRY(save_ckpt(r));
      if (boundary || evaluated) {  /* a reader of a running file sees every evaluation */
        if (r->cache) {
          af_cache_record cr;
          af_act_cache_stats(r->cache, &cr);
          AF_TRY(af_results_set_cache(r->res, &cr));
        }
        AF_TRY(af_results_flush(r->res));
      }
      progress_line(r);
      if (o->interrupt_at_step > 0 && r->step == o->interrupt_at_step) af_stop_request(SIGINT);
      int sig = af_stop_requested();
      if (sig) {
        AF_TRY(save_ckpt(r));
        return AF_FAIL(AF_ERR_INTERRUPTED, "interrupted by signal %d at step %ld; resume with --resume",
                       sig, r->step);
      }
    }
    if (r->batch_in_epoch < af_batcher_num_batches(r->bt)) break;  /* stopped mid-epoch */
  }
  if (r->progress) fputs("\r\033[K", stderr);
  if (r->n_eval > 0 && r->last_eval_step != r->step) {
    AF_TRY(evaluate(r, &m));
    AF_TRY(save_ckpt(r));  /* so resuming a finished run does not evaluate it again */
  }
  (void)sum;
  return AF_OK;
}

static void summarize(run *r, af_train_summary *sum, const char *status) {
  memset(sum, 0, sizeof *sum);
  snprintf(sum->status, sizeof sum->status, "%s", status);
  sum->steps = r->step;
  sum->final_depth = r->depth;
  sum->total_time = r->t0 > 0 ? af_now() - r->t0 : 0;
  if (r->task) snprintf(sum->metric, sizeof sum->metric, "%s", af_metric_name(af_task_metrics(r->task)->primary));
  sum->best = r->have_best ? r->best : NAN;
  sum->final = r->have_best ? r->last_metrics.primary_value : NAN;
  sum->best_step = r->best_step;
  sum->time_to_best = r->best_train_time;
  sum->final_loss = r->last_loss;
  sum->final_metrics = r->last_metrics;
  if (r->cache) {
    af_cache_record cr;
    af_act_cache_stats(r->cache, &cr);
    sum->cache_hits = cr.hits;
    sum->cache_misses = cr.misses;
    sum->cache_bytes = cr.bytes;
  }
}

static void finish_results(run *r, const char *status, af_train_summary *sum) {
  if (!r->res) return;
  char err[2048];
  snprintf(err, sizeof err, "%s", af_last_error());  /* keep the run's error through the writes */
  af_results_set_summary_double(r->res, "total_time", sum->total_time);
  af_results_set_summary_double(r->res, "train_time", r->t0 > 0 ? train_time(r) : 0);
  af_results_set_summary_double(r->res, "eval_time", r->eval_time);
  af_results_set_summary_int(r->res, "steps", r->step);
  af_results_set_summary_int(r->res, "final_depth", r->depth);
  af_results_set_summary_double(r->res, "final_loss", r->last_loss);
  if (strcmp(status, "complete")) af_results_set_summary_str(r->res, "error", err);
  if (r->have_best) {
    const af_metric_set *set = af_task_metrics(r->task);
    const char *names[AF_METRIC_COUNT];
    double vals[AF_METRIC_COUNT];
    int n = 0;
    for (int i = 0; i < set->n; i++)
      if (r->last_metrics.have[set->list[i]]) {
        names[n] = af_metric_name(set->list[i]);
        vals[n++] = r->last_metrics.value[set->list[i]];
      }
    af_results_set_summary_final(r->res, n, names, vals);
  }
  if (r->cache) {
    af_cache_record cr;
    af_act_cache_stats(r->cache, &cr);
    af_results_set_cache(r->res, &cr);
  }
  af_results_close(&r->res, status);
  af_fail(AF_OK, __FILE__, __LINE__, "%s", err);
}

static void cleanup(run *r) {
  af_results_close(&r->res, "failed");  /* no-op when already closed */
  af_act_cache_close(r->cache);
  af_batcher_free(r->bt);
  af_bert_free(&r->m);
  af_backend_close(r->be);
  af_freeze_ctl_free(r->ctl);
  af_policy_free(r->none_policy);
  af_task_free(r->task);
  af_tokenizer_free(r->tok);
  free(r->host_params);
  free(r->seg_off);
  free(r->seg_l1);
  free(r->seg_sq);
  free(r->l1);
  free(r->l2);
  free(r->hbuf);
  free(r->hsub);
  free(r->sub_ids);
  free(r->sub_tt);
  free(r->sub_mask);
  free(r->sub_tgt);
  free(r->sub_rows);
  free(r->grp);
  free(r->scores);
  free(r->logits);
  free(r->labels);
}

af_status af_train(const af_train_opts *o, af_train_summary *sum) {
  run r;
  memset(&r, 0, sizeof r);
  memset(sum, 0, sizeof *sum);
  snprintf(sum->status, sizeof sum->status, "failed");
  r.o = o;
  if (!o->model_dir || !o->task || !o->data_dir || !o->out) {
    return AF_FAIL(AF_ERR_ARG, "a run needs a model, a task, its data folder and an output file");
  }
  af_status s = setup(&r);
  if (s == AF_OK && o->resume) s = load_ckpt(&r);
  if (s == AF_OK) s = open_cache(&r);
  if (s == AF_OK) s = af_train_results_open(o->out, r.L, o->resume ? r.step : -1, &r.res);
  if (s == AF_OK) s = write_config(&r);
  if (s == AF_OK) s = af_results_flush(r.res);
  if (s != AF_OK) {
    summarize(&r, sum, "failed");
    finish_results(&r, "failed", sum);
    cleanup(&r);
    return s;
  }
  af_stop_guard guard;
  af_stop_begin(&guard);
  r.t0 = af_now();
  s = loop(&r, sum);
  const char *status = s == AF_OK ? "complete" : s == AF_ERR_INTERRUPTED ? "interrupted" : "failed";
  summarize(&r, sum, status);
  finish_results(&r, status, sum);
  cleanup(&r);
  af_stop_end(&guard);  /* after the results are closed: a late signal loses nothing */
  return s;
}
