/* NCCL behind kernels/comm.h (kernels/comm.c forwards to these): one communicator over the
 * job's ranks with a stream of its own. Plain C declarations; nccl.h stays in nccl_comm.cu. */
#ifndef AF_NCCL_COMM_H
#define AF_NCCL_COMM_H
#include "kernels/comm.h"

#ifdef __cplusplus
extern "C" {
#endif

const char *af_nccl_library(void);
af_status af_nccl_unique_id(unsigned char *id);
af_status af_nccl_open(af_backend *be, const unsigned char *id, int rank, int nranks, af_devcomm **out);
af_status af_nccl_allreduce_sum_f32(af_devcomm *c, float *x, size_t n);
af_status af_nccl_wait(af_devcomm *c);
void af_nccl_close(af_devcomm *c);

#ifdef __cplusplus
}
#endif
#endif
