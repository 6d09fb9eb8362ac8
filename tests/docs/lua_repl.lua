-- lua_repl.lua — replays the input lines of a `lua5.4 -i` transcript and
-- prints what lua5.4's REPL (lua.c, doREPL) would: each line echoed after its
-- prompt ("> ", ">> " for a continuation), the results of an expression through
-- the global print, errors with the REPL's message handler (a traceback unless
-- the error value has __tostring).
--
--   lua5.4 lua_repl.lua INPUT [SETUP]   (INPUT: the statements' lines, one a
--        line, without their prompts; SETUP: a chunk run first, not echoed)
-- Everything goes to stdout, in order; tests/docs/run_docs.py compares it with
-- the transcript in the docs.
local input = assert(io.open((assert(arg[1], "usage: lua_repl.lua INPUT [SETUP]"))))
local lines = {}
for line in input:lines() do lines[#lines + 1] = line end
input:close()

if arg[2] then assert(loadfile(arg[2], "t"))() end

local out = io.stdout
local pos = 0
local function nextline(prompt)
  pos = pos + 1
  local line = lines[pos]
  if line ~= nil then out:write(prompt, line, "\n") end
  return line
end

-- lua.c's msghandler: a message gets a traceback; a value with __tostring is
-- shown as that string alone.
local function msghandler(e)
  local msg = e
  if math.type(e) then msg = tostring(e) end
  if type(msg) ~= "string" then
    local mt = debug.getmetatable(e)
    if mt and mt.__tostring then
      local s = mt.__tostring(e)
      if type(s) == "string" then return s end
    end
    msg = ("(error object is a %s value)"):format(type(e))
  end
  -- The frames of this replay (xpcall and below) are lua.c's C frame there.
  local tb = debug.traceback(msg, 2)
  local cut = tb:find("\n\t%[C%]: in function 'xpcall'")
  return cut and tb:sub(1, cut) .. "\t[C]: in ?" or tb
end

local function incomplete(err) return err and err:sub(-5) == "<eof>" end

-- lua.c's loadline: "return <line>;" first, else the line and as many more as
-- it takes to complete a chunk.
local function loadline()
  local line = nextline("> ")
  if line == nil then return nil end
  local fn = load("return " .. line .. ";", "=stdin")
  if fn then return fn end
  local chunk = line
  while true do
    local f, err = load(chunk, "=stdin")
    if not incomplete(err) then return f, err end
    local more = nextline(">> ")
    if more == nil then return f, err end
    chunk = chunk .. "\n" .. more
  end
end

while true do
  local fn, err = loadline()
  if fn == nil and err == nil then break end
  if fn then
    local res = table.pack(xpcall(fn, msghandler))
    if res[1] then
      if res.n > 1 then print(table.unpack(res, 2, res.n)) end
    else
      out:write(tostring(res[2]), "\n")
    end
  else
    out:write(err, "\n")
  end
  out:flush()
end
