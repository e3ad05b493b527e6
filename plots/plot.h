/* The engine behind `autofreeze plot` and af.plot (implemented in plots/plot.c): reads
 * results files with the core/results/results_read.h reader, writes gnuplot data files and a summary
 * table, and runs the scripts in plots/NAME.gp. Kept apart from core/cli/cli.h so that the Lua
 * bindings can call it without going through an argv. */
#ifndef AF_PLOT_H
#define AF_PLOT_H
#include "core/base/status.h"

/* Figures (PNG + SVG), summary.md and summary.csv for n results files into outdir (created
 * with its parents). quiet: no "wrote ..." lines on stdout. A missing or unreadable results
 * file, a gnuplot that is absent or fails, or a figure that did not appear, is an error. */
af_status af_plot_files(const char *const *files, int n, const char *outdir, int quiet);

/* The folder with the gnuplot scripts: $AF_PLOTS_DIR, else the source tree's plots/, else
 * <exe>/../plots or <exe>/../share/autofreeze/plots (the first holding metric_time.gp). */
const char *af_plot_scripts_dir(void);

#endif
