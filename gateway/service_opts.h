/*
 * service_opts: a configured service (config/config.h) added to an upstream
 * client (core/upstream.h): its endpoints as "host:port" texts, its
 * settings, its TLS options. Used by the gateway's generations and by the
 * command line's live checks, so both reach a service the same way.
 */
#ifndef PG_GATEWAY_SERVICE_OPTS_H
#define PG_GATEWAY_SERVICE_OPTS_H

#include <stddef.h>

#include "config/config.h"
#include "core/upstream.h"

/*
 * Adds the service to `up`, counting into `stats` (NULL: the service's
 * own). NULL on failure with the reason in why[whylen], naming the config
 * field ("services.NAME.tls.ca: cannot read ca.pem: ...", "services.NAME:
 * out of memory").
 */
up_service_t *service_opts_add(upstream_t *up, const config_service *s, up_service_stats_t *stats, char *why,
                               size_t whylen);

/* The endpoints' "host:port" texts into storage[s->endpoint_count] and
 * texts[s->endpoint_count] (texts[i] points into storage). */
void service_opts_endpoints(const config_service *s, char (*storage)[HOSTPORT_TEXT_SIZE], const char **texts);

#endif
