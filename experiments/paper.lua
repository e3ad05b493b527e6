-- paper.lua: the AutoFreeze paper's comparison. Tasks SST-2, MRPC, CoLA and RTE from a GLUE
-- folder given on the command line (its SST-2/, MRPC/, CoLA/, RTE/ subfolders), plus AG News
-- and IMDb when their folders are given; policies none (full fine-tuning), static last layer
-- (all but the last layer frozen), adaptive, adaptive + activation cache; over seeds. Writes
-- results/paper/*.h5, figures and summary tables to plots/out/paper, and prints the table.
--
--   autofreeze run experiments/paper.lua ~/glue [--set ag_news=DIR] [--set imdb=DIR]
--       [--set seeds=1,2,3] [--set epochs=3] [--set seq=128] [--set tasks=sst2,rte]
--       [--set train_rows=N] [--set eval_rows=N] [--set model=DIR] [--set threads=N]
--       [--set policies=adaptive+cache]  (a subset of none, static-last, adaptive, adaptive+cache,
--       auto; none, the baseline of every speedup, always runs; auto, the recommended preset
--       --policy auto with the cache (docs/algorithm.md), runs only when named)
--
-- The paper's recipe is recipe=paper (BERTAdam, stepped schedule); the default here is the
-- Hugging Face recipe (--set recipe=paper to switch). Both default to BERT-base learning
-- rates (2e-5 hf, 1e-5 paper); the default MiniLM model wants a higher one (--set lr=1e-4
-- is what docs/benchmarks.md uses on the default task; at 2e-5 MRPC stayed at the majority
-- class for over 100 steps). A full run on bert-base takes hours on
-- a CPU; train_rows/eval_rows give a quick look.
local af = require "autofreeze"
local S = af.settings

local glue = arg[1] or S.glue
if not glue then
  io.stderr:write("usage: autofreeze run experiments/paper.lua GLUE_DIR [--set ag_news=DIR] [--set imdb=DIR] ...\n")
  os.exit(2)
end

local list = af.report.list

local folders = {sst2 = "SST-2", mrpc = "MRPC", cola = "CoLA", rte = "RTE"}
local wanted = list(S.tasks or "sst2,mrpc,cola,rte")
local tasks = {}
for _, name in ipairs(wanted) do
  if not folders[name] then
    error(("unknown task '%s' in --set tasks (sst2, mrpc, cola, rte; AG News and IMDb with --set ag_news=DIR, imdb=DIR)"):format(name))
  end
  local dir = glue .. "/" .. folders[name]
  -- the default list takes the tasks that are there; a list given with --set must all be
  if S.tasks or af.exists(dir .. "/train.tsv") then
    tasks[#tasks + 1] = af.task.glue(name, dir)
  else
    print(("paper.lua: no %s/train.tsv, skipping %s"):format(dir, name))
  end
end
if S.ag_news then tasks[#tasks + 1] = af.task.docs("ag_news", S.ag_news) end
if S.imdb then tasks[#tasks + 1] = af.task.docs("imdb", S.imdb) end
if #tasks == 0 then error("no task found under " .. glue .. " (expected SST-2, MRPC, CoLA or RTE folders)") end

local model = af.model.load(S.model or "models/all-MiniLM-L6-v2")
local adaptive = af.policy.adaptive{percentile = S.percentile or 50}
local rows = af.sweep{
  tasks = tasks,
  policies = af.report.pick({
    {policy = af.policy.none(), label = "none"},
    {policy = af.policy.static{frozen = model.layers - 1}, label = "static-last"},
    {policy = adaptive, label = "adaptive"},
    {policy = adaptive, label = "adaptive+cache", cache = S.cache or "auto"},
    {policy = af.policy.auto{}, label = "auto", cache = S.cache or "auto"},  -- not the paper's: next to its rule
  }, S.policies or "none,static-last,adaptive,adaptive+cache", {"none"}, "paper.lua"),
  seeds = list(S.seeds or "1,2,3", tonumber),
  out_dir = S.out or "results/paper",
  continue_on_error = S.keep_going,
  train = {
    model = model, epochs = S.epochs or 3, batch = S.batch or 32, seq = S.seq or 128, lr = S.lr,
    recipe = S.recipe or "hf", intervals = S.intervals or 20, threads = S.threads or 0,
    max_train_rows = S.train_rows or 0, max_eval_rows = S.eval_rows or 0, progress = "auto",
  },
}
af.plot(rows, S.plots or "plots/out/paper")

-- the paper's table: per task and policy, mean over seeds
local report = af.report
local agg, order = {}, {}
for _, r in ipairs(rows) do
  local key = r.task .. "\0" .. r.label
  if not agg[key] then
    agg[key] = {task = r.task, label = r.label, metric = r.metric, n = 0, best = 0, train_time = 0, speedup = 0, ns = 0}
    order[#order + 1] = key
  end
  local a = agg[key]
  if r.best and r.best == r.best then
    a.n = a.n + 1
    a.best = a.best + r.best
    a.train_time = a.train_time + (r.train_time or 0)
  end
  if r.speedup then a.speedup, a.ns = a.speedup + r.speedup, a.ns + 1 end
end
local out = {}
for _, k in ipairs(order) do
  local a = agg[k]
  out[#out + 1] = {task = a.task, label = a.label, metric = a.metric, seeds = a.n,
                   best = a.n > 0 and a.best / a.n or nil, train_time = a.n > 0 and a.train_time / a.n or nil,
                   speedup = a.ns > 0 and a.speedup / a.ns or nil}
end
report.print(out, {{"task", "task"}, {"label", "policy"}, {"metric", "metric"}, {"seeds", "seeds"},
                   {"best", "best dev (mean)", "%.4f"}, {"train_time", "train time (s, mean)", "%.1f"},
                   {"speedup", "speedup (mean)", "%.2fx"}}, "paper table (means over seeds)")
