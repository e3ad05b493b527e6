/* libFuzzer target for the tokenizer: arbitrary bytes (invalid UTF-8 included) through
 * af_tokenize with a small output cap, and through af_encode as a pair split at a byte
 * chosen by the input, with a small max_len. The vocabulary is
 * tests/fixtures/vocab-uncased.txt, found through $AF_SOURCE_DIR, else from this file's
 * own path (__FILE__ is absolute in CMake builds), symlinked into a temp model dir. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/data/tokenizer.h"

static af_tokenizer *tok_unc, *tok_cased;

static void source_dir(char *out, size_t cap) {
  const char *env = getenv("AF_SOURCE_DIR");
  if (env) { snprintf(out, cap, "%s", env); return; }
  snprintf(out, cap, "%s", __FILE__);
  char *p = strstr(out, "tests/fuzz/fuzz_tokenizer.c");
  if (p) *p = 0;
  if (!out[0] || p == out) snprintf(out, cap, ".");
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  char src[4096], vocab[4200], dir[] = "/tmp/fuzz_tokenizer.XXXXXX", link[4200];
  source_dir(src, sizeof src);
  snprintf(vocab, sizeof vocab, "%s/tests/fixtures/vocab-uncased.txt", src);
  if (!mkdtemp(dir)) { perror("mkdtemp"); abort(); }
  snprintf(link, sizeof link, "%s/vocab.txt", dir);
  if (symlink(vocab, link) != 0) { perror("symlink"); abort(); }
  af_tokenizer_opts cased = {0, 0, -1};
  if (af_tokenizer_load(dir, NULL, &tok_unc) != AF_OK || af_tokenizer_load(dir, &cased, &tok_cased) != AF_OK) {
    fprintf(stderr, "fuzz_tokenizer: %s (set AF_SOURCE_DIR to the source tree)\n", af_last_error());
    abort();
  }
  unlink(link);
  rmdir(dir);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  int32_t ids[16];
  size_t n = 0, n2 = 0;
  const af_tokenizer *t = (size && (data[0] & 1)) ? tok_cased : tok_unc;
  if (af_tokenize(t, s, size, ids, 16, &n) != AF_OK) abort();
  int32_t *all = malloc((n ? n : 1) * sizeof *all);
  if (af_tokenize(t, s, size, all, n, &n2) != AF_OK || n2 != n) abort();
  for (size_t i = 0; i < n; i++) {
    if (all[i] < 0 || all[i] >= af_tokenizer_vocab_size(t)) abort();
    if (i < 16 && all[i] != ids[i]) abort(); /* the cap never changes the ids */
  }
  free(all);
  size_t cut = size ? data[size - 1] % (size + 1) : 0;
  int max_len = size ? 3 + data[0] % 14 : 3;
  af_encoding e;
  if (af_encode(t, s, cut, s + cut, size - cut, max_len, &e) != AF_OK) abort();
  if (e.len > max_len || e.len < 3 || e.ids[0] != af_tokenizer_cls(t) || e.ids[e.len - 1] != af_tokenizer_sep(t) ||
      e.type_ids[e.len - 1] != 1)
    abort();
  af_encoding_free(&e);
  if (af_encode(t, s, size, NULL, 0, max_len - 1, &e) != AF_OK || e.len > max_len - 1) abort();
  af_encoding_free(&e);
  return 0;
}
