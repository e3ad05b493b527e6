/* A run over several ranks (data parallelism; docs/distributed.md). Every rank holds the
 * whole model and walks the same global batches; rank r computes the forward and backward
 * of its contiguous slice of each batch, then the trainable gradients are summed over the
 * ranks (the backward scales by 1/global batch, so the sum is the global batch's mean
 * gradient) before anything reads them: the interval statistics, clipping (the global norm)
 * and AdamW see exactly what one process would, so every rank holds the same parameters,
 * moments and interval sums, and takes the same freeze decisions. The frozen prefix's
 * gradients (its layers and the embeddings once k > 0) are never computed, so never sent:
 * the all-reduce covers [af_bert_trainable_begin(k), total), one contiguous range, in buckets
 * that start while the last micro-batch's backward still runs (grad_sync.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/run/dist.h"
#include "core/run/run.h"
#include "kernels/comm.h"

/* A rank of a run on GPUs takes the GPU of its place on the machine (local rank modulo the
 * GPUs it sees: with one GPU per task, as Slurm's --gpus-per-task gives, that GPU). */
af_status af_run_dist_device(af_run *r) {
  int dev;
  if (af_dist_size() < 2 || r->o->device == AF_DEVICE_CPU) return AF_OK;
  return af_devcomm_select_device(af_dist_local_rank(), &dev);
}

af_status af_run_dist_open(af_run *r) {
  AF_TRY(af_dist_init());
  r->rank = af_dist_rank();
  r->nranks = af_dist_size();
  if (r->nranks > 1) AF_TRY(af_grad_sync_open(&r->m, &r->gsync));
  if (r->nranks > 1 && !r->o->quiet && r->rank == 0)
    fprintf(stderr, "autofreeze: %d ranks (%s), gradients all-reduced over %s\n", r->nranks, af_dist_library(),
            af_grad_sync_transport(r->gsync));
  if (r->nranks > 1 && r->o->batch < r->nranks && !r->o->quiet && r->rank == 0)
    af_warn("--batch %d is smaller than the %d ranks: some ranks have no rows", r->o->batch, r->nranks);
  return AF_OK;
}

void af_run_dist_free(af_run *r) {
  af_grad_sync_close(r->gsync);
  r->gsync = NULL;
}

/* Rows [lo, hi) of a batch of B rows: contiguous slices in rank order, sizes differing by at
 * most one, so the ranks' rows in order are the batch's rows in order. */
void af_run_dist_slice(const af_run *r, int B, int *lo, int *hi) {
  const int n = r->nranks > 1 ? r->nranks : 1, k = r->nranks > 1 ? r->rank : 0;
  *lo = (int)((long)B * k / n);
  *hi = (int)((long)B * (k + 1) / n);
}

void af_run_dist_arm(af_run *r, int depth) { af_grad_sync_arm(r->gsync, depth); }

af_status af_run_dist_grads(af_run *r, int depth, double *loss_sum, long long *bytes, double *t_comm) {
  *bytes = 0;
  *t_comm = 0;
  if (r->nranks < 2) return AF_OK;
  AF_TRY(af_grad_sync_finish(r->gsync, depth, bytes, t_comm));
  double a = af_now();
  AF_TRY(af_dist_allreduce_sum_f64(loss_sum, 1));
  *t_comm += af_now() - a;
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
