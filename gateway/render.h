/*
 * render: turns a route's compiled `data` template (config/template.h) and
 * one request into the packet's `data` JSON text (SPEC.md "Templates" and
 * "Route mapping for real REST APIs"). No JSON tree: one walk over the
 * compiled items, appending to a buf_t; what comes from the body or the
 * token is copied byte for byte.
 *
 * Values of slots:
 *
 *   $body          the body's JSON value, byte for byte as received (big
 *                  numbers, "\u0000", lone surrogate escapes survive); a
 *                  form body (render_body_read_as_form()) is an object of
 *                  strings, a repeated name giving its last value. Absent
 *                  when the body is empty.
 *   $body.a.b      that member's exact bytes; absent when the body is empty
 *                  or not an object, or a member is missing, or something on
 *                  the way is not an object (a repeated key: the last one,
 *                  as JSON.parse does).
 *   $jwt, $jwt.NAME, $jwt.claims.a.b
 *                  the same over the claims (render_input_t.claims); all
 *                  absent when the request has no claims.
 *   $path.NAME, $query.NAME, $header.NAME, $client.ip
 *                  a JSON string of the value (which must be valid UTF-8,
 *                  else a 400); absent when missing. A repeated query
 *                  parameter: the first; a repeated header (with
 *                  header_all): the values joined with ", " ("; " for
 *                  cookie), else the lookup's answer.
 *   $path, $query, $headers
 *                  an object of strings, never absent ({} when empty): every
 *                  capture; every query parameter (a repeated name: its
 *                  first value; a value or name that is not UTF-8 is a 400);
 *                  every header, names lowercased, repeated ones joined as
 *                  above, invalid UTF-8 replaced by U+FFFD (one odd header
 *                  must not fail every request).
 *
 * An absent value is written `null`, except as the value of an optional
 * member (a slot ending in '?' as an object member), which is then left out
 * of its object. A present JSON null stays null, optional or not.
 *
 * Objects with spreads ("...": SOURCE): the written members first, in
 * template order (optional ones left out when absent), then the members of
 * the spread sources, in order, each key once: a written member that is
 * present wins; among the sources the last occurrence wins, written where
 * the key first occurred. A source that is absent or null merges nothing;
 * any other non-object is a 400:
 *   body member "tags": expected an object to spread into data, got [1,2]
 *
 * Conversions (`:int`, `:number`, `:bool`, `:json`) read a text: for string
 * values the value itself; for a body or claims value its unescaped content
 * when it is a JSON string, else its JSON text (so {"n":"42"} and {"n":42}
 * both give 42 for "$body.n:int"). Then:
 *   :int     optional '-' and decimal digits only, within int64; written
 *            normalized ("007" -> 7, "-0" -> 0);
 *   :number  JSON number syntax, finite as a double (1e400 is not);
 *            written as given ("1.50" stays 1.50, 1e2 stays 1e2);
 *   :bool    exactly "true" or "false";
 *   :json    any JSON text (valid UTF-8), written as given minus
 *            surrounding whitespace.
 * An absent value stays absent, and a JSON null stays null, with any
 * conversion.
 *
 * Error messages (one line, for the 400 body) name the value and say what
 * was expected, quoting the value (up to 64 bytes, then "..."):
 *   query parameter "full": expected true or false, got "yes"
 *   path parameter "id": expected a decimal integer, got "x1"
 *   header "x-count": expected a decimal integer in the int64 range, got "..."
 *   body member "a.b": expected a finite number, got {"x":1}
 *   JWT claim "sub": expected a decimal integer, got "u42"
 *   body: expected a JSON text: unexpected character at byte 0
 *   query parameter "q" is not valid UTF-8
 *   query parameter "q": invalid percent-encoding
 *   form body: invalid percent-encoding at byte 4
 * Body and claims values are quoted as their JSON text, the others as JSON
 * strings.
 */
#ifndef PG_GATEWAY_RENDER_H
#define PG_GATEWAY_RENDER_H

#include <stdbool.h>
#include <stddef.h>

#include "config/template.h"
#include "core/buf.h"

struct sockaddr;

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

/* Takes one name/value pair (bytes valid during the call only). 0 to go
 * on; anything else stops the walk, which returns it. */
typedef int render_pair_fn(void *pair_context, span_t name, span_t value);

/*
 * Walks every query parameter (decoded names and values) or every header
 * (names as received, any case; values as received), in request order,
 * calling pair() for each. Returns 0 when all were visited, pair()'s first
 * non-zero result, or RENDER_LOOKUP_BAD (a parameter that cannot be
 * decoded) or RENDER_LOOKUP_NOMEM of its own.
 */
typedef int render_each_fn(void *context, render_pair_fn *pair, void *pair_context);

typedef struct render_input {
    span_t body;             /* the body as received, checked with
                                render_check_body_as() when the template
                                uses it (t->uses_body) */
    span_t content_type;     /* the Content-Type header's value; {NULL, 0}:
                                none. Says whether the body is a form
                                (render_body_read_as_form()); named in
                                errors. */
    const span_t *captures;  /* decoded path captures, in capture order */
    size_t capture_count;    /* (router_match_t.captures, capture_count) */
    render_lookup_fn *query; /* NULL: no query parameters */
    void *query_context;
    render_lookup_fn *header; /* NULL: no headers */
    void *header_context;
    render_each_fn *query_all; /* every parameter ($query); NULL: none */
    void *query_all_context;
    render_each_fn *header_all; /* every header ($headers, and repeated
                                   ones for $header.NAME); NULL: none */
    void *header_all_context;
    span_t claims;           /* the verified token's claims: the JSON text of
                                an object, valid (json_scan); n == 0: none,
                                and every $jwt value is absent */
    const struct sockaddr *client_address; /* the client's (AF_INET or
                                AF_INET6), written as text ("10.0.0.7",
                                "::1") for $client.ip; NULL: unknown
                                ($client.ip absent) */
    const char *method;      /* the request's method: for a route without a
                                `data` key (render_route_data()); NULL: unknown */
    buf_t *scratch;          /* working memory the caller may keep from one
                                render to the next; NULL: a local one,
                                allocated and freed per call. Its contents
                                are garbage afterwards. */
} render_input_t;

/* True when `content_type` is application/x-www-form-urlencoded (any case,
 * parameters such as "; charset=UTF-8" allowed). */
bool render_body_is_form(span_t content_type);

/*
 * True when the body is read as a form: its Content-Type is one
 * (render_body_is_form()) and, after JSON whitespace, it does not start
 * with '{' or '['. Such a body is JSON sent with the form type that
 * `curl -d` and many clients send by default; a form encoder never writes
 * a raw '{' or '[' (it escapes them), so no form is mistaken for JSON.
 * Every other body is read as JSON.
 */
bool render_body_read_as_form(span_t body, span_t content_type);

/*
 * Checks a request body once, before rendering a template that uses it,
 * read as JSON. A body that is empty or only JSON whitespace is "empty"
 * (absent). Anything else must be exactly one UTF-8 JSON value, with
 * whitespace around it allowed (it is not forwarded). Returns 0, or -1
 * with a message in error[error_size] (byte offsets count from 0):
 *   body is not valid JSON: unexpected character at byte 12
 *   body is not valid UTF-8 JSON: invalid UTF-8 at byte 3
 */
int render_check_body(span_t body, char *error, size_t error_size);

/*
 * The same, reading the body as its Content-Type says: a form
 * (render_body_read_as_form()) must decode (valid percent escapes, no %00,
 * names and values UTF-8); any other body must be JSON as above, and the
 * message names the Content-Type. Returns 0, -1 with the message, or
 * -ENOMEM ("out of memory"):
 *   body is not valid JSON (Content-Type: text/plain): unexpected character at byte 0
 *   body is not valid JSON (no Content-Type): unexpected end of input at byte 6
 *   form body: invalid percent-encoding at byte 4
 *   form body: invalid UTF-8 in the field at byte 9
 */
int render_check_body_as(span_t body, span_t content_type, char *error, size_t error_size);

/*
 * Appends the rendering of `t` for `in` to *out. Returns 0; or -1 with a
 * 400 message in error[error_size]; or -ENOMEM ("out of memory"). On
 * failure out->len is restored to its value on entry.
 */
int render_template(const template *t, const render_input_t *in, buf_t *out, char *error,
                    size_t error_size);

/*
 * When the template is the whole body as it is ("$body" alone, or
 * "$body?"), and the body is read as JSON, sets *data to what
 * render_template() would append, without copying: the body's value inside
 * `body` (checked with render_check_body() first), or a static "null" for
 * an empty body; returns true. Else returns false.
 */
bool render_whole_body(const template *t, span_t body, span_t *data);

/*
 * True when a route without a `data` key sends {} for this request: the
 * method is GET, HEAD or DELETE and the body is empty (or only whitespace).
 * Nest's own client never sends a null payload.
 */
bool render_sends_empty_object(const char *method, span_t body);

/*
 * The packet data of a route for one request, all steps in one:
 *   1. `is_default` (the route has no `data` key, config_route.data_default)
 *      and render_sends_empty_object(in->method, in->body): "{}";
 *   2. when the template uses the body, render_check_body_as();
 *   3. "$body" alone and a body read as JSON: the body itself, no copy
 *      (render_whole_body());
 *   4. else render_template(), appending to *out.
 * Sets *data to the data (pointing into the body, into static memory, or
 * into *out, valid until *out changes) and returns 0; or returns -1 /
 * -ENOMEM with the message, as render_template() does.
 */
int render_route_data(const template *t, bool is_default, const render_input_t *in, buf_t *out,
                span_t *data, char *error, size_t error_size);

/* The text of a client address as $client.ip gives it ("10.0.0.7",
 * "::1"; an IPv4 address mapped into IPv6, ::ffff:a.b.c.d, is written as
 * IPv4), into out[RENDER_IP_TEXT_SIZE]; "" when sa is NULL or neither
 * AF_INET nor AF_INET6. Returns out. */
#define RENDER_IP_TEXT_SIZE 46 /* INET6_ADDRSTRLEN */
const char *render_client_ip_text(const struct sockaddr *sa, char *out);

/*
 * A ready-made query lookup and walk over the raw query string (the text
 * after '?', still encoded), using core/urlcode.h: set raw/length, zero
 * `value`, pass &the struct as query_context (query_all_context) and
 * render_query_lookup as query (render_query_all as query_all), and
 * buf_free(&q.value) and buf_free(&q.name) when done.
 */
typedef struct render_query {
    const char *raw;
    size_t length;
    buf_t value; /* the last value looked up or walked */
    buf_t name;  /* the last name walked */
} render_query;

render_lookup_result render_query_lookup(void *context, const char *name, size_t name_len,
                                         span_t *value);
int render_query_all(void *context, render_pair_fn *pair, void *pair_context);

#endif
