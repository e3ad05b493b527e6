/* autofreeze: the command-line entry point. Dispatches to the subcommands in core/cli/cli_*.c
 * (and `run` in lua/host.c). */
#include <stdio.h>
#include <string.h>
#include "core/cli/cli.h"
#include "kernels/ops.h"


typedef struct {
  const char *name;
  int (*fn)(int, char **);
  const char *summary;
} command;

static void usage(FILE *f, const command *cmds, int n) {
  fprintf(f,
          "usage: autofreeze <command> [options]\n\n"
          "Fine-tune BERT-family models faster by freezing layers adaptively (AutoFreeze)\n"
          "and caching the activations of the frozen prefix.\n\ncommands:\n");
  for (int i = 0; i < n; i++)
    fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
  fprintf(f,
          "\nRun 'autofreeze <command> --help' for a command's options.\n"
          "  -h, --help     this help\n  -V, --version  version and git revision\n"
          "\nexit codes: 0 success, 1 runtime error, 2 usage error\n");
}

int main(int argc, char **argv) {
  af_backend_preinit(argv);  /* before anything else: it may re-exec the process */
  const command cmds[] = {
      {"run", af_cli_run, "run a Lua experiment script (experiments/quickstart.lua is the default job)"},
      {"train", af_cli_train, "fine-tune a model on a task with a freeze policy, write an HDF5 results file"},
      {"plot", af_cli_plot, "turn results files into gnuplot figures and a summary table"},
      {"info", af_cli_info, "show a model's config, parameter counts and the compute backend"},
      {"tokenize", af_cli_tokenize, "tokenize text or a TSV column with a model's WordPiece vocabulary"},
      {"data", af_cli_data, "build the default task, show dataset statistics"},
      {"export", af_cli_export, "write a fine-tuned checkpoint in Hugging Face layout"},
      {"bench", af_cli_bench, "benchmarks: training step, GEMM, tokenizer, cache"},
  };
  const int n = (int)(sizeof cmds / sizeof cmds[0]);
  if (argc < 2) {
    usage(stderr, cmds, n);
    return AF_EXIT_USAGE;
  }
  const char *c = argv[1];
  if (!strcmp(c, "-h") || !strcmp(c, "--help") || !strcmp(c, "help")) {
    usage(stdout, cmds, n);
    return AF_EXIT_OK;
  }
  if (!strcmp(c, "-V") || !strcmp(c, "--version")) {
    printf("autofreeze %s (git %s)\n", AF_VERSION, AF_GIT_REV);
    return AF_EXIT_OK;
  }
  for (int i = 0; i < n; i++) {
    if (strcmp(c, cmds[i].name)) continue;
    return cmds[i].fn(argc - 1, argv + 1);
  }
  fprintf(stderr, "autofreeze: unknown command '%s'\n", c);
  usage(stderr, cmds, n);
  return AF_EXIT_USAGE;
}
