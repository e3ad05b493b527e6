-- quickstart.lua: the README's main job. On the default model (models/all-MiniLM-L6-v2) and
-- the built-in default task (Debian package description -> section, built into data/default
-- on first use), fine-tune four ways and compare them:
--   full fine-tuning (policy none), the static all-but-last baseline (static, frozen = L-1),
--   AutoFreeze adaptive freezing, and adaptive freezing with the activation cache;
-- then write figures to plots/out/quickstart and print accuracy, wall time and speedup.
--
-- Budget: sized to finish in <= 15 minutes on a 2-core machine (about 7 minutes on an idle
-- one). The defaults use a slice of the task: a fixed random 4000 training rows and 400 dev
-- rows, 2 epochs, 64 tokens per example, batch 16, lr 1e-4, all cores. Override any of
-- them, e.g.
--   autofreeze run experiments/quickstart.lua --set train_rows=0 --set eval_rows=0 \
--       --set epochs=3 --set seq=128      # the whole task (51k rows): hours on 2 cores
-- settings: model, data, out (results folder), plots (figure folder), train_rows, eval_rows,
-- epochs, seq, batch, lr, intervals, percentile, seed, threads, cache (memory|disk|auto),
-- fresh (true: rerun even when complete results exist), policies (the runs by label: the
-- default is full,static-last,adaptive,adaptive+cache; auto+cache, the recommended preset
-- --policy auto with the cache (docs/algorithm.md), runs when named, e.g.
-- --set policies=adaptive+cache,auto+cache; full always runs).
local af = require "autofreeze"
local S = af.settings

local model_dir = S.model or "models/all-MiniLM-L6-v2"
local data_dir = S.data or "data/default"
local out_dir = S.out or "results/quickstart"
local plot_dir = S.plots or "plots/out/quickstart"

if not af.exists(data_dir .. "/train.tsv") then
  print("building the default task into " .. data_dir .. " (once)")
  local ok = os.execute(af.bin .. " data build-default --out " .. data_dir)
  if not ok then error("could not build the default task; see the message above") end
end

local model = af.model.load(model_dir)
local task = af.task.default(data_dir)
print(("%s\n%s"):format(tostring(model), tostring(task)))

local adaptive = af.policy.adaptive{percentile = S.percentile or 50}
local rows = af.sweep{
  tasks = {task},
  policies = af.report.pick({
    {policy = af.policy.none(), label = "full"},
    {policy = af.policy.static{frozen = model.layers - 1}, label = "static-last"},
    {policy = adaptive, label = "adaptive"},
    {policy = adaptive, label = "adaptive+cache", cache = S.cache or "memory"},
    {policy = af.policy.auto{}, label = "auto+cache", cache = S.cache or "memory"},
  }, S.policies or "full,static-last,adaptive,adaptive+cache", {"full"}, "quickstart.lua"),
  seeds = {S.seed or 1},
  out_dir = out_dir,
  force = S.fresh,
  print = false,
  train = {
    model = model, epochs = S.epochs or 2, batch = S.batch or 16, seq = S.seq or 64,
    lr = S.lr or 1e-4, intervals = S.intervals or 10,
    max_train_rows = S.train_rows or 4000, max_eval_rows = S.eval_rows or 400,
    threads = S.threads or 0, checkpoints = false, progress = "auto",
  },
}

af.plot(rows, plot_dir)

for _, r in ipairs(rows) do  -- set-up and the rest of the run in one column
  if r.wall_time then r.other = (r.setup_time or 0) + (r.other_time or 0) end
end
local report = af.report
report.print(rows, {
  {"label", "run"}, {"best", "dev accuracy (best)", "%.4f"}, {"final", "final", "%.4f"},
  {"train_time", "train time (s)", "%.1f"}, {"time_to_best", "time to best (s)", "%.1f"},
  {"final_depth", "frozen at end"}, {"speedup", "speedup", "%.2fx"},
  {"wall_time", "wall time (s)", "%.1f"}, {"step_time", "steps (s)", "%.1f"}, {"eval_time", "eval (s)", "%.1f"},
  {"checkpoint_time", "ckpt (s)", "%.1f"}, {"other", "other (s)", "%.1f"}, {"wall_speedup", "wall speedup", "%.2fx"},
}, ("quickstart: %s on %s (%d layers), results in %s, figures in %s"):format(task.name, model.path,
   model.layers, out_dir, plot_dir))
print("\nspeedup = training time of full fine-tuning / training time of the run (evaluation excluded);")
print("wall time = steps + eval + ckpt + other (set-up: loading and tokenizing, decisions, results writes);")
print("wall speedup = the same ratio of wall times, end to end")
