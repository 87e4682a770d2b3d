/*
 * router: finds the configured route for a request's method and path
 * (SPEC.md "Routes").
 *
 * Matching a path:
 *   - the raw path (as received, percent-encoded, without the query string)
 *     starts with '/' and is split on '/'; one trailing '/' is ignored, so
 *     "/users/7/" is "/users/7" and "/" has no segments;
 *   - each segment is then percent-decoded (URLCODE_PATH: '+' stays '+'), so
 *     "%2F" inside a segment does not split it; a bad escape or "%00" makes
 *     the path invalid (ROUTER_BAD_PATH, a 400);
 *   - a literal segment matches a request segment of exactly its (decoded)
 *     bytes; `:name` matches any non-empty segment; `*name` (always last)
 *     matches the rest of the path, one or more segments whose joined text
 *     is not empty, and captures the decoded segments joined with '/'. An
 *     empty segment ("/a//b") matches neither a literal nor `:name`, only
 *     the inside of a rest capture ("/files/a//b" gives "a//b").
 *     So a request for "/files" does not match the route "/files" followed
 *     by a rest capture (no segment left); add a route "/files" for it.
 *
 * Precedence: at each segment position, left to right, a literal beats
 * `:name`, which beats `*name`, with backtracking: the routes are tried in
 * that order, depth first, and the first one that matches the whole path
 * *and the method* wins. So with "/a/:x/c" and "/a/b/:y", "/a/b/c" goes to
 * "/a/b/:y"; with "GET /users/me" and "DELETE /users/:id", "DELETE
 * /users/me" goes to the second (a route that accepts the request always
 * beats a 405). A route's method matches when it equals the request's
 * method (case-sensitive) or is `*`; where both kinds share one path shape
 * (the config loader forbids that) the exact method wins. HEAD matches as
 * GET does (a GET route answers it, as GET without the body: SPEC.md
 * "Route mapping for real REST APIs"), then `*`. Other methods that no
 * route can name (OPTIONS, ...) only match `*` routes.
 *
 * Outcomes:
 *   ROUTER_FOUND              the route, its index in cfg->routes and its
 *                             captures;
 *   ROUTER_NOT_FOUND          no route matches the path (404);
 *   ROUTER_METHOD_NOT_ALLOWED routes match the path, none the method (405);
 *                             `allow` lists their methods, each once, in
 *                             the order GET, HEAD, POST, PUT, PATCH,
 *                             DELETE, joined by ", ", HEAD wherever GET is
 *                             ("GET, HEAD, DELETE");
 *   ROUTER_BAD_PATH           the path cannot be decoded (400); `error`
 *                             says why and where;
 *   ROUTER_NO_MEMORY          out of memory (nothing else is valid).
 *
 * Speed: the routes are compiled at router_new() into a segment trie
 * (literal children sorted for binary search); a match decodes the path
 * once, visits each trie node at most once, and allocates nothing except
 * when the match struct's own buffers must grow for a longer path than it
 * has seen.
 *
 * Ownership: a router borrows its config (strings, routes), which must
 * outlive it; it owns only its trie. Nothing in a router changes after
 * router_new(), so several threads may match against one router, each with
 * its own router_match_t. A router_match_t owns its buffers; the spans it hands
 * out point into them and stay valid until the next router_match() with the
 * same struct or router_match_free().
 */
#ifndef PG_GATEWAY_ROUTER_H
#define PG_GATEWAY_ROUTER_H

#include <stddef.h>

#include "config/config.h"
#include "core/buf.h"

typedef struct router router_t;

typedef enum router_result {
    ROUTER_FOUND,
    ROUTER_NOT_FOUND,
    ROUTER_METHOD_NOT_ALLOWED,
    ROUTER_BAD_PATH,
    ROUTER_NO_MEMORY, /* a match buffer could not grow (answer 500/503) */
} router_result_t;

/* Large enough for every method and the longest Allow value. */
#define ROUTER_ALLOW_SIZE 40
#define ROUTER_ERROR_SIZE 96

/* A decoded request segment: bytes [off, off + len) of router_match_t.path. */
typedef struct router_segment {
    size_t off;
    size_t len;
} router_segment;

typedef struct router_match {
    router_result_t outcome;
    /* ROUTER_FOUND (and ROUTER_METHOD_NOT_ALLOWED: the first route that
     * matched the path, whose template names it in metrics and logs): */
    const config_route *route;   /* borrowed from the config */
    size_t route_index;          /* into cfg->routes */
    const span_t *captures;      /* route->path.capture_count decoded */
    size_t capture_count;        /*   captures, in capture order */
    /* ROUTER_METHOD_NOT_ALLOWED: the Allow header value, NUL-terminated. */
    char allow[ROUTER_ALLOW_SIZE];
    /* ROUTER_BAD_PATH: e.g. "invalid percent-encoding in the path at byte 7". */
    char error[ROUTER_ERROR_SIZE];

    /* Private: the decoded segments, separated by '/', and their places. */
    buf_t path;
    router_segment *segments;
    size_t segment_cap;
    span_t *capture_store;
    size_t capture_cap;
} router_match_t;

/*
 * Builds a router for cfg->routes (borrowed: cfg must outlive the router).
 * Returns the router, or NULL when out of memory.
 */
router_t *router_new(const config *cfg);

/* Releases a router; NULL is fine. The config is not touched. */
void router_free(router_t *r);

/* Prepares an empty match struct; release it with router_match_free(). */
void router_match_init(router_match_t *m);

/* Releases the match struct's buffers; it is then empty and reusable. */
void router_match_free(router_match_t *m);

/*
 * Matches `method` (e.g. "GET") and `raw_path` (see above; both
 * NUL-terminated, as libmicrohttpd hands them out) and fills *m
 * (initialized with router_match_init(); reuse it from one request to the
 * next to keep its buffers). Returns m->outcome. A path that does not start
 * with '/' is ROUTER_BAD_PATH; a NUL byte ends the path.
 */
router_result_t router_match(const router_t *r, const char *method, const char *raw_path,
                             router_match_t *m);

/*
 * Splits and decodes a raw path into m's buffers, as router_match() does,
 * without matching (the generic API uses it). Returns the number of
 * segments (>= 0), ROUTER_DECODE_BAD with m->error filled, or -ENOMEM.
 * Decoded segment i is then router_match_segment(m, i).
 */
#define ROUTER_DECODE_BAD (-1)
long router_decode_path(const char *raw_path, router_match_t *m);

/* Segment i of the last decoded path (i below the count returned). */
span_t router_match_segment(const router_match_t *m, size_t i);

#endif
