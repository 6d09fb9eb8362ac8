/* names.c — short stable names of the public enums: log fields, metric
 * labels and the bindings' error codes. Never NULL; "unknown" for a value
 * this build does not know (enums only grow, so a newer caller may pass one). */
#include "walrouter_engine.h"

#define NAME_OF(table, v) \
    ((unsigned)(v) < sizeof(table) / sizeof(table)[0] ? (table)[(unsigned)(v)] : "unknown")

const char *wr_reason_name(wr_reason r) {
    static const char *const names[] = {
        [WR_REASON_NONE] = "none",
        [WR_REASON_REPLICA_CACHED] = "replica_cached",
        [WR_REASON_REPLICA_CHECKED] = "replica_checked",
        [WR_REASON_REPLICA_OTHER] = "replica_other",
        [WR_REASON_REPLICA_WAITED] = "replica_waited",
        [WR_REASON_PRIMARY_BUDGET] = "primary_budget",
        [WR_REASON_PRIMARY_LAGGING] = "primary_lagging",
        [WR_REASON_PRIMARY_NO_REPLICA] = "primary_no_replica",
        [WR_REASON_PRIMARY_FORCED] = "primary_forced",
        [WR_REASON_WRITE] = "write",
        [WR_REASON_TRANSACTION] = "transaction",
        [WR_REASON_PRIMARY_READ_ONLY] = "primary_read_only",
        [WR_REASON_PRIMARY_UNKNOWN] = "primary_unknown",
    };
    _Static_assert(sizeof names / sizeof names[0] == WR_REASON_COUNT, "a reason has no name");
    return NAME_OF(names, r);
}

const char *wr_node_state_name(wr_node_state s) {
    static const char *const names[] = {
        [WR_STATE_UNKNOWN] = "unknown",
        [WR_STATE_UP] = "up",
        [WR_STATE_STREAMING] = "streaming",
        [WR_STATE_CATCHING_UP] = "catching_up",
        [WR_STATE_LAGGING] = "lagging",
        [WR_STATE_DOWN] = "down",
        [WR_STATE_FENCED] = "fenced",
    };
    return NAME_OF(names, s);
}
