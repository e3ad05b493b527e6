/* kernels/comm.h over what the build has: NCCL (kernels/cuda/nccl_comm.cu) and the CUDA
 * runtime's device choice, or stubs that say what is missing. Like backend.c, the one place
 * outside kernels/cuda that knows whether they were compiled in. */
#include "kernels/comm.h"
#ifdef AF_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif
#ifdef AF_HAVE_NCCL
#include "kernels/cuda/nccl_comm.h"
#endif

int af_devcomm_device_count(void) {
#ifdef AF_HAVE_CUDA
  return af_cuda_device_count();
#else
  return 0;
#endif
}

af_status af_devcomm_select_device(int local_rank, int *device) {
#ifdef AF_HAVE_CUDA
  return af_cuda_select_device(local_rank, device);
#else
  (void)local_rank;
  *device = -1;
  return AF_OK;
#endif
}

#ifdef AF_HAVE_NCCL
int af_devcomm_built(void) { return 1; }
const char *af_devcomm_library(void) { return af_nccl_library(); }
af_status af_devcomm_unique_id(unsigned char id[AF_DEVCOMM_ID_BYTES]) { return af_nccl_unique_id(id); }
af_status af_devcomm_open(af_backend *be, const unsigned char id[AF_DEVCOMM_ID_BYTES], int rank, int nranks,
                          af_devcomm **out) {
  return af_nccl_open(be, id, rank, nranks, out);
}
af_status af_devcomm_allreduce_sum_f32(af_devcomm *c, float *x, size_t n) { return af_nccl_allreduce_sum_f32(c, x, n); }
af_status af_devcomm_wait(af_devcomm *c) { return af_nccl_wait(c); }
void af_devcomm_close(af_devcomm *c) { af_nccl_close(c); }

#else /* no NCCL */

static af_status no_nccl(void) {
  return AF_FAIL(AF_ERR_UNSUPPORTED, "NCCL: not in this build (%s)",
#ifdef AF_HAVE_CUDA
                 "nccl.h or libnccl was not found at configure time, or -DAF_NCCL=OFF"
#else
                 "no CUDA backend"
#endif
  );
}
int af_devcomm_built(void) { return 0; }
const char *af_devcomm_library(void) { return "none"; }
af_status af_devcomm_unique_id(unsigned char id[AF_DEVCOMM_ID_BYTES]) {
  (void)id;
  return no_nccl();
}
af_status af_devcomm_open(af_backend *be, const unsigned char id[AF_DEVCOMM_ID_BYTES], int rank, int nranks,
                          af_devcomm **out) {
  (void)be, (void)id, (void)rank, (void)nranks;
  *out = NULL;
  return no_nccl();
}
af_status af_devcomm_allreduce_sum_f32(af_devcomm *c, float *x, size_t n) {
  (void)c, (void)x, (void)n;
  return no_nccl();
}
af_status af_devcomm_wait(af_devcomm *c) {
  (void)c;
  return no_nccl();
}
void af_devcomm_close(af_devcomm *c) { (void)c; }
#endif
