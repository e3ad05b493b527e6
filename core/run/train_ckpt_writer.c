/* The checkpoint writer thread; see train_ckpt_writer.h. The hand-off needs no lock: the
 * training thread fills the job and the buffers only while no write thread runs (before
 * pthread_create, after pthread_join), the thread reads only the job, the buffers and the
 * writer's own copies of the run's strings, and the fields it writes (result, err, the
 * prefix on disk, the count) are read by the training thread after the next join. */
#include "core/run/train_ckpt_writer.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "core/base/fsutil.h"
#include "core/base/timing.h"
#include "core/run/run.h"

static long kill_at;  /* tests: af_run_test_kill_in_ckpt_write */
void af_run_test_kill_in_ckpt_write(long step) { kill_at = step; }

struct af_ckpt_writer {
  char dir[4096];
  char *model_dir, *labels, *run_config;  /* own copies */
  size_t P, E;
  int L, num_labels;
  float *arena;                /* [3P + E], on the first snapshot: tail, interval sum, prefix */
  double prev[512];
  af_ckpt_snapshot job;
  pthread_t thread;
  int running;                 /* a thread started and not joined yet */
  long kill_at;                /* the test hook's step, copied at open */
  atomic_int main_waiting;     /* the test hook: the training thread waits for the write */
  uint64_t ids;
  /* written by the thread; read by the training thread after a join */
  af_status result;
  char err[2048];
  int prefix_depth;            /* prefix-<depth>.safetensors of this run is on disk (-1: none) */
  uint64_t prefix_id;
  int named_depth;             /* the prefix the last commit named (0: none, -1: not known) */
  long written;
};

static void *write_job(void *arg) {
  af_ckpt_writer *w = arg;
  const af_ckpt_snapshot *j = &w->job;
  sigset_t set;  /* stop requests belong to the training thread (stop_signal.h) */
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  af_status s = AF_OK;
  if (j->prefix) {
    s = af_train_ckpt_write_prefix(w->dir, j);
    if (s == AF_OK) {
      w->prefix_depth = j->st.depth;
      w->prefix_id = j->prefix_id;
    }
  }
  if (s == AF_OK) s = af_train_ckpt_write_last_tmp(w->dir, j);
  if (s == AF_OK && w->kill_at > 0 && j->st.step == w->kill_at) {
    /* killed between the temporary file and the rename, while the training thread is
     * parked in a wait (so the kill cuts no results-file write in half) */
    while (!atomic_load(&w->main_waiting)) nanosleep(&(struct timespec){0, 1000000}, NULL);
    raise(SIGKILL);
  }
  if (s == AF_OK) s = af_train_ckpt_commit(w->dir);
  if (s == AF_OK) {
    int named = j->F > 0 ? j->st.depth : 0;
    if (named != w->named_depth) af_train_ckpt_remove_prefixes(w->dir, named, w->L);  /* none named now */
    w->named_depth = named;
    w->written++;
  } else {
    snprintf(w->err, sizeof w->err, "%s", af_last_error());  /* this thread's line, for the training thread */
  }
  w->result = s;
  return NULL;
}

af_status af_ckpt_writer_open(const char *dir, const af_bert *m, const char *model_dir, const char *labels,
                              const char *run_config, af_ckpt_writer **out) {
  *out = NULL;
  AF_TRY(af_mkdirs(dir));
  af_ckpt_writer *w = NULL;
  AF_TRY(af_calloc((void **)&w, 1, sizeof *w, "the checkpoint writer"));
  if ((size_t)snprintf(w->dir, sizeof w->dir, "%s", dir) >= sizeof w->dir) {
    free(w);
    return AF_FAIL(AF_ERR_ARG, "%s: checkpoint folder path too long", dir);
  }
  char *abs = realpath(model_dir, NULL);  /* so that `autofreeze export` finds it from anywhere */
  w->model_dir = strdup(abs ? abs : model_dir);
  free(abs);
  w->labels = strdup(labels ? labels : "");
  w->run_config = strdup(run_config ? run_config : "");
  if (!w->model_dir || !w->labels || !w->run_config) {
    af_ckpt_writer_close(w);
    return AF_FAIL(AF_ERR_NOMEM, "out of memory for the checkpoint writer");
  }
  w->P = m->lay.total;
  w->E = m->enc_end - m->enc_begin;
  w->L = m->lay.L;
  w->num_labels = m->num_labels;
  w->prefix_depth = -1;
  w->named_depth = -1;
  w->kill_at = kill_at;
  w->ids = (uint64_t)(af_now() * 1e9) ^ ((uint64_t)getpid() << 32);
  *out = w;
  return AF_OK;
}

void af_ckpt_writer_resumed(af_ckpt_writer *w, const af_train_state *st) {
  if (!w) return;
  w->prefix_depth = st->prefix_depth;
  w->prefix_id = st->prefix_id;
}

/* A fresh id for a prefix file (splitmix64 of a counter seeded by time and pid): a
 * last.safetensors and the prefix file it names carry the same one, so a prefix file
 * replaced by another run is refused on load instead of mixed in. 63 bits, not 0. */
static uint64_t new_id(af_ckpt_writer *w) {
  uint64_t z = (w->ids += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z = (z ^ (z >> 31)) >> 1;
  return z ? z : 1;
}

/* params, adam_m, adam_v [lo, lo+n) into dst, dst+n, dst+2n */
static af_status copy_ranges(const af_bert *m, size_t lo, size_t n, float *dst) {
  af_backend *be = m->be;
  AF_TRY(be->to_host(be, dst, m->params + lo, n * sizeof(float)));
  AF_TRY(be->to_host(be, dst + n, m->m + lo, n * sizeof(float)));
  return be->to_host(be, dst + 2 * n, m->v + lo, n * sizeof(float));
}

af_status af_ckpt_writer_submit(af_ckpt_writer *w, const af_bert *m, const af_train_state *st) {
  AF_TRY(af_ckpt_writer_wait(w));
  const size_t P = w->P, E = w->E, F = af_param_frozen_end(&m->lay, st->depth), T = P - F;
  if (!w->arena) AF_TRY(af_malloc((void **)&w->arena, (3 * P + E) * sizeof(float), "the checkpoint snapshot"));
  float *tail = w->arena, *acc = tail + 3 * T, *prefix = acc + E;
  const int need_prefix = F > 0 && w->prefix_depth != st->depth;
  AF_TRY(copy_ranges(m, F, T, tail));
  AF_TRY(m->be->to_host(m->be, acc, m->acc, E * sizeof(float)));
  if (need_prefix) AF_TRY(copy_ranges(m, 0, F, prefix));
  af_ckpt_snapshot *j = &w->job;
  memset(j, 0, sizeof *j);
  j->st = *st;
  j->st.prev_scores = NULL;
  j->st.prev_scores_out = NULL;
  if (st->prev_scores) {
    memcpy(w->prev, st->prev_scores, (size_t)(st->L < 512 ? st->L : 512) * sizeof(double));
    j->st.prev_scores = w->prev;
  }
  j->st.labels = w->labels;
  j->st.run_config = w->run_config;
  j->model_dir = w->model_dir;
  j->num_labels = w->num_labels;
  j->P = P;
  j->E = E;
  j->F = F;
  j->tail = tail;
  j->acc = acc;
  j->prefix = need_prefix ? prefix : NULL;
  j->prefix_id = need_prefix ? new_id(w) : w->prefix_id;
  w->result = AF_OK;
  atomic_store(&w->main_waiting, 0);
  if (pthread_create(&w->thread, NULL, write_job, w) == 0) w->running = 1;
  else write_job(w);  /* no thread to be had: write it now; the next wait reports the outcome */
  return AF_OK;
}

af_status af_ckpt_writer_wait(af_ckpt_writer *w) {
  if (!w) return AF_OK;
  if (w->running) {
    atomic_store(&w->main_waiting, 1);
    pthread_join(w->thread, NULL);
    w->running = 0;
  }
  af_status s = w->result;
  if (s == AF_OK) return AF_OK;
  w->result = AF_OK;  /* reported once */
  return AF_FAIL(s, "writing the run checkpoint: %s", w->err);
}

long af_ckpt_writer_count(const af_ckpt_writer *w) { return w ? w->written : 0; }

void af_ckpt_writer_close(af_ckpt_writer *w) {
  if (!w) return;
  if (w->running) {
    atomic_store(&w->main_waiting, 1);
    pthread_join(w->thread, NULL);
  }
  free(w->arena);
  free(w->model_dir);
  free(w->labels);
  free(w->run_config);
  free(w);
}
