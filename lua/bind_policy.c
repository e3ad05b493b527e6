/* af.policy.*: freeze policies as Lua userdata (one metatable; __gc and __close share one
 * function, __tostring, read-only fields through __index). A custom policy wraps a Lua
 * function through af_policy_custom: the function sits in the registry, and the decide
 * callback calls it under lua_pcall, so a Lua error (or a bad return value) becomes an
 * af_status that stops the run cleanly instead of unwinding through the training loop.
 * Policies that are not custom never touch Lua during a run. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/run/freeze.h"
#include "core/run/options.h"
#include "lua/af_lua.h"

struct af_lua_custom {
  lua_State *L;  /* the state (or thread) of the af.train call running the policy */
  lua_State *main; /* the main thread: releases the reference (a coroutine may be gone) */
  int ref;       /* registry reference of the function */
  char err[1024];
};

af_lua_policy *af_lua_check_policy(lua_State *L, int idx) {
  af_lua_policy *pol = luaL_testudata(L, idx, AF_LUA_POLICY_MT);
  if (!pol) {
    luaL_error(L, "expected a policy (af.policy.none/static/adaptive/pipe/gated/freezeout/auto/custom), "
               "found a %s", luaL_typename(L, idx));
    return NULL;
  }
  if (!pol->p) luaL_error(L, "the policy was closed (its __close or __gc ran)");
  return pol;
}

void af_lua_policy_bind(af_lua_policy *pol, lua_State *L) {
  if (pol->custom) pol->custom->L = L ? L : pol->custom->main;
}

static int policy_close(lua_State *L) {  /* __gc and __close */
  af_lua_policy *pol = luaL_checkudata(L, 1, AF_LUA_POLICY_MT);
  af_policy_free(pol->p);  /* a custom policy's destroy releases its function */
  pol->p = NULL;
  pol->custom = NULL;
  return 0;
}

static int policy_tostring(lua_State *L) {
  af_lua_policy *pol = luaL_checkudata(L, 1, AF_LUA_POLICY_MT);
  if (!pol->p) lua_pushfstring(L, "policy %s (closed)", pol->label);
  else if (pol->p->knobs[0]) lua_pushfstring(L, "policy %s (%s)", pol->p->name, pol->p->knobs);
  else lua_pushfstring(L, "policy %s", pol->p->name);
  return 1;
}

static int policy_index(lua_State *L) {
  af_lua_policy *pol = luaL_checkudata(L, 1, AF_LUA_POLICY_MT);
  const char *k = luaL_checkstring(L, 2);
  if (!strcmp(k, "name")) lua_pushstring(L, pol->p ? pol->p->name : pol->label);
  else if (!strcmp(k, "kind")) lua_pushstring(L, pol->kind);
  else if (!strcmp(k, "label")) lua_pushstring(L, pol->label);
  else if (!strcmp(k, "knobs")) lua_pushstring(L, pol->p ? pol->p->knobs : "");
  else if (!strcmp(k, "initial_depth")) lua_pushinteger(L, pol->p ? pol->p->initial_depth : 0);
  else if (!strcmp(k, "closed")) lua_pushboolean(L, pol->p == NULL);
  else if (!strcmp(k, "frozen") && !strcmp(pol->kind, "static")) lua_pushinteger(L, pol->frozen);
  else if (!strcmp(k, "percentile") && !strcmp(pol->kind, "adaptive")) lua_pushnumber(L, pol->percentile);
  else if (!strcmp(k, "max_depth") && pol->max_depth >= 0) lua_pushinteger(L, pol->max_depth);
  else if (!strcmp(k, "signed_ratio") && !strcmp(pol->kind, "adaptive")) lua_pushboolean(L, pol->signed_ratio);
  else if (!strcmp(k, "intervals") && pol->intervals > 0) lua_pushinteger(L, pol->intervals);
  else if (!strcmp(k, "interval_steps") && pol->interval_steps > 0) lua_pushinteger(L, pol->interval_steps);
  else lua_pushnil(L);
  return 1;
}

static af_lua_policy *new_policy(lua_State *L, const char *kind) {
  af_lua_policy *pol = lua_newuserdatauv(L, sizeof *pol, 0);
  memset(pol, 0, sizeof *pol);
  snprintf(pol->kind, sizeof pol->kind, "%s", kind);
  pol->max_depth = -1;
  luaL_setmetatable(L, AF_LUA_POLICY_MT);
  return pol;
}

/* ---- options ---- */

/* Common fields of every policy's options: intervals, interval_steps, label. */
static void common_opts(lua_State *L, int t, af_lua_policy *pol, const char *what) {
  lua_Integer v;
  if (af_lua_get_int(L, t, "intervals", what, 1, INT_MAX, &v)) pol->intervals = (int)v;
  if (af_lua_get_int(L, t, "interval_steps", what, 1, LUA_MAXINTEGER, &v)) pol->interval_steps = (long)v;
  const char *label = af_lua_get_str(L, t, "label", what);
  if (label) snprintf(pol->label, sizeof pol->label, "%s", label);
}

/* ---- constructors ---- */

static int p_none(lua_State *L) {
  lua_settop(L, 1);
  int t = af_lua_opt_table(L, 1);
  static const char *const known[] = {"intervals", "interval_steps", "label", NULL};
  af_lua_check_keys(L, t, "af.policy.none", known);
  af_lua_policy *pol = new_policy(L, "none");
  common_opts(L, t, pol, "af.policy.none");
  if (af_policy_none(&pol->p) != AF_OK) return af_lua_core_error(L, "af.policy.none");
  if (!pol->label[0]) snprintf(pol->label, sizeof pol->label, "none");
  return 1;
}

static int p_static(lua_State *L) {
  lua_settop(L, 1);
  int k = -1;
  if (lua_type(L, 1) == LUA_TNUMBER) {  /* af.policy.static(5) as a shorthand */
    int isnum;
    k = (int)lua_tointegerx(L, 1, &isnum);
    if (!isnum) return luaL_error(L, "af.policy.static: frozen expects an integer, found %s", lua_tostring(L, 1));
    lua_newtable(L);
    lua_pushinteger(L, k);
    lua_setfield(L, -2, "frozen");
    lua_replace(L, 1);
  }
  int t = af_lua_opt_table(L, 1);
  static const char *const known[] = {"frozen", "intervals", "interval_steps", "label", NULL};
  af_lua_check_keys(L, t, "af.policy.static", known);
  if (lua_getfield(L, t, "frozen") == LUA_TNIL)
    return luaL_error(L, "af.policy.static: expected frozen = K (layers 0..K-1 frozen; model.layers - 1 = all but the last)");
  lua_pop(L, 1);
  lua_Integer kv = 0;
  af_lua_get_int(L, t, "frozen", "af.policy.static", 0, INT_MAX, &kv);
  k = (int)kv;
  af_lua_policy *pol = new_policy(L, "static");
  common_opts(L, t, pol, "af.policy.static");
  pol->frozen = k;
  if (af_policy_static(k, &pol->p) != AF_OK) return af_lua_core_error(L, "af.policy.static");
  if (!pol->label[0]) snprintf(pol->label, sizeof pol->label, "static-k%d", k);
  return 1;
}

static int p_adaptive(lua_State *L) {
  lua_settop(L, 1);
  int t = af_lua_opt_table(L, 1);
  static const char *const known[] = {"percentile", "max_depth", "signed_ratio", "intervals", "interval_steps",
                                      "label", NULL};
  af_lua_check_keys(L, t, "af.policy.adaptive", known);
  double pct = 50;
  af_lua_get_num(L, t, "percentile", "af.policy.adaptive", 0, 100, &pct);
  lua_Integer maxd = -1;
  af_lua_get_int(L, t, "max_depth", "af.policy.adaptive", 0, INT_MAX, &maxd);
  int sr = 0;
  af_lua_get_bool(L, t, "signed_ratio", "af.policy.adaptive", &sr);
  af_lua_policy *pol = new_policy(L, "adaptive");
  common_opts(L, t, pol, "af.policy.adaptive");
  pol->percentile = pct;
  pol->max_depth = (int)maxd;
  pol->signed_ratio = sr;
  if (af_policy_adaptive(pct, (int)maxd, &pol->p) != AF_OK) return af_lua_core_error(L, "af.policy.adaptive");
  if (!pol->label[0]) {
    if (maxd >= 0) snprintf(pol->label, sizeof pol->label, "adaptive-p%g-d%d", pct, (int)maxd);
    else snprintf(pol->label, sizeof pol->label, "adaptive-p%g", pct);
  }
  return 1;
}

static int p_pipe(lua_State *L) {
  lua_settop(L, 1);
  int t = af_lua_opt_table(L, 1);
  static const char *const known[] = {"alpha", "intervals", "interval_steps", "label", NULL};
  af_lua_check_keys(L, t, "af.policy.pipe", known);
  double alpha = 0.25;
  af_lua_get_num(L, t, "alpha", "af.policy.pipe", 0, 1, &alpha);
  af_lua_policy *pol = new_policy(L, "pipe");
  common_opts(L, t, pol, "af.policy.pipe");
  if (af_policy_pipe(alpha, &pol->p) != AF_OK) return af_lua_core_error(L, "af.policy.pipe");
  if (!pol->label[0]) snprintf(pol->label, sizeof pol->label, "pipe-a%g", alpha);
  return 1;
}

static int p_gated(lua_State *L) {
  lua_settop(L, 1);
  int t = af_lua_opt_table(L, 1);
  static const char *const known[] = {"percentile", "max_depth", "tolerance", "trial", "cooldown", "intervals",
                                      "interval_steps", "label", NULL};
  af_lua_check_keys(L, t, "af.policy.gated", known);
  af_gated_opts g;
  af_gated_defaults(&g);
  af_lua_get_num(L, t, "percentile", "af.policy.gated", 0, 100, &g.percentile);
  lua_Integer v = -1;
  if (af_lua_get_int(L, t, "max_depth", "af.policy.gated", 0, INT_MAX, &v)) g.max_depth = (int)v;
  af_lua_get_num(L, t, "tolerance", "af.policy.gated", 0, HUGE_VAL, &g.tolerance);
  if (af_lua_get_int(L, t, "trial", "af.policy.gated", 1, INT_MAX, &v)) g.trial = (int)v;
  if (af_lua_get_int(L, t, "cooldown", "af.policy.gated", 0, INT_MAX, &v)) g.cooldown = (int)v;
  af_lua_policy *pol = new_policy(L, "gated");
  common_opts(L, t, pol, "af.policy.gated");
  pol->percentile = g.percentile;
  pol->max_depth = g.max_depth;
  if (af_policy_gated(&g, &pol->p) != AF_OK) return af_lua_core_error(L, "af.policy.gated");
  if (!pol->label[0]) snprintf(pol->label, sizeof pol->label, "gated-p%g-t%g", g.percentile, g.tolerance);
  return 1;
}

static int p_freezeout(lua_State *L) {
  lua_settop(L, 1);
  int t = af_lua_opt_table(L, 1);
  static const char *const known[] = {"t0", "schedule", "scaled", "intervals", "interval_steps", "label", NULL};
  af_lua_check_keys(L, t, "af.policy.freezeout", known);
  af_freezeout_opts fo;
  af_freezeout_defaults(&fo);
  if (af_lua_get_num(L, t, "t0", "af.policy.freezeout", -HUGE_VAL, HUGE_VAL, &fo.t0) && !(fo.t0 > 0 && fo.t0 <= 1)) {
    char v[32];
    snprintf(v, sizeof v, "%g", fo.t0);
    return luaL_error(L, "af.policy.freezeout: t0 expects a number in (0, 1] (layer 0's freeze time, a fraction of "
                      "the run), found %s", v);
  }
  const char *sched = af_lua_get_str(L, t, "schedule", "af.policy.freezeout");
  if (sched) {
    int k = af_choice_index(af_freezeout_schedule_names, sched);
    if (k < 0) return luaL_error(L, "af.policy.freezeout: schedule expects \"linear\" or \"cubic\", found %s", sched);
    fo.cubic = k;
  }
  af_lua_get_bool(L, t, "scaled", "af.policy.freezeout", &fo.scaled);
  af_lua_policy *pol = new_policy(L, "freezeout");
  common_opts(L, t, pol, "af.policy.freezeout");
  pol->t0 = fo.t0;
  pol->cubic = fo.cubic;
  pol->scaled = fo.scaled;
  if (af_policy_freezeout(&fo, &pol->p) != AF_OK) return af_lua_core_error(L, "af.policy.freezeout");
  if (!pol->label[0])
    snprintf(pol->label, sizeof pol->label, "freezeout-t%g%s%s", fo.t0, fo.cubic ? "-cubic" : "",
             fo.scaled ? "-scaled" : "");
  return 1;
}

/* af.policy.auto{}: the preset of core/run/freeze_preset.c (its knobs: the spec it expands to) */
static int p_auto(lua_State *L) {
  lua_settop(L, 1);
  int t = af_lua_opt_table(L, 1);
  static const char *const known[] = {"intervals", "interval_steps", "label", NULL};
  af_lua_check_keys(L, t, "af.policy.auto", known);
  af_lua_policy *pol = new_policy(L, "auto");
  common_opts(L, t, pol, "af.policy.auto");
  if (af_policy_preset("auto", &pol->p) != AF_OK) return af_lua_core_error(L, "af.policy.auto");
  if (!pol->label[0]) snprintf(pol->label, sizeof pol->label, "auto");
  return 1;
}

/* ---- custom ---- */

static af_status custom_decide(af_policy *p, const af_interval_stats *st, int *new_depth) {
  struct af_lua_custom *c = p->ctx;
  lua_State *L = c->L;
  if (!L) return AF_FAIL(AF_ERR_ARG, "custom policy used outside af.train (no Lua state bound)");
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 10)) return AF_FAIL(AF_ERR_NOMEM, "Lua stack overflow calling the policy function");
  lua_pushcfunction(L, af_lua_traceback);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
  lua_createtable(L, 0, 10);
  af_lua_set_int(L, "interval", st->interval);
  af_lua_set_int(L, "step", st->step);
  af_lua_set_int(L, "depth", st->depth);
  af_lua_set_int(L, "layers", st->L);
  af_lua_set_int(L, "max_depth", st->max_depth);
  af_lua_set_str(L, "policy", p->name);
  af_lua_push_array(L, st->l1, (size_t)st->L, 0);
  lua_setfield(L, -2, "l1");
  af_lua_push_array(L, st->l2, (size_t)st->L, 0);
  lua_setfield(L, -2, "l2");
  af_lua_push_array(L, st->ratio, (size_t)st->L, 0);
  lua_setfield(L, -2, "ratio");
  af_status s = AF_OK;
  if (lua_pcall(L, 1, 1, top + 1) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    /* keep the first line (file:line: message); the traceback of the run is printed by the host */
    snprintf(c->err, sizeof c->err, "%s", msg ? msg : "(error object is not a string)");
    char *nl = strstr(c->err, "\nstack traceback:");
    if (nl) *nl = 0;
    s = AF_FAIL(AF_ERR_ARG, "the policy function raised an error: %s", c->err);
  } else if (lua_type(L, -1) != LUA_TNUMBER) {
    const char *shown = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    s = AF_FAIL(AF_ERR_ARG,
                "the policy function returned %s%s%s%s; expected the new frozen depth, an integer in [%d, %d]",
                shown ? "the string '" : "a ", shown ? shown : lua_typename(L, lua_type(L, -1)), shown ? "'" : "",
                shown ? "" : " value", st->depth, st->max_depth);
  } else {
    s = af_policy_depth_from_double(p->name, lua_tonumber(L, -1), st->depth, st->max_depth, new_depth);
  }
  lua_settop(L, top);
  return s;
}

static void custom_destroy(af_policy *p) {
  struct af_lua_custom *c = p->ctx;
  if (!c) return;
  luaL_unref(c->main, LUA_REGISTRYINDEX, c->ref);
  free(c);
  p->ctx = NULL;
}

static int p_custom(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 2);
  int t = af_lua_opt_table(L, 2);
  static const char *const known[] = {"name", "knobs", "initial_depth", "intervals", "interval_steps", "label", NULL};
  af_lua_check_keys(L, t, "af.policy.custom", known);
  const char *name = af_lua_get_str(L, t, "name", "af.policy.custom");
  if (!name) name = "custom";
  char knobs[128] = "";
  int ty = lua_getfield(L, t, "knobs");
  if (ty == LUA_TSTRING) snprintf(knobs, sizeof knobs, "%s", lua_tostring(L, -1));
  else if (ty == LUA_TTABLE) {  /* {threshold = 0.1} -> "threshold=0.1" (keys sorted) */
    const char *keys[32];
    int nk = 0, kt = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, kt) && nk < 32) {
      lua_pop(L, 1);
      if (lua_type(L, -1) == LUA_TSTRING) keys[nk++] = lua_tostring(L, -1);
    }
    for (int i = 1; i < nk; i++)
      for (int j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
        const char *x = keys[j];
        keys[j] = keys[j - 1];
        keys[j - 1] = x;
      }
    size_t used = 0;
    for (int i = 0; i < nk && used < sizeof knobs; i++) {
      lua_getfield(L, kt, keys[i]);
      const char *v = luaL_tolstring(L, -1, NULL);
      used += (size_t)snprintf(knobs + used, sizeof knobs - used, "%s%s=%s", i ? " " : "", keys[i], v);
      lua_pop(L, 2);
    }
  } else if (ty != LUA_TNIL) return luaL_error(L, "af.policy.custom: knobs expects a string or a table");
  lua_pop(L, 1);
  lua_Integer init = 0;
  af_lua_get_int(L, t, "initial_depth", "af.policy.custom", 0, INT_MAX, &init);
  af_lua_policy *pol = new_policy(L, "custom");
  common_opts(L, t, pol, "af.policy.custom");
  struct af_lua_custom *c = calloc(1, sizeof *c);
  if (!c) return luaL_error(L, "af.policy.custom: out of memory");
  lua_pushvalue(L, 1);
  c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  c->main = lua_tothread(L, -1);
  lua_pop(L, 1);
  c->L = c->main;
  if (af_policy_custom(name, custom_decide, c, custom_destroy, &pol->p) != AF_OK) {
    luaL_unref(L, LUA_REGISTRYINDEX, c->ref);
    free(c);
    return af_lua_core_error(L, "af.policy.custom");
  }
  pol->custom = c;
  pol->p->initial_depth = (int)init;
  snprintf(pol->p->knobs, sizeof pol->p->knobs, "%s", knobs);
  if (!pol->label[0]) snprintf(pol->label, sizeof pol->label, "%s", pol->p->name);
  return 1;
}

void af_lua_open_policy(lua_State *L) {
  if (luaL_newmetatable(L, AF_LUA_POLICY_MT)) {
    static const luaL_Reg mt[] = {{"__gc", policy_close},
                                  {"__close", policy_close},
                                  {"__tostring", policy_tostring},
                                  {"__index", policy_index},
                                  {NULL, NULL}};
    luaL_setfuncs(L, mt, 0);
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
      {"none", p_none},   {"static", p_static}, {"adaptive", p_adaptive}, {"pipe", p_pipe},
      {"gated", p_gated}, {"freezeout", p_freezeout}, {"auto", p_auto}, {"custom", p_custom}, {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_setfield(L, -2, "policy");
}
