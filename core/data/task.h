/* Tasks: the files of a dataset turned into labelled, tokenized examples, and the metrics
 * that score predictions on them. One reader per dataset family (tasks_glue.c, tasks_docs.c,
 * task_generic.c, task_default.c) fills splits through the helpers at the bottom.
 *
 * How the training loop uses it:
 *
 *   af_task_opts o; af_task_opts_default(&o);            // o.skip_bad_rows = 1 for --skip-bad-rows
 *   af_task *task;
 *   AF_TRY(af_task_open("mrpc", "data/glue/MRPC", &o, &task));
 *   int K = af_task_num_labels(task);                    // 1 = regression (STS-B), else classes
 *   const char *name0 = af_task_label_name(task, 0);     // "0", "entailment", "World", ...
 *   af_split *train;                                     // read + tokenized (cached on disk)
 *   AF_TRY(af_task_load(task, "train", tok, 128, &train));
 *   train->n, train->bad_rows                            // examples; rows skipped (record it)
 *   for (int i = 0; i < af_task_num_eval_splits(task); i++)      // "dev" (MNLI: dev_matched and
 *     af_task_load(task, af_task_eval_split(task, i), tok, 128, &dev);  // dev_mismatched; docs: test)
 *
 *   af_batcher *b;  (batcher.h)  af_batcher_init(&b, train, &bo);
 *   af_batcher_begin(b, epoch); af_batch bt; while (af_batcher_next(b, &bt)) { ... bt.ids ... }
 *
 *   // after predicting every example of an eval split in any order, scores laid out by
 *   // example index: [n, K] logits (classification) or [n] values (regression)
 *   af_metrics m; AF_TRY(af_task_score(task, dev, scores, &m));  // m.primary_value, m.value[...]
 *
 *   af_task_free(task);   // frees its splits too
 *
 * Example i of a split is line-ordered: index 0..n-1 in file order (IMDb tree: sorted file
 * names), stable across runs; the activation cache keys on it. */
#ifndef AF_TASK_H
#define AF_TASK_H
#include <stddef.h>
#include <stdint.h>
#include "core/data/metrics.h"
#include "core/base/status.h"
#include "core/data/tokenizer.h"

typedef struct {
  int skip_bad_rows;    /* 0: a bad row fails the load (listing the first few); 1: skip and count */
  int max_report;       /* bad rows listed in the error message (default 5) */
  size_t max_rows;      /* 0: all; else read at most this many examples per split (quick runs) */
  int no_cache;         /* 1: never read or write the token cache */
  const char *cache_dir;/* NULL: DATA/.autofreeze-cache, falling back to ~/.cache/autofreeze/... when
                           the data folder is read-only */
  /* generic task ("generic"): */
  const char *format;   /* "tsv" or "csv"; NULL: from the file extension found (train.tsv/train.csv) */
  int header;           /* 1 (default): the first record names the columns */
  const char *text_cols;/* one or two columns, "sentence" or "question,sentence" or 1-based "2,3" */
  const char *label_col;/* a header name or 1-based number; "last" = the last field */
  const char *labels;   /* comma-separated label list, e.g. "neg,pos"; NULL with regression = 1 */
  int regression;
  /* default task ("default") and `data build-default`: see task_default.c */
} af_task_opts;

void af_task_opts_default(af_task_opts *o);

/* One split of a task. Fields are read-only for callers. */
typedef struct {
  char name[32];        /* "train", "dev", "dev_matched", "test", ... */
  char path[4096];      /* the file (or folder) it was read from */
  size_t n;             /* examples */
  int has_labels;       /* 0 for unlabelled test files: labels are NaN */
  float *labels;        /* [n] class index as float, or the regression target */
  int32_t *line;        /* [n] 1-based line where the row starts; 0 when one file per example */
  size_t bad_rows;      /* rows skipped with skip_bad_rows */
  int pair;             /* 1 when examples are text pairs */
  /* raw text (UTF-8, NUL-terminated), see af_split_text */
  char *text;           /* arena */
  size_t text_len, text_cap;
  size_t *a_off, *b_off;/* [n]; b_off[i] = SIZE_MAX without a second text */
  size_t cap;           /* allocated rows */
  /* tokens, after af_task_encode / af_task_load */
  int max_len;          /* 0 until encoded */
  int pad_id;
  int32_t *ids;         /* all examples concatenated: example i is ids[tok_off[i] .. tok_off[i]+len[i]) */
  int32_t *type_ids;    /* same layout */
  uint64_t *tok_off;    /* [n] */
  int32_t *len;         /* [n] tokens including [CLS]/[SEP] */
  uint8_t *truncated;   /* [n] 1 when tokens were dropped to fit max_len */
  size_t n_truncated;
  int longest;          /* max len[i] */
  int from_cache;       /* 1 when the tokens came from the cache file */
  char cache_path[4096];/* "" when no cache was used */
} af_split;

typedef struct af_task af_task;

/* The task registry: every name af_task_open accepts, for the CLI and Lua alike. A name is
 * matched ignoring case, '-', '_' and ' ': "SST-2", "sts_b", "AG News", "agnews", "Yelp-Full"
 * all name registered tasks. */
typedef struct {
  const char *name;     /* canonical: "sst2", "stsb", "ag_news", ... (af_task_name's answer) */
  const char *family;   /* the reader: "glue", "docs", "generic" or "default" */
} af_task_info;
int af_task_count(void);
const af_task_info *af_task_info_at(int i);          /* 0 <= i < af_task_count(); else NULL */
const af_task_info *af_task_lookup(const char *name); /* NULL when no registered task matches */
const char *af_task_canonical(const char *name);      /* the registered name, or NULL */
const char *af_task_names(void);  /* "cola, sst2, ..., generic, default": for messages */

/* Open a task by name (see the registry above); reading happens lazily per split. Names: cola
 * sst2 mrpc stsb qqp mnli qnli rte wnli, ag_news yelp_full yelp_polarity imdb, generic,
 * default. data_dir holds the split files. opts may be NULL. */
af_status af_task_open(const char *name, const char *data_dir, const af_task_opts *opts, af_task **t);
void af_task_free(af_task *t);  /* NULL is fine */

const char *af_task_name(const af_task *t);       /* canonical: "mrpc", "stsb", "ag_news", ... */
int af_task_num_labels(const af_task *t);          /* 1 = regression */
const char *af_task_label_name(const af_task *t, int k);  /* NULL out of range or regression */
int af_task_is_pair(const af_task *t);
const af_metric_set *af_task_metrics(const af_task *t);
int af_task_num_eval_splits(const af_task *t);
const char *af_task_eval_split(const af_task *t, int i);  /* "dev"; MNLI: "dev_matched", "dev_mismatched" */
const char *af_task_train_split(const af_task *t);         /* "train" */

/* Read a split ("train", "dev", "test", MNLI's "dev_matched"/"dev_mismatched"/"test_matched"/
 * "test_mismatched"; "dev" is an alias of "dev_matched" for MNLI). Memoized: the same pointer is
 * returned again; the task owns it. */
af_status af_task_split(af_task *t, const char *split, af_split **s);
/* Tokenize a split once (or load its tokens from the cache) with max_len tokens per example.
 * Encoding again with another max_len replaces the token arrays: re-create batchers over s. */
af_status af_task_encode(af_task *t, af_split *s, const af_tokenizer *tok, int max_len);
/* af_task_split + af_task_encode. */
af_status af_task_load(af_task *t, const char *split, const af_tokenizer *tok, int max_len, af_split **s);

/* Example i's texts; b is NULL without a second text. */
const char *af_split_text_a(const af_split *s, size_t i);
const char *af_split_text_b(const af_split *s, size_t i);

/* Keep a deterministic pseudo-random subset of max examples of an encoded split, in file
 * order: a slice of a file sorted by name or label is then still representative. The kept
 * examples are renumbered 0..max-1 (the same subset every run: it depends only on n and
 * max). No-op when max is 0 or >= n. */
af_status af_split_subset(af_split *s, size_t max);

/* Score predictions of every example of s (by example index): [n, K] logits or [n] values. */
af_status af_task_score(const af_task *t, const af_split *s, const float *scores, af_metrics *m);

/* ---- for the readers (tasks_*.c, task_*.c); not for callers ---- */

/* Where a column comes from: a header name, or a 0-based index, or the last field. */
typedef struct {
  const char *name;   /* header name (used when the file has a header), else NULL */
  int index;          /* 0-based index when name is NULL; AF_COL_LAST: the last field; AF_COL_NONE */
} af_col;
#define AF_COL_NONE (-1)
#define AF_COL_LAST (-2)

typedef struct {
  int csv;               /* RFC-4180 CSV; else GLUE TSV (no quoting) */
  int header;            /* the first record is a header: its field count is the expected one */
  int ncols;             /* expected fields when header = 0 */
  af_col a, b, label;    /* b.index = AF_COL_NONE and b.name = NULL: single text; label none: test */
  int extra_empty_ok;    /* RTE: rows may carry extra empty fields before the last (label) one */
  int concat_b;          /* join b to a with a space (AG News title + description) */
} af_table_spec;

/* Read a table file into s with t's labels. A missing file is AF_ERR_IO naming it. */
af_status af_read_table(af_task *t, af_split *s, const char *path, const af_table_spec *spec);

/* Add one example (texts need not be NUL-terminated; b may be NULL). label: class index as
 * float, regression target, or NAN for unlabelled. */
af_status af_split_add(af_split *s, const char *a, size_t alen, const char *b, size_t blen, float label,
                       int line);
/* A bad row: counted and skipped with skip_bad_rows, else remembered for the error the load
 * returns (af_split_finish). Always returns AF_OK. */
af_status af_task_bad_row(af_task *t, af_split *s, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Class index of a raw label string; -1 when unknown. */
int af_task_label_index(const af_task *t, const char *raw, size_t len);
/* Check one text field: valid UTF-8 and not blank. On failure reports a bad row and returns 0. */
int af_task_check_text(af_task *t, af_split *s, const char *file, int line, const char *what,
                       const char *p, size_t n);
/* Parse a label field into *label (class or regression). On failure reports a bad row, returns 0. */
int af_task_parse_label(af_task *t, af_split *s, const char *file, int line, const char *p, size_t n,
                        float *label);
/* True when max_rows is reached. */
int af_task_split_full(const af_task *t, const af_split *s);

/* The reader of a task family: fills s (whose name is set) from the task's data_dir. */
typedef af_status (*af_task_reader)(af_task *t, af_split *s);

struct af_task {
  char name[32];
  char data_dir[4096];
  af_task_opts opts;         /* strings copied into optbuf */
  char optbuf[2048];
  int num_labels;            /* 1 = regression */
  char **label_raw;          /* [num_labels] strings as they appear in the files */
  char **label_names;        /* [num_labels] display names */
  int pair;
  af_metric_set metrics;
  const char *eval_splits[2];
  int n_eval;
  af_task_reader read;
  void *impl;                /* reader state (e.g. the GLUE spec) */
  void (*impl_free)(void *); /* frees impl with the task; NULL when impl is static */
  char signature[512];       /* task options that change the examples; part of the cache key */
  af_split *splits[8];
  int nsplits;
  /* bad-row accounting for the split being read */
  int bad_count;
  char bad_msg[1536];
};

/* Set labels from raw strings and (optional) display names; NULL names = raw. */
af_status af_task_set_labels(af_task *t, int n, const char *const *raw, const char *const *names);

/* Family constructors, called by af_task_open with the registered name. */
af_status af_task_init_glue(af_task *t, const char *name);      /* tasks_glue.c; AF_ERR_ARG unknown */
af_status af_task_init_docs(af_task *t, const char *name);      /* tasks_docs.c; AF_ERR_ARG unknown */
af_status af_task_init_generic(af_task *t);                     /* task_generic.c */
af_status af_task_init_default(af_task *t);                     /* task_default.c */

/* ---- the default task's builder (task_default.c), used by `autofreeze data build-default` ---- */
typedef struct {
  const char *packages;   /* a Packages-format file; NULL: `apt-cache dumpavail`, else the
                             uncompressed /var/lib/apt/lists/ *_Packages files */
  const char *out_dir;    /* default "data/default" */
  int min_count;          /* keep sections with >= this many examples (default 300) */
  int max_per_class;      /* 0: no cap */
  int dev_percent;        /* default 10 */
} af_default_opts;
void af_default_opts_init(af_default_opts *o);
/* Per-class counts of the built task (for printing). */
typedef struct {
  int num_classes;
  char **names;           /* [num_classes] sorted */
  size_t *train, *dev;    /* [num_classes] */
  size_t packages_read;          /* stanzas with a Package field */
  size_t dropped_same_package;   /* the same package listed again (another suite) */
  size_t dropped_bad;            /* no description/section, or invalid UTF-8 */
  size_t dropped_duplicates;     /* description identical to an earlier package's */
  size_t dropped_small_classes;  /* in a section with < min_count examples */
  size_t dropped_cap;            /* over max_per_class */
  char source[4200];             /* what was read: the file, or "apt-cache dumpavail" */
} af_default_summary;
af_status af_default_build(const af_default_opts *o, af_default_summary *sum);
void af_default_summary_free(af_default_summary *sum);
/* Stable 64-bit FNV-1a of a source package name; dev when hash % 100 < dev_percent. */
int af_default_is_dev(const char *source, int dev_percent);

#endif
