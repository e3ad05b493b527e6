/* Embeddings: out = wte[ids] + wpe[t] + wtt[type_ids]. The backward is a scatter-add with
 * repeated ids; instead of atomics each thread owns a slice of the channels and walks all
 * tokens in order, so it is race-free and its sums are in a fixed order. */
#include "kernels/cpu/cpu_backend.h"
#include <omp.h>

/* out[B,T,C]; ids, type_ids[B,T] (type_ids may be NULL: type 0); wte[V,C], wpe[P,C], wtt[TV,C] */
void af_cpu_embedding_forward(af_backend *be, float *out, const int32_t *ids, const int32_t *type_ids,
                              const float *wte, const float *wpe, const float *wtt, int B, int T, int C) {
  (void)be;
#pragma omp parallel for schedule(static) if ((long)B * T * C >= AF_CPU_PAR_MIN)
  for (int bt = 0; bt < B * T; bt++) {
    int t = bt % T;
    const float *e = wte + (size_t)ids[bt] * C;
    const float *p = wpe + (size_t)t * C;
    const float *y = wtt + (size_t)(type_ids ? type_ids[bt] : 0) * C;
    float *o = out + (size_t)bt * C;
#pragma omp simd
    for (int c = 0; c < C; c++) o[c] = e[c] + p[c] + y[c];
  }
}

/* dwte[V,C], dwpe[P,C], dwtt[TV,C] all += (each may be NULL); dout[B,T,C] */
void af_cpu_embedding_backward(af_backend *be, float *dwte, float *dwpe, float *dwtt, const float *dout,
                               const int32_t *ids, const int32_t *type_ids, int B, int T, int C) {
  (void)be;
  /* channel slices of 16 floats (one cache line) to avoid false sharing */
  int nblk = (C + 15) / 16;
#pragma omp parallel if ((long)B * T * C >= AF_CPU_PAR_MIN)
  {
    int nth = omp_get_num_threads(), tid = omp_get_thread_num();
    int b0 = (int)((long)nblk * tid / nth), b1 = (int)((long)nblk * (tid + 1) / nth);
    int c0 = b0 * 16, c1 = b1 * 16 < C ? b1 * 16 : C;
    if (c0 < c1) {
      for (int bt = 0; bt < B * T; bt++) {
        const float *g = dout + (size_t)bt * C;
        if (dwte) {
          float *d = dwte + (size_t)ids[bt] * C;
#pragma omp simd
          for (int c = c0; c < c1; c++) d[c] += g[c];
        }
        if (dwpe) {
          float *d = dwpe + (size_t)(bt % T) * C;
#pragma omp simd
          for (int c = c0; c < c1; c++) d[c] += g[c];
        }
        if (dwtt) {
          float *d = dwtt + (size_t)(type_ids ? type_ids[bt] : 0) * C;
#pragma omp simd
          for (int c = c0; c < c1; c++) d[c] += g[c];
        }
      }
    }
  }
}
