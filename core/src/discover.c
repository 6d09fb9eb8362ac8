/* discover.c — probes: which node is the primary, on which timeline, and
 * where every node's WAL position and lag stand. The nodes of one round are
 * connected and probed at once, in one poll loop, each within the round's
 * deadline, so a silent or frozen node costs the deadline once and never
 * delays what the others report. Results go to the engine, which elects the
 * primary and measures lag (nodes.c). */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

typedef struct probe {
    int node;
    wr_conn *conn;
    int fresh;        /* conn still to be made */
    wr_connect_op cop;
    int connecting;   /* cop in progress */
    wr_pq_step step;
    wr_conn_op op;
    int running;
    uint64_t sent_us;
    uint64_t started_us, deadline_us; /* of the probe with its connect */
    char why[256];
} probe;

void wr_cluster_probe_report(wr_cluster *c, int node, const PGresult *res, wr_run_status rs, uint64_t sent_us,
                             uint64_t started_us, uint64_t deadline_us, const char *why) {
    wr_probe got;
    char msg[256];
    int ok = 0;
    uint64_t now = wr_now_us();
    snprintf(msg, sizeof msg, "%s", why && *why ? why : "");
    if (rs == WR_RUN_OK && res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        PQnfields(res) == 7) {
        const char *v[7];
        for (int k = 0; k < 7; k++) v[k] = PQgetisnull(res, 0, k) ? NULL : PQgetvalue(res, 0, k);
        ok = wr_probe_parse(v, &got) == 0;
        if (!ok) snprintf(msg, sizeof msg, "%s: probe returned an unexpected row", c->dsn.name[node]);
    } else if (!msg[0]) {
        const char *err = res ? PQresultErrorMessage(res) : "";
        snprintf(msg, sizeof msg, "%s: probe failed: %s", c->dsn.name[node],
                 err && *err ? err : "no answer before the deadline");
    }
    wr_mask_secrets(msg, sizeof msg, c->dsn.password);
    pthread_mutex_lock(&c->mu);
    if (ok) wr_engine_probe_ok(&c->eng, node, &got, sent_us, now, wr_unix_ms());
    else
        wr_engine_probe_failed(&c->eng, node, started_us, deadline_us,
                               (rs == WR_RUN_NOT_SENT || rs == WR_RUN_TIMEOUT || rs == WR_RUN_CANCELED) && now >= deadline_us, now, wr_cluster_rand(c),
                               msg);
    pthread_mutex_unlock(&c->mu);
}

static void report(wr_cluster *c, probe *p) {
    wr_run_status st = p->conn ? wr_conn_op_status(&p->op) : WR_RUN_NOT_SENT;
    const char *why = p->why[0] ? p->why : p->conn && !p->step.res ? wr_conn_op_error(&p->op) : "";
    char msg[256];
    if (p->conn && !p->why[0] && st != WR_RUN_OK)
        snprintf(msg, sizeof msg, "%s: probe failed: %s", c->dsn.name[p->node],
                 why && *why ? why : "no answer before the deadline");
    else snprintf(msg, sizeof msg, "%s", why ? why : "");
    wr_cluster_probe_report(c, p->node, p->step.res, st, p->sent_us, p->started_us, p->deadline_us, msg);
    int ok = st == WR_RUN_OK && p->step.res && PQresultStatus(p->step.res) == PGRES_TUPLES_OK;
    wr_pq_steps_clear(&p->step, 1);
    if (p->conn) wr_cluster_giveback(c, p->conn, !ok);
}

static void start_probe(probe *p, uint64_t deadline_us, uint64_t now) {
    p->step = (wr_pq_step){.sql = WR_SQL_PROBE};
    p->sent_us = now;
    wr_conn_op_start(&p->op, p->conn, &p->step, 1, deadline_us, 200000, now);
    p->running = 1; /* also when it finished at once: the loop reports it */
}

/* A node's connect is over: probe it, or report why not. */
static void connected(wr_cluster *c, probe *p, uint64_t deadline_us, uint64_t now) {
    char why[256];
    PGconn *pg = wr_connect_op_take(&p->cop, why, sizeof why);
    p->connecting = 0;
    p->conn = pg ? wr_conn_new(pg, p->node, !c->opt.no_stmt_cache, c->opt.stmt_cache_size) : NULL;
    if (p->conn) {
        start_probe(p, deadline_us, now);
        return;
    }
    if (pg) PQfinish(pg);
    /* The connect error already names the node. */
    if (pg) snprintf(p->why, sizeof p->why, "%s: out of memory", c->dsn.name[p->node]);
    else snprintf(p->why, sizeof p->why, "%s", why);
    wr_mask_secrets(p->why, sizeof p->why, c->dsn.password);
    wr_cluster_release_slot(c, p->node);
    report(c, p);
}

void wr_cluster_probe_mask(wr_cluster *c, uint32_t mask, uint64_t deadline_us, int force) {
    probe ps[WR_MAX_NODES];
    int k = 0;
    uint64_t now = wr_now_us();
    for (size_t i = 0; i < c->n; i++) {
        if (!(mask >> i & 1u)) continue;
        pthread_mutex_lock(&c->mu);
        int may = wr_engine_may_connect(&c->eng, (int)i, now);
        pthread_mutex_unlock(&c->mu);
        if (!may && !force) continue; /* in backoff */
        probe *p = &ps[k];
        memset(p, 0, sizeof *p);
        p->node = (int)i;
        int got = wr_cluster_try_borrow(c, (int)i, &p->conn);
        if (got < 0) continue; /* every connection is busy: it is surely up */
        p->fresh = got == 0;
        k++;
    }
    /* Connect the nodes that need it and probe every node, all in one poll
     * loop: a node's probe starts as soon as it is connected, so a silent
     * host (whose connect lasts until the deadline) never leaves the others
     * too little time, and each node is reported as soon as it is done. */
    now = wr_now_us();
    for (int j = 0; j < k; j++) {
        probe *p = &ps[j];
        p->started_us = now;
        p->deadline_us = deadline_us;
        if (p->fresh) p->connecting = 1;
        if (p->fresh && wr_connect_op_start(&p->cop, &c->dsn, (size_t)p->node, deadline_us) != 0)
            connected(c, p, deadline_us, now);
        else if (!p->fresh) start_probe(p, deadline_us, now);
    }
    for (;;) {
        struct pollfd fds[WR_MAX_NODES];
        int idx[WR_MAX_NODES], nf = 0;
        uint64_t wake = UINT64_MAX;
        for (int j = 0; j < k; j++) {
            if (!ps[j].connecting && !ps[j].running) continue;
            int fd;
            short ev;
            uint64_t w;
            if (ps[j].connecting) wr_connect_op_poll(&ps[j].cop, &fd, &ev, &w);
            else wr_conn_op_poll(&ps[j].op, &fd, &ev, &w);
            if (w < wake) wake = w;
            fds[nf] = (struct pollfd){.fd = fd, .events = ev};
            idx[nf++] = j;
        }
        if (nf == 0) break;
        now = wr_now_us();
        int ms = wake <= now ? 0 : (int)((wake - now + 999) / 1000);
        if (ms > 100) ms = 100;
        poll(fds, (nfds_t)nf, ms);
        now = wr_now_us();
        for (int f = 0; f < nf; f++) {
            probe *p = &ps[idx[f]];
            if (p->connecting) {
                if (!wr_connect_op_advance(&p->cop, fds[f].revents, now)) connected(c, p, deadline_us, now);
            } else if (!wr_conn_op_advance(&p->op, fds[f].revents, now)) {
                p->running = 0;
                report(c, p);
            }
        }
    }
    wr_cluster_note_changes(c);
}

void wr_cluster_probe_due(wr_cluster *c) {
    uint64_t now = wr_now_us();
    pthread_mutex_lock(&c->mu);
    uint32_t due = wr_engine_probes_due(&c->eng, now);
    /* A probe (and the connect it may need) waits at most the connect
     * timeout; each node is reported as soon as it is done, so a frozen one
     * only delays the next round, never the others' results. */
    uint64_t timeout = c->eng.cfg.connect_timeout_us;
    pthread_mutex_unlock(&c->mu);
    if (due) wr_cluster_probe_mask(c, due, now + timeout, 0);
}

wr_status wr_cluster_refresh(wr_cluster *c) {
    if (!c) return WR_ERR_ARG;
    uint32_t all = c->n >= 32 ? UINT32_MAX : (1u << c->n) - 1;
    wr_cluster_probe_mask(c, all, wr_now_us() + c->eng.cfg.connect_timeout_us, 1);
    pthread_mutex_lock(&c->mu);
    int any = 0;
    for (size_t i = 0; i < c->n; i++) any |= c->eng.nodes[i].up;
    if (!any)
        wr_err_set(&c->err, NULL, WR_ERR_CONNECT, -1, NULL, "no node of the cluster is reachable (%s: %s)",
                   c->dsn.name[0], c->eng.nodes[0].last_error);
    pthread_mutex_unlock(&c->mu);
    return any ? WR_OK : WR_ERR_CONNECT;
}
