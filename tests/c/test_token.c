/* test_token.c — session tokens: the exact text form, round trips with and
 * without a key, and a decoder that treats its input as hostile (tampering,
 * truncation, versions, clocks, garbage) without ever crashing. */
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
static const wr_timeline sentinel = {.need = 0xABCDEF, .last_node = 9, .last_read_us = 1234};

static int untouched(const wr_timeline *t) {
    return t->need == sentinel.need && t->last_node == sentinel.last_node &&
           t->last_read_us == sentinel.last_read_us;
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
    /* 128 bytes with no terminator, on the heap: the decoder must stop at
     * WR_TOKEN_BUFSIZE - 1 characters, or the sanitizer/valgrind complains. */
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

    /* 127 characters is the most there is room for; 128 is too many. */
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
    return check_exit();
}
