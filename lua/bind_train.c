/* af.train{...}: one run. The keys are the run options of core/run/options.c (the names of
 * `autofreeze train`'s options with '_' for '-'), read and checked by the same code as the
 * CLI's, so a bad value gets the same message; an unknown key is an error naming it, so a
 * typo never silently trains with a default. model, task and policy also take the objects
 * of af.model.load, af.task.* and af.policy.*. Returns the run's summary as a table. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core/base/fsutil.h"
#include "core/run/train.h"
#include "lua/af_lua.h"

#define WHAT "af.train"

static void check_keys(lua_State *L, int t) {
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, WHAT ": option keys must be strings, found a %s key (a list entry?)", luaL_typename(L, -1));
    const char *k = lua_tostring(L, -1);
    const af_opt *opt = af_opt_find(k);
    if (!opt || strchr(k, '-'))
      luaL_error(L, WHAT ": unknown option '%s' (see docs/lua-api.md for the keys of af.train)", k);
  }
}

/* model = af.model.load(...): its path */
static void model_object(lua_State *L, int t, af_train_opts *o) {
  if (lua_getfield(L, t, "model") == LUA_TTABLE) {
    lua_getfield(L, -1, "path");  /* alive while the options table holds the model table */
    o->model_dir = lua_tostring(L, -1);
    if (!o->model_dir) luaL_error(L, WHAT ": the model table has no path");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* task = af.task.*(...): name, folder, skip_bad_rows and a generic task's columns. The
 * strings stay alive: they belong to tables the options table holds. */
static void task_object(lua_State *L, int t, af_train_opts *o) {
  if (lua_getfield(L, t, "task") != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  int tt = lua_gettop(L);
  lua_getfield(L, tt, "name");
  o->task = lua_tostring(L, -1);
  lua_getfield(L, tt, "dir");
  o->data_dir = lua_tostring(L, -1);
  lua_getfield(L, tt, "skip_bad_rows");
  o->skip_bad_rows = lua_toboolean(L, -1);
  lua_pop(L, 3);
  if (!o->task || !o->data_dir) luaL_error(L, WHAT ": task expects af.task.*(...) (a table with name and dir)");
  if (lua_getfield(L, tt, "options") == LUA_TTABLE) {  /* af.task.generic's columns, already checked */
    static const char *const keys[] = {"text_cols", "label_col", "labels", "format", "regression", "header", NULL};
    for (int i = 0; keys[i]; i++) {
      int ty = lua_getfield(L, -1, keys[i]);
      if (ty != LUA_TNIL) {
        const char *v = ty == LUA_TBOOLEAN ? (lua_toboolean(L, -1) ? "true" : "false") : lua_tostring(L, -1);
        if (v && af_opt_set(af_opt_find(keys[i]), o, v) != AF_OK) af_lua_core_error(L, WHAT);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 2);  /* options and the task table */
}

/* policy = af.policy.*(...): the policy object with the run knobs it carries */
static af_lua_policy *policy_object(lua_State *L, int t, af_train_opts *o) {
  af_lua_policy *pol = NULL;
  if (lua_getfield(L, t, "policy") == LUA_TUSERDATA) {
    pol = af_lua_check_policy(L, -1);
    o->policy = pol->p;
    for (int k = 0; af_policy_kind_names[k]; k++)
      if (!strcmp(pol->kind, af_policy_kind_names[k])) o->policy_kind = k;
    if (!strcmp(pol->kind, "static")) o->frozen = pol->frozen;
    if (!strcmp(pol->kind, "adaptive")) o->percentile = pol->percentile;
    if (!strcmp(pol->kind, "freezeout")) {  /* /config shows the knobs the policy runs with */
      o->freezeout_t0 = pol->t0;
      o->freezeout_schedule = pol->cubic;
      o->freezeout_scaled = pol->scaled;
    }
    if (pol->intervals > 0) o->intervals = pol->intervals;
    if (pol->interval_steps > 0) o->interval_steps = pol->interval_steps;
    if (pol->max_depth >= 0) o->freeze.max_depth = pol->max_depth;
    o->freeze.signed_ratio = pol->signed_ratio;
  }
  lua_pop(L, 1);  /* the policy stays referenced by the options table */
  return pol;
}

/* Every other key through the options table: its value as text, as the CLI would read it. */
static void plain_options(lua_State *L, int t, af_train_opts *o) {
  for (int i = 0; i < af_opts_count; i++) {
    const af_opt *opt = &af_opts[i];
    for (int pass = 0; pass < 2; pass++) {
      const char *key = pass ? opt->alias : opt->name;
      if (!key) continue;
      int ty = lua_getfield(L, t, key);
      const char *v = NULL;
      if (ty == LUA_TBOOLEAN) v = lua_toboolean(L, -1) ? "true" : "false";
      else if (ty == LUA_TNUMBER || ty == LUA_TSTRING) v = lua_tostring(L, -1);  /* 3 -> "3", 1e-3 -> "0.001" */
      else if (ty != LUA_TNIL && !((ty == LUA_TTABLE || ty == LUA_TUSERDATA) && (!strcmp(key, "model") ||
                                                                                 !strcmp(key, "task") ||
                                                                                 !strcmp(key, "policy"))))
        luaL_error(L, WHAT ": %s expects a value, got a %s", key, luaL_typename(L, -1));
      if (v && af_opt_set(opt, o, v) != AF_OK) luaL_error(L, WHAT ": %s %s", key, af_last_error());
      lua_pop(L, 1);  /* string values stay alive in the options table */
    }
  }
}

static void push_summary(lua_State *L, const af_train_summary *s, const af_train_opts *o, const char *policy) {
  lua_createtable(L, 0, 20);
  af_lua_set_str(L, "status", s->status);
  af_lua_set_int(L, "steps", s->steps);
  af_lua_set_int(L, "final_depth", s->final_depth);
  af_lua_set_num(L, "total_time", s->total_time);
  af_lua_set_str(L, "metric", s->metric);
  af_lua_set_num(L, "best", s->best);
  af_lua_set_num(L, "final", s->final);
  af_lua_set_int(L, "best_step", s->best_step);
  af_lua_set_num(L, "time_to_best", s->time_to_best);
  af_lua_set_num(L, "final_loss", s->final_loss);
  lua_newtable(L);
  for (int m = 0; m < AF_METRIC_COUNT; m++)
    if (s->final_metrics.have[m]) af_lua_set_num(L, af_metric_name((af_metric)m), s->final_metrics.value[m]);
  lua_setfield(L, -2, "metrics");
  af_lua_set_int(L, "cache_hits", s->cache_hits);
  af_lua_set_int(L, "cache_misses", s->cache_misses);
  af_lua_set_int(L, "cache_bytes", s->cache_bytes);
  af_lua_set_num(L, "wall_time", s->wall_time);
  af_lua_set_num(L, "setup_time", s->setup_time);
  af_lua_set_num(L, "step_time", s->step_time);
  af_lua_set_num(L, "eval_time", s->eval_time);
  af_lua_set_num(L, "checkpoint_time", s->checkpoint_time);
  af_lua_set_num(L, "other_time", s->other_time);
  af_lua_set_str(L, "out", o->out);
  af_lua_set_str(L, "policy", policy);
  af_lua_set_str(L, "task", o->task);
  af_lua_set_int(L, "seed", (lua_Integer)o->seed);
}

static int l_train(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  const int t = 1;
  check_keys(L, t);
  af_train_opts o;
  af_train_opts_default(&o);
  model_object(L, t, &o);
  task_object(L, t, &o);
  af_lua_policy *pol = policy_object(L, t, &o);
  plain_options(L, t, &o);  /* explicit keys win over what the objects carry */
  if (!o.model_dir) return luaL_error(L, WHAT ": expected model = a folder or af.model.load(...)");
  if (!o.task) return luaL_error(L, WHAT ": expected task = af.task.*(...) or a task name");
  if (!o.data_dir) return luaL_error(L, WHAT ": task '%s' given by name needs data = its folder", o.task);
  if (!o.out) return luaL_error(L, WHAT ": expected out = the results file (.h5)");

  char dir[4096];  /* the results file's folder */
  af_path_dir(o.out, dir, sizeof dir);
  if (af_mkdirs(dir) != AF_OK) return af_lua_core_error(L, WHAT);

  af_train_summary sum;
  if (pol) af_lua_policy_bind(pol, L);
  af_status s = af_train(&o, &sum);
  if (pol) af_lua_policy_bind(pol, NULL);
  if (s == AF_ERR_INTERRUPTED)
    return luaL_error(L, WHAT ": %s (results so far in %s; run again with resume = true to continue)",
                      af_last_error(), o.out);
  if (s != AF_OK) return af_lua_core_error(L, WHAT);
  push_summary(L, &sum, &o, o.policy ? o.policy->name : af_policy_kind_names[o.policy_kind]);
  return 1;
}

/* af.policy_of(opts) -> name, knobs: the policy af.train would run with these options and
 * what its /config records (policy, policy_knobs), engine defaults resolved: af.sweep keys a
 * finished cell on it, so a cell made under another default runs again. Trains nothing. */
static int l_policy_of(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  check_keys(L, 1);
  af_train_opts o;
  af_train_opts_default(&o);
  policy_object(L, 1, &o);
  plain_options(L, 1, &o);
  af_run_policy rp;
  if (af_run_policy_make(&o, &rp) != AF_OK) return luaL_error(L, "af.policy_of: %s", af_last_error());
  lua_pushstring(L, rp.policy->name);
  lua_pushstring(L, rp.policy->knobs);
  af_run_policy_free(&rp);
  return 2;
}

void af_lua_open_train(lua_State *L) {
  lua_pushcfunction(L, l_train);
  lua_setfield(L, -2, "train");
  lua_pushcfunction(L, l_policy_of);
  lua_setfield(L, -2, "policy_of");
}
