/* Subcommands of the autofreeze CLI. Each takes the arguments after its own name
 * (argv[0] is the subcommand name) and returns the process exit code:
 * 0 success, 1 runtime error (message on stderr), 2 usage error.
 * Each prints its own help for -h/--help and exits 0. */
#ifndef AF_CLI_H
#define AF_CLI_H

#define AF_EXIT_OK 0
#define AF_EXIT_RUNTIME 1
#define AF_EXIT_USAGE 2

int af_cli_info(int argc, char **argv);      /* core/cli/cli_info.c */
int af_cli_tokenize(int argc, char **argv);  /* core/cli/cli_tokenize.c */
int af_cli_data(int argc, char **argv);      /* core/cli/cli_data.c */
int af_cli_train(int argc, char **argv);     /* core/cli/cli_train.c */
int af_cli_export(int argc, char **argv);    /* core/cli/cli_export.c */
int af_cli_bench(int argc, char **argv);     /* core/cli/cli_bench.c */
int af_cli_run(int argc, char **argv);       /* lua/host.c */
int af_cli_plot(int argc, char **argv);      /* core/cli/cli_plot.c */

/* Print "autofreeze <cmd>: <af_last_error()>" to stderr and return AF_EXIT_RUNTIME. */
int af_cli_report(const char *cmd);

#endif
