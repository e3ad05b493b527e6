-- autofreeze.sweep (af.sweep{...}): expand a grid tasks x policies x knobs x seeds into
-- af.train runs, one results file each under out_dir, named TASK-POLICY[-KNOB]-sSEED.h5.
-- A run whose file is already complete (/summary status "complete") and was made with the
-- same settings is skipped and its summary read back, so an interrupted sweep resumes where
-- it stopped. Prints a summary table and returns the rows. Reference: docs/lua-api.md.
local af = require "autofreeze"
local report = require "autofreeze.report"

local SPEC_KEYS = {
  tasks = true, policies = true, seeds = true, knobs = true, out_dir = true, train = true,
  model = true, continue_on_error = true, quiet = true, print = true, force = true,
}

local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

local function safe(s)
  return (tostring(s):gsub("[^%w%.%-_+]", "_"))
end

-- A policies entry is a policy, or {policy = p, label = ..., <train options>} (a variant:
-- e.g. the same adaptive policy with cache = "memory").
local function variant(entry, i)
  if type(entry) == "userdata" then return {policy = entry, label = entry.label, train = {}} end
  if type(entry) ~= "table" or entry.policy == nil then
    error(("af.sweep: policies[%d] must be a policy or {policy = p, label = ..., <train options>}"):format(i), 3)
  end
  local t = copy(entry)
  local p, label = t.policy, t.label
  t.policy, t.label = nil, nil
  return {policy = p, label = label or p.label, train = t}
end

-- A knobs entry is a table of train options, with an optional label.
local function knob(entry, i)
  if type(entry) ~= "table" then error(("af.sweep: knobs[%d] must be a table of af.train options"):format(i), 3) end
  local t = copy(entry)
  local label = t.label
  t.label = nil
  if not label then
    local parts = {}
    for k, v in pairs(t) do parts[#parts + 1] = k .. "=" .. tostring(v) end
    table.sort(parts)
    label = table.concat(parts, ",")
  end
  return {label = label, train = t}
end

-- A canonical string of a run's options (what changes its numbers; not quiet, progress,
-- threads or checkpoints), kept next to the results file as OUT.settings.
local IGNORED = {out = true, quiet = true, progress = true, threads = true, checkpoints = true,
                 checkpoint_dir = true, resume = true}
local function signature(opts)
  local parts = {}
  for k, v in pairs(opts) do
    if not IGNORED[k] then
      local s
      if type(v) == "table" and v.path then s = v.path                       -- a model
      elseif type(v) == "table" and v.name then s = v.name .. ":" .. tostring(v.dir)  -- a task
      elseif type(v) == "userdata" then s = v.name .. "(" .. v.knobs .. ")"   -- a policy
      else s = tostring(v) end
      parts[#parts + 1] = k .. "=" .. s
    end
  end
  table.sort(parts)
  return table.concat(parts, "\n") .. "\n"
end

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- The settings that must agree for a complete results file to count as this run: the
-- OUT.settings signature when present, else the file's config attributes.
local function same_settings(path, opts)
  local saved = read_file(path .. ".settings")
  if saved then
    if saved == signature(opts) then return true end
    return false, "settings changed"
  end
  local ok, r = pcall(af.results.read, path)
  if not ok then return false, "unreadable: " .. tostring(r) end
  local c = r.config
  local function eq(key, want, cfgkey)
    local have = c[cfgkey or key]
    if want == nil or have == nil then return true end
    if type(want) == "number" and type(have) == "number" then
      return math.abs(want - have) <= 1e-6 * math.max(1, math.abs(want))
    end
    return tostring(want) == tostring(have)
  end
  local checks = {
    {"epochs", opts.epochs}, {"batch", opts.batch}, {"max_len", opts.seq or opts.max_len}, {"seed", opts.seed},
    {"lr", opts.lr}, {"recipe", opts.recipe}, {"accum", opts.accum},
    {"cache", type(opts.cache) == "string" and opts.cache or nil},
    {"policy", opts.policy and opts.policy.name}, {"policy_knobs", opts.policy and opts.policy.knobs},
  }
  for _, ck in ipairs(checks) do
    if not eq(ck[1], ck[2]) then
      return false, ("%s differs (file %s, sweep %s)"):format(ck[1], tostring(c[ck[1]]), tostring(ck[2]))
    end
  end
  if opts.max_train_rows and opts.max_train_rows > 0 and c.train_examples and c.train_examples > opts.max_train_rows then
    return false, "max_train_rows differs"
  end
  return true
end

return function(spec)
  if type(spec) ~= "table" then error("af.sweep: expected a table {tasks = ..., policies = ..., ...}", 2) end
  for k in pairs(spec) do
    if not SPEC_KEYS[k] then
      error(("af.sweep: unknown option '%s' (known: tasks, policies, seeds, knobs, out_dir, train, model, " ..
             "continue_on_error, force, quiet, print)"):format(tostring(k)), 2)
    end
  end
  local tasks = spec.tasks or (spec.train and spec.train.task and {spec.train.task})
  if not tasks or #tasks == 0 then error("af.sweep: expected tasks = {af.task...(), ...}", 2) end
  local policies = spec.policies or {af.policy.none()}
  local seeds = spec.seeds or {1}
  local knobs = spec.knobs
  local out_dir = spec.out_dir or "results/sweep"
  local common = copy(spec.train)
  if spec.model then common.model = spec.model end
  common.task = nil
  if common.model == nil then error("af.sweep: expected model (in train = {...} or as model =)", 2) end
  af.mkdir(out_dir)

  local variants, knobvs = {}, {}
  for i, p in ipairs(policies) do variants[i] = variant(p, i) end
  if knobs then
    for i, k in ipairs(knobs) do knobvs[i] = knob(k, i) end
  else
    knobvs[1] = {label = nil, train = {}}
  end
  local total = #tasks * #variants * #knobvs * #seeds
  local rows, n = {}, 0
  for _, task in ipairs(tasks) do
    local tname = type(task) == "table" and task.name or tostring(task)
    for _, kv in ipairs(knobvs) do
      for _, v in ipairs(variants) do
        for _, seed in ipairs(seeds) do
          n = n + 1
          local id = safe(tname) .. "-" .. safe(v.label)
          if kv.label then id = id .. "-" .. safe(kv.label) end
          id = id .. "-s" .. tostring(seed)
          local out = out_dir .. "/" .. id .. ".h5"
          local opts = copy(common)
          for k, x in pairs(kv.train) do opts[k] = x end
          for k, x in pairs(v.train) do opts[k] = x end
          opts.task, opts.policy, opts.seed, opts.out = task, v.policy, seed, out
          local row = {id = id, task = tname, label = v.label, policy = v.policy.name, knob = kv.label or nil,
                       seed = seed, out = out}
          local status = af.results.status(out)
          local reuse, why = false, nil
          if status == "complete" and not spec.force then reuse, why = same_settings(out, opts) end
          if reuse then
            if not spec.quiet then io.write(("[%d/%d] %s: complete, skipped\n"):format(n, total, id)) end
            row.state = "skipped"
          else
            if not spec.quiet then
              io.write(("[%d/%d] %s%s\n"):format(n, total, id,
                status and ("  (previous file: " .. status .. (why and ("; " .. why) or "") .. ")") or ""))
              io.stdout:flush()
            end
            os.remove(out .. ".settings")
            local ok, err = pcall(af.train, opts)
            if ok then
              local f = io.open(out .. ".settings", "w")
              if f then f:write(signature(opts)); f:close() end
            end
            if not ok then
              if not spec.continue_on_error then error(("af.sweep: run %s failed: %s"):format(id, tostring(err)), 2) end
              io.stderr:write(("af.sweep: run %s failed: %s\n"):format(id, tostring(err)))
              row.state = "failed"
              row.error = tostring(err)
            else
              row.state = "ran"
            end
          end
          if row.state ~= "failed" then
            local s = af.results.summary(out)
            for k, x in pairs(s) do if row[k] == nil then row[k] = x end end
          end
          rows[#rows + 1] = row
        end
      end
    end
  end
  report.speedups(rows)
  if spec.print ~= false then
    report.print(rows, report.sweep_columns, ("sweep: %d runs in %s"):format(#rows, out_dir))
  end
  return rows
end
