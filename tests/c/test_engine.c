/* test_engine.c — the engine's rules (walrouter_engine.h) as specifications,
 * driven by a fake clock and scripted observations; no server, no I/O.
 *
 * The cast: node P is the primary, A, B and C its replicas, all on timeline
 * 1 at position 1000 unless a test says otherwise. `world` is what the nodes
 * would answer to a probe; tests change it to stage failovers. `play` is a
 * tiny driver: it asks wr_op_next for steps and answers them from a script
 * of beats (RUN and SNAPSHOT: a scripted wr_io; PROBE: the world answers;
 * WAIT: the fake clock jumps to the deadline) until the operation is DONE.
 * A step the script does not expect, or a beat left over, fails the test. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "walrouter_engine.h"

#define MS 1000ull
#define SEC (1000 * MS)
#define MIB (1024ull * 1024)
#define T0 (1000 * SEC) /* when every test starts */
#define BUDGET (WR_DEFAULT_BUDGET_US + 0ull)
#define STATEMENT_TIMEOUT (WR_DEFAULT_STATEMENT_TIMEOUT_US + 0ull)
#define BIT(i) (1u << (i))

enum { P = 0, A = 1, B = 2, C = 3, NNODES = 4 };
static const char *const names[NNODES] = {"p.db:5432", "a.db:5432", "b.db:5432", "c.db:5432"};

/* ---- the world and the fake clock ------------------------------------------ */

static uint64_t now;
static wr_engine eng;

typedef struct world_node {
    int reachable; /* answers probes; else a probe fails */
    int primary;   /* claims primary (not in recovery) */
    uint32_t tli;
    wr_lsn lsn;    /* primary: insert (= flush); replica: replay */
    int receiver;  /* replica: WAL receiver streaming 1/0 */
    uint32_t rtt_us;
} world_node;
static world_node world[NNODES];

static int64_t unix_ms(void) { return 1700000000000ll + (int64_t)(now / MS); }

/* Node i is probed now: what the world says, or a failure. */
static void probe_node(int i) {
    const world_node *w = &world[i];
    if (!w->reachable) {
        wr_engine_node_failed(&eng, i, now, 0x80000000u, "connection refused");
        return;
    }
    wr_probe p = {.in_recovery = !w->primary, .tli = w->tli, .lsn = w->lsn,
                  .flushed = w->primary ? w->lsn : 0, .received = w->primary ? 0 : w->lsn,
                  .receiver = w->primary ? -1 : w->receiver, .wal_block_size = 8192,
                  .wal_segment_size = 16 * MIB};
    wr_engine_probe_ok(&eng, i, &p, now, now + w->rtt_us, unix_ms());
}

static void probe_all(void) {
    for (int i = 0; i < NNODES; i++) probe_node(i);
}

static void set_node(int i, int primary, uint32_t tli, wr_lsn lsn) {
    world[i] = (world_node){.reachable = 1, .primary = primary, .tli = tli, .lsn = lsn, .receiver = 1,
                            .rtt_us = world[i].rtt_us ? world[i].rtt_us : MS};
}

/* P primary, A, B, C replicas, all on timeline 1 at 1000, probed at T0. */
static void cluster_with(const wr_config *cfg) {
    now = T0;
    memset(world, 0, sizeof world);
    set_node(P, 1, 1, 1000);
    for (int i = A; i <= C; i++) set_node(i, 0, 1, 1000);
    CHECK_INT(wr_engine_init(&eng, cfg, names, NNODES), 0);
    probe_all();
}
static void cluster(void) { cluster_with(NULL); }

static void unreachable(int i) {
    world[i].reachable = 0;
    probe_node(i);
}

/* Node i is probed as the primary of timeline tli at lsn. */
static void promote(int i, uint32_t tli, wr_lsn lsn) {
    set_node(i, 1, tli, lsn);
    probe_node(i);
}

/* Node i is probed as a replica of timeline tli at lsn. */
static void follow(int i, uint32_t tli, wr_lsn lsn) {
    set_node(i, 0, tli, lsn);
    probe_node(i);
}

/* Whether node i would serve a replica read now. */
static int serves_reads(int i) {
    wr_node_view v[WR_ENGINE_MAX_NODES];
    wr_engine_views(&eng, now, v);
    return v[i].role == WR_ROLE_REPLICA && v[i].up && !v[i].excluded;
}

static int write_target(void) {
    int node = -2;
    char msg[256];
    if (wr_engine_write_target(&eng, names, &node, msg, sizeof msg) != 0) CHECK_INT(node, -1);
    return node;
}

/* ---- the scripted driver ----------------------------------------------------- */

enum { END = -1, ANY_STEP = -2 };       /* beat kinds besides WR_STEP_* */
enum { ANY = -100, ANY_REPLICA = -101 }; /* beat nodes besides indices */

typedef struct beat {
    int kind;             /* the step expected: WR_STEP_RUN, _SNAPSHOT, _PROBE, ANY_STEP */
    int node;             /* on which node (RUN/SNAPSHOT), or ANY / ANY_REPLICA */
    wr_io io;             /* RUN/SNAPSHOT: what happened (sent_us is filled in) */
    void (*before)(void); /* changes the world first (a failover mid-flight) */
    int many;             /* also answers every following step it matches */
    uint64_t took_us;     /* the round trip's duration; 0: 1 ms */
} beat;

#define RUN_OK(n) {.kind = WR_STEP_RUN, .node = (n), .io = {.outcome = WR_IO_OK}}
#define RUN_REPLAYED(n, lsn) \
    {.kind = WR_STEP_RUN, .node = (n), .io = {.outcome = WR_IO_OK, .have_replay = 1, .replay = (lsn)}}
#define RUN_WROTE(n, tli, lsn)                                                                       \
    {.kind = WR_STEP_RUN, .node = (n),                                                               \
     .io = {.outcome = WR_IO_OK, .have_insert = 1, .insert_tli = (tli), .insert = (lsn), .flushed = (lsn)}}
#define RUN_FAILS(n, what) {.kind = WR_STEP_RUN, .node = (n), .io = {.outcome = (what), .detail = "connection reset"}}
#define RUN_REFUSED(n, state) {.kind = WR_STEP_RUN, .node = (n), .io = {.outcome = WR_IO_SQL_ERROR, .sqlstate = state}}
#define SNAPSHOT_IS(n, text) {.kind = WR_STEP_SNAPSHOT, .node = (n), .io = {.outcome = WR_IO_OK, .snapshot = (text)}}
#define SNAPSHOT_FAILS(n, what) {.kind = WR_STEP_SNAPSHOT, .node = (n), .io = {.outcome = (what)}}
#define PROBED {.kind = WR_STEP_PROBE, .node = ANY}
#define PROBED_AFTER(fn) {.kind = WR_STEP_PROBE, .node = ANY, .before = (fn)}
#define NOTHING {.kind = END}

#define MAX_STEPS 96
typedef struct play {
    wr_op op;
    int n;                     /* steps given */
    wr_step step[MAX_STEPS];
    uint64_t at[MAX_STEPS];    /* when each was given */
    wr_step done;              /* the DONE step (kind -1 if the script broke) */
    int runs, snapshots, probes, waits;
    uint64_t start_us;
} play;

static const char *step_name(int kind) {
    static const char *const k[] = {"RUN", "WAIT", "PROBE", "SNAPSHOT", "DONE"};
    return kind >= 0 && kind <= WR_STEP_DONE ? k[kind] : kind == END ? "nothing more" : "any step";
}

static int matches(const beat *b, const wr_step *st) {
    if (b->kind == END || (b->kind != ANY_STEP && b->kind != st->kind)) return 0;
    if (st->kind == WR_STEP_PROBE || b->node == ANY) return 1;
    if (b->node == ANY_REPLICA) return st->node >= 0 && st->node != eng.primary;
    return b->node == st->node;
}

static void broke(int line, const char *what, const wr_step *st, const beat *b) {
    check_failures++;
    fprintf(stderr, "%s:%d: %s: the engine gave %s on node %d, the script has %s on node %d\n", __FILE__, line,
            what, step_name(st->kind), st->node, step_name(b->kind), b->node);
}

/* Runs one operation of session s from now to DONE against the script. */
static play run_op(int line, wr_sess *s, wr_op_kind kind, const beat *beats) {
    static play r; /* large: keep it off the stack; copied out */
    memset(&r, 0, sizeof r);
    r.done.kind = -1;
    r.done.status = -1;
    r.start_us = now;
    wr_op_start(&r.op, kind, now);
    size_t bi = 0;
    int used = 0;
    while (r.n < MAX_STEPS) {
        wr_step st;
        wr_op_next(&r.op, s, &eng, now, &st);
        r.step[r.n] = st;
        r.at[r.n++] = now;
        if (st.kind == WR_STEP_DONE) {
            r.done = st;
            if (!(beats[bi].kind == END || (beats[bi].many && used && beats[bi + 1].kind == END)))
                broke(line, "the script was not used up", &st, &beats[bi]);
            return r;
        }
        if (st.deadline_us <= now) { /* G8: every step has a deadline ahead */
            check_failures++;
            fprintf(stderr, "%s:%d: %s step %d has no deadline ahead (%llu <= %llu)\n", __FILE__, line,
                    step_name(st.kind), r.n - 1, (unsigned long long)st.deadline_us, (unsigned long long)now);
        }
        if (st.kind == WR_STEP_WAIT) {
            r.waits++;
            now = st.deadline_us > now ? st.deadline_us : now + 1;
            continue;
        }
        if (beats[bi].many && used && !matches(&beats[bi], &st)) {
            bi++;
            used = 0;
        }
        const beat *b = &beats[bi];
        if (!matches(b, &st)) {
            broke(line, "unexpected step", &st, b);
            return r;
        }
        if (b->many) used = 1;
        else bi++;
        if (b->before) b->before();
        if (st.kind == WR_STEP_PROBE) {
            r.probes++;
            for (int i = 0; i < NNODES; i++)
                if (st.probe_mask & BIT(i)) probe_node(i);
            now += MS;
            continue;
        }
        if (st.kind == WR_STEP_RUN) r.runs++;
        else r.snapshots++;
        wr_io io = b->io;
        io.sent_us = now;
        now += b->took_us ? b->took_us : MS;
        if (io.have_insert && world[st.node].primary && io.insert > world[st.node].lsn) world[st.node].lsn = io.insert;
        wr_op_feed(&r.op, s, &eng, &io, now, 0x80000000u);
    }
    check_failures++;
    fprintf(stderr, "%s:%d: the operation did not finish within %d steps\n", __FILE__, line, MAX_STEPS);
    return r;
}

#define PLAY(s, kind, ...) run_op(__LINE__, (s), (kind), (const beat[]){__VA_ARGS__, NOTHING})

/* The first step of the given kind in a play, or NULL. */
static const wr_step *first_step(const play *r, int kind, int *at) {
    for (int i = 0; i < r->n; i++)
        if (r->step[i].kind == kind) {
            if (at) *at = i;
            return &r->step[i];
        }
    return NULL;
}

/* A session that wrote at (tli, lsn) on P. */
static void wrote(wr_sess *s, uint32_t tli, wr_lsn lsn) {
    play r = PLAY(s, WR_OP_WRITE, RUN_WROTE(P, tli, lsn));
    CHECK_INT(r.done.status, WR_E_OK);
}

/* ==== election (G7) ============================================================ */

static void the_primary_on_the_highest_timeline_wins(void) {
    cluster();
    CHECK_INT(write_target(), P);
    promote(B, 2, 2000); /* P still answers as a primary on timeline 1 */
    CHECK_INT(write_target(), B);
    CHECK_INT(eng.top_tli, 2);
    probe_all();
    CHECK_INT(write_target(), B);
    CHECK_INT(wr_engine_state(&eng, B), WR_STATE_UP);
}

static void old_primary_on_an_older_timeline_is_fenced_and_gets_no_writes(void) {
    cluster();
    promote(B, 2, 2000);
    probe_node(P); /* probed last, still claiming primary on timeline 1 */
    CHECK_INT(wr_engine_state(&eng, P), WR_STATE_FENCED);
    CHECK_INT(write_target(), B);
    wr_node_view v[WR_ENGINE_MAX_NODES];
    CHECK_INT(wr_engine_views(&eng, now, v), B);
    CHECK(v[P].excluded);
    CHECK(!v[P].up);

    wr_sess s;
    wr_sess_init(&s, 0);
    play w = PLAY(&s, WR_OP_WRITE, RUN_WROTE(B, 2, 2100));
    CHECK_INT(w.done.status, WR_E_OK);
    CHECK_INT(w.done.node, B);
    /* A and C still follow timeline 1: reads go to B, never to P */
    wr_sess_init(&s, 0);
    play r = PLAY(&s, WR_OP_READ, RUN_WROTE(B, 2, 2100));
    CHECK_INT(r.done.node, B);
}

/* The cluster manager goes back a timeline (seen with Patroni 3.0.2 on
 * etcd3): the old primary takes over again and the node promoted meanwhile
 * is rewound to follow it. Writes acknowledged on the newer timeline may be
 * gone, so the old primary stays fenced, and the error says why. */
static void an_old_primary_reinstated_on_an_older_timeline_stays_fenced_and_the_error_says_why(void) {
    cluster();
    promote(B, 2, 2000);
    probe_node(P);        /* resumed, still claiming timeline 1 */
    follow(B, 1, 1500);   /* rewound onto timeline 1, following P */
    CHECK_INT(wr_engine_state(&eng, P), WR_STATE_FENCED);
    CHECK_INT(write_target(), -1);
    wr_sess s;
    wr_sess_init(&s, 0);
    play w = PLAY(&s, WR_OP_WRITE, PROBED); /* every node is asked again: same answers */
    CHECK_INT(w.done.status, WR_E_NO_PRIMARY);
    CHECK_INT(w.runs, 0);
    CHECK(strstr(w.done.msg, "the statement was not sent") != NULL);
    CHECK(strstr(w.done.msg, names[P]) != NULL);
    CHECK(strstr(w.done.msg, "timeline 1, older than timeline 2") != NULL);
}

static void two_reachable_claimants_on_one_timeline_get_no_writes(void) {
    cluster();
    promote(B, 1, 1000); /* same timeline as P: they cannot be ordered */
    int node = 7;
    char msg[256] = "";
    CHECK_INT(wr_engine_write_target(&eng, names, &node, msg, sizeof msg), -1);
    CHECK_INT(node, -1);
    CHECK(strstr(msg, names[P]) != NULL);
    CHECK(strstr(msg, names[B]) != NULL);
    CHECK_INT(wr_engine_state(&eng, P), WR_STATE_FENCED);
    CHECK_INT(wr_engine_state(&eng, B), WR_STATE_FENCED);

    wr_sess s;
    wr_sess_init(&s, 0);
    play w = PLAY(&s, WR_OP_WRITE, NOTHING);
    CHECK_INT(w.done.status, WR_E_SPLIT_BRAIN);
    CHECK_INT(w.runs, 0);
    CHECK(strstr(w.done.msg, names[P]) && strstr(w.done.msg, names[B]));
    play r = PLAY(&s, WR_OP_READ_PRIMARY, NOTHING);
    CHECK_INT(r.done.status, WR_E_SPLIT_BRAIN);
}

static void a_second_claimant_on_the_timeline_of_a_down_primary_does_not_take_over(void) {
    cluster();
    unreachable(P);
    CHECK_INT(write_target(), P); /* it may come back */
    promote(B, 1, 1000);          /* not a successor: a later timeline would be */
    CHECK(write_target() != B);
    wr_sess s;
    wr_sess_init(&s, 0);
    play w = PLAY(&s, WR_OP_WRITE, NOTHING); /* P's claim stands until it steps down */
    CHECK_INT(w.done.status, WR_E_SPLIT_BRAIN);
    CHECK_INT(w.runs, 0);
    /* P comes back on the same timeline: now they are two */
    world[P].reachable = 1;
    probe_node(P);
    CHECK_INT(write_target(), -1);
}

static void a_split_brain_does_not_end_when_one_claimant_becomes_unreachable(void) {
    cluster();
    promote(B, 1, 1000);
    CHECK_INT(write_target(), -1);
    unreachable(P);
    CHECK_INT(write_target(), -1); /* B was never proven to be the one */
    CHECK(eng.primary != B);
}

static void a_split_brain_ends_when_one_claimant_steps_down(void) {
    cluster();
    promote(B, 1, 1000);
    CHECK_INT(write_target(), -1);
    follow(B, 1, 1000);
    CHECK_INT(write_target(), P);
    CHECK_INT(wr_engine_state(&eng, P), WR_STATE_UP);
}

static void a_down_primary_remains_the_write_target_until_a_later_timeline_appears(void) {
    cluster();
    unreachable(P);
    CHECK_INT(write_target(), P);
    CHECK_INT(wr_engine_state(&eng, P), WR_STATE_DOWN);
    wr_sess s;
    wr_sess_init(&s, 0);
    play w = PLAY(&s, WR_OP_WRITE, PROBED); /* in backoff: rediscover, still down */
    CHECK_INT(w.done.status, WR_E_NO_PRIMARY);
    CHECK_INT(w.runs, 0);
    CHECK(strstr(w.done.msg, "not sent") != NULL);
    CHECK_INT(write_target(), P);
    promote(B, 2, 2000);
    CHECK_INT(write_target(), B);
}

static void a_demoted_primary_that_comes_back_as_replica_serves_reads_once_placed(void) {
    cluster();
    unreachable(P);
    promote(B, 2, 2000);
    follow(A, 2, 2000);
    follow(C, 2, 2000);
    CHECK_INT(write_target(), B);
    /* P was rewound and follows B; its backoff is not over yet */
    set_node(P, 0, 2, 2000);
    CHECK(!serves_reads(P));
    now += 10 * SEC;
    promote(B, 2, 2000);
    follow(A, 2, 2000);
    follow(C, 2, 2000);
    CHECK(!serves_reads(P)); /* not probed yet */
    probe_node(P);
    CHECK_INT(wr_engine_state(&eng, P), WR_STATE_STREAMING);
    CHECK(serves_reads(P));
    CHECK_INT(eng.nodes[P].fenced, 0);
    /* the only fresh replica: a read goes there */
    unreachable(A);
    unreachable(C);
    wr_sess s;
    wr_sess_init(&s, 0);
    play r = PLAY(&s, WR_OP_READ, RUN_OK(P));
    CHECK_INT(r.done.status, WR_E_OK);
    CHECK_INT(r.done.reason, WR_REASON_REPLICA_CACHED);
}

/* ==== node health ================================================================ */

static void a_failed_node_backs_off_50ms_doubling_to_5s_with_jitter(void) {
    static const uint32_t rands[] = {0, UINT32_MAX, 123456789};
    static const uint32_t backoff_ms[] = {50, 100, 200, 400, 800, 1600, 3200, 5000, 5000};
    for (size_t r = 0; r < sizeof rands / sizeof rands[0]; r++) {
        cluster();
        for (size_t k = 0; k < sizeof backoff_ms / sizeof backoff_ms[0]; k++) {
            wr_engine_node_failed(&eng, A, now, rands[r], "timeout");
            uint64_t span = backoff_ms[k] * MS, wait = eng.nodes[A].down_until_us - now;
            CHECK_INT(eng.nodes[A].backoff_ms, backoff_ms[k]);
            CHECK(wait >= span * 3 / 4);
            CHECK(wait <= span * 5 / 4);
            if (rands[r] == 0) CHECK_U64(wait, span * 3 / 4);
            CHECK(!wr_engine_may_connect(&eng, A, now));
            CHECK(!wr_engine_may_connect(&eng, A, now + wait - 1));
            CHECK(wr_engine_may_connect(&eng, A, now + wait));
            CHECK_INT(wr_engine_state(&eng, A), WR_STATE_DOWN);
            now += wait; /* tried again as soon as allowed, and failed again */
        }
    }
}

static void a_node_back_from_down_serves_no_reads_until_a_probe_places_it(void) {
    cluster();
    unreachable(A);
    now += 10 * SEC;
    probe_node(P); /* keep the others measured */
    probe_node(B);
    probe_node(C);
    CHECK(wr_engine_may_connect(&eng, A, now));
    CHECK(!serves_reads(A));
    wr_engine_observe(&eng, A, 1, 1000, 0, now); /* a late statement's position does not place it */
    CHECK(!serves_reads(A));
    wr_sess s;
    wr_sess_init(&s, 0); /* seed 0 would pick A first */
    play r = PLAY(&s, WR_OP_READ, RUN_OK(ANY_REPLICA));
    CHECK(r.done.node != A);
    world[A].reachable = 1;
    probe_node(A);
    CHECK(serves_reads(A));
    wr_sess_init(&s, 0);
    r = PLAY(&s, WR_OP_READ, RUN_OK(A));
    CHECK_INT(r.done.node, A);
}

static void probes_are_due_for_unplaced_nodes_out_of_backoff_and_for_old_probes(void) {
    now = T0;
    CHECK_INT(wr_engine_init(&eng, NULL, names, NNODES), 0);
    CHECK_INT(wr_engine_probes_due(&eng, now), 0xF); /* never probed */
    cluster();
    CHECK_INT(wr_engine_probes_due(&eng, now), 0);
    unreachable(A);
    CHECK_INT(wr_engine_probes_due(&eng, now), 0); /* in backoff */
    uint64_t until = eng.nodes[A].down_until_us;
    CHECK_INT(wr_engine_probes_due(&eng, until - 1), 0);
    CHECK_INT(wr_engine_probes_due(&eng, until), BIT(A));
    CHECK_INT(wr_engine_probes_due(&eng, T0 + WR_DEFAULT_REFRESH_US - 1), BIT(A));
    CHECK_INT(wr_engine_probes_due(&eng, T0 + WR_DEFAULT_REFRESH_US), 0xF);
}

/* A probe a read started has the read's short deadline: one cut off by it
 * (a slow login on a loaded machine) is no proof the node is down. It is
 * ignored and the node is due for a fair probe at once. A probe that had
 * half the connect timeout, or that failed with an error, fails the node. */
static void a_probe_cut_off_by_a_reads_short_deadline_does_not_fail_the_node(void) {
    cluster();
    CHECK_INT(wr_engine_probes_due(&eng, now), 0);
    CHECK_INT(wr_engine_probe_failed(&eng, A, now, now + BUDGET, 1, now + BUDGET, 0x80000000u, "timeout"), 0);
    CHECK(serves_reads(A));
    CHECK_INT(wr_engine_state(&eng, A), WR_STATE_STREAMING);
    CHECK_INT(wr_engine_probes_due(&eng, now), BIT(A)); /* probed again, with a fair deadline */
    /* the refresher's probe: the whole connect timeout */
    uint64_t fair = WR_DEFAULT_CONNECT_TIMEOUT_US;
    CHECK_INT(wr_engine_probe_failed(&eng, A, now, now + fair, 1, now + fair, 0x80000000u, "timeout"), 1);
    CHECK(!serves_reads(A));
    CHECK_INT(wr_engine_state(&eng, A), WR_STATE_DOWN);
    /* half of it is a fair chance too */
    CHECK_INT(wr_engine_probe_failed(&eng, B, now, now + fair / 2, 1, now + fair / 2, 0x80000000u, "timeout"), 1);
    CHECK(!serves_reads(B));
    /* an error of the node (refused) counts whatever the deadline */
    CHECK_INT(wr_engine_probe_failed(&eng, C, now, now + BUDGET, 0, now + MS, 0x80000000u, "refused"), 1);
    CHECK(!serves_reads(C));
    CHECK_INT(wr_engine_probe_failed(&eng, NNODES, now, now + BUDGET, 1, now, 0, "x"), 0); /* no such node */
}

static void state_changes_are_reported_once(void) {
    cluster();
    int ch[3 * NNODES];
    CHECK_INT(wr_engine_changes(&eng, ch, NNODES), NNODES);
    CHECK_INT(ch[0], P);
    CHECK_INT(ch[1], WR_STATE_UNKNOWN);
    CHECK_INT(ch[2], WR_STATE_UP);
    CHECK_INT(wr_engine_changes(&eng, ch, NNODES), 0);
    unreachable(B);
    CHECK_INT(wr_engine_changes(&eng, ch, NNODES), 1);
    CHECK_INT(ch[0], B);
    CHECK_INT(ch[1], WR_STATE_STREAMING);
    CHECK_INT(ch[2], WR_STATE_DOWN);
}

/* ==== lag (G4) ====================================================================== */

static void default_lag_limits_are_finite(void) {
    wr_config c;
    wr_config_resolve(NULL, &c);
    CHECK_U64(c.max_lag_bytes, 64 * MIB);
    CHECK_U64(c.max_lag_us, 10 * SEC);
    CHECK_INT(wr_engine_init(&eng, &(wr_config){0}, names, NNODES), 0);
    CHECK_U64(eng.cfg.max_lag_bytes, 64 * MIB);
    CHECK_U64(eng.cfg.max_lag_us, 10 * SEC);
}

static void a_replica_probed_before_any_primary_has_unknown_lag_and_serves_no_reads(void) {
    now = T0;
    memset(world, 0, sizeof world);
    CHECK_INT(wr_engine_init(&eng, NULL, names, NNODES), 0);
    follow(A, 1, 1000);
    CHECK_INT(eng.nodes[A].lag_bytes, -1);
    CHECK_INT(wr_engine_state(&eng, A), WR_STATE_LAGGING);
    CHECK(!serves_reads(A));
    promote(P, 1, 1000);
    CHECK_INT(eng.nodes[A].lag_bytes, 0);
    CHECK(serves_reads(A));
}

static void a_replica_a_little_behind_the_first_primary_sample_is_probed_again_soon(void) {
    now = T0;
    memset(world, 0, sizeof world);
    CHECK_INT(wr_engine_init(&eng, NULL, names, NNODES), 0);
    promote(P, 1, 2000);
    follow(A, 1, 1990); /* behind the only sample: its staleness is not known */
    CHECK(!serves_reads(A));
    now += 100 * MS; /* long before the refresh interval */
    CHECK(wr_engine_probes_due(&eng, now) & BIT(A));
    CHECK(!(wr_engine_probes_due(&eng, now) & BIT(P)));
    follow(A, 1, 2000); /* it has the sample now */
    CHECK(serves_reads(A));
    CHECK(!(wr_engine_probes_due(&eng, now + 100 * MS) & BIT(A)));
}

/* On a fresh cluster, a read of new session s: its first step, a RUN on a
 * replica. */
static int read_started(wr_sess *s, wr_op *op, wr_step *st) {
    cluster();
    wr_sess_init(s, 0);
    wr_op_start(op, WR_OP_READ, now);
    wr_op_next(op, s, &eng, now, st);
    CHECK_INT(st->kind, WR_STEP_RUN);
    return st->node;
}

static void a_replica_is_not_blamed_for_the_little_a_read_had_left_for_it(void) {
    wr_sess s;
    wr_op op;
    wr_step st;
    int first = read_started(&s, &op, &st);
    CHECK(st.deadline_us - now >= BUDGET); /* a whole budget for the first replica */
    now = st.deadline_us;                   /* it never answered: it is blamed */
    wr_io lost = {.outcome = WR_IO_TIMEOUT, .deadline_hit = 1, .detail = "no answer"};
    wr_op_feed(&op, &s, &eng, &lost, now, 0);
    CHECK(!eng.nodes[first].up);
    wr_op_next(&op, &s, &eng, now, &st);
    CHECK_INT(st.kind, WR_STEP_RUN);
    int second = st.node;
    CHECK(second != first);
    CHECK(st.deadline_us - now < BUDGET / 2); /* what is left of the read */
    now = st.deadline_us;                      /* its connect did not finish in that */
    wr_io unsent = {.outcome = WR_IO_NOT_SENT, .deadline_hit = 1, .detail = "connect timed out"};
    wr_op_feed(&op, &s, &eng, &unsent, now, 0);
    CHECK(eng.nodes[second].up); /* not blamed: the read moves on */
    CHECK(serves_reads(second));
}

/* A statement sent late in the step (after a slow connect the step made)
 * is judged by the time the node had it, not by the step's. */
static void a_timeout_is_judged_from_when_the_node_had_the_statement(void) {
    wr_sess s;
    wr_op op;
    wr_step st;
    int first = read_started(&s, &op, &st);
    uint64_t deadline = st.deadline_us;
    wr_io late = {.outcome = WR_IO_TIMEOUT, .deadline_hit = 1, .sent_us = deadline - BUDGET / 4,
                  .detail = "no answer"};
    now = deadline;
    wr_op_feed(&op, &s, &eng, &late, now, 0);
    CHECK(eng.nodes[first].up); /* it had a quarter of the budget: not blamed */
    CHECK(serves_reads(first));
    wr_op_next(&op, &s, &eng, now, &st);
    CHECK(st.node != first);
}

static void a_replica_on_another_timeline_than_the_primary_serves_no_reads(void) {
    cluster();
    unreachable(P);
    promote(B, 2, 2000); /* A and C still on timeline 1 */
    CHECK(!serves_reads(A));
    CHECK_INT(eng.nodes[A].lag_bytes, -1);
    CHECK_INT(wr_engine_state(&eng, A), WR_STATE_LAGGING);
    wr_sess s;
    wr_sess_init(&s, 0);
    play r = PLAY(&s, WR_OP_READ, RUN_WROTE(B, 2, 2000));
    CHECK_INT(r.done.node, B);
    follow(A, 2, 2000);
    CHECK(serves_reads(A));
}

static void a_replica_whose_receiver_stopped_keeps_the_newer_timeline_it_was_seen_on(void) {
    /* A replica's probe takes its timeline from its WAL receiver; with the
     * receiver stopped (its primary just died, or it is reconnecting) from
     * its last restartpoint, which can be older than what it replays. Here:
     * a failover to B on timeline 2, then B dies in turn. */
    cluster();
    unreachable(P);
    promote(B, 2, 2000);
    follow(A, 2, 2000);
    follow(C, 2, 2000);
    now += 100 * MS;
    unreachable(B);
    for (int i = A; i <= C; i += C - A) {
        world[i].receiver = 0;
        world[i].tli = 1; /* the last restartpoint is still on timeline 1 */
        probe_node(i);
        CHECK_INT(eng.nodes[i].tli, 2);
        CHECK(serves_reads(i));
    }
    wr_sess s;
    wr_sess_init(&s, 0);
    wr_timeline_wrote_at(&s.tl, 2, 2000);
    play r = PLAY(&s, WR_OP_READ, RUN_OK(ANY_REPLICA));
    CHECK_INT(r.done.status, WR_E_OK);
    /* Not once its replay went back, nor across a failure (it may come back
     * rewound or restored): then it is on the timeline it says. */
    world[C].lsn = 1500;
    probe_node(C);
    CHECK_INT(eng.nodes[C].tli, 1);
    unreachable(A);
    now += 10 * SEC;
    world[A].reachable = 1;
    probe_node(A);
    CHECK_INT(eng.nodes[A].tli, 1);
    /* A streaming receiver's timeline is taken as it is. */
    follow(C, 1, 1500);
    world[C].tli = 3;
    probe_node(C);
    CHECK_INT(eng.nodes[C].tli, 3);
}

static void a_replica_whose_replay_stopped_is_excluded_once_max_lag_behind_the_primary(void) {
    /* The "WAL receiver stopped" case: A answers probes promptly, its own
     * view says nothing is wrong; only the primary's samples tell. */
    cluster();
    world[A].receiver = 0;
    for (int k = 1; k <= 12; k++) {
        now = T0 + (uint64_t)k * SEC;
        world[P].lsn += 100;
        world[B].lsn = world[C].lsn = world[P].lsn;
        probe_all();
        CHECK(serves_reads(B));
        CHECK_INT(eng.nodes[A].lag_bytes, 100 * k);
        if (k <= 9) {
            CHECK(serves_reads(A));
            CHECK_INT(wr_engine_state(&eng, A), WR_STATE_CATCHING_UP);
        }
        if (k >= 11) {
            CHECK(!serves_reads(A));
            CHECK_INT(wr_engine_state(&eng, A), WR_STATE_LAGGING);
        }
    }
    wr_sess s;
    wr_sess_init(&s, 0); /* seed 0 would pick A */
    play r = PLAY(&s, WR_OP_READ, RUN_OK(ANY_REPLICA));
    CHECK_INT(r.done.node, B);
}

static void replicas_count_as_stale_while_the_primary_cannot_be_sampled(void) {
    cluster();
    unreachable(P);
    now = T0 + 9 * SEC;
    probe_node(A);
    CHECK(serves_reads(A));
    now = T0 + 11 * SEC;
    probe_node(A);
    CHECK(!serves_reads(A)); /* nothing proves it is still within 10 s */
}

static void a_replica_more_bytes_behind_than_the_limit_is_excluded(void) {
    cluster();
    now = T0 + SEC;
    world[P].lsn = 1000 + 65 * MIB;
    probe_node(P);
    probe_node(A);
    CHECK(!serves_reads(A)); /* only a second behind, but 65 MiB */
    CHECK_INT(wr_engine_state(&eng, A), WR_STATE_LAGGING);
}

static void an_excluded_replica_is_let_back_in_only_under_half_of_the_bytes_limit(void) {
    cluster_with(&(wr_config){.max_lag_bytes = 1 * MIB});
    now = T0 + SEC;
    world[P].lsn = 1000 + 3 * MIB / 2;
    probe_node(P);
    probe_node(A);
    CHECK(!serves_reads(A)); /* 1.5 MiB behind */
    now = T0 + 1500 * MS;
    follow(A, 1, 1000 + 3 * MIB / 4);
    CHECK(!serves_reads(A)); /* 0.75 MiB: under the limit, not under half */
    now = T0 + 2 * SEC;
    follow(A, 1, 1000 + 6 * MIB / 5);
    CHECK(serves_reads(A)); /* 0.3 MiB */
}

static void an_excluded_replica_is_let_back_in_only_under_half_of_the_time_limit(void) {
    cluster();
    world[A].receiver = 0;
    for (int k = 1; k <= 12; k++) {
        now = T0 + (uint64_t)k * SEC;
        world[P].lsn = 1000 + 100 * (wr_lsn)k;
        probe_node(P);
        probe_node(A);
    }
    CHECK(!serves_reads(A));
    follow(A, 1, 1000 + 100 * 6); /* what P had 6 s ago */
    CHECK(!serves_reads(A));
    now = T0 + 13 * SEC;
    world[P].lsn = 1000 + 100 * 13;
    probe_node(P);
    follow(A, 1, 1000 + 100 * 12); /* what P had 1 s ago */
    CHECK(serves_reads(A));
}

/* ==== the session engine: reads (G1-G4) =============================================== */

static void a_read_is_served_by_the_last_replica_from_its_cached_position(void) {
    cluster();
    unreachable(A);
    wr_sess s;
    wr_sess_init(&s, 0);
    play r = PLAY(&s, WR_OP_READ, RUN_OK(B));
    CHECK_INT(r.done.reason, WR_REASON_REPLICA_CACHED);
    CHECK_INT(s.tl.last_node, B);
    now += 10 * SEC;
    probe_all();
    world[A].reachable = 1;
    probe_node(A); /* A is back; seed 0 would prefer it */
    r = PLAY(&s, WR_OP_READ, RUN_OK(B));
    CHECK_INT(r.step[0].kind, WR_STEP_RUN);
    CHECK_INT(r.step[0].flags, 0); /* no position check */
    CHECK_INT(r.done.reason, WR_REASON_REPLICA_CACHED);
}

static void a_read_checks_a_replica_not_known_to_be_fresh(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    wrote(&s, 1, 2000);
    play r = PLAY(&s, WR_OP_READ, RUN_REPLAYED(A, 2000));
    CHECK(r.step[0].flags & WR_RUN_CHECK_REPLAY);
    CHECK_U64(r.op.check_need, 2000);
    CHECK_INT(r.done.status, WR_E_OK);
    CHECK_INT(r.done.reason, WR_REASON_REPLICA_CHECKED);
    CHECK_U64(s.tl.need, 2000);
    CHECK_INT(s.tl.last_node, A);
}

static void a_checked_read_whose_position_did_not_come_back_is_not_used(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    wrote(&s, 1, 2000);
    play r = PLAY(&s, WR_OP_READ, RUN_OK(A), PROBED, RUN_REPLAYED(B, 2000));
    CHECK(r.step[0].flags & WR_RUN_CHECK_REPLAY);
    CHECK_INT(r.done.node, B);
    CHECK_U64(s.tl.need, 2000);
}

static void a_replica_found_behind_is_left_for_another_replica(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    wrote(&s, 1, 2000);
    play r = PLAY(&s, WR_OP_READ, RUN_REPLAYED(A, 1500), RUN_REPLAYED(B, 2100));
    CHECK_INT(r.done.node, B);
    CHECK_INT(r.done.reason, WR_REASON_REPLICA_OTHER);
    CHECK(r.step[1].flags & WR_RUN_CHECK_REPLAY);
    CHECK_U64(s.tl.need, 2100);
}

static void a_read_waits_for_a_replica_to_catch_up_within_its_budget(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    wrote(&s, 1, 2000);
    play r = PLAY(&s, WR_OP_READ, RUN_REPLAYED(A, 1500), RUN_REPLAYED(B, 1500), RUN_REPLAYED(C, 1500),
                  RUN_REPLAYED(ANY_REPLICA, 2000));
    CHECK_INT(r.waits, 1);
    CHECK_INT(r.done.status, WR_E_OK);
    CHECK_INT(r.done.reason, WR_REASON_REPLICA_WAITED);
    CHECK(now <= r.start_us + BUDGET);
}

static void a_read_goes_to_the_primary_once_no_replica_catches_up_within_the_budget(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    wrote(&s, 1, 2000);
    play r = PLAY(&s, WR_OP_READ,
                  {.kind = WR_STEP_RUN, .node = ANY_REPLICA, .many = 1,
                   .io = {.outcome = WR_IO_OK, .have_replay = 1, .replay = 1500}},
                  RUN_WROTE(P, 1, 2000));
    CHECK_INT(r.done.node, P);
    CHECK(r.done.reason == WR_REASON_PRIMARY_BUDGET || r.done.reason == WR_REASON_PRIMARY_LAGGING);
    CHECK(r.runs >= 4);
    for (int i = 0; i < r.n; i++) {
        if (r.step[i].kind != WR_STEP_RUN) continue;
        if (r.step[i].node == P) CHECK(r.at[i] <= r.start_us + BUDGET);
        else CHECK(r.at[i] < r.start_us + BUDGET);
    }
}

static void need_unknown_reads_go_to_the_primary_until_its_position_settles_it(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    play w = PLAY(&s, WR_OP_WRITE, RUN_FAILS(P, WR_IO_LOST));
    CHECK_INT(w.done.status, WR_E_UNKNOWN_OUTCOME);
    CHECK(s.tl.need_unknown);
    play r = PLAY(&s, WR_OP_READ, PROBED, RUN_WROTE(P, 1, 3000));
    const wr_step *run = first_step(&r, WR_STEP_RUN, NULL);
    CHECK(run && run->node == P && run->reason == WR_REASON_PRIMARY_UNKNOWN);
    CHECK(run && (run->flags & WR_RUN_INSERT_POS));
    CHECK_INT(r.done.reason, WR_REASON_PRIMARY_UNKNOWN);
    CHECK(!s.tl.need_unknown);
    CHECK_U64(s.tl.need, 3000);
    /* settled: the next read may use a replica again */
    r = PLAY(&s, WR_OP_READ, RUN_REPLAYED(ANY_REPLICA, 3000));
    CHECK_INT(r.done.reason, WR_REASON_REPLICA_CHECKED);
}

static void a_replica_read_refused_as_read_only_reruns_on_the_primary_as_a_write(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    play r = PLAY(&s, WR_OP_READ, RUN_REFUSED(A, "25006"), RUN_WROTE(P, 1, 1200));
    CHECK_INT(r.done.node, P);
    CHECK_INT(r.done.reason, WR_REASON_PRIMARY_READ_ONLY);
    CHECK(r.op.as_write);
    CHECK_U64(s.tl.need, 1200);
    /* as a write: lost after sending, it is never sent again */
    wr_sess_init(&s, 0);
    r = PLAY(&s, WR_OP_READ, RUN_REFUSED(A, "25006"), RUN_FAILS(P, WR_IO_LOST));
    CHECK_INT(r.done.status, WR_E_UNKNOWN_OUTCOME);
    CHECK(s.tl.need_unknown);
}

static void moving_from_a_replica_to_the_primary_checks_the_replicas_snapshot_first(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    PLAY(&s, WR_OP_READ, RUN_OK(A));
    CHECK_INT(s.tl.last_node, A);
    play r = PLAY(&s, WR_OP_READ_PRIMARY, SNAPSHOT_IS(A, "750:760:752,755"), RUN_WROTE(P, 1, 1100));
    CHECK_INT(r.step[0].kind, WR_STEP_SNAPSHOT);
    CHECK_INT(r.step[0].node, A);
    CHECK_INT(r.step[1].kind, WR_STEP_RUN);
    CHECK_INT(r.step[1].node, P);
    CHECK(r.step[1].flags & WR_RUN_SNAPSHOT_CHECK);
    CHECK_STR(r.op.snapshot, "750:760:752,755");
    CHECK_INT(r.done.status, WR_E_OK);
    CHECK_INT(s.tl.last_node, -1);
}

static void a_failed_snapshot_check_waits_and_runs_again_within_the_budget_only(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    PLAY(&s, WR_OP_READ, RUN_OK(A));
    /* the primary catches up after one retry */
    play r = PLAY(&s, WR_OP_READ_PRIMARY, SNAPSHOT_IS(A, "750:760:"), RUN_FAILS(P, WR_IO_CHECK_FAILED),
                  RUN_WROTE(P, 1, 1100));
    CHECK_INT(r.done.status, WR_E_OK);
    CHECK_INT(r.waits, 1);
    /* it never does: the read fails rather than go back in time */
    wr_sess_init(&s, 0);
    PLAY(&s, WR_OP_READ, RUN_OK(A));
    r = PLAY(&s, WR_OP_READ_PRIMARY, SNAPSHOT_IS(A, "750:760:"),
             {.kind = WR_STEP_RUN, .node = P, .many = 1, .io = {.outcome = WR_IO_CHECK_FAILED}});
    CHECK_INT(r.done.status, WR_E_TIMEOUT);
    CHECK(r.runs >= 2);
    CHECK(r.waits >= 1);
    for (int i = 0; i < r.n; i++)
        if (r.step[i].kind == WR_STEP_RUN) CHECK(r.step[i].flags & WR_RUN_SNAPSHOT_CHECK);
    CHECK(r.at[r.n - 1] >= r.start_us + BUDGET);
    CHECK(r.at[r.n - 1] <= r.start_us + BUDGET + 10 * MS);
}

static void an_unreachable_replica_gives_no_snapshot_and_the_primary_reads_behind_the_syncrep_check(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    PLAY(&s, WR_OP_READ, RUN_OK(A));
    play r = PLAY(&s, WR_OP_READ_PRIMARY, SNAPSHOT_FAILS(A, WR_IO_LOST), RUN_WROTE(P, 1, 1100));
    CHECK_INT(r.done.status, WR_E_OK);
    const wr_step *run = first_step(&r, WR_STEP_RUN, NULL);
    CHECK(run && !(run->flags & WR_RUN_SNAPSHOT_CHECK));
    CHECK(run && (run->flags & WR_RUN_SYNCREP_CHECK)); /* no commit may wait on a sync standby */
}

static void a_need_on_an_older_timeline_moves_onto_the_primarys_timeline(void) {
    /* min(need, primary position): the write at 5000 did not survive the
     * failover (B was promoted at 4000), everything that did is below 4000 */
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    wrote(&s, 1, 5000);
    unreachable(P);
    promote(B, 2, 4000);
    follow(A, 2, 4000);
    follow(C, 2, 4000);
    play r = PLAY(&s, WR_OP_READ, RUN_OK(A));
    CHECK_INT(r.done.status, WR_E_OK);
    CHECK_INT(r.op.check_tli, 2);
    CHECK_U64(r.op.check_need, 4000);
    CHECK_INT(s.tl.need_tli, 2);
    /* a primary already past the need: the need keeps its position */
    cluster();
    wr_sess_init(&s, 0);
    wrote(&s, 1, 5000);
    unreachable(P);
    promote(B, 2, 9000);
    follow(A, 2, 9000);
    follow(C, 2, 9000);
    r = PLAY(&s, WR_OP_READ, RUN_OK(A));
    CHECK_INT(r.op.check_tli, 2);
    CHECK_U64(r.op.check_need, 5000);
}

static void after_a_failover_another_replica_needs_the_new_primarys_position(void) {
    /* G2: A served a read on timeline 1; once A is on the old history, a
     * read elsewhere must be bounded by the new primary's position */
    cluster();
    follow(A, 1, 1500);
    wr_sess s;
    wr_sess_init(&s, 0);
    PLAY(&s, WR_OP_READ, RUN_OK(A));
    CHECK_INT(s.tl.last_node, A);
    unreachable(P);
    unreachable(A);
    promote(B, 2, 2500);
    follow(C, 2, 1600); /* replaying toward the fork point */
    play r = PLAY(&s, WR_OP_READ, {.kind = ANY_STEP, .node = ANY, .many = 1,
                                   .io = {.outcome = WR_IO_OK, .have_replay = 1, .replay = 2600,
                                          .have_insert = 1, .insert_tli = 2, .insert = 2600}});
    CHECK_INT(r.done.status, WR_E_OK);
    for (int i = 0; i < r.n; i++)
        if (r.step[i].kind == WR_STEP_RUN && r.step[i].node == C) {
            CHECK(r.step[i].flags & WR_RUN_CHECK_REPLAY);
            CHECK(r.op.check_need >= 2500);
        }
}

static void a_token_need_on_an_unknown_newer_timeline_is_probed_once_then_clamped(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    s.tl.need_tli = 7; /* as a token would set it */
    s.tl.need = 50000;
    s.need_unproven = 1;
    play r = PLAY(&s, WR_OP_READ, PROBED, RUN_OK(ANY_REPLICA));
    CHECK_INT(r.probes, 1);
    CHECK_INT(r.done.status, WR_E_OK);
    CHECK_INT(r.op.check_tli, 1);
    CHECK_U64(r.op.check_need, 1000);
    CHECK_INT(s.tl.need_tli, 1);
    CHECK(!s.need_unproven);
}

static void a_token_need_beyond_the_primary_is_clamped_after_probing_the_primary(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    s.tl.need_tli = 1;
    s.tl.need = 50000; /* forged, or from before a failover */
    s.need_unproven = 1;
    play r = PLAY(&s, WR_OP_READ,
                  {.kind = WR_STEP_RUN, .node = ANY_REPLICA, .many = 1,
                   .io = {.outcome = WR_IO_OK, .have_replay = 1, .replay = 1000}},
                  PROBED, RUN_OK(ANY_REPLICA));
    int at = -1;
    const wr_step *probe = first_step(&r, WR_STEP_PROBE, &at);
    CHECK(probe && probe->probe_mask == BIT(P));
    CHECK_INT(r.done.status, WR_E_OK);
    CHECK(r.done.reason == WR_REASON_REPLICA_CACHED || r.done.reason == WR_REASON_REPLICA_OTHER);
    CHECK_U64(s.tl.need, 1000);
    CHECK(!s.need_unproven);
}

static void nearest_mode_reads_from_the_lowest_round_trip_among_fresh_replicas(void) {
    now = T0;
    memset(world, 0, sizeof world);
    world[A].rtt_us = 5 * MS;
    world[B].rtt_us = 1 * MS;
    world[C].rtt_us = 3 * MS;
    set_node(P, 1, 1, 1000);
    for (int i = A; i <= C; i++) set_node(i, 0, 1, 1000);
    CHECK_INT(wr_engine_init(&eng, &(wr_config){.choose = WR_CHOOSE_NEAREST}, names, NNODES), 0);
    probe_all();
    wr_sess s;
    wr_sess_init(&s, 0);
    play r = PLAY(&s, WR_OP_READ, RUN_OK(B));
    CHECK_INT(r.done.node, B);
    /* B is not fresh enough for a session that wrote at 2000; A and C are */
    world[P].lsn = world[A].lsn = world[C].lsn = 2000;
    probe_all();
    wr_sess_init(&s, 0);
    wrote(&s, 1, 2000);
    r = PLAY(&s, WR_OP_READ, RUN_OK(C));
    CHECK_INT(r.done.node, C);
    CHECK_INT(r.done.reason, WR_REASON_REPLICA_CACHED);
}

static void spread_mode_spreads_sessions_by_seed(void) {
    static const int expect[] = {A, B, C, A, B};
    for (uint32_t seed = 0; seed < 5; seed++) {
        cluster();
        wr_sess s;
        wr_sess_init(&s, seed);
        play r = PLAY(&s, WR_OP_READ, RUN_OK(ANY_REPLICA));
        CHECK_INT(r.done.node, expect[seed]);
    }
}

/* ==== the session engine: the primary (G5) =========================================== */

static void a_primary_read_lost_after_sending_is_an_unknown_outcome_never_resent(void) {
    cluster();
    unreachable(A);
    unreachable(B);
    unreachable(C);
    wr_sess s;
    wr_sess_init(&s, 0);
    play r = PLAY(&s, WR_OP_READ, RUN_FAILS(P, WR_IO_LOST));
    CHECK_INT(r.done.status, WR_E_UNKNOWN_OUTCOME);
    CHECK_INT(r.runs, 1);
    CHECK(s.tl.need_unknown);
    /* silent past the deadline: the same */
    wr_sess_init(&s, 0);
    now += 10 * SEC;
    probe_node(P);
    r = PLAY(&s, WR_OP_READ_PRIMARY, RUN_FAILS(P, WR_IO_TIMEOUT));
    CHECK_INT(r.done.status, WR_E_UNKNOWN_OUTCOME);
    CHECK_INT(r.runs, 1);
    CHECK(s.tl.need_unknown);
}

static void a_write_not_sent_is_sent_again_after_a_probe_at_most_three_times(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    play w = PLAY(&s, WR_OP_WRITE, RUN_FAILS(P, WR_IO_NOT_SENT), PROBED, RUN_WROTE(P, 1, 1100));
    CHECK_INT(w.done.status, WR_E_OK);
    CHECK_INT(w.runs, 2);
    CHECK_INT(w.step[1].kind, WR_STEP_PROBE);
    /* it never gets through, though every probe finds P */
    w = PLAY(&s, WR_OP_WRITE, {.kind = ANY_STEP, .node = P, .many = 1, .io = {.outcome = WR_IO_NOT_SENT}});
    CHECK_INT(w.done.status, WR_E_NO_PRIMARY);
    CHECK(w.runs >= 2 && w.runs <= 3);
    CHECK(strstr(w.done.msg, "not sent") != NULL);
    CHECK(!s.tl.need_unknown); /* nothing ran */
}

/* The primary went down and is in its backoff; meanwhile B was promoted,
 * which only a probe of B can show. A write probes the old primary and the
 * other nodes out of their backoff together, and runs on B. */
static void a_write_while_the_primary_is_in_its_backoff_also_probes_the_others_and_finds_a_promoted_one(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    unreachable(P);
    CHECK(!wr_engine_may_connect(&eng, P, now));
    CHECK_INT(write_target(), P); /* down, may return */
    set_node(B, 1, 2, 2000);      /* promoted; nothing probed it yet */
    play w = PLAY(&s, WR_OP_WRITE, PROBED, RUN_WROTE(B, 2, 2100));
    CHECK_INT(w.done.status, WR_E_OK);
    CHECK_INT(w.step[0].kind, WR_STEP_PROBE);
    CHECK_INT(w.step[0].probe_mask, BIT(P) | BIT(A) | BIT(B) | BIT(C));
    CHECK_INT(write_target(), B);
    /* a node in its backoff is left out, but for the old primary itself */
    cluster();
    wr_sess_init(&s, 0);
    unreachable(P);
    unreachable(C);
    w = PLAY(&s, WR_OP_WRITE, PROBED);
    CHECK_INT(w.done.status, WR_E_NO_PRIMARY);
    CHECK_INT(w.step[0].probe_mask, BIT(P) | BIT(A) | BIT(B));
    CHECK(strstr(w.done.msg, "not sent") != NULL);
}

static void a_write_lost_after_sending_is_an_unknown_outcome_sent_once(void) {
    static const int outcomes[] = {WR_IO_LOST, WR_IO_TIMEOUT};
    for (int k = 0; k < 2; k++) {
        cluster();
        wr_sess s;
        wr_sess_init(&s, 0);
        play w = PLAY(&s, WR_OP_WRITE, RUN_FAILS(P, outcomes[k]));
        CHECK_INT(w.done.status, WR_E_UNKNOWN_OUTCOME);
        CHECK_INT(w.runs, 1);
        CHECK(s.tl.need_unknown);
    }
}

static void a_refused_cached_plan_is_run_again_since_nothing_ran(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    play w = PLAY(&s, WR_OP_WRITE, RUN_FAILS(P, WR_IO_STALE), RUN_WROTE(P, 1, 1100));
    CHECK_INT(w.done.status, WR_E_OK);
    CHECK_INT(w.runs, 2);
}

static void a_write_canceled_by_the_server_did_not_commit(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    play w = PLAY(&s, WR_OP_WRITE, RUN_FAILS(P, WR_IO_CANCELED));
    CHECK_INT(w.done.status, WR_E_TIMEOUT);
    CHECK_INT(w.runs, 1);
    CHECK(!s.tl.need_unknown);
}

static void b_is_promoted_on_timeline_2(void) { promote(B, 2, 2000); }

static void a_write_acknowledged_on_an_older_timeline_than_the_newest_is_an_unknown_outcome(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    /* B is promoted while the write is in flight on P */
    play w = PLAY(&s, WR_OP_WRITE,
                  {.kind = WR_STEP_RUN, .node = P, .before = b_is_promoted_on_timeline_2,
                   .io = {.outcome = WR_IO_OK, .have_insert = 1, .insert_tli = 1, .insert = 1500, .flushed = 1500}});
    CHECK_INT(w.done.status, WR_E_UNKNOWN_OUTCOME);
    CHECK(s.tl.need_unknown);
    CHECK_INT(w.runs, 1);
}

static void p_is_demoted_and_b_promoted(void) {
    set_node(P, 0, 2, 2000);
    set_node(B, 1, 2, 2000);
}

static void a_read_only_refusal_from_the_primary_is_probed_then_retried(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    play w = PLAY(&s, WR_OP_WRITE, RUN_REFUSED(P, "25006"), PROBED_AFTER(p_is_demoted_and_b_promoted),
                  RUN_WROTE(B, 2, 2100));
    CHECK_INT(w.done.status, WR_E_OK);
    CHECK_INT(w.done.node, B);
    CHECK_INT(w.runs, 2);
    CHECK_INT(s.tl.need_tli, 2);
    CHECK_U64(s.tl.need, 2100);
}

/* ==== transactions (G5, G6) =============================================================== */

static void begin_on_the_primary(wr_sess *s) {
    play b = PLAY(s, WR_OP_BEGIN, RUN_OK(P));
    CHECK_INT(b.done.status, WR_E_OK);
    CHECK(b.step[0].flags & WR_RUN_KEEP);
    CHECK_INT(s->tx_node, P);
}

static void a_lost_commit_is_an_unknown_outcome(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    begin_on_the_primary(&s);
    play t = PLAY(&s, WR_OP_TX, RUN_OK(P));
    CHECK(t.step[0].flags & WR_RUN_PINNED);
    play c = PLAY(&s, WR_OP_COMMIT, RUN_FAILS(P, WR_IO_LOST));
    CHECK(c.step[0].flags & WR_RUN_PINNED);
    CHECK(c.step[0].flags & WR_RUN_INSERT_POS);
    CHECK_INT(c.done.status, WR_E_UNKNOWN_OUTCOME);
    CHECK_INT(c.runs, 1);
    CHECK(s.tl.need_unknown);
    CHECK_INT(s.tx_node, -1);
}

static void a_commit_without_a_readable_position_leaves_reads_on_the_primary(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    begin_on_the_primary(&s);
    play c = PLAY(&s, WR_OP_COMMIT, RUN_OK(P));
    CHECK_INT(c.done.status, WR_E_OK);
    CHECK(s.tl.need_unknown);
    play r = PLAY(&s, WR_OP_READ, RUN_WROTE(P, 1, 1300));
    CHECK_INT(r.done.reason, WR_REASON_PRIMARY_UNKNOWN);
}

static void a_lost_rollback_is_a_rollback(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    begin_on_the_primary(&s);
    play rb = PLAY(&s, WR_OP_ROLLBACK, RUN_FAILS(P, WR_IO_LOST));
    CHECK_INT(rb.done.status, WR_E_OK);
    CHECK_INT(s.tx_node, -1);
    CHECK(!s.tl.need_unknown);
}

static void a_lost_begin_is_sent_again(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    play b = PLAY(&s, WR_OP_BEGIN, RUN_FAILS(P, WR_IO_LOST), PROBED, RUN_OK(P));
    CHECK_INT(b.done.status, WR_E_OK);
    CHECK_INT(b.runs, 2);
    CHECK_INT(s.tx_node, P);
    CHECK(!s.tl.need_unknown);
}

static void a_statement_timeout_inside_a_transaction_closes_it(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    begin_on_the_primary(&s);
    play t = PLAY(&s, WR_OP_TX, RUN_FAILS(P, WR_IO_TIMEOUT));
    CHECK_INT(t.done.status, WR_E_TIMEOUT);
    CHECK_INT(t.runs, 1);
    CHECK_INT(s.tx_node, -1);
    t = PLAY(&s, WR_OP_TX, NOTHING);
    CHECK_INT(t.done.status, WR_E_STATE);
}

static void a_read_only_transaction_stays_on_its_replica(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    play b = PLAY(&s, WR_OP_BEGIN_READ_ONLY, RUN_OK(A));
    CHECK(b.step[0].flags & WR_RUN_KEEP);
    CHECK_INT(s.tx_node, A);
    play t = PLAY(&s, WR_OP_TX, RUN_OK(A));
    CHECK(t.step[0].flags & WR_RUN_PINNED);
    play c = PLAY(&s, WR_OP_COMMIT, RUN_OK(A));
    CHECK_INT(c.done.status, WR_E_OK);
    CHECK(!(c.step[0].flags & WR_RUN_INSERT_POS));
    CHECK_INT(s.tx_node, -1);
    CHECK_INT(s.tl.last_node, A);
}

/* ==== deadlines (G8) ========================================================================== */

static void every_step_that_waits_on_a_node_has_a_deadline(void) {
    /* run_op checks every step of every play; this one has all kinds */
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    PLAY(&s, WR_OP_READ, RUN_OK(A));
    unreachable(P); /* in backoff: the read's primary path probes, and finds it back */
    world[P].reachable = 1;
    play r = PLAY(&s, WR_OP_READ_PRIMARY, PROBED, SNAPSHOT_IS(A, "1:2:"), RUN_FAILS(P, WR_IO_CHECK_FAILED),
                  RUN_WROTE(P, 1, 1000));
    CHECK_INT(r.done.status, WR_E_OK);
    CHECK(r.probes == 1 && r.snapshots == 1 && r.waits == 1 && r.runs == 2);
    for (int i = 0; i < r.n; i++)
        if (r.step[i].kind != WR_STEP_DONE) CHECK(r.step[i].deadline_us > r.at[i]);
}

static void a_replica_read_deadline_is_bounded_by_the_read_budget(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    wrote(&s, 1, 2000);
    play r = PLAY(&s, WR_OP_READ,
                  {.kind = WR_STEP_RUN, .node = ANY_REPLICA, .many = 1,
                   .io = {.outcome = WR_IO_OK, .have_replay = 1, .replay = 1500}},
                  RUN_WROTE(P, 1, 2000));
    int replica_runs = 0;
    for (int i = 0; i < r.n; i++) {
        if (r.step[i].kind != WR_STEP_RUN || r.step[i].node == P) continue;
        replica_runs++;
        uint64_t end = r.start_us + BUDGET, least = r.at[i] + BUDGET / 4;
        CHECK_U64(r.step[i].deadline_us, end > least ? end : least);
    }
    CHECK(replica_runs >= 3);
}

static void a_silent_replica_costs_a_read_at_most_its_budget(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    play r = PLAY(&s, WR_OP_READ, {.kind = WR_STEP_RUN, .node = A, .took_us = BUDGET, .io = {.outcome = WR_IO_TIMEOUT}},
                  RUN_OK(B));
    CHECK_U64(r.step[0].deadline_us, r.start_us + BUDGET);
    CHECK_INT(r.done.status, WR_E_OK);
    CHECK_INT(r.done.node, B);
    CHECK(!serves_reads(A));
    CHECK(!s.tl.need_unknown); /* a replica cannot write */
}

static void a_primary_run_deadline_is_the_statement_timeout(void) {
    cluster();
    wr_sess s;
    wr_sess_init(&s, 0);
    play w = PLAY(&s, WR_OP_WRITE, RUN_WROTE(P, 1, 1100));
    CHECK_U64(w.step[0].deadline_us, w.at[0] + STATEMENT_TIMEOUT);
    cluster_with(&(wr_config){.statement_timeout_us = 2 * SEC});
    wr_sess_init(&s, 0);
    play r = PLAY(&s, WR_OP_READ_PRIMARY, RUN_WROTE(P, 1, 1100));
    CHECK_U64(r.step[0].deadline_us, r.at[0] + 2 * SEC);
}

/* ==== status rendering ============================================================================ */

static char text[16384];

static void status_json_has_known_figures_and_null_for_unknown_ones(void) {
    now = T0;
    CHECK_INT(wr_engine_init(&eng, NULL, names, NNODES), 0);
    size_t n = wr_engine_status_json(&eng, names, NULL, text, sizeof text);
    CHECK_INT(n, strlen(text));
    CHECK(strstr(text, "{\"node\": 1, \"name\": \"a.db:5432\", \"role\": \"unknown\", \"state\": \"unknown\", "
                       "\"primary\": false, \"timeline\": null, \"fenced\": false, \"lag_bytes\": null, "
                       "\"lag_seconds\": null, \"replay_lsn\": null, \"replay_rate\": null, \"receiver\": null, "
                       "\"rtt_ms\": null, \"last_check_unix_ms\": null, \"conns_in_use\": 0, \"conns_idle\": 0, "
                       "\"last_error\": \"\", \"served\": {\"replica_cached\": 0") != NULL);
    CHECK(strstr(text, "\"host\"") == NULL);

    cluster();
    world[C].receiver = 0;
    probe_node(C);
    wr_engine_count(&eng, A, WR_REASON_REPLICA_CACHED, 0);
    wr_engine_count(&eng, A, WR_REASON_REPLICA_CACHED, 0);
    wr_engine_count(&eng, A, WR_REASON_NONE, 1);
    int conns[2 * NNODES] = {3, 4, 1, 2, 0, 0, 0, 0};
    n = wr_engine_status_json(&eng, names, conns, text, sizeof text);
    CHECK_INT(n, strlen(text));
    CHECK(text[0] == '[' && n > 4 && strcmp(text + n - 4, "}\n]\n") == 0);
    CHECK(strstr(text, "{\"node\": 0, \"name\": \"p.db:5432\", \"role\": \"primary\", \"state\": \"up\", "
                       "\"primary\": true, \"timeline\": 1, \"fenced\": false, \"lag_bytes\": 0, "
                       "\"lag_seconds\": 0.000, \"replay_lsn\": \"0/3E8\", \"replay_rate\": null, "
                       "\"receiver\": null, \"rtt_ms\": 1.000, \"last_check_unix_ms\": 1700001000000, "
                       "\"conns_in_use\": 3, \"conns_idle\": 4, \"last_error\": \"\"") != NULL);
    CHECK(strstr(text, "\"name\": \"a.db:5432\", \"role\": \"replica\", \"state\": \"streaming\", "
                       "\"primary\": false") != NULL);
    CHECK(strstr(text, "\"served\": {\"replica_cached\": 2, \"replica_checked\": 0") != NULL);
    CHECK(strstr(text, "\"primary_unknown\": 0}, \"errors\": 1}") != NULL);
    CHECK(strstr(text, "\"receiver\": \"streaming\"") != NULL);
    CHECK(strstr(text, "\"receiver\": \"stopped\"") != NULL);

    promote(B, 2, 2000);
    probe_node(P);
    wr_engine_status_json(&eng, names, NULL, text, sizeof text);
    CHECK(strstr(text, "\"name\": \"p.db:5432\", \"role\": \"primary\", \"state\": \"fenced\", \"primary\": false, "
                       "\"timeline\": 1, \"fenced\": true") != NULL);
    CHECK(strstr(text, "\"name\": \"b.db:5432\", \"role\": \"primary\", \"state\": \"up\", \"primary\": true, "
                       "\"timeline\": 2") != NULL);
}

static void status_json_escapes_names_and_errors(void) {
    static const char *const odd[NNODES] = {"p\"q\\r:1", "a\nb:2", "c\001\037\177d:3", "\xc3\xa9t\xc3\xa9:4"};
    now = T0;
    CHECK_INT(wr_engine_init(&eng, NULL, odd, NNODES), 0);
    wr_engine_node_failed(&eng, A, now, 0, "could not connect:\t\"refused\"\r\n");
    wr_engine_status_json(&eng, odd, NULL, text, sizeof text);
    CHECK(strstr(text, "\"name\": \"p\\\"q\\\\r:1\"") != NULL);
    CHECK(strstr(text, "\"name\": \"a\\nb:2\"") != NULL);
    CHECK(strstr(text, "\"name\": \"c\\u0001\\u001f\\u007fd:3\"") != NULL);
    CHECK(strstr(text, "\"name\": \"\xc3\xa9t\xc3\xa9:4\"") != NULL);
    CHECK(strstr(text, "\"last_error\": \"could not connect:\\t\\\"refused\\\"\\r\\n\"") != NULL);
    for (const char *p = text; *p; p++) CHECK(*p == '\n' || (unsigned char)*p >= 0x20);
}

static void status_text_is_cut_like_snprintf(void) {
    cluster();
    char full[8192], small[40];
    size_t n = wr_engine_status_json(&eng, names, NULL, full, sizeof full);
    CHECK_INT(wr_engine_status_json(&eng, names, NULL, NULL, 0), n);
    memset(small, 'x', sizeof small);
    CHECK_INT(wr_engine_status_json(&eng, names, NULL, small, sizeof small), n);
    CHECK_INT(strlen(small), sizeof small - 1);
    CHECK(strncmp(small, full, sizeof small - 1) == 0);
    char one[1] = {'x'};
    CHECK_INT(wr_engine_status_json(&eng, names, NULL, one, 1), n);
    CHECK_INT(one[0], 0);
    char exact[8192];
    CHECK_INT(wr_engine_status_json(&eng, names, NULL, exact, n + 1), n);
    CHECK_STR(exact, full);
    CHECK_INT(wr_engine_status_json(&eng, names, NULL, exact, n), n);
    CHECK_INT(strlen(exact), n - 1);

    size_t m = wr_engine_metrics_text(&eng, names, NULL, NULL, 0);
    static char metrics[16384];
    CHECK_INT(wr_engine_metrics_text(&eng, names, NULL, metrics, sizeof metrics), m);
    CHECK_INT(strlen(metrics), m);
    memset(small, 'x', sizeof small);
    CHECK_INT(wr_engine_metrics_text(&eng, names, NULL, small, sizeof small), m);
    CHECK(strncmp(small, metrics, sizeof small - 1) == 0 && small[sizeof small - 1] == '\0');
}

static void metrics_text_has_every_series_and_a_fenced_state(void) {
    cluster();
    wr_engine_count(&eng, B, WR_REASON_REPLICA_CHECKED, 0);
    int conns[2 * NNODES] = {3, 4, 0, 0, 0, 0, 0, 0};
    promote(B, 2, 2000);
    probe_node(P); /* fenced */
    wr_engine_metrics_text(&eng, names, conns, text, sizeof text);
    static const char *const want[] = {
        "# TYPE walrouter_statements_total counter\n",
        "walrouter_statements_total{node=\"b.db:5432\",reason=\"replica_checked\"} 1\n",
        "walrouter_statements_total{node=\"a.db:5432\",reason=\"primary_unknown\"} 0\n",
        "walrouter_errors_total{node=\"p.db:5432\"} 0\n",
        "walrouter_node_up{node=\"p.db:5432\",role=\"primary\"} 1\n",
        "walrouter_node_up{node=\"b.db:5432\",role=\"primary\"} 1\n",
        "walrouter_node_state{node=\"p.db:5432\",state=\"fenced\"} 1\n",
        "walrouter_node_state{node=\"p.db:5432\",state=\"up\"} 0\n",
        "walrouter_node_state{node=\"b.db:5432\",state=\"up\"} 1\n",
        "walrouter_node_state{node=\"a.db:5432\",state=\"lagging\"} 1\n", /* timeline 1 */
        "# TYPE walrouter_replica_lag_bytes gauge\n",
        "# TYPE walrouter_replica_lag_seconds gauge\n",
        "walrouter_connections{node=\"p.db:5432\",state=\"in_use\"} 3\n",
        "walrouter_connections{node=\"p.db:5432\",state=\"idle\"} 4\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(text, want[i])) {
            check_failures++;
            fprintf(stderr, "%s:%d: metrics lack: %s", __FILE__, __LINE__, want[i]);
        }
    CHECK(strstr(text, "state=\"unknown\"") == NULL);
    CHECK(strstr(text, "walrouter_replica_lag_bytes{node=\"a.db:5432\"}") == NULL); /* unknown: left out */
    follow(A, 2, 2000);
    wr_engine_metrics_text(&eng, names, conns, text, sizeof text);
    CHECK(strstr(text, "walrouter_replica_lag_bytes{node=\"a.db:5432\"} 0\n") != NULL);
    CHECK(strstr(text, "walrouter_replica_lag_seconds{node=\"a.db:5432\"} 0.000\n") != NULL);
}

static void metrics_text_escapes_label_values(void) {
    static const char *const odd[NNODES] = {"p\"q\\r:1", "a\nb:2", "c\001d:3", "e:4"};
    now = T0;
    CHECK_INT(wr_engine_init(&eng, NULL, odd, NNODES), 0);
    wr_engine_metrics_text(&eng, odd, NULL, text, sizeof text);
    CHECK(strstr(text, "walrouter_errors_total{node=\"p\\\"q\\\\r:1\"} 0\n") != NULL);
    CHECK(strstr(text, "walrouter_errors_total{node=\"a\\nb:2\"} 0\n") != NULL);
    CHECK(strstr(text, "walrouter_errors_total{node=\"cd:3\"} 0\n") != NULL);
}

/* ---- FFI ---------------------------------------------------------------------- */

static void struct_sizes_are_given_by_name_for_ffi(void) {
    CHECK_INT((int)wr_engine_sizeof_type("wr_op"), (int)sizeof(wr_op));
    CHECK_INT((int)wr_engine_sizeof_type("wr_io"), (int)sizeof(wr_io));
    CHECK_INT((int)wr_engine_sizeof_type("wr_step"), (int)sizeof(wr_step));
    CHECK_INT((int)wr_engine_sizeof_type("wr_sess"), (int)sizeof(wr_sess));
    CHECK_INT((int)wr_engine_sizeof_type("wr_probe"), (int)sizeof(wr_probe));
    CHECK_INT((int)wr_engine_sizeof_type("wr_engine"), (int)wr_engine_sizeof());
    CHECK_INT((int)wr_engine_sizeof_type("wr_nothing"), 0);
    CHECK_INT((int)wr_engine_sizeof_type(NULL), 0);
}

int main(void) {
    /* election (G7) */
    RUN(the_primary_on_the_highest_timeline_wins);
    RUN(old_primary_on_an_older_timeline_is_fenced_and_gets_no_writes);
    RUN(an_old_primary_reinstated_on_an_older_timeline_stays_fenced_and_the_error_says_why);
    RUN(two_reachable_claimants_on_one_timeline_get_no_writes);
    RUN(a_second_claimant_on_the_timeline_of_a_down_primary_does_not_take_over);
    RUN(a_split_brain_does_not_end_when_one_claimant_becomes_unreachable);
    RUN(a_split_brain_ends_when_one_claimant_steps_down);
    RUN(a_down_primary_remains_the_write_target_until_a_later_timeline_appears);
    RUN(a_demoted_primary_that_comes_back_as_replica_serves_reads_once_placed);
    /* node health */
    RUN(a_failed_node_backs_off_50ms_doubling_to_5s_with_jitter);
    RUN(a_node_back_from_down_serves_no_reads_until_a_probe_places_it);
    RUN(probes_are_due_for_unplaced_nodes_out_of_backoff_and_for_old_probes);
    RUN(a_probe_cut_off_by_a_reads_short_deadline_does_not_fail_the_node);
    RUN(state_changes_are_reported_once);
    /* lag (G4) */
    RUN(default_lag_limits_are_finite);
    RUN(a_replica_probed_before_any_primary_has_unknown_lag_and_serves_no_reads);
    RUN(a_replica_a_little_behind_the_first_primary_sample_is_probed_again_soon);
    RUN(a_replica_is_not_blamed_for_the_little_a_read_had_left_for_it);
    RUN(a_timeout_is_judged_from_when_the_node_had_the_statement);
    RUN(a_replica_on_another_timeline_than_the_primary_serves_no_reads);
    RUN(a_replica_whose_receiver_stopped_keeps_the_newer_timeline_it_was_seen_on);
    RUN(a_replica_whose_replay_stopped_is_excluded_once_max_lag_behind_the_primary);
    RUN(replicas_count_as_stale_while_the_primary_cannot_be_sampled);
    RUN(a_replica_more_bytes_behind_than_the_limit_is_excluded);
    RUN(an_excluded_replica_is_let_back_in_only_under_half_of_the_bytes_limit);
    RUN(an_excluded_replica_is_let_back_in_only_under_half_of_the_time_limit);
    /* reads (G1-G4) */
    RUN(a_read_is_served_by_the_last_replica_from_its_cached_position);
    RUN(a_read_checks_a_replica_not_known_to_be_fresh);
    RUN(a_checked_read_whose_position_did_not_come_back_is_not_used);
    RUN(a_replica_found_behind_is_left_for_another_replica);
    RUN(a_read_waits_for_a_replica_to_catch_up_within_its_budget);
    RUN(a_read_goes_to_the_primary_once_no_replica_catches_up_within_the_budget);
    RUN(need_unknown_reads_go_to_the_primary_until_its_position_settles_it);
    RUN(a_replica_read_refused_as_read_only_reruns_on_the_primary_as_a_write);
    RUN(moving_from_a_replica_to_the_primary_checks_the_replicas_snapshot_first);
    RUN(a_failed_snapshot_check_waits_and_runs_again_within_the_budget_only);
    RUN(an_unreachable_replica_gives_no_snapshot_and_the_primary_reads_behind_the_syncrep_check);
    RUN(a_need_on_an_older_timeline_moves_onto_the_primarys_timeline);
    RUN(after_a_failover_another_replica_needs_the_new_primarys_position);
    RUN(a_token_need_on_an_unknown_newer_timeline_is_probed_once_then_clamped);
    RUN(a_token_need_beyond_the_primary_is_clamped_after_probing_the_primary);
    RUN(nearest_mode_reads_from_the_lowest_round_trip_among_fresh_replicas);
    RUN(spread_mode_spreads_sessions_by_seed);
    /* the primary (G5) */
    RUN(a_primary_read_lost_after_sending_is_an_unknown_outcome_never_resent);
    RUN(a_write_not_sent_is_sent_again_after_a_probe_at_most_three_times);
    RUN(a_write_while_the_primary_is_in_its_backoff_also_probes_the_others_and_finds_a_promoted_one);
    RUN(a_write_lost_after_sending_is_an_unknown_outcome_sent_once);
    RUN(a_refused_cached_plan_is_run_again_since_nothing_ran);
    RUN(a_write_canceled_by_the_server_did_not_commit);
    RUN(a_write_acknowledged_on_an_older_timeline_than_the_newest_is_an_unknown_outcome);
    RUN(a_read_only_refusal_from_the_primary_is_probed_then_retried);
    /* transactions (G5, G6) */
    RUN(a_lost_commit_is_an_unknown_outcome);
    RUN(a_commit_without_a_readable_position_leaves_reads_on_the_primary);
    RUN(a_lost_rollback_is_a_rollback);
    RUN(a_lost_begin_is_sent_again);
    RUN(a_statement_timeout_inside_a_transaction_closes_it);
    RUN(a_read_only_transaction_stays_on_its_replica);
    /* deadlines (G8) */
    RUN(every_step_that_waits_on_a_node_has_a_deadline);
    RUN(a_replica_read_deadline_is_bounded_by_the_read_budget);
    RUN(a_silent_replica_costs_a_read_at_most_its_budget);
    RUN(a_primary_run_deadline_is_the_statement_timeout);
    /* status */
    RUN(status_json_has_known_figures_and_null_for_unknown_ones);
    RUN(status_json_escapes_names_and_errors);
    RUN(status_text_is_cut_like_snprintf);
    RUN(metrics_text_has_every_series_and_a_fenced_state);
    RUN(metrics_text_escapes_label_values);
    RUN(struct_sizes_are_given_by_name_for_ffi);
    return check_exit();
}
