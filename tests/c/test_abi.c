/* test_abi.c — a program built against an older walrouter.h, whose
 * wr_options, wr_node_status and wr_event are shorter, keeps working with
 * this library: it reads and writes only the bytes the caller has. Buffers
 * are malloc'ed to the old size exactly, so valgrind and ASan see any byte
 * beyond them; a canary after them must survive. No server needed. */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "walrouter.h"

/* The 0.1 layouts ended before these fields. */
#define OLD_OPTIONS_SIZE offsetof(wr_options, statement_timeout_ms)
#define OLD_STATUS_SIZE offsetof(wr_node_status, timeline)

static void an_old_options_struct_sets_old_options_and_refuses_new_ones(void) {
    void *o = calloc(1, OLD_OPTIONS_SIZE);
    char err[200];
    CHECK_INT(wr_options_set_sized(o, OLD_OPTIONS_SIZE, "read_budget_ms", "50", err, sizeof err), WR_OK);
    uint32_t budget;
    memcpy(&budget, (char *)o + offsetof(wr_options, read_budget_ms), sizeof budget);
    CHECK_INT(budget, 50);
    CHECK_INT(wr_options_set_sized(o, OLD_OPTIONS_SIZE, "token_key", "k", err, sizeof err), WR_OK);
    CHECK_INT(wr_options_set_sized(o, OLD_OPTIONS_SIZE, "pool_max", "4", err, sizeof err), WR_ERR_ARG);
    CHECK(strstr(err, "pool_max") != NULL);
    CHECK(strstr(err, "older") != NULL);
    free(o);
}

static void an_old_caller_opens_a_cluster_and_reads_node_status_without_overflow(void) {
    void *o = calloc(1, OLD_OPTIONS_SIZE);
    uint32_t one = 1;
    memcpy((char *)o + offsetof(wr_options, connect_timeout_s), &one, sizeof one);
    wr_cluster *c = NULL;
    /* Nothing listens on port 1: the open fails fast, the handle still
       describes the node. */
    wr_status st = wr_cluster_open_sized(&c, "postgresql://u:pw@127.0.0.1:1/db", o, OLD_OPTIONS_SIZE);
    CHECK_INT(st, WR_ERR_CONNECT);
    CHECK(c != NULL);
    free(o);
    CHECK_INT(wr_cluster_nnodes(c), 1);

    unsigned char *buf = malloc(OLD_STATUS_SIZE + 16);
    memset(buf, 0xAB, OLD_STATUS_SIZE + 16);
    CHECK_INT(wr_cluster_node_status_sized(c, 0, (wr_node_status *)(void *)buf, OLD_STATUS_SIZE), WR_OK);
    wr_node_status head;
    memcpy(&head, buf, OLD_STATUS_SIZE);
    CHECK_STR(head.host, "127.0.0.1");
    CHECK_INT(head.port, 1);
    int canary = 1;
    for (size_t i = OLD_STATUS_SIZE; i < OLD_STATUS_SIZE + 16; i++) canary &= buf[i] == 0xAB;
    CHECK(canary);
    free(buf);

    /* Events: an old, shorter wr_event gets its own size per element (the
       failed open queued "node 0: -> down"); nothing is written past it. */
    unsigned char ev[8];
    memset(ev, 0xAB, sizeof ev);
    size_t nev = wr_cluster_poll_events_sized(c, (wr_event *)(void *)ev, 1, 4);
    CHECK(nev <= 1);
    int node = -1;
    if (nev == 1) memcpy(&node, ev, sizeof node);
    CHECK(nev == 0 || node == 0);
    CHECK(ev[4] == 0xAB && ev[7] == 0xAB);
    wr_cluster_close(c);
}

static void the_source_api_passes_the_current_sizes(void) {
    wr_options o = {0};
    char err[120];
    CHECK_INT(wr_options_set(&o, "pool_max", "4", err, sizeof err), WR_OK);
    CHECK_INT(o.pool_max, 4);
}

int main(void) {
    RUN(an_old_options_struct_sets_old_options_and_refuses_new_ones);
    RUN(an_old_caller_opens_a_cluster_and_reads_node_status_without_overflow);
    RUN(the_source_api_passes_the_current_sizes);
    return check_exit();
}
