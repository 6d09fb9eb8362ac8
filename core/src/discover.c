/* discover.c — which node is the primary, and where every node's WAL
 * position and lag stand: one probe per node, on open, on use after the
 * refresh interval, and whenever a connection loss or SQLSTATE 25006 says the
 * roles may have changed (a promotion is found without a restart). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* One round trip tells role, position and replay lag (0 when nothing is
 * waiting to be replayed, so an idle primary does not make lag grow). */
#define PROBE_SQL                                                                        \
    "SELECT pg_is_in_recovery(),"                                                        \
    " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"                       \
    " ELSE pg_current_wal_insert_lsn() END,"                                             \
    " CASE WHEN NOT pg_is_in_recovery() THEN 0"                                          \
    " WHEN pg_last_wal_receive_lsn() IS NULL"                                            \
    "  OR pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn() THEN 0"                  \
    " ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), -1) END,"    \
    " CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_flush_lsn() END,"          \
    " current_setting('wal_block_size')::int, pg_size_bytes(current_setting('wal_segment_size'))"

int wr_cluster_probe(wr_cluster *c, int i, wr_err *e) {
    wr_conn *conn;
    if (wr_cluster_borrow(c, i, &conn, e) != WR_OK) return -1;
    char errmsg[256];
    wr_step step = {.sql = PROBE_SQL};
    uint64_t sent = wr_now_us();
    if (wr_conn_run(conn, &step, 1, errmsg, sizeof errmsg) != 0) {
        wr_cluster_giveback(c, conn, 1);
        wr_err_set(e, c->dsn.password, WR_ERR_CONNECT, i, NULL, "%s: %s", c->dsn.name[i], errmsg);
        wr_cluster_node_down(c, i, e->msg);
        return -1;
    }
    PGresult *r = step.res;
    wr_lsn lsn = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
        (!PQgetisnull(r, 0, 1) && wr_lsn_parse(PQgetvalue(r, 0, 1), &lsn) != 0)) {
        wr_err_set(e, c->dsn.password, WR_ERR_INTERNAL, i, PQresultErrorField(r, PG_DIAG_SQLSTATE),
                   "%s: probe failed: %s", c->dsn.name[i], PQresultErrorMessage(r));
        PQclear(r);
        wr_cluster_giveback(c, conn, 0);
        pthread_mutex_lock(&c->mu);
        snprintf(c->nodes[i].last_error, sizeof c->nodes[i].last_error, "%s", e->msg);
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    int replica = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    double lag_s = atof(PQgetvalue(r, 0, 2));
    wr_lsn flushed = 0;
    if (!PQgetisnull(r, 0, 3)) wr_lsn_parse(PQgetvalue(r, 0, 3), &flushed);
    long long block_size = atoll(PQgetvalue(r, 0, 4)), segment_size = atoll(PQgetvalue(r, 0, 5));
    PQclear(r);
    wr_cluster_giveback(c, conn, 0);

    pthread_mutex_lock(&c->mu);
    wr_node *n = &c->nodes[i];
    wr_cluster_set_role(c, i, replica ? WR_ROLE_REPLICA : WR_ROLE_PRIMARY);
    wr_node_mark_up(n);
    n->lag_seconds = lag_s;
    n->last_check_unix_ms = wr_unix_ms();
    n->last_error[0] = '\0';
    if (flushed > n->flushed) n->flushed = flushed;
    if (block_size > 0 && block_size <= UINT32_MAX && segment_size > 0) {
        c->wal_block_size = (uint32_t)block_size;
        c->wal_segment_size = (uint64_t)segment_size;
    }
    wr_node_observe(n, lsn, sent, wr_cluster_sendable_locked(c));
    wr_node_apply_limits(n, c->primary >= 0 ? wr_cluster_sendable_locked(c) : lsn, &c->opt);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void wr_cluster_probe_all(wr_cluster *c) {
    uint64_t now = wr_now_us();
    int order[WR_MAX_NODES], k = 0;
    pthread_mutex_lock(&c->mu);
    /* The primary first, so replica lag is measured against a fresh position. */
    if (c->primary >= 0) order[k++] = c->primary;
    for (size_t i = 0; i < c->n; i++)
        if ((int)i != c->primary) order[k++] = (int)i;
    pthread_mutex_unlock(&c->mu);
    for (int j = 0; j < k; j++) {
        int i = order[j];
        pthread_mutex_lock(&c->mu);
        int skip = !c->nodes[i].up && c->nodes[i].down_until_us > now;
        pthread_mutex_unlock(&c->mu);
        if (skip) continue; /* in backoff */
        wr_err e;
        wr_err_clear(&e);
        wr_cluster_probe(c, i, &e);
    }
    pthread_mutex_lock(&c->mu);
    if (c->primary >= 0 && c->nodes[c->primary].up) {
        wr_lsn plsn = wr_cluster_sendable_locked(c);
        for (size_t i = 0; i < c->n; i++)
            if (c->nodes[i].up) wr_node_apply_limits(&c->nodes[i], plsn, &c->opt);
    }
    c->last_refresh_us = wr_now_us();
    pthread_mutex_unlock(&c->mu);
    wr_cluster_note_changes(c);
}

void wr_cluster_maybe_refresh(wr_cluster *c) {
    uint64_t now = wr_now_us();
    pthread_mutex_lock(&c->mu);
    int due = !c->refreshing && now - c->last_refresh_us >= (uint64_t)c->opt.refresh_interval_ms * 1000;
    if (due) c->refreshing = 1;
    pthread_mutex_unlock(&c->mu);
    if (!due) return;
    wr_cluster_probe_all(c);
    pthread_mutex_lock(&c->mu);
    c->refreshing = 0;
    pthread_mutex_unlock(&c->mu);
}

wr_status wr_cluster_refresh(wr_cluster *c) {
    if (!c) return WR_ERR_ARG;
    wr_cluster_probe_all(c);
    pthread_mutex_lock(&c->mu);
    int any = 0;
    for (size_t i = 0; i < c->n; i++) any |= c->nodes[i].up;
    if (!any)
        wr_err_set(&c->err, NULL, WR_ERR_CONNECT, -1, NULL, "no node of the cluster is reachable (%s: %s)",
                   c->dsn.name[0], c->nodes[0].last_error);
    pthread_mutex_unlock(&c->mu);
    return any ? WR_OK : WR_ERR_CONNECT;
}

int wr_cluster_find_primary(wr_cluster *c) {
    pthread_mutex_lock(&c->mu);
    int p = c->primary;
    int usable = p >= 0 && (c->nodes[p].up || wr_now_us() >= c->nodes[p].down_until_us);
    pthread_mutex_unlock(&c->mu);
    if (usable) return p;
    wr_cluster_probe_all(c);
    return wr_cluster_primary(c);
}
