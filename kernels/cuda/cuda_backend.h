/* The CUDA backend's public entry points: create a backend table whose memory is device
 * memory and whose ops run on one stream, and count devices without ever failing (the
 * tests and "auto" use the count to decide whether to try). Plain C, usable from core/. */
#ifndef AF_CUDA_BACKEND_H
#define AF_CUDA_BACKEND_H
#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fill a new backend with the af_cuda_* ops on the current device. AF_ERR_UNSUPPORTED
 * when no device is present, AF_ERR_BACKEND for any CUDA/cuBLAS failure. Set
 * AF_CUDA_TF32=1 to let cuBLAS use TF32 tensor cores (off by default so results match the
 * CPU backend). */
af_status af_cuda_backend_create(af_backend **be);

/* Number of visible CUDA devices; 0 when there is no driver or no device. */
int af_cuda_device_count(void);

/* Makes device local_rank % af_cuda_device_count() current (a data-parallel rank's GPU, before
 * af_cuda_backend_create); *device: its ordinal, or -1 when no device is visible (AF_OK). */
af_status af_cuda_select_device(int local_rank, int *device);

#ifdef __cplusplus
}
#endif
#endif
