/* af.train{...}: one run. Every field of af_train_opts (core/run/train.h) has a key here, with
 * the names of `autofreeze train`'s options (seq, cache_budget, ...); an unknown key is an
 * error naming it, so a typo never silently trains with a default. Returns the run's
 * summary as a table. docs/lua-api.md lists the keys with their defaults. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/run/train.h"
#include "lua/af_lua.h"

static const char *const keys[] = {
    "model", "task", "data", "out", "policy", "device", "threads", "epochs", "batch", "accum", "seq", "max_len",
    "bucket", "recipe", "lr", "weight_decay", "beta1", "beta2", "adam_eps", "bias_correction", "clip",
    "max_grad_norm", "schedule", "warmup", "seed", "eval_every", "max_steps", "max_train_rows", "max_eval_rows",
    "skip_bad_rows", "intervals", "interval_steps", "max_depth", "signed_ratio", "frozen_dropout", "cache", "cache_dtype",
    "cache_budget", "cache_dir", "cache_compress", "checkpoint_dir", "checkpoints", "resume", "progress", "quiet",
    NULL};

#define WHAT "af.train"

static void check_keys(lua_State *L, int t) {
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, WHAT ": option keys must be strings, found a %s key (a list entry?)", luaL_typename(L, -1));
    const char *k = lua_tostring(L, -1);
    int ok = 0;
    for (int i = 0; keys[i] && !ok; i++) ok = !strcmp(k, keys[i]);
    if (!ok) luaL_error(L, WHAT ": unknown option '%s' (see docs/lua-api.md for the keys of af.train)", k);
  }
}

/* Field readers: return 1 and set *v when present; errors name the key. */
static int get_int(lua_State *L, int t, const char *k, lua_Integer lo, lua_Integer hi, lua_Integer *v) {
  int ty = lua_getfield(L, t, k);
  if (ty == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  int isnum;
  lua_Integer x = lua_tointegerx(L, -1, &isnum);
  if (!isnum || x < lo || x > hi) {
    const char *shown = luaL_tolstring(L, -1, NULL);
    if (hi == LUA_MAXINTEGER) luaL_error(L, WHAT ": %s expects an integer >= %I, found %s", k, lo, shown);
    luaL_error(L, WHAT ": %s expects an integer in [%I, %I], found %s", k, lo, hi, shown);
  }
  lua_pop(L, 1);
  *v = x;
  return 1;
}
static int get_num(lua_State *L, int t, const char *k, double lo, double *v) {
  int ty = lua_getfield(L, t, k);
  if (ty == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  int isnum;
  double x = lua_tonumberx(L, -1, &isnum);
  if (!isnum || !(x >= lo) || isinf(x))
    luaL_error(L, WHAT ": %s expects a number >= %f, found %s", k, lo, luaL_tolstring(L, -1, NULL));
  lua_pop(L, 1);
  *v = x;
  return 1;
}
static int get_bool(lua_State *L, int t, const char *k, int *v) {
  int ty = lua_getfield(L, t, k);
  if (ty == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (ty != LUA_TBOOLEAN) luaL_error(L, WHAT ": %s expects true or false, found %s", k, luaL_tolstring(L, -1, NULL));
  *v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return 1;
}
/* The string stays alive: it belongs to the options table, which is on the stack. */
static const char *get_str(lua_State *L, int t, const char *k) {
  int ty = lua_getfield(L, t, k);
  const char *s = NULL;
  if (ty == LUA_TSTRING) s = lua_tostring(L, -1);
  else if (ty != LUA_TNIL) luaL_error(L, WHAT ": %s expects a string, found %s", k, luaL_tolstring(L, -1, NULL));
  lua_pop(L, 1);
  return s;
}
static int get_choice(lua_State *L, int t, const char *k, const char *const *choices, int *v) {
  const char *s = get_str(L, t, k);
  if (!s) return 0;
  for (int i = 0; choices[i]; i++)
    if (!strcmp(s, choices[i])) {
      *v = i;
      return 1;
    }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 0; choices[i]; i++) {
    if (i) luaL_addstring(&b, ", ");
    luaL_addstring(&b, choices[i]);
  }
  luaL_pushresult(&b);
  return luaL_error(L, WHAT ": %s expects one of %s, found '%s'", k, lua_tostring(L, -1), s);
}

/* "512M", "4G", "1048576" or a number of bytes. */
static size_t get_size(lua_State *L, int t, const char *k, size_t def) {
  int ty = lua_getfield(L, t, k);
  size_t out = def;
  if (ty == LUA_TNUMBER) {
    double x = lua_tonumber(L, -1);
    if (!(x >= 0)) luaL_error(L, WHAT ": %s expects a size in bytes >= 0", k);
    out = (size_t)x;
  } else if (ty == LUA_TSTRING) {
    const char *s = lua_tostring(L, -1);
    char *end;
    double x = strtod(s, &end);
    double mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024, end++;
    else if (*end == 'M' || *end == 'm') mul = 1024.0 * 1024, end++;
    else if (*end == 'G' || *end == 'g') mul = 1024.0 * 1024 * 1024, end++;
    if (*end == 'B' || *end == 'b') end++;
    if (end == s || *end || !(x >= 0)) luaL_error(L, WHAT ": %s expects a size like 512M or 4G, found '%s'", k, s);
    out = (size_t)(x * mul);
  } else if (ty != LUA_TNIL) {
    luaL_error(L, WHAT ": %s expects a size (bytes, or a string like \"512M\")", k);
  }
  lua_pop(L, 1);
  return out;
}

static void set_num(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}
static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}
static void set_str(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static void push_summary(lua_State *L, const af_train_summary *s, const af_train_opts *o, const char *policy,
                         const char *task) {
  lua_createtable(L, 0, 20);
  set_str(L, "status", s->status);
  set_int(L, "steps", s->steps);
  set_int(L, "final_depth", s->final_depth);
  set_num(L, "total_time", s->total_time);
  set_str(L, "metric", s->metric);
  set_num(L, "best", s->best);
  set_num(L, "final", s->final);
  set_int(L, "best_step", s->best_step);
  set_num(L, "time_to_best", s->time_to_best);
  set_num(L, "final_loss", s->final_loss);
  lua_newtable(L);
  for (int m = 0; m < AF_METRIC_COUNT; m++)
    if (s->final_metrics.have[m]) set_num(L, af_metric_name((af_metric)m), s->final_metrics.value[m]);
  lua_setfield(L, -2, "metrics");
  set_int(L, "cache_hits", s->cache_hits);
  set_int(L, "cache_misses", s->cache_misses);
  set_int(L, "cache_bytes", s->cache_bytes);
  set_str(L, "out", o->out);
  set_str(L, "policy", policy);
  set_str(L, "task", task);
  set_int(L, "seed", (lua_Integer)o->seed);
}

static int l_train(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  const int t = 1;
  check_keys(L, t);
  af_train_opts o;
  af_train_opts_default(&o);
  lua_Integer iv;
  double dv;
  int bv, cv;

  /* model: a path or af.model.load's table */
  int ty = lua_getfield(L, t, "model");
  if (ty == LUA_TTABLE) {
    lua_getfield(L, -1, "path");  /* alive while the options table holds the model table */
    o.model_dir = lua_tostring(L, -1);
    lua_pop(L, 2);
  } else if (ty == LUA_TSTRING) {
    o.model_dir = lua_tostring(L, -1);
    lua_pop(L, 1);
  } else {
    return luaL_error(L, WHAT ": model expects a folder or af.model.load(...), found %s", luaL_typename(L, -1));
  }
  if (!o.model_dir) return luaL_error(L, WHAT ": the model table has no path");

  /* task: af.task.*(...) or a name with data = folder */
  const char *task_label = NULL;
  ty = lua_getfield(L, t, "task");
  if (ty == LUA_TTABLE) {
    int tt = lua_gettop(L);
    lua_getfield(L, tt, "kind");
    int generic = lua_isstring(L, -1) && !strcmp(lua_tostring(L, -1), "generic");
    lua_pop(L, 1);
    if (generic && lua_getfield(L, tt, "options") == LUA_TTABLE) {
      /* the column options af.task.generic validated; the strings stay alive in that table */
      int ot = lua_gettop(L);
      lua_getfield(L, ot, "text_cols");
      o.text_cols = lua_tostring(L, -1);
      lua_getfield(L, ot, "label_col");
      o.label_col = lua_tostring(L, -1);
      lua_getfield(L, ot, "labels");
      o.labels = lua_tostring(L, -1);
      lua_getfield(L, ot, "format");
      o.format = lua_tostring(L, -1);
      lua_getfield(L, ot, "regression");
      o.regression = lua_toboolean(L, -1);
      o.no_header = lua_getfield(L, ot, "header") != LUA_TNIL && !lua_toboolean(L, -1);
      lua_pop(L, 7);  /* six fields and the options table */
    } else if (generic) {
      lua_pop(L, 1);
    }
    lua_getfield(L, tt, "name");
    o.task = lua_tostring(L, -1);
    lua_getfield(L, tt, "dir");
    o.data_dir = lua_tostring(L, -1);
    lua_getfield(L, tt, "skip_bad_rows");
    o.skip_bad_rows = lua_toboolean(L, -1);
    lua_pop(L, 1);
    /* keep name and dir alive: the task table stays referenced by the options table */
    lua_pop(L, 3);
    if (!o.task || !o.data_dir) return luaL_error(L, WHAT ": task expects af.task.*(...) (a table with name and dir)");
  } else if (ty == LUA_TSTRING) {
    o.task = lua_tostring(L, -1);
    lua_pop(L, 1);
  } else {
    return luaL_error(L, WHAT ": task expects af.task.glue/docs/default(...) or a task name, found %s",
                      luaL_typename(L, -1));
  }
  task_label = o.task;
  const char *data = get_str(L, t, "data");
  if (data) o.data_dir = data;
  if (!o.data_dir) return luaL_error(L, WHAT ": task '%s' given by name needs data = its folder", o.task);
  o.out = get_str(L, t, "out");
  if (!o.out) return luaL_error(L, WHAT ": expected out = the results file (.h5)");

  /* the policy, with the run knobs it may carry */
  af_lua_policy *pol = NULL;
  if (lua_getfield(L, t, "policy") != LUA_TNIL) {
    pol = af_lua_check_policy(L, -1);
    o.policy = pol->p;
    if (pol->intervals > 0) o.intervals = pol->intervals;
    if (pol->interval_steps > 0) o.interval_steps = pol->interval_steps;
    if (pol->max_depth >= 0) o.freeze.max_depth = pol->max_depth;
    o.freeze.signed_ratio = pol->signed_ratio;
  }
  lua_pop(L, 1);  /* the policy stays referenced by the options table */

  static const char *const recipes[] = {"hf", "paper", NULL};
  if (get_choice(L, t, "recipe", recipes, &cv) && cv == 1) {
    o.recipe_paper = 1;
    af_optim_defaults_paper(&o.optim);
  }
  const char *dev = get_str(L, t, "device");
  if (dev) o.device = dev;
  if (get_int(L, t, "threads", 0, 4096, &iv)) o.threads = (int)iv;
  if (get_int(L, t, "epochs", 1, 1000000, &iv)) o.epochs = (int)iv;
  if (get_int(L, t, "batch", 1, 1 << 20, &iv)) o.batch = (int)iv;
  if (get_int(L, t, "accum", 1, 1 << 20, &iv)) o.accum = (int)iv;
  if (get_int(L, t, "max_len", 3, 1 << 20, &iv)) o.max_len = (int)iv;
  if (get_int(L, t, "seq", 3, 1 << 20, &iv)) o.max_len = (int)iv;
  if (get_int(L, t, "bucket", 0, 1 << 20, &iv)) o.bucket = (int)iv;
  if (get_num(L, t, "lr", 0, &dv)) {
    if (!(dv > 0)) return luaL_error(L, WHAT ": lr expects a positive number");
    o.lr = (float)dv;
  }
  if (get_num(L, t, "weight_decay", 0, &dv)) o.optim.weight_decay = (float)dv;
  if (get_num(L, t, "beta1", 0, &dv)) o.optim.beta1 = (float)dv;
  if (get_num(L, t, "beta2", 0, &dv)) o.optim.beta2 = (float)dv;
  if (get_num(L, t, "adam_eps", 0, &dv)) o.optim.eps = (float)dv;
  if (get_bool(L, t, "bias_correction", &bv)) o.optim.bias_correction = bv;
  static const char *const clips[] = {"global", "per_tensor", "none", NULL};
  if (get_choice(L, t, "clip", clips, &cv)) o.optim.clip = (af_clip)cv;
  if (get_num(L, t, "max_grad_norm", 0, &dv)) o.optim.max_grad_norm = (float)dv;
  static const char *const scheds[] = {"linear", "stepped", "constant", NULL};
  if (get_choice(L, t, "schedule", scheds, &cv)) o.optim.schedule = (af_schedule)cv;
  if (get_num(L, t, "warmup", 0, &dv)) {
    if (dv > 1) return luaL_error(L, WHAT ": warmup expects a fraction of the steps in [0, 1], found %f", dv);
    o.optim.warmup_frac = (float)dv;
  }
  if (get_int(L, t, "seed", 0, LUA_MAXINTEGER, &iv)) o.seed = (uint64_t)iv;
  if (get_int(L, t, "eval_every", 0, LUA_MAXINTEGER, &iv)) o.eval_every = (long)iv;
  if (get_int(L, t, "max_steps", 0, LUA_MAXINTEGER, &iv)) o.max_steps = (long)iv;
  if (get_int(L, t, "max_train_rows", 0, LUA_MAXINTEGER, &iv)) o.max_train_rows = (size_t)iv;
  if (get_int(L, t, "max_eval_rows", 0, LUA_MAXINTEGER, &iv)) o.max_eval_rows = (size_t)iv;
  if (get_bool(L, t, "skip_bad_rows", &bv)) o.skip_bad_rows = bv;
  if (get_int(L, t, "intervals", 1, 1 << 30, &iv)) o.intervals = (int)iv;
  if (get_int(L, t, "interval_steps", 1, LUA_MAXINTEGER, &iv)) o.interval_steps = (long)iv;
  if (get_int(L, t, "max_depth", 0, 1 << 20, &iv)) o.freeze.max_depth = (int)iv;
  if (get_bool(L, t, "signed_ratio", &bv)) o.freeze.signed_ratio = bv;
  if (get_bool(L, t, "frozen_dropout", &bv)) o.frozen_dropout = bv;
  static const char *const caches[] = {"off", "memory", "disk", "auto", NULL};
  if (lua_getfield(L, t, "cache") == LUA_TBOOLEAN) {  /* cache = false / true (= "auto") */
    o.cache = lua_toboolean(L, -1) ? AF_CACHE_AUTO : AF_CACHE_OFF;
    lua_pop(L, 1);
  } else {
    lua_pop(L, 1);
    if (get_choice(L, t, "cache", caches, &cv)) o.cache = (af_cache_mode)cv;
  }
  static const char *const dtypes[] = {"f32", "f16", "bf16", NULL};
  if (get_choice(L, t, "cache_dtype", dtypes, &cv)) o.cache_dtype = (af_cache_dtype)cv;
  o.cache_budget = get_size(L, t, "cache_budget", 0);
  o.cache_dir = get_str(L, t, "cache_dir");
  if (get_int(L, t, "cache_compress", 0, 9, &iv)) o.cache_compress = (int)iv;
  o.checkpoint_dir = get_str(L, t, "checkpoint_dir");
  if (get_bool(L, t, "checkpoints", &bv)) o.no_checkpoints = !bv;
  if (get_bool(L, t, "resume", &bv)) o.resume = bv;
  if (lua_getfield(L, t, "progress") == LUA_TBOOLEAN) o.progress = lua_toboolean(L, -1);
  else if (lua_isstring(L, -1) && !strcmp(lua_tostring(L, -1), "auto")) o.progress = -1;
  else if (!lua_isnil(L, -1)) return luaL_error(L, WHAT ": progress expects true, false or \"auto\"");
  lua_pop(L, 1);
  if (get_bool(L, t, "quiet", &bv)) o.quiet = bv;

  /* the results file's folder */
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", o.out);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = 0;
    if (af_lua_mkdirs(dir) != AF_OK) return af_lua_core_error(L, WHAT);
  }

  af_train_summary sum;
  if (pol) af_lua_policy_bind(pol, L);
  af_status s = af_train(&o, &sum);
  if (pol) af_lua_policy_bind(pol, NULL);
  if (s == AF_ERR_INTERRUPTED)
    return luaL_error(L, WHAT ": %s (results so far in %s; run again with resume = true to continue)",
                      af_last_error(), o.out);
  if (s != AF_OK) return af_lua_core_error(L, WHAT);
  push_summary(L, &sum, &o, o.policy ? o.policy->name : "none", task_label);
  return 1;
}

void af_lua_open_train(lua_State *L) {
  lua_pushcfunction(L, l_train);
  lua_setfield(L, -2, "train");
}
