/* The freeze controller and policies on crafted score sequences. Every expected depth below
 * is worked out by hand from the rule in docs/algorithm.md:
 *   r_l = |s_prev - s| / s_prev;  pct = numpy.percentile({r_j : j >= F}, N);
 *   new depth = first l >= F with r_l >= pct (layers F..l-1 freeze), capped at max depth.
 * Scores use powers of two where a tie must be exact. */
#include "core/run/freeze.h"
#include "tests/testutil.h"
#include <math.h>
#include <string.h>

/* End one interval and check the depth after it. */
static void step_expect(af_freeze_ctl *c, long step, const double *s, int want, const char *what) {
  af_freeze_decision d;
  af_status st = af_freeze_ctl_end_interval(c, step, s, s, &d);
  if (st != AF_OK) {
    af_test_failures++;
    fprintf(stderr, "%s: end_interval failed: %s\n", what, af_last_error());
    return;
  }
  if (d.depth_after != want || af_freeze_ctl_depth(c) != want) {
    af_test_failures++;
    fprintf(stderr, "%s: depth %d (ctl %d), expected %d\n", what, d.depth_after, af_freeze_ctl_depth(c), want);
  }
  CHECK(d.depth_after >= d.depth_before);
}

static void check_ratios(af_freeze_ctl *c, long step, const double *s, const double *want, int L, const char *what) {
  af_freeze_decision d;
  CHECK_OK(af_freeze_ctl_end_interval(c, step, s, NULL, &d));
  for (int l = 0; l < L; l++) {
    int ok = isnan(want[l]) ? isnan(d.ratio[l]) : d.ratio[l] == want[l];
    if (!ok) {
      af_test_failures++;
      fprintf(stderr, "%s: ratio[%d] = %.17g, expected %.17g\n", what, l, d.ratio[l], want[l]);
    }
  }
}

static void test_percentile(void) {
  /* Reference values from numpy 1.24: repr(float(np.percentile(v, p))). */
  struct { double v[8]; int n; double p, want; } cases[] = {
      {{0.3, 0.1, 0.7, 0.2}, 4, 37, 0.211},
      {{0.3, 0.1, 0.7, 0.2}, 4, 50, 0.25},
      {{1e-3, 5.0, 2.5, 2.5, 0.1}, 5, 90, 4.0},
      {{0.1, 0.2, 0.3}, 3, 50, 0.2},
      {{0.1, 0.7}, 2, 33.3, 0.29979999999999996},
      {{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7}, 7, 75, 0.55},
      {{0.4, 0.9}, 2, 0, 0.4},
      {{0.4, 0.9}, 2, 100, 0.9},
      {{3.0}, 1, 50, 3.0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    double got = af_percentile_linear(cases[i].v, cases[i].n, cases[i].p);
    if (got != cases[i].want) {
      af_test_failures++;
      fprintf(stderr, "percentile case %zu: %.17g, numpy %.17g\n", i, got, cases[i].want);
    }
  }
  CHECK(isnan(af_percentile_linear(NULL, 0, 50)));
}

/* A full run of the paper rule, N = 50, L = 6 (max depth 5). */
static void test_adaptive_sequence(void) {
  af_policy *p;
  af_freeze_ctl *c;
  CHECK_OK(af_policy_adaptive(50, -1, &p));
  CHECK_OK(af_freeze_ctl_create(6, NULL, p, &c));
  CHECK(af_freeze_ctl_depth(c) == 0 && af_freeze_ctl_max_depth(c) == 5);
  /* I0: baseline only, no policy call, depth 0. */
  double s0[6] = {8, 8, 8, 8, 8, 8};
  af_freeze_decision d;
  CHECK_OK(af_freeze_ctl_end_interval(c, 100, s0, s0, &d));
  CHECK(d.depth_after == 0 && !d.policy_called && d.interval == 0 && d.step == 100);
  for (int l = 0; l < 6; l++) CHECK(isnan(d.ratio[l]));
  /* I1: r = [1/8, 2/8, 4/8, 0, 6/8, 2/8] = [.125 .25 .5 0 .75 .25];
   * sorted 0 .125 .25 .25 .5 .75, index 2.5 -> .25 (a tie between two .25s).
   * l0: .125 < .25; l1: .25 >= .25 (tie counts) -> depth 1. */
  double s1[6] = {7, 6, 4, 8, 2, 10};
  step_expect(c, 200, s1, 1, "adaptive I1 (tie at the percentile)");
  /* I2 (F=1): layer 0 frozen, its score (99) is ignored and recorded as 0.
   * r1..r5 = |6-6|/6, |4-4|/4, |8-6|/8, |2-1|/2, |10-5|/10 = 0 0 .25 .5 .5;
   * sorted 0 0 .25 .5 .5, index 2 -> .25. l1: 0, l2: 0, l3: .25 >= .25 -> depth 3:
   * layers 1 and 2 freeze in one decision. */
  double s2[6] = {99, 6, 4, 6, 1, 5};
  CHECK_OK(af_freeze_ctl_end_interval(c, 300, s2, s2, &d));
  CHECK(d.depth_before == 1 && d.depth_after == 3 && d.policy_called);
  CHECK(d.l1[0] == 0 && d.l2[0] == 0 && isnan(d.ratio[0]));
  CHECK(d.ratio[3] == 0.25 && d.ratio[4] == 0.5 && d.ratio[5] == 0.5);
  /* I3 (F=3): r3..r5 = |6-3|/6, |1-1|/1, |5-5|/5 = .5 0 0; sorted 0 0 .5 -> 0.
   * l3: .5 >= 0 -> depth 3: the first trainable layer reaches the percentile, nothing new
   * freezes. */
  double s3[6] = {0, 0, 0, 3, 1, 5};
  step_expect(c, 400, s3, 3, "adaptive I3 (first layer reaches pct)");
  /* I4 (F=3): r3..r5 = |3-3|/3, |1-1.5|/1, |5-10|/5 = 0 .5 1; median .5.
   * l3: 0 < .5; l4: .5 >= .5 -> depth 4. */
  double s4[6] = {0, 0, 0, 3, 1.5, 10};
  step_expect(c, 500, s4, 4, "adaptive I4");
  /* I5 (F=4): r4, r5 = |1.5-1.5|/1.5, |10-5|/10 = 0 .5; index .5 -> .5 - .5*.5 = .25.
   * l4: 0 < .25; l5: .5 >= .25 -> depth 5 = L-1, the last layer always trains. */
  double s5[6] = {0, 0, 0, 0, 1.5, 5};
  step_expect(c, 600, s5, 5, "adaptive I5");
  /* I6 (F=5 = max): stays 5 whatever the scores. */
  double s6[6] = {0, 0, 0, 0, 0, 1};
  step_expect(c, 700, s6, 5, "adaptive I6 (at max)");
  /* The log: monotone, one record per interval. */
  int n;
  const af_freeze_record *h = af_freeze_ctl_history(c, &n);
  int want_after[7] = {0, 1, 3, 3, 4, 5, 5};
  CHECK(n == 7);
  for (int i = 0; i < n && i < 7; i++) {
    CHECK(h[i].interval == i && h[i].step == 100 * (i + 1));
    CHECK(h[i].depth_after == want_after[i]);
    if (i > 0) CHECK(h[i].depth_before == h[i - 1].depth_after);
  }
  CHECK(af_freeze_ctl_intervals(c) == 7);
  af_freeze_ctl_free(c);
  af_policy_free(p);
}

/* N = 0 never freezes (r_F >= min); N = 100 freezes up to the first layer with the max. */
static void test_percentile_extremes(void) {
  double s0[6] = {8, 8, 8, 8, 8, 8}, s1[6] = {7, 6, 4, 8, 2, 10};
  af_policy *p;
  af_freeze_ctl *c;
  CHECK_OK(af_policy_adaptive(0, -1, &p));
  CHECK_OK(af_freeze_ctl_create(6, NULL, p, &c));
  step_expect(c, 1, s0, 0, "p0 I0");
  /* pct = min = 0; l0: .125 >= 0 -> depth 0. */
  step_expect(c, 2, s1, 0, "p0 I1");
  step_expect(c, 3, s0, 0, "p0 I2");
  af_freeze_ctl_free(c);
  af_policy_free(p);

  CHECK_OK(af_policy_adaptive(100, -1, &p));
  CHECK_OK(af_freeze_ctl_create(6, NULL, p, &c));
  step_expect(c, 1, s0, 0, "p100 I0");
  /* pct = max = .75 (layer 4): l0..l3 below -> depth 4, four layers at once. */
  step_expect(c, 2, s1, 4, "p100 I1");
  af_freeze_ctl_free(c);
  af_policy_free(p);
}

/* The cap: the policy's own max depth, and the controller's user max. */
static void test_max_depth(void) {
  double s0[6] = {8, 8, 8, 8, 8, 8}, s1[6] = {7, 6, 4, 8, 2, 10};
  af_policy *p;
  af_freeze_ctl *c;
  CHECK_OK(af_policy_adaptive(100, 2, &p));
  CHECK(strcmp(p->knobs, "percentile=100 max_depth=2") == 0);
  CHECK_OK(af_freeze_ctl_create(6, NULL, p, &c));
  step_expect(c, 1, s0, 0, "policy max I0");
  step_expect(c, 2, s1, 2, "policy max I1 (4 clipped to 2)");
  af_freeze_ctl_free(c);
  af_policy_free(p);

  CHECK_OK(af_policy_adaptive(100, -1, &p));
  af_freeze_opts o = {.max_depth = 1};
  CHECK_OK(af_freeze_ctl_create(6, &o, p, &c));
  CHECK(af_freeze_ctl_max_depth(c) == 1);
  step_expect(c, 1, s0, 0, "user max I0");
  step_expect(c, 2, s1, 1, "user max I1 (4 clipped to 1)");
  step_expect(c, 3, s0, 1, "user max I2");
  af_freeze_ctl_free(c);
  /* A user max above L-1 is clipped to L-1. */
  o.max_depth = 99;
  CHECK_OK(af_freeze_ctl_create(6, &o, p, &c));
  CHECK(af_freeze_ctl_max_depth(c) == 5);
  af_freeze_ctl_free(c);
  af_policy_free(p);
}

/* A layer with a zero score: its next ratio is NaN (0 previous), excluded from the percentile
 * and a stop for the scan. A layer whose score drops to 0 has ratio 1 (defined). */
static void test_zero_norm(void) {
  af_policy *p;
  af_freeze_ctl *c;
  CHECK_OK(af_policy_adaptive(50, -1, &p));
  CHECK_OK(af_freeze_ctl_create(4, NULL, p, &c));
  double s0[4] = {4, 0, 4, 4};
  step_expect(c, 1, s0, 0, "zero I0");
  /* I1: r = [1/4, NaN, 3/4, 2/4]; pct over {.25 .75 .5} = .5.
   * l0: .25 < .5; l1: NaN stops the scan -> depth 1 (skipping NaN would give 2). */
  double s1[4] = {3, 2, 1, 2};
  double r1[4] = {0.25, NAN, 0.75, 0.5};
  check_ratios(c, 2, s1, r1, 4, "zero I1 ratios");
  CHECK(af_freeze_ctl_depth(c) == 1);
  /* I2 (F=1): layer 1 drops to 0: r1 = |2-0|/2 = 1, r2 = 0, r3 = .5; median .5;
   * l1: 1 >= .5 -> depth 1. */
  double s2[4] = {0, 0, 1, 1};
  step_expect(c, 3, s2, 1, "zero I2");
  /* I3: layer 1 previous 0 -> NaN; r2 = .5, r3 = 0; pct over {.5, 0}: .5 - .5*.5 = .25.
   * l1: NaN stops -> depth 1. A layer with no gradient is never frozen by this rule. */
  double s3[4] = {0, 0, 0.5, 1};
  step_expect(c, 4, s3, 1, "zero I3");
  af_freeze_ctl_free(c);

  /* All previous scores 0: every ratio NaN, the set is empty, nothing freezes. */
  CHECK_OK(af_freeze_ctl_create(4, NULL, p, &c));
  double z[4] = {0, 0, 0, 0}, one[4] = {1, 1, 1, 1};
  step_expect(c, 1, z, 0, "all-zero I0");
  step_expect(c, 2, one, 0, "all-zero I1");
  af_freeze_ctl_free(c);
  af_policy_free(p);
}

/* Signed (paper) vs absolute (code) ratio. L = 4, I0 = [4 4 4 4], I1 = [5 6 3 2].
 * signed: [-.25 -.5 .25 .5]; sorted -.5 -.25 .25 .5; index 1.5 -> .25 - .5*.5 = 0;
 *         l0 -.25 < 0, l1 -.5 < 0, l2 .25 >= 0 -> depth 2.
 * abs:    [.25 .5 .25 .5]; sorted .25 .25 .5 .5; index 1.5 -> .5 - .25*.5 = .375;
 *         l0 .25 < .375, l1 .5 >= .375 -> depth 1. */
static void test_signed_ratio(void) {
  double s0[4] = {4, 4, 4, 4}, s1[4] = {5, 6, 3, 2};
  af_policy *p;
  af_freeze_ctl *c;
  CHECK_OK(af_policy_adaptive(50, -1, &p));
  af_freeze_opts o = {.max_depth = -1, .signed_ratio = 1};
  CHECK_OK(af_freeze_ctl_create(4, &o, p, &c));
  step_expect(c, 1, s0, 0, "signed I0");
  step_expect(c, 2, s1, 2, "signed I1");
  af_freeze_ctl_free(c);
  CHECK_OK(af_freeze_ctl_create(4, NULL, p, &c));
  step_expect(c, 1, s0, 0, "abs I0");
  step_expect(c, 2, s1, 1, "abs I1");
  af_freeze_ctl_free(c);
  af_policy_free(p);
}

static void test_static_none(void) {
  double s0[6] = {8, 8, 8, 8, 8, 8}, s1[6] = {1, 1, 1, 8, 100, 1};
  af_policy *p;
  af_freeze_ctl *c;
  CHECK_OK(af_policy_none(&p));
  CHECK(strcmp(p->name, "none") == 0 && p->initial_depth == 0);
  CHECK_OK(af_freeze_ctl_create(6, NULL, p, &c));
  for (int i = 0; i < 4; i++) step_expect(c, i, i % 2 ? s1 : s0, 0, "none");
  af_freeze_ctl_free(c);
  af_policy_free(p);

  CHECK_OK(af_policy_static(5, &p));
  CHECK(strcmp(p->name, "static") == 0 && p->initial_depth == 5);
  CHECK_OK(af_freeze_ctl_create(6, NULL, p, &c));
  CHECK(af_freeze_ctl_depth(c) == 5);   /* frozen from step 0 */
  for (int i = 0; i < 4; i++) step_expect(c, i, i % 2 ? s1 : s0, 5, "static 5");
  af_freeze_ctl_free(c);
  /* K = L freezes every encoder layer: refused. So is K above the user max. */
  c = NULL;
  CHECK(af_freeze_ctl_create(5, NULL, p, &c) == AF_ERR_ARG && c == NULL);
  CHECK(strstr(af_last_error(), "static") && strstr(af_last_error(), "0..4"));
  af_freeze_opts o = {.max_depth = 3};
  CHECK(af_freeze_ctl_create(6, &o, p, &c) == AF_ERR_ARG);
  af_policy_free(p);
  CHECK(af_policy_static(-1, &p) == AF_ERR_ARG && p == NULL);
  CHECK(af_policy_adaptive(101, -1, &p) == AF_ERR_ARG);
  CHECK(af_policy_adaptive(NAN, -1, &p) == AF_ERR_ARG);
}

/* A custom policy: what it sees, and what the controller refuses. */
typedef struct {
  int answer;          /* depth to return */
  int calls;
  af_interval_stats seen;
  double ratio0;
  af_status fail;
} fake_ctx;

static af_status fake_decide(af_policy *p, const af_interval_stats *st, int *nd) {
  fake_ctx *f = p->ctx;
  f->calls++;
  f->seen = *st;
  f->ratio0 = st->ratio[st->L - 1];
  if (f->fail != AF_OK) return AF_FAIL(f->fail, "lua error: attempt to index a nil value");
  *nd = f->answer;
  return AF_OK;
}

static int destroyed;
static void fake_destroy(af_policy *p) { destroyed++; }

static void test_custom(void) {
  fake_ctx f = {0};
  af_policy *p;
  af_freeze_ctl *c;
  CHECK_OK(af_policy_custom("mylua", fake_decide, &f, fake_destroy, &p));
  CHECK_OK(af_freeze_ctl_create(6, NULL, p, &c));
  double s0[6] = {8, 8, 8, 8, 8, 8}, s1[6] = {4, 4, 4, 4, 4, 4};
  f.answer = 3;
  step_expect(c, 10, s0, 0, "custom I0");
  CHECK(f.calls == 0);   /* baseline interval: no call */
  step_expect(c, 20, s1, 3, "custom I1");
  CHECK(f.calls == 1 && f.seen.interval == 1 && f.seen.step == 20 && f.seen.depth == 0 &&
        f.seen.L == 6 && f.seen.max_depth == 5 && f.ratio0 == 0.5);
  /* Lower than the current depth (3): refused, depth unchanged, message names all. */
  f.answer = 2;
  CHECK(af_freeze_ctl_end_interval(c, 30, s1, s1, NULL) == AF_ERR_ARG);
  const char *e = af_last_error();
  CHECK(strstr(e, "mylua") && strstr(e, "depth 2") && strstr(e, "3..5"));
  CHECK(af_freeze_ctl_depth(c) == 3 && af_freeze_ctl_intervals(c) == 2);
  /* Above L-1: refused. */
  f.answer = 6;
  CHECK(af_freeze_ctl_end_interval(c, 30, s1, s1, NULL) == AF_ERR_ARG);
  CHECK(strstr(af_last_error(), "depth 6") && strstr(af_last_error(), "3..5"));
  f.answer = -1;
  CHECK(af_freeze_ctl_end_interval(c, 30, s1, s1, NULL) == AF_ERR_ARG);
  /* The policy's own error is propagated with the policy named. */
  f.fail = AF_ERR_BACKEND;
  CHECK(af_freeze_ctl_end_interval(c, 30, s1, s1, NULL) == AF_ERR_BACKEND);
  CHECK(strstr(af_last_error(), "policy 'mylua'") && strstr(af_last_error(), "nil value"));
  f.fail = AF_OK;
  f.answer = 5;
  step_expect(c, 30, s1, 5, "custom to max");
  /* A NaN score is a numeric error, not a decision. */
  double bad[6] = {0, 0, 0, 0, 0, NAN};
  CHECK(af_freeze_ctl_end_interval(c, 40, bad, bad, NULL) == AF_ERR_NUMERIC);
  CHECK(strstr(af_last_error(), "layer 5"));
  /* So are an infinite or negative L1 score and a bad L2 norm; a refused interval changes
   * nothing, and the next good one is decided as if it had not been offered. */
  int nh0, nh1;
  af_freeze_ctl_history(c, &nh0);
  const double bads[] = {INFINITY, -1.0, -INFINITY};
  for (int j = 0; j < 3; j++) {
    double b1[6] = {1, 1, 1, 1, 1, bads[j]};
    CHECK(af_freeze_ctl_end_interval(c, 40, b1, s1, NULL) == AF_ERR_NUMERIC);
    CHECK(strstr(af_last_error(), "layer 5") && strstr(af_last_error(), "L1"));
    CHECK(af_freeze_ctl_end_interval(c, 40, s1, b1, NULL) == AF_ERR_NUMERIC);
    CHECK(strstr(af_last_error(), "layer 5") && strstr(af_last_error(), "L2"));
  }
  af_freeze_ctl_history(c, &nh1);
  CHECK(nh1 == nh0 && af_freeze_ctl_depth(c) == 5);
  double neg0[6] = {0, 0, 0, 0, 0, -0.0};  /* -0 is a zero score, not a negative one */
  CHECK_OK(af_freeze_ctl_end_interval(c, 40, neg0, neg0, NULL));
  af_freeze_ctl_history(c, &nh1);
  CHECK(nh1 == nh0 + 1);
  af_freeze_ctl_free(c);
  af_policy_free(p);
  CHECK(destroyed == 1);

  /* Numbers from Lua: non-integer, NaN, out of range. */
  int d = -7;
  CHECK(af_policy_depth_from_double("mylua", 2.5, 1, 5, &d) == AF_ERR_ARG && d == -7);
  CHECK(strstr(af_last_error(), "mylua") && strstr(af_last_error(), "2.5") && strstr(af_last_error(), "[1, 5]"));
  CHECK(af_policy_depth_from_double("mylua", NAN, 1, 5, &d) == AF_ERR_ARG);
  CHECK(af_policy_depth_from_double("mylua", 0, 1, 5, &d) == AF_ERR_ARG);
  CHECK(af_policy_depth_from_double("mylua", 6, 1, 5, &d) == AF_ERR_ARG);
  CHECK_OK(af_policy_depth_from_double("mylua", 4.0, 1, 5, &d));
  CHECK(d == 4);
  af_policy_free(NULL);
  af_freeze_ctl_free(NULL);
}

/* Restore continues exactly where a run stopped. */
static void test_restore(void) {
  double s0[6] = {8, 8, 8, 8, 8, 8}, s1[6] = {7, 6, 4, 8, 2, 10}, s2[6] = {99, 6, 4, 6, 1, 5};
  af_policy *p;
  af_freeze_ctl *a, *b;
  CHECK_OK(af_policy_adaptive(50, -1, &p));
  CHECK_OK(af_freeze_ctl_create(6, NULL, p, &a));
  CHECK_OK(af_freeze_ctl_create(6, NULL, p, &b));
  step_expect(a, 1, s0, 0, "restore a I0");
  step_expect(a, 2, s1, 1, "restore a I1");
  CHECK_OK(af_freeze_ctl_restore(b, af_freeze_ctl_intervals(a), af_freeze_ctl_depth(a), af_freeze_ctl_prev_scores(a)));
  step_expect(a, 3, s2, 3, "restore a I2");
  step_expect(b, 3, s2, 3, "restore b I2");
  CHECK(af_freeze_ctl_restore(b, 2, 6, s0) == AF_ERR_ARG);
  CHECK(af_freeze_ctl_restore(b, 2, 1, NULL) == AF_ERR_ARG);
  af_freeze_ctl_free(a);
  af_freeze_ctl_free(b);
  af_policy_free(p);
}

/* An overflowed ratio (a previous score of 1e-310 against 1e10) is +inf; the percentile's
 * interpolation with it is NaN past the middle of its last gap, and the rule then
 * freezes nothing rather than everything. */
static void test_infinite_ratio(void) {
  af_policy *p = NULL;
  CHECK_OK(af_policy_adaptive(90, -1, &p));  /* between 0.3 and inf, past the middle: inf - inf */
  double ratio[4] = {0.1, 0.2, INFINITY, 0.3}, l1[4] = {1, 1, 1, 1};
  af_interval_stats st = {.interval = 3, .L = 4, .depth = 0, .max_depth = 3, .l1 = l1, .l2 = l1, .ratio = ratio};
  int nd = 0;
  CHECK_OK(p->decide(p, &st, &nd));
  printf("infinite ratio at percentile 90: depth %d\n", nd);
  CHECK(nd == 0);
  af_policy_free(p);
}

/* ---- the policies of issue 14: pipe, gated, guard (hand-worked, docs/algorithm.md) ---- */

/* End one interval with a validation metric and check the depth after it. */
static void val_expect(af_freeze_ctl *c, long step, const double *s, double val, int want, const char *what) {
  af_freeze_ctl_set_val_metric(c, val);
  af_freeze_decision d;
  af_status st = af_freeze_ctl_end_interval(c, step, s, s, &d);
  if (st != AF_OK) {
    af_test_failures++;
    fprintf(stderr, "%s: end_interval failed: %s\n", what, af_last_error());
    return;
  }
  if (d.depth_after != want) {
    af_test_failures++;
    fprintf(stderr, "%s: depth %d, expected %d\n", what, d.depth_after, want);
  }
}

/* PipeTransformer: ceil(L*(1-(1-a)^e)), capped at the max depth.
 *   L=12, a=0.5 (the authors' freeze/test.py): e=1: 6, e=2: 9, e=3: 10.5 -> 11, e=4: 11.25 -> 12.
 *   L=6, a=0.25: e=1: 1.5 -> 2; e=2: 6*0.4375 = 2.625 -> 3; e=3: 6*0.578125 = 3.47 -> 4;
 *   e=4: 6*0.68359375 = 4.10 -> 5; e=5: 4.58 -> 5 (cap L-1 = 5 from e=4 on anyway). */
static void test_pipe(void) {
  CHECK(af_pipe_frozen(12, 0.5, 0) == 0 && af_pipe_frozen(12, 0.5, 1) == 6 && af_pipe_frozen(12, 0.5, 2) == 9);
  CHECK(af_pipe_frozen(12, 0.5, 3) == 11 && af_pipe_frozen(12, 0.5, 4) == 12);
  CHECK(af_pipe_frozen(6, 1.0, 1) == 6);
  af_policy *p;
  CHECK(af_policy_pipe(0, &p) == AF_ERR_ARG && af_policy_pipe(1.5, &p) == AF_ERR_ARG);
  CHECK_OK(af_policy_pipe(0.25, &p));
  CHECK(!strcmp(p->name, "pipe") && !strcmp(p->knobs, "alpha=0.25") && !p->may_unfreeze);
  af_freeze_ctl *c;
  CHECK_OK(af_freeze_ctl_create(6, NULL, p, &c));
  af_freeze_ctl_set_run(c, 100, 20, 0);  /* 5 epochs of 20 steps */
  double s[6] = {1, 1, 1, 1, 1, 1};
  step_expect(c, 10, s, 0, "pipe step 10 (baseline)");
  step_expect(c, 19, s, 0, "pipe step 19 (e=0)");
  step_expect(c, 20, s, 2, "pipe step 20 (e=1)");
  step_expect(c, 39, s, 2, "pipe step 39 (e=1)");
  step_expect(c, 40, s, 3, "pipe step 40 (e=2)");
  step_expect(c, 60, s, 4, "pipe step 60 (e=3)");
  step_expect(c, 80, s, 5, "pipe step 80 (e=4)");
  step_expect(c, 100, s, 5, "pipe step 100 (e=5, capped)");
  af_freeze_ctl_free(c);
  /* --max-depth 2 caps it */
  af_freeze_opts fo = {.max_depth = 2};
  CHECK_OK(af_freeze_ctl_create(6, &fo, p, &c));
  af_freeze_ctl_set_run(c, 100, 20, 0);
  step_expect(c, 10, s, 0, "pipe capped baseline");
  step_expect(c, 40, s, 2, "pipe capped e=2");
  af_freeze_ctl_free(c);
  af_policy_free(p);
}

/* The gated rule, L = 4 (max depth 3), percentile 50, tolerance 0.02, trial 2, cooldown 2. */
static void test_gated(void) {
  af_gated_opts go;
  af_gated_defaults(&go);
  af_policy *p;
  CHECK_OK(af_policy_gated(&go, &p));
  CHECK(!strcmp(p->name, "gated") && p->may_unfreeze && p->wants_val && p->stateful);
  CHECK(!strcmp(p->knobs, "percentile=50 tolerance=0.02 trial=2 cooldown=2"));
  af_freeze_ctl *c;
  CHECK_OK(af_freeze_ctl_create(4, NULL, p, &c));
  double s8[4] = {8, 8, 8, 8};
  val_expect(c, 1, s8, 0.50, 0, "gated I0 (baseline)");
  /* I1: r = 0 0 .5 .75, pct(1.5) = .25: the rule says 2; a trial starts (base 0, best .60) */
  double s1[4] = {8, 8, 4, 2};
  val_expect(c, 2, s1, 0.60, 2, "gated I1 (freeze 0 -> 2, on trial)");
  /* I2: .59 >= .60 - .02: kept, one trial decision left; the rule is not asked */
  double s2[4] = {0, 0, 1, 1};
  val_expect(c, 3, s2, 0.59, 2, "gated I2 (kept)");
  /* I3: .57 < .58: rolled back to 0, cooldown 2 */
  val_expect(c, 4, s2, 0.57, 0, "gated I3 (rollback 2 -> 0)");
  /* I4, I5: cooldown, whatever the ratios */
  val_expect(c, 5, s8, 0.90, 0, "gated I4 (cooldown)");
  val_expect(c, 6, s8, 0.90, 0, "gated I5 (cooldown)");
  /* I6: r = 0 0 .5 .5 vs I5's scores, pct(1.5) = .25: 2; trial (base 0, best .61) */
  double s6[4] = {8, 8, 4, 4};
  val_expect(c, 7, s6, 0.61, 2, "gated I6 (freeze 0 -> 2)");
  /* I7: .70: best .70, one left. I8: .69 >= .68: accepted, and the rule is asked at once:
   * r2 = |4-4|/4 = 0, r3 = |4-8|/4 = 1 (vs I7's 4, 4), pct(0.5) = .5: 3; trial (base 2, best .69) */
  double s7[4] = {0, 0, 4, 4}, s8b[4] = {0, 0, 4, 8};
  val_expect(c, 8, s7, 0.70, 2, "gated I7 (kept, best .70)");
  val_expect(c, 9, s8b, 0.69, 3, "gated I8 (accepted, freeze 2 -> 3)");
  /* I9: .66 < .69 - .02: back to 2, not to 0 */
  val_expect(c, 10, s8b, 0.66, 2, "gated I9 (rollback 3 -> 2)");
  /* I10, I11: cooldown; I12: the rule would freeze (r3 = 1 vs .25... ) but the metric .51 is not
   * above the first boundary's .50 by .02: nothing learned, nothing frozen */
  val_expect(c, 11, s8b, 0.51, 2, "gated I10 (cooldown)");
  val_expect(c, 12, s8b, 0.51, 2, "gated I11 (cooldown)");
  double s12[4] = {0, 0, 4, 2};
  val_expect(c, 13, s12, 0.51, 2, "gated I12 (metric not above the start)");
  val_expect(c, 14, s8b, 0.53, 3, "gated I13 (r2 = 0, r3 = 3: pct 1.5, freeze 2 -> 3)");
  /* no validation metric: an error naming the policy */
  CHECK(af_freeze_ctl_end_interval(c, 15, s8, s8, NULL) == AF_ERR_ARG && strstr(af_last_error(), "gated"));
  /* a resume is refused: the trial is not in checkpoints */
  CHECK(af_freeze_ctl_restore(c, 3, 2, s8) == AF_ERR_ARG && strstr(af_last_error(), "cannot be resumed"));
  CHECK_OK(af_freeze_ctl_restore(c, 0, 0, NULL));
  af_freeze_ctl_free(c);
  af_policy_free(p);
  go.tolerance = -1;
  CHECK(af_policy_gated(&go, &p) == AF_ERR_ARG);
}

/* A policy that may not unfreeze cannot go down; one that may, not below its initial depth. */
static int script_depth[8];
static af_status scripted(af_policy *p, const af_interval_stats *st, int *nd) {
  (void)p;
  *nd = script_depth[st->interval];
  return AF_OK;
}

static int asked;
static af_status ask_count(af_policy *p, const af_interval_stats *st, int *nd) {
  (void)p;
  asked++;
  *nd = st->L - 1;  /* as deep as allowed */
  return AF_OK;
}

static void test_unfreeze_invariant(void) {
  double s[4] = {1, 1, 1, 1};
  af_policy *p;
  af_freeze_ctl *c;
  CHECK_OK(af_policy_custom("down", scripted, NULL, NULL, &p));
  int sc[4] = {0, 2, 1, 1};
  memcpy(script_depth, sc, sizeof sc);
  CHECK_OK(af_freeze_ctl_create(4, NULL, p, &c));
  step_expect(c, 1, s, 0, "down I0");
  step_expect(c, 2, s, 2, "down I1");
  CHECK(af_freeze_ctl_end_interval(c, 3, s, s, NULL) == AF_ERR_ARG && strstr(af_last_error(), "never decreases"));
  af_freeze_ctl_free(c);
  p->may_unfreeze = 1;
  p->initial_depth = 1;
  int sc2[4] = {0, 3, 1, 0};
  memcpy(script_depth, sc2, sizeof sc2);
  CHECK_OK(af_freeze_ctl_create(4, NULL, p, &c));
  step_expect(c, 1, s, 1, "unfreeze I0");
  step_expect(c, 2, s, 3, "unfreeze I1");
  val_expect(c, 3, s, NAN, 1, "unfreeze I2 (3 -> 1)");
  CHECK(af_freeze_ctl_end_interval(c, 4, s, s, NULL) == AF_ERR_ARG && strstr(af_last_error(), "allowed 1..3"));
  af_freeze_ctl_free(c);
  af_policy_free(p);
}

/* the guard's modifiers: freeze_after, max_freeze_step, freeze_when_learned */
#define GUARD(after, step, learned) ((af_guard_opts){.freeze_after = (after), .max_step = (step), .when_learned = (learned)})

/* The guard: inner is not asked before the step; then at most max_step more layers. */
static void test_guard(void) {
  double s[6] = {1, 1, 1, 1, 1, 1};
  af_policy *in, *g;
  af_freeze_ctl *c;
  CHECK_OK(af_policy_custom("deep", ask_count, NULL, NULL, &in));
  CHECK_OK(af_policy_guard(in, &GUARD(0.5, 1, 0), &g));
  CHECK(!strcmp(g->name, "deep") && !strcmp(g->knobs, "freeze_after=0.5 max_freeze_step=1"));
  CHECK_OK(af_freeze_ctl_create(6, NULL, g, &c));
  af_freeze_ctl_set_run(c, 100, 50, 10);
  asked = 0;
  step_expect(c, 10, s, 0, "guard baseline");
  step_expect(c, 49, s, 0, "guard step 49 < 50");
  CHECK(asked == 0);
  step_expect(c, 50, s, 1, "guard step 50: 0 -> 5 limited to 1");
  step_expect(c, 60, s, 2, "guard step 60: 1 -> 2");
  CHECK(asked == 2);
  af_freeze_ctl_free(c);
  af_policy_free(g);
  /* warmup: the schedule's warm-up steps (30 here); no step limit */
  CHECK_OK(af_policy_guard(in, &GUARD(-1, 0, 0), &g));
  CHECK(!strcmp(g->knobs, "freeze_after=warmup"));
  CHECK_OK(af_freeze_ctl_create(6, NULL, g, &c));
  af_freeze_ctl_set_run(c, 100, 50, 30);
  asked = 0;
  step_expect(c, 10, s, 0, "warmup baseline");
  step_expect(c, 29, s, 0, "warmup step 29");
  step_expect(c, 30, s, 5, "warmup step 30: all but the last");
  CHECK(asked == 1);
  af_freeze_ctl_free(c);
  af_policy_free(g);
  af_policy_free(in);
  /* the adaptive rule under max_freeze_step 1: p100 would freeze 4 at once (test_percentile_extremes) */
  double s0[6] = {8, 8, 8, 8, 8, 8}, s1[6] = {7, 6, 4, 8, 2, 10};
  CHECK_OK(af_policy_adaptive(100, -1, &in));
  CHECK_OK(af_policy_guard(in, &GUARD(0, 1, 0), &g));
  CHECK(!strcmp(g->knobs, "percentile=100 max_freeze_step=1") && !strcmp(g->name, "adaptive"));
  CHECK_OK(af_freeze_ctl_create(6, NULL, g, &c));
  step_expect(c, 1, s0, 0, "one step I0");
  step_expect(c, 2, s1, 1, "one step I1 (4 limited to 1)");
  af_freeze_ctl_free(c);
  af_policy_free(g);
  af_policy_free(in);
  /* static starts frozen: no freeze_after */
  CHECK_OK(af_policy_static(2, &in));
  CHECK(af_policy_guard(in, &GUARD(0.5, 0, 0), &g) == AF_ERR_ARG);
  CHECK_OK(af_policy_guard(in, &GUARD(0, 1, 0), &g));
  CHECK(g->initial_depth == 2);
  af_policy_free(g);
  af_policy_free(in);
}

/* The label prior's training loss, worked by hand:
 *   {0,0,0,1}, 2 classes: -(3/4 ln 3/4 + 1/4 ln 1/4) = ln 4 - (3/4) ln 3;
 *   {0,1,2,2,5}, 3 classes: 5 is no label (loss 0, still a row), so p = (1/4, 1/4, 1/2) over the
 *     4 labelled rows and the mean over 5 rows is (ln 4 + ln 4 + 2 ln 2)/5 = (6/5) ln 2;
 *   {0,1,0,1}: ln 2; {1,1,1}: 0 (nothing to beat);
 *   regression {1,2,3,6}: mean 3, variance (4+1+0+9)/4 = 3.5; {2.5}: 0; no rows: NaN. */
static void test_prior_loss(void) {
  const float a[] = {0, 0, 0, 1}, b[] = {0, 1, 2, 2, 5}, c[] = {0, 1, 0, 1}, d[] = {1, 1, 1}, r[] = {1, 2, 3, 6},
              one[] = {2.5f};
  struct { const float *t; size_t n; int nl; double want; const char *what; } cases[] = {
      {a, 4, 2, log(4.0) - 0.75 * log(3.0), "3:1"},
      {b, 5, 3, 1.2 * log(2.0), "1:1:2 and a row without a label"},
      {c, 4, 2, log(2.0), "balanced"},
      {d, 3, 2, 0, "one class"},
      {r, 4, 1, 3.5, "regression"},
      {one, 1, 1, 0, "regression, one row"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    double got = af_prior_loss(cases[i].t, cases[i].n, cases[i].nl);
    if (!(fabs(got - cases[i].want) <= 1e-15 + 1e-14 * fabs(cases[i].want))) {
      af_test_failures++;
      fprintf(stderr, "prior loss %s: %.17g, expected %.17g\n", cases[i].what, got, cases[i].want);
    }
  }
  CHECK(isnan(af_prior_loss(a, 0, 2)) && isnan(af_prior_loss(r, 0, 1)));
}

/* End one interval after the given step losses. */
static void loss_expect(af_freeze_ctl *c, long step, const double *s, const double *loss, int n, int want,
                        const char *what) {
  for (int i = 0; i < n; i++) af_freeze_ctl_add_loss(c, loss[i]);
  step_expect(c, step, s, want, what);
}

/* freeze_when_learned = 0.25 with a prior loss of 1: the threshold is 0.75 exactly. Inner
 * ("deep") wants all but the last layer, one more per decision here. The interval's mean
 * decides, not its last step; 0.75 itself is not below; once below, the guard stays open. */
static void test_learned_guard(void) {
  double s[6] = {1, 1, 1, 1, 1, 1};
  af_policy *in, *g;
  af_freeze_ctl *c;
  CHECK_OK(af_policy_custom("deep", ask_count, NULL, NULL, &in));
  CHECK_OK(af_policy_guard(in, &GUARD(0, 1, 0.25), &g));
  CHECK(!strcmp(g->knobs, "max_freeze_step=1 freeze_when_learned=0.25"));
  CHECK_OK(af_freeze_ctl_create(6, NULL, g, &c));
  af_freeze_ctl_set_run(c, 100, 50, 0);
  af_freeze_ctl_set_prior_loss(c, 1.0);
  CHECK(af_freeze_ctl_prior_loss(c) == 1.0);
  asked = 0;
  loss_expect(c, 10, s, (double[]){0.9, 1.0}, 2, 0, "learned I0: baseline (no decision)");
  loss_expect(c, 20, s, (double[]){0.9, 0.6}, 2, 0, "learned I1: mean 0.75, not below");
  loss_expect(c, 30, s, (double[]){0.5, 1.2}, 2, 0, "learned I2: mean 0.85");
  CHECK(asked == 0);
  loss_expect(c, 40, s, (double[]){0.9, 0.5}, 2, 1, "learned I3: mean 0.7 < 0.75 (last step 0.5, first 0.9)");
  loss_expect(c, 50, s, (double[]){2.0, 2.0}, 2, 2, "learned I4: mean 2, latched");
  loss_expect(c, 60, s, NULL, 0, 3, "learned I5: no losses, latched");
  CHECK(asked == 3);
  af_freeze_ctl_free(c);
  /* the first boundary counts too, though it decides nothing: a mean of 0.5 there opens the guard */
  CHECK_OK(af_freeze_ctl_create(6, NULL, g, &c));
  af_freeze_ctl_set_prior_loss(c, 1.0);
  loss_expect(c, 10, s, (double[]){0.5}, 1, 0, "learned at the baseline I0");
  loss_expect(c, 20, s, (double[]){1.0}, 1, 1, "learned at the baseline I1: mean 1, latched");
  af_freeze_ctl_free(c);
  /* no prior loss told: the guard cannot decide, and says so */
  CHECK_OK(af_freeze_ctl_create(6, NULL, g, &c));
  loss_expect(c, 10, s, (double[]){0.5}, 1, 0, "no prior I0");
  af_freeze_ctl_add_loss(c, 0.1);
  CHECK(af_freeze_ctl_end_interval(c, 20, s, s, NULL) == AF_ERR_ARG && strstr(af_last_error(), "'deep'") &&
        strstr(af_last_error(), "freeze_when_learned"));
  af_freeze_ctl_free(c);
  af_policy_free(g);
  af_policy_free(in);
  /* rollbacks pass: a policy that may unfreeze, scripted 0, 3, 3, 3, 1 */
  CHECK_OK(af_policy_custom("down", scripted, NULL, NULL, &in));
  in->may_unfreeze = 1;
  int sc[8] = {0, 3, 3, 3, 1, 1, 1, 1};
  memcpy(script_depth, sc, sizeof sc);
  CHECK_OK(af_policy_guard(in, &GUARD(0, 0, 0.25), &g));
  CHECK(g->may_unfreeze);
  CHECK_OK(af_freeze_ctl_create(6, NULL, g, &c));
  af_freeze_ctl_set_prior_loss(c, 1.0);
  loss_expect(c, 1, s, (double[]){1}, 1, 0, "rollback I0");
  loss_expect(c, 2, s, (double[]){1}, 1, 0, "rollback I1: 3 held (mean 1)");
  loss_expect(c, 3, s, (double[]){0.5}, 1, 3, "rollback I2: learned, 3");
  loss_expect(c, 4, s, (double[]){1}, 1, 3, "rollback I3: 3");
  af_freeze_ctl_add_loss(c, 1);
  af_freeze_decision d;
  CHECK_OK(af_freeze_ctl_end_interval(c, 5, s, s, &d));
  CHECK(d.depth_before == 3 && d.depth_after == 1);  /* the rollback, though the loss is back at the prior's */
  af_freeze_ctl_free(c);
  af_policy_free(g);
  af_policy_free(in);
  /* the modifiers together, in order; refused values; a policy that starts frozen cannot wait */
  CHECK_OK(af_policy_adaptive(50, -1, &in));
  CHECK_OK(af_policy_guard(in, &GUARD(0.5, 1, 0.1), &g));
  CHECK(g && !strcmp(g->knobs, "percentile=50 freeze_after=0.5 max_freeze_step=1 freeze_when_learned=0.1"));
  af_policy_free(g);
  CHECK(af_policy_guard(in, &GUARD(0, 0, 1), &g) == AF_ERR_ARG && strstr(af_last_error(), "[0, 1), got 1"));
  CHECK(af_policy_guard(in, &GUARD(0, 0, -0.1), &g) == AF_ERR_ARG);
  CHECK(af_policy_guard(in, &GUARD(0, 0, NAN), &g) == AF_ERR_ARG);
  af_policy_free(in);
  CHECK_OK(af_policy_static(2, &in));
  CHECK(af_policy_guard(in, &GUARD(0, 0, 0.1), &g) == AF_ERR_ARG && strstr(af_last_error(), "freeze_when_learned"));
  af_policy_free(in);
  /* in a spec */
  CHECK_OK(af_policy_from_spec("t", "pipe alpha=0.5 freeze_when_learned=0.2", &g));
  CHECK(g && !strcmp(g->knobs, "pipe alpha=0.5 freeze_when_learned=0.2") && !g->stateful);
  af_policy_free(g);
}

/* FreezeOut behind the learned guard, the wait ending at the run's last boundary (step 100 of
 * 100): no run is left for its schedule, so nothing freezes (it used to stop the run with "the
 * run did not say its length", its clock shifted to a length of 0). */
static void test_guard_ends_last(void) {
  double s[6] = {1, 1, 1, 1, 1, 1};
  af_policy *in, *g;
  af_freeze_ctl *c;
  CHECK_OK(af_policy_freezeout(NULL, &in));
  CHECK_OK(af_policy_guard(in, &GUARD(0, 0, 0.25), &g));
  CHECK_OK(af_freeze_ctl_create(6, NULL, g, &c));
  af_freeze_ctl_set_run(c, 100, 50, 0);
  af_freeze_ctl_set_prior_loss(c, 1.0);
  loss_expect(c, 50, s, (double[]){0.9}, 1, 0, "guarded freezeout: t 0.5, nothing learned");
  loss_expect(c, 100, s, (double[]){0.5}, 1, 0, "guarded freezeout: learned at the last boundary");
  CHECK(af_freeze_ctl_wait_end(c) == 100);
  af_freeze_ctl_free(c);
  af_policy_free(g);
  af_policy_free(in);
}

/* A resume restores the interval's losses so far and the smallest mean: a controller restored
 * mid-interval (after a step of 0.3) ends the interval at mean (0.3+0.9+0.9)/3 = 0.7 < 0.75,
 * where the 0.9s alone would hold; one restored after that boundary stays latched through a
 * mean of 0.95. */
static void test_learned_restore(void) {
  double s[6] = {1, 1, 1, 1, 1, 1};
  af_policy *in, *g;
  af_freeze_ctl *a, *b, *c;
  CHECK_OK(af_policy_custom("deep", ask_count, NULL, NULL, &in));
  CHECK_OK(af_policy_guard(in, &GUARD(0, 1, 0.25), &g));
  CHECK_OK(af_freeze_ctl_create(6, NULL, g, &a));
  CHECK_OK(af_freeze_ctl_create(6, NULL, g, &b));
  CHECK_OK(af_freeze_ctl_create(6, NULL, g, &c));
  for (af_freeze_ctl *x = a; x; x = x == a ? b : x == b ? c : NULL) af_freeze_ctl_set_prior_loss(x, 1.0);
  af_freeze_loss_state ls;
  af_freeze_ctl_loss_state(a, &ls);
  CHECK(ls.sum == 0 && ls.steps == 0 && isinf(ls.min));
  loss_expect(a, 3, s, (double[]){1, 1, 1}, 3, 0, "restore-loss a I0");
  af_freeze_ctl_add_loss(a, 0.3);
  af_freeze_ctl_loss_state(a, &ls);
  CHECK(ls.sum == 0.3 && ls.steps == 1 && ls.min == 1);
  CHECK_OK(af_freeze_ctl_restore(b, af_freeze_ctl_intervals(a), af_freeze_ctl_depth(a), af_freeze_ctl_prev_scores(a)));
  af_freeze_ctl_restore_loss(b, &ls);
  loss_expect(a, 6, s, (double[]){0.9, 0.9}, 2, 1, "restore-loss a I1: mean 0.7");
  loss_expect(b, 6, s, (double[]){0.9, 0.9}, 2, 1, "restore-loss b I1: restored mid-interval, mean 0.7");
  af_freeze_ctl_loss_state(a, &ls);
  CHECK(ls.sum == 0 && ls.steps == 0 && fabs(ls.min - 0.7) < 1e-15);
  CHECK_OK(af_freeze_ctl_restore(c, af_freeze_ctl_intervals(a), af_freeze_ctl_depth(a), af_freeze_ctl_prev_scores(a)));
  af_freeze_ctl_restore_loss(c, &ls);
  loss_expect(a, 9, s, (double[]){0.95}, 1, 2, "restore-loss a I2: latched");
  loss_expect(c, 9, s, (double[]){0.95}, 1, 2, "restore-loss c I2: restored latched");
  af_freeze_ctl_free(a);
  af_freeze_ctl_free(b);
  af_freeze_ctl_free(c);
  af_policy_free(g);
  af_policy_free(in);
}

/* FreezeOut, L = 6, t0 = 0.5 linear: t_i = 0.5 + 0.5*i/5 = 0.5, 0.6, 0.7, 0.8, 0.9 (layer 5: never) */
static void test_freezeout(void) {
  af_policy *p;
  af_freezeout_opts o = {.t0 = 0};
  CHECK(af_policy_freezeout(&o, &p) == AF_ERR_ARG && strstr(af_last_error(), "(0, 1], got 0"));
  o.t0 = 1.5;
  CHECK(af_policy_freezeout(&o, &p) == AF_ERR_ARG);
  CHECK_OK(af_policy_freezeout(NULL, &p));
  CHECK(!strcmp(p->name, "freezeout") && !strcmp(p->knobs, "t0=0.5 schedule=linear scaled=false") && p->lr_scale);
  af_freeze_ctl *c;
  CHECK_OK(af_freeze_ctl_create(6, NULL, p, &c));
  af_freeze_ctl_set_run(c, 100, 50, 10);
  double s[6] = {1, 1, 1, 1, 1, 1};
  step_expect(c, 10, s, 0, "freezeout baseline");
  step_expect(c, 49, s, 0, "freezeout t 0.49 < t_0");
  step_expect(c, 50, s, 1, "freezeout t 0.5 = t_0");
  step_expect(c, 65, s, 2, "freezeout t 0.65: layers 0-1");
  step_expect(c, 85, s, 4, "freezeout t 0.85: layers 0-3");
  step_expect(c, 100, s, 5, "freezeout t 1: all but the last");
  af_freeze_ctl_free(c);
  af_freeze_opts cap = {.max_depth = 2};
  CHECK_OK(af_freeze_ctl_create(6, &cap, p, &c));
  af_freeze_ctl_set_run(c, 100, 50, 10);
  step_expect(c, 10, s, 0, "freezeout capped baseline");
  step_expect(c, 85, s, 2, "freezeout capped at --max-depth 2");
  af_freeze_ctl_free(c);
  /* factors at step 25 of 100 (t = 0.25): layer 0 cos(pi/2) -> 0.5, layer 4 (t_4 = 0.9)
   * 0.5*(1 + cos(pi*0.25/0.9)); at step 50 layer 0 is at 0; the last layer and head 1 */
  double f[8] = {1, 1, 1, 1, 1, 1, 1, 1}, want4 = 0.5 * (1 + cos(3.14159265358979323846 * 0.25 / 0.9));
  p->lr_scale(p, 25, 100, 6, f);
  CHECK(fabs(f[0] - 0.5) < 1e-15 && fabs(f[1] - 0.5) < 1e-15 && fabs(f[5] - want4) < 1e-15 && f[6] == 1 && f[7] == 1);
  for (int k = 0; k < 8; k++) f[k] = 2;  /* factors multiply what is there */
  p->lr_scale(p, 50, 100, 6, f);
  CHECK(f[0] == 0 && f[1] == 0 && f[2] > 0 && f[6] == 2 && f[7] == 2);
  af_policy_free(p);
  /* cubic, t0 = 0.125 (cbrt 0.5), L = 3: t_0 = 0.125, t_1 = 0.75^3 = 0.421875; scaled: / t_i */
  o = (af_freezeout_opts){.t0 = 0.125, .cubic = 1, .scaled = 1};
  CHECK(fabs(af_freezeout_time(&o, 0, 3) - 0.125) < 1e-15 && fabs(af_freezeout_time(&o, 1, 3) - 0.421875) < 1e-15);
  CHECK(af_freezeout_time(&o, 2, 3) == 1);
  CHECK_OK(af_policy_freezeout(&o, &p));
  CHECK(!strcmp(p->knobs, "t0=0.125 schedule=cubic scaled=true"));
  double g[5] = {1, 1, 1, 1, 1};
  p->lr_scale(p, 0, 100, 3, g);  /* t = 0: cos 0 = 1, so 1/t_i */
  CHECK(fabs(g[0] - 8) < 1e-12 && fabs(g[1] - 8) < 1e-12 && fabs(g[2] - 1 / 0.421875) < 1e-12 && g[3] == 1);
  af_policy_free(p);
}

/* presets and specs: "auto" builds as its line says; keep caps at L - keep; the guard's
 * modifiers apply; FreezeOut's factors pass through the guard; bad specs name themselves */
static void test_presets(void) {
  const char *spec = af_policy_preset_spec("auto");  /* whatever auto is defined as: it must build */
  CHECK(spec != NULL);
  if (!spec) return;
  CHECK(af_policy_preset_spec("none") == NULL);
  af_policy *p;
  CHECK_OK(af_policy_preset("auto", &p));
  CHECK(p && !strcmp(p->name, "auto") && !strcmp(p->knobs, spec) && !p->lr_scale && !p->stateful);
  af_policy_free(p);
  CHECK(af_policy_preset("fast", &p) == AF_ERR_ARG);
  /* s0 -> s1: ratios 0.125 0.25 0.5 0 0.75 0.25; percentile 100 = 0.75 freezes layers 0-3 */
  double s0[6] = {8, 8, 8, 8, 8, 8}, s1[6] = {7, 6, 4, 8, 2, 10};
  struct { const char *spec; long step; int want; const char *what; } cases[] = {
      {"adaptive percentile=100", 2, 4, "no cap: 4"},
      {"adaptive percentile=100 keep=4", 2, 2, "keep=4 of 6: at most 2"},
      {"adaptive percentile=100 keep=2 freeze_after=warmup max_freeze_step=1", 29, 0, "in the warm-up: 0"},
      {"adaptive percentile=100 keep=2 freeze_after=warmup max_freeze_step=1", 30, 1, "after it, one step: 1"},
      {"gated percentile=100 keep=5", 2, 0, "gated: no metric rise, nothing"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CHECK_OK(af_policy_from_spec("t", cases[i].spec, &p));
    if (!p) continue;
    CHECK(!strcmp(p->knobs, cases[i].spec));
    af_freeze_ctl *c;
    CHECK_OK(af_freeze_ctl_create(6, NULL, p, &c));
    af_freeze_ctl_set_run(c, 100, 50, 30);
    af_freeze_ctl_set_val_metric(c, 0.5);
    step_expect(c, 1, s0, 0, cases[i].what);
    af_freeze_ctl_set_val_metric(c, 0.5);
    step_expect(c, cases[i].step, s1, cases[i].want, cases[i].what);
    af_freeze_ctl_free(c);
    af_policy_free(p);
  }
  /* FreezeOut under a guard that waits (freeze_after 0.6 of 100 steps, L = 3: t_0 0.5, t_1
   * 0.75): depth 0 while it waits; the controller records the boundary (step 60) where the wait
   * ends, and from there FreezeOut's clock runs over the 40 steps left: step 80 is t = 0.5
   * (layer 0 freezes), step 90 t = 0.75. The guard's factors are FreezeOut's own (the run
   * shifts their clock by the recorded step: train_lr.c). A restored controller keeps the step. */
  CHECK_OK(af_policy_from_spec("fo", "freezeout t0=0.5 freeze_after=0.6", &p));
  if (p) {
    double f[5] = {1, 1, 1, 1, 1};
    CHECK(p->lr_scale != NULL && p->waits);
    if (p->lr_scale) p->lr_scale(p, 25, 100, 3, f);
    CHECK(fabs(f[0] - 0.5) < 1e-15 && f[3] == 1);
    af_freeze_ctl *c, *c2;
    double s3[3] = {1, 1, 1};
    CHECK_OK(af_freeze_ctl_create(3, NULL, p, &c));
    af_freeze_ctl_set_run(c, 100, 50, 0);
    CHECK(af_freeze_ctl_wait_end(c) == -1);
    step_expect(c, 10, s3, 0, "guarded freezeout baseline");
    step_expect(c, 50, s3, 0, "guarded freezeout: waiting at t 0.5");
    CHECK(af_freeze_ctl_wait_end(c) == -1);
    step_expect(c, 60, s3, 0, "guarded freezeout: the wait ends, its clock at 0");
    CHECK(af_freeze_ctl_wait_end(c) == 60);
    step_expect(c, 79, s3, 0, "guarded freezeout: t 0.475 of the rest");
    step_expect(c, 80, s3, 1, "guarded freezeout: t 0.5 of the rest = t_0");
    step_expect(c, 90, s3, 2, "guarded freezeout: t 0.75 of the rest = t_1");
    CHECK_OK(af_freeze_ctl_create(3, NULL, p, &c2));  /* a second run of the same policy starts waiting */
    CHECK(af_freeze_ctl_wait_end(c2) == -1);
    af_freeze_ctl_restore_wait_end(c2, 60);
    CHECK(af_freeze_ctl_wait_end(c2) == 60);
    af_freeze_ctl_free(c);
    af_freeze_ctl_free(c2);
    af_policy_free(p);
  }
  /* a guard without a wait (max_freeze_step only): nothing recorded, nothing to restore */
  CHECK_OK(af_policy_from_spec("fo", "freezeout t0=0.5 max_freeze_step=1", &p));
  if (p) {
    af_freeze_ctl *c;
    CHECK(!p->waits);
    CHECK_OK(af_freeze_ctl_create(3, NULL, p, &c));
    af_freeze_ctl_restore_wait_end(c, 60);
    CHECK(af_freeze_ctl_wait_end(c) == 0);
    af_freeze_ctl_free(c);
    af_policy_free(p);
  }
  static const char *const bad[][2] = {
      {"", "expected a base policy first"}, {"static keep=1", "expected a base policy first"},
      {"adaptive alpha=0.5", "'alpha' is not a key=value that adaptive takes"},
      {"adaptive percentile", "'percentile' is not a key=value"},
      {"adaptive percentile=abc", "percentile cannot be 'abc'"}, {"adaptive keep=0", "keep cannot be '0'"},
      {"adaptive percentile=150", "percentile must be in [0, 100]"},
      {"freezeout schedule=squared", "schedule cannot be 'squared'"},
      {"pipe freeze_after=1.5", "freeze_after cannot be '1.5'"},
      {"adaptive freeze_when_learned=1", "freeze_when_learned cannot be '1'"},
      {"adaptive freeze_when_learned=-0.1", "freeze_when_learned cannot be '-0.1'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    p = NULL;
    af_status st = af_policy_from_spec("x", bad[i][0], &p);
    char want[256];
    snprintf(want, sizeof want, "policy 'x' (%s): ", bad[i][0]);
    if (st != AF_ERR_ARG || p || !strstr(af_last_error(), want) || !strstr(af_last_error(), bad[i][1])) {
      af_test_failures++;
      fprintf(stderr, "spec '%s': status %d, message '%s'; expected '%s...%s'\n", bad[i][0], (int)st, af_last_error(),
              want, bad[i][1]);
    }
  }
}

int main(void) {
  af_set_quiet(1);
  test_infinite_ratio();
  test_percentile();
  test_adaptive_sequence();
  test_percentile_extremes();
  test_max_depth();
  test_zero_norm();
  test_signed_ratio();
  test_static_none();
  test_custom();
  test_restore();
  test_pipe();
  test_gated();
  test_unfreeze_invariant();
  test_guard();
  test_prior_loss();
  test_learned_guard();
  test_guard_ends_last();
  test_learned_restore();
  test_freezeout();
  test_presets();
  return af_test_done("test_freeze_rule");
}
