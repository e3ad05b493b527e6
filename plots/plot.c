/* The plot engine behind `autofreeze plot` and af.plot: results files -> gnuplot figures (PNG
 * and SVG) and a summary table. The C side reads each file with the results reader
 * (core/results/results_read.h), writes plain data files under DIR/data/ and feeds gnuplot
 * (one process, through popen) short preambles that set variables and `load` the scripts in
 * plots/NAME.gp, so the look of a figure is edited in gnuplot, not here. Figures: dev metric
 * vs wall time and frozen depth vs step (per task, one line per run), a per-layer
 * gradient-norm heatmap (per run), the per-phase time breakdown (per task), and with several
 * runs speedup and metric bars per task with the spread over seeds. Runs are grouped by the
 * config attributes task / policy (+knobs) / cache / seed; the speedup of a run is the
 * training time of the 'none' run of the same task and seed divided by its own.
 * af_plot_script draws one figure from a data file a caller wrote (the policy lab's Pareto
 * figure, plots/pareto.gp) through the same gnuplot plumbing. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/base/fsutil.h"
#include "core/results/results_read.h"
#include "plots/plot.h"

#ifndef AF_SOURCE_DIR
#define AF_SOURCE_DIR "."
#endif

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define NAMELEN 256

typedef struct {
  char path[PATH_MAX];
  char name[NAMELEN];     /* file name without folder and .h5: the run's id in file names */
  char task[64], policy[64], knobs[128], cache[32], metric[32], model[NAMELEN], status[32];
  char group[NAMELEN];    /* policy (knobs) [+ cache]: a configuration, over seeds */
  char label[NAMELEN];    /* group [+ seed]: legend entry */
  char shortg[NAMELEN];   /* the group in few characters: "adaptive p=50 +cache(memory)" (bar labels) */
  long long seed;
  int L;
  double best, final, train_time, total_time, time_to_best, eval_time;
  double wall_time, setup_time, ckpt_time;  /* the wall-time split (NAN in files from before it) */
  long long best_step, final_depth, train_examples;
  double speedup, speedup_ttb;  /* vs the 'none' run of the same task and seed; NAN without one */
  /* steps */
  size_t ns;
  double *step, *wall, *depth;
  double sum_data, sum_fwd, sum_bwd, sum_opt, sum_total;
  /* evaluations of the primary metric */
  size_t ne;
  double *ewall, *estep, *evalue;
  /* intervals */
  size_t ni, icols;
  double *istep, *dbefore, *dafter, *l2;
} run_t;

static void run_free(run_t *r) {
  free(r->step);
  free(r->wall);
  free(r->depth);
  free(r->ewall);
  free(r->estep);
  free(r->evalue);
  free(r->istep);
  free(r->dbefore);
  free(r->dafter);
  free(r->l2);
}

static const char *attr_s(const af_attr *a, int n, const char *k, const char *def) {
  const af_attr *x = af_results_find_attr(a, n, k);
  return x && x->type == AF_ATTR_STR && x->s ? x->s : def;
}
static double attr_d(const af_attr *a, int n, const char *k) {
  const af_attr *x = af_results_find_attr(a, n, k);
  return x && (x->type == AF_ATTR_DOUBLE || x->type == AF_ATTR_INT) ? x->d : NAN;
}

static double sum(const double *v, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(v[i])) s += v[i];
  return s;
}

/* "static" + "frozen=5" -> "static (frozen=5)"; "none" -> "none (full fine-tuning)". */
static void policy_label(const run_t *r, char *out, size_t cap) {
  int n;
  if (!strcmp(r->policy, "none")) n = snprintf(out, cap, "none (full fine-tuning)");
  else if (r->knobs[0]) n = snprintf(out, cap, "%s (%s)", r->policy, r->knobs);
  else n = snprintf(out, cap, "%s", r->policy);
  if (r->cache[0] && strcmp(r->cache, "off") && n >= 0 && (size_t)n < cap)
    snprintf(out + n, cap - (size_t)n, " + %s cache", r->cache);
}

/* "percentile=50 max_depth=4" -> "p=50 d=4", "frozen=5" -> "k=5"; other knobs as they are. */
static void short_label(run_t *r) {
  static const char *const from[] = {"percentile=", "max_depth=", "frozen="};
  static const char *const to[] = {"p=", "d=", "k="};
  char k[sizeof r->knobs];
  size_t j = 0;
  for (const char *c = r->knobs; *c && j + 1 < sizeof k;) {
    int hit = 0;
    for (int i = 0; i < 3 && !hit; i++)
      if (!strncmp(c, from[i], strlen(from[i]))) {
        j += (size_t)snprintf(k + j, sizeof k - j, "%s", to[i]);
        c += strlen(from[i]);
        hit = 1;
      }
    if (!hit) k[j++] = *c++;
  }
  k[j < sizeof k ? j : sizeof k - 1] = 0;
  int n = snprintf(r->shortg, sizeof r->shortg, "%s%s%s", r->policy, k[0] ? " " : "", k);
  if (r->cache[0] && strcmp(r->cache, "off") && n > 0 && (size_t)n < sizeof r->shortg)
    snprintf(r->shortg + n, sizeof r->shortg - (size_t)n, " +cache(%s)", r->cache);
}

/* The run's id: the file name without folder and extension, made safe for file names. */
static void run_stem(const char *path, run_t *r) {
  const char *base = strrchr(path, '/');
  snprintf(r->name, sizeof r->name, "%s", base ? base + 1 : path);
  char *dot = strrchr(r->name, '.');
  if (dot && dot != r->name) *dot = 0;
  for (char *p = r->name; *p; p++)  /* a safe file-name stem */
    if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')))
      *p = '_';
}

/* What the run was (/config) and how it went (/summary). */
static void run_attrs(run_t *r, const af_attr *cfg, int nc, const af_attr *sm, int nsm) {
  snprintf(r->task, sizeof r->task, "%s", attr_s(cfg, nc, "task", "unknown"));
  snprintf(r->policy, sizeof r->policy, "%s", attr_s(cfg, nc, "policy", "none"));
  snprintf(r->knobs, sizeof r->knobs, "%s", attr_s(cfg, nc, "policy_knobs", ""));
  snprintf(r->cache, sizeof r->cache, "%s", attr_s(cfg, nc, "cache", "off"));
  const char *model = attr_s(cfg, nc, "model", "");
  size_t ml = strlen(model);
  while (ml > 1 && model[ml - 1] == '/') ml--;
  const char *mb = model + ml;
  while (mb > model && mb[-1] != '/') mb--;
  snprintf(r->model, sizeof r->model, "%.*s", (int)(model + ml - mb), mb);
  snprintf(r->metric, sizeof r->metric, "%s", attr_s(sm, nsm, "best_metric", attr_s(cfg, nc, "metric", "")));
  snprintf(r->status, sizeof r->status, "%s", attr_s(sm, nsm, "status", "unknown"));
  double seed = attr_d(cfg, nc, "seed");
  r->seed = isfinite(seed) ? (long long)seed : 0;
  r->train_examples = (long long)attr_d(cfg, nc, "train_examples");
  r->best = attr_d(sm, nsm, "best_value");
  r->best_step = isfinite(attr_d(sm, nsm, "best_step")) ? (long long)attr_d(sm, nsm, "best_step") : -1;
  r->time_to_best = attr_d(sm, nsm, "time_to_best");
  r->total_time = attr_d(sm, nsm, "total_time");
  r->train_time = attr_d(sm, nsm, "train_time");
  r->eval_time = attr_d(sm, nsm, "eval_time");
  r->wall_time = attr_d(sm, nsm, "wall_time");
  r->setup_time = attr_d(sm, nsm, "setup_time");
  r->ckpt_time = attr_d(sm, nsm, "checkpoint_time");
  r->final_depth = isfinite(attr_d(sm, nsm, "final_depth")) ? (long long)attr_d(sm, nsm, "final_depth") : -1;
  char key[64];
  snprintf(key, sizeof key, "final_%s", r->metric);
  r->final = attr_d(sm, nsm, key);
}

static af_status read_attrs(af_results_reader *rr, run_t *r) {
  af_attr *cfg = NULL, *sm = NULL;
  int nc = 0, nsm = 0;
  af_status s = af_results_read_attrs(rr, "config", &cfg, &nc);
  if (s == AF_OK) s = af_results_read_attrs(rr, "summary", &sm, &nsm);
  if (s == AF_OK) {
    r->L = af_results_layers(rr);
    run_attrs(r, cfg, nc, sm, nsm);
  }
  af_results_free_attrs(cfg, nc);
  af_results_free_attrs(sm, nsm);
  return s;
}

/* Steps: step, wall time and frozen depth per step, and the sum of each phase's time. */
static af_status read_steps(af_results_reader *rr, run_t *r) {
  if (!af_results_has(rr, "steps/step")) return AF_OK;
  size_t n;
  double *v = NULL;
  af_status s = af_results_read_1d(rr, "steps/step", &r->step, &r->ns);
  if (s == AF_OK) s = af_results_read_1d(rr, "steps/wall", &r->wall, &n);
  if (s == AF_OK) s = af_results_read_1d(rr, "steps/frozen_depth", &r->depth, &n);
  const char *cols[] = {"steps/t_data", "steps/t_forward", "steps/t_backward", "steps/t_optimizer", "steps/t_total"};
  double *dst[] = {&r->sum_data, &r->sum_fwd, &r->sum_bwd, &r->sum_opt, &r->sum_total};
  for (int i = 0; i < 5 && s == AF_OK; i++) {
    if (!af_results_has(rr, cols[i])) continue;
    s = af_results_read_1d(rr, cols[i], &v, &n);
    if (s == AF_OK) *dst[i] = sum(v, n);
    free(v);
    v = NULL;
  }
  return s;
}

/* Evaluations of the primary metric (without a summary metric: the first metric dataset). */
static af_status read_evals(af_results_reader *rr, run_t *r) {
  if (!af_results_has(rr, "evals/step")) return AF_OK;
  af_status s = AF_OK;
  char p[128];
  if (!r->metric[0]) {
    char **names;
    int nn;
    s = af_results_list(rr, "evals", &names, &nn);
    for (int i = 0; s == AF_OK && i < nn; i++)
      if (strcmp(names[i], "step") && strcmp(names[i], "epoch") && strcmp(names[i], "wall")) {
        snprintf(r->metric, sizeof r->metric, "%s", names[i]);
        break;
      }
    if (s == AF_OK) af_results_free_names(names, nn);
  }
  snprintf(p, sizeof p, "evals/%s", r->metric);
  if (s == AF_OK && r->metric[0] && af_results_has(rr, p)) {
    size_t n;
    s = af_results_read_1d(rr, "evals/step", &r->estep, &r->ne);
    if (s == AF_OK) s = af_results_read_1d(rr, "evals/wall", &r->ewall, &n);
    if (s == AF_OK) s = af_results_read_1d(rr, p, &r->evalue, &n);
    if (s == AF_OK && n < r->ne) r->ne = n;
  }
  return s;
}

/* Intervals: the decision's step and depths, and the per-layer L2 norms [ni, icols]. */
static af_status read_intervals(af_results_reader *rr, run_t *r) {
  if (!af_results_has(rr, "intervals/l2")) return AF_OK;
  size_t n, rows;
  af_status s = af_results_read_1d(rr, "intervals/step", &r->istep, &r->ni);
  if (s == AF_OK) s = af_results_read_1d(rr, "intervals/depth_before", &r->dbefore, &n);
  if (s == AF_OK) s = af_results_read_1d(rr, "intervals/depth_after", &r->dafter, &n);
  if (s == AF_OK) s = af_results_read_2d(rr, "intervals/l2", &r->l2, &rows, &r->icols);
  if (s == AF_OK && rows < r->ni) r->ni = rows;
  return s;
}

static af_status read_run(const char *path, run_t *r) {
  memset(r, 0, sizeof *r);
  snprintf(r->path, sizeof r->path, "%s", path);
  run_stem(path, r);
  af_results_reader *rr = NULL;
  AF_TRY(af_results_open_read(path, &rr));
  af_status s = read_attrs(rr, r);
  if (s == AF_OK) s = read_steps(rr, r);
  if (s == AF_OK) s = read_evals(rr, r);
  if (s == AF_OK) s = read_intervals(rr, r);
  af_results_close_read(&rr);
  if (s != AF_OK) {
    af_error_prefix("%s: ", path);
    return s;
  }
  if (!isfinite(r->train_time) && r->ns) r->train_time = r->sum_total;
  char pl[NAMELEN];
  policy_label(r, pl, sizeof pl);
  snprintf(r->group, sizeof r->group, "%s", pl);
  short_label(r);
  return AF_OK;
}

/* ---- output helpers ---- */

static void put_num(FILE *f, double v) {
  if (isfinite(v)) fprintf(f, "%.9g", v);
  else fputs("NaN", f);
}

/* A gnuplot string literal (double quotes; backslash and quote escaped). */
static void gp_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', f);
    if (*s == '\n') {
      fputs("\\n", f);
      continue;
    }
    fputc(*s, f);
  }
  fputc('"', f);
}
static void gp_set_str(FILE *g, const char *var, const char *v) {
  fprintf(g, "%s = ", var);
  gp_str(g, v);
  fputc('\n', g);
}
/* array NAME[n] = ["a", "b", ...] */
static void gp_array_str(FILE *g, const char *var, const char *const *v, int n) {
  fprintf(g, "array %s[%d]\n", var, n > 0 ? n : 1);
  for (int i = 0; i < n; i++) {
    fprintf(g, "%s[%d] = ", var, i + 1);
    gp_str(g, v[i]);
    fputc('\n', g);
  }
}
static void gp_array_int(FILE *g, const char *var, const int *v, int n) {
  fprintf(g, "array %s[%d]\n", var, n > 0 ? n : 1);
  for (int i = 0; i < n; i++) fprintf(g, "%s[%d] = %d\n", var, i + 1, v[i]);
}

static FILE *open_data(const char *dir, const char *name, char *path, size_t cap) {
  snprintf(path, cap, "%s/data/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) AF_FAIL(AF_ERR_IO, "cannot write %s: %s", path, strerror(errno));
  return f;
}
static af_status close_data(FILE *f, const char *path) {
  int bad = ferror(f);
  if (fclose(f) != 0 || bad) return AF_FAIL(AF_ERR_IO, "error writing %s", path);
  return AF_OK;
}

/* ---- the figure list: gnuplot gets one `load` per figure and terminal ---- */

typedef struct {
  FILE *g;                /* gnuplot's stdin */
  const char *outdir, *scripts;
  const char *log;        /* gnuplot's messages: DIR/data/gnuplot.log */
  char **figs;            /* output stems (without .png/.svg) */
  int nfigs, capfigs;
} plotter;

static af_status add_fig(plotter *p, const char *stem) {
  if (p->nfigs == p->capfigs) {
    int cap = p->capfigs ? 2 * p->capfigs : 32;
    char **f = realloc(p->figs, (size_t)cap * sizeof *f);
    if (!f) return AF_FAIL(AF_ERR_NOMEM, "out of memory (figure list)");
    p->figs = f;
    p->capfigs = cap;
  }
  p->figs[p->nfigs] = strdup(stem);
  if (!p->figs[p->nfigs]) return AF_FAIL(AF_ERR_NOMEM, "out of memory (figure list)");
  p->nfigs++;
  return AF_OK;
}

/* Run `script` twice (png then svg) after the variable block `vars` (already written to a
 * memory buffer) into outdir/stem.{png,svg}. */
static af_status emit(plotter *p, const char *stem, const char *script, const char *vars) {
  char out[PATH_MAX];
  snprintf(out, sizeof out, "%s/%s", p->outdir, stem);
  static const char *const terms[] = {"png", "svg"};
  for (int t = 0; t < 2; t++) {
    fputs("reset session\n", p->g);
    gp_set_str(p->g, "plotdir", p->scripts);
    gp_set_str(p->g, "outbase", out);
    gp_set_str(p->g, "term", terms[t]);
    fputs(vars, p->g);
    fprintf(p->g, "load plotdir.\"/%s\"\nunset output\n", script);
  }
  return add_fig(p, stem);
}

/* A growable string for variable blocks. */
typedef struct {
  char *s;
  size_t n, cap;
  FILE *f;
} sbuf;
static FILE *sb_open(sbuf *b) {
  memset(b, 0, sizeof *b);
  b->f = open_memstream(&b->s, &b->n);
  return b->f;
}
static const char *sb_str(sbuf *b) {
  fflush(b->f);
  return b->s ? b->s : "";
}
static void sb_close(sbuf *b) {
  if (b->f) fclose(b->f);
  free(b->s);
  memset(b, 0, sizeof *b);
}

/* ---- grouping ---- */

static int index_of(char **list, int n, const char *s) {
  for (int i = 0; i < n; i++)
    if (!strcmp(list[i], s)) return i;
  return -1;
}

static const char *const palette[] = {"#4d4d4d", "#d95f02", "#1b9e77", "#7570b3", "#e7298a",
                                      "#66a61e", "#e6ab02", "#a6761d", "#1f78b4", "#b15928"};

/* Stable colour per configuration: 'none' is grey, the rest in order of appearance. */
typedef struct {
  char **groups;
  int ngroups;
  long long *seeds;
  int nseeds;
} legend_t;

static int group_color(const legend_t *lg, const char *group) {
  int i = index_of(lg->groups, lg->ngroups, group);
  int npal = (int)(sizeof palette / sizeof palette[0]);
  return i < 0 ? 0 : i % npal;
}
static int seed_dash(const legend_t *lg, long long seed) {
  for (int i = 0; i < lg->nseeds; i++)
    if (lg->seeds[i] == seed) return i % 5 + 1;
  return 1;
}

static int cmp_none_first(const char *a, const char *b) {
  int na = !strncmp(a, "none", 4), nb = !strncmp(b, "none", 4);
  if (na != nb) return nb - na;
  return 0;
}

/* ---- the figures ---- */

/* The lines of one figure: per run a data file, a legend title, a colour and a dash type. */
enum { LINES_MAX = 512 };
typedef struct {
  int n;
  const char *files[LINES_MAX], *titles[LINES_MAX];
  int coloridx[LINES_MAX], dashes[LINES_MAX];   /* gnuplot's 1-based colour index */
} line_set;

static void line_add(line_set *ls, const char *file, const run_t *r, const legend_t *lg) {
  ls->files[ls->n] = file;
  ls->titles[ls->n] = r->label;
  ls->coloridx[ls->n] = group_color(lg, r->group) + 1;
  ls->dashes[ls->n] = seed_dash(lg, r->seed);
  ls->n++;
}

static void gp_palette(FILE *v) { gp_array_str(v, "palette", palette, (int)(sizeof palette / sizeof palette[0])); }

/* The arrays every line figure (metric_time.gp, depth_step.gp) reads. */
static void gp_lines(FILE *v, const line_set *ls) {
  gp_array_str(v, "files", ls->files, ls->n);
  gp_array_str(v, "titles", ls->titles, ls->n);
  gp_array_int(v, "coloridx", ls->coloridx, ls->n);
  gp_array_int(v, "dashes", ls->dashes, ls->n);
  gp_palette(v);
}

/* DIR/data/<run>.metric.dat: wall time, step and the primary metric of each evaluation. */
static af_status write_metric_data(const char *outdir, const run_t *r, char *path) {
  char nm[NAMELEN + 16];
  snprintf(nm, sizeof nm, "%s.metric.dat", r->name);
  FILE *f = open_data(outdir, nm, path, PATH_MAX);
  if (!f) return AF_ERR_IO;
  fprintf(f, "# wall_s step %s\n", r->metric);
  for (size_t e = 0; e < r->ne; e++) {
    put_num(f, r->ewall[e]);
    fputc(' ', f);
    put_num(f, r->estep[e]);
    fputc(' ', f);
    put_num(f, r->evalue[e]);
    fputc('\n', f);
  }
  return close_data(f, path);
}

/* DIR/data/<run>.depth.dat: the frozen depth at the steps where it changes (and the ends). */
static af_status write_depth_data(const char *outdir, const run_t *r, char *path) {
  char nm[NAMELEN + 16];
  snprintf(nm, sizeof nm, "%s.depth.dat", r->name);
  FILE *f = open_data(outdir, nm, path, PATH_MAX);
  if (!f) return AF_ERR_IO;
  fprintf(f, "# step frozen_depth\n");
  double last = -1;
  for (size_t s = 0; s < r->ns; s++)  /* only the changes (and the ends): steps plots them */
    if (s == 0 || s + 1 == r->ns || r->depth[s] != last) {
      put_num(f, r->step[s]);
      fputc(' ', f);
      put_num(f, r->depth[s]);
      fputc('\n', f);
      last = r->depth[s];
    }
  return close_data(f, path);
}

static af_status metric_time_fig(plotter *p, const char *task, const char *metric, const char *model,
                                 const line_set *ls) {
  sbuf b;
  char title[512], stem[NAMELEN + 32];
  FILE *v = sb_open(&b);
  fprintf(v, "nruns = %d\n", ls->n);
  gp_lines(v, ls);
  snprintf(title, sizeof title, "%s: dev %s vs wall time%s%s", task, metric, model[0] ? " - model " : "", model);
  gp_set_str(v, "fig_title", title);
  snprintf(title, sizeof title, "dev %s", metric);
  gp_set_str(v, "ylabel", title);
  snprintf(stem, sizeof stem, "metric_time_%s", task);
  af_status s = emit(p, stem, "metric_time.gp", sb_str(&b));
  sb_close(&b);
  return s;
}

static af_status depth_step_fig(plotter *p, const char *task, int L, const line_set *ls) {
  sbuf b;
  char title[512], stem[NAMELEN + 32];
  FILE *v = sb_open(&b);
  fprintf(v, "nruns = %d\nlayers = %d\n", ls->n, L);
  gp_lines(v, ls);
  snprintf(title, sizeof title, "%s: frozen depth vs step (%d encoder layers)", task, L);
  gp_set_str(v, "fig_title", title);
  snprintf(stem, sizeof stem, "depth_step_%s", task);
  af_status s = emit(p, stem, "depth_step.gp", sb_str(&b));
  sb_close(&b);
  return s;
}

/* Per task: dev metric vs wall time and frozen depth vs step, one line per run. */
static af_status per_task_lines(plotter *p, run_t *runs, int n, const char *task, const legend_t *lg) {
  static char paths[2][LINES_MAX][PATH_MAX];
  line_set metric_lines = {0}, depth_lines = {0};
  int L = 1, k = 0;
  const char *metric = "metric", *model = "";
  for (int i = 0; i < n && k < LINES_MAX; i++) {
    run_t *r = &runs[i];
    if (strcmp(r->task, task)) continue;
    if (r->L > L) L = r->L;
    if (r->metric[0]) metric = r->metric;
    model = r->model;
    if (r->ne > 0) {
      AF_TRY(write_metric_data(p->outdir, r, paths[0][k]));
      line_add(&metric_lines, paths[0][k], r, lg);
    }
    if (r->ns > 0) {
      AF_TRY(write_depth_data(p->outdir, r, paths[1][k]));
      line_add(&depth_lines, paths[1][k], r, lg);
    }
    k++;
  }
  if (metric_lines.n > 0) AF_TRY(metric_time_fig(p, task, metric, model, &metric_lines));
  if (depth_lines.n > 0) AF_TRY(depth_step_fig(p, task, L, &depth_lines));
  return AF_OK;
}

static af_status heatmap(plotter *p, const run_t *r) {
  if (r->ni == 0 || r->icols == 0) return AF_OK;
  char path[PATH_MAX], dpath[PATH_MAX], nm[NAMELEN + 16];
  snprintf(nm, sizeof nm, "%s.heat.dat", r->name);
  FILE *f = open_data(p->outdir, nm, path, sizeof path);
  if (!f) return AF_ERR_IO;
  fprintf(f, "# interval layer l2 frozen\n");
  int any = 0;
  for (size_t i = 0; i < r->ni; i++) {
    for (size_t l = 0; l < r->icols; l++) {
      double v = r->l2[i * r->icols + l];
      int frozen = (double)l < r->dbefore[i];
      fprintf(f, "%zu %zu ", i, l);
      put_num(f, frozen || !(v > 0) ? NAN : v);
      fprintf(f, " %d\n", frozen);
      any |= !frozen && v > 0;
    }
  }
  AF_TRY(close_data(f, path));
  snprintf(nm, sizeof nm, "%s.decisions.dat", r->name);
  f = open_data(p->outdir, nm, dpath, sizeof dpath);
  if (!f) return AF_ERR_IO;
  fprintf(f, "# interval step depth_before depth_after\n");
  for (size_t i = 0; i < r->ni; i++) {
    fprintf(f, "%zu ", i);
    put_num(f, r->istep[i]);
    fprintf(f, " %g %g\n", r->dbefore[i], r->dafter[i]);
  }
  AF_TRY(close_data(f, dpath));
  if (!any) return AF_OK;
  sbuf b;
  FILE *v = sb_open(&b);
  gp_set_str(v, "heatfile", path);
  gp_set_str(v, "decfile", dpath);
  fprintf(v, "layers = %zu\nnintervals = %zu\n", r->icols, r->ni);
  char title[768];
  snprintf(title, sizeof title, "%s: per-layer gradient L2 norm per interval\\n%s, %s, seed %lld", r->name, r->task,
           r->group, r->seed);
  fprintf(v, "fig_title = \"");
  for (const char *c = title; *c; c++) {
    if (*c == '"') fputc('\\', v);
    fputc(*c, v);
  }
  fprintf(v, "\"\n");
  char stem[NAMELEN + 16];
  snprintf(stem, sizeof stem, "heatmap_%s", r->name);
  af_status s = emit(p, stem, "heatmap.gp", sb_str(&b));
  sb_close(&b);
  return s;
}

/* Mean over the runs of one (task, group) of the phase sums. */
static af_status phases(plotter *p, run_t *runs, int n, const char *task, const legend_t *lg) {
  char path[PATH_MAX], nm[128];
  snprintf(nm, sizeof nm, "phases_%s.dat", task);
  FILE *f = open_data(p->outdir, nm, path, sizeof path);
  if (!f) return AF_ERR_IO;
  fprintf(f, "\"configuration\" \"data\" \"forward\" \"backward\" \"optimizer\" \"step other\" \"evaluation\" "
             "\"checkpoints\" \"setup and rest\"\n");
  int rows = 0;
  for (int gi = 0; gi < lg->ngroups; gi++) {
    double acc[8] = {0};
    int cnt = 0;
    const char *shortg = lg->groups[gi];
    for (int i = 0; i < n; i++) {
      run_t *r = &runs[i];
      if (strcmp(r->task, task) || strcmp(r->group, lg->groups[gi]) || r->ns == 0) continue;
      double other = r->sum_total - (r->sum_data + r->sum_fwd + r->sum_bwd + r->sum_opt);
      double ev = isfinite(r->eval_time) ? r->eval_time : 0;
      double ck = isfinite(r->ckpt_time) ? r->ckpt_time : 0;
      /* the rest of the wall time: set-up, decisions, results writes (older files: no set-up) */
      double whole = isfinite(r->wall_time) ? r->wall_time : isfinite(r->total_time) ? r->total_time : 0;
      double setup = whole - r->sum_total - ev - ck;
      double v[8] = {r->sum_data, r->sum_fwd, r->sum_bwd, r->sum_opt, other > 0 ? other : 0, ev, ck, setup > 0 ? setup : 0};
      for (int c = 0; c < 8; c++) acc[c] += v[c];
      shortg = r->shortg;
      cnt++;
    }
    if (!cnt) continue;
    fputc('"', f);
    for (const char *c = shortg; *c; c++) fputc(*c == '"' ? '\'' : *c, f);
    if (cnt > 1) fprintf(f, " (n=%d)", cnt);
    fputc('"', f);
    for (int c = 0; c < 8; c++) {
      fputc(' ', f);
      put_num(f, acc[c] / cnt);
    }
    fputc('\n', f);
    rows++;
  }
  AF_TRY(close_data(f, path));
  if (!rows) return AF_OK;
  sbuf b;
  FILE *v = sb_open(&b);
  gp_set_str(v, "datafile", path);
  fprintf(v, "nbars = %d\n", rows);
  char title[256];
  snprintf(title, sizeof title, "%s: where the wall time of a run goes (seconds; n=K: mean of K seeds)", task);
  gp_set_str(v, "fig_title", title);
  char stem[128];
  snprintf(stem, sizeof stem, "phases_%s", task);
  af_status s = emit(p, stem, "phases.gp", sb_str(&b));
  sb_close(&b);
  return s;
}

/* Bars per task (clusters) and configuration (bars in a cluster): mean with min..max over
 * seeds. which: 0 = best metric, 1 = speedup in training time. */
static af_status bars(plotter *p, run_t *runs, int n, char **tasks, int ntasks, const legend_t *lg, int which) {
  char path[PATH_MAX];
  const char *fname = which ? "bars_speedup.dat" : "bars_metric.dat";
  FILE *f = open_data(p->outdir, fname, path, sizeof path);
  if (!f) return AF_ERR_IO;
  /* groups with at least one value */
  int use[lg->ngroups > 0 ? lg->ngroups : 1], nuse = 0;
  for (int gi = 0; gi < lg->ngroups; gi++) {
    int have = 0;
    for (int i = 0; i < n; i++)
      if (!strcmp(runs[i].group, lg->groups[gi]) && isfinite(which ? runs[i].speedup : runs[i].best)) have = 1;
    if (have) use[nuse++] = gi;
  }
  fprintf(f, "# task then per configuration: mean min max (over seeds)\n");
  int rows = 0;
  for (int t = 0; t < ntasks; t++) {
    const char *metric = "";
    for (int i = 0; i < n; i++)
      if (!strcmp(runs[i].task, tasks[t]) && runs[i].metric[0]) metric = runs[i].metric;
    if (which) fprintf(f, "\"%s\"", tasks[t]);
    else fprintf(f, "\"%s (%s)\"", tasks[t], metric);
    int any = 0;
    for (int u = 0; u < nuse; u++) {
      double s = 0, lo = INFINITY, hi = -INFINITY;
      int c = 0;
      for (int i = 0; i < n; i++) {
        if (strcmp(runs[i].task, tasks[t]) || strcmp(runs[i].group, lg->groups[use[u]])) continue;
        double x = which ? runs[i].speedup : runs[i].best;
        if (!isfinite(x)) continue;
        s += x;
        lo = x < lo ? x : lo;
        hi = x > hi ? x : hi;
        c++;
      }
      fputc(' ', f);
      put_num(f, c ? s / c : NAN);
      fputc(' ', f);
      put_num(f, c ? lo : NAN);
      fputc(' ', f);
      put_num(f, c ? hi : NAN);
      any |= c > 0;
    }
    fputc('\n', f);
    rows += any;
  }
  AF_TRY(close_data(f, path));
  if (!rows || !nuse) return AF_OK;
  const char *titles[nuse];
  int cidx[nuse];
  for (int u = 0; u < nuse; u++) {
    titles[u] = lg->groups[use[u]];
    cidx[u] = group_color(lg, lg->groups[use[u]]) + 1;
  }
  sbuf b;
  FILE *v = sb_open(&b);
  gp_set_str(v, "datafile", path);
  fprintf(v, "nconf = %d\nntasks = %d\nspeedup = %d\n", nuse, ntasks, which);
  gp_array_str(v, "titles", titles, nuse);
  gp_array_int(v, "coloridx", cidx, nuse);
  gp_palette(v);
  if (which) {
    gp_set_str(v, "fig_title", "Speedup in training time vs full fine-tuning (same task and seed); bars: mean, whiskers: min..max over seeds");
    gp_set_str(v, "ylabel", "speedup (x, training time of 'none' / this run)");
  } else {
    gp_set_str(v, "fig_title", "Best dev metric per task (the task's primary metric); bars: mean, whiskers: min..max over seeds");
    gp_set_str(v, "ylabel", "best dev metric");
  }
  af_status s = emit(p, which ? "speedup_bars" : "metric_bars", "bars.gp", sb_str(&b));
  sb_close(&b);
  return s;
}

/* ---- summary tables ---- */

static void csv_field(FILE *f, const char *s) {
  if (strpbrk(s, ",\"\n")) {
    fputc('"', f);
    for (; *s; s++) {
      if (*s == '"') fputc('"', f);
      fputc(*s, f);
    }
    fputc('"', f);
  } else {
    fputs(s, f);
  }
}

static void fmt(char *buf, size_t cap, const char *f, double v) {
  if (isfinite(v)) snprintf(buf, cap, f, v);
  else snprintf(buf, cap, "-");
}

static af_status summary(const char *outdir, run_t *runs, int n, int quiet) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/summary.csv", outdir);
  FILE *c = fopen(path, "w");
  if (!c) return AF_FAIL(AF_ERR_IO, "cannot write %s: %s", path, strerror(errno));
  fprintf(c, "run,file,task,policy,knobs,cache,seed,status,metric,best,final,best_step,train_time_s,"
             "time_to_best_s,total_time_s,final_depth,speedup_vs_none,time_to_best_speedup\n");
  for (int i = 0; i < n; i++) {
    run_t *r = &runs[i];
    const char *fields[] = {r->name, r->path, r->task, r->policy, r->knobs, r->cache};
    for (int k = 0; k < 6; k++) {
      csv_field(c, fields[k]);
      fputc(',', c);
    }
    fprintf(c, "%lld,%s,%s,", r->seed, r->status, r->metric);
    double nums[] = {r->best, r->final, (double)r->best_step, r->train_time, r->time_to_best, r->total_time,
                     (double)r->final_depth, r->speedup, r->speedup_ttb};
    for (int k = 0; k < 9; k++) {
      if (k) fputc(',', c);
      if (isfinite(nums[k])) fprintf(c, "%.6g", nums[k]);
    }
    fputc('\n', c);
  }
  int bad = ferror(c);
  if (fclose(c) != 0 || bad) return AF_FAIL(AF_ERR_IO, "error writing %s", path);

  snprintf(path, sizeof path, "%s/summary.md", outdir);
  FILE *m = fopen(path, "w");
  if (!m) return AF_FAIL(AF_ERR_IO, "cannot write %s: %s", path, strerror(errno));
  fprintf(m, "# Run summary\n\n"
             "Speedup: training time of the `none` run (full fine-tuning) of the same task and seed divided\n"
             "by this run's; time-to-best speedup likewise with the training time until the best dev score.\n"
             "Times are seconds of training (evaluation excluded).\n\n");
  fprintf(m, "| run | task | policy | cache | seed | metric | best | final | train time (s) | time to best (s) "
             "| final depth | speedup | time-to-best speedup | status |\n");
  fprintf(m, "|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
  for (int i = 0; i < n; i++) {
    run_t *r = &runs[i];
    char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32];
    fmt(b1, sizeof b1, "%.4f", r->best);
    fmt(b2, sizeof b2, "%.4f", r->final);
    fmt(b3, sizeof b3, "%.1f", r->train_time);
    fmt(b4, sizeof b4, "%.1f", r->time_to_best);
    fmt(b5, sizeof b5, "%.2fx", r->speedup);
    fmt(b6, sizeof b6, "%.2fx", r->speedup_ttb);
    char pol[NAMELEN];
    if (r->knobs[0]) snprintf(pol, sizeof pol, "%s (%s)", r->policy, r->knobs);
    else snprintf(pol, sizeof pol, "%s", r->policy);
    fprintf(m, "| %s | %s | %s | %s | %lld | %s | %s | %s | %s | %s | %lld | %s | %s | %s |\n", r->name, r->task, pol,
            r->cache, r->seed, r->metric, b1, b2, b3, b4, r->final_depth, b5, b6, r->status);
  }
  bad = ferror(m);
  if (fclose(m) != 0 || bad) return AF_FAIL(AF_ERR_IO, "error writing %s", path);
  if (!quiet) printf("wrote %s/summary.md and %s/summary.csv\n", outdir, outdir);
  return AF_OK;
}

/* ---- gnuplot ---- */

const char *af_plot_scripts_dir(void) {
  static char dir[PATH_MAX];
  const char *env = getenv("AF_PLOTS_DIR");
  if (env && *env) return env;
  char probe[PATH_MAX + 32];
  snprintf(dir, sizeof dir, "%s/plots", AF_SOURCE_DIR);
  snprintf(probe, sizeof probe, "%s/metric_time.gp", dir);
  if (access(probe, R_OK) == 0) return dir;
  char exe[PATH_MAX];
  af_exe_dir(exe, sizeof exe);
  if (*exe) {
    const char *rel[] = {"../plots", "../share/autofreeze/plots"};
    for (int i = 0; i < 2; i++) {
      snprintf(dir, sizeof dir, "%s/%s", exe, rel[i]);
      snprintf(probe, sizeof probe, "%s/metric_time.gp", dir);
      if (access(probe, R_OK) == 0) return dir;
    }
  }
  snprintf(dir, sizeof dir, "%s/plots", AF_SOURCE_DIR);
  return dir;
}

static int on_path(const char *prog) {
  if (strchr(prog, '/')) return access(prog, X_OK) == 0;
  const char *path = getenv("PATH");
  if (!path) path = "/usr/bin:/bin";
  char buf[PATH_MAX];
  for (const char *p = path; *p;) {
    const char *e = strchr(p, ':');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    snprintf(buf, sizeof buf, "%.*s/%s", (int)n, n ? p : ".", prog);
    if (access(buf, X_OK) == 0) return 1;
    if (!e) break;
    p = e + 1;
  }
  return 0;
}

/* Shell-quote s into buf with single quotes. */
static void shq(char *buf, size_t cap, const char *s) {
  size_t j = 0;
  if (j + 1 < cap) buf[j++] = '\'';
  for (; *s && j + 5 < cap; s++) {
    if (*s == '\'') {
      memcpy(buf + j, "'\\''", 4);
      j += 4;
    } else {
      buf[j++] = *s;
    }
  }
  if (j + 1 < cap) buf[j++] = '\'';
  buf[j] = 0;
}

/* The start of gnuplot's messages, for an error; "" when there are none. */
static void log_excerpt(const char *log, char *out, size_t cap) {
  out[0] = 0;
  FILE *f = fopen(log, "r");
  if (!f) return;
  size_t n = fread(out, 1, cap - 1, f);
  out[n] = 0;
  fclose(f);
}

static int cmp_str(const void *a, const void *b) {
  const char *x = *(char *const *)a, *y = *(char *const *)b;
  int c = cmp_none_first(x, y);
  return c ? c : strcmp(x, y);
}
static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

/* Names must be unique: they name the data files and heatmaps. */
static void unique_names(run_t *runs, int n) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < i; j++)
      if (!strcmp(runs[i].name, runs[j].name)) {
        char nm[NAMELEN];
        snprintf(nm, sizeof nm, "%s-%d", runs[i].name, i + 1);
        snprintf(runs[i].name, sizeof runs[i].name, "%s", nm);
      }
}

/* Tasks in order of appearance; configurations sorted with none first; seeds sorted. */
static void collect_legend(run_t *runs, int n, char **tasks, int *ntasks, legend_t *lg) {
  for (int i = 0; i < n; i++) {
    if (index_of(tasks, *ntasks, runs[i].task) < 0) tasks[(*ntasks)++] = runs[i].task;
    if (index_of(lg->groups, lg->ngroups, runs[i].group) < 0) lg->groups[lg->ngroups++] = runs[i].group;
    int have = 0;
    for (int k = 0; k < lg->nseeds; k++) have |= lg->seeds[k] == runs[i].seed;
    if (!have) lg->seeds[lg->nseeds++] = runs[i].seed;
  }
  qsort(lg->groups, (size_t)lg->ngroups, sizeof *lg->groups, cmp_str);
  qsort(lg->seeds, (size_t)lg->nseeds, sizeof *lg->seeds, cmp_ll);
}

/* r's speedup vs the 'none' run of the same task and seed: the plain one (no cache) unless r
 * is a 'none' run itself. NAN without one. */
static void speedup_vs_none(const run_t *runs, int n, run_t *r) {
  r->speedup = r->speedup_ttb = NAN;
  for (int j = 0; j < n; j++) {
    const run_t *b = &runs[j];
    if (strcmp(b->policy, "none") || strcmp(b->task, r->task) || b->seed != r->seed) continue;
    if (strcmp(b->cache, "off") && strcmp(r->policy, "none")) continue;  /* the plain baseline */
    if (isfinite(b->train_time) && r->train_time > 0) r->speedup = b->train_time / r->train_time;
    if (isfinite(b->time_to_best) && r->time_to_best > 0) r->speedup_ttb = b->time_to_best / r->time_to_best;
    break;
  }
}

/* Legend labels (with the seed when there are several) and speedups. */
static void label_runs(run_t *runs, int n, const legend_t *lg) {
  for (int i = 0; i < n; i++) {
    run_t *r = &runs[i];
    int seeds_in_group = 0;
    for (int j = 0; j < n; j++) seeds_in_group += !strcmp(runs[j].task, r->task) && !strcmp(runs[j].group, r->group);
    if (seeds_in_group > 1 || lg->nseeds > 1) snprintf(r->label, sizeof r->label, "%s, seed %lld", r->group, r->seed);
    else snprintf(r->label, sizeof r->label, "%s", r->group);
    speedup_vs_none(runs, n, r);
  }
}

/* gnuplot (AF_GNUPLOT, else "gnuplot" on PATH) and the folder of our scripts. */
static af_status find_gnuplot(const char *outdir, const char **prog, const char **scripts) {
  *prog = getenv("AF_GNUPLOT");
  if (!*prog || !**prog) *prog = "gnuplot";
  if (!on_path(*prog))
    return AF_FAIL(AF_ERR_IO, "plot: %s not found on PATH (install gnuplot, e.g. apt-get install gnuplot-nox); "
                   "the summary tables were written to %s", *prog, outdir);
  *scripts = af_plot_scripts_dir();
  char probe[PATH_MAX + 32];
  snprintf(probe, sizeof probe, "%s/metric_time.gp", *scripts);
  if (access(probe, R_OK) != 0)
    return AF_FAIL(AF_ERR_IO, "plot: gnuplot scripts not found (%s missing); set AF_PLOTS_DIR to the plots/ folder",
                   probe);
  return AF_OK;
}

static af_status all_figures(plotter *p, run_t *runs, int n, char **tasks, int ntasks, const legend_t *lg) {
  af_status s = AF_OK;
  for (int t = 0; t < ntasks && s == AF_OK; t++) s = per_task_lines(p, runs, n, tasks[t], lg);
  for (int i = 0; i < n && s == AF_OK; i++) s = heatmap(p, &runs[i]);
  for (int t = 0; t < ntasks && s == AF_OK; t++) s = phases(p, runs, n, tasks[t], lg);
  if (n > 1 && s == AF_OK) s = bars(p, runs, n, tasks, ntasks, lg, 0);
  if (n > 1 && s == AF_OK) {
    int have_speedup = 0;
    for (int i = 0; i < n; i++) have_speedup |= strcmp(runs[i].policy, "none") && isfinite(runs[i].speedup);
    if (have_speedup) s = bars(p, runs, n, tasks, ntasks, lg, 1);
  }
  return s;
}

/* What all_figures draws, for run_gnuplot's callback. */
typedef struct {
  run_t *runs;
  int n, ntasks;
  char **tasks;
  const legend_t *lg;
} figures_ctx;
static af_status draw_all(plotter *p, void *ctx) {
  figures_ctx *c = ctx;
  return all_figures(p, c->runs, c->n, c->tasks, c->ntasks, c->lg);
}

/* One gnuplot process draws every figure (`draw`); its messages go to p->log and into the error
 * when it fails. SIGPIPE is ignored meanwhile: a gnuplot that dies early is an error, not
 * the end of this process. */
typedef af_status (*draw_fn)(plotter *p, void *ctx);
static af_status run_gnuplot(plotter *p, const char *prog, draw_fn draw, void *ctx) {
  char cmd[3 * PATH_MAX], qprog[PATH_MAX + 16], qlog[2 * PATH_MAX];
  shq(qprog, sizeof qprog, prog);
  shq(qlog, sizeof qlog, p->log);
  snprintf(cmd, sizeof cmd, "%s 2>%s", qprog, qlog);
  fflush(stdout);
  void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
  p->g = popen(cmd, "w");
  if (!p->g) {
    signal(SIGPIPE, old_pipe);
    return AF_FAIL(AF_ERR_IO, "plot: cannot start %s: %s", prog, strerror(errno));
  }
  af_status s = draw(p, ctx);
  int rc = pclose(p->g);
  signal(SIGPIPE, old_pipe);
  AF_TRY(s);
  if (rc != 0) {
    char ex[1200];
    log_excerpt(p->log, ex, sizeof ex);
    return AF_FAIL(AF_ERR_BACKEND, "plot: gnuplot failed (exit status %d); its messages (%s):\n%s",
                   WIFEXITED(rc) ? WEXITSTATUS(rc) : rc, p->log, ex);
  }
  return AF_OK;
}

/* gnuplot can exit 0 without drawing: every figure must exist, as PNG and SVG, not empty. */
static af_status check_figures(const plotter *p) {
  for (int i = 0; i < p->nfigs; i++) {
    static const char *const ext[] = {"png", "svg"};
    for (int e = 0; e < 2; e++) {
      char fp[PATH_MAX + 16];
      snprintf(fp, sizeof fp, "%s/%s.%s", p->outdir, p->figs[i], ext[e]);
      struct stat st;
      if (stat(fp, &st) != 0 || st.st_size == 0) {
        char ex[1200];
        log_excerpt(p->log, ex, sizeof ex);
        return AF_FAIL(AF_ERR_BACKEND, "plot: gnuplot did not produce %s; its messages (%s):\n%s", fp, p->log, ex);
      }
    }
  }
  return AF_OK;
}

static void print_figures(const plotter *p) {
  struct stat st;
  if (stat(p->log, &st) == 0 && st.st_size > 0)
    printf("gnuplot printed warnings: see %s\n", p->log);
  printf("wrote %d figures (PNG + SVG) to %s/\n", p->nfigs, p->outdir);
  for (int i = 0; i < p->nfigs; i++) printf("  %s.png\n", p->figs[i]);
}

af_status af_plot_files(const char *const *files, int n, const char *outdir, int quiet) {
  if (n <= 0) return AF_FAIL(AF_ERR_ARG, "plot: expected at least one results file");
  run_t *runs = calloc((size_t)n, sizeof *runs);
  char **tasks = calloc((size_t)n, sizeof *tasks);
  legend_t lg = {calloc((size_t)n, sizeof(char *)), 0, calloc((size_t)n, sizeof(long long)), 0};
  char data[PATH_MAX], log[PATH_MAX];
  snprintf(log, sizeof log, "%s/data/gnuplot.log", outdir);
  plotter p = {.outdir = outdir, .log = log};
  const char *prog = NULL;
  af_status s = AF_OK;
  int ntasks = 0, nread = 0;
  if (!runs || !tasks || !lg.groups || !lg.seeds) {
    s = AF_FAIL(AF_ERR_NOMEM, "plot: out of memory");
    goto done;
  }
  /* nread counts the failed run too: it may hold part of its data */
  for (; nread < n && s == AF_OK; nread++) s = read_run(files[nread], &runs[nread]);
  if (s != AF_OK) goto done;
  unique_names(runs, n);
  collect_legend(runs, n, tasks, &ntasks, &lg);
  label_runs(runs, n, &lg);
  s = af_mkdirs(outdir);
  snprintf(data, sizeof data, "%s/data", outdir);
  if (s == AF_OK) s = af_mkdirs(data);
  if (s == AF_OK) s = summary(outdir, runs, n, quiet);
  if (s == AF_OK) s = find_gnuplot(outdir, &prog, &p.scripts);
  if (s == AF_OK) {
    figures_ctx fc = {runs, n, ntasks, tasks, &lg};
    s = run_gnuplot(&p, prog, draw_all, &fc);
  }
  if (s == AF_OK) s = check_figures(&p);
  if (s == AF_OK && !quiet) print_figures(&p);
done:
  for (int i = 0; i < nread && runs; i++) run_free(&runs[i]);
  for (int i = 0; i < p.nfigs; i++) free(p.figs[i]);
  free(p.figs);
  free(runs);
  free(tasks);
  free(lg.groups);
  free(lg.seeds);
  return s;
}

/* ---- one figure from a caller's data (af.plot_script: the policy lab's Pareto figure) ---- */

typedef struct {
  const char *stem, *script;
  const af_plot_var *vars;
  int nvars;
} script_ctx;

static af_status draw_script(plotter *p, void *ctx) {
  const script_ctx *c = ctx;
  sbuf b;
  FILE *v = sb_open(&b);
  if (!v) return AF_FAIL(AF_ERR_NOMEM, "plot: out of memory (variables)");
  for (int i = 0; i < c->nvars; i++) {
    if (c->vars[i].strs) {
      gp_array_str(v, c->vars[i].name, c->vars[i].strs, c->vars[i].nstrs);
    } else if (c->vars[i].str) {
      gp_set_str(v, c->vars[i].name, c->vars[i].str);
    } else {
      fprintf(v, "%s = ", c->vars[i].name);
      if (isfinite(c->vars[i].num)) fprintf(v, "%.17g\n", c->vars[i].num);
      else fputs("NaN\n", v);
    }
  }
  gp_palette(v);
  af_status s = emit(p, c->stem, c->script, sb_str(&b));
  sb_close(&b);
  return s;
}

/* A name gnuplot takes as a variable, or a plain file name (no folder, no leading dot). */
static int gp_ident(const char *s) {
  if (!*s || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return 0;
  for (; *s; s++)
    if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9'))) return 0;
  return 1;
}
static int plain_name(const char *s) { return *s && *s != '.' && !strchr(s, '/'); }

af_status af_plot_script(const char *outdir, const char *stem, const char *script, const af_plot_var *vars,
                         int nvars, int quiet) {
  if (!plain_name(stem)) return AF_FAIL(AF_ERR_ARG, "plot: figure name '%s' must be a file name without a folder", stem);
  if (!plain_name(script) || strlen(script) < 4 || strcmp(script + strlen(script) - 3, ".gp"))
    return AF_FAIL(AF_ERR_ARG, "plot: script '%s' must be the name of a NAME.gp in the plots folder", script);
  for (int i = 0; i < nvars; i++)
    if (!gp_ident(vars[i].name))
      return AF_FAIL(AF_ERR_ARG, "plot: '%s' is not a gnuplot variable name (letters, digits, _)", vars[i].name);
  char data[PATH_MAX], log[PATH_MAX], probe[PATH_MAX + 32];
  snprintf(data, sizeof data, "%s/data", outdir);
  snprintf(log, sizeof log, "%s/data/gnuplot-%s.log", outdir, stem);
  plotter p = {.outdir = outdir, .log = log};
  const char *prog = NULL;
  af_status s = af_mkdirs(data);
  if (s == AF_OK) s = find_gnuplot(outdir, &prog, &p.scripts);
  if (s == AF_OK) {
    snprintf(probe, sizeof probe, "%s/%s", p.scripts, script);
    if (access(probe, R_OK) != 0) s = AF_FAIL(AF_ERR_IO, "plot: no gnuplot script %s", probe);
  }
  if (s == AF_OK) {
    script_ctx c = {stem, script, vars, nvars};
    s = run_gnuplot(&p, prog, draw_script, &c);
  }
  if (s == AF_OK) s = check_figures(&p);
  if (s == AF_OK && !quiet) print_figures(&p);
  for (int i = 0; i < p.nfigs; i++) free(p.figs[i]);
  free(p.figs);
  return s;
}
