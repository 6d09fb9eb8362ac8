/* bench_read.c — what routing costs on a replica read, measured in one run
 * against raw libpq on the same replica and the same query.
 *
 *   bench_read DSN [iterations [runs [seed]]]   (DSN: a primary and ONE replica)
 *
 * Every variant has its own connection (its own backend) to the same replica.
 * In each of `runs` runs (default 3), every variant reads `iterations` times;
 * the variants are alternated read by read, in a fresh random order for every
 * read (seeded, printed), so periodic work such as refresh probes or
 * checkpoints falls on all alike. Each run reports, per variant, the median
 * and p99 of per-read latencies and their ratios to the baseline; the summary
 * gives the median over the runs and the spread (min-max), with the machine's
 * load average before and after each run.
 *   raw_pipelined     THE BASELINE, the physical limit of the same work: one
 *                     prepared read in libpq pipeline mode (Bind, Describe,
 *                     Execute, Sync in one write; blocking libpq)
 *   raw_prepared      PQexecPrepared (blocking libpq)
 *   raw_exec_params   PQexecParams (unnamed statement, parsed every time)
 *   nonblocking_prep  the same prepared read through walrouter's I/O layer:
 *                     non-blocking, pipelined, poll() with a deadline
 *   walrouter_cached  wr_query; the replica's known position covers the need
 *   walrouter_checked wr_query; the known position is set one byte short of
 *                     the session's need before each read, so
 *                     pg_last_wal_replay_lsn() is piggybacked
 * Which node served: every raw connection is checked before and after the
 * measured reads (pg_is_in_recovery() and inet_server_port() against the
 * replica's port); every walrouter read by the node its result names. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define QUERY "SELECT id, v FROM bench_items WHERE id = $1::int"
#define MAX_RUNS 20

enum { RAW_PIPE, RAW_PREPARED, RAW_PARAMS, NB_PREPARED, WR_CACHED, WR_CHECKED, NV };
static const char *const names[NV] = {"raw_pipelined",    "raw_prepared",     "raw_exec_params",
                                      "nonblocking_prep", "walrouter_cached", "walrouter_checked"};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* v sorted; the q-quantile in microseconds. */
static double quantile_us(const uint64_t *v, int n, double q) { return (double)v[(int)(q * (n - 1))] / 1000.0; }

static void die(const char *what, const char *msg) {
    fprintf(stderr, "bench_read: %s: %s\n", what, msg);
    exit(1);
}

/* xorshift64*: the read order, reproducible from the seed. */
static uint64_t next_rand(uint64_t *st) {
    *st ^= *st >> 12, *st ^= *st << 25, *st ^= *st >> 27;
    return *st * 2685821657736338717ull;
}

static void loadavg(char *out, size_t len) {
    FILE *f = fopen("/proc/loadavg", "r");
    double a = 0, b = 0, c = 0;
    if (!f || fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3) snprintf(out, len, "?");
    else snprintf(out, len, "%.2f %.2f %.2f", a, b, c);
    if (f) fclose(f);
}

/* Dies unless pg is a session on a server in recovery listening on port. */
static void check_replica_conn(PGconn *pg, const char *variant, int port) {
    PGresult *r = PQexec(pg, "SELECT pg_is_in_recovery(), inet_server_port()");
    char msg[256];
    if (PQresultStatus(r) != PGRES_TUPLES_OK) die(variant, PQresultErrorMessage(r));
    if (strcmp(PQgetvalue(r, 0, 0), "t") != 0 || atoi(PQgetvalue(r, 0, 1)) != port) {
        snprintf(msg, sizeof msg, "served by port %s (in recovery: %s), not the replica on port %d",
                 PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 0), port);
        die(variant, msg);
    }
    PQclear(r);
}

/* One prepared read in pipeline mode: send Bind/Describe/Execute and a Sync
 * in one write, read the result, its terminating NULL and the Sync's result. */
static PGresult *pipelined_read(PGconn *pg, const char *const *p) {
    if (!PQsendQueryPrepared(pg, "bench", 1, p, NULL, NULL, 0) || !PQpipelineSync(pg))
        die("pipelined read", PQerrorMessage(pg));
    PGresult *res = PQgetResult(pg), *end = PQgetResult(pg), *sync = PQgetResult(pg);
    if (end || PQresultStatus(sync) != PGRES_PIPELINE_SYNC) die("pipelined read", "unexpected result sequence");
    PQclear(sync);
    return res;
}

typedef struct bench {
    wr_cluster *c;
    wr_session *s;
    int replica, port;
    PGconn *pipe, *blocking;
    wr_conn *nb;
} bench;

/* One read of variant v; its latency in ns. Dies on a wrong answer; *on_replica
 * says whether walrouter says the replica served it (raw: checked per connection). */
static uint64_t read_one(bench *b, int v, int id, int *on_replica, int *checked) {
    char idtxt[16], why[256];
    snprintf(idtxt, sizeof idtxt, "%d", id);
    const char *p[1] = {idtxt};
    if (v == WR_CHECKED) { /* the known position falls one byte short of the session's need */
        pthread_mutex_lock(&b->c->mu);
        wr_engine *e = &b->c->eng;
        wr_lsn need = b->s->es.tl.need;
        if (need > 0) {
            e->nodes[b->replica].lsn = need - 1;
            /* Keep its staleness bound: the newest primary sample is lowered
             * to it too (the replica really is caught up). */
            if (e->nsamples) {
                wr_sample *newest = &e->samples[(e->sample_head + WR_ENGINE_SAMPLES - 1) % WR_ENGINE_SAMPLES];
                if (newest->lsn > need - 1) newest->lsn = need - 1;
            }
        }
        pthread_mutex_unlock(&b->c->mu);
    }
    uint64_t t0 = now_ns(), dt;
    int rows;
    *on_replica = 1, *checked = 0;
    if (v == RAW_PIPE || v == RAW_PREPARED || v == RAW_PARAMS) {
        PGresult *r = v == RAW_PIPE       ? pipelined_read(b->pipe, p)
                      : v == RAW_PREPARED ? PQexecPrepared(b->blocking, "bench", 1, p, NULL, NULL, 0)
                                          : PQexecParams(b->blocking, QUERY, 1, NULL, p, NULL, NULL, 0);
        dt = now_ns() - t0;
        if (PQresultStatus(r) != PGRES_TUPLES_OK) die(names[v], PQresultErrorMessage(r));
        rows = PQntuples(r);
        PQclear(r);
    } else if (v == NB_PREPARED) {
        wr_pq_step step = {.sql = QUERY, .nparams = 1, .params = p};
        wr_run_opts ro = {.deadline_us = wr_now_us() + 5000000u};
        wr_run_status rs = wr_conn_run(b->nb, &step, 1, &ro, why, sizeof why);
        dt = now_ns() - t0;
        if (rs != WR_RUN_OK || PQresultStatus(step.res) != PGRES_TUPLES_OK) die(names[v], why);
        rows = PQntuples(step.res);
        wr_pq_steps_clear(&step, 1);
    } else {
        wr_result *r = NULL;
        if (wr_query(b->s, QUERY, 1, p, 0, &r) != WR_OK) die(names[v], wr_session_errmsg(b->s));
        dt = now_ns() - t0;
        rows = (int)wr_result_nrows(r);
        *on_replica = wr_result_node(r) == b->replica;
        *checked = wr_result_reason(r) == WR_REASON_REPLICA_CHECKED;
        wr_result_free(r);
    }
    if (rows != 1) die(names[v], "wrong row count");
    return dt;
}

static PGconn *connect_replica(bench *b, const char *variant) {
    char why[256];
    PGconn *pg = wr_conn_connect(&b->c->dsn, (size_t)b->replica, wr_now_us() + 10000000u, why, sizeof why);
    if (!pg) die(variant, why);
    PQsetnonblocking(pg, 0);
    check_replica_conn(pg, variant, b->port);
    return pg;
}

static void prepare(PGconn *pg) {
    PGresult *pr = PQprepare(pg, "bench", QUERY, 1, NULL);
    if (PQresultStatus(pr) != PGRES_COMMAND_OK) die("prepare", PQresultErrorMessage(pr));
    PQclear(pr);
}

/* The nonblocking_prep connection is checked through walrouter's I/O layer. */
static void check_nb(bench *b) {
    char why[256];
    wr_pq_step step = {.sql = "SELECT pg_is_in_recovery(), inet_server_port()"};
    wr_run_opts ro = {.deadline_us = wr_now_us() + 5000000u};
    if (wr_conn_run(b->nb, &step, 1, &ro, why, sizeof why) != WR_RUN_OK ||
        PQresultStatus(step.res) != PGRES_TUPLES_OK)
        die("nonblocking_prep check", why);
    if (strcmp(PQgetvalue(step.res, 0, 0), "t") != 0 || atoi(PQgetvalue(step.res, 0, 1)) != b->port)
        die("nonblocking_prep", "not served by the replica");
    wr_pq_steps_clear(&step, 1);
}

int main(int argc, char **argv) {
    if (argc < 2) die("usage", "bench_read DSN [iterations [runs [seed]]]");
    int iters = argc > 2 ? atoi(argv[2]) : 10000;
    int runs = argc > 3 ? atoi(argv[3]) : 3;
    uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 10) : (uint64_t)time(NULL);
    if (iters < 100) iters = 100;
    if (runs < 1) runs = 1;
    if (runs > MAX_RUNS) runs = MAX_RUNS;
    uint64_t rng = seed ? seed : 1;

    bench b = {.replica = -1};
    if (wr_cluster_open(&b.c, argv[1], NULL) != WR_OK) die("open", wr_cluster_errmsg(b.c));
    for (size_t i = 0; i < b.c->n; i++)
        if (b.c->eng.nodes[i].role == WR_ROLE_REPLICA) b.replica = (int)i;
    if (b.replica < 0 || b.c->eng.primary < 0) die("open", "need a primary and a replica");
    const char *rname = wr_cluster_node_name(b.c, (size_t)b.replica), *colon = strrchr(rname, ':');
    b.port = colon ? atoi(colon + 1) : 5432;

    b.s = wr_session_new(b.c);
    if (wr_exec(b.s, "CREATE TABLE IF NOT EXISTS bench_items (id int PRIMARY KEY, v text)", 0, NULL, NULL) ||
        wr_exec(b.s, "INSERT INTO bench_items SELECT g, 'item ' || g FROM generate_series(1, 1000) g "
                     "ON CONFLICT DO NOTHING", 0, NULL, NULL))
        die("setup", wr_session_errmsg(b.s));

    b.blocking = connect_replica(&b, "raw connection");
    prepare(b.blocking);
    for (;;) { /* wait (polling) until the replica has the rows */
        PGresult *r = PQexec(b.blocking, "SELECT count(*) FROM bench_items");
        int ok = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) >= 1000;
        PQclear(r);
        if (ok) break;
    }
    b.pipe = connect_replica(&b, "raw_pipelined");
    prepare(b.pipe);
    if (!PQenterPipelineMode(b.pipe)) die("pipeline mode", PQerrorMessage(b.pipe));
    PGconn *nbpg = connect_replica(&b, "nonblocking_prep");
    if (!(b.nb = wr_conn_new(nbpg, b.replica, 1, 64))) die("nonblocking_prep", "out of memory");

    uint64_t *lat[NV];
    for (int v = 0; v < NV; v++)
        if (!(lat[v] = malloc(sizeof(uint64_t) * (size_t)iters))) die("malloc", "out of memory");
    double med[NV][MAX_RUNS], p99[NV][MAX_RUNS];
    int served[NV] = {0}, checked_reads = 0, dummy1, dummy2;

    for (int i = 0; i < 300; i++) /* warm up every path (connections, prepared statements) */
        for (int v = 0; v < NV; v++) read_one(&b, v, 1 + i % 1000, &dummy1, &dummy2);

    printf("bench_read: %d reads per variant per run, %d runs, replica %s, seed %llu\n  query: %s\n", iters, runs,
           rname, (unsigned long long)seed, QUERY);
    for (int run = 0; run < runs; run++) {
        char load0[64], load1[64];
        loadavg(load0, sizeof load0);
        for (int i = 0; i < iters; i++) {
            int order[NV];
            for (int k = 0; k < NV; k++) order[k] = k;
            for (int k = NV - 1; k > 0; k--) { /* Fisher-Yates: a fresh order for every read */
                int j = (int)(next_rand(&rng) % (uint64_t)(k + 1)), t = order[k];
                order[k] = order[j], order[j] = t;
            }
            for (int k = 0; k < NV; k++) {
                int v = order[k], on_replica, checked;
                lat[v][i] = read_one(&b, v, 1 + i % 1000, &on_replica, &checked);
                served[v] += on_replica;
                checked_reads += v == WR_CHECKED && checked;
            }
        }
        loadavg(load1, sizeof load1);
        printf("run %d/%d  load average before: %s  after: %s\n", run + 1, runs, load0, load1);
        for (int v = 0; v < NV; v++) {
            qsort(lat[v], (size_t)iters, sizeof(uint64_t), cmp_u64);
            med[v][run] = quantile_us(lat[v], iters, 0.5);
            p99[v][run] = quantile_us(lat[v], iters, 0.99);
        }
        for (int v = 0; v < NV; v++)
            printf("  %-18s median %7.1f us  p99 %7.1f us  %.3fx / %.3fx raw_pipelined  %.3fx raw_prepared\n",
                   names[v], med[v][run], p99[v][run], med[v][run] / med[RAW_PIPE][run],
                   p99[v][run] / p99[RAW_PIPE][run], med[v][run] / med[RAW_PREPARED][run]);
    }
    check_replica_conn(b.blocking, "raw connection (after)", b.port);
    if (PQexitPipelineMode(b.pipe) != 1) die("raw_pipelined", PQerrorMessage(b.pipe));
    check_replica_conn(b.pipe, "raw_pipelined (after)", b.port);
    check_nb(&b);
    for (int v = 0; v < NV; v++)
        if (v < WR_CACHED) served[v] = iters * runs; /* their connections were checked before and after */

    printf("summary over %d runs: median of the run medians [min-max]; ratio of medians to raw_pipelined and "
           "to raw_prepared per run: median [min-max]\n", runs);
    for (int v = 0; v < NV; v++) {
        double m[MAX_RUNS], q[MAX_RUNS], r[MAX_RUNS], rp[MAX_RUNS];
        for (int k = 0; k < runs; k++)
            m[k] = med[v][k], q[k] = p99[v][k], r[k] = med[v][k] / med[RAW_PIPE][k],
            rp[k] = med[v][k] / med[RAW_PREPARED][k];
        qsort(m, (size_t)runs, sizeof *m, cmp_double);
        qsort(q, (size_t)runs, sizeof *q, cmp_double);
        qsort(r, (size_t)runs, sizeof *r, cmp_double);
        qsort(rp, (size_t)runs, sizeof *rp, cmp_double);
        printf("  %-18s median %7.1f us [%.1f-%.1f]  p99 %7.1f us [%.1f-%.1f]  %.3fx [%.3f-%.3f] raw_pipelined  "
               "%.3fx [%.3f-%.3f] raw_prepared  %d/%d on the replica\n", names[v], m[runs / 2], m[0], m[runs - 1],
               q[runs / 2], q[0], q[runs - 1], r[runs / 2], r[0], r[runs - 1], rp[runs / 2], rp[0], rp[runs - 1],
               served[v], iters * runs);
        if (v == WR_CACHED || v == WR_CHECKED) {
            double target = v == WR_CACHED ? 1.03 : 1.10;
            int met = 0;
            for (int k = 0; k < runs; k++) met += r[k] <= target;
            printf("  %-18s target <= %.2fx raw_pipelined: met in %d/%d runs\n", "", target, met, runs);
        }
    }
    printf("  walrouter_checked: %d/%d reads carried the piggybacked check\n", checked_reads, iters * runs);
    for (int v = 0; v < NV; v++) free(lat[v]);
    PQfinish(b.pipe);
    PQfinish(b.blocking);
    wr_conn_free(b.nb);
    wr_session_free(b.s);
    wr_cluster_close(b.c);
    return 0;
}
