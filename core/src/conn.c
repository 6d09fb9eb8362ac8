/* conn.c — one pooled connection: liveness of an idle connection and the
 * pipelined round trip that every statement goes through. Statements run as
 * named prepared statements from the connection's cache (prepared in the same
 * round trip the first time), or unnamed when the cache is off. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* A library does not print: server notices (e.g. "relation already exists,
 * skipping") are dropped instead of going to stderr. */
static void ignore_notice(void *arg, const char *message) {}

wr_conn *wr_conn_new(PGconn *pg, int node, int use_cache, uint32_t cache_size) {
    wr_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    PQsetNoticeProcessor(pg, ignore_notice, NULL);
    if (wr_stmtcache_init(&c->cache, use_cache ? cache_size : 0) != 0) {
        free(c);
        return NULL;
    }
    c->pg = pg;
    c->node = node;
    c->use_cache = use_cache && cache_size > 0;
    return c;
}

void wr_conn_free(wr_conn *c) {
    if (!c) return;
    PQfinish(c->pg);
    wr_stmtcache_free(&c->cache);
    free(c);
}

int wr_conn_idle_ok(wr_conn *c) {
    if (PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE) return 0;
    /* An idle connection receives nothing we asked for; anything readable is
     * EOF or a FATAL message from a server that is going away. */
    struct pollfd p = {.fd = PQsocket(c->pg), .events = POLLIN};
    return p.fd >= 0 && poll(&p, 1, 0) == 0;
}

void wr_steps_clear(wr_step *steps, int n) {
    for (int i = 0; i < n; i++) {
        PQclear(steps[i].res);
        steps[i].res = NULL;
    }
}

typedef enum { K_DEALLOC, K_PREP, K_EXEC, K_SYNC } expect_kind;
typedef struct {
    expect_kind kind;
    int step;
    uint32_t id; /* statement id, UINT32_MAX when unnamed */
} expect;

#define MAX_EXPECT 64

static int is_stale(const PGresult *r, int named) {
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (!named || !state) return 0;
    if (strcmp(state, "26000") == 0) return 2; /* our statement is gone: DISCARD/DEALLOCATE ALL */
    return strcmp(state, "0A000") == 0 && msg && strstr(msg, "cached plan must not change") ? 1 : 0;
}

/* Queues the sends of one step; returns 0 or -1 (send failed). */
static int send_step(wr_conn *c, wr_step *s, int i, expect *ex, int *nex) {
    PGconn *pg = c->pg;
    if (c->use_cache) {
        uint64_t h = wr_stmt_hash(s->sql);
        wr_stmt *st = wr_stmtcache_find(&c->cache, s->sql, h);
        char name[16];
        if (!st) {
            st = wr_stmtcache_add(&c->cache, s->sql, h);
            if (st) {
                snprintf(name, sizeof name, "wr%u", st->id);
                if (!PQsendPrepare(pg, name, s->sql, s->nparams, NULL)) return -1;
                ex[(*nex)++] = (expect){K_PREP, i, st->id};
            }
        }
        if (st) {
            snprintf(name, sizeof name, "wr%u", st->id);
            if (!PQsendQueryPrepared(pg, name, s->nparams, s->params, NULL, NULL, 0)) return -1;
            ex[(*nex)++] = (expect){K_EXEC, i, st->id};
            return 0;
        }
    }
    if (!PQsendQueryParams(pg, s->sql, s->nparams, NULL, s->params, NULL, NULL, 0)) return -1;
    ex[(*nex)++] = (expect){K_EXEC, i, UINT32_MAX};
    return 0;
}

/* Takes one command's result and its terminating NULL; NULL when lost. */
static PGresult *take_result(PGconn *pg) {
    PGresult *r = PQgetResult(pg);
    if (!r) return NULL;
    PGresult *end = PQgetResult(pg);
    if (end || PQstatus(pg) == CONNECTION_BAD) {
        PQclear(end);
        PQclear(r);
        return NULL;
    }
    return r;
}

int wr_conn_run(wr_conn *c, wr_step *steps, int n, char *errmsg, size_t errlen) {
    PGconn *pg = c->pg;
    expect ex[MAX_EXPECT];
    int nex = 0;
    for (int i = 0; i < n; i++) {
        steps[i].res = NULL;
        steps[i].stale = 0;
    }
    if (n <= 0 || n > 8 || !PQenterPipelineMode(pg)) goto lost;
    for (uint32_t d = 0; d < c->cache.ndealloc; d++) {
        char sql[32];
        snprintf(sql, sizeof sql, "DEALLOCATE wr%u", c->cache.dealloc[d]);
        if (!PQsendQueryParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0)) goto lost;
        ex[nex++] = (expect){K_DEALLOC, -1, UINT32_MAX};
    }
    c->cache.ndealloc = 0;
    for (int i = 0; i < n; i++) {
        if (send_step(c, &steps[i], i, ex, &nex) != 0) goto lost;
        if (steps[i].sync_after || i == n - 1) {
            if (!PQpipelineSync(pg)) goto lost;
            ex[nex++] = (expect){K_SYNC, i, UINT32_MAX};
        }
    }
    for (int e = 0; e < nex; e++) {
        if (ex[e].kind == K_SYNC) {
            PGresult *r = PQgetResult(pg);
            int ok = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
            PQclear(r);
            if (!ok) goto lost;
            continue;
        }
        PGresult *r = take_result(pg);
        if (!r) goto lost;
        wr_step *s = ex[e].step >= 0 ? &steps[ex[e].step] : NULL;
        ExecStatusType st = PQresultStatus(r);
        switch (ex[e].kind) {
        case K_DEALLOC:
            PQclear(r);
            break;
        case K_PREP:
            if (st == PGRES_COMMAND_OK) {
                PQclear(r);
            } else { /* the SQL itself is bad: report this error, cache nothing */
                s->res = r;
                wr_stmtcache_remove(&c->cache, ex[e].id, 0);
            }
            break;
        case K_EXEC:
            if (s->res) { /* its preparation failed: this is the aborted execute */
                PQclear(r);
                break;
            }
            s->res = r;
            if (st == PGRES_FATAL_ERROR) {
                int stale = is_stale(r, ex[e].id != UINT32_MAX);
                if (stale == 1) wr_stmtcache_remove(&c->cache, ex[e].id, 1);
                if (stale == 2) wr_stmtcache_clear(&c->cache);
                s->stale = stale != 0;
            }
            break;
        case K_SYNC:
            break;
        }
    }
    if (!PQexitPipelineMode(pg)) goto lost;
    return 0;
lost:
    snprintf(errmsg, errlen, "%s", PQerrorMessage(pg));
    if (!errmsg[0]) snprintf(errmsg, errlen, "connection lost");
    wr_steps_clear(steps, n);
    return -1;
}
