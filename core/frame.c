#include "core/frame.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "core/utf8.h"

enum { ST_DIGITS, ST_BODY, ST_BROKEN };

/* A length of more digits than this cannot be below any sane limit. */
#define MAX_LENGTH_DIGITS 15

void frame_decoder_init(frame_decoder_t *d, size_t max_message_bytes)
{
    memset(d, 0, sizeof *d);
    d->max_bytes = max_message_bytes;
    d->state = ST_DIGITS;
}

void frame_decoder_free(frame_decoder_t *d)
{
    buf_free(&d->in);
}

static int broken(frame_decoder_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int broken(frame_decoder_t *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->error, sizeof d->error, fmt, ap);
    va_end(ap);
    d->state = ST_BROKEN;
    return FRAME_ERROR;
}

/* Moves the unconsumed bytes to the front so the buffer does not creep. */
static void compact(frame_decoder_t *d)
{
    if (d->start == 0)
        return;
    buf_consume(&d->in, d->start);
    d->stream_offset += d->start;
    d->scan -= d->start;
    if (d->state == ST_BODY)
        d->body -= d->start;
    d->start = 0;
}

/* After a large message the buffer is left as large as it was: give the
 * memory back once it holds little, so that one big reply does not keep
 * its size for the life of the connection. */
#define SHRINK_ABOVE ((size_t)1 << 20)

static int shrink(frame_decoder_t *d, size_t want)
{
    if (d->in.cap <= SHRINK_ABOVE || d->in.len + want > SHRINK_ABOVE / 4)
        return 0;
    buf_t small = BUF_INIT;
    if (buf_reserve(&small, d->in.len + want) || buf_append(&small, d->in.data, d->in.len)) {
        buf_free(&small);
        return -ENOMEM;
    }
    buf_free(&d->in);
    d->in = small;
    return 0;
}

char *frame_decoder_space(frame_decoder_t *d, size_t want, size_t *avail)
{
    compact(d);
    if (shrink(d, want ? want : 1) || buf_reserve(&d->in, want ? want : 1)) /* even for 0: never a NULL buffer */
        return NULL;
    *avail = d->in.cap - d->in.len;
    return d->in.data + d->in.len;
}

void frame_decoder_commit(frame_decoder_t *d, size_t n)
{
    d->in.len += n;
}

int frame_decoder_feed(frame_decoder_t *d, const void *p, size_t n)
{
    size_t avail;
    char *dst = frame_decoder_space(d, n, &avail);
    if (!dst)
        return -ENOMEM;
    memcpy(dst, p, n);
    frame_decoder_commit(d, n);
    return 0;
}

static int read_digits(frame_decoder_t *d)
{
    while (d->scan < d->in.len) {
        unsigned char c = (unsigned char)d->in.data[d->scan];
        size_t ndigits = d->scan - d->start;
        if (c == '#') {
            if (ndigits == 0)
                return broken(d, "bad length prefix: no digits before '#' at stream byte %llu",
                              (unsigned long long)(d->stream_offset + d->scan));
            if (d->want_units > d->max_bytes)
                return broken(d, "message of %llu UTF-16 units exceeds the limit of %zu bytes",
                              (unsigned long long)d->want_units, d->max_bytes);
            d->scan++;
            d->body = d->scan;
            d->state = ST_BODY;
            return 0;
        }
        if (c < '0' || c > '9') {
            char shown[8] = "";
            if (c >= 0x20 && c < 0x7f)
                snprintf(shown, sizeof shown, " ('%c')", c);
            return broken(d, "bad length prefix: byte 0x%02x%s at stream byte %llu is not a digit or '#'",
                          c, shown, (unsigned long long)(d->stream_offset + d->scan));
        }
        if (ndigits == MAX_LENGTH_DIGITS)
            return broken(d, "bad length prefix: more than %d digits", MAX_LENGTH_DIGITS);
        d->want_units = d->want_units * 10 + (uint64_t)(c - '0');
        d->scan++;
    }
    return 0;
}

/* Counts the body's UTF-16 units; returns 1 when the message is complete. */
static int read_body(frame_decoder_t *d)
{
    const unsigned char *p = (const unsigned char *)d->in.data;
    size_t end = d->in.len, scan = d->scan;
    uint64_t units = d->units, want = d->want_units;
    while (units < want && scan < end) {
        /* ASCII runs, 8 bytes at a time, while the frame cannot end inside */
        while (want - units >= 8 && end - scan >= 8) {
            uint64_t w;
            memcpy(&w, p + scan, 8);
            if (w & UINT64_C(0x8080808080808080))
                break;
            scan += 8;
            units += 8;
        }
        if (units == want || scan == end)
            break;
        if (p[scan] < 0x80) {
            scan++;
            units++;
            continue;
        }
        int len = utf8_sequence(p + scan, end - scan);
        if (len == 0)
            break; /* a character split across reads: wait for the rest */
        if (len < 0) {
            d->scan = scan;
            return broken(d, "invalid UTF-8 at byte %zu of a message", scan - d->body);
        }
        units += len == 4 ? 2 : 1;
        scan += (size_t)len;
    }
    d->scan = scan;
    d->units = units;
    if (d->scan - d->body > d->max_bytes)
        return broken(d, "message exceeds the limit of %zu bytes", d->max_bytes);
    if (d->units > d->want_units)
        return broken(d, "length prefix %llu ends inside a character (a UTF-16 surrogate pair)",
                      (unsigned long long)d->want_units);
    return d->units == d->want_units;
}

int frame_decoder_next(frame_decoder_t *d, span_t *message)
{
    if (d->state == ST_DIGITS && read_digits(d) < 0)
        return FRAME_ERROR;
    if (d->state == ST_BROKEN)
        return FRAME_ERROR;
    if (d->state != ST_BODY)
        return FRAME_NEED_MORE;
    int done = read_body(d);
    if (done < 0)
        return FRAME_ERROR;
    if (!done)
        return FRAME_NEED_MORE;
    *message = span_of(d->in.data + d->body, d->scan - d->body);
    d->start = d->scan;
    d->want_units = d->units = 0;
    d->state = ST_DIGITS;
    if (d->start == d->in.len) { /* everything consumed: reuse from the front */
        d->stream_offset += d->in.len;
        d->start = d->scan = 0;
        d->in.len = 0;
    }
    return FRAME_MESSAGE;
}

const char *frame_decoder_error(const frame_decoder_t *d)
{
    return d->error;
}

size_t frame_decoder_buffered(const frame_decoder_t *d)
{
    return d->in.len - d->start;
}

uint64_t frame_decoder_frame_offset(const frame_decoder_t *d)
{
    return d->stream_offset + d->start;
}

int frame_append_prefix(buf_t *out, uint64_t units)
{
    int rc = buf_append_u64(out, units);
    return rc ? rc : buf_append(out, "#", 1);
}

int frame_encode(buf_t *out, span_t json)
{
    int rc = frame_append_prefix(out, utf8_utf16_units(json.p, json.n));
    return rc ? rc : buf_append_span(out, json);
}
