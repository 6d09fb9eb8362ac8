/* error.c — the one place that fills an error record, and the masking that
 * keeps passwords out of every message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

#define MASK "********"

void wr_err_clear(wr_err *e) {
    e->code = WR_OK;
    e->node = -1;
    e->sqlstate[0] = '\0';
    e->msg[0] = '\0';
}

/* Replaces text[from, to) with `with`, truncating at cap. */
static void splice(char *text, size_t cap, size_t from, size_t to, const char *with) {
    size_t len = strlen(text), wl = strlen(with);
    size_t tail = len - to;
    if (from + wl + tail + 1 > cap) {
        tail = cap > from + wl + 1 ? cap - from - wl - 1 : 0;
        if (from + wl + 1 > cap) wl = cap - from - 1;
    }
    memmove(text + from + wl, text + to, tail);
    memcpy(text + from, with, wl);
    text[from + wl + tail] = '\0';
}

/* End of a conninfo value starting at p: quoted ('...' with \' escapes) or up
 * to the next space. */
static const char *value_end(const char *p) {
    if (*p == '\'') {
        for (p++; *p && *p != '\''; p++)
            if (*p == '\\' && p[1]) p++;
        return *p ? p + 1 : p;
    }
    while (*p && *p != ' ' && *p != '\t' && *p != '\'' && *p != '"') p++;
    return p;
}

void wr_mask_secrets(char *text, size_t cap, const char *secret) {
    char *p;
    /* The literal password, wherever it appears. */
    if (secret && *secret) {
        size_t sl = strlen(secret), ml = strlen(MASK);
        /* Searching on after each mask: a secret that is part of the mask
         * itself ("*") must not be found in it again. */
        for (size_t from = 0; (p = strstr(text + from, secret)) != NULL;) {
            size_t at = (size_t)(p - text);
            splice(text, cap, at, at + sl, MASK);
            from = at + ml;
            if (from >= strlen(text)) break;
        }
    }
    /* password=... in key=value text (and in URI query parameters). */
    for (p = text; (p = strstr(p, "password=")) != NULL;) {
        char *v = p + strlen("password=");
        if (strncmp(v, MASK, strlen(MASK)) != 0) {
            const char *end = value_end(v);
            if (*v != '\'') {
                const char *amp = v;
                while (amp < end && *amp != '&') amp++;
                end = amp;
            }
            splice(text, cap, (size_t)(v - text), (size_t)(end - text), MASK);
        }
        p = v;
    }
    /* scheme://user:password@host */
    for (p = text; (p = strstr(p, "://")) != NULL;) {
        char *u = p + 3, *at = u, *colon = NULL;
        while (*at && *at != '@' && *at != '/' && *at != ' ' && *at != '"') {
            if (*at == ':' && !colon) colon = at;
            at++;
        }
        if (*at == '@' && colon && strncmp(colon + 1, MASK, strlen(MASK)) != 0)
            splice(text, cap, (size_t)(colon + 1 - text), (size_t)(at - text), MASK);
        p = u;
    }
}

wr_status wr_err_set(wr_err *e, const char *secret, wr_status code, int node,
                     const char *sqlstate, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    /* libpq messages end with a newline; a message is one line. */
    size_t len = strlen(e->msg);
    while (len && (e->msg[len - 1] == '\n' || e->msg[len - 1] == ' ')) e->msg[--len] = '\0';
    for (char *p = e->msg; *p; p++)
        if (*p == '\n' || *p == '\t') *p = ' ';
    wr_mask_secrets(e->msg, sizeof e->msg, secret);
    e->code = code;
    e->node = node;
    if (sqlstate && strlen(sqlstate) == 5)
        memcpy(e->sqlstate, sqlstate, 6);
    else
        e->sqlstate[0] = '\0';
    return code;
}

#define NAME_OF(table, v) \
    ((unsigned)(v) < sizeof(table) / sizeof(table)[0] ? (table)[(unsigned)(v)] : "unknown")

const char *wr_status_name(wr_status s) {
    static const char *const names[] = {
        [WR_OK] = "ok",
        [WR_ERR_ARG] = "bad_argument",
        [WR_ERR_TOKEN] = "bad_token",
        [WR_ERR_CONNECT] = "connect_error",
        [WR_ERR_SQL] = "sql_error",
        [WR_ERR_UNKNOWN_OUTCOME] = "unknown_outcome",
        [WR_ERR_NO_PRIMARY] = "no_primary",
        [WR_ERR_STATE] = "bad_state",
        [WR_ERR_NOMEM] = "out_of_memory",
        [WR_ERR_INTERNAL] = "internal_error",
        [WR_ERR_TIMEOUT] = "timeout",
        [WR_ERR_SPLIT_BRAIN] = "split_brain",
        [WR_ERR_INTERRUPTED] = "interrupted",
    };
    return NAME_OF(names, s);
}

