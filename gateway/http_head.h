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
 * Every line must end with CRLF: a bare LF is refused (400). RFC 9112 §2.2
 * lets a server accept one, but the raw head is only seen through what MHD
 * left of it (below), where a bare LF cannot be told from a NUL byte or
 * from the NUL of a line that starts with ':' (which MHD 0.9.75 takes for
 * the empty line that ends the head, while a proxy reads on); with CRLF
 * required, each of those shows.
 *
 * How it sees the raw head: when MHD calls the access handler, the request
 * line and header lines still sit, contiguous, in the connection's read
 * buffer from the `method` pointer it hands the handler, for
 * MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE bytes. MHD has overwritten each
 * CRLF (or LF) and each header's ':' with NULs; header names and values
 * are pointers into that block, in the order received (and so are the
 * query's arguments, as long as the daemon leaves percent escapes alone:
 * httpd.c's unescape callback does). So every byte of
 * the block that is not a name, its ':', optional whitespace, a value, or
 * a line end (two NULs for a CRLF) is something MHD skipped or spliced: a
 * folded line, a NUL (MHD reads strings up to a NUL), a bare LF (one NUL).
 * Names outside the block were copied by MHD's obs-fold handling. One NUL
 * stays invisible: directly before a LF it leaves the same two NULs a CRLF
 * does, and MHD ends the line there as it does at a CRLF (a line of only
 * that NUL is then the head's empty line). Lines before the request line
 * that MHD skips as empty (a CRLF, a LF, a line that starts with a NUL) are
 * not in the block either. (Checked
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

/* The request line as MHD parsed it: its target (the path, up to the '?')
 * and version strings, and the query's arguments in order (a NULL value
 * pointer for an argument without '='), all pointers into the block. */
typedef struct http_head_line {
    const char *url;
    const char *version;
    const http_head_field_t *args;
    size_t nargs;
} http_head_line_t;

#define HTTP_HEAD_WHY_SIZE 160

/*
 * Checks a head: `block` is the raw head as described above, `line` its
 * request line, `fields` the headers in the order MHD reports them. On a
 * verdict other than OK, `why` gets a one-line reason for the 400/501 body
 * (header values are never quoted: they may be secrets). Besides the
 * shapes above, the request line must be METHOD SP TARGET SP VERSION with
 * one space each and no space or NUL in the target's path (MHD skips extra
 * spaces and takes spaces inside the target); in the query, MHD has
 * already turned '+' into spaces, so a raw space there cannot be told
 * apart and is let through, and a NUL as the target's last byte looks like
 * a trailing '?' or '&'.
 */
http_head_verdict_t http_head_check(span_t block, const http_head_line_t *line, const http_head_field_t *fields,
                                    size_t n, char *why, size_t whylen);

/* The same for a connection in MHD's access handler (method, url and
 * version are the pointers MHD passed it). At most HTTP_HEAD_MAX_FIELDS
 * headers, and as many query arguments, are examined; a head with more is
 * refused. */
#define HTTP_HEAD_MAX_FIELDS 256
http_head_verdict_t http_head_inspect(struct MHD_Connection *connection, const char *method, const char *url,
                                      const char *version, char *why, size_t whylen);

#endif
