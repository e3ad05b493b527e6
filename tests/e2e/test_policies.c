/* The policies of issue 14 in whole training runs of the tiny fixture model on the "you" task
 * (tests/testutil.h: 320 training rows, 20 steps an epoch, 6 epochs = 120 steps, 3 layers,
 * so the max depth is 2). Each recorded depth is checked against an independent replay of
 * the rule from what the results file (or a recording wrapper) holds:
 *   pipe      depth after boundary k = max(depth before, min(ceil(3*(1-(1-a)^e)), 2)), e the
 *             epochs done at the boundary's step;
 *   guard     --freeze-after 0.3, and warmup with a 30% warm-up (36 steps), over the adaptive
 *             rule with --max-freeze-step 1: no change before step 36, then the adaptive rule
 *             (replayed from /intervals/ratio) limited to one more layer;
 *   learned   --freeze-when-learned 0.1 over pipe: the means of each interval's /steps losses
 *             against 0.9 x /config@prior_loss (ln 2 here) say where the guard opens; no depth
 *             changes before, pipe's replay from then on, so the first freeze is at the first
 *             boundary with a mean below; stopped 5 and 8 steps into that interval, each
 *             checkpoint holds the interval's losses so far (sum, count, smallest mean) bit for
 *             bit, and the resumed run equals the uninterrupted one;
 *   gated     a wrapper records the validation metric and ratios the policy saw; the gated
 *             rule replayed on them gives the recorded depths;
 *   rollback  a scripted policy that unfreezes (0,2,2,1,2,0,...), run with the memory cache
 *             and without: the same losses bit for bit (the cache recomputes rows stored
 *             deeper than the new depth), the depths as scripted, sane cache counts;
 *   freezeout t_i = t0 + (1-t0)*i/(L-1) (cubic: (c + (1-c)*i/(L-1))^3, c = cbrt(t0)); depth after a
 *             boundary = the layers i < L-1 with step/T >= t_i; the learning-rate factors of
 *             every step (0.5*(1+cos(pi*t/t_i)), /t_i when scaled, 0 past t_i; embeddings as layer 0;
 *             last layer and head 1) from the policy, and as a run hands them over with
 *             --layer-lr-decay 0.8 (X^(L+1), X^(L-l), 1 before the policy's); factors of 0
 *             reach the optimizer (no evaluation changes); a run stopped at step 50 and resumed
 *             equals the uninterrupted one bit for bit;
 *   auto      --policy auto records the preset's name and line, and runs as the policy built
 *             from that line (the same losses and depths); while the line is the one it was
 *             written for, its depths replayed as adaptive (percentile 50, at least 2 layers
 *             train: depth <= 1 here), no freezing in the warm-up nor before the learned
 *             replay above opens (F = 0.1), one layer per decision;
 *   safety    every built-in policy with its default knobs, and each one that fails here again
 *             with --freeze-when-learned 0.1, ends clearly above the majority class (0.5) where
 *             full fine-tuning does, or is printed as a known failure (test_safety says why). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/results/results_read.h"
#include "core/run/train.h"
#include "tests/testutil.h"

enum { L = 3, T = 120, EPOCH = 20 };
static char g_model[4200], g_data[4200];

typedef struct {
  double *step, *before, *after, *ratio;
  size_t n;
} intervals;

static int read_intervals(const char *out, intervals *iv) {
  size_t n1 = 0, n2 = 0, n3 = 0, n4 = 0;
  iv->step = af_test_read_col(out, "intervals/step", &n1);
  iv->before = af_test_read_col(out, "intervals/depth_before", &n2);
  iv->after = af_test_read_col(out, "intervals/depth_after", &n3);
  iv->ratio = af_test_read_flat(out, "intervals/ratio", &n4);
  iv->n = n1;
  int ok = iv->step && iv->before && iv->after && iv->ratio && n2 == n1 && n3 == n1 && n4 == n1 * L && n1 > 0;
  CHECK(ok);
  return ok;
}

static void free_intervals(intervals *iv) {
  free(iv->step);
  free(iv->before);
  free(iv->after);
  free(iv->ratio);
  memset(iv, 0, sizeof *iv);
}

static void knobs_are(const char *out, const char *want) {
  af_results_reader *rr = NULL;
  CHECK_OK(af_results_open_read(out, &rr));
  if (!rr) return;
  af_attr *at = NULL;
  int na = 0;
  CHECK_OK(af_results_read_attrs(rr, "config", &at, &na));
  const af_attr *k = af_results_find_attr(at, na, "policy_knobs");
  if (!k || k->type != AF_ATTR_STR || strcmp(k->s, want)) {
    af_test_failures++;
    fprintf(stderr, "%s: policy_knobs '%s', expected '%s'\n", out, k && k->s ? k->s : "(none)", want);
  }
  af_results_free_attrs(at, na);
  af_results_close_read(&rr);
}

/* a number from /config (NAN when absent) */
static double config_number(const char *out, const char *key) {
  af_results_reader *rr = NULL;
  double v = NAN;
  if (af_results_open_read(out, &rr) != AF_OK) return v;
  af_attr *at = NULL;
  int na = 0;
  if (af_results_read_attrs(rr, "config", &at, &na) == AF_OK) {
    const af_attr *a = af_results_find_attr(at, na, key);
    if (a && (a->type == AF_ATTR_DOUBLE || a->type == AF_ATTR_INT)) v = a->d;
  }
  af_results_free_attrs(at, na);
  af_results_close_read(&rr);
  return v;
}

/* --freeze-when-learned F, replayed from the file alone (docs/algorithm.md): the mean of the
 * /steps losses of each interval (steps after the previous boundary up to this one, summed in
 * step order), and latched[k] = 1 from the first boundary where such a mean is below
 * (1 - F) x /config@prior_loss on. mean[k] too; NULL arrays on a read failure. */
typedef struct {
  int *latched;
  double *mean, threshold;
  size_t n;
} learned_replay;

static int replay_learned(const char *out, const intervals *iv, double F, learned_replay *lr) {
  size_t ns = 0, nl = 0;
  double *step = af_test_read_col(out, "steps/step", &ns), *loss = af_test_read_col(out, "steps/loss", &nl);
  double prior = config_number(out, "prior_loss");
  lr->n = iv->n;
  lr->latched = calloc(iv->n, sizeof *lr->latched);
  lr->mean = calloc(iv->n, sizeof *lr->mean);
  lr->threshold = (1.0 - F) * prior;
  int ok = step && loss && ns == nl && lr->latched && lr->mean && !isnan(prior);
  CHECK(ok);
  double low = INFINITY;
  for (size_t k = 0, i = 0; ok && k < iv->n; k++) {
    double sum = 0;
    long cnt = 0;
    for (; i < ns && step[i] <= iv->step[k]; i++) sum += loss[i], cnt++;
    lr->mean[k] = cnt ? sum / (double)cnt : NAN;
    if (lr->mean[k] < low) low = lr->mean[k];
    lr->latched[k] = low < lr->threshold;
  }
  free(step);
  free(loss);
  return ok;
}

static void free_learned(learned_replay *lr) {
  free(lr->latched);
  free(lr->mean);
  memset(lr, 0, sizeof *lr);
}

/* the adaptive rule, written again from docs/algorithm.md: numpy's linear percentile of the
 * defined ratios of layers F..L-1, then the first layer from F up at or above it (or NaN) */
static int replay_adaptive(int F, const double *r, double pct_p, int cap) {
  double v[L];
  int n = 0;
  for (int l = F; l < L; l++)
    if (!isnan(r[l])) v[n++] = r[l];
  if (F >= cap || n == 0) return F;
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
      double x = v[j];
      v[j] = v[j - 1];
      v[j - 1] = x;
    }
  double pos = (n - 1) * pct_p / 100, t;
  int i = (int)floor(pos);
  if (i >= n - 1) t = v[n - 1];
  else {
    double f = pos - i, a = v[i], b = v[i + 1];
    t = f >= 0.5 ? b - (b - a) * (1 - f) : a + (b - a) * f;
  }
  int l = F;
  while (l < L && !isnan(r[l]) && r[l] < t) l++;
  return l < cap ? l : cap;
}

static af_status run(af_train_opts *o, af_train_summary *sum) {
  af_status s = af_train(o, sum);
  if (s != AF_OK) {
    af_test_failures++;
    fprintf(stderr, "%s: af_train failed: %s\n", o->out, af_last_error());
  }
  return s;
}

/* ---- pipe ---- */

/* the depth pipe (alpha a) sets at a boundary after `step` from depth F */
static int replay_pipe(int F, double step, double a) {
  long e = (long)step / EPOCH;
  int want = (int)ceil(L * (1 - pow(1 - a, (double)e)) - 1e-9);
  if (want > L - 1) want = L - 1;
  return want < F ? F : want;  /* never lower */
}

static void test_pipe(const char *tmp) {
  char out[4300];
  snprintf(out, sizeof out, "%s/pipe.h5", tmp);
  af_train_opts o;
  af_train_summary sum;
  af_test_tiny_train_opts(&o, g_model, g_data, out, NULL);
  o.policy_kind = AF_POLICY_PIPE;
  o.alpha = 0.25;
  o.intervals = 12;
  o.freeze_when_learned = 0;  /* the published schedule, without the default guard */
  if (run(&o, &sum) != AF_OK) return;
  knobs_are(out, "alpha=0.25");
  intervals iv;
  if (!read_intervals(out, &iv)) return;
  int worst = 0;
  for (size_t k = 0; k < iv.n; k++) {
    long e = (long)iv.step[k] / EPOCH;
    int want = replay_pipe((int)iv.before[k], iv.step[k], 0.25);
    if (k == 0) want = (int)iv.before[k];  /* baseline */
    if ((int)iv.after[k] != want) {
      worst++;
      fprintf(stderr, "pipe: boundary %zu (step %.0f, epoch %ld): depth %.0f, replay %d\n", k, iv.step[k], e,
              iv.after[k], want);
    }
  }
  printf("pipe: %zu boundaries, final depth %d, %d differ from the replay\n", iv.n, sum.final_depth, worst);
  CHECK(worst == 0 && sum.final_depth == 2);
  free_intervals(&iv);
}

/* ---- guard over adaptive ---- */
static void test_guard(const char *tmp) {
  for (int variant = 0; variant < 2; variant++) {
    char out[4300];
    snprintf(out, sizeof out, "%s/guard%d.h5", tmp, variant);
    af_train_opts o;
    af_train_summary sum;
    af_test_tiny_train_opts(&o, g_model, g_data, out, NULL);
    o.policy_kind = AF_POLICY_ADAPTIVE;
    o.percentile = 100;  /* eager: the guard and the step limit are what hold it back */
    o.intervals = 12;
    o.max_freeze_step = 1;
    if (variant == 0) o.freeze_after = 0.3;
    else {
      o.freeze_after = -1;       /* warmup */
      o.optim.warmup_frac = 0.3f; /* hf recipe: 36 warm-up steps */
    }
    if (run(&o, &sum) != AF_OK) continue;
    knobs_are(out, variant ? "percentile=100 freeze_after=warmup max_freeze_step=1"
                           : "percentile=100 freeze_after=0.3 max_freeze_step=1");
    intervals iv;
    if (!read_intervals(out, &iv)) continue;
    int bad = 0, moved = 0;
    for (size_t k = 0; k < iv.n; k++) {
      int F = (int)iv.before[k], want = F;
      if (k > 0 && iv.step[k] >= 36) {
        want = replay_adaptive(F, iv.ratio + k * L, 100, L - 1);
        if (want > F + 1) want = F + 1;
      }
      moved += want != F;
      if ((int)iv.after[k] != want) {
        bad++;
        fprintf(stderr, "guard %d: boundary %zu (step %.0f): depth %.0f, replay %d\n", variant, k, iv.step[k],
                iv.after[k], want);
      }
      CHECK(iv.after[k] - iv.before[k] <= 1 && (iv.step[k] >= 36 || iv.after[k] == 0));
    }
    printf("guard %s: %zu boundaries, %d freezes, final depth %d, %d differ from the replay\n",
           variant ? "warmup" : "0.3", iv.n, moved, sum.final_depth, bad);
    CHECK(bad == 0 && moved > 0);
    free_intervals(&iv);
  }
}

/* ---- freeze_when_learned over pipe ---- */

/* the checkpoint's loss state against the /steps losses of the uninterrupted run u: the sum and
 * count of the steps after boundary `last` (0: none) up to `stop`, bit for bit, and the
 * smallest interval mean at the boundaries up to `last` */
static void ckpt_loss_is(const char *ckdir, const double *loss, long last, long stop, double low, const char *what) {
  char buf[128];
  double sum = 0;
  for (long i = last; i < stop; i++) sum += loss[i];
  double got_sum = strtod(af_test_st_meta(ckdir, "last.safetensors", "interval_loss_sum", buf, sizeof buf), NULL);
  long got_n = strtol(af_test_st_meta(ckdir, "last.safetensors", "interval_loss_steps", buf, sizeof buf), NULL, 10);
  double got_min = strtod(af_test_st_meta(ckdir, "last.safetensors", "loss_min", buf, sizeof buf), NULL);
  printf("%s: checkpoint at step %ld holds %ld steps' losses, sum %.17g (replay %.17g), smallest mean %.6f\n", what,
         stop, got_n, got_sum, sum, got_min);
  CHECK(got_sum == sum && got_n == stop - last && got_min == low);
}

static void test_learned(const char *tmp) {
  const double F = 0.1;
  char out[4300];
  snprintf(out, sizeof out, "%s/learned.h5", tmp);
  af_train_opts o;
  af_train_summary sum;
  af_test_tiny_train_opts(&o, g_model, g_data, out, NULL);
  o.policy_kind = AF_POLICY_PIPE;  /* proposes a freeze at every boundary from epoch 1 on */
  o.alpha = 0.25;
  o.intervals = 12;
  o.freeze_when_learned = F;
  if (run(&o, &sum) != AF_OK) return;
  knobs_are(out, "alpha=0.25 freeze_when_learned=0.1");
  /* the "you" task's 320 training rows are half 0, half 1: the prior's loss is ln 2 */
  double prior = config_number(out, "prior_loss");
  CHECK(fabs(prior - log(2.0)) < 1e-15 && config_number(out, "freeze_when_learned") == F);
  intervals iv;
  learned_replay lr = {0};
  if (!read_intervals(out, &iv)) return;
  if (!replay_learned(out, &iv, F, &lr)) {
    free_intervals(&iv);
    return;
  }
  int bad = 0, first_latched = -1, first_freeze = -1;
  for (size_t k = 0; k < iv.n; k++) {
    int F0 = (int)iv.before[k], want = k > 0 && lr.latched[k] ? replay_pipe(F0, iv.step[k], 0.25) : F0;
    if (k > 0 && lr.latched[k] && first_latched < 0) first_latched = (int)k;
    if (iv.after[k] > iv.before[k] && first_freeze < 0) first_freeze = (int)k;
    if ((int)iv.after[k] != want) {
      bad++;
      fprintf(stderr, "learned: boundary %zu (step %.0f, interval loss %.4f, threshold %.4f): depth %.0f, replay %d\n",
              k, iv.step[k], lr.mean[k], lr.threshold, iv.after[k], want);
    }
  }
  if (first_latched >= 0)
    printf("learned (pipe, F = %g): prior loss %.6f, threshold %.6f; first interval mean below it at boundary %d "
           "(step %.0f, %.6f); first freeze at boundary %d; final depth %d, best %.4f; %d differ from the replay\n",
           F, prior, lr.threshold, first_latched, iv.step[first_latched], lr.mean[first_latched], first_freeze,
           sum.final_depth, sum.best, bad);
  /* the first freeze is where the loss first beats the threshold, after epoch 1 (pipe wants 1+ there) */
  CHECK(bad == 0 && first_latched > 0 && first_freeze == first_latched && iv.step[first_latched] >= EPOCH);
  /* resumed: stopped 5 steps into the interval that latches, then 3 steps later, then to the end */
  size_t nl = 0;
  double *loss = af_test_read_col(out, "steps/loss", &nl);
  if (first_latched > 0 && loss && nl == T) {
    char part[4300], ck[4400];
    snprintf(part, sizeof part, "%s/learned-resumed.h5", tmp);
    snprintf(ck, sizeof ck, "%s.ckpt", part);
    const long last = (long)iv.step[first_latched - 1];
    double low = INFINITY;
    for (int k = 0; k < first_latched; k++) low = lr.mean[k] < low ? lr.mean[k] : low;
    af_test_tiny_train_opts(&o, g_model, g_data, part, NULL);
    o.policy_kind = AF_POLICY_PIPE;
    o.alpha = 0.25;
    o.intervals = 12;
    o.freeze_when_learned = F;
    o.max_steps = last + 5;
    if (run(&o, &sum) == AF_OK) ckpt_loss_is(ck, loss, last, last + 5, low, "learned, stopped");
    o.resume = 1;
    o.max_steps = last + 8;
    if (run(&o, &sum) == AF_OK) ckpt_loss_is(ck, loss, last, last + 8, low, "learned, resumed and stopped");
    o.max_steps = 0;
    if (run(&o, &sum) == AF_OK) {
      int same = af_test_same_col(part, out, "steps/loss") && af_test_same_col(part, out, "steps/frozen_depth") &&
                 af_test_same_col(part, out, "intervals/depth_after");
      printf("learned, stopped at steps %ld and %ld and resumed vs uninterrupted: losses and depths %s\n", last + 5,
             last + 8, same ? "identical" : "DIFFERENT");
      CHECK(same && sum.steps == T);
    }
  }
  free(loss);
  free_learned(&lr);
  free_intervals(&iv);
}

/* ---- gated, through a recording wrapper ---- */
typedef struct {
  af_policy *inner;
  int n;
  double val[64], start[64], ratio[64][L];
  int depth[64], out[64];
} recorder;

static af_status record(af_policy *p, const af_interval_stats *st, int *nd) {
  recorder *r = p->ctx;
  AF_TRY(r->inner->decide(r->inner, st, nd));
  if (r->n < 64) {
    r->val[r->n] = st->val_metric;
    r->start[r->n] = st->val_start;
    memcpy(r->ratio[r->n], st->ratio, L * sizeof(double));
    r->depth[r->n] = st->depth;
    r->out[r->n] = *nd;
    r->n++;
  }
  return AF_OK;
}

static void test_gated(const char *tmp) {
  char out[4300];
  snprintf(out, sizeof out, "%s/gated.h5", tmp);
  af_gated_opts go;
  af_gated_defaults(&go);
  go.percentile = 100;
  go.tolerance = 0;  /* rollbacks likely */
  go.trial = 2;
  go.cooldown = 1;
  af_policy *g = NULL, *w = NULL;
  CHECK_OK(af_policy_gated(&go, &g));
  recorder rec = {.inner = g};
  CHECK_OK(af_policy_custom("gated-recorded", record, &rec, NULL, &w));
  if (!g || !w) return;
  w->may_unfreeze = w->wants_val = w->stateful = 1;
  af_train_opts o;
  af_train_summary sum;
  af_test_tiny_train_opts(&o, g_model, g_data, out, w);
  o.intervals = 24;
  o.cache = AF_CACHE_MEMORY;
  if (run(&o, &sum) == AF_OK) {
    intervals iv;
    if (read_intervals(out, &iv)) {
      /* the replay: state machine of docs/algorithm.md over the recorded metric and ratios */
      int trial = 0, base = 0, cool = 0, bad = 0, rollbacks = 0;
      double best = 0;
      CHECK((size_t)rec.n + 1 == iv.n);
      for (int i = 0; i < rec.n && (size_t)i + 1 < iv.n; i++) {
        int F = (int)iv.before[i + 1], want = F, decided = 0;
        double v = rec.val[i];
        CHECK(rec.depth[i] == F && !isnan(v) && v >= 0 && v <= 1);
        for (int l = 0; l < L; l++)  /* what the wrapper saw is what the file holds */
          CHECK((isnan(rec.ratio[i][l]) && isnan(iv.ratio[(i + 1) * L + l])) || rec.ratio[i][l] == iv.ratio[(i + 1) * L + l]);
        if (trial > 0) {
          if (v < best - go.tolerance) {
            want = base, trial = 0, cool = go.cooldown, decided = 1, rollbacks++;
          } else {
            best = v > best ? v : best;
            decided = --trial > 0;
          }
        }
        if (!decided && cool > 0) cool--, decided = 1;
        if (!decided && !(v > rec.start[i] + go.tolerance)) decided = 1;  /* nothing learned yet */
        if (!decided) {
          int nd = replay_adaptive(F, iv.ratio + (i + 1) * L, go.percentile, L - 1);
          if (nd > F) trial = go.trial, base = F, best = v, want = nd;
        }
        if ((int)iv.after[i + 1] != want) {
          bad++;
          fprintf(stderr, "gated: decision %d (step %.0f, val %.4f): depth %.0f, replay %d\n", i, iv.step[i + 1], v,
                  iv.after[i + 1], want);
        }
      }
      printf("gated: %d decisions, %d rollbacks, final depth %d, best %.4f, %d differ from the replay\n", rec.n,
             rollbacks, sum.final_depth, sum.best, bad);
      CHECK(bad == 0);
      /* the file's val_metric is the metric each decision saw */
      double *vm = NULL;
      size_t nv = 0;
      af_results_reader *vr = NULL;
      CHECK_OK(af_results_open_read(out, &vr));
      if (vr) CHECK_OK(af_results_read_1d(vr, "intervals/val_metric", &vm, &nv));
      int vm_bad = nv != iv.n || !vm || isnan(vm[0]);
      for (int i = 0; !vm_bad && i < rec.n; i++) vm_bad += vm[i + 1] != rec.val[i];
      printf("gated: intervals/val_metric holds the %zu metrics the decisions saw: %s\n", nv, vm_bad ? "NO" : "yes");
      CHECK(!vm_bad);
      free(vm);
      af_results_close_read(&vr);
      free_intervals(&iv);
    }
    /* the slice is held out of training: 320 - 32 rows train */
    af_results_reader *rr = NULL;
    CHECK_OK(af_results_open_read(out, &rr));
    af_attr *at = NULL;
    int na = 0;
    if (rr) CHECK_OK(af_results_read_attrs(rr, "config", &at, &na));
    const af_attr *te = af_results_find_attr(at, na, "train_examples");
    CHECK(te && te->i == 288);
    af_results_free_attrs(at, na);
    af_results_close_read(&rr);
  }
  af_policy_free(w);
  af_policy_free(g);
}

/* ---- a scripted unfreeze through the memory cache ---- */
static const int schedule[12] = {0, 2, 2, 1, 2, 0, 2, 1, 1, 2, 0, 0};
static af_status scripted(af_policy *p, const af_interval_stats *st, int *nd) {
  (void)p;
  *nd = schedule[st->interval];
  return AF_OK;
}

static void test_rollback_cache(const char *tmp) {
  af_policy *p = NULL;
  CHECK_OK(af_policy_custom("unfreeze-script", scripted, NULL, NULL, &p));
  if (!p) return;
  p->may_unfreeze = 1;
  char out[2][4300];
  af_train_summary sum[2];
  for (int c = 0; c < 2; c++) {
    snprintf(out[c], sizeof out[c], "%s/script-%s.h5", tmp, c ? "cache" : "nocache");
    af_train_opts o;
    af_test_tiny_train_opts(&o, g_model, g_data, out[c], p);
    o.intervals = 12;
    o.cache = c ? AF_CACHE_MEMORY : AF_CACHE_OFF;
    run(&o, &sum[c]);
  }
  size_t n0 = 0, n1 = 0, nd = 0, ni = 0;
  double *l0 = af_test_read_col(out[0], "steps/loss", &n0), *l1 = af_test_read_col(out[1], "steps/loss", &n1);
  double *d1 = af_test_read_col(out[1], "steps/frozen_depth", &nd), *after = af_test_read_col(out[1], "intervals/depth_after", &ni);
  CHECK(n0 == T && n1 == T && nd == T && ni == 12);
  if (l0 && l1 && n0 == n1) {
    size_t diff = 0;
    for (size_t i = 0; i < n0; i++) diff += l0[i] != l1[i];
    printf("scripted unfreeze: %zu of %zu losses differ between the memory cache and no cache\n", diff, n0);
    CHECK(diff == 0);
  }
  for (size_t k = 0; after && k < ni && k < 12; k++) CHECK((int)after[k] == schedule[k]);
  int downs = 0;
  for (size_t s = 1; d1 && s < nd; s++) downs += d1[s] < d1[s - 1];
  printf("scripted unfreeze: depth went down %d times; cache hits %lld, misses %lld; final %s %.4f\n", downs,
         sum[1].cache_hits, sum[1].cache_misses, sum[1].status, sum[1].final);
  CHECK(downs == 4 && !strcmp(sum[1].status, "complete"));
  CHECK(sum[1].cache_hits > 0 && sum[1].cache_misses > 0 && sum[1].cache_hits + sum[1].cache_misses <= (long long)T * 16);
  free(l0);
  free(l1);
  free(d1);
  free(after);
  af_policy_free(p);
}

/* ---- freezeout ---- */

/* written again from docs/algorithm.md, "FreezeOut" */
static double fo_time(double t0, int cubic, int i) {
  if (i >= L - 1) return 1.0;
  double f = (double)i / (double)(L - 1);
  if (!cubic) return t0 + (1.0 - t0) * f;
  double c = cbrt(t0), x = c + (1.0 - c) * f;
  return x * x * x;
}

static double fo_factor(double t0, int cubic, int scaled, int i, double t) {
  if (i >= L - 1) return 1.0;
  double ti = fo_time(t0, cubic, i);
  if (t >= ti) return 0.0;
  return 0.5 * (1.0 + cos(M_PI * t / ti)) / (scaled ? ti : 1.0);
}

/* the policy's factors for every step of a T-step run against the replay */
static int fo_factors_differ(af_policy *p, double t0, int cubic, int scaled) {
  int bad = 0;
  for (long s = 0; s < T; s++) {
    double sc[L + 2], t = (double)s / T;
    for (int k = 0; k < L + 2; k++) sc[k] = 1.0;
    p->lr_scale(p, s, T, L, sc);
    double want[L + 2];
    want[0] = fo_factor(t0, cubic, scaled, 0, t);
    for (int l = 0; l < L; l++) want[1 + l] = fo_factor(t0, cubic, scaled, l, t);
    want[L + 1] = 1.0;
    for (int k = 0; k < L + 2; k++)
      if (!(fabs(sc[k] - want[k]) <= 1e-12 * fabs(want[k]))) {
        if (bad++ < 5) fprintf(stderr, "freezeout: step %ld, group %d: factor %.17g, replay %.17g\n", s, k, sc[k], want[k]);
      }
  }
  return bad;
}

/* intervals/lr_factor of a finished run (t0 0.5, linear) against the replay with the clock
 * started at boundary step s0 (0: the run's start; factors 1 before s0): rows that differ */
static int fo_recorded_differ(const char *out, double s0) {
  af_results_reader *rr = NULL;
  double *f = NULL, *st = NULL;
  size_t n = 0, cols = 0, ns = 0;
  int bad = 1;
  if (af_results_open_read(out, &rr) == AF_OK && af_results_read_2d(rr, "intervals/lr_factor", &f, &n, &cols) == AF_OK &&
      af_results_read_1d(rr, "intervals/step", &st, &ns) == AF_OK && cols == L && ns == n && n > 0) {
    bad = 0;
    for (size_t k = 0; k < n; k++) {
      double last = st[k] - 1, t = (last - s0) / (T - s0);  /* the interval's last step */
      for (int l = 0; l < L; l++) {
        double want = last < s0 ? 1.0 : fo_factor(0.5, 0, 0, l, t);
        if (!(fabs(f[k * L + l] - want) <= 1e-12)) {
          bad++;
          break;
        }
      }
    }
  }
  free(f);
  free(st);
  af_results_close_read(&rr);
  return bad;
}

/* depths of a finished run against the replay: no decision at the first boundary */
static int fo_depths_differ(const char *out, double t0, int cubic, int *final) {
  intervals iv;
  if (!read_intervals(out, &iv)) return 1;
  int bad = 0;
  for (size_t k = 0; k < iv.n; k++) {
    int F = (int)iv.before[k], want = F;
    if (k > 0) {
      int n = 0;
      while (n < L - 1 && iv.step[k] / T >= fo_time(t0, cubic, n)) n++;
      if (n > want) want = n;
    }
    if ((int)iv.after[k] != want) {
      bad++;
      fprintf(stderr, "freezeout: boundary %zu (step %.0f): depth %.0f, replay %d\n", k, iv.step[k], iv.after[k], want);
    }
  }
  *final = iv.n ? (int)iv.after[iv.n - 1] : -1;
  free_intervals(&iv);
  return bad;
}

/* a wrapper that records the factors a run hands the policy (before the policy's own) */
typedef struct {
  af_policy *inner;
  long steps, bad_step, bad_in;
  double x;  /* --layer-lr-decay */
} lr_recorder;

static af_status lr_rec_decide(af_policy *p, const af_interval_stats *st, int *nd) {
  lr_recorder *r = p->ctx;
  return r->inner->decide(r->inner, st, nd);
}

static void lr_rec_scale(af_policy *p, long step, long total, int nl, double *scale) {
  lr_recorder *r = p->ctx;
  r->bad_step += step != r->steps || total != T || nl != L;
  double want[L + 2];
  want[0] = pow(r->x, L + 1);
  for (int l = 0; l < L; l++) want[1 + l] = pow(r->x, L - l);
  want[L + 1] = 1.0;
  for (int k = 0; k < L + 2; k++) r->bad_in += !(fabs(scale[k] - want[k]) <= 1e-15);
  r->steps++;
  if (r->inner->lr_scale) r->inner->lr_scale(r->inner, step, total, nl, scale);
}

static void zero_scale(af_policy *p, long step, long total, int nl, double *scale) {
  (void)p, (void)step, (void)total;
  for (int k = 0; k < nl + 2; k++) scale[k] = 0.0;
}

static void test_freezeout(const char *tmp) {
  static const struct { double t0; int cubic, scaled; const char *knobs; } v[] = {
      {0.5, 0, 0, "t0=0.5 schedule=linear scaled=false"},
      {0.3, 1, 1, "t0=0.3 schedule=cubic scaled=true"},
  };
  char out[2][4300];
  for (int i = 0; i < 2; i++) {
    snprintf(out[i], sizeof out[i], "%s/freezeout%d.h5", tmp, i);
    af_train_opts o;
    af_train_summary sum;
    af_test_tiny_train_opts(&o, g_model, g_data, out[i], NULL);
    o.policy_kind = AF_POLICY_FREEZEOUT;
    o.freezeout_t0 = v[i].t0;
    o.freezeout_schedule = v[i].cubic;
    o.freezeout_scaled = v[i].scaled;
    o.intervals = 12;
    o.cache = AF_CACHE_MEMORY;
    o.freeze_when_learned = 0;  /* the published schedule, without the default guard */
    if (run(&o, &sum) != AF_OK) continue;
    knobs_are(out[i], v[i].knobs);
    int final = -1, bad = fo_depths_differ(out[i], v[i].t0, v[i].cubic, &final);
    af_freezeout_opts fo = {.t0 = v[i].t0, .cubic = v[i].cubic, .scaled = v[i].scaled};
    af_policy *p = NULL;
    CHECK_OK(af_policy_freezeout(&fo, &p));
    int fbad = p ? fo_factors_differ(p, v[i].t0, v[i].cubic, v[i].scaled) : 1;
    af_policy_free(p);
    printf("freezeout %s: t_0 %.4f, t_1 %.4f; final depth %d, %d depths and %d of %d factors differ from the replay; "
           "best %.4f\n", v[i].knobs, fo_time(v[i].t0, v[i].cubic, 0), fo_time(v[i].t0, v[i].cubic, 1), final, bad,
           fbad, T * (L + 2), sum.best);
    CHECK(bad == 0 && fbad == 0 && final == L - 1);
    if (i == 0) {
      int rbad = fo_recorded_differ(out[i], 0);
      printf("freezeout: intervals/lr_factor, %d rows differ from the replay\n", rbad);
      CHECK(rbad == 0);
    }
  }
  /* resumed: stopped at step 50 (after layer 0's cosine started, before it froze) */
  char part[4300];
  snprintf(part, sizeof part, "%s/freezeout-resumed.h5", tmp);
  af_train_opts o;
  af_train_summary sum;
  af_test_tiny_train_opts(&o, g_model, g_data, part, NULL);
  o.policy_kind = AF_POLICY_FREEZEOUT;
  o.intervals = 12;
  o.cache = AF_CACHE_MEMORY;
  o.freeze_when_learned = 0;
  o.max_steps = 50;
  if (run(&o, &sum) == AF_OK) {
    o.max_steps = 0;
    o.resume = 1;
    run(&o, &sum);
    int same = af_test_same_col(part, out[0], "steps/loss") && af_test_same_col(part, out[0], "steps/frozen_depth") &&
               af_test_same_col(part, out[0], "intervals/depth_after");
    printf("freezeout stopped at step 50 and resumed vs uninterrupted: losses and depths %s\n",
           same ? "identical" : "DIFFERENT");
    CHECK(same && sum.steps == T);
  }
  /* under the learned guard, stopped after its wait ended (about step 90 here): the resumed
   * run must shift FreezeOut's clock by the same step, so its losses are the uninterrupted ones */
  char gfull[4300], gpart[4300];
  snprintf(gfull, sizeof gfull, "%s/freezeout-guarded.h5", tmp);
  snprintf(gpart, sizeof gpart, "%s/freezeout-guarded-resumed.h5", tmp);
  af_test_tiny_train_opts(&o, g_model, g_data, gfull, NULL);
  o.policy_kind = AF_POLICY_FREEZEOUT;
  o.intervals = 12;
  o.cache = AF_CACHE_MEMORY;
  o.freeze_when_learned = 0.1;
  af_train_summary gsum;
  if (run(&o, &gsum) == AF_OK) {
    o.out = gpart;
    o.max_steps = 105;
    if (run(&o, &sum) == AF_OK) {
      o.max_steps = 0;
      o.resume = 1;
      run(&o, &sum);
      int same = af_test_same_col(gpart, gfull, "steps/loss") && af_test_same_col(gpart, gfull, "steps/frozen_depth");
      printf("freezeout, freeze_when_learned 0.1, stopped at step 105 and resumed vs uninterrupted: losses and depths "
             "%s; final depth %d\n", same ? "identical" : "DIFFERENT", gsum.final_depth);
      CHECK(same && sum.steps == T && gsum.final_depth > 0);
      /* the recorded factors: 1 until one boundary, FreezeOut's schedule over the rest from it */
      intervals giv;
      int s0 = -1;
      if (read_intervals(gfull, &giv)) {
        for (size_t k = 1; s0 < 0 && k < giv.n; k++)
          if (fo_recorded_differ(gfull, giv.step[k]) == 0) s0 = (int)giv.step[k];
        free_intervals(&giv);
      }
      printf("freezeout, freeze_when_learned 0.1: intervals/lr_factor is FreezeOut's schedule from step %d on\n", s0);
      CHECK(s0 > 0 && s0 < 105);  /* the stop came after the wait ended: the resume restored it */
    }
  }
  /* what a run hands the policy, with --layer-lr-decay 0.8 */
  af_policy *inner = NULL, *w = NULL;
  CHECK_OK(af_policy_freezeout(NULL, &inner));
  lr_recorder rec = {.inner = inner, .x = 0.8};
  CHECK_OK(af_policy_custom("freezeout-recorded", lr_rec_decide, &rec, NULL, &w));
  if (w) {
    w->lr_scale = lr_rec_scale;
    char out2[4300];
    snprintf(out2, sizeof out2, "%s/freezeout-decay.h5", tmp);
    af_test_tiny_train_opts(&o, g_model, g_data, out2, w);
    o.intervals = 12;
    o.layer_lr_decay = 0.8;
    if (run(&o, &sum) == AF_OK) {
      int final = -1, bad = fo_depths_differ(out2, 0.5, 0, &final);
      printf("freezeout with --layer-lr-decay 0.8: %ld steps handed factors (%ld with a wrong step/total, %ld wrong "
             "factors in); %d depths differ\n", rec.steps, rec.bad_step, rec.bad_in, bad);
      CHECK(rec.steps == T && rec.bad_step == 0 && rec.bad_in == 0 && bad == 0);
    }
    /* factors of 0 reach the optimizer: nothing trains, so no evaluation changes */
    w->lr_scale = zero_scale;
    snprintf(out2, sizeof out2, "%s/zero-lr.h5", tmp);
    af_test_tiny_train_opts(&o, g_model, g_data, out2, w);
    o.intervals = 12;
    if (run(&o, &sum) == AF_OK) {
      size_t n = 0, moved = 0;
      double *acc = af_test_read_col(out2, "evals/accuracy", &n);
      for (size_t k = 1; acc && k < n; k++) moved += acc[k] != acc[0];
      printf("every learning-rate factor 0: %zu evaluations, %zu differ from the first\n", n, moved);
      CHECK(n >= 12 && moved == 0);
      free(acc);
    }
  }
  af_policy_free(w);
  af_policy_free(inner);
}

/* ---- the auto preset ---- */
static void test_auto(const char *tmp) {
  const char *spec = af_policy_preset_spec("auto");
  CHECK(spec != NULL);
  if (!spec) return;
  char out[4300], direct[4300];
  snprintf(out, sizeof out, "%s/auto.h5", tmp);
  snprintf(direct, sizeof direct, "%s/auto-from-spec.h5", tmp);
  af_train_opts o;
  af_train_summary sum;
  af_test_tiny_train_opts(&o, g_model, g_data, out, NULL);
  o.policy_kind = AF_POLICY_AUTO;
  o.intervals = 12;
  if (run(&o, &sum) != AF_OK) return;
  knobs_are(out, spec);
  af_policy *p = NULL;
  CHECK_OK(af_policy_from_spec("auto", spec, &p));
  af_train_summary sum2;
  af_test_tiny_train_opts(&o, g_model, g_data, direct, p);
  o.intervals = 12;
  if (p && run(&o, &sum2) == AF_OK) {
    int same = af_test_same_col(out, direct, "steps/loss") && af_test_same_col(out, direct, "intervals/depth_after");
    printf("auto = '%s': --policy auto and the policy built from its line %s\n", spec, same ? "agree" : "DIFFER");
    CHECK(same);
  }
  af_policy_free(p);
  /* the replay below is of this line: a change to the preset must come with a new replay */
  if (strcmp(spec, "adaptive percentile=50 keep=2 freeze_after=warmup max_freeze_step=1 freeze_when_learned=0.1")) {
    fprintf(stderr, "auto: the preset is now '%s'; this test replays the one it was written for: update it\n",
            spec);
    CHECK(0);
    return;
  }
  intervals iv;
  learned_replay lr = {0};
  if (!read_intervals(out, &iv)) return;
  if (!replay_learned(out, &iv, 0.1, &lr)) {
    free_intervals(&iv);
    return;
  }
  const int warm = (int)(0.1 * T), cap = L - 2;  /* the hf recipe's warm-up; at least 2 layers train */
  int bad = 0, first_latched = -1;
  for (size_t k = 0; k < iv.n; k++) {
    int F = (int)iv.before[k], want = F;
    if (k > 0 && lr.latched[k] && first_latched < 0) first_latched = (int)k;
    if (k > 0 && iv.step[k] >= warm && lr.latched[k]) {
      want = replay_adaptive(F, iv.ratio + k * L, 50, cap);
      if (want > F + 1) want = F + 1;
    }
    if ((int)iv.after[k] != want) {
      bad++;
      fprintf(stderr, "auto: boundary %zu (step %.0f): depth %.0f, replay %d\n", k, iv.step[k], iv.after[k], want);
    }
  }
  printf("auto: %zu boundaries, the loss below %.4f from boundary %d on, final depth %d, %d differ from the replay; "
         "best %.4f\n", iv.n, lr.threshold, first_latched, sum.final_depth, bad, sum.best);
  CHECK(bad == 0 && sum.final_depth <= cap);
  free_learned(&lr);
  free_intervals(&iv);
}

/* ---- safety: no built-in policy ends at the majority class where full fine-tuning learns ---- */

/* One row of the safety table (learned -1: the policy's default). safe = 0: KNOWN FAILURES on
 * this fixture, printed and not asserted. Unguarded, pipe, static and freezeout freeze on a
 * clock, blind to learning (so pipe and freezeout wait by default now; static's depth is the
 * user's, set at step 0), and this 3-layer task needs layer 0 to train until its loss
 * leaves the prior's, at about step 85 of 120. With --freeze-when-learned 0.1, which holds
 * every freeze until the loss is 10% below the prior's:
 *   pipe      safe: it freezes at the first boundary past that point;
 *   static    refused (refused = 1): its depth is set at step 0, before any loss;
 *   freezeout safe: the guard holds its learning-rate factors at 1 as well as its depth, and
 *             its schedule runs over the rest of the run from the boundary where the wait
 *             ends (before that change the factors annealed layers 0-1 to rate 0 by 60% and
 *             80% of the run behind a held depth, and the loss never left the prior's);
 * gated is not in this table: it trains on the rows its slice leaves, in another order, so its
 * pair is full fine-tuning holding out the same slice (test_safety_gated). On this seed that
 * pair does not leave the prior's loss either (the fixture learns on some orders, not all).
 * Flip to 1 when a policy is fixed. */
typedef struct {
  const char *name;
  int kind;
  double after, learned;
  int step, intervals, safe, refused;
  const char *spec;  /* a policy built from this line instead of kind */
} safety_case;

static void run_safety(const char *tmp, size_t i, const safety_case *c, double *full) {
  char out[4300];
  snprintf(out, sizeof out, "%s/safety%zu.h5", tmp, i);
  af_policy *p = NULL;
  if (c->spec) CHECK_OK(af_policy_from_spec("auto-unguarded", c->spec, &p));
  af_train_opts o;
  af_train_summary sum;
  af_test_tiny_train_opts(&o, g_model, g_data, out, p);
  o.policy_kind = c->kind;
  o.freeze_after = c->after;
  o.max_freeze_step = c->step;
  o.freeze_when_learned = c->learned;
  if (c->intervals) o.intervals = c->intervals;
  if (c->kind == AF_POLICY_STATIC) o.frozen = 1;
  o.cache = AF_CACHE_MEMORY;
  if (c->refused) {  /* a guard that cannot help is refused, with the reason */
    af_status st = af_train(&o, &sum);
    printf("safety: %-48s refused (%s)  KNOWN UNSAFE (not asserted)\n", c->name,
           st == AF_ERR_ARG && strstr(af_last_error(), "from the start") ? "it freezes from the start" : "?");
    CHECK(st == AF_ERR_ARG && strstr(af_last_error(), "from the start"));
    return;
  }
  if (run(&o, &sum) == AF_OK) {
    int ok = sum.best >= 0.7 && sum.final >= 0.7;  /* majority class: 0.5 */
    if (c->learned < 0 && c->kind == AF_POLICY_PIPE) knobs_are(out, "alpha=0.25 freeze_when_learned=0.1");
    if (c->learned < 0 && c->kind == AF_POLICY_FREEZEOUT)
      knobs_are(out, "t0=0.5 schedule=linear scaled=false freeze_when_learned=0.1");
    printf("safety: %-48s best %.4f final %.4f final depth %d%s\n", c->name, sum.best, sum.final, sum.final_depth,
           ok ? "" : c->safe ? "  UNSAFE" : "  KNOWN UNSAFE (not asserted)");
    if (i == 0) {
      *full = sum.best;
      CHECK(*full >= 0.8);  /* the task is learnable: the test means something */
    } else if (c->safe) {
      CHECK(ok);
    }
  }
  af_policy_free(p);
}

static void test_safety(const char *tmp) {
  const safety_case pol[] = {
      {"none (full fine-tuning)", AF_POLICY_NONE, 0, -1, -1, 0, 1, 0, NULL},
      {"adaptive", AF_POLICY_ADAPTIVE, 0, -1, -1, 0, 1, 0, NULL},
      {"adaptive, freeze_after warmup", AF_POLICY_ADAPTIVE, -1, -1, -1, 0, 1, 0, NULL},
      {"adaptive, max_freeze_step 1", AF_POLICY_ADAPTIVE, 0, -1, 1, 0, 1, 0, NULL},
      {"pipe (its default: freeze_when_learned 0.1)", AF_POLICY_PIPE, 0, -1, -1, 0, 1, 0, NULL},
      {"pipe, freeze_when_learned 0 (as published)", AF_POLICY_PIPE, 0, 0, -1, 0, 0, 0, NULL},
      {"pipe, freeze_when_learned 0.1, 12 intervals", AF_POLICY_PIPE, 0, 0.1, -1, 12, 1, 0, NULL},
      {"static --frozen 1", AF_POLICY_STATIC, 0, -1, -1, 0, 0, 0, NULL},
      {"static --frozen 1, freeze_when_learned 0.1", AF_POLICY_STATIC, 0, 0.1, -1, 0, 0, 1, NULL},
      {"freezeout (its default: freeze_when_learned 0.1)", AF_POLICY_FREEZEOUT, 0, -1, -1, 0, 1, 0, NULL},
      {"freezeout, freeze_when_learned 0 (as published)", AF_POLICY_FREEZEOUT, 0, 0, -1, 0, 0, 0, NULL},
      {"auto", AF_POLICY_AUTO, 0, -1, -1, 0, 1, 0, NULL},
      {"auto, 12 intervals", AF_POLICY_AUTO, 0, -1, -1, 12, 1, 0, NULL},
      /* auto as it was before freeze_when_learned: what the guard fixed */
      {"auto without freeze_when_learned, 12 intervals", AF_POLICY_NONE, 0, -1, -1, 12, 0, 0,
       "adaptive percentile=50 keep=2 freeze_after=warmup max_freeze_step=1"},
  };
  double full = NAN;
  for (size_t i = 0; i < sizeof pol / sizeof pol[0]; i++) run_safety(tmp, i, &pol[i], &full);
}

/* gated against its exact pair: full fine-tuning with the same --val-rows slice held out (the
 * same 288 training rows in the same order, the same head and dropout). Safe: on every seed where
 * that pair learns, gated learns too; at least one seed must learn, or the test means nothing.
 * Seeds 1-3, not chosen: this fixture learns on some data orders and not others. */
/* The pair is exact: every step loss the same until gated's first freeze takes effect, and the
 * same slice metric at the first boundary (the same held-out rows, scored by both runs). */
static void check_exact_pair(const char *pair_out, const char *gated_out) {
  size_t n1 = 0, n2 = 0, v1n = 0, v2n = 0;
  double *l1 = af_test_read_col(pair_out, "steps/loss", &n1), *l2 = af_test_read_col(gated_out, "steps/loss", &n2);
  double *v1 = af_test_read_col(pair_out, "intervals/val_metric", &v1n);
  double *v2 = af_test_read_col(gated_out, "intervals/val_metric", &v2n);
  intervals iv = {0};
  if (l1 && l2 && v1 && v2 && n1 == n2 && n1 > 0 && v1n > 0 && v2n > 0 && read_intervals(gated_out, &iv)) {
    size_t first = n1;  /* steps 1..first ran with the same weights in both */
    for (size_t k = 0; k < iv.n; k++)
      if (iv.after[k] > 0) { first = (size_t)iv.step[k]; break; }
    size_t same = 0;
    while (same < first && l1[same] == l2[same]) same++;
    if (same != first) fprintf(stderr, "gated pair: step %zu loss %.9g vs %.9g\n", same + 1, l1[same], l2[same]);
    CHECK(same == first && first > 0);
    CHECK(isfinite(v1[0]) && v1[0] == v2[0]);
  } else {
    CHECK(!"gated pair: steps/loss and intervals/val_metric of both runs");
  }
  free_intervals(&iv);
  free(l1), free(l2), free(v1), free(v2);
}

static void test_safety_gated(const char *tmp) {
  int learned = 0;
  for (int seed = 1; seed <= 3; seed++) {
    af_train_summary pair = {0}, g = {0};
    char outs[2][4300];
    for (int k = 0; k < 2; k++) {
      char *out = outs[k];
      snprintf(out, sizeof outs[k], "%s/safety-gated%d-%d.h5", tmp, seed, k);
      af_train_opts o;
      af_test_tiny_train_opts(&o, g_model, g_data, out, NULL);
      o.seed = (uint64_t)seed;
      o.cache = AF_CACHE_MEMORY;
      o.policy_kind = k ? AF_POLICY_GATED : AF_POLICY_NONE;
      /* gated's default: 10% of 320, given as the number or (seed 3) as auto, the same rows */
      o.val_rows = k ? 0 : seed == 3 ? AF_VAL_ROWS_AUTO : 32;
      if (run(&o, k ? &g : &pair) != AF_OK) return;
    }
    check_exact_pair(outs[0], outs[1]);
    int pair_learns = pair.best >= 0.8, ok = g.best >= 0.7 && g.final >= 0.7;
    learned += pair_learns;
    printf("safety: gated, seed %d: best %.4f final %.4f depth %d; full fine-tuning on the same rows: best %.4f%s\n",
           seed, g.best, g.final, g.final_depth, pair.best,
           !pair_learns ? " (does not learn: no claim)" : ok ? "" : "  UNSAFE");
    if (pair_learns) CHECK(ok);
  }
  CHECK(learned >= 1);
}

int main(void) {
  af_set_quiet(1);
  if (af_test_tiny_setup(g_model, g_data, sizeof g_model) != 0) {
    fprintf(stderr, "cannot make the task folder\n");
    return 1;
  }
  const char *tmp = af_test_tmpdir();
  test_pipe(tmp);
  test_guard(tmp);
  test_learned(tmp);
  test_gated(tmp);
  test_rollback_cache(tmp);
  test_freezeout(tmp);
  test_auto(tmp);
  test_safety(tmp);
  test_safety_gated(tmp);
  return af_test_done("test_policies");
}
