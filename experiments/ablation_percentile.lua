-- ablation_percentile.lua: the adaptive rule's percentile swept one value at a time (lower
-- freezes sooner), on one task, against full fine-tuning. Results in results/ablation_percentile,
-- figures in plots/out/ablation_percentile.
--   autofreeze run experiments/ablation_percentile.lua [--set percentiles=25,50,75,90]
--       [--set task=default --set data=data/default | --set task=sst2 --set data=DIR]
--       [--set seeds=1] [--set epochs=2] [--set seq=64] [--set train_rows=1500] [--set eval_rows=300]
local af = require "autofreeze"
local S = af.settings
local list = af.report.list
local task = af.report.settings_task(S)
local policies = {af.policy.none()}
for _, p in ipairs(list(S.percentiles or "25,50,75,90", tonumber)) do
  policies[#policies + 1] = af.policy.adaptive{percentile = p}
end
local rows = af.sweep{
  tasks = {task}, policies = policies, seeds = list(S.seeds or "1", tonumber),
  out_dir = S.out or "results/ablation_percentile",
  train = {model = S.model or "models/all-MiniLM-L6-v2", epochs = S.epochs or 2, batch = S.batch or 16,
           seq = S.seq or 64, lr = S.lr or 5e-5, intervals = S.intervals or 10,
           max_train_rows = S.train_rows or 1500, max_eval_rows = S.eval_rows or 300,
           threads = S.threads or 0, checkpoints = false},
}
af.plot(rows, S.plots or "plots/out/ablation_percentile")
