/* fuzz_engine.c — the engine driven by arbitrary events: probes with any
 * figures, failures, observations, time passing, and operations of a
 * session (wr_op_start / wr_op_next / wr_op_feed) whose every RUN and
 * SNAPSHOT step gets an arbitrary outcome; also the bare read decision
 * (wr_decide_read) on the engine's views with any timeline, and status
 * rendering.
 * Checked for every input:
 *   - every step names a node of the cluster (or -1 where allowed), a
 *     known kind, flags, reason and status, and a NUL-terminated message;
 *   - every operation ends (G8): time moves at least 1 ms a step, and the
 *     deadlines are short, so one that does not end within 20000 steps
 *     loops;
 *   - a read's decision names a node that is up when it reads a replica;
 *   - status rendering reports the length it needs and never overflows. */
#include "fuzz_util.h"
#include "walrouter_engine.h"

#define N 4
#define MS 1000ull
#define MAX_STEPS 20000

static const char *const names[N] = {"p.db:5432", "a.db:5432", "b.db:5433", "c.db:5432"};
static const char *const sqlstates[] = {"", "25006", "40001", "57014", "23505", "42P01", "08006", "25P02", "0A000"};

static wr_lsn fz_lsn(fz_bytes *b) {
    uint8_t m = fz_u8(b);
    return m & 1 ? fz_u64(b) : 1000 + (wr_lsn)(m >> 1) * 100; /* near each other often */
}

static void probe(wr_engine *e, fz_bytes *b, int i, uint64_t now) {
    uint8_t kind = fz_u8(b);
    if (kind % 5 == 0) {
        if (kind & 0x20) { /* a probe given any deadline that failed or hit it */
            uint64_t given = (uint64_t)fz_u8(b) * 50000;
            wr_engine_probe_failed(e, i, now, now + given, kind & 0x40 ? 1 : 0, now + given, fz_u32(b),
                                   "fuzz: timeout");
        } else {
            wr_engine_node_failed(e, i, now, fz_u32(b), "fuzz: refused");
        }
        return;
    }
    wr_probe p = {.in_recovery = kind % 5 != 1, .tli = fz_u8(b) % 4, .lsn = fz_lsn(b)};
    p.flushed = p.in_recovery ? 0 : p.lsn + fz_u8(b);
    p.received = p.in_recovery ? p.lsn + fz_u8(b) : 0;
    p.receiver = p.in_recovery ? (int)(fz_u8(b) % 3) - 1 : -1;
    p.wal_block_size = kind & 0x80 ? 8192 : fz_u32(b);
    p.wal_segment_size = kind & 0x40 ? 16u << 20 : fz_u64(b);
    wr_engine_probe_ok(e, i, &p, now, now + fz_u8(b) * 100, 1700000000000ll + (int64_t)(now / MS));
}

static void check_step(const wr_step *st, const uint8_t *data, size_t size) {
    FZ_REQUIRE(st->kind >= WR_STEP_RUN && st->kind <= WR_STEP_DONE);
    FZ_REQUIRE(memchr(st->msg, '\0', sizeof st->msg) != NULL);
    FZ_REQUIRE(st->reason >= 0 && st->reason < WR_REASON_COUNT);
    if (st->kind == WR_STEP_RUN || st->kind == WR_STEP_SNAPSHOT) FZ_REQUIRE(st->node >= 0 && st->node < N);
    if (st->kind == WR_STEP_PROBE) FZ_REQUIRE((st->probe_mask & ~((1u << N) - 1)) == 0);
    if (st->kind == WR_STEP_DONE) {
        FZ_REQUIRE(st->node >= -1 && st->node < N);
        FZ_REQUIRE(st->status == WR_E_OK || st->status == WR_E_CONNECT || st->status == WR_E_SQL ||
                   st->status == WR_E_UNKNOWN_OUTCOME || st->status == WR_E_NO_PRIMARY ||
                   st->status == WR_E_STATE || st->status == WR_E_INTERNAL || st->status == WR_E_TIMEOUT ||
                   st->status == WR_E_SPLIT_BRAIN || st->status == WR_E_INTERRUPTED);
    }
}

/* One operation until DONE; returns the time it ended. */
static uint64_t run_op(wr_engine *e, wr_sess *s, fz_bytes *b, uint64_t now, const uint8_t *data, size_t size) {
    wr_op op;
    int kind = fz_u8(b) % 8;
    /* Transaction steps only make sense inside one. */
    if (s->tx_node < 0 && (kind == WR_OP_TX || kind == WR_OP_COMMIT || kind == WR_OP_ROLLBACK)) kind = WR_OP_READ;
    wr_op_start(&op, (wr_op_kind)kind, now);
    for (int n = 0;; n++) {
        FZ_REQUIRE(n < MAX_STEPS);
        wr_step st;
        wr_op_next(&op, s, e, now, &st);
        check_step(&st, data, size);
        if (st.kind == WR_STEP_DONE) return now;
        uint64_t step_us = MS * (1 + fz_u8(b) % 50);
        if (st.kind == WR_STEP_WAIT) {
            now = st.deadline_us > now ? st.deadline_us : now + MS;
        } else if (st.kind == WR_STEP_PROBE) {
            for (int i = 0; i < N; i++)
                if (st.probe_mask & (1u << i)) probe(e, b, i, now);
            now += step_us;
        } else {
            char snap[64];
            wr_io io;
            memset(&io, 0, sizeof io);
            uint8_t o = fz_u8(b);
            io.outcome = o % 10;
            snprintf(io.sqlstate, sizeof io.sqlstate, "%s", sqlstates[(o >> 4) % 9]);
            io.sent_us = now;
            io.have_replay = fz_u8(b) & 1;
            io.replay = fz_lsn(b);
            io.have_insert = fz_u8(b) & 1;
            io.insert_tli = fz_u8(b) % 4;
            io.insert = fz_lsn(b);
            io.flushed = io.insert;
            io.deadline_hit = fz_u8(b) & 1;
            io.detail = "fuzz";
            if (st.kind == WR_STEP_SNAPSHOT) {
                fz_str(b, snap, 40);
                io.snapshot = snap;
            }
            now += step_us;
            wr_op_feed(&op, s, e, &io, now, fz_u32(b));
        }
        if (!b->left) now += 10 * MS; /* out of bytes: things time out */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_bytes b = {data, size};
    static wr_engine e; /* large: not on the stack */
    wr_config cfg = {.budget_us = 200 * MS, .statement_timeout_us = 500 * MS, .connect_timeout_us = 300 * MS,
                     .refresh_interval_us = 100 * MS, .choose = fz_u8(&b) & 1};
    if (wr_engine_init(&e, &cfg, names, N) != 0) abort();
    wr_sess s;
    wr_sess_init(&s, fz_u32(&b));
    uint64_t now = 1000000 * MS;
    for (int events = 0; b.left && events < 64; events++) {
        uint8_t ev = fz_u8(&b);
        int i = ev >> 4 & 3;
        switch (ev % 6) {
        case 0:
            probe(&e, &b, i, now);
            break;
        case 1:
            wr_engine_observe(&e, i, fz_u8(&b) % 4, fz_lsn(&b), fz_lsn(&b), now);
            break;
        case 2:
            now += MS * fz_u8(&b) * (ev & 0x80 ? 100 : 1);
            wr_engine_tick(&e, now);
            break;
        case 3:
        case 4:
            now = run_op(&e, &s, &b, now, data, size);
            break;
        default: {
            wr_node_view v[N];
            wr_engine_views(&e, now, v);
            wr_timeline t = s.tl;
            if (ev & 0x80) {
                t.need = fz_lsn(&b);
                t.need_tli = fz_u8(&b) % 4;
                t.last_node = (int)(fz_u8(&b) % (N + 2)) - 2;
            }
            wr_policy p = {.budget_us = 200 * MS, .retry_interval_us = 10 * MS, .seed = fz_u32(&b),
                           .choose = fz_u8(&b) & 1};
            wr_choice ch;
            wr_decide_read_into(&t, v, N, now - MS * (fz_u8(&b) % 250), now, fz_u8(&b) & 0xf, fz_u8(&b) & 1, &p,
                                &ch);
            FZ_REQUIRE(ch.action >= WR_ACT_CACHED && ch.action <= WR_ACT_PRIMARY);
            FZ_REQUIRE(ch.node >= -1 && ch.node < N);
            if (ch.action == WR_ACT_CACHED || ch.action == WR_ACT_CHECK)
                FZ_REQUIRE(ch.node >= 0 && v[ch.node].up && !v[ch.node].excluded);
            char buf[512];
            size_t cap = fz_u8(&b) * 2;
            size_t need = wr_engine_status_json(&e, names, NULL, buf, cap);
            FZ_REQUIRE(cap == 0 || strlen(buf) == (need < cap ? need : cap - 1));
            need = wr_engine_metrics_text(&e, names, NULL, buf, cap);
            FZ_REQUIRE(cap == 0 || strlen(buf) == (need < cap ? need : cap - 1));
        }
        }
    }
    return 0;
}
