/* test_async.c — the async C API: operations of several sessions in flight
 * on one thread, driven by one poll() loop; a running statement canceled
 * through the API; misuse answered with clear errors. */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "testlib.h"

/* Drives every unfinished op once through one poll(); returns how many are
 * still running. */
static int drive(wr_async **ops, int *running, int n) {
    struct pollfd fds[8];
    int idx[8], nf = 0, left = 0;
    uint64_t wake = UINT64_MAX;
    for (int i = 0; i < n; i++) {
        if (!running[i]) continue;
        int fd, ev;
        uint64_t w;
        wr_async_poll(ops[i], &fd, &ev, &w);
        if (w < wake) wake = w;
        fds[nf] = (struct pollfd){.fd = fd, .events = (short)((ev & WR_WAIT_READ ? POLLIN : 0) |
                                                              (ev & WR_WAIT_WRITE ? POLLOUT : 0))};
        idx[nf++] = i;
    }
    if (!nf) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    int ms = wake > now ? (int)((wake - now + 999) / 1000) : 0;
    if (ms > 100) ms = 100;
    poll(fds, (nfds_t)nf, ms);
    for (int f = 0; f < nf; f++) {
        int rev = 0;
        if (fds[f].revents & (POLLIN | POLLERR | POLLHUP)) rev |= WR_WAIT_READ;
        if (fds[f].revents & (POLLOUT | POLLERR | POLLHUP)) rev |= WR_WAIT_WRITE;
        int i = idx[f];
        running[i] = wr_async_advance(ops[i], rev);
        left += running[i];
    }
    return left;
}

static void two_operations_in_flight_on_one_thread_finish_in_the_order_the_server_answers(void) {
    wr_cluster *c = t_open(NULL);
    wr_session *slow = wr_session_new(c), *fast = wr_session_new(c);
    wr_async *ops[2];
    CHECK_INT(wr_async_start(slow, WR_ASYNC_QUERY, "SELECT 'slow', pg_sleep(0.3)", 0, NULL, WR_PRIMARY, &ops[0]),
              WR_OK);
    CHECK_INT(wr_async_start(fast, WR_ASYNC_QUERY, "SELECT 'fast'", 0, NULL, 0, &ops[1]), WR_OK);
    int running[2] = {wr_async_advance(ops[0], 0), wr_async_advance(ops[1], 0)};
    int first_done = -1;
    while (running[0] || running[1]) {
        drive(ops, running, 2);
        if (first_done < 0) first_done = !running[1] ? 1 : !running[0] ? 0 : -1;
    }
    CHECK_INT(first_done, 1); /* the fast one, while the slow one still ran */
    for (int i = 0; i < 2; i++) {
        wr_result *r = NULL;
        CHECK_INT(wr_async_result(ops[i], &r), WR_OK);
        CHECK_STR(wr_result_value(r, 0, 0), i == 0 ? "slow" : "fast");
        wr_result_free(r);
        wr_async_free(ops[i]);
    }
    wr_session_free(slow);
    wr_session_free(fast);
    wr_cluster_close(c);
}

static void a_canceled_operation_ends_interrupted_and_its_session_works_on(void) {
    wr_cluster *c = t_open(NULL);
    wr_session *s = wr_session_new(c);
    wr_async *a;
    CHECK_INT(wr_async_start(s, WR_ASYNC_EXEC, "SELECT pg_sleep(30)", 0, NULL, 0, &a), WR_OK);
    int running = wr_async_advance(a, 0);
    /* Poll until the statement runs on the server, then cancel. */
    for (int i = 0; i < 200 && atoi(t_sql(0, "SELECT count(*) FROM pg_stat_activity WHERE query = "
                                              "'SELECT pg_sleep(30)' AND state = 'active'")) == 0; i++) {
        if (running) drive(&a, &running, 1);
        t_nap(10);
    }
    wr_async_cancel(a);
    while (running) drive(&a, &running, 1);
    CHECK_INT(wr_async_result(a, NULL), WR_ERR_INTERRUPTED);
    if (!strstr(wr_session_errmsg(s), "canceled")) fprintf(stderr, "  message: %s\n", wr_session_errmsg(s));
    CHECK(strstr(wr_session_errmsg(s), "canceled") != NULL);
    wr_async_free(a);
    CHECK_STR(t_sql(0, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND "
                       "state = 'active'"),
              "0");
    /* The server confirmed it: the statement did not run, so nothing is
     * unknown and the session goes on. */
    wr_result *r = NULL;
    CHECK_INT(wr_query(s, "SELECT 7", 0, NULL, 0, &r), WR_OK);
    CHECK_STR(wr_result_value(r, 0, 0), "7");
    wr_result_free(r);
    wr_session_free(s);
    wr_cluster_close(c);
}

/* A replica read canceled through the API (no interrupt function, which
 * would make every statement wait for the server's proof anyway): the
 * cancel waits for the server's answer too, so the connection goes back to
 * the pool instead of being discarded. */
static void a_canceled_replica_read_keeps_its_connection(void) {
    wr_options opt = {0};
    opt.read_budget_ms = 60000; /* the replica's deadline stays far */
    wr_cluster *c = t_open(&opt);
    wr_session *s = wr_session_new(c);
    static const char sql[] = "SELECT pg_sleep(30) /* async_cancel_replica */";
    wr_async *a;
    CHECK_INT(wr_async_start(s, WR_ASYNC_QUERY, sql, 0, NULL, 0, &a), WR_OK);
    int running = wr_async_advance(a, 0), node = -1;
    for (int i = 0; i < 400 && node < 0; i++) {
        for (int n = 1; n <= 2 && node < 0; n++)
            if (atoi(t_sql(n, "SELECT count(*) FROM pg_stat_activity WHERE query = '%s' AND state = 'active'", sql)))
                node = n;
        if (running) drive(&a, &running, 1);
        if (node < 0) t_nap(10);
    }
    CHECK(node >= 1);
    wr_node_status during;
    CHECK_INT(wr_cluster_node_status(c, (size_t)node, &during), WR_OK);
    wr_async_cancel(a);
    while (running) drive(&a, &running, 1);
    CHECK_INT(wr_async_result(a, NULL), WR_ERR_INTERRUPTED);
    wr_async_free(a);
    CHECK_STR(t_sql(node, "SELECT count(*) FROM pg_stat_activity WHERE query = '%s' AND state = 'active'", sql), "0");
    wr_node_status after;
    CHECK_INT(wr_cluster_node_status(c, (size_t)node, &after), WR_OK);
    CHECK_INT(after.conns_in_use, during.conns_in_use - 1);
    CHECK_INT(after.conns_idle, during.conns_idle + 1); /* back in the pool, not closed */
    wr_session_free(s);
    wr_cluster_close(c);
}

static void misuse_gets_clear_errors(void) {
    wr_cluster *c = t_open(NULL);
    wr_session *s = wr_session_new(c);
    wr_async *a = NULL, *b = NULL;
    CHECK_INT(wr_async_start(s, WR_ASYNC_QUERY, "SELECT 1", 0, NULL, 0, &a), WR_OK);
    CHECK_INT(wr_async_result(a, NULL), WR_ERR_STATE); /* not done yet */
    CHECK_INT(wr_async_start(s, WR_ASYNC_QUERY, "SELECT 2", 0, NULL, 0, &b), WR_ERR_STATE);
    CHECK(b == NULL);
    CHECK(strstr(wr_session_errmsg(s), "another operation") != NULL);
    wr_async_free(a); /* abandoned before it ran: the session is free again */
    CHECK_INT(wr_async_start(s, WR_ASYNC_QUERY, "BEGIN", 0, NULL, 0, &b), WR_ERR_ARG);
    CHECK_INT(wr_async_start(s, WR_ASYNC_QUERY, NULL, 0, NULL, 0, &b), WR_ERR_ARG);
    wr_result *r = NULL;
    CHECK_INT(wr_query(s, "SELECT 3", 0, NULL, 0, &r), WR_OK);
    wr_result_free(r);
    wr_session_free(s);
    wr_cluster_close(c);
}

int main(void) {
    RUN(two_operations_in_flight_on_one_thread_finish_in_the_order_the_server_answers);
    RUN(a_canceled_operation_ends_interrupted_and_its_session_works_on);
    RUN(a_canceled_replica_read_keeps_its_connection);
    RUN(misuse_gets_clear_errors);
    return check_exit();
}
