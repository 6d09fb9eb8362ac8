/* bench_decide.c — what one routing decision costs: wr_decide_read on a
 * 3-node view (a primary, two replicas), 10 million calls per case with the
 * clock moving, in ns per call. No allocation, no I/O.
 *
 *   bench_decide [calls]
 *
 * Cases: "cached" is the common path (the session's last replica covers its
 * need); "hop" needs the G2 upper bound for another replica; "behind" walks
 * every rule down to a wait or the primary. */
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
    printf("(checksum %llu)\n", (unsigned long long)(sink & 0xFFFF));
    return 0;
}
