/* Wall-clock helpers shared by the training loop, the cache and the benchmarks. */
#ifndef AF_TIMING_H
#define AF_TIMING_H
#include <stdlib.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double af_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int af_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of n > 0 values; sorts v in place. */
static inline double af_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, af_cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif
