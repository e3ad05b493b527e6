/* The `autofreeze` Lua module: af.model, af.task, af.plot, the small helpers (af.bin,
 * af.settings, af.isnan, af.mkdir, ...), and the loader for the pure-Lua parts (af.sweep,
 * af.report in lua/autofreeze/). Policies, training and results reading live in
 * bind_policy.c, bind_train.c and bind_results.c. Reference: docs/lua-api.md. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "core/base/timing.h"
#include "core/model/checkpoint.h"
#include "core/model/config.h"
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

/* ---- shared helpers ---- */

int af_lua_core_error(lua_State *L, const char *what) {
  const char *e = af_last_error();
  return luaL_error(L, "%s: %s", what, e && *e ? e : "failed (no message)");
}

int af_lua_traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

const char *af_lua_exe_path(void) {
  static char path[PATH_MAX];
  static int done;
  if (!done) {
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    path[n > 0 ? n : 0] = 0;
    done = 1;
  }
  return path;
}

af_status af_lua_mkdirs(const char *dir) {
  char buf[PATH_MAX];
  size_t n = strlen(dir);
  if (n == 0) return AF_OK;
  if (n >= sizeof buf) return AF_FAIL(AF_ERR_IO, "folder name too long: %s", dir);
  memcpy(buf, dir, n + 1);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == 0) {
      char c = *p;
      *p = 0;
      struct stat st;
      if (stat(buf, &st) != 0) {
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
          return AF_FAIL(AF_ERR_IO, "cannot create folder %s: %s", buf, strerror(errno));
      } else if (!S_ISDIR(st.st_mode)) {
        return AF_FAIL(AF_ERR_IO, "cannot create folder %s: a file of that name exists", buf);
      }
      *p = c;
      if (!c) break;
    }
  }
  return AF_OK;
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

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
  const char *exe = af_lua_exe_path();
  if (*exe) {
    char e[PATH_MAX];
    snprintf(e, sizeof e, "%s", exe);
    char *slash = strrchr(e, '/');
    if (slash) *slash = 0;
    snprintf(dirs[nd++], sizeof dirs[0], "%s/../lua", e);
    snprintf(dirs[nd++], sizeof dirs[0], "%s/../share/autofreeze/lua", e);
  }
  for (int i = 0; i < nd; i++) {
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof probe, "%s/autofreeze", dirs[i]);
    if (!is_dir(probe)) continue;
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

/* Reject keys of an options table that are not in the list (NULL-terminated). */
static void check_keys(lua_State *L, int idx, const char *what, const char *const *known) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: option keys must be strings, found a %s", what, luaL_typename(L, -1));
    const char *k = lua_tostring(L, -1);
    int ok = 0;
    for (int i = 0; known[i]; i++) ok |= !strcmp(k, known[i]);
    if (!ok) {
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (int i = 0; known[i]; i++) {
        if (i) luaL_addstring(&b, ", ");
        luaL_addstring(&b, known[i]);
      }
      luaL_pushresult(&b);
      luaL_error(L, "%s: unknown option '%s' (known: %s)", what, k, lua_tostring(L, -1));
    }
  }
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

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}
static void set_num(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}
static void set_str(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
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
  set_str(L, "path", dir);
  set_int(L, "layers", cfg.num_hidden_layers);
  set_int(L, "hidden", cfg.hidden_size);
  set_int(L, "heads", cfg.num_attention_heads);
  set_int(L, "intermediate", cfg.intermediate_size);
  set_int(L, "vocab", cfg.vocab_size);
  set_int(L, "max_position", cfg.max_position_embeddings);
  set_int(L, "type_vocab", cfg.type_vocab_size);
  set_int(L, "num_labels", cfg.num_labels);
  set_str(L, "model_type", cfg.model_type);
  set_str(L, "hidden_act", cfg.hidden_act == AF_GELU_TANH ? "gelu_tanh" : "gelu");
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

static const char *opt_string(lua_State *L, int t, const char *key, const char *what) {
  int ty = lua_getfield(L, t, key);
  const char *s = NULL;
  if (ty == LUA_TSTRING) s = lua_tostring(L, -1);
  else if (ty == LUA_TNUMBER) s = lua_tostring(L, -1);
  else if (ty != LUA_TNIL) luaL_error(L, "%s: %s expects a string, found a %s", what, key, luaL_typename(L, -1));
  lua_pop(L, 1);  /* the string stays alive in the options table */
  return s;
}
static int opt_bool(lua_State *L, int t, const char *key, int dflt) {
  int ty = lua_getfield(L, t, key);
  int v = dflt;
  if (ty == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
  else if (ty != LUA_TNIL) {
    lua_pop(L, 1);
    return luaL_error(L, "%s expects true or false, found a %s", key, lua_typename(L, ty));
  }
  lua_pop(L, 1);
  return v;
}

/* Open the task to validate it and describe it as a table: {kind, name, dir, num_labels,
 * labels, metric, metrics, pair, eval_splits, skip_bad_rows, options}. The options table
 * at index opt (0: none) holds skip_bad_rows and, for generic, the column options. */
static int task_make(lua_State *L, const char *what, const char *kind, const char *name, const char *dir, int opt) {
  af_task_opts to;
  af_task_opts_default(&to);
  static const char *const plain[] = {"skip_bad_rows", NULL};
  static const char *const generic[] = {"skip_bad_rows", "dir", "format", "header", "text_cols", "label_col",
                                        "labels", "regression", NULL};
  int is_generic = !strcmp(kind, "generic");
  if (opt) {
    check_keys(L, opt, what, is_generic ? generic : plain);
    to.skip_bad_rows = opt_bool(L, opt, "skip_bad_rows", 0);
    if (is_generic) {
      to.format = opt_string(L, opt, "format", what);
      to.header = opt_bool(L, opt, "header", 1);
      to.text_cols = opt_string(L, opt, "text_cols", what);
      to.label_col = opt_string(L, opt, "label_col", what);
      to.regression = opt_bool(L, opt, "regression", 0);
      int ty = lua_getfield(L, opt, "labels");
      if (ty == LUA_TTABLE) {  /* {"neg", "pos"} -> "neg,pos" */
        luaL_Buffer b;
        int lt = lua_gettop(L);
        luaL_buffinit(L, &b);
        for (lua_Integer i = 1; lua_rawgeti(L, lt, i) != LUA_TNIL; i++) {
          if (i > 1) luaL_addchar(&b, ',');
          luaL_addvalue(&b);
        }
        lua_pop(L, 1);
        luaL_pushresult(&b);
        lua_setfield(L, opt, "labels");  /* keep it alive in the options table */
        lua_pop(L, 1);
        lua_getfield(L, opt, "labels");
      }
      if (!lua_isnil(L, -1)) to.labels = lua_tostring(L, -1);
      lua_pop(L, 1);
    }
  }
  if (!is_dir(dir)) {
    if (!strcmp(kind, "default"))
      return luaL_error(L, "%s: data folder '%s' not found; build it with: autofreeze data build-default --out %s",
                        what, dir, dir);
    return luaL_error(L, "%s: data folder '%s' not found", what, dir);
  }
  af_task *t = NULL;
  if (af_task_open(name, dir, &to, &t) != AF_OK) return af_lua_core_error(L, what);
  lua_createtable(L, 0, 12);
  set_str(L, "kind", kind);
  set_str(L, "name", af_task_name(t));
  set_str(L, "dir", dir);
  int K = af_task_num_labels(t);
  set_int(L, "num_labels", K);
  lua_createtable(L, K, 0);
  for (int k = 0; k < K; k++) {
    const char *ln = af_task_label_name(t, k);
    if (!ln) break;
    lua_pushstring(L, ln);
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "labels");
  const af_metric_set *ms = af_task_metrics(t);
  set_str(L, "metric", af_metric_name(ms->primary));
  lua_createtable(L, ms->n, 0);
  for (int i = 0; i < ms->n; i++) {
    lua_pushstring(L, af_metric_name(ms->list[i]));
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "metrics");
  lua_pushboolean(L, af_task_is_pair(t));
  lua_setfield(L, -2, "pair");
  lua_createtable(L, 2, 0);
  for (int i = 0; i < af_task_num_eval_splits(t); i++) {
    lua_pushstring(L, af_task_eval_split(t, i));
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "eval_splits");
  lua_pushboolean(L, to.skip_bad_rows);
  lua_setfield(L, -2, "skip_bad_rows");
  if (is_generic) {
    lua_pushvalue(L, opt);
    lua_setfield(L, -2, "options");
  }
  af_task_free(t);
  luaL_setmetatable(L, AF_LUA_TASK_MT);
  return 1;
}

static int task_glue(lua_State *L) {
  const char *name = luaL_checkstring(L, 1), *dir = luaL_checkstring(L, 2);
  int opt = lua_isnoneornil(L, 3) ? 0 : (luaL_checktype(L, 3, LUA_TTABLE), 3);
  return task_make(L, "af.task.glue", "glue", name, dir, opt);
}
static int task_docs(lua_State *L) {
  const char *name = luaL_checkstring(L, 1), *dir = luaL_checkstring(L, 2);
  int opt = lua_isnoneornil(L, 3) ? 0 : (luaL_checktype(L, 3, LUA_TTABLE), 3);
  return task_make(L, "af.task.docs", "docs", name, dir, opt);
}
static int task_open(lua_State *L) {
  const char *name = luaL_checkstring(L, 1), *dir = luaL_checkstring(L, 2);
  int opt = lua_isnoneornil(L, 3) ? 0 : (luaL_checktype(L, 3, LUA_TTABLE), 3);
  char c[32];
  size_t j = 0;
  for (const char *p = name; *p && j + 1 < sizeof c; p++)
    if (*p != '-' && *p != '_') c[j++] = (char)(*p | 0x20);
  c[j] = 0;
  const char *kind = !strcmp(c, "generic") ? "generic" : !strcmp(c, "default") ? "default"
                     : (!strcmp(c, "agnews") || !strncmp(c, "yelp", 4) || !strcmp(c, "imdb")) ? "docs" : "glue";
  return task_make(L, "af.task.open", kind, name, dir, opt);
}
static int task_generic(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "dir");
  const char *dir = lua_tostring(L, -1);
  if (!dir) return luaL_error(L, "af.task.generic: expected dir = the folder with train.tsv/dev.tsv (or .csv)");
  lua_pop(L, 1);
  return task_make(L, "af.task.generic", "generic", "generic", dir, 1);
}
static int task_default(lua_State *L) {
  const char *dir = luaL_optstring(L, 1, "data/default");
  int opt = lua_isnoneornil(L, 2) ? 0 : (luaL_checktype(L, 2, LUA_TTABLE), 2);
  return task_make(L, "af.task.default", "default", "default", dir, opt);
}

/* ---- af.plot ---- */

static int plot(lua_State *L) {
  const char *outdir = luaL_checkstring(L, 2);
  int quiet = 0;
  if (lua_istable(L, 3)) quiet = opt_bool(L, 3, "quiet", 0);
  int n = 0;
  const char **files = NULL;
  if (lua_type(L, 1) == LUA_TSTRING) {
    files = lua_newuserdatauv(L, sizeof *files, 0);
    files[n++] = lua_tostring(L, 1);
  } else {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer len = luaL_len(L, 1);
    files = lua_newuserdatauv(L, (size_t)(len > 0 ? len : 1) * sizeof *files, 0);
    int ud = lua_gettop(L);
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
    (void)ud;
  }
  if (n == 0) return luaL_error(L, "af.plot: expected at least one results file");
  if (af_plot_files(files, n, outdir, quiet) != AF_OK) return af_lua_core_error(L, "af.plot");
  lua_pushstring(L, outdir);
  return 1;
}

/* ---- small helpers ---- */

static int l_isnan(lua_State *L) {
  lua_pushboolean(L, lua_type(L, 1) == LUA_TNUMBER && isnan(lua_tonumber(L, 1)));
  return 1;
}
static int l_mkdir(lua_State *L) {
  if (af_lua_mkdirs(luaL_checkstring(L, 1)) != AF_OK) return af_lua_core_error(L, "af.mkdir");
  lua_pushvalue(L, 1);
  return 1;
}
static int l_exists(lua_State *L) {
  struct stat st;
  lua_pushboolean(L, stat(luaL_checkstring(L, 1), &st) == 0);
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
  set_str(L, "version", AF_VERSION);
  set_str(L, "bin", af_lua_exe_path()[0] ? af_lua_exe_path() : "autofreeze");
  set_str(L, "source_dir", AF_SOURCE_DIR);
  if (lua_getfield(L, LUA_REGISTRYINDEX, AF_LUA_SETTINGS) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
  }
  lua_setfield(L, -2, "settings");
  set_num(L, "nan", NAN);

  static const luaL_Reg model[] = {{"load", model_load}, {NULL, NULL}};
  luaL_newlib(L, model);
  lua_setfield(L, -2, "model");
  static const luaL_Reg task[] = {{"glue", task_glue},     {"docs", task_docs}, {"generic", task_generic},
                                  {"default", task_default}, {"open", task_open}, {NULL, NULL}};
  luaL_newlib(L, task);
  lua_setfield(L, -2, "task");
  static const luaL_Reg fns[] = {{"plot", plot},           {"isnan", l_isnan}, {"mkdir", l_mkdir},
                                 {"exists", l_exists},     {"clock", l_clock}, {"sweep", lazy_sweep},
                                 {"set_quiet", l_set_quiet}, {NULL, NULL}};
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
