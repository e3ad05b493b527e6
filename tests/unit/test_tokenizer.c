/* The tokenizer against Hugging Face's: every id of every entry of
 * tests/fixtures/tokenizer_golden.jsonl (made by tests/reference/make_tokenizer_golden.py),
 * then edge cases by hand: empty and blank text, the 100-char [UNK] rule, invalid UTF-8,
 * truncation, the output cap, vocabulary errors and tokenizer_config.json. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/data/tokenizer.h"
#include "tests/testutil.h"

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
  fclose(f);
  if (b) b[n] = 0;
  if (len) *len = (size_t)n;
  return b;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (!f) { perror(path); exit(1); }
  fputs(text, f);
  fclose(f);
}

/* A model directory holding only the fixture vocabulary (and optionally a config). */
static const char *model_dir(const char *name, const char *config_json) {
  static char dirs[8][4096];
  static int nd;
  char *d = dirs[nd++ % 8];
  snprintf(d, 4096, "%s/%s", af_test_tmpdir(), name);
  mkdir(d, 0700);
  char src[4096], dst[4096 + 64];
  snprintf(src, sizeof src, "%s/tests/fixtures/vocab-uncased.txt", af_test_source_dir());
  snprintf(dst, sizeof dst, "%s/vocab.txt", d);
  unlink(dst);
  if (symlink(src, dst) != 0) { perror("symlink"); exit(1); }
  if (config_json) {
    snprintf(dst, sizeof dst, "%s/tokenizer_config.json", d);
    write_file(dst, config_json);
  }
  return d;
}

static void print_ids(const char *label, const int32_t *ids, int n) {
  fprintf(stderr, "    %s:", label);
  for (int i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
  fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

static void test_golden(const af_tokenizer *unc, const af_tokenizer *cas) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/fixtures/tokenizer_golden.jsonl", af_test_source_dir());
  size_t len;
  char *data = slurp(path, &len);
  if (!data) {
    fprintf(stderr, "cannot read %s\n", path);
    af_test_failures++;
    return;
  }
  int entries = 0, bad = 0, ids_checked = 0, line = 0;
  for (char *p = data; *p;) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = 0;
    line++;
    cJSON *j = cJSON_Parse(p);
    p = nl ? nl + 1 : p + strlen(p);
    if (!j) { fprintf(stderr, "%s:%d: bad JSON\n", path, line); bad++; continue; }
    const cJSON *a = cJSON_GetObjectItem(j, "a"), *b = cJSON_GetObjectItem(j, "b");
    const cJSON *ml = cJSON_GetObjectItem(j, "max_len"), *ids = cJSON_GetObjectItem(j, "ids");
    const cJSON *tids = cJSON_GetObjectItem(j, "type_ids"), *c = cJSON_GetObjectItem(j, "case");
    const af_tokenizer *t = strcmp(c->valuestring, "cased") ? unc : cas;
    int max_len = ml->valueint ? ml->valueint : INT_MAX;
    const char *bs = cJSON_IsString(b) ? b->valuestring : NULL;
    af_encoding e;
    /* cJSON decodes "\u0000" into the buffer but strlen would stop there: use the lengths. */
    size_t alen = (size_t)cJSON_GetObjectItem(j, "alen")->valueint;
    size_t blen = (size_t)cJSON_GetObjectItem(j, "blen")->valueint;
    af_status s = af_encode(t, a->valuestring, alen, bs, blen, max_len, &e);
    int n = cJSON_GetArraySize(ids), ok = s == AF_OK && e.len == n;
    for (int i = 0; ok && i < n; i++)
      ok = e.ids[i] == cJSON_GetArrayItem(ids, i)->valueint && e.type_ids[i] == cJSON_GetArrayItem(tids, i)->valueint;
    if (ok && !bs && max_len == INT_MAX) { /* af_tokenize alone gives the ids between [CLS] and [SEP] */
      int32_t buf[4096];
      size_t k;
      af_tokenize(t, a->valuestring, alen, buf, 4096, &k);
      ok = (int)k == n - 2 && (k == 0 || !memcmp(buf, e.ids + 1, k * sizeof *buf));
    }
    ids_checked += n;
    if (!ok) {
      if (bad < 10) {
        char *js = cJSON_PrintUnformatted(j);
        fprintf(stderr, "  golden line %d mismatch (%s): %.300s\n", line, s ? af_last_error() : "", js);
        free(js);
        if (s == AF_OK) print_ids("got", e.ids, e.len);
      }
      bad++;
    }
    entries++;
    af_encoding_free(&e);
    cJSON_Delete(j);
  }
  free(data);
  printf("golden: %d entries, %d ids, %d mismatching entries %s\n", entries, ids_checked, bad, bad ? "FAIL" : "ok");
  if (bad) af_test_failures++;
  CHECK(entries >= 2000);
}

static size_t tok(const af_tokenizer *t, const char *s, size_t len, int32_t *ids, size_t cap) {
  size_t n = 0;
  CHECK_OK(af_tokenize(t, s, len, ids, cap, &n));
  return n;
}

static int same_ids(const af_tokenizer *t, const char *x, size_t xl, const char *y) {
  int32_t a[256], b[256];
  size_t na = tok(t, x, xl, a, 256), nb = tok(t, y, strlen(y), b, 256);
  return na == nb && !memcmp(a, b, na * sizeof *a);
}

static void test_edges(const af_tokenizer *t) {
  int32_t ids[512];
  CHECK(af_tokenizer_vocab_size(t) == 30522);
  CHECK(af_tokenizer_cls(t) == 101 && af_tokenizer_sep(t) == 102);
  CHECK(af_tokenizer_pad(t) == 0 && af_tokenizer_unk(t) == 100);
  CHECK(af_tokenizer_id(t, "[MASK]") == 103);
  CHECK(af_tokenizer_id(t, "hello") == 7592);
  CHECK(af_tokenizer_id(t, "##s") == 2015);
  CHECK(af_tokenizer_id(t, "no-such-token") == -1);
  CHECK(af_tokenizer_token(t, 101) && !strcmp(af_tokenizer_token(t, 101), "[CLS]"));
  CHECK(af_tokenizer_token(t, -1) == NULL && af_tokenizer_token(t, 30522) == NULL);

  CHECK(tok(t, "", 0, ids, 512) == 0);
  CHECK(tok(t, NULL, 0, NULL, 0) == 0);
  CHECK(tok(t, " \t\r\n\xe3\x80\x80 ", 9, ids, 512) == 0);
  CHECK(tok(t, "\x00\x01\x7f", 3, ids, 512) == 0);

  /* 100 chars is still a word; 101 is [UNK]; chars, not bytes. */
  char w[1024];
  memset(w, 'a', 101);
  CHECK(tok(t, w, 100, ids, 512) > 1 && ids[0] != 100);
  CHECK(tok(t, w, 101, ids, 512) == 1 && ids[0] == 100);
  for (int i = 0; i < 100; i++) memcpy(w + 2 * i, "\xc3\xa9", 2); /* é x 100 = 200 bytes */
  CHECK(tok(t, w, 200, ids, 512) >= 1 && ids[0] != 100);
  CHECK(tok(t, "xyz\xe2\x80\x8bq", 7, ids, 512) >= 1);

  /* Hello, world! */
  size_t n = tok(t, "Hello, world!", 13, ids, 512);
  CHECK(n == 4 && ids[0] == 7592 && ids[1] == 1010 && ids[2] == 2088 && ids[3] == 999);
  /* The cap: full count back, only cap ids written. */
  ids[2] = -7;
  CHECK(tok(t, "Hello, world!", 13, ids, 2) == 4 && ids[2] == -7);

  /* Invalid UTF-8 becomes U+FFFD, which cleaning drops: never a crash. */
  CHECK(same_ids(t, "ab\xff" "cd", 5, "abcd"));
  CHECK(same_ids(t, "ab\xc3", 3, "ab"));                       /* truncated sequence */
  CHECK(same_ids(t, "ab\xc0\xaf" "cd", 6, "abcd"));            /* overlong '/' */
  CHECK(same_ids(t, "ab\xed\xa0\x80" "cd", 7, "abcd"));        /* surrogate */
  CHECK(same_ids(t, "ab\xf4\x90\x80\x80" "cd", 8, "abcd"));    /* > U+10FFFF */
  CHECK(same_ids(t, "\xe2\x82" "a b", 5, "a b"));              /* truncated then ASCII */
  CHECK(same_ids(t, "caf\xc3\xa9 CAF\xc3\x89", 11, "cafe cafe"));
  unsigned seed = 1;
  for (int r = 0; r < 2000; r++) { /* random bytes: ASan/UBSan builds catch overruns */
    char buf[64];
    size_t len = (size_t)(r % 64);
    for (size_t i = 0; i < len; i++) buf[i] = (char)((seed = seed * 1103515245u + 12345u) >> 16);
    tok(t, buf, len, ids, 512);
  }
  /* Special tokens in raw text match verbatim, as HF added tokens do. */
  n = tok(t, "a[MASK]b", 8, ids, 512);
  CHECK(n == 3 && ids[1] == 103);

  /* af_encode: specials, types, truncation. */
  af_encoding e;
  CHECK_OK(af_encode(t, "", 0, NULL, 0, 8, &e));
  CHECK(e.len == 2 && e.ids[0] == 101 && e.ids[1] == 102 && !e.truncated);
  af_encoding_free(&e);
  af_encoding_free(&e); /* safe twice */
  CHECK_OK(af_encode(t, "a b c d e", 9, NULL, 0, 4, &e));
  CHECK(e.len == 4 && e.ids[1] == 1037 && e.ids[3] == 102 && e.truncated);
  af_encoding_free(&e);
  CHECK_OK(af_encode(t, "a b c d e f", 11, "g h", 3, 8, &e)); /* 6+2 > 5: a keeps 3, b 2 */
  CHECK(e.len == 8 && e.truncated && e.ids[4] == 102 && e.type_ids[4] == 0 && e.type_ids[5] == 1 &&
        e.ids[7] == 102 && e.type_ids[7] == 1);
  af_encoding_free(&e);
  CHECK_OK(af_encode(t, "a b c d", 7, "e f g h", 7, 8, &e)); /* tie: a 2, b 3 */
  CHECK(e.len == 8 && e.ids[3] == 102 && e.ids[7] == 102);
  af_encoding_free(&e);
  CHECK_OK(af_encode(t, "a", 1, "", 0, 3, &e));
  CHECK(e.len == 3 && e.truncated);
  af_encoding_free(&e);
  CHECK(af_encode(t, "a", 1, NULL, 0, 1, &e) == AF_ERR_ARG);
  CHECK(af_encode(t, "a", 1, "b", 1, 2, &e) == AF_ERR_ARG);
  CHECK(strstr(af_last_error(), "max_len") != NULL);
  CHECK_OK(af_encode(t, "a", 1, NULL, 0, 2, &e));
  CHECK(e.len == 2 && e.truncated);
  af_encoding_free(&e);
}

static void expect_load_error(const char *name, const char *vocab, const char *what) {
  char d[4096], p[4200];
  snprintf(d, sizeof d, "%s/%s", af_test_tmpdir(), name);
  mkdir(d, 0700);
  if (vocab) {
    snprintf(p, sizeof p, "%s/vocab.txt", d);
    write_file(p, vocab);
  }
  af_tokenizer *t = (af_tokenizer *)1;
  af_status s = af_tokenizer_load(d, NULL, &t);
  CHECK(s != AF_OK && t == NULL);
  const char *m = af_last_error();
  if (!strstr(m, d) || !strstr(m, what)) {
    fprintf(stderr, "  %s: message '%s' should name the file and '%s'\n", name, m, what);
    af_test_failures++;
  }
}

static void test_load_errors(void) {
  expect_load_error("missing", NULL, "vocab.txt");
  expect_load_error("empty", "", "empty");
  expect_load_error("nocls", "[PAD]\n[UNK]\n[SEP]\nhello\n", "[CLS]");
  expect_load_error("nounkpad", "[CLS]\n[SEP]\nhello\n", "[UNK], [PAD]");
  expect_load_error("dup", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nhello\n", "duplicate token 'hello'");
  /* A minimal vocabulary loads; CRLF line ends and a missing final newline are fine. */
  char d[4096], p[4200];
  snprintf(d, sizeof d, "%s/tiny", af_test_tmpdir());
  mkdir(d, 0700);
  snprintf(p, sizeof p, "%s/vocab.txt", d);
  write_file(p, "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhel\r\n##lo\r\n,\r\nworld");
  af_tokenizer *t = NULL;
  CHECK_OK(af_tokenizer_load(d, NULL, &t));
  if (t) {
    int32_t ids[16];
    size_t n = tok(t, "Hello, world! hex", 17, ids, 16);
    CHECK(n == 6 && ids[0] == 4 && ids[1] == 5 && ids[2] == 6 && ids[3] == 7 && ids[4] == 1 && ids[5] == 1);
    CHECK(af_tokenizer_vocab_size(t) == 8 && af_tokenizer_id(t, "world") == 7);
  }
  af_tokenizer_free(t);
  af_tokenizer_free(NULL);
  /* Malformed config. */
  const char *bad = model_dir("badcfg", "{\"do_lower_case\": ");
  CHECK(af_tokenizer_load(bad, NULL, &t) == AF_ERR_FORMAT && t == NULL);
  CHECK(strstr(af_last_error(), "tokenizer_config.json") != NULL);
}

static void test_config(void) {
  af_tokenizer *t = NULL;
  int32_t a[32], b[32];
  /* do_lower_case false in the config: cased path, "Hello" is not "hello". */
  CHECK_OK(af_tokenizer_load(model_dir("cfgcased", "{\"do_lower_case\": false}"), NULL, &t));
  if (t) CHECK(tok(t, "Hello", 5, a, 32) >= 1 && a[0] != 7592);
  af_tokenizer_free(t);
  /* Forced options beat the config; strip_accents alone keeps case. */
  af_tokenizer_opts o = {1, 0, -1};
  CHECK_OK(af_tokenizer_load(model_dir("cfgcased2", "{\"do_lower_case\": false}"), &o, &t));
  if (t) {
    CHECK(tok(t, "Hello", 5, a, 32) == 1 && a[0] == 7592);
    size_t n1 = tok(t, "caf\xc3\xa9", 5, a, 32), n2 = tok(t, "cafe", 4, b, 32);
    CHECK(!(n1 == n2 && !memcmp(a, b, n1 * sizeof *a))); /* accents kept */
  }
  af_tokenizer_free(t);
  /* tokenize_chinese_chars false: a CJK run stays one word ([UNK] here). */
  CHECK_OK(af_tokenizer_load(model_dir("cfgcjk", "{\"tokenize_chinese_chars\": false}"), NULL, &t));
  if (t) CHECK(tok(t, "\xe4\xbd\xa0\xe5\xa5\xbd", 6, a, 32) == 1);
  af_tokenizer_free(t);
}

int main(void) {
  af_tokenizer *unc = NULL, *cas = NULL;
  af_tokenizer_opts cased = {0, 0, -1};
  CHECK_OK(af_tokenizer_load(model_dir("uncased", NULL), NULL, &unc));
  CHECK_OK(af_tokenizer_load(model_dir("cased", NULL), &cased, &cas));
  if (!unc || !cas) return af_test_done("test_tokenizer");
  test_golden(unc, cas);
  test_edges(unc);
  test_load_errors();
  test_config();
  /* The downloaded model's own vocabulary and config agree with the fixture. */
  const char *m = getenv("AF_MODEL_DIR");
  char p[4096];
  snprintf(p, sizeof p, "%s/vocab.txt", m ? m : "");
  if (m && access(p, R_OK) == 0) {
    af_tokenizer *mt = NULL;
    CHECK_OK(af_tokenizer_load(m, NULL, &mt));
    if (mt) {
      int32_t a[64], b[64];
      const char *s = "The QUICK brown f\xc3\xb6x, na\xc3\xafve caf\xc3\xa9!";
      size_t na = tok(mt, s, strlen(s), a, 64), nb = tok(unc, s, strlen(s), b, 64);
      CHECK(na == nb && !memcmp(a, b, na * sizeof *a));
    }
    af_tokenizer_free(mt);
  }
  af_tokenizer_free(unc);
  af_tokenizer_free(cas);
  return af_test_done("test_tokenizer");
}
