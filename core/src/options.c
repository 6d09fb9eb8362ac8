/* options.c — defaults for a {0} wr_options, and setting options by name. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

void wr_options_resolve(const wr_options *in, wr_options *out) {
    if (in) *out = *in;
    else memset(out, 0, sizeof *out);
    if (!out->read_budget_ms) out->read_budget_ms = 200;
    if (!out->retry_interval_ms) out->retry_interval_ms = 10;
    if (!out->pool_size) out->pool_size = 8;
    if (!out->stmt_cache_size) out->stmt_cache_size = 64;
    if (!out->connect_timeout_s) out->connect_timeout_s = 5;
    if (!out->token_ttl_s) out->token_ttl_s = 86400;
    if (!out->refresh_interval_ms) out->refresh_interval_ms = 1000;
    if (!out->max_lag_bytes) out->max_lag_bytes = WR_DEFAULT_MAX_LAG_BYTES;
    if (!out->max_lag_ms) out->max_lag_ms = WR_DEFAULT_MAX_LAG_US / 1000;
    if (!out->statement_timeout_ms) out->statement_timeout_ms = WR_DEFAULT_STATEMENT_TIMEOUT_US / 1000;
    if (!out->pool_max) out->pool_max = 32;
    if (out->pool_size > out->pool_max) out->pool_size = out->pool_max;
    if (out->token_key_len > sizeof out->token_key) out->token_key_len = sizeof out->token_key;
}

typedef enum { OPT_U32, OPT_U64, OPT_BOOL, OPT_KEY } opt_kind;

typedef struct {
    const char *name;
    opt_kind kind;
    size_t offset;
    size_t size;
    uint64_t max; /* largest value (numbers) */
} opt_def;

/* Limits past which a value cannot work: pools and caches are counted in
 * int and allocated up front; libpq reads connect_timeout as an int. */
#define MAX_POOL 10000
#define MAX_STMT_CACHE 10000
#define MAX_CONNECT_TIMEOUT_S 86400

#define OPT(field, kind) OPTM(field, kind, UINT64_MAX)
#define OPTM(field, kind, max) \
    { #field, kind, offsetof(wr_options, field), sizeof(((wr_options *)0)->field), max }
static const opt_def defs[] = {
    OPT(read_budget_ms, OPT_U32),    OPT(retry_interval_ms, OPT_U32),
    OPTM(pool_size, OPT_U32, MAX_POOL), OPTM(stmt_cache_size, OPT_U32, MAX_STMT_CACHE),
    OPT(no_stmt_cache, OPT_BOOL),    OPTM(connect_timeout_s, OPT_U32, MAX_CONNECT_TIMEOUT_S),
    OPT(token_ttl_s, OPT_U32),       OPT(token_key, OPT_KEY),
    OPT(max_lag_bytes, OPT_U64),     OPT(max_lag_ms, OPT_U32),
    OPT(refresh_interval_ms, OPT_U32), OPT(statement_timeout_ms, OPT_U32),
    OPTM(pool_max, OPT_U32, MAX_POOL), OPT(nearest, OPT_BOOL),
    OPT(no_refresher, OPT_BOOL),
};

/* A number past its option's limit: the message names the option. */
static wr_status out_of_range(const opt_def *d, uint64_t x, char *errbuf, size_t errlen) {
    snprintf(errbuf, errlen, "option %s: %llu is out of range (at most %llu)", d->name, (unsigned long long)x,
             (unsigned long long)d->max);
    return WR_ERR_ARG;
}

wr_status wr_options_check(const wr_options *o, char *errbuf, size_t errlen) {
    errbuf[0] = '\0';
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        const opt_def *d = &defs[i];
        if (d->kind != OPT_U32) continue;
        uint32_t x;
        memcpy(&x, (const char *)o + d->offset, sizeof x);
        if (x > d->max) return out_of_range(d, x, errbuf, errlen);
    }
    if (o->token_key_len > sizeof o->token_key) {
        snprintf(errbuf, errlen, "option token_key_len: %zu is more than the %zu bytes of token_key",
                 o->token_key_len, sizeof o->token_key);
        return WR_ERR_ARG;
    }
    return WR_OK;
}

void wr_options_engine(const wr_options *o, wr_config *cfg) {
    wr_config c = {0};
    c.budget_us = (uint64_t)o->read_budget_ms * 1000;
    c.retry_interval_us = (uint64_t)o->retry_interval_ms * 1000;
    c.statement_timeout_us = (uint64_t)o->statement_timeout_ms * 1000;
    c.refresh_interval_us = (uint64_t)o->refresh_interval_ms * 1000;
    c.max_lag_bytes = o->max_lag_bytes;
    c.max_lag_us = o->max_lag_ms == UINT32_MAX ? WR_NO_LIMIT : (uint64_t)o->max_lag_ms * 1000;
    c.connect_timeout_us = (uint64_t)o->connect_timeout_s * 1000000;
    c.choose = o->nearest ? WR_CHOOSE_NEAREST : WR_CHOOSE_SPREAD;
    wr_config_resolve(&c, cfg);
}

static int parse_u64(const char *v, uint64_t max, uint64_t *out) {
    char *end;
    if (!*v || *v == '-' || *v == '+' || *v == ' ') return -1;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || x > max) return -1;
    *out = x;
    return 0;
}

static int parse_bool(const char *v, int *out) {
    static const char *yes[] = {"1", "true", "on", "yes"}, *no[] = {"0", "false", "off", "no"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) { *out = 1; return 0; }
        if (strcasecmp(v, no[i]) == 0) { *out = 0; return 0; }
    }
    return -1;
}

/* o_size: sizeof(wr_options) in the caller's walrouter.h (see there). */
wr_status wr_options_set_sized(wr_options *o, size_t o_size, const char *key, const char *value,
                               char *errbuf, size_t errlen) {
    char dummy[1];
    if (!errbuf || !errlen) { errbuf = dummy; errlen = sizeof dummy; }
    errbuf[0] = '\0';
    if (!o || !key || !value) {
        snprintf(errbuf, errlen, "wr_options_set: NULL argument");
        return WR_ERR_ARG;
    }
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        const opt_def *d = &defs[i];
        if (strcmp(d->name, key) != 0) continue;
        if (d->offset + d->size > o_size) {
            snprintf(errbuf, errlen, "option %s: this program was built with a walrouter.h "
                     "older than the option", key);
            return WR_ERR_ARG;
        }
        char *field = (char *)o + d->offset;
        uint64_t x;
        int b;
        switch (d->kind) {
        case OPT_U32:
            if ((strcmp(key, "max_lag_ms") == 0) && strcasecmp(value, "none") == 0) x = UINT32_MAX;
            else if (parse_u64(value, UINT32_MAX, &x) != 0) break;
            else if (x > d->max) return out_of_range(d, x, errbuf, errlen);
            *(uint32_t *)(void *)field = (uint32_t)x;
            return WR_OK;
        case OPT_U64:
            if (strcasecmp(value, "none") == 0) x = UINT64_MAX;
            else if (parse_u64(value, UINT64_MAX, &x) != 0) break;
            *(uint64_t *)(void *)field = x;
            return WR_OK;
        case OPT_BOOL:
            if (parse_bool(value, &b) != 0) break;
            *(int *)(void *)field = b;
            return WR_OK;
        case OPT_KEY: {
            size_t len = strlen(value);
            if (len > sizeof o->token_key) {
                snprintf(errbuf, errlen, "option token_key: longer than %zu bytes",
                         sizeof o->token_key);
                return WR_ERR_ARG;
            }
            memset(o->token_key, 0, sizeof o->token_key);
            memcpy(o->token_key, value, len);
            o->token_key_len = len;
            return WR_OK;
        }
        }
        /* The value may be a secret only for token_key, handled above. */
        snprintf(errbuf, errlen, "option %s: invalid value \"%.64s\" (expected %s)", key, value,
                 d->kind == OPT_BOOL ? "true or false" : "a non-negative integer");
        return WR_ERR_ARG;
    }
    snprintf(errbuf, errlen, "unknown option \"%.64s\"", key);
    return WR_ERR_ARG;
}
