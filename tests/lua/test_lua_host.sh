# `autofreeze run`: usage, --set values and arguments, errors with file:line and a traceback
# (exit 1), core errors as Lua errors, unknown af.train keys, policy constructor errors.
. "$(dirname "$0")/lib.sh"

expect_rc 0 "run --help" -- "$BIN" run --help
expect_in "$TMP/out" "usage: autofreeze run SCRIPT.lua" "help text"
expect_rc 2 "run without a script" -- "$BIN" run
expect_in "$TMP/err" "expected a script" "no-script message"
expect_rc 2 "--set without =" -- "$BIN" run --set novalue x.lua
expect_in "$TMP/err" "--set expects key=value" "bad --set message"
expect_rc 2 "unknown option" -- "$BIN" run --bogus x.lua
expect_rc 1 "missing script file" -- "$BIN" run "$TMP/nope.lua"
expect_in "$TMP/err" "nope.lua" "missing script named"

# --set values (typed) and arguments
cat >"$TMP/set.lua" <<'LUA'
local af = require "autofreeze"
local s = af.settings
assert(math.type(s.n) == "integer" and s.n == 12, "n")
assert(math.type(s.lr) == "float" and s.lr == 2e-5, "lr")
assert(s.flag == true and s.off == false, "booleans")
assert(s.name == "hello world" and s.eq == "a=b", "strings")
assert(arg[0]:match("set%.lua$") and arg[1] == "one" and arg[2] == "--two" and select("#", ...) == 2, "args")
assert(type(af.bin) == "string" and af.bin:match("autofreeze"), "af.bin")
print("settings ok", ...)
LUA
expect_rc 0 "--set values" -- "$BIN" run --set n=12 "$TMP/set.lua" --set lr=2e-5 --set flag=true --set off=false \
  --set "name=hello world" --set eq=a=b one -- --two
expect_in "$TMP/out" "settings ok	one	--two" "script output"

# a runtime error: file:line, message, traceback, exit 1
cat >"$TMP/err.lua" <<'LUA'
local function inner() error("deliberate failure") end
local function outer() inner() end
outer()
LUA
expect_rc 1 "script error" -- "$BIN" run "$TMP/err.lua"
expect_in "$TMP/err" "err\.lua:1: deliberate failure" "error with file:line"
expect_in "$TMP/err" "stack traceback:" "traceback"
expect_in "$TMP/err" "err\.lua:3: in main chunk" "traceback reaches the main chunk"
# a syntax error
printf 'local x = = 1\n' >"$TMP/syntax.lua"
expect_rc 1 "syntax error" -- "$BIN" run "$TMP/syntax.lua"
expect_in "$TMP/err" "syntax\.lua:1:" "syntax error position"
# a non-string error object
printf 'error({})\n' >"$TMP/obj.lua"
expect_rc 1 "table error" -- "$BIN" run "$TMP/obj.lua"
expect_in "$TMP/err" "error object is a table value" "table error message"
# os.exit passes through
printf 'os.exit(3)\n' >"$TMP/exit.lua"
expect_rc 3 "os.exit(3)" -- "$BIN" run "$TMP/exit.lua"

# core errors become Lua errors with the core's message, at the caller's line
cat >"$TMP/core.lua" <<'LUA'
local af = require "autofreeze"
local ok, e = pcall(af.model.load, "/nonexistent/model")
assert(not ok and e:match("af%.model%.load: .*/nonexistent/model"), e)
ok, e = pcall(af.task.glue, "nosuchtask", ".")
assert(not ok and e:match("af%.task%.glue: .*nosuchtask"), e)
ok, e = pcall(af.task.default, "/nonexistent/data")
assert(not ok and e:match("build%-default"), e)
ok, e = pcall(af.results.read, "/nonexistent.h5")
assert(not ok and e:match("af%.results%.read"), e)
assert(af.results.status("/nonexistent.h5") == nil)
-- unknown train key, named
ok, e = pcall(af.train, {model = "m", task = "sst2", data = ".", out = "x.h5", epocs = 3})
assert(not ok and e:match("unknown option 'epocs'"), e)
ok, e = pcall(af.train, {model = "m", task = "sst2", data = ".", out = "x.h5", cache = "ram"})
assert(not ok and e:match("cache expects one of off, memory, disk, auto"), e)
ok, e = pcall(af.train, {model = "m", task = "sst2", data = ".", out = "x.h5", epochs = 2.5})
assert(not ok and e:match("epochs expects an integer"), e)
-- policy constructors
ok, e = pcall(af.policy.static, {})
assert(not ok and e:match("frozen = K"), e)
ok, e = pcall(af.policy.adaptive, {percentile = 120})
assert(not ok and e:match("percentile expects a number in %[0, 100%]"), e)
ok, e = pcall(af.policy.adaptive, {percentil = 50})
assert(not ok and e:match("unknown option 'percentil'"), e)
ok, e = pcall(af.policy.custom, 42)
assert(not ok and e:match("function expected"), e)
-- policies: fields, tostring, __close
do
  local p <close> = af.policy.adaptive{percentile = 30, max_depth = 4, intervals = 8}
  assert(p.name == "adaptive" and p.percentile == 30 and p.max_depth == 4 and p.intervals == 8)
  assert(tostring(p) == "policy adaptive (percentile=30 max_depth=4)", tostring(p))
  P = p
end
assert(P.closed == true, "__close ran")
ok, e = pcall(af.train, {model = "m", task = "sst2", data = ".", out = "x.h5", policy = P})
assert(not ok and e:match("closed"), e)
print("core errors ok")
-- an uncaught core error: exit 1 with the message and the script's line
af.model.load("/nonexistent/model2")
LUA
expect_rc 1 "core errors" -- "$BIN" run "$TMP/core.lua"
expect_in "$TMP/out" "core errors ok" "checks before the uncaught error"
expect_in "$TMP/err" "core\.lua:[0-9]+: af\.model\.load: .*nonexistent/model2" "uncaught core error with file:line"
# task names: af.task.* take exactly the names and spellings `--task` does (the C registry,
# core/data/task.h); kind is the task's family there
mkdir -p "$TMP/empty"
cat >"$TMP/names.lua" <<'LUA'
local af = require "autofreeze"
local dir = arg[1]
local same = {
  {"SST-2", "sst2", "glue"}, {"sts_b", "stsb", "glue"}, {"MNLI", "mnli", "glue"}, {"AG News", "ag_news", "docs"},
  {"agnews", "ag_news", "docs"}, {"Yelp-Full", "yelp_full", "docs"}, {"yelp_polarity", "yelp_polarity", "docs"},
  {"IMDb", "imdb", "docs"},
}
for _, c in ipairs(same) do
  for _, f in ipairs({af.task.open, af.task.glue, af.task.docs}) do
    local t = f(c[1], dir)
    assert(t.name == c[2] and t.kind == c[3], c[1] .. " -> " .. t.name .. " (" .. t.kind .. ")")
  end
end
for _, bad in ipairs({"yelp", "sst3", "ag.news"}) do
  local ok, e = pcall(af.task.open, bad, dir)
  assert(not ok and e:find("af.task.open: unknown task '" .. bad .. "': expected one of cola, sst2,", 1, true), e)
end
print("task names ok")
LUA
expect_rc 0 "task names" -- "$BIN" run "$TMP/names.lua" "$TMP/empty"
expect_in "$TMP/out" "task names ok" "task names checked"
# the CLI gives the same answer for a name Lua rejects
expect_rc 2 "cli unknown task" -- "$BIN" data stats --task yelp --data "$TMP/empty" --model "$TMP/empty"
expect_in "$TMP/err" "unknown task 'yelp': expected one of cola, sst2," "cli unknown task message"

finish test_lua_host
