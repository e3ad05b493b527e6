/* NCCL for data-parallel CUDA runs: a communicator over the job's ranks and a stream of its
 * own, so gradient buckets are summed on the device while the backward goes on in the
 * backend's stream. An event orders each bucket after the kernels that wrote it; the backend's
 * stream waits for the last one before the optimizer (af_nccl_wait). Compiled only when CMake
 * found NCCL (AF_NCCL). */
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/nccl_comm.h"

static_assert(NCCL_UNIQUE_ID_BYTES == AF_DEVCOMM_ID_BYTES, "kernels/comm.h: AF_DEVCOMM_ID_BYTES");

struct af_devcomm {
  af_backend *be;        /* not owned: the CUDA backend whose buffers are reduced */
  ncclComm_t comm;
  cudaStream_t stream;   /* the all-reduces run here */
  cudaEvent_t ready;     /* recorded on the backend's stream: the bucket's gradients are written */
  cudaEvent_t done;      /* recorded on ours: every bucket so far is summed */
};

static af_status nccl_fail(ncclResult_t r, const char *what, ncclComm_t comm) {
  const char *last = comm ? ncclGetLastError(comm) : NULL;
  return AF_FAIL(AF_ERR_BACKEND, "NCCL: %s: %s%s%s", what, ncclGetErrorString(r), last && *last ? ": " : "",
                 last ? last : "");
}
#define NCCL_TRY(call, comm) do { ncclResult_t r_ = (call); \
    if (r_ != ncclSuccess) return nccl_fail(r_, #call, (comm)); } while (0)

/* NCCL reduces device buffers: say so plainly when there is no GPU, before NCCL tries. */
static af_status need_device(void) {
  if (af_cuda_device_count() <= 0)
    return AF_FAIL(AF_ERR_UNSUPPORTED, "NCCL: no CUDA device is visible (driver missing or CUDA_VISIBLE_DEVICES "
                   "empty); NCCL sums device buffers: run with --device cpu (MPI over host memory)");
  return AF_OK;
}

extern "C" const char *af_nccl_library(void) {
  static char name[32];
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "NCCL (version unknown)";
  /* since 2.9: v = major*10000 + minor*100 + patch */
  snprintf(name, sizeof name, "NCCL %d.%d.%d", v / 10000, v / 100 % 100, v % 100);
  return name;
}

extern "C" af_status af_nccl_unique_id(unsigned char *id) {
  AF_TRY(need_device());
  ncclUniqueId u;
  NCCL_TRY(ncclGetUniqueId(&u), NULL);
  memcpy(id, u.internal, sizeof u.internal);
  return AF_OK;
}

extern "C" void af_nccl_close(af_devcomm *c) {
  if (!c) return;
  if (c->stream) cudaStreamSynchronize(c->stream);
  if (c->comm) ncclCommDestroy(c->comm);
  if (c->ready) cudaEventDestroy(c->ready);
  if (c->done) cudaEventDestroy(c->done);
  if (c->stream) cudaStreamDestroy(c->stream);
  free(c);
}

static af_status open_on(af_devcomm *c, const unsigned char *id, int rank, int nranks) {
  AF_CUDA_TRY(cudaSetDevice(af_cuda_ctx_of(c->be)->device));
  AF_CUDA_TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
  AF_CUDA_TRY(cudaEventCreateWithFlags(&c->ready, cudaEventDisableTiming));
  AF_CUDA_TRY(cudaEventCreateWithFlags(&c->done, cudaEventDisableTiming));
  ncclUniqueId u;
  memcpy(u.internal, id, sizeof u.internal);
  NCCL_TRY(ncclCommInitRank(&c->comm, nranks, u, rank), NULL);
  return AF_OK;
}

extern "C" af_status af_nccl_open(af_backend *be, const unsigned char *id, int rank, int nranks, af_devcomm **out) {
  *out = NULL;
  AF_TRY(need_device());
  if (!be || !be->name || strcmp(be->name, "cuda"))
    return AF_FAIL(AF_ERR_ARG, "NCCL: the backend is %s, not cuda: NCCL sums device buffers",
                   be && be->name ? be->name : "none");
  if (nranks < 1 || rank < 0 || rank >= nranks)
    return AF_FAIL(AF_ERR_ARG, "NCCL: rank %d of %d ranks", rank, nranks);
  af_devcomm *c = (af_devcomm *)calloc(1, sizeof *c);
  if (!c) return AF_FAIL(AF_ERR_NOMEM, "NCCL: out of host memory");
  c->be = be;
  af_status s = open_on(c, id, rank, nranks);
  if (s != AF_OK) {
    af_nccl_close(c);
    return s;
  }
  *out = c;
  return AF_OK;
}

extern "C" af_status af_nccl_allreduce_sum_f32(af_devcomm *c, float *x, size_t n) {
  if (n == 0) return AF_OK;
  AF_CUDA_TRY(cudaEventRecord(c->ready, af_cuda_stream(c->be)));
  AF_CUDA_TRY(cudaStreamWaitEvent(c->stream, c->ready, 0));
  NCCL_TRY(ncclAllReduce(x, x, n, ncclFloat, ncclSum, c->comm, c->stream), c->comm);
  return AF_OK;
}

extern "C" af_status af_nccl_wait(af_devcomm *c) {
  AF_CUDA_TRY(cudaEventRecord(c->done, c->stream));
  AF_CUDA_TRY(cudaStreamWaitEvent(af_cuda_stream(c->be), c->done, 0));
  ncclResult_t async = ncclSuccess;
  NCCL_TRY(ncclCommGetAsyncError(c->comm, &async), c->comm);
  if (async != ncclSuccess) return nccl_fail(async, "all-reduce (asynchronous error)", c->comm);
  return AF_OK;
}
