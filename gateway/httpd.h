/*
 * httpd: one libmicrohttpd daemon driven by a libuv loop, in the loop's
 * thread (../shared/PITFALLS.md, "Running libmicrohttpd inside the libuv
 * loop"). MHD runs with its own epoll set and no thread; libuv watches that
 * epoll fd, and after every MHD_run the wake-up is re-armed from
 * MHD_get_timeout: a timer for a positive timeout, an idle handle for 0 (a
 * 0 ms timer would starve libuv 1.44). Resuming a connection does not wake
 * MHD in this mode, so httpd_resume starts that idle handle too: MHD runs
 * once in the next loop iteration, however many connections were resumed,
 * and the loop does not sleep before. (A prepare handle would not do: one
 * started from another prepare callback waits for the next wake-up.)
 *
 * A request waiting for its reply is a suspended MHD connection: no thread,
 * no timer of MHD's, no CPU.
 *
 * Every connection is also watched for the client hanging up (a uv_poll
 * for UV_DISCONNECT, from accept to close). MHD alone misses a FIN that
 * arrives together with the request: after a short read it assumes its
 * edge-triggered socket is drained and never reads the EOF, so the
 * connection would linger until the idle timeout. On a hang-up, a
 * connection with a hang-up watch (httpd_watch_hangup: a suspended request)
 * is handed to on_hangup; any other is given a 1 s MHD timeout so that MHD
 * closes it.
 *
 * Ownership: the caller owns the httpd_t from httpd_start until the close
 * callback of httpd_close has run. The access and completion callbacks get
 * the handler context given in the options.
 */
#ifndef PG_GATEWAY_HTTPD_H
#define PG_GATEWAY_HTTPD_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/hostport.h"
#include "gateway/errors.h"

/*
 * Limits against slow or greedy clients (docs/OPERATIONS.md, "Resilience"):
 * - the request line and headers of a request must fit in the connection's
 *   memory pool (MHD answers 414 or 431 beyond it);
 * - every request must have its head in within HTTPD_HEADERS_TIMEOUT_MS:
 *   a new connection's first request from the accept, a keep-alive
 *   connection's next request from its first byte (seen by a readable
 *   watch armed once the connection has been quiet for
 *   HTTPD_IDLE_WATCH_MS, so at most that plus the sweep's second late);
 *   bytes trickled in do not extend it;
 * - every request must have its body in within HTTPD_BODY_TIMEOUT_MS of
 *   its head;
 *   past either the connection is shut down (no answer: the client was
 *   not sending one);
 * - between requests, idle_timeout_s (MHD's inactivity timeout).
 */
#define HTTPD_HEADERS_TIMEOUT_MS 10000
#define HTTPD_BODY_TIMEOUT_MS 60000
#define HTTPD_IDLE_WATCH_MS 1000
#define HTTPD_MEMORY_PER_CONNECTION (16 * 1024)

typedef struct httpd httpd_t;

typedef struct httpd_options {
    const hostport *listen;
    unsigned max_connections;
    unsigned idle_timeout_s;                  /* 0: never */
    MHD_AccessHandlerCallback on_request;     /* see microhttpd.h */
    MHD_RequestCompletedCallback on_completed;
    void *handler_ctx;
    void (*on_mhd_error)(void *ctx, const char *text); /* MHD's own messages */
    /* The client of a watched connection hung up (httpd_watch_hangup). */
    void (*on_hangup)(void *ctx, void *owner);
    /* libmicrohttpd refused a request head itself (a Content-Length that is
     * not a number, or too large): the handler is not called for it, and
     * `wire` is to receive the whole HTTP/1.1 response (status line,
     * headers with Connection: close, body) that is sent instead before
     * the connection is closed. NULL: MHD's own answer goes out (with its
     * head written twice by 0.9.75). */
    void (*on_refused)(void *ctx, gw_error_t kind, const char *message, buf_t *wire);
    /* Open connections are counted here too (NULL: not), for /metrics. */
    _Atomic uint64_t *connections;
    /* Bind with SO_REUSEPORT, so that several workers share the address. */
    int reuse_port;
} httpd_options_t;

/*
 * Binds and starts serving. Returns the server, or NULL with the reason in
 * err (e.g. "127.0.0.1:8080: Address already in use").
 */
httpd_t *httpd_start(uv_loop_t *loop, const httpd_options_t *opts, char *err, size_t errlen);

/* Resumes a suspended connection; MHD runs again before the loop sleeps. */
void httpd_resume(httpd_t *h, struct MHD_Connection *connection);

/* Watches the connection for its client hanging up: on_hangup(ctx, owner)
 * if it goes (once); owner NULL stops watching. For suspended connections,
 * which MHD itself does not watch. */
void httpd_watch_hangup(struct MHD_Connection *connection, void *owner);

/* Open client connections (0 for NULL). */
unsigned httpd_connection_count(httpd_t *h);

/*
 * Stops the daemon (every connection must have been resumed and finished:
 * MHD aborts on suspended ones) and closes the libuv handles; done(ctx) runs
 * when the memory is freed.
 */
void httpd_close(httpd_t *h, void (*done)(void *ctx), void *ctx);

#endif
