/*
 * generic: the pure parts of the generic API (SPEC.md "HTTP API"):
 *
 *     POST /v1/send/{service}?reply=MODE   body {"pattern": P, "data": D}
 *     POST /v1/emit/{service}              body {"pattern": P, "data": D}
 *
 * which paths belong to it, its request body, and its `reply` parameter.
 * Whether the service exists and allows the generic API, and the method
 * check, are the caller's (config_find_service(), config_service.generic_api).
 *
 * Nothing here keeps state; spans handed out point into the caller's input
 * (or, for the service name, into the router_match_t given).
 */
#ifndef PG_GATEWAY_GENERIC_H
#define PG_GATEWAY_GENERIC_H

#include <stddef.h>

#include "config/config.h"
#include "core/buf.h"
#include "gateway/router.h"

#define GENERIC_ERROR_SIZE 256

typedef enum generic_path_kind {
    GENERIC_PATH_NONE, /* not a generic API path: route it normally */
    GENERIC_PATH_SEND, /* /v1/send/{service} */
    GENERIC_PATH_EMIT, /* /v1/emit/{service} */
    GENERIC_PATH_BAD,  /* the path cannot be decoded (400, m->error says) */
} generic_path_kind;

/*
 * Classifies a raw path (as router_match() takes it: NUL-terminated,
 * percent-encoded, without the query string). A generic path has exactly three segments
 * after splitting and decoding (the router's rules: one trailing '/'
 * ignored, "%2F" does not split): "v1", then "send" or "emit", then the
 * service name, which is set in *service (decoded; it may be empty, as in
 * "/v1/send//", and then names no service). The decoding uses m's buffers
 * (m initialized with router_match_init()); *service stays valid until m
 * is next used or freed. A path that cannot be decoded is GENERIC_PATH_BAD
 * whatever its segments: the router would reject it as well.
 * Returns a generic_path_kind, or -ENOMEM.
 */
int generic_match_path(const char *raw_path, router_match_t *m, span_t *service);

/*
 * Parses the generic API's body: one JSON object (UTF-8, checked as
 * render_check_body() does) with a required member "pattern" (any JSON) and
 * an optional "data" (any JSON), nothing else, each at most once. Returns 0
 * with *pattern and *data set to the exact bytes of the values (pointing
 * into body; *data is the static literal "null" when absent), or -1 with a
 * one-line message in error[error_size], e.g.
 *   body is empty: expected {"pattern": ..., "data": ...}
 *   body is not valid JSON: unexpected character at byte 12
 *   body: expected a JSON object {"pattern": ..., "data": ...}
 *   body: unknown member "foo" (expected "pattern" and "data")
 *   body: duplicate member "pattern"
 *   body: "pattern" is required
 */
int generic_parse_body(span_t body, span_t *pattern, span_t *data, char *error,
                       size_t error_size);

/*
 * The reply mode from the decoded `reply` query value (NUL-terminated; NULL
 * when absent, which means auto): "auto", "array", "ndjson", "sse" or
 * "envelope" exactly, every mode a route can have. Returns 0 with *out
 * set, or -1 with the message
 *   query parameter "reply": expected auto, array, ndjson, sse or envelope
 */
int generic_parse_reply(const char *value, config_reply_mode *out, char *error,
                        size_t error_size);

/*
 * `?retries=N` (0..5, default 0) and, on /v1/emit, `?fanout=one|all`
 * (default one), from the decoded values (NULL when absent). 0, or -1 with
 *   query parameter "retries": expected an integer from 0 to 5
 *   query parameter "fanout": expected one or all
 */
int generic_parse_retries(const char *value, unsigned *out, char *error, size_t error_size);
int generic_parse_fanout(const char *value, config_fanout *out, char *error, size_t error_size);

#endif
