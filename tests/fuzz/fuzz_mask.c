/* fuzz_mask.c — wr_mask_secrets, the masking of every message: any text,
 * any password, any buffer size.
 *   - it returns (it once spun forever when the password was part of the
 *     mask "********");
 *   - the result is NUL-terminated within the buffer;
 *   - a password without '*' appears nowhere in the result (a '*' in it
 *     can meet the mask's own stars, which are no secret). */
#include "fuzz_util.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_bytes b = {data, size};
    char secret[64];
    fz_str(&b, secret, sizeof secret - 1);
    size_t cap = 1 + fz_u8(&b) % 255;
    char *text = malloc(cap);
    if (!text) return 0;
    size_t len = b.left < cap - 1 ? b.left : cap - 1;
    memcpy(text, b.p, len);
    text[len] = '\0';
    wr_mask_secrets(text, cap, secret[0] ? secret : NULL);
    FZ_REQUIRE(memchr(text, '\0', cap) != NULL);
    if (secret[0] && !strchr(secret, '*')) FZ_REQUIRE(strstr(text, secret) == NULL);
    free(text);
    return 0;
}
