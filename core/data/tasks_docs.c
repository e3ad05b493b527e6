/* The AutoFreeze paper's document-classification sets in the forms they are distributed:
 *   ag_news        train.csv/test.csv, no header: class (1-4), title, description; the text is
 *                  title + " " + description (as the Hugging Face ag_news "text" field is).
 *   yelp_full      train.csv/test.csv, no header: class (1-5), text.
 *   yelp_polarity  train.csv/test.csv, no header: class (1 negative, 2 positive), text.
 *   imdb           the aclImdb tree (DIR or DIR/aclImdb: train/pos, train/neg, test/pos,
 *                  test/neg; unsup ignored) or train.csv/test.csv with a header naming a text
 *                  column (text or review) and a label column (label or sentiment: neg/pos,
 *                  negative/positive or 0/1). "<br />" line breaks become spaces.
 * These sets have no dev split: the evaluation split is "test". Metrics: accuracy (primary)
 * and macro-F1. Example order in the IMDb tree: neg then pos, files by numeric id. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/base/fsutil.h"
#include "core/data/task.h"
#include "core/data/tsv.h"

/* Paths are composed into PATH_MAX-sized buffers; an over-long one is cut and then fails to
 * open with its name in the message, so GCC's truncation warnings are noise here. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

enum { DOC_AG, DOC_YELP_FULL, DOC_YELP_POL, DOC_IMDB };

static const af_table_spec ag_spec = {.csv = 1, .ncols = 3, .a = {NULL, 1}, .b = {NULL, 2}, .label = {NULL, 0},
                                      .concat_b = 1};
static const af_table_spec yelp_spec = {.csv = 1, .ncols = 2, .a = {NULL, 1}, .b = {NULL, AF_COL_NONE},
                                        .label = {NULL, 0}};

static af_status check_split(const af_task *t, const af_split *s) {
  if (strcmp(s->name, "train") && strcmp(s->name, "test") && strcmp(s->name, "dev"))
    return AF_FAIL(AF_ERR_ARG, "task %s: expected a split in {train, test}, found '%s'", t->name, s->name);
  return AF_OK;
}

/* Replace "<br />" and "<br/>" by a space, in place; returns the new length. */
static size_t strip_br(char *p, size_t n) {
  size_t j = 0;
  for (size_t i = 0; i < n;) {
    if (p[i] == '<' && i + 6 <= n && !memcmp(p + i, "<br />", 6)) { p[j++] = ' '; i += 6; continue; }
    if (p[i] == '<' && i + 5 <= n && !memcmp(p + i, "<br/>", 5)) { p[j++] = ' '; i += 5; continue; }
    p[j++] = p[i++];
  }
  return j;
}

typedef struct {
  char *name;
  long id;
} doc_file;

static int doc_cmp(const void *pa, const void *pb) {
  const doc_file *a = pa, *b = pb;
  if (a->id != b->id) return a->id < b->id ? -1 : 1;
  return strcmp(a->name, b->name);
}

static af_status read_imdb_dir(af_task *t, af_split *s, const char *dir, int label) {
  DIR *d = opendir(dir);
  if (!d) return AF_FAIL(AF_ERR_IO, "%s: expected a folder of review files, found %s", dir, strerror(errno));
  doc_file *files = NULL;
  size_t n = 0, cap = 0;
  af_status st = AF_OK;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l < 5 || strcmp(e->d_name + l - 4, ".txt")) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 1024;
      doc_file *nf = realloc(files, cap * sizeof *nf);
      if (!nf) { st = AF_FAIL(AF_ERR_NOMEM, "out of memory listing %s", dir); break; }
      files = nf;
    }
    files[n].name = strdup(e->d_name);
    files[n].id = strtol(e->d_name, NULL, 10);
    if (!files[n].name) { st = AF_FAIL(AF_ERR_NOMEM, "out of memory listing %s", dir); break; }
    n++;
  }
  closedir(d);
  if (st == AF_OK) qsort(files, n, sizeof *files, doc_cmp);
  char *buf = NULL;
  size_t bcap = 0;
  for (size_t i = 0; i < n && st == AF_OK && !af_task_split_full(t, s); i++) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
    FILE *f = fopen(path, "rb");
    if (!f) { st = AF_FAIL(AF_ERR_IO, "%s: expected a readable file, found %s", path, strerror(errno)); break; }
    size_t len = 0, got;
    for (;;) {
      if (len + 65536 > bcap) {
        bcap = (len + 65536) * 2;
        char *nb = realloc(buf, bcap);
        if (!nb) { st = AF_FAIL(AF_ERR_NOMEM, "out of memory reading %s", path); break; }
        buf = nb;
      }
      got = fread(buf + len, 1, bcap - len, f);
      len += got;
      if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (st != AF_OK) break;
    if (err) { st = AF_FAIL(AF_ERR_IO, "%s: read error", path); break; }
    char *p = buf;
    if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) { p += 3; len -= 3; }
    len = strip_br(p, len);
    if (!af_task_check_text(t, s, path, 1, "the review", p, len)) continue;
    st = af_split_add(s, p, len, NULL, 0, (float)label, 0);
  }
  free(buf);
  for (size_t i = 0; i < n; i++) free(files[i].name);
  free(files);
  return st;
}

static const char *imdb_tree_root(const af_task *t, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/train/pos", t->data_dir);
  if (af_is_dir(buf) || (snprintf(buf, cap, "%s/test/pos", t->data_dir), af_is_dir(buf))) {
    snprintf(buf, cap, "%s", t->data_dir);
    return buf;
  }
  snprintf(buf, cap, "%s/aclImdb/train/pos", t->data_dir);
  if (af_is_dir(buf) || (snprintf(buf, cap, "%s/aclImdb/test/pos", t->data_dir), af_is_dir(buf))) {
    snprintf(buf, cap, "%s/aclImdb", t->data_dir);
    return buf;
  }
  return NULL;
}

static int imdb_label(const char *p, size_t n) {
  while (n && (*p == ' ')) { p++; n--; }
  while (n && (p[n - 1] == ' ')) n--;
  static const char *neg[] = {"neg", "negative", "0"}, *pos[] = {"pos", "positive", "1"};
  for (int i = 0; i < 3; i++) {
    if (strlen(neg[i]) == n && !strncasecmp(p, neg[i], n)) return 0;
    if (strlen(pos[i]) == n && !strncasecmp(p, pos[i], n)) return 1;
  }
  return -1;
}

static int header_col(const af_tsv *r, const char *a, const char *b) {
  for (size_t i = 0; i < af_tsv_nfields(r); i++) {
    size_t n;
    const char *f = af_tsv_field(r, i, &n);
    if ((strlen(a) == n && !strncasecmp(f, a, n)) || (strlen(b) == n && !strncasecmp(f, b, n))) return (int)i;
  }
  return -1;
}

static af_status read_imdb_csv(af_task *t, af_split *s, const char *path) {
  af_tsv *r;
  if (af_tsv_open(path, 1, &r) != AF_OK) {
    af_clear_error();
    return AF_FAIL(AF_ERR_IO, "%s: expected the %s split file (or an aclImdb folder tree in %s), found no such file",
                   path, s->name, t->data_dir);
  }
  snprintf(s->path, sizeof s->path, "%s", path);
  s->has_labels = 1;
  int got, ic, il;
  af_status st = af_tsv_next(r, &got);
  if (st == AF_OK && !got) st = AF_FAIL(AF_ERR_FORMAT, "%s: expected a header line, found an empty file", path);
  if (st != AF_OK) goto done;
  size_t ncols = af_tsv_nfields(r);
  ic = header_col(r, "text", "review");
  il = header_col(r, "label", "sentiment");
  if (ic < 0 || il < 0) {
    st = AF_FAIL(AF_ERR_FORMAT, "%s:%d: expected a header with a text (or review) and a label (or sentiment) column, found %zu other column(s)",
                 path, af_tsv_line(r), ncols);
    goto done;
  }
  char *tmp = NULL;
  size_t tcap = 0;
  while (!af_task_split_full(t, s)) {
    if ((st = af_tsv_next(r, &got)) != AF_OK || !got) break;
    int line = af_tsv_line(r);
    if (af_tsv_nfields(r) != ncols) {
      af_task_bad_row(t, s, path, line, "expected %zu fields, found %zu", ncols, af_tsv_nfields(r));
      continue;
    }
    size_t n, ln;
    const char *txt = af_tsv_field(r, (size_t)ic, &n), *lab = af_tsv_field(r, (size_t)il, &ln);
    if (n > tcap) {
      tcap = 2 * n;
      char *nt = realloc(tmp, tcap);
      if (!nt) { st = AF_FAIL(AF_ERR_NOMEM, "out of memory reading %s", path); break; }
      tmp = nt;
    }
    memcpy(tmp, txt, n);
    n = strip_br(tmp, n);
    if (!af_task_check_text(t, s, path, line, "column 'text'", tmp, n)) continue;
    int k = imdb_label(lab, ln);
    if (k < 0) {
      af_task_bad_row(t, s, path, line, "expected a label in {neg, pos, negative, positive, 0, 1}, found '%.*s'",
                      (int)(ln > 40 ? 40 : ln), lab);
      continue;
    }
    if ((st = af_split_add(s, tmp, n, NULL, 0, (float)k, line)) != AF_OK) break;
  }
  free(tmp);
done:
  af_tsv_close(r);
  return st;
}

static af_status docs_read(af_task *t, af_split *s) {
  AF_TRY(check_split(t, s));
  int kind = (int)(intptr_t)t->impl;
  char path[4200];
  snprintf(path, sizeof path, "%s/%s.csv", t->data_dir, s->name);
  if (kind == DOC_AG) return af_read_table(t, s, path, &ag_spec);
  if (kind == DOC_YELP_FULL || kind == DOC_YELP_POL) return af_read_table(t, s, path, &yelp_spec);
  char root[3968];
  if (imdb_tree_root(t, root, sizeof root)) {
    char d[4300];
    snprintf(s->path, sizeof s->path, "%s/%s", root, s->name);
    if (!af_is_dir(s->path))
      return AF_FAIL(AF_ERR_IO, "%s: expected the %s split folder (with pos/ and neg/), found no such folder", s->path,
                     s->name);
    s->has_labels = 1;
    snprintf(d, sizeof d, "%s/%s/neg", root, s->name);
    AF_TRY(read_imdb_dir(t, s, d, 0));
    snprintf(d, sizeof d, "%s/%s/pos", root, s->name);
    return read_imdb_dir(t, s, d, 1);
  }
  return read_imdb_csv(t, s, path);
}

af_status af_task_init_docs(af_task *t, const char *name) {
  static const char *ag[] = {"1", "2", "3", "4"}, *ag_names[] = {"World", "Sports", "Business", "Sci/Tech"};
  static const char *yf[] = {"1", "2", "3", "4", "5"};
  static const char *yp[] = {"1", "2"}, *yp_names[] = {"negative", "positive"};
  static const char *imdb[] = {"neg", "pos"};
  int kind;
  if (!strcmp(name, "ag_news")) {
    kind = DOC_AG;
    AF_TRY(af_task_set_labels(t, 4, ag, ag_names));
  } else if (!strcmp(name, "yelp_full")) {
    kind = DOC_YELP_FULL;
    AF_TRY(af_task_set_labels(t, 5, yf, NULL));
  } else if (!strcmp(name, "yelp_polarity")) {
    kind = DOC_YELP_POL;
    AF_TRY(af_task_set_labels(t, 2, yp, yp_names));
  } else if (!strcmp(name, "imdb")) {
    kind = DOC_IMDB;
    AF_TRY(af_task_set_labels(t, 2, imdb, NULL));
  } else {
    return AF_FAIL(AF_ERR_ARG, "task '%s': not a document-classification task", name);
  }
  snprintf(t->name, sizeof t->name, "%s", name);
  t->impl = (void *)(intptr_t)kind;
  t->read = docs_read;
  t->pair = 0;
  t->metrics = (af_metric_set){2, {AF_METRIC_ACCURACY, AF_METRIC_MACRO_F1}, AF_METRIC_ACCURACY};
  t->eval_splits[0] = "test";
  t->n_eval = 1;
  snprintf(t->signature, sizeof t->signature, "docs1");
  return AF_OK;
}
