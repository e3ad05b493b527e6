/* LayerNorm over the last dimension. Forward: one read pass per row accumulating sum and
 * sum of squares in double (no cancellation problem at fp32 data), one write pass. Backward:
 * dinp per row, dw/db as per-thread partials on the stack combined in thread order, so the
 * result does not depend on scheduling. */
#include "kernels/cpu/cpu_backend.h"
#include <math.h>
#include <omp.h>

/* out[N,C], mean[N], rstd[N], inp[N,C], w[C], b[C] */
void af_cpu_layernorm_forward(af_backend *be, float *out, float *mean, float *rstd, const float *inp,
                              const float *w, const float *b, int N, int C, float eps) {
  (void)be;
#pragma omp parallel for schedule(static) if ((long)N * C >= AF_CPU_PAR_MIN)
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C;
    double s = 0, ss = 0;
#pragma omp simd reduction(+ : s, ss)
    for (int c = 0; c < C; c++) {
      double v = x[c];
      s += v;
      ss += v * v;
    }
    double m = s / C;
    double var = ss / C - m * m;
    if (var < 0) var = 0;
    float mf = (float)m, rs = (float)(1.0 / sqrt(var + (double)eps));
    float *o = out + (size_t)n * C;
#pragma omp simd
    for (int c = 0; c < C; c++) o[c] = (x[c] - mf) * rs * w[c] + b[c];
    if (mean) mean[n] = mf;
    if (rstd) rstd[n] = rs;
  }
}

/* dinp[N,C] overwritten; dw[C], db[C] += ; dout, inp [N,C]; mean, rstd [N] */
void af_cpu_layernorm_backward(af_backend *be, float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean, const float *rstd,
                               int N, int C) {
  (void)be;
  int maxth = omp_get_max_threads();
  float *pw[maxth > 0 ? maxth : 1], *pb[maxth > 0 ? maxth : 1];
#pragma omp parallel if ((long)N * C >= AF_CPU_PAR_MIN)
  {
    int nth = omp_get_num_threads(), tid = omp_get_thread_num();
    float lw[C], lb[C];
    for (int c = 0; c < C; c++) lw[c] = lb[c] = 0.0f;
    int r0 = (int)((long)N * tid / nth), r1 = (int)((long)N * (tid + 1) / nth);
    for (int n = r0; n < r1; n++) {
      const float *g = dout + (size_t)n * C, *x = inp + (size_t)n * C;
      float m = mean[n], rs = rstd[n];
      float a = 0, bb = 0;
#pragma omp simd reduction(+ : a, bb)
      for (int c = 0; c < C; c++) {
        float xh = (x[c] - m) * rs, dn = g[c] * w[c];
        a += dn;
        bb += dn * xh;
        lw[c] += g[c] * xh;
        lb[c] += g[c];
      }
      a /= C;
      bb /= C;
      if (dinp) {
        float *d = dinp + (size_t)n * C;
#pragma omp simd
        for (int c = 0; c < C; c++) {
          float xh = (x[c] - m) * rs;
          d[c] = rs * (g[c] * w[c] - a - xh * bb);
        }
      }
    }
    pw[tid] = lw;
    pb[tid] = lb;
#pragma omp barrier
    int c0 = (int)((long)C * tid / nth), c1 = (int)((long)C * (tid + 1) / nth);
    for (int t = 0; t < nth; t++)
      for (int c = c0; c < c1; c++) {
        if (dw) dw[c] += pw[t][c];
        if (db) db[c] += pb[t][c];
      }
#pragma omp barrier /* partials live on each thread's stack until everyone is done */
  }
}
