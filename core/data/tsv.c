/* The TSV/CSV record reader (see tsv.h). Files are memory-mapped; TSV fields point into
 * the mapping, CSV fields are unquoted into a reused buffer, so a record costs no
 * allocation once the buffers have grown to the longest record. */
#include "core/data/tsv.h"
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct af_tsv {
  char name[4096];
  const char *data;
  size_t len, pos;
  int csv;
  int line;        /* line of the next unread byte (1-based) */
  int rec_line;    /* line where the current record starts */
  void *map;       /* mmap'ed region (NULL for memory input or an empty file) */
  size_t map_len;
  /* current record */
  size_t nf, cap_f;
  size_t *foff, *flen;  /* offsets into base */
  const char *base;     /* data (TSV) or buf (CSV) */
  char *buf;            /* CSV unquoted text */
  size_t buf_len, buf_cap;
};

uint64_t af_fnv1a(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

long af_utf8_check(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c == 0) return (long)i;
    if (c < 0x80) { i++; continue; }
    size_t k;
    unsigned cp, min;
    if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; min = 0x10000; }
    else return (long)i;
    if (i + k >= n) return (long)i;  /* truncated sequence */
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return (long)i;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return (long)i;
    i += k + 1;
  }
  return -1;
}

static af_status init_common(af_tsv *r, const char *name, int csv) {
  snprintf(r->name, sizeof r->name, "%s", name);
  r->csv = csv;
  r->line = 1;
  if (r->len >= 3 && (unsigned char)r->data[0] == 0xEF && (unsigned char)r->data[1] == 0xBB &&
      (unsigned char)r->data[2] == 0xBF)
    r->pos = 3;
  return AF_OK;
}

af_status af_tsv_open_mem(const char *name, const char *data, size_t len, int csv, af_tsv **out) {
  *out = NULL;
  af_tsv *r;
  AF_TRY(af_calloc((void **)&r, 1, sizeof *r, "TSV reader"));
  r->data = data;
  r->len = len;
  init_common(r, name, csv);
  *out = r;
  return AF_OK;
}

af_status af_tsv_open(const char *path, int csv, af_tsv **out) {
  *out = NULL;
  int fd = open(path, O_RDONLY);
  if (fd < 0) return AF_FAIL(AF_ERR_IO, "%s: expected a readable file, found %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return AF_FAIL(AF_ERR_IO, "%s: expected a regular file, found %s", path,
                   S_ISDIR(st.st_mode) ? "a directory" : "something else");
  }
  af_tsv *r;
  af_status s = af_calloc((void **)&r, 1, sizeof *r, "TSV reader");
  if (s != AF_OK) { close(fd); return s; }
  if (st.st_size > 0) {
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      close(fd);
      free(r);
      return AF_FAIL(AF_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    }
    madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
    r->map = m;
    r->map_len = (size_t)st.st_size;
    r->data = m;
    r->len = (size_t)st.st_size;
  } else {
    r->data = "";
  }
  close(fd);
  init_common(r, path, csv);
  *out = r;
  return AF_OK;
}

void af_tsv_close(af_tsv *r) {
  if (!r) return;
  if (r->map) munmap(r->map, r->map_len);
  free(r->foff);
  free(r->flen);
  free(r->buf);
  free(r);
}

static af_status push_field(af_tsv *r, size_t off, size_t len) {
  if (r->nf == r->cap_f) {
    size_t nc = r->cap_f ? 2 * r->cap_f : 16;
    size_t *a = realloc(r->foff, nc * sizeof *a), *b;
    if (!a) return AF_FAIL(AF_ERR_NOMEM, "out of memory for TSV fields");
    r->foff = a;
    b = realloc(r->flen, nc * sizeof *b);
    if (!b) return AF_FAIL(AF_ERR_NOMEM, "out of memory for TSV fields");
    r->flen = b;
    r->cap_f = nc;
  }
  r->foff[r->nf] = off;
  r->flen[r->nf] = len;
  r->nf++;
  return AF_OK;
}

static af_status buf_put(af_tsv *r, const char *p, size_t n) {
  if (r->buf_len + n > r->buf_cap) {
    size_t nc = r->buf_cap ? r->buf_cap : 4096;
    while (nc < r->buf_len + n) nc *= 2;
    char *b = realloc(r->buf, nc);
    if (!b) return AF_FAIL(AF_ERR_NOMEM, "out of memory for a CSV record of %zu bytes", r->buf_len + n);
    r->buf = b;
    r->buf_cap = nc;
  }
  memcpy(r->buf + r->buf_len, p, n);
  r->buf_len += n;
  return AF_OK;
}

static af_status next_tsv(af_tsv *r, int *got) {
  while (r->pos < r->len) {
    const char *start = r->data + r->pos;
    const char *nl = memchr(start, '\n', r->len - r->pos);
    size_t e = nl ? (size_t)(nl - r->data) : r->len;
    r->rec_line = r->line;
    r->pos = nl ? e + 1 : r->len;
    if (nl) r->line++;
    size_t b = (size_t)(start - r->data);
    if (e > b && r->data[e - 1] == '\r') e--;
    if (e == b) continue; /* blank line */
    r->nf = 0;
    r->base = r->data;
    size_t f = b;
    for (;;) {
      const char *tab = memchr(r->data + f, '\t', e - f);
      size_t fe = tab ? (size_t)(tab - r->data) : e;
      AF_TRY(push_field(r, f, fe - f));
      if (!tab) break;
      f = fe + 1;
    }
    *got = 1;
    return AF_OK;
  }
  *got = 0;
  return AF_OK;
}

static const char *show_char(char c, char *tmp) {
  unsigned char u = (unsigned char)c;
  if (u >= 0x20 && u < 0x7F) snprintf(tmp, 8, "'%c'", c);
  else snprintf(tmp, 8, "0x%02x", u);
  return tmp;
}

static af_status next_csv(af_tsv *r, int *got) {
  const char *d = r->data;
  /* skip blank lines */
  for (;;) {
    if (r->pos >= r->len) { *got = 0; return AF_OK; }
    if (d[r->pos] == '\n') { r->pos++; r->line++; continue; }
    if (d[r->pos] == '\r' && (r->pos + 1 == r->len || d[r->pos + 1] == '\n')) {
      r->pos += (r->pos + 1 == r->len) ? 1 : 2;
      if (r->pos <= r->len && d[r->pos - 1] == '\n') r->line++;
      continue;
    }
    break;
  }
  r->rec_line = r->line;
  r->nf = 0;
  r->buf_len = 0;
  for (;;) { /* one field per iteration */
    size_t off = r->buf_len;
    int end_rec = 0;
    if (r->pos < r->len && d[r->pos] == '"') {
      int qline = r->line;
      r->pos++;
      for (;;) {
        if (r->pos >= r->len)
          return AF_FAIL(AF_ERR_FORMAT, "%s:%d: expected a closing '\"' for the field opened here, found end of file",
                         r->name, qline);
        /* copy a run without quotes */
        const char *q = memchr(d + r->pos, '"', r->len - r->pos);
        size_t run_end = q ? (size_t)(q - d) : r->len;
        for (size_t i = r->pos; i < run_end; i++)
          if (d[i] == '\n') r->line++;
        AF_TRY(buf_put(r, d + r->pos, run_end - r->pos));
        r->pos = run_end;
        if (!q) continue;  /* reports the unterminated quote above */
        if (r->pos + 1 < r->len && d[r->pos + 1] == '"') {
          AF_TRY(buf_put(r, "\"", 1));
          r->pos += 2;
          continue;
        }
        r->pos++;
        break;
      }
      if (r->pos >= r->len) end_rec = 1;
      else if (d[r->pos] == ',') r->pos++;
      else if (d[r->pos] == '\n') { r->pos++; r->line++; end_rec = 1; }
      else if (d[r->pos] == '\r' && (r->pos + 1 == r->len || d[r->pos + 1] == '\n')) {
        r->pos++;
        if (r->pos < r->len) { r->pos++; r->line++; }
        end_rec = 1;
      } else {
        char tmp[8];
        return AF_FAIL(AF_ERR_FORMAT, "%s:%d: expected ',' or end of line after a closing '\"', found %s",
                       r->name, r->line, show_char(d[r->pos], tmp));
      }
    } else {
      size_t b = r->pos, e = b;
      while (e < r->len && d[e] != ',' && d[e] != '\n') e++;
      size_t fe = e;
      if (e < r->len && d[e] == '\n' && fe > b && d[fe - 1] == '\r') fe--;
      else if (e == r->len && fe > b && d[fe - 1] == '\r') fe--;
      AF_TRY(buf_put(r, d + b, fe - b));
      if (e >= r->len) { r->pos = r->len; end_rec = 1; }
      else if (d[e] == ',') r->pos = e + 1;
      else { r->pos = e + 1; r->line++; end_rec = 1; }
    }
    AF_TRY(push_field(r, off, r->buf_len - off));
    if (end_rec) break;
    if (r->pos >= r->len) { /* trailing comma at end of file: one more empty field */
      AF_TRY(push_field(r, r->buf_len, 0));
      break;
    }
  }
  r->base = r->buf ? r->buf : "";
  *got = 1;
  return AF_OK;
}

af_status af_tsv_next(af_tsv *r, int *got) {
  *got = 0;
  return r->csv ? next_csv(r, got) : next_tsv(r, got);
}

size_t af_tsv_nfields(const af_tsv *r) { return r->nf; }

const char *af_tsv_field(const af_tsv *r, size_t i, size_t *len) {
  if (i >= r->nf) { if (len) *len = 0; return ""; }
  if (len) *len = r->flen[i];
  return r->base + r->foff[i];
}

int af_tsv_line(const af_tsv *r) { return r->rec_line; }
const char *af_tsv_name(const af_tsv *r) { return r->name; }
