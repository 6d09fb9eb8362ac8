-- Handles give their connections back: <close>, garbage collection, closing
-- a cluster with sessions still open, and sessions used from coroutines.
local walrouter = require "walrouter"
local H = require "wr_helper"

-- Connections walrouter holds on the primary settle back to at most `limit`
-- (backends leave pg_stat_activity shortly after the client hangs up).
local function settles_to(limit)
  return H.poll(("walrouter connections on node0 to drop to %d"):format(limit), function()
    return H.connections(0) <= limit
  end)
end

local function in_use(cluster)
  local total = 0
  for _, node in ipairs(assert(cluster:status())) do total = total + node.conns_in_use end
  return total
end

describe("walrouter handles (Lua)", function()
  local base

  setup(function()
    local c <close> = assert(walrouter.connect(H.dsn))
    local s <close> = c:session()
    H.reset_table(s)
  end)

  before_each(function()
    collectgarbage()
    collectgarbage()
    base = H.connections(0)
  end)

  it("returns every connection when <close> ends the cluster's scope", function()
    do
      local c <close> = assert(walrouter.connect(H.dsn))
      local s <close> = c:session()
      assert(s:exec("INSERT INTO lua_items(id, v) VALUES (1, 'close')"))
      assert(s:query_primary("SELECT 1"))
      assert.is_true(H.connections(0) > base) -- the pool holds some
    end
    assert.is_true(settles_to(base))
  end)

  it("returns every connection when the handles are garbage collected", function()
    do
      local c = assert(walrouter.connect(H.dsn))
      local s = c:session()
      assert(s:exec("INSERT INTO lua_items(id, v) VALUES (2, 'gc')"))
      assert.is_true(H.connections(0) > base)
    end
    collectgarbage()
    collectgarbage()
    assert.is_true(settles_to(base))
  end)

  it("does not leak connections through sessions, even abandoned inside a transaction", function()
    local c <close> = assert(walrouter.connect(H.dsn, { pool_size = 2 }))
    for i = 1, 30 do
      local s = c:session()
      assert(s:exec("INSERT INTO lua_items(id, v) VALUES ($1, 'many')", 100 + i))
      assert(s:query("SELECT count(*) FROM lua_items"))
      if i % 2 == 0 then s:close() end -- the others are left to the collector
    end
    do -- abandoned with a transaction open: the collector rolls it back
      local s = c:session()
      assert(s:begin())
      assert(s:exec("INSERT INTO lua_items(id, v) VALUES (200, 'abandoned')"))
      assert.are.equal(1, in_use(c))
    end
    collectgarbage()
    collectgarbage()
    assert.are.equal(0, in_use(c))
    for _, node in ipairs(assert(c:status())) do assert.is_true(node.conns_idle <= 2) end
    assert.is_true(settles_to(base + 2))
    local s <close> = c:session()
    local rows = assert(s:query_primary("SELECT count(*) AS n FROM lua_items WHERE id = 200"))
    assert.are.equal(0, rows[1].n)
  end)

  it("closes the sessions of a cluster that is closed, rolling back their transactions", function()
    local c = assert(walrouter.connect(H.dsn))
    local s = c:session()
    assert(s:begin())
    assert(s:exec("INSERT INTO lua_items(id, v) VALUES (300, 'orphan')"))
    c:close()
    assert.is_true(s:closed())
    H.raises("cluster was closed", s.query, s, "SELECT 1")
    assert.is_true(settles_to(base))
    assert.are.equal("0", H.psql(0, "SELECT count(*) FROM lua_items WHERE id = 300"))
  end)

  it("runs two sessions in two coroutines with interleaved queries", function()
    H.cluster("pause 1") -- so that reading one's own write needs the routing
    finally(function() H.cluster("resume 1") end)
    local c <close> = assert(walrouter.connect(H.dsn))
    local function worker(name, first)
      return coroutine.wrap(function()
        local s <close> = c:session()
        for i = 1, 5 do
          assert(s:exec("INSERT INTO lua_items(id, v) VALUES ($1, $2)", first + i, name))
          coroutine.yield("wrote")
          local rows = assert(s:query("SELECT count(*) AS n FROM lua_items WHERE v = $1", name))
          assert.are.equal(i, rows[1].n)
          assert.are_not.equal(H.name(1), rows.node)
          coroutine.yield("read")
        end
        return "done"
      end)
    end
    local a, b = worker("alpha", 400), worker("beta", 500)
    local trace = {}
    for _ = 1, 11 do
      local ra, rb = a(), b()
      trace[#trace + 1] = ra .. "/" .. rb
      if ra == "done" then assert.are.equal("done", rb) break end
    end
    assert.are.same({ "wrote/wrote", "read/read", "wrote/wrote", "read/read", "wrote/wrote", "read/read",
      "wrote/wrote", "read/read", "wrote/wrote", "read/read", "done/done" }, trace)
    assert.are.equal(0, in_use(c))
  end)
end)
