/* The bucketed gradient all-reduce (core/run/grad_sync.h) on the tiny shape, CPU backend.
 * One process: the backward reports its finished gradient ranges top down without gaps (the
 * head, layers L-1..k, the embeddings at k = 0) and hooking it changes no gradient bit; the
 * sync with one rank hooks nothing and sends nothing. Under `mpirun -np 2` (this program's
 * `rank` mode): gradients of integer values, different on each rank, summed exactly over the
 * trainable range only (frozen ranges untouched), with buckets started during a simulated
 * backward (per layer: AF_DIST_BUCKET_KB=1; or one bucket at the end) and by a rank that had
 * no rows (no backward at all); bytes = 4 x the trainable parameters. Skips the MPI part
 * (not the rest) when autofreeze was built without MPI or mpirun cannot start 2 ranks. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/model/bert.h"
#include "core/model/config.h"
#include "core/run/dist.h"
#include "core/run/grad_sync.h"
#include "tests/testutil.h"

enum { NL = 2, B = 3, T = 8, MAXR = 16 };

typedef struct { size_t begin[MAXR], end[MAXR]; int n; } ranges;

static af_status record(void *ctx, size_t begin, size_t end) {
  ranges *r = ctx;
  if (r->n < MAXR) r->begin[r->n] = begin, r->end[r->n] = end;
  r->n++;
  return AF_OK;
}

static af_status model_open(af_backend **be, af_bert *m) {
  af_config cfg;
  AF_TRY(af_config_named("tiny", &cfg));
  cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.1f;
  AF_TRY(af_backend_open("cpu", 1, be));
  AF_TRY(af_bert_init(m, *be, &cfg, NL, B, T, 0));
  float *p = malloc(m->lay.total * sizeof *p);
  if (!p) return AF_FAIL(AF_ERR_NOMEM, "parameters");
  for (size_t i = 0; i < m->lay.total; i++) p[i] = (float)((af_rng_mix(5, i) >> 40) / 16777216.0 - 0.5) * 0.2f;
  af_status s = af_bert_set_params(m, p);
  free(p);
  return s;
}

/* one forward + backward at depth k; the gradients into g[lay.total] */
static void backward(af_bert *m, int k, float *g) {
  int32_t ids[B * T], tt[B * T];
  float mask[B * T], tgt[B];
  for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(af_rng_mix(3, (uint64_t)i) % 100), tt[i] = 0, mask[i] = 1;
  for (int i = 0; i < B; i++) tgt[i] = (float)(i % NL);
  af_bert_input in = {ids, tt, mask, tgt, B, T};
  float loss;
  af_grads_zero(m, 0);
  CHECK_OK(af_bert_load_batch(m, &in));
  CHECK_OK(af_bert_forward(m, B, T, 0, k, 1, 7, &loss));
  CHECK_OK(af_bert_backward(m, B, T, k, 7, 1.0f / B));
  memcpy(g, m->grads, m->lay.total * sizeof *g);
}

/* the hook's ranges and that hooking changes nothing, at depths 0 and 1 */
static void single_process(void) {
  af_backend *be = NULL;
  af_bert m;
  memset(&m, 0, sizeof m);
  CHECK_OK(model_open(&be, &m));
  const int L = m.cfg.num_hidden_layers;
  const size_t *gb = m.lay.group_begin, total = m.lay.total;
  float *plain = malloc(total * sizeof *plain), *hooked = malloc(total * sizeof *hooked);
  for (int k = 0; k <= 1 && plain && hooked; k++) {
    ranges r = {{0}, {0}, 0};
    backward(&m, k, plain);
    m.grads_ready = record;
    m.grads_ready_ctx = &r;
    backward(&m, k, hooked);
    m.grads_ready = NULL;
    CHECK(memcmp(plain, hooked, total * sizeof *plain) == 0);
    const int want = 1 + (L - k) + (k == 0);
    CHECK(r.n == want);
    size_t hi = total;  /* top down, each range ending where the last began */
    for (int i = 0; i < r.n && i < MAXR; i++) {
      CHECK(r.end[i] == hi && r.begin[i] < r.end[i]);
      hi = r.begin[i];
    }
    CHECK(r.n > 0 && r.begin[0] == gb[L + 1]);
    CHECK(hi == af_bert_trainable_begin(&m, k));
    printf("depth %d: %d ranges reported top down to %zu (the trainable begin), gradients bit-identical with the hook\n",
           k, r.n, hi);
  }
  af_grad_sync *gs = NULL;
  CHECK_OK(af_grad_sync_open(&m, &gs));
  CHECK(gs && !strcmp(af_grad_sync_transport(gs), "none"));
  af_grad_sync_arm(gs, 0);
  CHECK(m.grads_ready == NULL);
  long long bytes = -1;
  double t = -1;
  CHECK_OK(af_grad_sync_finish(gs, 0, &bytes, &t));
  CHECK(bytes == 0 && t == 0);
  printf("one rank: transport %s, nothing hooked, 0 bytes\n", af_grad_sync_transport(gs));
  af_grad_sync_close(gs);
  free(plain);
  free(hooked);
  af_bert_free(&m);
  af_backend_close(be);
}

/* A rank: the gradients (rank+1)*(i%97) summed at depth k, buckets from a simulated backward
 * (none on rank idle_rank: no rows this step). 0 when every value is right. */
static int rank_case(af_bert *m, int k, const char *bucket_kb, int idle_rank) {
  setenv("AF_DIST_BUCKET_KB", bucket_kb, 1);
  af_grad_sync *gs = NULL;
  int bad = 0;
  const int L = m->cfg.num_hidden_layers, r = af_dist_rank();
  const size_t total = m->lay.total, tb = af_bert_trainable_begin(m, k), *gb = m->lay.group_begin;
  const int idle = r == idle_rank;
  if (af_grad_sync_open(m, &gs) != AF_OK || strcmp(af_grad_sync_transport(gs), "mpi")) {
    fprintf(stderr, "rank %d: grad sync: %s (%s)\n", r, af_last_error(), af_grad_sync_transport(gs));
    return 1;
  }
  for (size_t i = 0; i < total; i++) m->grads[i] = (float)((r + 1) * (int)(i % 97));
  af_grad_sync_arm(gs, k);
  if (!idle) {  /* what af_bert_backward reports, in its order */
    bad |= m->grads_ready(m->grads_ready_ctx, gb[L + 1], total) != AF_OK;
    for (int l = L - 1; l >= k; l--) bad |= m->grads_ready(m->grads_ready_ctx, gb[l + 1], gb[l + 2]) != AF_OK;
    if (k == 0) bad |= m->grads_ready(m->grads_ready_ctx, 0, gb[1]) != AF_OK;
  }
  long long bytes = 0;
  double t = 0;
  bad |= af_grad_sync_finish(gs, k, &bytes, &t) != AF_OK;
  bad |= m->grads_ready != NULL;
  bad |= bytes != (long long)(4 * (total - tb));
  size_t wrong = 0;
  for (size_t i = 0; i < total; i++) {
    const float want = (float)((i < tb ? r + 1 : 3) * (int)(i % 97));
    if (m->grads[i] != want && wrong++ < 3)
      fprintf(stderr, "rank %d depth %d bucket %s KiB: grads[%zu] = %g, expected %g\n", r, k, bucket_kb, i,
              m->grads[i], want);
  }
  if (r == 0)
    printf("depth %d, buckets of %s KiB%s: %lld bytes, %s\n", k, bucket_kb, idle_rank >= 0 ? ", rank 1 without rows" : "", bytes,
           wrong || bad ? "WRONG" : "sums exact, frozen range untouched");
  af_grad_sync_close(gs);
  return bad || wrong;
}

static int rank_main(void) {
  if (af_dist_init() != AF_OK || af_dist_size() != 2) return 3;
  af_backend *be = NULL;
  af_bert m;
  memset(&m, 0, sizeof m);
  if (model_open(&be, &m) != AF_OK) return 1;
  int bad = 0;
  for (int k = 0; k <= 1; k++) {
    bad |= rank_case(&m, k, "1", -1);
    bad |= rank_case(&m, k, "2048", -1);
    bad |= rank_case(&m, k, "1", 1);
  }
  af_bert_free(&m);
  af_backend_close(be);
  return bad;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "rank")) return rank_main();
  single_process();
  char self[PATH_MAX], cmd[PATH_MAX + 256];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0 || !af_dist_built() || system("command -v mpirun >/dev/null 2>&1") != 0) {
    printf("SKIP the 2-rank part: %s\n", n <= 0 ? "no /proc/self/exe" : !af_dist_built() ? "built without MPI"
                                                                                       : "no mpirun");
    return af_test_done("test_grad_sync");
  }
  self[n] = 0;
  snprintf(cmd, sizeof cmd,
           "timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 "
           "-x ASAN_OPTIONS=detect_leaks=0 '%s' rank 2>&1", self);  /* (Open MPI's own allocations outlive it) */
  fflush(stdout);
  int ws = system(cmd);
  int rc = ws != -1 && WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
  CHECK(rc == 0);
  printf("mpirun -np 2: exit %d\n", rc);
  return af_test_done("test_grad_sync");
}
