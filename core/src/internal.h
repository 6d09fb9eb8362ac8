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
#include "err.h"
#include "conn.h"


/* ---- cluster.c: the shared handle ------------------------------------------ */

/* Connections of one node: idle ones, and how many are lent out. */
typedef struct wr_pool {
    wr_conn *idle;  /* owned */
    int nidle;
    int in_use;
} wr_pool;

struct wr_cluster {
    pthread_mutex_t mu;      /* guards eng, pools, events; never held across I/O */
    wr_options opt;          /* resolved, read-only after open */
    wr_dsn dsn;              /* read-only after open */
    size_t n;
    const char *names[WR_MAX_NODES]; /* dsn.name[i] */
    wr_engine eng;           /* every routing and safety rule's state */
    wr_pool pool[WR_MAX_NODES];
    uint32_t seed;           /* next session seed */
    uint64_t rand_state;     /* jitter for the engine */
    wr_err err;              /* errors of open/refresh */
    wr_event_fn on_event;    /* events.c */
    void *on_event_arg;
    pthread_mutex_t event_mu; /* recursive; held while a handler runs and to change it */
    wr_event events[64];     /* ring of undelivered events */
    size_t ev_head, ev_count;
    pthread_t refresher;     /* refresher.c */
    int refresher_running;
    int refresher_stop;
    uint32_t refresher_interval_ms;
    pthread_cond_t refresher_cv;   /* on CLOCK_MONOTONIC */
    pthread_mutex_t refresher_life; /* serialises start and stop */
};

/* events.c: queues and announces the engine's state changes. Call without
 * the lock held. */
void wr_cluster_note_changes(wr_cluster *c);
void wr_events_init(wr_cluster *c);
void wr_events_destroy(wr_cluster *c);
/* refresher.c: its condition variable and lifecycle lock. */
void wr_refresher_init(wr_cluster *c);
void wr_refresher_destroy(wr_cluster *c);

uint64_t wr_now_us(void);           /* CLOCK_MONOTONIC, microseconds */
int64_t wr_unix_ms(void);           /* wall clock */
void wr_sleep_until(uint64_t until_us);
uint32_t wr_cluster_rand(wr_cluster *c); /* under the lock */
const char *wr_cluster_secret(const wr_cluster *c);
/* The engine's configuration from the options. */
void wr_options_engine(const wr_options *o, wr_config *cfg);

/* Without waiting: an idle connection to node i that is still usable (1,
 * *out set), a reserved slot for a new connection (0: connect, then
 * wr_conn_new, or wr_cluster_release_slot on failure), or none free (-1:
 * pool_max reached; the async machine looks again until its deadline). */
int wr_cluster_try_borrow(wr_cluster *c, int i, wr_conn **out);
void wr_cluster_release_slot(wr_cluster *c, int i);
/* Gives it back; `broken` (or a connection not idle at the server) closes it. */
void wr_cluster_giveback(wr_cluster *c, wr_conn *conn, int broken);

/* discover.c: probes the nodes in mask at once, each within deadline_us,
 * and gives every result to the engine. Nodes in their reconnect backoff
 * are skipped unless force is set. */
void wr_cluster_probe_mask(wr_cluster *c, uint32_t mask, uint64_t deadline_us, int force);
/* Probes the nodes the engine says are due (refresher). */
void wr_cluster_probe_due(wr_cluster *c);

/* Reports one probe's result to the engine: res is the probe's result (or
 * NULL), rs how the round trip ended, why a message when it failed. The
 * probe (with the connect it needed) began at started_us with deadline_us:
 * the engine decides whether a failure counts against the node. */
void wr_cluster_probe_report(wr_cluster *c, int node, const PGresult *res, wr_run_status rs,
                             uint64_t sent_us, uint64_t started_us, uint64_t deadline_us, const char *why);

/* ---- session.c / async.c ---------------------------------------------------- */

struct wr_session {
    wr_cluster *c;
    wr_sess es;         /* the engine's view of this session */
    wr_err err;
    wr_conn *tx;        /* the pinned connection of an open transaction */
    int busy;           /* an operation is in flight (async or blocking) */
    wr_interrupt_fn interrupt;
    void *interrupt_arg;
    char token[WR_TOKEN_BUFSIZE];
};

/* The error of a finished operation, set on the session from the engine's
 * outcome and the server's error result (may be NULL). */
wr_status wr_session_fail(wr_session *s, int code, int node, int commit, const PGresult *error, const char *msg);
/* Checks a statement's arguments (clearing the session's error first). */
wr_status wr_session_check_sql(wr_session *s, const char *sql, int nparams, const char *const *params);

/* ---- result.c ------------------------------------------------------------ */

struct wr_result {
    PGresult *pg;   /* owned */
    int node;
    wr_reason reason;
    wr_lsn lsn;
};

/* Wraps pg (taking ownership); NULL when memory ran out (pg is cleared). */
wr_result *wr_result_wrap(PGresult *pg, int node, wr_reason why, wr_lsn lsn);


#endif /* WR_INTERNAL_H */
