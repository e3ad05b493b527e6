/* `autofreeze bench <what>`: dispatches to the benchmarks in core/bench/bench_*.c. */
#include <stdio.h>
#include <string.h>
#include "core/bench/bench.h"
#include "core/cli/cli.h"


int af_cli_bench(int argc, char **argv) {
  const struct { const char *name; int (*fn)(int, char **); const char *what; } b[] = {
      {"step", af_bench_step, "training step time, tokens/s and GFLOP/s per frozen depth (and PyTorch's)"},
      {"gemm", af_bench_gemm, "the machine's best fp32 GEMM rate for the model's shapes (oneDNN, OpenBLAS)"},
      {"tokenize", af_bench_tokenize, "tokenizer throughput (MB/s, tokens/s on one core)"},
      {"cache", af_bench_cache, "step time with and without the activation cache per frozen depth"},
  };
  const int n = (int)(sizeof b / sizeof b[0]);
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    FILE *f = argc < 2 ? stderr : stdout;
    fprintf(f, "usage: autofreeze bench <what> [options]   ('autofreeze bench <what> --help' for options)\n\n");
    for (int i = 0; i < n; i++)
      fprintf(f, "  %-9s %s\n", b[i].name, b[i].what);
    return argc < 2 ? AF_EXIT_USAGE : AF_EXIT_OK;
  }
  for (int i = 0; i < n; i++) {
    if (strcmp(argv[1], b[i].name)) continue;
    return b[i].fn(argc - 1, argv + 1);
  }
  fprintf(stderr, "autofreeze bench: unknown benchmark '%s'\n", argv[1]);
  return AF_EXIT_USAGE;
}
