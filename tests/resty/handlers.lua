-- Handlers of the resty.walrouter test server (tests/resty/nginx.conf.in).
local walrouter = require "resty.walrouter"
local cjson = require "cjson.safe"
local ffi = require "ffi"

local M = {}

local function reply(t)
  t.pid = ngx.worker.pid()
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(t))
end

-- /q?sql=...&mode=query|exec|primary|tx_ro&cluster=main&p=param (repeatable)
-- token: the X-WR-Token header.
function M.q()
  local args = ngx.req.get_uri_args()
  local db, err, code = walrouter.new{ cluster = args.cluster or "main", token = ngx.var.http_x_wr_token }
  if not db then return reply{ err = err, code = code } end
  if args.timeout_ms then db:set_timeout(tonumber(args.timeout_ms)) end
  local params = args.p
  if type(params) ~= "table" then params = { params } end
  local mode = args.mode or "query"
  local rows, sqlstate
  local inflight = ngx.shared.wr_test
  inflight:incr("inflight", 1, 0)
  local sql = args.sql
  if mode == "exec" then rows, err, code, sqlstate = db:exec(sql, unpack(params))
  elseif mode == "primary" then rows, err, code, sqlstate = db:query_primary(sql, unpack(params))
  elseif mode == "tx_ro" or mode == "tx" then
    rows, err, code, sqlstate = db:transaction(function(d)
      return d:query(sql, unpack(params))
    end, { read_only = mode == "tx_ro" })
  else rows, err, code, sqlstate = db:query(sql, unpack(params)) end
  inflight:incr("inflight", -1, 0)
  if not rows then return reply{ err = err, code = code, sqlstate = sqlstate, token = db:token() } end
  local out = {}
  for i, r in ipairs(rows) do
    local row = {}
    for k, v in ipairs(r) do row[k] = v == ngx.null and cjson.null or v end
    out[i] = row
  end
  reply{ rows = out, node = rows.node, reason = rows.reason, affected = rows.affected, token = db:token() }
end

-- Requests inside /q now (no database work).
function M.inflight()
  ngx.say(ngx.shared.wr_test:get("inflight") or 0)
end

-- What this worker's engine knows of each node (after syncing with the others).
function M.engine()
  local args = ngx.req.get_uri_args()
  local c = walrouter.cluster(args.cluster or "main")
  require("resty.walrouter.shared").sync(c, require("resty.walrouter.ffi").engine())
  local nodes = {}
  for i = 0, c.n - 1 do
    local t = c.eng.nodes[i]
    local pool = c.pools[i]
    nodes[i + 1] = { name = c.nodes[i + 1].name, role = t.role, up = t.up, logins = pool.logins,
                     idle = #pool.idle, waiting = pool.waiting, placed = t.placed,
                     last_error = ffi.string(t.last_error),
                     lsn = tostring(tonumber(t.lsn)), lsn_at_us = tostring(tonumber(t.lsn_at_us)) }
  end
  reply{ nodes = nodes }
end

-- A plain cosocket read with no routing (the bench baseline): node ?node=i.
function M.plain()
  local pg = require "resty.walrouter.pg"
  local c = walrouter.cluster(ngx.var.arg_cluster or "main")
  local i = tonumber(ngx.var.arg_node or 1)
  local node = c.nodes[i + 1]
  local deadline = require("resty.walrouter.ffi").now_us() + 5000000
  local conn, err = pg.connect({ host = node.host, port = node.port, user = c.dsn.user, password = c.dsn.password,
                                 database = c.dsn.database, pool = "plain:" .. i }, deadline)
  if not conn then ngx.status = 500; return ngx.say(err) end
  local q = { sql = ngx.var.arg_sql or "SELECT 1" }
  local st = conn:run({ q }, deadline, false, 0)
  conn:keepalive(60000, 64)
  local body = st .. " " .. (q.rows and #q.rows or -1) .. " " .. node.name .. "\n"
  if st ~= "ok" or q.err then ngx.status = 500 end
  ngx.header["Content-Length"] = #body
  ngx.print(body)
end

-- The bench's routed read: a session, a read through the engine.
function M.bench_routed()
  local db = walrouter.new{ cluster = "bench" }
  local rows, err = db:query(ngx.var.arg_sql or "SELECT 1")
  local body = rows and ("ok " .. #rows .. " " .. rows.node .. "\n") or tostring(err)
  if not rows then ngx.status = 500 end
  ngx.header["Content-Length"] = #body
  ngx.print(body)
end

function M.status()
  ngx.header["Content-Type"] = "application/json"
  local name = ngx.var.arg_cluster or "main"
  ngx.say(cjson.encode{ nodes = walrouter.status(name), prober = walrouter.prober(name) })
end

function M.metrics()
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.print(walrouter.metrics(ngx.var.arg_cluster or "main"))
end

return M
