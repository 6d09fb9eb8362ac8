/* test_threads.c — 8 threads share one cluster, each with its own sessions,
 * writing and reading their own rows while one replica lags: no errors, no
 * stale reads, never a read on the paused replica, and most on the
 * streaming one (with a read budget long enough for it to catch up). Also
 * the ThreadSanitizer target. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "testlib.h"

#define THREADS 8
#define ROUNDS 40

typedef struct {
    wr_cluster *c;
    int id;
    int errors;
    int stale;
    int on_node[3];
    int by_reason[WR_REASON_COUNT];
} worker;

static void *work(void *arg) {
    worker *w = arg;
    wr_session *s = wr_session_new(w->c);
    for (int i = 1; i <= ROUNDS; i++) {
        if (i % 10 == 0) { /* a new request resumes the previous one's token */
            char token[WR_TOKEN_BUFSIZE];
            snprintf(token, sizeof token, "%s", wr_session_token(s));
            wr_session_free(s);
            s = wr_session_new(w->c);
            if (wr_session_resume(s, token) != WR_OK) w->errors++;
        }
        char t[16], n[16];
        snprintf(t, sizeof t, "%d", w->id);
        snprintf(n, sizeof n, "%d", i);
        const char *p[2] = {t, n};
        if (wr_exec(s, "INSERT INTO thread_rows(thread, n) VALUES ($1::int, $2::int)", 2, p, NULL) != WR_OK) {
            fprintf(stderr, "thread %d: %s\n", w->id, wr_session_errmsg(s));
            w->errors++;
            continue;
        }
        wr_result *r = NULL;
        if (wr_query(s, "SELECT count(*) FROM thread_rows WHERE thread = $1::int", 1, p, 0, &r) != WR_OK) {
            fprintf(stderr, "thread %d: %s\n", w->id, wr_session_errmsg(s));
            w->errors++;
            continue;
        }
        if (atoi(wr_result_value(r, 0, 0)) != i) w->stale++;
        int node = wr_result_node(r);
        if (node >= 0 && node < 3) w->on_node[node]++;
        w->by_reason[wr_result_reason(r)]++;
        wr_result_free(r);
    }
    wr_session_free(s);
    return NULL;
}

static void eight_threads_share_one_cluster_without_errors_or_stale_reads(void) {
    t_sql(0, "DROP TABLE IF EXISTS thread_rows");
    t_sql(0, "CREATE TABLE thread_rows (thread int, n int)");
    /* Replica 2 streams again (a test before may have restarted the primary,
     * and a WAL receiver reconnects only after wal_retrieve_retry_interval):
     * otherwise its replay rate is unknown and every read rightly goes to
     * the primary as primary_lagging. */
    CHECK_INT(t_cluster("wait-replay 2"), 0);
    CHECK_INT(t_cluster("pause 1"), 0);
    /* A budget no streaming replica needs all of, even on a loaded machine
     * under a sanitizer: a read waits for replica 2 rather than moving on. */
    wr_options o = {0};
    o.read_budget_ms = 20000;
    wr_cluster *c = t_open(&o);
    worker w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){.c = c, .id = i};
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    int errors = 0, stale = 0, on_node[3] = {0}, by_reason[WR_REASON_COUNT] = {0};
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        errors += w[i].errors;
        stale += w[i].stale;
        for (int n = 0; n < 3; n++) on_node[n] += w[i].on_node[n];
        for (int k = 0; k < WR_REASON_COUNT; k++) by_reason[k] += w[i].by_reason[k];
    }
    CHECK_INT(errors, 0);
    CHECK_INT(stale, 0);
    fprintf(stderr, "reads: primary %d, replica 1 %d, replica 2 %d;", on_node[0], on_node[1], on_node[2]);
    for (int k = 0; k < WR_REASON_COUNT; k++)
        if (by_reason[k]) fprintf(stderr, " %s=%d", wr_reason_name((wr_reason)k), by_reason[k]);
    fprintf(stderr, "\n");
    /* Paused before every row: never fresh enough. Streaming, with that
     * budget: the reads (but for the odd one its replay rate, measured
     * between bursts, says cannot wait for: those go to the primary). */
    CHECK_INT(on_node[1], 0);
    CHECK(on_node[2] > THREADS * ROUNDS / 2);
    CHECK_INT(atoi(t_sql(0, "SELECT count(*) FROM thread_rows")), THREADS * ROUNDS);
    wr_cluster_close(c);
    CHECK_INT(t_cluster("resume 1"), 0);
}

int main(void) {
    t_dsn();
    RUN(eight_threads_share_one_cluster_without_errors_or_stale_reads);
    return check_exit();
}
