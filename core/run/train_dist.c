/* A run over several ranks (data parallelism; docs/distributed.md). Every rank holds the
 * whole model and walks the same global batches; rank r computes the forward and backward
 * of its contiguous slice of each batch, then the trainable gradients are summed over the
 * ranks (the backward scales by 1/global batch, so the sum is the global batch's mean
 * gradient) before anything reads them: the interval statistics, clipping (the global norm)
 * and AdamW see exactly what one process would, so every rank holds the same parameters,
 * moments and interval sums, and takes the same freeze decisions. The frozen prefix's
 * gradients (its layers and the embeddings once k > 0) are never computed, so never sent:
 * the all-reduce covers [af_bert_trainable_begin(k), total), one contiguous range. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/run/dist.h"
#include "core/run/run.h"

/* gradients travel in pieces of this many floats (64 MiB): a few large all-reduces */
#define BUCKET ((size_t)16 << 20)

af_status af_run_dist_open(af_run *r) {
  AF_TRY(af_dist_init());
  r->rank = af_dist_rank();
  r->nranks = af_dist_size();
  if (r->nranks > 1 && strcmp(r->be->name, "cpu")) {  /* device memory: staged through the host */
    size_t n = r->m.lay.total < BUCKET ? r->m.lay.total : BUCKET;
    AF_TRY(af_malloc((void **)&r->dist_stage, n * sizeof(float), "gradient all-reduce staging"));
  }
  if (r->nranks > 1 && r->o->batch < r->nranks && !r->o->quiet && r->rank == 0)
    af_warn("--batch %d is smaller than the %d ranks: some ranks have no rows", r->o->batch, r->nranks);
  return AF_OK;
}

void af_run_dist_free(af_run *r) {
  free(r->dist_stage);
  r->dist_stage = NULL;
}

/* Rows [lo, hi) of a batch of B rows: contiguous slices in rank order, sizes differing by at
 * most one, so the ranks' rows in order are the batch's rows in order. */
void af_run_dist_slice(const af_run *r, int B, int *lo, int *hi) {
  const int n = r->nranks > 1 ? r->nranks : 1, k = r->nranks > 1 ? r->rank : 0;
  *lo = (int)((long)B * k / n);
  *hi = (int)((long)B * (k + 1) / n);
}

static af_status allreduce_grads(af_run *r, float *g, size_t n) {
  af_backend *be = r->be;
  for (size_t i = 0; i < n; i += BUCKET) {
    size_t c = n - i < BUCKET ? n - i : BUCKET;
    if (!r->dist_stage) {
      AF_TRY(af_dist_allreduce_sum_f32(g + i, c));
      continue;
    }
    AF_TRY(be->to_host(be, r->dist_stage, g + i, c * sizeof(float)));
    AF_TRY(af_dist_allreduce_sum_f32(r->dist_stage, c));
    AF_TRY(be->to_device(be, g + i, r->dist_stage, c * sizeof(float)));
  }
  return AF_OK;
}

af_status af_run_dist_grads(af_run *r, int depth, double *loss_sum, long long *bytes, double *t_comm) {
  *bytes = 0;
  *t_comm = 0;
  if (r->nranks < 2) return AF_OK;
  double a = af_now();
  const size_t tb = af_bert_trainable_begin(&r->m, depth), n = r->m.lay.total - tb;
  AF_TRY(r->be->sync(r->be));
  AF_TRY(allreduce_grads(r, r->m.grads + tb, n));
  AF_TRY(af_dist_allreduce_sum_f64(loss_sum, 1));
  *bytes = (long long)(n * sizeof(float));
  *t_comm = af_now() - a;
  return AF_OK;
}

/* A signal reaches the ranks at different steps (or only one of them): all stop together at
 * the first step boundary where any rank has seen one, so no rank waits in an all-reduce
 * the others will never enter. */
int af_run_dist_stop(af_run *r, int sig) {
  if (r->nranks < 2) return sig;
  if (af_dist_allreduce_max_int(&sig, 1) != AF_OK) {
    af_dist_fail_all(af_last_error());
  }
  return sig;
}

/* The rank count joins the checkpoint identity when it is > 1 (a single-process checkpoint
 * reads as before); a resume under another count is refused, naming both. */
void af_run_dist_config(const af_run *r, char *cfg, size_t cap) {
  size_t n = strlen(cfg);
  if (r->nranks > 1 && n < cap) snprintf(cfg + n, cap - n, "%sranks=%d", n ? ";" : "", r->nranks);
}

af_status af_run_dist_check_ckpt(const af_run *r, const char *ckpt_config) {
  int theirs = 1;
  const char *p = ckpt_config ? strstr(ckpt_config, "ranks=") : NULL;
  if (p && (p == ckpt_config || p[-1] == ';')) theirs = atoi(p + 6);
  const int mine = r->nranks > 1 ? r->nranks : 1;
  if (theirs != mine)
    return AF_FAIL(AF_ERR_ARG,
                   "%s: the checkpoint was written by a run of %d rank%s and this run has %d: resume it with the "
                   "same count (mpirun -np %d ...)", r->ckpt_dir, theirs, theirs == 1 ? "" : "s", mine, theirs);
  return AF_OK;
}
