#include "core/siphash.h"

static uint64_t rotl(uint64_t x, unsigned b) { return x << b | x >> (64 - b); }

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void store_le64(unsigned char *p, uint64_t v)
{
    for (unsigned i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void sip_round(siphash_t *s)
{
    s->v0 += s->v1;
    s->v1 = rotl(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = rotl(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = rotl(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = rotl(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = rotl(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = rotl(s->v2, 32);
}

/* Two compression rounds per 8-byte word (the "2" of SipHash-2-4). */
static void compress(siphash_t *s, uint64_t m)
{
    s->v3 ^= m;
    sip_round(s);
    sip_round(s);
    s->v0 ^= m;
}

/* Four finalization rounds (the "4"), then the output word. */
static uint64_t finish_word(siphash_t *s)
{
    for (int i = 0; i < 4; i++)
        sip_round(s);
    return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

void siphash_init(siphash_t *s, uint64_t k0, uint64_t k1, unsigned out_bytes)
{
    s->v0 = k0 ^ 0x736f6d6570736575ull;
    s->v1 = k1 ^ 0x646f72616e646f6dull;
    s->v2 = k0 ^ 0x6c7967656e657261ull;
    s->v3 = k1 ^ 0x7465646279746573ull;
    if (out_bytes == 16)
        s->v1 ^= 0xee;
    s->tail = 0;
    s->length = 0;
}

void siphash_update(siphash_t *s, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n > 0 && s->length % 8 != 0) { /* complete a partial word */
        s->tail |= (uint64_t)*b++ << (8 * (s->length % 8));
        s->length++;
        n--;
        if (s->length % 8 == 0) {
            compress(s, s->tail);
            s->tail = 0;
        }
    }
    for (; n >= 8; n -= 8, b += 8, s->length += 8)
        compress(s, load_le64(b));
    for (; n > 0; n--, s->length++)
        s->tail |= (uint64_t)*b++ << (8 * (s->length % 8));
}

/* The last word: the pending bytes and the length's low byte on top. */
static void compress_last(siphash_t *s)
{
    compress(s, s->tail | (s->length & 0xff) << 56);
}

uint64_t siphash_final64(siphash_t *s)
{
    compress_last(s);
    s->v2 ^= 0xff;
    return finish_word(s);
}

void siphash_final128(siphash_t *s, unsigned char out[16])
{
    compress_last(s);
    s->v2 ^= 0xee;
    store_le64(out, finish_word(s));
    s->v1 ^= 0xdd;
    store_le64(out + 8, finish_word(s));
}

uint64_t siphash64(uint64_t k0, uint64_t k1, const void *p, size_t n)
{
    siphash_t s;
    siphash_init(&s, k0, k1, 8);
    siphash_update(&s, p, n);
    return siphash_final64(&s);
}
