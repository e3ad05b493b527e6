-- autofreeze.sweep (af.sweep{...}): a grid tasks x knobs x policies x seeds as a list of
-- cells, one af.train run each, numbered 1..N in that order (the same numbers every time,
-- whatever has run). Every cell writes only its own files: out_dir/ID.h5 (ID =
-- TASK-POLICY[-KNOB]-sSEED), its checkpoint ID.h5.ckpt, its settings ID.h5.settings and, with a
-- cache, its disk tier under CACHE_DIR/ID. A cell whose file is complete with the same settings
-- is skipped (its summary read back); a killed one resumes from its checkpoint; anything else
-- runs from the start. af.sweep{...} runs the cells and returns the rows (a sweep object);
-- af.sweep{..., run = false} returns the cells without running any (sw:cell(i), sw:run(),
-- sw:list(), sw:report(), sw:slurm{...}). Under `autofreeze run --list-cells | --cell I |
-- --slurm | --report` the script's af.sweep does that instead (autofreeze/cluster.lua).
-- Reference: docs/lua-api.md, docs/cluster.md.
local af = require "autofreeze"
local report = require "autofreeze.report"

local SPEC_KEYS = {
  tasks = true, policies = true, seeds = true, knobs = true, out_dir = true, train = true,
  model = true, continue_on_error = true, quiet = true, print = true, force = true, run = true,
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
    error(("af.sweep: policies[%d] must be a policy or {policy = p, label = ..., <train options>}"):format(i), 4)
  end
  local t = copy(entry)
  local p, label = t.policy, t.label
  t.policy, t.label = nil, nil
  return {policy = p, label = label or p.label, train = t}
end

-- A knobs entry is a table of train options, with an optional label.
local function knob(entry, i)
  if type(entry) ~= "table" then error(("af.sweep: knobs[%d] must be a table of af.train options"):format(i), 4) end
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
-- threads, checkpoints or where the cache lives), kept next to the results file as
-- OUT.settings.
local IGNORED = {out = true, quiet = true, progress = true, threads = true, checkpoints = true,
                 checkpoint_dir = true, checkpoint_every = true, resume = true, cache_dir = true}
-- The policy as the engine will run it (af.policy_of): with the guards its options and the
-- engine's defaults add (pipe's and FreezeOut's default wait since 7 Dec), so a cell finished
-- under another default is not taken for this one. Options af.train would refuse: the object's
-- own knobs (af.train then says what is wrong).
local function policy_knobs(opts)
  local p = opts.policy
  if type(p) ~= "userdata" then return nil end
  local ok, _, knobs = pcall(af.policy_of, opts)
  return ok and knobs or p.knobs
end

local function signature(opts)
  local parts = {}
  for k, v in pairs(opts) do
    if not IGNORED[k] then
      local s
      if type(v) == "table" and v.path then s = v.path                       -- a model
      elseif type(v) == "table" and v.name then s = v.name .. ":" .. tostring(v.dir)  -- a task
      elseif type(v) == "userdata" then s = v.name .. "(" .. policy_knobs(opts) .. ")"   -- a policy
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
    {"policy", opts.policy and opts.policy.name}, {"policy_knobs", policy_knobs(opts)},
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

-- The checkpoint a killed cell resumes from (written by af.train unless checkpoints = false).
local function checkpoint_of(opts)
  if opts.checkpoints == false then return nil end
  local dir = opts.checkpoint_dir or (opts.out .. ".ckpt")
  if af.exists(dir .. "/last.safetensors") then return dir end
  return nil
end

-- Cell i's results file as it stands: state "complete" (done: same settings), "changed"
-- (complete, other settings), "busy" (a run writes it now; why: its pid, host and start),
-- "running" (killed, or written by a build without the claim), "interrupted", "failed",
-- "missing" or "unreadable"; why: a note; ckpt: the checkpoint folder to resume from.
local function file_state(opts)
  local out = opts.out
  local who = af.writer(out)  -- first: HDF5 will not open a file another process writes
  if who then return {state = "busy", why = who} end
  local status, reason = af.results.status(out)
  if not status then
    if af.exists(out) then return {state = "unreadable", why = reason} end
    return {state = "missing"}
  end
  if status == "complete" then
    local same, why = same_settings(out, opts)
    if same then return {state = "complete", done = true} end
    return {state = "changed", why = why}
  end
  local st = {state = status}
  if status == "running" or status == "interrupted" then st.ckpt = checkpoint_of(opts) end
  return st
end

-- Whether af.train knows an option (a key the engine may not have yet): an unknown key is
-- refused before anything else, so the probe runs nothing.
local known_opts = {}
local function train_knows(key)
  if known_opts[key] == nil then
    local _, err = pcall(af.train, {[key] = "intervals"})
    known_opts[key] = not tostring(err):find("unknown option '" .. key .. "'", 1, true)
  end
  return known_opts[key]
end

-- ---- the sweep object ----

local methods = {}
local hidden = setmetatable({}, {__mode = "k"})  -- sweep -> {spec, out_dir, opts = {[i] = af.train options}}

-- The grid as cells, nothing run.
local function build(spec)
  if type(spec) ~= "table" then error("af.sweep: expected a table {tasks = ..., policies = ..., ...}", 3) end
  for k in pairs(spec) do
    if not SPEC_KEYS[k] then
      error(("af.sweep: unknown option '%s' (known: tasks, policies, seeds, knobs, out_dir, train, model, " ..
             "continue_on_error, force, quiet, print, run)"):format(tostring(k)), 3)
    end
  end
  local tasks = spec.tasks or (spec.train and spec.train.task and {spec.train.task})
  if not tasks or #tasks == 0 then error("af.sweep: expected tasks = {af.task...(), ...}", 3) end
  local policies = spec.policies or {af.policy.none()}
  local seeds = spec.seeds or {1}
  local out_dir = spec.out_dir or "results/sweep"
  local common = copy(spec.train)
  if spec.model then common.model = spec.model end
  common.task = nil
  if common.model == nil then error("af.sweep: expected model (in train = {...} or as model =)", 3) end

  local variants, knobvs = {}, {}
  for i, p in ipairs(policies) do variants[i] = variant(p, i) end
  if spec.knobs then
    for i, k in ipairs(spec.knobs) do knobvs[i] = knob(k, i) end
  else
    knobvs[1] = {label = nil, train = {}}
  end
  local sw, all = {}, {}
  for _, task in ipairs(tasks) do
    local tname = type(task) == "table" and task.name or tostring(task)
    for _, kv in ipairs(knobvs) do
      for _, v in ipairs(variants) do
        for _, seed in ipairs(seeds) do
          local id = safe(tname) .. "-" .. safe(v.label)
          if kv.label then id = id .. "-" .. safe(kv.label) end
          id = id .. "-s" .. tostring(seed)
          local opts = copy(common)
          for k, x in pairs(kv.train) do opts[k] = x end
          for k, x in pairs(v.train) do opts[k] = x end
          opts.task, opts.policy, opts.seed, opts.out = task, v.policy, seed, out_dir .. "/" .. id .. ".h5"
          local i = #sw + 1
          sw[i] = {cell = i, id = id, task = tname, label = v.label, policy = v.policy.name, knob = kv.label or nil,
                   seed = seed, out = opts.out}
          all[i] = opts
        end
      end
    end
  end
  hidden[sw] = {spec = spec, out_dir = out_dir, opts = all}
  return setmetatable(sw, {__index = methods})
end

local function check_index(sw, i)
  if math.type(i) ~= "integer" and not (type(i) == "number" and i == math.floor(i)) then
    return nil, ("cell expects an integer index, found %s"):format(tostring(i))
  end
  if i < 1 or i > #sw then
    return nil, ("cell %d is out of range: the sweep has %d cells (1..%d; see --list-cells)"):format(i, #sw, #sw)
  end
  return math.tointeger(i)
end

-- The af.train options of cell i as it will run: its disk cache under CACHE_DIR/ID (never
-- shared between cells, also on a shared file system), a checkpoint at every interval
-- boundary unless the train table says otherwise (where the engine has checkpoint_every),
-- and resume when the file was killed and left a checkpoint.
local function cell_opts(sw, i, fs)
  local opts = copy(hidden[sw].opts[i])
  if opts.cache ~= nil and opts.cache ~= false and opts.cache ~= "off" then
    opts.cache_dir = (opts.cache_dir or hidden[sw].out_dir .. "/cache") .. "/" .. sw[i].id
  end
  if opts.checkpoints ~= false and opts.checkpoint_every == nil and train_knows("checkpoint_every") then
    opts.checkpoint_every = "intervals"
  end
  opts.resume = fs.ckpt ~= nil and not hidden[sw].spec.force
  return opts
end

-- The run's summary into its row (af.results.summary), the cell's own keys kept.
local ROW_KEYS = {cell = true, id = true, task = true, label = true, policy = true, knob = true, seed = true, out = true}
local function fill_summary(row)
  for k, x in pairs(af.results.summary(row.out)) do if not ROW_KEYS[k] then row[k] = x end end
end

-- A file state as one string for af.broadcast (state, done, checkpoint folder, note), and back.
local function encode_state(fs)
  return table.concat({fs.state, fs.done and "1" or "0", fs.ckpt or "", fs.why or ""}, "\0")
end
local function decode_state(s)
  local state, done, ckpt, why = s:match("^(.-)%z(.-)%z(.-)%z(.*)$")
  return {state = state, done = done == "1" or nil, ckpt = ckpt ~= "" and ckpt or nil, why = why ~= "" and why or nil}
end

-- Run cell i (skipped when complete); returns its row, state "ran", "skipped" or "failed"
-- (with error), or raises when the spec does not say continue_on_error. raise_level: for
-- error().
local function run_cell(sw, i, raise_level)
  local h, row = hidden[sw], sw[i]
  local spec = h.spec
  local fs
  if af.data_parallel then
    -- the ranks of a data-parallel cell do what rank 0 decides (run, resume, skip as complete
    -- or as another run's): a rank > 0 that looks for itself may find rank 0's own claim, or
    -- miss another run's, and would then be alone in the all-reduce
    fs = decode_state(af.broadcast(af.rank == 0 and encode_state(file_state(h.opts[i])) or ""))
  else
    fs = file_state(h.opts[i])
  end
  row.state, row.error, row.resumed = nil, nil, nil
  if fs.done and not spec.force then
    if not spec.quiet then io.write(("[%d/%d] %s: complete, skipped\n"):format(i, #sw, row.id)) end
    row.state = "skipped"
  elseif fs.state == "busy" then
    if not spec.quiet then io.write(("[%d/%d] %s: busy, left to the other run (%s)\n"):format(i, #sw, row.id, fs.why)) end
    row.state, row.error = "busy", "being written by another run (" .. fs.why .. ")"
  else
    local cl = af.cluster  -- under a cluster flag af.train runs only inside a cell (lua/host.c)
    if cl then cl.in_cell = true end
    local opts = cell_opts(sw, i, fs)
    if not spec.quiet and (af.rank or 0) == 0 then  -- one line per cell, not per rank
      local prev = fs.state ~= "missing" and ("  (previous file: " .. fs.state .. (fs.why and ("; " .. fs.why) or "") ..
                                              (opts.resume and "; resuming from its checkpoint" or "") .. ")") or ""
      io.write(("[%d/%d] %s%s\n"):format(i, #sw, row.id, prev))
      io.stdout:flush()
    end
    local rank0 = (af.rank or 0) == 0  -- a data-parallel cell: rank 0 alone writes its files
    local kept = rank0 and read_file(row.out .. ".settings")  -- put back if another run has the cell
    if rank0 then os.remove(row.out .. ".settings") end
    local ok, err = pcall(af.train, opts)
    if not ok and opts.resume and tostring(err):find("from another run", 1, true) then
      -- a checkpoint of other settings: this cell starts again
      io.stderr:write(("af.sweep: %s: %s; starting it again\n"):format(row.id, tostring(err)))
      opts.resume = false
      ok, err = pcall(af.train, opts)
    end
    if cl then cl.in_cell = false end
    -- another process runs this cell now (a second sweep over the same folder): not ours
    local busy = not ok and tostring(err):find("is being written by another run", 1, true)
    if opts.cache_dir then  -- the cell's cache folder (and out_dir/cache), when left empty
      os.remove(opts.cache_dir)
      if h.opts[i].cache_dir == nil then os.remove(h.out_dir .. "/cache") end
    end
    if busy then
      if not spec.quiet then io.write(("[%d/%d] %s: busy, left to the other run (%s)\n"):format(i, #sw, row.id,
                                      tostring(err):match("another run %((.-)%)") or "?")) end
      row.state, row.error = "busy", tostring(err)
      local f = kept and io.open(row.out .. ".settings", "w")
      if f then f:write(kept); f:close() end
    elseif ok and not rank0 then
      row.state, row.resumed = "ran", opts.resume or nil
    elseif ok then
      local f = io.open(row.out .. ".settings", "w")
      if f then f:write(signature(h.opts[i])); f:close() end
      row.state, row.resumed = "ran", opts.resume or nil
    else
      -- a stop asked for by a signal (Ctrl-C, a scheduler's SIGTERM) ends the sweep even under
      -- continue_on_error: the user wants the process gone, not the next cell started
      local stop = tostring(err):find("interrupted by signal", 1, true)
      if stop or not spec.continue_on_error then
        error(("af.sweep: run %s failed: %s"):format(row.id, tostring(err)), raise_level)
      end
      io.stderr:write(("af.sweep: run %s failed: %s\n"):format(row.id, tostring(err)))
      row.state, row.error = "failed", tostring(err)
    end
  end
  if row.state ~= "failed" and row.state ~= "busy" and (af.rank or 0) == 0 then fill_summary(row) end  -- rank 0's file
  return row
end

-- sw:cell(i): run cell i only (skipped when complete, resumed when killed); its row.
function methods.cell(sw, i)
  local n, msg = check_index(sw, i)
  if not n then error("af.sweep: " .. msg, 2) end
  return run_cell(sw, n, 3)
end

-- sw:run(): every cell in order, then the speedups and (print ~= false) the table; the rows.
function methods.run(sw)
  local spec = hidden[sw].spec
  for i = 1, #sw do run_cell(sw, i, 3) end
  report.speedups(sw)
  if spec.print ~= false then
    report.print(sw, report.sweep_columns, ("sweep: %d runs in %s"):format(#sw, hidden[sw].out_dir))
  end
  return sw
end

-- sw:states(): each cell's file as it stands, filling row.done and row.file ("complete",
-- "missing", "running", "interrupted", "failed", "changed", "unreadable") and row.resumable
-- (a checkpoint is there). Returns the sweep.
function methods.states(sw)
  for i, row in ipairs(sw) do
    local fs = file_state(hidden[sw].opts[i])
    row.done, row.file, row.resumable, row.why = fs.done or false, fs.state, fs.ckpt ~= nil or nil, fs.why
  end
  return sw
end

-- sw:pending(): the indices of the cells not done (what a job array submits).
function methods.pending(sw)
  methods.states(sw)
  local p = {}
  for i, row in ipairs(sw) do if not row.done or hidden[sw].spec.force then p[#p + 1] = i end end
  return p
end

-- The table of --list-cells.
local function state_text(v, row)
  if v == "running" then return "running or killed" .. (row.resumable and " (resumable)" or "") end
  if v == "interrupted" and row.resumable then return "interrupted (resumable)" end
  if v == "changed" then return "complete, other settings" end
  if v == "busy" then return "running now (" .. tostring(row.why) .. ")" end
  return v
end
local CELL_COLUMNS = {
  {"cell", "cell"}, {"id", "run"}, {"task", "task"}, {"label", "policy"}, {"knob", "knob"}, {"seed", "seed"},
  {"out", "results"}, {"done", "done", function(v) return v and "yes" or "no" end}, {"file", "file", state_text},
}

-- sw:list([title]): print the cells and their state; returns the sweep.
function methods.list(sw, title)
  methods.states(sw)
  local done, cols = 0, {}
  for _, row in ipairs(sw) do if row.done then done = done + 1 end end
  local any_knob = false
  for _, row in ipairs(sw) do any_knob = any_knob or row.knob ~= nil end
  for _, c in ipairs(CELL_COLUMNS) do if c[1] ~= "knob" or any_knob then cols[#cols + 1] = c end end
  report.print(sw, cols, title or ("sweep: %d cells in %s, %d complete"):format(#sw, hidden[sw].out_dir, done))
  return sw
end

-- sw:report(): nothing run; the rows of the finished cells (summaries, speedups) printed
-- (print ~= false) and returned, and a line naming each cell still missing or failed.
function methods.report(sw)
  methods.states(sw)
  local rows, missing = {}, {}
  for _, row in ipairs(sw) do
    if row.done then
      row.state = "complete"
      fill_summary(row)
      rows[#rows + 1] = row
    else
      missing[#missing + 1] = row
    end
  end
  report.speedups(rows)
  if hidden[sw].spec.print ~= false then
    report.print(rows, report.sweep_columns,
                 ("report: %d of %d cells complete in %s"):format(#rows, #sw, hidden[sw].out_dir))
  end
  for _, row in ipairs(missing) do
    io.write(("not complete: cell %d %s: %s%s\n"):format(row.cell, row.id, state_text(row.file, row),
                                                         row.why and (" (" .. row.why .. ")") or ""))
  end
  io.stdout:flush()
  return rows, missing
end

-- sw:slurm{...}: an sbatch script for a job array over the pending cells (autofreeze/cluster.lua).
function methods.slurm(sw, o)
  return require("autofreeze.cluster").slurm(sw, o, hidden[sw].out_dir)
end

return function(spec)
  local sw = build(spec)
  if spec.run == false then return sw end
  if af.cluster then return require("autofreeze.cluster").dispatch(sw, af.cluster, hidden[sw].out_dir) end
  return sw:run()
end
