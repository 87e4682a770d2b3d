/*
 * `patterngate explain [-c FILE] METHOD PATH [BODY] [-H "Name: value"]...`
 * (SPEC.md "Operating it"): a dry run of one request through the config,
 * with no network: which route it matches, which service gets it, with
 * which pattern, and the exact packet data; or the 4xx the gateway would
 * answer. PATH may carry its query string, or be a whole URL.
 *
 * It decides the way the gateway does (proxy.c), in the same order and
 * with the same pure modules: the admin paths, the generic API or the
 * router, CORS (a preflight is answered; other requests show their CORS
 * headers), auth (auth.h: a bearer token, or a JWT verified with the keys
 * of auth.jwt.jwks_file, read once, and the clock now), the routing's own
 * errors, the route's rate limit (shown, never taken: a dry run has no
 * buckets), the body limit, the templates (with the JWT's claims) and the
 * forwarded claims in the metadata.
 *
 *   exit 0  the request would go to a service (or to the admin API)
 *   exit 1  it would be answered with an error (status and body printed)
 *   exit 2  bad usage or config
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/json_write.h"
#include "core/urlcode.h"
#include "gateway/admin.h"
#include "gateway/auth.h"
#include "gateway/claims.h"
#include "gateway/cli.h"
#include "gateway/cors.h"
#include "gateway/edge.h"
#include "gateway/errors.h"
#include "gateway/generic.h"
#include "gateway/jwks.h"
#include "gateway/render.h"
#include "gateway/router.h"

#define EXPLAIN_USAGE "usage: patterngate explain [-c FILE] METHOD PATH [BODY] [-H \"Name: value\"]...\n"
#define MAX_HEADERS 64

typedef struct request {
    const char *method;
    char *path;                 /* raw, without the query */
    const char *query;          /* raw, after '?'; "" for none */
    const char *body;
    const char *headers[MAX_HEADERS]; /* "Name: value" */
    size_t n_headers;
} request_t;

static int usage(const char *problem)
{
    fprintf(stderr, "patterngate explain: %s\n" EXPLAIN_USAGE, problem);
    return 2;
}

static int help(void)
{
    fputs(EXPLAIN_USAGE
          "\n"
          "Shows what the gateway would do with one request, without sending anything:\n"
          "the route it matches, the service, the pattern and the exact packet data; or\n"
          "the error it would answer (status and body, exit 1).\n"
          "\n"
          "  METHOD           GET, POST, ...\n"
          "  PATH             the path with its query string (/users/7?full=true), or a\n"
          "                   whole URL (http://host:8080/users/7)\n"
          "  BODY             the request body (default: none)\n"
          "  -H \"Name: value\" a request header (repeat for several)\n"
          "  -c, --config FILE\n"
          "                   the config (default: $PATTERNGATE_CONFIG, else the built-in one)\n"
          "  -h, --help       print this help and exit\n"
          "\n"
          "The edge policy is applied as the gateway applies it: CORS (an allowed\n"
          "preflight is answered 204), auth (a JWT is verified with the keys of\n"
          "auth.jwt.jwks_file and the clock now), the route's rate limit (shown; a dry\n"
          "run takes no token).\n"
          "\n"
          "Exit codes: 0 it goes to a service (or the admin API, or is an allowed CORS\n"
          "preflight), 1 it is answered with an error, 2 bad usage or config (or a JWKS\n"
          "file that cannot be loaded).\n",
          stdout);
    return 0;
}

/* "Name" of header line i matches name (case-insensitive): its value. */
static const char *header_value(const request_t *rq, const char *name, size_t len)
{
    for (size_t i = 0; i < rq->n_headers; i++) {
        const char *h = rq->headers[i], *colon = strchr(h, ':');
        if (!colon || (size_t)(colon - h) != len || strncasecmp(h, name, len) != 0)
            continue;
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        return v;
    }
    return NULL;
}

static render_lookup_result lookup_header(void *ctx, const char *name, size_t len, span_t *value)
{
    const char *v = header_value(ctx, name, len);
    if (!v)
        return RENDER_LOOKUP_ABSENT;
    *value = span_cstr(v);
    return RENDER_LOOKUP_FOUND;
}

/* The answer the gateway would give instead of a packet. */
static int answer(gw_error_t e, const char *message)
{
    buf_t body = BUF_INIT;
    gw_error_body(&body, e, message, span_of(NULL, 0));
    printf("status: %d\nbody: %.*s\n", gw_error_status(e), (int)body.len, body.data ? body.data : "");
    buf_free(&body);
    return 1;
}

/* One request's dry run: what the gateway knows of it as it decides. */
typedef struct explain {
    const config *cfg;
    const request_t *rq;
    router_t *router;
    edge_t *edge;
    jwt_keys_t *keys;           /* auth.jwt.jwks_file's; NULL: none */
    router_match_t m;
    const char *label;          /* what the route line says */
    char label_text[512];       /* "METHOD PATH" of the route taken */
    const config_route *route;  /* the route taken; NULL: none (or generic) */
    const config_service *svc;  /* the generic API's service */
    int generic;                /* GENERIC_PATH_* of the path */
    buf_t claims;               /* a JWT's claims, once verified */
    buf_t notes;                /* lines about the edge policy, after the route line */
} explain_t;

/* What proxy.c's routing decides, before the edge policy. */
typedef struct verdict {
    int error;                  /* gw_error_t, or -1: go on */
    const char *message;
    const char *allow;
} verdict_t;

static void note(explain_t *x, const char *name, const char *value)
{
    buf_append_cstr(&x->notes, name);
    buf_append_cstr(&x->notes, ": ");
    buf_append_cstr(&x->notes, value);
    buf_append_cstr(&x->notes, "\n");
}

static void print_head(explain_t *x)
{
    printf("route: %s\n%.*s", x->label, (int)x->notes.len, x->notes.data ? x->notes.data : "");
}

static verdict_t target_generic(explain_t *x, span_t name)
{
    x->label = "generic";
    if (x->generic == GENERIC_PATH_BAD || x->generic < 0)
        return (verdict_t){ x->generic < 0 ? GW_ERR_OVERLOADED : GW_ERR_BAD_REQUEST,
                            x->generic < 0 ? "out of memory" : x->m.error, NULL };
    for (size_t i = 0; i < x->cfg->service_count; i++)
        if (x->cfg->services[i].generic_api && span_eq_cstr(name, x->cfg->services[i].name))
            x->svc = &x->cfg->services[i];
    if (!x->svc)
        return (verdict_t){ GW_ERR_NOT_FOUND, "no such service for the generic API", NULL };
    if (strcmp(x->rq->method, "POST") != 0)
        return (verdict_t){ GW_ERR_METHOD_NOT_ALLOWED, "the generic API takes POST", "POST" };
    return (verdict_t){ -1, NULL, NULL };
}

static verdict_t target_route(explain_t *x)
{
    switch (router_match(x->router, x->rq->method, x->rq->path, &x->m)) {
    case ROUTER_FOUND:
        x->route = x->m.route;
        snprintf(x->label_text, sizeof x->label_text, "%s %s", config_method_name(x->route->method),
                 x->route->path.text);
        x->label = x->label_text;
        return (verdict_t){ -1, NULL, NULL };
    case ROUTER_METHOD_NOT_ALLOWED:
        x->label = x->m.route->path.text;
        return (verdict_t){ GW_ERR_METHOD_NOT_ALLOWED, NULL, x->m.allow };
    case ROUTER_BAD_PATH:
        return (verdict_t){ GW_ERR_BAD_REQUEST, x->m.error, NULL };
    case ROUTER_NO_MEMORY:
        return (verdict_t){ GW_ERR_OVERLOADED, "out of memory", NULL };
    default:
        return (verdict_t){ GW_ERR_NOT_FOUND, NULL, NULL };
    }
}

static const cors_policy_t *route_cors(const explain_t *x, const config_route *route)
{
    return route ? edge_route(x->edge, (size_t)(route - x->cfg->routes))->cors : edge_top_cors(x->edge);
}

static void note_cors_headers(explain_t *x, const cors_result_t *res)
{
    for (size_t i = 0; i < res->count; i++) {
        char name[64];
        size_t n = 0;
        for (const char *c = res->headers[i].name; *c && n + 1 < sizeof name; c++)
            name[n++] = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        name[n] = '\0';
        buf_t value = BUF_INIT;
        buf_append_span(&value, res->headers[i].value);
        buf_append(&value, "", 1);
        note(x, name, value.data);
        buf_free(&value);
    }
}

/* CORS as proxy.c decides it: a preflight to a path with routes is
 * answered (its exit code), else the headers are noted (-1). */
static int explain_cors(explain_t *x, const verdict_t *v)
{
    const char *origin = header_value(x->rq, "Origin", 6);
    const char *asked = header_value(x->rq, "Access-Control-Request-Method", 29);
    cors_request_t req = { span_cstr(x->rq->method), span_cstr(origin), span_of(NULL, 0),
                           span_cstr(header_value(x->rq, "Access-Control-Request-Headers", 30)), 0 };
    int path_has_routes = v->error == GW_ERR_METHOD_NOT_ALLOWED || (v->error < 0 && x->route);
    cors_result_t res;
    if (origin && asked && path_has_routes && strcmp(x->rq->method, "OPTIONS") == 0) {
        req.path_methods = x->route ? CORS_METHOD_ANY : cors_methods_from_list(span_cstr(v->allow));
        req.request_method = span_cstr(asked);
        const config_route *by_method = x->route;
        if (!by_method && router_match(x->router, asked, x->rq->path, &x->m) == ROUTER_FOUND)
            by_method = x->m.route;
        const cors_policy_t *p = route_cors(x, by_method);
        if (!p)
            return -1;
        cors_decide(p, &req, &res);
        if (res.outcome != CORS_PREFLIGHT_OK) {
            print_head(x);
            char why[96];
            snprintf(why, sizeof why, "CORS preflight refused: %s", res.refusal ? res.refusal : "not allowed");
            return answer(GW_ERR_FORBIDDEN, why);
        }
        note(x, "cors", "preflight allowed: answered by the gateway (no auth, nothing sent)");
        note_cors_headers(x, &res);
        print_head(x);
        printf("status: 204\n");
        return 0;
    }
    const cors_policy_t *p = route_cors(x, x->route);
    if (p) {
        cors_decide(p, &req, &res);
        note(x, "cors", cors_outcome_label(res.outcome));
        note_cors_headers(x, &res);
    }
    return -1;
}

/* Auth as proxy.c decides it, verifying a JWT with the configured keys:
 * 0 to go on, else answered (1). */
static int explain_auth(explain_t *x, unsigned mechanisms)
{
    const config_route *route = x->route;
    auth_input_t in = { .cfg = x->cfg, .mechanisms = mechanisms,
                        .require = route ? route->require_claims : NULL,
                        .require_count = route ? route->require_claim_count : 0,
                        .authorization = header_value(x->rq, "Authorization", 13), .keys = x->keys,
                        .now_s = (int64_t)time(NULL) };
    auth_result_t a;
    auth_check(&in, &x->claims, &a);
    switch (a.verdict) {
    case AUTH_OK:
        if (mechanisms)
            note(x, "auth", a.mechanism == CONFIG_AUTH_JWT ? "jwt (verified with the configured keys)" : "bearer");
        return 0;
    case AUTH_NO_MEMORY:
        print_head(x);
        return answer(GW_ERR_OVERLOADED, "out of memory");
    default:
        note(x, "www-authenticate", a.challenge);
        print_head(x);
        return answer(a.verdict == AUTH_FORBIDDEN ? GW_ERR_FORBIDDEN : GW_ERR_UNAUTHORIZED, a.message);
    }
}

static int print_packet(explain_t *x, const char *service, const char *kind, const char *reply, span_t pattern,
                        span_t data)
{
    print_head(x);
    printf("service: %s\nkind: %s\n", service, kind);
    if (reply)
        printf("reply: %s\n", reply);
    const config_jwt *jwt = x->cfg->jwt;
    if (jwt && jwt->forward_claim_count && x->claims.len) {
        buf_t m = BUF_INIT;
        buf_append(&m, "{", 1);
        claims_forward(&m, span_of(x->claims.data, x->claims.len), jwt->forward_claims, jwt->forward_claim_count);
        printf("metadata: %.*s}\n", (int)m.len, m.data);
        buf_free(&m);
    }
    printf("pattern: %.*s\ndata: %.*s\n", (int)pattern.n, pattern.p, (int)data.n, data.p);
    return 0;
}

static int explain_generic(explain_t *x)
{
    const request_t *rq = x->rq;
    int is_emit = x->generic == GENERIC_PATH_EMIT;
    config_reply_mode reply = CONFIG_REPLY_AUTO;
    char why[RENDER_ERROR_SIZE];
    buf_t value = BUF_INIT;
    int found = urlcode_query_get(rq->query, strlen(rq->query), "reply", 5, &value);
    buf_append(&value, "", 1);
    int bad = !is_emit && generic_parse_reply(found == 1 ? value.data : NULL, &reply, why, sizeof why);
    buf_free(&value);
    span_t pattern, data;
    gw_error_t e = bad ? GW_ERR_BAD_REQUEST
                   : strlen(rq->body) > x->cfg->limits.max_body_bytes ? GW_ERR_PAYLOAD_TOO_LARGE
                   : generic_parse_body(span_cstr(rq->body), &pattern, &data, why, sizeof why) ? GW_ERR_BAD_REQUEST
                   : GW_ERR_COUNT;
    if (e != GW_ERR_COUNT) {
        print_head(x);
        return answer(e, e == GW_ERR_BAD_REQUEST ? why : NULL);
    }
    return print_packet(x, x->svc->name, is_emit ? "emit" : "send", is_emit ? NULL : config_reply_mode_name(reply),
                        pattern, data);
}

/* The route's rate limit, as a note: a dry run takes no token. */
static void note_rate_limit(explain_t *x, const render_input_t *in)
{
    const edge_route_t *er = edge_route(x->edge, (size_t)(x->route - x->cfg->routes));
    if (!er->limited)
        return;
    buf_t scratch = BUF_INIT, text = BUF_INIT;
    span_t key = span_of("", 0);
    (void)ratekey_value(&er->key, in, &scratch, &key);
    char figures[160];
    snprintf(figures, sizeof figures, "%g per second, burst %u, bucket %.100s key ", er->rule.rps,
             (unsigned)er->rule.burst, er->scope.p);
    buf_append_cstr(&text, figures);
    json_append_string(&text, key.p ? key.p : "", key.n);
    buf_append_cstr(&text, " (a dry run takes no token)");
    buf_append(&text, "", 1);
    note(x, "rate_limit", text.data);
    buf_free(&text);
    buf_free(&scratch);
}

static int explain_route(explain_t *x)
{
    const config_route *route = x->route;
    const request_t *rq = x->rq;
    span_t body = span_cstr(rq->body), data;
    render_query q = { .raw = rq->query, .length = strlen(rq->query) };
    render_input_t in = { .body = body, .captures = x->m.captures, .capture_count = x->m.capture_count,
                          .query = render_query_lookup, .query_context = &q,
                          .header = lookup_header, .header_context = (void *)rq,
                          .claims = span_of(x->claims.data, x->claims.len) };
    note_rate_limit(x, &in);
    char why[RENDER_ERROR_SIZE];
    buf_t rendered = BUF_INIT;
    int rc = 0;
    if (strlen(rq->body) > x->cfg->limits.max_body_bytes) {
        rc = -2;
    } else if (route->data.uses_body && render_check_body(body, why, sizeof why)) {
        rc = -1;
    } else if (!render_whole_body(&route->data, body, &data)) {
        rc = render_template(&route->data, &in, &rendered, why, sizeof why);
        data = span_of(rendered.data ? rendered.data : "", rendered.len);
    }
    int result;
    if (rc == 0 && strcmp(x->rq->method, "HEAD") == 0 && route->kind == CONFIG_ROUTE_SEND &&
        (route->reply == CONFIG_REPLY_NDJSON || route->reply == CONFIG_REPLY_SSE)) {
        print_head(x);
        printf("service: %s\nhead: HEAD on a stream route is answered with the stream's head alone (no packet)\n",
               x->cfg->services[route->service_index].name);
        result = 0;
    } else if (rc) {
        print_head(x);
        result = rc == -2   ? answer(GW_ERR_PAYLOAD_TOO_LARGE, NULL)
                 : rc == -1 ? answer(GW_ERR_BAD_REQUEST, why)
                            : answer(GW_ERR_OVERLOADED, "out of memory");
    } else {
        result = print_packet(x, x->cfg->services[route->service_index].name, config_route_kind_name(route->kind),
                              route->kind == CONFIG_ROUTE_EMIT ? NULL : config_reply_mode_name(route->reply),
                              span_of(route->pattern_json, route->pattern_length), data);
    }
    buf_free(&rendered);
    buf_free(&q.value);
    return result;
}

/* The decisions in proxy.c's order: admin paths, the route, CORS, auth,
 * the routing's own answers, then the generic API or the route. */
static int explain_request(explain_t *x)
{
    span_t name;
    x->generic = generic_match_path(x->rq->path, &x->m, &name);
    verdict_t v = x->generic != GENERIC_PATH_NONE ? target_generic(x, name) : target_route(x);
    int rc = explain_cors(x, &v);
    if (rc >= 0)
        return rc;
    if (explain_auth(x, x->route ? x->route->auth : x->cfg->auth_mechanisms))
        return 1;
    if (v.error >= 0) {
        print_head(x);
        if (v.allow)
            printf("allow: %s\n", v.allow);
        return answer((gw_error_t)v.error, v.message);
    }
    return x->generic != GENERIC_PATH_NONE ? explain_generic(x) : explain_route(x);
}

static int explain(const config *cfg, const request_t *rq)
{
    explain_t x = { .cfg = cfg, .rq = rq, .label = "unmatched" };
    char err[JWKS_ERR_SIZE];
    if (cfg->jwt && cfg->jwt->jwks_file && !(x.keys = jwks_load_file(cfg->jwt->jwks_file, err, sizeof err))) {
        fprintf(stderr, "patterngate explain: auth.jwt.jwks_file: %s\n", err);
        return 2;
    }
    router_match_init(&x.m);
    int rc;
    if (!cfg->has_admin_listen && admin_is_path(rq->path)) {
        x.label = "admin";
        rc = !admin_is_probe(rq->path) && explain_auth(&x, cfg->auth_mechanisms);
        if (!rc) {
            print_head(&x);
            printf("admin: %s is answered by the gateway's admin API (no packet)\n", rq->path);
        }
    } else if (!(x.router = router_new(cfg)) || !(x.edge = edge_new(cfg))) {
        fprintf(stderr, "patterngate explain: out of memory\n");
        rc = 2;
    } else {
        rc = explain_request(&x);
    }
    router_match_free(&x.m);
    router_free(x.router);
    edge_free(x.edge);
    jwt_keys_free(x.keys);
    buf_free(&x.claims);
    buf_free(&x.notes);
    return rc;
}

/* PATH or URL into path and query: "http://h:1/a?b" -> "/a", "b". */
static int split_target(const char *target, request_t *rq)
{
    const char *p = target, *scheme = strstr(target, "://");
    if (scheme && strchr(target, '/') > scheme) {
        p = strchr(scheme + 3, '/');
        if (!p)
            p = "/";
    }
    if (*p != '/')
        return -1;
    const char *q = strchr(p, '?');
    size_t n = q ? (size_t)(q - p) : strlen(p);
    const char *hash = memchr(p, '#', n);
    if (hash)
        n = (size_t)(hash - p);
    rq->path = strndup(p, n);
    rq->query = q ? q + 1 : "";
    return rq->path ? 0 : -1;
}

static int parse_args(int argc, char **argv, request_t *rq, const char **file, const char **target)
{
    const char *positional[3] = { NULL, NULL, NULL };
    int np = 0;
    for (int i = 1; i < argc; i++) { /* argv[0] is "explain" */
        const char *arg = argv[i];
        int with_config = cli_config_option(argc, argv, &i, file);
        if (with_config < 0)
            return usage("-c needs a FILE");
        if (with_config > 0)
            continue;
        if (strcmp(arg, "-H") == 0 || strcmp(arg, "--header") == 0) {
            if (i + 1 >= argc || !strchr(argv[i + 1], ':'))
                return usage("-H needs \"Name: value\"");
            if (rq->n_headers == MAX_HEADERS)
                return usage("too many headers");
            rq->headers[rq->n_headers++] = argv[++i];
        } else if (arg[0] == '-' && arg[1] != '\0') {
            char problem[300];
            snprintf(problem, sizeof problem, "unknown option '%.250s'", arg);
            return usage(problem);
        } else if (np < 3) {
            positional[np++] = arg;
        } else {
            return usage("too many arguments");
        }
    }
    if (np < 2)
        return usage("METHOD and PATH are required");
    rq->method = positional[0];
    *target = positional[1];
    rq->body = positional[2] ? positional[2] : "";
    return 0;
}

int cli_explain(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return help();
    request_t rq = { 0 };
    const char *file = NULL, *target = NULL;
    int rc = parse_args(argc, argv, &rq, &file, &target);
    if (rc)
        return rc;
    if (split_target(target, &rq))
        return usage("PATH must start with / (or be a whole http:// URL)");
    config *cfg = cli_load_config(cli_config_file(file));
    if (!cfg) {
        free(rq.path);
        return 2;
    }
    rc = explain(cfg, &rq);
    config_free(cfg);
    free(rq.path);
    return rc;
}
