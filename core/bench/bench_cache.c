/* `autofreeze bench cache`: for each frozen depth k in 1..L-1, the optimizer step time
 * without the activation cache (forward from the embeddings) and with it (the batch's
 * entries gathered from the cache into a padded [B,T,C] buffer, forward from layer k),
 * their ratio, the cache's size, and its I/O per step. Examples have variable real lengths
 * (T/2..T tokens), as the cache stores real tokens only. The losses of both paths are
 * compared step by step: with fp32 storage they should agree to the last bit. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "core/base/timing.h"
#include "core/bench/bench.h"
#include "core/bench/bench_model.h"
#include "core/model/bert.h"
#include "core/run/cache.h"
#include "core/cli/cli.h"
#include "core/model/optim.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: autofreeze bench cache (--model DIR | --config tiny|minilm-l6|bert-base) [options]\n"
          "  --batch B        examples per step (32)\n"
          "  --seq S          padded tokens per example (128); real lengths are S/2..S\n"
          "  --steps N        timed steps per depth and path (4), after --warmup W (1)\n"
          "  --dtype D        cache storage: f32 | f16 | bf16 (f32)\n"
          "  --tier T         memory | disk (memory)\n"
          "  --compress N     deflate level 0-9 for the disk tier (0)\n"
          "  --dir DIR        folder for the disk tier file ($TMPDIR or /tmp)\n"
          "  --threads N      OpenMP threads (all cores)\n"
          "  --device D       cpu | cuda | auto (cpu)\n");
}

typedef struct {
  int B, T, C, nb;           /* nb distinct batches, example e = b*B + j */
  int *len;                  /* [nb*B] real tokens */
  int32_t *ids, *tt;         /* [nb*B*T] */
  float *mask, *tgt;         /* [nb*B*T], [nb*B] */
} bench_data;

static af_status load_batch(af_bert *m, const bench_data *d, int b) {
  size_t o = (size_t)b * d->B * d->T;
  af_bert_input batch = {d->ids + o, d->tt + o, d->mask + o, d->tgt + (size_t)b * d->B, d->B, d->T};
  return af_bert_load_batch(m, &batch);
}

/* One optimizer step at depth k, from layer `start` (hidden already loaded when start > 0). */
static af_status step(af_bert *m, const af_optim_opts *oo, int B, int T, int k, int start, uint64_t seed, long t,
                      float *loss) {
  double gn;
  af_grads_zero(m, k);
  AF_TRY(af_bert_forward(m, B, T, start, k, 1, seed, loss));
  AF_TRY(af_bert_backward(m, B, T, k, seed, 1.0f / (float)B));
  AF_TRY(af_optim_step(m, oo, k, 1e-5f, t, &gn));
  return m->be->sync(m->be);
}

int af_bench_cache(int argc, char **argv) {
  const char *model = NULL, *cfgname = NULL, *device = "cpu", *dtype_s = "f32", *tier_s = "memory", *dir = NULL;
  int B = 32, T = 128, steps = 4, warmup = 1, threads = 0, compress = 0;
  static const struct option opts[] = {
      {"model", 1, 0, 'm'},   {"config", 1, 0, 'c'}, {"batch", 1, 0, 'b'},    {"seq", 1, 0, 's'},
      {"steps", 1, 0, 'n'},   {"warmup", 1, 0, 'w'}, {"dtype", 1, 0, 'D'},    {"tier", 1, 0, 'T'},
      {"compress", 1, 0, 'z'}, {"dir", 1, 0, 'o'},   {"threads", 1, 0, 't'},  {"device", 1, 0, 'd'},
      {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
  optind = 1;
  for (int ch; (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
    switch (ch) {
    case 'm': model = optarg; break;
    case 'c': cfgname = optarg; break;
    case 'b': B = atoi(optarg); break;
    case 's': T = atoi(optarg); break;
    case 'n': steps = atoi(optarg); break;
    case 'w': warmup = atoi(optarg); break;
    case 'D': dtype_s = optarg; break;
    case 'T': tier_s = optarg; break;
    case 'z': compress = atoi(optarg); break;
    case 'o': dir = optarg; break;
    case 't': threads = atoi(optarg); break;
    case 'd': device = optarg; break;
    case 'h': usage(stdout); return AF_EXIT_OK;
    default: usage(stderr); return AF_EXIT_USAGE;
    }
  }
  af_cache_dtype dtype = !strcmp(dtype_s, "f32") ? AF_DTYPE_F32 : !strcmp(dtype_s, "f16") ? AF_DTYPE_F16
                       : !strcmp(dtype_s, "bf16") ? AF_DTYPE_BF16 : (af_cache_dtype)-1;
  af_cache_mode mode = !strcmp(tier_s, "memory") ? AF_CACHE_MEMORY : !strcmp(tier_s, "disk") ? AF_CACHE_DISK
                     : (af_cache_mode)-1;
  if ((!model) == (!cfgname) || B < 1 || T < 2 || steps < 1 || warmup < 0 || (int)dtype < 0 || (int)mode < 0 ||
      compress < 0 || compress > 9) {
    fprintf(stderr, "autofreeze bench cache: give exactly one of --model or --config, positive sizes, "
                    "--dtype f32|f16|bf16, --tier memory|disk, --compress 0-9\n");
    usage(stderr);
    return AF_EXIT_USAGE;
  }
  af_config cfg;
  if (af_bench_config(model, cfgname, &cfg) != AF_OK) return af_cli_report("bench cache");
  const int L = cfg.num_hidden_layers, C = cfg.hidden_size, NL = 2;
  if (L < 2) {
    fprintf(stderr, "autofreeze bench cache: the model needs at least 2 layers\n");
    return AF_EXIT_USAGE;
  }
  af_backend *be = NULL;
  if (af_backend_open(device, threads, &be) != AF_OK) return af_cli_report("bench cache");
  af_bert m;
  memset(&m, 0, sizeof m);
  int rc = AF_EXIT_RUNTIME;
  const int nb = warmup + steps;  /* distinct batches: every timed step reads new entries */
  bench_data d = {B, T, C, nb, NULL, NULL, NULL, NULL, NULL};
  float *host = NULL, *hid = NULL, *pad = NULL, *loss0 = NULL, *loss1 = NULL;
  double *ts = NULL;
  af_act_cache *cache = NULL;
  size_t nex = (size_t)nb * B, nbt = nex * T;
  d.len = malloc(nex * sizeof *d.len);
  d.ids = malloc(nbt * sizeof *d.ids);
  d.tt = malloc(nbt * sizeof *d.tt);
  d.mask = malloc(nbt * sizeof *d.mask);
  d.tgt = malloc(nex * sizeof *d.tgt);
  hid = malloc((size_t)B * T * C * sizeof *hid);
  pad = calloc((size_t)B * T * C, sizeof *pad);
  loss0 = malloc((size_t)nb * sizeof *loss0);
  loss1 = malloc((size_t)nb * sizeof *loss1);
  ts = malloc(sizeof(double) * (size_t)steps * 3);
  if (!d.len || !d.ids || !d.tt || !d.mask || !d.tgt || !hid || !pad || !loss0 || !loss1 || !ts) {
    AF_FAIL(AF_ERR_NOMEM, "out of memory for benchmark buffers");
    goto out;
  }
  if (af_bert_init(&m, be, &cfg, NL, B, T, 0) != AF_OK) goto out;
  if (!(host = malloc(m.lay.total * sizeof(float)))) {
    AF_FAIL(AF_ERR_NOMEM, "out of memory for the parameters");
    goto out;
  }
  if (af_bench_params(model, &cfg, &m.lay, host) != AF_OK) goto out;
  for (size_t e = 0; e < nex; e++) {
    d.len[e] = T / 2 + (int)(af_rng_mix(11, e) % (uint64_t)(T - T / 2 + 1));
    d.tgt[e] = (float)(e % NL);
    for (int t = 0; t < T; t++) {
      size_t o = e * T + (size_t)t;
      d.ids[o] = t < d.len[e] ? (int32_t)(af_rng_mix(7, o) % (uint64_t)cfg.vocab_size) : 0;
      d.tt[o] = t >= d.len[e] / 2 && t < d.len[e];
      d.mask[o] = t < d.len[e] ? 1.f : 0.f;
    }
  }
  long long real_tokens = 0;
  for (size_t e = 0; e < nex; e++) real_tokens += d.len[e];

  af_optim_opts oo;
  af_optim_defaults_hf(&oo);
  printf("bench cache: %s, L=%d C=%d, batch %d x seq %d (%.0f real tokens/example on average), device %s, GEMM %s\n",
         model ? model : cfgname, L, C, B, T, (double)real_tokens / (double)nex, be->name, be->gemm_name);
  printf("cache: tier %s, dtype %s%s; %d batches of new entries per path; a fixed [%d,%d] fp32 store like the paper's: %.2f "
         "MiB/example\n",
         tier_s, dtype_s, compress ? ", deflate" : "", nb, T, C, (double)T * C * 4 / 1048576.0);
  printf("%-6s %10s %10s %7s %9s %9s %11s %10s %10s %9s %10s\n", "frozen", "nocache_ms", "cached_ms", "ratio",
         "gather_ms", "fill_ms/b", "cache_MiB", "B/example", "read_MB/st", "io_ms/st", "loss_diff");
  for (int k = 1; k < L; k++) {
    /* Fresh parameters per depth so both paths start from the same state. */
    if (af_bert_set_params(&m, host) != AF_OK) goto out;
    char key[256];
    snprintf(key, sizeof key, "bench;model=%s;k=%d;pid=%ld", model ? model : cfgname, k, (long)getpid());
    af_act_cache_opts co = {.mode = mode, .dtype = dtype, .budget_bytes = 0, .dir = dir, .compress = compress,
                            .n_examples = nex, .hidden = C, .run_key = key};
    if (af_act_cache_open(&co, &cache) != AF_OK) goto out;
    if (af_act_cache_disabled_reason(cache)) {
      fprintf(stderr, "autofreeze bench cache: the cache is off: %s\n", af_act_cache_disabled_reason(cache));
      goto out;
    }
    /* Fill: the frozen prefix (no dropout) of each batch and h_k of every example's real
     * tokens, as training fills a batch that mixes depths. */
    double f0 = af_now();
    for (int b = 0; b < nb; b++) {
      if (load_batch(&m, &d, b) != AF_OK || af_bert_forward_prefix(&m, B, T, 0, k) != AF_OK ||
          be->to_host(be, hid, af_bert_hidden(&m, k), (size_t)B * T * C * sizeof *hid) != AF_OK)
        goto out;
      for (int j = 0; j < B; j++) {
        size_t e = (size_t)b * B + (size_t)j;
        if (af_act_cache_put(cache, e, k, hid + (size_t)j * T * C, d.len[e]) != AF_OK) goto out;
      }
    }
    if (af_act_cache_flush(cache) != AF_OK) goto out;
    double fill = (af_now() - f0) / nb;

    /* Without the cache. */
    for (int it = 0; it < nb; it++) {
      double a = af_now();
      if (load_batch(&m, &d, it) != AF_OK || step(&m, &oo, B, T, k, 0, (uint64_t)it, it + 1, &loss0[it]) != AF_OK)
        goto out;
      if (it >= warmup) ts[it - warmup] = af_now() - a;
    }
    double t_plain = af_median(ts, steps);

    /* With it: the same batches and seeds, from the same parameters. */
    if (af_bert_set_params(&m, host) != AF_OK) goto out;
    af_cache_record r0, r1;
    af_act_cache_stats(cache, &r0);
    size_t *idx = malloc((size_t)B * sizeof *idx);
    if (!idx) goto out;
    for (int j = 0; j < B; j++) idx[j] = (size_t)j;
    af_act_cache_prefetch(cache, idx, B);
    int ok = 1;
    for (int it = 0; it < nb && ok; it++) {
      double a = af_now();
      for (int j = 0; j < B && ok; j++) {
        size_t e = (size_t)it * B + (size_t)j;
        int len, dep;
        float *row = pad + (size_t)j * T * C;
        ok = af_act_cache_get(cache, e, row, &len, &dep) == AF_OK && dep == k && len == d.len[e];
        if (ok && len < T) memset(row + (size_t)len * C, 0, (size_t)(T - len) * C * sizeof *row);
      }
      if (!ok) {
        AF_FAIL(AF_ERR_IO, "bench cache: entry missing at depth %d (cache: %s)", k,
                af_act_cache_disabled_reason(cache) ? af_act_cache_disabled_reason(cache) : "enabled");
        break;
      }
      /* The next batch's entries load while this step computes. */
      if (it + 1 < nb) {
        for (int j = 0; j < B; j++) idx[j] = (size_t)(it + 1) * B + (size_t)j;
        af_act_cache_prefetch(cache, idx, B);
      }
      double g = af_now();
      if (load_batch(&m, &d, it) != AF_OK || af_bert_load_hidden(&m, k, pad, B, T) != AF_OK ||
          step(&m, &oo, B, T, k, k, (uint64_t)it, it + 1, &loss1[it]) != AF_OK) {
        ok = 0;
        break;
      }
      if (it >= warmup) {
        ts[steps + it - warmup] = af_now() - a;
        ts[2 * steps + it - warmup] = g - a;
      }
    }
    free(idx);
    if (!ok) goto out;
    af_act_cache_stats(cache, &r1);
    af_act_cache_detail det;
    af_act_cache_stats_detail(cache, &det);
    double t_cached = af_median(ts + steps, steps), t_gather = af_median(ts + 2 * steps, steps);
    double maxdiff = 0;
    for (int it = 0; it < nb; it++) {
      double dd = fabs((double)loss1[it] - (double)loss0[it]) / fmax(1e-30, fabs((double)loss0[it]));
      if (dd > maxdiff) maxdiff = dd;
    }
    double size = (double)(mode == AF_CACHE_DISK && det.file_bytes > 0 ? det.file_bytes : r1.bytes);
    printf("%-6d %10.1f %10.1f %7.2f %9.2f %9.1f %11.2f %10.0f %10.2f %9.2f %10.2e\n", k, t_plain * 1e3,
           t_cached * 1e3, t_plain / t_cached, t_gather * 1e3, fill * 1e3, size / 1048576.0, size / (double)nex,
           (double)(r1.bytes_read - r0.bytes_read) / nb * 1e-6, (r1.io_time - r0.io_time) / nb * 1e3, maxdiff);
    if (mode == AF_CACHE_DISK)
      printf("       disk: %lld reads (%lld staged by the reader, %lld waits), entry bytes %.2f MiB, file %.2f MiB\n",
             det.disk_reads, det.prefetched, det.prefetch_waits, det.disk_bytes / 1048576.0,
             det.file_bytes / 1048576.0);
    af_act_cache_close(cache);
    cache = NULL;
  }
  printf("ratio = nocache/cached step time; gather = cache gets + padding (part of cached_ms); size per example "
         "vs the paper's %.0f bytes; loss_diff = max relative difference of the step losses (0 = bit-exact)\n",
         (double)T * C * 4);
  rc = AF_EXIT_OK;
out:
  if (rc != AF_EXIT_OK && af_last_error()[0]) af_cli_report("bench cache");
  af_act_cache_close(cache);
  free(d.len), free(d.ids), free(d.tt), free(d.mask), free(d.tgt);
  free(host), free(hid), free(pad), free(loss0), free(loss1), free(ts);
  af_bert_free(&m);
  af_backend_close(be);
  return rc;
}
