-- autofreeze.cluster: what `autofreeze run SCRIPT.lua --list-cells | --cell I | --slurm ... |
-- --report` does with the script's af.sweep (lua/host.c hands the flags over as af.cluster),
-- and the sbatch script of a Slurm job array over a sweep's cells not yet complete: one array
-- task per cell, array index = cell index, each running the same command line with
-- --cell $SLURM_ARRAY_TASK_ID. Bad input (a cell out of range, no sbatch, a refused job) is
-- one line on stderr, exit status 1, and no file left behind. Reference: docs/cluster.md.
local af = require "autofreeze"
local M = {}

-- "1-3,5,7-8" for the sorted indices {1, 2, 3, 5, 7, 8}.
function M.array_spec(idx)
  local parts, i = {}, 1
  while i <= #idx do
    local j = i
    while j < #idx and idx[j + 1] == idx[j] + 1 do j = j + 1 end
    parts[#parts + 1] = j > i and (idx[i] .. "-" .. idx[j]) or tostring(idx[i])
    i = j + 1
  end
  return table.concat(parts, ",")
end

-- A word for the shell: as it is when plain, else in single quotes.
local function shq(s)
  s = tostring(s)
  if s:match("^[%w%%%._/=:,+@%-]+$") then return s end
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

local function job_name(script)
  return "af-" .. ((script:match("([^/]+)$") or script):gsub("%.lua$", ""))
end

-- The text of the sbatch script. p: {cells = {i, ...}, total, script, sets = {"k=v", ...},
-- args = {...}, bin, cwd, log_dir, opts = {"--time=...", ...}, max_parallel, ntasks}.
function M.sbatch_text(p)
  local ntasks = p.ntasks or 1
  local lines = {
    "#!/bin/bash",
    ("# `autofreeze run %s --slurm`: a job array over the %d of %d cells of its sweep"):format(p.script, #p.cells,
                                                                                               p.total),
    "# not yet complete. Array index = cell index (autofreeze run SCRIPT --list-cells). Submitting",
    "# again runs only what is still missing: complete cells are skipped, killed ones resume.",
    "#SBATCH --job-name=" .. shq(job_name(p.script)),
    "#SBATCH --array=" .. M.array_spec(p.cells) .. (p.max_parallel and ("%" .. p.max_parallel) or ""),
    "#SBATCH --ntasks=" .. ntasks,
    "#SBATCH --chdir=" .. shq(p.cwd),
    "#SBATCH --output=" .. shq(p.log_dir .. "/%A_%a.out"),
  }
  for _, o in ipairs(p.opts or {}) do lines[#lines + 1] = "#SBATCH " .. o end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "# OpenMP threads: the CPUs Slurm gave each task, unless set"
  lines[#lines + 1] = 'export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"'
  if ntasks > 1 then
    -- decided where the job runs: the compute node's Slurm is the one that starts the ranks
    lines[#lines + 1] = "# srun's PMIx plugin, where this Slurm has one (srun --mpi=list), makes the ranks one MPI job"
    lines[#lines + 1] = "# (Open MPI needs it under srun); without it, or with SLURM_MPI_TYPE set, srun's default"
    lines[#lines + 1] = 'AF_SRUN_MPI=""'
    lines[#lines + 1] = 'if [ -z "${SLURM_MPI_TYPE:-}" ] && srun --mpi=list 2>&1 | grep -qw pmix; then AF_SRUN_MPI=--mpi=pmix; fi'
  end
  local cmd = {ntasks > 1 and "exec srun $AF_SRUN_MPI" or "exec", shq(p.bin), "run", shq(p.script)}
  for _, kv in ipairs(p.sets or {}) do cmd[#cmd + 1] = "--set " .. shq(kv) end
  cmd[#cmd + 1] = '--cell "$SLURM_ARRAY_TASK_ID"'
  if p.args and #p.args > 0 then
    cmd[#cmd + 1] = "--"
    for _, a in ipairs(p.args) do cmd[#cmd + 1] = shq(a) end
  end
  lines[#lines + 1] = table.concat(cmd, " ")
  return table.concat(lines, "\n") .. "\n"
end

local function command_output(cmd)
  local f = io.popen(cmd)
  if not f then return nil end
  local s = f:read("a")
  local ok, _, code = f:close()
  return s, ok and 0 or code
end

local function find_program(name)
  local s = command_output("command -v " .. shq(name) .. " 2>/dev/null")
  s = s and s:match("^%s*(.-)%s*$")
  return s ~= "" and s or nil
end

local function read_all(path)
  local f = io.open(path, "r")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- The folders between dir and the first one that exists, deepest first (what mkdir -p makes).
local function missing_dirs(dir)
  local out = {}
  while dir ~= "" and dir ~= "." and dir ~= "/" and not af.exists(dir) do
    out[#out + 1] = dir
    dir = dir:match("^(.*)/[^/]*$") or ""
  end
  return out
end

-- Submit path with sbatch; the job id, or nil and one line saying why.
local function submit(sbatch, path)
  local errf = os.tmpname()
  local out, code = command_output(shq(sbatch) .. " --parsable " .. shq(path) .. " 2>" .. shq(errf))
  local err = read_all(errf)
  os.remove(errf)
  local id = out and out:match("^%s*(%d+)")
  if code == 0 and id then return id end
  local msgs = {}
  for line in (err .. "\n" .. (out or "")):gmatch("[^\n]+") do
    line = line:gsub("^sbatch: error: ", ""):gsub("^sbatch: ", ""):gsub("%s+$", "")
    if line ~= "" then msgs[#msgs + 1] = line end
  end
  local why = #msgs > 0 and table.concat(msgs, "; ") or "no message"
  if code == 0 then return nil, "sbatch printed no job id: " .. why end
  return nil, ("sbatch refused the job (exit %s): %s"):format(tostring(code), why)
end

-- sw:slurm{opts = {...}, max_parallel = K, ntasks = N, dry_run = bool, script =, sets =, args =}:
-- write out_dir/slurm/NAME.sbatch for the pending cells and (unless dry_run) submit it. Returns
-- {job = id or nil, path = script or nil, cells = {...}, total = N}; with nothing pending,
-- cells is empty and nothing is written. Errors are plain one-line messages.
function M.slurm(sw, o, out_dir)
  o = o or {}
  local script = o.script or (arg and arg[0])
  if not script then error("sw:slurm: expected script = the experiment script's path", 0) end
  local sets = o.sets
  if not sets then  -- from a script: af.settings as key=value
    sets = {}
    for k, v in pairs(af.settings) do sets[#sets + 1] = k .. "=" .. tostring(v) end
    table.sort(sets)
  end
  local args = o.args
  if not args then
    args = {}
    for i = 1, #(arg or {}) do args[i] = arg[i] end
  end
  local cells = sw:pending()
  local res = {cells = cells, total = #sw}
  if #cells == 0 then return res end
  local sbatch
  if not o.dry_run then
    sbatch = find_program(o.sbatch or "sbatch")
    if not sbatch then
      error(("--slurm: %s not found on PATH (Slurm's client commands are needed to submit; " ..
             "--slurm-dry-run writes the script only)"):format(o.sbatch or "sbatch"), 0)
    end
  end
  local log_dir = out_dir .. "/slurm"
  local made = missing_dirs(log_dir)
  local function undo(path)
    if path then os.remove(path) end
    for _, d in ipairs(made) do os.remove(d) end
  end
  local ok, err = pcall(af.mkdir, log_dir)
  if not ok then undo(); error((tostring(err):gsub("^.-af%.mkdir", "af.mkdir")), 0) end
  local cwd = command_output("pwd"):match("^(.-)%s*$")
  local path = log_dir .. "/" .. job_name(script):gsub("^af%-", "") .. ".sbatch"
  local text = M.sbatch_text{cells = cells, total = #sw, script = script, sets = sets, args = args, bin = af.bin,
                             cwd = cwd, log_dir = log_dir, opts = o.opts, max_parallel = o.max_parallel,
                             ntasks = o.ntasks}
  local f = io.open(path, "w")
  if not f or not f:write(text) or not f:close() then
    undo(path)
    error(("--slurm: cannot write %s"):format(path), 0)
  end
  res.path = path
  if o.dry_run then return res end
  local id, why = submit(sbatch, path)
  if not id then
    undo(path)
    error(why, 0)
  end
  res.job = id
  return res
end

local function finish(code)
  io.stdout:flush()
  io.stderr:flush()
  os.exit(code, true)
end

local function fail(msg)
  io.stdout:flush()
  io.stderr:write("autofreeze run: ", (tostring(msg):gsub("\n.*", "")), "\n")
  finish(1)
end

local MODES = {}

function MODES.list(sw, cl)
  local done = 0
  sw:states()
  for _, row in ipairs(sw) do if row.done then done = done + 1 end end
  sw:list(("%s: %d cells, %d complete"):format(cl.script, #sw, done))
  finish(0)
end

function MODES.cell(sw, cl)
  local i = cl.cell
  if i < 1 or i > #sw then
    fail(("--cell %d is out of range: the sweep of %s has %d cells (1..%d; see --list-cells)"):format(
         i, cl.script, #sw, #sw))
  end
  -- N ranks of one cell (--slurm-ntasks N, srun): when they joined one MPI job
  -- (af.data_parallel: built with MPI, srun --mpi=pmix or mpirun), every rank runs the cell's
  -- af.train, which splits each batch over them (docs/distributed.md); otherwise rank 0 runs
  -- the cell alone and the others have nothing to do.
  local rank = tonumber(os.getenv("SLURM_PROCID") or "0") or 0
  if rank > 0 and not af.data_parallel then
    io.write(("cell %d: rank %d idle (this build trains each cell in one process, rank 0)\n"):format(i, rank))
    finish(0)
  end
  local ok, row = pcall(sw.cell, sw, i)
  if not ok then fail(("--cell %d: %s"):format(i, tostring(row))) end
  if row.state == "failed" then fail(("--cell %d: %s"):format(i, row.error)) end
  finish(0)
end

function MODES.slurm(sw, cl, out_dir)
  local s = cl.slurm
  local ok, res = pcall(M.slurm, sw, {opts = s.opts, max_parallel = s.max_parallel, ntasks = s.ntasks,
                                      dry_run = s.dry_run, script = cl.script, sets = cl.sets, args = cl.args}, out_dir)
  if not ok then fail(res) end
  if #res.cells == 0 then
    io.write(("all %d cells of %s are complete in %s: nothing to submit\n"):format(res.total, cl.script, out_dir))
    finish(0)
  end
  local what = ("%d of %d cells (--array=%s)"):format(#res.cells, res.total, M.array_spec(res.cells))
  if s.dry_run then
    io.write(("wrote %s: %s; submit it with: sbatch %s\n"):format(res.path, what, res.path))
  else
    io.write(("%s: %s, script %s, logs %s/slurm/%s_<cell>.out\n"):format(cl.script, what, res.path, out_dir, res.job))
    io.write("Submitted batch job ", res.job, "\n")
  end
  finish(0)
end

function MODES.report(sw, cl)
  cl.handled = true
  local rows, missing = sw:report()
  if #rows == 0 then
    io.write(("report: no cell of %s is complete yet (%d missing)\n"):format(cl.script, #missing))
    finish(0)
  end
  return rows
end

-- af.sweep under a cluster flag: list, run one cell or submit (then the script stops here),
-- or report (the script goes on with the finished rows).
function M.dispatch(sw, cl, out_dir)
  if cl.mode ~= "report" then cl.handled = true end
  return MODES[cl.mode](sw, cl, out_dir)
end

return M
