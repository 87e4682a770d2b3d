/*
 * endpoint: see endpoint.h. One address of a service, its pool, ejection
 * and draining.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/upstream_internal.h"

const char *up_endpoint_state_name(up_endpoint_state_t state)
{
    static const char *const names[UP_EP_STATE_COUNT] = { "active", "draining", "ejected" };
    return state < UP_EP_STATE_COUNT ? names[state] : "unknown";
}

/* ---- the metric slot of the endpoint's address (upstream.h) ------------------ */

static void slot_write(up_eject_slot_t *s, const char *address, uint32_t live, uint32_t ejected)
{
    uint32_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    if (address) {
        size_t n = strlen(address);
        for (size_t i = 0; i < UP_EJECT_ADDRESS_SIZE; i++)
            atomic_store_explicit(&s->address[i], i < n ? address[i] : '\0', memory_order_relaxed);
    }
    atomic_store_explicit(&s->live, live, memory_order_relaxed);
    atomic_store_explicit(&s->ejected, ejected, memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
}

int up_eject_slot_read(const up_eject_slot_t *slot, char address[UP_EJECT_ADDRESS_SIZE], int *ejected)
{
    up_eject_slot_t *s = (up_eject_slot_t *)slot;
    for (int attempt = 0; attempt < 4; attempt++) {
        uint32_t before = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (before & 1)
            continue;
        int live = (int)atomic_load_explicit(&s->live, memory_order_relaxed);
        *ejected = (int)atomic_load_explicit(&s->ejected, memory_order_relaxed);
        for (size_t i = 0; i < UP_EJECT_ADDRESS_SIZE; i++)
            address[i] = atomic_load_explicit(&s->address[i], memory_order_relaxed);
        address[UP_EJECT_ADDRESS_SIZE - 1] = '\0';
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->seq, memory_order_relaxed) == before)
            return live;
    }
    return 0;
}

/* A slot for the endpoint's address: the one that had it before (so a
 * series keeps its labels), else any that is not live. */
static int slot_take(up_endpoint_t *ep)
{
    up_eject_slot_t *slots = ep->svc->stats->eject_slots;
    int free_slot = -1;
    for (int i = 0; i < UP_EJECT_SLOTS; i++) {
        char text[UP_EJECT_ADDRESS_SIZE];
        int ejected;
        if (atomic_load_explicit(&slots[i].live, memory_order_relaxed))
            continue;
        (void)up_eject_slot_read(&slots[i], text, &ejected);
        if (strcmp(text, ep->address) == 0) {
            free_slot = i;
            break;
        }
        if (free_slot < 0)
            free_slot = i;
    }
    if (free_slot >= 0)
        slot_write(&slots[free_slot], ep->address, 1, 0);
    return free_slot;
}

static void slot_set(up_endpoint_t *ep, uint32_t live, uint32_t ejected)
{
    if (ep->slot >= 0)
        slot_write(&ep->svc->stats->eject_slots[ep->slot], NULL, live, ejected);
}

/* ---- life ---------------------------------------------------------------------- */

static void set_state(up_endpoint_t *ep, up_endpoint_state_t state)
{
    up_service_stats_t *st = ep->svc->stats;
    up_count(&st->endpoints[ep->state], -1);
    up_count(&st->endpoints[state], 1);
    ep->state = state;
}

static int add_to_service(up_service_t *svc, up_endpoint_t *ep)
{
    if (svc->n_eps == svc->cap_eps) { /* pick_conn's scratch grows with it */
        size_t cap = svc->cap_eps ? svc->cap_eps * 2 : 4;
        up_endpoint_t **grown = realloc(svc->eps, cap * sizeof *grown);
        if (grown)
            svc->eps = grown;
        up_endpoint_t **pick_eps = grown ? realloc(svc->pick_eps, cap * sizeof *pick_eps) : NULL;
        if (pick_eps)
            svc->pick_eps = pick_eps;
        up_conn_t **pick_conns = pick_eps ? realloc(svc->pick_conns, cap * sizeof *pick_conns) : NULL;
        if (!pick_conns)
            return -1;
        svc->pick_conns = pick_conns;
        svc->cap_eps = cap;
    }
    svc->eps[svc->n_eps++] = ep;
    return 0;
}

static void remove_from_service(up_endpoint_t *ep)
{
    up_service_t *svc = ep->svc;
    for (size_t i = 0; i < svc->n_eps; i++) {
        if (svc->eps[i] == ep) {
            memmove(&svc->eps[i], &svc->eps[i + 1], (svc->n_eps - i - 1) * sizeof *svc->eps);
            svc->n_eps--;
            return;
        }
    }
}

static void format_address(up_endpoint_t *ep)
{
    char ip[RESOLVER_ADDR_TEXT_SIZE];
    resolver_addr_format(&ep->addr, ip, sizeof ip);
    if (ep->addr.family == RESOLVER_IPV6)
        snprintf(ep->address, sizeof ep->address, "[%s]:%u", ip, (unsigned)ep->target->port);
    else
        snprintf(ep->address, sizeof ep->address, "%s:%u", ip, (unsigned)ep->target->port);
}

up_endpoint_t *ep_new(up_service_t *svc, up_target_t *target, const resolver_addr_t *addr)
{
    up_endpoint_t *ep = calloc(1, sizeof *ep);
    if (!ep)
        return NULL;
    ep->svc = svc;
    ep->target = target;
    ep->slot = -1; /* none yet: a failure below must not clear slot 0 */
    ep->addr = *addr;
    ep->state = UP_EP_ACTIVE;
    (void)resolver_addr_sockaddr(addr, target->port, &ep->sockaddr);
    format_address(ep);
    list_init(&ep->conns);
    timer_entry_init(&ep->eject_timer);
    ep->disconnected_since_wall = up_wall_ms();
    if (add_to_service(svc, ep)) {
        free(ep);
        return NULL;
    }
    up_count(&svc->stats->endpoints[UP_EP_ACTIVE], 1);
    for (unsigned k = 0; k < svc->opts.pool_size; k++) {
        if (!conn_new(ep)) {
            ep_destroy(ep, UP_CLOSED, "out of memory");
            return NULL;
        }
    }
    ep->slot = slot_take(ep);
    if (svc->active)
        ep_start(ep);
    return ep;
}

void ep_start(up_endpoint_t *ep)
{
    if (!ep_may_connect(ep))
        return;
    for (list_node_t *n = ep->conns.next; n != &ep->conns; n = n->next) {
        up_conn_t *c = LIST_OWNER(n, up_conn_t, link);
        if (c->state == UP_CONN_DISCONNECTED && !c->retiring)
            conn_start(c);
    }
}

static void mark_sweep(up_endpoint_t *ep)
{
    ep->sweep = true;
    ep->svc->up->sweep_due = 1;
    upstream_schedule(ep->svc->up);
}

void ep_drain(up_endpoint_t *ep)
{
    if (ep->state == UP_EP_DRAINING)
        return;
    upstream_t *up = ep->svc->up;
    timers_stop(&up->timers, &ep->eject_timer);
    ep->ejected_until_wall = 0;
    slot_set(ep, 1, 0);
    set_state(ep, UP_EP_DRAINING);
    for (list_node_t *n = ep->conns.next; n != &ep->conns; n = n->next) {
        up_conn_t *c = LIST_OWNER(n, up_conn_t, link);
        timers_stop(&up->timers, &c->reconnect_timer);
        c->next_attempt_wall = 0;
    }
    mark_sweep(ep);
}

/* Whether a connection still owes a request or an event. */
static int conn_busy(const up_conn_t *c)
{
    return c->inflight > 0 || !list_empty(&c->emits);
}

int conn_usable(const up_conn_t *c)
{
    return c->state == UP_CONN_CONNECTED && !c->retiring && c->inflight < PG_CONN_MAX_PENDING &&
           conn_unwritten(c) < PG_CONN_MAX_UNWRITTEN;
}

up_conn_t *ep_best_conn(up_endpoint_t *ep, int *full)
{
    up_conn_t *best = NULL;
    for (list_node_t *n = ep->conns.next; n != &ep->conns; n = n->next) {
        up_conn_t *c = LIST_OWNER(n, up_conn_t, link);
        if (c->state != UP_CONN_CONNECTED || c->retiring)
            continue;
        if (!conn_usable(c)) {
            *full = 1;
            continue;
        }
        if (!best || c->inflight < best->inflight)
            best = c;
    }
    return best;
}

int ep_connecting(const up_endpoint_t *ep)
{
    for (list_node_t *n = ep->conns.next; n != &ep->conns; n = n->next)
        if (LIST_OWNER(n, up_conn_t, link)->state == UP_CONN_CONNECTING)
            return 1;
    return 0;
}

void ep_conn_state_changed(up_endpoint_t *ep)
{
    int connected = 0;
    for (list_node_t *n = ep->conns.next; n != &ep->conns; n = n->next)
        connected |= LIST_OWNER(n, up_conn_t, link)->state == UP_CONN_CONNECTED;
    if (connected)
        ep->disconnected_since_wall = 0;
    else if (!ep->disconnected_since_wall)
        ep->disconnected_since_wall = up_wall_ms();
}

/* ---- outlier ejection ---------------------------------------------------------- */

int ep_may_connect(const up_endpoint_t *ep)
{
    return ep->state == UP_EP_ACTIVE;
}

static void on_eject_over(timer_entry_t *e)
{
    up_endpoint_t *ep = LIST_OWNER(e, up_endpoint_t, eject_timer);
    if (ep->state != UP_EP_EJECTED)
        return;
    ep->ejected_until_wall = 0;
    slot_set(ep, 1, 0);
    set_state(ep, UP_EP_ACTIVE);
    if (ep->svc->active)
        ep_start(ep);
    svc_conn_up(ep->svc); /* waiting requests may find a connection again */
}

static void maybe_eject(up_endpoint_t *ep, const char *why)
{
    up_service_t *svc = ep->svc;
    upstream_t *up = svc->up;
    if (ep->state != UP_EP_ACTIVE || up->closing)
        return;
    int others = 0;
    for (size_t i = 0; i < svc->n_eps; i++)
        others += svc->eps[i] != ep && svc->eps[i]->state == UP_EP_ACTIVE;
    if (others == 0)
        return; /* never the last one */
    unsigned shift = ep->ejections < 5 ? ep->ejections : 5;
    uint64_t ms = (uint64_t)PG_EJECT_BASE_MS << shift;
    if (ms > PG_EJECT_MAX_MS)
        ms = PG_EJECT_MAX_MS;
    ep->ejections++;
    ep->connect_failures = ep->protocol_errors = 0;
    ep->ejected_until_wall = up_wall_ms() + ms;
    set_state(ep, UP_EP_EJECTED);
    slot_set(ep, 1, 1);
    timers_start(&up->timers, &ep->eject_timer, ms, on_eject_over);
    for (list_node_t *n = ep->conns.next; n != &ep->conns; n = n->next) {
        up_conn_t *c = LIST_OWNER(n, up_conn_t, link);
        timers_stop(&up->timers, &c->reconnect_timer);
        c->next_attempt_wall = 0;
    }
    up_event_t ev = { .type = UP_EV_EJECTED, .service = svc->opts.name, .endpoint = ep->address,
                      .from = ep_from(ep), .detail = why, .ejected_ms = ms };
    up_report_service(svc, &ev);
}

const char *ep_from(const up_endpoint_t *ep)
{
    return ep->target->is_name ? ep->target->host : NULL;
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

void ep_reply_ok(up_endpoint_t *ep)
{
    ep->protocol_errors = 0;
}

void ep_stable(up_endpoint_t *ep)
{
    ep->ejections = 0;
}

/* ---- retiring connections and draining ---------------------------------------- */

void ep_conn_aged(up_conn_t *conn)
{
    up_endpoint_t *ep = conn->endpoint;
    if (conn->retiring || conn->state != UP_CONN_CONNECTED)
        return;
    conn->retiring = true;
    if (ep->state != UP_EP_DRAINING) { /* its replacement starts at once */
        up_conn_t *fresh = conn_new(ep);
        if (fresh && ep->svc->active && ep_may_connect(ep))
            conn_start(fresh);
    }
    mark_sweep(ep);
}

void ep_request_left(up_endpoint_t *ep, up_conn_t *conn)
{
    if ((conn && conn->retiring && !conn_busy(conn)) || (ep->state == UP_EP_DRAINING && ep->inflight == 0))
        mark_sweep(ep);
}

static void close_and_free(up_conn_t *c, up_outcome_t outcome, const char *why)
{
    conn_down(c, outcome, why);
    conn_free(c);
}

static void ep_free(up_endpoint_t *ep)
{
    upstream_t *up = ep->svc->up;
    timers_stop(&up->timers, &ep->eject_timer);
    remove_from_service(ep);
    up_count(&ep->svc->stats->endpoints[ep->state], -1);
    slot_set(ep, 0, 0);
    tls_session_free(ep->tls_session);
    free(ep);
}

int ep_sweep(up_endpoint_t *ep)
{
    ep->sweep = false;
    for (list_node_t *n = ep->conns.next; n != &ep->conns;) {
        up_conn_t *c = LIST_OWNER(n, up_conn_t, link);
        n = n->next;
        if (c->retiring && !conn_busy(c))
            close_and_free(c, UP_CLOSED, "connection retired (max_connection_age_ms)");
    }
    if (ep->state != UP_EP_DRAINING)
        return 0;
    for (list_node_t *n = ep->conns.next; n != &ep->conns; n = n->next)
        if (conn_busy(LIST_OWNER(n, up_conn_t, link)))
            return 0;
    up_event_t ev = { .type = UP_EV_DRAINED, .service = ep->svc->opts.name, .endpoint = ep->address,
                      .from = ep_from(ep) };
    up_report_service(ep->svc, &ev);
    ep_destroy(ep, UP_CLOSED, "the endpoint left the service's DNS answer");
    return 1;
}

void ep_destroy(up_endpoint_t *ep, up_outcome_t outcome, const char *why)
{
    list_node_t *n;
    while ((n = list_first(&ep->conns)) != NULL)
        close_and_free(LIST_OWNER(n, up_conn_t, link), outcome, why);
    ep_free(ep);
}

/* ---- /status ---------------------------------------------------------------------- */

up_conn_t *ep_conn_at(const up_endpoint_t *ep, size_t k)
{
    for (list_node_t *n = ep->conns.next; n != &ep->conns; n = n->next)
        if (k-- == 0)
            return LIST_OWNER(n, up_conn_t, link);
    return NULL;
}

void ep_info(const up_endpoint_t *ep, up_endpoint_info_t *out)
{
    uint64_t next = 0; /* the earliest reconnect planned */
    for (list_node_t *n = ep->conns.next; n != &ep->conns; n = n->next) {
        const up_conn_t *c = LIST_OWNER(n, up_conn_t, link);
        if (c->next_attempt_wall && (!next || c->next_attempt_wall < next))
            next = c->next_attempt_wall;
    }
    if (ep->state == UP_EP_EJECTED)
        next = ep->ejected_until_wall;
    *out = (up_endpoint_info_t){
        .address = ep->address,
        .from = ep_from(ep),
        .state = ep->state,
        .inflight = ep->inflight,
        .requests = ep->requests,
        .ejected_until = ep->ejected_until_wall,
        .disconnected_since = ep->disconnected_since_wall,
        .next_attempt_at = next,
        .n_conns = ep->n_conns,
    };
}
