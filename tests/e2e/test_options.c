/* The run options table, walked row by row (core/run/options.c). For every option:
 *   - its default parses (the table cannot hold a default it would refuse);
 *   - set from the CLI (`autofreeze train --name VALUE`, in-process) and from Lua
 *     (af.train{name = VALUE}), each run writes it to its results file's /config, and both
 *     read back as expected (resolved: a task alias as its name, device auto as the backend);
 *   - a bad value gets the same message from both front-ends, after the option's name;
 *   - an option that shapes the trajectory is refused on resume by a run that differs in it
 *     alone, the message naming its identity key.
 * Every row must have a case here: a new option without one fails this test. Runs are 2
 * steps of the tiny fixture model (tests/fixtures/bert_tiny) on the generated "you" task. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/cli/cli.h"
#include "core/results/results_read.h"
#include "core/run/train.h"
#include "lua/af_lua.h"
#include "tests/testutil.h"

typedef struct {
  const char *name;
  const char *value;   /* %T: the temporary folder, %F: "cli" or "lua" */
  const char *expect;  /* read back from /config ("a|b": either) */
  const char *with;    /* other settings it needs, "name=value ..." */
  const char *other;   /* trajectory rows: the value the refused resume uses (NULL: the default) */
  const char *bad;     /* a value both front-ends must refuse (NULL: any text is valid) */
} opt_case;

static const opt_case cases[] = {
    {"model", "%M", "%M", NULL, NULL, NULL},
    {"task", "generic", "generic", "text_cols=sentence label_col=label labels=0,1", NULL, NULL},
    {"data", "%D", "%D", NULL, NULL, NULL},
    {"out", "%T/%F-out.h5", "%T/%F-out.h5", NULL, NULL, NULL},
    {"epochs", "2", "2", NULL, NULL, "0"},
    {"batch", "8", "8", NULL, NULL, "x"},
    {"accum", "2", "2", NULL, NULL, "-1"},
    {"seq", "12", "12", NULL, NULL, "2"},
    {"bucket", "2", "2", NULL, NULL, "1.5"},
    {"max_train_rows", "32", "32", NULL, NULL, "-3"},
    {"max_eval_rows", "8", "8", NULL, NULL, "many"},
    {"seed", "7", "7", NULL, NULL, "-1"},
    {"eval_batch", "24", "24", NULL, NULL, "-1"},
    {"eval_every", "1", "1", NULL, NULL, "x"},
    {"max_steps", "1", "1", NULL, NULL, "-1"},
    {"skip_bad_rows", "true", "1", NULL, NULL, "maybe"},
    {"device", "auto", "cpu|cuda", NULL, NULL, "tpu"},
    {"threads", "2", "2", NULL, NULL, "99999"},
    {"precision", "bf16", "bf16", NULL, "fp32", "fp16"},
    {"frozen_precision", "bf16", "bf16", NULL, NULL, "auto"},
    {"text_cols", "sentence", "sentence", "task=generic label_col=label labels=0,1", NULL, NULL},
    {"label_col", "label", "label", "task=generic text_cols=sentence labels=0,1", NULL, NULL},
    {"labels", "0,1", "0,1", "task=generic text_cols=sentence label_col=label", NULL, NULL},
    {"format", "tsv", "tsv", "task=generic text_cols=sentence label_col=label labels=0,1", NULL, "xml"},
    {"regression", "true", "1", "task=generic text_cols=sentence label_col=label", NULL, "2"},
    {"header", "false", "0", "task=generic labels=0,1 text_cols=1 label_col=2 skip_bad_rows=true", NULL, "yes!"},
    {"policy", "adaptive", "adaptive", NULL, NULL, "sometimes"},
    {"frozen", "1", "1", "policy=static", "2", "-2"},
    {"percentile", "25", "25", "policy=adaptive", "50", "101"},
    {"max_depth", "1", "1", NULL, NULL, "-1"},
    {"signed_ratio", "true", "1", NULL, NULL, "nope"},
    {"frozen_dropout", "true", "1", NULL, NULL, "nope"},
    {"intervals", "3", "3", NULL, NULL, "0"},
    {"interval_steps", "1", "1", NULL, NULL, "0"},
    {"freeze_after", "0.25", "0.25", "policy=adaptive", NULL, "2"},
    {"max_freeze_step", "1", "1", "policy=adaptive", NULL, "0"},
    {"freeze_when_learned", "0.1", "0.1", "policy=adaptive", NULL, "1"},
    {"alpha", "0.5", "0.5", "policy=pipe", NULL, "0"},
    {"tolerance", "0.05", "0.05", "policy=gated", NULL, "-1"},
    {"val_rows", "8", "8", "policy=gated", NULL, "x"},
    {"freezeout_t0", "0.3", "0.3", "policy=freezeout", NULL, "0"},
    {"freezeout_schedule", "cubic", "cubic", "policy=freezeout", NULL, "quadratic"},
    {"freezeout_scaled", "true", "1", "policy=freezeout", NULL, "sure"},
    {"recipe", "paper", "paper", NULL, NULL, "fast"},
    {"lr", "0.002", "0.002", NULL, NULL, "0"},
    {"beta1", "0.8", "0.8", NULL, NULL, "1.5"},
    {"beta2", "0.99", "0.99", NULL, NULL, "-0.1"},
    {"adam_eps", "1e-07", "1e-07", NULL, NULL, "x"},
    {"weight_decay", "0.02", "0.02", NULL, NULL, "-1"},
    {"bias_correction", "false", "0", NULL, NULL, "perhaps"},
    {"clip", "per_tensor", "per_tensor", NULL, NULL, "always"},
    {"max_grad_norm", "0.5", "0.5", NULL, NULL, "-1"},
    {"schedule", "constant", "constant", NULL, NULL, "cosine"},
    {"warmup", "0.2", "0.2", NULL, NULL, "2"},
    {"layer_lr_decay", "0.8", "0.8", NULL, NULL, "1.5"},
    {"cache", "memory", "memory", NULL, NULL, "gpu"},
    {"cache_dtype", "bf16", "bf16", NULL, NULL, "f8"},
    {"cache_budget", "1M", "1048576", NULL, NULL, "12Q"},
    {"cache_dir", "%T/%F-cache", "%T/%F-cache", "cache=disk", NULL, NULL},
    {"cache_compress", "3", "3", NULL, NULL, "10"},
    {"checkpoint_dir", "%T/%F-ck", "%T/%F-ck", NULL, NULL, NULL},
    {"checkpoints", "false", "0", NULL, NULL, "never"},
    {"checkpoint_every", "1", "1", NULL, NULL, "often"},
    {"resume", "true", "1", NULL, NULL, "again"},
    {"progress", "false", "0", NULL, NULL, "sometimes"},
    {"quiet", "false", "0", NULL, NULL, "shh"},
};
enum { NCASES = sizeof cases / sizeof cases[0] };

static char g_model[4200], g_data[4200];
static const char *g_tmp;

/* %T, %F, %M, %D expanded */
static void expand(const char *in, const char *fe, char *out, size_t cap) {
  size_t u = 0;
  for (; *in && u + 1 < cap; in++) {
    const char *rep = NULL;
    if (in[0] == '%' && in[1] == 'T') rep = g_tmp;
    else if (in[0] == '%' && in[1] == 'F') rep = fe;
    else if (in[0] == '%' && in[1] == 'M') rep = g_model;
    else if (in[0] == '%' && in[1] == 'D') rep = g_data;
    if (rep) {
      u += (size_t)snprintf(out + u, cap - u, "%s", rep);
      in++;
    } else out[u++] = *in;
  }
  out[u < cap ? u : cap - 1] = 0;
}

/* name=value pairs of a run: the base, then `with`, then the option itself (later wins) */
typedef struct {
  char name[64][64];
  char value[64][4400];
  int n;
} settings;

static void put(settings *s, const char *name, const char *value) {
  for (int i = 0; i < s->n; i++)
    if (!strcmp(s->name[i], name)) {
      snprintf(s->value[i], sizeof s->value[i], "%s", value);
      return;
    }
  snprintf(s->name[s->n], sizeof s->name[0], "%s", name);
  snprintf(s->value[s->n++], sizeof s->value[0], "%s", value);
}

static void base(settings *s, const char *fe, const char *out) {
  s->n = 0;
  char o[4400];
  expand(out, fe, o, sizeof o);
  put(s, "model", g_model);
  put(s, "task", "sst2");
  put(s, "data", g_data);
  put(s, "out", o);
  put(s, "epochs", "1");
  put(s, "batch", "16");
  put(s, "seq", "16");
  put(s, "max_train_rows", "64");
  put(s, "max_eval_rows", "16");
  put(s, "max_steps", "2");
  put(s, "intervals", "2");
  put(s, "threads", "1");
  put(s, "quiet", "true");
}

static void put_pairs(settings *s, const char *pairs, const char *fe) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", pairs ? pairs : "");
  char *save, *tok = strtok_r(buf, " ", &save);
  for (; tok; tok = strtok_r(NULL, " ", &save)) {
    char *eq = strchr(tok, '='), v[4400];
    *eq = 0;
    expand(eq + 1, fe, v, sizeof v);
    put(s, tok, v);
  }
}

/* stderr into a file while fn runs; returns its last line */
static char *captured(const char *path, char *line, size_t cap) {
  FILE *f = fopen(path, "r");
  line[0] = 0;
  char buf[2048];
  while (f && fgets(buf, sizeof buf, f))
    if (buf[0] != '\n') snprintf(line, cap, "%s", buf);
  if (f) fclose(f);
  line[strcspn(line, "\n")] = 0;
  return line;
}

static int run_cli(const settings *s, char *err, size_t cap) {
  char *argv[160], args[64][4500];
  int argc = 0;
  argv[argc++] = "train";
  for (int i = 0; i < s->n; i++) {
    const af_opt *opt = af_opt_find(s->name[i]);
    char cli[64];
    af_opt_cli_name(opt, cli, sizeof cli);
    snprintf(args[i], sizeof args[i], "%s=%s", cli, s->value[i]);
    argv[argc++] = args[i];
  }
  argv[argc] = NULL;
  char path[4400];
  snprintf(path, sizeof path, "%s/stderr.txt", g_tmp);
  fflush(stderr);
  int saved = dup(2);
  FILE *f = freopen(path, "w", stderr);
  int rc = af_cli_train(argc, argv);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  if (f) clearerr(stderr);
  captured(path, err, cap);
  return rc;
}

/* a Lua literal for the value: numbers and booleans bare where the row's kind says so */
static void lua_literal(const af_opt *opt, const char *v, char *out, size_t cap) {
  char *end;
  strtod(v, &end);
  int number = *v && !*end && (opt->kind == AF_OPT_INT || opt->kind == AF_OPT_NUM || opt->kind == AF_OPT_PERIOD);
  int boolean = opt->kind == AF_OPT_BOOL && (!strcmp(v, "true") || !strcmp(v, "false"));
  if (number || boolean) snprintf(out, cap, "%s", v);
  else snprintf(out, cap, "\"%s\"", v);
}

static int run_lua(lua_State *L, const settings *s, char *err, size_t cap) {
  char chunk[32768];
  size_t u = (size_t)snprintf(chunk, sizeof chunk, "local af = require 'autofreeze'\naf.train{");
  for (int i = 0; i < s->n; i++) {
    char lit[4500];
    lua_literal(af_opt_find(s->name[i]), s->value[i], lit, sizeof lit);
    u += (size_t)snprintf(chunk + u, sizeof chunk - u, "%s = %s, ", s->name[i], lit);
  }
  snprintf(chunk + u, sizeof chunk - u, "}\n");
  err[0] = 0;
  if (luaL_dostring(L, chunk) == LUA_OK) return 0;
  snprintf(err, cap, "%s", lua_tostring(L, -1));
  lua_pop(L, 1);
  return 1;
}

/* the /config attribute as text */
static void read_back(const char *file, const char *key, char *out, size_t cap) {
  af_results_reader *rr = NULL;
  af_attr *at = NULL;
  int na = 0;
  out[0] = 0;
  snprintf(out, cap, "(no file)");
  if (af_results_open_read(file, &rr) != AF_OK) return;
  if (af_results_read_attrs(rr, "config", &at, &na) == AF_OK) {
    const af_attr *a = af_results_find_attr(at, na, key);
    if (!a) snprintf(out, cap, "(absent)");
    else if (a->type == AF_ATTR_STR) snprintf(out, cap, "%s", a->s ? a->s : "");
    else if (a->type == AF_ATTR_INT) snprintf(out, cap, "%lld", a->i);
    else snprintf(out, cap, "%.9g", a->d);
  }
  af_results_free_attrs(at, na);
  af_results_close_read(&rr);
}

static int matches(const char *got, const char *want) {
  char buf[4400];
  snprintf(buf, sizeof buf, "%s", want);
  char *save, *alt = strtok_r(buf, "|", &save);
  for (; alt; alt = strtok_r(NULL, "|", &save)) {
    if (!strcmp(got, alt)) return 1;
    char *e1, *e2;
    double a = strtod(got, &e1), b = strtod(alt, &e2);
    if (e1 != got && !*e1 && e2 != alt && !*e2 && fabs(a - b) <= 1e-6 * fabs(b)) return 1;
  }
  return 0;
}

static const char *value_of(const settings *s, const char *name) {
  for (int i = 0; i < s->n; i++)
    if (!strcmp(s->name[i], name)) return s->value[i];
  return "";
}

/* set from both front-ends and read back */
static void set_and_read(lua_State *L, const af_opt *opt, const opt_case *c) {
  const char *fes[2] = {"cli", "lua"};
  for (int f = 0; f < 2; f++) {
    settings s;
    char v[4400], want[4400], got[4400], err[4096], key[64];
    base(&s, fes[f], !strcmp(opt->name, "out") ? c->value : "%T/%F.h5");
    put_pairs(&s, c->with, fes[f]);
    expand(c->value, fes[f], v, sizeof v);
    if (!strcmp(opt->name, "resume")) {  /* a checkpoint to resume from first */
      int rc = f == 0 ? run_cli(&s, err, sizeof err) : run_lua(L, &s, err, sizeof err);
      CHECK(rc == 0);
      put(&s, "max_steps", "3");
    }
    put(&s, opt->name, v);
    int rc = f == 0 ? run_cli(&s, err, sizeof err) : run_lua(L, &s, err, sizeof err);
    if (rc != 0) fprintf(stderr, "%s from %s failed: %s\n", opt->name, fes[f], err);
    CHECK(rc == 0);
    expand(c->expect, fes[f], want, sizeof want);
    snprintf(key, sizeof key, "%s", opt->attr ? opt->attr : opt->name);
    read_back(value_of(&s, "out"), key, got, sizeof got);
    if (!matches(got, want)) {
      af_test_failures++;
      fprintf(stderr, "%s set from %s to '%s': /config@%s reads '%s', expected '%s'\n", opt->name, fes[f], v, key,
              got, want);
    }
  }
}

/* the same message from both front-ends, after the name */
static void bad_value(lua_State *L, const af_opt *opt, const opt_case *c) {
  if (!c->bad) {
    CHECK(opt->kind == AF_OPT_STR);  /* every other kind has a value it refuses */
    return;
  }
  settings s;
  char cli_err[4096], lua_err[4096], cli[64];
  base(&s, "bad", "%T/bad.h5");
  put(&s, opt->name, c->bad);
  int rc = run_cli(&s, cli_err, sizeof cli_err);
  CHECK(rc == AF_EXIT_USAGE);
  int lrc = run_lua(L, &s, lua_err, sizeof lua_err);
  CHECK(lrc == 1);
  af_opt_cli_name(opt, cli, sizeof cli);
  /* "autofreeze train: --max-depth expects ..." and "...: af.train: max_depth expects ..." */
  const char *a = strstr(cli_err, "autofreeze train: "), *b = strstr(lua_err, "af.train: ");
  a = a && !strncmp(a + 18, cli, strlen(cli)) ? a + 18 + strlen(cli) : "(name missing)";
  b = b && !strncmp(b + 10, opt->name, strlen(opt->name)) ? b + 10 + strlen(opt->name) : "(name missing)";
  if (strcmp(a, b) || !strstr(a, "expects")) {
    af_test_failures++;
    fprintf(stderr, "%s = '%s': the CLI says\n  %s\nand Lua\n  %s\n", opt->name, c->bad, cli_err, lua_err);
  }
}

/* more values both front-ends refuse, each with the message that names the allowed range */
static void more_bad_values(lua_State *L) {
  static const struct { const char *name, *bad, *says; } more[] = {
      {"layer_lr_decay", "0", "expects a number in (0, 1], got '0'"},
      {"layer_lr_decay", "1.5", "expects a number in (0, 1], got '1.5'"},
      {"layer_lr_decay", "abc", "expects a number in (0, 1], got 'abc'"},
      {"layer_lr_decay", "-0.5", "expects a number in (0, 1], got '-0.5'"},
      {"freezeout_t0", "0", "expects a number in (0, 1], got '0'"},
      {"freezeout_t0", "1.01", "expects a number in (0, 1], got '1.01'"},
      {"freezeout_schedule", "squared", "expects one of linear, cubic, got 'squared'"},
      {"freeze_when_learned", "-0.1", "expects a number in [0, 1), got '-0.1'"},
      {"freeze_when_learned", "1", "expects a number in [0, 1), got '1'"},
      {"freeze_when_learned", "abc", "expects a number in [0, 1), got 'abc'"},
      {"policy", "automatic", "expects one of none, static, adaptive, pipe, gated, freezeout, auto, got 'automatic'"},
  };
  for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
    const af_opt *opt = af_opt_find(more[i].name);
    CHECK(opt != NULL);
    if (!opt) continue;
    const opt_case c = {more[i].name, NULL, NULL, NULL, NULL, more[i].bad};
    int before = af_test_failures;
    bad_value(L, opt, &c);  /* the same text from both, after the name */
    settings s;
    char err[4096], want[512], cli[64];
    base(&s, "bad", "%T/bad.h5");
    put(&s, opt->name, more[i].bad);
    run_cli(&s, err, sizeof err);
    snprintf(want, sizeof want, "autofreeze train: %s %s", af_opt_cli_name(opt, cli, sizeof cli), more[i].says);
    if (!strstr(err, want)) {
      af_test_failures++;
      fprintf(stderr, "%s = '%s': the CLI says\n  %s\nexpected\n  %s\n", more[i].name, more[i].bad, err, want);
    }
    if (af_test_failures == before) printf("refused from the CLI and Lua alike: %s\n", want);
  }
}

/* a trajectory option: a checkpoint made with it is refused by a run without it */
static void refused_on_resume(const af_opt *opt, const opt_case *c) {
  settings s;
  char v[4400], err[4096];
  base(&s, "traj", "%T/traj.h5");
  put_pairs(&s, c->with, "traj");
  expand(c->value, "traj", v, sizeof v);
  put(&s, opt->name, v);
  put(&s, "max_steps", "1");
  put(&s, "eval_every", "1");  /* so the run ends evaluated, with its checkpoint */
  CHECK(run_cli(&s, err, sizeof err) == 0);
  base(&s, "traj", "%T/traj.h5");
  put_pairs(&s, c->with, "traj");
  if (c->other) put(&s, opt->name, c->other);  /* else the base's value or the default */
  put(&s, "resume", "true");
  int rc = run_cli(&s, err, sizeof err);
  /* named by its key, or by the total steps it changes (checked first) */
  int named = opt->ident ? strstr(err, opt->ident) || strstr(err, "total steps") : 1;
  if (rc != AF_EXIT_RUNTIME || !strstr(err, "checkpoint is from another run") || !named) {
    af_test_failures++;
    fprintf(stderr, "resume without %s = %s (ident %s): exit %d, '%s'\n", opt->name, v, opt->ident ? opt->ident : "-",
            rc, err);
  }
}

/* docs/lua-api.md holds the table af_opts_markdown prints (so the docs list every key) */
static void docs_table(void) {
  char path[4400], *table = NULL, *doc = NULL;
  size_t tn = 0, dn = 0;
  FILE *m = open_memstream(&table, &tn);
  af_opts_markdown(m);
  fclose(m);
  snprintf(path, sizeof path, "%s/docs/lua-api.md", af_test_source_dir());
  FILE *f = fopen(path, "r");
  if (f) {
    FILE *d = open_memstream(&doc, &dn);
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, k, d);
    fclose(d);
    fclose(f);
  }
  if (!doc || !strstr(doc, table)) {
    af_test_failures++;
    fprintf(stderr, "%s does not hold the options table as the code has it; it should be:\n%s", path, table);
  }
  free(table);
  free(doc);
}

/* a period (checkpoint_every): the forms it reads, how each reads back, what it refuses */
static void period_values(void) {
  static const struct { const char *in, *out; int kind; double every; } ok[] = {
      {"500", "500", AF_PERIOD_STEPS, 500}, {"1", "1", AF_PERIOD_STEPS, 1},
      {"10m", "10m", AF_PERIOD_SECONDS, 600}, {"600s", "10m", AF_PERIOD_SECONDS, 600},
      {"90s", "90s", AF_PERIOD_SECONDS, 90}, {"1.5h", "90m", AF_PERIOD_SECONDS, 5400},
      {"2h", "2h", AF_PERIOD_SECONDS, 7200}, {"0.5s", "0.5s", AF_PERIOD_SECONDS, 0.5},
      {"intervals", "intervals", AF_PERIOD_INTERVALS, 0}};
  static const char *const refused[] = {"0", "-5", "5x", "m", "1.5", "", "10 m", "0s", "-1m", "inf", "1e3", "Intervals"};
  const af_opt *opt = af_opt_find("checkpoint_every");
  CHECK(opt && opt->kind == AF_OPT_PERIOD);
  if (!opt) return;
  af_train_opts o;
  af_train_opts_default(&o);
  CHECK(o.checkpoint_every.kind == AF_PERIOD_SECONDS && o.checkpoint_every.every == 600);  /* the default, 10m */
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    char back[64];
    CHECK_OK(af_opt_set(opt, &o, ok[i].in));
    af_opt_get(opt, &o, back, sizeof back);
    if (o.checkpoint_every.kind != ok[i].kind || o.checkpoint_every.every != ok[i].every || strcmp(back, ok[i].out)) {
      af_test_failures++;
      fprintf(stderr, "checkpoint_every '%s': kind %d, every %g, reads back '%s'; expected %d, %g, '%s'\n", ok[i].in,
              o.checkpoint_every.kind, o.checkpoint_every.every, back, ok[i].kind, ok[i].every, ok[i].out);
    }
  }
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    char want[128];
    snprintf(want, sizeof want, "expects a period like 500 (steps), 10m or intervals, got '%s'", refused[i]);
    if (af_opt_set(opt, &o, refused[i]) != AF_ERR_ARG || strcmp(af_last_error(), want)) {
      af_test_failures++;
      fprintf(stderr, "checkpoint_every '%s' is not refused as expected: %s\n", refused[i], af_last_error());
    }
  }
}

int main(void) {
  g_tmp = af_test_tmpdir();
  if (af_test_tiny_setup(g_model, g_data, sizeof g_model) != 0) return 1;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "autofreeze", luaopen_autofreeze, 0);
  lua_pop(L, 1);
  af_lua_set_path(L);

  int covered = 0, traj = 0;
  for (int i = 0; i < af_opts_count; i++) {
    const af_opt *opt = &af_opts[i];
    af_train_opts o;
    af_train_opts_default(&o);
    if (opt->def && af_opt_set(opt, &o, opt->def) != AF_OK) {
      af_test_failures++;
      fprintf(stderr, "%s: the table's default '%s' is refused: %s\n", opt->name, opt->def, af_last_error());
    }
    const opt_case *c = NULL;
    for (int k = 0; k < NCASES && !c; k++)
      if (!strcmp(cases[k].name, opt->name)) c = &cases[k];
    if (!c) {
      af_test_failures++;
      fprintf(stderr, "option %s has no case in test_options.c\n", opt->name);
      continue;
    }
    covered++;
    set_and_read(L, opt, c);
    bad_value(L, opt, c);
    if (opt->flags & AF_OPT_TRAJECTORY) {
      refused_on_resume(opt, c);
      traj++;
    }
  }
  /* a word in an integer row: /config holds what it resolved to (10% of the fixture's rows) */
  const opt_case val_auto = {"val_rows", "auto", "6", "policy=none", NULL, "-1"};
  set_and_read(L, af_opt_find("val_rows"), &val_auto);
  bad_value(L, af_opt_find("val_rows"), &val_auto);
  docs_table();
  period_values();
  more_bad_values(L);
  CHECK(covered == NCASES);  /* and no case for an option that is gone */
  printf("%d options set from the CLI and Lua and read back, %d refused on a mismatched resume\n", covered, traj);
  lua_close(L);
  return af_test_done("test_options");
}
