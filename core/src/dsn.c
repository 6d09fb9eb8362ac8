/* dsn.c — one libpq connection string (URI or key=value) listing every node,
 * parsed by libpq's own PQconninfoParse and split into one conninfo per host,
 * with our defaults (keepalives, tcp_user_timeout) for what it leaves unset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"

static void free_list(char **items, int n) {
    for (int i = 0; i < n; i++) free(items[i]);
}

/* Splits a comma-separated libpq list; returns the count, or -1 past max
 * (then nothing stays allocated). Items are newly allocated (NULL for an
 * empty item). */
static int split_list(const char *s, char **items, int max) {
    int n = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (n == max) {
            free_list(items, n);
            return -1;
        }
        items[n] = len ? strndup(p, len) : NULL;
        n++;
        if (!comma) break;
        p = comma + 1;
    }
    return n;
}

/* What we set when the DSN does not: a dead peer is noticed within seconds
 * (keepalives for an idle connection, tcp_user_timeout for unacknowledged
 * data), not after the kernel's two hours or fifteen minutes; and text in
 * UTF-8 whatever the database's encoding, the one place that decides it for
 * C and every binding. */
static const char *const defaults[][2] = {
    {"application_name", "walrouter"}, {"keepalives", "1"},     {"keepalives_idle", "5"},
    {"keepalives_interval", "2"},      {"keepalives_count", "3"}, {"tcp_user_timeout", "10000"},
    {"client_encoding", "UTF8"},
};
#define NDEFAULTS (sizeof defaults / sizeof defaults[0])

static int has_kw(const wr_dsn *d, const char *kw) {
    for (size_t i = 0; i < d->nkw; i++)
        if (strcmp(d->kw[i], kw) == 0) return 1;
    return 0;
}

/* Appends kw=val (copies); the arrays have room. 0, or -1 out of memory. */
static int add_kw(wr_dsn *d, const char *kw, const char *val) {
    d->kw[d->nkw] = strdup(kw);
    d->val[d->nkw] = strdup(val);
    d->nkw++;
    return d->kw[d->nkw - 1] && d->val[d->nkw - 1] ? 0 : -1;
}

/* Keywords that are per node, or that would make libpq pick a host itself. */
static int is_per_node(const char *kw) {
    return strcmp(kw, "host") == 0 || strcmp(kw, "hostaddr") == 0 || strcmp(kw, "port") == 0 ||
           strcmp(kw, "target_session_attrs") == 0 || strcmp(kw, "load_balance_hosts") == 0;
}

void wr_dsn_free(wr_dsn *d) {
    for (size_t i = 0; i < WR_MAX_NODES; i++) {
        free(d->host[i]);
        free(d->hostaddr[i]);
        free(d->port[i]);
    }
    for (size_t i = 0; i < d->nkw; i++) {
        free(d->kw[i]);
        free(d->val[i]);
    }
    free(d->kw);
    free(d->val);
    free(d->password);
    memset(d, 0, sizeof *d);
}

/* Pieces of a DSN's text that could be its password, as written. */
#define MAX_PIECES 64
typedef struct {
    const char *at[MAX_PIECES];
    size_t len[MAX_PIECES];
    size_t n;
    int overflow;
} pieces;

static void add_piece(pieces *ps, const char *at, size_t len) {
    if (len == 0) return;
    if (ps->n == MAX_PIECES) {
        ps->overflow = 1;
        return;
    }
    ps->at[ps->n] = at;
    ps->len[ps->n++] = len;
}

/* What could be the password in a DSN libpq failed to parse (libpq quotes
 * pieces of it, e.g. a bad percent-encoding): the text between
 * "scheme://user:" and "@", and each "password=" value. */
static void raw_passwords(const char *dsn, pieces *ps) {
    const char *p = strstr(dsn, "://");
    if (p) {
        const char *u = p + 3, *end = u + strcspn(u, "/?#");
        const char *colon = memchr(u, ':', (size_t)(end - u));
        /* Up to the last '@' and to any before it, and each piece between
         * them: libpq may split an unencoded '@' in a password elsewhere. */
        for (const char *at = end, *next = end; colon && at > colon; at--) {
            if (*at != '@') continue;
            add_piece(ps, colon + 1, (size_t)(at - colon - 1));
            if (next < end) add_piece(ps, at + 1, (size_t)(next - at - 1));
            next = at;
        }
    }
    for (p = dsn; (p = strstr(p, "password")) != NULL;) {
        p += strlen("password");
        const char *v = p + strspn(p, " \t");
        if (*v != '=') continue;
        v++;
        v += strspn(v, " \t");
        int quoted = *v == '\'';
        v += quoted;
        add_piece(ps, v, strcspn(v, quoted ? "'" : " \t&#"));
    }
}

/* msg into out (cap bytes, truncated), every occurrence of every piece
 * masked, and every start of one. All are found in the whole message as
 * libpq wrote it: before any is masked (masking one first could break up
 * another's occurrence) and before it is cut to size (which could cut one
 * short). Too many pieces to tell, or no memory: the detail goes. */
static void mask_raw_passwords(const char *dsn, const char *msg, char *out, size_t cap) {
    static const char withheld[] = "libpq's message is not shown: it could quote the password";
    pieces ps = {0};
    raw_passwords(dsn, &ps);
    size_t len = strlen(msg);
    unsigned char *covered = ps.overflow ? NULL : calloc(len + 1, 1);
    if (!covered) {
        snprintf(out, cap, "%s", withheld);
        return;
    }
    /* A piece, or the first 4+ characters of one: libpq may quote less of
     * the text than a piece runs to (where its own parse stopped). */
    for (size_t k = 0; k < ps.n; k++)
        for (size_t i = 0; i < len; i++) {
            size_t m = 0;
            while (m < ps.len[k] && i + m < len && msg[i + m] == ps.at[k][m]) m++;
            if (m == ps.len[k] || m >= 4) memset(covered + i, 1, m);
        }
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap;) {
        if (!covered[i]) {
            out[o++] = msg[i++];
            continue;
        }
        for (const char *m = "********"; *m && o + 1 < cap; m++) out[o++] = *m;
        while (i < len && covered[i]) i++;
    }
    out[o] = '\0';
    free(covered);
}

wr_status wr_dsn_parse(wr_dsn *d, const char *dsn, uint32_t connect_timeout_s, wr_err *e) {
    char *errmsg = NULL;
    memset(d, 0, sizeof *d);
    if (!dsn) return wr_err_set(e, NULL, WR_ERR_ARG, -1, NULL, "DSN is NULL");
    PQconninfoOption *opts = PQconninfoParse(dsn, &errmsg);
    if (!opts) {
        /* Masked before wr_err_set's own masking changes the text. */
        char msg[WR_MSG_SIZE];
        mask_raw_passwords(dsn, errmsg ? errmsg : "out of memory", msg, sizeof msg);
        wr_status st = wr_err_set(e, NULL, errmsg ? WR_ERR_ARG : WR_ERR_NOMEM, -1, NULL, "invalid DSN: %s", msg);
        PQfreemem(errmsg);
        return st;
    }
    const char *hosts = NULL, *addrs = NULL, *ports = NULL;
    size_t count = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val) continue;
        if (strcmp(o->keyword, "host") == 0) hosts = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0) addrs = o->val;
        else if (strcmp(o->keyword, "port") == 0) ports = o->val;
        if (!is_per_node(o->keyword)) count++;
    }
    wr_status st = WR_OK;
    char *hl[WR_MAX_NODES] = {0}, *al[WR_MAX_NODES] = {0}, *pl[WR_MAX_NODES] = {0};
    int nh = hosts ? split_list(hosts, hl, WR_MAX_NODES) : 0;
    int na = addrs ? split_list(addrs, al, WR_MAX_NODES) : 0;
    int np = ports ? split_list(ports, pl, WR_MAX_NODES) : 0;
    int n = nh > na ? nh : na;
    if (n == 0) n = 1;
    if (nh < 0 || na < 0 || np < 0) {
        st = wr_err_set(e, NULL, WR_ERR_ARG, -1, NULL, "invalid DSN: more than %d hosts", WR_MAX_NODES);
        goto done;
    }
    if ((nh && na && nh != na) || (np > 1 && np != n)) {
        st = wr_err_set(e, NULL, WR_ERR_ARG, -1, NULL,
                        "invalid DSN: %d hosts, %d host addresses and %d ports do not match", nh, na, np);
        goto done;
    }
    d->n = (size_t)n;
    for (int i = 0; i < n; i++) {
        d->host[i] = nh ? hl[i] : NULL, hl[i] = NULL;
        d->hostaddr[i] = na ? al[i] : NULL, al[i] = NULL;
        const char *port = np == 1 ? pl[0] : (np ? pl[i] : NULL);
        d->port[i] = port ? strdup(port) : NULL;
        const char *h = d->host[i] ? d->host[i] : d->hostaddr[i] ? d->hostaddr[i] : "localhost";
        snprintf(d->name[i], sizeof d->name[i], "%s:%s", h, port ? port : "5432");
    }
    d->kw = calloc(count + NDEFAULTS + 1, sizeof *d->kw);
    d->val = calloc(count + NDEFAULTS + 1, sizeof *d->val);
    int nomem = !d->kw || !d->val;
    for (PQconninfoOption *o = opts; !nomem && o->keyword; o++) {
        if (!o->val || is_per_node(o->keyword)) continue;
        if (strcmp(o->keyword, "password") == 0 && !d->password && !(d->password = strdup(o->val))) nomem = 1;
        if (add_kw(d, o->keyword, o->val) != 0) nomem = 1;
    }
    if (!nomem && !has_kw(d, "connect_timeout")) {
        char buf[16];
        snprintf(buf, sizeof buf, "%u", connect_timeout_s);
        nomem = add_kw(d, "connect_timeout", buf) != 0;
    }
    for (size_t j = 0; !nomem && j < NDEFAULTS; j++)
        if (!has_kw(d, defaults[j][0])) nomem = add_kw(d, defaults[j][0], defaults[j][1]) != 0;
    if (nomem) st = wr_err_set(e, NULL, WR_ERR_NOMEM, -1, NULL, "out of memory");
done:
    free_list(hl, nh > 0 ? nh : 0);
    free_list(al, na > 0 ? na : 0);
    free_list(pl, np > 0 ? np : 0);
    PQconninfoFree(opts);
    if (st != WR_OK) wr_dsn_free(d);
    return st;
}

int wr_dsn_params(const wr_dsn *d, size_t i, const char **kw, const char **val, size_t cap) {
    size_t k = 0;
    if (i >= d->n || d->nkw + 4 > cap) return -1;
    for (size_t j = 0; j < d->nkw; j++, k++) {
        kw[k] = d->kw[j];
        val[k] = d->val[j];
    }
    if (d->host[i]) { kw[k] = "host"; val[k++] = d->host[i]; }
    if (d->hostaddr[i]) { kw[k] = "hostaddr"; val[k++] = d->hostaddr[i]; }
    if (d->port[i]) { kw[k] = "port"; val[k++] = d->port[i]; }
    kw[k] = NULL;
    val[k] = NULL;
    return (int)k;
}
