/* Helpers shared by the subcommands. */
#include <stdio.h>
#include "core/cli/cli.h"
#include "core/base/status.h"

int af_cli_report(const char *cmd) {
  fprintf(stderr, "autofreeze %s: %s\n", cmd, af_last_error());
  return AF_EXIT_RUNTIME;
}
