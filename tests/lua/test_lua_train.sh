# End to end on the tiny model (tests/fixtures/bert_tiny/cls) and a generated learnable
# two-class task: af.train returns a summary and learns; af.results.read reads the file back;
# af.sweep expands the grid and, run again, skips every complete run (and reruns one whose
# file was removed or left incomplete); af.plot and `autofreeze plot` write valid PNG and SVG
# figures and the summary tables; a failing gnuplot is a clear error (exit 1).
. "$(dirname "$0")/lib.sh"
make_tiny
cat >"$TMP/train.lua" <<'LUA'
local af = require "autofreeze"
local dir = arg[1]
local model = af.model.load(os.getenv("AF_SOURCE_DIR") .. "/tests/fixtures/bert_tiny/cls")
assert(model.layers == 3 and model.hidden == 32 and model.heads == 4 and model.vocab == 64, tostring(model))
local task = af.task.glue("sst2", dir .. "/tiny")
assert(task.name == "sst2" and task.num_labels == 2 and task.metric == "accuracy", tostring(task))
local s = af.train{model = model, task = task, policy = af.policy.adaptive{percentile = 50}, out = dir .. "/one/run.h5",
                   epochs = 3, batch = 16, seq = 12, lr = 1e-3, intervals = 6, seed = 3, threads = 1, quiet = true,
                   checkpoints = false, max_train_rows = 320, max_eval_rows = 80}
for _, k in ipairs{"status", "steps", "final_depth", "total_time", "metric", "best", "final", "best_step",
                   "time_to_best", "final_loss", "metrics"} do
  assert(s[k] ~= nil, "summary lacks " .. k)
end
assert(s.status == "complete" and s.steps == 60 and s.metric == "accuracy", s.status .. " " .. s.steps)
assert(s.best >= 0.9, "the tiny task is learnable: best accuracy " .. s.best)
assert(s.metrics.accuracy == s.final)
local r = af.results.read(dir .. "/one/run.h5")
assert(r.summary.status == "complete" and r.layers == 3)
assert(r.config.seed == 3 and r.config.policy == "adaptive" and r.config.train_examples == 320)
assert(#r.steps.step == 60 and r.steps.step[60] == 60 and #r.steps.loss == 60)
assert(#r.intervals.l1 == #r.intervals.step and #r.intervals.l1[1] == 3)
-- 2-D datasets come as rows by their rank: lr_factor too (no decay, no FreezeOut: all 1)
assert(#r.intervals.lr_factor == #r.intervals.step and r.intervals.lr_factor[1][3] == 1)
assert(#r.intervals.val_metric == #r.intervals.step and type(r.intervals.val_metric[1]) == "number")
assert(#r.evals.step >= 1 and r.evals.accuracy[#r.evals.accuracy] == s.final)
assert(math.abs(r.summary.best_value - s.best) < 1e-12)
-- a generic task: the same rows as a CSV with other column names and a label list
os.execute("mkdir -p '" .. dir .. "/gen'")
for _, split in ipairs{"train", "dev"} do
  local out = assert(io.open(dir .. "/gen/" .. split .. ".csv", "w"))
  out:write("verdict,text\n")
  local first = true
  for line in io.lines(dir .. "/tiny/" .. split .. ".tsv") do
    if not first then
      local text, y = line:match("^(.*)\t(%d)$")
      out:write(y == "1" and "yes" or "no", ",\"", text, "\"\n")
    end
    first = false
  end
  out:close()
end
local gen = af.task.generic{dir = dir .. "/gen", text_cols = "text", label_col = "verdict", labels = {"no", "yes"}}
local g = af.train{model = model, task = gen, out = dir .. "/gen/run.h5", epochs = 3, batch = 16, seq = 12, lr = 1e-3,
                   seed = 3, threads = 1, quiet = true, checkpoints = false, max_train_rows = 320, max_eval_rows = 80}
assert(g.status == "complete" and g.best >= 0.9, "generic task: best accuracy " .. tostring(g.best))
-- frozen_dropout reaches the run (recorded in its config) and is refused with a cache
local fd = af.train{model = model, task = task, policy = af.policy.static{frozen = 1}, out = dir .. "/fd/run.h5",
                    epochs = 1, batch = 16, seq = 12, threads = 1, quiet = true, checkpoints = false,
                    max_train_rows = 64, max_eval_rows = 16, frozen_dropout = true}
assert(fd.status == "complete" and af.results.read(dir .. "/fd/run.h5").config.frozen_dropout == 1)
local ok, err = pcall(af.train, {model = model, task = task, policy = af.policy.static{frozen = 1},
                      out = dir .. "/fd/cached.h5", epochs = 1, seq = 12, threads = 1, quiet = true, checkpoints = false,
                      max_train_rows = 64, frozen_dropout = true, cache = "memory"})
assert(not ok and tostring(err):find("needs --cache off", 1, true), tostring(err))
print("train ok", s.best, s.final_depth, g.best)
LUA
expect_rc 0 "af.train on the tiny model" -- "$BIN" run "$TMP/train.lua" "$TMP"
expect_in "$TMP/out" "train ok" "train script output"

# the sweep, and its resume
cat >"$TMP/sweep.lua" <<'LUA'
local af = require "autofreeze"
local dir = arg[1]
local rows = af.sweep{
  tasks = {af.task.glue("sst2", dir .. "/tiny")},
  policies = {af.policy.none(), af.policy.static{frozen = 2},
              {policy = af.policy.adaptive{}, label = "adaptive+cache", cache = "memory"}},
  seeds = {1, 2},
  out_dir = dir .. "/sweep",
  train = {model = os.getenv("AF_SOURCE_DIR") .. "/tests/fixtures/bert_tiny/cls", epochs = 2, batch = 16, seq = 12,
           lr = tonumber(arg[2]) or 1e-3, intervals = 4, threads = 1, quiet = true, checkpoints = false,
           max_train_rows = 160, max_eval_rows = 40},
}
assert(#rows == 6)
local n = {}
for _, r in ipairs(rows) do
  n[r.state] = (n[r.state] or 0) + 1
  assert(r.status == "complete" and r.best and r.train_time, r.id)
  if r.policy == "none" then assert(math.abs(r.speedup - 1) < 1e-12) else assert(r.speedup > 0) end
end
print(("states ran=%d skipped=%d"):format(n.ran or 0, n.skipped or 0))
af.plot(rows, dir .. "/plots")
LUA
expect_rc 0 "sweep, first time" -- "$BIN" run "$TMP/sweep.lua" "$TMP"
expect_in "$TMP/out" "states ran=6 skipped=0" "first sweep runs everything"
expect_in "$TMP/out" "\| sst2-static-k2-s2 +\| sst2 +\| static-k2 " "sweep table"
expect_rc 0 "sweep, again" -- "$BIN" run "$TMP/sweep.lua" "$TMP"
expect_in "$TMP/out" "states ran=0 skipped=6" "second sweep skips complete runs"
expect_in "$TMP/out" "sst2-none-s1: complete, skipped" "skip message"
# an interrupted run (status running) and a missing one are run again
rm -f "$TMP/sweep/sst2-none-s2.h5"
cat >"$TMP/mark.lua" <<'LUA'
-- leave a failed run's file in place of a complete one (a custom policy that errors)
local af = require "autofreeze"
local out = arg[1] .. "/sweep/sst2-static-k2-s1.h5"
assert(af.results.status(out) == "complete")
local bad = af.policy.custom(function() error("stop here") end, {name = "broken"})
local ok = pcall(af.train, {model = os.getenv("AF_SOURCE_DIR") .. "/tests/fixtures/bert_tiny/cls",
  task = af.task.glue("sst2", arg[1] .. "/tiny"), policy = bad, out = out, epochs = 1, batch = 16, seq = 12,
  intervals = 4, threads = 1, quiet = true, checkpoints = false, max_train_rows = 160, max_eval_rows = 40})
assert(not ok and af.results.status(out) == "failed")
LUA
expect_rc 0 "a failed run's file" -- "$BIN" run "$TMP/mark.lua" "$TMP"
expect_rc 0 "sweep, resumed" -- "$BIN" run "$TMP/sweep.lua" "$TMP"
expect_in "$TMP/out" "states ran=2 skipped=4" "resume reruns the missing and the failed run"
expect_in "$TMP/out" "sst2-static-k2-s1 +\(previous file: failed\)" "failed file named"
expect_in "$TMP/out" "sst2-none-s2$" "missing file rerun"

# a signal ends the sweep even under continue_on_error: the policy of the first cell sends
# this process SIGTERM at its first decision; that run stops resumable and no other starts
cat >"$TMP/sigsweep.lua" <<'LUA'
local af = require "autofreeze"
local dir = arg[1]
local f = assert(io.open("/proc/self/stat"))
local pid = f:read("n")
f:close()
local term = af.policy.custom(function(s)
  os.execute("kill -TERM " .. pid)
  return s.depth
end, {name = "term"})
local ok, err = pcall(af.sweep, {
  tasks = {af.task.glue("sst2", dir .. "/tiny")}, policies = {term, af.policy.none()}, seeds = {1},
  out_dir = dir .. "/sigsweep", continue_on_error = true,
  train = {model = os.getenv("AF_SOURCE_DIR") .. "/tests/fixtures/bert_tiny/cls", epochs = 2, batch = 16, seq = 12,
           intervals = 4, threads = 1, quiet = true, max_train_rows = 160, max_eval_rows = 40},
})
assert(not ok and tostring(err):find("interrupted by signal 15", 1, true), tostring(err))
assert(af.results.status(dir .. "/sigsweep/sst2-term-s1.h5") == "interrupted")
assert(not af.exists(dir .. "/sigsweep/sst2-none-s1.h5"), "the next cell started after the signal")
print("signal ends the sweep")
LUA
expect_rc 0 "a signal ends a continue_on_error sweep" -- "$BIN" run "$TMP/sigsweep.lua" "$TMP"
expect_in "$TMP/out" "signal ends the sweep" "sweep stopped by the signal"

# changed settings (another lr): every run again, and back: every run again
expect_rc 0 "sweep, other lr" -- "$BIN" run "$TMP/sweep.lua" "$TMP" 2e-3
expect_in "$TMP/out" "states ran=6 skipped=0" "changed settings rerun"
expect_in "$TMP/out" "settings changed" "changed settings named"
[ -s "$TMP/sweep/sst2-none-s1.h5.settings" ] || fail "no OUT.settings next to a results file"
expect_rc 0 "sweep, other lr again" -- "$BIN" run "$TMP/sweep.lua" "$TMP" 2e-3
expect_in "$TMP/out" "states ran=0 skipped=6" "same settings skip"

# the policy as the engine runs it: af.policy_of resolves the engine's defaults (pipe waits
# for learning unless told not to), and a cell finished under another default runs again
cat >"$TMP/policyof.lua" <<'LUA'
local af = require "autofreeze"
local dir = arg[1]
local function knobs(o) local name, k = af.policy_of(o); return name .. "(" .. k .. ")" end
assert(knobs{policy = af.policy.pipe{}} == "pipe(alpha=0.25 freeze_when_learned=0.1)", knobs{policy = af.policy.pipe{}})
assert(knobs{policy = af.policy.pipe{}, freeze_when_learned = 0} == "pipe(alpha=0.25)")
assert(knobs{policy = af.policy.none(), val_rows = 32} == "none(val_rows=32)")
assert(knobs{policy = af.policy.none(), val_rows = "auto"} == "none(val_rows=auto)")
assert(knobs{policy = af.policy.gated{}, val_rows = "auto"} == knobs{policy = af.policy.gated{}})
assert(knobs{policy = af.policy.adaptive{}} == "adaptive(percentile=50)")
assert(knobs{policy = "freezeout"}:find("^freezeout%(.* freeze_when_learned=0%.1%)$"), knobs{policy = "freezeout"})
local ok, err = pcall(af.policy_of, {policy = af.policy.static{frozen = 1}, freeze_when_learned = 0.1})
assert(not ok and tostring(err):find("static", 1, true), tostring(err))
local function sweep()
  local rows = af.sweep{tasks = {af.task.glue("sst2", dir .. "/tiny")}, policies = {af.policy.pipe{}}, seeds = {1},
    out_dir = dir .. "/pipesweep", print = false,
    train = {model = os.getenv("AF_SOURCE_DIR") .. "/tests/fixtures/bert_tiny/cls", epochs = 1, batch = 16, seq = 12,
             intervals = 4, threads = 1, quiet = true, checkpoints = false, max_train_rows = 64, max_eval_rows = 16}}
  return rows[1]
end
local r = sweep()
local cfg = af.results.read(r.out).config
assert(r.state == "ran" and cfg.policy_knobs == "alpha=0.25 freeze_when_learned=0.1", tostring(cfg.policy_knobs))
assert(sweep().state == "skipped")
-- the cell as a sweep from before pipe's default wait wrote it: its settings name the bare policy
local path = r.out .. ".settings"
local f = assert(io.open(path)); local s = f:read("a"); f:close()
local old, n = s:gsub("alpha=0%.25 freeze_when_learned=0%.1", "alpha=0.25")
assert(n == 1, s)
f = assert(io.open(path, "w")); f:write(old); f:close()
assert(sweep().state == "ran", "a cell of another engine default was skipped")
print("policy_of ok")
LUA
expect_rc 0 "af.policy_of and the sweep's engine defaults" -- "$BIN" run "$TMP/policyof.lua" "$TMP"
expect_in "$TMP/out" "policy_of ok" "policy_of script output"

# a cell another process is writing (a second sweep over the same folder, a shell's run):
# busy, left to it, the other cells run; once that process is gone (even by SIGKILL, which
# leaves no claim behind) the cell runs
cat >"$TMP/busy.lua" <<'LUA'
local af = require "autofreeze"
local dir = arg[1]
local sw = af.sweep{tasks = {af.task.glue("sst2", dir .. "/tiny")}, policies = {af.policy.none()}, seeds = {1, 2},
  out_dir = dir .. "/busysweep", run = false,
  train = {model = os.getenv("AF_SOURCE_DIR") .. "/tests/fixtures/bert_tiny/cls", epochs = 1, batch = 16, seq = 12,
           intervals = 4, threads = 1, quiet = true, checkpoints = false, max_train_rows = 64, max_eval_rows = 16}}
if arg[2] == "path" then print(sw[1].out) return end
if arg[2] == "list" then print("writer: " .. tostring(af.writer(sw[1].out))); sw:list() return end
sw:run()
print(("states %s %s"):format(sw[1].state, sw[2].state))
LUA
expect_rc 0 "the busy sweep's first cell" -- "$BIN" run "$TMP/busy.lua" "$TMP" path
cell=$(cat "$TMP/out")
mkdir -p "$(dirname "$cell")"
"$BIN" train --model "$TINY" --task sst2 --data "$TMP/tiny" --out "$cell" --epochs 400 --seq 12 --batch 16 \
  --threads 1 --quiet --no-checkpoints >/dev/null 2>"$TMP/holder.err" &
holder=$!
# the claim's text, written once the lock is held (the file itself exists a moment before)
for _ in $(seq 1 1500); do [ -s "$cell.lock" ] && break; sleep 0.02; done
kill -STOP "$holder"
kill -0 "$holder" 2>/dev/null || fail "the holder run ended early: $(cat "$TMP/holder.err")"
expect_rc 0 "the busy sweep's list" -- "$BIN" run "$TMP/busy.lua" "$TMP" list
expect_in "$TMP/out" "^writer: pid $holder on " "af.writer names the holder"
expect_in "$TMP/out" "\| running now \(pid $holder on .*\) \|" "the list says which cell runs now, and where"
expect_rc 0 "a sweep with a busy cell" -- "$BIN" run "$TMP/busy.lua" "$TMP"
expect_in "$TMP/out" "sst2-none-s1: busy, left to the other run \(pid $holder on " "the busy cell is named with its holder"
expect_in "$TMP/out" "^states busy ran$" "busy cell left, the other ran"
kill -KILL "$holder"
wait "$holder" 2>/dev/null
expect_rc 0 "the list after the holder died" -- "$BIN" run "$TMP/busy.lua" "$TMP" list
expect_in "$TMP/out" "^writer: nil$" "no writer once the holder is gone"
expect_rc 0 "the sweep after the holder died" -- "$BIN" run "$TMP/busy.lua" "$TMP"
expect_in "$TMP/out" "^states ran skipped$" "the cell runs once its holder is gone"

# figures: PNG magic bytes, SVG text, the tables
check_figs() {
  local dir=$1 n=0
  for png in "$dir"/*.png; do
    [ -s "$png" ] || { fail "empty $png"; continue; }
    if [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" != "89504e470d0a1a0a" ]; then fail "not a PNG: $png"; fi
    local svg=${png%.png}.svg
    [ -s "$svg" ] && grep -q "<svg" "$svg" || fail "missing or bad SVG: $svg"
    n=$((n + 1))
  done
  for f in metric_time_sst2 depth_step_sst2 phases_sst2 metric_bars speedup_bars heatmap_sst2-adaptive_cache-s1; do
    [ -s "$dir/$f.png" ] || fail "figure $f.png missing in $dir"
  done
  [ "$n" -ge 11 ] || fail "expected at least 11 figures in $dir, found $n"
  expect_in "$dir/summary.md" "\| sst2-static-k2-s1 \| sst2 \| static \(frozen=2\) \| off \| 1 \| accuracy \|" "summary.md row"
  expect_in "$dir/summary.csv" "^run,file,task,policy,knobs,cache,seed,status,metric,best" "summary.csv header"
  [ "$(wc -l <"$dir/summary.csv")" -eq 7 ] || fail "summary.csv: expected 7 lines"
}
check_figs "$TMP/plots"
expect_rc 0 "autofreeze plot" -- "$BIN" plot "$TMP"/sweep/*.h5 "$TMP/one/run.h5" -o "$TMP/cli-plots"
expect_in "$TMP/out" "wrote [0-9]+ figures" "plot output"
[ -s "$TMP/cli-plots/heatmap_run.png" ] || fail "heatmap of the single run"
rm -f "$TMP"/cli-plots/*.png
expect_rc 0 "autofreeze plot (sweep only)" -- "$BIN" plot "$TMP"/sweep/*.h5 -o "$TMP/cli-plots"
check_figs "$TMP/cli-plots"

# errors: usage, a missing file, gnuplot failing or absent
expect_rc 2 "plot without files" -- "$BIN" plot -o "$TMP/x"
expect_rc 1 "plot of a missing file" -- "$BIN" plot "$TMP/nope.h5" -o "$TMP/x"
expect_in "$TMP/err" "nope.h5" "missing file named"
expect_rc 1 "gnuplot failing" -- env AF_GNUPLOT=false "$BIN" plot "$TMP/one/run.h5" -o "$TMP/x"
expect_in "$TMP/err" "gnuplot failed" "gnuplot failure message"
expect_rc 1 "gnuplot absent" -- env AF_GNUPLOT=no-such-gnuplot "$BIN" plot "$TMP/one/run.h5" -o "$TMP/x"
expect_in "$TMP/err" "not found on PATH" "gnuplot absent message"
mkdir -p "$TMP/badgp" && cp "$SRC"/plots/*.gp "$TMP/badgp/" && echo "plot nosuchvariable" >>"$TMP/badgp/metric_time.gp"
expect_rc 1 "a broken gnuplot script" -- env AF_PLOTS_DIR="$TMP/badgp" "$BIN" plot "$TMP/one/run.h5" -o "$TMP/x"
expect_in "$TMP/err" "undefined variable: nosuchvariable" "gnuplot's message passed on"
finish test_lua_train
