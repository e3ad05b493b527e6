/* A run killed outright (SIGKILL: no handler, no flush, no checkpoint on the way out) loses
 * nothing up to its last flush and resumes to exactly the uninterrupted run. Deterministic:
 * the run kills itself from inside its policy at the decision after step 80, so the last
 * flush and checkpoint are those of step 60 and the 20 steps since are in memory only.
 * Tiny fixture model and the generated "you" task, as in test_train_tiny.c. The killed run
 * is forked before this process touches OpenMP or HDF5 (neither survives a fork cleanly). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/results/results_read.h"
#include "core/run/train.h"
#include "tests/testutil.h"

enum { TOTAL = 120 };  /* 320 rows / batch 16 x 6 epochs; boundaries every 20 steps */

/* depth 0 -> 1 at the decision after step 40; with ctx set, SIGKILL at the one after step 80 */
static af_status scripted(af_policy *p, const af_interval_stats *st, int *new_depth) {
  if (st->interval == 1) *new_depth = st->depth + 1;
  if (p->ctx && st->interval == 3) raise(SIGKILL);
  return AF_OK;
}

/* the shared tiny run (tests/testutil.h) with its own seed */
static void opts_for(af_train_opts *o, const char *model, const char *data, const char *out, af_policy *p) {
  af_test_tiny_train_opts(o, model, data, out, p);
  o->seed = 5;
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
  af_policy_free(killer);
  af_policy_free(plain);
  return af_test_done("test_kill_resume");
}
