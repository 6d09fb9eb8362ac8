/* test_patroni.c — walrouter through the failovers a Patroni cluster makes
 * (tests/patroni.sh: etcd + three Patroni-managed PostgreSQL 15 nodes): a
 * planned switchover, a crash of the leader's postgres, and an isolated
 * leader (its Patroni and postgres stopped past the TTL, then resumed and
 * demoted by Patroni). Each runs under writers and token-carrying readers
 * through one wr_cluster (load.c) and must show: no acknowledged write lost
 * or applied twice, no write reported failed that ran, no stale read for a
 * token holder, no write acknowledged on a timeline older than one walrouter
 * had already seen, and the old leader serving reads again once Patroni
 * rejoined it. Prints per scenario the time from the action (switchover
 * request, kill, stop) and from the promotion to the first acknowledged
 * write on the new leader, and the reads that failed meanwhile. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "check.h"
#include "load.h"

#define WARMUP_WRITES 20
#define REJOIN_TIMEOUT_S 120

typedef struct scenario {
    const char *name;
    const char *command; /* of tests/patroni.sh; prints "OLD NEW AT" */
} scenario;

/* Runs `tests/patroni.sh ARGS`, keeping the last line of its stdout. */
static int script(char *out, size_t cap, const char *args) {
    const char *sh = getenv("WR_PATRONI_SH");
    char cmd[1024], line[1024];
    snprintf(cmd, sizeof cmd, "%s %s", sh && *sh ? sh : "tests/patroni.sh", args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    if (out && cap) out[0] = '\0';
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        if (out) snprintf(out, cap, "%s", line);
    }
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* The CLOCK_MONOTONIC time (us) of a wall-clock time (seconds since 1970)
 * the script printed; no earlier than `floor`. */
static uint64_t mono_of_wall(double wall_s, uint64_t floor) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double ago = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - wall_s;
    uint64_t now = now_us();
    uint64_t t = ago > 0 && ago * 1e6 < (double)now ? now - (uint64_t)(ago * 1e6) : now;
    return t > floor ? t : floor;
}

/* conninfo of each node of the URI tests/patroni.sh prints
 * (postgresql://user:pw@h:p,h:p,h:p/db), for the watchers. */
static int node_conninfos(const char *uri, char out[LOAD_NODES][512]) {
    char user[64], pw[128], hosts[256], db[64];
    if (sscanf(uri, "postgresql://%63[^:]:%127[^@]@%255[^/]/%63s", user, pw, hosts, db) != 4) return -1;
    char *save = NULL, *hp = strtok_r(hosts, ",", &save);
    for (int i = 0; i < LOAD_NODES; i++, hp = strtok_r(NULL, ",", &save)) {
        char *colon = hp ? strchr(hp, ':') : NULL;
        if (!colon) return -1;
        *colon = '\0';
        snprintf(out[i], 512, "host=%s port=%s user=%s password=%s dbname=%s connect_timeout=2", hp, colon + 1, user,
                 pw, db);
    }
    return 0;
}

/* Polls (at most timeout_s) until every writer has n acknowledged writes
 * started at or after `after` on node `node` (any node when -1). */
static int wait_acked(load *L, int node, uint64_t after, int n, int timeout_s) {
    uint64_t end = now_us() + (uint64_t)timeout_s * 1000000u;
    while (load_count_acked(L, node, after) < n) {
        if (now_us() > end) return -1;
        nap_ms(100);
    }
    return 0;
}

/* The ledger as the primary has it: counts[w][seq]. */
static int fetch_ledger(wr_cluster *c, const load *L, int *counts[LOAD_WRITERS]) {
    for (int i = 0; i < LOAD_WRITERS; i++)
        if (!(counts[i] = calloc(L->w[i].attempts.n + 1, sizeof(int)))) return -1;
    wr_session *s = wr_session_new(c);
    char lo[16], hi[16];
    snprintf(lo, sizeof lo, "%d", L->first_writer);
    snprintf(hi, sizeof hi, "%d", L->first_writer + LOAD_WRITERS);
    const char *p[2] = {lo, hi};
    wr_result *r = NULL;
    wr_status st = WR_ERR_INTERNAL;
    for (int tries = 0; tries < 50 && st != WR_OK; tries++) { /* settling after the failover */
        st = wr_query(s, "SELECT writer, seq, count(*) FROM ledger WHERE writer >= $1::int AND writer < $2::int "
                         "GROUP BY writer, seq",
                      2, p, WR_PRIMARY, &r);
        if (st != WR_OK) nap_ms(200);
    }
    if (st != WR_OK) {
        fprintf(stderr, "reading the ledger: %s\n", wr_session_errmsg(s));
        wr_session_free(s);
        return -1;
    }
    for (int k = 0; k < wr_result_nrows(r); k++) {
        int w = atoi(wr_result_value(r, k, 0)) - L->first_writer, seq = atoi(wr_result_value(r, k, 1));
        if (w >= 0 && w < LOAD_WRITERS && seq >= 0 && (size_t)seq < L->w[w].attempts.n)
            counts[w][seq] = atoi(wr_result_value(r, k, 2));
        else
            fprintf(stderr, "ledger row of no attempt: writer %d seq %d\n", w + L->first_writer, seq);
    }
    wr_result_free(r);
    wr_session_free(s);
    return 0;
}

typedef struct tally {
    long acked, unknown, failed, lost, doubled, failed_present, late, stale;
    long reads_ok, reads_failed, reads_failed_until_write;
    double cmd_to_write_s, promo_to_write_s, rejoin_s, promo_s, first_fail_s, last_fail_s;
} tally;

static void count_writes(const load *L, int *counts[LOAD_WRITERS], tally *t) {
    for (int i = 0; i < LOAD_WRITERS; i++) {
        const attempt *a = L->w[i].attempts.v;
        t->stale += L->w[i].stale;
        for (size_t k = 0; k < L->w[i].attempts.n; k++) {
            int n = counts[i][k];
            if (n > 1) t->doubled++;
            switch (a[k].out) {
            case OUT_ACKED:
                t->acked++;
                if (n == 0) {
                    t->lost++;
                    fprintf(stderr, "LOST: writer %d seq %zu acknowledged by node %d on timeline %d\n",
                            L->w[i].id, k, a[k].node, a[k].tli);
                }
                if (a[k].tli < a[k].seen_tli) {
                    t->late++;
                    fprintf(stderr, "LATE: writer %d seq %zu acknowledged by node %d on timeline %d after "
                                    "walrouter had seen timeline %d\n",
                            L->w[i].id, k, a[k].node, a[k].tli, a[k].seen_tli);
                }
                break;
            case OUT_UNKNOWN: t->unknown++; break;
            case OUT_FAILED:
                t->failed++;
                if (n > 0) {
                    t->failed_present++;
                    fprintf(stderr, "RAN: writer %d seq %zu reported %s but is in the ledger\n", L->w[i].id, k,
                            wr_status_name(a[k].status));
                }
                break;
            }
        }
    }
}

static void figures(const load *L, int new_leader, uint64_t t0, uint64_t cmd_end, uint64_t rejoin, tally *t) {
    uint64_t first = 0;
    for (int i = 0; i < LOAD_WRITERS; i++) {
        const attempt *a = L->w[i].attempts.v;
        for (size_t k = 0; k < L->w[i].attempts.n; k++)
            if (a[k].out == OUT_ACKED && a[k].node == new_leader && a[k].end_us > t0 && (!first || a[k].end_us < first))
                first = a[k].end_us;
    }
    for (int i = 0; i < LOAD_READERS; i++) {
        t->stale += L->r[i].stale;
        const read_rec *r = L->r[i].reads.v;
        for (size_t k = 0; k < L->r[i].reads.n; k++) {
            if (r[k].ok) t->reads_ok++;
            else t->reads_failed++;
            if (!r[k].ok && r[k].end_us >= t0 && first && r[k].start_us <= first) t->reads_failed_until_write++;
            if (!r[k].ok && r[k].end_us >= t0) {
                double at = (double)(r[k].end_us - t0) / 1e6;
                if (t->first_fail_s < 0 || at < t->first_fail_s) t->first_fail_s = at;
                if (at > t->last_fail_s) t->last_fail_s = at;
            }
        }
    }
    uint64_t promoted = atomic_load(&((load *)L)->watch[new_leader].promoted_us);
    t->promo_s = promoted > t0 ? (double)(promoted - t0) / 1e6 : -1;
    t->cmd_to_write_s = first ? (double)(first - t0) / 1e6 : -1;
    t->promo_to_write_s = first && promoted > t0 ? ((double)first - (double)promoted) / 1e6 : -1;
    t->rejoin_s = rejoin ? (double)(rejoin - cmd_end) / 1e6 : -1;
}

static void run_scenario(wr_cluster *c, char conninfo[LOAD_NODES][512], const scenario *sc, int first_writer) {
    char out[256];
    fprintf(stderr, "== %s\n", sc->name);
    CHECK_INT(script(NULL, 0, "wait-healthy 180"), 0);
    static load L; /* large; one scenario at a time */
    if (load_start(&L, c, first_writer, conninfo) != 0) {
        fprintf(stderr, "could not start the load's threads\n");
        CHECK(0);
        load_stop(&L);
        load_free(&L);
        return;
    }
    CHECK_INT(wait_acked(&L, -1, 0, WARMUP_WRITES, 60), 0);

    uint64_t started = now_us();
    int old = -1, new_leader = -1;
    double at = 0;
    CHECK_INT(script(out, sizeof out, sc->command), 0);
    uint64_t cmd_end = now_us();
    CHECK_INT(sscanf(out, "%d %d %lf", &old, &new_leader, &at), 3);
    uint64_t t0 = mono_of_wall(at, started);
    fprintf(stderr, "%s took %.1f s (the action %.1f s after the command started)\n", sc->command,
            (double)(cmd_end - started) / 1e6, (double)(t0 - started) / 1e6);
    if (old < 0 || old >= LOAD_NODES || new_leader < 0 || new_leader >= LOAD_NODES || old == new_leader) {
        fprintf(stderr, "bad answer from tests/patroni.sh %s: '%s'\n", sc->command, out);
        CHECK(0);
        load_stop(&L);
        load_free(&L);
        return;
    }
    /* Writes reach the new leader, and the old leader serves reads again
     * once Patroni has rejoined it as a replica. */
    CHECK_INT(wait_acked(&L, new_leader, t0, 5, 90), 0);
    uint64_t rejoin = 0, end = now_us() + REJOIN_TIMEOUT_S * 1000000ull;
    while (!rejoin && now_us() < end) {
        if (atomic_load(&L.replica_read_us[old]) > cmd_end) rejoin = atomic_load(&L.replica_read_us[old]);
        else nap_ms(100);
    }
    CHECK(rejoin != 0);
    if (!rejoin) { /* what the engine believes, to tell why */
        char *js = wr_cluster_status_json(c);
        fprintf(stderr, "the old leader serves no reads; walrouter's view: %s\n", js ? js : "(none)");
        wr_free(js);
        const char *sh = getenv("WR_PATRONI_SH");
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s status >&2", sh && *sh ? sh : "tests/patroni.sh");
        fprintf(stderr, "Patroni's view:\n");
        if (system(cmd) != 0) fprintf(stderr, "(patroni.sh status failed)\n");
    }
    load_stop(&L);

    int *counts[LOAD_WRITERS] = {0};
    tally t = {.first_fail_s = -1};
    int fetched = fetch_ledger(c, &L, counts) == 0;
    CHECK(fetched);
    if (fetched) count_writes(&L, counts, &t);
    figures(&L, new_leader, t0, cmd_end, rejoin, &t);
    for (int i = 0; i < LOAD_WRITERS; i++) free(counts[i]);
    fprintf(stderr,
            "%s: node%d -> node%d; writes acked %ld, unknown %ld, failed %ld; reads ok %ld, failed %ld\n"
            "  lost %ld, doubled %ld, failed-yet-ran %ld, acked on an old timeline %ld, stale reads %ld\n"
            "  BENCH %s: action -> first write on the new leader %.2f s, promotion -> first write %.2f s, "
            "reads failed until then %ld; old leader serving reads %.1f s after the command returned\n",
            sc->name, old, new_leader, t.acked, t.unknown, t.failed, t.reads_ok, t.reads_failed, t.lost, t.doubled,
            t.failed_present, t.late, t.stale, sc->name, t.cmd_to_write_s, t.promo_to_write_s,
            t.reads_failed_until_write, t.rejoin_s);
    if (t.first_fail_s >= 0)
        fprintf(stderr, "  reads failed from +%.2f s to +%.2f s after the action; promotion seen at +%.2f s\n",
                t.first_fail_s, t.last_fail_s, t.promo_s);
    for (int i = 0; i < LOAD_WRITERS; i++)
        if (L.w[i].last_error[0]) fprintf(stderr, "  writer %d last error: %s\n", L.w[i].id, L.w[i].last_error);
    for (int i = 0; i < LOAD_READERS; i++)
        if (L.r[i].last_error[0]) fprintf(stderr, "  reader %d last error: %s\n", i, L.r[i].last_error);
    CHECK(t.acked > 0);
    CHECK_INT(t.lost, 0);
    CHECK_INT(t.doubled, 0);
    CHECK_INT(t.failed_present, 0);
    CHECK_INT(t.late, 0);
    CHECK_INT(t.stale, 0);
    load_free(&L);
}

int main(void) {
    static const scenario scenarios[] = {
        {"switchover", "switchover"},
        {"kill-leader", "kill-leader"},
        {"isolated-leader", "freeze-leader 14"}, /* past the TTL of 10 s */
    };
    char uri[512], conninfo[LOAD_NODES][512];
    if (script(uri, sizeof uri, "start") != 0 || node_conninfos(uri, conninfo) != 0) {
        fprintf(stderr, "could not start the Patroni cluster (tests/patroni.sh start)\n");
        script(NULL, 0, "stop");
        return 1;
    }
    wr_options opt = {0};
    opt.statement_timeout_ms = 2000; /* a write to a frozen leader gives up in 2 s */
    opt.connect_timeout_s = 2;
    opt.refresh_interval_ms = 200;
    wr_cluster *c = NULL;
    if (wr_cluster_open(&c, uri, &opt) != WR_OK) {
        fprintf(stderr, "wr_cluster_open: %s\n", wr_cluster_errmsg(c));
        wr_cluster_close(c);
        script(NULL, 0, "stop");
        return 1;
    }
    wr_session *s = wr_session_new(c);
    CHECK_INT(wr_exec(s, "CREATE TABLE ledger (writer int NOT NULL, seq int NOT NULL, tli int NOT NULL)", 0, NULL,
                      NULL),
              WR_OK);
    wr_session_free(s);
    const char *only = getenv("WR_PATRONI_ONLY"); /* some scenarios, by name (development) */
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        if (only && *only && !strstr(only, scenarios[i].name)) continue;
        int before = check_failures;
        run_scenario(c, conninfo, &scenarios[i], 10 * (int)(i + 1));
        fprintf(stderr, "%s %s\n", check_failures == before ? "ok  " : "FAIL", scenarios[i].name);
    }
    wr_cluster_close(c);
    script(NULL, 0, "stop");
    return check_exit();
}
