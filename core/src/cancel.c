/* cancel.c — cancel requests that never make the caller wait. libpq 15's
 * PQcancel opens a connection and waits for the server to hang up (a frozen or
 * silent server would hang it), so it runs on a short-lived detached thread.
 * The caller keeps a handle that says when the request is over; the thread and
 * the caller share it, and the last one to let go frees it. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "conn.h"

struct wr_cancel {
    PGcancel *pc;     /* the thread's */
    atomic_int over;
    atomic_int refs;  /* the thread's and the caller's */
};

/* The one global: how many cancel threads run, so that they stay bounded. */
static atomic_int in_flight;

int wr_cancel_in_flight(void) { return atomic_load(&in_flight); }

int wr_cancel_over(const wr_cancel *c) { return atomic_load(&c->over); }

void wr_cancel_release(wr_cancel *c) {
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) free(c);
}

static void *cancel_thread(void *arg) {
    wr_cancel *c = arg;
    char errbuf[256]; /* nobody to tell: the caller only needs to know it is over */
    PQcancel(c->pc, errbuf, sizeof errbuf);
    PQfreeCancel(c->pc);
    c->pc = NULL;
    atomic_store(&c->over, 1);
    wr_cancel_release(c);
    atomic_fetch_sub(&in_flight, 1); /* last: a count of 0 means every handle is freed */
    return NULL;
}

wr_cancel *wr_cancel_send(PGconn *pg) {
    if (atomic_fetch_add(&in_flight, 1) >= WR_CANCEL_MAX) {
        atomic_fetch_sub(&in_flight, 1);
        return NULL;
    }
    wr_cancel *c = calloc(1, sizeof *c);
    if (c) c->pc = PQgetCancel(pg);
    if (!c || !c->pc) goto fail;
    atomic_init(&c->over, 0);
    atomic_init(&c->refs, 2);
    /* The thread takes no signals: the application's handlers run on its own threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_attr_t attr;
    pthread_t t;
    if (pthread_attr_init(&attr) != 0) goto fail;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t, &attr, cancel_thread, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc == 0) return c;
fail:
    if (c) PQfreeCancel(c->pc);
    free(c);
    atomic_fetch_sub(&in_flight, 1);
    return NULL;
}
