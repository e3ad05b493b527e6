/* `autofreeze train`: parses options into af_train_opts and runs af_train. */
#include <ctype.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/cli/cli.h"
#include "core/run/train.h"

static void usage(FILE *f) {
  fprintf(f,
"usage: autofreeze train --model DIR --task NAME --data DIR --out FILE.h5 [options]\n"
"\n"
"Fine-tune a BERT checkpoint on a task with a freeze policy; write an HDF5 results file.\n"
"\n"
"run:\n"
"  --model DIR            Hugging Face model folder (config.json, vocab.txt, model.safetensors)\n"
"  --task NAME            cola sst2 mrpc stsb qqp mnli qnli rte wnli ag_news yelp_full yelp_polarity\n"
"                         imdb generic default\n"
"  --data DIR             the task's files (train.tsv, dev.tsv, ...)\n"
"  --out FILE.h5          results file (layout: docs/results-format.md)\n"
"  --epochs E             (3)         --batch B      examples per step (32)\n"
"  --accum N              micro-batches per step (1)\n"
"  --seq S                max tokens per example (128)\n"
"  --lr LR                peak learning rate (recipe's: 2e-5 hf, 1e-5 paper)\n"
"  --recipe hf|paper      hf: AdamW, global clip 1.0, linear warm-up 10%% and decay;\n"
"                         paper: AutoFreeze's BERTAdam, per-tensor clip, stepped schedule\n"
"  --seed N               shuffling, dropout and head initialisation (1)\n"
"  --eval-every STEPS     dev evaluation period (0: at each interval boundary)\n"
"  --max-steps N          stop after N steps (the schedule still spans the full run)\n"
"  --max-train-rows N     use a fixed pseudo-random subset of N training examples (0: all)\n"
"  --max-eval-rows N      likewise for each evaluation split (0: all)\n"
"  --bucket N             length-bucketed batches over chunks of N batches (0: off)\n"
"  --skip-bad-rows        skip malformed data rows (counted in the results file) instead of failing\n"
"  --text-cols C[,C2]     generic task: text column(s), header names or 1-based numbers\n"
"  --label-col C          generic task: label column (name, 1-based number or 'last')\n"
"  --labels A,B,...       generic task: the label set   --regression   a real-valued target instead\n"
"  --format tsv|csv       generic task: file format (from the file name)   --no-header  no header row\n"
"  --device cpu|cuda|auto (cpu)       --threads N  OpenMP threads (all cores)\n"
"freezing:\n"
"  --policy none|static|adaptive      (none)\n"
"  --frozen K             static: layers 0..K-1 frozen from the start (K = layers-1: all but the last)\n"
"  --percentile P         adaptive: percentile of the change ratios (50)\n"
"  --intervals N          decision intervals over the run (20)\n"
"  --interval-steps N     fixed interval length in steps instead of --intervals\n"
"  --max-depth K          never freeze more than K layers (layers-1)\n"
"  --signed-ratio         the paper's signed change ratio instead of the code's absolute value\n"
"  --frozen-dropout       frozen layers keep their dropout in training (not the paper's; needs\n"
"                         --cache off: their output is then not fixed)\n"
"activation cache:\n"
"  --cache off|memory|disk|auto       (off)\n"
"  --cache-dtype f32|f16|bf16         storage precision (f32: exact)\n"
"  --cache-budget BYTES   memory tier size, with K/M/G suffix (auto: a safe part of free RAM)\n"
"  --cache-dir DIR        disk tier folder (next to --out)\n"
"  --cache-compress L     gzip level 1-9 for the disk tier (0: off)\n"
"checkpoints:\n"
"  --checkpoint-dir DIR   (OUT.ckpt)   --no-checkpoints   --resume\n"
"output:\n"
"  --progress | --no-progress         progress line on stderr (default: when it is a terminal)\n"
"  --quiet                            no log lines\n"
"\n"
"SIGINT/SIGTERM finish the current step, save a checkpoint, flush the results file and\n"
"exit with status 1; --resume continues from there with identical results.\n");
}

static int parse_size(const char *s, size_t *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || v < 0) return -1;
  switch (toupper((unsigned char)*end)) {
  case 0: break;
  case 'K': v *= 1024; end++; break;
  case 'M': v *= 1024.0 * 1024; end++; break;
  case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
  default: return -1;
  }
  if (*end == 'B' || *end == 'b') end++;
  if (*end) return -1;
  *out = (size_t)v;
  return 0;
}

static int parse_long(const char *opt, const char *s, long lo, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || *end || v < lo) {
    fprintf(stderr, "autofreeze train: %s expects an integer >= %ld, got '%s'\n", opt, lo, s);
    return -1;
  }
  *out = v;
  return 0;
}

int af_cli_train(int argc, char **argv) {
  af_train_opts o;
  af_train_opts_default(&o);
  const char *policy = "none", *recipe = "hf", *cache = "off", *dtype = "f32";
  long frozen = -1, v;
  double percentile = 50;
  enum { O_MODEL = 256, O_TASK, O_DATA, O_OUT, O_EPOCHS, O_BATCH, O_ACCUM, O_SEQ, O_LR, O_RECIPE, O_SEED,
         O_EVAL, O_MAXSTEPS, O_MAXTRAIN, O_MAXEVAL, O_BUCKET, O_SKIP, O_DEVICE, O_THREADS, O_POLICY, O_FROZEN,
         O_PCT, O_INTERVALS, O_ISTEPS, O_MAXDEPTH, O_SIGNED, O_CACHE, O_CDTYPE, O_CBUDGET, O_CDIR, O_CCOMP,
         O_CKDIR, O_NOCK, O_RESUME, O_PROG, O_NOPROG, O_QUIET, O_TEXTC, O_LABELC, O_LABELS, O_REGR, O_FORMAT,
         O_NOHDR, O_FDROP };
  static const struct option opts[] = {
      {"model", 1, 0, O_MODEL}, {"task", 1, 0, O_TASK}, {"data", 1, 0, O_DATA}, {"out", 1, 0, O_OUT},
      {"epochs", 1, 0, O_EPOCHS}, {"batch", 1, 0, O_BATCH}, {"accum", 1, 0, O_ACCUM}, {"seq", 1, 0, O_SEQ},
      {"lr", 1, 0, O_LR}, {"recipe", 1, 0, O_RECIPE}, {"seed", 1, 0, O_SEED}, {"eval-every", 1, 0, O_EVAL},
      {"max-steps", 1, 0, O_MAXSTEPS}, {"max-train-rows", 1, 0, O_MAXTRAIN}, {"max-eval-rows", 1, 0, O_MAXEVAL},
      {"bucket", 1, 0, O_BUCKET}, {"skip-bad-rows", 0, 0, O_SKIP}, {"device", 1, 0, O_DEVICE},
      {"threads", 1, 0, O_THREADS}, {"policy", 1, 0, O_POLICY}, {"frozen", 1, 0, O_FROZEN},
      {"percentile", 1, 0, O_PCT}, {"intervals", 1, 0, O_INTERVALS}, {"interval-steps", 1, 0, O_ISTEPS},
      {"max-depth", 1, 0, O_MAXDEPTH}, {"signed-ratio", 0, 0, O_SIGNED}, {"frozen-dropout", 0, 0, O_FDROP}, {"cache", 1, 0, O_CACHE},
      {"cache-dtype", 1, 0, O_CDTYPE}, {"cache-budget", 1, 0, O_CBUDGET}, {"cache-dir", 1, 0, O_CDIR},
      {"cache-compress", 1, 0, O_CCOMP}, {"checkpoint-dir", 1, 0, O_CKDIR}, {"no-checkpoints", 0, 0, O_NOCK},
      {"resume", 0, 0, O_RESUME}, {"progress", 0, 0, O_PROG}, {"no-progress", 0, 0, O_NOPROG},
      {"quiet", 0, 0, O_QUIET}, {"text-cols", 1, 0, O_TEXTC}, {"label-col", 1, 0, O_LABELC},
      {"labels", 1, 0, O_LABELS}, {"regression", 0, 0, O_REGR}, {"format", 1, 0, O_FORMAT},
      {"no-header", 0, 0, O_NOHDR}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  optind = 1;
  opterr = 0;  /* one line of our own instead of getopt's message and the whole usage */
  for (int ch; (ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1;) {
    switch (ch) {
    case O_MODEL: o.model_dir = optarg; break;
    case O_TASK: o.task = optarg; break;
    case O_DATA: o.data_dir = optarg; break;
    case O_OUT: o.out = optarg; break;
    case O_EPOCHS: if (parse_long("--epochs", optarg, 1, &v)) return AF_EXIT_USAGE; o.epochs = (int)v; break;
    case O_BATCH: if (parse_long("--batch", optarg, 1, &v)) return AF_EXIT_USAGE; o.batch = (int)v; break;
    case O_ACCUM: if (parse_long("--accum", optarg, 1, &v)) return AF_EXIT_USAGE; o.accum = (int)v; break;
    case O_SEQ: if (parse_long("--seq", optarg, 3, &v)) return AF_EXIT_USAGE; o.max_len = (int)v; break;
    case O_LR: {
      char *end;
      o.lr = strtof(optarg, &end);
      if (end == optarg || *end || !(o.lr > 0) || !isfinite(o.lr)) {
        fprintf(stderr, "autofreeze train: --lr expects a positive number, got '%s'\n", optarg);
        return AF_EXIT_USAGE;
      }
      break;
    }
    case O_RECIPE: recipe = optarg; break;
    case O_SEED: if (parse_long("--seed", optarg, 0, &v)) return AF_EXIT_USAGE; o.seed = (uint64_t)v; break;
    case O_EVAL: if (parse_long("--eval-every", optarg, 0, &v)) return AF_EXIT_USAGE; o.eval_every = v; break;
    case O_MAXSTEPS: if (parse_long("--max-steps", optarg, 0, &v)) return AF_EXIT_USAGE; o.max_steps = v; break;
    case O_MAXTRAIN: if (parse_long("--max-train-rows", optarg, 0, &v)) return AF_EXIT_USAGE; o.max_train_rows = (size_t)v; break;
    case O_MAXEVAL: if (parse_long("--max-eval-rows", optarg, 0, &v)) return AF_EXIT_USAGE; o.max_eval_rows = (size_t)v; break;
    case O_BUCKET: if (parse_long("--bucket", optarg, 0, &v)) return AF_EXIT_USAGE; o.bucket = (int)v; break;
    case O_SKIP: o.skip_bad_rows = 1; break;
    case O_DEVICE: o.device = optarg; break;
    case O_THREADS: if (parse_long("--threads", optarg, 0, &v)) return AF_EXIT_USAGE; o.threads = (int)v; break;
    case O_POLICY: policy = optarg; break;
    case O_FROZEN: if (parse_long("--frozen", optarg, 0, &frozen)) return AF_EXIT_USAGE; break;
    case O_PCT: {
      char *end;
      percentile = strtod(optarg, &end);
      if (end == optarg || *end || !(percentile >= 0 && percentile <= 100)) {
        fprintf(stderr, "autofreeze train: --percentile expects a number in [0, 100], got '%s'\n", optarg);
        return AF_EXIT_USAGE;
      }
      break;
    }
    case O_INTERVALS: if (parse_long("--intervals", optarg, 1, &v)) return AF_EXIT_USAGE; o.intervals = (int)v; break;
    case O_ISTEPS: if (parse_long("--interval-steps", optarg, 1, &v)) return AF_EXIT_USAGE; o.interval_steps = v; break;
    case O_MAXDEPTH: if (parse_long("--max-depth", optarg, 0, &v)) return AF_EXIT_USAGE; o.freeze.max_depth = (int)v; break;
    case O_SIGNED: o.freeze.signed_ratio = 1; break;
    case O_FDROP: o.frozen_dropout = 1; break;
    case O_CACHE: cache = optarg; break;
    case O_CDTYPE: dtype = optarg; break;
    case O_CBUDGET:
      if (parse_size(optarg, &o.cache_budget)) {
        fprintf(stderr, "autofreeze train: --cache-budget expects a size like 512M or 4G, got '%s'\n", optarg);
        return AF_EXIT_USAGE;
      }
      break;
    case O_CDIR: o.cache_dir = optarg; break;
    case O_CCOMP:
      if (parse_long("--cache-compress", optarg, 0, &v)) return AF_EXIT_USAGE;
      if (v > 9) {
        fprintf(stderr, "autofreeze train: --cache-compress expects a gzip level 0-9, got '%s'\n", optarg);
        return AF_EXIT_USAGE;
      }
      o.cache_compress = (int)v;
      break;
    case O_CKDIR: o.checkpoint_dir = optarg; break;
    case O_NOCK: o.no_checkpoints = 1; break;
    case O_RESUME: o.resume = 1; break;
    case O_PROG: o.progress = 1; break;
    case O_NOPROG: o.progress = 0; break;
    case O_QUIET: o.quiet = 1; break;
    case O_TEXTC: o.text_cols = optarg; break;
    case O_LABELC: o.label_col = optarg; break;
    case O_LABELS: o.labels = optarg; break;
    case O_REGR: o.regression = 1; break;
    case O_FORMAT: o.format = optarg; break;
    case O_NOHDR: o.no_header = 1; break;
    case 'h': usage(stdout); return AF_EXIT_OK;
    case ':':
      fprintf(stderr, "autofreeze train: option '%s' needs a value (see --help)\n", argv[optind - 1]);
      return AF_EXIT_USAGE;
    default:  /* glibc sets optopt for an unknown short option, 0 for a long one */
      if (optopt > 0 && optopt < 256) fprintf(stderr, "autofreeze train: unknown option '-%c' (see --help)\n", optopt);
      else fprintf(stderr, "autofreeze train: unknown option '%s' (see --help)\n", argv[optind - 1]);
      return AF_EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "autofreeze train: unexpected argument '%s'\n", argv[optind]);
    return AF_EXIT_USAGE;
  }
  if (!o.model_dir || !o.task || !o.data_dir || !o.out) {
    fprintf(stderr, "autofreeze train: --model, --task, --data and --out are required (see --help)\n");
    return AF_EXIT_USAGE;
  }
  if (strcmp(o.device, "cpu") && strcmp(o.device, "cuda") && strcmp(o.device, "auto")) {
    fprintf(stderr, "autofreeze train: --device must be cpu, cuda or auto, got '%s'\n", o.device);
    return AF_EXIT_USAGE;
  }
  if (!strcmp(recipe, "paper")) {
    o.recipe_paper = 1;
    af_optim_defaults_paper(&o.optim);
  } else if (strcmp(recipe, "hf")) {
    fprintf(stderr, "autofreeze train: --recipe must be hf or paper, got '%s'\n", recipe);
    return AF_EXIT_USAGE;
  }
  if (!strcmp(cache, "off")) o.cache = AF_CACHE_OFF;
  else if (!strcmp(cache, "memory")) o.cache = AF_CACHE_MEMORY;
  else if (!strcmp(cache, "disk")) o.cache = AF_CACHE_DISK;
  else if (!strcmp(cache, "auto")) o.cache = AF_CACHE_AUTO;
  else {
    fprintf(stderr, "autofreeze train: --cache must be off, memory, disk or auto, got '%s'\n", cache);
    return AF_EXIT_USAGE;
  }
  if (!strcmp(dtype, "f32")) o.cache_dtype = AF_DTYPE_F32;
  else if (!strcmp(dtype, "f16")) o.cache_dtype = AF_DTYPE_F16;
  else if (!strcmp(dtype, "bf16")) o.cache_dtype = AF_DTYPE_BF16;
  else {
    fprintf(stderr, "autofreeze train: --cache-dtype must be f32, f16 or bf16, got '%s'\n", dtype);
    return AF_EXIT_USAGE;
  }
  af_policy *pol = NULL;
  af_status s;
  if (!strcmp(policy, "none")) s = af_policy_none(&pol);
  else if (!strcmp(policy, "static")) {
    if (frozen < 0) {
      fprintf(stderr, "autofreeze train: --policy static needs --frozen K\n");
      return AF_EXIT_USAGE;
    }
    s = af_policy_static((int)frozen, &pol);
  } else if (!strcmp(policy, "adaptive")) s = af_policy_adaptive(percentile, o.freeze.max_depth, &pol);
  else {
    fprintf(stderr, "autofreeze train: --policy must be none, static or adaptive, got '%s'\n", policy);
    return AF_EXIT_USAGE;
  }
  if (s != AF_OK) return af_cli_report("train");
  o.policy = pol;
  af_train_summary sum;
  s = af_train(&o, &sum);
  af_policy_free(pol);
  if (s != AF_OK) return af_cli_report("train");
  if (!o.quiet) {
    printf("%s: %s, %ld steps, final frozen depth %d, %.1f s", o.out, sum.status, sum.steps, sum.final_depth,
           sum.total_time);
    if (!isnan(sum.best))
      printf(", best %s %.4f at step %ld (%.1f s of training), final %.4f", sum.metric, sum.best, sum.best_step,
             sum.time_to_best, sum.final);
    printf("\n");
  }
  return AF_EXIT_OK;
}
