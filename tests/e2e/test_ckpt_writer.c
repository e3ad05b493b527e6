/* Run checkpoints written by the background writer (core/run/train_ckpt_writer.c) in the
 * split layout (core/run/train_ckpt.h), on the tiny fixture model and the generated "you"
 * task (120 steps, 6 intervals: boundaries every 20 steps):
 *   - checkpoint_every: how many checkpoints each period writes (/summary@checkpoints_written),
 *     the end of the run always, none with checkpoints off, and the trajectory unchanged;
 *   - the frozen prefix is a file of its own, written once per depth: a resumed run at the
 *     same depth leaves it alone, and last.safetensors holds only the rest;
 *   - a checkpoint in the previous layout (one file, whole arrays, no prefix metadata) still
 *     resumes, to exactly the uninterrupted run;
 *   - an error of the writer thread fails the run with its message: at the next checkpoint
 *     point, at the end of the run, and on a stop (instead of "interrupted"). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/model/safetensors.h"
#include "core/results/results_read.h"
#include "core/base/fsutil.h"
#include "core/run/run.h"
#include "core/run/train.h"
#include "core/run/train_ckpt.h"
#include "tests/testutil.h"

enum { TOTAL = 120 };

static char g_model[4200], g_data[4200];
static const char *g_tmp;

/* depth 0 -> 1 -> 2 at the decisions after steps 40 and 80 */
static af_status two_freezes(af_policy *p, const af_interval_stats *st, int *new_depth) {
  (void)p;
  if (st->interval == 1 || st->interval == 3) *new_depth = st->depth + 1;
  return AF_OK;
}

static void opts_for(af_train_opts *o, const char *name, af_policy *p, const char *every, char *out, size_t cap) {
  snprintf(out, cap, "%s/%s.h5", g_tmp, name);
  af_test_tiny_train_opts(o, g_model, g_data, out, p);
  if (every) CHECK_OK(af_opt_set(af_opt_find("checkpoint_every"), o, every));
}

/* a /summary attribute as a number (NAN when absent), or as text into buf */
static double summary(const char *file, const char *key, char *buf, size_t cap) {
  af_results_reader *rr = NULL;
  af_attr *at = NULL;
  int na = 0;
  double v = NAN;
  if (buf) buf[0] = 0;
  CHECK_OK(af_results_open_read(file, &rr));
  if (rr) CHECK_OK(af_results_read_attrs(rr, "summary", &at, &na));
  const af_attr *a = af_results_find_attr(at, na, key);
  if (a && a->type == AF_ATTR_STR && buf) snprintf(buf, cap, "%s", a->s ? a->s : "");
  else if (a && (a->type == AF_ATTR_INT || a->type == AF_ATTR_DOUBLE)) v = a->d;
  af_results_free_attrs(at, na);
  af_results_close_read(&rr);
  return v;
}


static long long file_size(const char *dir, const char *name, unsigned long long *ino) {
  char path[4600];
  struct stat sb;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (stat(path, &sb) != 0) return -1;
  if (ino) *ino = (unsigned long long)sb.st_ino;
  return (long long)sb.st_size;
}

/* ---- when ---- */

static void cadence(void) {
  struct { const char *every; long want; } runs[] = {
      {"intervals", 6},  /* boundaries 20..100, and the end */
      {"25", 5},         /* steps 25, 50, 75, 100, and the end */
      {"1h", 1},         /* only the end */
      {"1e-06s", TOTAL}, /* after every step: each hand-off waits for the write before it */
  };
  char first[4300] = "", out[4300], ck[4400];
  af_train_opts o;
  af_train_summary sum;
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
    char name[64];
    snprintf(name, sizeof name, "every%zu", i);
    opts_for(&o, name, NULL, runs[i].every, out, sizeof out);
    CHECK_OK(af_train(&o, &sum));
    double n = summary(out, "checkpoints_written", NULL, 0), t = summary(out, "checkpoint_time", NULL, 0);
    printf("checkpoint_every %-9s: %3.0f checkpoints written (want %ld), %.4f s on the training thread\n",
           runs[i].every, n, runs[i].want, t);
    CHECK(n == runs[i].want && t >= 0);
    snprintf(ck, sizeof ck, "%s.ckpt", out);
    char v[64];
    CHECK(!strcmp(af_test_st_meta(ck, "last.safetensors", "step", v, sizeof v), "120"));
    if (i == 0) snprintf(first, sizeof first, "%s", out);
    else CHECK(af_test_same_col(first, out, "steps/loss") && af_test_same_col(first, out, "evals/accuracy"));
  }
  opts_for(&o, "nockpt", NULL, "1e-06s", out, sizeof out);
  o.checkpoints = 0;
  CHECK_OK(af_train(&o, &sum));
  snprintf(ck, sizeof ck, "%s.ckpt", out);
  CHECK(summary(out, "checkpoints_written", NULL, 0) == 0 && access(ck, F_OK) != 0);
  CHECK(af_test_same_col(first, out, "steps/loss"));
  printf("checkpoints off: none written, no folder; the losses of every run identical\n");
}

/* ---- the frozen prefix, once per depth ---- */

static void prefix_once(void) {
  af_policy *stat2 = NULL;
  CHECK_OK(af_policy_static(2, &stat2));
  char out[4300], ck[4400], v[64], id1[64], id2[64];
  af_train_opts o;
  af_train_summary sum;
  opts_for(&o, "static2", stat2, "intervals", out, sizeof out);
  o.max_steps = 50;  /* checkpoints at 20, 40 and the end, 50 */
  CHECK_OK(af_train(&o, &sum));
  snprintf(ck, sizeof ck, "%s.ckpt", out);
  unsigned long long ino = 0, ino2 = 1;
  long long pre = file_size(ck, "prefix-2.safetensors", &ino), last = file_size(ck, "last.safetensors", NULL);
  CHECK(!strcmp(af_test_st_meta(ck, "last.safetensors", "prefix_file", v, sizeof v), "prefix-2.safetensors"));
  CHECK(!strcmp(af_test_st_meta(ck, "last.safetensors", "prefix_id", id1, sizeof id1),
                af_test_st_meta(ck, "prefix-2.safetensors", "prefix_id", id2, sizeof id2)) && id1[0]);
  /* the embeddings and layers 0-1 are most of the tiny model: last.safetensors is the smaller part */
  CHECK(pre > 0 && last > 0 && last < pre);
  CHECK(file_size(ck, "prefix-1.safetensors", NULL) < 0 && file_size(ck, "last.safetensors.tmp", NULL) < 0);
  printf("static 2: prefix-2.safetensors %lld bytes, last.safetensors %lld bytes\n", pre, last);
  o.max_steps = 90;
  o.resume = 1;
  CHECK_OK(af_train(&o, &sum));
  CHECK(sum.steps == 90 && summary(out, "checkpoints_written", NULL, 0) == 3);
  CHECK(!strcmp(af_test_st_meta(ck, "last.safetensors", "step", v, sizeof v), "90"));
  file_size(ck, "prefix-2.safetensors", &ino2);
  CHECK(ino == ino2);
  printf("resumed at depth 2 to step 90: 3 checkpoints, prefix-2.safetensors %s\n",
         ino == ino2 ? "not written again" : "WRITTEN AGAIN");
  af_policy_free(stat2);
}

/* ---- the previous layout ---- */

/* DIR's checkpoint as the previous version wrote it: last.safetensors alone with the whole
 * params/adam_m/adam_v and the metadata keys of that version */
static void to_old_layout(const char *dir) {
  static const char *const keys[] = {"format", "model_dir", "num_labels", "step", "epoch", "batch_in_epoch", "depth",
                                     "examples", "L", "intervals_done", "prev_scores", "has_prev", "have_best", "best",
                                     "best_step", "best_train_time", "train_time", "seed", "total_steps",
                                     "last_eval_step", "labels", "run_config", NULL};
  static const char *const names[] = {"params", "adam_m", "adam_v", "interval_grad_sum"};
  char path[4600], pname[64];
  af_st *st = NULL, *pre = NULL;
  snprintf(path, sizeof path, "%s/last.safetensors", dir);
  CHECK_OK(af_st_open(path, &st));
  if (!st) return;
  snprintf(pname, sizeof pname, "%s", af_st_metadata(st, "prefix_file") ? af_st_metadata(st, "prefix_file") : "");
  CHECK(pname[0]);  /* the case worth converting: a prefix to merge back */
  snprintf(path, sizeof path, "%s/%s", dir, pname);
  CHECK_OK(af_st_open(path, &pre));
  float *data[4] = {NULL};
  af_st_write_tensor t[4];
  for (int k = 0; k < 4; k++) {
    const af_st_tensor *tail = af_st_find(st, names[k]), *head = pre ? af_st_find(pre, names[k]) : NULL;
    size_t nh = head ? head->numel : 0, n = nh + (tail ? tail->numel : 0);
    data[k] = malloc((n ? n : 1) * sizeof(float));
    if (head) CHECK_OK(af_st_read_f32(pre, head, data[k]));
    if (tail) CHECK_OK(af_st_read_f32(st, tail, data[k] + nh));
    t[k] = (af_st_write_tensor){names[k], AF_ST_F32, 1, {(int64_t)n}, data[k]};
  }
  cJSON *m = cJSON_CreateObject();
  for (int i = 0; keys[i]; i++) {
    const char *v = af_st_metadata(st, keys[i]);
    CHECK(v != NULL);
    cJSON_AddStringToObject(m, keys[i], v ? v : "");
  }
  char *json = cJSON_PrintUnformatted(m);
  af_st_close(pre);
  af_st_close(st);
  snprintf(path, sizeof path, "%s/last.safetensors", dir);
  CHECK_OK(af_st_write(path, t, 4, json));
  snprintf(path, sizeof path, "%s/%s", dir, pname);
  CHECK(unlink(path) == 0);
  free(json);
  cJSON_Delete(m);
  for (int k = 0; k < 4; k++) free(data[k]);
}

static void old_layout(void) {
  af_policy *two = NULL;
  CHECK_OK(af_policy_custom("two_freezes", two_freezes, NULL, NULL, &two));
  char out[4300], full[4300], ck[4400], fck[4400], v[64];
  af_train_opts o;
  af_train_summary sum;
  opts_for(&o, "two_full", two, NULL, full, sizeof full);
  CHECK_OK(af_train(&o, &sum));
  opts_for(&o, "old", two, NULL, out, sizeof out);
  o.max_steps = 50;  /* depth 1: prefix-1 + the rest */
  CHECK_OK(af_train(&o, &sum));
  snprintf(ck, sizeof ck, "%s.ckpt", out);
  snprintf(fck, sizeof fck, "%s.ckpt", full);
  enum { MAXP = 1 << 20 };
  float *a = calloc(MAXP, sizeof *a), *b = calloc(MAXP, sizeof *b);
  size_t P = 0;
  {
    char path[4600];
    af_st *st = NULL;
    snprintf(path, sizeof path, "%s/prefix-1.safetensors", ck);
    CHECK_OK(af_st_open(path, &st));
    if (st) P = (size_t)strtoull(af_st_metadata(st, "total") ? af_st_metadata(st, "total") : "0", NULL, 10);
    af_st_close(st);
  }
  CHECK(P > 0 && P <= MAXP && a && b);
  if (!(P > 0 && P <= MAXP && a && b)) P = 0;
  if (P) CHECK_OK(af_train_ckpt_params(ck, a, P));  /* split */
  to_old_layout(ck);
  CHECK(!af_test_st_meta(ck, "last.safetensors", "prefix_file", v, sizeof v)[0] && file_size(ck, "prefix-1.safetensors", NULL) < 0);
  if (P) {
    CHECK_OK(af_train_ckpt_params(ck, b, P));  /* one file: what `autofreeze export` reads */
    CHECK(!memcmp(a, b, P * sizeof *a));
  }
  o.max_steps = 0;
  o.resume = 1;
  CHECK_OK(af_train(&o, &sum));
  CHECK(!strcmp(sum.status, "complete") && sum.steps == TOTAL && sum.final_depth == 2);
  /* (not the evaluations: the run stopped at step 50 evaluated there, the uninterrupted one did not) */
  int same = af_test_same_col(full, out, "steps/loss") && af_test_same_col(full, out, "steps/frozen_depth") &&
             af_test_same_col(full, out, "intervals/depth_after");
  if (P) {
    CHECK_OK(af_train_ckpt_params(ck, a, P));
    CHECK_OK(af_train_ckpt_params(fck, b, P));
    same = same && !memcmp(a, b, P * sizeof *a);
  }
  printf("a checkpoint in the previous layout (step 50, depth 1) resumed: losses and final weights %s\n",
         same ? "identical to the uninterrupted run" : "DIFFERENT");
  CHECK(same);
  CHECK(!strcmp(af_test_st_meta(ck, "last.safetensors", "prefix_file", v, sizeof v), "prefix-2.safetensors"));
  free(a);
  free(b);
  af_policy_free(two);
}

/* ---- errors of the writer thread ---- */

static void writer_errors(void) {
  struct { const char *name, *every; long interrupt, steps; } runs[] = {
      {"err_next", "intervals", 0, 40},  /* the write at step 20 fails: told at the next one, step 40 */
      {"err_end", "1h", 0, TOTAL},      /* the end of the run's write fails */
      {"err_stop", "1h", 30, 30},       /* the stop's write fails: that, not "interrupted" */
  };
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
    char out[4300], ck[4400], path[4600], err[2048];
    af_train_opts o;
    af_train_summary sum;
    opts_for(&o, runs[i].name, NULL, runs[i].every, out, sizeof out);
    /* the temporary file's name taken by a folder (not empty, so the writer cannot remove it) */
    snprintf(ck, sizeof ck, "%s/%s-ck", g_tmp, runs[i].name);
    snprintf(path, sizeof path, "%s/last.safetensors.tmp/x", ck);
    CHECK_OK(af_mkdirs(path));
    o.checkpoint_dir = ck;
    if (runs[i].interrupt) af_run_test_interrupt_at(runs[i].interrupt);
    af_status s = af_train(&o, &sum);
    snprintf(err, sizeof err, "%s", af_last_error());
    printf("%s: %s, %ld steps: %s\n", runs[i].name, af_status_name(s), sum.steps, err);
    CHECK(s == AF_ERR_IO && !strcmp(sum.status, "failed") && sum.steps == runs[i].steps);
    CHECK(strstr(err, "writing the run checkpoint") && strstr(err, "last.safetensors.tmp"));
    char st[32], rerr[2048];
    summary(out, "status", st, sizeof st);
    summary(out, "error", rerr, sizeof rerr);
    CHECK(!strcmp(st, "failed") && strstr(rerr, "last.safetensors.tmp"));
  }
}

int main(void) {
  g_tmp = af_test_tmpdir();
  if (af_test_tiny_setup(g_model, g_data, sizeof g_model) != 0) return 1;
  cadence();
  prefix_once();
  old_layout();
  writer_errors();
  return af_test_done("test_ckpt_writer");
}
