#ifndef BLOBSTORE_CCRYPTO_SHIM_H
#define BLOBSTORE_CCRYPTO_SHIM_H
// SHA-256 from libcrypto. The low-level SHA256_CTX API is used on purpose: its state is a
// plain struct, so a resumable upload can persist a half-finished digest and continue it
// in another process. libcrypto dispatches to the CPU's SHA instructions either way.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
// HMAC-SHA256 and MD5 for the S3 client (ObjectStorage): SigV4 signing keys and the
// Content-MD5 that DeleteObjects requires. One-shot EVP/HMAC calls, no state kept.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

// CRC32C (Castagnoli), the per-record checksum of pack files. Uses the SSE4.2 crc32
// instruction when present, a bitwise fallback otherwise (correct, slow, rare).
static inline uint32_t blobstore_crc32c_soft(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static inline uint32_t blobstore_crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c = ~crc & 0xffffffffu;
    while (n >= 8) { uint64_t v; memcpy(&v, p, 8); c = __builtin_ia32_crc32di(c, v); p += 8; n -= 8; }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
static inline int blobstore_has_sse42(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & bit_SSE4_2) != 0;
}
#endif

static inline uint32_t blobstore_crc32c(uint32_t crc, const void *data, size_t n) {
#if defined(__x86_64__)
    static int hw = -1;
    if (hw < 0) hw = blobstore_has_sse42();
    if (hw) return blobstore_crc32c_hw(crc, (const uint8_t *)data, n);
#endif
    return blobstore_crc32c_soft(crc, (const uint8_t *)data, n);
}
#endif
