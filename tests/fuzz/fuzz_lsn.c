/* fuzz_lsn.c — wr_lsn_parse, wr_lsn_format and wr_lsn_record_end.
 *   - parse accepts exactly "X/Y" with 1-8 hex digits a side, and what it
 *     accepts formats back to the same value (and to PostgreSQL's spelling:
 *     uppercase, no leading zeros), which parses again to the same value;
 *   - a rejected text leaves the output untouched;
 *   - record_end never moves a position forward, moves it back only by a
 *     page header's size, only onto a page boundary, and returns the
 *     position unchanged for block/segment sizes that do not divide. */
#include <ctype.h>

#include "fuzz_util.h"
#include "walrouter_engine.h"

static int well_formed(const char *s) {
    const char *slash = strchr(s, '/');
    if (!slash || strchr(slash + 1, '/')) return 0;
    size_t hi = (size_t)(slash - s), lo = strlen(slash + 1);
    if (hi < 1 || hi > 8 || lo < 1 || lo > 8) return 0;
    for (const char *p = s; *p; p++)
        if (p != slash && !isxdigit((unsigned char)*p)) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char text[64];
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    wr_lsn got = 0x1234, again = 0;
    int ok = wr_lsn_parse(text, &got) == 0;
    FZ_REQUIRE(ok == well_formed(text));
    if (!ok) FZ_REQUIRE(got == 0x1234);
    if (ok) {
        char buf[WR_LSN_BUFSIZE];
        FZ_REQUIRE(wr_lsn_format(got, buf) == buf);
        FZ_REQUIRE(wr_lsn_parse(buf, &again) == 0 && again == got);
        char expect[WR_LSN_BUFSIZE];
        snprintf(expect, sizeof expect, "%X/%X", (unsigned)(got >> 32), (unsigned)got);
        FZ_REQUIRE(strcmp(buf, expect) == 0);
    }

    fz_bytes b = {data, size};
    wr_lsn insert = fz_u64(&b);
    uint32_t block = fz_u8(&b) & 1 ? 8192 : fz_u32(&b);
    uint64_t segment = fz_u8(&b) & 1 ? 16u << 20 : fz_u64(&b);
    wr_lsn end = wr_lsn_record_end(insert, block, segment);
    FZ_REQUIRE(end <= insert);
    if (end != insert) {
        FZ_REQUIRE(block != 0 && segment != 0 && segment % block == 0);
        FZ_REQUIRE(end % block == 0);
        FZ_REQUIRE(insert - end == 24 || insert - end == 40); /* short or long page header */
    }
    return 0;
}
