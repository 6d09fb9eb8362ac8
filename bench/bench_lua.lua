--- bench_lua.lua — a replica read through the walrouter Lua module against
-- LuaSQL (lua-sql-postgres) running the same query on the same replica, in
-- one run, each by its default path and by its best path.
--
--   lua5.4 bench/bench_lua.lua DSN [iterations]
--
-- DSN: a URI naming the primary and ONE replica
-- (postgresql://u:pw@host:5432,host:5433/db), so every variant reads from the
-- same replica. iterations: reads per variant (default 10000). Every variant
-- has its own connection, opened before any measured read; the LuaSQL ones are
-- checked (pg_is_in_recovery(), inet_server_port()) before and after, and
-- walrouter's node is checked per read. The variants are alternated read by
-- read in a fresh random order for every read. Variants:
--   luasql_default   con:execute of the query with the integer interpolated
--                    (LuaSQL has no parameters): simple protocol, parsed each time
--   luasql_prepared  its best path: PREPARE once, then con:execute("EXECUTE
--                    bench_q(<id>)") (a server-side prepared statement)
--   walrouter        s:query(sql, id) on one session: its default path, which
--                    is also its best (a named prepared statement, cached)
--   walrouter_new    a new session per read, as a web request would do
-- Needs lua-system (a busted dependency) for a monotonic clock.
local walrouter = require "walrouter"
local luasql = require "luasql.postgres"
local monotime = require("system").monotime

local QUERY = "SELECT id, v FROM bench_items WHERE id = $1::int"

local dsn = arg[1] or os.getenv("WR_DSN")
local iters = math.max(100, tonumber(arg[2] or 10000))
if not dsn then
  io.stderr:write("usage: lua5.4 bench/bench_lua.lua DSN [iterations]   (DSN: primary and ONE replica)\n")
  os.exit(2)
end

local function die(what, err)
  io.stderr:write(("bench_lua: %s: %s\n"):format(what, tostring(err)))
  os.exit(1)
end

local function loadavg()
  local f = io.open("/proc/loadavg")
  if not f then return "?" end
  local a, b, c = f:read("l"):match("^(%S+) (%S+) (%S+)")
  f:close()
  return ("%s %s %s"):format(a, b, c)
end

local cluster, err = walrouter.connect(dsn)
if not cluster then die("connect", err) end
local status = assert(cluster:status())
local replica
for _, node in ipairs(status) do
  if node.role == "replica" then
    if replica then die("DSN", "name ONE replica, so every variant reads from the same node") end
    replica = node.name
  end
end
if not replica or not cluster:primary() then die("DSN", "need a primary and a replica") end
local replica_port = tonumber(replica:match(":(%d+)$"))

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
local function lconnect()
  local con, e = env:connect(replica_uri)
  if not con then die("luasql connect", e) end
  return con
end
local con, conp = lconnect(), lconnect()

local function check_replica(c, what)
  local cur = assert(c:execute("SELECT pg_is_in_recovery()::text, inet_server_port()"))
  local rec, port = cur:fetch()
  cur:close()
  if rec ~= "true" or tonumber(port) ~= replica_port then
    die(what, ("ran on port %s (in recovery: %s), not on the replica %s"):format(port, rec, replica))
  end
end

repeat -- poll until the replica has the rows
  local cur = assert(con:execute("SELECT count(*) FROM bench_items"))
  local have = tonumber((cur:fetch()))
  cur:close()
until have >= 1000
assert(conp:execute("PREPARE bench_q(int) AS SELECT id, v FROM bench_items WHERE id = $1"))
check_replica(con, "luasql_default")
check_replica(conp, "luasql_prepared")

local lsql_query = QUERY:gsub("%$1::int", "%%d")
local function luasql_fetch(c, sql, what)
  local cur, e = c:execute(sql)
  if not cur then die(what, e) end
  local row = cur:fetch({}, "a")
  cur:close()
  return row
end

local variants = {
  luasql_default = function(id) return luasql_fetch(con, lsql_query:format(id), "luasql_default") end,
  luasql_prepared = function(id) return luasql_fetch(conp, ("EXECUTE bench_q(%d)"):format(id), "luasql_prepared") end,
  walrouter = function(id)
    local rows, e = s:query(QUERY, id)
    if not rows then die("walrouter read", e) end
    return rows
  end,
  walrouter_new = function(id)
    local ss <close> = cluster:session()
    local rows, e = ss:query(QUERY, id)
    if not rows then die("walrouter_new read", e) end
    return rows
  end,
}
local names = { "luasql_default", "luasql_prepared", "walrouter", "walrouter_new" }

for i = 1, 200 do -- warm up: connections, prepared statements, caches
  for _, name in ipairs(names) do variants[name](1 + i % 1000) end
end

local lat, on_replica = {}, {}
for _, name in ipairs(names) do lat[name], on_replica[name] = {}, 0 end
math.randomseed(tonumber(os.getenv("WR_BENCH_SEED") or "") or os.time())
local load0 = loadavg()
for i = 1, iters do
  for k = #names, 2, -1 do -- a fresh order for every read
    local j = math.random(k)
    names[k], names[j] = names[j], names[k]
  end
  for _, name in ipairs(names) do
    local t0 = monotime()
    local r = variants[name](1 + i % 1000)
    lat[name][i] = monotime() - t0
    if name:match("^walrouter") then
      if #r ~= 1 then die(name, "wrong row count") end
      if r.node == replica then on_replica[name] = on_replica[name] + 1 end
    else
      if not r then die(name, "no row") end
      on_replica[name] = on_replica[name] + 1 -- its connection is checked before and after
    end
  end
end
local load1 = loadavg()
check_replica(con, "luasql_default")
check_replica(conp, "luasql_prepared")

local function quantile_us(v, q)
  table.sort(v)
  return v[math.floor(q * (#v - 1)) + 1] * 1e6
end

print(("%d reads per variant on replica %s, alternated read by read in random order, query: %s"):format(
  iters, replica, QUERY))
print(("  %s; load average before: %s  after: %s"):format(_VERSION, load0, load1))
local base = quantile_us(lat.luasql_prepared, 0.5)
for _, name in ipairs({ "luasql_default", "luasql_prepared", "walrouter", "walrouter_new" }) do
  local m = quantile_us(lat[name], 0.5)
  print(("  %-16s median %8.1f us  p99 %8.1f us  %.3fx luasql_prepared  (%d/%d on the replica)"):format(
    name, m, quantile_us(lat[name], 0.99), m / base, on_replica[name], iters))
end
con:close()
conp:close()
env:close()
s:close()
cluster:close()
