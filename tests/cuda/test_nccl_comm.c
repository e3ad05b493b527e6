/* NCCL behind kernels/comm.h, and the gradient all-reduce of a data-parallel CUDA run over it
 * (core/run/grad_sync.h, transport "nccl"). What runs depends on the machine:
 *   no GPU (CI): the NCCL calls fail cleanly, AF_ERR_UNSUPPORTED and "NCCL: no CUDA device",
 *     and choosing a rank's GPU finds none (AF_OK, device -1); this passes, it is what can be
 *     checked here (the build links NCCL);
 *   1 GPU: a communicator of one rank sums a device buffer in place (the identity), the
 *     smoke test of the whole NCCL path on the device;
 *   2+ GPUs and mpirun: 2 ranks (this program's `rank` mode), one GPU each by local rank,
 *     sum the tiny shape's gradients on the device through af_grad_sync with buckets started
 *     during a simulated backward, exactly (integer values), frozen ranges untouched; then
 *     the same with AF_NCCL=0 (staged through host memory).
 * Skips (77) when this build has no NCCL. A 2-rank NCCL job needs 2 GPUs: NCCL refuses two
 * ranks on one GPU. */
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
#include "kernels/comm.h"
#include "tests/testutil.h"

static void no_gpu(void) {
  unsigned char id[AF_DEVCOMM_ID_BYTES];
  af_devcomm *c = (af_devcomm *)1;
  af_status s = af_devcomm_unique_id(id);
  CHECK(s == AF_ERR_UNSUPPORTED && strstr(af_last_error(), "NCCL: no CUDA device"));
  printf("unique id without a GPU: %s\n", af_last_error());
  s = af_devcomm_open(NULL, id, 0, 1, &c);
  CHECK(s == AF_ERR_UNSUPPORTED && c == NULL && strstr(af_last_error(), "NCCL: no CUDA device"));
  printf("communicator without a GPU: %s\n", af_last_error());
  int dev = 7;
  CHECK_OK(af_devcomm_select_device(1, &dev));
  CHECK(dev == -1);
  af_devcomm_close(NULL);
  af_backend *be = NULL;
  CHECK(af_backend_open("cuda", 0, &be) == AF_ERR_UNSUPPORTED && be == NULL);
  printf("choosing a rank's GPU without one: none (device %d); the CUDA backend: %s\n", dev, af_last_error());
}

/* one rank, one GPU: x = sum over one rank of x */
static void one_rank(af_backend *be) {
  enum { N = 1000 };
  float h[N], back[N], *d = NULL;
  for (int i = 0; i < N; i++) h[i] = (float)i * 0.5f - 3;
  unsigned char id[AF_DEVCOMM_ID_BYTES];
  af_devcomm *c = NULL;
  CHECK_OK(be->alloc(be, (void **)&d, sizeof h));
  CHECK_OK(be->to_device(be, d, h, sizeof h));
  CHECK_OK(af_devcomm_unique_id(id));
  CHECK_OK(af_devcomm_open(be, id, 0, 1, &c));
  if (c) {
    CHECK_OK(af_devcomm_allreduce_sum_f32(c, d, N));
    CHECK_OK(af_devcomm_wait(c));
    CHECK_OK(be->sync(be));
    CHECK_OK(be->to_host(be, back, d, sizeof back));
    CHECK(memcmp(h, back, sizeof h) == 0);
  }
  printf("%s, one rank: all-reduce of %d floats on the device: %s\n", af_devcomm_library(), N,
         c && !memcmp(h, back, sizeof h) ? "unchanged, ok" : "WRONG");
  af_devcomm_close(c);
  be->free(be, d);
}

/* a rank of two: the tiny shape's gradients (rank+1)*(i%97) summed at depth k through af_grad_sync */
static int rank_case(af_bert *m, int k, const char *transport) {
  af_backend *be = m->be;
  const int L = m->cfg.num_hidden_layers, r = af_dist_rank();
  const size_t total = m->lay.total, tb = af_bert_trainable_begin(m, k), *gb = m->lay.group_begin;
  float *h = malloc(total * sizeof *h);
  af_grad_sync *gs = NULL;
  int bad = !h || af_grad_sync_open(m, &gs) != AF_OK || strcmp(af_grad_sync_transport(gs), transport);
  if (bad) {
    fprintf(stderr, "rank %d: grad sync %s: %s\n", r, af_grad_sync_transport(gs), af_last_error());
    free(h);
    af_grad_sync_close(gs);
    return 1;
  }
  for (size_t i = 0; i < total; i++) h[i] = (float)((r + 1) * (int)(i % 97));
  bad |= be->to_device(be, m->grads, h, total * sizeof *h) != AF_OK;
  af_grad_sync_arm(gs, k);
  if (m->grads_ready) {  /* what af_bert_backward reports, in its order */
    bad |= m->grads_ready(m->grads_ready_ctx, gb[L + 1], total) != AF_OK;
    for (int l = L - 1; l >= k; l--) bad |= m->grads_ready(m->grads_ready_ctx, gb[l + 1], gb[l + 2]) != AF_OK;
    if (k == 0) bad |= m->grads_ready(m->grads_ready_ctx, 0, gb[1]) != AF_OK;
  }
  long long bytes = 0;
  double t = 0;
  bad |= af_grad_sync_finish(gs, k, &bytes, &t) != AF_OK;
  bad |= bytes != (long long)(4 * (total - tb));
  bad |= be->to_host(be, h, m->grads, total * sizeof *h) != AF_OK;
  size_t wrong = 0;
  for (size_t i = 0; i < total; i++)
    if (h[i] != (float)((i < tb ? r + 1 : 3) * (int)(i % 97)) && wrong++ < 3)
      fprintf(stderr, "rank %d depth %d (%s): grads[%zu] = %g\n", r, k, transport, i, h[i]);
  if (r == 0)
    printf("2 ranks, %s, depth %d: %lld bytes, %s\n", transport, k, bytes, bad || wrong ? "WRONG" : "sums exact");
  free(h);
  af_grad_sync_close(gs);
  return bad || wrong;
}

static int rank_main(void) {
  if (af_dist_init() != AF_OK || af_dist_size() != 2) return 3;
  int dev = -1, bad = 0;
  af_backend *be = NULL;
  af_config cfg;
  af_bert m;
  memset(&m, 0, sizeof m);
  setenv("AF_DIST_BUCKET_KB", "1", 1);  /* a bucket per layer */
  if (af_devcomm_select_device(af_dist_local_rank(), &dev) != AF_OK || dev < 0 || af_config_named("tiny", &cfg) != AF_OK ||
      af_backend_open("cuda", 0, &be) != AF_OK || af_bert_init(&m, be, &cfg, 2, 2, 8, 0) != AF_OK) {
    fprintf(stderr, "rank %d: %s\n", af_dist_rank(), af_last_error());
    return 1;
  }
  printf("rank %d: GPU %d\n", af_dist_rank(), dev);
  for (int k = 0; k <= 1; k++) bad |= rank_case(&m, k, "nccl");
  setenv("AF_NCCL", "0", 1);
  bad |= rank_case(&m, 1, "staged");
  af_bert_free(&m);
  af_backend_close(be);
  return bad;
}

static void two_ranks(void) {
  char self[PATH_MAX], cmd[PATH_MAX + 256];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0 || !af_dist_built() || system("command -v mpirun >/dev/null 2>&1") != 0) {
    printf("2 ranks: not run (%s)\n", !af_dist_built() ? "built without MPI" : "no mpirun");
    return;
  }
  self[n] = 0;
  snprintf(cmd, sizeof cmd,
           "timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 -x ASAN_OPTIONS=detect_leaks=0 '%s' rank 2>&1",
           self);
  fflush(stdout);
  int ws = system(cmd);
  CHECK(ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "rank")) return rank_main();
  if (!af_devcomm_built()) af_test_skip("this build has no NCCL (no CUDA backend, nccl.h/libnccl not found, or -DAF_NCCL=OFF)");
  const int gpus = af_devcomm_device_count();
  printf("built with %s; %d GPU(s) visible\n", af_devcomm_library(), gpus);
  if (gpus == 0) {
    no_gpu();
    return af_test_done("test_nccl_comm");
  }
  af_backend *be = NULL;
  CHECK_OK(af_backend_open("cuda", 0, &be));
  if (be) one_rank(be);
  af_backend_close(be);
  if (gpus >= 2) two_ranks();
  else printf("2 ranks: not run (NCCL needs a GPU per rank; this machine has 1)\n");
  return af_test_done("test_nccl_comm");
}
