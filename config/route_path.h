/*
 * route_path: a route's path template ("/users/:id", or "/files/" followed by
 * a rest capture "*rest") parsed into segments, for the router (gateway/) and
 * for config checks.
 *
 * Syntax (SPEC.md "Routes"):
 *   - the path starts with '/'; a trailing '/' is ignored, so "/users/" is
 *     "/users" and "/" has no segments;
 *   - an empty segment ("//") is an error;
 *   - `:name` captures one segment; `*name` captures the rest of the path and
 *     must be the last segment; names are [A-Za-z_][A-Za-z0-9_]* and unique
 *     within a path;
 *   - any other segment is a literal, stored percent-decoded (requests are
 *     split on '/' and then decoded, so "a%2Fb" matches the one request
 *     segment "a%2Fb"); a bad escape or "%00" is an error, and so are
 *     control characters, space and "?#\"<>\\^`{|}" written raw (percent-
 *     encode them); bytes >= 0x80 (UTF-8) are allowed raw. A ':' or '*'
 *     that is not the segment's first byte is literal.
 *
 * Ownership: a route_path owns its text and segments; release it with
 * route_path_free(). Segment texts live as long as the route_path.
 */
#ifndef PG_CONFIG_ROUTE_PATH_H
#define PG_CONFIG_ROUTE_PATH_H

#include <stdbool.h>
#include <stddef.h>

typedef enum route_segment_kind {
    ROUTE_SEGMENT_LITERAL, /* matches exactly `text` (already decoded) */
    ROUTE_SEGMENT_PARAM,   /* `:name`: one segment, captured under `text` */
    ROUTE_SEGMENT_REST,    /* `*name`: the rest, captured under `text` */
} route_segment_kind;

typedef struct route_segment {
    route_segment_kind kind;
    char *text;    /* literal: decoded bytes (no NUL inside); else: the name */
    size_t length; /* strlen(text) */
} route_segment;

typedef struct route_path {
    char *text;              /* the template as written, e.g. "/users/:id" */
    route_segment *segments; /* `count` segments; NULL when count is 0 */
    size_t count;
    size_t capture_count;    /* PARAM and REST segments, in path order */
} route_path;

/*
 * Parses `text` into *out. Returns 0, or -1 with *out zeroed and a one-line
 * reason (no JSON path) in error[error_size], e.g. "empty segment (//)" or
 * "duplicate parameter name 'id'" or "out of memory".
 */
int route_path_parse(const char *text, route_path *out, char *error, size_t error_size);

/* Releases what *path owns and zeroes it; a zeroed path is fine. */
void route_path_free(route_path *path);

/*
 * True when the two paths have the same shape: the same number of segments,
 * the same kind at each position and equal literals where both are literal
 * (capture names do not matter). Two routes of the same shape and method
 * (or '*') could never be told apart by the router.
 */
bool route_path_same_shape(const route_path *a, const route_path *b);

/*
 * The position of capture `name` among the path's captures (0 for the first
 * PARAM or REST segment, ...), or -1 when the path has no such capture. The
 * router hands captures to the renderer in this order.
 */
long route_path_capture_index(const route_path *path, const char *name);

/* The segment that holds capture number `index` (see above), or NULL. */
const route_segment *route_path_capture(const route_path *path, size_t index);

#endif
