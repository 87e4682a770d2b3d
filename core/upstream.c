/*
 * upstream: services, their names and endpoints, balancing, and the life of
 * a request (waiting for a connection, written, retried, completed).
 * Endpoints are in endpoint.c, connections in conn.c.
 */
#include <assert.h>
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

const char *up_dns_result_name(up_dns_result_t result)
{
    static const char *const names[UP_DNS_RESULT_COUNT] = { "ok", "empty", "error" };
    return result < UP_DNS_RESULT_COUNT ? names[result] : "unknown";
}

const char *up_retry_reason_name(up_retry_reason_t reason)
{
    static const char *const names[UP_RETRY_REASON_COUNT] = { "closed", "unavailable" };
    return reason < UP_RETRY_REASON_COUNT ? names[reason] : "unknown";
}

void up_service_opts_defaults(up_service_opts_t *o)
{
    memset(o, 0, sizeof *o);
    settings_defaults(&o->settings);
}

uint64_t up_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t up_random(upstream_t *up)
{
    up->rng ^= up->rng << 13;
    up->rng ^= up->rng >> 7;
    up->rng ^= up->rng << 17;
    return up->rng;
}

/* ---- a request's phase ------------------------------------------------------ */

/* Every phase change goes through here (the diagram in upstream_internal.h). */
static void req_set_phase(up_request_t *req, req_phase_t phase)
{
    switch (phase) {
    case REQ_WAITING: assert(req->phase == REQ_WAITING || req->phase == REQ_WRITTEN); break;
    case REQ_WRITTEN: assert(req->phase == REQ_WAITING); break;
    case REQ_FINISHING: assert(req->phase == REQ_WAITING || req->phase == REQ_WRITTEN); break;
    case REQ_DONE: assert(req->phase == REQ_FINISHING); break;
    case REQ_CANCELLED: assert(req->phase != REQ_DONE && req->phase != REQ_CANCELLED); break;
    }
    req->phase = phase;
}

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

static void cancel_children(up_request_t *parent);

/* Unlinks a request from wherever it is and from the accounting of the
 * connection it was written on (a fanout parent lets its children go). */
static void req_detach(up_request_t *req)
{
    upstream_t *up = req->svc->up;
    cancel_children(req);
    timers_stop(&up->timers, &req->timer);
    if (list_linked(&req->link))
        list_remove(&req->link);
    up_conn_t *conn = req->conn; /* set exactly while it is written */
    if (conn && req->kind != UP_KIND_EMIT)
        idmap_del(&up->requests, req->id);
    if (conn) {
        req->conn = NULL;
        conn->inflight--;
        conn->endpoint->inflight--;
        ep_request_left(conn->endpoint, conn);
    }
}

/* Fanout children are the parent's business: not counted themselves. */
static void count_outcome(up_request_t *req, up_outcome_t outcome)
{
    if (req->parent || req->cb.on_done == NULL)
        return;
    up_service_stats_t *st = req->svc->stats;
    up_count(&st->outcomes[req->kind == UP_KIND_EMIT][outcome], 1);
    up_count(&st->inflight, -1);
    req->svc->up->inflight--;
}

static void child_done(up_request_t *child, up_outcome_t outcome);

void req_finish(up_request_t *req, up_outcome_t outcome, span_t err, const char *detail)
{
    upstream_t *up = req->svc->up;
    req_detach(req);
    if (req->phase != REQ_FINISHING)
        req_set_phase(req, REQ_FINISHING);
    if (req->kind == UP_KIND_EMIT && !req->fanout && outcome == UP_OK)
        req->delivered = 1;
    if (req->parent) {
        child_done(req, outcome);
    } else if (req->cb.on_done) { /* NULL: a fanout child whose parent ended first */
        count_outcome(req, outcome);
        up->in_callback = req;
        req->cb.on_done(req->ctx, outcome, err, detail);
        up->in_callback = NULL;
    }
    if (req->phase == REQ_CANCELLED) { /* up_cancel from inside the callback */
        req_free(req);
        return;
    }
    req_set_phase(req, REQ_DONE);
    req_free(req);
}

/* For outcomes decided inside up_submit: the callback runs from the next
 * loop iteration, never from inside the call that started the request. */
static void req_finish_later(up_request_t *req, up_outcome_t outcome, const char *detail)
{
    upstream_t *up = req->svc->up;
    req_detach(req);
    req_set_phase(req, REQ_FINISHING);
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
        req_finish(req, req->outcome, span_of(NULL, 0), req->detail);
    }
}

void up_cancel(up_request_t *req)
{
    upstream_t *up = req->svc->up;
    if (req == up->in_callback) {
        req_set_phase(req, REQ_CANCELLED); /* freed when the callback returns */
        return;
    }
    req_detach(req);
    count_outcome(req, UP_CANCELLED);
    req_set_phase(req, REQ_CANCELLED);
    req_free(req);
}

const char *up_request_address(const up_request_t *req)
{
    return req->address[0] ? req->address : NULL;
}

size_t up_request_delivered(const up_request_t *req)
{
    return req->delivered;
}

/* ---- balancing ------------------------------------------------------------- */

/*
 * The connection for a new request. Candidates are the ACTIVE endpoints
 * with a connection that takes a request now (not `avoid`, unless it is the
 * only one). least_request: two candidates at random, the one with fewer
 * requests in flight (power of two choices); round_robin: the next in turn.
 * Then that endpoint's least loaded connection. *full tells whether a
 * connected connection was left out for being full. Every endpoint is a
 * candidate: the scratch arrays have room for all (svc->cap_eps).
 */
static up_conn_t *pick_conn(up_service_t *svc, const up_endpoint_t *avoid, int *full)
{
    int saturated = 0;
    if (svc->n_eps == 1) { /* the common case: one address */
        up_conn_t *c = ep_usable(svc->eps[0]) ? ep_best_conn(svc->eps[0], &saturated) : NULL;
        if (full)
            *full = saturated;
        return c;
    }
    up_endpoint_t **cand = svc->pick_eps;
    up_conn_t **best = svc->pick_conns;
    size_t n = 0, avoided = SIZE_MAX;
    for (size_t i = 0; i < svc->n_eps; i++) {
        up_endpoint_t *ep = svc->eps[i];
        up_conn_t *c = ep_usable(ep) ? ep_best_conn(ep, &saturated) : NULL;
        if (!c)
            continue;
        if (ep == avoid)
            avoided = n;
        cand[n] = ep;
        best[n++] = c;
    }
    if (full)
        *full = saturated;
    if (n == 0)
        return NULL;
    if (avoided < n && n > 1) { /* a retry: anywhere else */
        cand[avoided] = cand[n - 1];
        best[avoided] = best[n - 1];
        n--;
    }
    if (n == 1)
        return best[0];
    if (svc->opts.balance == UP_BALANCE_ROUND_ROBIN)
        return best[svc->next_pick++ % n];
    size_t a = up_random(svc->up) % n, b = up_random(svc->up) % (n - 1);
    if (b >= a)
        b++;
    return cand[b]->inflight < cand[a]->inflight ? best[b] : best[a];
}

/* ---- writing a request -------------------------------------------------- */

static int write_on(up_conn_t *conn, up_request_t *req, span_t pattern, span_t data, span_t metadata)
{
    upstream_t *up = conn->endpoint->svc->up;
    int rc = conn_write_request(conn, req, pattern, data, metadata);
    if (rc)
        return rc;
    if (req->kind != UP_KIND_EMIT && (rc = idmap_put(&up->requests, req->id, req)) != 0)
        return rc;
    if (list_linked(&req->link))
        list_remove(&req->link);
    list_push_back(req->kind == UP_KIND_EMIT ? &conn->emits : &conn->pending, &req->link);
    req_set_phase(req, REQ_WRITTEN);
    req->conn = conn;
    up_endpoint_t *ep = conn->endpoint;
    size_t n = strnlen(ep->address, sizeof req->address - 1); /* once per request: no snprintf */
    memcpy(req->address, ep->address, n);
    req->address[n] = '\0';
    conn->inflight++;
    conn->requests++;
    ep->inflight++;
    ep->requests++;
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

/* ---- events to every endpoint ------------------------------------------------- */

static const up_callbacks_t child_callbacks = { NULL, NULL };

/* Writes a fanout parent's event to every usable endpoint as one child
 * event each. Returns how many were written (0: it keeps waiting). */
static size_t fanout_write(up_request_t *parent)
{
    up_service_t *svc = parent->svc;
    upstream_t *up = svc->up;
    size_t written = 0;
    for (size_t i = 0; i < svc->n_eps; i++) {
        int full = 0;
        up_conn_t *conn = ep_usable(svc->eps[i]) ? ep_best_conn(svc->eps[i], &full) : NULL;
        up_request_t *child = conn ? req_alloc(up) : NULL;
        if (!child)
            continue;
        list_init(&child->link);
        timer_entry_init(&child->timer);
        child->svc = svc;
        child->kind = UP_KIND_EMIT;
        child->parent = parent;
        child->cb = child_callbacks;
        child->phase = REQ_WAITING;
        if (buf_append(&child->frame, parent->frame.data, parent->frame.len) || write_on(conn, child, span_of(NULL, 0),
                                                                                   span_of(NULL, 0), span_of(NULL, 0))) {
            buf_free(&child->frame);
            free(child);
            continue;
        }
        parent->children++;
        written++;
    }
    if (written) {
        if (list_linked(&parent->link))
            list_remove(&parent->link);
        req_set_phase(parent, REQ_WRITTEN);
    }
    return written;
}

static void child_done(up_request_t *child, up_outcome_t outcome)
{
    up_request_t *parent = child->parent;
    child->parent = NULL;
    if (!parent) /* the parent ended first (timeout, cancel) */
        return;
    if (outcome == UP_OK)
        parent->delivered++;
    else
        parent->child_failure = outcome;
    if (--parent->children > 0)
        return;
    req_finish(parent, parent->delivered ? UP_OK : parent->child_failure, span_of(NULL, 0),
               parent->delivered ? NULL : "the event could not be written to any endpoint");
}

/* A fanout parent that ends (timeout, cancel) before its children: they
 * finish on their own, unowned. */
static void cancel_children(up_request_t *parent)
{
    if (!parent->children)
        return;
    up_service_t *svc = parent->svc;
    for (size_t e = 0; e < svc->n_eps; e++)
        for (list_node_t *n = svc->eps[e]->conns.next; n != &svc->eps[e]->conns; n = n->next) {
            up_conn_t *c = LIST_OWNER(n, up_conn_t, link);
            for (list_node_t *r = c->emits.next; r != &c->emits; r = r->next)
                if (LIST_OWNER(r, up_request_t, link)->parent == parent)
                    LIST_OWNER(r, up_request_t, link)->parent = NULL;
        }
    parent->children = 0;
}

/* ---- waiting for a connection ------------------------------------------------- */

/* Writes a waiting request on `conn` (its packet is in req->frame). */
static int write_waiting(up_conn_t *conn, up_request_t *req)
{
    return write_on(conn, req, span_of(NULL, 0), span_of(NULL, 0), span_of(NULL, 0));
}

/* Moves waiting requests onto connected connections, oldest first. */
static void drain_waiting(up_service_t *svc)
{
    list_node_t *node;
    while ((node = list_first(&svc->waiting)) != NULL) {
        up_request_t *req = LIST_OWNER(node, up_request_t, link);
        up_conn_t *conn = pick_conn(svc, req->avoid, NULL);
        if (!conn)
            return;
        if (req->fanout) { /* to every usable endpoint */
            if (!fanout_write(req))
                return;
            continue;
        }
        if (write_waiting(conn, req))
            req_finish(req, UP_OVERLOADED, span_of(NULL, 0), "out of memory");
    }
}

/* Whether a connection attempt is under way, or a name's first answer. */
static int attempt_under_way(const up_service_t *svc)
{
    for (size_t i = 0; i < svc->n_eps; i++)
        if (ep_connecting(svc->eps[i]))
            return 1;
    for (size_t i = 0; i < svc->n_targets; i++)
        if (svc->targets[i].query && !svc->targets[i].resolved)
            return 1;
    return 0;
}

/* Starts one connection attempt, skipping its backoff; a lazy service's
 * first use starts all of its endpoints. 1 when an attempt is under way. */
static int start_attempt(up_service_t *svc)
{
    if (!svc->active) {
        svc->active = 1;
        for (size_t i = 0; i < svc->n_eps; i++)
            ep_start(svc->eps[i]);
        return attempt_under_way(svc);
    }
    if (attempt_under_way(svc))
        return 1;
    for (size_t i = 0; i < svc->n_eps; i++) {
        up_endpoint_t *ep = svc->eps[i];
        if (!ep_may_connect(ep))
            continue;
        for (list_node_t *n = ep->conns.next; n != &ep->conns; n = n->next) {
            up_conn_t *c = LIST_OWNER(n, up_conn_t, link);
            if (c->state == UP_CONN_DISCONNECTED && !c->retiring && conn_start(c) == 0 &&
                c->state == UP_CONN_CONNECTING)
                return 1;
        }
    }
    return 0;
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

static void count_retry(up_request_t *req, up_retry_reason_t reason)
{
    req->retries_left--;
    up_count(&req->svc->stats->retries[reason], 1);
}

/* An attempt failed: requests whose wait is over fail (or, with retries
 * left, wait once more); the others wait for another attempt after
 * retry_delay_ms. */
void svc_conn_failed(up_service_t *svc, const char *detail)
{
    upstream_t *up = svc->up;
    if (attempt_under_way(svc))
        return; /* another attempt may still succeed */
    uint64_t now = uv_now(up->loop);
    list_node_t doomed, *node;
    list_init(&doomed);
    for (node = svc->waiting.next; node != &svc->waiting;) {
        list_node_t *next = node->next;
        up_request_t *req = LIST_OWNER(node, up_request_t, link);
        if (req->wait_until <= now) {
            if (req->retries_left) {
                count_retry(req, UP_RETRY_UNAVAILABLE);
                uint32_t delay = svc->opts.retry_delay_ms > 100 ? svc->opts.retry_delay_ms : 100;
                req->wait_until = now + delay;
            } else {
                list_remove(node);
                list_push_back(&doomed, node);
            }
        }
        node = next;
    }
    char why[240];
    snprintf(why, sizeof why, "no connection to service %s: %s", svc->opts.name, detail);
    while ((node = list_first(&doomed)) != NULL)
        req_finish(LIST_OWNER(node, up_request_t, link), UP_UNAVAILABLE, span_of(NULL, 0), why);
    if (!list_empty(&svc->waiting)) {
        uint32_t delay = svc->opts.retry_delay_ms > 100 ? svc->opts.retry_delay_ms : 100;
        timers_start(&up->timers, &svc->retry_timer, delay, on_retry_timer);
    }
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

/* Puts a request (its packet in req->frame) among the waiting ones and
 * makes sure a connection is on its way. Called from up_submit (`later`:
 * outcomes go through the next loop iteration) or for a retry. */
static void wait_for_connection(up_request_t *req, int later)
{
    up_service_t *svc = req->svc;
    upstream_t *up = svc->up;
    uint32_t wait = svc->opts.retry_attempts * svc->opts.retry_delay_ms;
    if (req->retries_left && wait < 100)
        wait = 100; /* a retry waits for another endpoint a moment */
    req->wait_until = uv_now(up->loop) + wait;
    /* queued only after the attempt starts: an attempt that fails at once
     * must not run this request's callback from inside up_submit */
    int attempting = start_attempt(svc);
    list_push_back(&svc->waiting, &req->link);
    if (!attempting && svc->opts.retry_attempts == 0 && !req->retries_left) {
        if (later)
            req_finish_later(req, UP_UNAVAILABLE, "no connection to the service");
        else
            req_finish(req, UP_UNAVAILABLE, span_of(NULL, 0), "no connection to the service");
    } else if (!attempting) {
        timers_start(&up->timers, &svc->retry_timer, svc->opts.retry_delay_ms ? svc->opts.retry_delay_ms : 100,
                     on_retry_timer);
    }
}

/* ---- retries -------------------------------------------------------------------- */

void req_connection_lost(up_request_t *req, up_outcome_t outcome, const char *detail)
{
    upstream_t *up = req->svc->up;
    /* never while the service is being removed: a retry would restart its
     * connections (start_attempt) and wait in a list about to be freed */
    int may_retry = req->retries_left && outcome == UP_CLOSED && req->frame.len && !req->delivered &&
                    !req->parent && req->phase == REQ_WRITTEN && !up->closing && !req->svc->removing;
    if (!may_retry) {
        req_finish(req, outcome, span_of(NULL, 0), detail);
        return;
    }
    count_retry(req, UP_RETRY_CLOSED);
    req->avoid = req->conn ? req->conn->endpoint : NULL;
    /* back to waiting, its timeout still running (it bounds the retries) */
    uint64_t due = req->timer.due;
    req_detach(req);
    req_set_phase(req, REQ_WAITING);
    uint64_t now = uv_now(up->loop);
    timers_start(&up->timers, &req->timer, due > now ? due - now : 0, on_request_timeout);
    up_conn_t *conn = pick_conn(req->svc, req->avoid, NULL);
    if (conn) {
        if (write_waiting(conn, req))
            req_finish(req, UP_OVERLOADED, span_of(NULL, 0), "out of memory");
        return;
    }
    wait_for_connection(req, 0);
}

/* ---- submitting ---------------------------------------------------------------- */

static int encode(up_request_t *req, span_t pattern, span_t data, span_t metadata)
{
    char idtext[MSG_ID_MAX];
    return req->kind == UP_KIND_EMIT ? msg_encode_event(&req->frame, pattern, data, metadata)
                                     : msg_encode_request(&req->frame, pattern, data, msg_format_id(req->id, idtext),
                                                          metadata);
}

up_request_t *up_submit(up_service_t *svc, up_kind_t kind, span_t pattern, span_t data, span_t metadata,
                        const up_request_opts_t *opts, const up_callbacks_t *cb, void *ctx)
{
    static const up_request_opts_t no_opts = { 0, 0, false };
    if (!opts)
        opts = &no_opts;
    upstream_t *up = svc->up;
    up_request_t *req = req_alloc(up);
    if (!req)
        return NULL;
    list_init(&req->link);
    timer_entry_init(&req->timer);
    req->svc = svc;
    req->kind = kind;
    req->timeout_ms = opts->timeout_ms ? opts->timeout_ms : svc->opts.timeout_ms;
    req->retries_left = opts->retries < PG_MAX_RETRIES ? opts->retries : PG_MAX_RETRIES;
    req->id = up->next_id++;
    req->cb = *cb;
    req->ctx = ctx;
    req->phase = REQ_WAITING;
    up_count(&svc->stats->inflight, 1);
    up->inflight++;
    if (!svc->opts.metadata)
        metadata = span_of(NULL, 0);
    timers_start(&up->timers, &req->timer, req->timeout_ms, on_request_timeout);
    int fanout = kind == UP_KIND_EMIT && opts->fanout_all;
    if ((req->retries_left || fanout) && encode(req, pattern, data, metadata)) {
        req_finish_later(req, UP_OVERLOADED, "out of memory");
        return req;
    }
    req->fanout = fanout;
    int saturated = 0;
    up_conn_t *conn = pick_conn(svc, NULL, &saturated);
    if (conn) {
        int rc = fanout ? (fanout_write(req) ? 0 : -1) : write_on(conn, req, pattern, data, metadata);
        if (rc)
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
    if (!req->frame.len && encode(req, pattern, data, metadata)) {
        req_finish_later(req, UP_OVERLOADED, "out of memory");
        return req;
    }
    wait_for_connection(req, 1);
    return req;
}

up_request_t *up_send(up_service_t *svc, span_t pattern, span_t data, span_t metadata, uint32_t timeout_ms,
                      const up_callbacks_t *cb, void *ctx)
{
    up_request_opts_t o = { timeout_ms, 0, false };
    return up_submit(svc, UP_KIND_SEND, pattern, data, metadata, &o, cb, ctx);
}

up_request_t *up_stream(up_service_t *svc, span_t pattern, span_t data, span_t metadata, uint32_t timeout_ms,
                        const up_callbacks_t *cb, void *ctx)
{
    up_request_opts_t o = { timeout_ms, 0, false };
    return up_submit(svc, UP_KIND_STREAM, pattern, data, metadata, &o, cb, ctx);
}

up_request_t *up_emit(up_service_t *svc, span_t pattern, span_t data, span_t metadata, uint32_t timeout_ms,
                      const up_callbacks_t *cb, void *ctx)
{
    up_request_opts_t o = { timeout_ms, 0, false };
    return up_submit(svc, UP_KIND_EMIT, pattern, data, metadata, &o, cb, ctx);
}

/* ---- replies ------------------------------------------------------------ */

static void deliver_value(up_request_t *req, span_t value)
{
    upstream_t *up = req->svc->up;
    req->delivered = 1; /* a value went out: never sent again */
    up->in_callback = req;
    req->cb.on_value(req->ctx, value);
    up->in_callback = NULL;
}

/* A reply that is not a Nest reply packet (a custom serializer): its
 * request fails at once, and the first one per connection is logged. */
static void foreign_reply(up_conn_t *conn, up_request_t *req, span_t message, const char *why)
{
    if (!conn->foreign_logged) {
        conn->foreign_logged = true;
        char head[208];
        size_t n = message.n < 200 ? message.n : 200;
        memcpy(head, message.p, n);
        head[n] = '\0';
        up_report(conn, UP_EV_FOREIGN_REPLY, head);
    }
    req_finish(req, UP_BAD_MESSAGE, span_of(NULL, 0), why);
}

void svc_reply(up_conn_t *conn, span_t message)
{
    up_service_t *svc = conn->endpoint->svc;
    msg_reply_t reply;
    char why[200];
    if (msg_read_reply(message, &reply, why, sizeof why)) {
        conn_down(conn, UP_BAD_MESSAGE, why);
        return;
    }
    ep_reply_ok(conn->endpoint);
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
        if (req->kind == UP_KIND_STREAM && reply.kind == MSG_REPLY_VALUE)
            timers_start(&svc->up->timers, &req->timer, req->timeout_ms, on_request_timeout);
        deliver_value(req, reply.value);
        if (req->phase == REQ_CANCELLED) { /* up_cancel from inside on_value */
            req_detach(req);
            count_outcome(req, UP_CANCELLED);
            req_free(req);
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
    case MSG_REPLY_FOREIGN:
        snprintf(why, sizeof why,
                 "the reply of service %s is not a Nest reply packet: it has the member %.*s%s and none of "
                 "response, err, isDisposed (does the service use a custom serializer?)",
                 svc->opts.name, (int)(reply.value.n > 40 ? 40 : reply.value.n), reply.value.p,
                 reply.unexpected > 1 ? " and others" : "");
        foreign_reply(conn, req, message, why);
        return;
    }
}

/* ---- names ---------------------------------------------------------------------- */

/* Lookups that records or failures ask for (a short TTL, a refused
 * connection, a name that never resolved) are at least this far apart;
 * resolve_interval_ms, the periodic one, is honoured as configured. */
#define RESOLVE_MIN_GAP_MS 1000

static void on_resolve_timer(timer_entry_t *e);
static void target_lookup(up_target_t *t);

static int make_resolver(upstream_t *up, char *err, size_t errlen)
{
    if (up->resolver)
        return 0;
    resolver_options_t o = { (const char *const *)up->dns_servers, up->n_dns_servers, 0, 0 };
    return resolver_new(up->loop, &o, &up->resolver, err, errlen);
}

static up_endpoint_t *find_endpoint(up_service_t *svc, const up_target_t *t, const resolver_addr_t *addr)
{
    for (size_t i = 0; i < svc->n_eps; i++) {
        up_endpoint_t *ep = svc->eps[i];
        if (ep->target == t && ep->state != UP_EP_DRAINING && resolver_addr_cmp(&ep->addr, addr) == 0)
            return ep;
    }
    return NULL;
}

/* The addresses of a good answer, plus the previous ones of any family
 * whose query failed (unknown is not gone). Sorted; *out to free. */
static size_t merge_answer(const up_target_t *t, const resolver_answer_t *a, resolver_addr_t **out)
{
    size_t n = a->naddrs;
    resolver_addr_t *all = malloc((a->naddrs + t->naddrs + 1) * sizeof *all);
    if (!all)
        return SIZE_MAX;
    memcpy(all, a->addrs, a->naddrs * sizeof *all);
    for (size_t i = 0; i < t->naddrs; i++) {
        unsigned bit = t->addrs[i].family == RESOLVER_IPV4 ? RESOLVER_FAILED_IPV4 : RESOLVER_FAILED_IPV6;
        if (a->failed_families & bit)
            all[n++] = t->addrs[i];
    }
    *out = all;
    return resolver_addrs_sort(all, n);
}

/* Endpoints for the addresses that joined, draining for those that left. */
static void apply_answer(up_target_t *t, resolver_addr_t *addrs, size_t n)
{
    up_service_t *svc = t->svc;
    size_t *joined = malloc((n + 1) * sizeof *joined), *left = malloc((t->naddrs + 1) * sizeof *left);
    size_t n_joined = 0, n_left = 0;
    if (!joined || !left) {
        free(joined);
        free(left);
        free(addrs);
        return;
    }
    resolver_addrs_diff(t->addrs, t->naddrs, addrs, n, joined, &n_joined, left, &n_left);
    for (size_t i = 0; i < n_left; i++) {
        up_endpoint_t *ep = find_endpoint(svc, t, &t->addrs[left[i]]);
        if (ep)
            ep_drain(ep);
    }
    for (size_t i = 0; i < n_joined; i++)
        if (!find_endpoint(svc, t, &addrs[joined[i]]))
            (void)ep_new(svc, t, &addrs[joined[i]]);
    free(t->addrs);
    t->addrs = addrs;
    t->naddrs = n;
    if (n_joined || n_left) {
        up_event_t ev = { .type = UP_EV_RESOLVED, .service = svc->opts.name, .endpoint = t->host,
                          .joined = n_joined, .left = n_left, .total = n };
        up_report_service(svc, &ev);
    }
    free(joined);
    free(left);
    if (n_joined)
        svc_conn_up(svc); /* nothing is connected yet, but it sets the pace */
}

static void schedule_lookup(up_target_t *t, uint64_t delay_ms)
{
    up_service_t *svc = t->svc;
    timers_t *timers = &svc->up->timers;
    if (timer_armed(&t->resolve_timer) && t->resolve_timer.due <= uv_now(svc->up->loop) + delay_ms)
        return; /* sooner already */
    timers_start(timers, &t->resolve_timer, delay_ms, on_resolve_timer);
}

/* When to ask again: every RESOLVE_MIN_GAP_MS while the name has never
 * resolved (or a connection failed during the lookup); else after
 * resolve_interval_ms, sooner when a good answer's records say so (TTL, at
 * least RESOLVE_MIN_GAP_MS). A failed lookup of a name that resolved
 * before keeps its endpoints and waits for the interval: a DNS server that
 * is down is not asked every second. */
static void plan_next_lookup(up_target_t *t, uint32_t ttl_s, bool failed)
{
    uint64_t interval = t->svc->opts.resolve_interval_ms;
    if (t->lookup_wanted || !t->resolved) {
        t->lookup_wanted = false;
        schedule_lookup(t, RESOLVE_MIN_GAP_MS);
        return;
    }
    if (interval == 0)
        return;
    uint64_t ttl_ms = ttl_s == RESOLVER_TTL_NONE || failed ? interval : (uint64_t)ttl_s * 1000;
    if (ttl_ms < RESOLVE_MIN_GAP_MS)
        ttl_ms = RESOLVE_MIN_GAP_MS;
    schedule_lookup(t, ttl_ms < interval ? ttl_ms : interval);
}

static void on_answer(const resolver_answer_t *a, void *ctx)
{
    up_target_t *t = ctx;
    up_service_t *svc = t->svc;
    t->query = NULL;
    up_dns_result_t result = a->status == RESOLVER_OK ? UP_DNS_OK : a->status == RESOLVER_EMPTY ? UP_DNS_EMPTY
                                                                                                : UP_DNS_ERROR;
    up_count(&svc->stats->dns[result], 1);
    if (result == UP_DNS_OK) {
        resolver_addr_t *addrs;
        size_t n = merge_answer(t, a, &addrs);
        if (n != SIZE_MAX) {
            t->resolved = true;
            svc->resolved_at_wall = up_wall_ms();
            snprintf(t->resolve_error, sizeof t->resolve_error, "%s", a->failed_families ? a->message : "");
            apply_answer(t, addrs, n);
        }
    } else {
        snprintf(t->resolve_error, sizeof t->resolve_error, "%s: %s", t->host,
                 a->message[0] ? a->message : up_dns_result_name(result));
        up_event_t ev = { .type = UP_EV_RESOLVE_FAILED, .service = svc->opts.name, .endpoint = t->host,
                          .detail = t->resolve_error, .total = t->naddrs };
        up_report_service(svc, &ev);
        if (!t->resolved) {
            char why[240];
            snprintf(why, sizeof why, "cannot resolve host %s", t->resolve_error);
            svc_conn_failed(svc, why);
        }
    }
    plan_next_lookup(t, a->ttl, result != UP_DNS_OK);
}

static void target_lookup(up_target_t *t)
{
    upstream_t *up = t->svc->up;
    if (t->query) {
        t->lookup_wanted = true;
        return;
    }
    char err[200];
    if (make_resolver(up, err, sizeof err) != 0 ||
        resolver_resolve(up->resolver, t->host, on_answer, t, &t->query) != 0) {
        t->query = NULL;
        schedule_lookup(t, RESOLVE_MIN_GAP_MS);
        return;
    }
    t->last_lookup = uv_now(up->loop);
}

static void on_resolve_timer(timer_entry_t *e)
{
    target_lookup(LIST_OWNER(e, up_target_t, resolve_timer));
}

void svc_target_failed(up_target_t *t)
{
    if (!t->is_name || t->svc->removing)
        return;
    if (t->query) {
        t->lookup_wanted = true;
        return;
    }
    uint64_t since = uv_now(t->svc->up->loop) - t->last_lookup;
    if (since >= RESOLVE_MIN_GAP_MS)
        target_lookup(t);
    else
        schedule_lookup(t, RESOLVE_MIN_GAP_MS - since);
}

static void on_resolver_closed(void *ctx);

static void restart_resolver(upstream_t *up)
{
    up->open_handles++;
    resolver_close(up->resolver, on_resolver_closed, up); /* cancels the lookups: no callbacks */
    up->resolver = NULL;
    for (size_t i = 0; i < up->n_services; i++)
        for (size_t k = 0; k < up->services[i]->n_targets; k++) {
            up_target_t *t = &up->services[i]->targets[k];
            if (!t->is_name)
                continue;
            t->query = NULL;
            target_lookup(t);
        }
}

int upstream_set_dns_servers(upstream_t *up, const char *const *servers, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        resolver_server_t server;
        const char *why = resolver_server_parse(servers[i], &server);
        if (why) {
            snprintf(err, errlen, "DNS server \"%s\": %s", servers[i], why);
            return -EINVAL;
        }
    }
    char **copy = n ? calloc(n, sizeof *copy) : NULL;
    for (size_t i = 0; copy && i < n; i++)
        if (!(copy[i] = strdup(servers[i]))) {
            for (size_t k = 0; k < i; k++)
                free(copy[k]);
            free(copy);
            copy = NULL;
        }
    if (n && !copy) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < up->n_dns_servers; i++)
        free(up->dns_servers[i]);
    free(up->dns_servers);
    up->dns_servers = copy;
    up->n_dns_servers = n;
    if (up->resolver) /* new servers: a new resolver, and every name asked again */
        restart_resolver(up);
    return 0;
}

/* ---- the upstream and its services -------------------------------------- */

static void sweep_endpoints(upstream_t *up)
{
    for (size_t i = 0; i < up->n_services; i++) {
        up_service_t *svc = up->services[i];
        for (size_t e = svc->n_eps; e-- > 0;)
            if (svc->eps[e]->sweep)
                ep_sweep(svc->eps[e]);
    }
}

/* Work queued during a loop iteration (writes, completions decided inside
 * up_submit, connections to retire, endpoints drained) runs in the next
 * one. An idle handle rather than a prepare: an active idle handle also
 * keeps the loop from sleeping, whereas a prepare started from another
 * prepare callback would wait for the next wake-up. */
static void on_pending(uv_idle_t *h)
{
    upstream_t *up = h->data;
    run_finished(up);
    if (up->sweep_due) {
        up->sweep_due = 0;
        sweep_endpoints(up);
    }
    conn_flush_all(up);
    if (list_empty(&up->finished) && list_empty(&up->flush) && !up->sweep_due)
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

static void targets_free(up_service_t *svc)
{
    for (size_t i = 0; svc->targets && i < svc->n_targets; i++) {
        up_target_t *t = &svc->targets[i];
        timers_stop(&svc->up->timers, &t->resolve_timer);
        if (t->query)
            resolver_cancel(t->query);
        free(t->host);
        free(t->addrs);
    }
    free(svc->targets);
    svc->targets = NULL;
}

static void service_free(up_service_t *svc)
{
    while (svc->n_eps)
        ep_destroy(svc->eps[svc->n_eps - 1], UP_CANCELLED, "the gateway is shutting down");
    free(svc->eps);
    free(svc->pick_eps);
    free(svc->pick_conns);
    targets_free(svc);
    tls_ctx_free(svc->tls);
    free(svc->servername);
    free((char *)svc->opts.name);
    free(svc);
}

/* The configured "host:port"s: literals get their endpoint now, names
 * start resolving. */
static int add_targets(up_service_t *svc, const up_service_opts_t *opts, char *err, size_t errlen)
{
    svc->targets = calloc(opts->n_endpoints, sizeof *svc->targets);
    if (!svc->targets) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < opts->n_endpoints; i++) {
        up_target_t *t = &svc->targets[i];
        hostport hp;
        const char *why = hostport_parse(opts->endpoints[i], 0, &hp);
        if (why) {
            snprintf(err, errlen, "endpoint %s: expected \"host:port\" (%s)", opts->endpoints[i], why);
            return -1;
        }
        t->svc = svc;
        t->port = hp.port;
        t->is_name = hp.kind == HOSTPORT_NAME;
        timer_entry_init(&t->resolve_timer);
        svc->n_targets++;
        if (!(t->host = strdup(hp.host))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (t->is_name)
            continue;
        resolver_addr_t addr;
        t->addrs = malloc(sizeof *t->addrs);
        if (resolver_addr_parse(t->host, &addr) != 0 || !t->addrs) {
            snprintf(err, errlen, "endpoint %s: cannot use the address", opts->endpoints[i]);
            return -1;
        }
        t->addrs[0] = addr;
        t->naddrs = 1;
        t->resolved = true;
        if (!find_endpoint(svc, t, &addr) && !ep_new(svc, t, &addr)) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

static int add_tls(up_service_t *svc, const up_service_opts_t *opts, char *err, size_t errlen)
{
    if (!opts->tls)
        return 0;
    tls_field_t field;
    char why[200];
    svc->tls = tls_ctx_new(opts->tls, &field, why, sizeof why);
    svc->servername = opts->servername ? strdup(opts->servername) : NULL;
    if (!svc->tls) {
        snprintf(err, errlen, "tls%s%s: %s", field ? "." : "", tls_field_name(field), why);
        return -1;
    }
    if (opts->servername && !svc->servername) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

up_service_t *up_service_add(upstream_t *up, const up_service_opts_t *opts, char *err, size_t errlen)
{
    if (opts->n_endpoints == 0 || opts->pool_size == 0) {
        snprintf(err, errlen, "a service needs at least one endpoint and connection");
        return NULL;
    }
    up_service_t *svc = calloc(1, sizeof *svc);
    up_service_t **grown = realloc(up->services, (up->n_services + 1) * sizeof *grown);
    if (grown)
        up->services = grown;
    if (!svc || !grown) {
        free(svc);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    svc->up = up;
    svc->opts = *opts;
    svc->opts.name = strdup(opts->name ? opts->name : "");
    svc->opts.endpoints = NULL; /* the targets below hold them */
    svc->opts.tls = NULL;       /* svc->tls below holds what it says */
    svc->opts.servername = NULL;
    svc->stats = opts->stats ? opts->stats : &svc->own_stats;
    svc->opts.stats = NULL;
    svc->active = opts->connect == UP_CONNECT_EAGER;
    list_init(&svc->waiting);
    timer_entry_init(&svc->retry_timer);
    if (!svc->opts.name || add_tls(svc, opts, err, errlen) || add_targets(svc, opts, err, errlen)) {
        svc->up = up;
        service_free(svc);
        return NULL;
    }
    up->services[up->n_services++] = svc;
    for (size_t i = 0; i < svc->n_targets; i++)
        if (svc->targets[i].is_name)
            target_lookup(&svc->targets[i]);
    return svc;
}

void up_service_remove(up_service_t *svc, const char *why)
{
    upstream_t *up = svc->up;
    assert(!(up->in_callback && up->in_callback->svc == svc) &&
           "up_service_remove from inside a callback of one of its own requests");
    svc->active = 0; /* no reconnects */
    svc->removing = 1;
    timers_stop(&up->timers, &svc->retry_timer);
    list_node_t *node;
    while ((node = list_first(&svc->waiting)) != NULL)
        req_finish(LIST_OWNER(node, up_request_t, link), UP_UNAVAILABLE, span_of(NULL, 0), why);
    while (svc->n_eps)
        ep_destroy(svc->eps[svc->n_eps - 1], UP_CLOSED, why);
    /* requests whose outcome was decided inside up_submit but not yet
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
    for (size_t i = 0; i < svc->n_eps; i++)
        for (list_node_t *c = svc->eps[i]->conns.next; c != &svc->eps[i]->conns; c = c->next)
            n += LIST_OWNER(c, up_conn_t, link)->state == state;
    return n;
}

size_t upstream_inflight(const upstream_t *up) { return up->inflight; }

size_t up_service_endpoint_count(const up_service_t *svc) { return svc->n_eps; }
int up_service_uses_tls(const up_service_t *svc) { return svc->tls != NULL; }

void up_service_endpoint_info(const up_service_t *svc, size_t i, up_endpoint_info_t *out)
{
    ep_info(svc->eps[i], out);
}

void up_service_resolve_info(const up_service_t *svc, uint64_t *resolved_at, const char **last_error)
{
    *resolved_at = svc->resolved_at_wall;
    *last_error = "";
    for (size_t i = 0; i < svc->n_targets && !**last_error; i++)
        *last_error = svc->targets[i].resolve_error;
}

void up_service_conn_info(const up_service_t *svc, size_t i, size_t k, up_conn_info_t *out)
{
    const up_conn_t *c = ep_conn_at(svc->eps[i], k);
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
        .retiring = c->retiring,
    };
}

static void on_resolver_closed(void *ctx)
{
    upstream_handle_closed(ctx);
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
    for (size_t i = 0; i < up->n_dns_servers; i++)
        free(up->dns_servers[i]);
    free(up->dns_servers);
    free(up);
}


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

void up_report_service(up_service_t *svc, const up_event_t *ev)
{
    upstream_t *up = svc->up;
    if (up->on_event && !up->closing)
        up->on_event(up->event_ctx, ev);
}

void up_report(up_conn_t *conn, up_event_type_t type, const char *detail)
{
    if (conn->endpoint->svc->up->closing)
        return;
    up_sock_t *sock = conn->sock;
    up_event_t ev = {
        .type = type,
        .service = conn->endpoint->svc->opts.name,
        .endpoint = conn->endpoint->address,
        .from = ep_from(conn->endpoint),
        .detail = detail,
        .tls_version = sock && sock->tls ? tls_conn_version(sock->tls) : NULL,
        .tls_resumed = sock && sock->tls ? tls_conn_resumed(sock->tls) : 0,
    };
    up_report_service(conn->endpoint->svc, &ev);
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

/* Closes an endpoint's connections, their requests cancelled; the memory
 * goes when the upstream is freed (upstream_close may run from inside a
 * callback of one of these connections). */
static void close_endpoint(upstream_t *up, up_endpoint_t *ep)
{
    timers_stop(&up->timers, &ep->eject_timer);
    for (list_node_t *n = ep->conns.next; n != &ep->conns; n = n->next) {
        up_conn_t *c = LIST_OWNER(n, up_conn_t, link);
        cancel_list(&c->pending);
        cancel_list(&c->emits);
        conn_down(c, UP_CANCELLED, "the gateway is shutting down");
        timers_stop(&up->timers, &c->reconnect_timer);
    }
}

void upstream_close(upstream_t *up)
{
    up->closing = 1;
    run_finished(up);
    for (size_t i = 0; i < up->n_services; i++) {
        up_service_t *svc = up->services[i];
        cancel_list(&svc->waiting);
        timers_stop(&up->timers, &svc->retry_timer);
        for (size_t e = 0; e < svc->n_eps; e++)
            close_endpoint(up, svc->eps[e]);
        for (size_t t = 0; t < svc->n_targets; t++) { /* freed with the service */
            timers_stop(&up->timers, &svc->targets[t].resolve_timer);
            if (svc->targets[t].query)
                resolver_cancel(svc->targets[t].query);
            svc->targets[t].query = NULL;
        }
    }
    if (up->resolver) {
        up->open_handles++;
        resolver_close(up->resolver, on_resolver_closed, up);
        up->resolver = NULL;
    }
    /* socks closing now call upstream_handle_closed from their callbacks;
     * the last one to close frees the upstream */
    up->timers.handle.data = up;
    timers_close(&up->timers, on_own_handle_closed);
    uv_close((uv_handle_t *)&up->pending, on_own_handle_closed);
}
