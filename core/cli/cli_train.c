/* `autofreeze train`: every option comes from the run options table (core/run/options.c):
 * --name VALUE or --name=VALUE, booleans as --name / --no-name. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core/cli/cli.h"
#include "core/data/task.h"
#include "core/run/dist.h"
#include "core/run/train.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: autofreeze train --model DIR --task NAME --data DIR --out FILE.h5 [options]\n"
          "\n"
          "Fine-tune a BERT checkpoint on a task with a freeze policy; write an HDF5 results file.\n"
          "The same options are the keys of Lua's af.train{} (max-depth: max_depth).\n\n");
  af_opts_help(f);
  fprintf(f, "\ntasks: %s\n", af_task_names());
  fprintf(f,
          "\n"
          "SIGINT/SIGTERM finish the current step, save a checkpoint, flush the results file and\n"
          "exit with status 1; --resume continues from there with identical results.\n"
          "exit codes: 0 success, 1 runtime error, 2 usage error\n");
}

/* One argument (and its value, from argv[*i + 1] or after '='). 1: parsed, 0: error shown. */
static int parse_one(af_train_opts *o, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  char name[128];
  snprintf(name, sizeof name, "%s", a + 2);
  const char *value = NULL;
  char *eq = strchr(name, '=');
  if (eq) {
    *eq = 0;
    value = a + 2 + (eq - name) + 1;
  }
  int negated = 0;
  const af_opt *opt = af_opt_find(name);
  if (!opt && !strncmp(name, "no-", 3) && (opt = af_opt_find(name + 3)) && opt->kind == AF_OPT_BOOL) negated = 1;
  else if (opt && opt->kind == AF_OPT_BOOL && !value) value = "true";
  if (!opt || (negated && opt->kind != AF_OPT_BOOL)) {
    fprintf(stderr, "autofreeze train: unknown option '%s' (see --help)\n", a);
    return 0;
  }
  if (negated) {
    if (value) {
      fprintf(stderr, "autofreeze train: %s takes no value\n", argv[*i]);
      return 0;
    }
    value = "false";
  }
  if (!value) {
    if (*i + 1 >= argc) {
      fprintf(stderr, "autofreeze train: option '%s' needs a value (see --help)\n", a);
      return 0;
    }
    value = argv[++*i];
  }
  char cli[64];
  if (af_opt_set(opt, o, value) != AF_OK) {
    fprintf(stderr, "autofreeze train: %s %s\n", af_opt_cli_name(opt, cli, sizeof cli), af_last_error());
    return 0;
  }
  return 1;
}

/* The parsed options; AF_EXIT_OK to run, else the exit code (help printed: -1). */
static int parse(af_train_opts *o, int argc, char **argv) {
  af_train_opts_default(o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return -1;
    }
    if (strncmp(a, "--", 2) || !a[2]) {
      fprintf(stderr, "autofreeze train: unexpected argument '%s' (see --help)\n", a);
      return AF_EXIT_USAGE;
    }
    if (!parse_one(o, argc, argv, &i)) return AF_EXIT_USAGE;
  }
  for (int k = 0; k < af_opts_count; k++) {
    char v[16], cli[64];
    if (!(af_opts[k].flags & AF_OPT_REQUIRED)) continue;
    af_opt_get(&af_opts[k], o, v, sizeof v);
    if (!v[0]) {
      fprintf(stderr, "autofreeze train: %s is required; a run needs --model, --task, --data and --out (see --help)\n",
              af_opt_cli_name(&af_opts[k], cli, sizeof cli));
      return AF_EXIT_USAGE;
    }
  }
  if (af_opts_check(o) != AF_OK) {
    fprintf(stderr, "autofreeze train: %s (see --help)\n", af_last_error());
    return AF_EXIT_USAGE;
  }
  return AF_EXIT_OK;
}

int af_cli_train(int argc, char **argv) {
  af_train_opts o;
  int rc = parse(&o, argc, argv);
  if (rc) return rc < 0 ? AF_EXIT_OK : rc;
  af_train_summary sum;
  af_status s = af_train(&o, &sum);
  const int rank = af_dist_rank();  /* after af_train joined the job: rank 0 speaks for all ranks */
  if (s != AF_OK) return rank == 0 ? af_cli_report("train") : AF_EXIT_RUNTIME;
  if (!o.quiet && rank == 0) {
    printf("%s: %s, %ld steps, final frozen depth %d, %.1f s", o.out, sum.status, sum.steps, sum.final_depth,
           sum.total_time);
    if (!isnan(sum.best))
      printf(", best %s %.4f at step %ld (%.1f s of training), final %.4f", sum.metric, sum.best, sum.best_step,
             sum.time_to_best, sum.final);
    printf("\n");
  }
  return AF_EXIT_OK;
}
