/* The generic task: any TSV (GLUE-style, unquoted) or CSV (RFC-4180) file set DIR/train.EXT,
 * DIR/dev.EXT (DIR/test.EXT unlabelled) given its text column(s), label column and label list
 * (or regression). Columns are header names or 1-based numbers; "last" is the last field.
 * Metrics: accuracy (primary) and macro-F1, or Pearson (primary) and Spearman. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/data/task.h"

/* Paths are composed into PATH_MAX-sized buffers; an over-long one is cut and then fails to
 * open with its name in the message, so GCC's truncation warnings are noise here. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

typedef struct {
  af_table_spec spec;
  char ext[4];
  char cols[3][256];
} generic_state;

static af_status parse_col(const char *tok, int header, af_col *c, char *store, size_t cap, const char *what) {
  size_t n = strlen(tok);
  if (!n) return AF_FAIL(AF_ERR_ARG, "%s: expected a column name or 1-based number, found an empty string", what);
  if (!strcmp(tok, "last")) {
    c->name = NULL;
    c->index = AF_COL_LAST;
    return AF_OK;
  }
  int digits = 1;
  for (size_t i = 0; i < n; i++) digits &= isdigit((unsigned char)tok[i]) != 0;
  if (digits) {
    long v = strtol(tok, NULL, 10);
    if (v < 1 || v > 100000) return AF_FAIL(AF_ERR_ARG, "%s: expected a 1-based column number, found '%s'", what, tok);
    c->name = NULL;
    c->index = (int)v - 1;
    return AF_OK;
  }
  if (!header)
    return AF_FAIL(AF_ERR_ARG, "%s: expected a column number (the files have no header), found '%s'", what, tok);
  if (n >= cap) return AF_FAIL(AF_ERR_ARG, "%s: column name too long: '%s'", what, tok);
  memcpy(store, tok, n + 1);
  c->name = store;
  c->index = AF_COL_NONE;
  return AF_OK;
}

static af_status generic_read(af_task *t, af_split *s) {
  generic_state *g = t->impl;
  if (strcmp(s->name, "train") && strcmp(s->name, "dev") && strcmp(s->name, "test"))
    return AF_FAIL(AF_ERR_ARG, "task generic: expected a split in {train, dev, test}, found '%s'", s->name);
  char path[4200];
  const char *ext = g->ext;
  if (!ext[0]) { /* pick by what exists */
    snprintf(path, sizeof path, "%s/%s.csv", t->data_dir, s->name);
    ext = access(path, F_OK) == 0 ? "csv" : "tsv";
  }
  snprintf(path, sizeof path, "%s/%s.%s", t->data_dir, s->name, ext);
  af_table_spec sp = g->spec;
  sp.csv = !strcmp(ext, "csv");
  if (!strcmp(s->name, "test")) {
    sp.label.name = NULL;
    sp.label.index = AF_COL_NONE;
  }
  return af_read_table(t, s, path, &sp);
}

af_status af_task_init_generic(af_task *t) {
  const af_task_opts *o = &t->opts;
  snprintf(t->name, sizeof t->name, "generic");
  if (!o->text_cols) return AF_FAIL(AF_ERR_ARG, "task generic: expected text columns (--text-cols), found none");
  if (!o->label_col) return AF_FAIL(AF_ERR_ARG, "task generic: expected a label column (--label-col), found none");
  if (!o->regression && !o->labels)
    return AF_FAIL(AF_ERR_ARG, "task generic: expected a label list (--labels a,b,...) or --regression, found neither");
  if (o->regression && o->labels)
    return AF_FAIL(AF_ERR_ARG, "task generic: expected a label list or --regression, found both");
  generic_state *g;
  AF_TRY(af_calloc((void **)&g, 1, sizeof *g, "generic task"));
  t->impl = g;
  t->impl_free = free;
  if (o->format) {
    if (strcmp(o->format, "tsv") && strcmp(o->format, "csv")) {
      return AF_FAIL(AF_ERR_ARG, "--format: expected tsv or csv, found '%s'", o->format);
    }
    snprintf(g->ext, sizeof g->ext, "%s", o->format);
  }
  g->spec.header = o->header;
  g->spec.b.index = AF_COL_NONE;
  char buf[512];
  snprintf(buf, sizeof buf, "%s", o->text_cols);
  char *comma = strchr(buf, ',');
  if (comma) *comma = 0;
  af_status st = parse_col(buf, o->header, &g->spec.a, g->cols[0], sizeof g->cols[0], "--text-cols");
  if (st == AF_OK && comma) {
    if (strchr(comma + 1, ','))
      st = AF_FAIL(AF_ERR_ARG, "--text-cols: expected one or two columns, found '%s'", o->text_cols);
    else st = parse_col(comma + 1, o->header, &g->spec.b, g->cols[1], sizeof g->cols[1], "--text-cols");
  }
  if (st == AF_OK) st = parse_col(o->label_col, o->header, &g->spec.label, g->cols[2], sizeof g->cols[2], "--label-col");
  if (st == AF_OK && !o->header) {
    int mx = g->spec.a.index;
    if (g->spec.b.index > mx) mx = g->spec.b.index;
    if (g->spec.label.index > mx) mx = g->spec.label.index;
    g->spec.ncols = mx + 1;
    if (g->spec.label.index == AF_COL_LAST || g->spec.a.index == AF_COL_LAST || g->spec.b.index == AF_COL_LAST)
      st = AF_FAIL(AF_ERR_ARG, "--label-col last needs files with a header (the field count comes from it)");
  }
  if (st == AF_OK) {
    if (o->regression) {
      t->num_labels = 1;
      t->metrics = (af_metric_set){2, {AF_METRIC_PEARSON, AF_METRIC_SPEARMAN}, AF_METRIC_PEARSON};
    } else {
      char lb[1024];
      const char *raw[256];
      int n = 0;
      snprintf(lb, sizeof lb, "%s", o->labels);
      for (char *p = lb, *q; p && n < 256; p = q) {
        q = strchr(p, ',');
        if (q) *q++ = 0;
        raw[n++] = p;
      }
      if (n < 2) st = AF_FAIL(AF_ERR_ARG, "--labels: expected at least two labels, found '%s'", o->labels);
      for (int i = 0; st == AF_OK && i < n; i++)
        if (!raw[i][0]) st = AF_FAIL(AF_ERR_ARG, "--labels: expected non-empty labels, found '%s'", o->labels);
      if (st == AF_OK) st = af_task_set_labels(t, n, raw, NULL);
      t->metrics = (af_metric_set){2, {AF_METRIC_ACCURACY, AF_METRIC_MACRO_F1}, AF_METRIC_ACCURACY};
    }
  }
  if (st != AF_OK) return st;  /* af_task_open frees the task and g with it */
  t->pair = g->spec.b.name != NULL || g->spec.b.index != AF_COL_NONE;
  t->read = generic_read;
  snprintf(t->signature, sizeof t->signature, "generic1|%s|%d|%s|%s|%s|%d", o->format ? o->format : "",
           o->header, o->text_cols, o->label_col, o->labels ? o->labels : "", o->regression);
  return AF_OK;
}
