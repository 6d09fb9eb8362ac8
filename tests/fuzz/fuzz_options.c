/* fuzz_options.c — options by name (wr_options_set) and the checks that
 * wr_cluster_open runs on a caller's struct (wr_options_check, then
 * wr_options_resolve).
 *   - a refused value changes nothing and the message names the option
 *     (or says it is unknown), never quoting a token_key;
 *   - an accepted number reads back as given (within its limit);
 *   - any struct either passes the check or is refused with the field's
 *     name; one that passes resolves with no zero where a default belongs
 *     and pool_size <= pool_max. */
#include "fuzz_util.h"
#include "err.h"

static const char *const names[] = {
    "read_budget_ms", "retry_interval_ms", "pool_size",    "stmt_cache_size", "no_stmt_cache",
    "connect_timeout_s", "token_ttl_s",  "token_key",      "max_lag_bytes",   "max_lag_ms",
    "refresh_interval_ms", "statement_timeout_ms", "pool_max", "nearest", "no_refresher", "bogus",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_bytes b = {data, size};
    wr_options o;
    memset(&o, 0, sizeof o);
    while (b.left) {
        char key[40], value[300], err[200];
        uint8_t pick = fz_u8(&b);
        if (pick & 0x80) fz_str(&b, key, sizeof key - 1);
        else snprintf(key, sizeof key, "%s", names[pick % (sizeof names / sizeof names[0])]);
        fz_str(&b, value, sizeof value - 1);
        wr_options before = o;
        wr_status st = wr_options_set(&o, key, value, err, sizeof err);
        FZ_REQUIRE(st == WR_OK || st == WR_ERR_ARG);
        FZ_REQUIRE(memchr(err, '\0', sizeof err) != NULL);
        if (st != WR_OK) {
            FZ_REQUIRE(memcmp(&before, &o, sizeof o) == 0);
            FZ_REQUIRE(strstr(err, key) != NULL || strstr(err, "unknown option") != NULL || !key[0]);
            if (strcmp(key, "token_key") == 0 && strlen(value) >= 8) FZ_REQUIRE(strstr(err, value) == NULL);
        } else if (strcmp(key, "pool_size") == 0) {
            FZ_REQUIRE(o.pool_size == strtoull(value, NULL, 10) && o.pool_size <= 10000);
        } else if (strcmp(key, "connect_timeout_s") == 0) {
            FZ_REQUIRE(o.connect_timeout_s == strtoull(value, NULL, 10) && o.connect_timeout_s <= 86400);
        }
    }
    /* The same bytes as a caller's struct. */
    wr_options raw;
    memset(&raw, 0, sizeof raw);
    memcpy(&raw, data, size < sizeof raw ? size : sizeof raw);
    char err[200];
    if (wr_options_check(&raw, err, sizeof err) == WR_OK) {
        wr_options r;
        wr_options_resolve(&raw, &r);
        FZ_REQUIRE(r.read_budget_ms && r.retry_interval_ms && r.pool_size && r.pool_max && r.stmt_cache_size &&
                   r.connect_timeout_s && r.token_ttl_s && r.refresh_interval_ms && r.max_lag_bytes &&
                   r.max_lag_ms && r.statement_timeout_ms);
        FZ_REQUIRE(r.pool_size <= r.pool_max && r.pool_max <= 10000 && r.stmt_cache_size <= 10000);
        FZ_REQUIRE(r.token_key_len <= sizeof r.token_key);
    } else {
        FZ_REQUIRE(strncmp(err, "option ", 7) == 0);
    }
    return 0;
}
