-- static_depth.lua: static freezing at every depth k = 0..L-1 (k layers frozen from the
-- start; k = 0 is full fine-tuning, k = L-1 the paper's all-but-last baseline): how much
-- accuracy each frozen layer costs and how much time it saves. Results in
-- results/static_depth, figures in plots/out/static_depth.
--   autofreeze run experiments/static_depth.lua [--set depths=0,2,4,5] [--set task=... --set data=...]
--       [--set seeds=1] [--set epochs=2] [--set seq=64] [--set train_rows=1500] ...
local af = require "autofreeze"
local S = af.settings
local list = af.report.list
local model = af.model.load(S.model or "models/all-MiniLM-L6-v2")
local task = af.report.settings_task(S)
local policies = {af.policy.none()}
local depths = S.depths and list(S.depths, tonumber) or {}
if #depths == 0 then for k = 1, model.layers - 1 do depths[#depths + 1] = k end end
for _, k in ipairs(depths) do
  if k > 0 then policies[#policies + 1] = af.policy.static{frozen = k} end
end
local rows = af.sweep{
  tasks = {task}, policies = policies, seeds = list(S.seeds or "1", tonumber),
  out_dir = S.out or "results/static_depth",
  train = {model = model, epochs = S.epochs or 2, batch = S.batch or 16, seq = S.seq or 64, lr = S.lr or 5e-5,
           intervals = S.intervals or 10, max_train_rows = S.train_rows or 1500,
           max_eval_rows = S.eval_rows or 300, threads = S.threads or 0, checkpoints = false},
}
af.plot(rows, S.plots or "plots/out/static_depth")
