/* The TSV/CSV record reader: GLUE TSV without quoting, RFC-4180 CSV (embedded commas,
 * newlines, doubled quotes), BOM, CRLF, blank lines, line numbers, syntax errors, UTF-8. */
#include <stdio.h>
#include <string.h>
#include "core/data/tsv.h"
#include "tests/testutil.h"

static int field_is(const af_tsv *r, size_t i, const char *want) {
  size_t n;
  const char *f = af_tsv_field(r, i, &n);
  if (n == strlen(want) && !memcmp(f, want, n)) return 1;
  fprintf(stderr, "  field %zu: got '%.*s' want '%s'\n", i, (int)n, f, want);
  return 0;
}

static void test_tsv_basic(void) {
  /* BOM, CRLF, a blank line, a literal quote (GLUE: no quoting), an empty field */
  const char data[] = "\xEF\xBB\xBFh1\th2\th3\r\n\"a\tb c\t\r\n\r\nx\t\ty\n";
  af_tsv *r;
  CHECK_OK(af_tsv_open_mem("mem.tsv", data, sizeof data - 1, 0, &r));
  int got;
  CHECK_OK(af_tsv_next(r, &got));
  CHECK(got && af_tsv_nfields(r) == 3 && field_is(r, 0, "h1") && field_is(r, 2, "h3") && af_tsv_line(r) == 1);
  CHECK_OK(af_tsv_next(r, &got));
  CHECK(got && af_tsv_nfields(r) == 3 && field_is(r, 0, "\"a") && field_is(r, 1, "b c") && field_is(r, 2, ""));
  CHECK(af_tsv_line(r) == 2);
  CHECK_OK(af_tsv_next(r, &got));
  CHECK(got && af_tsv_line(r) == 4 && af_tsv_nfields(r) == 3 && field_is(r, 1, "") && field_is(r, 2, "y"));
  CHECK_OK(af_tsv_next(r, &got));
  CHECK(!got);
  af_tsv_close(r);
}

static void test_csv_quoting(void) {
  const char data[] =
      "\"3\",\"Wall St. Bears, Claw\",\"Reuters - Short \"\"sellers\"\", ultra-cynics\"\r\n"
      "1,\"two\nlines\",plain text\n"
      "\n"
      "2,,\"\"\n"
      "4,\"crlf\r\ninside\",end";
  af_tsv *r;
  CHECK_OK(af_tsv_open_mem("mem.csv", data, sizeof data - 1, 1, &r));
  int got;
  CHECK_OK(af_tsv_next(r, &got));
  CHECK(got && af_tsv_nfields(r) == 3 && field_is(r, 0, "3") && field_is(r, 1, "Wall St. Bears, Claw") &&
        field_is(r, 2, "Reuters - Short \"sellers\", ultra-cynics") && af_tsv_line(r) == 1);
  CHECK_OK(af_tsv_next(r, &got));
  CHECK(got && af_tsv_nfields(r) == 3 && field_is(r, 1, "two\nlines") && field_is(r, 2, "plain text") &&
        af_tsv_line(r) == 2);
  CHECK_OK(af_tsv_next(r, &got));
  CHECK(got && af_tsv_nfields(r) == 3 && field_is(r, 1, "") && field_is(r, 2, "") && af_tsv_line(r) == 5);
  CHECK_OK(af_tsv_next(r, &got));
  CHECK(got && af_tsv_nfields(r) == 3 && field_is(r, 1, "crlf\r\ninside") && field_is(r, 2, "end") &&
        af_tsv_line(r) == 6);
  CHECK_OK(af_tsv_next(r, &got));
  CHECK(!got);
  af_tsv_close(r);
}

static void expect_csv_error(const char *data, const char *want) {
  af_tsv *r;
  CHECK_OK(af_tsv_open_mem("bad.csv", data, strlen(data), 1, &r));
  int got = 1;
  af_status s = AF_OK;
  while (s == AF_OK && got) s = af_tsv_next(r, &got);
  CHECK(s == AF_ERR_FORMAT);
  if (!strstr(af_last_error(), want)) {
    fprintf(stderr, "  error '%s' lacks '%s'\n", af_last_error(), want);
    af_test_failures++;
  }
  af_tsv_close(r);
}

static void test_csv_errors(void) {
  expect_csv_error("a,b\n1,\"open\nstill open", "bad.csv:2: expected a closing '\"'");
  expect_csv_error("a,b\n\"x\"y,2\n", "bad.csv:2: expected ',' or end of line after a closing '\"', found 'y'");
}

static void test_files(void) {
  char path[4200];
  snprintf(path, sizeof path, "%s/t.tsv", af_test_tmpdir());
  FILE *f = fopen(path, "w");
  fputs("a\tb\nc\td", f);  /* no final newline */
  fclose(f);
  af_tsv *r;
  CHECK_OK(af_tsv_open(path, 0, &r));
  int got, rows = 0;
  while (af_tsv_next(r, &got) == AF_OK && got) rows++;
  CHECK(rows == 2 && field_is(r, 1, "d"));
  af_tsv_close(r);
  snprintf(path, sizeof path, "%s/missing.tsv", af_test_tmpdir());
  CHECK(af_tsv_open(path, 0, &r) == AF_ERR_IO && strstr(af_last_error(), "missing.tsv: expected a readable file"));
  /* empty file: no records */
  snprintf(path, sizeof path, "%s/empty.csv", af_test_tmpdir());
  f = fopen(path, "w");
  fclose(f);
  CHECK_OK(af_tsv_open(path, 1, &r));
  CHECK_OK(af_tsv_next(r, &got));
  CHECK(!got);
  af_tsv_close(r);
  af_tsv_close(NULL);
}

static void test_utf8(void) {
  CHECK(af_utf8_check("plain", 5) == -1);
  CHECK(af_utf8_check("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80", 14) == -1);
  CHECK(af_utf8_check("ab\xff", 3) == 2);
  CHECK(af_utf8_check("a\xc3", 2) == 1);            /* truncated */
  CHECK(af_utf8_check("\xc0\xaf", 2) == 0);         /* overlong */
  CHECK(af_utf8_check("\xe0\x80\xaf", 3) == 0);     /* overlong 3-byte */
  CHECK(af_utf8_check("\xed\xa0\x80", 3) == 0);     /* surrogate */
  CHECK(af_utf8_check("\xf4\x90\x80\x80", 4) == 0); /* > U+10FFFF */
  CHECK(af_utf8_check("a\0b", 3) == 1);             /* NUL */
  CHECK(af_fnv1a(AF_FNV_INIT, "a", 1) == 0xaf63dc4c8601ec8cULL);  /* published FNV-1a 64 test vector */
}

int main(void) {
  test_tsv_basic();
  test_csv_quoting();
  test_csv_errors();
  test_files();
  test_utf8();
  return af_test_done("test_tsv");
}
