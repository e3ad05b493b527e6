-- custom_policy.lua: a freeze policy written in Lua. The threshold rule below freezes, from
-- the bottom up, every layer whose gradient has settled: its change ratio over the last
-- interval |s_prev - s| / s_prev is below a threshold. It is compared with the built-in
-- adaptive (percentile) rule and full fine-tuning on the default task.
--   autofreeze run experiments/custom_policy.lua [--set threshold=0.2] [--set verbose=true]
--       [--set epochs=2] [--set train_rows=1500] [--set eval_rows=300] [--set seq=64]
--
-- How a custom policy works (docs/lua-api.md, af.policy.custom): at the end of each decision
-- interval (from the second on) the function receives
--   stats = {interval, step, depth, layers, max_depth, l1 = {...}, l2 = {...}, ratio = {...}}
-- with 1-based per-layer arrays (stats.ratio[1] is encoder layer 0); layers 1..depth are
-- frozen (their entries are 0, ratios NaN); a ratio is NaN when undefined (test with r ~= r).
-- It returns the new depth: an integer in [stats.depth, stats.max_depth]. Anything else
-- (lower, too high, 2.5, nil, an error) stops the run with a clear error.
local af = require "autofreeze"
local S = af.settings
local threshold = S.threshold or 0.2

local function threshold_rule(stats)
  local depth = stats.depth
  for l = stats.depth + 1, stats.layers do          -- 1-based layer index
    local r = stats.ratio[l]
    if r ~= r or r >= threshold then break end       -- NaN (undefined) or still changing
    depth = l                                        -- layers 1..l settle: freeze them
  end
  depth = math.min(depth, stats.max_depth)
  if S.verbose then
    local rs = {}
    for l = 1, stats.layers do rs[l] = string.format("%.3f", stats.ratio[l]) end
    print(("interval %d, step %d: ratios {%s} -> depth %d"):format(stats.interval, stats.step,
          table.concat(rs, ", "), depth))
  end
  return depth
end

local policy = af.policy.custom(threshold_rule, {name = "threshold", knobs = {threshold = threshold}})
local model = af.model.load(S.model or "models/all-MiniLM-L6-v2")
local task = af.task.default(S.data or "data/default")
local rows = af.sweep{
  tasks = {task},
  policies = {af.policy.none(), af.policy.adaptive{percentile = 50},
              {policy = policy, label = "threshold-" .. threshold}},
  out_dir = S.out or "results/custom_policy",
  train = {model = model, epochs = S.epochs or 2, batch = S.batch or 16, seq = S.seq or 64, lr = S.lr or 5e-5,
           intervals = S.intervals or 10, max_train_rows = S.train_rows or 1500,
           max_eval_rows = S.eval_rows or 300, threads = S.threads or 0, checkpoints = false},
}
af.plot(rows, S.plots or "plots/out/custom_policy")
