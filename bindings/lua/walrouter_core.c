/*
 * walrouter_core.c — the Lua 5.4 C module `walrouter.core`: the thin glue
 * between libwalrouter and the pure-Lua layer (lua/walrouter.lua).
 *
 * It only converts values and maps errors; every routing rule lives in the C
 * core. Users `require "walrouter"`, which adds the friendly methods
 * (transaction, status) to the method tables exported here.
 *
 *   core.open(dsn [, opts])      -> cluster | nil, err
 *   cluster:session([token])     -> session | nil, err
 *   cluster:node_status(i)       -> record of node i (1-based)
 *   session:query(sql, ...)      -> rows | nil, err
 *   session:exec(sql, ...)       -> affected, rows | nil, err
 *   session:stream_open(sql, ...), session:stream_open_primary(sql, ...)
 *                                -> stream | nil, err
 *   stream:fetch(n)              -> rows | false (no more) | nil, err
 *   stream:close()               -> true | nil, err
 *   cluster:status_json(), cluster:metrics()  -> text | nil, err
 *   cluster:poll_events()        -> array of pending state changes (removed)
 *   cluster:on_event(fn|nil), cluster:event_handler()
 *   cluster:start_refresher(ms) -> true | nil, err; cluster:stop_refresher()
 *
 * Handles are full userdata checked with luaL_checkudata; a method on a
 * closed handle raises. One idempotent close serves close(), __close and
 * __gc. A session keeps its cluster alive through its user value; closing a
 * cluster closes its sessions first (they are listed in a weak table in the
 * cluster's user value 1), so no session ever outlives its wr_cluster.
 *
 * Events: the C core queues node state changes; this module never installs
 * a C callback (it could run on the refresher's thread, where no Lua may
 * run). A cluster's Lua handler is kept in its user value 2. After each call
 * that may notice a change (query, query_primary, exec, begin, commit,
 * rollback, refresh, status_json, metrics) on a cluster with a handler, the
 * glue calls the Lua layer's hooks.deliver(cluster, handler), which drains
 * the queue into the handler on the caller's thread.
 *
 * Module state (the NULL sentinel, the formatters the Lua layer installs)
 * lives in one table, kept in the registry and shared as upvalue 1 of every
 * function: no C globals, with one exception, SIGINT (see "interruption"):
 * a signal handler has no Lua state to reach, and a signal's disposition
 * belongs to the process, not to a Lua state.
 *
 * Strings cross into C as NUL-terminated text, so SQL text, DSNs, option
 * values and parameters holding a zero byte are refused (raised: misuse), and
 * so are tokens (nil, err: a token is untrusted input).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "walrouter.h"

#define CLUSTER_MT "walrouter.cluster"
#define SESSION_MT "walrouter.session"
#define STREAM_MT "walrouter.stream"
#define ERROR_MT "walrouter.error"
#define NULL_MT "walrouter.null"
#define STATE lua_upvalueindex(1)
#define STATE_KEY "walrouter.core.state" /* registry field of the state table */

#define MAX_PARAMS 65535
#define STACK_PARAMS 32

/* PostgreSQL type OIDs converted to Lua types (pg_type.dat). */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_OID 26
#define OID_FLOAT4 700
#define OID_FLOAT8 701

typedef struct lcluster {
    wr_cluster *c;  /* NULL once closed */
    int has_handler; /* user value 2 holds an event handler */
} lcluster;

typedef struct lstream lstream;

typedef struct lsession {
    wr_session *s;       /* NULL once closed */
    wr_cluster *c;       /* its cluster, valid while s is */
    lcluster *owner;     /* its cluster's handle (kept alive by user value 1) */
    wr_result *pending;  /* a result being converted (freed if that raises) */
    lstream *stream;     /* its open stream, if any (at most one: a stream
                            holds the session in a transaction) */
    int orphaned;        /* closed because its cluster was closed */
} lsession;

/* A streamed read: the C stream runs in its session's transaction, so it is
 * closed before its session is freed (session_release closes it). User value
 * 1 keeps the session's userdata, hence this pointer, alive. */
struct lstream {
    wr_stream *st;       /* NULL once closed */
    lsession *ls;
};

/* ---- handles --------------------------------------------------------------- */

static lcluster *check_cluster(lua_State *L, int idx) {
    lcluster *lc = luaL_checkudata(L, idx, CLUSTER_MT);
    if (!lc->c) luaL_error(L, "attempt to use a closed walrouter cluster");
    return lc;
}

static lsession *check_session(lua_State *L, int idx) {
    lsession *ls = luaL_checkudata(L, idx, SESSION_MT);
    if (!ls->s)
        luaL_error(L, ls->orphaned ? "attempt to use a walrouter session whose cluster was closed"
                                   : "attempt to use a closed walrouter session");
    return ls;
}

static void stream_release(lstream *lst, wr_status *st) {
    wr_status rc = wr_stream_close(lst->st); /* ends the stream's transaction */
    if (st) *st = rc;
    lst->st = NULL;
    if (lst->ls && lst->ls->stream == lst) lst->ls->stream = NULL;
}

static void session_release(lsession *ls) {
    if (ls->stream) { /* closing the session rolls its transaction back */
        if (wr_session_in_transaction(ls->s)) wr_rollback(ls->s);
        stream_release(ls->stream, NULL);
    }
    wr_result_free(ls->pending);
    ls->pending = NULL;
    wr_session_free(ls->s); /* rolls back an open transaction */
    ls->s = NULL;
    ls->c = NULL;
    ls->owner = NULL;
}

/* ---- events ---------------------------------------------------------------- */

/* After a call that may have noticed a node state change: when the cluster
 * handle at `cluster` has an event handler and the Lua layer installed
 * hooks.deliver, calls hooks.deliver(cluster, handler), which may raise.
 * The call's nres results stay on top of the stack; returns nres. */
static int deliver_events(lua_State *L, lcluster *lc, int cluster, int nres) {
    if (!lc || !lc->has_handler || !lc->c) return nres;
    luaL_checkstack(L, 3, "walrouter: event delivery");
    if (lua_getfield(L, STATE, "deliver") != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return nres;
    }
    lua_pushvalue(L, cluster);
    lua_getiuservalue(L, cluster, 2);
    lua_call(L, 2, 0);
    return nres;
}

/* The same after a call of the session at stack index `session`: its
 * cluster is its user value 1. */
static int session_deliver_at(lua_State *L, lsession *ls, int session, int nres) {
    lcluster *lc = ls->owner;
    if (!lc || !lc->has_handler) return nres;
    lua_getiuservalue(L, session, 1);
    int cluster = lua_gettop(L);
    deliver_events(L, lc, cluster, 0);
    lua_remove(L, cluster);
    return nres;
}

/* session_deliver_at for a session method (the session at index 1). */
static int session_deliver(lua_State *L, lsession *ls, int nres) {
    return session_deliver_at(L, ls, 1, nres);
}

/* ---- errors ---------------------------------------------------------------- */

/* Pushes an error object: {message, code, sqlstate?, node?}. */
static void push_error(lua_State *L, wr_status st, const char *msg, const char *sqlstate, const char *node) {
    lua_createtable(L, 0, 4);
    lua_pushstring(L, msg && *msg ? msg : wr_status_name(st));
    lua_setfield(L, -2, "message");
    lua_pushstring(L, wr_status_name(st));
    lua_setfield(L, -2, "code");
    if (sqlstate && *sqlstate) {
        lua_pushstring(L, sqlstate);
        lua_setfield(L, -2, "sqlstate");
    }
    if (node && *node) {
        lua_pushstring(L, node);
        lua_setfield(L, -2, "node");
    }
    luaL_setmetatable(L, ERROR_MT);
}

/* Returns nil, err for the last failure of the session. */
static int session_fail(lua_State *L, lsession *ls, wr_status st) {
    int node = wr_session_errnode(ls->s);
    lua_pushnil(L);
    push_error(L, st, wr_session_errmsg(ls->s), wr_session_sqlstate(ls->s),
               node >= 0 ? wr_cluster_node_name(ls->c, (size_t)node) : NULL);
    return 2;
}

static int error_tostring(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getfield(L, 1, "message") == LUA_TSTRING) return 1;
    if (lua_getfield(L, 1, "code") == LUA_TSTRING) return 1;
    lua_pushliteral(L, "walrouter error");
    return 1;
}

/* ---- interruption ----------------------------------------------------------
 * Ctrl-C during a call that waits on the network (query, exec, begin,
 * commit, rollback, a stream's open, fetch and close): for the length of the
 * call a SIGINT handler of ours is installed (unless SIGINT is ignored). It
 * only sets a flag; the session's interrupt function (polled by the core at
 * least every 50 ms, and at once when the signal cuts a poll() short)
 * returns it, the core sends the server a cancel request, and the call
 * returns nil, err with err.code "interrupted". Then the previous handler is
 * put back and the signal raised again, so it still does what it did: the
 * lua5.4 interpreter's handler raises "interrupted!", the default action ends
 * the process.
 *
 * The one exception to "no C globals": a signal handler has no Lua state to
 * reach, and a signal's disposition is process-wide, so the flag, the saved
 * handler and the count of calls in progress (calls from several threads
 * install the handler once and restore it once) are static, the count and
 * the saved handler under a mutex. */
static volatile sig_atomic_t sigint_seen;
static pthread_mutex_t sigint_mu = PTHREAD_MUTEX_INITIALIZER;
static int sigint_calls;            /* calls in progress */
static int sigint_ours;             /* our handler is installed */
static struct sigaction sigint_prev; /* the handler before it */

static void on_sigint(int sig) {
    (void)sig;
    sigint_seen = 1;
}

/* The session's interrupt function. */
static int interrupt_requested(void *arg) {
    (void)arg;
    return sigint_seen;
}

static void sigint_enter(void) {
    pthread_mutex_lock(&sigint_mu);
    if (sigint_calls++ == 0) {
        sigint_ours = 0;
        if (sigaction(SIGINT, NULL, &sigint_prev) == 0 &&
            ((sigint_prev.sa_flags & SA_SIGINFO) || sigint_prev.sa_handler != SIG_IGN)) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_sigint;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = SA_RESTART; /* poll() is still cut short: it is never restarted */
            sigint_seen = 0;
            sigint_ours = sigaction(SIGINT, &sa, NULL) == 0;
        }
    }
    pthread_mutex_unlock(&sigint_mu);
}

/* Ends a call begun with sigint_enter. The last call in progress puts the
 * previous handler back and, if SIGINT came meanwhile, raises it again. */
static void sigint_leave(void) {
    int again = 0;
    pthread_mutex_lock(&sigint_mu);
    if (--sigint_calls == 0 && sigint_ours) {
        sigaction(SIGINT, &sigint_prev, NULL);
        sigint_ours = 0;
        again = sigint_seen;
        sigint_seen = 0;
    }
    pthread_mutex_unlock(&sigint_mu);
    if (again) raise(SIGINT);
}

/* ---- options --------------------------------------------------------------- */

/* Fills *opt from the table at idx (nil: defaults). A key that is not a
 * string, a value of the wrong type, an unknown key or a value the core
 * rejects raises an argument error naming the key. */
static void read_options(lua_State *L, int idx, wr_options *opt) {
    memset(opt, 0, sizeof *opt);
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, idx, lua_pushfstring(L, "option names must be strings, got a %s",
                                                  luaL_typename(L, -2)));
        const char *key = lua_tostring(L, -2);
        const char *value;
        char num[32];
        switch (lua_type(L, -1)) {
        case LUA_TBOOLEAN:
            value = lua_toboolean(L, -1) ? "true" : "false";
            break;
        case LUA_TNUMBER: {
            int isint;
            lua_Integer i = lua_tointegerx(L, -1, &isint); /* 200.0 counts as 200 */
            if (isint) snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)i);
            else snprintf(num, sizeof num, "%.17g", (double)lua_tonumber(L, -1));
            value = num;
            break;
        }
        case LUA_TSTRING: {
            size_t len;
            value = lua_tolstring(L, -1, &len);
            if (strlen(value) != len)
                luaL_argerror(L, idx, lua_pushfstring(L, "option %s: the value contains a zero byte (NUL)", key));
            break;
        }
        default:
            luaL_argerror(L, idx, lua_pushfstring(L, "option %s: expected a string, number or boolean, got a %s",
                                                  key, luaL_typename(L, -1)));
            return;
        }
        char err[160];
        if (wr_options_set(opt, key, value, err, sizeof err) != WR_OK) luaL_argerror(L, idx, lua_pushstring(L, err));
        lua_pop(L, 1);
    }
}

/* ---- parameters ------------------------------------------------------------ */

/* The string argument at idx (a string, not a number) as C text; raises
 * when it holds a zero byte, where C would cut it short: SQL text that ran
 * as its prefix could do what it did not say ("... WHERE id = 1\0 AND
 * false"). */
static const char *check_text(lua_State *L, int idx, const char *what) {
    size_t len;
    luaL_checktype(L, idx, LUA_TSTRING);
    const char *s = lua_tolstring(L, idx, &len);
    if (strlen(s) != len) luaL_argerror(L, idx, lua_pushfstring(L, "%s contains a zero byte (NUL)", what));
    return s;
}

/* Shortest text that reads back as the same double. */
static void format_double(double x, char *buf, size_t len) {
    if (isnan(x)) snprintf(buf, len, "NaN");
    else if (isinf(x)) snprintf(buf, len, x > 0 ? "Infinity" : "-Infinity");
    else {
        snprintf(buf, len, "%.15g", x);
        if (strtod(buf, NULL) != x) snprintf(buf, len, "%.17g", x);
    }
}

static int is_null(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TUSERDATA) return 0;
    lua_getfield(L, STATE, "null");
    int eq = lua_rawequal(L, idx, -1);
    lua_pop(L, 1);
    return eq;
}

/* Converts the n arguments from `first` on into text parameters: strings as
 * they are, integers without ".0", booleans as true/false, nil and
 * walrouter.null as SQL NULL. Converted numbers replace their argument on
 * the stack, so every pointer stays valid until the function returns. */
static const char **read_params(lua_State *L, int first, int n, const char **small) {
    if (n > MAX_PARAMS)
        luaL_error(L, "too many parameters (%d; PostgreSQL takes at most %d)", n, MAX_PARAMS);
    const char **pv = small;
    if (n > STACK_PARAMS) pv = lua_newuserdatauv(L, sizeof *pv * (size_t)n, 0);
    for (int i = 0; i < n; i++) {
        int idx = first + i;
        size_t len;
        char buf[40];
        switch (lua_type(L, idx)) {
        case LUA_TNIL:
            pv[i] = NULL;
            break;
        case LUA_TSTRING:
            pv[i] = lua_tolstring(L, idx, &len);
            if (strlen(pv[i]) != len)
                luaL_argerror(L, idx, lua_pushfstring(L, "parameter $%d contains a zero byte (NUL) "
                                                         "(send binary data hex-encoded, e.g. as bytea '\\x...')",
                                                      i + 1));
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, idx))
                snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
            else
                format_double((double)lua_tonumber(L, idx), buf, sizeof buf);
            lua_pushstring(L, buf);
            lua_replace(L, idx);
            pv[i] = lua_tostring(L, idx);
            break;
        case LUA_TBOOLEAN:
            pv[i] = lua_toboolean(L, idx) ? "true" : "false";
            break;
        default:
            if (is_null(L, idx)) {
                pv[i] = NULL;
                break;
            }
            luaL_argerror(L, idx, lua_pushfstring(L, "parameter $%d: cannot send a %s (expected a string, "
                                                     "number, boolean, nil or walrouter.null)",
                                                  i + 1, luaL_typename(L, idx)));
        }
    }
    return pv;
}

/* ---- results --------------------------------------------------------------- */

enum { K_TEXT, K_INT, K_FLOAT, K_BOOL };

static int kind_of(uint32_t oid) {
    switch (oid) {
    case OID_INT2: case OID_INT4: case OID_INT8: case OID_OID: return K_INT;
    case OID_FLOAT4: case OID_FLOAT8: return K_FLOAT;
    case OID_BOOL: return K_BOOL;
    default: return K_TEXT;
    }
}

/* __index of a row: a column name gives that column's value. */
static int row_index(lua_State *L) {
    if (lua_type(L, 2) != LUA_TSTRING || !lua_getmetatable(L, 1)) return 0;
    if (lua_getfield(L, -1, "__colidx") != LUA_TTABLE) return 0;
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNUMBER) return 0;
    lua_rawgeti(L, 1, lua_tointeger(L, -1));
    return 1;
}

/* Copies field `name` of the state table into the table on top, if set. */
static void copy_hook(lua_State *L, const char *name, const char *as) {
    if (lua_getfield(L, STATE, name) == LUA_TNIL) lua_pop(L, 1);
    else lua_setfield(L, -2, as);
}

/* Pushes the rows of r: an array of rows, each an array of values by column
 * position that also answers to column names; the metadata (node, reason,
 * columns, command, affected, lsn) is reachable through the array's
 * metatable, so #rows and ipairs see only rows. */
static void push_rows(lua_State *L, wr_cluster *c, wr_result *r) {
    int nrows = wr_result_nrows(r), ncols = wr_result_ncols(r);
    char lsn[WR_LSN_BUFSIZE];
    luaL_checkstack(L, 12, "walrouter: result conversion");

    lua_createtable(L, nrows, 0); /* rows */
    int rows = lua_gettop(L);

    lua_createtable(L, ncols, 0); /* columns */
    int columns = lua_gettop(L);
    lua_createtable(L, 0, ncols); /* column name -> position */
    int colidx = lua_gettop(L);
    for (int j = 0; j < ncols; j++) {
        const char *name = wr_result_colname(r, j);
        lua_pushstring(L, name ? name : "");
        lua_pushvalue(L, -1);
        lua_rawseti(L, columns, j + 1);
        if (lua_rawget(L, colidx) == LUA_TNIL) { /* the first of equal names wins */
            lua_pushstring(L, name ? name : "");
            lua_pushinteger(L, j + 1);
            lua_rawset(L, colidx);
        }
        lua_pop(L, 1);
    }

    /* The metatable of the array: its __index is the metadata. */
    lua_createtable(L, 0, 3);
    lua_createtable(L, 0, 7); /* metadata */
    int node = wr_result_node(r);
    if (node >= 0) {
        lua_pushstring(L, wr_cluster_node_name(c, (size_t)node));
        lua_setfield(L, -2, "node");
    }
    lua_pushstring(L, wr_reason_name(wr_result_reason(r)));
    lua_setfield(L, -2, "reason");
    lua_pushvalue(L, columns);
    lua_setfield(L, -2, "columns");
    lua_pushstring(L, wr_result_command(r));
    lua_setfield(L, -2, "command");
    lua_pushinteger(L, (lua_Integer)wr_result_affected(r));
    lua_setfield(L, -2, "affected");
    if (wr_result_lsn(r)) {
        lua_pushstring(L, wr_lsn_format(wr_result_lsn(r), lsn));
        lua_setfield(L, -2, "lsn");
    }
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "walrouter.rows");
    lua_setfield(L, -2, "__name");
    copy_hook(L, "rows_tostring", "__tostring");
    lua_setmetatable(L, rows);

    /* The metatable shared by the rows of this result. */
    lua_createtable(L, 0, 5);
    int rowmt = lua_gettop(L);
    lua_pushcfunction(L, row_index);
    lua_setfield(L, rowmt, "__index");
    lua_pushvalue(L, colidx);
    lua_setfield(L, rowmt, "__colidx");
    lua_pushvalue(L, columns);
    lua_setfield(L, rowmt, "__columns");
    lua_pushliteral(L, "walrouter.row");
    lua_setfield(L, rowmt, "__name");
    copy_hook(L, "row_tostring", "__tostring");

    lua_getfield(L, STATE, "null");
    int null = lua_gettop(L);
    int kinds_small[64];
    int *kinds = kinds_small;
    if (ncols > 64) kinds = lua_newuserdatauv(L, sizeof *kinds * (size_t)ncols, 0);
    for (int j = 0; j < ncols; j++) kinds[j] = kind_of(wr_result_coltype(r, j));

    for (int i = 0; i < nrows; i++) {
        lua_createtable(L, ncols, 0);
        for (int j = 0; j < ncols; j++) {
            const char *v = wr_result_value(r, i, j);
            if (!v) {
                lua_pushvalue(L, null);
            } else {
                switch (kinds[j]) {
                case K_INT: lua_pushinteger(L, (lua_Integer)strtoll(v, NULL, 10)); break;
                case K_FLOAT: lua_pushnumber(L, (lua_Number)strtod(v, NULL)); break;
                case K_BOOL: lua_pushboolean(L, v[0] == 't'); break;
                default: lua_pushlstring(L, v, (size_t)wr_result_length(r, i, j)); break;
                }
            }
            lua_rawseti(L, -2, j + 1);
        }
        lua_pushvalue(L, rowmt);
        lua_setmetatable(L, -2);
        lua_rawseti(L, rows, i + 1);
    }
    lua_settop(L, rows);
}

/* ---- cluster --------------------------------------------------------------- */

static int core_open(lua_State *L) {
    const char *dsn = check_text(L, 1, "the DSN");
    wr_options opt;
    read_options(L, 2, &opt);
    lcluster *lc = lua_newuserdatauv(L, sizeof *lc, 2); /* its sessions, its event handler */
    lc->c = NULL;
    lc->has_handler = 0;
    luaL_setmetatable(L, CLUSTER_MT);
    lua_createtable(L, 0, 4); /* its sessions, weak keys */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setiuservalue(L, -2, 1);

    wr_cluster *c = NULL;
    wr_status st = wr_cluster_open(&c, dsn, &opt);
    if (st != WR_OK) { /* close first: pushing the error may raise */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", c ? wr_cluster_errmsg(c) : "out of memory");
        wr_cluster_close(c);
        lua_pushnil(L);
        push_error(L, st, msg, NULL, NULL);
        return 2;
    }
    lc->c = c;
    return 1;
}

/* Closes every session of the cluster at idx, then the cluster. */
static int cluster_close(lua_State *L) {
    lcluster *lc = luaL_checkudata(L, 1, CLUSTER_MT);
    if (!lc->c) return 0;
    if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            lua_pop(L, 1);
            lsession *ls = luaL_testudata(L, -1, SESSION_MT);
            if (ls && ls->s) {
                session_release(ls);
                ls->orphaned = 1;
            }
        }
    }
    lua_pop(L, 1);
    wr_cluster_close(lc->c); /* stops the refresher, if running */
    lc->c = NULL;
    return 0;
}

static int cluster_closed(lua_State *L) {
    lcluster *lc = luaL_checkudata(L, 1, CLUSTER_MT);
    lua_pushboolean(L, lc->c == NULL);
    return 1;
}

/* A token argument: a string (else raises). A token is untrusted input (a
 * cookie), so one holding a zero byte is a bad token, returned as nil, err
 * like any other: *bad is set and nil, err pushed. */
static const char *check_token(lua_State *L, int idx, int *bad) {
    size_t len;
    luaL_checktype(L, idx, LUA_TSTRING);
    const char *t = lua_tolstring(L, idx, &len);
    *bad = strlen(t) != len;
    if (*bad) {
        lua_pushnil(L);
        push_error(L, WR_ERR_TOKEN, "invalid session token: it contains a zero byte (NUL)", NULL, NULL);
    }
    return t;
}

static int cluster_session(lua_State *L) {
    lcluster *lc = check_cluster(L, 1);
    const char *token = NULL;
    if (!lua_isnoneornil(L, 2)) {
        int bad;
        token = check_token(L, 2, &bad);
        if (bad) return 2;
    }
    lsession *ls = lua_newuserdatauv(L, sizeof *ls, 1);
    memset(ls, 0, sizeof *ls);
    luaL_setmetatable(L, SESSION_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1); /* keeps the cluster alive */
    lua_getiuservalue(L, 1, 1);  /* the cluster's session list */
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    ls->s = wr_session_new(lc->c);
    if (!ls->s) return luaL_error(L, "walrouter: out of memory");
    wr_session_set_interrupt(ls->s, interrupt_requested, NULL);
    ls->c = lc->c;
    ls->owner = lc;
    if (token) {
        wr_status st = wr_session_resume(ls->s, token);
        if (st != WR_OK) {
            session_fail(L, ls, st);
            session_release(ls);
            return 2;
        }
    }
    return 1;
}

static int cluster_nnodes(lua_State *L) {
    lcluster *lc = check_cluster(L, 1);
    lua_pushinteger(L, (lua_Integer)wr_cluster_nnodes(lc->c));
    return 1;
}

static size_t check_node(lua_State *L, lcluster *lc, int idx) {
    lua_Integer i = luaL_checkinteger(L, idx);
    size_t n = wr_cluster_nnodes(lc->c);
    luaL_argcheck(L, i >= 1 && (lua_Unsigned)i <= n, idx, "node number out of range");
    return (size_t)(i - 1);
}

static int cluster_node_name(lua_State *L) {
    lcluster *lc = check_cluster(L, 1);
    lua_pushstring(L, wr_cluster_node_name(lc->c, check_node(L, lc, 2)));
    return 1;
}

/* The current primary's name, or nil when none is known. */
static int cluster_primary(lua_State *L) {
    lcluster *lc = check_cluster(L, 1);
    int p = wr_cluster_primary(lc->c);
    if (p < 0) lua_pushnil(L);
    else lua_pushstring(L, wr_cluster_node_name(lc->c, (size_t)p));
    return 1;
}

static int cluster_refresh(lua_State *L) {
    lcluster *lc = check_cluster(L, 1);
    wr_status st = wr_cluster_refresh(lc->c);
    if (st == WR_OK) {
        lua_pushboolean(L, 1);
        return deliver_events(L, lc, 1, 1);
    }
    const char *msg = wr_cluster_errmsg(lc->c);
    lua_pushnil(L);
    push_error(L, st, *msg ? msg : "no node of the cluster is reachable", NULL, NULL);
    return deliver_events(L, lc, 1, 2);
}

static const char *role_name(wr_role r) {
    switch (r) {
    case WR_ROLE_PRIMARY: return "primary";
    case WR_ROLE_REPLICA: return "replica";
    default: return "unknown";
    }
}

static void set_num(lua_State *L, const char *k, double v) {
    if (v < 0) return; /* unknown: the field stays nil */
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *v) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* cluster:node_status(i) -> record of node i (1-based); unknown figures are
 * nil. */
static int cluster_node_status(lua_State *L) {
    lcluster *lc = check_cluster(L, 1);
    size_t i = check_node(L, lc, 2);
    wr_node_status ns;
    wr_status st = wr_cluster_node_status(lc->c, i, &ns);
    if (st != WR_OK) {
        lua_pushnil(L);
        push_error(L, st, "could not read the node status", NULL, wr_cluster_node_name(lc->c, i));
        return 2;
    }
    char lsn[WR_LSN_BUFSIZE];
    lua_createtable(L, 0, 20);
    set_str(L, "name", wr_cluster_node_name(lc->c, i));
    set_str(L, "host", ns.host);
    set_int(L, "port", ns.port);
    set_str(L, "role", role_name(ns.role));
    set_str(L, "state", wr_node_state_name(ns.state));
    if (ns.lag_bytes >= 0) set_int(L, "lag_bytes", ns.lag_bytes);
    set_num(L, "lag_seconds", ns.lag_seconds);
    if (ns.replay_lsn) set_str(L, "replay_lsn", wr_lsn_format(ns.replay_lsn, lsn));
    set_num(L, "replay_rate", ns.replay_rate);
    if (ns.last_check_unix_ms) set_int(L, "last_check_unix_ms", ns.last_check_unix_ms);
    set_int(L, "conns_in_use", ns.conns_in_use);
    set_int(L, "conns_idle", ns.conns_idle);
    if (ns.last_error[0]) set_str(L, "last_error", ns.last_error);
    lua_createtable(L, 0, WR_REASON_COUNT);
    for (int r = 1; r < WR_REASON_COUNT; r++) set_int(L, wr_reason_name((wr_reason)r), (lua_Integer)ns.served[r]);
    lua_setfield(L, -2, "served");
    set_int(L, "errors", (lua_Integer)ns.errors);
    if (ns.timeline) set_int(L, "timeline", (lua_Integer)ns.timeline);
    lua_pushboolean(L, ns.fenced);
    lua_setfield(L, -2, "fenced");
    set_num(L, "rtt_ms", ns.rtt_ms);
    return 1;
}

static int cluster_tostring(lua_State *L) {
    lcluster *lc = luaL_checkudata(L, 1, CLUSTER_MT);
    if (!lc->c) {
        lua_pushliteral(L, "walrouter.cluster (closed)");
        return 1;
    }
    luaL_Buffer b;
    int p = wr_cluster_primary(lc->c);
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "walrouter.cluster (open; ");
    for (size_t i = 0; i < wr_cluster_nnodes(lc->c); i++) {
        if (i) luaL_addstring(&b, ", ");
        luaL_addstring(&b, wr_cluster_node_name(lc->c, i));
        if ((int)i == p) luaL_addstring(&b, " primary");
    }
    if (p < 0) luaL_addstring(&b, "; no primary known");
    luaL_addchar(&b, ')');
    luaL_pushresult(&b);
    return 1;
}

/* ---- operations ------------------------------------------------------------ */

static int push_text(lua_State *L) {
    lua_pushstring(L, lua_touserdata(L, 1));
    return 1;
}

/* Pushes the text render(c) returns, freeing it with wr_free even when Lua
 * runs out of memory copying it; or nil, err when the core ran out. */
static int push_owned_text(lua_State *L, lcluster *lc, char *(*render)(wr_cluster *), const char *what) {
    luaL_checkstack(L, 4, "walrouter: status text");
    char *text = render(lc->c);
    if (!text) {
        lua_pushnil(L);
        push_error(L, WR_ERR_NOMEM, what, NULL, NULL);
        return deliver_events(L, lc, 1, 2);
    }
    lua_pushcfunction(L, push_text); /* neither push allocates */
    lua_pushlightuserdata(L, text);
    int rc = lua_pcall(L, 1, 1, 0);
    wr_free(text);
    if (rc != LUA_OK) return lua_error(L);
    return deliver_events(L, lc, 1, 1);
}

/* cluster:status_json() -> JSON array of node objects | nil, err */
static int cluster_status_json(lua_State *L) {
    return push_owned_text(L, check_cluster(L, 1), wr_cluster_status_json,
                           "out of memory rendering the status as JSON");
}

/* cluster:metrics() -> Prometheus text exposition | nil, err */
static int cluster_metrics(lua_State *L) {
    return push_owned_text(L, check_cluster(L, 1), wr_cluster_metrics_text, "out of memory rendering the metrics");
}

/* cluster:poll_events() -> array of {node, from, to, at_ms}, oldest first;
 * removes them from the core's queue (the last 64 changes). */
static int cluster_poll_events(lua_State *L) {
    lcluster *lc = check_cluster(L, 1);
    wr_event evs[16];
    lua_Integer k = 0;
    size_t n;
    lua_newtable(L);
    do {
        n = wr_cluster_poll_events(lc->c, evs, sizeof evs / sizeof evs[0]);
        for (size_t i = 0; i < n; i++) {
            lua_createtable(L, 0, 4);
            set_str(L, "node", wr_cluster_node_name(lc->c, (size_t)evs[i].node));
            set_str(L, "from", wr_node_state_name(evs[i].from));
            set_str(L, "to", wr_node_state_name(evs[i].to));
            set_int(L, "at_ms", (lua_Integer)evs[i].at_unix_ms);
            lua_rawseti(L, -2, ++k);
        }
    } while (n == sizeof evs / sizeof evs[0]);
    return 1;
}

/* cluster:on_event(fn | nil): the handler the Lua layer delivers events to
 * (nil removes it). No C callback is installed: see the top comment. */
static int cluster_on_event(lua_State *L) {
    lcluster *lc = check_cluster(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
    lc->has_handler = !lua_isnoneornil(L, 2);
    lua_settop(L, 2);
    lua_setiuservalue(L, 1, 2);
    return 0;
}

/* cluster:event_handler() -> the handler, or nil */
static int cluster_event_handler(lua_State *L) {
    check_cluster(L, 1);
    lua_getiuservalue(L, 1, 2);
    return 1;
}

/* cluster:start_refresher(interval_ms) -> true | nil, err. Starting it again
 * changes the interval. */
static int cluster_start_refresher(lua_State *L) {
    lcluster *lc = check_cluster(L, 1);
    lua_Integer ms = luaL_checkinteger(L, 2);
    luaL_argcheck(L, ms >= 1 && ms <= (lua_Integer)UINT32_MAX, 2, "interval must be 1 to 4294967295 milliseconds");
    wr_status st = wr_cluster_start_refresher(lc->c, (uint32_t)ms);
    if (st != WR_OK) {
        lua_pushnil(L);
        push_error(L, st, "could not start the refresher thread", NULL, NULL);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* cluster:stop_refresher(): stops and joins the thread; no-op when none runs. */
static int cluster_stop_refresher(lua_State *L) {
    lcluster *lc = check_cluster(L, 1);
    wr_cluster_stop_refresher(lc->c);
    return 0;
}

/* ---- session --------------------------------------------------------------- */

static int session_close(lua_State *L) {
    lsession *ls = luaL_checkudata(L, 1, SESSION_MT);
    if (ls->s) session_release(ls);
    return 0;
}

static int session_closed(lua_State *L) {
    lsession *ls = luaL_checkudata(L, 1, SESSION_MT);
    lua_pushboolean(L, ls->s == NULL);
    return 1;
}

/* One statement: wr_query (write 0) or wr_exec (write 1). */
static int run(lua_State *L, int write, unsigned flags) {
    lsession *ls = check_session(L, 1);
    const char *sql = check_text(L, 2, "SQL text");
    int n = lua_gettop(L) - 2;
    const char *small[STACK_PARAMS];
    const char **pv = read_params(L, 3, n, small);
    wr_result_free(ls->pending);
    ls->pending = NULL;
    wr_result *r = NULL;
    sigint_enter();
    wr_status st = write ? wr_exec(ls->s, sql, n, pv, &r) : wr_query(ls->s, sql, n, pv, flags, &r);
    sigint_leave();
    if (st != WR_OK) return session_deliver(L, ls, session_fail(L, ls, st));
    ls->pending = r;
    if (write) lua_pushinteger(L, (lua_Integer)wr_result_affected(r));
    push_rows(L, ls->c, r);
    ls->pending = NULL;
    wr_result_free(r);
    return session_deliver(L, ls, write ? 2 : 1);
}

static int session_query(lua_State *L) { return run(L, 0, 0); }
static int session_query_primary(lua_State *L) { return run(L, 0, WR_PRIMARY); }
static int session_exec(lua_State *L) { return run(L, 1, 0); }

static int ok_or_fail(lua_State *L, lsession *ls, wr_status st) {
    if (st != WR_OK) return session_fail(L, ls, st);
    lua_pushboolean(L, 1);
    return 1;
}

/* ok_or_fail for calls that talk to a node (begin, commit, rollback). */
static int ok_or_fail_io(lua_State *L, lsession *ls, wr_status st) {
    return session_deliver(L, ls, ok_or_fail(L, ls, st));
}

/* session:begin([read_only]) -> true | nil, err */
static int session_begin(lua_State *L) {
    lsession *ls = check_session(L, 1);
    unsigned flags = lua_toboolean(L, 2) ? WR_READ_ONLY : 0;
    sigint_enter();
    wr_status st = wr_begin(ls->s, flags);
    sigint_leave();
    return ok_or_fail_io(L, ls, st);
}

static int session_commit(lua_State *L) {
    lsession *ls = check_session(L, 1);
    sigint_enter();
    wr_status st = wr_commit(ls->s);
    sigint_leave();
    return ok_or_fail_io(L, ls, st);
}

static int session_rollback(lua_State *L) {
    lsession *ls = check_session(L, 1);
    sigint_enter();
    wr_status st = wr_rollback(ls->s);
    sigint_leave();
    return ok_or_fail_io(L, ls, st);
}

static int session_in_transaction(lua_State *L) {
    lsession *ls = check_session(L, 1);
    lua_pushboolean(L, wr_session_in_transaction(ls->s));
    return 1;
}

static int session_resume(lua_State *L) {
    lsession *ls = check_session(L, 1);
    int bad;
    const char *token = check_token(L, 2, &bad);
    if (bad) return 2;
    return ok_or_fail(L, ls, wr_session_resume(ls->s, token));
}

static int session_require(lua_State *L) {
    lsession *ls = check_session(L, 1);
    int bad;
    const char *token = check_token(L, 2, &bad);
    if (bad) return 2;
    return ok_or_fail(L, ls, wr_session_require(ls->s, token));
}

static int session_token(lua_State *L) {
    lsession *ls = check_session(L, 1);
    lua_pushstring(L, wr_session_token(ls->s));
    return 1;
}

/* The position a replica must have replayed to serve this session, "X/Y". */
static int session_need(lua_State *L) {
    lsession *ls = check_session(L, 1);
    char lsn[WR_LSN_BUFSIZE];
    lua_pushstring(L, wr_lsn_format(wr_session_need(ls->s), lsn));
    return 1;
}

/* ---- streams ---------------------------------------------------------------
 * The primitives under the Lua layer's session:stream (lua/walrouter.lua),
 * which iterates over the chunks. */

static lstream *check_stream(lua_State *L, int idx) {
    lstream *lst = luaL_checkudata(L, idx, STREAM_MT);
    if (!lst->st) luaL_error(L, "attempt to use a closed walrouter stream");
    return lst;
}

/* session:stream_open(sql, ...) -> stream | nil, err: a read in chunks, in a
 * read-only transaction on one fresh replica (flags WR_PRIMARY: the primary),
 * through a cursor. The session is in that transaction until stream:close. */
static int open_stream(lua_State *L, unsigned flags) {
    lsession *ls = check_session(L, 1);
    const char *sql = check_text(L, 2, "SQL text");
    int n = lua_gettop(L) - 2;
    const char *small[STACK_PARAMS];
    const char **pv = read_params(L, 3, n, small);
    lstream *lst = lua_newuserdatauv(L, sizeof *lst, 1); /* first: it may raise */
    lst->st = NULL;
    lst->ls = NULL;
    luaL_setmetatable(L, STREAM_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1); /* keeps the session alive */
    /* A stream whose transaction the caller ended (commit, rollback) is
     * over: free it before its session starts another. */
    if (ls->stream && !wr_session_in_transaction(ls->s)) stream_release(ls->stream, NULL);
    wr_stream *w = NULL;
    sigint_enter();
    wr_status st = wr_stream_open(ls->s, sql, n, pv, flags, &w);
    sigint_leave();
    if (st != WR_OK) return session_deliver(L, ls, session_fail(L, ls, st));
    lst->st = w;
    lst->ls = ls;
    ls->stream = lst;
    return session_deliver(L, ls, 1);
}

static int session_stream_open(lua_State *L) { return open_stream(L, 0); }
static int session_stream_open_primary(lua_State *L) { return open_stream(L, WR_PRIMARY); }

/* stream:fetch([n]) -> rows (at most n, default 1000) | false once every row
 * was read | nil, err */
static int stream_fetch(lua_State *L) {
    lstream *lst = check_stream(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, 1000);
    luaL_argcheck(L, max >= 1 && max <= INT32_MAX, 2, "chunk size must be 1 to 2147483647 rows");
    lua_settop(L, 2);
    lua_getiuservalue(L, 1, 1); /* 3: the session */
    lsession *ls = lst->ls;
    wr_result_free(ls->pending);
    ls->pending = NULL;
    wr_result *r = NULL;
    sigint_enter();
    wr_status st = wr_stream_next(lst->st, (int)max, &r);
    sigint_leave();
    if (st != WR_OK) return session_deliver_at(L, ls, 3, session_fail(L, ls, st));
    if (!r) {
        lua_pushboolean(L, 0);
        return session_deliver_at(L, ls, 3, 1);
    }
    ls->pending = r;
    push_rows(L, ls->c, r);
    ls->pending = NULL;
    wr_result_free(r);
    return session_deliver_at(L, ls, 3, 1);
}

/* stream:close() -> true | nil, err: ends the stream's transaction. Closing a
 * closed stream returns true. */
static int stream_close(lua_State *L) {
    lstream *lst = luaL_checkudata(L, 1, STREAM_MT);
    if (!lst->st) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lsession *ls = lst->ls;
    wr_status st;
    sigint_enter();
    stream_release(lst, &st);
    sigint_leave();
    return ok_or_fail(L, ls, st);
}

/* __gc and __close: close, and never raise. */
static int stream_gc(lua_State *L) {
    lstream *lst = luaL_checkudata(L, 1, STREAM_MT);
    if (lst->st) stream_release(lst, NULL);
    return 0;
}

static int stream_closed(lua_State *L) {
    lstream *lst = luaL_checkudata(L, 1, STREAM_MT);
    lua_pushboolean(L, lst->st == NULL);
    return 1;
}

static int stream_tostring(lua_State *L) {
    lstream *lst = luaL_checkudata(L, 1, STREAM_MT);
    lua_pushstring(L, lst->st ? "walrouter.stream (open)" : "walrouter.stream (closed)");
    return 1;
}

static int session_tostring(lua_State *L) {
    lsession *ls = luaL_checkudata(L, 1, SESSION_MT);
    if (!ls->s) {
        lua_pushstring(L, ls->orphaned ? "walrouter.session (closed with its cluster)" : "walrouter.session (closed)");
        return 1;
    }
    char lsn[WR_LSN_BUFSIZE];
    int p = wr_cluster_primary(ls->c);
    lua_pushfstring(L, "walrouter.session (open%s; need %s; primary %s)",
                    wr_session_in_transaction(ls->s) ? ", in a transaction" : "",
                    wr_lsn_format(wr_session_need(ls->s), lsn),
                    p >= 0 ? wr_cluster_node_name(ls->c, (size_t)p) : "unknown");
    return 1;
}

/* ---- module ---------------------------------------------------------------- */

static int null_tostring(lua_State *L) {
    lua_pushliteral(L, "NULL");
    return 1;
}

static const luaL_Reg cluster_methods[] = {
    {"session", cluster_session},       {"close", cluster_close},
    {"closed", cluster_closed},         {"nnodes", cluster_nnodes},
    {"node_name", cluster_node_name},   {"node_status", cluster_node_status},
    {"primary", cluster_primary},       {"refresh", cluster_refresh},
    {"status_json", cluster_status_json}, {"metrics", cluster_metrics},
    {"poll_events", cluster_poll_events}, {"on_event", cluster_on_event},
    {"event_handler", cluster_event_handler}, {"start_refresher", cluster_start_refresher},
    {"stop_refresher", cluster_stop_refresher},
    {NULL, NULL},
};

static const luaL_Reg cluster_meta[] = {
    {"__gc", cluster_close}, {"__close", cluster_close}, {"__tostring", cluster_tostring}, {NULL, NULL},
};

static const luaL_Reg session_methods[] = {
    {"query", session_query},
    {"query_primary", session_query_primary},
    {"exec", session_exec},
    {"begin", session_begin},
    {"commit", session_commit},
    {"rollback", session_rollback},
    {"in_transaction", session_in_transaction},
    {"resume", session_resume},
    {"require", session_require},
    {"token", session_token},
    {"need", session_need},
    {"close", session_close},
    {"closed", session_closed},
    {"stream_open", session_stream_open},
    {"stream_open_primary", session_stream_open_primary},
    {NULL, NULL},
};

static const luaL_Reg stream_methods[] = {
    {"fetch", stream_fetch},
    {"close", stream_close},
    {"closed", stream_closed},
    {NULL, NULL},
};

static const luaL_Reg stream_meta[] = {
    {"__gc", stream_gc}, {"__close", stream_gc}, {"__tostring", stream_tostring}, {NULL, NULL},
};

static const luaL_Reg session_meta[] = {
    {"__gc", session_close}, {"__close", session_close}, {"__tostring", session_tostring}, {NULL, NULL},
};

static const luaL_Reg module_functions[] = {
    {"open", core_open},
    {NULL, NULL},
};

/* Creates metatable `name` with meta functions `meta` and methods `methods`
 * (its __index, also stored in the module as `field`); every function gets
 * the state table (at index state) as upvalue 1. */
static void new_class(lua_State *L, int module, int state, const char *name, const luaL_Reg *meta,
                      const luaL_Reg *methods, const char *field) {
    luaL_newmetatable(L, name);
    lua_pushvalue(L, state);
    luaL_setfuncs(L, meta, 1);
    lua_newtable(L);
    lua_pushvalue(L, state);
    luaL_setfuncs(L, methods, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, module, field);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

__attribute__((visibility("default"))) int luaopen_walrouter_core(lua_State *L);

int luaopen_walrouter_core(lua_State *L) {
    luaL_checkversion(L);
    lua_newtable(L); /* the module */
    int module = lua_gettop(L);
    /* The state (null sentinel, formatters): one per Lua state, kept in the
     * registry, so loading the module again keeps the same walrouter.null. */
    if (lua_getfield(L, LUA_REGISTRYINDEX, STATE_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_newuserdatauv(L, 0, 0); /* walrouter.null */
        luaL_newmetatable(L, NULL_MT);
        lua_pushcfunction(L, null_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "walrouter.null");
        lua_setfield(L, -2, "__name");
        lua_pushliteral(L, "walrouter.null");
        lua_setfield(L, -2, "__metatable");
        lua_setmetatable(L, -2);
        lua_setfield(L, -2, "null");
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, STATE_KEY);
    }
    int state = lua_gettop(L);
    lua_getfield(L, state, "null");
    lua_setfield(L, module, "null");

    luaL_newmetatable(L, ERROR_MT);
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "walrouter.error");
    lua_setfield(L, -2, "__name");
    lua_setfield(L, module, "error_mt");

    new_class(L, module, state, CLUSTER_MT, cluster_meta, cluster_methods, "cluster_methods");
    new_class(L, module, state, SESSION_MT, session_meta, session_methods, "session_methods");
    new_class(L, module, state, STREAM_MT, stream_meta, stream_methods, "stream_methods");

    lua_pushvalue(L, module);
    lua_pushvalue(L, state);
    luaL_setfuncs(L, module_functions, 1);
    lua_pop(L, 1);
    lua_pushvalue(L, state);
    lua_setfield(L, module, "hooks");
    lua_pushliteral(L, WR_VERSION);
    lua_setfield(L, module, "version");
    lua_settop(L, module);
    return 1;
}
