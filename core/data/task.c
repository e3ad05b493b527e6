/* The task object common to every dataset family: opening by name, lazy split reading with
 * bad-row accounting, the generic table reader the families share, tokenization with an
 * on-disk token cache, and scoring. The cache key is a hash of exactly what is tokenized
 * (every text of the split, in order), the vocabulary, the tokenizer's behaviour on a probe
 * string, max_len and the task's options, so any change of file, options or vocab misses. */
#include "core/data/task.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/base/fsutil.h"
#include "kernels/ops.h" /* af_rng_mix */
#include "core/data/tsv.h"

/* Paths are composed into PATH_MAX-sized buffers; an over-long one is cut and then fails to
 * open with its name in the message, so GCC's truncation warnings are noise here. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define CACHE_MAGIC "AFTOKC1"
#define CACHE_VERSION 1u

void af_task_opts_default(af_task_opts *o) {
  memset(o, 0, sizeof *o);
  o->max_report = 5;
  o->header = 1;
}

/* ---- the registry ---- */

static const af_task_info registry[] = {
    {"cola", "glue"},       {"sst2", "glue"},      {"mrpc", "glue"},          {"stsb", "glue"},
    {"qqp", "glue"},        {"mnli", "glue"},      {"qnli", "glue"},          {"rte", "glue"},
    {"wnli", "glue"},       {"ag_news", "docs"},   {"yelp_full", "docs"},     {"yelp_polarity", "docs"},
    {"imdb", "docs"},       {"generic", "generic"}, {"default", "default"},
};
#define N_TASKS ((int)(sizeof registry / sizeof registry[0]))

int af_task_count(void) { return N_TASKS; }

const af_task_info *af_task_info_at(int i) { return i >= 0 && i < N_TASKS ? &registry[i] : NULL; }

/* The matching key of a name: lower case without '-', '_' and ' '. */
static void canon(const char *in, char *out, size_t cap) {
  size_t j = 0;
  for (size_t i = 0; in[i] && j + 1 < cap; i++) {
    char c = (char)tolower((unsigned char)in[i]);
    if (c == '-' || c == '_' || c == ' ') continue;
    out[j++] = c;
  }
  out[j] = 0;
}

const af_task_info *af_task_lookup(const char *name) {
  if (!name) return NULL;
  char key[64], k[64];
  canon(name, key, sizeof key);
  for (int i = 0; i < N_TASKS; i++) {
    canon(registry[i].name, k, sizeof k);
    if (!strcmp(k, key)) return &registry[i];
  }
  return NULL;
}

const char *af_task_canonical(const char *name) {
  const af_task_info *ti = af_task_lookup(name);
  return ti ? ti->name : NULL;
}

static char names_buf[256];
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

static void names_init(void) {
  size_t j = 0;
  for (int i = 0; i < N_TASKS && j < sizeof names_buf; i++)
    j += (size_t)snprintf(names_buf + j, sizeof names_buf - j, "%s%s", i ? ", " : "", registry[i].name);
}

const char *af_task_names(void) {
  pthread_once(&names_once, names_init);
  return names_buf;
}

/* ---- opening ---- */

static const char *copy_opt(af_task *t, size_t *used, const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  if (*used + n > sizeof t->optbuf) return NULL;
  char *d = t->optbuf + *used;
  memcpy(d, s, n);
  *used += n;
  return d;
}

af_status af_task_open(const char *name, const char *data_dir, const af_task_opts *opts, af_task **out) {
  *out = NULL;
  if (!name || !data_dir) return AF_FAIL(AF_ERR_ARG, "task: expected a task name and a data folder");
  af_task *t;
  AF_TRY(af_calloc((void **)&t, 1, sizeof *t, "task"));
  if (opts) t->opts = *opts;
  else af_task_opts_default(&t->opts);
  if (t->opts.max_report <= 0) t->opts.max_report = 5;
  size_t used = 0;
  const char **strs[] = {&t->opts.cache_dir, &t->opts.format, &t->opts.text_cols, &t->opts.label_col,
                         &t->opts.labels};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
    const char *orig = *strs[i];
    *strs[i] = copy_opt(t, &used, orig);
    if (orig && !*strs[i]) {
      free(t);
      return AF_FAIL(AF_ERR_ARG, "task options: expected option strings under %zu bytes in all, found more",
                     sizeof t->optbuf);
    }
  }
  snprintf(t->data_dir, sizeof t->data_dir, "%s", data_dir);
  size_t dl = strlen(t->data_dir);
  while (dl > 1 && t->data_dir[dl - 1] == '/') t->data_dir[--dl] = 0;
  t->eval_splits[0] = "dev";
  t->n_eval = 1;
  const af_task_info *ti = af_task_lookup(name);
  af_status s;
  if (!ti) s = AF_FAIL(AF_ERR_ARG, "unknown task '%s': expected one of %s", name, af_task_names());
  else if (!strcmp(ti->family, "generic")) s = af_task_init_generic(t);
  else if (!strcmp(ti->family, "default")) s = af_task_init_default(t);
  else if (!strcmp(ti->family, "docs")) s = af_task_init_docs(t, ti->name);
  else s = af_task_init_glue(t, ti->name);
  if (s != AF_OK) {
    af_task_free(t);
    return s;
  }
  if (t->metrics.n == 0) {
    af_task_free(t);
    return AF_FAIL(AF_ERR_ARG, "task '%s': no metrics set (reader bug)", name);
  }
  *out = t;
  return AF_OK;
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return (x > y) - (x < y);
}

af_status af_split_subset(af_split *s, size_t max) {
  if (max == 0 || max >= s->n) return AF_OK;
  if (!s->max_len) return AF_FAIL(AF_ERR_ARG, "%s: a subset needs the split encoded first", s->path);
  size_t *pick = NULL;
  AF_TRY(af_malloc((void **)&pick, s->n * sizeof *pick, "split subset"));
  for (size_t i = 0; i < s->n; i++) pick[i] = i;
  /* partial Fisher-Yates with a fixed seed: the first max entries are the subset */
  for (size_t i = 0; i < max; i++) {
    size_t j = i + (size_t)(af_rng_mix(0x5eed5eed5eedull, i) % (uint64_t)(s->n - i));
    size_t t = pick[i];
    pick[i] = pick[j];
    pick[j] = t;
  }
  qsort(pick, max, sizeof *pick, cmp_size);
  s->n_truncated = 0;
  s->longest = 0;
  for (size_t k = 0; k < max; k++) {  /* pick is increasing, so k <= pick[k]: in place is safe */
    size_t i = pick[k];
    s->labels[k] = s->labels[i];
    if (s->line) s->line[k] = s->line[i];
    s->a_off[k] = s->a_off[i];
    s->b_off[k] = s->b_off[i];
    s->tok_off[k] = s->tok_off[i];
    s->len[k] = s->len[i];
    s->truncated[k] = s->truncated[i];
    s->n_truncated += s->truncated[k];
    if (s->len[k] > s->longest) s->longest = s->len[k];
  }
  s->n = max;
  free(pick);
  return AF_OK;
}

static void split_free(af_split *s) {
  if (!s) return;
  free(s->labels);
  free(s->line);
  free(s->text);
  free(s->a_off);
  free(s->b_off);
  free(s->ids);
  free(s->type_ids);
  free(s->tok_off);
  free(s->len);
  free(s->truncated);
  free(s);
}

void af_task_free(af_task *t) {
  if (!t) return;
  for (int i = 0; i < t->nsplits; i++) split_free(t->splits[i]);
  for (int k = 0; k < t->num_labels && t->label_raw; k++) free(t->label_raw[k]);
  for (int k = 0; k < t->num_labels && t->label_names; k++) free(t->label_names[k]);
  free(t->label_raw);
  free(t->label_names);
  if (t->impl_free) t->impl_free(t->impl);
  free(t);
}

const char *af_task_name(const af_task *t) { return t->name; }
int af_task_num_labels(const af_task *t) { return t->num_labels; }
int af_task_is_pair(const af_task *t) { return t->pair; }
const af_metric_set *af_task_metrics(const af_task *t) { return &t->metrics; }
int af_task_num_eval_splits(const af_task *t) { return t->n_eval; }
const char *af_task_eval_split(const af_task *t, int i) { return i >= 0 && i < t->n_eval ? t->eval_splits[i] : NULL; }
const char *af_task_train_split(const af_task *t) { return "train"; }

const char *af_task_label_name(const af_task *t, int k) {
  if (t->num_labels < 2 || k < 0 || k >= t->num_labels) return NULL;
  return t->label_names[k];
}

af_status af_task_set_labels(af_task *t, int n, const char *const *raw, const char *const *names) {
  AF_TRY(af_calloc((void **)&t->label_raw, (size_t)n, sizeof(char *), "labels"));
  AF_TRY(af_calloc((void **)&t->label_names, (size_t)n, sizeof(char *), "labels"));
  t->num_labels = n;
  for (int k = 0; k < n; k++) {
    t->label_raw[k] = strdup(raw[k]);
    t->label_names[k] = strdup(names ? names[k] : raw[k]);
    if (!t->label_raw[k] || !t->label_names[k]) return AF_FAIL(AF_ERR_NOMEM, "out of memory for labels");
    for (int j = 0; j < k; j++)
      if (!strcmp(t->label_raw[j], raw[k]))
        return AF_FAIL(AF_ERR_ARG, "labels: expected distinct labels, found '%s' twice", raw[k]);
  }
  return AF_OK;
}

int af_task_label_index(const af_task *t, const char *raw, size_t len) {
  while (len && isspace((unsigned char)*raw)) { raw++; len--; }
  while (len && isspace((unsigned char)raw[len - 1])) len--;
  for (int k = 0; k < t->num_labels; k++)
    if (strlen(t->label_raw[k]) == len && !memcmp(t->label_raw[k], raw, len)) return k;
  return -1;
}

/* ---- building splits ---- */

static af_status grow_rows(af_split *s) {
  if (s->n < s->cap) return AF_OK;
  size_t nc = s->cap ? 2 * s->cap : 1024;
  void *p;
#define GROW(f)                                                                   \
  p = realloc(s->f, nc * sizeof *s->f);                                           \
  if (!p) return AF_FAIL(AF_ERR_NOMEM, "out of memory for %zu examples", nc);     \
  s->f = p;
  GROW(labels)
  GROW(line)
  GROW(a_off)
  GROW(b_off)
#undef GROW
  s->cap = nc;
  return AF_OK;
}

static af_status put_text(af_split *s, const char *p, size_t n, size_t *off) {
  if (s->text_len + n + 1 > s->text_cap) {
    size_t nc = s->text_cap ? s->text_cap : 1 << 16;
    while (nc < s->text_len + n + 1) nc *= 2;
    char *b = realloc(s->text, nc);
    if (!b) return AF_FAIL(AF_ERR_NOMEM, "out of memory for %zu bytes of text", nc);
    s->text = b;
    s->text_cap = nc;
  }
  *off = s->text_len;
  memcpy(s->text + s->text_len, p, n);
  s->text[s->text_len + n] = 0;
  s->text_len += n + 1;
  return AF_OK;
}

af_status af_split_add(af_split *s, const char *a, size_t alen, const char *b, size_t blen, float label, int line) {
  AF_TRY(grow_rows(s));
  AF_TRY(put_text(s, a, alen, &s->a_off[s->n]));
  if (b) AF_TRY(put_text(s, b, blen, &s->b_off[s->n]));
  else s->b_off[s->n] = SIZE_MAX;
  s->labels[s->n] = label;
  s->line[s->n] = line;
  s->n++;
  return AF_OK;
}

const char *af_split_text_a(const af_split *s, size_t i) { return i < s->n ? s->text + s->a_off[i] : NULL; }
const char *af_split_text_b(const af_split *s, size_t i) {
  return i < s->n && s->b_off[i] != SIZE_MAX ? s->text + s->b_off[i] : NULL;
}

int af_task_split_full(const af_task *t, const af_split *s) { return t->opts.max_rows && s->n >= t->opts.max_rows; }

af_status af_task_bad_row(af_task *t, af_split *s, const char *file, int line, const char *fmt, ...) {
  t->bad_count++;
  s->bad_rows++;
  if (t->bad_count > t->opts.max_report) return AF_OK;
  size_t used = strlen(t->bad_msg);
  if (used + 8 >= sizeof t->bad_msg) return AF_OK;
  int w = snprintf(t->bad_msg + used, sizeof t->bad_msg - used, "%s%s:%d: ", used ? "; " : "", file, line);
  if (w < 0 || (size_t)w >= sizeof t->bad_msg - used) return AF_OK;
  used += (size_t)w;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->bad_msg + used, sizeof t->bad_msg - used, fmt, ap);
  va_end(ap);
  return AF_OK;
}

/* A short printable excerpt of a field for messages. */
static const char *excerpt(const char *p, size_t n, char *buf, size_t cap) {
  size_t j = 0;
  for (size_t i = 0; i < n && j + 5 < cap; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c < 0x20 || c == 0x7f) j += (size_t)snprintf(buf + j, cap - j, "\\x%02x", c);
    else buf[j++] = (char)c;
    if (i + 1 < n && j + 5 >= cap) { memcpy(buf + j, "...", 3); j += 3; break; }
  }
  buf[j] = 0;
  return buf;
}

int af_task_check_text(af_task *t, af_split *s, const char *file, int line, const char *what, const char *p,
                       size_t n) {
  long bad = af_utf8_check(p, n);
  if (bad >= 0) {
    af_task_bad_row(t, s, file, line, "expected UTF-8 text in %s, found byte 0x%02x at byte %ld", what,
                    (unsigned char)p[bad], bad);
    return 0;
  }
  size_t i = 0;
  while (i < n && isspace((unsigned char)p[i])) i++;
  if (i == n) {
    af_task_bad_row(t, s, file, line, "expected non-empty text in %s, found %s", what, n ? "only spaces" : "an empty field");
    return 0;
  }
  return 1;
}

int af_task_parse_label(af_task *t, af_split *s, const char *file, int line, const char *p, size_t n, float *label) {
  char ex[64];
  if (t->num_labels == 1) {
    char tmp[64];
    if (n == 0 || n >= sizeof tmp) {
      af_task_bad_row(t, s, file, line, "expected a number as the target, found '%s'", excerpt(p, n, ex, sizeof ex));
      return 0;
    }
    memcpy(tmp, p, n);
    tmp[n] = 0;
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    while (*end && isspace((unsigned char)*end)) end++;
    if (end == tmp || *end || !isfinite(v) || errno) {
      af_task_bad_row(t, s, file, line, "expected a number as the target, found '%s'", excerpt(p, n, ex, sizeof ex));
      return 0;
    }
    *label = (float)v;
    return 1;
  }
  int k = af_task_label_index(t, p, n);
  if (k < 0) {
    char set[256];
    size_t u = 0;
    for (int j = 0; j < t->num_labels && u + 4 < sizeof set; j++) {
      int w = snprintf(set + u, sizeof set - u, "%s%s", j ? ", " : "", t->label_raw[j]);
      if (w < 0) break;
      u += (size_t)w;
      if (u >= sizeof set) { u = sizeof set - 1; break; }
    }
    af_task_bad_row(t, s, file, line, "expected a label in {%s}, found '%s'", set, excerpt(p, n, ex, sizeof ex));
    return 0;
  }
  *label = (float)k;
  return 1;
}

/* ---- the shared table reader ---- */

static int find_col(const af_tsv *r, const char *name) {
  for (size_t i = 0; i < af_tsv_nfields(r); i++) {
    size_t n;
    const char *f = af_tsv_field(r, i, &n);
    while (n && (f[n - 1] == ' ')) n--;
    if (strlen(name) == n && !memcmp(f, name, n)) return (int)i;
  }
  return -1;
}

static af_status resolve(const af_tsv *r, const af_table_spec *sp, const af_col *c, int *idx, const char *role) {
  if (c->name && sp->header) {
    *idx = find_col(r, c->name);
    if (*idx < 0) {
      char hdr[512];
      size_t u = 0;
      hdr[0] = 0;
      for (size_t i = 0; i < af_tsv_nfields(r) && u + 8 < sizeof hdr; i++) {
        size_t n;
        const char *f = af_tsv_field(r, i, &n);
        char ex[64];
        int w = snprintf(hdr + u, sizeof hdr - u, "%s'%s'", i ? ", " : "", excerpt(f, n, ex, sizeof ex));
        if (w < 0) break;
        u += (size_t)w;
      }
      return AF_FAIL(AF_ERR_FORMAT, "%s:%d: expected a column named '%s' (%s) in the header, found %s",
                     af_tsv_name(r), af_tsv_line(r), c->name, role, hdr);
    }
    return AF_OK;
  }
  *idx = c->index;
  return AF_OK;
}

static int has_col(const af_col *c) { return c->name != NULL || c->index != AF_COL_NONE; }

af_status af_read_table(af_task *t, af_split *s, const char *path, const af_table_spec *sp) {
  af_tsv *r;
  af_status st = af_tsv_open(path, sp->csv, &r);
  if (st != AF_OK) {
    af_clear_error();
    return AF_FAIL(AF_ERR_IO, "%s: expected the %s split file, found %s", path, s->name,
                   access(path, F_OK) ? "no such file" : "an unreadable file");
  }
  snprintf(s->path, sizeof s->path, "%s", path);
  int got, ncols = sp->ncols, ia = AF_COL_NONE, ib = AF_COL_NONE, il = AF_COL_NONE;
  char *cat = NULL;
  size_t cat_cap = 0;
  s->has_labels = has_col(&sp->label);
  s->pair = has_col(&sp->b) && !sp->concat_b;
  if (sp->header) {
    if ((st = af_tsv_next(r, &got)) != AF_OK) goto done;
    if (!got) {
      st = AF_FAIL(AF_ERR_FORMAT, "%s: expected a header line, found an empty file", path);
      goto done;
    }
    ncols = (int)af_tsv_nfields(r);
  }
  if ((st = resolve(r, sp, &sp->a, &ia, "text")) != AF_OK) goto done;
  if (has_col(&sp->b) && (st = resolve(r, sp, &sp->b, &ib, "second text")) != AF_OK) goto done;
  if (has_col(&sp->label) && (st = resolve(r, sp, &sp->label, &il, "label")) != AF_OK) goto done;
  const char *name_a = sp->a.name ? sp->a.name : "the text column";
  const char *name_b = sp->b.name ? sp->b.name : "the second text column";
  char wa[80], wb[80];
  snprintf(wa, sizeof wa, "column '%s'", name_a);
  snprintf(wb, sizeof wb, "column '%s'", name_b);
  if (!sp->a.name) snprintf(wa, sizeof wa, "field %d", ia + 1);
  if (!sp->b.name) snprintf(wb, sizeof wb, "field %d", ib + 1);
  while (!af_task_split_full(t, s)) {
    if ((st = af_tsv_next(r, &got)) != AF_OK) goto done;
    if (!got) break;
    int line = af_tsv_line(r), nf = (int)af_tsv_nfields(r);
    if (nf != ncols) {
      int ok = 0;
      if (sp->extra_empty_ok && nf > ncols) {
        ok = 1;
        for (int i = ncols - 1; i < nf - 1; i++) {
          size_t n;
          af_tsv_field(r, (size_t)i, &n);
          if (n) ok = 0;
        }
      }
      if (!ok) {
        af_task_bad_row(t, s, path, line, "expected %d fields, found %d", ncols, nf);
        continue;
      }
    }
    size_t la, lb = 0, ll;
    int xa = ia == AF_COL_LAST ? nf - 1 : ia, xb = ib == AF_COL_LAST ? nf - 1 : ib;
    int xl = il == AF_COL_LAST ? nf - 1 : il;
    const char *a = af_tsv_field(r, (size_t)xa, &la), *b = NULL;
    if (!af_task_check_text(t, s, path, line, wa, a, la)) continue;
    if (ib != AF_COL_NONE) {
      b = af_tsv_field(r, (size_t)xb, &lb);
      if (!af_task_check_text(t, s, path, line, wb, b, lb)) continue;
    }
    float label = NAN;
    if (il != AF_COL_NONE) {
      const char *l = af_tsv_field(r, (size_t)xl, &ll);
      if (!af_task_parse_label(t, s, path, line, l, ll, &label)) continue;
    }
    if (b && sp->concat_b) {
      if (la + lb + 1 > cat_cap) {
        cat_cap = 2 * (la + lb + 1);
        char *nb = realloc(cat, cat_cap);
        if (!nb) { st = AF_FAIL(AF_ERR_NOMEM, "out of memory joining texts"); goto done; }
        cat = nb;
      }
      memcpy(cat, a, la);
      cat[la] = ' ';
      memcpy(cat + la + 1, b, lb);
      st = af_split_add(s, cat, la + 1 + lb, NULL, 0, label, line);
    } else {
      st = af_split_add(s, a, la, b, lb, label, line);
    }
    if (st != AF_OK) goto done;
  }
done:
  free(cat);
  af_tsv_close(r);
  return st;
}

/* ---- split loading ---- */

af_status af_task_split(af_task *t, const char *split, af_split **out) {
  *out = NULL;
  if (!strcmp(t->name, "mnli") && !strcmp(split, "dev")) split = "dev_matched";
  if (!strcmp(t->name, "mnli") && !strcmp(split, "test")) split = "test_matched";
  for (int i = 0; i < t->nsplits; i++)
    if (!strcmp(t->splits[i]->name, split)) {
      *out = t->splits[i];
      return AF_OK;
    }
  if (t->nsplits == (int)(sizeof t->splits / sizeof t->splits[0]))
    return AF_FAIL(AF_ERR_ARG, "task %s: too many splits open", t->name);
  if (strlen(split) >= sizeof((af_split *)0)->name)
    return AF_FAIL(AF_ERR_ARG, "task %s: expected a split name, found '%s'", t->name, split);
  af_split *s;
  AF_TRY(af_calloc((void **)&s, 1, sizeof *s, "split"));
  snprintf(s->name, sizeof s->name, "%s", split);
  t->bad_count = 0;
  t->bad_msg[0] = 0;
  af_status st = t->read(t, s);
  if (st == AF_OK && t->bad_count && !t->opts.skip_bad_rows)
    st = AF_FAIL(AF_ERR_FORMAT, "%d bad row%s in %s (skip them with --skip-bad-rows)%s: %s", t->bad_count,
                 t->bad_count > 1 ? "s" : "", s->path, t->bad_count > t->opts.max_report ? ", the first" : "",
                 t->bad_msg);
  if (st == AF_OK && s->n == 0)
    st = AF_FAIL(AF_ERR_FORMAT, "%s: expected at least one example in the %s split, found none", s->path, split);
  if (st != AF_OK) {
    split_free(s);
    return st;
  }
  if (s->bad_rows) af_warn("%s: skipped %zu bad row%s (first: %s)", s->path, s->bad_rows, s->bad_rows > 1 ? "s" : "", t->bad_msg);
  t->splits[t->nsplits++] = s;
  *out = s;
  return AF_OK;
}

/* ---- tokenization and the token cache ---- */

static uint64_t tokenizer_hash(const af_tokenizer *tok) {
  uint64_t h = AF_FNV_INIT;
  int v = af_tokenizer_vocab_size(tok);
  h = af_fnv1a(h, &v, sizeof v);
  for (int i = 0; i < v; i++) {
    const char *w = af_tokenizer_token(tok, i);
    if (w) h = af_fnv1a(h, w, strlen(w) + 1);
  }
  /* Behaviour switches (lowercasing, accents, CJK) are not in the vocab: probe them. */
  static const char probe[] = "H\xc3\xa9llo W\xc3\x96RLD \xe4\xb8\xad\xe6\x96\x87 caf\xc3\xa9, 1.5!";
  int32_t ids[64];
  size_t n = 0;
  if (af_tokenize(tok, probe, sizeof probe - 1, ids, 64, &n) == AF_OK) h = af_fnv1a(h, ids, (n < 64 ? n : 64) * sizeof ids[0]);
  af_clear_error();
  return h;
}

static uint64_t split_key(const af_task *t, const af_split *s, const af_tokenizer *tok, int max_len) {
  uint64_t h = AF_FNV_INIT;
  uint32_t ver = CACHE_VERSION;
  h = af_fnv1a(h, &ver, sizeof ver);
  h = af_fnv1a(h, t->name, strlen(t->name) + 1);
  h = af_fnv1a(h, t->signature, strlen(t->signature) + 1);
  h = af_fnv1a(h, &max_len, sizeof max_len);
  uint64_t th = tokenizer_hash(tok);
  h = af_fnv1a(h, &th, sizeof th);
  uint64_t n = s->n;
  h = af_fnv1a(h, &n, sizeof n);
  for (size_t i = 0; i < s->n; i++) {
    const char *a = af_split_text_a(s, i), *b = af_split_text_b(s, i);
    h = af_fnv1a(h, a, strlen(a) + 1);
    if (b) h = af_fnv1a(h, b, strlen(b) + 1);
    else h = af_fnv1a(h, "\xff", 1);  /* not valid UTF-8: cannot collide with a text */
  }
  return h;
}

typedef struct {
  char magic[8];
  uint32_t version;
  int32_t max_len;
  uint64_t key, n, total, payload_hash;
  int32_t pad_id, reserved;
} cache_header;

/* A usable cache folder: made if need be, and writable. */
static int writable_dir(const char *dir) { return af_mkdirs(dir) == AF_OK && access(dir, W_OK) == 0; }

/* Pick the cache folder: the option, DATA/.autofreeze-cache, or the user cache. "" = none. */
static void cache_dir(const af_task *t, char *out, size_t cap) {
  out[0] = 0;
  if (t->opts.no_cache) return;
  if (t->opts.cache_dir) {
    if (writable_dir(t->opts.cache_dir)) snprintf(out, cap, "%s", t->opts.cache_dir);
    return;
  }
  char d[4200];
  snprintf(d, sizeof d, "%s/.autofreeze-cache", t->data_dir);
  /* A folder without any write bit is read-only data even for root (who passes access()). */
  struct stat st;
  int writable = stat(t->data_dir, &st) == 0 && (st.st_mode & 0222) && access(t->data_dir, W_OK) == 0;
  if (writable && writable_dir(d)) {
    snprintf(out, cap, "%s", d);
    return;
  }
  const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  if (x && *x) snprintf(d, sizeof d, "%s/autofreeze/tokens", x);
  else if (home && *home) snprintf(d, sizeof d, "%s/.cache/autofreeze/tokens", home);
  else return;
  if (writable_dir(d)) snprintf(out, cap, "%s", d);
}

static void free_tokens(af_split *s) {
  free(s->ids);
  free(s->type_ids);
  free(s->tok_off);
  free(s->len);
  free(s->truncated);
  s->ids = s->type_ids = NULL;
  s->tok_off = NULL;
  s->len = NULL;
  s->truncated = NULL;
  s->max_len = 0;
  s->n_truncated = 0;
  s->longest = 0;
  s->from_cache = 0;
}

static af_status alloc_tokens(af_split *s, size_t total) {
  AF_TRY(af_malloc((void **)&s->ids, (total ? total : 1) * sizeof *s->ids, "token ids"));
  AF_TRY(af_malloc((void **)&s->type_ids, (total ? total : 1) * sizeof *s->type_ids, "token type ids"));
  AF_TRY(af_malloc((void **)&s->tok_off, (s->n ? s->n : 1) * sizeof *s->tok_off, "token offsets"));
  AF_TRY(af_malloc((void **)&s->len, (s->n ? s->n : 1) * sizeof *s->len, "token lengths"));
  AF_TRY(af_malloc((void **)&s->truncated, (s->n ? s->n : 1), "truncation flags"));
  return AF_OK;
}

static uint64_t payload_hash(const af_split *s, uint64_t total) {
  uint64_t h = AF_FNV_INIT;
  h = af_fnv1a(h, s->len, s->n * sizeof *s->len);
  h = af_fnv1a(h, s->truncated, s->n);
  h = af_fnv1a(h, s->ids, total * sizeof *s->ids);
  h = af_fnv1a(h, s->type_ids, total * sizeof *s->type_ids);
  return h;
}

/* 1 when the cache file was valid and loaded; 0 otherwise (s left without tokens). */
static int cache_read(af_split *s, const char *path, uint64_t key, int max_len, int pad_id) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  cache_header h;
  int ok = 0;
  if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, CACHE_MAGIC, 8) || h.version != CACHE_VERSION ||
      h.key != key || h.n != s->n || h.max_len != max_len || h.pad_id != pad_id)
    goto out;
  struct stat st;
  if (fstat(fileno(f), &st) != 0) goto out;
  uint64_t want = sizeof h + h.n * (sizeof(int32_t) + 1) + h.total * 2 * sizeof(int32_t);
  if ((uint64_t)st.st_size != want || h.total > h.n * (uint64_t)max_len) goto out;
  if (alloc_tokens(s, h.total) != AF_OK) goto out;
  if (fread(s->len, sizeof *s->len, s->n, f) != s->n || fread(s->truncated, 1, s->n, f) != s->n ||
      fread(s->ids, sizeof *s->ids, h.total, f) != h.total ||
      fread(s->type_ids, sizeof *s->type_ids, h.total, f) != h.total)
    goto out;
  if (payload_hash(s, h.total) != h.payload_hash) goto out;
  uint64_t off = 0;
  for (size_t i = 0; i < s->n; i++) {
    if (s->len[i] < 1 || s->len[i] > max_len) goto out;
    s->tok_off[i] = off;
    off += (uint64_t)s->len[i];
  }
  if (off != h.total) goto out;
  ok = 1;
out:
  fclose(f);
  if (!ok) free_tokens(s);
  af_clear_error();
  return ok;
}

static void cache_write(const af_split *s, const char *path, uint64_t key, int max_len, int pad_id, uint64_t total) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) return;
  cache_header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, CACHE_MAGIC, 8);
  h.version = CACHE_VERSION;
  h.max_len = max_len;
  h.key = key;
  h.n = s->n;
  h.total = total;
  h.pad_id = pad_id;
  h.payload_hash = payload_hash(s, total);
  int ok = fwrite(&h, sizeof h, 1, f) == 1 && fwrite(s->len, sizeof *s->len, s->n, f) == s->n &&
           fwrite(s->truncated, 1, s->n, f) == s->n && fwrite(s->ids, sizeof *s->ids, total, f) == total &&
           fwrite(s->type_ids, sizeof *s->type_ids, total, f) == total;
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    af_warn("could not write the token cache %s", path);
  }
}

af_status af_task_encode(af_task *t, af_split *s, const af_tokenizer *tok, int max_len) {
  if (max_len < 3) return AF_FAIL(AF_ERR_ARG, "max_len: expected at least 3 tokens, found %d", max_len);
  if (s->ids && s->max_len == max_len) return AF_OK;
  free_tokens(s);
  int pad = af_tokenizer_pad(tok);
  uint64_t key = split_key(t, s, tok, max_len);
  char dir[3968];
  cache_dir(t, dir, sizeof dir);
  s->cache_path[0] = 0;
  if (dir[0]) {
    snprintf(s->cache_path, sizeof s->cache_path, "%s/%s-%s-%016llx.bin", dir, t->name, s->name,
             (unsigned long long)key);
    if (cache_read(s, s->cache_path, key, max_len, pad)) {
      s->from_cache = 1;
      goto finish;
    }
  }
  /* Tokenize: the arrays grow as examples come. */
  size_t cap = s->n * 32 + 64, total = 0;
  AF_TRY(alloc_tokens(s, cap));
  for (size_t i = 0; i < s->n; i++) {
    const char *a = af_split_text_a(s, i), *b = af_split_text_b(s, i);
    af_encoding e;
    memset(&e, 0, sizeof e);
    af_status st = af_encode(tok, a, strlen(a), b, b ? strlen(b) : 0, max_len, &e);
    if (st != AF_OK) {
      af_error_prefix("%s:%d: ", s->path, s->line[i]);
      free_tokens(s);
      return st;
    }
    if (e.len < 1 || e.len > max_len) {
      af_encoding_free(&e);
      free_tokens(s);
      return AF_FAIL(AF_ERR_FORMAT, "%s:%d: expected 1..%d tokens from the tokenizer, found %d", s->path,
                     s->line[i], max_len, e.len);
    }
    if (total + (size_t)e.len > cap) {
      size_t nc = cap * 2 + (size_t)e.len;
      int32_t *a1 = realloc(s->ids, nc * sizeof *a1);
      if (a1) s->ids = a1;
      int32_t *a2 = a1 ? realloc(s->type_ids, nc * sizeof *a2) : NULL;
      if (a2) s->type_ids = a2;
      if (!a1 || !a2) {
        af_encoding_free(&e);
        free_tokens(s);
        return AF_FAIL(AF_ERR_NOMEM, "out of memory for %zu tokens", nc);
      }
      cap = nc;
    }
    memcpy(s->ids + total, e.ids, (size_t)e.len * sizeof *e.ids);
    memcpy(s->type_ids + total, e.type_ids, (size_t)e.len * sizeof *e.type_ids);
    s->tok_off[i] = total;
    s->len[i] = e.len;
    s->truncated[i] = (uint8_t)(e.truncated != 0);
    total += (size_t)e.len;
    af_encoding_free(&e);
  }
  if (s->cache_path[0]) cache_write(s, s->cache_path, key, max_len, pad, total);
finish:
  s->max_len = max_len;
  s->pad_id = pad;
  s->n_truncated = 0;
  s->longest = 0;
  for (size_t i = 0; i < s->n; i++) {
    s->n_truncated += s->truncated[i];
    if (s->len[i] > s->longest) s->longest = s->len[i];
  }
  return AF_OK;
}

af_status af_task_load(af_task *t, const char *split, const af_tokenizer *tok, int max_len, af_split **s) {
  AF_TRY(af_task_split(t, split, s));
  af_status st = af_task_encode(t, *s, tok, max_len);
  if (st != AF_OK) *s = NULL;
  return st;
}

af_status af_task_score(const af_task *t, const af_split *s, const float *scores, af_metrics *m) {
  if (!s->has_labels)
    return AF_FAIL(AF_ERR_ARG, "%s: the %s split has no labels to score against", s->path, s->name);
  af_status st = af_metrics_compute(&t->metrics, t->num_labels, scores, s->labels, s->n, m);
  if (st != AF_OK) af_error_prefix("%s (%s): ", t->name, s->name);
  return st;
}
