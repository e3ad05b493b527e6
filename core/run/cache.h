/* The activation cache: for each training example (by its stable index), the hidden state
 * leaving the last frozen layer for its real tokens only, in a memory tier (one arena) and
 * an HDF5 disk tier, stored as fp32, fp16 or bf16. A background reader prefetches disk
 * entries of the next batch. A disk failure during a run turns the cache off (misses), never
 * the run; at the start, a disk tier asked for that cannot be set up can fail the open
 * (opts.strict). How it works and what it costs: docs/cache.md. */
#ifndef AF_CACHE_H
#define AF_CACHE_H
#include <stddef.h>
#include <stdint.h>
#include "core/results/results.h"
#include "core/base/status.h"

typedef struct af_act_cache af_act_cache;

/* The enum <-> name tables below are the only spelling of these names (CLI, Lua, results). */
typedef enum { AF_CACHE_OFF = 0, AF_CACHE_MEMORY, AF_CACHE_DISK, AF_CACHE_AUTO } af_cache_mode;
/* AF_DTYPE_AUTO is an option value only (--cache-dtype auto): a run resolves it (bf16 under
 * --precision bf16, else f32) before it opens a cache. */
typedef enum { AF_DTYPE_F32 = 0, AF_DTYPE_F16, AF_DTYPE_BF16, AF_DTYPE_AUTO } af_cache_dtype;
extern const char *const af_cache_mode_names[];   /* "off", "memory", "disk", "auto", NULL */
extern const char *const af_cache_dtype_names[];  /* "f32", "f16", "bf16", "auto", NULL */

typedef struct {
  af_cache_mode mode;     /* AF_CACHE_MEMORY, AF_CACHE_DISK, AF_CACHE_AUTO (memory up to budget, then disk);
                             AF_CACHE_OFF opens a cache that is disabled ("cache off") */
  af_cache_dtype dtype;   /* storage: F32 (bytes exact), F16, BF16 (round to nearest even) */
  size_t budget_bytes;    /* memory tier budget; 0 = 25% of MemAvailable (/proc/meminfo) */
  const char *dir;        /* folder for the disk tier file, created (mkdir -p) at open for DISK and
                             AUTO (NULL: $TMPDIR or /tmp, not created) */
  int compress;           /* 0 off, 1-9 deflate level of the disk tier chunks */
  size_t n_examples;      /* examples in the training split (indices 0..n-1) */
  int hidden;             /* C */
  const char *run_key;    /* run + model state; written in the file header, checked on open */
  int strict;             /* DISK only: 1 = a disk tier that cannot be set up at open (its folder
                             cannot be created, is not writable, the file cannot be created) fails
                             the open with AF_ERR_IO; 0 = the cache opens disabled with the reason */
} af_act_cache_opts;

/* Fails for bad options (AF_ERR_ARG), memory (AF_ERR_NOMEM), and, with o->strict, a DISK tier
 * that cannot be set up (AF_ERR_IO; the message names the folder or file and why). Otherwise a
 * disk tier that cannot be set up gives, in DISK mode, a cache that is disabled with a reason
 * and a warning (every get a miss, every put dropped; the run goes on) and, in AUTO mode, a
 * cache whose disk tier is off (a warning; memory only, up to the budget). The folder is
 * created at open; the file is <dir>/afcache-<16 hex of FNV-1a(run_key)>-<pid>.h5, created
 * at open (DISK) or at the first spill (AUTO), always fresh: an existing file of that name is
 * never read (one with our header is removed, anything else counts as a failure to set up). */
af_status af_act_cache_open(const af_act_cache_opts *o, af_act_cache **c);
/* Stops the reader, closes and removes the disk file, frees everything. NULL-safe. */
void af_act_cache_close(af_act_cache *c);

/* Depth of example i's entry; -1 when there is none or the cache is disabled. */
int af_act_cache_depth(const af_act_cache *c, size_t i);
/* Entry i -> dst [len, C] fp32; *depth its depth. dst must hold the entry: its len is the
 * example's real-token count (the caller knows it; af_act_cache_len tells too). A miss (no
 * entry, or the cache got disabled) returns AF_OK with *depth = -1 and *len = 0. */
af_status af_act_cache_get(af_act_cache *c, size_t i, float *dst, int *len, int *depth);
/* Count a lookup the caller serves by recomputing, without reading the entry. */
void af_act_cache_count_miss(af_act_cache *c);
/* Entries deeper than depth go stale (a policy unfroze layers: the prefix they hold is no
 * longer what the model computes): no longer served, their places reused by the next put. */
void af_act_cache_drop_deeper(af_act_cache *c, int depth);
/* Tokens of example i's entry; 0 when none. */
int af_act_cache_len(const af_act_cache *c, size_t i);
/* Store or replace entry i: src [len, C] fp32, the output of layer depth-1 (depth = frozen
 * layers, >= 1) for the example's real tokens. A replacement of the same length overwrites
 * in place (same tier, same bytes); another length is stored afresh. A dropped put (cache
 * disabled, or the memory budget full in AF_CACHE_MEMORY mode) returns AF_OK. */
af_status af_act_cache_put(af_act_cache *c, size_t i, int depth, const float *src, int len);
/* Hint: the indices the next batch will read, in order. The reader thread loads their disk
 * entries into staging buffers while the caller computes; get() serves them from there.
 * A new call replaces the previous hint. */
void af_act_cache_prefetch(af_act_cache *c, const size_t *idx, int n);

/* Write the disk tier's buffered chunks to the file (H5Fflush). Not needed for correctness
 * (the cache never outlives the run); for measuring the file's size. A failure disables. */
af_status af_act_cache_flush(af_act_cache *c);

/* get/put/prefetch/depth/stats are called from one thread (the training loop); the
 * reader thread is internal. */
/* The record's tier and disabled_reason point into the cache (they live until close); its
 * requested, memory_tier and disk_tier say what was asked for and what each tier did: "on",
 * "off: <why>" (turned off, could not be set up, or for AUTO's disk tier "the memory budget
 * sufficed") or "not asked for". */
void af_act_cache_stats(const af_act_cache *c, af_cache_record *out);
const char *af_act_cache_disabled_reason(const af_act_cache *c);     /* NULL while enabled */
/* One line (no newline) for the end of a run: the mode asked for, each tier asked for with
 * its entries and MiB when on or its reason when off, and the hit rate, e.g.
 * "activation cache (auto): memory tier on (192 entries, 0.2 MiB); disk tier off: the memory
 * budget sufficed; hit rate 0.67 (384 hits, 192 misses)". Cut to cap - 1 bytes. */
void af_act_cache_describe(const af_act_cache *c, char *buf, size_t cap);
/* The record of a cache asked for (mode) but never opened, because why (e.g. "the activation
 * cache needs --accum 1"): disabled_reason = why, requested, each tier asked for "off: why". */
void af_act_cache_record_unopened(af_cache_mode mode, const char *why, af_cache_record *out);

/* More detail than af_cache_record (benchmarks, docs). */
typedef struct {
  long long mem_entries, disk_entries;
  long long mem_bytes;       /* entry bytes in the memory tier (storage dtype) */
  long long mem_reserved;    /* bytes of arena blocks allocated */
  long long disk_bytes;      /* entry bytes in the disk tier (storage dtype, before compression) */
  long long file_bytes;      /* size of the HDF5 file now */
  long long disk_reads, prefetched, prefetch_waits, dropped_puts;
  int staged, pending;       /* prefetch slots read and waiting / queued or being read */
  double io_time_reader;     /* part of io_time spent on the reader thread (overlapped) */
  double wait_time;          /* seconds get() waited for the reader or read synchronously */
  size_t budget_bytes;
  const char *path;          /* disk file, NULL when none */
} af_act_cache_detail;
void af_act_cache_stats_detail(const af_act_cache *c, af_act_cache_detail *out);
const char *af_act_cache_path(const af_act_cache *c);   /* disk tier file, NULL when none */

/* Whether the HDF5 file at path is a cache file written for exactly this run_key, hidden
 * size and dtype (format version included): AF_OK, or AF_ERR_FORMAT / AF_ERR_IO saying
 * what differs. The check that keeps a foreign file from ever being read. */
af_status af_act_cache_file_check(const char *path, const char *run_key, int hidden, af_cache_dtype dtype);

#include "core/base/h5lock.h"  /* HDF5 is not thread-safe: see h5lock.h */
#include "core/base/half.h"    /* fp16/bf16 conversions */

size_t af_cache_dtype_size(af_cache_dtype d);  /* 4 or 2 */
const char *af_cache_dtype_name(af_cache_dtype d);  /* "f32", "f16", "bf16" */

#endif
