/*
 * exchange: see exchange.h. Every change of state goes through ex_enter(),
 * which checks the transition against `allowed` and does what the state
 * classes say (suspend, resume, hang-up watch, in-flight list, keep-alive
 * timer, counts).
 */
#include "gateway/exchange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/recycle.h"
#include "gateway/httpd.h"
#include "gateway/stream.h"

struct ex_pool {
    const ex_http_t *http;
    const ex_handler_t *handler;
    void *ctx;
    size_t object_size;
    timers_t timers;             /* the keep-alive timers */
    uint64_t keepalive_ms;
    size_t in_state[EX_STATE_COUNT];
    size_t with_service;         /* in SERVICE states (max_inflight's count) */
    list_node_t inflight;        /* exchanges in flight (see exchange.h) */
    exchange_t *spares;          /* DONE, kept for reuse */
    size_t n_spares;
};

/* Spare exchanges per pool, and what each keeps of its buffers. */
#define EX_SPARE_MAX (PG_RECYCLE ? 128 : 0)
#define EX_SPARE_BUF_BYTES 4096

/* ---- the states ------------------------------------------------------------ */

static const char *const state_names[EX_STATE_COUNT] = {
    [EX_HEAD] = "head", [EX_EARLY] = "early", [EX_BODY] = "body", [EX_UPSTREAM] = "upstream", [EX_GATHER] = "gather",
    [EX_ANSWER] = "answer", [EX_SENDING] = "sending", [EX_STREAM_WAKE] = "stream_wake",
    [EX_STREAM_FLOW] = "stream_flow", [EX_STREAM_IDLE] = "stream_idle", [EX_STREAM_CLOSE] = "stream_close",
    [EX_STREAM_LAST] = "stream_last", [EX_GONE] = "gone", [EX_DONE] = "done",
};

const char *ex_state_name(ex_state_t s) { return (unsigned)s < EX_STATE_COUNT ? state_names[s] : "?"; }

#define TO(s) (1u << (s))

static const unsigned allowed[EX_STATE_COUNT] = {
    [EX_HEAD] = TO(EX_EARLY) | TO(EX_BODY) | TO(EX_SENDING) | TO(EX_GATHER) | TO(EX_DONE),
    [EX_EARLY] = TO(EX_SENDING) | TO(EX_DONE),
    [EX_BODY] = TO(EX_SENDING) | TO(EX_UPSTREAM) | TO(EX_STREAM_FLOW) | TO(EX_DONE),
    [EX_UPSTREAM] = TO(EX_ANSWER) | TO(EX_STREAM_WAKE) | TO(EX_GONE),
    [EX_GATHER] = TO(EX_ANSWER) | TO(EX_GONE),
    [EX_ANSWER] = TO(EX_SENDING) | TO(EX_DONE),
    [EX_SENDING] = TO(EX_DONE),
    [EX_STREAM_WAKE] = TO(EX_STREAM_FLOW) | TO(EX_STREAM_CLOSE) | TO(EX_DONE),
    [EX_STREAM_FLOW] = TO(EX_STREAM_IDLE) | TO(EX_STREAM_LAST) | TO(EX_DONE),
    [EX_STREAM_IDLE] = TO(EX_STREAM_WAKE) | TO(EX_STREAM_CLOSE) | TO(EX_GONE),
    [EX_STREAM_CLOSE] = TO(EX_STREAM_LAST) | TO(EX_DONE),
    [EX_STREAM_LAST] = TO(EX_DONE),
    [EX_GONE] = TO(EX_DONE),
    [EX_DONE] = TO(EX_HEAD),
};

/* What a state means for the connection and the pool (exchange.h). */
enum {
    SUSPENDED = 1, /* MHD holds the connection suspended */
    HELD = 2,      /* suspended, or resumed and not yet seen by MHD */
    INFLIGHT = 4,  /* on the pool's in-flight list */
    OPEN = 8,      /* an open stream: the service still sends */
    SERVICE = 16,  /* a request with a service */
};

static const unsigned classes[EX_STATE_COUNT] = {
    [EX_UPSTREAM] = SUSPENDED | HELD | INFLIGHT | SERVICE,
    [EX_GATHER] = SUSPENDED | HELD | INFLIGHT,
    [EX_ANSWER] = HELD,
    [EX_STREAM_WAKE] = HELD | INFLIGHT | OPEN | SERVICE,
    [EX_STREAM_FLOW] = INFLIGHT | OPEN | SERVICE,
    [EX_STREAM_IDLE] = SUSPENDED | HELD | INFLIGHT | OPEN | SERVICE,
    [EX_STREAM_CLOSE] = HELD,
    [EX_GONE] = HELD,
};

static ex_pool_t *pool_of(const exchange_t *ex) { return ex->listener->pool; }

static void bad_transition(const exchange_t *ex, ex_state_t to)
{
    fprintf(stderr, "{\"level\":\"error\",\"msg\":\"exchange: impossible transition\",\"from\":\"%s\",\"to\":\"%s\"}\n",
            ex_state_name(ex->state), ex_state_name(to));
    abort();
}

static void on_keepalive(timer_entry_t *e);

/* The one place a state changes. */
static void ex_enter(exchange_t *ex, ex_state_t to)
{
    ex_pool_t *p = pool_of(ex);
    ex_state_t from = ex->state;
    if (!(allowed[from] & TO(to)))
        bad_transition(ex, to);
    unsigned was = classes[from], is = classes[to];
    ex->state = to;
    p->in_state[from]--;
    p->in_state[to]++;
    void *server = ex->listener->server;
    if ((was & SUSPENDED) && !(is & SUSPENDED)) {
        p->http->watch_hangup(server, ex->conn, NULL);
        p->http->resume(server, ex->conn);
    }
    p->with_service += (size_t)((is & SERVICE) != 0) - (size_t)((was & SERVICE) != 0);
    if ((was & INFLIGHT) && !(is & INFLIGHT))
        list_remove(&ex->inflight_link);
    else if (!(was & INFLIGHT) && (is & INFLIGHT))
        list_push_back(&p->inflight, &ex->inflight_link);
    if ((was & OPEN) && !(is & OPEN))
        timers_stop(&p->timers, &ex->keepalive);
    else if (!(was & OPEN) && (is & OPEN) && ex->mode == CONFIG_REPLY_SSE)
        timers_start(&p->timers, &ex->keepalive, p->keepalive_ms, on_keepalive);
    if (!(was & SUSPENDED) && (is & SUSPENDED)) {
        p->http->suspend(server, ex->conn);
        p->http->watch_hangup(server, ex->conn, ex);
    }
}

/* ---- responses ----------------------------------------------------------------- */

void ex_header(exchange_t *ex, const char *name, const char *value)
{
    if (ex->n_headers < EX_HEADERS_MAX)
        ex->headers[ex->n_headers++] = (ex_header_t){ name, value };
}

const char *ex_error_code(const exchange_t *ex)
{
    return ex->error >= 0 ? gw_error_code((gw_error_t)ex->error) : NULL;
}

/* A Vary header's values joined in vary[EX_VARY_SIZE], which the caller
 * keeps for the queue call: "Accept" and "Origin" make "Accept, Origin". */
#define EX_VARY_SIZE 256

/* `extra` (the content type...), then the headers added; several Vary
 * headers (the handler's own and CORS's, say) become one line when they
 * fit in vary[] (else they stay lines of their own, which HTTP allows). */
static size_t response_headers(const exchange_t *ex, ex_header_t *out, const ex_header_t *extra, size_t n_extra,
                               char *vary)
{
    size_t n = 0, first_vary = SIZE_MAX;
    for (size_t i = 0; i < n_extra; i++)
        out[n++] = extra[i];
    for (size_t i = 0; i < ex->n_headers; i++) {
        const ex_header_t *h = &ex->headers[i];
        if (strcasecmp(h->name, "Vary") == 0 && first_vary != SIZE_MAX) {
            size_t used = strlen(vary), more = strlen(h->value);
            if (used == 0 && strlen(out[first_vary].value) < EX_VARY_SIZE)
                used = (size_t)snprintf(vary, EX_VARY_SIZE, "%s", out[first_vary].value);
            if (used > 0 && used + 2 + more < EX_VARY_SIZE) {
                snprintf(vary + used, EX_VARY_SIZE - used, ", %s", h->value);
                out[first_vary].value = vary;
                continue;
            }
        } else if (strcasecmp(h->name, "Vary") == 0) {
            first_vary = n;
        }
        out[n++] = *h;
    }
    return n;
}

/* A stream's own headers (3) into out. */
static size_t stream_headers(const exchange_t *ex, ex_header_t out[3])
{
    out[0] = (ex_header_t){ MHD_HTTP_HEADER_CONTENT_TYPE, stream_content_type(ex->mode) };
    out[1] = (ex_header_t){ MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache" };
    out[2] = (ex_header_t){ "X-Accel-Buffering", "no" };
    return 3;
}

/* Queues the whole response (inside MHD's call) and enters SENDING. */
static enum MHD_Result queue_whole(exchange_t *ex)
{
    ex_pool_t *p = pool_of(ex);
    int empty = ex->status == 204 || ex->status == 304 || ex->body.len == 0;
    ex_header_t extra[1], all[EX_HEADERS_MAX + 3]; /* + 3: a stream's head */
    char vary[EX_VARY_SIZE] = "";
    size_t n_extra = 0;
    if (ex->content_type || !empty)
        extra[n_extra++] = (ex_header_t){ MHD_HTTP_HEADER_CONTENT_TYPE,
                                          ex->content_type ? ex->content_type : "application/json" };
    ex_response_t r = { .status = ex->status, .body = empty ? NULL : ex->body.data, .body_len = empty ? 0 : ex->body.len,
                        .headers = all, .n_headers = response_headers(ex, all, extra, n_extra, vary) };
    if (ex->stream_head) { /* a stream's head alone: its headers, no length */
        ex_header_t stream_extra[3];
        size_t n = stream_headers(ex, stream_extra);
        vary[0] = '\0';
        r.n_headers = response_headers(ex, all, stream_extra, n, vary);
        r.no_length = 1;
    }
    ex->sent_status = ex->status;
    ex->bytes += strcmp(ex->method, "HEAD") == 0 ? 0 : r.body_len;
    ex_enter(ex, EX_SENDING);
    return ex->queue_rc = p->http->queue(ex->listener->server, ex->conn, &r);
}

/* Queues the stream's head (inside MHD's call): STREAM_FLOW, or
 * STREAM_LAST when its end is already buffered. */
static enum MHD_Result queue_stream(exchange_t *ex, ex_state_t next)
{
    ex_pool_t *p = pool_of(ex);
    ex_header_t extra[3];
    ex_header_t all[EX_HEADERS_MAX + 3];
    char vary[EX_VARY_SIZE] = "";
    ex_response_t r = { .status = ex->status, .stream = exchange_stream_read, .stream_ctx = ex, .headers = all,
                        .n_headers = response_headers(ex, all, extra, stream_headers(ex, extra), vary) };
    ex->sent_status = ex->status;
    ex_enter(ex, next);
    return ex->queue_rc = p->http->queue(ex->listener->server, ex->conn, &r);
}

/* Whether an answer added Connection: close. */
static int asks_close(const exchange_t *ex)
{
    for (size_t i = 0; i < ex->n_headers; i++)
        if (strcasecmp(ex->headers[i].name, MHD_HTTP_HEADER_CONNECTION) == 0 &&
            strcasestr(ex->headers[i].value, "close"))
            return 1;
    return 0;
}

/* An answer from the head alone waits for MHD's final call when the
 * connection can then stay open (exchange.h, "Keep-alive"). */
static int waits_for_final_call(const exchange_t *ex)
{
    return !asks_close(ex) && !pool_of(ex)->http->has_body(ex->listener->server, ex->conn);
}

void ex_answer(exchange_t *ex, unsigned status, const char *content_type, buf_t *body)
{
    ex->status = status;
    ex->content_type = content_type;
    buf_clear(&ex->body);
    if (body && body->len) { /* the bytes move over: copy nothing */
        buf_t old = ex->body;
        ex->body = *body;
        *body = old;
    }
    if (ex->state == EX_HEAD && waits_for_final_call(ex))
        ex_enter(ex, EX_EARLY);
    else if (ex->state == EX_HEAD || ex->state == EX_BODY)
        queue_whole(ex);
    else
        ex_enter(ex, EX_ANSWER); /* queued at MHD's next call */
}

void ex_fail(exchange_t *ex, gw_error_t e, const char *message, span_t details)
{
    buf_t body = BUF_INIT;
    gw_error_body(&body, e, message, details);
    ex->error = (int)e;
    ex_answer(ex, (unsigned)gw_error_status_for(e, details), NULL, &body);
    buf_free(&body);
}

void ex_read_body(exchange_t *ex) { ex_enter(ex, EX_BODY); }
void ex_wait_upstream(exchange_t *ex) { ex_enter(ex, EX_UPSTREAM); }
void ex_wait_workers(exchange_t *ex) { ex_enter(ex, EX_GATHER); }

/* ---- streams ------------------------------------------------------------------- */

void ex_stream_head(exchange_t *ex, unsigned status, config_reply_mode mode)
{
    ex->mode = mode;
    ex->stream_head = 1;
    ex_answer(ex, status, NULL, NULL);
}

void ex_stream_open(exchange_t *ex, unsigned status, config_reply_mode mode, size_t max_buffered)
{
    ex->status = status;
    ex->mode = mode;
    ex->out_max = max_buffered;
    if (mode == CONFIG_REPLY_SSE)
        buf_append_cstr(&ex->out, ": ok\n\n");
    if (ex->state == EX_BODY)
        queue_stream(ex, EX_STREAM_FLOW);
    else
        ex_enter(ex, EX_STREAM_WAKE); /* queued at MHD's next call */
}

/* New bytes are buffered: a sleeping reader wakes. */
static void wake(exchange_t *ex)
{
    if (ex->state == EX_STREAM_IDLE)
        ex_enter(ex, EX_STREAM_WAKE);
}

/* The end is buffered: nothing more will be appended. */
static void finish(exchange_t *ex)
{
    ex_enter(ex, ex->state == EX_STREAM_FLOW ? EX_STREAM_LAST : EX_STREAM_CLOSE);
}

static void on_keepalive(timer_entry_t *e)
{
    exchange_t *ex = LIST_OWNER(e, exchange_t, keepalive);
    stream_append_keepalive(&ex->out);
    timers_start(&pool_of(ex)->timers, &ex->keepalive, pool_of(ex)->keepalive_ms, on_keepalive);
    wake(ex);
}

void ex_stream_fail(exchange_t *ex, gw_error_t e, const char *message, span_t details)
{
    buf_t body = BUF_INIT;
    gw_error_body(&body, e, message, details);
    stream_append_error(&ex->out, ex->mode, span_of(body.data, body.len));
    buf_free(&body);
    ex->error = (int)e;
    finish(ex);
}

int ex_stream_value(exchange_t *ex, span_t value)
{
    if (!(classes[ex->state] & OPEN))
        return 0; /* ended meanwhile: dropped */
    if (ex->out.len - ex->out_pos > ex->out_max) {
        ex_stream_fail(ex, GW_ERR_OVERLOADED, "the client reads the stream too slowly", span_of(NULL, 0));
        return -1;
    }
    stream_append_value(&ex->out, ex->mode, value);
    if (ex->mode == CONFIG_REPLY_SSE) /* the silence starts again */
        timers_start(&pool_of(ex)->timers, &ex->keepalive, pool_of(ex)->keepalive_ms, on_keepalive);
    wake(ex);
    return 0;
}

void ex_stream_end(exchange_t *ex)
{
    stream_append_end(&ex->out, ex->mode);
    finish(ex);
}

/* MHD's content reader: hands out what is buffered; with nothing buffered
 * it ends the stream (STREAM_LAST) or suspends until there is more
 * (returning 0 without suspending would make MHD spin). */
ssize_t exchange_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    exchange_t *ex = cls;
    switch (ex->state) {
    case EX_STREAM_WAKE:
        ex_enter(ex, EX_STREAM_FLOW);
        break;
    case EX_STREAM_CLOSE:
        ex_enter(ex, EX_STREAM_LAST);
        break;
    case EX_STREAM_FLOW:
    case EX_STREAM_LAST:
        break;
    default: /* GONE: the client left */
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t avail = ex->out.len - ex->out_pos;
    if (avail) {
        size_t n = avail < max ? avail : max;
        memcpy(buf, ex->out.data + ex->out_pos, n);
        ex->out_pos += n;
        ex->bytes += n;
        if (ex->out_pos == ex->out.len) {
            buf_clear(&ex->out);
            ex->out_pos = 0;
        }
        return (ssize_t)n;
    }
    if (ex->state == EX_STREAM_LAST)
        return MHD_CONTENT_READER_END_OF_STREAM;
    ex_enter(ex, EX_STREAM_IDLE);
    return 0;
}

/* ---- the pool ------------------------------------------------------------------ */

static exchange_t *pool_alloc(ex_pool_t *p)
{
    exchange_t *ex = p->spares;
    if (ex) {
        p->spares = ex->next_spare;
        p->n_spares--;
        return ex;
    }
    ex = calloc(1, p->object_size);
    if (!ex)
        return NULL;
    ex->state = EX_DONE;
    p->in_state[EX_DONE]++;
    list_init(&ex->inflight_link);
    timer_entry_init(&ex->keepalive);
    return ex;
}

/* Frees a DONE exchange and what it holds. */
static void pool_free(ex_pool_t *p, exchange_t *ex)
{
    p->handler->on_recycle(p->ctx, ex, 0);
    buf_free(&ex->body);
    buf_free(&ex->out);
    p->in_state[EX_DONE]--;
    free(ex);
}

/* A DONE exchange goes back to the pool, or is freed. */
static void pool_put(ex_pool_t *p, exchange_t *ex)
{
    if (p->n_spares + 1 > EX_SPARE_MAX) {
        pool_free(p, ex);
        return;
    }
    p->handler->on_recycle(p->ctx, ex, EX_SPARE_BUF_BYTES);
    buf_t *bufs[] = { &ex->body, &ex->out };
    for (size_t i = 0; i < 2; i++) {
        if (bufs[i]->cap > EX_SPARE_BUF_BYTES)
            buf_free(bufs[i]);
        buf_clear(bufs[i]);
    }
    ex->next_spare = p->spares;
    p->spares = ex;
    p->n_spares++;
}

ex_pool_t *ex_pool_new(uv_loop_t *loop, const ex_http_t *http, const ex_handler_t *handler, void *handler_ctx,
                       size_t object_size)
{
    ex_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    if (timers_init(&p->timers, loop) != 0) {
        free(p);
        return NULL;
    }
    p->http = http;
    p->handler = handler;
    p->ctx = handler_ctx;
    p->object_size = object_size < sizeof(exchange_t) ? sizeof(exchange_t) : object_size;
    p->keepalive_ms = STREAM_KEEPALIVE_MS;
    list_init(&p->inflight);
    return p;
}

static void on_timers_closed(uv_handle_t *h)
{
    free(h->data);
}

void ex_pool_close(ex_pool_t *p)
{
    while (p->spares) {
        exchange_t *ex = p->spares;
        p->spares = ex->next_spare;
        pool_free(p, ex);
    }
    p->n_spares = 0;
    p->timers.handle.data = p;
    timers_close(&p->timers, on_timers_closed);
}

void *ex_pool_handler_ctx(const ex_pool_t *p) { return p->ctx; }

void ex_pool_set_keepalive_ms(ex_pool_t *p, uint64_t ms) { p->keepalive_ms = ms; }

size_t ex_pool_in_state(const ex_pool_t *p, ex_state_t s) { return (unsigned)s < EX_STATE_COUNT ? p->in_state[s] : 0; }

static size_t count_class(const ex_pool_t *p, unsigned cls)
{
    size_t n = 0;
    for (int s = 0; s < EX_STATE_COUNT; s++)
        if (classes[s] & cls)
            n += p->in_state[s];
    return n;
}

size_t ex_pool_alive(const ex_pool_t *p)
{
    size_t n = 0;
    for (int s = 0; s < EX_STATE_COUNT; s++)
        n += s == EX_DONE ? 0 : p->in_state[s];
    return n;
}

size_t ex_pool_held(const ex_pool_t *p) { return count_class(p, HELD); }
size_t ex_pool_upstream(const ex_pool_t *p) { return p->with_service; }
size_t ex_pool_sending(const ex_pool_t *p) { return p->in_state[EX_SENDING] + p->in_state[EX_STREAM_LAST]; }

void ex_pool_drain(ex_pool_t *p)
{
    list_node_t *node;
    while ((node = list_first(&p->inflight)) != NULL) { /* each answer takes one off */
        exchange_t *ex = LIST_OWNER(node, exchange_t, inflight_link);
        p->handler->on_cancel(p->ctx, ex);
        if (classes[ex->state] & OPEN) {
            ex_stream_fail(ex, GW_ERR_DRAINING, "the gateway shut down before the stream ended", span_of(NULL, 0));
            continue;
        }
        ex_header(ex, MHD_HTTP_HEADER_CONNECTION, "close");
        ex_fail(ex, GW_ERR_DRAINING, "the gateway shut down before the reply came", span_of(NULL, 0));
    }
}

/* ---- libmicrohttpd's callbacks ----------------------------------------------------- */

/* After the handler had MHD's call: what to tell MHD. */
static enum MHD_Result after_call(exchange_t *ex)
{
    switch (ex->state) {
    case EX_HEAD: /* the handler decided nothing: a bug, answered as one */
        ex_fail(ex, GW_ERR_INTERNAL, NULL, span_of(NULL, 0));
        return ex->queue_rc;
    case EX_SENDING:
    case EX_STREAM_FLOW:
        return ex->queue_rc;
    default:
        return MHD_YES;
    }
}

static exchange_t *begin(ex_listener_t *l, struct MHD_Connection *connection, const char *url, const char *method,
                         const char *version)
{
    ex_pool_t *p = l->pool;
    exchange_t *ex = pool_alloc(p);
    if (!ex)
        return NULL;
    ex->conn = connection;
    ex->method = method;
    ex->url = url;
    ex->version = version;
    ex->listener = l;
    ex->started_ns = uv_hrtime();
    ex->status = ex->sent_status = 0;
    ex->error = -1;
    ex->n_headers = 0;
    ex->content_type = NULL;
    ex->bytes = 0;
    ex->queue_rc = MHD_YES;
    ex->mode = CONFIG_REPLY_AUTO;
    ex->stream_head = 0;
    ex->out_pos = ex->out_max = 0;
    ex_enter(ex, EX_HEAD);
    return ex;
}

enum MHD_Result exchange_on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                    const char *method, const char *version, const char *upload_data,
                                    size_t *upload_data_size, void **con_cls)
{
    exchange_t *ex = *con_cls;
    if (!ex) {
        ex_listener_t *l = cls;
        if (!(ex = begin(l, connection, url, method, version)))
            return MHD_NO;
        *con_cls = ex;
        l->pool->handler->on_head(l->pool->ctx, ex);
        return after_call(ex);
    }
    ex_pool_t *p = pool_of(ex);
    switch (ex->state) {
    case EX_BODY:
        if (*upload_data_size) {
            p->handler->on_body(p->ctx, ex, upload_data, *upload_data_size);
            *upload_data_size = 0;
            return MHD_YES;
        }
        p->handler->on_body_end(p->ctx, ex);
        return after_call(ex);
    case EX_EARLY:
        if (*upload_data_size) { /* a body after all: read and dropped */
            *upload_data_size = 0;
            return MHD_YES;
        }
        return queue_whole(ex);
    case EX_ANSWER:
        return queue_whole(ex);
    case EX_STREAM_WAKE:
        return queue_stream(ex, EX_STREAM_FLOW);
    case EX_STREAM_CLOSE:
        return queue_stream(ex, EX_STREAM_LAST);
    case EX_GONE:
        return MHD_NO;
    default: /* a body after an early answer: dropped */
        *upload_data_size = 0;
        return MHD_YES;
    }
}

void exchange_on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)connection;
    (void)toe; /* what was queued tells what the client got */
    exchange_t *ex = *con_cls;
    if (!ex)
        return;
    *con_cls = NULL;
    ex_pool_t *p = pool_of(ex);
    ex_enter(ex, EX_DONE);
    p->handler->on_complete(p->ctx, ex);
    pool_put(p, ex);
}

void exchange_on_hangup(void *cls, void *owner)
{
    (void)cls;
    exchange_t *ex = owner;
    if (!(classes[ex->state] & SUSPENDED))
        return;
    ex_pool_t *p = pool_of(ex);
    p->handler->on_cancel(p->ctx, ex);
    ex_enter(ex, EX_GONE);
}

/* ---- libmicrohttpd through httpd.h ------------------------------------------------ */

static void mhd_suspend(void *server, struct MHD_Connection *c)
{
    (void)server;
    MHD_suspend_connection(c);
}

static void mhd_resume(void *server, struct MHD_Connection *c) { httpd_resume(server, c); }

static void mhd_watch_hangup(void *server, struct MHD_Connection *c, exchange_t *ex)
{
    (void)server;
    httpd_watch_hangup(c, ex);
}

/* The reader of a response without a length that has no body. */
static ssize_t read_nothing(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    (void)buf;
    (void)max;
    return MHD_CONTENT_READER_END_OF_STREAM;
}

/* No length: MHD's strict HTTP/1.0 mode sends neither Content-Length nor
 * chunked coding, and closes the connection after the response. */
static struct MHD_Response *response_without_length(void)
{
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, read_nothing, NULL, NULL);
    if (resp && MHD_set_response_options(resp, MHD_RF_HTTP_1_0_COMPATIBLE_STRICT, MHD_RO_END) != MHD_YES) {
        MHD_destroy_response(resp);
        return NULL;
    }
    return resp;
}

static enum MHD_Result mhd_queue(void *server, struct MHD_Connection *c, const ex_response_t *r)
{
    (void)server;
    struct MHD_Response *resp =
        r->no_length ? response_without_length()
        : r->stream  ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, r->stream, r->stream_ctx, NULL)
                     : MHD_create_response_from_buffer(r->body_len, (void *)r->body, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    for (size_t i = 0; i < r->n_headers; i++)
        MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
    enum MHD_Result rc = MHD_queue_response(c, r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* A Content-Length of only zeros is no body; anything else (a length, a
 * Transfer-Encoding, or a value MHD would refuse anyway) counts as one. */
static int mhd_has_body(void *server, struct MHD_Connection *c)
{
    (void)server;
    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        return 1;
    const char *length = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!length)
        return 0;
    if (!*length)
        return 1;
    return length[strspn(length, "0")] != 0;
}

const ex_http_t ex_http_mhd = { mhd_suspend, mhd_resume, mhd_watch_hangup, mhd_queue, mhd_has_body };
