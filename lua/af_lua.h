/* What the Lua host (lua/host.c) and the bindings (lua/bind_*.c) share: the module opener,
 * the registry keys and small helpers for turning core failures into Lua errors. The Lua
 * API itself is documented in docs/lua-api.md. */
#ifndef AF_LUA_H
#define AF_LUA_H
#include <lauxlib.h>
#include <lua.h>
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

/* Raise a Lua error "<what>: <af_last_error()>" at the caller's line. Never returns. */
int af_lua_core_error(lua_State *L, const char *what);
/* A message handler for lua_pcall: the message (or its __tostring) plus a traceback. */
int af_lua_traceback(lua_State *L);

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
  char kind[16];          /* "none", "static", "adaptive", "custom" */
  char label[64];         /* for file names and tables: "static-k5", "adaptive-p50", ... */
  int frozen;             /* static */
  double percentile;      /* adaptive */
  int max_depth;          /* adaptive; -1: none */
  int signed_ratio;       /* adaptive: the paper's signed change ratio */
  int intervals;          /* 0: not given (the run's setting applies) */
  long interval_steps;    /* 0: not given */
  struct af_lua_custom *custom;  /* custom policies: the Lua function and state */
} af_lua_policy;
af_lua_policy *af_lua_check_policy(lua_State *L, int idx);
void af_lua_policy_bind(af_lua_policy *pol, lua_State *L);

/* Path of the running executable (/proc/self/exe), "" when unknown. */
const char *af_lua_exe_path(void);
/* mkdir -p; AF_ERR_IO naming the folder on failure. */
af_status af_lua_mkdirs(const char *dir);

#endif
