/*
 * http_head: refuses request heads that two HTTP parsers could read two
 * ways (request smuggling). libmicrohttpd 0.9.75 accepts, and resolves in
 * its own way, heads that a proxy in front of the gateway may resolve in
 * another: two Content-Length headers (it takes the first), Content-Length
 * with Transfer-Encoding, whitespace before a header's ':' ("Transfer-
 * Encoding :" is then a header it does not know), obs-fold continuation
 * lines (which it splices into the previous header's name), a bare CR
 * inside a line (kept in the value), and transfer codings other than
 * chunked (read until the client closes). Each of these is refused before
 * anything reaches a service (RFC 9112 §2.2, §5.1, §5.2, §6.1, §6.3):
 *
 *   HTTP_HEAD_BAD      400, and the connection is closed;
 *   HTTP_HEAD_CODING   501: a well-formed transfer coding other than
 *                      exactly `chunked` (e.g. gzip), closed as well.
 *
 * Bare LF line ends stay accepted, as RFC 9112 §2.2 allows a recipient to:
 * a lone LF ends a line for every parser, so it is no ambiguity.
 *
 * How it sees the raw head: when MHD calls the access handler, the request
 * line and header lines still sit, contiguous, in the connection's read
 * buffer from the `method` pointer it hands the handler, for
 * MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE bytes. MHD has overwritten each
 * CRLF (or LF) and each header's ':' with NULs; header names and values
 * are pointers into that block, in the order received. So every byte of
 * the block that is not a name, its ':', optional whitespace, a value, or
 * a line end is something MHD skipped or spliced: a folded line. Names
 * outside the block were copied by MHD's obs-fold handling. (Checked
 * against MHD's source, connection.c: get_next_header_line,
 * process_header_line, process_broken_line; fuzz/fuzz_http_head.c drives
 * the real MHD to keep it true.)
 */
#ifndef PG_GATEWAY_HTTP_HEAD_H
#define PG_GATEWAY_HTTP_HEAD_H

#include <microhttpd.h>
#include <stddef.h>

#include "core/buf.h"

typedef enum http_head_verdict {
    HTTP_HEAD_OK,
    HTTP_HEAD_BAD,    /* 400 */
    HTTP_HEAD_CODING, /* 501 */
} http_head_verdict_t;

/* One header as MHD parsed it (pointers into the head block, or not). */
typedef struct http_head_field {
    span_t name;
    span_t value;
} http_head_field_t;

#define HTTP_HEAD_WHY_SIZE 160

/*
 * Checks a head: `block` is the raw head as described above, `fields` the
 * headers in the order MHD reports them. On a verdict other than OK, `why`
 * gets a one-line reason for the 400/501 body (header values are never
 * quoted: they may be secrets).
 */
http_head_verdict_t http_head_check(span_t block, const http_head_field_t *fields, size_t n, char *why,
                                    size_t whylen);

/* The same for a connection in MHD's access handler (`method` is the
 * pointer MHD passed it). At most HTTP_HEAD_MAX_FIELDS headers are
 * examined; a head with more is refused. */
#define HTTP_HEAD_MAX_FIELDS 256
http_head_verdict_t http_head_inspect(struct MHD_Connection *connection, const char *method, char *why,
                                      size_t whylen);

#endif
