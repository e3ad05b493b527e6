/* Policy presets: a named policy defined by one line of text (a spec: a built-in policy, its
 * knobs, then the guard's modifiers). The table below is the only definition of a preset:
 * --policy NAME, Lua's af.policy.NAME{} and --help all read it, and a run records the spec as
 * the policy's knobs (so a resume after the definition changed is refused). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/run/freeze.h"

/* auto: the policy to use without choosing one. Until the policy lab (docs/policies.md) has
 * results, the paper's rule held back by issue 14's guards: no freezing during the learning
 * rate's warm-up, at most one more layer per decision, at least two layers training, and no
 * freezing before the training loss is 10% below the label prior's (a run still at the
 * majority class freezes nothing; docs/algorithm.md says why 0.1).
 * Changing auto is changing this line (and docs/algorithm.md's sentence quoting it). */
static const struct {
  const char *name, *spec;
} presets[] = {
    {"auto", "adaptive percentile=50 keep=2 freeze_after=warmup max_freeze_step=1 freeze_when_learned=0.1"},
};

const char *af_policy_preset_spec(const char *name) {
  for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
    if (name && !strcmp(presets[i].name, name)) return presets[i].spec;
  return NULL;
}

af_status af_policy_preset(const char *name, af_policy **out) {
  *out = NULL;
  const char *spec = af_policy_preset_spec(name);
  if (!spec) return AF_FAIL(AF_ERR_ARG, "no policy preset named '%s'", name ? name : "(null)");
  return af_policy_from_spec(name, spec, out);
}

/* ---- the spec's words ---- */

typedef struct {
  int kind;                 /* af_policy_kind of the base */
  double percentile, alpha, freeze_after, when_learned;
  int max_depth, max_step;
  af_gated_opts gated;      /* percentile, max_depth and keep are copied in at the end */
  af_freezeout_opts fo;
  int keep;
} spec_vals;

#define K(kind) (1u << (kind))
#define ANY (~0u)
static const struct {
  const char *key;
  unsigned kinds;  /* the bases that take it (the modifiers: any) */
} spec_keys[] = {
    {"percentile", K(AF_POLICY_ADAPTIVE) | K(AF_POLICY_GATED)},
    {"max_depth", K(AF_POLICY_ADAPTIVE) | K(AF_POLICY_GATED)},
    {"keep", K(AF_POLICY_ADAPTIVE) | K(AF_POLICY_GATED)},
    {"tolerance", K(AF_POLICY_GATED)},
    {"alpha", K(AF_POLICY_PIPE)},
    {"t0", K(AF_POLICY_FREEZEOUT)},
    {"schedule", K(AF_POLICY_FREEZEOUT)},
    {"scaled", K(AF_POLICY_FREEZEOUT)},
    {"freeze_after", ANY},
    {"max_freeze_step", ANY},
    {"freeze_when_learned", ANY},
};

static int parse_num(const char *v, double *out) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (end == v || *end || errno) return 0;
  *out = x;
  return 1;
}

static int parse_int(const char *v, int lo, int *out) {
  double x;
  if (!parse_num(v, &x) || x != (double)(int)x || x < lo) return 0;
  *out = (int)x;
  return 1;
}

/* one key=value into s; 0 when the value is not one the key takes */
static int set_key(spec_vals *s, const char *k, const char *v) {
  if (!strcmp(k, "percentile")) return parse_num(v, &s->percentile);
  if (!strcmp(k, "max_depth")) return parse_int(v, 0, &s->max_depth);
  if (!strcmp(k, "keep")) return parse_int(v, 1, &s->keep);
  if (!strcmp(k, "tolerance")) return parse_num(v, &s->gated.tolerance);
  if (!strcmp(k, "alpha")) return parse_num(v, &s->alpha);
  if (!strcmp(k, "t0")) return parse_num(v, &s->fo.t0);
  if (!strcmp(k, "schedule")) {
    for (int i = 0; af_freezeout_schedule_names[i]; i++)
      if (!strcmp(v, af_freezeout_schedule_names[i])) return s->fo.cubic = i, 1;
    return 0;
  }
  if (!strcmp(k, "scaled")) {
    if (strcmp(v, "true") && strcmp(v, "false")) return 0;
    return s->fo.scaled = !strcmp(v, "true"), 1;
  }
  if (!strcmp(k, "freeze_after")) {
    if (!strcmp(v, "warmup")) return s->freeze_after = -1, 1;
    return parse_num(v, &s->freeze_after) && s->freeze_after >= 0 && s->freeze_after <= 1;
  }
  if (!strcmp(k, "max_freeze_step")) return parse_int(v, 1, &s->max_step);
  if (!strcmp(k, "freeze_when_learned"))
    return parse_num(v, &s->when_learned) && s->when_learned >= 0 && s->when_learned < 1;
  return 0;
}

/* the words of spec into s: a base policy, then key=value pairs that base (or any) takes */
static af_status parse_spec(const char *name, const char *spec, spec_vals *s) {
  char buf[256], *save = NULL;
  if (strlen(spec) >= sizeof buf || strlen(spec) >= sizeof ((af_policy *)0)->knobs)
    return AF_FAIL(AF_ERR_ARG, "policy '%s': the spec '%s' is too long", name, spec);
  snprintf(buf, sizeof buf, "%s", spec);
  char *w = strtok_r(buf, " ", &save);
  s->kind = -1;
  for (int k = 0; w && af_policy_kind_names[k]; k++)
    if (!strcmp(w, af_policy_kind_names[k])) s->kind = k;
  if (s->kind < 0 || s->kind == AF_POLICY_STATIC || s->kind == AF_POLICY_AUTO)
    return AF_FAIL(AF_ERR_ARG, "policy '%s' (%s): expected a base policy first (none, adaptive, pipe, gated or "
                   "freezeout), found '%s'", name, spec, w ? w : "");
  while ((w = strtok_r(NULL, " ", &save))) {
    char *eq = strchr(w, '=');
    size_t i = 0, n = sizeof spec_keys / sizeof spec_keys[0];
    if (eq) *eq = 0;
    while (i < n && strcmp(spec_keys[i].key, w)) i++;
    if (!eq || i == n || !(spec_keys[i].kinds & K(s->kind)))
      return AF_FAIL(AF_ERR_ARG, "policy '%s' (%s): '%s' is not a key=value that %s takes", name, spec, w,
                     af_policy_kind_names[s->kind]);
    if (!set_key(s, w, eq + 1))
      return AF_FAIL(AF_ERR_ARG, "policy '%s' (%s): %s cannot be '%s'", name, spec, w, eq + 1);
  }
  return AF_OK;
}

static af_status make_base(const spec_vals *s, af_policy **out) {
  af_gated_opts g = s->gated;
  switch (s->kind) {
  case AF_POLICY_ADAPTIVE: return af_policy_adaptive_keep(s->percentile, s->max_depth, s->keep, out);
  case AF_POLICY_PIPE: return af_policy_pipe(s->alpha, out);
  case AF_POLICY_FREEZEOUT: return af_policy_freezeout(&s->fo, out);
  case AF_POLICY_GATED:
    g.percentile = s->percentile;
    g.max_depth = s->max_depth;
    g.keep = s->keep;
    return af_policy_gated(&g, out);
  default: return af_policy_none(out);
  }
}

af_status af_policy_from_spec(const char *name, const char *spec, af_policy **out) {
  *out = NULL;
  spec_vals s = {.percentile = 50, .alpha = 0.25, .max_depth = -1};
  af_gated_defaults(&s.gated);
  af_freezeout_defaults(&s.fo);
  AF_TRY(parse_spec(name, spec, &s));
  af_policy *base = NULL, *p = NULL;
  af_status st = make_base(&s, &base);
  const af_guard_opts go = {.freeze_after = s.freeze_after, .max_step = s.max_step, .when_learned = s.when_learned};
  if (st == AF_OK && (go.freeze_after != 0 || go.max_step > 0 || go.when_learned > 0))
    st = af_policy_guard_own(base, &go, &p);  /* frees the base when it fails */
  else p = base;
  if (st != AF_OK) {
    af_error_prefix("policy '%s' (%s): ", name, spec);
    return st;
  }
  snprintf(p->name, sizeof p->name, "%s", name);
  snprintf(p->knobs, sizeof p->knobs, "%s", spec);  /* what the run records: the definition it ran */
  *out = p;
  return AF_OK;
}
