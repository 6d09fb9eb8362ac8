/* events.c — node state changes, announced to a callback and queued for
 * bindings that deliver them on their own thread. */
#include <string.h>

#include "internal.h"

#define RING (sizeof ((wr_cluster *)0)->events / sizeof ((wr_cluster *)0)->events[0])

void wr_cluster_note_changes(wr_cluster *c) {
    wr_event fresh[WR_MAX_NODES];
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    wr_lsn plsn = c->primary >= 0 && c->nodes[c->primary].up ? wr_cluster_sendable_locked(c) : 0;
    for (size_t i = 0; i < c->n; i++) {
        wr_node_state now = wr_node_state_of(&c->nodes[i], plsn);
        if (now == c->nodes[i].reported) continue;
        fresh[n++] = (wr_event){.node = (int)i, .from = c->nodes[i].reported, .to = now, .at_unix_ms = wr_unix_ms()};
        c->nodes[i].reported = now;
        size_t slot = (c->ev_head + c->ev_count) % RING;
        c->events[slot] = fresh[n - 1];
        if (c->ev_count < RING) c->ev_count++;
        else c->ev_head = (c->ev_head + 1) % RING; /* full: drop the oldest */
    }
    wr_event_fn fn = c->on_event;
    void *arg = c->on_event_arg;
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; fn && i < n; i++) fn(arg, &fresh[i]);
}

void wr_cluster_set_event_handler(wr_cluster *c, wr_event_fn fn, void *arg) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->on_event = fn;
    c->on_event_arg = arg;
    pthread_mutex_unlock(&c->mu);
}

size_t wr_cluster_poll_events(wr_cluster *c, wr_event *out, size_t cap) {
    if (!c || !out) return 0;
    pthread_mutex_lock(&c->mu);
    size_t n = 0;
    while (n < cap && c->ev_count) {
        out[n++] = c->events[c->ev_head];
        c->ev_head = (c->ev_head + 1) % RING;
        c->ev_count--;
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}
