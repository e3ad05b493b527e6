#!/usr/bin/env bash
# af.report's paired statistics (the policy lab, docs/policies.md) against values computed by
# hand: t quantiles, the paired mean difference and its 95% interval, the speedup's interval
# on the log scale, time to target ("never" included), one seed (no interval), the tables and
# the Pareto figure (af.plot_script + plots/pareto.gp). No training: the rows are made up.
. "$(dirname "$0")/lib.sh"

cat >"$TMP/stats.lua" <<'LUA'
local af = require "autofreeze"
local R = af.report
local dir = arg[1]
local fails = 0
local function check(ok, what)
  if not ok then fails = fails + 1; io.stderr:write("FAIL: ", what, "\n") end
end
local function near(got, want, tol, what)
  check(type(got) == "number" and math.abs(got - want) <= tol,
        ("%s: got %s, want %.9g (+-%g)"):format(what, tostring(got), want, tol))
end

-- t(0.975; df): the table (R's qt(0.975, df)) and, beyond df 30, Abramowitz & Stegun 26.7.5
near(R.t_quantile(1), 12.706204736, 1e-9, "t(1)")
near(R.t_quantile(2), 4.302652730, 1e-9, "t(2)")
near(R.t_quantile(4), 2.776445105, 1e-9, "t(4)")
near(R.t_quantile(10), 2.228138852, 1e-9, "t(10)")
near(R.t_quantile(30), 2.042272456, 1e-9, "t(30)")
near(R.t_quantile(40), 2.021075390, 1e-7, "t(40)")
near(R.t_quantile(120), 1.979930405, 1e-7, "t(120)")
check(R.t_quantile(0) == nil, "t(0) is undefined")

-- One value: a mean, no interval.
local one = R.mean_interval{-0.42}
check(one.n == 1 and one.mean == -0.42 and one.lo == nil and one.hi == nil and one.sd == nil, "one value: no interval")
check(R.mean_interval{}.mean == nil, "no value: no mean")

-- Three seeds. Full fine-tuning's best 0.80, 0.82, 0.78 (mean 0.80); the policy's 0.79,
-- 0.825, 0.777: differences d = -1.0, +0.5, -0.3 points.
--   mean = -0.8 / 3 = -0.266667
--   sum of squares = 0.733333^2 + 0.766667^2 + 0.033333^2 = 1.126667; s^2 = 0.563333
--   standard error = sqrt(0.563333 / 3) = 13/30 = 0.433333
--   half-width = t(0.975; 2) x 0.433333 = 4.302653 x 0.433333 = 1.864483
--   interval = [-2.131150, +1.597816]; worst seed: seed 1 (-1.0)
-- Training times: full 100, 120, 90 s; the policy 50, 40, 45 s: speedups 2, 3, 2.
--   logs: ln 2, ln 3, ln 2; mean = ln(12)/3 -> geometric mean 12^(1/3) = 2.289428
--   deviations: ln(2/3)/3 (twice), ln(9/4)/3 = -2 ln(2/3)/3: s^2 = (ln 1.5)^2 / 3, so the
--   standard error is ln(1.5)/3 = 0.135155 and the interval 12^(1/3) x 1.5^(-+4.302653/3)
--   = [1.279894, 4.095249]
-- Wall times: full 110, 130, 100; the policy 55, 65, 50: 2x each seed: [2, 2].
-- Time to target: target = 0.80 - 0.005 = 0.795. Steps 1..4, 1 s each for full, 0.5 s for
-- the policy; evaluations after steps 2 and 4.
--   full: s1 0.70, 0.80 -> step 4, 4 s; s2 0.82, 0.81 -> step 2, 2 s; s3 NaN, 0.78 -> never
--         mean over the two that reach it: 3.0 s (2/3)
--   policy: s1 0.79, 0.79 -> never; s2 0.80, 0.825 -> step 2, 1.0 s; s3 0.777, 0.70 -> never
--         1.0 s (1/3); time-to-target speedup over the seeds where both reach it: s2, 2/1 = 2
local function results(dt, evals)
  local steps = {step = {1, 2, 3, 4}, t_total = {dt, dt, dt, dt}}
  return {summary = {best_metric = "accuracy"}, steps = steps, evals = {step = {2, 4}, accuracy = evals}}
end
local rows = {
  {task = "t", label = "full", policy = "none", cache = "off", seed = 1, metric = "accuracy", best = 0.80,
   train_time = 100, wall_time = 110, final_depth = 0, results = results(1, {0.70, 0.80})},
  {task = "t", label = "full", policy = "none", cache = "off", seed = 2, metric = "accuracy", best = 0.82,
   train_time = 120, wall_time = 130, final_depth = 0, results = results(1, {0.82, 0.81})},
  {task = "t", label = "full", policy = "none", cache = "off", seed = 3, metric = "accuracy", best = 0.78,
   train_time = 90, wall_time = 100, final_depth = 0, results = results(1, {af.nan, 0.78})},
  {task = "t", label = "pol", policy = "adaptive", cache = "memory", seed = 1, metric = "accuracy", best = 0.79,
   train_time = 50, wall_time = 55, final_depth = 5, results = results(0.5, {0.79, 0.79})},
  {task = "t", label = "pol", policy = "adaptive", cache = "memory", seed = 2, metric = "accuracy", best = 0.825,
   train_time = 40, wall_time = 65, final_depth = 4, results = results(0.5, {0.80, 0.825})},
  {task = "t", label = "pol", policy = "adaptive", cache = "memory", seed = 3, metric = "accuracy", best = 0.777,
   train_time = 45, wall_time = 50, final_depth = 3, results = results(0.5, {0.777, 0.70})},
  -- a policy that never reaches the target (and stays at the majority class)
  {task = "t", label = "stuck", policy = "static", cache = "memory", seed = 1, metric = "accuracy", best = 0.5,
   train_time = 20, results = results(0.2, {0.5, 0.5})},
  {task = "t", label = "stuck", policy = "static", cache = "memory", seed = 2, metric = "accuracy", best = 0.5,
   train_time = 24, results = results(0.2, {0.5, 0.5})},
  {task = "t", label = "stuck", policy = "static", cache = "memory", seed = 3, metric = "accuracy", best = 0.5,
   train_time = 18, results = results(0.2, {0.5, 0.5})},
  -- one seed only: d = 100 x (0.81 - 0.80) = +1.0, speedup 100/25 = 4, no interval
  {task = "t", label = "single", policy = "adaptive", cache = "memory", seed = 1, metric = "accuracy", best = 0.81,
   train_time = 25, results = results(0.25, {0.81, 0.81})},
  -- a failed run is left out
  {task = "t", label = "pol", policy = "adaptive", seed = 4, state = "failed"},
}
local stats = R.paired(rows)
local by = {}
for _, st in ipairs(stats) do by[st.label] = st end
check(#stats == 4 and stats[1].label == "full", "four labels, the baseline first")

local p = by.pol
check(p.n == 3 and p.seeds == 3, "pol: three paired seeds")
near(p.diff, -0.8 / 3, 1e-9, "pol: mean difference")
near(p.diff_hi - p.diff, 4.302652730 * 13 / 30, 1e-9, "pol: half-width")
near(p.diff_lo, -2.131149516, 1e-8, "pol: interval low")
near(p.diff_hi, 1.597816183, 1e-8, "pol: interval high")
near(p.worst, -1.0, 1e-9, "pol: worst seed's difference")
check(p.worst_seed == 1, "pol: worst seed is seed 1")
near(p.speedup, 12 ^ (1 / 3), 1e-9, "pol: geometric-mean speedup")
near(p.speedup_lo, 12 ^ (1 / 3) * 1.5 ^ (-4.302652730 / 3), 1e-9, "pol: speedup low")
near(p.speedup_hi, 12 ^ (1 / 3) * 1.5 ^ (4.302652730 / 3), 1e-9, "pol: speedup high")
near(p.speedup_lo, 1.279893705, 1e-8, "pol: speedup low (number)")
near(p.wall_speedup, 2, 1e-12, "pol: wall speedup")
near(p.wall_speedup_lo, 2, 1e-12, "pol: wall speedup interval (no spread)")
near(p.target, 0.795, 1e-12, "target = full's mean best less 0.5 points")
near(p.tta, 1.0, 1e-12, "pol: time to target")
check(p.tta_reached == 1 and p.tta_n == 3, "pol: 1 of 3 seeds reach the target")
near(p.tta_speedup, 2, 1e-12, "pol: time-to-target speedup")
near(p.best, (0.79 + 0.825 + 0.777) / 3, 1e-12, "pol: mean best")
near(p.final_depth, 4, 1e-12, "pol: mean final depth")

local f = by.full
check(f.note == "baseline" and f.diff == 0 and f.speedup == 1, "full: the baseline, 0 points, 1x")
near(f.tta, 3.0, 1e-12, "full: time to target")
check(f.tta_reached == 2 and f.tta_n == 3, "full: 2 of 3 seeds reach the target")

local s = by.stuck
check(s.tta == nil and s.tta_reached == 0 and s.never == 3, "stuck: never reaches the target")
near(s.worst, -32, 1e-9, "stuck: worst seed's difference")
check(s.worst_seed == 2, "stuck: worst seed is seed 2")

local one1 = by.single
check(one1.n == 1 and one1.diff_lo == nil and one1.speedup_lo == nil and one1.note == "1 seed: no interval",
      "single: one seed, no interval")
near(one1.diff, 1.0, 1e-9, "single: difference")
near(one1.speedup, 4, 1e-12, "single: speedup")

-- time_to_target by itself: an evaluation before the first step costs nothing
local r0 = {summary = {best_metric = "f1"}, steps = {step = {1, 2}, t_total = {3, 4}}, evals = {step = {0, 2}, f1 = {0.9, 0.1}}}
check(R.time_to_target(r0, 0.5) == 0, "time to target at step 0")
local t2, step2 = R.time_to_target(r0, 0.05)
check(t2 == 0 and step2 == 0, "time to target: the first evaluation that reaches it")
check(R.time_to_target(r0, 0.95) == nil, "time to target: never")

-- the texts
check(R.interval_text(-0.2667, -2.1311, 1.5978, "%+.2f") == "-0.27 [-2.13, +1.60]", "interval text")
check(R.interval_text(1, nil, nil, "%+.2f") == "+1.00 (1 seed: no interval)", "interval text, one seed")
local md = R.format(stats, R.paired_columns)
check(md:find("never (0/3)", 1, true) ~= nil, "table: never")
check(md:find("-0.27 [-2.13, +1.60]", 1, true) ~= nil, "table: pol's interval")
check(md:find("2.29x [1.28, 4.10]", 1, true) ~= nil, "table: pol's speedup")
check(md:find("+1.00 (1 seed: no interval)", 1, true) ~= nil, "table: one seed")
check(md:find("-32.00 (seed 2)", 1, true) ~= nil, "table: worst seed")

-- files: a table and a CSV per task, a Pareto figure per task
local written = R.paired_write(stats, dir .. "/tables", {name = "lab", print = false})
check(#written == 2 and af.exists(dir .. "/tables/lab_t.md") and af.exists(dir .. "/tables/lab_t.csv"), "paired_write files")
local csv = assert(io.open(dir .. "/tables/lab_t.csv")):read("a")
check(csv:find("^task,label,policy,metric,n,seeds,best,diff,diff_lo,diff_hi,worst,worst_seed,speedup,") ~= nil, "CSV header")
check(csv:find("\nt,single,adaptive,accuracy,1,1,", 1, true) ~= nil, "CSV: the single-seed row")
local figs = R.pareto(stats, dir .. "/fig", {target_x = 2, target_y = -0.5, quiet = true})
check(#figs == 1 and af.exists(dir .. "/fig/pareto_t.png") and af.exists(dir .. "/fig/pareto_t.svg"), "Pareto figure")
local dat = assert(io.open(dir .. "/fig/data/pareto_t.dat")):read("a")
check(dat:find('\n"single" 4 1 4 4 1 1\n', 1, true) ~= nil, "Pareto data: one seed, zero-length bars")

-- af.plot_script refuses what is not a script name or a variable name
local ok, err = pcall(af.plot_script, dir .. "/fig", "x", "../x.gp", {})
check(not ok and tostring(err):find("must be the name of a NAME.gp", 1, true), "plot_script: a path as script")
ok, err = pcall(af.plot_script, dir .. "/fig", "x", "nope.gp", {})
check(not ok and tostring(err):find("no gnuplot script", 1, true), "plot_script: a missing script")
ok, err = pcall(af.plot_script, dir .. "/fig", "x", "pareto.gp", {["a-b"] = 1})
check(not ok and tostring(err):find("not a gnuplot variable name", 1, true), "plot_script: a bad variable name")
ok, err = pcall(af.plot_script, dir .. "/fig", "x", "pareto.gp", {a = true})
check(not ok and tostring(err):find("strings, numbers or lists of strings", 1, true), "plot_script: a boolean")

-- The in-run speedup: median step time per depth inside the run. Steps at depth 0, 0, 0, 2,
-- 2, 4 taking 1, 3, 1, 0.5, 0.5, 0.25 s: medians 1 (depth 0), 0.5 (2), 0.25 (4); full
-- fine-tuning's estimate 1 x 6 = 6 s against 1 x 3 + 0.5 x 2 + 0.25 x 1 = 4.25 s: 6 / 4.25.
local function timed(threads, t, dep)
  local steps = {step = {}, t_total = t, frozen_depth = dep}
  for i = 1, #t do steps.step[i] = i end
  return {summary = {best_metric = "accuracy"}, steps = steps, evals = {step = {#t}, accuracy = {0.8}},
          config = {threads = threads, host = "h"}}
end
near(R.freeze_speedup(timed(1, {1, 3, 1, 0.5, 0.5, 0.25}, {0, 0, 0, 2, 2, 4})), 6 / 4.25, 1e-12, "in-run speedup")
check(R.freeze_speedup(timed(1, {1, 1}, {3, 3})) == nil, "in-run speedup: no step at depth 0")
check(R.freeze_speedup({steps = {t_total = {1}}}) == nil, "in-run speedup: no depths recorded")
-- The median time: the same medians times the steps (4.25 s); a burst of load on one step
-- (9 s instead of 1) leaves it alone where the measured time grows by 8 s.
near(R.median_time(timed(1, {1, 3, 1, 0.5, 0.5, 0.25}, {0, 0, 0, 2, 2, 4})), 4.25, 1e-12, "median time")
near(R.median_time(timed(1, {1, 1, 9, 1}, {0, 0, 0, 0})), 4, 1e-12, "median time: a burst left out")
check(R.median_time({steps = {t_total = {1}}}) == nil, "median time: no depths recorded")
-- Times compare only when the run and its baseline ran alike: seeds 1 and 2 ran with 1 thread
-- against a baseline run with all cores (threads 0), seed 3 alike (speedup 10 / 4 = 2.5).
local apart = {}
for seed = 1, 3 do
  apart[#apart + 1] = {task = "u", label = "full", policy = "none", cache = "off", seed = seed, metric = "accuracy",
                       best = 0.8, train_time = 10, wall_time = 12, results = timed(seed == 3 and 1 or 0, {1, 1}, {0, 0})}
  apart[#apart + 1] = {task = "u", label = "pol", policy = "adaptive", seed = seed, metric = "accuracy", best = 0.8,
                       train_time = 4, wall_time = 5, results = timed(1, {1, 1, 0.5, 0.5}, {0, 0, 3, 3})}
end
local ap = R.paired(apart)[2]
check(ap.timed_apart == 2 and ap.n == 3, "timed apart: two seeds")
near(ap.speedup, 2.5, 1e-12, "timed apart: the speedup of the seed timed alike")
check(ap.speedup_lo == nil, "timed apart: one comparable seed, no interval")
near(ap.wall_speedup, 12 / 5, 1e-12, "timed apart: the wall speedup of the seed timed alike")
near(ap.freeze_speedup, 4 / 3, 1e-12, "timed apart: the in-run speedup uses every seed")
-- median-based: seed 3 only (timed alike): the baseline's 1 + 1 s over the run's 1 + 1 + 0.5 + 0.5 s
near(ap.median_speedup, 2 / 3, 1e-12, "timed apart: the median-based speedup of the seed timed alike")
check(ap.median_speedup_lo == nil, "timed apart: median-based, one seed, no interval")
check(ap.note:find("times not compared on 2 seeds (seed 1: threads=1 host=h vs threads=0 host=h", 1, true) ~= nil,
      "timed apart: the note names the seeds and why: " .. tostring(ap.note))
local amd = R.format({ap}, R.paired_columns)
check(amd:find("2.50x (1 seed: no interval) (2 timed apart)", 1, true) ~= nil, "timed apart: the table says so")
-- the figure's x on request: every line's in-run (or median-based) speedup, whatever was measured
R.pareto(R.paired(apart), dir .. "/fig-inrun", {quiet = true, speedup = "in-run"})
local idat = assert(io.open(dir .. "/fig-inrun/data/pareto_u.dat")):read("a")
check(idat:find('\n"pol" 1.33333333', 1, true) ~= nil and idat:find('\n"full" 1 ', 1, true) ~= nil,
      "speedup = in-run: the in-run estimates on x")
R.pareto(R.paired(apart), dir .. "/fig-median", {quiet = true, speedup = "median"})
local mdat = assert(io.open(dir .. "/fig-median/data/pareto_u.dat")):read("a")
check(mdat:find('\n"pol" 0.666666667', 1, true) ~= nil, "speedup = median: the median-based speedup on x")
ok, err = pcall(R.pareto, R.paired(apart), dir .. "/fig-bad", {quiet = true, speedup = "fast"})
check(not ok and tostring(err):find('expected "measured", "median" or "in-run"', 1, true), "speedup = a bad word")

-- every seed apart: the Pareto figure takes the in-run speedup and says so in the label
for _, r in ipairs(apart) do if r.label == "full" then r.results.config.threads = 0 end end
local all = R.paired(apart)
check(all[2].speedup == nil and all[2].timed_apart == 3, "timed apart: every seed, no speedup")
R.pareto(all, dir .. "/fig-apart", {quiet = true})
local adat = assert(io.open(dir .. "/fig-apart/data/pareto_u.dat")):read("a")
check(adat:find('\n"pol" 1.33333333', 1, true) ~= nil, "timed apart: the figure's point is the in-run speedup")
R.paired_write(all, dir .. "/tables-apart", {name = "lab", print = false})
local amd2 = assert(io.open(dir .. "/tables-apart/lab_u.md")):read("a")
check(amd2:find("- pol: times not compared on 3 seeds", 1, true) ~= nil, "timed apart: the note under the table")
check(amd2:find("| vs full, points [95% CI] |", 1, true) ~= nil, "the difference's header names the baseline")
R.paired_write(R.paired(apart, {base = "pol"}), dir .. "/tables-base", {name = "lab", print = false})
local amd3 = assert(io.open(dir .. "/tables-base/lab_u.md")):read("a")
check(amd3:find("| vs pol, points [95% CI] |", 1, true) ~= nil, "another baseline named in the header")

-- the trade-off line (af.report.tradeoff): points (frozen share x, points d) by hand:
-- A (0.25; -1, -2, 0), B (0.75; -3, -4, -5): mean x 0.5, mean d -2.5, Sxx 0.375, Sxy -2.25,
-- so b = -6, a = 0.5; residuals A 0, -1, +1 and B +1, 0, -1 (SSE 4, SST 17.5, R^2 1 - 4/17.5);
-- the slope's half-width t(4) sqrt(SSE/4/Sxx), each policy's t(2) * 1/sqrt(3) around 0
local trows, bases = {}, {0.80, 0.70, 0.90}
local function run(label, seed, best, depths)
  trows[#trows + 1] = {task = "v", label = label, seed = seed, best = best, metric = "accuracy",
                       results = {layers = 4, steps = {frozen_depth = depths}}}
end
for seed, b in ipairs(bases) do
  run("full", seed, b, {0, 0})
  run("A", seed, b + ({-1, -2, 0})[seed] / 100, {0, 2})
  run("B", seed, b + ({-3, -4, -5})[seed] / 100, {2, 4})
end
trows[#trows + 1] = {task = "v", label = "C", seed = 1, best = 0.1, state = "failed"}  -- failed: left out
local fits = R.tradeoff(trows)
check(#fits == 1 and fits[1].n == 6, "tradeoff: one task, six points")
local fit = fits[1]
near(fit.b, -6, 1e-9, "tradeoff slope")
near(fit.a, 0.5, 1e-9, "tradeoff intercept")
near(fit.r2, 1 - 4 / 17.5, 1e-9, "tradeoff R^2")
near(fit.b_hi - fit.b, 2.776445105 * math.sqrt(1 / 0.375), 1e-8, "tradeoff slope half-width")
check(#fit.policies == 2 and fit.policies[1].label == "A" and fit.policies[2].label == "B", "tradeoff: A and B")
near(fit.policies[1].x, 0.25, 1e-12, "tradeoff: A's frozen share")
near(fit.policies[2].d, -4, 1e-9, "tradeoff: B's mean difference")
near(fit.policies[1].resid, 0, 1e-9, "tradeoff: A's mean residual")
near(fit.policies[1].resid_hi, 4.302652730 / math.sqrt(3), 1e-8, "tradeoff: A's residual interval")
local one = R.tradeoff(trows, {labels = "A"})
check(#one == 1 and one[1].b == nil and #one[1].policies == 0, "tradeoff: 3 points at one share give no line")
local only = R.tradeoff(trows, {labels = {"A", "B"}, base = "full"})
near(only[1].b, -6, 1e-9, "tradeoff with labels named")
-- no step times: no speed side
check(fit.x_at == nil, "tradeoff: no in-run speedups, no share at 2x")
-- with step times: A's runs at 1/speedup 0.9 (x 0.25), B's at 0.7 (x 0.75; recast as one step
-- at depth 0 and three at 4, mean depth 3, so that it has an in-run speedup), c = sum x(1-1/s) /
-- sum x^2 = (3*0.025 + 3*0.225) / (3*0.0625 + 3*0.5625) = 0.4, so 2x takes x = 0.5/0.4 = 1.25,
-- where the line gives 0.5 - 6*1.25 = -7, +- t(4) sqrt(1 * (1/6 + 0.75^2/0.375))
for _, r in ipairs(trows) do
  if r.label == "A" then r.results.steps.t_total = {1, 0.8} end  -- (1 + 0.8)/2 = 0.9
  if r.label == "B" then
    r.results.steps.frozen_depth, r.results.steps.t_total = {0, 4, 4, 4}, {1, 0.6, 0.6, 0.6}  -- 2.8/4 = 0.7
  end
end
local sp = R.tradeoff(trows)[1]
near(sp.b, -6, 1e-9, "tradeoff slope, B's steps recast at the same share")
near(sp.cost_slope, 0.4, 1e-9, "tradeoff cost slope")
near(sp.x_at, 1.25, 1e-9, "tradeoff share at 2x")
near(sp.d_at, -7, 1e-9, "tradeoff line at 2x")
near(sp.d_at_hi - sp.d_at, 2.776445105 * math.sqrt(1 / 6 + 0.75 ^ 2 / 0.375), 1e-8, "tradeoff interval at 2x")
local tfigs = R.tradeoff_write(fits, dir .. "/tradeoff", {name = "lab_tradeoff", print = false, quiet = true})
check(#tfigs == 1 and af.exists(tfigs[1] .. ".png") and af.exists(tfigs[1] .. ".svg"), "tradeoff figure written")
local tmd = assert(io.open(dir .. "/tradeoff/lab_tradeoff_v.md")):read("a")
check(tmd:find("d = +0.50 -6.00 x over 6 runs", 1, true) ~= nil, "tradeoff table names the line: " .. tmd)

-- no baseline: an error that says so
ok, err = pcall(R.paired, {{task = "t", label = "pol", policy = "adaptive", seed = 1, best = 0.5, train_time = 1}})
check(not ok and tostring(err):find("no baseline", 1, true), "paired without a baseline")

if fails > 0 then io.stderr:write(fails, " check(s) failed\n"); os.exit(1) end
print("report stats: all checks passed")
LUA
expect_rc 0 "paired statistics" -- "$BIN" run "$TMP/stats.lua" "$TMP"
expect_in "$TMP/out" "report stats: all checks passed" "the statistics script ran to its end"
finish test_report_stats
