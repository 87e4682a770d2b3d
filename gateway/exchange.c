/*
 * exchange: see exchange.h. The access handler decides where a request goes
 * as soon as its headers are in (so that a 404, 401 or 413 costs no body),
 * collects the body, renders the packet data, sends it upstream and
 * suspends the connection until the reply comes back.
 */
#include "gateway/exchange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/json_write.h"
#include "core/recycle.h"
#include "core/utf8.h"
#include "gateway/admin.h"
#include "gateway/errors.h"
#include "gateway/gateway.h"
#include "gateway/generic.h"
#include "gateway/http_head.h"
#include "gateway/render.h"
#include "gateway/stream.h"
#include "core/urlcode.h"

typedef enum ex_state {
    EX_HEADERS, /* first call: nothing decided yet */
    EX_BODY,    /* reading the body */
    EX_WAITING, /* suspended; the upstream request is in flight */
    EX_READY,   /* a response is built and waits to be queued */
    EX_SENT,    /* queued; MHD sends it */
    EX_GONE,    /* the client hung up while we waited */
} ex_state_t;

typedef struct exchange {
    list_node_t waiting_link;    /* in gw->waiting_list while EX_WAITING */
    gateway_t *gw;
    generation_t *gen;           /* the config it runs on, held */
    struct MHD_Connection *conn;
    ex_state_t state;
    const char *method;          /* MHD's, valid for the request */
    const char *url;             /* raw path, still percent-encoded */
    const char *version;         /* MHD's, valid for the request */
    const char *label;           /* route template, "generic", "admin", "unmatched" */
    int label_metric;            /* its metrics index */
    /* where it goes */
    const config_route *route;   /* NULL for the generic API */
    router_match_t match;
    size_t service_index;
    int is_emit;
    config_reply_mode reply;
    unsigned ok_status;
    uint64_t timeout_ms;
    /* the body */
    buf_t body;
    int body_too_large;
    /* upstream */
    up_request_t *req;
    size_t nvalues;
    buf_t values;                /* the values so far, comma-separated */
    buf_t query_value;           /* the last query parameter looked up */
    buf_t metadata;              /* the packet's metadata, while dispatching */
    buf_t rendered;              /* the packet's data from a template, idem */
    /* the response */
    unsigned status;
    buf_t response;
    int json_body;
    const char *content_type;    /* overrides json_body's application/json */
    const char *allow;
    int close_after;             /* Connection: close */
    int challenge;               /* WWW-Authenticate: Bearer */
    int retry_after;
    size_t response_bytes;       /* for the access log */
    char request_id[132];
    uint64_t started_ns;
    uint64_t upstream_started_ns;
    int suspended;               /* MHD holds it suspended (or has yet to
                                    process its resume) */
    /* a streamed reply (ndjson, sse) */
    int streaming;               /* the reply is streamed */
    int stream_started;          /* its response is built: values go to `out` */
    int stream_done;             /* nothing more will be appended */
    int reader_waiting;          /* suspended inside the content reader */
    buf_t out;                   /* stream bytes not yet taken by MHD */
    size_t out_pos;
    timer_entry_t keepalive;     /* sse: a comment after 15 s of silence */
    struct exchange *next_spare; /* in gw->spare_exchanges once finished */
} exchange_t;

/* What a stream may hold for a client that reads slowly, beyond the value
 * being taken: past it the stream is failed (README, "Backpressure"). */
#define STREAM_BUFFER_MAX ((size_t)4 << 20)

static const char *header(exchange_t *ex, const char *name)
{
    return MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, name);
}

/* ---- responses ---------------------------------------------------------- */

static void set_response(exchange_t *ex, unsigned status, buf_t *json)
{
    ex->status = status;
    buf_free(&ex->response);
    if (json) {
        ex->response = *json;
        *json = (buf_t)BUF_INIT;
        ex->json_body = 1;
    }
    ex->state = EX_READY;
}

static void fail(exchange_t *ex, gw_error_t e, const char *message, span_t details)
{
    buf_t body = BUF_INIT;
    gw_error_body(&body, e, message, details);
    set_response(ex, (unsigned)gw_error_status_for(e, details), &body);
}

static void fail_simple(exchange_t *ex, gw_error_t e, const char *message)
{
    fail(ex, e, message, span_of(NULL, 0));
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max);

static enum MHD_Result send_response(exchange_t *ex)
{
    struct MHD_Response *r;
    ex->response_bytes = ex->status == 204 ? 0 : ex->response.len;
    if (ex->stream_started) {
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, ex, NULL);
        if (r) {
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, stream_content_type(ex->reply));
            MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
            MHD_add_response_header(r, "X-Accel-Buffering", "no");
        }
    } else if (ex->response.len && ex->status != 204 && ex->status != 304) {
        /* the exchange owns the bytes and lives until MHD is done sending */
        r = MHD_create_response_from_buffer(ex->response.len, ex->response.data, MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    }
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "X-Request-Id", ex->request_id);
    if (ex->content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ex->content_type);
    else if (ex->json_body && ex->status != 204)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (ex->allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, ex->allow);
    if (ex->challenge)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (ex->retry_after)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (ex->close_after)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(ex->conn, ex->status, r);
    MHD_destroy_response(r);
    ex->state = EX_SENT;
    return rc;
}

/* ---- request id, metadata, auth ----------------------------------------- */

static int usable_request_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (id[i] <= 0x20 || id[i] >= 0x7f)
            return 0;
    return 1;
}

/* 32 random hex digits. */
static void new_request_id(gateway_t *gw, char *out, size_t size)
{
    uint64_t a, b;
    gw->rng ^= gw->rng << 13; gw->rng ^= gw->rng >> 7; gw->rng ^= gw->rng << 17;
    a = gw->rng;
    gw->rng ^= gw->rng << 13; gw->rng ^= gw->rng >> 7; gw->rng ^= gw->rng << 17;
    b = gw->rng;
    snprintf(out, size, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

static void assign_request_id(exchange_t *ex)
{
    const char *given = header(ex, "X-Request-Id");
    if (usable_request_id(given)) {
        snprintf(ex->request_id, sizeof ex->request_id, "%s", given);
        return;
    }
    new_request_id(ex->gw, ex->request_id, sizeof ex->request_id);
}

static void add_metadata_field(buf_t *m, const char *key, const char *value)
{
    if (!value || !utf8_valid(value, strlen(value)))
        return;
    buf_append_cstr(m, m->len > 1 ? ",\"" : "\"");
    buf_append_cstr(m, key);
    buf_append_cstr(m, "\":");
    json_append_string(m, value, strlen(value));
}

static void build_metadata(exchange_t *ex, buf_t *m)
{
    buf_append_cstr(m, "{");
    add_metadata_field(m, "requestId", ex->request_id);
    add_metadata_field(m, "traceparent", header(ex, "traceparent"));
    add_metadata_field(m, "tracestate", header(ex, "tracestate"));
    buf_append_cstr(m, "}");
}

/* Compares in time independent of where the strings differ. */
static int same_secret(const char *a, size_t an, const char *b, size_t bn)
{
    unsigned char diff = (unsigned char)(an != bn);
    for (size_t i = 0; i < an; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (bn ? bn : 1)]);
    return diff == 0;
}

static int authorized(exchange_t *ex)
{
    const config *cfg = ex->gen->cfg;
    if (cfg->bearer_token_count == 0)
        return 1;
    const char *auth = header(ex, MHD_HTTP_HEADER_AUTHORIZATION);
    /* RFC 9110 §11.1: the scheme name is case-insensitive, then 1*SP */
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return 0;
    const char *token = auth + 7;
    while (*token == ' ')
        token++;
    size_t n = strlen(token);
    int ok = 0;
    for (size_t i = 0; i < cfg->bearer_token_count; i++)
        ok |= same_secret(token, n, cfg->bearer_tokens[i], strlen(cfg->bearer_tokens[i]));
    return ok;
}

/* ---- deciding where a request goes --------------------------------------- */

static void answer_admin(exchange_t *ex)
{
    admin_reply_t r;
    ex->label = "admin";
    ex->label_metric = METRICS_ROUTE_ADMIN;
    admin_answer(ex->gw, ex->method, ex->url, &r);
    ex->allow = r.allow;
    ex->content_type = r.content_type;
    set_response(ex, r.status, &r.body);
}

/* /v1/send/NAME and /v1/emit/NAME; 1 when the path is one of them (or
 * cannot be decoded, which is answered here too). */
static int route_generic(exchange_t *ex)
{
    span_t name;
    int kind = generic_match_path(ex->url, &ex->match, &name);
    if (kind == GENERIC_PATH_NONE)
        return 0;
    if (kind == GENERIC_PATH_BAD || kind < 0) {
        fail_simple(ex, kind < 0 ? GW_ERR_OVERLOADED : GW_ERR_BAD_REQUEST, kind < 0 ? "out of memory" : ex->match.error);
        return 1;
    }
    int is_emit = kind == GENERIC_PATH_EMIT;
    ex->label = "generic";
    ex->label_metric = METRICS_ROUTE_GENERIC;
    const config_service *svc = NULL;
    for (size_t i = 0; i < ex->gen->cfg->service_count; i++) {
        const config_service *s = &ex->gen->cfg->services[i];
        if (s->generic_api && span_eq_cstr(name, s->name)) {
            svc = s;
            ex->service_index = i;
        }
    }
    if (!svc) {
        fail_simple(ex, GW_ERR_NOT_FOUND, "no such service for the generic API");
        return 1;
    }
    if (strcmp(ex->method, "POST") != 0) {
        ex->allow = "POST";
        fail_simple(ex, GW_ERR_METHOD_NOT_ALLOWED, "the generic API takes POST");
        return 1;
    }
    ex->is_emit = is_emit;
    ex->ok_status = is_emit ? 202 : 200;
    ex->timeout_ms = svc->timeout_ms;
    char why[160];
    const char *reply = MHD_lookup_connection_value(ex->conn, MHD_GET_ARGUMENT_KIND, "reply");
    if (!is_emit && generic_parse_reply(reply, &ex->reply, why, sizeof why)) {
        fail_simple(ex, GW_ERR_BAD_REQUEST, why);
        return 1;
    }
    ex->state = EX_BODY;
    return 1;
}

static void route_configured(exchange_t *ex)
{
    router_result_t rc = router_match(ex->gen->router, ex->method, ex->url, &ex->match);
    switch (rc) {
    case ROUTER_FOUND:
        break;
    case ROUTER_METHOD_NOT_ALLOWED: /* counted under the path's route */
        ex->label = ex->match.route->path.text;
        ex->label_metric = ex->gen->route_metric[ex->match.route_index];
        ex->allow = ex->match.allow;
        fail_simple(ex, GW_ERR_METHOD_NOT_ALLOWED, "the path exists, but not for this method");
        return;
    case ROUTER_BAD_PATH:
        fail_simple(ex, GW_ERR_BAD_REQUEST, ex->match.error);
        return;
    case ROUTER_NO_MEMORY:
        fail_simple(ex, GW_ERR_OVERLOADED, "out of memory");
        return;
    default:
        fail_simple(ex, GW_ERR_NOT_FOUND, "no route matches the path");
        return;
    }
    const config_route *route = ex->match.route;
    ex->route = route;
    ex->label = route->path.text;
    ex->label_metric = ex->gen->route_metric[route - ex->gen->cfg->routes];
    ex->service_index = route->service_index;
    ex->is_emit = route->kind == CONFIG_ROUTE_EMIT;
    ex->reply = route->reply;
    ex->ok_status = route->status;
    ex->timeout_ms = route->timeout_ms;
    ex->state = EX_BODY;
}

static void check_declared_length(exchange_t *ex)
{
    const char *length = header(ex, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!length)
        return;
    unsigned long long declared = strtoull(length, NULL, 10);
    if (declared > ex->gen->cfg->limits.max_body_bytes)
        fail_simple(ex, GW_ERR_PAYLOAD_TOO_LARGE, "the body is larger than max_body_bytes");
    else if (declared > 0)
        (void)buf_reserve(&ex->body, (size_t)declared); /* one allocation, no regrowth;
                                                         failure shows in take_body */
}

/* A head that another HTTP parser could read differently (http_head.h):
 * refused, and the connection closed, before anything else is decided. */
static int refuse_ambiguous_head(exchange_t *ex)
{
    char why[HTTP_HEAD_WHY_SIZE];
    http_head_verdict_t v = http_head_inspect(ex->conn, ex->method, ex->url, ex->version, why, sizeof why);
    if (v == HTTP_HEAD_OK)
        return 0;
    ex->close_after = 1;
    if (v == HTTP_HEAD_CODING)
        fail_simple(ex, GW_ERR_NOT_IMPLEMENTED, why);
    else
        fail_simple(ex, GW_ERR_BAD_REQUEST, why);
    return 1;
}

static void start(exchange_t *ex)
{
    assign_request_id(ex);
    ex->label = "unmatched";
    ex->label_metric = METRICS_ROUTE_UNMATCHED;
    if (refuse_ambiguous_head(ex))
        return;
    if (!ex->gen->cfg->has_admin_listen && admin_is_path(ex->url)) {
        if (!admin_is_probe(ex->url) && !authorized(ex)) { /* probes need no token */
            ex->label = "admin";
            ex->label_metric = METRICS_ROUTE_ADMIN;
            ex->challenge = 1;
            fail_simple(ex, GW_ERR_UNAUTHORIZED, "a valid bearer token is required");
            return;
        }
        answer_admin(ex);
        return;
    }
    if (ex->gw->stopping) {
        ex->close_after = 1;
        fail_simple(ex, GW_ERR_DRAINING, "the gateway is shutting down");
        return;
    }
    if (!authorized(ex)) {
        ex->challenge = 1;
        fail_simple(ex, GW_ERR_UNAUTHORIZED, "a valid bearer token is required");
        return;
    }
    if (!route_generic(ex))
        route_configured(ex);
    if (ex->state == EX_BODY)
        check_declared_length(ex);
}

/* ---- the body ------------------------------------------------------------ */

static void take_body(exchange_t *ex, const char *data, size_t n)
{
    if (ex->body_too_large)
        return;
    if (ex->body.len + n > ex->gen->cfg->limits.max_body_bytes) {
        ex->body_too_large = 1; /* the rest is read and dropped, never kept */
        buf_free(&ex->body);
        return;
    }
    if (buf_append(&ex->body, data, n))
        ex->body_too_large = 1;
}

/* ---- the upstream request ------------------------------------------------- */

/* Hands a suspended connection back to MHD, which calls the access handler
 * again before the loop sleeps. */
static void resume(exchange_t *ex)
{
    httpd_set_waiter(ex->conn, NULL);
    httpd_resume(ex->gw->httpd, ex->conn);
}

static void suspend(exchange_t *ex)
{
    MHD_suspend_connection(ex->conn);
    httpd_set_waiter(ex->conn, ex);
    ex->suspended = 1;
    ex->gw->suspended++;
}

/* MHD is handling the connection again (or dropping it). */
static void resumed(exchange_t *ex)
{
    if (ex->suspended) {
        ex->suspended = 0;
        ex->gw->suspended--;
    }
}

/* Leaves EX_WAITING: the request upstream is over or abandoned. */
static void stop_waiting(exchange_t *ex)
{
    ex->req = NULL;
    ex->gw->waiting--;
    list_remove(&ex->waiting_link);
}

/* ---- streamed replies ------------------------------------------------------ */

static void on_keepalive(timer_entry_t *e);

static void keepalive_rearm(exchange_t *ex)
{
    if (ex->reply == CONFIG_REPLY_SSE && !ex->stream_done)
        timers_start(&ex->gw->timers, &ex->keepalive, STREAM_KEEPALIVE_MS, on_keepalive);
}

/* New stream bytes are ready: wake the content reader if it sleeps. */
static void stream_wake(exchange_t *ex)
{
    if (ex->reader_waiting) {
        ex->reader_waiting = 0;
        resume(ex);
    }
}

static void on_keepalive(timer_entry_t *e)
{
    exchange_t *ex = (exchange_t *)((char *)e - offsetof(exchange_t, keepalive));
    stream_append_keepalive(&ex->out);
    keepalive_rearm(ex);
    stream_wake(ex);
}

/* Ends a started stream with an error line or event. */
static void stream_fail(exchange_t *ex, gw_error_t e, const char *message, span_t details)
{
    buf_t body = BUF_INIT;
    gw_error_body(&body, e, message, details);
    stream_append_error(&ex->out, ex->reply, span_of(body.data, body.len));
    buf_free(&body);
    ex->stream_done = 1;
    timers_stop(&ex->gw->timers, &ex->keepalive);
    stream_wake(ex);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max);

static void stream_start(exchange_t *ex)
{
    ex->stream_started = 1;
    ex->status = ex->ok_status;
    ex->state = EX_READY;
    keepalive_rearm(ex);
}

static void stream_value(exchange_t *ex, span_t value)
{
    if (ex->stream_done)
        return;
    uint64_t limit = ex->gen->cfg->limits.max_reply_bytes;
    if (ex->out.len - ex->out_pos > (STREAM_BUFFER_MAX < limit ? STREAM_BUFFER_MAX : limit)) {
        /* the client reads too slowly: stop the stream rather than buffer
         * without bound (the cancel takes effect when this callback returns) */
        up_cancel(ex->req);
        stop_waiting(ex);
        stream_fail(ex, GW_ERR_OVERLOADED, "the client reads the stream too slowly",
                    span_of(NULL, 0));
        return;
    }
    stream_append_value(&ex->out, ex->reply, value);
    keepalive_rearm(ex);
    if (!ex->stream_started) {
        stream_start(ex);
        resume(ex); /* the access handler queues the streamed response */
    } else {
        stream_wake(ex);
    }
}

/* A reply past limits.max_reply_bytes: the request is cancelled (the
 * service's later values are dropped as late replies) and answered 502. */
static void reply_too_large(exchange_t *ex)
{
    char why[160];
    snprintf(why, sizeof why, "the reply of service %s is larger than limits.max_reply_bytes (%llu bytes)",
             ex->gen->cfg->services[ex->service_index].name,
             (unsigned long long)ex->gen->cfg->limits.max_reply_bytes);
    up_cancel(ex->req); /* takes effect when this callback returns */
    stop_waiting(ex);
    buf_free(&ex->values);
    ex->nvalues = 0;
    if (ex->stream_started) {
        stream_fail(ex, GW_ERR_BAD_UPSTREAM_MESSAGE, why, span_of(NULL, 0));
        return;
    }
    fail_simple(ex, GW_ERR_BAD_UPSTREAM_MESSAGE, why);
    resume(ex);
}

static void on_value(void *ctx, span_t value)
{
    exchange_t *ex = ctx;
    uint64_t limit = ex->gen->cfg->limits.max_reply_bytes;
    if (ex->streaming) {
        if (value.n > limit)
            reply_too_large(ex);
        else
            stream_value(ex, value);
        return;
    }
    if (ex->values.len + value.n + 1 > limit) {
        reply_too_large(ex);
        return;
    }
    if (ex->nvalues++)
        buf_append(&ex->values, ",", 1);
    else
        (void)buf_reserve(&ex->values, value.n); /* exact for the usual single value */
    buf_append_span(&ex->values, value);
}

/* MHD's content reader for a streamed reply: hands out what is buffered;
 * when nothing is, suspends the connection until the next value (returning
 * 0 without suspending would make MHD spin). */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    exchange_t *ex = cls;
    resumed(ex);
    size_t avail = ex->out.len - ex->out_pos;
    if (avail) {
        size_t n = avail < max ? avail : max;
        memcpy(buf, ex->out.data + ex->out_pos, n);
        ex->out_pos += n;
        if (ex->out_pos == ex->out.len) {
            buf_clear(&ex->out);
            ex->out_pos = 0;
        }
        return (ssize_t)n;
    }
    if (ex->state == EX_GONE)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (ex->stream_done)
        return MHD_CONTENT_READER_END_OF_STREAM;
    ex->reader_waiting = 1;
    suspend(ex);
    return 0;
}

static void build_reply(exchange_t *ex)
{
    buf_t body = BUF_INIT;
    if (ex->is_emit) {
        set_response(ex, ex->ok_status, NULL);
        return;
    }
    if (ex->reply == CONFIG_REPLY_AUTO && ex->nvalues == 0) {
        set_response(ex, 204, NULL);
        return;
    }
    int as_array = ex->reply != CONFIG_REPLY_AUTO || ex->nvalues > 1;
    if (!as_array) { /* the one value is the body: swap buffers, copy nothing */
        buf_t old = ex->response;
        ex->response = ex->values;
        ex->values = old;
        buf_clear(&ex->values);
        ex->status = ex->ok_status;
        ex->json_body = 1;
        ex->state = EX_READY;
        return;
    }
    buf_append(&body, "[", 1);
    buf_append(&body, ex->values.data ? ex->values.data : "", ex->values.len);
    buf_append(&body, "]", 1);
    set_response(ex, ex->ok_status, &body);
}


static void stream_done(exchange_t *ex, up_outcome_t outcome, span_t err, const char *detail)
{
    if (outcome != UP_OK && !ex->stream_started) {
        fail(ex, gw_error_of_outcome(outcome), detail, err); /* before any value */
        resume(ex);
        return;
    }
    int first = !ex->stream_started;
    if (first)
        stream_start(ex); /* an empty stream: 200 with no value */
    if (outcome == UP_OK) {
        stream_append_end(&ex->out, ex->reply);
        ex->stream_done = 1;
        timers_stop(&ex->gw->timers, &ex->keepalive);
        if (first)
            resume(ex);
        else
            stream_wake(ex);
        return;
    }
    stream_fail(ex, gw_error_of_outcome(outcome), detail, err);
}

static void on_done(void *ctx, up_outcome_t outcome, span_t err, const char *detail)
{
    exchange_t *ex = ctx;
    gateway_t *gw = ex->gw;
    metrics_upstream_duration(gw->metrics, ex->gen->service_metric[ex->service_index],
                              uv_hrtime() - ex->upstream_started_ns);
    stop_waiting(ex);
    if (ex->streaming) {
        stream_done(ex, outcome, err, detail);
        return;
    }
    if (outcome == UP_OK)
        build_reply(ex);
    else
        fail(ex, gw_error_of_outcome(outcome), detail, err);
    resume(ex);
}

static const up_callbacks_t upstream_callbacks = { on_value, on_done };

/* Spare exchanges per gateway, and what each keeps of its buffers. */
#define EX_SPARE_MAX (PG_RECYCLE ? 128 : 0)
#define EX_SPARE_BUF_BYTES 4096

static void release_buffers(exchange_t *ex, size_t keep)
{
    buf_t *bufs[] = { &ex->body, &ex->values, &ex->query_value, &ex->metadata,
                      &ex->rendered, &ex->response, &ex->out };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        if (bufs[i]->cap > keep)
            buf_free(bufs[i]);
        buf_clear(bufs[i]);
    }
}

static void free_exchange(exchange_t *ex)
{
    gateway_t *gw = ex->gw;
    gw->exchanges--;
    timers_stop(&gw->timers, &ex->keepalive);
    generation_release(ex->gen);
    if (gw->n_spare_exchanges + 1 > EX_SPARE_MAX) {
        release_buffers(ex, 0);
        router_match_free(&ex->match);
        free(ex);
        return;
    }
    release_buffers(ex, EX_SPARE_BUF_BYTES);
    ex->next_spare = gw->spare_exchanges;
    gw->spare_exchanges = ex;
    gw->n_spare_exchanges++;
}

/* A zeroed exchange, from the free list (with its buffers) when it has one. */
static exchange_t *alloc_exchange(gateway_t *gw)
{
    exchange_t *ex = gw->spare_exchanges;
    if (!ex) {
        ex = calloc(1, sizeof *ex);
        if (ex)
            router_match_init(&ex->match);
        return ex;
    }
    gw->spare_exchanges = ex->next_spare;
    gw->n_spare_exchanges--;
    exchange_t kept = *ex;
    memset(ex, 0, sizeof *ex);
    ex->body = kept.body;
    ex->values = kept.values;
    ex->query_value = kept.query_value;
    ex->metadata = kept.metadata;
    ex->rendered = kept.rendered;
    ex->response = kept.response;
    ex->out = kept.out;
    ex->match = kept.match; /* router_match() resets it */
    return ex;
}

void exchange_free_spares(gateway_t *gw)
{
    while (gw->spare_exchanges) {
        exchange_t *ex = gw->spare_exchanges;
        gw->spare_exchanges = ex->next_spare;
        release_buffers(ex, 0);
        router_match_free(&ex->match);
        free(ex);
    }
    gw->n_spare_exchanges = 0;
}

/* The client hung up while its request waited (httpd's watch): cancel it
 * upstream and let MHD close the connection. */
void exchange_on_hangup(void *ctx, void *waiter)
{
    (void)ctx;
    exchange_t *ex = waiter;
    if (ex->req) {
        up_cancel(ex->req);
        stop_waiting(ex);
    }
    timers_stop(&ex->gw->timers, &ex->keepalive);
    if (ex->state == EX_WAITING)
        ex->status = 499; /* for the access log: client closed the request */
    else if (!ex->reader_waiting)
        return;
    ex->reader_waiting = 0;
    ex->state = EX_GONE;
    httpd_resume(ex->gw->httpd, ex->conn);
}

/* render's header lookup: libmicrohttpd matches names case-insensitively. */
static render_lookup_result lookup_header(void *ctx, const char *name, size_t len, span_t *value)
{
    exchange_t *ex = ctx;
    char key[256];
    if (len >= sizeof key)
        return RENDER_LOOKUP_ABSENT;
    memcpy(key, name, len);
    key[len] = 0;
    const char *v = MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, key);
    if (!v)
        return RENDER_LOOKUP_ABSENT;
    *value = span_cstr(v);
    return RENDER_LOOKUP_FOUND;
}

/* render's query lookup over libmicrohttpd's parsed arguments, which it
 * leaves percent-encoded (see httpd.c); the first with the name wins. */
typedef struct query_search {
    const char *name;
    size_t len;
    buf_t *decoded;
    render_lookup_result result;
    span_t value;
} query_search_t;

static enum MHD_Result query_pair(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    query_search_t *q = cls;
    buf_clear(q->decoded);
    if (urlcode_decode_buf(key, strlen(key), URLCODE_QUERY, q->decoded) != URLCODE_OK ||
        !span_eq(span_of(q->decoded->data, q->decoded->len), span_of(q->name, q->len)))
        return MHD_YES;
    buf_clear(q->decoded);
    int rc = value ? urlcode_decode_buf(value, strlen(value), URLCODE_QUERY, q->decoded) : URLCODE_OK;
    q->result = rc == URLCODE_OK ? RENDER_LOOKUP_FOUND : RENDER_LOOKUP_BAD;
    q->value = span_of(q->decoded->data ? q->decoded->data : "", q->decoded->len);
    return MHD_NO;
}

static render_lookup_result lookup_query(void *ctx, const char *name, size_t len, span_t *value)
{
    exchange_t *ex = ctx;
    query_search_t q = { name, len, &ex->query_value, RENDER_LOOKUP_ABSENT, { NULL, 0 } };
    MHD_get_connection_values(ex->conn, MHD_GET_ARGUMENT_KIND, query_pair, &q);
    *value = q.value;
    return q.result;
}

/*
 * The packet data of a configured route, rendered from its template into
 * *rendered, or (the whole body as data) pointing into the body itself.
 */
static int render_data(exchange_t *ex, buf_t *rendered, span_t *data, char *why, size_t whylen)
{
    const template *t = &ex->route->data;
    span_t body = span_of(ex->body.data, ex->body.len);
    if (t->uses_body && render_check_body(body, why, whylen))
        return -1;
    if (render_whole_body(t, body, data))
        return 0; /* forwarded as received: no copy */
    render_input_t in = {
        .body = span_of(ex->body.data, ex->body.len),
        .captures = ex->match.captures,
        .capture_count = ex->match.capture_count,
        .query = lookup_query,
        .query_context = ex,
        .header = lookup_header,
        .header_context = ex,
    };
    if (render_template(t, &in, rendered, why, whylen))
        return -1;
    *data = span_of(rendered->data, rendered->len);
    return 0;
}

static void dispatch(exchange_t *ex)
{
    gateway_t *gw = ex->gw;
    char why[256];
    if (ex->body_too_large) {
        fail_simple(ex, GW_ERR_PAYLOAD_TOO_LARGE, "the body is larger than max_body_bytes");
        return;
    }
    buf_t *rendered = &ex->rendered;
    buf_clear(rendered);
    span_t pattern, data;
    if (ex->route) {
        pattern = span_of(ex->route->pattern_json, ex->route->pattern_length);
        if (render_data(ex, rendered, &data, why, sizeof why)) {
            fail_simple(ex, GW_ERR_BAD_REQUEST, why);
            return;
        }
    } else if (generic_parse_body(span_of(ex->body.data, ex->body.len), &pattern, &data, why, sizeof why)) {
        fail_simple(ex, GW_ERR_BAD_REQUEST, why);
        return;
    }
    if (gw->waiting >= ex->gen->cfg->limits.max_inflight) {
        ex->retry_after = 1;
        fail_simple(ex, GW_ERR_OVERLOADED, "too many requests in flight (max_inflight)");
        return;
    }
    buf_t *metadata = &ex->metadata;
    buf_clear(metadata);
    if (ex->gen->cfg->services[ex->service_index].metadata)
        build_metadata(ex, metadata);
    up_service_t *svc = ex->gen->services[ex->service_index];
    span_t meta = span_of(metadata->data, metadata->len);
    uint32_t timeout = (uint32_t)ex->timeout_ms;
    ex->streaming = !ex->is_emit && (ex->reply == CONFIG_REPLY_NDJSON || ex->reply == CONFIG_REPLY_SSE);
    ex->upstream_started_ns = uv_hrtime();
    if (ex->is_emit)
        ex->req = up_emit(svc, pattern, data, meta, timeout, &upstream_callbacks, ex);
    else if (ex->streaming)
        ex->req = up_stream(svc, pattern, data, meta, timeout, &upstream_callbacks, ex);
    else
        ex->req = up_send(svc, pattern, data, meta, timeout, &upstream_callbacks, ex);
    if (!ex->req) {
        fail_simple(ex, GW_ERR_OVERLOADED, "out of memory");
        return;
    }
    gw->waiting++;
    list_push_back(&gw->waiting_list, &ex->waiting_link);
    ex->state = EX_WAITING;
    suspend(ex);
}

/* ---- libmicrohttpd's callbacks ---------------------------------------------- */

enum MHD_Result exchange_on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                    const char *method, const char *version, const char *upload_data,
                                    size_t *upload_data_size, void **con_cls)
{
    exchange_t *ex = *con_cls;
    if (!ex) {
        gateway_t *gw = cls;
        ex = alloc_exchange(gw);
        if (!ex)
            return MHD_NO;
        list_init(&ex->waiting_link);
        timer_entry_init(&ex->keepalive);
        *con_cls = ex;
        gw->exchanges++;
        ex->gw = gw;
        ex->gen = generation_ref(gw->gen);
        ex->conn = connection;
        ex->method = method;
        ex->url = url;
        ex->version = version;
        ex->started_ns = uv_hrtime();
        start(ex);
        return ex->state == EX_READY ? send_response(ex) : MHD_YES;
    }
    resumed(ex);
    switch (ex->state) {
    case EX_BODY:
        if (*upload_data_size) {
            take_body(ex, upload_data, *upload_data_size);
            *upload_data_size = 0;
            return MHD_YES;
        }
        dispatch(ex);
        return ex->state == EX_READY ? send_response(ex) : MHD_YES;
    case EX_READY:
        return send_response(ex);
    case EX_GONE:
        return MHD_NO;
    default:
        if (*upload_data_size) /* a body after an early answer: dropped */
            *upload_data_size = 0;
        return MHD_YES;
    }
}

/* The request is over: its metrics and access line. */
static void account(exchange_t *ex)
{
    gateway_t *gw = ex->gw;
    uint64_t took = uv_hrtime() - ex->started_ns;
    metrics_http(gw->metrics, ex->label_metric, ex->method, ex->status, took);
    int has_service = ex->label_metric != METRICS_ROUTE_UNMATCHED && ex->label_metric != METRICS_ROUTE_ADMIN;
    gateway_access_log(gw, &(access_entry_t){
                               .method = ex->method,
                               .path = ex->url,
                               .route = ex->label,
                               .status = ex->status,
                               .duration_ns = took,
                               .request_id = ex->request_id,
                               .service = has_service ? ex->gen->cfg->services[ex->service_index].name : NULL,
                               .bytes = ex->response_bytes,
                               .request_bytes = ex->body.len,
                           });
}

void exchange_on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)connection;
    exchange_t *ex = *con_cls;
    if (!ex)
        return;
    *con_cls = NULL;
    if (ex->req) { /* the daemon is stopping under a waiting request */
        up_cancel(ex->req);
        stop_waiting(ex);
    }
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && ex->state != EX_SENT)
        ex->status = 499; /* the client left before its answer (nginx's code) */
    account(ex);
    resumed(ex);
    free_exchange(ex);
}

void exchange_abort_waiting(gateway_t *gw)
{
    list_node_t *node;
    while ((node = list_first(&gw->waiting_list)) != NULL) {
        exchange_t *ex = LIST_OWNER(node, exchange_t, waiting_link);
        up_cancel(ex->req);
        stop_waiting(ex);
        if (ex->stream_started) {
            stream_fail(ex, GW_ERR_DRAINING, "the gateway shut down before the stream ended",
                        span_of(NULL, 0));
            continue;
        }
        ex->close_after = 1;
        fail_simple(ex, GW_ERR_DRAINING, "the gateway shut down before the reply came");
        resume(ex);
    }
}

void exchange_on_refused(void *ctx, gw_error_t kind, const char *message, buf_t *wire)
{
    unsigned status = (unsigned)gw_error_status(kind);
    gateway_t *gw = ctx;
    char id[40];
    new_request_id(gw, id, sizeof id);
    buf_t body = BUF_INIT;
    gw_error_body(&body, kind, message, span_of(NULL, 0));
    const char *reason = MHD_get_reason_phrase_for(status);
    char date[64], head[320];
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &utc);
    snprintf(head, sizeof head,
             "HTTP/1.1 %u %s\r\nDate: %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
             "X-Request-Id: %s\r\nContent-Length: %zu\r\n\r\n",
             status, reason ? reason : "", date, id, body.len);
    buf_append_cstr(wire, head);
    buf_append(wire, body.data ? body.data : "", body.len);
    buf_free(&body);
    metrics_http(gw->metrics, METRICS_ROUTE_UNMATCHED, "", status, 0);
    gateway_access_log(gw, &(access_entry_t){ .method = "", .path = "", .route = "unmatched",
                                              .status = status, .request_id = id,
                                              .bytes = wire->len });
}
