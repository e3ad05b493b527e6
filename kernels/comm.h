/* Device collectives for data-parallel runs whose gradients live in device memory: NCCL on the
 * CUDA backend when the build found it (kernels/cuda/nccl_comm.cu), and the choice of a rank's
 * GPU. The engine reaches them through this header alone (it includes no NCCL or CUDA header);
 * the rendezvous, rank 0's unique id handed to every rank, goes over the engine's MPI
 * (core/run/dist.h). Without NCCL every call but the stubs' queries fails with
 * AF_ERR_UNSUPPORTED and the run stages its gradients through host memory instead. */
#ifndef AF_COMM_H
#define AF_COMM_H
#include "kernels/ops.h"

#define AF_DEVCOMM_ID_BYTES 128 /* NCCL_UNIQUE_ID_BYTES, checked where nccl.h is included */

typedef struct af_devcomm af_devcomm;

int af_devcomm_built(void);            /* 1 when built with NCCL */
const char *af_devcomm_library(void);  /* "NCCL 2.28.9" (the library loaded), or "none" */

/* GPUs visible to this process (0 without a CUDA backend, a driver or a device). */
int af_devcomm_device_count(void);

/* Makes GPU local_rank % (visible GPUs) the current device of this process, before the CUDA
 * backend is created (it uses the current device); *device: the one chosen, or -1 when there is
 * none to choose (no CUDA backend built, or no GPU visible: not an error, the CPU runs). */
af_status af_devcomm_select_device(int local_rank, int *device);

/* Rank 0: a new communicator's unique id, to be handed to every rank. */
af_status af_devcomm_unique_id(unsigned char id[AF_DEVCOMM_ID_BYTES]);
/* Every rank, collectively (blocks until all nranks have called it): a communicator on be's
 * device. be must be a CUDA backend. */
af_status af_devcomm_open(af_backend *be, const unsigned char id[AF_DEVCOMM_ID_BYTES], int rank, int nranks,
                          af_devcomm **out);
/* In place, on the device: x[n] = sum over ranks, started after the work queued on be's stream
 * so far and run on the communicator's own stream (the backend's next kernels do not wait). */
af_status af_devcomm_allreduce_sum_f32(af_devcomm *c, float *x, size_t n);
/* Work queued on be's stream from now on waits for every all-reduce started so far (the host
 * does not wait); reports an asynchronous NCCL error seen so far. */
af_status af_devcomm_wait(af_devcomm *c);
void af_devcomm_close(af_devcomm *c);  /* NULL is fine */

#endif
