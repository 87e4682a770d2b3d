/*
 * edge: what one config's edge policy (SPEC.md "Edge policy for the
 * ingress direction") compiles into, once per config generation, so that a
 * request pays nothing for it but the decisions: the CORS policies (the top
 * level's and each route's own, cors.h) and each route's rate limit (its
 * rule, its key, ratekey.h, and the name of its buckets).
 *
 * Rate-limit scopes: a route's buckets are named "METHOD PATH" after the
 * route ("GET /users/:id"), so a reload that keeps the route keeps its
 * buckets (ratelimit.h), and two routes never share one.
 *
 * Ownership: an edge_t borrows its config (which must outlive it) and owns
 * the compiled policies, keys and scope names; the pointers it hands out
 * live as long as it does. Nothing changes after edge_new(), so several
 * threads may read one.
 */
#ifndef PG_GATEWAY_EDGE_H
#define PG_GATEWAY_EDGE_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "gateway/cors.h"
#include "gateway/ratekey.h"
#include "gateway/ratelimit.h"

typedef struct edge_route {
    const cors_policy_t *cors;  /* the route's CORS policy (its own, else the
                                   top level's); NULL: none */
    bool limited;               /* has a rate_limit */
    ratelimit_rule_t rule;      /* limited: rps and burst */
    ratekey_t key;              /* limited: the bucket key */
    span_t scope;               /* limited: "METHOD PATH" */
} edge_route_t;

typedef struct edge edge_t;

/* Compiles cfg's edge policy. NULL when out of memory (or a rate-limit
 * key the loader should have refused). */
edge_t *edge_new(const config *cfg);
void edge_free(edge_t *e);

/* The top level's CORS policy (for the generic API and requests that match
 * no route); NULL: none. */
const cors_policy_t *edge_top_cors(const edge_t *e);

/* Whether any CORS policy exists (the top level's or a route's own): when
 * not, a request needs no CORS work at all. */
bool edge_has_cors(const edge_t *e);

/* Route number i of the config (i < route_count). */
const edge_route_t *edge_route(const edge_t *e, size_t i);

#endif
