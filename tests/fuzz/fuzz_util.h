/* fuzz_util.h — what the fuzz targets share: reading typed values off the
 * fuzzer's bytes (zeros once they run out), and a failure that prints the
 * input and aborts, so libFuzzer saves it as a crash. */
#ifndef WR_FUZZ_UTIL_H
#define WR_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *p;
    size_t left;
} fz_bytes;

static inline uint8_t fz_u8(fz_bytes *b) {
    if (!b->left) return 0;
    b->left--;
    return *b->p++;
}

static inline uint32_t fz_u32(fz_bytes *b) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v = v << 8 | fz_u8(b);
    return v;
}

static inline uint64_t fz_u64(fz_bytes *b) { return (uint64_t)fz_u32(b) << 32 | fz_u32(b); }

/* Up to max bytes as a NUL-terminated string in out (max + 1 bytes): a
 * length byte, then the text (a NUL inside ends it early). */
static inline size_t fz_str(fz_bytes *b, char *out, size_t max) {
    size_t len = fz_u8(b) % (max + 1);
    if (len > b->left) len = b->left;
    memcpy(out, b->p, len);
    out[len] = '\0';
    b->p += len;
    b->left -= len;
    return strlen(out);
}

static inline void fz_fail(const char *what, const uint8_t *data, size_t size) {
    fprintf(stderr, "fuzz: %s; input (%zu bytes):", what, size);
    for (size_t i = 0; i < size && i < 256; i++) fprintf(stderr, " %02x", data[i]);
    fprintf(stderr, "\n");
    abort();
}

#define FZ_REQUIRE(cond) do { if (!(cond)) fz_fail(#cond, data, size); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
