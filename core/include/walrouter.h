/*
 * walrouter.h — use a PostgreSQL primary and its streaming replicas as one
 * database. Writes go to the primary; reads go to a replica that is provably
 * fresh enough for the session (by WAL position), else, after a short bounded
 * retry, to the primary.
 *
 * Handles:
 *   wr_cluster  the configuration, node state and connection pools. Opened
 *               once, shared by every thread (thread-safe).
 *   wr_session  one per request or user: cheap, used by one thread at a time.
 *               Carries the session's timeline (what it must see).
 *   wr_result   the rows of one statement and where it ran.
 *
 * Every call that can fail returns a wr_status; the details (message, SQLSTATE,
 * node) stay on the handle until its next call. No message ever contains a
 * password. Enums only grow at the end.
 */
#ifndef WALROUTER_H
#define WALROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "walrouter_engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Only what this header and walrouter_engine.h declare is exported from
 * libwalrouter.so; everything else is built with -fvisibility=hidden. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(SWIG)
#pragma GCC visibility push(default)
#endif

#define WR_VERSION "0.1.0"

typedef struct wr_cluster wr_cluster;
typedef struct wr_session wr_session;
typedef struct wr_result wr_result;

typedef enum wr_status {
    WR_OK = 0,
    WR_ERR_ARG = 1,             /* bad argument: DSN, option, parameter, misuse */
    WR_ERR_TOKEN = 2,           /* malformed or tampered token, or signed
                                   with another key (another cluster's) */
    WR_ERR_CONNECT = 3,         /* the node(s) needed could not be reached */
    WR_ERR_SQL = 4,             /* the server rejected the statement (SQLSTATE) */
    WR_ERR_UNKNOWN_OUTCOME = 5, /* connection lost while a write or commit was
                                   in flight: it may or may not have run */
    WR_ERR_NO_PRIMARY = 6,      /* no node is (currently) the primary */
    WR_ERR_STATE = 7,           /* call not valid now (e.g. commit with no
                                   transaction, begin inside one) */
    WR_ERR_NOMEM = 8,
    WR_ERR_INTERNAL = 9,
    WR_ERR_TIMEOUT = 10,        /* a deadline passed and the server proved the
                                   statement did not complete (or it never
                                   ran): safe to retry */
    WR_ERR_SPLIT_BRAIN = 11,    /* two nodes claim to be the primary on the
                                   same timeline: no writes until one steps
                                   down (the message names both) */
    WR_ERR_INTERRUPTED = 12     /* the caller's interrupt function asked to
                                   stop: a cancel request was sent */
} wr_status;

/* Short stable name of a status ("ok", "sql_error", ...); never NULL. */
const char *wr_status_name(wr_status s);

/* ---- options ------------------------------------------------------------
 * `wr_options opt = {0};` is a valid configuration: every zero field means
 * the documented default. New fields are added at the end. */
typedef struct wr_options {
    uint32_t read_budget_ms;      /* 0: 200. How long a read may retry
                                     replicas before it goes to the primary */
    uint32_t retry_interval_ms;   /* 0: 10. Wait between replica re-checks */
    uint32_t pool_size;           /* 0: 8. Idle connections kept per node */
    uint32_t stmt_cache_size;     /* 0: 64. Prepared statements per connection */
    int      no_stmt_cache;       /* nonzero: never prepare (for transaction-
                                     pooling proxies such as PgBouncer) */
    uint32_t connect_timeout_s;   /* 0: 5 (unless the DSN sets connect_timeout) */
    uint32_t token_ttl_s;         /* 0: 86400. Older tokens are ignored */
    size_t   token_key_len;       /* bytes of token_key used; 0: no signing */
    char     token_key[256];      /* HMAC-SHA256 key for session tokens */
    uint64_t max_lag_bytes;       /* 0: 64 MiB; UINT64_MAX ("none"): no limit.
                                     A replica further behind the primary
                                     than this serves no reads (G4) */
    uint32_t max_lag_ms;          /* 0: 10000; UINT32_MAX ("none"): no limit.
                                     Same, in time: how long ago the primary
                                     last had nothing the replica lacks */
    uint32_t refresh_interval_ms; /* 0: 1000. Period of the probes of every
                                     node (a background thread) */
    /* Added in 0.2: */
    uint32_t statement_timeout_ms;/* 0: 30000. Deadline of a statement on the
                                     primary; past it a cancel is sent */
    uint32_t pool_max;            /* 0: 32. Connections per node, in use or
                                     idle; borrowers wait within their deadline */
    int      nearest;             /* nonzero: among fresh replicas, the one
                                     with the lowest round trip (else spread) */
    int      no_refresher;        /* nonzero: no background probe thread;
                                     probes then run on the request path */
} wr_options;

/* Sets one option by name from text, as the bindings and config files do
 * ("read_budget_ms", "200"). Names are the field names above; booleans take
 * 1/0/true/false/on/off; token_key takes the key text. Returns WR_ERR_ARG with
 * a message naming the key when the key is unknown or the value is invalid. */
wr_status wr_options_set_sized(wr_options *o, size_t o_size, const char *key,
                               const char *value, char *errbuf, size_t errlen);

/* ABI: structs the caller allocates (wr_options, wr_node_status, wr_event)
 * grow at the end. The functions that take one are exported as *_sized and
 * get the size the caller was compiled with, through the macros below: the
 * library reads and writes only that many bytes (missing options mean their
 * default), so a program built against an older walrouter.h keeps working
 * with a newer libwalrouter.so.0. The SONAME changes only when a function
 * or a field is removed or changes meaning. */
#ifndef SWIG
#define wr_options_set(o, key, value, errbuf, errlen) \
    wr_options_set_sized((o), sizeof(wr_options), (key), (value), (errbuf), (errlen))
#else
wr_status wr_options_set(wr_options *o, const char *key, const char *value,
                         char *errbuf, size_t errlen);
#endif

/* ---- cluster ------------------------------------------------------------ */

/* Opens a cluster from one libpq connection string, URI or key=value, listing
 * every node: "postgresql://user:pw@h1:5432,h2:5433,h3:5434/db". Connects to
 * each host and discovers which is the primary. Succeeds when at least one node
 * is reachable. opt may be NULL (defaults).
 * *out always receives a handle (NULL only when memory ran out), also on
 * failure, where it carries the error; close it with wr_cluster_close.
 * A cluster belongs to the process that opened it: after fork() the child
 * must neither use nor close it (its connections are the parent's), and
 * opens its own. */
wr_status wr_cluster_open_sized(wr_cluster **out, const char *dsn,
                                const wr_options *opt, size_t opt_size);
#ifndef SWIG
#define wr_cluster_open(out, dsn, opt) \
    wr_cluster_open_sized((out), (dsn), (opt), sizeof(wr_options))
#else
wr_status wr_cluster_open(wr_cluster **out, const char *dsn,
                          const wr_options *opt);
#endif
void wr_cluster_close(wr_cluster *c); /* NULL is a no-op */

/* The last error of the cluster handle itself (open, refresh). Never NULL;
 * "" when none. Only meaningful from the thread that made the failing call. */
const char *wr_cluster_errmsg(const wr_cluster *c);
/* The SQLSTATE of that error ("" when none; a node that refused the
 * connection: 28P01 a wrong password, 3D000 an unknown database...) and the
 * node it names (-1: none). */
const char *wr_cluster_sqlstate(const wr_cluster *c);
int wr_cluster_errnode(const wr_cluster *c);

size_t wr_cluster_nnodes(const wr_cluster *c);
/* "host:port" of node i (DSN order), lives as long as c; "" if out of range. */
const char *wr_cluster_node_name(const wr_cluster *c, size_t i);
/* Index of the current primary, or -1 when none is known. */
int wr_cluster_primary(wr_cluster *c);



/* A snapshot of one node, for status displays and metrics. */
typedef struct wr_node_status {
    char host[128];
    int port;
    wr_role role;
    wr_node_state state;
    int64_t lag_bytes;         /* primary's position minus replay; -1 unknown */
    double lag_seconds;        /* 0 when caught up (also on an idle primary);
                                  -1 unknown */
    wr_lsn replay_lsn;         /* replica: replay position; primary: insert */
    double replay_rate;        /* bytes/s, -1 unknown */
    int64_t last_check_unix_ms;/* 0: never */
    int conns_in_use;
    int conns_idle;
    char last_error[256];      /* "" when none; never a password */
    uint64_t served[WR_REASON_COUNT]; /* statements served, per reason */
    uint64_t errors;
    uint32_t timeline;         /* 0 unknown */
    int      fenced;           /* claims primary on an older timeline (or
                                  cannot be ordered with another claimant) */
    double   rtt_ms;           /* smoothed probe round trip; -1 unknown */
} wr_node_status;

/* Probes every node now (roles, positions, lag). Thread-safe. */
wr_status wr_cluster_refresh(wr_cluster *c);

/* Copies node i's status as the background probes last saw it (with
 * no_refresher: probing first the nodes whose last probe is older than
 * refresh_interval_ms). */
wr_status wr_cluster_node_status_sized(wr_cluster *c, size_t i, wr_node_status *out,
                                      size_t out_size);
#ifndef SWIG
#define wr_cluster_node_status(c, i, out) \
    wr_cluster_node_status_sized((c), (i), (out), sizeof(wr_node_status))
#else
wr_status wr_cluster_node_status(wr_cluster *c, size_t i, wr_node_status *out);
#endif

/* ---- session ------------------------------------------------------------ */

/* A new empty session on c (NULL only when memory ran out). The cluster must
 * outlive it. */
wr_session *wr_session_new(wr_cluster *c);
void wr_session_free(wr_session *s); /* NULL is a no-op; rolls back an open
                                        transaction and returns connections */

/* Resumes the timeline carried by a token (see wr_session_token). A token
 * beyond the primary's current position is clamped to it when a read finds
 * no replica that has replayed it (so resuming costs no round trip); an
 * expired token is ignored (returns WR_OK, timeline left empty). A malformed, tampered or
 * unsigned-when-a-key-is-set token returns WR_ERR_TOKEN and changes nothing. */
wr_status wr_session_resume(wr_session *s, const char *token);

/* Also require the freshness named by another token (merged into this
 * session's need). Same validation as wr_session_resume. */
wr_status wr_session_require(wr_session *s, const char *token);

/* The session's timeline as a token; the string lives until the next call on
 * s. Never NULL (at worst ""). */
const char *wr_session_token(wr_session *s);

/* The session's current need (the position a replica must have replayed). */
wr_lsn wr_session_need(const wr_session *s);

/* Error of the last failed call on s. Message never NULL ("" when none);
 * SQLSTATE "" when none; node -1 when none. */
wr_status   wr_session_errcode(const wr_session *s);
const char *wr_session_errmsg(const wr_session *s);
const char *wr_session_sqlstate(const wr_session *s);
int         wr_session_errnode(const wr_session *s);

/* Interruption (Ctrl-C in a REPL, a request that was abandoned): while a
 * call of this session waits on the network, fn(arg) is called at least
 * every 50 ms; when it returns nonzero, the running statement is canceled on
 * the server (a cancel request), the call returns WR_ERR_INTERRUPTED, and the
 * connection is reused only if the server confirmed the cancel. A write the
 * server did not confirm canceled counts as an unknown outcome for the
 * session's reads (they go to the primary until it is settled). fn runs on
 * the calling thread; NULL removes it. */
typedef int (*wr_interrupt_fn)(void *arg);
void wr_session_set_interrupt(wr_session *s, wr_interrupt_fn fn, void *arg);

/* Flags for wr_query */
#define WR_PRIMARY 1u /* read from the primary this once */

/* Runs a read (SELECT...) with $1..$n text parameters (params[i] NULL is SQL
 * NULL; params may be NULL when nparams is 0). *out receives the result (free
 * with wr_result_free) and may be NULL to discard it. A statement a replica
 * refuses as a write (25006) is re-run on the primary. A read on the primary
 * (WR_PRIMARY, or no replica fresh enough within read_budget_ms) may write
 * too: when its connection is lost or silent after sending it is
 * WR_ERR_UNKNOWN_OUTCOME, never re-sent. A replica that does not answer
 * within the budget is marked down (when it had a fair chance: see
 * "Health" in README.md) and the read moves on. */
wr_status wr_query(wr_session *s, const char *sql, int nparams,
                   const char *const *params, unsigned flags, wr_result **out);

/* Runs a write on the primary and records its commit position, so every later
 * read of this session sees it (G1). A write is re-sent only when it provably
 * did not run (no connection made, or the node turned read-only: 25006);
 * otherwise a lost connection is WR_ERR_UNKNOWN_OUTCOME. */
wr_status wr_exec(wr_session *s, const char *sql, int nparams,
                  const char *const *params, wr_result **out);

/* Flags for wr_begin */
#define WR_READ_ONLY 1u /* a read-only transaction, on one fresh replica */

/* Explicit transaction: every statement until commit/rollback runs on one
 * connection of one node (G6): the primary, or with WR_READ_ONLY one replica
 * fresh enough for the session. */
wr_status wr_begin(wr_session *s, unsigned flags);
wr_status wr_commit(wr_session *s);
wr_status wr_rollback(wr_session *s);
int wr_session_in_transaction(const wr_session *s);

/* ---- streaming large results -------------------------------------------------
 * A read whose rows arrive in chunks, so memory stays flat however many rows
 * it returns. It runs as a read-only transaction on one replica fresh enough
 * for the session (or with WR_PRIMARY on the primary), through a server-side
 * cursor: one snapshot for every chunk (G3). The session is in that
 * transaction until wr_stream_close. */
typedef struct wr_stream wr_stream;

wr_status wr_stream_open(wr_session *s, const char *sql, int nparams, const char *const *params,
                         unsigned flags, wr_stream **out);
/* The next chunk of at most max_rows rows (0: 1000); *out is NULL once every
 * row was read. Free each chunk with wr_result_free. */
wr_status wr_stream_next(wr_stream *st, int max_rows, wr_result **out);
/* Ends the transaction and frees st (NULL is a no-op). */
wr_status wr_stream_close(wr_stream *st);

/* ---- the async API ---------------------------------------------------------
 * One operation of a session, driven by the caller's event loop; the
 * blocking calls above are loops over it. Shape (as libpq's connect/poll):
 *
 *   wr_async *a;
 *   wr_async_start(s, WR_ASYNC_QUERY, sql, n, params, 0, &a);
 *   while (wr_async_advance(a, revents)) {      // never blocks
 *       wr_async_poll(a, &fd, &events, &wake_us);
 *       // wait until fd has `events` (WR_WAIT_READ/WR_WAIT_WRITE), or until
 *       // wake_us (CLOCK_MONOTONIC microseconds), whichever comes first;
 *       // fd is -1 when only the time matters. revents: what became ready.
 *   }
 *   wr_async_result(a, &result);   // the status, as the blocking call's
 *   wr_async_free(a);
 *
 * epoll: register fd with EPOLLIN/EPOLLOUT per `events`, use wake_us for the
 * timeout (the fd may change between polls: re-register after each
 * advance). asyncio: loop.add_reader/add_writer(fd) and loop.call_at(wake)
 * each calling advance. libuv: a uv_poll_t on fd plus a uv_timer_t. One
 * session runs one operation at a time (WR_ERR_STATE otherwise); sessions
 * run concurrently, each on its own connection. */

typedef struct wr_async wr_async;

typedef enum wr_async_kind {
    WR_ASYNC_QUERY = 0,    /* as wr_query (flags: WR_PRIMARY) */
    WR_ASYNC_EXEC = 1,     /* as wr_exec */
    WR_ASYNC_BEGIN = 2,    /* as wr_begin (flags: WR_READ_ONLY); sql unused */
    WR_ASYNC_COMMIT = 3,   /* sql unused */
    WR_ASYNC_ROLLBACK = 4  /* sql unused */
} wr_async_kind;

#define WR_WAIT_READ 1
#define WR_WAIT_WRITE 4

/* Starts an operation; sql and params are copied. *out is NULL on error
 * (bad arguments: the session's error says why). */
wr_status wr_async_start(wr_session *s, wr_async_kind kind, const char *sql, int nparams,
                         const char *const *params, unsigned flags, wr_async **out);
/* What to wait for before the next wr_async_advance. */
void wr_async_poll(const wr_async *a, int *fd, int *events, uint64_t *wake_us);
/* Makes progress with what became ready (revents: WR_WAIT_READ/WRITE, or 0
 * on a timer). Returns 1 while the operation runs, 0 once it is done. */
int wr_async_advance(wr_async *a, int revents);
/* Asks to stop: a running statement gets a cancel request; the operation
 * then ends (keep advancing) with WR_ERR_INTERRUPTED, its connection clean
 * when the server confirmed the cancel, discarded otherwise. */
void wr_async_cancel(wr_async *a);
/* The outcome once done (WR_ERR_STATE before): as the blocking call's; the
 * details are on the session (wr_session_errmsg...). *out (may be NULL)
 * receives the rows, to free with wr_result_free. */
wr_status wr_async_result(wr_async *a, wr_result **out);
/* Frees it; an operation still running is abandoned (its connection
 * closed; a write then counts as an unknown outcome). NULL is a no-op. */
void wr_async_free(wr_async *a);

/* ---- results ------------------------------------------------------------ */

void wr_result_free(wr_result *r); /* NULL is a no-op */
int wr_result_nrows(const wr_result *r);
int wr_result_ncols(const wr_result *r);
const char *wr_result_colname(const wr_result *r, int col); /* NULL if out of range */
uint32_t wr_result_coltype(const wr_result *r, int col);    /* type OID */
/* Text value, NULL for SQL NULL or out of range; lives as long as r. */
const char *wr_result_value(const wr_result *r, int row, int col);
int wr_result_isnull(const wr_result *r, int row, int col);
int wr_result_length(const wr_result *r, int row, int col);
/* Rows affected by a write (INSERT/UPDATE/DELETE...), else 0. */
int64_t wr_result_affected(const wr_result *r);
const char *wr_result_command(const wr_result *r); /* command tag, e.g. "INSERT 0 1" */
int wr_result_node(const wr_result *r);            /* node that served it */
wr_reason wr_result_reason(const wr_result *r);    /* why that node */
/* Position tied to the result: a write's commit position; a replica read's
 * proven replay position; a primary read's insert position (a page
 * boundary rather than the byte after the next page's header). */
wr_lsn wr_result_lsn(const wr_result *r);


/* ---- operations: status as text, metrics, events, background refresh ----
 * (Added after 0.1's first cut; everything above is unchanged.) */

/* Every node's status as a JSON array of objects (the wr_node_status fields,
 * plus "node" and "name", LSNs as "X/Y", reasons by name). The caller frees
 * it with wr_free. NULL when memory ran out. */
char *wr_cluster_status_json(wr_cluster *c);

/* Prometheus text exposition (format 0.0.4) of per-node counters by routing
 * reason, errors, lag, state and connections. Free with wr_free. */
char *wr_cluster_metrics_text(wr_cluster *c);

void wr_free(void *p);

/* A node changed state (e.g. streaming -> lagging, or -> down). */
typedef struct wr_event {
    int node;
    wr_node_state from;
    wr_node_state to;
    int64_t at_unix_ms;
} wr_event;

typedef void (*wr_event_fn)(void *arg, const wr_event *ev);

/* Calls fn for every state change, from the thread that noticed it (any
 * thread using the cluster, or the refresher), outside the cluster's lock.
 * fn must be quick and must not close the cluster. NULL removes it. */
void wr_cluster_set_event_handler(wr_cluster *c, wr_event_fn fn, void *arg);

/* Also queued (the last 64), for bindings that deliver events on their own
 * thread: copies up to cap pending events into out, oldest first, and
 * removes them; returns how many. */
size_t wr_cluster_poll_events_sized(wr_cluster *c, wr_event *out, size_t cap,
                                    size_t event_size);
#ifndef SWIG
#define wr_cluster_poll_events(c, out, cap) \
    wr_cluster_poll_events_sized((c), (out), (cap), sizeof(wr_event))
#else
size_t wr_cluster_poll_events(wr_cluster *c, wr_event *out, size_t cap);
#endif

/* Optional: a thread that refreshes lag figures every interval_ms, for long-
 * running services (without it, figures are refreshed on use). Stopped by
 * wr_cluster_stop_refresher or wr_cluster_close. */
wr_status wr_cluster_start_refresher(wr_cluster *c, uint32_t interval_ms);
void wr_cluster_stop_refresher(wr_cluster *c);

#if (defined(__GNUC__) || defined(__clang__)) && !defined(SWIG)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif
#endif /* WALROUTER_H */
