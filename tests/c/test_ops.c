/* test_ops.c — operations against the real cluster: a stopped replica, a
 * replica stopped under a running read, a replica past the lag limit, lag
 * figures of an idle primary, events, the background refresher, and the JSON
 * and Prometheus renderings. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "testlib.h"

#define DEADLINE_POLLS 1500 /* x 20 ms: a failure guard, not a speed requirement */

/* The node that serves a read of a fresh session. */
static int served_by(wr_cluster *c) {
    wr_session *s = wr_session_new(c);
    wr_result *r = NULL;
    int node = -2;
    if (wr_query(s, "SELECT 1", 0, NULL, 0, &r) == WR_OK) node = wr_result_node(r);
    else fprintf(stderr, "read failed: %s\n", wr_session_errmsg(s));
    wr_result_free(r);
    wr_session_free(s);
    return node;
}

/* Polls reads of fresh sessions until one is served by node; 1 when seen. */
static int eventually_served_by(wr_cluster *c, int node) {
    for (int i = 0; i < DEADLINE_POLLS; i++) {
        for (int k = 0; k < 8; k++)
            if (served_by(c) == node) return 1;
        t_nap(20);
    }
    return 0;
}

static wr_node_state state_of(wr_cluster *c, size_t i) {
    wr_node_status st;
    return wr_cluster_node_status(c, i, &st) == WR_OK ? st.state : WR_STATE_UNKNOWN;
}

typedef struct {
    pthread_mutex_t mu;
    int down[3], back[3];
} seen_events;

static void on_event(void *arg, const wr_event *ev) {
    seen_events *seen = arg;
    pthread_mutex_lock(&seen->mu);
    if (ev->node >= 0 && ev->node < 3) {
        if (ev->to == WR_STATE_DOWN) seen->down[ev->node]++;
        if (ev->from == WR_STATE_DOWN && ev->to != WR_STATE_DOWN) seen->back[ev->node]++;
    }
    pthread_mutex_unlock(&seen->mu);
}

/* Checks a rendering with Debian's python3: JSON fields, Prometheus syntax. */
static int validated_by_python(const char *text, const char *program) {
    char path[] = "/tmp/walrouter-render-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c '%s' < %s", program, path);
    int rc = system(cmd);
    remove(path);
    return rc == 0;
}

static void a_stopped_replica_is_skipped_and_used_again_after_restart(void) {
    wr_cluster *c = t_open(NULL);
    seen_events seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    wr_cluster_set_event_handler(c, on_event, &seen);
    CHECK(eventually_served_by(c, 2));
    CHECK_INT(t_cluster("stop-node 2"), 0);
    int errors = 0, on_stopped = 0;
    for (int i = 0; i < 40; i++) {
        int node = served_by(c);
        errors += node < 0;
        on_stopped += node == 2;
    }
    CHECK_INT(errors, 0);
    CHECK_INT(on_stopped, 0);
    CHECK_INT(state_of(c, 2), WR_STATE_DOWN);
    CHECK(seen.down[2] >= 1);
    wr_node_status st;
    CHECK_INT(wr_cluster_node_status(c, 2, &st), WR_OK);
    CHECK(st.last_error[0] != '\0');
    CHECK(strstr(st.last_error, "walrouter-secret") == NULL);
    char *json = wr_cluster_status_json(c);
    CHECK(json != NULL);
    CHECK(validated_by_python(json, /* unknown figures are null, known ones numbers */
        "import json, sys\n"
        "nodes = json.load(sys.stdin)\n"
        "assert nodes[2][\"state\"] == \"down\", nodes[2]\n"
        "assert nodes[2][\"lag_bytes\"] is None and nodes[2][\"lag_seconds\"] is None, nodes[2]\n"
        "assert isinstance(nodes[1][\"lag_bytes\"], int) and nodes[1][\"lag_bytes\"] >= 0, nodes[1]\n"));
    wr_free(json);

    CHECK_INT(t_cluster("start-node 2"), 0);
    CHECK(eventually_served_by(c, 2));
    CHECK(seen.back[2] >= 1);
    wr_cluster_set_event_handler(c, NULL, NULL);
    wr_cluster_close(c);
}

/* Stops replica 2 as soon as a read marked walrouter_mid_read runs on it:
 * `seen` is set before the stop begins, `stopped` once it is done. */
typedef struct {
    pthread_mutex_t mu;
    int seen, stopped, quit;
} mid_read_stopper;

static int stopper_get(mid_read_stopper *st, const int *flag) {
    pthread_mutex_lock(&st->mu);
    int v = *flag;
    pthread_mutex_unlock(&st->mu);
    return v;
}

static void stopper_set(mid_read_stopper *st, int *flag, int v) {
    pthread_mutex_lock(&st->mu);
    *flag = v;
    pthread_mutex_unlock(&st->mu);
}

static void *stop_replica_under_read(void *arg) {
    mid_read_stopper *st = arg;
    for (int i = 0; i < DEADLINE_POLLS && !stopper_get(st, &st->quit); i++) {
        if (atoi(t_sql(2, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                          "AND query LIKE '%%walrouter_mid_read%%' AND pid <> pg_backend_pid()")) > 0) {
            stopper_set(st, &st->seen, 1);
            stopper_set(st, &st->stopped, t_cluster("stop-node 2") == 0);
            return NULL;
        }
        t_nap(20);
    }
    return NULL;
}

static void a_replica_that_dies_under_a_read_hands_it_to_another_node(void) {
    wr_cluster *c = t_open(NULL);
    char port2[16];
    snprintf(port2, sizeof port2, "%s", t_sql(2, "SELECT inet_server_port()"));
    const char *params[] = {port2};
    mid_read_stopper st = {.mu = PTHREAD_MUTEX_INITIALIZER};
    pthread_t th;
    CHECK_INT(pthread_create(&th, NULL, stop_replica_under_read, &st), 0);
    /* Replica 2 sleeps on this read until it is stopped; the other nodes
     * answer at once. Fresh sessions read until replica 2 got one: the first
     * read to return after the stopper saw it running is the one cut off. */
    wr_status rc = WR_OK;
    int node = -1, value = 7, moved = 0;
    wr_reason why = WR_REASON_NONE;
    for (int i = 0; i < DEADLINE_POLLS && rc == WR_OK && !stopper_get(&st, &st.seen); i++) {
        wr_session *s = wr_session_new(c);
        wr_result *r = NULL;
        rc = wr_query(s, "SELECT pg_sleep(CASE WHEN inet_server_port() = $1::int THEN 600 ELSE 0 END), "
                         "7 AS walrouter_mid_read", 1, params, 0, &r);
        if (rc == WR_OK) {
            node = wr_result_node(r);
            why = wr_result_reason(r);
            if (atoi(wr_result_value(r, 0, 1)) != 7) value = atoi(wr_result_value(r, 0, 1));
            /* A read that met replica 2 (sleeping, or being stopped) moved on:
             * to replica 1, or to the primary for whichever reason the
             * replicas gave then (down, or under valgrind also lagging or
             * past the budget). */
            moved += (node == 1 && why == WR_REASON_REPLICA_OTHER) ||
                     (node == 0 && (why == WR_REASON_PRIMARY_NO_REPLICA || why == WR_REASON_PRIMARY_LAGGING ||
                                    why == WR_REASON_PRIMARY_BUDGET));
        } else {
            fprintf(stderr, "read failed: %s\n", wr_session_errmsg(s));
        }
        wr_result_free(r);
        wr_session_free(s);
    }
    stopper_set(&st, &st.quit, 1);
    pthread_join(th, NULL);
    CHECK(st.seen);
    CHECK(st.stopped);
    /* Every read succeeded, and those that met replica 2 moved on to
       another node. Which read the stopper caught is not known exactly: a
       read cut off at its budget can still show in pg_stat_activity while
       the next one runs elsewhere. */
    CHECK_INT(rc, WR_OK);
    CHECK(node == 0 || node == 1);
    if (!moved) fprintf(stderr, "no read moved on; the last one: node %d, %s\n", node, wr_reason_name(why));
    CHECK(moved >= 1);
    CHECK_INT(value, 7);
    /* The read moved on at its budget, maybe before the node stopped: the
     * node is reported down once a probe finds it stopped. */
    for (int i = 0; i < DEADLINE_POLLS && state_of(c, 2) != WR_STATE_DOWN; i++) t_nap(50);
    CHECK_INT(state_of(c, 2), WR_STATE_DOWN);
    CHECK_INT(t_cluster("start-node 2"), 0);
    CHECK(eventually_served_by(c, 2));
    wr_cluster_close(c);
}

static void a_replica_past_the_lag_limit_serves_no_reads_until_it_catches_up(void) {
    wr_options opt = {0};
    opt.max_lag_bytes = 1 << 20;
    wr_cluster *c = t_open(&opt);
    CHECK_INT(t_cluster("pause 1"), 0);
    t_sql(0, "CREATE TABLE IF NOT EXISTS ballast (b text)");
    t_sql(0, "INSERT INTO ballast SELECT repeat('x', 200) FROM generate_series(1, 20000)"); /* ~5 MB of WAL */
    CHECK_INT(t_cluster("wait-replay 2"), 0);
    CHECK_INT(wr_cluster_refresh(c), WR_OK);
    CHECK_INT(state_of(c, 1), WR_STATE_LAGGING);
    wr_node_status st;
    CHECK_INT(wr_cluster_node_status(c, 1, &st), WR_OK);
    CHECK(st.lag_bytes > (1 << 20));
    int on_lagging = 0, errors = 0;
    for (int i = 0; i < 40; i++) {
        int node = served_by(c);
        on_lagging += node == 1;
        errors += node < 0;
    }
    CHECK_INT(on_lagging, 0);
    CHECK_INT(errors, 0);
    wr_event evs[64];
    size_t n = wr_cluster_poll_events(c, evs, 64);
    int lagging_event = 0;
    for (size_t i = 0; i < n; i++) lagging_event |= evs[i].node == 1 && evs[i].to == WR_STATE_LAGGING;
    CHECK(lagging_event);

    CHECK_INT(t_cluster("resume 1"), 0);
    CHECK_INT(t_cluster("wait-replay 1"), 0);
    CHECK_INT(wr_cluster_refresh(c), WR_OK);
    CHECK(state_of(c, 1) == WR_STATE_STREAMING || state_of(c, 1) == WR_STATE_CATCHING_UP);
    CHECK(eventually_served_by(c, 1));
    t_sql(0, "DROP TABLE ballast");
    wr_cluster_close(c);
}

/* recovery_min_apply_delay makes replica 1 fall behind in time: past
 * max_lag_ms it serves nobody's reads, and it is back once caught up. */
static void a_replica_delayed_past_the_time_limit_serves_no_reads(void) {
    wr_options opt = {0};
    opt.max_lag_ms = 500;
    wr_cluster *c = t_open(&opt);
    CHECK_INT(t_cluster("delay 1 600000"), 0);
    t_sql(0, "CREATE TABLE IF NOT EXISTS delayed (x int)");
    int lagging = 0;
    for (int i = 0; i < DEADLINE_POLLS && !lagging; i++) {
        t_sql(0, "INSERT INTO delayed VALUES (1)");
        CHECK_INT(wr_cluster_refresh(c), WR_OK);
        lagging = state_of(c, 1) == WR_STATE_LAGGING;
        if (!lagging) t_nap(20);
    }
    CHECK(lagging);
    wr_node_status st;
    CHECK_INT(wr_cluster_node_status(c, 1, &st), WR_OK);
    CHECK(st.lag_seconds > 0.5);
    int on_delayed = 0;
    for (int i = 0; i < 40; i++) on_delayed += served_by(c) == 1;
    CHECK_INT(on_delayed, 0);
    CHECK_INT(t_cluster("delay 1 0"), 0);
    CHECK_INT(t_cluster("wait-replay 1"), 0);
    CHECK_INT(wr_cluster_refresh(c), WR_OK);
    CHECK(state_of(c, 1) != WR_STATE_LAGGING);
    CHECK(eventually_served_by(c, 1));
    t_sql(0, "DROP TABLE delayed");
    wr_cluster_close(c);
}

static void lag_is_zero_for_caught_up_replicas_of_an_idle_primary(void) {
    wr_cluster *c = t_open(NULL);
    t_sql(0, "CREATE TABLE IF NOT EXISTS idle_marker (x int)");
    t_sql(0, "INSERT INTO idle_marker VALUES (1)");
    CHECK_INT(t_cluster("wait-replay 1"), 0);
    CHECK_INT(t_cluster("wait-replay 2"), 0);
    /* Let the primary stay idle for over a second since the last replayed
     * transaction: lag must not grow with idle time. */
    for (int i = 0; i < DEADLINE_POLLS; i++) {
        if (strcmp(t_sql(1, "SELECT now() - pg_last_xact_replay_timestamp() > interval '1.2 s'"), "t") == 0) break;
        t_nap(50);
    }
    CHECK_INT(wr_cluster_refresh(c), WR_OK);
    for (size_t i = 1; i <= 2; i++) {
        wr_node_status st;
        CHECK_INT(wr_cluster_node_status(c, i, &st), WR_OK);
        CHECK(st.lag_seconds == 0.0);
        CHECK(st.lag_bytes >= 0 && st.lag_bytes < 1 << 16);
        CHECK_INT(st.state, WR_STATE_STREAMING);
        CHECK(st.last_check_unix_ms > 0);
        CHECK(st.replay_lsn > 0);
    }
    wr_cluster_close(c);
}

static void the_background_refresher_notices_a_stopped_node_on_its_own(void) {
    wr_cluster *c = t_open(NULL);
    wr_event evs[64];
    wr_cluster_poll_events(c, evs, 64); /* the opening's own events */
    CHECK_INT(wr_cluster_start_refresher(c, 50), WR_OK);
    CHECK_INT(t_cluster("stop-node 1"), 0);
    int seen = 0;
    for (int i = 0; i < DEADLINE_POLLS && !seen; i++) { /* no call into the cluster but polling */
        size_t n = wr_cluster_poll_events(c, evs, 64);
        for (size_t k = 0; k < n; k++) seen |= evs[k].node == 1 && evs[k].to == WR_STATE_DOWN;
        if (!seen) t_nap(20);
    }
    CHECK(seen);
    CHECK_INT(t_cluster("start-node 1"), 0);
    wr_cluster_stop_refresher(c);
    wr_cluster_stop_refresher(c); /* idempotent */
    wr_cluster_close(c);           /* also stops a running one */
    c = t_open(NULL);
    CHECK_INT(wr_cluster_start_refresher(c, 10), WR_OK);
    wr_cluster_close(c);
}

static void status_renders_as_json_and_prometheus_text_with_every_field(void) {
    wr_cluster *c = t_open(NULL);
    served_by(c);
    char *json = wr_cluster_status_json(c);
    CHECK(json != NULL);
    CHECK(strstr(json, "walrouter-secret") == NULL);
    CHECK(validated_by_python(json,
        "import json, sys\n"
        "nodes = json.load(sys.stdin)\n"
        "assert len(nodes) == 3, nodes\n"
        "fields = {\"node\", \"name\", \"host\", \"port\", \"role\", \"state\", \"lag_bytes\", \"lag_seconds\",\n"
        "          \"replay_lsn\", \"replay_rate\", \"last_check_unix_ms\", \"conns_in_use\", \"conns_idle\",\n"
        "          \"last_error\", \"served\", \"errors\", \"timeline\", \"fenced\", \"rtt_ms\"}\n"
        "for n in nodes:\n"
        "    assert fields <= set(n), set(n) ^ fields\n"
        "    assert n[\"state\"] in (\"up\", \"streaming\", \"catching_up\", \"lagging\", \"down\", \"fenced\"), n\n"
        "    assert n[\"fenced\"] is False and n[\"timeline\"] == 1, n\n"
        "    assert \"/\" in n[\"replay_lsn\"]\n"
        "    assert \"replica_cached\" in n[\"served\"] and \"write\" in n[\"served\"]\n"
        "assert [n[\"role\"] for n in nodes] == [\"primary\", \"replica\", \"replica\"]\n"));
    wr_free(json);
    char *prom = wr_cluster_metrics_text(c);
    CHECK(prom != NULL);
    CHECK(validated_by_python(prom,
        "import re, sys\n"
        "sample = re.compile(r\"^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{([a-zA-Z_][a-zA-Z0-9_]*=\\\"([^\\\"\\\\\\\\]|\\\\\\\\.)*\\\",?)*\\})? -?[0-9.eE+-]+$\")\n"
        "names = set()\n"
        "for line in sys.stdin.read().splitlines():\n"
        "    if line.startswith(\"# HELP \") or line.startswith(\"# TYPE \"): continue\n"
        "    assert sample.match(line), line\n"
        "    names.add(line.split(\"{\")[0])\n"
        "need = {\"walrouter_statements_total\", \"walrouter_errors_total\", \"walrouter_node_up\",\n"
        "        \"walrouter_replica_lag_bytes\", \"walrouter_replica_lag_seconds\", \"walrouter_connections\"}\n"
        "assert need <= names, need - names\n"));
    wr_free(prom);
    wr_cluster_close(c);
}

int main(void) {
    t_dsn();
    RUN(a_stopped_replica_is_skipped_and_used_again_after_restart);
    RUN(a_replica_that_dies_under_a_read_hands_it_to_another_node);
    RUN(a_replica_past_the_lag_limit_serves_no_reads_until_it_catches_up);
    RUN(a_replica_delayed_past_the_time_limit_serves_no_reads);
    RUN(lag_is_zero_for_caught_up_replicas_of_an_idle_primary);
    RUN(the_background_refresher_notices_a_stopped_node_on_its_own);
    RUN(status_renders_as_json_and_prometheus_text_with_every_field);
    return check_exit();
}
