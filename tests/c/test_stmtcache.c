/* test_stmtcache.c — the per-connection cache of named prepared statements
 * on a real primary: eviction (and its DEALLOCATE), stale plans re-run
 * transparently (told by SQLSTATE and the server's routine, not by message
 * text), a user's own errors with those SQLSTATEs never re-run, statements
 * the server lost behind the cache's back, a failed DEALLOCATE.
 *
 * One connection per node (pool_max 1), so every statement here runs on the
 * primary's one connection and pg_prepared_statements shows its cache. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "testlib.h"

static wr_cluster *open_small(uint32_t cache_size) {
    wr_options o = {0};
    o.pool_size = 1;
    o.pool_max = 1;
    o.stmt_cache_size = cache_size;
    o.no_refresher = 1;
    return t_open(&o);
}

/* Runs sql on the primary; returns its status, the first value in val. */
static wr_status primary(wr_session *s, const char *sql, char *val, size_t cap) {
    wr_result *r = NULL;
    wr_status st = wr_query(s, sql, 0, NULL, WR_PRIMARY, &r);
    if (val) {
        val[0] = '\0';
        if (st == WR_OK && wr_result_nrows(r) > 0 && !wr_result_isnull(r, 0, 0))
            snprintf(val, cap, "%s", wr_result_value(r, 0, 0));
    }
    wr_result_free(r);
    return st;
}

/* The test's statements ("SELECT <n> AS <x>") the primary's connection
 * holds, as "sql|sql|..." by name order. */
static void held(wr_session *s, char *out, size_t cap) {
    CHECK_INT(primary(s, "SELECT coalesce(string_agg(statement, '|' ORDER BY name), '') FROM pg_prepared_statements"
                         " WHERE statement ~ '^SELECT [0-9] AS [a-z]$'", out, cap), WR_OK);
}

static void the_least_recently_used_statement_is_evicted_and_deallocated(void) {
    /* Three: the primary's position query, run with every statement there,
     * takes one. */
    wr_cluster *c = open_small(3);
    wr_session *s = wr_session_new(c);
    char v[512];
    CHECK_INT(primary(s, "SELECT 1 AS a", v, sizeof v), WR_OK);
    CHECK_INT(primary(s, "SELECT 2 AS b", v, sizeof v), WR_OK);
    CHECK_INT(primary(s, "SELECT 1 AS a", v, sizeof v), WR_OK); /* a used last: b goes first */
    CHECK_INT(primary(s, "SELECT 3 AS c", v, sizeof v), WR_OK);
    /* c evicted b, deallocated at the start of the next round trip; the
     * listing query then evicts a, deallocated with the next one. */
    held(s, v, sizeof v);
    CHECK_STR(v, "SELECT 1 AS a|SELECT 3 AS c");
    held(s, v, sizeof v);
    CHECK_STR(v, "SELECT 3 AS c");
    /* An evicted statement is prepared again and runs. */
    CHECK_INT(primary(s, "SELECT 2 AS b", v, sizeof v), WR_OK);
    CHECK_STR(v, "2");
    wr_session_free(s);
    wr_cluster_close(c);
}

static void a_stale_plan_is_prepared_again_and_the_statement_runs(void) {
    t_sql(0, "DROP TABLE IF EXISTS sc_stale");
    t_sql(0, "CREATE TABLE sc_stale (a int)");
    t_sql(0, "INSERT INTO sc_stale VALUES (1)");
    wr_cluster *c = open_small(8);
    wr_session *s = wr_session_new(c);
    wr_result *r = NULL;
    CHECK_INT(wr_query(s, "SELECT * FROM sc_stale", 0, NULL, WR_PRIMARY, &r), WR_OK);
    CHECK_INT(wr_result_ncols(r), 1);
    wr_result_free(r);
    t_sql(0, "ALTER TABLE sc_stale ADD COLUMN b int DEFAULT 7");
    r = NULL;
    CHECK_INT(wr_query(s, "SELECT * FROM sc_stale", 0, NULL, WR_PRIMARY, &r), WR_OK);
    CHECK_INT(wr_result_ncols(r), 2);
    CHECK_STR(wr_result_value(r, 0, 1), "7");
    wr_result_free(r);
    wr_session_free(s);
    wr_cluster_close(c);
}

static void a_stale_plan_in_a_transaction_fails_with_its_sqlstate_and_is_not_rerun(void) {
    t_sql(0, "DROP TABLE IF EXISTS sc_stale_tx");
    t_sql(0, "CREATE TABLE sc_stale_tx (a int)");
    wr_cluster *c = open_small(8);
    wr_session *s = wr_session_new(c);
    CHECK_INT(wr_exec(s, "SELECT * FROM sc_stale_tx", 0, NULL, NULL), WR_OK);
    t_sql(0, "ALTER TABLE sc_stale_tx ADD COLUMN b int");
    CHECK_INT(wr_begin(s, 0), WR_OK);
    CHECK_INT(wr_exec(s, "SELECT * FROM sc_stale_tx", 0, NULL, NULL), WR_ERR_SQL);
    CHECK_STR(wr_session_sqlstate(s), "0A000"); /* not 25P02 from a re-run in the aborted transaction */
    CHECK_INT(wr_rollback(s), WR_OK);
    /* The cache was fixed: the statement runs after the transaction. */
    wr_result *r = NULL;
    CHECK_INT(wr_exec(s, "SELECT * FROM sc_stale_tx", 0, NULL, &r), WR_OK);
    CHECK_INT(wr_result_ncols(r), 2);
    wr_result_free(r);
    wr_session_free(s);
    wr_cluster_close(c);
}

/* A function that counts its calls (a sequence: not rolled back) and then
 * raises the given SQLSTATE with the message the server would use. */
static void create_raiser(void) {
    t_sql(0, "DROP SEQUENCE IF EXISTS sc_calls");
    t_sql(0, "CREATE SEQUENCE sc_calls");
    t_sql(0, "CREATE OR REPLACE FUNCTION sc_raise(code text, msg text) RETURNS int LANGUAGE plpgsql AS "
             "$$ BEGIN PERFORM nextval('sc_calls'); RAISE EXCEPTION '%%', msg USING ERRCODE = code; END $$");
}

static long calls(void) { return atol(t_sql(0, "SELECT last_value - 1 + is_called::int FROM sc_calls")); }

static void a_users_own_0A000_and_26000_are_never_rerun(void) {
    create_raiser();
    wr_cluster *c = open_small(8);
    wr_session *s = wr_session_new(c);
    static const char *const cases[][2] = {
        {"0A000", "cached plan must not change result type"},
        {"26000", "prepared statement \"wr1\" does not exist"},
        {"26000", "prepared statement \"wr0\" does not exist"}, /* our statement's own name */
    };
    long before = calls();
    for (int k = 0; k < 3; k++) {
        const char *p[2] = {cases[k][0], cases[k][1]};
        for (int round = 0; round < 2; round++) { /* prepared now, then cached */
            CHECK_INT(wr_exec(s, "SELECT sc_raise($1, $2)", 2, p, NULL), WR_ERR_SQL);
            CHECK_STR(wr_session_sqlstate(s), cases[k][0]);
        }
    }
    CHECK_INT(calls() - before, 6); /* once per call */
    /* The same through a read on the primary. */
    const char *p[2] = {"0A000", "cached plan must not change result type"};
    before = calls();
    CHECK_INT(wr_query(s, "SELECT sc_raise($1, $2)", 2, p, WR_PRIMARY, NULL), WR_ERR_SQL);
    CHECK_INT(wr_query(s, "SELECT sc_raise($1, $2)", 2, p, WR_PRIMARY, NULL), WR_ERR_SQL);
    CHECK_STR(wr_session_sqlstate(s), "0A000");
    CHECK_INT(calls() - before, 2);
    wr_session_free(s);
    wr_cluster_close(c);
}

static void statements_the_server_lost_are_prepared_again(void) {
    wr_cluster *c = open_small(8);
    wr_session *s = wr_session_new(c);
    char v[512];
    CHECK_INT(primary(s, "SELECT 41 + 1", v, sizeof v), WR_OK);
    /* Dropped where no command tag shows it. */
    CHECK_INT(wr_exec(s, "DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$", 0, NULL, NULL), WR_OK);
    CHECK_INT(primary(s, "SELECT 41 + 1", v, sizeof v), WR_OK);
    CHECK_STR(v, "42");
    /* And where one does. */
    CHECK_INT(wr_exec(s, "DEALLOCATE ALL", 0, NULL, NULL), WR_OK);
    CHECK_INT(primary(s, "SELECT 41 + 1", v, sizeof v), WR_OK);
    CHECK_STR(v, "42");
    wr_session_free(s);
    wr_cluster_close(c);
}

static void a_failed_deallocate_leaves_the_next_statements_working(void) {
    wr_cluster *c = open_small(2);
    wr_session *s = wr_session_new(c);
    char v[512];
    CHECK_INT(primary(s, "SELECT 1 AS a", v, sizeof v), WR_OK);
    CHECK_INT(primary(s, "SELECT 2 AS b", v, sizeof v), WR_OK);
    /* This one evicts a (its DEALLOCATE is queued) and then drops every
     * statement: the queued DEALLOCATE fails next time. */
    CHECK_INT(wr_exec(s, "DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$", 0, NULL, NULL), WR_OK);
    CHECK_INT(primary(s, "SELECT 3 AS c", v, sizeof v), WR_OK);
    CHECK_STR(v, "3");
    CHECK_STR(wr_session_sqlstate(s), "");
    CHECK_INT(primary(s, "SELECT 2 AS b", v, sizeof v), WR_OK);
    CHECK_STR(v, "2");
    CHECK_INT(primary(s, "SELECT 4 AS d", v, sizeof v), WR_OK);
    CHECK_STR(v, "4");
    /* In a transaction too. */
    CHECK_INT(wr_exec(s, "DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$", 0, NULL, NULL), WR_OK);
    CHECK_INT(wr_begin(s, 0), WR_OK);
    CHECK_INT(wr_exec(s, "SELECT 5 AS e", 0, NULL, NULL), WR_OK);
    CHECK_INT(wr_exec(s, "SELECT 1 AS a", 0, NULL, NULL), WR_OK);
    CHECK_INT(wr_commit(s), WR_OK);
    wr_session_free(s);
    wr_cluster_close(c);
}

int main(void) {
    t_dsn();
    RUN(the_least_recently_used_statement_is_evicted_and_deallocated);
    RUN(a_stale_plan_is_prepared_again_and_the_statement_runs);
    RUN(a_stale_plan_in_a_transaction_fails_with_its_sqlstate_and_is_not_rerun);
    RUN(a_users_own_0A000_and_26000_are_never_rerun);
    RUN(statements_the_server_lost_are_prepared_again);
    RUN(a_failed_deallocate_leaves_the_next_statements_working);
    return check_exit();
}
