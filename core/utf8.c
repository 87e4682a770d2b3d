#include "core/utf8.h"

#include <stdint.h>

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
     * byte >= 0xF0 starts a 4-byte one, which is a surrogate pair in UTF-16. */
    const unsigned char *p = (const unsigned char *)s;
    size_t units = 0;
    for (size_t i = 0; i < n; i++)
        units += (size_t)((p[i] & 0xC0) != 0x80) + (size_t)(p[i] >= 0xF0);
    return units;
}
