/* session.c — one user's statements, driven by the engine's session engine
 * (core/engine/op.c): it says what runs where and by when; this file runs it
 * on pooled libpq connections, within that deadline, and reports back what
 * happened. No routing or safety rule lives here. */
#include <ctype.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "internal.h"


void wr_session_set_interrupt(wr_session *s, wr_interrupt_fn fn, void *arg) {
    if (!s) return;
    s->interrupt = fn;
    s->interrupt_arg = arg;
}

/* ---- small helpers ------------------------------------------------------ */

static const char *secret(const wr_session *s) { return wr_cluster_secret(s->c); }
static const char *node_name(const wr_session *s, int i) { return wr_cluster_node_name(s->c, (size_t)i); }

/* A parameter count that does not match the statement, told in the
 * caller's terms: the server's text (08P01) names walrouter's prepared
 * statement. WR_OK when msg is another error. */
static wr_status param_count_error(wr_session *s, int node, const char *state, const char *msg) {
    static const char supplies[] = "bind message supplies ";
    const char *req = strstr(msg, "\" requires ");
    if (strcmp(state, "08P01") != 0 || strncmp(msg, supplies, sizeof supplies - 1) != 0 || !req) return WR_OK;
    int given = atoi(msg + sizeof supplies - 1), takes = atoi(req + 11);
    return wr_err_set(&s->err, NULL, WR_ERR_ARG, node, state,
                      "the statement takes %d parameter%s but %d %s given: nothing was run (node %s)", takes,
                      takes == 1 ? "" : "s", given, given == 1 ? "was" : "were", node_name(s, node));
}

/* The server's error, with its SQLSTATE and the node. SQL text with no
 * statement in it (only blanks or comments) and a parameter count that does
 * not match are the caller's mistakes (WR_ERR_ARG). */
static wr_status sql_error(wr_session *s, int node, const PGresult *r) {
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQresultStatus(r) == PGRES_EMPTY_QUERY)
        return wr_err_set(&s->err, NULL, WR_ERR_ARG, node, NULL,
                          "the SQL text holds no statement (only blanks or comments): nothing was run");
    if (msg && state && param_count_error(s, node, state, msg) != WR_OK) return s->err.code;
    if (!msg) msg = PQresultErrorMessage(r);
    return wr_err_set(&s->err, secret(s), WR_ERR_SQL, node, state, "%s%s%s (SQLSTATE %s, node %s)", msg,
                      detail ? ": " : "", detail ? detail : "", state ? state : "none", node_name(s, node));
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

/* ---- the blocking calls: a poll() loop over the async API ------------------ */

wr_status wr_session_fail(wr_session *s, int code, int node, int commit, const PGresult *error, const char *msg) {
    if (code == WR_ERR_SQL && error) return sql_error(s, node, error);
    if (code == WR_ERR_SQL)
        return wr_err_set(&s->err, NULL, WR_ERR_SQL, node, commit ? "25P02" : NULL,
                          commit ? "transaction rolled back: an earlier statement in it failed (node %s)"
                                 : "statement failed (node %s)",
                          node >= 0 ? node_name(s, node) : "none");
    return wr_err_set(&s->err, secret(s), (wr_status)code, node, NULL, "%s", msg && *msg ? msg : "failed");
}

wr_status wr_session_check_sql(wr_session *s, const char *sql, int nparams, const char *const *params) {
    return check_args(s, sql, nparams, params);
}

#define INTERRUPT_SLICE_US 50000u /* an interrupt function is asked at least this often */

static wr_status run_blocking(wr_session *s, wr_async_kind kind, const char *sql, int np, const char *const *pv,
                              unsigned flags, wr_result **out) {
    if (s->c->opt.no_refresher) wr_cluster_probe_due(s->c);
    wr_async *a;
    wr_status st = wr_async_start(s, kind, sql, np, pv, flags, &a);
    if (st != WR_OK) return st;
    int rev = 0;
    while (wr_async_advance(a, rev)) {
        int fd, ev;
        uint64_t wake;
        wr_async_poll(a, &fd, &ev, &wake);
        uint64_t now = wr_now_us(), wait = wake > now ? wake - now : 0;
        if (s->interrupt && wait > INTERRUPT_SLICE_US) wait = INTERRUPT_SLICE_US;
        struct pollfd p = {.fd = fd, .events = (short)((ev & WR_WAIT_READ ? POLLIN : 0) |
                                                       (ev & WR_WAIT_WRITE ? POLLOUT : 0))};
        rev = 0;
        if (poll(&p, fd >= 0 ? 1 : 0, (int)((wait + 999) / 1000)) > 0) {
            if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) rev = WR_WAIT_READ | WR_WAIT_WRITE;
            if (p.revents & POLLIN) rev |= WR_WAIT_READ;
            if (p.revents & POLLOUT) rev |= WR_WAIT_WRITE;
        }
        if (s->interrupt && s->interrupt(s->interrupt_arg)) wr_async_cancel(a);
    }
    st = wr_async_result(a, out);
    wr_async_free(a);
    return st;
}

/* ---- the public calls ------------------------------------------------------- */

wr_status wr_query(wr_session *s, const char *sql, int nparams, const char *const *params, unsigned flags,
                   wr_result **out) {
    if (out) *out = NULL;
    if (!s) return WR_ERR_ARG;
    wr_status st = check_args(s, sql, nparams, params);
    if (st != WR_OK) return st;
    return run_blocking(s, WR_ASYNC_QUERY, sql, nparams, params, flags, out);
}

wr_status wr_exec(wr_session *s, const char *sql, int nparams, const char *const *params, wr_result **out) {
    if (out) *out = NULL;
    if (!s) return WR_ERR_ARG;
    wr_status st = check_args(s, sql, nparams, params);
    if (st != WR_OK) return st;
    return run_blocking(s, WR_ASYNC_EXEC, sql, nparams, params, 0, out);
}

wr_status wr_begin(wr_session *s, unsigned flags) {
    if (!s) return WR_ERR_ARG;
    wr_err_clear(&s->err);
    return run_blocking(s, WR_ASYNC_BEGIN, NULL, 0, NULL, flags, NULL);
}

wr_status wr_commit(wr_session *s) {
    if (!s) return WR_ERR_ARG;
    wr_err_clear(&s->err);
    return run_blocking(s, WR_ASYNC_COMMIT, NULL, 0, NULL, 0, NULL);
}

wr_status wr_rollback(wr_session *s) {
    if (!s) return WR_ERR_ARG;
    wr_err_clear(&s->err);
    return run_blocking(s, WR_ASYNC_ROLLBACK, NULL, 0, NULL, 0, NULL);
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
