/* Bucketed gradient all-reduce (grad_sync.h). The backward reports its finished ranges from
 * the top of the arena down, each ending where the last began, so the ranges not yet sent are
 * always one interval [lo, hi) below the ones on their way, [hi, total): a bucket is that
 * interval once it is large enough, and what is left when the backward ends is the last one.
 * Every rank must start the same buckets in the same order (MPI and NCCL match collectives by
 * order): a rank that ran no backward this step (no rows) walks the same ranges in finish. */
#include "core/run/grad_sync.h"
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include "core/base/timing.h"
#include "core/run/dist.h"
#include "kernels/comm.h"

enum { T_NONE, T_MPI, T_NCCL, T_STAGED };
static const char *const transport_names[] = {"none", "mpi", "nccl", "staged"};

/* staged: gradients pass through host memory in pieces of this many floats (64 MiB) */
#define STAGE ((size_t)16 << 20)

struct af_grad_sync {
  af_bert *m;               /* not owned */
  int transport, nranks;
  size_t bucket;            /* floats: a bucket starts once it holds this many */
  size_t lo, hi;            /* finished by the backward, not started: [lo, hi) */
  double t_calls;           /* seconds in communication calls since arm */
  float *stage;             /* staged: [min(total, STAGE)] host floats */
  af_devcomm *dc;           /* nccl */
};

static size_t bucket_floats(void) {
  const char *v = getenv("AF_DIST_BUCKET_KB");
  long kb = v && *v ? atol(v) : 0;
  if (kb <= 0) kb = 2048;
  return (size_t)kb * 1024 / sizeof(float);
}

/* nccl: rank 0's unique id to every rank, then the communicator on this rank's GPU */
static af_status open_nccl(af_grad_sync *gs) {
  unsigned char id[AF_DEVCOMM_ID_BYTES];
  memset(id, 0, sizeof id);
  if (af_dist_rank() == 0) AF_TRY(af_devcomm_unique_id(id));
  AF_TRY(af_dist_bcast(id, sizeof id, 0));
  return af_devcomm_open(gs->m->be, id, af_dist_rank(), gs->nranks, &gs->dc);
}

af_status af_grad_sync_open(af_bert *m, af_grad_sync **out) {
  *out = NULL;
  af_grad_sync *gs;
  AF_TRY(af_calloc((void **)&gs, 1, sizeof *gs, "gradient all-reduce"));
  gs->m = m;
  gs->nranks = af_dist_size();
  gs->bucket = bucket_floats();
  gs->lo = gs->hi = m->lay.total;
  const char *nccl = getenv("AF_NCCL");
  af_status s = AF_OK;
  if (gs->nranks < 2) gs->transport = T_NONE;
  else if (!strcmp(m->be->name, "cpu")) gs->transport = T_MPI;
  else if (af_devcomm_built() && !(nccl && !strcmp(nccl, "0"))) {
    gs->transport = T_NCCL;
    s = open_nccl(gs);
  } else {
    gs->transport = T_STAGED;
    size_t n = m->lay.total < STAGE ? m->lay.total : STAGE;
    s = af_malloc((void **)&gs->stage, n * sizeof(float), "gradient all-reduce staging");
  }
  if (s != AF_OK) {
    af_grad_sync_close(gs);
    return s;
  }
  *out = gs;
  return AF_OK;
}

void af_grad_sync_close(af_grad_sync *gs) {
  if (!gs) return;
  if (gs->m->grads_ready_ctx == gs) gs->m->grads_ready = NULL, gs->m->grads_ready_ctx = NULL;
  af_devcomm_close(gs->dc);
  free(gs->stage);
  free(gs);
}

const char *af_grad_sync_transport(const af_grad_sync *gs) { return transport_names[gs ? gs->transport : T_NONE]; }

static af_status start(af_grad_sync *gs, size_t lo, size_t hi) {
  float *g = gs->m->grads + lo;
  if (gs->transport == T_NCCL) return af_devcomm_allreduce_sum_f32(gs->dc, g, hi - lo);
  return af_dist_iallreduce_sum_f32(g, hi - lo);
}

/* [begin, end), the next range below the pending interval, is final: start the interval once
 * it is a bucket. Bucket bounds depend on the layout, the depth and the bucket size alone, the
 * same on every rank, as collectives must be started alike everywhere. */
static af_status add_range(af_grad_sync *gs, size_t begin, size_t end) {
  assert(end == gs->lo && begin <= end);  /* bert.c reports ranges top down, without gaps */
  gs->lo = begin;
  if (gs->hi - gs->lo < gs->bucket) return AF_OK;
  af_status s = start(gs, gs->lo, gs->hi);
  gs->hi = gs->lo;
  return s;
}

/* bert.h: grads_ready */
static af_status on_ready(void *ctx, size_t begin, size_t end) {
  af_grad_sync *gs = ctx;
  const double a = af_now();
  af_status s = add_range(gs, begin, end);
  if (s == AF_OK && gs->transport == T_MPI) s = af_dist_progress();
  gs->t_calls += af_now() - a;
  return s;
}

/* The ranges a backward at this depth reports (bert.c's order) that this one did not: all of
 * them for a rank without rows this step, so it starts the same buckets as the others. */
static af_status add_unreported(af_grad_sync *gs, int depth) {
  const af_bert *m = gs->m;
  const int L = m->cfg.num_hidden_layers;
  const size_t *gb = m->lay.group_begin;
  if (m->lay.total <= gs->lo) AF_TRY(add_range(gs, gb[L + 1], m->lay.total));
  for (int l = L - 1; l >= depth; l--)
    if (gb[l + 2] <= gs->lo) AF_TRY(add_range(gs, gb[l + 1], gb[l + 2]));
  if (depth == 0 && gb[1] <= gs->lo) AF_TRY(add_range(gs, 0, gb[1]));
  return AF_OK;
}

void af_grad_sync_arm(af_grad_sync *gs, int depth) {
  (void)depth;
  if (!gs) return;
  gs->t_calls = 0;
  gs->lo = gs->hi = gs->m->lay.total;
  if (gs->transport == T_MPI || gs->transport == T_NCCL) {
    gs->m->grads_ready = on_ready;
    gs->m->grads_ready_ctx = gs;
  }
}

static af_status staged(af_grad_sync *gs, size_t lo, size_t hi) {
  af_backend *be = gs->m->be;
  float *g = gs->m->grads;
  AF_TRY(be->sync(be));
  for (size_t i = lo; i < hi; i += STAGE) {
    size_t c = hi - i < STAGE ? hi - i : STAGE;
    AF_TRY(be->to_host(be, gs->stage, g + i, c * sizeof(float)));
    AF_TRY(af_dist_allreduce_sum_f32(gs->stage, c));
    AF_TRY(be->to_device(be, g + i, gs->stage, c * sizeof(float)));
  }
  return AF_OK;
}

af_status af_grad_sync_finish(af_grad_sync *gs, int depth, long long *bytes, double *t_comm) {
  *bytes = 0;
  *t_comm = 0;
  if (!gs) return AF_OK;
  af_bert *m = gs->m;
  if (m->grads_ready_ctx == gs) m->grads_ready = NULL, m->grads_ready_ctx = NULL;
  if (gs->transport == T_NONE) return AF_OK;
  const double a = af_now();
  const size_t tb = af_bert_trainable_begin(m, depth), total = m->lay.total;
  if (gs->transport == T_STAGED) {
    AF_TRY(staged(gs, tb, total));
  } else {
    AF_TRY(add_unreported(gs, depth));
    if (gs->hi > tb) AF_TRY(start(gs, tb, gs->hi));  /* the last bucket, smaller than the others */
    gs->lo = gs->hi = total;
    if (gs->transport == T_MPI) AF_TRY(af_dist_wait());
    else {
      AF_TRY(af_devcomm_wait(gs->dc));
      AF_TRY(m->be->sync(m->be));  /* the host waits here, so t_comm counts what was not hidden */
    }
  }
  *bytes = (long long)((total - tb) * sizeof(float));
  *t_comm = gs->t_calls + af_now() - a;
  gs->t_calls = 0;
  return AF_OK;
}
