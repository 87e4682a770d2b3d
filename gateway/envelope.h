/*
 * envelope: reads the reply of a route with `reply: "envelope"` (SPEC.md
 * "Route mapping for real REST APIs"). The service's single reply value
 *
 *     {"status": N, "headers": {NAME: STRING}, "body": ANY}
 *
 * (each member optional) is the HTTP answer: that status (200..599; absent:
 * the route's), those headers, and that body written as JSON (absent: no
 * body). It lets a Nest handler answer 201 with a Location, set cache
 * headers, or answer 404 without throwing.
 *
 * What is refused, each with a message saying what was wrong (the gateway
 * answers it as 502 bad_upstream_message):
 *   - zero or several reply values;
 *   - a value that is not a JSON object;
 *   - members other than status, headers and body, or one of them twice;
 *   - a status that is not an integer written in digits from 200 to 599
 *     (2e2, 200.0, "200", -1, 99999999999999999999: refused);
 *   - headers that are not an object, a header value that is not a string,
 *     a name that is not an HTTP token (RFC 9110 tchar), a value that is not
 *     an HTTP field value (a control character other than HTAB, so no CR,
 *     LF or NUL: no header injection; or leading/trailing whitespace), or
 *     an empty value (libmicrohttpd would silently drop the header);
 *   - a header the gateway alone decides: the hop-by-hop ones (Connection,
 *     Keep-Alive, Proxy-Connection, Proxy-Authenticate,
 *     Proxy-Authorization, TE, Trailer, Transfer-Encoding, Upgrade),
 *     Content-Length and X-Request-Id;
 *   - a header name given twice (names compare case-insensitively);
 *   - more than ENVELOPE_HEADERS_MAX headers, or more than
 *     ENVELOPE_HEADER_BYTES_MAX bytes of names and values.
 * Content-Type is one of the headers, kept apart (it replaces
 * application/json). Whether a 204 or 304 sends its body is the caller's
 * business (the exchange never sends one).
 *
 * Nothing here keeps state between calls. Ownership: an envelope_t owns
 * its text buffer (the decoded header names and values, NUL-terminated,
 * that `headers` and `content_type` point into); `body` points into the
 * caller's value. Both stay valid until the next envelope_read() with the
 * same envelope_t, envelope_clear() or envelope_free().
 */
#ifndef PG_GATEWAY_ENVELOPE_H
#define PG_GATEWAY_ENVELOPE_H

#include <stddef.h>

#include "core/buf.h"

#define ENVELOPE_HEADERS_MAX 16
#define ENVELOPE_HEADER_BYTES_MAX 4096 /* names and values, decoded */
#define ENVELOPE_WHY_SIZE 240

/* envelope_read's results besides 0. */
#define ENVELOPE_BAD (-1) /* not an acceptable envelope: why[] says why */

typedef struct envelope_header {
    const char *name;  /* as the service spelled it */
    const char *value;
} envelope_header_t;

typedef struct envelope {
    unsigned status;              /* 200..599 */
    int has_body;
    span_t body;                  /* the body's JSON text, when has_body */
    const char *content_type;     /* the Content-Type header's value, or NULL */
    envelope_header_t headers[ENVELOPE_HEADERS_MAX]; /* the others, in order */
    size_t header_count;
    buf_t text;                   /* private: what the pointers point into */
} envelope_t;

#define ENVELOPE_INIT { 0, 0, { NULL, 0 }, NULL, { { NULL, NULL } }, 0, BUF_INIT }

/*
 * Reads the reply of an envelope route: `values` is the service's `count`
 * reply values joined by commas (as the proxy collects them; only count 1
 * can be an envelope). default_status is the route's. Returns 0 with *e
 * filled; ENVELOPE_BAD with a one-line reason in why[0..whylen), e.g.
 *   the envelope has the member "result" (expected only status, headers and body)
 *   the envelope's header "Set-Cookie" has a control character in its value
 * or -ENOMEM (why says so too). On failure *e holds no header and no body.
 */
int envelope_read(span_t values, size_t count, unsigned default_status, envelope_t *e, char *why,
                  size_t whylen);

/* Empties *e, keeping its buffer when it is at most `keep` bytes. */
void envelope_clear(envelope_t *e, size_t keep);
void envelope_free(envelope_t *e);

#endif
