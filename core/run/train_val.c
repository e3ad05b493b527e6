/* The validation slice of a policy that asks for one (af_policy.wants_val, the gated policy),
 * or of any run given --val-rows N (so that full fine-tuning can hold out gated's rows):
 * a fixed pseudo-random subset of the TRAINING split held out from training -- never the dev
 * split, so nothing the run decides is tuned on what it is scored on -- and its primary
 * metric, measured before each decision. The slice shares the training split's token arena
 * and owns only its per-row arrays. */
#include <stdlib.h>
#include <string.h>
#include "core/run/run.h"
#include "kernels/ops.h" /* af_rng_mix */

/* The slice's size when --val-rows is 0: 10% of the training rows, at most 2000, at least 1. */
static size_t auto_rows(size_t n) {
  size_t k = n / 10;
  if (k > 2000) k = 2000;
  return k ? k : 1;
}

static af_status carve(af_split *tr, size_t want, af_split *val, uint8_t *held) {
  /* partial Fisher-Yates with a fixed seed (not the run's: every seed holds out the same rows) */
  size_t *pick;
  AF_TRY(af_malloc((void **)&pick, tr->n * sizeof *pick, "validation slice"));
  for (size_t i = 0; i < tr->n; i++) pick[i] = i;
  for (size_t i = 0; i < want; i++) {
    size_t j = i + (size_t)(af_rng_mix(0x7a11da7e5eedull, i) % (uint64_t)(tr->n - i));
    size_t t = pick[i];
    pick[i] = pick[j];
    pick[j] = t;
  }
  for (size_t i = 0; i < want; i++) held[pick[i]] = 1;
  free(pick);
  af_status s = AF_OK;
  s = af_malloc((void **)&val->labels, want * sizeof *val->labels, "validation slice");
  if (s == AF_OK) s = af_malloc((void **)&val->tok_off, want * sizeof *val->tok_off, "validation slice");
  if (s == AF_OK) s = af_malloc((void **)&val->len, want * sizeof *val->len, "validation slice");
  if (s != AF_OK) return s;
  /* file order in both parts; the training rows move down in place (k <= i) */
  size_t nv = 0, nt = 0;
  tr->n_truncated = 0;
  tr->longest = 0;
  for (size_t i = 0; i < tr->n; i++) {
    if (held[i]) {
      val->labels[nv] = tr->labels[i];
      val->tok_off[nv] = tr->tok_off[i];
      val->len[nv] = tr->len[i];
      if (tr->len[i] > val->longest) val->longest = tr->len[i];
      nv++;
      continue;
    }
    tr->labels[nt] = tr->labels[i];
    if (tr->line) tr->line[nt] = tr->line[i];
    tr->a_off[nt] = tr->a_off[i];
    tr->b_off[nt] = tr->b_off[i];
    tr->tok_off[nt] = tr->tok_off[i];
    tr->len[nt] = tr->len[i];
    tr->truncated[nt] = tr->truncated[i];
    tr->n_truncated += tr->truncated[nt];
    if (tr->len[nt] > tr->longest) tr->longest = tr->len[nt];
    nt++;
  }
  tr->n = nt;
  val->n = nv;
  return AF_OK;
}

af_status af_run_carve_val(af_run *r) {
  af_split *tr = r->train, *val = &r->val;
  size_t want = r->o->val_rows && r->o->val_rows != AF_VAL_ROWS_AUTO ? r->o->val_rows : auto_rows(tr->n);
  if (want >= tr->n)
    return AF_FAIL(AF_ERR_ARG, "--val-rows %zu: the training split has %zu rows; the policy '%s' needs some "
                   "left to train on", want, tr->n, r->policy->name);
  memset(val, 0, sizeof *val);
  snprintf(val->name, sizeof val->name, "val");
  snprintf(val->path, sizeof val->path, "%s", tr->path);
  val->has_labels = tr->has_labels;
  val->pair = tr->pair;
  val->max_len = tr->max_len;
  val->pad_id = tr->pad_id;
  val->ids = tr->ids;  /* shared: the training split's arena */
  val->type_ids = tr->type_ids;
  if (!tr->has_labels) return AF_FAIL(AF_ERR_FORMAT, "%s: the training split has no labels", tr->path);
  uint8_t *held;
  AF_TRY(af_calloc((void **)&held, tr->n, 1, "validation slice"));
  af_status s = carve(tr, want, val, held);
  free(held);
  r->have_val = s == AF_OK;
  return s;
}

void af_run_val_free(af_run *r) {
  free(r->val.labels);
  free(r->val.tok_off);
  free(r->val.len);
  memset(&r->val, 0, sizeof r->val);
  r->have_val = 0;
}

/* The primary metric on the slice: a full forward from the tokens at the current depth,
 * dropout off, no cache (the slice is small). Its time counts as training time: it is part
 * of what the policy costs. */
af_status af_run_val_metric(af_run *r, double *out) {
  af_batcher *vb = NULL;
  af_batcher_opts bo;
  af_batcher_opts_default(&bo);
  bo.batch = r->m.max_B;
  bo.shuffle = 0;
  AF_TRY(af_batcher_init(&vb, &r->val, &bo));
  af_status st = af_batcher_begin(vb, 0);
  af_batch b;
  while (st == AF_OK && af_batcher_next(vb, &b)) {
    af_bert_input in = {b.ids, b.type_ids, b.mask, b.targets, b.B, b.T};
    float loss;
    st = af_bert_load_batch(&r->m, &in);
    if (st == AF_OK) st = af_bert_forward(&r->m, b.B, b.T, 0, r->depth, 0, 0, &loss);
    if (st == AF_OK) st = af_bert_logits(&r->m, b.B, r->logits);
    for (int i = 0; st == AF_OK && i < b.B; i++)
      memcpy(r->scores + (size_t)b.index[i] * r->NL, r->logits + (size_t)i * r->NL, (size_t)r->NL * sizeof(float));
  }
  af_batcher_free(vb);
  AF_TRY(st);
  af_metrics m;
  AF_TRY(af_task_score(r->task, &r->val, r->scores, &m));
  *out = m.primary_value;
  return AF_OK;
}
