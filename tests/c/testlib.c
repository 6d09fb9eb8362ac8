/* testlib.c — see testlib.h. */
#define _POSIX_C_SOURCE 200809L
#include "testlib.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "internal.h"

static const char *chosen_dsn;

void t_use_dsn(const char *dsn) { chosen_dsn = dsn; }

void t_nap(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

const char *t_dsn(void) {
    const char *dsn = chosen_dsn ? chosen_dsn : getenv("WR_TEST_DSN");
    if (!dsn || !*dsn) {
        fprintf(stderr, "WR_TEST_DSN is not set: run the suite with tests/run.sh, which starts a cluster\n");
        exit(2);
    }
    return dsn;
}

int t_cluster(const char *fmt, ...) {
    const char *script = getenv("WR_CLUSTER_SH");
    char args[512], cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s >&2", script ? script : "tests/cluster.sh", args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int t_cluster_out(char *out, size_t cap, const char *fmt, ...) {
    const char *script = getenv("WR_CLUSTER_SH");
    char args[512], cmd[1024], line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s", script ? script : "tests/cluster.sh", args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    out[0] = '\0';
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(out, cap, "%s", line);
    }
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static PGconn *node_conn(int node) {
    static wr_dsn dsn;
    static const char *parsed;
    if (parsed != t_dsn()) {
        if (parsed) wr_dsn_free(&dsn);
        wr_err e;
        if (wr_dsn_parse(&dsn, t_dsn(), 5, &e) != WR_OK) {
            fprintf(stderr, "bad WR_TEST_DSN: %s\n", e.msg);
            exit(2);
        }
        parsed = t_dsn();
    }
    char why[256];
    PGconn *pg = wr_conn_connect(&dsn, (size_t)node, wr_now_us() + 10000000u, why, sizeof why);
    if (!pg) fprintf(stderr, "node %d: %s\n", node, why);
    if (pg) PQsetnonblocking(pg, 0);
    return pg;
}

static void quiet(void *arg, const char *message) {}

const char *t_sql(int node, const char *fmt, ...) {
    static char value[256];
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGconn *pg = node_conn(node);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "t_sql: node %d: %s", node, PQerrorMessage(pg));
        exit(2);
    }
    PQsetNoticeProcessor(pg, quiet, NULL);
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "t_sql: node %d: %s: %s", node, sql, PQresultErrorMessage(r));
        exit(2);
    }
    snprintf(value, sizeof value, "%s", PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    PQfinish(pg);
    return value;
}

int t_primary(void) {
    for (int i = 0; i < 3; i++) {
        PGconn *pg = node_conn(i);
        int primary = 0;
        if (PQstatus(pg) == CONNECTION_OK) {
            PGresult *r = PQexec(pg, "SELECT pg_is_in_recovery()");
            primary = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "f") == 0;
            PQclear(r);
        }
        PQfinish(pg);
        if (primary) return i;
    }
    return -1;
}

/* Under valgrind a SCRAM login costs about a second of CPU; with three at
 * once on a loaded machine the default connect timeout is too short. */
int t_under_valgrind(void) {
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload") != NULL;
}

wr_cluster *t_open(const wr_options *opt) {
    wr_options o = {0};
    if (opt) o = *opt;
    if (t_under_valgrind() && o.connect_timeout_s == 0) o.connect_timeout_s = 30;
    wr_cluster *c = NULL;
    if (wr_cluster_open(&c, t_dsn(), &o) != WR_OK) {
        fprintf(stderr, "cannot open the test cluster: %s\n", wr_cluster_errmsg(c));
        exit(2);
    }
    return c;
}

wr_lsn t_primary_lsn(void) {
    wr_lsn lsn = 0;
    wr_lsn_parse(t_sql(t_primary(), "SELECT pg_current_wal_insert_lsn()"), &lsn);
    return lsn;
}
