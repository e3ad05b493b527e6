/* The freeze controller and its policies. A policy sees one interval's per-layer gradient
 * statistics and the current frozen depth and proposes a new depth; the controller owns the
 * previous interval's scores, computes the change ratios, calls the policy and enforces the
 * invariants (depth never decreases -- unless the policy says it may unfreeze --, one encoder
 * layer always trains, user maximum), so a policy -- built-in or a Lua function -- can never
 * break them. See docs/algorithm.md for the rules. */
#ifndef AF_FREEZE_H
#define AF_FREEZE_H
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
} af_interval_stats;

typedef struct af_policy af_policy;
typedef af_status (*af_policy_decide_fn)(af_policy *p, const af_interval_stats *st, int *new_depth);
typedef void (*af_policy_destroy_fn)(af_policy *p);

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
};

/* The built-in policies by name (--policy, Lua policy = "adaptive"). */
typedef enum { AF_POLICY_NONE = 0, AF_POLICY_STATIC, AF_POLICY_ADAPTIVE, AF_POLICY_PIPE, AF_POLICY_GATED } af_policy_kind;
extern const char *const af_policy_kind_names[];  /* "none", "static", "adaptive", "pipe", "gated", NULL */

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
} af_gated_opts;
void af_gated_defaults(af_gated_opts *o);
af_status af_policy_gated(const af_gated_opts *o, af_policy **out);

/* Modifiers for any policy (a wrapper that borrows `inner`, which must outlive it): no
 * decision is asked of inner before step freeze_after*total_steps (freeze_after < 0: the
 * end of the learning-rate warm-up, warmup_steps), and a decision freezes at most
 * max_step more layers (<= 0: unlimited). Lower depths (a rollback) pass unchanged. Name,
 * initial depth and flags are inner's; knobs are inner's plus "freeze_after=..."
 * and "max_freeze_step=...". A policy starting frozen (initial depth > 0) takes no guard. */
af_status af_policy_guard(af_policy *inner, double freeze_after, int max_step, af_policy **out);

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

#endif
