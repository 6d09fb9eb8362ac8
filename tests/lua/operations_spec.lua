-- Operations through the Lua module: status as JSON, Prometheus metrics,
-- node state change events (polled, and delivered to a handler on the
-- caller's thread), and the optional background refresher. Every test that
-- stops a node starts it again, even when it fails.
local walrouter = require "walrouter"
local H = require "wr_helper"

-- Parses JSON with Python's json module (Lua has none here): Python prints
-- the value as a Lua table constructor, which is loaded back. Integers stay
-- integers, reals become floats, null becomes walrouter.null.
local TO_LUA = [[
import json, sys
def lua(v):
    if v is None: return "null"
    if isinstance(v, bool): return "true" if v else "false"
    if isinstance(v, int): return str(v)
    if isinstance(v, float): return repr(v)
    if isinstance(v, str):
        return '"' + "".join(chr(b) if chr(b).isalnum() or chr(b) in " _-.:/" else "\\%03d" % b
                             for b in v.encode()) + '"'
    if isinstance(v, list): return "{" + ", ".join(lua(x) for x in v) + "}"
    return "{" + ", ".join("[%s] = %s" % (lua(k), lua(x)) for k, x in v.items()) + "}"
print("return " + lua(json.load(open(sys.argv[1]))))
]]

local function parse_json(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  local script = "'" .. TO_LUA:gsub("'", "'\\''") .. "'"
  local p = assert(io.popen(("/usr/bin/python3 -c %s %s 2>&1"):format(script, path)))
  local out = p:read("a")
  local ok = p:close()
  os.remove(path)
  assert(ok, "not valid JSON (python3 says: " .. out .. ")\n" .. text)
  return assert(load(out, "=json", "t", { null = walrouter.null }))()
end

-- The value of the metric line `name{labels}` in Prometheus text, or nil.
local function metric(text, name, labels)
  local line = name .. "{" .. labels .. "} "
  for l in text:gmatch("[^\n]+") do
    if l:sub(1, #line) == line then return tonumber(l:sub(#line + 1)) end
  end
end

local function find_event(list, node, pred)
  for i, ev in ipairs(list) do
    if ev.node == node and pred(ev) then return ev, i end
  end
end

local states = { unknown = true, up = true, streaming = true, catching_up = true, lagging = true, down = true }

-- Stops node n for the duration of body(), then starts it again and waits
-- until it has replayed the primary's position, whatever body() did.
local function with_node_stopped(n, body)
  H.cluster("wait-replay " .. n)
  H.cluster("stop-node " .. n)
  local ok, err = pcall(body, function() -- restart(): start it again early
    H.cluster("start-node " .. n)
    n = nil
  end)
  if n then H.cluster("start-node " .. n) end
  H.cluster("wait-replay 1")
  H.cluster("wait-replay 2")
  if not ok then error(err, 0) end
end

-- Waits until both replicas have replayed the primary's position (a spec run
-- before may have left one paused or stopped until just now).
local function caught_up()
  H.cluster("wait-replay 1")
  H.cluster("wait-replay 2")
end

describe("operations (Lua)", function()
  it("renders the status as JSON with every node's figures", function()
    caught_up() -- a replica's lag is measured (not null) once it has the primary's position
    local c <close> = assert(walrouter.connect(H.dsn))
    local s <close> = c:session()
    assert(s:query("SELECT 1"))
    assert(s:query_primary("SELECT 1"))
    local text = assert(c:status_json())
    assert.is_string(text)
    local nodes = parse_json(text)
    assert.are.equal(3, #nodes)
    for i, node in ipairs(nodes) do
      assert.are.equal(i - 1, node.node)
      assert.are.equal(H.name(i - 1), node.name)
      assert.are.equal("127.0.0.1", node.host)
      assert.are.equal(i == 1 and "primary" or "replica", node.role)
      assert.is_true(states[node.state], node.state)
      assert.are_not.equal("down", node.state)
      assert.are.equal("integer", math.type(node.lag_bytes))
      assert.is_true(node.lag_bytes >= 0)
      assert.are.equal("number", type(node.lag_seconds))
      assert.truthy(node.replay_lsn:match("^%x+/%x+$"), node.replay_lsn)
      assert.are.equal("integer", math.type(node.last_check_unix_ms))
      assert.are.equal("integer", math.type(node.conns_in_use))
      assert.are.equal("integer", math.type(node.conns_idle))
      assert.are.equal("string", type(node.last_error))
      assert.are.equal("integer", math.type(node.errors))
      assert.are.equal("table", type(node.served))
      assert.are.equal("integer", math.type(node.served.primary_forced))
    end
    assert.are.equal("up", nodes[1].state)
    assert.are.equal(1, nodes[1].served.primary_forced)
    -- The same figures as cluster:status().
    local status = assert(c:status())
    for i, node in ipairs(nodes) do
      assert.are.equal(status[i].name, node.name)
      assert.are.equal(status[i].role, node.role)
      -- Not measured while a replica is caught up: null, not a number.
      assert.is_true(node.replay_rate == walrouter.null or type(node.replay_rate) == "number")
    end
  end)

  it("exposes Prometheus metrics: counters by reason, node up, state, lag, connections", function()
    caught_up() -- a replica's lag is measured (not null) once it has the primary's position
    local c <close> = assert(walrouter.connect(H.dsn))
    local s <close> = c:session()
    assert(s:query_primary("SELECT 1"))
    local text = assert(c:metrics())
    for _, name in ipairs({ "walrouter_statements_total", "walrouter_errors_total", "walrouter_node_up",
      "walrouter_node_state", "walrouter_replica_lag_bytes", "walrouter_replica_lag_seconds",
      "walrouter_connections" }) do
      assert.truthy(text:find("\n# TYPE " .. name .. " ", 1, true) or text:find("^# TYPE " .. name .. " "),
        "no # TYPE line for " .. name)
    end
    local p = ('node="%s"'):format(H.name(0))
    assert.are.equal(1, metric(text, "walrouter_node_up", p .. ',role="primary"'))
    assert.are.equal(1, metric(text, "walrouter_node_state", p .. ',state="up"'))
    assert.are.equal(1, metric(text, "walrouter_statements_total", p .. ',reason="primary_forced"'))
    for n = 1, 2 do
      local r = ('node="%s"'):format(H.name(n))
      assert.are.equal(1, metric(text, "walrouter_node_up", r .. ',role="replica"'))
      assert.is_number(metric(text, "walrouter_replica_lag_bytes", r))
    end
    -- Counters count.
    assert(s:query_primary("SELECT 1"))
    assert.are.equal(2, metric(assert(c:metrics()), "walrouter_statements_total", p .. ',reason="primary_forced"'))
  end)

  it("queues state changes for cluster:events(), which drains them", function()
    local c <close> = assert(walrouter.connect(H.dsn))
    local s <close> = c:session()
    assert(s:query("SELECT 1"))
    -- Connecting saw every node leave "unknown".
    local list = c:events()
    for n = 0, 2 do
      local ev = find_event(list, H.name(n), function(e) return e.from == "unknown" end)
      assert.is_table(ev, "no first event for node " .. n)
      assert.is_true(states[ev.to], ev.to)
      assert.are.equal("integer", math.type(ev.at_ms))
      assert.is_true(math.abs(ev.at_ms - os.time() * 1000) < 600000)
      assert.are.equal(("%s: %s -> %s"):format(ev.node, ev.from, ev.to), tostring(ev))
    end
    assert.are.same({}, c:events())
  end)

  it("delivers events to the handler after each kind of call, on the caller's thread", function()
    local calls = {
      query = function(c, s) assert(s:query("SELECT 1")) end,
      query_primary = function(c, s) assert(s:query_primary("SELECT 1")) end,
      exec = function(c, s) assert(s:exec("SELECT 1")) end,
      transaction = function(c, s) assert(s:transaction(function() end)) end,
      refresh = function(c) assert(c:refresh()) end,
      status = function(c) assert(c:status()) end,
      status_json = function(c) assert(c:status_json()) end,
      metrics = function(c) assert(c:metrics()) end,
      events = function(c) assert.is_true(#c:events() > 0) end,
    }
    for name, call in pairs(calls) do
      local c <close> = assert(walrouter.connect(H.dsn)) -- its first events are pending
      local s <close> = c:session()
      local seen, where = {}, {}
      c:on_event(function(ev, cluster)
        assert.are.equal(c, cluster)
        seen[#seen + 1] = ev
        where[#where + 1] = coroutine.running()
      end)
      assert.are.equal(0, #seen)
      local co = coroutine.create(call)
      assert(coroutine.resume(co, c, s))
      assert.is_true(#seen >= 3, name .. " delivered no events")
      for _, co_seen in ipairs(where) do assert.are.equal(co, co_seen, name) end
      assert.are.same({}, c:events(), name) -- each event is delivered once
      c:on_event(nil)
      assert.is_nil(c:event_handler())
    end
  end)

  it("delivers every pending event when the handler raises, warns, and keeps the call's result", function()
    local c <close> = assert(walrouter.connect(H.dsn))
    local s <close> = c:session()
    local n, warned = 0, {}
    c:on_event(function()
      n = n + 1
      error("handler failed", 0)
    end)
    local real_warn = _G.warn -- busted runs specs in an environment of their own
    _G.warn = function(...) warned[#warned + 1] = table.concat({ ... }) end
    local ok, rows = pcall(s.query, s, "SELECT 1 AS one")
    _G.warn = real_warn
    assert.is_true(ok)
    assert.are.equal(1, rows[1].one) -- the read's rows are not lost
    assert.is_true(n >= 3)
    assert.are.equal(n, #warned)
    assert.truthy(warned[1]:find("handler failed", 1, true))
    c:on_event(nil)
    assert.are.same({}, c:events()) -- none was left behind
  end)

  it("tells the handler when a replica goes down, and when it is back", function()
    local c <close> = assert(walrouter.connect(H.dsn, { refresh_interval_ms = 100, read_budget_ms = 300 }))
    local s <close> = c:session()
    local name = H.name(2)
    local seen = {}
    c:on_event(function(ev) seen[#seen + 1] = ev end)
    H.poll("node 2 to be streaming", function() return assert(c:status())[3].state == "streaming" end)
    seen = {}
    with_node_stopped(2, function(restart)
      local down = H.poll("an event saying node 2 is down", function()
        assert(s:query("SELECT 1")) -- reads go on while a replica is down
        return find_event(seen, name, function(e) return e.to == "down" end)
      end, 60)
      assert.are_not.equal("down", down.from)
      local status = assert(c:status())
      assert.are.equal("down", status[3].state)
      restart()
      local back = H.poll("an event saying node 2 is back", function()
        assert(s:query("SELECT 1"))
        return find_event(seen, name, function(e) return e.from == "down" end)
      end, 60)
      assert.are_not.equal("down", back.to)
      local downs = 0
      for _, ev in ipairs(seen) do
        if ev.node == name and ev.to == "down" then downs = downs + 1 end
      end
      assert.are.equal(1, downs)
    end)
  end)

  describe("the background refresher", function()
    it("refreshes the figures without any call, and notices a node going down", function()
      -- Refreshing on use would wait an hour: only the thread refreshes.
      local c <close> = assert(walrouter.connect(H.dsn, { refresh_interval_ms = 3600000 }))
      local first = assert(c:status())[1].last_check_unix_ms
      assert.is_true(c:start_refresher(50))
      H.poll("the refresher to probe the primary", function()
        return assert(c:status())[1].last_check_unix_ms > first
      end)
      assert.is_true(c:start_refresher(20)) -- again: a new interval, still one thread
      c:events()
      with_node_stopped(2, function()
        -- poll_events does no I/O: only the refresher can notice.
        H.poll("the refresher to notice node 2 is down", function()
          return find_event(c:events(), H.name(2), function(e) return e.to == "down" end)
        end, 60)
      end)
      c:stop_refresher()
      c:stop_refresher() -- idempotent
      assert.is_true(c:start_refresher(100)) -- and it starts again
      c:stop_refresher()
    end)

    it("is stopped cleanly when its cluster is closed or collected while it runs", function()
      collectgarbage()
      collectgarbage()
      local base = H.connections(0)
      local c = assert(walrouter.connect(H.dsn))
      assert.is_true(c:start_refresher(10))
      local s = c:session()
      assert(s:query_primary("SELECT 1"))
      c:close()
      assert.is_true(c:closed())
      do
        local d = assert(walrouter.connect(H.dsn))
        assert.is_true(d:start_refresher(10))
      end
      collectgarbage()
      collectgarbage()
      H.poll("walrouter connections on node0 to drop back", function() return H.connections(0) <= base end)
    end)

    it("raises on a bad interval", function()
      local c <close> = assert(walrouter.connect(H.dsn))
      H.raises("interval", c.start_refresher, c, 0)
      H.raises("interval", c.start_refresher, c, -1)
      H.raises("interval", c.start_refresher, c, 2 ^ 32)
      H.raises("number has no integer representation", c.start_refresher, c, 1.5)
      H.raises("number expected", c.start_refresher, c, "soon")
    end)
  end)

  it("raises on misuse: a handler that is not a function, and any call on a closed cluster", function()
    local c = assert(walrouter.connect(H.dsn))
    H.raises("function expected", c.on_event, c, "print")
    H.raises("function expected", c.on_event, c, {})
    c:close()
    for _, method in ipairs({ "status_json", "metrics", "events", "poll_events", "event_handler",
      "stop_refresher" }) do
      H.raises("closed walrouter cluster", c[method], c)
    end
    H.raises("closed walrouter cluster", c.on_event, c, print)
    H.raises("closed walrouter cluster", c.start_refresher, c, 100)
  end)
end)
