/* events.c — node state changes, announced to a callback and queued for
 * bindings that deliver them on their own thread.
 *
 * A handler runs under event_mu (not the cluster's lock), and changing the
 * handler takes event_mu too: once wr_cluster_set_event_handler returns, the
 * old handler is not running and never runs again, so its argument may be
 * freed. event_mu is recursive, so a handler may change the handler. */
#include <string.h>

#include "internal.h"

#define RING (sizeof ((wr_cluster *)0)->events / sizeof ((wr_cluster *)0)->events[0])

void wr_cluster_note_changes(wr_cluster *c) {
    wr_event fresh[WR_MAX_NODES];
    int ch[3 * WR_MAX_NODES];
    pthread_mutex_lock(&c->mu);
    size_t n = wr_engine_changes(&c->eng, ch, WR_MAX_NODES);
    int64_t at = wr_unix_ms();
    for (size_t i = 0; i < n; i++) {
        fresh[i] = (wr_event){.node = ch[3 * i], .from = (wr_node_state)ch[3 * i + 1],
                              .to = (wr_node_state)ch[3 * i + 2], .at_unix_ms = at};
        size_t slot = (c->ev_head + c->ev_count) % RING;
        c->events[slot] = fresh[i];
        if (c->ev_count < RING) c->ev_count++;
        else c->ev_head = (c->ev_head + 1) % RING; /* full: drop the oldest */
    }
    pthread_mutex_unlock(&c->mu);
    if (n == 0) return;
    pthread_mutex_lock(&c->event_mu);
    /* Read here, not above: a handler unset meanwhile is not called. */
    for (size_t i = 0; c->on_event && i < n; i++) c->on_event(c->on_event_arg, &fresh[i]);
    pthread_mutex_unlock(&c->event_mu);
}

void wr_events_init(wr_cluster *c) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&c->event_mu, &attr);
    pthread_mutexattr_destroy(&attr);
}

void wr_events_destroy(wr_cluster *c) { pthread_mutex_destroy(&c->event_mu); }

void wr_cluster_set_event_handler(wr_cluster *c, wr_event_fn fn, void *arg) {
    if (!c) return;
    pthread_mutex_lock(&c->event_mu);
    c->on_event = fn;
    c->on_event_arg = arg;
    pthread_mutex_unlock(&c->event_mu);
}

/* event_size: sizeof(wr_event) in the caller's walrouter.h (see there). */
size_t wr_cluster_poll_events_sized(wr_cluster *c, wr_event *out, size_t cap, size_t event_size) {
    if (!c || !out || event_size == 0) return 0;
    size_t copy = event_size < sizeof(wr_event) ? event_size : sizeof(wr_event);
    pthread_mutex_lock(&c->mu);
    size_t n = 0;
    while (n < cap && c->ev_count) {
        memcpy((char *)out + n * event_size, &c->events[c->ev_head], copy);
        n++;
        c->ev_head = (c->ev_head + 1) % RING;
        c->ev_count--;
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}
