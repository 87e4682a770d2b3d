/*
 * upstream: the client side of Nest's TCP transport for one worker: services
 * made of endpoints (one per address a configured host resolves to), a pool
 * of connections per endpoint, requests balanced over the endpoints and
 * multiplexed on connections by id, timeouts, reconnects, retries on another
 * endpoint, events to every endpoint. It knows nothing of HTTP or of the
 * config file; gateway/ and the CLI build on it.
 *
 * Threading: everything here belongs to one libuv loop thread. No locks, no
 * blocking calls (names are resolved by core/resolver.h, c-ares on the
 * loop). Several workers each have their own upstream_t; there is no global
 * mutable state.
 *
 * Ownership tree (everything is owned by the node above it):
 *
 *   upstream_t                      one per worker
 *    |- timers_t                    every deadline, one uv timer
 *    |- resolver_t                  made on first need (dns servers)
 *    |- idmap: id -> up_request_t   requests written and awaiting replies
 *    |- uv_idle_t                   flushes coalesced writes and delivers
 *    |                              completions once per loop iteration
 *    '- up_service_t[]              options copied at creation
 *        |- waiting list            requests with no connection yet
 *        |- up_target_t[]           each configured "host:port": an IP
 *        |                          literal, or a name resolved again and
 *        |                          again (its last good set of addresses)
 *        '- up_endpoint_t[]         one per address (core/endpoint.h):
 *            |                      active, ejected or draining
 *            '- up_conn_t list      pool_size connections (more while old
 *                |                  ones retire: max_connection_age_ms)
 *                |- up_sock_t       the socket of one attempt (and its TLS)
 *                '- pending list    requests written on this connection
 *
 * A request (up_request_t) belongs to the upstream from up_submit (or
 * up_send/up_stream/up_emit) until its on_done callback returns (then it is
 * freed), or until up_cancel.
 *
 * Connection states (enum up_conn_state; /status and metrics use the names):
 *
 *   DISCONNECTED --start--> CONNECTING --connected--> CONNECTED
 *        ^                      |                         |
 *        '------ failure, timeout, close, protocol error -'
 *
 * CONNECTING covers the TCP connect and the TLS handshake, bounded together
 * by connect_timeout_ms (names are resolved before: an endpoint is an
 * address). Over TLS 1.3 a server judges the client certificate only after
 * the handshake, so CONNECTING lasts until the server's first record after
 * it (a session ticket) or a 200 ms grace. Leaving CONNECTED fails every
 * request pending on the connection at once (closed, or bad_message for a
 * protocol violation), unless the request has retries left (then it is
 * sent again, on another endpoint when one is usable). An eager pool
 * reconnects by itself after 100 ms, doubling up to 5 s, plus up to 20%
 * jitter; the delay resets once a connection has stayed up 1 s. A lazy pool
 * opens its connections on the first request and from then on behaves the
 * same.
 *
 * Endpoints: see core/endpoint.h for their states. Names are resolved at
 * start, every resolve_interval_ms (sooner when the answer's TTL is shorter,
 * at least 1 s apart) and at once when a connection to one of the name's
 * addresses fails; an address that joins the answer gets an endpoint, one
 * that leaves is drained; an answer that fails or is empty keeps the last
 * good set.
 */
#ifndef PG_CORE_UPSTREAM_H
#define PG_CORE_UPSTREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/settings.h"
#include "core/tls.h"

/* How a request ended; the names are SPEC.md's metric outcome labels. */
typedef enum up_outcome {
    UP_OK,
    UP_ERROR,        /* the service replied with `err` */
    UP_TIMEOUT,
    UP_UNAVAILABLE,  /* no connection could be had */
    UP_CLOSED,       /* the connection closed before the last reply */
    UP_BAD_MESSAGE,  /* the service broke the protocol */
    UP_NO_HANDLER,
    UP_OVERLOADED,
    UP_CANCELLED,    /* the caller went away */
    UP_OUTCOME_COUNT
} up_outcome_t;

const char *up_outcome_name(up_outcome_t outcome);

typedef enum up_conn_state {
    UP_CONN_DISCONNECTED,
    UP_CONN_CONNECTING,
    UP_CONN_CONNECTED,
    UP_CONN_STATE_COUNT
} up_conn_state_t;

const char *up_conn_state_name(up_conn_state_t state);

/* An endpoint's state (/status `state`, the upstream_endpoints metric). */
typedef enum up_endpoint_state {
    UP_EP_ACTIVE,
    UP_EP_DRAINING,  /* its address left the DNS answer: no new requests */
    UP_EP_EJECTED,   /* outlier ejection: no traffic for a while */
    UP_EP_STATE_COUNT
} up_endpoint_state_t;

const char *up_endpoint_state_name(up_endpoint_state_t state);

/* How a name's resolution ended (upstream_dns_resolutions_total). */
typedef enum up_dns_result { UP_DNS_OK, UP_DNS_EMPTY, UP_DNS_ERROR, UP_DNS_RESULT_COUNT } up_dns_result_t;
const char *up_dns_result_name(up_dns_result_t result);

/* Why a request was sent again (upstream_retries_total). */
typedef enum up_retry_reason { UP_RETRY_CLOSED, UP_RETRY_UNAVAILABLE, UP_RETRY_REASON_COUNT } up_retry_reason_t;
const char *up_retry_reason_name(up_retry_reason_t reason);

/* A counter written by the loop thread that owns it and read by any thread
 * (a scrape by another worker): relaxed atomic loads and stores, no
 * read-modify-write, so counting costs what a plain addition does. */
typedef _Atomic uint64_t up_counter_t;

static inline void up_count(up_counter_t *c, int64_t delta)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint64_t)delta,
                          memory_order_relaxed);
}

static inline uint64_t up_read(const up_counter_t *c)
{
    return atomic_load_explicit((up_counter_t *)c, memory_order_relaxed);
}

/*
 * The addresses of a service's endpoints for the upstream_endpoint_ejected
 * metric, readable by another thread: a fixed table of slots, each written
 * by the owning loop under a sequence number (odd while it changes), so a
 * reader copies a slot and keeps the copy only when the sequence was even
 * and unchanged around it. A slot is reused once its endpoint is gone; past
 * UP_EJECT_SLOTS endpoints at once the rest are not shown.
 */
#define UP_EJECT_SLOTS 64
#define UP_EJECT_ADDRESS_SIZE 56
typedef struct up_eject_slot {
    _Atomic uint32_t seq;
    _Atomic uint32_t live;      /* an endpoint has this address now */
    _Atomic uint32_t ejected;
    _Atomic char address[UP_EJECT_ADDRESS_SIZE];
} up_eject_slot_t;

/* Reads slot i consistently: 1 with address (NUL-terminated) and
 * *ejected set when the slot is live, 0 when it is not (or changing). */
int up_eject_slot_read(const up_eject_slot_t *slot, char address[UP_EJECT_ADDRESS_SIZE], int *ejected);

/* Counters of a service, read by /status and /metrics. They may be kept by
 * the caller (up_service_opts.stats) so that they outlive the service: a
 * reload that replaces a service keeps counting in the same place. */
typedef struct up_service_stats {
    up_counter_t outcomes[2][UP_OUTCOME_COUNT]; /* [0] send, [1] emit */
    up_counter_t late_replies;                  /* replies for unknown ids */
    up_counter_t connects_ok;
    up_counter_t connects_failed;
    up_counter_t bytes_out;
    up_counter_t bytes_in;
    up_counter_t inflight;                      /* requests not yet completed */
    up_counter_t conns[UP_CONN_STATE_COUNT];    /* connections in each state */
    up_counter_t endpoints[UP_EP_STATE_COUNT];  /* endpoints in each state */
    up_counter_t dns[UP_DNS_RESULT_COUNT];      /* resolutions of its names */
    up_counter_t retries[UP_RETRY_REASON_COUNT];
    up_eject_slot_t eject_slots[UP_EJECT_SLOTS];
} up_service_stats_t;

/* A service's options. Strings are copied by up_service_add. The scalar
 * settings are core/settings.h's table, reachable both as fields
 * (opts.timeout_ms) and as one struct (opts.settings). */
typedef struct up_service_opts {
    const char *name;
    const char *const *endpoints; /* "host:port": IP literals or DNS names */
    size_t n_endpoints;
    union {
        up_settings_t settings;
        struct { UP_SERVICE_SETTINGS(UP_SETTINGS_FIELD) };
    };
    const tls_client_opts_t *tls; /* NULL: plain TCP; read by up_service_add */
    up_service_stats_t *stats;    /* where to count (borrowed, must outlive
                                     the service); NULL: the service's own */
    const char *servername;       /* TLS: the name verified and sent as SNI;
                                     NULL: each endpoint's configured host */
} up_service_opts_t;

/* Fills opts with SPEC.md's defaults (name and endpoints left empty). */
void up_service_opts_defaults(up_service_opts_t *opts);

typedef struct upstream upstream_t;
typedef struct up_service up_service_t;
typedef struct up_request up_request_t;

/*
 * Callbacks of one request; never called from inside the call that
 * submitted it.
 * on_value: one reply value (send only), as the byte-exact JSON text the
 *   service wrote; borrowed for the duration of the call.
 * on_done: exactly once, unless the request was cancelled. For UP_ERROR and
 *   UP_NO_HANDLER `err` is the service's `err` JSON text; otherwise empty.
 *   `detail` is a human explanation for the failures (static or valid during
 *   the call). The request is freed when on_done returns.
 */
typedef struct up_callbacks {
    void (*on_value)(void *ctx, span_t value);
    void (*on_done)(void *ctx, up_outcome_t outcome, span_t err, const char *detail);
} up_callbacks_t;

/* Creates the upstream of a loop. NULL when out of memory. */
upstream_t *upstream_new(uv_loop_t *loop);

/*
 * The DNS servers for names (SPEC.md `dns.servers`: "ip" or "ip:port"
 * texts; n 0: /etc/resolv.conf's, as without a call). Names already being
 * resolved are asked again of the new servers. 0, or -EINVAL with err
 * naming the bad server.
 */
int upstream_set_dns_servers(upstream_t *up, const char *const *servers, size_t n, char *err, size_t errlen);

/*
 * Closes every connection, completes every request still in flight with
 * UP_CANCELLED (callbacks run), and frees everything once libuv has closed the
 * handles; the loop can then be closed clean.
 */
void upstream_close(upstream_t *up);

/* Adds a service (eager ones start connecting at once; names start
 * resolving). With opts->tls its TLS context is built here (files read now).
 * NULL with a reason in err when it cannot: a bad "host:port", or a TLS
 * file, named "tls.FIELD: reason" (e.g. "tls.ca: cannot read ca.pem: No
 * such file or directory"). */
up_service_t *up_service_add(upstream_t *up, const up_service_opts_t *opts, char *err, size_t errlen);
up_service_t *up_service_find(upstream_t *up, const char *name);

/* Takes a service away (a config reload dropped or changed it, or the
 * gateway stops): requests still waiting or in flight on it fail
 * (unavailable or closed, with `why`), its connections close, and it is
 * freed. Must not be called from inside a callback of one of its own
 * requests (asserted). */
void up_service_remove(up_service_t *svc, const char *why);
const up_service_opts_t *up_service_options(const up_service_t *svc);
const up_service_stats_t *up_service_stats(const up_service_t *svc);

/* ---- what /status shows ---------------------------------------------------
 * Strings are valid until the next call into the upstream. Times are ms
 * since the epoch, 0 for never/none. Endpoint indexes are stable only until
 * the loop runs again (endpoints come and go with DNS answers). */

typedef struct up_conn_info {
    up_conn_state_t state;
    uint64_t inflight;
    uint64_t requests;
    uint64_t errors;
    uint64_t reconnects;
    const char *last_error;      /* "" for none */
    uint64_t last_error_at;
    uint64_t connected_since;
    const char *tls_version;     /* NULL: plain TCP, or TLS not yet negotiated */
    bool retiring;               /* past max_connection_age_ms: takes no new
                                    requests, closes once they are done */
} up_conn_info_t;

typedef struct up_endpoint_info {
    const char *address;         /* "10.0.0.7:3000", "[fd00::7]:3000" */
    const char *from;            /* the DNS name it came from; NULL for an
                                    IP literal */
    up_endpoint_state_t state;
    uint64_t inflight;           /* summed over its connections */
    uint64_t requests;
    uint64_t ejected_until;
    uint64_t disconnected_since; /* since when no connection is connected;
                                    0 while one is */
    uint64_t next_attempt_at;    /* the next connection attempt, 0: none
                                    planned (connected, or connecting) */
    size_t n_conns;
} up_endpoint_info_t;

size_t up_service_endpoint_count(const up_service_t *svc);
void up_service_endpoint_info(const up_service_t *svc, size_t i, up_endpoint_info_t *out);
/* Connection k < info.n_conns of endpoint i. */
void up_service_conn_info(const up_service_t *svc, size_t i, size_t k, up_conn_info_t *out);
int up_service_uses_tls(const up_service_t *svc);
/* The service's names: when one was last resolved (0: never, or none) and
 * the error of the first name whose last lookup failed ("" when every
 * name's last lookup succeeded). */
void up_service_resolve_info(const up_service_t *svc, uint64_t *resolved_at, const char **last_error);

/* Connections of the service in a given state. */
size_t up_service_conns_in_state(const up_service_t *svc, up_conn_state_t state);

/* ---- requests ------------------------------------------------------------ */

typedef enum up_kind {
    UP_KIND_SEND,   /* request-reply: every value until the last */
    UP_KIND_STREAM, /* the same, the timeout restarts at every value */
    UP_KIND_EMIT,   /* an event: done once written */
} up_kind_t;

typedef struct up_request_opts {
    uint32_t timeout_ms; /* 0: the service's. For UP_KIND_STREAM it bounds
                            the wait for the first value and then for each
                            next one; else the whole request, retries
                            included */
    unsigned retries;    /* how many more times it may be sent when its
                            connection closed before the reply, or no
                            connection could be had (at most
                            PG_MAX_RETRIES); each time on another endpoint
                            when one is usable. 0: never resent */
    bool fanout_all;     /* UP_KIND_EMIT: to every usable endpoint */
} up_request_opts_t;

/*
 * Submits a request. pattern, data and metadata (n == 0: none) must be
 * valid JSON texts; they are copied. opts may be NULL (the defaults).
 * Returns a handle valid until on_done returns or up_cancel is called; NULL
 * only when out of memory.
 */
up_request_t *up_submit(up_service_t *svc, up_kind_t kind, span_t pattern, span_t data, span_t metadata,
                        const up_request_opts_t *opts, const up_callbacks_t *cb, void *ctx);

/* Shorthands of up_submit with only a timeout. */
up_request_t *up_send(up_service_t *svc, span_t pattern, span_t data, span_t metadata,
                      uint32_t timeout_ms, const up_callbacks_t *cb, void *ctx);
up_request_t *up_stream(up_service_t *svc, span_t pattern, span_t data, span_t metadata,
                        uint32_t timeout_ms, const up_callbacks_t *cb, void *ctx);
up_request_t *up_emit(up_service_t *svc, span_t pattern, span_t data, span_t metadata,
                      uint32_t timeout_ms, const up_callbacks_t *cb, void *ctx);

/* The caller went away: no callback is called any more, later replies for
 * the request are dropped (and counted as late), its resources are freed. */
void up_cancel(up_request_t *req);

/* The "host:port" of the endpoint the request was last written on (a
 * copy, so it outlives the endpoint); NULL while it has not been written
 * (so, read right after up_send/up_stream/up_emit, it tells whether the
 * request was written at once). Readable while the handle is valid, in its
 * callbacks too. For an event, up_request_delivered is the number of
 * endpoints it was written to (0 or 1; every usable one with fanout all). */
const char *up_request_address(const up_request_t *req);
size_t up_request_delivered(const up_request_t *req);

/*
 * Connection and name events, for logs. CONNECTED once a connection may
 * carry requests (after the TLS handshake and, for TLS 1.3, the server's
 * verdict on the client); CONNECT_FAILED when an attempt ends before that;
 * DISCONNECTED when a connected one goes down. Not reported while the
 * upstream closes. All strings are valid during the call only.
 */
typedef enum up_event_type {
    UP_EV_CONNECTED,
    UP_EV_CONNECT_FAILED,
    UP_EV_DISCONNECTED,
    UP_EV_EJECTED,        /* the endpoint gets no traffic for ejected_ms */
    UP_EV_RESOLVED,       /* a name's addresses changed: joined, left */
    UP_EV_RESOLVE_FAILED, /* an answer failed or was empty: the last good
                             set stays (detail says why) */
    UP_EV_DRAINED,        /* a draining endpoint's requests are done: its
                             connections closed and it is gone */
    UP_EV_FOREIGN_REPLY,  /* a reply that is not a Nest reply packet (a
                             custom serializer?): detail is its first 200
                             bytes; once per connection */
} up_event_type_t;

typedef struct up_event {
    up_event_type_t type;
    const char *service;
    const char *endpoint;    /* "address:port"; for RESOLVE*: the name */
    const char *from;        /* the DNS name the endpoint came from, or NULL */
    const char *detail;      /* why (failures), else NULL */
    const char *tls_version; /* "TLSv1.3"; NULL for plain TCP */
    int tls_resumed;         /* CONNECTED over TLS: the session was resumed */
    uint64_t ejected_ms;     /* EJECTED: for how long */
    size_t joined, left, total; /* RESOLVED: addresses that came, went, now */
} up_event_t;

typedef void (*up_event_fn)(void *ctx, const up_event_t *event);
/* Replaces the handler (NULL: none). Called from the loop, never re-entrantly
 * from up_submit and friends. */
void upstream_set_event_handler(upstream_t *up, up_event_fn fn, void *ctx);

/*
 * Packets as they go to and come from services, for debug logs: every
 * request and event packet when it is queued for writing on a connection,
 * every packet read from one (replies, late ones included) before it is
 * handled. `json` is the packet's JSON text without its length prefix;
 * everything is valid during the call only. A packet written at once is
 * observed from inside up_send/up_stream/up_emit: the observer must not
 * call into the upstream.
 */
typedef enum up_packet_direction { UP_PACKET_OUT, UP_PACKET_IN } up_packet_direction_t;

typedef struct up_packet {
    up_packet_direction_t direction;
    const char *service;
    const char *endpoint;    /* "host:port" as configured */
    span_t json;
} up_packet_t;

typedef void (*up_packet_fn)(void *ctx, const up_packet_t *packet);
/* Replaces the observer (NULL: none; then nothing is spent on it). */
void upstream_set_packet_observer(upstream_t *up, up_packet_fn fn, void *ctx);

/* Requests not yet completed, in the whole upstream. */
size_t upstream_inflight(const upstream_t *up);

#endif
