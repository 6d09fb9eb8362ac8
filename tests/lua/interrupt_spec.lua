-- Ctrl-C during a call: SIGINT cancels the running statement on the server,
-- the call returns nil, err (err.code "interrupted"), and the signal is
-- raised again for the interpreter's own handler ("interrupted!"). Each test
-- runs a real lua5.4 process, sends it SIGINT once the server shows its
-- statement running, and watches it end.
local walrouter = require "walrouter"
local H = require "wr_helper"

local LUA = os.getenv("WR_LUA") or "lua5.4"

local function shq(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

-- Starts `lua5.4 -e script` in the background (stdout and stderr to a file);
-- returns a handle with its pid. A wrapper shell waits for it and writes
-- its exit status to a file, so the test can poll for the end without
-- blocking and without a zombie.
local function spawn(script)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. shq(dir)))
  local cmd = ("(%s -e %s >%s 2>&1 & echo $! >%s; wait $!; echo $? >%s; mv %s %s) &"):format(
    LUA, shq(script), shq(dir .. "/out"), shq(dir .. "/pid"), shq(dir .. "/status.tmp"),
    shq(dir .. "/status.tmp"), shq(dir .. "/status"))
  assert(os.execute(cmd))
  local child = { dir = dir }
  child.pid = H.poll("the child's pid file", function()
    local text = read_file(dir .. "/pid")
    return text and tonumber(text:match("%d+"))
  end, 10)
  function child.status() -- the exit status once it ended, else nil
    local text = read_file(dir .. "/status")
    return text and tonumber(text:match("%d+"))
  end
  function child.output() return read_file(dir .. "/out") or "" end
  function child.kill(sig) os.execute(("kill -%s %d 2>/dev/null"):format(sig, child.pid)) end
  function child.cleanup()
    if not child.status() then child.kill("KILL") end
    os.execute("rm -rf " .. shq(dir))
  end
  return child
end

-- Statements whose text is LIKE `pattern` running on the primary, other
-- than ours.
local function running_like(s, pattern)
  local rows = assert(s:query_primary(
    "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE $1 AND state = 'active' "
      .. "AND pid <> pg_backend_pid()", pattern))
  return rows[1].n
end

local function running(s, marker) return running_like(s, "%" .. marker .. "%") end
local function sleeping(s) return running(s, "pg_sleep(30)") end
-- A stream's FETCH sleeping (its text is the FETCH, not the query).
local FETCH_SLEEPING = "FETCH FORWARD % FROM wr_stream"

-- Waits (bounded: 10 s) for the child to end; returns its exit status.
local function ended(child)
  local deadline = os.time() + 10
  repeat
    local status = child.status()
    if status then return status end
    os.execute("sleep 0.05")
  until os.time() > deadline
  error("the child did not end within 10 s of SIGINT: " .. child.output(), 2)
end

local marker_seq = 0
local function marker()
  marker_seq = marker_seq + 1
  return ("lua-interrupt-%d-%d-%d"):format(os.time(), math.random(1, 1e9), marker_seq)
end

describe("interrupting a call with SIGINT (Lua)", function()
  local cluster, s

  setup(function()
    cluster = assert(walrouter.connect(H.dsn))
    s = cluster:session()
  end)

  teardown(function()
    if cluster then cluster:close() end
  end)

  -- Runs `body` (Lua source using `s`, a session, and `SQL`) in a child,
  -- waits until the server runs the statement tagged with a fresh marker
  -- (or whose text is LIKE `pattern`), sends SIGINT, and returns the
  -- child's exit status and output, and the marker.
  local function interrupt(body, pattern)
    local m = marker()
    pattern = pattern or ("%" .. m .. "%")
    local script = ([[
      local walrouter = require "walrouter"
      local cluster = assert(walrouter.connect(os.getenv("WR_TEST_DSN")))
      local s = cluster:session()
      local SQL = "SELECT pg_sleep(30) /* %s */"
      io.stdout:setvbuf("no")
      print("ready")
    ]]):format(m) .. body
    local child = spawn(script)
    finally(child.cleanup)
    H.poll("the child's statement to run on the server", function()
      if child.status() then error("the child ended early: " .. child.output()) end
      return running_like(s, pattern) > 0
    end, 20)
    child.kill("INT")
    local status = ended(child)
    return status, child.output(), m
  end

  it("cancels s:exec on the server; lua5.4's own handler still ends the script with 'interrupted!'", function()
    local status, out, m = interrupt([[
      s:exec(SQL)
      print("not reached")
    ]])
    -- Right after the process ended, nothing it started still runs.
    assert.are.equal(0, running(s, m))
    assert.are.equal(0, sleeping(s))
    assert.are_not.equal(0, status)
    assert.truthy(out:find("interrupted!", 1, true), out)
    assert.falsy(out:find("not reached", 1, true), out)
    -- The cluster takes the next statement at once.
    assert.are.equal(1, assert(s:exec("SELECT 1")))
    assert.are.equal(7, assert(s:query("SELECT 7 AS n"))[1].n)
  end)

  it("returns nil, err with code 'interrupted', and the same session runs the next statement", function()
    -- In a coroutine, the interpreter's "interrupted!" hook waits for the
    -- main thread: the call's own return values are visible first.
    local status, out, m = interrupt([[
      local co = coroutine.wrap(function()
        local n, err = s:query_primary(SQL)
        print("result", tostring(n), err and err.code, walrouter.is_error(err))
        print("message", tostring(err))
        local rows, err2 = s:query("SELECT 42 AS answer")
        print("next", rows and rows[1].answer, tostring(err2))
        local ok, err3 = s:transaction(function(t) assert(t:exec("SELECT 1")) end)
        print("transaction", tostring(ok), tostring(err3))
      end)
      co()
      print("not reached")
    ]])
    assert.are.equal(0, running(s, m))
    assert.are.equal(0, sleeping(s))
    assert.truthy(out:find("result\tnil\tinterrupted\ttrue", 1, true), out)
    assert.truthy(out:find("message\t[^\n]*cancel"), out)
    assert.truthy(out:find("next\t42\tnil", 1, true), out)
    assert.truthy(out:find("transaction\ttrue\tnil", 1, true), out)
    assert.truthy(out:find("interrupted!", 1, true), out) -- raised again, for lua5.4's handler
    assert.falsy(out:find("not reached", 1, true), out)
    assert.are_not.equal(0, status)
  end)

  it("cancels a streamed read while it fetches a chunk, and closes the stream", function()
    local status, out = interrupt([[
      local co = coroutine.wrap(function()
        local rows = 0
        local ok, err = pcall(function()
          for _ in s:stream({ "SELECT g, pg_sleep(CASE WHEN g = 3 THEN 30 ELSE 0 END) FROM generate_series(1, 5) g",
                              chunk = 1, primary = true }) do rows = rows + 1 end
        end)
        print("stream", tostring(ok), walrouter.is_error(err) and err.code, rows)
        print("after", tostring(s:in_transaction()), assert(s:query("SELECT 5 AS n"))[1].n)
      end)
      co()
    ]], FETCH_SLEEPING)
    assert.are.equal(0, running_like(s, FETCH_SLEEPING))
    assert.are.equal(0, sleeping(s))
    assert.truthy(out:find("stream\tfalse\tinterrupted\t2", 1, true), out)
    assert.truthy(out:find("after\tfalse\t5", 1, true), out)
    assert.are_not.equal(0, status)
  end)

  it("puts the previous SIGINT handler back after each call", function()
    -- Not interrupted: the call ends normally, then SIGINT reaches lua5.4's
    -- own handler, whatever the module installed meanwhile.
    local child = spawn([[
      local walrouter = require "walrouter"
      local cluster = assert(walrouter.connect(os.getenv("WR_TEST_DSN")))
      local s = cluster:session()
      assert(s:query("SELECT 1"))
      assert(s:exec("SELECT 1"))
      io.stdout:setvbuf("no")
      print("calls done")
      local t = os.time()
      while os.time() - t < 30 do end -- Lua code: the handler's hook stops it
    ]])
    finally(child.cleanup)
    H.poll("the child's calls", function() return child.output():find("calls done", 1, true) end, 20)
    child.kill("INT")
    ended(child)
    assert.truthy(child.output():find("interrupted!", 1, true), child.output())
  end)
end)

describe("statement timeouts (Lua)", function()
  it("returns nil, err with code 'timeout' past statement_timeout_ms, and the session goes on", function()
    local c <close> = assert(walrouter.connect(H.dsn, { statement_timeout_ms = 200 }))
    local s <close> = c:session()
    local n, err = s:exec("SELECT pg_sleep(5)")
    assert.is_nil(n)
    assert.are.equal("timeout", err.code)
    assert.are.equal(0, sleeping(s) + running(s, "pg_sleep(5)"))
    assert.are.equal(1, assert(s:exec("SELECT 1")))
  end)
end)
