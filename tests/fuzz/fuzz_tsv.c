/* libFuzzer target for the TSV/CSV reader: the first byte picks the format (odd: CSV), the
 * rest is the file. Every field of every record is read and UTF-8-checked; a syntax error
 * must stop with AF_ERR_FORMAT and a message, never read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/data/tsv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int csv = data[0] & 1;
  /* a private copy so reads past the end are caught by ASan */
  char *buf = malloc(size - 1 ? size - 1 : 1);
  if (!buf) return 0;
  memcpy(buf, data + 1, size - 1);
  af_tsv *r;
  if (af_tsv_open_mem("fuzz", buf, size - 1, csv, &r) != AF_OK) { free(buf); return 0; }
  int got = 0, last_line = 0;
  size_t sum = 0;
  for (int records = 0; records < 100000; records++) {
    af_status s = af_tsv_next(r, &got);
    if (s != AF_OK) {
      if (s != AF_ERR_FORMAT || !af_last_error()[0]) abort();
      break;
    }
    if (!got) break;
    if (af_tsv_line(r) < last_line || af_tsv_nfields(r) < 1) abort();  /* lines never go back */
    last_line = af_tsv_line(r);
    for (size_t i = 0; i < af_tsv_nfields(r); i++) {
      size_t n;
      const char *f = af_tsv_field(r, i, &n);
      if (n > size) abort();
      for (size_t j = 0; j < n; j++) sum += (unsigned char)f[j];
      (void)af_utf8_check(f, n);
    }
  }
  af_tsv_close(r);
  free(buf);
  return (int)(sum & 0);
}
