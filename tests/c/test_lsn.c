/* test_lsn.c — WAL positions as text: PostgreSQL's "X/Y" form, parsed
 * strictly and formatted exactly as the server prints it. */
#include <stdlib.h>

#include "check.h"
#include "walrouter_decide.h"

static wr_lsn parsed(const char *text) {
    wr_lsn v = 0xDEADBEEF;
    CHECK_INT(wr_lsn_parse(text, &v), 0);
    return v;
}

/* Rejected, and the output left alone. */
static int rejects(const char *text) {
    wr_lsn v = 0x1234;
    int ok = wr_lsn_parse(text, &v) == -1 && v == 0x1234;
    if (!ok) fprintf(stderr, "  accepted \"%s\"\n", text ? text : "(null)");
    return ok;
}

static void parses_the_text_postgres_prints(void) {
    CHECK_U64(parsed("16/B374D848"), 0x16B374D848u);
    CHECK_U64(parsed("0/0"), 0);
    CHECK_U64(parsed("0/1"), 1);
    CHECK_U64(parsed("1/0"), 0x100000000u);
    CHECK_U64(parsed("FFFFFFFF/FFFFFFFF"), UINT64_MAX);
    CHECK_U64(parsed("0/3000148"), 0x3000148u);
}

static void accepts_lower_case_and_leading_zeros(void) {
    CHECK_U64(parsed("16/b374d848"), 0x16B374D848u);
    CHECK_U64(parsed("aBcD/eF01"), 0xABCD0000EF01u);
    CHECK_U64(parsed("00000000/00000000"), 0);
    CHECK_U64(parsed("00000001/0000000a"), 0x10000000Au);
}

static void formats_like_postgres_in_upper_case_without_leading_zeros(void) {
    char buf[WR_LSN_BUFSIZE];
    CHECK_STR(wr_lsn_format(0x16B374D848u, buf), "16/B374D848");
    CHECK_STR(wr_lsn_format(0, buf), "0/0");
    CHECK_STR(wr_lsn_format(1, buf), "0/1");
    CHECK_STR(wr_lsn_format(0xA, buf), "0/A");
    CHECK_STR(wr_lsn_format(0x100000000u, buf), "1/0");
    CHECK_STR(wr_lsn_format(0x0000000F0000000Fu, buf), "F/F");
    CHECK_STR(wr_lsn_format(0x10000000u, buf), "0/10000000");
    CHECK_STR(wr_lsn_format(UINT64_MAX, buf), "FFFFFFFF/FFFFFFFF");
    CHECK(wr_lsn_format(1, buf) == buf);
    CHECK(wr_lsn_format(1, NULL) == NULL);
}

static void the_longest_text_fits_the_buffer_exactly(void) {
    /* On the heap, so the sanitizer sees a write past WR_LSN_BUFSIZE. */
    char *buf = malloc(WR_LSN_BUFSIZE);
    CHECK(buf != NULL);
    if (!buf) return;
    CHECK_STR(wr_lsn_format(UINT64_MAX, buf), "FFFFFFFF/FFFFFFFF");
    CHECK_INT(strlen(buf), WR_LSN_BUFSIZE - 1);
    free(buf);
}

static void format_then_parse_gives_back_every_value(void) {
    static const wr_lsn edges[] = {0, 1, 0xF, 0x10, 0xFFFFFFFFu, 0x100000000u, 0x100000001u,
                                   0x7FFFFFFFFFFFFFFFu, 0x8000000000000000u, UINT64_MAX - 1, UINT64_MAX};
    char buf[WR_LSN_BUFSIZE];
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        CHECK_U64(parsed(wr_lsn_format(edges[i], buf)), edges[i]);
    uint64_t x = 0x9E3779B97F4A7C15u;
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        /* Vary the width of both halves, not just their bits. */
        wr_lsn v = x >> (x & 63);
        wr_lsn back = 0;
        if (wr_lsn_parse(wr_lsn_format(v, buf), &back) != 0 || back != v) bad++;
    }
    CHECK_INT(bad, 0);
}

static void parse_then_format_gives_back_canonical_text(void) {
    static const char *const canonical[] = {"0/0", "16/B374D848", "1/0", "FFFFFFFF/FFFFFFFF", "0/3000148",
                                            "ABCDEF01/23456789"};
    char buf[WR_LSN_BUFSIZE];
    for (size_t i = 0; i < sizeof canonical / sizeof canonical[0]; i++)
        CHECK_STR(wr_lsn_format(parsed(canonical[i]), buf), canonical[i]);
    CHECK_STR(wr_lsn_format(parsed("00ab/00cd"), buf), "AB/CD");
}

static void rejects_malformed_text_and_leaves_the_output_alone(void) {
    static const char *const bad[] = {
        "", "/", "0", "0/", "/0", "0//0", "0/0/0", "00", "16B374D848",
        "123456789/0", "0/123456789", "000000000/0", "0/000000000", /* 9 digits */
        "+1/0", "-1/0", "1/+0", "1/-0", " 1/0", "1/0 ", "1 /0", "1/ 0", "\t1/0", "1/0\n",
        "0x1/0", "1/0x0", "g/0", "0/G", "1.0", "1\\0", "1:0", "1/0;", "1/0\x01", "\xff/0",
        "1/0\xc2\xa0", "１/0", "1/0h", "ffffffff/fffffffff", "FFFFFFFFF/0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK(rejects(bad[i]));
    CHECK(rejects(NULL));
}

static void only_hex_digits_are_accepted_around_the_slash(void) {
    /* Every byte in each position of "1/0": only hex digits fit a digit's
     * place and only '/' fits the slash's. */
    int wrong = 0;
    for (int pos = 0; pos < 3; pos++) {
        for (int c = 1; c < 256; c++) {
            char text[4] = "1/0";
            text[pos] = (char)c;
            int hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
            int want = pos == 1 ? c == '/' : hex;
            wr_lsn v;
            if ((wr_lsn_parse(text, &v) == 0) != want) wrong++;
        }
    }
    CHECK_INT(wrong, 0);
}

static void a_null_output_only_validates(void) {
    CHECK_INT(wr_lsn_parse("1/0", NULL), 0);
    CHECK_INT(wr_lsn_parse("1/x", NULL), -1);
}

static void positions_compare_as_plain_integers(void) {
    /* The high half dominates: "1/0" is past "0/FFFFFFFF". */
    CHECK(parsed("1/0") > parsed("0/FFFFFFFF"));
    CHECK(parsed("16/B374D848") >= parsed("16/B374D848"));
    CHECK(parsed("16/B374D847") < parsed("16/B374D848"));
}

#define KB8 8192u
#define MB16 (16u * 1024 * 1024)

static void an_insert_position_after_a_page_header_becomes_the_boundary(void) {
    /* pg_current_wal_insert_lsn() on an idle primary whose last record
     * ended exactly on a page boundary: the boundary + the header. */
    CHECK_U64(wr_lsn_record_end(0x41B6018u, KB8, MB16), 0x41B6000u);
    CHECK_U64(wr_lsn_record_end(0x5000028u, KB8, MB16), 0x5000000u); /* long header */
    CHECK_U64(wr_lsn_record_end(0x100000018u, KB8, MB16), 0x100000018u); /* inside a long header */
    CHECK_U64(wr_lsn_record_end(0x41B8018u, 2 * KB8, MB16), 0x41B8000u);
    CHECK_U64(wr_lsn_record_end(0x5000028u, KB8, 4 * MB16), 0x5000028u); /* not a segment start there */
    CHECK_U64(wr_lsn_record_end(0x4000028u, KB8, 4 * MB16), 0x4000000u);
}

static void any_other_position_is_left_alone(void) {
    CHECK_U64(wr_lsn_record_end(0x41B6020u, KB8, MB16), 0x41B6020u);
    CHECK_U64(wr_lsn_record_end(0x41B6010u, KB8, MB16), 0x41B6010u);
    CHECK_U64(wr_lsn_record_end(0x41B6000u, KB8, MB16), 0x41B6000u);
    CHECK_U64(wr_lsn_record_end(0x41B6018u, 2 * KB8, MB16), 0x41B6018u); /* mid-page with 16 kB pages */
    CHECK_U64(wr_lsn_record_end(0x5002028u, KB8, MB16), 0x5002028u);     /* offset 40, not a segment start */
    /* Sizes not known (no probe yet) or inconsistent: unchanged. */
    CHECK_U64(wr_lsn_record_end(0x41B6018u, 0, MB16), 0x41B6018u);
    CHECK_U64(wr_lsn_record_end(0x41B6018u, KB8, 0), 0x41B6018u);
    CHECK_U64(wr_lsn_record_end(0x41B6018u, KB8, KB8 * 3 / 2), 0x41B6018u);
    CHECK_U64(wr_lsn_record_end(0, KB8, MB16), 0);
    CHECK_U64(wr_lsn_record_end(UINT64_MAX, KB8, MB16), UINT64_MAX);
}

int main(void) {
    RUN(parses_the_text_postgres_prints);
    RUN(accepts_lower_case_and_leading_zeros);
    RUN(formats_like_postgres_in_upper_case_without_leading_zeros);
    RUN(the_longest_text_fits_the_buffer_exactly);
    RUN(format_then_parse_gives_back_every_value);
    RUN(parse_then_format_gives_back_canonical_text);
    RUN(rejects_malformed_text_and_leaves_the_output_alone);
    RUN(only_hex_digits_are_accepted_around_the_slash);
    RUN(a_null_output_only_validates);
    RUN(positions_compare_as_plain_integers);
    RUN(an_insert_position_after_a_page_header_becomes_the_boundary);
    RUN(any_other_position_is_left_alone);
    return check_exit();
}
