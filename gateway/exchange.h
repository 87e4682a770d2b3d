/*
 * exchange: one HTTP request's life inside libmicrohttpd, as one explicit
 * state machine. It knows when MHD holds the connection suspended, when a
 * response can be queued, how a streamed body is handed out and how a
 * request ends; what the request *means* (routing, the service, the reply)
 * is the handler's (ex_handler_t: proxy.c in the gateway, a fake in
 * tests/unit/test_exchange.c), and MHD itself is reached only through
 * ex_http_t (ex_http_mhd; a fake HTTP layer in the test).
 *
 * States (ex_state_t) and the only transitions allowed; ex_enter() aborts
 * on any other, so impossible combinations cannot exist:
 *
 *                            MHD's first call
 *      early answer, no body        |
 *      (404, 401 to a GET)          v       /status, several workers
 *   EARLY <-------------------- HEAD -------------------> GATHER ------.
 *   |  early answer with a body     |                     (suspended)   |
 *   |  (413, 401 to a POST)         |                                   |
 *   |<----------------------------- | read the body                     |
 *   |                               v                                   |
 *   |<------ answer (400, 413) ---- BODY ---- sent, waiting ----.       |
 *   |                               |                           v       |
 *   |                               |                       UPSTREAM    |
 *   |                               |                      (suspended)  |
 *   |                               |          reply, failure, |    |   |
 *   |                               |          drain           v    |   |
 *   |                               |         ANSWER <--------------+---'
 *   |        MHD calls: queue it    |        (resumed)         |    |
 *   |<------------------------------+--------------------------'    | written
 *   v                               | stream written at once        | later
 * SENDING                           | (head queued)                 v
 *                                   |                  .------> STREAM_WAKE --.
 *                                   v                  |        (resumed)     |
 *                              STREAM_FLOW <-----------+--- MHD calls --'     |
 *                               |       |              |                      |
 *                               |       | nothing      | value,               |
 *                               |       | to send      | keep-alive           |
 *                               |       v              |                      |
 *                               |   STREAM_IDLE -------'                      |
 *                               |   (suspended)                               |
 *                end, error,    |       | end, error, drain      end, error,  |
 *                drain          |       v                        drain        |
 *                               |   STREAM_CLOSE <----------------------------'
 *                               |   (resumed)
 *                               v       |
 *                          STREAM_LAST <'  MHD calls; then the rest of the
 *                                          bytes and the terminating chunk
 *
 *   EARLY --MHD's final call: queue it--> SENDING
 *   UPSTREAM, GATHER, STREAM_IDLE --client hung up--> GONE (resumed; MHD
 *   then ends the connection)
 *   every state but the suspended ones --MHD completed the request--> DONE
 *   DONE --reused from the pool--> HEAD
 *
 * Keep-alive after the gateway's own answers: libmicrohttpd 0.9.75 closes
 * the connection after any response queued at its first call of the
 * access handler (it will not read the body then), but keeps it after one
 * queued once the request is whole. So an answer decided from the head
 * alone waits in EARLY for MHD's final call, which follows at once in the
 * same MHD_run, when the request has no body (ex_http_t.has_body) and the
 * answer does not ask for Connection: close; the connection then stays
 * open. With a body it is queued at once, the body is never read, and the
 * connection closes after the answer (a 413 for a declared length, a 401
 * or 404 to a POST). A refused ambiguous head and the drain's 503 carry
 * Connection: close and always close.
 *
 * What the state alone decides (entering a state does it, nowhere else):
 * - suspended (UPSTREAM, GATHER, STREAM_IDLE): entering suspends the
 *   connection and arms httpd's hang-up watch; leaving stops the watch and
 *   resumes it;
 * - held (suspended, or resumed and not yet seen again by MHD: ANSWER,
 *   STREAM_WAKE, STREAM_CLOSE, GONE): MHD must not be stopped while any
 *   connection is held (ex_pool_held);
 * - in flight (UPSTREAM, GATHER and the open streams STREAM_WAKE, _FLOW,
 *   _IDLE): on the pool's list that a drain walks; all but GATHER count
 *   as requests with a service (ex_pool_upstream, for max_inflight);
 * - an open SSE stream has its keep-alive timer (a comment after 15 s of
 *   silence); leaving the open states stops it.
 *
 * Ownership: the pool owns every exchange (an object of the handler's
 * size whose first member is the exchange_t) from MHD's first call until
 * MHD completes the request, then keeps it for reuse (a few KiB of buffers
 * with it) or frees it. The handler owns what it adds (its part of the
 * object); strings given to ex_header stay the caller's and must live until
 * the request completes. One loop thread.
 */
#ifndef PG_GATEWAY_EXCHANGE_H
#define PG_GATEWAY_EXCHANGE_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/list.h"
#include "core/timers.h"
#include "gateway/errors.h"

typedef enum ex_state {
    EX_HEAD,         /* MHD's first call: the head is in, being decided */
    EX_EARLY,        /* answered from the head, no body: queued at MHD's
                        final call so that the connection can stay open */
    EX_BODY,         /* reading the body */
    EX_UPSTREAM,     /* suspended: the request is with the service */
    EX_GATHER,       /* suspended: waiting for the other workers (/status) */
    EX_ANSWER,       /* resumed: a whole response, queued at MHD's next call */
    EX_SENDING,      /* a whole response is queued; MHD sends it */
    EX_STREAM_WAKE,  /* resumed: the stream goes on at MHD's next call */
    EX_STREAM_FLOW,  /* the stream's head is queued; MHD pulls its bytes */
    EX_STREAM_IDLE,  /* suspended: nothing to send, the service still sends */
    EX_STREAM_CLOSE, /* resumed: the stream's end is buffered */
    EX_STREAM_LAST,  /* MHD pulls what is left, then ends the stream */
    EX_GONE,         /* resumed: the client hung up while it was suspended */
    EX_DONE,         /* MHD completed the request: in the pool */
    EX_STATE_COUNT
} ex_state_t;

const char *ex_state_name(ex_state_t s);

typedef struct exchange exchange_t;
typedef struct ex_pool ex_pool_t;

/* ---- the HTTP layer below ------------------------------------------------- */

typedef struct ex_header {
    const char *name;
    const char *value;
} ex_header_t;

/* Room for the gateway's own headers and an envelope's
 * (ENVELOPE_HEADERS_MAX, gateway/envelope.h). */
#define EX_HEADERS_MAX 32

/* A response to queue: a whole body, or a stream MHD pulls from `stream`
 * (exchange_stream_read with stream_ctx the exchange). */
typedef struct ex_response {
    unsigned status;
    const char *body;                 /* whole responses; borrowed until completion */
    size_t body_len;
    MHD_ContentReaderCallback stream; /* streams; NULL for a whole body */
    void *stream_ctx;
    int no_length;                    /* neither Content-Length nor chunked,
                                         and the connection closes after it
                                         (a stream's head alone, for HEAD) */
    const ex_header_t *headers;       /* borrowed for the call */
    size_t n_headers;
} ex_response_t;

/* What the machine asks of the HTTP server; `server` is the listener's. */
typedef struct ex_http {
    void (*suspend)(void *server, struct MHD_Connection *c);
    void (*resume)(void *server, struct MHD_Connection *c);
    /* Hang-up watch: exchange_on_hangup(listener, ex) when the client goes
     * (ex NULL: stop watching). */
    void (*watch_hangup)(void *server, struct MHD_Connection *c, exchange_t *ex);
    /* Queues the response (only from inside MHD's call of the access
     * handler). */
    enum MHD_Result (*queue)(void *server, struct MHD_Connection *c, const ex_response_t *r);
    /* Whether the request's head announces a body (a Transfer-Encoding, or
     * a Content-Length other than 0). */
    int (*has_body)(void *server, struct MHD_Connection *c);
} ex_http_t;

/* libmicrohttpd through httpd.h: `server` is an httpd_t. */
extern const ex_http_t ex_http_mhd;

/* One listening server's context (the handler_ctx given to httpd). */
typedef struct ex_listener {
    ex_pool_t *pool;
    void *server;    /* the ex_http_t calls' first argument */
    int admin;       /* the handler's: this listener serves the admin API */
} ex_listener_t;

/* ---- the handler above ----------------------------------------------------- */

typedef struct ex_handler {
    /* HEAD: decide: ex_read_body, an answer (ex_answer, ex_fail), or
     * ex_wait_workers. */
    void (*on_head)(void *ctx, exchange_t *ex);
    /* BODY: a piece of the body. */
    void (*on_body)(void *ctx, exchange_t *ex, const char *data, size_t n);
    /* BODY, all of it in: an answer, ex_wait_upstream, or ex_stream_open. */
    void (*on_body_end)(void *ctx, exchange_t *ex);
    /* The exchange stops waiting (client gone, drain): cancel what it waits
     * for (the request upstream, the gather) without answering it. */
    void (*on_cancel)(void *ctx, exchange_t *ex);
    /* MHD completed the request (ex_sent_status etc. are final; a status
     * of 0 means the client left before anything was queued): metrics,
     * access log. */
    void (*on_complete)(void *ctx, exchange_t *ex);
    /* The object goes back to the pool: reset the handler's part, keeping
     * buffers of at most `keep` bytes; keep 0: free everything (the object
     * itself is the pool's). */
    void (*on_recycle)(void *ctx, exchange_t *ex, size_t keep);
} ex_handler_t;

/* ---- one exchange ------------------------------------------------------------ */

struct exchange {
    /* set by the machine at MHD's first call; the handler reads them */
    struct MHD_Connection *conn;
    const char *method;          /* MHD's, valid until completion */
    const char *url;             /* raw path, still percent-encoded */
    const char *version;
    const ex_listener_t *listener;
    uint64_t started_ns;         /* uv_hrtime at MHD's first call */

    /* exchange.c's own */
    ex_state_t state;
    list_node_t inflight_link;   /* in the pool's list while in flight */
    unsigned status;             /* of the response being prepared */
    unsigned sent_status;        /* queued (0: nothing queued yet) */
    int error;                   /* gw_error_t answered or sent in-band; -1: none */
    ex_header_t headers[EX_HEADERS_MAX];
    size_t n_headers;
    buf_t body;                  /* a whole response's */
    const char *content_type;
    uint64_t bytes;              /* body bytes handed to MHD */
    enum MHD_Result queue_rc;    /* of a queue inside MHD's current call */
    config_reply_mode mode;      /* a stream's: ndjson or sse */
    int stream_head;             /* the answer is a stream's head alone */
    buf_t out;                   /* stream bytes not yet taken by MHD */
    size_t out_pos;
    size_t out_max;              /* more waiting than this: the client is too slow */
    timer_entry_t keepalive;     /* sse: a comment after 15 s of silence */
    exchange_t *next_spare;
};

/* Answers with a whole response: from HEAD it is queued before MHD's call
 * returns, or at MHD's final call for a request without a body (EARLY, see
 * "Keep-alive" above); from BODY before MHD's call returns; from UPSTREAM
 * or GATHER the connection is resumed and it is queued at MHD's next call.
 * `body` (NULL: none) is taken; content_type NULL: application/json when
 * there is a body. A 204 or 304 never sends a body, and a HEAD request gets
 * the status and headers alone (MHD keeps the Content-Length of the body). */
void ex_answer(exchange_t *ex, unsigned status, const char *content_type, buf_t *body);
/* The same with the error table's JSON body; message NULL: the table's. */
void ex_fail(exchange_t *ex, gw_error_t e, const char *message, span_t details);
/* A header for the response (X-Request-Id, Allow, Connection...): name
 * and value are borrowed until the request completes. Call before the
 * answer or the stream's opening. Beyond EX_HEADERS_MAX: ignored. Several
 * Vary headers go out as one line, their values joined with ", ". */
void ex_header(exchange_t *ex, const char *name, const char *value);

/* HEAD -> BODY. */
void ex_read_body(exchange_t *ex);
/* HEAD or BODY -> UPSTREAM: the request is with the service; the
 * connection is suspended until an answer or the stream's opening. */
void ex_wait_upstream(exchange_t *ex);
/* HEAD or BODY -> GATHER: the same while other workers are asked. */
void ex_wait_workers(exchange_t *ex);

/*
 * The stream's head (status, Content-Type for `mode`, no-cache headers)
 * goes out now: from BODY it is queued at once (STREAM_FLOW), from
 * UPSTREAM at MHD's next call (STREAM_WAKE). An SSE stream starts with
 * ": ok" and gets ": keepalive" after 15 s of silence. More than
 * `max_buffered` bytes not yet taken by the client fail the stream.
 */
void ex_stream_open(exchange_t *ex, unsigned status, config_reply_mode mode, size_t max_buffered);
/* A HEAD request on a stream route (from BODY): the stream's status and
 * headers alone, at once. A stream has no length, and libmicrohttpd
 * 0.9.75 follows a chunked answer to HEAD with a stray terminating chunk,
 * so the head goes without Content-Length or Transfer-Encoding, and the
 * connection closes after it. */
void ex_stream_head(exchange_t *ex, unsigned status, config_reply_mode mode);
/* One value of an open stream. 0; or -1 when the client reads too slowly:
 * the stream was ended with its overloaded error and the caller must stop
 * (cancel the request upstream). */
int ex_stream_value(exchange_t *ex, span_t value);
/* The stream is complete (SSE: its end event): the rest goes out, then
 * the terminating chunk. */
void ex_stream_end(exchange_t *ex);
/* The stream fails: its error line or event, then the terminating chunk. */
void ex_stream_fail(exchange_t *ex, gw_error_t e, const char *message, span_t details);

/* What was sent: the status queued (0: none), the error code answered or
 * sent in-band (NULL: none), body bytes handed to MHD. */
static inline unsigned ex_sent_status(const exchange_t *ex) { return ex->sent_status; }
static inline uint64_t ex_bytes(const exchange_t *ex) { return ex->bytes; }
const char *ex_error_code(const exchange_t *ex);

/* ---- libmicrohttpd's callbacks (cls: the ex_listener_t) ---------------------- */

enum MHD_Result exchange_on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                    const char *method, const char *version, const char *upload_data,
                                    size_t *upload_data_size, void **con_cls);
void exchange_on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                           enum MHD_RequestTerminationCode toe);
/* httpd's hang-up watch: the client of a suspended exchange went away. */
void exchange_on_hangup(void *cls, void *owner);
/* The content reader of a stream (cls: the exchange). */
ssize_t exchange_stream_read(void *cls, uint64_t pos, char *buf, size_t max);

/* ---- the pool ------------------------------------------------------------------ */

/* A pool for objects of `object_size` bytes (>= sizeof(exchange_t), the
 * exchange first), on `loop` (the keep-alive timers). NULL when out of
 * memory. */
ex_pool_t *ex_pool_new(uv_loop_t *loop, const ex_http_t *http, const ex_handler_t *handler, void *handler_ctx,
                       size_t object_size);
/* The keep-alive interval of SSE streams (default STREAM_KEEPALIVE_MS,
 * 15 s; tests shorten it). */
void ex_pool_set_keepalive_ms(ex_pool_t *p, uint64_t ms);
/* Frees the pool once no exchange is alive (the HTTP servers are closed);
 * its timer handle closes with the loop's next turn. */
void ex_pool_close(ex_pool_t *p);

/* The handler_ctx given to ex_pool_new. */
void *ex_pool_handler_ctx(const ex_pool_t *p);
size_t ex_pool_alive(const ex_pool_t *p);
size_t ex_pool_in_state(const ex_pool_t *p, ex_state_t s);
/* Connections MHD holds suspended or has yet to see resumed. */
size_t ex_pool_held(const ex_pool_t *p);
/* Requests with a service (UPSTREAM and the open streams). */
size_t ex_pool_upstream(const ex_pool_t *p);
/* Responses MHD is still writing (SENDING, STREAM_LAST). */
size_t ex_pool_sending(const ex_pool_t *p);

/* The end of shutdown_grace_ms: every exchange in flight stops (the
 * handler's on_cancel) and ends: a waiting one with 503 draining and
 * Connection: close, an open stream with its draining error and its
 * terminating chunk. */
void ex_pool_drain(ex_pool_t *p);

#endif
