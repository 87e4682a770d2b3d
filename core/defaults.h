/*
 * defaults: SPEC.md's defaults for a service, in one place, so that the
 * config loader and the upstream client's own option defaults (used by the
 * command line) cannot drift apart.
 */
#ifndef PG_CORE_DEFAULTS_H
#define PG_CORE_DEFAULTS_H

#define PG_DEFAULT_POOL_SIZE 1
#define PG_DEFAULT_CONNECT_TIMEOUT_MS 2000
#define PG_DEFAULT_TIMEOUT_MS 5000
#define PG_DEFAULT_RETRY_ATTEMPTS 0
#define PG_DEFAULT_RETRY_DELAY_MS 100
#define PG_DEFAULT_MAX_MESSAGE_BYTES 134217728
#define PG_DEFAULT_METADATA 1
#define PG_DEFAULT_INCOMPLETE_FRAME_TIMEOUT_MS 30000
#define PG_DEFAULT_RESOLVE_INTERVAL_MS 5000
/* Requests a route may be resent at most (`retries`). */
#define PG_MAX_RETRIES 5

/* Bounds that keep one service from taking unbounded memory (not in
 * SPEC.md's config; README "Resilience"). Beyond them requests fail at once
 * with `overloaded`. */
#define PG_CONN_MAX_PENDING 4096             /* requests in flight per connection */
#define PG_CONN_MAX_UNWRITTEN (8u << 20)     /* bytes queued, not yet taken by the kernel */
#define PG_SERVICE_MAX_WAITING 1024          /* requests waiting for a connection */

/* Outlier ejection per endpoint: after this many consecutive connect
 * failures, or protocol errors, no traffic and no connection attempts for
 * EJECT_BASE_MS, doubling with each ejection in a row up to EJECT_MAX_MS.
 * The last endpoint of a service that is not ejected never is. */
#define PG_EJECT_AFTER 5
#define PG_EJECT_BASE_MS 10000
#define PG_EJECT_MAX_MS 300000

#endif
