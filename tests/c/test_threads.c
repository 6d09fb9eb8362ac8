/* test_threads.c — 8 threads share one cluster, each with its own sessions,
 * writing and reading their own rows while one replica lags: no errors and
 * no stale reads. Also the ThreadSanitizer target. */
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
    int on_replica;
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
        if (wr_result_node(r) != 0) w->on_replica++;
        wr_result_free(r);
    }
    wr_session_free(s);
    return NULL;
}

static void eight_threads_share_one_cluster_without_errors_or_stale_reads(void) {
    t_sql(0, "DROP TABLE IF EXISTS thread_rows");
    t_sql(0, "CREATE TABLE thread_rows (thread int, n int)");
    CHECK_INT(t_cluster("pause 1"), 0);
    wr_cluster *c = t_open(NULL);
    worker w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){.c = c, .id = i};
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    int errors = 0, stale = 0, on_replica = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        errors += w[i].errors;
        stale += w[i].stale;
        on_replica += w[i].on_replica;
    }
    CHECK_INT(errors, 0);
    CHECK_INT(stale, 0);
    fprintf(stderr, "%d of %d reads served by replica 2\n", on_replica, THREADS * ROUNDS);
    CHECK_INT(atoi(t_sql(0, "SELECT count(*) FROM thread_rows")), THREADS * ROUNDS);
    wr_cluster_close(c);
    CHECK_INT(t_cluster("resume 1"), 0);
}

int main(void) {
    t_dsn();
    RUN(eight_threads_share_one_cluster_without_errors_or_stale_reads);
    return check_exit();
}
