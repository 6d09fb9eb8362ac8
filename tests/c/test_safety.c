/* test_safety.c — the engine's guarantees (G1-G7 of DESIGN.md) on a real
 * cluster, under the faults that threaten them: a split brain after a
 * promotion, cascading replication, tokens travelling between app servers
 * whose DSNs list the nodes in other orders, a connection terminated after
 * sending, an unknown outcome that committed, a stopped WAL receiver, a
 * replica restarted far behind, and a synchronous commit visible on a
 * standby before the primary. Each test reads as a specification; they
 * assert order and completion, never timing thresholds (the one bound in
 * time is G4's staleness limit itself), and poll conditions with t_nap.
 * Runs on clusters of its own; a fresh one after each topology change.
 * Every frozen or paused node is released on every path (also at exit). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "testlib.h"

#define POLLS 1500 /* x 20 ms: a guard against hanging, not a speed requirement */

/* The current cluster's DSN. Each start gets a buffer of its own: testlib
 * keeps its parse of the DSN for as long as the pointer is the same. */
static char dsn_bufs[4][512];
static char *dsn = dsn_bufs[0];

/* ---- helpers ----------------------------------------------------------------- */

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* One read: its status, first value (as a number; -1 when none), node and reason. */
typedef struct {
    wr_status st;
    long v;
    int node;
    wr_reason why;
} rd;

static rd read_v(wr_session *s, const char *sql, long param, unsigned flags) {
    char p0[32];
    snprintf(p0, sizeof p0, "%ld", param);
    const char *p[1] = {p0};
    wr_result *r = NULL;
    rd x = {.v = -1, .node = -1};
    x.st = wr_query(s, sql, param >= 0 ? 1 : 0, param >= 0 ? p : NULL, flags, &r);
    if (x.st == WR_OK) {
        const char *v = wr_result_value(r, 0, 0);
        x.v = v ? atol(v) : -1;
        x.node = wr_result_node(r);
        x.why = wr_result_reason(r);
    }
    wr_result_free(r);
    return x;
}

/* INSERT of one id into table; WR_OK or the failure (message on stderr). */
static wr_status insert_id(wr_session *s, const char *table, long id, int *node) {
    char sql[128], p0[32];
    snprintf(sql, sizeof sql, "INSERT INTO %s(id) VALUES ($1::bigint)", table);
    snprintf(p0, sizeof p0, "%ld", id);
    const char *p[1] = {p0};
    wr_result *r = NULL;
    wr_status st = wr_exec(s, sql, 1, p, &r);
    if (node) *node = st == WR_OK ? wr_result_node(r) : -1;
    wr_result_free(r);
    return st;
}

static wr_node_status status_of(wr_cluster *c, size_t i) {
    wr_node_status st;
    memset(&st, 0, sizeof st);
    wr_cluster_node_status(c, i, &st);
    return st;
}

static wr_status exec0(wr_session *s, const char *sql) {
    wr_status st = wr_exec(s, sql, 0, NULL, NULL);
    if (st != WR_OK) fprintf(stderr, "%s: %s\n", sql, wr_session_errmsg(s));
    return st;
}

/* The node of a read by a fresh session (no token), and its first value. */
static int fresh_read(wr_cluster *c, const char *sql, long *value) {
    wr_session *s = wr_session_new(c);
    rd x = read_v(s, sql, -1, 0);
    if (x.st != WR_OK) fprintf(stderr, "fresh read: %s\n", wr_session_errmsg(s));
    wr_session_free(s);
    if (value) *value = x.v;
    return x.st == WR_OK ? x.node : -2;
}

/* The DSN with its host list in reverse order (same credentials, database). */
static void reversed_dsn(const char *in, char *out, size_t cap) {
    const char *at = strchr(in, '@'), *slash = at ? strchr(at, '/') : NULL;
    if (!at || !slash) {
        snprintf(out, cap, "%s", in);
        return;
    }
    char hosts[256], *h[8];
    int n = 0;
    snprintf(hosts, sizeof hosts, "%.*s", (int)(slash - at - 1), at + 1);
    for (char *save = NULL, *t = strtok_r(hosts, ",", &save); t && n < 8; t = strtok_r(NULL, ",", &save)) h[n++] = t;
    size_t len = (size_t)snprintf(out, cap, "%.*s", (int)(at - in + 1), in);
    for (int i = n - 1; i >= 0 && len < cap; i--) len += (size_t)snprintf(out + len, cap - len, "%s%s", h[i], i ? "," : "");
    if (len < cap) snprintf(out + len, cap - len, "%s", slash);
}

/* Nodes left frozen or paused by a test that failed half way: released at exit. */
static int frozen0, paused[4];
static int cluster_up; /* a cluster of ours runs: stopped at exit (t_sql exits on errors) */
static void stop_at_exit(void) {
    if (cluster_up) t_cluster("stop");
    cluster_up = 0;
}
static void release_faults(void) {
    if (frozen0) t_cluster("thaw 0");
    for (int i = 1; i < 4; i++)
        if (paused[i]) t_cluster("resume %d", i);
    frozen0 = 0;
    memset(paused, 0, sizeof paused);
}
static void pause_node(int i) {
    CHECK_INT(t_cluster("pause %d", i), 0);
    paused[i] = 1;
}
static void resume_node(int i) {
    CHECK_INT(t_cluster("resume %d", i), 0);
    paused[i] = 0;
}

/* ---- G5: a read on the primary whose connection dies after sending ---- */

/* A read may write (nextval). Its connection is terminated while it runs:
 * the caller learns "unknown outcome", and the statement was not re-sent. */
static void a_read_on_the_primary_that_loses_its_connection_runs_at_most_once(void) {
    wr_cluster *c = t_open(NULL);
    wr_session *s = wr_session_new(c);
    CHECK_INT(exec0(s, "CREATE SEQUENCE s4"), WR_OK);
    int p = wr_cluster_primary(c);

    wr_result *r = NULL;
    wr_status st = wr_query(s, "SELECT nextval('s4'), pg_terminate_backend(pg_backend_pid())", 0, NULL,
                            WR_PRIMARY, &r);
    CHECK_INT(st, WR_ERR_UNKNOWN_OUTCOME);
    CHECK(r == NULL);
    wr_result_free(r);
    /* It ran exactly once: the sequence moved one step, not two. */
    CHECK_STR(t_sql(p, "SELECT last_value || '/' || is_called FROM s4"), "1/true");

    /* The session treats it as a possible write: its next read is on the primary. */
    rd x = read_v(s, "SELECT last_value FROM s4", -1, 0);
    CHECK_INT(x.st, WR_OK);
    CHECK_INT(x.v, 1);
    CHECK_INT(x.node, p);
    CHECK_INT(x.why, WR_REASON_PRIMARY_UNKNOWN);
    wr_session_free(s);
    wr_cluster_close(c);
}

/* ---- G1 + G5: after an unknown outcome, reads see the write if it committed ---- */

/* The write commits (a procedure's COMMIT) and then its backend is
 * terminated, so the caller cannot know. With both replicas paused (they
 * lack the row), the session's next read goes to the primary and sees it;
 * that read settles the unknown; the token taken in between carries it to
 * another cluster handle. */
static void after_an_unknown_outcome_the_next_read_sees_the_write_if_it_committed(void) {
    wr_cluster *c = t_open(NULL);
    wr_session *s = wr_session_new(c);
    CHECK_INT(exec0(s, "CREATE TABLE t5 (id bigint PRIMARY KEY)"), WR_OK);
    CHECK_INT(exec0(s, "CREATE PROCEDURE t5_commit_then_die() LANGUAGE plpgsql AS $$ BEGIN "
                       "INSERT INTO t5 VALUES (1); COMMIT; "
                       "PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(10); END $$"),
              WR_OK);
    int p = wr_cluster_primary(c);
    CHECK_INT(t_cluster("wait-replay 1"), 0);
    CHECK_INT(t_cluster("wait-replay 2"), 0);
    pause_node(1);
    pause_node(2);

    CHECK_INT(wr_exec(s, "CALL t5_commit_then_die()", 0, NULL, NULL), WR_ERR_UNKNOWN_OUTCOME);
    CHECK_STR(t_sql(p, "SELECT count(*) FROM t5"), "1"); /* it did commit */
    CHECK_STR(t_sql(1, "SELECT count(*) FROM t5"), "0"); /* and no replica has it */
    char token[WR_TOKEN_BUFSIZE];
    snprintf(token, sizeof token, "%s", wr_session_token(s));

    /* The next read: the primary, because of the unknown outcome; it sees the row. */
    rd x = read_v(s, "SELECT count(*) FROM t5", -1, 0);
    CHECK_INT(x.st, WR_OK);
    CHECK_INT(x.v, 1);
    CHECK_INT(x.node, p);
    CHECK_INT(x.why, WR_REASON_PRIMARY_UNKNOWN);
    /* Settled by that read: the next one goes to the primary for another reason
     * (the replicas are behind), still seeing the row. */
    x = read_v(s, "SELECT count(*) FROM t5", -1, 0);
    CHECK_INT(x.st, WR_OK);
    CHECK_INT(x.v, 1);
    CHECK_INT(x.node, p);
    CHECK(x.why != WR_REASON_PRIMARY_UNKNOWN);

    /* The token taken right after the unknown outcome carries it. */
    wr_cluster *c2 = t_open(NULL);
    wr_session *r2 = wr_session_new(c2);
    CHECK_INT(wr_session_resume(r2, token), WR_OK);
    x = read_v(r2, "SELECT count(*) FROM t5", -1, 0);
    CHECK_INT(x.st, WR_OK);
    CHECK_INT(x.v, 1);
    CHECK_INT(x.node, p);
    CHECK_INT(x.why, WR_REASON_PRIMARY_UNKNOWN);
    wr_session_free(r2);
    wr_cluster_close(c2);

    /* Once the replicas have caught up, the session reads from them again. */
    resume_node(1);
    resume_node(2);
    CHECK_INT(t_cluster("wait-replay 1"), 0);
    CHECK_INT(t_cluster("wait-replay 2"), 0);
    int on_replica = 0, wrong = 0;
    for (int i = 0; i < POLLS && !on_replica; i++) {
        x = read_v(s, "SELECT count(*) FROM t5", -1, 0);
        wrong += x.st != WR_OK || x.v != 1;
        on_replica = x.st == WR_OK && x.node != p;
        if (!on_replica) t_nap(20);
    }
    CHECK(on_replica);
    CHECK_INT(wrong, 0);
    wr_session_free(s);
    wr_cluster_close(c);
}

/* ---- G1: a replica behind the session answers nothing for it, not even an error ---- */

/* The session creates a table while both replicas are paused: a replica
 * checked for the read is behind, and its "relation does not exist" comes
 * from the past like stale rows would; the read goes on (to the primary). */
static void a_replica_behind_the_session_never_answers_for_it_not_even_with_an_error(void) {
    wr_cluster *c = t_open(NULL);
    int p = wr_cluster_primary(c);
    pause_node(1);
    pause_node(2);
    wr_session *s = wr_session_new(c);
    CHECK_INT(exec0(s, "CREATE TABLE t9 (id bigint PRIMARY KEY)"), WR_OK);
    CHECK_INT(insert_id(s, "t9", 1, NULL), WR_OK);
    wr_session *resumed = wr_session_new(c);
    CHECK_INT(wr_session_resume(resumed, wr_session_token(s)), WR_OK);
    wr_session *both[2] = {s, resumed};
    for (int k = 0; k < 2; k++) {
        rd x = read_v(both[k], "SELECT count(*) FROM t9", -1, 0);
        if (x.st != WR_OK) fprintf(stderr, "read: %s\n", wr_session_errmsg(both[k]));
        CHECK_INT(x.st, WR_OK);
        CHECK_INT(x.v, 1);
        CHECK_INT(x.node, p);
    }
    resume_node(1);
    resume_node(2);
    wr_session_free(resumed);
    wr_session_free(s);
    wr_cluster_close(c);
}

/* ---- G2: a token read in one app server, resumed in another ---- */

/* Two cluster handles list the nodes in opposite orders. A session of A sees
 * a row (inserted by someone else) on replica node 2 while node 1 is paused
 * without it; its token, resumed in B, never reads back in time: B's reads
 * see the row, and never on node 1. */
static void a_token_moves_between_clusters_with_other_node_orders_without_going_back_in_time(void) {
    char rdsn[512];
    reversed_dsn(dsn, rdsn, sizeof rdsn);
    CHECK(strcmp(rdsn, dsn) != 0);
    wr_cluster *a = t_open(NULL);
    wr_cluster *b = NULL;
    wr_options bo = {0};
    if (t_under_valgrind()) bo.connect_timeout_s = 30;
    CHECK_INT(wr_cluster_open(&b, rdsn, &bo), WR_OK);
    size_t n = wr_cluster_nnodes(a);
    CHECK_INT(wr_cluster_nnodes(b), n);
    for (size_t i = 0; i < n; i++) CHECK_STR(wr_cluster_node_name(b, n - 1 - i), wr_cluster_node_name(a, i));

    wr_session *w = wr_session_new(a);
    CHECK_INT(exec0(w, "CREATE TABLE t3 (id bigint PRIMARY KEY)"), WR_OK);
    CHECK_INT(t_cluster("wait-replay 1"), 0);
    CHECK_INT(t_cluster("wait-replay 2"), 0);
    pause_node(1); /* the other replica lags: it never gets the row */
    CHECK_INT(insert_id(w, "t3", 1, NULL), WR_OK);
    CHECK_INT(t_cluster("wait-replay 2"), 0);

    /* In A: a session that saw the row on replica node 2. */
    char token[WR_TOKEN_BUFSIZE] = "";
    int seen = 0;
    for (int i = 0; i < POLLS && !seen; i++) {
        wr_session *s = wr_session_new(a);
        rd x = read_v(s, "SELECT count(*) FROM t3 WHERE id = 1", -1, 0);
        if (x.st == WR_OK && x.node == 2 && x.v == 1) {
            seen = 1;
            snprintf(token, sizeof token, "%s", wr_session_token(s));
        }
        wr_session_free(s);
    }
    CHECK(seen);
    const char *replica = wr_cluster_node_name(a, 2), *lagging = wr_cluster_node_name(a, 1);
    const char *primary = wr_cluster_node_name(a, (size_t)wr_cluster_primary(a));

    /* In B: the same session never reads back in time. */
    wr_session *sb = wr_session_new(b);
    CHECK_INT(wr_session_resume(sb, token), WR_OK);
    for (int i = 0; i < 20; i++) {
        rd x = read_v(sb, "SELECT count(*) FROM t3 WHERE id = 1", -1, 0);
        CHECK_INT(x.st, WR_OK);
        CHECK_INT(x.v, 1);
        const char *name = x.node >= 0 ? wr_cluster_node_name(b, (size_t)x.node) : "";
        CHECK(strcmp(name, lagging) != 0);
        if (i == 0) /* the replica that served it in A, or the primary */
            CHECK(strcmp(name, replica) == 0 || strcmp(name, primary) == 0);
    }
    wr_session_free(sb);
    resume_node(1);
    wr_session_free(w);
    wr_cluster_close(b);
    wr_cluster_close(a);
}

/* ---- G4: a replica whose WAL receiver is stopped ---- */

static void a_replica_without_its_wal_receiver_is_excluded_within_the_time_limit(void) {
    wr_options o = {0};
    o.max_lag_ms = 1000;
    o.refresh_interval_ms = 100;
    wr_cluster *c = t_open(&o);
    wr_session *w = wr_session_new(c);
    CHECK_INT(exec0(w, "CREATE TABLE t6 (id bigint PRIMARY KEY)"), WR_OK);
    CHECK_INT(t_cluster("wait-replay 2"), 0);
    CHECK_INT(t_cluster("wait-replay 1"), 0); /* fresh sessions read it on either replica */
    CHECK_INT(t_cluster("stop-receiver 2"), 0);

    long id = 0;
    int lagging = 0;
    for (int i = 0; i < POLLS && !lagging; i++) { /* a write every ~50 ms */
        CHECK_INT(insert_id(w, "t6", ++id, NULL), WR_OK);
        lagging = status_of(c, 2).state == WR_STATE_LAGGING;
        if (!lagging) t_nap(50);
    }
    CHECK(lagging);
    int on_2 = 0, failed = 0;
    for (int i = 0; i < 40; i++) {
        CHECK_INT(insert_id(w, "t6", ++id, NULL), WR_OK);
        int node = fresh_read(c, "SELECT max(id) FROM t6", NULL);
        on_2 += node == 2;
        failed += node < 0;
    }
    CHECK_INT(on_2, 0);
    CHECK_INT(failed, 0);
    CHECK_INT(status_of(c, 2).state, WR_STATE_LAGGING);

    CHECK_INT(t_cluster("start-receiver 2"), 0);
    CHECK_INT(t_cluster("wait-replay 2"), 0);
    int back = 0;
    for (int i = 0; i < POLLS && !back; i++) {
        CHECK_INT(insert_id(w, "t6", ++id, NULL), WR_OK);
        wr_node_state st = status_of(c, 2).state;
        back = (st == WR_STATE_STREAMING || st == WR_STATE_CATCHING_UP) &&
               fresh_read(c, "SELECT max(id) FROM t6", NULL) == 2;
        if (!back) t_nap(20);
    }
    CHECK(back);
    wr_session_free(w);
    wr_cluster_close(c);
}

/* ---- G4: a replica restarted far behind ---- */

typedef struct {
    wr_cluster *c;
    wr_session *w;
    long id;
    long *ids;           /* ids acknowledged, in order ... */
    uint64_t *acked_ms;  /* ... and when */
    int nacked, cap;
    int on_2, reads, failed, stale, on_2_while_lagging;
    int lagging_seen;    /* node 2 was reported lagging (from then on until
                            its delay is removed, it must serve nothing) */
} restart_run;

/* One write, then one read of a fresh session: a read served by node 2 shows
 * every write acknowledged more than the time limit (1 s) plus 1 s of slack
 * before the read began (G4). Returns the node that served the read. */
static int write_then_read(restart_run *x) {
    long id = ++x->id;
    if (insert_id(x->w, "t7", id, NULL) == WR_OK && x->nacked < x->cap) {
        x->ids[x->nacked] = id;
        x->acked_ms[x->nacked++] = now_ms();
    }
    uint64_t start = now_ms();
    long max_id = -1;
    int node = fresh_read(x->c, "SELECT coalesce(max(id), 0) FROM t7", &max_id);
    x->reads++;
    x->failed += node < 0;
    if (node == 2) {
        x->on_2++;
        x->on_2_while_lagging += x->lagging_seen;
        long floor = 0;
        for (int k = 0; k < x->nacked && x->acked_ms[k] + 2000 < start; k++) floor = x->ids[k];
        if (max_id < floor) {
            x->stale++;
            fprintf(stderr, "node 2 served max(id) %ld, but %ld was acknowledged over 2 s before\n", max_id, floor);
        }
    }
    return node;
}

static void a_replica_restarted_far_behind_serves_no_reads_until_it_caught_up(void) {
    wr_options o = {0};
    o.max_lag_ms = 1000;
    o.refresh_interval_ms = 100;
    restart_run x = {.cap = 20000};
    x.ids = calloc((size_t)x.cap, sizeof *x.ids);
    x.acked_ms = calloc((size_t)x.cap, sizeof *x.acked_ms);
    x.c = t_open(&o);
    x.w = wr_session_new(x.c);
    CHECK_INT(exec0(x.w, "CREATE TABLE t7 (id bigint PRIMARY KEY)"), WR_OK);
    CHECK_INT(t_cluster("wait-replay 2"), 0);
    CHECK_INT(t_cluster("wait-replay 1"), 0); /* fresh sessions read it on either replica */

    /* Node 2 replays 3 s late: past the limit while writes go on. */
    CHECK_INT(t_cluster("delay 2 3000"), 0);
    for (int i = 0; i < POLLS && !x.lagging_seen; i++) {
        write_then_read(&x);
        x.lagging_seen = status_of(x.c, 2).state == WR_STATE_LAGGING;
        if (!x.lagging_seen) t_nap(20);
    }
    CHECK(x.lagging_seen);
    for (int i = 0; i < 20; i++) write_then_read(&x);

    /* Stopped, written past, restarted: it comes back far behind. */
    CHECK_INT(t_cluster("stop-node 2"), 0);
    for (int i = 0; i < 20; i++) write_then_read(&x);
    CHECK_INT(t_cluster("start-node 2"), 0);
    int placed = 0;
    for (int i = 0; i < POLLS && placed < 40; i++) { /* 40 rounds after a probe found it up */
        write_then_read(&x);
        wr_node_status st = status_of(x.c, 2);
        if (st.state != WR_STATE_DOWN && st.state != WR_STATE_UNKNOWN) placed++;
        else t_nap(20);
    }
    CHECK_INT(placed, 40);
    CHECK_INT(x.on_2_while_lagging, 0);
    CHECK_INT(status_of(x.c, 2).state, WR_STATE_LAGGING);

    /* Without the delay it catches up and serves reads again, fresh enough. */
    CHECK_INT(t_cluster("delay 2 0"), 0);
    x.lagging_seen = 0;
    int back = 0;
    for (int i = 0; i < POLLS && !back; i++) {
        back = write_then_read(&x) == 2;
        if (!back) t_nap(20);
    }
    CHECK(back);
    CHECK_INT(x.stale, 0);
    CHECK_INT(x.failed, 0);
    fprintf(stderr, "  restart: %d reads, %d on node 2, %d writes\n", x.reads, x.on_2, x.nacked);
    wr_session_free(x.w);
    wr_cluster_close(x.c);
    free(x.ids);
    free(x.acked_ms);
}

/* ---- G2: from a replica to the primary under remote_apply ---- */

typedef struct {
    wr_cluster *c;
    pthread_mutex_t mu;
    int done;
    wr_status st;
} sync_writer;

static void *write_42(void *arg) {
    sync_writer *wt = arg;
    wr_session *s = wr_session_new(wt->c);
    wr_status st = insert_id(s, "t8", 42, NULL);
    if (st != WR_OK) fprintf(stderr, "synchronous write: %s\n", wr_session_errmsg(s));
    wr_session_free(s);
    pthread_mutex_lock(&wt->mu);
    wt->st = st;
    wt->done = 1;
    pthread_mutex_unlock(&wt->mu);
    return NULL;
}

static int writer_done(sync_writer *wt) {
    pthread_mutex_lock(&wt->mu);
    int d = wt->done;
    pthread_mutex_unlock(&wt->mu);
    return d;
}

/* Node 2 is the synchronous standby (remote_apply) with replay paused: a
 * commit waits on the primary, invisible there, while async node 1 already
 * shows it. A session that saw it on node 1 and then reads the primary gets
 * the row or a timeout, never the primary's older view. */
static void a_read_moving_from_a_replica_to_the_primary_never_goes_back_in_time(void) {
    wr_options o = {0};
    o.read_budget_ms = 100;
    wr_cluster *c = t_open(&o);
    wr_session *setup = wr_session_new(c);
    CHECK_INT(exec0(setup, "CREATE TABLE t8 (id bigint PRIMARY KEY)"), WR_OK);
    wr_session_free(setup);
    int p = wr_cluster_primary(c);
    CHECK_INT(t_cluster("wait-replay 1"), 0);
    CHECK_INT(t_cluster("sync 2"), 0);
    pause_node(2);

    sync_writer wt = {.c = c, .mu = PTHREAD_MUTEX_INITIALIZER};
    pthread_t th;
    pthread_create(&th, NULL, write_42, &wt);
    int on_1 = 0;
    for (int i = 0; i < POLLS && !on_1; i++) {
        on_1 = strcmp(t_sql(1, "SELECT count(*) FROM t8 WHERE id = 42"), "1") == 0;
        if (!on_1) t_nap(20);
    }
    CHECK(on_1);
    CHECK_STR(t_sql(p, "SELECT count(*) FROM t8 WHERE id = 42"), "0"); /* the commit still waits */

    /* A reader that saw the row on node 1. */
    wr_session *reader = NULL;
    for (int i = 0; i < POLLS && !reader; i++) {
        wr_session *s = wr_session_new(c);
        rd x = read_v(s, "SELECT count(*) FROM t8 WHERE id = 42", -1, 0);
        if (x.st == WR_OK && x.node == 1 && x.v == 1) reader = s;
        else wr_session_free(s);
    }
    CHECK(reader != NULL);
    if (reader) {
        /* Now on the primary: the row, or a timeout; never "no row". */
        for (int i = 0; i < 3; i++) {
            int waiting = !writer_done(&wt);
            rd x = read_v(reader, "SELECT count(*) FROM t8 WHERE id = 42", -1, WR_PRIMARY);
            if (x.st == WR_OK && x.v != 1)
                fprintf(stderr, "the primary's read came back without the row the session saw on node 1\n");
            CHECK(x.st == WR_ERR_TIMEOUT || (x.st == WR_OK && x.v == 1));
            if (waiting && !writer_done(&wt)) CHECK_INT(x.st, WR_ERR_TIMEOUT); /* it cannot show it yet */
            if (x.st == WR_OK) CHECK_INT(x.node, p);
        }
    }
    CHECK(!writer_done(&wt));

    resume_node(2);
    pthread_join(th, NULL);
    CHECK_INT(wt.st, WR_OK);
    if (reader) { /* the commit is over: the primary shows it */
        rd x = read_v(reader, "SELECT count(*) FROM t8 WHERE id = 42", -1, WR_PRIMARY);
        CHECK_INT(x.st, WR_OK);
        CHECK_INT(x.v, 1);
        CHECK_INT(x.node, p);
    }
    CHECK_INT(t_cluster("async"), 0);
    wr_session_free(reader);
    wr_cluster_close(c);
}

/* ---- G1 + G2 with cascading replication ---- */

/* Node 3 replicates from replica node 1. Sessions write and read their own
 * writes, also through their tokens; node 3 serves some of those reads
 * (only once it has replayed the write), paused node 2 none. */
static char dsn4[512];

static void a_cascaded_replica_serves_reads_only_with_the_sessions_writes(void) {
    CHECK(strncmp(dsn4, "postgresql://", 13) == 0);
    if (strncmp(dsn4, "postgresql://", 13) != 0) return;
    t_use_dsn(dsn4);
    wr_options o = {0};
    o.refresh_interval_ms = 100;
    wr_cluster *c = NULL;
    if (t_under_valgrind() && o.connect_timeout_s == 0) o.connect_timeout_s = 30;
    CHECK_INT(wr_cluster_open(&c, dsn4, &o), WR_OK);
    CHECK_INT(wr_cluster_nnodes(c), 4);
    wr_session *setup = wr_session_new(c);
    CHECK_INT(exec0(setup, "CREATE TABLE t2 (id bigint PRIMARY KEY)"), WR_OK);
    wr_session_free(setup);
    pause_node(2);

    int on[4] = {0}, wrong = 0, failed = 0;
    for (long id = 1; id <= 400 && on[3] < 3; id++) {
        wr_session *s = wr_session_new(c);
        if (insert_id(s, "t2", id, NULL) != WR_OK) {
            failed++;
            wr_session_free(s);
            continue;
        }
        /* Until node 3's known position covers the write (a probe), so the
         * read may pick it among the replicas that qualify. */
        for (int i = 0; i < POLLS && status_of(c, 3).replay_lsn < wr_session_need(s); i++) t_nap(20);
        wr_session *resumed = wr_session_new(c);
        CHECK_INT(wr_session_resume(resumed, wr_session_token(s)), WR_OK);
        wr_session *both[2] = {s, resumed};
        for (int k = 0; k < 2; k++) {
            rd x = read_v(both[k], "SELECT count(*) FROM t2 WHERE id = $1", id, 0);
            if (x.st != WR_OK) {
                failed++;
                continue;
            }
            wrong += x.v != 1;
            if (x.node >= 0 && x.node < 4) on[x.node]++;
        }
        wr_session_free(resumed);
        wr_session_free(s);
    }
    fprintf(stderr, "  cascade: reads served by node 0..3: %d %d %d %d\n", on[0], on[1], on[2], on[3]);
    CHECK(on[3] >= 1);
    CHECK_INT(on[2], 0); /* paused before every write */
    CHECK_INT(wrong, 0);
    CHECK_INT(failed, 0);
    resume_node(2);
    wr_cluster_close(c);
    t_use_dsn(dsn);
}

/* ---- G7: split brain after a promotion ---- */

#define MAX_IDS 100000

typedef struct {
    wr_cluster *c;
    pthread_mutex_t mu;
    int stop;
    int phase;                 /* 0 before the freeze, 1 frozen, 2 promoted, 3 node 0 fenced */
    long next_id;
    long first_after_promote;  /* first id written once phase >= 2 */
    char token0[WR_TOKEN_BUFSIZE]; /* a token taken in phase 0 */
    long token0_id;
    unsigned char acked[MAX_IDS];
    long acked_promoted;       /* acknowledged writes sent after the promotion */
    long acked_fenced;         /* ... after node 0 was seen fenced */
    int reads, read_failed, ryw_broken, read_on_fenced, unknown, write_failed;
} load;

static int load_phase(load *L) {
    pthread_mutex_lock(&L->mu);
    int ph = L->phase;
    pthread_mutex_unlock(&L->mu);
    return ph;
}

/* A writer and token-carrying readers: each acknowledged write is read back
 * at once by a new session resumed from the writer's token. */
static void *load_loop(void *arg) {
    load *L = arg;
    wr_session *w = wr_session_new(L->c);
    for (;;) {
        pthread_mutex_lock(&L->mu);
        int stop = L->stop, phase = L->phase;
        long id = ++L->next_id;
        if (phase >= 2 && L->first_after_promote == 0) L->first_after_promote = id;
        pthread_mutex_unlock(&L->mu);
        if (stop || id >= MAX_IDS) break;
        wr_status st = insert_id(w, "t1", id, NULL);
        pthread_mutex_lock(&L->mu);
        if (st == WR_OK) {
            L->acked[id] = 1;
            L->acked_promoted += phase >= 2;
            L->acked_fenced += phase >= 3;
            if (phase == 0) {
                snprintf(L->token0, sizeof L->token0, "%s", wr_session_token(w));
                L->token0_id = id;
            }
        } else {
            L->unknown += st == WR_ERR_UNKNOWN_OUTCOME;
            L->write_failed++;
        }
        pthread_mutex_unlock(&L->mu);
        if (st != WR_OK) {
            t_nap(20);
            continue;
        }
        wr_session *r = wr_session_new(L->c);
        wr_session_resume(r, wr_session_token(w));
        int read_phase = load_phase(L);
        rd x = read_v(r, "SELECT count(*) FROM t1 WHERE id = $1", id, 0);
        int end_phase = load_phase(L);
        if (x.st != WR_OK && getenv("WR_SAFETY_DEBUG"))
            fprintf(stderr, "read of %ld (phase %d-%d): %s\n", id, read_phase, end_phase, wr_session_errmsg(r));
        wr_session_free(r);
        pthread_mutex_lock(&L->mu);
        L->reads++;
        if (x.st != WR_OK) L->read_failed++;
        /* Read-your-writes, for writes that survive the failover: those
         * acknowledged after the promotion, and those read back before the
         * freeze (an asynchronous replica may lose what it never received). */
        else if (x.v != 1 && (phase >= 2 || end_phase == 0)) {
            L->ryw_broken++;
            fprintf(stderr, "write %ld (phase %d) not seen by its token (node %d)\n", id, phase, x.node);
        }
        if (x.st == WR_OK && read_phase >= 3 && x.node == 0) L->read_on_fenced++;
        pthread_mutex_unlock(&L->mu);
    }
    wr_session_free(w);
    return NULL;
}

static void set_phase(load *L, int ph) {
    pthread_mutex_lock(&L->mu);
    L->phase = ph;
    pthread_mutex_unlock(&L->mu);
}

static long load_get(load *L, const long *field) {
    pthread_mutex_lock(&L->mu);
    long v = *field;
    pthread_mutex_unlock(&L->mu);
    return v;
}

static void the_old_primary_is_fenced_after_a_promotion_and_no_write_lands_on_it(void) {
    wr_options o = {0};
    o.statement_timeout_ms = 1000; /* the write in flight at the freeze */
    /* Short, so connections to the frozen primary give up fast; three SCRAM
       logins at once under valgrind need longer. */
    o.connect_timeout_s = t_under_valgrind() ? 10 : 1;
    wr_cluster *c = t_open(&o);
    CHECK_INT(wr_cluster_primary(c), 0);
    wr_session *setup = wr_session_new(c);
    CHECK_INT(exec0(setup, "CREATE TABLE t1 (id bigint PRIMARY KEY)"), WR_OK);
    wr_session_free(setup);

    load *L = calloc(1, sizeof *L);
    L->c = c;
    pthread_mutex_init(&L->mu, NULL);
    pthread_t th;
    pthread_create(&th, NULL, load_loop, L);
    for (int i = 0; i < POLLS && load_get(L, &L->token0_id) < 50; i++) t_nap(20);
    /* The token taken now is replayed on node 1 before the freeze: it survives. */
    pthread_mutex_lock(&L->mu);
    char token0[WR_TOKEN_BUFSIZE];
    snprintf(token0, sizeof token0, "%s", L->token0);
    long id0 = L->token0_id;
    pthread_mutex_unlock(&L->mu);
    CHECK(id0 > 0);
    CHECK_INT(t_cluster("wait-replay 1"), 0);

    CHECK_INT(t_cluster("freeze 0"), 0);
    frozen0 = 1;
    set_phase(L, 1);
    CHECK_INT(t_cluster("promote 1"), 0);
    set_phase(L, 2);
    /* Writes resume on node 1, through the same cluster handle. */
    for (int i = 0; i < POLLS && load_get(L, &L->acked_promoted) == 0; i++) t_nap(20);
    CHECK(load_get(L, &L->acked_promoted) > 0);
    CHECK_INT(wr_cluster_primary(c), 1);

    /* The old primary resumes, still a primary, on the old timeline. */
    CHECK_INT(t_cluster("thaw 0"), 0);
    frozen0 = 0;
    CHECK_STR(t_sql(0, "SELECT pg_is_in_recovery()"), "f");
    int fenced = 0;
    for (int i = 0; i < POLLS && !fenced; i++) {
        wr_cluster_refresh(c); /* may miss a node under valgrind: polled again */
        wr_node_status st = status_of(c, 0);
        fenced = st.state == WR_STATE_FENCED && st.fenced;
        if (!fenced) t_nap(20);
    }
    CHECK(fenced);
    set_phase(L, 3);
    for (int i = 0; i < 3 * POLLS && load_get(L, &L->acked_fenced) < 200; i++) {
        if (i % 10 == 0) wr_cluster_refresh(c); /* node 0 keeps being probed */
        t_nap(20);
    }
    CHECK(load_get(L, &L->acked_fenced) >= 200);
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_mutex_unlock(&L->mu);
    pthread_join(th, NULL);

    /* Node 0 stays fenced; the primary never alternated. */
    wr_node_status st0 = status_of(c, 0);
    CHECK_INT(st0.state, WR_STATE_FENCED);
    CHECK(st0.fenced);
    CHECK_INT(st0.role, WR_ROLE_PRIMARY);
    CHECK(st0.timeline < status_of(c, 1).timeline);
    CHECK_INT(wr_cluster_primary(c), 1);

    /* Every write acknowledged after the promotion is on node 1 ... */
    wr_session *check = wr_session_new(c);
    char from[32];
    snprintf(from, sizeof from, "%ld", L->first_after_promote);
    const char *p[1] = {from};
    wr_result *r = NULL;
    CHECK_INT(wr_query(check, "SELECT id FROM t1 WHERE id >= $1::bigint", 1, p, WR_PRIMARY, &r), WR_OK);
    if (r) {
        CHECK_INT(wr_result_node(r), 1);
        unsigned char *found = calloc(MAX_IDS, 1);
        for (int i = 0; i < wr_result_nrows(r); i++) {
            long id = atol(wr_result_value(r, i, 0));
            if (id >= 0 && id < MAX_IDS) found[id] = 1;
        }
        long missing = 0;
        for (long id = L->first_after_promote; id < MAX_IDS; id++) missing += L->acked[id] && !found[id];
        CHECK_INT(missing, 0);
        free(found);
    }
    wr_result_free(r);
    wr_session_free(check);
    /* ... and none reached node 0. */
    CHECK(L->first_after_promote > 0);
    CHECK_STR(t_sql(0, "SELECT count(*) FROM t1 WHERE id >= %ld", L->first_after_promote), "0");
    CHECK_INT(L->read_on_fenced, 0);
    CHECK_INT(L->ryw_broken, 0);
    fprintf(stderr, "  split brain: %ld writes after the promotion, %d reads (%d failed), %d unknown outcomes\n",
            L->acked_promoted, L->reads, L->read_failed, L->unknown);

    /* A token taken before the freeze still reads its write. */
    wr_session *resumed = wr_session_new(c);
    CHECK_INT(wr_session_resume(resumed, token0), WR_OK);
    rd x = read_v(resumed, "SELECT count(*) FROM t1 WHERE id = $1", id0, 0);
    CHECK_INT(x.st, WR_OK);
    CHECK_INT(x.v, 1);
    CHECK(x.node == 1 || x.node == 2);
    wr_session_free(resumed);

    /* A cluster opened now, with both claimants up, elects the later timeline. */
    wr_cluster *c2 = t_open(NULL);
    CHECK_INT(wr_cluster_primary(c2), 1);
    CHECK_INT(status_of(c2, 0).state, WR_STATE_FENCED);
    wr_session *s2 = wr_session_new(c2);
    int node = -1;
    CHECK_INT(insert_id(s2, "t1", MAX_IDS + 1, &node), WR_OK);
    CHECK_INT(node, 1);
    wr_session_free(s2);
    wr_cluster_close(c2);
    CHECK_STR(t_sql(0, "SELECT count(*) FROM t1 WHERE id = %d", MAX_IDS + 1), "0");

    wr_cluster_close(c);
    pthread_mutex_destroy(&L->mu);
    free(L);
}

/* ---- main ----------------------------------------------------------------- */

/* A fresh cluster. Tried again when a port of the block it picked was taken
 * in between (by a cluster of another test starting at the same time). */
static int start_cluster(void) {
    static int started;
    dsn = dsn_bufs[started++ % 4];
    for (int attempt = 0; attempt < 3; attempt++) {
        if (t_cluster_out(dsn, sizeof dsn_bufs[0], "start") == 0 && strncmp(dsn, "postgresql://", 13) == 0) {
            t_use_dsn(dsn);
            cluster_up = 1;
            return 0;
        }
        t_nap(500);
    }
    fprintf(stderr, "could not start the safety cluster\n");
    return -1;
}

/* `test_safety WORD` runs only the tests whose name contains WORD. */
static const char *only;
static int wanted(const char *name) { return !only || strstr(name, only) != NULL; }
#define MAYBE_RUN(fn) do { if (wanted(#fn)) RUN(fn); } while (0)

int main(int argc, char **argv) {
    only = argc > 1 ? argv[1] : NULL;
    /* Clusters of their own, next to the suite's. */
    setenv("WR_CLUSTER_DIR", "/tmp/walrouter-safety-cluster", 1);
    setenv("WR_BASE_PORT", "25480", 1);
    atexit(stop_at_exit);
    atexit(release_faults); /* runs first */
    /* Faults that leave the topology as it was: one cluster. */
    if (wanted("a_read_on_the_primary_that_loses_its_connection_runs_at_most_once"
               " after_an_unknown_outcome_the_next_read_sees_the_write_if_it_committed"
               " a_replica_behind_the_session_never_answers_for_it_not_even_with_an_error"
               " a_token_moves_between_clusters_with_other_node_orders_without_going_back_in_time"
               " a_replica_without_its_wal_receiver_is_excluded_within_the_time_limit"
               " a_replica_restarted_far_behind_serves_no_reads_until_it_caught_up"
               " a_read_moving_from_a_replica_to_the_primary_never_goes_back_in_time")) {
        if (start_cluster() != 0) goto fail;
        MAYBE_RUN(a_read_on_the_primary_that_loses_its_connection_runs_at_most_once);
        MAYBE_RUN(after_an_unknown_outcome_the_next_read_sees_the_write_if_it_committed);
        release_faults();
        MAYBE_RUN(a_replica_behind_the_session_never_answers_for_it_not_even_with_an_error);
        release_faults();
        MAYBE_RUN(a_token_moves_between_clusters_with_other_node_orders_without_going_back_in_time);
        release_faults();
        MAYBE_RUN(a_replica_without_its_wal_receiver_is_excluded_within_the_time_limit);
        MAYBE_RUN(a_replica_restarted_far_behind_serves_no_reads_until_it_caught_up);
        MAYBE_RUN(a_read_moving_from_a_replica_to_the_primary_never_goes_back_in_time);
        release_faults();
    }
    /* A fourth node, cascading from node 1. */
    if (wanted("a_cascaded_replica_serves_reads_only_with_the_sessions_writes")) {
        if (start_cluster() != 0) goto fail;
        CHECK_INT(t_cluster_out(dsn4, sizeof dsn4, "cascade"), 0);
        RUN(a_cascaded_replica_serves_reads_only_with_the_sessions_writes);
        release_faults();
    }
    /* A promotion while the old primary is frozen. */
    if (wanted("the_old_primary_is_fenced_after_a_promotion_and_no_write_lands_on_it")) {
        if (start_cluster() != 0) goto fail;
        RUN(the_old_primary_is_fenced_after_a_promotion_and_no_write_lands_on_it);
        release_faults();
    }
    stop_at_exit();
    return check_exit();
fail:
    t_cluster("stop");
    cluster_up = 0;
    return 1;
}
