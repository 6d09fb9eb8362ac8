/* test_failover.c — the primary stops and a replica is promoted: the same
 * cluster handle finds the new primary, no write is lost or applied twice,
 * and read-your-writes holds across the failover, also for a token taken
 * before it. Runs on a cluster of its own (a promotion changes the topology
 * for good). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "testlib.h"

static char dsn[512];

static int write_rows(wr_session *s, int from, int to) {
    int ok = 0;
    for (int i = from; i < to; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        const char *p[1] = {id};
        if (wr_exec(s, "INSERT INTO ledger(id) VALUES ($1::int)", 1, p, NULL) == WR_OK) ok++;
        else fprintf(stderr, "write %d: %s\n", i, wr_session_errmsg(s));
    }
    return ok;
}

static long count(wr_session *s, int *node) {
    wr_result *r = NULL;
    if (wr_query(s, "SELECT count(*) FROM ledger", 0, NULL, 0, &r) != WR_OK) {
        fprintf(stderr, "count: %s\n", wr_session_errmsg(s));
        return -1;
    }
    long n = atol(wr_result_value(r, 0, 0));
    if (node) *node = wr_result_node(r);
    wr_result_free(r);
    return n;
}

static void writes_continue_on_the_promoted_replica_without_reopening(void) {
    wr_cluster *c = t_open(NULL);
    wr_session *s = wr_session_new(c);
    CHECK_INT(wr_exec(s, "CREATE TABLE ledger (id int PRIMARY KEY)", 0, NULL, NULL), WR_OK);
    CHECK_INT(write_rows(s, 0, 50), 50);
    char token[WR_TOKEN_BUFSIZE];
    snprintf(token, sizeof token, "%s", wr_session_token(s));
    CHECK_INT(t_cluster("wait-replay 1"), 0);
    CHECK_INT(t_cluster("wait-replay 2"), 0);

    CHECK_INT(t_cluster("stop-node 0"), 0);
    CHECK_INT(t_cluster("promote 1"), 0);

    CHECK_INT(write_rows(s, 50, 100), 50);
    CHECK_INT(wr_cluster_primary(c), 1);
    CHECK_INT(atol(t_sql(1, "SELECT count(*) FROM ledger")), 100); /* none lost, none twice */
    int node = -1;
    CHECK_INT(count(s, &node), 100);
    CHECK(node == 1 || node == 2);

    /* A token from before the promotion still gives read-your-writes. */
    wr_session *resumed = wr_session_new(c);
    CHECK_INT(wr_session_resume(resumed, token), WR_OK);
    CHECK(count(resumed, NULL) >= 50);
    wr_session_free(resumed);

    wr_node_status st;
    CHECK_INT(wr_cluster_node_status(c, 0, &st), WR_OK);
    CHECK_INT(st.state, WR_STATE_DOWN);
    CHECK_INT(wr_cluster_node_status(c, 1, &st), WR_OK);
    CHECK_INT(st.role, WR_ROLE_PRIMARY);
    CHECK_INT(wr_cluster_node_status(c, 2, &st), WR_OK);
    CHECK_INT(st.role, WR_ROLE_REPLICA);
    wr_session_free(s);
    wr_cluster_close(c);
}

int main(void) {
    /* A cluster of its own, next to the suite's. */
    setenv("WR_CLUSTER_DIR", "/tmp/walrouter-failover-cluster", 1);
    setenv("WR_BASE_PORT", "25470", 1);
    if (t_cluster_out(dsn, sizeof dsn, "start") != 0 || strncmp(dsn, "postgresql://", 13) != 0) {
        fprintf(stderr, "could not start the failover cluster\n");
        t_cluster("stop");
        return 1;
    }
    t_use_dsn(dsn);
    RUN(writes_continue_on_the_promoted_replica_without_reopening);
    t_cluster("stop");
    return check_exit();
}
