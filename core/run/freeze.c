/* The freeze controller (change ratios, invariants, decision log) and the built-in policies:
 * none, static and the AutoFreeze adaptive rule. The controller, not the policy, owns every
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

const char *const af_policy_kind_names[] = {"none", "static", "adaptive", NULL};

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
  p->ctx = a;
  p->decide = adaptive_decide;
  p->destroy = adaptive_destroy;
  if (a->max_depth >= 0)
    snprintf(p->knobs, sizeof p->knobs, "percentile=%g max_depth=%d", percentile, a->max_depth);
  else
    snprintf(p->knobs, sizeof p->knobs, "percentile=%g", percentile);
  *out = p;
  return AF_OK;
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
  *out = c;
  return AF_OK;
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
  if (!first) {
    af_interval_stats st = {.interval = c->intervals, .step = step, .L = L, .depth = F,
                            .max_depth = c->max_depth, .l1 = c->l1, .l2 = c->l2, .ratio = c->ratio};
    af_status s = c->policy->decide(c->policy, &st, &nd);
    if (s != AF_OK) {
      if (!strncmp(af_last_error(), "policy '", 8))  /* already names the policy */
        af_error_prefix("interval %d: ", c->intervals);
      else
        af_error_prefix("policy '%s' at interval %d: ", c->policy->name, c->intervals);
      return s;
    }
    if (nd < F || nd > c->max_depth)
      return AF_FAIL(AF_ERR_ARG,
                     "policy '%s' returned frozen depth %d at interval %d (step %ld); allowed %d..%d "
                     "(the depth never decreases and at least one of the %d encoder layers trains%s)",
                     c->policy->name, nd, c->intervals, step, F, c->max_depth, L,
                     c->max_depth < L - 1 ? "; max depth option" : "");
  }
  memcpy(c->prev, c->l1, (size_t)L * sizeof *c->prev);
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
