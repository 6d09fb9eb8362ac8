-- session:stream: a read in chunks through a cursor, in one read-only
-- transaction, iterated with a generic for; memory stays flat.
local walrouter = require "walrouter"
local H = require "wr_helper"

local function rss_kb()
  local f = assert(io.open("/proc/self/status", "r"))
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)"))
end

local function is_replica(name) return name == H.name(1) or name == H.name(2) end

describe("streaming a read (Lua)", function()
  local cluster, s

  setup(function()
    cluster = assert(walrouter.connect(H.dsn))
    s = cluster:session()
    H.reset_table(s)
  end)

  teardown(function()
    if cluster then cluster:close() end
  end)

  it("iterates over every row in order with a generic for, then leaves the session free", function()
    local n, sum = 0, 0
    for row in s:stream("SELECT g AS id, 'v' || g AS v FROM generate_series(1, 2500) g WHERE g > $1 ORDER BY g", 0) do
      n = n + 1
      assert.are.equal(n, row.id)
      assert.are.equal("v" .. n, row[2])
      sum = sum + row.id
    end
    assert.are.equal(2500, n)
    assert.are.equal(2500 * 2501 // 2, sum)
    assert.is_false(s:in_transaction())
    assert.are.equal(1, assert(s:query("SELECT 1 AS one"))[1].one)
  end)

  it("reads from one fresh replica by default, and from the primary with primary = true", function()
    H.cluster("wait-replay 1")
    H.cluster("wait-replay 2")
    local st <close> = s:stream({ "SELECT g FROM generate_series(1, 10) g", chunk = 3 })
    assert.is_true(is_replica(st.node), "served by " .. tostring(st.node))
    assert.are.same({ "g" }, st.columns)
    local got = {}
    for row in st do got[#got + 1] = row.g end
    assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, got)
    assert.is_true(st:closed())

    local p <close> = s:stream({ "SELECT 1 AS x", primary = true })
    assert.are.equal(H.name(0), p.node)
  end)

  it("sees the session's own write while every replica's replay is paused", function()
    H.cluster("pause 1")
    H.cluster("pause 2")
    finally(function()
      H.cluster("resume 1")
      H.cluster("resume 2")
    end)
    assert(s:exec("INSERT INTO lua_items(id, v) VALUES (500, 'streamed')"))
    local seen
    for row in s:stream("SELECT v FROM lua_items WHERE id = $1", 500) do seen = row.v end
    assert.are.equal("streamed", seen)
  end)

  it("closes the stream when a loop breaks, when a <close> variable ends, and on close()", function()
    for row in s:stream({ "SELECT g FROM generate_series(1, 100) g", chunk = 10 }) do
      if row.g == 15 then break end
    end
    assert.is_false(s:in_transaction())

    do
      local st <close> = s:stream("SELECT g FROM generate_series(1, 100) g")
      assert.are.equal(1, st().g)
      assert.is_true(s:in_transaction())
    end
    assert.is_false(s:in_transaction())

    local st = s:stream("SELECT g FROM generate_series(1, 100) g")
    assert.is_true(st:close())
    assert.is_true(st:close()) -- idempotent
    assert.is_nil(st())
    assert.is_false(s:in_transaction())
    assert.truthy(tostring(st):find("closed", 1, true))
  end)

  it("gives no row and nil columns for an empty result", function()
    local st = s:stream("SELECT 1 AS x WHERE false")
    assert.is_nil(st())
    assert.is_nil(st.columns)
    assert.is_true(st:closed())
    assert.is_false(s:in_transaction())
  end)

  it("raises its errors as walrouter error objects, and the session goes on", function()
    local ok, err = pcall(s.stream, s, "SELECT * FROM no_such_table")
    assert.is_false(ok)
    assert.is_true(walrouter.is_error(err))
    assert.are.equal("42P01", err.sqlstate)
    assert.is_false(s:in_transaction())

    -- An error in a later chunk: the rows before it came, then the error.
    local rows = 0
    ok, err = pcall(function()
      for _ in s:stream({ "SELECT 1 / (g - 25) FROM generate_series(1, 100) g", chunk = 10 }) do rows = rows + 1 end
    end)
    assert.is_false(ok)
    assert.are.equal("22012", err.sqlstate)
    assert.are.equal(20, rows)
    assert.is_false(s:in_transaction())

    ok, err = pcall(s.stream, s, "BEGIN")
    assert.is_false(ok)
    assert.are.equal("bad_argument", err.code)
    assert.truthy(err.message:find("begin", 1, true))

    -- One stream at a time: the session is in the first one's transaction.
    local st <close> = s:stream("SELECT 1")
    ok, err = pcall(s.stream, s, "SELECT 2")
    assert.is_false(ok)
    assert.are.equal("bad_state", err.code)
    st:close()
    assert.are.equal(2, assert(s:query("SELECT 2 AS n"))[1].n)
  end)

  it("raises on misuse: bad SQL type, NUL bytes, unknown options, bad chunk sizes", function()
    H.raises("string expected", s.stream, s, 42)
    H.raises("zero byte", s.stream, s, "SELECT 1\0 AND false")
    H.raises("zero byte", s.stream, s, "SELECT $1", "a\0b")
    H.raises("unknown option", s.stream, s, { "SELECT 1", chunksize = 5 })
    H.raises("chunk must be", s.stream, s, { "SELECT 1", chunk = 0 })
    H.raises("chunk must be", s.stream, s, { "SELECT 1", chunk = 1.5 })
    assert.is_false(s:in_transaction())
  end)

  it("is closed with its session, and with its cluster", function()
    local c = assert(walrouter.connect(H.dsn))
    local t = c:session()
    local st = t:stream("SELECT g FROM generate_series(1, 5000) g")
    t:close()
    assert.is_true(st:closed())
    H.raises("closed walrouter stream", st.handle.fetch, st.handle)

    local u = c:session()
    local st2 = u:stream("SELECT g FROM generate_series(1, 5000) g")
    c:close()
    assert.is_true(st2:closed())
    -- And collected: the collector closes an abandoned stream.
    local c2 = assert(walrouter.connect(H.dsn))
    local v = c2:session()
    do local _ = v:stream("SELECT g FROM generate_series(1, 5000) g") end
    collectgarbage()
    collectgarbage()
    assert.is_false(v:in_transaction())
    c2:close()
  end)

  it("keeps memory flat over a million rows", function()
    local ROWS, PAD = 1000000, 100
    collectgarbage()
    collectgarbage()
    local base, peak, n = rss_kb(), 0, 0
    for row in s:stream({ ("SELECT g, repeat('x', %d) AS pad FROM generate_series(1, %d) g"):format(PAD, ROWS),
                          chunk = 1000 }) do
      n = n + 1
      if n % 20000 == 0 then
        local kb = rss_kb()
        if kb > peak then peak = kb end
        assert.are.equal(n, row.g)
      end
    end
    assert.are.equal(ROWS, n)
    local growth_mb = (peak - base) / 1024
    -- The pad column alone is 100 MB, the rows as Lua tables several times
    -- that; streaming holds about one chunk (and its garbage) at a time.
    assert.is_true(growth_mb < 40, ("RSS grew by %.1f MB while streaming"):format(growth_mb))
  end)
end)
