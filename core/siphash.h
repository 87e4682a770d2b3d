/*
 * siphash: SipHash-2-4 (Aumasson and Bernstein), a keyed hash with 64- or
 * 128-bit output, for hash tables whose keys come from clients: without
 * the 128-bit key nobody can choose inputs that collide, so a table keyed
 * by client IPs or header values cannot be flooded into long chains.
 *
 * Streaming: init, any number of updates (the result depends only on the
 * concatenated bytes, not on how they were split), then one final of the
 * size given to init. Nothing is allocated; a siphash_t is plain data.
 */
#ifndef PG_CORE_SIPHASH_H
#define PG_CORE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct siphash {
    uint64_t v0, v1, v2, v3;
    uint64_t tail;   /* the bytes of a partial 8-byte word, little-endian */
    uint64_t length; /* bytes hashed so far */
} siphash_t;

/* The key is k0 || k1, each the little-endian reading of 8 key bytes.
 * out_bytes is 8 or 16: the final that will be called. */
void siphash_init(siphash_t *s, uint64_t k0, uint64_t k1, unsigned out_bytes);
void siphash_update(siphash_t *s, const void *p, size_t n);
/* After init with 8. */
uint64_t siphash_final64(siphash_t *s);
/* After init with 16: the 16 bytes of the reference implementation. */
void siphash_final128(siphash_t *s, unsigned char out[16]);

/* One-shot 64-bit hash of n bytes. */
uint64_t siphash64(uint64_t k0, uint64_t k1, const void *p, size_t n);

#endif
