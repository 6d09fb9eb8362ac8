/* decide.c — where one read goes: a replica whose known position already
 * covers the session's need, else a replica checked in the same round trip,
 * else a short wait for one to catch up, else the primary. Pure: no I/O, no
 * allocation, no clock reads. */
#include "walrouter_engine.h"

#define MAX_NODES 32 /* bits of the `tried` mask */

static const wr_policy zero_policy;

/* May serve reads at all: a replica, reachable, within the staleness limit. */
static int usable(const wr_node_view *v) {
    return v->role == WR_ROLE_REPLICA && v->up && !v->excluded;
}

/* Can replay up to `need` within left_us, judging by its replay rate. An
 * unknown rate (negative, or NaN from a broken estimate) may: only a known
 * rate that is too slow rules a replica out. */
static int can_catch_up(const wr_node_view *v, uint32_t need_tli, wr_lsn need, uint64_t left_us) {
    if (v->tli != 0 && need_tli != 0 && v->tli != need_tli) return 0; /* another history */
    if (v->lsn >= need) return 1;
    if (!(v->rate >= 0)) return 1;
    return (double)(need - v->lsn) <= v->rate * ((double)left_us / 1e6);
}

static int primary_of(const wr_node_view *nodes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (nodes[i].role == WR_ROLE_PRIMARY && nodes[i].up) return (int)i;
    return -1;
}

/* What replica i must have replayed (see the G2 note in wr_decide_read). */
static wr_lsn need_of(const wr_timeline *t, int i, wr_lsn need_other) {
    return i == t->last_node ? t->need : need_other;
}

/* Among the nodes in mask, the lowest measured round trip (unknown counts
 * as the slowest); the last node wins a tie. -1 for an empty mask. */
static int nearest(const wr_node_view *nodes, size_t n, uint32_t mask, int last) {
    int best = -1;
    uint64_t best_rtt = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(mask >> i & 1u)) continue;
        uint64_t rtt = nodes[i].rtt_us ? nodes[i].rtt_us : UINT64_MAX;
        if (best < 0 || rtt < best_rtt || (rtt == best_rtt && (int)i == last)) {
            best = (int)i;
            best_rtt = rtt;
        }
    }
    return best;
}

static wr_reason replica_reason(wr_reason first, uint32_t tried, int waited) {
    if (waited) return WR_REASON_REPLICA_WAITED;
    if (tried) return WR_REASON_REPLICA_OTHER;
    return first;
}

wr_choice wr_decide_read(const wr_timeline *t, const wr_node_view *nodes, size_t n, uint64_t start_us,
                         uint64_t now_us, uint32_t tried, int waited, const wr_policy *p) {
    wr_choice ch = {.action = WR_ACT_PRIMARY, .node = -1, .need = t ? t->need : 0, .reason = WR_REASON_NONE};
    if (!nodes) n = 0;
    if (n > MAX_NODES) n = MAX_NODES;
    if (!p) p = &zero_policy;
    if (!t) { /* nothing to prove freshness against: misuse, stay safe */
        ch.node = primary_of(nodes, n);
        return ch;
    }

    /* G2: the last node needs only t->need (its replay never goes back);
     * any other replica needs an upper bound of what the last read saw, and
     * cannot serve at all while that bound is unknown. */
    wr_lsn upper = 0;
    int other_ok = wr_timeline_upper(t, nodes, n, &upper);
    wr_lsn need_other = upper > t->need ? upper : t->need;
    int last = t->last_node; /* may match no node */

    uint32_t eligible = 0, covered = 0;
    unsigned ncovered = 0;
    int any_up = 0, any_usable = 0;
    for (size_t i = 0; i < n; i++) {
        const wr_node_view *v = &nodes[i];
        if (v->role == WR_ROLE_REPLICA && v->up) any_up = 1;
        if (!usable(v)) continue;
        any_usable = 1;
        int is_last = (int)i == last;
        if (!is_last && !other_ok) continue;
        eligible |= 1u << i;
        /* A replica this read already tried (behind, failed, or out of
         * time) is not tried again before a wait, cached or not. */
        if (!(tried >> i & 1u) && wr_pos_covers(v->tli, v->lsn, t->need_tli, need_of(t, (int)i, need_other))) {
            covered |= 1u << i;
            ncovered++;
        }
    }

    /* 1. A replica already known fresh enough: the last node (sticky), else
     * one spread by the session's seed. */
    if (ncovered) {
        int pick = -1;
        if (p->choose == WR_CHOOSE_NEAREST) {
            pick = nearest(nodes, n, covered, last);
        } else if (last >= 0 && last < (int)n && (covered >> last & 1u)) {
            pick = last;
        } else {
            unsigned k = p->seed % ncovered;
            for (size_t i = 0; i < n && pick < 0; i++)
                if ((covered >> i & 1u) && k-- == 0) pick = (int)i;
        }
        ch.action = WR_ACT_CACHED;
        ch.node = pick;
        ch.need = need_of(t, pick, need_other);
        ch.reason = replica_reason(WR_REASON_REPLICA_CACHED, tried, waited);
        return ch;
    }

    /* 2. An untried replica that may be fresh by now: check it in the same
     * round trip, the one known furthest ahead (the last node on a tie). */
    int best = -1;
    uint32_t untried = eligible & ~tried;
    if (p->choose == WR_CHOOSE_NEAREST) {
        best = nearest(nodes, n, untried, last);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (!(untried >> i & 1u)) continue;
            if (best < 0 || nodes[i].lsn > nodes[best].lsn || (nodes[i].lsn == nodes[best].lsn && (int)i == last))
                best = (int)i;
        }
    }
    if (best >= 0) {
        ch.action = WR_ACT_CHECK;
        ch.node = best;
        ch.need = need_of(t, best, need_other);
        ch.reason = replica_reason(WR_REASON_REPLICA_CHECKED, tried, waited);
        return ch;
    }

    /* 3. Every candidate was behind: wait for one, if the budget has time
     * left and some replica's replay rate says it can make it. */
    uint64_t elapsed = now_us > start_us ? now_us - start_us : 0;
    uint64_t left = p->budget_us > elapsed ? p->budget_us - elapsed : 0;
    if (left > 0) {
        for (size_t i = 0; i < n; i++) {
            if (!(eligible >> i & 1u) || !can_catch_up(&nodes[i], t->need_tli, need_of(t, (int)i, need_other), left)) continue;
            ch.action = WR_ACT_WAIT;
            ch.wait_us = p->retry_interval_us < left ? p->retry_interval_us : left;
            return ch;
        }
    }

    /* 4. The primary. */
    ch.node = primary_of(nodes, n);
    if (!any_up) ch.reason = WR_REASON_PRIMARY_NO_REPLICA;
    else if (!any_usable) ch.reason = WR_REASON_PRIMARY_LAGGING; /* all past the limit */
    else if (left == 0) ch.reason = WR_REASON_PRIMARY_BUDGET;
    else ch.reason = WR_REASON_PRIMARY_LAGGING;                  /* none can catch up in time */
    return ch;
}

void wr_decide_read_into(const wr_timeline *t, const wr_node_view *nodes, size_t n, uint64_t start_us,
                         uint64_t now_us, uint32_t tried, int waited, const wr_policy *p, wr_choice *out) {
    if (out) *out = wr_decide_read(t, nodes, n, start_us, now_us, tried, waited, p);
}
