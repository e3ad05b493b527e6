/* The all-reduce of a step's trainable gradients over the ranks (docs/distributed.md), in
 * buckets started while the backward still runs: the head's range first, then each encoder
 * layer's as af_bert's backward finishes it (bert.h: grads_ready), adjacent ranges merged until
 * a bucket holds AF_DIST_BUCKET_KB KiB (2048 by default); frozen layers send nothing. How a
 * bucket travels depends on where the gradients live:
 *   mpi     host memory (cpu backend): MPI_Iallreduce in place, tested after every layer so it
 *           moves on (Open MPI progresses a non-blocking collective only inside MPI calls);
 *   nccl    device memory, NCCL built: ncclAllReduce on a stream of its own, ordered after the
 *           kernels that wrote the bucket (AF_NCCL=0 in the environment: staged instead);
 *   staged  device memory without NCCL: after the backward, through a host buffer, blocking.
 * With one rank nothing is sent and the backward is not hooked: the step is unchanged. */
#ifndef AF_GRAD_SYNC_H
#define AF_GRAD_SYNC_H
#include "core/model/bert.h"

typedef struct af_grad_sync af_grad_sync;

/* After af_dist_init and af_bert_init; collective over the ranks (nccl: the communicator). */
af_status af_grad_sync_open(af_bert *m, af_grad_sync **out);
void af_grad_sync_close(af_grad_sync *gs);  /* NULL is fine; unhooks the model */
/* "mpi", "nccl", "staged", or "none" (one rank) */
const char *af_grad_sync_transport(const af_grad_sync *gs);
/* Before the backward that completes this step's gradients (the last micro-batch's): with the
 * mpi and nccl transports its finished ranges start on their way while it goes on. */
void af_grad_sync_arm(af_grad_sync *gs, int depth);
/* After that backward: starts what is left and waits for all, so the trainable gradients
 * [af_bert_trainable_begin(depth), total) hold their sum over the ranks. *bytes: what this rank
 * handed to the all-reduce (4 x the trainable parameters; 0 with one rank). *t_comm: seconds
 * this thread spent in communication since arm (starting and testing buckets during the
 * backward, then waiting here): the communication the backward did not hide. Without a
 * backward since arm it is a plain all-reduce of the range. */
af_status af_grad_sync_finish(af_grad_sync *gs, int depth, long long *bytes, double *t_comm);

#endif
