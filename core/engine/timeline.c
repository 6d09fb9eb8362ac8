/* timeline.c — what one session has seen, and so what its next read needs:
 * the lowest position a node must have replayed (G1) and, while a replica
 * read is pending, which replica served it (G2). */
#include "walrouter_engine.h"

void wr_timeline_init(wr_timeline *t) {
    t->need = WR_LSN_INVALID;
    t->last_node = -1;
    t->last_read_us = 0;
    t->need_tli = 0;
    t->need_unknown = 0;
}

int wr_pos_covers(uint32_t tli, wr_lsn lsn, uint32_t need_tli, wr_lsn need) {
    if (tli != 0 && need_tli != 0 && tli != need_tli) return 0;
    return lsn >= need;
}

void wr_timeline_wrote_at(wr_timeline *t, uint32_t tli, wr_lsn lsn) {
    /* A position on a later timeline is past everything of the earlier one
     * that survived; on the same timeline the higher one. */
    if (tli != 0 && tli != t->need_tli && (t->need_tli == 0 || tli > t->need_tli)) {
        t->need_tli = tli;
        t->need = lsn;
    } else if (tli == 0 || tli == t->need_tli) {
        wr_timeline_require(t, lsn);
    }
    t->last_node = -1;
    t->need_unknown = 0;
}

void wr_timeline_merge(wr_timeline *t, const wr_timeline *o) {
    if (o->need_tli > t->need_tli) {
        t->need_tli = o->need_tli;
        t->need = o->need;
    } else if (o->need_tli == t->need_tli || o->need_tli == 0) {
        wr_timeline_require(t, o->need);
    }
    if (o->need_unknown) t->need_unknown = 1;
}

void wr_timeline_require(wr_timeline *t, wr_lsn lsn) {
    if (lsn > t->need) t->need = lsn;
}

void wr_timeline_wrote(wr_timeline *t, wr_lsn lsn) {
    /* The position was taken after every earlier read ended, so it is at or
     * past anything those reads saw: the pending read is settled. */
    wr_timeline_require(t, lsn);
    t->last_node = -1;
}

void wr_timeline_read_primary(wr_timeline *t, wr_lsn lsn) {
    wr_timeline_wrote(t, lsn);
}

void wr_timeline_read_replica(wr_timeline *t, int node, wr_lsn known, uint64_t now_us) {
    wr_timeline_require(t, known);
    /* A negative node would read as "nothing pending" (-1) and drop the G2
     * bound; keep it pending on a node no view matches instead, so the next
     * read needs the primary's upper bound. */
    t->last_node = node >= 0 ? node : -2;
    t->last_read_us = now_us;
}

int wr_timeline_upper(const wr_timeline *t, const wr_node_view *nodes, size_t n, wr_lsn *out) {
    if (t->last_node == -1) {
        if (out) *out = t->need;
        return 1;
    }
    if (!nodes) n = 0;
    /* Each qualifying probe bounds the last read from above. Take the highest
     * of them: it stays a bound even if one observation was not (say
     * last_node restarted and reopened behind what it had replayed). */
    int known = 0;
    wr_lsn upper = t->need;
    for (size_t i = 0; i < n; i++) {
        const wr_node_view *v = &nodes[i];
        int is_last = t->last_node >= 0 && (size_t)t->last_node == i;
        if (!is_last && v->role != WR_ROLE_PRIMARY) continue;
        if (v->lsn_at_us == 0 || v->lsn_at_us < t->last_read_us) continue;
        if (v->tli != 0 && t->need_tli != 0 && v->tli != t->need_tli) continue; /* not comparable */
        known = 1;
        if (v->lsn > upper) upper = v->lsn;
    }
    if (known && out) *out = upper;
    return known;
}
