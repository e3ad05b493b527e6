/* The activation cache store: an index [n_examples] of (tier, place, len, depth), a memory
 * tier carved from a few big arena blocks, the disk tier of core/run/cache_disk.c, and the
 * background reader that stages the next batch's disk entries while the step computes.
 * Locking: `mu` guards the index, the staging slots, the stats and the disabled state; the
 * disk file has its own (process-wide) HDF5 lock, never taken while holding `mu`. */
#include "core/run/cache.h"
#include "core/base/fsutil.h"
#include "core/base/timing.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/run/cache_disk.h"

enum { TIER_NONE = 0, TIER_MEM = 1, TIER_DISK = 2 };
enum { SLOT_FREE = 0, SLOT_QUEUED, SLOT_LOADING, SLOT_READY };

typedef struct {
  uint64_t off;    /* memory: byte offset in its block; disk: first row */
  uint32_t block;  /* memory: arena block */
  uint32_t ver;    /* bumped at every put, so a staged copy of an older value is never served */
  int32_t len;     /* tokens */
  int16_t depth;
  uint8_t tier;
} entry;

typedef struct {
  unsigned char *p;
  size_t cap, used;
} block;

/* One staged entry: the reader fills buf (fp32) while state is LOADING and owns it then. */
typedef struct {
  size_t idx;
  int state, order, len, depth;
  uint32_t ver;
  float *buf;
  size_t cap;     /* floats */
} slot;

struct af_act_cache {
  af_act_cache_opts o;
  char *dir, *run_key;
  size_t esize, row_bytes;     /* storage bytes per element, per token */
  entry *idx;                  /* [n_examples] */

  block *blocks;
  size_t nblocks, block_bytes, mem_reserved;

  af_cache_file *file;
  uint64_t next_row;
  void *raw;                   /* caller-thread scratch in the storage dtype */
  size_t raw_cap;

  pthread_mutex_t mu;
  pthread_cond_t cv_work, cv_done;
  pthread_t reader;
  int reader_on, stop;
  slot *slots;
  int nslots;

  int disabled, released, warned_budget;
  char reason[512];
  int disk_off;                /* AUTO: the disk tier could not be set up; memory only (under mu) */
  char disk_reason[512];

  long long mem_entries, disk_entries, mem_bytes, disk_bytes;
  long long hits, misses, bytes_read, bytes_written;
  long long disk_reads, prefetched, prefetch_waits, dropped_puts;
  double io_time, io_time_reader, wait_time;
};

/* ---- storage dtypes ---- */

size_t af_cache_dtype_size(af_cache_dtype d) { return d == AF_DTYPE_F32 ? 4 : 2; }
const char *const af_cache_mode_names[] = {"off", "memory", "disk", "auto", NULL};
const char *const af_cache_dtype_names[] = {"f32", "f16", "bf16", "auto", NULL};
const char *af_cache_dtype_name(af_cache_dtype d) { return af_cache_dtype_names[d <= AF_DTYPE_BF16 ? d : 0]; }

static void to_storage(void *dst, const float *src, size_t n, af_cache_dtype d) {
  uint16_t *h = dst;
  if (d == AF_DTYPE_F32) memcpy(dst, src, n * 4);
  else if (d == AF_DTYPE_F16) for (size_t i = 0; i < n; i++) h[i] = af_f32_to_f16(src[i]);
  else for (size_t i = 0; i < n; i++) h[i] = af_f32_to_bf16(src[i]);
}

static void from_storage(float *dst, const void *src, size_t n, af_cache_dtype d) {
  const uint16_t *h = src;
  if (d == AF_DTYPE_F32) memcpy(dst, src, n * 4);
  else if (d == AF_DTYPE_F16) for (size_t i = 0; i < n; i++) dst[i] = af_f16_to_f32(h[i]);
  else for (size_t i = 0; i < n; i++) dst[i] = af_bf16_to_f32(h[i]);
}

/* ---- budget ---- */
static size_t mem_available(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  char line[256];
  unsigned long long kb = 0;
  if (f) {
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
  }
  return kb ? (size_t)(kb * 1024ull) : (size_t)1 << 30;  /* unknown: assume 1 GiB free */
}

/* ---- disabling ---- */
/* Under mu. The first reason wins; the resources go at the next call from the caller's
 * thread (release), so the reader never frees what the caller may be using. */
static int is_off(const af_act_cache *c) { return __atomic_load_n(&c->disabled, __ATOMIC_ACQUIRE); }

static void disable_locked(af_act_cache *c, const char *why) {
  if (c->disabled) return;
  snprintf(c->reason, sizeof c->reason, "%s", why && *why ? why : "unknown error");
  __atomic_store_n(&c->disabled, 1, __ATOMIC_RELEASE);
  af_warn("activation cache turned off for the rest of the run: %s", c->reason);
  pthread_cond_broadcast(&c->cv_done);
  pthread_cond_broadcast(&c->cv_work);
}

static void disable(af_act_cache *c, const char *why) {
  pthread_mutex_lock(&c->mu);
  disable_locked(c, why);
  pthread_mutex_unlock(&c->mu);
}

static void stop_reader(af_act_cache *c) {
  if (!c->reader_on) return;
  pthread_mutex_lock(&c->mu);
  c->stop = 1;
  pthread_cond_broadcast(&c->cv_work);
  pthread_mutex_unlock(&c->mu);
  pthread_join(c->reader, NULL);
  c->reader_on = 0;
}

/* Caller's thread only, at the start of every call: free the stores of a disabled cache, so
 * the disk space comes back at the first call after the failure. */
static void release(af_act_cache *c) {
  if (!is_off(c) || c->released) return;
  stop_reader(c);
  af_cache_file_close(c->file);
  c->file = NULL;
  for (size_t b = 0; b < c->nblocks; b++) free(c->blocks[b].p);
  free(c->blocks);
  c->blocks = NULL;
  c->nblocks = 0;
  c->mem_reserved = 0;
  for (int s = 0; s < c->nslots; s++) free(c->slots[s].buf);
  free(c->slots);
  c->slots = NULL;
  c->nslots = 0;
  free(c->raw);
  c->raw = NULL;
  c->raw_cap = 0;
  c->released = 1;
}

/* ---- the reader thread ---- */
static void *reader_main(void *arg) {
  af_act_cache *c = arg;
  void *raw = NULL;
  size_t raw_cap = 0;
  const size_t C = (size_t)c->o.hidden;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    if (c->stop || c->disabled) break;
    int si = -1;
    for (int s = 0; s < c->nslots; s++)
      if (c->slots[s].state == SLOT_QUEUED && (si < 0 || c->slots[s].order < c->slots[si].order)) si = s;
    if (si < 0) {
      pthread_cond_wait(&c->cv_work, &c->mu);
      continue;
    }
    slot *sl = &c->slots[si];
    size_t i = sl->idx;
    entry e = c->idx[i];
    if (e.tier != TIER_DISK) {
      sl->state = SLOT_FREE;
      continue;
    }
    sl->state = SLOT_LOADING;
    float *buf = sl->buf;
    size_t cap = sl->cap, n = (size_t)e.len * C;
    pthread_mutex_unlock(&c->mu);

    /* Unlocked: this slot is ours while LOADING (prefetch leaves it alone, get waits). */
    char why[512] = "";
    af_status st = AF_OK;
    if (cap < n) {
      float *nb = realloc(buf, n * sizeof *nb);
      if (nb) buf = nb, cap = n;
      else st = AF_FAIL(AF_ERR_NOMEM, "out of memory staging a cache entry");
    }
    if (st == AF_OK && raw_cap < n * c->esize) {
      void *nr = realloc(raw, n * c->esize);
      if (nr) raw = nr, raw_cap = n * c->esize;
      else st = AF_FAIL(AF_ERR_NOMEM, "out of memory staging a cache entry");
    }
    double t0 = af_now();
    if (st == AF_OK) st = af_cache_file_read(c->file, e.off, e.len, raw);
    double dt = af_now() - t0;
    if (st == AF_OK) from_storage(buf, raw, n, c->o.dtype);
    else snprintf(why, sizeof why, "%s", af_last_error());

    pthread_mutex_lock(&c->mu);
    sl = &c->slots[si];  /* prefetch may have grown the array meanwhile */
    sl->buf = buf;
    sl->cap = cap;
    c->io_time += dt;
    c->io_time_reader += dt;
    if (st != AF_OK) {
      sl->state = SLOT_FREE;
      disable_locked(c, why);
    } else {
      c->disk_reads++;
      c->bytes_read += (long long)(n * c->esize);
      const entry *cur = &c->idx[i];
      if (sl->state == SLOT_LOADING && cur->tier == TIER_DISK && cur->ver == e.ver) {
        sl->state = SLOT_READY;
        sl->len = e.len;
        sl->depth = e.depth;
        sl->ver = e.ver;
      } else {
        sl->state = SLOT_FREE;  /* replaced while we read it */
      }
    }
    pthread_cond_broadcast(&c->cv_done);
  }
  pthread_mutex_unlock(&c->mu);
  free(raw);
  return NULL;
}

/* The disk tier could not be set up (folder or file; the message is af_last_error()). AUTO
 * goes on in memory only; DISK fails the open when strict (the user asked for a disk cache
 * and would get none), else the whole cache turns off. */
static af_status disk_setup_failed(af_act_cache *c) {
  if (c->o.mode == AF_CACHE_AUTO) {
    pthread_mutex_lock(&c->mu);
    c->disk_off = 1;
    snprintf(c->disk_reason, sizeof c->disk_reason, "%s", af_last_error());
    pthread_mutex_unlock(&c->mu);
    af_warn("activation cache: the disk tier is off (%s); caching in memory only, up to the budget", c->disk_reason);
    return AF_OK;
  }
  if (c->o.strict) {
    af_error_prefix("activation cache: ");
    return AF_ERR_IO;
  }
  disable(c, af_last_error());
  release(c);
  return AF_OK;
}

/* Create the disk file and start the reader (DISK at open, AUTO at the first spill). */
static af_status start_disk(af_act_cache *c) {
  af_status st = af_cache_file_create(c->dir, c->run_key, c->o.hidden, c->o.dtype, c->o.compress, &c->file);
  if (st != AF_OK) return st == AF_ERR_NOMEM ? st : disk_setup_failed(c);
  c->stop = 0;
  if (pthread_create(&c->reader, NULL, reader_main, c) != 0) {
    /* Without the reader, get() still reads synchronously: slower, still correct. */
    af_warn("activation cache: cannot start the reader thread (%s); reading synchronously", strerror(errno));
  } else {
    c->reader_on = 1;
  }
  return AF_OK;
}

/* The disk tier at open: its folder, like mkdir -p (DISK and AUTO), then for DISK the file
 * and the reader. A folder left by a failed attempt half-way stays, as with mkdir -p. */
static af_status open_disk_tier(af_act_cache *c) {
  if (c->dir && *c->dir && af_mkdirs(c->dir) != AF_OK) {
    /* af_mkdirs names the level that failed; name the folder asked for too when it differs */
    size_t n = strlen(c->dir);
    const char *e = af_last_error();
    if (strncmp(e, c->dir, n) != 0 || e[n] != ':') af_error_prefix("cannot create %s: ", c->dir);
    return disk_setup_failed(c);
  }
  return c->o.mode == AF_CACHE_DISK ? start_disk(c) : AF_OK;
}

af_status af_act_cache_open(const af_act_cache_opts *o, af_act_cache **out) {
  *out = NULL;
  if (!o || o->hidden <= 0 || o->n_examples == 0 || o->compress < 0 || o->compress > 9 || (int)o->dtype < 0 ||
      o->dtype > AF_DTYPE_BF16 || (int)o->mode < 0 || o->mode > AF_CACHE_AUTO)
    return AF_FAIL(AF_ERR_ARG, "activation cache: bad options (hidden %d, examples %zu, compress %d, dtype %d, mode %d)",
                   o ? o->hidden : 0, o ? o->n_examples : (size_t)0, o ? o->compress : 0, o ? (int)o->dtype : 0,
                   o ? (int)o->mode : 0);
  af_act_cache *c = calloc(1, sizeof *c);
  if (!c) return AF_FAIL(AF_ERR_NOMEM, "out of memory for the activation cache");
  c->o = *o;
  c->dir = o->dir ? strdup(o->dir) : NULL;
  c->run_key = strdup(o->run_key ? o->run_key : "");
  c->idx = calloc(o->n_examples, sizeof *c->idx);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv_work, NULL);
  pthread_cond_init(&c->cv_done, NULL);
  c->o.dir = c->dir;
  c->o.run_key = c->run_key;
  if ((o->dir && !c->dir) || !c->run_key || !c->idx) {
    af_act_cache_close(c);
    return AF_FAIL(AF_ERR_NOMEM, "out of memory for the activation cache index (%zu examples)", o->n_examples);
  }
  c->esize = af_cache_dtype_size(o->dtype);
  c->row_bytes = c->esize * (size_t)o->hidden;
  if (!c->o.budget_bytes) c->o.budget_bytes = mem_available() / 4;
  /* Big blocks: a few dozen allocations for the whole run, none per entry. */
  size_t bb = c->o.budget_bytes / 8;
  if (bb < (1u << 20)) bb = 1u << 20;
  if (bb > (64u << 20)) bb = 64u << 20;
  if (bb > c->o.budget_bytes) bb = c->o.budget_bytes;
  c->block_bytes = bb & ~(size_t)63;  /* aligned_alloc wants a multiple of the alignment */
  if (o->mode == AF_CACHE_OFF) {
    c->disabled = c->released = 1;
    snprintf(c->reason, sizeof c->reason, "cache off");
  } else if (o->mode == AF_CACHE_DISK || o->mode == AF_CACHE_AUTO) {
    af_status st = open_disk_tier(c);
    if (st != AF_OK) {
      af_act_cache_close(c);
      return st;
    }
  }
  *out = c;
  return AF_OK;
}

void af_act_cache_close(af_act_cache *c) {
  if (!c) return;
  stop_reader(c);
  c->disabled = 1;
  c->released = 0;
  release(c);
  pthread_cond_destroy(&c->cv_done);
  pthread_cond_destroy(&c->cv_work);
  pthread_mutex_destroy(&c->mu);
  free(c->idx);
  free(c->dir);
  free(c->run_key);
  free(c);
}

/* An entry with depth 0 is stale (af_act_cache_drop_deeper): its place is kept for the next
 * put of the row, its content is never served. */
int af_act_cache_depth(const af_act_cache *c, size_t i) {
  if (!c || is_off(c) || i >= c->o.n_examples || c->idx[i].tier == TIER_NONE || c->idx[i].depth <= 0) return -1;
  return c->idx[i].depth;
}

int af_act_cache_len(const af_act_cache *c, size_t i) {
  if (!c || is_off(c) || i >= c->o.n_examples || c->idx[i].tier == TIER_NONE || c->idx[i].depth <= 0) return 0;
  return c->idx[i].len;
}

void af_act_cache_drop_deeper(af_act_cache *c, int depth) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i < c->o.n_examples; i++)
    if (c->idx[i].tier != TIER_NONE && c->idx[i].depth > depth) c->idx[i].depth = 0;  /* get serves no depth 0 */
  for (int s = 0; s < c->nslots; s++)  /* their staged copies would hold prefetch slots until the next put */
    if ((c->slots[s].state == SLOT_QUEUED || c->slots[s].state == SLOT_READY) && c->idx[c->slots[s].idx].depth == 0)
      c->slots[s].state = SLOT_FREE;
  pthread_mutex_unlock(&c->mu);
}

static af_status ensure_raw(af_act_cache *c, size_t bytes) {
  if (c->raw_cap >= bytes) return AF_OK;
  void *p = realloc(c->raw, bytes);
  if (!p) return AF_FAIL(AF_ERR_NOMEM, "out of memory for a cache entry (%zu bytes)", bytes);
  c->raw = p;
  c->raw_cap = bytes;
  return AF_OK;
}

static void count_miss(af_act_cache *c) {
  pthread_mutex_lock(&c->mu);
  c->misses++;
  pthread_mutex_unlock(&c->mu);
}

void af_act_cache_count_miss(af_act_cache *c) {
  if (c) count_miss(c);
}

af_status af_act_cache_get(af_act_cache *c, size_t i, float *dst, int *len, int *depth) {
  *len = 0;
  *depth = -1;
  if (!c) return AF_OK;
  if (i >= c->o.n_examples) return AF_FAIL(AF_ERR_ARG, "activation cache: example %zu of %zu", i, c->o.n_examples);
  release(c);
  const entry e = c->idx[i];  /* only this thread writes the index */
  if (is_off(c) || e.tier == TIER_NONE || e.depth <= 0) {
    count_miss(c);
    return AF_OK;
  }
  const size_t n = (size_t)e.len * (size_t)c->o.hidden, bytes = n * c->esize;
  if (e.tier == TIER_MEM) {
    from_storage(dst, c->blocks[e.block].p + e.off, n, c->o.dtype);
    pthread_mutex_lock(&c->mu);
    c->hits++;
    c->bytes_read += (long long)bytes;
    pthread_mutex_unlock(&c->mu);
    *len = e.len;
    *depth = e.depth;
    return AF_OK;
  }
  /* Disk tier: served from staging when the reader has (or is about to have) it. */
  double t0 = af_now();
  pthread_mutex_lock(&c->mu);
  for (;;) {
    if (c->disabled) break;
    int si = -1;
    for (int s = 0; s < c->nslots; s++)
      if (c->slots[s].state != SLOT_FREE && c->slots[s].idx == i) si = s;
    if (si < 0) break;
    slot *sl = &c->slots[si];
    if (sl->state == SLOT_READY && sl->ver == e.ver) {
      memcpy(dst, sl->buf, n * sizeof *dst);
      sl->state = SLOT_FREE;
      c->hits++;
      c->prefetched++;
      c->wait_time += af_now() - t0;
      pthread_mutex_unlock(&c->mu);
      *len = e.len;
      *depth = e.depth;
      return AF_OK;
    }
    if (sl->state == SLOT_LOADING) {
      c->prefetch_waits++;
      pthread_cond_wait(&c->cv_done, &c->mu);
      continue;
    }
    sl->state = SLOT_FREE;  /* queued but not started (or stale): read it ourselves */
    break;
  }
  int off = c->disabled;
  pthread_mutex_unlock(&c->mu);
  if (off) {
    release(c);
    count_miss(c);
    return AF_OK;
  }
  AF_TRY(ensure_raw(c, bytes));
  double t1 = af_now();
  af_status st = af_cache_file_read(c->file, e.off, e.len, c->raw);
  double t2 = af_now();
  if (st != AF_OK) {
    disable(c, af_last_error());  /* the file goes at the next call */
    count_miss(c);
    return AF_OK;
  }
  from_storage(dst, c->raw, n, c->o.dtype);
  pthread_mutex_lock(&c->mu);
  c->hits++;
  c->disk_reads++;
  c->bytes_read += (long long)bytes;
  c->io_time += t2 - t1;
  c->wait_time += af_now() - t0;
  pthread_mutex_unlock(&c->mu);
  *len = e.len;
  *depth = e.depth;
  return AF_OK;
}

/* Room for `bytes` in the memory tier within the budget: (block, offset), or -1. */
static int mem_alloc(af_act_cache *c, size_t bytes, uint32_t *blk, uint64_t *off) {
  bytes = (bytes + 63) & ~(size_t)63;  /* cache-line aligned entries */
  if (c->nblocks) {
    block *b = &c->blocks[c->nblocks - 1];
    if (b->cap - b->used >= bytes) {
      *blk = (uint32_t)(c->nblocks - 1);
      *off = b->used;
      b->used += bytes;
      return 0;
    }
  }
  size_t cap = bytes > c->block_bytes ? bytes : c->block_bytes;
  if (c->mem_reserved + cap > c->o.budget_bytes) {
    /* The last block: what is left of the budget. */
    size_t left = c->o.budget_bytes > c->mem_reserved ? (c->o.budget_bytes - c->mem_reserved) & ~(size_t)63 : 0;
    if (left < bytes) return -1;
    cap = left;
  }
  block *nb = realloc(c->blocks, (c->nblocks + 1) * sizeof *nb);
  if (!nb) return -1;
  c->blocks = nb;
  unsigned char *p = aligned_alloc(64, cap);
  if (!p) return -1;
  c->blocks[c->nblocks] = (block){p, cap, bytes};
  *blk = (uint32_t)c->nblocks++;
  *off = 0;
  c->mem_reserved += cap;
  return 0;
}

af_status af_act_cache_put(af_act_cache *c, size_t i, int depth, const float *src, int len) {
  if (!c) return AF_OK;
  if (i >= c->o.n_examples || depth < 1 || depth > 32767 || len < 1 || !src)
    return AF_FAIL(AF_ERR_ARG, "activation cache put: example %zu of %zu, depth %d, len %d", i, c->o.n_examples,
                   depth, len);
  release(c);
  if (is_off(c)) return AF_OK;
  const size_t n = (size_t)len * (size_t)c->o.hidden, bytes = n * c->esize;
  entry e = c->idx[i];

  /* Any staged copy of the old value is now stale. */
  pthread_mutex_lock(&c->mu);
  c->idx[i].ver++;
  e.ver = c->idx[i].ver;
  for (int s = 0; s < c->nslots; s++)
    if (c->slots[s].idx == i && (c->slots[s].state == SLOT_QUEUED || c->slots[s].state == SLOT_READY))
      c->slots[s].state = SLOT_FREE;
  pthread_mutex_unlock(&c->mu);

  int fresh = e.tier == TIER_NONE || e.len != len;
  int tier = e.tier;
  if (fresh) {
    if (e.tier != TIER_NONE) {  /* another length: the old place is abandoned (never happens in a run) */
      pthread_mutex_lock(&c->mu);
      if (e.tier == TIER_MEM) c->mem_entries--, c->mem_bytes -= (long long)((size_t)e.len * c->row_bytes);
      else c->disk_entries--, c->disk_bytes -= (long long)((size_t)e.len * c->row_bytes);
      c->idx[i].tier = TIER_NONE;
      pthread_mutex_unlock(&c->mu);
    }
    tier = TIER_NONE;
    if (c->o.mode == AF_CACHE_MEMORY || c->o.mode == AF_CACHE_AUTO) {
      if (mem_alloc(c, bytes, &e.block, &e.off) == 0) tier = TIER_MEM;
    }
    /* disk_off is written on this thread only (start_disk), so reading it here is safe */
    if (tier == TIER_NONE && (c->o.mode == AF_CACHE_DISK || c->o.mode == AF_CACHE_AUTO) && !c->disk_off) {
      if (!c->file) {
        AF_TRY(start_disk(c));
        if (is_off(c)) return AF_OK;
      }
      if (c->file) {  /* else AUTO's disk tier just failed to start: dropped below */
        tier = TIER_DISK;
        e.off = c->next_row;
        c->next_row += (uint64_t)len;
      }
    }
    if (tier == TIER_NONE) {
      pthread_mutex_lock(&c->mu);
      c->dropped_puts++;
      pthread_mutex_unlock(&c->mu);
      if (!c->warned_budget) {
        c->warned_budget = 1;
        af_warn("activation cache: the memory budget of %.1f MiB is full; further entries are not cached (%s)",
                (double)c->o.budget_bytes / 1048576.0,
                c->disk_off ? "the disk tier is off" : "a larger --cache-budget, or --cache auto to spill to disk");
      }
      return AF_OK;
    }
  }

  double io = 0;
  if (tier == TIER_MEM) {
    to_storage(c->blocks[e.block].p + e.off, src, n, c->o.dtype);
  } else {
    AF_TRY(ensure_raw(c, bytes));
    to_storage(c->raw, src, n, c->o.dtype);
    double t0 = af_now();
    af_status st = af_cache_file_write(c->file, e.off, len, c->raw);
    io = af_now() - t0;
    if (st != AF_OK) {
      disable(c, af_last_error());
      return AF_OK;
    }
  }
  pthread_mutex_lock(&c->mu);
  entry *d = &c->idx[i];
  d->tier = (uint8_t)tier;
  d->block = e.block;
  d->off = e.off;
  d->len = len;
  d->depth = (int16_t)depth;
  if (fresh) {
    if (tier == TIER_MEM) c->mem_entries++, c->mem_bytes += (long long)bytes;
    else c->disk_entries++, c->disk_bytes += (long long)bytes;
  }
  c->bytes_written += (long long)bytes;
  c->io_time += io;
  pthread_mutex_unlock(&c->mu);
  return AF_OK;
}

void af_act_cache_prefetch(af_act_cache *c, const size_t *idx, int n) {
  if (!c) return;
  release(c);
  if (is_off(c) || !c->reader_on || n <= 0 || !idx) return;
  pthread_mutex_lock(&c->mu);
  /* The new hint replaces the old one; a slot being loaded is left to finish. */
  int loading = 0;
  for (int s = 0; s < c->nslots; s++) {
    if (c->slots[s].state == SLOT_LOADING) loading++;
    else c->slots[s].state = SLOT_FREE;
  }
  if (c->nslots < n + loading) {
    int want = n + loading;
    slot *ns = realloc(c->slots, (size_t)want * sizeof *ns);
    if (!ns) {
      pthread_mutex_unlock(&c->mu);
      return;  /* only a hint: get() reads synchronously */
    }
    memset(ns + c->nslots, 0, (size_t)(want - c->nslots) * sizeof *ns);
    c->slots = ns;
    c->nslots = want;
  }
  int order = 0, free_from = 0;
  for (int j = 0; j < n; j++) {
    size_t i = idx[j];
    if (i >= c->o.n_examples || c->idx[i].tier != TIER_DISK) continue;
    int have = 0;
    for (int s = 0; s < c->nslots && !have; s++)
      have = c->slots[s].state != SLOT_FREE && c->slots[s].idx == i;
    if (have) continue;
    while (free_from < c->nslots && c->slots[free_from].state != SLOT_FREE) free_from++;
    if (free_from == c->nslots) break;
    slot *sl = &c->slots[free_from];
    sl->idx = i;
    sl->state = SLOT_QUEUED;
    sl->order = order++;
  }
  pthread_cond_signal(&c->cv_work);
  pthread_mutex_unlock(&c->mu);
}

af_status af_act_cache_flush(af_act_cache *c) {
  if (!c) return AF_OK;
  release(c);
  if (is_off(c) || !c->file) return AF_OK;
  double t0 = af_now();
  af_status st = af_cache_file_flush(c->file);
  double dt = af_now() - t0;
  if (st != AF_OK) {
    disable(c, af_last_error());
    return AF_OK;
  }
  pthread_mutex_lock(&c->mu);
  c->io_time += dt;
  pthread_mutex_unlock(&c->mu);
  return AF_OK;
}

const char *af_act_cache_disabled_reason(const af_act_cache *c) {
  if (!c) return "no cache";
  af_act_cache *m = (af_act_cache *)c;
  pthread_mutex_lock(&m->mu);
  const char *r = c->disabled ? c->reason : NULL;
  pthread_mutex_unlock(&m->mu);
  return r;
}

static const char *tier_name(const af_act_cache *c) {
  switch (c->o.mode) {
  case AF_CACHE_MEMORY: return "memory";
  case AF_CACHE_DISK: return "disk";
  case AF_CACHE_AUTO: return c->disk_entries || c->file ? "memory+disk" : "memory";
  default: return NULL;
  }
}

/* "on", "off: <why>" or "not asked for" into buf. */
static void tier_state(char *buf, size_t cap, int asked, const char *why) {
  if (!asked) snprintf(buf, cap, "not asked for");
  else if (why) snprintf(buf, cap, "off: %s", why);
  else snprintf(buf, cap, "on");
}

/* Under mu: what was asked for and what each tier did. */
static void tier_states(const af_act_cache *c, af_cache_record *out) {
  const af_cache_mode m = c->o.mode;
  const char *off = c->disabled ? c->reason : NULL, *disk_off = off;
  if (!disk_off && m == AF_CACHE_AUTO) {
    if (c->disk_off) disk_off = c->disk_reason;
    else if (!c->file && !c->disk_entries) disk_off = "the memory budget sufficed";
  }
  out->requested = af_cache_mode_names[m];
  tier_state(out->memory_tier, sizeof out->memory_tier, m == AF_CACHE_MEMORY || m == AF_CACHE_AUTO, off);
  tier_state(out->disk_tier, sizeof out->disk_tier, m == AF_CACHE_DISK || m == AF_CACHE_AUTO, disk_off);
}

void af_act_cache_record_unopened(af_cache_mode mode, const char *why, af_cache_record *out) {
  memset(out, 0, sizeof *out);
  if ((int)mode < 0 || mode > AF_CACHE_AUTO) mode = AF_CACHE_OFF;
  if (!why || !*why) why = "not opened";
  out->disabled_reason = why;
  out->requested = af_cache_mode_names[mode];
  tier_state(out->memory_tier, sizeof out->memory_tier, mode == AF_CACHE_MEMORY || mode == AF_CACHE_AUTO, why);
  tier_state(out->disk_tier, sizeof out->disk_tier, mode == AF_CACHE_DISK || mode == AF_CACHE_AUTO, why);
}

void af_act_cache_stats(const af_act_cache *c, af_cache_record *out) {
  memset(out, 0, sizeof *out);
  if (!c) return;
  af_act_cache *m = (af_act_cache *)c;
  pthread_mutex_lock(&m->mu);
  tier_states(c, out);
  out->entries = c->mem_entries + c->disk_entries;
  out->bytes = c->mem_bytes + c->disk_bytes;
  out->hits = c->hits;
  out->misses = c->misses;
  out->bytes_read = c->bytes_read;
  out->bytes_written = c->bytes_written;
  out->io_time = c->io_time;
  out->tier = tier_name(c);
  out->disabled_reason = c->disabled ? c->reason : NULL;
  pthread_mutex_unlock(&m->mu);
}

void af_act_cache_stats_detail(const af_act_cache *c, af_act_cache_detail *out) {
  memset(out, 0, sizeof *out);
  if (!c) return;
  af_act_cache *m = (af_act_cache *)c;
  pthread_mutex_lock(&m->mu);
  out->mem_entries = c->mem_entries;
  out->disk_entries = c->disk_entries;
  out->mem_bytes = c->mem_bytes;
  out->mem_reserved = (long long)c->mem_reserved;
  out->disk_bytes = c->disk_bytes;
  out->disk_reads = c->disk_reads;
  out->prefetched = c->prefetched;
  out->prefetch_waits = c->prefetch_waits;
  out->dropped_puts = c->dropped_puts;
  for (int i = 0; i < c->nslots; i++) {
    out->staged += c->slots[i].state == SLOT_READY;
    out->pending += c->slots[i].state == SLOT_QUEUED || c->slots[i].state == SLOT_LOADING;
  }
  out->io_time_reader = c->io_time_reader;
  out->wait_time = c->wait_time;
  out->budget_bytes = c->o.budget_bytes;
  pthread_mutex_unlock(&m->mu);
  /* The file pointer changes only on the caller's thread, which is this one. */
  out->file_bytes = c->file ? af_cache_file_size(c->file) : 0;
  out->path = af_cache_file_path(c->file);
}

const char *af_act_cache_path(const af_act_cache *c) { return c ? af_cache_file_path(c->file) : NULL; }

/* Appends ", " or "; " then a tier: its state, with entries and MiB when on. */
static size_t describe_tier(char *buf, size_t cap, size_t n, const char *name, const char *state, long long entries,
                            long long bytes, long long dropped) {
  if (n >= cap || !strcmp(state, "not asked for")) return n;
  int w = !strcmp(state, "on")
              ? snprintf(buf + n, cap - n, "%s%s tier on (%lld entries, %.1f MiB", n ? "; " : "", name, entries,
                         (double)bytes / 1048576.0)
              : snprintf(buf + n, cap - n, "%s%s tier %s", n ? "; " : "", name, state);
  if (w > 0) n += (size_t)w;
  if (n < cap && !strcmp(state, "on")) {
    w = dropped ? snprintf(buf + n, cap - n, "; budget full, %lld entries not stored)", dropped)
                : snprintf(buf + n, cap - n, ")");
    if (w > 0) n += (size_t)w;
  }
  return n;
}

void af_act_cache_describe(const af_act_cache *c, char *buf, size_t cap) {
  if (!cap) return;
  if (!c || c->o.mode == AF_CACHE_OFF) {
    snprintf(buf, cap, "activation cache off (not asked for)");
    return;
  }
  af_cache_record r;
  af_act_cache_detail d;
  af_act_cache_stats(c, &r);
  af_act_cache_stats_detail(c, &d);
  int w = snprintf(buf, cap, "activation cache (%s): ", r.requested);
  size_t head = w > 0 ? (size_t)w : 0, n = 0;
  if (head >= cap) return;
  char *tiers = buf + head;
  size_t tcap = cap - head;
  tiers[0] = 0;
  /* puts are dropped only when the memory budget is full and there is no disk tier to take them */
  n = describe_tier(tiers, tcap, n, "memory", r.memory_tier, d.mem_entries, d.mem_bytes, d.dropped_puts);
  n = describe_tier(tiers, tcap, n, "disk", r.disk_tier, d.disk_entries, d.disk_bytes, 0);
  long long q = r.hits + r.misses;
  if (n < tcap) {
    if (q > 0)
      snprintf(tiers + n, tcap - n, "; hit rate %.2f (%lld hits, %lld misses)", (double)r.hits / (double)q, r.hits,
               r.misses);
    else
      snprintf(tiers + n, tcap - n, "; no lookups");
  }
}
