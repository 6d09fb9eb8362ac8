/* test_stream.c — a large result streamed in chunks keeps memory flat; its
 * chunks come from one snapshot on one node. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "testlib.h"

/* Resident set size in KiB (VmRSS). */
static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kib = atol(line + 6);
    if (f) fclose(f);
    return kib;
}

static int under_valgrind(void) {
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload") != NULL;
}

/* AddressSanitizer keeps freed memory in quarantine: RSS says nothing. */
#if defined(__SANITIZE_ADDRESS__)
#define MEASURES_RSS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEASURES_RSS 0
#endif
#endif
#ifndef MEASURES_RSS
#define MEASURES_RSS 1
#endif

static void five_million_rows_stream_with_flat_memory(void) {
    /* Under valgrind and ASan a smaller result proves the same paths; only
     * a plain build measures memory. */
    int measures = MEASURES_RSS && !under_valgrind();
    long rows = measures ? 5000000 : 100000;
    wr_cluster *c = t_open(NULL);
    wr_session *s = wr_session_new(c);
    char n[32];
    snprintf(n, sizeof n, "%ld", rows);
    const char *p[1] = {n};
    wr_stream *st = NULL;
    CHECK_INT(wr_stream_open(s, "SELECT g, repeat('x', 40) FROM generate_series(1, $1::int) g", 1, p, 0, &st),
              WR_OK);
    CHECK(wr_session_in_transaction(s));
    long base = rss_kib(), peak = base, seen = 0, last = 0;
    int node = -1, one_node = 1;
    wr_result *r = NULL;
    while (st && wr_stream_next(st, 10000, &r) == WR_OK && r) {
        if (node < 0) node = wr_result_node(r);
        one_node = one_node && wr_result_node(r) == node;
        for (int i = 0; i < wr_result_nrows(r); i++) {
            long g = atol(wr_result_value(r, i, 0));
            if (g != last + 1) one_node = 0; /* in order, none missing */
            last = g;
        }
        seen += wr_result_nrows(r);
        wr_result_free(r);
        long now = rss_kib();
        if (now > peak) peak = now;
    }
    CHECK_INT(seen, rows);
    CHECK(one_node);
    CHECK(node == 1 || node == 2); /* a read-only transaction on a replica */
    /* The whole result would be hundreds of MB; a chunk is about 1 MB. */
    fprintf(stderr, "  %ld rows, RSS %ld KiB at start, %ld KiB at peak\n", seen, base, peak);
    if (measures) CHECK(peak - base < 64 * 1024);
    CHECK_INT(wr_stream_close(st), WR_OK);
    CHECK(!wr_session_in_transaction(s));
    wr_result *one = NULL;
    CHECK_INT(wr_query(s, "SELECT 1", 0, NULL, 0, &one), WR_OK);
    wr_result_free(one);
    wr_session_free(s);
    wr_cluster_close(c);
}

static void a_stream_of_bad_sql_fails_clearly_and_leaves_no_transaction(void) {
    wr_cluster *c = t_open(NULL);
    wr_session *s = wr_session_new(c);
    wr_stream *st = NULL;
    CHECK_INT(wr_stream_open(s, "SELECT * FROM no_such_table", 0, NULL, 0, &st), WR_ERR_SQL);
    CHECK_STR(wr_session_sqlstate(s), "42P01");
    CHECK(st == NULL);
    CHECK(!wr_session_in_transaction(s));
    CHECK_INT(wr_stream_open(s, "COMMIT", 0, NULL, 0, &st), WR_ERR_ARG);
    wr_session_free(s);
    wr_cluster_close(c);
}

int main(void) {
    RUN(five_million_rows_stream_with_flat_memory);
    RUN(a_stream_of_bad_sql_fails_clearly_and_leaves_no_transaction);
    return check_exit();
}
