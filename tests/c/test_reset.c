/* test_reset.c — a connection whose session state a statement changed never
 * serves another session with that state: SET (statement_timeout,
 * search_path, application_name, ROLE), temp tables and advisory locks.
 * One pooled connection per node, sessions one after the other, so the
 * second session would get the first one's connection if it went back. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "testlib.h"

static wr_cluster *C;

/* The first value of a read on the primary, or "" on error. */
static const char *value(wr_session *s, const char *sql) {
    static char buf[256];
    wr_result *r = NULL;
    buf[0] = '\0';
    if (wr_query(s, sql, 0, NULL, WR_PRIMARY, &r) == WR_OK && wr_result_nrows(r) > 0)
        snprintf(buf, sizeof buf, "%s", wr_result_isnull(r, 0, 0) ? "NULL" : wr_result_value(r, 0, 0));
    else fprintf(stderr, "  %s: %s\n", sql, wr_session_errmsg(s));
    wr_result_free(r);
    return buf;
}

/* Session A runs `change`; then session B, on the same pool, sees `probe`
 * give `expect`. */
static void not_leaked(const char *change, const char *probe, const char *expect) {
    wr_session *a = wr_session_new(C);
    wr_status st = wr_exec(a, change, 0, NULL, NULL);
    if (st != WR_OK) fprintf(stderr, "  %s: %s\n", change, wr_session_errmsg(a));
    CHECK_INT(st, WR_OK);
    wr_session_free(a);
    wr_session *b = wr_session_new(C);
    const char *got = value(b, probe);
    if (strcmp(got, expect) != 0) fprintf(stderr, "  after \"%s\": %s gave %s\n", change, probe, got);
    CHECK_STR(got, expect);
    wr_session_free(b);
}

static void a_statement_timeout_set_by_one_session_never_cancels_another(void) {
    not_leaked("SET statement_timeout = 50", "SELECT pg_sleep(0.2)::text || current_setting('statement_timeout')",
               "0");
}

static void search_path_application_name_and_role_do_not_leak(void) {
    not_leaked("SET search_path = nowhere", "SELECT current_setting('search_path')", "\"$user\", public");
    not_leaked("SET application_name = 'leaked'", "SELECT current_setting('application_name')", "walrouter");
    not_leaked("SELECT set_config('work_mem', '77kB', false)", "SELECT current_setting('work_mem')", "4MB");
    not_leaked("SET ROLE wr_reset_role", "SELECT current_user::text", "walrouter");
}

static void temp_tables_and_advisory_locks_do_not_leak(void) {
    not_leaked("CREATE TEMP TABLE wr_leak (id int)", "SELECT coalesce(to_regclass('pg_temp.wr_leak')::text, 'none')",
               "none");
    not_leaked("SELECT pg_advisory_lock(4242)", "SELECT pg_try_advisory_lock(4242)::text", "true");
}

static void a_clean_connection_is_reused_with_its_statement_cache(void) {
    wr_session *a = wr_session_new(C);
    const char *pid = value(a, "SELECT pg_backend_pid()");
    char first[32];
    snprintf(first, sizeof first, "%s", pid);
    wr_session_free(a);
    wr_session *b = wr_session_new(C);
    CHECK_STR(value(b, "SELECT pg_backend_pid()"), first); /* nothing changed: the same connection */
    wr_session_free(b);
}

int main(void) {
    wr_options o = {0};
    o.pool_size = 1;
    C = t_open(&o);
    wr_session *s = wr_session_new(C);
    wr_exec(s, "DROP ROLE IF EXISTS wr_reset_role", 0, NULL, NULL);
    CHECK_INT(wr_exec(s, "CREATE ROLE wr_reset_role", 0, NULL, NULL), WR_OK);
    wr_session_free(s);
    RUN(a_clean_connection_is_reused_with_its_statement_cache);
    RUN(a_statement_timeout_set_by_one_session_never_cancels_another);
    RUN(search_path_application_name_and_role_do_not_leak);
    RUN(temp_tables_and_advisory_locks_do_not_leak);
    s = wr_session_new(C);
    wr_exec(s, "DROP ROLE IF EXISTS wr_reset_role", 0, NULL, NULL);
    wr_session_free(s);
    wr_cluster_close(C);
    return check_exit();
}
