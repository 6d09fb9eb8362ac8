--- resty.walrouter: a PostgreSQL primary and its streaming replicas used as
-- one database from OpenResty / nginx with lua-nginx-module. Writes go to
-- the primary; a read goes to a replica only when that replica has provably
-- replayed everything the session must see (by WAL position), else, after a
-- short bounded retry, to the primary.
--
-- Every routing and safety decision comes from the walrouter engine
-- (libwalrouter_engine, through LuaJIT FFI): this file moves bytes over
-- cosockets (resty.walrouter.pg), keeps time and feeds the engine what
-- happened. Node state lives in a lua_shared_dict (resty.walrouter.shared),
-- so a probe by one worker serves them all.
--
--   init_by_lua:    walrouter.configure{ name = "main", dsn = "...", shm = "walrouter" }
--   init_worker:    walrouter.init_worker{ probe_interval = 0.1 }
--   handler:        local db = walrouter.new{ cluster = "main", token = ngx.var.cookie_wr }
--                   local rows, err, code, sqlstate = db:query("SELECT ...", ...)
local ffi = require "ffi"
local ffi_mod = require "resty.walrouter.ffi"
local pg = require "resty.walrouter.pg"
local dsn_mod = require "resty.walrouter.dsn"
local shared = require "resty.walrouter.shared"
local semaphore = require "ngx.semaphore"

local band, bor = bit.band, bit.bor
local now_us = ffi_mod.now_us
local ffi_string = ffi.string
local random = math.random

local M = { _VERSION = "0.1.0", null = ngx.null }

local E -- the engine library, loaded by configure
local clusters = {}

-- Mirrors of the engine's constants (walrouter_engine.h).
local OP = { READ = 0, READ_PRIMARY = 1, WRITE = 2, BEGIN = 3, BEGIN_READ_ONLY = 4, TX = 5,
             COMMIT = 6, ROLLBACK = 7 }
local STEP_RUN, STEP_WAIT, STEP_PROBE, STEP_SNAPSHOT, STEP_DONE = 0, 1, 2, 3, 4
local RUN_CHECK_REPLAY, RUN_SNAPSHOT_CHECK, RUN_INSERT_POS, RUN_KEEP, RUN_PINNED, RUN_SYNCREP_CHECK =
  1, 2, 4, 8, 16, 32
local PROBE_FORCE = 1
local IO_OK, IO_SQL_ERROR, IO_NOT_SENT, IO_LOST, IO_TIMEOUT, IO_STALE, IO_CHECK_FAILED, IO_CANCELED, IO_BUSY =
  0, 1, 2, 3, 4, 5, 6, 7, 8
local CODE_NAMES = { [0] = "ok", "bad_argument", "bad_token", "connect_error", "sql_error",
  "unknown_outcome", "no_primary", "bad_state", "out_of_memory", "internal_error", "timeout",
  "split_brain", "interrupted" }

-- The engine's SQL (walrouter_engine.h).
local SQL_PROBE = "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery()  THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver),                (SELECT timeline_id FROM pg_control_checkpoint()))  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int END, CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()  ELSE pg_current_wal_insert_lsn() END, CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()  ELSE pg_current_wal_flush_lsn() END, CASE WHEN NOT pg_is_in_recovery() THEN NULL  ELSE coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false) END, current_setting('wal_block_size'), pg_size_bytes(current_setting('wal_segment_size'))"
local SQL_REPLAY_LSN = "SELECT pg_last_wal_replay_lsn()"
local SQL_INSERT_POS = "SELECT pg_current_wal_insert_lsn(), pg_current_wal_flush_lsn(), ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int"
local SQL_SNAPSHOT = "SELECT pg_current_snapshot()::text"
local SQL_SNAPSHOT_CHECK = "SELECT 1 / (NOT EXISTS (SELECT FROM pg_snapshot_xip(pg_current_snapshot()) x WHERE pg_visible_in_snapshot(x, $1::pg_snapshot)) AND (SELECT pg_snapshot_xmax($1::pg_snapshot)::text::numeric  - pg_snapshot_xmax(p)::text::numeric <= (SELECT count(*)  FROM pg_snapshot_xip($1::pg_snapshot) x WHERE x >= pg_snapshot_xmax(p)) FROM pg_current_snapshot() p))::int"
local SQL_SYNCREP_CHECK = "SELECT 1 / (NOT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event = 'SyncRep'))::int"
local SQL_BEGIN_READ_ONLY = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
local CANCEL_GRACE_US = 1000000

local function pack(...) return { n = select("#", ...), ... } end

local function rand32() return random(0, 4294967295) end
local function unix_ms() return math.floor(ngx.now() * 1000) end

-- ---- configuration ------------------------------------------------------------------

local function ms_to_us(v, name)
  if v == nil then return 0 end
  if v == "none" then return ffi.new("uint64_t", -1) end
  local n = tonumber(v)
  if not n or n < 0 then error("resty.walrouter: option " .. name .. ": bad value " .. tostring(v), 3) end
  return n * 1000
end

local KNOWN = { name = 1, dsn = 1, shm = 1, read_budget_ms = 1, retry_interval_ms = 1,
  statement_timeout_ms = 1, refresh_interval_ms = 1, max_lag_bytes = 1, max_lag_ms = 1,
  connect_timeout_ms = 1, nearest = 1, token_key = 1, token_ttl_s = 1, pool_size = 1,
  keepalive_ms = 1, engine_lib = 1, application_name = 1, max_logins = 1, stmt_cache_size = 1,
  no_stmt_cache = 1 }

--- walrouter.configure{ name=, dsn=, shm=, ... } (init_by_lua): declares a
-- cluster. Raises on a bad option, naming it.
function M.configure(o)
  if type(o) ~= "table" then error("resty.walrouter.configure: a table is required", 2) end
  for k in pairs(o) do
    if not KNOWN[k] then error("resty.walrouter.configure: unknown option " .. tostring(k), 2) end
  end
  E = ffi_mod.engine(o.engine_lib)
  local name = o.name or "default"
  local d, derr = dsn_mod.parse(o.dsn)
  if not d then error("resty.walrouter.configure: " .. derr, 2) end
  local dict = ngx.shared[o.shm or "walrouter"]
  if not dict then
    error("resty.walrouter.configure: no lua_shared_dict named " .. tostring(o.shm or "walrouter"), 2)
  end
  local n = #d.nodes
  local cfg = ffi.new("wr_config")
  cfg.budget_us = ms_to_us(o.read_budget_ms, "read_budget_ms")
  cfg.retry_interval_us = ms_to_us(o.retry_interval_ms, "retry_interval_ms")
  cfg.statement_timeout_us = ms_to_us(o.statement_timeout_ms, "statement_timeout_ms")
  cfg.refresh_interval_us = ms_to_us(o.refresh_interval_ms, "refresh_interval_ms")
  cfg.max_lag_us = ms_to_us(o.max_lag_ms, "max_lag_ms")
  cfg.connect_timeout_us = ms_to_us(o.connect_timeout_ms or (d.connect_timeout_s and d.connect_timeout_s * 1000),
                                    "connect_timeout_ms")
  if o.max_lag_bytes == "none" then cfg.max_lag_bytes = ffi.new("uint64_t", -1)
  elseif o.max_lag_bytes then cfg.max_lag_bytes = assert(tonumber(o.max_lag_bytes), "max_lag_bytes") end
  cfg.choose = o.nearest and 1 or 0
  local names = ffi.new("const char *[?]", n)
  local keep = {}
  for i, node in ipairs(d.nodes) do
    keep[i] = node.name
    names[i - 1] = node.name
  end
  local eng = ffi.new("wr_engine")
  if E.wr_engine_init(eng, cfg, names, n) ~= 0 then error("resty.walrouter.configure: engine init failed", 2) end
  local ids = ffi.new("uint32_t[?]", n)
  for i = 0, n - 1 do ids[i] = eng.nodes[i].id end
  local c = {
    name = name, dict = dict, dsn = d, n = n, nodes = d.nodes, eng = eng, names = names,
    names_keep = keep, ids = ids,
    token_key = o.token_key, token_key_len = o.token_key and #o.token_key or 0,
    token_ttl = tonumber(o.token_ttl_s) or 86400,
    pool_size = tonumber(o.pool_size) or 32,
    stmt_cache_size = o.no_stmt_cache and 0 or tonumber(o.stmt_cache_size) or 64,
    max_logins = tonumber(o.max_logins) or 4, keepalive_ms = tonumber(o.keepalive_ms) or 60000,
    connect_us = tonumber(cfg.connect_timeout_us) > 0 and tonumber(cfg.connect_timeout_us) or 5000000,
    application_name = o.application_name or "walrouter-resty",
    pools = {},
  }
  for i = 0, n - 1 do
    c.pools[i] = { idle = {}, free = {}, seq = 0, logins = 0, waiting = 0, sema = nil }
  end
  shared.attach(c)
  clusters[name] = c
  return c
end

-- ---- connections ---------------------------------------------------------------------

-- Idle connections of node i are kept by nginx, each under its own pool
-- name, so that what the protocol needs again (the cancel key) stays known
-- to this worker: pools[i].idle is a stack of { pool=, pid=, key= } whose
-- connection was handed to nginx; pools[i].free holds pool names with no
-- connection. Names are reused, so their number stays at the peak
-- concurrency of the worker.
local function acquire(c, i, deadline_us)
  local p = c.pools[i]
  local meta = table.remove(p.idle)
  -- No idle connection: log in a new one, at most max_logins at a time per
  -- node in this worker (a burst of logins would make each one late); the
  -- others wait for a connection to come back or a login to end.
  while not meta and p.logins >= c.max_logins do
    local ms = pg.left_ms(deadline_us)
    if not ms then return nil, "no free connection before the deadline", nil, true end
    p.sema = p.sema or semaphore.new(0) -- made in the worker that waits
    p.waiting = p.waiting + 1
    p.sema:wait(ms / 1000)
    p.waiting = p.waiting - 1
    meta = table.remove(p.idle)
  end
  local login = false
  if not meta then
    meta = table.remove(p.free)
    if not meta then
      p.seq = p.seq + 1
      meta = { pool = ("wr:%s:%d:%d"):format(c.name, i, p.seq) }
    end
  end
  if not pg.left_ms(deadline_us) then -- the deadline passed while waiting
    if meta.pid then p.idle[#p.idle + 1] = meta else p.free[#p.free + 1] = meta end
    return nil, "no free connection before the deadline", nil, true
  end
  if not meta.pid then
    login = true
    p.logins = p.logins + 1
  end
  local node = c.nodes[i + 1]
  local opts = { host = node.host, port = node.port, user = c.dsn.user, password = c.dsn.password,
                 database = c.dsn.database, application_name = c.application_name, pool = meta.pool }
  local conn, err, state = pg.connect(opts, deadline_us)
  if login then
    p.logins = p.logins - 1
    if p.waiting > 0 then p.sema:post(1) end
  end
  if not conn then
    p.free[#p.free + 1] = { pool = meta.pool }
    return nil, err, state
  end
  if conn.reused then conn.pid, conn.key = meta.pid, meta.key
  else
    meta.pid, meta.key = conn.pid, conn.key
    meta.cache = c.stmt_cache_size > 0 and { stmts = {}, n = 0, seq = 0, max = c.stmt_cache_size } or nil
  end
  conn.meta, conn.node, conn.cache = meta, i, meta.cache
  return conn
end

local function release(c, conn, dirty)
  if not conn or not conn.sock then return end
  local p = c.pools[conn.node]
  if dirty or #p.idle >= c.pool_size then conn.broken = true end
  if conn:keepalive(c.keepalive_ms) then
    p.idle[#p.idle + 1] = conn.meta
    if p.waiting > 0 then p.sema:post(1) end
  else
    p.free[#p.free + 1] = { pool = conn.meta.pool }
  end
end

-- A statement that changed its connection's session state: the connection
-- must not serve another request.
local STATE_TAGS = { SET = true, RESET = true, LISTEN = true, UNLISTEN = true, PREPARE = true,
                     DEALLOCATE = true, DISCARD = true, LOAD = true }
local STATE_WORDS = { "set_config", "advisory_lock", "temp", "temporary", "dblink_connect", "hold" }
local function changes_state(sql, tag)
  if tag then
    local word = tag:match("^(%u+)")
    if word and STATE_TAGS[word] then return true end
  end
  local low = sql:lower()
  for _, w in ipairs(STATE_WORDS) do
    if low:find(w, 1, true) and low:find("%f[%w_]" .. w .. "%f[^%w_]") then return true end
  end
  return false
end

-- ---- probes --------------------------------------------------------------------------

-- Whether the deadline is what ended a step: nginx's timers have a
-- millisecond grain, so a socket timeout may fire up to a tick early.
local function deadline_passed(deadline)
  return now_us() + 2000 >= deadline and 1 or 0
end

local probe_values = ffi.new("const char *[7]")
local function probe_node(c, i, deadline_us)
  local started = now_us()
  local sent = started
  local conn, err, _, busy = acquire(c, i, deadline_us)
  if busy then return true end -- every connection in use: the node answers
  local row
  if conn then
    sent = now_us()
    local q = { sql = SQL_PROBE }
    local status, _, detail = conn:run({ q }, deadline_us, false, 0)
    if status ~= "ok" then err = ("%s: probe failed: %s"):format(c.nodes[i + 1].name, detail)
    elseif q.err then err = ("%s: probe failed: %s"):format(c.nodes[i + 1].name, q.err.message)
    else row = q.rows and q.rows[1] end
    release(c, conn, status ~= "ok")
  end
  local p
  if row then
    local keep = {}
    for k = 1, 7 do
      local v = row[k]
      if v == ngx.null then probe_values[k - 1] = nil
      else
        if v == true then v = "t" elseif v == false then v = "f" end
        keep[k] = tostring(v)
        probe_values[k - 1] = keep[k]
      end
    end
    p = ffi.new("wr_probe")
    if E.wr_probe_parse(probe_values, p) ~= 0 then
      p, err = nil, c.nodes[i + 1].name .. ": probe returned an unexpected row"
    end
  end
  local now = now_us()
  if p then E.wr_engine_probe_ok(c.eng, i, p, sent, now, unix_ms())
  elseif E.wr_engine_probe_failed(c.eng, i, started, deadline_us, deadline_passed(deadline_us), now,
                                  rand32(), err or "probe failed") == 0 then
    return false -- cut off by a short deadline: the engine does not count it (nothing to share)
  end
  shared.publish_probe(c, i, p, sent, now, unix_ms(), rand32(), err)
  return p ~= nil
end

-- Probes the nodes in mask, concurrently, each within deadline_us.
local function probe_mask(c, mask, deadline_us, force)
  local threads = {}
  local now = now_us()
  for i = 0, c.n - 1 do
    if band(mask, bit.lshift(1, i)) ~= 0 and (force or E.wr_engine_may_connect(c.eng, i, now) ~= 0) then
      threads[#threads + 1] = ngx.thread.spawn(probe_node, c, i, deadline_us)
    end
  end
  for k = 1, #threads do ngx.thread.wait(threads[k]) end
end

-- ---- sessions ------------------------------------------------------------------------

local Session = {}
Session.__index = Session
M.Session = Session

local function cluster_of(name)
  local c = clusters[name or "default"]
  if not c then
    if name == nil then local _, only = next(clusters); c = only end
    if not c then return nil, "resty.walrouter: no cluster named " .. tostring(name) .. " (call configure first)" end
  end
  return c
end

local tmp_tl = ffi.typeof("wr_timeline[1]")
local msg_out = ffi.new("const char *[1]")

local function decode_token(c, tok)
  local tl = tmp_tl()
  local r = E.wr_token_read(tok, #tok, os.time(), now_us(), c.token_ttl, c.token_key, c.token_key_len,
                            c.ids, c.n, tl, msg_out)
  if r == 1 then return nil end -- expired: nothing to require
  if r ~= 0 then return false, "invalid session token: " .. ffi_string(msg_out[0]) end
  return tl
end

--- walrouter.new{ cluster=, token= } -> db | nil, err, "bad_token"
function M.new(o)
  o = o or {}
  local c, err = cluster_of(o.cluster)
  if not c then return nil, err, "bad_argument" end
  local self = setmetatable({
    c = c, sess = ffi.new("wr_sess"), op = ffi.new("wr_op"), step = ffi.new("wr_step"),
    io = ffi.new("wr_io"), timeout_us = nil, tx = nil,
  }, Session)
  E.wr_sess_init(self.sess, rand32())
  local tok = o.token
  if tok ~= nil and tok ~= "" and tok ~= ngx.null then
    if type(tok) ~= "string" then return nil, "token must be a string", "bad_token" end
    local tl, terr = decode_token(c, tok)
    if tl == false then return nil, terr, "bad_token" end
    if tl then
      self.sess.tl = tl[0]
      self.sess.need_unproven = 1
    end
  end
  return self
end

--- db:set_timeout(ms): no socket operation of this session waits past
-- ms after its statement began (the engine's own deadlines still apply).
function Session:set_timeout(ms)
  self.timeout_us = ms and ms * 1000 or nil
end

local lsn_out = ffi.new("wr_lsn[1]")
local function parse_lsn(v)
  if type(v) ~= "string" or E.wr_lsn_parse(v, lsn_out) ~= 0 then return nil end
  return lsn_out[0]
end

-- One RUN or SNAPSHOT step: the pipeline, its outcome for the engine.
local function run_step(self, st, sql, params, np)
  local c, io, op = self.c, self.io, self.op
  local node, flags = st.node, st.flags
  local deadline = tonumber(st.deadline_us)
  if self.timeout_us then
    local cap = tonumber(op.start_us) + self.timeout_us
    if cap < deadline then deadline = cap end
  end
  ffi.fill(io, ffi.sizeof(io))
  local conn, err, sqlstate, busy
  if st.kind == STEP_RUN and band(flags, RUN_PINNED) ~= 0 then
    conn = self.tx
    if not conn then err = "the transaction's connection is gone" end
  else
    conn, err, sqlstate, busy = acquire(c, node, deadline)
  end
  if not conn then
    io.outcome = busy and IO_BUSY or IO_NOT_SENT
    io.deadline_hit = deadline_passed(deadline)
    self.last_detail, self.last_sqlstate = err, sqlstate
    return nil
  end
  local qs, i_check, i_snap, i_stmt, i_pos = {}, nil, nil, nil, nil
  if st.kind == STEP_SNAPSHOT then
    qs[1] = { sql = SQL_SNAPSHOT }
    i_stmt = 1
  else
    if band(flags, RUN_CHECK_REPLAY) ~= 0 then
      qs[#qs + 1] = { sql = SQL_REPLAY_LSN, sync_after = band(flags, RUN_KEEP) ~= 0 }
      i_check = #qs
    end
    if band(flags, RUN_SNAPSHOT_CHECK) ~= 0 then
      qs[#qs + 1] = { sql = SQL_SNAPSHOT_CHECK, params = { ffi_string(op.snapshot) }, n = 1 }
      i_snap = #qs
    elseif band(flags, RUN_SYNCREP_CHECK) ~= 0 then
      qs[#qs + 1] = { sql = SQL_SYNCREP_CHECK }
      i_snap = #qs
    end
    qs[#qs + 1] = { sql = sql, params = params, n = np, sync_after = band(flags, RUN_INSERT_POS) ~= 0 }
    i_stmt = #qs
    if band(flags, RUN_INSERT_POS) ~= 0 then
      qs[#qs + 1] = { sql = SQL_INSERT_POS }
      i_pos = #qs
    end
  end
  local patient = op.on_primary ~= 0 or band(flags, RUN_PINNED) ~= 0
  local sent = now_us()
  io.sent_us = sent
  local status, canceled, detail = conn:run(qs, deadline, patient, CANCEL_GRACE_US)
  io.deadline_hit = deadline_passed(deadline)
  local q = qs[i_stmt]
  local keep_snapshot
  if status ~= "ok" then
    io.outcome = status == "not_sent" and IO_NOT_SENT or status == "timeout" and IO_TIMEOUT or IO_LOST
    self.last_detail = ("%s: %s"):format(c.nodes[node + 1].name, detail)
  elseif st.kind == STEP_SNAPSHOT then
    local v = q.rows and q.rows[1] and q.rows[1][1]
    if not q.err and type(v) == "string" then
      keep_snapshot = v
      io.snapshot = v
      io.outcome = IO_OK
    else
      io.outcome = IO_SQL_ERROR
    end
  else
    if i_check then
      local r = qs[i_check].rows
      local l = r and r[1] and parse_lsn(r[1][1])
      if l then io.have_replay, io.replay = 1, l end
    end
    if i_pos then
      local r = qs[i_pos].rows
      local row = r and r[1]
      local l = row and parse_lsn(row[1])
      if l then
        io.have_insert, io.insert = 1, l
        io.flushed = parse_lsn(row[2]) or 0
        local tli = tonumber(row[3])
        if tli and tli > 0 then io.insert_tli = tli end
      end
    end
    if i_snap and qs[i_snap].err then
      io.outcome = IO_CHECK_FAILED
    elseif q.stale then
      io.outcome = IO_STALE
    elseif q.err then
      local state = q.err.sqlstate or ""
      ffi.copy(io.sqlstate, state, math.min(#state, 5))
      io.outcome = (canceled and state == "57014") and IO_CANCELED or IO_SQL_ERROR
      self.last_error = q.err
    elseif op.kind == OP.COMMIT and q.tag == "ROLLBACK" then
      io.outcome = IO_SQL_ERROR
      ffi.copy(io.sqlstate, "25P02", 5)
      self.last_error = { message = "the transaction failed and was rolled back", sqlstate = "25P02" }
    else
      io.outcome = IO_OK
    end
  end
  -- The connection stays with the session (a transaction), or goes back.
  local broken = status ~= "ok"
  local dirty = not broken and st.kind == STEP_RUN and
                (io.outcome == IO_OK or io.outcome == IO_SQL_ERROR) and changes_state(sql, q.tag)
  return conn, q, broken, dirty, keep_snapshot
end

local function fail_message(st)
  return ffi_string(st.msg)
end

-- Drives one operation of the engine to its end.
local function run_op(self, kind, sql, params, np)
  local c, op, st, sess = self.c, self.op, self.step, self.sess
  local eng = c.eng
  shared.sync(c, E)
  E.wr_op_start(op, kind, now_us())
  self.last_error, self.last_detail, self.last_sqlstate = nil, nil, nil
  local result
  while true do
    local now = now_us()
    E.wr_engine_tick(eng, now)
    E.wr_op_next(op, sess, eng, now, st)
    local k = st.kind
    if k == STEP_DONE then break end
    if k == STEP_WAIT then
      local wait = tonumber(st.deadline_us) - now_us()
      if wait > 0 then ngx.sleep(wait / 1e6) end
      shared.sync(c, E)
    elseif k == STEP_PROBE then
      probe_mask(c, st.probe_mask, tonumber(st.deadline_us), band(st.flags, PROBE_FORCE) ~= 0)
      shared.sync(c, E)
    else
      local conn, q, broken, dirty, keep_snapshot = run_step(self, st, sql, params, np)
      local io = self.io
      io.detail = self.last_detail
      local fnow = now_us()
      E.wr_op_feed(op, sess, eng, io, fnow, rand32())
      io.detail, io.snapshot = nil, nil
      keep_snapshot = nil -- held until the engine copied it
      shared.publish_changes(c, E, fnow, rand32())
      if conn then
        if st.kind == STEP_RUN and band(st.flags, RUN_KEEP + RUN_PINNED) ~= 0 and sess.tx_node >= 0 and not broken then
          self.tx = conn
        else
          if self.tx == conn then self.tx = nil end
          release(c, conn, broken or dirty)
        end
      end
      if st.kind == STEP_RUN then result = io.outcome == IO_OK and q or nil end
    end
  end
  local status = st.status
  if status ~= 0 then
    local e = self.last_error
    local code = CODE_NAMES[status] or "internal_error"
    if status == 4 and e then -- an SQL error: the server's words and SQLSTATE
      return nil, e.message, code, e.sqlstate
    end
    local m = fail_message(st)
    if m == "" then m = code end
    -- A node down because the server refused the login (SQLSTATE 28P01,
    -- 3D000, ...): its words and SQLSTATE (learnt by any worker).
    if status == 3 or status == 6 then
      for i = 0, c.n - 1 do
        local t = eng.nodes[i]
        if t.up == 0 then
          local why = ffi_string(t.last_error)
          local state = why:match("%(SQLSTATE (%w%w%w%w%w)%)$")
          if state then return nil, m .. " (" .. why .. ")", code, state end
        end
      end
    end
    return nil, m, code, nil
  end
  local rows = result and result.rows or {}
  local rn = op.result_node
  rows.node = rn >= 0 and c.nodes[rn + 1].name or nil
  rows.reason = ffi_string(E.wr_reason_name(op.result_reason))
  rows.command = result and result.tag
  rows.affected = result and result.tag and tonumber(result.tag:match("(%d+)$")) or nil
  return rows
end

local NO_PARAMS = {}

local function check_sql(sql)
  if type(sql) ~= "string" then error("bad argument #1 (string expected, got " .. type(sql) .. ")", 3) end
  local w = sql:match("^%s*(%a+)")
  w = w and w:upper()
  if w == "BEGIN" or w == "START" or w == "COMMIT" or w == "END" or w == "ROLLBACK" or w == "ABORT" then
    return nil, "transaction control statements are refused: use db:transaction(fn)"
  end
  return true
end

local function statement(self, kind, sql, ...)
  -- The parameters are packed first: check_sql's string.match is not
  -- compiled, so LuaJIT stitches a new trace after it, and a trace that
  -- starts inside this function cannot record `...` (NYI). Reads without
  -- parameters share one empty table.
  local n = select("#", ...)
  local params = n == 0 and NO_PARAMS or { ... }
  local ok, err = check_sql(sql)
  if not ok then return nil, err, "bad_argument" end
  if self.tx or self.sess.tx_node >= 0 then kind = OP.TX end
  return run_op(self, kind, sql, params, n)
end

--- db:query(sql, ...) -> rows | nil, err, code, sqlstate. A read: a fresh
-- replica, else the primary. rows.node, rows.reason say where and why.
function Session:query(sql, ...) return statement(self, OP.READ, sql, ...) end
--- db:query_primary(sql, ...): a read on the primary this once.
function Session:query_primary(sql, ...) return statement(self, OP.READ_PRIMARY, sql, ...) end
--- db:exec(sql, ...): a statement that may write: on the primary, its
-- commit position recorded in the session. rows.affected: the count.
function Session:exec(sql, ...) return statement(self, OP.WRITE, sql, ...) end

--- db:transaction(fn [, {read_only = true}]) -> fn's results | nil, err, code, sqlstate
function Session:transaction(fn, opts)
  if self.tx or self.sess.tx_node >= 0 then return nil, "a transaction is already open", "bad_state" end
  local ro = opts and opts.read_only
  local ok, err, code, state = run_op(self, ro and OP.BEGIN_READ_ONLY or OP.BEGIN, ro and SQL_BEGIN_READ_ONLY or "BEGIN", {}, 0)
  if not ok then return nil, err, code, state end
  local res = pack(pcall(fn, self))
  if not res[1] or res[2] == nil and res.n > 2 then
    local rerr, rcode, rstate = res[2], "lua_error", nil
    if res[1] then rerr, rcode, rstate = res[3], res[4] or "sql_error", res[5] end
    if self.sess.tx_node >= 0 then run_op(self, OP.ROLLBACK, "ROLLBACK", {}, 0) end
    if self.tx then release(self.c, self.tx, true); self.tx = nil end
    return nil, rerr, rcode, rstate
  end
  ok, err, code, state = run_op(self, OP.COMMIT, "COMMIT", {}, 0)
  if self.tx then release(self.c, self.tx, false); self.tx = nil end
  if not ok then return nil, err, code, state end
  if res.n < 2 then return true end
  return unpack(res, 2, res.n)
end

local tokbuf = ffi.new("char[160]")
--- db:token(): the session's timeline as cookie-safe text (version 2).
function Session:token()
  local c = self.c
  local n = E.wr_token_write(self.sess.tl, c.ids, c.n, os.time(), c.token_key, c.token_key_len, tokbuf, 160)
  return ffi_string(tokbuf, n)
end

--- db:require(token): also requires the freshness another token names.
function Session:require(tok)
  if type(tok) ~= "string" then return nil, "token must be a string", "bad_token" end
  local tl, err = decode_token(self.c, tok)
  if tl == false then return nil, err, "bad_token" end
  if tl then
    E.wr_timeline_merge(self.sess.tl, tl)
    self.sess.need_unproven = 1
  end
  return true
end

--- db:need(): the position a replica must have replayed, "X/Y".
function Session:need()
  local buf = ffi.new("char[18]")
  return ffi_string(E.wr_lsn_format(self.sess.tl.need, buf))
end

--- db:set_keepalive(): hands back a connection still held (an open
-- transaction is rolled back). Connections go back to the pool after each
-- statement anyway; this is for pgmoon-style call sites.
function Session:set_keepalive()
  if self.tx then
    if self.sess.tx_node >= 0 then run_op(self, OP.ROLLBACK, "ROLLBACK", {}, 0) end
    if self.tx then release(self.c, self.tx, true); self.tx = nil end
  end
  return true
end
Session.close = Session.set_keepalive

-- ---- workers, status ------------------------------------------------------------------

local probing = {}

local function probe_round(c)
  shared.sync(c, E)
  local now = now_us()
  E.wr_engine_tick(c.eng, now)
  local mask = E.wr_engine_probes_due(c.eng, now)
  if mask ~= 0 then
    shared.count_probe(c)
    probe_mask(c, mask, now + c.connect_us, false)
  end
end

local function prober_tick(premature, c, lease)
  if premature or probing[c.name] then return end
  if not shared.elect(c, lease) then return end
  probing[c.name] = true
  local ok, err = pcall(probe_round, c)
  probing[c.name] = nil
  if not ok then ngx.log(ngx.ERR, "resty.walrouter prober: ", err) end
end

--- walrouter.init_worker{ probe_interval = seconds (0.1), cluster = name }
-- (init_worker_by_lua): starts this worker's prober timer; one worker at a
-- time holds the prober lease and probes the nodes that are due.
function M.init_worker(o)
  o = o or {}
  math.randomseed(ngx.worker.pid() * 1000003 + ngx.now() * 1000)
  local interval = tonumber(o.probe_interval) or 0.1
  for name, c in pairs(clusters) do
    if not o.cluster or o.cluster == name then
      local lease = math.max(2, interval * 20)
      local ok, err = ngx.timer.every(interval, prober_tick, c, lease)
      if not ok then return nil, err end
      ngx.timer.at(0, prober_tick, c, lease)
    end
  end
  return true
end

-- Renders with the engine (fn: wr_engine_status_json or wr_engine_metrics_text)
-- from a copy of the engine whose counters are summed over workers.
local function render(name, fn)
  local c, err = cluster_of(name)
  if not c then return nil, err end
  shared.sync(c, E)
  E.wr_engine_tick(c.eng, now_us())
  local copy = shared.aggregated(c)
  local size = 65536
  local buf = ffi.new("char[?]", size)
  local len = tonumber(fn(copy, c.names, nil, buf, size))
  if len >= size then
    buf = ffi.new("char[?]", len + 1)
    fn(copy, c.names, nil, buf, len + 1)
  end
  return ffi_string(buf, len)
end

--- walrouter.status_json([cluster]) -> JSON text (the engine's rendering),
-- with counters summed over workers.
function M.status_json(name) return render(name, E.wr_engine_status_json) end

--- walrouter.metrics([cluster]) -> Prometheus text, counters summed over workers.
function M.metrics(name) return render(name, E.wr_engine_metrics_text) end

--- walrouter.status([cluster]) -> list of node records (status_json decoded):
-- name, role, state, lag_bytes, lag_seconds, ..., served per reason.
function M.status(name)
  local text, err = M.status_json(name)
  if not text then return nil, err end
  return require("cjson.safe").decode(text)
end

--- walrouter.prober([cluster]) -> { pid = <worker holding the prober lease>,
-- rounds = { [pid] = probe rounds run } }.
function M.prober(name)
  local c, err = cluster_of(name)
  if not c then return nil, err end
  local rounds, prefix = {}, c.name .. ":probes:"
  for _, k in ipairs(c.dict:get_keys(0)) do
    if k:sub(1, #prefix) == prefix then rounds[k:sub(#prefix + 1)] = c.dict:get(k) end
  end
  return { pid = c.dict:get(c.name .. ":prober"), rounds = rounds }
end

-- For tests and tools: the cluster record (engine, nodes, dict).
function M.cluster(name) return cluster_of(name) end

return M
