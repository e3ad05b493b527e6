/* af.results.*: read a results file (core/results/results_read.h) into plain Lua tables, and the
 * cheap look-ups a sweep needs to resume (status, summary) without reading the step logs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/base/fsutil.h"
#include "core/results/results_read.h"
#include "lua/af_lua.h"

/* The attributes of one group as a table (strings, integers, numbers). */
static af_status push_attrs(lua_State *L, af_results_reader *rr, const char *group) {
  af_attr *a = NULL;
  int n = 0;
  lua_newtable(L);
  if (!af_results_has(rr, group) && group[0]) return AF_OK;
  AF_TRY(af_results_read_attrs(rr, group, &a, &n));
  for (int i = 0; i < n; i++) {
    switch (a[i].type) {
    case AF_ATTR_STR: lua_pushstring(L, a[i].s ? a[i].s : ""); break;
    case AF_ATTR_INT: lua_pushinteger(L, (lua_Integer)a[i].i); break;
    case AF_ATTR_DOUBLE: lua_pushnumber(L, a[i].d); break;
    default: continue;
    }
    lua_setfield(L, -2, a[i].key);
  }
  af_results_free_attrs(a, n);
  return AF_OK;
}

static int is_int_column(const char *name) {
  static const char *const ints[] = {"step", "epoch", "frozen_depth", "examples", "interval", "depth_before",
                                     "depth_after", NULL};
  for (int i = 0; ints[i]; i++)
    if (!strcmp(name, ints[i])) return 1;
  return 0;
}

/* Every 1-D dataset of a group as {name = {...}}; 2-D ones (intervals/l1, l2, ratio,
 * lr_factor) as arrays of rows. */
static af_status push_group(lua_State *L, af_results_reader *rr, const char *group) {
  lua_newtable(L);
  if (!af_results_has(rr, group)) return AF_OK;
  char **names = NULL;
  int n = 0;
  AF_TRY(af_results_list(rr, group, &names, &n));
  af_status s = AF_OK;
  for (int i = 0; i < n && s == AF_OK; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", group, names[i]);
    double *v = NULL;
    size_t rows = 0, cols = 0;
    if (af_results_rank(rr, path) == 2) {
      s = af_results_read_2d(rr, path, &v, &rows, &cols);
      if (s != AF_OK) break;
      lua_createtable(L, (int)rows, 0);
      for (size_t r = 0; r < rows; r++) {
        af_lua_push_array(L, v + r * cols, cols, 0);
        lua_rawseti(L, -2, (lua_Integer)r + 1);
      }
    } else {
      s = af_results_read_1d(rr, path, &v, &rows);
      if (s != AF_OK) break;
      af_lua_push_array(L, v, rows, is_int_column(names[i]));
    }
    free(v);
    lua_setfield(L, -2, names[i]);
  }
  af_results_free_names(names, n);
  return s;
}

static int l_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  af_results_reader *rr = NULL;
  if (af_results_open_read(path, &rr) != AF_OK) return af_lua_core_error(L, "af.results.read");
  lua_createtable(L, 0, 9);
  af_lua_set_str(L, "path", path);
  af_lua_set_int(L, "layers", af_results_layers(rr));
  af_lua_set_int(L, "format_version", af_results_format_version(rr));
  static const char *const attr_groups[] = {"config", "summary", "cache"};
  static const char *const data_groups[] = {"steps", "intervals", "evals"};
  af_status s = AF_OK;
  for (int i = 0; i < 3 && s == AF_OK; i++) {
    s = push_attrs(L, rr, attr_groups[i]);
    if (s == AF_OK) lua_setfield(L, -2, attr_groups[i]);
  }
  for (int i = 0; i < 3 && s == AF_OK; i++) {
    s = push_group(L, rr, data_groups[i]);
    if (s == AF_OK) lua_setfield(L, -2, data_groups[i]);
  }
  af_results_close_read(&rr);
  if (s != AF_OK) {
    af_error_prefix("%s: ", path);
    return af_lua_core_error(L, "af.results.read");
  }
  return 1;
}

/* /summary@status, or nil + reason when the file is missing or unreadable. */
static int l_status(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (!af_path_exists(path)) {
    lua_pushnil(L);
    lua_pushliteral(L, "missing");
    return 2;
  }
  af_results_reader *rr = NULL;
  if (af_results_open_read(path, &rr) != AF_OK) {
    lua_pushnil(L);
    lua_pushstring(L, af_last_error());
    return 2;
  }
  af_attr *a = NULL;
  int n = 0;
  if (af_results_read_attrs(rr, "summary", &a, &n) != AF_OK) {
    af_results_close_read(&rr);
    lua_pushnil(L);
    lua_pushstring(L, af_last_error());
    return 2;
  }
  const af_attr *s = af_results_find_attr(a, n, "status");
  if (s && s->type == AF_ATTR_STR) lua_pushstring(L, s->s);
  else lua_pushnil(L);
  af_results_free_attrs(a, n);
  af_results_close_read(&rr);
  if (lua_isnil(L, -1)) {
    lua_pushliteral(L, "no /summary status");
    return 2;
  }
  return 1;
}

/* The summary of a finished run in the shape af.train returns, from the file's /summary and
 * /config attributes only. */
static int l_summary(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  af_results_reader *rr = NULL;
  if (af_results_open_read(path, &rr) != AF_OK) return af_lua_core_error(L, "af.results.summary");
  af_status s = push_attrs(L, rr, "summary");
  int sum = lua_gettop(L);
  if (s == AF_OK) s = push_attrs(L, rr, "config");
  if (s == AF_OK) s = push_attrs(L, rr, "cache");
  af_results_close_read(&rr);
  if (s != AF_OK) return af_lua_core_error(L, "af.results.summary");
  int cfg = sum + 1, cache = sum + 2;
  lua_createtable(L, 0, 20);
  int out = lua_gettop(L);
#define COPY(src, from, to)            \
  do {                                 \
    lua_getfield(L, src, from);        \
    lua_setfield(L, out, to);          \
  } while (0)
  COPY(sum, "status", "status");
  COPY(sum, "steps", "steps");
  COPY(sum, "final_depth", "final_depth");
  COPY(sum, "total_time", "total_time");
  COPY(sum, "train_time", "train_time");
  COPY(sum, "best_metric", "metric");
  COPY(sum, "best_value", "best");
  COPY(sum, "best_step", "best_step");
  COPY(sum, "time_to_best", "time_to_best");
  COPY(sum, "final_loss", "final_loss");
  COPY(sum, "wall_time", "wall_time");
  COPY(sum, "setup_time", "setup_time");
  COPY(sum, "step_time", "step_time");
  COPY(sum, "eval_time", "eval_time");
  COPY(sum, "checkpoint_time", "checkpoint_time");
  COPY(sum, "other_time", "other_time");
  COPY(cfg, "policy", "policy");
  COPY(cfg, "policy_knobs", "policy_knobs");
  COPY(cfg, "task", "task");
  COPY(cfg, "seed", "seed");
  COPY(cfg, "cache", "cache");
  COPY(cache, "hits", "cache_hits");
  COPY(cache, "misses", "cache_misses");
  COPY(cache, "bytes", "cache_bytes");
#undef COPY
  /* metrics = {name = final_<name>}; final = the primary one */
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, sum)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if (!strncmp(k, "final_", 6) && strcmp(k, "final_loss") && strcmp(k, "final_depth")) {
      lua_pushvalue(L, -1);
      lua_setfield(L, -4, k + 6);
    }
    lua_pop(L, 1);
  }
  lua_getfield(L, out, "metric");
  if (lua_isstring(L, -1)) {
    lua_gettable(L, -2);
    lua_setfield(L, out, "final");
  } else {
    lua_pop(L, 1);
  }
  lua_setfield(L, out, "metrics");
  lua_pushstring(L, path);
  lua_setfield(L, out, "out");
  return 1;
}

void af_lua_open_results(lua_State *L) {
  static const luaL_Reg fns[] = {{"read", l_read}, {"status", l_status}, {"summary", l_summary}, {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_setfield(L, -2, "results");
}
