/* op.c — the session engine: one operation of a session as a sequence of
 * steps. Given what happened, what runs next, where, and by when.
 *
 * Reads (G1-G4):
 *   1. A need on an older timeline than the primary's moves onto the
 *      primary's: (primary timeline, min(need, primary position)); every
 *      position on the new timeline is past whatever survived of the old.
 *   2. A need from a timeline newer than any seen: rediscover once; if it
 *      is still unknown and came from a token, clamp it to the primary.
 *   3. need_unknown (an earlier write's outcome or position is unknown):
 *      the primary, until its position settles it.
 *   4. Otherwise wr_decide_read: a cached or checked replica, a wait, or
 *      the primary. A checked replica's rows, and its errors, count only
 *      when its position covers the need. A token's need that no replica
 *      proves is clamped to the primary's current position (probed)
 *      before waiting on it.
 *   5. Moving from a replica to the primary (G2): the replica's snapshot
 *      first; the primary runs the read only behind a check that its own
 *      snapshot shows every transaction the replica showed finished (a
 *      standby can show a commit first, for the whole wait under
 *      synchronous_commit = remote_apply). While the check fails the read
 *      waits, within its budget; after that it fails (WR_E_TIMEOUT), it
 *      never goes back in time. A replica that gives no snapshot within a
 *      whole budget: the primary reads behind a check that no commit waits
 *      for a synchronous standby (the only time a commit is invisible on
 *      the primary), with the same waits.
 * The primary (G5, G7):
 *   6. Writes go to the elected primary only (nodes.c). A statement on the
 *      primary is re-sent only when it provably did not run: no connection
 *      was made, the node refused it as read-only (25006), or a cached plan
 *      was refused before execution; a BEGIN alone may be re-sent. A
 *      connection lost or silent after sending is UNKNOWN_OUTCOME, also for
 *      reads (a read on the primary may write), and sets need_unknown.
 *   7. A statement acknowledged on a timeline older than the newest one
 *      seen ran on a fenced node: UNKNOWN_OUTCOME (it may be lost).
 *   8. A write whose position could not be read leaves need_unknown.
 * Transactions (G6): every statement on the pinned node; a lost COMMIT on
 * the primary is UNKNOWN_OUTCOME with need_unknown. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "walrouter_engine.h"

/* Phases: DECIDE (next decides), RUN/SNAP (a step is out, feed expected),
 * WAIT_NEXT (feed asked for a wait: next gives it), DONE. */
enum { P_DECIDE = 0, P_RUN = 1, P_SNAP = 2, P_DONE = 3, P_WAIT_NEXT = 4 };

#define MAX_PRIMARY_ATTEMPTS 3
#define MAX_STALE_RERUNS 2
#define NAME(e, i) ((i) >= 0 && (uint32_t)(i) < (e)->n ? (e)->nodes[i].name : "?")

void wr_sess_init(wr_sess *s, uint32_t seed) {
    if (!s) return;
    memset(s, 0, sizeof *s);
    wr_timeline_init(&s->tl);
    s->seed = seed;
    s->tx_node = -1;
}

void wr_op_start(wr_op *op, wr_op_kind kind, uint64_t now_us) {
    memset(op, 0, sizeof *op);
    op->kind = (int32_t)kind;
    op->start_us = now_us;
    op->node = -1;
    op->result_node = -1;
    op->phase = P_DECIDE;
}

/* ---- steps --------------------------------------------------------------- */

static void done(wr_op *op, int status, int node, wr_reason why, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void done(wr_op *op, int status, int node, wr_reason why, const char *fmt, ...) {
    op->phase = P_DONE;
    op->status = status;
    op->result_node = node;
    op->result_reason = (int32_t)why;
    op->msg[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(op->msg, sizeof op->msg, fmt, ap);
        va_end(ap);
    }
}

static void give_done(const wr_op *op, wr_step *out) {
    memset(out, 0, sizeof *out);
    out->kind = WR_STEP_DONE;
    out->node = op->result_node;
    out->status = op->status;
    out->reason = op->result_reason;
    snprintf(out->msg, sizeof out->msg, "%s", op->msg);
}

static void give_run(wr_op *op, int node, uint32_t flags, uint64_t deadline, wr_reason why, int on_primary,
                     wr_step *out) {
    memset(out, 0, sizeof *out);
    out->kind = WR_STEP_RUN;
    out->node = node;
    out->flags = flags;
    out->deadline_us = deadline;
    out->reason = (int32_t)why;
    op->phase = P_RUN;
    op->node = node;
    op->on_primary = on_primary;
    op->pinned = (flags & WR_RUN_PINNED) != 0;
    op->run_flags = flags;
    op->deadline_us = deadline;
    op->reason = (int32_t)why;
}

static void give_probe(wr_op *op, uint32_t mask, uint64_t deadline, wr_step *out) {
    memset(out, 0, sizeof *out);
    out->kind = WR_STEP_PROBE;
    out->node = -1;
    out->probe_mask = mask;
    out->deadline_us = deadline;
    op->phase = P_DECIDE;
    op->probe_mask = 0;
}

static void give_wait(wr_op *op, uint64_t until, wr_step *out) {
    memset(out, 0, sizeof *out);
    out->kind = WR_STEP_WAIT;
    out->node = -1;
    out->deadline_us = until;
    op->phase = P_DECIDE;
}

static uint32_t all_nodes(const wr_engine *e) { return e->n >= 32 ? UINT32_MAX : (1u << e->n) - 1; }

/* Every node but `skip` that may be connected to now (not in its backoff). */
static uint32_t reachable_others(const wr_engine *e, int skip, uint64_t now) {
    uint32_t mask = 0;
    for (uint32_t i = 0; i < e->n; i++)
        if ((int)i != skip && wr_engine_may_connect(e, (int)i, now)) mask |= 1u << i;
    return mask;
}

/* A read's deadline: its budget, but never less than a quarter of it from
 * now, so a read that spent its budget waiting still gets a real attempt. */
static uint64_t read_deadline(const wr_op *op, const wr_engine *e, uint64_t now) {
    uint64_t end = op->start_us + e->cfg.budget_us, least = now + e->cfg.budget_us / 4;
    return end > least ? end : least;
}

/* ---- the primary path ------------------------------------------------------ */

/* Why there is no primary when a node claims to be one on an older timeline
 * than walrouter saw (it stays fenced: writes acknowledged on the newer one
 * may be gone from it); "" otherwise. */
static const char *fenced_claim(const wr_engine *e, char *buf, size_t len) {
    buf[0] = '\0';
    for (uint32_t i = 0; i < e->n; i++) {
        const wr_node_track *n = &e->nodes[i];
        if (n->fenced && n->tli < e->top_tli) {
            snprintf(buf, len, "; %s claims the primary on timeline %u, older than timeline %u seen before: fenced",
                     n->name, n->tli, e->top_tli);
            break;
        }
    }
    return buf;
}

static void next_primary(wr_op *op, wr_sess *s, wr_engine *e, uint64_t now, wr_step *out) {
    char msg[192];
    int p;
    if (wr_engine_write_target(e, NULL, &p, msg, sizeof msg) != 0 || !wr_engine_may_connect(e, p, now)) {
        if (e->conflict[0] >= 0) {
            done(op, WR_E_SPLIT_BRAIN, -1, WR_REASON_NONE, "%s", msg);
            give_done(op, out);
            return;
        }
        if (!op->probed) {
            op->probed = 1;
            /* The known target in its backoff: this operation needs it, so
             * it is tried now, together with every other node not in its
             * backoff (one of them may have been promoted meanwhile; only a
             * probe can tell). With none known, every node is asked. */
            give_probe(op, p >= 0 ? (1u << p) | reachable_others(e, p, now) : all_nodes(e),
                       now + e->cfg.connect_timeout_us, out);
            if (p >= 0) out->flags = WR_PROBE_FORCE;
            return;
        }
        done(op, WR_E_NO_PRIMARY, p, WR_REASON_NONE, "no primary is reachable%s%s",
             op->as_write || op->kind == WR_OP_WRITE ? "; the statement was not sent" : "",
             fenced_claim(e, msg, sizeof msg));
        give_done(op, out);
        return;
    }
    /* G2: the replica read this session made last may show commits the
     * primary does not show yet; get its snapshot first. */
    int pending = s->tl.last_node >= 0 && (uint32_t)s->tl.last_node < e->n && s->tl.last_node != p &&
                  op->kind != WR_OP_WRITE && op->kind != WR_OP_BEGIN;
    if (pending && op->snap_state == 0) {
        op->snap_state = 1;
        memset(out, 0, sizeof *out);
        out->kind = WR_STEP_SNAPSHOT;
        out->node = s->tl.last_node;
        out->deadline_us = now + e->cfg.budget_us; /* a whole budget: a fair chance */
        op->deadline_us = out->deadline_us;
        op->phase = P_SNAP;
        op->node = s->tl.last_node;
        return;
    }
    uint32_t flags = 0;
    if (op->kind != WR_OP_BEGIN) flags |= WR_RUN_INSERT_POS;
    if (op->kind == WR_OP_BEGIN || op->kind == WR_OP_BEGIN_READ_ONLY) flags |= WR_RUN_KEEP;
    if (pending && op->snap_state == 2) flags |= WR_RUN_SNAPSHOT_CHECK;
    if (pending && op->snap_state == 3) flags |= WR_RUN_SYNCREP_CHECK;
    wr_reason why = op->kind == WR_OP_WRITE ? WR_REASON_WRITE
                    : op->kind == WR_OP_BEGIN ? WR_REASON_TRANSACTION
                    : op->kind == WR_OP_READ_PRIMARY ? WR_REASON_PRIMARY_FORCED
                    : (wr_reason)op->reason;
    give_run(op, p, flags, now + e->cfg.statement_timeout_us, why, 1, out);
}

/* ---- reads ------------------------------------------------------------------- */

/* Rules 1 and 2: the need's timeline against the primary's. Returns 1 when
 * a probe step was given. */
static int settle_timeline(wr_op *op, wr_sess *s, wr_engine *e, uint64_t now, wr_step *out) {
    wr_timeline *t = &s->tl;
    int p = e->primary;
    const wr_node_track *pn = p >= 0 ? &e->nodes[p] : NULL;
    if (t->need_tli > e->top_tli && e->top_tli != 0) {
        if (!op->probed) {
            op->probed = 1;
            give_probe(op, all_nodes(e), read_deadline(op, e, now), out);
            return 1;
        }
        if (t->need_tli > e->top_tli && pn && pn->tli && pn->lsn && s->need_unproven) {
            t->need_tli = pn->tli; /* unprovable: clamp to the primary */
            t->need = pn->lsn < t->need ? pn->lsn : t->need;
            t->last_node = -1;
            s->need_unproven = 0;
        }
        return 0;
    }
    if (!pn || !pn->tli || !pn->lsn) return 0;
    if ((t->need_tli != 0 && t->need_tli < pn->tli) || (t->need_tli == 0 && t->need <= pn->lsn)) {
        if (t->need_tli != 0 && pn->lsn < t->need) t->need = pn->lsn;
        t->need_tli = pn->tli;
        if (t->last_node >= 0 && (uint32_t)t->last_node < e->n && e->nodes[t->last_node].tli != pn->tli) {
            /* That read was on the old history: whatever of it survived is
             * before the fork, which any position of the new timeline is
             * past. The primary's bounds it from above. */
            t->need = pn->lsn > t->need ? pn->lsn : t->need;
            t->last_node = -1;
        }
    }
    return 0;
}

static void next_read(wr_op *op, wr_sess *s, wr_engine *e, uint64_t now, wr_step *out) {
    if (op->primary_path || s->tl.need_unknown) {
        if (!op->primary_path) {
            op->primary_path = 1;
            op->reason = WR_REASON_PRIMARY_UNKNOWN;
        }
        next_primary(op, s, e, now, out);
        return;
    }
    if (settle_timeline(op, s, e, now, out)) return;

    wr_node_view views[WR_ENGINE_MAX_NODES];
    wr_engine_views(e, now, views);
    wr_policy pol = {.budget_us = e->cfg.budget_us, .retry_interval_us = e->cfg.retry_interval_us,
                     .seed = s->seed, .choose = e->cfg.choose};
    wr_choice ch = wr_decide_read(&s->tl, views, e->n, op->start_us, now, op->tried, op->waited, &pol);

    if (s->need_unproven &&
        (ch.action == WR_ACT_WAIT || (ch.action == WR_ACT_PRIMARY && ch.reason != WR_REASON_PRIMARY_NO_REPLICA))) {
        /* No replica proves the token's need: it may lie beyond the primary
         * (forged, or from before a failover). Clamp it to a fresh primary
         * position, then decide again. */
        int p = e->primary;
        if (p >= 0 && !op->probed && wr_engine_may_connect(e, p, now)) {
            op->probed = 1;
            give_probe(op, 1u << p, read_deadline(op, e, now), out);
            return;
        }
        s->need_unproven = 0;
        const wr_node_track *pn = p >= 0 ? &e->nodes[p] : NULL;
        if (pn && pn->up && pn->lsn && s->tl.need > pn->lsn &&
            (s->tl.need_tli == 0 || s->tl.need_tli == pn->tli)) {
            s->tl.need = pn->lsn; /* beyond the primary: nothing can prove more */
            if (s->tl.need_tli == 0) s->tl.need_tli = pn->tli;
            op->tried = 0; /* replicas behind the old need may serve the new one */
        }
        next_read(op, s, e, now, out);
        return;
    }
    switch (ch.action) {
    case WR_ACT_CACHED:
    case WR_ACT_CHECK: {
        uint32_t flags = ch.action == WR_ACT_CHECK ? WR_RUN_CHECK_REPLAY : 0;
        if (op->kind == WR_OP_BEGIN_READ_ONLY) flags |= WR_RUN_KEEP;
        op->check_need = ch.need;
        op->check_tli = s->tl.need_tli;
        op->cached_lsn = views[ch.node].lsn;
        give_run(op, ch.node, flags, read_deadline(op, e, now), ch.reason, 0, out);
        return;
    }
    case WR_ACT_WAIT:
        op->waited = 1;
        op->tried = 0;
        give_wait(op, now + ch.wait_us, out);
        return;
    case WR_ACT_PRIMARY:
    default:
        op->primary_path = 1;
        op->reason = (int32_t)ch.reason;
        next_primary(op, s, e, now, out);
        return;
    }
}

/* ---- transactions ------------------------------------------------------------- */

static void next_tx(wr_op *op, wr_sess *s, wr_engine *e, uint64_t now, wr_step *out) {
    if (s->tx_node < 0) {
        if (op->kind == WR_OP_ROLLBACK) done(op, WR_E_OK, -1, WR_REASON_NONE, NULL);
        else done(op, WR_E_STATE, -1, WR_REASON_NONE, "no transaction is open");
        give_done(op, out);
        return;
    }
    uint32_t flags = WR_RUN_PINNED;
    if (op->kind == WR_OP_COMMIT && s->tx_primary) flags |= WR_RUN_INSERT_POS;
    give_run(op, s->tx_node, flags, now + e->cfg.statement_timeout_us, WR_REASON_TRANSACTION, s->tx_primary, out);
}

static void next_step(wr_op *op, wr_sess *s, wr_engine *e, uint64_t now_us, wr_step *out);

void wr_op_next(wr_op *op, wr_sess *s, wr_engine *e, uint64_t now_us, wr_step *out) {
    if (!op || !s || !e || !out) return;
    next_step(op, s, e, now_us, out);
    if (out->kind == WR_STEP_RUN || out->kind == WR_STEP_SNAPSHOT) op->given_us = now_us;
}

static void next_step(wr_op *op, wr_sess *s, wr_engine *e, uint64_t now_us, wr_step *out) {
    if (op->phase == P_DONE) {
        give_done(op, out);
        return;
    }
    if (op->phase == P_WAIT_NEXT) {
        give_wait(op, op->deadline_us, out);
        return;
    }
    if (op->probe_mask) {
        give_probe(op, op->probe_mask,
                   op->as_write || op->kind == WR_OP_WRITE ? now_us + e->cfg.connect_timeout_us
                                                           : read_deadline(op, e, now_us),
                   out);
        return;
    }
    op->phase = P_DECIDE; /* also when asked again without a feed: decide anew */
    int in_tx = s->tx_node >= 0;
    switch ((wr_op_kind)op->kind) {
    case WR_OP_READ:
    case WR_OP_READ_PRIMARY:
    case WR_OP_WRITE:
        if (in_tx) {
            next_tx(op, s, e, now_us, out);
            return;
        }
        if (op->kind == WR_OP_READ) next_read(op, s, e, now_us, out);
        else {
            if (op->kind == WR_OP_WRITE) op->as_write = 1;
            next_primary(op, s, e, now_us, out);
        }
        return;
    case WR_OP_BEGIN:
    case WR_OP_BEGIN_READ_ONLY:
        if (in_tx) {
            done(op, WR_E_STATE, -1, WR_REASON_NONE, "a transaction is already open");
            give_done(op, out);
            return;
        }
        if (op->kind == WR_OP_BEGIN) next_primary(op, s, e, now_us, out);
        else next_read(op, s, e, now_us, out);
        return;
    case WR_OP_TX:
    case WR_OP_COMMIT:
    case WR_OP_ROLLBACK:
        if (op->kind == WR_OP_TX && !in_tx) {
            done(op, WR_E_STATE, -1, WR_REASON_NONE, "no transaction is open");
            give_done(op, out);
            return;
        }
        next_tx(op, s, e, now_us, out);
        return;
    }
    done(op, WR_E_INTERNAL, -1, WR_REASON_NONE, "unknown operation %d", op->kind);
    give_done(op, out);
}

/* ---- outcomes ------------------------------------------------------------------ */

static const char *detail(const wr_io *io) { return io->detail && io->detail[0] ? io->detail : "no detail"; }

static void tx_close(wr_sess *s) {
    s->tx_node = -1;
    s->tx_primary = 0;
    s->tx_lsn = 0;
    s->tx_tli = 0;
}

/* What a statement inside a transaction (or its end) came back with. */
static void feed_tx(wr_op *op, wr_sess *s, wr_engine *e, const wr_io *io, uint64_t now, uint32_t rand) {
    int node = op->node;
    int commit = op->kind == WR_OP_COMMIT, end = commit || op->kind == WR_OP_ROLLBACK;
    int primary = s->tx_primary;
    switch ((wr_io_outcome)io->outcome) {
    case WR_IO_OK:
    case WR_IO_SQL_ERROR:
        if (end) {
            if (commit && primary) {
                if (io->have_insert) wr_timeline_wrote_at(&s->tl, io->insert_tli,
                                                          wr_lsn_record_end(io->insert, e->wal_block_size,
                                                                            e->wal_segment_size));
                else if (io->outcome == WR_IO_OK) s->tl.need_unknown = 1; /* committed, position unread */
            } else if (!primary) {
                wr_timeline_read_replica(&s->tl, node, s->tx_lsn, now);
            }
            tx_close(s);
        }
        if (io->outcome == WR_IO_OK) {
            wr_engine_count(e, node, WR_REASON_TRANSACTION, 0);
            done(op, WR_E_OK, node, WR_REASON_TRANSACTION, NULL);
        } else {
            wr_engine_count(e, node, WR_REASON_NONE, 1);
            done(op, WR_E_SQL, node, WR_REASON_TRANSACTION, "SQLSTATE %s", io->sqlstate);
        }
        return;
    case WR_IO_STALE:
        if (op->stale++ < MAX_STALE_RERUNS) {
            op->phase = P_DECIDE;
            return;
        }
        done(op, WR_E_SQL, node, WR_REASON_TRANSACTION, "a cached statement went stale again");
        return;
    case WR_IO_CANCELED:
        if (!commit) { /* the statement failed; the transaction stays open, aborted */
            wr_engine_count(e, node, WR_REASON_NONE, 1);
            done(op, WR_E_TIMEOUT, node, WR_REASON_TRANSACTION,
                 "canceled after the statement timeout on %s; the transaction is aborted", NAME(e, node));
            if (end) tx_close(s);
            return;
        }
        /* a canceled COMMIT may have committed locally */
        __attribute__((fallthrough));
    case WR_IO_NOT_SENT:
    case WR_IO_LOST:
    case WR_IO_TIMEOUT:
    case WR_IO_CHECK_FAILED:
    case WR_IO_BUSY:
    default:
        if (io->outcome != WR_IO_CANCELED) wr_engine_node_failed(e, node, now, rand, detail(io));
        tx_close(s);
        if (op->kind == WR_OP_ROLLBACK) {
            done(op, WR_E_OK, node, WR_REASON_TRANSACTION, NULL); /* a lost connection rolls back */
        } else if (commit && primary && io->outcome != WR_IO_NOT_SENT) {
            s->tl.need_unknown = 1;
            done(op, WR_E_UNKNOWN_OUTCOME, node, WR_REASON_TRANSACTION,
                 "connection lost or silent during COMMIT on %s (it may or may not have committed): %s",
                 NAME(e, node), detail(io));
        } else {
            done(op, io->outcome == WR_IO_TIMEOUT ? WR_E_TIMEOUT : WR_E_CONNECT, node, WR_REASON_TRANSACTION,
                 "connection lost inside a transaction on %s (it was rolled back): %s", NAME(e, node), detail(io));
        }
        return;
    }
}

/* A statement on the primary came back. */
static void feed_primary(wr_op *op, wr_sess *s, wr_engine *e, const wr_io *io, uint64_t now, uint32_t rand) {
    int p = op->node;
    int begin = op->kind == WR_OP_BEGIN || op->kind == WR_OP_BEGIN_READ_ONLY;
    switch ((wr_io_outcome)io->outcome) {
    case WR_IO_OK: {
        if (io->have_insert && io->insert_tli != 0 && io->insert_tli < e->top_tli) {
            /* Rule 7: acknowledged by a node on an old timeline. */
            s->tl.need_unknown = 1;
            wr_engine_count(e, p, WR_REASON_NONE, 1);
            done(op, WR_E_UNKNOWN_OUTCOME, p, (wr_reason)op->reason,
                 "%s acknowledged the statement on timeline %u, but timeline %u exists: it may be lost",
                 NAME(e, p), io->insert_tli, e->top_tli);
            return;
        }
        wr_lsn lsn = 0;
        if (io->have_insert) {
            lsn = wr_lsn_record_end(io->insert, e->wal_block_size, e->wal_segment_size);
            wr_timeline_wrote_at(&s->tl, io->insert_tli, lsn);
        } else if (!begin) {
            s->tl.need_unknown = 1; /* rule 8 */
        }
        if (begin) {
            s->tx_node = p;
            s->tx_primary = 1;
        }
        wr_engine_count(e, p, (wr_reason)op->reason, 0);
        done(op, WR_E_OK, p, (wr_reason)op->reason, NULL);
        op->result_lsn = lsn;
        return;
    }
    case WR_IO_SQL_ERROR:
        if (strcmp(io->sqlstate, "25006") == 0 && op->attempts + 1 < MAX_PRIMARY_ATTEMPTS) {
            /* Read-only: it is no primary any more, and nothing ran. */
            op->attempts++;
            op->probed = 1;
            op->phase = P_DECIDE;
            op->probe_mask = all_nodes(e);
            return;
        }
        wr_engine_count(e, p, WR_REASON_NONE, 1);
        done(op, WR_E_SQL, p, (wr_reason)op->reason, "SQLSTATE %s", io->sqlstate);
        return;
    case WR_IO_STALE:
        if (op->stale++ < MAX_STALE_RERUNS) {
            op->phase = P_DECIDE;
            return;
        }
        done(op, WR_E_SQL, p, (wr_reason)op->reason, "a cached statement went stale again");
        return;
    case WR_IO_CHECK_FAILED:
        /* Rule 5: the primary does not show yet what the replica showed. */
        if (now < op->start_us + e->cfg.budget_us) {
            op->phase = P_WAIT_NEXT;
            op->deadline_us = now + e->cfg.retry_interval_us;
            op->waited = 1;
            return;
        }
        done(op, WR_E_TIMEOUT, p, (wr_reason)op->reason,
             "the primary %s does not show yet a transaction this session already saw on replica %s "
             "(a synchronous commit waiting?); not read, to never go back in time",
             NAME(e, p), NAME(e, s->tl.last_node));
        return;
    case WR_IO_BUSY:
        done(op, WR_E_TIMEOUT, p, (wr_reason)op->reason,
             "no free connection to %s before the deadline (pool_max reached); nothing was sent", NAME(e, p));
        return;
    case WR_IO_CANCELED:
        wr_engine_count(e, p, WR_REASON_NONE, 1);
        done(op, WR_E_TIMEOUT, p, (wr_reason)op->reason,
             "canceled on %s after the statement timeout; the server confirmed it did not complete", NAME(e, p));
        return;
    case WR_IO_NOT_SENT:
        wr_engine_node_failed(e, p, now, rand, detail(io));
        if (++op->attempts < MAX_PRIMARY_ATTEMPTS) {
            if (!op->probed) {
                op->probed = 1;
                op->probe_mask = all_nodes(e);
            }
            op->phase = P_DECIDE;
            return;
        }
        done(op, WR_E_NO_PRIMARY, p, WR_REASON_NONE, "no primary is reachable%s: %s",
             begin ? "" : "; the statement was not sent", detail(io));
        return;
    case WR_IO_LOST:
    case WR_IO_TIMEOUT:
    default:
        wr_engine_node_failed(e, p, now, rand, detail(io));
        if (begin && ++op->attempts < MAX_PRIMARY_ATTEMPTS) { /* a BEGIN alone changes nothing */
            op->phase = P_DECIDE;
            return;
        }
        if (begin) {
            done(op, WR_E_CONNECT, p, WR_REASON_TRANSACTION, "could not begin a transaction: %s", detail(io));
            return;
        }
        s->tl.need_unknown = 1;
        done(op, WR_E_UNKNOWN_OUTCOME, p, (wr_reason)op->reason,
             io->outcome == WR_IO_TIMEOUT
                 ? "no answer from %s within the deadline; a cancel was sent (the statement may or may not "
                   "have run): %s"
                 : "connection to %s lost while the statement was in flight (it may or may not have run): %s",
             NAME(e, p), detail(io));
        return;
    }
}

/* A replica read's RUN or SNAPSHOT on node i failed (not sent, lost, timed
 * out). The node is marked down (with its backoff) unless all it missed was
 * a deadline that left it less than half of the read's budget, counted from
 * when it had the statement (after a connect the step made) or else from
 * when the step was given: a node is blamed only for a fair chance. A
 * connect or login that took the whole budget does count: on a machine too
 * loaded to log in within a read's budget, a replica is best left alone
 * until a probe finds it again (keeping it in play costs every read a
 * failed login, see docs/bench.md). */
static void blame(wr_engine *e, const wr_op *op, int i, const wr_io *io, uint64_t now, uint32_t rand) {
    uint64_t from = io->sent_us > op->given_us ? io->sent_us : op->given_us;
    uint64_t given = op->deadline_us > from ? op->deadline_us - from : 0;
    if (!io->deadline_hit || given >= e->cfg.budget_us / 2) wr_engine_node_failed(e, i, now, rand, detail(io));
}

/* A read on a replica came back. */
static void feed_replica(wr_op *op, wr_sess *s, wr_engine *e, const wr_io *io, uint64_t now, uint32_t rand) {
    int r = op->node;
    switch ((wr_io_outcome)io->outcome) {
    case WR_IO_OK: {
        wr_lsn seen = op->cached_lsn;
        if (io->have_replay) seen = io->replay;
        int checked = io->have_replay;
        if ((op->run_flags & WR_RUN_CHECK_REPLAY) && !checked) {
            /* No replay position: it is no replica any more. Rows dropped. */
            op->tried |= 1u << r;
            op->probe_mask |= 1u << r;
            op->phase = P_DECIDE;
            return;
        }
        if (checked && !wr_pos_covers(e->nodes[r].tli, io->replay, op->check_tli, op->check_need)) {
            op->tried |= 1u << r; /* behind: the rows were discarded */
            op->phase = P_DECIDE;
            return;
        }
        if (op->kind == WR_OP_BEGIN_READ_ONLY) {
            s->tx_node = r;
            s->tx_primary = 0;
            s->tx_lsn = seen;
            s->tx_tli = e->nodes[r].tli;
        } else {
            wr_timeline_read_replica(&s->tl, r, seen, now);
        }
        wr_engine_count(e, r, (wr_reason)op->reason, 0);
        done(op, WR_E_OK, r, (wr_reason)op->reason, NULL);
        op->result_lsn = seen;
        return;
    }
    case WR_IO_SQL_ERROR:
        if (strcmp(io->sqlstate, "25006") == 0) { /* a write after all: the primary, as one */
            op->primary_path = 1;
            op->as_write = 1;
            op->reason = WR_REASON_PRIMARY_READ_ONLY;
            op->phase = P_DECIDE;
            return;
        }
        if ((op->run_flags & WR_RUN_CHECK_REPLAY) &&
            (!io->have_replay || !wr_pos_covers(e->nodes[r].tli, io->replay, op->check_tli, op->check_need))) {
            /* An error is a result too: from a replica behind the need (or
             * no replica any more) it may come from the past (a table not
             * created yet: 42P01); discarded like rows (G1, G2). */
            op->tried |= 1u << r;
            if (!io->have_replay) op->probe_mask |= 1u << r;
            op->phase = P_DECIDE;
            return;
        }
        wr_engine_count(e, r, WR_REASON_NONE, 1);
        done(op, WR_E_SQL, r, (wr_reason)op->reason, "SQLSTATE %s", io->sqlstate);
        return;
    case WR_IO_STALE:
        if (op->stale++ < MAX_STALE_RERUNS) {
            op->phase = P_DECIDE;
            return;
        }
        done(op, WR_E_SQL, r, (wr_reason)op->reason, "a cached statement went stale again");
        return;
    case WR_IO_CANCELED: /* past the read's budget; the node answers: try elsewhere */
    case WR_IO_BUSY:     /* no free connection there: try elsewhere */
        op->tried |= 1u << r;
        op->phase = P_DECIDE;
        return;
    case WR_IO_NOT_SENT:
    case WR_IO_LOST:
    case WR_IO_TIMEOUT:
    case WR_IO_CHECK_FAILED:
    default:
        /* A replica cannot write: the read moves on, and the node is
         * blamed only for a fair chance. */
        blame(e, op, r, io, now, rand);
        op->tried |= 1u << r;
        op->phase = P_DECIDE;
        return;
    }
}

/* The caller asked to stop. Nothing is retried. On the primary, a statement
 * the server did not confirm canceled may have run (need_unknown); in a
 * transaction whose connection was dropped, the transaction is gone. */
static void feed_interrupted(wr_op *op, wr_sess *s, wr_engine *e, const wr_io *io) {
    int confirmed = strcmp(io->sqlstate, "57014") == 0;
    int node = op->node;
    if (op->pinned) {
        int primary = s->tx_primary, end = op->kind == WR_OP_COMMIT || op->kind == WR_OP_ROLLBACK;
        if (op->kind == WR_OP_COMMIT && primary && !confirmed) s->tl.need_unknown = 1;
        if (end || !confirmed) tx_close(s); /* a dropped connection ends the transaction */
    } else if (op->on_primary && !confirmed && op->kind != WR_OP_BEGIN) {
        s->tl.need_unknown = 1;
    }
    done(op, WR_E_INTERRUPTED, node, (wr_reason)op->reason,
         confirmed ? "interrupted: the statement was canceled on %s"
                   : "interrupted: a cancel was sent to %s; the statement may or may not have run",
         NAME(e, node));
}

void wr_op_feed(wr_op *op, wr_sess *s, wr_engine *e, const wr_io *io, uint64_t now_us, uint32_t rand) {
    if (!op || !s || !e || !io || op->node < 0 || (uint32_t)op->node >= e->n) return;
    int node = op->node;
    if (op->phase == P_SNAP) {
        if (io->outcome == WR_IO_OK && io->snapshot && strlen(io->snapshot) < sizeof op->snapshot) {
            snprintf(op->snapshot, sizeof op->snapshot, "%s", io->snapshot);
            op->snap_state = 2;
        } else {
            op->snap_state = 3;
            if (io->outcome == WR_IO_NOT_SENT || io->outcome == WR_IO_LOST || io->outcome == WR_IO_TIMEOUT)
                blame(e, op, node, io, now_us, rand);
        }
        op->phase = P_DECIDE;
        return;
    }
    if (op->phase != P_RUN) return;
    /* Positions first: they hold whatever the statement did. */
    if (io->have_replay && !op->on_primary)
        wr_engine_observe(e, node, e->nodes[node].tli, io->replay, 0, io->sent_us);
    if (io->have_insert)
        wr_engine_observe(e, node, io->insert_tli,
                          wr_lsn_record_end(io->insert, e->wal_block_size, e->wal_segment_size), io->flushed,
                          io->sent_us);
    if (io->outcome == WR_IO_INTERRUPTED) {
        feed_interrupted(op, s, e, io);
        return;
    }
    if (op->pinned)
        feed_tx(op, s, e, io, now_us, rand);
    else if (op->on_primary)
        feed_primary(op, s, e, io, now_us, rand);
    else
        feed_replica(op, s, e, io, now_us, rand);
}
