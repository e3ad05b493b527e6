/* A record reader for the two table formats datasets ship in: GLUE-style TSV (tab
 * separated, no quoting at all: a '"' is an ordinary character, as GLUE's own loaders
 * read it) and CSV with RFC-4180 quoting (fields in "...", "" for a quote, newlines
 * allowed inside quotes). Both accept a UTF-8 BOM and CRLF line ends (the CR is
 * stripped) and skip blank lines. The reader memory-maps the file (or reads a buffer)
 * and hands out one record at a time; field pointers stay valid until the next call. */
#ifndef AF_TSV_H
#define AF_TSV_H
#include <stddef.h>
#include <stdint.h>
#include "core/base/status.h"

typedef struct af_tsv af_tsv;

/* csv = 0: tab separated, no quoting; csv = 1: comma separated, RFC-4180 quoting.
 * A missing file is AF_ERR_IO "PATH: expected a readable file, found <strerror>". */
af_status af_tsv_open(const char *path, int csv, af_tsv **r);
/* Read from memory (not copied; must outlive the reader). name is used in messages. */
af_status af_tsv_open_mem(const char *name, const char *data, size_t len, int csv, af_tsv **r);
void af_tsv_close(af_tsv *r);  /* NULL is fine */

/* Next record: *got = 1 and the fields, or *got = 0 at the end of the file. A CSV syntax
 * error (unterminated quote, text after a closing quote) is AF_ERR_FORMAT
 * "FILE:LINE: expected ..., found ..."; the reader cannot resynchronise after it. */
af_status af_tsv_next(af_tsv *r, int *got);
size_t af_tsv_nfields(const af_tsv *r);
/* Field i of the current record (not NUL-terminated in general; len in bytes). */
const char *af_tsv_field(const af_tsv *r, size_t i, size_t *len);
int af_tsv_line(const af_tsv *r);       /* 1-based line where the current record starts */
const char *af_tsv_name(const af_tsv *r);

/* Validate UTF-8 (no overlongs, no surrogates, no NUL). Returns -1 when valid, else the
 * byte offset of the first bad byte. */
long af_utf8_check(const char *s, size_t n);

/* 64-bit FNV-1a, chainable: h = af_fnv1a(h, data, n), start with AF_FNV_INIT. */
#define AF_FNV_INIT 0xcbf29ce484222325ULL
uint64_t af_fnv1a(uint64_t h, const void *data, size_t n);

#endif
