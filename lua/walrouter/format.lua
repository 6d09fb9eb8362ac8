--- walrouter.format: readable text for rows, a row and a cluster status, as
-- the REPL (`lua5.4 -i`) prints them. Private to walrouter.
local null = require("walrouter.core").null

local format = {}

local MAX_ROWS = 25   -- rows printed before "... N more"
local MAX_WIDTH = 40  -- characters of one cell

local function width(s)
  return utf8.len(s) or #s
end

local function clip(s)
  s = s:gsub("[%c]", function(c)
    return c == "\n" and "\\n" or c == "\t" and "\\t" or ("\\%d"):format(c:byte())
  end)
  if width(s) > MAX_WIDTH then
    local cut = utf8.offset(s, MAX_WIDTH - 2) or (MAX_WIDTH - 2)
    s = s:sub(1, cut - 1) .. "..."
  end
  return s
end

local function cell(v)
  if v == null then return "NULL" end
  if type(v) == "string" then return clip(v) end
  return tostring(v)
end

-- Lays out a header and rows of cells in aligned columns; right: set of
-- column positions to right-align.
local function grid(header, lines, sep, right, underline)
  local w = {}
  for j, h in ipairs(header) do w[j] = width(h) end
  for _, line in ipairs(lines) do
    for j = 1, #header do
      local n = width(line[j] or "")
      if n > w[j] then w[j] = n end
    end
  end
  local function pad(s, j)
    local fill = (" "):rep(w[j] - width(s))
    return right[j] and fill .. s or s .. fill
  end
  local out = {}
  local function emit(line)
    local parts = {}
    for j = 1, #header do parts[j] = pad(line[j] or "", j) end
    out[#out + 1] = (table.concat(parts, sep):gsub("%s+$", ""))
  end
  emit(header)
  if underline then
    local parts = {}
    for j = 1, #header do parts[j] = ("-"):rep(w[j]) end
    out[#out + 1] = table.concat(parts, (sep:gsub(" ", "-"):gsub("|", "+")))
  end
  for _, line in ipairs(lines) do emit(line) end
  return table.concat(out, "\n")
end

--- tostring(rows): a psql-like table and a footer naming the node and reason.
function format.rows(rows)
  local cols = rows.columns or {}
  local where = ("node %s, %s"):format(rows.node or "?", rows.reason or "?")
  if #cols == 0 then
    return ("%s (%s)"):format(rows.command ~= "" and rows.command or "OK", where)
  end
  local lines, right = {}, {}
  local shown = math.min(#rows, MAX_ROWS)
  for i = 1, shown do
    local line = {}
    for j = 1, #cols do
      local v = rows[i][j]
      line[j] = cell(v)
      if type(v) == "number" then right[j] = true end
    end
    lines[i] = line
  end
  local text = grid(cols, lines, " | ", right, true)
  if #rows > shown then text = text .. ("\n... %d more"):format(#rows - shown) end
  return ("%s\n(%d row%s; %s)"):format(text, #rows, #rows == 1 and "" or "s", where)
end

--- tostring(row): {name = value, ...} in column order.
function format.row(row)
  local mt = getmetatable(row)
  local cols = mt and mt.__columns or {}
  local parts = {}
  for j = 1, math.max(#cols, #row) do
    local v = rawget(row, j)
    local text = type(v) == "string" and ("%q"):format(v):gsub("\\\n", "\\n") or cell(v)
    local name = cols[j]
    if name and name:match("^[%a_][%w_]*$") then
      parts[j] = name .. " = " .. text
    else
      parts[j] = ("[%q] = %s"):format(name or j, text)
    end
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function served_text(served)
  local names, total = {}, 0
  for name, n in pairs(served or {}) do
    if n > 0 then names[#names + 1] = name; total = total + n end
  end
  table.sort(names)
  for i, name in ipairs(names) do names[i] = ("%s=%d"):format(name, served[name]) end
  return tostring(total), table.concat(names, " ")
end

--- tostring(status): one line per node.
function format.status(list)
  local header = { "node", "role", "state", "lag_bytes", "lag_s", "replay_lsn", "conns", "errors", "served",
    "by reason", "last_error" }
  local lines = {}
  for i, n in ipairs(list) do
    local total, by = served_text(n.served)
    lines[i] = {
      n.name, n.role, n.state,
      n.lag_bytes and tostring(n.lag_bytes) or "?",
      n.lag_seconds and ("%.3f"):format(n.lag_seconds) or "?",
      n.replay_lsn or "?",
      ("%d/%d"):format(n.conns_in_use, n.conns_idle),
      tostring(n.errors), total, by,
      n.last_error and clip(n.last_error) or "",
    }
  end
  return grid(header, lines, "  ", { [4] = true, [5] = true, [8] = true, [9] = true }, false)
    .. "\n(conns: in use/idle)"
end

--- tostring(event): "host:port: streaming -> down".
function format.event(ev)
  return ("%s: %s -> %s"):format(ev.node, ev.from, ev.to)
end

return format
