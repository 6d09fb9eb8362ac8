--- walrouter: a PostgreSQL primary and its streaming replicas used as one
-- database. Writes go to the primary; a read goes to a replica only when that
-- replica has provably replayed everything the session must see (by WAL
-- position), else, after a short bounded retry, to the primary.
--
--   local walrouter = require "walrouter"
--   local cluster = assert(walrouter.connect("postgresql://u:pw@h1,h2,h3/db"))
--   local s <close> = cluster:session(cookie_token)   -- token optional
--   local n = assert(s:exec("INSERT INTO t(v) VALUES ($1)", "x"))
--   local rows = assert(s:query("SELECT id, v FROM t WHERE v = $1", "x"))
--   print(rows[1].id, rows.node, rows.reason)
--   set_cookie(s:token())
--
-- Runtime failures return nil, err (err.message, err.code, err.sqlstate,
-- err.node); misuse (wrong argument types, a closed handle) raises.
--
-- A call waiting on the network returns nil, err (err.code "interrupted")
-- on Ctrl-C, after canceling its statement on the server, and the signal is
-- raised again for the previous handler (lua5.4's says "interrupted!").
--
-- The C module `walrouter.core` supplies the handles and their primitive
-- methods (query, query_primary, exec, begin, commit, rollback, token,
-- resume, require, need, close, stream_open, node_status, status_json,
-- metrics, poll_events, on_event, start_refresher, ...); this file adds the
-- friendly ones (transaction, stream, status, nodes, events) to the same
-- method tables, and delivers events to a cluster's handler, so the split
-- stays invisible.
local core = require "walrouter.core"
local format = require "walrouter.format"

local Cluster = core.cluster_methods
local Session = core.session_methods
local error_mt = core.error_mt

local walrouter = {
  _VERSION = "walrouter " .. core.version,
  version = core.version,
  --- SQL NULL in rows (so rows keep their positions), also accepted as a
  -- parameter. Compare with `v == walrouter.null`.
  null = core.null,
}

core.hooks.rows_tostring = format.rows
core.hooks.row_tostring = format.row

--- walrouter.connect(dsn [, opts]) -> cluster | nil, err
-- dsn: one libpq URI or key=value string listing every node. opts: the
-- wr_options fields by name (read_budget_ms = 200, max_lag_bytes = ...,
-- token_key = "...", no_stmt_cache = true, ...). An unknown option or a bad
-- value raises, naming the option.
walrouter.connect = core.open

--- True when v is an error object returned by walrouter.
function walrouter.is_error(v)
  return getmetatable(v) == error_mt
end

local function new_error(message, code, cause)
  return setmetatable({ message = message, code = code, cause = cause }, error_mt)
end

-- ---- events ------------------------------------------------------------

local event_mt = { __name = "walrouter.event", __tostring = format.event }

-- Calls fn(event, cluster) for each event of list, in order. An error in fn
-- is reported with warn() (shown by `lua5.4 -W`) and never raised from the
-- call that delivered it: that call's work is done (a write has committed),
-- and an error there would invite re-running it.
local function deliver(cluster, fn, list)
  for i = 1, #list do
    local ok, err = pcall(fn, setmetatable(list[i], event_mt), cluster)
    if not ok then warn("walrouter: on_event handler failed: ", tostring(err)) end
  end
end

-- The C glue calls this after each call that may notice a node state change
-- (query, exec, begin, commit, rollback, refresh, status_json, metrics), on
-- a cluster with a handler, on the caller's thread.
core.hooks.deliver = function(cluster, fn)
  local list = cluster:poll_events()
  if #list > 0 then deliver(cluster, fn, list) end
end

-- ---- cluster -----------------------------------------------------------

local status_mt = { __name = "walrouter.status", __tostring = format.status }

--- cluster:status() -> array of node records | nil, err
-- Each record: name ("host:port"), host, port, role ("primary", "replica",
-- "unknown"), state ("up", "streaming", "catching_up", "lagging", "down",
-- "unknown"), lag_bytes, lag_seconds, replay_lsn ("X/Y"), replay_rate
-- (bytes/s), last_check_unix_ms, conns_in_use, conns_idle, last_error,
-- served (statements per reason name), errors. Unknown figures are nil.
function Cluster:status()
  local list = {}
  for i = 1, self:nnodes() do
    local rec, err = self:node_status(i)
    if not rec then return nil, err end
    list[i] = rec
  end
  local fn = self:event_handler()
  if fn then core.hooks.deliver(self, fn) end
  return setmetatable(list, status_mt)
end

--- cluster:events() -> array of the node state changes noticed since the
-- last call (the last 64 at most), oldest first; each {node = "host:port",
-- from = "streaming", to = "down", at_ms = Unix time in ms}. They are
-- removed from the queue; with a handler set, each is passed to it too.
function Cluster:events()
  local list = self:poll_events()
  for i = 1, #list do setmetatable(list[i], event_mt) end
  local fn = self:event_handler()
  if fn and #list > 0 then deliver(self, fn, list) end
  return list
end

-- cluster:on_event(fn | nil) is the C primitive: fn(event, cluster) is
-- called with each event after every cluster or session call that may
-- notice a change, on the caller's thread (see docs/lua.md, Operations).

--- cluster:nodes() -> array of node names ("host:port"), in DSN order.
function Cluster:nodes()
  local names = {}
  for i = 1, self:nnodes() do names[i] = self:node_name(i) end
  return names
end

-- ---- session -----------------------------------------------------------

local tx_options = { read_only = true }

--- session:transaction(fn [, {read_only = true}]) -> fn's results | nil, err
-- Runs fn(session) inside BEGIN ... COMMIT on one connection of one node:
-- the primary, or with read_only one replica fresh enough for the session.
-- Commits when fn returns; rolls back when fn raises an error or returns
-- nil, err, and then returns nil, err (a raised value that is not a
-- walrouter error is wrapped: code "lua_error", the value in err.cause).
-- On commit it returns fn's results, or true when fn returned nothing.
function Session:transaction(fn, opts)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'transaction' (function expected, got %s)"):format(type(fn)), 2)
  end
  local read_only = false
  if opts ~= nil then
    if type(opts) ~= "table" then
      error(("bad argument #2 to 'transaction' (table expected, got %s)"):format(type(opts)), 2)
    end
    for k in pairs(opts) do
      if not tx_options[k] then
        error(("bad argument #2 to 'transaction' (unknown option %q)"):format(tostring(k)), 2)
      end
    end
    read_only = opts.read_only and true or false
  end
  local ok, err = self:begin(read_only)
  if not ok then return nil, err end
  local res = table.pack(pcall(fn, self))
  local failure
  if not res[1] then
    failure = getmetatable(res[2]) == error_mt and res[2] or new_error(tostring(res[2]), "lua_error", res[2])
  elseif res[2] == nil and res[3] ~= nil then -- fn returned nil, err
    failure = res[3]
  end
  if failure then
    if not self:closed() and self:in_transaction() then self:rollback() end
    return nil, failure
  end
  ok, err = self:commit()
  if not ok then return nil, err end
  if res[2] == nil then return true end
  return table.unpack(res, 2, res.n)
end

-- ---- streaming ---------------------------------------------------------

local Stream = {}
local stream_mt = {
  __name = "walrouter.stream",
  __index = Stream,
}

local stream_keys = { chunk = true, primary = true }

-- The next row, or nil once every row was read (the stream is then closed).
-- An error is raised, after closing the stream: an iterator that returned
-- nil, err would end the loop as if every row had been read.
local function next_row(st)
  local i = st.i + 1
  if i <= st.n then
    st.i = i
    return st.rows[i]
  end
  if st.done then return nil end
  local rows, err = st.handle:fetch(st.chunk)
  if not rows then
    st.done, st.rows, st.n, st.i = true, nil, 0, 0
    st.handle:close()
    if rows == nil then error(err, 0) end
    return nil
  end
  st.rows, st.n, st.i = rows, #rows, 1
  if st.columns == nil then
    st.columns, st.node, st.reason = rows.columns, rows.node, rows.reason
  end
  return rows[1]
end

stream_mt.__call = next_row

--- stream:close() -> true | nil, err: ends the stream's transaction (the
-- rows not read are dropped). Idempotent; `<close>`, the end of a generic
-- for and the collector close it too.
function Stream:close()
  self.done, self.rows, self.n, self.i = true, nil, 0, 0
  return self.handle:close()
end

stream_mt.__close = function(st) st:close() end

--- stream:closed() -> true once every row was read or it was closed.
function Stream:closed()
  return self.handle:closed()
end

stream_mt.__tostring = function(st)
  return ("walrouter.stream (%s%s)"):format(st.handle:closed() and "closed" or "open",
    st.node and ("; node " .. st.node) or "")
end

--- session:stream(sql, ...) -> stream, nil, nil, stream
-- session:stream({sql, chunk = 1000, primary = false}, ...)
-- A read whose rows arrive in chunks (1000 by default), so memory stays
-- flat however many rows it returns:
--
--   for row in s:stream("SELECT id, v FROM big WHERE v > $1", x) do ... end
--
-- It runs as a read-only transaction on one replica fresh enough for the
-- session (primary = true: on the primary), through a server-side cursor:
-- one snapshot for every chunk. The session is in that transaction until
-- the stream is closed: at the end of the loop (also on break or error,
-- through the generic for's closing value), by stream:close(), `<close>`
-- or the collector. As io.lines does, it raises its errors (the walrouter
-- error object) instead of returning nil, err, which a for loop would read
-- as the end of the rows. The stream's first chunk is read at once, so
-- stream.columns, stream.node and stream.reason are set when it returns
-- (nil when there is no row).
function Session:stream(sql, ...)
  local chunk, primary = 1000, false
  if type(sql) == "table" then
    local spec = sql
    for k in pairs(spec) do
      if k ~= 1 and not stream_keys[k] then
        error(("bad argument #1 to 'stream' (unknown option %q)"):format(tostring(k)), 2)
      end
    end
    sql, chunk, primary = spec[1], spec.chunk or 1000, spec.primary and true or false
    if math.type(chunk) ~= "integer" or chunk < 1 or chunk > 0x7fffffff then
      error("bad argument #1 to 'stream' (chunk must be an integer from 1 to 2147483647)", 2)
    end
  end
  if type(sql) ~= "string" then
    error(("bad argument #1 to 'stream' (string expected, got %s)"):format(type(sql)), 2)
  end
  local open = primary and self.stream_open_primary or self.stream_open
  local h, err = open(self, sql, ...)
  if not h then error(err, 2) end
  local st = setmetatable({ handle = h, chunk = chunk, rows = nil, n = 0, i = 0, done = false }, stream_mt)
  local ok, e = pcall(next_row, st) -- the first chunk: columns and node, and errors, at once
  if not ok then
    h:close() -- (next_row closed it, unless what it raised was not its own: "interrupted!")
    error(e, 2)
  end
  st.i = 0
  return st, nil, nil, st
end

return walrouter
