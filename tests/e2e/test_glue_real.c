/* The real GLUE files of MRPC, RTE and STS-B (../shared/data/glue, via AF_GLUE_DIR): row
 * counts, label sets, the quirks (MRPC's BOM, RTE's extra field), and, when the model is
 * present, tokenization with a cache hit on the second load and a full batching pass.
 * Skips with a message when the data folder is absent (a fresh clone does not have it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/data/batcher.h"
#include "core/data/task.h"
#include "core/data/tokenizer.h"
#include "tests/testutil.h"

typedef struct {
  const char *task, *dir;
  size_t train, dev;
} expect;

static void check_labels(const af_task *t, const af_split *s) {
  int K = af_task_num_labels(t);
  if (K == 1) {
    float lo = 1e9f, hi = -1e9f;
    for (size_t i = 0; i < s->n; i++) {
      if (s->labels[i] < lo) lo = s->labels[i];
      if (s->labels[i] > hi) hi = s->labels[i];
    }
    printf("  %s/%s: %zu rows, score %.2f..%.2f\n", af_task_name(t), s->name, s->n, lo, hi);
    CHECK(lo >= 0.0f && hi <= 5.0f && hi - lo > 4.0f);
    return;
  }
  size_t cnt[8] = {0};
  for (size_t i = 0; i < s->n; i++) cnt[(int)s->labels[i]]++;
  printf("  %s/%s: %zu rows,", af_task_name(t), s->name, s->n);
  for (int k = 0; k < K; k++) {
    printf(" %s=%zu", af_task_label_name(t, k), cnt[k]);
    CHECK(cnt[k] > 0);  /* every label of the set occurs */
  }
  printf("\n");
}

int main(void) {
  const char *glue = getenv("AF_GLUE_DIR");
  struct stat st;
  if (!glue || stat(glue, &st) != 0 || !S_ISDIR(st.st_mode))
    af_test_skip("GLUE data not found (AF_GLUE_DIR, default ../shared/data/glue): the real-data checks need it");
  const char *model = af_test_model_dir();
  af_tokenizer *tok = NULL;
  if (model && af_tokenizer_load(model, NULL, &tok) != AF_OK) {
    fprintf(stderr, "tokenizer: %s\n", af_last_error());
    af_test_failures++;
  }
  if (!model) printf("model not found (AF_MODEL_DIR): reading only, no tokenization\n");
  const expect ex[] = {{"mrpc", "MRPC", 3668, 408}, {"rte", "RTE", 2490, 277}, {"stsb", "STS-B", 5749, 1500}};
  int found = 0;
  for (size_t e = 0; e < sizeof ex / sizeof ex[0]; e++) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", glue, ex[e].dir);
    if (stat(dir, &st) != 0) {
      printf("  %s: folder absent, skipped\n", dir);
      continue;
    }
    found++;
    af_task_opts o;
    af_task_opts_default(&o);
    o.cache_dir = af_test_tmpdir();  /* the data folder is read-only */
    af_task *t;
    CHECK_OK(af_task_open(ex[e].task, dir, &o, &t));
    if (!t) continue;
    af_split *tr = NULL, *dv = NULL;
    CHECK_OK(af_task_split(t, "train", &tr));
    CHECK_OK(af_task_split(t, "dev", &dv));
    if (tr) { CHECK(tr->n == ex[e].train && tr->bad_rows == 0); check_labels(t, tr); }
    if (dv) { CHECK(dv->n == ex[e].dev && dv->bad_rows == 0); check_labels(t, dv); }
    if (tr && !strcmp(ex[e].task, "mrpc")) /* the BOM is not part of the first text */
      CHECK(strncmp(af_split_text_a(tr, 0), "Amrozi", 6) == 0);
    if (tr && !strcmp(ex[e].task, "rte")) /* the row with the extra field (line 2166) */
      for (size_t i = 0; i < tr->n; i++)
        if (tr->line[i] == 2166) CHECK(tr->labels[i] == 1 && af_split_text_a(tr, i)[0] == '"');
    if (tok && tr && dv) {
      CHECK_OK(af_task_encode(t, tr, tok, 128));
      CHECK_OK(af_task_encode(t, dv, tok, 128));
      printf("  %s: train longest %d, truncated %zu; dev longest %d\n", ex[e].task, tr->longest, tr->n_truncated,
             dv->longest);
      af_batcher_opts bo;
      af_batcher_opts_default(&bo);
      bo.bucket = 50;
      af_batcher *b;
      CHECK_OK(af_batcher_init(&b, tr, &bo));
      if (b) {
        CHECK_OK(af_batcher_begin(b, 0));
        af_batch bt;
        size_t rows = 0;
        while (af_batcher_next(b, &bt)) rows += (size_t)bt.B;
        CHECK(rows == tr->n);
        af_batcher_free(b);
      }
      af_task *t2;
      CHECK_OK(af_task_open(ex[e].task, dir, &o, &t2));
      af_split *again = NULL;
      if (t2) CHECK_OK(af_task_load(t2, "train", tok, 128, &again));
      CHECK(again && again->from_cache && again->n == tr->n && !memcmp(again->len, tr->len, tr->n * sizeof *tr->len));
      af_task_free(t2);
    }
    af_task_free(t);
  }
  af_tokenizer_free(tok);
  if (!found && af_test_failures == 0) af_test_skip("none of MRPC, RTE, STS-B under AF_GLUE_DIR: nothing was checked");
  return af_test_done("test_glue_real");
}
