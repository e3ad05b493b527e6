/* The freeze controller (change ratios, invariants, decision log) and the built-in policies:
 * none, static, the AutoFreeze adaptive rule, PipeTransformer's schedule (pipe), the
 * validation-gated rule with rollback (gated), and the guard that wraps any policy (FreezeOut
 * and the presets have files of their own). The controller, not the policy, owns every
 * invariant, so a custom (Lua) policy can only propose a depth. */
#include "core/run/freeze.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- percentile */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* numpy.percentile(v, p) with the default method 'linear' (numpy >= 1.22): virtual index
 * (n-1)*(p/100), and numpy's _lerp, which computes b - (b-a)*(1-t) for t >= 0.5 so that the
 * result is exact at both ends; copying it keeps ties (r_l == percentile) bit-identical. */
double af_percentile_linear(double *v, int n, double p) {
  if (n <= 0) return NAN;
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  double q = p / 100.0;
  double virt = (double)(n - 1) * q;
  if (virt <= 0) return v[0];
  if (virt >= (double)(n - 1)) return v[n - 1];
  double lo = floor(virt);
  int i = (int)lo;
  double t = virt - lo;
  double a = v[i], b = v[i + 1], d = b - a;
  return t >= 0.5 ? b - d * (1.0 - t) : a + d * t;
}

/* ---------------------------------------------------------------- policies */

static af_status alloc_policy(const char *name, af_policy **out) {
  af_policy *p;
  AF_TRY(af_calloc((void **)&p, 1, sizeof *p, "policy"));
  snprintf(p->name, sizeof p->name, "%s", name);
  *out = p;
  return AF_OK;
}

void af_policy_free(af_policy *p) {
  if (!p) return;
  if (p->destroy) p->destroy(p);
  free(p);
}

static af_status keep_depth(af_policy *p, const af_interval_stats *st, int *new_depth) {
  *new_depth = st->depth;
  return AF_OK;
}

const char *const af_policy_kind_names[] = {"none", "static", "adaptive", "pipe", "gated", "freezeout", "auto", NULL};

af_status af_policy_none(af_policy **out) {
  *out = NULL;
  af_policy *p;
  AF_TRY(alloc_policy("none", &p));
  p->decide = keep_depth;
  *out = p;
  return AF_OK;
}

af_status af_policy_static(int k, af_policy **out) {
  *out = NULL;
  if (k < 0) return AF_FAIL(AF_ERR_ARG, "static policy: frozen layers must be >= 0, got %d", k);
  af_policy *p;
  AF_TRY(alloc_policy("static", &p));
  p->decide = keep_depth;
  p->initial_depth = k;
  snprintf(p->knobs, sizeof p->knobs, "frozen=%d", k);
  *out = p;
  return AF_OK;
}

typedef struct {
  double percentile;
  int max_depth;   /* < 0: none */
  int keep;        /* > 0: also capped at L - keep */
} adaptive_ctx;

/* The AutoFreeze rule (docs/algorithm.md, "The adaptive policy"):
 *   pct = percentile_N { r_j : j >= F }   (numpy linear interpolation)
 *   new depth = the first l >= F, scanning upward, with r_l >= pct.
 * The new depth IS that index l: layers F..l-1 freeze, layer l and above keep training. So a
 * layer F whose own ratio reaches the percentile freezes nothing this time (new depth = F),
 * and with N = 0 the rule never freezes (r_F >= min always). Several layers may freeze at
 * once. NaN ratios (previous score 0: change undefined) are left out of the percentile and
 * stop the scan as an infinite change would, so no layer is frozen on an undefined value. */
static af_status adaptive_decide(af_policy *p, const af_interval_stats *st, int *new_depth) {
  const adaptive_ctx *a = p->ctx;
  int F = st->depth, cap = st->max_depth;
  if (a->max_depth >= 0 && a->max_depth < cap) cap = a->max_depth;
  if (a->keep > 0 && st->L - a->keep < cap) cap = st->L - a->keep;
  *new_depth = F;
  if (F >= cap) return AF_OK;
  double vals[st->L > 0 ? st->L : 1];
  int n = 0;
  for (int j = F; j < st->L; j++)
    if (!isnan(st->ratio[j])) vals[n++] = st->ratio[j];
  if (n == 0) return AF_OK;
  double pct = af_percentile_linear(vals, n, a->percentile);
  if (isnan(pct)) return AF_OK;  /* an overflowed (infinite) ratio makes the interpolation NaN */
  int l = F;
  for (; l < st->L; l++)
    if (isnan(st->ratio[l]) || st->ratio[l] >= pct) break;
  *new_depth = l < cap ? l : cap;
  return AF_OK;
}

static void adaptive_destroy(af_policy *p) {
  free(p->ctx);
  p->ctx = NULL;
}

af_status af_policy_adaptive(double percentile, int max_depth, af_policy **out) {
  return af_policy_adaptive_keep(percentile, max_depth, 0, out);
}

af_status af_policy_adaptive_keep(double percentile, int max_depth, int keep, af_policy **out) {
  *out = NULL;
  if (!(percentile >= 0 && percentile <= 100))
    return AF_FAIL(AF_ERR_ARG, "adaptive policy: percentile must be in [0, 100], got %g", percentile);
  af_policy *p;
  AF_TRY(alloc_policy("adaptive", &p));
  adaptive_ctx *a;
  af_status s = af_calloc((void **)&a, 1, sizeof *a, "adaptive policy");
  if (s != AF_OK) { free(p); return s; }
  a->percentile = percentile;
  a->max_depth = max_depth < 0 ? -1 : max_depth;
  a->keep = keep > 0 ? keep : 0;
  p->ctx = a;
  p->decide = adaptive_decide;
  p->destroy = adaptive_destroy;
  size_t u = (size_t)snprintf(p->knobs, sizeof p->knobs, "percentile=%g", percentile);
  if (a->max_depth >= 0) u += (size_t)snprintf(p->knobs + u, sizeof p->knobs - u, " max_depth=%d", a->max_depth);
  if (a->keep > 0 && u < sizeof p->knobs) snprintf(p->knobs + u, sizeof p->knobs - u, " keep=%d", a->keep);
  *out = p;
  return AF_OK;
}

/* ---------------------------------------------------------------- pipe */

int af_pipe_frozen(int L, double alpha, long e) {
  /* L*(1-(1-alpha)^e), rounded up as PipeTransformer's freeze/test.py does; the 1e-9 keeps a
   * value that is a whole number up to rounding (alpha = 0.5, L = 12: 6.000000000000001)
   * from becoming the next one */
  double x = (double)L * (1.0 - pow(1.0 - alpha, (double)e));
  int k = (int)ceil(x - 1e-9);
  return k < 0 ? 0 : k > L ? L : k;
}

static af_status pipe_decide(af_policy *p, const af_interval_stats *st, int *new_depth) {
  const double alpha = *(const double *)p->ctx;
  *new_depth = st->depth;
  if (st->epoch_steps <= 0) return AF_FAIL(AF_ERR_ARG, "policy 'pipe': the run did not say its epoch length");
  int k = af_pipe_frozen(st->L, alpha, st->step / st->epoch_steps);
  if (k > st->max_depth) k = st->max_depth;  /* the paper's min(., L-1), and --max-depth */
  if (k > st->depth) *new_depth = k;
  return AF_OK;
}

static void free_ctx(af_policy *p) {
  free(p->ctx);
  p->ctx = NULL;
}

af_status af_policy_pipe(double alpha, af_policy **out) {
  *out = NULL;
  if (!(alpha > 0 && alpha <= 1))
    return AF_FAIL(AF_ERR_ARG, "pipe policy: alpha must be in (0, 1], got %g", alpha);
  af_policy *p;
  AF_TRY(alloc_policy("pipe", &p));
  double *a;
  af_status s = af_calloc((void **)&a, 1, sizeof *a, "pipe policy");
  if (s != AF_OK) { free(p); return s; }
  *a = alpha;
  p->ctx = a;
  p->decide = pipe_decide;
  p->destroy = free_ctx;
  snprintf(p->knobs, sizeof p->knobs, "alpha=%g", alpha);
  *out = p;
  return AF_OK;
}

/* ---------------------------------------------------------------- gated */

typedef struct {
  af_gated_opts o;
  af_policy *rule;   /* the adaptive rule that proposes freezes */
  int trial_left;    /* decisions the current freeze is still on trial (0: none) */
  int base;          /* the depth before that freeze: where a rollback goes */
  double best;       /* the best validation metric since that freeze (its value at the freeze included) */
  int cooldown_left; /* decisions without a new freeze after a rollback */
} gated_ctx;

void af_gated_defaults(af_gated_opts *o) {
  *o = (af_gated_opts){.percentile = 50, .max_depth = -1, .tolerance = 0.02, .trial = 2, .cooldown = 2};
}

/* docs/algorithm.md, "The gated policy": 1. a freeze on trial is rolled back when the metric
 * falls more than the tolerance below its best since the freeze, else kept (and, after
 * `trial` decisions, accepted); 2. after a rollback, `cooldown` decisions freeze nothing;
 * 3. nothing freezes until the metric exceeds its first-boundary value by the tolerance;
 * 4. otherwise the adaptive rule proposes, and a deeper depth starts a trial. */
static af_status gated_decide(af_policy *p, const af_interval_stats *st, int *new_depth) {
  gated_ctx *g = p->ctx;
  const double v = st->val_metric;
  *new_depth = st->depth;
  if (isnan(v)) return AF_FAIL(AF_ERR_ARG, "policy 'gated': no validation metric (the run carved no slice)");
  if (g->trial_left > 0) {
    if (v < g->best - g->o.tolerance) {
      *new_depth = g->base < st->depth ? g->base : st->depth;
      g->trial_left = 0;
      g->cooldown_left = g->o.cooldown;
      return AF_OK;
    }
    if (v > g->best) g->best = v;
    if (--g->trial_left > 0) return AF_OK;
  }
  if (g->cooldown_left > 0) {
    g->cooldown_left--;
    return AF_OK;
  }
  if (!(v > st->val_start + g->o.tolerance)) return AF_OK;  /* nothing learned yet (NaN start: never) */
  int nd = st->depth;
  AF_TRY(g->rule->decide(g->rule, st, &nd));
  if (nd > st->depth) {
    g->trial_left = g->o.trial;
    g->base = st->depth;
    g->best = v;
    *new_depth = nd;
  }
  return AF_OK;
}

static void gated_destroy(af_policy *p) {
  gated_ctx *g = p->ctx;
  if (g) af_policy_free(g->rule);
  free_ctx(p);
}

af_status af_policy_gated(const af_gated_opts *o, af_policy **out) {
  *out = NULL;
  af_gated_opts d;
  if (!o) af_gated_defaults(&d), o = &d;
  if (!(o->tolerance >= 0) || isinf(o->tolerance))
    return AF_FAIL(AF_ERR_ARG, "gated policy: tolerance must be a finite number >= 0, got %g", o->tolerance);
  if (o->trial < 1 || o->cooldown < 0)
    return AF_FAIL(AF_ERR_ARG, "gated policy: trial must be >= 1 and cooldown >= 0, got %d and %d", o->trial,
                   o->cooldown);
  af_policy *rule;
  AF_TRY(af_policy_adaptive_keep(o->percentile, o->max_depth, o->keep, &rule));
  af_policy *p = NULL;
  af_status s = alloc_policy("gated", &p);
  gated_ctx *g = NULL;
  if (s == AF_OK) s = af_calloc((void **)&g, 1, sizeof *g, "gated policy");
  if (s != AF_OK) {
    af_policy_free(rule);
    if (p) free(p);
    return s;
  }
  g->o = *o;
  g->rule = rule;
  p->ctx = g;
  p->decide = gated_decide;
  p->destroy = gated_destroy;
  p->may_unfreeze = 1;
  p->wants_val = 1;
  p->stateful = 1;
  snprintf(p->knobs, sizeof p->knobs, "%.64s tolerance=%g trial=%d cooldown=%d", rule->knobs, o->tolerance, o->trial,
           o->cooldown);
  *out = p;
  return AF_OK;
}

/* ---------------------------------------------------------------- guard */

typedef struct {
  af_policy *inner;    /* borrowed, or owned (own) */
  double freeze_after; /* fraction of the run; < 0: the warm-up's end */
  int max_step;        /* <= 0: unlimited */
  double when_learned; /* F: wait until an interval's mean loss < (1 - F) x the prior's; 0: none */
  int own;             /* 1: inner is freed with the guard (af_policy_guard_own) */
} guard_ctx;

/* A model that has left the label prior has a training loss below the prior's: (1 - F) x
 * prior_loss, at any boundary so far (loss_min: the condition latches, so a noisy interval
 * after it does not block freezing). A run still at the majority class never gets there. */
static af_status learned(const af_policy *p, const guard_ctx *g, const af_interval_stats *st, int *yes) {
  *yes = 1;
  if (g->when_learned <= 0) return AF_OK;
  if (isnan(st->prior_loss))
    return AF_FAIL(AF_ERR_ARG, "policy '%s': freeze_when_learned needs the label prior's training loss, "
                   "which the run did not give", p->name);
  *yes = st->loss_min < (1.0 - g->when_learned) * st->prior_loss;
  return AF_OK;
}

static int guard_waits(const guard_ctx *g) { return g->freeze_after != 0 || g->when_learned > 0; }

static af_status guard_decide(af_policy *p, const af_interval_stats *st, int *new_depth) {
  const guard_ctx *g = p->ctx;
  *new_depth = st->depth;
  af_interval_stats in = *st;
  if (guard_waits(g)) {
    /* the run's record of the wait (the controller's, checkpointed) is this guard's: a guard
     * inside it sees none and checks its own conditions at every boundary */
    in.wait_end = NULL;
    if (!st->wait_end || *st->wait_end < 0) {
      if (g->freeze_after < 0 ? st->step < st->warmup_steps
                              : (double)st->step < g->freeze_after * (double)st->total_steps)
        return AF_OK;  /* too early: inner is not asked */
      int yes;
      AF_TRY(learned(p, g, st, &yes));
      if (!yes) return AF_OK;  /* nothing learned yet: inner is not asked (a stateful one records no freeze) */
      if (st->wait_end) *st->wait_end = st->step;  /* both conditions only become true (steps grow, loss_min falls) */
    }
    /* a policy that freezes by a learning-rate schedule (FreezeOut) starts it when the wait
     * ends: its clock runs over the rest of the run (the run shifts its factors alike) */
    if (g->inner->lr_scale && st->wait_end && *st->wait_end > 0) {
      in.step -= *st->wait_end;
      in.total_steps -= *st->wait_end;
      if (in.total_steps <= 0) return AF_OK;  /* the wait ended at the last boundary: no run left */
    }
  }
  int nd = st->depth;
  af_status s = g->inner->decide(g->inner, &in, &nd);
  if (s != AF_OK) return s;
  if (g->max_step > 0 && nd > st->depth + g->max_step) nd = st->depth + g->max_step;
  *new_depth = nd;
  return AF_OK;
}

/* the guard's factors are the inner policy's: the run holds them at 1 while the wait lasts
 * and shifts their clock by the step it ended (af_freeze_ctl_wait_end) */
static void guard_lr_scale(af_policy *p, long step, long total, int L, double *scale) {
  const guard_ctx *g = p->ctx;
  g->inner->lr_scale(g->inner, step, total, L, scale);
}

static void guard_destroy(af_policy *p) {
  guard_ctx *g = p->ctx;
  if (g && g->own) af_policy_free(g->inner);
  free_ctx(p);
}

af_status af_policy_guard_own(af_policy *inner, const af_guard_opts *o, af_policy **out) {
  af_status s = af_policy_guard(inner, o, out);
  if (s != AF_OK) {
    af_policy_free(inner);
    return s;
  }
  ((guard_ctx *)(*out)->ctx)->own = 1;
  return AF_OK;
}

/* inner's knobs, then the modifiers that are set */
static void guard_knobs(af_policy *p, const af_policy *inner, const guard_ctx *g) {
  const size_t cap = sizeof p->knobs;
  size_t u = (size_t)snprintf(p->knobs, cap, "%s", inner->knobs);
  if (g->freeze_after < 0 && u < cap)
    u += (size_t)snprintf(p->knobs + u, cap - u, "%sfreeze_after=warmup", u ? " " : "");
  else if (g->freeze_after > 0 && u < cap)
    u += (size_t)snprintf(p->knobs + u, cap - u, "%sfreeze_after=%g", u ? " " : "", g->freeze_after);
  if (g->max_step > 0 && u < cap)
    u += (size_t)snprintf(p->knobs + u, cap - u, "%smax_freeze_step=%d", u ? " " : "", g->max_step);
  if (g->when_learned > 0 && u < cap)
    snprintf(p->knobs + u, cap - u, "%sfreeze_when_learned=%g", u ? " " : "", g->when_learned);
}

af_status af_policy_guard(af_policy *inner, const af_guard_opts *o, af_policy **out) {
  *out = NULL;
  const af_guard_opts none = {0};
  if (!o) o = &none;
  if (!inner || !inner->decide) return AF_FAIL(AF_ERR_ARG, "policy guard: no policy to guard");
  if (!(o->freeze_after <= 1) || isnan(o->freeze_after))
    return AF_FAIL(AF_ERR_ARG, "policy guard: freeze_after must be a fraction in [0, 1] or warmup, got %g",
                   o->freeze_after);
  if (!(o->when_learned >= 0 && o->when_learned < 1))
    return AF_FAIL(AF_ERR_ARG, "policy guard: freeze_when_learned must be a number in [0, 1), got %g",
                   o->when_learned);
  if ((o->freeze_after != 0 || o->when_learned > 0) && inner->initial_depth > 0)
    return AF_FAIL(AF_ERR_ARG, "policy '%s' freezes %d layer(s) from the start, so it cannot wait with freezing "
                   "(%s)", inner->name, inner->initial_depth,
                   o->freeze_after != 0 ? "freeze_after" : "freeze_when_learned");
  af_policy *p;
  AF_TRY(alloc_policy(inner->name, &p));
  guard_ctx *g;
  af_status s = af_calloc((void **)&g, 1, sizeof *g, "policy guard");
  if (s != AF_OK) { free(p); return s; }
  *g = (guard_ctx){.inner = inner, .freeze_after = o->freeze_after < 0 ? -1 : o->freeze_after,
                   .max_step = o->max_step, .when_learned = o->when_learned};
  p->ctx = g;
  p->decide = guard_decide;
  p->destroy = guard_destroy;
  p->lr_scale = inner->lr_scale ? guard_lr_scale : NULL;
  p->initial_depth = inner->initial_depth;
  p->may_unfreeze = inner->may_unfreeze;
  p->wants_val = inner->wants_val;
  p->stateful = inner->stateful;
  p->waits = inner->waits || guard_waits(g);
  guard_knobs(p, inner, g);
  *out = p;
  return AF_OK;
}

/* ---------------------------------------------------------------- prior loss */

double af_prior_loss(const float *targets, size_t n, int num_labels) {
  if (n == 0 || !targets) return NAN;
  if (num_labels <= 1) {  /* squared error: the best constant is the mean; its loss the variance */
    double mean = 0, var = 0;
    for (size_t i = 0; i < n; i++) mean += targets[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++) var += ((double)targets[i] - mean) * ((double)targets[i] - mean);
    return var / (double)n;
  }
  size_t cnt[num_labels], m = 0;  /* cross-entropy: the best constant is the label frequencies */
  memset(cnt, 0, sizeof cnt);
  for (size_t i = 0; i < n; i++)  /* a label as the loss kernel reads it: (int) truncates toward 0 */
    if (targets[i] > -1.0f && targets[i] < (float)num_labels) cnt[(int)targets[i]]++, m++;
  if (m == 0) return NAN;
  double h = 0;
  for (int c = 0; c < num_labels; c++)
    if (cnt[c]) h -= (double)cnt[c] * log((double)cnt[c] / (double)m);
  return h / (double)n;
}

af_status af_policy_custom(const char *name, af_policy_decide_fn decide, void *ctx,
                           af_policy_destroy_fn destroy, af_policy **out) {
  *out = NULL;
  if (!decide) return AF_FAIL(AF_ERR_ARG, "custom policy '%s': no decide function", name ? name : "custom");
  af_policy *p;
  AF_TRY(alloc_policy(name && name[0] ? name : "custom", &p));
  p->ctx = ctx;
  p->decide = decide;
  p->destroy = destroy;
  *out = p;
  return AF_OK;
}

af_status af_policy_depth_from_double(const char *policy, double v, int lo, int hi, int *out) {
  if (!isfinite(v) || v != floor(v) || v < lo || v > hi)
    return AF_FAIL(AF_ERR_ARG,
                   "policy '%s' returned frozen depth %.17g; expected an integer in [%d, %d] "
                   "(the depth never decreases and at least one encoder layer trains)",
                   policy, v, lo, hi);
  *out = (int)v;
  return AF_OK;
}

/* ---------------------------------------------------------------- controller */

struct af_freeze_ctl {
  int L, depth, max_depth, signed_ratio;
  int intervals;             /* ended so far */
  af_policy *policy;         /* borrowed */
  double *prev;              /* [L] previous interval's scores (valid when intervals > 0) */
  double *l1, *l2, *ratio;   /* [L] the last interval, as handed out in af_freeze_decision */
  long total_steps, epoch_steps, warmup_steps;  /* af_freeze_ctl_set_run */
  double val_metric;         /* for the next end_interval; NAN: none */
  double val_start;          /* the one given at the first boundary; NAN: none */
  af_freeze_loss_state loss; /* the interval's training losses so far, the smallest mean at a boundary */
  double prior_loss;         /* the label prior's training loss; NAN: not told */
  long wait_end;             /* the step at whose boundary the policy's wait ended; -1: waiting; 0: none */
  af_freeze_record *hist;
  int nhist, caphist;
};

af_status af_freeze_ctl_create(int L, const af_freeze_opts *opts, af_policy *policy, af_freeze_ctl **out) {
  *out = NULL;
  if (L < 1) return AF_FAIL(AF_ERR_ARG, "freeze controller: need at least one encoder layer, got %d", L);
  if (!policy || !policy->decide) return AF_FAIL(AF_ERR_ARG, "freeze controller: no policy");
  af_freeze_opts o = opts ? *opts : (af_freeze_opts){.max_depth = -1};
  int maxd = L - 1;
  if (o.max_depth >= 0 && o.max_depth < maxd) maxd = o.max_depth;
  if (policy->initial_depth < 0 || policy->initial_depth > maxd)
    return AF_FAIL(AF_ERR_ARG,
                   "policy '%s' freezes %d layer(s) from the start; allowed 0..%d (%d encoder layers, "
                   "at least one must train%s)",
                   policy->name, policy->initial_depth, maxd, L,
                   maxd < L - 1 ? ", and the max depth option" : "");
  af_freeze_ctl *c;
  AF_TRY(af_calloc((void **)&c, 1, sizeof *c, "freeze controller"));
  double *buf;
  af_status s = af_calloc((void **)&buf, (size_t)4 * L, sizeof *buf, "freeze controller");
  if (s != AF_OK) { free(c); return s; }
  c->prev = buf;
  c->l1 = buf + L;
  c->l2 = buf + 2 * L;
  c->ratio = buf + 3 * L;
  for (int l = 0; l < L; l++) c->ratio[l] = NAN;
  c->L = L;
  c->depth = policy->initial_depth;
  c->max_depth = maxd;
  c->signed_ratio = o.signed_ratio != 0;
  c->policy = policy;
  c->val_metric = NAN;
  c->val_start = NAN;
  c->loss.min = INFINITY;
  c->prior_loss = NAN;
  c->wait_end = policy->waits ? -1 : 0;
  *out = c;
  return AF_OK;
}

void af_freeze_ctl_set_run(af_freeze_ctl *c, long total_steps, long epoch_steps, long warmup_steps) {
  c->total_steps = total_steps;
  c->epoch_steps = epoch_steps;
  c->warmup_steps = warmup_steps;
}

void af_freeze_ctl_set_val_metric(af_freeze_ctl *c, double v) { c->val_metric = v; }

void af_freeze_ctl_add_loss(af_freeze_ctl *c, double loss) {
  c->loss.sum += loss;
  c->loss.steps++;
}

void af_freeze_ctl_set_prior_loss(af_freeze_ctl *c, double prior) { c->prior_loss = prior; }
double af_freeze_ctl_prior_loss(const af_freeze_ctl *c) { return c->prior_loss; }
void af_freeze_ctl_loss_state(const af_freeze_ctl *c, af_freeze_loss_state *out) { *out = c->loss; }
void af_freeze_ctl_restore_loss(af_freeze_ctl *c, const af_freeze_loss_state *s) { c->loss = *s; }
long af_freeze_ctl_wait_end(const af_freeze_ctl *c) { return c->wait_end; }
void af_freeze_ctl_restore_wait_end(af_freeze_ctl *c, long step) {
  if (c->policy->waits) c->wait_end = step;
}

void af_freeze_ctl_free(af_freeze_ctl *c) {
  if (!c) return;
  free(c->prev);
  free(c->hist);
  free(c);
}

int af_freeze_ctl_depth(const af_freeze_ctl *c) { return c->depth; }
int af_freeze_ctl_max_depth(const af_freeze_ctl *c) { return c->max_depth; }
int af_freeze_ctl_intervals(const af_freeze_ctl *c) { return c->intervals; }
const double *af_freeze_ctl_prev_scores(const af_freeze_ctl *c) { return c->intervals > 0 ? c->prev : NULL; }

const af_freeze_record *af_freeze_ctl_history(const af_freeze_ctl *c, int *n) {
  *n = c->nhist;
  return c->hist;
}

af_status af_freeze_ctl_end_interval(af_freeze_ctl *c, long step, const double *l1, const double *l2,
                                     af_freeze_decision *out) {
  int L = c->L, F = c->depth;
  for (int l = F; l < L; l++) {
    if (!(l1[l] >= 0) || isinf(l1[l]))
      return AF_FAIL(AF_ERR_NUMERIC, "interval %d: layer %d gradient L1 score is %g (expected finite >= 0)",
                     c->intervals, l, l1[l]);
    if (l2 && (!(l2[l] >= 0) || isinf(l2[l])))
      return AF_FAIL(AF_ERR_NUMERIC, "interval %d: layer %d gradient L2 norm is %g (expected finite >= 0)",
                     c->intervals, l, l2[l]);
  }
  /* Grow the log first: past this point nothing can fail except the policy. */
  if (c->nhist == c->caphist) {
    int cap = c->caphist ? 2 * c->caphist : 32;
    af_freeze_record *h = realloc(c->hist, (size_t)cap * sizeof *h);
    if (!h) return AF_FAIL(AF_ERR_NOMEM, "out of memory growing the freeze decision log");
    c->hist = h;
    c->caphist = cap;
  }
  int first = c->intervals == 0;
  for (int l = 0; l < L; l++) {
    int frozen = l < F;
    c->l1[l] = frozen ? 0 : l1[l];
    c->l2[l] = frozen || !l2 ? 0 : l2[l];
    double prev = c->prev[l];
    if (first || frozen || prev == 0) c->ratio[l] = NAN;
    else if (c->signed_ratio) c->ratio[l] = (prev - c->l1[l]) / prev;
    else c->ratio[l] = fabs(prev - c->l1[l]) / prev;
  }
  int nd = F;
  const double val = c->val_metric;
  c->val_metric = NAN;  /* one measurement, one decision */
  if (first) c->val_start = val;
  const double loss = c->loss.steps > 0 ? c->loss.sum / (double)c->loss.steps : NAN;
  const double loss_min = loss < c->loss.min ? loss : c->loss.min;
  if (!first) {
    af_interval_stats st = {.interval = c->intervals, .step = step, .L = L, .depth = F,
                            .max_depth = c->max_depth, .l1 = c->l1, .l2 = c->l2, .ratio = c->ratio,
                            .total_steps = c->total_steps, .epoch_steps = c->epoch_steps,
                            .warmup_steps = c->warmup_steps, .val_metric = val, .val_start = c->val_start,
                            .loss = loss, .loss_min = loss_min, .prior_loss = c->prior_loss,
                            .wait_end = &c->wait_end};
    af_status s = c->policy->decide(c->policy, &st, &nd);
    if (s != AF_OK) {
      if (!strncmp(af_last_error(), "policy '", 8))  /* already names the policy */
        af_error_prefix("interval %d: ", c->intervals);
      else
        af_error_prefix("policy '%s' at interval %d: ", c->policy->name, c->intervals);
      return s;
    }
    const int lo = c->policy->may_unfreeze ? c->policy->initial_depth : F;
    if (nd < lo || nd > c->max_depth)
      return AF_FAIL(AF_ERR_ARG,
                     "policy '%s' returned frozen depth %d at interval %d (step %ld); allowed %d..%d "
                     "(%s and at least one of the %d encoder layers trains%s)",
                     c->policy->name, nd, c->intervals, step, lo, c->max_depth,
                     c->policy->may_unfreeze ? "never below the initial depth" : "the depth never decreases", L,
                     c->max_depth < L - 1 ? "; max depth option" : "");
  }
  memcpy(c->prev, c->l1, (size_t)L * sizeof *c->prev);
  c->loss = (af_freeze_loss_state){.min = loss_min};  /* the next interval's losses start from none */
  c->hist[c->nhist++] = (af_freeze_record){.interval = c->intervals, .step = step,
                                           .depth_before = F, .depth_after = nd};
  if (out)
    *out = (af_freeze_decision){.interval = c->intervals, .step = step, .depth_before = F,
                                .depth_after = nd, .policy_called = !first,
                                .l1 = c->l1, .l2 = c->l2, .ratio = c->ratio};
  c->depth = nd;
  c->intervals++;
  return AF_OK;
}

af_status af_freeze_ctl_restore(af_freeze_ctl *c, int intervals_done, int depth, const double *prev_scores) {
  if (intervals_done < 0 || depth < c->policy->initial_depth || depth > c->max_depth)
    return AF_FAIL(AF_ERR_ARG, "freeze controller restore: interval count %d / depth %d out of range "
                   "(depth %d..%d)", intervals_done, depth, c->policy->initial_depth, c->max_depth);
  if (intervals_done > 0 && c->policy->stateful)
    return AF_FAIL(AF_ERR_ARG, "policy '%s' decides from state that checkpoints do not hold (its trial and best "
                   "validation metric); a run with it cannot be resumed: start it again", c->policy->name);
  if (intervals_done > 0 && !prev_scores)
    return AF_FAIL(AF_ERR_ARG, "freeze controller restore: %d intervals done but no previous scores",
                   intervals_done);
  for (int l = 0; l < c->L; l++) {
    c->prev[l] = intervals_done > 0 ? prev_scores[l] : 0;
    c->ratio[l] = NAN;
  }
  c->intervals = intervals_done;
  c->depth = depth;
  c->nhist = 0;
  return AF_OK;
}
