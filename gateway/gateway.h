/*
 * gateway: one worker of the HTTP bridge: a libuv loop that runs the HTTP
 * server (httpd), the upstream client (core/upstream) and the router, and
 * turns each HTTP request into a pattern message and its reply back into an
 * HTTP response (exchange.c). No global state: everything hangs off the
 * gateway_t.
 *
 * Ownership tree:
 *
 *   gateway_t
 *    |- generation_t *      the current config, its router and services
 *    |                      (generation.h); a reload replaces it, older ones
 *    |                      live while exchanges still hold them
 *    |- upstream_t *        every service of every live generation
 *    |- metrics_t *         counters for /metrics, across reloads
 *    |- httpd_t *           the listener, and one for admin_listen
 *    |- reloader_t          SIGHUP and the config file watch
 *    '- exchange_t          one per HTTP request, from its first byte until
 *                           MHD says it completed (see exchange.h); holds
 *                           its generation
 */
#ifndef PG_GATEWAY_GATEWAY_H
#define PG_GATEWAY_GATEWAY_H

#include <uv.h>

#include "config/config.h"
#include "core/list.h"
#include "core/timers.h"
#include "core/upstream.h"
#include "gateway/httpd.h"
#include "gateway/uplog.h"
#include "gateway/generation.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/reload.h"
#include "gateway/router.h"

typedef struct gateway {
    uv_loop_t *loop;
    config *cfg;              /* gen->cfg: the current config */
    logger_t log;
    uplog_t uplog;      /* upstream connection events */
    metrics_t *metrics;       /* all_metrics[worker] */
    metrics_t *const *all_metrics; /* every worker's, for /metrics */
    size_t n_workers;
    unsigned worker;          /* this one's index; 0 serves admin_listen */
    generation_t *gen;        /* the current config and what was built
                                 from it; exchanges hold their own */
    reloader_t reload;
    uint64_t started_ns;      /* uv_hrtime at start, for uptime */
    uint64_t config_loaded_at_ms; /* wall clock */
    httpd_t *admin_httpd;     /* admin_listen; NULL when not set */
    upstream_t *up;
    httpd_t *httpd;
    size_t waiting;           /* exchanges with a request upstream */
    list_node_t waiting_list; /* those exchanges */
    size_t exchanges;         /* exchanges alive */
    struct exchange *spare_exchanges; /* finished ones kept for reuse */
    size_t n_spare_exchanges;
    size_t suspended;         /* connections MHD holds suspended: it must
                                 not be stopped while there are any */
    uint64_t rng;             /* request ids */
    timers_t timers;          /* the gateway's own deadlines (sse keepalives) */
    uv_signal_t sigterm, sigint;
    uv_timer_t grace;         /* shutdown_grace_ms, from the first signal */
    uv_check_t drained;       /* closes the listener once nothing is left */
    int stopping;             /* a signal came: answer 503 draining */
    int grace_over;           /* shutdown_grace_ms passed, or a 2nd signal */
} gateway_t;

/* One access log line (SPEC.md: with log.access, one per request). */
typedef struct access_entry {
    const char *method;
    const char *path;
    const char *route;        /* the metrics label */
    unsigned status;
    uint64_t duration_ns;
    const char *request_id;   /* NULL: none */
    const char *service;      /* NULL: none */
    size_t bytes;             /* response body */
    size_t request_bytes;
} access_entry_t;

void gateway_access_log(gateway_t *gw, const access_entry_t *e);

/* The wall clock in ms since the epoch (status times, reload timestamps). */
uint64_t gateway_wall_ms(void);

/*
 * Runs a gateway for `cfg` (ownership passes to it): `workers` loops, each
 * in its own thread (the first in the caller's) with its own HTTP daemon
 * on `listen` (SO_REUSEPORT spreads the connections), upstream pools,
 * config copy and reloader; worker 0 also serves admin_listen, and /metrics
 * sums every worker's figures. Until SIGTERM or SIGINT; returns the process exit code (0 after a signal, 1 when
 * the listener cannot start). On the first signal new requests get 503
 * draining with Connection: close, requests in flight finish (up to
 * shutdown_grace_ms, then they get 503 draining too); a second signal ends
 * them at once.
 */
int gateway_run(config *cfg);

#endif
