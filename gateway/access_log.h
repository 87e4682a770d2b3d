/*
 * access_log: one line per HTTP request (SPEC.md "Operating it"), written
 * through the worker's logger (so it carries "worker"):
 *
 *   {"ts":..,"level":"info","msg":"access","worker":0,"method":"GET",
 *    "path":"/users/7","query":"full=true","route":"/users/:id",
 *    "status":200,"error":null,"duration_ms":1.234,"request_id":"..",
 *    "service":"users","upstream":"10.0.0.7:3000",
 *    "client":"127.0.0.1:50312","user_agent":"curl/8.0","bytes":42,
 *    "auth":null,"rate_limited":false}
 *
 * `auth` names why the edge policy refused the request (auth.h's reason:
 * "missing", "expired", "claims"...; null when it did not), and
 * `rate_limited` is true for a 429 of a route's rate_limit. No token,
 * claim or secret is ever written.
 *
 * Every field is always there: a value that does not apply is null
 * (`query` is "" without a query string). Strings are escaped by the
 * logger; the caller decides whether a request is logged at all
 * (log.access, log.access_admin).
 */
#ifndef PG_GATEWAY_ACCESS_LOG_H
#define PG_GATEWAY_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/log.h"

typedef struct access_entry {
    const char *method;
    const char *path;         /* as received, still percent-encoded */
    const char *query;        /* raw, "" for none */
    const char *route;        /* the metrics label: template, generic, admin, unmatched */
    unsigned status;
    const char *error;        /* the error code answered (or sent in-band); NULL: none */
    uint64_t duration_ns;
    const char *request_id;   /* NULL: none */
    const char *service;      /* NULL: none */
    const char *upstream;     /* "address:port" of the endpoint; NULL: none */
    const char *client;       /* "address:port"; NULL: unknown */
    const char *user_agent;   /* NULL: none */
    uint64_t bytes;           /* body bytes sent, streams included */
    const char *auth;         /* why auth refused it (auth_reason_name); NULL: it did not */
    int rate_limited;         /* answered 429 by the route's rate_limit */
} access_entry_t;

void access_log_write(const logger_t *log, const access_entry_t *e);

#endif
