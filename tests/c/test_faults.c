/* test_faults.c — G8 on a real cluster: a deadline on every round trip, and a
 * hung node never stalls the cluster. Nodes are frozen (SIGSTOP of the
 * postmaster and its children) or replaced by a listener that accepts and
 * never answers; every call must come back while the fault still holds (the
 * frozen postmaster is still in state 'T' right after the call returned).
 * The tests assert order and completion, never timing thresholds, and poll
 * conditions instead of sleeping. Every frozen node is thawed on every path
 * (also at exit). Runs on a cluster of its own. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "testlib.h"

static char dsn[512];

/* ---- helpers ----------------------------------------------------------------- */

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Under valgrind every thread crawls and is scheduled one at a time: round
 * trips of healthy nodes miss their deadlines too, so "nobody else went
 * down" is only asserted at native speed, and a few deadlines that must
 * leave room for real connects are longer. */
static int under_valgrind(void) {
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload") != NULL;
}

/* Under AddressSanitizer a new connection's login, next to reader threads
 * that keep both CPUs busy, can outlast a read's 200 ms budget, and the node
 * is then rightly marked down (a login that took the whole budget counts):
 * there, "nobody else went down" allows logins that timed out, nothing else. */
#if defined(__SANITIZE_ADDRESS__)
#define SLOW_LOGINS 1
#else
#define SLOW_LOGINS 0
#endif

/* Polls cond every 10 ms until it holds or ms passed (a bound on completion,
 * not a timing assertion); evaluates to cond's last value. */
#define POLL_UNTIL(cond, ms)                                                   \
    __extension__({                                                                      \
        uint64_t until_ = now_ms() + (ms);                                     \
        int ok_;                                                               \
        while (!(ok_ = !!(cond)) && now_ms() < until_) t_nap(10);              \
        ok_;                                                                   \
    })

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

/* Node n's postmaster pid: the first line of `cluster.sh pids n`. */
static long postmaster_pid(int n) {
    const char *script = getenv("WR_CLUSTER_SH");
    char cmd[1024], line[64];
    snprintf(cmd, sizeof cmd, "%s pids %d", script ? script : "tests/cluster.sh", n);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    long pid = -1;
    if (fgets(line, sizeof line, p)) pid = atol(line);
    while (fgets(line, sizeof line, p)) {} /* the children */
    pclose(p);
    return pid;
}

/* Frozen nodes, thawed on every path: by the tests, by main, and at exit. */
static int frozen[4];
static long frozen_pm[4];

static int freeze(int n) {
    frozen_pm[n] = postmaster_pid(n);
    frozen[n] = 1; /* before: an interrupted freeze is thawed too */
    int rc = t_cluster("freeze %d", n);
    CHECK_INT(rc, 0);
    CHECK(frozen_pm[n] > 0 && proc_state(frozen_pm[n]) == 'T');
    return rc == 0;
}

static void thaw(int n) {
    if (!frozen[n]) return;
    CHECK_INT(t_cluster("thaw %d", n), 0);
    frozen[n] = 0;
}

/* Still frozen: the postmaster recorded at freeze time is stopped. */
static int still_frozen(int n) { return frozen[n] && frozen_pm[n] > 0 && proc_state(frozen_pm[n]) == 'T'; }

static void thaw_all(void) {
    for (int n = 0; n < 4; n++)
        if (frozen[n]) {
            t_cluster("thaw %d", n);
            frozen[n] = 0;
        }
}

/* Opens a cluster; NULL (a failed check) instead of exiting, so that the
 * caller still thaws. */
static wr_cluster *open_cluster(const char *d, const wr_options *opt) {
    wr_cluster *c = NULL;
    wr_status st = wr_cluster_open(&c, d, opt);
    CHECK_INT(st, WR_OK);
    if (st != WR_OK) {
        fprintf(stderr, "open: %s\n", wr_cluster_errmsg(c));
        wr_cluster_close(c);
        return NULL;
    }
    return c;
}

static wr_node_state node_state(wr_cluster *c, int i) {
    wr_node_status st;
    return wr_cluster_node_status(c, (size_t)i, &st) == WR_OK ? st.state : WR_STATE_UNKNOWN;
}

/* Reads served by node i so far (every reason but writes and transactions). */
static uint64_t reads_served(wr_cluster *c, int i) {
    wr_node_status st;
    if (wr_cluster_node_status(c, (size_t)i, &st) != WR_OK) return 0;
    uint64_t sum = 0;
    for (int r = 0; r < WR_REASON_COUNT; r++)
        if (r != WR_REASON_WRITE && r != WR_REASON_TRANSACTION) sum += st.served[r];
    return sum;
}

/* One read by a new session (each spreads its reads differently); the node
 * that served it, -1 on error. */
static int read_once(wr_cluster *c) {
    wr_session *s = wr_session_new(c);
    wr_result *r = NULL;
    int node = -1;
    if (wr_query(s, "SELECT 1", 0, NULL, 0, &r) == WR_OK) node = wr_result_node(r);
    wr_result_free(r);
    wr_session_free(s);
    return node;
}

/* Reads until node i has served one (new sessions), within ms. */
static int serves_reads(wr_cluster *c, int i, int ms) {
    uint64_t before = reads_served(c, i);
    return POLL_UNTIL((read_once(c), reads_served(c, i) > before), ms);
}

/* The DSN of the test cluster with more hosts ("127.0.0.1:p,...") after its own. */
static void dsn_with_hosts(char *out, size_t cap, const char *extra) {
    const char *at = strchr(dsn, '@');
    const char *slash = strchr(at ? at : dsn + strlen("postgresql://"), '/');
    if (!slash) slash = dsn + strlen(dsn);
    snprintf(out, cap, "%.*s,%s%s", (int)(slash - dsn), dsn, extra, slash);
}

/* A TCP listener on 127.0.0.1 that never accepts: the kernel completes the
 * handshake, then nothing ever answers. */
static int silent_socket(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("test_faults: silent listener");
        if (fd >= 0) close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* Counts the nodes other than `hung` going down (a hung node must not take
 * the others with it). */
typedef struct downs {
    wr_cluster *c;
    int hung;
    atomic_int others;
    atomic_int others_not_login; /* of those, not a connect that timed out */
} downs;

static void count_downs(void *arg, const wr_event *ev) {
    downs *d = arg;
    if (ev->to == WR_STATE_DOWN && ev->node != d->hung) {
        atomic_fetch_add(&d->others, 1);
        wr_node_status st;
        wr_cluster_node_status(d->c, (size_t)ev->node, &st);
        if (!strstr(st.last_error, "connect timed out")) atomic_fetch_add(&d->others_not_login, 1);
        fprintf(stderr, "node %d went down (from state %d): %s\n", ev->node, (int)ev->from, st.last_error);
    }
}

/* Nobody but the hung node went down (see SLOW_LOGINS). */
static void check_nobody_else_went_down(downs *d) {
    if (under_valgrind()) return;
    CHECK_INT(atomic_load(SLOW_LOGINS ? &d->others_not_login : &d->others), 0);
}

static uint64_t node_errors(wr_cluster *c, int i) {
    wr_node_status st;
    return wr_cluster_node_status(c, (size_t)i, &st) == WR_OK ? st.errors : 0;
}

/* ---- 1. a hung replica ------------------------------------------------------ */

#define READERS 4
#define READS 50

typedef struct reader {
    wr_cluster *c;
    atomic_int *stop; /* set once the reads went on for a while */
    int reads;
    int ok;
    int by_node[3];
    int other;
    char err[256];
} reader;

static void *read_loop(void *arg) {
    reader *r = arg;
    wr_session *s = wr_session_new(r->c);
    for (int i = 0; i < READS || (!atomic_load(r->stop) && i < 100000); i++) {
        r->reads++;
        wr_result *res = NULL;
        wr_status st = wr_query(s, "SELECT 1", 0, NULL, 0, &res);
        if (st == WR_OK) {
            r->ok++;
            int n = wr_result_node(res);
            if (n >= 0 && n < 3) r->by_node[n]++;
            else r->other++;
        } else if (!r->err[0]) {
            snprintf(r->err, sizeof r->err, "%s: %s", wr_status_name(st), wr_session_errmsg(s));
        }
        wr_result_free(res);
    }
    wr_session_free(s);
    return NULL;
}

/* Starts READERS threads of read_loop on c, with fresh counters (with *stop
 * already set, each does READS reads); join_readers waits for them. */
static void run_readers(wr_cluster *c, reader *r, pthread_t *th, atomic_int *stop) {
    memset(r, 0, sizeof *r * READERS);
    for (int i = 0; i < READERS; i++) {
        r[i].c = c;
        r[i].stop = stop;
        pthread_create(&th[i], NULL, read_loop, &r[i]);
    }
}

static void join_readers(pthread_t *th) {
    for (int i = 0; i < READERS; i++) pthread_join(th[i], NULL);
}

static void a_hung_replica_costs_reads_their_budget_and_stalls_nobody(void) {
    wr_options opt = {0};
    opt.read_budget_ms = 200;
    wr_cluster *c = open_cluster(dsn, &opt);
    if (!c) return;
    /* Warm up: both replicas stream and serve reads (idle connections to both). */
    CHECK(POLL_UNTIL(node_state(c, 1) == WR_STATE_STREAMING && node_state(c, 2) == WR_STATE_STREAMING, 20000));
    CHECK(serves_reads(c, 1, 20000));
    CHECK(serves_reads(c, 2, 20000));

    /* The readers below, once before the fault: every node has a pooled
     * connection per reader, so what follows needs no new login (a login
     * slower than a read's budget, e.g. under a sanitizer, would mark a
     * healthy node down, which is not what this test is about). */
    reader r[READERS];
    pthread_t th[READERS];
    atomic_int stop;
    atomic_init(&stop, 1);
    run_readers(c, r, th, &stop);
    join_readers(th);
    CHECK(POLL_UNTIL(node_state(c, 1) == WR_STATE_STREAMING && node_state(c, 2) == WR_STATE_STREAMING, 20000));

    downs d = {.c = c, .hung = 1};
    atomic_init(&d.others, 0);
    atomic_init(&d.others_not_login, 0);
    wr_cluster_set_event_handler(c, count_downs, &d);
    uint64_t errors_before = node_errors(c, 1);
    if (freeze(1)) {
        /* Reads go on until the background probes failed on node 1 a few
         * times too (each waits on a fresh connect to it, next to the
         * probes of the other nodes). */
        atomic_store(&stop, 0);
        run_readers(c, r, th, &stop);
        CHECK(POLL_UNTIL(node_errors(c, 1) >= errors_before + 4, 30000));
        atomic_store(&stop, 1);
        join_readers(th);
        CHECK(still_frozen(1)); /* every read came back while node 1 was frozen */
        int total = 0;
        for (int i = 0; i < READERS; i++) {
            if (r[i].err[0]) fprintf(stderr, "reader %d: %s\n", i, r[i].err);
            CHECK(r[i].reads >= READS);
            CHECK_INT(r[i].ok, r[i].reads);
            CHECK_INT(r[i].by_node[1], 0);
            CHECK_INT(r[i].other, 0);
            CHECK_INT(r[i].by_node[0] + r[i].by_node[2], r[i].reads);
            total += r[i].reads;
        }
        fprintf(stderr, "%d reads while node 1 was frozen, %llu failures of node 1\n", total,
                (unsigned long long)(node_errors(c, 1) - errors_before));
        CHECK(POLL_UNTIL(node_state(c, 1) == WR_STATE_DOWN, 10000));
        CHECK(still_frozen(1));
        check_nobody_else_went_down(&d);
    }
    wr_cluster_set_event_handler(c, NULL, NULL);
    thaw(1);
    /* Back: node 1 serves reads again, without reopening. */
    CHECK(serves_reads(c, 1, 30000));
    wr_cluster_close(c);
}

/* ---- 2. a hung primary during a write ----------------------------------------- */

static void a_write_to_a_hung_primary_ends_in_unknown_outcome_and_runs_at_most_once(void) {
    wr_options opt = {0};
    opt.statement_timeout_ms = under_valgrind() ? 5000 : 1000; /* room for connects (SCRAM) */
    wr_cluster *c = open_cluster(dsn, &opt);
    if (!c) return;
    wr_session *s = wr_session_new(c);
    CHECK_INT(wr_exec(s, "CREATE TABLE w (id int PRIMARY KEY)", 0, NULL, NULL), WR_OK);
    /* Idle connections to the primary for the write and for the refresher's
     * probe, so that the write is sent (a write that finds no connection and
     * cannot make one provably did not run: WR_ERR_NO_PRIMARY, not this test). */
    wr_session *tx[3];
    for (int i = 0; i < 3; i++) {
        tx[i] = wr_session_new(c);
        CHECK_INT(wr_begin(tx[i], 0), WR_OK);
    }
    for (int i = 0; i < 3; i++) {
        CHECK_INT(wr_commit(tx[i]), WR_OK);
        wr_session_free(tx[i]);
    }
    downs dn = {.c = c, .hung = 0};
    atomic_init(&dn.others, 0);
    atomic_init(&dn.others_not_login, 0);
    wr_cluster_set_event_handler(c, count_downs, &dn);

    if (freeze(0)) {
        wr_status st = wr_exec(s, "INSERT INTO w(id) VALUES (1)", 0, NULL, NULL);
        int came_back_frozen = still_frozen(0);
        fprintf(stderr, "write to the frozen primary: %s: %s\n", wr_status_name(st), wr_session_errmsg(s));
        CHECK(st == WR_ERR_UNKNOWN_OUTCOME || st == WR_ERR_TIMEOUT);
        CHECK(came_back_frozen);
    }
    thaw(0);
    wr_cluster_set_event_handler(c, NULL, NULL);
    check_nobody_else_went_down(&dn); /* the replicas stayed up */
    /* The old backend runs what it had received (or is canceled), then goes
     * away: wait for it, then the truth is settled. */
    CHECK(POLL_UNTIL(atoi(t_sql(0, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO w%%' "
                                   "AND pid <> pg_backend_pid()")) == 0,
                     20000));
    int rows = atoi(t_sql(0, "SELECT count(*) FROM w WHERE id = 1"));
    CHECK(rows <= 1);
    /* The session's next read goes to the primary and sees the truth. */
    wr_result *r = NULL;
    wr_status st = wr_query(s, "SELECT count(*) FROM w WHERE id = 1", 0, NULL, 0, &r);
    CHECK_INT(st, WR_OK);
    if (st == WR_OK) {
        CHECK_INT(wr_result_node(r), 0);
        CHECK_INT(wr_result_reason(r), WR_REASON_PRIMARY_UNKNOWN);
        CHECK_INT(atoi(wr_result_value(r, 0, 0)), rows);
    } else {
        fprintf(stderr, "read after the unknown outcome: %s\n", wr_session_errmsg(s));
    }
    wr_result_free(r);
    wr_session_free(s);
    wr_cluster_close(c);
}

/* ---- 3. a silent listener ------------------------------------------------------ */

static long silent_listener_pid(void) {
    const char *dir = getenv("WR_CLUSTER_DIR");
    char path[512], line[64];
    snprintf(path, sizeof path, "%s/silent.pid", dir ? dir : "/tmp/walrouter-cluster");
    FILE *f = fopen(path, "r");
    long pid = -1;
    if (f && fgets(line, sizeof line, f)) pid = atol(line);
    if (f) fclose(f);
    return pid;
}

static int alive(long pid) {
    char st = pid > 0 ? proc_state(pid) : '?';
    return st != '?' && st != 'Z' && st != 'X';
}

static void a_silent_host_costs_open_one_connect_timeout_and_nothing_after(void) {
    char port[32], d[1024], extra[128];
    CHECK_INT(t_cluster_out(port, sizeof port, "silent-start"), 0);
    CHECK(atoi(port) > 0);
    long listener = silent_listener_pid();
    CHECK(alive(listener));
    snprintf(extra, sizeof extra, "127.0.0.1:%d", atoi(port));
    dsn_with_hosts(d, sizeof d, extra);

    wr_options opt = {0};
    opt.connect_timeout_s = under_valgrind() ? 6 : 2; /* room for three real connects (SCRAM) */
    wr_cluster *c = open_cluster(d, &opt);
    CHECK(alive(listener)); /* open came back while the listener was still silent */
    if (c) {
        CHECK_INT(wr_cluster_nnodes(c), 4);
        CHECK_INT(wr_cluster_primary(c), 0);
        downs dn = {.c = c, .hung = 3};
        atomic_init(&dn.others, 0);
        atomic_init(&dn.others_not_login, 0);
        wr_cluster_set_event_handler(c, count_downs, &dn);
        uint64_t errors_before = node_errors(c, 3);
        wr_session *s = wr_session_new(c);
        CHECK_INT(wr_exec(s, "CREATE TABLE silent_rows (id int)", 0, NULL, NULL), WR_OK);
        /* Writes and reads go on until the background probes waited on the
         * silent node a few more times (next to the probes of the others). */
        uint64_t until = now_ms() + 30000;
        int i = 0;
        for (; i < 5 || (node_errors(c, 3) < errors_before + 3 && now_ms() < until); i++) {
            char id[16];
            snprintf(id, sizeof id, "%d", i);
            const char *p[1] = {id};
            wr_status st = wr_exec(s, "INSERT INTO silent_rows(id) VALUES ($1::int)", 1, p, NULL);
            CHECK_INT(st, WR_OK);
            if (st != WR_OK) fprintf(stderr, "write %d: %s\n", i, wr_session_errmsg(s));
            wr_result *r = NULL;
            st = wr_query(s, "SELECT count(*) FROM silent_rows", 0, NULL, 0, &r);
            CHECK_INT(st, WR_OK);
            if (st == WR_OK) {
                CHECK_INT(atoi(wr_result_value(r, 0, 0)), i + 1);
                CHECK(wr_result_node(r) >= 0 && wr_result_node(r) < 3);
            } else {
                fprintf(stderr, "read %d: %s\n", i, wr_session_errmsg(s));
            }
            wr_result_free(r);
        }
        CHECK(node_errors(c, 3) >= errors_before + 3);
        fprintf(stderr, "%d writes and reads while node 3 was silent, %llu failures of node 3\n", i,
                (unsigned long long)(node_errors(c, 3) - errors_before));
        /* Reads from new sessions too (spread over the replicas). */
        for (int j = 0; j < 10; j++) {
            int node = read_once(c);
            CHECK(node >= 0 && node < 3);
        }
        CHECK_INT(node_state(c, 3), WR_STATE_DOWN);
        check_nobody_else_went_down(&dn);
        wr_cluster_set_event_handler(c, NULL, NULL);
        wr_node_status st;
        CHECK_INT(wr_cluster_node_status(c, 3, &st), WR_OK);
        CHECK(strstr(st.last_error, port) != NULL); /* names the silent node */
        wr_session_free(s);
        wr_cluster_close(c);
    }
    CHECK(alive(listener));
    CHECK_INT(t_cluster("silent-stop"), 0);

    /* Three silent hosts and the real ones: they are waited for at once, so
     * open costs one connect timeout, not three in a row. */
    int fds[3], ports[3], n = 0;
    for (; n < 3; n++)
        if ((fds[n] = silent_socket(&ports[n])) < 0) break;
    CHECK_INT(n, 3);
    if (n == 3) {
        snprintf(extra, sizeof extra, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", ports[0], ports[1], ports[2]);
        dsn_with_hosts(d, sizeof d, extra);
        uint64_t start = now_ms();
        c = open_cluster(d, &opt);
        uint64_t took = now_ms() - start;
        fprintf(stderr, "open with three silent hosts took %llu ms\n", (unsigned long long)took);
        CHECK(took < 2u * 1000u * opt.connect_timeout_s);
        if (c) {
            CHECK_INT(wr_cluster_nnodes(c), 6);
            for (int i = 3; i < 6; i++) CHECK_INT(node_state(c, i), WR_STATE_DOWN);
            CHECK_INT(wr_cluster_primary(c), 0);
            wr_cluster_close(c);
        }
    }
    for (int i = 0; i < n; i++) close(fds[i]);
}

/* ---- 4. cancellation -------------------------------------------------------------- */

static int sleepers(void) {
    return atoi(t_sql(0, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%pg_sleep(30)%%' "
                         "AND state = 'active' AND pid <> pg_backend_pid()"));
}

static void a_statement_past_its_timeout_is_canceled_on_the_server(void) {
    wr_options opt = {0};
    opt.statement_timeout_ms = 500;
    wr_cluster *c = open_cluster(dsn, &opt);
    if (!c) return;
    wr_session *s = wr_session_new(c);
    /* A read on the primary, then a write: both canceled, both confirmed. */
    for (int k = 0; k < 2; k++) {
        wr_result *r = NULL;
        wr_status st = k == 0 ? wr_query(s, "SELECT pg_sleep(30)", 0, NULL, WR_PRIMARY, &r)
                              : wr_exec(s, "SELECT pg_sleep(30)", 0, NULL, &r);
        CHECK_INT(st, WR_ERR_TIMEOUT);
        CHECK(r == NULL);
        CHECK_INT(wr_session_errnode(s), 0);
        CHECK(strstr(wr_session_errmsg(s), "cancel") != NULL);
        if (st != WR_ERR_TIMEOUT) fprintf(stderr, "pg_sleep: %s\n", wr_session_errmsg(s));
        CHECK(POLL_UNTIL(sleepers() == 0, 5000));
        /* The same session goes on. */
        st = wr_query(s, "SELECT 42", 0, NULL, WR_PRIMARY, &r);
        CHECK_INT(st, WR_OK);
        if (st == WR_OK) CHECK_STR(wr_result_value(r, 0, 0), "42");
        wr_result_free(r);
        r = NULL;
        st = wr_exec(s, "SELECT 43", 0, NULL, &r);
        CHECK_INT(st, WR_OK);
        wr_result_free(r);
    }
    wr_session_free(s);
    wr_cluster_close(c);
}

/* ---- 5. the pool's bound ------------------------------------------------------------ */

typedef struct committer {
    wr_cluster *c;
    wr_session *s;
    atomic_int writer_waiting; /* the writer's call is waiting (its interrupt fn was asked) */
    int saw_waiter;            /* ... when the commit went out */
    wr_status st;
} committer;

/* The waiting write's interrupt function: asked while the call waits, so the
 * first call proves the write started waiting. Never interrupts. */
static int note_waiting(void *arg) {
    committer *k = arg;
    atomic_store(&k->writer_waiting, 1);
    return 0;
}

static void *commit_when_waited_for(void *arg) {
    committer *k = arg;
    wr_node_status st;
    k->saw_waiter = POLL_UNTIL(atomic_load(&k->writer_waiting) && wr_cluster_node_status(k->c, 0, &st) == WR_OK &&
                                   st.conns_in_use == 2,
                               20000);
    k->st = wr_commit(k->s);
    return NULL;
}

static void a_write_waits_for_a_pooled_connection_within_its_deadline(void) {
    wr_options opt = {0};
    opt.pool_max = 2;
    opt.statement_timeout_ms = 500;
    wr_cluster *c = open_cluster(dsn, &opt);
    if (!c) return;
    wr_session *a = wr_session_new(c), *b = wr_session_new(c), *w = wr_session_new(c);
    CHECK_INT(wr_exec(w, "CREATE TABLE pool_rows (id int)", 0, NULL, NULL), WR_OK);
    CHECK_INT(wr_begin(a, 0), WR_OK);
    CHECK_INT(wr_exec(a, "INSERT INTO pool_rows VALUES (1)", 0, NULL, NULL), WR_OK);
    CHECK_INT(wr_begin(b, 0), WR_OK);
    CHECK_INT(wr_exec(b, "INSERT INTO pool_rows VALUES (2)", 0, NULL, NULL), WR_OK);
    wr_node_status st;
    CHECK_INT(wr_cluster_node_status(c, 0, &st), WR_OK);
    CHECK_INT(st.conns_in_use, 2);

    /* Nobody gives a connection back: the write fails clearly, nothing sent. */
    wr_status ws = wr_exec(w, "INSERT INTO pool_rows VALUES (3)", 0, NULL, NULL);
    CHECK_INT(ws, WR_ERR_TIMEOUT);
    CHECK(strstr(wr_session_errmsg(w), "pool_max") != NULL);
    if (ws != WR_ERR_TIMEOUT) fprintf(stderr, "pool: %s\n", wr_session_errmsg(w));
    CHECK_STR(t_sql(0, "SELECT count(*) FROM pool_rows WHERE id = 3"), "0");

    /* One transaction commits while the write waits: the write is served. */
    committer k = {.c = c, .s = a, .st = WR_ERR_INTERNAL};
    atomic_init(&k.writer_waiting, 0);
    wr_session_set_interrupt(w, note_waiting, &k);
    pthread_t th;
    pthread_create(&th, NULL, commit_when_waited_for, &k);
    ws = wr_exec(w, "INSERT INTO pool_rows VALUES (4)", 0, NULL, NULL);
    pthread_join(th, NULL);
    wr_session_set_interrupt(w, NULL, NULL);
    CHECK(k.saw_waiter);
    CHECK_INT(k.st, WR_OK);
    CHECK_INT(ws, WR_OK);
    if (ws != WR_OK) fprintf(stderr, "pool, after a commit: %s\n", wr_session_errmsg(w));
    CHECK_INT(wr_rollback(b), WR_OK);
    CHECK_STR(t_sql(0, "SELECT string_agg(id::text, ',' ORDER BY id) FROM pool_rows"), "1,4");
    wr_session_free(a);
    wr_session_free(b);
    wr_session_free(w);
    wr_cluster_close(c);
}

/* ---- 6. close is bounded ----------------------------------------------------------------- */

static void close_returns_while_a_replica_is_frozen(void) {
    wr_cluster *c = open_cluster(dsn, NULL); /* with the background refresher */
    if (!c) return;
    CHECK(POLL_UNTIL(node_state(c, 1) == WR_STATE_STREAMING, 20000));
    CHECK(serves_reads(c, 1, 20000)); /* idle connections to node 1 in the pool */
    if (freeze(1)) {
        /* The refresher finds out on its own (and keeps probing it). */
        CHECK(POLL_UNTIL(node_state(c, 1) == WR_STATE_DOWN, 20000));
        wr_cluster_close(c);
        c = NULL;
        CHECK(still_frozen(1));
    }
    thaw(1);
    wr_cluster_close(c);
}

/* ---- 7. transaction control goes through wr_begin ---------------------------------------- */

static void transaction_control_in_exec_or_query_is_refused(void) {
    static const char *const sql[] = {"BEGIN", "begin", "  COMMIT", "ROLLBACK", "START TRANSACTION",
                                      "END", "-- comment\nbegin isolation level serializable", "ABORT",
                                      "commit;", "Rollback"};
    wr_options opt = {0};
    opt.no_refresher = 1;
    wr_cluster *c = open_cluster(dsn, &opt);
    if (!c) return;
    wr_session *s = wr_session_new(c);
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        for (int q = 0; q < 2; q++) {
            wr_result *r = NULL;
            wr_status st = q ? wr_query(s, sql[i], 0, NULL, 0, &r) : wr_exec(s, sql[i], 0, NULL, &r);
            if (st != WR_ERR_ARG) fprintf(stderr, "%s(\"%s\") gave %s\n", q ? "query" : "exec", sql[i],
                                          wr_status_name(st));
            CHECK_INT(st, WR_ERR_ARG);
            CHECK(r == NULL);
            CHECK(strstr(wr_session_errmsg(s), "wr_begin") != NULL);
            CHECK(!wr_session_in_transaction(s));
        }
    }
    /* Not transaction control, only a word that starts like it. */
    wr_result *r = NULL;
    CHECK_INT(wr_query(s, "SELECT 1 AS ending", 0, NULL, 0, &r), WR_OK);
    wr_result_free(r);
    wr_session_free(s);
    wr_cluster_close(c);
}

int main(void) {
    /* A cluster of its own, next to the suite's. */
    setenv("WR_CLUSTER_DIR", "/tmp/walrouter-faults-cluster", 1);
    setenv("WR_BASE_PORT", "25490", 1);
    atexit(thaw_all); /* also when a helper exits early */
    if (t_cluster_out(dsn, sizeof dsn, "start") != 0 || strncmp(dsn, "postgresql://", 13) != 0) {
        fprintf(stderr, "could not start the faults cluster\n");
        t_cluster("stop");
        return 1;
    }
    t_use_dsn(dsn);
    RUN(transaction_control_in_exec_or_query_is_refused);
    RUN(a_statement_past_its_timeout_is_canceled_on_the_server);
    RUN(a_write_waits_for_a_pooled_connection_within_its_deadline);
    RUN(a_hung_replica_costs_reads_their_budget_and_stalls_nobody);
    RUN(close_returns_while_a_replica_is_frozen);
    RUN(a_write_to_a_hung_primary_ends_in_unknown_outcome_and_runs_at_most_once);
    RUN(a_silent_host_costs_open_one_connect_timeout_and_nothing_after);
    thaw_all();
    t_cluster("stop");
    return check_exit();
}
