/*
 * walrouter_engine.h — the engine: every routing and safety rule of walrouter,
 * in pure C. No I/O, no libpq, no clock reads, no threads; the only
 * dependency is libcrypto (HMAC for tokens). Library: walrouter_engine.
 *
 * A driver (the libpq executor, lua-resty-walrouter through LuaJIT FFI, ...)
 * moves bytes and keeps time; the engine says what to run where and by when,
 * and what the outcome means. The model is a sans-I/O state machine:
 *
 *   wr_engine  what is known of every node: role, timeline, positions, lag,
 *              health; the elected primary. Fed with probe results and the
 *              positions statements observed.
 *   wr_sess    one user's session: what it must see next (its need).
 *   wr_op      one operation of a session (a read, a write, a transaction
 *              step): wr_op_next() gives the next step ("run on node N with
 *              these piggybacked queries before deadline D", "wait until T",
 *              "probe", "done"); wr_op_feed() takes back what happened.
 *
 * Conventions, for FFI and other languages:
 *   - Times are CLOCK_MONOTONIC microseconds (uint64_t) unless named _unix.
 *   - No function returns a struct by value, except the legacy
 *     wr_decide_read below; results come through out-pointers.
 *   - Public structs have a fixed layout; callers allocate them (sizes are
 *     given by wr_engine_sizeof() and friends for FFI sanity checks).
 *   - Randomness (jitter, spreading) is passed in.
 *   - Functions never allocate except where the comment says so.
 *   - Enums only grow at the end.
 */
#ifndef WALROUTER_ENGINE_H
#define WALROUTER_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from libwalrouter_engine.so and libwalrouter.so: exactly what this
 * header declares (the rest is built with -fvisibility=hidden). The engine's
 * structs are part of its ABI: a change of their layout changes the SONAME. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(SWIG)
#pragma GCC visibility push(default)
#endif

/* ---- LSN ------------------------------------------------------------- */

/* A WAL position: PostgreSQL's pg_lsn, 64 bits, text form "X/Y" (hex). */
typedef uint64_t wr_lsn;

#define WR_LSN_INVALID ((wr_lsn)0)
#define WR_LSN_BUFSIZE 18 /* "FFFFFFFF/FFFFFFFF" + NUL */

/* Parses "X/Y" (1-8 hex digits each side, nothing else). Returns 0 and sets
 * *out, or -1 for malformed text (*out untouched). */
int wr_lsn_parse(const char *text, wr_lsn *out);

/* Formats as PostgreSQL does ("16/B374D848"); returns buf. */
char *wr_lsn_format(wr_lsn lsn, char buf[WR_LSN_BUFSIZE]);

/* Where the last WAL record before `insert` ends, for a position read from
 * pg_current_wal_insert_lsn(). On a page boundary that function names the
 * first byte after the new page's header (24 bytes; 40 on a segment's first
 * page), which a replica never reports: its replay ends at the boundary.
 * block_size and segment_size are the server's wal_block_size and
 * wal_segment_size in bytes; with either 0 (not known), insert is returned. */
wr_lsn wr_lsn_record_end(wr_lsn insert, uint32_t block_size, uint64_t segment_size);

/* ---- session timeline ------------------------------------------------ */

/* What one session has seen and so what every later read must see.
 * need, need_tli: the lowest WAL position, on timeline need_tli, a node
 *            must have replayed to serve this session (its own committed
 *            writes, a token it resumed, or an upper bound of what an
 *            earlier read saw). need_tli 0: not known (a version 1 token,
 *            or a driver that reads no timelines); see wr_pos_covers.
 * last_node: the replica that served the previous read (an index into the
 *            engine's nodes), -1 when none is pending. Replay on one node
 *            only moves forward, so reading the same node again is
 *            monotonic for free; reading another node first needs an upper
 *            bound of what the last read saw (G2).
 * last_read_us: when that read ended. Any position observed on last_node,
 *            or on the primary, by a probe sent at or after this time is
 *            such an upper bound.
 * need_unknown: a write's outcome or position is unknown: it may have
 *            committed anywhere up to the primary's current position, so
 *            reads go to the primary until a fresh primary position
 *            settles it (G1, G5). */
typedef struct wr_timeline {
    wr_lsn need;
    int last_node;
    uint64_t last_read_us;
    uint32_t need_tli;
    int need_unknown;
} wr_timeline;

/* An empty timeline: need 0 on timeline 0, no last node, nothing unknown. */
void wr_timeline_init(wr_timeline *t);

/* A write (or a commit) became durable on the primary at `lsn`, observed
 * after every earlier read of this session ended: need = max(need, lsn) and
 * the pending last read is settled (last_node = -1). Leaves need_tli as is;
 * wr_timeline_wrote_at also sets the timeline and settles need_unknown. */
void wr_timeline_wrote(wr_timeline *t, wr_lsn lsn);
void wr_timeline_wrote_at(wr_timeline *t, uint32_t tli, wr_lsn lsn);

/* A read served by the primary, followed in the same round trip by the
 * primary's insert position `lsn`: same effect as wr_timeline_wrote. */
void wr_timeline_read_primary(wr_timeline *t, wr_lsn lsn);

/* A read served by replica `node` ended at `now_us`. The session now needs
 * max(need, known) where `known` is a position that read is proven to have
 * seen (the replica's checked or cached position), and last_node = node. */
void wr_timeline_read_replica(wr_timeline *t, int node, wr_lsn known,
                              uint64_t now_us);

/* Raise need to at least lsn (e.g. a freshness required by another token). */
void wr_timeline_require(wr_timeline *t, wr_lsn lsn);

/* Merges another timeline's need (a token required in addition): the later
 * timeline wins; on the same timeline the higher position; need_unknown is
 * or-ed. */
void wr_timeline_merge(wr_timeline *t, const wr_timeline *other);

/* ---- node view ---------------------------------------------------------- */

typedef enum wr_role {
    WR_ROLE_UNKNOWN = 0,
    WR_ROLE_PRIMARY = 1,
    WR_ROLE_REPLICA = 2
} wr_role;

/* What the router knows of one node, copied out of the engine for one
 * decision. */
typedef struct wr_node_view {
    wr_role role;
    int up;             /* nonzero: reachable and placed by a probe */
    int excluded;       /* nonzero: past the staleness limit, lag unknown,
                           or fenced (G4, G7); no reads */
    wr_lsn lsn;         /* replica: replay position, a lower bound;
                           primary: insert position */
    uint64_t lsn_at_us; /* when the probe that observed lsn was sent; 0 never */
    double rate;        /* replica replay rate in bytes/s while behind;
                           < 0 when unknown */
    uint32_t tli;       /* timeline of lsn; 0 unknown */
    uint32_t rtt_us;    /* smoothed round trip; 0 unknown */
} wr_node_view;

/* Whether a node at (tli, lsn) has replayed everything up to (need_tli,
 * need): lsn >= need on the same timeline. A 0 timeline on either side
 * matches any (legacy callers that track no timelines); the session engine
 * moves a need from an older timeline onto the primary's before it asks. */
int wr_pos_covers(uint32_t tli, wr_lsn lsn, uint32_t need_tli, wr_lsn need);

/* Upper bound of what the session's last read saw, when one is known:
 * returns 1 and sets *out when last_node is -1 (then *out = t->need), or a
 * probe of last_node or of the primary was sent at/after last_read_us;
 * returns 0 when unknown. */
int wr_timeline_upper(const wr_timeline *t, const wr_node_view *nodes,
                      size_t n, wr_lsn *out);

/* ---- read decision ------------------------------------------------------ */

typedef enum wr_action {
    WR_ACT_CACHED = 0,  /* read on `node`: its known position covers `need` */
    WR_ACT_CHECK = 1,   /* read on `node` with pg_last_wal_replay_lsn()
                           pipelined in front; use the rows only if that
                           position >= `need` */
    WR_ACT_WAIT = 2,    /* sleep `wait_us`, then decide again with a fresh
                           tried mask */
    WR_ACT_PRIMARY = 3  /* read on the primary (`node`, or -1 if unknown) */
} wr_action;

/* Why a statement went where it went. Append-only. Also the metric labels. */
typedef enum wr_reason {
    WR_REASON_NONE = 0,
    WR_REASON_REPLICA_CACHED = 1,     /* replica whose known position covered the need */
    WR_REASON_REPLICA_CHECKED = 2,    /* replica after a piggybacked position check */
    WR_REASON_REPLICA_OTHER = 3,      /* another replica after the first was behind */
    WR_REASON_REPLICA_WAITED = 4,     /* a replica after waiting for it to catch up */
    WR_REASON_PRIMARY_BUDGET = 5,     /* primary: no replica caught up within the budget */
    WR_REASON_PRIMARY_LAGGING = 6,    /* primary: every replica lags and cannot catch up in time, or is past the limit */
    WR_REASON_PRIMARY_NO_REPLICA = 7, /* primary: no replica is up */
    WR_REASON_PRIMARY_FORCED = 8,     /* primary: the caller asked for it */
    WR_REASON_WRITE = 9,              /* a write: always the primary */
    WR_REASON_TRANSACTION = 10,       /* inside an explicit transaction */
    WR_REASON_PRIMARY_READ_ONLY = 11, /* replica refused it (25006): re-run on the primary */
    WR_REASON_PRIMARY_UNKNOWN = 12    /* primary: an earlier write's outcome is unknown */
} wr_reason;
#define WR_REASON_COUNT 13

/* Short stable name of a reason ("replica_cached", ...); never NULL. */
const char *wr_reason_name(wr_reason r);

/* How a read picks among replicas that qualify. */
typedef enum wr_choice_mode {
    WR_CHOOSE_SPREAD = 0,  /* spread sessions by their seed (default) */
    WR_CHOOSE_NEAREST = 1  /* the lowest measured round trip */
} wr_choice_mode;

typedef struct wr_policy {
    uint64_t budget_us;         /* how long a read may retry replicas */
    uint64_t retry_interval_us; /* wait between re-checks */
    uint32_t seed;              /* spreads sessions over fresh replicas */
    uint32_t choose;            /* wr_choice_mode */
} wr_policy;

typedef struct wr_choice {
    wr_action action;
    int node;          /* node to read on; -1 for WAIT, or PRIMARY with none */
    wr_lsn need;       /* position the chosen replica must have (incl. G2) */
    wr_reason reason;  /* for CACHED/CHECK/PRIMARY */
    uint64_t wait_us;  /* for WAIT */
} wr_choice;

/* Chooses where one read goes.
 *   t          the session's timeline
 *   nodes, n   current view of every node (n <= 32)
 *   start_us   when this read began (its retries share one budget)
 *   now_us     now
 *   tried      bit i set: replica i was tried during this read and was
 *              behind, failed or ran out of time (not chosen again, cached
 *              or checked, before a WAIT)
 *   waited     nonzero once this read has waited at least once
 * Rules, in order:
 *   1. a replica (up, not excluded) whose known position covers its need:
 *      CACHED; the last node first, else one picked by the policy (seed, or
 *      nearest) among those that qualify. A replica's need is t->need for
 *      last_node, and max(t->need, upper) for any other one; when the upper
 *      bound is unknown only last_node can qualify. Timelines must match
 *      (wr_pos_covers).
 *   2. an untried replica that may qualify: CHECK, the one with the highest
 *      known lsn (nearest mode: the lowest round trip).
 *   3. time left in the budget and some replica can catch up in it (rate
 *      unknown, or (need - lsn) / rate within the time left): WAIT
 *      min(retry_interval, time left).
 *   4. PRIMARY, reason NO_REPLICA (none up and usable), LAGGING (none could
 *      catch up in time, or all excluded) or BUDGET (budget spent).
 * Replica reasons: CHECKED for a first check, OTHER when an earlier replica
 * of this read was behind, WAITED after a wait. */
wr_choice wr_decide_read(const wr_timeline *t, const wr_node_view *nodes,
                         size_t n, uint64_t start_us, uint64_t now_us,
                         uint32_t tried, int waited, const wr_policy *p);
/* The same through an out-pointer (for FFI). */
void wr_decide_read_into(const wr_timeline *t, const wr_node_view *nodes,
                         size_t n, uint64_t start_us, uint64_t now_us,
                         uint32_t tried, int waited, const wr_policy *p,
                         wr_choice *out);

/* ---- session token ------------------------------------------------------ */

/* Text form of a timeline for a cookie or a header: versioned, compact,
 * cookie-safe ([0-9A-Za-z._-]), optionally signed with HMAC-SHA256.
 *   version 2: "2.<tli hex>.<need hex>.<node id hex or ->.<flags hex>.<issued unix s hex>[.<sig>]"
 *              flags bit 0: need_unknown. The node id is wr_node_id() of
 *              the node's name, so app servers whose DSNs list the nodes
 *              in other orders agree on it.
 *   version 1: "1.<need hex>.<last node index or ->.<issued hex>[.<sig>]"
 *              still decodes: timeline 0; its node index means nothing
 *              elsewhere, so the read stays pending on no known node (-2),
 *              as does a version 2 node id no node here has. */
#define WR_TOKEN_BUFSIZE 160

/* Stable identity of a node from its name ("host:port", host lowercased
 * before hashing): FNV-1a 32 bit. Never 0. */
uint32_t wr_node_id(const char *name);

typedef enum wr_token_result {
    WR_TOKEN_OK = 0,
    WR_TOKEN_EXPIRED = 1,   /* well formed, genuine, older than ttl: *t is
                               an empty timeline */
    WR_TOKEN_MALFORMED = 2,
    WR_TOKEN_BAD_VERSION = 3,
    WR_TOKEN_BAD_SIGNATURE = 4, /* missing, wrong or unexpected signature */
    WR_TOKEN_FUTURE = 5     /* issued later than now + 300 s of clock skew */
} wr_token_result;

/* Version 2. Encodes t, naming last_node by ids[last_node] (ids: the
 * engine's node ids, n of them). With a key (key_len > 0) appends the
 * signature. Returns the length written (without NUL), or 0 if buf is too
 * small. */
size_t wr_token_write(const wr_timeline *t, const uint32_t *ids, size_t n,
                      int64_t now_unix, const void *key, size_t key_len,
                      char *buf, size_t buflen);

/* Decodes untrusted text (version 2 or 1), strictly: text_len bytes exactly
 * (a NUL inside is malformed). With a key, a signature is required and
 * checked in constant time; without one, a signed token is accepted
 * unchecked. ttl_s 0: never expires. The last node is mapped back through
 * ids (an id no node has: -2, pending on no known node). On OK, *t is set, with
 * last_read_us = now_us (conservative: any later probe bounds it). On error
 * *t is untouched and, when msg is given, a static message says why. */
wr_token_result wr_token_read(const char *text, size_t text_len,
                              int64_t now_unix, uint64_t now_us,
                              uint32_t ttl_s, const void *key, size_t key_len,
                              const uint32_t *ids, size_t n, wr_timeline *t,
                              const char **msg);

/* Legacy (version 1, by node index); kept for the 0.1 ABI. */
size_t wr_token_encode(const wr_timeline *t, int64_t now_unix,
                       const void *key, size_t key_len,
                       char *buf, size_t buflen);
wr_token_result wr_token_decode(const char *text, int64_t now_unix,
                                uint64_t now_us, uint32_t ttl_s,
                                const void *key, size_t key_len,
                                size_t n_nodes, wr_timeline *t,
                                const char **msg);

/* ========================================================================
 * Node state and the primary election
 * ======================================================================== */

#define WR_ENGINE_MAX_NODES 32
#define WR_ENGINE_SAMPLES 64

/* States a node is reported in. Append-only. */
typedef enum wr_node_state {
    WR_STATE_UNKNOWN = 0,
    WR_STATE_UP = 1,          /* the primary, reachable */
    WR_STATE_STREAMING = 2,   /* replica, caught up or within a small lag */
    WR_STATE_CATCHING_UP = 3, /* replica, behind but replaying */
    WR_STATE_LAGGING = 4,     /* replica, past a staleness limit, or its lag
                                 is not known: no reads */
    WR_STATE_DOWN = 5,        /* unreachable */
    WR_STATE_FENCED = 6       /* claims primary on an older timeline than
                                 another, or cannot be ordered with another
                                 claimant: no reads, no writes */
} wr_node_state;

const char *wr_node_state_name(wr_node_state s); /* "streaming", ... */

/* Engine configuration. {0} means documented defaults (wr_config_resolve). */
typedef struct wr_config {
    uint64_t budget_us;            /* 0: 200 ms. A read's whole budget */
    uint64_t retry_interval_us;    /* 0: 10 ms */
    uint64_t statement_timeout_us; /* 0: 30 s. A statement on the primary */
    uint64_t refresh_interval_us;  /* 0: 1 s. Probe period of every node */
    uint64_t max_lag_bytes;        /* 0: 64 MiB; UINT64_MAX: no limit */
    uint64_t max_lag_us;           /* 0: 10 s;  UINT64_MAX: no limit */
    uint64_t connect_timeout_us;   /* 0: 5 s */
    uint32_t choose;               /* wr_choice_mode */
    uint32_t pad;
} wr_config;

#define WR_DEFAULT_BUDGET_US 200000u
#define WR_DEFAULT_RETRY_US 10000u
#define WR_DEFAULT_STATEMENT_TIMEOUT_US 30000000u
#define WR_DEFAULT_REFRESH_US 1000000u
#define WR_DEFAULT_MAX_LAG_BYTES (64u * 1024u * 1024u)
#define WR_DEFAULT_MAX_LAG_US 10000000u
#define WR_DEFAULT_CONNECT_TIMEOUT_US 5000000u
#define WR_NO_LIMIT UINT64_MAX

/* Copies in (NULL: all defaults) with every zero field replaced. */
void wr_config_resolve(const wr_config *in, wr_config *out);

/* What one probe of a node saw. The driver runs WR_SQL_PROBE and parses
 * its row with wr_probe_parse (or fills this itself). */
typedef struct wr_probe {
    int32_t in_recovery;     /* 1 replica, 0 primary */
    uint32_t tli;            /* primary: its insert timeline; replica: the
                                timeline its WAL receiver streams, or of
                                its last restartpoint; 0 unknown */
    wr_lsn lsn;              /* primary: insert; replica: replay */
    wr_lsn flushed;          /* primary: flush position; replica: 0 */
    wr_lsn received;         /* replica: receive position; 0 unknown */
    int32_t receiver;        /* replica: 1 streaming, 0 not, -1 unknown */
    uint32_t wal_block_size; /* 0 unknown */
    uint64_t wal_segment_size;
} wr_probe;

/* The probe: one row, seven text columns. */
#define WR_SQL_PROBE                                                              \
    "SELECT pg_is_in_recovery(),"                                                 \
    " CASE WHEN pg_is_in_recovery()"                                              \
    "  THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver),"            \
    "                (SELECT timeline_id FROM pg_control_checkpoint()))"          \
    "  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int END," \
    " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"                \
    "  ELSE pg_current_wal_insert_lsn() END,"                                     \
    " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()"               \
    "  ELSE pg_current_wal_flush_lsn() END,"                                      \
    " CASE WHEN NOT pg_is_in_recovery() THEN NULL"                                \
    "  ELSE coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false) END," \
    " current_setting('wal_block_size'),"                                         \
    " pg_size_bytes(current_setting('wal_segment_size'))"

/* Parses the probe's row (values[i] NULL for SQL NULL, text form). Returns
 * 0, or -1 when it is malformed (*out untouched). */
int wr_probe_parse(const char *const values[7], wr_probe *out);

/* A replica's position check, pipelined in front of a read. */
#define WR_SQL_REPLAY_LSN "SELECT pg_last_wal_replay_lsn()"
/* After a Sync behind a statement on the primary: insert position (past
 * the statement's commit record), flush position, insert timeline. */
#define WR_SQL_INSERT_POS                                                         \
    "SELECT pg_current_wal_insert_lsn(), pg_current_wal_flush_lsn(),"             \
    " ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int"
/* G2 across a move from a replica to the primary: the replica's snapshot,
 * then, in front of the read on the primary (no Sync between them), a check
 * that fails (so the read is never executed) while the primary still shows
 * as running a transaction the replica showed finished. $1: the snapshot. */
#define WR_SQL_SNAPSHOT "SELECT pg_current_snapshot()::text"
#define WR_SQL_SNAPSHOT_CHECK                                                     \
    "SELECT 1 / (NOT EXISTS (SELECT FROM pg_snapshot_xip(pg_current_snapshot()) x" \
    " WHERE pg_visible_in_snapshot(x, $1::pg_snapshot))"                          \
    " AND (SELECT pg_snapshot_xmax($1::pg_snapshot)::text::numeric"               \
    "  - pg_snapshot_xmax(p)::text::numeric <= (SELECT count(*)"                  \
    "  FROM pg_snapshot_xip($1::pg_snapshot) x WHERE x >= pg_snapshot_xmax(p))"   \
    " FROM pg_current_snapshot() p))::int"
/* Without the replica's snapshot (the replica is unreachable): fails while
 * any commit on the primary waits for a synchronous standby, the only time a
 * committed transaction is invisible there. Needs pg_read_all_stats (or
 * pg_monitor) to see other users' sessions. */
#define WR_SQL_SYNCREP_CHECK                                                      \
    "SELECT 1 / (NOT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event = 'SyncRep'))::int"
/* (The second half: a transaction the replica shows finished may be at or
 * past the primary's xmax, unlisted there, e.g. a commit waiting for its
 * synchronous standby: every xid in [primary xmax, replica xmax) must be one
 * the replica shows running.) */

typedef struct wr_node_track {
    uint32_t id;            /* wr_node_id(name) */
    int32_t role;           /* wr_role */
    uint32_t tli;           /* timeline of lsn; 0 unknown */
    int32_t up;             /* reachable (a connection or probe worked) */
    int32_t placed;         /* a probe measured it since it came back */
    int32_t fenced;         /* see WR_STATE_FENCED */
    int32_t excluded;       /* over a lag limit, or lag unknown */
    int32_t receiver;       /* replica: WAL receiver streaming 1/0/-1 */
    uint32_t backoff_ms;    /* current reconnect backoff */
    uint32_t rtt_us;        /* smoothed round trip of probes; 0 unknown */
    uint64_t down_until_us; /* no connect attempt before this */
    wr_lsn lsn;             /* replica: replay; primary: insert */
    uint64_t lsn_at_us;     /* when the observation of lsn was sent */
    wr_lsn flushed;         /* primary: flush position */
    wr_lsn rate_lsn;        /* start of the current rate window */
    uint64_t rate_at_us;
    double rate;            /* replay bytes/s while behind; -1 unknown */
    int64_t lag_bytes;      /* against the primary's flush; -1 unknown */
    int64_t lag_us;         /* time lag against the primary; -1 unknown */
    uint64_t covered_at_us; /* replica: its replay covers everything the
                               primary had at this time (a sample); 0 unknown.
                               now - covered_at_us bounds its staleness */
    uint64_t probed_us;     /* when the last successful probe was sent; 0 */
    int64_t last_check_unix_ms;
    uint64_t served[WR_REASON_COUNT];
    uint64_t errors;
    int32_t reported;       /* last state announced (wr_engine_changes) */
    int32_t pad;
    char name[64];          /* as given to wr_engine_init, for messages */
    char last_error[256];
} wr_node_track;

typedef struct wr_sample {
    uint64_t at_us;
    wr_lsn lsn;
} wr_sample;

typedef struct wr_engine {
    wr_config cfg;
    uint32_t n;
    int32_t primary;         /* elected primary, -1 none */
    uint32_t top_tli;        /* highest timeline a primary was seen on */
    int32_t conflict[2];     /* two primary claimants that cannot be
                                ordered; -1 -1 when none */
    uint32_t wal_block_size;
    uint64_t wal_segment_size;
    uint32_t nsamples;       /* primary positions over time (time lag): */
    uint32_t sample_head;    /* a ring of exact observations at least
                                max_lag/32 apart, and the latest one */
    wr_sample samples[WR_ENGINE_SAMPLES];
    wr_sample latest;
    wr_node_track nodes[WR_ENGINE_MAX_NODES];
} wr_engine;

size_t wr_engine_sizeof(void);
/* sizeof of a public struct by its name ("wr_op", "wr_io", "wr_step",
 * "wr_sess", "wr_engine", "wr_probe", "wr_config", "wr_timeline", ...), for
 * FFI declarations to check themselves against; 0 for a name not known. */
size_t wr_engine_sizeof_type(const char *type);

/* Sets up n nodes named names[i] (for identities; "host:port"). Returns 0,
 * or -1 when n is 0 or above WR_ENGINE_MAX_NODES. */
int wr_engine_init(wr_engine *e, const wr_config *cfg, const char *const *names, size_t n);

/* A probe of node i sent at sent_us came back at now_us with p. Updates
 * role, timeline, positions, rate, lag, places the node, and runs the
 * election. */
void wr_engine_probe_ok(wr_engine *e, int i, const wr_probe *p, uint64_t sent_us,
                        uint64_t now_us, int64_t now_unix_ms);

/* Node i could not be reached, or its connection failed or timed out: it is
 * down, with a reconnect backoff of 50 ms doubling to 5 s, scaled by
 * 75 %..125 % from rand (any 32-bit random number). It must be probed again
 * (placed) before it serves reads. why: for status (copied, truncated). */
void wr_engine_node_failed(wr_engine *e, int i, uint64_t now_us, uint32_t rand,
                           const char *why);

/* A probe of node i, sent at sent_us with deadline_us, failed at now_us;
 * deadline_hit: the deadline passed before an answer (not an error of the
 * node). The node is failed as by wr_engine_node_failed, unless the
 * deadline cut the probe off with less than half of the connect timeout
 * given: a probe started by a read has the read's short deadline, and a
 * login slowed by a loaded machine is no proof that the node is down. Such
 * a probe is ignored, and the node is due for a probe again at once
 * (wr_engine_probes_due). Returns 1 when the node was failed, else 0. */
int wr_engine_probe_failed(wr_engine *e, int i, uint64_t sent_us, uint64_t deadline_us,
                           int deadline_hit, uint64_t now_us, uint32_t rand, const char *why);

/* A statement saw node i at (tli, lsn) (a replica's checked replay
 * position; the primary's insert position after a statement, with its
 * flush position, or 0). Keeps the highest observation; feeds the rate and
 * the primary's samples. */
void wr_engine_observe(wr_engine *e, int i, uint32_t tli, wr_lsn lsn, wr_lsn flushed,
                       uint64_t sent_us);

/* Recomputes lag, exclusion (with hysteresis: out above a limit, back in
 * under half of it; unknown lag is out) and states at now_us. Called by
 * probe_ok/observe; drivers call it before reading views after time passed. */
void wr_engine_tick(wr_engine *e, uint64_t now_us);

/* Every node's view for wr_decide_read. Returns the elected primary or -1. */
int wr_engine_views(const wr_engine *e, uint64_t now_us, wr_node_view *views);

/* The node writes go to: 0 and *node set; or -1 with *node = -1 and a
 * message in msg (none known / two claimants that cannot be ordered,
 * naming both with names[]). */
int wr_engine_write_target(const wr_engine *e, const char *const *names, int *node,
                           char *msg, size_t msglen);

/* Which nodes a driver should probe now (bit i): never probed or not placed
 * and out of backoff, or last probe older than refresh_interval. */
uint32_t wr_engine_probes_due(const wr_engine *e, uint64_t now_us);

/* Whether a connection attempt to node i is allowed now (not in backoff). */
int wr_engine_may_connect(const wr_engine *e, int i, uint64_t now_us);

/* The state node i is reported in. */
wr_node_state wr_engine_state(const wr_engine *e, int i);

/* Counts a statement served by node i for a reason, or an error. */
void wr_engine_count(wr_engine *e, int i, wr_reason why, int failed);

/* State changes since the last call: fills up to cap (node, from, to)
 * triples into out (3 ints each) and records the new states as reported.
 * Returns how many. */
size_t wr_engine_changes(wr_engine *e, int *out, size_t cap);

/* The primary's position a replica must reach to be caught up (its flush
 * position if known, else insert); 0 when no primary is known. */
wr_lsn wr_engine_sendable(const wr_engine *e);

/* Status as a JSON array and as Prometheus text, from the engine alone:
 * names[i] per node, conns[2*i] in use / conns[2*i+1] idle (or NULL).
 * Writes at most buflen bytes including the NUL; returns the length the
 * whole text needs (without NUL), like snprintf. */
size_t wr_engine_status_json(const wr_engine *e, const char *const *names, const int *conns,
                             char *buf, size_t buflen);
size_t wr_engine_metrics_text(const wr_engine *e, const char *const *names, const int *conns,
                              char *buf, size_t buflen);

/* ========================================================================
 * The session engine
 * ======================================================================== */

typedef struct wr_sess {
    wr_timeline tl;
    uint32_t seed;         /* spreads this session over replicas */
    int32_t need_unproven; /* need came from a token: may lie beyond the
                              primary, clamped lazily */
    int32_t tx_node;       /* node of the open transaction, -1 none */
    int32_t tx_primary;    /* it runs on the primary */
    uint32_t tx_tli;       /* read-only on a replica: position proven at BEGIN */
    int32_t pad;
    wr_lsn tx_lsn;
} wr_sess;

void wr_sess_init(wr_sess *s, uint32_t seed);

/* What a session asks for. */
typedef enum wr_op_kind {
    WR_OP_READ = 0,         /* a read: a fresh replica, else the primary */
    WR_OP_READ_PRIMARY = 1, /* a read on the primary (the caller asked) */
    WR_OP_WRITE = 2,        /* a statement on the primary */
    WR_OP_BEGIN = 3,        /* BEGIN on the primary; the connection is kept */
    WR_OP_BEGIN_READ_ONLY = 4, /* BEGIN READ ONLY on a fresh replica */
    WR_OP_TX = 5,           /* a statement inside the open transaction */
    WR_OP_COMMIT = 6,
    WR_OP_ROLLBACK = 7
} wr_op_kind;

/* What the driver does next. */
typedef enum wr_step_kind {
    WR_STEP_RUN = 0,     /* run the statement on `node` before `deadline_us`,
                            with the piggybacked queries `flags` names */
    WR_STEP_WAIT = 1,    /* sleep until `deadline_us`, then wr_op_next */
    WR_STEP_PROBE = 2,   /* probe the nodes in `probe_mask` (report each
                            through wr_engine_probe_ok/_node_failed) within
                            `deadline_us`, then wr_op_next; with flags
                            WR_PROBE_FORCE also nodes in their backoff (the
                            operation needs that node) */
    WR_STEP_SNAPSHOT = 3,/* run WR_SQL_SNAPSHOT on `node` before
                            `deadline_us`; feed the text as snapshot */
    WR_STEP_DONE = 4     /* finished: `status`, `reason`, `node` */
} wr_step_kind;

/* Piggybacked queries of a RUN step, in pipeline order:
 *   CHECK_REPLAY   WR_SQL_REPLAY_LSN in front (a Sync after it when the
 *                  statement is a BEGIN: KEEP); feed its position
 *   SNAPSHOT_CHECK WR_SQL_SNAPSHOT_CHECK($1 = wr_op.snapshot) in front, no
 *                  Sync between; its failure means the statement never ran
 *   (the statement)
 *   INSERT_POS     a Sync, then WR_SQL_INSERT_POS; feed its position
 *   KEEP           the connection stays with the session (a transaction)
 *   PINNED         run on the session's transaction connection */
#define WR_RUN_CHECK_REPLAY 1u
#define WR_RUN_SNAPSHOT_CHECK 2u
#define WR_RUN_INSERT_POS 4u
#define WR_RUN_KEEP 8u
#define WR_RUN_PINNED 16u
#define WR_RUN_SYNCREP_CHECK 32u /* in place of SNAPSHOT_CHECK when the replica's
                                    snapshot could not be had: fails while any
                                    commit waits for a synchronous standby */
#define WR_PROBE_FORCE 1u

/* Engine-level outcomes (a superset of the executor's wr_status codes,
 * same values). */
#define WR_E_OK 0
#define WR_E_CONNECT 3
#define WR_E_SQL 4
#define WR_E_UNKNOWN_OUTCOME 5
#define WR_E_NO_PRIMARY 6
#define WR_E_STATE 7
#define WR_E_INTERNAL 9
#define WR_E_TIMEOUT 10
#define WR_E_SPLIT_BRAIN 11
#define WR_E_INTERRUPTED 12

typedef struct wr_step {
    int32_t kind;          /* wr_step_kind */
    int32_t node;
    uint32_t flags;        /* WR_RUN_* */
    uint32_t probe_mask;
    uint64_t deadline_us;
    int32_t status;        /* DONE: WR_E_* */
    int32_t reason;        /* wr_reason for RUN and DONE */
    char msg[192];         /* DONE with an error: why (no SQL, no secrets) */
} wr_step;

/* What happened to a RUN or SNAPSHOT step. */
typedef enum wr_io_outcome {
    WR_IO_OK = 0,         /* every result arrived; the statement succeeded */
    WR_IO_SQL_ERROR = 1,  /* the statement failed: sqlstate */
    WR_IO_NOT_SENT = 2,   /* no connection, or it failed before anything
                             was sent: nothing ran */
    WR_IO_LOST = 3,       /* the connection failed after sending */
    WR_IO_TIMEOUT = 4,    /* the deadline passed after sending (a cancel
                             was sent; the connection was dropped or the
                             server has not answered) */
    WR_IO_STALE = 5,      /* a cached prepared statement was refused
                             before it executed: nothing ran */
    WR_IO_CHECK_FAILED = 6, /* SNAPSHOT_CHECK failed: the statement did not run */
    WR_IO_CANCELED = 7,   /* the server canceled it at our request (57014
                             after a timeout): it did not commit */
    WR_IO_BUSY = 8,       /* no pooled connection to the node was free
                             before the deadline: nothing ran, and the node
                             is not to blame */
    WR_IO_INTERRUPTED = 9 /* the caller asked to stop; a cancel was sent;
                             sqlstate "57014" when the server confirmed it
                             (the statement did not complete) */
} wr_io_outcome;

typedef struct wr_io {
    int32_t outcome;        /* wr_io_outcome */
    char sqlstate[6];
    int16_t have_replay;    /* CHECK_REPLAY: replay parsed */
    wr_lsn replay;
    int32_t have_insert;    /* INSERT_POS: parsed */
    uint32_t insert_tli;
    wr_lsn insert;          /* as read (the engine maps a page boundary) */
    wr_lsn flushed;
    uint64_t sent_us;       /* when the round trip was sent */
    const char *snapshot;   /* SNAPSHOT: the text (copied by the engine) */
    const char *detail;     /* the connection's error, for messages */
    int32_t deadline_hit;   /* NOT_SENT/TIMEOUT: it was the step's deadline
                               that passed, not an error of the node */
    int32_t pad;
} wr_io;

typedef struct wr_op {
    int32_t kind;           /* wr_op_kind */
    int32_t phase;          /* internal */
    int32_t node;           /* node of the last RUN/SNAPSHOT step */
    int32_t on_primary;     /* the last RUN went to the primary */
    int32_t pinned;         /* the last RUN was on the transaction's connection */
    uint32_t run_flags;     /* WR_RUN_* of the last RUN */
    uint64_t start_us;
    uint32_t tried;         /* replicas behind or failed during this read */
    int32_t waited;
    int32_t attempts;       /* primary attempts (re-sent only when nothing ran) */
    int32_t stale;          /* stale-plan re-runs */
    int32_t as_write;       /* the statement may write (G5) */
    int32_t probed;         /* rediscovery done during this op */
    uint32_t probe_mask;    /* nodes to probe before the next decision */
    int32_t reason;         /* wr_reason of the current route */
    int32_t primary_path;   /* the read goes to the primary from now on */
    uint32_t check_tli;
    wr_lsn check_need;      /* CHECK_REPLAY: the rows count only if replay covers this */
    wr_lsn cached_lsn;      /* CACHED: the position that made the replica fresh */
    uint64_t deadline_us;   /* of the last RUN */
    uint64_t given_us;      /* when the last RUN/SNAPSHOT was given */
    int32_t snap_state;     /* 0 none, 1 asked, 2 have, 3 unavailable */
    int32_t status;         /* DONE: WR_E_* */
    char snapshot[1024];    /* the replica's snapshot for SNAPSHOT_CHECK */
    char msg[192];          /* DONE with an error: why */
    int32_t result_node;    /* DONE: node that served it */
    int32_t result_reason;  /* DONE: why that node */
    wr_lsn result_lsn;      /* DONE: position tied to the result */
} wr_op;

/* Starts one operation of session s at now_us. */
void wr_op_start(wr_op *op, wr_op_kind kind, uint64_t now_us);

/* The next step, from the session, the engine's node state and the time. */
void wr_op_next(wr_op *op, wr_sess *s, wr_engine *e, uint64_t now_us, wr_step *out);

/* What happened to the RUN/SNAPSHOT step last given. Updates the session
 * and the engine; call wr_op_next for what follows. */
void wr_op_feed(wr_op *op, wr_sess *s, wr_engine *e, const wr_io *io, uint64_t now_us,
                uint32_t rand);

#if (defined(__GNUC__) || defined(__clang__)) && !defined(SWIG)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif
#endif /* WALROUTER_ENGINE_H */
