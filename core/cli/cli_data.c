/* `autofreeze data`: build the default task from the machine's Debian package descriptions,
 * and show a dataset's statistics (rows, labels, token lengths, truncation, bad rows) with a
 * model's tokenizer, which also warms the token cache that training will use. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/cli/cli.h"
#include "core/data/task.h"
#include "core/data/tokenizer.h"

/* Paths are composed into PATH_MAX-sized buffers; an over-long one is cut and then fails to
 * open with its name in the message, so GCC's truncation warnings are noise here. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static void usage(FILE *f) {
  fprintf(f,
          "usage: autofreeze data build-default [--out DIR] [--min-count N] [--max-per-class N]\n"
          "                                     [--packages FILE] [--dev-percent P]\n"
          "       autofreeze data stats --task NAME --data DIR --model DIR [--max-len N]\n"
          "                             [--splits a,b] [--skip-bad-rows] [generic options]\n\n"
          "build-default  write the built-in default task (package description -> Debian\n"
          "               section) as DIR/train.tsv, DIR/dev.tsv and DIR/labels.txt\n"
          "  --out DIR            output folder (default data/default)\n"
          "  --min-count N        keep sections with at least N packages (default 300)\n"
          "  --max-per-class N    keep at most N packages per section (default: all)\n"
          "  --packages FILE      read this Packages-format file instead of the apt lists\n"
          "  --dev-percent P      share of source packages in dev (default 10)\n\n"
          "stats          rows per split, label counts, token length percentiles, truncation\n"
          "  --task NAME          cola sst2 mrpc stsb qqp mnli qnli rte wnli ag_news yelp_full\n"
          "                       yelp_polarity imdb generic default\n"
          "  --data DIR           folder with the split files\n"
          "  --model DIR          model folder whose vocab.txt tokenizes\n"
          "  --max-len N          tokens per example (default 128)\n"
          "  --splits a,b         splits to show (default: train and the evaluation splits)\n"
          "  --skip-bad-rows      skip and count malformed rows instead of failing\n"
          "  --no-cache           do not read or write the token cache\n"
          "  generic task: --text-cols A[,B] --label-col C (--labels x,y,... | --regression)\n"
          "                [--format tsv|csv] [--no-header]\n"
          "  -h, --help           this help\n");
}

static int usage_err(const char *fmt, const char *a) {
  fprintf(stderr, "autofreeze data: ");
  fprintf(stderr, fmt, a);
  fprintf(stderr, " (see --help)\n");
  return AF_EXIT_USAGE;
}

static int parse_int(const char *opt, const char *v, long lo, long hi, long *out) {
  char *end;
  long x = strtol(v, &end, 10);
  if (!*v || *end || x < lo || x > hi) {
    fprintf(stderr, "autofreeze data: %s: expected an integer in %ld..%ld, found '%s'\n", opt, lo, hi, v);
    return 0;
  }
  *out = x;
  return 1;
}

static int build_default(int argc, char **argv) {
  af_default_opts o;
  af_default_opts_init(&o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return AF_EXIT_OK; }
    if (a[0] != '-') return usage_err("unexpected argument '%s'", a);
    if (i + 1 >= argc) return usage_err("%s needs a value", a);
    const char *v = argv[++i];
    long x;
    if (!strcmp(a, "--out")) o.out_dir = v;
    else if (!strcmp(a, "--packages")) o.packages = v;
    else if (!strcmp(a, "--min-count")) { if (!parse_int(a, v, 1, 100000000, &x)) return AF_EXIT_USAGE; o.min_count = (int)x; }
    else if (!strcmp(a, "--max-per-class")) { if (!parse_int(a, v, 0, 100000000, &x)) return AF_EXIT_USAGE; o.max_per_class = (int)x; }
    else if (!strcmp(a, "--dev-percent")) { if (!parse_int(a, v, 1, 50, &x)) return AF_EXIT_USAGE; o.dev_percent = (int)x; }
    else { --i; return usage_err("unknown option '%s'", a); }
  }
  af_default_summary s;
  if (af_default_build(&o, &s) != AF_OK) return af_cli_report("data build-default");
  size_t tt = 0, td = 0;
  for (int c = 0; c < s.num_classes; c++) { tt += s.train[c]; td += s.dev[c]; }
  printf("default task from %s -> %s\n", s.source, o.out_dir);
  printf("packages read %zu; dropped: %zu repeated, %zu without section/description, %zu duplicate descriptions,\n"
         "  %zu in sections under %d, %zu over the per-class cap\n",
         s.packages_read, s.dropped_same_package, s.dropped_bad, s.dropped_duplicates, s.dropped_small_classes,
         o.min_count, s.dropped_cap);
  printf("%-16s %8s %8s\n", "section", "train", "dev");
  for (int c = 0; c < s.num_classes; c++) printf("%-16s %8zu %8zu\n", s.names[c], s.train[c], s.dev[c]);
  printf("%-16s %8zu %8zu   (%d classes)\n", "total", tt, td, s.num_classes);
  af_default_summary_free(&s);
  return AF_EXIT_OK;
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

static int32_t pct(const int32_t *sorted, size_t n, double p) {
  size_t k = (size_t)ceil(p / 100.0 * (double)n);
  if (k < 1) k = 1;
  if (k > n) k = n;
  return sorted[k - 1];  /* nearest-rank percentile */
}

static af_status show_split(af_task *t, const char *name, const af_tokenizer *tok, int max_len) {
  af_split *s;
  AF_TRY(af_task_load(t, name, tok, max_len, &s));
  printf("\n[%s] %s\n", s->name, s->path);
  printf("  rows %zu   bad rows skipped %zu   tokens from %s\n", s->n, s->bad_rows,
         s->from_cache ? "the cache" : "the tokenizer");
  int K = af_task_num_labels(t);
  if (!s->has_labels) {
    printf("  labels: none (unlabelled split)\n");
  } else if (K == 1) {
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    for (size_t i = 0; i < s->n; i++) {
      double v = s->labels[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      sum += v;
    }
    printf("  target: min %.3f  mean %.3f  max %.3f\n", lo, sum / (double)s->n, hi);
  } else {
    size_t *cnt = calloc((size_t)K, sizeof *cnt);
    if (!cnt) return AF_FAIL(AF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < s->n; i++) cnt[(int)s->labels[i]]++;
    printf("  labels:");
    for (int k = 0; k < K; k++)
      printf("%s %s %zu (%.1f%%)", k ? "," : "", af_task_label_name(t, k), cnt[k], 100.0 * (double)cnt[k] / (double)s->n);
    printf("\n");
    free(cnt);
  }
  int32_t *l = malloc(s->n * sizeof *l);
  if (!l) return AF_FAIL(AF_ERR_NOMEM, "out of memory");
  memcpy(l, s->len, s->n * sizeof *l);
  qsort(l, s->n, sizeof *l, cmp_i32);
  printf("  tokens (max_len %d): p50 %d  p90 %d  p99 %d  max %d   truncated %zu (%.2f%%)\n", max_len,
         pct(l, s->n, 50), pct(l, s->n, 90), pct(l, s->n, 99), l[s->n - 1], s->n_truncated,
         100.0 * (double)s->n_truncated / (double)s->n);
  free(l);
  return AF_OK;
}

static int stats(int argc, char **argv) {
  af_task_opts o;
  af_task_opts_default(&o);
  const char *task = NULL, *data = NULL, *model = NULL, *splits = NULL;
  long max_len = 128;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return AF_EXIT_OK; }
    if (!strcmp(a, "--skip-bad-rows")) { o.skip_bad_rows = 1; continue; }
    if (!strcmp(a, "--regression")) { o.regression = 1; continue; }
    if (!strcmp(a, "--no-header")) { o.header = 0; continue; }
    if (!strcmp(a, "--no-cache")) { o.no_cache = 1; continue; }
    if (a[0] != '-') return usage_err("unexpected argument '%s'", a);
    if (i + 1 >= argc) return usage_err("%s needs a value", a);
    const char *v = argv[++i];
    if (!strcmp(a, "--task")) task = v;
    else if (!strcmp(a, "--data")) data = v;
    else if (!strcmp(a, "--model")) model = v;
    else if (!strcmp(a, "--splits")) splits = v;
    else if (!strcmp(a, "--max-len")) { if (!parse_int(a, v, 3, 65536, &max_len)) return AF_EXIT_USAGE; }
    else if (!strcmp(a, "--text-cols")) o.text_cols = v;
    else if (!strcmp(a, "--label-col")) o.label_col = v;
    else if (!strcmp(a, "--labels")) o.labels = v;
    else if (!strcmp(a, "--format")) o.format = v;
    else { --i; return usage_err("unknown option '%s'", a); }
  }
  if (!task) return usage_err("%s", "stats needs --task NAME");
  if (!data) return usage_err("%s", "stats needs --data DIR");
  if (!model) return usage_err("%s", "stats needs --model DIR");
  af_task *t = NULL;
  af_tokenizer *tok = NULL;
  af_status st = af_task_open(task, data, &o, &t);
  if (st == AF_ERR_ARG) {
    fprintf(stderr, "autofreeze data: %s\n", af_last_error());
    return AF_EXIT_USAGE;
  }
  if (st == AF_OK) st = af_tokenizer_load(model, NULL, &tok);
  if (st == AF_OK) {
    printf("task %s (%s), %d %s, metrics:", af_task_name(t), af_task_is_pair(t) ? "text pairs" : "single texts",
           af_task_num_labels(t), af_task_num_labels(t) == 1 ? "target (regression)" : "labels");
    const af_metric_set *ms = af_task_metrics(t);
    for (int i = 0; i < ms->n; i++)
      printf(" %s%s", af_metric_name(ms->list[i]), ms->list[i] == ms->primary ? " (primary)" : "");
    printf("\n");
  }
  if (st == AF_OK && splits) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", splits);
    for (char *p = buf, *q; p && st == AF_OK; p = q) {
      q = strchr(p, ',');
      if (q) *q++ = 0;
      if (*p) st = show_split(t, p, tok, (int)max_len);
    }
  } else if (st == AF_OK) {
    st = show_split(t, af_task_train_split(t), tok, (int)max_len);
    for (int i = 0; st == AF_OK && i < af_task_num_eval_splits(t); i++)
      st = show_split(t, af_task_eval_split(t, i), tok, (int)max_len);
  }
  int rc = st == AF_OK ? AF_EXIT_OK : af_cli_report("data stats");
  af_tokenizer_free(tok);
  af_task_free(t);
  return rc;
}

int af_cli_data(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return AF_EXIT_USAGE;
  }
  const char *sub = argv[1];
  if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) { usage(stdout); return AF_EXIT_OK; }
  if (!strcmp(sub, "build-default")) return build_default(argc - 1, argv + 1);
  if (!strcmp(sub, "stats")) return stats(argc - 1, argv + 1);
  fprintf(stderr, "autofreeze data: unknown subcommand '%s': expected build-default or stats (see --help)\n", sub);
  return AF_EXIT_USAGE;
}
