/* load.h — writers and token-carrying readers through one wr_cluster while
 * Patroni moves the leader, and direct watchers of each node's role.
 *
 * Writers insert (writer, seq) rows, each returning the timeline of the
 * node that ran it; every acknowledged write is read back by its session and
 * its token is published for the readers. Readers resume a new session from
 * a writer's latest token and must see that writer's latest acknowledged
 * row. Everything is recorded with CLOCK_MONOTONIC times for the checks and
 * the figures (load_report). */
#ifndef WR_PATRONI_LOAD_H
#define WR_PATRONI_LOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "walrouter.h"

#define LOAD_WRITERS 3
#define LOAD_READERS 3
#define LOAD_NODES 3

typedef enum { OUT_ACKED, OUT_UNKNOWN, OUT_FAILED } outcome;

typedef struct attempt {
    int seq;
    outcome out;
    wr_status status;
    int node;          /* that served it, -1 none */
    int tli;           /* the timeline the write ran on (acknowledged only) */
    int seen_tli;      /* the newest timeline walrouter knew before sending it */
    uint64_t start_us, end_us;
} attempt;

typedef struct read_rec {
    uint64_t start_us, end_us;
    int ok;            /* 1 rows, 0 an error */
    int node;
    wr_reason reason;
} read_rec;

/* A growable array of records, owned by one thread while the load runs. */
typedef struct recs {
    void *v;
    size_t n, cap, size;
} recs;

struct load;

typedef struct writer {
    struct load *L;
    pthread_t th;
    int id;                 /* the ledger's writer column */
    recs attempts;          /* of attempt */
    long stale;             /* own read-back missed an acknowledged write */
    pthread_mutex_t mu;     /* guards attempts (while running), token, acked_seq */
    char token[WR_TOKEN_BUFSIZE];
    int acked_seq;          /* -1: none yet */
    char last_error[256];
} writer;

typedef struct reader {
    struct load *L;
    pthread_t th;
    int id;
    recs reads;             /* of read_rec */
    long stale;             /* a token's write not seen */
    char last_stale[256];
    char last_error[256];
} reader;

/* One thread per node, polling pg_is_in_recovery() directly (libpq). */
typedef struct watcher {
    struct load *L;
    pthread_t th;
    int node;
    char conninfo[512];
    _Atomic uint64_t promoted_us;  /* last time it went from replica to primary */
} watcher;

typedef struct load {
    wr_cluster *c;
    atomic_int stop;
    int first_writer;       /* writer ids first_writer .. +LOAD_WRITERS-1 */
    writer w[LOAD_WRITERS];
    reader r[LOAD_READERS];
    watcher watch[LOAD_NODES];
    _Atomic uint64_t replica_read_us[LOAD_NODES]; /* newest start of a replica read it served */
    int nthreads;           /* started, in the order of threads[] */
    pthread_t *threads[LOAD_NODES + LOAD_WRITERS + LOAD_READERS];
} load;

uint64_t now_us(void);
void nap_ms(int ms);
/* The newest timeline any node has shown walrouter. */
int seen_timeline(wr_cluster *c);

/* Starts the writers, readers and watchers; conninfo[i] reaches node i. */
int load_start(load *L, wr_cluster *c, int first_writer, char conninfo[LOAD_NODES][512]);
/* The fewest acknowledged writes of one writer, among those started at or
 * after `after` on node `node` (-1: any node). */
int load_count_acked(load *L, int node, uint64_t after);
void load_stop(load *L);
void load_free(load *L);

#endif
