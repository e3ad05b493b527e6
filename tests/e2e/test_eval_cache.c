/* Evaluation through the frozen prefix's cache is exact: a run whose dev rows start at the
 * frozen depth from their cached hidden state writes the same evaluation metrics, bit for
 * bit, as the same run evaluating from the tokens (--cache off), through a fill at depth 1,
 * an advance from depth 1 to 2 and hits at depth 2. The task is a regression (the tiny
 * "you" task's labels as real targets), so Pearson and Spearman see every logit's last bits.
 * Also: the hits happen (/cache@eval_hits), a larger --eval-batch gives the same metrics to
 * rounding, and the wall-time split in /summary adds up. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/results/results_read.h"
#include "core/run/train.h"
#include "tests/testutil.h"

/* depth 1 after the first decision, 2 after the third */
static af_status scripted(af_policy *p, const af_interval_stats *st, int *new_depth) {
  if (st->interval == 0) *new_depth = 1;
  if (st->interval == 2) *new_depth = 2;
  return AF_OK;
}

static void opts(af_train_opts *o, const char *model, const char *data, const char *out, af_policy *p, int cache) {
  af_test_tiny_train_opts(o, model, data, out, p);
  o->task = "generic";
  o->text_cols = "sentence";
  o->label_col = "label";
  o->regression = 1;
  o->eval_every = 5;
  o->checkpoints = 0;
  o->cache = cache;
}

static double attr(const char *file, const char *group, const char *key) {
  af_results_reader *rr = NULL;
  af_attr *at = NULL;
  int na = 0;
  double v = NAN;
  if (af_results_open_read(file, &rr) == AF_OK && af_results_read_attrs(rr, group, &at, &na) == AF_OK) {
    const af_attr *a = af_results_find_attr(at, na, key);
    if (a) v = a->d;
  }
  af_results_free_attrs(at, na);
  af_results_close_read(&rr);
  return v;
}

int main(void) {
  char model[4200], data[4200], plain[4300], cached[4300], big[4300];
  const char *tmp = af_test_tmpdir();
  if (af_test_tiny_setup(model, data, sizeof model) != 0) return 1;
  snprintf(plain, sizeof plain, "%s/plain.h5", tmp);
  snprintf(cached, sizeof cached, "%s/cached.h5", tmp);
  snprintf(big, sizeof big, "%s/big.h5", tmp);
  af_policy *p = NULL;
  CHECK_OK(af_policy_custom("scripted", scripted, NULL, NULL, &p));
  af_train_opts o;
  af_train_summary sum;
  opts(&o, model, data, plain, p, AF_CACHE_OFF);
  CHECK_OK(af_train(&o, &sum));
  opts(&o, model, data, cached, p, AF_CACHE_MEMORY);
  CHECK_OK(af_train(&o, &sum));
  CHECK(sum.final_depth == 2);
  opts(&o, model, data, big, p, AF_CACHE_MEMORY);
  o.eval_batch = 64;  /* the whole dev split in one forward */
  CHECK_OK(af_train(&o, &sum));

  const char *cols[] = {"evals/pearson", "evals/spearman", "evals/step", "steps/loss"};
  for (int c = 0; c < 4; c++) {
    size_t n1 = 0, n2 = 0, n3 = 0;
    double *a = af_test_read_col(plain, cols[c], &n1), *b = af_test_read_col(cached, cols[c], &n2),
           *x = af_test_read_col(big, cols[c], &n3);
    CHECK(n1 > 10 && n1 == n2 && n1 == n3);
    int same = a && b && n1 == n2 && !memcmp(a, b, n1 * sizeof *a);
    printf("%s: %zu values, cached %s the plain run's\n", cols[c], n1, same ? "equals" : "DIFFERS from");
    CHECK(same);
    if (a && x && n1 == n3) af_test_close_d(cols[c], x, a, n1, 1e-6, 1e-5);
    free(a);
    free(b);
    free(x);
  }
  double hits = attr(cached, "cache", "eval_hits"), misses = attr(cached, "cache", "eval_misses");
  printf("dev rows through the cache: %.0f hits, %.0f misses\n", hits, misses);
  /* 64 dev rows, 4 batches: filled at depth 1, advanced to 2, then hits at every evaluation */
  CHECK(hits >= 64 * 10 && misses == 64);
  CHECK(isnan(attr(plain, "cache", "eval_hits")));

  double wall = attr(cached, "summary", "wall_time"), parts = 0;
  const char *split[] = {"setup_time", "step_time", "eval_time", "checkpoint_time", "other_time"};
  for (int i = 0; i < 5; i++) {
    double v = attr(cached, "summary", split[i]);
    CHECK(v >= 0);
    parts += isfinite(v) ? v : 0;
  }
  printf("wall time %.3f s, parts add up to %.3f s\n", wall, parts);
  CHECK(wall > 0 && fabs(parts - wall) <= 0.01 * wall + 1e-3);
  af_policy_free(p);
  return af_test_done("test_eval_cache");
}
