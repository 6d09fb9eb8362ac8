/*
 * internal.h — the executor's private types: errors, DSN, pooled connections
 * with their statement caches, per-node shared state, the cluster and the
 * session. Only core/src includes this.
 */
#ifndef WR_INTERNAL_H
#define WR_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "walrouter.h"

#define WR_MAX_NODES 32
#define WR_MSG_SIZE 512

/* ---- error.c: the one place that fills an error -------------------------- */

typedef struct wr_err {
    wr_status code;
    int node;
    char sqlstate[6];
    char msg[WR_MSG_SIZE];
} wr_err;

void wr_err_clear(wr_err *e);
/* Formats the message, removes `secret` (and any password=... or URI
 * password) from it, records code, node and sqlstate (NULL: none). Returns
 * code, so callers can `return wr_err_set(...)`. */
wr_status wr_err_set(wr_err *e, const char *secret, wr_status code, int node,
                     const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Removes passwords from text in place. */
void wr_mask_secrets(char *text, size_t cap, const char *secret);

/* ---- options.c ------------------------------------------------------------ */

/* Copies `in` (NULL: all defaults) with every zero field replaced by its
 * documented default. */
void wr_options_resolve(const wr_options *in, wr_options *out);

/* ---- dsn.c: one libpq conninfo split into one connection per node ------- */

typedef struct wr_dsn {
    size_t n;                      /* nodes */
    char *host[WR_MAX_NODES];      /* NULL: libpq default */
    char *hostaddr[WR_MAX_NODES];  /* NULL: none */
    char *port[WR_MAX_NODES];      /* NULL: libpq default */
    char name[WR_MAX_NODES][160];  /* "host:port" for messages */
    size_t nkw;                    /* shared keywords (besides host/port) */
    char **kw;
    char **val;
    char *password;                /* to mask in messages; NULL if none */
} wr_dsn;

wr_status wr_dsn_parse(wr_dsn *d, const char *dsn, uint32_t connect_timeout_s,
                       wr_err *e);
void wr_dsn_free(wr_dsn *d);
/* Blocking connect to node i; the caller checks PQstatus and PQfinishes. */
PGconn *wr_dsn_connect(const wr_dsn *d, size_t i);

/* ---- stmtcache.c: named prepared statements of one connection ----------- */

typedef struct wr_stmt {
    uint64_t hash;
    char *sql;     /* owned */
    uint32_t id;   /* server-side name is "wr<id>" */
    uint64_t used; /* LRU tick */
} wr_stmt;

typedef struct wr_stmtcache {
    wr_stmt *slots;   /* owned, cap entries */
    uint32_t cap;
    uint32_t count;
    uint32_t next_id;
    uint64_t tick;
    uint32_t dealloc[8]; /* ids to DEALLOCATE at the next round trip */
    uint32_t ndealloc;
} wr_stmtcache;

int wr_stmtcache_init(wr_stmtcache *c, uint32_t cap);
void wr_stmtcache_free(wr_stmtcache *c);
uint64_t wr_stmt_hash(const char *sql);
/* The cached statement for sql, or NULL. Marks it used. */
wr_stmt *wr_stmtcache_find(wr_stmtcache *c, const char *sql, uint64_t hash);
/* Adds sql (evicting the least recently used entry into the dealloc list).
 * NULL when memory ran out or the dealloc list is full. */
wr_stmt *wr_stmtcache_add(wr_stmtcache *c, const char *sql, uint64_t hash);
/* Drops the entry with this id (it failed to prepare, or its plan went
 * stale); queue_dealloc: the server still holds it. */
void wr_stmtcache_remove(wr_stmtcache *c, uint32_t id, int queue_dealloc);
/* Forgets everything, e.g. after the server lost the statements. */
void wr_stmtcache_clear(wr_stmtcache *c);

/* ---- conn.c: one pooled connection and its pipelined round trips -------- */

typedef struct wr_conn {
    PGconn *pg;
    int node;
    int use_cache;
    wr_stmtcache cache;
    struct wr_conn *next; /* idle list */
} wr_conn;

/* One statement of a round trip. */
typedef struct wr_step {
    const char *sql;
    int nparams;
    const char *const *params;
    int sync_after;   /* a Sync follows: the statement commits on its own */
    PGresult *res;    /* out, owned by the caller: the statement's result, or
                         its failed preparation; NULL only on connection loss */
    int stale;        /* out: failed because a cached statement went stale
                         (plan changed / statement missing); safe to re-run */
} wr_step;

wr_conn *wr_conn_new(PGconn *pg, int node, int use_cache, uint32_t cache_size);
void wr_conn_free(wr_conn *c); /* NULL is a no-op */
/* An idle pooled connection that is still usable: nothing unexpected waiting
 * on its socket (a server that went away leaves EOF or a FATAL there). */
int wr_conn_idle_ok(wr_conn *c);
/* Sends every step in one pipeline (a Sync after each step that asks for it
 * and at the end), then reads every result. Returns 0 when all results
 * arrived (steps may still have failed: look at res), -1 when the
 * connection failed (results freed, errmsg filled). */
int wr_conn_run(wr_conn *c, wr_step *steps, int n, char *errmsg, size_t errlen);
/* Frees the results of steps. */
void wr_steps_clear(wr_step *steps, int n);

/* ---- node.c: what the cluster knows of one node ------------------------- */

typedef struct wr_node {
    wr_role role;
    int up;
    uint64_t down_until_us;  /* no connect attempt before this (backoff) */
    uint32_t backoff_ms;
    wr_lsn lsn;              /* replay (replica) or insert (primary) */
    wr_lsn flushed;          /* primary: flush position (0 unknown) */
    uint64_t lsn_at_us;
    wr_lsn rate_lsn;         /* start of the current rate window */
    uint64_t rate_at_us;
    double rate;             /* bytes/s while behind, -1 unknown */
    int excluded;            /* past a staleness limit (G4) */
    double lag_seconds;      /* -1 unknown */
    int64_t last_check_unix_ms;
    wr_conn *idle;           /* idle connections (owned) */
    int nidle;
    int in_use;
    char last_error[256];
    uint64_t served[WR_REASON_COUNT];
    uint64_t errors;
    wr_node_state reported;  /* last state announced as an event */
} wr_node;

void wr_node_init(wr_node *n);
/* A probe sent at sent_us saw position lsn; sendable is the WAL the primary
 * has flushed (for the replay rate: no WAL to replay is not "stuck"). Keeps
 * the highest observation. */
void wr_node_observe(wr_node *n, wr_lsn lsn, uint64_t sent_us, wr_lsn sendable);
void wr_node_mark_down(wr_node *n, uint64_t now_us, uint32_t seed, const char *why);
void wr_node_mark_up(wr_node *n);
/* Recomputes `excluded` from the lag against the limits, with hysteresis:
 * out above a limit, back in under half of it. */
void wr_node_apply_limits(wr_node *n, wr_lsn primary_lsn, const wr_options *o);
wr_node_state wr_node_state_of(const wr_node *n, wr_lsn primary_lsn);
/* The decision core's view of it. */
void wr_node_view_of(const wr_node *n, uint64_t now_us, wr_node_view *v);

/* ---- cluster.c ----------------------------------------------------------- */

struct wr_cluster {
    pthread_mutex_t mu;      /* guards nodes, primary, refresh state */
    wr_options opt;          /* resolved, read-only after open */
    wr_dsn dsn;              /* read-only after open */
    size_t n;
    wr_node nodes[WR_MAX_NODES];
    int primary;             /* index, -1 unknown */
    uint64_t last_refresh_us;
    int refreshing;
    uint32_t seed;           /* next session seed */
    uint32_t wal_block_size; /* the server's, from a probe; 0 unknown */
    uint64_t wal_segment_size;
    wr_err err;              /* errors of open/refresh */
    wr_event_fn on_event;    /* events.c */
    void *on_event_arg;
    wr_event events[64];     /* ring of undelivered events */
    size_t ev_head, ev_count;
    pthread_t refresher;     /* refresher.c */
    int refresher_running;
    int refresher_stop;
    uint32_t refresher_interval_ms;
    pthread_cond_t refresher_cv;
};

/* events.c: compares every node's state with the last one announced, queues
 * and announces the changes. Call without the lock held. */
void wr_cluster_note_changes(wr_cluster *c);

uint64_t wr_now_us(void);           /* monotonic clock */
int64_t wr_unix_ms(void);           /* wall clock */
void wr_sleep_us(uint64_t us);
const char *wr_cluster_secret(const wr_cluster *c);

/* Borrows a connection to node i (idle one or a new one). On failure the node
 * is marked down and e says why; nothing was sent anywhere. */
wr_status wr_cluster_borrow(wr_cluster *c, int i, wr_conn **out, wr_err *e);
/* Gives it back; `broken` (or a connection not idle at the server) closes it. */
void wr_cluster_giveback(wr_cluster *c, wr_conn *conn, int broken);
/* Records the role node i reports (and so which node is the primary);
 * under the lock. */
void wr_cluster_set_role(wr_cluster *c, int i, wr_role role);
/* discover.c: probes node i: role, position, lag. Returns 0, or -1 (node marked down). */
int wr_cluster_probe(wr_cluster *c, int i, wr_err *e);
/* Probes every node not in backoff and settles the primary. */
void wr_cluster_probe_all(wr_cluster *c);
/* Refreshes when the last refresh is older than refresh_interval_ms and no
 * other thread is at it. */
void wr_cluster_maybe_refresh(wr_cluster *c);
/* Records a position seen on node i by a probe sent at sent_us (and, for
 * the primary, its flush position; 0 when not read). */
void wr_cluster_observe(wr_cluster *c, int i, wr_lsn lsn, wr_lsn flushed, uint64_t sent_us);
/* What replicas can have received: the primary's flush position if known,
 * else its insert position; under the lock. */
wr_lsn wr_cluster_sendable_locked(const wr_cluster *c);
/* Copies every node's view and the primary index. */
int wr_cluster_views(wr_cluster *c, wr_node_view *views, uint64_t now_us);
void wr_cluster_count(wr_cluster *c, int node, wr_reason why, int failed);
void wr_cluster_node_down(wr_cluster *c, int node, const char *why);
/* The primary's index, rediscovering roles first when none is known. */
int wr_cluster_find_primary(wr_cluster *c);

/* ---- result.c ------------------------------------------------------------ */

struct wr_result {
    PGresult *pg;   /* owned */
    int node;
    wr_reason reason;
    wr_lsn lsn;
};

/* Wraps pg (taking ownership); NULL when memory ran out (pg is cleared). */
wr_result *wr_result_wrap(PGresult *pg, int node, wr_reason why, wr_lsn lsn);

/* SQL text of the position probes. */
#define WR_SQL_REPLAY_LSN "SELECT pg_last_wal_replay_lsn()"
/* Insert position (what a write or read on the primary may have produced)
 * and flush position (what replicas can have received). */
#define WR_SQL_INSERT_LSN "SELECT pg_current_wal_insert_lsn(), pg_current_wal_flush_lsn()"

#endif /* WR_INTERNAL_H */
