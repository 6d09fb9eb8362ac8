--- resty.walrouter.ffi: the engine (libwalrouter_engine) and libcrypto through
-- LuaJIT FFI. The declarations mirror core/include/walrouter_engine.h; the
-- struct sizes are checked against the library's own at load time.
local ffi = require "ffi"

ffi.cdef [[
typedef uint64_t wr_lsn;
typedef struct wr_timeline {
    wr_lsn need; int last_node; uint64_t last_read_us; uint32_t need_tli; int need_unknown;
} wr_timeline;
typedef struct wr_config {
    uint64_t budget_us, retry_interval_us, statement_timeout_us, refresh_interval_us;
    uint64_t max_lag_bytes, max_lag_us, connect_timeout_us;
    uint32_t choose; uint32_t pad;
} wr_config;
typedef struct wr_probe {
    int32_t in_recovery; uint32_t tli; wr_lsn lsn; wr_lsn flushed; wr_lsn received;
    int32_t receiver; uint32_t wal_block_size; uint64_t wal_segment_size;
} wr_probe;
typedef struct wr_node_track {
    uint32_t id; int32_t role; uint32_t tli; int32_t up; int32_t placed; int32_t fenced;
    int32_t excluded; int32_t receiver; uint32_t backoff_ms; uint32_t rtt_us;
    uint64_t down_until_us; wr_lsn lsn; uint64_t lsn_at_us; wr_lsn flushed; wr_lsn rate_lsn;
    uint64_t rate_at_us; double rate; int64_t lag_bytes; int64_t lag_us; uint64_t covered_at_us;
    uint64_t probed_us; int64_t last_check_unix_ms; uint64_t served[13]; uint64_t errors;
    int32_t reported; int32_t pad; char name[64]; char last_error[256];
} wr_node_track;
typedef struct wr_sample { uint64_t at_us; wr_lsn lsn; } wr_sample;
typedef struct wr_engine {
    wr_config cfg; uint32_t n; int32_t primary; uint32_t top_tli; int32_t conflict[2];
    uint32_t wal_block_size; uint64_t wal_segment_size; uint32_t nsamples; uint32_t sample_head;
    wr_sample samples[64]; wr_sample latest; wr_node_track nodes[32];
} wr_engine;
typedef struct wr_sess {
    wr_timeline tl; uint32_t seed; int32_t need_unproven; int32_t tx_node; int32_t tx_primary;
    uint32_t tx_tli; int32_t pad; wr_lsn tx_lsn;
} wr_sess;
typedef struct wr_step {
    int32_t kind; int32_t node; uint32_t flags; uint32_t probe_mask; uint64_t deadline_us;
    int32_t status; int32_t reason; char msg[192];
} wr_step;
typedef struct wr_io {
    int32_t outcome; char sqlstate[6]; int16_t have_replay; wr_lsn replay; int32_t have_insert;
    uint32_t insert_tli; wr_lsn insert; wr_lsn flushed; uint64_t sent_us; const char *snapshot;
    const char *detail; int32_t deadline_hit; int32_t pad;
} wr_io;
typedef struct wr_op {
    int32_t kind, phase, node, on_primary, pinned; uint32_t run_flags; uint64_t start_us;
    uint32_t tried; int32_t waited, attempts, stale, as_write, probed; uint32_t probe_mask;
    int32_t reason, primary_path; uint32_t check_tli; wr_lsn check_need; wr_lsn cached_lsn;
    uint64_t deadline_us; uint64_t given_us; int32_t snap_state; int32_t status;
    char snapshot[1024]; char msg[192]; int32_t result_node; int32_t result_reason; wr_lsn result_lsn;
} wr_op;

int wr_lsn_parse(const char *text, wr_lsn *out);
char *wr_lsn_format(wr_lsn lsn, char buf[18]);
const char *wr_reason_name(int r);
const char *wr_node_state_name(int s);
uint32_t wr_node_id(const char *name);
size_t wr_token_write(const wr_timeline *t, const uint32_t *ids, size_t n, int64_t now_unix,
                      const void *key, size_t key_len, char *buf, size_t buflen);
int wr_token_read(const char *text, size_t text_len, int64_t now_unix, uint64_t now_us,
                  uint32_t ttl_s, const void *key, size_t key_len, const uint32_t *ids, size_t n,
                  wr_timeline *t, const char **msg);
void wr_timeline_init(wr_timeline *t);
void wr_timeline_merge(wr_timeline *t, const wr_timeline *other);
size_t wr_engine_sizeof(void);
size_t wr_engine_sizeof_type(const char *type);
int wr_engine_init(wr_engine *e, const wr_config *cfg, const char *const *names, size_t n);
int wr_probe_parse(const char *const values[7], wr_probe *out);
void wr_engine_probe_ok(wr_engine *e, int i, const wr_probe *p, uint64_t sent_us, uint64_t now_us,
                        int64_t now_unix_ms);
void wr_engine_node_failed(wr_engine *e, int i, uint64_t now_us, uint32_t rand, const char *why);
int wr_engine_probe_failed(wr_engine *e, int i, uint64_t sent_us, uint64_t deadline_us, int deadline_hit,
                           uint64_t now_us, uint32_t rand, const char *why);
void wr_engine_observe(wr_engine *e, int i, uint32_t tli, wr_lsn lsn, wr_lsn flushed, uint64_t sent_us);
void wr_engine_tick(wr_engine *e, uint64_t now_us);
uint32_t wr_engine_probes_due(const wr_engine *e, uint64_t now_us);
int wr_engine_may_connect(const wr_engine *e, int i, uint64_t now_us);
int wr_engine_state(const wr_engine *e, int i);
size_t wr_engine_status_json(const wr_engine *e, const char *const *names, const int *conns,
                             char *buf, size_t buflen);
size_t wr_engine_metrics_text(const wr_engine *e, const char *const *names, const int *conns,
                              char *buf, size_t buflen);
void wr_sess_init(wr_sess *s, uint32_t seed);
void wr_op_start(wr_op *op, int kind, uint64_t now_us);
void wr_op_next(wr_op *op, wr_sess *s, wr_engine *e, uint64_t now_us, wr_step *out);
void wr_op_feed(wr_op *op, wr_sess *s, wr_engine *e, const wr_io *io, uint64_t now_us, uint32_t rand);

typedef struct { long tv_sec; long tv_nsec; } wr_timespec;
int clock_gettime(int clk, wr_timespec *ts);

typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
int PKCS5_PBKDF2_HMAC(const char *pass, int passlen, const unsigned char *salt, int saltlen,
                      int iter, const EVP_MD *digest, int keylen, unsigned char *out);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len, const unsigned char *d,
                    size_t n, unsigned char *md, unsigned int *md_len);
int EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size,
               const EVP_MD *type, void *impl);
int RAND_bytes(unsigned char *buf, int num);
]]

local M = { C = {} }

-- The engine: $WALROUTER_ENGINE_LIB, then a path given to configure, then
-- the loader's search path (libwalrouter_engine.so.0 as installed).
local function load_engine(path)
  local tried = {}
  local candidates = { path or "", os.getenv("WALROUTER_ENGINE_LIB") or "", "walrouter_engine",
                       "libwalrouter_engine.so.0" }
  for _, p in ipairs(candidates) do
    if p ~= "" then
      local ok, lib = pcall(ffi.load, p)
      if ok then return lib end
      tried[#tried + 1] = tostring(lib)
    end
  end
  error("resty.walrouter: cannot load libwalrouter_engine (" .. table.concat(tried, "; ") ..
        "); set engine_lib in configure{} or WALROUTER_ENGINE_LIB", 3)
end

local engine, crypto
function M.engine(path)
  if engine then return engine end
  engine = load_engine(path)
  -- The declarations above must match the library's structs.
  local have_by_name = pcall(function() return engine.wr_engine_sizeof_type end)
  for _, t in ipairs { "wr_timeline", "wr_config", "wr_probe", "wr_node_track", "wr_engine", "wr_sess",
                       "wr_step", "wr_io", "wr_op" } do
    local want
    if have_by_name then want = tonumber(engine.wr_engine_sizeof_type(t))
    elseif t == "wr_engine" then want = tonumber(engine.wr_engine_sizeof()) end
    if want and want ~= ffi.sizeof(t) then
      engine = nil
      error(("resty.walrouter: %s is %d bytes in the engine library, %d declared: library and module "
             .. "versions differ"):format(t, want, ffi.sizeof(t)), 2)
    end
  end
  return engine
end

function M.crypto()
  if crypto then return crypto end
  for _, p in ipairs { "crypto", "libcrypto.so.3", "libcrypto.so.1.1" } do
    local ok, lib = pcall(ffi.load, p)
    if ok then crypto = lib; return lib end
  end
  -- nginx links OpenSSL already: its symbols are global.
  crypto = ffi.C
  return crypto
end

local ts = ffi.new("wr_timespec")
--- CLOCK_MONOTONIC in microseconds (as a Lua number: exact below 2^53).
function M.now_us()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

return M
