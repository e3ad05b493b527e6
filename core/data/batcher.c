/* The batcher (see batcher.h). The PRNG is splitmix64 seeded from (seed, epoch) alone, and
 * the bounded draw uses rejection, so an order depends on nothing but those two numbers and
 * the split's size and lengths: the same on every machine and in every process. */
#define _GNU_SOURCE  /* qsort_r */
#include "core/data/batcher.h"
#include <stdlib.h>
#include <string.h>

struct af_batcher {
  const af_split *s;
  af_batcher_opts o;
  size_t n_used, nb;
  int epoch;
  size_t next_k;
  int64_t *order, *tmp;       /* [n] */
  size_t *bperm;              /* [nb + 1] */
  /* batch buffers [batch * max_len] */
  int32_t *ids, *type_ids, *len;
  float *mask, *targets;
  int64_t *index;
};

void af_batcher_opts_default(af_batcher_opts *o) {
  memset(o, 0, sizeof *o);
  o->batch = 32;
  o->seed = 1;
  o->shuffle = 1;
}

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Uniform in [0, n) without modulo bias. */
static uint64_t bounded(uint64_t *st, uint64_t n) {
  uint64_t lim = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do r = splitmix(st); while (r >= lim);
  return r % n;
}

static void shuffle_i64(int64_t *v, size_t n, uint64_t *st) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)bounded(st, i);
    int64_t t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
}

static void shuffle_sz(size_t *v, size_t n, uint64_t *st) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)bounded(st, i);
    size_t t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
}

static int cmp_len(const void *a, const void *b, void *ctx) {
  const int32_t *len = ctx;
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  if (len[x] != len[y]) return len[x] < len[y] ? -1 : 1;
  return x < y ? -1 : x > y;
}

/* The order of an epoch into order[n] (all n examples; the caller drops the tail). */
static void compute_order(const af_batcher *b, int epoch, int64_t *order, int64_t *tmp, size_t *bperm) {
  const af_split *s = b->s;
  size_t n = s->n, B = (size_t)b->o.batch;
  uint64_t st = b->o.seed ^ 0x5DEECE66DULL;
  uint64_t mix = splitmix(&st) ^ ((uint64_t)(uint32_t)epoch * 0xD1B54A32D192ED03ULL);
  st = mix;
  for (size_t i = 0; i < n; i++) order[i] = (int64_t)i;
  if (b->o.shuffle) shuffle_i64(order, n, &st);
  if (!b->o.bucket) return;
  size_t chunk = (size_t)b->o.bucket * B;
  for (size_t c = 0; c < n; c += chunk) {
    size_t m = n - c < chunk ? n - c : chunk;
    qsort_r(order + c, m, sizeof *order, cmp_len, (void *)s->len);
  }
  if (!b->o.shuffle) return;
  size_t full = n / B, nb = (n + B - 1) / B;
  for (size_t k = 0; k < nb; k++) bperm[k] = k;
  shuffle_sz(bperm, full, &st);  /* a partial batch stays last */
  size_t w = 0;
  for (size_t k = 0; k < nb; k++) {
    size_t from = bperm[k] * B, cnt = n - from < B ? n - from : B;
    memcpy(tmp + w, order + from, cnt * sizeof *tmp);
    w += cnt;
  }
  memcpy(order, tmp, n * sizeof *order);
}

af_status af_batcher_init(af_batcher **out, const af_split *s, const af_batcher_opts *o) {
  *out = NULL;
  af_batcher_opts d;
  if (!o) {
    af_batcher_opts_default(&d);
    o = &d;
  }
  if (!s->ids || s->max_len < 1)
    return AF_FAIL(AF_ERR_ARG, "batcher: the %s split is not tokenized yet (af_task_encode first)", s->name);
  if (o->batch < 1) return AF_FAIL(AF_ERR_ARG, "batch size: expected at least 1, found %d", o->batch);
  if (o->bucket < 0) return AF_FAIL(AF_ERR_ARG, "bucket: expected 0 (off) or a number of batches, found %d", o->bucket);
  if (s->n == 0) return AF_FAIL(AF_ERR_ARG, "batcher: the %s split has no examples", s->name);
  af_batcher *b;
  AF_TRY(af_calloc((void **)&b, 1, sizeof *b, "batcher"));
  b->s = s;
  b->o = *o;
  size_t B = (size_t)o->batch, n = s->n;
  b->n_used = o->drop_last ? (n / B) * B : n;
  b->nb = (b->n_used + B - 1) / B;
  if (b->nb == 0) {
    free(b);
    return AF_FAIL(AF_ERR_ARG, "batcher: %zu examples make no full batch of %zu with drop_last", n, B);
  }
  size_t BT = B * (size_t)s->max_len;
  af_status st = AF_OK;
#define ALLOC(f, cnt) if (st == AF_OK) st = af_malloc((void **)&b->f, (cnt) * sizeof *b->f, "batch buffer " #f)
  ALLOC(order, n);
  ALLOC(tmp, n);
  ALLOC(bperm, n / B + 2);
  ALLOC(ids, BT);
  ALLOC(type_ids, BT);
  ALLOC(mask, BT);
  ALLOC(len, B);
  ALLOC(targets, B);
  ALLOC(index, B);
#undef ALLOC
  if (st != AF_OK) {
    af_batcher_free(b);
    return st;
  }
  b->epoch = -1;
  *out = b;
  return AF_OK;
}

void af_batcher_free(af_batcher *b) {
  if (!b) return;
  free(b->order);
  free(b->tmp);
  free(b->bperm);
  free(b->ids);
  free(b->type_ids);
  free(b->mask);
  free(b->len);
  free(b->targets);
  free(b->index);
  free(b);
}

size_t af_batcher_num_batches(const af_batcher *b) { return b->nb; }
size_t af_batcher_num_examples(const af_batcher *b) { return b->n_used; }
const int64_t *af_batcher_order(const af_batcher *b) { return b->order; }

af_status af_batcher_epoch_order(const af_batcher *b, int epoch, int64_t *order) {
  size_t n = b->s->n;
  int64_t *full = NULL, *tmp = NULL;
  size_t *bp = NULL;
  af_status st = af_malloc((void **)&full, n * sizeof *full, "epoch order");
  if (st == AF_OK) st = af_malloc((void **)&tmp, n * sizeof *tmp, "epoch order");
  if (st == AF_OK) st = af_malloc((void **)&bp, (n / (size_t)b->o.batch + 2) * sizeof *bp, "epoch order");
  if (st == AF_OK) {
    compute_order(b, epoch, full, tmp, bp);
    memcpy(order, full, b->n_used * sizeof *order);
  }
  free(full);
  free(tmp);
  free(bp);
  return st;
}

af_status af_batcher_begin(af_batcher *b, int epoch) {
  if (epoch < 0) return AF_FAIL(AF_ERR_ARG, "epoch: expected >= 0, found %d", epoch);
  compute_order(b, epoch, b->order, b->tmp, b->bperm);
  b->epoch = epoch;
  b->next_k = 0;
  return AF_OK;
}

af_status af_batcher_get(af_batcher *b, size_t k, af_batch *out) {
  if (b->epoch < 0) return AF_FAIL(AF_ERR_ARG, "batcher: af_batcher_begin was not called");
  if (k >= b->nb) return AF_FAIL(AF_ERR_ARG, "batch %zu: expected < %zu batches", k, b->nb);
  const af_split *s = b->s;
  size_t B = (size_t)b->o.batch, from = k * B;
  int rows = (int)(b->n_used - from < B ? b->n_used - from : B);
  int T = 1;
  for (int r = 0; r < rows; r++) {
    int64_t i = b->order[from + (size_t)r];
    if (s->len[i] > T) T = s->len[i];
  }
  for (int r = 0; r < rows; r++) {
    int64_t i = b->order[from + (size_t)r];
    int L = s->len[i];
    int32_t *id = b->ids + (size_t)r * (size_t)T, *ty = b->type_ids + (size_t)r * (size_t)T;
    float *m = b->mask + (size_t)r * (size_t)T;
    memcpy(id, s->ids + s->tok_off[i], (size_t)L * sizeof *id);
    memcpy(ty, s->type_ids + s->tok_off[i], (size_t)L * sizeof *ty);
    for (int t = 0; t < L; t++) m[t] = 1.0f;
    for (int t = L; t < T; t++) {
      id[t] = s->pad_id;
      ty[t] = 0;
      m[t] = 0.0f;
    }
    b->len[r] = L;
    b->targets[r] = s->labels[i];
    b->index[r] = i;
  }
  out->B = rows;
  out->T = T;
  out->ids = b->ids;
  out->type_ids = b->type_ids;
  out->mask = b->mask;
  out->targets = b->targets;
  out->index = b->index;
  out->len = b->len;
  out->k = k;
  out->epoch = b->epoch;
  return AF_OK;
}

int af_batcher_next(af_batcher *b, af_batch *out) {
  if (b->epoch < 0 || b->next_k >= b->nb) return 0;
  if (af_batcher_get(b, b->next_k, out) != AF_OK) return 0;
  b->next_k++;
  return 1;
}
