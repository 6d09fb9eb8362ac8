/* cluster.c — the shared handle: open/close, per-node connection pools, and
 * the copies of node state that each decision reads. One mutex guards node state; no I/O is done under it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

uint64_t wr_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void wr_sleep_us(uint64_t us) {
    struct timespec ts = {.tv_sec = (time_t)(us / 1000000u), .tv_nsec = (long)(us % 1000000u) * 1000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

int64_t wr_unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *wr_cluster_secret(const wr_cluster *c) { return c->dsn.password; }

wr_status wr_cluster_open(wr_cluster **out, const char *dsn, const wr_options *opt) {
    if (!out) return WR_ERR_ARG;
    wr_cluster *c = calloc(1, sizeof *c);
    *out = c;
    if (!c) return WR_ERR_NOMEM;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->refresher_cv, NULL);
    wr_err_clear(&c->err);
    c->primary = -1;
    wr_options_resolve(opt, &c->opt);
    for (size_t i = 0; i < WR_MAX_NODES; i++) wr_node_init(&c->nodes[i]);
    wr_status st = wr_dsn_parse(&c->dsn, dsn, c->opt.connect_timeout_s, &c->err);
    if (st != WR_OK) return st;
    c->n = c->dsn.n;
    wr_cluster_probe_all(c);
    for (size_t i = 0; i < c->n; i++)
        if (c->nodes[i].up) return WR_OK;
    char msg[WR_MSG_SIZE] = "";
    for (size_t i = 0; i < c->n; i++) {
        size_t len = strlen(msg);
        snprintf(msg + len, sizeof msg - len, "%s%s: %s", i ? "; " : "", c->dsn.name[i],
                 c->nodes[i].last_error);
    }
    return wr_err_set(&c->err, c->dsn.password, WR_ERR_CONNECT, -1, NULL,
                      "no node of the cluster is reachable: %s", msg);
}

void wr_cluster_close(wr_cluster *c) {
    if (!c) return;
    wr_cluster_stop_refresher(c);
    for (size_t i = 0; i < WR_MAX_NODES; i++) {
        wr_conn *conn = c->nodes[i].idle;
        while (conn) {
            wr_conn *next = conn->next;
            wr_conn_free(conn);
            conn = next;
        }
    }
    wr_dsn_free(&c->dsn);
    pthread_cond_destroy(&c->refresher_cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

const char *wr_cluster_errmsg(const wr_cluster *c) { return c ? c->err.msg : "no cluster handle"; }
size_t wr_cluster_nnodes(const wr_cluster *c) { return c ? c->n : 0; }

const char *wr_cluster_node_name(const wr_cluster *c, size_t i) {
    return c && i < c->n ? c->dsn.name[i] : "";
}

int wr_cluster_primary(wr_cluster *c) {
    pthread_mutex_lock(&c->mu);
    int p = c->primary;
    pthread_mutex_unlock(&c->mu);
    return p;
}

void wr_cluster_set_role(wr_cluster *c, int i, wr_role role) {
    c->nodes[i].role = role;
    if (role == WR_ROLE_PRIMARY) {
        c->primary = i;
    } else if (c->primary == i) {
        c->primary = -1;
    }
}

static void mark_down_locked(wr_cluster *c, int i, const char *why) {
    wr_node_mark_down(&c->nodes[i], wr_now_us(), c->seed++, why);
}

void wr_cluster_node_down(wr_cluster *c, int i, const char *why) {
    char masked[256];
    snprintf(masked, sizeof masked, "%s", why ? why : "");
    wr_mask_secrets(masked, sizeof masked, c->dsn.password);
    pthread_mutex_lock(&c->mu);
    mark_down_locked(c, i, masked);
    pthread_mutex_unlock(&c->mu);
    wr_cluster_note_changes(c);
}

wr_status wr_cluster_borrow(wr_cluster *c, int i, wr_conn **out, wr_err *e) {
    wr_conn *conn;
    *out = NULL;
    if (i < 0 || (size_t)i >= c->n)
        return wr_err_set(e, NULL, WR_ERR_INTERNAL, -1, NULL, "no such node %d", i);
    pthread_mutex_lock(&c->mu);
    c->nodes[i].in_use++;
    for (;;) {
        conn = c->nodes[i].idle;
        if (!conn) break;
        c->nodes[i].idle = conn->next;
        c->nodes[i].nidle--;
        conn->next = NULL;
        pthread_mutex_unlock(&c->mu);
        if (wr_conn_idle_ok(conn)) {
            *out = conn;
            return WR_OK;
        }
        wr_conn_free(conn); /* the server closed it while it was idle */
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);

    PGconn *pg = wr_dsn_connect(&c->dsn, (size_t)i);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        wr_status st = wr_err_set(e, c->dsn.password, pg ? WR_ERR_CONNECT : WR_ERR_NOMEM, i, NULL,
                                  "%s: %s", c->dsn.name[i], pg ? PQerrorMessage(pg) : "out of memory");
        PQfinish(pg);
        pthread_mutex_lock(&c->mu);
        c->nodes[i].in_use--;
        c->nodes[i].errors++;
        mark_down_locked(c, i, e->msg);
        pthread_mutex_unlock(&c->mu);
        wr_cluster_note_changes(c);
        return st;
    }
    const char *hs = PQparameterStatus(pg, "in_hot_standby");
    conn = wr_conn_new(pg, i, !c->opt.no_stmt_cache, c->opt.stmt_cache_size);
    if (!conn) {
        PQfinish(pg);
        pthread_mutex_lock(&c->mu);
        c->nodes[i].in_use--;
        pthread_mutex_unlock(&c->mu);
        return wr_err_set(e, NULL, WR_ERR_NOMEM, i, NULL, "out of memory");
    }
    pthread_mutex_lock(&c->mu);
    int was_up = c->nodes[i].up;
    wr_node_mark_up(&c->nodes[i]);
    if (hs) wr_cluster_set_role(c, i, strcmp(hs, "on") == 0 ? WR_ROLE_REPLICA : WR_ROLE_PRIMARY);
    pthread_mutex_unlock(&c->mu);
    if (!was_up) wr_cluster_note_changes(c);
    *out = conn;
    return WR_OK;
}

void wr_cluster_giveback(wr_cluster *c, wr_conn *conn, int broken) {
    if (!conn) return;
    int keep = !broken && PQstatus(conn->pg) == CONNECTION_OK &&
               PQtransactionStatus(conn->pg) == PQTRANS_IDLE;
    wr_node *n = &c->nodes[conn->node];
    pthread_mutex_lock(&c->mu);
    n->in_use--;
    if (keep && n->nidle < (int)c->opt.pool_size) {
        conn->next = n->idle;
        n->idle = conn;
        n->nidle++;
        conn = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    wr_conn_free(conn);
}

wr_lsn wr_cluster_sendable_locked(const wr_cluster *c) {
    if (c->primary < 0) return 0;
    const wr_node *p = &c->nodes[c->primary];
    return p->flushed ? p->flushed : p->lsn;
}

void wr_cluster_observe(wr_cluster *c, int i, wr_lsn lsn, wr_lsn flushed, uint64_t sent_us) {
    pthread_mutex_lock(&c->mu);
    wr_node *n = &c->nodes[i];
    if (flushed > n->flushed) n->flushed = flushed;
    wr_lsn plsn = wr_cluster_sendable_locked(c);
    wr_node_observe(n, lsn, sent_us, plsn);
    int was = n->excluded;
    if (i != c->primary && plsn) wr_node_apply_limits(n, plsn, &c->opt);
    int changed = was != n->excluded;
    pthread_mutex_unlock(&c->mu);
    if (changed) wr_cluster_note_changes(c);
}

int wr_cluster_views(wr_cluster *c, wr_node_view *views, uint64_t now_us) {
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++) wr_node_view_of(&c->nodes[i], now_us, &views[i]);
    int p = c->primary;
    pthread_mutex_unlock(&c->mu);
    return p;
}

void wr_cluster_count(wr_cluster *c, int node, wr_reason why, int failed) {
    if (node < 0 || (size_t)node >= c->n) return;
    pthread_mutex_lock(&c->mu);
    if (failed) c->nodes[node].errors++;
    else if ((unsigned)why < WR_REASON_COUNT) c->nodes[node].served[why]++;
    pthread_mutex_unlock(&c->mu);
}

wr_status wr_cluster_node_status(wr_cluster *c, size_t i, wr_node_status *out) {
    if (!c || !out || i >= c->n) return WR_ERR_ARG;
    wr_cluster_maybe_refresh(c);
    memset(out, 0, sizeof *out);
    const char *host = c->dsn.host[i] ? c->dsn.host[i] : c->dsn.hostaddr[i] ? c->dsn.hostaddr[i] : "localhost";
    snprintf(out->host, sizeof out->host, "%s", host);
    out->port = c->dsn.port[i] ? atoi(c->dsn.port[i]) : 5432;
    pthread_mutex_lock(&c->mu);
    const wr_node *n = &c->nodes[i];
    wr_lsn plsn = c->primary >= 0 && c->nodes[c->primary].up ? wr_cluster_sendable_locked(c) : 0;
    out->role = n->role;
    out->state = wr_node_state_of(n, plsn);
    out->replay_lsn = n->lsn;
    if (!n->up) out->lag_bytes = -1;
    else if (n->role == WR_ROLE_PRIMARY) out->lag_bytes = 0;
    else out->lag_bytes = plsn ? (plsn > n->lsn ? (int64_t)(plsn - n->lsn) : 0) : -1;
    out->lag_seconds = n->role == WR_ROLE_PRIMARY ? 0 : (n->up ? n->lag_seconds : -1);
    out->replay_rate = n->rate;
    out->last_check_unix_ms = n->last_check_unix_ms;
    out->conns_in_use = n->in_use;
    out->conns_idle = n->nidle;
    snprintf(out->last_error, sizeof out->last_error, "%s", n->last_error);
    memcpy(out->served, n->served, sizeof out->served);
    out->errors = n->errors;
    pthread_mutex_unlock(&c->mu);
    return WR_OK;
}
