-- The guarantees through the Lua module, against the real cluster with lag
-- made real by pausing replay and stopping nodes. Every test restores what
-- it paused or stopped, even when it fails.
local walrouter = require "walrouter"
local H = require "wr_helper"

local function count(s, id)
  local rows, err = s:query("SELECT count(*) AS n FROM lua_items WHERE id = $1", id)
  assert(rows, err)
  return rows[1].n, rows.node, rows.reason
end

local function is_replica(name) return name == H.name(1) or name == H.name(2) end
local primary_reasons = { primary_budget = true, primary_lagging = true }

describe("routing through walrouter (Lua)", function()
  local cluster

  setup(function()
    cluster = assert(walrouter.connect(H.dsn, { read_budget_ms = 300 }))
    local s <close> = cluster:session()
    H.reset_table(s)
  end)

  teardown(function()
    if cluster then cluster:close() end
  end)

  it("serves a read from a fresh replica", function()
    H.cluster("wait-replay 1")
    H.cluster("wait-replay 2")
    local s <close> = cluster:session()
    local rows = assert(s:query("SELECT 42 AS answer"))
    assert.are.equal(42, rows[1].answer)
    assert.is_true(is_replica(rows.node), "served by " .. tostring(rows.node))
    assert.truthy(rows.reason:match("^replica_"))
  end)

  it("reads the session's own writes while a replica's replay is paused", function()
    H.cluster("pause 1")
    finally(function() H.cluster("resume 1") end)
    local s <close> = cluster:session()
    for i = 1, 20 do
      local id = 1000 + i
      assert(s:exec("INSERT INTO lua_items(id, v) VALUES ($1, 'ryw')", id))
      local n, node = count(s, id)
      assert.are.equal(1, n)
      assert.are_not.equal(H.name(1), node)
    end
  end)

  it("reads the writes of a session resumed from its token, passed as a plain string", function()
    H.cluster("pause 1")
    H.cluster("pause 2")
    finally(function() H.cluster("resume 1"); H.cluster("resume 2") end)
    local cookie
    do
      local writer <close> = cluster:session()
      assert(writer:exec("INSERT INTO lua_items(id, v) VALUES (2000, 'token')"))
      cookie = "wr_session=" .. writer:token() -- what a Set-Cookie header would carry
    end
    local token = cookie:match("^wr_session=([%w._-]+)$")
    assert.is_string(token)

    local reader <close> = assert(cluster:session(token))
    local n, node, reason = count(reader, 2000)
    assert.are.equal(1, n)
    assert.are.equal(H.name(0), node) -- both replicas are behind
    assert.is_true(primary_reasons[reason], reason)

    -- Another freshness joined to a session's own.
    local other <close> = cluster:session()
    assert(other:require(token))
    assert.are.equal(1, (count(other, 2000)))

    -- Without the token, the paused replicas are fair game: the lag is real.
    local stranger <close> = cluster:session()
    local seen, where = count(stranger, 2000)
    assert.are.equal(0, seen)
    assert.is_true(is_replica(where))
  end)

  it("falls back to the primary beyond the budget when both replicas are behind", function()
    H.cluster("pause 1")
    H.cluster("pause 2")
    finally(function() H.cluster("resume 1"); H.cluster("resume 2") end)
    local s <close> = cluster:session()
    assert(s:exec("INSERT INTO lua_items(id, v) VALUES (3000, 'fallback')"))
    local n, node, reason = count(s, 3000)
    assert.are.equal(1, n)
    assert.are.equal(H.name(0), node)
    assert.is_true(primary_reasons[reason], reason)
    -- and once replay goes on, a replica serves the session again
    H.cluster("resume 1")
    H.cluster("wait-replay 1")
    local m, again = count(s, 3000)
    assert.are.equal(1, m)
    assert.are.equal(H.name(1), again)
  end)

  it("never goes back in time when reads hop between replicas with different lag", function()
    H.cluster("pause 1") -- node 1 stays before the row, node 2 gets it
    local stopped = false
    finally(function()
      if stopped then H.cluster("start-node 2"); H.cluster("wait-replay 2"); cluster:refresh() end
      H.cluster("resume 1")
    end)
    H.psql(0, "INSERT INTO lua_items(id, v) VALUES (5000, 'g2')")
    H.cluster("wait-replay 2")
    -- A session whose read was served by node 2 (sessions spread over replicas).
    local s
    for _ = 1, 64 do
      local cand = cluster:session()
      local n, node = count(cand, 5000)
      if node == H.name(2) and n == 1 then s = cand break end
      cand:close()
    end
    assert.is_not_nil(s, "no session was served by node 2")
    H.cluster("stop-node 2")
    stopped = true
    for _ = 1, 3 do
      local n, node = count(s, 5000)
      assert.are.equal(1, n)
      assert.are_not.equal(H.name(1), node) -- node 1 would show an older snapshot
    end
    s:close()
  end)

  it("keeps a transaction on the primary and commits it", function()
    local s <close> = cluster:session()
    local nodes = {}
    local result = assert(s:transaction(function(tx)
      local _, res = assert(tx:exec("INSERT INTO lua_items(id, v) VALUES (6000, 'tx')"))
      nodes[#nodes + 1] = res.node
      assert.are.equal("transaction", res.reason)
      for _ = 1, 3 do
        local rows = assert(tx:query("SELECT count(*) AS n FROM lua_items WHERE id = 6000"))
        assert.are.equal(1, rows[1].n)
        nodes[#nodes + 1] = rows.node
      end
      assert.is_true(tx:in_transaction())
      return "committed", 2
    end))
    assert.are.equal("committed", result)
    assert.is_false(s:in_transaction())
    for _, node in ipairs(nodes) do assert.are.equal(H.name(0), node) end
    assert.are.equal(1, (count(s, 6000)))
  end)

  it("rolls back when the function raises, and returns nil, err", function()
    local s <close> = cluster:session()
    local ok, err = s:transaction(function(tx)
      assert(tx:exec("INSERT INTO lua_items(id, v) VALUES (6100, 'raised')"))
      error("boom")
    end)
    assert.is_nil(ok)
    assert.are.equal("lua_error", err.code)
    assert.truthy(err.message:find("boom", 1, true))
    assert.is_false(s:in_transaction())
    assert.are.equal(0, (count(s, 6100)))

    -- A failed statement, raised as Lua's assert does (busted's assert
    -- would wrap the error object): the walrouter error comes back.
    local function raise_unless(v, e, ...)
      if not v then error(e, 0) end
      return v, e, ...
    end
    ok, err = s:transaction(function(tx)
      raise_unless(tx:exec("INSERT INTO lua_items(id, v) VALUES (6101, 'first')"))
      raise_unless(tx:exec("INSERT INTO no_such_table VALUES (1)"))
    end)
    assert.is_nil(ok)
    assert.are.equal("42P01", err.sqlstate)
    assert.are.equal(0, (count(s, 6101)))

    -- The function returning nil, err rolls back too.
    ok, err = s:transaction(function(tx)
      assert(tx:exec("INSERT INTO lua_items(id, v) VALUES (6102, 'soft')"))
      return tx:exec("INSERT INTO lua_items(id, v) VALUES (6102, 'dup')")
    end)
    assert.is_nil(ok)
    assert.are.equal("23505", err.sqlstate)
    assert.are.equal(0, (count(s, 6102)))
    assert(s:query("SELECT 1")) -- the session is usable again
  end)

  it("runs a read-only transaction on one replica and refuses writes in it", function()
    H.cluster("wait-replay 1")
    H.cluster("wait-replay 2")
    local s <close> = cluster:session()
    local seen = {}
    assert(s:transaction(function(tx)
      for _ = 1, 5 do
        local rows = assert(tx:query("SELECT count(*) AS n FROM lua_items WHERE id = 6000"))
        assert.are.equal(1, rows[1].n)
        seen[#seen + 1] = rows.node
      end
    end, { read_only = true }))
    assert.is_true(is_replica(seen[1]))
    for _, node in ipairs(seen) do assert.are.equal(seen[1], node) end

    local ok, err = s:transaction(function(tx)
      return tx:exec("INSERT INTO lua_items(id, v) VALUES (6200, 'ro')")
    end, { read_only = true })
    assert.is_nil(ok)
    assert.are.equal("25006", err.sqlstate)
  end)
end)
