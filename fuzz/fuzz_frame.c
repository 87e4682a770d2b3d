/*
 * fuzz_frame: the incremental frame decoder (core/frame.h) against a
 * one-shot reference decoder written here from PROTOCOL.md.
 *
 * Input: byte 0 picks the message limit; byte 1 (low 4 bits) is the number
 * k of chunk-size bytes that follow; the rest is the stream. The stream is
 * fed in chunks of those sizes (cycling; a size of 0 means "pull without
 * feeding"), through frame_decoder_space/commit, pulling every message after
 * each chunk. Checked:
 *   - the messages and their order are the reference's, whatever the split,
 *     byte for byte (so every message lies within the bytes fed and none is
 *     longer than given);
 *   - a message points into the decoder's buffer and is valid UTF-8;
 *   - the stream breaks exactly when the reference breaks, after the same
 *     messages; the error is then sticky (FRAME_ERROR again, even after more
 *     bytes) and has a text; while unbroken the text is "";
 *   - frame_decoder_space gives at least what was asked for;
 *   - frame_decoder_buffered never exceeds what was fed and not handed out.
 */
#include "fuzz/fuzz.h"

#include <string.h>

#include "core/frame.h"
#include "core/utf8.h"

#define REF_MAX_DIGITS 15

typedef struct ref_result {
    size_t count;     /* complete messages before the end or the error */
    int broken;       /* 1: the stream is broken after `count` messages */
} ref_result;

/* Strict UTF-8 (RFC 3629) sequence length at p: 1..4, 0 when the n bytes are
 * a valid prefix of an incomplete sequence, -1 when invalid. Written apart
 * from core/utf8.c on purpose. */
static int ref_utf8(const uint8_t *p, size_t n)
{
    uint32_t c = p[0];
    int len;
    uint32_t min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        min = 0x80;
        c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        min = 0x800;
        c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return -1;
    }
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) {
            /* Incomplete: a prefix is valid when some completion is. Check
             * the bits known so far against the bounds with the unknown
             * continuation bits set to their extremes. */
            uint32_t lo = c, hi = c;
            for (int j = i; j < len; j++) {
                lo = lo << 6;
                hi = hi << 6 | 0x3F;
            }
            if (hi < min || lo > 0x10FFFF)
                return -1;
            if (lo >= 0xD800 && hi <= 0xDFFF)
                return -1;
            return 0;
        }
        if ((p[i] & 0xC0) != 0x80)
            return -1;
        c = c << 6 | (p[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return -1;
    return len;
}

/* Decodes the whole stream at once. Message i is s[off[i], off[i]+len[i]). */
static ref_result ref_decode(const uint8_t *s, size_t n, size_t limit, size_t *off, size_t *len,
                             size_t max_out)
{
    ref_result r = { 0, 0 };
    size_t i = 0;
    while (i < n) {
        /* the length prefix */
        uint64_t want = 0;
        size_t digits = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (digits == REF_MAX_DIGITS) {
                r.broken = 1;
                return r;
            }
            want = want * 10 + (uint64_t)(s[i] - '0');
            digits++;
            i++;
        }
        if (i == n)
            return r; /* the prefix continues later */
        if (s[i] != '#' || digits == 0 || want > limit) {
            r.broken = 1;
            return r;
        }
        i++;
        /* the body: `want` UTF-16 units of valid UTF-8 */
        size_t body = i;
        uint64_t units = 0;
        while (units < want && i < n) {
            int l = ref_utf8(s + i, n - i);
            if (l < 0) {
                r.broken = 1;
                return r;
            }
            if (l == 0)
                break;
            units += l == 4 ? 2 : 1;
            i += (size_t)l;
        }
        if (i - body > limit || units > want) {
            r.broken = 1;
            return r;
        }
        if (units < want)
            return r; /* incomplete at the end of the stream */
        if (r.count < max_out) {
            off[r.count] = body;
            len[r.count] = i - body;
        }
        r.count++;
    }
    return r;
}

static const size_t limits[] = { 0, 1, 2, 5, 16, 64, 100, 4096, 1 << 20 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t limit = limits[data[0] % (sizeof limits / sizeof limits[0])];
    size_t k = data[1] & 0x0F;
    if (size < 2 + k)
        return 0;
    const uint8_t *sizes = data + 2;
    const uint8_t *s = data + 2 + k;
    size_t n = size - 2 - k;

    /* A stream of n bytes holds at most n / 2 + 1 messages ("0#" each). */
    size_t max_msgs = n / 2 + 1;
    size_t *off = malloc(max_msgs * sizeof *off), *len = malloc(max_msgs * sizeof *len);
    FUZZ_CHECK(off && len, "out of memory");
    ref_result ref = ref_decode(s, n, limit, off, len, max_msgs);
    FUZZ_CHECK(ref.count <= max_msgs, "reference found %zu messages", ref.count);

    int any_size = 0;
    for (size_t i = 0; i < k; i++)
        any_size |= sizes[i] != 0;
    if (!any_size)
        k = 0; /* only zero sizes: one chunk */

    frame_decoder_t d;
    frame_decoder_init(&d, limit);
    size_t fed = 0, got = 0, handed_out = 0, step = 0;
    int broken = 0, last = 0;
    while (!broken && !last) {
        last = fed == n; /* one more pull after everything is fed */
        size_t chunk = k ? sizes[step % k] : n;
        if (chunk > n - fed)
            chunk = n - fed;
        /* Ask for more than is committed now and then, as a read does. */
        size_t want = chunk + (step % 3) * 7, avail = 0;
        step++;
        char *dst = frame_decoder_space(&d, want, &avail);
        FUZZ_CHECK(dst != NULL, "frame_decoder_space(%zu) failed", want);
        FUZZ_CHECK(avail >= want, "space asked %zu, got %zu", want, avail);
        if (chunk)
            memcpy(dst, s + fed, chunk);
        frame_decoder_commit(&d, chunk);
        fed += chunk;
        for (;;) {
            span_t msg = { NULL, 0 };
            int rc = frame_decoder_next(&d, &msg);
            if (rc == FRAME_NEED_MORE) {
                FUZZ_CHECK(frame_decoder_error(&d)[0] == '\0', "error text while unbroken: %s",
                           frame_decoder_error(&d));
                break;
            }
            if (rc == FRAME_ERROR) {
                broken = 1;
                break;
            }
            FUZZ_CHECK(rc == FRAME_MESSAGE, "frame_decoder_next returned %d", rc);
            FUZZ_CHECK(got < ref.count, "message %zu, but the reference has %zu", got, ref.count);
            FUZZ_CHECK(msg.n == len[got], "message %zu has %zu bytes, reference %zu", got, msg.n,
                       len[got]);
            /* (in.len may already be 0: a buffer fully handed out is
             * reused from the front at the next read) */
            FUZZ_CHECK(fuzz_within(msg.p, msg.n, d.in.data, d.in.cap),
                       "message %zu outside the buffer", got);
            FUZZ_CHECK(off[got] + msg.n <= fed, "message %zu ends past the %zu bytes fed", got, fed);
            FUZZ_CHECK(msg.n == 0 || memcmp(msg.p, s + off[got], msg.n) == 0,
                       "message %zu differs from the reference", got);
            FUZZ_CHECK(utf8_valid(msg.p, msg.n), "message %zu is not valid UTF-8", got);
            handed_out += msg.n;
            got++;
        }
        FUZZ_CHECK(frame_decoder_buffered(&d) <= fed - handed_out,
                   "%zu bytes buffered, %zu fed and %zu handed out", frame_decoder_buffered(&d), fed,
                   handed_out);
    }

    FUZZ_CHECK(got == ref.count, "%zu messages, the reference has %zu", got, ref.count);
    FUZZ_CHECK(broken == ref.broken, "broken %d, the reference says %d (after %zu messages)", broken,
               ref.broken, got);
    if (broken) {
        const char *why = frame_decoder_error(&d);
        FUZZ_CHECK(why[0] != '\0', "FRAME_ERROR without an error text");
        FUZZ_CHECK(memchr(why, '\0', sizeof d.error) != NULL, "error text not terminated");
        /* Sticky: more bytes, even a valid frame, change nothing. */
        FUZZ_CHECK(frame_decoder_feed(&d, "2#{}", 4) == 0, "feed after the error failed");
        span_t msg;
        FUZZ_CHECK(frame_decoder_next(&d, &msg) == FRAME_ERROR, "the error is not sticky");
        FUZZ_CHECK(frame_decoder_next(&d, &msg) == FRAME_ERROR, "the error is not sticky");
        FUZZ_CHECK(strcmp(frame_decoder_error(&d), why) == 0, "the error text changed");
    } else {
        /* Unbroken: a valid frame after the stream decodes when the stream
         * ended between frames. */
        int between = frame_decoder_buffered(&d) == 0;
        FUZZ_CHECK(frame_decoder_feed(&d, "2#{}", 4) == 0, "feed failed");
        span_t msg;
        int rc = frame_decoder_next(&d, &msg);
        if (between && limit >= 2)
            FUZZ_CHECK(rc == FRAME_MESSAGE && msg.n == 2 && memcmp(msg.p, "{}", 2) == 0,
                       "a frame after a clean end did not decode (rc %d)", rc);
        else if (between)
            FUZZ_CHECK(rc == FRAME_ERROR, "a frame over the limit %zu decoded (rc %d)", limit, rc);
    }
    frame_decoder_free(&d);
    free(off);
    free(len);
    return 0;
}
