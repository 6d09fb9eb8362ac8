--- Shared helpers of the busted specs: the test cluster's DSN and script,
-- SQL on one node through tests/cluster.sh, node names, polling.
local H = {}

H.dsn = os.getenv("WR_TEST_DSN")
if not H.dsn or H.dsn == "" then
  error("WR_TEST_DSN is not set: run the Lua suite with tests/run.sh (it starts a cluster and exports it), "
    .. "or export WR_TEST_DSN=$(tests/cluster.sh start | tail -n1)", 0)
end
H.sh = os.getenv("WR_CLUSTER_SH")
if not H.sh or H.sh == "" then
  error("WR_CLUSTER_SH is not set: it must name tests/cluster.sh (ctest sets it)", 0)
end
H.password = H.dsn:match("^postgresql://[^:]+:([^@]+)@")

do -- the script must drive the cluster the DSN names
  local p = assert(io.popen(H.sh .. " uri 2>&1"))
  local uri = p:read("a"):gsub("%s+$", "")
  p:close()
  if uri ~= H.dsn then
    error(("WR_TEST_DSN (%s) is not the cluster of %s (%s): set WR_CLUSTER_DIR to the cluster's state dir")
      :format(H.dsn:gsub(":[^:@/]+@", ":***@"), H.sh, uri:gsub(":[^:@/]+@", ":***@")), 0)
  end
end

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- Runs a tests/cluster.sh command (pause 1, resume 1, wait-replay 2, ...).
function H.cluster(cmd)
  local ok, how, code = os.execute(H.sh .. " " .. cmd .. " >&2")
  assert(ok, ("tests/cluster.sh %s failed (%s %s)"):format(cmd, how, code))
end

--- SQL on node n (0 = primary, 1 and 2 replicas) as superuser, outside
-- walrouter; returns the output (first column of each row, one a line).
function H.psql(n, sql)
  local p = assert(io.popen(("%s psql %d %s 2>&1"):format(H.sh, n, quote(sql))))
  local out = p:read("a")
  local ok = p:close()
  assert(ok, ("psql on node%d failed: %s\n%s"):format(n, sql, out))
  return (out:gsub("%s+$", ""))
end

local ports = {}
--- "host:port" of node n, as walrouter names it (rows.node, err.node).
function H.name(n)
  if not ports[n] then
    local p = assert(io.popen(("%s port %d"):format(H.sh, n)))
    ports[n] = p:read("l")
    p:close()
  end
  return "127.0.0.1:" .. ports[n]
end

--- Node number (0, 1, 2) of a walrouter node name.
function H.number(name)
  for n = 0, 2 do
    if H.name(n) == name then return n end
  end
  error("unknown node " .. tostring(name))
end

--- walrouter's connections to node n, as the server sees them.
function H.connections(n)
  return tonumber(H.psql(n, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'walrouter'"))
end

--- Calls fn until it returns a true value (returned) or `seconds` pass
-- (then fails naming `what`). The calls themselves pace the loop.
function H.poll(what, fn, seconds)
  local deadline = os.time() + (seconds or 30)
  repeat
    local v = fn()
    if v then return v end
  until os.time() > deadline
  error("timed out waiting for " .. what, 2)
end

--- Expects fn(...) to raise an error whose text contains `text`.
function H.raises(text, fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error containing: " .. text)
  local msg = tostring(err)
  assert(msg:find(text, 1, true), ("error %q does not contain %q"):format(msg, text))
  return msg
end

--- Sets up the table the specs use (fresh), replicated to both replicas.
function H.reset_table(session)
  assert(session:exec("DROP TABLE IF EXISTS lua_items"))
  assert(session:exec("CREATE TABLE lua_items (id int PRIMARY KEY, v text)"))
  H.cluster("wait-replay 1")
  H.cluster("wait-replay 2")
end

return H
