/* The freeze controller and its policies. A policy sees one interval's per-layer gradient
 * statistics and the current frozen depth and proposes a new depth; the controller owns the
 * previous interval's scores, computes the change ratios, calls the policy and enforces the
 * invariants (depth never decreases -- unless the policy says it may unfreeze --, one encoder
 * layer always trains, user maximum), so a policy -- built-in or a Lua function -- can never
 * break them. See docs/algorithm.md for the rules. */
#ifndef AF_FREEZE_H
#define AF_FREEZE_H
#include <stddef.h>
#include "core/base/status.h"

/* One interval's statistics as a policy sees them. Layer l is encoder layer l (0..L-1);
 * layers l < depth are frozen. */
typedef struct {
  int interval;          /* 0-based index of the interval that just ended */
  long step;             /* optimizer steps done when it ended */
  int L;                 /* encoder layers */
  int depth;             /* current frozen depth F (layers 0..F-1 frozen) */
  int max_depth;         /* the largest depth the controller accepts: min(user max, L-1) */
  const double *l1;      /* [L] score s_l = sum over the layer's tensors of ||summed grad||_1; 0 when frozen */
  const double *l2;      /* [L] L2 norm of the layer's summed gradient (all its tensors); 0 when frozen */
  const double *ratio;   /* [L] change ratio vs the previous interval; NAN when undefined:
                            first interval, frozen layer, or previous score 0 */
  long total_steps;      /* the run's optimizer steps (0: not told, af_freeze_ctl_set_run) */
  long epoch_steps;      /* optimizer steps per epoch (0: not told) */
  long warmup_steps;     /* the schedule's warm-up steps (0: none) */
  double val_metric;     /* the primary metric on the validation slice carved from the training
                            split, measured just before this decision; NAN unless the policy
                            asked for it (wants_val) */
  double val_start;      /* the same at the run's first boundary (before any freezing); NAN: none */
  double loss;           /* mean training loss over the interval's optimizer steps (the /steps losses);
                            NAN: the run recorded none (af_freeze_ctl_add_loss) */
  double loss_min;       /* the smallest such mean at any boundary so far, this one included
                            (INFINITY: none) */
  double prior_loss;     /* the training loss of the label prior (af_prior_loss); NAN: not told */
  long *wait_end;        /* the controller's record of the step at whose boundary the policy's
                            wait (a guard's) ended: -1 while it waits; a waiting guard sets it.
                            NULL: none kept (a guard then checks its conditions every time) */
} af_interval_stats;

typedef struct af_policy af_policy;
typedef af_status (*af_policy_decide_fn)(af_policy *p, const af_interval_stats *st, int *new_depth);
typedef void (*af_policy_destroy_fn)(af_policy *p);
/* A policy's own learning-rate factors for optimizer step `step` (0-based) of `total`:
 * multiplies scale[0] (the embeddings), scale[1 + l] (encoder layer l) and scale[L + 1] (the
 * head: pooler and classifier) by its factor for that group. Called before every step, so it
 * must be a function of (step, total) alone: a resumed run then gets the same rates (under a
 * waiting guard the run passes the clock shifted by the checkpointed step the wait ended). */
typedef void (*af_policy_lr_fn)(af_policy *p, long step, long total, int L, double *scale);

struct af_policy {
  char name[32];          /* "none", "static", "adaptive" or the custom name; used in errors */
  char knobs[128];        /* "percentile=50 max_depth=5": for the results file */
  int initial_depth;      /* depth at step 0 (static: K; others 0) */
  void *ctx;              /* policy state; owned by the policy, released by destroy */
  af_policy_decide_fn decide;    /* set *new_depth (starts as st->depth) */
  af_policy_destroy_fn destroy;  /* may be NULL; releases ctx, not the struct */
  int may_unfreeze;       /* 1: the controller accepts a lower depth (down to initial_depth) */
  int wants_val;          /* 1: the run holds out a validation slice of the training split and
                             passes its metric in af_interval_stats.val_metric */
  int stateful;           /* 1: decisions depend on state checkpoints do not hold: no resume */
  af_policy_lr_fn lr_scale;  /* per-layer learning-rate factors (FreezeOut); NULL: none */
  int waits;              /* 1: a guard holds the decisions (and factors) until a condition holds */
};

/* The built-in policies by name (--policy, Lua policy = "adaptive"). */
typedef enum {
  AF_POLICY_NONE = 0, AF_POLICY_STATIC, AF_POLICY_ADAPTIVE, AF_POLICY_PIPE, AF_POLICY_GATED, AF_POLICY_FREEZEOUT,
  AF_POLICY_AUTO
} af_policy_kind;
/* "none", "static", "adaptive", "pipe", "gated", "freezeout", "auto", NULL */
extern const char *const af_policy_kind_names[];

/* Never freezes. */
af_status af_policy_none(af_policy **out);
/* Layers 0..k-1 frozen from the start, never more (k = L-1 is the paper's static baseline).
 * k is checked against L when the controller is created. */
af_status af_policy_static(int k, af_policy **out);
/* The AutoFreeze rule. percentile in [0,100] (paper: 50). max_depth: cap on the depth
 * (< 0: none, i.e. L-1). A NaN ratio of a trainable layer (its previous score was 0, so its
 * change is undefined) is left out of the percentile and stops the upward scan, as an
 * infinite change would: a layer is never frozen on an undefined measurement. */
af_status af_policy_adaptive(double percentile, int max_depth, af_policy **out);
/* The same, also capped at L - keep: at least `keep` encoder layers train whatever L is
 * (keep <= 0: no such cap). Knob "keep=K". */
af_status af_policy_adaptive_keep(double percentile, int max_depth, int keep, af_policy **out);
/* PipeTransformer's progressive schedule (He et al. 2021, "freeze algorithm"): after e
 * completed epochs, ceil(L*(1-(1-alpha)^e)) layers frozen (the closed form of
 * F_e = F_{e-1} + alpha*(L - F_{e-1}), F_0 = 0), capped at the max depth. alpha in (0, 1].
 * Needs epoch_steps in the statistics (af_freeze_ctl_set_run). */
af_status af_policy_pipe(double alpha, af_policy **out);
/* The number of layers pipe freezes after e epochs of L layers (uncapped; tests). */
int af_pipe_frozen(int L, double alpha, long e);

/* Validation-gated adaptive rule with rollback (docs/algorithm.md, "gated"): the adaptive
 * rule (percentile, max_depth) proposes freezes; a freeze is on trial for `trial` decisions,
 * and while the validation metric stays within `tolerance` of its best since the freeze it is
 * kept; otherwise the depth goes back to where it was before the freeze and no new freeze is
 * proposed for `cooldown` decisions. No deeper freeze starts while one is on trial, nor before
 * the metric has risen more than `tolerance` above its value at the first boundary (the model
 * has learned something: a run still at the majority class freezes nothing). */
typedef struct {
  double percentile;  /* 50 */
  int max_depth;      /* -1: none */
  double tolerance;   /* 0.02: in metric units (accuracy 0..1) */
  int trial;          /* 2 decisions */
  int cooldown;       /* 2 decisions */
  int keep;           /* 0: none; else the rule keeps at least `keep` layers training (adaptive_keep) */
} af_gated_opts;
void af_gated_defaults(af_gated_opts *o);
af_status af_policy_gated(const af_gated_opts *o, af_policy **out);

/* Modifiers for any policy (a wrapper that borrows `inner`, which must outlive it):
 *   freeze_after: no decision is asked of inner before step freeze_after*total_steps (< 0: the
 *                 end of the learning-rate warm-up, warmup_steps; 0: no such wait);
 *   max_step:     a decision freezes at most max_step more layers (<= 0: unlimited);
 *   when_learned: F in [0, 1): no decision is asked of inner until an interval's mean training
 *                 loss has been below (1 - F) x prior_loss at some boundary (loss_min; latched:
 *                 it stays satisfied); 0: no such wait. Until then the depth is the initial
 *                 one, so there is nothing to roll back; from then on rollbacks pass.
 * Lower depths (a rollback) pass unchanged. A guard with a wait records the step s of the
 * boundary where it ends in st->wait_end (the controller's: af_freeze_ctl_wait_end). An inner
 * policy with learning-rate factors (FreezeOut) then sees a clock of the rest of the run
 * (step - s of total - s) in its decisions, and the run holds its factors at 1 during the wait
 * and shifts their clock alike. Name, initial depth and flags are inner's; knobs
 * are inner's plus "freeze_after=...", "max_freeze_step=..." and "freeze_when_learned=...".
 * A policy starting frozen (initial depth > 0) takes no wait (freeze_after, when_learned). */
typedef struct {
  double freeze_after;  /* fraction of the run in [0, 1]; -1: the warm-up's end; 0: none */
  int max_step;         /* <= 0: unlimited */
  double when_learned;  /* F in [0, 1); 0: none */
} af_guard_opts;
af_status af_policy_guard(af_policy *inner, const af_guard_opts *o, af_policy **out);
/* The same, owning inner: freed with the wrapper, or at once when this fails. */
af_status af_policy_guard_own(af_policy *inner, const af_guard_opts *o, af_policy **out);
/* The mean training loss of a model that learned only the label frequencies of the training
 * rows, under the run's loss: num_labels > 1, cross-entropy: sum over classes c of
 * -n_c ln(n_c / m) / n, with n_c the rows of class c and m those with a label in [0,
 * num_labels) (a row outside counts with loss 0, as the loss kernel has it), i.e. H(p) when
 * every label is valid; num_labels == 1, squared error: the targets' variance (divided by n).
 * n == 0 (or m == 0): NAN. */
double af_prior_loss(const float *targets, size_t n, int num_labels);

/* FreezeOut (Brock, Lim, Ritchie, Weston 2017; core/run/freeze_freezeout.c, docs/algorithm.md):
 * encoder layer i < L-1 has a freeze time t_i, a fraction of the run; its learning rate is
 * the run's times 0.5*(1 + cos(pi*t/t_i)) while t = step/total < t_i (times 1/t_i when scaled),
 * 0 after, and it freezes at the first boundary with t >= t_i. The embeddings follow layer 0;
 * the last layer and the head keep the run's rate. Stateless: a function of step/total. */
typedef struct {
  double t0;    /* layer 0's freeze time, in (0, 1] (0.5) */
  int cubic;    /* 0: t_i = t0 + (1-t0)*i/(L-1); 1: the authors' cubic spacing, t_i = (c + (1-c)*i/(L-1))^3
                   with c = cbrt(t0), so t0 stays layer 0's freeze time */
  int scaled;   /* 1: layer i's rate divided by t_i (the same area under every layer's curve) */
} af_freezeout_opts;
extern const char *const af_freezeout_schedule_names[];  /* "linear", "cubic", NULL (index = cubic) */
void af_freezeout_defaults(af_freezeout_opts *o);
af_status af_policy_freezeout(const af_freezeout_opts *o, af_policy **out);
/* t_i of encoder layer i of L (1 for the last layer: it never freezes). */
double af_freezeout_time(const af_freezeout_opts *o, int i, int L);

/* Presets (core/run/freeze_preset.c): a named policy defined by one line of text, its
 * "spec": a built-in policy and its knobs, then modifiers, e.g. "adaptive percentile=50
 * keep=2 freeze_after=warmup max_freeze_step=1". The policy carries the preset's name and
 * the spec as its knobs. af_policy_preset_spec: the spec of a preset, NULL when unknown. */
const char *af_policy_preset_spec(const char *name);
af_status af_policy_preset(const char *name, af_policy **out);
/* A policy from any spec (tests, the presets); name: what the policy is called. Unknown
 * words and bad values are AF_ERR_ARG naming the spec. */
af_status af_policy_from_spec(const char *name, const char *spec, af_policy **out);

/* A policy backed by a callback (the Lua binding). name is copied (truncated to 31 chars);
 * destroy(p) is called on af_policy_free and may release ctx. */
af_status af_policy_custom(const char *name, af_policy_decide_fn decide, void *ctx,
                           af_policy_destroy_fn destroy, af_policy **out);
/* Calls destroy and frees. NULL-safe. */
void af_policy_free(af_policy *p);

/* Convert a depth returned as a number (Lua) to an int: a NaN, infinite or non-integer value,
 * or one outside [lo, hi], is AF_ERR_ARG naming the policy, the value and the range. */
af_status af_policy_depth_from_double(const char *policy, double v, int lo, int hi, int *out);

/* The numpy-default (linear) percentile of n values, p in [0,100]; v is sorted in place.
 * n == 0 gives NAN. Matches numpy.percentile bit for bit (numpy >= 1.22 lerp). */
double af_percentile_linear(double *v, int n, double p);

/* ---- the controller ---- */
typedef struct {
  int max_depth;      /* user cap; < 0: none. Clipped to L-1 (one encoder layer always trains) */
  int signed_ratio;   /* 1: the paper's r = (s_prev - s)/s_prev; 0 (default): the code's |.| */
} af_freeze_opts;

/* One decision as recorded by the controller. */
typedef struct {
  int interval;
  long step;
  int depth_before, depth_after;
} af_freeze_record;

/* The decision just taken, with the interval's statistics. The arrays belong to the
 * controller and stay valid until its next end_interval. */
typedef struct {
  int interval;
  long step;
  int depth_before, depth_after;
  int policy_called;     /* 0 on the baseline (first) interval */
  const double *l1, *l2, *ratio;  /* [L] */
} af_freeze_decision;

typedef struct af_freeze_ctl af_freeze_ctl;

/* The policy is borrowed (it must outlive the controller; one policy may serve several runs).
 * opts may be NULL (defaults). Fails if the policy's initial depth exceeds the max depth. */
af_status af_freeze_ctl_create(int L, const af_freeze_opts *opts, af_policy *policy, af_freeze_ctl **out);
/* What the policy sees of the run's length (af_interval_stats' total/epoch/warm-up steps). */
void af_freeze_ctl_set_run(af_freeze_ctl *c, long total_steps, long epoch_steps, long warmup_steps);
/* The validation metric for the next end_interval (consumed by it; NAN when not set). */
void af_freeze_ctl_set_val_metric(af_freeze_ctl *c, double v);
/* One optimizer step's training loss (the /steps value), into the interval's mean
 * (af_interval_stats.loss). Every rank adds the same all-reduced loss. */
void af_freeze_ctl_add_loss(af_freeze_ctl *c, double loss);
/* The label prior's training loss (af_prior_loss) the policy sees; NAN until told. */
void af_freeze_ctl_set_prior_loss(af_freeze_ctl *c, double prior);
double af_freeze_ctl_prior_loss(const af_freeze_ctl *c);
void af_freeze_ctl_free(af_freeze_ctl *c);   /* NULL-safe */

int af_freeze_ctl_depth(const af_freeze_ctl *c);
int af_freeze_ctl_max_depth(const af_freeze_ctl *c);
int af_freeze_ctl_intervals(const af_freeze_ctl *c);   /* intervals ended so far */

/* End an interval: l1/l2 [L] are the scores gathered over it (entries of frozen layers are
 * ignored and recorded as 0). The first interval only stores the baseline; from the second
 * on the policy is called and its answer checked: lower than the current depth (lower than
 * the policy's initial depth for a policy that may unfreeze), above the max depth, is AF_ERR_ARG naming the policy, the value and the allowed range (the depth is
 * then unchanged). A negative or NaN score is AF_ERR_NUMERIC. out may be NULL. */
af_status af_freeze_ctl_end_interval(af_freeze_ctl *c, long step, const double *l1, const double *l2,
                                     af_freeze_decision *out);

/* The decisions so far, oldest first (one per end_interval, baseline included). */
const af_freeze_record *af_freeze_ctl_history(const af_freeze_ctl *c, int *n);

/* Resume: the previous interval's scores ([L], NULL before the first interval) and the
 * counters, as saved from af_freeze_ctl_prev_scores/intervals/depth. */
const double *af_freeze_ctl_prev_scores(const af_freeze_ctl *c);
af_status af_freeze_ctl_restore(af_freeze_ctl *c, int intervals_done, int depth, const double *prev_scores);
/* The losses a resume needs: the interval's sum and step count so far (a checkpoint may cut
 * an interval) and the smallest interval mean at a boundary so far. */
typedef struct {
  double sum;   /* of the losses added since the last boundary */
  long steps;   /* how many */
  double min;   /* INFINITY: no boundary yet */
} af_freeze_loss_state;
void af_freeze_ctl_loss_state(const af_freeze_ctl *c, af_freeze_loss_state *out);
void af_freeze_ctl_restore_loss(af_freeze_ctl *c, const af_freeze_loss_state *s);
/* The step at whose boundary the policy's wait ended: -1 while it waits, 0 for a policy
 * without one (af_policy.waits 0). The run's learning-rate factors use it; checkpointed, and
 * restored on resume (a no-op for a policy without a wait). */
long af_freeze_ctl_wait_end(const af_freeze_ctl *c);
void af_freeze_ctl_restore_wait_end(af_freeze_ctl *c, long step);

#endif
