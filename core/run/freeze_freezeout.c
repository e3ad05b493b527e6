/* FreezeOut (Brock, Lim, Ritchie, Weston, "FreezeOut: Accelerate Training by Progressively
 * Freezing Layers", arXiv:1706.04983, 2017) as a freeze policy: every encoder layer but the
 * last anneals its learning rate to zero on a cosine that ends at its own freeze time t_i, and
 * freezes there. Both the depth and the rates are functions of step/total alone, so a resumed
 * run continues exactly (no state to checkpoint). Formulas: docs/algorithm.md, "FreezeOut". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "core/run/freeze.h"

const char *const af_freezeout_schedule_names[] = {"linear", "cubic", NULL};

void af_freezeout_defaults(af_freezeout_opts *o) { *o = (af_freezeout_opts){.t0 = 0.5, .cubic = 0, .scaled = 0}; }

/* The authors' code (github.com/ajbrock/FreezeOut, utils.py scale_fn and densenet.py
 * lr_ratio) spaces the freeze times as scale(t_0 + (1 - t_0)*i/N) with scale x, x^2 or x^3;
 * its cubic t_0 is "pre-cubed" (0.8 -> layer 0 at 0.512). Here t0 is always layer 0's time,
 * so the cubic spacing starts from cbrt(t0). */
double af_freezeout_time(const af_freezeout_opts *o, int i, int L) {
  if (L < 2 || i >= L - 1) return 1.0;
  const double frac = (double)i / (double)(L - 1);
  if (!o->cubic) return o->t0 + (1.0 - o->t0) * frac;
  const double c = cbrt(o->t0), x = c + (1.0 - c) * frac;
  return x * x * x;
}

/* layer i's factor at t: the cosine to zero at t_i (the paper's alpha_i(t) with the 1/2 its
 * README says the text lost), 0 once past it */
static double factor(const af_freezeout_opts *o, int i, int L, double t) {
  if (i >= L - 1) return 1.0;  /* the last layer follows the run's own schedule */
  const double ti = af_freezeout_time(o, i, L);
  if (!(t < ti)) return 0.0;
  const double f = 0.5 * (1.0 + cos(3.14159265358979323846 * t / ti));
  return o->scaled ? f / ti : f;
}

static void freezeout_lr(af_policy *p, long step, long total, int L, double *scale) {
  const af_freezeout_opts *o = p->ctx;
  const double t = total > 0 ? (double)step / (double)total : 0.0;
  scale[0] *= factor(o, 0, L, t);  /* the embeddings go with layer 0: they freeze with it */
  for (int l = 0; l < L; l++) scale[1 + l] *= factor(o, l, L, t);
}

/* the prefix of layers whose freeze time has come (t_i grows with i, so it is a prefix) */
static af_status freezeout_decide(af_policy *p, const af_interval_stats *st, int *new_depth) {
  const af_freezeout_opts *o = p->ctx;
  *new_depth = st->depth;
  if (st->total_steps <= 0) return AF_FAIL(AF_ERR_ARG, "policy 'freezeout': the run did not say its length");
  const double t = (double)st->step / (double)st->total_steps;
  int k = 0;
  while (k < st->L - 1 && t >= af_freezeout_time(o, k, st->L)) k++;
  if (k > st->max_depth) k = st->max_depth;
  if (k > st->depth) *new_depth = k;
  return AF_OK;
}

static void freezeout_destroy(af_policy *p) {
  free(p->ctx);
  p->ctx = NULL;
}

af_status af_policy_freezeout(const af_freezeout_opts *o, af_policy **out) {
  *out = NULL;
  af_freezeout_opts d;
  if (!o) af_freezeout_defaults(&d), o = &d;
  if (!(o->t0 > 0 && o->t0 <= 1))
    return AF_FAIL(AF_ERR_ARG, "freezeout policy: t0 (layer 0's freeze time, a fraction of the run) must be in "
                   "(0, 1], got %g", o->t0);
  af_policy *p;
  AF_TRY(af_calloc((void **)&p, 1, sizeof *p, "freezeout policy"));
  af_freezeout_opts *c;
  af_status s = af_calloc((void **)&c, 1, sizeof *c, "freezeout policy");
  if (s != AF_OK) {
    free(p);
    return s;
  }
  *c = (af_freezeout_opts){.t0 = o->t0, .cubic = o->cubic != 0, .scaled = o->scaled != 0};
  snprintf(p->name, sizeof p->name, "freezeout");
  snprintf(p->knobs, sizeof p->knobs, "t0=%g schedule=%s scaled=%s", c->t0, af_freezeout_schedule_names[c->cubic],
           c->scaled ? "true" : "false");
  p->ctx = c;
  p->decide = freezeout_decide;
  p->destroy = freezeout_destroy;
  p->lr_scale = freezeout_lr;
  *out = p;
  return AF_OK;
}
