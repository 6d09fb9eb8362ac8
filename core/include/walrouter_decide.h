/*
 * walrouter_decide.h — the decision core: LSNs, session timelines, node views,
 * the read-routing policy and session tokens.
 *
 * No I/O, no libpq, no allocation, no clock reads: every function takes the
 * time it needs as an argument, so each routing rule can be unit-tested with
 * a fake clock and driven by any driver (an OpenResty app doing its own I/O).
 */
#ifndef WALROUTER_DECIDE_H
#define WALROUTER_DECIDE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
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
 * need:      the lowest WAL position a node must have replayed to serve this
 *            session (its own committed writes, a token it resumed, or an
 *            upper bound of what an earlier read saw).
 * last_node: the replica that served the previous read, -1 when none is
 *            pending. Replay on one node only moves forward, so reading the
 *            same node again is monotonic for free; reading another node
 *            first needs an upper bound of what the last read saw (G2).
 * last_read_us: when that read ended (monotonic clock, microseconds). Any
 *            position observed on last_node, or on the primary, by a probe
 *            sent at or after this time is such an upper bound. */
typedef struct wr_timeline {
    wr_lsn need;
    int last_node;
    uint64_t last_read_us;
} wr_timeline;

/* An empty timeline: need 0, no last node. */
void wr_timeline_init(wr_timeline *t);

/* A write (or a commit) became durable on the primary at `lsn`, observed
 * after every earlier read of this session ended: need = max(need, lsn) and
 * the pending last read is settled (last_node = -1). */
void wr_timeline_wrote(wr_timeline *t, wr_lsn lsn);

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

/* ---- node view ---------------------------------------------------------- */

typedef enum wr_role {
    WR_ROLE_UNKNOWN = 0,
    WR_ROLE_PRIMARY = 1,
    WR_ROLE_REPLICA = 2
} wr_role;

/* What the router knows of one node, copied out of the cluster's shared
 * state for one decision. */
typedef struct wr_node_view {
    wr_role role;
    int up;             /* nonzero: reachable, as far as we know */
    int excluded;       /* nonzero: past the staleness limit (G4); no reads */
    wr_lsn lsn;         /* replica: replay position, a lower bound;
                           primary: insert position */
    uint64_t lsn_at_us; /* when the probe that observed lsn was sent; 0 never */
    double rate;        /* replica replay rate in bytes/s while behind;
                           < 0 when unknown */
} wr_node_view;

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
    WR_REASON_PRIMARY_READ_ONLY = 11  /* replica refused it (25006): re-run on the primary */
} wr_reason;
#define WR_REASON_COUNT 12

/* Short stable name of a reason ("replica_cached", ...); never NULL. */
const char *wr_reason_name(wr_reason r);

typedef struct wr_policy {
    uint64_t budget_us;         /* how long a read may retry replicas */
    uint64_t retry_interval_us; /* wait between re-checks */
    uint32_t seed;              /* spreads sessions over fresh replicas */
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
 *   tried      bit i set: replica i was checked during this read and was
 *              behind (do not CHECK it again before a WAIT)
 *   waited     nonzero once this read has waited at least once
 * Rules, in order:
 *   1. a replica (up, not excluded) whose known lsn covers its need: CACHED;
 *      the last node first, else one picked by seed among those that qualify.
 *      A replica's need is t->need for last_node, and max(t->need, upper)
 *      for any other one; when the upper bound is unknown only last_node
 *      can qualify.
 *   2. an untried replica that may qualify: CHECK, the one with the highest
 *      known lsn.
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

/* ---- session token ------------------------------------------------------ */

/* Text form of a timeline for a cookie or a header: versioned, compact,
 * cookie-safe ([0-9A-Za-z._-]), optionally signed with HMAC-SHA256.
 *   "1.<need hex>.<last node>.<issued unix s hex>[.<base64url sig>]"
 * (last node is "-" when none). */
#define WR_TOKEN_BUFSIZE 128

/* Encodes; with a key (key_len > 0) appends the signature. Returns the
 * length written (without NUL), or 0 if buf is too small. */
size_t wr_token_encode(const wr_timeline *t, int64_t now_unix,
                       const void *key, size_t key_len,
                       char *buf, size_t buflen);

typedef enum wr_token_result {
    WR_TOKEN_OK = 0,
    WR_TOKEN_EXPIRED = 1,   /* well formed, genuine, older than ttl: *t is
                               an empty timeline */
    WR_TOKEN_MALFORMED = 2,
    WR_TOKEN_BAD_VERSION = 3,
    WR_TOKEN_BAD_SIGNATURE = 4, /* missing, wrong or unexpected signature */
    WR_TOKEN_FUTURE = 5     /* issued later than now + 300 s of clock skew */
} wr_token_result;

/* Decodes untrusted text. With a key, a signature is required and checked in
 * constant time; without one, a signed token is accepted unchecked. ttl_s 0:
 * never expires. last_node >= n_nodes is dropped (-1). On OK, *t is set,
 * with last_read_us = now_us (conservative: any later probe bounds it). On
 * error *t is untouched and, when msg is given, a static message says why. */
wr_token_result wr_token_decode(const char *text, int64_t now_unix,
                                uint64_t now_us, uint32_t ttl_s,
                                const void *key, size_t key_len,
                                size_t n_nodes, wr_timeline *t,
                                const char **msg);

#ifdef __cplusplus
}
#endif
#endif /* WALROUTER_DECIDE_H */
