/* bench_fault.c — what a frozen replica costs the reads of a cluster that
 * still has another replica and the primary: episodes with no fault and
 * with replica 1 frozen (SIGSTOP through tests/cluster.sh) alternate, reads
 * identical in both; each condition reports the median, p99 and max of
 * per-read latencies, and the ratio of frozen to healthy.
 *
 *   bench_fault DSN [reads per episode] [rounds]   (WR_CLUSTER_SH set) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "walrouter.h"

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

static double q_us(uint64_t *v, int n, double q) { return (double)v[(int)(q * (n - 1))] / 1000.0; }

static void die(const char *what, const char *msg) {
    fprintf(stderr, "bench_fault: %s: %s\n", what, msg);
    exit(1);
}

static void cluster(const char *cmd) {
    const char *sh = getenv("WR_CLUSTER_SH");
    char line[512];
    if (!sh) die("setup", "WR_CLUSTER_SH is not set");
    snprintf(line, sizeof line, "%s %s >/dev/null", sh, cmd);
    if (system(line) != 0) die("cluster.sh", cmd);
}

int main(int argc, char **argv) {
    if (argc < 2) die("usage", "bench_fault DSN [reads per episode] [rounds]");
    int per = argc > 2 ? atoi(argv[2]) : 2000, rounds = argc > 3 ? atoi(argv[3]) : 3;
    if (per < 100) per = 100;
    if (rounds < 1) rounds = 1;
    wr_cluster *c = NULL;
    if (wr_cluster_open(&c, argv[1], NULL) != WR_OK) die("open", wr_cluster_errmsg(c));
    wr_session *s = wr_session_new(c);
    if (wr_exec(s, "CREATE TABLE IF NOT EXISTS bench_items (id int PRIMARY KEY, v text)", 0, NULL, NULL) ||
        wr_exec(s, "INSERT INTO bench_items SELECT g, 'item ' || g FROM generate_series(1, 1000) g "
                   "ON CONFLICT DO NOTHING", 0, NULL, NULL))
        die("setup", wr_session_errmsg(s));
    uint64_t *lat[2];
    int n[2] = {0, 0}, served[2][8] = {{0}};
    for (int k = 0; k < 2; k++)
        if (!(lat[k] = malloc(sizeof(uint64_t) * (size_t)(per * rounds)))) die("malloc", "out of memory");
    for (int r = 0; r < rounds; r++) {
        for (int frozen = 0; frozen < 2; frozen++) {
            if (frozen) cluster("freeze 1");
            for (int i = 0; i < per; i++) {
                char id[16];
                snprintf(id, sizeof id, "%d", 1 + i % 1000);
                const char *p[1] = {id};
                wr_session *rs = wr_session_new(c); /* a new user each read: any replica may serve */
                wr_result *res = NULL;
                uint64_t t0 = now_ns();
                if (wr_query(rs, QUERY, 1, p, 0, &res) != WR_OK) die("read", wr_session_errmsg(rs));
                lat[frozen][n[frozen]++] = now_ns() - t0;
                int node = wr_result_node(res);
                if (node >= 0 && node < 8) served[frozen][node]++;
                wr_result_free(res);
                wr_session_free(rs);
            }
            if (frozen) cluster("thaw 1");
        }
    }
    static const char *const names[2] = {"healthy", "replica 1 frozen"};
    double m[2], p99[2];
    printf("%d reads per condition, episodes of %d alternating (healthy, frozen) x %d\n", per * rounds, per, rounds);
    for (int k = 0; k < 2; k++) {
        qsort(lat[k], (size_t)n[k], sizeof(uint64_t), cmp_u64);
        m[k] = q_us(lat[k], n[k], 0.5);
        p99[k] = q_us(lat[k], n[k], 0.99);
        printf("  %-17s median %7.1f us  p99 %7.1f us  max %9.1f us  served by node 0/1/2: %d/%d/%d\n", names[k],
               m[k], p99[k], q_us(lat[k], n[k], 1.0), served[k][0], served[k][1], served[k][2]);
    }
    printf("  frozen / healthy: median %.2fx, p99 %.2fx\n", m[1] / m[0], p99[1] / p99[0]);
    free(lat[0]);
    free(lat[1]);
    wr_session_free(s);
    wr_cluster_close(c);
    return 0;
}
