/* walrouter-status — a cluster's nodes, roles, lag and traffic for operators.
 *
 *   walrouter-status DSN [--json | --metrics] [--watch SECONDS]
 *
 * Prints a table (or JSON, or Prometheus text); with --watch, again every
 * SECONDS until interrupted. A figure that is not known (a down node's role,
 * lag and position) shows as "-". Exit status: 0 when every node is up, 1
 * when some node is down, 2 on bad usage (the bad argument is named) or when
 * no node is reachable. Served counts are per process, so the table has
 * none: this process serves nothing. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "walrouter.h"

static int usage(void) {
    fprintf(stderr, "usage: walrouter-status DSN [--json | --metrics] [--watch SECONDS]\n");
    return 2;
}

/* Bad usage, naming what was wrong. */
static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "walrouter-status: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return usage();
}

static const char *role_text(const wr_node_status *st) {
    if (st->state == WR_STATE_DOWN || st->role == WR_ROLE_UNKNOWN) return "-";
    return st->role == WR_ROLE_PRIMARY ? "primary" : "replica";
}

static int print_table(wr_cluster *c) {
    int down = 0;
    printf("%-4s %-22s %-8s %-12s %12s %10s %18s %6s %5s %6s  %s\n", "node", "address", "role", "state",
           "lag_bytes", "lag_s", "replay_lsn", "in_use", "idle", "errors", "last_error");
    for (size_t i = 0; i < wr_cluster_nnodes(c); i++) {
        wr_node_status st;
        if (wr_cluster_node_status(c, i, &st) != WR_OK) continue;
        char lsn[WR_LSN_BUFSIZE], lag[24], lags[24];
        int is_down = st.state == WR_STATE_DOWN;
        snprintf(lag, sizeof lag, is_down || st.lag_bytes < 0 ? "-" : "%lld", (long long)st.lag_bytes);
        snprintf(lags, sizeof lags, is_down || st.lag_seconds < 0 ? "-" : "%.3f", st.lag_seconds);
        if (is_down || st.replay_lsn == WR_LSN_INVALID) snprintf(lsn, sizeof lsn, "-");
        else wr_lsn_format(st.replay_lsn, lsn);
        printf("%-4zu %-22s %-8s %-12s %12s %10s %18s %6d %5d %6llu%s%s\n", i, wr_cluster_node_name(c, i),
               role_text(&st), wr_node_state_name(st.state), lag, lags, lsn, st.conns_in_use, st.conns_idle,
               (unsigned long long)st.errors, st.last_error[0] ? "  " : "", st.last_error);
        down += st.state == WR_STATE_DOWN;
    }
    return down ? 1 : 0;
}

int main(int argc, char **argv) {
    const char *dsn = NULL;
    int json = 0, metrics = 0;
    double watch = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--metrics") == 0) metrics = 1;
        else if (strcmp(argv[i], "--watch") == 0) {
            if (i + 1 == argc) return bad_usage("%s needs a number of seconds", argv[i]);
            char *end;
            watch = strtod(argv[++i], &end);
            if (*end || !(watch > 0 && watch < 1e6)) return bad_usage("--watch %s: not a number of seconds", argv[i]);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage();
            return 0;
        } else if (argv[i][0] == '-') {
            return bad_usage("unknown option %s", argv[i]);
        } else if (!dsn) {
            dsn = argv[i];
        } else {
            return bad_usage("one DSN only (argument %d is a second one)", i);
        }
    }
    if (!dsn) return bad_usage("no DSN given");
    if (json && metrics) return bad_usage("--json and --metrics: choose one");
    wr_cluster *c = NULL;
    if (wr_cluster_open(&c, dsn, NULL) != WR_OK) {
        fprintf(stderr, "walrouter-status: %s\n", wr_cluster_errmsg(c));
        wr_cluster_close(c);
        return 2;
    }
    int rc = 0;
    for (;;) {
        wr_cluster_refresh(c);
        if (json || metrics) {
            char *text = json ? wr_cluster_status_json(c) : wr_cluster_metrics_text(c);
            if (!text) {
                fprintf(stderr, "walrouter-status: out of memory\n");
                rc = 2;
                break;
            }
            fputs(text, stdout);
            wr_free(text);
            for (size_t i = 0; i < wr_cluster_nnodes(c); i++) {
                wr_node_status st;
                if (wr_cluster_node_status(c, i, &st) == WR_OK && st.state == WR_STATE_DOWN) rc = 1;
            }
        } else {
            rc = print_table(c);
        }
        fflush(stdout);
        if (watch <= 0) break;
        struct timespec ts = {.tv_sec = (time_t)watch, .tv_nsec = (long)((watch - (double)(time_t)watch) * 1e9)};
        nanosleep(&ts, NULL);
        if (!json && !metrics) printf("\n");
    }
    wr_cluster_close(c);
    return rc;
}
