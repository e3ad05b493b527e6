/* Stop requests under a storm of SIGTERMs while GEMMs run on the main thread and the OpenMP
 * team: every signal is taken as a request, none lands on a computing thread. Without the
 * guard, oneDNN 2.6's JIT sgemm (rsp on the heap, oneDNN issue #4845) corrupts the heap
 * within about 0.1 s of this storm; the products are checked and the heap is exercised. */
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "core/run/stop_signal.h"
#include "kernels/cpu/gemm.h"
#include "tests/testutil.h"

enum { M = 64, N = 32, K = 192 };
static volatile int g_done;
static long g_sent;

static void *storm(void *arg) {
  (void)arg;
  struct timespec gap = {0, 20000};
  while (!g_done) {
    kill(getpid(), SIGTERM);
    g_sent++;
    nanosleep(&gap, NULL);
  }
  return NULL;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void) {
  CHECK_OK(af_gemm_init());
  printf("GEMM: %s\n", af_gemm_lib_name(af_gemm_current()));
  /* A signal still pending after af_stop_end must not end this test. */
  signal(SIGTERM, SIG_IGN);
  float *A = malloc(sizeof(float) * K * M), *B = malloc(sizeof(float) * K * N), *ref = calloc(M * N, sizeof(float));
  for (int i = 0; i < K * M; i++) A[i] = (float)(i % 7 - 3) * 0.125f;
  for (int i = 0; i < K * N; i++) B[i] = (float)(i % 5 - 2) * 0.25f;
  /* C = A^T B with A stored [K, M]: exact in fp32 (small dyadic values) */
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++)
      for (int k = 0; k < K; k++) ref[m * N + n] += A[k * M + m] * B[k * N + n];

  af_stop_guard g;
  af_stop_begin(&g);
  CHECK(af_stop_requested() == 0);
  pthread_t t;
  pthread_create(&t, NULL, storm, NULL);
  long calls = 0, wrong = 0;
  double t0 = now();
  while (now() - t0 < 0.6) {
    float C[M * N];
    af_sgemm(1, 0, M, N, K, 1.0f, A, M, B, N, 0.0f, C, N);
    wrong += memcmp(C, ref, sizeof C) != 0;
    calls++;
    af_gemm_serial_begin();
#pragma omp parallel reduction(+ : wrong, calls)
    {
      float Ct[M * N];
      void *p = malloc(64 + 16 * omp_get_thread_num());  /* a heap under the frames, if any land */
      af_sgemm(1, 0, M, N, K, 1.0f, A, M, B, N, 0.0f, Ct, N);
      wrong += memcmp(Ct, ref, sizeof Ct) != 0;
      calls++;
      free(p);
    }
    af_gemm_serial_end();
  }
  g_done = 1;
  pthread_join(t, NULL);
  int sig = af_stop_requested();
  printf("%ld GEMMs in 0.6 s under %ld SIGTERMs; stop request: signal %d\n", calls, g_sent, sig);
  CHECK(g_sent > 100);
  CHECK(sig == SIGTERM);
  CHECK(wrong == 0);
  af_stop_end(&g);

  /* the calling thread's mask is back as it was */
  sigset_t cur;
  pthread_sigmask(SIG_SETMASK, NULL, &cur);
  CHECK(!sigismember(&cur, SIGTERM) && !sigismember(&cur, SIGINT));
  /* a request made by hand (--interrupt-at-step) reads back */
  af_stop_begin(&g);
  CHECK(af_stop_requested() == 0);
  af_stop_request(SIGINT);
  CHECK(af_stop_requested() == SIGINT);
  af_stop_end(&g);
  free(A);
  free(B);
  free(ref);
  return af_test_done("test_stop_signal");
}
