--- resty.walrouter.pg: PostgreSQL's frontend/backend protocol (version 3.0)
-- over nginx cosockets. Moves bytes and keeps deadlines; holds no routing
-- rule. One round trip runs a pipeline of statements (the extended
-- protocol: Parse, Bind, Describe, Execute per statement, a Sync where the
-- caller asks for one and at the end), so a read and its position check, or
-- a write, its Sync and its position, cost one round trip.
--
-- Every socket operation runs under a timeout derived from the caller's
-- deadline (CLOCK_MONOTONIC microseconds).
local ffi_mod = require "resty.walrouter.ffi"
local auth = require "resty.walrouter.auth"

local tcp = ngx.socket.tcp
local byte, char, sub, find = string.byte, string.char, string.sub, string.find
local concat = table.concat
local floor = math.floor
local now_us = ffi_mod.now_us
local null = ngx.null

local M = {}

local PROTOCOL_3 = 196608
local CANCEL_CODE = 80877102

local function i32(n)
  if n < 0 then n = n + 4294967296 end
  return char(floor(n / 16777216) % 256, floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
end
local function i16(n) return char(floor(n / 256) % 256, n % 256) end
local function be32(s, i)
  local a, b, c, d = byte(s, i, i + 3)
  local n = ((a * 256 + b) * 256 + c) * 256 + d
  if n >= 2147483648 then n = n - 4294967296 end
  return n
end
local function be16(s, i)
  local a, b = byte(s, i, i + 1)
  return a * 256 + b
end
M.i32, M.be32 = i32, be32

local function msg(t, body) return t .. i32(#body + 4) .. body end

-- Milliseconds left before deadline_us (at least 1: 0 means "no timeout"
-- to cosockets); nil when it has passed.
local function left_ms(deadline_us)
  local left = deadline_us - now_us()
  if left <= 0 then return nil end
  local ms = floor(left / 1000)
  return ms < 1 and 1 or ms
end
M.left_ms = left_ms

-- ErrorResponse / NoticeResponse fields.
local function parse_error(body)
  local e, i = {}, 1
  while i <= #body do
    local code = sub(body, i, i)
    if code == "\0" then break end
    local z = find(body, "\0", i + 1, true)
    if not z then break end
    local v = sub(body, i + 1, z - 1)
    if code == "C" then e.sqlstate = v
    elseif code == "M" then e.message = v
    elseif code == "S" then e.severity = v
    elseif code == "D" then e.detail = v
    elseif code == "H" then e.hint = v
    end
    i = z + 1
  end
  e.message = e.message or "server error"
  return e
end
M.parse_error = parse_error

local Conn = {}
Conn.__index = Conn

-- One message: type byte, body; or nil, err ("timeout", "closed", ...).
function Conn:read(deadline_us)
  local sock = self.sock
  local ms = left_ms(deadline_us)
  if not ms then return nil, "timeout" end
  sock:settimeout(ms)
  local hdr, err = sock:receive(5)
  if not hdr then return nil, err end
  local len = be32(hdr, 2) - 4
  local body = ""
  if len > 0 then
    body, err = sock:receive(len)
    if not body then return nil, err end
  elseif len < 0 then
    return nil, "bad message length"
  end
  return sub(hdr, 1, 1), body
end

function Conn:send(data, deadline_us)
  local ms = left_ms(deadline_us)
  if not ms then return nil, "timeout" end
  self.sock:settimeout(ms)
  return self.sock:send(data)
end

--- Opens a connection (or takes the idle one kept under `pool`) and, when
-- it is new, logs in. opts: host, port, user, password, database,
-- application_name, pool. Returns conn, or nil, err, sqlstate.
function M.connect(opts, deadline_us)
  local sock = tcp()
  local ms = left_ms(deadline_us)
  if not ms then return nil, "connect timeout" end
  sock:settimeout(ms)
  local ok, err = sock:connect(opts.host, opts.port, opts.pool and { pool = opts.pool } or nil)
  if not ok then return nil, ("%s:%s: connect failed: %s"):format(opts.host, opts.port, err) end
  local c = setmetatable({ sock = sock, opts = opts, txstatus = "I", params = {} }, Conn)
  if (sock:getreusedtimes() or 0) > 0 then
    c.reused = true
    return c
  end
  local okl, lerr, state = c:login(deadline_us)
  if not okl then
    sock:close()
    return nil, ("%s:%s: %s%s"):format(opts.host, opts.port, lerr,
                                         state and " (SQLSTATE " .. state .. ")" or ""), state
  end
  return c
end

function Conn:login(deadline_us)
  local o = self.opts
  local body = i32(PROTOCOL_3) .. "user\0" .. o.user .. "\0database\0" .. (o.database or o.user) ..
               "\0application_name\0" .. (o.application_name or "walrouter-resty") ..
               "\0client_encoding\0UTF8\0\0"
  local ok, err = self:send(i32(#body + 4) .. body, deadline_us)
  if not ok then return nil, "send failed: " .. tostring(err) end
  local scram
  while true do
    local t, b = self:read(deadline_us)
    if not t then return nil, "login failed: " .. tostring(b) end
    if t == "R" then
      local code = be32(b, 1)
      if code == 0 then -- AuthenticationOk
      elseif code == 3 then
        if not o.password then return nil, "the server asks for a password and none was given", "28P01" end
        ok, err = self:send(msg("p", o.password .. "\0"), deadline_us)
      elseif code == 5 then
        if not o.password then return nil, "the server asks for a password and none was given", "28P01" end
        ok, err = self:send(msg("p", auth.md5_response(o.user, o.password, sub(b, 5, 8)) .. "\0"), deadline_us)
      elseif code == 10 then
        if not find(b, "SCRAM-SHA-256\0", 5, true) then
          return nil, "the server offers no SASL mechanism this client has (SCRAM-SHA-256)"
        end
        if not o.password then return nil, "the server asks for a password and none was given", "28P01" end
        scram = auth.scram_new(o.password)
        local first = scram:client_first()
        ok, err = self:send(msg("p", "SCRAM-SHA-256\0" .. i32(#first) .. first), deadline_us)
      elseif code == 11 then
        if not scram then return nil, "unexpected SASL message" end
        local final, serr = scram:client_final(sub(b, 5))
        if not final then return nil, serr end
        ok, err = self:send(msg("p", final), deadline_us)
      elseif code == 12 then
        if not scram then return nil, "unexpected SASL message" end
        local v, verr = scram:verify(sub(b, 5))
        if not v then return nil, verr end
      else
        return nil, "authentication method " .. code .. " is not supported"
      end
      if not ok then return nil, "send failed: " .. tostring(err) end
    elseif t == "E" then
      local e = parse_error(b)
      return nil, e.message, e.sqlstate
    elseif t == "K" then
      self.pid, self.key = be32(b, 1), be32(b, 5)
    elseif t == "S" then
      local z = find(b, "\0", 1, true)
      if z then self.params[sub(b, 1, z - 1)] = sub(b, z + 1, #b - 1) end
    elseif t == "Z" then
      self.txstatus = sub(b, 1, 1)
      return true
    end -- 'N' notices and anything else: ignored
  end
end

--- Asks the server, on a new connection, to cancel what this connection
-- runs. Best effort within deadline_us.
function Conn:cancel(deadline_us)
  if not self.pid then return nil, "no cancel key" end
  local s = tcp()
  local ms = left_ms(deadline_us)
  if not ms then return nil, "timeout" end
  s:settimeout(ms)
  local ok, err = s:connect(self.opts.host, self.opts.port)
  if not ok then return nil, err end
  ok, err = s:send(i32(16) .. i32(CANCEL_CODE) .. i32(self.pid) .. i32(self.key))
  s:close()
  return ok, err
end

-- Parameter as text: integers without ".0", floats exactly, booleans.
local function param_text(v)
  local tv = type(v)
  if tv == "string" then return v end
  if v == nil or v == null then return nil end
  if tv == "number" then
    if v == floor(v) and v > -2^53 and v < 2^53 then return ("%d"):format(v) end
    return ("%.17g"):format(v)
  end
  if tv == "boolean" then return v and "true" or "false" end
  return tostring(v)
end
M.param_text = param_text

-- One statement's messages (text formats, unnamed portal). With a cache
-- (self.cache: { stmts = {sql -> name}, n =, seq =, max = }), a statement
-- runs as a named prepared statement of the connection: parsed once, bound
-- by name afterwards.
local function statement(parts, q, cache)
  local np = q.n or 0
  local name = ""
  if cache then
    local known = cache.stmts[q.sql]
    if known then
      name, q.cached = known, true
    elseif cache.n < cache.max then
      cache.seq = cache.seq + 1
      name = "wr" .. cache.seq
      q.preparing = name
    end
  end
  if not q.cached then parts[#parts + 1] = msg("P", name .. "\0" .. q.sql .. "\0" .. i16(0)) end
  local b = { "\0", name, "\0", i16(0), i16(np) }
  for i = 1, np do
    local v = param_text(q.params[i])
    if v == nil then b[#b + 1] = i32(-1) else b[#b + 1] = i32(#v) .. v end
  end
  b[#b + 1] = i16(0)
  parts[#parts + 1] = msg("B", concat(b))
  parts[#parts + 1] = "D\0\0\0\6P\0"
  parts[#parts + 1] = "E\0\0\0\9\0\0\0\0\0"
end

-- After a round trip: statements parsed under a name join the cache; a
-- cached one the server no longer has, or whose plan it refused, leaves it
-- (q.stale: it did not run).
local function settle_cache(qs, cache)
  for k = 1, #qs do
    local q = qs[k]
    if q.preparing and q.parsed then
      cache.stmts[q.sql] = q.preparing
      cache.n = cache.n + 1
    elseif q.cached and q.err then
      local st = q.err.sqlstate
      if st == "26000" or (st == "0A000" and find(q.err.message, "cached plan", 1, true)) then
        q.stale = true
        cache.stmts[q.sql] = nil
        cache.n = cache.n - 1
      end
    end
  end
end

local SYNC = "S\0\0\0\4"

local INT_OIDS = { [20] = true, [21] = true, [23] = true, [26] = true }
local FLOAT_OIDS = { [700] = true, [701] = true }

local function parse_fields(b)
  local n = be16(b, 1)
  local fields, i = {}, 3
  for k = 1, n do
    local z = find(b, "\0", i, true)
    local name = sub(b, i, z - 1)
    local oid = be32(b, z + 7)
    fields[k] = { name = name, oid = oid }
    i = z + 19
  end
  return fields
end

local function parse_row(b, fields)
  local n = be16(b, 1)
  local row, i = {}, 3
  for k = 1, n do
    local len = be32(b, i)
    i = i + 4
    local v
    if len < 0 then
      v = null
    else
      v = sub(b, i, i + len - 1)
      i = i + len
      local f = fields and fields[k]
      if f then
        local oid = f.oid
        if INT_OIDS[oid] or FLOAT_OIDS[oid] then v = tonumber(v) or v
        elseif oid == 16 then v = v == "t" end
      end
    end
    row[k] = v
    local f = fields and fields[k]
    if f then row[f.name] = v end
  end
  return row
end

--- Runs a pipeline in one round trip. qs: list of { sql=, params=, n=,
-- sync_after= }; a Sync ends the list. Results go into each q: q.rows
-- (with q.fields), q.tag, or q.err ({message, sqlstate, ...}); a statement
-- skipped after an earlier error in its Sync segment gets neither.
-- patient: past the deadline, send a cancel request and wait up to
-- grace_us more for the server's answer (a statement on the primary);
-- otherwise give up at once. Returns status: "ok", "not_sent", "lost",
-- "timeout", plus canceled (a cancel request was sent) and a detail.
function Conn:run(qs, deadline_us, patient, grace_us)
  local parts = {}
  local nseg = 0
  for k = 1, #qs do
    local q = qs[k]
    q.seg = nseg
    statement(parts, q, self.cache)
    if q.sync_after or k == #qs then
      parts[#parts + 1] = SYNC
      nseg = nseg + 1
    end
  end
  local ok, err = self:send(concat(parts), deadline_us)
  if not ok then
    self.broken = true
    return "not_sent", false, "send failed: " .. tostring(err)
  end
  local cur, seg_done, canceled = 1, 0, false
  while seg_done < nseg do
    local t, b = self:read(deadline_us)
    if not t then
      if b == "timeout" and patient and not canceled and self.pid then
        canceled = true
        local cdl = now_us() + grace_us
        self:cancel(cdl)
        deadline_us = cdl
      else
        self.broken = true
        if b == "timeout" then return "timeout", canceled, "no answer before the deadline" end
        return "lost", canceled, "connection lost: " .. tostring(b)
      end
    elseif t == "D" then
      local q = qs[cur]
      if q then
        local rows = q.rows
        if not rows then rows = {}; q.rows = rows end
        rows[#rows + 1] = parse_row(b, q.fields)
      end
    elseif t == "1" then
      if qs[cur] then qs[cur].parsed = true end
    elseif t == "T" then
      if qs[cur] then qs[cur].fields = parse_fields(b) end
    elseif t == "C" then
      local q = qs[cur]
      if q then
        q.tag = sub(b, 1, #b - 1)
        if not q.rows then q.rows = {} end
      end
      cur = cur + 1
    elseif t == "I" then
      if qs[cur] then qs[cur].rows = {}; qs[cur].tag = "" end
      cur = cur + 1
    elseif t == "E" then
      local e = parse_error(b)
      local q = qs[cur]
      if q then
        q.err = e
        local seg = q.seg
        while qs[cur] and qs[cur].seg == seg do cur = cur + 1 end
      else
        self.broken = true -- an error outside any statement: the server is leaving
        return "lost", canceled, e.message
      end
    elseif t == "Z" then
      seg_done = seg_done + 1
      self.txstatus = sub(b, 1, 1)
      while qs[cur] and qs[cur].seg < seg_done do cur = cur + 1 end
    elseif t == "S" then
      local z = find(b, "\0", 1, true)
      if z then self.params[sub(b, 1, z - 1)] = sub(b, z + 1, #b - 1) end
    end -- '2' BindComplete, 'n' NoData, 'N', 'A': nothing to keep
  end
  if self.cache then settle_cache(qs, self.cache) end
  return "ok", canceled
end

function Conn:close()
  if self.sock then self.sock:close() end
  self.sock = nil
end

--- Back to the idle pool when it is clean (idle, not broken), else closed.
function Conn:keepalive(idle_ms, pool_size)
  local sock = self.sock
  if not sock then return end
  self.sock = nil
  if self.broken or self.txstatus ~= "I" then
    sock:close()
    return false
  end
  return sock:setkeepalive(idle_ms, pool_size or 1)
end

return M
