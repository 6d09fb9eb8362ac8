/* test_cluster.c — the guarantees against a real primary and two streaming
 * replicas, with lag made real by pausing replay and stopping nodes. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "testlib.h"

#define PASSWORD "walrouter-secret"

static wr_cluster *C;

/* Runs a read through s and returns the first value as an integer (-1 on error). */
static long read_int(wr_session *s, const char *sql, const char *param, int *node, wr_reason *why) {
    wr_result *r = NULL;
    const char *params[1] = {param};
    if (wr_query(s, sql, param ? 1 : 0, param ? params : NULL, 0, &r) != WR_OK) {
        fprintf(stderr, "read failed: %s\n", wr_session_errmsg(s));
        return -1;
    }
    long v = wr_result_value(r, 0, 0) ? atol(wr_result_value(r, 0, 0)) : -1;
    if (node) *node = wr_result_node(r);
    if (why) *why = wr_result_reason(r);
    wr_result_free(r);
    return v;
}

static int exec_ok(wr_session *s, const char *sql, const char *param) {
    const char *params[1] = {param};
    wr_status st = wr_exec(s, sql, param ? 1 : 0, param ? params : NULL, NULL);
    if (st != WR_OK) fprintf(stderr, "write failed: %s\n", wr_session_errmsg(s));
    return st == WR_OK;
}

static void open_discovers_the_primary_and_both_replicas(void) {
    CHECK_INT(wr_cluster_nnodes(C), 3);
    CHECK_INT(wr_cluster_primary(C), 0);
    for (size_t i = 0; i < 3; i++) {
        wr_node_status st;
        CHECK_INT(wr_cluster_node_status(C, i, &st), WR_OK);
        CHECK_INT(st.role, i == 0 ? WR_ROLE_PRIMARY : WR_ROLE_REPLICA);
        CHECK_STR(st.host, "127.0.0.1");
        CHECK(st.state == WR_STATE_UP || st.state == WR_STATE_STREAMING || st.state == WR_STATE_CATCHING_UP);
    }
}

static void a_fresh_replica_serves_reads(void) {
    wr_session *s = wr_session_new(C);
    int node = -1;
    wr_reason why = WR_REASON_NONE;
    CHECK_INT(read_int(s, "SELECT 42", NULL, &node, &why), 42);
    CHECK(node == 1 || node == 2);
    CHECK(why == WR_REASON_REPLICA_CACHED || why == WR_REASON_REPLICA_CHECKED);
    wr_session_free(s);
}

static void read_after_write_is_never_stale_when_one_replica_is_paused(void) {
    CHECK_INT(t_cluster("pause 1"), 0);
    wr_session *s = wr_session_new(C);
    int stale = 0, on_paused = 0;
    for (int i = 0; i < 30; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", 1000 + i);
        CHECK(exec_ok(s, "INSERT INTO items(id, v) VALUES ($1::int, 'x')", id));
        int node;
        if (read_int(s, "SELECT count(*) FROM items WHERE id = $1::int", id, &node, NULL) != 1) stale++;
        if (node == 1) on_paused++;
    }
    CHECK_INT(stale, 0);
    CHECK_INT(on_paused, 0);
    wr_session_free(s);
    CHECK_INT(t_cluster("resume 1"), 0);
}

static void a_session_resumed_from_its_token_reads_the_write(void) {
    CHECK_INT(t_cluster("pause 1"), 0);
    CHECK_INT(t_cluster("pause 2"), 0);
    wr_session *writer = wr_session_new(C);
    CHECK(exec_ok(writer, "INSERT INTO items(id, v) VALUES (2000, 'token')", NULL));
    char token[WR_TOKEN_BUFSIZE];
    snprintf(token, sizeof token, "%s", wr_session_token(writer));
    wr_session_free(writer);

    wr_session *reader = wr_session_new(C);
    CHECK_INT(wr_session_resume(reader, token), WR_OK);
    int node;
    wr_reason why;
    CHECK_INT(read_int(reader, "SELECT count(*) FROM items WHERE id = 2000", NULL, &node, &why), 1);
    CHECK_INT(node, 0); /* both replicas are behind: the primary, after the budget */
    CHECK(why == WR_REASON_PRIMARY_LAGGING || why == WR_REASON_PRIMARY_BUDGET);
    wr_session_free(reader);

    /* A session without the token may read the paused replicas. */
    wr_session *other = wr_session_new(C);
    CHECK_INT(read_int(other, "SELECT count(*) FROM items WHERE id = 2000", NULL, &node, NULL), 0);
    CHECK(node == 1 || node == 2);
    wr_session_free(other);
    CHECK_INT(t_cluster("resume 1"), 0);
    CHECK_INT(t_cluster("resume 2"), 0);
}

static void read_falls_back_to_the_primary_beyond_the_budget_and_sees_the_write(void) {
    CHECK_INT(t_cluster("pause 1"), 0);
    CHECK_INT(t_cluster("pause 2"), 0);
    wr_session *s = wr_session_new(C);
    CHECK(exec_ok(s, "INSERT INTO items(id, v) VALUES (3000, 'fallback')", NULL));
    int node;
    wr_reason why;
    CHECK_INT(read_int(s, "SELECT count(*) FROM items WHERE id = 3000", NULL, &node, &why), 1);
    CHECK_INT(node, 0);
    CHECK(why == WR_REASON_PRIMARY_LAGGING || why == WR_REASON_PRIMARY_BUDGET);
    wr_session_free(s);
    CHECK_INT(t_cluster("resume 1"), 0);
    CHECK_INT(t_cluster("resume 2"), 0);
}

static void a_replica_that_catches_up_serves_the_read_after_a_check(void) {
    CHECK_INT(t_cluster("pause 1"), 0);
    wr_session *s = wr_session_new(C);
    CHECK(exec_ok(s, "INSERT INTO items(id, v) VALUES (3500, 'check')", NULL));
    CHECK_INT(t_cluster("wait-replay 2"), 0);
    int node;
    wr_reason why;
    CHECK_INT(read_int(s, "SELECT count(*) FROM items WHERE id = 3500", NULL, &node, &why), 1);
    CHECK_INT(node, 2);
    CHECK(why == WR_REASON_REPLICA_CHECKED || why == WR_REASON_REPLICA_OTHER || why == WR_REASON_REPLICA_CACHED);
    wr_session_free(s);
    CHECK_INT(t_cluster("resume 1"), 0);
}

/* The pitfall: statements before one Sync share an implicit transaction, so a
 * position read there precedes the commit record. The position walrouter
 * returns must be at or past the end of the write's commit record. */
static void the_write_position_is_taken_after_the_commit_record(void) {
    wr_session *s = wr_session_new(C);
    wr_lsn before = t_primary_lsn();
    wr_result *r = NULL;
    CHECK_INT(wr_exec(s, "INSERT INTO items(id, v) VALUES (4000, 'lsn') RETURNING pg_current_xact_id()::text",
                      0, NULL, &r), WR_OK);
    const char *xid = wr_result_value(r, 0, 0);
    char b[WR_LSN_BUFSIZE], a[WR_LSN_BUFSIZE];
    wr_lsn_format(before, b);
    wr_lsn_format(wr_result_lsn(r), a);
    CHECK(wr_result_lsn(r) > before);
    const char *commit_end = t_sql(0,
        "SELECT coalesce(max(end_lsn)::text, 'none') FROM pg_get_wal_records_info('%s', pg_current_wal_flush_lsn())"
        " WHERE resource_manager = 'Transaction' AND record_type = 'COMMIT' AND xid = '%s'::xid",
        b, xid ? xid : "0");
    wr_lsn end = 0;
    CHECK_INT(wr_lsn_parse(commit_end, &end), 0);
    CHECK(end > 0 && wr_result_lsn(r) >= end);
    if (!(wr_result_lsn(r) >= end)) fprintf(stderr, "write position %s, commit record ends at %s\n", a, commit_end);
    wr_result_free(r);
    wr_session_free(s);
}

/* The primary's insert position as an offset in its 8 kB WAL page. */
static long page_offset(void) {
    return atol(t_sql(0, "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint %% 8192"));
}

/* A write whose WAL ends exactly on a page boundary: the primary's insert
 * position is then past the next page's header, where no replica's replay
 * arrives until more WAL is written. The session must need the boundary. */
static void a_write_ending_on_a_wal_page_boundary_is_read_from_a_replica(void) {
    wr_session *s = wr_session_new(C);
    /* The size of a logical message record besides its (over 255-byte)
     * content, to within its 8-byte alignment: an upper bound. Measured on
     * one page: a record that crossed into the next one would count that
     * page's header too, and every attempt below would land 24 bytes short. */
    long overhead = 0;
    for (int i = 0; i < 20 && overhead <= 0; i++)
        overhead = atol(t_sql(0, "SELECT CASE WHEN (a - '0/0')::bigint / 8192 = (b - '0/0')::bigint / 8192"
                                 " THEN (b - a)::bigint - 300 ELSE 0 END FROM (SELECT pg_current_wal_insert_lsn() AS a,"
                                 " pg_logical_emit_message(false, 'wr', repeat('x', 300)) AS m,"
                                 " pg_current_wal_insert_lsn() AS b) s"));
    CHECK(overhead > 0);
    int landed = 0;
    for (int attempt = 0; attempt < 50 && !landed; attempt++) {
        long room = 8192 - page_offset();
        if (room < 512) { /* too close to the boundary: move to the next page */
            t_sql(0, "SELECT pg_logical_emit_message(false, 'wr', repeat('x', %ld))", room + 300);
            continue;
        }
        char size[24];
        snprintf(size, sizeof size, "%ld", room - overhead);
        CHECK(exec_ok(s, "SELECT pg_logical_emit_message(false, 'wr', repeat('x', $1::int))", size));
        /* Other WAL (a standby snapshot, say) may have come in between. */
        landed = page_offset() == 24;
    }
    CHECK(landed);
    wr_lsn need = wr_session_need(s);
    CHECK_U64(need % 8192, 0);
    char lsn[WR_LSN_BUFSIZE];
    wr_lsn_format(need, lsn);
    for (int replica = 1; replica <= 2; replica++)
        for (int i = 0; i < 1500 && strcmp(t_sql(replica, "SELECT pg_last_wal_replay_lsn() >= '%s'", lsn), "t"); i++)
            t_nap(20);
    int node = -1;
    CHECK_INT(read_int(s, "SELECT 1", NULL, &node, NULL), 1);
    CHECK(node == 1 || node == 2);
    wr_session_free(s);
}

/* G2: a read on replica 2 saw a row; replica 2 goes away; the next read must
 * not go back in time to replica 1, which is paused before that row. */
static void reads_never_go_back_in_time_across_replicas(void) {
    CHECK_INT(t_cluster("pause 1"), 0);
    t_sql(0, "INSERT INTO items(id, v) VALUES (5000, 'g2')");
    CHECK_INT(t_cluster("wait-replay 2"), 0);
    wr_session *s = NULL;
    for (int tries = 0; tries < 64 && !s; tries++) {
        wr_session *cand = wr_session_new(C);
        int node = -1;
        long seen = read_int(cand, "SELECT count(*) FROM items WHERE id = 5000", NULL, &node, NULL);
        if (node == 2 && seen == 1) s = cand;
        else wr_session_free(cand);
    }
    CHECK(s != NULL);
    if (s) {
        CHECK_INT(t_cluster("stop-node 2"), 0);
        int node = -1;
        CHECK_INT(read_int(s, "SELECT count(*) FROM items WHERE id = 5000", NULL, &node, NULL), 1);
        CHECK(node != 1);
        CHECK_INT(t_cluster("start-node 2"), 0);
        wr_session_free(s);
    }
    CHECK_INT(t_cluster("resume 1"), 0);
    /* Both stream again before the next test expects replica reads. */
    CHECK_INT(t_cluster("wait-replay 1"), 0);
    CHECK_INT(t_cluster("wait-replay 2"), 0);
}

static void a_transaction_stays_on_one_node_and_rolls_back(void) {
    wr_session *s = wr_session_new(C);
    wr_result *r = NULL;
    CHECK_INT(wr_begin(s, 0), WR_OK);
    CHECK(wr_session_in_transaction(s));
    CHECK_INT(wr_exec(s, "INSERT INTO items(id, v) VALUES (6000, 'tx')", 0, NULL, &r), WR_OK);
    CHECK_INT(wr_result_node(r), 0);
    CHECK_INT(wr_result_reason(r), WR_REASON_TRANSACTION);
    wr_result_free(r);
    CHECK_INT(wr_query(s, "SELECT count(*) FROM items WHERE id = 6000", 0, NULL, 0, &r), WR_OK);
    CHECK_INT(wr_result_node(r), 0);
    CHECK_STR(wr_result_value(r, 0, 0), "1");
    wr_result_free(r);
    CHECK_INT(wr_rollback(s), WR_OK);
    CHECK(!wr_session_in_transaction(s));
    CHECK_INT(read_int(s, "SELECT count(*) FROM items WHERE id = 6000", NULL, NULL, NULL), 0);

    CHECK_INT(wr_begin(s, 0), WR_OK);
    CHECK(exec_ok(s, "INSERT INTO items(id, v) VALUES (6001, 'tx')", NULL));
    CHECK_INT(wr_commit(s), WR_OK);
    CHECK_INT(read_int(s, "SELECT count(*) FROM items WHERE id = 6001", NULL, NULL, NULL), 1);

    /* A failed statement dooms the transaction: commit reports it. */
    CHECK_INT(wr_begin(s, 0), WR_OK);
    CHECK_INT(wr_exec(s, "INSERT INTO no_such_table VALUES (1)", 0, NULL, NULL), WR_ERR_SQL);
    CHECK_INT(wr_commit(s), WR_ERR_SQL);
    CHECK_STR(wr_session_sqlstate(s), "25P02");
    CHECK_INT(wr_commit(s), WR_ERR_STATE);

    /* Read-only: every statement on the same replica. */
    CHECK_INT(wr_begin(s, WR_READ_ONLY), WR_OK);
    int first = -1, same = 1;
    for (int i = 0; i < 5; i++) {
        CHECK_INT(wr_query(s, "SELECT count(*) FROM items WHERE id = 6001", 0, NULL, 0, &r), WR_OK);
        CHECK_STR(wr_result_value(r, 0, 0), "1");
        if (first < 0) first = wr_result_node(r);
        same &= wr_result_node(r) == first;
        wr_result_free(r);
    }
    CHECK(same);
    CHECK(first == 1 || first == 2);
    CHECK_INT(wr_exec(s, "INSERT INTO items(id, v) VALUES (6002, 'ro')", 0, NULL, NULL), WR_ERR_SQL);
    CHECK_STR(wr_session_sqlstate(s), "25006");
    CHECK_INT(wr_rollback(s), WR_OK);
    wr_session_free(s);
}

static void a_read_that_writes_is_rerun_on_the_primary(void) {
    wr_session *s = wr_session_new(C);
    wr_result *r = NULL;
    CHECK_INT(wr_query(s, "INSERT INTO items(id, v) VALUES (6500, 'misrouted') RETURNING id", 0, NULL, 0, &r),
              WR_OK);
    CHECK_INT(wr_result_node(r), 0);
    CHECK_INT(wr_result_reason(r), WR_REASON_PRIMARY_READ_ONLY);
    wr_result_free(r);
    CHECK_INT(read_int(s, "SELECT count(*) FROM items WHERE id = 6500", NULL, NULL, NULL), 1);
    wr_session_free(s);
}

static void a_write_whose_connection_dies_is_reported_not_resent(void) {
    wr_session *s = wr_session_new(C);
    long before = atol(t_sql(0, "SELECT count(*) FROM items"));
    /* The statement kills its own backend: the outcome is unknowable. */
    CHECK_INT(wr_exec(s, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL, NULL), WR_ERR_UNKNOWN_OUTCOME);
    CHECK(strstr(wr_session_errmsg(s), "may or may not") != NULL);
    CHECK_INT(wr_session_errnode(s), 0);

    CHECK_INT(t_cluster("stop-node 0"), 0);
    CHECK_INT(wr_exec(s, "INSERT INTO items(id, v) VALUES (7000, 'lost')", 0, NULL, NULL), WR_ERR_NO_PRIMARY);
    CHECK(strstr(wr_session_errmsg(s), "not sent") != NULL);
    CHECK(strstr(wr_session_errmsg(s), PASSWORD) == NULL);
    CHECK_INT(t_cluster("start-node 0"), 0);
    CHECK_INT(atol(t_sql(0, "SELECT count(*) FROM items")), before);
    /* The same cluster handle writes again once the primary is back. */
    CHECK(exec_ok(s, "INSERT INTO items(id, v) VALUES (7001, 'back')", NULL));
    CHECK_INT(read_int(s, "SELECT count(*) FROM items WHERE id IN (7000, 7001)", NULL, NULL, NULL), 1);
    wr_session_free(s);
}

static void errors_are_clear_and_never_show_the_password(void) {
    wr_cluster *c = NULL;
    CHECK_INT(wr_cluster_open(&c, "postgresql://walrouter:" PASSWORD "@[::1:5432/db", NULL), WR_ERR_ARG);
    CHECK(strstr(wr_cluster_errmsg(c), "invalid DSN") != NULL);
    CHECK(strstr(wr_cluster_errmsg(c), PASSWORD) == NULL);
    wr_cluster_close(c);

    CHECK_INT(wr_cluster_open(&c, "host=127.0.0.1 port=1,2 password=" PASSWORD " user=x", NULL), WR_ERR_ARG);
    CHECK(strstr(wr_cluster_errmsg(c), PASSWORD) == NULL);
    wr_cluster_close(c);

    CHECK_INT(wr_cluster_open(&c, "postgresql://walrouter:" PASSWORD "@127.0.0.1:1,127.0.0.1:2/walrouter", NULL),
              WR_ERR_CONNECT);
    CHECK(strstr(wr_cluster_errmsg(c), "127.0.0.1:1") != NULL);
    CHECK(strstr(wr_cluster_errmsg(c), PASSWORD) == NULL);
    wr_cluster_close(c);

    /* A wrong password: the server's refusal, without the password tried. */
    char dsn[512];
    const char *at = strchr(t_dsn(), '@');
    snprintf(dsn, sizeof dsn, "postgresql://walrouter:wrong-pass-123%s", at ? at : "");
    CHECK_INT(wr_cluster_open(&c, dsn, NULL), WR_ERR_CONNECT);
    CHECK(strstr(wr_cluster_errmsg(c), "password authentication failed") != NULL);
    CHECK(strstr(wr_cluster_errmsg(c), "wrong-pass-123") == NULL);
    CHECK(strncmp(wr_cluster_errmsg(c), "authentication failed: ", 23) == 0); /* reached, refused */
    CHECK_STR(wr_cluster_sqlstate(c), "28P01");
    CHECK(wr_cluster_errnode(c) >= 0);
    wr_cluster_close(c);

    wr_session *s = wr_session_new(C);
    CHECK_INT(wr_query(s, "SELECT * FROM no_such_table", 0, NULL, 0, NULL), WR_ERR_SQL);
    CHECK_STR(wr_session_sqlstate(s), "42P01");
    CHECK(strstr(wr_session_errmsg(s), "no_such_table") != NULL);
    CHECK(wr_session_errnode(s) >= 0);
    CHECK_INT(wr_query(s, "SELEC 1", 0, NULL, 0, NULL), WR_ERR_SQL);
    CHECK_STR(wr_session_sqlstate(s), "42601");
    CHECK_INT(wr_query(s, "SELECT $1::int", 0, NULL, 0, NULL), WR_ERR_ARG); /* named in the caller's terms */
    CHECK(strstr(wr_session_errmsg(s), "takes 1 parameter but 0 were given") != NULL);
    CHECK(strstr(wr_session_errmsg(s), "\"wr") == NULL);
    CHECK_INT(wr_query(s, " -- only a comment", 0, NULL, 0, NULL), WR_ERR_ARG);
    CHECK(strstr(wr_session_errmsg(s), "no statement") != NULL);
    const char *bad[1] = {"not a number"};
    CHECK_INT(wr_query(s, "SELECT $1::int", 1, bad, 0, NULL), WR_ERR_SQL);
    CHECK_STR(wr_session_sqlstate(s), "22P02");
    CHECK_INT(wr_query(s, "SELECT 1", -1, NULL, 0, NULL), WR_ERR_ARG);
    CHECK_INT(wr_query(s, "SELECT 1", 2, NULL, 0, NULL), WR_ERR_ARG);
    CHECK_INT(wr_query(s, NULL, 0, NULL, 0, NULL), WR_ERR_ARG);
    CHECK_INT(wr_exec(s, "INSERT INTO items(id, v) VALUES (1, 'dup')", 0, NULL, NULL), WR_OK);
    CHECK_INT(wr_exec(s, "INSERT INTO items(id, v) VALUES (1, 'dup')", 0, NULL, NULL), WR_ERR_SQL);
    CHECK_STR(wr_session_sqlstate(s), "23505");
    CHECK_INT(wr_session_errnode(s), 0);
    /* The session still works after each error. */
    CHECK_INT(read_int(s, "SELECT 7", NULL, NULL, NULL), 7);

    CHECK_INT(wr_session_resume(s, "garbage"), WR_ERR_TOKEN);
    CHECK(strstr(wr_session_errmsg(s), "token") != NULL);
    /* A cleared cookie is no token: a new session, not an error. */
    CHECK_INT(wr_session_resume(s, ""), WR_OK);
    CHECK_INT(wr_session_resume(s, NULL), WR_OK);
    CHECK_INT(wr_session_resume(s, "1.a\0garbage"), WR_ERR_TOKEN);
    CHECK_INT(wr_commit(s), WR_ERR_STATE);
    wr_session_free(s);
}

static void signed_tokens_reject_tampering_and_unsigned_ones(void) {
    wr_options opt = {0};
    char err[128];
    CHECK_INT(wr_options_set(&opt, "token_key", "a test key", err, sizeof err), WR_OK);
    wr_cluster *c = t_open(&opt);
    wr_session *s = wr_session_new(c);
    CHECK(exec_ok(s, "INSERT INTO items(id, v) VALUES (8000, 'signed')", NULL));
    char token[WR_TOKEN_BUFSIZE];
    snprintf(token, sizeof token, "%s", wr_session_token(s));
    wr_session *t = wr_session_new(c);
    CHECK_INT(wr_session_resume(t, token), WR_OK);
    CHECK_U64(wr_session_need(t), wr_session_need(s));
    token[2] = token[2] == '1' ? '2' : '1'; /* raise or lower the position */
    CHECK_INT(wr_session_resume(t, token), WR_ERR_TOKEN);
    wr_session *plain = wr_session_new(C);
    CHECK_INT(wr_session_resume(t, wr_session_token(plain)), WR_ERR_TOKEN);
    wr_session_free(plain);
    wr_session_free(t);
    wr_session_free(s);
    wr_cluster_close(c);
}

static void a_token_beyond_the_primary_is_clamped(void) {
    wr_session *s = wr_session_new(C);
    char token[64];
    snprintf(token, sizeof token, "1.7fffffffffff.-.%llx", (unsigned long long)time(NULL));
    CHECK_INT(wr_session_resume(s, token), WR_OK);
    /* Resuming costs the primary nothing: the need is checked when no
     * replica can prove it, which this one no replica ever can. */
    CHECK(wr_session_need(s) > t_primary_lsn());
    /* Clamped, it no longer pins every read to the primary. */
    int node;
    CHECK_INT(t_cluster("wait-replay 1"), 0);
    CHECK_INT(t_cluster("wait-replay 2"), 0);
    CHECK_INT(read_int(s, "SELECT 1", NULL, &node, NULL), 1);
    CHECK(node == 1 || node == 2);
    CHECK(wr_session_need(s) <= t_primary_lsn());
    CHECK(wr_session_need(s) > 0);
    wr_session_free(s);
}

static void a_stale_cached_plan_is_replaced_transparently(void) {
    wr_session *s = wr_session_new(C);
    wr_result *r = NULL;
    CHECK(exec_ok(s, "CREATE TABLE plan_change (a int)", NULL));
    CHECK(exec_ok(s, "INSERT INTO plan_change VALUES (1)", NULL));
    for (int i = 0; i < 3; i++) { /* cached on whichever connections serve it */
        CHECK_INT(wr_query(s, "SELECT * FROM plan_change", 0, NULL, WR_PRIMARY, &r), WR_OK);
        wr_result_free(r);
    }
    CHECK(exec_ok(s, "ALTER TABLE plan_change ADD COLUMN b text DEFAULT 'new'", NULL));
    CHECK_INT(wr_query(s, "SELECT * FROM plan_change", 0, NULL, WR_PRIMARY, &r), WR_OK);
    CHECK_INT(wr_result_ncols(r), 2);
    CHECK_STR(wr_result_value(r, 0, 1), "new");
    wr_result_free(r);
    wr_session_free(s);
}

static void the_statement_cache_can_be_turned_off(void) {
    wr_options opt = {0};
    char err[128];
    CHECK_INT(wr_options_set(&opt, "no_stmt_cache", "true", err, sizeof err), WR_OK);
    wr_cluster *c = t_open(&opt);
    wr_session *s = wr_session_new(c);
    CHECK(exec_ok(s, "INSERT INTO items(id, v) VALUES (9000, 'nocache')", NULL));
    CHECK_INT(read_int(s, "SELECT count(*) FROM items WHERE id = $1::int", "9000", NULL, NULL), 1);
    /* Nothing was prepared on any connection of this cluster. */
    CHECK_INT(read_int(s, "SELECT count(*) FROM pg_prepared_statements", NULL, NULL, NULL), 0);
    wr_session_free(s);
    wr_cluster_close(c);
}

static void results_carry_rows_columns_nulls_and_counts(void) {
    wr_session *s = wr_session_new(C);
    wr_result *r = NULL;
    const char *p[2] = {"hello", NULL};
    CHECK_INT(wr_query(s, "SELECT $1::text AS greeting, $2::int AS nothing, 2.5::float8 AS x", 2, p, 0, &r),
              WR_OK);
    CHECK_INT(wr_result_nrows(r), 1);
    CHECK_INT(wr_result_ncols(r), 3);
    CHECK_STR(wr_result_colname(r, 0), "greeting");
    CHECK_STR(wr_result_value(r, 0, 0), "hello");
    CHECK(wr_result_value(r, 0, 1) == NULL);
    CHECK(wr_result_isnull(r, 0, 1));
    CHECK_INT(wr_result_coltype(r, 1), 23);  /* int4 */
    CHECK_INT(wr_result_coltype(r, 2), 701); /* float8 */
    CHECK(wr_result_value(r, 5, 0) == NULL);
    CHECK(wr_result_colname(r, 9) == NULL);
    wr_result_free(r);
    CHECK_INT(wr_exec(s, "UPDATE items SET v = v WHERE id IN (1000, 1001, 1002)", 0, NULL, &r), WR_OK);
    CHECK_INT(wr_result_affected(r), 3);
    CHECK_STR(wr_result_command(r), "UPDATE 3");
    CHECK_INT(wr_result_reason(r), WR_REASON_WRITE);
    CHECK(wr_result_lsn(r) > 0);
    wr_result_free(r);
    CHECK_INT(wr_query(s, "SELECT 1", 0, NULL, WR_PRIMARY, &r), WR_OK);
    CHECK_INT(wr_result_node(r), 0);
    CHECK_INT(wr_result_reason(r), WR_REASON_PRIMARY_FORCED);
    wr_result_free(r);
    wr_session_free(s);
}

int main(void) {
    t_dsn();
    t_sql(0, "DROP TABLE IF EXISTS items, plan_change");
    t_sql(0, "CREATE TABLE items (id int PRIMARY KEY, v text)");
    t_sql(0, "CREATE EXTENSION IF NOT EXISTS pg_walinspect");
    CHECK_INT(t_cluster("wait-replay 1"), 0);
    CHECK_INT(t_cluster("wait-replay 2"), 0);
    wr_options opt = {0};
    opt.read_budget_ms = 300;
    C = t_open(&opt);
    RUN(open_discovers_the_primary_and_both_replicas);
    RUN(a_fresh_replica_serves_reads);
    RUN(read_after_write_is_never_stale_when_one_replica_is_paused);
    RUN(a_session_resumed_from_its_token_reads_the_write);
    RUN(read_falls_back_to_the_primary_beyond_the_budget_and_sees_the_write);
    RUN(a_replica_that_catches_up_serves_the_read_after_a_check);
    RUN(the_write_position_is_taken_after_the_commit_record);
    RUN(a_write_ending_on_a_wal_page_boundary_is_read_from_a_replica);
    RUN(reads_never_go_back_in_time_across_replicas);
    RUN(a_transaction_stays_on_one_node_and_rolls_back);
    RUN(a_read_that_writes_is_rerun_on_the_primary);
    RUN(results_carry_rows_columns_nulls_and_counts);
    RUN(errors_are_clear_and_never_show_the_password);
    RUN(signed_tokens_reject_tampering_and_unsigned_ones);
    RUN(a_token_beyond_the_primary_is_clamped);
    RUN(a_stale_cached_plan_is_replaced_transparently);
    RUN(the_statement_cache_can_be_turned_off);
    RUN(a_write_whose_connection_dies_is_reported_not_resent);
    wr_cluster_close(C);
    return check_exit();
}
