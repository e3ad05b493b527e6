/* `autofreeze info MODEL_DIR`: what a model directory holds (config, parameter counts per
 * freezable group, bytes) and which compute backend and GEMM library would run it. It
 * validates the weights against the config first, so it doubles as a checkpoint check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/model/checkpoint.h"
#include "core/cli/cli.h"
#include "core/model/config.h"
#include "core/model/params.h"
#include "kernels/ops.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: autofreeze info MODEL_DIR [--labels N]\n\n"
          "Show a model's configuration, its parameter count per group (embeddings, each\n"
          "encoder layer, pooler, classifier) with fp32 bytes, and the compute backend.\n"
          "The weights in MODEL_DIR/model.safetensors are checked against config.json.\n\n"
          "  MODEL_DIR       directory with config.json, vocab.txt and model.safetensors\n"
          "  --labels N      size the classifier for N labels (default: config's, else 2)\n"
          "  -h, --help      this help\n");
}

static const char *thousands(size_t v, char *buf, size_t cap) {
  char raw[32];
  int n = snprintf(raw, sizeof raw, "%zu", v), o = 0;
  for (int i = 0; i < n && (size_t)o + 2 < cap; i++) {
    if (i && (n - i) % 3 == 0) buf[o++] = ',';
    buf[o++] = raw[i];
  }
  buf[o] = 0;
  return buf;
}

static const char *human(double bytes, char *buf, size_t cap) {
  if (bytes >= 1e9) snprintf(buf, cap, "%.2f GB", bytes / 1e9);
  else if (bytes >= 1e6) snprintf(buf, cap, "%.2f MB", bytes / 1e6);
  else if (bytes >= 1e3) snprintf(buf, cap, "%.1f kB", bytes / 1e3);
  else snprintf(buf, cap, "%.0f B", bytes);
  return buf;
}

static void row(const char *label, size_t n) {
  char a[32], b[32];
  printf("  %-12s %14s  %10s\n", label, thousands(n, a, sizeof a), human(4.0 * (double)n, b, sizeof b));
}

int af_cli_info(int argc, char **argv) {
  const char *dir = NULL;
  int labels = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return AF_EXIT_OK;
    }
    const char *val = NULL;
    if (!strcmp(a, "--labels")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "autofreeze info: --labels needs a value\n");
        return AF_EXIT_USAGE;
      }
      val = argv[++i];
    } else if (!strncmp(a, "--labels=", 9)) {
      val = a + 9;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "autofreeze info: unknown option '%s' (see --help)\n", a);
      return AF_EXIT_USAGE;
    } else if (!dir) {
      dir = a;
      continue;
    } else {
      fprintf(stderr, "autofreeze info: unexpected argument '%s' (one MODEL_DIR expected)\n", a);
      return AF_EXIT_USAGE;
    }
    char *end;
    long v = strtol(val, &end, 10);
    if (!*val || *end || v < 1 || v > 1000000) {
      fprintf(stderr, "autofreeze info: --labels: expected a positive integer, found '%s'\n", val);
      return AF_EXIT_USAGE;
    }
    labels = (int)v;
  }
  if (!dir) {
    fprintf(stderr, "autofreeze info: missing MODEL_DIR\n");
    usage(stderr);
    return AF_EXIT_USAGE;
  }

  if (af_model_dir_check(dir) != AF_OK) return af_cli_report("info");
  char cfgpath[4096];
  snprintf(cfgpath, sizeof cfgpath, "%s/config.json", dir);
  af_config cfg;
  if (af_config_load(cfgpath, &cfg) != AF_OK) return af_cli_report("info");
  const char *labels_from = "--labels";
  if (!labels) {
    labels = cfg.num_labels > 0 ? cfg.num_labels : 2;
    labels_from = cfg.num_labels > 0 ? "config.json" : "default, config.json has none";
  }
  af_param_layout lay;
  if (af_param_layout_build(&cfg, labels, &lay) != AF_OK) return af_cli_report("info");
  char report[1024];
  if (af_checkpoint_load(dir, &cfg, &lay, NULL, 0, report, sizeof report) != AF_OK) {
    af_param_layout_free(&lay);
    return af_cli_report("info");
  }
  af_backend *be = NULL;
  if (af_backend_open("cpu", 0, &be) != AF_OK) {
    af_param_layout_free(&lay);
    return af_cli_report("info");
  }

  const int L = cfg.num_hidden_layers;
  printf("model: %s\n", dir);
  printf("  model_type %s, hidden_act %s\n", cfg.model_type,
         cfg.hidden_act == AF_GELU_TANH ? "gelu_new (tanh)" : "gelu (erf)");
  printf("  layers L=%d, hidden C=%d, heads NH=%d (head size %d), intermediate I=%d\n", L, cfg.hidden_size,
         cfg.num_attention_heads, cfg.hidden_size / cfg.num_attention_heads, cfg.intermediate_size);
  printf("  vocab V=%d, positions P=%d, token types TV=%d, layer_norm_eps %g, pad_token_id %d\n", cfg.vocab_size,
         cfg.max_position_embeddings, cfg.type_vocab_size, (double)cfg.layer_norm_eps, cfg.pad_token_id);
  char cd[48];
  if (cfg.classifier_dropout < 0) snprintf(cd, sizeof cd, "%g (= hidden)", (double)cfg.hidden_dropout_prob);
  else snprintf(cd, sizeof cd, "%g", (double)cfg.classifier_dropout);
  printf("  dropout: hidden %g, attention %g, classifier %s; initializer_range %g\n", (double)cfg.hidden_dropout_prob,
         (double)cfg.attention_probs_dropout_prob, cd, (double)cfg.initializer_range);
  printf("  labels: %d (%s)\n", labels, labels_from);
  printf("checkpoint: %s\n", report);
  printf("  %-12s %14s  %10s\n", "parameters", "count", "fp32 bytes");
  row("embeddings", lay.group_begin[1] - lay.group_begin[0]);
  for (int l = 0; l < L; l++) {
    char name[32];
    snprintf(name, sizeof name, "layer %d", l);
    row(name, lay.group_begin[l + 2] - lay.group_begin[l + 1]);
  }
  row("pooler", lay.group_begin[L + 2] - lay.group_begin[L + 1]);
  row("classifier", lay.group_begin[L + 3] - lay.group_begin[L + 2]);
  row("total", lay.total);
  printf("backend: %s, GEMM %s; CUDA backend %s\n", be->name, be->gemm_name,
         af_backend_cuda_built() ? "built" : "not built");
  af_backend_close(be);
  af_param_layout_free(&lay);
  return AF_EXIT_OK;
}
