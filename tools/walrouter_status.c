/* walrouter-status — a cluster's nodes, roles, lag and traffic for operators.
 *
 *   walrouter-status DSN [--json | --metrics] [--watch SECONDS]
 *
 * Prints a table (or JSON, or Prometheus text); with --watch, again every
 * SECONDS until interrupted. Exit status: 0 when every node is up, 1 when some
 * node is down, 2 on bad usage or when no node is reachable. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "walrouter.h"

static int usage(void) {
    fprintf(stderr, "usage: walrouter-status DSN [--json | --metrics] [--watch SECONDS]\n");
    return 2;
}

static int print_table(wr_cluster *c) {
    int down = 0;
    printf("%-4s %-22s %-8s %-12s %12s %10s %18s %6s %5s  %s\n", "node", "address", "role", "state", "lag_bytes",
           "lag_s", "replay_lsn", "in_use", "idle", "served / errors / last error");
    for (size_t i = 0; i < wr_cluster_nnodes(c); i++) {
        wr_node_status st;
        if (wr_cluster_node_status(c, i, &st) != WR_OK) continue;
        char lsn[WR_LSN_BUFSIZE], lag[24], lags[24];
        uint64_t served = 0;
        for (int r = 0; r < WR_REASON_COUNT; r++) served += st.served[r];
        snprintf(lag, sizeof lag, st.lag_bytes < 0 ? "-" : "%lld", (long long)st.lag_bytes);
        snprintf(lags, sizeof lags, st.lag_seconds < 0 ? "-" : "%.3f", st.lag_seconds);
        printf("%-4zu %-22s %-8s %-12s %12s %10s %18s %6d %5d  %llu / %llu%s%s\n", i, wr_cluster_node_name(c, i),
               st.role == WR_ROLE_PRIMARY ? "primary" : st.role == WR_ROLE_REPLICA ? "replica" : "?",
               wr_node_state_name(st.state), lag, lags, wr_lsn_format(st.replay_lsn, lsn), st.conns_in_use,
               st.conns_idle, (unsigned long long)served, (unsigned long long)st.errors, st.last_error[0] ? " / " : "",
               st.last_error);
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
        else if (strcmp(argv[i], "--watch") == 0 && i + 1 < argc) {
            char *end;
            watch = strtod(argv[++i], &end);
            if (*end || watch <= 0) return usage();
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage();
            return 0;
        } else if (!dsn && argv[i][0] != '-') dsn = argv[i];
        else return usage();
    }
    if (!dsn || (json && metrics)) return usage();
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
