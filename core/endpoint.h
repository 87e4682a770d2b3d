/*
 * endpoint: one address of a service (an IP literal of the config, or one
 * address a name resolved to) with its pool of connections, its outlier
 * ejection and its draining. Internal to core/ (included by
 * upstream_internal.h).
 *
 *               ejection (5 failures in a row)
 *   ACTIVE -----------------------------------> EJECTED
 *     ^  \<---------- the ejection is over -------'  |
 *     |   \                                         |
 *     |    '--- its address left the DNS answer ----+--> DRAINING --no requests--> gone
 *     '------- (an address that comes back is a new endpoint)
 *
 * Only ACTIVE endpoints take new requests. A DRAINING endpoint's requests
 * in flight finish (or time out); then its connections close and it is
 * freed, from the upstream's idle handler (never inside a callback of one
 * of its connections). The last endpoint of a service that is not ejected
 * is never ejected.
 *
 * Pool: `pool_size` connections that are not retiring. A connection older
 * than max_connection_age_ms (plus up to 10% jitter) retires: it takes no
 * new request, a new connection replaces it at once, and it closes once
 * its requests are done (again from the idle handler), failing none.
 *
 * Ownership: the service owns its endpoints (svc->eps); an endpoint owns
 * its connections (ep->conns), its newest TLS session, and its slot of the
 * service's eject_slots table while it lives.
 */
#ifndef PG_CORE_ENDPOINT_H
#define PG_CORE_ENDPOINT_H

#include <sys/socket.h>

struct up_endpoint {
    up_service_t *svc;
    up_target_t *target;         /* the configured host it came from */
    up_endpoint_state_t state;
    resolver_addr_t addr;
    struct sockaddr_storage sockaddr; /* addr and the target's port */
    char address[UP_EJECT_ADDRESS_SIZE]; /* "10.0.0.7:3000", "[fd00::7]:3000" */
    list_node_t conns;           /* up_conn_t, in creation order */
    size_t n_conns;
    tls_session_t *tls_session;  /* the newest, offered on reconnect */
    /* outlier ejection (defaults.h) */
    unsigned connect_failures;   /* in a row, any of its connections */
    unsigned protocol_errors;    /* in a row, since the last good reply */
    unsigned ejections;          /* in a row; reset by a stable connection */
    uint64_t ejected_until_wall; /* ms since the epoch; 0: not ejected */
    timer_entry_t eject_timer;
    /* for balancing and /status */
    uint64_t inflight;           /* requests written on its connections */
    uint64_t requests;
    uint64_t disconnected_since_wall; /* 0 while a connection is connected */
    int slot;                    /* in svc->stats->eject_slots, -1: none */
    bool sweep;                  /* the idle handler has work here */
};

/* A new ACTIVE endpoint for addr (the target's port), with pool_size
 * DISCONNECTED connections, added to svc->eps; started when the service is
 * active. NULL when out of memory. */
up_endpoint_t *ep_new(up_service_t *svc, up_target_t *target, const resolver_addr_t *addr);

/* Starts the connections that are down and not backing off (a lazy
 * service's first request, an ejection that ended, a new endpoint). */
void ep_start(up_endpoint_t *ep);

/* Its address left the answer: no new requests; gone once they are done. */
void ep_drain(up_endpoint_t *ep);

/* ACTIVE: it takes new requests. */
static inline int ep_usable(const up_endpoint_t *ep) { return ep->state == UP_EP_ACTIVE; }

/* Its least loaded connection that takes a request now, or NULL; *full is
 * set when a connected one was left out for being full. */
up_conn_t *ep_best_conn(up_endpoint_t *ep, int *full);

/* Whether a connection of it is connecting (an attempt is under way). */
int ep_connecting(const up_endpoint_t *ep);

/* Outlier ejection bookkeeping, from conn.c. */
/* The DNS name the endpoint's address came from; NULL for an IP literal. */
const char *ep_from(const up_endpoint_t *ep);

void ep_connect_failed(up_endpoint_t *ep);
void ep_connected(up_endpoint_t *ep);
void ep_protocol_error(up_endpoint_t *ep);
void ep_reply_ok(up_endpoint_t *ep);
/* A connection of it stayed up a while: the backoff and ejection streaks
 * start over. */
void ep_stable(up_endpoint_t *ep);
/* Whether its connections may reconnect now (not ejected, not draining). */
int ep_may_connect(const up_endpoint_t *ep);
/* A connection went up or down: keeps disconnected_since. */
void ep_conn_state_changed(up_endpoint_t *ep);

/* A connection reached max_connection_age_ms: it retires, a new one takes
 * its place. */
void ep_conn_aged(up_conn_t *conn);

/* A request left one of its connections: maybe a retiring connection or a
 * draining endpoint is done (handled from the idle handler). */
void ep_request_left(up_endpoint_t *ep, up_conn_t *conn);

/* From the idle handler: closes retiring connections with no request left
 * and frees a draining endpoint with none left. 1 when the endpoint was
 * freed. */
int ep_sweep(up_endpoint_t *ep);

/* Closes every connection (their requests fail with outcome/why) and frees
 * the endpoint (service removal, upstream close). */
void ep_destroy(up_endpoint_t *ep, up_outcome_t outcome, const char *why);

/* What /status shows. */
void ep_info(const up_endpoint_t *ep, up_endpoint_info_t *out);
up_conn_t *ep_conn_at(const up_endpoint_t *ep, size_t k);

#endif
