/* `autofreeze bench tokenize`: single-core tokenizer throughput (MB/s of UTF-8 input,
 * tokens/s) on a given text file (one text per line, tabs included) or, by default, on
 * generated English-like text drawn from the vocabulary plus a multilingual mix. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/bench/bench.h"
#include "core/cli/cli.h"
#include "core/data/tokenizer.h"

typedef struct {
  char *data;     /* all lines, '\n'-separated */
  size_t bytes;
  size_t *start;  /* [n] line starts */
  size_t *len;    /* [n] line lengths */
  size_t n;
} corpus;

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int index_lines(corpus *c) {
  size_t cap = 1024;
  c->start = malloc(cap * sizeof *c->start);
  c->len = malloc(cap * sizeof *c->len);
  c->n = 0;
  for (size_t p = 0; p < c->bytes;) {
    char *nl = memchr(c->data + p, '\n', c->bytes - p);
    size_t e = nl ? (size_t)(nl - c->data) : c->bytes;
    if (c->n == cap) {
      cap *= 2;
      c->start = realloc(c->start, cap * sizeof *c->start);
      c->len = realloc(c->len, cap * sizeof *c->len);
    }
    if (!c->start || !c->len) return 0;
    c->start[c->n] = p;
    c->len[c->n++] = e - p;
    p = e + 1;
  }
  return c->n > 0;
}

static unsigned long long rng_state = 88172645463325252ULL;
static unsigned rnd(unsigned n) {
  rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
  return (unsigned)(rng_state % n);
}

/* English-like text: whole-word vocabulary entries, biased to the frequent ones (BERT's
 * vocab is roughly frequency-ordered after the first ~2000 entries), with capitals,
 * punctuation and numbers. Mixed: the same with accented, Cyrillic, Greek and CJK text. */
static int generate(const af_tokenizer *tok, int mixed, size_t target, corpus *c) {
  int V = af_tokenizer_vocab_size(tok);
  int *words = malloc((size_t)V * sizeof *words), nw = 0;
  if (!words) return 0;
  for (int i = 0; i < V; i++) {
    const char *t = af_tokenizer_token(tok, i);
    int ok = t[0] >= 'a' && t[0] <= 'z';
    for (const char *p = t; ok && *p; p++) ok = *p >= 'a' && *p <= 'z';
    if (ok) words[nw++] = i;
  }
  static const char *foreign[] = {"naïve", "café", "résumé", "Zürich", "Привет", "мир", "Καλημέρα",
                                  "κόσμε", "你好世界", "東京", "ﬁnance", "Ångström", "😀", "İstanbul"};
  static const char *punct[] = {",", ".", ";", ":", "!", "?", "'s", " -", "\"", ")"};
  c->data = malloc(target + 512);
  if (!c->data || nw == 0) { free(words); return 0; }
  size_t p = 0;
  while (p < target) {
    int nwords = 5 + (int)rnd(30);
    for (int k = 0; k < nwords; k++) {
      const char *w;
      char num[16];
      unsigned r = rnd(100);
      if (mixed && r < 15) w = foreign[rnd(sizeof foreign / sizeof *foreign)];
      else if (r < 18) { snprintf(num, sizeof num, "%u", rnd(100000)); w = num; }
      else w = af_tokenizer_token(tok, words[rnd(nw) < (unsigned)nw / 2 ? rnd((unsigned)nw / 8) : rnd((unsigned)nw)]);
      size_t L = strlen(w);
      if (p + L + 8 > target + 500) break;
      if (k) c->data[p++] = ' ';
      memcpy(c->data + p, w, L);
      if (k == 0 || rnd(20) == 0) c->data[p] = (char)(c->data[p] >= 'a' && c->data[p] <= 'z' ? c->data[p] - 32 : c->data[p]);
      p += L;
      if (rnd(8) == 0) {
        const char *q = punct[rnd(sizeof punct / sizeof *punct)];
        memcpy(c->data + p, q, strlen(q));
        p += strlen(q);
      }
    }
    c->data[p++] = '.';
    c->data[p++] = '\n';
  }
  c->bytes = p;
  free(words);
  return index_lines(c);
}

static int load_file(const char *path, corpus *c) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  size_t cap = 1 << 20;
  c->data = malloc(cap);
  c->bytes = 0;
  size_t r;
  while (c->data && (r = fread(c->data + c->bytes, 1, cap - c->bytes, f)) > 0) {
    c->bytes += r;
    if (c->bytes == cap) c->data = realloc(c->data, cap *= 2);
  }
  fclose(f);
  return c->data && index_lines(c);
}

static void corpus_free(corpus *c) {
  free(c->data);
  free(c->start);
  free(c->len);
}

/* Tokenize every line, over and over, for at least `seconds` of CPU time; rates use this
 * thread's CPU time (the best pass), so a busy shared machine does not halve them; the
 * cpu% column says how much of the wall time the thread actually ran. */
static void measure(const af_tokenizer *tok, const corpus *c, const char *label, double seconds, int encode) {
  int32_t ids[8192];
  double best = 1e30, total = 0, wall = clock_s(CLOCK_MONOTONIC);
  size_t tokens = 0;
  int passes = 0;
  while (total < seconds || passes < 2) {
    double t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    tokens = 0;
    for (size_t i = 0; i < c->n; i++) {
      const char *s = c->data + c->start[i];
      if (encode) {
        af_encoding e;
        af_encode(tok, s, c->len[i], NULL, 0, 128, &e);
        tokens += (size_t)e.len;
        af_encoding_free(&e);
      } else {
        size_t n;
        af_tokenize(tok, s, c->len[i], ids, 8192, &n);
        tokens += n;
      }
    }
    double dt = clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;
    if (dt < best) best = dt;
    total += dt;
    passes++;
  }
  wall = clock_s(CLOCK_MONOTONIC) - wall;
  printf("  %-26s %9.1f %12.2f %12.0f %7d %6.0f%%\n", label, (double)c->bytes / best / 1e6,
         (double)tokens / best / 1e6, (double)c->n / best, passes, 100 * total / wall);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: autofreeze bench tokenize [--model DIR] [--file FILE] [--seconds S]\n\n"
          "Single-core tokenizer throughput on FILE (one text per line) or on generated\n"
          "English-like and multilingual text (about 4 MB each).\n\n"
          "  --model DIR    model directory with vocab.txt (default models/all-MiniLM-L6-v2)\n"
          "  --file FILE    text to tokenize, one example per line\n"
          "  --seconds S    time per measurement (default 2)\n");
}

int af_bench_tokenize(int argc, char **argv) {
  const char *model = "models/all-MiniLM-L6-v2", *file = NULL;
  double seconds = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return AF_EXIT_OK; }
    if (i + 1 >= argc || (strcmp(a, "--model") && strcmp(a, "--file") && strcmp(a, "--seconds"))) {
      fprintf(stderr, "autofreeze bench tokenize: unknown option or missing value '%s'\n", a);
      usage(stderr);
      return AF_EXIT_USAGE;
    }
    const char *v = argv[++i];
    if (!strcmp(a, "--model")) model = v;
    else if (!strcmp(a, "--file")) file = v;
    else {
      char *end;
      seconds = strtod(v, &end);
      if (*end || !(seconds > 0 && seconds < 3600)) {
        fprintf(stderr, "autofreeze bench tokenize: --seconds wants a positive number, got '%s'\n", v);
        return AF_EXIT_USAGE;
      }
    }
  }
  af_tokenizer *tok;
  if (af_tokenizer_load(model, NULL, &tok) != AF_OK) return af_cli_report("bench tokenize");
  corpus c[2];
  memset(c, 0, sizeof c);
  const char *names[2];
  int nc = 0;
  if (file) {
    if (!load_file(file, &c[0])) {
      fprintf(stderr, "autofreeze bench tokenize: cannot read %s: %s\n", file, errno ? strerror(errno) : "empty");
      af_tokenizer_free(tok);
      corpus_free(&c[0]);
      return AF_EXIT_RUNTIME;
    }
    names[nc++] = file;
  } else {
    if (!generate(tok, 0, 4 << 20, &c[nc])) goto nomem;
    names[nc++] = "English-like";
    if (!generate(tok, 1, 4 << 20, &c[nc])) goto nomem;
    names[nc++] = "multilingual mix";
  }
  printf("bench tokenize: model %s, 1 thread, rates per CPU-second (best pass of >= %.1f s)\n", model, seconds);
  printf("  %-26s %9s %12s %12s %7s %7s\n", "text / operation", "MB/s", "Mtokens/s", "texts/s", "passes", "cpu%");
  for (int i = 0; i < nc; i++) {
    char label[64];
    printf("  %s: %.1f MB, %zu texts\n", names[i], (double)c[i].bytes / 1e6, c[i].n);
    snprintf(label, sizeof label, "af_tokenize");
    measure(tok, &c[i], label, seconds, 0);
    snprintf(label, sizeof label, "af_encode max_len=128");
    measure(tok, &c[i], label, seconds, 1);
  }
  for (int i = 0; i < nc; i++) corpus_free(&c[i]);
  af_tokenizer_free(tok);
  return AF_EXIT_OK;
nomem:
  for (int i = 0; i < 2; i++) corpus_free(&c[i]);
  af_tokenizer_free(tok);
  fprintf(stderr, "autofreeze bench tokenize: out of memory generating text\n");
  return AF_EXIT_RUNTIME;
}
