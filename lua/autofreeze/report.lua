-- autofreeze.report (af.report): small pure-Lua helpers for result tables, used by af.sweep
-- and the experiments: speedups against the 'none' run, aligned text tables, CSV. Rows are
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

return M
