/* The activation cache inside real runs (tiny fixture model, generated learnable task, a
 * scripted policy freezing 0 -> 1 -> 2 so entries are filled and then advanced):
 *  - memory and disk tiers (fp32) give bit-for-bit the same losses, scores and metrics;
 *  - against the cache off they agree to fp32 rounding: cached entries were computed in an
 *    earlier batch of another padded shape, and a GEMM row's rounding depends on the
 *    batch shape. Stated tolerance: every step's loss within 1e-4 relative, the same dev
 *    accuracy at every evaluation;
 *  - fp16 / bf16 storage: losses within 1e-2 relative, final accuracy within 0.05;
 *  - the advance of an entry from depth j to k equals recomputing it from the tokens;
 *  - --cache disk with a cache dir that does not exist yet (nested) makes it and really
 *    uses the disk tier (hits, bytes written, /cache says disk tier "on");
 *  - --cache disk with a cache dir that cannot be created fails the run at the start (one
 *    line naming the folder, no step, no results file); --cache auto with it runs memory
 *    only, /cache and the run-end stderr line name the disk tier off and why;
 *  - a cache file truncated mid-run turns the cache off with the reason in the results
 *    file; the run completes with the cache-off numbers. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/model/bert.h"
#include "core/model/checkpoint.h"
#include "core/results/results_read.h"
#include "core/base/fsutil.h"
#include "core/run/train.h"
#include "tests/testutil.h"


static char cache_dir_to_break[4200];

/* depth 0 -> 1 at decision 1 (step 12, the end of epoch 1), -> 2 at decision 2 (step 18, the
 * middle of epoch 2), so epoch 3's batches mix entries at depth 1 (to advance) and depth 2;
 * optionally truncates the disk cache file at decision 4 (the policy runs mid-run). */
static af_status scripted(af_policy *p, const af_interval_stats *st, int *new_depth) {
  if (st->interval == 1 || st->interval == 2) *new_depth = st->depth + 1;
  if (p->ctx && st->interval == 4) {
    DIR *d = opendir(cache_dir_to_break);
    struct dirent *e;
    while (d && (e = readdir(d)))
      if (!strncmp(e->d_name, "afcache-", 8)) {
        char path[4600];
        snprintf(path, sizeof path, "%s/%s", cache_dir_to_break, e->d_name);
        if (truncate(path, 100) != 0) perror(path);
      }
    if (d) closedir(d);
  }
  return AF_OK;
}

/* depth 0 -> 1 at the end of epoch 1 (step 12), -> 2 at the end of epoch 2 (step 24): every
 * batch of epoch 2 misses whole (filled inside the step's own forward from the tokens) and
 * every batch of epoch 3 holds only depth-1 entries (advanced inside the step's forward). */
static af_status at_epoch_ends(af_policy *p, const af_interval_stats *st, int *new_depth) {
  (void)p;
  if (st->interval == 1 || st->interval == 3) *new_depth = st->depth + 1;
  return AF_OK;
}

/* depth 0 -> 1 at step 30 (mid epoch 3), -> 2 at step 36 (the end of epoch 3): epoch 4's
 * batches mix rows at depth 1 with absent ones in varying proportions, so both ways of
 * running a mixed batch (per-group sub-batches, or one forward from the tokens) are taken. */
static af_status late(af_policy *p, const af_interval_stats *st, int *new_depth) {
  (void)p;
  if (st->interval == 4 || st->interval == 5) *new_depth = st->depth + 1;
  return AF_OK;
}

typedef struct {
  double *loss, *acc;
  size_t nl, na;
  long long hits, misses, bytes_written;
  char reason[256], tier[32], requested[16], memory_tier[600], disk_tier[600];
} run_out;

static void read_run(const char *out, run_out *ro) {
  memset(ro, 0, sizeof *ro);
  af_results_reader *rr = NULL;
  CHECK_OK(af_results_open_read(out, &rr));
  if (!rr) return;
  CHECK_OK(af_results_read_1d(rr, "steps/loss", &ro->loss, &ro->nl));
  CHECK_OK(af_results_read_1d(rr, "evals/accuracy", &ro->acc, &ro->na));
  af_attr *at = NULL;
  int n = 0;
  CHECK_OK(af_results_read_attrs(rr, "cache", &at, &n));
  const af_attr *a;
  if ((a = af_results_find_attr(at, n, "hits"))) ro->hits = a->i;
  if ((a = af_results_find_attr(at, n, "misses"))) ro->misses = a->i;
  if ((a = af_results_find_attr(at, n, "disabled_reason")) && a->s) snprintf(ro->reason, sizeof ro->reason, "%s", a->s);
  if ((a = af_results_find_attr(at, n, "tier")) && a->s) snprintf(ro->tier, sizeof ro->tier, "%s", a->s);
  if ((a = af_results_find_attr(at, n, "bytes_written"))) ro->bytes_written = a->i;
  if ((a = af_results_find_attr(at, n, "requested")) && a->s)
    snprintf(ro->requested, sizeof ro->requested, "%s", a->s);
  if ((a = af_results_find_attr(at, n, "memory_tier")) && a->s)
    snprintf(ro->memory_tier, sizeof ro->memory_tier, "%s", a->s);
  if ((a = af_results_find_attr(at, n, "disk_tier")) && a->s)
    snprintf(ro->disk_tier, sizeof ro->disk_tier, "%s", a->s);
  af_results_free_attrs(at, n);
  af_results_close_read(&rr);
}

static void free_run(run_out *ro) {
  free(ro->loss);
  free(ro->acc);
}

static int verbose;  /* 1: the next run is not quiet (its run-end line goes to stderr) */

static void opts_with(af_train_opts *op, const char *model, const char *data, const char *out, af_policy *p,
                      af_cache_mode mode, af_cache_dtype dt, const char *cdir, size_t budget) {
  af_train_opts o;
  af_train_opts_default(&o);
  o.model_dir = model;
  o.task = "sst2";
  o.data_dir = data;
  o.out = out;
  o.policy = p;
  o.epochs = 4;
  o.batch = 16;
  o.max_len = 16;
  o.optim.lr = 3e-3f;
  o.intervals = 8;
  o.threads = 2;
  o.quiet = !verbose;
  o.seed = 5;
  o.checkpoints = 0;
  o.cache = mode;
  o.cache_dtype = dt;
  o.cache_dir = cdir;
  o.cache_budget = budget;
  *op = o;
}

static void train_with(const char *model, const char *data, const char *out, af_policy *p, af_cache_mode mode,
                       af_cache_dtype dt, const char *cdir, size_t budget) {
  af_train_opts o;
  opts_with(&o, model, data, out, p, mode, dt, cdir, budget);
  af_train_summary sum;
  CHECK_OK(af_train(&o, &sum));
  CHECK(!strcmp(sum.status, "complete") && sum.final_depth == 2);
}

static void compare(const char *what, const run_out *a, const run_out *b, double rtol, double acc_tol) {
  CHECK(a->nl == b->nl && a->nl > 0 && a->na == b->na);
  double worst = 0;
  size_t n = a->nl < b->nl ? a->nl : b->nl;
  for (size_t i = 0; i < n; i++) {
    double r = fabs(a->loss[i] - b->loss[i]) / fabs(b->loss[i]);
    if (r > worst || isnan(r)) worst = r;
  }
  double accd = 0;
  for (size_t i = 0; i < a->na && i < b->na; i++) accd = fmax(accd, fabs(a->acc[i] - b->acc[i]));
  int ok = worst <= rtol && accd <= acc_tol;
  printf("%-34s max loss rel diff %.2e (tol %.0e), max accuracy diff %.3f (tol %.3f) %s\n", what, worst, rtol, accd,
         acc_tol, ok ? "ok" : "FAIL");
  if (!ok) af_test_failures++;
}

/* Advance: h_k computed by starting at layer j from a stored h_j equals h_k computed from
 * the tokens (the same batch, so bit-exact). */
static void advance_check(const char *model) {
  af_backend *be = NULL;
  CHECK_OK(af_backend_open("cpu", 2, &be));
  af_config cfg;
  char path[4300];
  snprintf(path, sizeof path, "%s/config.json", model);
  CHECK_OK(af_config_load(path, &cfg));
  enum { B = 4, T = 9 };
  af_bert m;
  CHECK_OK(af_bert_init(&m, be, &cfg, 3, B, T, 0));
  float *p = malloc(m.lay.total * sizeof *p);
  CHECK_OK(af_checkpoint_load(model, &cfg, &m.lay, p, 1, NULL, 0));
  CHECK_OK(af_bert_set_params(&m, p));
  int32_t ids[B * T], tt[B * T];
  float mask[B * T], tg[B] = {0, 1, 2, 1};
  for (int i = 0; i < B * T; i++) {
    int len = 3 + 2 * (i / T);
    ids[i] = (i % T) < len ? 5 + i % 50 : 0;
    tt[i] = 0;
    mask[i] = (i % T) < len;
  }
  af_bert_input in = {ids, tt, mask, tg, B, T};
  CHECK_OK(af_bert_load_batch(&m, &in));
  const size_t n = (size_t)B * T * cfg.hidden_size;
  float *h1 = malloc(n * sizeof *h1), *h2 = malloc(n * sizeof *h2), *h2b = malloc(n * sizeof *h2b), loss;
  CHECK_OK(af_bert_forward(&m, B, T, 0, 2, 0, 0, &loss));  /* depth 2: h[1], h[2] are frozen outputs */
  be->to_host(be, h1, af_bert_hidden(&m, 1), n * sizeof(float));
  be->to_host(be, h2, af_bert_hidden(&m, 2), n * sizeof(float));
  CHECK_OK(af_bert_load_hidden(&m, 1, h1, B, T));  /* the entry at depth 1, advanced to 2 */
  CHECK_OK(af_bert_forward(&m, B, T, 1, 2, 1, 7, &loss));
  be->to_host(be, h2b, af_bert_hidden(&m, 2), n * sizeof(float));
  CHECK(memcmp(h2, h2b, n * sizeof(float)) == 0);
  printf("advance depth 1 -> 2 from a stored entry: %s\n", memcmp(h2, h2b, n * sizeof(float)) ? "DIFFERENT" : "bit-identical");
  free(p);
  free(h1);
  free(h2);
  free(h2b);
  af_bert_free(&m);
  af_backend_close(be);
}

int main(void) {
  char model[4200], data[4200], out[4400], cdir[4200], newdir[4300], errlog[4300];
  snprintf(model, sizeof model, "%s/tests/fixtures/bert_tiny/cls", af_test_source_dir());
  const char *tmp = af_test_tmpdir();
  snprintf(data, sizeof data, "%s/task", tmp);
  snprintf(cdir, sizeof cdir, "%s/cache", tmp);
  snprintf(newdir, sizeof newdir, "%s/not/there/yet", tmp);  /* --cache disk makes it */
  snprintf(errlog, sizeof errlog, "%s/stderr.txt", tmp);
  char cmd[9000];
  snprintf(cmd, sizeof cmd, "mkdir -p %s %s", data, cdir);
  if (system(cmd) != 0) return 1;
  af_test_write_you_split(data, "train", 192, 11, 3, 9);
  af_test_write_you_split(data, "dev", 64, 12, 3, 9);
  af_set_quiet(1);  /* the failure cases warn by design */

  af_policy *pol = NULL, *breaker = NULL, *ends = NULL, *lat = NULL;
  static int flag = 1;
  CHECK_OK(af_policy_custom("scripted", scripted, NULL, NULL, &pol));
  CHECK_OK(af_policy_custom("epoch-ends", at_epoch_ends, NULL, NULL, &ends));
  CHECK_OK(af_policy_custom("late", late, NULL, NULL, &lat));
  CHECK_OK(af_policy_custom("scripted", scripted, &flag, NULL, &breaker));
  run_out off, mem, disk, autom, f16, bf16, bad, trunc, ends_off, ends_mem, late_off, late_mem;

#define RUN(name, ro, p, mode, dt, dir, budget)                        \
  snprintf(out, sizeof out, "%s/%s.h5", tmp, name);                    \
  train_with(model, data, out, p, mode, dt, dir, budget);              \
  read_run(out, &ro)

  RUN("off", off, pol, AF_CACHE_OFF, AF_DTYPE_F32, NULL, 0);
  RUN("memory", mem, pol, AF_CACHE_MEMORY, AF_DTYPE_F32, NULL, 0);
  CHECK(!af_path_exists(newdir));
  RUN("disk", disk, pol, AF_CACHE_DISK, AF_DTYPE_F32, newdir, 0);
  RUN("auto", autom, pol, AF_CACHE_AUTO, AF_DTYPE_F32, cdir, 20000);  /* tiny budget: spills to disk */
  RUN("f16", f16, pol, AF_CACHE_MEMORY, AF_DTYPE_F16, NULL, 0);
  RUN("bf16", bf16, pol, AF_CACHE_MEMORY, AF_DTYPE_BF16, NULL, 0);
  /* --cache disk, a folder that cannot be made: the run fails at the start, naming it */
  {
    const char *nodir = "/proc/autofreeze-no-such-dir";
    af_train_opts o;
    af_train_summary sum;
    snprintf(out, sizeof out, "%s/disk-nodir.h5", tmp);
    opts_with(&o, model, data, out, pol, AF_CACHE_DISK, AF_DTYPE_F32, nodir, 0);
    CHECK(af_train(&o, &sum) == AF_ERR_IO);
    printf("--cache disk, folder that cannot be made: %s\n", af_last_error());
    CHECK(strstr(af_last_error(), nodir) && !strchr(af_last_error(), '\n') && sum.steps == 0 &&
          !strcmp(sum.status, "failed") && !af_path_exists(out));
  }
  /* --cache auto with it: memory only (a budget too small for every entry), the run-end
   * line (not quiet, stderr caught in a file) names the disk tier off and why */
  {
    fflush(stderr);
    int saved = dup(2), fd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(saved >= 0 && fd >= 0 && dup2(fd, 2) == 2);
    verbose = 1;
    RUN("auto-nodir", bad, pol, AF_CACHE_AUTO, AF_DTYPE_F32, "/proc/autofreeze-no-such-dir", 150000);
    verbose = 0;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
  }
  snprintf(cache_dir_to_break, sizeof cache_dir_to_break, "%s", cdir);
  RUN("truncated", trunc, breaker, AF_CACHE_DISK, AF_DTYPE_F32, cdir, 0);
  RUN("ends-off", ends_off, ends, AF_CACHE_OFF, AF_DTYPE_F32, NULL, 0);
  RUN("ends-memory", ends_mem, ends, AF_CACHE_MEMORY, AF_DTYPE_F32, NULL, 0);
  RUN("late-off", late_off, lat, AF_CACHE_OFF, AF_DTYPE_F32, NULL, 0);
  RUN("late-memory", late_mem, lat, AF_CACHE_MEMORY, AF_DTYPE_F32, NULL, 0);

  printf("cache hits/misses: memory %lld/%lld, disk %lld/%lld (tier %s), auto %lld/%lld (tier %s)\n", mem.hits,
         mem.misses, disk.hits, disk.misses, disk.tier, autom.hits, autom.misses, autom.tier);
  /* 192 examples, 12 steps an epoch: epoch 2 misses every example once (192); epochs 3 and 4
   * serve every example from the cache, advancing the depth-1 entries in epoch 3 (384). */
  CHECK(mem.hits == 384 && mem.misses == 192 && disk.hits == 384 && autom.hits == 384);
  CHECK(!strcmp(mem.tier, "memory") && !strcmp(disk.tier, "disk") && !strcmp(autom.tier, "memory+disk"));
  int same = mem.nl == disk.nl && mem.na == disk.na && !memcmp(mem.loss, disk.loss, mem.nl * sizeof(double)) &&
             !memcmp(mem.acc, disk.acc, mem.na * sizeof(double)) && autom.nl == mem.nl &&
             !memcmp(autom.loss, mem.loss, mem.nl * sizeof(double));
  printf("memory vs disk vs auto (fp32): %s\n", same ? "bit-identical losses and metrics" : "DIFFERENT");
  CHECK(same);
  compare("memory (fp32) vs cache off", &mem, &off, 1e-4, 0.0);
  compare("fp16 storage vs cache off", &f16, &off, 1e-2, 0.05);
  compare("bf16 storage vs cache off", &bf16, &off, 1e-2, 0.05);
  /* the disk tier in a folder made by the run: used for real, and /cache says so */
  printf("disk tier in a new nested folder: hits %lld, bytes written %lld, requested %s, memory_tier '%s', "
         "disk_tier '%s'\n", disk.hits, disk.bytes_written, disk.requested, disk.memory_tier, disk.disk_tier);
  CHECK(af_is_dir(newdir) && disk.hits > 0 && disk.bytes_written > 0 && !strcmp(disk.requested, "disk") &&
        !strcmp(disk.disk_tier, "on") && !strcmp(disk.memory_tier, "not asked for") && !disk.reason[0]);
  CHECK(!strcmp(autom.memory_tier, "on") && !strcmp(autom.disk_tier, "on"));  /* spilled */
  CHECK(!strcmp(mem.disk_tier, "not asked for") && !strcmp(off.requested, "off") &&
        !strcmp(off.reason, "not configured"));
  printf("auto, folder that cannot be made: hits %lld, memory_tier '%s', disk_tier '%s'\n", bad.hits,
         bad.memory_tier, bad.disk_tier);
  CHECK(!bad.reason[0] && bad.hits > 0 && bad.hits < 384 && !strcmp(bad.tier, "memory") &&
        !strcmp(bad.memory_tier, "on") && !strncmp(bad.disk_tier, "off: ", 5) &&
        strstr(bad.disk_tier, "autofreeze-no-such-dir"));
  compare("auto, disk tier off vs cache off", &bad, &off, 1e-4, 0.0);
  {
    char buf[4096], line[4096] = "";
    int lines = 0;
    FILE *f = fopen(errlog, "r");
    while (f && fgets(buf, sizeof buf, f))
      if (!strncmp(buf, "autofreeze: activation cache", 28)) {
        snprintf(line, sizeof line, "%s", buf);
        lines++;
      }
    if (f) fclose(f);
    printf("run-end line: %s", lines ? line : "(none)\n");
    CHECK(lines == 1 && !strncmp(line, "autofreeze: activation cache (auto): memory tier on (", 53) &&
          strstr(line, "; disk tier off: ") && strstr(line, "autofreeze-no-such-dir") && strstr(line, "hit rate "));
  }
  printf("file truncated mid-run: disabled (%s)\n", trunc.reason);
  /* the file worked until decision 4 (step 30): epoch 3's first steps were served from it */
  CHECK(strstr(trunc.reason, "truncated") != NULL && trunc.hits > 0);
  compare("truncated mid-run vs cache off", &trunc, &off, 1e-4, 0.0);
  printf("freezes at epoch ends: hits/misses %lld/%lld\n", ends_mem.hits, ends_mem.misses);
  CHECK(ends_mem.hits == 384 && ends_mem.misses == 192);
  compare("epoch-end freezes: memory vs off", &ends_mem, &ends_off, 1e-4, 0.0);
  /* every row of every step after step 30 is one lookup: 18 steps x 16 rows. Absent rows
   * are 192 misses (steps 31-36 whole, and epoch 4's 96 rows not seen since the freeze);
   * epoch 4's 96 depth-1 rows count a hit when advanced in a sub-batch and a miss when their
   * batch runs whole from the tokens, so both ways are taken iff hits > 0 and misses > 192. */
  printf("late freezes: hits/misses %lld/%lld\n", late_mem.hits, late_mem.misses);
  CHECK(late_mem.hits + late_mem.misses == 18 * 16);
  CHECK(late_mem.hits > 0 && late_mem.misses > 192);
  compare("late freezes: memory vs off", &late_mem, &late_off, 1e-4, 0.0);
  advance_check(model);

  free_run(&ends_off); free_run(&ends_mem); free_run(&late_off); free_run(&late_mem);
  af_policy_free(ends);
  af_policy_free(lat);
  free_run(&off); free_run(&mem); free_run(&disk); free_run(&autom);
  free_run(&f16); free_run(&bf16); free_run(&bad); free_run(&trunc);
  af_policy_free(pol);
  af_policy_free(breaker);
  return af_test_done("test_cache_train");
}
