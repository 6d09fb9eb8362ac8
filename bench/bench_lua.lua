--- bench_lua.lua — a replica read through the walrouter Lua module against
-- LuaSQL (lua-sql-postgres) running the same query on the same replica, in
-- one run. Reports the median per-read latency of each and their ratio.
--
--   lua5.4 bench/bench_lua.lua DSN [iterations]
--
-- DSN: a URI naming the primary and ONE replica
-- (postgresql://u:pw@host:5432,host:5433/db), so both clients read from the
-- same replica. iterations: reads per client (default 10000), run
-- interleaved in blocks of 500 so that drift hits both alike. Needs
-- lua-system (a busted dependency) for a monotonic clock.
local walrouter = require "walrouter"
local luasql = require "luasql.postgres"
local monotime = require("system").monotime

local QUERY = "SELECT id, v FROM bench_items WHERE id = $1::int"
local BLOCK = 500

local dsn = arg[1] or os.getenv("WR_DSN")
local iters = tonumber(arg[2] or 10000)
if not dsn then
  io.stderr:write("usage: lua5.4 bench/bench_lua.lua DSN [iterations]   (DSN: primary and ONE replica)\n")
  os.exit(2)
end
iters = math.max(BLOCK, iters - iters % BLOCK)

local function die(what, err)
  io.stderr:write(("bench_lua: %s: %s\n"):format(what, tostring(err)))
  os.exit(1)
end

local cluster, err = walrouter.connect(dsn)
if not cluster then die("connect", err) end
local status = assert(cluster:status())
local replica
for _, node in ipairs(status) do
  if node.role == "replica" then
    if replica then die("DSN", "name ONE replica, so both clients read from the same node") end
    replica = node.name
  end
end
if not replica or not cluster:primary() then die("DSN", "need a primary and a replica") end

local s = cluster:session()
local ok
ok, err = s:exec("CREATE TABLE IF NOT EXISTS bench_items (id int PRIMARY KEY, v text)")
if not ok then die("setup", err) end
ok, err = s:exec("INSERT INTO bench_items SELECT g, 'item ' || g FROM generate_series(1, 1000) g "
  .. "ON CONFLICT DO NOTHING")
if not ok then die("setup", err) end

-- LuaSQL on the replica: the same URI with only the replica's host:port.
local replica_uri, n = dsn:gsub("@[^/?]+", "@" .. replica, 1)
if n ~= 1 then die("DSN", "expected a URI such as postgresql://user:pw@h1:5432,h2:5433/db") end
local env = luasql.postgres()
local con
con, err = env:connect(replica_uri)
if not con then die("luasql connect", err) end
repeat -- poll until the replica has the rows
  local cur = assert(con:execute("SELECT count(*) FROM bench_items"))
  local have = tonumber((cur:fetch()))
  cur:close()
until have >= 1000

local function wr_read(id)
  local rows, e = s:query(QUERY, id)
  if not rows then die("walrouter read", e) end
  return rows
end

local lsql_query = QUERY:gsub("%$1::int", "%%d")
local function luasql_read(id)
  local cur, e = con:execute(lsql_query:format(id)) -- no parameters: an interpolated integer
  if not cur then die("luasql read", e) end
  local row = cur:fetch({}, "a")
  cur:close()
  return row
end

for i = 1, 200 do -- warm up: connections, prepared statements, caches
  wr_read(1 + i % 1000)
  luasql_read(1 + i % 1000)
end

local lat = { walrouter = {}, luasql = {} }
local on_replica = { walrouter = 0, luasql = iters }
for base = 0, iters - 1, BLOCK do
  local t = lat.walrouter
  for k = 1, BLOCK do
    local i = base + k
    local t0 = monotime()
    local rows = wr_read(1 + i % 1000)
    t[i] = monotime() - t0
    if #rows ~= 1 then die("walrouter read", "wrong row count") end
    if rows.node == replica then on_replica.walrouter = on_replica.walrouter + 1 end
  end
  t = lat.luasql
  for k = 1, BLOCK do
    local i = base + k
    local t0 = monotime()
    local row = luasql_read(1 + i % 1000)
    t[i] = monotime() - t0
    if not row then die("luasql read", "no row") end
  end
end

local function median_us(v)
  table.sort(v)
  return v[#v // 2 + 1] * 1e6
end

local m_wr, m_sql = median_us(lat.walrouter), median_us(lat.luasql)
print(("%d reads per client on replica %s, query: %s"):format(iters, replica, QUERY))
print(("  %-24s median %8.1f us  (%d/%d on the replica)"):format("walrouter (Lua module)", m_wr,
  on_replica.walrouter, iters))
print(("  %-24s median %8.1f us  (%d/%d on the replica)"):format("LuaSQL (luasql.postgres)", m_sql,
  on_replica.luasql, iters))
print(("  ratio walrouter / LuaSQL: %.3f"):format(m_wr / m_sql))
con:close()
env:close()
s:close()
cluster:close()
