/* What the Lua host (lua/host.c) and the bindings (lua/bind_*.c) share: the module opener,
 * the registry keys, and the helpers (lua_util.c) for core failures as Lua errors, result
 * tables and options tables. The Lua API itself is documented in docs/lua-api.md. */
#ifndef AF_LUA_H
#define AF_LUA_H
#include <lauxlib.h>
#include <lua.h>
#include <stddef.h>
#include "core/base/status.h"

/* Registry keys and metatable names. */
#define AF_LUA_SETTINGS "autofreeze.settings"   /* table from `run --set`, read by the module */
#define AF_LUA_POLICY_MT "autofreeze.policy"     /* policy userdata */
#define AF_LUA_MODEL_MT "autofreeze.model"       /* model table (config fields) */
#define AF_LUA_TASK_MT "autofreeze.task"         /* task descriptor table */

/* The module: `require "autofreeze"` (package.preload) calls this. */
int luaopen_autofreeze(lua_State *L);
/* Add the folders holding lua/autofreeze/NAME.lua to package.path: $AF_LUA_PATH (a folder, or
 * a ';'-separated list of folders), then the source tree's lua/, then <exe>/../lua and
 * <exe>/../share/autofreeze/lua. */
void af_lua_set_path(lua_State *L);


/* Sub-tables of the module, each filling the table on top of the stack. */
void af_lua_open_policy(lua_State *L);    /* af.policy.*   (bind_policy.c) */
void af_lua_open_train(lua_State *L);     /* af.train      (bind_train.c) */
void af_lua_open_results(lua_State *L);   /* af.results.*  (bind_results.c) */

/* The policy behind a policy userdata at index idx (an error when it is not one or is
 * closed). Before a run, af_lua_policy_bind sets the Lua state (thread) a custom policy
 * calls into; af_lua_policy_bind(pol, NULL) after the run restores the main thread.
 * The knobs a policy carries for the run (intervals etc.) are fields of its userdata. */
struct af_policy;
typedef struct {
  struct af_policy *p;
  char kind[16];          /* af_policy_kind_names (freeze.h) or "custom" */
  char label[64];         /* for file names and tables: "static-k5", "adaptive-p50", ... */
  int frozen;             /* static */
  double percentile;      /* adaptive */
  int max_depth;          /* adaptive; -1: none */
  int signed_ratio;       /* adaptive: the paper's signed change ratio */
  double t0;              /* freezeout: af_freezeout_opts */
  int cubic, scaled;      /* freezeout */
  int intervals;          /* 0: not given (the run's setting applies) */
  long interval_steps;    /* 0: not given */
  struct af_lua_custom *custom;  /* custom policies: the Lua function and state */
} af_lua_policy;
af_lua_policy *af_lua_check_policy(lua_State *L, int idx);
void af_lua_policy_bind(af_lua_policy *pol, lua_State *L);

/* ---- helpers shared by the binding files (lua_util.c) ---- */

/* Raise a Lua error "<what>: <af_last_error()>" at the caller's line. Never returns. */
int af_lua_core_error(lua_State *L, const char *what);
/* A message handler for lua_pcall: the message (or its __tostring) plus a traceback. */
int af_lua_traceback(lua_State *L);
/* Push the running binary's path (af.bin, arg[-1]); "autofreeze" when unknown. */
void af_lua_push_bin(lua_State *L);

/* Set field k of the table on top of the stack. */
void af_lua_set_int(lua_State *L, const char *k, lua_Integer v);
void af_lua_set_num(lua_State *L, const char *k, double v);
void af_lua_set_str(lua_State *L, const char *k, const char *v);
void af_lua_set_bool(lua_State *L, const char *k, int v);
/* Push {v[0], ..., v[n-1]}; as_int: finite values as integers. */
void af_lua_push_array(lua_State *L, const double *v, size_t n, int as_int);
/* Push "a, b, c" from a NULL-terminated list and return it (for messages). */
const char *af_lua_push_joined(lua_State *L, const char *const *list);

/* Options tables. Errors are Lua errors "<what>: <key> expects ..., found ..." and never
 * return. A getter returns 1 and sets *v when the key is present (not nil), else 0 and leaves
 * *v alone. Strings stay alive as long as the table holds them. */
/* The options table at argument idx; nil or absent becomes a new empty table there. */
int af_lua_opt_table(lua_State *L, int idx);
/* Reject keys that are not strings or not in known (NULL-terminated), naming the key. */
void af_lua_check_keys(lua_State *L, int t, const char *what, const char *const *known);
int af_lua_get_int(lua_State *L, int t, const char *key, const char *what, lua_Integer lo, lua_Integer hi,
                   lua_Integer *v);   /* hi = LUA_MAXINTEGER: no upper bound (INT_MAX for int fields) */
int af_lua_get_num(lua_State *L, int t, const char *key, const char *what, double lo, double hi,
                   double *v);        /* finite, in [lo, hi]; hi = HUGE_VAL: no upper bound */
int af_lua_get_bool(lua_State *L, int t, const char *key, const char *what, int *v);
const char *af_lua_get_str(lua_State *L, int t, const char *key, const char *what);  /* NULL: absent */

#endif
