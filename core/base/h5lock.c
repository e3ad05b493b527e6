/* The process-wide HDF5 lock; see h5lock.h. */
#include "core/base/h5lock.h"
#include <pthread.h>

static pthread_mutex_t h5_mu;
static pthread_once_t h5_once = PTHREAD_ONCE_INIT;

static void h5_mu_init(void) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&h5_mu, &a);
  pthread_mutexattr_destroy(&a);
}

void af_h5_lock(void) {
  pthread_once(&h5_once, h5_mu_init);
  pthread_mutex_lock(&h5_mu);
}

void af_h5_unlock(void) { pthread_mutex_unlock(&h5_mu); }
