/*
 * upstream: the client side of Nest's TCP transport for one worker: pools of
 * connections per service, requests multiplexed on them by id, timeouts,
 * reconnects. It knows nothing of HTTP; gateway/ and the CLI build on it.
 *
 * Threading: everything here belongs to one libuv loop thread. No locks, no
 * blocking calls (names are resolved with uv_getaddrinfo). Several workers
 * each have their own upstream_t; there is no global mutable state.
 *
 * Ownership tree (everything is owned by the node above it):
 *
 *   upstream_t                      one per worker
 *    |- timers_t                    every deadline, one uv timer
 *    |- idmap: id -> up_request_t   requests written and awaiting replies
 *    |- uv_idle_t                   flushes coalesced writes and delivers
 *    |                              completions once per loop iteration,
 *    |                              active only while there are some
 *    '- up_service_t[]              options copied at creation
 *        |- waiting list            requests with no connection yet
 *        '- up_endpoint_t[]         host:port
 *            '- up_conn_t[pool_size]
 *                |- uv_tcp_t, resolver and connect requests
 *                |- tls_conn_t (TLS services; the SSL_CTX is the service's,
 *                |  the last session is the endpoint's, for resumption)
 *                |- frame_decoder_t (input), output buffers
 *                '- pending list    requests written on this connection
 *
 * A request (up_request_t) belongs to the upstream from up_send/up_emit until
 * its on_done callback returns (then it is freed), or until up_cancel.
 *
 * Connection states (enum up_conn_state; /status and metrics use the names):
 *
 *   DISCONNECTED --start--> CONNECTING --connected--> CONNECTED
 *        ^                      |                         |
 *        '------ failure, timeout, close, protocol error -'
 *
 * CONNECTING covers name resolution, the TCP connect and the TLS handshake,
 * bounded together by connect_timeout_ms. Over TLS 1.3 a server judges the
 * client certificate only after the handshake, so CONNECTING lasts until the
 * server's first record after it (a session ticket) or a 200 ms grace. Leaving CONNECTED fails every request pending on the
 * connection at once (closed, or bad_message for a protocol violation);
 * nothing written is ever sent again. An eager pool reconnects by itself
 * after 100 ms, doubling up to 5 s, plus up to 20% jitter; the delay resets
 * once a connection has stayed up 1 s. A lazy pool opens its connections on
 * the first request and from then on behaves the same.
 */
#ifndef PG_CORE_UPSTREAM_H
#define PG_CORE_UPSTREAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
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

typedef enum up_connect_mode { UP_CONNECT_EAGER, UP_CONNECT_LAZY } up_connect_mode_t;

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
    up_counter_t ejected;                       /* bit i: endpoint i (< 64) ejected */
} up_service_stats_t;

/* A service's options. Strings are copied by up_service_add. */
typedef struct up_service_opts {
    const char *name;
    const char *const *endpoints; /* "host:port" */
    size_t n_endpoints;
    unsigned pool_size;           /* connections per endpoint, >= 1 */
    up_connect_mode_t connect;
    uint32_t connect_timeout_ms;
    uint32_t timeout_ms;          /* default per-request timeout */
    uint32_t retry_attempts;
    uint32_t retry_delay_ms;
    size_t max_message_bytes;
    uint32_t incomplete_frame_timeout_ms; /* a frame still incomplete after
                                     this drops the connection */
    int metadata;                 /* send packet metadata */
    const tls_client_opts_t *tls; /* NULL: plain TCP; read by up_service_add */
    up_service_stats_t *stats;    /* where to count (borrowed, must outlive
                                     the service); NULL: the service's own */
    const char *servername;       /* TLS: the name verified and sent as SNI;
                                     NULL: each endpoint's host */
} up_service_opts_t;

/* Fills opts with SPEC.md's defaults (name and endpoints left empty). */
void up_service_opts_defaults(up_service_opts_t *opts);

typedef struct upstream upstream_t;
typedef struct up_service up_service_t;
typedef struct up_request up_request_t;


/*
 * Callbacks of one request; never called from inside up_send/up_emit.
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
 * Closes every connection, completes every request still in flight with
 * UP_CANCELLED (callbacks run), and frees everything once libuv has closed the
 * handles; the loop can then be closed clean.
 */
void upstream_close(upstream_t *up);

/* Adds a service (eager ones start connecting at once). With opts->tls its
 * TLS context is built here (files read now). NULL with a reason in err when
 * it cannot: a bad "host:port", or a TLS file, named "tls.FIELD: reason"
 * (e.g. "tls.ca: cannot read ca.pem: No such file or directory"). */
up_service_t *up_service_add(upstream_t *up, const up_service_opts_t *opts, char *err, size_t errlen);
up_service_t *up_service_find(upstream_t *up, const char *name);

/* Takes a service away (a config reload dropped or changed it, or the
 * gateway stops): requests still waiting or in flight on it fail
 * (unavailable or closed, with `why`), its connections close, and it is
 * freed. Must not be called from inside a callback of one of its own
 * requests. */
void up_service_remove(up_service_t *svc, const char *why);
const up_service_opts_t *up_service_options(const up_service_t *svc);
const up_service_stats_t *up_service_stats(const up_service_t *svc);
/* What /status shows of one connection. Strings valid until the next call
 * into the upstream. Times are ms since the epoch, 0 for never. */
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
} up_conn_info_t;

size_t up_service_endpoint_count(const up_service_t *svc);
/* "host:port" as configured, for endpoint i < up_service_endpoint_count. */
const char *up_service_endpoint_address(const up_service_t *svc, size_t i);
int up_service_uses_tls(const up_service_t *svc);
/* Until when endpoint i is ejected (ms since the epoch), 0 when it is not. */
uint64_t up_service_endpoint_ejected_until(const up_service_t *svc, size_t i);
/* Connection k < opts.pool_size of endpoint i. */
void up_service_conn_info(const up_service_t *svc, size_t i, unsigned k, up_conn_info_t *out);

/* Connections of the service in a given state. */
size_t up_service_conns_in_state(const up_service_t *svc, up_conn_state_t state);

/*
 * Sends a request. pattern, data and metadata (n == 0: none) must be valid
 * JSON texts; they are copied. timeout_ms 0 means the service's. Returns a
 * handle valid until on_done returns or up_cancel is called; NULL only when
 * out of memory.
 */
up_request_t *up_send(up_service_t *svc, span_t pattern, span_t data, span_t metadata,
                      uint32_t timeout_ms, const up_callbacks_t *cb, void *ctx);

/* Like up_send, for replies consumed value by value: timeout_ms bounds the
 * wait for the first value and then for each next one, not the whole
 * reply. */
up_request_t *up_stream(up_service_t *svc, span_t pattern, span_t data, span_t metadata,
                        uint32_t timeout_ms, const up_callbacks_t *cb, void *ctx);

/* Emits an event: on_done(UP_OK) once written to a connection. */
up_request_t *up_emit(up_service_t *svc, span_t pattern, span_t data, span_t metadata,
                      uint32_t timeout_ms, const up_callbacks_t *cb, void *ctx);

/* The caller went away: no callback is called any more, later replies for
 * the request are dropped (and counted as late), its resources are freed. */
void up_cancel(up_request_t *req);

/* The "host:port" (as configured) of the endpoint whose connection the
 * request was written on; NULL while it waits for a connection (so, read
 * right after up_send/up_stream/up_emit, it tells whether the request was
 * written at once). Readable while the handle is valid (in its callbacks
 * too); the string lives as long as the service: copy it to keep it. */
const char *up_request_address(const up_request_t *req);

/*
 * Connection events, for logs. CONNECTED once a connection may carry
 * requests (after the TLS handshake and, for TLS 1.3, the server's verdict
 * on the client); CONNECT_FAILED when an attempt ends before that;
 * DISCONNECTED when a connected one goes down. Not reported while the
 * upstream closes. All strings are valid during the call only.
 */
typedef enum up_event_type {
    UP_EV_CONNECTED,
    UP_EV_CONNECT_FAILED,
    UP_EV_DISCONNECTED,
    UP_EV_EJECTED,        /* the endpoint gets no traffic for ejected_ms */
} up_event_type_t;

typedef struct up_event {
    up_event_type_t type;
    const char *service;
    const char *endpoint;    /* "host:port" as configured */
    const char *detail;      /* why (failures), else NULL */
    const char *tls_version; /* "TLSv1.3"; NULL for plain TCP */
    int tls_resumed;         /* CONNECTED over TLS: the session was resumed */
    uint64_t ejected_ms;     /* EJECTED: for how long */
} up_event_t;

typedef void (*up_event_fn)(void *ctx, const up_event_t *event);
/* Replaces the handler (NULL: none). Called from the loop, never re-entrantly
 * from up_send and friends. */
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
