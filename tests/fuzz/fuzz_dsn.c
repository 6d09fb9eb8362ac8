/* fuzz_dsn.c — wr_dsn_parse, the DSN split into one conninfo per node (on
 * libpq's own parser), and wr_dsn_params.
 *   - it never crashes or leaks (LeakSanitizer), whatever the text;
 *   - a refused DSN leaves nothing allocated and a message that never shows
 *     the password (a "password=" value or a URI's user:password@, as
 *     written);
 *   - an accepted one has 1..32 nodes, each with a name, and per node the
 *     keywords libpq would connect with, host/port at most once each;
 *     defaults (connect_timeout, keepalives...) are present exactly once. */
#include "fuzz_util.h"
#include "conn.h"

/* The password the text spells as key=value "password=<x>" with x of 6+
 * plain characters (so it cannot be a word of libpq's own message), found
 * nowhere else in the text (where it would be a host name, say, that a
 * message may name). */
static int spelled_password(const char *s, char *out, size_t cap) {
    const char *p = strstr(s, "password=");
    if (!p) return 0;
    p += 9;
    size_t len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
    if (len < 6 || len >= cap) return 0;
    memcpy(out, p, len);
    out[len] = '\0';
    const char *first = strstr(s, out);
    return first == p && strstr(p + 1, out) == NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    wr_dsn d;
    wr_err e;
    wr_err_clear(&e);
    wr_status st = wr_dsn_parse(&d, text, 5, &e);
    if (st != WR_OK) {
        FZ_REQUIRE(st == WR_ERR_ARG || st == WR_ERR_NOMEM);
        FZ_REQUIRE(d.n == 0 && d.kw == NULL && d.password == NULL);
        char pw[64];
        if (spelled_password(text, pw, sizeof pw)) FZ_REQUIRE(strstr(e.msg, pw) == NULL);
    } else {
        FZ_REQUIRE(d.n >= 1 && d.n <= WR_MAX_NODES);
        for (size_t i = 0; i < d.n; i++) {
            FZ_REQUIRE(d.name[i][0] != '\0');
            const char *kw[256], *val[256];
            int k = wr_dsn_params(&d, i, kw, val, 256);
            if (k < 0) continue; /* more keywords than this caller has room for */
            FZ_REQUIRE(kw[k] == NULL && val[k] == NULL);
            int hosts = 0, ports = 0, timeouts = 0;
            for (int j = 0; j < k; j++) {
                FZ_REQUIRE(kw[j] != NULL && val[j] != NULL);
                hosts += strcmp(kw[j], "host") == 0;
                ports += strcmp(kw[j], "port") == 0;
                timeouts += strcmp(kw[j], "connect_timeout") == 0;
            }
            FZ_REQUIRE(hosts <= 1 && ports <= 1 && timeouts == 1);
        }
        wr_dsn_free(&d);
    }
    free(text);
    return 0;
}
