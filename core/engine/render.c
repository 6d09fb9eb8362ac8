/* render.c — the engine's node state rendered for operators: a JSON array
 * for tools and dashboards, Prometheus text exposition for scraping.
 *
 * snprintf-style: the text goes into the caller's buffer (at most buflen
 * bytes, NUL included, cut anywhere when short) and the length the whole
 * text needs is returned, so a caller can size its buffer and render again.
 * Figures the engine does not know are null in JSON and left out of the
 * metrics: never a number that could be mistaken for a measurement.
 * Pure: no I/O, no allocation, no clock reads. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "walrouter_engine.h"

/* ---- a bounded writer that keeps counting past its end ------------------- */

typedef struct out {
    char *buf;
    size_t cap; /* bytes buf holds, NUL included; 0: count only */
    size_t len; /* bytes the whole text needs so far (without NUL) */
} out;

static void out_init(out *o, char *buf, size_t cap) {
    o->buf = buf && cap ? buf : NULL;
    o->cap = o->buf ? cap : 0;
    o->len = 0;
    if (o->buf) o->buf[0] = '\0';
}

static void put_char(out *o, char c) {
    if (o->len + 1 < o->cap) {
        o->buf[o->len] = c;
        o->buf[o->len + 1] = '\0';
    }
    o->len++;
}

static void put_f(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_f(out *o, const char *fmt, ...) {
    char *at = o->len < o->cap ? o->buf + o->len : NULL;
    size_t room = at ? o->cap - o->len : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(at, room, fmt, ap); /* cut with a NUL at the end when short */
    va_end(ap);
    if (n > 0) o->len += (size_t)n;
}

static void put_s(out *o, const char *s) {
    for (; *s; s++) put_char(o, *s);
}

/* s as a JSON string, quotes included. Control characters as \u00XX (\n,
 * \r, \t in their short forms); bytes >= 0x80 pass through (UTF-8). */
static void put_json_str(out *o, const char *s) {
    static const char hex[] = "0123456789abcdef";
    put_char(o, '"');
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            put_char(o, '\\');
            put_char(o, (char)c);
        } else if (c == '\n') {
            put_s(o, "\\n");
        } else if (c == '\r') {
            put_s(o, "\\r");
        } else if (c == '\t') {
            put_s(o, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            put_s(o, "\\u00");
            put_char(o, hex[c >> 4]);
            put_char(o, hex[c & 0xf]);
        } else {
            put_char(o, (char)c);
        }
    }
    put_char(o, '"');
}

/* s as a Prometheus label value, quotes included: \\, \" and \n escaped as
 * the exposition format says; other control characters are dropped (they
 * would break a line-based reader). */
static void put_label(out *o, const char *s) {
    put_char(o, '"');
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            put_char(o, '\\');
            put_char(o, (char)c);
        } else if (c == '\n') {
            put_s(o, "\\n");
        } else if (c >= 0x20 && c != 0x7f) {
            put_char(o, (char)c);
        }
    }
    put_char(o, '"');
}

/* ---- figures ------------------------------------------------------------- */

static const char *role_name(int32_t r) {
    return r == WR_ROLE_PRIMARY ? "primary" : r == WR_ROLE_REPLICA ? "replica" : "unknown";
}

/* names[i], or the name the engine was set up with. */
static const char *node_name(const wr_engine *e, const char *const *names, uint32_t i) {
    return names && names[i] ? names[i] : e->nodes[i].name;
}

static int conns_of(const int *conns, uint32_t i, int idle) { return conns ? conns[2 * i + (idle ? 1 : 0)] : 0; }

/* `, "key": ` then the value, or null when it is not known. */
#define FIGURE(o, key, known, ...) \
    (put_f(o, ", \"%s\": ", key), (known) ? put_f(o, __VA_ARGS__) : put_s(o, "null"))

size_t wr_engine_status_json(const wr_engine *e, const char *const *names, const int *conns, char *buf,
                             size_t buflen) {
    out o;
    out_init(&o, buf, buflen);
    if (!e) {
        put_s(&o, "[]\n");
        return o.len;
    }
    put_char(&o, '[');
    for (uint32_t i = 0; i < e->n && i < WR_ENGINE_MAX_NODES; i++) {
        const wr_node_track *n = &e->nodes[i];
        char lsn[WR_LSN_BUFSIZE];
        put_f(&o, "%s\n  {\"node\": %u, \"name\": ", i ? "," : "", i);
        put_json_str(&o, node_name(e, names, i));
        put_f(&o, ", \"role\": \"%s\", \"state\": \"%s\", \"primary\": %s", role_name(n->role),
              wr_node_state_name(wr_engine_state(e, (int)i)), (int32_t)i == e->primary ? "true" : "false");
        FIGURE(&o, "timeline", n->tli != 0, "%u", n->tli);
        put_f(&o, ", \"fenced\": %s", n->fenced ? "true" : "false");
        FIGURE(&o, "lag_bytes", n->lag_bytes >= 0, "%lld", (long long)n->lag_bytes);
        FIGURE(&o, "lag_seconds", n->lag_us >= 0, "%.3f", (double)n->lag_us / 1e6);
        FIGURE(&o, "replay_lsn", n->lsn != WR_LSN_INVALID, "\"%s\"", wr_lsn_format(n->lsn, lsn));
        FIGURE(&o, "replay_rate", n->rate >= 0, "%.0f", n->rate);
        FIGURE(&o, "receiver", n->role == WR_ROLE_REPLICA && n->receiver >= 0, "\"%s\"",
               n->receiver ? "streaming" : "stopped");
        FIGURE(&o, "rtt_ms", n->rtt_us != 0, "%.3f", (double)n->rtt_us / 1e3);
        FIGURE(&o, "last_check_unix_ms", n->last_check_unix_ms > 0, "%lld", (long long)n->last_check_unix_ms);
        put_f(&o, ", \"conns_in_use\": %d, \"conns_idle\": %d, \"last_error\": ", conns_of(conns, i, 0),
              conns_of(conns, i, 1));
        put_json_str(&o, n->last_error);
        put_s(&o, ", \"served\": {");
        for (int r = 1; r < WR_REASON_COUNT; r++)
            put_f(&o, "%s\"%s\": %llu", r > 1 ? ", " : "", wr_reason_name((wr_reason)r),
                  (unsigned long long)n->served[r]);
        put_f(&o, "}, \"errors\": %llu}", (unsigned long long)n->errors);
    }
    put_s(&o, "\n]\n");
    return o.len;
}

size_t wr_engine_metrics_text(const wr_engine *e, const char *const *names, const int *conns, char *buf,
                              size_t buflen) {
    out o;
    out_init(&o, buf, buflen);
    uint32_t count = e ? (e->n < WR_ENGINE_MAX_NODES ? e->n : WR_ENGINE_MAX_NODES) : 0;
#define EACH_NODE(i) for (uint32_t i = 0; i < count; i++)
#define SERIES(metric, i) (put_s(&o, metric "{node="), put_label(&o, node_name(e, names, i)))
    put_s(&o, "# HELP walrouter_statements_total Statements served, by node and routing reason.\n"
              "# TYPE walrouter_statements_total counter\n");
    EACH_NODE(i) for (int r = 1; r < WR_REASON_COUNT; r++) {
        SERIES("walrouter_statements_total", i);
        put_f(&o, ",reason=\"%s\"} %llu\n", wr_reason_name((wr_reason)r),
              (unsigned long long)e->nodes[i].served[r]);
    }
    put_s(&o, "# HELP walrouter_errors_total Statements that failed on the node.\n"
              "# TYPE walrouter_errors_total counter\n");
    EACH_NODE(i) {
        SERIES("walrouter_errors_total", i);
        put_f(&o, "} %llu\n", (unsigned long long)e->nodes[i].errors);
    }
    put_s(&o, "# HELP walrouter_node_up Whether the node is reachable.\n# TYPE walrouter_node_up gauge\n");
    EACH_NODE(i) {
        SERIES("walrouter_node_up", i);
        put_f(&o, ",role=\"%s\"} %d\n", role_name(e->nodes[i].role), e->nodes[i].up ? 1 : 0);
    }
    put_s(&o, "# HELP walrouter_node_state The node's state (1 for the current one).\n"
              "# TYPE walrouter_node_state gauge\n");
    EACH_NODE(i) {
        wr_node_state now = wr_engine_state(e, (int)i);
        for (int s = WR_STATE_UP; s <= WR_STATE_FENCED; s++) {
            SERIES("walrouter_node_state", i);
            put_f(&o, ",state=\"%s\"} %d\n", wr_node_state_name((wr_node_state)s), now == (wr_node_state)s);
        }
    }
    put_s(&o, "# HELP walrouter_replica_lag_bytes Primary WAL position minus the replica's replay position.\n"
              "# TYPE walrouter_replica_lag_bytes gauge\n");
    EACH_NODE(i) if (e->nodes[i].role == WR_ROLE_REPLICA && e->nodes[i].lag_bytes >= 0) {
        SERIES("walrouter_replica_lag_bytes", i);
        put_f(&o, "} %lld\n", (long long)e->nodes[i].lag_bytes);
    }
    put_s(&o, "# HELP walrouter_replica_lag_seconds Time since the newest primary position the replica has replayed; 0 when caught up.\n"
              "# TYPE walrouter_replica_lag_seconds gauge\n");
    EACH_NODE(i) if (e->nodes[i].role == WR_ROLE_REPLICA && e->nodes[i].lag_us >= 0) {
        SERIES("walrouter_replica_lag_seconds", i);
        put_f(&o, "} %.3f\n", (double)e->nodes[i].lag_us / 1e6);
    }
    put_s(&o, "# HELP walrouter_connections Pooled connections by state.\n# TYPE walrouter_connections gauge\n");
    EACH_NODE(i) {
        SERIES("walrouter_connections", i);
        put_f(&o, ",state=\"in_use\"} %d\n", conns_of(conns, i, 0));
        SERIES("walrouter_connections", i);
        put_f(&o, ",state=\"idle\"} %d\n", conns_of(conns, i, 1));
    }
#undef EACH_NODE
#undef SERIES
    return o.len;
}
