/* `autofreeze tokenize`: show how a model's WordPiece vocabulary encodes a text (or a
 * pair), or encode columns of a TSV file to lines of ids, e.g. to check a data set
 * against another tokenizer or to measure sequence lengths. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli/cli.h"
#include "core/data/tokenizer.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: autofreeze tokenize MODEL_DIR TEXT [TEXT_B] [--max-len N]\n"
          "       autofreeze tokenize MODEL_DIR --tsv FILE --column N [--column2 M]\n"
          "                           [--max-len N] [--skip-header]\n\n"
          "Encode text with the model's vocab.txt (and tokenizer_config.json) as BERT does:\n"
          "[CLS] TEXT [SEP] (TEXT_B [SEP]). The first form prints the tokens, ids and type ids.\n"
          "The second encodes column N (0-based) of each row of a tab-separated FILE ('-' for\n"
          "stdin), paired with column M when given, and prints one line of space-separated ids\n"
          "per row.\n\n"
          "options:\n"
          "  --max-len N     truncate to N tokens including [CLS]/[SEP] (pairs: longest first)\n"
          "  --tsv FILE      read rows from FILE instead of TEXT arguments\n"
          "  --column N      the text column (0-based)\n"
          "  --column2 M     the second text column, for sentence pairs\n"
          "  --skip-header   ignore the first row\n"
          "  -h, --help      this help\n\n"
          "exit codes: 0 success, 1 runtime error, 2 usage error\n");
}

static int usage_error(const char *fmt, const char *arg) {
  fputs("autofreeze tokenize: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs("\nRun 'autofreeze tokenize --help' for usage.\n", stderr);
  return AF_EXIT_USAGE;
}

static int parse_int(const char *s, int lo, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > INT_MAX) return 0;
  *out = (int)v;
  return 1;
}

static int show(const af_tokenizer *tok, const char *a, const char *b, int max_len) {
  af_encoding e;
  if (af_encode(tok, a, strlen(a), b, b ? strlen(b) : 0, max_len, &e) != AF_OK) return af_cli_report("tokenize");
  printf("tokens:  ");
  for (int i = 0; i < e.len; i++) printf(" %s", af_tokenizer_token(tok, e.ids[i]));
  printf("\nids:     ");
  for (int i = 0; i < e.len; i++) printf(" %d", e.ids[i]);
  printf("\ntype_ids:");
  for (int i = 0; i < e.len; i++) printf(" %d", e.type_ids[i]);
  printf("\nlength:   %d%s\n", e.len, e.truncated ? " (truncated)" : "");
  af_encoding_free(&e);
  return AF_EXIT_OK;
}

/* Field k (0-based) of a tab-separated line; *len excludes the tab. NULL when absent. */
static const char *field(const char *line, size_t n, int k, size_t *len) {
  const char *p = line, *end = line + n;
  for (int i = 0; i < k; i++) {
    const char *t = memchr(p, '\t', (size_t)(end - p));
    if (!t) return NULL;
    p = t + 1;
  }
  const char *t = memchr(p, '\t', (size_t)(end - p));
  *len = (size_t)((t ? t : end) - p);
  return p;
}

static int run_tsv(const af_tokenizer *tok, const char *path, int col, int col2, int max_len, int skip_header) {
  FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
  if (!f) {
    fprintf(stderr, "autofreeze tokenize: cannot open %s: %s\n", path, strerror(errno));
    return AF_EXIT_RUNTIME;
  }
  static char obuf[1 << 16];
  setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  long row = 0;
  int rc = AF_EXIT_OK;
  char num[16];
  while ((n = getline(&line, &cap, f)) >= 0) {
    row++;
    if (n > 0 && line[n - 1] == '\n') n--;
    if (n > 0 && line[n - 1] == '\r') n--;
    if (row == 1 && skip_header) continue;
    size_t la = 0, lb = 0;
    const char *a = field(line, (size_t)n, col, &la), *b = NULL;
    if (a && col2 >= 0) b = field(line, (size_t)n, col2, &lb);
    if (!a || (col2 >= 0 && !b)) {
      fflush(stdout);
      fprintf(stderr, "autofreeze tokenize: %s:%ld: no column %d (the row has fewer fields)\n", path, row,
              !a ? col : col2);
      rc = AF_EXIT_RUNTIME;
      break;
    }
    af_encoding e;
    if (af_encode(tok, a, la, b, lb, max_len, &e) != AF_OK) {
      fflush(stdout);
      af_error_prefix("%s:%ld: ", path, row);
      rc = af_cli_report("tokenize");
      break;
    }
    for (int i = 0; i < e.len; i++) {
      int k = snprintf(num, sizeof num, i ? " %d" : "%d", e.ids[i]);
      fwrite(num, 1, (size_t)k, stdout);
    }
    putchar('\n');
    af_encoding_free(&e);
  }
  if (rc == AF_EXIT_OK && ferror(f)) {
    fprintf(stderr, "autofreeze tokenize: error reading %s: %s\n", path, strerror(errno));
    rc = AF_EXIT_RUNTIME;
  }
  free(line);
  if (f != stdin) fclose(f);
  if (fflush(stdout) != 0 && rc == AF_EXIT_OK) {
    fprintf(stderr, "autofreeze tokenize: error writing output: %s\n", strerror(errno));
    rc = AF_EXIT_RUNTIME;
  }
  return rc;
}

int af_cli_tokenize(int argc, char **argv) {
  const char *pos[3];
  int npos = 0, max_len = INT_MAX, col = -1, col2 = -1, skip_header = 0;
  const char *tsv = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return AF_EXIT_OK;
    }
    int has_val = !strcmp(a, "--max-len") || !strcmp(a, "--tsv") || !strcmp(a, "--column") ||
                  !strcmp(a, "--column2");
    if (has_val && i + 1 >= argc) return usage_error("option %s needs a value", a);
    if (!strcmp(a, "--max-len")) {
      if (!parse_int(argv[++i], 2, &max_len)) return usage_error("--max-len wants an integer >= 2, got '%s'", argv[i]);
    } else if (!strcmp(a, "--tsv")) {
      tsv = argv[++i];
    } else if (!strcmp(a, "--column")) {
      if (!parse_int(argv[++i], 0, &col)) return usage_error("--column wants an integer >= 0, got '%s'", argv[i]);
    } else if (!strcmp(a, "--column2")) {
      if (!parse_int(argv[++i], 0, &col2)) return usage_error("--column2 wants an integer >= 0, got '%s'", argv[i]);
    } else if (!strcmp(a, "--skip-header")) {
      skip_header = 1;
    } else if (a[0] == '-' && a[1] == '-') {
      return usage_error("unknown option '%s'", a);
    } else if (npos < 3) {
      pos[npos++] = a;
    } else {
      return usage_error("unexpected argument '%s'", a);
    }
  }
  if (npos == 0) return usage_error("%s", "missing MODEL_DIR");
  if (tsv) {
    if (npos > 1) return usage_error("text arguments ('%s') cannot be combined with --tsv", pos[1]);
    if (col < 0) return usage_error("%s", "--tsv needs --column N");
  } else {
    if (npos < 2) return usage_error("%s", "missing TEXT (or --tsv FILE)");
    if (col >= 0 || col2 >= 0 || skip_header) return usage_error("%s", "--column/--column2/--skip-header need --tsv");
  }
  if (max_len < 3 && (tsv ? col2 >= 0 : npos == 3))
    return usage_error("--max-len %s is too short for a pair (needs >= 3)", "2");

  af_tokenizer *tok = NULL;
  if (af_tokenizer_load(pos[0], NULL, &tok) != AF_OK) return af_cli_report("tokenize");
  int rc = tsv ? run_tsv(tok, tsv, col, col2, max_len, skip_header)
               : show(tok, pos[1], npos == 3 ? pos[2] : NULL, max_len);
  af_tokenizer_free(tok);
  return rc;
}
