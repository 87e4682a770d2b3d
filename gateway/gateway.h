/*
 * gateway: the process: its workers, each a libuv loop in a thread of its
 * own (the first in the caller's), with its own HTTP daemon on `listen`
 * (SO_REUSEPORT spreads the connections), upstream pools, config copy and
 * exchanges; signals and the shutdown drain. gateway.c builds every
 * worker's modules and calls down into them; none of them includes this
 * header or calls back up (worker.h is what they share).
 *
 * Ownership tree (per worker; gateway_run owns the shared part):
 *
 *   gateway_run
 *    |- metrics_t *[workers]   every worker's counters (read by /metrics)
 *    |- peers_t                messages between the workers
 *    '- worker thread
 *        '- gateway_t          gateway.c's: signals, drain timers
 *            |- worker_t       what the modules share (worker.h)
 *            |   |- upstream_t *       every service of every live generation
 *            |   |- generation_t *     the current config (reload.c's)
 *            |   '- httpd_t *          listen, and admin_listen on worker 0
 *            |- reloader_t     SIGHUP and the file watch (worker 0)
 *            '- proxy_t *      the request logic and its exchange pool:
 *                              one exchange per HTTP request (exchange.h),
 *                              each holding its generation
 */
#ifndef PG_GATEWAY_GATEWAY_H
#define PG_GATEWAY_GATEWAY_H

#include "config/config.h"

/*
 * Runs a gateway for `cfg` (ownership passes to it) until SIGTERM or
 * SIGINT; returns the process exit code (0 after a signal, 1 when the
 * listener cannot start). On the first signal new requests get 503
 * draining with Connection: close and requests in flight finish, up to
 * shutdown_grace_ms; then every request still waiting gets 503 draining
 * and every open stream its draining error and its end, which are given up
 * to GATEWAY_FLUSH_MS to reach their clients. A second signal ends them at
 * once.
 */
int gateway_run(config *cfg);

#define GATEWAY_FLUSH_MS 2000

#endif
