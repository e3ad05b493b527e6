/* Per-segment L1 and squared-L2 norms in double, for the freeze controller's per-layer
 * gradient statistics. Each thread sums a fixed slice of every segment; slices are added
 * in thread order, so the statistics (and thus freezing decisions) are reproducible. */
#include "kernels/cpu/cpu_backend.h"
#include <math.h>
#include <omp.h>

/* l1[nseg], l2sq[nseg] on the host (either may be NULL); x[off[nseg]]; off[nseg+1] */
af_status af_cpu_segment_norms(af_backend *be, double *l1, double *l2sq, const float *x,
                               const size_t *off, int nseg) {
  (void)be;
  if (nseg <= 0) return AF_OK;
  int maxth = omp_get_max_threads();
  if (maxth < 1) maxth = 1;
  double part[maxth][2 * nseg];
  int used = 1;
  size_t total = off[nseg] - off[0];
#pragma omp parallel if (total >= AF_CPU_PAR_MIN)
  {
    int nth = omp_get_num_threads(), tid = omp_get_thread_num();
#pragma omp single
    used = nth;
    for (int s = 0; s < nseg; s++) {
      size_t len = off[s + 1] - off[s];
      size_t i0 = off[s] + len * tid / nth, i1 = off[s] + len * (tid + 1) / nth;
      double a = 0, q = 0;
#pragma omp simd reduction(+ : a, q)
      for (size_t i = i0; i < i1; i++) {
        double v = x[i];
        a += fabs(v);
        q += v * v;
      }
      part[tid][2 * s] = a;
      part[tid][2 * s + 1] = q;
    }
  }
  for (int s = 0; s < nseg; s++) {
    double a = 0, q = 0;
    for (int t = 0; t < used; t++) {
      a += part[t][2 * s];
      q += part[t][2 * s + 1];
    }
    if (l1) l1[s] = a;
    if (l2sq) l2sq[s] = q;
  }
  return AF_OK;
}
