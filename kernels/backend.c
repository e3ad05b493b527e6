/* The backend registry: open "cpu", "cuda" or "auto" by name. This file and kernels/ are
 * the only places that know which backends were compiled in. */
#include "kernels/ops.h"
#include <omp.h>
#include <pthread.h>
#include <string.h>
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/gemm.h"
#ifdef AF_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

int af_backend_cuda_built(void) {
#ifdef AF_HAVE_CUDA
  return 1;
#else
  return 0;
#endif
}

void af_backend_preinit(char **argv) { af_gemm_preinit(argv); }

static int cuda_devices(void) {
#ifdef AF_HAVE_CUDA
  return af_cuda_device_count();
#else
  return 0;
#endif
}

af_status af_backend_open(const char *name, int threads, af_backend **be) {
  *be = NULL;
  if (!name || !*name) name = "auto";
  if (!strcmp(name, "cpu")) return af_cpu_backend_create(threads, be);
  if (!strcmp(name, "cuda") || !strcmp(name, "gpu")) {
    if (!af_backend_cuda_built())
      return AF_FAIL(AF_ERR_UNSUPPORTED, "backend 'cuda': this build has no CUDA backend (nvcc was not found "
                     "at configure time); use --device cpu");
    if (cuda_devices() <= 0)
      return AF_FAIL(AF_ERR_UNSUPPORTED, "backend 'cuda': no CUDA device is visible (driver missing or "
                     "CUDA_VISIBLE_DEVICES empty); use --device cpu");
#ifdef AF_HAVE_CUDA
    return af_cuda_backend_create(be);
#endif
  }
  if (!strcmp(name, "auto")) {
#ifdef AF_HAVE_CUDA
    if (cuda_devices() > 0) return af_cuda_backend_create(be);
#endif
    return af_cpu_backend_create(threads, be);
  }
  return AF_FAIL(AF_ERR_ARG, "backend '%s': expected cpu, cuda or auto", name);
}

void af_backend_close(af_backend *be) {
  if (be && be->destroy) be->destroy(be);
}

void af_compute_threads_sigmask(int how, const sigset_t *set) {
  pthread_sigmask(how, set, NULL);
  /* A team as large as any the run may use reaches every pooled thread; threads created
   * later are cloned from this one and inherit its mask. */
  int n = omp_get_max_threads(), p = omp_get_num_procs();
#pragma omp parallel num_threads(n > p ? n : p)
  pthread_sigmask(how, set, NULL);
}
