/* ==========================================================================
   crypto
   SHA-256 as specified in FIPS 180-4 section 6.2, HMAC as in RFC 2104, and
   lower-case hex. Portable C: no intrinsics, byte order handled explicitly.
   ========================================================================== */

#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

static const uint32_t spim__sha256_k[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u
};

#define SPIM__ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void spim__sha256_block(uint32_t state[8], const unsigned char *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, h, t1, t2;
    int i;
    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = SPIM__ROR32(w[i - 15], 7) ^ SPIM__ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = SPIM__ROR32(w[i - 2], 17) ^ SPIM__ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = state[0]; b = state[1]; c = state[2]; d = state[3];
    e = state[4]; f = state[5]; g = state[6]; h = state[7];
    for (i = 0; i < 64; i++) {
        t1 = h + (SPIM__ROR32(e, 6) ^ SPIM__ROR32(e, 11) ^ SPIM__ROR32(e, 25)) +
             ((e & f) ^ (~e & g)) + spim__sha256_k[i] + w[i];
        t2 = (SPIM__ROR32(a, 2) ^ SPIM__ROR32(a, 13) ^ SPIM__ROR32(a, 22)) +
             ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

SPIMDEF void spim_sha256_init(spim_sha256_ctx *ctx)
{
    static const uint32_t iv[8] = {
        0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
        0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u
    };
    memcpy(ctx->state, iv, sizeof iv);
    ctx->total = 0;
    ctx->used = 0;
}

SPIMDEF void spim_sha256_update(spim_sha256_ctx *ctx, const void *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    if (!len) return; /* data may be NULL then */
    ctx->total += len;
    if (ctx->used) {
        size_t take = 64 - ctx->used < len ? 64 - ctx->used : len;
        memcpy(ctx->block + ctx->used, p, take);
        ctx->used += take;
        p += take;
        len -= take;
        if (ctx->used < 64) return;
        spim__sha256_block(ctx->state, ctx->block);
        ctx->used = 0;
    }
    /* whole blocks straight from the input: no copy for large buffers */
    for (; len >= 64; p += 64, len -= 64) spim__sha256_block(ctx->state, p);
    if (len) memcpy(ctx->block, p, len);
    ctx->used = len;
}

SPIMDEF void spim_sha256_final(spim_sha256_ctx *ctx, unsigned char out[SPIM_SHA256_SIZE])
{
    uint64_t bits = ctx->total * 8;
    int i;
    ctx->block[ctx->used++] = 0x80;
    if (ctx->used > 56) {
        memset(ctx->block + ctx->used, 0, 64 - ctx->used);
        spim__sha256_block(ctx->state, ctx->block);
        ctx->used = 0;
    }
    memset(ctx->block + ctx->used, 0, 56 - ctx->used);
    for (i = 0; i < 8; i++) ctx->block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    spim__sha256_block(ctx->state, ctx->block);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(ctx->state[i] >> 24);
        out[4 * i + 1] = (unsigned char)(ctx->state[i] >> 16);
        out[4 * i + 2] = (unsigned char)(ctx->state[i] >> 8);
        out[4 * i + 3] = (unsigned char)ctx->state[i];
    }
    /* the context held message bytes (maybe key material): do not leave them */
    memset(ctx, 0, sizeof *ctx);
}

SPIMDEF void spim_sha256(const void *data, size_t len, unsigned char out[SPIM_SHA256_SIZE])
{
    spim_sha256_ctx ctx;
    spim_sha256_init(&ctx);
    spim_sha256_update(&ctx, data, len);
    spim_sha256_final(&ctx, out);
}

SPIMDEF void spim_hex(const unsigned char *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = 0;
}

SPIMDEF void spim_sha256_hex(const void *data, size_t len, char out[SPIM_SHA256_HEX_SIZE])
{
    unsigned char digest[SPIM_SHA256_SIZE];
    spim_sha256(data, len, digest);
    spim_hex(digest, sizeof digest, out);
}

SPIMDEF void spim_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                              unsigned char out[SPIM_SHA256_SIZE])
{
    unsigned char k[64], pad[64], inner[SPIM_SHA256_SIZE];
    spim_sha256_ctx ctx;
    int i;
    memset(k, 0, sizeof k);
    /* RFC 2104: keys longer than the block size are hashed first */
    if (key_len > sizeof k) spim_sha256(key, key_len, k);
    else if (key_len) memcpy(k, key, key_len);
    for (i = 0; i < 64; i++) pad[i] = (unsigned char)(k[i] ^ 0x36);
    spim_sha256_init(&ctx);
    spim_sha256_update(&ctx, pad, sizeof pad);
    spim_sha256_update(&ctx, data, len);
    spim_sha256_final(&ctx, inner);
    for (i = 0; i < 64; i++) pad[i] = (unsigned char)(k[i] ^ 0x5c);
    spim_sha256_init(&ctx);
    spim_sha256_update(&ctx, pad, sizeof pad);
    spim_sha256_update(&ctx, inner, sizeof inner);
    spim_sha256_final(&ctx, out);
    memset(k, 0, sizeof k);
    memset(pad, 0, sizeof pad);
}

#undef SPIM__ROR32

#ifdef __cplusplus
}
#endif
