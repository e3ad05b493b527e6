/* The small helpers every binding file needs, one copy each (declared in af_lua.h): core
 * failures as Lua errors, fields of result tables, and readers for options tables whose
 * errors name the function and the key ("af.policy.adaptive: percentile expects ..."). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core/base/fsutil.h"
#include "lua/af_lua.h"

/* ---- errors ---- */

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

void af_lua_push_bin(lua_State *L) {
  const char *exe = af_exe_path();
  lua_pushstring(L, *exe ? exe : "autofreeze");
}

/* ---- building tables ---- */

void af_lua_set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}
void af_lua_set_num(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}
void af_lua_set_str(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}
void af_lua_set_bool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

void af_lua_push_array(lua_State *L, const double *v, size_t n, int as_int) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    if (as_int && isfinite(v[i])) lua_pushinteger(L, (lua_Integer)v[i]);
    else lua_pushnumber(L, v[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

const char *af_lua_push_joined(lua_State *L, const char *const *list) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 0; list[i]; i++) {
    if (i) luaL_addstring(&b, ", ");
    luaL_addstring(&b, list[i]);
  }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* ---- options tables ---- */

int af_lua_opt_table(lua_State *L, int idx) {
  if (lua_gettop(L) < idx) lua_settop(L, idx);
  if (lua_isnil(L, idx)) {
    lua_newtable(L);
    lua_replace(L, idx);
  }
  luaL_checktype(L, idx, LUA_TTABLE);
  return idx;
}

void af_lua_check_keys(lua_State *L, int t, const char *what, const char *const *known) {
  t = lua_absindex(L, t);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: option keys must be strings, found a %s key (a list entry?)", what, luaL_typename(L, -1));
    const char *k = lua_tostring(L, -1);
    int ok = 0;
    for (int i = 0; known[i] && !ok; i++) ok = !strcmp(k, known[i]);
    if (!ok) luaL_error(L, "%s: unknown option '%s' (known: %s)", what, k, af_lua_push_joined(L, known));
  }
}

int af_lua_get_int(lua_State *L, int t, const char *key, const char *what, lua_Integer lo, lua_Integer hi,
                   lua_Integer *v) {
  if (lua_getfield(L, t, key) == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  int isnum;
  lua_Integer x = lua_tointegerx(L, -1, &isnum);
  if (!isnum || x < lo || x > hi) {
    const char *shown = luaL_tolstring(L, -1, NULL);
    if (hi >= INT_MAX && !(isnum && x > hi))  /* no upper bound worth naming */
      luaL_error(L, "%s: %s expects an integer >= %I, found %s", what, key, lo, shown);
    luaL_error(L, "%s: %s expects an integer in [%I, %I], found %s", what, key, lo, hi, shown);
  }
  lua_pop(L, 1);
  *v = x;
  return 1;
}

int af_lua_get_num(lua_State *L, int t, const char *key, const char *what, double lo, double hi, double *v) {
  if (lua_getfield(L, t, key) == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  int isnum;
  double x = lua_tonumberx(L, -1, &isnum);
  if (!isnum || !(x >= lo && x <= hi) || isinf(x)) {
    const char *shown = luaL_tolstring(L, -1, NULL);
    char a[32], b[32];  /* %g: lua_pushfstring's %f would print 0 as 0.0 */
    snprintf(a, sizeof a, "%g", lo);
    snprintf(b, sizeof b, "%g", hi);
    if (isinf(hi)) luaL_error(L, "%s: %s expects a number >= %s, found %s", what, key, a, shown);
    luaL_error(L, "%s: %s expects a number in [%s, %s], found %s", what, key, a, b, shown);
  }
  lua_pop(L, 1);
  *v = x;
  return 1;
}

int af_lua_get_bool(lua_State *L, int t, const char *key, const char *what, int *v) {
  int ty = lua_getfield(L, t, key);
  if (ty == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (ty != LUA_TBOOLEAN)
    luaL_error(L, "%s: %s expects true or false, found %s", what, key, luaL_tolstring(L, -1, NULL));
  *v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return 1;
}

const char *af_lua_get_str(lua_State *L, int t, const char *key, const char *what) {
  int ty = lua_getfield(L, t, key);
  const char *s = NULL;
  if (ty == LUA_TSTRING) s = lua_tostring(L, -1);
  else if (ty != LUA_TNIL) luaL_error(L, "%s: %s expects a string, found a %s", what, key, luaL_typename(L, -1));
  lua_pop(L, 1);  /* the string stays alive in the table */
  return s;
}
