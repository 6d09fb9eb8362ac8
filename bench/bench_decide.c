/* bench_decide.c — what one routing decision costs: wr_decide_read on a
 * 3-node view (a primary, two replicas), 10 million calls per case with the
 * clock moving, in ns per call. No allocation, no I/O.
 *
 *   bench_decide [calls]
 *
 * Cases: "cached" is the common path (the session's last replica covers its
 * need); "hop" needs the G2 upper bound for another replica; "behind" walks
 * every rule down to a wait or the primary. Then one whole cached read as
 * the session engine runs it (wr_engine_tick, wr_op_start, wr_op_next, wr_op_feed,
 * wr_op_next: what a driver calls per read), 5 rounds, median and spread. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "walrouter_decide.h"

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const wr_policy policy = {.budget_us = 200000, .retry_interval_us = 10000, .seed = 7};
#define START_US 5000000u

/* Runs `calls` decisions; returns ns per call. `sink` keeps the work alive. */
static double run(const wr_timeline *t, const wr_node_view *v, uint32_t tried, long calls, uint64_t *sink) {
    const wr_policy p = policy;
    uint64_t start = START_US, acc = 0;
    uint64_t t0 = now_ns();
    for (long i = 0; i < calls; i++) {
        /* The clock moves through the budget and back. */
        wr_choice c = wr_decide_read(t, v, 3, start, start + (uint64_t)(i & 0x3FFFF), tried, (int)(i & 1), &p);
        acc += (uint64_t)c.action + (uint64_t)c.node + c.wait_us;
    }
    uint64_t elapsed = now_ns() - t0;
    *sink += acc;
    return (double)elapsed / (double)calls;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One cached replica read through the session engine, `calls` times. */
static double run_op(long calls, uint64_t *sink) {
    static wr_engine e;
    const char *names[3] = {"db1:5432", "db2:5432", "db3:5432"};
    wr_engine_init(&e, NULL, names, 3);
    wr_probe pp = {.in_recovery = 0, .tli = 1, .lsn = 0x16B374D848, .flushed = 0x16B374D848};
    wr_probe pr = {.in_recovery = 1, .tli = 1, .lsn = 0x16B374D848, .receiver = 1};
    wr_engine_probe_ok(&e, 0, &pp, 1000, 1100, 0);
    wr_engine_probe_ok(&e, 1, &pr, 1000, 1100, 0);
    wr_engine_probe_ok(&e, 2, &pr, 1000, 1100, 0);
    wr_sess s;
    wr_sess_init(&s, 7);
    s.tl.need = 0x16B374C800;
    s.tl.need_tli = 1;
    wr_op op;
    wr_step st;
    wr_io io = {.outcome = WR_IO_OK};
    uint64_t acc = 0, t0 = now_ns();
    for (long i = 0; i < calls; i++) {
        uint64_t now = 2000 + (uint64_t)(i & 0xFFF);
        wr_engine_tick(&e, now);
        wr_op_start(&op, WR_OP_READ, now);
        wr_op_next(&op, &s, &e, now, &st);
        io.sent_us = now;
        wr_op_feed(&op, &s, &e, &io, now + 50, (uint32_t)i);
        wr_op_next(&op, &s, &e, now + 50, &st);
        acc += (uint64_t)st.kind + (uint64_t)op.result_node;
    }
    uint64_t elapsed = now_ns() - t0;
    *sink += acc;
    return (double)elapsed / (double)calls;
}

int main(int argc, char **argv) {
    long calls = argc > 1 ? strtol(argv[1], NULL, 10) : 10000000;
    if (calls <= 0) calls = 10000000;
    wr_node_view v[3] = {
        {.role = WR_ROLE_PRIMARY, .up = 1, .lsn = 0x16B374D848, .lsn_at_us = 5000100, .rate = -1},
        {.role = WR_ROLE_REPLICA, .up = 1, .lsn = 0x16B374D848, .lsn_at_us = 5000100, .rate = 4e6},
        {.role = WR_ROLE_REPLICA, .up = 1, .lsn = 0x16B374C000, .lsn_at_us = 5000100, .rate = -1},
    };
    uint64_t sink = 0;
    wr_timeline cached = {.need = 0x16B374C800, .last_node = 1, .last_read_us = 4999000};
    wr_timeline hop = {.need = 0x16B374C800, .last_node = 2, .last_read_us = 4999000};
    wr_timeline behind = {.need = 0x16B374E000, .last_node = 1, .last_read_us = 4999000};
    const struct {
        const char *name;
        const wr_timeline *t;
        uint32_t tried;
    } cases[] = {{"cached", &cached, 0}, {"hop", &hop, 0}, {"behind", &behind, 0x6}};
    static const char *const actions[] = {"cached", "check", "wait", "primary"};
    printf("wr_decide_read, 3 nodes, %ld calls per case\n", calls);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double ns = run(cases[i].t, v, cases[i].tried, calls, &sink);
        wr_choice c = wr_decide_read(cases[i].t, v, 3, START_US, START_US, cases[i].tried, 0, &policy);
        printf("  %-7s %6.1f ns/call  (first decision: %s on node %d)\n", cases[i].name, ns,
               actions[c.action & 3], c.node);
    }
    long op_calls = calls / 10 > 0 ? calls / 10 : 1;
    double r[5];
    for (int k = 0; k < 5; k++) r[k] = run_op(op_calls, &sink);
    qsort(r, 5, sizeof r[0], cmp_d);
    printf("session engine, one cached read (tick, start, next, feed, next), 3 nodes, 5 rounds of %ld:\n"
           "  median %.1f ns/read  (min %.1f, max %.1f)\n",
           op_calls, r[2], r[0], r[4]);
    printf("(checksum %llu)\n", (unsigned long long)(sink & 0xFFFF));
    return 0;
}
