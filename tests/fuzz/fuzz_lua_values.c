/* fuzz_lua_values.c — the Lua module's value conversion (the static
 * functions of bindings/lua/walrouter_core.c, compiled in here):
 *   - parameters (read_params): Lua integers, floats, booleans, strings,
 *     nil and walrouter.null become text PostgreSQL reads back as the same
 *     value (an integer exactly; a float to the same double, NaN and the
 *     infinities by name); a string holding a NUL raises, any other is sent
 *     byte for byte;
 *   - results (push_rows) of any column types and any text, NULLs among
 *     them: integers, floats and booleans convert as libpq's text says, text
 *     arrives byte for byte, NULL as walrouter.null; never a crash.
 * The Python package converts values in pure Python (python/walrouter/
 * adapt.py): see tests/fuzz/README.md. */
#include <math.h>

#include "internal.h"
#include "../../bindings/lua/walrouter_core.c"
#include <lualib.h>
#include "fuzz_util.h"

/* Inside Lua calls the input is not at hand: abort (libFuzzer keeps it). */
#define LREQUIRE(cond) do { if (!(cond)) { fprintf(stderr, "fuzz: %s\n", #cond); abort(); } } while (0)

/* Upvalue 1: the module state (with the null sentinel); argument 1: the
 * count, then the values. */
static int convert_params(lua_State *L) {
    int n = (int)lua_tointeger(L, 1);
    const char *small[STACK_PARAMS];
    const char **pv = read_params(L, 2, n, small);
    for (int i = 0; i < n; i++) {
        int idx = 2 + i;
        switch (lua_type(L, idx)) {
        case LUA_TNIL:
            LREQUIRE(pv[i] == NULL);
            break;
        case LUA_TBOOLEAN:
            LREQUIRE(strcmp(pv[i], lua_toboolean(L, idx) ? "true" : "false") == 0);
            break;
        case LUA_TSTRING: { /* numbers were replaced by their text */
            size_t len;
            const char *s = lua_tolstring(L, idx, &len);
            LREQUIRE(pv[i] == s && strlen(s) == len);
            break;
        }
        default:
            LREQUIRE(pv[i] == NULL); /* walrouter.null */
        }
    }
    return 0;
}

static int convert_rows(lua_State *L) {
    wr_result *r = lua_touserdata(L, 1);
    push_rows(L, NULL, r);
    return 1;
}

static void params(lua_State *L, fz_bytes *b) {
    int n = fz_u8(b) % 8;
    lua_getfield(L, LUA_REGISTRYINDEX, STATE_KEY);
    lua_pushcclosure(L, convert_params, 1);
    lua_pushinteger(L, n);
    int has_nul = 0;
    lua_Integer ints[8];
    double dbls[8];
    int kinds[8];
    for (int i = 0; i < n; i++) {
        kinds[i] = fz_u8(b) % 6;
        switch (kinds[i]) {
        case 0: lua_pushinteger(L, ints[i] = (lua_Integer)fz_u64(b)); break;
        case 1: { uint64_t bits = fz_u64(b); memcpy(&dbls[i], &bits, sizeof bits); lua_pushnumber(L, dbls[i]); break; }
        case 2: lua_pushboolean(L, fz_u8(b) & 1); break;
        case 3: {
            char s[64];
            size_t len = fz_u8(b) % 64;
            if (len > b->left) len = b->left;
            memcpy(s, b->p, len);
            b->p += len, b->left -= len;
            has_nul |= memchr(s, '\0', len) != NULL;
            lua_pushlstring(L, s, len);
            break;
        }
        case 4: lua_pushnil(L); break;
        default: lua_getfield(L, LUA_REGISTRYINDEX, STATE_KEY); lua_getfield(L, -1, "null"); lua_remove(L, -2);
        }
    }
    int st = lua_pcall(L, n + 1, 0, 0);
    if (st != LUA_OK) lua_pop(L, 1);
    LREQUIRE((st != LUA_OK) == has_nul);
    /* The number spellings, checked directly. */
    for (int i = 0; i < n; i++) {
        char buf[40];
        if (kinds[i] == 0) {
            snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)ints[i]);
            LREQUIRE(strtoll(buf, NULL, 10) == ints[i]);
        } else if (kinds[i] == 1) {
            format_double(dbls[i], buf, sizeof buf);
            if (isnan(dbls[i])) LREQUIRE(strcmp(buf, "NaN") == 0);
            else if (isinf(dbls[i])) LREQUIRE(strcmp(buf, dbls[i] > 0 ? "Infinity" : "-Infinity") == 0);
            else LREQUIRE(strtod(buf, NULL) == dbls[i]);
        }
    }
}

static const uint32_t oids[] = {OID_BOOL, OID_INT8, OID_INT2, OID_INT4, OID_OID, OID_FLOAT4, OID_FLOAT8, 25, 1700};

static void rows(lua_State *L, fz_bytes *b) {
    int ncols = 1 + fz_u8(b) % 4, nrows = fz_u8(b) % 4;
    PGresult *pg = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc att[4];
    memset(att, 0, sizeof att);
    char colnames[4][8];
    for (int j = 0; j < ncols; j++) {
        snprintf(colnames[j], sizeof colnames[j], "c%d", fz_u8(b) % 3); /* equal names too */
        att[j].name = colnames[j];
        att[j].typid = oids[fz_u8(b) % (sizeof oids / sizeof oids[0])];
        att[j].typlen = -1;
        att[j].atttypmod = -1;
    }
    LREQUIRE(PQsetResultAttrs(pg, ncols, att));
    for (int i = 0; i < nrows; i++)
        for (int j = 0; j < ncols; j++) {
            char v[32];
            size_t len = fz_u8(b) % 32;
            if (len > b->left) len = b->left;
            memcpy(v, b->p, len);
            b->p += len, b->left -= len;
            int is_null = len == 31;
            LREQUIRE(PQsetvalue(pg, i, j, is_null ? NULL : v, is_null ? -1 : (int)len));
        }
    wr_result *r = wr_result_wrap(pg, -1, WR_REASON_NONE, 0);
    if (!r) return;
    lua_getfield(L, LUA_REGISTRYINDEX, STATE_KEY);
    lua_pushcclosure(L, convert_rows, 1);
    lua_pushlightuserdata(L, r);
    LREQUIRE(lua_pcall(L, 1, 1, 0) == LUA_OK);
    LREQUIRE(lua_rawlen(L, -1) == (size_t)nrows);
    for (int i = 0; i < nrows; i++) {
        lua_rawgeti(L, -1, i + 1);
        for (int j = 0; j < ncols; j++) {
            lua_rawgeti(L, -1, j + 1);
            const char *v = wr_result_value(r, i, j);
            if (!v) {
                LREQUIRE(lua_type(L, -1) == LUA_TUSERDATA);
            } else {
                switch (kind_of(wr_result_coltype(r, j))) {
                case K_INT: LREQUIRE(lua_isinteger(L, -1) && lua_tointeger(L, -1) == strtoll(v, NULL, 10)); break;
                case K_FLOAT: {
                    double want = strtod(v, NULL), got = lua_tonumber(L, -1);
                    LREQUIRE(lua_type(L, -1) == LUA_TNUMBER && (got == want || (isnan(got) && isnan(want))));
                    break;
                }
                case K_BOOL: LREQUIRE(lua_toboolean(L, -1) == (v[0] == 't')); break;
                default: {
                    size_t len;
                    const char *s = lua_tolstring(L, -1, &len);
                    LREQUIRE(len == (size_t)wr_result_length(r, i, j) && memcmp(s, v, len) == 0);
                }
                }
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    wr_result_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_State *L = luaL_newstate();
    if (!L) return 0;
    luaL_openlibs(L);
    luaL_requiref(L, "walrouter.core", luaopen_walrouter_core, 0);
    lua_pop(L, 1);
    fz_bytes b = {data, size};
    while (b.left) {
        if (fz_u8(&b) & 1) params(L, &b);
        else rows(L, &b);
    }
    lua_close(L);
    return 0;
}
