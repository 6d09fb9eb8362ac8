/* test_decide.c — the session timeline and the read-routing policy, driven by
 * a fake clock (plain microsecond integers) and hand-made node views. Node 0
 * is the primary unless a test says otherwise; replicas are A, B, C. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "walrouter.h"

#define MS 1000u
#define T0 (10000u * MS) /* when the read under test starts */
#define N(a) (sizeof(a) / sizeof((a)[0]))

enum { P = 0, A = 1, B = 2, C = 3 };

static const wr_policy policy = {.budget_us = 200 * MS, .retry_interval_us = 10 * MS, .seed = 0};

static wr_node_view primary(wr_lsn lsn, uint64_t seen_us) {
    return (wr_node_view){.role = WR_ROLE_PRIMARY, .up = 1, .lsn = lsn, .lsn_at_us = seen_us, .rate = -1};
}

static wr_node_view replica(wr_lsn lsn, uint64_t seen_us) {
    return (wr_node_view){.role = WR_ROLE_REPLICA, .up = 1, .lsn = lsn, .lsn_at_us = seen_us, .rate = -1};
}

static wr_timeline session(wr_lsn need, int last_node, uint64_t last_read_us) {
    return (wr_timeline){.need = need, .last_node = last_node, .last_read_us = last_read_us};
}

/* A read's first decision: nothing tried, no wait yet, at its start. */
static wr_choice first(const wr_timeline *t, const wr_node_view *v, size_t n) {
    return wr_decide_read(t, v, n, T0, T0, 0, 0, &policy);
}

/* A later decision of the same read, at T0 + elapsed. */
static wr_choice later(const wr_timeline *t, const wr_node_view *v, size_t n, uint64_t elapsed_us,
                       uint32_t tried, int waited) {
    return wr_decide_read(t, v, n, T0, T0 + elapsed_us, tried, waited, &policy);
}

#define BIT(i) (1u << (i))

/* ---- timeline ------------------------------------------------------------ */

static void an_empty_timeline_needs_nothing_and_has_no_pending_read(void) {
    wr_timeline t = session(77, 3, 99);
    wr_timeline_init(&t);
    CHECK_U64(t.need, 0);
    CHECK_INT(t.last_node, -1);
    CHECK_U64(t.last_read_us, 0);
}

static void a_write_raises_the_need_and_settles_the_pending_read(void) {
    wr_timeline t = session(100, A, T0);
    wr_timeline_wrote(&t, 500);
    CHECK_U64(t.need, 500);
    CHECK_INT(t.last_node, -1);
}

static void a_primary_read_counts_like_a_write(void) {
    wr_timeline t = session(100, B, T0);
    wr_timeline_read_primary(&t, 700);
    CHECK_U64(t.need, 700);
    CHECK_INT(t.last_node, -1);
}

static void a_replica_read_needs_what_it_saw_and_becomes_the_last_node(void) {
    wr_timeline t = session(100, -1, 0);
    wr_timeline_read_replica(&t, B, 400, T0);
    CHECK_U64(t.need, 400);
    CHECK_INT(t.last_node, B);
    CHECK_U64(t.last_read_us, T0);
    wr_timeline_read_replica(&t, A, 300, T0 + 5); /* saw less than needed: need stays */
    CHECK_U64(t.need, 400);
    CHECK_INT(t.last_node, A);
    CHECK_U64(t.last_read_us, T0 + 5);
}

static void the_need_never_goes_down(void) {
    wr_timeline t = session(1000, -1, 0);
    wr_timeline_require(&t, 10);
    wr_timeline_wrote(&t, 20);
    wr_timeline_read_primary(&t, 30);
    wr_timeline_read_replica(&t, A, 40, T0);
    CHECK_U64(t.need, 1000);
    wr_timeline_require(&t, 2000);
    CHECK_U64(t.need, 2000);
}

static void a_replica_read_on_an_unknown_node_stays_pending(void) {
    /* -1 would mean "settled" and lose the G2 bound. */
    wr_timeline t = session(0, -1, 0);
    wr_timeline_read_replica(&t, -1, 50, T0);
    CHECK(t.last_node != -1);
    wr_node_view v[] = {primary(900, T0 - 1), replica(60, T0 + 1)};
    wr_lsn up = 0;
    CHECK_INT(wr_timeline_upper(&t, v, N(v), &up), 0); /* only a later primary probe helps */
    v[P].lsn_at_us = T0 + 1;
    CHECK_INT(wr_timeline_upper(&t, v, N(v), &up), 1);
    CHECK_U64(up, 900);
}

static void the_upper_bound_is_the_need_when_no_read_is_pending(void) {
    wr_timeline t = session(123, -1, 0);
    wr_lsn up = 0;
    CHECK_INT(wr_timeline_upper(&t, NULL, 0, &up), 1);
    CHECK_U64(up, 123);
}

static void a_probe_of_the_last_node_sent_after_the_read_bounds_it(void) {
    wr_timeline t = session(100, A, T0);
    wr_node_view v[] = {primary(900, T0 - 1), replica(300, T0), replica(800, T0 + 1)};
    wr_lsn up = 0;
    CHECK_INT(wr_timeline_upper(&t, v, N(v), &up), 1); /* sent at the very end of the read counts */
    CHECK_U64(up, 300);
}

static void a_probe_of_the_primary_sent_after_the_read_bounds_it(void) {
    wr_timeline t = session(100, A, T0);
    wr_node_view v[] = {primary(900, T0 + 1), replica(300, T0 - 1), replica(800, T0 + 1)};
    wr_lsn up = 0;
    CHECK_INT(wr_timeline_upper(&t, v, N(v), &up), 1);
    CHECK_U64(up, 900);
}

static void probes_sent_before_the_read_ended_or_never_bound_nothing(void) {
    wr_timeline t = session(100, A, T0);
    wr_node_view v[] = {primary(900, T0 - 1), replica(300, T0 - 1), replica(800, T0 + 1)};
    wr_lsn up = 42;
    CHECK_INT(wr_timeline_upper(&t, v, N(v), &up), 0);
    CHECK_U64(up, 42);
    /* lsn_at_us 0 means never probed, even for a read at time 0. */
    t = session(100, A, 0);
    v[P].lsn_at_us = 0;
    v[A].lsn_at_us = 0;
    CHECK_INT(wr_timeline_upper(&t, v, N(v), &up), 0);
}

static void with_two_bounds_the_upper_bound_is_the_safer_higher_one(void) {
    /* A replica that restarted may report less than it had replayed; the
     * primary's insert position bounds the read regardless. */
    wr_timeline t = session(100, A, T0);
    wr_node_view v[] = {primary(900, T0 + 2), replica(300, T0 + 1)};
    wr_lsn up = 0;
    CHECK_INT(wr_timeline_upper(&t, v, N(v), &up), 1);
    CHECK_U64(up, 900);
}

static void the_upper_bound_is_never_below_the_need(void) {
    wr_timeline t = session(5000, A, T0);
    wr_node_view v[] = {primary(900, T0 + 2), replica(300, T0 + 1)};
    wr_lsn up = 0;
    CHECK_INT(wr_timeline_upper(&t, v, N(v), &up), 1);
    CHECK_U64(up, 5000);
}

/* ---- rule 1: a replica known fresh enough --------------------------------- */

static void read_goes_to_a_replica_whose_known_position_covers_the_need(void) {
    wr_timeline t = session(800, -1, 0);
    wr_node_view v[] = {primary(1000, T0), replica(900, T0), replica(500, T0)};
    wr_choice c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_CACHED);
    CHECK_INT(c.node, A);
    CHECK_U64(c.need, 800);
    CHECK_INT(c.reason, WR_REASON_REPLICA_CACHED);
}

static void a_new_session_reads_from_a_replica_never_probed(void) {
    wr_timeline t;
    wr_timeline_init(&t);
    wr_node_view v[] = {primary(0, 0), replica(0, 0)};
    wr_choice c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_CACHED);
    CHECK_INT(c.node, A);
    CHECK_U64(c.need, 0);
}

static void the_last_node_is_preferred_while_it_covers_the_need(void) {
    wr_timeline t = session(800, B, T0 - 5 * MS);
    wr_node_view v[] = {primary(2000, T0), replica(2000, T0), replica(800, T0), replica(2000, T0)};
    for (uint32_t seed = 0; seed < 8; seed++) {
        wr_policy p = policy;
        p.seed = seed;
        wr_choice c = wr_decide_read(&t, v, N(v), T0, T0, 0, 0, &p);
        CHECK_INT(c.action, WR_ACT_CACHED);
        CHECK_INT(c.node, B);
        CHECK_U64(c.need, 800); /* the last node needs only the session's need */
    }
}

static void the_seed_spreads_new_sessions_over_fresh_replicas(void) {
    wr_timeline t = session(100, -1, 0);
    wr_node_view v[] = {primary(1000, T0), replica(500, T0), replica(500, T0), replica(500, T0)};
    static const int expect[] = {A, B, C, A, B, C};
    for (uint32_t seed = 0; seed < N(expect); seed++) {
        wr_policy p = policy;
        p.seed = seed;
        wr_choice c = wr_decide_read(&t, v, N(v), T0, T0, 0, 0, &p);
        CHECK_INT(c.action, WR_ACT_CACHED);
        CHECK_INT(c.node, expect[seed]);
    }
    /* Only among those that qualify: B is behind. */
    v[B].lsn = 50;
    wr_policy p = policy;
    p.seed = 1;
    CHECK_INT(wr_decide_read(&t, v, N(v), T0, T0, 0, 0, &p).node, C);
}

static void the_seed_also_spreads_when_the_last_node_is_behind(void) {
    wr_timeline t = session(100, A, T0 - 5 * MS);
    wr_node_view v[] = {primary(600, T0), replica(50, T0), replica(700, T0), replica(700, T0)};
    wr_policy p = policy;
    p.seed = 7; /* 7 % 2 == 1: the second of B and C */
    wr_choice c = wr_decide_read(&t, v, N(v), T0, T0, 0, 0, &p);
    CHECK_INT(c.action, WR_ACT_CACHED);
    CHECK_INT(c.node, C);
    CHECK_U64(c.need, 600);
}

/* ---- G2: hopping to another replica -------------------------------------- */

static void another_replica_must_have_what_the_last_read_may_have_seen(void) {
    /* The last read was on A (now down); the primary was at 1500 after it. */
    wr_timeline t = session(800, A, T0 - 10 * MS);
    wr_node_view v[] = {primary(1500, T0 - 5 * MS), replica(0, 0), replica(1000, T0)};
    v[A].up = 0;
    wr_choice c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_CHECK); /* 1000 covers the need 800, not the bound 1500 */
    CHECK_INT(c.node, B);
    CHECK_U64(c.need, 1500);
    v[B].lsn = 1500;
    c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_CACHED);
    CHECK_INT(c.node, B);
    CHECK_U64(c.need, 1500);
}

static void without_an_upper_bound_only_the_last_node_may_serve(void) {
    /* Every probe predates the end of the last read on A. */
    wr_timeline t = session(800, A, T0);
    wr_node_view v[] = {primary(9000, T0 - MS), replica(800, T0 - MS), replica(9000, T0 - MS)};
    for (uint32_t seed = 0; seed < 4; seed++) {
        wr_policy p = policy;
        p.seed = seed;
        wr_choice c = wr_decide_read(&t, v, N(v), T0, T0, 0, 0, &p);
        CHECK_INT(c.action, WR_ACT_CACHED);
        CHECK_INT(c.node, A);
    }
    v[A].lsn = 700; /* behind: only A may be checked, B is not a candidate */
    wr_choice c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_CHECK);
    CHECK_INT(c.node, A);
    CHECK_U64(c.need, 800);
}

static void without_an_upper_bound_and_the_last_node_down_the_read_goes_to_the_primary(void) {
    wr_timeline t = session(800, A, T0);
    wr_node_view v[] = {primary(9000, T0 - MS), replica(800, T0 - MS), replica(9000, T0 - MS)};
    v[A].up = 0;
    wr_choice c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_PRIMARY); /* B could have seen less than A: no check, no wait */
    CHECK_INT(c.node, P);
    CHECK_INT(c.reason, WR_REASON_PRIMARY_LAGGING);
    CHECK_U64(c.need, 800);
    c = later(&t, v, N(v), 200 * MS, 0, 1);
    CHECK_INT(c.action, WR_ACT_PRIMARY);
    CHECK_INT(c.reason, WR_REASON_PRIMARY_BUDGET);
}

static void a_last_node_that_matches_no_view_is_still_pending(void) {
    /* From a timeline carried over a membership change: every replica is
     * "another" one and needs the upper bound. */
    wr_timeline t = session(100, 7, T0);
    wr_node_view v[] = {primary(900, T0 - MS), replica(800, T0), replica(800, T0)};
    CHECK_INT(first(&t, v, N(v)).action, WR_ACT_PRIMARY);
    v[P].lsn_at_us = T0 + 1;
    wr_choice c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_CHECK);
    CHECK_U64(c.need, 900);
}

/* ---- rule 2: check in the same round trip ---------------------------------- */

static void the_check_goes_to_the_replica_known_furthest_ahead(void) {
    wr_timeline t = session(1000, -1, 0);
    wr_node_view v[] = {primary(1200, T0), replica(600, T0), replica(900, T0), replica(800, T0)};
    wr_choice c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_CHECK);
    CHECK_INT(c.node, B);
    CHECK_U64(c.need, 1000);
    CHECK_INT(c.reason, WR_REASON_REPLICA_CHECKED);
}

static void on_a_tie_the_check_goes_to_the_last_node(void) {
    wr_timeline t = session(1000, C, T0 - MS);
    wr_node_view v[] = {primary(1000, T0), replica(900, T0), replica(100, T0), replica(900, T0)};
    wr_choice c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_CHECK);
    CHECK_INT(c.node, C);
}

static void tried_replicas_are_not_checked_again_before_a_wait(void) {
    wr_timeline t = session(1000, -1, 0);
    wr_node_view v[] = {primary(1200, T0), replica(600, T0), replica(900, T0), replica(800, T0)};
    wr_choice c = later(&t, v, N(v), MS, BIT(B), 0);
    CHECK_INT(c.action, WR_ACT_CHECK);
    CHECK_INT(c.node, C);
    CHECK_INT(c.reason, WR_REASON_REPLICA_OTHER);
    c = later(&t, v, N(v), 2 * MS, BIT(B) | BIT(C), 0);
    CHECK_INT(c.action, WR_ACT_CHECK);
    CHECK_INT(c.node, A);
    CHECK_INT(c.reason, WR_REASON_REPLICA_OTHER);
    c = later(&t, v, N(v), 3 * MS, BIT(A) | BIT(B) | BIT(C), 0);
    CHECK_INT(c.action, WR_ACT_WAIT);
    CHECK_INT(c.node, -1);
}

static void a_fresh_replica_this_read_already_tried_is_not_read_again_before_a_wait(void) {
    /* C was read and ran out of time (or failed): its cached position does
     * not bring the read back to it; B is checked, then the read waits. */
    wr_timeline t = session(1000, C, 0);
    wr_node_view v[] = {primary(1200, T0), replica(600, T0), replica(900, T0), replica(1100, T0)};
    wr_choice c = later(&t, v, N(v), MS, BIT(C) | BIT(A), 0);
    CHECK(c.node != C);
    c = later(&t, v, N(v), 2 * policy.budget_us, BIT(A) | BIT(B) | BIT(C), 1);
    CHECK_INT(c.action, WR_ACT_PRIMARY); /* budget spent: no loop on C */
    CHECK_INT(c.reason, WR_REASON_PRIMARY_BUDGET);
}

static void a_fresh_replica_after_one_was_behind_is_read_as_other(void) {
    /* B was checked and behind; meanwhile C's known position covers. */
    wr_timeline t = session(1000, -1, 0);
    wr_node_view v[] = {primary(1200, T0), replica(600, T0), replica(900, T0), replica(1100, T0)};
    wr_choice c = later(&t, v, N(v), MS, BIT(B), 0);
    CHECK_INT(c.action, WR_ACT_CACHED);
    CHECK_INT(c.node, C);
    CHECK_INT(c.reason, WR_REASON_REPLICA_OTHER);
}

static void a_replica_not_yet_tried_is_checked_even_when_the_budget_is_spent(void) {
    /* The check costs no extra round trip; only waiting needs the budget. */
    wr_timeline t = session(1000, -1, 0);
    wr_node_view v[] = {primary(1200, T0), replica(600, T0), replica(900, T0)};
    wr_choice c = later(&t, v, N(v), 500 * MS, BIT(B), 1);
    CHECK_INT(c.action, WR_ACT_CHECK);
    CHECK_INT(c.node, A);
}

/* ---- rule 3: wait ---------------------------------------------------------- */

static void the_read_waits_within_the_budget_when_every_replica_was_behind(void) {
    wr_timeline t = session(1000, -1, 0);
    wr_node_view v[] = {primary(1200, T0), replica(600, T0), replica(900, T0)};
    wr_choice c = later(&t, v, N(v), 50 * MS, BIT(A) | BIT(B), 0);
    CHECK_INT(c.action, WR_ACT_WAIT);
    CHECK_INT(c.node, -1);
    CHECK_U64(c.wait_us, 10 * MS);
}

static void the_wait_is_capped_by_the_time_left(void) {
    wr_timeline t = session(1000, -1, 0);
    wr_node_view v[] = {primary(1200, T0), replica(600, T0), replica(900, T0)};
    wr_choice c = later(&t, v, N(v), 195 * MS, BIT(A) | BIT(B), 1);
    CHECK_INT(c.action, WR_ACT_WAIT);
    CHECK_U64(c.wait_us, 5 * MS);
    c = later(&t, v, N(v), 200 * MS - 1, BIT(A) | BIT(B), 1);
    CHECK_INT(c.action, WR_ACT_WAIT);
    CHECK_U64(c.wait_us, 1);
}

static void after_a_wait_the_replica_read_says_waited(void) {
    wr_timeline t = session(1000, -1, 0);
    wr_node_view v[] = {primary(1200, T0), replica(600, T0), replica(900, T0)};
    wr_choice c = later(&t, v, N(v), 20 * MS, 0, 1);
    CHECK_INT(c.action, WR_ACT_CHECK);
    CHECK_INT(c.node, B);
    CHECK_INT(c.reason, WR_REASON_REPLICA_WAITED);
    c = later(&t, v, N(v), 25 * MS, BIT(B), 1);
    CHECK_INT(c.reason, WR_REASON_REPLICA_WAITED);
    v[A].lsn = 1000;
    c = later(&t, v, N(v), 30 * MS, 0, 1);
    CHECK_INT(c.action, WR_ACT_CACHED);
    CHECK_INT(c.node, A);
    CHECK_INT(c.reason, WR_REASON_REPLICA_WAITED);
}

static void no_wait_for_replicas_whose_replay_is_paused(void) {
    wr_timeline t = session(1000, -1, 0);
    wr_node_view v[] = {primary(1200, T0), replica(600, T0), replica(900, T0)};
    v[A].rate = 0;
    v[B].rate = 0;
    wr_choice c = later(&t, v, N(v), 10 * MS, BIT(A) | BIT(B), 0);
    CHECK_INT(c.action, WR_ACT_PRIMARY);
    CHECK_INT(c.node, P);
    CHECK_INT(c.reason, WR_REASON_PRIMARY_LAGGING);
}

static void no_wait_when_replay_is_too_slow_for_the_time_left(void) {
    /* B is 1000 bytes short with 100 ms left: it needs 10000 bytes/s. */
    wr_timeline t = session(2000, -1, 0);
    wr_node_view v[] = {primary(2000, T0), replica(1000, T0)};
    v[A].rate = 9900;
    wr_choice c = later(&t, v, N(v), 100 * MS, BIT(A), 0);
    CHECK_INT(c.action, WR_ACT_PRIMARY);
    CHECK_INT(c.reason, WR_REASON_PRIMARY_LAGGING);
    v[A].rate = 10100;
    c = later(&t, v, N(v), 100 * MS, BIT(A), 0);
    CHECK_INT(c.action, WR_ACT_WAIT);
    CHECK_U64(c.wait_us, 10 * MS);
    /* Later in the budget the same rate is too slow. */
    c = later(&t, v, N(v), 150 * MS, BIT(A), 1);
    CHECK_INT(c.action, WR_ACT_PRIMARY);
    CHECK_INT(c.reason, WR_REASON_PRIMARY_LAGGING);
}

static void the_read_waits_when_one_replica_may_catch_up(void) {
    wr_timeline t = session(2000, -1, 0);
    wr_node_view v[] = {primary(2000, T0), replica(1000, T0), replica(1900, T0), replica(1999, T0)};
    v[A].rate = 0;         /* paused */
    v[B].rate = 1;         /* far too slow */
    v[C].rate = -1;        /* unknown: may */
    uint32_t all = BIT(A) | BIT(B) | BIT(C);
    CHECK_INT(later(&t, v, N(v), MS, all, 0).action, WR_ACT_WAIT);
    v[C].rate = 1e6;       /* fast enough */
    CHECK_INT(later(&t, v, N(v), MS, all, 0).action, WR_ACT_WAIT);
    v[C].rate = NAN;       /* a broken estimate says nothing */
    CHECK_INT(later(&t, v, N(v), MS, all, 0).action, WR_ACT_WAIT);
    v[C].rate = INFINITY;
    CHECK_INT(later(&t, v, N(v), MS, all, 0).action, WR_ACT_WAIT);
    v[C].rate = 0;
    CHECK_INT(later(&t, v, N(v), MS, all, 0).action, WR_ACT_PRIMARY);
}

static void the_rate_is_judged_against_each_replicas_own_need(void) {
    /* A is the last node (needs 1000); B needs the bound 5000 with the same
     * rate, too far to make it. */
    wr_timeline t = session(1000, A, T0 - MS);
    wr_node_view v[] = {primary(5000, T0), replica(900, T0), replica(900, T0)};
    v[A].rate = 10000; /* 100 bytes short: 10 ms */
    v[B].rate = 10000; /* 4100 bytes short: 410 ms */
    CHECK_INT(later(&t, v, N(v), MS, BIT(A) | BIT(B), 0).action, WR_ACT_WAIT);
    v[A].up = 0;
    CHECK_INT(later(&t, v, N(v), MS, BIT(B), 0).action, WR_ACT_PRIMARY);
}

static void only_usable_replicas_are_waited_for(void) {
    wr_timeline t = session(2000, -1, 0);
    wr_node_view v[] = {primary(2000, T0), replica(1000, T0), replica(1000, T0)};
    v[A].excluded = 1; /* unknown rate, but past the limit */
    v[B].rate = 0;
    wr_choice c = later(&t, v, N(v), MS, BIT(B), 0);
    CHECK_INT(c.action, WR_ACT_PRIMARY);
    CHECK_INT(c.reason, WR_REASON_PRIMARY_LAGGING);
}

/* ---- rule 4: the primary --------------------------------------------------- */

static void read_goes_to_primary_when_every_replica_is_paused_and_budget_spent(void) {
    wr_timeline t = session(1000, -1, 0);
    wr_node_view v[] = {primary(1200, T0), replica(600, T0), replica(900, T0)};
    wr_choice c = later(&t, v, N(v), 200 * MS, BIT(A) | BIT(B), 1);
    CHECK_INT(c.action, WR_ACT_PRIMARY);
    CHECK_INT(c.node, P);
    CHECK_INT(c.reason, WR_REASON_PRIMARY_BUDGET);
    CHECK_U64(c.need, 1000);
    c = later(&t, v, N(v), 10000 * MS, BIT(A) | BIT(B), 1);
    CHECK_INT(c.reason, WR_REASON_PRIMARY_BUDGET);
}

static void a_zero_budget_goes_to_the_primary_as_soon_as_every_replica_was_behind(void) {
    wr_timeline t = session(1000, -1, 0);
    wr_node_view v[] = {primary(1200, T0), replica(600, T0)};
    wr_policy p = {.budget_us = 0, .retry_interval_us = 10 * MS};
    wr_choice c = wr_decide_read(&t, v, N(v), T0, T0, BIT(A), 0, &p);
    CHECK_INT(c.action, WR_ACT_PRIMARY);
    CHECK_INT(c.reason, WR_REASON_PRIMARY_BUDGET);
}

static void read_goes_to_primary_as_lagging_when_every_replica_is_past_the_limit(void) {
    wr_timeline t = session(100, -1, 0);
    wr_node_view v[] = {primary(1200, T0), replica(1000, T0), replica(1000, T0)};
    v[A].excluded = 1;
    v[B].excluded = 1;
    wr_choice c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_PRIMARY);
    CHECK_INT(c.node, P);
    CHECK_INT(c.reason, WR_REASON_PRIMARY_LAGGING);
    v[B].up = 0; /* one down, the other up but excluded: still lagging */
    CHECK_INT(first(&t, v, N(v)).reason, WR_REASON_PRIMARY_LAGGING);
}

static void read_goes_to_primary_as_no_replica_when_every_replica_is_down(void) {
    wr_timeline t = session(100, -1, 0);
    wr_node_view v[] = {primary(1200, T0), replica(1000, T0), replica(1000, T0)};
    v[A].up = 0;
    v[B].up = 0;
    v[B].excluded = 1;
    wr_choice c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_PRIMARY);
    CHECK_INT(c.node, P);
    CHECK_INT(c.reason, WR_REASON_PRIMARY_NO_REPLICA);
    CHECK_INT(first(&t, v, 1).reason, WR_REASON_PRIMARY_NO_REPLICA); /* a primary alone */
}

static void the_primary_choice_names_the_primary_that_is_up(void) {
    wr_timeline t = session(100, -1, 0);
    wr_node_view v[] = {replica(0, T0), replica(0, T0), primary(1200, T0)};
    v[0].up = 0;
    v[1].up = 0;
    CHECK_INT(first(&t, v, N(v)).node, 2);
    v[2].up = 0;
    wr_choice c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_PRIMARY);
    CHECK_INT(c.node, -1);
    CHECK_INT(c.reason, WR_REASON_PRIMARY_NO_REPLICA);
}

/* ---- who may serve -------------------------------------------------------- */

static void excluded_replicas_are_never_chosen(void) {
    /* A is the last node, furthest ahead and covering, but past the limit;
     * the primary's probe after the read bounds it at 1000. */
    wr_timeline t = session(500, A, T0 - MS);
    wr_node_view v[] = {primary(1000, T0), replica(5000, T0 - 2 * MS), replica(900, T0), replica(1000, T0)};
    v[A].excluded = 1;
    for (uint32_t seed = 0; seed < 4; seed++) {
        wr_policy p = policy;
        p.seed = seed;
        wr_choice c = wr_decide_read(&t, v, N(v), T0, T0, 0, 0, &p);
        CHECK_INT(c.action, WR_ACT_CACHED);
        CHECK_INT(c.node, C);
        CHECK_U64(c.need, 1000);
    }
}

static void excluded_and_down_replicas_are_never_checked_or_read(void) {
    wr_timeline t = session(500, -1, 0);
    wr_node_view v[] = {primary(1000, T0), replica(5000, T0), replica(400, T0), replica(6000, T0)};
    v[A].excluded = 1;
    v[C].up = 0;
    wr_choice c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_CHECK);
    CHECK_INT(c.node, B);
    c = later(&t, v, N(v), MS, BIT(B), 0);
    CHECK_INT(c.action, WR_ACT_WAIT);
}

static void only_replicas_serve_replica_reads(void) {
    wr_timeline t = session(500, -1, 0);
    wr_node_view v[] = {primary(1000, T0), replica(5000, T0)};
    v[A].role = WR_ROLE_UNKNOWN;
    wr_choice c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_PRIMARY);
    CHECK_INT(c.node, P);
    CHECK_INT(c.reason, WR_REASON_PRIMARY_NO_REPLICA);
}

static void the_clock_running_backwards_spends_no_budget(void) {
    wr_timeline t = session(1000, -1, 0);
    wr_node_view v[] = {primary(1200, T0), replica(600, T0)};
    wr_choice c = wr_decide_read(&t, v, N(v), T0, T0 - 50 * MS, BIT(A), 0, &policy);
    CHECK_INT(c.action, WR_ACT_WAIT);
    CHECK_U64(c.wait_us, 10 * MS);
}

static void nodes_past_the_32nd_are_ignored(void) {
    wr_node_view v[40];
    for (size_t i = 0; i < N(v); i++) {
        v[i] = replica(0, T0);
        v[i].up = 0;
    }
    v[0] = primary(100, T0);
    v[35] = replica(100, T0);
    wr_timeline t = session(50, -1, 0);
    wr_choice c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_PRIMARY);
    CHECK_INT(c.reason, WR_REASON_PRIMARY_NO_REPLICA);
    /* The 32nd node works, including its tried bit. */
    v[31] = replica(40, T0);
    c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_CHECK);
    CHECK_INT(c.node, 31);
    c = later(&t, v, N(v), MS, BIT(31), 0);
    CHECK_INT(c.action, WR_ACT_WAIT);
    v[31].lsn = 50;
    c = first(&t, v, N(v));
    CHECK_INT(c.action, WR_ACT_CACHED);
    CHECK_INT(c.node, 31);
}

static void missing_arguments_do_not_crash(void) {
    wr_timeline t = session(0, -1, 0);
    wr_node_view v[] = {primary(1000, T0), replica(1000, T0)};
    wr_choice c = wr_decide_read(NULL, v, N(v), T0, T0, 0, 0, &policy);
    CHECK_INT(c.action, WR_ACT_PRIMARY); /* nothing to prove freshness against */
    CHECK_INT(c.node, P);
    c = wr_decide_read(&t, NULL, 3, T0, T0, 0, 0, &policy);
    CHECK_INT(c.action, WR_ACT_PRIMARY);
    CHECK_INT(c.node, -1);
    c = wr_decide_read(&t, v, N(v), T0, T0, 0, 0, NULL); /* NULL policy: all zero */
    CHECK_INT(c.action, WR_ACT_CACHED);
    CHECK_INT(c.node, A);
    CHECK_INT(wr_timeline_upper(&t, NULL, 5, NULL), 1);
}

/* ---- every rule at once, on random views ---------------------------------- */

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A position that may serve as the G2 bound for a read on `node`. */
static int bound_ok(const wr_timeline *t, const wr_node_view *v, size_t n, int node, wr_lsn need) {
    if (node == t->last_node || t->last_node == -1) return 1;
    for (size_t i = 0; i < n; i++) {
        if ((int)i != t->last_node && v[i].role != WR_ROLE_PRIMARY) continue;
        if (v[i].lsn_at_us && v[i].lsn_at_us >= t->last_read_us && v[i].lsn <= need) return 1;
    }
    return 0;
}

static void random_views_never_break_the_guarantees(void) {
    uint64_t s = 0x2545F4914F6CDD1Du;
    int bad = 0;
    for (int round = 0; round < 200000; round++) {
        wr_node_view v[34];
        size_t n = 1 + rnd(&s) % 34, m = n > 32 ? 32 : n;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rnd(&s);
            v[i] = (wr_node_view){
                .role = (wr_role)(r % 5 == 0 ? WR_ROLE_PRIMARY : r % 11 == 0 ? WR_ROLE_UNKNOWN : WR_ROLE_REPLICA),
                .up = (r >> 8) % 6 != 0,
                .excluded = (r >> 12) % 7 == 0,
                .lsn = (r >> 16) % 64,
                .lsn_at_us = (r >> 24) % 4 == 0 ? 0 : T0 - 20 + (r >> 28) % 40,
                .rate = (r >> 36) % 3 == 0 ? -1.0 : (double)((r >> 40) % 4) * 100,
            };
        }
        uint64_t r = rnd(&s);
        wr_timeline t = session(r % 64, (int)((r >> 8) % (n + 2)) - 1, T0 - 20 + (r >> 16) % 40);
        uint32_t tried = (uint32_t)rnd(&s) & (uint32_t)rnd(&s);
        int waited = (r >> 24) & 1;
        uint64_t elapsed = (r >> 32) % (250 * MS);
        wr_policy p = {.budget_us = 200 * MS, .retry_interval_us = 10 * MS, .seed = (uint32_t)(r >> 40)};
        wr_choice c = wr_decide_read(&t, v, n, T0, T0 + elapsed, tried, waited, &p);

        int ok = 1;
        if (c.action == WR_ACT_CACHED || c.action == WR_ACT_CHECK) {
            const wr_node_view *x = c.node >= 0 && (size_t)c.node < m ? &v[c.node] : NULL;
            ok = x && x->role == WR_ROLE_REPLICA && x->up && !x->excluded && c.need >= t.need &&
                 bound_ok(&t, v, m, c.node, c.need);
            if (ok && c.action == WR_ACT_CACHED) ok = x->lsn >= c.need;
            if (ok) ok = !(tried >> c.node & 1u); /* never a replica this read already tried */
        } else if (c.action == WR_ACT_WAIT) {
            ok = elapsed < p.budget_us && c.wait_us > 0 && c.wait_us <= p.retry_interval_us &&
                 c.wait_us <= p.budget_us - elapsed;
        } else {
            ok = c.node == -1 || (c.node < (int)m && v[c.node].role == WR_ROLE_PRIMARY && v[c.node].up);
            ok = ok && (c.reason == WR_REASON_PRIMARY_BUDGET || c.reason == WR_REASON_PRIMARY_LAGGING ||
                        c.reason == WR_REASON_PRIMARY_NO_REPLICA);
        }
        /* Sticky: a usable last node that covers the need is always read. */
        int L = t.last_node;
        if (L >= 0 && (size_t)L < m && v[L].role == WR_ROLE_REPLICA && v[L].up && !v[L].excluded &&
            v[L].lsn >= t.need && !(tried >> L & 1u))
            ok = ok && c.action == WR_ACT_CACHED && c.node == L;
        if (!ok && bad++ < 5) fprintf(stderr, "  round %d: action %d node %d\n", round, c.action, c.node);
    }
    CHECK_INT(bad, 0);
}

/* ---- names ----------------------------------------------------------------- */

static void every_reason_has_its_stable_name(void) {
    static const char *const names[WR_REASON_COUNT] = {
        "none", "replica_cached", "replica_checked", "replica_other", "replica_waited", "primary_budget",
        "primary_lagging", "primary_no_replica", "primary_forced", "write", "transaction", "primary_read_only",
        "primary_unknown"};
    for (int r = 0; r < WR_REASON_COUNT; r++) CHECK_STR(wr_reason_name((wr_reason)r), names[r]);
    CHECK_STR(wr_reason_name((wr_reason)WR_REASON_COUNT), "unknown");
    CHECK_STR(wr_reason_name((wr_reason)-1), "unknown");
}

static void every_status_and_node_state_has_its_stable_name(void) {
    static const char *const status[] = {"ok", "bad_argument", "bad_token", "connect_error", "sql_error",
                                         "unknown_outcome", "no_primary", "bad_state", "out_of_memory",
                                         "internal_error", "timeout", "split_brain", "interrupted"};
    for (int i = 0; i < (int)N(status); i++) CHECK_STR(wr_status_name((wr_status)i), status[i]);
    CHECK_STR(wr_status_name((wr_status)N(status)), "unknown");
    CHECK_STR(wr_status_name((wr_status)-3), "unknown");
    static const char *const state[] = {"unknown", "up", "streaming", "catching_up", "lagging", "down", "fenced"};
    for (int i = 0; i < (int)N(state); i++) CHECK_STR(wr_node_state_name((wr_node_state)i), state[i]);
    CHECK_STR(wr_node_state_name((wr_node_state)N(state)), "unknown");
    CHECK_STR(wr_node_state_name((wr_node_state)1000), "unknown");
}

int main(void) {
    RUN(an_empty_timeline_needs_nothing_and_has_no_pending_read);
    RUN(a_write_raises_the_need_and_settles_the_pending_read);
    RUN(a_primary_read_counts_like_a_write);
    RUN(a_replica_read_needs_what_it_saw_and_becomes_the_last_node);
    RUN(the_need_never_goes_down);
    RUN(a_replica_read_on_an_unknown_node_stays_pending);
    RUN(the_upper_bound_is_the_need_when_no_read_is_pending);
    RUN(a_probe_of_the_last_node_sent_after_the_read_bounds_it);
    RUN(a_probe_of_the_primary_sent_after_the_read_bounds_it);
    RUN(probes_sent_before_the_read_ended_or_never_bound_nothing);
    RUN(with_two_bounds_the_upper_bound_is_the_safer_higher_one);
    RUN(the_upper_bound_is_never_below_the_need);

    RUN(read_goes_to_a_replica_whose_known_position_covers_the_need);
    RUN(a_new_session_reads_from_a_replica_never_probed);
    RUN(the_last_node_is_preferred_while_it_covers_the_need);
    RUN(the_seed_spreads_new_sessions_over_fresh_replicas);
    RUN(the_seed_also_spreads_when_the_last_node_is_behind);
    RUN(another_replica_must_have_what_the_last_read_may_have_seen);
    RUN(without_an_upper_bound_only_the_last_node_may_serve);
    RUN(without_an_upper_bound_and_the_last_node_down_the_read_goes_to_the_primary);
    RUN(a_last_node_that_matches_no_view_is_still_pending);
    RUN(the_check_goes_to_the_replica_known_furthest_ahead);
    RUN(on_a_tie_the_check_goes_to_the_last_node);
    RUN(tried_replicas_are_not_checked_again_before_a_wait);
    RUN(a_fresh_replica_this_read_already_tried_is_not_read_again_before_a_wait);
    RUN(a_fresh_replica_after_one_was_behind_is_read_as_other);
    RUN(a_replica_not_yet_tried_is_checked_even_when_the_budget_is_spent);
    RUN(the_read_waits_within_the_budget_when_every_replica_was_behind);
    RUN(the_wait_is_capped_by_the_time_left);
    RUN(after_a_wait_the_replica_read_says_waited);
    RUN(no_wait_for_replicas_whose_replay_is_paused);
    RUN(no_wait_when_replay_is_too_slow_for_the_time_left);
    RUN(the_read_waits_when_one_replica_may_catch_up);
    RUN(the_rate_is_judged_against_each_replicas_own_need);
    RUN(only_usable_replicas_are_waited_for);
    RUN(read_goes_to_primary_when_every_replica_is_paused_and_budget_spent);
    RUN(a_zero_budget_goes_to_the_primary_as_soon_as_every_replica_was_behind);
    RUN(read_goes_to_primary_as_lagging_when_every_replica_is_past_the_limit);
    RUN(read_goes_to_primary_as_no_replica_when_every_replica_is_down);
    RUN(the_primary_choice_names_the_primary_that_is_up);
    RUN(excluded_replicas_are_never_chosen);
    RUN(excluded_and_down_replicas_are_never_checked_or_read);
    RUN(only_replicas_serve_replica_reads);
    RUN(the_clock_running_backwards_spends_no_budget);
    RUN(nodes_past_the_32nd_are_ignored);
    RUN(missing_arguments_do_not_crash);
    RUN(random_views_never_break_the_guarantees);
    RUN(every_reason_has_its_stable_name);
    RUN(every_status_and_node_state_has_its_stable_name);
    return check_exit();
}
