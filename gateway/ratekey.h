/*
 * ratekey: the key of a route's rate_limit (SPEC.md "Edge policy for the
 * ingress direction"): which token bucket a request takes from. The key's
 * text, as the config loader checked it ($jwt.NAME, $jwt.claims.a.b,
 * $header.NAME, $query.NAME, $path.NAME, $client.ip, or none), is parsed
 * once per config; per request its value is read from the same
 * render_input_t the route's template is rendered from (gateway/render.h).
 *
 * Values: a header or query parameter as received (decoded: the first
 * one of a repeated name); a path capture, decoded; the client's IP
 * address as text ("10.0.0.7", "::1"); a claim's text (claims.h: a string's
 * content, any other value's JSON text). A key with no value (no such
 * header, no claims...) is the empty key: such requests share one bucket.
 * The route's bucket as a whole is the empty key too.
 *
 * Ownership: a ratekey_t owns a copy of the name it needs (ratekey_free);
 * the value handed out points into the input's memory or into *scratch,
 * valid until either changes. No global state.
 */
#ifndef PG_GATEWAY_RATEKEY_H
#define PG_GATEWAY_RATEKEY_H

#include <stddef.h>

#include "config/route_path.h"
#include "core/buf.h"
#include "gateway/render.h"

typedef enum ratekey_source {
    RATEKEY_NONE,      /* no key: one bucket for the route */
    RATEKEY_CLAIM,     /* $jwt.NAME (a top-level claim), $jwt.claims.a.b */
    RATEKEY_HEADER,    /* $header.NAME (name kept in lower case) */
    RATEKEY_QUERY,     /* $query.NAME */
    RATEKEY_PATH,      /* $path.NAME: a capture of the route's path */
    RATEKEY_CLIENT_IP, /* $client.ip */
} ratekey_source_t;

typedef struct ratekey {
    ratekey_source_t source;
    char *name;           /* CLAIM: the claim's dotted path ("sub",
                             "org.id"); HEADER, QUERY: the name; else NULL */
    size_t capture_index; /* PATH: route_path_capture_index() */
} ratekey_t;

/* Parses a key's text (NULL: no key) for a route whose path is `path`.
 * 0, -EINVAL for a text that is none of the forms (the loader refuses
 * those), or -ENOMEM; on failure *out is zeroed. */
int ratekey_parse(const char *text, const route_path *path, ratekey_t *out);

void ratekey_free(ratekey_t *k);

/* The key's value for one request: sets *value (n == 0: the empty key)
 * and returns 0, or -ENOMEM. A lookup that finds a badly encoded value
 * counts as no value. */
int ratekey_value(const ratekey_t *k, const render_input_t *in, buf_t *scratch, span_t *value);

#endif
