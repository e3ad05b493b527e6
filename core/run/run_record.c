/* What a run records and checks: its resolved options, the results file's /config and
 * /summary, and the checkpoint identity a resume must match. Every option comes from the
 * table in options.c, so a new option is recorded and (when it shapes the trajectory)
 * checked on resume without code here. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/run/run.h"
#include "core/run/dist.h"
#include "core/run/train_ckpt.h"

void af_train_optim(const af_train_opts *o, af_optim_opts *out) {
  if (o->recipe == AF_RECIPE_PAPER || o->recipe == AF_RECIPE_REFERENCE) af_optim_defaults_paper(out);
  else af_optim_defaults_hf(out);
  const af_optim_opts *q = &o->optim;  /* a setting given (>= 0; lr > 0 or NaN) overrides the recipe's */
  if (!(q->lr <= 0)) out->lr = q->lr;
  if (q->beta1 >= 0) out->beta1 = q->beta1;
  if (q->beta2 >= 0) out->beta2 = q->beta2;
  if (q->eps >= 0) out->eps = q->eps;
  if (q->weight_decay >= 0) out->weight_decay = q->weight_decay;
  if (q->bias_correction >= 0) out->bias_correction = q->bias_correction;
  if ((int)q->clip >= 0) out->clip = q->clip;
  if (q->max_grad_norm >= 0) out->max_grad_norm = q->max_grad_norm;
  if ((int)q->schedule >= 0) out->schedule = q->schedule;
  if (q->warmup_frac >= 0) out->warmup_frac = q->warmup_frac;
}

/* --precision auto as the backend's bf16 hardware says (stderr says which and why); bf16
 * asked for where it is emulated runs, with one warning; the model's GEMMs follow (and its
 * activation storage: core/model/bert.h), and the cache's storage defaults to bf16 under bf16. */
static af_status resolve_precision(af_run *r) {
  af_train_opts *ro = &r->ro;
  const af_backend *be = r->be;
  if (ro->precision == AF_PRECISION_AUTO) {
    ro->precision = be->bf16_native ? AF_PREC_BF16 : AF_PREC_FP32;
    if (!r->o->quiet)
      fprintf(stderr, "autofreeze: --precision auto: %s (%s%s)\n", af_precision_names[ro->precision], be->bf16_why,
              be->bf16_native ? "" : ": bf16 would be emulated, slower than fp32");
  } else if ((ro->precision == AF_PREC_BF16 || ro->frozen_precision == AF_PREC_BF16) && !be->bf16_native) {
    af_warn("bf16 asked for, but bf16 GEMMs have no hardware path here (%s): it runs, slower than fp32", be->bf16_why);
  }
  if (ro->cache_dtype == AF_DTYPE_AUTO) ro->cache_dtype = ro->precision == AF_PREC_BF16 ? AF_DTYPE_BF16 : AF_DTYPE_F32;
  return af_bert_set_precision(&r->m, (af_precision)ro->precision, (af_precision)ro->frozen_precision);
}

af_status af_run_resolve(af_run *r) {
  const af_train_opts *o = r->o;
  af_train_opts *ro = &r->ro;
  *ro = *o;
  ro->task = af_task_name(r->task);
  af_train_optim(o, &ro->optim);
  ro->freeze.max_depth = af_freeze_ctl_max_depth(r->ctl);
  ro->freeze_when_learned = r->when_learned;
  if (o->val_rows == AF_VAL_ROWS_AUTO) ro->val_rows = r->val.n;  /* /config: the rows held out */
  for (int d = 0; af_device_names[d]; d++)
    if (!strcmp(af_device_names[d], r->be->name)) ro->device = d;
  return resolve_precision(r);
}

/* One option as a /config attribute: numbers as numbers, choices and text as strings. */
static af_status write_option(af_run *r, const af_opt *opt) {
  const char *key = opt->attr ? opt->attr : opt->name;
  char v[4096];
  if (opt->offset == offsetof(af_train_opts, policy_kind)) return af_results_attr_str(r->res, key, r->policy->name);
  if (opt->offset == offsetof(af_train_opts, model_dir)) return af_results_attr_str(r->res, key, r->o->model_dir);
  af_opt_get(opt, &r->ro, v, sizeof v);
  switch (opt->kind) {
  case AF_OPT_INT:
  case AF_OPT_SIZE: return af_results_attr_int(r->res, key, v[0] ? strtoll(v, NULL, 10) : -1);
  case AF_OPT_BOOL: return af_results_attr_int(r->res, key, !strcmp(v, "auto") ? -1 : !strcmp(v, "true"));
  case AF_OPT_NUM: return af_results_attr_double(r->res, key, af_opt_number(opt, &r->ro));
  default: return af_results_attr_str(r->res, key, v);
  }
}

af_status af_run_write_config(af_run *r) {
  af_results *res = r->res;
  for (int i = 0; i < af_opts_count; i++) AF_TRY(write_option(r, &af_opts[i]));
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  AF_TRY(af_results_attr_str(res, "policy_knobs", r->policy->knobs));
  AF_TRY(af_results_attr_double(res, "prior_loss", af_freeze_ctl_prior_loss(r->ctl)));  /* --freeze-when-learned */
  AF_TRY(af_results_attr_int(res, "total_steps", r->total_steps));
  AF_TRY(af_results_attr_str(res, "gemm", r->be->gemm_name));
  AF_TRY(af_results_attr_str(res, "host", host));
  AF_TRY(af_results_attr_int(res, "layers", r->L));
  AF_TRY(af_results_attr_int(res, "hidden", r->C));
  AF_TRY(af_results_attr_int(res, "num_labels", r->NL));
  AF_TRY(af_results_attr_int(res, "train_examples", (long long)r->train->n));
  AF_TRY(af_results_attr_int(res, "train_bad_rows", (long long)r->train->bad_rows));
  AF_TRY(af_results_attr_int(res, "train_truncated", (long long)r->train->n_truncated));
  if (r->n_eval > 0) AF_TRY(af_results_attr_int(res, "eval_examples", (long long)r->evals[0]->n));
  if (r->cache_off_reason) {  /* asked for but not opened: say why in the file too */
    af_cache_record cr;
    af_act_cache_record_unopened(r->o->cache, r->cache_off_reason, &cr);
    AF_TRY(af_results_set_cache(res, &cr));
  }
  AF_TRY(af_results_attr_str(res, "metric", af_metric_name(af_task_metrics(r->task)->primary)));
  return AF_OK;
}

/* ---- checkpoints ---- */

/* What decides a run's trajectory besides the layers, total steps and seed checked on their
 * own: a checkpoint is resumed only by a run that agrees on all of it (the rows of the
 * options table with an ident key). Threads, device, cache, evaluation cadence and
 * --max-steps may change between the two. */
static void run_config(const af_run *r, char *buf, size_t cap) {
  af_opts_identity(&r->ro, r->policy->name, r->policy->knobs, buf, cap);
  af_run_dist_config(r, buf, cap);  /* ";ranks=N" when N > 1 */
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

af_status af_run_ckpt_open(af_run *r) {
  if (!r->o->checkpoints || r->rank != 0) return AF_OK;  /* rank 0 writes the checkpoints */
  char cfg[2048];
  run_config(r, cfg, sizeof cfg);
  AF_TRY(af_ckpt_writer_open(r->ckpt_dir, &r->m, r->o->model_dir, r->labels, cfg, &r->ckw));
  if (r->ckpt_have)
    af_ckpt_writer_resumed(r->ckw, &(af_train_state){.prefix_depth = r->ckpt_prefix_depth,
                                                     .prefix_id = r->ckpt_prefix_id});
  return AF_OK;
}

int af_run_ckpt_due(const af_run *r, int boundary) {
  const af_period *p = &r->o->checkpoint_every;
  if (!r->ckw) return 0;
  switch (p->kind) {
  case AF_PERIOD_INTERVALS: return boundary;
  case AF_PERIOD_STEPS: return r->step % (long)p->every == 0;  /* the same steps after a resume */
  default: return af_run_train_time(r) - r->ckpt_train_time >= p->every;
  }
}

af_status af_run_save_ckpt(af_run *r) {
  if (!r->ckw || (r->ckpt_have && r->ckpt_step == r->step && r->ckpt_eval_step == r->last_eval_step)) return AF_OK;
  double a = af_now();
  af_freeze_loss_state ls;
  af_freeze_ctl_loss_state(r->ctl, &ls);
  af_train_state st = {.step = r->step, .epoch = r->epoch, .batch_in_epoch = r->batch_in_epoch,
                       .depth = r->depth, .examples = r->examples,
                       .intervals_done = af_freeze_ctl_intervals(r->ctl),
                       .prev_scores = af_freeze_ctl_prev_scores(r->ctl), .L = r->L, .have_best = r->have_best,
                       .best = r->best, .best_step = r->best_step, .best_train_time = r->best_train_time,
                       .train_time = af_run_train_time(r), .seed = r->o->seed, .total_steps = r->total_steps,
                       .last_eval_step = r->last_eval_step, .loss_sum = ls.sum, .loss_steps = ls.steps,
                       .loss_min = ls.min, .wait_end = af_freeze_ctl_wait_end(r->ctl)};
  af_status s = af_ckpt_writer_submit(r->ckw, &r->m, &st);  /* the strings: the writer's copies */
  r->ckpt_time += af_now() - a;
  if (s != AF_OK) return s;
  r->ckpt_have = 1;
  r->ckpt_step = r->step;
  r->ckpt_eval_step = r->last_eval_step;
  r->ckpt_train_time = st.train_time;
  return AF_OK;
}

af_status af_run_ckpt_wait(af_run *r) {
  double a = af_now();
  af_status s = af_ckpt_writer_wait(r->ckw);
  r->ckpt_time += af_now() - a;
  return s;
}

af_status af_run_ckpt_end(af_run *r, af_status s) {
  if (s == AF_OK) return af_run_ckpt_wait(r);
  char keep[2048];
  snprintf(keep, sizeof keep, "%s", af_last_error());
  if (af_run_ckpt_wait(r) != AF_OK) af_warn("%s", af_last_error());
  af_fail(s, __FILE__, __LINE__, "%s", keep);
  return s;
}

af_status af_run_load_ckpt(af_run *r) {
  af_train_state st;
  double prev[512];
  st.prev_scores_out = prev;
  AF_TRY(af_train_ckpt_load(r->ckpt_dir, &r->m, &st));
  if (st.L != r->L || st.total_steps != r->total_steps || st.seed != r->o->seed)
    return AF_FAIL(AF_ERR_ARG,
                   "%s: the checkpoint is from another run (layers %d, total steps %ld, seed %llu; this run: %d, %ld, %llu)",
                   r->ckpt_dir, st.L, st.total_steps, (unsigned long long)st.seed, r->L, r->total_steps,
                   (unsigned long long)r->o->seed);
  char cfg[2048], theirs[512], mine[512], ckc[2560], cfc[2560];
  AF_TRY(af_run_dist_check_ckpt(r, st.run_config_in));
  run_config(r, cfg, sizeof cfg);
  af_opts_identity_complete(st.run_config_in, ckc, sizeof ckc);  /* options kept out at their default */
  af_opts_identity_complete(cfg, cfc, sizeof cfc);
  if (st.run_config_in[0] && config_diff(ckc, cfc, theirs, sizeof theirs, mine, sizeof mine))
    return AF_FAIL(AF_ERR_ARG, "%s: the checkpoint is from another run (it has %s; this run: %s)", r->ckpt_dir,
                   theirs, mine[0] ? mine : "no such setting");
  AF_TRY(af_freeze_ctl_restore(r->ctl, st.intervals_done, st.depth, st.has_prev ? prev : NULL));
  if (st.has_loss)  /* an older checkpoint has none: its run had no loss guard (the identity says so) */
    af_freeze_ctl_restore_loss(r->ctl, &(af_freeze_loss_state){st.loss_sum, st.loss_steps, st.loss_min});
  af_freeze_ctl_restore_wait_end(r->ctl, st.wait_end);
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
  r->ckpt_have = 1;  /* what the loaded checkpoint holds is not written again */
  r->ckpt_step = st.step;
  r->ckpt_eval_step = st.last_eval_step;
  r->ckpt_train_time = st.train_time;
  r->ckpt_prefix_depth = st.prefix_depth;
  r->ckpt_prefix_id = st.prefix_id;
  if (!r->o->quiet)
    fprintf(stderr, "autofreeze: resuming %s at step %ld (epoch %d, frozen depth %d)\n", r->ckpt_dir, r->step,
            r->epoch + 1, r->depth);
  return AF_OK;
}

void af_run_summarize(af_run *r, af_train_summary *sum, const char *status) {
  memset(sum, 0, sizeof *sum);
  snprintf(sum->status, sizeof sum->status, "%s", status);
  sum->steps = r->step;
  sum->final_depth = r->depth;
  sum->total_time = r->t0 > 0 ? af_now() - r->t0 : 0;
  sum->wall_time = af_now() - r->t_start;
  sum->setup_time = (r->t0 > 0 ? r->t0 : af_now()) - r->t_start;
  sum->step_time = r->step_time;
  sum->eval_time = r->eval_time;
  sum->checkpoint_time = r->ckpt_time;
  double other = sum->wall_time - sum->setup_time - r->step_time - r->eval_time - r->ckpt_time;
  sum->other_time = other > 0 ? other : 0;
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

/* Where this process's wall time went: set-up (loading, tokenizing), the steps, the
 * evaluations, the checkpoints' share of the critical path, and the rest (decisions,
 * results writes, waiting). */
static void record_wall_time(af_run *r, const af_train_summary *sum) {
  af_results_set_summary_double(r->res, "wall_time", sum->wall_time);
  af_results_set_summary_double(r->res, "setup_time", sum->setup_time);
  af_results_set_summary_double(r->res, "step_time", sum->step_time);
  af_results_set_summary_double(r->res, "checkpoint_time", sum->checkpoint_time);
  af_results_set_summary_double(r->res, "other_time", sum->other_time);
  af_run_eval_cache_record(r);
}

void af_run_finish_results(af_run *r, const char *status, af_train_summary *sum) {
  if (!r->res) return;
  char err[2048];
  snprintf(err, sizeof err, "%s", af_last_error());  /* keep the run's error through the writes */
  af_results_set_summary_double(r->res, "total_time", sum->total_time);
  af_results_set_summary_double(r->res, "train_time", r->t0 > 0 ? af_run_train_time(r) : 0);
  af_results_set_summary_double(r->res, "eval_time", r->eval_time);
  record_wall_time(r, sum);
  af_results_set_summary_int(r->res, "checkpoints_written", af_ckpt_writer_count(r->ckw));
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
  if (!r->o->quiet && (r->cache || r->cache_off_reason)) {  /* what the cache did, each tier asked for */
    char line[2048];
    if (r->cache) af_act_cache_describe(r->cache, line, sizeof line);
    else snprintf(line, sizeof line, "activation cache off: %s", r->cache_off_reason);
    fprintf(stderr, "autofreeze: %s\n", line);
  }
  af_results_close(&r->res, status);
  af_fail(AF_OK, __FILE__, __LINE__, "%s", err);
}

