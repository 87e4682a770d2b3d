#include "gateway/httpd.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/list.h"

struct httpd {
    uv_loop_t *loop;
    struct MHD_Daemon *mhd;
    uv_poll_t poll;       /* MHD's epoll fd */
    uv_timer_t timer;     /* MHD's next timeout */
    uv_idle_t idle;       /* "run MHD again now" */
    int again;            /* run_soon was asked for since the last run */
    int open_handles;
    void (*done)(void *ctx);
    void *done_ctx;
    void (*on_mhd_error)(void *ctx, const char *text);
    void (*on_hangup)(void *ctx, void *owner);
    void (*on_refused)(void *ctx, gw_error_t kind, const char *message, buf_t *wire);
    MHD_AccessHandlerCallback on_request;
    MHD_RequestCompletedCallback on_completed;
    void *handler_ctx;
    list_node_t conns;    /* httpd_conn_t, for the deadline sweep */
    _Atomic uint64_t *connections;
    uv_timer_t sweep;     /* runs while there are connections */
};

/*
 * Where an accepted connection is, for its deadlines (see httpd.h):
 *
 *   HEAD ----headers in----> BODY ----body in----> HANDLER
 *    ^  (HTTPD_HEADERS_      (HTTPD_BODY_          (no deadline: the
 *    |   TIMEOUT_MS)          TIMEOUT_MS)           handler bounds it)
 *    |                                                  |
 *    |                   request completed              |
 *    |   IDLE <---------------------------------------- '
 *    |    |  (quiet for HTTPD_IDLE_WATCH_MS, by the sweep)
 *    |    v
 *    '- IDLE_WATCHED   (watching for the next request's first byte)
 *
 * A keep-alive connection's next request usually arrives at once and goes
 * straight from IDLE to BODY. One that does not gets a readable watch, and
 * its first byte starts the same header deadline as a new connection's
 * first request, so trickling a request head byte by byte on a keep-alive
 * connection is cut off as it is on a new one. The watch is armed only
 * after a quiet spell so that busy connections pay no system call for it.
 */
typedef enum hc_phase {
    HC_HEAD,         /* waiting for a request's head */
    HC_BODY,         /* head in, waiting for the body */
    HC_HANDLER,      /* the request is the handler's */
    HC_IDLE,         /* between requests */
    HC_IDLE_WATCHED, /* between requests, watching for a first byte */
    HC_REFUSED,      /* answered by refuse_length(), closing */
} hc_phase_t;

/* One accepted connection's hang-up watch and deadlines (MHD's
 * socket_context). */
typedef struct httpd_conn {
    uv_poll_t watch;
    list_node_t link;     /* in h->conns */
    httpd_t *h;
    struct MHD_Connection *connection;
    int fd;
    void *hangup_owner;   /* httpd_watch_hangup's; NULL: not watched */
    hc_phase_t phase;
    uint64_t deadline;    /* loop ms by which the request's head or body
                             must be in (HEAD, BODY); 0: none */
    uint64_t idle_since;  /* loop ms the last request completed (IDLE) */
} httpd_conn_t;

static void on_timer(uv_timer_t *t);
static void on_idle(uv_idle_t *i);

static void rearm(httpd_t *h)
{
    MHD_UNSIGNED_LONG_LONG timeout;
    if (h->again) { /* asked for during the run itself */
        uv_timer_stop(&h->timer);
        uv_idle_start(&h->idle, on_idle);
    } else if (MHD_get_timeout(h->mhd, &timeout) != MHD_YES) {
        uv_idle_stop(&h->idle);
        uv_timer_stop(&h->timer);
    } else if (timeout == 0) {
        uv_timer_stop(&h->timer);
        uv_idle_start(&h->idle, on_idle);
    } else {
        uv_idle_stop(&h->idle);
        uv_timer_start(&h->timer, on_timer, timeout, 0);
    }
}

static void run(httpd_t *h)
{
    h->again = 0;
    MHD_run(h->mhd);
    rearm(h);
}

/* MHD must run again before the loop sleeps (a resume, a changed timeout,
 * a closed connection): the idle handle makes the loop iterate without
 * blocking and runs it once, however many times this is called. */
static void run_soon(httpd_t *h)
{
    h->again = 1;
    uv_idle_start(&h->idle, on_idle);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    run(p->data);
}

static void on_timer(uv_timer_t *t) { run(t->data); }
static void on_idle(uv_idle_t *i) { run(i->data); }

void httpd_resume(httpd_t *h, struct MHD_Connection *connection)
{
    MHD_resume_connection(connection);
    run_soon(h);
}

static void set_phase(httpd_conn_t *hc, hc_phase_t phase, uint64_t deadline)
{
    hc->phase = phase;
    hc->deadline = deadline;
}

static void on_socket_event(uv_poll_t *p, int status, int events);

/* The client hung up: a watched connection is its owner's to end; any
 * other gets a 1 s MHD timeout so that MHD closes it. */
static void client_gone(httpd_conn_t *hc)
{
    httpd_t *h = hc->h;
    uv_poll_stop(&hc->watch); /* once is enough */
    if (hc->hangup_owner && h->on_hangup) {
        void *owner = hc->hangup_owner;
        hc->hangup_owner = NULL;
        h->on_hangup(h->handler_ctx, owner);
        return;
    }
    MHD_set_connection_option(hc->connection, MHD_CONNECTION_OPTION_TIMEOUT, 1u);
    run_soon(h); /* MHD's next timeout changed */
}

static void on_socket_event(uv_poll_t *p, int status, int events)
{
    httpd_conn_t *hc = p->data;
    if (status < 0 || (events & UV_DISCONNECT)) {
        client_gone(hc);
        return;
    }
    if (hc->phase == HC_IDLE_WATCHED) { /* the next request's first byte */
        set_phase(hc, HC_HEAD, uv_now(hc->h->loop) + HTTPD_HEADERS_TIMEOUT_MS);
        uv_poll_start(&hc->watch, UV_DISCONNECT, on_socket_event);
    }
}

static void free_conn(uv_handle_t *handle)
{
    free(handle->data);
}

/* Once a second: a connection past its head or body deadline is shut
 * down (MHD then sees the socket fail and closes it); one that has been
 * idle for HTTPD_IDLE_WATCH_MS starts watching for its next request. */
static void on_sweep(uv_timer_t *t)
{
    httpd_t *h = t->data;
    uint64_t now = uv_now(h->loop);
    int closed = 0;
    for (list_node_t *n = h->conns.next; n != &h->conns; n = n->next) {
        httpd_conn_t *hc = LIST_OWNER(n, httpd_conn_t, link);
        if (hc->deadline && now >= hc->deadline) {
            set_phase(hc, HC_HANDLER, 0); /* nothing more to time */
            shutdown(hc->fd, SHUT_RDWR);
            closed = 1;
        } else if (hc->phase == HC_IDLE && now - hc->idle_since >= HTTPD_IDLE_WATCH_MS) {
            set_phase(hc, HC_IDLE_WATCHED, 0);
            uv_poll_start(&hc->watch, UV_READABLE | UV_DISCONNECT, on_socket_event);
        }
    }
    if (closed)
        run_soon(h);
}

static httpd_conn_t *conn_of(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* Wraps the access handler to keep the deadlines: from the first call of a
 * request (head in) the body has HTTPD_BODY_TIMEOUT_MS; once the body is
 * in (a later call with no data) there is none (waiting for a service is
 * bounded by its timeout). */
static enum MHD_Result on_access(void *cls, struct MHD_Connection *connection, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    httpd_t *h = cls;
    httpd_conn_t *hc = conn_of(connection);
    if (hc) {
        if (*con_cls == NULL) {
            if (hc->phase == HC_IDLE_WATCHED) /* the watch missed the first byte */
                uv_poll_start(&hc->watch, UV_DISCONNECT, on_socket_event);
            set_phase(hc, HC_BODY, uv_now(h->loop) + HTTPD_BODY_TIMEOUT_MS);
        } else if (*upload_data_size == 0 && hc->phase == HC_BODY) {
            set_phase(hc, HC_HANDLER, 0);
        }
    }
    return h->on_request(h->handler_ctx, connection, url, method, version, upload_data, upload_data_size, con_cls);
}

static void on_request_done(void *cls, struct MHD_Connection *connection, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    httpd_t *h = cls;
    httpd_conn_t *hc = conn_of(connection);
    if (hc) { /* idle until the next request (MHD's idle timeout) */
        if (hc->phase == HC_IDLE_WATCHED)
            uv_poll_start(&hc->watch, UV_DISCONNECT, on_socket_event);
        set_phase(hc, HC_IDLE, 0);
        hc->idle_since = uv_now(h->loop);
    }
    if (h->on_completed)
        h->on_completed(h->handler_ctx, connection, con_cls, toe);
}

static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    httpd_t *h = cls;
    httpd_conn_t *hc = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (hc) { /* MHD has not closed the socket yet: stop watching it first */
            list_remove(&hc->link);
            if (h->connections)
                atomic_store_explicit(h->connections, atomic_load_explicit(h->connections, memory_order_relaxed) - 1,
                                      memory_order_relaxed);
            uv_close((uv_handle_t *)&hc->watch, free_conn);
        }
        *socket_context = NULL;
        if (list_empty(&h->conns))
            uv_timer_stop(&h->sweep);
        /* At max_connections MHD takes its listening socket out of its
         * epoll set and puts it back only at the start of its next run,
         * which its timeout does not ask for: run it again. */
        run_soon(h);
        return;
    }
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    hc = calloc(1, sizeof *hc);
    if (!hc || !info || uv_poll_init(h->loop, &hc->watch, info->connect_fd) != 0) {
        free(hc); /* unwatched: MHD's idle timeout still ends it */
        return;
    }
    hc->h = h;
    hc->connection = connection;
    hc->fd = info->connect_fd;
    set_phase(hc, HC_HEAD, uv_now(h->loop) + HTTPD_HEADERS_TIMEOUT_MS);
    hc->watch.data = hc;
    list_push_back(&h->conns, &hc->link);
    if (h->connections)
        atomic_store_explicit(h->connections, atomic_load_explicit(h->connections, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    uv_poll_start(&hc->watch, UV_DISCONNECT, on_socket_event);
    *socket_context = hc;
    if (!uv_is_active((uv_handle_t *)&h->sweep))
        uv_timer_start(&h->sweep, on_sweep, 1000, 1000);
}

void httpd_watch_hangup(struct MHD_Connection *connection, void *owner)
{
    httpd_conn_t *hc = conn_of(connection);
    if (hc)
        hc->hangup_owner = owner;
}

/*
 * libmicrohttpd 0.9.75 answers a malformed or oversized Content-Length
 * itself, and writes its answer's status line and headers twice (its
 * error path runs the reply state machine once more). It calls no handler
 * then, but it does log why, while the connection is the one whose head it
 * has just read and not handed to a handler: that connection alone has a
 * request head (REQUEST_HEADER_SIZE answers) and is in no handler phase.
 * It gets the gateway's own answer instead, written here, and is shut
 * down, so that MHD's writes fail and it closes the connection: the client
 * sees one answer.
 */
static void refuse_length(httpd_t *h, gw_error_t kind, const char *message)
{
    if (!h->on_refused)
        return;
    for (list_node_t *n = h->conns.next; n != &h->conns; n = n->next) {
        httpd_conn_t *hc = LIST_OWNER(n, httpd_conn_t, link);
        if (hc->phase == HC_BODY || hc->phase == HC_HANDLER || hc->phase == HC_REFUSED ||
            !MHD_get_connection_info(hc->connection, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE))
            continue;
        buf_t wire = BUF_INIT;
        h->on_refused(h->handler_ctx, kind, message, &wire);
        if (wire.len)
            (void)!send(hc->fd, wire.data, wire.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        buf_free(&wire);
        shutdown(hc->fd, SHUT_RDWR);
        set_phase(hc, HC_REFUSED, 0);
    }
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    httpd_t *h = cls;
    char text[256];
    vsnprintf(text, sizeof text, fmt, ap);
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = 0;
    if (strncmp(text, "Failed to parse `Content-Length'", 32) == 0)
        refuse_length(h, GW_ERR_BAD_REQUEST, "the Content-Length header is not a decimal number");
    else if (strncmp(text, "Too large value of 'Content-Length'", 35) == 0)
        refuse_length(h, GW_ERR_PAYLOAD_TOO_LARGE, "the Content-Length header is too large");
    if (h->on_mhd_error)
        h->on_mhd_error(h->handler_ctx, text);
}

/* MHD would percent-decode the path before we split it into segments; the
 * router decodes each segment itself (SPEC.md: decoded after splitting). */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

/* The listen address as a sockaddr; a host name is resolved once, at
 * start (getaddrinfo also takes the IP literals, with the port as service). */
static int listen_address(const hostport *hp, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)hp->port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
    int rc = getaddrinfo(hp->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s:%u: %s", hp->host, (unsigned)hp->port, gai_strerror(rc));
        return -1;
    }
    memset(ss, 0, sizeof *ss);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* Whether the port can be bound, for a precise error: MHD only says it failed. */
static int check_bindable(const struct sockaddr_storage *ss, char *err, size_t errlen, const hostport *hp,
                          int reuse_port)
{
    int fd = socket(ss->ss_family, SOCK_STREAM, 0), rc = 0, one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port) /* other workers may be bound already */
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (fd < 0 || bind(fd, (const struct sockaddr *)ss, len) != 0) {
        snprintf(err, errlen, "%s:%u: %s", hp->host, (unsigned)hp->port, strerror(errno));
        rc = -1;
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

static void init_handles(httpd_t *h, int epoll_fd)
{
    uv_poll_init(h->loop, &h->poll, epoll_fd);
    uv_timer_init(h->loop, &h->timer);
    uv_idle_init(h->loop, &h->idle);
    uv_timer_init(h->loop, &h->sweep);
    h->poll.data = h->timer.data = h->idle.data = h->sweep.data = h;
    h->open_handles = 4;
    uv_poll_start(&h->poll, UV_READABLE, on_poll);
}

httpd_t *httpd_start(uv_loop_t *loop, const httpd_options_t *o, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (listen_address(o->listen, &ss, err, errlen) || check_bindable(&ss, err, errlen, o->listen, o->reuse_port))
        return NULL;
    httpd_t *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->loop = loop;
    h->on_mhd_error = o->on_mhd_error;
    h->on_hangup = o->on_hangup;
    h->on_refused = o->on_refused;
    h->handler_ctx = o->handler_ctx;
    h->on_request = o->on_request;
    h->on_completed = o->on_completed;
    h->connections = o->connections;
    list_init(&h->conns);
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    /* SO_REUSEPORT only when asked: MHD's option set to 0 would also drop
     * its default SO_REUSEADDR */
    struct MHD_OptionItem reuse[] = { { MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL },
                                      { MHD_OPTION_END, 0, NULL } };
    if (!o->reuse_port)
        reuse[0] = reuse[1];
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->mhd = MHD_start_daemon(flags, o->listen->port, NULL, NULL, on_access, h,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, h, /* must come first */
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                              MHD_OPTION_ARRAY, reuse,
                              MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
                              MHD_OPTION_CONNECTION_TIMEOUT, o->idle_timeout_s,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTPD_MEMORY_PER_CONNECTION,
                              MHD_OPTION_NOTIFY_COMPLETED, on_request_done, h,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                              MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
                              MHD_OPTION_END);
    const union MHD_DaemonInfo *info = h->mhd ? MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (!info) {
        snprintf(err, errlen, "%s:%u: the HTTP server did not start", o->listen->host, (unsigned)o->listen->port);
        if (h->mhd)
            MHD_stop_daemon(h->mhd);
        free(h);
        return NULL;
    }
    init_handles(h, info->epoll_fd);
    run(h); /* arm the first timeout */
    return h;
}

static void on_handle_closed(uv_handle_t *handle)
{
    httpd_t *h = handle->data;
    if (--h->open_handles > 0)
        return;
    void (*done)(void *) = h->done;
    void *ctx = h->done_ctx;
    free(h);
    if (done)
        done(ctx);
}

void httpd_close(httpd_t *h, void (*done)(void *ctx), void *ctx)
{
    h->done = done;
    h->done_ctx = ctx;
    uv_poll_stop(&h->poll); /* before MHD closes the epoll fd it watches */
    MHD_stop_daemon(h->mhd);
    h->mhd = NULL;
    uv_close((uv_handle_t *)&h->poll, on_handle_closed);
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
    uv_close((uv_handle_t *)&h->idle, on_handle_closed);
    uv_close((uv_handle_t *)&h->sweep, on_handle_closed);
}

unsigned httpd_connection_count(httpd_t *h)
{
    const union MHD_DaemonInfo *info =
        h && h->mhd ? MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS) : NULL;
    return info ? info->num_connections : 0;
}
