/*
 * worker: what the modules of one worker share. gateway.c builds it at
 * start and owns it; exchange.c, proxy.c, admin.c and reload.c get a
 * pointer and never include gateway.h, so no call goes back up into
 * gateway.c. Each field names its one writer; everyone else only reads.
 *
 * Threads: a worker_t belongs to its loop's thread; other workers reach it
 * only through peers.h messages. `all_metrics` is the exception SPEC.md's
 * /metrics needs: every worker's counters, written by their owners and read
 * by any scrape (metrics.h explains why that is safe).
 */
#ifndef PG_GATEWAY_WORKER_H
#define PG_GATEWAY_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/upstream.h"
#include "gateway/generation.h"
#include "gateway/httpd.h"
#include "gateway/jwks.h"
#include "gateway/jwt.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/peers.h"
#include "gateway/ratelimit.h"
#include "gateway/uplog.h"

#define WORKER_ERROR_SIZE 2048

typedef struct worker {
    /* set once by gateway.c at start */
    uv_loop_t *loop;
    unsigned index;                /* 0 serves admin_listen and writes the
                                      process-wide log lines */
    size_t count;                  /* workers in the process */
    metrics_t *metrics;            /* this worker's counters */
    metrics_t *const *all_metrics; /* every worker's, for /metrics */
    peers_t *peers;                /* messages to the other workers */
    upstream_t *up;
    uint64_t started_ns;           /* uv_hrtime at start, for uptime */
    ratelimit_t *ratelimit;        /* the routes' token buckets: one for the
                                      process, shared by every worker (its
                                      own lock); reload.c sets its bound */
    jwt_cache_t *jwt_cache;        /* this worker's verified tokens: proxy.c
                                      fills it, reload.c empties it */

    uplog_t uplog;                 /* the upstream's events and packets:
                                      gateway.c inits it, uplog.c writes it */

    /* gateway.c, as the worker starts and stops */
    httpd_t *httpd;                /* the listener; NULL once closed */
    httpd_t *admin_httpd;          /* admin_listen (worker 0); NULL: none */
    int draining;                  /* a signal came: new requests get 503 */

    /* reload.c (reload_start sets the first values) */
    logger_t log;                  /* per-worker lines: they carry "worker" */
    logger_t process_log;          /* process-wide lines: muted but on worker 0 */
    generation_t *gen;             /* the current config and what was built
                                      from it; exchanges hold their own */
    uint64_t config_loaded_at_ms;  /* wall clock */
    char last_reload_error[WORKER_ERROR_SIZE]; /* "" when none since start */
    uint64_t last_reload_error_at_ms;
    jwks_t *jwks;                  /* auth.jwt.jwks_file's keys; NULL: none
                                      (take jwks_keys() afresh per request) */
} worker_t;

#endif
