/*
 * proxy: see proxy.h.
 */
#include "gateway/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "core/hostport.h"
#include "core/json_write.h"
#include "core/urlcode.h"
#include "core/utf8.h"
#include "gateway/access_log.h"
#include "gateway/admin.h"
#include "gateway/auth.h"
#include "gateway/claims.h"
#include "gateway/cors.h"
#include "gateway/edge.h"
#include "gateway/envelope.h"
#include "gateway/generic.h"
#include "gateway/http_head.h"
#include "gateway/render.h"
#include "gateway/request_walk.h"
#include "gateway/router.h"

struct proxy {
    worker_t *w;
    ex_pool_t *pool;
    uint64_t rng;               /* request ids */
    list_node_t unwritten;      /* stream requests waiting for a connection */
    uv_check_t written_check;   /* looks at them after a connection came up */
};

/* One request: the pool's object, the exchange first. */
typedef struct request {
    exchange_t ex;
    proxy_t *px;
    generation_t *gen;           /* the config it runs on, held */
    const char *label;           /* route template, "generic", "admin", "unmatched" */
    int label_metric;            /* its metrics index */
    /* where it goes */
    const config_route *route;   /* NULL for the generic API */
    router_match_t match;
    size_t service_index;
    int has_service;
    int is_emit;
    int streaming;               /* reply ndjson or sse */
    config_reply_mode reply;
    unsigned ok_status;
    uint64_t timeout_ms;
    unsigned retries;            /* route retries, or ?retries= */
    config_fanout fanout;        /* emit: route fanout, or ?fanout= */
    size_t delivered;            /* emit: endpoints the event was written to */
    char delivered_text[24];     /* its X-Delivered value: the header keeps a
                                    pointer until the answer is queued */
    /* the body */
    buf_t body;
    int body_too_large;
    /* upstream */
    up_request_t *req;
    list_node_t unwritten_link;  /* in px->unwritten while a stream waits */
    uint64_t upstream_started_ns;
    char upstream[HOSTPORT_TEXT_SIZE]; /* the endpoint it was written on */
    size_t nvalues;
    buf_t values;                /* the values so far, comma-separated */
    buf_t query_value;           /* the last query parameter looked up */
    buf_t metadata;              /* the packet's metadata, while dispatching */
    buf_t rendered;              /* the packet's data from a template, idem */
    envelope_t envelope;         /* reply "envelope": its headers, until completion */
    admin_gather_t *gather;      /* /status over several workers */
    char request_id[132];
    /* the edge policy, decided from the head */
    buf_t claims;                /* the verified JWT's claims; empty: none */
    buf_t key;                   /* the rate limit's key, while it is taken */
    const char *auth_refused;    /* why auth refused it (auth_reason_name) */
    int rate_limited;            /* answered 429 by the route's rate_limit */
    char challenge[AUTH_CHALLENGE_SIZE];   /* WWW-Authenticate */
    char limit_text[4][24];      /* RateLimit-Limit, -Remaining, -Reset, Retry-After */
} request_t;

static request_t *req_of(exchange_t *ex) { return (request_t *)ex; }

static worker_t *worker_of(const request_t *r) { return r->px->w; }

static const config *cfg_of(const request_t *r) { return r->gen->cfg; }

static const char *header(const request_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->ex.conn, MHD_HEADER_KIND, name);
}

static const char *service_name(const request_t *r)
{
    return cfg_of(r)->services[r->service_index].name;
}

/* ---- request id, metadata ------------------------------------------------ */

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

/* 32 random hex digits and a NUL into out (written by hand: snprintf's
 * cost showed in profiles, and this runs for every request). */
#define REQUEST_ID_SIZE 33
static void new_request_id(proxy_t *px, char out[REQUEST_ID_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a, b;
    px->rng ^= px->rng << 13; px->rng ^= px->rng >> 7; px->rng ^= px->rng << 17;
    a = px->rng;
    px->rng ^= px->rng << 13; px->rng ^= px->rng >> 7; px->rng ^= px->rng << 17;
    b = px->rng;
    for (int i = 0; i < 16; i++) {
        out[i] = hex[(a >> (60 - 4 * i)) & 15];
        out[16 + i] = hex[(b >> (60 - 4 * i)) & 15];
    }
    out[32] = '\0';
}

static void assign_request_id(request_t *r)
{
    const char *given = header(r, "X-Request-Id");
    if (usable_request_id(given))
        snprintf(r->request_id, sizeof r->request_id, "%s", given);
    else
        new_request_id(r->px, r->request_id);
    ex_header(&r->ex, "X-Request-Id", r->request_id);
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

static void build_metadata(request_t *r, buf_t *m)
{
    buf_append_cstr(m, "{");
    add_metadata_field(m, "requestId", r->request_id);
    add_metadata_field(m, "traceparent", header(r, "traceparent"));
    add_metadata_field(m, "tracestate", header(r, "tracestate"));
    const config_jwt *jwt = cfg_of(r)->jwt;
    if (jwt && r->claims.len) /* auth.jwt.forward_claims, as "jwt.<claim>" */
        claims_forward(m, span_of(r->claims.data, r->claims.len), jwt->forward_claims, jwt->forward_claim_count);
    buf_append_cstr(m, "}");
}

/* ---- the admin API ------------------------------------------------------- */

static void on_gathered(void *ctx, admin_reply_t *a)
{
    request_t *r = ctx;
    r->gather = NULL;
    ex_answer(&r->ex, a->status, a->content_type, &a->body);
}

static void answer_admin(request_t *r)
{
    r->label = "admin";
    r->label_metric = METRICS_ROUTE_ADMIN;
    admin_reply_t a;
    if (admin_answer(worker_of(r), r->ex.method, r->ex.url, &a)) {
        if ((r->gather = admin_gather(worker_of(r), r->ex.url, on_gathered, r)) != NULL)
            ex_wait_workers(&r->ex);
        else
            ex_fail(&r->ex, GW_ERR_OVERLOADED, "out of memory", span_of(NULL, 0));
        return;
    }
    if (a.allow)
        ex_header(&r->ex, MHD_HTTP_HEADER_ALLOW, a.allow);
    if (a.error >= 0)
        ex_fail(&r->ex, (gw_error_t)a.error, a.message, span_of(NULL, 0));
    else
        ex_answer(&r->ex, a.status, a.content_type, &a.body);
    buf_free(&a.body);
}

/* ---- deciding where a request goes --------------------------------------- */

/* An answer decided while routing, given once the token is checked. */
typedef struct verdict {
    int error;                  /* gw_error_t, or -1: go on */
    const char *message;
    const char *allow;          /* 405: the Allow header */
} verdict_t;

#define GO_ON ((verdict_t){ -1, NULL, NULL })

static void use_route_label(request_t *r, size_t route_index)
{
    r->label = cfg_of(r)->routes[route_index].path.text;
    r->label_metric = r->gen->route_metric[route_index];
}

/* /v1/send/NAME and /v1/emit/NAME; 1 when the path is one of them (or
 * cannot be decoded), with *v set. */
static int route_generic(request_t *r, verdict_t *v)
{
    span_t name;
    int kind = generic_match_path(r->ex.url, &r->match, &name);
    if (kind == GENERIC_PATH_NONE)
        return 0;
    if (kind == GENERIC_PATH_BAD || kind < 0) {
        *v = kind < 0 ? (verdict_t){ GW_ERR_OVERLOADED, "out of memory", NULL }
                      : (verdict_t){ GW_ERR_BAD_REQUEST, r->match.error, NULL };
        return 1;
    }
    r->label = "generic";
    r->label_metric = METRICS_ROUTE_GENERIC;
    const config *cfg = cfg_of(r);
    const config_service *svc = NULL;
    for (size_t i = 0; i < cfg->service_count; i++) {
        if (cfg->services[i].generic_api && span_eq_cstr(name, cfg->services[i].name)) {
            svc = &cfg->services[i];
            r->service_index = i;
        }
    }
    if (!svc) {
        *v = (verdict_t){ GW_ERR_NOT_FOUND, "no such service for the generic API", NULL };
        return 1;
    }
    if (strcmp(r->ex.method, "POST") != 0) {
        *v = (verdict_t){ GW_ERR_METHOD_NOT_ALLOWED, "the generic API takes POST", "POST" };
        return 1;
    }
    r->has_service = 1;
    r->is_emit = kind == GENERIC_PATH_EMIT;
    r->ok_status = r->is_emit ? 202 : 200;
    r->timeout_ms = svc->timeout_ms;
    *v = GO_ON;
    return 1;
}

/* The generic API's ?reply=, ?retries= and ?fanout=, once the token is
 * checked. */
static int generic_parameters(request_t *r)
{
    char why[160];
    struct MHD_Connection *c = r->ex.conn;
    const char *reply = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "reply");
    const char *retries = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "retries");
    const char *fanout = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "fanout");
    if ((r->is_emit || !generic_parse_reply(reply, &r->reply, why, sizeof why)) &&
        !generic_parse_retries(retries, &r->retries, why, sizeof why) &&
        (!r->is_emit || !generic_parse_fanout(fanout, &r->fanout, why, sizeof why)))
        return 0;
    ex_fail(&r->ex, GW_ERR_BAD_REQUEST, why, span_of(NULL, 0));
    return -1;
}

static verdict_t route_configured(request_t *r)
{
    switch (router_match(r->gen->router, r->ex.method, r->ex.url, &r->match)) {
    case ROUTER_FOUND:
        break;
    case ROUTER_METHOD_NOT_ALLOWED: /* counted under the path's route */
        use_route_label(r, r->match.route_index);
        return (verdict_t){ GW_ERR_METHOD_NOT_ALLOWED, NULL, r->match.allow };
    case ROUTER_BAD_PATH:
        return (verdict_t){ GW_ERR_BAD_REQUEST, r->match.error, NULL };
    case ROUTER_NO_MEMORY:
        return (verdict_t){ GW_ERR_OVERLOADED, "out of memory", NULL };
    default:
        return (verdict_t){ GW_ERR_NOT_FOUND, NULL, NULL };
    }
    const config_route *route = r->match.route;
    r->route = route;
    use_route_label(r, r->match.route_index);
    r->has_service = 1;
    r->service_index = route->service_index;
    r->is_emit = route->kind == CONFIG_ROUTE_EMIT;
    r->reply = route->reply;
    r->ok_status = route->status;
    r->timeout_ms = route->timeout_ms;
    r->retries = route->retries;
    r->fanout = route->fanout;
    return GO_ON;
}

/* 413 before the body when its declared length is too large. */
static int declared_too_large(request_t *r)
{
    const char *length = header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!length)
        return 0;
    unsigned long long declared = strtoull(length, NULL, 10);
    if (declared > cfg_of(r)->limits.max_body_bytes)
        return 1;
    if (declared > 0)
        (void)buf_reserve(&r->body, (size_t)declared); /* one allocation, no regrowth;
                                                        failure shows in on_body */
    return 0;
}

/* A head that another HTTP parser could read differently (http_head.h):
 * refused, and the connection closed, before anything else is decided. */
static int refuse_ambiguous_head(request_t *r)
{
    char why[HTTP_HEAD_WHY_SIZE];
    http_head_verdict_t v = http_head_inspect(r->ex.conn, r->ex.method, r->ex.url, r->ex.version, why, sizeof why);
    if (v == HTTP_HEAD_OK)
        return 0;
    ex_header(&r->ex, MHD_HTTP_HEADER_CONNECTION, "close");
    ex_fail(&r->ex, v == HTTP_HEAD_CODING ? GW_ERR_NOT_IMPLEMENTED : GW_ERR_BAD_REQUEST, why, span_of(NULL, 0));
    return 1;
}

/* ---- the edge policy: CORS, auth, rate limits ------------------------------- */

static render_lookup_result lookup_header(void *ctx, const char *name, size_t len, span_t *value);
static render_lookup_result lookup_query(void *ctx, const char *name, size_t len, span_t *value);

static const edge_route_t *edge_of(const request_t *r)
{
    return edge_route(r->gen->edge, (size_t)(r->route - cfg_of(r)->routes));
}

/* cors.h: each value is a C string here (the request's spans are MHD's). */
static void add_cors_headers(request_t *r, const cors_result_t *res)
{
    for (size_t i = 0; i < res->count; i++)
        ex_header(&r->ex, res->headers[i].name, res->headers[i].value.p);
}

/* A preflight's policy: the one of the route the asked-for method would
 * take, else the top level's (NULL: none). Reuses the request's match. */
static const cors_policy_t *preflight_policy(request_t *r, const char *asked)
{
    if (r->route) /* a `*` route took the OPTIONS: it takes any method */
        return edge_of(r)->cors;
    if (router_match(r->gen->router, asked, r->ex.url, &r->match) == ROUTER_FOUND)
        return edge_route(r->gen->edge, r->match.route_index)->cors;
    return edge_top_cors(r->gen->edge);
}

static void answer_preflight(request_t *r, const cors_policy_t *p, const cors_request_t *req)
{
    cors_result_t res;
    cors_decide(p, req, &res);
    if (res.outcome != CORS_PREFLIGHT_OK) { /* no CORS header at all */
        char why[96];
        snprintf(why, sizeof why, "CORS preflight refused: %s", res.refusal ? res.refusal : "not allowed");
        ex_fail(&r->ex, GW_ERR_FORBIDDEN, why, span_of(NULL, 0));
        return;
    }
    add_cors_headers(r, &res);
    ex_answer(&r->ex, 204, NULL, NULL);
}

/* CORS comes first (SPEC.md): a preflight to a path that has routes is
 * answered here, without auth (1); any other request of a policy gets its
 * CORS headers on whatever it is answered, errors included (0). A config
 * without any policy costs nothing here, a route without one no header
 * lookup unless the request is an OPTIONS. */
static int apply_cors(request_t *r, const verdict_t *v)
{
    const edge_t *e = r->gen->edge;
    if (!edge_has_cors(e))
        return 0;
    const char *origin = NULL;
    if (strcmp(r->ex.method, "OPTIONS") == 0) {
        const char *asked = header(r, "Access-Control-Request-Method");
        int path_has_routes = v->error == GW_ERR_METHOD_NOT_ALLOWED || (v->error < 0 && r->route);
        origin = header(r, "Origin");
        if (origin && asked && path_has_routes) {
            cors_request_t req = { span_cstr(r->ex.method), span_cstr(origin), span_cstr(asked),
                                   span_cstr(header(r, "Access-Control-Request-Headers")),
                                   r->route ? CORS_METHOD_ANY : cors_methods_from_list(span_cstr(v->allow)) };
            const cors_policy_t *p = preflight_policy(r, asked);
            if (p)
                answer_preflight(r, p, &req);
            return p != NULL; /* no policy: the 405 of any OPTIONS */
        }
    }
    const cors_policy_t *p = r->route ? edge_of(r)->cors : edge_top_cors(e);
    if (!p)
        return 0;
    if (!origin)
        origin = header(r, "Origin");
    cors_request_t req = { span_cstr(r->ex.method), span_cstr(origin), span_of(NULL, 0), span_of(NULL, 0), 0 };
    cors_result_t res;
    cors_decide(p, &req, &res);
    add_cors_headers(r, &res);
    return 0;
}

/* Auth with `mechanisms` (auth.h): 1 to go on, else answered (401, 403). */
static int authenticate(request_t *r, unsigned mechanisms)
{
    if (mechanisms == 0)
        return 1;
    worker_t *w = worker_of(r);
    const config_route *route = r->route;
    auth_input_t in = {
        .cfg = cfg_of(r),
        .mechanisms = mechanisms,
        .require = route ? route->require_claims : NULL,
        .require_count = route ? route->require_claim_count : 0,
        .authorization = header(r, MHD_HTTP_HEADER_AUTHORIZATION),
        .keys = w->jwks ? jwks_keys(w->jwks) : NULL, /* afresh: a reload may replace them */
        .cache = w->jwt_cache,
        .now_s = (int64_t)time(NULL),
    };
    auth_result_t a;
    auth_check(&in, &r->claims, &a);
    if (a.verdict == AUTH_OK)
        return 1;
    buf_clear(&r->claims);
    if (a.verdict == AUTH_NO_MEMORY) {
        ex_fail(&r->ex, GW_ERR_OVERLOADED, "out of memory", span_of(NULL, 0));
        return 0;
    }
    memcpy(r->challenge, a.challenge, sizeof r->challenge);
    ex_header(&r->ex, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->challenge);
    r->auth_refused = auth_reason_name(a.reason);
    metrics_auth_failure(w->metrics, a.reason);
    ex_fail(&r->ex, a.verdict == AUTH_FORBIDDEN ? GW_ERR_FORBIDDEN : GW_ERR_UNAUTHORIZED, a.message,
            span_of(NULL, 0));
    return 0;
}

/* The route's rate_limit: one token from its key's bucket. The RateLimit
 * headers go on every answer; 1 when answered 429. */
static int rate_limited(request_t *r)
{
    const edge_route_t *er = r->route ? edge_of(r) : NULL;
    if (!er || !er->limited)
        return 0;
    render_input_t in = {
        .captures = r->match.captures,
        .capture_count = r->match.capture_count,
        .query = lookup_query,
        .query_context = r,
        .header = lookup_header,
        .header_context = r,
        .claims = span_of(r->claims.data, r->claims.len),
        .client_address = request_client_address(r->ex.conn),
    };
    span_t key;
    if (ratekey_value(&er->key, &in, &r->key, &key) != 0)
        key = span_of("", 0); /* out of memory: the shared bucket */
    ratelimit_result_t res;
    ratelimit_take(worker_of(r)->ratelimit, er->scope, key, &er->rule, uv_hrtime(), &res);
    static const char *const names[] = { "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
                                         MHD_HTTP_HEADER_RETRY_AFTER };
    const uint32_t figures[] = { res.limit, res.remaining, res.reset_s, res.retry_after_s };
    for (size_t i = 0; i < (res.allowed ? 3u : 4u); i++) {
        snprintf(r->limit_text[i], sizeof r->limit_text[i], "%u", (unsigned)figures[i]);
        ex_header(&r->ex, names[i], r->limit_text[i]);
    }
    if (res.allowed)
        return 0;
    char why[320];
    snprintf(why, sizeof why, "the rate limit of route %.*s is reached: retry after %u s", (int)er->scope.n,
             er->scope.p, (unsigned)res.retry_after_s);
    r->rate_limited = 1;
    metrics_rate_limited(worker_of(r)->metrics, r->label_metric);
    ex_fail(&r->ex, GW_ERR_RATE_LIMITED, why, span_of(NULL, 0));
    return 1;
}

static void on_head(void *ctx, exchange_t *ex)
{
    proxy_t *px = ctx;
    request_t *r = req_of(ex);
    r->px = px;
    list_init(&r->unwritten_link);
    r->gen = generation_ref(px->w->gen);
    r->label = "unmatched";
    r->label_metric = METRICS_ROUTE_UNMATCHED;
    assign_request_id(r);
    if (refuse_ambiguous_head(r))
        return;
    if (ex->listener->admin) {
        answer_admin(r);
        return;
    }
    if (!cfg_of(r)->has_admin_listen && admin_is_path(ex->url)) {
        r->label = "admin";
        r->label_metric = METRICS_ROUTE_ADMIN;
        if (admin_is_probe(ex->url) || authenticate(r, cfg_of(r)->auth_mechanisms)) /* probes need no token */
            answer_admin(r);
        return;
    }
    verdict_t v;
    if (!route_generic(r, &v))
        v = route_configured(r);
    if (apply_cors(r, &v)) /* a preflight, answered */
        return;
    if (px->w->draining) { /* counted and logged under the route it would have taken */
        ex_header(ex, MHD_HTTP_HEADER_CONNECTION, "close");
        ex_fail(ex, GW_ERR_DRAINING, "the gateway is shutting down", span_of(NULL, 0));
    } else if (!authenticate(r, r->route ? r->route->auth : cfg_of(r)->auth_mechanisms)) {
        return; /* what no route takes (404, 405, a bad path) needs the top level's auth */
    } else if (v.error >= 0) {
        if (v.allow)
            ex_header(ex, MHD_HTTP_HEADER_ALLOW, v.allow);
        ex_fail(ex, (gw_error_t)v.error, v.message, span_of(NULL, 0));
    } else if (!r->route && generic_parameters(r) != 0) {
        return;
    } else if (rate_limited(r)) {
        return;
    } else if (declared_too_large(r)) {
        ex_fail(ex, GW_ERR_PAYLOAD_TOO_LARGE, NULL, span_of(NULL, 0));
    } else {
        r->streaming = !r->is_emit && (r->reply == CONFIG_REPLY_NDJSON || r->reply == CONFIG_REPLY_SSE);
        ex_read_body(ex);
    }
}

/* ---- the body ------------------------------------------------------------ */

static void on_body(void *ctx, exchange_t *ex, const char *data, size_t n)
{
    (void)ctx;
    request_t *r = req_of(ex);
    if (r->body_too_large)
        return;
    if (r->body.len + n > cfg_of(r)->limits.max_body_bytes) {
        r->body_too_large = 1; /* the rest is read and dropped, never kept */
        buf_free(&r->body);
        return;
    }
    if (buf_append(&r->body, data, n))
        r->body_too_large = 1;
}

/* ---- the reply ------------------------------------------------------------- */

/* The message of a failed request: what it refers to, by name. */
static void failure_message(const request_t *r, up_outcome_t outcome, const char *detail, char *out, size_t size)
{
    const char *name = service_name(r);
    switch (outcome) {
    case UP_TIMEOUT:
        if (r->streaming && r->nvalues)
            snprintf(out, size, "no next value from service %s within %llu ms", name, (unsigned long long)r->timeout_ms);
        else
            snprintf(out, size, "no complete reply from service %s within %llu ms", name,
                     (unsigned long long)r->timeout_ms);
        return;
    case UP_ERROR:
        snprintf(out, size, "service %s replied with an error", name);
        return;
    case UP_NO_HANDLER: {
        span_t pattern = r->route ? span_of(r->route->pattern_json, r->route->pattern_length) : span_of(NULL, 0);
        if (pattern.n && pattern.n <= 200)
            snprintf(out, size, "service %s has no handler for the pattern %.*s", name, (int)pattern.n, pattern.p);
        else
            snprintf(out, size, "service %s has no handler for the pattern", name);
        return;
    }
    case UP_CANCELLED:
        snprintf(out, size, "the gateway is shutting down");
        return;
    default:
        snprintf(out, size, "service %s: %s", name, detail ? detail : gw_error_message(gw_error_of_outcome(outcome)));
    }
}

/* Notes the endpoint a request was written on, for the access log (a
 * stream notes that it was written: its address is what tells). */
static void note_upstream(request_t *r)
{
    if (r->upstream[0] || !r->req || (!cfg_of(r)->log_access && !r->streaming))
        return;
    const char *address = up_request_address(r->req);
    if (address)
        snprintf(r->upstream, sizeof r->upstream, "%s", address);
}

/* The request upstream is over (done or cancelled). */
static void forget_upstream(request_t *r)
{
    r->req = NULL;
    if (list_linked(&r->unwritten_link))
        list_remove(&r->unwritten_link);
}

static void cancel_upstream(request_t *r)
{
    if (!r->req)
        return;
    up_cancel(r->req); /* inside its own callback: takes effect when it returns */
    forget_upstream(r);
}

static size_t stream_limit(const request_t *r)
{
    uint64_t limit = cfg_of(r)->limits.max_reply_bytes;
    const size_t buffer_max = (size_t)4 << 20; /* README, "Backpressure" */
    return limit < buffer_max ? (size_t)limit : buffer_max;
}

/* The stream's head goes out: its request is written. */
static void open_stream(request_t *r)
{
    note_upstream(r);
    if (list_linked(&r->unwritten_link))
        list_remove(&r->unwritten_link);
    ex_stream_open(&r->ex, r->ok_status, r->reply, stream_limit(r));
}

/* A reply past limits.max_reply_bytes: the request is cancelled (the
 * service's later values are dropped as late replies) and answered 502. */
static void reply_too_large(request_t *r)
{
    char why[200];
    snprintf(why, sizeof why, "the reply of service %s is larger than limits.max_reply_bytes (%llu bytes)",
             service_name(r), (unsigned long long)cfg_of(r)->limits.max_reply_bytes);
    cancel_upstream(r);
    buf_free(&r->values);
    r->nvalues = 0;
    if (r->streaming)
        ex_stream_fail(&r->ex, GW_ERR_BAD_UPSTREAM_MESSAGE, why, span_of(NULL, 0));
    else
        ex_fail(&r->ex, GW_ERR_BAD_UPSTREAM_MESSAGE, why, span_of(NULL, 0));
}

static void on_value(void *ctx, span_t value)
{
    request_t *r = ctx;
    uint64_t limit = cfg_of(r)->limits.max_reply_bytes;
    if (r->streaming) {
        if (r->ex.state == EX_UPSTREAM) /* written, and already answering */
            open_stream(r);
        r->nvalues++;
        if (value.n > limit)
            reply_too_large(r);
        else if (ex_stream_value(&r->ex, value) != 0)
            cancel_upstream(r); /* the client reads too slowly */
        return;
    }
    if (r->values.len + value.n + 1 > limit) {
        reply_too_large(r);
        return;
    }
    if (r->nvalues++)
        buf_append(&r->values, ",", 1);
    else
        (void)buf_reserve(&r->values, value.n); /* exact for the usual single value */
    buf_append_span(&r->values, value);
}

/* reply "envelope": the one value sets the status, the headers and the
 * body (envelope.h); a value that is not an acceptable envelope is the
 * service's fault: 502 bad_upstream_message saying why. */
static void answer_envelope(request_t *r)
{
    envelope_t *e = &r->envelope;
    char why[ENVELOPE_WHY_SIZE], message[ENVELOPE_WHY_SIZE + 80];
    int rc = envelope_read(span_of(r->values.data, r->values.len), r->nvalues, r->ok_status, e, why, sizeof why);
    if (rc) {
        snprintf(message, sizeof message, "service %s: %s", service_name(r), why);
        ex_fail(&r->ex, rc == -ENOMEM ? GW_ERR_OVERLOADED : GW_ERR_BAD_UPSTREAM_MESSAGE, message, span_of(NULL, 0));
        return;
    }
    for (size_t i = 0; i < e->header_count; i++)
        ex_header(&r->ex, e->headers[i].name, e->headers[i].value);
    if (!e->has_body) {
        ex_answer(&r->ex, e->status, e->content_type, NULL);
        return;
    }
    memmove(r->values.data, e->body.p, e->body.n); /* the body to the front: no copy elsewhere */
    r->values.len = e->body.n;
    ex_answer(&r->ex, e->status, e->content_type, &r->values);
}

static void answer_values(request_t *r)
{
    if (r->reply == CONFIG_REPLY_ENVELOPE && !r->is_emit) {
        answer_envelope(r);
        return;
    }
    if (r->is_emit) {
        snprintf(r->delivered_text, sizeof r->delivered_text, "%zu", r->delivered);
        ex_header(&r->ex, "X-Delivered", r->delivered_text);
        ex_answer(&r->ex, r->ok_status, NULL, NULL);
        return;
    }
    if (r->reply == CONFIG_REPLY_AUTO && r->nvalues == 0) {
        ex_answer(&r->ex, 204, NULL, NULL);
        return;
    }
    if (r->reply == CONFIG_REPLY_AUTO && r->nvalues == 1) { /* the one value is the body */
        ex_answer(&r->ex, r->ok_status, NULL, &r->values);
        return;
    }
    buf_t body = BUF_INIT;
    buf_append(&body, "[", 1);
    buf_append(&body, r->values.data ? r->values.data : "", r->values.len);
    buf_append(&body, "]", 1);
    ex_answer(&r->ex, r->ok_status, NULL, &body);
    buf_free(&body);
}

static void stream_done(request_t *r, up_outcome_t outcome, span_t err, const char *why)
{
    gw_error_t e = gw_error_of_outcome(outcome);
    if (r->ex.state == EX_UPSTREAM) {
        if (!r->upstream[0] && outcome != UP_OK) { /* never written: an ordinary answer */
            ex_fail(&r->ex, e, why, err);
            return;
        }
        open_stream(r);
    }
    if (outcome == UP_OK)
        ex_stream_end(&r->ex);
    else
        ex_stream_fail(&r->ex, e, why, err);
}

static void on_done(void *ctx, up_outcome_t outcome, span_t err, const char *detail)
{
    request_t *r = ctx;
    metrics_upstream_duration(worker_of(r)->metrics, r->gen->service_metric[r->service_index],
                              uv_hrtime() - r->upstream_started_ns);
    note_upstream(r);
    if (r->is_emit)
        r->delivered = up_request_delivered(r->req);
    char why[400];
    if (outcome != UP_OK)
        failure_message(r, outcome, detail, why, sizeof why);
    forget_upstream(r);
    if (r->streaming)
        stream_done(r, outcome, err, why);
    else if (outcome == UP_OK)
        answer_values(r);
    else
        ex_fail(&r->ex, gw_error_of_outcome(outcome), why, err);
}

static const up_callbacks_t upstream_callbacks = { on_value, on_done };

/* ---- dispatching ------------------------------------------------------------ */

/* render's header lookup: libmicrohttpd matches names case-insensitively. */
static render_lookup_result lookup_header(void *ctx, const char *name, size_t len, span_t *value)
{
    request_t *r = ctx;
    char key[256];
    if (len >= sizeof key)
        return RENDER_LOOKUP_ABSENT;
    memcpy(key, name, len);
    key[len] = 0;
    const char *v = header(r, key);
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
    request_t *r = ctx;
    query_search_t q = { name, len, &r->query_value, RENDER_LOOKUP_ABSENT, { NULL, 0 } };
    MHD_get_connection_values(r->ex.conn, MHD_GET_ARGUMENT_KIND, query_pair, &q);
    *value = q.value;
    return q.result;
}

/* The packet data of a configured route, rendered from its template into
 * *rendered, or pointing into the body itself or static text (render.h). */
static int render_data(request_t *r, buf_t *rendered, span_t *data, char *why, size_t whylen)
{
    request_walk_t walk = REQUEST_WALK_INIT(r->ex.conn);
    render_input_t in = {
        .body = span_of(r->body.data, r->body.len),
        .content_type = span_cstr(header(r, "Content-Type")),
        .captures = r->match.captures,
        .capture_count = r->match.capture_count,
        .query = lookup_query,
        .query_context = r,
        .header = lookup_header,
        .header_context = r,
        .query_all = request_walk_query,
        .query_all_context = &walk,
        .header_all = request_walk_headers,
        .header_all_context = &walk,
        .client_address = request_client_address(r->ex.conn),
        .method = r->ex.method,
        .claims = span_of(r->claims.data, r->claims.len),
    };
    int rc = render_route_data(&r->route->data, r->route->data_default, &in, rendered, data, why, whylen);
    request_walk_free(&walk);
    return rc;
}

static up_request_t *send_upstream(request_t *r, span_t pattern, span_t data)
{
    buf_t *metadata = &r->metadata;
    buf_clear(metadata);
    if (cfg_of(r)->services[r->service_index].metadata)
        build_metadata(r, metadata);
    up_service_t *svc = r->gen->services[r->service_index];
    span_t meta = span_of(metadata->data, metadata->len);
    uint32_t timeout = (uint32_t)r->timeout_ms;
    r->upstream_started_ns = uv_hrtime();
    up_request_opts_t opts = { timeout, r->retries, r->fanout == CONFIG_FANOUT_ALL };
    up_kind_t kind = r->is_emit ? UP_KIND_EMIT : r->streaming ? UP_KIND_STREAM : UP_KIND_SEND;
    return up_submit(svc, kind, pattern, data, meta, &opts, &upstream_callbacks, r);
}

static void on_body_end(void *ctx, exchange_t *ex)
{
    proxy_t *px = ctx;
    request_t *r = req_of(ex);
    char why[RENDER_ERROR_SIZE];
    if (r->body_too_large) { /* read and dropped, but the connection goes (docs/HTTP-API.md) */
        ex_header(ex, MHD_HTTP_HEADER_CONNECTION, "close");
        ex_fail(ex, GW_ERR_PAYLOAD_TOO_LARGE, NULL, span_of(NULL, 0));
        return;
    }
    buf_clear(&r->rendered);
    span_t pattern, data;
    if (r->route) {
        pattern = span_of(r->route->pattern_json, r->route->pattern_length);
        if (render_data(r, &r->rendered, &data, why, sizeof why)) {
            ex_fail(ex, GW_ERR_BAD_REQUEST, why, span_of(NULL, 0));
            return;
        }
    } else if (generic_parse_body(span_of(r->body.data, r->body.len), &pattern, &data, why, sizeof why)) {
        ex_fail(ex, GW_ERR_BAD_REQUEST, why, span_of(NULL, 0));
        return;
    }
    if (r->streaming && strcmp(ex->method, "HEAD") == 0) { /* a stream's head alone: nothing is sent */
        ex_stream_head(ex, r->ok_status, r->reply);
        return;
    }
    if (ex_pool_upstream(px->pool) >= cfg_of(r)->limits.max_inflight) {
        ex_header(ex, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        ex_fail(ex, GW_ERR_OVERLOADED, "too many requests in flight (max_inflight)", span_of(NULL, 0));
        return;
    }
    if (!(r->req = send_upstream(r, pattern, data))) {
        ex_fail(ex, GW_ERR_OVERLOADED, "out of memory", span_of(NULL, 0));
        return;
    }
    if (r->streaming && up_request_address(r->req)) { /* written at once */
        open_stream(r);
        return;
    }
    if (r->streaming)
        list_push_back(&px->unwritten, &r->unwritten_link);
    ex_wait_upstream(ex);
}

/* ---- waiting stream requests ------------------------------------------------- */

/* After a connection came up (this loop turn): the stream requests it took
 * open their streams. */
static void on_written_check(uv_check_t *c)
{
    proxy_t *px = c->data;
    uv_check_stop(c);
    list_node_t *node = px->unwritten.next;
    while (node != &px->unwritten) {
        request_t *r = LIST_OWNER(node, request_t, unwritten_link);
        node = node->next;
        if (r->req && up_request_address(r->req))
            open_stream(r);
    }
}

void proxy_on_upstream_event(proxy_t *px, const up_event_t *ev)
{
    if (ev->type == UP_EV_CONNECTED && !list_empty(&px->unwritten))
        uv_check_start(&px->written_check, on_written_check);
}

/* ---- the end of a request ----------------------------------------------------- */

static void on_cancel(void *ctx, exchange_t *ex)
{
    (void)ctx;
    request_t *r = req_of(ex);
    cancel_upstream(r);
    if (r->gather) {
        admin_gather_abandon(r->gather);
        r->gather = NULL;
    }
}

/* "address:port" of the client, "" when unknown. */
static void client_address(struct MHD_Connection *c, char *out, size_t size)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info ? info->client_addr : NULL;
    char ip[INET6_ADDRSTRLEN] = "";
    out[0] = 0;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out, size, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(out, size, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
    }
}

/* The query string as received: libmicrohttpd keeps the arguments
 * percent-encoded (httpd.c) and in order. */
static enum MHD_Result query_text(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    buf_t *b = cls;
    if (b->len)
        buf_append(b, "&", 1);
    buf_append_cstr(b, key);
    if (value) {
        buf_append(b, "=", 1);
        buf_append_cstr(b, value);
    }
    return MHD_YES;
}

static void access_log(request_t *r, unsigned status, uint64_t took)
{
    const config *cfg = cfg_of(r);
    if (!cfg->log_access || (r->label_metric == METRICS_ROUTE_ADMIN && !cfg->log_access_admin))
        return;
    char client[HOSTPORT_TEXT_SIZE + 8];
    client_address(r->ex.conn, client, sizeof client);
    buf_t query = BUF_INIT;
    MHD_get_connection_values(r->ex.conn, MHD_GET_ARGUMENT_KIND, query_text, &query);
    buf_append(&query, "", 1);
    access_log_write(&worker_of(r)->log, &(access_entry_t){
                                             .method = r->ex.method,
                                             .path = r->ex.url,
                                             .query = query.data,
                                             .route = r->label,
                                             .status = status,
                                             .error = ex_error_code(&r->ex),
                                             .duration_ns = took,
                                             .request_id = r->request_id,
                                             .service = r->has_service ? service_name(r) : NULL,
                                             .upstream = r->upstream[0] ? r->upstream : NULL,
                                             .client = client[0] ? client : NULL,
                                             .user_agent = header(r, MHD_HTTP_HEADER_USER_AGENT),
                                             .bytes = ex_bytes(&r->ex),
                                             .auth = r->auth_refused,
                                             .rate_limited = r->rate_limited,
                                         });
    buf_free(&query);
}

static void on_complete(void *ctx, exchange_t *ex)
{
    (void)ctx;
    request_t *r = req_of(ex);
    uint64_t took = uv_hrtime() - ex->started_ns;
    unsigned status = ex_sent_status(ex);
    if (status == 0)
        status = 499; /* the client left before its answer (nginx's code) */
    metrics_http(worker_of(r)->metrics, r->label_metric, ex->method, status, took);
    access_log(r, status, took);
}

static void on_recycle(void *ctx, exchange_t *ex, size_t keep)
{
    (void)ctx;
    request_t *r = req_of(ex);
    generation_release(r->gen);
    buf_t *bufs[] = { &r->body, &r->values, &r->query_value, &r->metadata, &r->rendered, &r->claims, &r->key };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        if (bufs[i]->cap > keep)
            buf_free(bufs[i]);
        buf_clear(bufs[i]);
    }
    envelope_clear(&r->envelope, keep);
    if (!keep)
        router_match_free(&r->match);
    /* everything else back to zero, the buffers and the match kept (only
     * they are copied: this runs once per request) */
    router_match_t match = r->match;
    buf_t body = r->body, values = r->values, query_value = r->query_value, metadata = r->metadata,
          rendered = r->rendered, claims = r->claims, key = r->key;
    buf_t envelope_text = r->envelope.text; /* the rest of an envelope_t is zero when empty */
    memset((char *)r + sizeof r->ex, 0, sizeof *r - sizeof r->ex);
    r->match = match;
    r->body = body;
    r->values = values;
    r->query_value = query_value;
    r->metadata = metadata;
    r->rendered = rendered;
    r->claims = claims;
    r->key = key;
    r->envelope.text = envelope_text;
    list_init(&r->unwritten_link);
}

static const ex_handler_t handler = { on_head, on_body, on_body_end, on_cancel, on_complete, on_recycle };

/* ---- the proxy --------------------------------------------------------------- */

proxy_t *proxy_new(worker_t *w, const ex_http_t *http)
{
    proxy_t *px = calloc(1, sizeof *px);
    if (!px)
        return NULL;
    px->w = w;
    list_init(&px->unwritten);
    if (getrandom(&px->rng, sizeof px->rng, 0) != sizeof px->rng || px->rng == 0)
        px->rng = uv_hrtime() | 1;
    px->pool = ex_pool_new(w->loop, http, &handler, px, sizeof(request_t));
    if (!px->pool) {
        free(px);
        return NULL;
    }
    uv_check_init(w->loop, &px->written_check);
    px->written_check.data = px;
    return px;
}

static void on_check_closed(uv_handle_t *h)
{
    free(h->data);
}

void proxy_close(proxy_t *px)
{
    ex_pool_close(px->pool);
    uv_close((uv_handle_t *)&px->written_check, on_check_closed);
}

ex_pool_t *proxy_pool(proxy_t *px) { return px->pool; }

void proxy_on_refused(void *ctx, gw_error_t kind, const char *message, buf_t *wire)
{
    ex_listener_t *l = ctx;
    proxy_t *px = ex_pool_handler_ctx(l->pool);
    worker_t *w = px->w;
    unsigned status = (unsigned)gw_error_status(kind);
    char id[REQUEST_ID_SIZE];
    new_request_id(px, id);
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
    metrics_http(w->metrics, METRICS_ROUTE_UNMATCHED, "", status, 0);
    if (w->gen->cfg->log_access)
        access_log_write(&w->log, &(access_entry_t){ .method = "", .path = "", .query = "", .route = "unmatched",
                                                     .status = status, .error = gw_error_code(kind), .request_id = id,
                                                     .bytes = body.len });
    buf_free(&body);
}
