/* test_options.c — options by name, DSN splitting and password masking:
 * everything about configuration that needs no server. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>

#include "check.h"
#include "internal.h"

static void zeroed_options_mean_the_documented_defaults(void) {
    wr_options o;
    wr_options_resolve(NULL, &o);
    CHECK_INT(o.read_budget_ms, 200);
    CHECK_INT(o.retry_interval_ms, 10);
    CHECK_INT(o.pool_size, 8);
    CHECK_INT(o.stmt_cache_size, 64);
    CHECK_INT(o.no_stmt_cache, 0);
    CHECK_INT(o.token_ttl_s, 86400);
    CHECK_U64(o.max_lag_bytes, 64u << 20); /* finite by default (G4) */
    CHECK_INT(o.max_lag_ms, 10000);
    CHECK_INT(o.statement_timeout_ms, 30000);
    CHECK_INT(o.pool_max, 32);
    CHECK_INT(o.refresh_interval_ms, 1000);
}

static void options_are_set_by_name_and_bad_ones_are_named_in_the_error(void) {
    wr_options o = {0};
    char err[160];
    CHECK_INT(wr_options_set(&o, "read_budget_ms", "50", err, sizeof err), WR_OK);
    CHECK_INT(o.read_budget_ms, 50);
    CHECK_INT(wr_options_set(&o, "max_lag_bytes", "18446744073709551615", err, sizeof err), WR_OK);
    CHECK_U64(o.max_lag_bytes, UINT64_MAX);
    CHECK_INT(wr_options_set(&o, "no_stmt_cache", "on", err, sizeof err), WR_OK);
    CHECK_INT(o.no_stmt_cache, 1);
    CHECK_INT(wr_options_set(&o, "token_key", "k3y", err, sizeof err), WR_OK);
    CHECK_INT(o.token_key_len, 3);

    CHECK_INT(wr_options_set(&o, "read_budget", "50", err, sizeof err), WR_ERR_ARG);
    CHECK_STR(err, "unknown option \"read_budget\"");
    CHECK_INT(wr_options_set(&o, "pool_size", "-1", err, sizeof err), WR_ERR_ARG);
    CHECK(strstr(err, "pool_size") != NULL);
    CHECK_INT(wr_options_set(&o, "pool_size", "4294967296", err, sizeof err), WR_ERR_ARG);
    CHECK_INT(wr_options_set(&o, "pool_size", "12abc", err, sizeof err), WR_ERR_ARG);
    CHECK_INT(wr_options_set(&o, "pool_size", "", err, sizeof err), WR_ERR_ARG);
    CHECK_INT(wr_options_set(&o, "no_stmt_cache", "maybe", err, sizeof err), WR_ERR_ARG);
    CHECK(strstr(err, "true or false") != NULL);
    CHECK_INT(wr_options_set(&o, NULL, "1", err, sizeof err), WR_ERR_ARG);
    CHECK_INT(wr_options_set(&o, "pool_size", NULL, NULL, 0), WR_ERR_ARG);
    char big[300];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_INT(wr_options_set(&o, "token_key", big, err, sizeof err), WR_ERR_ARG);
    CHECK(strstr(err, "kkkk") == NULL); /* a key is never echoed */
    CHECK_INT(o.read_budget_ms, 50);    /* failures changed nothing */
}

static void passwords_are_masked_wherever_they_appear(void) {
    char m[256];
    snprintf(m, sizeof m, "failed for postgresql://u:s3cret@h:1/db and s3cret again");
    wr_mask_secrets(m, sizeof m, "s3cret");
    CHECK(strstr(m, "s3cret") == NULL);
    snprintf(m, sizeof m, "bad: host=h password=hunter2 user=u");
    wr_mask_secrets(m, sizeof m, NULL);
    CHECK_STR(m, "bad: host=h password=******** user=u");
    snprintf(m, sizeof m, "bad: password='a b\\' c' user=u");
    wr_mask_secrets(m, sizeof m, NULL);
    CHECK_STR(m, "bad: password=******** user=u");
    snprintf(m, sizeof m, "URI postgresql://alice:pw@[::1");
    wr_mask_secrets(m, sizeof m, NULL);
    CHECK_STR(m, "URI postgresql://alice:********@[::1");
    snprintf(m, sizeof m, "postgresql://h/db?password=x&sslmode=disable");
    wr_mask_secrets(m, sizeof m, NULL);
    CHECK_STR(m, "postgresql://h/db?password=********&sslmode=disable");
    /* A tiny buffer still ends masked and terminated. */
    char tiny[12] = "password=ab";
    wr_mask_secrets(tiny, sizeof tiny, NULL);
    CHECK(strstr(tiny, "ab") == NULL);
    CHECK_INT(strlen(tiny), 11);
}

static void a_multi_host_dsn_becomes_one_conninfo_per_node(void) {
    wr_dsn d;
    wr_err e;
    wr_err_clear(&e);
    CHECK_INT(wr_dsn_parse(&d, "postgresql://u:pw@h1:5432,h2:5433,h3/app?sslmode=disable&target_session_attrs=any", 5, &e),
              WR_OK);
    CHECK_INT(d.n, 3);
    CHECK_STR(d.name[0], "h1:5432");
    CHECK_STR(d.name[1], "h2:5433");
    CHECK_STR(d.name[2], "h3:5432");
    CHECK_STR(d.password, "pw");
    int saw_tsa = 0;
    for (size_t i = 0; i < d.nkw; i++) saw_tsa |= strcmp(d.kw[i], "target_session_attrs") == 0;
    CHECK(!saw_tsa);
    wr_dsn_free(&d);

    CHECK_INT(wr_dsn_parse(&d, "host=a,b port=1", 5, &e), WR_OK);
    CHECK_INT(d.n, 2);
    CHECK_STR(d.name[1], "b:1");
    wr_dsn_free(&d);

    CHECK_INT(wr_dsn_parse(&d, "host=a,b,c port=1,2", 5, &e), WR_ERR_ARG);
    CHECK(strstr(e.msg, "do not match") != NULL);
    CHECK_INT(wr_dsn_parse(&d, "nonsense", 5, &e), WR_ERR_ARG);
    CHECK(strstr(e.msg, "invalid DSN") != NULL);
    CHECK_INT(wr_dsn_parse(&d, "postgresql://u:topsecret@h:notaport/db", 5, &e), WR_OK); /* libpq checks ports at connect */
    wr_dsn_free(&d);
    CHECK_INT(wr_dsn_parse(&d, "postgresql://u:topsecret@[::1/db", 5, &e), WR_ERR_ARG);
    CHECK(strstr(e.msg, "topsecret") == NULL);
    CHECK_INT(wr_dsn_parse(&d, NULL, 5, &e), WR_ERR_ARG);
}

int main(void) {
    RUN(zeroed_options_mean_the_documented_defaults);
    RUN(options_are_set_by_name_and_bad_ones_are_named_in_the_error);
    RUN(passwords_are_masked_wherever_they_appear);
    RUN(a_multi_host_dsn_becomes_one_conninfo_per_node);
    return check_exit();
}
