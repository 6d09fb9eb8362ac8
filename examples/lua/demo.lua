--- demo.lua — walrouter from Lua in one screen: reads on replicas, reading
-- your own write while the replicas' replay is paused (the fallback to the
-- primary), a session resumed from its token, a transaction, and the status.
--
--   lua5.4 examples/lua/demo.lua DSN     (or WR_DSN; WR_CLUSTER_SH, when set,
--                                         pauses and resumes replay for real)
local walrouter = require "walrouter"

local dsn = arg[1] or os.getenv("WR_DSN")
if not dsn then
  io.stderr:write("usage: lua5.4 demo.lua DSN   (or set WR_DSN)\n")
  os.exit(2)
end
local cluster_sh = os.getenv("WR_CLUSTER_SH")

-- Runs the cluster.sh commands of a stage, then says what happened: the
-- stage's narrative only when every command ran.
local function stage(what, ...)
  local done = cluster_sh ~= nil
  for _, cmd in ipairs(cluster_sh and { ... } or {}) do
    if not os.execute(cluster_sh .. " " .. cmd .. " >/dev/null 2>&1") then
      io.stderr:write("(could not run: " .. cluster_sh .. " " .. cmd .. ")\n")
      done = false
    end
  end
  if done then
    print("\n-- " .. what)
  else
    print("\n-- (not done, " .. (cluster_sh and "a cluster.sh command failed" or "WR_CLUSTER_SH is not set")
      .. ": " .. what .. ")")
  end
end

local function show(label, rows)
  local first = rows[1] and rows.columns[1]
  print(("%-40s -> %-16s %-16s %s"):format(label, rows.node, rows.reason,
    first and ("%s=%s"):format(first, tostring(rows[1][1])) or ""))
end

local function read(s, label, sql, ...)
  show(label, assert(s:query(sql, ...)))
end

local cluster <close> = assert(walrouter.connect(dsn, { read_budget_ms = 200 }))
print(cluster)

local setup <close> = cluster:session()
assert(setup:exec("CREATE TABLE IF NOT EXISTS demo_notes (id serial PRIMARY KEY, who text, note text)"))
assert(setup:exec("TRUNCATE demo_notes"))
stage("replicas caught up: reads go to a replica", "wait-replay 1", "wait-replay 2")

local alice = cluster:session()
local bob = cluster:session()
read(alice, "alice: SELECT count(*)", "SELECT count(*) AS notes FROM demo_notes")
read(bob, "bob:   SELECT count(*)", "SELECT count(*) AS notes FROM demo_notes")

local ok, err = pcall(function()
  stage("replay paused on both replicas: they fall behind", "pause 1", "pause 2")
  local n, res = assert(alice:exec("INSERT INTO demo_notes(who, note) VALUES ($1, $2)", "alice", "hello"))
  show(("alice: INSERT (%d row)"):format(n), res)
  read(alice, "alice reads her write (falls back)", "SELECT count(*) AS notes FROM demo_notes WHERE who = $1",
    "alice")
  read(bob, "bob has no such need: stale replica ok", "SELECT count(*) AS notes FROM demo_notes WHERE who = $1",
    "alice")

  local token = alice:token()
  print(("alice's token, e.g. for a cookie: %s"):format(token))
  local carol <close> = assert(cluster:session(token)) -- a later request of alice's
  read(carol, "a session resumed from the token", "SELECT count(*) AS notes FROM demo_notes WHERE who = $1",
    "alice")
end)

stage("replay resumed: once a replica has caught up, it serves alice again",
  "resume 1", "resume 2", "wait-replay 1", "wait-replay 2")
assert(ok, err)
read(alice, "alice: SELECT count(*)", "SELECT count(*) AS notes FROM demo_notes WHERE who = $1", "alice")

print("\n-- a transaction: one node from BEGIN to COMMIT, rolled back on error")
local committed = assert(alice:transaction(function(tx)
  assert(tx:exec("INSERT INTO demo_notes(who, note) VALUES ('alice', 'in a transaction')"))
  local rows = assert(tx:query("SELECT count(*) AS notes FROM demo_notes"))
  show("inside the transaction", rows)
  return rows[1].notes
end))
print(("committed; it saw %d notes"):format(committed))
local _, failure = alice:transaction(function(tx)
  assert(tx:exec("INSERT INTO demo_notes(who, note) VALUES ('alice', 'never')"))
  error("something went wrong")
end)
print("rolled back: " .. tostring(failure))

print("\n-- rows print as tables in lua5.4 -i:")
print(assert(alice:query("SELECT id, who, note, NULL::text AS extra FROM demo_notes ORDER BY id")))

print("\n-- cluster:status()")
print(assert(cluster:status()))
alice:close()
bob:close()
