#include "core/utf8.h"

#include <stdint.h>
#include <string.h>

int utf8_sequence(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    int len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return -1;
    }
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n)
            return 0;
        unsigned char lo_i = i == 1 ? lo : 0x80, hi_i = i == 1 ? hi : 0xBF;
        if (p[i] < lo_i || p[i] > hi_i)
            return -1;
    }
    return len;
}

int utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        int len = utf8_sequence(p + i, n - i);
        if (len <= 0)
            return 0;
        i += (size_t)len;
    }
    return 1;
}

size_t utf8_utf16_units(const char *s, size_t n)
{
    /* Every byte that is not a continuation byte starts a code point; a lead
     * byte >= 0xF0 starts a 4-byte one, which is a surrogate pair in UTF-16.
     * So units = bytes - continuation bytes + 4-byte leads, counted 8 bytes
     * at a time: bit 7 of (w << k) is bit 7-k of the same byte. */
    const unsigned char *p = (const unsigned char *)s;
    size_t units = n, i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        uint64_t high = w & UINT64_C(0x8080808080808080);
        if (!high)
            continue;
        uint64_t continuation = high & ~(w << 1);
        uint64_t four_byte_lead = high & (w << 1) & (w << 2) & (w << 3);
        units -= (size_t)__builtin_popcountll(continuation);
        units += (size_t)__builtin_popcountll(four_byte_lead);
    }
    for (; i < n; i++) {
        units -= (size_t)((p[i] & 0xC0) == 0x80);
        units += (size_t)(p[i] >= 0xF0);
    }
    return units;
}
