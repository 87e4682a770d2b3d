/*
 * frame: Nest's TCP framing, `<length>#<json>`, where <length> is ASCII
 * decimal and counts the UTF-16 code units of the JSON text (JavaScript's
 * String.length), not its bytes. See ../shared/PROTOCOL.md.
 *
 * The decoder is incremental: bytes are appended as they arrive (a read may
 * end anywhere, inside the digits or inside a UTF-8 sequence, and may hold
 * many frames) and whole messages are pulled out one by one. It owns its
 * input buffer, so a socket can read straight into it (frame_decoder_space /
 * frame_decoder_commit) and a message in one read is never copied.
 *
 * Errors: a bad length prefix, invalid UTF-8, a length that ends inside a
 * character, or a message over the limit breaks the stream for good:
 * frame_decoder_next returns FRAME_ERROR from then on and
 * frame_decoder_error() says what was wrong and where.
 */
#ifndef PG_CORE_FRAME_H
#define PG_CORE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum {
    FRAME_ERROR = -1,     /* the stream is broken; see frame_decoder_error */
    FRAME_NEED_MORE = 0,  /* no complete message buffered */
    FRAME_MESSAGE = 1,    /* *message holds one */
};

typedef struct frame_decoder {
    buf_t in;              /* bytes received and not yet handed out */
    size_t start;          /* offset in `in` of the frame being decoded */
    size_t scan;           /* next byte of `in` to examine */
    size_t body;           /* offset of the frame's JSON, once '#' is seen */
    uint64_t want_units;   /* the frame's length prefix */
    uint64_t units;        /* UTF-16 units of the JSON counted so far */
    size_t max_bytes;      /* limit on one message's JSON, in bytes */
    uint64_t stream_offset;/* bytes of the stream consumed before `in` */
    int state;
    char error[160];
} frame_decoder_t;

/* max_message_bytes bounds the JSON text of one message (bytes). */
void frame_decoder_init(frame_decoder_t *d, size_t max_message_bytes);
void frame_decoder_free(frame_decoder_t *d);

/*
 * A writable area of at least `want` bytes at the end of the input buffer,
 * for a read to fill; then frame_decoder_commit(d, bytes_read). Returns NULL
 * when memory runs out. Invalidates messages returned earlier. A buffer
 * that grew past 1 MiB for a large message is given back here once what it
 * holds is small again.
 */
char *frame_decoder_space(frame_decoder_t *d, size_t want, size_t *avail);
void frame_decoder_commit(frame_decoder_t *d, size_t n);

/* Copies bytes in (space + memcpy + commit). 0, or -ENOMEM. */
int frame_decoder_feed(frame_decoder_t *d, const void *p, size_t n);

/*
 * The next complete message: FRAME_MESSAGE with *message pointing at its JSON
 * text inside the decoder (valid UTF-8, but not yet checked to be JSON),
 * valid until the next space/feed/free call; FRAME_NEED_MORE; or FRAME_ERROR.
 */
int frame_decoder_next(frame_decoder_t *d, span_t *message);

/* What broke the stream ("" while it is not broken). */
const char *frame_decoder_error(const frame_decoder_t *d);

/* Bytes held: an incomplete frame and frames not yet pulled out. */
size_t frame_decoder_buffered(const frame_decoder_t *d);

/* Where the frame being decoded starts, as a byte offset in the whole
 * stream: it changes exactly when a frame completes, so a caller can tell
 * a frame that stays incomplete from a stream of complete ones. */
uint64_t frame_decoder_frame_offset(const frame_decoder_t *d);

/*
 * Appends `<units>#` for a JSON text of `units` UTF-16 units. Encoders that
 * assemble a message from parts compute units with utf8_utf16_units.
 */
int frame_append_prefix(buf_t *out, uint64_t units);

/* Appends a whole frame for a valid UTF-8 JSON text. 0 or -ENOMEM. */
int frame_encode(buf_t *out, span_t json);

#endif
