/* `autofreeze bench step`: times one optimizer step (forward + backward + AdamW) of the
 * BERT classifier for each requested frozen depth and compute precision (--precision
 * fp32,bf16: interleaved in one process, so load from other processes falls on both
 * alike), reports tokens/s and achieved GFLOP/s, the fraction of the machine's best sgemm
 * rate for the same shapes, the bf16/fp32 ratio with what ran the bf16 GEMMs (oneDNN's
 * implementation and ISA, the CPU's bf16 flags), and (with --torch) the ratio to an
 * equivalent PyTorch step measured in the same run. Per depth it also reports the gradient
 * bytes a data-parallel step all-reduces; started by mpirun/srun it runs as N ranks, each a
 * slice of the batch, with the run's bucketed all-reduce (core/run/grad_sync.h), and adds
 * that all-reduce's time and its share of the step. */
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
#include "core/bench/bench_gemm.h"
#include "core/model/bert.h"
#include "core/cli/cli.h"
#include "core/model/optim.h"
#include "core/run/dist.h"
#include "core/run/grad_sync.h"
#include "core/run/options.h"
#include "kernels/comm.h"

/* FLOPs of one step at depth k: every layer from `start` runs forward; layers >= k run
 * backward (2x forward: input and weight gradients), except that the lowest trainable
 * layer skips its QKV input gradient when k > 0. */
static double step_flops(const af_config *c, int B, int T, int k, int start) {
  const double N = (double)B * T, C = c->hidden_size, I = c->intermediate_size;
  const double lin = 2 * N * (4 * C * C + 2 * C * I), att = 4 * N * T * C;
  double f = (c->num_hidden_layers - start) * (lin + att);
  f += (c->num_hidden_layers - k) * 2 * (lin + att);
  if (k > 0) f -= 2 * N * 3 * C * C;
  return f;
}

/* The machine may be shared: a step time means little without the load it ran under. */
static void print_load(const char *when) {
  double la[3];
  if (getloadavg(la, 3) == 3)
    printf("load average at %s: %.2f %.2f %.2f (%ld CPUs online)\n", when, la[0], la[1], la[2],
           sysconf(_SC_NPROCESSORS_ONLN));
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: autofreeze bench step (--model DIR | --config tiny|minilm-l6|bert-base) [options]\n"
          "  --batch B        examples per step (32); under mpirun/srun the global batch, split over the ranks\n"
          "  --seq S          tokens per example (128)\n"
          "  --frozen K|all   frozen depth, or every depth 0..L-1 (all)\n"
          "  --cached         start the forward at layer K from a stored hidden state (activation cache hit)\n"
          "  --steps N        timed steps per depth (5), after --warmup W (2); depths run interleaved\n"
          "  --threads N      OpenMP threads (all cores)\n"
          "  --device D       cpu | cuda | auto (cpu)\n"
          "  --precision P[,P...]  fp32 | bf16 | auto | frozen-bf16 (fp32 with the frozen layers' forward\n"
          "                   in bf16) | bf16-fp32-storage (bf16 GEMMs, activations kept in fp32: what bf16\n"
          "                   storage saves), each timed, interleaved (fp32)\n"
          "  --frozen-precision fp32|bf16  the frozen layers' forward for fp32 entries (fp32)\n"
          "  --torch          also time the same step in PyTorch (needs /usr/bin/python3 with torch)\n");
}

static int run_torch(const af_config *c, int B, int T, int steps, int threads, double *tok_s) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 %s/scripts/bench_torch_step.py --layers %d --hidden %d --heads %d --inter %d "
           "--vocab %d --batch %d --seq %d --steps %d --threads %d 2>&1",
           AF_SOURCE_DIR, c->num_hidden_layers, c->hidden_size, c->num_attention_heads, c->intermediate_size,
           c->vocab_size, B, T, steps, threads);
  fflush(stdout); /* keep our table before the child's lines when stdout is a file */
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  char line[512];
  int ok = -1;
  while (fgets(line, sizeof line, p)) {
    if (sscanf(line, "tokens_per_s=%lf", tok_s) == 1) ok = 0;
    else fprintf(stderr, "  torch: %s", line);
  }
  pclose(p);
  return ok;
}

enum { MAX_PREC = 5, FROZEN_BF16 = 3, BF16_F32_STORAGE = 4 };

typedef struct {
  const char *model, *cfgname, *device, *frozen, *precision, *frozen_precision;
  int B, T, steps, warmup, threads, cached, torch;
  int global_B;  /* --batch; B is this rank's slice of it (all of it with one rank) */
  int nprec, prec[MAX_PREC];  /* --precision as parsed: af_precision_names indices (auto: 2), FROZEN_BF16 */
  af_precision fprec;
} step_opts;

/* --precision fp32,bf16 into o->prec; -1 on a bad list */
static int parse_precisions(step_opts *o) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s", o->precision);
  o->nprec = 0;
  for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    int i = !strcmp(t, "frozen-bf16")         ? FROZEN_BF16
            : !strcmp(t, "bf16-fp32-storage") ? BF16_F32_STORAGE
                                              : af_choice_index(af_precision_names, t);
    if (i < 0 || o->nprec == MAX_PREC) return -1;
    o->prec[o->nprec++] = i;
  }
  int f = af_choice_index(af_frozen_precision_names, o->frozen_precision);
  o->fprec = f == 1 ? AF_PREC_BF16 : AF_PREC_FP32;
  return o->nprec > 0 && f >= 0 ? 0 : -1;
}

/* -1 to go on, else the exit code (help, usage error). */
static int parse_opts(int argc, char **argv, step_opts *o) {
  *o = (step_opts){NULL, NULL, "cpu", "0", "fp32", "fp32", 32, 128, 5, 2, 0, 0, 0, 0, 0, {0}, AF_PREC_FP32};
  static const struct option opts[] = {
      {"model", 1, 0, 'm'}, {"config", 1, 0, 'c'}, {"batch", 1, 0, 'b'}, {"seq", 1, 0, 's'},
      {"frozen", 1, 0, 'k'}, {"cached", 0, 0, 'C'}, {"steps", 1, 0, 'n'}, {"warmup", 1, 0, 'w'},
      {"threads", 1, 0, 't'}, {"device", 1, 0, 'd'}, {"torch", 0, 0, 'P'}, {"precision", 1, 0, 'p'},
      {"frozen-precision", 1, 0, 'F'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  optind = 1;
  for (int ch; (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
    switch (ch) {
    case 'm': o->model = optarg; break;
    case 'c': o->cfgname = optarg; break;
    case 'b': o->B = atoi(optarg); break;
    case 's': o->T = atoi(optarg); break;
    case 'k': o->frozen = optarg; break;
    case 'C': o->cached = 1; break;
    case 'n': o->steps = atoi(optarg); break;
    case 'w': o->warmup = atoi(optarg); break;
    case 't': o->threads = atoi(optarg); break;
    case 'd': o->device = optarg; break;
    case 'P': o->torch = 1; break;
    case 'p': o->precision = optarg; break;
    case 'F': o->frozen_precision = optarg; break;
    case 'h': usage(stdout); return AF_EXIT_OK;
    default: usage(stderr); return AF_EXIT_USAGE;
    }
  }
  if ((!o->model) == (!o->cfgname) || o->B < 1 || o->T < 1 || o->steps < 1 || o->warmup < 0) {
    fprintf(stderr, "autofreeze bench step: give exactly one of --model or --config, and positive sizes\n");
    usage(stderr);
    return AF_EXIT_USAGE;
  }
  if (parse_precisions(o) != 0) {
    fprintf(stderr, "autofreeze bench step: --precision takes fp32, bf16, auto, frozen-bf16 or bf16-fp32-storage "
            "(comma-separated, at most %d), "
            "--frozen-precision fp32 or bf16\n", MAX_PREC);
    return AF_EXIT_USAGE;
  }
  return -1;
}

/* --frozen K|all as the depth range [*k_lo, *k_hi] of a model with L layers; -1 when out of range. */
static int frozen_range(const char *frozen, int L, int *k_lo, int *k_hi) {
  if (!strcmp(frozen, "all")) *k_lo = 0, *k_hi = L - 1;
  else *k_lo = *k_hi = atoi(frozen);
  if (*k_lo < 0 || *k_hi > L - 1) {
    fprintf(stderr, "autofreeze bench step: --frozen must be in 0..%d or 'all'\n", L - 1);
    return -1;
  }
  return 0;
}

enum { NL = 2 }; /* labels of the benchmark's classifier */

/* The host side of one batch: parameters, a stored hidden state for --cached, the tokens. */
typedef struct {
  float *host, *hid;   /* [lay.total], [B,T,C] */
  int32_t *ids, *tt;   /* [B,T] */
  float *mask, *tgt;   /* [B,T], [B] */
} step_inputs;

static void inputs_free(step_inputs *in) {
  free(in->host), free(in->hid), free(in->ids), free(in->tt), free(in->mask), free(in->tgt);
}

/* Sets the model's parameters and loads one seeded batch (every token real). */
static af_status inputs_load(af_bert *m, const step_opts *o, const af_config *cfg, step_inputs *in) {
  const int B = o->B, T = o->T;
  in->host = malloc(m->lay.total * sizeof(float));
  in->hid = malloc((size_t)B * T * cfg->hidden_size * sizeof(float));
  in->ids = malloc((size_t)B * T * sizeof *in->ids);
  in->tt = malloc((size_t)B * T * sizeof *in->tt);
  in->mask = malloc((size_t)B * T * sizeof *in->mask);
  in->tgt = malloc((size_t)B * sizeof *in->tgt);
  if (!in->host || !in->hid || !in->ids || !in->tt || !in->mask || !in->tgt)
    return AF_FAIL(AF_ERR_NOMEM, "out of memory for benchmark buffers");
  AF_TRY(af_bench_params(o->model, cfg, &m->lay, in->host));
  AF_TRY(af_bert_set_params(m, in->host));
  for (int i = 0; i < B * T; i++) {
    in->ids[i] = (int32_t)(af_rng_mix(7, (uint64_t)i) % (uint64_t)cfg->vocab_size);
    in->tt[i] = (i % T) >= T / 2;
    in->mask[i] = 1.f;
  }
  for (int i = 0; i < B * T * cfg->hidden_size; i++)
    in->hid[i] = (float)((af_rng_mix(9, (uint64_t)i) >> 40) / 16777216.0 - 0.5);
  for (int i = 0; i < B; i++) in->tgt[i] = (float)(i % NL);
  af_bert_input batch = {in->ids, in->tt, in->mask, in->tgt, B, T};
  return af_bert_load_batch(m, &batch);
}

/* Per timed repetition: step, forward, backward, optimizer; the communication the step waited
 * for (buckets started during the backward, then the wait before the optimizer); the same
 * bytes all-reduced alone after the step (the cost with nothing to hide it behind). */
enum { NT = 6 };

/* A model with its batch and gradient all-reduce, in one activation layout: [0] fp32
 * storage (fp32 entries and frozen-bf16), [1] the bf16 storage a --precision bf16 run uses
 * (core/model/bert.h); a layout no entry needs is not made. */
typedef struct {
  af_bert m;
  step_inputs in;
  af_grad_sync *gs;
  int made;
} step_model;

/* Depths and precisions are interleaved (every repetition runs each depth in each
 * precision once) so that load from other processes on a shared machine drifts over all of
 * them alike and t/t(k=0) and bf16/fp32 stay fair ratios; ts holds, per precision and
 * depth, the NT times of each timed repetition; sent[k - k_lo]: the bytes all-reduced.
 * Precision p runs on sm[layout[p]]. */
static af_status time_steps(step_model *sm, const int *layout, const step_opts *o, const af_precision *prec,
                            const af_precision *fprec, int k_lo, int k_hi, double *ts, long long *sent) {
  const int B = o->B, T = o->T, steps = o->steps, nk = k_hi - k_lo + 1;
  af_optim_opts oo;
  af_optim_defaults_hf(&oo);
  for (int it = 0; it < o->warmup + steps; it++) {
    for (int pk = 0; pk < o->nprec * nk; pk++) {
      const int k = k_lo + pk % nk;
      step_model *x = &sm[layout[pk / nk]];
      af_bert *m = &x->m;
      af_backend *be = m->be;
      af_grad_sync *gs = x->gs;
      const float *hid = x->in.hid;
      /* by hand, so the model keeps its layout (bf16-fp32-storage: bf16 on the fp32 one) */
      m->precision = prec[pk / nk];
      m->frozen_precision = fprec[pk / nk];
      int start = o->cached ? k : 0;
      float loss;
      double grad_norm, t_comm, t_alone, a = af_now();
      if (o->cached) AF_TRY(af_bert_load_hidden(m, k, hid, B, T));
      af_grads_zero(m, k);
      AF_TRY(af_bert_forward(m, B, T, start, k, 1, (uint64_t)it, &loss));
      be->sync(be);
      double b = af_now();
      af_grad_sync_arm(gs, k);
      AF_TRY(af_bert_backward(m, B, T, k, (uint64_t)it, 1.0f / B));
      be->sync(be);
      double c = af_now();
      AF_TRY(af_grad_sync_finish(gs, k, &sent[pk % nk], &t_comm));
      double c2 = af_now();
      AF_TRY(af_optim_step(m, &oo, k, 1e-5f, it + 1, &grad_norm));
      AF_TRY(be->sync(be));
      double d = af_now();
      long long again;
      AF_TRY(af_grad_sync_finish(gs, k, &again, &t_alone));  /* no backward since: a plain all-reduce */
      if (it >= o->warmup) {
        double *tk = ts + (size_t)pk * NT * steps;
        int j = it - o->warmup;
        tk[j] = d - a;
        tk[steps + j] = b - a;
        tk[2 * steps + j] = c - b;
        tk[3 * steps + j] = d - c2;
        tk[4 * steps + j] = t_comm;
        tk[5 * steps + j] = t_alone;
      }
    }
  }
  return AF_OK;
}

/* The table, one row per depth (medians of ts); returns the full step's tokens/s (k = 0,
 * not cached), 0 when that depth was not run. */
static double report(const af_config *cfg, const step_opts *o, const char *label, int k_lo, int k_hi, double *ts,
                     double sgemm, double *tok_s) {
  const int B = o->B, T = o->T, steps = o->steps, cached = o->cached;
  double t0_step = 0, full_tok_s = 0;
  printf("precision %s:\n", label);
  printf("%-6s %-7s %10s %10s %10s %10s %10s %9s %9s %9s\n", "frozen", "cached", "step_ms", "fwd_ms", "bwd_ms", "opt_ms",
         "tokens/s", "GFLOP/s", "%sgemm", "t/t(k=0)");
  for (int k = k_lo; k <= k_hi; k++) {
    int start = cached ? k : 0;
    double *tk = ts + (size_t)(k - k_lo) * NT * steps;
    double st = af_median(tk, steps), fw = af_median(tk + steps, steps), bw = af_median(tk + 2 * steps, steps),
           op = af_median(tk + 3 * steps, steps);
    double gf = step_flops(cfg, B, T, k, start) / st * 1e-9;
    if (k == k_lo) t0_step = st;
    if (k == 0 && !cached) full_tok_s = B * T / st;
    tok_s[k - k_lo] = B * T / st;
    printf("%-6d %-7s %10.1f %10.1f %10.1f %10.1f %10.0f %9.1f %8.0f%% %9.2f\n", k, cached ? "yes" : "no", st * 1e3,
           fw * 1e3, bw * 1e3, op * 1e3, B * T / st, gf, sgemm > 0 ? 100 * gf / sgemm : 0, st / t0_step);
    printf("       work ratio vs k=%d: %.2f\n", k_lo,
           step_flops(cfg, B, T, k, start) / step_flops(cfg, B, T, k_lo, cached ? k_lo : 0));
  }
  return full_tok_s;
}

/* Per depth: the trainable parameters and the gradient bytes a step all-reduces (what this
 * run's ranks sent; with one process, what each rank of a data-parallel run would send), and
 * over N ranks the communication times of the first precision's steps and their share. */
static void report_comm(const af_bert *m, const step_opts *o, int k_lo, int k_hi, double *ts, const long long *sent,
                        const af_grad_sync *gs) {
  const int n = af_dist_size(), steps = o->steps;
  if (n < 2)
    printf("gradient all-reduce: one process, nothing sent; comm_bytes is what each rank of a data-parallel run "
           "sends a step (mpirun -np N autofreeze bench step ... times it)\n");
  else
    printf("gradient all-reduce over %d ranks (%s; transport %s): comm_ms = communication the step waited for "
           "(buckets started during the backward, then the wait), allreduce_ms = the same bytes all-reduced alone; "
           "rank 0's times, medians\n", n, af_dist_library(), af_grad_sync_transport(gs));
  printf("%-6s %12s %12s", "frozen", "trainable", "comm_bytes");
  if (n > 1) printf(" %10s %10s %7s %12s %8s", "step_ms", "comm_ms", "comm%", "allreduce_ms", "alone%");
  printf("\n");
  for (int k = k_lo; k <= k_hi; k++) {
    const long long trainable = (long long)(m->lay.total - af_bert_trainable_begin(m, k));
    printf("%-6d %12lld %12lld", k, trainable, n > 1 ? sent[k - k_lo] : 4 * trainable);
    if (n > 1) {
      double *tk = ts + (size_t)(k - k_lo) * NT * steps;
      const double st = af_median(tk, steps), cm = af_median(tk + 4 * steps, steps), al = af_median(tk + 5 * steps, steps);
      printf(" %10.1f %10.2f %6.1f%% %12.2f %7.1f%%", st * 1e3, cm * 1e3, 100 * cm / st, al * 1e3, 100 * al / st);
    }
    printf("\n");
  }
}

static void report_torch(const af_config *cfg, const step_opts *o, double full_tok_s) {
  double tok_s = 0;
  int th = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (run_torch(cfg, o->B, o->T, o->steps, th, &tok_s) == 0) {
    printf("pytorch full step (k=0): %.0f tokens/s", tok_s);
    if (full_tok_s > 0) printf("; autofreeze/pytorch = %.2fx", full_tok_s / tok_s);
    printf("\n");
  } else {
    printf("pytorch: not measured (no torch for /usr/bin/python3?)\n");
  }
}

/* What ran: the CPU (model name from /proc/cpuinfo), the fp32 and bf16 GEMM paths with the
 * ISA oneDNN chose, and the bf16 evidence (the CPU's flags). */
static void print_hardware(const af_backend *be, const step_opts *o) {
  char cpu[256] = "unknown", line[512];
  FILE *f = fopen("/proc/cpuinfo", "r");
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
      snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
      cpu[strcspn(cpu, "\n")] = 0;
      break;
    }
  if (f) fclose(f);
  printf("cpu: %s, %ld CPUs online\n", cpu, sysconf(_SC_NPROCESSORS_ONLN));
  int bf = o->fprec == AF_PREC_BF16;
  for (int i = 0; i < o->nprec; i++) bf |= o->prec[i] != 0;
  if (bf)
    printf("bf16 GEMMs: %s; native: %s (%s)%s\n", be->bf16_name, be->bf16_native ? "yes" : "NO, emulated",
           be->bf16_why, strcmp(be->name, "cpu") ? "" : "; ONEDNN_VERBOSE=1 lists every primitive's kernel");
}

/* Per depth, each precision's tokens/s over the first's (fp32 normally). */
static void report_ratios(const step_opts *o, char (*label)[48], int k_lo, int k_hi, const double *tok_s) {
  const int nk = k_hi - k_lo + 1;
  for (int p = 1; p < o->nprec; p++)
    for (int k = k_lo; k <= k_hi; k++)
      printf("ratio %s / %s at frozen %d: %.2fx tokens/s (%.0f vs %.0f)\n", label[p], label[0], k, tok_s[p * nk + k - k_lo] / tok_s[k - k_lo], tok_s[p * nk + k - k_lo],
             tok_s[k - k_lo]);
}

/* Started by mpirun/srun: this rank's slice of --batch (as a training run splits a batch), its
 * GPU by local rank, and only rank 0 prints. -1 to go on, else the exit code. */
static int dist_setup(step_opts *o) {
  if (af_dist_init() != AF_OK) return af_cli_report("bench step");
  const int n = af_dist_size(), r = af_dist_rank();
  int dev;
  o->global_B = o->B;
  if (n < 2) return -1;
  if (o->B < n) {
    fprintf(stderr, "autofreeze bench step: --batch %d is smaller than the %d ranks\n", o->B, n);
    return AF_EXIT_USAGE;
  }
  o->B = (int)((long)o->B * (r + 1) / n - (long)o->B * r / n);
  if (strcmp(o->device, "cpu") && af_devcomm_select_device(af_dist_local_rank(), &dev) != AF_OK)
    return af_cli_report("bench step");
  if (r > 0 && !freopen("/dev/null", "w", stdout)) return AF_EXIT_RUNTIME;
  return -1;
}

int af_bench_step(int argc, char **argv) {
  step_opts o;
  int rc = parse_opts(argc, argv, &o);
  if (rc >= 0 || (rc = dist_setup(&o)) >= 0) return rc;
  af_config cfg;
  if (af_bench_config(o.model, o.cfgname, &cfg) != AF_OK) return af_cli_report("bench step");
  const int L = cfg.num_hidden_layers, BT = o.B * o.T;
  int k_lo, k_hi;
  if (frozen_range(o.frozen, L, &k_lo, &k_hi) != 0) return AF_EXIT_USAGE;
  const int nk = k_hi - k_lo + 1;
  af_backend *be = NULL;
  if (af_backend_open(o.device, o.threads, &be) != AF_OK) return af_cli_report("bench step");
  af_precision prec[MAX_PREC], fprec[MAX_PREC];
  int layout[MAX_PREC];
  char label[MAX_PREC][48];
  for (int i = 0; i < o.nprec; i++) {  /* auto: as a run would resolve it */
    const int pi = o.prec[i], f32store = pi == BF16_F32_STORAGE;
    prec[i] = pi == AF_PREC_BF16 || f32store || (pi == 2 && be->bf16_native) ? AF_PREC_BF16 : AF_PREC_FP32;
    fprec[i] = pi == FROZEN_BF16 ? AF_PREC_BF16 : o.fprec;
    layout[i] = prec[i] == AF_PREC_BF16 && !f32store;
    snprintf(label[i], sizeof label[i], "%s%s%s",
             pi == FROZEN_BF16 ? "fp32" : f32store ? "bf16-fp32-storage" : af_precision_names[pi],
             pi == 2 ? (prec[i] == AF_PREC_BF16 ? " (bf16)" : " (fp32)") : "",
             fprec[i] == AF_PREC_BF16 && prec[i] == AF_PREC_FP32 ? "+frozen-bf16" : "");
  }
  step_model sm[2];
  memset(sm, 0, sizeof sm);
  double *ts = NULL, tok_s[MAX_PREC * 64];
  long long sent[64];
  rc = AF_EXIT_RUNTIME;
  for (int i = 0; i < o.nprec; i++) sm[layout[i]].made = 1;
  for (int l = 0; l < 2; l++) {
    step_model *x = &sm[l];
    if (!x->made) continue;
    if (af_bert_init(&x->m, be, &cfg, NL, o.B, o.T, 0) != AF_OK ||
        af_bert_set_precision(&x->m, l ? AF_PREC_BF16 : AF_PREC_FP32, AF_PREC_FP32) != AF_OK ||
        inputs_load(&x->m, &o, &cfg, &x->in) != AF_OK || af_grad_sync_open(&x->m, &x->gs) != AF_OK)
      goto out;
  }
  step_model *first = &sm[layout[0]];
  /* both layouts' activation arenas, for the memory line (a model of the other layout
   * would hold its bytes only to be measured: computed from the first one's shape instead) */
  size_t act[2];
  for (int l = 0; l < 2; l++) act[l] = sm[l].made ? af_bert_activation_bytes(&sm[l].m) : 0;
  if (!act[0] || !act[1]) {
    af_bert probe;
    if (af_bert_init(&probe, be, &cfg, NL, o.B, o.T, 0) != AF_OK ||
        af_bert_set_precision(&probe, act[1] ? AF_PREC_FP32 : AF_PREC_BF16, AF_PREC_FP32) != AF_OK) {
      af_bert_free(&probe);
      goto out;
    }
    act[act[1] ? 0 : 1] = af_bert_activation_bytes(&probe);
    af_bert_free(&probe);
  }
  /* The yardstick is measured before and after the steps and the larger value is used, so
   * a load burst during one measurement cannot inflate the %sgemm column. */
  const double sgemm0 = af_bench_best_sgemm_gflops(cfg.hidden_size, cfg.intermediate_size, BT);
  printf("bench step: %s, L=%d C=%d I=%d heads=%d, batch %d x seq %d, device %s, GEMM %s\n",
         o.model ? o.model : o.cfgname, L, cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, o.B, o.T,
         be->name, be->gemm_name);
  if (af_dist_size() > 1)
    printf("data parallel: %d ranks, global batch %d, rank 0 runs %d rows (the tables are rank 0's: tokens/s a rank)\n",
           af_dist_size(), o.global_B, o.B);
  print_hardware(be, &o);
  printf("activation arena (every layer trainable): %.1f MiB with fp32 storage, %.1f MiB (%.0f%% less) with the bf16\n"
         "storage of bf16 runs (qkv, attention context, LayerNorm 1 and GELU outputs); bf16 entries below run on it\n",
         act[0] / 1048576.0, act[1] / 1048576.0, 100.0 * (1.0 - (double)act[1] / (double)act[0]));
  printf("best fp32 sgemm on these shapes (before the steps): %.1f GFLOP/s\n", sgemm0);
  print_load("start");
  ts = malloc(sizeof(double) * (size_t)o.steps * NT * (size_t)(nk * o.nprec));
  if (!ts || nk > 64 || time_steps(sm, layout, &o, prec, fprec, k_lo, k_hi, ts, sent) != AF_OK) goto out;
  const double sgemm1 = af_bench_best_sgemm_gflops(cfg.hidden_size, cfg.intermediate_size, BT);
  const double sgemm = sgemm1 > sgemm0 ? sgemm1 : sgemm0;
  printf("best fp32 sgemm on these shapes (after the steps): %.1f GFLOP/s; %%sgemm uses %.1f\n", sgemm1, sgemm);
  double full_tok_s = 0;
  for (int p = 0; p < o.nprec; p++) {
    double f = report(&cfg, &o, label[p], k_lo, k_hi, ts + (size_t)p * nk * NT * o.steps, sgemm, tok_s + p * nk);
    if (p == 0) full_tok_s = f;
  }
  report_ratios(&o, label, k_lo, k_hi, tok_s);
  report_comm(&first->m, &o, k_lo, k_hi, ts, sent, first->gs);
  if (o.torch && af_dist_rank() == 0) report_torch(&cfg, &o, full_tok_s);
  print_load("end");
  rc = AF_EXIT_OK;
out:
  if (rc != AF_EXIT_OK && af_last_error()[0]) af_dist_fail_all(af_last_error());  /* returns with one rank */
  if (rc != AF_EXIT_OK && af_last_error()[0]) af_cli_report("bench step");
  for (int l = 0; l < 2; l++) {
    af_grad_sync_close(sm[l].gs);
    inputs_free(&sm[l].in);
    af_bert_free(&sm[l].m);
  }
  free(ts);
  af_backend_close(be);
  return rc;
}
