/* The table of run options and the code that reads, writes and prints them; see options.h.
 * The rows are in the order --help lists them; the rows with an ident key are also in the
 * order of the checkpoint identity string, which checkpoints written before this table
 * already hold (keys are matched by name, so rows may move, but keys must not change). */
#include "core/run/options.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/run/train.h"

const char *const af_recipe_names[] = {"hf", "paper", "reference", NULL};
const char *const af_device_names[] = {"cpu", "cuda", "auto", NULL};
const char *const af_format_names[] = {"auto", "tsv", "csv", NULL};
/* af_precision's values (kernels/ops.h) in its order, then auto (AF_PRECISION_AUTO) */
const char *const af_precision_names[] = {"fp32", "bf16", "auto", NULL};
const char *const af_frozen_precision_names[] = {"fp32", "bf16", NULL};

#define F(field) offsetof(af_train_opts, field)
#define BIG 1e18  /* "no upper bound" for an integer */

/* clang-format off */
const af_opt af_opts[] = {
  /* the run */
  {"model", NULL, AF_OPT_STR, AF_CT_STR, F(model_dir), NULL, NULL, 0, 0, NULL, NULL, "DIR", NULL, "run",
   "Hugging Face model folder (config.json, vocab.txt, model.safetensors)", NULL, NULL, AF_OPT_REQUIRED},
  {"task", NULL, AF_OPT_STR, AF_CT_STR, F(task), NULL, NULL, 0, 0, NULL, NULL, "NAME", NULL, "run",
   "the task (names: after this list)",
   NULL, "task", AF_OPT_REQUIRED | AF_OPT_TRAJECTORY},
  {"data", NULL, AF_OPT_STR, AF_CT_STR, F(data_dir), NULL, NULL, 0, 0, NULL, NULL, "DIR", NULL, "run",
   "the task's files (train.tsv, dev.tsv, ...)", NULL, NULL, AF_OPT_REQUIRED},
  {"out", NULL, AF_OPT_STR, AF_CT_STR, F(out), NULL, NULL, 0, 0, NULL, NULL, "FILE.h5", NULL, "run",
   "results file (layout: docs/results-format.md)", NULL, NULL, AF_OPT_REQUIRED},
  {"epochs", NULL, AF_OPT_INT, AF_CT_INT, F(epochs), "3", NULL, 1, 1e6, NULL, NULL, "E", "epochs", "run",
   "passes over the training set", NULL, NULL, AF_OPT_TRAJECTORY},
  {"batch", NULL, AF_OPT_INT, AF_CT_INT, F(batch), "32", NULL, 1, 1 << 20, NULL, NULL, "B", "examples", "run",
   "examples per optimizer step", NULL, "batch", AF_OPT_TRAJECTORY},
  {"accum", NULL, AF_OPT_INT, AF_CT_INT, F(accum), "1", NULL, 1, 1 << 20, NULL, NULL, "N", NULL, "run",
   "micro-batches per step (gradient accumulation)", NULL, "accum", AF_OPT_TRAJECTORY},
  {"seq", "max_len", AF_OPT_INT, AF_CT_INT, F(max_len), "128", NULL, 3, 1 << 20, NULL, NULL, "S", "tokens", "run",
   "max tokens per example", "max_len", "max_len", AF_OPT_TRAJECTORY},
  {"bucket", NULL, AF_OPT_INT, AF_CT_INT, F(bucket), "0", "off", 0, 1 << 20, NULL, NULL, "N", "batches", "run",
   "length-bucketed batches over chunks of N batches", NULL, "bucket", AF_OPT_TRAJECTORY},
  {"max_train_rows", NULL, AF_OPT_INT, AF_CT_SIZE, F(max_train_rows), "0", "all", 0, BIG, NULL, NULL, "N",
   "examples", "run", "a fixed pseudo-random subset of N training examples", NULL, "max_train_rows",
   AF_OPT_TRAJECTORY},
  {"max_eval_rows", NULL, AF_OPT_INT, AF_CT_SIZE, F(max_eval_rows), "0", "all", 0, BIG, NULL, NULL, "N",
   "examples", "run", "likewise for each evaluation split", NULL, "max_eval_rows", AF_OPT_TRAJECTORY},
  {"seed", NULL, AF_OPT_INT, AF_CT_U64, F(seed), "1", NULL, 0, 9.2e18, NULL, NULL, "N", NULL, "run",
   "shuffling, dropout and head initialisation", NULL, NULL, AF_OPT_TRAJECTORY},
  {"eval_batch", NULL, AF_OPT_INT, AF_CT_INT, F(eval_batch), "0", "the training micro-batch", 0, 1 << 20, NULL,
   NULL, "N", "examples", "run", "examples per evaluation forward (more memory, fewer passes)", NULL, NULL, 0},
  {"eval_every", NULL, AF_OPT_INT, AF_CT_LONG, F(eval_every), "0", "each interval boundary", 0, BIG, NULL, NULL,
   "STEPS", "steps", "run", "dev evaluation period", NULL, NULL, 0},
  {"max_steps", NULL, AF_OPT_INT, AF_CT_LONG, F(max_steps), "0", "no limit", 0, BIG, NULL, NULL, "N", "steps",
   "run", "stop after N steps (the schedule still spans the full run)", NULL, NULL, 0},
  {"skip_bad_rows", NULL, AF_OPT_BOOL, AF_CT_INT, F(skip_bad_rows), "false", NULL, 0, 0, NULL, NULL, NULL, NULL,
   "run", "skip malformed data rows (counted in the results file) instead of failing", NULL, NULL, 0},
  {"device", NULL, AF_OPT_CHOICE, AF_CT_INT, F(device), "cpu", NULL, 0, 0, af_device_names, NULL, "DEV", NULL,
   "run", "compute backend (auto: cuda when built and a GPU is present)", NULL, NULL, 0},
  {"threads", NULL, AF_OPT_INT, AF_CT_INT, F(threads), "0", "all cores", 0, 4096, NULL, NULL, "N", NULL, "run",
   "OpenMP threads", NULL, NULL, 0},
  {"precision", NULL, AF_OPT_CHOICE, AF_CT_INT, F(precision), "fp32", NULL, 0, 0, af_precision_names, NULL, "P",
   NULL, "run", "the model's GEMMs: fp32, or bf16 inputs with fp32 accumulation (weights, gradients, optimizer, "
   "norms, softmax stay fp32); auto: bf16 where the CPU has amx_bf16/avx512_bf16 or the GPU bf16 tensor cores",
   NULL, "precision", AF_OPT_TRAJECTORY | AF_OPT_IDENT_SET},
  {"frozen_precision", NULL, AF_OPT_CHOICE, AF_CT_INT, F(frozen_precision), "fp32", NULL, 0, 0,
   af_frozen_precision_names, NULL, "P", NULL, "run", "the frozen prefix's forward (and the cache fills): bf16 "
   "GEMMs there even under --precision fp32", NULL, "frozen_precision", AF_OPT_TRAJECTORY | AF_OPT_IDENT_SET},
  /* the generic task */
  {"text_cols", NULL, AF_OPT_STR, AF_CT_STR, F(text_cols), NULL, "needed by task generic", 0, 0, NULL, NULL, "C[,C2]", NULL,
   "generic task", "text column(s), header names or 1-based numbers", NULL, NULL, 0},
  {"label_col", NULL, AF_OPT_STR, AF_CT_STR, F(label_col), NULL, "needed by task generic", 0, 0, NULL, NULL, "C", NULL,
   "generic task", "label column: name, 1-based number or 'last'", NULL, NULL, 0},
  {"labels", NULL, AF_OPT_STR, AF_CT_STR, F(labels), NULL, "from the training file", 0, 0, NULL, NULL, "A,B,...",
   NULL, "generic task", "the label set", NULL, NULL, 0},
  {"format", NULL, AF_OPT_CHOICE, AF_CT_INT, F(format), "auto", "from the file name", 0, 0, af_format_names, NULL,
   "FMT", NULL, "generic task", "file format", NULL, NULL, 0},
  {"regression", NULL, AF_OPT_BOOL, AF_CT_INT, F(regression), "false", NULL, 0, 0, NULL, NULL, NULL, NULL,
   "generic task", "a real-valued target instead of labels", NULL, NULL, 0},
  {"header", NULL, AF_OPT_BOOL, AF_CT_INT, F(header), "true", NULL, 0, 0, NULL, NULL, NULL, NULL, "generic task",
   "the first row names the columns (--no-header: it is data)", NULL, NULL, 0},
  /* freezing */
  {"policy", NULL, AF_OPT_CHOICE, AF_CT_INT, F(policy_kind), "none", NULL, 0, 0, af_policy_kind_names, NULL,
   "NAME", NULL, "freezing", "freeze policy (Lua also takes af.policy.* objects); auto: a preset of the others "
   "(--help shows what it runs)", NULL, "policy", AF_OPT_TRAJECTORY},
  {"frozen", NULL, AF_OPT_INT, AF_CT_INT, F(frozen), NULL, "none", 0, 1 << 20, NULL, NULL, "K", "layers",
   "freezing", "static: layers 0..K-1 frozen from the start (K = layers-1: all but the last)", NULL, NULL,
   AF_OPT_TRAJECTORY | AF_OPT_UNSET_NEG},
  {"percentile", NULL, AF_OPT_NUM, AF_CT_DOUBLE, F(percentile), "50", NULL, 0, 100, NULL, NULL, "P", NULL,
   "freezing", "adaptive: percentile of the change ratios below which a prefix freezes", NULL, NULL,
   AF_OPT_TRAJECTORY},
  {"max_depth", NULL, AF_OPT_INT, AF_CT_INT, F(freeze.max_depth), NULL, "layers-1", 0, 1 << 20, NULL, NULL, "K",
   "layers", "freezing", "never freeze more than K layers", NULL, "max_depth",
   AF_OPT_TRAJECTORY | AF_OPT_UNSET_NEG},
  {"signed_ratio", NULL, AF_OPT_BOOL, AF_CT_INT, F(freeze.signed_ratio), "false", NULL, 0, 0, NULL, NULL, NULL,
   NULL, "freezing", "the paper's signed change ratio instead of its absolute value", NULL, "signed_ratio",
   AF_OPT_TRAJECTORY},
  {"frozen_dropout", NULL, AF_OPT_BOOL, AF_CT_INT, F(frozen_dropout), "false", NULL, 0, 0, NULL, NULL, NULL, NULL,
   "freezing", "frozen layers keep their dropout in training (needs --cache off)", NULL, "frozen_dropout",
   AF_OPT_TRAJECTORY},
  {"intervals", NULL, AF_OPT_INT, AF_CT_INT, F(intervals), NULL, "20; recipe reference: 10", 1, 1 << 30, NULL, NULL,
   "N", NULL, "freezing", "decision intervals over the run", NULL, "intervals", AF_OPT_TRAJECTORY},
  {"interval_steps", NULL, AF_OPT_INT, AF_CT_LONG, F(interval_steps), NULL, "off", 1, BIG, NULL, NULL, "N", "steps",
   "freezing", "fixed interval length instead of --intervals", NULL, "interval_steps", AF_OPT_TRAJECTORY},
  {"freeze_after", NULL, AF_OPT_NUM, AF_CT_DOUBLE, F(freeze_after), "0", NULL, 0, 1, NULL, NULL, "F|warmup", NULL,
   "freezing", "any policy: no freezing before this fraction of the run's steps, or before the warm-up ends "
   "(warmup; /config: -1)", NULL, NULL, AF_OPT_TRAJECTORY | AF_OPT_WARMUP},
  {"max_freeze_step", NULL, AF_OPT_INT, AF_CT_INT, F(max_freeze_step), NULL, "unlimited", 1, 1 << 20, NULL, NULL,
   "K", "layers", "freezing", "any policy: a decision freezes at most K more layers", NULL, NULL,
   AF_OPT_TRAJECTORY | AF_OPT_UNSET_NEG},
  {"freeze_when_learned", NULL, AF_OPT_NUM, AF_CT_DOUBLE, F(freeze_when_learned), NULL,
   "pipe, freezeout: 0.1 (they freeze on a clock, blind to learning); auto: its preset's 0.1; others: 0 (off)",
   0, 1, NULL, NULL, "F", NULL, "freezing", "any policy: no freezing until an interval's mean training loss is "
   "below (1-F) x the label prior's (/config: prior_loss), i.e. the run has left the majority class; 0: off",
   NULL, NULL, AF_OPT_TRAJECTORY | AF_OPT_BELOW_HI | AF_OPT_UNSET_NEG},
  {"alpha", NULL, AF_OPT_NUM, AF_CT_DOUBLE, F(alpha), "0.25", NULL, 0, 1, NULL, NULL, "A", NULL, "freezing",
   "pipe: PipeTransformer's freezing rate, L*(1-(1-A)^e) layers frozen after epoch e", NULL, NULL,
   AF_OPT_TRAJECTORY | AF_OPT_POSITIVE},
  {"tolerance", NULL, AF_OPT_NUM, AF_CT_DOUBLE, F(tolerance), "0.02", NULL, 0, HUGE_VAL, NULL, NULL, "T", NULL,
   "freezing", "gated: a freeze is rolled back when the validation metric falls more than T below its best "
   "since the freeze", NULL, NULL, AF_OPT_TRAJECTORY},
  {"val_rows", NULL, AF_OPT_INT, AF_CT_SIZE, F(val_rows), "0", "none; gated: auto",
   0, BIG, NULL, NULL, "N|auto", "examples", "freezing", "training rows held out (never trained on) as a validation "
   "slice, scored at each decision (intervals/val_metric); gated decides on it; auto: 10% of the training rows, "
   "at most 2000; the same value holds out the same rows under any policy, so full fine-tuning pairs with gated "
   "exactly", NULL, NULL, AF_OPT_TRAJECTORY | AF_OPT_AUTO},
  {"freezeout_t0", NULL, AF_OPT_NUM, AF_CT_DOUBLE, F(freezeout_t0), "0.5", NULL, 0, 1, NULL, NULL, "T", NULL,
   "freezing", "freezeout: layer 0's freeze time, a fraction of the run; its learning rate follows a cosine to 0 "
   "there", NULL, NULL,
   AF_OPT_TRAJECTORY | AF_OPT_POSITIVE},
  {"freezeout_schedule", NULL, AF_OPT_CHOICE, AF_CT_INT, F(freezeout_schedule), "linear", NULL, 0, 0,
   af_freezeout_schedule_names, NULL, "S", NULL, "freezing", "freezeout: the later layers' freeze times, spaced "
   "linearly from T to 1 or cubically (the authors' code)", NULL, NULL, AF_OPT_TRAJECTORY},
  {"freezeout_scaled", NULL, AF_OPT_BOOL, AF_CT_INT, F(freezeout_scaled), "false", NULL, 0, 0, NULL, NULL, NULL,
   NULL, "freezing", "freezeout: each layer's learning rate divided by its freeze time", NULL, NULL,
   AF_OPT_TRAJECTORY},
  /* the optimizer */
  {"recipe", NULL, AF_OPT_CHOICE, AF_CT_INT, F(recipe), "hf", NULL, 0, 0, af_recipe_names, NULL, "NAME", NULL,
   "optimizer", "hf: AdamW, global clip 1.0, linear warm-up 10% and decay; paper: AutoFreeze's BERTAdam, "
   "per-tensor clip, stepped schedule; reference: paper with 10 intervals (the authors' script)", NULL, NULL,
   AF_OPT_TRAJECTORY},
  {"lr", NULL, AF_OPT_NUM, AF_CT_FLOAT, F(optim.lr), NULL, NULL, 0, HUGE_VAL, NULL, NULL, "LR", NULL, "optimizer",
   "peak learning rate", NULL, "lr", AF_OPT_TRAJECTORY | AF_OPT_RECIPE | AF_OPT_POSITIVE},
  {"beta1", NULL, AF_OPT_NUM, AF_CT_FLOAT, F(optim.beta1), NULL, NULL, 0, 1, NULL, NULL, "B", NULL, "optimizer",
   "Adam's first-moment decay", NULL, "beta1", AF_OPT_TRAJECTORY | AF_OPT_RECIPE},
  {"beta2", NULL, AF_OPT_NUM, AF_CT_FLOAT, F(optim.beta2), NULL, NULL, 0, 1, NULL, NULL, "B", NULL, "optimizer",
   "Adam's second-moment decay", NULL, "beta2", AF_OPT_TRAJECTORY | AF_OPT_RECIPE},
  {"adam_eps", NULL, AF_OPT_NUM, AF_CT_FLOAT, F(optim.eps), NULL, NULL, 0, 1, NULL, NULL, "E", NULL, "optimizer",
   "Adam's epsilon", NULL, "eps", AF_OPT_TRAJECTORY | AF_OPT_RECIPE},
  {"weight_decay", NULL, AF_OPT_NUM, AF_CT_FLOAT, F(optim.weight_decay), NULL, NULL, 0, HUGE_VAL, NULL, NULL, "W",
   NULL, "optimizer", "decoupled weight decay", NULL, "weight_decay", AF_OPT_TRAJECTORY | AF_OPT_RECIPE},
  {"bias_correction", NULL, AF_OPT_BOOL, AF_CT_INT, F(optim.bias_correction), NULL, NULL, 0, 0, NULL, NULL, NULL,
   NULL, "optimizer", "Adam's bias correction (off: BERTAdam)", NULL, "bias_correction",
   AF_OPT_TRAJECTORY | AF_OPT_RECIPE},
  {"clip", NULL, AF_OPT_CHOICE, AF_CT_INT, F(optim.clip), NULL, NULL, 0, 0, af_clip_names, NULL, "HOW", NULL,
   "optimizer", "gradient clipping: by the global norm, per tensor, or none", NULL, "clip",
   AF_OPT_TRAJECTORY | AF_OPT_RECIPE},
  {"max_grad_norm", NULL, AF_OPT_NUM, AF_CT_FLOAT, F(optim.max_grad_norm), NULL, NULL, 0, HUGE_VAL, NULL, NULL,
   "N", NULL, "optimizer", "clipping threshold", NULL, "max_grad_norm", AF_OPT_TRAJECTORY | AF_OPT_RECIPE},
  {"schedule", NULL, AF_OPT_CHOICE, AF_CT_INT, F(optim.schedule), NULL, NULL, 0, 0, af_schedule_names, NULL,
   "NAME", NULL, "optimizer", "learning-rate schedule", NULL, "schedule", AF_OPT_TRAJECTORY | AF_OPT_RECIPE},
  {"warmup", NULL, AF_OPT_NUM, AF_CT_FLOAT, F(optim.warmup_frac), NULL, NULL, 0, 1, NULL, NULL, "F", "of the steps",
   "optimizer", "linear schedule: warm-up fraction", NULL, "warmup", AF_OPT_TRAJECTORY | AF_OPT_RECIPE},
  {"layer_lr_decay", NULL, AF_OPT_NUM, AF_CT_DOUBLE, F(layer_lr_decay), "1", "1: off", 0, 1, NULL, NULL, "X", NULL,
   "optimizer", "layer-wise learning-rate decay: the head gets the scheduled rate, encoder layer l of L "
   "X^(L-l), the embeddings X^(L+1)", NULL, "layer_lr_decay",
   AF_OPT_TRAJECTORY | AF_OPT_POSITIVE | AF_OPT_IDENT_SET},
  /* the activation cache */
  {"cache", NULL, AF_OPT_CHOICE, AF_CT_INT, F(cache), "off", NULL, 0, 0, af_cache_mode_names, "auto", "MODE", NULL,
   "activation cache", "cache the frozen prefix's output: memory, disk, or auto (memory, then disk)", NULL, NULL,
   0},
  {"cache_dtype", NULL, AF_OPT_CHOICE, AF_CT_INT, F(cache_dtype), "auto", NULL, 0, 0, af_cache_dtype_names, NULL,
   "T", NULL, "activation cache", "storage precision (f32: exact; auto: bf16 under --precision bf16, else f32)",
   NULL, NULL, 0},
  {"cache_budget", NULL, AF_OPT_SIZE, AF_CT_SIZE, F(cache_budget), "0", "a safe part of free RAM", 0, 0, NULL,
   NULL, "BYTES", "bytes", "activation cache", "memory tier size, with K/M/G suffix", NULL, NULL, 0},
  {"cache_dir", NULL, AF_OPT_STR, AF_CT_STR, F(cache_dir), NULL, "next to --out", 0, 0, NULL, NULL, "DIR", NULL,
   "activation cache", "disk tier folder", NULL, NULL, 0},
  {"cache_compress", NULL, AF_OPT_INT, AF_CT_INT, F(cache_compress), "0", "off", 0, 9, NULL, NULL, "L", NULL,
   "activation cache", "gzip level for the disk tier", NULL, NULL, 0},
  /* checkpoints and output */
  {"checkpoint_dir", NULL, AF_OPT_STR, AF_CT_STR, F(checkpoint_dir), NULL, "OUT.ckpt", 0, 0, NULL, NULL, "DIR",
   NULL, "checkpoints", "run checkpoint folder", NULL, NULL, 0},
  {"checkpoints", NULL, AF_OPT_BOOL, AF_CT_INT, F(checkpoints), "true", NULL, 0, 0, NULL, NULL, NULL, NULL,
   "checkpoints", "write run checkpoints (--no-checkpoints: none, no resume)", NULL, NULL, 0},
  {"checkpoint_every", NULL, AF_OPT_PERIOD, AF_CT_PERIOD, F(checkpoint_every), "10m", NULL, 0, 0, NULL, NULL,
   "EVERY", NULL, "checkpoints", "checkpoint period: N steps, Ns/Nm/Nh of training time, or intervals (each "
   "boundary); a run also checkpoints at its end and on SIGINT/SIGTERM", NULL, NULL, 0},
  {"resume", NULL, AF_OPT_BOOL, AF_CT_INT, F(resume), "false", NULL, 0, 0, NULL, NULL, NULL, NULL, "checkpoints",
   "continue from the checkpoint folder's last checkpoint", NULL, NULL, 0},
  {"progress", NULL, AF_OPT_BOOL, AF_CT_INT, F(progress), "auto", "when stderr is a terminal", 0, 0, NULL, NULL,
   NULL, NULL, "output", "a progress line on stderr", NULL, NULL, AF_OPT_AUTO},
  {"quiet", NULL, AF_OPT_BOOL, AF_CT_INT, F(quiet), "false", NULL, 0, 0, NULL, NULL, NULL, NULL, "output",
   "no log lines", NULL, NULL, 0},
};
/* clang-format on */
const int af_opts_count = (int)(sizeof af_opts / sizeof af_opts[0]);

/* "max-depth" and "max_depth" are the same name */
static int same_name(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if (*a != *b && !((*a == '-' || *a == '_') && (*b == '-' || *b == '_'))) return 0;
  return *a == *b;
}

const af_opt *af_opt_find(const char *name) {
  for (int i = 0; i < af_opts_count; i++)
    if (same_name(name, af_opts[i].name) || (af_opts[i].alias && same_name(name, af_opts[i].alias)))
      return &af_opts[i];
  return NULL;
}

const char *af_opt_cli_name(const af_opt *opt, char *buf, size_t cap) {
  snprintf(buf, cap, "--%s", opt->name);
  for (char *p = buf + 2; *p; p++)
    if (*p == '_') *p = '-';
  return buf;
}

static void *field(const af_opt *opt, const af_train_opts *o) { return (char *)o + opt->offset; }

static void store_int(const af_opt *opt, af_train_opts *o, long long v) {
  void *p = field(opt, o);
  switch (opt->ctype) {
  case AF_CT_INT: *(int *)p = (int)v; break;
  case AF_CT_LONG: *(long *)p = (long)v; break;
  case AF_CT_U64: *(uint64_t *)p = (uint64_t)v; break;
  case AF_CT_SIZE: *(size_t *)p = (size_t)v; break;
  default: break;
  }
}

static long long load_int(const af_opt *opt, const af_train_opts *o) {
  const void *p = field(opt, o);
  switch (opt->ctype) {
  case AF_CT_INT: return *(const int *)p;
  case AF_CT_LONG: return *(const long *)p;
  case AF_CT_U64: return (long long)*(const uint64_t *)p;
  case AF_CT_SIZE: return (long long)*(const size_t *)p;
  default: return 0;
  }
}

static void fmt_num(char *buf, size_t cap, double v) {
  if (v == HUGE_VAL) snprintf(buf, cap, "inf");
  else if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, cap, "%.0f", v);
  else snprintf(buf, cap, "%g", v);
}

static af_status bad(const char *fmt, const char *a, const char *b, const char *text) {
  return AF_FAIL(AF_ERR_ARG, fmt, a, b, text);
}

static af_status set_int(const af_opt *opt, af_train_opts *o, const char *text) {
  char lo[32], hi[32];
  fmt_num(lo, sizeof lo, opt->lo);
  fmt_num(hi, sizeof hi, opt->hi);
  if ((opt->flags & AF_OPT_AUTO) && !strcmp(text, "auto")) return store_int(opt, o, -1), AF_OK;
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (end == text || *end || errno || (double)v < opt->lo || (double)v > opt->hi) {
    if (opt->hi >= BIG)
      return bad("expects an integer >= %s%s, got '%s'", lo, opt->flags & AF_OPT_AUTO ? " or auto" : "", text);
    return bad("expects an integer in [%s, %s], got '%s'", lo, hi, text);
  }
  store_int(opt, o, v);
  return AF_OK;
}

static af_status set_num(const af_opt *opt, af_train_opts *o, const char *text) {
  if ((opt->flags & AF_OPT_WARMUP) && !strcmp(text, "warmup")) return *(double *)field(opt, o) = -1, AF_OK;
  char lo[32], hi[32];
  fmt_num(lo, sizeof lo, opt->lo);
  fmt_num(hi, sizeof hi, opt->hi);
  char *end;
  double v = strtod(text, &end);
  int low_ok = opt->flags & AF_OPT_POSITIVE ? v > opt->lo : v >= opt->lo;
  int high_ok = opt->flags & AF_OPT_BELOW_HI ? v < opt->hi : v <= opt->hi;
  if (end == text || *end || !low_ok || !high_ok || !isfinite(v)) {
    if (opt->flags & AF_OPT_WARMUP) return bad("expects a number in [%s, %s] or warmup, got '%s'", lo, hi, text);
    if (opt->flags & AF_OPT_BELOW_HI) return bad("expects a number in [%s, %s), got '%s'", lo, hi, text);
    if ((opt->flags & AF_OPT_POSITIVE) && opt->hi < HUGE_VAL)
      return bad("expects a number in (%s, %s], got '%s'", lo, hi, text);
    if (opt->flags & AF_OPT_POSITIVE) return bad("expects a positive number%s%s, got '%s'", "", "", text);
    if (opt->hi == HUGE_VAL) return bad("expects a number >= %s%s, got '%s'", lo, "", text);
    return bad("expects a number in [%s, %s], got '%s'", lo, hi, text);
  }
  if (opt->ctype == AF_CT_FLOAT) *(float *)field(opt, o) = (float)v;
  else *(double *)field(opt, o) = v;
  return AF_OK;
}

static af_status set_size(const af_opt *opt, af_train_opts *o, const char *text) {
  char *end;
  double v = strtod(text, &end);
  switch (toupper((unsigned char)*end)) {
  case 'K': v *= 1024, end++; break;
  case 'M': v *= 1024.0 * 1024, end++; break;
  case 'G': v *= 1024.0 * 1024 * 1024, end++; break;
  default: break;
  }
  if (*end == 'B' || *end == 'b') end++;
  if (end == text || *end || !(v >= 0) || !isfinite(v))
    return bad("expects a size like 512M or 4G%s%s, got '%s'", "", "", text);
  *(size_t *)field(opt, o) = (size_t)v;
  return AF_OK;
}

static af_status set_bool(const af_opt *opt, af_train_opts *o, const char *text) {
  static const char *const yes[] = {"true", "1", "yes", "on", NULL}, *const no[] = {"false", "0", "no", "off", NULL};
  for (int i = 0; yes[i]; i++)
    if (!strcmp(text, yes[i])) return *(int *)field(opt, o) = 1, AF_OK;
  for (int i = 0; no[i]; i++)
    if (!strcmp(text, no[i])) return *(int *)field(opt, o) = 0, AF_OK;
  if ((opt->flags & AF_OPT_AUTO) && !strcmp(text, "auto")) return *(int *)field(opt, o) = -1, AF_OK;
  return bad("expects true or false%s%s, got '%s'", opt->flags & AF_OPT_AUTO ? " or auto" : "", "", text);
}

int af_choice_index(const char *const *names, const char *s) {
  for (int i = 0; names[i]; i++)
    if (!strcmp(s, names[i])) return i;
  return -1;
}

static af_status set_choice(const af_opt *opt, af_train_opts *o, const char *text) {
  const char *want = text;
  if (opt->bool_true && !strcmp(text, "true")) want = opt->bool_true;
  else if (opt->bool_true && !strcmp(text, "false")) want = opt->choices[0];
  int i = af_choice_index(opt->choices, want);
  if (i >= 0) return *(int *)field(opt, o) = i, AF_OK;
  char list[256] = "";
  for (int i = 0; opt->choices[i]; i++)
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", opt->choices[i]);
  return bad("expects one of %s%s, got '%s'", list, "", text);
}

/* "intervals", N (steps: an integer >= 1), or a positive number of seconds, minutes or hours
 * ("90s", "10m", "1.5h") */
static af_status set_period(const af_opt *opt, af_train_opts *o, const char *text) {
  af_period *p = field(opt, o);
  if (!strcmp(text, "intervals")) return *p = (af_period){AF_PERIOD_INTERVALS, 0}, AF_OK;
  char *end;
  errno = 0;
  long long n = strtoll(text, &end, 10);
  if (isdigit((unsigned char)text[0]) && !*end && !errno && n >= 1 && (double)n < BIG)
    return *p = (af_period){AF_PERIOD_STEPS, (double)n}, AF_OK;
  double v = strtod(text, &end), unit = 0;
  if (end != text && end[0] && !end[1]) unit = end[0] == 's' ? 1 : end[0] == 'm' ? 60 : end[0] == 'h' ? 3600 : 0;
  if ((isdigit((unsigned char)text[0]) || text[0] == '.') && unit > 0 && v > 0 && isfinite(v * unit))
    return *p = (af_period){AF_PERIOD_SECONDS, v * unit}, AF_OK;
  return bad("expects a period like 500 (steps), 10m or intervals%s%s, got '%s'", "", "", text);
}

/* as set_period reads it: the largest unit that divides the seconds */
static void period_text(const af_period *p, char *buf, size_t cap) {
  if (p->kind == AF_PERIOD_INTERVALS) snprintf(buf, cap, "intervals");
  else if (p->kind == AF_PERIOD_STEPS) snprintf(buf, cap, "%.0f", p->every);
  else if (fmod(p->every, 3600) == 0) snprintf(buf, cap, "%.15gh", p->every / 3600);
  else if (fmod(p->every, 60) == 0) snprintf(buf, cap, "%.15gm", p->every / 60);
  else snprintf(buf, cap, "%.15gs", p->every);
}

af_status af_opt_set(const af_opt *opt, af_train_opts *o, const char *text) {
  switch (opt->kind) {
  case AF_OPT_STR: *(const char **)field(opt, o) = text; return AF_OK;
  case AF_OPT_INT: return set_int(opt, o, text);
  case AF_OPT_NUM: return set_num(opt, o, text);
  case AF_OPT_BOOL: return set_bool(opt, o, text);
  case AF_OPT_CHOICE: return set_choice(opt, o, text);
  case AF_OPT_SIZE: return set_size(opt, o, text);
  case AF_OPT_PERIOD: return set_period(opt, o, text);
  }
  return AF_FAIL(AF_ERR_ARG, "unknown option kind");
}

double af_opt_number(const af_opt *opt, const af_train_opts *o) {
  const void *p = field(opt, o);
  return opt->ctype == AF_CT_FLOAT ? (double)*(const float *)p : *(const double *)p;
}

/* an unset field: -1 (optimizer settings, max_depth, frozen); lr: <= 0 */
static int is_unset(const af_opt *opt, const af_train_opts *o) {
  if (!(opt->flags & (AF_OPT_RECIPE | AF_OPT_UNSET_NEG))) return 0;
  if (opt->ctype == AF_CT_FLOAT) {
    float v = *(const float *)field(opt, o);
    return opt->flags & AF_OPT_POSITIVE ? v <= 0 : v < 0;
  }
  if (opt->ctype == AF_CT_DOUBLE) return *(const double *)field(opt, o) < 0;
  return load_int(opt, o) < 0;
}

void af_opt_get(const af_opt *opt, const af_train_opts *o, char *buf, size_t cap) {
  if (is_unset(opt, o)) {
    snprintf(buf, cap, "%s", opt->flags & AF_OPT_RECIPE ? "recipe" : "");
    return;
  }
  const void *p = field(opt, o);
  switch (opt->kind) {
  case AF_OPT_STR: snprintf(buf, cap, "%s", *(const char *const *)p ? *(const char *const *)p : ""); break;
  case AF_OPT_INT:
  case AF_OPT_SIZE:
    if ((opt->flags & AF_OPT_AUTO) && load_int(opt, o) < 0) snprintf(buf, cap, "auto");
    else snprintf(buf, cap, "%lld", load_int(opt, o));
    break;
  case AF_OPT_NUM:
    if ((opt->flags & AF_OPT_WARMUP) && *(const double *)p < 0) snprintf(buf, cap, "warmup");
    else snprintf(buf, cap, "%.9g", opt->ctype == AF_CT_FLOAT ? (double)*(const float *)p : *(const double *)p);
    break;
  case AF_OPT_BOOL: snprintf(buf, cap, "%s", *(const int *)p < 0 ? "auto" : *(const int *)p ? "true" : "false"); break;
  case AF_OPT_PERIOD: period_text(p, buf, cap); break;
  case AF_OPT_CHOICE: {
    int i = *(const int *)p, n = 0;
    while (opt->choices[n]) n++;
    snprintf(buf, cap, "%s", i >= 0 && i < n ? opt->choices[i] : "?");
    break;
  }
  }
}

void af_opts_defaults(af_train_opts *o) {
  memset(o, 0, sizeof *o);
  for (int i = 0; i < af_opts_count; i++) {
    const af_opt *opt = &af_opts[i];
    if (opt->flags & (AF_OPT_RECIPE | AF_OPT_UNSET_NEG)) {
      if (opt->ctype == AF_CT_FLOAT) *(float *)field(opt, o) = -1;
      else if (opt->ctype == AF_CT_DOUBLE) *(double *)field(opt, o) = -1;
      else store_int(opt, o, -1);
    } else if (opt->def) {
      af_opt_set(opt, o, opt->def);  /* test_options checks that every default parses */
    }
  }
}

af_status af_opts_check(const af_train_opts *o) {
  if (o->batch < 1 || o->accum < 1 || o->batch % o->accum)
    return AF_FAIL(AF_ERR_ARG, "--batch %d must be a positive multiple of --accum %d", o->batch, o->accum);
  if (o->epochs < 1) return AF_FAIL(AF_ERR_ARG, "--epochs must be >= 1 (got %d)", o->epochs);
  if (o->interval_steps <= 0 && o->intervals < 0)  /* 0: unset, the recipe's */
    return AF_FAIL(AF_ERR_ARG, "--intervals must be >= 1 (got %d)", o->intervals);
  if (o->frozen_dropout && o->cache != AF_CACHE_OFF)
    return AF_FAIL(AF_ERR_ARG, "--frozen-dropout needs --cache off: with dropout in the frozen layers their "
                   "output changes at every step, so there is nothing fixed to cache");
  if (!o->policy && o->policy_kind == AF_POLICY_STATIC && o->frozen < 0)
    return AF_FAIL(AF_ERR_ARG, "--policy static needs --frozen K (the layers frozen from the start)");
  if (!(o->layer_lr_decay > 0 && o->layer_lr_decay <= 1))  /* a C caller's value; the parser checks the rest */
    return AF_FAIL(AF_ERR_ARG, "--layer-lr-decay expects a number in (0, 1], got %g", o->layer_lr_decay);
  if (!(o->freeze_when_learned == -1 || (o->freeze_when_learned >= 0 && o->freeze_when_learned < 1)))
    return AF_FAIL(AF_ERR_ARG, "--freeze-when-learned expects a number in [0, 1), got %g", o->freeze_when_learned);
  return AF_OK;
}

/* the default as --help shows it */
static void default_text(const af_opt *opt, char *buf, size_t cap) {
  buf[0] = 0;
  if (opt->flags & AF_OPT_RECIPE) {
    af_optim_opts hf, paper;
    af_optim_defaults_hf(&hf);
    af_optim_defaults_paper(&paper);
    af_train_opts a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.optim = hf;
    b.optim = paper;
    char x[64], y[64];
    af_opt_get(opt, &a, x, sizeof x);
    af_opt_get(opt, &b, y, sizeof y);
    if (opt->kind == AF_OPT_NUM) {  /* 2e-05, not the float's 1.99999995e-05 */
      snprintf(x, sizeof x, "%g", af_opt_number(opt, &a));
      snprintf(y, sizeof y, "%g", af_opt_number(opt, &b));
    }
    if (!strcmp(x, y)) snprintf(buf, cap, "%s", x);
    else snprintf(buf, cap, "hf %s, paper %s", x, y);
  } else if (opt->def_help) {
    snprintf(buf, cap, "%s", opt->def_help);
  } else if (opt->def && opt->kind != AF_OPT_BOOL) {
    snprintf(buf, cap, "%s", opt->def);
  }
}

void af_opts_help(FILE *f) {
  const char *group = NULL;
  for (int i = 0; i < af_opts_count; i++) {
    const af_opt *opt = &af_opts[i];
    if (!group || strcmp(group, opt->group)) fprintf(f, "%s:\n", group = opt->group);
    char name[64], left[256], def[160], choices[160] = "";
    af_opt_cli_name(opt, name, sizeof name);
    if (opt->kind == AF_OPT_BOOL) snprintf(left, sizeof left, "%s, --no-%s", name, name + 2);
    else if (opt->kind == AF_OPT_CHOICE) {
      for (int k = 0; opt->choices[k]; k++)
        snprintf(choices + strlen(choices), sizeof choices - strlen(choices), "%s%s", k ? "|" : "", opt->choices[k]);
      snprintf(left, sizeof left, "%s %s", name, choices);
    } else snprintf(left, sizeof left, "%s %s", name, opt->metavar);
    default_text(opt, def, sizeof def);
    if (strlen(left) > 26) fprintf(f, "  %s\n  %-26s ", left, "");
    else fprintf(f, "  %-26s ", left);
    fprintf(f, "%s", opt->help);
    if (opt->unit) fprintf(f, " [%s]", opt->unit);
    if (def[0]) fprintf(f, " (%s)", def);
    fputc('\n', f);
    for (int k = 0; opt->choices == af_policy_kind_names && opt->choices[k]; k++)  /* what a preset stands for */
      if (af_policy_preset_spec(opt->choices[k]))
        fprintf(f, "  %-26s   %s = %s\n", "", opt->choices[k], af_policy_preset_spec(opt->choices[k]));
  }
}

void af_opts_markdown(FILE *f) {
  fprintf(f, "| key | `autofreeze train` | default | unit | meaning |\n|---|---|---|---|---|\n");
  for (int i = 0; i < af_opts_count; i++) {
    const af_opt *opt = &af_opts[i];
    char cli[64], def[160], choices[160] = "";
    af_opt_cli_name(opt, cli, sizeof cli);
    default_text(opt, def, sizeof def);
    if (opt->kind == AF_OPT_BOOL && !def[0] && opt->def) snprintf(def, sizeof def, "%s", opt->def);
    if (opt->flags & AF_OPT_REQUIRED) snprintf(def, sizeof def, "required");
    for (int k = 0; opt->kind == AF_OPT_CHOICE && opt->choices[k]; k++)
      snprintf(choices + strlen(choices), sizeof choices - strlen(choices), "%s`\"%s\"`", k ? ", " : ": ",
               opt->choices[k]);
    fprintf(f, "| `%s`%s%s%s | `%s`%s | %s | %s | %s%s |\n", opt->name, opt->alias ? " (or `" : "",
            opt->alias ? opt->alias : "", opt->alias ? "`)" : "", cli,
            opt->kind == AF_OPT_BOOL ? " / `--no-...`" : "", def[0] ? def : "-", opt->unit ? opt->unit : "",
            opt->help, choices);
  }
}

/* The identity's value of a row, in the form checkpoints have always held: integers and
 * enums as numbers, reals with 8 significant digits. */
static void ident_value(const af_opt *opt, const af_train_opts *o, char *buf, size_t cap) {
  const void *p = field(opt, o);
  switch (opt->ctype) {
  case AF_CT_STR: snprintf(buf, cap, "%s", *(const char *const *)p ? *(const char *const *)p : ""); break;
  case AF_CT_FLOAT: snprintf(buf, cap, "%.8g", (double)*(const float *)p); break;
  case AF_CT_DOUBLE: snprintf(buf, cap, "%.8g", *(const double *)p); break;
  default: snprintf(buf, cap, "%lld", load_int(opt, o)); break;
  }
}

/* The row's identity value equals its default's (AF_OPT_IDENT_SET rows). */
static int at_default(const af_opt *opt, const af_train_opts *r) {
  af_train_opts d;
  af_opts_defaults(&d);
  char a[512], b[512];
  ident_value(opt, r, a, sizeof a);
  ident_value(opt, &d, b, sizeof b);
  return !strcmp(a, b);
}

void af_opts_identity(const af_train_opts *r, const char *policy, const char *knobs, char *buf, size_t cap) {
  size_t u = 0;
  buf[0] = 0;
  for (int i = 0; i < af_opts_count && u < cap; i++) {
    const af_opt *opt = &af_opts[i];
    if (!opt->ident || (opt->flags & AF_OPT_IDENT_SET && at_default(opt, r))) continue;
    char v[512];
    if (opt->offset == offsetof(af_train_opts, policy_kind))
      u += (size_t)snprintf(buf + u, cap - u, "%spolicy=%s;policy_knobs=%s", u ? ";" : "", policy, knobs);
    else {
      ident_value(opt, r, v, sizeof v);
      u += (size_t)snprintf(buf + u, cap - u, "%s%s=%s", u ? ";" : "", opt->ident, v);
    }
  }
}

void af_opts_identity_complete(const char *in, char *out, size_t cap) {
  snprintf(out, cap, "%s", in);
  af_train_opts d;
  af_opts_defaults(&d);
  for (int i = 0; i < af_opts_count; i++) {
    const af_opt *opt = &af_opts[i];
    if (!opt->ident || !(opt->flags & AF_OPT_IDENT_SET)) continue;
    char key[128], v[512];
    snprintf(key, sizeof key, "%s=", opt->ident);
    size_t kn = strlen(key);
    int present = 0;
    for (const char *p = out; *p && !present; p += strcspn(p, ";"), p += *p == ';')
      present = !strncmp(p, key, kn);
    if (present) continue;
    ident_value(opt, &d, v, sizeof v);
    size_t u = strlen(out);
    snprintf(out + u, cap - u, "%s%s%s", u ? ";" : "", key, v);
  }
}
