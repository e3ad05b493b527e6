/* The learning rate of each layer group in a step, as factors of the scheduled rate
 * (af_lr_at): --layer-lr-decay's (ELECTRA's layer-wise decay: the head 1, encoder layer l of L
 * X^(L-l), the embeddings X^(L+1)) times the policy's own (FreezeOut's cosines). A run with
 * neither passes no factors at all, so its optimizer step is the plain one, bit for bit. */
#include <math.h>
#include <string.h>
#include "core/run/run.h"

af_status af_run_lr_open(af_run *r) {
  const double x = r->o->layer_lr_decay;
  const int L = r->L, n = L + 2;
  if (x == 1.0 && !r->policy->lr_scale) return AF_OK;
  AF_TRY(af_calloc((void **)&r->lr_decay, 2 * (size_t)n, sizeof *r->lr_decay, "layer learning rates"));
  r->lr_decay[0] = pow(x, L + 1);                                 /* the embeddings */
  for (int l = 0; l < L; l++) r->lr_decay[1 + l] = pow(x, L - l); /* layer l: X^(L-l), the last X */
  r->lr_decay[L + 1] = 1.0;                                       /* pooler and classifier */
  memcpy(r->lr_decay + n, r->lr_decay, (size_t)n * sizeof *r->lr_decay);  /* "the last step's" before one */
  return AF_OK;
}

const double *af_run_lr_last(const af_run *r) { return r->lr_decay ? r->lr_decay + r->L + 2 : NULL; }

const double *af_run_lr_scales(af_run *r, long step) {
  if (!r->lr_decay) return NULL;
  const int n = r->L + 2;
  double *scale = r->lr_decay + n;
  memcpy(scale, r->lr_decay, (size_t)n * sizeof *scale);
  /* under a waiting guard: 1 during the wait, then the policy's clock from the step it ended */
  const long w = r->ctl ? af_freeze_ctl_wait_end(r->ctl) : 0;
  if (r->policy->lr_scale && w >= 0) r->policy->lr_scale(r->policy, step - w, r->total_steps - w, r->L, scale);
  return scale;
}
