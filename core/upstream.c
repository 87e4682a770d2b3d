/*
 * upstream: services, their endpoints and the life of a request (waiting for
 * a connection, written, completed). Connections themselves are in conn.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/defaults.h"
#include "core/hostport.h"
#include "core/message.h"
#include "core/upstream_internal.h"

static const char *const outcome_names[UP_OUTCOME_COUNT] = {
    [UP_OK] = "ok", [UP_ERROR] = "error", [UP_TIMEOUT] = "timeout",
    [UP_UNAVAILABLE] = "unavailable", [UP_CLOSED] = "closed",
    [UP_BAD_MESSAGE] = "bad_message", [UP_NO_HANDLER] = "no_handler",
    [UP_OVERLOADED] = "overloaded", [UP_CANCELLED] = "cancelled",
};

const char *up_outcome_name(up_outcome_t outcome)
{
    return outcome < UP_OUTCOME_COUNT ? outcome_names[outcome] : "unknown";
}

const char *up_conn_state_name(up_conn_state_t state)
{
    static const char *const names[UP_CONN_STATE_COUNT] = { "disconnected", "connecting", "connected" };
    return state < UP_CONN_STATE_COUNT ? names[state] : "unknown";
}

void up_service_opts_defaults(up_service_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->pool_size = PG_DEFAULT_POOL_SIZE;
    o->connect = UP_CONNECT_EAGER;
    o->connect_timeout_ms = PG_DEFAULT_CONNECT_TIMEOUT_MS;
    o->timeout_ms = PG_DEFAULT_TIMEOUT_MS;
    o->retry_attempts = PG_DEFAULT_RETRY_ATTEMPTS;
    o->retry_delay_ms = PG_DEFAULT_RETRY_DELAY_MS;
    o->max_message_bytes = PG_DEFAULT_MAX_MESSAGE_BYTES;
    o->incomplete_frame_timeout_ms = PG_DEFAULT_INCOMPLETE_FRAME_TIMEOUT_MS;
    o->metadata = PG_DEFAULT_METADATA;
}

uint64_t up_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- completing requests ------------------------------------------------ */

/*
 * Finished requests go to a short free list instead of free(): a busy
 * gateway would otherwise allocate and free one per request.
 */
static void req_free(up_request_t *req)
{
    upstream_t *up = req->svc->up;
    if (up->n_spare + 1 > UP_SPARE_REQUESTS || up->closing) {
        buf_free(&req->frame);
        free(req);
        return;
    }
    if (req->frame.cap > UP_SPARE_FRAME_BYTES)
        buf_free(&req->frame);
    req->next_spare = up->spare;
    up->spare = req;
    up->n_spare++;
}

/* A zeroed request, from the free list when it has one. */
static up_request_t *req_alloc(upstream_t *up)
{
    up_request_t *req = up->spare;
    if (!req)
        return calloc(1, sizeof *req);
    up->spare = req->next_spare;
    up->n_spare--;
    buf_t frame = req->frame; /* kept: its capacity is the point */
    memset(req, 0, sizeof *req);
    req->frame = frame;
    buf_clear(&req->frame);
    return req;
}

static void free_spare_requests(upstream_t *up)
{
    while (up->spare) {
        up_request_t *req = up->spare;
        up->spare = req->next_spare;
        buf_free(&req->frame);
        free(req);
    }
    up->n_spare = 0;
}

/* Unlinks a request from wherever it is and from the accounting. */
static void req_detach(up_request_t *req)
{
    upstream_t *up = req->svc->up;
    timers_stop(&up->timers, &req->timer);
    if (list_linked(&req->link))
        list_remove(&req->link);
    if (req->phase == REQ_WRITTEN && !req->is_event)
        idmap_del(&up->requests, req->id);
    if (req->conn) {
        req->conn->inflight--;
        req->conn = NULL;
    }
}

static void count_outcome(up_request_t *req, up_outcome_t outcome)
{
    up_service_stats_t *st = req->svc->stats;
    up_count(&st->outcomes[req->is_event][outcome], 1);
    up_count(&st->inflight, -1);
    req->svc->up->inflight--;
}

void req_finish(up_request_t *req, up_outcome_t outcome, span_t err, const char *detail)
{
    upstream_t *up = req->svc->up;
    req_detach(req);
    count_outcome(req, outcome);
    up->in_callback = req;
    req->cb.on_done(req->ctx, outcome, err, detail);
    up->in_callback = NULL;
    req_free(req);
}

/* For outcomes decided inside up_send/up_emit: the callback runs from the
 * next loop iteration, never from inside the call that started the request. */
static void req_finish_later(up_request_t *req, up_outcome_t outcome, const char *detail)
{
    upstream_t *up = req->svc->up;
    req_detach(req);
    req->phase = REQ_FINISHING;
    req->outcome = outcome;
    req->detail = detail;
    list_push_back(&up->finished, &req->link);
    upstream_schedule(up);
}

static void run_finished(upstream_t *up)
{
    list_node_t *node;
    while ((node = list_first(&up->finished)) != NULL) {
        up_request_t *req = LIST_OWNER(node, up_request_t, link);
        list_remove(node);
        req->phase = REQ_WAITING; /* detached: nothing left to unlink */
        req_finish(req, req->outcome, span_of(NULL, 0), req->detail);
    }
}

void up_cancel(up_request_t *req)
{
    upstream_t *up = req->svc->up;
    if (req == up->in_callback) {
        req->cancelled = 1; /* the dispatcher frees it when the callback returns */
        return;
    }
    req_detach(req);
    count_outcome(req, UP_CANCELLED);
    req_free(req);
}

/* ---- choosing a connection ---------------------------------------------- */

static size_t conn_count(const up_service_t *svc)
{
    return svc->opts.n_endpoints * svc->opts.pool_size;
}

static up_conn_t *conn_at(up_service_t *svc, size_t i)
{
    return &svc->endpoints[i / svc->opts.pool_size].conns[i % svc->opts.pool_size];
}

static void drain_waiting(up_service_t *svc);

/* A connection that takes no more requests until it catches up. */
static int conn_saturated(const up_conn_t *c)
{
    return c->inflight >= PG_CONN_MAX_PENDING || conn_unwritten(c) >= PG_CONN_MAX_UNWRITTEN;
}

/* The connected connection with the fewest requests in flight, leaving out
 * ejected endpoints and saturated connections; the scan starts at a
 * rotating place so equal ones take turns. *saturated tells whether a
 * connected one was left out for being full. */
static up_conn_t *pick_conn(up_service_t *svc, int *saturated)
{
    size_t n = conn_count(svc);
    up_conn_t *best = NULL;
    size_t start = svc->next_pick++ % n;
    int full = 0;
    for (size_t k = 0; k < n; k++) {
        up_conn_t *c = conn_at(svc, (start + k) % n);
        if (c->state != UP_CONN_CONNECTED || ep_ejected(c->endpoint))
            continue;
        if (conn_saturated(c)) {
            full = 1;
            continue;
        }
        if (!best || c->inflight < best->inflight)
            best = c;
    }
    if (saturated)
        *saturated = full;
    return best;
}

/* ---- outlier ejection ---------------------------------------------------- */

int ep_ejected(const up_endpoint_t *ep) { return ep->ejected_until != 0; }

/* The endpoint's bit in stats->ejected, for scrapes on other threads. */
static void publish_ejected(up_endpoint_t *ep, int ejected)
{
    up_service_t *svc = ep->svc;
    size_t index = (size_t)(ep - svc->endpoints);
    if (index >= 64)
        return;
    uint64_t mask = up_read(&svc->stats->ejected), bit = 1ull << index;
    atomic_store_explicit(&svc->stats->ejected, ejected ? mask | bit : mask & ~bit, memory_order_relaxed);
}

static void on_eject_over(timer_entry_t *e)
{
    up_endpoint_t *ep = LIST_OWNER(e, up_endpoint_t, eject_timer);
    up_service_t *svc = ep->svc;
    ep->ejected_until = 0;
    ep->ejected_until_wall = 0;
    publish_ejected(ep, 0);
    if (!svc->active)
        return;
    for (unsigned k = 0; k < svc->opts.pool_size; k++)
        if (ep->conns[k].state == UP_CONN_DISCONNECTED)
            conn_start(&ep->conns[k]);
    drain_waiting(svc);
}

static void maybe_eject(up_endpoint_t *ep, const char *why)
{
    up_service_t *svc = ep->svc;
    upstream_t *up = svc->up;
    if (ep_ejected(ep) || up->closing)
        return;
    int others = 0;
    for (size_t i = 0; i < svc->opts.n_endpoints; i++)
        others += &svc->endpoints[i] != ep && !ep_ejected(&svc->endpoints[i]);
    if (others == 0)
        return; /* never the last one */
    unsigned shift = ep->ejections < 5 ? ep->ejections : 5;
    uint64_t ms = (uint64_t)PG_EJECT_BASE_MS << shift;
    if (ms > PG_EJECT_MAX_MS)
        ms = PG_EJECT_MAX_MS;
    ep->ejections++;
    ep->connect_failures = ep->protocol_errors = 0;
    ep->ejected_until = uv_now(up->loop) + ms;
    ep->ejected_until_wall = up_wall_ms() + ms;
    publish_ejected(ep, 1);
    timers_start(&up->timers, &ep->eject_timer, ms, on_eject_over);
    for (unsigned k = 0; k < svc->opts.pool_size; k++)
        timers_stop(&up->timers, &ep->conns[k].reconnect_timer);
    if (up->on_event) {
        up_event_t ev = { .type = UP_EV_EJECTED, .service = svc->opts.name, .endpoint = ep->address,
                          .detail = why, .ejected_ms = ms };
        up->on_event(up->event_ctx, &ev);
    }
}

void ep_connect_failed(up_endpoint_t *ep)
{
    if (++ep->connect_failures >= PG_EJECT_AFTER)
        maybe_eject(ep, "consecutive connect failures");
}

void ep_connected(up_endpoint_t *ep)
{
    ep->connect_failures = 0;
}

void ep_protocol_error(up_endpoint_t *ep)
{
    if (++ep->protocol_errors >= PG_EJECT_AFTER)
        maybe_eject(ep, "consecutive protocol errors");
}

static int any_connecting(up_service_t *svc)
{
    for (size_t i = 0; i < conn_count(svc); i++)
        if (conn_at(svc, i)->state == UP_CONN_CONNECTING)
            return 1;
    return 0;
}

/* Starts one connection attempt, skipping its backoff; a lazy pool's first
 * use starts all of its connections. 1 when an attempt is under way. */
static int start_attempt(up_service_t *svc)
{
    if (!svc->active) {
        svc->active = 1;
        for (size_t i = 0; i < conn_count(svc); i++)
            conn_start(conn_at(svc, i));
        return any_connecting(svc);
    }
    if (any_connecting(svc))
        return 1;
    for (size_t i = 0; i < conn_count(svc); i++) {
        up_conn_t *c = conn_at(svc, i);
        if (c->state == UP_CONN_DISCONNECTED && !ep_ejected(c->endpoint) && conn_start(c) == 0 &&
            c->state == UP_CONN_CONNECTING)
            return 1;
    }
    return 0;
}

/* ---- writing a request -------------------------------------------------- */

static int write_on(up_conn_t *conn, up_request_t *req, span_t pattern, span_t data, span_t metadata)
{
    upstream_t *up = conn->endpoint->svc->up;
    int rc = conn_write_request(conn, req, pattern, data, metadata);
    if (rc)
        return rc;
    if (!req->is_event && (rc = idmap_put(&up->requests, req->id, req)) != 0)
        return rc;
    if (list_linked(&req->link))
        list_remove(&req->link);
    list_push_back(req->is_event ? &conn->emits : &conn->pending, &req->link);
    req->phase = REQ_WRITTEN;
    req->conn = conn;
    req->written_to = conn->endpoint->address;
    conn->inflight++;
    conn->requests++;
    return 0;
}

static void on_request_timeout(timer_entry_t *e)
{
    up_request_t *req = LIST_OWNER(e, up_request_t, timer);
    if (req->phase == REQ_WAITING)
        req_finish(req, UP_UNAVAILABLE, span_of(NULL, 0), "no connection to the service within the timeout");
    else
        req_finish(req, UP_TIMEOUT, span_of(NULL, 0), "no complete reply within the timeout");
}

/* Moves waiting requests onto connected connections, oldest first. */
static void drain_waiting(up_service_t *svc)
{
    list_node_t *node;
    up_conn_t *conn;
    while ((node = list_first(&svc->waiting)) != NULL && (conn = pick_conn(svc, NULL)) != NULL) {
        up_request_t *req = LIST_OWNER(node, up_request_t, link);
        if (write_on(conn, req, span_of(NULL, 0), span_of(NULL, 0), span_of(NULL, 0)))
            req_finish(req, UP_OVERLOADED, span_of(NULL, 0), "out of memory");
    }
}

void svc_conn_up(up_service_t *svc)
{
    timers_stop(&svc->up->timers, &svc->retry_timer);
    drain_waiting(svc);
}

static void on_retry_timer(timer_entry_t *e)
{
    up_service_t *svc = LIST_OWNER(e, up_service_t, retry_timer);
    if (!list_empty(&svc->waiting) && !start_attempt(svc))
        svc_conn_failed(svc, "no connection attempt could be started");
}

/* An attempt failed: requests whose wait is over fail; the others wait for
 * another attempt after retry_delay_ms. */
void svc_conn_failed(up_service_t *svc, const char *detail)
{
    upstream_t *up = svc->up;
    if (any_connecting(svc))
        return; /* another attempt may still succeed */
    uint64_t now = uv_now(up->loop);
    list_node_t doomed, *node;
    list_init(&doomed);
    for (node = svc->waiting.next; node != &svc->waiting;) {
        list_node_t *next = node->next;
        if (LIST_OWNER(node, up_request_t, link)->wait_until <= now) {
            list_remove(node);
            list_push_back(&doomed, node);
        }
        node = next;
    }
    char why[200];
    snprintf(why, sizeof why, "no connection to the service: %s", detail);
    while ((node = list_first(&doomed)) != NULL)
        req_finish(LIST_OWNER(node, up_request_t, link), UP_UNAVAILABLE, span_of(NULL, 0), why);
    if (!list_empty(&svc->waiting))
        timers_start(&up->timers, &svc->retry_timer, svc->opts.retry_delay_ms, on_retry_timer);
}

/* Whether at least `n` requests wait for a connection (only counted on the
 * path where a request has to wait itself). */
static int waiting_at_least(const up_service_t *svc, size_t n)
{
    size_t count = 0;
    for (const list_node_t *node = svc->waiting.next; node != &svc->waiting && count < n; node = node->next)
        count++;
    return count >= n;
}

typedef enum submit_kind { SUBMIT_SEND, SUBMIT_STREAM, SUBMIT_EMIT } submit_kind_t;

static up_request_t *submit(up_service_t *svc, submit_kind_t kind, span_t pattern, span_t data,
                            span_t metadata, uint32_t timeout_ms, const up_callbacks_t *cb, void *ctx)
{
    int is_event = kind == SUBMIT_EMIT;
    upstream_t *up = svc->up;
    up_request_t *req = req_alloc(up);
    if (!req)
        return NULL;
    list_init(&req->link);
    timer_entry_init(&req->timer);
    req->svc = svc;
    req->is_event = is_event;
    req->per_value_timeout = kind == SUBMIT_STREAM;
    req->timeout_ms = timeout_ms ? timeout_ms : svc->opts.timeout_ms;
    req->id = up->next_id++;
    req->cb = *cb;
    req->ctx = ctx;
    req->phase = REQ_WAITING;
    up_count(&svc->stats->inflight, 1);
    up->inflight++;
    if (!svc->opts.metadata)
        metadata = span_of(NULL, 0);
    timers_start(&up->timers, &req->timer, req->timeout_ms, on_request_timeout);

    int saturated = 0;
    up_conn_t *conn = pick_conn(svc, &saturated);
    if (conn) {
        if (write_on(conn, req, pattern, data, metadata))
            req_finish_later(req, UP_OVERLOADED, "out of memory");
        return req;
    }
    if (saturated) { /* connected, but every connection is full */
        req_finish_later(req, UP_OVERLOADED, "every connection to the service is full (requests in flight or "
                                             "bytes not yet written)");
        return req;
    }
    if (waiting_at_least(svc, PG_SERVICE_MAX_WAITING)) {
        req_finish_later(req, UP_OVERLOADED, "too many requests are waiting for a connection to the service");
        return req;
    }
    /* No connection: keep the packet and wait for one (SPEC.md, Services). */
    char idtext[MSG_ID_MAX];
    int rc = is_event ? msg_encode_event(&req->frame, pattern, data, metadata)
                      : msg_encode_request(&req->frame, pattern, data, msg_format_id(req->id, idtext), metadata);
    if (rc) {
        req_finish_later(req, UP_OVERLOADED, "out of memory");
        return req;
    }
    req->wait_until = uv_now(up->loop) + (uint64_t)svc->opts.retry_attempts * svc->opts.retry_delay_ms;
    /* Queued only after the attempt starts: an attempt that fails at once
     * must not run this request's callback from inside this call. */
    int attempting = start_attempt(svc);
    list_push_back(&svc->waiting, &req->link);
    if (!attempting && svc->opts.retry_attempts == 0)
        req_finish_later(req, UP_UNAVAILABLE, "no connection to the service");
    else if (!attempting)
        timers_start(&up->timers, &svc->retry_timer, svc->opts.retry_delay_ms, on_retry_timer);
    return req;
}

up_request_t *up_send(up_service_t *svc, span_t pattern, span_t data, span_t metadata,
                      uint32_t timeout_ms, const up_callbacks_t *cb, void *ctx)
{
    return submit(svc, SUBMIT_SEND, pattern, data, metadata, timeout_ms, cb, ctx);
}

up_request_t *up_stream(up_service_t *svc, span_t pattern, span_t data, span_t metadata,
                        uint32_t timeout_ms, const up_callbacks_t *cb, void *ctx)
{
    return submit(svc, SUBMIT_STREAM, pattern, data, metadata, timeout_ms, cb, ctx);
}

up_request_t *up_emit(up_service_t *svc, span_t pattern, span_t data, span_t metadata,
                      uint32_t timeout_ms, const up_callbacks_t *cb, void *ctx)
{
    return submit(svc, SUBMIT_EMIT, pattern, data, metadata, timeout_ms, cb, ctx);
}

/* ---- replies ------------------------------------------------------------ */

static void deliver_value(up_request_t *req, span_t value)
{
    upstream_t *up = req->svc->up;
    up->in_callback = req;
    req->cb.on_value(req->ctx, value);
    up->in_callback = NULL;
}

void svc_reply(up_conn_t *conn, span_t message)
{
    up_service_t *svc = conn->endpoint->svc;
    msg_reply_t reply;
    char why[160];
    if (msg_read_reply(message, &reply, why, sizeof why)) {
        conn_down(conn, UP_BAD_MESSAGE, why);
        return;
    }
    conn->endpoint->protocol_errors = 0;
    uint64_t id;
    up_request_t *req = NULL;
    if (msg_parse_id(reply.id, &id))
        req = idmap_get(&svc->up->requests, id);
    if (!req || req->conn != conn) {
        up_count(&svc->stats->late_replies, 1);
        return;
    }
    switch (reply.kind) {
    case MSG_REPLY_VALUE:
    case MSG_REPLY_LAST_VALUE:
        if (req->per_value_timeout && reply.kind == MSG_REPLY_VALUE)
            timers_start(&svc->up->timers, &req->timer, req->timeout_ms, on_request_timeout);
        deliver_value(req, reply.value);
        if (req->cancelled) {
            req->cancelled = 0;
            up_cancel(req);
            return;
        }
        if (reply.kind == MSG_REPLY_LAST_VALUE)
            req_finish(req, UP_OK, span_of(NULL, 0), NULL);
        return;
    case MSG_REPLY_DONE:
        req_finish(req, UP_OK, span_of(NULL, 0), NULL);
        return;
    case MSG_REPLY_ERROR:
        req_finish(req, UP_ERROR, reply.value, "the service replied with an error");
        return;
    case MSG_REPLY_NO_HANDLER:
        req_finish(req, UP_NO_HANDLER, reply.value, "the service has no handler for the pattern");
        return;
    }
}

/* ---- the upstream and its services -------------------------------------- */

/* Work queued during a loop iteration (writes, completions decided inside
 * up_send) runs in the next one. An idle handle rather than a prepare: an
 * active idle handle also keeps the loop from sleeping, whereas a prepare
 * started from another prepare callback would wait for the next wake-up. */
static void on_pending(uv_idle_t *h)
{
    upstream_t *up = h->data;
    run_finished(up);
    conn_flush_all(up);
    if (list_empty(&up->finished) && list_empty(&up->flush))
        uv_idle_stop(h);
}

void upstream_schedule(upstream_t *up)
{
    if (!up->closing && !uv_is_active((uv_handle_t *)&up->pending))
        uv_idle_start(&up->pending, on_pending);
}

upstream_t *upstream_new(uv_loop_t *loop)
{
    upstream_t *up = calloc(1, sizeof *up);
    if (!up)
        return NULL;
    up->loop = loop;
    up->next_id = 1;
    up->rng = (uint64_t)up_wall_ms() * 2654435761u | 1;
    idmap_init(&up->requests);
    list_init(&up->flush);
    list_init(&up->finished);
    if (timers_init(&up->timers, loop)) {
        free(up);
        return NULL;
    }
    uv_idle_init(loop, &up->pending);
    up->pending.data = up;
    up->open_handles = 2;
    return up;
}

static int parse_endpoint(const char *address, up_endpoint_t *ep, char *err, size_t errlen)
{
    hostport hp;
    const char *why = hostport_parse(address, 0, &hp);
    if (why) {
        snprintf(err, errlen, "endpoint %s: expected \"host:port\" (%s)", address, why);
        return -1;
    }
    ep->host = strdup(hp.host);
    ep->address = strdup(address);
    snprintf(ep->port, sizeof ep->port, "%u", (unsigned)hp.port);
    return ep->host && ep->address ? 0 : -1;
}

static void service_free(up_service_t *svc)
{
    for (size_t i = 0; svc->endpoints && i < svc->opts.n_endpoints; i++) {
        for (unsigned k = 0; svc->endpoints[i].conns_ready && k < svc->opts.pool_size; k++)
            up_count(&svc->stats->conns[svc->endpoints[i].conns[k].state], -1);
        free(svc->endpoints[i].address);
        free(svc->endpoints[i].host);
        free(svc->endpoints[i].conns);
        tls_session_free(svc->endpoints[i].tls_session);
    }
    free(svc->endpoints);
    tls_ctx_free(svc->tls);
    free(svc->servername);
    free((char *)svc->opts.name);
    free(svc);
}

up_service_t *up_service_add(upstream_t *up, const up_service_opts_t *opts, char *err, size_t errlen)
{
    if (opts->n_endpoints == 0 || opts->pool_size == 0) {
        snprintf(err, errlen, "a service needs at least one endpoint and connection");
        return NULL;
    }
    up_service_t *svc = calloc(1, sizeof *svc);
    up_service_t **grown = realloc(up->services, (up->n_services + 1) * sizeof *grown);
    if (!svc || !grown) {
        free(svc);
        if (grown)
            up->services = grown;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    up->services = grown;
    svc->up = up;
    svc->opts = *opts;
    svc->opts.name = strdup(opts->name ? opts->name : "");
    svc->opts.endpoints = NULL; /* the endpoints array below holds them */
    svc->opts.tls = NULL;       /* svc->tls below holds what it says */
    svc->stats = opts->stats ? opts->stats : &svc->own_stats;
    svc->opts.stats = NULL;
    svc->opts.servername = NULL;
    if (opts->tls) {
        tls_field_t field;
        char why[200];
        svc->tls = tls_ctx_new(opts->tls, &field, why, sizeof why);
        svc->servername = opts->servername ? strdup(opts->servername) : NULL;
        if (!svc->tls || (opts->servername && !svc->servername)) {
            if (!svc->tls)
                snprintf(err, errlen, "tls%s%s: %s", field ? "." : "", tls_field_name(field), why);
            else
                snprintf(err, errlen, "out of memory");
            service_free(svc);
            return NULL;
        }
    }
    list_init(&svc->waiting);
    timer_entry_init(&svc->retry_timer);
    svc->endpoints = calloc(opts->n_endpoints, sizeof *svc->endpoints);
    for (size_t i = 0; svc->endpoints && i < opts->n_endpoints; i++) {
        up_endpoint_t *ep = &svc->endpoints[i];
        ep->svc = svc;
        timer_entry_init(&ep->eject_timer);
        ep->conns = calloc(opts->pool_size, sizeof *ep->conns);
        if (!ep->conns || parse_endpoint(opts->endpoints[i], ep, err, errlen)) {
            service_free(svc);
            return NULL;
        }
        for (unsigned k = 0; k < opts->pool_size; k++)
            conn_init(&ep->conns[k], ep);
        ep->conns_ready = 1;
    }
    if (!svc->endpoints) {
        service_free(svc);
        return NULL;
    }
    up->services[up->n_services++] = svc;
    if (opts->connect == UP_CONNECT_EAGER) {
        svc->active = 1;
        for (size_t i = 0; i < conn_count(svc); i++)
            conn_start(conn_at(svc, i));
    }
    return svc;
}

void up_service_remove(up_service_t *svc, const char *why)
{
    upstream_t *up = svc->up;
    svc->active = 0; /* no reconnects */
    timers_stop(&up->timers, &svc->retry_timer);
    list_node_t *node;
    while ((node = list_first(&svc->waiting)) != NULL)
        req_finish(LIST_OWNER(node, up_request_t, link), UP_UNAVAILABLE, span_of(NULL, 0), why);
    for (size_t k = 0; k < conn_count(svc); k++) {
        up_conn_t *c = conn_at(svc, k);
        conn_down(c, UP_CLOSED, why);
        timers_stop(&up->timers, &c->reconnect_timer);
    }
    for (size_t i = 0; i < svc->opts.n_endpoints; i++)
        timers_stop(&up->timers, &svc->endpoints[i].eject_timer);
    /* requests whose outcome was decided inside up_send but not yet
     * delivered would outlive the service: deliver them now (moved aside
     * first, as their callbacks may touch the list) */
    list_node_t doomed;
    list_init(&doomed);
    for (node = up->finished.next; node != &up->finished;) {
        list_node_t *next = node->next;
        if (LIST_OWNER(node, up_request_t, link)->svc == svc) {
            list_remove(node);
            list_push_back(&doomed, node);
        }
        node = next;
    }
    while ((node = list_first(&doomed)) != NULL) {
        up_request_t *req = LIST_OWNER(node, up_request_t, link);
        list_remove(node);
        req->phase = REQ_WAITING;
        req_finish(req, req->outcome, span_of(NULL, 0), req->detail);
    }
    for (size_t i = 0; i < up->n_services; i++) {
        if (up->services[i] == svc) {
            memmove(&up->services[i], &up->services[i + 1], (up->n_services - i - 1) * sizeof *up->services);
            up->n_services--;
            break;
        }
    }
    service_free(svc);
}

up_service_t *up_service_find(upstream_t *up, const char *name)
{
    for (size_t i = 0; i < up->n_services; i++)
        if (strcmp(up->services[i]->opts.name, name) == 0)
            return up->services[i];
    return NULL;
}

const up_service_opts_t *up_service_options(const up_service_t *svc) { return &svc->opts; }
const up_service_stats_t *up_service_stats(const up_service_t *svc) { return svc->stats; }

size_t up_service_conns_in_state(const up_service_t *svc, up_conn_state_t state)
{
    size_t n = 0;
    for (size_t i = 0; i < conn_count(svc); i++)
        n += conn_at((up_service_t *)svc, i)->state == state;
    return n;
}

size_t upstream_inflight(const upstream_t *up) { return up->inflight; }

size_t up_service_endpoint_count(const up_service_t *svc) { return svc->opts.n_endpoints; }
const char *up_service_endpoint_address(const up_service_t *svc, size_t i) { return svc->endpoints[i].address; }
int up_service_uses_tls(const up_service_t *svc) { return svc->tls != NULL; }

uint64_t up_service_endpoint_ejected_until(const up_service_t *svc, size_t i)
{
    return svc->endpoints[i].ejected_until_wall;
}

void up_service_conn_info(const up_service_t *svc, size_t i, unsigned k, up_conn_info_t *out)
{
    const up_conn_t *c = &svc->endpoints[i].conns[k];
    *out = (up_conn_info_t){
        .state = c->state,
        .inflight = c->inflight,
        .requests = c->requests,
        .errors = c->errors,
        .reconnects = c->reconnects,
        .last_error = c->last_error,
        .last_error_at = c->last_error_at_wall,
        .connected_since = c->connected_since_wall,
        .tls_version = c->sock && c->sock->tls && c->state == UP_CONN_CONNECTED ? tls_conn_version(c->sock->tls) : NULL,
    };
}

void upstream_handle_closed(upstream_t *up)
{
    if (--up->open_handles > 0 || !up->closing)
        return;
    for (size_t i = 0; i < up->n_services; i++)
        service_free(up->services[i]);
    free(up->services);
    idmap_free(&up->requests);
    free_spare_requests(up);
    free(up->tls_read_buf);
    free(up);
}

const char *up_request_address(const up_request_t *req) { return req->written_to; }

void upstream_set_packet_observer(upstream_t *up, up_packet_fn fn, void *ctx)
{
    up->on_packet = fn;
    up->packet_ctx = ctx;
}

void up_observe(up_conn_t *conn, up_packet_direction_t direction, span_t json)
{
    up_service_t *svc = conn->endpoint->svc;
    up_packet_t packet = { direction, svc->opts.name, conn->endpoint->address, json };
    svc->up->on_packet(svc->up->packet_ctx, &packet);
}

void upstream_set_event_handler(upstream_t *up, up_event_fn fn, void *ctx)
{
    up->on_event = fn;
    up->event_ctx = ctx;
}

void up_report(up_conn_t *conn, up_event_type_t type, const char *detail)
{
    upstream_t *up = conn->endpoint->svc->up;
    if (!up->on_event || up->closing)
        return;
    up_sock_t *sock = conn->sock;
    up_event_t ev = {
        .type = type,
        .service = conn->endpoint->svc->opts.name,
        .endpoint = conn->endpoint->address,
        .detail = detail,
        .tls_version = sock && sock->tls ? tls_conn_version(sock->tls) : NULL,
        .tls_resumed = sock && sock->tls ? tls_conn_resumed(sock->tls) : 0,
    };
    up->on_event(up->event_ctx, &ev);
}

static void on_own_handle_closed(uv_handle_t *h)
{
    upstream_handle_closed(h->data);
}

static void cancel_list(list_node_t *list)
{
    list_node_t *node;
    while ((node = list_first(list)) != NULL)
        req_finish(LIST_OWNER(node, up_request_t, link), UP_CANCELLED, span_of(NULL, 0),
                   "the gateway is shutting down");
}

void upstream_close(upstream_t *up)
{
    up->closing = 1;
    run_finished(up);
    for (size_t i = 0; i < up->n_services; i++) {
        up_service_t *svc = up->services[i];
        cancel_list(&svc->waiting);
        timers_stop(&up->timers, &svc->retry_timer);
        for (size_t e = 0; e < svc->opts.n_endpoints; e++)
            timers_stop(&up->timers, &svc->endpoints[e].eject_timer);
        for (size_t k = 0; k < conn_count(svc); k++) {
            up_conn_t *c = conn_at(svc, k);
            cancel_list(&c->pending);
            cancel_list(&c->emits);
            conn_down(c, UP_CANCELLED, "the gateway is shutting down");
            timers_stop(&up->timers, &c->reconnect_timer);
        }
    }
    /* socks closing now call upstream_handle_closed from their callbacks;
     * the last one to close frees the upstream */
    up->timers.handle.data = up;
    timers_close(&up->timers, on_own_handle_closed);
    uv_close((uv_handle_t *)&up->pending, on_own_handle_closed);
}
