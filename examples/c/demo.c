/* demo.c — walrouter in one screen: reads on replicas, a write, reading your
 * own write while the replicas' replay is paused, a session resumed from its
 * token, and the fallback and return of replica reads.
 *
 *   demo DSN      (tests/cluster.sh start prints one; WR_CLUSTER_SH, when set,
 *                  is used to pause and resume replay so the lag is real;
 *                  without it nothing is paused, and the narrative says so) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "walrouter.h"

static wr_cluster *cluster;

/* One step of the story: runs `$WR_CLUSTER_SH ARGS` (tests/cluster.sh) and
 * prints `done` when it ran, or `otherwise` and why not (NULL: nothing) when
 * WR_CLUSTER_SH is not set or the command failed. Returns whether it ran. */
static int stage(const char *done, const char *otherwise, const char *args) {
    const char *sh = getenv("WR_CLUSTER_SH");
    char cmd[512];
    int ran = 0;
    if (sh) {
        snprintf(cmd, sizeof cmd, "%s %s >/dev/null", sh, args);
        ran = system(cmd) == 0;
        if (!ran) fprintf(stderr, "(could not run: %s)\n", cmd);
    }
    if (ran) printf("\n-- %s\n", done);
    else if (otherwise) printf("\n-- %s (%s)\n", otherwise, sh ? "tests/cluster.sh failed" : "WR_CLUSTER_SH is not set");
    fflush(stdout);
    return ran;
}

static void show(const char *label, wr_result *r) {
    printf("%-38s -> %-16s %-18s", label, wr_cluster_node_name(cluster, (size_t)wr_result_node(r)),
           wr_reason_name(wr_result_reason(r)));
    if (wr_result_nrows(r) > 0 && wr_result_ncols(r) > 0)
        printf(" %s=%s", wr_result_colname(r, 0), wr_result_value(r, 0, 0) ? wr_result_value(r, 0, 0) : "NULL");
    printf("\n");
}

static int read_show(wr_session *s, const char *label, const char *sql) {
    wr_result *r = NULL;
    if (wr_query(s, sql, 0, NULL, 0, &r) != WR_OK) {
        fprintf(stderr, "%s: %s\n", label, wr_session_errmsg(s));
        return -1;
    }
    show(label, r);
    wr_result_free(r);
    return 0;
}

int main(int argc, char **argv) {
    const char *dsn = argc > 1 ? argv[1] : getenv("WR_DSN");
    if (!dsn) {
        fprintf(stderr, "usage: %s DSN\n", argv[0]);
        return 2;
    }
    if (wr_cluster_open(&cluster, dsn, NULL) != WR_OK) {
        fprintf(stderr, "open: %s\n", wr_cluster_errmsg(cluster));
        wr_cluster_close(cluster);
        return 1;
    }
    printf("cluster:");
    for (size_t i = 0; i < wr_cluster_nnodes(cluster); i++)
        printf(" %s(%s)", wr_cluster_node_name(cluster, i),
               (int)i == wr_cluster_primary(cluster) ? "primary" : "replica");
    printf("\n");

    wr_session *alice = wr_session_new(cluster), *bob = wr_session_new(cluster);
    wr_result *r = NULL;
    if (wr_exec(alice, "CREATE TABLE IF NOT EXISTS demo_notes (id serial PRIMARY KEY, who text, note text)", 0,
                NULL, NULL) != WR_OK) {
        fprintf(stderr, "create: %s\n", wr_session_errmsg(alice));
        return 1;
    }
    stage("replicas are fresh: reads go to them", "reads go to a replica when one is fresh enough",
          "wait-replay 1 && $WR_CLUSTER_SH wait-replay 2");
    read_show(alice, "alice reads her notes", "SELECT count(*) AS notes FROM demo_notes WHERE who = 'alice'");

    int paused = stage("replay paused on both replicas: they fall behind",
                       "replay is not paused: the replicas may keep up with the write",
                       "pause 1 && $WR_CLUSTER_SH pause 2 || "
                       "{ $WR_CLUSTER_SH resume 1; $WR_CLUSTER_SH resume 2; false; }");
    const char *params[2] = {"alice", "hello from the primary"};
    if (wr_exec(alice, "INSERT INTO demo_notes (who, note) VALUES ($1, $2)", 2, params, &r) != WR_OK) {
        fprintf(stderr, "insert: %s\n", wr_session_errmsg(alice));
        return 1;
    }
    char lsn[WR_LSN_BUFSIZE];
    show("alice writes a note", r);
    printf("%-38s    committed at WAL position %s\n", "", wr_lsn_format(wr_result_lsn(r), lsn));
    wr_result_free(r);
    read_show(alice, "alice reads her notes (sees her write)",
              "SELECT count(*) AS notes FROM demo_notes WHERE who = 'alice'");
    read_show(bob, "bob reads alice's notes (may lag)", "SELECT count(*) AS notes FROM demo_notes WHERE who = 'alice'");

    const char *token = wr_session_token(alice);
    printf("%-38s    token %s\n", "alice's next request carries", token);
    wr_session *alice2 = wr_session_new(cluster);
    if (wr_session_resume(alice2, token) != WR_OK) fprintf(stderr, "resume: %s\n", wr_session_errmsg(alice2));
    read_show(alice2, "alice, next request, reads her notes",
              "SELECT count(*) AS notes FROM demo_notes WHERE who = 'alice'");

    if (paused)
        stage("replica 2 resumes replay and catches up", "replica 2 may still be behind",
              "resume 2 && $WR_CLUSTER_SH wait-replay 2");
    read_show(alice2, "alice reads her notes again", "SELECT count(*) AS notes FROM demo_notes WHERE who = 'alice'");
    if (paused) stage("replica 1 resumes too", "replica 1 may still be paused", "resume 1");

    printf("\nnodes:\n");
    for (size_t i = 0; i < wr_cluster_nnodes(cluster); i++) {
        wr_node_status st;
        if (wr_cluster_node_status(cluster, i, &st) != WR_OK) continue;
        printf("  %-18s %-8s %-12s lag %lld bytes, %.3f s\n", wr_cluster_node_name(cluster, i),
               st.role == WR_ROLE_PRIMARY ? "primary" : "replica", wr_node_state_name(st.state),
               (long long)st.lag_bytes, st.lag_seconds);
    }
    wr_session_free(alice2);
    wr_session_free(bob);
    wr_session_free(alice);
    wr_cluster_close(cluster);
    return 0;
}
