/* stmtcache.c — which SQL texts a connection has prepared, under which name.
 * Bounded; the least recently used entry makes room, and its server-side
 * statement is queued for DEALLOCATE on the next round trip. */
#include <stdlib.h>
#include <string.h>

#include "conn.h"

int wr_stmtcache_init(wr_stmtcache *c, uint32_t cap) {
    memset(c, 0, sizeof *c);
    if (cap == 0) return 0;
    c->slots = calloc(cap, sizeof *c->slots);
    if (!c->slots) return -1;
    c->cap = cap;
    return 0;
}

void wr_stmtcache_clear(wr_stmtcache *c) {
    for (uint32_t i = 0; i < c->count; i++) free(c->slots[i].sql);
    c->count = 0;
    c->ndealloc = 0;
}

void wr_stmtcache_free(wr_stmtcache *c) {
    wr_stmtcache_clear(c);
    free(c->slots);
    memset(c, 0, sizeof *c);
}

/* FNV-1a, 64 bit. */
uint64_t wr_stmt_hash(const char *sql) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return h;
}

wr_stmt *wr_stmtcache_find(wr_stmtcache *c, const char *sql, uint64_t hash) {
    for (uint32_t i = 0; i < c->count; i++) {
        wr_stmt *s = &c->slots[i];
        if (s->hash == hash && strcmp(s->sql, sql) == 0) {
            s->used = ++c->tick;
            return s;
        }
    }
    return NULL;
}

wr_stmt *wr_stmtcache_add(wr_stmtcache *c, const char *sql, uint64_t hash) {
    if (c->cap == 0) return NULL;
    char *copy = strdup(sql);
    if (!copy) return NULL;
    wr_stmt *slot;
    if (c->count < c->cap) {
        slot = &c->slots[c->count++];
    } else {
        if (c->ndealloc == sizeof c->dealloc / sizeof c->dealloc[0]) {
            free(copy);
            return NULL;
        }
        slot = &c->slots[0];
        for (uint32_t i = 1; i < c->count; i++)
            if (c->slots[i].used < slot->used) slot = &c->slots[i];
        c->dealloc[c->ndealloc++] = slot->id;
        free(slot->sql);
    }
    slot->hash = hash;
    slot->sql = copy;
    slot->id = c->next_id++;
    slot->used = ++c->tick;
    return slot;
}

void wr_stmtcache_remove(wr_stmtcache *c, uint32_t id, int queue_dealloc) {
    for (uint32_t i = 0; i < c->count; i++) {
        if (c->slots[i].id != id) continue;
        free(c->slots[i].sql);
        c->slots[i] = c->slots[--c->count];
        if (queue_dealloc && c->ndealloc < sizeof c->dealloc / sizeof c->dealloc[0])
            c->dealloc[c->ndealloc++] = id;
        return;
    }
}
