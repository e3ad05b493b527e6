-- autofreeze.report (af.report): small pure-Lua helpers for result tables, used by af.sweep
-- and the experiments: speedups against the 'none' run, aligned text tables, CSV, and the
-- policy lab's paired statistics by seed with their tables and Pareto figure. Rows are
-- plain tables (summaries from af.train / af.results.summary plus a few labels).
local M = {}

local function isnan(x) return type(x) == "number" and x ~= x end

-- Format one cell: numbers with fmt (default "%.4g"), NaN and nil as "-".
local function cell(v, fmt)
  if v == nil or isnan(v) then return "-" end
  if type(v) == "number" then
    if fmt then return string.format(fmt, v) end
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.4g", v)
  end
  return tostring(v)
end
M.cell = cell

-- Fill row.speedup (and row.ttb_speedup, row.wall_speedup) for every row: the training time
-- of the row whose policy is `base` ("none" by default, without cache) that has the same
-- values for the `match` keys ({"task", "seed", "knob"} by default), divided by the row's own
-- (train_time, falling back to total_time); wall_speedup the same for the whole run's wall
-- time (evaluations, checkpoints and set-up included).
function M.speedups(rows, opts)
  opts = opts or {}
  local base = opts.base or "none"
  local match = opts.match or {"task", "seed", "knob"}
  local function t(row) return row.train_time or row.total_time end
  for _, r in ipairs(rows) do
    r.speedup, r.ttb_speedup, r.wall_speedup = nil, nil, nil
    for _, b in ipairs(rows) do
      local same = b.policy == base and (b.cache == nil or b.cache == "off")
      for _, k in ipairs(match) do same = same and b[k] == r[k] end
      if same then
        if t(b) and t(r) and t(r) > 0 then r.speedup = t(b) / t(r) end
        if b.wall_time and r.wall_time and r.wall_time > 0 then r.wall_speedup = b.wall_time / r.wall_time end
        if b.time_to_best and r.time_to_best and r.time_to_best > 0 then
          r.ttb_speedup = b.time_to_best / r.time_to_best
        end
        break
      end
    end
  end
  return rows
end

-- Columns: a list of {key, header, fmt} (fmt optional, a string.format pattern or a
-- function(value, row) -> string). Returns the Markdown table as a string.
function M.format(rows, columns)
  local head, widths, lines = {}, {}, {}
  for i, c in ipairs(columns) do
    head[i] = c[2] or c[1]
    widths[i] = #head[i]
  end
  local body = {}
  for r, row in ipairs(rows) do
    body[r] = {}
    for i, c in ipairs(columns) do
      local v = row[c[1]]
      local s = type(c[3]) == "function" and c[3](v, row) or cell(v, c[3])
      body[r][i] = s
      if #s > widths[i] then widths[i] = #s end
    end
  end
  local function line(cells, numeric)
    local out = {}
    for i, s in ipairs(cells) do
      out[i] = numeric and numeric[i] and string.rep(" ", widths[i] - #s) .. s or s .. string.rep(" ", widths[i] - #s)
    end
    return "| " .. table.concat(out, " | ") .. " |"
  end
  local numeric = {}
  for i in ipairs(columns) do
    numeric[i] = true
    for r = 1, #rows do
      local v = rows[r][columns[i][1]]
      if v ~= nil and type(v) ~= "number" then numeric[i] = false end
    end
  end
  lines[1] = line(head)
  local sep = {}
  for i in ipairs(columns) do sep[i] = string.rep("-", widths[i] - 1) .. (numeric[i] and ":" or "-") end
  lines[2] = "| " .. table.concat(sep, " | ") .. " |"
  for r = 1, #body do lines[#lines + 1] = line(body[r], numeric) end
  return table.concat(lines, "\n") .. "\n"
end

-- Print the table (M.format) to io.stdout, with an optional title line.
function M.print(rows, columns, title)
  if title then io.write("\n", title, "\n\n") end
  io.write(M.format(rows, columns))
  io.stdout:flush()
end

-- Write rows as CSV with the given columns (keys only).
function M.csv(path, rows, columns)
  local f = assert(io.open(path, "w"))
  local head = {}
  for i, c in ipairs(columns) do head[i] = c[1] end
  f:write(table.concat(head, ","), "\n")
  for _, row in ipairs(rows) do
    local out = {}
    for i, c in ipairs(columns) do
      local v = row[c[1]]
      local s = (v == nil or isnan(v)) and "" or tostring(v)
      if s:find('[,"\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
      out[i] = s
    end
    f:write(table.concat(out, ","), "\n")
  end
  f:close()
end

-- The default columns of a sweep table.
M.sweep_columns = {
  {"id", "run"}, {"task", "task"}, {"label", "policy"}, {"seed", "seed"},
  {"metric", "metric"}, {"best", "best", "%.4f"}, {"train_time", "train time (s)", "%.1f"},
  {"time_to_best", "time to best (s)", "%.1f"}, {"final_depth", "final depth"},
  {"speedup", "speedup", "%.2fx"}, {"state", "this sweep"},
}

-- A comma- or space-separated --set value as a list ("25,50,75" -> {25, 50, 75} with
-- conv = tonumber). A single number from --set works too.
function M.list(s, conv)
  local t = {}
  for x in tostring(s):gmatch("[^,%s]+") do t[#t + 1] = conv and conv(x) or x end
  return t
end

-- The entries of `items` (each with a `label`) named in the --set value `wanted` (as for
-- list), in the items' order, plus those labelled in `always`; all items when wanted is
-- nil. An unknown label is an error naming the known ones; `what` names the caller.
function M.pick(items, wanted, always, what)
  if wanted == nil then return items end
  local known, want, names = {}, {}, {}
  for _, it in ipairs(items) do known[it.label] = true; names[#names + 1] = it.label end
  for _, label in ipairs(always or {}) do want[label] = true end
  for _, label in ipairs(M.list(wanted)) do
    if not known[label] then
      error(("%s: unknown policy label '%s' in --set policies (known: %s)"):format(what or "pick", label,
            table.concat(names, ", ")), 0)
    end
    want[label] = true
  end
  local out = {}
  for _, it in ipairs(items) do if want[it.label] then out[#out + 1] = it end end
  return out
end

-- The task named by --set task (default "default") in --set data (default "data/default").
function M.settings_task(S)
  local af = require "autofreeze"
  local name, data = S.task or "default", S.data or "data/default"
  return name == "default" and af.task.default(data) or af.task.open(name, data)
end

-- ---- paired statistics by seed (the policy lab: experiments/policy_lab.lua, docs/policies.md) ----

-- t(0.975; df) for df = 1..30: the critical value of a two-sided 95% interval of Student's t.
-- Values as in R's qt(0.975, df) and NIST/SEMATECH e-Handbook of Statistical Methods, table
-- 1.3.6.7.2 (there to 3 decimals); checked here by integrating the t density numerically.
M.T975 = {
  12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836, 2.446911851, 2.364624252,
  2.306004135, 2.262157163, 2.228138852, 2.200985160, 2.178812830, 2.160368656, 2.144786688,
  2.131449546, 2.119905299, 2.109815578, 2.100922040, 2.093024054, 2.085963447, 2.079613845,
  2.073873068, 2.068657610, 2.063898562, 2.059538553, 2.055529439, 2.051830516, 2.048407142,
  2.045229642, 2.042272456,
}

-- t(0.975; df): the table for df <= 30; beyond it the Cornish-Fisher expansion in 1/df of
-- Abramowitz & Stegun 26.7.5 around z = 1.959964 (error < 5e-8 for df > 30). nil for df < 1.
function M.t_quantile(df)
  if df < 1 then return nil end
  if df <= 30 and df == math.floor(df) then return M.T975[math.tointeger(df)] end
  local z = 1.959963984540054
  local g1 = (z ^ 3 + z) / 4
  local g2 = (5 * z ^ 5 + 16 * z ^ 3 + 3 * z) / 96
  local g3 = (3 * z ^ 7 + 19 * z ^ 5 + 17 * z ^ 3 - 15 * z) / 384
  local g4 = (79 * z ^ 9 + 776 * z ^ 7 + 1482 * z ^ 5 - 1920 * z ^ 3 - 945 * z) / 92160
  return z + g1 / df + g2 / df ^ 2 + g3 / df ^ 3 + g4 / df ^ 4
end

-- Mean of xs with its 95% t interval: {n, mean, sd, half, lo, hi}; with one value there is
-- no interval (sd, half, lo, hi nil), with none not even a mean.
function M.mean_interval(xs)
  local n, s = #xs, 0
  for _, x in ipairs(xs) do s = s + x end
  local out = {n = n, mean = n > 0 and s / n or nil}
  if n < 2 then return out end
  local ss = 0
  for _, x in ipairs(xs) do ss = ss + (x - out.mean) ^ 2 end
  out.sd = math.sqrt(ss / (n - 1))
  out.half = M.t_quantile(n - 1) * out.sd / math.sqrt(n)
  out.lo, out.hi = out.mean - out.half, out.mean + out.half
  return out
end

-- Per-seed ratios (speedups) summarised on the log scale: the geometric mean and the t
-- interval of the mean log ratio, both mapped back with exp: {n, mean, lo, hi}.
function M.ratio_interval(ratios)
  local logs = {}
  for i, r in ipairs(ratios) do logs[i] = math.log(r) end
  local m = M.mean_interval(logs)
  return {n = m.n, mean = m.mean and math.exp(m.mean), lo = m.lo and math.exp(m.lo), hi = m.hi and math.exp(m.hi)}
end

-- Training time (the steps' /steps/t_total summed; evaluation excluded) until the first dev
-- evaluation whose primary metric reaches `target`, and that evaluation's step; nil when no
-- evaluation does ("never"). r: a results file's path or what af.results.read returns.
function M.time_to_target(r, target)
  if type(r) == "string" then r = require("autofreeze").results.read(r) end
  local values = r.evals[r.summary.best_metric] or {}
  local steps, times = r.steps.step or {}, r.steps.t_total or {}
  local si, cum = 1, 0
  for e, estep in ipairs(r.evals.step or {}) do
    while si <= #steps and steps[si] <= estep do cum, si = cum + times[si], si + 1 end
    local v = values[e]
    if v and v == v and v >= target then return cum, estep end
  end
  return nil
end

-- A run's steps grouped by frozen depth: depth -> the step times at it; nil without step
-- records. r: af.results.read's table.
local function depth_groups(r)
  local t, dep = r and r.steps and r.steps.t_total, r and r.steps and r.steps.frozen_depth
  if not t or not dep or #t == 0 or #dep ~= #t then return nil end
  local groups = {}
  for i = 1, #t do
    local g = groups[dep[i]] or {}
    groups[dep[i]] = g
    g[#g + 1] = t[i]
  end
  return groups, #t
end

-- The median of a list of numbers (sorts v in place).
function M.median(v)
  table.sort(v)
  local n = #v
  return n % 2 == 1 and v[(n + 1) // 2] or (v[n // 2] + v[n // 2 + 1]) / 2
end

-- sum over depths of that depth's median step time times its steps
local function median_cost(groups)
  local cost = 0
  for _, g in pairs(groups) do cost = cost + M.median(g) * #g end
  return cost
end

-- A run's training time with load bursts taken out: the sum over depths of that depth's
-- median step time times its steps. Two runs' median times compare (the median-based
-- speedup) when a burst of load hit some of their steps; a load that lasted a whole run
-- still counts. nil without step records.
function M.median_time(r)
  local groups = depth_groups(r)
  return groups and median_cost(groups)
end

-- The speedup from freezing alone, measured inside one run, so blind to the machine's load
-- and to how the baseline ran: the run's median step time at depth 0 (its steps before the
-- first freeze, which are full fine-tuning's at the run's own precision and threads) times
-- its steps, over M.median_time. An estimate: a depth's steps with cache hits and misses
-- share one median. nil without step records or without a step at depth 0 (a static policy).
function M.freeze_speedup(r)
  local groups, n = depth_groups(r)
  if not groups or not groups[0] then return nil end
  local cost = median_cost(groups)
  if cost <= 0 then return nil end
  return M.median(groups[0]) * n / cost
end

-- How a run was timed: two runs' times compare only when they ran with the same threads on
-- the same host. nil when the file does not say.
local function timing_of(res)
  local c = res and res.config
  if not c or c.threads == nil then return nil end
  return ("threads=%s host=%s"):format(tostring(c.threads), tostring(c.host))
end

local function wall_of(row, res)
  return row.wall_time or (res and res.summary and res.summary.wall_time)
end

-- One policy's statistics against the baseline on one task: `runs` and `base` map seed -> row.
local function paired_one(task, label, runs, base, target, o)
  local seeds = {}
  for seed in pairs(runs) do seeds[#seeds + 1] = seed end
  table.sort(seeds)
  local d, sp, wall, tta, tta_sp, bests, depths, fsp, msp = {}, {}, {}, {}, {}, {}, {}, {}, {}
  local st = {task = task, label = label, seeds = #seeds, target = target, never = 0}
  local apart = {}  -- seeds whose run and baseline were timed differently
  for _, seed in ipairs(seeds) do
    local p, b = runs[seed], base[seed]
    st.policy, st.metric = st.policy or p.policy, st.metric or p.metric
    if b then
      bests[#bests + 1], depths[#depths + 1] = p.best, p.final_depth
      local x = o.scale * (p.best - b.best)
      d[#d + 1] = x
      if not st.worst or x < st.worst then st.worst, st.worst_seed = x, seed end
      local pr, br = o.read(p), o.read(b)
      local pt, bt_ = timing_of(pr), timing_of(br)
      local same = not (pt and bt_) or pt == bt_
      if not same then apart[#apart + 1] = ("seed %s: %s vs %s"):format(seed, pt, bt_) end
      if same and p.train_time and b.train_time and p.train_time > 0 then sp[#sp + 1] = b.train_time / p.train_time end
      local pw, bw = wall_of(p, pr), wall_of(b, br)
      if same and pw and bw and pw > 0 then wall[#wall + 1] = bw / pw end
      if pr then
        local t = M.time_to_target(pr, target)
        if t then tta[#tta + 1] = t else st.never = st.never + 1 end
        local bt = br and M.time_to_target(br, target)
        if same and t and bt and t > 0 then tta_sp[#tta_sp + 1] = bt / t end
        local f = M.freeze_speedup(pr)
        if f then fsp[#fsp + 1] = f end
        local pm, bm = M.median_time(pr), br and M.median_time(br)
        if same and pm and bm and pm > 0 then msp[#msp + 1] = bm / pm end
      end
    end
  end
  local m = M.mean_interval(d)
  st.n, st.diff, st.diff_lo, st.diff_hi = m.n, m.mean, m.lo, m.hi
  local s = M.ratio_interval(sp)
  st.speedup, st.speedup_lo, st.speedup_hi = s.mean, s.lo, s.hi
  local w = M.ratio_interval(wall)
  st.wall_speedup, st.wall_speedup_lo, st.wall_speedup_hi = w.mean, w.lo, w.hi
  st.best = M.mean_interval(bests).mean
  st.final_depth = M.mean_interval(depths).mean
  st.tta_n = #tta + st.never
  if #tta > 0 then st.tta, st.tta_reached = M.mean_interval(tta).mean, #tta end
  if st.tta_n > 0 and #tta == 0 then st.tta_reached = 0 end
  st.tta_speedup = M.ratio_interval(tta_sp).mean
  local fs = M.ratio_interval(fsp)
  st.freeze_speedup, st.freeze_speedup_lo, st.freeze_speedup_hi = fs.mean, fs.lo, fs.hi
  local ms = M.ratio_interval(msp)
  st.median_speedup, st.median_speedup_lo, st.median_speedup_hi = ms.mean, ms.lo, ms.hi
  local notes = {}
  if st.n == 1 then notes[1] = "1 seed: no interval" elseif st.n == 0 then notes[1] = "no paired seed" end
  if #apart > 0 then
    st.timed_apart = #apart
    notes[#notes + 1] = ("times not compared on %d seed%s (%s)"):format(#apart, #apart > 1 and "s" or "",
                                                                    table.concat(apart, "; "))
  end
  if #notes > 0 then st.note = table.concat(notes, "; ") end
  return st
end

-- Paired statistics by seed, per task and policy label, against the baseline runs (label
-- opts.base; default: the label of the runs with policy "none" and no cache). For every label:
-- n (seeds with both runs), the best dev metric's mean difference to the baseline in points
-- (opts.scale = 100 per metric unit) with its paired 95% t interval and the worst seed's
-- difference; the training-time speedup (baseline / run, per seed) as a geometric mean with
-- the t interval of the mean log ratio, and the wall-time speedup likewise when the files
-- have wall_time; time to accuracy: mean training time until the dev metric first reaches
-- the baseline's mean best less opts.delta points (0.5), over the seeds that reach it
-- (tta_reached of tta_n; never: tta nil); the mean best and final depth over the paired
-- seeds; seeds: the label's runs, paired or not. Rows need task, label, policy, seed, best,
-- metric, train_time and out (or results = what af.results.read returns); rows without a
-- best (failed runs) are left out. Returns a list of stat rows, tasks and labels in order
-- of appearance, the baseline first.
function M.paired(rows, opts)
  local o = {scale = 100, delta = 0.5}
  for k, v in pairs(opts or {}) do o[k] = v end
  local cache = {}
  o.read = o.read or function(row)
    if row.results then return row.results end
    if not row.out then return nil end
    if cache[row.out] == nil then
      local ok, r = pcall(require("autofreeze").results.read, row.out)
      cache[row.out] = ok and r or false
    end
    return cache[row.out] or nil
  end
  local base = o.base
  if not base then
    for _, r in ipairs(rows) do
      if r.policy == "none" and (r.cache == nil or r.cache == "off") then base = r.label; break end
    end
  end
  if not base then error("af.report.paired: no baseline: no run of policy 'none' without cache (or opts.base)", 2) end
  local tasks, by, labels = {}, {}, {}
  for _, r in ipairs(rows) do
    if r.best ~= nil and r.best == r.best and r.state ~= "failed" then
      if not by[r.task] then by[r.task], labels[r.task], tasks[#tasks + 1] = {}, {}, r.task end
      local t = by[r.task]
      if not t[r.label] then
        t[r.label] = {}
        if r.label == base then table.insert(labels[r.task], 1, r.label) else labels[r.task][#labels[r.task] + 1] = r.label end
      end
      t[r.label][r.seed] = r
    end
  end
  local out = {}
  for _, task in ipairs(tasks) do
    local b = by[task][base]
    if b then
      local bests = {}
      for _, r in pairs(b) do bests[#bests + 1] = r.best end
      local target = M.mean_interval(bests).mean - o.delta / o.scale
      for _, label in ipairs(labels[task]) do
        local st = paired_one(task, label, by[task][label], b, target, o)
        if label == base then st.note = "baseline" end
        out[#out + 1] = st
      end
    else
      io.stderr:write(("af.report.paired: task %s has no baseline run (%s): left out\n"):format(task, base))
    end
  end
  return out
end

-- The trade-off line of each task (issue 14's question: does a policy keep more accuracy than
-- the amount it freezes explains?). Every run r of a policy other than the baseline is a point:
-- x_r, its frozen share (the mean frozen depth over its steps / the layers: 0 is full
-- fine-tuning, 1 all layers frozen from the first step), and d_r, its best dev metric minus its
-- seed's baseline's (points). A least-squares line d = a + b x over all the task's points (every
-- policy, every seed); then per policy the mean of its runs' residuals from the line with a 95%
-- t interval over its seeds: above 0, the policy keeps more than the other policies at the same
-- frozen share. Descriptive: the line is fitted to the same runs, and runs of one seed share
-- their baseline. rows: as af.report.paired's (task, label, seed, best, out or results);
-- opts.base (default "full"), opts.labels (only these policies; default all), opts.scale (100).
-- The speed side: each run's in-run speedup (M.freeze_speedup) gives 1/speedup = 1 - c x (least
-- squares through (0, 1)), so x_at = (1 - 1/target)/c is the share a target speedup
-- (opts.target_speedup, default 2) takes, and d_at the line there, with the 95% interval of
-- the line's mean at x_at.
-- Returns one fit per task with at least 3 points: {task, metric, n, a, b, b_lo, b_hi, r2,
-- cost_slope, x_at, d_at, d_at_lo, d_at_hi, points = {{label, seed, x, d, resid, speedup}},
-- policies = {{task, label, n, x, d, resid, resid_lo, resid_hi}}}.
function M.tradeoff(rows, opts)
  local o = {base = "full", scale = 100}
  for k, v in pairs(opts or {}) do o[k] = v end
  local want
  if o.labels then
    want = {}
    for _, l in ipairs(type(o.labels) == "table" and o.labels or M.list(o.labels)) do want[l] = true end
  end
  local af = require "autofreeze"
  local function share(row)  -- the run's frozen share, and its in-run speedup (M.freeze_speedup)
    local r = row.results
    if not r and row.out then
      local ok, x = pcall(af.results.read, row.out)
      r = ok and x or nil
    end
    local dep = r and r.steps and r.steps.frozen_depth
    if not dep or #dep == 0 or not r.layers or r.layers < 1 then return nil end
    local sum = 0
    for _, k in ipairs(dep) do sum = sum + k end
    return sum / #dep / r.layers, M.freeze_speedup(r)
  end
  local tasks, by = {}, {}
  for _, r in ipairs(rows) do
    if r.best ~= nil and r.best == r.best and r.state ~= "failed" then
      if not by[r.task] then by[r.task], tasks[#tasks + 1] = {base = {}, runs = {}}, r.task end
      if r.label == o.base then by[r.task].base[r.seed] = r
      elseif not want or want[r.label] then table.insert(by[r.task].runs, r) end
    end
  end
  local fits = {}
  for _, task in ipairs(tasks) do
    local pts, metric = {}, nil
    for _, r in ipairs(by[task].runs) do
      local b = by[task].base[r.seed]
      local x, speed
      if b then x, speed = share(r) end
      if x then
        pts[#pts + 1] = {label = r.label, seed = r.seed, x = x, d = o.scale * (r.best - b.best), speedup = speed}
        metric = metric or r.metric
      end
    end
    local n = #pts
    if n >= 3 then
      local sx, sd = 0, 0
      for _, p in ipairs(pts) do sx, sd = sx + p.x, sd + p.d end
      local xb, db = sx / n, sd / n
      local sxx, sxy, syy = 0, 0, 0
      for _, p in ipairs(pts) do
        sxx, sxy, syy = sxx + (p.x - xb) ^ 2, sxy + (p.x - xb) * (p.d - db), syy + (p.d - db) ^ 2
      end
      local fit = {task = task, metric = metric, n = n, points = pts, policies = {}}
      if sxx > 0 then
        fit.b = sxy / sxx
        fit.a = db - fit.b * xb
        local sse = 0
        for _, p in ipairs(pts) do
          p.resid = p.d - (fit.a + fit.b * p.x)
          sse = sse + p.resid ^ 2
        end
        fit.r2 = syy > 0 and 1 - sse / syy or nil
        local t, s2 = M.t_quantile(n - 2), sse / (n - 2)
        local h = t * math.sqrt(s2 / sxx)
        fit.b_lo, fit.b_hi = fit.b - h, fit.b + h
        -- the speed side: a step's relative cost falls with the frozen share, 1/speedup = 1 - c x
        -- (least squares through full fine-tuning's (0, 1), over the runs' in-run speedups); the
        -- share at the target speedup, and the accuracy line there with its 95% interval
        local cx, xx = 0, 0
        for _, p in ipairs(pts) do
          if p.speedup then cx, xx = cx + p.x * (1 - 1 / p.speedup), xx + p.x ^ 2 end
        end
        local target = o.target_speedup or 2
        if xx > 0 and cx > 0 then
          fit.cost_slope, fit.target_speedup = cx / xx, target
          fit.x_at = (1 - 1 / target) / fit.cost_slope
          fit.d_at = fit.a + fit.b * fit.x_at
          local hd = t * math.sqrt(s2 * (1 / n + (fit.x_at - xb) ^ 2 / sxx))
          fit.d_at_lo, fit.d_at_hi = fit.d_at - hd, fit.d_at + hd
        end
        local order, per = {}, {}
        for _, p in ipairs(pts) do
          if not per[p.label] then per[p.label], order[#order + 1] = {xs = {}, ds = {}, es = {}}, p.label end
          local g = per[p.label]
          g.xs[#g.xs + 1], g.ds[#g.ds + 1], g.es[#g.es + 1] = p.x, p.d, p.resid
        end
        for _, label in ipairs(order) do
          local g, e = per[label], M.mean_interval(per[label].es)
          fit.policies[#fit.policies + 1] = {task = task, label = label, n = e.n, x = M.mean_interval(g.xs).mean,
                                             d = M.mean_interval(g.ds).mean, resid = e.mean, resid_lo = e.lo,
                                             resid_hi = e.hi}
        end
      end
      fits[#fits + 1] = fit
    end
  end
  return fits
end

M.tradeoff_columns = {
  {"label", "policy"},
  {"n", "seeds"},
  {"x", "frozen share (mean)", "%.3f"},
  {"d", "vs baseline, points (mean)", "%+.2f"},
  {"resid", "above the line, points [95% CI]", function(v, r) return M.interval_text(v, r.resid_lo, r.resid_hi, "%+.2f") end},
}

-- af.report.tradeoff's fits as a Markdown table per task (printed unless opts.print == false)
-- with the line above it, DIR/NAME_TASK.csv (opts.name, default "tradeoff"), and the figure
-- DIR/tradeoff_TASK.png/.svg (every run's point, the line; dotted, the share the target
-- speedup takes and opts.target_y points). Returns the figure paths.
function M.tradeoff_write(fits, dir, opts)
  opts = opts or {}
  local af = require "autofreeze"
  af.mkdir(dir .. "/data")
  local name, figs = opts.name or "tradeoff", {}
  for _, fit in ipairs(fits) do
    local stem = tostring(fit.task):gsub("[^%w%.%-_+]", "_")
    local head = fit.b and ("%s: d = %+.2f %+.2f x over %d runs (slope [95%% CI] %+.2f [%+.2f, %+.2f] points per unit of "
                            .. "frozen share, R^2 %.2f)"):format(fit.task, fit.a, fit.b, fit.n, fit.b, fit.b_lo,
                                                                fit.b_hi, fit.r2 or 0)
                 or ("%s: no line (every run froze the same share)"):format(fit.task)
    if fit.x_at then
      head = head .. ("; at %gx in-run (frozen share %.2f, from 1/speedup = 1 - %.2f x over the runs) the line gives "
                      .. "%+.2f [%+.2f, %+.2f] points"):format(fit.target_speedup, fit.x_at, fit.cost_slope, fit.d_at,
                                                              fit.d_at_lo, fit.d_at_hi)
    end
    local f = assert(io.open(("%s/%s_%s.md"):format(dir, name, stem), "w"))
    f:write(head, "\n\n", M.format(fit.policies, M.tradeoff_columns), "\n")
    f:close()
    if opts.print ~= false then print("\n" .. head .. "\n"); M.print(fit.policies, M.tradeoff_columns) end
    M.csv(("%s/%s_%s.csv"):format(dir, name, stem), fit.points,
          {{"label"}, {"seed"}, {"x"}, {"d"}, {"resid"}, {"speedup"}})
    if fit.b then
      local path, labels = ("%s/data/tradeoff_%s.dat"):format(dir, stem), {}
      local g = assert(io.open(path, "w"))
      g:write("# x d, one block per policy\n")
      for i, pol in ipairs(fit.policies) do
        if i > 1 then g:write("\n\n") end
        for _, p in ipairs(fit.points) do
          if p.label == pol.label then g:write(("%.9g %.9g\n"):format(p.x, p.d)) end
        end
        labels[i] = ("%s (%+.2f)"):format(pol.label:gsub('"', "'"), pol.resid)
      end
      g:close()
      af.plot_script(dir, "tradeoff_" .. stem, "tradeoff.gp", {
        datafile = path, nblocks = #labels, labels = labels, line_a = fit.a, line_b = fit.b,
        target_x = fit.x_at and fit.x_at <= 1 and fit.x_at or af.nan, target_y = opts.target_y or af.nan,
        fig_title = ("%s: accuracy vs frozen share, every run (fit over %d runs, R^2 %.2f%s)")
                    :format(fit.task, fit.n, fit.r2 or 0, fit.x_at and fit.x_at <= 1 and
                            ("; %gx at share %.2f"):format(fit.target_speedup, fit.x_at) or ""),
        xlabel = "frozen share: mean frozen depth over the steps / layers",
        ylabel = ("best dev %s - the seed's baseline's (points)"):format(fit.metric or "metric"),
      }, {quiet = opts.quiet})
      figs[#figs + 1] = dir .. "/tradeoff_" .. stem
    end
  end
  return figs
end

-- "+0.42 [-0.10, +0.94]" (or "+0.42 (1 seed: no interval)"); fmt formats each number.
function M.interval_text(v, lo, hi, fmt, suffix)
  if v == nil then return "-" end
  suffix = suffix or ""
  local s = fmt:format(v) .. suffix
  if lo == nil then return s .. " (1 seed: no interval)" end
  return ("%s [%s, %s]"):format(s, fmt:format(lo), fmt:format(hi))
end

-- The Markdown columns of af.report.paired's rows.
M.paired_columns = {
  {"label", "policy"},
  {"n", "seeds", function(v, r) return r.seeds ~= v and ("%d of %d"):format(v, r.seeds) or tostring(v) end},
  {"best", "best dev (mean)", "%.4f"},
  {"diff", "vs full, points [95% CI]", function(v, r) return M.interval_text(v, r.diff_lo, r.diff_hi, "%+.2f") end},
  {"worst", "worst seed (points)", function(v, r) return v and ("%+.2f (seed %s)"):format(v, r.worst_seed) or "-" end},
  {"speedup", "speedup [95% CI]", function(v, r)
     local s = M.interval_text(v, r.speedup_lo, r.speedup_hi, "%.2f", "x")
     if r.timed_apart then s = s .. (" (%d timed apart)"):format(r.timed_apart) end
     return s
   end},
  {"wall_speedup", "wall speedup [95% CI]",
   function(v, r) return M.interval_text(v, r.wall_speedup_lo, r.wall_speedup_hi, "%.2f", "x") end},
  {"median_speedup", "median-based speedup [95% CI]",
   function(v, r) return M.interval_text(v, r.median_speedup_lo, r.median_speedup_hi, "%.2f", "x") end},
  {"tta", "time to target (s)", function(v, r)
     if r.tta_n == nil or r.tta_n == 0 then return "-" end
     if v == nil then return ("never (0/%d)"):format(r.tta_n) end
     return ("%.1f (%d/%d)"):format(v, r.tta_reached, r.tta_n)
   end},
  {"tta_speedup", "time-to-target speedup", "%.2fx"},
  {"freeze_speedup", "in-run speedup [95% CI]",
   function(v, r) return M.interval_text(v, r.freeze_speedup_lo, r.freeze_speedup_hi, "%.2f", "x") end},
  {"final_depth", "final depth (mean)", "%.1f"},
}
-- The CSV columns (plain values; an interval's ends empty with one seed, tta empty for never).
M.paired_csv_columns = {}
for _, k in ipairs{"task", "label", "policy", "metric", "n", "seeds", "best", "diff", "diff_lo", "diff_hi", "worst",
                   "worst_seed", "speedup", "speedup_lo", "speedup_hi", "wall_speedup", "wall_speedup_lo",
                   "wall_speedup_hi", "median_speedup", "median_speedup_lo", "median_speedup_hi", "target", "tta", "tta_reached", "tta_n", "tta_speedup", "freeze_speedup",
                   "freeze_speedup_lo", "freeze_speedup_hi", "final_depth", "note"} do
  M.paired_csv_columns[#M.paired_csv_columns + 1] = {k}
end

local function by_task(stats)
  local order, groups = {}, {}
  for _, st in ipairs(stats) do
    if not groups[st.task] then groups[st.task], order[#order + 1] = {}, st.task end
    table.insert(groups[st.task], st)
  end
  return order, groups
end

-- af.report.paired's rows as one Markdown table and one CSV per task: DIR/NAME_TASK.md and
-- .csv (opts.name, default "paired"; opts.title, a line above each table); printed too
-- unless opts.print == false. Returns the paths written.
function M.paired_write(stats, dir, opts)
  opts = opts or {}
  local af = require "autofreeze"
  af.mkdir(dir)
  local order, groups = by_task(stats)
  local written = {}
  for _, task in ipairs(order) do
    local g = groups[task]
    local stem = ("%s/%s_%s"):format(dir, opts.name or "paired", task)
    -- a baseline other than full (the first row) is named in the header and the target line
    local other = g[1].note == "baseline" and g[1].label ~= "full" and g[1].label
    local head = ("%s%s (%s; points = 100 x metric); target for time to target: %.4f " ..
                  "(%s's mean best less 0.5 points)"):format(opts.title and (opts.title .. ": ") or "",
                  task, g[1].metric or "?", g[1].target or 0 / 0, other or "full fine-tuning")
    local cols = M.paired_columns
    if other then
      cols = {}
      for i, c in ipairs(M.paired_columns) do
        cols[i] = c[1] == "diff" and {c[1], ("vs %s, points [95%% CI]"):format(other), c[3]} or c
      end
    end
    local md = head .. "\n\n" .. M.format(g, cols)
    local notes = {}
    for _, st in ipairs(g) do
      if st.timed_apart then notes[#notes + 1] = ("- %s: %s"):format(st.label, st.note) end
    end
    if #notes > 0 then
      md = md .. "\ntimed apart: the run and its baseline ran with other threads or on another host, so their " ..
           "times are not compared (speedup, wall and time-to-target speedups leave the seed out); the in-run " ..
           "speedup does not need the baseline's times\n" .. table.concat(notes, "\n") .. "\n"
    end
    local f = assert(io.open(stem .. ".md", "w"))
    f:write(md)
    f:close()
    M.csv(stem .. ".csv", g, M.paired_csv_columns)
    if opts.print ~= false then io.write("\n", md) end
    written[#written + 1] = stem .. ".md"
    written[#written + 1] = stem .. ".csv"
  end
  io.stdout:flush()
  return written
end

-- A Pareto figure per task of af.report.paired's rows (plots/pareto.gp): speedup on x,
-- difference to the baseline on y, the 95% intervals as bars, one labelled point per policy,
-- into OUTDIR/pareto_TASK.png and .svg (data in OUTDIR/data/pareto_TASK.dat). opts:
-- target_x, target_y (dashed target lines), quiet, speedup: "measured" (default: training
-- times; a line timed apart from its baseline falls back to the in-run estimate, said so),
-- "median" (median-based) or "in-run" (every line's in-run estimate: the choice when the
-- cells ran under different loads). Returns the figure stems.
function M.pareto(stats, outdir, opts)
  opts = opts or {}
  if opts.speedup ~= nil and not ({measured = true, median = true, ["in-run"] = true})[opts.speedup] then
    error(("af.report.pareto: speedup = %q: expected \"measured\", \"median\" or \"in-run\""):format(
      tostring(opts.speedup)), 2)
  end
  local af = require "autofreeze"
  af.mkdir(outdir .. "/data")
  local order, groups = by_task(stats)
  local figs = {}
  local function num(v) return (v == nil or v ~= v) and "NaN" or ("%.9g"):format(v) end
  for _, task in ipairs(order) do
    local stem = "pareto_" .. tostring(task):gsub("[^%w%.%-_+]", "_")
    local path = ("%s/data/%s.dat"):format(outdir, stem)
    local f = assert(io.open(path, "w"))
    f:write("# label speedup diff speedup_lo speedup_hi diff_lo diff_hi\n")
    local labels = {}
    for _, st in ipairs(groups[task]) do
      -- no comparable time (every seed timed apart from its baseline): the in-run estimate, said so
      local x, lo, hi, how = st.speedup, st.speedup_lo, st.speedup_hi, ""
      if opts.speedup == "median" then
        x, lo, hi = st.median_speedup, st.median_speedup_lo, st.median_speedup_hi
      elseif opts.speedup == "in-run" then
        x, lo, hi = st.freeze_speedup, st.freeze_speedup_lo, st.freeze_speedup_hi
        if st.note == "baseline" then x, lo, hi = 1, 1, 1 end
      elseif not x and st.timed_apart and st.freeze_speedup then
        x, lo, hi, how = st.freeze_speedup, st.freeze_speedup_lo, st.freeze_speedup_hi, " (in-run speedup)"
      end
      if x and st.diff then
        local label = st.label:gsub('"', "'")
        f:write(('"%s" %s %s %s %s %s %s\n'):format(label, num(x), num(st.diff),
                num(lo or x), num(hi or x), num(st.diff_lo or st.diff),
                num(st.diff_hi or st.diff)))
        labels[#labels + 1] = (st.n and st.n > 1 and label or label .. " (1 seed)") .. how
      end
    end
    f:close()
    if #labels > 0 then
      local g, n = groups[task], 0
      for _, st in ipairs(g) do n = math.max(n, st.n or 0) end
      af.plot_script(outdir, stem, "pareto.gp", {
        datafile = path, npoints = #labels, labels = labels,
        fig_title = ("%s: speedup vs accuracy per policy (n = %d seed%s; bars: paired 95%% intervals%s)"):format(
          task, n, n == 1 and "" or "s", n < 2 and ", none with one seed" or ""),
        xlabel = ({median = "median-based speedup (each depth's median step time x its steps; x, geometric mean)",
                   ["in-run"] = "in-run speedup from freezing (median step time at depth 0 / per depth; x, geometric mean)"})
                 [opts.speedup or ""] or "speedup in training time over full fine-tuning (x, geometric mean over seeds)",
        ylabel = ("best dev %s - full fine-tuning's (points, mean over seeds)"):format(g[1].metric or "metric"),
        target_x = opts.target_x or af.nan, target_y = opts.target_y or af.nan,
      }, {quiet = opts.quiet})
      figs[#figs + 1] = outdir .. "/" .. stem
    end
  end
  return figs
end

return M
