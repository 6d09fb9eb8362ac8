/* load.c — see load.h. */
#define _POSIX_C_SOURCE 200809L
#include "load.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The timeline the write runs on: WAL file names start with it. */
#define SQL_WRITE                                                                                  \
    "INSERT INTO ledger (writer, seq, tli) VALUES ($1::int, $2::int, "                             \
    "('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int) RETURNING tli"
#define SQL_READ_BACK "SELECT count(*) FROM ledger WHERE writer = $1::int AND seq = $2::int"
#define SQL_LATEST "SELECT coalesce(max(seq), -1) FROM ledger WHERE writer = $1::int"

uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void nap_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

int seen_timeline(wr_cluster *c) {
    int top = 0;
    for (size_t i = 0; i < wr_cluster_nnodes(c); i++) {
        wr_node_status st;
        if (wr_cluster_node_status(c, i, &st) == WR_OK && (int)st.timeline > top) top = (int)st.timeline;
    }
    return top;
}

static void *recs_add(recs *r) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        void *v = realloc(r->v, cap * r->size);
        if (!v) return NULL;
        r->v = v;
        r->cap = cap;
    }
    void *slot = (char *)r->v + r->n * r->size;
    memset(slot, 0, r->size);
    r->n++;
    return slot;
}

static int is_replica_reason(wr_reason why) {
    return why == WR_REASON_REPLICA_CACHED || why == WR_REASON_REPLICA_CHECKED || why == WR_REASON_REPLICA_OTHER ||
           why == WR_REASON_REPLICA_WAITED;
}

static void note_replica_read(load *L, int node, wr_reason why, uint64_t start) {
    if (node < 0 || node >= LOAD_NODES || !is_replica_reason(why)) return;
    uint64_t old = atomic_load(&L->replica_read_us[node]);
    while (old < start && !atomic_compare_exchange_weak(&L->replica_read_us[node], &old, start)) {
    }
}

/* ---- writers ---------------------------------------------------------------- */

/* The session must see its own acknowledged write (G1). */
static void read_back(writer *w, wr_session *s, const char *const p[2]) {
    wr_result *r = NULL;
    uint64_t start = now_us();
    if (wr_query(s, SQL_READ_BACK, 2, p, 0, &r) != WR_OK) return; /* a failed read is no stale read */
    if (strcmp(wr_result_value(r, 0, 0), "1") != 0) {
        w->stale++;
        fprintf(stderr, "STALE: writer %d does not see its acknowledged seq %s on node %d (%s)\n", w->id, p[1],
                wr_result_node(r), wr_reason_name(wr_result_reason(r)));
    }
    note_replica_read(w->L, wr_result_node(r), wr_result_reason(r), start);
    wr_result_free(r);
}

static void *writer_main(void *arg) {
    writer *w = arg;
    wr_session *s = wr_session_new(w->L->c);
    char id[16], seq[16];
    snprintf(id, sizeof id, "%d", w->id);
    for (int n = 0; s && !atomic_load(&w->L->stop); n++) {
        snprintf(seq, sizeof seq, "%d", n);
        const char *p[2] = {id, seq};
        attempt a = {.seq = n, .seen_tli = seen_timeline(w->L->c), .start_us = now_us()};
        wr_result *r = NULL;
        a.status = wr_exec(s, SQL_WRITE, 2, p, &r);
        a.end_us = now_us();
        a.node = a.status == WR_OK ? wr_result_node(r) : wr_session_errnode(s);
        a.out = a.status == WR_OK ? OUT_ACKED : a.status == WR_ERR_UNKNOWN_OUTCOME ? OUT_UNKNOWN : OUT_FAILED;
        if (a.status == WR_OK) a.tli = atoi(wr_result_value(r, 0, 0));
        else snprintf(w->last_error, sizeof w->last_error, "%s", wr_session_errmsg(s));
        pthread_mutex_lock(&w->mu);
        attempt *slot = recs_add(&w->attempts);
        if (slot) *slot = a;
        if (a.status == WR_OK) {
            snprintf(w->token, sizeof w->token, "%s", wr_session_token(s));
            w->acked_seq = n;
        }
        pthread_mutex_unlock(&w->mu);
        wr_result_free(r);
        if (!slot) break;
        if (a.status == WR_OK) read_back(w, s, p);
        nap_ms(a.status == WR_OK ? 10 : 50);
    }
    wr_session_free(s);
    return NULL;
}

/* ---- readers ---------------------------------------------------------------- */

static void *reader_main(void *arg) {
    reader *rd = arg;
    load *L = rd->L;
    for (int k = rd->id; !atomic_load(&L->stop); k++) {
        writer *w = &L->w[k % LOAD_WRITERS];
        char token[WR_TOKEN_BUFSIZE], id[16];
        pthread_mutex_lock(&w->mu);
        int want = w->acked_seq;
        snprintf(token, sizeof token, "%s", w->token);
        pthread_mutex_unlock(&w->mu);
        if (want < 0) {
            nap_ms(10);
            continue;
        }
        snprintf(id, sizeof id, "%d", w->id);
        const char *p[1] = {id};
        /* A new request carrying the writer's cookie. */
        wr_session *s = wr_session_new(L->c);
        read_rec *rec = s ? recs_add(&rd->reads) : NULL;
        if (!rec || wr_session_resume(s, token) != WR_OK) {
            wr_session_free(s);
            break;
        }
        wr_result *r = NULL;
        rec->start_us = now_us();
        wr_status st = wr_query(s, SQL_LATEST, 1, p, 0, &r);
        rec->end_us = now_us();
        rec->ok = st == WR_OK;
        rec->node = st == WR_OK ? wr_result_node(r) : wr_session_errnode(s);
        rec->reason = st == WR_OK ? wr_result_reason(r) : WR_REASON_NONE;
        if (st == WR_OK) {
            int got = atoi(wr_result_value(r, 0, 0));
            if (got < want) {
                rd->stale++;
                snprintf(rd->last_stale, sizeof rd->last_stale, "writer %d: saw seq %d < acknowledged %d on node %d (%s)",
                         w->id, got, want, rec->node, wr_reason_name(rec->reason));
                fprintf(stderr, "STALE: %s\n", rd->last_stale);
            }
            note_replica_read(L, rec->node, rec->reason, rec->start_us);
        } else {
            snprintf(rd->last_error, sizeof rd->last_error, "%s", wr_session_errmsg(s));
        }
        wr_result_free(r);
        wr_session_free(s);
        nap_ms(st == WR_OK ? 10 : 50);
    }
    return NULL;
}

/* ---- watchers ---------------------------------------------------------------- */

static void quiet(void *arg, const char *message) {}

static void *watcher_main(void *arg) {
    watcher *wa = arg;
    PGconn *pg = NULL;
    int prev = -1; /* 1 in recovery, 0 primary, -1 unknown */
    while (!atomic_load(&wa->L->stop)) {
        if (!pg || PQstatus(pg) != CONNECTION_OK) {
            PQfinish(pg);
            pg = PQconnectdb(wa->conninfo);
            if (PQstatus(pg) != CONNECTION_OK) {
                nap_ms(50);
                continue;
            }
            PQsetNoticeProcessor(pg, quiet, NULL); /* "terminating connection ..." */
        }
        PGresult *res = PQexec(pg, "SELECT pg_is_in_recovery()");
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            int in_recovery = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
            if (!in_recovery && prev == 1) atomic_store(&wa->promoted_us, now_us());
            prev = in_recovery;
        }
        PQclear(res);
        nap_ms(50);
    }
    PQfinish(pg);
    return NULL;
}

/* ---- the whole load ------------------------------------------------------------ */

int load_count_acked(load *L, int node, uint64_t after) {
    int least = -1;
    for (int i = 0; i < LOAD_WRITERS; i++) {
        writer *w = &L->w[i];
        int got = 0;
        pthread_mutex_lock(&w->mu);
        const attempt *a = w->attempts.v;
        for (size_t k = 0; k < w->attempts.n; k++)
            if (a[k].out == OUT_ACKED && (node < 0 || a[k].node == node) && a[k].start_us >= after) got++;
        pthread_mutex_unlock(&w->mu);
        if (least < 0 || got < least) least = got;
    }
    return least;
}

static int start(load *L, pthread_t *th, void *(*fn)(void *), void *arg) {
    if (pthread_create(th, NULL, fn, arg) != 0) return -1;
    L->threads[L->nthreads++] = th;
    return 0;
}

int load_start(load *L, wr_cluster *c, int first_writer, char conninfo[LOAD_NODES][512]) {
    memset(L, 0, sizeof *L);
    L->c = c;
    L->first_writer = first_writer;
    for (int i = 0; i < LOAD_WRITERS; i++) {
        writer *w = &L->w[i];
        w->L = L;
        w->id = first_writer + i;
        w->acked_seq = -1;
        w->attempts.size = sizeof(attempt);
        pthread_mutex_init(&w->mu, NULL);
    }
    for (int i = 0; i < LOAD_READERS; i++) {
        L->r[i].L = L;
        L->r[i].id = i;
        L->r[i].reads.size = sizeof(read_rec);
    }
    for (int i = 0; i < LOAD_NODES; i++) {
        L->watch[i].L = L;
        L->watch[i].node = i;
        snprintf(L->watch[i].conninfo, sizeof L->watch[i].conninfo, "%s", conninfo[i]);
    }
    for (int i = 0; i < LOAD_NODES; i++)
        if (start(L, &L->watch[i].th, watcher_main, &L->watch[i]) != 0) return -1;
    for (int i = 0; i < LOAD_WRITERS; i++)
        if (start(L, &L->w[i].th, writer_main, &L->w[i]) != 0) return -1;
    for (int i = 0; i < LOAD_READERS; i++)
        if (start(L, &L->r[i].th, reader_main, &L->r[i]) != 0) return -1;
    return 0;
}

void load_stop(load *L) {
    atomic_store(&L->stop, 1);
    for (int i = 0; i < L->nthreads; i++) pthread_join(*L->threads[i], NULL);
    L->nthreads = 0;
}

void load_free(load *L) {
    for (int i = 0; i < LOAD_WRITERS; i++) {
        free(L->w[i].attempts.v);
        pthread_mutex_destroy(&L->w[i].mu);
    }
    for (int i = 0; i < LOAD_READERS; i++) free(L->r[i].reads.v);
}
