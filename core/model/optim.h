/* The optimizer step over the trainable part of the parameter arena: gradient clipping,
 * AdamW (Hugging Face's, or BERTAdam as in the AutoFreeze paper's code) and the learning
 * rate schedules. Frozen tensors take no step and keep their moments untouched. */
#ifndef AF_OPTIM_H
#define AF_OPTIM_H
#include "core/model/bert.h"

typedef enum { AF_SCHED_LINEAR = 0, AF_SCHED_STEPPED = 1, AF_SCHED_CONSTANT = 2 } af_schedule;
typedef enum { AF_CLIP_GLOBAL = 0, AF_CLIP_PER_TENSOR = 1, AF_CLIP_NONE = 2 } af_clip;
extern const char *const af_schedule_names[];  /* "linear", "stepped", "constant", NULL */
extern const char *const af_clip_names[];      /* "global", "per_tensor", "none", NULL */

typedef struct {
  float lr;             /* peak learning rate */
  float beta1, beta2, eps, weight_decay;
  int bias_correction;  /* 1: AdamW (HF); 0: BERTAdam */
  af_clip clip;
  float max_grad_norm;  /* 1.0 */
  af_schedule schedule;
  float warmup_frac;    /* linear schedule: warm-up fraction of total steps */
} af_optim_opts;

/* Hugging Face recipe: AdamW (eps 1e-6, weight decay 0.01, bias correction), global clip 1.0, linear warm-up (10%)/decay. */
void af_optim_defaults_hf(af_optim_opts *o);
/* The AutoFreeze paper's recipe: BERTAdam (no bias correction, eps 1e-6), per-tensor clip
 * 1.0, stepped schedule (x1 until 30%, x0.7 until 60%, x0.4 after), no warm-up. */
void af_optim_defaults_paper(af_optim_opts *o);

/* Learning rate at optimizer step `step` (0-based) of `total`. */
float af_lr_at(const af_optim_opts *o, long step, long total);

/* Clip the trainable gradients (layers >= depth, head) and apply one AdamW step with
 * learning rate lr; t is the 1-based step count for bias correction. Writes the global
 * gradient norm before clipping to *grad_norm. Gradients are left in place (the caller
 * zeroes them). */
af_status af_optim_step(af_bert *m, const af_optim_opts *o, int depth, float lr, long t, double *grad_norm);
/* The same with a learning rate per layer group: a tensor of group g (params.h: embeddings -1,
 * encoder layer l, pooler L, classifier L+1) takes lr * layer_scale[min(g + 1, L + 1)], i.e.
 * layer_scale[0] the embeddings, [1 + l] layer l, [L + 1] the head. NULL: every tensor takes
 * lr (af_optim_step); so does a factor of exactly 1, bit for bit. Clipping is unchanged: it
 * scales gradients, before the rates. */
af_status af_optim_step_scaled(af_bert *m, const af_optim_opts *o, int depth, float lr, const double *layer_scale,
                               long t, double *grad_norm);

/* Zero the gradients of the trainable range at depth. */
void af_grads_zero(af_bert *m, int depth);

#endif
