/* cluster.c — the shared handle: open/close, the engine's state under one
 * mutex, and per-node connection pools bounded by pool_max. The mutex is
 * never held across I/O: connections are made and used outside it. */
#include <errno.h>
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

void wr_sleep_until(uint64_t until_us) {
    for (;;) {
        uint64_t now = wr_now_us();
        if (now >= until_us) return;
        uint64_t us = until_us - now;
        struct timespec ts = {.tv_sec = (time_t)(us / 1000000u), .tv_nsec = (long)(us % 1000000u) * 1000};
        nanosleep(&ts, NULL);
    }
}

int64_t wr_unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint32_t wr_cluster_rand(wr_cluster *c) { /* xorshift64*, under the lock */
    uint64_t x = c->rand_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rand_state = x;
    return (uint32_t)((x * 2685821657736338717ull) >> 32);
}

const char *wr_cluster_secret(const wr_cluster *c) { return c->dsn.password; }

/* A node that answered and refused the connection (libpq's text then holds
 * the server's "FATAL:"): the server's words, and in state the SQLSTATE they
 * stand for ("" when not known: libpq keeps no SQLSTATE of a failed
 * connection). NULL when the node was not reached. */
static const char *refusal(const char *why, char state[6]) {
    static const struct { const char *text, *state; } known[] = {
        {"password authentication failed", "28P01"}, {"authentication failed", "28000"},
        {"no pg_hba.conf entry", "28000"}, {"database \"", "3D000"}, {"role \"", "28000"},
        {"too many clients", "53300"}, {"too many connections", "53300"}, {"the database system is", "57P03"},
    };
    const char *f = strstr(why, "FATAL:");
    state[0] = '\0';
    if (!f) return NULL;
    for (f += 6; *f == ' '; f++) {}
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (strstr(f, known[k].text)) {
            memcpy(state, known[k].state, 6);
            break;
        }
    return f;
}

/* Why an open reached no node. When nodes answered and refused (a wrong
 * password, an unknown database), it says so once, with the SQLSTATE and
 * the first such node (*node, state), naming every node once:
 *   authentication failed: password authentication failed for user "app"
 *   (SQLSTATE 28P01, node db1:5432; the same on db2:5432)
 * otherwise "no node of the cluster is reachable: host:port: why; ...". */
static void describe_failures(wr_cluster *c, char *msg, size_t cap, int *node, char state[6]) {
    const char *first = NULL;
    *node = -1;
    state[0] = '\0';
    for (size_t i = 0; i < c->n && !first; i++)
        if ((first = refusal(c->eng.nodes[i].last_error, state))) *node = (int)i;
    if (first) {
        const char *what = strncmp(state, "28", 2) == 0      ? "authentication failed"
                           : strcmp(state, "3D000") == 0     ? "the database does not exist"
                                                             : "the server refused the connection";
        snprintf(msg, cap, "%s: %s (SQLSTATE %s, node %s", what, first, *state ? state : "unknown",
                 c->dsn.name[*node]);
    } else {
        snprintf(msg, cap, "no node of the cluster is reachable");
    }
    const char *sep = first ? "; the same on " : ": ";
    char st[6];
    for (size_t i = 0; first && i < c->n; i++) { /* the nodes that refused the same way */
        const char *r = refusal(c->eng.nodes[i].last_error, st);
        if ((int)i == *node || !r || strcmp(r, first) != 0) continue;
        size_t len = strlen(msg);
        snprintf(msg + len, cap - len, "%s%s", sep, c->dsn.name[i]);
        sep = ", ";
    }
    if (first) {
        size_t len = strlen(msg);
        snprintf(msg + len, cap - len, ")");
        sep = "; ";
    }
    for (size_t i = 0; i < c->n; i++) { /* the others, each with its reason */
        const char *why = c->eng.nodes[i].last_error, *r = refusal(why, st);
        if (first && r && strcmp(r, first) == 0) continue;
        size_t len = strlen(msg), nl = strlen(c->dsn.name[i]);
        if (strncmp(why, c->dsn.name[i], nl) == 0 && why[nl] == ':') /* it names the node already */
            snprintf(msg + len, cap - len, "%s%s", sep, why);
        else snprintf(msg + len, cap - len, "%s%s: %s", sep, c->dsn.name[i], why);
        sep = "; ";
    }
}

/* opt_size: sizeof(wr_options) in the caller's walrouter.h; the fields it
 * lacks take their defaults. */
wr_status wr_cluster_open_sized(wr_cluster **out, const char *dsn, const wr_options *caller_opt,
                                size_t opt_size) {
    if (!out) return WR_ERR_ARG;
    wr_options sized = {0};
    const wr_options *opt = NULL;
    if (caller_opt) {
        memcpy(&sized, caller_opt, opt_size < sizeof sized ? opt_size : sizeof sized);
        opt = &sized;
    }
    wr_cluster *c = calloc(1, sizeof *c);
    *out = c;
    if (!c) return WR_ERR_NOMEM;
    pthread_mutex_init(&c->mu, NULL);
    wr_refresher_init(c);
    wr_events_init(c);
    wr_err_clear(&c->err);
    char why[WR_MSG_SIZE];
    if (opt && wr_options_check(opt, why, sizeof why) != WR_OK)
        return wr_err_set(&c->err, NULL, WR_ERR_ARG, -1, NULL, "%s", why);
    wr_options_resolve(opt, &c->opt);
    c->rand_state = wr_now_us() ^ ((uint64_t)(uintptr_t)c << 16) ^ 0x9e3779b97f4a7c15ull;
    wr_status st = wr_dsn_parse(&c->dsn, dsn, c->opt.connect_timeout_s, &c->err);
    if (st != WR_OK) return st;
    c->n = c->dsn.n;
    for (size_t i = 0; i < c->n; i++) c->names[i] = c->dsn.name[i];
    wr_config cfg;
    wr_options_engine(&c->opt, &cfg);
    if (wr_engine_init(&c->eng, &cfg, c->names, c->n) != 0)
        return wr_err_set(&c->err, NULL, WR_ERR_ARG, -1, NULL, "invalid DSN: %zu hosts", c->n);
    /* Every node at once: silent hosts cost the connect timeout once. */
    uint32_t all = c->n >= 32 ? UINT32_MAX : (1u << c->n) - 1;
    wr_cluster_probe_mask(c, all, wr_now_us() + cfg.connect_timeout_us, 1);
    int any = 0;
    for (size_t i = 0; i < c->n; i++) any |= c->eng.nodes[i].up;
    if (!any) {
        char msg[WR_MSG_SIZE], state[6];
        int node;
        describe_failures(c, msg, sizeof msg, &node, state);
        return wr_err_set(&c->err, c->dsn.password, WR_ERR_CONNECT, node, *state ? state : NULL, "%s", msg);
    }
    if (!c->opt.no_refresher) wr_cluster_start_refresher(c, c->opt.refresh_interval_ms);
    return WR_OK;
}

void wr_cluster_close(wr_cluster *c) {
    if (!c) return;
    wr_cluster_stop_refresher(c);
    for (size_t i = 0; i < WR_MAX_NODES; i++) {
        wr_conn *conn = c->pool[i].idle;
        while (conn) {
            wr_conn *next = conn->next;
            wr_conn_free(conn);
            conn = next;
        }
    }
    wr_dsn_free(&c->dsn);
    wr_events_destroy(c);
    wr_refresher_destroy(c);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

const char *wr_cluster_errmsg(const wr_cluster *c) { return c ? c->err.msg : "out of memory"; }
const char *wr_cluster_sqlstate(const wr_cluster *c) { return c ? c->err.sqlstate : ""; }
int wr_cluster_errnode(const wr_cluster *c) { return c ? c->err.node : -1; }
size_t wr_cluster_nnodes(const wr_cluster *c) { return c ? c->n : 0; }

const char *wr_cluster_node_name(const wr_cluster *c, size_t i) {
    return c && i < c->n ? c->dsn.name[i] : "";
}

int wr_cluster_primary(wr_cluster *c) {
    if (!c) return -1;
    pthread_mutex_lock(&c->mu);
    int p = c->eng.primary;
    pthread_mutex_unlock(&c->mu);
    return p;
}

/* ---- pools ----------------------------------------------------------------- */

int wr_cluster_try_borrow(wr_cluster *c, int i, wr_conn **out) {
    wr_pool *pool = &c->pool[i];
    *out = NULL;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        wr_conn *conn = pool->idle;
        if (!conn) break;
        pool->idle = conn->next;
        pool->nidle--;
        pool->in_use++;
        conn->next = NULL;
        pthread_mutex_unlock(&c->mu);
        if (wr_conn_idle_ok(conn)) {
            *out = conn;
            return 1;
        }
        wr_conn_free(conn); /* the server closed it while it was idle */
        pthread_mutex_lock(&c->mu);
        pool->in_use--;
    }
    int r = -1;
    if (pool->in_use < (int)c->opt.pool_max) {
        pool->in_use++;
        r = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

void wr_cluster_release_slot(wr_cluster *c, int i) {
    pthread_mutex_lock(&c->mu);
    c->pool[i].in_use--;
    pthread_mutex_unlock(&c->mu);
}

void wr_cluster_giveback(wr_cluster *c, wr_conn *conn, int broken) {
    if (!conn) return;
    int keep = !broken && PQstatus(conn->pg) == CONNECTION_OK && PQtransactionStatus(conn->pg) == PQTRANS_IDLE;
    wr_pool *pool = &c->pool[conn->node];
    pthread_mutex_lock(&c->mu);
    pool->in_use--;
    if (keep && pool->nidle < (int)c->opt.pool_size) {
        conn->next = pool->idle;
        pool->idle = conn;
        pool->nidle++;
        conn = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    wr_conn_free(conn);
}

/* ---- status ------------------------------------------------------------------ */

/* out_size: sizeof(wr_node_status) in the caller's walrouter.h. */
wr_status wr_cluster_node_status_sized(wr_cluster *c, size_t i, wr_node_status *caller_out,
                                      size_t out_size) {
    if (!c || !caller_out || i >= c->n) return WR_ERR_ARG;
    wr_node_status full;
    wr_node_status *out = &full;
    if (c->opt.no_refresher) wr_cluster_probe_due(c);
    memset(out, 0, sizeof *out);
    const char *host = c->dsn.host[i] ? c->dsn.host[i] : c->dsn.hostaddr[i] ? c->dsn.hostaddr[i] : "localhost";
    snprintf(out->host, sizeof out->host, "%s", host);
    out->port = c->dsn.port[i] ? atoi(c->dsn.port[i]) : 5432;
    pthread_mutex_lock(&c->mu);
    const wr_node_track *n = &c->eng.nodes[i];
    out->role = (wr_role)n->role;
    out->state = wr_engine_state(&c->eng, (int)i);
    out->replay_lsn = n->lsn;
    out->lag_bytes = n->up ? n->lag_bytes : -1;
    out->lag_seconds = n->up && n->lag_us >= 0 ? (double)n->lag_us / 1e6 : -1;
    out->replay_rate = n->rate;
    out->last_check_unix_ms = n->last_check_unix_ms;
    out->conns_in_use = c->pool[i].in_use;
    out->conns_idle = c->pool[i].nidle;
    snprintf(out->last_error, sizeof out->last_error, "%s", n->last_error);
    memcpy(out->served, n->served, sizeof out->served);
    out->errors = n->errors;
    out->timeline = n->tli;
    out->fenced = n->fenced;
    out->rtt_ms = n->rtt_us ? n->rtt_us / 1000.0 : -1;
    pthread_mutex_unlock(&c->mu);
    memcpy(caller_out, &full, out_size < sizeof full ? out_size : sizeof full);
    return WR_OK;
}
