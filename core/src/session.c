/* session.c — one user's statements: reads routed by the decision core with
 * piggybacked position checks, writes on the primary with their commit
 * position captured in the same round trip, explicit transactions pinned to
 * one connection, and the session token. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define BEGIN_READ_ONLY "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"

struct wr_session {
    wr_cluster *c;
    wr_timeline tl;
    int need_unknown;   /* a write committed but its position could not be
                           read: reads go to the primary until one settles it */
    int need_unproven;  /* the need came from a token and may lie beyond the
                           primary: clamped when no replica can serve it */
    uint32_t seed;
    wr_err err;
    wr_conn *tx;        /* the pinned connection of an open transaction */
    int tx_primary;     /* it runs on the primary */
    wr_lsn tx_lsn;      /* read-only on a replica: position proven at begin */
    char token[WR_TOKEN_BUFSIZE];
};

/* ---- small helpers ------------------------------------------------------ */

static const char *secret(const wr_session *s) { return wr_cluster_secret(s->c); }
static const char *node_name(const wr_session *s, int i) { return wr_cluster_node_name(s->c, (size_t)i); }

static int failed(const PGresult *r) {
    ExecStatusType st = PQresultStatus(r);
    return st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK;
}

static int has_state(const PGresult *r, const char *state) {
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return st && strcmp(st, state) == 0;
}

/* The server's error, with its SQLSTATE and the node. */
static wr_status sql_error(wr_session *s, int node, const PGresult *r) {
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (!msg) msg = PQresultErrorMessage(r);
    wr_cluster_count(s->c, node, WR_REASON_NONE, 1);
    return wr_err_set(&s->err, secret(s), WR_ERR_SQL, node, state, "%s%s%s (SQLSTATE %s, node %s)", msg,
                      detail ? ": " : "", detail ? detail : "", state ? state : "none", node_name(s, node));
}

static wr_status lost_error(wr_session *s, wr_status code, int node, const char *what, const char *why) {
    wr_cluster_count(s->c, node, WR_REASON_NONE, 1);
    return wr_err_set(&s->err, secret(s), code, node, NULL, "%s on %s: %s", what, node_name(s, node), why);
}

/* The position in column col of a one-row result. */
static int parse_lsn_col(const PGresult *r, int col, wr_lsn *out) {
    return r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) > col &&
           !PQgetisnull(r, 0, col) && wr_lsn_parse(PQgetvalue(r, 0, col), out) == 0;
}

static int parse_lsn_result(const PGresult *r, wr_lsn *out) { return parse_lsn_col(r, 0, out); }

/* The position a write (or a read on the primary) must be seen at, from
 * WR_SQL_INSERT_LSN: the end of the last record, which replicas report. */
static int parse_insert_lsn(wr_session *s, const PGresult *r, wr_lsn *out) {
    wr_lsn insert;
    if (!parse_lsn_result(r, &insert)) return 0;
    pthread_mutex_lock(&s->c->mu);
    *out = wr_lsn_record_end(insert, s->c->wal_block_size, s->c->wal_segment_size);
    pthread_mutex_unlock(&s->c->mu);
    return 1;
}

/* Records the primary's insert and flush positions read by WR_SQL_INSERT_LSN. */
static void observe_primary(wr_session *s, int p, const PGresult *r, wr_lsn lsn, uint64_t sent) {
    wr_lsn flushed = 0;
    parse_lsn_col(r, 1, &flushed);
    wr_cluster_observe(s->c, p, lsn, flushed, sent);
}

static wr_status deliver(wr_session *s, PGresult *res, int node, wr_reason why, wr_lsn lsn, wr_result **out) {
    wr_cluster_count(s->c, node, why, 0);
    if (!out) {
        PQclear(res);
        return WR_OK;
    }
    *out = wr_result_wrap(res, node, why, lsn);
    return *out ? WR_OK : wr_err_set(&s->err, NULL, WR_ERR_NOMEM, node, NULL, "out of memory");
}

static wr_status check_args(wr_session *s, const char *sql, int nparams, const char *const *params) {
    wr_err_clear(&s->err);
    if (!sql) return wr_err_set(&s->err, NULL, WR_ERR_ARG, -1, NULL, "SQL text is NULL");
    if (nparams < 0 || nparams > 65535)
        return wr_err_set(&s->err, NULL, WR_ERR_ARG, -1, NULL, "parameter count %d is out of range", nparams);
    if (nparams > 0 && !params)
        return wr_err_set(&s->err, NULL, WR_ERR_ARG, -1, NULL, "%d parameters but no parameter array", nparams);
    return WR_OK;
}

/* ---- session lifecycle ---------------------------------------------------- */

wr_session *wr_session_new(wr_cluster *c) {
    if (!c) return NULL;
    wr_session *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->c = c;
    wr_timeline_init(&s->tl);
    wr_err_clear(&s->err);
    pthread_mutex_lock(&c->mu);
    s->seed = c->seed++;
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
wr_lsn wr_session_need(const wr_session *s) { return s ? s->tl.need : 0; }
int wr_session_in_transaction(const wr_session *s) { return s && s->tx; }

/* ---- reads ---------------------------------------------------------------- */

typedef enum { RD_OK, RD_BEHIND, RD_NODE_FAILED, RD_READ_ONLY, RD_FAILED } read_outcome;

/* One read attempt on node i: [position check;] statement, one round trip.
 * On RD_OK, *res holds the rows and *seen a position the read is proven to
 * have seen. keep: the connection stays borrowed in *kept (transactions). */
static read_outcome read_on(wr_session *s, int i, int check, wr_lsn need, wr_lsn cached, const char *sql,
                            int np, const char *const *pv, PGresult **res, wr_lsn *seen, wr_conn **kept) {
    wr_conn *conn;
    wr_err e;
    if (wr_cluster_borrow(s->c, i, &conn, &e) != WR_OK) return RD_NODE_FAILED;
    for (int attempt = 0;; attempt++) {
        /* BEGIN must not share the check's implicit transaction. */
        wr_step steps[2] = {{.sql = WR_SQL_REPLAY_LSN, .sync_after = kept != NULL},
                            {.sql = sql, .nparams = np, .params = pv}};
        wr_step *read = check ? &steps[1] : &steps[0];
        if (!check) steps[0] = steps[1];
        char errmsg[256];
        uint64_t sent = wr_now_us();
        if (wr_conn_run(conn, steps, check ? 2 : 1, errmsg, sizeof errmsg) != 0) {
            wr_cluster_giveback(s->c, conn, 1);
            wr_cluster_node_down(s->c, i, errmsg);
            return RD_NODE_FAILED;
        }
        wr_lsn at = cached;
        if (check) {
            if (!parse_lsn_result(steps[0].res, &at)) { /* not a replica (any more) */
                wr_steps_clear(steps, 2);
                wr_cluster_giveback(s->c, conn, 0);
                wr_cluster_probe_all(s->c);
                return RD_NODE_FAILED;
            }
            wr_cluster_observe(s->c, i, at, 0, sent);
            if (at < need) {
                wr_steps_clear(steps, 2);
                wr_cluster_giveback(s->c, conn, 0);
                return RD_BEHIND;
            }
        }
        if (read->stale && attempt == 0) { /* cached plan went stale: nothing ran */
            wr_steps_clear(steps, 2);
            continue;
        }
        if (failed(read->res)) {
            read_outcome o = has_state(read->res, "25006") ? RD_READ_ONLY : RD_FAILED;
            if (o == RD_FAILED) sql_error(s, i, read->res);
            wr_steps_clear(steps, 2);
            wr_cluster_giveback(s->c, conn, 0);
            return o;
        }
        *res = read->res;
        read->res = NULL;
        wr_steps_clear(steps, 2);
        *seen = at;
        if (kept) *kept = conn;
        else wr_cluster_giveback(s->c, conn, 0);
        return RD_OK;
    }
}

/* One statement on the primary, followed after a Sync by the primary's insert
 * position: past the statement's commit record, and an upper bound of what it
 * saw (G1, G2). `writes`: the statement changes data, so it is re-sent only
 * when it provably did not run (no connection made, the node turned read-only
 * (25006), a cached statement refused before execution): a connection lost
 * while it was in flight is an unknown outcome (G5). A read is simply re-run.
 * kept: the connection stays borrowed (an explicit transaction). */
static wr_status on_primary(wr_session *s, const char *sql, int np, const char *const *pv, wr_reason why,
                            int writes, wr_result **out, wr_conn **kept) {
    for (int attempt = 0; attempt < 3; attempt++) {
        int p = wr_cluster_find_primary(s->c);
        if (p < 0) break;
        wr_conn *conn;
        if (wr_cluster_borrow(s->c, p, &conn, &s->err) != WR_OK) continue;
        wr_step steps[2] = {{.sql = sql, .nparams = np, .params = pv, .sync_after = 1},
                            {.sql = WR_SQL_INSERT_LSN}};
        char errmsg[256];
        uint64_t sent = wr_now_us();
        if (wr_conn_run(conn, steps, 2, errmsg, sizeof errmsg) != 0) {
            wr_cluster_giveback(s->c, conn, 1);
            wr_cluster_node_down(s->c, p, errmsg);
            if (writes)
                return lost_error(s, WR_ERR_UNKNOWN_OUTCOME, p,
                                  "connection lost while a write was in flight (it may or may not have committed)",
                                  errmsg);
            lost_error(s, WR_ERR_CONNECT, p, "connection lost during a read", errmsg);
            continue;
        }
        if (steps[0].stale || has_state(steps[0].res, "25006")) { /* nothing ran */
            int read_only = !steps[0].stale;
            wr_steps_clear(steps, 2);
            wr_cluster_giveback(s->c, conn, 0);
            if (read_only) {
                wr_cluster_probe_all(s->c); /* the primary moved */
                wr_err_set(&s->err, NULL, WR_ERR_NO_PRIMARY, p, "25006", "%s is read-only", node_name(s, p));
            }
            continue;
        }
        if (failed(steps[0].res)) {
            wr_status st = sql_error(s, p, steps[0].res);
            wr_steps_clear(steps, 2);
            wr_cluster_giveback(s->c, conn, 0);
            return st;
        }
        wr_lsn lsn = 0;
        if (parse_insert_lsn(s, steps[1].res, &lsn)) {
            observe_primary(s, p, steps[1].res, lsn, sent);
            wr_timeline_wrote(&s->tl, lsn);
            s->need_unknown = 0;
        } else if (writes) {
            s->need_unknown = 1; /* committed, position unread: read the primary until settled */
        }
        PGresult *res = steps[0].res;
        steps[0].res = NULL;
        wr_steps_clear(steps, 2);
        if (kept) *kept = conn;
        else wr_cluster_giveback(s->c, conn, 0);
        return deliver(s, res, p, why, lsn, out);
    }
    if (s->err.code == WR_OK || s->err.code == WR_ERR_CONNECT) {
        char last[WR_MSG_SIZE];
        snprintf(last, sizeof last, "%s", s->err.msg);
        wr_err_set(&s->err, NULL, WR_ERR_NO_PRIMARY, s->err.node, NULL, "no primary is reachable%s%s%s",
                   writes ? "; the write was not sent" : "", last[0] ? ": " : "", last);
    }
    return s->err.code;
}

static wr_status read_primary(wr_session *s, const char *sql, int np, const char *const *pv, wr_reason why,
                              wr_result **out, wr_conn **kept) {
    /* A statement a replica refused as a write (25006) is one. */
    return on_primary(s, sql, np, pv, why, why == WR_REASON_PRIMARY_READ_ONLY, out, kept);
}

static void clamp(wr_session *s);

/* Routes one read (or the BEGIN of a read-only transaction, with kept). */
static wr_status route_read(wr_session *s, const char *sql, int np, const char *const *pv, unsigned flags,
                            wr_result **out, wr_conn **kept, int *used_primary, wr_lsn *proven) {
    wr_cluster *c = s->c;
    if (used_primary) *used_primary = 0;
    if (flags & WR_PRIMARY || s->need_unknown) {
        if (used_primary) *used_primary = 1;
        return read_primary(s, sql, np, pv, WR_REASON_PRIMARY_FORCED, out, kept);
    }
    wr_cluster_maybe_refresh(c);
    wr_policy pol = {.budget_us = (uint64_t)c->opt.read_budget_ms * 1000,
                     .retry_interval_us = (uint64_t)c->opt.retry_interval_ms * 1000,
                     .seed = s->seed};
    wr_node_view views[WR_MAX_NODES];
    uint64_t start = wr_now_us();
    uint32_t tried = 0;
    int waited = 0;
    for (int round = 0; round < 10000; round++) {
        uint64_t now = wr_now_us();
        wr_cluster_views(c, views, now);
        wr_choice ch = wr_decide_read(&s->tl, views, c->n, start, now, tried, waited, &pol);
        if (s->need_unproven && (ch.action == WR_ACT_WAIT || (ch.action == WR_ACT_PRIMARY &&
                                                              ch.reason != WR_REASON_PRIMARY_NO_REPLICA))) {
            /* No replica proves the token's need: it may be beyond the
             * primary (a forged token, or one from before a failover). */
            s->need_unproven = 0;
            clamp(s);
            continue;
        }
        if (ch.action == WR_ACT_WAIT) {
            wr_sleep_us(ch.wait_us);
            waited = 1;
            tried = 0;
            continue;
        }
        if (ch.action == WR_ACT_PRIMARY) {
            if (used_primary) *used_primary = 1;
            return read_primary(s, sql, np, pv, ch.reason, out, kept);
        }
        PGresult *res = NULL;
        wr_lsn seen = 0;
        switch (read_on(s, ch.node, ch.action == WR_ACT_CHECK, ch.need, views[ch.node].lsn, sql, np, pv, &res,
                        &seen, kept)) {
        case RD_OK:
            if (!kept) wr_timeline_read_replica(&s->tl, ch.node, seen, wr_now_us());
            if (proven) *proven = seen;
            return deliver(s, res, ch.node, ch.reason, seen, out);
        case RD_BEHIND:
        case RD_NODE_FAILED:
            tried |= 1u << ch.node;
            continue;
        case RD_READ_ONLY:
            if (used_primary) *used_primary = 1;
            return read_primary(s, sql, np, pv, WR_REASON_PRIMARY_READ_ONLY, out, kept);
        case RD_FAILED:
            return s->err.code;
        }
    }
    return wr_err_set(&s->err, NULL, WR_ERR_INTERNAL, -1, NULL, "read routing did not settle");
}

/* A statement inside the open transaction, on its pinned connection. */
static wr_status tx_run(wr_session *s, const char *sql, int np, const char *const *pv, wr_result **out) {
    wr_conn *conn = s->tx;
    wr_step step = {.sql = sql, .nparams = np, .params = pv};
    char errmsg[256];
    if (wr_conn_run(conn, &step, 1, errmsg, sizeof errmsg) != 0) {
        int node = conn->node;
        s->tx = NULL;
        wr_cluster_giveback(s->c, conn, 1);
        wr_cluster_node_down(s->c, node, errmsg);
        return lost_error(s, WR_ERR_CONNECT, node, "connection lost inside a transaction (it was rolled back)",
                          errmsg);
    }
    if (failed(step.res)) {
        wr_status st = sql_error(s, conn->node, step.res);
        PQclear(step.res);
        return st;
    }
    return deliver(s, step.res, conn->node, WR_REASON_TRANSACTION, 0, out);
}

wr_status wr_query(wr_session *s, const char *sql, int nparams, const char *const *params, unsigned flags,
                   wr_result **out) {
    if (out) *out = NULL;
    if (!s) return WR_ERR_ARG;
    wr_status st = check_args(s, sql, nparams, params);
    if (st != WR_OK) return st;
    if (s->tx) return tx_run(s, sql, nparams, params, out);
    return route_read(s, sql, nparams, params, flags, out, NULL, NULL, NULL);
}

/* ---- writes --------------------------------------------------------------- */

wr_status wr_exec(wr_session *s, const char *sql, int nparams, const char *const *params, wr_result **out) {
    if (out) *out = NULL;
    if (!s) return WR_ERR_ARG;
    wr_status st = check_args(s, sql, nparams, params);
    if (st != WR_OK) return st;
    if (s->tx) return tx_run(s, sql, nparams, params, out);
    return on_primary(s, sql, nparams, params, WR_REASON_WRITE, 1, out, NULL);
}

/* ---- transactions --------------------------------------------------------- */

wr_status wr_begin(wr_session *s, unsigned flags) {
    if (!s) return WR_ERR_ARG;
    wr_err_clear(&s->err);
    if (s->tx) return wr_err_set(&s->err, NULL, WR_ERR_STATE, -1, NULL, "a transaction is already open");
    wr_conn *conn = NULL;
    wr_status st;
    if (flags & WR_READ_ONLY) {
        int fell_back = 0;
        wr_lsn proven = 0;
        st = route_read(s, BEGIN_READ_ONLY, 0, NULL, 0, NULL, &conn, &fell_back, &proven);
        if (st != WR_OK) return st;
        s->tx = conn;
        s->tx_primary = fell_back;
        s->tx_lsn = proven;
        return WR_OK;
    }
    st = on_primary(s, "BEGIN", 0, NULL, WR_REASON_TRANSACTION, 0, NULL, &conn); /* BEGIN alone changes nothing */
    if (st != WR_OK) return st;
    s->tx = conn;
    s->tx_primary = 1;
    return WR_OK;
}

/* Ends the transaction with `sql` (COMMIT or ROLLBACK); on the primary the
 * insert position follows after a Sync, past the commit record. */
static wr_status tx_end(wr_session *s, const char *sql, int commit) {
    wr_conn *conn = s->tx;
    int node = conn->node;
    s->tx = NULL;
    wr_step steps[2] = {{.sql = sql, .sync_after = 1}, {.sql = WR_SQL_INSERT_LSN}};
    char errmsg[256];
    uint64_t sent = wr_now_us();
    if (wr_conn_run(conn, steps, s->tx_primary ? 2 : 1, errmsg, sizeof errmsg) != 0) {
        wr_cluster_giveback(s->c, conn, 1);
        wr_cluster_node_down(s->c, node, errmsg);
        if (!commit) return WR_OK; /* a lost connection rolls back anyway */
        return lost_error(s, s->tx_primary ? WR_ERR_UNKNOWN_OUTCOME : WR_ERR_CONNECT, node,
                          "connection lost during COMMIT (it may or may not have committed)", errmsg);
    }
    wr_status st = WR_OK;
    if (failed(steps[0].res)) {
        st = sql_error(s, node, steps[0].res);
    } else if (commit && strcmp(PQcmdStatus(steps[0].res), "ROLLBACK") == 0) {
        wr_cluster_count(s->c, node, WR_REASON_NONE, 1);
        st = wr_err_set(&s->err, NULL, WR_ERR_SQL, node, "25P02",
                        "transaction rolled back: an earlier statement in it failed (node %s)", node_name(s, node));
    }
    wr_lsn lsn = 0;
    if (s->tx_primary && parse_insert_lsn(s, steps[1].res, &lsn)) {
        observe_primary(s, node, steps[1].res, lsn, sent);
        wr_timeline_wrote(&s->tl, lsn);
    } else if (!s->tx_primary) {
        wr_timeline_read_replica(&s->tl, node, s->tx_lsn, wr_now_us());
    }
    wr_steps_clear(steps, 2);
    wr_cluster_giveback(s->c, conn, 0);
    return st;
}

wr_status wr_commit(wr_session *s) {
    if (!s) return WR_ERR_ARG;
    wr_err_clear(&s->err);
    if (!s->tx) return wr_err_set(&s->err, NULL, WR_ERR_STATE, -1, NULL, "no transaction is open");
    return tx_end(s, "COMMIT", 1);
}

wr_status wr_rollback(wr_session *s) {
    if (!s) return WR_ERR_ARG;
    wr_err_clear(&s->err);
    if (!s->tx) return WR_OK; /* nothing to roll back */
    return tx_end(s, "ROLLBACK", 0);
}

/* ---- tokens --------------------------------------------------------------- */

/* A token's position beyond the primary's current one is clamped to it. A
 * replica that proves the position proves it genuine, so this costs a probe
 * of the primary only when no replica can serve the session's read. */
static void clamp(wr_session *s) {
    wr_cluster *c = s->c;
    wr_timeline *t = &s->tl;
    pthread_mutex_lock(&c->mu);
    int p = c->primary;
    wr_lsn known = p >= 0 ? c->nodes[p].lsn : 0;
    pthread_mutex_unlock(&c->mu);
    if (t->need <= known || p < 0) return;
    wr_err e;
    wr_err_clear(&e);
    if (wr_cluster_probe(c, p, &e) != 0) return; /* cannot tell: keep it */
    pthread_mutex_lock(&c->mu);
    known = c->nodes[p].role == WR_ROLE_PRIMARY ? c->nodes[p].lsn : t->need;
    pthread_mutex_unlock(&c->mu);
    if (t->need > known) t->need = known;
}

static wr_status decode(wr_session *s, const char *token, wr_timeline *t, int *expired) {
    const wr_options *o = &s->c->opt;
    const char *msg = "invalid";
    *expired = 0;
    wr_token_result r = wr_token_decode(token, (int64_t)time(NULL), wr_now_us(), o->token_ttl_s,
                                        o->token_key_len ? o->token_key : NULL, o->token_key_len, s->c->n, t, &msg);
    if (r == WR_TOKEN_EXPIRED) {
        *expired = 1;
        return WR_OK;
    }
    if (r != WR_TOKEN_OK) return wr_err_set(&s->err, NULL, WR_ERR_TOKEN, -1, NULL, "invalid session token: %s", msg);
    return WR_OK;
}

wr_status wr_session_resume(wr_session *s, const char *token) {
    if (!s) return WR_ERR_ARG;
    wr_err_clear(&s->err);
    wr_timeline t;
    int expired;
    wr_status st = decode(s, token, &t, &expired);
    if (st != WR_OK) return st;
    if (expired) wr_timeline_init(&t);
    s->tl = t;
    s->need_unproven = !expired;
    return WR_OK;
}

wr_status wr_session_require(wr_session *s, const char *token) {
    if (!s) return WR_ERR_ARG;
    wr_err_clear(&s->err);
    wr_timeline t;
    int expired;
    wr_status st = decode(s, token, &t, &expired);
    if (st == WR_OK && !expired) {
        wr_timeline_require(&s->tl, t.need);
        s->need_unproven = 1;
    }
    return st;
}

const char *wr_session_token(wr_session *s) {
    if (!s) return "";
    const wr_options *o = &s->c->opt;
    size_t n = wr_token_encode(&s->tl, (int64_t)time(NULL), o->token_key_len ? o->token_key : NULL,
                               o->token_key_len, s->token, sizeof s->token);
    if (n == 0) s->token[0] = '\0';
    return s->token;
}
