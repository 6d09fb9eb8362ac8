/* connect.c — connecting to a node with a deadline: libpq's non-blocking
 * connect (PQconnectStartParams + PQconnectPoll) as a state machine, and two
 * poll() loops over it: one node, or several at once so that silent hosts
 * cost the deadline once, not once each. */
#include <ctype.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "conn.h"

static uint64_t mono_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* Ends the attempt without a connection; the message names the node, fits on
 * one line and never shows the password. */
__attribute__((format(printf, 2, 3)))
static void fail(wr_connect_op *op, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char why[1024];
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    wr_mask_secrets(why, sizeof why, op->d->password); /* before any cut can split it */
    size_t n = 0; /* libpq's lines and indents become single spaces */
    for (const char *p = why; *p; p++) {
        int space = isspace((unsigned char)*p);
        if (space && (n == 0 || why[n - 1] == ' ')) continue;
        why[n++] = space ? ' ' : *p;
    }
    while (n && why[n - 1] == ' ') n--;
    why[n] = '\0';
    snprintf(op->err, sizeof op->err, "%s: %s", op->d->name[op->node], why);
    PQfinish(op->pg);
    op->pg = NULL;
    op->done = 1;
}

int wr_connect_op_start(wr_connect_op *op, const wr_dsn *d, size_t i, uint64_t deadline_us) {
    memset(op, 0, sizeof *op);
    op->d = d;
    op->node = i < d->n ? i : 0;
    op->deadline_us = deadline_us;
    op->want = POLLOUT; /* PQconnectStart acts as if PQconnectPoll asked to write */
    const char *kw[128], *val[128];
    if (i >= d->n || wr_dsn_params(d, i, kw, val, 128) < 0) {
        fail(op, "bad node or too many connection keywords");
        return -1;
    }
    op->pg = PQconnectStartParams(kw, val, 0);
    if (!op->pg) {
        fail(op, "out of memory");
        return -1;
    }
    if (PQstatus(op->pg) == CONNECTION_BAD) {
        fail(op, "%s", PQerrorMessage(op->pg));
        return -1;
    }
    return 0;
}

void wr_connect_op_poll(const wr_connect_op *op, int *fd, short *events, uint64_t *wake_us) {
    *fd = op->done ? -1 : PQsocket(op->pg);
    *events = op->done ? 0 : op->want;
    *wake_us = op->done ? 0 : op->deadline_us;
}

int wr_connect_op_advance(wr_connect_op *op, short revents, uint64_t now_us) {
    if (op->done) return 0;
    /* PQconnectPoll only once the socket is ready: called early it would
     * take a connect() still under way for a finished one. */
    if (revents) {
        switch (PQconnectPoll(op->pg)) {
        case PGRES_POLLING_OK:
            if (PQsetnonblocking(op->pg, 1) != 0) {
                fail(op, "cannot enter non-blocking mode: %s", PQerrorMessage(op->pg));
                return 0;
            }
            op->done = 1;
            return 0;
        case PGRES_POLLING_FAILED:
            fail(op, "%s", PQerrorMessage(op->pg));
            return 0;
        case PGRES_POLLING_READING:
            op->want = POLLIN;
            break;
        default: /* PGRES_POLLING_WRITING */
            op->want = POLLOUT;
            break;
        }
    }
    if (now_us >= op->deadline_us) {
        fail(op, "connect timed out (no answer before the deadline)");
        return 0;
    }
    return 1;
}

PGconn *wr_connect_op_take(wr_connect_op *op, char *errmsg, size_t errlen) {
    if (!op->done) fail(op, "connect abandoned before it finished");
    PGconn *pg = op->pg;
    op->pg = NULL;
    snprintf(errmsg, errlen, "%s", pg ? "" : op->err);
    return pg;
}

void wr_connect_op_abandon(wr_connect_op *op) {
    PQfinish(op->pg);
    op->pg = NULL;
    op->done = 1;
}

void wr_conn_connect_many(const wr_dsn *d, const int *nodes, int k, uint64_t deadline_us,
                          PGconn **out, char (*errmsgs)[256]) {
    wr_connect_op ops[WR_MAX_NODES];
    int m = k < WR_MAX_NODES ? k : WR_MAX_NODES;
    for (int j = m; j < k; j++) {
        out[j] = NULL;
        snprintf(errmsgs[j], sizeof errmsgs[j], "more than %d connects at once", WR_MAX_NODES);
    }
    int running = 0;
    for (int j = 0; j < m; j++)
        running += wr_connect_op_start(&ops[j], d, nodes[j] < 0 ? d->n : (size_t)nodes[j], deadline_us) == 0;
    while (running > 0) {
        struct pollfd p[WR_MAX_NODES];
        uint64_t wake = UINT64_MAX, now = mono_us();
        for (int j = 0; j < m; j++) {
            uint64_t w;
            wr_connect_op_poll(&ops[j], &p[j].fd, &p[j].events, &w);
            p[j].revents = 0;
            if (!ops[j].done && w < wake) wake = w;
        }
        uint64_t wait = wake > now ? wake - now : 0;
        int r = poll(p, (nfds_t)m, (int)((wait + 999) / 1000));
        now = mono_us();
        running = 0;
        for (int j = 0; j < m; j++)
            running += wr_connect_op_advance(&ops[j], r > 0 ? p[j].revents : 0, now);
    }
    for (int j = 0; j < m; j++) out[j] = wr_connect_op_take(&ops[j], errmsgs[j], sizeof errmsgs[j]);
}

PGconn *wr_conn_connect(const wr_dsn *d, size_t i, uint64_t deadline_us, char *errmsg, size_t errlen) {
    int node = i < d->n ? (int)i : -1;
    PGconn *pg;
    char err[1][256];
    wr_conn_connect_many(d, &node, 1, deadline_us, &pg, err);
    snprintf(errmsg, errlen, "%s", pg ? "" : err[0]);
    return pg;
}
