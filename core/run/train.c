/* The training run: loads model, tokenizer and task, then runs optimizer steps with the
 * freeze controller deciding the frozen depth at interval boundaries, the activation
 * cache serving the frozen prefix, dev evaluations on a schedule, checkpoints for resume,
 * and every number recorded in the results file. See train.h and docs/architecture.md. */
#include "core/run/train.h"
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/model/checkpoint.h"
#include "core/run/dist.h"
#include "core/base/claim.h"
#include "core/run/run.h"
#include "core/run/stop_signal.h"
#include "core/run/train_ckpt.h"

void af_train_opts_default(af_train_opts *o) { af_opts_defaults(o); }

static long interrupt_at;  /* tests: af_run_test_interrupt_at */
void af_run_test_interrupt_at(long step) { interrupt_at = step; }

/* ---- set-up ---- */

static af_status open_data(af_run *r) {
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
  if (o->format != AF_FORMAT_AUTO) to.format = af_format_names[o->format];
  if (o->regression) to.regression = 1;
  if (!o->header) to.header = 0;
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

/* The run's policy (run_policy.c): kept in the run's fields, freed by cleanup. */
static af_status make_policy(af_run *r) {
  af_run_policy rp;
  AF_TRY(af_run_policy_make(r->o, &rp));
  r->policy = rp.policy;
  r->own_policy = rp.own;
  r->guard = rp.guard;
  r->when_learned = rp.when_learned;
  return AF_OK;
}

static af_status setup(af_run *r) {
  const af_train_opts *o = r->o;
  AF_TRY(af_opts_check(o));
  AF_TRY(open_data(r));
  /* --max-*-rows: a fixed pseudo-random subset, not the first rows of a possibly sorted file */
  AF_TRY(af_split_subset(r->train, o->max_train_rows));
  for (int i = 0; i < r->n_eval; i++) AF_TRY(af_split_subset(r->evals[i], o->max_eval_rows));
  r->L = r->cfg.num_hidden_layers;
  r->C = r->cfg.hidden_size;
  AF_TRY(make_policy(r));
  AF_TRY(af_run_lr_open(r));  /* per-layer learning-rate factors (train_lr.c) */
  /* before the batcher: held-out rows never train. Any policy may hold the same slice out
   * (--val-rows), which pairs full fine-tuning exactly with gated: same rows, same order */
  if (r->policy->wants_val || o->val_rows > 0) AF_TRY(af_run_carve_val(r));
  AF_TRY(af_freeze_ctl_create(r->L, &o->freeze, r->policy, &r->ctl));
  r->depth = af_freeze_ctl_depth(r->ctl);
  AF_TRY(af_backend_open(af_device_names[o->device], o->threads, &r->be));
  const int micro = o->batch / o->accum;
  /* activations for one micro-batch, or an evaluation batch when --eval-batch asks for more */
  const int rows = o->eval_batch > micro ? o->eval_batch : micro;  /* evaluation batches may be larger */
  AF_TRY(af_bert_init(&r->m, r->be, &r->cfg, r->NL, rows, o->max_len, r->depth));
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

  AF_TRY(af_run_resolve(r));
  if (r->ro.intervals <= 0) r->ro.intervals = o->recipe == AF_RECIPE_REFERENCE ? 10 : 20;
  const af_optim_opts *oo = &r->ro.optim;
  long warm = oo->schedule == AF_SCHED_LINEAR ? (long)(oo->warmup_frac * (double)r->total_steps) : 0;
  af_freeze_ctl_set_run(r->ctl, r->total_steps, per_epoch, warm);  /* as af_lr_at counts the warm-up */
  /* the rows that train (after --max-train-rows and a policy's validation slice) */
  af_freeze_ctl_set_prior_loss(r->ctl, af_prior_loss(r->train->labels, r->train->n, r->NL));

  /* interval statistics: one segment per encoder tensor */
  const int nseg = r->L * AF_LP_COUNT;
  AF_TRY(af_calloc((void **)&r->seg_off, (size_t)nseg + 1, sizeof(size_t), "interval statistics"));
  AF_TRY(af_calloc((void **)&r->seg_l1, (size_t)nseg, sizeof(double), "interval statistics"));
  AF_TRY(af_calloc((void **)&r->seg_sq, (size_t)nseg, sizeof(double), "interval statistics"));
  AF_TRY(af_calloc((void **)&r->l1, (size_t)r->L, sizeof(double), "interval statistics"));
  AF_TRY(af_calloc((void **)&r->l2, (size_t)r->L, sizeof(double), "interval statistics"));
  for (int s = 0; s < nseg; s++) r->seg_off[s] = r->m.lay.t[AF_EP_COUNT + s].offset - r->m.enc_begin;
  r->seg_off[nseg] = r->m.enc_end - r->m.enc_begin;

  const size_t BT = (size_t)(o->batch > o->eval_batch ? o->batch : o->eval_batch) * o->max_len;
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
  if (r->have_val && r->val.n > nmax) nmax = r->val.n;
  AF_TRY(af_malloc((void **)&r->scores, (nmax ? nmax : 1) * (size_t)r->NL * sizeof(float), "evaluation scores"));
  AF_TRY(af_malloc((void **)&r->logits, (size_t)r->m.max_B * r->NL * sizeof(float), "evaluation logits"));

  if (o->checkpoint_dir) snprintf(r->ckpt_dir, sizeof r->ckpt_dir, "%s", o->checkpoint_dir);
  else snprintf(r->ckpt_dir, sizeof r->ckpt_dir, "%s.ckpt", o->out);
  r->progress = o->progress >= 0 ? o->progress : isatty(2);
  if (o->quiet) r->progress = 0;
  return AF_OK;
}

/* ---- one step ---- */

/* A sub-batch view: rows [lo, lo+n) of b. */
static af_bert_input rows(const af_batch *b, int lo, int n) {
  const size_t T = (size_t)b->T;
  return (af_bert_input){b->ids + lo * T, b->type_ids + lo * T, b->mask + lo * T, b->targets + lo, n, b->T};
}

/* Rows [lo, hi) of a batch as a batch of their own: a data-parallel rank's slice. */
static af_batch slice_rows(const af_batch *b, int lo, int hi) {
  const size_t T = (size_t)b->T;
  af_batch s = *b;
  s.B = hi - lo;
  s.ids += lo * T;
  s.type_ids += lo * T;
  s.mask += lo * T;
  s.targets += lo;
  s.index += lo;
  s.len += lo;
  return s;
}

static af_status train_step(af_run *r, const af_batch *gb, af_step_record *rec) {
  af_backend *be = r->be;
  const int depth = r->depth, micro = r->o->batch / r->o->accum;
  double t_data = 0, t_fwd = 0, t_bwd = 0, t_opt, t_comm, a;
  double loss_sum = 0;
  long long comm_bytes;
  int s0, s1;  /* this rank's rows of the global batch gb (all of them with one rank: train_dist.c) */
  af_run_dist_slice(r, gb->B, &s0, &s1);
  const af_batch sl = slice_rows(gb, s0, s1), *b = &sl;
  af_grads_zero(&r->m, depth);
  /* the global batch's micro-batches [g, g + micro) that meet the slice: dropout masks are
   * keyed by g and by a row's place in its micro-batch (row0), whatever the rank count */
  for (int g = s0 / micro * micro; g < s1; g += micro) {
    const int g0 = g > s0 ? g : s0, g1 = g + micro < s1 ? g + micro : s1, lo = g0 - s0, n = g1 - g0;
    const uint64_t seed = r->o->seed * 1000003u + (uint64_t)r->step * 64 + (uint64_t)g;
    r->m.row0 = g0 - g;
    a = af_now();
    int start = 0, store = 0;
    double t_prefix;
    AF_TRY(af_run_cache_prepare(r, b, &start, &store, &t_prefix));  /* the cache is off with accum > 1 */
    af_bert_input in = rows(b, lo, n);
    AF_TRY(af_bert_load_batch(&r->m, &in));
    if (start > 0) AF_TRY(af_bert_load_hidden(&r->m, start, r->hbuf, n, b->T));
    t_data += af_now() - a - t_prefix;
    t_fwd += t_prefix;
    a = af_now();
    float loss;
    AF_TRY(af_bert_forward(&r->m, n, b->T, start, depth, 1, seed, &loss));
    be->sync(be);
    t_fwd += af_now() - a;
    if (store) {
      a = af_now();
      AF_TRY(af_run_cache_store(r, b));
      t_data += af_now() - a;
    }
    a = af_now();
    if (g + micro >= s1) af_run_dist_arm(r, depth);  /* the last micro-batch: all-reduce buckets start in it */
    AF_TRY(af_bert_backward(&r->m, n, b->T, depth, seed, 1.0f / (float)gb->B));
    be->sync(be);
    t_bwd += af_now() - a;
    loss_sum += (double)loss * n;
  }
  r->m.row0 = 0;
  a = af_now();
  AF_TRY(af_run_dist_grads(r, depth, &loss_sum, &comm_bytes, &t_comm));  /* other ranks' rows: sums */
  /* the interval statistic: gradients summed with their signs, before clipping */
  size_t tb = af_bert_trainable_begin(&r->m, depth);
  if (tb < r->m.enc_begin) tb = r->m.enc_begin;
  if (tb < r->m.enc_end) be->accumulate(be, r->m.acc + (tb - r->m.enc_begin), r->m.grads + tb, r->m.enc_end - tb);
  float lr = af_lr_at(&r->ro.optim, r->step, r->total_steps);
  double gnorm;
  AF_TRY(af_optim_step_scaled(&r->m, &r->ro.optim, depth, lr, af_run_lr_scales(r, r->step), r->step + 1, &gnorm));
  AF_TRY(be->sync(be));
  t_opt = af_now() - a;
  double loss = loss_sum / gb->B;
  if (!isfinite(loss)) return AF_FAIL(AF_ERR_NUMERIC, "the loss is %g", loss);
  r->step++;
  r->examples += gb->B;
  r->last_loss = loss;
  af_freeze_ctl_add_loss(r->ctl, loss);  /* the interval's mean loss (--freeze-when-learned) */
  *rec = (af_step_record){.step = r->step, .epoch = r->epoch, .loss = loss, .lr = lr, .frozen_depth = depth,
                          .t_data = t_data, .t_forward = t_fwd, .t_backward = t_bwd, .t_optimizer = t_opt,
                          .t_total = t_data + t_fwd + t_bwd + t_opt, .wall = af_now() - r->t0, .examples = r->examples,
                          .comm_bytes = comm_bytes, .t_comm = t_comm};
  return AF_OK;
}

/* ---- interval boundary ---- */

/* The run is cut into `intervals` equal parts: boundary k (1..N) falls after step
 * ceil(k * total / N), so there are exactly N decisions, the last at the end of the run
 * (a run shorter than N steps decides after every step). With --interval-steps the
 * boundaries are its multiples. */
static int at_boundary(const af_run *r, long step) {
  if (r->o->interval_steps > 0) return step % r->o->interval_steps == 0;
  long N = r->ro.intervals, T = r->total_steps;
  return T < N || (step * N) / T != ((step - 1) * N) / T;
}

static af_status end_interval(af_run *r) {
  af_backend *be = r->be;
  const int nseg = r->L * AF_LP_COUNT;
  AF_TRY(be->segment_norms(be, r->seg_l1, r->seg_sq, r->m.acc, r->seg_off, nseg));
  /* every rank holds the same interval sum; rank 0's norms make sure they decide alike */
  AF_TRY(af_dist_bcast(r->seg_l1, (size_t)nseg * sizeof(double), 0));
  AF_TRY(af_dist_bcast(r->seg_sq, (size_t)nseg * sizeof(double), 0));
  for (int l = 0; l < r->L; l++) {
    double s1 = 0, s2 = 0;
    for (int p = 0; p < AF_LP_COUNT; p++) {
      s1 += r->seg_l1[l * AF_LP_COUNT + p];
      s2 += r->seg_sq[l * AF_LP_COUNT + p];
    }
    r->l1[l] = s1;
    r->l2[l] = sqrt(s2);
  }
  double val = NAN;
  if (r->have_val) {  /* the policy's validation metric, measured at the depth the interval ran at */
    AF_TRY(af_run_val_metric(r, &val));
    af_freeze_ctl_set_val_metric(r->ctl, val);
  }
  af_freeze_decision d;
  AF_TRY(af_freeze_ctl_end_interval(r->ctl, r->step, r->l1, r->l2, &d));
  if (r->res) {
    double lrf[r->L];  /* the encoder layers' factors in the interval's last step */
    const double *sc = af_run_lr_last(r);
    for (int l = 0; l < r->L; l++) lrf[l] = sc ? sc[1 + l] : 1.0;
    AF_TRY(af_results_append_interval(r->res, d.interval, d.step, d.depth_before, d.depth_after, d.l1, d.l2,
                                      d.ratio, val, lrf));
  }
  be->zero(be, r->m.acc, (r->m.enc_end - r->m.enc_begin) * sizeof(float));
  if (d.depth_after != r->depth) {
    if (!r->o->quiet)
      fprintf(stderr, "%sautofreeze: step %ld: interval %d: frozen depth %d -> %d%s\n", r->progress ? "\r\033[K" : "",
              r->step, d.interval, r->depth, d.depth_after, d.depth_after < r->depth ? " (rolled back)" : "");
    if (d.depth_after < r->depth) {  /* unfrozen (gated): no cached prefix deeper than the new depth is exact */
      af_act_cache_drop_deeper(r->cache, d.depth_after);
      for (int e = 0; e < 2; e++) af_act_cache_drop_deeper(r->eval_cache[e], d.depth_after);
    }
    r->depth = d.depth_after;
  }
  return AF_OK;
}

static void progress_line(af_run *r) {
  if (!r->progress) return;
  double el = af_run_train_time(r);
  double rate = r->examples / (el > 0 ? el : 1);
  long left = r->total_steps - r->step;
  double eta = r->step > 0 ? el / r->step * left : 0;
  fprintf(stderr, "\r\033[K[epoch %d/%d] step %ld/%ld loss %.4f depth %d/%d %.1f ex/s ETA %dm%02ds", r->epoch + 1,
          r->o->epochs, r->step, r->total_steps, r->last_loss, r->depth, r->L, rate, (int)(eta / 60),
          (int)eta % 60);
}

/* ---- the run ---- */

static af_status loop(af_run *r) {
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
      af_run_cache_prefetch_next(r);
      double t_batch = af_now() - a;
      af_step_record rec;
      af_status st = train_step(r, &b, &rec);
      if (st != AF_OK) {
        af_error_prefix("step %ld (epoch %d): ", r->step + 1, r->epoch + 1);
        return st;
      }
      rec.t_data += t_batch;
      rec.t_total += t_batch;
      r->step_time += rec.t_total;
      if (r->res) AF_TRY(af_results_append_step(r->res, &rec));  /* rank 0's file only */
      int boundary = at_boundary(r, r->step);
      if (boundary) AF_TRY(end_interval(r));
      int eval_due = o->eval_every > 0 ? r->step % o->eval_every == 0 : boundary;
      int evaluated = r->n_eval > 0 && eval_due && r->step < max_steps;
      if (evaluated) AF_TRY(af_run_evaluate(r, &m));
      /* checkpoint_every; the last step's checkpoint is the end of the run's, below */
      if (r->step < max_steps && af_run_ckpt_due(r, boundary)) AF_TRY(af_run_save_ckpt(r));
      if (r->res && (boundary || evaluated)) {  /* a reader of a running file sees every evaluation */
        if (r->cache) {
          af_cache_record cr;
          af_act_cache_stats(r->cache, &cr);
          AF_TRY(af_results_set_cache(r->res, &cr));
        }
        AF_TRY(af_results_flush(r->res));
      }
      progress_line(r);
      if (interrupt_at > 0 && r->step == interrupt_at) {
        interrupt_at = 0;  /* once */
        af_stop_request(SIGINT);
      }
      int sig = af_run_dist_stop(r, af_stop_requested());
      if (sig) {
        AF_TRY(af_run_save_ckpt(r));
        AF_TRY(af_run_ckpt_wait(r));  /* in place before the run says it can be resumed */
        return AF_FAIL(AF_ERR_INTERRUPTED, "interrupted by signal %d at step %ld; resume with --resume",
                       sig, r->step);
      }
    }
    if (r->batch_in_epoch < af_batcher_num_batches(r->bt)) break;  /* stopped mid-epoch */
  }
  if (r->progress) fputs("\r\033[K", stderr);
  if (r->n_eval > 0 && r->last_eval_step != r->step) AF_TRY(af_run_evaluate(r, &m));
  AF_TRY(af_run_save_ckpt(r));  /* the end's, evaluated: resuming a finished run does not evaluate it again */
  return af_run_ckpt_wait(r);
}

static void cleanup(af_run *r) {
  af_ckpt_writer_close(r->ckw);  /* joins a write still in flight */
  af_results_close(&r->res, "failed");  /* no-op when already closed */
  af_act_cache_close(r->cache);
  for (int e = 0; e < 2; e++) af_act_cache_close(r->eval_cache[e]);
  af_batcher_free(r->bt);
  af_bert_free(&r->m);
  af_backend_close(r->be);
  af_freeze_ctl_free(r->ctl);
  af_policy_free(r->guard);  /* before the policy it borrows */
  af_policy_free(r->own_policy);
  free(r->lr_decay);
  af_run_val_free(r);
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
  af_run_dist_free(r);
  free(r->labels);
}

af_status af_train(const af_train_opts *o, af_train_summary *sum) {
  af_run r;
  memset(&r, 0, sizeof r);
  r.t_start = af_now();
  memset(sum, 0, sizeof *sum);
  snprintf(sum->status, sizeof sum->status, "failed");
  r.o = o;
  if (!o->model_dir || !o->task || !o->data_dir || !o->out) {
    return AF_FAIL(AF_ERR_ARG, "a run needs a model, a task, its data folder and an output file");
  }
  af_status s = af_dist_init();  /* first: a rank failing from here on stops the others */
  af_train_opts quiet;          /* the ranks but 0 run quietly: one copy of each message */
  if (af_dist_rank() > 0) {
    quiet = *o;
    quiet.quiet = 1;
    quiet.progress = 0;
    r.o = &quiet;
  }
  af_claim *claim = NULL;  /* one writer per results file: before anything touches it */
  if (s == AF_OK && af_dist_rank() == 0) s = af_claim_take(o->out, &claim);
  if (s == AF_OK) s = af_run_dist_device(&r);  /* before the backend opens on the current GPU */
  if (s == AF_OK) s = setup(&r);
  if (s == AF_OK) s = af_run_dist_open(&r);
  if (s == AF_OK && o->resume) s = af_run_load_ckpt(&r);
  if (s == AF_OK) s = af_run_open_cache(&r);
  if (s == AF_OK && r.rank == 0)  /* the other ranks write nothing */
    s = af_train_results_open(o->out, r.L, o->resume ? r.step : -1, &r.res);
  if (s == AF_OK && r.res) s = af_run_write_config(&r);
  if (s == AF_OK && r.res) s = af_results_flush(r.res);
  if (s == AF_OK) s = af_run_ckpt_open(&r);
  if (s != AF_OK) {
    af_run_summarize(&r, sum, "failed");
    af_run_finish_results(&r, "failed", sum);
    af_dist_fail_all(af_last_error());  /* returns with one rank */
    cleanup(&r);
    af_claim_release(claim);
    return s;
  }
  af_stop_guard guard;
  af_stop_begin(&guard);
  r.t0 = af_now();
  s = loop(&r);
  s = af_run_ckpt_end(&r, s);  /* no write in flight past here */
  const char *status = s == AF_OK ? "complete" : s == AF_ERR_INTERRUPTED ? "interrupted" : "failed";
  af_run_summarize(&r, sum, status);
  af_run_finish_results(&r, status, sum);
  if (s != AF_OK && s != AF_ERR_INTERRUPTED) af_dist_fail_all(af_last_error());  /* returns with one rank */
  cleanup(&r);
  af_claim_release(claim);
  af_stop_end(&guard);  /* after the results are closed: a late signal loses nothing */
  return s;
}
