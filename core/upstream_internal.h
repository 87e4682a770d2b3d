/*
 * The structures behind upstream.h, shared by core/upstream.c (services,
 * names, balancing, requests), core/endpoint.c (endpoints and their pools)
 * and core/conn.c (connections and sockets). Nothing outside core/
 * includes this file.
 */
#ifndef PG_CORE_UPSTREAM_INTERNAL_H
#define PG_CORE_UPSTREAM_INTERNAL_H

#include "core/frame.h"
#include "core/idmap.h"
#include "core/list.h"
#include "core/recycle.h"
#include "core/resolver.h"
#include "core/timers.h"
#include "core/upstream.h"

typedef struct up_target up_target_t;
typedef struct up_endpoint up_endpoint_t;
typedef struct up_conn up_conn_t;
typedef struct up_sock up_sock_t;

/*
 * A request's phase; every change goes through req_set_phase(), which
 * checks it:
 *
 *   WAITING ---written---> WRITTEN ---reply, error, timeout---> FINISHING
 *      ^   \                  |  \                                  |
 *      |    \--------------------+--(outcome decided)----------> callback runs
 *      '---- retried (closed or unavailable, retries left) ---'      |
 *                                                                  DONE (freed)
 *   any phase --up_cancel--> CANCELLED (freed; from inside its own
 *                            callback: freed when the callback returns)
 */
typedef enum req_phase {
    REQ_WAITING,   /* in svc->waiting: no connection yet */
    REQ_WRITTEN,   /* in conn->pending (sends) or conn->emits (events) */
    REQ_FINISHING, /* outcome decided: in up->finished, or its callback runs */
    REQ_DONE,      /* its callback returned: back to the spares */
    REQ_CANCELLED, /* up_cancel: no callback any more */
} req_phase_t;

struct up_request {
    list_node_t link;
    timer_entry_t timer;
    up_service_t *svc;
    up_conn_t *conn;        /* while REQ_WRITTEN */
    uint64_t id;
    req_phase_t phase;
    up_kind_t kind;
    uint32_t timeout_ms;
    unsigned retries_left;
    up_endpoint_t *avoid;   /* a retry goes elsewhere when it can (compared
                               only, never followed: it may be gone) */
    uint64_t wait_until;    /* loop ms: end of the wait for a connection */
    uint64_t write_end;     /* events: the connection's byte count that
                               completes this event once written */
    buf_t frame;            /* the encoded packet while REQ_WAITING, and
                               kept while it may be sent again */
    up_outcome_t outcome;   /* while REQ_FINISHING */
    const char *detail;
    char address[UP_EJECT_ADDRESS_SIZE]; /* where it was last written */
    /* fanout: a parent event waits for a child event per endpoint */
    bool fanout;            /* a parent: written as one child per endpoint */
    up_request_t *parent;
    size_t children;        /* parent: children not yet done */
    size_t delivered;       /* parent: children written; others: 0 or 1 */
    up_outcome_t child_failure; /* parent: how an undelivered child ended */
    up_callbacks_t cb;
    void *ctx;
    up_request_t *next_spare; /* in up->spare once finished */
};

/*
 * One connection attempt's socket and buffers. A connection gets a new sock
 * per attempt and lets go of the old one (sock->conn = NULL) when it goes
 * down, so libuv's asynchronous close never blocks a reconnect; the sock
 * frees itself once every libuv callback on it has run.
 *
 *   CONNECTING --TCP up--> HANDSHAKING (TLS) --done--> OPEN
 *        \                      |                        |
 *         '------------------ closing (uv_close) --------'--> CLOSED (freed)
 */
typedef enum sock_phase {
    SOCK_CONNECTING,  /* the TCP connect is under way */
    SOCK_HANDSHAKING, /* TCP is up, the TLS handshake is under way */
    SOCK_OPEN,        /* bytes flow (over TLS, the handshake is done) */
    SOCK_CLOSING,     /* uv_close was asked; waiting for its callback */
    SOCK_CLOSED,      /* the handle is closed: free once nothing writes */
} sock_phase_t;

struct up_sock {
    up_conn_t *conn;        /* NULL once orphaned */
    upstream_t *up;
    sock_phase_t phase;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    int writing;            /* write_req is in flight (its buffer must live) */
    frame_decoder_t in;
    uint64_t bytes_read;    /* raw bytes from the socket */
    buf_t out;              /* packets queued during this loop iteration */
    buf_t inflight_out;     /* bytes handed to uv_write */
    uint64_t bytes_queued;  /* total appended to out */
    uint64_t bytes_written; /* total the kernel took (plaintext counted) */
    uint64_t inflight_done; /* bytes_written once inflight_out is written */
    /* TLS services only */
    tls_conn_t *tls;
    buf_t wire;             /* ciphertext waiting for the socket */
    uint64_t plain_encrypted; /* plaintext total handed to TLS */
    list_node_t flush_link; /* in up->flush while out has bytes to write */
};

struct up_conn {
    up_conn_state_t state;
    up_endpoint_t *endpoint;
    list_node_t link;            /* in endpoint->conns */
    up_sock_t *sock;             /* non-NULL while CONNECTING or CONNECTED */
    list_node_t pending;         /* sends written, awaiting replies */
    list_node_t emits;           /* events queued, awaiting the write */
    timer_entry_t connect_timer;
    timer_entry_t reconnect_timer;
    timer_entry_t tls_grace_timer; /* TLS 1.3: waiting for the server's verdict */
    timer_entry_t frame_timer;   /* a frame is incomplete (incomplete_frame_timeout_ms) */
    timer_entry_t age_timer;     /* max_connection_age_ms */
    uint64_t frame_at;           /* the stream offset of that frame */
    bool retiring;               /* past its age: no new requests; closes
                                    once its requests are done */
    bool foreign_logged;         /* a non-Nest reply was logged already */
    unsigned failures;           /* consecutive, for the backoff */
    uint64_t connected_at;       /* loop ms */
    uint64_t next_attempt_wall;  /* ms since the epoch; 0: none armed */
    /* for /status */
    uint64_t inflight;
    uint64_t requests;
    uint64_t errors;
    uint64_t reconnects;
    uint64_t connected_since_wall; /* ms since the epoch; 0: not connected */
    uint64_t last_error_at_wall;
    char last_error[160];
};

/* One configured "host:port" of a service. */
struct up_target {
    up_service_t *svc;
    char *host;             /* without brackets */
    uint16_t port;
    bool is_name;           /* a DNS name (else an IP literal) */
    resolver_query_t *query; /* a lookup under way */
    timer_entry_t resolve_timer;
    uint64_t last_lookup;   /* loop ms a lookup last started */
    bool lookup_wanted;     /* a connection failed while one was under way */
    resolver_addr_t *addrs; /* the last good set, sorted (resolver's order) */
    size_t naddrs;
    bool resolved;          /* a good answer came at least once */
    char resolve_error[200]; /* the last lookup's failure, "" when it went well */
};

struct up_service {
    upstream_t *up;
    up_service_opts_t opts; /* strings owned (copied); opts.tls is NULL */
    tls_ctx_t *tls;         /* NULL: plain TCP */
    char *servername;       /* TLS: the name verified, NULL: endpoint host */
    up_target_t *targets;
    size_t n_targets;
    up_endpoint_t **eps;    /* every endpoint, draining ones included */
    size_t n_eps, cap_eps;
    up_endpoint_t **pick_eps; /* pick_conn's scratch: cap_eps entries each */
    up_conn_t **pick_conns;
    int active;             /* eager, or lazy after its first request */
    int removing;           /* up_service_remove is under way */
    list_node_t waiting;    /* requests with no connection yet */
    timer_entry_t retry_timer;
    unsigned next_pick;     /* round_robin's turn */
    uint64_t resolved_at_wall;
    up_service_stats_t own_stats;
    up_service_stats_t *stats; /* &own_stats, or the caller's */
};

struct upstream {
    uv_loop_t *loop;
    timers_t timers;
    uv_idle_t pending;      /* active while writes or completions wait */
    idmap_t requests;       /* sends written, by id */
    uint64_t next_id;
    uint64_t rng;           /* xorshift state: jitter, balancing */
    list_node_t flush;      /* socks with bytes to write */
    list_node_t finished;   /* requests whose callback is due */
    up_service_t **services;
    size_t n_services;
    size_t inflight;
    up_request_t *in_callback; /* the request whose callback is running */
    size_t open_handles;    /* own handles and socks not yet closed */
    char *tls_read_buf;     /* ciphertext is read here, then decrypted into
                               the frame decoder; one per upstream since
                               libuv reads one socket at a time */
    resolver_t *resolver;   /* made when a name is first resolved */
    char **dns_servers;     /* upstream_set_dns_servers, NULL: the system's */
    size_t n_dns_servers;
    up_event_fn on_event;
    void *event_ctx;
    up_packet_fn on_packet; /* debug observer, NULL: none */
    void *packet_ctx;
    int closing;
    int sweep_due;          /* an endpoint has work for the idle handler */
    up_request_t *spare;    /* finished requests kept for reuse; at most
                               UP_SPARE_REQUESTS */
    size_t n_spare;
};

/* Enough for the requests of a busy moment; past it they are freed. */
#define UP_SPARE_REQUESTS (PG_RECYCLE ? 128 : 0)
/* A spare keeps its frame buffer up to this capacity. */
#define UP_SPARE_FRAME_BYTES 4096

/* ---- conn.c ---------------------------------------------------------------- */

/* A new DISCONNECTED connection of the endpoint, at the end of its list.
 * NULL when out of memory. */
up_conn_t *conn_new(up_endpoint_t *ep);
/* DISCONNECTED -> CONNECTING. 0, or -ENOMEM. */
int conn_start(up_conn_t *conn);
/* Leaves CONNECTING or CONNECTED: fails (or retries) what was written on it
 * with `outcome`, lets go of the socket, and (unless the upstream is
 * closing or the connection retires) arms the reconnect backoff of an
 * active pool. */
void conn_down(up_conn_t *conn, up_outcome_t outcome, const char *detail);
/* Unlinks and frees a DISCONNECTED connection (its timers stopped). */
void conn_free(up_conn_t *conn);
/* Appends a request's packet and queues the flush. 0, or -ENOMEM. */
int conn_write_request(up_conn_t *conn, up_request_t *req, span_t pattern, span_t data, span_t metadata);
/* Writes what every sock queued during this loop iteration. */
void conn_flush_all(upstream_t *up);
void conn_set_error(up_conn_t *conn, const char *detail);
/* Bytes written to the connection's socket queue but not yet taken by the
 * kernel. */
size_t conn_unwritten(const up_conn_t *conn);
/* Whether the connection takes a new request now. */
int conn_usable(const up_conn_t *conn);

/* ---- endpoint.c (see endpoint.h) ------------------------------------------- */
#include "core/endpoint.h"

/* ---- upstream.c, called by conn.c and endpoint.c ---------------------------- */

/* A connection of the service came up: waiting requests may go. */
void svc_conn_up(up_service_t *svc);
/* An attempt failed (detail: why): requests whose wait is over fail. */
void svc_conn_failed(up_service_t *svc, const char *detail);
/* A connection to an address of the target failed: resolve it again soon. */
void svc_target_failed(up_target_t *target);
void svc_reply(up_conn_t *conn, span_t message);
/* Decides a request's outcome and runs its callback now. */
void req_finish(up_request_t *req, up_outcome_t outcome, span_t err, const char *detail);
/* The connection it was written on is gone: sends it again (retries left,
 * outcome closed) or finishes it. */
void req_connection_lost(up_request_t *req, up_outcome_t outcome, const char *detail);
uint64_t up_wall_ms(void);
uint64_t up_random(upstream_t *up);
void up_report(up_conn_t *conn, up_event_type_t type, const char *detail);
void up_report_service(up_service_t *svc, const up_event_t *ev);
/* Hands a packet's JSON text to the packet observer, if there is one. */
void up_observe(up_conn_t *conn, up_packet_direction_t direction, span_t json);
/* Makes the next loop iteration deliver finished requests and flush writes. */
void upstream_schedule(upstream_t *up);
/* A handle or sock of the upstream finished closing. */
void upstream_handle_closed(upstream_t *up);

#endif
