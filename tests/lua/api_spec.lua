-- The Lua API itself: value conversion both ways, result metadata, readable
-- printing, and errors (runtime failures return nil, err; misuse raises).
local walrouter = require "walrouter"
local H = require "wr_helper"

describe("walrouter (Lua API)", function()
  local cluster, s

  setup(function()
    cluster = assert(walrouter.connect(H.dsn))
    s = cluster:session()
    H.reset_table(s)
  end)

  teardown(function()
    if cluster then cluster:close() end
  end)

  describe("results", function()
    it("converts columns by type and keeps NULL in its position", function()
      local rows = assert(s:query([[
        SELECT 1::int2 AS a, 2::int4 AS b, 9007199254740993::int8 AS c, 26::oid AS d,
               2.5::float4 AS e, 0.1::float8 AS f, 1.50::numeric AS g, true AS h, false AS i,
               NULL::int AS j, 'text'::text AS k, '\x01ff'::bytea AS l, 'x' AS m]]))
      assert.are.equal(1, #rows)
      local r = rows[1]
      for _, k in ipairs({ "a", "b", "c", "d" }) do assert.are.equal("integer", math.type(r[k])) end
      assert.are.equal(9007199254740993, r.c)
      assert.are.equal(26, r.d)
      assert.are.equal("float", math.type(r.e))
      assert.are.equal(2.5, r.e)
      assert.are.equal(0.1, r.f)
      assert.are.equal("1.50", r.g) -- numeric stays text: no precision is lost
      assert.is_true(r.h)
      assert.is_false(r.i)
      assert.are.equal(walrouter.null, r.j)
      assert.are.equal(walrouter.null, r[10])
      assert.are.equal("NULL", tostring(r.j))
      assert.are.equal("text", r.k)
      assert.are.equal("\\x01ff", r.l)
      assert.are.equal(13, #r) -- the NULL keeps the columns after it in place
      assert.are.equal("x", r[13])
    end)

    it("answers to column names and positions and carries its metadata", function()
      local rows = assert(s:query("SELECT g AS id, 'item ' || g AS v FROM generate_series(1, 3) g ORDER BY g"))
      assert.are.equal(3, #rows)
      assert.are.same({ "id", "v" }, rows.columns)
      assert.are.equal(2, rows[2].id)
      assert.are.equal(rows[2][1], rows[2].id)
      assert.are.equal("item 3", rows[3].v)
      assert.is_nil(rows[1].no_such_column)
      assert.is_string(rows.node)
      assert.is_string(rows.reason)
      local n = 0
      for i, row in ipairs(rows) do n = n + 1; assert.are.equal(i, row.id) end
      assert.are.equal(3, n)
      local keys = 0
      for _ in pairs(rows) do keys = keys + 1 end
      assert.are.equal(3, keys) -- metadata is not mixed into the rows
    end)

    it("sends strings, integers, floats, booleans, nil and walrouter.null as parameters", function()
      local rows = assert(s:query(
        "SELECT $1::text AS s, $2::int AS i, $3::float8 AS f, $4::bool AS b, $5::int IS NULL AS n5,"
          .. " $6::text IS NULL AS n6, $7::int8 AS big, $8::int AS whole, $9::text IS NULL AS n9",
        "héllo 'quoted'", 42, 2.5, false, nil, walrouter.null, math.maxinteger, 3.0, nil))
      local r = rows[1]
      assert.are.equal("héllo 'quoted'", r.s)
      assert.are.equal(42, r.i)
      assert.are.equal(2.5, r.f)
      assert.is_false(r.b)
      assert.is_true(r.n5)
      assert.is_true(r.n6)
      assert.are.equal(math.maxinteger, r.big)
      assert.are.equal(3, r.whole) -- a float with an integral value is sent as "3"
      assert.is_true(r.n9) -- a trailing nil still counts as a parameter
      local t = assert(s:query("SELECT $1::text AS t", 0.1))
      assert.are.equal(0.1, tonumber(t[1].t)) -- floats round-trip exactly
    end)

    it("returns the affected count and the rows of a write", function()
      local n, res = s:exec("INSERT INTO lua_items(id, v) VALUES (1, 'a'), (2, 'b') RETURNING id")
      assert.are.equal(2, n)
      assert.are.equal(2, #res)
      assert.are.equal("write", res.reason)
      assert.are.equal(H.name(0), res.node)
      assert.matches("^%x+/%x+$", res.lsn)
      n = assert(s:exec("UPDATE lua_items SET v = v || '!' WHERE id IN (1, 2)"))
      assert.are.equal(2, n)
      n = assert(s:exec("DELETE FROM lua_items WHERE id = 99"))
      assert.are.equal(0, n)
    end)

    it("reads on the primary when asked to", function()
      local rows = assert(s:query_primary("SELECT 1 AS one"))
      assert.are.equal(H.name(0), rows.node)
      assert.are.equal("primary_forced", rows.reason)
    end)

    it("prints rows, a row, a session, a cluster and the status readably, without the password", function()
      local rows = assert(s:query("SELECT 1 AS id, 'x' AS v, NULL::text AS z"))
      local text = tostring(rows)
      assert.truthy(text:find("id", 1, true))
      assert.truthy(text:find("NULL", 1, true))
      assert.truthy(text:find(rows.node, 1, true))
      assert.are.equal('{id = 1, v = "x", z = NULL}', tostring(rows[1]))
      local st = assert(cluster:status())
      for _, t in ipairs({ tostring(st), tostring(cluster), tostring(s) }) do
        assert.falsy(t:find(H.password, 1, true))
      end
      assert.truthy(tostring(st):find(H.name(1), 1, true))
      assert.truthy(tostring(cluster):find(H.name(0) .. " primary", 1, true))
      assert.truthy(tostring(s):find("need", 1, true))
    end)
  end)

  describe("status", function()
    it("has one record per node with role, state, lag, position, connections and counts", function()
      assert(s:query("SELECT 1"))
      local st = assert(cluster:status())
      assert.are.equal(3, #st)
      assert.are.same({ H.name(0), H.name(1), H.name(2) }, cluster:nodes())
      assert.are.equal(H.name(0), cluster:primary())
      local served = 0
      for i, node in ipairs(st) do
        assert.are.equal(H.name(i - 1), node.name)
        assert.are.equal("127.0.0.1", node.host)
        assert.are.equal(i == 1 and "primary" or "replica", node.role)
        assert.truthy(({ up = 1, streaming = 1, catching_up = 1 })[node.state])
        assert.matches("^%x+/%x+$", node.replay_lsn)
        assert.is_number(node.lag_bytes)
        assert.is_number(node.lag_seconds)
        assert.are.equal(0, node.conns_in_use)
        assert.is_number(node.conns_idle)
        assert.is_number(node.errors)
        assert.is_number(node.served.write)
        served = served + node.served.replica_cached + node.served.replica_checked
      end
      assert.is_true(served >= 1)
      assert.is_true(st[1].served.write >= 1)
      assert(cluster:refresh())
    end)
  end)

  describe("errors", function()
    it("returns nil, err for a bad DSN and an unreachable cluster, never showing the password", function()
      local c, err = walrouter.connect("postgresql://walrouter:s3cret-pw@[::1:5432/db")
      assert.is_nil(c)
      assert.are.equal("bad_argument", err.code)
      assert.truthy(err.message:find("invalid DSN", 1, true))
      assert.falsy(err.message:find("s3cret-pw", 1, true))
      assert.are.equal(err.message, tostring(err))
      assert.is_true(walrouter.is_error(err))

      c, err = walrouter.connect("postgresql://walrouter:s3cret-pw@127.0.0.1:1,127.0.0.1:2/walrouter")
      assert.is_nil(c)
      assert.are.equal("connect_error", err.code)
      assert.truthy(err.message:find("127.0.0.1:1", 1, true))
      assert.falsy(err.message:find("s3cret-pw", 1, true))
    end)

    it("raises on a bad option key, type or value, naming the option", function()
      H.raises("no_such_option", walrouter.connect, H.dsn, { no_such_option = 1 })
      H.raises("read_budget_ms", walrouter.connect, H.dsn, { read_budget_ms = "soon" })
      H.raises("read_budget_ms", walrouter.connect, H.dsn, { read_budget_ms = -5 })
      H.raises("read_budget_ms", walrouter.connect, H.dsn, { read_budget_ms = 1.5 })
      H.raises("read_budget_ms", walrouter.connect, H.dsn, { read_budget_ms = {} })
      H.raises("no_stmt_cache", walrouter.connect, H.dsn, { no_stmt_cache = "maybe" })
      H.raises("option names must be strings", walrouter.connect, H.dsn, { 200 })
      H.raises("table expected", walrouter.connect, H.dsn, "read_budget_ms=200")
      H.raises("string expected", walrouter.connect, {})
      -- Good values of each type are taken.
      local c = assert(walrouter.connect(H.dsn, { read_budget_ms = 300.0, no_stmt_cache = true,
        token_key = "k", max_lag_bytes = "1000000000" }))
      c:close()
    end)

    it("returns nil, err for a bad token, and raises for a token that is not a string", function()
      local bad, err = cluster:session("garbage")
      assert.is_nil(bad)
      assert.are.equal("bad_token", err.code)
      assert.truthy(err.message:find("token", 1, true))
      local t = cluster:session()
      local ok, err2 = t:resume("1.zz.-.0")
      assert.is_nil(ok)
      assert.are.equal("bad_token", err2.code)
      ok, err2 = t:require("2.1.zz.-.0.0")
      assert.is_nil(ok)
      assert.are.equal("bad_token", err2.code)
      assert(t:require(""), "a cleared cookie is no token, not an error")
      assert(t:query("SELECT 1")) -- the session still works
      t:close()
      H.raises("string expected", cluster.session, cluster, 42)
    end)

    it("rejects a tampered signed token and an unsigned one when a key is set", function()
      local c = assert(walrouter.connect(H.dsn, { token_key = "a test key" }))
      local w = c:session()
      assert(w:exec("INSERT INTO lua_items(id, v) VALUES (10, 'signed')"))
      local token = w:token()
      local r = assert(c:session(token))
      assert.are.equal(w:need(), r:need())
      local tampered = token:sub(1, 2) .. (token:sub(3, 3) == "1" and "2" or "1") .. token:sub(4)
      local _, err = c:session(tampered)
      assert.are.equal("bad_token", err.code)
      _, err = c:session(s:token()) -- unsigned
      assert.are.equal("bad_token", err.code)
      c:close()
    end)

    it("returns the SQL error with its SQLSTATE and node, and the session goes on", function()
      local rows, err = s:query("SELECT * FROM no_such_table")
      assert.is_nil(rows)
      assert.are.equal("sql_error", err.code)
      assert.are.equal("42P01", err.sqlstate)
      assert.truthy(err.message:find("no_such_table", 1, true))
      assert.truthy(tostring(err):find("no_such_table", 1, true))
      assert.is_string(err.node)
      H.number(err.node)

      local n, err2 = s:exec("INSERT INTO lua_items(id, v) VALUES (1, 'dup')")
      assert.is_nil(n)
      assert.are.equal("23505", err2.sqlstate)
      assert.are.equal(H.name(0), err2.node)

      _, err = s:query("SELECT $1::int", "not a number")
      assert.are.equal("22P02", err.sqlstate)
      _, err = s:query("SELEC 1")
      assert.are.equal("42601", err.sqlstate)
      assert.are.equal(7, assert(s:query("SELECT 7 AS n"))[1].n)
      _, err = s:commit()
      assert.are.equal("bad_state", err.code)
    end)

    it("raises on misuse: wrong argument types and closed handles", function()
      H.raises("string expected", s.query, s)
      H.raises("string expected", s.query, s, {})
      H.raises("parameter $1", s.query, s, "SELECT $1", {})
      H.raises("parameter $2", s.exec, s, "SELECT $1, $2", 1, print)
      H.raises("zero byte", s.query, s, "SELECT $1", "a\0b")
      H.raises("walrouter.session expected", s.query, cluster, "SELECT 1")
      H.raises("function expected", s.transaction, s, "not a function")
      H.raises("unknown option", s.transaction, s, function() end, { readonly = true })

      local c = assert(walrouter.connect(H.dsn))
      local t = c:session()
      local u = c:session()
      t:close()
      t:close() -- idempotent
      assert.is_true(t:closed())
      H.raises("closed walrouter session", t.query, t, "SELECT 1")
      H.raises("closed walrouter session", t.token, t)
      assert.truthy(tostring(t):find("closed", 1, true))
      c:close()
      c:close()
      H.raises("closed walrouter cluster", c.session, c)
      H.raises("closed walrouter cluster", c.status, c)
      H.raises("cluster was closed", u.query, u, "SELECT 1")
      assert.truthy(tostring(c):find("closed", 1, true))
      u:close()
    end)
  end)

  describe("text that C cannot carry, and statements walrouter must run itself", function()
    before_each(function()
      assert(s:exec("DELETE FROM lua_items WHERE id = 1"))
      assert(s:exec("INSERT INTO lua_items(id, v) VALUES (1, 'before')"))
    end)

    local function v1()
      return assert(s:query_primary("SELECT v FROM lua_items WHERE id = 1"))[1].v
    end

    it("raises for SQL text with a zero byte, and runs nothing of it", function()
      -- Cut at the zero byte, this would update the row.
      local sql = "UPDATE lua_items SET v = 'x' WHERE id = 1\0 AND false"
      H.raises("SQL text contains a zero byte (NUL)", s.exec, s, sql)
      H.raises("zero byte", s.query, s, sql)
      H.raises("zero byte", s.query_primary, s, sql)
      H.raises("zero byte", s.exec, s, "UPDATE lua_items SET v = $1 WHERE id = 1", "x\0y")
      assert.are.equal("before", v1())
      assert.is_false(s:in_transaction())
    end)

    it("returns nil, err (bad_token) for a token with a zero byte: a token is untrusted input", function()
      local w <close> = cluster:session()
      assert(w:exec("UPDATE lua_items SET v = 'after' WHERE id = 1"))
      local good = w:token()
      local bad, err = cluster:session(good .. "\0junk")
      assert.is_nil(bad)
      assert.are.equal("bad_token", err.code)
      assert.truthy(err.message:find("zero byte", 1, true))
      local t <close> = cluster:session()
      local ok
      ok, err = t:resume(good .. "\0")
      assert.is_nil(ok)
      assert.are.equal("bad_token", err.code)
      ok, err = t:require("\0" .. good)
      assert.is_nil(ok)
      assert.are.equal("bad_token", err.code)
      assert.are.equal("0/0", t:need(), "a refused token changes nothing")
    end)

    it("raises for a DSN or an option value with a zero byte", function()
      H.raises("DSN contains a zero byte", walrouter.connect, H.dsn .. "\0junk")
      H.raises("token_key", walrouter.connect, H.dsn, { token_key = "key\0rest" })
    end)

    it("refuses BEGIN, COMMIT, ROLLBACK, START, END and ABORT through query and exec, naming the way", function()
      for _, sql in ipairs({ "BEGIN", "begin isolation level serializable", "  -- c\nCOMMIT", "ROLLBACK",
                             "START TRANSACTION", "END", "ABORT" }) do
        for _, method in ipairs({ "exec", "query", "query_primary" }) do
          local res, err = s[method](s, sql)
          assert.is_nil(res, sql)
          assert.are.equal("bad_argument", err.code, sql)
          assert.truthy(err.message:find("transaction()", 1, true), err.message)
          assert.truthy(err.message:find("begin()", 1, true), err.message)
        end
      end
      assert.is_false(s:in_transaction())
      -- The way it names works.
      assert(s:transaction(function(t) assert(t:exec("UPDATE lua_items SET v = 'tx' WHERE id = 1")) end))
      assert.are.equal("tx", v1())
    end)
  end)

  describe("options added in 0.2", function()
    it("takes statement_timeout_ms, pool_max, nearest, no_refresher, and 'none' for the lag limits", function()
      local c <close> = assert(walrouter.connect(H.dsn, {
        statement_timeout_ms = 5000, pool_max = 4, pool_size = 2, nearest = true, no_refresher = true,
        max_lag_bytes = "none", max_lag_ms = "NONE" }))
      local t <close> = c:session()
      assert.are.equal(3, assert(t:query("SELECT 3 AS n"))[1].n)
      assert.are.equal(1, assert(t:exec("UPDATE lua_items SET v = v WHERE id = 1")))
      local c2 <close> = assert(walrouter.connect(H.dsn, { nearest = false, no_refresher = "off",
        max_lag_bytes = 1024 * 1024, max_lag_ms = 2000 }))
      assert(c2:session():query("SELECT 1"))
    end)

    it("raises on a bad value of a new option, naming it", function()
      H.raises("statement_timeout_ms", walrouter.connect, H.dsn, { statement_timeout_ms = "soon" })
      H.raises("pool_max", walrouter.connect, H.dsn, { pool_max = -1 })
      H.raises("nearest", walrouter.connect, H.dsn, { nearest = "closest" })
      H.raises("no_refresher", walrouter.connect, H.dsn, { no_refresher = 2 })
      H.raises("max_lag_ms", walrouter.connect, H.dsn, { max_lag_ms = "never" })
      H.raises("max_lag_bytes", walrouter.connect, H.dsn, { max_lag_bytes = math.huge })
    end)

    it("reports each node's timeline, fencing and probe round trip in the status", function()
      local st = assert(cluster:status())
      assert.is_true(st[1].timeline >= 1)
      for _, node in ipairs(st) do
        assert.is_false(node.fenced)
        assert.is_true(node.rtt_ms == nil or node.rtt_ms >= 0)
        assert.is_true(node.timeline == nil or math.type(node.timeline) == "integer")
      end
    end)
  end)
end)
