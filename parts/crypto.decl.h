/* ==========================================================================
   crypto
   SHA-256 (FIPS 180-4), HMAC-SHA256 (RFC 2104) and lower-case hex, our own
   so that signing never depends on which TLS library libcurl was built with.
   ========================================================================== */

#define SPIM_SHA256_SIZE 32
#define SPIM_SHA256_HEX_SIZE 65 /* 64 hex digits + NUL */

/* Streaming context. Not named spim_sha256: C++ forbids a type and the
   one-shot function below sharing a name. */
typedef struct spim_sha256_ctx {
    uint32_t state[8];
    uint64_t total;            /* bytes hashed so far */
    unsigned char block[64];
    size_t used;               /* bytes waiting in block */
} spim_sha256_ctx;

SPIMDEF void spim_sha256_init(spim_sha256_ctx *ctx);
SPIMDEF void spim_sha256_update(spim_sha256_ctx *ctx, const void *data, size_t len);
SPIMDEF void spim_sha256_final(spim_sha256_ctx *ctx, unsigned char out[SPIM_SHA256_SIZE]);
SPIMDEF void spim_sha256(const void *data, size_t len, unsigned char out[SPIM_SHA256_SIZE]);
/* SHA-256 of data as 64 lower-case hex digits + NUL. */
SPIMDEF void spim_sha256_hex(const void *data, size_t len, char out[SPIM_SHA256_HEX_SIZE]);
SPIMDEF void spim_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                              unsigned char out[SPIM_SHA256_SIZE]);
/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
SPIMDEF void spim_hex(const unsigned char *bytes, size_t n, char *out);
