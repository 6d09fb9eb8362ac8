/* err.h — the executor's error value and its one setter (error.c), and the
 * options resolver (options.c). Only core/src includes this. */
#ifndef WR_ERR_H
#define WR_ERR_H

#include <stddef.h>

#include "walrouter.h"

#define WR_MSG_SIZE 512

/* ---- error.c: the one place that fills an error -------------------------- */

typedef struct wr_err {
    wr_status code;
    int node;
    char sqlstate[6];
    char msg[WR_MSG_SIZE];
} wr_err;

void wr_err_clear(wr_err *e);
/* Formats the message, removes `secret` (and any password=... or URI
 * password) from it, records code, node and sqlstate (NULL: none). Returns
 * code, so callers can `return wr_err_set(...)`. */
wr_status wr_err_set(wr_err *e, const char *secret, wr_status code, int node,
                     const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Removes passwords from text in place. */
void wr_mask_secrets(char *text, size_t cap, const char *secret);

/* ---- options.c ------------------------------------------------------------ */

/* Copies `in` (NULL: all defaults) with every zero field replaced by its
 * documented default. */
void wr_options_resolve(const wr_options *in, wr_options *out);
/* WR_ERR_ARG, with a message naming the option, when a value of o (as
 * given, before resolving) is past its limit. */
wr_status wr_options_check(const wr_options *o, char *errbuf, size_t errlen);

#endif /* WR_ERR_H */
