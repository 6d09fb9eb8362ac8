/* lsn.c — WAL positions as text: PostgreSQL's pg_lsn form "X/Y", where X and
 * Y are the high and low 32 bits in hex. */
#include "walrouter_engine.h"

/* Value of a hex digit, or -1. */
static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads 1-8 hex digits at *p into *half and advances *p past them. */
static int parse_half(const char **p, uint32_t *half) {
    uint32_t v = 0;
    int digits = 0;
    int d;
    while ((d = hex_value(**p)) >= 0) {
        if (++digits > 8) return -1;
        v = v << 4 | (uint32_t)d;
        (*p)++;
    }
    if (digits == 0) return -1;
    *half = v;
    return 0;
}

int wr_lsn_parse(const char *text, wr_lsn *out) {
    const char *p = text;
    uint32_t hi, lo;
    if (!p || parse_half(&p, &hi) != 0 || *p++ != '/' || parse_half(&p, &lo) != 0 || *p != '\0') return -1;
    if (out) *out = (wr_lsn)hi << 32 | lo;
    return 0;
}

/* Writes one half without leading zeros ("0" for zero); returns the end. */
static char *format_half(char *p, uint32_t v) {
    static const char digits[] = "0123456789ABCDEF";
    int shift = 28;
    while (shift > 0 && (v >> shift & 0xF) == 0) shift -= 4;
    for (; shift >= 0; shift -= 4) *p++ = digits[v >> shift & 0xF];
    return p;
}

char *wr_lsn_format(wr_lsn lsn, char buf[WR_LSN_BUFSIZE]) {
    if (!buf) return NULL;
    char *p = format_half(buf, (uint32_t)(lsn >> 32));
    *p++ = '/';
    p = format_half(p, (uint32_t)lsn);
    *p = '\0';
    return buf;
}

/* PostgreSQL's page headers, MAXALIGNed: every page starts with the short
 * one, the first page of a segment with the long one. */
#define SHORT_PAGE_HEADER 24
#define LONG_PAGE_HEADER 40

wr_lsn wr_lsn_record_end(wr_lsn insert, uint32_t block_size, uint64_t segment_size) {
    if (block_size == 0 || segment_size == 0 || segment_size % block_size != 0) return insert;
    uint64_t in_segment = insert % segment_size;
    if (in_segment < block_size) /* the segment's first page */
        return in_segment == LONG_PAGE_HEADER ? insert - LONG_PAGE_HEADER : insert;
    return insert % block_size == SHORT_PAGE_HEADER ? insert - SHORT_PAGE_HEADER : insert;
}
