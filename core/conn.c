/*
 * conn: one upstream connection's life: connect to its endpoint's address,
 * (TLS handshake), read frames, write coalesced packets, go down, back off,
 * reconnect, retire. The state changes in exactly three places: conn_start
 * (-> CONNECTING), conn_established (-> CONNECTED) and conn_down
 * (-> DISCONNECTED), each checking where it comes from; its socket's phase
 * (upstream_internal.h) in sock_set_phase alone.
 *
 * TLS sits between the socket and the frame codec: ciphertext is read into
 * the upstream's scratch buffer, fed to the connection's tls_conn_t, and
 * decrypted straight into the frame decoder's space; packets are encrypted
 * from `out` into `wire` when flushed. Whatever TLS wants to send (handshake,
 * replies to post-handshake messages, close_notify) goes to `wire` after
 * every TLS call.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/message.h"
#include "core/upstream_internal.h"

#define READ_CHUNK 65536
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define STABLE_AFTER_MS 1000
/* TLS 1.3: how long to wait for the server's verdict on the client when it
 * sends no session ticket. Loopback alerts arrive in well under 1 ms. */
#define TLS_VERDICT_GRACE_MS 200

up_conn_t *conn_new(up_endpoint_t *endpoint)
{
    up_conn_t *conn = calloc(1, sizeof *conn);
    if (!conn)
        return NULL;
    conn->state = UP_CONN_DISCONNECTED;
    conn->endpoint = endpoint;
    up_count(&endpoint->svc->stats->conns[UP_CONN_DISCONNECTED], 1);
    list_init(&conn->pending);
    list_init(&conn->emits);
    timer_entry_init(&conn->connect_timer);
    timer_entry_init(&conn->reconnect_timer);
    timer_entry_init(&conn->tls_grace_timer);
    timer_entry_init(&conn->frame_timer);
    timer_entry_init(&conn->age_timer);
    list_push_back(&endpoint->conns, &conn->link);
    endpoint->n_conns++;
    return conn;
}

void conn_free(up_conn_t *conn)
{
    upstream_t *up = conn->endpoint->svc->up;
    timer_entry_t *timers[] = { &conn->connect_timer, &conn->reconnect_timer, &conn->tls_grace_timer,
                                &conn->frame_timer, &conn->age_timer };
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
        timers_stop(&up->timers, timers[i]);
    up_count(&conn->endpoint->svc->stats->conns[conn->state], -1);
    list_remove(&conn->link);
    conn->endpoint->n_conns--;
    free(conn);
}

static upstream_t *up_of(up_conn_t *conn)
{
    return conn->endpoint->svc->up;
}

static void sock_release(up_sock_t *sock);

/* Every state change goes through here, so that the per-state counts of
 * the service stay true. */
static void set_state(up_conn_t *conn, up_conn_state_t state)
{
    up_service_stats_t *st = conn->endpoint->svc->stats;
    up_count(&st->conns[conn->state], -1);
    up_count(&st->conns[state], 1);
    conn->state = state;
}

void conn_set_error(up_conn_t *conn, const char *detail)
{
    snprintf(conn->last_error, sizeof conn->last_error, "%s", detail);
    conn->last_error_at_wall = up_wall_ms();
    conn->errors++;
}

/* ---- the socket of one attempt ---------------------------------------- */

/* Every phase change, checked against the diagram in upstream_internal.h. */
static void sock_set_phase(up_sock_t *sock, sock_phase_t phase)
{
    switch (phase) {
    case SOCK_HANDSHAKING: assert(sock->phase == SOCK_CONNECTING); break;
    case SOCK_OPEN: assert(sock->phase == SOCK_CONNECTING || sock->phase == SOCK_HANDSHAKING); break;
    case SOCK_CLOSING: assert(sock->phase != SOCK_CLOSING && sock->phase != SOCK_CLOSED); break;
    case SOCK_CLOSED: assert(sock->phase == SOCK_CLOSING); break;
    case SOCK_CONNECTING: assert(0 && "a socket connects once"); break;
    }
    sock->phase = phase;
}

static void sock_maybe_free(up_sock_t *sock)
{
    if (sock->phase != SOCK_CLOSED)
        return;
    upstream_t *up = sock->up;
    frame_decoder_free(&sock->in);
    buf_free(&sock->out);
    buf_free(&sock->inflight_out);
    buf_free(&sock->wire);
    tls_conn_free(sock->tls);
    free(sock);
    upstream_handle_closed(up);
}

static void on_tcp_closed(uv_handle_t *h)
{
    up_sock_t *sock = h->data;
    sock_set_phase(sock, SOCK_CLOSED);
    sock_maybe_free(sock);
}

/* TLS: a close_notify so the service sees a clean close, sent only if it
 * can go at once (nothing else queued): a closing socket waits for no one. */
static void send_close_notify(up_sock_t *sock)
{
    if (!sock->tls || sock->phase == SOCK_CONNECTING || sock->phase >= SOCK_CLOSING || sock->writing)
        return;
    tls_conn_shutdown(sock->tls);
    if (tls_conn_output(sock->tls, &sock->wire) <= 0)
        return;
    uv_buf_t b = uv_buf_init(sock->wire.data, (unsigned)sock->wire.len);
    uv_try_write((uv_stream_t *)&sock->tcp, &b, 1);
    buf_clear(&sock->wire);
}

/* Detaches the sock from its connection and starts closing it. */
static void sock_release(up_sock_t *sock)
{
    send_close_notify(sock);
    sock->conn = NULL;
    if (list_linked(&sock->flush_link))
        list_remove(&sock->flush_link);
    if (sock->phase < SOCK_CLOSING) {
        sock_set_phase(sock, SOCK_CLOSING);
        uv_close((uv_handle_t *)&sock->tcp, on_tcp_closed);
    }
}

/* A socket that starts connecting to the endpoint's address, or NULL (out
 * of memory, or uv refused: *rc says which). */
static void on_connected(uv_connect_t *req, int status);

static up_sock_t *sock_new(up_conn_t *conn, int *rc)
{
    up_sock_t *sock = calloc(1, sizeof *sock);
    if (!sock) {
        *rc = -ENOMEM;
        return NULL;
    }
    sock->conn = conn;
    sock->up = up_of(conn);
    sock->phase = SOCK_CONNECTING;
    frame_decoder_init(&sock->in, conn->endpoint->svc->opts.max_message_bytes);
    list_init(&sock->flush_link);
    if ((*rc = uv_tcp_init(sock->up->loop, &sock->tcp)) < 0) {
        frame_decoder_free(&sock->in);
        free(sock);
        return NULL;
    }
    sock->up->open_handles++;
    sock->tcp.data = sock;
    uv_tcp_nodelay(&sock->tcp, 1);
    uv_tcp_keepalive(&sock->tcp, 1, 30);
    sock->connect_req.data = sock;
    *rc = uv_tcp_connect(&sock->connect_req, &sock->tcp, (const struct sockaddr *)&conn->endpoint->sockaddr,
                         on_connected);
    return sock; /* a failed connect is closed by the caller, like any */
}

size_t conn_unwritten(const up_conn_t *conn)
{
    const up_sock_t *sock = conn->sock;
    return sock ? sock->out.len + sock->inflight_out.len + sock->wire.len : 0;
}

/* ---- going down and coming back --------------------------------------- */

static void on_reconnect_timer(timer_entry_t *e)
{
    up_conn_t *conn = LIST_OWNER(e, up_conn_t, reconnect_timer);
    conn->next_attempt_wall = 0;
    if (conn->state == UP_CONN_DISCONNECTED && ep_may_connect(conn->endpoint))
        conn_start(conn); /* an ejected endpoint restarts when it is over */
}

static void arm_backoff(up_conn_t *conn)
{
    upstream_t *up = up_of(conn);
    unsigned shift = conn->failures < 6 ? conn->failures : 6;
    uint64_t delay = (uint64_t)BACKOFF_FIRST_MS << shift;
    if (delay > BACKOFF_MAX_MS)
        delay = BACKOFF_MAX_MS;
    delay += up_random(up) % (delay / 5 + 1);
    conn->failures++;
    conn->next_attempt_wall = up_wall_ms() + delay;
    timers_start(&up->timers, &conn->reconnect_timer, delay, on_reconnect_timer);
}

/* Sends again (when they may be) or fails every request of a list. The
 * list is moved aside first: a callback may cancel or finish other
 * requests of it. */
static void fail_list(list_node_t *list, up_outcome_t outcome, const char *detail)
{
    list_node_t doomed;
    list_init(&doomed);
    list_move_all(&doomed, list);
    list_node_t *node;
    while ((node = list_first(&doomed)) != NULL)
        req_connection_lost(LIST_OWNER(node, up_request_t, link), outcome, detail);
}

void conn_down(up_conn_t *conn, up_outcome_t outcome, const char *detail)
{
    upstream_t *up = up_of(conn);
    up_endpoint_t *ep = conn->endpoint;
    up_conn_state_t was = conn->state;
    if (was == UP_CONN_DISCONNECTED)
        return;
    set_state(conn, UP_CONN_DISCONNECTED);
    int expected = conn->retiring || ep->state == UP_EP_DRAINING;
    if (!expected) {
        conn_set_error(conn, detail);
        up_report(conn, was == UP_CONN_CONNECTED ? UP_EV_DISCONNECTED : UP_EV_CONNECT_FAILED, detail);
    }
    timers_stop(&up->timers, &conn->connect_timer);
    timers_stop(&up->timers, &conn->tls_grace_timer);
    timers_stop(&up->timers, &conn->frame_timer);
    timers_stop(&up->timers, &conn->age_timer);
    sock_release(conn->sock);
    conn->sock = NULL;
    conn->connected_since_wall = 0;
    ep_conn_state_changed(ep);
    if (was == UP_CONN_CONNECTED && uv_now(up->loop) - conn->connected_at >= STABLE_AFTER_MS) {
        conn->failures = 0;
        ep_stable(ep);
    }
    if (was == UP_CONN_CONNECTING)
        up_count(&ep->svc->stats->connects_failed, 1);
    fail_list(&conn->pending, outcome, detail);
    fail_list(&conn->emits, outcome, detail);
    if (up->closing || expected)
        return;
    if (was == UP_CONN_CONNECTING)
        ep_connect_failed(ep);
    else if (outcome == UP_BAD_MESSAGE)
        ep_protocol_error(ep);
    if (ep->svc->active && ep_may_connect(ep))
        arm_backoff(conn);
    svc_target_failed(ep->target);
    if (was == UP_CONN_CONNECTING)
        svc_conn_failed(ep->svc, conn->last_error);
}

static void on_connect_timeout(timer_entry_t *e)
{
    up_conn_t *conn = LIST_OWNER(e, up_conn_t, connect_timer);
    char detail[96];
    snprintf(detail, sizeof detail, "%s timed out after %u ms",
             conn->sock && conn->sock->phase == SOCK_HANDSHAKING ? "TLS handshake" : "connect",
             conn->endpoint->svc->opts.connect_timeout_ms);
    conn_down(conn, UP_CLOSED, detail);
}

/* ---- reading ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    up_sock_t *sock = h->data;
    if (sock->tls) {
        upstream_t *up = sock->up;
        if (!up->tls_read_buf)
            up->tls_read_buf = malloc(READ_CHUNK);
        *buf = uv_buf_init(up->tls_read_buf, up->tls_read_buf ? READ_CHUNK : 0);
        return;
    }
    size_t avail = 0;
    char *space = frame_decoder_space(&sock->in, READ_CHUNK, &avail);
    *buf = uv_buf_init(space, space ? (unsigned)(avail > UINT32_MAX ? UINT32_MAX : avail) : 0);
}

static void on_frame_timeout(timer_entry_t *e)
{
    up_conn_t *conn = LIST_OWNER(e, up_conn_t, frame_timer);
    char detail[160];
    snprintf(detail, sizeof detail, "a frame from the service stayed incomplete for %u ms (%zu bytes held)",
             conn->endpoint->svc->opts.incomplete_frame_timeout_ms,
             conn->sock ? frame_decoder_buffered(&conn->sock->in) : (size_t)0);
    conn_down(conn, UP_BAD_MESSAGE, detail);
}

/* A frame that stays incomplete longer than incomplete_frame_timeout_ms
 * (a service that wrote part of one and stopped) would hold every later
 * reply on the connection: its deadline starts when the frame does and is
 * not moved by more of its bytes, only by its end. */
static void watch_incomplete_frame(up_conn_t *conn, up_sock_t *sock)
{
    upstream_t *up = up_of(conn);
    if (frame_decoder_buffered(&sock->in) == 0) {
        timers_stop(&up->timers, &conn->frame_timer);
        return;
    }
    uint64_t at = frame_decoder_frame_offset(&sock->in);
    if (timer_armed(&conn->frame_timer) && conn->frame_at == at)
        return;
    conn->frame_at = at;
    timers_start(&up->timers, &conn->frame_timer, conn->endpoint->svc->opts.incomplete_frame_timeout_ms,
                 on_frame_timeout);
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
        if (sock->up->on_packet)
            up_observe(sock->conn, UP_PACKET_IN, message);
        svc_reply(sock->conn, message);
    }
    if (sock->conn)
        watch_incomplete_frame(sock->conn, sock);
}

static void sock_flush(up_sock_t *sock);
static void conn_established(up_conn_t *conn);
static void on_tls_grace_over(timer_entry_t *e);

/* A TLS record header (alert or handshake, version 3.x) where a Nest frame
 * should start: a plain-TCP service definition pointed at a TLS port. */
static int looks_like_tls(const char *p, size_t n)
{
    return n >= 2 && (p[0] == 0x15 || p[0] == 0x16) && p[1] == 0x03;
}

/* Keeps the newest session the server issued, for the next connection to
 * this endpoint. */
static void keep_session(up_sock_t *sock)
{
    tls_session_t *s = tls_conn_take_session(sock->tls);
    if (!s)
        return;
    up_endpoint_t *ep = sock->conn->endpoint;
    tls_session_free(ep->tls_session);
    ep->tls_session = s;
}

static void tls_failed(up_sock_t *sock, tls_status_t st)
{
    up_conn_t *conn = sock->conn;
    char detail[300];
    if (st == TLS_CLOSED)
        snprintf(detail, sizeof detail, "connection closed by the service");
    else if (conn->state == UP_CONN_CONNECTING)
        snprintf(detail, sizeof detail, "TLS handshake failed: %s", tls_conn_error(sock->tls));
    else
        snprintf(detail, sizeof detail, "TLS error: %s", tls_conn_error(sock->tls));
    conn_down(conn, UP_CLOSED, detail);
}

/* Moves a TLS connection along after input: the handshake, then plaintext
 * into the frame decoder, then whatever TLS wants to send back. */
static void tls_pump(up_sock_t *sock)
{
    up_conn_t *conn = sock->conn;
    tls_conn_t *tc = sock->tls;
    tls_status_t st;
    if (sock->phase == SOCK_HANDSHAKING) {
        st = tls_conn_handshake(tc);
        if (st == TLS_FAILED) {
            tls_failed(sock, st);
            return;
        }
        sock_flush(sock);
        if (st == TLS_AGAIN || !sock->conn)
            return;
        sock_set_phase(sock, SOCK_OPEN);
        if (!tls_conn_is_tls13(tc)) {
            conn_established(conn);
        } else {
            upstream_t *up = sock->up;
            timers_start(&up->timers, &conn->tls_grace_timer, TLS_VERDICT_GRACE_MS, on_tls_grace_over);
        }
    }
    for (;;) {
        size_t avail = 0, got = 0;
        char *space = frame_decoder_space(&sock->in, READ_CHUNK, &avail);
        if (!space) {
            conn_down(conn, UP_CLOSED, "out of memory reading a reply");
            return;
        }
        st = tls_conn_read(tc, space, avail, &got);
        if (st == TLS_AGAIN)
            break;
        if (st != TLS_OK) {
            tls_failed(sock, st);
            return;
        }
        frame_decoder_commit(&sock->in, got);
        up_count(&conn->endpoint->svc->stats->bytes_in, (int64_t)got);
    }
    keep_session(sock);
    sock_flush(sock);
    if (!sock->conn)
        return;
    if (conn->state == UP_CONN_CONNECTING && tls_conn_server_spoke(tc))
        conn_established(conn);
    read_frames(sock);
}

static void on_tls_grace_over(timer_entry_t *e)
{
    up_conn_t *conn = LIST_OWNER(e, up_conn_t, tls_grace_timer);
    if (conn->state == UP_CONN_CONNECTING && conn->sock && conn->sock->phase == SOCK_OPEN)
        conn_established(conn);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    up_sock_t *sock = s->data;
    if (!sock->conn)
        return;
    if (nread > 0 && sock->tls) {
        sock->bytes_read += (uint64_t)nread;
        if (tls_conn_feed(sock->tls, buf->base, (size_t)nread))
            conn_down(sock->conn, UP_CLOSED, "out of memory reading a reply");
        else
            tls_pump(sock);
    } else if (nread > 0) {
        if (sock->bytes_read == 0 && looks_like_tls(buf->base, (size_t)nread)) {
            conn_down(sock->conn, UP_BAD_MESSAGE,
                      "the service answered with TLS: give this service a \"tls\" section");
            return;
        }
        sock->bytes_read += (uint64_t)nread;
        frame_decoder_commit(&sock->in, (size_t)nread);
        up_count(&sock->conn->endpoint->svc->stats->bytes_in, nread);
        read_frames(sock);
    } else if (nread == UV_ENOBUFS) {
        conn_down(sock->conn, UP_CLOSED, "out of memory reading a reply");
    } else if (nread == UV_EOF && sock->tls) {
        /* Ends with close_notify (closed), a truncation or a handshake
         * failure, each reported by the pump in its own words. */
        tls_conn_feed_eof(sock->tls);
        tls_pump(sock);
        if (sock->conn)
            conn_down(sock->conn, UP_CLOSED, "connection closed by the service");
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

static void on_age(timer_entry_t *e)
{
    ep_conn_aged(LIST_OWNER(e, up_conn_t, age_timer));
}

/* CONNECTING -> CONNECTED: requests may now be written. */
static void conn_established(up_conn_t *conn)
{
    upstream_t *up = up_of(conn);
    if (conn->state != UP_CONN_CONNECTING)
        return;
    timers_stop(&up->timers, &conn->connect_timer);
    timers_stop(&up->timers, &conn->tls_grace_timer);
    set_state(conn, UP_CONN_CONNECTED);
    conn->connected_at = uv_now(up->loop);
    conn->connected_since_wall = up_wall_ms();
    up_endpoint_t *ep = conn->endpoint;
    uint32_t age = ep->svc->opts.max_connection_age_ms;
    if (age) /* plus up to 10% jitter, so a pool's connections do not retire together */
        timers_start(&up->timers, &conn->age_timer, age + up_random(up) % (age / 10 + 1), on_age);
    up_count(&ep->svc->stats->connects_ok, 1);
    ep_connected(ep);
    ep_conn_state_changed(ep);
    up_report(conn, UP_EV_CONNECTED, NULL);
    svc_conn_up(ep->svc);
}

static void start_tls(up_sock_t *sock)
{
    up_conn_t *conn = sock->conn;
    up_endpoint_t *ep = conn->endpoint;
    up_service_t *svc = ep->svc;
    sock->tls = tls_conn_new(svc->tls, svc->servername ? svc->servername : ep->target->host, ep->tls_session);
    if (!sock->tls) {
        conn_down(conn, UP_CLOSED, "cannot start TLS: out of memory");
        return;
    }
    sock_set_phase(sock, SOCK_HANDSHAKING);
    tls_pump(sock);
}

static void on_connected(uv_connect_t *req, int status)
{
    up_sock_t *sock = req->data;
    up_conn_t *conn = sock->conn;
    if (!conn || status == UV_ECANCELED)
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
    if (conn->endpoint->svc->tls) {
        start_tls(sock);
        return;
    }
    sock_set_phase(sock, SOCK_OPEN);
    conn_established(conn);
}

int conn_start(up_conn_t *conn)
{
    if (conn->state != UP_CONN_DISCONNECTED)
        return 0;
    upstream_t *up = up_of(conn);
    int rc;
    up_sock_t *sock = sock_new(conn, &rc);
    if (!sock)
        return rc;
    if (conn->connected_at)
        conn->reconnects++;
    conn->sock = sock;
    conn->next_attempt_wall = 0;
    set_state(conn, UP_CONN_CONNECTING);
    timers_stop(&up->timers, &conn->reconnect_timer);
    timers_start(&up->timers, &conn->connect_timer, conn->endpoint->svc->opts.connect_timeout_ms,
                 on_connect_timeout);
    if (rc < 0) { /* the failure is reported like any failed attempt */
        char detail[128];
        snprintf(detail, sizeof detail, "connect failed: %s", uv_strerror(rc));
        conn_down(conn, UP_CLOSED, detail);
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
    else if (req->kind == UP_KIND_EMIT)
        rc = msg_encode_event(&sock->out, pattern, data, metadata);
    else {
        char idtext[MSG_ID_MAX];
        rc = msg_encode_request(&sock->out, pattern, data, msg_format_id(req->id, idtext), metadata);
    }
    if (rc)
        return rc;
    if (sock->up->on_packet) { /* the frame is "<length>#<json>" */
        const char *frame = sock->out.data + before, *hash = memchr(frame, '#', sock->out.len - before);
        if (hash)
            up_observe(conn, UP_PACKET_OUT, span_of(hash + 1, (size_t)(sock->out.data + sock->out.len - hash - 1)));
    }
    if (!req->retries_left)
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

static void on_written(uv_write_t *w, int status)
{
    up_sock_t *sock = w->data;
    sock->writing = 0;
    buf_clear(&sock->inflight_out);
    if (!sock->conn || status == UV_ECANCELED)
        return;
    if (status < 0) {
        char detail[96];
        snprintf(detail, sizeof detail, "write failed: %s", uv_strerror(status));
        conn_down(sock->conn, UP_CLOSED, detail);
        return;
    }
    sock->bytes_written = sock->inflight_done;
    complete_written_events(sock->conn);
    if (sock->conn)
        sock_flush(sock);
}

/* Writes a buffer of bytes for the socket (plaintext `out`, or TLS `wire`):
 * at once if the kernel takes it, else through one uv_write whose buffer
 * lives until its callback. `done` is sock->bytes_written once all of it is
 * written. */
static void write_wire(up_sock_t *sock, buf_t *wire, uint64_t done)
{
    up_conn_t *conn = sock->conn;
    if (sock->writing || wire->len == 0)
        return;
    uv_buf_t b = uv_buf_init(wire->data, (unsigned)wire->len);
    int n = uv_try_write((uv_stream_t *)&sock->tcp, &b, 1);
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        char detail[96];
        snprintf(detail, sizeof detail, "write failed: %s", uv_strerror(n));
        conn_down(conn, UP_CLOSED, detail);
        return;
    }
    buf_consume(wire, (size_t)n);
    if (wire->len == 0) {
        sock->bytes_written = done;
    } else {
        if (!sock->tls) /* plaintext: what the kernel took is written */
            sock->bytes_written += (uint64_t)n;
        buf_t t = sock->inflight_out; /* swap: the wire keeps collecting */
        sock->inflight_out = *wire;
        *wire = t;
        buf_clear(wire);
        sock->inflight_done = done;
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

/* Sends what is queued. Packets go out only once CONNECTED; a TLS socket
 * also sends its handshake and protocol records before that. */
static void sock_flush(up_sock_t *sock)
{
    up_conn_t *conn = sock->conn;
    int connected = conn->state == UP_CONN_CONNECTED;
    if (!sock->tls) {
        if (connected && !sock->writing && sock->out.len) {
            up_count(&conn->endpoint->svc->stats->bytes_out, (int64_t)sock->out.len);
            write_wire(sock, &sock->out, sock->bytes_written + sock->out.len);
        }
        return;
    }
    if (connected && sock->out.len) {
        up_count(&conn->endpoint->svc->stats->bytes_out, (int64_t)sock->out.len);
        if (tls_conn_write(sock->tls, sock->out.data, sock->out.len) != TLS_OK) {
            tls_failed(sock, TLS_FAILED);
            return;
        }
        sock->plain_encrypted += sock->out.len;
        buf_clear(&sock->out);
    }
    if (tls_conn_output(sock->tls, &sock->wire) < 0) {
        conn_down(conn, UP_CLOSED, "out of memory writing a request");
        return;
    }
    write_wire(sock, &sock->wire, sock->plain_encrypted);
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
