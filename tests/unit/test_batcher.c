/* The batcher on a hand-made tokenized split: each epoch is a permutation, known in advance
 * through af_batcher_epoch_order and reproducible from (seed, epoch); dynamic padding, mask,
 * targets and indices; the partial last batch kept or dropped; file order without shuffle;
 * length buckets; buffers reused (no allocation per batch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/data/batcher.h"
#include "tests/testutil.h"

enum { N = 10, MAXLEN = 9, PAD = 0 };
static const int32_t lens[N] = {3, 9, 5, 4, 7, 3, 8, 6, 5, 4};

static void make_split(af_split *s) {
  memset(s, 0, sizeof *s);
  snprintf(s->name, sizeof s->name, "train");
  s->n = N;
  s->has_labels = 1;
  s->max_len = MAXLEN;
  s->pad_id = PAD;
  size_t total = 0;
  for (int i = 0; i < N; i++) total += (size_t)lens[i];
  s->ids = malloc(total * sizeof *s->ids);
  s->type_ids = malloc(total * sizeof *s->type_ids);
  s->tok_off = malloc(N * sizeof *s->tok_off);
  s->len = malloc(N * sizeof *s->len);
  s->labels = malloc(N * sizeof *s->labels);
  size_t off = 0;
  for (int i = 0; i < N; i++) {
    s->tok_off[i] = off;
    s->len[i] = lens[i];
    s->labels[i] = (float)i;
    for (int t = 0; t < lens[i]; t++) {
      s->ids[off + (size_t)t] = 100 * (i + 1) + t;
      s->type_ids[off + (size_t)t] = t >= lens[i] / 2;
    }
    off += (size_t)lens[i];
  }
}

static void free_split(af_split *s) {
  free(s->ids);
  free(s->type_ids);
  free(s->tok_off);
  free(s->len);
  free(s->labels);
}

/* Check one batch's contents against the split; returns its example indices via idx. */
static void check_batch(const af_split *s, const af_batch *b, int64_t *idx) {
  int T = 0;
  for (int r = 0; r < b->B; r++)
    if (s->len[b->index[r]] > T) T = s->len[b->index[r]];
  CHECK(b->T == T);
  for (int r = 0; r < b->B; r++) {
    int64_t i = b->index[r];
    idx[r] = i;
    CHECK(b->targets[r] == (float)i && b->len[r] == s->len[i]);
    for (int t = 0; t < b->T; t++) {
      int real = t < s->len[i];
      int32_t want = real ? 100 * ((int)i + 1) + t : PAD;
      if (b->ids[r * b->T + t] != want || b->mask[r * b->T + t] != (real ? 1.0f : 0.0f) ||
          b->type_ids[r * b->T + t] != (real ? (t >= s->len[i] / 2) : 0)) {
        fprintf(stderr, "  batch %zu row %d token %d: id %d want %d\n", b->k, r, t, b->ids[r * b->T + t], want);
        af_test_failures++;
        return;
      }
    }
  }
}

/* Run one epoch, check it is a permutation of the first `expect` examples and matches order. */
static void run_epoch(af_batcher *bt, const af_split *s, int epoch, size_t expect, int64_t *seen_order) {
  CHECK_OK(af_batcher_begin(bt, epoch));
  af_batch b;
  size_t got = 0, nb = 0;
  const int32_t *ids0 = NULL;
  int count[N] = {0};
  while (af_batcher_next(bt, &b)) {
    if (!ids0) ids0 = b.ids;
    CHECK(b.ids == ids0);  /* the same buffers every batch */
    CHECK(b.k == nb && b.epoch == epoch);
    check_batch(s, &b, seen_order + got);
    for (int r = 0; r < b.B; r++) count[b.index[r]]++;
    got += (size_t)b.B;
    nb++;
  }
  CHECK(got == expect && nb == af_batcher_num_batches(bt));
  int dup = 0;
  for (int i = 0; i < N; i++) dup += count[i] > 1;
  CHECK(dup == 0);
  int64_t pre[N];
  CHECK_OK(af_batcher_epoch_order(bt, epoch, pre));
  CHECK(!memcmp(pre, seen_order, expect * sizeof *pre));
  CHECK(!memcmp(af_batcher_order(bt), seen_order, expect * sizeof *pre));
}

int main(void) {
  af_split s;
  make_split(&s);
  af_batcher_opts o;
  af_batcher_opts_default(&o);
  CHECK(o.batch == 32 && o.shuffle == 1 && o.seed == 1 && !o.drop_last && !o.bucket);
  o.batch = 4;
  af_batcher *b;
  CHECK_OK(af_batcher_init(&b, &s, &o));
  CHECK(af_batcher_num_batches(b) == 3 && af_batcher_num_examples(b) == N);
  int64_t e0[N], e0b[N], e1[N];
  run_epoch(b, &s, 0, N, e0);
  run_epoch(b, &s, 1, N, e1);
  run_epoch(b, &s, 0, N, e0b);
  CHECK(!memcmp(e0, e0b, sizeof e0));   /* reproducible */
  CHECK(memcmp(e0, e1, sizeof e0) != 0);  /* epochs differ */
  /* The order of (seed 1, epoch 0) is pinned: a change to the PRNG or shuffle breaks resumed
   * runs and prefetching, so it must be deliberate. */
  printf("order seed 1 epoch 0:");
  for (int i = 0; i < N; i++) printf(" %lld", (long long)e0[i]);
  printf("\n");
  static const int64_t pinned[N] = {4, 0, 6, 7, 8, 9, 2, 5, 1, 3};
  CHECK(!memcmp(e0, pinned, sizeof pinned));
  /* random access */
  af_batch bt;
  CHECK_OK(af_batcher_begin(b, 0));
  CHECK_OK(af_batcher_get(b, 2, &bt));
  CHECK(bt.B == 2 && bt.index[0] == e0[8] && bt.index[1] == e0[9]);
  CHECK(af_batcher_get(b, 3, &bt) == AF_ERR_ARG);
  af_batcher_free(b);

  /* another seed gives another order */
  o.seed = 2;
  CHECK_OK(af_batcher_init(&b, &s, &o));
  int64_t s2[N];
  run_epoch(b, &s, 0, N, s2);
  CHECK(memcmp(s2, e0, sizeof s2) != 0);
  af_batcher_free(b);

  /* drop_last: two full batches */
  o.seed = 1;
  o.drop_last = 1;
  CHECK_OK(af_batcher_init(&b, &s, &o));
  CHECK(af_batcher_num_batches(b) == 2 && af_batcher_num_examples(b) == 8);
  int64_t d[N];
  run_epoch(b, &s, 0, 8, d);
  CHECK(!memcmp(d, e0, 8 * sizeof *d));  /* the same order, tail dropped */
  af_batcher_free(b);

  /* no shuffle: file order every epoch */
  o.drop_last = 0;
  o.shuffle = 0;
  CHECK_OK(af_batcher_init(&b, &s, &o));
  int64_t f[N];
  run_epoch(b, &s, 3, N, f);
  for (int i = 0; i < N; i++) CHECK(f[i] == i);
  af_batcher_free(b);

  /* buckets of 2 batches (chunks of 8): lengths sorted inside each full batch */
  o.shuffle = 1;
  o.bucket = 2;
  CHECK_OK(af_batcher_init(&b, &s, &o));
  int64_t k[N];
  for (int e = 0; e < 3; e++) {
    run_epoch(b, &s, e, N, k);
    for (int bi = 0; bi < 2; bi++)
      for (int r = 1; r < 4; r++) CHECK(lens[k[bi * 4 + r - 1]] <= lens[k[bi * 4 + r]]);
  }
  af_batcher_free(b);
  /* eval-style buckets without shuffle: the first chunk sorted by length */
  o.shuffle = 0;
  CHECK_OK(af_batcher_init(&b, &s, &o));
  run_epoch(b, &s, 0, N, k);
  for (int r = 1; r < 8; r++) CHECK(lens[k[r - 1]] <= lens[k[r]]);
  af_batcher_free(b);

  /* errors */
  o.batch = 0;
  CHECK(af_batcher_init(&b, &s, &o) == AF_ERR_ARG);
  o.batch = 20;
  o.drop_last = 1;
  CHECK(af_batcher_init(&b, &s, &o) == AF_ERR_ARG);
  af_split raw;
  memset(&raw, 0, sizeof raw);
  raw.n = 3;
  o.batch = 2;
  CHECK(af_batcher_init(&b, &raw, &o) == AF_ERR_ARG && strstr(af_last_error(), "not tokenized"));
  af_batcher_free(NULL);
  free_split(&s);
  return af_test_done("test_batcher");
}
