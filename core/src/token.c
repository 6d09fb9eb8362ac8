/* token.c — a session's timeline as cookie-safe text, optionally signed:
 *
 *   1.<need hex>.<last node or ->.<issued unix s hex>[.<sig>]
 *
 * sig is the base64url (no padding) HMAC-SHA256 of everything before it.
 * Numbers have exactly one spelling (lowercase hex, no leading zeros), so a
 * timeline has exactly one unsigned encoding. Decoding treats the text as
 * hostile: bounded length, a fixed alphabet, exact fields, no overflow, and
 * messages that never repeat the text or the key. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "walrouter_decide.h"

#define MAC_LEN 32         /* SHA-256 */
#define SIG_LEN 43         /* base64url of MAC_LEN bytes, unpadded */
#define MAX_FIELDS 5
#define MAX_HEX_DIGITS 16  /* a uint64 */
#define MAX_NODE_DIGITS 10 /* an int */
#define MAX_SKEW_S 300     /* clock skew tolerated for "issued" */

/* ---- signature ---------------------------------------------------------- */

static int usable_key(const void *key, size_t key_len) {
    return key != NULL && key_len > 0 && key_len <= INT_MAX;
}

/* base64url of in[0..len), no padding, NUL-terminated. */
static void base64url(const unsigned char *in, size_t len, char *out) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = abc[v >> 18 & 63];
        *out++ = abc[v >> 12 & 63];
        *out++ = abc[v >> 6 & 63];
        *out++ = abc[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = abc[v >> 18 & 63];
        *out++ = abc[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *out++ = abc[v >> 18 & 63];
        *out++ = abc[v >> 12 & 63];
        *out++ = abc[v >> 6 & 63];
    }
    *out = '\0';
}

/* The signature of text[0..len) into sig. Returns 0, or -1 on failure. */
static int sign(const void *key, size_t key_len, const char *text, size_t len, char sig[SIG_LEN + 1]) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!usable_key(key, key_len)) return -1;
    if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)text, len, mac, &mac_len) ||
        mac_len != MAC_LEN)
        return -1;
    base64url(mac, MAC_LEN, sig);
    return 0;
}

/* ---- encode ------------------------------------------------------------- */

size_t wr_token_encode(const wr_timeline *t, int64_t now_unix, const void *key, size_t key_len, char *buf,
                       size_t buflen) {
    char text[WR_TOKEN_BUFSIZE];
    char node[16] = "-";
    if (!t || !buf) return 0;
    if (t->last_node >= 0) snprintf(node, sizeof node, "%d", t->last_node);
    /* A clock before 1970 is broken; 0 is the safest stand-in (it expires). */
    uint64_t issued = now_unix > 0 ? (uint64_t)now_unix : 0;
    int n = snprintf(text, sizeof text, "1.%" PRIx64 ".%s.%" PRIx64, (uint64_t)t->need, node, issued);
    if (n < 0 || (size_t)n >= sizeof text) return 0;
    size_t len = (size_t)n;
    if (key_len > 0) {
        char sig[SIG_LEN + 1];
        if (len + 1 + SIG_LEN >= sizeof text || sign(key, key_len, text, len, sig) != 0) return 0;
        text[len++] = '.';
        memcpy(text + len, sig, SIG_LEN + 1);
        len += SIG_LEN;
    }
    if (len >= buflen) return 0;
    memcpy(buf, text, len + 1);
    return len;
}

/* ---- decode ------------------------------------------------------------- */

typedef struct field {
    const char *p;
    size_t len;
} field;

static int is_token_char(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '.' ||
           c == '_' || c == '-';
}

/* 1-16 lowercase hex digits, no leading zero (except "0" itself). */
static int parse_hex(field f, uint64_t *out) {
    uint64_t v = 0;
    if (f.len == 0 || f.len > MAX_HEX_DIGITS || (f.len > 1 && f.p[0] == '0')) return -1;
    for (size_t i = 0; i < f.len; i++) {
        char c = f.p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* "-" (none: -1) or a decimal node index without leading zeros. Indexes past
 * INT_MAX are kept as INT_MAX: the caller drops them as out of range. */
static int parse_node(field f, int64_t *out) {
    if (f.len == 1 && f.p[0] == '-') {
        *out = -1;
        return 0;
    }
    if (f.len == 0 || f.len > MAX_NODE_DIGITS || (f.len > 1 && f.p[0] == '0')) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < f.len; i++) {
        if (f.p[i] < '0' || f.p[i] > '9') return -1;
        v = v * 10 + (f.p[i] - '0');
    }
    *out = v > INT_MAX ? INT_MAX : v;
    return 0;
}

static int is_signature(field f) {
    if (f.len != SIG_LEN) return 0;
    for (size_t i = 0; i < f.len; i++)
        if (f.p[i] == '.') return 0; /* every other token char is base64url */
    return 1;
}

/* Splits on '.'; returns the field count, or -1 when there are too many. */
static int split(const char *text, size_t len, field f[MAX_FIELDS]) {
    int nf = 0;
    const char *start = text;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && text[i] != '.') continue;
        if (nf == MAX_FIELDS) return -1;
        f[nf].p = start;
        f[nf].len = (size_t)(text + i - start);
        nf++;
        start = text + i + 1;
    }
    return nf;
}

#define FAIL(code, text) do { *msg = (text); return (code); } while (0)

static wr_token_result decode(const char *text, int64_t now_unix, uint32_t ttl_s, const void *key,
                              size_t key_len, size_t n_nodes, wr_timeline *out, const char **msg) {
    if (!text) FAIL(WR_TOKEN_MALFORMED, "no token given");
    size_t len = 0;
    for (; text[len]; len++) { /* bounded: never reads past WR_TOKEN_BUFSIZE */
        if (len + 1 >= WR_TOKEN_BUFSIZE) FAIL(WR_TOKEN_MALFORMED, "token is too long");
        if (!is_token_char((unsigned char)text[len]))
            FAIL(WR_TOKEN_MALFORMED, "token contains a character outside [0-9A-Za-z._-]");
    }
    /* The version decides how the rest reads, so it comes first. */
    size_t vlen = strcspn(text, ".");
    if (vlen == 0) FAIL(WR_TOKEN_MALFORMED, "token has no version");
    if (vlen != 1 || text[0] != '1') FAIL(WR_TOKEN_BAD_VERSION, "token version is not supported");
    field f[MAX_FIELDS];
    int nf = split(text, len, f);
    if (nf != 4 && nf != 5) FAIL(WR_TOKEN_MALFORMED, "token has the wrong number of fields");

    uint64_t need, issued;
    int64_t node;
    if (parse_hex(f[1], &need) != 0) FAIL(WR_TOKEN_MALFORMED, "token position is malformed");
    if (parse_node(f[2], &node) != 0) FAIL(WR_TOKEN_MALFORMED, "token node is malformed");
    if (parse_hex(f[3], &issued) != 0 || issued > INT64_MAX)
        FAIL(WR_TOKEN_MALFORMED, "token issue time is malformed");
    if (nf == 5 && !is_signature(f[4])) FAIL(WR_TOKEN_MALFORMED, "token signature is malformed");

    if (key_len > 0) {
        char expect[SIG_LEN + 1];
        if (nf != 5) FAIL(WR_TOKEN_BAD_SIGNATURE, "token is not signed");
        if (sign(key, key_len, text, (size_t)(f[4].p - 1 - text), expect) != 0)
            FAIL(WR_TOKEN_BAD_SIGNATURE, "token signature cannot be checked with this key");
        if (CRYPTO_memcmp(expect, f[4].p, SIG_LEN) != 0)
            FAIL(WR_TOKEN_BAD_SIGNATURE, "token signature does not match");
    }

    /* Differences as uint64: exact for any two int64 values in order. */
    if ((int64_t)issued > now_unix && (uint64_t)issued - (uint64_t)now_unix > MAX_SKEW_S)
        FAIL(WR_TOKEN_FUTURE, "token was issued in the future");
    if (ttl_s != 0 && now_unix > (int64_t)issued && (uint64_t)now_unix - issued > ttl_s) {
        wr_timeline_init(out);
        FAIL(WR_TOKEN_EXPIRED, "token has expired");
    }
    out->need = need;
    out->last_node = node >= 0 && (uint64_t)node < n_nodes ? (int)node : -1;
    *msg = "token accepted";
    return WR_TOKEN_OK;
}

wr_token_result wr_token_decode(const char *text, int64_t now_unix, uint64_t now_us, uint32_t ttl_s,
                                const void *key, size_t key_len, size_t n_nodes, wr_timeline *t,
                                const char **msg) {
    const char *why = NULL;
    wr_timeline got;
    wr_token_result r = decode(text, now_unix, ttl_s, key, key_len, n_nodes, &got, &why);
    if (r == WR_TOKEN_OK) got.last_read_us = now_us; /* any later probe bounds the last read */
    if ((r == WR_TOKEN_OK || r == WR_TOKEN_EXPIRED) && t) *t = got;
    if (msg) *msg = why;
    return r;
}
