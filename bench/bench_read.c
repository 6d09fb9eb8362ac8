/* bench_read.c — what routing costs on a replica read, measured in one run
 * against raw libpq on the same replica and the same query.
 *
 *   bench_read DSN [iterations]    (DSN: a primary and ONE replica)
 *
 * Variants, alternated read by read (the order rotates every read, so each
 * variant takes each position equally often; periodic work such as refresh
 * probes falls on all alike); each reports the median and p99 of per-read
 * latencies and their ratios to raw PQexecParams and raw PQexecPrepared:
 *   raw_exec_params   PQexecParams on the replica (the baseline)
 *   raw_prepared      PQexecPrepared on the replica (blocking libpq)
 *   nonblocking_prep  the same prepared read through walrouter's I/O layer:
 *                     non-blocking, pipelined, poll() with a deadline
 *   walrouter_cached  wr_query; the replica's known position covers the need
 *   walrouter_checked wr_query; the known position is set one byte short of
 *                     the session's need before each read, so
 *                     pg_last_wal_replay_lsn() is piggybacked */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define QUERY "SELECT id, v FROM bench_items WHERE id = $1::int"

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v; the q-quantile in microseconds. */
static double quantile_us(uint64_t *v, int n, double q) {
    qsort(v, (size_t)n, sizeof *v, cmp_u64);
    int i = (int)(q * (n - 1));
    return (double)v[i] / 1000.0;
}

static void die(const char *what, const char *msg) {
    fprintf(stderr, "bench_read: %s: %s\n", what, msg);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 2) die("usage", "bench_read DSN [iterations]");
    int iters = argc > 2 ? atoi(argv[2]) : 10000;
    if (iters < 100) iters = 100;

    wr_cluster *c = NULL;
    if (wr_cluster_open(&c, argv[1], NULL) != WR_OK) die("open", wr_cluster_errmsg(c));
    int replica = -1;
    for (size_t i = 0; i < c->n; i++)
        if (c->eng.nodes[i].role == WR_ROLE_REPLICA) replica = (int)i;
    if (replica < 0 || c->eng.primary < 0) die("open", "need a primary and a replica");

    wr_session *s = wr_session_new(c);
    if (wr_exec(s, "CREATE TABLE IF NOT EXISTS bench_items (id int PRIMARY KEY, v text)", 0, NULL, NULL) ||
        wr_exec(s, "INSERT INTO bench_items SELECT g, 'item ' || g FROM generate_series(1, 1000) g "
                   "ON CONFLICT DO NOTHING", 0, NULL, NULL))
        die("setup", wr_session_errmsg(s));

    char why[256];
    PGconn *raw = wr_conn_connect(&c->dsn, (size_t)replica, wr_now_us() + 10000000u, why, sizeof why);
    if (!raw) die("raw connect", why);
    PQsetnonblocking(raw, 0);
    PGresult *pr = PQprepare(raw, "bench", QUERY, 1, NULL);
    if (PQresultStatus(pr) != PGRES_COMMAND_OK) die("prepare", PQresultErrorMessage(pr));
    PQclear(pr);
    /* Wait (polling) until the replica has the rows. */
    for (;;) {
        PGresult *r = PQexec(raw, "SELECT count(*) FROM bench_items");
        int ok = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) >= 1000;
        PQclear(r);
        if (ok) break;
    }

    PGconn *nbpg = wr_conn_connect(&c->dsn, (size_t)replica, wr_now_us() + 10000000u, why, sizeof why);
    wr_conn *nb = nbpg ? wr_conn_new(nbpg, replica, 1, 64) : NULL;
    if (!nb) die("non-blocking connect", why);

    enum { RAW_PARAMS, RAW_PREPARED, NB_PREPARED, WR_CACHED, WR_CHECKED, NV };
    static const char *names[NV] = {"raw_exec_params", "raw_prepared", "nonblocking_prep", "walrouter_cached",
                                    "walrouter_checked"};
    uint64_t *lat[NV];
    for (int v = 0; v < NV; v++)
        if (!(lat[v] = malloc(sizeof(uint64_t) * (size_t)iters))) die("malloc", "out of memory");
    int served_replica[NV] = {0}, checked_reason = 0, reasons[WR_REASON_COUNT] = {0};

    /* Warm up every path (connections, prepared statements). */
    for (int i = 0; i < 200; i++) {
        wr_result *r = NULL;
        char id[16];
        snprintf(id, sizeof id, "%d", 1 + i % 1000);
        const char *p[1] = {id};
        wr_query(s, QUERY, 1, p, 0, &r);
        wr_result_free(r);
        PQclear(PQexecParams(raw, QUERY, 1, NULL, p, NULL, NULL, 0));
        PQclear(PQexecPrepared(raw, "bench", 1, p, NULL, NULL, 0));
        wr_pq_step step = {.sql = QUERY, .nparams = 1, .params = p};
        wr_run_opts ro = {.deadline_us = wr_now_us() + 5000000u};
        wr_conn_run(nb, &step, 1, &ro, why, sizeof why);
        wr_pq_steps_clear(&step, 1);
    }

    for (int i = 0; i < iters; i++) {
        for (int k = 0; k < NV; k++) {
            int v = (i + k) % NV; /* every variant in every position equally often */
            char id[16];
            snprintf(id, sizeof id, "%d", 1 + i % 1000);
            const char *p[1] = {id};
            if (v == WR_CHECKED) { /* the known position falls one byte short of the session's need */
                pthread_mutex_lock(&c->mu);
                wr_lsn need = s->es.tl.need;
                wr_engine *e = &c->eng;
                if (need > 0) {
                    c->eng.nodes[replica].lsn = need - 1;
                    /* Keep its staleness bound: the newest primary sample
                     * is lowered to it too (the replica really is caught up). */
                    if (e->nsamples) {
                        wr_sample *newest = &e->samples[(e->sample_head + WR_ENGINE_SAMPLES - 1) % WR_ENGINE_SAMPLES];
                        if (newest->lsn > need - 1) newest->lsn = need - 1;
                    }
                }
                pthread_mutex_unlock(&c->mu);
            }
            uint64_t t0 = now_ns();
            if (v == RAW_PARAMS || v == RAW_PREPARED) {
                PGresult *r = v == RAW_PARAMS ? PQexecParams(raw, QUERY, 1, NULL, p, NULL, NULL, 0)
                                              : PQexecPrepared(raw, "bench", 1, p, NULL, NULL, 0);
                lat[v][i] = now_ns() - t0;
                if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) die("raw read", PQresultErrorMessage(r));
                PQclear(r);
                served_replica[v]++;
            } else if (v == NB_PREPARED) {
                wr_pq_step step = {.sql = QUERY, .nparams = 1, .params = p};
                wr_run_opts ro = {.deadline_us = wr_now_us() + 5000000u};
                wr_run_status rs = wr_conn_run(nb, &step, 1, &ro, why, sizeof why);
                lat[v][i] = now_ns() - t0;
                if (rs != WR_RUN_OK || PQntuples(step.res) != 1) die("non-blocking read", why);
                wr_pq_steps_clear(&step, 1);
                served_replica[v]++;
            } else {
                wr_result *r = NULL;
                if (wr_query(s, QUERY, 1, p, 0, &r) != WR_OK) die("read", wr_session_errmsg(s));
                lat[v][i] = now_ns() - t0;
                if (wr_result_nrows(r) != 1) die("read", "wrong row count");
                served_replica[v] += wr_result_node(r) == replica;
                if (v == WR_CACHED) reasons[wr_result_reason(r) % WR_REASON_COUNT]++;
                checked_reason += v == WR_CHECKED && wr_result_reason(r) == WR_REASON_REPLICA_CHECKED;
                wr_result_free(r);
            }
        }
    }
    double base_us = 0, prepared_us = 0, base99 = 0, prepared99 = 0;
    printf("%d reads per variant on replica %s, alternated read by read, query: %s\n", iters,
           wr_cluster_node_name(c, (size_t)replica), QUERY);
    for (int v = 0; v < NV; v++) {
        double m = quantile_us(lat[v], iters, 0.5), p99 = quantile_us(lat[v], iters, 0.99);
        if (v == RAW_PARAMS) base_us = m, base99 = p99;
        if (v == RAW_PREPARED) prepared_us = m, prepared99 = p99;
        char vs_prepared[64] = "";
        if (v > RAW_PREPARED)
            snprintf(vs_prepared, sizeof vs_prepared, "  %.3fx / %.3fx raw PQexecPrepared", m / prepared_us,
                     p99 / prepared99);
        printf("  %-18s median %7.1f us  p99 %7.1f us  %.3fx / %.3fx raw PQexecParams%s  (%d/%d on the replica)\n",
               names[v], m, p99, m / base_us, p99 / base99, vs_prepared, served_replica[v], iters);
        free(lat[v]);
    }
    printf("  cached variant by reason:");
    for (int k = 0; k < WR_REASON_COUNT; k++)
        if (reasons[k]) printf(" %s=%d", wr_reason_name((wr_reason)k), reasons[k]);
    printf("\n");
    printf("  checked variant: %d/%d reads carried the piggybacked check\n", checked_reason, iters);
    PQfinish(raw);
    wr_conn_free(nb);
    wr_session_free(s);
    wr_cluster_close(c);
    return 0;
}
