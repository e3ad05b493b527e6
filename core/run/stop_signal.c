/* Stop requests for training runs. The signals stay blocked on every thread that computes
 * and are taken with sigtimedwait at step boundaries; the handler only catches them on
 * threads we do not own (OpenBLAS starts its pool before main). */
#include "core/run/stop_signal.h"
#include <pthread.h>
#include <string.h>
#include <time.h>
#include "kernels/ops.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { g_stop = sig; }

static void stop_set(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
}

void af_stop_begin(af_stop_guard *g) {
  memset(g, 0, sizeof *g);
  g_stop = 0;
  sigset_t set;
  stop_set(&set);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  pthread_sigmask(SIG_BLOCK, &set, &g->old_mask);
  af_compute_threads_sigmask(SIG_BLOCK, &set);
  sigaction(SIGINT, &sa, &g->old_int);
  sigaction(SIGTERM, &sa, &g->old_term);
  g->active = 1;
}

int af_stop_requested(void) {
  if (!g_stop) {
    sigset_t set;
    stop_set(&set);
    struct timespec zero = {0, 0};
    int sig = sigtimedwait(&set, NULL, &zero);
    if (sig > 0) g_stop = sig;
  }
  return g_stop;
}

void af_stop_request(int sig) { g_stop = sig; }

void af_stop_end(af_stop_guard *g) {
  if (!g->active) return;
  sigset_t set;
  stop_set(&set);
  sigaction(SIGINT, &g->old_int, NULL);
  sigaction(SIGTERM, &g->old_term, NULL);
  af_compute_threads_sigmask(SIG_UNBLOCK, &set);
  pthread_sigmask(SIG_SETMASK, &g->old_mask, NULL);
  g->active = 0;
}
