# Custom Lua policies on the tiny model: the statistics a policy sees, a working custom
# freeze, and every bad answer (lower, too high, not an integer, not a number, an error in
# the function) stopping the run with a clear error that names the policy.
. "$(dirname "$0")/lib.sh"
make_tiny
cat >"$TMP/pol.lua" <<'LUA'
local af = require "autofreeze"
local dir = arg[1]
local task = af.task.glue("sst2", dir .. "/tiny")
local function run(policy, name)
  return af.train{model = os.getenv("AF_SOURCE_DIR") .. "/tests/fixtures/bert_tiny/cls", task = task,
                  policy = policy, out = dir .. "/" .. name .. ".h5", epochs = 1, batch = 16, seq = 12,
                  lr = 1e-3, intervals = 5, threads = 1, quiet = true, checkpoints = false}
end

-- a working policy: checks what it is given, freezes one more layer each interval
local seen = {}
local grow = af.policy.custom(function(s)
  assert(s.layers == 3 and #s.l1 == 3 and #s.l2 == 3 and #s.ratio == 3, "arrays of L entries")
  assert(math.type(s.depth) == "integer" and s.max_depth == 2 and s.interval >= 1 and s.step > 0)
  for l = 1, s.depth do assert(s.l1[l] == 0 and s.ratio[l] ~= s.ratio[l], "frozen: 0 and NaN") end
  for l = s.depth + 1, 3 do assert(s.l1[l] > 0 and s.l2[l] > 0, "trainable: positive scores") end
  seen[#seen + 1] = s.depth
  return math.min(s.depth + 1, s.max_depth)
end, {name = "grow", knobs = {step = 1}})
assert(grow.name == "grow" and grow.knobs == "step=1")
local sum = run(grow, "grow")
assert(sum.status == "complete" and sum.final_depth == 2, "final depth " .. tostring(sum.final_depth))
assert(#seen == 4 and seen[1] == 0 and seen[2] == 1 and seen[3] == 2, "calls " .. table.concat(seen, ","))
local r = af.results.read(dir .. "/grow.h5")
assert(r.config.policy == "grow" and r.config.policy_knobs == "step=1")
assert(r.intervals.depth_after[#r.intervals.depth_after] == 2)
-- the same policy object serves a second run
assert(run(grow, "grow2").final_depth == 2)

local function expect_error(fn, pattern, what)
  local p = af.policy.custom(fn, {name = "bad"})
  local ok, e = pcall(run, p, "bad")
  assert(not ok, what .. ": the run did not fail")
  if not e:match(pattern) then error(what .. ": unexpected message: " .. e, 0) end
  assert(e:match("policy 'bad'"), what .. ": the policy is not named: " .. e)
  assert(af.results.status(dir .. "/bad.h5") == "failed", what .. ": results status")
  print("ok: " .. what .. ": " .. e)
end
expect_error(function(s) return s.depth + 0.5 end, "expected an integer in %[0, 2%]", "not an integer")
expect_error(function(s) return 5 end, "returned frozen depth 5; expected an integer in %[0, 2%]", "too high")
expect_error(function(s) return -1 end, "returned frozen depth %-1", "negative")
expect_error(function(s) return 0/0 end, "returned frozen depth %-?nan", "NaN")
expect_error(function(s) return nil end, "returned a nil value; expected the new frozen depth", "nil")
expect_error(function(s) return "1" end, "returned the string '1'", "a string")
expect_error(function(s) error("my policy broke") end, "raised an error: .*pol%.lua:%d+: my policy broke", "error()")
-- lower than the current depth: start frozen at 1 and go back to 0
expect_error(function(s) return 0 end, "returned frozen depth 0; expected an integer in %[1, 2%]", "lower")
LUA
# the last expect_error needs initial_depth = 1
sed -i 's|local p = af.policy.custom(fn, {name = "bad"})|local p = af.policy.custom(fn, {name = "bad", initial_depth = what == "lower" and 1 or 0})|' "$TMP/pol.lua"
expect_rc 0 "custom policies" -- "$BIN" run "$TMP/pol.lua" "$TMP"
cat "$TMP/out"
finish test_lua_policy
