-- bench_policies.lua: time to accuracy on the default model and task with a fixed budget.
-- Runs none, static all-but-last, adaptive, and adaptive + cache with the same data, epochs
-- and seed, then reports for each: best dev accuracy, training time, the training time until
-- the dev accuracy first reaches a target (default: 95% of full fine-tuning's best), and the
-- speedups against full fine-tuning. Figures in plots/out/bench_policies.
--   autofreeze run experiments/bench_policies.lua [--set target=0.95] [--set epochs=2]
--       [--set train_rows=2000] [--set eval_rows=400] [--set seq=64] [--set threads=0]
--       [--set policies=none,adaptive+cache]   (a subset of the four, by label; none is always run)
--       [--set percentile=50] [--set max_depth=N]  (the adaptive rule's knobs; max_depth caps its depth)
--       [--set recipe=paper] [--set frozen_dropout=true]  (every run; frozen_dropout needs policies
--       without the cache)
local af = require "autofreeze"
local S = af.settings
local model = af.model.load(S.model or "models/all-MiniLM-L6-v2")
local task = af.task.default(S.data or "data/default")
local adaptive = af.policy.adaptive{percentile = S.percentile or 50, max_depth = S.max_depth}
local all = {{policy = af.policy.none(), label = "none"},
             {policy = af.policy.static{frozen = model.layers - 1}, label = "static-last"},
             {policy = adaptive, label = "adaptive"},
             {policy = adaptive, label = "adaptive+cache", cache = S.cache or "memory"}}
local policies = af.report.pick(all, S.policies, {"none"}, "bench_policies")
local rows = af.sweep{
  tasks = {task},
  policies = policies,
  seeds = {S.seed or 1},
  out_dir = S.out or "results/bench_policies",
  print = false,
  train = {model = model, epochs = S.epochs or 2, batch = S.batch or 16, seq = S.seq or 64, lr = S.lr or 5e-5,
           intervals = S.intervals or 10, eval_every = S.eval_every, max_train_rows = S.train_rows or 2000,
           max_eval_rows = S.eval_rows or 400, threads = S.threads or 0, checkpoints = false,
           recipe = S.recipe, frozen_dropout = S.frozen_dropout},
}

-- training time (evaluation excluded) at each evaluation: the step times summed up to it
local function time_to(path, target)
  local r = af.results.read(path)
  local metric = r.summary.best_metric
  local cum, acc, si = 0, {}, 1
  for i, step in ipairs(r.steps.step) do cum = cum + r.steps.t_total[i]; acc[step] = cum end
  for e, step in ipairs(r.evals.step) do
    local v = r.evals[metric][e]
    if v == v and v >= target then return acc[step] or cum, step end
  end
  return nil
end

local base
for _, r in ipairs(rows) do if r.policy == "none" then base = r end end
local target = (S.target or 0.95) * base.best
for _, r in ipairs(rows) do
  r.tta, r.tta_step = time_to(r.out, target)
end
for _, r in ipairs(rows) do
  if r.tta and base.tta then r.tta_speedup = base.tta / r.tta end
end
for _, r in ipairs(rows) do
  if r.wall_time then r.other = (r.setup_time or 0) + (r.other_time or 0) end
end
af.plot(rows, S.plots or "plots/out/bench_policies")
af.report.print(rows, {
  {"label", "policy"}, {"best", "best dev acc", "%.4f"}, {"train_time", "train time (s)", "%.1f"},
  {"speedup", "speedup", "%.2fx"}, {"tta", ("time to acc %.3f (s)"):format(target), "%.1f"},
  {"tta_step", "at step"}, {"tta_speedup", "time-to-accuracy speedup", "%.2fx"}, {"final_depth", "final depth"},
  {"wall_time", "wall time (s)", "%.1f"}, {"step_time", "steps (s)", "%.1f"}, {"eval_time", "eval (s)", "%.1f"},
  {"checkpoint_time", "ckpt (s)", "%.1f"}, {"other", "other (s)", "%.1f"}, {"wall_speedup", "wall speedup", "%.2fx"},
}, ("time to accuracy: target = %.0f%% of full fine-tuning's best (%.4f)"):format((S.target or 0.95) * 100, base.best))
