/* The nine GLUE tasks as published (train.tsv, dev.tsv, test.tsv; MNLI's dev_matched,
 * dev_mismatched, test_matched, test_mismatched). GLUE TSV has no quoting: quotes are text
 * (RTE has an unmatched one). Columns are found by header name, so a column added or moved
 * fails loudly instead of reading the wrong field; CoLA's train/dev have no header and fixed
 * columns (source, label, original label, sentence). Quirks handled: MRPC's BOM (tsv.c),
 * RTE's train row with an extra empty field (label taken from the last field), CRLF.
 * Metrics follow the GLUE paper: CoLA MCC; MRPC and QQP F1 (accuracy reported too); STS-B
 * Pearson primary with Spearman reported (GLUE averages the two; Pearson is what most
 * papers, AutoFreeze's included, quote first); the rest accuracy. */
#include <stdio.h>
#include <string.h>
#include "core/data/task.h"

/* Paths are composed into PATH_MAX-sized buffers; an over-long one is cut and then fails to
 * open with its name in the message, so GCC's truncation warnings are noise here. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

typedef struct {
  const char *name;
  int nlabels;               /* 1 = regression */
  const char *labels[3];
  af_metric_set metrics;
  int mnli;
  af_table_spec train;       /* train and dev */
  af_table_spec test;        /* test: no label column */
} glue_spec;

#define COL(n) {(n), AF_COL_NONE}
#define IDX(i) {NULL, (i)}
#define NONE {NULL, AF_COL_NONE}
#define ACC_ONLY {1, {AF_METRIC_ACCURACY}, AF_METRIC_ACCURACY}
#define PAIR_SPEC(ca, cb, cl) {.header = 1, .a = COL(ca), .b = COL(cb), .label = cl}
#define PAIR_TEST(ca, cb) {.header = 1, .a = COL(ca), .b = COL(cb), .label = NONE}

static const glue_spec specs[] = {
    {"cola", 2, {"0", "1"}, {2, {AF_METRIC_MCC, AF_METRIC_ACCURACY}, AF_METRIC_MCC}, 0,
     {.header = 0, .ncols = 4, .a = IDX(3), .b = NONE, .label = IDX(1)},
     {.header = 1, .a = COL("sentence"), .b = NONE, .label = NONE}},
    {"sst2", 2, {"0", "1"}, ACC_ONLY, 0,
     {.header = 1, .a = COL("sentence"), .b = NONE, .label = COL("label")},
     {.header = 1, .a = COL("sentence"), .b = NONE, .label = NONE}},
    {"mrpc", 2, {"0", "1"}, {2, {AF_METRIC_F1, AF_METRIC_ACCURACY}, AF_METRIC_F1}, 0,
     PAIR_SPEC("#1 String", "#2 String", COL("Quality")), PAIR_TEST("#1 String", "#2 String")},
    {"stsb", 1, {NULL}, {2, {AF_METRIC_PEARSON, AF_METRIC_SPEARMAN}, AF_METRIC_PEARSON}, 0,
     PAIR_SPEC("sentence1", "sentence2", COL("score")), PAIR_TEST("sentence1", "sentence2")},
    {"qqp", 2, {"0", "1"}, {2, {AF_METRIC_F1, AF_METRIC_ACCURACY}, AF_METRIC_F1}, 0,
     PAIR_SPEC("question1", "question2", COL("is_duplicate")), PAIR_TEST("question1", "question2")},
    {"mnli", 3, {"contradiction", "entailment", "neutral"}, ACC_ONLY, 1,
     PAIR_SPEC("sentence1", "sentence2", COL("gold_label")), PAIR_TEST("sentence1", "sentence2")},
    {"qnli", 2, {"entailment", "not_entailment"}, ACC_ONLY, 0,
     PAIR_SPEC("question", "sentence", COL("label")), PAIR_TEST("question", "sentence")},
    {"rte", 2, {"entailment", "not_entailment"}, ACC_ONLY, 0,
     {.header = 1, .a = COL("sentence1"), .b = COL("sentence2"), .label = IDX(AF_COL_LAST), .extra_empty_ok = 1},
     PAIR_TEST("sentence1", "sentence2")},
    {"wnli", 2, {"0", "1"}, ACC_ONLY, 0,
     PAIR_SPEC("sentence1", "sentence2", COL("label")), PAIR_TEST("sentence1", "sentence2")},
};

static af_status glue_read(af_task *t, af_split *s) {
  const glue_spec *g = t->impl;
  static const char *plain[] = {"train", "dev", "test"};
  static const char *mnli[] = {"train", "dev_matched", "dev_mismatched", "test_matched", "test_mismatched"};
  const char **ok = g->mnli ? mnli : plain;
  int nok = g->mnli ? 5 : 3, found = 0;
  for (int i = 0; i < nok; i++) found |= !strcmp(ok[i], s->name);
  if (!found)
    return AF_FAIL(AF_ERR_ARG, "task %s: expected a split in {%s}, found '%s'", g->name,
                   g->mnli ? "train, dev_matched, dev_mismatched, test_matched, test_mismatched" : "train, dev, test",
                   s->name);
  char path[4200];
  snprintf(path, sizeof path, "%s/%s.tsv", t->data_dir, s->name);
  int test = !strncmp(s->name, "test", 4);
  return af_read_table(t, s, path, test ? &g->test : &g->train);
}

af_status af_task_init_glue(af_task *t, const char *name) {
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
    const glue_spec *g = &specs[i];
    if (strcmp(g->name, name)) continue;
    snprintf(t->name, sizeof t->name, "%s", g->name);
    t->impl = (void *)g;
    t->read = glue_read;
    t->metrics = g->metrics;
    t->pair = g->train.b.name != NULL;
    if (g->nlabels == 1) t->num_labels = 1;
    else AF_TRY(af_task_set_labels(t, g->nlabels, g->labels, NULL));
    if (g->mnli) {
      t->eval_splits[0] = "dev_matched";
      t->eval_splits[1] = "dev_mismatched";
      t->n_eval = 2;
    }
    snprintf(t->signature, sizeof t->signature, "glue1");
    return AF_OK;
  }
  return AF_FAIL(AF_ERR_ARG, "task '%s': not a GLUE task", name);
}
