/* `autofreeze plot RESULTS.h5... -o DIR`: the command line of the plot engine (plots/plot.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/cli/cli.h"
#include "plots/plot.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: autofreeze plot RESULTS.h5... [-o DIR] [--quiet]\n"
          "\n"
          "Turn results files into gnuplot figures (PNG and SVG) and a summary table.\n"
          "\n"
          "  -o, --out DIR   output folder (default plots/out), created if needed\n"
          "  -q, --quiet     no listing of what was written\n"
          "  -h, --help      this help\n"
          "\n"
          "figures (runs grouped by the config attributes task, policy + knobs, cache, seed):\n"
          "  metric_time_TASK     dev metric vs wall time, one line per run\n"
          "  depth_step_TASK      frozen depth vs optimizer step, one line per run\n"
          "  heatmap_RUN          per-layer gradient L2 norm over the decision intervals\n"
          "  phases_TASK          wall time per phase (step parts, eval, checkpoints, set-up and rest)\n"
          "  metric_bars          best dev metric per task and configuration, min..max over seeds\n"
          "  speedup_bars         training-time speedup vs the 'none' run of the same task and seed\n"
          "tables: summary.md, summary.csv; gnuplot's data files and log: DIR/data/\n"
          "\n"
          "environment: AF_PLOTS_DIR (the gnuplot scripts, default the source tree's plots/),\n"
          "AF_GNUPLOT (the gnuplot program, default gnuplot)\n"
          "exit codes: 0 success, 1 a results file or gnuplot failed, 2 usage error\n");
}

int af_cli_plot(int argc, char **argv) {
  const char *outdir = "plots/out";
  int quiet = 0, nf = 0;
  const char **files = calloc((size_t)argc + 1, sizeof *files);
  if (!files) {
    fprintf(stderr, "autofreeze plot: out of memory\n");
    return AF_EXIT_RUNTIME;
  }
  int only_files = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!only_files && a[0] == '-' && a[1]) {
      if (!strcmp(a, "--")) only_files = 1;
      else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
        usage(stdout);
        free(files);
        return AF_EXIT_OK;
      } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
      else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
        if (i + 1 >= argc) {
          fprintf(stderr, "autofreeze plot: %s needs a folder (see --help)\n", a);
          free(files);
          return AF_EXIT_USAGE;
        }
        outdir = argv[++i];
      } else if (!strncmp(a, "--out=", 6)) outdir = a + 6;
      else {
        fprintf(stderr, "autofreeze plot: unknown option '%s' (see --help)\n", a);
        free(files);
        return AF_EXIT_USAGE;
      }
      continue;
    }
    files[nf++] = a;
  }
  if (nf == 0) {
    fprintf(stderr, "autofreeze plot: expected at least one results file (see --help)\n");
    free(files);
    return AF_EXIT_USAGE;
  }
  af_status s = af_plot_files(files, nf, outdir, quiet);
  free(files);
  if (s != AF_OK) return af_cli_report("plot");
  return AF_EXIT_OK;
}
