/*
 * stream: the bytes of a streamed reply (SPEC.md, `reply` ndjson and sse),
 * appended to a buffer that the HTTP response drains.
 *
 *   ndjson: <value>\n per value; an error after the first value is a last
 *           line {"error":<error body>}; nothing marks the end.
 *   sse:    data: <value>\n\n per value; event: error\ndata: <error body>\n\n
 *           for an error; event: end\ndata: null\n\n at the end; a comment
 *           ": keepalive\n\n" after 15 s of silence.
 *
 * Values are copied byte for byte, except that a line break between JSON
 * tokens (never inside a string, where JSON escapes it) would end an NDJSON
 * line or an SSE field: in NDJSON it becomes a space, in SSE the value
 * continues on a further "data: " line, which an SSE client joins back with
 * a newline. Nest writes no such line breaks, so its values pass unchanged.
 * All functions return 0, or -ENOMEM with the buffer unchanged in length.
 */
#ifndef PG_GATEWAY_STREAM_H
#define PG_GATEWAY_STREAM_H

#include "config/config.h"
#include "core/buf.h"

#define STREAM_KEEPALIVE_MS 15000

int stream_append_value(buf_t *out, config_reply_mode mode, span_t value);
int stream_append_error(buf_t *out, config_reply_mode mode, span_t error_body);
/* The end of a stream that completed (sse only; nothing for ndjson). */
int stream_append_end(buf_t *out, config_reply_mode mode);
int stream_append_keepalive(buf_t *out);
/* The Content-Type of a streamed reply. */
const char *stream_content_type(config_reply_mode mode);

#endif
