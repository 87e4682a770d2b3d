/*
 * scaffold: the path `patterngate scaffold` gives a route to a handler,
 * from the handler's pattern, so that a person can read it:
 *   'orders.get'                 -> /orders/get   (., :, / and space split segments)
 *   {"cmd":"sum"}                -> /cmd/sum      (each member: key, then value)
 *   {"cmd":"user","op":{"v":2}}  -> /cmd/user/op/v/2
 *   a string that is JSON for an object reads as that object
 * Characters a path segment cannot hold as written become '-' (never two
 * in a row, none at a segment's ends); a pattern with nothing left gives
 * /handler. A path that would be an admin path (/healthz, /readyz,
 * /status, /metrics, /openapi.json, /docs) or under the generic API
 * (/v1/send/, /v1/emit/) gets "/SERVICE" in front; a path already taken
 * gets "-2", "-3"... Pure: no I/O.
 */
#ifndef PG_GATEWAY_SCAFFOLD_H
#define PG_GATEWAY_SCAFFOLD_H

#include <jansson.h>
#include <stdbool.h>

#include "core/buf.h"

/* Whether a route already has `path`. */
typedef bool scaffold_taken_fn(const void *ctx, const char *path);

/* The path into *out (cleared first; NUL-terminated, the NUL not counted).
 * 0, or -1 when out of memory. */
int scaffold_path(const json_t *pattern, const char *service, scaffold_taken_fn *taken, const void *ctx,
                  buf_t *out);

#endif
