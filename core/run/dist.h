/* Data parallelism across processes: the few collective calls a data-parallel run needs
 * (rank, local rank and size, sum all-reduce of float and double buffers, blocking or not,
 * max of ints, broadcast, barrier, stop-all) behind one small interface, so MPI appears in dist.c alone. Without
 * MPI (not built, or the process was not started by mpirun/srun) the process is rank 0 of
 * 1 and every collective is the identity. How runs use it: docs/distributed.md. */
#ifndef AF_DIST_H
#define AF_DIST_H
#include <stddef.h>
#include "core/base/status.h"

/* Joins the job when an MPI launcher started the process (Open MPI's mpirun, Slurm's srun
 * with PMI/PMIx, MPICH's hydra: their environment variables), or AF_MPI=1 asks for it; else
 * stays single-process. Idempotent; MPI_Finalize runs at exit. Only the calling thread
 * makes MPI calls (MPI_THREAD_FUNNELED). */
af_status af_dist_init(void);
int af_dist_rank(void);
int af_dist_size(void);
/* This process's index among the ranks on its machine (picks its GPU): the launcher's
 * OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, MPI_LOCALRANKID or MV2_COMM_WORLD_LOCAL_RANK,
 * else its rank in MPI's shared-memory communicator; 0 single-process. */
int af_dist_local_rank(void);
int af_dist_built(void);                /* 1 when built with MPI */
const char *af_dist_library(void);      /* e.g. "Open MPI v4.1.4", or "none" */

/* In place on every rank: x = sum over ranks of x (n may exceed INT_MAX: split into calls). */
af_status af_dist_allreduce_sum_f32(float *x, size_t n);
af_status af_dist_allreduce_sum_f64(double *x, size_t n);
/* Non-blocking, in place: starts x = sum over ranks of x; x is neither read nor written by
 * the caller until af_dist_wait. The requests are kept here (a full list is waited for
 * first). Single-process: nothing to do. */
af_status af_dist_iallreduce_sum_f32(float *x, size_t n);
/* A test of every pending request: Open MPI moves a non-blocking collective on only inside
 * MPI calls, so the caller makes one between pieces of other work. Cheap. */
af_status af_dist_progress(void);
/* Waits for every pending request. */
af_status af_dist_wait(void);
/* In place: x = max over ranks of x. */
af_status af_dist_allreduce_max_int(int *x, int n);
/* bytes from rank root to every rank. */
af_status af_dist_bcast(void *buf, size_t bytes, int root);
af_status af_dist_barrier(void);
/* A failure on this rank while the others may wait in a collective: prints one line
 * "autofreeze: rank R of N failed: MSG; stopping all ranks" on stderr and ends the whole
 * job (MPI_Abort, exit code 1). Single-process: returns, the caller reports as usual. */
void af_dist_fail_all(const char *msg);

#endif
