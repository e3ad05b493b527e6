/* The `autofreeze` Lua module: af.model, af.task, af.plot, the small helpers (af.bin,
 * af.settings, af.isnan, af.mkdir, ...), and the loader for the pure-Lua parts (af.sweep,
 * af.report in lua/autofreeze/). Policies, training and results reading live in
 * bind_policy.c, bind_train.c and bind_results.c. Reference: docs/lua-api.md. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/base/claim.h"
#include "core/base/fsutil.h"
#include "core/base/timing.h"
#include "core/model/checkpoint.h"
#include "core/model/config.h"
#include "core/run/dist.h"
#include "core/data/task.h"
#include "lua/af_lua.h"
#include "plots/plot.h"

/* Paths are composed into PATH_MAX-sized buffers; an over-long one is cut and then fails to
 * be found, so GCC's truncation warnings are noise here. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#ifndef AF_VERSION
#define AF_VERSION "unknown"
#endif
#ifndef AF_SOURCE_DIR
#define AF_SOURCE_DIR "."
#endif

/* ---- the module path ---- */

void af_lua_set_path(lua_State *L) {
  lua_getglobal(L, "package");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  int pkg = lua_gettop(L), parts = 0;
  const char *env = getenv("AF_LUA_PATH");
  if (env && *env) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", env);
    for (char *save = NULL, *d = strtok_r(tmp, ";", &save); d; d = strtok_r(NULL, ";", &save)) {
      if (strchr(d, '?')) lua_pushfstring(L, "%s;", d);  /* already a template */
      else lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", d, d);
      parts++;
    }
  }
  char dirs[3][PATH_MAX + 32];
  int nd = 0;
  snprintf(dirs[nd++], sizeof dirs[0], "%s/lua", AF_SOURCE_DIR);
  char e[PATH_MAX];
  af_exe_dir(e, sizeof e);
  if (*e) {
    snprintf(dirs[nd++], sizeof dirs[0], "%s/../lua", e);
    snprintf(dirs[nd++], sizeof dirs[0], "%s/../share/autofreeze/lua", e);
  }
  for (int i = 0; i < nd; i++) {
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof probe, "%s/autofreeze", dirs[i]);
    if (!af_is_dir(probe)) continue;
    lua_pushfstring(L, "%s/?.lua;", dirs[i]);
    parts++;
  }
  lua_getfield(L, pkg, "path");
  if (!lua_isstring(L, -1)) {
    lua_pop(L, 1);
    lua_pushliteral(L, "");
  }
  lua_concat(L, parts + 1);
  lua_setfield(L, pkg, "path");
  lua_pop(L, 1);
}

/* ---- af.model ---- */

static int model_tostring(lua_State *L) {
  lua_getfield(L, 1, "path");
  lua_getfield(L, 1, "layers");
  lua_getfield(L, 1, "hidden");
  lua_getfield(L, 1, "heads");
  lua_pushfstring(L, "model %s (%d layers, hidden %d, %d heads)", lua_tostring(L, -4), (int)lua_tointeger(L, -3),
                  (int)lua_tointeger(L, -2), (int)lua_tointeger(L, -1));
  return 1;
}

static int model_load(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  if (af_model_dir_check(dir) != AF_OK) return af_lua_core_error(L, "af.model.load");
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/config.json", dir);
  af_config cfg;
  if (af_config_load(path, &cfg) != AF_OK || af_config_check(&cfg, path) != AF_OK)
    return af_lua_core_error(L, "af.model.load");
  lua_createtable(L, 0, 12);
  af_lua_set_str(L, "path", dir);
  af_lua_set_int(L, "layers", cfg.num_hidden_layers);
  af_lua_set_int(L, "hidden", cfg.hidden_size);
  af_lua_set_int(L, "heads", cfg.num_attention_heads);
  af_lua_set_int(L, "intermediate", cfg.intermediate_size);
  af_lua_set_int(L, "vocab", cfg.vocab_size);
  af_lua_set_int(L, "max_position", cfg.max_position_embeddings);
  af_lua_set_int(L, "type_vocab", cfg.type_vocab_size);
  af_lua_set_int(L, "num_labels", cfg.num_labels);
  af_lua_set_str(L, "model_type", cfg.model_type);
  af_lua_set_str(L, "hidden_act", cfg.hidden_act == AF_GELU_TANH ? "gelu_tanh" : "gelu");
  luaL_setmetatable(L, AF_LUA_MODEL_MT);
  return 1;
}

/* ---- af.task ---- */

static int task_tostring(lua_State *L) {
  lua_getfield(L, 1, "name");
  lua_getfield(L, 1, "dir");
  lua_getfield(L, 1, "num_labels");
  lua_getfield(L, 1, "metric");
  lua_pushfstring(L, "task %s (%s, %d labels, metric %s)", lua_tostring(L, -4), lua_tostring(L, -3),
                  (int)lua_tointeger(L, -2), lua_tostring(L, -1));
  return 1;
}

/* A column option: a header name, or a 1-based number stored back as its string (so it stays
 * alive in the options table). */
static const char *col_opt(lua_State *L, int t, const char *key, const char *what) {
  if (lua_getfield(L, t, key) == LUA_TNUMBER) {
    lua_pushstring(L, lua_tostring(L, -1));
    lua_setfield(L, t, key);
  }
  lua_pop(L, 1);
  return af_lua_get_str(L, t, key, what);
}

/* {"neg", "pos"} -> "neg,pos", stored back in the options table. */
static const char *labels_opt(lua_State *L, int t, const char *what) {
  if (lua_getfield(L, t, "labels") == LUA_TTABLE) {
    luaL_Buffer b;
    int lt = lua_gettop(L);
    luaL_buffinit(L, &b);
    for (lua_Integer i = 1; lua_rawgeti(L, lt, i) != LUA_TNIL; i++) {
      if (i > 1) luaL_addchar(&b, ',');
      luaL_addvalue(&b);
    }
    lua_pop(L, 1);
    luaL_pushresult(&b);
    lua_setfield(L, t, "labels");
  }
  lua_pop(L, 1);
  return af_lua_get_str(L, t, "labels", what);
}

/* Open the task to validate it and describe it as a table: {kind, name, dir, num_labels,
 * labels, metric, metrics, pair, eval_splits, skip_bad_rows, options}. kind is the task's
 * family in the registry (core/data/task.h). The options table at index opt holds
 * skip_bad_rows and, for generic, the column options. */
static int task_make(lua_State *L, const char *what, const char *name, const char *dir, int opt) {
  const af_task_info *ti = af_task_lookup(name);  /* NULL: af_task_open names the known tasks */
  const char *kind = ti ? ti->family : "";
  int is_generic = !strcmp(kind, "generic");
  af_task_opts to;
  af_task_opts_default(&to);
  static const char *const plain[] = {"skip_bad_rows", NULL};
  static const char *const generic[] = {"skip_bad_rows", "dir", "format", "header", "text_cols", "label_col",
                                        "labels", "regression", NULL};
  af_lua_check_keys(L, opt, what, is_generic ? generic : plain);
  af_lua_get_bool(L, opt, "skip_bad_rows", what, &to.skip_bad_rows);
  if (is_generic) {
    to.format = af_lua_get_str(L, opt, "format", what);
    af_lua_get_bool(L, opt, "header", what, &to.header);
    to.text_cols = col_opt(L, opt, "text_cols", what);
    to.label_col = col_opt(L, opt, "label_col", what);
    af_lua_get_bool(L, opt, "regression", what, &to.regression);
    to.labels = labels_opt(L, opt, what);
  }
  if (!af_is_dir(dir)) {
    if (!strcmp(kind, "default"))
      return luaL_error(L, "%s: data folder '%s' not found; build it with: autofreeze data build-default --out %s",
                        what, dir, dir);
    return luaL_error(L, "%s: data folder '%s' not found", what, dir);
  }
  af_task *t = NULL;
  if (af_task_open(name, dir, &to, &t) != AF_OK) return af_lua_core_error(L, what);
  lua_createtable(L, 0, 12);
  af_lua_set_str(L, "kind", kind);
  af_lua_set_str(L, "name", af_task_name(t));
  af_lua_set_str(L, "dir", dir);
  int K = af_task_num_labels(t);
  af_lua_set_int(L, "num_labels", K);
  lua_createtable(L, K, 0);
  for (int k = 0; k < K; k++) {
    const char *ln = af_task_label_name(t, k);
    if (!ln) break;
    lua_pushstring(L, ln);
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "labels");
  const af_metric_set *ms = af_task_metrics(t);
  af_lua_set_str(L, "metric", af_metric_name(ms->primary));
  lua_createtable(L, ms->n, 0);
  for (int i = 0; i < ms->n; i++) {
    lua_pushstring(L, af_metric_name(ms->list[i]));
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "metrics");
  af_lua_set_bool(L, "pair", af_task_is_pair(t));
  lua_createtable(L, 2, 0);
  for (int i = 0; i < af_task_num_eval_splits(t); i++) {
    lua_pushstring(L, af_task_eval_split(t, i));
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "eval_splits");
  af_lua_set_bool(L, "skip_bad_rows", to.skip_bad_rows);
  if (is_generic) {
    lua_pushvalue(L, opt);
    lua_setfield(L, -2, "options");
  }
  af_task_free(t);
  luaL_setmetatable(L, AF_LUA_TASK_MT);
  return 1;
}

/* af.task.glue, af.task.docs and af.task.open take the same names as `--task` (the registry);
 * glue and docs are the documented spellings for their families. */
static int task_named(lua_State *L, const char *what) {
  const char *name = luaL_checkstring(L, 1), *dir = luaL_checkstring(L, 2);
  return task_make(L, what, name, dir, af_lua_opt_table(L, 3));
}
static int task_glue(lua_State *L) { return task_named(L, "af.task.glue"); }
static int task_docs(lua_State *L) { return task_named(L, "af.task.docs"); }
static int task_open(lua_State *L) { return task_named(L, "af.task.open"); }
static int task_generic(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *dir = af_lua_get_str(L, 1, "dir", "af.task.generic");
  if (!dir) return luaL_error(L, "af.task.generic: expected dir = the folder with train.tsv/dev.tsv (or .csv)");
  return task_make(L, "af.task.generic", "generic", dir, 1);
}
static int task_default(lua_State *L) {
  const char *dir = luaL_optstring(L, 1, "data/default");
  return task_make(L, "af.task.default", "default", dir, af_lua_opt_table(L, 2));
}

/* ---- af.plot ---- */

static int plot(lua_State *L) {
  const char *outdir = luaL_checkstring(L, 2);
  int quiet = 0;
  if (lua_istable(L, 3)) af_lua_get_bool(L, 3, "quiet", "af.plot", &quiet);
  int n = 0;
  const char **files = NULL;
  if (lua_type(L, 1) == LUA_TSTRING) {
    files = lua_newuserdatauv(L, sizeof *files, 0);
    files[n++] = lua_tostring(L, 1);
  } else {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer len = luaL_len(L, 1);
    files = lua_newuserdatauv(L, (size_t)(len > 0 ? len : 1) * sizeof *files, 0);  /* freed by Lua */
    lua_newtable(L);  /* keeps strings alive */
    int keep = lua_gettop(L);
    for (lua_Integer i = 1; i <= len; i++) {
      int ty = lua_rawgeti(L, 1, i);
      if (ty == LUA_TTABLE) {  /* a run summary: its results file */
        lua_getfield(L, -1, "out");
        lua_remove(L, -2);
      }
      if (lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "af.plot: files[%d] must be a path or a summary with .out, found a %s", (int)i,
                          luaL_typename(L, -1));
      files[n++] = lua_tostring(L, -1);
      lua_rawseti(L, keep, i);
    }
  }
  if (n == 0) return luaL_error(L, "af.plot: expected at least one results file");
  if (af_plot_files(files, n, outdir, quiet) != AF_OK) return af_lua_core_error(L, "af.plot");
  lua_pushstring(L, outdir);
  return 1;
}

/* A list of strings at idx as a C array that lives in a userdata anchored at anchor[slot]. */
static const char *const *plot_strs(lua_State *L, int idx, int anchor, int slot, int *n) {
  *n = (int)luaL_len(L, idx);
  const char **a = lua_newuserdatauv(L, (size_t)(*n > 0 ? *n : 1) * sizeof *a, 0);
  lua_rawseti(L, anchor, slot);
  for (int k = 0; k < *n; k++) {
    if (lua_rawgeti(L, idx, k + 1) != LUA_TSTRING) {
      luaL_error(L, "af.plot_script: a list in vars must hold strings (item %d is a %s)", k + 1, luaL_typename(L, -1));
      return NULL;
    }
    a[k] = lua_tostring(L, -1);  /* alive in the list */
    lua_pop(L, 1);
  }
  return a;
}

/* af.plot_script(outdir, stem, script, vars [, opts]): one figure from a data file the
 * script wrote, drawn by plots/SCRIPT with vars = {name = string, number or list of strings}
 * (plots/plot.h). */
static int plot_script(lua_State *L) {
  const char *outdir = luaL_checkstring(L, 1), *stem = luaL_checkstring(L, 2), *script = luaL_checkstring(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  int quiet = 0;
  if (lua_istable(L, 5)) af_lua_get_bool(L, 5, "quiet", "af.plot_script", &quiet);
  int nvars = 0;
  for (lua_pushnil(L); lua_next(L, 4); lua_pop(L, 1)) nvars++;
  af_plot_var *vars = lua_newuserdatauv(L, (size_t)(nvars > 0 ? nvars : 1) * sizeof *vars, 0);  /* freed by Lua */
  lua_newtable(L);  /* keeps the arrays of lists alive */
  int anchor = lua_gettop(L), i = 0;
  for (lua_pushnil(L); lua_next(L, 4); lua_pop(L, 1)) {  /* the strings stay alive in the table */
    int kt = lua_type(L, -2), vt = lua_type(L, -1);
    if (kt != LUA_TSTRING || (vt != LUA_TSTRING && vt != LUA_TNUMBER && vt != LUA_TTABLE))
      return luaL_error(L, "af.plot_script: vars must map names to strings, numbers or lists of strings (found %s = %s)",
                        luaL_typename(L, -2), luaL_typename(L, -1));
    vars[i] = (af_plot_var){.name = lua_tostring(L, -2)};
    if (vt == LUA_TSTRING) vars[i].str = lua_tostring(L, -1);
    else if (vt == LUA_TNUMBER) vars[i].num = lua_tonumber(L, -1);
    else vars[i].strs = plot_strs(L, lua_gettop(L), anchor, i + 1, &vars[i].nstrs);
    i++;
  }
  if (af_plot_script(outdir, stem, script, vars, nvars, quiet) != AF_OK) return af_lua_core_error(L, "af.plot_script");
  lua_pushfstring(L, "%s/%s", outdir, stem);
  return 1;
}

/* ---- small helpers ---- */

static int l_isnan(lua_State *L) {
  lua_pushboolean(L, lua_type(L, 1) == LUA_TNUMBER && isnan(lua_tonumber(L, 1)));
  return 1;
}
static int l_mkdir(lua_State *L) {
  if (af_mkdirs(luaL_checkstring(L, 1)) != AF_OK) return af_lua_core_error(L, "af.mkdir");
  lua_pushvalue(L, 1);
  return 1;
}
static int l_exists(lua_State *L) {
  lua_pushboolean(L, af_path_exists(luaL_checkstring(L, 1)));
  return 1;
}
/* af.writer(path): "pid N on HOST since TIME" while a run writes the results file path, else nil */
static int l_writer(lua_State *L) {
  char who[512];
  if (af_claim_holder(luaL_checkstring(L, 1), who, sizeof who)) lua_pushstring(L, who[0] ? who : "a running process");
  else lua_pushnil(L);
  return 1;
}
/* af.broadcast(s): rank 0's string s on every rank of a data-parallel job (every rank calls
 * it, in the same order: a collective); without data parallelism, s itself. For decisions
 * rank 0 alone can take (whether a sweep's cell is another run's) that all ranks must follow. */
static int l_broadcast(lua_State *L) {
  size_t n = 0;
  const char *s = luaL_checklstring(L, 1, &n);
  if (af_dist_size() <= 1) {
    lua_pushvalue(L, 1);
    return 1;
  }
  unsigned long long len = n;
  if (af_dist_bcast(&len, sizeof len, 0) != AF_OK) return af_lua_core_error(L, "af.broadcast");
  char *buf = malloc(len ? (size_t)len : 1);
  if (!buf) return luaL_error(L, "af.broadcast: no memory for %llu bytes", len);
  if (af_dist_rank() == 0) memcpy(buf, s, (size_t)len);
  if (af_dist_bcast(buf, (size_t)len, 0) != AF_OK) {
    free(buf);
    return af_lua_core_error(L, "af.broadcast");
  }
  lua_pushlstring(L, buf, (size_t)len);
  free(buf);
  return 1;
}
static int l_clock(lua_State *L) {
  lua_pushnumber(L, af_now());
  return 1;
}
static int l_set_quiet(lua_State *L) {
  af_set_quiet(lua_toboolean(L, 1));
  return 0;
}

/* af.sweep{...} and af.report.*: pure Lua, loaded on first use from lua/autofreeze/. */
static int lazy_sweep(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushstring(L, "autofreeze.sweep");
  lua_call(L, 1, 1);
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}
static int module_index(lua_State *L) {  /* af.report -> require "autofreeze.report" */
  const char *k = lua_tostring(L, 2);
  if (k && !strcmp(k, "report")) {
    lua_getglobal(L, "require");
    lua_pushstring(L, "autofreeze.report");
    lua_call(L, 1, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, "report");
    return 1;
  }
  return 0;
}

int luaopen_autofreeze(lua_State *L) {
  af_lua_set_path(L);  /* lua/autofreeze/NAME.lua for af.sweep and af.report */
  /* metatables of the descriptor tables */
  if (luaL_newmetatable(L, AF_LUA_MODEL_MT)) {
    lua_pushcfunction(L, model_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, AF_LUA_TASK_MT)) {
    lua_pushcfunction(L, task_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);

  lua_newtable(L);
  af_lua_set_str(L, "version", AF_VERSION);
  af_lua_push_bin(L);
  lua_setfield(L, -2, "bin");
  af_lua_set_str(L, "source_dir", AF_SOURCE_DIR);
  if (lua_getfield(L, LUA_REGISTRYINDEX, AF_LUA_SETTINGS) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
  }
  lua_setfield(L, -2, "settings");
  af_lua_set_num(L, "nan", NAN);
  /* data parallelism: this process is one of several ranks (mpirun/srun; docs/distributed.md),
   * and af.train splits each batch over them; rank 0 writes the files */
  const int dp = af_dist_init() == AF_OK && af_dist_size() > 1;
  lua_pushboolean(L, dp);
  lua_setfield(L, -2, "data_parallel");
  lua_pushinteger(L, af_dist_rank());
  lua_setfield(L, -2, "rank");
  lua_pushinteger(L, af_dist_size());
  lua_setfield(L, -2, "ranks");

  static const luaL_Reg model[] = {{"load", model_load}, {NULL, NULL}};
  luaL_newlib(L, model);
  lua_setfield(L, -2, "model");
  static const luaL_Reg task[] = {{"glue", task_glue},     {"docs", task_docs}, {"generic", task_generic},
                                  {"default", task_default}, {"open", task_open}, {NULL, NULL}};
  luaL_newlib(L, task);
  lua_setfield(L, -2, "task");
  static const luaL_Reg fns[] = {{"plot", plot},           {"plot_script", plot_script}, {"isnan", l_isnan},
                                 {"mkdir", l_mkdir},       {"exists", l_exists},         {"writer", l_writer},         {"clock", l_clock},
                                 {"broadcast", l_broadcast},
                                 {"sweep", lazy_sweep},    {"set_quiet", l_set_quiet},   {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  af_lua_open_policy(L);
  af_lua_open_train(L);
  af_lua_open_results(L);

  lua_newtable(L);  /* metatable of the module: lazy af.report */
  lua_pushcfunction(L, module_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  return 1;
}
