/* test_encoding.c — text reaches C and every binding as UTF-8, whatever the
 * database's encoding: the core sets client_encoding=UTF8 unless the DSN
 * asks for another (then that one is used). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "testlib.h"

/* The test DSN with its database replaced by db (and extra appended). */
static void dsn_for(char *out, size_t cap, const char *db, const char *extra) {
    const char *dsn = t_dsn();
    const char *slash = strrchr(dsn, '/');
    snprintf(out, cap, "%.*s/%s%s", (int)(slash - dsn), dsn, db, extra);
}

static void latin1_text_arrives_as_utf8(void) {
    int p = t_primary();
    t_sql(p, "DROP DATABASE IF EXISTS wr_latin1");
    t_sql(p, "CREATE DATABASE wr_latin1 ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'");
    CHECK_INT(t_cluster("wait-replay 1"), 0);
    CHECK_INT(t_cluster("wait-replay 2"), 0);

    char dsn[1024];
    dsn_for(dsn, sizeof dsn, "wr_latin1", "");
    wr_options o = {0};
    if (t_under_valgrind()) o.connect_timeout_s = 30;
    wr_cluster *c = NULL;
    CHECK_INT(wr_cluster_open(&c, dsn, &o), WR_OK);
    wr_session *s = wr_session_new(c);
    wr_result *r = NULL;
    /* e-acute is one byte (0xE9) in the database, two bytes in UTF-8. */
    CHECK_INT(wr_query(s, "SELECT convert_from('\\xe9'::bytea, 'LATIN1'), current_setting('client_encoding')",
                       0, NULL, WR_PRIMARY, &r), WR_OK);
    if (r) {
        CHECK_STR(wr_result_value(r, 0, 0), "\xc3\xa9");
        CHECK_STR(wr_result_value(r, 0, 1), "UTF8");
    }
    wr_result_free(r);
    /* And on the way in: UTF-8 parameters are converted to LATIN1. */
    const char *param[] = {"\xc3\xa9"};
    r = NULL;
    CHECK_INT(wr_query(s, "SELECT octet_length(convert_to($1::text, 'LATIN1'))", 1, param, WR_PRIMARY, &r), WR_OK);
    if (r) CHECK_STR(wr_result_value(r, 0, 0), "1");
    wr_result_free(r);
    wr_session_free(s);
    wr_cluster_close(c);

    /* A DSN that names its encoding gets it. */
    dsn_for(dsn, sizeof dsn, "wr_latin1", "?client_encoding=LATIN1");
    CHECK_INT(wr_cluster_open(&c, dsn, &o), WR_OK);
    s = wr_session_new(c);
    r = NULL;
    CHECK_INT(wr_query(s, "SELECT current_setting('client_encoding')", 0, NULL, WR_PRIMARY, &r), WR_OK);
    if (r) CHECK_STR(wr_result_value(r, 0, 0), "LATIN1");
    wr_result_free(r);
    wr_session_free(s);
    wr_cluster_close(c);
    t_sql(p, "DROP DATABASE wr_latin1");
}

int main(void) {
    RUN(latin1_text_arrives_as_utf8);
    return check_exit();
}
