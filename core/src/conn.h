/* conn.h — libpq I/O of the executor: the DSN split into one conninfo per
 * node, non-blocking connects, pooled connections with their statement caches,
 * and the pipelined round trip every statement goes through. Nothing here
 * waits on the network without a deadline, and every wait is also offered as
 * a state machine (start / poll / advance) for an external event loop.
 * Only core/src includes this. */
#ifndef WR_CONN_H
#define WR_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "err.h"

#define WR_MAX_NODES 32

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

/* Unless the DSN sets them, adds connect_timeout (connect_timeout_s),
 * application_name=walrouter, keepalives=1, keepalives_idle=5,
 * keepalives_interval=2, keepalives_count=3 and tcp_user_timeout=10000 (ms). */
wr_status wr_dsn_parse(wr_dsn *d, const char *dsn, uint32_t connect_timeout_s,
                       wr_err *e);
void wr_dsn_free(wr_dsn *d);
/* The NULL-terminated keywords and values that connect to node i (pointing
 * into d); returns their count, or -1 when cap (entries, with the NULL) is too
 * small. */
int wr_dsn_params(const wr_dsn *d, size_t i, const char **kw, const char **val, size_t cap);

/* ---- stmtcache.c: named prepared statements of one connection ----------- */

typedef struct wr_stmt {
    uint64_t hash;
    char *sql;     /* owned */
    uint32_t id;   /* server-side name is "wr<id>" */
    uint64_t used; /* LRU tick */
} wr_stmt;

#define WR_MAX_DEALLOC 8

typedef struct wr_stmtcache {
    wr_stmt *slots;   /* owned, cap entries */
    uint32_t cap;
    uint32_t count;
    uint32_t next_id;
    uint64_t tick;
    uint32_t dealloc[WR_MAX_DEALLOC]; /* ids to DEALLOCATE at the next round trip */
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

/* ---- cancel.c: cancel requests that never make the caller wait ---------- */

/* libpq 15's PQcancel connects and waits for the server to hang up, so it runs
 * on a short-lived detached thread; at most WR_CANCEL_MAX run at once. */
#define WR_CANCEL_MAX 16

typedef struct wr_cancel wr_cancel;

/* Sends a cancel request for what pg is running, without waiting. Returns a
 * handle to ask when it is over (release it), or NULL when none was sent (too
 * many in flight, no memory, no thread). */
wr_cancel *wr_cancel_send(PGconn *pg);
/* 1 once the request is over (delivered or failed): no signal from it can
 * reach the server any more, so it cannot cancel a later statement. */
int wr_cancel_over(const wr_cancel *c);
void wr_cancel_release(wr_cancel *c); /* NULL is a no-op */
/* Cancel requests still in flight (process-wide). */
int wr_cancel_in_flight(void);

/* ---- conn.c: one pooled connection and its pipelined round trips -------- */

typedef struct wr_conn {
    PGconn *pg;
    int node;
    int use_cache;
    wr_stmtcache cache;
    struct wr_conn *next; /* idle list */
    int dirty;            /* a session changed its state (SET, temp tables,
                             advisory locks...): never lent to another one */
} wr_conn;

/* Takes pg (puts it in non-blocking mode); NULL when memory ran out (pg is
 * then still the caller's). */
wr_conn *wr_conn_new(PGconn *pg, int node, int use_cache, uint32_t cache_size);
void wr_conn_free(wr_conn *c); /* NULL is a no-op; never blocks */
/* An idle pooled connection that is still usable: nothing unexpected waiting
 * on its socket (a server that went away leaves EOF or a FATAL there). */
int wr_conn_idle_ok(wr_conn *c);

#define WR_MAX_STEPS 8

/* One statement of a round trip. */
typedef struct wr_pq_step {
    const char *sql;
    int nparams;
    const char *const *params;
    int sync_after;   /* a Sync follows: the statement commits on its own */
    PGresult *res;    /* out, owned by the caller: the statement's result, or its failed
                         preparation, or a PGRES_PIPELINE_ABORTED result; NULL only when the
                         round trip did not complete */
    int stale;        /* out: failed because a cached statement went stale: nothing ran */
} wr_pq_step;

typedef enum wr_run_status {
    WR_RUN_OK = 0,       /* every result arrived (steps may still have failed: see res) */
    WR_RUN_NOT_SENT = 1, /* failed before any byte of this round trip reached the socket: nothing ran */
    WR_RUN_LOST = 2,     /* the connection failed after sending: the caller must discard it */
    WR_RUN_TIMEOUT = 3,  /* the deadline passed (or an interrupt) after sending; a cancel request was
                            sent but the server did not answer within the grace time: discard it */
    WR_RUN_CANCELED = 4  /* the deadline passed (or an interrupt), a cancel request was sent and the
                            server then answered: every result arrived (the canceled statement with
                            SQLSTATE 57014, later ones aborted); the connection is clean and reusable */
} wr_run_status;

/* wr_interrupt_fn (walrouter.h): nonzero: stop waiting now (e.g. a signal is pending) */

typedef struct wr_run_opts {
    uint64_t deadline_us;     /* CLOCK_MONOTONIC microseconds; required (never 0) */
    uint64_t cancel_grace_us; /* after a cancel, how long to wait for the server's answer (0: 1 s) */
    wr_interrupt_fn interrupted; /* optional; polled at least every 50 ms while waiting */
    void *interrupt_arg;
} wr_run_opts;

/* Sends every step in one pipeline (a Sync after each step that asks for it
 * and at the end), then reads every result, all before o->deadline_us.
 * Blocking: a loop over the op API below with poll(). At most WR_MAX_STEPS. */
wr_run_status wr_conn_run(wr_conn *c, wr_pq_step *steps, int n, const wr_run_opts *o,
                          char *errmsg, size_t errlen);
/* Frees the results of steps. */
void wr_pq_steps_clear(wr_pq_step *steps, int n);

/* The same as a state machine for event loops (one at a time per connection).
 * The fields are private; the struct lives wherever the caller likes. */
typedef struct wr_expect { /* one result a round trip waits for */
    int kind;              /* conn.c's expect_kind */
    int step;              /* index in steps, -1: none */
    uint32_t id;           /* statement id, UINT32_MAX: unnamed */
} wr_expect;

typedef struct wr_conn_op {
    wr_conn *c;
    wr_pq_step *steps;
    int n;
    wr_expect ex[WR_MAX_DEALLOC + 1 + 3 * WR_MAX_STEPS];
    int nex;                 /* results expected, in order */
    int next;                /* the next one to arrive */
    int have;                /* ex[next]'s result arrived, its end (a NULL) not yet */
    int flushing;            /* output not all written yet */
    int just_sent;           /* nothing polled since the statements went out */
    int phase;               /* running, settling (waiting for the cancel to be over), done */
    uint64_t deadline_us;
    uint64_t grace_us;
    uint64_t grace_end_us;   /* 0 until a cancel was asked for */
    uint64_t settle_us;      /* settling: next look at the cancel */
    wr_cancel *cancel;
    wr_run_status status;
    char err[256];
} wr_conn_op;

/* Starts the round trip: queues every statement and writes what the socket
 * takes. It may finish at once (NOT_SENT: see wr_conn_op_status). */
void wr_conn_op_start(wr_conn_op *op, wr_conn *c, wr_pq_step *steps, int n, uint64_t deadline_us,
                      uint64_t cancel_grace_us, uint64_t now_us);
/* What to wait for: the fd, POLLIN/POLLOUT, and the time at which wr_conn_op_advance must be
   called even if nothing happened. fd is -1 when only the time matters. */
void wr_conn_op_poll(const wr_conn_op *op, int *fd, short *events, uint64_t *wake_us);
/* Makes progress after poll (revents may be 0 on a timer). Returns 1 while in progress, 0 when
   finished; then wr_conn_op_status() and errmsg tell the outcome. */
int wr_conn_op_advance(wr_conn_op *op, short revents, uint64_t now_us);
/* Sends a cancel request now (if not yet) and keeps collecting results until the grace ends. */
void wr_conn_op_cancel(wr_conn_op *op, uint64_t now_us);
wr_run_status wr_conn_op_status(const wr_conn_op *op);
const char *wr_conn_op_error(const wr_conn_op *op); /* "" when OK; lives as long as op */
/* Gives up an unfinished op (frees its results; the connection must then be
 * discarded). A no-op on a finished one. */
void wr_conn_op_abandon(wr_conn_op *op);

/* ---- connect.c: connecting with a deadline ------------------------------ */

/* Connects to node i of d, non-blocking (PQconnectStartParams + PQconnectPoll + poll), giving up at
   deadline_us. Returns a CONNECTION_OK PGconn already in non-blocking mode, or NULL with errmsg
   filled (never containing the password). Host names are resolved by libpq (getaddrinfo, which
   can block); IP addresses need no lookup. */
PGconn *wr_conn_connect(const wr_dsn *d, size_t i, uint64_t deadline_us, char *errmsg, size_t errlen);
/* Connects to k nodes at once, driving every attempt in one poll loop until each finishes or the
   deadline passes, so that silent hosts cost the deadline once, not once each. out[j] (for
   nodes[j]) is a PGconn or NULL with errmsgs[j] set. */
void wr_conn_connect_many(const wr_dsn *d, const int *nodes, int k, uint64_t deadline_us,
                          PGconn **out, char (*errmsgs)[256]);

/* And as a state machine for event loops. d must outlive the op. */
typedef struct wr_connect_op {
    PGconn *pg;
    const wr_dsn *d;
    size_t node;
    uint64_t deadline_us;
    short want;      /* POLLIN or POLLOUT, as PQconnectPoll asked */
    int done;
    char err[256];   /* set when done without a connection */
} wr_connect_op;

/* 0: in progress; -1: failed at once (wr_connect_op_take gives the error). */
int  wr_connect_op_start(wr_connect_op *op, const wr_dsn *d, size_t i, uint64_t deadline_us);
/* The fd can change between calls (libpq tries each address of a host). */
void wr_connect_op_poll(const wr_connect_op *op, int *fd, short *events, uint64_t *wake_us);
int  wr_connect_op_advance(wr_connect_op *op, short revents, uint64_t now_us); /* 1 in progress, 0 done */
/* The result (the caller owns it); NULL on failure (or if not done), errmsg filled. */
PGconn *wr_connect_op_take(wr_connect_op *op, char *errmsg, size_t errlen);
void wr_connect_op_abandon(wr_connect_op *op);

#endif /* WR_CONN_H */
