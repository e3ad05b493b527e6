/* Batches of a tokenized split: a per-epoch order drawn from (seed, epoch) with a fixed PRNG
 * (splitmix64 + Fisher-Yates), so the order of any epoch is known in advance (the activation
 * cache prefetches by it), dynamic padding to the longest row of each batch, and optional
 * length bucketing (sort by length within chunks of `bucket` batches, then shuffle the batch
 * order). All buffers are sized for batch x max_len at init: no allocation per batch.
 *
 *   af_batcher_opts o; af_batcher_opts_default(&o); o.batch = 32; o.seed = 1;
 *   af_batcher *b; AF_TRY(af_batcher_init(&b, split, &o));
 *   for (int e = 0; e < epochs; e++) {
 *     AF_TRY(af_batcher_begin(b, e));
 *     af_batch bt;
 *     while (af_batcher_next(b, &bt)) { ... bt.B rows of bt.T tokens ... }
 *   }
 *   af_batcher_free(b);
 *
 * The order of epoch e: af_batcher_epoch_order(b, e, order); batch k is
 * order[k*batch .. min((k+1)*batch, n)). Eval batchers use shuffle = 0 (file order). */
#ifndef AF_BATCHER_H
#define AF_BATCHER_H
#include <stddef.h>
#include <stdint.h>
#include "core/base/status.h"
#include "core/data/task.h"

typedef struct {
  int batch;        /* B: rows per batch (default 32) */
  uint64_t seed;    /* default 1 */
  int shuffle;      /* 1 (default): a new order every epoch; 0: file order every epoch */
  int drop_last;    /* 1: drop the last partial batch (default 0: keep it, it comes last) */
  int bucket;       /* 0 (default): off; N: length-bucketed batches over chunks of N batches */
} af_batcher_opts;

void af_batcher_opts_default(af_batcher_opts *o);

/* One batch; the arrays belong to the batcher and are overwritten by the next call. */
typedef struct {
  int B;                   /* rows in this batch (<= batch; the last one may be partial) */
  int T;                   /* padded length = longest row of this batch */
  const int32_t *ids;      /* [B, T] token ids, padding = the tokenizer's [PAD] id */
  const int32_t *type_ids; /* [B, T] segment ids, 0 on padding */
  const float *mask;       /* [B, T] 1 real token, 0 padding */
  const float *targets;    /* [B] class index as float or regression target */
  const int64_t *index;    /* [B] example indices in the split */
  const int32_t *len;      /* [B] real tokens per row */
  size_t k;                /* batch number within the epoch */
  int epoch;
} af_batch;

typedef struct af_batcher af_batcher;

/* The split must be encoded (af_task_encode). The batcher keeps a pointer to it. */
af_status af_batcher_init(af_batcher **b, const af_split *s, const af_batcher_opts *o);
void af_batcher_free(af_batcher *b);  /* NULL is fine */

size_t af_batcher_num_batches(const af_batcher *b);   /* per epoch */
size_t af_batcher_num_examples(const af_batcher *b);  /* per epoch (fewer with drop_last) */

/* The example order of epoch e into order[af_batcher_num_examples(b)]; does not disturb the
 * batcher's current epoch, and may be called from another thread (it allocates its own scratch). */
af_status af_batcher_epoch_order(const af_batcher *b, int epoch, int64_t *order);

/* Start epoch e (computes its order into the batcher's buffers). */
af_status af_batcher_begin(af_batcher *b, int epoch);
/* The next batch of the current epoch: 1 and *out filled, 0 when the epoch is done. */
int af_batcher_next(af_batcher *b, af_batch *out);
/* Batch k of the current epoch (random access); AF_ERR_ARG when k is out of range. */
af_status af_batcher_get(af_batcher *b, size_t k, af_batch *out);
/* The current epoch's order (af_batcher_num_examples entries). */
const int64_t *af_batcher_order(const af_batcher *b);

#endif
