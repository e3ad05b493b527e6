-- bench_time.lua: where the wall time of a short fine-tuning run goes, and what evaluation
-- through the cache, the background checkpoint writer and the disk tier change. The run of
-- the issue "the time around the step": 4,000 training rows of the default task, 2 epochs,
-- batch 32, 64 tokens, MiniLM, 5 of 6 layers frozen from the start, 872 dev rows, 20
-- intervals (an evaluation at each boundary). Configurations (each run `rounds` times, the
-- order reversed every other round so that load drift hits them alike; medians reported):
--   full        policy none, no cache (evaluation at depth 0)
--   off         static 5, --cache off
--   memory      static 5, --cache memory
--   disk        static 5, --cache disk (a fresh folder that does not exist yet)
--   memory+ck   static 5, --cache memory, a checkpoint at every interval boundary
-- Reported: wall time split (steps, evaluation, checkpoints, set-up and rest), evaluation
-- time per evaluation, checkpoint time on the critical path as a share of training time,
-- and the ratios the issue's targets name.
--   autofreeze run experiments/bench_time.lua [--set rounds=2] [--set threads=0]
--       [--set train_rows=4000] [--set eval_rows=872] [--set epochs=2] [--set only=memory,disk]
--       [--set batch=32] [--set seq=64] [--set intervals=20]
-- Figures (the phases figure among them) in plots/out/bench_time.
local af = require "autofreeze"
local S = af.settings
local model = af.model.load(S.model or "models/all-MiniLM-L6-v2")
local data_dir = S.data or "data/default"
if not af.exists(data_dir .. "/train.tsv") then
  assert(os.execute(af.bin .. " data build-default --out " .. data_dir), "could not build the default task")
end
local task = af.task.default(data_dir)
local out = S.out or "results/bench_time"
local frozen = model.layers - 1
local configs = {
  {label = "full", policy = af.policy.none(), cache = "off"},
  {label = "off", policy = af.policy.static{frozen = frozen}, cache = "off"},
  {label = "memory", policy = af.policy.static{frozen = frozen}, cache = "memory"},
  {label = "disk", policy = af.policy.static{frozen = frozen}, cache = "disk", fresh_dir = true},
  {label = "memory+ck", policy = af.policy.static{frozen = frozen}, cache = "memory", checkpoint_every = "intervals"},
}
if S.only then
  local keep = {}
  for l in tostring(S.only):gmatch("[^,]+") do keep[l] = true end
  local sel = {}
  for _, c in ipairs(configs) do if keep[c.label] then sel[#sel + 1] = c end end
  configs = sel
end

local function run(c, round)
  local file = ("%s/%s-r%d.h5"):format(out, c.label, round)
  os.execute(("rm -rf '%s' '%s.ckpt' '%s/cache-%s'"):format(file, file, out, c.label))
  local opts = {model = model, task = task, policy = c.policy, cache = c.cache, out = file,
                epochs = S.epochs or 2, batch = S.batch or 32, seq = S.seq or 64, lr = 1e-4,
                intervals = S.intervals or 20,
                max_train_rows = S.train_rows or 4000, max_eval_rows = S.eval_rows or 872,
                threads = S.threads or 0, quiet = true, checkpoint_every = c.checkpoint_every}
  if c.fresh_dir then opts.cache_dir = ("%s/cache-%s/a/b"):format(out, c.label) end
  local s = af.train(opts)
  local r = af.results.read(file)
  local sm = r.summary
  return {file = file, wall = sm.wall_time, steps = sm.step_time, eval = sm.eval_time, ckpt = sm.checkpoint_time or 0,
          rest = (sm.setup_time or 0) + (sm.other_time or 0), train = sm.train_time, evals = #r.evals.step,
          best = s.best, hits = r.cache and r.cache.eval_hits or 0}
end

af.mkdir(out)
local rounds = tonumber(S.rounds or 2)
local got = {}
for round = 1, rounds do
  local order = {}
  for i = 1, #configs do order[i] = round % 2 == 1 and configs[i] or configs[#configs + 1 - i] end
  for _, c in ipairs(order) do
    local m = run(c, round)
    io.write(("round %d %-10s wall %6.1f s  steps %6.1f  eval %6.1f (%d)  ckpt %5.2f  rest %5.1f  best %.4f\n")
             :format(round, c.label, m.wall, m.steps, m.eval, m.evals, m.ckpt, m.rest, m.best))
    io.flush()
    got[c.label] = got[c.label] or {}
    table.insert(got[c.label], m)
  end
end

local files = {}
for _, c in ipairs(configs) do files[#files + 1] = got[c.label][1].file end
af.plot(files, S.plots or "plots/out/bench_time")  -- phases_default.png: where the wall time goes

local rows, med = {}, {}
for _, c in ipairs(configs) do
  local m = {label = c.label}
  for _, k in ipairs{"wall", "steps", "eval", "ckpt", "rest", "train", "evals", "best"} do
    local v = {}
    for _, x in ipairs(got[c.label]) do v[#v + 1] = x[k] end
    m[k] = af.report.median(v)
  end
  m.per_eval = m.eval / m.evals
  m.ckpt_share = m.ckpt / m.train
  med[c.label] = m
  rows[#rows + 1] = m
end
af.report.print(rows, {
  {"label", "configuration"}, {"wall", "wall (s)", "%.1f"}, {"steps", "steps (s)", "%.1f"},
  {"eval", "eval (s)", "%.1f"}, {"per_eval", "per evaluation (s)", "%.2f"}, {"ckpt", "ckpt (s)", "%.2f"},
  {"ckpt_share", "ckpt / training", function(v) return ("%.1f%%"):format(100 * v) end}, {"rest", "set-up + rest (s)", "%.1f"}, {"best", "best", "%.4f"},
}, ("bench_time: medians of %d rounds"):format(rounds))

local function ratio(a, b) return a and b and b > 0 and a / b or nil end
print("\ntargets:")
if med.full and med.memory then
  print(("  evaluation at depth %d vs depth 0, per evaluation: %.2fx cheaper (target >= 3x)")
        :format(frozen, ratio(med.full.per_eval, med.memory.per_eval)))
end
if med["memory+ck"] then
  print(("  checkpoint time on the critical path, a checkpoint every interval: %.2f%% of training (target < 5%%)")
        :format(100 * med["memory+ck"].ckpt_share))
end
if med.off and med.memory then
  print(("  wall time, --cache off / --cache memory: %.2fx (target >= 1.8x)"):format(ratio(med.off.wall, med.memory.wall)))
end
if med.disk and med.memory then
  print(("  wall time, --cache disk / --cache memory: %.2fx (target <= 1.2x)"):format(ratio(med.disk.wall, med.memory.wall)))
end
