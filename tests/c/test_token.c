/* test_token.c — session tokens: the exact text form, round trips with and
 * without a key, and a decoder that treats its input as hostile (tampering,
 * truncation, versions, clocks, garbage) without ever crashing.
 *
 * The first part covers the legacy version 1 pair (wr_token_encode and
 * wr_token_decode, kept for the 0.1 ABI); the second, version 2
 * (wr_token_write and wr_token_read) and node identities (wr_node_id). */
#include <limits.h>
#include <stdlib.h>

#include "check.h"
#include "walrouter_decide.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define NOW 0x65000000    /* unix seconds: 2023-09-12 */
#define NOW_US 777000u    /* the monotonic clock at decode time */
#define TTL 3600u
#define NODES 3u

static const char KEY[] = "k3y";
static const char OTHER_KEY[] = "k3z";

static wr_timeline timeline(wr_lsn need, int last_node) {
    return (wr_timeline){.need = need, .last_node = last_node, .last_read_us = 5};
}

/* Encodes at NOW; with_key: signed with KEY. */
static size_t encode(const wr_timeline *t, int with_key, char *buf) {
    return wr_token_encode(t, NOW, with_key ? KEY : NULL, with_key ? strlen(KEY) : 0, buf, WR_TOKEN_BUFSIZE);
}

/* Decodes at NOW with TTL over NODES nodes; with_key: KEY required. */
static wr_token_result decode(const char *text, int with_key, wr_timeline *t) {
    return wr_token_decode(text, NOW, NOW_US, TTL, with_key ? KEY : NULL, with_key ? strlen(KEY) : 0, NODES, t,
                           NULL);
}

/* A timeline no decoder would produce, to see that failures leave it alone. */
static const wr_timeline sentinel = {
    .need = 0xABCDEF, .last_node = 9, .last_read_us = 1234, .need_tli = 77, .need_unknown = 5};

static int untouched(const wr_timeline *t) {
    return t->need == sentinel.need && t->last_node == sentinel.last_node &&
           t->last_read_us == sentinel.last_read_us && t->need_tli == sentinel.need_tli &&
           t->need_unknown == sentinel.need_unknown;
}

/* ---- the text form -------------------------------------------------------- */

static void an_unsigned_token_spells_the_timeline_compactly(void) {
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline(0x16B374D848u, 2);
    CHECK_INT(encode(&t, 0, buf), 23);
    CHECK_STR(buf, "1.16b374d848.2.65000000");
    wr_timeline_init(&t);
    CHECK_INT(wr_token_encode(&t, 0, NULL, 0, buf, sizeof buf), 7);
    CHECK_STR(buf, "1.0.-.0");
}

static void a_signed_token_ends_with_the_hmac_of_everything_before_it(void) {
    /* Expected value from: printf '1.16b374d848.2.65000000' |
     *   openssl dgst -sha256 -hmac k3y -binary | base64 | tr '+/' '-_' | tr -d = */
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline(0x16B374D848u, 2);
    CHECK_INT(encode(&t, 1, buf), 23 + 1 + 43);
    CHECK_STR(buf, "1.16b374d848.2.65000000.l7z_Dz8CmXaPKVRVllsm-7uobgph1ROGT5MTnKenY9Q");
    wr_timeline_init(&t);
    CHECK(wr_token_encode(&t, 0, "secret", 6, buf, sizeof buf) > 0);
    CHECK_STR(buf, "1.0.-.0.03lc78YxNeQ8eQVzLBZSn8rjjT8pWZnh-2wDVVNRBPg");
}

static void a_negative_clock_is_written_as_time_zero(void) {
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline(1, -1);
    CHECK(wr_token_encode(&t, -42, NULL, 0, buf, sizeof buf) > 0);
    CHECK_STR(buf, "1.1.-.0");
    t.last_node = -2; /* any pending read on an unknown node has no index to write */
    CHECK(wr_token_encode(&t, 0, NULL, 0, buf, sizeof buf) > 0);
    CHECK_STR(buf, "1.1.-.0");
}

static void the_largest_timeline_fits_and_round_trips(void) {
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline(UINT64_MAX, INT_MAX), back = sentinel;
    size_t len = wr_token_encode(&t, INT64_MAX, KEY, strlen(KEY), buf, sizeof buf);
    CHECK(len > 0 && len < WR_TOKEN_BUFSIZE);
    /* Signature from openssl dgst -sha256 -hmac k3y, as above. */
    CHECK_STR(buf, "1.ffffffffffffffff.2147483647.7fffffffffffffff.LiuRvJDDZvUYmV82NmIZzAqdRfGY6awy8ZAmcGKBQVo");
    CHECK_INT(wr_token_decode(buf, INT64_MAX, 1, 0, KEY, strlen(KEY), (size_t)INT_MAX + 1, &back, NULL),
              WR_TOKEN_OK);
    CHECK_U64(back.need, UINT64_MAX);
    CHECK_INT(back.last_node, INT_MAX);
}

static void encoding_refuses_a_buffer_too_small(void) {
    wr_timeline t = timeline(0x16B374D848u, 2);
    char *buf = malloc(24); /* on the heap: the sanitizer sees any overrun */
    CHECK(buf != NULL);
    if (!buf) return;
    CHECK_INT(wr_token_encode(&t, NOW, NULL, 0, buf, 24), 23);
    CHECK_STR(buf, "1.16b374d848.2.65000000");
    CHECK_INT(wr_token_encode(&t, NOW, NULL, 0, buf, 23), 0);
    CHECK_INT(wr_token_encode(&t, NOW, KEY, strlen(KEY), buf, 24), 0);
    CHECK_INT(wr_token_encode(&t, NOW, NULL, 0, buf, 0), 0);
    CHECK_INT(wr_token_encode(&t, NOW, NULL, 0, NULL, 24), 0);
    CHECK_INT(wr_token_encode(NULL, NOW, NULL, 0, buf, 24), 0);
    free(buf);
}

static void tokens_use_only_cookie_safe_characters(void) {
    uint64_t x = 88172645463325252u;
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        wr_timeline t = timeline(x >> (x & 63), (int)(x % 40) - 1);
        char key[8];
        memcpy(key, &x, sizeof key); /* binary keys are fine */
        char buf[WR_TOKEN_BUFSIZE];
        size_t len = wr_token_encode(&t, (int64_t)(x >> 33), key, i % 2 ? sizeof key : 0, buf, sizeof buf);
        if (len == 0 || len != strlen(buf) || strspn(buf, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                           "abcdefghijklmnopqrstuvwxyz._-") != len)
            bad++;
    }
    CHECK_INT(bad, 0);
}

/* ---- round trips ---------------------------------------------------------- */

static void a_token_gives_back_the_timeline_with_or_without_a_key(void) {
    static const wr_lsn needs[] = {0, 1, 0x16B374D848u, 0x100000000u, UINT64_MAX};
    static const int lasts[] = {-1, 0, 1, 2};
    for (int with_key = 0; with_key < 2; with_key++) {
        for (size_t i = 0; i < N(needs); i++) {
            for (size_t j = 0; j < N(lasts); j++) {
                char buf[WR_TOKEN_BUFSIZE];
                wr_timeline t = timeline(needs[i], lasts[j]), back = sentinel;
                CHECK(encode(&t, with_key, buf) > 0);
                CHECK_INT(decode(buf, with_key, &back), WR_TOKEN_OK);
                CHECK_U64(back.need, needs[i]);
                CHECK_INT(back.last_node, lasts[j]);
                /* Conservative: only probes after the resume bound the read. */
                CHECK_U64(back.last_read_us, NOW_US);
            }
        }
    }
}

static void a_signed_token_is_accepted_unchecked_without_a_key(void) {
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline(500, 1), back = sentinel;
    encode(&t, 1, buf);
    CHECK_INT(decode(buf, 0, &back), WR_TOKEN_OK);
    CHECK_U64(back.need, 500);
    CHECK_INT(back.last_node, 1);
}

static void a_last_node_this_cluster_does_not_have_is_dropped(void) {
    wr_timeline back = sentinel;
    CHECK_INT(decode("1.10.2.65000000", 0, &back), WR_TOKEN_OK);
    CHECK_INT(back.last_node, 2);
    CHECK_INT(decode("1.10.3.65000000", 0, &back), WR_TOKEN_OK);
    CHECK_INT(back.last_node, -1);
    CHECK_U64(back.need, 0x10);
    CHECK_INT(decode("1.10.9999999999.65000000", 0, &back), WR_TOKEN_OK);
    CHECK_INT(back.last_node, -1);
    CHECK_INT(wr_token_decode("1.10.0.65000000", NOW, 0, 0, NULL, 0, 0, &back, NULL), WR_TOKEN_OK);
    CHECK_INT(back.last_node, -1);
}

/* ---- keys and signatures -------------------------------------------------- */

static void an_unsigned_token_is_rejected_when_a_key_is_set(void) {
    wr_timeline back = sentinel;
    const char *msg = NULL;
    CHECK_INT(wr_token_decode("1.10.2.65000000", NOW, NOW_US, TTL, KEY, strlen(KEY), NODES, &back, &msg),
              WR_TOKEN_BAD_SIGNATURE);
    CHECK_STR(msg, "token is not signed");
    CHECK(untouched(&back));
}

static void a_token_signed_with_another_key_is_rejected(void) {
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline(500, 1), back = sentinel;
    const char *msg = NULL;
    CHECK(wr_token_encode(&t, NOW, OTHER_KEY, strlen(OTHER_KEY), buf, sizeof buf) > 0);
    CHECK_INT(wr_token_decode(buf, NOW, NOW_US, TTL, KEY, strlen(KEY), NODES, &back, &msg),
              WR_TOKEN_BAD_SIGNATURE);
    CHECK_STR(msg, "token signature does not match");
    CHECK(untouched(&back));
    /* A key is all of its bytes: a prefix of it is another key. */
    CHECK_INT(wr_token_decode(buf, NOW, NOW_US, TTL, OTHER_KEY, 2, NODES, &back, NULL), WR_TOKEN_BAD_SIGNATURE);
}

static void a_key_length_without_key_bytes_cannot_sign_or_check(void) {
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline(500, 1), back = sentinel;
    CHECK_INT(wr_token_encode(&t, NOW, NULL, 5, buf, sizeof buf), 0);
    encode(&t, 1, buf);
    CHECK_INT(wr_token_decode(buf, NOW, NOW_US, TTL, NULL, 5, NODES, &back, NULL), WR_TOKEN_BAD_SIGNATURE);
    CHECK(untouched(&back));
}

static void every_altered_character_of_a_signed_token_is_rejected(void) {
    char good[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline(0x16B374D848u, 2);
    size_t len = encode(&t, 1, good);
    int accepted = 0, changed = 0;
    for (size_t pos = 0; pos < len; pos++) {
        for (int c = 1; c < 256; c++) {
            if (c == (unsigned char)good[pos]) continue;
            char bad[WR_TOKEN_BUFSIZE];
            memcpy(bad, good, len + 1);
            bad[pos] = (char)c;
            wr_timeline back = sentinel;
            wr_token_result r = decode(bad, 1, &back);
            if (r == WR_TOKEN_OK) {
                accepted++;
                if (back.need != t.need || back.last_node != t.last_node) changed++;
            } else if (!untouched(&back) && r != WR_TOKEN_EXPIRED) {
                changed++;
            }
        }
    }
    CHECK_INT(changed, 0);  /* the guarantee */
    CHECK_INT(accepted, 0); /* and in practice: one spelling per token */
}

static void every_truncation_of_a_signed_token_is_rejected(void) {
    char good[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline(0x16B374D848u, 2);
    size_t len = encode(&t, 1, good);
    size_t unsigned_len = strlen("1.16b374d848.2.65000000");
    for (size_t cut = 0; cut < len; cut++) {
        char bad[WR_TOKEN_BUFSIZE];
        memcpy(bad, good, cut);
        bad[cut] = '\0';
        wr_timeline back = sentinel;
        CHECK(decode(bad, 1, &back) != WR_TOKEN_OK);
        CHECK(untouched(&back));
        /* Without a key, a cut signature is still malformed. */
        if (cut > unsigned_len) CHECK_INT(decode(bad, 0, &back), WR_TOKEN_MALFORMED);
    }
}

static void anything_appended_to_a_signed_token_is_rejected(void) {
    char good[WR_TOKEN_BUFSIZE], bad[2 * WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline(0x16B374D848u, 2), back = sentinel;
    encode(&t, 1, good);
    static const char *const tails[] = {"A", "=", ".", "..", ".x", ".l7z_Dz8CmXaPKVRVllsm-7uobgph1ROGT5MTnKenY9Q"};
    for (size_t i = 0; i < N(tails); i++) {
        snprintf(bad, sizeof bad, "%s%s", good, tails[i]);
        CHECK(decode(bad, 1, &back) != WR_TOKEN_OK);
        CHECK(decode(bad, 0, &back) != WR_TOKEN_OK);
        CHECK(untouched(&back));
    }
}

/* ---- versions and clocks -------------------------------------------------- */

static void other_versions_are_rejected_as_such(void) {
    static const char *const other[] = {"2.10.2.65000000", "0.10.2.65000000", "11.10.2.65000000",
                                        "01.10.2.65000000", "2", "v1.10.2.65000000", "2.a.b.c.d.e.f.g",
                                        "2.10.2.65000000.l7z_Dz8CmXaPKVRVllsm-7uobgph1ROGT5MTnKenY9Q"};
    for (size_t i = 0; i < N(other); i++) {
        wr_timeline back = sentinel;
        const char *msg = NULL;
        CHECK_INT(wr_token_decode(other[i], NOW, NOW_US, TTL, KEY, strlen(KEY), NODES, &back, &msg),
                  WR_TOKEN_BAD_VERSION);
        CHECK_STR(msg, "token version is not supported");
        CHECK(untouched(&back));
    }
}

static void an_expired_token_yields_an_empty_timeline(void) {
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline(500, 1), back = sentinel;
    const char *msg = NULL;
    CHECK(wr_token_encode(&t, NOW - TTL - 1, KEY, strlen(KEY), buf, sizeof buf) > 0);
    CHECK_INT(wr_token_decode(buf, NOW, NOW_US, TTL, KEY, strlen(KEY), NODES, &back, &msg), WR_TOKEN_EXPIRED);
    CHECK_STR(msg, "token has expired");
    CHECK_U64(back.need, 0);
    CHECK_INT(back.last_node, -1);
    /* Exactly ttl old is still fresh; ttl 0 never expires. */
    CHECK(wr_token_encode(&t, NOW - TTL, KEY, strlen(KEY), buf, sizeof buf) > 0);
    CHECK_INT(decode(buf, 1, &back), WR_TOKEN_OK);
    CHECK_INT(wr_token_decode("1.1f4.1.0", NOW, NOW_US, 0, NULL, 0, NODES, &back, NULL), WR_TOKEN_OK);
    CHECK_U64(back.need, 500);
    CHECK_INT(wr_token_decode("1.1f4.1.0", INT64_MAX, NOW_US, 1, NULL, 0, NODES, &back, NULL), WR_TOKEN_EXPIRED);
}

static void an_expired_token_must_still_be_genuine(void) {
    wr_timeline back = sentinel;
    CHECK_INT(wr_token_decode("1.1f4.1.0", NOW, NOW_US, TTL, KEY, strlen(KEY), NODES, &back, NULL),
              WR_TOKEN_BAD_SIGNATURE);
    CHECK(untouched(&back));
}

static void a_token_from_the_future_is_rejected_beyond_five_minutes_of_skew(void) {
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline(500, 1), back = sentinel;
    const char *msg = NULL;
    CHECK(wr_token_encode(&t, NOW + 300, KEY, strlen(KEY), buf, sizeof buf) > 0);
    CHECK_INT(decode(buf, 1, &back), WR_TOKEN_OK);
    back = sentinel;
    CHECK(wr_token_encode(&t, NOW + 301, KEY, strlen(KEY), buf, sizeof buf) > 0);
    CHECK_INT(wr_token_decode(buf, NOW, NOW_US, TTL, KEY, strlen(KEY), NODES, &back, &msg), WR_TOKEN_FUTURE);
    CHECK_STR(msg, "token was issued in the future");
    CHECK(untouched(&back));
    /* Extreme clocks do not overflow. */
    CHECK_INT(wr_token_decode("1.0.-.7fffffffffffffff", INT64_MIN, 0, TTL, NULL, 0, NODES, &back, NULL),
              WR_TOKEN_FUTURE);
    CHECK_INT(wr_token_decode("1.0.-.5", -5, 0, TTL, NULL, 0, NODES, &back, NULL), WR_TOKEN_OK);
}

/* ---- hostile input -------------------------------------------------------- */

static void malformed_tokens_are_rejected_and_change_nothing(void) {
    static const char *const bad[] = {
        "", ".", "..", "...", "....", "1", "1.", "1.0", "1.0.-", "1.0.-.", "1.0.-.0.", "1..-.0", "1.0..0",
        ".1.0.-.0", "1.0.-.0..", "1.0.-.0.x", "1.0.-.0.l7z_Dz8CmXaPKVRVllsm-7uobgph1ROGT5MTnKenY9",
        "1.0.-.0.l7z_Dz8CmXaPKVRVllsm-7uobgph1ROGT5MTnKenY9QQ",
        "1.00.-.0", "1.01.-.0", "1.A.-.0", "1.16B374D848.2.65000000", "1.g.-.0", "1.-1.-.0", "1.x0.-.0",
        "1.10000000000000000.-.0",                 /* 17 hex digits */
        "1.0.01.0", "1.0.-1.0", "1.0.--.0", "1.0.1-.0", "1.0._.0", "1.0.a.0", "1.0.12345678901.0",
        "1.0.-.00", "1.0.-.g", "1.0.-.-1", "1.0.-.8000000000000000", "1.0.-.ffffffffffffffff",
        "1.0.-.10000000000000000",
        " 1.0.-.0", "1.0.-.0 ", "1.0.-.0\n", "1,0,-,0", "1.0.+.0", "1.0.-.0;", "1.0.-.0=", "1.0.-.0\x7f",
        "1.0.-.0\x80", "1.0.-.0\xff", "1/0.-.0", "1.0.-.0%00", "\"1.0.-.0\"",
    };
    for (size_t i = 0; i < N(bad); i++) {
        wr_timeline back = sentinel;
        const char *msg = NULL;
        wr_token_result r = wr_token_decode(bad[i], NOW, NOW_US, TTL, NULL, 0, NODES, &back, &msg);
        if (r != WR_TOKEN_MALFORMED) fprintf(stderr, "  \"%s\" gave %d\n", bad[i], r);
        CHECK_INT(r, WR_TOKEN_MALFORMED);
        CHECK(untouched(&back));
        CHECK(msg != NULL && strncmp(msg, "token", 5) == 0);
        CHECK(wr_token_decode(bad[i], NOW, NOW_US, TTL, KEY, strlen(KEY), NODES, &back, NULL) != WR_TOKEN_OK);
    }
}

static void null_text_and_null_outputs_do_not_crash(void) {
    wr_timeline back = sentinel;
    const char *msg = NULL;
    CHECK_INT(wr_token_decode(NULL, NOW, NOW_US, TTL, KEY, strlen(KEY), NODES, &back, &msg), WR_TOKEN_MALFORMED);
    CHECK(untouched(&back));
    CHECK(msg != NULL);
    CHECK_INT(wr_token_decode(NULL, NOW, NOW_US, TTL, NULL, 0, NODES, NULL, NULL), WR_TOKEN_MALFORMED);
    CHECK_INT(wr_token_decode("1.0.-.0", NOW, NOW_US, 0, NULL, 0, NODES, NULL, NULL), WR_TOKEN_OK);
    CHECK_INT(wr_token_decode("1.0.-.0", NOW, NOW_US, 1, NULL, 0, NODES, NULL, NULL), WR_TOKEN_EXPIRED);
}

static void huge_inputs_are_rejected_without_reading_them_all(void) {
    /* WR_TOKEN_BUFSIZE bytes with no terminator, on the heap: the decoder
     * must stop there, or the sanitizer/valgrind complains. */
    char *raw = malloc(WR_TOKEN_BUFSIZE);
    CHECK(raw != NULL);
    if (!raw) return;
    memset(raw, '1', WR_TOKEN_BUFSIZE);
    wr_timeline back = sentinel;
    const char *msg = NULL;
    CHECK_INT(wr_token_decode(raw, NOW, NOW_US, TTL, NULL, 0, NODES, &back, &msg), WR_TOKEN_MALFORMED);
    CHECK_STR(msg, "token is too long");
    free(raw);

    size_t big = 1u << 20;
    char *huge = malloc(big + 1);
    CHECK(huge != NULL);
    if (!huge) return;
    memset(huge, 'a', big);
    huge[big] = '\0';
    memcpy(huge, "1.0.-.0.", 8);
    CHECK_INT(decode(huge, 0, &back), WR_TOKEN_MALFORMED);
    CHECK(untouched(&back));
    free(huge);

    /* WR_TOKEN_BUFSIZE - 1 characters is the most there is room for; one
     * more is too many. */
    char edge[WR_TOKEN_BUFSIZE + 1];
    memset(edge, '0', sizeof edge);
    memcpy(edge, "1.0.-.", 6);
    edge[WR_TOKEN_BUFSIZE - 1] = '\0';
    CHECK_INT(wr_token_decode(edge, NOW, NOW_US, TTL, NULL, 0, NODES, &back, &msg), WR_TOKEN_MALFORMED);
    CHECK_STR(msg, "token issue time is malformed"); /* read, then rejected on content */
    edge[WR_TOKEN_BUFSIZE - 1] = '0';
    edge[WR_TOKEN_BUFSIZE] = '\0';
    CHECK_INT(wr_token_decode(edge, NOW, NOW_US, TTL, NULL, 0, NODES, &back, &msg), WR_TOKEN_MALFORMED);
    CHECK_STR(msg, "token is too long");
}

static void random_garbage_is_rejected(void) {
    uint64_t x = 0x853C49E6748FEA9Bu;
    int accepted = 0;
    for (int i = 0; i < 100000; i++) {
        char buf[200];
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = x % sizeof buf;
        for (size_t j = 0; j < len; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[j] = (char)(x >> 24 | 1); /* never NUL */
        }
        buf[len] = '\0';
        wr_timeline back = sentinel;
        if (decode(buf, i % 2, &back) == WR_TOKEN_OK) accepted++;
    }
    CHECK_INT(accepted, 0);
}

static void mangled_tokens_never_decode_to_another_timeline(void) {
    /* Random edits (replace, delete, insert, swap) of a signed token, decoded
     * with the key: nothing but the original timeline may come out. */
    char good[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline(0x2A00001234u, 1);
    size_t len = encode(&t, 1, good);
    static const char abc[] = "0123456789abcdefABCDEF.-_xyz";
    uint64_t x = 0x9E3779B97F4A7C15u;
    int wrong = 0;
    for (int i = 0; i < 50000; i++) {
        char bad[WR_TOKEN_BUFSIZE + 2];
        memcpy(bad, good, len + 1);
        size_t blen = len;
        for (int edits = 1 + i % 3; edits > 0; edits--) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t pos = (x >> 8) % blen;
            char c = abc[(x >> 24) % (sizeof abc - 1)];
            switch (x % 4) {
            case 0: bad[pos] = c; break;
            case 1: if (blen > 1) { memmove(bad + pos, bad + pos + 1, blen - pos); blen--; } break;
            case 2: if (blen < WR_TOKEN_BUFSIZE) { memmove(bad + pos + 1, bad + pos, blen - pos + 1); bad[pos] = c; blen++; } break;
            default: if (pos + 1 < blen) { char s = bad[pos]; bad[pos] = bad[pos + 1]; bad[pos + 1] = s; } break;
            }
        }
        wr_timeline back = sentinel;
        wr_token_result r = decode(bad, 1, &back);
        if (r == WR_TOKEN_OK && strcmp(bad, good) != 0) wrong++;
        if (r != WR_TOKEN_OK && !untouched(&back)) wrong++;
    }
    CHECK_INT(wrong, 0);
}

static void messages_never_repeat_the_token_or_the_key(void) {
    static const char secret_key[] = "sup3r-s3cret-k3y";
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline(0xBEEF, 1);
    wr_token_encode(&t, NOW, secret_key, strlen(secret_key), buf, sizeof buf);
    char tampered[WR_TOKEN_BUFSIZE];
    memcpy(tampered, buf, sizeof buf);
    tampered[strlen(tampered) - 1] ^= 1;
    const char *inputs[] = {buf, tampered, "1.beef.1.65000000", "2.beef.1.65000000", "1.beef.1.6500ffff",
                            "1.beef.1.10", "1.BEEF.1.65000000", "<script>", NULL};
    for (size_t i = 0; i < N(inputs); i++) {
        for (int k = 0; k < 2; k++) {
            const char *msg = NULL;
            wr_timeline back;
            wr_token_decode(inputs[i], NOW, NOW_US, 60, k ? secret_key : NULL, k ? strlen(secret_key) : 0, NODES,
                            &back, &msg);
            CHECK(msg != NULL && msg[0] != '\0');
            if (!msg) continue;
            CHECK(strstr(msg, "s3cret") == NULL);
            CHECK(strstr(msg, "beef") == NULL && strstr(msg, "BEEF") == NULL);
            CHECK(strstr(msg, "6500") == NULL && strstr(msg, "script") == NULL);
        }
    }
}

/* ======================================================================== *
 * Version 2: wr_token_write / wr_token_read, and node identities
 * ======================================================================== */

/* Three nodes as two app servers list them: the same names, other orders. */
static const char *const NAMES_A[] = {"pg-a:5432", "pg-b:5432", "pg-c:5432"};
static const char *const NAMES_B[] = {"PG-C:5432", "pg-a:5432", "Pg-B:5432"};

static void ids_of(const char *const *names, size_t n, uint32_t *ids) {
    for (size_t i = 0; i < n; i++) ids[i] = wr_node_id(names[i]);
}

static wr_timeline timeline2(uint32_t tli, wr_lsn need, int last_node, int need_unknown) {
    wr_timeline t = timeline(need, last_node);
    t.need_tli = tli;
    t.need_unknown = need_unknown;
    return t;
}

/* Writes at NOW; with_key: signed with KEY. */
static size_t write2(const wr_timeline *t, const uint32_t *ids, size_t n, int with_key, char *buf) {
    return wr_token_write(t, ids, n, NOW, with_key ? KEY : NULL, with_key ? strlen(KEY) : 0, buf, WR_TOKEN_BUFSIZE);
}

/* Reads a NUL-terminated text at NOW with TTL; with_key: KEY required. */
static wr_token_result read2(const char *text, int with_key, const uint32_t *ids, size_t n, wr_timeline *t,
                             const char **msg) {
    return wr_token_read(text, strlen(text), NOW, NOW_US, TTL, with_key ? KEY : NULL, with_key ? strlen(KEY) : 0,
                         ids, n, t, msg);
}

/* FNV-1a 32 as written in its specification, without any case folding. */
static uint32_t plain_fnv1a(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

/* ---- node identity -------------------------------------------------------- */

static void a_node_id_is_fnv1a_of_its_name(void) {
    /* Reference values of FNV-1a 32 (and python3 for the last one). */
    CHECK_U64(wr_node_id(""), 0x811c9dc5u);
    CHECK_U64(wr_node_id("a"), 0xe40c292cu);
    CHECK_U64(wr_node_id("foobar"), 0xbf9cf968u);
    CHECK_U64(wr_node_id("pg-a:5432"), 0x7108911cu);
}

static void a_node_id_ignores_the_case_of_the_host_only(void) {
    CHECK_U64(wr_node_id("PG-A.Example.COM:5432"), wr_node_id("pg-a.example.com:5432"));
    CHECK_U64(wr_node_id("[FE80::1]:5432"), wr_node_id("[fe80::1]:5432")); /* the host ends at the last ':' */
    CHECK_U64(wr_node_id("DB"), wr_node_id("db"));                         /* no port: all host */
    /* After the last ':' nothing is folded (a port; a socket directory). */
    CHECK(wr_node_id("db:/TMP") != wr_node_id("db:/tmp"));
}

static void a_node_id_depends_on_the_port(void) {
    CHECK(wr_node_id("pg-a:5432") != wr_node_id("pg-a:5433"));
    CHECK(wr_node_id("pg-a:5432") != wr_node_id("pg-a"));
    CHECK(wr_node_id("pg-a:5432") != wr_node_id("pg-b:5432"));
}

static void a_node_id_is_never_zero(void) {
    /* Found by search: the one name here whose FNV-1a is 0. */
    static const char zero[] = "db712774312.internal:545";
    CHECK_U64(plain_fnv1a(zero), 0);
    CHECK_U64(wr_node_id(zero), 1);
    CHECK_U64(wr_node_id(NULL), 1);
}

/* ---- the text form -------------------------------------------------------- */

static void a_version_2_token_spells_every_field(void) {
    /* 2.<tli>.<need>.<node id>.<flags>.<issued>, lowercase hex. */
    static const uint32_t ids[] = {0x1, 0xabc, 0xdeadbeef};
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline2(3, 0x16B374D848u, 1, 1);
    CHECK_INT(write2(&t, ids, N(ids), 0, buf), 29);
    CHECK_STR(buf, "2.3.16b374d848.abc.1.65000000");
    t = timeline2(0x1F, 0x10, 2, 0);
    CHECK(write2(&t, ids, N(ids), 0, buf) > 0);
    CHECK_STR(buf, "2.1f.10.deadbeef.0.65000000");
    wr_timeline_init(&t);
    CHECK_INT(wr_token_write(&t, NULL, 0, 0, NULL, 0, buf, sizeof buf), 11);
    CHECK_STR(buf, "2.0.0.-.0.0");
}

static void need_unknown_is_flag_bit_0_whatever_its_value(void) {
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline2(1, 2, -1, 42), back = sentinel;
    CHECK(write2(&t, NULL, 0, 0, buf) > 0);
    CHECK_STR(buf, "2.1.2.-.1.65000000");
    CHECK_INT(read2(buf, 0, NULL, 0, &back, NULL), WR_TOKEN_OK);
    CHECK_INT(back.need_unknown, 1);
}

static void a_version_2_token_names_no_node_it_cannot_identify(void) {
    static const uint32_t ids[] = {0x1, 0xabc};
    static const int lasts[] = {-1, -2, 2, 3, INT_MAX, INT_MIN};
    char buf[WR_TOKEN_BUFSIZE];
    for (size_t i = 0; i < N(lasts); i++) {
        wr_timeline t = timeline2(1, 2, lasts[i], 0);
        CHECK(write2(&t, ids, N(ids), 0, buf) > 0);
        /* Nothing pending: no flag; pending on a node it cannot name: the
         * "pending" flag, so a reader keeps G2. */
        CHECK_STR(buf, lasts[i] == -1 ? "2.1.2.-.0.65000000" : "2.1.2.-.2.65000000");
    }
    wr_timeline t = timeline2(1, 2, 0, 0);
    CHECK(write2(&t, NULL, 2, 0, buf) > 0); /* no ids at all */
    CHECK_STR(buf, "2.1.2.-.2.65000000");
    CHECK(write2(&t, ids, 0, 0, buf) > 0);
    CHECK_STR(buf, "2.1.2.-.2.65000000");
}

static void a_signed_version_2_token_ends_with_the_hmac_of_everything_before_it(void) {
    /* Expected values from: printf '2.3.16b374d848.abc.1.65000000' |
     *   openssl dgst -sha256 -hmac k3y -binary | base64 | tr '+/' '-_' | tr -d = */
    static const uint32_t ids[] = {0x1, 0xabc};
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline2(3, 0x16B374D848u, 1, 1);
    CHECK_INT(write2(&t, ids, N(ids), 1, buf), 29 + 1 + 43);
    CHECK_STR(buf, "2.3.16b374d848.abc.1.65000000._kvrGmZejJjBcwoeBJ3VjkMvnmrXNqJAIA5sCn2Nk_U");
    wr_timeline_init(&t);
    CHECK(wr_token_write(&t, NULL, 0, 0, KEY, strlen(KEY), buf, sizeof buf) > 0);
    CHECK_STR(buf, "2.0.0.-.0.0.wiCEivZdo9UU1auCesYbD-jHQ6d0XVdmuZDHH2ZlPUg");
}

static void the_largest_version_2_token_fits_and_round_trips(void) {
    static const uint32_t ids[] = {UINT32_MAX};
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline2(UINT32_MAX, UINT64_MAX, 0, 1), back = sentinel;
    size_t len = wr_token_write(&t, ids, 1, INT64_MAX, KEY, strlen(KEY), buf, sizeof buf);
    CHECK_INT(len, 99); /* well inside WR_TOKEN_BUFSIZE */
    CHECK(strncmp(buf, "2.ffffffff.ffffffffffffffff.ffffffff.1.7fffffffffffffff.", 56) == 0);
    CHECK_INT(wr_token_read(buf, len, INT64_MAX, 9, 0, KEY, strlen(KEY), ids, 1, &back, NULL), WR_TOKEN_OK);
    CHECK_U64(back.need_tli, UINT32_MAX);
    CHECK_U64(back.need, UINT64_MAX);
    CHECK_INT(back.last_node, 0);
    CHECK_INT(back.need_unknown, 1);
}

static void writing_refuses_a_buffer_too_small(void) {
    wr_timeline t = timeline2(3, 0x16B374D848u, -1, 0);
    char *buf = malloc(28); /* on the heap: the sanitizer sees any overrun */
    CHECK(buf != NULL);
    if (!buf) return;
    CHECK_INT(wr_token_write(&t, NULL, 0, NOW, NULL, 0, buf, 28), 27);
    CHECK_STR(buf, "2.3.16b374d848.-.0.65000000");
    CHECK_INT(wr_token_write(&t, NULL, 0, NOW, NULL, 0, buf, 27), 0);
    CHECK_INT(wr_token_write(&t, NULL, 0, NOW, KEY, strlen(KEY), buf, 28), 0);
    CHECK_INT(wr_token_write(&t, NULL, 0, NOW, NULL, 5, buf, 28), 0); /* a key length without a key */
    CHECK_INT(wr_token_write(&t, NULL, 0, NOW, NULL, 0, buf, 0), 0);
    CHECK_INT(wr_token_write(&t, NULL, 0, NOW, NULL, 0, NULL, 28), 0);
    CHECK_INT(wr_token_write(NULL, NULL, 0, NOW, NULL, 0, buf, 28), 0);
    free(buf);
}

static void version_2_tokens_use_only_cookie_safe_characters(void) {
    uint64_t x = 0x2545F4914F6CDD1Du;
    int bad = 0;
    uint32_t ids[8];
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        for (size_t j = 0; j < N(ids); j++) ids[j] = (uint32_t)(x >> j * 4);
        wr_timeline t = timeline2((uint32_t)(x >> 17), x >> (x & 63), (int)(x % 10) - 1, (int)(x >> 40 & 1));
        char key[8];
        memcpy(key, &x, sizeof key);
        char buf[WR_TOKEN_BUFSIZE];
        size_t len = wr_token_write(&t, ids, N(ids), (int64_t)(x >> 1), key, i % 2 ? sizeof key : 0, buf,
                                    sizeof buf);
        if (len == 0 || len != strlen(buf) || strspn(buf, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                           "abcdefghijklmnopqrstuvwxyz._-") != len)
            bad++;
    }
    CHECK_INT(bad, 0);
}

/* ---- round trips ---------------------------------------------------------- */

static void a_version_2_token_gives_back_every_field(void) {
    static const uint32_t tlis[] = {0, 1, 0x10, UINT32_MAX};
    static const wr_lsn needs[] = {0, 1, 0x16B374D848u, UINT64_MAX};
    static const int lasts[] = {-1, 0, 1, 2};
    uint32_t ids[3];
    ids_of(NAMES_A, 3, ids);
    int wrong = 0;
    for (int with_key = 0; with_key < 2; with_key++)
        for (size_t a = 0; a < N(tlis); a++)
            for (size_t b = 0; b < N(needs); b++)
                for (size_t c = 0; c < N(lasts); c++)
                    for (int unknown = 0; unknown < 2; unknown++) {
                        char buf[WR_TOKEN_BUFSIZE];
                        wr_timeline t = timeline2(tlis[a], needs[b], lasts[c], unknown), back = sentinel;
                        size_t len = write2(&t, ids, 3, with_key, buf);
                        if (len == 0 ||
                            wr_token_read(buf, len, NOW, NOW_US, TTL, with_key ? KEY : NULL,
                                          with_key ? strlen(KEY) : 0, ids, 3, &back, NULL) != WR_TOKEN_OK ||
                            back.need_tli != tlis[a] || back.need != needs[b] || back.last_node != lasts[c] ||
                            back.need_unknown != unknown ||
                            back.last_read_us != NOW_US) /* conservative: only later probes bound the read */
                            wrong++;
                    }
    CHECK_INT(wrong, 0);
}

static void app_servers_listing_nodes_in_other_orders_agree_on_the_last_node(void) {
    uint32_t ids_a[3], ids_b[3];
    ids_of(NAMES_A, 3, ids_a);
    ids_of(NAMES_B, 3, ids_b); /* c, a, b — and some hosts in upper case */
    static const int a_to_b[] = {1, 2, 0};
    for (int i = 0; i < 3; i++) {
        char buf[WR_TOKEN_BUFSIZE];
        wr_timeline t = timeline2(2, 0x500, i, 0), back = sentinel;
        CHECK(write2(&t, ids_a, 3, 1, buf) > 0);
        CHECK_INT(read2(buf, 1, ids_b, 3, &back, NULL), WR_TOKEN_OK);
        CHECK_INT(back.last_node, a_to_b[i]);
        /* And back again. */
        char again[WR_TOKEN_BUFSIZE];
        CHECK(write2(&back, ids_b, 3, 1, again) > 0);
        CHECK_STR(again, buf);
    }
}

static void a_node_id_no_node_has_leaves_the_read_pending_on_no_known_node(void) {
    uint32_t ids[3];
    ids_of(NAMES_A, 3, ids);
    uint32_t other[2] = {wr_node_id("pg-d:5432"), wr_node_id("pg-a:5433")};
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline2(2, 0x500, 0, 0), back = sentinel;
    CHECK(write2(&t, ids, 3, 0, buf) > 0);
    CHECK_INT(read2(buf, 0, other, 2, &back, NULL), WR_TOKEN_OK);
    CHECK_INT(back.last_node, -2); /* G2: the next read elsewhere needs a bound */
    CHECK_U64(back.need, 0x500); /* the rest of the timeline still counts */
    CHECK_U64(back.need_tli, 2);
    back = sentinel;
    CHECK_INT(read2(buf, 0, NULL, 3, &back, NULL), WR_TOKEN_OK); /* no ids */
    CHECK_INT(back.last_node, -2); /* G2: the next read elsewhere needs a bound */
    back = sentinel;
    CHECK_INT(read2(buf, 0, ids, 0, &back, NULL), WR_TOKEN_OK); /* no nodes */
    CHECK_INT(back.last_node, -2); /* G2: the next read elsewhere needs a bound */
    back = sentinel;
    CHECK_INT(read2("2.2.500.0.0.65000000", 0, ids, 3, &back, NULL), WR_TOKEN_OK); /* no node has id 0 */
    CHECK_INT(back.last_node, -2); /* G2: the next read elsewhere needs a bound */
}

static void a_read_pending_on_an_unnamed_node_stays_pending_across_a_token(void) {
    uint32_t ids[3];
    ids_of(NAMES_A, 3, ids);
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline2(2, 0x500, -2, 0), back = sentinel;
    CHECK(write2(&t, ids, 3, 0, buf) > 0);
    CHECK(strstr(buf, ".-.2.") != NULL); /* no node named, flag "pending" */
    CHECK_INT(read2(buf, 0, ids, 3, &back, NULL), WR_TOKEN_OK);
    CHECK_INT(back.last_node, -2);
    t = timeline2(2, 0x500, -1, 0);
    CHECK(write2(&t, ids, 3, 0, buf) > 0);
    back = sentinel;
    CHECK_INT(read2(buf, 0, ids, 3, &back, NULL), WR_TOKEN_OK);
    CHECK_INT(back.last_node, -1); /* nothing pending */
}

static void version_1_tokens_still_read_with_timeline_0_and_no_last_node(void) {
    /* A version 1 node is an index into one process's DSN order: another
     * app server's index 2 may be any node, so it is dropped. */
    uint32_t ids[3];
    ids_of(NAMES_A, 3, ids);
    wr_timeline back = sentinel;
    CHECK_INT(read2("1.10.2.65000000", 0, ids, 3, &back, NULL), WR_TOKEN_OK);
    CHECK_U64(back.need, 0x10);
    CHECK_U64(back.need_tli, 0);
    CHECK_INT(back.need_unknown, 0);
    CHECK_INT(back.last_node, -2); /* its index means nothing here: pending on no known node */
    CHECK_U64(back.last_read_us, NOW_US);
    /* Signed (printf '1.10.2.65000000' | openssl dgst -sha256 -hmac k3y ...). */
    static const char v1_signed[] = "1.10.2.65000000.PsusBvNnJLz5CRkyjDDbhXTQrOY4UefjCrfjFJKnv40";
    back = sentinel;
    CHECK_INT(read2(v1_signed, 1, ids, 3, &back, NULL), WR_TOKEN_OK);
    CHECK_U64(back.need, 0x10);
    CHECK_INT(back.last_node, -2); /* its index means nothing here: pending on no known node */
    /* What wr_token_encode writes, wr_token_read reads. */
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline(0x16B374D848u, 1);
    CHECK(encode(&t, 1, buf) > 0);
    back = sentinel;
    CHECK_INT(read2(buf, 1, ids, 3, &back, NULL), WR_TOKEN_OK);
    CHECK_U64(back.need, 0x16B374D848u);
    /* The same strict rules as before. */
    static const char *const bad[] = {"1.010.2.65000000", "1.10.02.65000000", "1.A.2.65000000", "1.10.2",
                                      "1.10.2.65000000.", "1.10.-1.65000000", "1.10.2.8000000000000000"};
    for (size_t i = 0; i < N(bad); i++) {
        back = sentinel;
        CHECK_INT(read2(bad[i], 0, ids, 3, &back, NULL), WR_TOKEN_MALFORMED);
        CHECK(untouched(&back));
    }
    back = sentinel;
    CHECK_INT(read2("1.10.2.65000000", 1, ids, 3, &back, NULL), WR_TOKEN_BAD_SIGNATURE); /* a key wants a sig */
    CHECK(untouched(&back));
}

static void the_legacy_decoder_reads_only_version_1(void) {
    /* wr_token_decode has no node ids to map a version 2 node through. */
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline2(3, 0x500, -1, 0), back = sentinel;
    CHECK(write2(&t, NULL, 0, 0, buf) > 0);
    CHECK_INT(decode(buf, 0, &back), WR_TOKEN_BAD_VERSION);
    CHECK(untouched(&back));
}

static void the_legacy_decoder_writes_only_the_fields_a_0_1_timeline_has(void) {
    /* A caller built against 0.1 passes a wr_timeline of need, last_node and
     * last_read_us only: the rest of the struct is not its memory. */
    wr_timeline back = sentinel;
    CHECK_INT(decode("1.10.2.65000000", 0, &back), WR_TOKEN_OK);
    CHECK_U64(back.need, 0x10);
    CHECK_INT(back.last_node, 2);
    CHECK_U64(back.need_tli, sentinel.need_tli);
    CHECK_INT(back.need_unknown, sentinel.need_unknown);
    back = sentinel;
    CHECK_INT(wr_token_decode("1.10.2.0", NOW, NOW_US, TTL, NULL, 0, NODES, &back, NULL), WR_TOKEN_EXPIRED);
    CHECK_U64(back.need, 0);
    CHECK_INT(back.last_node, -1);
    CHECK_U64(back.need_tli, sentinel.need_tli);
    CHECK_INT(back.need_unknown, sentinel.need_unknown);
}

/* ---- exactly one spelling ------------------------------------------------- */

static void a_version_2_timeline_has_exactly_one_spelling(void) {
    static const char good[] = "2.3.16b374d848.abc.1.65000000";
    static const uint32_t ids[] = {0xabc};
    wr_timeline back = sentinel;
    CHECK_INT(read2(good, 0, ids, 1, &back, NULL), WR_TOKEN_OK);
    CHECK_INT(back.last_node, 0);
    static const char *const other[] = {
        /* leading zeros, field by field */
        "2.03.16b374d848.abc.1.65000000", "2.3.016b374d848.abc.1.65000000", "2.3.16b374d848.0abc.1.65000000",
        "2.3.16b374d848.abc.01.65000000", "2.3.16b374d848.abc.1.065000000", "2.00.0.-.0.0", "2.0.00.-.0.0",
        "2.0.0.00.0.0", "2.0.0.-.00.0", "2.0.0.-.0.00",
        /* upper case, field by field */
        "2.3.16B374D848.abc.1.65000000", "2.3.16b374d848.ABC.1.65000000", "2.3.16b374d848.Abc.1.65000000",
        "2.A.16b374d848.abc.1.65000000",
        /* other ways to say "none" or "unknown" */
        "2.3.16b374d848..1.65000000", "2.3.16b374d848.--.1.65000000", "2.3.16b374d848.x.1.65000000",
        "2.3.16b374d848.-0.1.65000000", "2.3.16b374d848.abc.-.65000000", "2.-.16b374d848.abc.1.65000000",
        "2.3.16b374d848.abc..65000000", "2..16b374d848.abc.1.65000000",
        /* flags: only bits 0 and 1 are known */
        "2.3.16b374d848.abc.4.65000000", "2.3.16b374d848.abc.7.65000000", "2.3.16b374d848.abc.f.65000000",
        "2.3.16b374d848.abc.80000000.65000000", "2.3.16b374d848.abc.100000001.65000000",
    };
    for (size_t i = 0; i < N(other); i++) {
        const char *msg = NULL;
        back = sentinel;
        wr_token_result r = read2(other[i], 0, ids, 1, &back, &msg);
        if (r != WR_TOKEN_MALFORMED) fprintf(stderr, "  \"%s\" gave %d\n", other[i], r);
        CHECK_INT(r, WR_TOKEN_MALFORMED);
        CHECK(untouched(&back));
        CHECK(msg != NULL && strncmp(msg, "token", 5) == 0);
    }
}

static void values_too_big_for_their_field_are_rejected(void) {
    static const char *const big[] = {
        "2.100000000.0.-.0.0",                 /* timeline > 2^32 - 1 */
        "2.fffffffff.0.-.0.0",                 /* 9 hex digits */
        "2.0.10000000000000000.-.0.0",         /* need: 17 hex digits */
        "2.0.fffffffffffffffff.-.0.0",
        "2.0.0.100000000.0.0",                 /* node id: 9 hex digits */
        "2.0.0.-.0.8000000000000000",          /* issued > INT64_MAX */
        "2.0.0.-.0.ffffffffffffffff", "2.0.0.-.0.10000000000000000",
    };
    for (size_t i = 0; i < N(big); i++) {
        wr_timeline back = sentinel;
        wr_token_result r = read2(big[i], 0, NULL, 0, &back, NULL);
        if (r != WR_TOKEN_MALFORMED) fprintf(stderr, "  \"%s\" gave %d\n", big[i], r);
        CHECK_INT(r, WR_TOKEN_MALFORMED);
        CHECK(untouched(&back));
    }
    /* The largest of each is fine. */
    wr_timeline back = sentinel;
    CHECK_INT(wr_token_read("2.ffffffff.ffffffffffffffff.ffffffff.1.7fffffffffffffff", 55, INT64_MAX, 0, 0, NULL,
                            0, NULL, 0, &back, NULL),
              WR_TOKEN_OK);
    CHECK_U64(back.need_tli, UINT32_MAX);
}

static void version_2_tokens_have_exactly_their_fields(void) {
    static const char *const bad[] = {
        "2", "2.", "2.0", "2.0.0", "2.0.0.-", "2.0.0.-.0", "2.0.0.-.0.", "2.0.0.-.0.0.", "2.0.0.-.0.0..",
        "2.0.0.-.0.0.x", "2.0.0.-.0.0.wiCEivZdo9UU1auCesYbD-jHQ6d0XVdmuZDHH2ZlPU",   /* 42 */
        "2.0.0.-.0.0.wiCEivZdo9UU1auCesYbD-jHQ6d0XVdmuZDHH2ZlPUgg", /* 44 */
        "2.0.0.-.0.0.wiCEivZdo9UU1auCesYbD-jHQ6d0XVdmuZDHH2ZlPUg.x", ".2.0.0.-.0.0", "2.0.0.-.0.0 ",
        "2.0.0.-.0.0=", "2,0,0,-,0,0", "2.0.0.+.0.0", "2.10.2.65000000", /* a version 1 shape */
    };
    for (size_t i = 0; i < N(bad); i++) {
        wr_timeline back = sentinel;
        const char *msg = NULL;
        wr_token_result r = read2(bad[i], 0, NULL, 0, &back, &msg);
        if (r != WR_TOKEN_MALFORMED) fprintf(stderr, "  \"%s\" gave %d\n", bad[i], r);
        CHECK_INT(r, WR_TOKEN_MALFORMED);
        CHECK(untouched(&back));
        CHECK(read2(bad[i], 1, NULL, 0, &back, NULL) != WR_TOKEN_OK);
    }
}

static void other_versions_are_rejected_by_the_reader_as_such(void) {
    static const char *const other[] = {"3.0.0.-.0.0", "0.0.0.-.0.0", "02.0.0.-.0.0", "22.0.0.-.0.0",
                                        "v2.0.0.-.0.0", "3", "a.b.c"};
    for (size_t i = 0; i < N(other); i++) {
        wr_timeline back = sentinel;
        const char *msg = NULL;
        CHECK_INT(read2(other[i], 0, NULL, 0, &back, &msg), WR_TOKEN_BAD_VERSION);
        CHECK_STR(msg, "token version is not supported");
        CHECK(untouched(&back));
    }
}

/* ---- keys and signatures -------------------------------------------------- */

static void a_signed_version_2_token_is_checked_with_a_key_and_accepted_without(void) {
    uint32_t ids[3];
    ids_of(NAMES_A, 3, ids);
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline2(4, 0x900, 2, 1), back = sentinel;
    CHECK(write2(&t, ids, 3, 1, buf) > 0);
    CHECK_INT(read2(buf, 1, ids, 3, &back, NULL), WR_TOKEN_OK);
    CHECK_INT(back.last_node, 2);
    back = sentinel;
    CHECK_INT(read2(buf, 0, ids, 3, &back, NULL), WR_TOKEN_OK); /* unchecked without a key */
    CHECK_U64(back.need, 0x900);

    const char *msg = NULL;
    char plain[WR_TOKEN_BUFSIZE];
    CHECK(write2(&t, ids, 3, 0, plain) > 0);
    back = sentinel;
    CHECK_INT(read2(plain, 1, ids, 3, &back, &msg), WR_TOKEN_BAD_SIGNATURE);
    CHECK_STR(msg, "token is not signed");
    CHECK(untouched(&back));

    char other[WR_TOKEN_BUFSIZE];
    CHECK(wr_token_write(&t, ids, 3, NOW, OTHER_KEY, strlen(OTHER_KEY), other, sizeof other) > 0);
    CHECK_INT(read2(other, 1, ids, 3, &back, &msg), WR_TOKEN_BAD_SIGNATURE);
    CHECK_STR(msg, "token signature does not match");
    CHECK(untouched(&back));
    CHECK_INT(wr_token_read(buf, strlen(buf), NOW, NOW_US, TTL, NULL, 5, ids, 3, &back, &msg),
              WR_TOKEN_BAD_SIGNATURE); /* a key length without a key */
    CHECK(untouched(&back));
}

static void every_altered_byte_of_a_signed_version_2_token_is_rejected(void) {
    uint32_t ids[3];
    ids_of(NAMES_A, 3, ids);
    char good[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline2(3, 0x16B374D848u, 1, 1);
    size_t len = write2(&t, ids, 3, 1, good);
    int accepted = 0, changed = 0;
    for (size_t pos = 0; pos < len; pos++) {
        for (int c = 0; c < 256; c++) { /* NUL included: the length is given */
            if (c == (unsigned char)good[pos]) continue;
            char bad[WR_TOKEN_BUFSIZE];
            memcpy(bad, good, len + 1);
            bad[pos] = (char)c;
            wr_timeline back = sentinel;
            wr_token_result r = wr_token_read(bad, len, NOW, NOW_US, TTL, KEY, strlen(KEY), ids, 3, &back, NULL);
            if (r == WR_TOKEN_OK) accepted++;
            if (r != WR_TOKEN_EXPIRED && !untouched(&back)) changed++;
        }
    }
    CHECK_INT(changed, 0);
    CHECK_INT(accepted, 0);
}

static void every_truncation_of_a_signed_version_2_token_is_rejected(void) {
    char good[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline2(3, 0x16B374D848u, -1, 0);
    size_t len = write2(&t, NULL, 0, 1, good);
    size_t unsigned_len = strlen("2.3.16b374d848.-.0.65000000");
    for (size_t cut = 0; cut < len; cut++) {
        wr_timeline back = sentinel;
        CHECK(wr_token_read(good, cut, NOW, NOW_US, TTL, KEY, strlen(KEY), NULL, 0, &back, NULL) != WR_TOKEN_OK);
        CHECK(untouched(&back));
        /* Without a key, a cut signature is still malformed. */
        if (cut > unsigned_len)
            CHECK_INT(wr_token_read(good, cut, NOW, NOW_US, TTL, NULL, 0, NULL, 0, &back, NULL), WR_TOKEN_MALFORMED);
    }
}

static void mangled_version_2_tokens_never_read_as_another_timeline(void) {
    uint32_t ids[3];
    ids_of(NAMES_A, 3, ids);
    char good[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline2(5, 0x2A00001234u, 1, 0);
    size_t len = write2(&t, ids, 3, 1, good);
    static const char abc[] = "0123456789abcdefABCDEF.-_xyz";
    uint64_t x = 0xD1B54A32D192ED03u;
    int wrong = 0;
    for (int i = 0; i < 50000; i++) {
        char bad[WR_TOKEN_BUFSIZE + 2];
        memcpy(bad, good, len + 1);
        size_t blen = len;
        for (int edits = 1 + i % 3; edits > 0; edits--) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t pos = (x >> 8) % blen;
            char c = abc[(x >> 24) % (sizeof abc - 1)];
            switch (x % 4) {
            case 0: bad[pos] = c; break;
            case 1: if (blen > 1) { memmove(bad + pos, bad + pos + 1, blen - pos); blen--; } break;
            case 2: if (blen < WR_TOKEN_BUFSIZE) { memmove(bad + pos + 1, bad + pos, blen - pos + 1); bad[pos] = c; blen++; } break;
            default: if (pos + 1 < blen) { char s = bad[pos]; bad[pos] = bad[pos + 1]; bad[pos + 1] = s; } break;
            }
        }
        wr_timeline back = sentinel;
        wr_token_result r = wr_token_read(bad, blen, NOW, NOW_US, TTL, KEY, strlen(KEY), ids, 3, &back, NULL);
        if (r == WR_TOKEN_OK && (blen != len || memcmp(bad, good, len) != 0)) wrong++;
        if (r != WR_TOKEN_OK && !untouched(&back)) wrong++;
    }
    CHECK_INT(wrong, 0);
}

/* ---- the length is exact -------------------------------------------------- */

static void a_nul_byte_inside_the_length_is_malformed(void) {
    static const char with_nul[] = "2.0.0.-.0.0\0garbage";
    wr_timeline back = sentinel;
    const char *msg = NULL;
    /* The whole buffer, garbage included. */
    CHECK_INT(wr_token_read(with_nul, sizeof with_nul - 1, NOW, NOW_US, 0, NULL, 0, NULL, 0, &back, &msg),
              WR_TOKEN_MALFORMED);
    CHECK_STR(msg, "token contains a NUL byte");
    CHECK(untouched(&back));
    /* Only the terminator added. */
    CHECK_INT(wr_token_read(with_nul, 12, NOW, NOW_US, 0, NULL, 0, NULL, 0, &back, &msg), WR_TOKEN_MALFORMED);
    CHECK_STR(msg, "token contains a NUL byte");
    /* A NUL in the middle, the rest a valid token. */
    char mid[] = "2.0.0.-.0.0";
    mid[5] = '\0';
    CHECK_INT(wr_token_read(mid, sizeof mid - 1, NOW, NOW_US, 0, NULL, 0, NULL, 0, &back, &msg), WR_TOKEN_MALFORMED);
    CHECK_STR(msg, "token contains a NUL byte");
    CHECK(untouched(&back));
    /* Exactly the string: fine. */
    CHECK_INT(wr_token_read(with_nul, 11, NOW, NOW_US, 0, NULL, 0, NULL, 0, &back, &msg), WR_TOKEN_OK);
}

static void only_text_len_bytes_are_read(void) {
    /* Buffers of exactly text_len bytes on the heap, with no terminator: the
     * sanitizer and valgrind see any read past them. */
    static const char token[] = "2.1.2.-.0.65000000";
    size_t len = sizeof token - 1;
    char *exact = malloc(len);
    CHECK(exact != NULL);
    if (!exact) return;
    memcpy(exact, token, len);
    wr_timeline back = sentinel;
    CHECK_INT(wr_token_read(exact, len, NOW, NOW_US, TTL, NULL, 0, NULL, 0, &back, NULL), WR_TOKEN_OK);
    CHECK_U64(back.need, 2);
    /* A prefix is read as itself (here: missing a field). */
    back = sentinel;
    CHECK_INT(wr_token_read(exact, len - 9, NOW, NOW_US, TTL, NULL, 0, NULL, 0, &back, NULL), WR_TOKEN_MALFORMED);
    CHECK(untouched(&back));
    free(exact);

    /* text_len larger than the string in it: its terminator is inside. */
    char *longer = malloc(len + 4);
    CHECK(longer != NULL);
    if (!longer) return;
    memcpy(longer, token, len + 1);
    memcpy(longer + len + 1, "abc", 3);
    const char *msg = NULL;
    CHECK_INT(wr_token_read(longer, len + 4, NOW, NOW_US, TTL, NULL, 0, NULL, 0, &back, &msg), WR_TOKEN_MALFORMED);
    CHECK_STR(msg, "token contains a NUL byte");
    CHECK(untouched(&back));
    free(longer);
}

static void a_length_beyond_any_token_is_refused_before_reading(void) {
    /* One byte of memory and a length that claims more: nothing is read. */
    char *one = malloc(1);
    CHECK(one != NULL);
    if (!one) return;
    one[0] = '2';
    wr_timeline back = sentinel;
    const char *msg = NULL;
    CHECK_INT(wr_token_read(one, WR_TOKEN_BUFSIZE, NOW, NOW_US, TTL, NULL, 0, NULL, 0, &back, &msg),
              WR_TOKEN_MALFORMED);
    CHECK_STR(msg, "token is too long");
    CHECK_INT(wr_token_read(one, SIZE_MAX, NOW, NOW_US, TTL, NULL, 0, NULL, 0, &back, &msg), WR_TOKEN_MALFORMED);
    CHECK_STR(msg, "token is too long");
    CHECK(untouched(&back));
    free(one);
    /* WR_TOKEN_BUFSIZE - 1 bytes are read (and rejected on content). */
    char edge[WR_TOKEN_BUFSIZE];
    memset(edge, '0', sizeof edge);
    memcpy(edge, "2.0.0.-.0.", 10);
    CHECK_INT(wr_token_read(edge, WR_TOKEN_BUFSIZE - 1, NOW, NOW_US, TTL, NULL, 0, NULL, 0, &back, &msg),
              WR_TOKEN_MALFORMED);
    CHECK_STR(msg, "token issue time is malformed");
}

static void an_empty_or_missing_token_is_malformed(void) {
    wr_timeline back = sentinel;
    const char *msg = NULL;
    CHECK_INT(wr_token_read("", 0, NOW, NOW_US, TTL, NULL, 0, NULL, 0, &back, &msg), WR_TOKEN_MALFORMED);
    CHECK_STR(msg, "empty token");
    CHECK_INT(wr_token_read("2.0.0.-.0.0", 0, NOW, NOW_US, TTL, KEY, strlen(KEY), NULL, 0, &back, &msg),
              WR_TOKEN_MALFORMED);
    CHECK_STR(msg, "empty token");
    CHECK(untouched(&back));
    CHECK_INT(wr_token_read(NULL, 5, NOW, NOW_US, TTL, NULL, 0, NULL, 0, &back, &msg), WR_TOKEN_MALFORMED);
    CHECK_STR(msg, "no token given");
    CHECK(untouched(&back));
    /* Null outputs are fine. */
    CHECK_INT(wr_token_read(NULL, 0, NOW, NOW_US, TTL, NULL, 0, NULL, 0, NULL, NULL), WR_TOKEN_MALFORMED);
    CHECK_INT(wr_token_read("2.0.0.-.0.0", 11, NOW, NOW_US, 0, NULL, 0, NULL, 0, NULL, NULL), WR_TOKEN_OK);
    CHECK_INT(wr_token_read("2.0.0.-.0.0", 11, NOW, NOW_US, 1, NULL, 0, NULL, 0, NULL, NULL), WR_TOKEN_EXPIRED);
}

/* ---- clocks --------------------------------------------------------------- */

static void an_expired_version_2_token_yields_an_empty_timeline(void) {
    static const uint32_t ids[] = {0xabc};
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline2(3, 500, 0, 1), back = sentinel;
    const char *msg = NULL;
    CHECK(wr_token_write(&t, ids, 1, NOW - TTL - 1, KEY, strlen(KEY), buf, sizeof buf) > 0);
    CHECK_INT(read2(buf, 1, ids, 1, &back, &msg), WR_TOKEN_EXPIRED);
    CHECK_STR(msg, "token has expired");
    CHECK_U64(back.need, 0);
    CHECK_U64(back.need_tli, 0);
    CHECK_INT(back.need_unknown, 0);
    CHECK_INT(back.last_node, -1);
    /* Exactly ttl old is still fresh; ttl 0 never expires. */
    CHECK(wr_token_write(&t, ids, 1, NOW - TTL, KEY, strlen(KEY), buf, sizeof buf) > 0);
    CHECK_INT(read2(buf, 1, ids, 1, &back, NULL), WR_TOKEN_OK);
    back = sentinel;
    CHECK_INT(wr_token_read("2.3.1f4.abc.1.0", 15, NOW, NOW_US, 0, NULL, 0, ids, 1, &back, NULL), WR_TOKEN_OK);
    CHECK_U64(back.need, 500);
    CHECK_INT(back.need_unknown, 1);
    /* An expired token must still be genuine. */
    back = sentinel;
    CHECK_INT(wr_token_read("2.3.1f4.abc.1.0", 15, NOW, NOW_US, TTL, KEY, strlen(KEY), ids, 1, &back, NULL),
              WR_TOKEN_BAD_SIGNATURE);
    CHECK(untouched(&back));
}

static void a_version_2_token_from_the_future_is_rejected_beyond_five_minutes_of_skew(void) {
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline2(3, 500, -1, 0), back = sentinel;
    const char *msg = NULL;
    CHECK(wr_token_write(&t, NULL, 0, NOW + 300, KEY, strlen(KEY), buf, sizeof buf) > 0);
    CHECK_INT(read2(buf, 1, NULL, 0, &back, NULL), WR_TOKEN_OK);
    back = sentinel;
    CHECK(wr_token_write(&t, NULL, 0, NOW + 301, KEY, strlen(KEY), buf, sizeof buf) > 0);
    CHECK_INT(read2(buf, 1, NULL, 0, &back, &msg), WR_TOKEN_FUTURE);
    CHECK_STR(msg, "token was issued in the future");
    CHECK(untouched(&back));
    /* Extreme clocks do not overflow. */
    CHECK_INT(wr_token_read("2.0.0.-.0.7fffffffffffffff", 26, INT64_MIN, 0, TTL, NULL, 0, NULL, 0, &back, NULL),
              WR_TOKEN_FUTURE);
    CHECK_INT(wr_token_read("2.0.0.-.0.5", 11, -5, 0, TTL, NULL, 0, NULL, 0, &back, NULL), WR_TOKEN_OK);
    CHECK_INT(wr_token_read("2.0.0.-.0.0", 11, INT64_MAX, 0, 1, NULL, 0, NULL, 0, &back, NULL), WR_TOKEN_EXPIRED);
}

/* ---- hostile input -------------------------------------------------------- */

static void random_bytes_are_never_accepted(void) {
    uint64_t x = 0x853C49E6748FEA9Bu;
    int accepted = 0;
    uint32_t ids[3];
    ids_of(NAMES_A, 3, ids);
    for (int i = 0; i < 100000; i++) {
        char buf[200];
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = x % sizeof buf;
        for (size_t j = 0; j < len; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[j] = (char)(x >> 24); /* NUL included */
        }
        wr_timeline back = sentinel;
        if (wr_token_read(buf, len, NOW, NOW_US, TTL, i % 2 ? KEY : NULL, i % 2 ? strlen(KEY) : 0, ids, 3, &back,
                          NULL) == WR_TOKEN_OK)
            accepted++;
    }
    CHECK_INT(accepted, 0);
}

static void reader_messages_never_repeat_the_token_or_the_key(void) {
    static const char secret_key[] = "sup3r-s3cret-k3y";
    static const uint32_t ids[] = {0xabc};
    char buf[WR_TOKEN_BUFSIZE];
    wr_timeline t = timeline2(0xcafe, 0xBEEF, 0, 1);
    wr_token_write(&t, ids, 1, NOW, secret_key, strlen(secret_key), buf, sizeof buf);
    char tampered[WR_TOKEN_BUFSIZE];
    memcpy(tampered, buf, sizeof buf);
    tampered[strlen(tampered) - 1] ^= 1;
    const char *inputs[] = {buf, tampered, "2.cafe.beef.abc.1.65000000", "2.cafe.beef.abc.2.65000000",
                            "2.cafe.beef.abc.1.6500ffff", "2.cafe.beef.abc.1.10", "2.CAFE.BEEF.abc.1.65000000",
                            "3.cafe.beef", "1.beef.1.65000000", "<script>", "", NULL};
    for (size_t i = 0; i < N(inputs); i++) {
        for (int k = 0; k < 2; k++) {
            const char *msg = NULL;
            wr_timeline back;
            wr_token_read(inputs[i], inputs[i] ? strlen(inputs[i]) : 0, NOW, NOW_US, 60, k ? secret_key : NULL,
                          k ? strlen(secret_key) : 0, ids, 1, &back, &msg);
            CHECK(msg != NULL && msg[0] != '\0');
            if (!msg) continue;
            CHECK(strstr(msg, "s3cret") == NULL);
            CHECK(strstr(msg, "beef") == NULL && strstr(msg, "BEEF") == NULL);
            CHECK(strstr(msg, "cafe") == NULL && strstr(msg, "CAFE") == NULL);
            CHECK(strstr(msg, "6500") == NULL && strstr(msg, "script") == NULL);
        }
    }
}

int main(void) {
    RUN(an_unsigned_token_spells_the_timeline_compactly);
    RUN(a_signed_token_ends_with_the_hmac_of_everything_before_it);
    RUN(a_negative_clock_is_written_as_time_zero);
    RUN(the_largest_timeline_fits_and_round_trips);
    RUN(encoding_refuses_a_buffer_too_small);
    RUN(tokens_use_only_cookie_safe_characters);
    RUN(a_token_gives_back_the_timeline_with_or_without_a_key);
    RUN(a_signed_token_is_accepted_unchecked_without_a_key);
    RUN(a_last_node_this_cluster_does_not_have_is_dropped);
    RUN(an_unsigned_token_is_rejected_when_a_key_is_set);
    RUN(a_token_signed_with_another_key_is_rejected);
    RUN(a_key_length_without_key_bytes_cannot_sign_or_check);
    RUN(every_altered_character_of_a_signed_token_is_rejected);
    RUN(every_truncation_of_a_signed_token_is_rejected);
    RUN(anything_appended_to_a_signed_token_is_rejected);
    RUN(other_versions_are_rejected_as_such);
    RUN(an_expired_token_yields_an_empty_timeline);
    RUN(an_expired_token_must_still_be_genuine);
    RUN(a_token_from_the_future_is_rejected_beyond_five_minutes_of_skew);
    RUN(malformed_tokens_are_rejected_and_change_nothing);
    RUN(null_text_and_null_outputs_do_not_crash);
    RUN(huge_inputs_are_rejected_without_reading_them_all);
    RUN(random_garbage_is_rejected);
    RUN(mangled_tokens_never_decode_to_another_timeline);
    RUN(messages_never_repeat_the_token_or_the_key);
    RUN(a_node_id_is_fnv1a_of_its_name);
    RUN(a_node_id_ignores_the_case_of_the_host_only);
    RUN(a_node_id_depends_on_the_port);
    RUN(a_node_id_is_never_zero);
    RUN(a_version_2_token_spells_every_field);
    RUN(need_unknown_is_flag_bit_0_whatever_its_value);
    RUN(a_version_2_token_names_no_node_it_cannot_identify);
    RUN(a_signed_version_2_token_ends_with_the_hmac_of_everything_before_it);
    RUN(the_largest_version_2_token_fits_and_round_trips);
    RUN(writing_refuses_a_buffer_too_small);
    RUN(version_2_tokens_use_only_cookie_safe_characters);
    RUN(a_version_2_token_gives_back_every_field);
    RUN(app_servers_listing_nodes_in_other_orders_agree_on_the_last_node);
    RUN(a_node_id_no_node_has_leaves_the_read_pending_on_no_known_node);
    RUN(version_1_tokens_still_read_with_timeline_0_and_no_last_node);
    RUN(a_read_pending_on_an_unnamed_node_stays_pending_across_a_token);
    RUN(the_legacy_decoder_reads_only_version_1);
    RUN(the_legacy_decoder_writes_only_the_fields_a_0_1_timeline_has);
    RUN(a_version_2_timeline_has_exactly_one_spelling);
    RUN(values_too_big_for_their_field_are_rejected);
    RUN(version_2_tokens_have_exactly_their_fields);
    RUN(other_versions_are_rejected_by_the_reader_as_such);
    RUN(a_signed_version_2_token_is_checked_with_a_key_and_accepted_without);
    RUN(every_altered_byte_of_a_signed_version_2_token_is_rejected);
    RUN(every_truncation_of_a_signed_version_2_token_is_rejected);
    RUN(mangled_version_2_tokens_never_read_as_another_timeline);
    RUN(a_nul_byte_inside_the_length_is_malformed);
    RUN(only_text_len_bytes_are_read);
    RUN(a_length_beyond_any_token_is_refused_before_reading);
    RUN(an_empty_or_missing_token_is_malformed);
    RUN(an_expired_version_2_token_yields_an_empty_timeline);
    RUN(a_version_2_token_from_the_future_is_rejected_beyond_five_minutes_of_skew);
    RUN(random_bytes_are_never_accepted);
    RUN(reader_messages_never_repeat_the_token_or_the_key);
    return check_exit();
}
