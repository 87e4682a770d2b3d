/*
 * buf: a growable byte buffer, and span: a borrowed slice of bytes.
 *
 * A buf_t owns its memory (data may be NULL while cap is 0). A span_t owns
 * nothing: it points into memory that someone else keeps alive, and the
 * function that hands one out says until when it stays valid.
 *
 * Errors: functions that grow return 0, or -ENOMEM with the buffer unchanged.
 */
#ifndef PG_CORE_BUF_H
#define PG_CORE_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct span {
    const char *p;
    size_t n;
} span_t;

#define SPAN_LIT(s) ((span_t){ (s), sizeof(s) - 1 })

static inline span_t span_of(const char *p, size_t n) { return (span_t){ p, n }; }
static inline span_t span_cstr(const char *s) { return (span_t){ s, s ? strlen(s) : 0 }; }
static inline int span_eq(span_t a, span_t b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}
static inline int span_eq_cstr(span_t a, const char *s) { return span_eq(a, span_cstr(s)); }

typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
} buf_t;

#define BUF_INIT { NULL, 0, 0 }

/* Makes room for at least `extra` more bytes after len. */
int buf_reserve(buf_t *b, size_t extra);
int buf_append(buf_t *b, const void *p, size_t n);
static inline int buf_append_span(buf_t *b, span_t s) { return buf_append(b, s.p, s.n); }
static inline int buf_append_cstr(buf_t *b, const char *s) { return buf_append(b, s, strlen(s)); }
/* Appends the decimal digits of v. */
int buf_append_u64(buf_t *b, unsigned long long v);

/* v in decimal into out, without a NUL; returns the number of digits (at
 * most 20). A hand loop: snprintf costs ten times as much, and this runs
 * several times per request. */
#define U64_DECIMAL_MAX 20
size_t u64_decimal(unsigned long long v, char out[U64_DECIMAL_MAX]);
/* Drops the first n bytes (n <= len), moving the rest to the front. */
void buf_consume(buf_t *b, size_t n);
/* Empties the buffer, keeping its memory for reuse. */
static inline void buf_clear(buf_t *b) { b->len = 0; }
/* Releases the memory; the buffer is then empty and reusable. */
void buf_free(buf_t *b);
/* Appends a NUL and hands the bytes to the caller as a C string (an empty
 * string when len is 0), to be released with free(); the buffer is then empty
 * and owns nothing. Returns NULL when out of memory, with the buffer unchanged
 * (still to be freed by its owner). */
char *buf_take_cstr(buf_t *b);

#endif
