/* session.c — one user's statements, driven by the engine's session engine
 * (core/engine/op.c): it says what runs where and by when; this file runs it
 * on pooled libpq connections, within that deadline, and reports back what
 * happened. No routing or safety rule lives here. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "internal.h"

#define BEGIN_READ_ONLY "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
#define CANCEL_GRACE_US 1000000u /* a canceled statement on the primary: wait this long for proof */

struct wr_session {
    wr_cluster *c;
    wr_sess es;         /* the engine's view of this session */
    wr_err err;
    wr_conn *tx;        /* the pinned connection of an open transaction */
    char token[WR_TOKEN_BUFSIZE];
};

/* ---- small helpers ------------------------------------------------------ */

static const char *secret(const wr_session *s) { return wr_cluster_secret(s->c); }
static const char *node_name(const wr_session *s, int i) { return wr_cluster_node_name(s->c, (size_t)i); }

static int failed(const PGresult *r) {
    ExecStatusType st = PQresultStatus(r);
    return !r || (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK);
}

/* The server's error, with its SQLSTATE and the node. */
static wr_status sql_error(wr_session *s, int node, const PGresult *r) {
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (!msg) msg = PQresultErrorMessage(r);
    return wr_err_set(&s->err, secret(s), WR_ERR_SQL, node, state, "%s%s%s (SQLSTATE %s, node %s)", msg,
                      detail ? ": " : "", detail ? detail : "", state ? state : "none", node_name(s, node));
}

/* The positions in column cols of a one-row result. */
static int parse_lsn_col(const PGresult *r, int col, wr_lsn *out) {
    return r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) > col &&
           !PQgetisnull(r, 0, col) && wr_lsn_parse(PQgetvalue(r, 0, col), out) == 0;
}

static int parse_tli(const PGresult *r, int col, uint32_t *out) {
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) <= col ||
        PQgetisnull(r, 0, col))
        return 0;
    long long v = atoll(PQgetvalue(r, 0, col));
    if (v <= 0 || v > UINT32_MAX) return 0;
    *out = (uint32_t)v;
    return 1;
}

/* BEGIN, START, COMMIT, END, ROLLBACK or ABORT as the first word: a
 * transaction the engine would not know about. */
static const char *tx_control(const char *sql) {
    static const char *const words[] = {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT"};
    const char *p = sql;
    for (;;) { /* skip blanks and -- comments */
        while (isspace((unsigned char)*p)) p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n') p++;
            continue;
        }
        break;
    }
    size_t len = 0;
    while (isalpha((unsigned char)p[len])) len++;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (len == strlen(words[i]) && strncasecmp(p, words[i], len) == 0) return words[i];
    return NULL;
}

static wr_status check_args(wr_session *s, const char *sql, int nparams, const char *const *params) {
    wr_err_clear(&s->err);
    if (!sql) return wr_err_set(&s->err, NULL, WR_ERR_ARG, -1, NULL, "SQL text is NULL");
    if (!*sql) return wr_err_set(&s->err, NULL, WR_ERR_ARG, -1, NULL, "SQL text is empty");
    if (nparams < 0 || nparams > 65535)
        return wr_err_set(&s->err, NULL, WR_ERR_ARG, -1, NULL,
                          "%d parameters: PostgreSQL takes at most 65535 in one statement", nparams);
    if (nparams > 0 && !params)
        return wr_err_set(&s->err, NULL, WR_ERR_ARG, -1, NULL, "%d parameters but no parameter array", nparams);
    const char *w = tx_control(sql);
    if (w)
        return wr_err_set(&s->err, NULL, WR_ERR_ARG, -1, NULL,
                          "%s is not run through query/exec: use wr_begin/wr_commit/wr_rollback (begin(), "
                          "transaction() in Lua and Python), so the transaction stays on one node and its "
                          "position is recorded",
                          w);
    return WR_OK;
}

/* ---- session lifecycle ---------------------------------------------------- */

wr_session *wr_session_new(wr_cluster *c) {
    if (!c) return NULL;
    wr_session *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->c = c;
    wr_err_clear(&s->err);
    pthread_mutex_lock(&c->mu);
    wr_sess_init(&s->es, c->seed++);
    pthread_mutex_unlock(&c->mu);
    return s;
}

void wr_session_free(wr_session *s) {
    if (!s) return;
    if (s->tx) wr_rollback(s);
    free(s);
}

wr_status wr_session_errcode(const wr_session *s) { return s ? s->err.code : WR_ERR_ARG; }
const char *wr_session_errmsg(const wr_session *s) { return s ? s->err.msg : "no session handle"; }
const char *wr_session_sqlstate(const wr_session *s) { return s ? s->err.sqlstate : ""; }
int wr_session_errnode(const wr_session *s) { return s ? s->err.node : -1; }
wr_lsn wr_session_need(const wr_session *s) { return s ? s->es.tl.need : 0; }
int wr_session_in_transaction(const wr_session *s) { return s && s->tx; }

/* ---- running the engine's steps ------------------------------------------ */

/* What a RUN step needs besides the step itself. */
typedef struct run_ctx {
    const char *sql;
    int np;
    const char *const *pv;
    PGresult *rows;   /* the statement's result when it succeeded (owned) */
    PGresult *error;  /* its error result when it failed (owned) */
    int broken;       /* the connection must not be reused */
    char detail[256];
} run_ctx;

static void ctx_clear(run_ctx *x) {
    PQclear(x->rows);
    PQclear(x->error);
    x->rows = x->error = NULL;
}

static wr_io_outcome from_run_status(wr_run_status rs) {
    return rs == WR_RUN_NOT_SENT ? WR_IO_NOT_SENT : rs == WR_RUN_TIMEOUT ? WR_IO_TIMEOUT : WR_IO_LOST;
}

/* Runs one RUN step; fills io. The connection stays with the session or
 * goes back to the pool after the engine has seen the outcome (finish_run). */
static wr_conn *run_step(wr_session *s, const wr_op *op, const wr_step *st, run_ctx *x, wr_io *io) {
    wr_cluster *c = s->c;
    memset(io, 0, sizeof *io);
    ctx_clear(x);
    x->broken = 0;
    x->detail[0] = '\0';
    io->detail = x->detail;
    wr_conn *conn = NULL;
    if (st->flags & WR_RUN_PINNED) {
        conn = s->tx;
        if (!conn) {
            io->outcome = WR_IO_NOT_SENT;
            snprintf(x->detail, sizeof x->detail, "the transaction's connection is gone");
            return NULL;
        }
    } else {
        wr_err e;
        wr_err_clear(&e);
        wr_status bs = wr_cluster_borrow(c, st->node, st->deadline_us, &conn, &e);
        if (bs != WR_OK) {
            io->outcome = bs == WR_ERR_TIMEOUT ? WR_IO_BUSY : WR_IO_NOT_SENT;
            snprintf(x->detail, sizeof x->detail, "%s", e.msg);
            return NULL;
        }
    }
    const char *snap[1] = {op->snapshot};
    wr_pq_step steps[4];
    int n = 0, i_check = -1, i_snap = -1, i_stmt, i_pos = -1;
    memset(steps, 0, sizeof steps);
    if (st->flags & WR_RUN_CHECK_REPLAY) {
        /* A BEGIN must not share the check's implicit transaction. */
        steps[n] = (wr_pq_step){.sql = WR_SQL_REPLAY_LSN, .sync_after = (st->flags & WR_RUN_KEEP) != 0};
        i_check = n++;
    }
    if (st->flags & WR_RUN_SNAPSHOT_CHECK) {
        steps[n] = (wr_pq_step){.sql = WR_SQL_SNAPSHOT_CHECK, .nparams = 1, .params = snap};
        i_snap = n++;
    }
    steps[n] = (wr_pq_step){.sql = x->sql, .nparams = x->np, .params = x->pv,
                            .sync_after = (st->flags & WR_RUN_INSERT_POS) != 0};
    i_stmt = n++;
    if (st->flags & WR_RUN_INSERT_POS) {
        steps[n] = (wr_pq_step){.sql = WR_SQL_INSERT_POS};
        i_pos = n++;
    }
    wr_run_opts ro = {.deadline_us = st->deadline_us,
                      /* a replica read moves on at once; the primary waits for proof */
                      .cancel_grace_us = op->on_primary || (st->flags & WR_RUN_PINNED) ? CANCEL_GRACE_US : 1};
    io->sent_us = wr_now_us();
    wr_run_status rs = wr_conn_run(conn, steps, n, &ro, x->detail, sizeof x->detail);
    wr_mask_secrets(x->detail, sizeof x->detail, secret(s));
    if (rs != WR_RUN_OK && rs != WR_RUN_CANCELED) {
        io->outcome = from_run_status(rs);
        x->broken = 1;
        return conn;
    }
    if (i_check >= 0) io->have_replay = (int16_t)parse_lsn_col(steps[i_check].res, 0, &io->replay);
    if (i_pos >= 0 && parse_lsn_col(steps[i_pos].res, 0, &io->insert)) {
        io->have_insert = 1;
        parse_lsn_col(steps[i_pos].res, 1, &io->flushed);
        parse_tli(steps[i_pos].res, 2, &io->insert_tli);
    }
    PGresult *r = steps[i_stmt].res;
    if (i_snap >= 0 && failed(steps[i_snap].res)) {
        io->outcome = WR_IO_CHECK_FAILED; /* the statement was aborted: it never ran */
    } else if (steps[i_stmt].stale) {
        io->outcome = WR_IO_STALE;
    } else if (failed(r)) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        snprintf(io->sqlstate, sizeof io->sqlstate, "%s", state ? state : "");
        io->outcome = rs == WR_RUN_CANCELED && state && strcmp(state, "57014") == 0 ? WR_IO_CANCELED
                                                                                    : WR_IO_SQL_ERROR;
        x->error = r;
        steps[i_stmt].res = NULL;
    } else if (op->kind == WR_OP_COMMIT && strcmp(PQcmdStatus(r), "ROLLBACK") == 0) {
        io->outcome = WR_IO_SQL_ERROR; /* COMMIT of a failed transaction */
        snprintf(io->sqlstate, sizeof io->sqlstate, "25P02");
    } else {
        io->outcome = WR_IO_OK;
        x->rows = r;
        steps[i_stmt].res = NULL;
    }
    wr_pq_steps_clear(steps, n);
    return conn;
}

/* After the engine saw the outcome: the connection stays pinned, goes back
 * to the pool, or is closed. */
static void finish_run(wr_session *s, const wr_step *st, wr_conn *conn, const run_ctx *x) {
    if (!conn) {
        if (st->flags & WR_RUN_PINNED) s->tx = NULL;
        return;
    }
    int in_tx = s->es.tx_node >= 0;
    if ((st->flags & WR_RUN_KEEP) && in_tx && !x->broken) {
        s->tx = conn;
        return;
    }
    if ((st->flags & WR_RUN_PINNED) && in_tx && !x->broken) return;
    if (st->flags & WR_RUN_PINNED) s->tx = NULL;
    wr_cluster_giveback(s->c, conn, x->broken);
}

/* The replica's snapshot for a move to the primary (G2). */
static void run_snapshot(wr_session *s, const wr_step *st, wr_io *io, char *text, size_t cap, char *detail,
                         size_t dlen) {
    memset(io, 0, sizeof *io);
    io->detail = detail;
    detail[0] = '\0';
    text[0] = '\0';
    wr_conn *conn;
    wr_err e;
    wr_err_clear(&e);
    wr_status bs = wr_cluster_borrow(s->c, st->node, st->deadline_us, &conn, &e);
    if (bs != WR_OK) {
        io->outcome = bs == WR_ERR_TIMEOUT ? WR_IO_BUSY : WR_IO_NOT_SENT;
        snprintf(detail, dlen, "%s", e.msg);
        return;
    }
    wr_pq_step step = {.sql = WR_SQL_SNAPSHOT};
    wr_run_opts ro = {.deadline_us = st->deadline_us, .cancel_grace_us = 1};
    io->sent_us = wr_now_us();
    wr_run_status rs = wr_conn_run(conn, &step, 1, &ro, detail, dlen);
    if (rs == WR_RUN_OK && !failed(step.res) && PQntuples(step.res) == 1 && !PQgetisnull(step.res, 0, 0)) {
        snprintf(text, cap, "%s", PQgetvalue(step.res, 0, 0));
        io->outcome = WR_IO_OK;
        io->snapshot = text;
    } else {
        io->outcome = rs == WR_RUN_OK ? WR_IO_SQL_ERROR : from_run_status(rs);
    }
    wr_pq_steps_clear(&step, 1);
    wr_cluster_giveback(s->c, conn, rs != WR_RUN_OK);
}

/* Drives one operation to its end. */
static wr_status run_op(wr_session *s, wr_op_kind kind, const char *sql, int np, const char *const *pv,
                        wr_result **out) {
    wr_cluster *c = s->c;
    wr_op op;
    wr_step st;
    run_ctx x = {.sql = sql, .np = np, .pv = pv};
    if (c->opt.no_refresher) wr_cluster_probe_due(c);
    pthread_mutex_lock(&c->mu);
    wr_op_start(&op, kind, wr_now_us());
    pthread_mutex_unlock(&c->mu);
    for (int guard = 0; guard < 100000; guard++) {
        pthread_mutex_lock(&c->mu);
        wr_engine_tick(&c->eng, wr_now_us());
        wr_op_next(&op, &s->es, &c->eng, wr_now_us(), &st);
        pthread_mutex_unlock(&c->mu);
        wr_io io;
        switch ((wr_step_kind)st.kind) {
        case WR_STEP_WAIT:
            wr_sleep_until(st.deadline_us);
            continue;
        case WR_STEP_PROBE:
            wr_cluster_probe_mask(c, st.probe_mask, st.deadline_us, (st.flags & WR_PROBE_FORCE) != 0);
            continue;
        case WR_STEP_SNAPSHOT: {
            char text[sizeof op.snapshot], detail[256];
            run_snapshot(s, &st, &io, text, sizeof text, detail, sizeof detail);
            pthread_mutex_lock(&c->mu);
            wr_op_feed(&op, &s->es, &c->eng, &io, wr_now_us(), wr_cluster_rand(c));
            pthread_mutex_unlock(&c->mu);
            wr_cluster_note_changes(c);
            continue;
        }
        case WR_STEP_RUN: {
            wr_conn *conn = run_step(s, &op, &st, &x, &io);
            pthread_mutex_lock(&c->mu);
            wr_op_feed(&op, &s->es, &c->eng, &io, wr_now_us(), wr_cluster_rand(c));
            pthread_mutex_unlock(&c->mu);
            finish_run(s, &st, conn, &x);
            wr_cluster_note_changes(c);
            continue;
        }
        case WR_STEP_DONE:
            break;
        }
        break;
    }
    if (st.kind != WR_STEP_DONE) {
        ctx_clear(&x);
        return wr_err_set(&s->err, NULL, WR_ERR_INTERNAL, -1, NULL, "the operation did not settle");
    }
    wr_status code = (wr_status)st.status;
    if (code == WR_OK) {
        PGresult *rows = x.rows;
        x.rows = NULL;
        ctx_clear(&x);
        if (!out) {
            PQclear(rows);
            return WR_OK;
        }
        if (!rows) return WR_OK; /* BEGIN, COMMIT, ROLLBACK: no rows asked for */
        *out = wr_result_wrap(rows, op.result_node, (wr_reason)op.result_reason, op.result_lsn);
        return *out ? WR_OK : wr_err_set(&s->err, NULL, WR_ERR_NOMEM, op.result_node, NULL, "out of memory");
    }
    wr_status ret;
    if (code == WR_ERR_SQL && x.error) ret = sql_error(s, op.result_node, x.error);
    else if (code == WR_ERR_SQL)
        ret = wr_err_set(&s->err, NULL, WR_ERR_SQL, op.result_node, op.kind == WR_OP_COMMIT ? "25P02" : NULL,
                         op.kind == WR_OP_COMMIT ? "transaction rolled back: an earlier statement in it failed "
                                                   "(node %s)"
                                                 : "statement failed (node %s)",
                         op.result_node >= 0 ? node_name(s, op.result_node) : "none");
    else ret = wr_err_set(&s->err, secret(s), code, op.result_node, NULL, "%s", st.msg);
    ctx_clear(&x);
    return ret;
}

/* ---- the public calls ------------------------------------------------------- */

wr_status wr_query(wr_session *s, const char *sql, int nparams, const char *const *params, unsigned flags,
                   wr_result **out) {
    if (out) *out = NULL;
    if (!s) return WR_ERR_ARG;
    wr_status st = check_args(s, sql, nparams, params);
    if (st != WR_OK) return st;
    return run_op(s, s->tx ? WR_OP_TX : (flags & WR_PRIMARY) ? WR_OP_READ_PRIMARY : WR_OP_READ, sql, nparams,
                  params, out);
}

wr_status wr_exec(wr_session *s, const char *sql, int nparams, const char *const *params, wr_result **out) {
    if (out) *out = NULL;
    if (!s) return WR_ERR_ARG;
    wr_status st = check_args(s, sql, nparams, params);
    if (st != WR_OK) return st;
    return run_op(s, s->tx ? WR_OP_TX : WR_OP_WRITE, sql, nparams, params, out);
}

wr_status wr_begin(wr_session *s, unsigned flags) {
    if (!s) return WR_ERR_ARG;
    wr_err_clear(&s->err);
    if (flags & WR_READ_ONLY) return run_op(s, WR_OP_BEGIN_READ_ONLY, BEGIN_READ_ONLY, 0, NULL, NULL);
    return run_op(s, WR_OP_BEGIN, "BEGIN", 0, NULL, NULL);
}

wr_status wr_commit(wr_session *s) {
    if (!s) return WR_ERR_ARG;
    wr_err_clear(&s->err);
    return run_op(s, WR_OP_COMMIT, "COMMIT", 0, NULL, NULL);
}

wr_status wr_rollback(wr_session *s) {
    if (!s) return WR_ERR_ARG;
    wr_err_clear(&s->err);
    return run_op(s, WR_OP_ROLLBACK, "ROLLBACK", 0, NULL, NULL);
}

/* ---- tokens --------------------------------------------------------------- */

static void node_ids(wr_cluster *c, uint32_t *ids) {
    for (size_t i = 0; i < c->n; i++) ids[i] = c->eng.nodes[i].id; /* set at open, read-only */
}

static wr_status decode(wr_session *s, const char *token, wr_timeline *t, int *empty) {
    const wr_options *o = &s->c->opt;
    const char *msg = "invalid";
    uint32_t ids[WR_MAX_NODES];
    *empty = 0;
    if (!token || !*token) { /* a cleared cookie: no token */
        *empty = 1;
        return WR_OK;
    }
    node_ids(s->c, ids);
    wr_token_result r = wr_token_read(token, strlen(token), (int64_t)time(NULL), wr_now_us(), o->token_ttl_s,
                                      o->token_key_len ? o->token_key : NULL, o->token_key_len, ids, s->c->n, t,
                                      &msg);
    if (r == WR_TOKEN_EXPIRED) {
        *empty = 1;
        return WR_OK;
    }
    if (r != WR_TOKEN_OK) return wr_err_set(&s->err, NULL, WR_ERR_TOKEN, -1, NULL, "invalid session token: %s", msg);
    return WR_OK;
}

wr_status wr_session_resume(wr_session *s, const char *token) {
    if (!s) return WR_ERR_ARG;
    wr_err_clear(&s->err);
    wr_timeline t;
    int empty;
    wr_status st = decode(s, token, &t, &empty);
    if (st != WR_OK) return st;
    if (empty) wr_timeline_init(&t);
    s->es.tl = t;
    s->es.need_unproven = !empty;
    return WR_OK;
}

wr_status wr_session_require(wr_session *s, const char *token) {
    if (!s) return WR_ERR_ARG;
    wr_err_clear(&s->err);
    wr_timeline t;
    int empty;
    wr_status st = decode(s, token, &t, &empty);
    if (st == WR_OK && !empty) {
        wr_timeline_merge(&s->es.tl, &t);
        s->es.need_unproven = 1;
    }
    return st;
}

const char *wr_session_token(wr_session *s) {
    if (!s) return "";
    const wr_options *o = &s->c->opt;
    uint32_t ids[WR_MAX_NODES];
    node_ids(s->c, ids);
    size_t n = wr_token_write(&s->es.tl, ids, s->c->n, (int64_t)time(NULL), o->token_key_len ? o->token_key : NULL,
                              o->token_key_len, s->token, sizeof s->token);
    if (n == 0) s->token[0] = '\0';
    return s->token;
}
