#define _POSIX_C_SOURCE 200809L
/* test_conn.c — the libpq I/O layer against a real cluster (WR_TEST_DSN, node 0
 * the primary): every connect and round trip ends by its deadline; a running
 * statement can be canceled and its connection kept; a frozen backend or a
 * silent host costs the caller its deadline, never more; the op API runs many
 * round trips in one poll loop; the statement cache and pipelines behave as
 * they always did. Standalone: conn.h and check.h only. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "conn.h"

#define MS 1000u
#define SEC 1000000u

static wr_dsn dsn; /* the test cluster's */

static uint64_t now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * SEC + (uint64_t)t.tv_nsec / 1000u;
}

static void nap_ms(int ms) {
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* A pooled connection to node; cache_size 0: no statement cache. */
static wr_conn *open_conn(int node, uint32_t cache_size) {
    char err[256];
    PGconn *pg = wr_conn_connect(&dsn, (size_t)node, now_us() + 5 * SEC, err, sizeof err);
    if (!pg) {
        fprintf(stderr, "test_conn: cannot connect to node %d: %s\n", node, err);
        exit(2);
    }
    return wr_conn_new(pg, node, cache_size > 0, cache_size);
}

/* Runs one statement with a deadline `ms` ahead; the result stays in *st. */
static wr_run_status run1(wr_conn *c, const char *sql, uint64_t ms, uint64_t grace_ms, wr_pq_step *st) {
    char err[256];
    *st = (wr_pq_step){.sql = sql};
    wr_run_opts o = {.deadline_us = now_us() + ms * MS, .cancel_grace_us = grace_ms * MS};
    return wr_conn_run(c, st, 1, &o, err, sizeof err);
}

/* The first value of a statement run with a generous deadline ("" if none). */
static const char *value_of(wr_conn *c, const char *sql) {
    static char buf[256];
    wr_pq_step st;
    buf[0] = '\0';
    if (run1(c, sql, 5000, 0, &st) == WR_RUN_OK && PQresultStatus(st.res) == PGRES_TUPLES_OK &&
        PQntuples(st.res) > 0)
        snprintf(buf, sizeof buf, "%s", PQgetvalue(st.res, 0, 0));
    wr_pq_steps_clear(&st, 1);
    return buf;
}

static const char *sqlstate(const PGresult *r) {
    const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

/* A key=value conninfo with the test cluster's settings and these hosts/ports. */
static void conninfo_with(char *out, size_t cap, const char *hosts, const char *ports, const char *password) {
    size_t len = (size_t)snprintf(out, cap, "host=%s port=%s", hosts, ports);
    for (size_t i = 0; i < dsn.nkw && len < cap; i++) {
        const char *v = strcmp(dsn.kw[i], "password") == 0 && password ? password : dsn.val[i];
        len += (size_t)snprintf(out + len, cap - len, " %s='", dsn.kw[i]);
        for (; *v && len + 3 < cap; v++) {
            if (*v == '\'' || *v == '\\') out[len++] = '\\';
            out[len++] = *v;
        }
        len += (size_t)snprintf(out + len, cap - len, "'");
    }
}

static void parse_or_die(wr_dsn *d, const char *conninfo) {
    wr_err e;
    if (wr_dsn_parse(d, conninfo, 5, &e) != WR_OK) {
        fprintf(stderr, "test_conn: bad DSN: %s\n", e.msg);
        exit(2);
    }
}

/* A TCP listener on 127.0.0.1 that never accepts: the kernel completes the
 * handshake, then nothing ever answers. */
static int silent_listener(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("test_conn: silent listener");
        exit(2);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* The scheduler state of a process ('T' when stopped), '?' if gone. */
static char proc_state(long pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' ? paren[2] : '?';
}

/* ---- dsn ------------------------------------------------------------------ */

static const char *kw_value(const wr_dsn *d, const char *kw) {
    for (size_t i = 0; i < d->nkw; i++)
        if (strcmp(d->kw[i], kw) == 0) return d->val[i];
    return NULL;
}

static void test_dsn_turns_keepalives_on_unless_the_dsn_says_otherwise(void) {
    wr_dsn d;
    parse_or_die(&d, "postgresql://u:pw@h1:1,h2:2/db?keepalives_idle=9&tcp_user_timeout=0");
    CHECK_INT(d.n, 2);
    CHECK_STR(kw_value(&d, "keepalives"), "1");
    CHECK_STR(kw_value(&d, "keepalives_idle"), "9");
    CHECK_STR(kw_value(&d, "keepalives_interval"), "2");
    CHECK_STR(kw_value(&d, "keepalives_count"), "3");
    CHECK_STR(kw_value(&d, "tcp_user_timeout"), "0");
    CHECK_STR(kw_value(&d, "application_name"), "walrouter");
    CHECK_STR(kw_value(&d, "connect_timeout"), "5");
    const char *kw[64], *val[64];
    int k = wr_dsn_params(&d, 1, kw, val, 64);
    CHECK(k > 0 && kw[k] == NULL);
    CHECK(k > 1 && strcmp(kw[k - 2], "host") == 0 && strcmp(val[k - 2], "h2") == 0);
    CHECK(k > 1 && strcmp(kw[k - 1], "port") == 0 && strcmp(val[k - 1], "2") == 0);
    CHECK_INT(wr_dsn_params(&d, 2, kw, val, 64), -1);
    wr_dsn_free(&d);
}

static void test_dsn_with_more_than_32_hosts_is_refused(void) {
    char s[1024] = "postgresql://u:pw@";
    for (int i = 0; i < 33; i++) snprintf(s + strlen(s), sizeof s - strlen(s), "h%d:%d,", i, 1000 + i);
    s[strlen(s) - 1] = '\0';
    strcat(s, "/db");
    wr_dsn d;
    wr_err e;
    CHECK_INT(wr_dsn_parse(&d, s, 5, &e), WR_ERR_ARG);
    CHECK(strstr(e.msg, "more than 32 hosts") != NULL);
    CHECK_INT(d.n, 0);
}

/* ---- connect -------------------------------------------------------------- */

static void test_connect_errors_never_show_the_password(void) {
    char info[2048];
    char port0[16];
    snprintf(port0, sizeof port0, "%s", dsn.port[0] ? dsn.port[0] : "5432");
    conninfo_with(info, sizeof info, "127.0.0.1", port0, "not-the-password-42");
    wr_dsn d;
    parse_or_die(&d, info);
    char err[256];
    PGconn *pg = wr_conn_connect(&d, 0, now_us() + 5 * SEC, err, sizeof err);
    CHECK(pg == NULL);
    CHECK(strstr(err, "password authentication failed") != NULL);
    CHECK(strstr(err, "not-the-password-42") == NULL);
    PQfinish(pg);
    wr_dsn_free(&d);
}

static void test_connect_to_a_silent_host_gives_up_at_the_deadline(void) {
    int port, fd = silent_listener(&port);
    char info[2048], ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    conninfo_with(info, sizeof info, "127.0.0.1", ports, NULL);
    wr_dsn d;
    parse_or_die(&d, info);
    char err[256];
    PGconn *pg = wr_conn_connect(&d, 0, now_us() + 300 * MS, err, sizeof err);
    CHECK(pg == NULL);
    CHECK(strstr(err, "timed out") != NULL);
    CHECK(strstr(err, ports) != NULL); /* names the node */
    close(fd);                          /* only now does the host go away */
    wr_dsn_free(&d);
}

static void test_connect_many_pays_for_silent_hosts_once(void) {
    int port, fd = silent_listener(&port);
    char info[2048], ports[64];
    snprintf(ports, sizeof ports, "%d,%d,%d,%s", port, port, port, dsn.port[0] ? dsn.port[0] : "5432");
    conninfo_with(info, sizeof info, "127.0.0.1,127.0.0.1,127.0.0.1,127.0.0.1", ports, NULL);
    wr_dsn d;
    parse_or_die(&d, info);
    int nodes[4] = {0, 1, 2, 3};
    PGconn *out[4];
    char errs[4][256];
    /* Long enough for a real SCRAM handshake under valgrind (~1 s of CPU). */
    uint64_t deadline = 2 * SEC, start = now_us();
    wr_conn_connect_many(&d, nodes, 4, start + deadline, out, errs);
    uint64_t took = now_us() - start;
    int failed = 0;
    for (int j = 0; j < 3; j++) {
        failed += out[j] == NULL;
        CHECK(strstr(errs[j], "timed out") != NULL);
    }
    CHECK_INT(failed, 3);
    CHECK(out[3] != NULL && PQstatus(out[3]) == CONNECTION_OK && PQisnonblocking(out[3]));
    CHECK(took < 2 * deadline);
    for (int j = 0; j < 4; j++) PQfinish(out[j]);
    close(fd);
    wr_dsn_free(&d);
}

static void test_connect_op_reports_its_wait(void) {
    wr_connect_op op;
    CHECK_INT(wr_connect_op_start(&op, &dsn, 0, now_us() + 5 * SEC), 0);
    int fd, steps = 0;
    short events;
    uint64_t wake;
    for (int running = 1; running; steps++) {
        wr_connect_op_poll(&op, &fd, &events, &wake);
        CHECK(fd >= 0 && (events == POLLIN || events == POLLOUT) && wake > 0);
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, 5000);
        running = wr_connect_op_advance(&op, r > 0 ? p.revents : 0, now_us());
    }
    char err[256];
    PGconn *pg = wr_connect_op_take(&op, err, sizeof err);
    CHECK(pg != NULL && PQstatus(pg) == CONNECTION_OK);
    CHECK_STR(err, "");
    CHECK(steps > 1); /* a real handshake takes several waits */
    PQfinish(pg);
}

/* ---- deadlines and cancels ---------------------------------------------------- */

static void test_deadline_cancels_a_running_statement_and_keeps_the_connection(void) {
    wr_conn *c = open_conn(0, 16);
    wr_pq_step st;
    CHECK_INT(run1(c, "SELECT pg_sleep(30)", 200, 0, &st), WR_RUN_CANCELED);
    CHECK(st.res && PQresultStatus(st.res) == PGRES_FATAL_ERROR);
    CHECK_STR(sqlstate(st.res), "57014");
    wr_pq_steps_clear(&st, 1);
    CHECK_STR(value_of(c, "SELECT 1"), "1");
    CHECK(wr_conn_idle_ok(c));
    wr_conn_free(c);
}

static void test_canceled_pipeline_aborts_what_follows_the_canceled_statement(void) {
    wr_conn *c = open_conn(0, 16);
    char err[256];
    wr_pq_step st[3] = {{.sql = "SELECT 1", .sync_after = 1}, {.sql = "SELECT pg_sleep(30)"},
                        {.sql = "SELECT 2"}};
    wr_run_opts o = {.deadline_us = now_us() + 200 * MS};
    CHECK_INT(wr_conn_run(c, st, 3, &o, err, sizeof err), WR_RUN_CANCELED);
    CHECK(st[0].res && PQresultStatus(st[0].res) == PGRES_TUPLES_OK);
    CHECK_STR(sqlstate(st[1].res), "57014");
    CHECK(st[2].res && PQresultStatus(st[2].res) == PGRES_PIPELINE_ABORTED);
    wr_pq_steps_clear(st, 3);
    CHECK_STR(value_of(c, "SELECT 2"), "2");
    wr_conn_free(c);
}

static void test_frozen_backend_times_out_while_it_is_still_frozen(void) {
    wr_conn *c = open_conn(0, 16);
    long pid = atol(value_of(c, "SELECT pg_backend_pid()"));
    CHECK(pid > 0);
    if (pid <= 0 || kill((pid_t)pid, SIGSTOP) != 0) {
        wr_conn_free(c);
        return;
    }
    for (int i = 0; i < 500 && proc_state(pid) != 'T'; i++) nap_ms(2);
    wr_pq_step st;
    wr_run_status rs = run1(c, "SELECT 1", 300, 300, &st);
    char state = proc_state(pid);
    kill((pid_t)pid, SIGCONT);
    CHECK_INT(rs, WR_RUN_TIMEOUT);
    CHECK(st.res == NULL);
    CHECK_INT(state, 'T'); /* returned while the backend could not have answered */
    wr_conn_free(c);
}

static void test_lost_connection_is_lost_then_not_sent(void) {
    wr_conn *c = open_conn(0, 16), *admin = open_conn(0, 0);
    long pid = atol(value_of(c, "SELECT pg_backend_pid()"));
    char err[256], sql[128];
    wr_pq_step st = {.sql = "SELECT pg_sleep(30)"};
    wr_conn_op op;
    wr_conn_op_start(&op, c, &st, 1, now_us() + 10 * SEC, 0, now_us());
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%ld)", pid);
    CHECK_STR(value_of(admin, sql), "t");
    while (wr_conn_op_advance(&op, 0, now_us())) {
        int fd;
        short ev;
        uint64_t wake;
        wr_conn_op_poll(&op, &fd, &ev, &wake);
        struct pollfd p = {.fd = fd, .events = ev};
        poll(&p, 1, 100);
    }
    CHECK_INT(wr_conn_op_status(&op), WR_RUN_LOST);
    CHECK(st.res == NULL);
    CHECK(wr_conn_op_error(&op)[0] != '\0');
    wr_run_opts o = {.deadline_us = now_us() + SEC};
    CHECK_INT(wr_conn_run(c, &st, 1, &o, err, sizeof err), WR_RUN_NOT_SENT);
    wr_conn_free(c);
    wr_conn_free(admin);
}

static void test_a_deadline_already_past_sends_nothing(void) {
    wr_conn *c = open_conn(0, 16);
    char err[256];
    wr_pq_step st = {.sql = "SELECT 1"};
    wr_run_opts o = {.deadline_us = now_us() - 1};
    CHECK_INT(wr_conn_run(c, &st, 1, &o, err, sizeof err), WR_RUN_NOT_SENT);
    CHECK(st.res == NULL);
    CHECK_STR(value_of(c, "SELECT 1"), "1");
    wr_conn_free(c);
}

static uint64_t interrupt_at;
static int interrupt_after(void *arg) {
    (*(int *)arg)++;
    return now_us() >= interrupt_at;
}

static void test_an_interrupt_cancels_the_wait(void) {
    wr_conn *c = open_conn(0, 16);
    char err[256];
    int asked = 0;
    wr_pq_step st = {.sql = "SELECT pg_sleep(30)"};
    interrupt_at = now_us() + 200 * MS;
    wr_run_opts o = {.deadline_us = now_us() + 60 * SEC, .interrupted = interrupt_after, .interrupt_arg = &asked};
    CHECK_INT(wr_conn_run(c, &st, 1, &o, err, sizeof err), WR_RUN_CANCELED);
    CHECK_STR(sqlstate(st.res), "57014");
    CHECK(asked >= 4); /* asked at least every 50 ms */
    wr_pq_steps_clear(&st, 1);
    CHECK_STR(value_of(c, "SELECT 1"), "1");
    wr_conn_free(c);
}

/* ---- the op API ---------------------------------------------------------------- */

static void test_two_ops_in_one_poll_loop_finish_fast_one_first(void) {
    wr_conn *slow = open_conn(0, 16), *fast = open_conn(1, 16);
    wr_pq_step s_slow = {.sql = "SELECT pg_sleep(0.2), 'slow'"}, s_fast = {.sql = "SELECT 'fast'"};
    wr_conn_op ops[2];
    uint64_t now = now_us();
    wr_conn_op_start(&ops[0], slow, &s_slow, 1, now + 10 * SEC, 0, now);
    wr_conn_op_start(&ops[1], fast, &s_fast, 1, now + 10 * SEC, 0, now);
    int running[2] = {1, 1}, order[2], finished = 0;
    while (finished < 2) {
        struct pollfd p[2];
        uint64_t wake = UINT64_MAX;
        for (int j = 0; j < 2; j++) {
            uint64_t w;
            wr_conn_op_poll(&ops[j], &p[j].fd, &p[j].events, &w);
            if (!running[j]) p[j].fd = -1;
            else if (w < wake) wake = w;
        }
        now = now_us();
        int r = poll(p, 2, wake > now ? (int)((wake - now + 999) / 1000) : 0);
        now = now_us();
        for (int j = 0; j < 2; j++)
            if (running[j] && !wr_conn_op_advance(&ops[j], r > 0 ? p[j].revents : 0, now)) {
                running[j] = 0;
                order[finished++] = j;
            }
    }
    CHECK_INT(order[0], 1);
    CHECK_INT(order[1], 0);
    CHECK_INT(wr_conn_op_status(&ops[0]), WR_RUN_OK);
    CHECK_INT(wr_conn_op_status(&ops[1]), WR_RUN_OK);
    CHECK_STR(s_slow.res ? PQgetvalue(s_slow.res, 0, 1) : NULL, "slow");
    CHECK_STR(s_fast.res ? PQgetvalue(s_fast.res, 0, 0) : NULL, "fast");
    wr_pq_steps_clear(&s_slow, 1);
    wr_pq_steps_clear(&s_fast, 1);
    wr_conn_free(slow);
    wr_conn_free(fast);
}

/* Drives op until it finishes, with poll() on what it asks for. */
static void drive(wr_conn_op *op) {
    for (;;) {
        int fd;
        short ev;
        uint64_t wake, now = now_us();
        wr_conn_op_poll(op, &fd, &ev, &wake);
        struct pollfd p = {.fd = fd, .events = ev};
        int r = poll(&p, 1, wake > now ? (int)((wake - now + 999) / 1000) : 0);
        if (!wr_conn_op_advance(op, r > 0 ? p.revents : 0, now_us())) return;
    }
}

static void test_op_cancel_stops_a_running_statement(void) {
    wr_conn *c = open_conn(0, 16), *admin = open_conn(0, 0);
    long pid = atol(value_of(c, "SELECT pg_backend_pid()"));
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT wait_event FROM pg_stat_activity WHERE pid = %ld AND state = 'active'", pid);
    wr_pq_step st = {.sql = "SELECT pg_sleep(30)"};
    wr_conn_op op;
    wr_conn_op_start(&op, c, &st, 1, now_us() + 60 * SEC, 0, now_us());
    int running = 1;
    for (int i = 0; i < 1000 && running && strcmp(value_of(admin, sql), "PgSleep") != 0; i++)
        running = wr_conn_op_advance(&op, 0, now_us());
    CHECK(running); /* still sleeping: only the cancel can end it */
    wr_conn_op_cancel(&op, now_us());
    drive(&op);
    CHECK_INT(wr_conn_op_status(&op), WR_RUN_CANCELED);
    CHECK_STR(sqlstate(st.res), "57014");
    wr_pq_steps_clear(&st, 1);
    CHECK_STR(value_of(c, "SELECT 3"), "3");
    wr_conn_free(c);
    wr_conn_free(admin);
}

/* ---- statement cache and pipelines ------------------------------------------- */

static void test_stale_plan_is_detected_then_reprepared(void) {
    wr_conn *c = open_conn(0, 16);
    value_of(c, "DROP TABLE IF EXISTS wr_conn_stale");
    value_of(c, "CREATE TABLE wr_conn_stale (a int)");
    wr_pq_step st;
    CHECK_INT(run1(c, "SELECT * FROM wr_conn_stale", 5000, 0, &st), WR_RUN_OK);
    CHECK(st.res && PQnfields(st.res) == 1 && !st.stale);
    wr_pq_steps_clear(&st, 1);
    value_of(c, "ALTER TABLE wr_conn_stale ADD COLUMN b int");
    CHECK_INT(run1(c, "SELECT * FROM wr_conn_stale", 5000, 0, &st), WR_RUN_OK);
    CHECK(st.stale);
    CHECK_STR(sqlstate(st.res), "0A000");
    CHECK_INT(c->cache.ndealloc, 1); /* the stale statement is queued for DEALLOCATE */
    wr_pq_steps_clear(&st, 1);
    CHECK_INT(run1(c, "SELECT * FROM wr_conn_stale", 5000, 0, &st), WR_RUN_OK);
    CHECK(st.res && PQresultStatus(st.res) == PGRES_TUPLES_OK && PQnfields(st.res) == 2 && !st.stale);
    CHECK_INT(c->cache.ndealloc, 0);
    wr_pq_steps_clear(&st, 1);
    /* Server-side: the first two statements (DROP, CREATE), SELECT (re-prepared), ALTER;
     * the stale one is gone. */
    CHECK_STR(value_of(c, "SELECT count(*) FROM pg_prepared_statements "
                          "WHERE statement = 'SELECT * FROM wr_conn_stale'"), "1");
    value_of(c, "DROP TABLE wr_conn_stale");
    wr_conn_free(c);
}

static void test_statements_lost_by_the_server_are_detected(void) {
    wr_conn *c = open_conn(0, 16);
    CHECK_STR(value_of(c, "SELECT 7"), "7");
    /* DEALLOCATE ALL behind the cache's back: no command tag tells. */
    value_of(c, "DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$");
    wr_pq_step st;
    CHECK_INT(run1(c, "SELECT 7", 5000, 0, &st), WR_RUN_OK);
    CHECK(st.stale);
    CHECK_STR(sqlstate(st.res), "26000");
    CHECK_INT(c->cache.count, 0);
    CHECK(c->dirty); /* what the server still holds is not known: never lent again */
    wr_pq_steps_clear(&st, 1);
    CHECK_STR(value_of(c, "SELECT 7"), "7");
    /* One a command tag tells: the cache forgets at once. */
    value_of(c, "DEALLOCATE ALL");
    CHECK_INT(c->cache.count, 0);
    CHECK_INT(run1(c, "SELECT 7", 5000, 0, &st), WR_RUN_OK);
    CHECK(!st.stale);
    CHECK_STR(PQgetvalue(st.res, 0, 0), "7");
    wr_pq_steps_clear(&st, 1);
    wr_conn_free(c);
}

static void test_a_failing_statement_aborts_the_rest_of_its_pipeline(void) {
    wr_conn *c = open_conn(0, 16);
    char err[256];
    wr_pq_step st[3] = {{.sql = "SELECT 1/0"}, {.sql = "SELECT 1"}, {.sql = "SELECT 2"}};
    wr_run_opts o = {.deadline_us = now_us() + 5 * SEC};
    CHECK_INT(wr_conn_run(c, st, 3, &o, err, sizeof err), WR_RUN_OK);
    CHECK_STR(sqlstate(st[0].res), "22012");
    CHECK(st[1].res && PQresultStatus(st[1].res) == PGRES_PIPELINE_ABORTED);
    CHECK(st[2].res && PQresultStatus(st[2].res) == PGRES_PIPELINE_ABORTED);
    wr_pq_steps_clear(st, 3);
    /* A Sync after the failing statement confines the failure to it. */
    st[0].sync_after = 1;
    CHECK_INT(wr_conn_run(c, st, 3, &o, err, sizeof err), WR_RUN_OK);
    CHECK_STR(sqlstate(st[0].res), "22012");
    CHECK(st[1].res && PQresultStatus(st[1].res) == PGRES_TUPLES_OK);
    CHECK(st[2].res && PQresultStatus(st[2].res) == PGRES_TUPLES_OK);
    wr_pq_steps_clear(st, 3);
    /* Bad SQL fails at its preparation, and is not cached. */
    st[0] = (wr_pq_step){.sql = "SELEC 1"};
    CHECK_INT(wr_conn_run(c, st, 1, &o, err, sizeof err), WR_RUN_OK);
    CHECK_STR(sqlstate(st[0].res), "42601");
    CHECK(!st[0].stale);
    wr_pq_steps_clear(st, 1);
    wr_conn_free(c);
}

static void test_evicted_statements_wait_out_a_failed_transaction(void) {
    wr_conn *c = open_conn(0, 2); /* room for two statements */
    CHECK_STR(value_of(c, "SELECT 'a'"), "a");
    CHECK_STR(value_of(c, "SELECT 'b'"), "b");
    value_of(c, "BEGIN");      /* evicts 'a' */
    /* Inside a transaction block DEALLOCATEs wait (one failing would abort
     * the caller's transaction); this evicts 'b' and fails the transaction. */
    value_of(c, "SELECT 1/0");
    CHECK_INT(PQtransactionStatus(c->pg), PQTRANS_INERROR);
    CHECK_INT(c->cache.ndealloc, 2);
    wr_pq_step st;
    /* A DEALLOCATE would fail here and abort the ROLLBACK: it waits. */
    CHECK_INT(run1(c, "ROLLBACK", 5000, 0, &st), WR_RUN_OK);
    CHECK(st.res && PQresultStatus(st.res) == PGRES_COMMAND_OK);
    CHECK_INT(PQtransactionStatus(c->pg), PQTRANS_IDLE);
    CHECK_INT(c->cache.ndealloc, 3); /* 'a', 'b', and BEGIN evicted by ROLLBACK */
    wr_pq_steps_clear(&st, 1);
    CHECK_STR(value_of(c, "SELECT 'c'"), "c");
    CHECK_INT(c->cache.ndealloc, 1); /* all three sent; 'c' evicted SELECT 1/0 */
    CHECK_STR(value_of(c, "SELECT string_agg(statement, '|') FROM pg_prepared_statements "
                          "WHERE statement LIKE 'SELECT ''_''' OR statement = 'BEGIN'"), "SELECT 'c'");
    wr_conn_free(c);
}

int main(void) {
    const char *env = getenv("WR_TEST_DSN");
    if (!env || !*env) {
        fprintf(stderr, "test_conn: WR_TEST_DSN is not set (run tests/run.sh, or tests/cluster.sh start)\n");
        return 2;
    }
    parse_or_die(&dsn, env);
    RUN(test_dsn_turns_keepalives_on_unless_the_dsn_says_otherwise);
    RUN(test_dsn_with_more_than_32_hosts_is_refused);
    RUN(test_connect_errors_never_show_the_password);
    RUN(test_connect_to_a_silent_host_gives_up_at_the_deadline);
    RUN(test_connect_many_pays_for_silent_hosts_once);
    RUN(test_connect_op_reports_its_wait);
    RUN(test_deadline_cancels_a_running_statement_and_keeps_the_connection);
    RUN(test_canceled_pipeline_aborts_what_follows_the_canceled_statement);
    RUN(test_frozen_backend_times_out_while_it_is_still_frozen);
    RUN(test_lost_connection_is_lost_then_not_sent);
    RUN(test_a_deadline_already_past_sends_nothing);
    RUN(test_an_interrupt_cancels_the_wait);
    RUN(test_two_ops_in_one_poll_loop_finish_fast_one_first);
    RUN(test_op_cancel_stops_a_running_statement);
    RUN(test_stale_plan_is_detected_then_reprepared);
    RUN(test_statements_lost_by_the_server_are_detected);
    RUN(test_a_failing_statement_aborts_the_rest_of_its_pipeline);
    RUN(test_evicted_statements_wait_out_a_failed_transaction);
    /* Cancel threads end on their own; wait for them so that none outlives the test. */
    for (int i = 0; i < 1000 && wr_cancel_in_flight() > 0; i++) nap_ms(10);
    CHECK_INT(wr_cancel_in_flight(), 0);
    wr_dsn_free(&dsn);
    return check_exit();
}
