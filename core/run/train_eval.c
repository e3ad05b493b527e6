/* Dev evaluations, through the frozen prefix's cache. Once layers 0..k-1 are frozen, a dev
 * row's hidden state entering layer k is a fixed function of the row (frozen layers run
 * without dropout), so it is stored the first time it is computed and later evaluations
 * start at layer k. The batches are the same at every evaluation (file order, the same
 * size), so a row is always computed next to the same rows, and starting at layer k gives
 * the same logits, bit for bit, as starting from the tokens (with f32 storage; f16/bf16
 * round the stored state, as for training rows). A batch whose rows all hold entries at one
 * lower depth j starts at j ("advance") and stores the new depth; any other batch runs from
 * the tokens and stores. The cache tiers and budget are the run's (--cache ...), one cache
 * per evaluation split. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "core/base/fsutil.h"
#include "core/run/dist.h"
#include "core/run/run.h"

/* the eval split's cache, opened at the first evaluation that has a frozen prefix */
static af_status eval_cache(af_run *r, int e, af_act_cache **out) {
  *out = NULL;
  const af_train_opts *o = r->o;
  if (o->cache == AF_CACHE_OFF || o->accum > 1 || r->depth == 0 || !r->cache) return AF_OK;
  if (!r->eval_cache[e]) {
    char dir[4096], key[600];
    if (o->cache_dir) snprintf(dir, sizeof dir, "%s", o->cache_dir);
    else af_path_dir(o->out, dir, sizeof dir);
    snprintf(key, sizeof key, "model=%s;task=%s;split=%s;max_len=%d;pid=%ld;t=%.6f", o->model_dir, o->task,
             r->evals[e]->name, o->max_len, (long)getpid(), af_now());
    af_act_cache_opts co = {.mode = (af_cache_mode)o->cache, .dtype = (af_cache_dtype)r->ro.cache_dtype,
                            .budget_bytes = o->cache_budget, .dir = dir, .compress = o->cache_compress,
                            .n_examples = r->evals[e]->n, .hidden = r->C, .run_key = key};
    AF_TRY(af_act_cache_open(&co, &r->eval_cache[e]));
  }
  *out = r->eval_cache[e];
  return AF_OK;
}

/* The depth the batch can start from: j > 0 when every row holds an entry at depth j <= k
 * (read into r->hbuf, padding rows zeroed), else 0 (from the tokens). */
static af_status start_depth(af_run *r, af_act_cache *c, const af_batch *b, int *start) {
  const size_t row = (size_t)b->T * (size_t)r->C;
  *start = 0;
  int j = af_act_cache_depth(c, (size_t)b->index[0]);
  for (int i = 1; i < b->B && j > 0; i++)
    if (af_act_cache_depth(c, (size_t)b->index[i]) != j) j = 0;
  if (j <= 0 || j > r->depth) {
    for (int i = 0; i < b->B; i++) af_act_cache_count_miss(c);
    return AF_OK;
  }
  for (int i = 0; i < b->B; i++) {
    int len, d;
    float *dst = r->hbuf + (size_t)i * row;
    AF_TRY(af_act_cache_get(c, (size_t)b->index[i], dst, &len, &d));
    if (d != j || len != b->len[i]) return AF_OK;  /* lost meanwhile: from the tokens */
    memset(dst + (size_t)len * r->C, 0, (size_t)(b->T - len) * r->C * sizeof(float));
  }
  *start = j;
  return AF_OK;
}

/* One batch's logits into r->scores, through the cache c (NULL: from the tokens). */
static af_status eval_batch(af_run *r, af_act_cache *c, const af_batch *b) {
  const int k = r->depth;
  const size_t row = (size_t)b->T * (size_t)r->C;
  af_bert_input in = {b->ids, b->type_ids, b->mask, b->targets, b->B, b->T};
  int start = 0;
  float loss;
  if (c) AF_TRY(start_depth(r, c, b, &start));
  AF_TRY(af_bert_load_batch(&r->m, &in));
  if (start > 0) AF_TRY(af_bert_load_hidden(&r->m, start, r->hbuf, b->B, b->T));
  AF_TRY(af_bert_forward(&r->m, b->B, b->T, start, k, 0, 0, &loss));
  if (c && start < k) {  /* store h[k] of every row for the next evaluations */
    AF_TRY(r->be->to_host(r->be, r->hbuf, af_bert_hidden(&r->m, k), (size_t)b->B * row * sizeof(float)));
    for (int i = 0; i < b->B; i++)
      AF_TRY(af_act_cache_put(c, (size_t)b->index[i], k, r->hbuf + (size_t)i * row, b->len[i]));
  }
  AF_TRY(af_bert_logits(&r->m, b->B, r->logits));
  for (int i = 0; i < b->B; i++)
    memcpy(r->scores + (size_t)b->index[i] * r->NL, r->logits + (size_t)i * r->NL, (size_t)r->NL * sizeof(float));
  return AF_OK;
}

/* The metrics of eval split e. */
static af_status eval_split(af_run *r, int e, af_metrics *m) {
  af_split *s = r->evals[e];
  af_act_cache *c = NULL;
  AF_TRY(eval_cache(r, e, &c));
  af_batcher *eb = NULL;
  af_batcher_opts bo;
  af_batcher_opts_default(&bo);
  bo.batch = r->m.max_B;
  bo.shuffle = 0;
  AF_TRY(af_batcher_init(&eb, s, &bo));
  af_status st = af_batcher_begin(eb, 0);
  af_batch b;
  /* data-parallel: rank q computes batches q, q+N, ... (the same ones at every evaluation,
   * so its cache holds their rows) and the scores are gathered by a sum over zeros, exact */
  const int n = r->nranks > 1 ? r->nranks : 1;
  if (n > 1) memset(r->scores, 0, s->n * (size_t)r->NL * sizeof(float));
  for (long k = 0; st == AF_OK && af_batcher_next(eb, &b); k++)
    if (k % n == r->rank) st = eval_batch(r, c, &b);
  af_batcher_free(eb);
  AF_TRY(st);
  if (n > 1) AF_TRY(af_dist_allreduce_sum_f32(r->scores, s->n * (size_t)r->NL));
  return af_task_score(r->task, s, r->scores, m);
}

af_status af_run_evaluate(af_run *r, af_metrics *out0) {
  double a = af_now();
  char line[512] = "";
  size_t used = 0;
  const char *names[2 * AF_METRIC_COUNT];
  double values[2 * AF_METRIC_COUNT];
  char namebuf[2 * AF_METRIC_COUNT][48];
  int nv = 0;
  for (int e = 0; e < r->n_eval; e++) {
    af_metrics m;
    AF_TRY(eval_split(r, e, &m));
    if (e == 0) *out0 = m;
    const af_metric_set *set = af_task_metrics(r->task);
    for (int i = 0; i < set->n && nv < 2 * AF_METRIC_COUNT; i++) {
      af_metric k = set->list[i];
      if (!m.have[k]) continue;
      if (r->n_eval > 1) snprintf(namebuf[nv], sizeof namebuf[nv], "%s_%s", r->evals[e]->name, af_metric_name(k));
      else snprintf(namebuf[nv], sizeof namebuf[nv], "%s", af_metric_name(k));
      names[nv] = namebuf[nv];
      values[nv] = m.value[k];
      nv++;
    }
    char buf[256];
    af_metrics_format(set, &m, buf, sizeof buf);
    used += (size_t)snprintf(line + used, used < sizeof line ? sizeof line - used : 0, "%s%s: %s", e ? "; " : "",
                             r->evals[e]->name, buf);
  }
  r->eval_time += af_now() - a;
  r->last_eval_step = r->step;
  if (r->res) AF_TRY(af_results_append_eval(r->res, r->step, r->epoch, af_now() - r->t0, nv, names, values));
  if (!r->o->quiet)
    fprintf(stderr, "%sautofreeze: step %ld: eval %s\n", r->progress ? "\r\033[K" : "", r->step, line);
  r->last_metrics = *out0;
  if (!r->have_best || out0->primary_value > r->best) {
    r->have_best = 1;
    r->best = out0->primary_value;
    r->best_step = r->step;
    r->best_train_time = af_run_train_time(r);
    if (r->res) AF_TRY(af_results_set_summary_best(r->res, af_metric_name(out0->primary), r->best, r->best_step,
                                       r->best_train_time));
  }
  return AF_OK;
}

void af_run_eval_cache_record(af_run *r) {
  long long hits = 0, misses = 0, bytes = 0;
  int open = 0;
  for (int e = 0; e < 2; e++) {
    if (!r->eval_cache[e]) continue;
    af_cache_record cr;
    af_act_cache_stats(r->eval_cache[e], &cr);
    hits += cr.hits;
    misses += cr.misses;
    bytes += cr.bytes;
    open = 1;
  }
  if (!open) return;
  af_results_group_attr_int(r->res, "cache", "eval_hits", hits);
  af_results_group_attr_int(r->res, "cache", "eval_misses", misses);
  af_results_group_attr_int(r->res, "cache", "eval_bytes", bytes);
}
