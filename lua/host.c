/* `autofreeze run SCRIPT.lua [--set key=value ...] [args...]`: the Lua 5.4 host. It opens
 * the standard libraries, preloads the `autofreeze` module, hands `--set` values to the
 * module as af.settings (numbers and booleans converted) and the other arguments to the
 * script as `arg` and `...`, and runs the chunk under lua_pcall with a traceback handler,
 * as lua.c does: an error anywhere prints file:line, the message and the traceback, exit 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include "core/cli/cli.h"
#include "lua/af_lua.h"

static void usage(FILE *f) {
  fprintf(f,
"usage: autofreeze run SCRIPT.lua [--set key=value ...] [--] [args...]\n"
"\n"
"Run a Lua 5.4 experiment script with the autofreeze module (local af = require \"autofreeze\").\n"
"\n"
"  --set key=value   a setting for the script, read as af.settings.key; numbers and\n"
"                    true/false are converted, anything else stays a string. Repeatable,\n"
"                    before or after SCRIPT.\n"
"  --                the rest are script arguments even when they start with '-'\n"
"  args              the script's arguments: arg[1], arg[2], ... (arg[0] is SCRIPT) and ...\n"
"  -h, --help        this help (before SCRIPT; after it, -h goes to the script)\n"
"\n"
"environment:\n"
"  AF_LUA_PATH       folder(s) with autofreeze/*.lua helpers (sweep, report), ';'-separated;\n"
"                    default: the source tree's lua/ folder\n"
"  AF_PLOTS_DIR      folder with the gnuplot scripts (default: the source tree's plots/)\n"
"\n"
"exit codes: 0 the script ran to the end, 1 a Lua or core error (message and traceback on\n"
"stderr), 2 usage error; a script may choose its own with os.exit(n).\n"
"The Lua API: docs/lua-api.md. Examples: experiments/*.lua.\n");
}

/* "12" -> integer, "2e-5" -> float, "true"/"false" -> boolean, else the string. */
static void push_setting_value(lua_State *L, const char *v) {
  if (!strcmp(v, "true")) lua_pushboolean(L, 1);
  else if (!strcmp(v, "false")) lua_pushboolean(L, 0);
  else if (*v && lua_stringtonumber(L, v) != 0) { /* pushed */ }
  else lua_pushstring(L, v);
}

typedef struct {
  const char *script;
  const char **args;
  int nargs;
  const char **sets;
  int nsets;
} run_args;

/* The chunk and its arguments run inside this protected function, so that even out-of-memory
 * while building `arg` becomes an ordinary error report. */
static int pmain(lua_State *L) {
  const run_args *ra = lua_touserdata(L, 1);
  luaL_checkversion(L);
  luaL_openlibs(L);
  /* settings */
  lua_createtable(L, 0, ra->nsets);
  for (int i = 0; i < ra->nsets; i++) {
    const char *eq = strchr(ra->sets[i], '=');
    lua_pushlstring(L, ra->sets[i], (size_t)(eq - ra->sets[i]));
    push_setting_value(L, eq + 1);
    lua_settable(L, -3);
  }
  lua_setfield(L, LUA_REGISTRYINDEX, AF_LUA_SETTINGS);
  /* package.preload.autofreeze */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_autofreeze);
  lua_setfield(L, -2, "autofreeze");
  lua_pop(L, 1);
  /* arg: arg[0] = script, arg[1..n] = args; arg[-1] = the binary */
  lua_createtable(L, ra->nargs, 2);
  af_lua_push_bin(L);
  lua_rawseti(L, -2, -1);
  lua_pushstring(L, ra->script);
  lua_rawseti(L, -2, 0);
  for (int i = 0; i < ra->nargs; i++) {
    lua_pushstring(L, ra->args[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");

  lua_pushcfunction(L, af_lua_traceback);
  int msgh = lua_gettop(L);
  int st = luaL_loadfile(L, ra->script);
  if (st == LUA_OK) {
    luaL_checkstack(L, ra->nargs + 1, "too many script arguments");
    for (int i = 0; i < ra->nargs; i++) lua_pushstring(L, ra->args[i]);
    st = lua_pcall(L, ra->nargs, 0, msgh);
  }
  if (st != LUA_OK) {
    /* The message (a string after the handler) is returned to the C side. */
    if (!lua_isstring(L, -1)) lua_pushstring(L, "(error object is not a string)");
    return lua_error(L);
  }
  lua_pushboolean(L, 1);
  return 1;
}

int af_cli_run(int argc, char **argv) {
  run_args ra = {0};
  ra.args = calloc((size_t)argc + 1, sizeof *ra.args);
  ra.sets = calloc((size_t)argc + 1, sizeof *ra.sets);
  if (!ra.args || !ra.sets) {
    free(ra.args);
    free(ra.sets);
    fprintf(stderr, "autofreeze run: out of memory\n");
    return AF_EXIT_RUNTIME;
  }
  int rc = AF_EXIT_OK, only_args = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (only_args) {
      ra.args[ra.nargs++] = a;
      continue;
    }
    if (!ra.script && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
      usage(stdout);
      goto done;
    }
    if (!strcmp(a, "--")) {
      only_args = 1;
      continue;
    }
    if (!strcmp(a, "--set") || !strncmp(a, "--set=", 6)) {
      const char *kv = a[5] == '=' ? a + 6 : (i + 1 < argc ? argv[++i] : NULL);
      const char *eq = kv ? strchr(kv, '=') : NULL;
      if (!kv || !eq || eq == kv) {
        fprintf(stderr, "autofreeze run: --set expects key=value, found '%s' (see --help)\n", kv ? kv : "");
        rc = AF_EXIT_USAGE;
        goto done;
      }
      ra.sets[ra.nsets++] = kv;
      continue;
    }
    if (!ra.script) {
      if (a[0] == '-' && a[1]) {
        fprintf(stderr, "autofreeze run: unknown option '%s' (see --help)\n", a);
        rc = AF_EXIT_USAGE;
        goto done;
      }
      ra.script = a;
      continue;
    }
    ra.args[ra.nargs++] = a;
  }
  if (!ra.script) {
    fprintf(stderr, "autofreeze run: expected a script (SCRIPT.lua), found none (see --help)\n");
    rc = AF_EXIT_USAGE;
    goto done;
  }
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "autofreeze run: cannot create the Lua state (out of memory)\n");
    rc = AF_EXIT_RUNTIME;
    goto done;
  }
  lua_pushcfunction(L, pmain);
  lua_pushlightuserdata(L, &ra);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fflush(stdout);
    fprintf(stderr, "autofreeze run: %s\n", msg ? msg : "(error object is not a string)");
    rc = AF_EXIT_RUNTIME;
  }
  fflush(stdout);
  lua_close(L);  /* runs __gc/__close of what the script left open (policies) */
done:
  free(ra.args);
  free(ra.sets);
  return rc;
}
