/*
 * proxy: what the gateway does with one HTTP request: the exchange
 * machine's handler (exchange.h). It decides where a request goes as soon
 * as its head is in (so that a 404, 401, 429 or 413 costs no body): the
 * admin API, the generic API or a configured route; then the edge policy
 * (SPEC.md "Edge policy for the ingress direction"), in this order: CORS
 * (a preflight is answered at once; other answers get the CORS headers),
 * auth (the route's mechanisms, auth.h; a JWT's claims go to the
 * templates and, forward_claims, to the packet metadata), the route's
 * rate limit (edge.h, ratelimit.h); then the limits; collects the body;
 * renders the packet data; sends it to the
 * service; and turns the reply into the answer: a whole response, or a
 * stream whose head goes out as soon as the request is written to the
 * service, with every later error in-band (SPEC.md "Operating it").
 * Once MHD completes the request it counts it and writes its access line.
 *
 * Each request holds the config generation it started on until it
 * completes. A streamed request written only later (it waited for a
 * connection) is noticed after the service's next connection comes up
 * (proxy_on_upstream_event), or at its first value or outcome.
 *
 * Ownership: the proxy (one per worker) owns its exchange pool; gateway.c
 * creates it after the worker's config and closes it once its HTTP
 * servers are closed. One loop thread.
 */
#ifndef PG_GATEWAY_PROXY_H
#define PG_GATEWAY_PROXY_H

#include "core/buf.h"
#include "core/upstream.h"
#include "gateway/errors.h"
#include "gateway/exchange.h"
#include "gateway/worker.h"

typedef struct proxy proxy_t;

/* A proxy for worker w, its exchanges going through `http` (ex_http_mhd).
 * NULL when out of memory. */
proxy_t *proxy_new(worker_t *w, const ex_http_t *http);
/* Once no exchange is alive; the memory goes with the loop's next turn. */
void proxy_close(proxy_t *px);

ex_pool_t *proxy_pool(proxy_t *px);

/* The upstream's events (gateway.c forwards them): a connection that came
 * up may have taken waiting stream requests. */
void proxy_on_upstream_event(proxy_t *px, const up_event_t *ev);

/* httpd's on_refused (ctx: the ex_listener_t): MHD refused a request head
 * itself; the whole HTTP response to send goes to `wire`; counted and
 * access-logged like any answer. */
void proxy_on_refused(void *ctx, gw_error_t kind, const char *message, buf_t *wire);

#endif
