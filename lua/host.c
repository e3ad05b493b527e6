/* `autofreeze run SCRIPT.lua [--set key=value ...] [cluster flags] [args...]`: the Lua 5.4
 * host. It opens the standard libraries, preloads the `autofreeze` module, hands `--set`
 * values to the module as af.settings (numbers and booleans converted) and the other
 * arguments to the script as `arg` and `...`, and runs the chunk under lua_pcall with a
 * traceback handler, as lua.c does: an error anywhere prints file:line, the message and the
 * traceback, exit 1. The cluster flags (--list-cells, --cell, --slurm..., --report) become
 * af.cluster, which the script's af.sweep acts on (lua/autofreeze/cluster.lua,
 * docs/cluster.md); under them af.train runs only inside a sweep cell. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include "core/cli/cli.h"
#include "lua/af_lua.h"

#define AF_LUA_CLUSTER "autofreeze.cluster" /* registry: the af.cluster table, when a flag asks */

static void usage(FILE *f) {
  fprintf(f,
"usage: autofreeze run SCRIPT.lua [--set key=value ...] [CLUSTER FLAG] [--] [args...]\n"
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
"cluster flags: they act on the script's af.sweep (docs/cluster.md); one of\n"
"  --list-cells      print the sweep's cells (index, task, policy, seed, results file,\n"
"                    done or not) and stop\n"
"  --cell I          run cell I only (1-based, as --list-cells numbers them) and stop\n"
"  --slurm           write an sbatch script for a job array over the cells not yet\n"
"                    complete (array index = cell index), submit it and print the job id\n"
"    --slurm-opt OPT           one more '#SBATCH OPT' line (repeatable), e.g. --time=2:00:00\n"
"    --slurm-max-parallel K    at most K array tasks at once (--array=...%%K)\n"
"    --slurm-ntasks N          N ranks per cell, launched with srun\n"
"    --slurm-dry-run           only write the script (implies --slurm)\n"
"  --report          run nothing: the script goes on with the finished cells' rows (its\n"
"                    tables and figures), and the cells still missing or failed are named\n"
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

/* The cluster flags, as given (docs/cluster.md). mode NULL: none. */
typedef struct {
  const char *mode;        /* "list", "cell", "slurm", "report" */
  const char *mode_flag;   /* the flag that chose it, for messages */
  long cell;               /* --cell */
  const char **slurm_opts; /* --slurm-opt, in order */
  int nslurm_opts;
  long max_parallel;       /* --slurm-max-parallel; 0: not given */
  long ntasks;             /* --slurm-ntasks; 0: not given */
  int dry_run;             /* --slurm-dry-run */
  const char *slurm_flag;  /* the first --slurm-* option, for "needs --slurm" */
} cluster_args;

typedef struct {
  const char *script;
  const char **args;
  int nargs;
  const char **sets;
  int nsets;
  cluster_args cl;
} run_args;

/* af.cluster: {mode, cell, slurm = {opts, max_parallel, ntasks, dry_run}, script, sets, args},
 * in the registry for the module loader below. */
static void push_cluster(lua_State *L, const run_args *ra) {
  const cluster_args *c = &ra->cl;
  lua_createtable(L, 0, 8);
  lua_pushstring(L, c->mode);
  lua_setfield(L, -2, "mode");
  if (c->cell > 0) {
    lua_pushinteger(L, c->cell);
    lua_setfield(L, -2, "cell");
  }
  lua_createtable(L, 0, 4);
  lua_createtable(L, c->nslurm_opts, 0);
  for (int i = 0; i < c->nslurm_opts; i++) {
    lua_pushstring(L, c->slurm_opts[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "opts");
  if (c->max_parallel > 0) {
    lua_pushinteger(L, c->max_parallel);
    lua_setfield(L, -2, "max_parallel");
  }
  lua_pushinteger(L, c->ntasks > 0 ? c->ntasks : 1);
  lua_setfield(L, -2, "ntasks");
  lua_pushboolean(L, c->dry_run);
  lua_setfield(L, -2, "dry_run");
  lua_setfield(L, -2, "slurm");
  lua_pushstring(L, ra->script);
  lua_setfield(L, -2, "script");
  lua_createtable(L, ra->nsets, 0);  /* "key=value", as given: the array tasks get the same */
  for (int i = 0; i < ra->nsets; i++) {
    lua_pushstring(L, ra->sets[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "sets");
  lua_createtable(L, ra->nargs, 0);
  for (int i = 0; i < ra->nargs; i++) {
    lua_pushstring(L, ra->args[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "args");
  lua_setfield(L, LUA_REGISTRYINDEX, AF_LUA_CLUSTER);
}

/* af.train under a cluster flag: only while af.sweep runs a cell (it sets af.cluster.in_cell),
 * so that `--slurm` on a script that trains outside its sweep stops before training here. */
static int guarded_train(lua_State *L) {
  lua_getfield(L, lua_upvalueindex(1), "in_cell");
  int ok = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!ok) {
    lua_getfield(L, lua_upvalueindex(1), "mode");
    return luaL_error(L, "af.train: under --%s the script runs only af.sweep cells, and this af.train "
                      "is outside af.sweep (run the script without the flag)",
                      !strcmp(lua_tostring(L, -1), "list") ? "list-cells" : lua_tostring(L, -1));
  }
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* package.preload.autofreeze: the module, plus af.cluster and the guard on af.train when a
 * cluster flag was given. */
static int open_module(lua_State *L) {
  lua_pushcfunction(L, luaopen_autofreeze);
  lua_call(L, 0, 1);
  int mod = lua_gettop(L);
  if (lua_getfield(L, LUA_REGISTRYINDEX, AF_LUA_CLUSTER) == LUA_TTABLE) {
    lua_pushvalue(L, -1);
    lua_setfield(L, mod, "cluster");
    lua_getfield(L, mod, "train");
    lua_pushcclosure(L, guarded_train, 2);  /* upvalues: af.cluster, the real af.train */
    lua_setfield(L, mod, "train");
  } else {
    lua_pop(L, 1);
  }
  lua_settop(L, mod);
  return 1;
}

/* After the script ran to its end under a cluster flag: an error when no af.sweep took the
 * flag (a script without a sweep; --report is the one mode that lets the script go on). */
static int check_cluster_handled(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, AF_LUA_CLUSTER) != LUA_TTABLE) return 1;
  lua_getfield(L, -1, "handled");
  int ok = lua_toboolean(L, -1);
  lua_pop(L, 2);
  return ok;
}

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
  if (ra->cl.mode) push_cluster(L, ra);
  /* package.preload.autofreeze */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open_module);
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
  if (ra->cl.mode && !check_cluster_handled(L))
    return luaL_error(L, "%s: %s called no af.sweep; the cluster flags act on a sweep (docs/cluster.md)",
                      ra->cl.mode_flag, ra->script);
  lua_pushboolean(L, 1);
  return 1;
}

/* A positive integer option value; 0 (after a message) when it is not one. */
static long positive(const char *flag, const char *v) {
  char *end = NULL;
  errno = 0;
  long n = v ? strtol(v, &end, 10) : 0;
  if (!v || !*v || *end || errno || n < 1) {
    fprintf(stderr, "autofreeze run: %s expects a positive integer, found '%s' (see --help)\n", flag, v ? v : "");
    return 0;
  }
  return n;
}

static int set_mode(cluster_args *c, const char *mode, const char *flag) {
  if (c->mode && strcmp(c->mode, mode)) {
    fprintf(stderr, "autofreeze run: %s and %s do not go together (one cluster flag at a time; see --help)\n",
            c->mode_flag, flag);
    return 0;
  }
  c->mode = mode;
  c->mode_flag = flag;
  return 1;
}

/* One cluster flag at argv[*i] (its value, if any, in the same or the next argument).
 * Returns 1 when taken, 0 when argv[*i] is not a cluster flag, -1 on a usage error. */
static int cluster_flag(cluster_args *c, int argc, char **argv, int *i) {
  static const char *const with_value[] = {"--cell", "--slurm-opt", "--slurm-max-parallel", "--slurm-ntasks", NULL};
  const char *a = argv[*i], *v = NULL;
  for (int k = 0; with_value[k]; k++) {
    size_t n = strlen(with_value[k]);
    if (strncmp(a, with_value[k], n) || (a[n] && a[n] != '=')) continue;
    v = a[n] == '=' ? a + n + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
    if (!v) {
      fprintf(stderr, "autofreeze run: %s expects a value (see --help)\n", with_value[k]);
      return -1;
    }
    if (k == 0) return set_mode(c, "cell", "--cell") && (c->cell = positive("--cell", v)) > 0 ? 1 : -1;
    if (!c->slurm_flag) c->slurm_flag = with_value[k];
    if (k == 1) {
      if (v[0] != '-') {
        fprintf(stderr, "autofreeze run: --slurm-opt expects one sbatch option such as --time=1:00:00, found '%s'\n", v);
        return -1;
      }
      c->slurm_opts[c->nslurm_opts++] = v;
      return 1;
    }
    long n2 = positive(with_value[k], v);
    if (k == 2) c->max_parallel = n2;
    else c->ntasks = n2;
    return n2 > 0 ? 1 : -1;
  }
  if (!strcmp(a, "--list-cells")) return set_mode(c, "list", a) ? 1 : -1;
  if (!strcmp(a, "--report")) return set_mode(c, "report", a) ? 1 : -1;
  if (!strcmp(a, "--slurm")) return set_mode(c, "slurm", a) ? 1 : -1;
  if (!strcmp(a, "--slurm-dry-run")) {
    c->dry_run = 1;
    if (!c->slurm_flag) c->slurm_flag = a;
    if (c->mode && !strcmp(c->mode, "slurm")) return 1;
    return set_mode(c, "slurm", a) ? 1 : -1;
  }
  return 0;
}

/* argv into ra; returns -1 to go on, else the exit code (help, usage error). */
static int parse_args(int argc, char **argv, run_args *ra) {
  int only_args = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (only_args) {
      ra->args[ra->nargs++] = a;
      continue;
    }
    if (!ra->script && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
      usage(stdout);
      return AF_EXIT_OK;
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
        return AF_EXIT_USAGE;
      }
      ra->sets[ra->nsets++] = kv;
      continue;
    }
    int taken = cluster_flag(&ra->cl, argc, argv, &i);
    if (taken < 0) return AF_EXIT_USAGE;
    if (taken) continue;
    if (!ra->script) {
      if (a[0] == '-' && a[1]) {
        fprintf(stderr, "autofreeze run: unknown option '%s' (see --help)\n", a);
        return AF_EXIT_USAGE;
      }
      ra->script = a;
      continue;
    }
    ra->args[ra->nargs++] = a;
  }
  if (!ra->script) {
    fprintf(stderr, "autofreeze run: expected a script (SCRIPT.lua), found none (see --help)\n");
    return AF_EXIT_USAGE;
  }
  if (ra->cl.slurm_flag && (!ra->cl.mode || strcmp(ra->cl.mode, "slurm"))) {
    fprintf(stderr, "autofreeze run: %s needs --slurm (see --help)\n", ra->cl.slurm_flag);
    return AF_EXIT_USAGE;
  }
  return -1;
}

static int run_script(run_args *ra) {
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "autofreeze run: cannot create the Lua state (out of memory)\n");
    return AF_EXIT_RUNTIME;
  }
  int rc = AF_EXIT_OK;
  lua_pushcfunction(L, pmain);
  lua_pushlightuserdata(L, ra);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fflush(stdout);
    fprintf(stderr, "autofreeze run: %s\n", msg ? msg : "(error object is not a string)");
    rc = AF_EXIT_RUNTIME;
  }
  fflush(stdout);
  lua_close(L);  /* runs __gc/__close of what the script left open (policies) */
  return rc;
}

int af_cli_run(int argc, char **argv) {
  run_args ra = {0};
  ra.args = calloc((size_t)argc + 1, sizeof *ra.args);
  ra.sets = calloc((size_t)argc + 1, sizeof *ra.sets);
  ra.cl.slurm_opts = calloc((size_t)argc + 1, sizeof *ra.cl.slurm_opts);
  int rc = AF_EXIT_RUNTIME;
  if (!ra.args || !ra.sets || !ra.cl.slurm_opts) fprintf(stderr, "autofreeze run: out of memory\n");
  else if ((rc = parse_args(argc, argv, &ra)) < 0) rc = run_script(&ra);
  free(ra.args);
  free(ra.sets);
  free(ra.cl.slurm_opts);
  return rc;
}
