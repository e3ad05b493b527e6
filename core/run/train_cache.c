/* The frozen prefix of a batch through the activation cache: which rows hit, which are
 * advanced from a lower depth, which are computed from the tokens, and storing h[k] after
 * a forward from below the frozen depth. How the cache works: docs/cache.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/base/fsutil.h"
#include "core/run/run.h"

af_status af_run_open_cache(af_run *r) {
  const af_train_opts *o = r->o;
  if (o->cache == AF_CACHE_OFF) return AF_OK;
  if (o->accum > 1) {  /* entries are gathered per whole batch */
    af_warn("the activation cache needs --accum 1; running without it");
    r->cache_off_reason = "the activation cache needs --accum 1";
    return AF_OK;
  }
  char dir[4096], key[512];
  if (o->cache_dir) snprintf(dir, sizeof dir, "%s", o->cache_dir);
  else af_path_dir(o->out, dir, sizeof dir);
  /* rank: each data-parallel rank caches its own rows, in files of its own */
  snprintf(key, sizeof key, "model=%s;task=%s;seed=%llu;max_len=%d;rank=%d;pid=%ld;t=%.6f", o->model_dir, o->task,
           (unsigned long long)o->seed, o->max_len, r->rank, (long)getpid(), af_now());
  /* strict: with --cache disk, a folder that cannot be created (or a file that cannot be
   * made in it) fails the run here, before any training, rather than running uncached */
  af_act_cache_opts co = {.mode = o->cache, .dtype = r->ro.cache_dtype, .budget_bytes = o->cache_budget, .dir = dir,
                          .compress = o->cache_compress, .n_examples = r->train->n, .hidden = r->C, .run_key = key,
                          .strict = 1};
  return af_act_cache_open(&co, &r->cache);
}

/* Row i's cache entry into dst [T,C], its padding rows zeroed; *depth is the entry's depth,
 * or -1 when it was lost meanwhile (the cache turned off; the get counts the miss). */
static af_status read_entry(af_run *r, const af_batch *b, int i, float *dst, int *depth) {
  int len;
  AF_TRY(af_act_cache_get(r->cache, (size_t)b->index[i], dst, &len, depth));
  if (len != b->len[i]) *depth = -1;
  else memset(dst + (size_t)len * r->C, 0, (size_t)(b->T - len) * r->C * sizeof(float));
  return AF_OK;
}

/* The frozen prefix of a batch, through the activation cache, entry by entry: entries at
 * the current depth k are read as they are; entries at a lower depth j are read and pushed
 * through layers j..k-1 (the advance); absent entries are computed from the tokens. On
 * return *start is where the step's forward begins, from r->hbuf [B,T,C] when > 0.
 * When every row starts from the same depth j < k (the common case: the first epoch after
 * a freeze), the step's own forward runs from j and *store is set: the caller stores h[k]
 * after it (cache_store), so filling costs no more than running without the cache.
 * A batch mixing depths runs either whole from the tokens (the same, *start 0) or, when
 * enough of it hits, each group of rows as one sub-batch of the batch's padded length,
 * its h[k] rows stored and placed into r->hbuf, and *start is k. The caller loads the
 * full batch after; *t_prefix is the time those sub-batch forwards took (forward time,
 * not data time, in the results). */
af_status af_run_cache_prepare(af_run *r, const af_batch *b, int *start, int *store, double *t_prefix) {
  *start = 0;
  *store = 0;
  *t_prefix = 0;
  if (!r->cache || r->depth == 0) return AF_OK;
  const int k = r->depth, B = b->B, T = b->T;
  const size_t row = (size_t)T * (size_t)r->C;
  int *grp = r->grp;  /* [B]: the depth a row starts from (0: the tokens), k for a hit */
  int same = 1, d;
  for (int i = 0; i < B; i++) {
    d = af_act_cache_depth(r->cache, (size_t)b->index[i]);
    /* absent, or stored deeper than k (the depth went back: gated): computed from the tokens */
    if (d < 0 || d > k) af_act_cache_count_miss(r->cache);
    grp[i] = d > 0 && d <= k ? d : 0;
    same &= grp[i] == grp[0];
  }
  if (same && grp[0] < k) {
    const int j = grp[0];
    for (int i = 0; i < B && j > 0; i++) {
      AF_TRY(read_entry(r, b, i, r->hbuf + (size_t)i * row, &d));
      if (d != j) {  /* lost: all from the tokens */
        *store = 1;
        return AF_OK;
      }
    }
    *start = j;
    *store = 1;
    return AF_OK;
  }
  /* Mixed depths: per-group sub-batches do sum(k - grp) row-layers of prefix, one forward
   * from the tokens B*k. A sub-batch row costs about 1.5x a full-batch row (MiniLM, batch
   * 16: separate small GEMMs), so the sub-batches win only when the hits save enough. */
  long w_sub = 0;
  for (int i = 0; i < B; i++) w_sub += k - grp[i];
  if (2L * B * k <= 3L * w_sub) {
    for (int i = 0; i < B; i++)
      if (grp[i] > 0) af_act_cache_count_miss(r->cache);  /* stored, but recomputed with the batch */
    *store = 1;
    return AF_OK;
  }
  for (int i = 0; i < B; i++) {
    if (grp[i] != k) continue;
    AF_TRY(read_entry(r, b, i, r->hbuf + (size_t)i * row, &d));
    if (d != k) grp[i] = 0;  /* lost: recompute */
  }
  for (int j = k - 1; j >= 0; j--) {  /* the tokens group last: lost entries join it */
    int n = 0;
    for (int i = 0; i < B; i++) {
      if (grp[i] != j) continue;
      if (j > 0) {  /* the stored entry at depth j, to advance */
        AF_TRY(read_entry(r, b, i, r->hsub + (size_t)n * row, &d));
        if (d != j) {  /* lost: from the tokens */
          grp[i] = 0;
          continue;
        }
      }
      const size_t src = (size_t)i * T, dst = (size_t)n * T;
      memcpy(r->sub_ids + dst, b->ids + src, (size_t)T * sizeof(int32_t));
      memcpy(r->sub_tt + dst, b->type_ids + src, (size_t)T * sizeof(int32_t));
      memcpy(r->sub_mask + dst, b->mask + src, (size_t)T * sizeof(float));
      r->sub_tgt[n] = b->targets[i];
      r->sub_rows[n] = i;
      n++;
    }
    if (n == 0) continue;
    af_bert_input in = {r->sub_ids, r->sub_tt, r->sub_mask, r->sub_tgt, n, T};
    AF_TRY(af_bert_load_batch(&r->m, &in));
    if (j > 0) AF_TRY(af_bert_load_hidden(&r->m, j, r->hsub, n, T));
    double a = af_now();
    AF_TRY(af_bert_forward_prefix(&r->m, n, T, j, k));
    AF_TRY(r->be->to_host(r->be, r->hsub, af_bert_hidden(&r->m, k), (size_t)n * row * sizeof(float)));
    *t_prefix += af_now() - a;
    for (int q = 0; q < n; q++) {
      const int i = r->sub_rows[q];
      memcpy(r->hbuf + (size_t)i * row, r->hsub + (size_t)q * row, row * sizeof(float));
      AF_TRY(af_act_cache_put(r->cache, (size_t)b->index[i], k, r->hsub + (size_t)q * row, b->len[i]));
    }
  }
  *start = k;
  return AF_OK;
}

/* After a forward from below the frozen depth k: h[k] of every row into the cache. */
af_status af_run_cache_store(af_run *r, const af_batch *b) {
  const int k = r->depth, B = b->B, T = b->T;
  const size_t row = (size_t)T * (size_t)r->C;
  AF_TRY(r->be->to_host(r->be, r->hsub, af_bert_hidden(&r->m, k), (size_t)B * row * sizeof(float)));
  for (int i = 0; i < B; i++)
    AF_TRY(af_act_cache_put(r->cache, (size_t)b->index[i], k, r->hsub + (size_t)i * row, b->len[i]));
  return AF_OK;
}

void af_run_cache_prefetch_next(af_run *r) {
  if (!r->cache || r->depth == 0) return;
  size_t k = r->batch_in_epoch;  /* the batch after the current one */
  size_t nb = af_batcher_num_batches(r->bt), n = af_batcher_num_examples(r->bt);
  if (k >= nb) return;
  const int64_t *order = af_batcher_order(r->bt);
  size_t lo = k * (size_t)r->o->batch, hi = lo + (size_t)r->o->batch;
  if (hi > n) hi = n;
  int s0, s1;  /* this rank's rows of it */
  af_run_dist_slice(r, (int)(hi - lo), &s0, &s1);
  hi = lo + (size_t)s1;
  lo += (size_t)s0;
  size_t idx[1024];
  int cnt = 0;
  for (size_t i = lo; i < hi && cnt < 1024; i++) idx[cnt++] = (size_t)order[i];
  af_act_cache_prefetch(r->cache, idx, cnt);
}

