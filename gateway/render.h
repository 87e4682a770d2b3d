/*
 * render: turns a route's compiled `data` template (config/template.h) and
 * one request into the packet's `data` JSON text (SPEC.md "Templates").
 *
 * One pass over the template's items, appending to a buf_t; no JSON tree.
 *
 *   LITERAL            appended as is;
 *   $body              the body's JSON value, byte for byte as received
 *                      (big numbers, "\u0000", lone surrogate escapes
 *                      survive); `null` when the body is empty;
 *   $body.a.b          that member's exact bytes; `null` when the body is
 *                      empty or not an object, or a member is absent, or an
 *                      intermediate value is not an object (a repeated key:
 *                      the last one, as JSON.parse does);
 *   $path/$query/$header.NAME
 *                      a JSON string of the value; `null` when absent. The
 *                      value must be valid UTF-8, else a 400.
 *
 * Conversions (`:int`, `:number`, `:bool`, `:json`) read a text: for path,
 * query and header values the value itself; for a body value its unescaped
 * content when it is a JSON string, else its JSON text (so {"n":"42"} and
 * {"n":42} both give 42 for "$body.n:int"). Then:
 *   :int     optional '-' and decimal digits only, within int64; written
 *            normalized ("007" -> 7, "-0" -> 0);
 *   :number  JSON number syntax, finite as a double (1e400 is not);
 *            written as given ("1.50" stays 1.50, 1e2 stays 1e2);
 *   :bool    exactly "true" or "false";
 *   :json    any JSON text (valid UTF-8), written as given minus
 *            surrounding whitespace.
 * An absent value stays `null` with any conversion, and so does a body value
 * that is JSON `null`.
 *
 * Error messages (one line, for the 400 body) name the value and say what
 * was expected, quoting the value (up to 64 bytes, then "..."):
 *   query parameter "full": expected true or false, got "yes"
 *   path parameter "id": expected a decimal integer, got "x1"
 *   header "x-count": expected a decimal integer in the int64 range, got "..."
 *   body member "a.b": expected a finite number, got {"x":1}
 *   body: expected a JSON text: unexpected character at byte 0
 *   query parameter "q" is not valid UTF-8
 *   query parameter "q": invalid percent-encoding
 * Body values are quoted as their JSON text, the others as JSON strings.
 */
#ifndef PG_GATEWAY_RENDER_H
#define PG_GATEWAY_RENDER_H

#include <stddef.h>

#include "config/template.h"
#include "core/buf.h"

#define RENDER_ERROR_SIZE 512

/* What a lookup callback returns. */
typedef enum render_lookup_result {
    RENDER_LOOKUP_FOUND = 1,
    RENDER_LOOKUP_ABSENT = 0,
    RENDER_LOOKUP_BAD = -1,   /* present, but its encoding is invalid (400) */
    RENDER_LOOKUP_NOMEM = -2,
} render_lookup_result;

/*
 * Looks a query parameter (its decoded name, the first when repeated) or a
 * header (its lowercased name) up. On FOUND sets *value to the decoded
 * bytes, which must stay valid until the next call of the same callback or
 * the end of render_template(), whichever comes first.
 */
typedef render_lookup_result render_lookup_fn(void *context, const char *name, size_t name_len,
                                              span_t *value);

typedef struct render_input {
    span_t body;             /* the body as received, checked with
                                render_check_body() when the template
                                uses it (t->uses_body) */
    const span_t *captures;  /* decoded path captures, in capture order */
    size_t capture_count;    /* (router_match_t.captures, capture_count) */
    render_lookup_fn *query; /* NULL: no query parameters */
    void *query_context;
    render_lookup_fn *header; /* NULL: no headers */
    void *header_context;
    buf_t *scratch;          /* working memory the caller may keep from one
                                render to the next; NULL: a local one,
                                allocated and freed per call. Its contents
                                are garbage afterwards. */
} render_input_t;

/*
 * Checks a request body once, before rendering a template that uses it. A
 * body that is empty or only JSON whitespace is "empty" (rendered as null).
 * Anything else must be exactly one UTF-8 JSON value, with whitespace
 * around it allowed (it is not forwarded). Returns 0, or -1 with a message
 * in error[error_size] (byte offsets count from 0):
 *   body is not valid JSON: unexpected character at byte 12
 *   body is not valid UTF-8 JSON: invalid UTF-8 at byte 3
 */
int render_check_body(span_t body, char *error, size_t error_size);

/*
 * Appends the rendering of `t` for `in` to *out. Returns 0; or -1 with a
 * 400 message in error[error_size]; or -ENOMEM ("out of memory"). On
 * failure out->len is restored to its value on entry.
 */
int render_template(const template *t, const render_input_t *in, buf_t *out, char *error,
                    size_t error_size);

/*
 * When the template is the whole body as it is ("$body" alone), sets *data
 * to what render_template() would append, without copying: the body's value
 * inside `body` (checked with render_check_body() first), or a static
 * "null" for an empty body; returns true. Else returns false.
 */
bool render_whole_body(const template *t, span_t body, span_t *data);

/*
 * A ready-made query lookup over the raw query string (the text after '?',
 * still encoded), using urlcode_query_get(): set raw/length, zero `value`,
 * pass &the struct as query_context and render_query_lookup as query, and
 * buf_free(&q.value) when done.
 */
typedef struct render_query {
    const char *raw;
    size_t length;
    buf_t value; /* the last value looked up */
} render_query;

render_lookup_result render_query_lookup(void *context, const char *name, size_t name_len,
                                         span_t *value);

#endif
