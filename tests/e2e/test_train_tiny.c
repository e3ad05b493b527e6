/* End-to-end training on the tiny fixture model (tests/fixtures/bert_tiny/cls) and a small
 * generated task that the model can learn (label 1 iff the sentence contains "you"):
 * for each policy the loss falls, the depth trajectory is the policy's, and the results
 * file holds the documented datasets; an interrupted run resumed from its checkpoint gives
 * exactly the numbers of an uninterrupted one; a NaN learning rate is caught with its step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/model/optim.h"
#include "core/results/results_read.h"
#include "core/run/train.h"
#include "core/run/run.h"
#include "tests/testutil.h"


/* the shared tiny run, on two threads (the thresholds below were set on two) */
static void opts_for(af_train_opts *o, const char *model, const char *data, const char *out, af_policy *p) {
  af_test_tiny_train_opts(o, model, data, out, p);
  o->threads = 2;
}

static double mean(const double *v, size_t lo, size_t hi) {
  double s = 0;
  for (size_t i = lo; i < hi; i++) s += v[i];
  return s / (double)(hi - lo);
}

/* A scripted policy: one more frozen layer at decisions 2 and 4 (depth 0 -> 1 -> 2). */
static af_status step_policy(af_policy *p, const af_interval_stats *st, int *new_depth) {
  (void)p;
  if (st->interval == 2 || st->interval == 4) *new_depth = st->depth + 1;
  return AF_OK;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The AutoFreeze rule written out again from docs/algorithm.md, to check
 * the recorded decisions: ratios against the previous interval, numpy-linear percentile
 * over the trainable layers, new depth = first l >= F with r_l >= percentile. */
static int expected_depth(const double *prev, const double *cur, int L, int F, double pct) {
  double r[64], v[64];
  int n = 0;
  for (int l = F; l < L; l++) {
    r[l] = prev[l] > 0 ? fabs(prev[l] - cur[l]) / prev[l] : NAN;
    if (!isnan(r[l])) v[n++] = r[l];
  }
  if (n == 0) return F;
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  double pos = pct / 100.0 * (n - 1);
  int lo = (int)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
  double p = v[lo] + (v[hi] - v[lo]) * (pos - lo);
  for (int l = F; l < L; l++) {
    if (isnan(r[l])) return l < L - 1 ? l : L - 1;  /* undefined change stops the scan */
    if (r[l] >= p) return l < L - 1 ? l : L - 1;
  }
  return F;
}

static void check_adaptive(const char *out, int L) {
  af_results_reader *rr = NULL;
  double *l1 = NULL, *before = NULL, *after = NULL;
  size_t rows = 0, cols = 0, n = 0;
  CHECK_OK(af_results_open_read(out, &rr));
  if (!rr) return;
  CHECK_OK(af_results_read_2d(rr, "intervals/l1", &l1, &rows, &cols));
  CHECK_OK(af_results_read_1d(rr, "intervals/depth_before", &before, &n));
  CHECK_OK(af_results_read_1d(rr, "intervals/depth_after", &after, &n));
  int checked = 0;
  for (size_t i = 1; l1 && before && after && i < rows; i++) {
    int want = expected_depth(l1 + (i - 1) * cols, l1 + i * cols, L, (int)before[i], 50);
    if ((int)after[i] != want) fprintf(stderr, "  interval %zu: recorded depth %g, rule gives %d\n", i, after[i], want);
    CHECK((int)after[i] == want);
    checked++;
  }
  CHECK(rows > 0 && after[0] == before[0]);  /* the first interval is only the baseline */
  printf("adaptive: %d decisions recomputed from the recorded scores\n", checked);
  af_results_close_read(&rr);
  free(l1);
  free(before);
  free(after);
}

static void check_run(const char *name, const char *out, int expect_static, int L, double min_acc) {
  size_t n = 0, nd = 0, ni = 0, ne = 0;
  double *loss = af_test_read_col(out, "steps/loss", &n), *depth = af_test_read_col(out, "steps/frozen_depth", &nd);
  double *after = af_test_read_col(out, "intervals/depth_after", &ni), *acc = af_test_read_col(out, "evals/accuracy", &ne);
  CHECK(n > 20 && nd == n && ni == 6 && ne >= 1);  /* exactly the 6 decisions asked for */
  if (n > 20) {
    double first = mean(loss, 0, 8), last = mean(loss, n - 8, n);
    printf("%-10s steps %zu, loss %.3f -> %.3f, final depth %g, dev accuracy %.3f\n", name, n, first, last,
           depth[n - 1], acc ? acc[ne - 1] : NAN);
    CHECK(last < first);
    CHECK(acc && acc[ne - 1] >= min_acc);
  }
  for (size_t i = 0; i + 1 < nd; i++) CHECK(depth[i + 1] >= depth[i]);  /* never unfreezes */
  for (size_t i = 0; i < nd; i++) {
    if (expect_static >= 0) CHECK(depth[i] == expect_static);
    CHECK(depth[i] <= L - 1);
  }
  /* the steps' depth follows the recorded decisions */
  af_results_reader *rr = NULL;
  CHECK_OK(af_results_open_read(out, &rr));
  double *istep = NULL, *l1 = NULL;
  size_t rows = 0, cols = 0, nis = 0;
  if (rr) {
    CHECK_OK(af_results_read_1d(rr, "intervals/step", &istep, &nis));
    CHECK_OK(af_results_read_2d(rr, "intervals/l1", &l1, &rows, &cols));
    CHECK(rows == ni && (int)cols == L);
    CHECK(istep && nis == ni && (size_t)istep[nis - 1] == n);  /* the last decision ends the run */
    for (size_t k = 0; istep && k < nis; k++) {
      size_t s = (size_t)istep[k];  /* the step right after a decision runs at its depth */
      if (s < nd) CHECK(depth[s] == after[k]);
    }
    af_attr *at = NULL;
    int na = 0;
    CHECK_OK(af_results_read_attrs(rr, "summary", &at, &na));
    const af_attr *st = af_results_find_attr(at, na, "status");
    CHECK(st && st->type == AF_ATTR_STR && !strcmp(st->s, "complete"));
    CHECK(af_results_find_attr(at, na, "best_value") || af_results_find_attr(at, na, "best"));
    af_results_free_attrs(at, na);
    CHECK(af_results_has(rr, "steps/t_forward") && af_results_has(rr, "steps/t_backward") &&
          af_results_has(rr, "intervals/ratio") && af_results_has(rr, "evals/accuracy"));
  }
  af_results_close_read(&rr);
  free(istep);
  free(l1);
  free(loss);
  free(depth);
  free(after);
  free(acc);
}

int main(void) {
  char model[4200], data[4200], out[4300];
  const char *tmp = af_test_tmpdir();
  if (af_test_tiny_setup(model, data, sizeof model) != 0) return 1;
  const int L = 3;
  af_train_summary sum;
  af_train_opts o;

  af_policy *none = NULL, *stat = NULL, *adap = NULL;
  CHECK_OK(af_policy_none(&none));
  CHECK_OK(af_policy_static(2, &stat));
  CHECK_OK(af_policy_adaptive(50, -1, &adap));
  /* full fine-tuning learns the task; training only the last layer learns it slower */
  struct { const char *name; af_policy *p; int expect; double min_acc; } runs[] = {
      {"none", none, 0, 0.9}, {"static2", stat, 2, 0.55}, {"adaptive", adap, -1, 0.55}};
  for (int i = 0; i < 3; i++) {
    snprintf(out, sizeof out, "%s/%s.h5", tmp, runs[i].name);
    opts_for(&o, model, data, out, runs[i].p);
    CHECK_OK(af_train(&o, &sum));
    CHECK(!strcmp(sum.status, "complete"));
    check_run(runs[i].name, out, runs[i].expect, L, runs[i].min_acc);
    if (runs[i].p == adap) check_adaptive(out, L);
  }

  /* resume: a run interrupted at step 57 (mid-interval, depth 0), resumed, interrupted
   * again at step 77 (mid-interval, depth 1: the policy froze one layer at step 60) and
   * resumed again, equals the uninterrupted run */
  af_policy *scripted = NULL;
  CHECK_OK(af_policy_custom("scripted", step_policy, NULL, NULL, &scripted));
  char full[4300], part[4300];
  snprintf(full, sizeof full, "%s/scripted.h5", tmp);
  snprintf(part, sizeof part, "%s/resumed.h5", tmp);
  opts_for(&o, model, data, full, scripted);
  CHECK_OK(af_train(&o, &sum));
  CHECK(sum.final_depth == 2);
  opts_for(&o, model, data, part, scripted);
  af_run_test_interrupt_at(57);
  af_status s = af_train(&o, &sum);
  CHECK(s == AF_ERR_INTERRUPTED && !strcmp(sum.status, "interrupted") && sum.steps == 57);
  opts_for(&o, model, data, part, scripted);
  o.resume = 1;
  af_run_test_interrupt_at(77);
  s = af_train(&o, &sum);
  CHECK(s == AF_ERR_INTERRUPTED && sum.steps == 77 && sum.final_depth == 1);
  opts_for(&o, model, data, part, scripted);
  o.resume = 1;
  CHECK_OK(af_train(&o, &sum));
  CHECK(sum.steps == 120 && sum.final_depth == 2);
  const char *cols[] = {"steps/loss", "steps/frozen_depth", "steps/lr", "intervals/l1", "evals/accuracy"};
  for (int c = 0; c < 5; c++) {
    size_t na = 0, nb = 0;
    double *a = NULL, *b = NULL;
    a = (c == 3 ? af_test_read_flat : af_test_read_col)(full, cols[c], &na);
    b = (c == 3 ? af_test_read_flat : af_test_read_col)(part, cols[c], &nb);
    CHECK(na == nb && na > 0);
    int same = na == nb && a && b && memcmp(a, b, na * sizeof(double)) == 0;
    printf("resume: %-20s %zu values %s\n", cols[c], na, same ? "identical" : "DIFFERENT");
    CHECK(same);
    free(a);
    free(b);
  }

  /* the paper's recipe: stepped learning rate (x1 until 30% of the steps, x0.7 until 60%,
   * x0.4 after), BERTAdam without bias correction, per-tensor clipping */
  snprintf(out, sizeof out, "%s/paper.h5", tmp);
  opts_for(&o, model, data, out, adap);
  o.recipe = AF_RECIPE_PAPER;
  CHECK_OK(af_train(&o, &sum));
  {
    size_t n = 0;
    double *lr = af_test_read_col(out, "steps/lr", &n);
    int bad = 0;
    for (size_t i = 0; lr && i < n; i++) {
      double f = (double)i / (double)n, want = 3e-3 * (f < 0.3 ? 1.0 : f < 0.6 ? 0.7 : 0.4);
      bad += fabs(lr[i] - want) > 1e-9;
    }
    printf("paper recipe: %zu steps, stepped learning rate %s\n", n, bad ? "WRONG" : "as specified");
    CHECK(n == 120 && bad == 0);
    free(lr);
    af_results_reader *rr = NULL;
    CHECK_OK(af_results_open_read(out, &rr));
    af_attr *at = NULL;
    int na = 0;
    if (rr) CHECK_OK(af_results_read_attrs(rr, "config", &at, &na));
    const af_attr *bc = af_results_find_attr(at, na, "bias_correction"), *cl = af_results_find_attr(at, na, "clip");
    const af_attr *rc = af_results_find_attr(at, na, "recipe");
    CHECK(bc && bc->i == 0 && cl && cl->s && !strcmp(cl->s, "per_tensor") && rc && rc->s && !strcmp(rc->s, "paper"));
    af_results_free_attrs(at, na);
    af_results_close_read(&rr);
  }

  /* a diverging run stops with a clear error naming the step: step 1's update makes every
   * parameter NaN, so step 2's loss is the first that is not finite; the file keeps step 1 */
  snprintf(out, sizeof out, "%s/nan.h5", tmp);
  opts_for(&o, model, data, out, none);
  o.optim.lr = NAN;
  s = af_train(&o, &sum);
  printf("NaN learning rate: %s\n", af_last_error());
  CHECK(s == AF_ERR_NUMERIC && strstr(af_last_error(), "step 2 (epoch 1)") != NULL);
  CHECK(!strcmp(sum.status, "failed"));
  {
    size_t n = 0;
    double *loss = af_test_read_col(out, "steps/loss", &n);
    CHECK(n == 1 && loss && isfinite(loss[0]));
    free(loss);
  }

  af_policy_free(none);
  af_policy_free(stat);
  af_policy_free(adap);
  af_policy_free(scripted);
  return af_test_done("test_train_tiny");
}
