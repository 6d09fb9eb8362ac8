/* conn.c — one pooled connection and its pipelined round trip, non-blocking
 * and with a deadline. Statements run as named prepared statements from the
 * connection's cache (prepared in the same round trip the first time), or
 * unnamed when the cache is off.
 *
 * The round trip is a state machine (wr_conn_op): start queues everything and
 * writes what the socket takes; poll says what to wait for; advance reads
 * what arrived. Past the deadline it sends a cancel request (cancel.c) and
 * keeps reading until a grace time ends: a server that answers everything
 * leaves a clean connection (CANCELED), one that does not costs it (TIMEOUT).
 * wr_conn_run is that machine driven by poll(). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"

#define DEFAULT_GRACE_US 1000000u
#define SETTLE_STEP_US 1000u     /* how often to look whether a sent cancel is over */
#define INTERRUPT_STEP_US 50000u /* how often wr_conn_run asks its interrupt function */

typedef enum { K_DEALLOC, K_PREP, K_EXEC, K_SYNC } expect_kind;
enum { PH_RUN, PH_SETTLE, PH_DONE };

static uint64_t mono_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* A library does not print: server notices (e.g. "relation already exists,
 * skipping") are dropped instead of going to stderr. */
static void ignore_notice(void *arg, const char *message) {}

wr_conn *wr_conn_new(PGconn *pg, int node, int use_cache, uint32_t cache_size) {
    wr_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (wr_stmtcache_init(&c->cache, use_cache ? cache_size : 0) != 0) {
        free(c);
        return NULL;
    }
    PQsetNoticeProcessor(pg, ignore_notice, NULL);
    PQsetnonblocking(pg, 1);
    c->pg = pg;
    c->node = node;
    c->use_cache = use_cache && cache_size > 0;
    return c;
}

void wr_conn_free(wr_conn *c) {
    if (!c) return;
    PQfinish(c->pg); /* in non-blocking mode its Terminate message never waits */
    wr_stmtcache_free(&c->cache);
    free(c);
}

int wr_conn_idle_ok(wr_conn *c) {
    if (PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE ||
        PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF)
        return 0;
    /* An idle connection receives nothing we asked for; anything readable is
     * EOF or a FATAL message from a server that is going away. */
    struct pollfd p = {.fd = PQsocket(c->pg), .events = POLLIN};
    return p.fd >= 0 && poll(&p, 1, 0) == 0;
}

void wr_pq_steps_clear(wr_pq_step *steps, int n) {
    for (int i = 0; i < n; i++) {
        PQclear(steps[i].res);
        steps[i].res = NULL;
        steps[i].stale = 0;
    }
}

/* ---- finishing ----------------------------------------------------------- */

/* Ends the op with st and a message (NULL: the connection's own). Results
 * stay only when every one arrived. */
static int finish(wr_conn_op *op, wr_run_status st, const char *msg) {
    op->status = st;
    op->phase = PH_DONE;
    if (st == WR_RUN_OK) {
        op->err[0] = '\0';
    } else {
        const char *pgmsg = PQerrorMessage(op->c->pg);
        snprintf(op->err, sizeof op->err, "%s", msg ? msg : pgmsg && *pgmsg ? pgmsg : "connection lost");
        op->err[strcspn(op->err, "\n")] = '\0';
        wr_mask_secrets(op->err, sizeof op->err, NULL);
    }
    if (st != WR_RUN_OK && st != WR_RUN_CANCELED) wr_pq_steps_clear(op->steps, op->n);
    wr_cancel_release(op->cancel);
    op->cancel = NULL;
    return 0;
}

/* ---- sending ------------------------------------------------------------- */

static void expect_add(wr_conn_op *op, expect_kind kind, int step, uint32_t id) {
    op->ex[op->nex++] = (wr_expect){(int)kind, step, id};
}

/* Queues the execution of step i as statement st, prepared on this
 * connection (or queued to be); 0 or -1 (a send failed). */
static int send_prepared(wr_conn_op *op, int i, const wr_stmt *st) {
    const wr_pq_step *s = &op->steps[i];
    char name[16];
    snprintf(name, sizeof name, "wr%u", st->id);
    if (!PQsendQueryPrepared(op->c->pg, name, s->nparams, s->params, NULL, NULL, 0)) return -1;
    expect_add(op, K_EXEC, i, st->id);
    return 0;
}

/* Queues the messages of one step; 0 or -1 (a send failed). */
static int send_step(wr_conn_op *op, int i) {
    wr_conn *c = op->c;
    wr_pq_step *s = &op->steps[i];
    if (c->use_cache) {
        uint64_t h = wr_stmt_hash(s->sql);
        wr_stmt *st = wr_stmtcache_find(&c->cache, s->sql, h);
        if (!st && (st = wr_stmtcache_add(&c->cache, s->sql, h)) != NULL) {
            char name[16];
            snprintf(name, sizeof name, "wr%u", st->id);
            if (!PQsendPrepare(c->pg, name, s->sql, s->nparams, NULL)) {
                wr_stmtcache_remove(&c->cache, st->id, 0);
                return -1;
            }
            expect_add(op, K_PREP, i, st->id);
        }
        if (st) return send_prepared(op, i, st);
    }
    if (!PQsendQueryParams(c->pg, s->sql, s->nparams, NULL, s->params, NULL, NULL, 0)) return -1;
    expect_add(op, K_EXEC, i, UINT32_MAX);
    return 0;
}

/* Queues the whole round trip. Returns how many messages were queued before
 * a send failed (so 0: nothing can have reached the socket), or -1 when all
 * were. DEALLOCATEs of evicted statements go first, behind their own Sync so
 * that one failing cannot abort the caller's statements, and only outside a
 * transaction block, where one failing would abort the caller's transaction. */
static int send_all(wr_conn_op *op) {
    PGconn *pg = op->c->pg;
    wr_stmtcache *cache = &op->c->cache;
    int queued = 0;
    if (cache->ndealloc && PQtransactionStatus(pg) == PQTRANS_IDLE) {
        for (uint32_t d = 0; d < cache->ndealloc; d++) {
            char sql[32];
            snprintf(sql, sizeof sql, "DEALLOCATE wr%u", cache->dealloc[d]);
            if (!PQsendQueryParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0)) return queued;
            queued++;
            expect_add(op, K_DEALLOC, -1, UINT32_MAX);
        }
        cache->ndealloc = 0;
        if (!PQpipelineSync(pg)) return queued;
        expect_add(op, K_SYNC, -1, UINT32_MAX);
    }
    for (int i = 0; i < op->n; i++) {
        if (send_step(op, i) != 0) return queued;
        queued++;
        if (op->steps[i].sync_after || i == op->n - 1) {
            if (!PQpipelineSync(pg)) return queued;
            expect_add(op, K_SYNC, i, UINT32_MAX);
        }
    }
    return -1;
}

/* Everything is queued: writes what the socket takes now, the rest as it
 * becomes writable. */
static void sent(wr_conn_op *op) {
    op->flushing = PQflush(op->c->pg);
    if (op->flushing < 0) finish(op, WR_RUN_LOST, NULL);
    op->just_sent = 1;
}

/* The common read: one statement already prepared on this connection, and
 * no DEALLOCATE to send. It goes without pipeline mode (Bind, Execute, Sync
 * in one write, as PQexecPrepared does), which costs libpq less than a
 * pipeline of one (bench/run.sh: raw_prepared against raw_pipelined).
 * Returns 1 when it took the op (sent, or finished), 0 to use a pipeline. */
static int send_cached_alone(wr_conn_op *op) {
    wr_conn *c = op->c;
    const char *sql = op->steps[0].sql;
    if (op->n != 1 || !c->use_cache || c->cache.ndealloc) return 0;
    wr_stmt *st = wr_stmtcache_find(&c->cache, sql, wr_stmt_hash(sql));
    if (!st) return 0;
    if (send_prepared(op, 0, st) != 0) {
        /* Outside a pipeline it also writes: part of it may have gone. */
        finish(op, WR_RUN_LOST, NULL);
        return 1;
    }
    sent(op);
    return 1;
}

void wr_conn_op_start(wr_conn_op *op, wr_conn *c, wr_pq_step *steps, int n, uint64_t deadline_us,
                      uint64_t cancel_grace_us, uint64_t now_us) {
    memset(op, 0, sizeof *op);
    op->c = c;
    op->steps = steps;
    op->n = n > 0 && n <= WR_MAX_STEPS ? n : 0;
    op->deadline_us = deadline_us;
    op->grace_us = cancel_grace_us ? cancel_grace_us : DEFAULT_GRACE_US;
    op->phase = PH_RUN;
    wr_pq_steps_clear(steps, op->n);
    if (n <= 0 || n > WR_MAX_STEPS || deadline_us == 0) {
        finish(op, WR_RUN_NOT_SENT, "bad round trip: no steps, too many, or no deadline");
        return;
    }
    if (now_us >= deadline_us) {
        finish(op, WR_RUN_NOT_SENT, "deadline passed before sending");
        return;
    }
    PGconn *pg = c->pg;
    if (PQstatus(pg) != CONNECTION_OK) {
        finish(op, WR_RUN_NOT_SENT, NULL);
        return;
    }
    if (PQpipelineStatus(pg) != PQ_PIPELINE_OFF) {
        finish(op, WR_RUN_NOT_SENT, "connection busy");
        return;
    }
    if (send_cached_alone(op)) return;
    if (!PQenterPipelineMode(pg)) {
        finish(op, WR_RUN_NOT_SENT, "connection busy");
        return;
    }
    int queued = send_all(op);
    if (queued == 0) { /* the first send failed: it wrote nothing */
        finish(op, WR_RUN_NOT_SENT, NULL);
        return;
    }
    if (queued > 0) {
        finish(op, WR_RUN_LOST, NULL);
        return;
    }
    sent(op);
}

/* ---- receiving ----------------------------------------------------------- */

/* ---- stale statements ------------------------------------------------------
 * Told apart from a user's own errors by SQLSTATE and the server's routine
 * name (PG_DIAG_SOURCE_FUNCTION), never by message text, which follows
 * lc_messages:
 *   0A000 from RevalidateCachedQuery: a cached statement's result type
 *     changed (ALTER TABLE under SELECT *). Raised before it ran. Only a
 *     statement prepared in an earlier round trip can be stale: one
 *     prepared in this one failing so is the user's own (EXECUTE of their
 *     own PREPAREd statement).
 *   26000 from FetchPreparedStatement naming our own statement: the server
 *     lost it (DEALLOCATE ALL run from a function). A user's EXECUTE or
 *     DEALLOCATE of another name, or a RAISE of 26000, is theirs.
 * A stale statement is re-run only outside a transaction block; in one, the
 * error stands (the transaction is aborted) and only the cache is fixed. */

static int routine_is(const PGresult *r, const char *name) {
    const char *f = PQresultErrorField(r, PG_DIAG_SOURCE_FUNCTION);
    return f && strcmp(f, name) == 0;
}

static int is_word_char(char c) {
    return c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The message names statement wr<id> (as a whole word, in any language). */
static int names_statement(const PGresult *r, uint32_t id) {
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    char name[16];
    int len = snprintf(name, sizeof name, "wr%u", id);
    for (const char *p = msg; p && (p = strstr(p, name)) != NULL; p++)
        if ((p == msg || !is_word_char(p[-1])) && !is_word_char(p[len])) return 1;
    return 0;
}

/* Whether step i's statement was prepared in this round trip. */
static int prepared_now(const wr_conn_op *op, int step) {
    for (int k = 0; k < op->nex; k++)
        if (op->ex[k].kind == K_PREP && op->ex[k].step == step) return 1;
    return 0;
}

/* 1: a cached plan went stale; 2: the server lost our statement; 0: the
 * user's own error (or an unnamed statement's). */
static int is_stale(const wr_conn_op *op, const wr_expect *e, const PGresult *r) {
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (e->id == UINT32_MAX || !state || prepared_now(op, e->step)) return 0;
    if (strcmp(state, "0A000") == 0 && routine_is(r, "RevalidateCachedQuery")) return 1;
    if (strcmp(state, "26000") == 0 && routine_is(r, "FetchPreparedStatement") && names_statement(r, e->id))
        return 2;
    return 0;
}

/* A statement that made the server forget prepared statements (ours too):
 * by command tag, which is not translated. */
static int forgets_statements(const PGresult *r) {
    const char *tag = PQcmdStatus((PGresult *)r);
    return tag && (strcmp(tag, "DISCARD ALL") == 0 || strncmp(tag, "DEALLOCATE", 10) == 0);
}

/* The server's prepared statements are not what the cache says: forget
 * them, and never lend the connection again (what it still holds dies with
 * it; new names never reuse old ones). */
static void lose_cache(wr_conn *c) {
    wr_stmtcache_clear(&c->cache);
    c->dirty = 1;
}

/* Files a command's result (taking it) under its step. */
static void file_result(wr_conn_op *op, const wr_expect *e, PGresult *r) {
    wr_pq_step *s = e->step >= 0 ? &op->steps[e->step] : NULL;
    wr_stmtcache *cache = &op->c->cache;
    ExecStatusType st = PQresultStatus(r);
    switch ((expect_kind)e->kind) {
    case K_PREP:
        if (st == PGRES_COMMAND_OK) {
            PQclear(r);
        } else { /* bad SQL, or aborted: report this, cache nothing */
            s->res = r;
            wr_stmtcache_remove(cache, e->id, 0);
        }
        return;
    case K_EXEC:
        if (s->res) { /* its preparation failed: this is the aborted execute */
            PQclear(r);
            return;
        }
        s->res = r;
        if (st == PGRES_FATAL_ERROR) {
            int stale = is_stale(op, e, r);
            if (stale == 1) wr_stmtcache_remove(cache, e->id, 1);
            if (stale == 2) lose_cache(op->c);
            s->stale = stale != 0;
        } else if (forgets_statements(r)) {
            lose_cache(op->c);
        }
        return;
    case K_DEALLOC:
        /* The server did not have it: the cache no longer says what the
         * server holds. The caller's statements are behind their own Sync. */
        if (st == PGRES_FATAL_ERROR) lose_cache(op->c);
        PQclear(r);
        return;
    case K_SYNC:
        PQclear(r);
        return;
    }
}

/* Takes one PQgetResult value: a command gives a result then NULL, a Sync
 * gives PGRES_PIPELINE_SYNC. 0, or -1 when the stream makes no sense. */
static int take(wr_conn_op *op, PGresult *r) {
    const wr_expect *e = &op->ex[op->next];
    if (e->kind == K_SYNC) {
        int ok = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        op->next += ok;
        return ok ? 0 : -1;
    }
    if (op->have) {
        if (r) {
            PQclear(r);
            return -1;
        }
        op->have = 0;
        op->next++;
        return 0;
    }
    if (!r) return -1;
    op->have = 1;
    file_result(op, e, r);
    return 0;
}

/* Writes what is pending and reads what arrived, never waiting. 0, or -1
 * when the connection failed. */
static int pump(wr_conn_op *op) {
    PGconn *pg = op->c->pg;
    if (!PQconsumeInput(pg)) return -1;
    if (op->flushing && (op->flushing = PQflush(pg)) < 0) return -1;
    while (op->next < op->nex && !PQisBusy(pg)) {
        if (take(op, PQgetResult(pg)) != 0 || PQstatus(pg) == CONNECTION_BAD) return -1;
    }
    return 0;
}

int wr_conn_op_advance(wr_conn_op *op, short revents, uint64_t now_us) {
    /* Called right after sending, before any poll: an answer this early is
     * all but impossible, and the next poll reports one that came; skip the
     * read that would say EAGAIN (one system call a read). */
    int first = op->just_sent;
    op->just_sent = 0;
    if (first && op->phase == PH_RUN && !revents && now_us < op->deadline_us) return 1;
    if (op->phase == PH_RUN) {
        if (pump(op) != 0) return finish(op, WR_RUN_LOST, NULL);
        if (op->next == op->nex) {
            if (!PQexitPipelineMode(op->c->pg)) return finish(op, WR_RUN_LOST, NULL);
            /* In a failed transaction block nothing can be re-run. */
            if (PQtransactionStatus(op->c->pg) == PQTRANS_INERROR)
                for (int i = 0; i < op->n; i++) op->steps[i].stale = 0;
            if (!op->grace_end_us) return finish(op, WR_RUN_OK, NULL);
            op->phase = PH_SETTLE;
        }
    }
    /* Every result is in, but a cancel request was sent: the connection is
     * clean only once that request can no longer reach the server. */
    if (op->phase == PH_SETTLE && wr_cancel_over(op->cancel))
        return finish(op, WR_RUN_CANCELED, "deadline passed: statement canceled, the server answered");
    if (op->phase == PH_DONE) return 0;
    if (!op->grace_end_us && now_us >= op->deadline_us) {
        wr_conn_op_cancel(op, now_us);
    } else if (op->grace_end_us && now_us >= op->grace_end_us) {
        return finish(op, WR_RUN_TIMEOUT, "deadline passed: canceled, but the server did not answer");
    }
    op->settle_us = now_us + SETTLE_STEP_US;
    return op->phase != PH_DONE;
}

void wr_conn_op_cancel(wr_conn_op *op, uint64_t now_us) {
    if (op->phase != PH_RUN || op->grace_end_us) return;
    op->grace_end_us = now_us + op->grace_us;
    op->cancel = wr_cancel_send(op->c->pg);
    if (!op->cancel)
        finish(op, WR_RUN_TIMEOUT, "deadline passed: no cancel request could be sent");
}

void wr_conn_op_poll(const wr_conn_op *op, int *fd, short *events, uint64_t *wake_us) {
    *fd = -1;
    *events = 0;
    *wake_us = 0;
    if (op->phase == PH_RUN) {
        *fd = PQsocket(op->c->pg);
        *events = (short)(POLLIN | (op->flushing ? POLLOUT : 0));
        *wake_us = op->grace_end_us ? op->grace_end_us : op->deadline_us;
    } else if (op->phase == PH_SETTLE) {
        *wake_us = op->settle_us < op->grace_end_us ? op->settle_us : op->grace_end_us;
    }
}

wr_run_status wr_conn_op_status(const wr_conn_op *op) { return op->status; }

const char *wr_conn_op_error(const wr_conn_op *op) { return op->err; }

void wr_conn_op_abandon(wr_conn_op *op) {
    if (op->phase != PH_DONE) finish(op, WR_RUN_LOST, "round trip abandoned");
}

/* ---- the blocking loop --------------------------------------------------- */

wr_run_status wr_conn_run(wr_conn *c, wr_pq_step *steps, int n, const wr_run_opts *o,
                          char *errmsg, size_t errlen) {
    wr_conn_op op;
    wr_conn_op_start(&op, c, steps, n, o->deadline_us, o->cancel_grace_us, mono_us());
    for (int running = op.phase != PH_DONE; running;) {
        int fd;
        short events;
        uint64_t wake, now = mono_us();
        wr_conn_op_poll(&op, &fd, &events, &wake);
        uint64_t wait = wake > now ? wake - now : 0;
        if (o->interrupted && wait > INTERRUPT_STEP_US) wait = INTERRUPT_STEP_US;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)((wait + 999) / 1000)); /* EINTR: advance on the clock */
        now = mono_us();
        if (o->interrupted && o->interrupted(o->interrupt_arg)) wr_conn_op_cancel(&op, now);
        running = wr_conn_op_advance(&op, r > 0 ? p.revents : 0, now);
    }
    snprintf(errmsg, errlen, "%s", op.err);
    return op.status;
}
