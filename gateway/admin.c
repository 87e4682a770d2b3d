#include "gateway/admin.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json_write.h"
#include "gateway/metrics.h"
#include "gateway/openapi.h"

int admin_is_path(const char *url)
{
    return strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0 || strcmp(url, "/status") == 0 ||
           strcmp(url, "/metrics") == 0 || strcmp(url, "/openapi.json") == 0 || strcmp(url, "/docs") == 0;
}

int admin_is_probe(const char *url)
{
    return strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0;
}

static void put_cstr(buf_t *b, const char *s) { json_append_string(b, s, strlen(s)); }

static void put_u64(buf_t *b, uint64_t v) { buf_append_u64(b, v); }

static void put_str_or_null(buf_t *b, const char *s)
{
    if (s && *s)
        put_cstr(b, s);
    else
        buf_append_cstr(b, "null");
}

/* ms since the epoch as "2026-11-22T04:12:23.081Z", or null for 0. */
static void put_time(buf_t *b, uint64_t ms)
{
    if (ms == 0) {
        buf_append_cstr(b, "null");
        return;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm utc;
    gmtime_r(&s, &utc);
    char text[40];
    size_t n = strftime(text, sizeof text, "\"%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(text + n, sizeof text - n, ".%03uZ\"", (unsigned)(ms % 1000));
    buf_append_cstr(b, text);
}

/* /readyz from the worker's config and, per service, whether every worker
 * asked has a connected connection to it (connected(ctx, i)). */
static void render_ready(const worker_t *w, admin_reply_t *r, int (*connected)(const void *ctx, size_t i),
                         const void *ctx)
{
    buf_clear(&r->body);
    if (w->draining) {
        r->status = 503;
        buf_append_cstr(&r->body, "{\"status\":\"draining\"}");
        return;
    }
    const config *cfg = w->gen->cfg;
    buf_append_cstr(&r->body, "{\"status\":\"not_ready\",\"services\":[");
    int missing = 0;
    for (size_t i = 0; i < cfg->service_count; i++) {
        const config_service *s = &cfg->services[i];
        if (s->connect != UP_CONNECT_EAGER || connected(ctx, i))
            continue;
        if (missing++)
            buf_append(&r->body, ",", 1);
        put_cstr(&r->body, s->name);
    }
    buf_append_cstr(&r->body, "]}");
    r->status = missing ? 503 : 200;
    if (!missing) {
        buf_clear(&r->body);
        buf_append_cstr(&r->body, "{\"status\":\"ready\"}");
    }
}

static int connected_here(const void *ctx, size_t i)
{
    const worker_t *w = ctx;
    return up_service_conns_in_state(w->gen->services[i], UP_CONN_CONNECTED) > 0;
}

/* ---- one worker's part of /status ------------------------------------------------ */

typedef struct part_endpoint {
    char *address;
    uint64_t inflight;  /* this worker's: summed over the workers */
    uint64_t requests;
    buf_t fields;       /* the endpoint's other members, each led by a comma:
                           the first worker that lists it tells */
    buf_t connections;  /* its connections' objects, comma-separated */
} part_endpoint_t;

typedef struct part_service {
    char *name;
    uint64_t inflight;
    uint64_t late_replies;
    uint64_t resolved_at;     /* its names' last good answer, ms since the epoch */
    char *resolve_error;      /* NULL: none */
    uint64_t connected;       /* this worker's connected connections (for /readyz) */
    part_endpoint_t *endpoints;
    size_t n_endpoints;
} part_service_t;

typedef struct status_part {
    int present;               /* the worker answered */
    uint64_t inflight;
    uint64_t http_connections;
    part_service_t *services;
    size_t n_services;
} status_part_t;

static void part_free(status_part_t *p)
{
    for (size_t i = 0; i < p->n_services; i++) {
        part_service_t *s = &p->services[i];
        for (size_t e = 0; e < s->n_endpoints; e++) {
            free(s->endpoints[e].address);
            buf_free(&s->endpoints[e].fields);
            buf_free(&s->endpoints[e].connections);
        }
        free(s->endpoints);
        free(s->name);
        free(s->resolve_error);
    }
    free(p->services);
    memset(p, 0, sizeof *p);
}

static void render_connection(buf_t *b, unsigned worker, const up_conn_info_t *c)
{
    buf_append_cstr(b, "{\"worker\":");
    put_u64(b, worker);
    buf_append_cstr(b, ",\"state\":");
    put_cstr(b, up_conn_state_name(c->state));
    buf_append_cstr(b, ",\"inflight\":");
    put_u64(b, c->inflight);
    buf_append_cstr(b, ",\"requests\":");
    put_u64(b, c->requests);
    buf_append_cstr(b, ",\"errors\":");
    put_u64(b, c->errors);
    buf_append_cstr(b, ",\"reconnects\":");
    put_u64(b, c->reconnects);
    buf_append_cstr(b, ",\"last_error\":");
    put_str_or_null(b, c->last_error);
    buf_append_cstr(b, ",\"last_error_at\":");
    put_time(b, c->last_error_at);
    buf_append_cstr(b, ",\"connected_since\":");
    put_time(b, c->connected_since);
    if (c->retiring)
        buf_append_cstr(b, ",\"retiring\":true");
    if (c->tls_version) {
        buf_append_cstr(b, ",\"tls_version\":");
        put_cstr(b, c->tls_version);
    }
    buf_append_cstr(b, "}");
}

/* An endpoint's members other than address, inflight, requests and
 * connections. */
static void render_endpoint_fields(buf_t *b, const up_service_t *svc, const up_endpoint_info_t *info)
{
    buf_append_cstr(b, ",\"from\":");
    put_str_or_null(b, info->from);
    buf_append_cstr(b, ",\"state\":");
    put_cstr(b, up_endpoint_state_name(info->state));
    buf_append_cstr(b, up_service_uses_tls(svc) ? ",\"tls\":true" : ",\"tls\":false");
    buf_append_cstr(b, ",\"ejected_until\":");
    put_time(b, info->ejected_until);
    buf_append_cstr(b, ",\"disconnected_since\":");
    put_time(b, info->disconnected_since);
    buf_append_cstr(b, ",\"next_attempt_at\":");
    put_time(b, info->next_attempt_at);
}

static int part_service(part_service_t *ps, unsigned worker, const config_service *cs, const up_service_t *svc)
{
    const up_service_stats_t *st = up_service_stats(svc);
    ps->name = strdup(cs->name);
    ps->inflight = up_read(&st->inflight);
    ps->late_replies = up_read(&st->late_replies);
    ps->connected = up_service_conns_in_state(svc, UP_CONN_CONNECTED);
    const char *resolve_error;
    up_service_resolve_info(svc, &ps->resolved_at, &resolve_error);
    if (resolve_error && *resolve_error && !(ps->resolve_error = strdup(resolve_error)))
        return -1;
    ps->n_endpoints = up_service_endpoint_count(svc);
    ps->endpoints = calloc(ps->n_endpoints ? ps->n_endpoints : 1, sizeof *ps->endpoints);
    if (!ps->name || !ps->endpoints)
        return -1;
    (void)cs;
    for (size_t e = 0; e < ps->n_endpoints; e++) {
        part_endpoint_t *pe = &ps->endpoints[e];
        up_endpoint_info_t info;
        up_service_endpoint_info(svc, e, &info);
        if (!(pe->address = strdup(info.address)))
            return -1;
        pe->inflight = info.inflight;
        pe->requests = info.requests;
        render_endpoint_fields(&pe->fields, svc, &info);
        for (size_t k = 0; k < info.n_conns; k++) {
            up_conn_info_t conn;
            up_service_conn_info(svc, e, k, &conn);
            if (k)
                buf_append_cstr(&pe->connections, ",");
            render_connection(&pe->connections, worker, &conn);
        }
    }
    return 0;
}

/* This worker's part, on its own loop. -1 when out of memory. */
static int render_part(const worker_t *w, status_part_t *p)
{
    const config *cfg = w->gen->cfg;
    p->present = 1;
    p->inflight = upstream_inflight(w->up);
    p->http_connections = httpd_connection_count(w->httpd);
    p->services = calloc(cfg->service_count ? cfg->service_count : 1, sizeof *p->services);
    if (!p->services)
        return -1;
    p->n_services = cfg->service_count;
    for (size_t i = 0; i < cfg->service_count; i++)
        if (part_service(&p->services[i], w->index, &cfg->services[i], w->gen->services[i]))
            return -1;
    return 0;
}

/* ---- the whole of /status from the parts ----------------------------------------- */

static const part_service_t *find_service(const status_part_t *p, const char *name)
{
    for (size_t i = 0; p->present && i < p->n_services; i++)
        if (strcmp(p->services[i].name, name) == 0)
            return &p->services[i];
    return NULL;
}

/* The endpoints of one service, each once, in the order the parts list
 * them; every worker's connections to it together. */
static void render_endpoints(buf_t *b, const status_part_t *parts, size_t n, const char *service)
{
    buf_append_cstr(b, "[");
    size_t written = 0;
    for (size_t w = 0; w < n; w++) {
        const part_service_t *ps = find_service(&parts[w], service);
        for (size_t e = 0; ps && e < ps->n_endpoints; e++) {
            const char *address = ps->endpoints[e].address;
            int seen = 0;
            for (size_t v = 0; v < w && !seen; v++) {
                const part_service_t *prev = find_service(&parts[v], service);
                for (size_t k = 0; prev && k < prev->n_endpoints && !seen; k++)
                    seen = strcmp(prev->endpoints[k].address, address) == 0;
            }
            if (seen)
                continue;
            buf_append_cstr(b, written++ ? ",{\"address\":" : "{\"address\":");
            put_cstr(b, address);
            buf_append(b, ps->endpoints[e].fields.data, ps->endpoints[e].fields.len);
            buf_t conns = BUF_INIT;
            uint64_t inflight = 0, requests = 0;
            for (size_t v = w; v < n; v++) { /* this part's and the later ones' */
                const part_service_t *other = find_service(&parts[v], service);
                for (size_t k = 0; other && k < other->n_endpoints; k++) {
                    const part_endpoint_t *pe = &other->endpoints[k];
                    if (strcmp(pe->address, address) != 0)
                        continue;
                    inflight += pe->inflight;
                    requests += pe->requests;
                    if (pe->connections.len == 0)
                        continue;
                    if (conns.len)
                        buf_append_cstr(&conns, ",");
                    buf_append(&conns, pe->connections.data, pe->connections.len);
                }
            }
            buf_append_cstr(b, ",\"inflight\":");
            put_u64(b, inflight);
            buf_append_cstr(b, ",\"requests\":");
            put_u64(b, requests);
            buf_append_cstr(b, ",\"connections\":[");
            buf_append(b, conns.data ? conns.data : "", conns.len);
            buf_free(&conns);
            buf_append_cstr(b, "]}");
        }
    }
    buf_append_cstr(b, "]");
}

static void render_service(buf_t *b, const config_service *cs, const status_part_t *parts, size_t n)
{
    uint64_t inflight = 0, late = 0, resolved_at = 0;
    const char *resolve_error = NULL;
    for (size_t w = 0; w < n; w++) {
        const part_service_t *ps = find_service(&parts[w], cs->name);
        if (!ps)
            continue;
        inflight += ps->inflight;
        late += ps->late_replies;
        if (ps->resolved_at > resolved_at)
            resolved_at = ps->resolved_at;
        if (!resolve_error)
            resolve_error = ps->resolve_error;
    }
    buf_append_cstr(b, "{\"connect\":");
    put_cstr(b, settings_connect_name(cs->connect));
    buf_append_cstr(b, ",\"balance\":");
    put_cstr(b, settings_balance_name(cs->balance));
    buf_append_cstr(b, ",\"inflight\":");
    put_u64(b, inflight);
    buf_append_cstr(b, ",\"late_replies\":");
    put_u64(b, late);
    buf_append_cstr(b, ",\"resolved_at\":");
    put_time(b, resolved_at);
    buf_append_cstr(b, ",\"last_resolve_error\":");
    put_str_or_null(b, resolve_error);
    buf_append_cstr(b, ",\"endpoints\":");
    render_endpoints(b, parts, n, cs->name);
    buf_append_cstr(b, "}");
}

static void render_config(buf_t *b, const worker_t *w)
{
    const config *cfg = w->gen->cfg;
    buf_append_cstr(b, ",\"config\":{\"file\":");
    put_str_or_null(b, cfg->file);
    buf_append_cstr(b, ",\"loaded_at\":");
    put_time(b, w->config_loaded_at_ms);
    buf_append_cstr(b, ",\"last_reload_error\":");
    put_str_or_null(b, w->last_reload_error);
    buf_append_cstr(b, ",\"last_reload_error_at\":");
    put_time(b, w->last_reload_error_at_ms);
    buf_append_cstr(b, "}");
}

static void render_listeners(buf_t *b, const config *cfg)
{
    char addr[HOSTPORT_TEXT_SIZE];
    hostport_format(&cfg->listen, addr, sizeof addr);
    buf_append_cstr(b, ",\"listen\":");
    put_cstr(b, addr);
    buf_append_cstr(b, ",\"admin_listen\":");
    if (cfg->has_admin_listen) {
        hostport_format(&cfg->admin_listen, addr, sizeof addr);
        put_cstr(b, addr);
    } else {
        buf_append_cstr(b, "null");
    }
}

/* The whole /status from the parts of n workers (some maybe absent). */
static void render_status(buf_t *b, const worker_t *w, const status_part_t *parts, size_t n)
{
    const config *cfg = w->gen->cfg;
    uint64_t inflight = 0, http = 0;
    size_t answered = 0;
    for (size_t i = 0; i < n; i++) {
        inflight += parts[i].inflight;
        http += parts[i].http_connections;
        answered += parts[i].present;
    }
    char uptime[32];
    snprintf(uptime, sizeof uptime, "%.3f", (double)(uv_hrtime() - w->started_ns) / 1e9);
    buf_append_cstr(b, "{\"version\":");
    put_cstr(b, PG_VERSION);
    buf_append_cstr(b, ",\"uptime_seconds\":");
    buf_append_cstr(b, uptime);
    buf_append_cstr(b, ",\"inflight\":");
    put_u64(b, inflight);
    buf_append_cstr(b, ",\"draining\":");
    buf_append_cstr(b, w->draining ? "true" : "false");
    render_config(b, w);
    render_listeners(b, cfg);
    buf_append_cstr(b, ",\"workers\":");
    put_u64(b, w->count);
    buf_append_cstr(b, ",\"workers_answered\":");
    put_u64(b, answered);
    buf_append_cstr(b, ",\"http_connections\":");
    put_u64(b, http);
    buf_append_cstr(b, ",\"routes\":");
    put_u64(b, cfg->route_count);
    buf_append_cstr(b, ",\"services\":{");
    for (size_t i = 0; i < cfg->service_count; i++) {
        if (i)
            buf_append_cstr(b, ",");
        put_cstr(b, cfg->services[i].name);
        buf_append_cstr(b, ":");
        render_service(b, &cfg->services[i], parts, n);
    }
    buf_append_cstr(b, "}}");
}

static int status_alone(const worker_t *w, admin_reply_t *r)
{
    status_part_t part = { 0 };
    int rc = render_part(w, &part);
    if (rc == 0)
        render_status(&r->body, w, &part, 1);
    part_free(&part);
    r->status = 200;
    return rc;
}

/* ---- answers -------------------------------------------------------------------- */

int admin_answer(const worker_t *w, const char *method, const char *url, admin_reply_t *r)
{
    *r = (admin_reply_t){ 200, BUF_INIT, "application/json", NULL, -1, NULL };
    if (!admin_is_path(url)) {
        r->error = GW_ERR_NOT_FOUND;
        r->message = "the admin listener serves /healthz, /readyz, /status, /metrics, /openapi.json and /docs";
        return 0;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        r->error = GW_ERR_METHOD_NOT_ALLOWED;
        r->message = "admin endpoints answer GET";
        r->allow = "GET, HEAD";
        return 0;
    }
    int failed = 0;
    if (strcmp(url, "/healthz") == 0) {
        failed = buf_append_cstr(&r->body, "{\"status\":\"ok\"}");
    } else if (strcmp(url, "/readyz") == 0) {
        if (w->count > 1 && !w->draining)
            return 1;
        render_ready(w, r, connected_here, w);
    } else if (strcmp(url, "/status") == 0) {
        if (w->count > 1)
            return 1;
        failed = status_alone(w, r);
    } else if (strcmp(url, "/openapi.json") == 0) { /* built from the config the worker runs */
        failed = openapi_write(w->gen->cfg, 0, &r->body);
    } else if (strcmp(url, "/docs") == 0) {
        r->content_type = "text/html; charset=utf-8";
        failed = openapi_docs_page(w->gen->cfg, &r->body);
    } else {
        r->content_type = "text/plain; version=0.0.4; charset=utf-8";
        failed = metrics_render(&r->body, w->all_metrics, w->count, w->gen->cfg);
    }
    if (failed) {
        buf_free(&r->body);
        r->error = GW_ERR_OVERLOADED;
        r->message = "out of memory";
    }
    return 0;
}

/* ---- /status over every worker ------------------------------------------------- */

struct admin_gather {
    _Atomic unsigned refs;      /* the asker's (until done or abandoned) + one per message */
    peers_t *peers;             /* outlives every worker: a drop may use it */
    worker_t *w;                /* the asker's: only its thread reads the rest */
    admin_gathered_fn done;
    void *ctx;
    int ready;                  /* asked for /readyz, else /status */
    int abandoned;
    size_t pending;             /* parts not yet in */
    size_t n;
    status_part_t *parts;       /* [n], by worker */
};

typedef struct status_msg {
    peer_msg_t base;            /* first */
    admin_gather_t *gather;     /* opaque to the worker that renders */
    unsigned worker;            /* whose part it carries */
    status_part_t part;
} status_msg_t;

static void gather_unref(admin_gather_t *g)
{
    if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < g->n; i++)
        part_free(&g->parts[i]);
    free(g->parts);
    free(g);
}

static void msg_release(status_msg_t *m)
{
    part_free(&m->part);
    gather_unref(m->gather);
    free(m);
}

/* Undeliverable: an ASK goes back to the asker without a part (its worker
 * has stopped); a PART whose asker has stopped is released. */
static void msg_drop(peer_msg_t *base)
{
    status_msg_t *m = (status_msg_t *)base;
    if (base->kind == PEER_STATUS_ASK) {
        unsigned asker = base->from;
        base->kind = PEER_STATUS_PART;
        if (peers_post(m->gather->peers, asker, base) == 0)
            return;
    }
    msg_release(m);
}

admin_gather_t *admin_gather(worker_t *w, const char *url, admin_gathered_fn done, void *ctx)
{
    size_t n = w->count;
    admin_gather_t *g = calloc(1, sizeof *g);
    status_part_t *parts = calloc(n, sizeof *parts);
    if (!g || !parts) {
        free(g);
        free(parts);
        return NULL;
    }
    *g = (admin_gather_t){ .peers = w->peers, .w = w, .done = done, .ctx = ctx, .ready = strcmp(url, "/readyz") == 0,
                           .pending = n, .n = n, .parts = parts };
    atomic_init(&g->refs, 1);
    for (unsigned i = 0; i < n; i++) { /* itself last: its answer comes from its loop too */
        unsigned to = (w->index + 1 + i) % (unsigned)n;
        status_msg_t *m = calloc(1, sizeof *m);
        if (m) {
            *m = (status_msg_t){ .base = { NULL, PEER_STATUS_ASK, w->index, msg_drop }, .gather = g, .worker = to };
            atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
            if (peers_post(w->peers, to, &m->base) == 0)
                continue;
            atomic_fetch_sub_explicit(&g->refs, 1, memory_order_relaxed);
            free(m);
        }
        if (to == w->index) { /* no answer would ever come */
            g->abandoned = 1;
            gather_unref(g);
            return NULL;
        }
        g->pending--; /* a stopped worker: it answers nothing */
    }
    return g;
}

void admin_gather_abandon(admin_gather_t *g)
{
    g->abandoned = 1;
    gather_unref(g);
}

/* Whether every worker that answered has a connected connection to the
 * asker's service i (a worker whose config lacks it, mid-reload, does not
 * count). */
static int connected_everywhere(const void *ctx, size_t i)
{
    const admin_gather_t *g = ctx;
    const char *name = g->w->gen->cfg->services[i].name;
    for (size_t k = 0; k < g->n; k++) {
        const part_service_t *ps = find_service(&g->parts[k], name);
        if (ps && ps->connected == 0)
            return 0;
    }
    return 1;
}

/* On the asker's loop: one part in; the last one completes the answer. */
static void part_in(worker_t *w, status_msg_t *m)
{
    admin_gather_t *g = m->gather;
    if (!g->abandoned) {
        if (m->worker < g->n) {
            part_free(&g->parts[m->worker]);
            g->parts[m->worker] = m->part;
            memset(&m->part, 0, sizeof m->part);
        }
        if (--g->pending == 0) {
            admin_reply_t r = { 200, BUF_INIT, "application/json", NULL, -1, NULL };
            if (g->ready)
                render_ready(w, &r, connected_everywhere, g);
            else
                render_status(&r.body, w, g->parts, g->n);
            g->abandoned = 1; /* answered: the asker's reference goes */
            g->done(g->ctx, &r);
            buf_free(&r.body);
            gather_unref(g);
        }
    }
    msg_release(m);
}

void admin_on_message(worker_t *w, peer_msg_t *base)
{
    status_msg_t *m = (status_msg_t *)base;
    if (base->kind == PEER_STATUS_PART) {
        part_in(w, m);
        return;
    }
    if (render_part(w, &m->part) != 0) /* out of memory: reported as absent */
        part_free(&m->part);
    base->kind = PEER_STATUS_PART;
    if (peers_post(w->peers, base->from, base) != 0)
        msg_release(m);
}
