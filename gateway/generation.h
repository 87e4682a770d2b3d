/*
 * generation: one loaded config and what was built from it (router,
 * upstream services, metrics indices). A reload builds a new generation
 * next to the running one; requests keep the generation they started with
 * (a reference) and finish on it.
 *
 * Services are shared between generations when their definition did not
 * change (same fingerprint: every field of the service, plus a SHA-256 of
 * the contents of its TLS files), so their connections survive a reload.
 * A service is removed from the upstream (up_service_remove) when the last
 * generation using it is released.
 *
 * Ownership: generation_new takes the config when it succeeds (on failure the
 * caller still owns it); the generation owns it, the router, the
 * compiled edge policy and its references to services. The gateway holds one reference to the
 * current generation, each exchange one to its own. One loop thread.
 */
#ifndef PG_GATEWAY_GENERATION_H
#define PG_GATEWAY_GENERATION_H

#include <stddef.h>

#include "config/config.h"
#include "core/upstream.h"
#include "gateway/edge.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/router.h"

typedef struct generation_service generation_service_t; /* a service shared by generations */

typedef struct generation {
    unsigned refs;
    config *cfg;
    router_t *router;
    up_service_t **services;    /* [cfg->service_count] */
    generation_service_t **shared;     /* [cfg->service_count] */
    int *route_metric;          /* [cfg->route_count]: metrics route index */
    int *service_metric;        /* [cfg->service_count] */
    edge_t *edge;               /* the compiled edge policy (CORS, rate limits) */
    size_t kept;                /* services taken over from `prev` */
} generation_t;

/*
 * Builds a generation for cfg (taken over on success), reusing
 * the unchanged services of prev (may be NULL). Eager new services start
 * connecting. NULL on failure, with the reason logged (a TLS file that
 * cannot be loaded names its field: services.NAME.tls.ca). The result has
 * one reference.
 */
generation_t *generation_new(config *cfg, generation_t *prev, upstream_t *up, metrics_t *metrics, const logger_t *log);

static inline generation_t *generation_ref(generation_t *g)
{
    g->refs++;
    return g;
}

/* Drops a reference; the last one frees the generation and removes the
 * services no other generation uses (their connections close). */
void generation_release(generation_t *g);
/* The same when the gateway stops, before the upstream closes: `why` is
 * what requests still on the services are told. */
void generation_release_why(generation_t *g, const char *why);

#endif
