/* async.c — one operation of a session as a state machine over the engine's
 * steps (core/engine/op.c) and non-blocking libpq (conn.c, connect.c): the
 * caller's event loop polls and advances it; the blocking calls in session.c
 * are a poll() loop over it. Nothing here decides where a statement goes or
 * what an outcome means: the engine does. */
#include <ctype.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define BEGIN_READ_ONLY "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
#define CANCEL_GRACE_US 1000000u /* a canceled statement on the primary: wait this long for proof */
#define POOL_RETRY_US 5000u      /* no free connection: look again this often */

enum { A_NEXT, A_BORROW, A_CONNECT, A_RUN, A_WAIT, A_PROBE, A_PROBE_CONNECT, A_PROBE_RUN, A_DONE };

struct wr_async {
    wr_session *s;
    wr_op op;
    wr_step st;
    int phase;
    int canceled;        /* the caller asked to stop */
    int cancel_sent;
    uint64_t wake_us;    /* A_WAIT / A_BORROW */
    /* the statement (copied) */
    char *sql;
    int np;
    char **pv;
    /* the round trip in flight */
    wr_conn *conn;
    int reserved;        /* a pool slot is held for a connection being made */
    int reserved_node;
    wr_connect_op cop;
    wr_conn_op rop;
    wr_pq_step steps[4];
    int nsteps, i_check, i_snap, i_stmt, i_pos;
    const char *snap_param[1];
    uint64_t sent_us;
    /* probing */
    uint32_t probe_left;
    int probe_node;
    uint64_t probe_started_us;
    /* the outcome */
    PGresult *rows;
    PGresult *error;
    wr_status status;
    char detail[256];
};

static uint64_t now_us(void) { return wr_now_us(); }

/* ---- lifecycle ----------------------------------------------------------------- */

static char *dup_or_null(const char *p) { return p ? strdup(p) : NULL; }

static void free_params(wr_async *a) {
    for (int i = 0; a->pv && i < a->np; i++) free(a->pv[i]);
    free(a->pv);
    free(a->sql);
    a->pv = NULL;
    a->sql = NULL;
}

wr_status wr_async_start(wr_session *s, wr_async_kind kind, const char *sql, int nparams,
                         const char *const *params, unsigned flags, wr_async **out) {
    if (out) *out = NULL;
    if (!s || !out) return WR_ERR_ARG;
    wr_err_clear(&s->err);
    wr_op_kind k;
    switch (kind) {
    case WR_ASYNC_QUERY:
    case WR_ASYNC_EXEC: {
        wr_status st = wr_session_check_sql(s, sql, nparams, params);
        if (st != WR_OK) return st;
        k = s->tx ? WR_OP_TX : kind == WR_ASYNC_EXEC ? WR_OP_WRITE : (flags & WR_PRIMARY) ? WR_OP_READ_PRIMARY
                                                                                         : WR_OP_READ;
        break;
    }
    case WR_ASYNC_BEGIN:
        k = flags & WR_READ_ONLY ? WR_OP_BEGIN_READ_ONLY : WR_OP_BEGIN;
        sql = flags & WR_READ_ONLY ? BEGIN_READ_ONLY : "BEGIN";
        nparams = 0;
        break;
    case WR_ASYNC_COMMIT:
        k = WR_OP_COMMIT;
        sql = "COMMIT";
        nparams = 0;
        break;
    case WR_ASYNC_ROLLBACK:
        k = WR_OP_ROLLBACK;
        sql = "ROLLBACK";
        nparams = 0;
        break;
    default:
        return wr_err_set(&s->err, NULL, WR_ERR_ARG, -1, NULL, "unknown async operation %d", (int)kind);
    }
    if (s->busy)
        return wr_err_set(&s->err, NULL, WR_ERR_STATE, -1, NULL,
                          "the session is running another operation; use one session per concurrent operation");
    wr_async *a = calloc(1, sizeof *a);
    if (!a) return wr_err_set(&s->err, NULL, WR_ERR_NOMEM, -1, NULL, "out of memory");
    a->s = s;
    a->sql = strdup(sql);
    a->np = nparams;
    a->pv = nparams ? calloc((size_t)nparams, sizeof *a->pv) : NULL;
    int oom = !a->sql || (nparams && !a->pv);
    for (int i = 0; !oom && i < nparams; i++) {
        a->pv[i] = dup_or_null(params[i]);
        if (params[i] && !a->pv[i]) oom = 1;
    }
    if (oom) {
        free_params(a);
        free(a);
        return wr_err_set(&s->err, NULL, WR_ERR_NOMEM, -1, NULL, "out of memory");
    }
    wr_cluster *c = s->c;
    pthread_mutex_lock(&c->mu);
    wr_op_start(&a->op, k, now_us());
    pthread_mutex_unlock(&c->mu);
    a->phase = A_NEXT;
    s->busy = 1;
    *out = a;
    return WR_OK;
}

static void drop_conn(wr_async *a, int broken) {
    if (a->conn) {
        if (a->s->tx == a->conn) a->s->tx = NULL;
        wr_cluster_giveback(a->s->c, a->conn, broken);
        a->conn = NULL;
    } else if (a->reserved) {
        wr_cluster_release_slot(a->s->c, a->reserved_node);
    }
    a->reserved = 0;
}

void wr_async_free(wr_async *a) {
    if (!a) return;
    if (a->phase != A_DONE) {
        wr_session *s = a->s;
        if (a->phase == A_RUN || a->phase == A_PROBE_RUN) {
            /* Abandoned in flight: the engine hears of it as a lost round
             * trip, so a write counts as an unknown outcome. */
            wr_conn_op_abandon(&a->rop);
            if (a->phase == A_RUN) {
                wr_io io = {.outcome = WR_IO_LOST, .sent_us = a->sent_us, .detail = "abandoned by the caller"};
                pthread_mutex_lock(&s->c->mu);
                wr_op_feed(&a->op, &s->es, &s->c->eng, &io, now_us(), wr_cluster_rand(s->c));
                pthread_mutex_unlock(&s->c->mu);
            }
            wr_pq_steps_clear(a->steps, a->nsteps);
            drop_conn(a, 1);
        } else if (a->phase == A_CONNECT || a->phase == A_PROBE_CONNECT) {
            wr_connect_op_abandon(&a->cop);
            drop_conn(a, 1);
        }
        s->busy = 0;
    }
    PQclear(a->rows);
    PQclear(a->error);
    free_params(a);
    free(a);
}

/* ---- the steps ------------------------------------------------------------------- */

static void feed(wr_async *a, wr_io *io) {
    wr_cluster *c = a->s->c;
    pthread_mutex_lock(&c->mu);
    wr_op_feed(&a->op, &a->s->es, &c->eng, io, now_us(), wr_cluster_rand(c));
    pthread_mutex_unlock(&c->mu);
    wr_cluster_note_changes(c);
}

/* Nothing could be sent: no connection (NOT_SENT), or none free (BUSY). */
static void feed_unsent(wr_async *a, wr_io_outcome outcome, const char *why) {
    wr_io io = {.outcome = outcome, .detail = why, .deadline_hit = now_us() >= a->st.deadline_us};
    if (a->st.kind == WR_STEP_SNAPSHOT || a->st.kind == WR_STEP_RUN) feed(a, &io);
    a->phase = A_NEXT;
}

/* The caller asked to stop: a cancel request for the statement in flight.
 * It waits for the server's answer (CANCEL_GRACE_US at most) even on a
 * replica, whose deadline would not, so that the connection comes back
 * clean rather than discarded. */
static void send_cancel(wr_async *a, uint64_t now) {
    if (a->rop.grace_us < CANCEL_GRACE_US) a->rop.grace_us = CANCEL_GRACE_US;
    wr_conn_op_cancel(&a->rop, now);
    a->cancel_sent = 1;
}

/* Queues the statement with the queries the step piggybacks. */
static void start_run(wr_async *a) {
    const wr_step *st = &a->st;
    int n = 0;
    memset(a->steps, 0, sizeof a->steps);
    a->i_check = a->i_snap = a->i_pos = -1;
    if (st->kind == WR_STEP_SNAPSHOT) {
        a->steps[n] = (wr_pq_step){.sql = WR_SQL_SNAPSHOT};
        a->i_stmt = n++;
    } else {
        if (st->flags & WR_RUN_CHECK_REPLAY) {
            /* A BEGIN must not share the check's implicit transaction. */
            a->steps[n] = (wr_pq_step){.sql = WR_SQL_REPLAY_LSN, .sync_after = (st->flags & WR_RUN_KEEP) != 0};
            a->i_check = n++;
        }
        if (st->flags & WR_RUN_SNAPSHOT_CHECK) {
            a->snap_param[0] = a->op.snapshot;
            a->steps[n] = (wr_pq_step){.sql = WR_SQL_SNAPSHOT_CHECK, .nparams = 1, .params = a->snap_param};
            a->i_snap = n++;
        } else if (st->flags & WR_RUN_SYNCREP_CHECK) {
            a->steps[n] = (wr_pq_step){.sql = WR_SQL_SYNCREP_CHECK};
            a->i_snap = n++; /* fails the same way: the statement never runs */
        }
        a->steps[n] = (wr_pq_step){.sql = a->sql, .nparams = a->np, .params = (const char *const *)a->pv,
                                   .sync_after = (st->flags & WR_RUN_INSERT_POS) != 0};
        a->i_stmt = n++;
        if (st->flags & WR_RUN_INSERT_POS) {
            a->steps[n] = (wr_pq_step){.sql = WR_SQL_INSERT_POS};
            a->i_pos = n++;
        }
    }
    a->nsteps = n;
    /* A replica read moves on at once past its deadline; the primary, a
     * transaction or an interrupt waits for the server's proof. */
    int patient = a->op.on_primary || (st->flags & WR_RUN_PINNED) || a->s->interrupt;
    a->sent_us = now_us();
    wr_conn_op_start(&a->rop, a->conn, a->steps, n, st->deadline_us, patient ? CANCEL_GRACE_US : 1, a->sent_us);
    a->phase = A_RUN;
    if (a->canceled) send_cancel(a, now_us());
}

static int parse_lsn_col(const PGresult *r, int col, wr_lsn *out) {
    return r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) > col &&
           !PQgetisnull(r, 0, col) && wr_lsn_parse(PQgetvalue(r, 0, col), out) == 0;
}

static void parse_tli(const PGresult *r, int col, uint32_t *out) {
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) <= col ||
        PQgetisnull(r, 0, col))
        return;
    long long v = atoll(PQgetvalue(r, 0, col));
    if (v > 0 && v <= UINT32_MAX) *out = (uint32_t)v;
}

static int failed(const PGresult *r) {
    ExecStatusType st = PQresultStatus(r);
    return !r || (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK);
}

/* Whether a statement changed its connection's session state, so that the
 * connection must never serve another session: by its command tag, or by
 * the functions its text calls. Conservative: a false alarm only costs a
 * new connection. */
static int is_word_char(unsigned char c) { return isalnum(c) || c == '_'; }

/* Whether any of words (lowercase) is a whole word of text, ignoring case:
 * one pass over the text's words. */
static int any_word_in(const char *text, const char *const *words, size_t nwords) {
    const char *p = text;
    while (*p) {
        while (*p && !is_word_char((unsigned char)*p)) p++;
        const char *start = p;
        while (is_word_char((unsigned char)*p)) p++;
        size_t len = (size_t)(p - start);
        for (size_t i = 0; len >= 4 && i < nwords; i++)
            if (strlen(words[i]) == len && strncasecmp(start, words[i], len) == 0) return 1;
    }
    return 0;
}

static int changes_session_state(const char *sql, const PGresult *r) {
    /* A cursor without HOLD ends with its transaction: not session state. */
    static const char *const tags[] = {"SET", "RESET", "LISTEN", "UNLISTEN", "PREPARE", "DEALLOCATE",
                                       "DISCARD", "LOAD"};
    const char *tag = r ? PQcmdStatus((PGresult *)r) : "";
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        size_t n = strlen(tags[i]);
        if (strncmp(tag, tags[i], n) == 0 && (tag[n] == '\0' || tag[n] == ' ')) return 1;
    }
    static const char *const words[] = {"set_config", "pg_advisory_lock", "pg_advisory_lock_shared",
                                        "pg_try_advisory_lock", "pg_try_advisory_lock_shared", "temp",
                                        "temporary", "dblink_connect", "hold"};
    return any_word_in(sql, words, sizeof words / sizeof words[0]);
}

/* The round trip ended: what happened, for the engine. */
static void finish_run(wr_async *a) {
    wr_run_status rs = wr_conn_op_status(&a->rop);
    snprintf(a->detail, sizeof a->detail, "%s", wr_conn_op_error(&a->rop));
    wr_mask_secrets(a->detail, sizeof a->detail, wr_cluster_secret(a->s->c));
    wr_io io = {.sent_us = a->sent_us, .detail = a->detail, .deadline_hit = now_us() >= a->st.deadline_us};
    char snap[sizeof a->op.snapshot];
    int broken = 0;
    if (rs != WR_RUN_OK && rs != WR_RUN_CANCELED) {
        io.outcome = a->cancel_sent && rs == WR_RUN_TIMEOUT ? WR_IO_INTERRUPTED
                     : rs == WR_RUN_NOT_SENT                ? WR_IO_NOT_SENT
                     : rs == WR_RUN_TIMEOUT                 ? WR_IO_TIMEOUT
                                                            : WR_IO_LOST;
        broken = 1;
    } else if (a->st.kind == WR_STEP_SNAPSHOT) {
        PGresult *r = a->steps[a->i_stmt].res;
        if (!failed(r) && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
            snprintf(snap, sizeof snap, "%s", PQgetvalue(r, 0, 0));
            io.snapshot = snap;
            io.outcome = WR_IO_OK;
        } else {
            io.outcome = WR_IO_SQL_ERROR;
        }
    } else {
        PGresult *r = a->steps[a->i_stmt].res;
        if (a->i_check >= 0) io.have_replay = (int16_t)parse_lsn_col(a->steps[a->i_check].res, 0, &io.replay);
        if (a->i_pos >= 0 && parse_lsn_col(a->steps[a->i_pos].res, 0, &io.insert)) {
            io.have_insert = 1;
            parse_lsn_col(a->steps[a->i_pos].res, 1, &io.flushed);
            parse_tli(a->steps[a->i_pos].res, 2, &io.insert_tli);
        }
        if (a->i_snap >= 0 && failed(a->steps[a->i_snap].res)) {
            io.outcome = WR_IO_CHECK_FAILED; /* the statement was aborted: it never ran */
        } else if (a->steps[a->i_stmt].stale) {
            io.outcome = WR_IO_STALE;
        } else if (failed(r)) {
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            snprintf(io.sqlstate, sizeof io.sqlstate, "%s", state ? state : "");
            int canceled = rs == WR_RUN_CANCELED && state && strcmp(state, "57014") == 0;
            io.outcome = !canceled ? WR_IO_SQL_ERROR : a->cancel_sent ? WR_IO_INTERRUPTED : WR_IO_CANCELED;
            PQclear(a->error);
            a->error = r;
            a->steps[a->i_stmt].res = NULL;
        } else if (a->op.kind == WR_OP_COMMIT && strcmp(PQcmdStatus(r), "ROLLBACK") == 0) {
            io.outcome = WR_IO_SQL_ERROR; /* COMMIT of a failed transaction */
            snprintf(io.sqlstate, sizeof io.sqlstate, "25P02");
        } else {
            io.outcome = WR_IO_OK;
            PQclear(a->rows);
            a->rows = r;
            a->steps[a->i_stmt].res = NULL;
        }
        if ((io.outcome == WR_IO_OK || io.outcome == WR_IO_SQL_ERROR) &&
            changes_session_state(a->sql, a->rows ? a->rows : a->error))
            a->conn->dirty = 1;
    }
    feed(a, &io);
    wr_pq_steps_clear(a->steps, a->nsteps);
    a->nsteps = 0;
    /* The connection stays with the session, or goes back. */
    wr_session *s = a->s;
    int in_tx = s->es.tx_node >= 0;
    if (a->st.kind == WR_STEP_RUN && (a->st.flags & (WR_RUN_KEEP | WR_RUN_PINNED)) && in_tx && !broken) {
        s->tx = a->conn;
        a->conn = NULL;
    } else {
        if (s->tx == a->conn) s->tx = NULL;
        wr_cluster_giveback(s->c, a->conn, broken || a->conn->dirty);
        a->conn = NULL;
    }
    a->phase = A_NEXT;
}

/* A connection for the step: the transaction's, an idle one, or a new one. */
static void acquire(wr_async *a) {
    wr_session *s = a->s;
    if (a->st.kind == WR_STEP_RUN && (a->st.flags & WR_RUN_PINNED)) {
        if (!s->tx) {
            feed_unsent(a, WR_IO_NOT_SENT, "the transaction's connection is gone");
            return;
        }
        a->conn = s->tx;
        start_run(a);
        return;
    }
    int got = wr_cluster_try_borrow(s->c, a->st.node, &a->conn);
    if (got == 1) {
        start_run(a);
    } else if (got == 0) {
        a->reserved = 1;
        a->reserved_node = a->st.node;
        if (wr_connect_op_start(&a->cop, &s->c->dsn, (size_t)a->st.node, a->st.deadline_us) != 0) {
            char why[256];
            wr_connect_op_take(&a->cop, why, sizeof why);
            wr_cluster_release_slot(s->c, a->st.node);
            a->reserved = 0;
            feed_unsent(a, WR_IO_NOT_SENT, why);
            return;
        }
        a->phase = A_CONNECT;
    } else if (now_us() >= a->st.deadline_us) {
        feed_unsent(a, WR_IO_BUSY, "no free connection before the deadline (pool_max reached)");
    } else {
        a->phase = A_BORROW;
        a->wake_us = now_us() + POOL_RETRY_US;
        if (a->wake_us > a->st.deadline_us) a->wake_us = a->st.deadline_us;
    }
}

/* The connection being made for a step is done (or failed). */
static void connected(wr_async *a, int probing) {
    wr_session *s = a->s;
    int node = probing ? a->probe_node : a->st.node;
    char why[256];
    PGconn *pg = wr_connect_op_take(&a->cop, why, sizeof why);
    wr_conn *conn = pg ? wr_conn_new(pg, node, !s->c->opt.no_stmt_cache, s->c->opt.stmt_cache_size) : NULL;
    if (!conn) {
        if (pg) PQfinish(pg);
        wr_cluster_release_slot(s->c, node);
        a->reserved = 0;
        char msg[512]; /* a connect error names the node already */
        if (pg) snprintf(msg, sizeof msg, "%s: out of memory", s->c->dsn.name[node]);
        else snprintf(msg, sizeof msg, "%s", why);
        wr_mask_secrets(msg, sizeof msg, wr_cluster_secret(s->c));
        if (probing) {
            wr_cluster_probe_report(s->c, node, NULL, WR_RUN_NOT_SENT, now_us(), a->probe_started_us,
                                    a->st.deadline_us, msg);
            a->phase = A_PROBE;
        } else {
            feed_unsent(a, WR_IO_NOT_SENT, msg);
        }
        return;
    }
    a->reserved = 0;
    a->conn = conn;
    if (probing) {
        memset(a->steps, 0, sizeof a->steps);
        a->steps[0] = (wr_pq_step){.sql = WR_SQL_PROBE};
        a->nsteps = 1;
        a->sent_us = now_us();
        wr_conn_op_start(&a->rop, conn, a->steps, 1, a->st.deadline_us, 1, a->sent_us);
        a->phase = A_PROBE_RUN;
    } else {
        start_run(a);
    }
}

/* Probes the step's nodes one after the other, each within its deadline. */
static void next_probe(wr_async *a) {
    wr_session *s = a->s;
    uint64_t now = now_us();
    while (a->probe_left) {
        int i = __builtin_ctz(a->probe_left);
        a->probe_left &= a->probe_left - 1;
        pthread_mutex_lock(&s->c->mu);
        int may = wr_engine_may_connect(&s->c->eng, i, now) || (a->st.flags & WR_PROBE_FORCE);
        pthread_mutex_unlock(&s->c->mu);
        if (!may || (uint32_t)i >= s->c->n) continue;
        a->probe_node = i;
        a->probe_started_us = now;
        int got = wr_cluster_try_borrow(s->c, i, &a->conn);
        if (got < 0) continue; /* every connection busy: it is up */
        if (got == 1) {
            a->cop.pg = NULL;
            memset(a->steps, 0, sizeof a->steps);
            a->steps[0] = (wr_pq_step){.sql = WR_SQL_PROBE};
            a->nsteps = 1;
            a->sent_us = now;
            wr_conn_op_start(&a->rop, a->conn, a->steps, 1, a->st.deadline_us, 1, now);
            a->phase = A_PROBE_RUN;
            return;
        }
        a->reserved = 1;
        a->reserved_node = i;
        if (wr_connect_op_start(&a->cop, &s->c->dsn, (size_t)i, a->st.deadline_us) != 0) {
            connected(a, 1);
            continue;
        }
        a->phase = A_PROBE_CONNECT;
        return;
    }
    a->phase = A_NEXT;
}

static void probe_done(wr_async *a) {
    wr_run_status rs = wr_conn_op_status(&a->rop);
    wr_cluster_probe_report(a->s->c, a->probe_node, a->steps[0].res, rs, a->sent_us, a->probe_started_us,
                            a->st.deadline_us, wr_conn_op_error(&a->rop));
    int ok = rs == WR_RUN_OK && a->steps[0].res && PQresultStatus(a->steps[0].res) == PGRES_TUPLES_OK;
    wr_pq_steps_clear(a->steps, a->nsteps);
    a->nsteps = 0;
    wr_cluster_giveback(a->s->c, a->conn, !ok);
    a->conn = NULL;
    wr_cluster_note_changes(a->s->c);
    a->phase = A_PROBE;
}

/* The operation is over: keep its rows or its error. */
static void finish(wr_async *a) {
    wr_session *s = a->s;
    int code = a->st.status;
    if (code == WR_OK) {
        a->status = WR_OK;
    } else {
        a->status = wr_session_fail(s, code, a->st.node, a->op.kind == WR_OP_COMMIT, a->error, a->st.msg);
        PQclear(a->rows);
        a->rows = NULL;
    }
    a->phase = A_DONE;
    s->busy = 0;
}

/* ---- poll / advance ------------------------------------------------------------------ */

void wr_async_poll(const wr_async *a, int *fd, int *events, uint64_t *wake_us) {
    short ev = 0;
    int f = -1;
    uint64_t wake = now_us();
    if (a) {
        switch (a->phase) {
        case A_CONNECT:
        case A_PROBE_CONNECT:
            wr_connect_op_poll(&a->cop, &f, &ev, &wake);
            break;
        case A_RUN:
        case A_PROBE_RUN:
            wr_conn_op_poll(&a->rop, &f, &ev, &wake);
            break;
        case A_WAIT:
        case A_BORROW:
            wake = a->wake_us;
            break;
        default: /* ready to advance now */
            break;
        }
    }
    if (fd) *fd = f;
    if (events) *events = (ev & POLLIN ? WR_WAIT_READ : 0) | (ev & POLLOUT ? WR_WAIT_WRITE : 0);
    if (wake_us) *wake_us = wake;
}

int wr_async_advance(wr_async *a, int revents) {
    if (!a) return 0;
    short rev = (short)((revents & WR_WAIT_READ ? POLLIN : 0) | (revents & WR_WAIT_WRITE ? POLLOUT : 0));
    wr_cluster *c = a->s->c;
    for (int guard = 0; guard < 10000 && a->phase != A_DONE; guard++) {
        uint64_t now = now_us();
        switch (a->phase) {
        case A_NEXT:
            if (a->canceled && !a->cancel_sent) { /* between round trips: nothing is in flight */
                a->st.kind = WR_STEP_DONE;
                a->st.status = WR_ERR_INTERRUPTED;
                a->st.node = a->op.node;
                snprintf(a->st.msg, sizeof a->st.msg, "interrupted before the statement was sent");
                finish(a);
                return 0;
            }
            pthread_mutex_lock(&c->mu);
            wr_engine_tick(&c->eng, now);
            wr_op_next(&a->op, &a->s->es, &c->eng, now, &a->st);
            pthread_mutex_unlock(&c->mu);
            switch ((wr_step_kind)a->st.kind) {
            case WR_STEP_WAIT:
                a->phase = A_WAIT;
                a->wake_us = a->st.deadline_us;
                break;
            case WR_STEP_PROBE:
                a->probe_left = a->st.probe_mask;
                a->phase = A_PROBE;
                break;
            case WR_STEP_RUN:
            case WR_STEP_SNAPSHOT:
                acquire(a);
                break;
            case WR_STEP_DONE:
                finish(a);
                return 0;
            }
            break;
        case A_WAIT:
            if (now < a->wake_us && !a->canceled) return 1;
            a->phase = A_NEXT;
            break;
        case A_BORROW:
            if (now < a->wake_us && !a->canceled) return 1;
            if (a->canceled) {
                a->phase = A_NEXT;
                break;
            }
            acquire(a);
            if (a->phase == A_BORROW) return 1;
            break;
        case A_CONNECT:
        case A_PROBE_CONNECT:
            if (a->canceled) {
                wr_connect_op_abandon(&a->cop);
                drop_conn(a, 1);
                a->phase = A_NEXT;
                break;
            }
            if (wr_connect_op_advance(&a->cop, rev, now)) return 1;
            rev = 0;
            connected(a, a->phase == A_PROBE_CONNECT);
            break;
        case A_RUN:
            if (a->canceled && !a->cancel_sent) send_cancel(a, now);
            if (wr_conn_op_advance(&a->rop, rev, now)) return 1;
            rev = 0;
            finish_run(a);
            break;
        case A_PROBE:
            if (a->canceled) {
                a->phase = A_NEXT;
                break;
            }
            next_probe(a);
            break;
        case A_PROBE_RUN:
            if (wr_conn_op_advance(&a->rop, rev, now)) return 1;
            rev = 0;
            probe_done(a);
            break;
        }
    }
    return a->phase != A_DONE;
}

void wr_async_cancel(wr_async *a) {
    if (!a || a->phase == A_DONE) return;
    a->canceled = 1;
    if (a->phase == A_RUN && !a->cancel_sent) send_cancel(a, now_us());
}

wr_status wr_async_result(wr_async *a, wr_result **out) {
    if (out) *out = NULL;
    if (!a) return WR_ERR_ARG;
    if (a->phase != A_DONE) return wr_err_set(&a->s->err, NULL, WR_ERR_STATE, -1, NULL, "the operation is still running");
    if (a->status != WR_OK) return a->status;
    if (out && a->rows) {
        *out = wr_result_wrap(a->rows, a->op.result_node, (wr_reason)a->op.result_reason, a->op.result_lsn);
        a->rows = NULL;
        if (!*out) return wr_err_set(&a->s->err, NULL, WR_ERR_NOMEM, a->op.result_node, NULL, "out of memory");
    }
    return WR_OK;
}
