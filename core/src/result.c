/* result.c — the rows of one statement (a PGresult underneath) and where it
 * ran. */
#include <stdlib.h>

#include "internal.h"

wr_result *wr_result_wrap(PGresult *pg, int node, wr_reason why, wr_lsn lsn) {
    wr_result *r = malloc(sizeof *r);
    if (!r) {
        PQclear(pg);
        return NULL;
    }
    r->pg = pg;
    r->node = node;
    r->reason = why;
    r->lsn = lsn;
    return r;
}

void wr_result_free(wr_result *r) {
    if (!r) return;
    PQclear(r->pg);
    free(r);
}

static int in_range(const wr_result *r, int row, int col) {
    return r && row >= 0 && col >= 0 && row < PQntuples(r->pg) && col < PQnfields(r->pg);
}

int wr_result_nrows(const wr_result *r) { return r ? PQntuples(r->pg) : 0; }
int wr_result_ncols(const wr_result *r) { return r ? PQnfields(r->pg) : 0; }

const char *wr_result_colname(const wr_result *r, int col) {
    return r && col >= 0 && col < PQnfields(r->pg) ? PQfname(r->pg, col) : NULL;
}

uint32_t wr_result_coltype(const wr_result *r, int col) {
    return r && col >= 0 && col < PQnfields(r->pg) ? (uint32_t)PQftype(r->pg, col) : 0;
}

const char *wr_result_value(const wr_result *r, int row, int col) {
    if (!in_range(r, row, col) || PQgetisnull(r->pg, row, col)) return NULL;
    return PQgetvalue(r->pg, row, col);
}

int wr_result_isnull(const wr_result *r, int row, int col) {
    return !in_range(r, row, col) || PQgetisnull(r->pg, row, col);
}

int wr_result_length(const wr_result *r, int row, int col) {
    return in_range(r, row, col) ? PQgetlength(r->pg, row, col) : 0;
}

int64_t wr_result_affected(const wr_result *r) {
    if (!r) return 0;
    const char *t = PQcmdTuples(r->pg);
    return t && *t ? strtoll(t, NULL, 10) : 0;
}

const char *wr_result_command(const wr_result *r) { return r ? PQcmdStatus(r->pg) : ""; }
int wr_result_node(const wr_result *r) { return r ? r->node : -1; }
wr_reason wr_result_reason(const wr_result *r) { return r ? r->reason : WR_REASON_NONE; }
wr_lsn wr_result_lsn(const wr_result *r) { return r ? r->lsn : 0; }
