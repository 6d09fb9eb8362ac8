/* status.c — the cluster's status rendered for operators: JSON for tools and
 * dashboards, Prometheus text exposition for scraping. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* A growing string; on allocation failure it stays failed and yields NULL. */
typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf ? b->buf + b->len : NULL, b->buf ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { b->failed = 1; return; }
        if (b->buf && b->len + (size_t)n < b->cap) { b->len += (size_t)n; return; }
        size_t cap = (b->cap ? b->cap * 2 : 1024) + (size_t)n;
        char *nb = realloc(b->buf, cap);
        if (!nb) { b->failed = 1; return; }
        b->buf = nb;
        b->cap = cap;
    }
}

static char *sb_done(sbuf *b) {
    if (b->failed) {
        free(b->buf);
        return NULL;
    }
    return b->buf;
}

/* Text as a JSON string (quotes included); escape: JSON or Prometheus label. */
static void sb_quoted(sbuf *b, const char *s, int json) {
    sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') sb_printf(b, "\\%c", *p);
        else if (*p == '\n') sb_printf(b, "\\n");
        else if (*p < 0x20) { if (json) sb_printf(b, "\\u%04x", *p); }
        else sb_printf(b, "%c", *p);
    }
    sb_printf(b, "\"");
}

static const char *role_name(wr_role r) {
    return r == WR_ROLE_PRIMARY ? "primary" : r == WR_ROLE_REPLICA ? "replica" : "unknown";
}

void wr_free(void *p) { free(p); }

/* `, "key": value`, or null when the figure is not known: never a number
 * that could be mistaken for one. */
#define FIGURE(b, key, known, ...) \
    (sb_printf(b, ", \"%s\": ", key), (known) ? sb_printf(b, __VA_ARGS__) : sb_printf(b, "null"))

char *wr_cluster_status_json(wr_cluster *c) {
    if (!c) return NULL;
    sbuf b = {0};
    sb_printf(&b, "[");
    for (size_t i = 0; i < c->n; i++) {
        wr_node_status st;
        wr_cluster_node_status(c, i, &st);
        char lsn[WR_LSN_BUFSIZE];
        sb_printf(&b, "%s\n  {\"node\": %zu, \"name\": ", i ? "," : "", i);
        sb_quoted(&b, wr_cluster_node_name(c, i), 1);
        sb_printf(&b, ", \"host\": ");
        sb_quoted(&b, st.host, 1);
        sb_printf(&b, ", \"port\": %d, \"role\": \"%s\", \"state\": \"%s\"", st.port, role_name(st.role),
                  wr_node_state_name(st.state));
        FIGURE(&b, "lag_bytes", st.lag_bytes >= 0, "%lld", (long long)st.lag_bytes);
        FIGURE(&b, "lag_seconds", st.lag_seconds >= 0, "%.3f", st.lag_seconds);
        FIGURE(&b, "replay_lsn", st.replay_lsn != WR_LSN_INVALID, "\"%s\"", wr_lsn_format(st.replay_lsn, lsn));
        FIGURE(&b, "replay_rate", st.replay_rate >= 0, "%.0f", st.replay_rate);
        FIGURE(&b, "last_check_unix_ms", st.last_check_unix_ms > 0, "%lld", (long long)st.last_check_unix_ms);
        FIGURE(&b, "timeline", st.timeline > 0, "%u", st.timeline);
        sb_printf(&b, ", \"fenced\": %s", st.fenced ? "true" : "false");
        FIGURE(&b, "rtt_ms", st.rtt_ms >= 0, "%.3f", st.rtt_ms);
        sb_printf(&b, ", \"conns_in_use\": %d, \"conns_idle\": %d, \"last_error\": ", st.conns_in_use,
                  st.conns_idle);
        sb_quoted(&b, st.last_error, 1);
        sb_printf(&b, ", \"served\": {");
        for (int r = 1; r < WR_REASON_COUNT; r++)
            sb_printf(&b, "%s\"%s\": %llu", r > 1 ? ", " : "", wr_reason_name((wr_reason)r),
                      (unsigned long long)st.served[r]);
        sb_printf(&b, "}, \"errors\": %llu}", (unsigned long long)st.errors);
    }
    sb_printf(&b, "\n]\n");
    return sb_done(&b);
}

char *wr_cluster_metrics_text(wr_cluster *c) {
    if (!c) return NULL;
    wr_node_status st[WR_MAX_NODES];
    for (size_t i = 0; i < c->n; i++) wr_cluster_node_status(c, i, &st[i]);
    sbuf b = {0};
#define EACH_NODE(i) for (size_t i = 0; i < c->n; i++)
#define LABEL(i) sb_printf(&b, "{node="), sb_quoted(&b, wr_cluster_node_name(c, i), 0)
    sb_printf(&b, "# HELP walrouter_statements_total Statements served, by node and routing reason.\n"
                  "# TYPE walrouter_statements_total counter\n");
    EACH_NODE(i) for (int r = 1; r < WR_REASON_COUNT; r++) {
        sb_printf(&b, "walrouter_statements_total");
        LABEL(i);
        sb_printf(&b, ",reason=\"%s\"} %llu\n", wr_reason_name((wr_reason)r), (unsigned long long)st[i].served[r]);
    }
    sb_printf(&b, "# HELP walrouter_errors_total Statements that failed on the node.\n"
                  "# TYPE walrouter_errors_total counter\n");
    EACH_NODE(i) {
        sb_printf(&b, "walrouter_errors_total");
        LABEL(i);
        sb_printf(&b, "} %llu\n", (unsigned long long)st[i].errors);
    }
    sb_printf(&b, "# HELP walrouter_node_up Whether the node is reachable.\n# TYPE walrouter_node_up gauge\n");
    EACH_NODE(i) {
        sb_printf(&b, "walrouter_node_up");
        LABEL(i);
        sb_printf(&b, ",role=\"%s\"} %d\n", role_name(st[i].role), st[i].state != WR_STATE_DOWN);
    }
    sb_printf(&b, "# HELP walrouter_node_state The node's state (1 for the current one).\n"
                  "# TYPE walrouter_node_state gauge\n");
    EACH_NODE(i) for (int s = WR_STATE_UP; s <= WR_STATE_FENCED; s++) {
        sb_printf(&b, "walrouter_node_state");
        LABEL(i);
        sb_printf(&b, ",state=\"%s\"} %d\n", wr_node_state_name((wr_node_state)s), st[i].state == (wr_node_state)s);
    }
    sb_printf(&b, "# HELP walrouter_replica_lag_bytes Primary WAL position minus the replica's replay position.\n"
                  "# TYPE walrouter_replica_lag_bytes gauge\n");
    EACH_NODE(i) if (st[i].role == WR_ROLE_REPLICA && st[i].lag_bytes >= 0) {
        sb_printf(&b, "walrouter_replica_lag_bytes");
        LABEL(i);
        sb_printf(&b, "} %lld\n", (long long)st[i].lag_bytes);
    }
    sb_printf(&b, "# HELP walrouter_replica_lag_seconds Time since the newest primary position the replica has replayed; 0 when caught up.\n"
                  "# TYPE walrouter_replica_lag_seconds gauge\n");
    EACH_NODE(i) if (st[i].role == WR_ROLE_REPLICA && st[i].lag_seconds >= 0) {
        sb_printf(&b, "walrouter_replica_lag_seconds");
        LABEL(i);
        sb_printf(&b, "} %.3f\n", st[i].lag_seconds);
    }
    sb_printf(&b, "# HELP walrouter_connections Pooled connections by state.\n# TYPE walrouter_connections gauge\n");
    EACH_NODE(i) {
        sb_printf(&b, "walrouter_connections");
        LABEL(i);
        sb_printf(&b, ",state=\"in_use\"} %d\n", st[i].conns_in_use);
        sb_printf(&b, "walrouter_connections");
        LABEL(i);
        sb_printf(&b, ",state=\"idle\"} %d\n", st[i].conns_idle);
    }
#undef EACH_NODE
#undef LABEL
    return sb_done(&b);
}
