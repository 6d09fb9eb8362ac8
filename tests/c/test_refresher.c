/* test_refresher.c — the background refresher and event handlers under
 * concurrency: concurrent starts make one thread and a stop joins it; its
 * timed waits run on CLOCK_MONOTONIC (a deadline on the wrong clock would
 * never come, and no probe would run); an event handler never runs after
 * wr_cluster_set_event_handler replaced it, so its argument may be freed.
 * Also run under ThreadSanitizer. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"
#include "testlib.h"

/* Threads of this process. */
static int task_count(void) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Polls until the thread count is at most want (5 s); returns the count. */
static int settle_tasks(int want) {
    int n = task_count();
    for (int i = 0; i < 500 && n > want; i++) {
        t_nap(10);
        n = task_count();
    }
    return n;
}

/* The thread count once no thread is on its way out: a joined thread may
 * still be listed in /proc/self/task for a moment after pthread_join
 * returned (the kernel reaps it after waking the joiner), so the count is
 * read until it stayed the same for 50 ms (at most 5 s). */
static int steady_tasks(void) {
    int n = task_count(), same = 0;
    for (int i = 0; i < 500 && same < 5; i++) {
        t_nap(10);
        int m = task_count();
        same = m == n ? same + 1 : 0;
        n = m;
    }
    return n;
}

static wr_cluster *open_without_refresher(void) {
    wr_options o = {0};
    o.no_refresher = 1;
    return t_open(&o);
}

typedef struct {
    wr_cluster *c;
    pthread_barrier_t *go;
    wr_status st;
} starter;

static void *start_one(void *arg) {
    starter *s = arg;
    pthread_barrier_wait(s->go);
    s->st = wr_cluster_start_refresher(s->c, 50);
    return NULL;
}

#define STARTERS 8

static void *nothing(void *arg) { return arg; }

static void concurrent_starts_make_one_thread_and_stop_joins_it(void) {
    wr_cluster *c = open_without_refresher();
    /* A first thread, so that runtimes that start a helper thread of their
     * own with it (ThreadSanitizer) have done so before the count. */
    pthread_t warm;
    pthread_create(&warm, NULL, nothing, NULL);
    pthread_join(warm, NULL);
    int base = steady_tasks();
    for (int round = 0; round < 10; round++) {
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, STARTERS);
        pthread_t th[STARTERS];
        starter s[STARTERS];
        for (int i = 0; i < STARTERS; i++) {
            s[i] = (starter){.c = c, .go = &go, .st = WR_ERR_INTERNAL};
            pthread_create(&th[i], NULL, start_one, &s[i]);
        }
        for (int i = 0; i < STARTERS; i++) {
            pthread_join(th[i], NULL);
            CHECK_INT(s[i].st, WR_OK);
        }
        pthread_barrier_destroy(&go);
        CHECK_INT(settle_tasks(base + 1), base + 1); /* one refresher */
        wr_cluster_stop_refresher(c);
        CHECK_INT(settle_tasks(base), base); /* joined: none left */
    }
    wr_cluster_close(c);
}

static int64_t last_check(wr_cluster *c, size_t i) {
    wr_node_status st;
    return wr_cluster_node_status(c, i, &st) == WR_OK ? st.last_check_unix_ms : -1;
}

static void the_refresher_wakes_on_the_monotonic_clock_and_probes(void) {
    wr_cluster *c = open_without_refresher();
    int64_t before = last_check(c, 1);
    CHECK_INT(wr_cluster_start_refresher(c, 20), WR_OK);
    int64_t now = before;
    for (int i = 0; i < 1000 && now == before; i++) { /* at most 10 s */
        t_nap(10);
        now = last_check(c, 1);
    }
    CHECK(now > before); /* a probe ran: its timed wait ended */
    wr_cluster_stop_refresher(c);
    wr_cluster_close(c);
}

/* ---- event handlers ----------------------------------------------------- */

typedef struct {
    atomic_int calls;
    atomic_int unset_started;  /* the main thread is about to unset the handler */
    atomic_int unset_returned; /* ... and wr_cluster_set_event_handler returned */
    atomic_int dead;           /* the argument counts as freed */
    atomic_int violations;     /* ran after it was unset, or on a dead argument */
} spy;

static void on_event(void *arg, const wr_event *ev) {
    spy *s = arg;
    (void)ev;
    if (atomic_load(&s->dead)) atomic_fetch_add(&s->violations, 1);
    atomic_fetch_add(&s->calls, 1);
    /* The first call stays until the main thread starts unsetting, then
     * looks for a while whether the unset returned while it still runs. */
    while (!atomic_load(&s->unset_started)) t_nap(1);
    for (int i = 0; i < 100; i++) {
        if (atomic_load(&s->unset_returned)) {
            atomic_fetch_add(&s->violations, 1);
            break;
        }
        t_nap(2);
    }
}

typedef struct {
    wr_cluster *c;
    atomic_int stop;
    atomic_int rounds;
} flapper;

/* Makes node 1 change state over and over: down by the engine's rule, then
 * back up by a real probe. Each round announces at least one event. */
static void *flap(void *arg) {
    flapper *f = arg;
    while (!atomic_load(&f->stop)) {
        pthread_mutex_lock(&f->c->mu);
        wr_engine_node_failed(&f->c->eng, 1, wr_now_us(), 7, "test: made down");
        pthread_mutex_unlock(&f->c->mu);
        wr_cluster_note_changes(f->c);
        wr_cluster_refresh(f->c);
        wr_cluster_note_changes(f->c);
        atomic_fetch_add(&f->rounds, 1);
    }
    return NULL;
}

static void an_unset_event_handler_never_runs_again(void) {
    wr_cluster *c = open_without_refresher();
    spy *s = calloc(1, sizeof *s);
    flapper f = {.c = c};
    wr_cluster_set_event_handler(c, on_event, s);
    pthread_t th;
    pthread_create(&th, NULL, flap, &f);
    for (int i = 0; i < 1000 && atomic_load(&s->calls) == 0; i++) t_nap(10);
    CHECK(atomic_load(&s->calls) > 0);
    /* The handler is running now (it waits for this). */
    atomic_store(&s->unset_started, 1);
    wr_cluster_set_event_handler(c, NULL, NULL);
    atomic_store(&s->unset_returned, 1);
    atomic_store(&s->dead, 1);
    int calls = atomic_load(&s->calls);
    /* Several more rounds of events: none reaches the old handler. */
    int rounds = atomic_load(&f.rounds);
    for (int i = 0; i < 1000 && atomic_load(&f.rounds) < rounds + 5; i++) t_nap(10);
    CHECK(atomic_load(&f.rounds) >= rounds + 5);
    atomic_store(&f.stop, 1);
    pthread_join(th, NULL);
    CHECK_INT(atomic_load(&s->violations), 0);
    CHECK_INT(atomic_load(&s->calls), calls);
    /* The events were still queued for polling. */
    wr_event ev[64];
    CHECK(wr_cluster_poll_events(c, ev, 64) > 0);
    free(s);
    wr_cluster_close(c);
}

/* A handler may replace itself (the lock is recursive). */
static void replace_self(void *arg, const wr_event *ev) {
    wr_cluster *c = arg;
    (void)ev;
    wr_cluster_set_event_handler(c, NULL, NULL);
}

static void a_handler_may_unset_itself(void) {
    wr_cluster *c = open_without_refresher();
    wr_cluster_set_event_handler(c, replace_self, c);
    pthread_mutex_lock(&c->mu);
    wr_engine_node_failed(&c->eng, 2, wr_now_us(), 7, "test: made down");
    pthread_mutex_unlock(&c->mu);
    wr_cluster_note_changes(c); /* returns: no self-deadlock */
    CHECK(c->on_event == NULL);
    wr_cluster_close(c);
}

int main(void) {
    t_dsn();
    RUN(concurrent_starts_make_one_thread_and_stop_joins_it);
    RUN(the_refresher_wakes_on_the_monotonic_clock_and_probes);
    RUN(an_unset_event_handler_never_runs_again);
    RUN(a_handler_may_unset_itself);
    return check_exit();
}
