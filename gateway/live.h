/*
 * live: asks running services which handlers they have. A Nest app that
 * imports the patterngate-nest module (nest/) answers the reserved pattern
 * {"patterngate":"handlers"} with [{"pattern": P, "kind": "send"|"emit"}]
 * for every @MessagePattern and @EventPattern; an app without it answers
 * Nest's "no matching message handler". Used by `patterngate --check
 * --live` and `patterngate scaffold`.
 *
 * Blocking: each call runs a private libuv loop until every service has
 * answered or failed (bounded by the timeout given). Not for the gateway's
 * own loops.
 *
 * Ownership: a live_report_t owns its handlers (jansson values); release it
 * with live_report_free().
 */
#ifndef PG_GATEWAY_LIVE_H
#define PG_GATEWAY_LIVE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "core/tls.h"

#define LIVE_PATTERN "{\"patterngate\":\"handlers\"}"

typedef enum live_status {
    LIVE_LISTED,      /* the module answered: handlers[] holds the list */
    LIVE_NO_MODULE,   /* the service has no handler for the reserved pattern */
    LIVE_UNREACHABLE, /* no answer: connection, timeout, a bad reply... */
} live_status_t;

typedef struct live_handler {
    json_t *pattern;  /* as the app declared it */
    bool is_event;    /* @EventPattern (kind "emit") */
} live_handler_t;

typedef struct live_report {
    live_status_t status;
    char detail[300]; /* LIVE_UNREACHABLE: why */
    live_handler_t *handlers;
    size_t n;
} live_report_t;

/* Asks every service of cfg; reports[i] is services[i]'s (the array has
 * cfg->service_count entries, to free with live_reports_free). NULL when
 * out of memory. */
live_report_t *live_ask_config(const config *cfg, uint32_t timeout_ms);
void live_reports_free(live_report_t *reports, size_t n);

/* Asks one address ("host:port"); tls NULL: plain TCP. 0, or -1 with the
 * reason in report->detail (a bad address, a TLS file). */
int live_ask_address(const char *address, const tls_client_opts_t *tls, const char *servername,
                     uint32_t timeout_ms, live_report_t *report);
void live_report_free(live_report_t *report);

/*
 * Whether a route's pattern (JSON text) reaches a handler's, as Nest's
 * server matches them: a string that is JSON for an object counts as that
 * object, and objects compare by their members whatever their order.
 */
bool live_pattern_matches(const char *route_pattern_json, const json_t *handler_pattern);

/* The handler that a route's pattern reaches, or NULL. */
const live_handler_t *live_find(const live_report_t *report, const char *route_pattern_json);

#endif
