/* A run killed outright (SIGKILL: no handler, no flush, no checkpoint on the way out) loses
 * nothing up to its last flush and resumes to exactly the uninterrupted run. Deterministic:
 * the run kills itself from inside its policy at the decision after step 80, so the last
 * flush is that of step 60 and the 20 steps since are in memory only (its checkpoint is that
 * of step 60, or of step 40 if the writer thread had not finished it: either resumes).
 * A second run is killed while its checkpoint of step 80 is being written (the test hook
 * af_run_test_kill_in_ckpt_write: after the temporary file, before the rename, with the
 * prefix file of its new depth 2 already written): the checkpoint of step 60 stays in place,
 * with the prefix file of depth 1 it names, and resumes to exactly the uninterrupted run,
 * final weights included. Tiny fixture model and the generated "you" task, as in
 * test_train_tiny.c. The killed runs are forked before this process touches OpenMP or HDF5
 * (neither survives a fork cleanly). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/stat.h>
#include "core/model/safetensors.h"
#include "core/results/results_read.h"
#include "core/run/run.h"
#include "core/run/train.h"
#include "core/run/train_ckpt.h"
#include "tests/testutil.h"

enum { TOTAL = 120 };  /* 320 rows / batch 16 x 6 epochs; boundaries every 20 steps */

/* depth 0 -> 1 at the decision after step 40; with ctx set, SIGKILL at the one after step 80 */
static af_status scripted(af_policy *p, const af_interval_stats *st, int *new_depth) {
  if (st->interval == 1) *new_depth = st->depth + 1;
  if (p->ctx && st->interval == 3) raise(SIGKILL);
  return AF_OK;
}

/* depth 0 -> 1 -> 2 at the decisions after steps 40 and 80 */
static af_status two_freezes(af_policy *p, const af_interval_stats *st, int *new_depth) {
  (void)p;
  if (st->interval == 1 || st->interval == 3) *new_depth = st->depth + 1;
  return AF_OK;
}

/* the shared tiny run (tests/testutil.h) with its own seed */
static void opts_for(af_train_opts *o, const char *model, const char *data, const char *out, af_policy *p) {
  af_test_tiny_train_opts(o, model, data, out, p);
  o->seed = 5;
  o->checkpoint_every = (af_period){AF_PERIOD_INTERVALS, 0};  /* a checkpoint at every boundary */
}

static const char *summary_status(const char *file, char *buf, size_t cap) {
  af_results_reader *rr = NULL;
  af_attr *at = NULL;
  int na = 0;
  buf[0] = 0;
  CHECK_OK(af_results_open_read(file, &rr));
  if (rr) CHECK_OK(af_results_read_attrs(rr, "summary", &at, &na));
  const af_attr *a = af_results_find_attr(at, na, "status");
  if (a && a->type == AF_ATTR_STR && a->s) snprintf(buf, cap, "%s", a->s);
  af_results_free_attrs(at, na);
  af_results_close_read(&rr);
  return buf;
}


static int exists_in(const char *dir, const char *name) {
  char path[4600];
  struct stat sb;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return stat(path, &sb) == 0;
}

/* the run killed between its checkpoint's temporary file and the rename */
static void killed_in_write(const char *killed, const char *full, const char *model, const char *data, af_policy *p) {
  char ck[4400], v[256], st[32];
  snprintf(ck, sizeof ck, "%s.ckpt", killed);
  /* in place: the checkpoint of step 60 (depth 1) and its prefix file; beside it, the
   * unfinished one of step 80 and the prefix file of depth 2 written before it */
  CHECK(!strcmp(af_test_st_meta(ck, "last.safetensors", "step", v, sizeof v), "60"));
  CHECK(!strcmp(af_test_st_meta(ck, "last.safetensors", "prefix_file", v, sizeof v), "prefix-1.safetensors"));
  CHECK(!strcmp(af_test_st_meta(ck, "last.safetensors.tmp", "step", v, sizeof v), "80"));
  CHECK(!strcmp(af_test_st_meta(ck, "last.safetensors.tmp", "prefix_file", v, sizeof v), "prefix-2.safetensors"));
  CHECK(exists_in(ck, "prefix-1.safetensors") && exists_in(ck, "prefix-2.safetensors"));
  size_t n = 0;
  double *steps = af_test_read_col(killed, "steps/step", &n);  /* flushed at step 80, after the hand-off */
  CHECK(n == 80 && steps && steps[n - 1] == 80);
  free(steps);
  CHECK(!strcmp(summary_status(killed, st, sizeof st), "running"));
  printf("left behind: last.safetensors of step 60 + prefix-1, the unrenamed one of step 80 + prefix-2, "
         "80 steps in the results file\n");

  af_train_opts o;
  af_train_summary sum;
  opts_for(&o, model, data, killed, p);
  o.resume = 1;
  CHECK_OK(af_train(&o, &sum));
  CHECK(!strcmp(sum.status, "complete") && sum.steps == TOTAL && sum.final_depth == 2);
  opts_for(&o, model, data, full, p);
  CHECK_OK(af_train(&o, &sum));
  CHECK(!strcmp(summary_status(killed, st, sizeof st), "complete"));
  /* the resumed run's checkpoints replaced the leftovers: prefix-2 named, prefix-1 gone */
  CHECK(!exists_in(ck, "last.safetensors.tmp") && !exists_in(ck, "prefix-1.safetensors"));
  CHECK(!strcmp(af_test_st_meta(ck, "last.safetensors", "prefix_file", v, sizeof v), "prefix-2.safetensors"));

  const char *cols[] = {"steps/step", "steps/loss", "steps/lr", "steps/frozen_depth", "intervals/l1", "evals/accuracy"};
  for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
    size_t na = 0, nb = 0;
    double *(*read)(const char *, const char *, size_t *) =
        strcmp(cols[c], "intervals/l1") ? af_test_read_col : af_test_read_flat;
    double *a = read(full, cols[c], &na), *b = read(killed, cols[c], &nb);
    int same = na == nb && na > 0 && a && b && !memcmp(a, b, na * sizeof *a);
    printf("killed in a checkpoint write + resumed vs uninterrupted: %-20s %3zu values %s\n", cols[c], na,
           same ? "identical" : "DIFFERENT");
    CHECK(same);
    free(a);
    free(b);
  }
  /* final weights: both runs' last checkpoints (prefix of depth 2 + the rest) */
  char fck[4400];
  snprintf(fck, sizeof fck, "%s.ckpt", full);
  enum { MAXP = 1 << 20 };
  float *a = calloc(MAXP, sizeof *a), *b = calloc(MAXP, sizeof *b);
  char total[32];
  size_t P = (size_t)strtoull(af_test_st_meta(ck, "prefix-2.safetensors", "total", total, sizeof total), NULL, 10);
  CHECK(P > 0 && P <= MAXP);
  if (a && b && P > 0 && P <= MAXP) {
    CHECK_OK(af_train_ckpt_params(ck, a, P));
    CHECK_OK(af_train_ckpt_params(fck, b, P));
    int same = !memcmp(a, b, P * sizeof *a);
    printf("final weights: %zu parameters %s\n", P, same ? "identical" : "DIFFERENT");
    CHECK(same);
  }
  free(a);
  free(b);
}

int main(void) {
  char model[4200], data[4200], killed[4300], full[4300], st[32];
  const char *tmp = af_test_tmpdir();
  if (af_test_tiny_setup(model, data, sizeof model) != 0) return 1;
  snprintf(killed, sizeof killed, "%s/killed.h5", tmp);
  snprintf(full, sizeof full, "%s/full.h5", tmp);
  static int kill_flag = 1;
  af_policy *killer = NULL, *plain = NULL;
  CHECK_OK(af_policy_custom("scripted", scripted, &kill_flag, NULL, &killer));
  CHECK_OK(af_policy_custom("scripted", scripted, NULL, NULL, &plain));
  af_train_opts o;
  af_train_summary sum;

  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    opts_for(&o, model, data, killed, killer);
    af_train(&o, &sum);
    _exit(0);  /* not reached when the policy kills the run */
  }
  int ws = 0;
  CHECK(pid > 0 && waitpid(pid, &ws, 0) == pid);
  CHECK(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
  printf("killed run: %s\n", WIFSIGNALED(ws) ? strsignal(WTERMSIG(ws)) : "exited");

  /* the second run, killed inside its checkpoint write of step 80 */
  char wkilled[4300], wfull[4300];
  snprintf(wkilled, sizeof wkilled, "%s/killed_in_write.h5", tmp);
  snprintf(wfull, sizeof wfull, "%s/full_two.h5", tmp);
  af_policy *two = NULL;
  CHECK_OK(af_policy_custom("two_freezes", two_freezes, NULL, NULL, &two));
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  if (pid == 0) {
    opts_for(&o, model, data, wkilled, two);
    af_run_test_kill_in_ckpt_write(80);
    af_train(&o, &sum);
    _exit(0);  /* not reached when the hook kills the run */
  }
  CHECK(pid > 0 && waitpid(pid, &ws, 0) == pid);
  CHECK(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
  printf("run killed while writing its checkpoint: %s\n", WIFSIGNALED(ws) ? strsignal(WTERMSIG(ws)) : "exited");

  /* what the killed run left: a file that opens, status "running", everything up to step 60 */
  size_t n = 0;
  double *steps = af_test_read_col(killed, "steps/step", &n);
  CHECK(n == 60 && steps && steps[n - 1] == 60);
  free(steps);
  double *isteps = af_test_read_col(killed, "intervals/step", &n);
  CHECK(n == 3 && isteps && isteps[2] == 60);
  free(isteps);
  CHECK(!strcmp(summary_status(killed, st, sizeof st), "running"));
  printf("left behind: 60 steps, 3 decisions, status \"%s\"\n", st);

  opts_for(&o, model, data, killed, plain);
  o.resume = 1;
  CHECK_OK(af_train(&o, &sum));
  CHECK(!strcmp(sum.status, "complete") && sum.steps == TOTAL && sum.final_depth == 1);
  opts_for(&o, model, data, full, plain);
  CHECK_OK(af_train(&o, &sum));
  CHECK(!strcmp(summary_status(killed, st, sizeof st), "complete"));

  const char *cols[] = {"steps/step", "steps/loss", "steps/lr", "steps/frozen_depth", "steps/examples",
                        "intervals/step", "intervals/l1", "evals/step", "evals/accuracy"};
  for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
    size_t na = 0, nb = 0;
    double *(*read)(const char *, const char *, size_t *) =
        strcmp(cols[c], "intervals/l1") ? af_test_read_col : af_test_read_flat;
    double *a = read(full, cols[c], &na), *b = read(killed, cols[c], &nb);
    int same = na == nb && na > 0 && a && b && !memcmp(a, b, na * sizeof *a);
    printf("killed + resumed vs uninterrupted: %-20s %3zu values %s\n", cols[c], na, same ? "identical" : "DIFFERENT");
    CHECK(same);
    free(a);
    free(b);
  }
  killed_in_write(wkilled, wfull, model, data, two);
  af_policy_free(two);
  af_policy_free(killer);
  af_policy_free(plain);
  return af_test_done("test_kill_resume");
}
