--- resty.walrouter.shared: node state shared by every nginx worker through a
-- lua_shared_dict. Each worker keeps its own copy of the engine (FFI
-- memory); what one worker learns (a probe's result, a node failing, a
-- position a statement observed) is published here as a fixed-size binary
-- record, and every worker feeds the records it has not seen into its own
-- engine before it decides. The engine keeps the highest position, so
-- records may arrive in any order; a lost race costs a position check,
-- never a wrong answer (positions are lower bounds).
--
-- Keys (prefix "<cluster name>:"): ver (bumped on every publish), seq,
-- ev:<i> (last probe result or failure of node i), obs:<i> (last position
-- observed on node i), cnt:<i>:<reason>, err:<i> (statements served, summed
-- over workers), prober (pid of the elected prober), probes:<pid>.
local ffi = require "ffi"

ffi.cdef [[
typedef struct wrr_event {
    uint64_t seq; uint64_t sent_us; uint64_t now_us; int64_t unix_ms;
    int32_t kind; uint32_t rand; wr_probe probe; char why[256];
} wrr_event;
typedef struct wrr_obs {
    uint64_t seq; uint32_t tli; uint32_t pad; wr_lsn lsn; wr_lsn flushed; uint64_t sent_us;
} wrr_obs;
typedef struct wrr_mirror {
    int32_t up; int32_t pad; uint64_t down_until_us; wr_lsn lsn; uint64_t lsn_at_us;
    uint64_t served[13]; uint64_t errors;
} wrr_mirror;
]]

local EV_PROBE, EV_FAILED = 1, 2
local ev_size, obs_size = ffi.sizeof("wrr_event"), ffi.sizeof("wrr_obs")
local ev_ptr, obs_ptr = ffi.typeof("const wrr_event *"), ffi.typeof("const wrr_obs *")

local M = {}

--- Per-worker bookkeeping for cluster c (c.n nodes, c.dict, c.name).
function M.attach(c)
  c.key_ver = c.name .. ":ver"
  c.key_seq = c.name .. ":seq"
  c.key_ev, c.key_obs, c.key_cnt, c.key_err = {}, {}, {}, {}
  for i = 0, c.n - 1 do
    c.key_ev[i] = c.name .. ":ev:" .. i
    c.key_obs[i] = c.name .. ":obs:" .. i
    c.key_err[i] = c.name .. ":err:" .. i
    c.key_cnt[i] = {}
    for r = 0, 12 do c.key_cnt[i][r] = c.name .. ":cnt:" .. i .. ":" .. r end
  end
  c.seen_ver = -1
  c.seen_ev = ffi.new("uint64_t[?]", c.n)
  c.seen_obs = ffi.new("uint64_t[?]", c.n)
  c.mirror = ffi.new("wrr_mirror[?]", c.n)
  c.ev = ffi.new("wrr_event")
  c.obs = ffi.new("wrr_obs")
end

local function next_seq(c)
  local dict = c.dict
  local seq = dict:incr(c.key_seq, 1, 0)
  return seq or 0
end

local function bump(c)
  local v = c.dict:incr(c.key_ver, 1, 0)
  if v then c.seen_ver = c.seen_ver == v - 1 and v or c.seen_ver end
end

-- The mirror holds what this worker's engine showed after it last synced or
-- published, so that what changed since is what this worker learnt itself.
local function remember(c, i)
  local t, m = c.eng.nodes[i], c.mirror[i]
  m.up, m.down_until_us, m.lsn, m.lsn_at_us = t.up, t.down_until_us, t.lsn, t.lsn_at_us
end

--- Feeds into the local engine what other workers published since the
-- last call. One shared-dict read when nothing changed.
function M.sync(c, E)
  local dict = c.dict
  local v = dict:get(c.key_ver)
  if not v or v == c.seen_ver then return end
  c.seen_ver = v
  local eng = c.eng
  for i = 0, c.n - 1 do
    local s = dict:get(c.key_ev[i])
    if s and #s == ev_size then
      local r = ffi.cast(ev_ptr, s)
      if r.seq ~= c.seen_ev[i] then
        c.seen_ev[i] = r.seq
        if r.kind == EV_PROBE then
          E.wr_engine_probe_ok(eng, i, r.probe, r.sent_us, r.now_us, r.unix_ms)
        else
          E.wr_engine_node_failed(eng, i, r.now_us, r.rand, r.why)
        end
      end
    end
    s = dict:get(c.key_obs[i])
    if s and #s == obs_size then
      local r = ffi.cast(obs_ptr, s)
      if r.seq ~= c.seen_obs[i] then
        c.seen_obs[i] = r.seq
        E.wr_engine_observe(eng, i, r.tli, r.lsn, r.flushed, r.sent_us)
      end
    end
    remember(c, i)
  end
end

--- A probe of node i worked (p: wr_probe) or failed (p nil, why).
function M.publish_probe(c, i, p, sent_us, now_us, unix_ms, rand, why)
  local r = c.ev
  ffi.fill(r, ev_size)
  r.seq = next_seq(c)
  r.sent_us, r.now_us, r.unix_ms, r.rand = sent_us, now_us, unix_ms, rand
  if p then
    r.kind = EV_PROBE
    r.probe = p
  else
    r.kind = EV_FAILED
    ffi.copy(r.why, why or "", math.min(#(why or ""), 255))
  end
  c.dict:set(c.key_ev[i], ffi.string(r, ev_size))
  c.seen_ev[i] = r.seq
  bump(c)
  remember(c, i)
end

--- After the local engine was fed a statement's outcome: publish a node
-- that went down, and positions that moved; add the served counters.
function M.publish_changes(c, E, now_us, rand)
  local eng, dict = c.eng, c.dict
  local changed = false
  for i = 0, c.n - 1 do
    local t, m = eng.nodes[i], c.mirror[i]
    if m.up ~= 0 and t.up == 0 and t.down_until_us ~= m.down_until_us then
      local r = c.ev
      ffi.fill(r, ev_size)
      r.seq = next_seq(c)
      r.kind = EV_FAILED
      r.now_us, r.rand = now_us, rand
      ffi.copy(r.why, t.last_error, 255)
      dict:set(c.key_ev[i], ffi.string(r, ev_size))
      c.seen_ev[i] = r.seq
      changed = true
    end
    if t.lsn ~= m.lsn or t.lsn_at_us ~= m.lsn_at_us then
      local o = c.obs
      o.seq = next_seq(c)
      o.tli, o.lsn, o.sent_us = t.tli, t.lsn, t.lsn_at_us
      o.flushed = t.role == 1 and t.flushed or 0
      dict:set(c.key_obs[i], ffi.string(o, obs_size))
      c.seen_obs[i] = o.seq
      changed = true
    end
    for r = 0, 12 do
      local d = t.served[r] - m.served[r]
      if d ~= 0 then
        dict:incr(c.key_cnt[i][r], tonumber(d), 0)
        m.served[r] = t.served[r]
      end
    end
    if t.errors ~= m.errors then
      dict:incr(c.key_err[i], tonumber(t.errors - m.errors), 0)
      m.errors = t.errors
    end
    remember(c, i)
  end
  if changed then bump(c) end
end

--- A copy of the local engine with the counters summed over workers, for
-- status and metrics.
function M.aggregated(c)
  local copy = ffi.new("wr_engine")
  ffi.copy(copy, c.eng, ffi.sizeof("wr_engine"))
  local dict = c.dict
  for i = 0, c.n - 1 do
    local t = copy.nodes[i]
    for r = 0, 12 do t.served[r] = dict:get(c.key_cnt[i][r]) or 0 end
    t.errors = dict:get(c.key_err[i]) or 0
  end
  return copy
end

--- Elects one prober among the workers: a lease in the dict, renewed by
-- its holder. Returns true when this worker holds it.
function M.elect(c, lease_s)
  local dict, key, pid = c.dict, c.name .. ":prober", ngx.worker.pid()
  local ok = dict:add(key, pid, lease_s)
  if ok then return true end
  if dict:get(key) == pid then
    dict:set(key, pid, lease_s)
    return true
  end
  return false
end

function M.count_probe(c)
  c.dict:incr(c.name .. ":probes:" .. ngx.worker.pid(), 1, 0)
end

return M
