/*
 * The structures behind upstream.h, shared by core/upstream.c (services and
 * requests) and core/conn.c (connections). Nothing outside core/ includes
 * this file.
 */
#ifndef PG_CORE_UPSTREAM_INTERNAL_H
#define PG_CORE_UPSTREAM_INTERNAL_H

#include "core/frame.h"
#include "core/idmap.h"
#include "core/list.h"
#include "core/recycle.h"
#include "core/timers.h"
#include "core/upstream.h"

typedef struct up_endpoint up_endpoint_t;
typedef struct up_conn up_conn_t;
typedef struct up_sock up_sock_t;

typedef enum req_phase {
    REQ_WAITING,   /* in svc->waiting: no connection yet */
    REQ_WRITTEN,   /* in conn->pending (sends) or conn->emits (events) */
    REQ_FINISHING, /* in up->finished: outcome decided, callback not yet run */
} req_phase_t;

struct up_request {
    list_node_t link;
    timer_entry_t timer;
    up_service_t *svc;
    up_conn_t *conn;        /* while REQ_WRITTEN */
    const char *written_to; /* the address of the endpoint it was last
                               written on (up_request_address) */
    uint64_t id;
    req_phase_t phase;
    int is_event;
    int per_value_timeout;  /* up_stream: the timeout restarts per value */
    uint32_t timeout_ms;
    int cancelled;          /* cancelled from inside its own callback */
    uint64_t wait_until;    /* loop ms: end of the wait for a connection */
    uint64_t write_end;     /* events: the connection's byte count that
                               completes this event once written */
    buf_t frame;            /* the encoded packet while REQ_WAITING */
    up_outcome_t outcome;   /* while REQ_FINISHING */
    const char *detail;
    up_callbacks_t cb;
    void *ctx;
    up_request_t *next_spare; /* in up->spare once finished */
};

/*
 * One connection attempt's socket and buffers. A connection gets a new sock
 * per attempt and lets go of the old one (sock->conn = NULL) when it goes
 * down, so libuv's asynchronous close never blocks a reconnect; the sock
 * frees itself once every libuv callback on it has run.
 */
struct up_sock {
    up_conn_t *conn;        /* NULL once orphaned */
    upstream_t *up;
    uv_getaddrinfo_t resolver;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    int resolving;          /* the resolver callback has yet to run */
    int tcp_open;           /* tcp was initialized and not yet closed */
    int writing;            /* write_req is in flight */
    struct addrinfo *addrs; /* resolved addresses (owned), NULL for literals */
    struct addrinfo *next_addr; /* the one to try if this connect fails */
    int tcp_connected;      /* the TCP connect succeeded */
    int got_bytes;          /* something was read on this socket */
    frame_decoder_t in;
    buf_t out;              /* packets queued during this loop iteration */
    buf_t inflight_out;     /* bytes handed to uv_write */
    uint64_t bytes_queued;  /* total appended to out */
    uint64_t bytes_written; /* total the kernel took (plaintext counted) */
    uint64_t inflight_done; /* bytes_written once inflight_out is written */
    /* TLS services only */
    tls_conn_t *tls;
    int tls_handshaken;
    buf_t wire;             /* ciphertext waiting for the socket */
    uint64_t plain_encrypted; /* plaintext total handed to TLS */
    list_node_t flush_link; /* in up->flush while out has bytes to write */
};

struct up_conn {
    up_conn_state_t state;
    up_endpoint_t *endpoint;
    up_sock_t *sock;             /* non-NULL while CONNECTING or CONNECTED */
    list_node_t pending;         /* sends written, awaiting replies */
    list_node_t emits;           /* events queued, awaiting the write */
    timer_entry_t connect_timer;
    timer_entry_t reconnect_timer;
    timer_entry_t tls_grace_timer; /* TLS 1.3: waiting for the server's verdict */
    timer_entry_t frame_timer;   /* a frame is incomplete (incomplete_frame_timeout_ms) */
    uint64_t frame_at;           /* the stream offset of that frame */
    unsigned failures;           /* consecutive, for the backoff */
    uint64_t connected_at;       /* loop ms */
    /* for /status */
    uint64_t inflight;
    uint64_t requests;
    uint64_t errors;
    uint64_t reconnects;
    uint64_t connected_since_wall; /* ms since the epoch; 0: not connected */
    uint64_t last_error_at_wall;
    char last_error[160];
};

struct up_endpoint {
    up_service_t *svc;
    char *address;          /* "host:port" as configured */
    char *host;             /* without brackets */
    char port[8];
    up_conn_t *conns;       /* [svc->opts.pool_size] */
    int conns_ready;        /* conn_init ran on all of them */
    tls_session_t *tls_session; /* the newest, offered on reconnect */
    /* outlier ejection (defaults.h) */
    unsigned connect_failures;  /* in a row, any of its connections */
    unsigned protocol_errors;   /* in a row, since the last good reply */
    unsigned ejections;         /* in a row; reset by a stable connection */
    uint64_t ejected_until;     /* loop ms; 0: not ejected */
    uint64_t ejected_until_wall;
    timer_entry_t eject_timer;
};

struct up_service {
    upstream_t *up;
    up_service_opts_t opts; /* strings owned (copied); opts.tls is NULL */
    tls_ctx_t *tls;         /* NULL: plain TCP */
    char *servername;       /* TLS: the name verified, NULL: endpoint host */
    up_endpoint_t *endpoints;
    int active;             /* eager, or lazy after its first request */
    list_node_t waiting;    /* requests with no connection yet */
    timer_entry_t retry_timer;
    unsigned next_pick;     /* rotates the start of the least-inflight scan */
    up_service_stats_t own_stats;
    up_service_stats_t *stats; /* &own_stats, or the caller's */
};

struct upstream {
    uv_loop_t *loop;
    timers_t timers;
    uv_idle_t pending;      /* active while writes or completions wait */
    idmap_t requests;       /* sends written, by id */
    uint64_t next_id;
    uint64_t rng;           /* xorshift state, for backoff jitter */
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
    up_event_fn on_event;
    void *event_ctx;
    up_packet_fn on_packet; /* debug observer, NULL: none */
    void *packet_ctx;
    int closing;
    up_request_t *spare;    /* finished requests kept for reuse; at most
                               UP_SPARE_REQUESTS */
    size_t n_spare;
};

/* Enough for the requests of a busy moment; past it they are freed. */
#define UP_SPARE_REQUESTS (PG_RECYCLE ? 128 : 0)
/* A spare keeps its frame buffer up to this capacity. */
#define UP_SPARE_FRAME_BYTES 4096

/* conn.c */
void conn_init(up_conn_t *conn, up_endpoint_t *endpoint);
/* DISCONNECTED -> CONNECTING. 0, or -ENOMEM. */
int conn_start(up_conn_t *conn);
/* Leaves CONNECTING or CONNECTED: fails what was written on it with
 * `outcome`, lets go of the socket, and (unless the upstream is closing)
 * arms the reconnect backoff of an active pool. */
void conn_down(up_conn_t *conn, up_outcome_t outcome, const char *detail);
/* Appends a request's packet and queues the flush. 0, or -ENOMEM. */
int conn_write_request(up_conn_t *conn, up_request_t *req, span_t pattern, span_t data, span_t metadata);
/* Writes what every sock queued during this loop iteration. */
void conn_flush_all(upstream_t *up);
void conn_set_error(up_conn_t *conn, const char *detail);
/* Bytes written to the connection's socket queue but not yet taken by the
 * kernel. */
size_t conn_unwritten(const up_conn_t *conn);

/* upstream.c, called by conn.c */
void svc_conn_up(up_service_t *svc);
void svc_conn_failed(up_service_t *svc, const char *detail);
void svc_reply(up_conn_t *conn, span_t message);
/* Decides a request's outcome and runs its callback now. */
void req_finish(up_request_t *req, up_outcome_t outcome, span_t err, const char *detail);
uint64_t up_wall_ms(void);
void up_report(up_conn_t *conn, up_event_type_t type, const char *detail);
/* Hands a packet's JSON text to the packet observer, if there is one. */
void up_observe(up_conn_t *conn, up_packet_direction_t direction, span_t json);
/* Outlier ejection bookkeeping, called by conn.c. */
void ep_connect_failed(up_endpoint_t *ep);
void ep_connected(up_endpoint_t *ep);
void ep_protocol_error(up_endpoint_t *ep);
int ep_ejected(const up_endpoint_t *ep);
/* Makes the next loop iteration deliver finished requests and flush writes. */
void upstream_schedule(upstream_t *up);
/* A handle or sock of the upstream finished closing. */
void upstream_handle_closed(upstream_t *up);

#endif
