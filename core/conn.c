/*
 * conn: one upstream connection's life: resolve, connect, read frames, write
 * coalesced packets, go down, back off, reconnect. The state changes in
 * exactly two places: conn_start (-> CONNECTING), on_connected
 * (-> CONNECTED) and conn_down (-> DISCONNECTED), each checking where it
 * comes from.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/message.h"
#include "core/upstream_internal.h"

#define READ_CHUNK 65536
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define STABLE_AFTER_MS 1000

static void sock_release(up_sock_t *sock);

void conn_init(up_conn_t *conn, up_endpoint_t *endpoint)
{
    memset(conn, 0, sizeof *conn);
    conn->state = UP_CONN_DISCONNECTED;
    conn->endpoint = endpoint;
    list_init(&conn->pending);
    list_init(&conn->emits);
    timer_entry_init(&conn->connect_timer);
    timer_entry_init(&conn->reconnect_timer);
}

static upstream_t *up_of(up_conn_t *conn)
{
    return conn->endpoint->svc->up;
}

void conn_set_error(up_conn_t *conn, const char *detail)
{
    snprintf(conn->last_error, sizeof conn->last_error, "%s", detail);
    conn->last_error_at_wall = up_wall_ms();
    conn->errors++;
}

/* ---- the socket of one attempt ---------------------------------------- */

static void sock_maybe_free(up_sock_t *sock)
{
    if (sock->resolving || sock->tcp_open)
        return;
    upstream_t *up = sock->up;
    if (sock->addrs)
        uv_freeaddrinfo(sock->addrs);
    frame_decoder_free(&sock->in);
    buf_free(&sock->out);
    buf_free(&sock->inflight_out);
    free(sock);
    upstream_handle_closed(up);
}

static void on_tcp_closed(uv_handle_t *h)
{
    up_sock_t *sock = h->data;
    sock->tcp_open = 0;
    sock_maybe_free(sock);
}

/* Detaches the sock from its connection and starts closing it. */
static void sock_release(up_sock_t *sock)
{
    sock->conn = NULL;
    if (list_linked(&sock->flush_link))
        list_remove(&sock->flush_link);
    if (sock->resolving)
        uv_cancel((uv_req_t *)&sock->resolver);
    if (sock->tcp_open && !uv_is_closing((uv_handle_t *)&sock->tcp))
        uv_close((uv_handle_t *)&sock->tcp, on_tcp_closed);
    sock_maybe_free(sock);
}

static up_sock_t *sock_new(up_conn_t *conn)
{
    up_sock_t *sock = calloc(1, sizeof *sock);
    if (!sock)
        return NULL;
    sock->conn = conn;
    sock->up = up_of(conn);
    frame_decoder_init(&sock->in, conn->endpoint->svc->opts.max_message_bytes);
    list_init(&sock->flush_link);
    sock->up->open_handles++;
    return sock;
}

/* ---- going down and coming back --------------------------------------- */

static uint64_t next_random(upstream_t *up)
{
    up->rng ^= up->rng << 13;
    up->rng ^= up->rng >> 7;
    up->rng ^= up->rng << 17;
    return up->rng;
}

static void on_reconnect_timer(timer_entry_t *e)
{
    up_conn_t *conn = LIST_OWNER(e, up_conn_t, reconnect_timer);
    if (conn->state == UP_CONN_DISCONNECTED)
        conn_start(conn);
}

static void arm_backoff(up_conn_t *conn)
{
    upstream_t *up = up_of(conn);
    unsigned shift = conn->failures < 6 ? conn->failures : 6;
    uint64_t delay = (uint64_t)BACKOFF_FIRST_MS << shift;
    if (delay > BACKOFF_MAX_MS)
        delay = BACKOFF_MAX_MS;
    delay += next_random(up) % (delay / 5 + 1);
    conn->failures++;
    timers_start(&up->timers, &conn->reconnect_timer, delay, on_reconnect_timer);
}

/* Fails every request of a list with one outcome. The list is moved aside
 * first: a callback may cancel or finish other requests of it. */
static void fail_list(list_node_t *list, up_outcome_t outcome, const char *detail)
{
    list_node_t doomed;
    list_init(&doomed);
    list_move_all(&doomed, list);
    list_node_t *node;
    while ((node = list_first(&doomed)) != NULL)
        req_finish(LIST_OWNER(node, up_request_t, link), outcome, span_of(NULL, 0), detail);
}

void conn_down(up_conn_t *conn, up_outcome_t outcome, const char *detail)
{
    upstream_t *up = up_of(conn);
    up_conn_state_t was = conn->state;
    if (was == UP_CONN_DISCONNECTED)
        return;
    conn->state = UP_CONN_DISCONNECTED;
    conn_set_error(conn, detail);
    timers_stop(&up->timers, &conn->connect_timer);
    sock_release(conn->sock);
    conn->sock = NULL;
    conn->connected_since_wall = 0;
    if (was == UP_CONN_CONNECTED && uv_now(up->loop) - conn->connected_at >= STABLE_AFTER_MS)
        conn->failures = 0;
    if (was == UP_CONN_CONNECTING)
        conn->endpoint->svc->stats.connects_failed++;
    fail_list(&conn->pending, outcome, detail);
    fail_list(&conn->emits, outcome, detail);
    if (up->closing)
        return;
    if (conn->endpoint->svc->active)
        arm_backoff(conn);
    if (was == UP_CONN_CONNECTING)
        svc_conn_failed(conn->endpoint->svc, conn->last_error);
}

static void on_connect_timeout(timer_entry_t *e)
{
    up_conn_t *conn = LIST_OWNER(e, up_conn_t, connect_timer);
    char detail[96];
    snprintf(detail, sizeof detail, "connect timed out after %u ms",
             conn->endpoint->svc->opts.connect_timeout_ms);
    conn_down(conn, UP_CLOSED, detail);
}

/* ---- reading ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    up_sock_t *sock = h->data;
    size_t avail = 0;
    char *space = frame_decoder_space(&sock->in, READ_CHUNK, &avail);
    *buf = uv_buf_init(space, space ? (unsigned)(avail > UINT32_MAX ? UINT32_MAX : avail) : 0);
}

/* Hands every complete frame to the service; stops if the connection goes
 * down meanwhile (a protocol error, or a callback's doing). */
static void read_frames(up_sock_t *sock)
{
    span_t message;
    int rc;
    while (sock->conn && (rc = frame_decoder_next(&sock->in, &message)) != FRAME_NEED_MORE) {
        if (rc == FRAME_ERROR) {
            char detail[200];
            snprintf(detail, sizeof detail, "bad frame: %s", frame_decoder_error(&sock->in));
            conn_down(sock->conn, UP_BAD_MESSAGE, detail);
            return;
        }
        svc_reply(sock->conn, message);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    up_sock_t *sock = s->data;
    if (!sock->conn)
        return;
    if (nread > 0) {
        frame_decoder_commit(&sock->in, (size_t)nread);
        sock->conn->endpoint->svc->stats.bytes_in += (uint64_t)nread;
        read_frames(sock);
    } else if (nread == UV_ENOBUFS) {
        conn_down(sock->conn, UP_CLOSED, "out of memory reading a reply");
    } else if (nread < 0) {
        char detail[96];
        if (nread == UV_EOF)
            snprintf(detail, sizeof detail, "connection closed by the service");
        else
            snprintf(detail, sizeof detail, "read failed: %s", uv_strerror((int)nread));
        conn_down(sock->conn, UP_CLOSED, detail);
    }
}

/* ---- connecting --------------------------------------------------------- */

static int connect_to(up_sock_t *sock, const struct sockaddr *addr);

/* A name resolved to several addresses: the attempt moves on to the next
 * one on a fresh socket (a failed uv_tcp_t cannot connect again). */
static int try_next_address(up_conn_t *conn, up_sock_t *failed)
{
    struct addrinfo *next = failed->next_addr;
    if (!next)
        return -1;
    up_sock_t *sock = sock_new(conn);
    if (!sock)
        return -1;
    sock->addrs = failed->addrs;
    sock->next_addr = next->ai_next;
    failed->addrs = NULL;
    conn->sock = sock;
    sock_release(failed);
    if (connect_to(sock, next->ai_addr) < 0)
        return try_next_address(conn, sock);
    return 0;
}

static void on_connected(uv_connect_t *req, int status)
{
    up_sock_t *sock = req->data;
    up_conn_t *conn = sock->conn;
    if (!conn || status == UV_ECANCELED)
        return;
    if (status < 0 && try_next_address(conn, sock) == 0)
        return;
    if (status < 0) {
        char detail[96];
        snprintf(detail, sizeof detail, "connect failed: %s", uv_strerror(status));
        conn_down(conn, UP_CLOSED, detail);
        return;
    }
    int rc = uv_read_start((uv_stream_t *)&sock->tcp, on_alloc, on_read);
    if (rc < 0) {
        conn_down(conn, UP_CLOSED, uv_strerror(rc));
        return;
    }
    upstream_t *up = up_of(conn);
    timers_stop(&up->timers, &conn->connect_timer);
    conn->state = UP_CONN_CONNECTED;
    conn->connected_at = uv_now(up->loop);
    conn->connected_since_wall = up_wall_ms();
    conn->endpoint->svc->stats.connects_ok++;
    svc_conn_up(conn->endpoint->svc);
}

static int connect_to(up_sock_t *sock, const struct sockaddr *addr)
{
    int rc = uv_tcp_init(sock->up->loop, &sock->tcp);
    if (rc < 0)
        return rc;
    sock->tcp.data = sock;
    sock->tcp_open = 1;
    uv_tcp_nodelay(&sock->tcp, 1);
    uv_tcp_keepalive(&sock->tcp, 1, 30);
    sock->connect_req.data = sock;
    return uv_tcp_connect(&sock->connect_req, &sock->tcp, addr, on_connected);
}

static void fail_connect(up_conn_t *conn, const char *what, int rc)
{
    char detail[128];
    snprintf(detail, sizeof detail, "%s: %s", what, uv_strerror(rc));
    conn_down(conn, UP_CLOSED, detail);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    up_sock_t *sock = req->data;
    sock->resolving = 0;
    up_conn_t *conn = sock->conn;
    if (!conn) {
        uv_freeaddrinfo(res);
        sock_maybe_free(sock);
        return;
    }
    if (status < 0) {
        fail_connect(conn, "cannot resolve host", status);
        return;
    }
    sock->addrs = res;
    sock->next_addr = res->ai_next;
    int rc = connect_to(sock, res->ai_addr);
    if (rc < 0 && try_next_address(conn, sock) < 0)
        fail_connect(conn, "connect failed", rc);
}

int conn_start(up_conn_t *conn)
{
    if (conn->state != UP_CONN_DISCONNECTED)
        return 0;
    upstream_t *up = up_of(conn);
    up_sock_t *sock = sock_new(conn);
    if (!sock)
        return -ENOMEM;
    if (conn->sock == NULL && conn->connected_at)
        conn->reconnects++;
    conn->sock = sock;
    conn->state = UP_CONN_CONNECTING;
    timers_stop(&up->timers, &conn->reconnect_timer);
    timers_start(&up->timers, &conn->connect_timer, conn->endpoint->svc->opts.connect_timeout_ms,
                 on_connect_timeout);

    const up_endpoint_t *ep = conn->endpoint;
    struct sockaddr_storage addr;
    int port = atoi(ep->port), rc;
    if (uv_ip4_addr(ep->host, port, (struct sockaddr_in *)&addr) == 0 ||
        uv_ip6_addr(ep->host, port, (struct sockaddr_in6 *)&addr) == 0) {
        rc = connect_to(sock, (const struct sockaddr *)&addr);
        if (rc < 0)
            fail_connect(conn, "connect failed", rc);
        return 0;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    sock->resolver.data = sock;
    sock->resolving = 1;
    rc = uv_getaddrinfo(up->loop, &sock->resolver, on_resolved, ep->host, ep->port, &hints);
    if (rc < 0) {
        sock->resolving = 0;
        fail_connect(conn, "cannot resolve host", rc);
    }
    return 0;
}

/* ---- writing ------------------------------------------------------------ */

int conn_write_request(up_conn_t *conn, up_request_t *req, span_t pattern, span_t data, span_t metadata)
{
    up_sock_t *sock = conn->sock;
    size_t before = sock->out.len;
    int rc;
    if (req->frame.len)
        rc = buf_append(&sock->out, req->frame.data, req->frame.len);
    else if (req->is_event)
        rc = msg_encode_event(&sock->out, pattern, data, metadata);
    else {
        char idtext[MSG_ID_MAX];
        rc = msg_encode_request(&sock->out, pattern, data, msg_format_id(req->id, idtext), metadata);
    }
    if (rc)
        return rc;
    buf_free(&req->frame);
    sock->bytes_queued += sock->out.len - before;
    req->write_end = sock->bytes_queued;
    if (!list_linked(&sock->flush_link))
        list_push_back(&sock->up->flush, &sock->flush_link);
    upstream_schedule(sock->up);
    return 0;
}

/* Events are complete once the kernel has their last byte. */
static void complete_written_events(up_conn_t *conn)
{
    list_node_t *node;
    while (conn->sock && (node = list_first(&conn->emits)) != NULL) {
        up_request_t *req = LIST_OWNER(node, up_request_t, link);
        if (req->write_end > conn->sock->bytes_written)
            break;
        req_finish(req, UP_OK, span_of(NULL, 0), NULL);
    }
}

static void sock_flush(up_sock_t *sock);

static void on_written(uv_write_t *w, int status)
{
    up_sock_t *sock = w->data;
    sock->writing = 0;
    size_t n = sock->inflight_out.len;
    buf_clear(&sock->inflight_out);
    if (!sock->conn || status == UV_ECANCELED)
        return;
    if (status < 0) {
        char detail[96];
        snprintf(detail, sizeof detail, "write failed: %s", uv_strerror(status));
        conn_down(sock->conn, UP_CLOSED, detail);
        return;
    }
    sock->bytes_written += n;
    complete_written_events(sock->conn);
    if (sock->conn && sock->out.len)
        sock_flush(sock);
}

/* Writes what is queued: at once if the kernel takes it, else through one
 * uv_write whose buffer lives until its callback. */
static void sock_flush(up_sock_t *sock)
{
    if (sock->writing || sock->out.len == 0 || sock->conn->state != UP_CONN_CONNECTED)
        return;
    up_conn_t *conn = sock->conn;
    conn->endpoint->svc->stats.bytes_out += sock->out.len;
    uv_buf_t b = uv_buf_init(sock->out.data, (unsigned)sock->out.len);
    int n = uv_try_write((uv_stream_t *)&sock->tcp, &b, 1);
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        char detail[96];
        snprintf(detail, sizeof detail, "write failed: %s", uv_strerror(n));
        conn_down(conn, UP_CLOSED, detail);
        return;
    }
    sock->bytes_written += (uint64_t)n;
    buf_consume(&sock->out, (size_t)n);
    if (sock->out.len) {
        buf_t t = sock->inflight_out; /* swap: out keeps collecting */
        sock->inflight_out = sock->out;
        sock->out = t;
        buf_clear(&sock->out);
        b = uv_buf_init(sock->inflight_out.data, (unsigned)sock->inflight_out.len);
        sock->write_req.data = sock;
        int rc = uv_write(&sock->write_req, (uv_stream_t *)&sock->tcp, &b, 1, on_written);
        if (rc < 0) {
            conn_down(conn, UP_CLOSED, uv_strerror(rc));
            return;
        }
        sock->writing = 1;
    }
    complete_written_events(conn);
}

void conn_flush_all(upstream_t *up)
{
    list_node_t *node;
    while ((node = list_first(&up->flush)) != NULL) {
        up_sock_t *sock = LIST_OWNER(node, up_sock_t, flush_link);
        list_remove(node);
        if (sock->conn)
            sock_flush(sock);
    }
}
