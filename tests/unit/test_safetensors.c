/* safetensors reader/writer: F32/F16/BF16 round trips with exact rounding checks, the
 * fp16/bf16 converters against every bit pattern, and a table of corrupt files that each
 * must give AF_ERR_FORMAT with a message naming the file. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/model/safetensors.h"
#include "core/base/half.h"
#include "tests/testutil.h"

static void tmp_path(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", af_test_tmpdir(), name);
}

static int same_float(float a, float b) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
  uint32_t x, y;
  memcpy(&x, &a, 4);
  memcpy(&y, &b, 4);
  return x == y;
}

static void test_converters(void) {
  int bad = 0;
  /* Every non-NaN half/bfloat16 survives to float and back. */
  for (uint32_t h = 0; h < 65536; h++) {
    float f = af_f16_to_f32((uint16_t)h);
    if (!isnan(f) && af_f32_to_f16(f) != h) bad++;
    if (isnan(f) && !isnan(af_f16_to_f32(af_f32_to_f16(f)))) bad++;
    float g = af_bf16_to_f32((uint16_t)h);
    if (!isnan(g) && af_f32_to_bf16(g) != h) bad++;
    if (isnan(g) && !isnan(af_bf16_to_f32(af_f32_to_bf16(g)))) bad++;
  }
  CHECK(bad == 0);
#ifdef __FLT16_MAX__
  /* The compiler's own float -> _Float16 conversion rounds to nearest even: compare on
   * a sweep of bit patterns that covers subnormals, ties and overflow. */
  int mism = 0;
  for (uint64_t i = 0; i < (1ull << 32); i += 4099) {
    uint32_t x = (uint32_t)i;
    float f;
    memcpy(&f, &x, 4);
    if (isnan(f)) continue;
    _Float16 r = (_Float16)f;
    uint16_t want;
    memcpy(&want, &r, 2);
    if (af_f32_to_f16(f) != want) {
      if (mism < 5) fprintf(stderr, "  f16(%a): got %04x want %04x\n", (double)f, af_f32_to_f16(f), want);
      mism++;
    }
  }
  CHECK(mism == 0);
  printf("  f32->f16 matches the compiler's _Float16 conversion on a 1M-point sweep\n");
#endif
}

static void test_roundtrip(void) {
  char path[4300];
  tmp_path(path, sizeof path, "rt.safetensors");
  float a[6] = {1.0f, -2.5f, 3.14159265f, 1e-30f, -0.0f, 123456.789f};
  /* F16 cases: value, and what it must read back as. */
  const float two11 = 1.0f / 2048.0f;
  float h[] = {1.0f, 0.1f, 65504.0f, 65520.0f, 1e-8f, 3e-8f, -2.5f, NAN, 1.0f + two11, 1.0f + 3 * two11, 6.1e-5f, -70000.0f};
  float hw[] = {1.0f, 0.0999755859375f, 65504.0f, INFINITY, 0.0f, 5.9604644775390625e-8f, -2.5f, NAN, 1.0f,
                1.0f + 4 * two11, 6.0975551605224609e-05f, -INFINITY};
  const float two8 = 1.0f / 256.0f;
  float b[] = {1.0f, 1.0f + two8, 1.0f + 3 * two8, 3.14159265f, NAN, 1e38f, -0.0f, 3.4e38f};
  float bw[] = {1.0f, 1.0f, 1.0f + 4 * two8, 3.140625f, NAN, 9.969209968386869e+37f, -0.0f, INFINITY};
  float s = 42.0f;
  int nh = (int)(sizeof h / sizeof h[0]), nb = (int)(sizeof b / sizeof b[0]);
  af_st_write_tensor ts[] = {
      {"layer.h", AF_ST_F16, 1, {nh}, h},
      {"a.matrix", AF_ST_F32, 2, {2, 3}, a},
      {"bf", AF_ST_BF16, 2, {2, nb / 2}, b},
      {"scalar", AF_ST_F32, 0, {0}, &s},
      {"empty", AF_ST_F32, 2, {0, 3}, NULL},
  };
  CHECK_OK(af_st_write(path, ts, 5, "{\"format\":\"pt\",\"note\":\"round trip\"}"));
  af_st *st = NULL;
  CHECK_OK(af_st_open(path, &st));
  if (!st) return;
  CHECK(af_st_count(st) == 5);
  CHECK(af_st_metadata(st, "format") && !strcmp(af_st_metadata(st, "format"), "pt"));
  CHECK(af_st_metadata(st, "note") && !strcmp(af_st_metadata(st, "note"), "round trip"));
  CHECK(af_st_metadata(st, "none") == NULL);
  CHECK(af_st_find(st, "nope") == NULL);
  /* File order: F32 first (widest), every tensor aligned to its element size. */
  for (int i = 0; i < af_st_count(st); i++) {
    const af_st_tensor *t = af_st_get(st, i);
    CHECK(((uintptr_t)t->data % af_st_dtype_size(t->dtype)) == 0);
  }
  CHECK(af_st_get(st, 0)->dtype == AF_ST_F32);

  const af_st_tensor *t = af_st_find(st, "a.matrix");
  CHECK(t && t->dtype == AF_ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->numel == 6);
  float out[16];
  if (t) {
    CHECK_OK(af_st_read_f32(st, t, out));
    for (int i = 0; i < 6; i++) CHECK(same_float(out[i], a[i]));
  }
  t = af_st_find(st, "layer.h");
  CHECK(t && t->dtype == AF_ST_F16 && t->nbytes == (size_t)nh * 2);
  if (t) {
    CHECK_OK(af_st_read_f32(st, t, out));
    for (int i = 0; i < nh; i++)
      if (!same_float(out[i], hw[i])) {
        af_test_failures++;
        fprintf(stderr, "  F16 %.9g read back %.9g, want %.9g\n", (double)h[i], (double)out[i], (double)hw[i]);
      }
  }
  t = af_st_find(st, "bf");
  CHECK(t && t->dtype == AF_ST_BF16 && t->ndim == 2 && t->numel == (size_t)nb);
  if (t) {
    CHECK_OK(af_st_read_f32(st, t, out));
    for (int i = 0; i < nb; i++)
      if (!same_float(out[i], bw[i])) {
        af_test_failures++;
        fprintf(stderr, "  BF16 %.9g read back %.9g, want %.9g\n", (double)b[i], (double)out[i], (double)bw[i]);
      }
  }
  t = af_st_find(st, "scalar");
  CHECK(t && t->ndim == 0 && t->numel == 1);
  if (t) {
    CHECK_OK(af_st_read_f32(st, t, out));
    CHECK(out[0] == 42.0f);
  }
  t = af_st_find(st, "empty");
  CHECK(t && t->numel == 0 && t->nbytes == 0);
  af_st_close(st);
  af_st_close(NULL);

  /* The header is 8-byte aligned and space padded, as the reference writer makes it. */
  FILE *f = fopen(path, "rb");
  unsigned char hdr[9] = {0};
  CHECK(f && fread(hdr, 1, 9, f) == 9);
  if (f) fclose(f);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = hl << 8 | hdr[i];
  CHECK(hl % 8 == 0 && hdr[8] == '{');

  /* Writer argument errors. */
  af_st_write_tensor dup[] = {{"x", AF_ST_F32, 1, {1}, &s}, {"x", AF_ST_F32, 1, {1}, &s}};
  CHECK(af_st_write(path, dup, 2, NULL) == AF_ERR_ARG);
  af_st_write_tensor i64[] = {{"x", AF_ST_I64, 1, {1}, &s}};
  CHECK(af_st_write(path, i64, 1, NULL) == AF_ERR_ARG);
  CHECK(af_st_write(path, ts, 1, "{\"n\":1}") == AF_ERR_ARG);
  /* The failed writes left the good file alone. */
  CHECK_OK(af_st_open(path, &st));
  af_st_close(st);
}

/* An image: 8-byte length, header, data. hlen_override >= 0 replaces the length field. */
static size_t image(unsigned char *buf, const char *header, size_t data_len, long long hlen_override) {
  size_t hl = strlen(header);
  uint64_t v = hlen_override >= 0 ? (uint64_t)hlen_override : hl;
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(v >> (8 * i));
  memcpy(buf + 8, header, hl);
  for (size_t i = 0; i < data_len; i++) buf[8 + hl + i] = (unsigned char)(i * 7);
  return 8 + hl + data_len;
}

static void write_bytes(const char *path, const unsigned char *b, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(b, 1, n, f) != n) { perror(path); af_test_failures++; }
  if (f) fclose(f);
}

typedef struct {
  const char *what;
  const char *header;
  size_t data_len;
  long long hlen;       /* -1: the real header length */
  long long truncate;   /* >= 0: cut the file to this many bytes */
  const char *expect;   /* substring of the message */
} bad_case;

static void test_corrupt(void) {
  static const bad_case cases[] = {
      {"empty file", "", 0, -1, 0, "too short"},
      {"4-byte file", "{}", 0, -1, 4, "too short"},
      {"truncated data", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, -1, 71,
       "extend past the end of the data"},
      {"header length past EOF", "{}      ", 0, 4096, -1, "extends past the end of the file"},
      {"header length over the cap", "{}      ", 0, 200000000, -1, "exceeds"},
      {"header not JSON", "{not json at all}", 0, -1, -1, "not valid JSON"},
      {"header not an object", "[1,2,3] ", 0, -1, -1, "JSON object"},
      {"garbage after the JSON", "{} xyz", 0, -1, -1, "unexpected bytes"},
      {"offsets past end", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}", 16, -1, -1,
       "data_offsets [16,32] extend past the end of the data (16 bytes)"},
      {"overlapping tensors",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
       16, -1, -1, "overlap"},
      {"wrong byte count", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 16, -1, -1,
       "hold 16 bytes but dtype F32 and shape [2,3] need 24"},
      {"bad dtype", "{\"w\":{\"dtype\":\"F33\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, -1, -1,
       "unknown dtype 'F33'"},
      {"missing dtype", "{\"w\":{\"shape\":[4],\"data_offsets\":[0,16]}}", 16, -1, -1, "'dtype' must be a string"},
      {"negative shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 16, -1, -1,
       "shape[0] must be a non-negative integer, found -4"},
      {"fractional shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,10]}}", 16, -1, -1,
       "shape[0] must be a non-negative integer"},
      {"string shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":\"4\",\"data_offsets\":[0,16]}}", 16, -1, -1,
       "'shape' must be an array"},
      {"end before begin", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,8]}}", 16, -1, -1,
       "end before they begin"},
      {"one offset", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16]}}", 16, -1, -1, "data_offsets"},
      {"overflowing shape",
       "{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776,1099511627776],\"data_offsets\":[0,16]}}", 16,
       -1, -1, "too large"},
      {"huge offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[1e300,1e300]}}", 16, -1, -1,
       "data_offsets"},
      {"duplicate tensor",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
       8, -1, -1, "appears twice"},
      {"metadata not strings", "{\"__metadata__\":{\"format\":1}}", 0, -1, -1, "'__metadata__'"},
      {"tensor entry not an object", "{\"w\":[1,2]}", 0, -1, -1, "expected an object"},
      {"header does not start with {", " {}     ", 0, -1, -1, "does not start"},
  };
  unsigned char buf[8192];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const bad_case *c = &cases[i];
    char path[4300], name[64];
    snprintf(name, sizeof name, "bad%02zu.safetensors", i);
    tmp_path(path, sizeof path, name);
    size_t n = image(buf, c->header, c->data_len, c->hlen);
    if (c->truncate >= 0 && (size_t)c->truncate < n) n = (size_t)c->truncate;
    write_bytes(path, buf, n);
    af_st *st = NULL;
    af_clear_error();
    af_status s = af_st_open(path, &st);
    const char *msg = af_last_error();
    if (s != AF_ERR_FORMAT || st || !strstr(msg, path) || !strstr(msg, c->expect)) {
      af_test_failures++;
      fprintf(stderr, "corrupt case '%s': got %s, message: %s (want '%s')\n", c->what, af_status_name(s), msg,
              c->expect);
    } else {
      printf("  ok %-28s %s\n", c->what, msg + strlen(af_test_tmpdir()) + 1);
    }
    af_st_close(st);
    /* The in-memory entry point agrees. */
    s = af_st_open_memory(buf, n, "mem", &st);
    CHECK(s == AF_ERR_FORMAT && st == NULL);
  }

  /* Not found and not a file: I/O errors naming the path. */
  char path[4300];
  tmp_path(path, sizeof path, "does-not-exist.safetensors");
  af_st *st = NULL;
  CHECK(af_st_open(path, &st) == AF_ERR_IO && strstr(af_last_error(), path));
  CHECK(af_st_open(af_test_tmpdir(), &st) == AF_ERR_IO && strstr(af_last_error(), "not a regular file"));

  /* Edge cases that are valid: no tensors; a tensor list with __metadata__ only; I64 data
   * listed but refused as float; F32 data at an unaligned offset. */
  size_t n = image(buf, "{}      ", 0, -1);
  CHECK_OK(af_st_open_memory(buf, n, "empty-ok", &st));
  CHECK(af_st_count(st) == 0);
  af_st_close(st);
  n = image(buf,
            "{\"__metadata__\":{\"format\":\"pt\"},\"ids\":{\"dtype\":\"I64\",\"shape\":[1,2],\"data_offsets\":[0,16]},"
            "\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[16,18]},"
            "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[18,26]}}",
            26, -1);
  float two[2] = {1.5f, -7.25f};
  size_t hl = n - 8 - 26;
  memcpy(buf + 8 + hl + 18, two, 8);
  CHECK_OK(af_st_open_memory(buf, n, "mixed", &st));
  if (st) {
    const af_st_tensor *t = af_st_find(st, "ids");
    float out[2];
    CHECK(t && t->dtype == AF_ST_I64 && af_st_read_f32(st, t, out) == AF_ERR_UNSUPPORTED &&
          strstr(af_last_error(), "I64"));
    t = af_st_find(st, "w");
    CHECK(t && af_st_read_f32(st, t, out) == AF_OK && out[0] == 1.5f && out[1] == -7.25f);
    CHECK(af_st_get(st, 0) == af_st_find(st, "ids"));  /* file order */
    af_st_close(st);
  }
}

int main(void) {
  test_converters();
  test_roundtrip();
  test_corrupt();
  return af_test_done("test_safetensors");
}
