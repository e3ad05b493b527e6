/* SIGINT/SIGTERM during a training run: a request to stop at the next step boundary, taken
 * without ever interrupting a compute thread (see af_compute_threads_sigmask). */
#ifndef AF_STOP_SIGNAL_H
#define AF_STOP_SIGNAL_H
#include <signal.h>

typedef struct {
  struct sigaction old_int, old_term;
  sigset_t old_mask;
  int active;
} af_stop_guard;

/* Block SIGINT and SIGTERM on the calling thread and the compute pool, and catch them on
 * any other thread (a library's own pool) into a flag. Not nestable. */
void af_stop_begin(af_stop_guard *g);
/* The signal that asked to stop (0: none yet); takes a pending one without blocking. */
int af_stop_requested(void);
/* Ask to stop as if signal sig arrived (tests: --interrupt-at-step). */
void af_stop_request(int sig);
/* Restore the handlers and masks; a signal still pending is then delivered as before
 * af_stop_begin (by default: the process ends). */
void af_stop_end(af_stop_guard *g);

#endif
