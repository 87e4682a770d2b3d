/*
 * errors: the one table of every error the gateway answers (SPEC.md's error
 * table, plus the gateway's own refusals): for each kind its HTTP status,
 * its `error` code and a default message. The HTTP bridge, the admin API,
 * the HTTP server's own refusals and the `call` command all answer through
 * it, so a kind means the same status and code everywhere, and the access
 * log and metrics name the same code.
 *
 * The body of an error is
 *     {"statusCode":N,"error":CODE,"message":TEXT[,"details":ERR]}
 * where ERR is the service's `err`, copied untouched.
 */
#ifndef PG_GATEWAY_ERRORS_H
#define PG_GATEWAY_ERRORS_H

#include "core/buf.h"
#include "core/upstream.h"

/* X(kind, status, code, default message) */
#define GW_ERRORS(X)                                                                                          \
    X(GW_ERR_BAD_REQUEST, 400, "bad_request", "the request is malformed")                                     \
    X(GW_ERR_UNAUTHORIZED, 401, "unauthorized", "a valid bearer token is required")                           \
    X(GW_ERR_FORBIDDEN, 403, "forbidden", "the request is not allowed")                                       \
    X(GW_ERR_NOT_FOUND, 404, "not_found", "no route matches the path")                                        \
    X(GW_ERR_METHOD_NOT_ALLOWED, 405, "method_not_allowed", "the path exists, but not for this method")       \
    X(GW_ERR_PAYLOAD_TOO_LARGE, 413, "payload_too_large", "the body is larger than max_body_bytes")           \
    X(GW_ERR_RATE_LIMITED, 429, "rate_limited", "too many requests")                                          \
    X(GW_ERR_INTERNAL, 500, "internal_error", "internal error")                                               \
    X(GW_ERR_UPSTREAM_ERROR, 500, "upstream_error", "the service replied with an error")                      \
    X(GW_ERR_NOT_IMPLEMENTED, 501, "not_implemented", "not implemented")                                      \
    X(GW_ERR_NO_HANDLER, 501, "no_handler", "the service has no handler for the pattern")                     \
    X(GW_ERR_UPSTREAM_CLOSED, 502, "upstream_closed", "the connection closed before the last reply")          \
    X(GW_ERR_BAD_UPSTREAM_MESSAGE, 502, "bad_upstream_message", "the service broke the protocol")             \
    X(GW_ERR_OVERLOADED, 503, "overloaded", "too many requests in flight")                                    \
    X(GW_ERR_DRAINING, 503, "draining", "the gateway is shutting down")                                       \
    X(GW_ERR_UPSTREAM_UNAVAILABLE, 503, "upstream_unavailable", "no connection to the service could be had")  \
    X(GW_ERR_UPSTREAM_TIMEOUT, 504, "upstream_timeout", "no complete reply within the timeout")

#define GW_ERROR_ENUM(kind, status, code, message) kind,
typedef enum gw_error { GW_ERRORS(GW_ERROR_ENUM) GW_ERR_COUNT } gw_error_t;
#undef GW_ERROR_ENUM

/* The table's status, code and default message of a kind. */
int gw_error_status(gw_error_t e);
const char *gw_error_code(gw_error_t e);
const char *gw_error_message(gw_error_t e);

/* The kind for a request's outcome (not UP_OK; UP_CANCELLED is draining). */
gw_error_t gw_error_of_outcome(up_outcome_t outcome);

/*
 * The status an error is answered with: the table's, except for
 * upstream_error, whose status comes from the service's `err` (`details`:
 * a numeric statusCode or status in 400..599 written as three digits),
 * else 500.
 */
int gw_error_status_for(gw_error_t e, span_t details);

/* Appends the JSON error body with gw_error_status_for's status; message
 * NULL: the table's; `details` (n == 0: none) is copied untouched. 0, or
 * -ENOMEM. */
int gw_error_body(buf_t *out, gw_error_t e, const char *message, span_t details);

#endif
