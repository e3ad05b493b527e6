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

/* One gnuplot variable for af_plot_script: an array of strings (strs != NULL: NAME[1..nstrs]),
 * a string (str != NULL) or a number (NaN allowed). */
typedef struct {
  const char *name;
  const char *str;
  double num;
  const char *const *strs;
  int nstrs;
} af_plot_var;

/* One figure from data the caller wrote (e.g. under outdir/data/): runs plots/SCRIPT (a file
 * name, NAME.gp) after setting the variables, with the same gnuplot (AF_GNUPLOT), scripts
 * folder, terminals and checks as af_plot_files, into outdir/STEM.png and .svg; the script
 * also gets plotdir, outbase, term and palette[] like the engine's own figures. gnuplot's
 * messages go to outdir/data/gnuplot-STEM.log. quiet: no "wrote ..." lines. */
af_status af_plot_script(const char *outdir, const char *stem, const char *script, const af_plot_var *vars,
                         int nvars, int quiet);

/* The folder with the gnuplot scripts: $AF_PLOTS_DIR, else the source tree's plots/, else
 * <exe>/../plots or <exe>/../share/autofreeze/plots (the first holding metric_time.gp). */
const char *af_plot_scripts_dir(void);

#endif
