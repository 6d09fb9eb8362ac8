/* stream.c — a read's rows in chunks: a read-only transaction on a fresh
 * replica (the engine chooses it, as for wr_begin(WR_READ_ONLY)), a cursor
 * declared over the statement, and FETCH FORWARD n per chunk. Memory holds
 * one chunk at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define CURSOR "wr_stream"
#define DEFAULT_CHUNK 1000

struct wr_stream {
    wr_session *s;
    int done;
};

wr_status wr_stream_open(wr_session *s, const char *sql, int nparams, const char *const *params, unsigned flags,
                         wr_stream **out) {
    if (out) *out = NULL;
    if (!s || !out) return WR_ERR_ARG;
    wr_status st = wr_session_check_sql(s, sql, nparams, params);
    if (st != WR_OK) return st;
    if (wr_session_in_transaction(s))
        return wr_err_set(&s->err, NULL, WR_ERR_STATE, -1, NULL, "a transaction is open: stream before or after it");
    size_t len = strlen(sql) + sizeof "DECLARE " CURSOR " NO SCROLL CURSOR FOR ";
    char *declare = malloc(len);
    wr_stream *w = calloc(1, sizeof *w);
    if (!declare || !w) {
        free(declare);
        free(w);
        return wr_err_set(&s->err, NULL, WR_ERR_NOMEM, -1, NULL, "out of memory");
    }
    snprintf(declare, len, "DECLARE " CURSOR " NO SCROLL CURSOR FOR %s", sql);
    st = wr_begin(s, flags & WR_PRIMARY ? 0 : WR_READ_ONLY);
    if (st == WR_OK) {
        st = wr_query(s, declare, nparams, params, 0, NULL);
        if (st != WR_OK) {
            wr_err keep = s->err;
            wr_rollback(s);
            s->err = keep;
        }
    }
    free(declare);
    if (st != WR_OK) {
        free(w);
        return st;
    }
    w->s = s;
    *out = w;
    return WR_OK;
}

wr_status wr_stream_next(wr_stream *w, int max_rows, wr_result **out) {
    if (out) *out = NULL;
    if (!w || !out) return WR_ERR_ARG;
    if (w->done) return WR_OK;
    char fetch[64];
    snprintf(fetch, sizeof fetch, "FETCH FORWARD %d FROM " CURSOR, max_rows > 0 ? max_rows : DEFAULT_CHUNK);
    wr_result *r = NULL;
    wr_status st = wr_query(w->s, fetch, 0, NULL, 0, &r);
    if (st != WR_OK) return st;
    if (wr_result_nrows(r) == 0) {
        wr_result_free(r);
        w->done = 1;
        return WR_OK;
    }
    *out = r;
    return WR_OK;
}

wr_status wr_stream_close(wr_stream *w) {
    if (!w) return WR_OK;
    wr_session *s = w->s;
    wr_status st = wr_session_in_transaction(s) ? wr_commit(s) : WR_OK;
    free(w);
    return st;
}
