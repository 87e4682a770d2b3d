/*
 * errors: the one table that turns a failed request into what a client sees
 * (SPEC.md's error table): HTTP status, `error` code, and the JSON body
 * {"statusCode":N,"error":CODE,"message":TEXT[,"details":ERR]}. The HTTP
 * bridge and the `call` command share it, so both say the same thing.
 */
#ifndef PG_GATEWAY_ERRORS_H
#define PG_GATEWAY_ERRORS_H

#include "core/buf.h"
#include "core/upstream.h"

typedef struct gw_error {
    int status;          /* HTTP status */
    const char *code;    /* the `error` field, static */
} gw_error_t;

/*
 * The status and code for a request's outcome (not UP_OK). For UP_ERROR the
 * status comes from the service's `err` (a numeric statusCode or status in
 * 400..599), else 500.
 */
gw_error_t gw_error_for_outcome(up_outcome_t outcome, span_t err);

/* Appends the JSON error body; `details` (n == 0: none) is the service's
 * `err`, copied untouched. 0, or -ENOMEM. */
int gw_error_body(buf_t *out, gw_error_t e, const char *message, span_t details);

#endif
