/* refresher.c — the background thread that probes the nodes, so that no
 * request waits on a probe of a node it does not use. Started by
 * wr_cluster_open unless no_refresher is set. It wakes every tenth of the
 * refresh interval (at most 100 ms) and probes what the engine says is due:
 * nodes whose last probe is older than the interval, and nodes back from
 * their backoff. Every probe has a deadline, so stopping it is bounded.
 *
 * Its waits are on CLOCK_MONOTONIC (a wall clock set back would stall it).
 * Starting and stopping hold refresher_life, so concurrent starts make one
 * thread and a stop always joins the thread a start made. */
#include <errno.h>
#include <time.h>

#include "internal.h"

void wr_refresher_init(wr_cluster *c) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->refresher_cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&c->refresher_life, NULL);
}

void wr_refresher_destroy(wr_cluster *c) {
    pthread_mutex_destroy(&c->refresher_life);
    pthread_cond_destroy(&c->refresher_cv);
}

static void *refresh_loop(void *arg) {
    wr_cluster *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->refresher_stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        uint64_t tick_ms = c->refresher_interval_ms / 10;
        if (tick_ms > 100) tick_ms = 100;
        if (tick_ms < 5) tick_ms = 5;
        uint64_t ns = (uint64_t)until.tv_nsec + tick_ms * 1000000u;
        until.tv_sec += (time_t)(ns / 1000000000u);
        until.tv_nsec = (long)(ns % 1000000000u);
        int rc = 0;
        while (!c->refresher_stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&c->refresher_cv, &c->mu, &until);
        if (c->refresher_stop) break;
        pthread_mutex_unlock(&c->mu);
        wr_cluster_probe_due(c);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

wr_status wr_cluster_start_refresher(wr_cluster *c, uint32_t interval_ms) {
    if (!c || interval_ms == 0) return WR_ERR_ARG;
    pthread_mutex_lock(&c->refresher_life);
    pthread_mutex_lock(&c->mu);
    int running = c->refresher_running;
    c->refresher_interval_ms = interval_ms;
    c->eng.cfg.refresh_interval_us = (uint64_t)interval_ms * 1000;
    c->refresher_stop = 0;
    pthread_mutex_unlock(&c->mu);
    wr_status st = WR_OK;
    /* Running: the new interval applies from the next round. */
    if (!running) {
        if (pthread_create(&c->refresher, NULL, refresh_loop, c) == 0) {
            pthread_mutex_lock(&c->mu);
            c->refresher_running = 1;
            pthread_mutex_unlock(&c->mu);
        } else {
            st = WR_ERR_INTERNAL;
        }
    }
    pthread_mutex_unlock(&c->refresher_life);
    return st;
}

void wr_cluster_stop_refresher(wr_cluster *c) {
    if (!c) return;
    pthread_mutex_lock(&c->refresher_life);
    pthread_mutex_lock(&c->mu);
    int running = c->refresher_running;
    c->refresher_stop = 1;
    c->refresher_running = 0;
    pthread_cond_broadcast(&c->refresher_cv);
    pthread_mutex_unlock(&c->mu);
    if (running) pthread_join(c->refresher, NULL);
    pthread_mutex_unlock(&c->refresher_life);
}
