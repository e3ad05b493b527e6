/* The policy a run runs, made from its options: one place, so that af_train and what
 * predicts its /config (af.policy_of, which af.sweep compares finished cells with) agree. */
#include <stdio.h>
#include <string.h>
#include "core/run/train.h"

/* --freeze-when-learned unset: the policies that freeze on a clock, blind to learning (pipe,
 * FreezeOut), wait until the run has left the label prior's loss, 10% below it: unguarded,
 * they freeze a task that learns late at the majority class (docs/policies.md, safety).
 * One that already waits (auto's preset) or starts frozen (static) gets nothing more. */
static double default_when_learned(const af_policy *p) {
  if (p->waits || p->initial_depth > 0) return 0;
  return !strcmp(p->name, "pipe") || !strcmp(p->name, "freezeout") ? 0.1 : 0;
}

af_status af_run_policy_make(const af_train_opts *o, af_run_policy *rp) {
  memset(rp, 0, sizeof *rp);
  af_policy *own = NULL;
  if (!o->policy) {
    af_gated_opts g;
    af_status s;
    switch (o->policy_kind) {
    case AF_POLICY_STATIC: s = af_policy_static(o->frozen, &own); break;
    case AF_POLICY_ADAPTIVE: s = af_policy_adaptive(o->percentile, o->freeze.max_depth, &own); break;
    case AF_POLICY_PIPE: s = af_policy_pipe(o->alpha, &own); break;
    case AF_POLICY_FREEZEOUT: {
      const af_freezeout_opts fo = {.t0 = o->freezeout_t0, .cubic = o->freezeout_schedule,
                                    .scaled = o->freezeout_scaled};
      s = af_policy_freezeout(&fo, &own);
      break;
    }
    case AF_POLICY_AUTO: s = af_policy_preset("auto", &own); break;
    case AF_POLICY_GATED:
      af_gated_defaults(&g);
      g.percentile = o->percentile;
      g.max_depth = o->freeze.max_depth;
      g.tolerance = o->tolerance;
      s = af_policy_gated(&g, &own);
      break;
    default: s = af_policy_none(&own); break;
    }
    if (s != AF_OK) return s;
  }
  af_policy *p = o->policy ? o->policy : own;
  /* any policy: a slice held out (gated decides on it; gated's auto is its default, no knob) */
  const int val_knob = o->val_rows > 0 && !(o->val_rows == AF_VAL_ROWS_AUTO && p->wants_val);
  const double when_learned = o->freeze_when_learned >= 0 ? o->freeze_when_learned : default_when_learned(p);
  const af_guard_opts go = {.freeze_after = o->freeze_after, .max_step = o->max_freeze_step,
                            .when_learned = when_learned};
  af_policy *guard = NULL;
  if (go.freeze_after != 0 || go.max_step > 0 || go.when_learned > 0 || val_knob) {
    af_status s = af_policy_guard(p, &go, &guard);
    if (s != AF_OK) {
      af_policy_free(own);
      return s;
    }
    size_t u = strlen(guard->knobs);  /* the slice's size shapes the run: recorded with the knobs */
    if (val_knob && u < sizeof guard->knobs) {
      char v[32];  /* the option's own text: N or auto */
      af_opt_get(af_opt_find("val_rows"), o, v, sizeof v);
      snprintf(guard->knobs + u, sizeof guard->knobs - u, "%sval_rows=%s", u ? " " : "", v);
    }
  }
  rp->own = own;
  rp->guard = guard;
  rp->policy = guard ? guard : p;
  rp->when_learned = when_learned;
  return AF_OK;
}

void af_run_policy_free(af_run_policy *rp) {
  af_policy_free(rp->guard);  /* before the policy it borrows */
  af_policy_free(rp->own);
  memset(rp, 0, sizeof *rp);
}
