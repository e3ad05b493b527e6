/* Status codes and the last-error message. Every function that can fail returns an
 * af_status and records one human-readable line saying where (input file and line when
 * there is one), what was expected and what was found. Only main and the Lua host exit. */
#ifndef AF_STATUS_H
#define AF_STATUS_H
#include <stddef.h>

typedef enum {
  AF_OK = 0,
  AF_ERR_IO,          /* open/read/write/mmap failed */
  AF_ERR_FORMAT,      /* an input file is malformed */
  AF_ERR_ARG,         /* bad argument or option value (usage) */
  AF_ERR_NOMEM,       /* allocation failed */
  AF_ERR_UNSUPPORTED, /* well-formed but not supported (e.g. hidden_act=relu) */
  AF_ERR_NUMERIC,     /* NaN/Inf detected */
  AF_ERR_BACKEND,     /* BLAS/oneDNN/CUDA/cuBLAS/HDF5/Lua library failure */
  AF_ERR_INTERRUPTED, /* SIGINT/SIGTERM asked the run to stop */
} af_status;

/* Record a formatted message as the last error and return s. */
af_status af_fail(af_status s, const char *src_file, int src_line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define AF_FAIL(s, ...) af_fail((s), __FILE__, __LINE__, __VA_ARGS__)
/* Propagate a failing status unchanged. */
#define AF_TRY(expr) do { af_status af_try_s_ = (expr); if (af_try_s_ != AF_OK) return af_try_s_; } while (0)

/* Prefix the current message with more context ("loading MODEL: " + old message). */
void af_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *af_last_error(void);    /* "" when none */
void af_clear_error(void);
const char *af_status_name(af_status s);

/* Warnings go to stderr with a common prefix; tests may silence them. */
void af_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void af_set_quiet(int quiet);

/* Allocation helpers that record AF_ERR_NOMEM. */
af_status af_malloc(void **p, size_t bytes, const char *what);
af_status af_calloc(void **p, size_t n, size_t size, const char *what);

#endif
