/* The thread-local last-error buffer behind af_fail, plus warnings. The source location is
 * appended only when AF_DEBUG is set: users need the input's location, developers ours. */
#include "core/base/status.h"
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char errbuf[2048];
static atomic_int quiet;  /* read by the cache's reader thread too */

af_status af_fail(af_status s, const char *src_file, int src_line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(errbuf, sizeof errbuf, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n < sizeof errbuf && getenv("AF_DEBUG"))
    snprintf(errbuf + n, sizeof errbuf - (size_t)n, " [%s:%d]", src_file, src_line);
  return s;
}

void af_error_prefix(const char *fmt, ...) {
  char pre[1024], old[sizeof errbuf];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pre, sizeof pre, fmt, ap);
  va_end(ap);
  memcpy(old, errbuf, sizeof old);
  size_t n = strlen(pre);
  if (n >= sizeof errbuf) n = sizeof errbuf - 1;
  memcpy(errbuf, pre, n);
  size_t rest = strnlen(old, sizeof old - 1);
  if (rest > sizeof errbuf - 1 - n) rest = sizeof errbuf - 1 - n;
  memcpy(errbuf + n, old, rest);
  errbuf[n + rest] = 0;
}

const char *af_last_error(void) { return errbuf; }
void af_clear_error(void) { errbuf[0] = 0; }

const char *af_status_name(af_status s) {
  switch (s) {
  case AF_OK: return "ok";
  case AF_ERR_IO: return "I/O error";
  case AF_ERR_FORMAT: return "format error";
  case AF_ERR_ARG: return "bad argument";
  case AF_ERR_NOMEM: return "out of memory";
  case AF_ERR_UNSUPPORTED: return "unsupported";
  case AF_ERR_NUMERIC: return "numeric error";
  case AF_ERR_BACKEND: return "backend error";
  case AF_ERR_INTERRUPTED: return "interrupted";
  }
  return "unknown status";
}

void af_set_quiet(int q) { atomic_store_explicit(&quiet, q, memory_order_relaxed); }

void af_warn(const char *fmt, ...) {
  if (atomic_load_explicit(&quiet, memory_order_relaxed)) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("autofreeze: warning: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

af_status af_malloc(void **p, size_t bytes, const char *what) {
  *p = malloc(bytes ? bytes : 1);
  if (!*p) return AF_FAIL(AF_ERR_NOMEM, "out of memory allocating %zu bytes for %s", bytes, what);
  return AF_OK;
}

af_status af_calloc(void **p, size_t n, size_t size, const char *what) {
  *p = calloc(n ? n : 1, size ? size : 1);
  if (!*p) return AF_FAIL(AF_ERR_NOMEM, "out of memory allocating %zu x %zu bytes for %s", n, size, what);
  return AF_OK;
}
