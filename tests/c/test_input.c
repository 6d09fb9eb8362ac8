/* test_input.c — bad input, each found by fuzzing or review, now a clear
 * error (or, for tokens of another cluster, the documented behaviour):
 * masking a password that is part of the mask, options past their limits
 * (named in the message), passwords that libpq's DSN parse errors quote,
 * DSNs with too many hosts, and tokens of another cluster. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"
#include "testlib.h"

static void a_password_that_is_part_of_the_mask_is_masked_once(void) {
    static const char *const secrets[] = {"*", "**", "********", "*********", "*x*"};
    for (size_t k = 0; k < sizeof secrets / sizeof secrets[0]; k++) {
        char m[256];
        snprintf(m, sizeof m, "could not translate host name \"no*such*host\" for u:%s@ x*x", secrets[k]);
        wr_mask_secrets(m, sizeof m, secrets[k]); /* returns: it used to spin forever */
        CHECK(strlen(m) < sizeof m);
        CHECK(strstr(m, "could not translate host name") != NULL);
    }
    char m[64];
    snprintf(m, sizeof m, "a*b");
    wr_mask_secrets(m, sizeof m, "*");
    CHECK_STR(m, "a********b");
    /* A tiny buffer: still terminated. */
    char tiny[6] = "*****";
    wr_mask_secrets(tiny, sizeof tiny, "*");
    CHECK_INT(strlen(tiny), 5);
}

static void opening_with_a_password_that_is_part_of_the_mask_returns(void) {
    wr_options o = {0};
    o.connect_timeout_s = 1;
    o.no_refresher = 1;
    wr_cluster *c = NULL;
    /* No such host, and the node's name holds the password ('*'). */
    wr_status st = wr_cluster_open(&c, "host=no*such*host.invalid hostaddr=127.0.0.1 port=1 user=u password=* dbname=d",
                                   &o);
    CHECK_INT(st, WR_ERR_CONNECT);
    CHECK(strstr(wr_cluster_errmsg(c), "reachable") != NULL);
    wr_cluster_close(c);
}

static void opening_with_an_option_past_its_limit_names_the_option(void) {
    static const struct {
        const char *name;
        size_t offset;
        uint32_t value;
    } cases[] = {
        {"pool_size", offsetof(wr_options, pool_size), 2147483648u},
        {"pool_max", offsetof(wr_options, pool_max), 4294967295u},
        {"stmt_cache_size", offsetof(wr_options, stmt_cache_size), 4294967295u},
        {"connect_timeout_s", offsetof(wr_options, connect_timeout_s), 2147483648u},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        wr_options o = {0};
        memcpy((char *)&o + cases[k].offset, &cases[k].value, sizeof cases[k].value);
        wr_cluster *c = NULL;
        /* Refused before any connection is made: no server needed. */
        CHECK_INT(wr_cluster_open(&c, "postgresql://u:pw@127.0.0.1:1/db", &o), WR_ERR_ARG);
        const char *msg = wr_cluster_errmsg(c);
        if (!strstr(msg, cases[k].name) || !strstr(msg, "out of range")) {
            fprintf(stderr, "  %s: \"%s\"\n", cases[k].name, msg);
            CHECK(0);
        }
        wr_cluster_close(c);
    }
    wr_options o = {0};
    o.token_key_len = sizeof o.token_key + 1;
    wr_cluster *c = NULL;
    CHECK_INT(wr_cluster_open(&c, "postgresql://u:pw@127.0.0.1:1/db", &o), WR_ERR_ARG);
    CHECK(strstr(wr_cluster_errmsg(c), "token_key_len") != NULL);
    wr_cluster_close(c);
}

static void options_by_name_past_their_limit_are_named(void) {
    static const char *const cases[][2] = {
        {"pool_size", "2147483648"},        {"pool_size", "10001"},
        {"pool_max", "4294967295"},         {"stmt_cache_size", "4294967295"},
        {"stmt_cache_size", "10001"},       {"connect_timeout_s", "2147483648"},
        {"connect_timeout_s", "86401"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        wr_options o = {0};
        char err[160];
        CHECK_INT(wr_options_set(&o, cases[k][0], cases[k][1], err, sizeof err), WR_ERR_ARG);
        if (!strstr(err, cases[k][0]) || !strstr(err, "out of range")) {
            fprintf(stderr, "  %s=%s: \"%s\"\n", cases[k][0], cases[k][1], err);
            CHECK(0);
        }
        CHECK_INT(o.pool_size + o.pool_max + o.stmt_cache_size + o.connect_timeout_s, 0);
    }
    wr_options o = {0};
    char err[160];
    CHECK_INT(wr_options_set(&o, "pool_max", "10000", err, sizeof err), WR_OK);
    CHECK_INT(wr_options_set(&o, "stmt_cache_size", "10000", err, sizeof err), WR_OK);
    CHECK_INT(wr_options_set(&o, "connect_timeout_s", "86400", err, sizeof err), WR_OK);
    CHECK_INT(o.pool_max + o.stmt_cache_size + o.connect_timeout_s, 10000 + 10000 + 86400);
}

static void dsn_parse_errors_never_show_the_password(void) {
    static const char *const dsns[] = {
        "postgresql://u:50%off-SECRET@h/db",
        "postgresql://h/db?password=50%zzSECRET",
        "postgresql://u:SEC%RET@[::1/db",
        "postgresql://u:p@SECRET%x@h/db",
        "postgresql://h/db?user=u&password=SECRET%q&sslmode=disable",
        "host=h password='SECRET",
        "host=h password = SECRET port",
        /* the value holds a URI's user:password@, masked on its own first */
        "postgresql://h/db?password=SECRET%t://u:pw@x",
    };
    for (size_t k = 0; k < sizeof dsns / sizeof dsns[0]; k++) {
        wr_cluster *c = NULL;
        CHECK_INT(wr_cluster_open(&c, dsns[k], NULL), WR_ERR_ARG);
        const char *msg = wr_cluster_errmsg(c);
        if (!strstr(msg, "invalid DSN") || strstr(msg, "SEC")) {
            fprintf(stderr, "  %s: \"%s\"\n", dsns[k], msg);
            CHECK(0);
        }
        wr_cluster_close(c);
    }
}

static void a_dsn_with_more_than_32_hosts_is_refused_without_a_leak(void) {
    char dsn[1024] = "postgresql://u:pw@";
    for (int i = 0; i < 40; i++)
        snprintf(dsn + strlen(dsn), sizeof dsn - strlen(dsn), "%sh%d:%d", i ? "," : "", i, 5000 + i);
    strcat(dsn, "/db");
    wr_cluster *c = NULL;
    CHECK_INT(wr_cluster_open(&c, dsn, NULL), WR_ERR_ARG);
    CHECK(strstr(wr_cluster_errmsg(c), "more than 32 hosts") != NULL);
    wr_cluster_close(c); /* LeakSanitizer (the ASan build) checks the rest */
}

/* ---- tokens of another cluster (needs the test cluster) ------------------- */

static wr_cluster *open_keyed(const char *key) {
    wr_options o = {0};
    o.no_refresher = 1;
    if (key) {
        o.token_key_len = strlen(key);
        memcpy(o.token_key, key, o.token_key_len);
    }
    return t_open(&o);
}

static void a_token_signed_for_another_cluster_is_refused(void) {
    wr_cluster *a = open_keyed("key-of-cluster-a"), *b = open_keyed("key-of-cluster-b");
    wr_session *sa = wr_session_new(a), *sb = wr_session_new(b);
    CHECK_INT(wr_exec(sa, "SELECT 1", 0, NULL, NULL), WR_OK);
    char token[WR_TOKEN_BUFSIZE];
    snprintf(token, sizeof token, "%s", wr_session_token(sa));
    CHECK_INT(wr_session_resume(sb, token), WR_ERR_TOKEN);
    CHECK(strstr(wr_session_errmsg(sb), "signature") != NULL);
    CHECK_INT(wr_session_resume(sa, token), WR_OK);
    wr_session_free(sa);
    wr_session_free(sb);
    wr_cluster_close(a);
    wr_cluster_close(b);
}

/* Unsigned (or signed with the same key), another cluster's token cannot be
 * told from this one's: what it says is taken as a need like any other. A
 * position ahead of this primary's is clamped by the first read, and a node
 * none of this cluster's nodes is leaves nothing pending here: reads go on. */
static void an_unsigned_token_of_another_cluster_costs_reads_nothing_but_a_check(void) {
    wr_cluster *c = open_keyed(NULL);
    wr_session *s = wr_session_new(c);
    uint32_t ids[1] = {wr_node_id("db.other-cluster.example:5432")};
    wr_timeline t;
    wr_timeline_init(&t);
    t.need = ((wr_lsn)0x7fff << 32) | 0x1000; /* far ahead of anything here */
    t.need_tli = 1;
    t.last_node = 0;
    char token[WR_TOKEN_BUFSIZE];
    CHECK(wr_token_write(&t, ids, 1, (int64_t)time(NULL), NULL, 0, token, sizeof token) > 0);
    CHECK_INT(wr_session_resume(s, token), WR_OK);
    for (int i = 0; i < 3; i++) {
        wr_result *r = NULL;
        CHECK_INT(wr_query(s, "SELECT 6 * 7", 0, NULL, 0, &r), WR_OK);
        CHECK_STR(wr_result_value(r, 0, 0), "42");
        wr_result_free(r);
    }
    CHECK(wr_session_need(s) < t.need); /* clamped to this primary's position */
    wr_session_free(s);
    wr_cluster_close(c);
}

int main(void) {
    RUN(a_password_that_is_part_of_the_mask_is_masked_once);
    RUN(opening_with_a_password_that_is_part_of_the_mask_returns);
    RUN(opening_with_an_option_past_its_limit_names_the_option);
    RUN(options_by_name_past_their_limit_are_named);
    RUN(dsn_parse_errors_never_show_the_password);
    RUN(a_dsn_with_more_than_32_hosts_is_refused_without_a_leak);
    if (getenv("WR_TEST_DSN")) {
        RUN(a_token_signed_for_another_cluster_is_refused);
        RUN(an_unsigned_token_of_another_cluster_costs_reads_nothing_but_a_check);
    } else {
        fprintf(stderr, "skip tokens of another cluster: WR_TEST_DSN is not set\n");
    }
    return check_exit();
}
