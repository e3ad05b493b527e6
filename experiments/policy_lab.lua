-- policy_lab.lua: which freeze policy keeps accuracy at what speed? Policies x tasks x
-- seeds on all-MiniLM-L6-v2, each policy compared with full fine-tuning *paired by seed*, with
-- 95% intervals over the seeds (issue 14; how to read the output: docs/policies.md).
--
--   autofreeze run experiments/policy_lab.lua [--set tasks=default,stsb,mrpc,rte]
--       [--set seeds=1,2,3] [--set policies=adaptive,adaptive-p25] (full always runs)
--       [--set glue=../shared/data/glue] [--set data=data/default] [--set model=DIR]
--       [--set epochs=3] [--set batch=16] [--set lr=1e-4] [--set intervals=20] [--set recipe=hf]
--       [--set seq=N] [--set seq_rte=N] (every task / one task) [--set train_rows=N]
--       [--set train_rows_stsb=N] (default: 12000 on the default task, all on GLUE)
--       [--set eval_rows=N] (default 0: the whole dev split) [--set eval_every=N]
--       [--set cache=memory] (the freezing policies; full never) [--set threads=0]
--       [--set out=results/policy_lab] [--set plots=plots/out/policy_lab]
--       [--set runs_figures=false] [--set keep_going=true] [--set list=true]
--       [--set target_speedup=2] [--set target_points=-0.5] (the figure's target lines)
--       [--set speedup=measured|median|in-run] (the figure's x: training times; their
--       median-based form; or each run's in-run estimate, for cells that ran under other loads)
--       [--set base=full] (the baseline label of the pairs; e.g. adaptive for the bf16 lines)
--       [--set tradeoff=adaptive,auto,...] (the policies of the trade-off line; default all run)
--
-- Output, per task: PLOTS/policy_lab_TASK.md and .csv (af.report.paired: the best dev metric's
-- mean difference to full fine-tuning with its paired 95% interval and the worst seed, the
-- training-time and wall-time speedups with intervals, time to full's mean best less 0.5
-- points) and PLOTS/pareto_TASK.png/.svg; the per-run figures of af.plot in PLOTS/runs.
--
-- Paired by seed: a seed fixes, in the engine, (1) the data order (core/data/batcher.c
-- shuffles with a generator seeded by --seed only), (2) the head initialisation
-- (core/model/checkpoint.c draws each new tensor from (seed, hash of its name)), and (3) the
-- dropout masks, which are counter-based: each mask is a function of (seed, step, micro-batch
-- row offset, layer and site) (core/run/train.c, core/model/bert.c), not of a running stream,
-- so freezing layers (whose dropout is off) never shifts the masks of the layers that still
-- train. The training subset (max_train_rows) is drawn with a fixed seed of its own, the same
-- for every seed and policy. So full fine-tuning and every policy with the same seed see the
-- same batches, start from the same head and drop the same units; they differ only by the
-- policy. The activation cache changes no number (docs/cache.md). One exception: "gated"
-- holds a validation slice out of the training rows (never the dev split), so it trains on
-- fewer rows in another order; it is still paired by seed (same head, same dev split), and a
-- line of full fine-tuning with the same val_rows = N holds out the same rows: its exact pair.
--
-- Resumable: every task is one af.sweep into OUT/TASK; a finished cell (complete file, same
-- settings) is skipped, a killed one resumes from its checkpoint (every 10 minutes here, so
-- the checkpoints add little to the training time; --set checkpoint_every=...). Rerun the same
-- command to continue. Each task is its own sweep (its own sequence length and row budget),
-- so the cluster flags (--list-cells, --cell, --slurm; docs/cluster.md) take one task at a
-- time: --set tasks=stsb. --report prints the tables and figures of what has finished.
--
-- Sequence lengths: a batch is padded to its longest example only, so the limit matters for
-- the few long rows (truncated; counted in /config train_truncated). Defaults: default task 64
-- (median 12 tokens), STS-B 128, MRPC 128 (pairs up to about 100 tokens), RTE 256 (pairs to
-- about 300; 99% under about 210).
local af = require "autofreeze"
local S = af.settings
local list = af.report.list

-- The policies, one line each: label (tables, figures, file names, --set policies), the
-- policy for model m (nil: this build has no such policy), and af.train options of that
-- variant (a line whose options this build's af.train does not know is left out). Every
-- freezing policy runs with the activation cache (--set cache); full fine-tuning, the
-- baseline, never does.
local CATALOG = {
  {"full", function() return af.policy.none() end, {cache = "off"}},
  {"adaptive", function() return af.policy.adaptive{} end},                        -- the paper's rule (percentile 50)
  {"static-last", function(m) return af.policy.static{frozen = m.layers - 1} end}, -- the paper's all-but-last baseline
  {"adaptive-p25", function() return af.policy.adaptive{percentile = 25} end},
  {"adaptive-keep2", function(m) return af.policy.adaptive{max_depth = m.layers - 2} end}, -- at least 2 layers train
  -- issue 14's policies, where the engine has them
  {"adaptive-warmup", function() return af.policy.adaptive{} end, {freeze_after = "warmup"}},
  {"adaptive-step1", function() return af.policy.adaptive{} end, {max_freeze_step = 1}},
  {"adaptive-warmup-step1", function() return af.policy.adaptive{} end, {freeze_after = "warmup", max_freeze_step = 1}},
  {"gated", function() return af.policy.gated and af.policy.gated{} end},
  -- gated's exact pair, run only when named: full fine-tuning holding out the same slice
  -- (val_rows = auto: gated's default, 10% of the training rows the run loads, at most 2000)
  {"full-val", function() return af.policy.none() end, {cache = "off", val_rows = "auto"}, optin = true},
  {"pipe", function() return af.policy.pipe and af.policy.pipe{} end},
  -- issue 16's precision study, run only when named (--set policies=...): bf16 against fp32,
  -- paired by seed like the policies. Against full fine-tuning (fp32) the table gives the
  -- combined speedup and metric difference; --set base=adaptive --report pairs the
  -- adaptive-*-bf16 lines with the fp32 adaptive rule instead (bf16's own effect).
  {"full-bf16", function() return af.policy.none() end, {cache = "off", precision = "bf16"}, optin = true},
  {"adaptive-frozen-bf16", function() return af.policy.adaptive{} end, {frozen_precision = "bf16"}, optin = true},
  {"adaptive-bf16", function() return af.policy.adaptive{} end, {precision = "bf16"}, optin = true},
  -- the recommended preset under --precision bf16: the two speedups stacked, against fp32 full
  {"auto-bf16", function() return af.policy.auto and af.policy.auto{} end, {precision = "bf16"}, optin = true},
  -- layer-wise learning-rate decay (issue 14: orthogonal to the policy, it changes what the
  -- lower layers would still learn), run only when named. X = 0.9 is not tuned here: it is
  -- Sun et al. 2019's 0.95 per layer over BERT-base's 12 layers (0.95^12 = 0.54 from the top
  -- layer to the bottom one) spread over MiniLM's 6 (0.9^6 = 0.53). full-llrd is the pair
  -- that separates the decay's own effect (--set base=full-llrd --report).
  {"full-llrd", function() return af.policy.none() end, {cache = "off", layer_lr_decay = 0.9}, optin = true},
  {"adaptive-llrd", function() return af.policy.adaptive{} end, {layer_lr_decay = 0.9}, optin = true},
  {"auto-llrd", function() return af.policy.auto and af.policy.auto{} end, {layer_lr_decay = 0.9}, optin = true},
  -- the AutoFreeze reference code's setting (issue 14): --recipe reference (BERTAdam, per-tensor
  -- clipping, the stepped schedule) with its 10 intervals, the lab's lr; run only when named,
  -- full-ref its pair (--set base=full-ref --report: the rule's own cost under that recipe)
  {"full-ref", function() return af.policy.none() end, {cache = "off", recipe = "reference", intervals = 10}, optin = true},
  {"adaptive-ref", function() return af.policy.adaptive{} end, {recipe = "reference", intervals = 10}, optin = true},
}
-- Built-in policies that af.policy gains without a line above (FreezeOut, ...) join with
-- their defaults, labelled by their name: a new C policy is in the lab without an edit.
local KNOWN = {none = true, static = true, adaptive = true, custom = true}

-- Whether this build's af.train takes an option: an unknown key is refused before anything
-- runs (as af.sweep probes checkpoint_every; under a cluster flag af.train is let through
-- for the probe, which trains nothing).
local has_opt = {}
local function engine_has(key)
  if has_opt[key] == nil then
    local cl = af.cluster
    if cl then cl.in_cell = true end
    local _, err = pcall(af.train, {[key] = "intervals"})
    if cl then cl.in_cell = false end
    has_opt[key] = not tostring(err):find("unknown option '" .. key .. "'", 1, true)
  end
  return has_opt[key]
end

local function policies(model)
  local out = {}
  local named = {}
  for _, l in ipairs(S.policies and list(S.policies) or {}) do named[l] = true end
  for _, e in ipairs(CATALOG) do
    KNOWN[e[1]] = true
    local p, usable = e[2](model), not e.optin or named[e[1]]
    for k in pairs(e[3] or {}) do usable = usable and engine_has(k) end
    if p and usable then
      local v = {policy = p, label = e[1]}
      for k, x in pairs(e[3] or {}) do v[k] = x end
      out[#out + 1] = v
    end
  end
  local extra = {}
  for name, ctor in pairs(af.policy) do
    if not KNOWN[name] and type(ctor) == "function" then extra[#extra + 1] = name end
  end
  table.sort(extra)
  for _, name in ipairs(extra) do
    local ok, p = pcall(af.policy[name], {})
    if ok and p then
      out[#out + 1] = {policy = p, label = (name:gsub("_", "-"))}
    else
      print(("policy_lab: af.policy.%s needs settings (%s): give it a line in CATALOG"):format(name, tostring(p)))
    end
  end
  for _, v in ipairs(out) do
    if v.cache == nil then v.cache = S.cache or "memory" end
  end
  return af.report.pick(out, S.policies, {"full"}, "policy_lab")
end

-- The tasks: the default task (a fixed subset of its training rows, the whole dev split)
-- and GLUE folders under --set glue.
local GLUE = {stsb = "STS-B", mrpc = "MRPC", rte = "RTE", sst2 = "SST-2", cola = "CoLA", qnli = "QNLI",
              qqp = "QQP", mnli = "MNLI", wnli = "WNLI"}
local SEQ = {default = 64, stsb = 128, mrpc = 128, rte = 256}

local function open_task(name, explicit)
  if name == "default" then
    local dir = S.data or "data/default"
    if not af.exists(dir .. "/train.tsv") then
      print("building the default task into " .. dir .. " (once)")
      if not os.execute(af.bin .. " data build-default --out " .. dir) then
        error("could not build the default task; see the message above")
      end
    end
    return af.task.default(dir), S.train_rows_default or S.train_rows or 12000
  end
  if not GLUE[name] then
    error(("policy_lab: unknown task '%s' in --set tasks (default, stsb, mrpc, rte, sst2, cola, ...)"):format(name), 0)
  end
  local dir = (S.glue or "../shared/data/glue") .. "/" .. GLUE[name]
  if not explicit and not af.exists(dir .. "/train.tsv") then
    print(("policy_lab: no %s/train.tsv, skipping %s (--set glue=DIR)"):format(dir, name))
    return nil
  end
  return af.task.glue(name, dir), S["train_rows_" .. name] or S.train_rows or 0
end

local model = af.model.load(S.model or "models/all-MiniLM-L6-v2")
local variants = policies(model)
local seeds = list(S.seeds or "1,2,3", tonumber)
local out_dir, plot_dir = S.out or "results/policy_lab", S.plots or "plots/out/policy_lab"

-- Seed by seed: each seed's full fine-tuning and its policies run back to back, so that a
-- change in the machine's load falls on both sides of a pair (the cells keep af.sweep's
-- numbers; under a cluster flag af.sweep itself lists, runs one cell, submits or reports).
local function run_seed_major(sw)
  local order = {}
  for i = 1, #sw do order[i] = i end
  local pos = {}
  for k, seed in ipairs(seeds) do pos[seed] = k end
  table.sort(order, function(a, b)
    if pos[sw[a].seed] ~= pos[sw[b].seed] then return pos[sw[a].seed] < pos[sw[b].seed] end
    return a < b
  end)
  for _, i in ipairs(order) do sw:cell(i) end
  return sw
end

local rows = {}
for _, name in ipairs(list(S.tasks or "default,stsb,mrpc,rte")) do
  local task, train_rows = open_task(name, S.tasks ~= nil)
  if task then
    local spec = {
      tasks = {task}, policies = variants, seeds = seeds, out_dir = out_dir .. "/" .. name,
      continue_on_error = S.keep_going, print = false, run = af.cluster ~= nil,
      train = {
        model = model, epochs = S.epochs or 3, batch = S.batch or 16, lr = S.lr or 1e-4, recipe = S.recipe,
        seq = S["seq_" .. name] or S.seq or SEQ[name] or 128, intervals = S.intervals or 20,
        eval_every = S.eval_every, max_train_rows = train_rows, max_eval_rows = S.eval_rows or 0,
        threads = S.threads or 0, checkpoint_every = S.checkpoint_every or "10m", progress = "auto",
      },
    }
    local sw = af.sweep(spec)
    if S.list then
      sw:list(("policy_lab: %s, %d cells in %s/%s"):format(name, #sw, out_dir, name))
    elseif not af.cluster then
      run_seed_major(sw)
    end
    for _, r in ipairs(sw) do rows[#rows + 1] = r end
  end
end
if S.list then return end
if #rows == 0 then error("policy_lab: no task to run (see --set tasks and --set glue)", 0) end

-- The baseline of every pair: full fine-tuning, or another line (--set base=adaptive: the
-- precision lines against the fp32 rule; runs of other labels are then compared with it too).
local stats = af.report.paired(rows, {base = S.base or "full"})
if #stats == 0 then
  print("policy_lab: no task has a finished full fine-tuning run yet: no table")
  return
end
af.report.paired_write(stats, plot_dir, {name = "policy_lab",
  title = ("policy lab, %s, seeds %s"):format(model.path, table.concat(seeds, ","))})
af.report.pareto(stats, plot_dir, {target_x = S.target_speedup or 2, target_y = S.target_points or -0.5,
                                   speedup = S.speedup, quiet = true})
-- every run's accuracy against how much it froze, one line per task over all the policies:
-- which policies keep more than their frozen share explains (af.report.tradeoff)
local fits = af.report.tradeoff(rows, {base = S.base or "full", labels = S.tradeoff,
                                      target_speedup = S.target_speedup or 2})
if #fits > 0 then
  print("\ntrade-off: every run's difference to its seed's baseline against its frozen share (mean frozen depth / layers)")
  af.report.tradeoff_write(fits, plot_dir, {name = "policy_lab_tradeoff", quiet = true,
                                            target_y = S.target_points or -0.5})
end
local done = {}
for _, r in ipairs(rows) do if r.state ~= "failed" then done[#done + 1] = r end end
if S.runs_figures ~= false and #done > 0 then af.plot(done, plot_dir .. "/runs", {quiet = true}) end
print(("\npolicy_lab: tables, CSV, Pareto and trade-off figures in %s (pareto_TASK.png, tradeoff_TASK.png)%s"):format(plot_dir,
      S.runs_figures ~= false and ("; per-run figures in " .. plot_dir .. "/runs") or ""))
print("speedup: full fine-tuning's training time / the run's (evaluation excluded), per seed, geometric mean;")
print("intervals: paired by seed, Student t over the seeds (docs/policies.md); worst seed: the lowest difference")
