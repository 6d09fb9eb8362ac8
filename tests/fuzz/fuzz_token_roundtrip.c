/* fuzz_token_roundtrip.c — any timeline, written as a token
 * (wr_token_write, with or without a key) and read back (wr_token_read) by
 * a process whose DSN lists the same nodes in another order, is the same
 * timeline: same need, timeline, unknown-outcome flag; the last node named
 * by identity (mapped to its index there), or pending on no known node (-2)
 * when it could not be named; last_read_us = now. A key that differs in
 * any byte refuses it. The legacy pair (wr_token_encode/decode) keeps need
 * and an in-range last node the same way. */
#include <limits.h>

#include "fuzz_util.h"
#include "walrouter_engine.h"

#define NOW 0x65000000
#define NOW_US 4242u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_bytes b = {data, size};
    wr_timeline t;
    wr_timeline_init(&t);
    t.need = fz_u64(&b);
    t.need_tli = fz_u32(&b);
    t.need_unknown = fz_u8(&b) & 1;
    int32_t last = (int32_t)fz_u32(&b);
    uint8_t shape = fz_u8(&b);
    t.last_node = shape & 1 ? last : (int)(last % 6) - 2; /* small ones often */
    t.last_read_us = fz_u64(&b);
    char key[40];
    size_t key_len = fz_str(&b, key, sizeof key - 1);

    /* Three nodes; the reader lists them rotated by one. */
    uint32_t ids[3] = {wr_node_id("pg-a:5432"), wr_node_id("pg-b:5432"), wr_node_id("pg-c:5433")};
    uint32_t rotated[3] = {ids[1], ids[2], ids[0]};
    char text[WR_TOKEN_BUFSIZE];
    size_t len = wr_token_write(&t, ids, 3, NOW, key_len ? key : NULL, key_len, text, sizeof text);
    FZ_REQUIRE(len > 0 && len == strlen(text));
    wr_timeline back;
    const char *msg = NULL;
    wr_token_result r = wr_token_read(text, len, NOW, NOW_US, 3600, key_len ? key : NULL, key_len, rotated, 3,
                                      &back, &msg);
    FZ_REQUIRE(r == WR_TOKEN_OK);
    FZ_REQUIRE(back.need == t.need && back.need_tli == t.need_tli && back.need_unknown == t.need_unknown);
    FZ_REQUIRE(back.last_read_us == NOW_US);
    int expect = t.last_node == -1 ? -1 : t.last_node >= 0 && t.last_node < 3 ? (t.last_node + 2) % 3 : -2;
    FZ_REQUIRE(back.last_node == expect);
    if (key_len) {
        key[fz_u8(&b) % key_len] ^= (char)(1 + fz_u8(&b) % 255);
        wr_timeline other = back;
        FZ_REQUIRE(wr_token_read(text, len, NOW, NOW_US, 3600, key, key_len, ids, 3, &other, NULL) ==
                   WR_TOKEN_BAD_SIGNATURE);
        FZ_REQUIRE(memcmp(&other, &back, sizeof other) == 0);
    }

    /* Legacy: by index, only the fields of a 0.1 timeline. */
    wr_timeline legacy = t, lback;
    wr_timeline_init(&lback);
    len = wr_token_encode(&legacy, NOW, NULL, 0, text, sizeof text);
    FZ_REQUIRE(len > 0);
    FZ_REQUIRE(wr_token_decode(text, NOW, NOW_US, 0, NULL, 0, 3, &lback, NULL) == WR_TOKEN_OK);
    FZ_REQUIRE(lback.need == t.need);
    FZ_REQUIRE(lback.last_node == (t.last_node >= 0 && t.last_node < 3 ? t.last_node : -1));
    return 0;
}
