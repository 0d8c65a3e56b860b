/* crypto: SHA-256 against FIPS 180-4's examples, HMAC-SHA256 against
   RFC 4231's test cases, and streaming equal to one-shot hashing. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "spim_test.h"

static void sha_hex(const void *data, size_t len, char out[SPIM_SHA256_HEX_SIZE])
{
    spim__sha256_hex(data, len, out);
}

static void hmac_hex(const void *key, size_t key_len, const char *data, size_t data_len,
                     size_t out_bytes, char *out)
{
    unsigned char mac[SPIM_SHA256_SIZE];
    spim_hmac_sha256(key, key_len, data, data_len, mac);
    spim__hex(mac, out_bytes, out);
}

TEST(sha256_empty_string)
{
    char hex[SPIM_SHA256_HEX_SIZE];
    sha_hex("", 0, hex);
    CHECK_STR("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", hex);
    sha_hex(NULL, 0, hex);
    CHECK_STR("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", hex);
}

TEST(sha256_fips_one_block_abc)
{
    char hex[SPIM_SHA256_HEX_SIZE];
    sha_hex("abc", 3, hex);
    CHECK_STR("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex);
}

TEST(sha256_fips_448_bit_message)
{
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    char hex[SPIM_SHA256_HEX_SIZE];
    CHECK_INT(56, strlen(m));
    sha_hex(m, strlen(m), hex);
    CHECK_STR("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", hex);
}

TEST(sha256_fips_896_bit_message)
{
    const char *m = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                    "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    char hex[SPIM_SHA256_HEX_SIZE];
    CHECK_INT(112, strlen(m));
    sha_hex(m, strlen(m), hex);
    CHECK_STR("cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1", hex);
}

TEST(sha256_one_million_a)
{
    char chunk[1000], hex[SPIM_SHA256_HEX_SIZE];
    unsigned char digest[SPIM_SHA256_SIZE];
    spim__sha256_ctx ctx;
    int i;
    memset(chunk, 'a', sizeof chunk);
    spim__sha256_init(&ctx);
    for (i = 0; i < 1000; i++) spim__sha256_update(&ctx, chunk, sizeof chunk);
    spim__sha256_final(&ctx, digest);
    spim__hex(digest, sizeof digest, hex);
    CHECK_STR("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", hex);
}

/* Lengths around the padding boundaries (55/56/63/64 bytes) take the paths
   where the length goes into the same block or spills into a new one. */
TEST(sha256_padding_boundaries_match_streaming_byte_by_byte)
{
    static const size_t lens[] = { 0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129 };
    unsigned char msg[129], one[SPIM_SHA256_SIZE], many[SPIM_SHA256_SIZE];
    size_t i, j;
    for (i = 0; i < sizeof msg; i++) msg[i] = (unsigned char)(i * 7 + 3);
    for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        spim__sha256_ctx ctx;
        spim_sha256(msg, lens[i], one);
        spim__sha256_init(&ctx);
        for (j = 0; j < lens[i]; j++) spim__sha256_update(&ctx, msg + j, 1);
        spim__sha256_final(&ctx, many);
        CHECKF(memcmp(one, many, sizeof one) == 0, "length %zu", lens[i]);
    }
}

TEST(sha256_streaming_in_odd_pieces_equals_one_shot)
{
    static const size_t pieces[] = { 1, 3, 7, 13, 63, 64, 65, 127, 129, 1000, 4093 };
    size_t n = 20011, i, off, p;
    unsigned char *msg = (unsigned char *)malloc(n), one[SPIM_SHA256_SIZE], got[SPIM_SHA256_SIZE];
    uint32_t x = 12345;
    REQUIRE(msg != NULL);
    for (i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        msg[i] = (unsigned char)(x >> 16);
    }
    spim_sha256(msg, n, one);
    for (p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
        spim__sha256_ctx ctx;
        spim__sha256_init(&ctx);
        for (off = 0; off < n; off += pieces[p])
            spim__sha256_update(&ctx, msg + off, n - off < pieces[p] ? n - off : pieces[p]);
        spim__sha256_final(&ctx, got);
        CHECKF(memcmp(one, got, sizeof one) == 0, "pieces of %zu bytes", pieces[p]);
    }
    /* and pieces of varying sizes, including empty updates */
    {
        spim__sha256_ctx ctx;
        size_t step = 0;
        spim__sha256_init(&ctx);
        for (off = 0; off < n; off += step) {
            step = (off * 31 + 17) % 150; /* now and then 0: an empty update */
            if (step > n - off) step = n - off;
            spim__sha256_update(&ctx, msg + off, step);
            if (!step) {
                spim__sha256_update(&ctx, msg + off, 1);
                step = 1;
            }
        }
        spim__sha256_final(&ctx, got);
        CHECK(memcmp(one, got, sizeof one) == 0);
    }
    free(msg);
}

/* The portable compression on its own (the dispatch above picks the SHA
   extensions where the CPU has them): FIPS 180-4's "abc", one padded block. */
TEST(sha256_portable_blocks_give_fips_abc)
{
    uint32_t st[8] = { 0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                       0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u };
    static const uint32_t want[8] = { 0xba7816bfu, 0x8f01cfeau, 0x414140deu, 0x5dae2223u,
                                      0xb00361a3u, 0x96177a9cu, 0xb410ff61u, 0xf20015adu };
    unsigned char block[64] = { 'a', 'b', 'c', 0x80 };
    block[63] = 24; /* the length in bits */
    spim__sha256_blocks_scalar(st, block, 1);
    CHECK(memcmp(st, want, sizeof want) == 0);
}

/* The SHA-extension compression equals the portable one from any state,
   for runs of 0 to 40 blocks of pseudo-random data. */
TEST(sha256_cpu_extensions_equal_portable_blocks)
{
    unsigned char msg[40 * 64];
    uint32_t x = 777, a[8], b[8];
    size_t i, n;
#ifndef SPIM__X86
    SKIP("not an x86-64 build");
#else
    if (!spim__sha256_shani_available()) SKIP("this CPU has no SHA extensions");
    for (i = 0; i < sizeof msg; i++) {
        x = x * 1103515245u + 12345u;
        msg[i] = (unsigned char)(x >> 16);
    }
    for (n = 0; n <= 40; n++) {
        for (i = 0; i < 8; i++) a[i] = b[i] = (uint32_t)(n * 0x9e3779b9u + i * 0x85ebca6bu);
        spim__sha256_blocks_scalar(a, msg, n);
        spim__sha256_blocks_shani(b, msg, n);
        CHECKF(memcmp(a, b, sizeof a) == 0, "%zu blocks", n);
    }
#endif
}

TEST(hex_is_lower_case_and_terminated)
{
    const unsigned char bytes[] = { 0x00, 0x0f, 0xa5, 0xff };
    char out[9];
    memset(out, 'x', sizeof out);
    spim__hex(bytes, sizeof bytes, out);
    CHECK_STR("000fa5ff", out);
}

TEST(hmac_rfc4231_case1)
{
    unsigned char key[20];
    char hex[SPIM_SHA256_HEX_SIZE];
    memset(key, 0x0b, sizeof key);
    hmac_hex(key, sizeof key, "Hi There", 8, 32, hex);
    CHECK_STR("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", hex);
}

TEST(hmac_rfc4231_case2_short_key)
{
    char hex[SPIM_SHA256_HEX_SIZE];
    hmac_hex("Jefe", 4, "what do ya want for nothing?", 28, 32, hex);
    CHECK_STR("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", hex);
}

TEST(hmac_rfc4231_case3)
{
    unsigned char key[20];
    char data[50], hex[SPIM_SHA256_HEX_SIZE];
    memset(key, 0xaa, sizeof key);
    memset(data, 0xdd, sizeof data);
    hmac_hex(key, sizeof key, data, sizeof data, 32, hex);
    CHECK_STR("773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", hex);
}

TEST(hmac_rfc4231_case4)
{
    unsigned char key[25];
    char data[50], hex[SPIM_SHA256_HEX_SIZE];
    size_t i;
    for (i = 0; i < sizeof key; i++) key[i] = (unsigned char)(i + 1);
    memset(data, 0xcd, sizeof data);
    hmac_hex(key, sizeof key, data, sizeof data, 32, hex);
    CHECK_STR("82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", hex);
}

TEST(hmac_rfc4231_case5_truncated_to_128_bits)
{
    unsigned char key[20];
    char hex[SPIM_SHA256_HEX_SIZE];
    memset(key, 0x0c, sizeof key);
    hmac_hex(key, sizeof key, "Test With Truncation", 20, 16, hex);
    CHECK_STR("a3b6167473100ee06e0c796c2955552b", hex);
}

TEST(hmac_rfc4231_case6_key_longer_than_block)
{
    unsigned char key[131];
    const char *data = "Test Using Larger Than Block-Size Key - Hash Key First";
    char hex[SPIM_SHA256_HEX_SIZE];
    memset(key, 0xaa, sizeof key);
    hmac_hex(key, sizeof key, data, strlen(data), 32, hex);
    CHECK_STR("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", hex);
}

TEST(hmac_rfc4231_case7_long_key_and_data)
{
    unsigned char key[131];
    const char *data = "This is a test using a larger than block-size key and a larger than "
                       "block-size data. The key needs to be hashed before being used by the "
                       "HMAC algorithm.";
    char hex[SPIM_SHA256_HEX_SIZE];
    memset(key, 0xaa, sizeof key);
    hmac_hex(key, sizeof key, data, strlen(data), 32, hex);
    CHECK_STR("9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", hex);
}

/* A key of exactly one block is used as is, one byte more is hashed: both
   must agree with the definition (key hashed to 32 bytes when over 64). */
TEST(hmac_key_of_65_bytes_equals_hmac_with_its_hash)
{
    unsigned char key[65], hashed[SPIM_SHA256_SIZE], a[SPIM_SHA256_SIZE], b[SPIM_SHA256_SIZE];
    memset(key, 0x5a, sizeof key);
    spim_sha256(key, sizeof key, hashed);
    spim_hmac_sha256(key, sizeof key, "msg", 3, a);
    spim_hmac_sha256(hashed, sizeof hashed, "msg", 3, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    spim_hmac_sha256(key, 64, "msg", 3, b);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

/* Unsigned values, printed in hex (CRCs). */
#define CHECK_UINT(expected, got) do { \
        unsigned long long spim_t_e = (expected), spim_t_g = (got); \
        if (spim_t_e != spim_t_g) { spim_t_fail_at(__FILE__, __LINE__); \
            printf("    %s\n    expected: 0x%llX\n    got:      0x%llX\n", #got, spim_t_e, spim_t_g); } } while (0)

/* CRCs: the catalogue's check value (the CRC of "123456789") for each. */
TEST(crc_check_values_of_123456789)
{
    CHECK_UINT(0xCBF43926u, spim__crc32(0, "123456789", 9));
    CHECK_UINT(0xE3069283u, spim__crc32c(0, "123456789", 9));
    CHECK_UINT(0xE3069283u, spim__crc32c_portable(0, "123456789", 9));
    CHECK_UINT(0xAE8B14860A799888ull, spim__crc64nvme(0, "123456789", 9));
    CHECK_UINT(0, spim__crc32c(0, "", 0));
}

/* Every length and alignment, whole or in two pieces: the CPU's CRC-32C
   equals the portable one, and updating in pieces equals one call. */
TEST(crc32c_cpu_equals_portable_in_any_pieces)
{
    unsigned char buf[600];
    size_t i, n, cut, bad = 0;
    uint32_t seed = 12345;
    for (i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)((seed = seed * 1103515245u + 12345u) >> 24);
    printf("    CRC-32C on the CPU's instruction: %s\n", spim__crc32c_hw_available() ? "yes" : "no");
    for (n = 0; n < 300; n++)
        for (cut = 0; cut <= n; cut += 7) {
            uint32_t whole = spim__crc32c_portable(0, buf + (n & 7), n);
            uint32_t two = spim__crc32c(spim__crc32c(0, buf + (n & 7), cut), buf + (n & 7) + cut, n - cut);
            uint32_t a = spim__crc32(spim__crc32(0, buf, cut), buf + cut, n - cut);
            uint64_t w64 = spim__crc64nvme(0, buf, n);
            uint64_t t64 = spim__crc64nvme(spim__crc64nvme(0, buf, cut), buf + cut, n - cut);
            bad += whole != two || a != spim__crc32(0, buf, n) || w64 != t64;
        }
    CHECK_UINT(0, bad);
}

/* CRC-32 is zlib's: the same value for a megabyte. */
TEST(crc32_equals_zlib_on_a_megabyte)
{
    static unsigned char big[1u << 20];
    size_t i;
    for (i = 0; i < sizeof big; i++) big[i] = (unsigned char)(i * 31u + (i >> 9));
    CHECK_UINT(crc32(0L, big, (uInt)sizeof big), spim__crc32(0, big, sizeof big));
    CHECK_UINT(spim__crc32c_portable(0, big, sizeof big), spim__crc32c(0, big, sizeof big));
}

TEST(base64_pads_like_rfc4648)
{
    char out[16];
    spim__base64((const unsigned char *)"f", 1, out);
    CHECK_STR("Zg==", out);
    spim__base64((const unsigned char *)"fo", 2, out);
    CHECK_STR("Zm8=", out);
    spim__base64((const unsigned char *)"foobar", 6, out);
    CHECK_STR("Zm9vYmFy", out);
}

int main(void)
{
    RUN(sha256_empty_string);
    RUN(sha256_fips_one_block_abc);
    RUN(sha256_fips_448_bit_message);
    RUN(sha256_fips_896_bit_message);
    RUN(sha256_one_million_a);
    RUN(sha256_padding_boundaries_match_streaming_byte_by_byte);
    RUN(sha256_streaming_in_odd_pieces_equals_one_shot);
    RUN(sha256_portable_blocks_give_fips_abc);
    RUN(sha256_cpu_extensions_equal_portable_blocks);
    RUN(hex_is_lower_case_and_terminated);
    RUN(hmac_rfc4231_case1);
    RUN(hmac_rfc4231_case2_short_key);
    RUN(hmac_rfc4231_case3);
    RUN(hmac_rfc4231_case4);
    RUN(hmac_rfc4231_case5_truncated_to_128_bits);
    RUN(hmac_rfc4231_case6_key_longer_than_block);
    RUN(hmac_rfc4231_case7_long_key_and_data);
    RUN(hmac_key_of_65_bytes_equals_hmac_with_its_hash);
    RUN(crc_check_values_of_123456789);
    RUN(crc32c_cpu_equals_portable_in_any_pieces);
    RUN(crc32_equals_zlib_on_a_megabyte);
    RUN(base64_pads_like_rfc4648);
    return spim_test_finish();
}
