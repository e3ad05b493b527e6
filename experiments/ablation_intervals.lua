-- ablation_intervals.lua: how often the adaptive rule decides. The number of decision
-- intervals over the run is swept (a run-level setting, af.train's intervals), with the
-- percentile fixed, against full fine-tuning. Results in results/ablation_intervals, figures
-- in plots/out/ablation_intervals.
--   autofreeze run experiments/ablation_intervals.lua [--set intervals=5,10,20,40]
--       [--set task=default --set data=data/default] [--set seeds=1] [--set epochs=2] ...
local af = require "autofreeze"
local S = af.settings
local list = af.report.list
local task = af.report.settings_task(S)
local adaptive = af.policy.adaptive{percentile = S.percentile or 50}
local policies = {af.policy.none()}
for _, n in ipairs(list(S.intervals or "5,10,20,40", tonumber)) do
  policies[#policies + 1] = {policy = adaptive, label = "adaptive-i" .. n, intervals = n}
end
local rows = af.sweep{
  tasks = {task}, policies = policies, seeds = list(S.seeds or "1", tonumber),
  out_dir = S.out or "results/ablation_intervals",
  train = {model = S.model or "models/all-MiniLM-L6-v2", epochs = S.epochs or 2, batch = S.batch or 16,
           seq = S.seq or 64, lr = S.lr or 5e-5, max_train_rows = S.train_rows or 1500,
           max_eval_rows = S.eval_rows or 300, threads = S.threads or 0, checkpoints = false},
}
af.plot(rows, S.plots or "plots/out/ablation_intervals")
