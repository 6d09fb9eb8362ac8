/* nodes.c — what the engine knows of every node, and the primary election.
 *
 * Rules, in the order they apply:
 *   1. A probe places a node: role, timeline, position, receiver, round trip.
 *      A node that failed (connection, timeout) is down with a jittered
 *      backoff, and serves nothing until a probe has placed it again.
 *      A replica whose WAL receiver is not streaming can only show the
 *      timeline of its last restartpoint, older than the one it replays
 *      after a failover: while it stays up as a replica and its replay does
 *      not go back, it keeps the newer timeline it was seen on.
 *   2. Election: the highest timeline any primary was seen on wins, for
 *      good (it never goes back). A node claiming primary on an older
 *      timeline is fenced. Two reachable claimants on the top timeline
 *      cannot be ordered: both are fenced and nobody gets writes. The
 *      primary never alternates: a second claimant is a conflict, not a
 *      successor. A primary that went down stays the write target (it may
 *      come back) until another node wins on a later timeline.
 *   3. Lag is measured against the primary: bytes behind its flush
 *      position, and time since the latest primary sample the replica's
 *      replay covers (a bound on its staleness that grows while nothing
 *      proves otherwise, e.g. while the primary is unreachable). A replica
 *      on another timeline than the primary, or not yet measured, has
 *      unknown lag. Unknown lag and lag over a limit exclude it from reads;
 *      it is let back in under half of every limit (hysteresis).
 * Pure: no I/O, no clock reads, no allocation. */
#include <stdio.h>
#include <string.h>

#include "walrouter_engine.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000
#define RATE_WINDOW_US 50000 /* least time between two rate samples */
#define UNKNOWN_LAG_PROBE_US 100000 /* probe period of a replica whose lag is unknown */

void wr_config_resolve(const wr_config *in, wr_config *out) {
    wr_config c = {0};
    if (in) c = *in;
    if (!c.budget_us) c.budget_us = WR_DEFAULT_BUDGET_US;
    if (!c.retry_interval_us) c.retry_interval_us = WR_DEFAULT_RETRY_US;
    if (!c.statement_timeout_us) c.statement_timeout_us = WR_DEFAULT_STATEMENT_TIMEOUT_US;
    if (!c.refresh_interval_us) c.refresh_interval_us = WR_DEFAULT_REFRESH_US;
    if (!c.max_lag_bytes) c.max_lag_bytes = WR_DEFAULT_MAX_LAG_BYTES;
    if (!c.max_lag_us) c.max_lag_us = WR_DEFAULT_MAX_LAG_US;
    if (!c.connect_timeout_us) c.connect_timeout_us = WR_DEFAULT_CONNECT_TIMEOUT_US;
    if (c.choose > WR_CHOOSE_NEAREST) c.choose = WR_CHOOSE_SPREAD;
    *out = c;
}

size_t wr_engine_sizeof(void) { return sizeof(wr_engine); }

size_t wr_engine_sizeof_type(const char *type) {
    static const struct {
        const char *name;
        size_t size;
    } types[] = {
        {"wr_timeline", sizeof(wr_timeline)}, {"wr_node_view", sizeof(wr_node_view)},
        {"wr_policy", sizeof(wr_policy)},     {"wr_choice", sizeof(wr_choice)},
        {"wr_config", sizeof(wr_config)},     {"wr_probe", sizeof(wr_probe)},
        {"wr_node_track", sizeof(wr_node_track)}, {"wr_engine", sizeof(wr_engine)},
        {"wr_sess", sizeof(wr_sess)},         {"wr_step", sizeof(wr_step)},
        {"wr_io", sizeof(wr_io)},             {"wr_op", sizeof(wr_op)},
    };
    for (size_t i = 0; type && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(type, types[i].name) == 0) return types[i].size;
    return 0;
}

static void node_reset(wr_node_track *n) {
    uint32_t id = n->id;
    char name[sizeof n->name];
    memcpy(name, n->name, sizeof name);
    memset(n, 0, sizeof *n);
    n->id = id;
    memcpy(n->name, name, sizeof name);
    n->rate = -1;
    n->lag_bytes = -1;
    n->lag_us = -1;
    n->receiver = -1;
}

int wr_engine_init(wr_engine *e, const wr_config *cfg, const char *const *names, size_t n) {
    if (!e) return -1;
    memset(e, 0, sizeof *e);
    wr_config_resolve(cfg, &e->cfg);
    e->primary = -1;
    e->conflict[0] = e->conflict[1] = -1;
    if (n == 0 || n > WR_ENGINE_MAX_NODES) return -1;
    e->n = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        e->nodes[i].id = wr_node_id(names ? names[i] : NULL);
        snprintf(e->nodes[i].name, sizeof e->nodes[i].name, "%s", names && names[i] ? names[i] : "?");
        node_reset(&e->nodes[i]);
    }
    return 0;
}

static int valid(const wr_engine *e, int i) { return e && i >= 0 && (uint32_t)i < e->n; }

/* ---- the primary's samples: (time, position) pairs for time lag --------- */

static const wr_sample *sample_at(const wr_engine *e, uint32_t k) { /* k = 0: newest */
    return &e->samples[(e->sample_head + WR_ENGINE_SAMPLES - 1 - k) % WR_ENGINE_SAMPLES];
}

/* Samples in the ring are exact observations at least max_lag/32 apart, so
 * the ring spans twice the time limit; `latest` is always the newest one. */
static void add_sample(wr_engine *e, uint64_t at_us, wr_lsn lsn) {
    uint64_t spacing = e->cfg.max_lag_us == WR_NO_LIMIT ? 1000000u : e->cfg.max_lag_us / 32;
    if (e->nsamples && at_us < e->latest.at_us) return; /* out of order: older news */
    e->latest = (wr_sample){.at_us = at_us, .lsn = lsn};
    if (e->nsamples && at_us < sample_at(e, 0)->at_us + spacing) return;
    e->samples[e->sample_head] = e->latest;
    e->sample_head = (e->sample_head + 1) % WR_ENGINE_SAMPLES;
    if (e->nsamples < WR_ENGINE_SAMPLES) e->nsamples++;
}

/* The time of the newest observation of the primary that replay position
 * lsn covers; 0 when none. */
static uint64_t covered_at(const wr_engine *e, wr_lsn lsn) {
    if (!e->nsamples) return 0;
    if (lsn >= e->latest.lsn) return e->latest.at_us;
    for (uint32_t k = 0; k < e->nsamples; k++) {
        const wr_sample *s = sample_at(e, k);
        if (lsn >= s->lsn) return s->at_us;
    }
    return 0;
}

/* Whether replica n has replayed the newest primary position observed no
 * later than n's own position was. */
static int caught_up(const wr_engine *e, const wr_node_track *n) {
    if (e->latest.at_us <= n->lsn_at_us) return n->lsn >= e->latest.lsn;
    for (uint32_t k = 0; k < e->nsamples; k++) {
        const wr_sample *s = sample_at(e, k);
        if (s->at_us <= n->lsn_at_us) return n->lsn >= s->lsn;
    }
    return 0;
}

/* ---- lag and exclusion ---------------------------------------------------- */

wr_lsn wr_engine_sendable(const wr_engine *e) {
    if (!e || e->primary < 0) return 0;
    const wr_node_track *p = &e->nodes[e->primary];
    if (p->flushed || p->lsn) return p->flushed ? p->flushed : p->lsn;
    /* down (positions forgotten): its last sample, so replicas' staleness
     * keeps being bounded, and grows, instead of turning unknown at once */
    return e->nsamples ? e->latest.lsn : 0;
}

static int comparable(const wr_engine *e, const wr_node_track *n) {
    if (e->primary < 0) return 0;
    const wr_node_track *p = &e->nodes[e->primary];
    return n->tli == 0 || p->tli == 0 || n->tli == p->tli;
}

static void measure(wr_engine *e, wr_node_track *n, uint64_t now_us) {
    if (n->role != WR_ROLE_REPLICA) {
        n->excluded = 0;
        n->lag_bytes = n->role == WR_ROLE_PRIMARY ? 0 : -1;
        n->lag_us = n->role == WR_ROLE_PRIMARY ? 0 : -1;
        return;
    }
    wr_lsn s = wr_engine_sendable(e);
    int known = n->placed && s && comparable(e, n);
    n->covered_at_us = known ? covered_at(e, n->lsn) : 0;
    if (n->covered_at_us == 0) known = 0;
    if (known) {
        n->lag_bytes = s > n->lsn ? (int64_t)(s - n->lsn) : 0;
        /* Shown lag: 0 when it has everything the primary had when its
         * position was observed (samples taken later may hold WAL on its
         * way), else the time since the newest sample it has. */
        n->lag_us = caught_up(e, n) ? 0 : now_us > n->covered_at_us ? (int64_t)(now_us - n->covered_at_us) : 0;
    } else {
        n->lag_bytes = -1;
        n->lag_us = -1;
    }
    uint64_t stale = known && now_us > n->covered_at_us ? now_us - n->covered_at_us : 0;
    const wr_config *c = &e->cfg;
    int over = !known || (uint64_t)n->lag_bytes > c->max_lag_bytes || stale > c->max_lag_us;
    int under_half = known && (uint64_t)n->lag_bytes <= c->max_lag_bytes / 2 && stale <= c->max_lag_us / 2;
    if (over) n->excluded = 1;
    else if (under_half) n->excluded = 0;
}

void wr_engine_tick(wr_engine *e, uint64_t now_us) {
    if (!e) return;
    for (uint32_t i = 0; i < e->n; i++) measure(e, &e->nodes[i], now_us);
}

/* ---- election -------------------------------------------------------------- */

static void elect(wr_engine *e) {
    for (uint32_t i = 0; i < e->n; i++) {
        const wr_node_track *n = &e->nodes[i];
        if (n->role == WR_ROLE_PRIMARY && n->tli > e->top_tli) e->top_tli = n->tli;
    }
    /* Claimants on the top timeline, reachable or not: a down one has not
     * withdrawn its claim (it may come back), so another cannot succeed it
     * on the same timeline (the primary never alternates). */
    int cands[WR_ENGINE_MAX_NODES], k = 0;
    for (uint32_t i = 0; i < e->n; i++) {
        const wr_node_track *n = &e->nodes[i];
        if (n->role == WR_ROLE_PRIMARY && n->tli == e->top_tli) cands[k++] = (int)i;
    }
    int old = e->primary;
    e->conflict[0] = e->conflict[1] = -1;
    if (k == 1) {
        e->primary = cands[0];
    } else if (k >= 2) {
        e->primary = -1;
        e->conflict[0] = cands[0];
        e->conflict[1] = cands[1];
    } else if (old >= 0) {
        const wr_node_track *p = &e->nodes[old];
        if (p->role != WR_ROLE_PRIMARY || p->tli != e->top_tli) e->primary = -1; /* else: down, may return */
    }
    for (uint32_t i = 0; i < e->n; i++) {
        wr_node_track *n = &e->nodes[i];
        int claims = n->role == WR_ROLE_PRIMARY;
        n->fenced = claims && (n->tli < e->top_tli || (k >= 2 && n->tli == e->top_tli));
    }
    if (e->primary != old) e->nsamples = 0; /* positions of another primary */
}

/* ---- observations ------------------------------------------------------------ */

static void observe_rate(wr_node_track *n, wr_lsn lsn, uint64_t sent_us, wr_lsn sendable) {
    if (n->rate_at_us == 0 || lsn < n->rate_lsn) {
        n->rate_lsn = lsn;
        n->rate_at_us = sent_us;
        return;
    }
    if (sent_us < n->rate_at_us + RATE_WINDOW_US) return;
    if (lsn > n->rate_lsn) n->rate = (double)(lsn - n->rate_lsn) * 1e6 / (double)(sent_us - n->rate_at_us);
    else if (sendable > lsn) n->rate = 0; /* flushed WAL waited and none was replayed: stuck or paused */
    else n->rate = -1;                    /* nothing to replay: the rate says nothing */
    n->rate_lsn = lsn;
    n->rate_at_us = sent_us;
}

/* Position lsn on timeline tli seen by something sent at sent_us. */
static void observe(wr_engine *e, int i, uint32_t tli, wr_lsn lsn, wr_lsn flushed, uint64_t sent_us) {
    wr_node_track *n = &e->nodes[i];
    if (tli != 0 && n->tli != 0 && tli != n->tli) { /* another history: start over */
        n->lsn = 0;
        n->lsn_at_us = 0;
        n->flushed = 0;
        n->rate = -1;
        n->rate_at_us = 0;
    }
    if (tli != 0) n->tli = tli;
    if (lsn > n->lsn || (lsn == n->lsn && sent_us > n->lsn_at_us)) {
        n->lsn = lsn;
        n->lsn_at_us = sent_us;
    }
    if (flushed > n->flushed) n->flushed = flushed;
    if (n->role == WR_ROLE_REPLICA) observe_rate(n, lsn, sent_us, wr_engine_sendable(e));
}

/* After an observation of the elected primary: what replicas can have had
 * at sent_us (its flush position when read, else its insert position). */
static void sample_primary(wr_engine *e, int i, wr_lsn lsn, wr_lsn flushed, uint64_t sent_us) {
    if (i == e->primary) add_sample(e, sent_us, flushed ? flushed : lsn);
}

void wr_engine_probe_ok(wr_engine *e, int i, const wr_probe *p, uint64_t sent_us, uint64_t now_us,
                        int64_t now_unix_ms) {
    if (!valid(e, i) || !p) return;
    wr_node_track *n = &e->nodes[i];
    wr_role role = p->in_recovery ? WR_ROLE_REPLICA : WR_ROLE_PRIMARY;
    int changed = role != (wr_role)n->role;
    uint32_t tli = p->tli; /* rule 1: a stopped receiver's restartpoint lags */
    if (role == WR_ROLE_REPLICA && !changed && n->up && n->placed && p->receiver != 1 && tli != 0 && tli < n->tli &&
        p->lsn >= n->lsn)
        tli = n->tli;
    if (changed) { /* promoted or demoted: nothing carries over */
        n->lsn = 0;
        n->lsn_at_us = 0;
        n->flushed = 0;
        n->rate = -1;
        n->rate_at_us = 0;
    }
    n->role = role;
    n->up = 1;
    n->placed = 1;
    n->backoff_ms = 0;
    n->down_until_us = 0;
    n->receiver = role == WR_ROLE_REPLICA ? p->receiver : -1;
    n->probed_us = sent_us;
    n->last_check_unix_ms = now_unix_ms;
    n->last_error[0] = '\0';
    uint64_t rtt = now_us > sent_us ? now_us - sent_us : 1;
    if (rtt > UINT32_MAX) rtt = UINT32_MAX;
    n->rtt_us = n->rtt_us ? (uint32_t)((7 * (uint64_t)n->rtt_us + rtt) / 8) : (uint32_t)rtt;
    if (p->wal_block_size && p->wal_segment_size) {
        e->wal_block_size = p->wal_block_size;
        e->wal_segment_size = p->wal_segment_size;
    }
    observe(e, i, tli, p->lsn, role == WR_ROLE_PRIMARY ? p->flushed : 0, sent_us);
    if (role == WR_ROLE_PRIMARY || changed || i == e->primary)
        elect(e); /* a claimant, or one stepped down (unfences it, may end a conflict) */
    if (role == WR_ROLE_PRIMARY) sample_primary(e, i, p->lsn, p->flushed, sent_us);
    wr_engine_tick(e, now_us);
}

void wr_engine_observe(wr_engine *e, int i, uint32_t tli, wr_lsn lsn, wr_lsn flushed, uint64_t sent_us) {
    if (!valid(e, i)) return;
    wr_node_track *n = &e->nodes[i];
    int moved = n->role == WR_ROLE_PRIMARY && tli != 0 && tli != n->tli;
    observe(e, i, tli, lsn, flushed, sent_us);
    if (moved) elect(e);
    if (n->role == WR_ROLE_PRIMARY) {
        sample_primary(e, i, lsn, flushed, sent_us);
        wr_engine_tick(e, sent_us);
    } else {
        measure(e, n, sent_us);
    }
}

void wr_engine_node_failed(wr_engine *e, int i, uint64_t now_us, uint32_t rand, const char *why) {
    if (!valid(e, i)) return;
    wr_node_track *n = &e->nodes[i];
    if (n->up || n->backoff_ms == 0) n->backoff_ms = BACKOFF_MIN_MS;
    else if (n->backoff_ms < BACKOFF_MAX_MS) n->backoff_ms *= 2;
    if (n->backoff_ms > BACKOFF_MAX_MS) n->backoff_ms = BACKOFF_MAX_MS;
    /* 75 %..125 % of the backoff, so clients do not retry in step. */
    uint64_t span = (uint64_t)n->backoff_ms * 1000;
    uint64_t jitter = span / 2 ? (uint64_t)rand % (span / 2) : 0;
    n->down_until_us = now_us + span * 3 / 4 + jitter;
    n->up = 0;
    n->placed = 0;
    n->errors++;
    /* A restarted replica may reopen behind what it had replayed: forget. */
    n->lsn = 0;
    n->lsn_at_us = 0;
    n->flushed = 0;
    n->rate = -1;
    n->rate_at_us = 0;
    n->receiver = -1;
    snprintf(n->last_error, sizeof n->last_error, "%s", why ? why : "");
    elect(e);
    measure(e, n, now_us);
}

int wr_engine_probe_failed(wr_engine *e, int i, uint64_t sent_us, uint64_t deadline_us, int deadline_hit,
                           uint64_t now_us, uint32_t rand, const char *why) {
    if (!valid(e, i)) return 0;
    uint64_t given = deadline_us > sent_us ? deadline_us - sent_us : 0;
    if (deadline_hit && given < e->cfg.connect_timeout_us / 2) {
        /* Cut off by a short deadline (a read's) with no error from the
         * node: no proof it is down. Probed again with a fair one at once. */
        e->nodes[i].probed_us = 0;
        return 0;
    }
    wr_engine_node_failed(e, i, now_us, rand, why);
    return 1;
}

/* ---- what drivers read ------------------------------------------------------- */

int wr_engine_may_connect(const wr_engine *e, int i, uint64_t now_us) {
    if (!valid(e, i)) return 0;
    const wr_node_track *n = &e->nodes[i];
    return n->up || now_us >= n->down_until_us;
}

int wr_engine_views(const wr_engine *e, uint64_t now_us, wr_node_view *views) {
    if (!e || !views) return -1;
    for (uint32_t i = 0; i < e->n; i++) {
        const wr_node_track *n = &e->nodes[i];
        wr_node_view *v = &views[i];
        v->role = (wr_role)n->role;
        v->lsn = n->lsn;
        v->lsn_at_us = n->lsn_at_us;
        v->rate = n->rate;
        v->tli = n->tli;
        v->rtt_us = n->rtt_us;
        if (n->role == WR_ROLE_PRIMARY) {
            /* Writes may try a primary whose backoff is over. */
            v->up = (int)i == e->primary && !n->fenced && (n->up || now_us >= n->down_until_us);
            v->excluded = n->fenced;
            continue;
        }
        v->up = n->up && n->placed;
        int stale = n->covered_at_us == 0 || (now_us > n->covered_at_us &&
                                              now_us - n->covered_at_us > e->cfg.max_lag_us);
        v->excluded = n->excluded || n->fenced || stale;
    }
    return e->primary;
}

int wr_engine_write_target(const wr_engine *e, const char *const *names, int *node, char *msg, size_t msglen) {
    if (node) *node = -1;
    if (!e) return -1;
#define NAME(i) (names ? names[i] : e->nodes[i].name)
    if (e->conflict[0] >= 0) {
        if (msg)
            snprintf(msg, msglen,
                     "split brain: %s and %s both claim to be the primary on timeline %u; no writes until one "
                     "of them steps down",
                     NAME(e->conflict[0]), NAME(e->conflict[1]), e->top_tli);
        return -1;
    }
    if (e->primary < 0) {
        if (msg) snprintf(msg, msglen, "no node is known to be the primary");
        return -1;
    }
#undef NAME
    if (node) *node = e->primary;
    return 0;
}

uint32_t wr_engine_probes_due(const wr_engine *e, uint64_t now_us) {
    uint32_t mask = 0;
    if (!e) return 0;
    for (uint32_t i = 0; i < e->n; i++) {
        const wr_node_track *n = &e->nodes[i];
        if (!n->up && now_us < n->down_until_us) continue; /* backoff */
        uint64_t every = e->cfg.refresh_interval_us;
        /* A replica whose lag is not known yet (e.g. just after open, a
         * little behind the primary's first sample) is excluded until a
         * probe places it: probe it sooner. */
        if (n->role == WR_ROLE_REPLICA && n->covered_at_us == 0 && every > UNKNOWN_LAG_PROBE_US)
            every = UNKNOWN_LAG_PROBE_US;
        if (!n->up || !n->placed || n->probed_us == 0 || now_us >= n->probed_us + every) mask |= 1u << i;
    }
    return mask;
}

wr_node_state wr_engine_state(const wr_engine *e, int i) {
    if (!valid(e, i)) return WR_STATE_UNKNOWN;
    const wr_node_track *n = &e->nodes[i];
    if (!n->up)
        return n->role == WR_ROLE_UNKNOWN && n->last_check_unix_ms == 0 && !n->last_error[0] ? WR_STATE_UNKNOWN
                                                                                               : WR_STATE_DOWN;
    if (n->fenced) return WR_STATE_FENCED;
    if (n->role == WR_ROLE_PRIMARY) return WR_STATE_UP;
    if (n->role != WR_ROLE_REPLICA) return WR_STATE_UNKNOWN;
    if (n->excluded || !n->placed) return WR_STATE_LAGGING;
    return n->lag_bytes == 0 || n->lag_us == 0 ? WR_STATE_STREAMING : WR_STATE_CATCHING_UP;
}

void wr_engine_count(wr_engine *e, int i, wr_reason why, int failed) {
    if (!valid(e, i)) return;
    if (failed) e->nodes[i].errors++;
    else if ((unsigned)why < WR_REASON_COUNT) e->nodes[i].served[why]++;
}

size_t wr_engine_changes(wr_engine *e, int *out, size_t cap) {
    size_t k = 0;
    if (!e) return 0;
    for (uint32_t i = 0; i < e->n && k < cap; i++) {
        wr_node_state now = wr_engine_state(e, (int)i);
        if ((int)now == e->nodes[i].reported) continue;
        if (out) {
            out[3 * k] = (int)i;
            out[3 * k + 1] = e->nodes[i].reported;
            out[3 * k + 2] = (int)now;
        }
        e->nodes[i].reported = (int)now;
        k++;
    }
    return k;
}

/* ---- the probe's row ------------------------------------------------------------ */

static int parse_u64(const char *s, uint64_t *out) {
    uint64_t v = 0;
    if (!s || !*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10) return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int32_t *out) {
    if (!s) return -1;
    if (strcmp(s, "t") == 0) *out = 1;
    else if (strcmp(s, "f") == 0) *out = 0;
    else return -1;
    return 0;
}

int wr_probe_parse(const char *const values[7], wr_probe *out) {
    wr_probe p = {0};
    uint64_t v;
    if (!values || !out || parse_bool(values[0], &p.in_recovery) != 0) return -1;
    if (values[1]) {
        if (parse_u64(values[1], &v) != 0 || v > UINT32_MAX) return -1;
        p.tli = (uint32_t)v;
    }
    if (values[2] && wr_lsn_parse(values[2], &p.lsn) != 0) return -1;
    if (values[3] && wr_lsn_parse(values[3], p.in_recovery ? &p.received : &p.flushed) != 0) return -1;
    p.receiver = -1;
    if (p.in_recovery && values[4] && parse_bool(values[4], &p.receiver) != 0) return -1;
    if (values[5]) {
        if (parse_u64(values[5], &v) != 0 || v > UINT32_MAX) return -1;
        p.wal_block_size = (uint32_t)v;
    }
    if (values[6] && parse_u64(values[6], &p.wal_segment_size) != 0) return -1;
    *out = p;
    return 0;
}
