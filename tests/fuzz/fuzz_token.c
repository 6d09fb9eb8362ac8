/* fuzz_token.c — libFuzzer target for wr_token_read (and the legacy
 * wr_token_decode): arbitrary bytes, with and without a key, must never
 * crash or read out of bounds, and whatever is accepted must be exactly one
 * token's spelling.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icore/include \
 *     tests/fuzz/fuzz_token.c core/engine/token.c core/engine/timeline.c \
 *     core/engine/lsn.c -lcrypto -o /tmp/fuzz_token
 *   /tmp/fuzz_token -max_total_time=60 [corpus dir]
 *
 * Checked for every input and every configuration (key or not, ttl):
 *   - the result is one of wr_token_result, with a static message that is
 *     not a pointer into the input;
 *   - an error leaves the timeline untouched; EXPIRED leaves it empty;
 *   - OK means: fewer than WR_TOKEN_BUFSIZE cookie-safe bytes, no NUL,
 *     last_read_us = now_us, last_node -1 or a valid index, and the text is
 *     what the writer makes of that timeline (version 2: wr_token_write;
 *     version 1: wr_token_encode) — byte for byte when unsigned, and also
 *     when signed if the key checked the signature;
 *   - the legacy decoder agrees with the reader on anything but version 2. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "walrouter_engine.h"

#define NOW 0x65000000
#define NOW_US 777000u

static const char KEY[] = "k3y";

/* A few node ids, small ones too so the fuzzer finds them. */
static const uint32_t IDS[] = {0x1, 0xabc, 0x7108911c /* pg-a:5432 */, 0xffffffff};
#define NIDS (sizeof IDS / sizeof IDS[0])

static const wr_timeline SENTINEL = {
    .need = 0xABCDEF, .last_node = 9, .last_read_us = 1234, .need_tli = 77, .need_unknown = 5};

static void fail(const char *what, const uint8_t *data, size_t size) {
    fprintf(stderr, "fuzz_token: %s; input (%zu bytes):", what, size);
    for (size_t i = 0; i < size && i < 200; i++) fprintf(stderr, " %02x", data[i]);
    fprintf(stderr, "\n");
    abort();
}

#define REQUIRE(cond) do { if (!(cond)) fail(#cond, data, size); } while (0)

static int same(const wr_timeline *a, const wr_timeline *b) {
    return a->need == b->need && a->last_node == b->last_node && a->last_read_us == b->last_read_us &&
           a->need_tli == b->need_tli && a->need_unknown == b->need_unknown;
}

static int is_token_char(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '.' ||
           c == '_' || c == '-';
}

/* Field i (0-based, split on '.') of the NUL-terminated text s, copied into
 * out (at most WR_TOKEN_BUFSIZE bytes). Returns 0, or -1 if there is none. */
static int field_of(const char *s, int i, char out[WR_TOKEN_BUFSIZE]) {
    for (; i > 0; i--) {
        s = strchr(s, '.');
        if (!s) return -1;
        s++;
    }
    size_t len = strcspn(s, ".");
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

static int count_fields(const char *s) {
    int n = 1;
    for (; *s; s++) n += *s == '.';
    return n;
}

/* An accepted token: check that it is the writer's spelling of what was read. */
static void check_accepted(const uint8_t *data, size_t size, const char *text, const wr_timeline *t,
                           int with_key) {
    char f[WR_TOKEN_BUFSIZE], again[WR_TOKEN_BUFSIZE];
    REQUIRE(size < WR_TOKEN_BUFSIZE);
    for (size_t i = 0; i < size; i++) REQUIRE(is_token_char(data[i]));
    REQUIRE(t->last_read_us == NOW_US);
    int nf = count_fields(text);
    if (text[0] == '2') {
        REQUIRE(nf == 6 || nf == 7);
        REQUIRE(t->last_node >= -2 && t->last_node < (int)NIDS);
        REQUIRE(t->need_unknown == 0 || t->need_unknown == 1);
        REQUIRE(field_of(text, 5, f) == 0);
        int64_t issued = (int64_t)strtoull(f, NULL, 16);
        /* A node id none of IDS has left the read pending on no known node
         * (-2): add it as one more node so the writer spells it again. A
         * pending read without a node ("-", flag 2) is spelled as read. */
        uint32_t ids[NIDS + 1];
        memcpy(ids, IDS, sizeof IDS);
        wr_timeline w = *t;
        REQUIRE(field_of(text, 3, f) == 0);
        if (t->last_node == -2 && strcmp(f, "-") != 0) {
            ids[NIDS] = (uint32_t)strtoul(f, NULL, 16);
            for (size_t j = 0; j < NIDS; j++) REQUIRE(IDS[j] != ids[NIDS]);
            w.last_node = (int)NIDS;
        }
        int is_signed = nf == 7;
        if (is_signed && !with_key) {
            /* The signature went unchecked: the text before it must match. */
            size_t len = wr_token_write(&w, ids, NIDS + 1, issued, NULL, 0, again, sizeof again);
            REQUIRE(len > 0 && len + 44 == size && memcmp(again, text, len) == 0 && text[len] == '.');
        } else {
            REQUIRE(!with_key || is_signed);
            size_t len = wr_token_write(&w, ids, NIDS + 1, issued, with_key ? KEY : NULL,
                                        with_key ? strlen(KEY) : 0, again, sizeof again);
            REQUIRE(len == size && memcmp(again, text, size) == 0);
        }
    } else {
        REQUIRE(text[0] == '1');
        REQUIRE(nf == 4 || nf == 5);
        REQUIRE(t->need_tli == 0 && t->need_unknown == 0);
        /* The index means nothing here: pending on no known node (-2); the
         * legacy decoder keeps it. */
        REQUIRE(field_of(text, 2, f) == 0);
        REQUIRE(t->last_node == (strcmp(f, "-") == 0 ? -1 : -2));
        wr_timeline legacy = SENTINEL;
        REQUIRE(wr_token_decode(text, NOW, NOW_US, 0, with_key ? KEY : NULL, with_key ? strlen(KEY) : 0,
                                (size_t)1 << 40, &legacy, NULL) == WR_TOKEN_OK);
        REQUIRE(legacy.need == t->need);
        REQUIRE(field_of(text, 3, f) == 0);
        int64_t issued = (int64_t)strtoull(f, NULL, 16);
        /* The one documented exception to one spelling: version 1 indexes
         * past INT_MAX all read as INT_MAX (no cluster has that node). */
        REQUIRE(field_of(text, 2, f) == 0);
        if (strcmp(f, "-") != 0 && strtoull(f, NULL, 10) > INT_MAX) {
            REQUIRE(legacy.last_node == INT_MAX);
            return;
        }
        size_t len = wr_token_encode(&legacy, issued, with_key ? KEY : NULL, with_key ? strlen(KEY) : 0, again,
                                     sizeof again);
        if (nf == 5 && !with_key)
            REQUIRE(len > 0 && len + 44 == size && memcmp(again, text, len) == 0 && text[len] == '.');
        else
            REQUIRE(len == size && memcmp(again, text, size) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A copy of exactly size bytes, so the sanitizer sees any read past it,
     * and a NUL-terminated one for the legacy decoder and the checks. */
    char *exact = malloc(size ? size : 1);
    char *text = malloc(size + 1);
    if (!exact || !text) abort();
    memcpy(exact, data, size);
    memcpy(text, data, size);
    text[size] = '\0';
    int has_nul = memchr(data, '\0', size) != NULL;
    int is_v2 = size >= 2 && data[0] == '2' && data[1] == '.';
    if (size == 1 && data[0] == '2') is_v2 = 1;

    static const struct {
        int with_key;
        uint32_t ttl;
    } configs[] = {{0, 0}, {0, 3600}, {1, 0}, {1, 3600}};
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
        int with_key = configs[c].with_key;
        const void *key = with_key ? KEY : NULL;
        size_t key_len = with_key ? strlen(KEY) : 0;
        wr_timeline t = SENTINEL;
        const char *msg = NULL;
        wr_token_result r = wr_token_read(exact, size, NOW, NOW_US, configs[c].ttl, key, key_len, IDS, NIDS, &t,
                                          &msg);
        REQUIRE(r >= WR_TOKEN_OK && r <= WR_TOKEN_FUTURE);
        REQUIRE(msg != NULL && msg[0] != '\0');
        REQUIRE(!(msg >= exact && msg < exact + size)); /* a static message */
        if (r == WR_TOKEN_OK) {
            REQUIRE(!has_nul);
            check_accepted(data, size, text, &t, with_key);
        } else if (r == WR_TOKEN_EXPIRED) {
            REQUIRE(configs[c].ttl != 0);
            REQUIRE(t.need == 0 && t.need_tli == 0 && t.need_unknown == 0 && t.last_node == -1);
        } else {
            REQUIRE(same(&t, &SENTINEL));
        }
        if (r == WR_TOKEN_BAD_SIGNATURE) REQUIRE(with_key);

        /* The legacy decoder reads the same bytes alike, version 2 aside
         * (it has none), and "" aside (same result, its own message). */
        if (!has_nul && !is_v2) {
            wr_timeline legacy = SENTINEL;
            const char *lmsg = NULL;
            wr_token_result lr = wr_token_decode(text, NOW, NOW_US, configs[c].ttl, key, key_len, NIDS, &legacy,
                                                 &lmsg);
            REQUIRE(lr == r);
            REQUIRE(lmsg != NULL && (size == 0 || strcmp(lmsg, msg) == 0));
            if (lr != WR_TOKEN_OK && lr != WR_TOKEN_EXPIRED) REQUIRE(same(&legacy, &SENTINEL));
            /* Only the fields of a 0.1 timeline. */
            REQUIRE(legacy.need_tli == SENTINEL.need_tli && legacy.need_unknown == SENTINEL.need_unknown);
        } else if (is_v2 && !has_nul) {
            wr_timeline legacy = SENTINEL;
            wr_token_result lr = wr_token_decode(text, NOW, NOW_US, configs[c].ttl, key, key_len, NIDS, &legacy,
                                                 NULL);
            REQUIRE(lr == WR_TOKEN_BAD_VERSION || lr == WR_TOKEN_MALFORMED); /* too long, bad bytes */
            REQUIRE(same(&legacy, &SENTINEL));
        }
    }
    REQUIRE(wr_node_id(text) != 0); /* any name: never 0, never out of bounds */
    free(exact);
    free(text);
    return 0;
}
