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
#include "core/run/options.h"
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

typedef struct {
  const char *model, *cfgname, *device, *dtype_s, *tier_s, *dir;
  int B, T, steps, warmup, threads, compress;
  af_cache_dtype dtype;
  af_cache_mode mode;
} cache_opts;

/* -1 to go on, else the exit code (help, usage error). */
static int parse_opts(int argc, char **argv, cache_opts *o) {
  *o = (cache_opts){NULL, NULL, "cpu", "f32", "memory", NULL, 32, 128, 4, 1, 0, 0, AF_DTYPE_F32, AF_CACHE_MEMORY};
  static const struct option opts[] = {
      {"model", 1, 0, 'm'},   {"config", 1, 0, 'c'}, {"batch", 1, 0, 'b'},    {"seq", 1, 0, 's'},
      {"steps", 1, 0, 'n'},   {"warmup", 1, 0, 'w'}, {"dtype", 1, 0, 'D'},    {"tier", 1, 0, 'T'},
      {"compress", 1, 0, 'z'}, {"dir", 1, 0, 'o'},   {"threads", 1, 0, 't'},  {"device", 1, 0, 'd'},
      {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
  optind = 1;
  for (int ch; (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
    switch (ch) {
    case 'm': o->model = optarg; break;
    case 'c': o->cfgname = optarg; break;
    case 'b': o->B = atoi(optarg); break;
    case 's': o->T = atoi(optarg); break;
    case 'n': o->steps = atoi(optarg); break;
    case 'w': o->warmup = atoi(optarg); break;
    case 'D': o->dtype_s = optarg; break;
    case 'T': o->tier_s = optarg; break;
    case 'z': o->compress = atoi(optarg); break;
    case 'o': o->dir = optarg; break;
    case 't': o->threads = atoi(optarg); break;
    case 'd': o->device = optarg; break;
    case 'h': usage(stdout); return AF_EXIT_OK;
    default: usage(stderr); return AF_EXIT_USAGE;
    }
  }
  const char *ds = o->dtype_s, *ts = o->tier_s;
  o->dtype = (af_cache_dtype)af_choice_index(af_cache_dtype_names, ds);
  o->mode = (af_cache_mode)af_choice_index(af_cache_mode_names, ts);  /* the benchmark's tiers: memory, disk */
  if (o->mode != AF_CACHE_MEMORY && o->mode != AF_CACHE_DISK) o->mode = (af_cache_mode)-1;
  if ((!o->model) == (!o->cfgname) || o->B < 1 || o->T < 2 || o->steps < 1 || o->warmup < 0 || (int)o->dtype < 0 || o->dtype == AF_DTYPE_AUTO ||
      (int)o->mode < 0 || o->compress < 0 || o->compress > 9) {
    fprintf(stderr, "autofreeze bench cache: give exactly one of --model or --config, positive sizes, "
                    "--dtype f32|f16|bf16, --tier memory|disk, --compress 0-9\n");
    usage(stderr);
    return AF_EXIT_USAGE;
  }
  return -1;
}

enum { NL = 2 }; /* labels of the benchmark's classifier */

/* Everything one benchmark run holds: options, model, examples and the host buffers. */
typedef struct {
  const cache_opts *o;
  af_config cfg;
  af_bert m;
  af_optim_opts oo;
  bench_data d;
  size_t nex;                      /* examples: nb * B */
  float *host, *hid, *pad;         /* [lay.total]; [B,T,C] hidden from the model; [B,T,C] padded entries */
  float *loss0, *loss1;            /* [nb] step losses without / with the cache */
  double *ts;                      /* [3][steps]: plain step, cached step, gather */
} cache_run;

static void run_free(cache_run *r) {
  bench_data *d = &r->d;
  free(d->len), free(d->ids), free(d->tt), free(d->mask), free(d->tgt);
  free(r->host), free(r->hid), free(r->pad), free(r->loss0), free(r->loss1), free(r->ts);
  af_bert_free(&r->m);
}

/* Buffers, the model's parameters on the host, and nb batches of examples with real
 * lengths T/2..T. */
static af_status run_init(cache_run *r, af_backend *be) {
  const cache_opts *o = r->o;
  const int B = o->B, T = o->T, C = r->cfg.hidden_size, nb = o->warmup + o->steps;
  bench_data *d = &r->d;
  *d = (bench_data){B, T, C, nb, NULL, NULL, NULL, NULL, NULL};
  r->nex = (size_t)nb * B;
  size_t nbt = r->nex * T;
  d->len = malloc(r->nex * sizeof *d->len);
  d->ids = malloc(nbt * sizeof *d->ids);
  d->tt = malloc(nbt * sizeof *d->tt);
  d->mask = malloc(nbt * sizeof *d->mask);
  d->tgt = malloc(r->nex * sizeof *d->tgt);
  r->hid = malloc((size_t)B * T * C * sizeof *r->hid);
  r->pad = calloc((size_t)B * T * C, sizeof *r->pad);
  r->loss0 = malloc((size_t)nb * sizeof *r->loss0);
  r->loss1 = malloc((size_t)nb * sizeof *r->loss1);
  r->ts = malloc(sizeof(double) * (size_t)o->steps * 3);
  if (!d->len || !d->ids || !d->tt || !d->mask || !d->tgt || !r->hid || !r->pad || !r->loss0 || !r->loss1 || !r->ts)
    return AF_FAIL(AF_ERR_NOMEM, "out of memory for benchmark buffers");
  AF_TRY(af_bert_init(&r->m, be, &r->cfg, NL, B, T, 0));
  if (!(r->host = malloc(r->m.lay.total * sizeof(float)))) return AF_FAIL(AF_ERR_NOMEM, "out of memory for the parameters");
  AF_TRY(af_bench_params(o->model, &r->cfg, &r->m.lay, r->host));
  for (size_t e = 0; e < r->nex; e++) {
    d->len[e] = T / 2 + (int)(af_rng_mix(11, e) % (uint64_t)(T - T / 2 + 1));
    d->tgt[e] = (float)(e % NL);
    for (int t = 0; t < T; t++) {
      size_t i = e * T + (size_t)t;
      d->ids[i] = t < d->len[e] ? (int32_t)(af_rng_mix(7, i) % (uint64_t)r->cfg.vocab_size) : 0;
      d->tt[i] = t >= d->len[e] / 2 && t < d->len[e];
      d->mask[i] = t < d->len[e] ? 1.f : 0.f;
    }
  }
  af_optim_defaults_hf(&r->oo);
  return AF_OK;
}

static void print_header(const cache_run *r) {
  const cache_opts *o = r->o;
  const int T = o->T, C = r->cfg.hidden_size;
  long long real_tokens = 0;
  for (size_t e = 0; e < r->nex; e++) real_tokens += r->d.len[e];
  printf("bench cache: %s, L=%d C=%d, batch %d x seq %d (%.0f real tokens/example on average), device %s, GEMM %s\n",
         o->model ? o->model : o->cfgname, r->cfg.num_hidden_layers, C, o->B, T, (double)real_tokens / (double)r->nex,
         r->m.be->name, r->m.be->gemm_name);
  printf("cache: tier %s, dtype %s%s; %d batches of new entries per path; a fixed [%d,%d] fp32 store like the paper's: %.2f "
         "MiB/example\n",
         o->tier_s, o->dtype_s, o->compress ? ", deflate" : "", r->d.nb, T, C, (double)T * C * 4 / 1048576.0);
  printf("%-6s %10s %10s %7s %9s %9s %11s %10s %10s %9s %10s\n", "frozen", "nocache_ms", "cached_ms", "ratio",
         "gather_ms", "fill_ms/b", "cache_MiB", "B/example", "read_MB/st", "io_ms/st", "loss_diff");
}

/* A fresh cache for depth k; -1 (message given) when it cannot be opened or is off. */
static int open_cache(const cache_run *r, int k, af_act_cache **cache) {
  const cache_opts *o = r->o;
  char key[256];
  snprintf(key, sizeof key, "bench;model=%s;k=%d;pid=%ld", o->model ? o->model : o->cfgname, k, (long)getpid());
  af_act_cache_opts co = {.mode = o->mode, .dtype = o->dtype, .budget_bytes = 0, .dir = o->dir,
                          .compress = o->compress, .n_examples = r->nex, .hidden = r->cfg.hidden_size, .run_key = key};
  if (af_act_cache_open(&co, cache) != AF_OK) return -1;
  if (af_act_cache_disabled_reason(*cache)) {
    fprintf(stderr, "autofreeze bench cache: the cache is off: %s\n", af_act_cache_disabled_reason(*cache));
    return -1;
  }
  return 0;
}

/* Fill: the frozen prefix (no dropout) of each batch and h_k of every example's real
 * tokens, as training fills a batch that mixes depths. Seconds per batch, < 0 on failure. */
static double fill_cache(cache_run *r, int k, af_act_cache *cache) {
  af_backend *be = r->m.be;
  const int B = r->o->B, T = r->o->T, C = r->cfg.hidden_size, nb = r->d.nb;
  double f0 = af_now();
  for (int b = 0; b < nb; b++) {
    if (load_batch(&r->m, &r->d, b) != AF_OK || af_bert_forward_prefix(&r->m, B, T, 0, k) != AF_OK ||
        be->to_host(be, r->hid, af_bert_hidden(&r->m, k), (size_t)B * T * C * sizeof *r->hid) != AF_OK)
      return -1;
    for (int j = 0; j < B; j++) {
      size_t e = (size_t)b * B + (size_t)j;
      if (af_act_cache_put(cache, e, k, r->hid + (size_t)j * T * C, r->d.len[e]) != AF_OK) return -1;
    }
  }
  if (af_act_cache_flush(cache) != AF_OK) return -1;
  return (af_now() - f0) / nb;
}

/* Without the cache: every step from the embeddings; times into ts[0..steps). */
static af_status time_plain(cache_run *r, int k) {
  const int B = r->o->B, T = r->o->T, warmup = r->o->warmup;
  for (int it = 0; it < r->d.nb; it++) {
    double a = af_now();
    AF_TRY(load_batch(&r->m, &r->d, it));
    AF_TRY(step(&r->m, &r->oo, B, T, k, 0, (uint64_t)it, it + 1, &r->loss0[it]));
    if (it >= warmup) r->ts[it - warmup] = af_now() - a;
  }
  return AF_OK;
}

/* The entries of batch `it` from the cache into pad (zeros past each real length); 0 when
 * every entry is there at depth k with its length. */
static int gather(cache_run *r, int k, af_act_cache *cache, int it) {
  const int B = r->o->B, T = r->o->T, C = r->cfg.hidden_size;
  for (int j = 0; j < B; j++) {
    size_t e = (size_t)it * B + (size_t)j;
    int len, dep;
    float *row = r->pad + (size_t)j * T * C;
    if (af_act_cache_get(cache, e, row, &len, &dep) != AF_OK || dep != k || len != r->d.len[e]) return -1;
    if (len < T) memset(row + (size_t)len * C, 0, (size_t)(T - len) * C * sizeof *row);
  }
  return 0;
}

/* With the cache: the same batches and seeds, each step from layer k on the gathered
 * entries while the next batch's entries load; times into ts[steps..3*steps). */
static int time_cached(cache_run *r, int k, af_act_cache *cache) {
  const int B = r->o->B, T = r->o->T, steps = r->o->steps, warmup = r->o->warmup, nb = r->d.nb;
  size_t *idx = malloc((size_t)B * sizeof *idx);
  if (!idx) return -1;
  for (int j = 0; j < B; j++) idx[j] = (size_t)j;
  af_act_cache_prefetch(cache, idx, B);
  int ok = 1;
  for (int it = 0; it < nb && ok; it++) {
    double a = af_now();
    if (gather(r, k, cache, it) != 0) {
      AF_FAIL(AF_ERR_IO, "bench cache: entry missing at depth %d (cache: %s)", k,
              af_act_cache_disabled_reason(cache) ? af_act_cache_disabled_reason(cache) : "enabled");
      ok = 0;
      break;
    }
    if (it + 1 < nb) {
      for (int j = 0; j < B; j++) idx[j] = (size_t)(it + 1) * B + (size_t)j;
      af_act_cache_prefetch(cache, idx, B);
    }
    double g = af_now();
    if (load_batch(&r->m, &r->d, it) != AF_OK || af_bert_load_hidden(&r->m, k, r->pad, B, T) != AF_OK ||
        step(&r->m, &r->oo, B, T, k, k, (uint64_t)it, it + 1, &r->loss1[it]) != AF_OK) {
      ok = 0;
      break;
    }
    if (it >= warmup) {
      r->ts[steps + it - warmup] = af_now() - a;
      r->ts[2 * steps + it - warmup] = g - a;
    }
  }
  free(idx);
  return ok ? 0 : -1;
}

/* One table row from the times, the cache's statistics before (r0) and after the cached
 * steps, and the two paths' losses. */
static void print_row(const cache_run *r, int k, af_act_cache *cache, const af_cache_record *r0, double fill) {
  const int steps = r->o->steps, nb = r->d.nb;
  af_cache_record r1;
  af_act_cache_stats(cache, &r1);
  af_act_cache_detail det;
  af_act_cache_stats_detail(cache, &det);
  double t_plain = af_median(r->ts, steps), t_cached = af_median(r->ts + steps, steps),
         t_gather = af_median(r->ts + 2 * steps, steps);
  double maxdiff = 0;
  for (int it = 0; it < nb; it++) {
    double dd = fabs((double)r->loss1[it] - (double)r->loss0[it]) / fmax(1e-30, fabs((double)r->loss0[it]));
    if (dd > maxdiff) maxdiff = dd;
  }
  double size = (double)(r->o->mode == AF_CACHE_DISK && det.file_bytes > 0 ? det.file_bytes : r1.bytes);
  printf("%-6d %10.1f %10.1f %7.2f %9.2f %9.1f %11.2f %10.0f %10.2f %9.2f %10.2e\n", k, t_plain * 1e3,
         t_cached * 1e3, t_plain / t_cached, t_gather * 1e3, fill * 1e3, size / 1048576.0, size / (double)r->nex,
         (double)(r1.bytes_read - r0->bytes_read) / nb * 1e-6, (r1.io_time - r0->io_time) / nb * 1e3, maxdiff);
  if (r->o->mode == AF_CACHE_DISK)
    printf("       disk: %lld reads (%lld staged by the reader, %lld waits), entry bytes %.2f MiB, file %.2f MiB\n",
           det.disk_reads, det.prefetched, det.prefetch_waits, det.disk_bytes / 1048576.0,
           det.file_bytes / 1048576.0);
}

/* Depth k: fill a fresh cache, time both paths from the same parameters, print the row. */
static int run_depth(cache_run *r, int k) {
  af_act_cache *cache = NULL;
  af_cache_record r0;
  double fill = -1;
  /* Fresh parameters per depth so both paths start from the same state. */
  int ok = af_bert_set_params(&r->m, r->host) == AF_OK && open_cache(r, k, &cache) == 0 &&
           (fill = fill_cache(r, k, cache)) >= 0 && time_plain(r, k) == AF_OK &&
           af_bert_set_params(&r->m, r->host) == AF_OK;
  if (ok) {
    af_act_cache_stats(cache, &r0);
    ok = time_cached(r, k, cache) == 0;
  }
  if (ok) print_row(r, k, cache, &r0, fill);
  af_act_cache_close(cache);
  return ok ? 0 : -1;
}

int af_bench_cache(int argc, char **argv) {
  cache_opts o;
  int rc = parse_opts(argc, argv, &o);
  if (rc >= 0) return rc;
  cache_run r;
  memset(&r, 0, sizeof r);
  r.o = &o;
  if (af_bench_config(o.model, o.cfgname, &r.cfg) != AF_OK) return af_cli_report("bench cache");
  const int L = r.cfg.num_hidden_layers;
  if (L < 2) {
    fprintf(stderr, "autofreeze bench cache: the model needs at least 2 layers\n");
    return AF_EXIT_USAGE;
  }
  af_backend *be = NULL;
  if (af_backend_open(o.device, o.threads, &be) != AF_OK) return af_cli_report("bench cache");
  rc = AF_EXIT_RUNTIME;
  if (run_init(&r, be) != AF_OK) goto out;
  print_header(&r);
  for (int k = 1; k < L; k++)
    if (run_depth(&r, k) != 0) goto out;
  printf("ratio = nocache/cached step time; gather = cache gets + padding (part of cached_ms); size per example "
         "vs the paper's %.0f bytes; loss_diff = max relative difference of the step losses (0 = bit-exact)\n",
         (double)o.T * r.cfg.hidden_size * 4);
  rc = AF_EXIT_OK;
out:
  if (rc != AF_EXIT_OK && af_last_error()[0]) af_cli_report("bench cache");
  run_free(&r);
  af_backend_close(be);
  return rc;
}
