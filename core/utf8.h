/*
 * utf8: validation of UTF-8 text and its length in UTF-16 code units
 * (JavaScript's String.length), which is what Nest's frame length counts.
 *
 * Valid means RFC 3629: no overlong forms, no encoded surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF.
 */
#ifndef PG_CORE_UTF8_H
#define PG_CORE_UTF8_H

#include <stddef.h>

/*
 * Length of the UTF-8 sequence starting at p[0] when it is complete and
 * valid: 1..4. Returns 0 when the n available bytes (n >= 1) are a valid but
 * incomplete prefix of a sequence (more bytes are needed), -1 when invalid.
 */
int utf8_sequence(const unsigned char *p, size_t n);

/* 1 when [p, p+n) is entirely valid UTF-8, else 0. */
int utf8_valid(const char *p, size_t n);

/*
 * UTF-16 code units of [p, p+n), which must be valid UTF-8: one per code
 * point below U+10000, two (a surrogate pair) for the others.
 */
size_t utf8_utf16_units(const char *p, size_t n);

#endif
