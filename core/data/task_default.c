/* The built-in default task: real English text that every Debian/Ubuntu machine already has,
 * the package descriptions in the apt lists. Input = the short description plus the long one
 * when the lists carry it (apt keeps long descriptions in Translation files, so on most
 * machines only the short one is there); label = the package's Section without its
 * "contrib/"/"non-free/" area. Sections with fewer than min_count examples are dropped, and
 * identical descriptions are kept once (the first package by name), so the same text never
 * sits in both splits. The split hashes the SOURCE package name (FNV-1a), so libfoo1,
 * libfoo-dev and libfoo-doc land on the same side. `af_default_build` writes DIR/train.tsv,
 * DIR/dev.tsv (header "sentence\tlabel") and DIR/labels.txt; the "default" task reads them. */
#include <errno.h>
#include <glob.h>
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

/* ---- the task ---- */

static af_status default_read(af_task *t, af_split *s) {
  if (strcmp(s->name, "train") && strcmp(s->name, "dev"))
    return AF_FAIL(AF_ERR_ARG, "task default: expected a split in {train, dev}, found '%s'", s->name);
  static const af_table_spec spec = {.header = 1, .a = {"sentence", AF_COL_NONE}, .b = {NULL, AF_COL_NONE},
                                     .label = {"label", AF_COL_NONE}};
  char path[4200];
  snprintf(path, sizeof path, "%s/%s.tsv", t->data_dir, s->name);
  return af_read_table(t, s, path, &spec);
}

af_status af_task_init_default(af_task *t) {
  snprintf(t->name, sizeof t->name, "default");
  char path[4200];
  snprintf(path, sizeof path, "%s/labels.txt", t->data_dir);
  FILE *f = fopen(path, "r");
  if (!f)
    return AF_FAIL(AF_ERR_IO, "%s: expected the label list written by 'autofreeze data build-default', found %s", path,
                   strerror(errno));
  char *raw[1024];
  int n = 0;
  char line[512];
  af_status st = AF_OK;
  while (fgets(line, sizeof line, f)) {
    size_t l = strlen(line);
    while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = 0;
    if (!l) continue;
    if (n == 1024) { st = AF_FAIL(AF_ERR_FORMAT, "%s: expected at most 1024 labels", path); break; }
    raw[n] = strdup(line);
    if (!raw[n]) { st = AF_FAIL(AF_ERR_NOMEM, "out of memory reading %s", path); break; }
    n++;
  }
  fclose(f);
  if (st == AF_OK && n < 2) st = AF_FAIL(AF_ERR_FORMAT, "%s: expected at least two labels, found %d", path, n);
  if (st == AF_OK) st = af_task_set_labels(t, n, (const char *const *)raw, NULL);
  for (int i = 0; i < n; i++) free(raw[i]);
  if (st != AF_OK) return st;
  t->read = default_read;
  t->pair = 0;
  t->metrics = (af_metric_set){2, {AF_METRIC_ACCURACY, AF_METRIC_MACRO_F1}, AF_METRIC_ACCURACY};
  snprintf(t->signature, sizeof t->signature, "default1");
  return AF_OK;
}

/* ---- the builder ---- */

void af_default_opts_init(af_default_opts *o) {
  memset(o, 0, sizeof *o);
  o->out_dir = "data/default";
  o->min_count = 300;
  o->dev_percent = 10;
}

int af_default_is_dev(const char *source, int dev_percent) {
  return (int)(af_fnv1a(AF_FNV_INIT, source, strlen(source)) % 100) < dev_percent;
}

typedef struct {
  char *package, *source, *section, *text;
  size_t order;   /* input order, the last tie-break */
  int cls;        /* class index, -1 dropped */
  int dev;
} pkg;

typedef struct {
  pkg *v;
  size_t n, cap;
  /* current stanza */
  char *package, *source, *section;
  char *text;
  size_t tlen, tcap;
  int in_desc;
  size_t stanzas;
} parser;

static char *dupn(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

static int text_put(parser *p, const char *s, size_t n) {
  if (p->tlen + n + 2 > p->tcap) {
    size_t nc = (p->tlen + n + 2) * 2;
    char *b = realloc(p->text, nc);
    if (!b) return -1;
    p->text = b;
    p->tcap = nc;
  }
  /* tabs and newlines would break the TSV; runs of spaces collapse */
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '\t' || c == '\r' || c == '\n') c = ' ';
    if (c == ' ' && (p->tlen == 0 || p->text[p->tlen - 1] == ' ')) continue;
    p->text[p->tlen++] = c;
  }
  p->text[p->tlen] = 0;
  return 0;
}

static void stanza_reset(parser *p) {
  free(p->package);
  free(p->source);
  free(p->section);
  p->package = p->source = p->section = NULL;
  p->tlen = 0;
  if (p->text) p->text[0] = 0;
  p->in_desc = 0;
}

static af_status stanza_end(parser *p) {
  if (p->package) p->stanzas++;
  if (p->package) {
    if (p->n == p->cap) {
      size_t nc = p->cap ? 2 * p->cap : 4096;
      pkg *nv = realloc(p->v, nc * sizeof *nv);
      if (!nv) return AF_FAIL(AF_ERR_NOMEM, "out of memory for %zu packages", nc);
      p->v = nv;
      p->cap = nc;
    }
    while (p->tlen && p->text[p->tlen - 1] == ' ') p->text[--p->tlen] = 0;
    pkg *k = &p->v[p->n];
    memset(k, 0, sizeof *k);
    k->package = p->package;
    k->source = p->source ? p->source : strdup(p->package);
    k->section = p->section;
    k->text = dupn(p->text ? p->text : "", p->tlen);
    k->order = p->n;
    k->cls = -1;
    p->package = p->source = p->section = NULL;
    if (!k->source || !k->text) return AF_FAIL(AF_ERR_NOMEM, "out of memory for packages");
    p->n++;
  }
  stanza_reset(p);
  return AF_OK;
}

/* Value of "Field: value" with the field name matched case-sensitively, trimmed. */
static const char *field_value(const char *line, const char *name) {
  size_t n = strlen(name);
  if (strncmp(line, name, n) || line[n] != ':') return NULL;
  const char *v = line + n + 1;
  while (*v == ' ' || *v == '\t') v++;
  return v;
}

static size_t trimmed_len(const char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) n--;
  return n;
}

static af_status parse_stream(parser *p, FILE *f) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t got;
  af_status st = AF_OK;
  while (st == AF_OK && (got = getline(&line, &cap, f)) >= 0) {
    size_t n = trimmed_len(line);
    line[n] = 0;
    if (n == 0) { st = stanza_end(p); continue; }
    if (line[0] == ' ' || line[0] == '\t') {
      if (!p->in_desc) continue;
      const char *c = line + 1;
      if (!strcmp(c, ".")) continue;  /* paragraph marker */
      if (text_put(p, " ", 1) || text_put(p, c, strlen(c))) st = AF_FAIL(AF_ERR_NOMEM, "out of memory for descriptions");
      continue;
    }
    p->in_desc = 0;
    const char *v;
    if ((v = field_value(line, "Package"))) {
      free(p->package);
      p->package = strdup(v);
    } else if ((v = field_value(line, "Source"))) {
      size_t k = strcspn(v, " (");  /* "Source: foo (1.2-3)" */
      free(p->source);
      p->source = dupn(v, k);
    } else if ((v = field_value(line, "Section"))) {
      const char *slash = strrchr(v, '/');  /* contrib/net, non-free/libs */
      free(p->section);
      p->section = strdup(slash ? slash + 1 : v);
    } else if ((v = field_value(line, "Description")) || (v = field_value(line, "Description-en"))) {
      p->tlen = 0;
      if (text_put(p, v, strlen(v))) st = AF_FAIL(AF_ERR_NOMEM, "out of memory for descriptions");
      p->in_desc = 1;
    }
  }
  free(line);
  if (st == AF_OK) st = stanza_end(p);
  return st;
}

static int cmp_name(const void *a, const void *b) {
  const pkg *x = a, *y = b;
  int c = strcmp(x->package, y->package);
  if (c) return c;
  return x->order < y->order ? -1 : x->order > y->order;
}

static pkg *sort_base;
static int cmp_text_idx(const void *a, const void *b) {
  const pkg *x = &sort_base[*(const size_t *)a], *y = &sort_base[*(const size_t *)b];
  int c = strcmp(x->text, y->text);
  if (c) return c;
  return strcmp(x->package, y->package);
}

static int cmp_hash_idx(const void *a, const void *b) {
  const pkg *x = &sort_base[*(const size_t *)a], *y = &sort_base[*(const size_t *)b];
  uint64_t hx = af_fnv1a(AF_FNV_INIT, x->package, strlen(x->package));
  uint64_t hy = af_fnv1a(AF_FNV_INIT, y->package, strlen(y->package));
  if (hx != hy) return hx < hy ? -1 : 1;
  return strcmp(x->package, y->package);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static af_status read_sources(const af_default_opts *o, parser *p, af_default_summary *sum) {
  if (o->packages) {
    FILE *f = fopen(o->packages, "r");
    if (!f) return AF_FAIL(AF_ERR_IO, "%s: expected a Packages-format file, found %s", o->packages, strerror(errno));
    snprintf(sum->source, sizeof sum->source, "%s", o->packages);
    af_status st = parse_stream(p, f);
    fclose(f);
    return st;
  }
  glob_t g;
  memset(&g, 0, sizeof g);
  if (glob("/var/lib/apt/lists/*_Packages", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
    snprintf(sum->source, sizeof sum->source, "/var/lib/apt/lists/*_Packages (%zu files)", (size_t)g.gl_pathc);
    for (size_t i = 0; i < g.gl_pathc; i++) {
      FILE *f = fopen(g.gl_pathv[i], "r");
      if (!f) continue;
      af_status st = parse_stream(p, f);
      fclose(f);
      if (st != AF_OK) { globfree(&g); return st; }
    }
    globfree(&g);
    if (p->n) return AF_OK;
  } else {
    globfree(&g);
  }
  /* The lists are usually compressed (lz4, gz); apt itself decompresses them for us. */
  snprintf(sum->source, sizeof sum->source, "apt-cache dumpavail");
  FILE *f = popen("apt-cache dumpavail 2>/dev/null", "r");
  if (!f) return AF_FAIL(AF_ERR_IO, "apt-cache dumpavail: could not run it: %s", strerror(errno));
  af_status st = parse_stream(p, f);
  int rc = pclose(f);
  if (st != AF_OK) return st;
  if (rc != 0 || p->n == 0)
    return AF_FAIL(AF_ERR_IO, "expected package descriptions from /var/lib/apt/lists or 'apt-cache dumpavail', found %s "
                   "(run 'apt-get update', or pass --packages FILE)", p->n ? "an apt-cache failure" : "none");
  return AF_OK;
}

static af_status write_split(const char *dir, const char *split, const pkg *v, size_t n, int dev, char **names) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s.tsv", dir, split);
  FILE *f = fopen(path, "w");
  if (!f) return AF_FAIL(AF_ERR_IO, "%s: could not create: %s", path, strerror(errno));
  fputs("sentence\tlabel\n", f);
  for (size_t i = 0; i < n; i++)
    if (v[i].cls >= 0 && v[i].dev == dev) fprintf(f, "%s\t%s\n", v[i].text, names[v[i].cls]);
  if (fclose(f) != 0) return AF_FAIL(AF_ERR_IO, "%s: write failed: %s", path, strerror(errno));
  return AF_OK;
}

static af_status check_opts(const af_default_opts *o) {
  if (o->min_count < 1) return AF_FAIL(AF_ERR_ARG, "--min-count: expected at least 1, found %d", o->min_count);
  if (o->max_per_class < 0) return AF_FAIL(AF_ERR_ARG, "--max-per-class: expected >= 0, found %d", o->max_per_class);
  if (o->dev_percent < 1 || o->dev_percent > 50)
    return AF_FAIL(AF_ERR_ARG, "dev percent: expected 1..50, found %d", o->dev_percent);
  return AF_OK;
}

static void pkg_free(pkg *k) {
  free(k->package);
  free(k->source);
  free(k->section);
  free(k->text);
}

/* 1. One entry per package name (the first suite listing it), in name order. */
static void keep_first_per_name(parser *p, af_default_summary *sum) {
  qsort(p->v, p->n, sizeof *p->v, cmp_name);
  size_t m = 0;
  for (size_t i = 0; i < p->n; i++) {
    pkg *k = &p->v[i];
    if (m && !strcmp(p->v[m - 1].package, k->package)) {
      sum->dropped_same_package++;
      pkg_free(k);
      continue;
    }
    p->v[m++] = *k;
  }
  p->n = m;
}

/* 2. Usable (cls 0): a section and a valid, non-empty description; the rest cls -2. */
static void mark_usable(parser *p, af_default_summary *sum) {
  for (size_t i = 0; i < p->n; i++) {
    pkg *k = &p->v[i];
    k->cls = (k->section && k->section[0] && k->text[0] && af_utf8_check(k->text, strlen(k->text)) < 0) ? 0 : -2;
    if (k->cls == -2) sum->dropped_bad++;
  }
}

/* 3. Identical descriptions: keep the first package by name, the others cls -3. idx: scratch
 * of p->n entries. */
static void drop_duplicate_texts(parser *p, size_t *idx, af_default_summary *sum) {
  size_t ni = 0;
  for (size_t i = 0; i < p->n; i++)
    if (p->v[i].cls == 0) idx[ni++] = i;
  sort_base = p->v;
  qsort(idx, ni, sizeof *idx, cmp_text_idx);
  for (size_t i = 1; i < ni; i++) /* groups are sorted by name: the first of each keeps cls 0 */
    if (!strcmp(p->v[idx[i]].text, p->v[idx[i - 1]].text)) {
      p->v[idx[i]].cls = -3;
      sum->dropped_duplicates++;
    }
}

/* 4. The sections with at least min_count usable packages, sorted, into secs[0..*nkeep)
 * (scratch of p->n entries); a usable package's cls becomes its section's index, or -1. */
static af_status pick_sections(parser *p, const af_default_opts *o, char **secs, size_t *nkeep,
                               af_default_summary *sum) {
  size_t nsec = 0;
  for (size_t i = 0; i < p->n; i++)
    if (p->v[i].cls == 0) secs[nsec++] = p->v[i].section;
  qsort(secs, nsec, sizeof *secs, cmp_str);
  size_t nk = 0;
  for (size_t i = 0; i < nsec;) {
    size_t j = i;
    while (j < nsec && !strcmp(secs[j], secs[i])) j++;
    if (j - i >= (size_t)o->min_count) secs[nk++] = secs[i];
    else sum->dropped_small_classes += j - i;
    i = j;
  }
  *nkeep = nk;
  if (nk < 2)
    return AF_FAIL(AF_ERR_FORMAT, "%s: expected at least two sections with >= %d packages, found %zu (lower --min-count)",
                   sum->source, o->min_count, nk);
  for (size_t i = 0; i < p->n; i++) {
    if (p->v[i].cls != 0) { p->v[i].cls = -1; continue; }
    char **hit = bsearch(&p->v[i].section, secs, nk, sizeof *secs, cmp_str);
    p->v[i].cls = hit ? (int)(hit - secs) : -1;
  }
  return AF_OK;
}

/* 5. At most max_per_class (0: no cap) per class: the packages with the smallest name hashes
 * stay (an unbiased, stable pick). idx: scratch of p->n entries. */
static af_status cap_per_class(parser *p, const af_default_opts *o, size_t *idx, size_t nkeep,
                               af_default_summary *sum) {
  if (o->max_per_class <= 0) return AF_OK;
  size_t ni = 0;
  for (size_t i = 0; i < p->n; i++)
    if (p->v[i].cls >= 0) idx[ni++] = i;
  sort_base = p->v;
  qsort(idx, ni, sizeof *idx, cmp_hash_idx);
  size_t *seen = calloc(nkeep, sizeof *seen);
  if (!seen) return AF_FAIL(AF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < ni; i++) {
    pkg *k = &p->v[idx[i]];
    if (seen[k->cls]++ >= (size_t)o->max_per_class) {
      k->cls = -1;
      sum->dropped_cap++;
    }
  }
  free(seen);
  return AF_OK;
}

/* 6. The class names, and each kept package's split (by its source package), counted. */
static af_status split_and_count(parser *p, const af_default_opts *o, char **secs, size_t nkeep,
                                 af_default_summary *sum) {
  sum->num_classes = (int)nkeep;
  sum->names = calloc(nkeep, sizeof *sum->names);
  sum->train = calloc(nkeep, sizeof *sum->train);
  sum->dev = calloc(nkeep, sizeof *sum->dev);
  if (!sum->names || !sum->train || !sum->dev) return AF_FAIL(AF_ERR_NOMEM, "out of memory");
  for (size_t c = 0; c < nkeep; c++)
    if (!(sum->names[c] = strdup(secs[c]))) return AF_FAIL(AF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < p->n; i++) {
    pkg *k = &p->v[i];
    if (k->cls < 0) continue;
    k->dev = af_default_is_dev(k->source, o->dev_percent);
    if (k->dev) sum->dev[k->cls]++;
    else sum->train[k->cls]++;
  }
  return AF_OK;
}

/* DIR/train.tsv, DIR/dev.tsv and DIR/labels.txt (one class name a line, in class order). */
static af_status write_task(const char *dir, const parser *p, const af_default_summary *sum) {
  AF_TRY(af_mkdirs(dir));
  AF_TRY(write_split(dir, "train", p->v, p->n, 0, sum->names));
  AF_TRY(write_split(dir, "dev", p->v, p->n, 1, sum->names));
  char path[4200];
  snprintf(path, sizeof path, "%s/labels.txt", dir);
  FILE *f = fopen(path, "w");
  if (!f) return AF_FAIL(AF_ERR_IO, "%s: could not create: %s", path, strerror(errno));
  for (int c = 0; c < sum->num_classes; c++) fprintf(f, "%s\n", sum->names[c]);
  if (fclose(f) != 0) return AF_FAIL(AF_ERR_IO, "%s: write failed", path);
  return AF_OK;
}

af_status af_default_build(const af_default_opts *o, af_default_summary *sum) {
  memset(sum, 0, sizeof *sum);
  AF_TRY(check_opts(o));
  parser p;
  memset(&p, 0, sizeof p);
  size_t *idx = NULL, nkeep = 0;
  char **secs = NULL;
  af_status st = read_sources(o, &p, sum);
  if (st == AF_OK) {
    sum->packages_read = p.stanzas;
    keep_first_per_name(&p, sum);
    mark_usable(&p, sum);
    st = af_malloc((void **)&idx, (p.n ? p.n : 1) * sizeof *idx, "package index");
  }
  if (st == AF_OK) {
    drop_duplicate_texts(&p, idx, sum);
    st = af_malloc((void **)&secs, (p.n ? p.n : 1) * sizeof *secs, "sections");
  }
  if (st == AF_OK) st = pick_sections(&p, o, secs, &nkeep, sum);
  if (st == AF_OK) st = cap_per_class(&p, o, idx, nkeep, sum);
  if (st == AF_OK) st = split_and_count(&p, o, secs, nkeep, sum);
  if (st == AF_OK) st = write_task(o->out_dir, &p, sum);
  for (size_t i = 0; i < p.n; i++) pkg_free(&p.v[i]);
  free(p.v);
  stanza_reset(&p);
  free(p.text);
  free(idx);
  free(secs);
  if (st != AF_OK) af_default_summary_free(sum);
  return st;
}

void af_default_summary_free(af_default_summary *sum) {
  if (!sum) return;
  for (int c = 0; c < sum->num_classes && sum->names; c++) free(sum->names[c]);
  free(sum->names);
  free(sum->train);
  free(sum->dev);
  sum->names = NULL;
  sum->train = sum->dev = NULL;
  sum->num_classes = 0;
}
