/* token.c — a session's timeline as cookie-safe text, optionally signed:
 *
 *   2.<tli hex>.<need hex>.<node id hex or ->.<flags hex>.<issued unix s hex>[.<sig>]
 *   1.<need hex>.<last node index or ->.<issued unix s hex>[.<sig>]   (legacy)
 *
 * sig is the base64url (no padding) HMAC-SHA256 of everything before it.
 * Numbers have exactly one spelling (lowercase hex, no leading zeros), so a
 * timeline has exactly one unsigned encoding. Decoding treats the text as
 * hostile: bounded length, a fixed alphabet, exact fields, no overflow, and
 * messages that never repeat the text or the key.
 *
 * Version 2 names the last node by wr_node_id() of its name, which every app
 * server computes alike whatever order its DSN lists the nodes in; version 1
 * named it by an index into one process's list, so wr_token_read drops it.
 *
 * A token of another cluster: with token_key set, each cluster with its own
 * key, its signature does not match (WR_TOKEN_BAD_SIGNATURE: the session
 * calls return WR_ERR_TOKEN, the bindings TokenError). Unsigned, or signed
 * with the same key, nothing in it tells it apart (no cluster identity is
 * written): it reads as a need like any other. Its position, if ahead of
 * this cluster's primary, is clamped to the primary's by the first read
 * that finds no replica has it; a node it names that none of this
 * cluster's nodes is leaves that read pending on no known node, so the next
 * read takes its bound from the primary. It costs reads a check, never a
 * wrong answer.
 *
 * The legacy pair (wr_token_encode/wr_token_decode) reads and writes only the
 * fields a 0.1 wr_timeline has (need, last_node, last_read_us): a caller
 * built against 0.1 passes the smaller struct. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "walrouter_engine.h"

#define MAC_LEN 32           /* SHA-256 */
#define SIG_LEN 43           /* base64url of MAC_LEN bytes, unpadded */
#define MAX_TOKEN_LEN (WR_TOKEN_BUFSIZE - 1)
#define MAX_FIELDS 7         /* version 2, signed */
#define V1_FIELDS 4          /* unsigned; one more when signed */
#define V2_FIELDS 6
#define MAX_HEX_DIGITS 16    /* a uint64 */
#define MAX_HEX32_DIGITS 8   /* a uint32: timeline, node id */
#define MAX_INDEX_DIGITS 10  /* an int */
#define MAX_SKEW_S 300       /* clock skew tolerated for "issued" */
#define FLAG_NEED_UNKNOWN 1u
#define FLAG_PENDING 2u /* a read is pending on a node the token cannot name */
#define KNOWN_FLAGS (FLAG_NEED_UNKNOWN | FLAG_PENDING)

/* ---- node identity ------------------------------------------------------ */

uint32_t wr_node_id(const char *name) {
    if (!name) return 1;
    /* The host is everything before the last ':' (the whole name without
     * one); DNS names and IPv6 hex digits are case-insensitive there, a
     * port or socket path after it is not. */
    const char *colon = strrchr(name, ':');
    const char *host_end = colon ? colon : name + strlen(name);
    uint32_t h = 2166136261u; /* FNV-1a 32 offset basis */
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (p < host_end && c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        h ^= c;
        h *= 16777619u; /* FNV 32 prime */
    }
    return h != 0 ? h : 1; /* 0 is never an id */
}

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

/* A clock before 1970 is broken; 0 is the safest stand-in (it expires). */
static uint64_t issued_at(int64_t now_unix) {
    return now_unix > 0 ? (uint64_t)now_unix : 0;
}

/* Signs the unsigned text[0..len) (snprintf's result n) when a key is given
 * and copies it out. Returns the length written, or 0. */
static size_t finish(char text[WR_TOKEN_BUFSIZE], int n, const void *key, size_t key_len, char *buf,
                     size_t buflen) {
    if (n < 0 || (size_t)n >= WR_TOKEN_BUFSIZE) return 0;
    size_t len = (size_t)n;
    if (key_len > 0) {
        char sig[SIG_LEN + 1];
        if (len + 1 + SIG_LEN >= WR_TOKEN_BUFSIZE || sign(key, key_len, text, len, sig) != 0) return 0;
        text[len++] = '.';
        memcpy(text + len, sig, SIG_LEN + 1);
        len += SIG_LEN;
    }
    if (len >= buflen) return 0;
    memcpy(buf, text, len + 1);
    return len;
}

size_t wr_token_write(const wr_timeline *t, const uint32_t *ids, size_t n, int64_t now_unix, const void *key,
                      size_t key_len, char *buf, size_t buflen) {
    char text[WR_TOKEN_BUFSIZE];
    char node[MAX_HEX32_DIGITS + 1] = "-";
    if (!t || !buf) return 0;
    if (ids && t->last_node >= 0 && (size_t)t->last_node < n)
        snprintf(node, sizeof node, "%" PRIx32, ids[t->last_node]);
    unsigned flags = t->need_unknown ? FLAG_NEED_UNKNOWN : 0;
    if (t->last_node != -1 && node[0] == '-') flags |= FLAG_PENDING;
    int len = snprintf(text, sizeof text, "2.%" PRIx32 ".%" PRIx64 ".%s.%x.%" PRIx64, t->need_tli,
                       (uint64_t)t->need, node, flags, issued_at(now_unix));
    return finish(text, len, key, key_len, buf, buflen);
}

size_t wr_token_encode(const wr_timeline *t, int64_t now_unix, const void *key, size_t key_len, char *buf,
                       size_t buflen) {
    char text[WR_TOKEN_BUFSIZE];
    char node[MAX_INDEX_DIGITS + 2] = "-";
    if (!t || !buf) return 0;
    if (t->last_node >= 0) snprintf(node, sizeof node, "%d", t->last_node);
    int len = snprintf(text, sizeof text, "1.%" PRIx64 ".%s.%" PRIx64, (uint64_t)t->need, node,
                       issued_at(now_unix));
    return finish(text, len, key, key_len, buf, buflen);
}

/* ---- decode ------------------------------------------------------------- */

typedef struct field {
    const char *p;
    size_t len;
} field;

/* What a well-formed, genuine token says. */
typedef struct parsed {
    int version;
    uint32_t tli;     /* v2 */
    uint64_t need;
    int has_node;     /* the node field is not "-" */
    uint32_t node_id; /* v2 */
    int64_t node_ix;  /* v1, clamped to INT_MAX */
    uint32_t flags;   /* v2 */
} parsed;

static int is_token_char(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '.' ||
           c == '_' || c == '-';
}

/* 1..max_digits lowercase hex digits, no leading zero (except "0" itself). */
static int parse_hex(field f, size_t max_digits, uint64_t *out) {
    uint64_t v = 0;
    if (f.len == 0 || f.len > max_digits || (f.len > 1 && f.p[0] == '0')) return -1;
    for (size_t i = 0; i < f.len; i++) {
        char c = f.p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

static int is_none(field f) {
    return f.len == 1 && f.p[0] == '-';
}

/* A decimal node index without leading zeros. Indexes past INT_MAX are kept
 * as INT_MAX: the caller drops them as out of range. */
static int parse_index(field f, int64_t *out) {
    if (f.len == 0 || f.len > MAX_INDEX_DIGITS || (f.len > 1 && f.p[0] == '0')) return -1;
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

#define FAIL(code, why) do { *msg = (why); return (code); } while (0)

/* The fields of a version 1 token (f[0] is the version). */
static wr_token_result parse_v1(const field *f, parsed *p, uint64_t *issued, const char **msg) {
    if (parse_hex(f[1], MAX_HEX_DIGITS, &p->need) != 0) FAIL(WR_TOKEN_MALFORMED, "token position is malformed");
    p->has_node = !is_none(f[2]);
    if (p->has_node && parse_index(f[2], &p->node_ix) != 0) FAIL(WR_TOKEN_MALFORMED, "token node is malformed");
    if (parse_hex(f[3], MAX_HEX_DIGITS, issued) != 0 || *issued > INT64_MAX)
        FAIL(WR_TOKEN_MALFORMED, "token issue time is malformed");
    return WR_TOKEN_OK;
}

/* The fields of a version 2 token. */
static wr_token_result parse_v2(const field *f, parsed *p, uint64_t *issued, const char **msg) {
    uint64_t v;
    if (parse_hex(f[1], MAX_HEX32_DIGITS, &v) != 0) FAIL(WR_TOKEN_MALFORMED, "token timeline is malformed");
    p->tli = (uint32_t)v;
    if (parse_hex(f[2], MAX_HEX_DIGITS, &p->need) != 0) FAIL(WR_TOKEN_MALFORMED, "token position is malformed");
    p->has_node = !is_none(f[3]);
    if (p->has_node) {
        if (parse_hex(f[3], MAX_HEX32_DIGITS, &v) != 0) FAIL(WR_TOKEN_MALFORMED, "token node is malformed");
        p->node_id = (uint32_t)v;
    }
    if (parse_hex(f[4], MAX_HEX32_DIGITS, &v) != 0 || (v & ~(uint64_t)KNOWN_FLAGS) != 0)
        FAIL(WR_TOKEN_MALFORMED, "token flags are malformed");
    p->flags = (uint32_t)v;
    /* "pending" stands for a node the writer could not name: with a named
     * node it would be a second spelling of the same token. */
    if (p->has_node && (p->flags & FLAG_PENDING)) FAIL(WR_TOKEN_MALFORMED, "token flags are malformed");
    if (parse_hex(f[5], MAX_HEX_DIGITS, issued) != 0 || *issued > INT64_MAX)
        FAIL(WR_TOKEN_MALFORMED, "token issue time is malformed");
    return WR_TOKEN_OK;
}

/* Decodes text[0..len), already known to hold no NUL and to be at most
 * MAX_TOKEN_LEN long. v2_ok: version 2 is accepted (else only version 1).
 * Returns OK or EXPIRED with *p set, or an error. */
static wr_token_result parse(const char *text, size_t len, int v2_ok, int64_t now_unix, uint32_t ttl_s,
                             const void *key, size_t key_len, parsed *p, const char **msg) {
    for (size_t i = 0; i < len; i++)
        if (!is_token_char((unsigned char)text[i]))
            FAIL(WR_TOKEN_MALFORMED, "token contains a character outside [0-9A-Za-z._-]");
    /* The version decides how the rest reads, so it comes first. */
    size_t vlen = 0;
    while (vlen < len && text[vlen] != '.') vlen++;
    if (vlen == 0) FAIL(WR_TOKEN_MALFORMED, "token has no version");
    if (vlen != 1 || (text[0] != '1' && !(v2_ok && text[0] == '2')))
        FAIL(WR_TOKEN_BAD_VERSION, "token version is not supported");
    memset(p, 0, sizeof *p);
    p->version = text[0] - '0';
    int unsigned_fields = p->version == 1 ? V1_FIELDS : V2_FIELDS;

    field f[MAX_FIELDS];
    int nf = split(text, len, f);
    if (nf != unsigned_fields && nf != unsigned_fields + 1)
        FAIL(WR_TOKEN_MALFORMED, "token has the wrong number of fields");
    uint64_t issued = 0;
    wr_token_result r = p->version == 1 ? parse_v1(f, p, &issued, msg) : parse_v2(f, p, &issued, msg);
    if (r != WR_TOKEN_OK) return r;
    int is_signed = nf == unsigned_fields + 1;
    if (is_signed && !is_signature(f[nf - 1])) FAIL(WR_TOKEN_MALFORMED, "token signature is malformed");

    if (key_len > 0) {
        char expect[SIG_LEN + 1];
        if (!is_signed) FAIL(WR_TOKEN_BAD_SIGNATURE, "token is not signed");
        if (sign(key, key_len, text, (size_t)(f[nf - 1].p - 1 - text), expect) != 0)
            FAIL(WR_TOKEN_BAD_SIGNATURE, "token signature cannot be checked with this key");
        if (CRYPTO_memcmp(expect, f[nf - 1].p, SIG_LEN) != 0)
            FAIL(WR_TOKEN_BAD_SIGNATURE, "token signature does not match");
    }

    /* Differences as uint64: exact for any two int64 values in order. */
    if ((int64_t)issued > now_unix && issued - (uint64_t)now_unix > MAX_SKEW_S)
        FAIL(WR_TOKEN_FUTURE, "token was issued in the future");
    if (ttl_s != 0 && now_unix > (int64_t)issued && (uint64_t)now_unix - issued > ttl_s)
        FAIL(WR_TOKEN_EXPIRED, "token has expired");
    *msg = "token accepted";
    return WR_TOKEN_OK;
}

wr_token_result wr_token_read(const char *text, size_t text_len, int64_t now_unix, uint64_t now_us,
                              uint32_t ttl_s, const void *key, size_t key_len, const uint32_t *ids, size_t n,
                              wr_timeline *t, const char **msg) {
    const char *why = NULL;
    wr_token_result r;
    parsed p = {0};
    if (!text) {
        why = "no token given";
        r = WR_TOKEN_MALFORMED;
    } else if (text_len == 0) {
        why = "empty token";
        r = WR_TOKEN_MALFORMED;
    } else if (text_len > MAX_TOKEN_LEN) { /* not read at all */
        why = "token is too long";
        r = WR_TOKEN_MALFORMED;
    } else if (memchr(text, '\0', text_len) != NULL) {
        /* text_len is the exact length: a NUL inside it would hide the rest
         * from any caller that reads the text as a C string. */
        why = "token contains a NUL byte";
        r = WR_TOKEN_MALFORMED;
    } else {
        r = parse(text, text_len, 1, now_unix, ttl_s, key, key_len, &p, &why);
    }
    if (r == WR_TOKEN_OK && t) {
        wr_timeline got;
        wr_timeline_init(&got);
        got.need = p.need;
        got.need_tli = p.version == 2 ? p.tli : 0;
        got.need_unknown = p.version == 2 && (p.flags & FLAG_NEED_UNKNOWN) ? 1 : 0;
        /* Version 1 named the node by one process's DSN order: meaningless
         * here. Version 2 names it by id. A read pending on a node this
         * process cannot name stays pending (-2): the next read elsewhere
         * then needs an upper bound from the primary (G2). */
        if (p.has_node || (p.version == 2 && (p.flags & FLAG_PENDING))) got.last_node = -2;
        if (p.version == 2 && p.has_node && ids) {
            for (size_t j = 0; j < n && j <= INT_MAX; j++) {
                if (ids[j] == p.node_id) {
                    got.last_node = (int)j;
                    break;
                }
            }
        }
        got.last_read_us = now_us; /* any later probe bounds the last read */
        *t = got;
    } else if (r == WR_TOKEN_EXPIRED && t) {
        wr_timeline_init(t);
    }
    if (msg) *msg = why;
    return r;
}

wr_token_result wr_token_decode(const char *text, int64_t now_unix, uint64_t now_us, uint32_t ttl_s,
                                const void *key, size_t key_len, size_t n_nodes, wr_timeline *t,
                                const char **msg) {
    const char *why = NULL;
    wr_token_result r;
    parsed p = {0};
    size_t len = 0;
    if (text) /* bounded: reads at most WR_TOKEN_BUFSIZE bytes */
        while (len <= MAX_TOKEN_LEN && text[len]) len++;
    if (!text) {
        why = "no token given";
        r = WR_TOKEN_MALFORMED;
    } else if (len > MAX_TOKEN_LEN) {
        why = "token is too long";
        r = WR_TOKEN_MALFORMED;
    } else {
        r = parse(text, len, 0, now_unix, ttl_s, key, key_len, &p, &why);
    }
    /* Only the fields a 0.1 wr_timeline has. */
    if (r == WR_TOKEN_OK && t) {
        t->need = p.need;
        t->last_node = p.has_node && p.node_ix >= 0 && (uint64_t)p.node_ix < n_nodes ? (int)p.node_ix : -1;
        t->last_read_us = now_us; /* any later probe bounds the last read */
    } else if (r == WR_TOKEN_EXPIRED && t) {
        t->need = WR_LSN_INVALID;
        t->last_node = -1;
        t->last_read_us = 0;
    }
    if (msg) *msg = why;
    return r;
}
