/*
 * metrics: the counters and histograms a worker keeps for /metrics, and the
 * Prometheus text (format 0.0.4) built from them at scrape time.
 *
 * Every family SPEC.md names is declared once, in the table in metrics.c
 * (name, type, help, and the function that writes its samples); the # HELP
 * and # TYPE lines and the samples all come from that table.
 *
 * Request path cost: metrics_http and metrics_upstream_duration do a few
 * array lookups and additions, no lock and no allocation (a series' first
 * request for a new method+status pair grows a small array once).
 *
 * Labels: `route` values are indices into a registry of strings that only
 * grows (route templates, plus "generic", "admin", "unmatched"), so a
 * reload keeps the counters of the routes it keeps; services likewise.
 *
 * Threads: a metrics_t belongs to one worker's loop thread, which alone
 * writes it; a scrape on any worker's thread reads all of them at once and
 * sums their figures. No locks: every figure is a relaxed atomic, arrays
 * never move (fixed capacities), and new entries are published with
 * release stores after they are filled.
 */
#ifndef PG_GATEWAY_METRICS_H
#define PG_GATEWAY_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/upstream.h"
#include "gateway/auth.h"

typedef _Atomic uint64_t metric_u64;

static inline void metric_add(metric_u64 *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

static inline uint64_t metric_get(const metric_u64 *c)
{
    return atomic_load_explicit((metric_u64 *)c, memory_order_relaxed);
}

/* Fixed indices of the route registry. */
enum { METRICS_ROUTE_GENERIC, METRICS_ROUTE_ADMIN, METRICS_ROUTE_UNMATCHED };

typedef struct metrics metrics_t;

/* `largest_timeout_ms` sets the last finite histogram bucket (the bucket
 * ladder runs from 100 µs up to the first step at or above it). NULL when
 * out of memory. */
metrics_t *metrics_new(uint64_t largest_timeout_ms);
void metrics_free(metrics_t *m);

/* The index of a route label or service name, registered on first use.
 * -1 when out of memory. */
int metrics_route_index(metrics_t *m, const char *label);
int metrics_service_index(metrics_t *m, const char *name);

/* Where the upstream client counts for a service (up_service_opts.stats):
 * kept across reloads, readable by any worker's scrape. NULL for a bad
 * index. */
up_service_stats_t *metrics_service_counters(metrics_t *m, int service);
/* The gauge of open client connections, counted by the HTTP server. */
metric_u64 *metrics_http_connections(metrics_t *m);

/* One HTTP request answered. */
void metrics_http(metrics_t *m, int route, const char *method, unsigned status, uint64_t duration_ns);
/* One request answered 429 by its route's rate_limit. */
void metrics_rate_limited(metrics_t *m, int route);
/* One request refused by auth (401) or require_claims (403). */
void metrics_auth_failure(metrics_t *m, auth_reason_t reason);
/* A change of the JWKS file read while running: new keys (ok) or not.
 * Worker 0 alone counts them (each worker reads the file). */
void metrics_jwks_reload(metrics_t *m, int ok);
/* One upstream request completed (any outcome but cancelled). */
void metrics_upstream_duration(metrics_t *m, int service, uint64_t duration_ns);

/* Reloads: ok or failed, at wall time `now_s` (the config loaded at start
 * counts as a success time, not as a reload: metrics_config_loaded). */
void metrics_config_loaded(metrics_t *m, double now_s);
void metrics_reload(metrics_t *m, int ok, double now_s);

/* Appends the whole /metrics text, summing the given workers' figures (any
 * thread may call it while they run); `cfg` (the caller's current config)
 * names the services and endpoints. 0 or -ENOMEM. */
int metrics_render(buf_t *out, metrics_t *const *workers, size_t n_workers, const config *cfg);

#endif
