--- valgrind_smoke.lua — every entry point of the C module once, for
-- valgrind (ctest -L valgrind when built with -DWALROUTER_VALGRIND=ON):
-- cluster, sessions, reads, writes, transactions, errors, tokens, printing,
-- <close>, the collector, a cluster closed under its sessions, and the
-- operations calls (JSON status, metrics, events and their handler, a
-- refresher thread running when its cluster is closed or collected),
-- streams (read to the end, broken off, failing, collected, closed with their
-- session and cluster), refused NUL bytes and an interrupted call.
local dsn = os.getenv("WR_TEST_DSN")
if not dsn or dsn == "" then error("WR_TEST_DSN is not set: run the suite with tests/run.sh", 0) end
local walrouter = require "walrouter"
local c = assert(walrouter.connect(dsn, { read_budget_ms = 300 }))
local s = c:session()
local rows = assert(s:query("SELECT g AS id, 'x' || g AS v, NULL::int AS n FROM generate_series(1, 5) g"))
assert(#rows == 5 and rows[2].id == 2)
assert(s:exec("CREATE TABLE IF NOT EXISTS lua_vg_items (id int)"))
assert(s:transaction(function(tx) assert(tx:exec("INSERT INTO lua_vg_items VALUES ($1)", 1)) end))
local ok, err = s:transaction(function(tx) error("boom") end)
assert(not ok)
local _, e = s:query("SELECT * FROM nosuch")
assert(e.sqlstate == "42P01")
local tok = s:token()
local s2 = assert(c:session(tok))
assert(s2:query("SELECT 1"))
local bad = c:session("garbage")
assert(bad == nil)
tostring(c:status()); tostring(rows); tostring(rows[1]); tostring(s); tostring(c)
assert(c:status_json():find('"role"', 1, true)); assert(c:metrics():find("walrouter_node_up", 1, true))
local evs = c:events(); assert(#evs >= 3); tostring(evs[1])
local seen = 0
c:on_event(function(ev) seen = seen + 1 end)
assert(c:start_refresher(5)); assert(c:start_refresher(10))
assert(c:refresh()); assert(s:query("SELECT 1")); c:status(); c:events()
c:stop_refresher(); c:stop_refresher(); assert(c:start_refresher(5))
do local c3 = assert(walrouter.connect(dsn)); c3:on_event(function() error("x") end)
  assert(c3:refresh()) -- a raising handler goes to warn(), not to its caller
  assert(c3:start_refresher(5)) end -- collected with its thread running
local n = 0
for row in s:stream({ "SELECT g FROM generate_series(1, 2500) g", chunk = 1000 }) do n = n + 1 end
assert(n == 2500 and not s:in_transaction())
for row in s:stream("SELECT g FROM generate_series(1, 2500) g") do if row.g == 3 then break end end
assert(not pcall(function() for _ in s:stream({ "SELECT 1 / (g - 5) FROM generate_series(1, 10) g", chunk = 2 }) do end end))
do local _ = s:stream("SELECT 1") end collectgarbage() collectgarbage()
local s4 = c:session(); local st4 = s4:stream("SELECT g FROM generate_series(1, 5000) g"); s4:close(); assert(st4:closed())
local s5 = c:session(); local st5 = s5:stream("SELECT g FROM generate_series(1, 5000) g") -- closed with the cluster
assert(not pcall(s.exec, s, "SELECT 1\0 AND false")); assert(select(2, c:session("x\0")).code == "bad_token")
assert(select(2, s:exec("BEGIN")).code == "bad_argument")
local s3 = c:session(); assert(s3:begin()); assert(s3:exec("INSERT INTO lua_vg_items VALUES (2)")) -- left open: closed with the cluster
s:close()
-- s2 left to the collector
do local c2 <close> = assert(walrouter.connect(dsn)); local x <close> = c2:session(); assert(x:query("SELECT 1")) end
local nc, nerr = walrouter.connect("postgresql://u:pw@127.0.0.1:1/db")
assert(nc == nil and nerr.code == "connect_error")
c:close()
assert(not pcall(s3.query, s3, "SELECT 1"))
collectgarbage()
print("ok")
