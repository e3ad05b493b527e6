/* Data parallelism (docs/distributed.md): `mpirun -np 2` runs of the tiny fixture model on the
 * "you" task against one process with the same global batch. The loss series, the interval
 * statistics, the freeze decisions (adaptive rule, 12 intervals), the evaluations and the
 * final weights agree within fp32 reduction order: two ranks sum each gradient as two
 * half-batch partial sums added by the all-reduce, where one process sums the batch in one
 * GEMM, so values differ in the last bits and Adam carries that on. Tolerances: loss and
 * interval norms |d| <= 1e-5 + 1e-4 |ref|, final weights |d| <= 1e-4 + 1e-3 |ref| (Adam's
 * normalised step makes a near-zero gradient's weight move by up to lr in either case); decisions,
 * frozen depths and step/row counts exactly; accuracies within one dev row (1/64).
 * Cases: no dropout; dropout 0.1 with an odd batch (15: uneven slices, and a rank's rows
 * start inside the batch, so its dropout counters are offset); the memory activation cache;
 * rank 0 killed (SIGKILL) inside a checkpoint write, then `--resume` under mpirun; a resume
 * under another rank count refused; one rank failing stops both with one message. Also: the
 * bytes all-reduced per step are 4 x the trainable parameters at the step's frozen depth. The
 * dropout case sends a bucket per layer during the backward (AF_DIST_BUCKET_KB=1), the others
 * one bucket after it; the accum case (--accum 4: two micro-batches a rank) sends them during
 * the last micro-batch's backward only. AF_TEST_MPI_DEVICE=cuda runs every case (and its
 * reference) on the CUDA backend, a GPU per rank, gradients summed by NCCL: for a machine with
 * 2 GPUs (NCCL does not put two ranks on one GPU).
 * This program is both the driver (no MPI environment) and the ranks (`rank MODE ...`, started
 * by mpirun). Skips (77) when autofreeze was built without MPI or mpirun cannot start 2 ranks. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "core/model/config.h"
#include "core/model/params.h"
#include "core/run/dist.h"
#include "core/run/run.h"
#include "core/run/train.h"
#include "core/run/train_ckpt.h"
#include "tests/testutil.h"

static char g_self[PATH_MAX];

/* One case's options, the same in the driver and in the ranks. */
static void case_opts(af_train_opts *o, const char *mode, const char *model, const char *data, const char *out,
                      af_policy *p) {
  af_test_tiny_train_opts(o, model, data, out, p);
  o->intervals = 12;
  o->checkpoint_every = (af_period){AF_PERIOD_INTERVALS, 0};
  if (!strcmp(mode, "dropout")) o->batch = 15;
  if (!strcmp(mode, "accum")) o->accum = 4;  /* micro-batches of 4: two on each rank's 8 rows */
  if (!strcmp(mode, "cache") || !strcmp(mode, "kill")) o->cache = AF_CACHE_MEMORY;
  const char *dev = getenv("AF_TEST_MPI_DEVICE");  /* cuda: every case on GPUs (NCCL), reference too */
  if (dev && !strcmp(dev, "cuda")) o->device = AF_DEVICE_CUDA;
}

/* rank 1 fails at the decision after interval 2 (the "fail" case) */
static af_status failing(af_policy *p, const af_interval_stats *st, int *new_depth) {
  (void)p;
  (void)new_depth;
  if (af_dist_rank() == 1 && st->interval == 2) return AF_FAIL(AF_ERR_IO, "planted failure on rank 1");
  return AF_OK;
}

/* A rank: test_mpi_train rank MODE MODEL DATA OUT [resume] */
static int rank_main(int argc, char **argv) {
  if (argc < 6) return 2;
  const char *mode = argv[2];
  if (af_dist_init() != AF_OK) {
    fprintf(stderr, "%s\n", af_last_error());
    return 1;
  }
  if (!strcmp(mode, "probe")) return af_dist_size() == 2 ? 0 : 3;
  af_policy *p = NULL;
  af_status s = !strcmp(mode, "fail") ? af_policy_custom("failing", failing, NULL, NULL, &p)
                                      : af_policy_adaptive(50, -1, &p);
  af_train_opts o;
  af_train_summary sum;
  case_opts(&o, mode, argv[3], argv[4], argv[5], p);
  o.resume = argc > 6 && !strcmp(argv[6], "resume");
  if (!strcmp(mode, "kill") && !o.resume && af_dist_rank() == 0) af_run_test_kill_in_ckpt_write(80);
  /* 1 KiB buckets: every layer's gradients start on their way as the backward finishes it
   * (the other cases' tiny model fits one bucket, sent after the backward) */
  if (!strcmp(mode, "dropout") || !strcmp(mode, "accum")) setenv("AF_DIST_BUCKET_KB", "1", 1);
  if (s == AF_OK) s = af_train(&o, &sum);
  if (s != AF_OK) fprintf(stderr, "rank %d: %s\n", af_dist_rank(), af_last_error());
  af_policy_free(p);
  return s == AF_OK ? 0 : 1;
}

/* mpirun -np N of this program as ranks; output into log. Returns the exit status (-1: no
 * status) and the seconds it took in *secs. */
/* (Open MPI's own allocations outlive the ranks: no leak report for them under ASan, which
 * made every rank exit non-zero there, so the probe skipped the whole test) */
static int mpirun(int np, const char *args, const char *log, double *secs) {
  char cmd[24576];
  snprintf(cmd, sizeof cmd,
           "timeout 120 mpirun --allow-run-as-root --oversubscribe -np %d -x OMP_NUM_THREADS=1 "
           "-x OMP_WAIT_POLICY=PASSIVE -x ASAN_OPTIONS=detect_leaks=0 %s rank %s > '%s' 2>&1", np, g_self, args,
           log);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  int ws = system(cmd);
  clock_gettime(CLOCK_MONOTONIC, &b);
  if (secs) *secs = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
  return ws != -1 && WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = calloc(1, 1 << 20);
  if (buf) fread(buf, 1, (1 << 20) - 1, f);
  fclose(f);
  return buf;
}

static void show_log(const char *log) {
  char *t = slurp(log);
  fprintf(stderr, "---- %s ----\n%s\n----\n", log, t ? t : "(none)");
  free(t);
}

static size_t count_of(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = hay; p && (p = strstr(p, needle)); p++) n++;
  return n;
}

/* The tiny model with dropout 0.1 (attention and hidden) in a folder of its own. */
static void dropout_model(const char *model, char *out, size_t cap) {  /* cap >= 4400 */
  snprintf(out, cap, "%s/drop_model", af_test_tmpdir());
  mkdir(out, 0755);
  char cmd[65536];
  snprintf(cmd, sizeof cmd,
           "cp '%s/model.safetensors' '%s/vocab.txt' '%s/' && sed -e 's/\"attention_probs_dropout_prob\": 0.0/"
           "\"attention_probs_dropout_prob\": 0.1/' -e 's/\"hidden_dropout_prob\": 0.0/\"hidden_dropout_prob\": 0.1/' "
           "'%s/config.json' > '%s/config.json'", model, model, out, model, out);
  CHECK(system(cmd) == 0);
}

static double *col(const char *file, const char *name, size_t *n) {
  return strstr(name, "intervals/l") ? af_test_read_flat(file, name, n) : af_test_read_col(file, name, n);
}

/* ref vs got: one case's columns and final weights */
static void compare(const char *label, const char *ref, const char *got, const char *model) {
  static const struct { const char *name; double atol, rtol; } cols[] = {
      {"steps/step", 0, 0},          {"steps/frozen_depth", 0, 0},  {"intervals/depth_after", 0, 0},
      {"intervals/step", 0, 0},      {"steps/examples", 0, 0},      {"steps/loss", 1e-5, 1e-4},
      {"intervals/l1", 1e-5, 1e-4},  {"intervals/l2", 1e-5, 1e-4},  {"evals/accuracy", 1.0 / 64 + 1e-9, 0},
  };
  char what[256];
  for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
    size_t na = 0, nb = 0;
    double *a = col(ref, cols[c].name, &na), *b = col(got, cols[c].name, &nb);
    CHECK(na == nb && na > 0);
    snprintf(what, sizeof what, "%s: %s", label, cols[c].name);
    int bad = a && b && na == nb ? af_test_close_d(what, b, a, na, cols[c].atol, cols[c].rtol) : 1;
    double md = 0;
    for (size_t i = 0; a && b && i < na && i < nb; i++) md = fmax(md, fabs(a[i] - b[i]));
    printf("%-10s %-22s %4zu values, max |diff| %.3g %s\n", label, cols[c].name, na, md, bad ? "MISMATCH" : "ok");
    free(a);
    free(b);
  }
  /* the bytes all-reduced: 4 x the trainable parameters at each step's depth */
  af_config cfg;
  af_param_layout lay;
  char path[4400];
  snprintf(path, sizeof path, "%s/config.json", model);
  CHECK_OK(af_config_load(path, &cfg));
  CHECK_OK(af_param_layout_build(&cfg, 2, &lay));
  size_t n = 0, nd = 0;
  double *bytes = af_test_read_col(got, "steps/comm_bytes", &n), *depth = af_test_read_col(got, "steps/frozen_depth", &nd);
  int bad = !bytes || !depth || n != nd || n == 0;
  double lo = INFINITY, hi = 0;
  for (size_t i = 0; !bad && i < n; i++) {
    double want = 4.0 * (double)(lay.total - af_param_frozen_end(&lay, (int)depth[i]));
    if (bytes[i] != want) {
      if (bad++ < 3) fprintf(stderr, "%s: step %zu at depth %g all-reduced %g bytes, expected %g\n", label, i + 1, depth[i], bytes[i], want);
    }
    lo = fmin(lo, bytes[i]);
    hi = fmax(hi, bytes[i]);
  }
  CHECK(!bad);
  printf("%-10s %-22s %4zu steps, %g .. %g bytes a step, = 4 x trainable parameters: %s\n", label, "steps/comm_bytes",
         n, lo, hi, bad ? "NO" : "yes");
  free(bytes);
  free(depth);
  /* final weights, from the two runs' last checkpoints */
  char ca[4400], cb[4400];
  snprintf(ca, sizeof ca, "%s.ckpt", ref);
  snprintf(cb, sizeof cb, "%s.ckpt", got);
  float *wa = calloc(lay.total, sizeof *wa), *wb = calloc(lay.total, sizeof *wb);
  CHECK(wa && wb);
  if (wa && wb) {
    CHECK_OK(af_train_ckpt_params(ca, wa, lay.total));
    CHECK_OK(af_train_ckpt_params(cb, wb, lay.total));
    snprintf(what, sizeof what, "%s: final weights", label);
    double md = 0;
    for (size_t i = 0; i < lay.total; i++) md = fmax(md, fabs((double)wa[i] - wb[i]));
    int badw = af_test_close(what, wb, wa, lay.total, 1e-4, 1e-3);
    printf("%-10s %-22s %4zu values, max |diff| %.3g %s\n", label, "final weights", lay.total, md, badw ? "MISMATCH" : "ok");
  }
  free(wa);
  free(wb);
  af_param_layout_free(&lay);
}

/* the single-process reference of a case */
static void reference(const char *mode, const char *model, const char *data, const char *out) {
  af_policy *p = NULL;
  CHECK_OK(af_policy_adaptive(50, -1, &p));
  af_train_opts o;
  af_train_summary sum;
  case_opts(&o, mode, model, data, out, p);
  CHECK_OK(af_train(&o, &sum));
  CHECK(!strcmp(sum.status, "complete"));
  printf("reference %-8s %ld steps, final depth %d, best %.4f\n", mode, sum.steps, sum.final_depth, sum.best);
  af_policy_free(p);
}

static void run_case(const char *mode, const char *model, const char *data) {
  char ref[4400], got[4400], args[16384], log[4400];
  const char *tmp = af_test_tmpdir();
  snprintf(ref, sizeof ref, "%s/ref_%s.h5", tmp, mode);
  snprintf(got, sizeof got, "%s/mpi_%s.h5", tmp, mode);
  snprintf(log, sizeof log, "%s/mpi_%s.log", tmp, mode);
  reference(mode, model, data, ref);
  snprintf(args, sizeof args, "%s '%s' '%s' '%s'", mode, model, data, got);
  double secs;
  int rc = mpirun(2, args, log, &secs);
  CHECK(rc == 0);
  if (rc != 0) show_log(log);
  printf("mpirun -np 2 %-8s exit %d, %.1f s\n", mode, rc, secs);
  compare(mode, ref, got, model);
}

/* rank 0 killed inside its checkpoint write of step 80, resumed by mpirun -np 2 */
static void kill_case(const char *model, const char *data) {
  char ref[4400], got[4400], args[16384], log[4400], v[64];
  const char *tmp = af_test_tmpdir();
  snprintf(ref, sizeof ref, "%s/ref_cache.h5", tmp);  /* the cache case's reference: the same options */
  snprintf(got, sizeof got, "%s/mpi_kill.h5", tmp);
  snprintf(log, sizeof log, "%s/mpi_kill.log", tmp);
  snprintf(args, sizeof args, "kill '%s' '%s' '%s'", model, data, got);
  double secs;
  int rc = mpirun(2, args, log, &secs);
  CHECK(rc != 0 && rc != 124);  /* killed, not hung */
  printf("mpirun -np 2 kill     exit %d after %.1f s (rank 0 killed in its checkpoint write of step 80)\n", rc, secs);
  char ck[4500];
  snprintf(ck, sizeof ck, "%s.ckpt", got);
  CHECK(!strcmp(af_test_st_meta(ck, "last.safetensors", "step", v, sizeof v), "70"));
  printf("left behind: the checkpoint of step %s\n", v);
  /* another rank count is refused, naming both */
  snprintf(log, sizeof log, "%s/mpi_kill_one.log", tmp);
  snprintf(args, sizeof args, "kill '%s' '%s' '%s' resume", model, data, got);
  char cmd[40960];
  snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s rank %s > '%s' 2>&1", g_self, args, log);
  int ws = system(cmd);
  char *t = slurp(log);
  CHECK(ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) != 0);
  CHECK(t && strstr(t, "written by a run of 2 ranks and this run has 1"));
  if (t) printf("resumed by one process: %.*s\n", (int)strcspn(t, "\n"), t);
  free(t);
  snprintf(log, sizeof log, "%s/mpi_resume.log", tmp);
  rc = mpirun(2, args, log, &secs);
  CHECK(rc == 0);
  if (rc != 0) show_log(log);
  printf("mpirun -np 2 --resume exit %d, %.1f s\n", rc, secs);
  compare("kill+resume", ref, got, model);
}

/* rank 1 fails: both stop, one message, no hang */
static void fail_case(const char *model, const char *data) {
  char got[4400], args[16384], log[4400];
  const char *tmp = af_test_tmpdir();
  snprintf(got, sizeof got, "%s/mpi_fail.h5", tmp);
  snprintf(log, sizeof log, "%s/mpi_fail.log", tmp);
  snprintf(args, sizeof args, "fail '%s' '%s' '%s'", model, data, got);
  double secs;
  int rc = mpirun(2, args, log, &secs);
  char *t = slurp(log);
  CHECK(rc != 0 && rc != 124 && secs < 60);
  CHECK(t && count_of(t, "rank 1 of 2 failed") == 1 && strstr(t, "planted failure on rank 1"));
  CHECK(t && count_of(t, "failed:") == 1);  /* rank 0 says nothing of its own */
  const char *line = t ? strstr(t, "autofreeze: rank") : NULL;
  printf("one rank failing: exit %d after %.1f s: %.*s\n", rc, secs, line ? (int)strcspn(line, "\n") : 4,
         line ? line : "none");
  if (!line) show_log(log);
  free(t);
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "rank")) return rank_main(argc, argv);
  ssize_t n = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
  if (n <= 0) af_test_skip("cannot find this program's path (/proc/self/exe)");
  g_self[n] = 0;
  if (!af_dist_built()) af_test_skip("autofreeze was built without MPI (install libopenmpi-dev, reconfigure)");
  if (system("command -v mpirun >/dev/null 2>&1") != 0) af_test_skip("mpirun is not installed (openmpi-bin)");
  char model[4200], data[4200], drop[4400], log[4400];
  if (af_test_tiny_setup(model, data, sizeof model) != 0) return 1;
  snprintf(log, sizeof log, "%s/probe.log", af_test_tmpdir());
  if (mpirun(2, "probe x x x", log, NULL) != 0) {
    char *t = slurp(log), why[600];
    snprintf(why, sizeof why, "mpirun cannot start 2 ranks here: %.400s", t ? t : "no output");
    af_test_skip(why);
  }
  run_case("plain", model, data);
  dropout_model(model, drop, sizeof drop);
  run_case("dropout", drop, data);
  run_case("cache", model, data);
  run_case("accum", model, data);
  kill_case(model, data);
  fail_case(model, data);
  return af_test_done("test_mpi_train");
}
