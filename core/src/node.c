/* node.c — what the cluster knows of one node: position observations and the
 * replay rate they imply, up/down with reconnect backoff, staleness limits. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000
#define RATE_WINDOW_US 50000 /* least time between two rate samples */

void wr_node_init(wr_node *n) {
    memset(n, 0, sizeof *n);
    n->rate = -1;
    n->lag_seconds = -1;
}

void wr_node_observe(wr_node *n, wr_lsn lsn, uint64_t sent_us, wr_lsn sendable) {
    if (lsn > n->lsn || (lsn == n->lsn && sent_us > n->lsn_at_us)) {
        n->lsn = lsn;
        n->lsn_at_us = sent_us;
    }
    if (n->role != WR_ROLE_REPLICA) return;
    if (n->rate_at_us == 0 || lsn < n->rate_lsn) {
        n->rate_lsn = lsn;
        n->rate_at_us = sent_us;
        return;
    }
    if (sent_us < n->rate_at_us + RATE_WINDOW_US) return;
    if (lsn > n->rate_lsn) {
        n->rate = (double)(lsn - n->rate_lsn) * 1e6 / (double)(sent_us - n->rate_at_us);
    } else if (sendable > lsn) {
        n->rate = 0; /* flushed WAL was waiting and none was replayed: stuck or paused */
    } else {
        n->rate = -1; /* nothing to replay: the rate says nothing */
    }
    n->rate_lsn = lsn;
    n->rate_at_us = sent_us;
}

void wr_node_mark_down(wr_node *n, uint64_t now_us, uint32_t seed, const char *why) {
    if (n->up || n->backoff_ms == 0) n->backoff_ms = BACKOFF_MIN_MS;
    else if (n->backoff_ms < BACKOFF_MAX_MS) n->backoff_ms *= 2;
    if (n->backoff_ms > BACKOFF_MAX_MS) n->backoff_ms = BACKOFF_MAX_MS;
    /* Jitter: 75%..125% of the backoff, so clients do not retry in step. */
    uint64_t span = (uint64_t)n->backoff_ms * 1000;
    uint64_t jitter = span / 2 ? (seed * 2654435761u) % (span / 2) : 0;
    n->down_until_us = now_us + span * 3 / 4 + jitter;
    n->up = 0;
    /* A restarted replica may reopen behind what it had replayed: forget. */
    n->lsn = 0;
    n->lsn_at_us = 0;
    n->flushed = 0;
    n->rate = -1;
    n->rate_at_us = 0;
    snprintf(n->last_error, sizeof n->last_error, "%s", why ? why : "");
}

void wr_node_mark_up(wr_node *n) {
    n->up = 1;
    n->backoff_ms = 0;
    n->down_until_us = 0;
}

void wr_node_apply_limits(wr_node *n, wr_lsn primary_lsn, const wr_options *o) {
    if (n->role != WR_ROLE_REPLICA) {
        n->excluded = 0;
        return;
    }
    uint64_t lag = primary_lsn > n->lsn ? primary_lsn - n->lsn : 0;
    double lag_ms = n->lag_seconds > 0 ? n->lag_seconds * 1000 : 0;
    int over = (o->max_lag_bytes && lag > o->max_lag_bytes) ||
               (o->max_lag_ms && lag_ms > o->max_lag_ms);
    int under_half = (!o->max_lag_bytes || lag <= o->max_lag_bytes / 2) &&
                     (!o->max_lag_ms || lag_ms <= o->max_lag_ms / 2.0);
    if (over) n->excluded = 1;
    else if (under_half) n->excluded = 0;
}

wr_node_state wr_node_state_of(const wr_node *n, wr_lsn primary_lsn) {
    if (!n->up) return n->role == WR_ROLE_UNKNOWN && n->last_check_unix_ms == 0 && !n->last_error[0]
                           ? WR_STATE_UNKNOWN : WR_STATE_DOWN;
    if (n->role == WR_ROLE_PRIMARY) return WR_STATE_UP;
    if (n->role != WR_ROLE_REPLICA) return WR_STATE_UNKNOWN;
    if (n->excluded) return WR_STATE_LAGGING;
    return n->lsn >= primary_lsn || n->lag_seconds == 0 ? WR_STATE_STREAMING : WR_STATE_CATCHING_UP;
}

void wr_node_view_of(const wr_node *n, uint64_t now_us, wr_node_view *v) {
    v->role = n->role;
    /* A node in backoff is down; once the backoff ends it may be tried again. */
    v->up = n->up || (n->role != WR_ROLE_UNKNOWN && now_us >= n->down_until_us && n->down_until_us);
    v->excluded = n->excluded;
    v->lsn = n->lsn;
    v->lsn_at_us = n->lsn_at_us;
    v->rate = n->rate;
}
