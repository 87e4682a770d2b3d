/*
 * fuzz_route: route matching (gateway/router.h) and template rendering
 * (gateway/render.h) with the fixed config FUZZ_CONFIG_ROUTES (configs.h).
 *
 * Input, like an HTTP request:
 *   METHOD SP PATH[?QUERY] LF
 *   (NAME: VALUE LF)*          headers, until an empty line
 *   LF BODY
 * (a missing part is empty; METHOD and PATH end at a NUL byte, as strings
 * from libmicrohttpd do).
 *
 * Checked:
 *   - router_match agrees with a naive reference matcher written here from
 *     router.h: every route tried on its own against the decoded segments,
 *     the winner being the first in segment-kind order (literal, :param,
 *     *rest, left to right) that accepts the method, exact methods before
 *     "*", a GET route accepting HEAD; 404 when no route matches the path;
 *     405 with the Allow list (HEAD after GET) when none accepts the
 *     method; the captures, byte for byte;
 *   - a match struct reused across inputs gives what a fresh one gives;
 *   - when a route is found, its data (fuzz_render_and_check): {} for a
 *     bodyless GET, HEAD or DELETE on a route without `data`; else, when
 *     the body check (by Content-Type) passes, rendering either fails with
 *     a one-line message and leaves the output alone, or gives one valid
 *     UTF-8 JSON document, the same from render_route_data and
 *     render_template. Headers `x-claims` (a JSON object) and `x-client`
 *     (an IP literal) give the claims and the client address; headers
 *     are walked ($headers, repeated headers) when bit 1 of the input's
 *     size is set, else only looked up.
 */
#include "fuzz/check.h"
#include "fuzz/configs.h"
#include "fuzz/fuzz.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "core/json_scan.h"
#include "gateway/router.h"

#define MAX_HEADERS 16
#define MAX_SEGMENTS 64

static config *cfg;
static router_t *router;
static router_match_t reused; /* kept from one input to the next */

static void setup(void)
{
    if (router)
        return;
    const char *text = FUZZ_CONFIG_ROUTES;
    cfg = fuzz_load_and_check(text, strlen(text));
    FUZZ_CHECK(cfg != NULL, "the fixed route config does not load");
    router = router_new(cfg);
    FUZZ_CHECK(router != NULL, "router_new failed");
    router_match_init(&reused);
}

/* ---- the request ---------------------------------------------------------- */

typedef struct header {
    char name[64]; /* lowercased, NUL-terminated */
    span_t value;
} header;

typedef struct request {
    char *method, *path; /* NUL-terminated copies */
    const char *query;   /* NULL: no '?' */
    size_t query_len;
    header headers[MAX_HEADERS];
    size_t header_count;
    span_t body;
} request;

static char *copy_cstr(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    FUZZ_CHECK(s != NULL, "oom");
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static const char *line_end(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? nl : end;
}

static void parse_request(const char *p, size_t n, request *rq)
{
    const char *end = p + n, *eol = line_end(p, end);
    const char *sp = memchr(p, ' ', (size_t)(eol - p));
    const char *target = sp ? sp + 1 : eol;
    rq->method = copy_cstr(p, (size_t)((sp ? sp : eol) - p));
    const char *q = memchr(target, '?', (size_t)(eol - target));
    rq->path = copy_cstr(target, (size_t)((q ? q : eol) - target));
    rq->query = q ? q + 1 : NULL;
    rq->query_len = q ? (size_t)(eol - q - 1) : 0;
    rq->header_count = 0;
    p = eol < end ? eol + 1 : end;
    while (p < end && *p != '\n') {
        eol = line_end(p, end);
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon && rq->header_count < MAX_HEADERS && colon - p < 64) {
            header *h = &rq->headers[rq->header_count++];
            size_t len = (size_t)(colon - p);
            for (size_t i = 0; i < len; i++)
                h->name[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
            h->name[len] = '\0';
            const char *v = colon + 1;
            while (v < eol && *v == ' ')
                v++;
            h->value = span_of(v, (size_t)(eol - v));
        }
        p = eol < end ? eol + 1 : end;
    }
    p = p < end ? p + 1 : end; /* the empty line */
    rq->body = span_of(p, (size_t)(end - p));
}

static render_lookup_result header_lookup(void *context, const char *name, size_t name_len,
                                          span_t *value)
{
    const request *rq = context;
    for (size_t i = 0; i < rq->header_count; i++) {
        if (strlen(rq->headers[i].name) == name_len &&
            memcmp(rq->headers[i].name, name, name_len) == 0) {
            *value = rq->headers[i].value;
            return RENDER_LOOKUP_FOUND;
        }
    }
    return RENDER_LOOKUP_ABSENT;
}

static int header_walk(void *context, render_pair_fn *pair, void *pair_context)
{
    const request *rq = context;
    for (size_t i = 0; i < rq->header_count; i++) {
        int rc = pair(pair_context, span_cstr(rq->headers[i].name), rq->headers[i].value);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static span_t header_value(const request *rq, const char *name)
{
    for (size_t i = 0; i < rq->header_count; i++)
        if (strcmp(rq->headers[i].name, name) == 0)
            return rq->headers[i].value;
    return span_of(NULL, 0);
}

/* The claims from an `x-claims` header, when it holds a JSON object (what
 * gateway/jwt.h hands out); else none. */
static span_t claims_of(const request *rq)
{
    span_t text = header_value(rq, "x-claims"), value;
    if (text.n == 0 || jscan_document(text.p, text.n, &value, NULL) != 0 ||
        jscan_type_of(value) != JSCAN_OBJECT)
        return span_of(NULL, 0);
    return text;
}

/* The client address from an `x-client` header (an IPv4 or IPv6
 * literal); else none. */
static const struct sockaddr *client_of(const request *rq, struct sockaddr_in6 *storage)
{
    span_t text = header_value(rq, "x-client");
    char ip[INET6_ADDRSTRLEN];
    if (text.n == 0 || text.n >= sizeof ip)
        return NULL;
    memcpy(ip, text.p, text.n);
    ip[text.n] = '\0';
    struct sockaddr_in *v4 = (struct sockaddr_in *)storage;
    memset(storage, 0, sizeof *storage);
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        return (const struct sockaddr *)v4;
    }
    if (inet_pton(AF_INET6, ip, &storage->sin6_addr) == 1) {
        storage->sin6_family = AF_INET6;
        return (const struct sockaddr *)storage;
    }
    return NULL;
}

/* ---- the reference matcher ------------------------------------------------ */

typedef struct segments {
    span_t s[MAX_SEGMENTS];
    size_t count;
} segments;

/* Matches one route alone; fills the captures (joined rest in `joined`). */
static int route_matches(const route_path *path, const segments *req, span_t *captures,
                         buf_t *joined)
{
    size_t c = 0;
    buf_clear(joined);
    for (size_t i = 0; i < path->count; i++) {
        const route_segment *seg = &path->segments[i];
        if (seg->kind == ROUTE_SEGMENT_REST) {
            if (i >= req->count)
                return 0;
            for (size_t j = i; j < req->count; j++) {
                if (j > i)
                    FUZZ_CHECK(buf_append(joined, "/", 1) == 0, "oom");
                FUZZ_CHECK(buf_append_span(joined, req->s[j]) == 0, "oom");
            }
            if (joined->len == 0)
                return 0;
            captures[c++] = span_of(joined->data, joined->len);
            return 1;
        }
        if (i >= req->count || req->s[i].n == 0)
            return 0;
        if (seg->kind == ROUTE_SEGMENT_LITERAL) {
            if (req->s[i].n != seg->length || memcmp(req->s[i].p, seg->text, seg->length) != 0)
                return 0;
        } else {
            captures[c++] = req->s[i];
        }
    }
    return path->count == req->count;
}

/* <0 when a comes first in precedence order, >0 when b does. */
static int precedence(const config_route *a, const config_route *b)
{
    for (size_t i = 0; i < a->path.count && i < b->path.count; i++) {
        int ka = (int)a->path.segments[i].kind, kb = (int)b->path.segments[i].kind;
        if (ka != kb)
            return ka - kb; /* LITERAL < PARAM < REST */
    }
    return (a->method == CONFIG_METHOD_ANY) - (b->method == CONFIG_METHOD_ANY);
}

/* HEAD is GET without the body: a GET route accepts it (router.h). */
static int accepts(const config_route *r, const char *method)
{
    if (r->method == CONFIG_METHOD_ANY)
        return 1;
    return strcmp(config_method_name(r->method), strcmp(method, "HEAD") == 0 ? "GET" : method) == 0;
}

static void check_match(const request *rq, const router_match_t *m)
{
    router_match_t d;
    router_match_init(&d);
    long count = router_decode_path(rq->path, &d);
    if (count < 0) {
        FUZZ_CHECK(count == ROUTER_DECODE_BAD, "router_decode_path returned %ld", count);
        FUZZ_CHECK(m->outcome == ROUTER_BAD_PATH, "outcome %d for a bad path", (int)m->outcome);
        FUZZ_CHECK(m->error[0] && memchr(m->error, '\0', sizeof m->error), "bad path without a reason");
        router_match_free(&d);
        return;
    }
    FUZZ_CHECK(m->outcome != ROUTER_BAD_PATH, "BAD_PATH (%s) for a path that decodes", m->error);
    if (count > MAX_SEGMENTS) {
        router_match_free(&d);
        return;
    }
    segments req = { .count = (size_t)count };
    for (size_t i = 0; i < req.count; i++)
        req.s[i] = router_match_segment(&d, i);

    const config_route *best = NULL;
    span_t best_captures[MAX_SEGMENTS], captures[MAX_SEGMENTS];
    buf_t joined = BUF_INIT, best_joined = BUF_INIT;
    unsigned allow = 0;
    for (size_t i = 0; i < cfg->route_count; i++) {
        const config_route *r = &cfg->routes[i];
        if (!route_matches(&r->path, &req, captures, &joined))
            continue;
        if (!accepts(r, rq->method)) {
            allow |= 1u << r->method;
            continue;
        }
        if (best && precedence(r, best) >= 0)
            continue;
        best = r;
        memcpy(best_captures, captures, r->path.capture_count * sizeof captures[0]);
        if (r->path.count && r->path.segments[r->path.count - 1].kind == ROUTE_SEGMENT_REST) {
            buf_clear(&best_joined);
            FUZZ_CHECK(buf_append(&best_joined, joined.data, joined.len) == 0, "oom");
            best_captures[r->path.capture_count - 1] = span_of(best_joined.data, best_joined.len);
        }
    }

    if (best) {
        FUZZ_CHECK(m->outcome == ROUTER_FOUND, "outcome %d, the reference found %s %s",
                   (int)m->outcome, config_method_name(best->method), best->path.text);
        FUZZ_CHECK(m->route == best && m->route_index == (size_t)(best - cfg->routes),
                   "%s %s matched %s %s, the reference %s %s", rq->method, rq->path,
                   config_method_name(m->route->method), m->route->path.text,
                   config_method_name(best->method), best->path.text);
        FUZZ_CHECK(m->capture_count == best->path.capture_count, "capture count");
        for (size_t i = 0; i < m->capture_count; i++)
            FUZZ_CHECK(span_eq(m->captures[i], best_captures[i]), "capture %zu is %.*s, expected %.*s",
                       i, (int)m->captures[i].n, m->captures[i].p, (int)best_captures[i].n,
                       best_captures[i].p);
    } else if (allow) {
        FUZZ_CHECK(m->outcome == ROUTER_METHOD_NOT_ALLOWED, "outcome %d, the reference says 405",
                   (int)m->outcome);
        char expected[ROUTER_ALLOW_SIZE] = "";
        static const config_method order[] = { CONFIG_METHOD_GET, CONFIG_METHOD_POST,
                                               CONFIG_METHOD_PUT, CONFIG_METHOD_PATCH,
                                               CONFIG_METHOD_DELETE };
        for (size_t i = 0; i < 5; i++) {
            if (!(allow & (1u << order[i])))
                continue;
            if (expected[0])
                strcat(expected, ", ");
            strcat(expected, config_method_name(order[i]));
            if (order[i] == CONFIG_METHOD_GET)
                strcat(expected, ", HEAD");
        }
        FUZZ_CHECK(strcmp(m->allow, expected) == 0, "Allow: %s, expected %s", m->allow, expected);
    } else {
        FUZZ_CHECK(m->outcome == ROUTER_NOT_FOUND, "outcome %d, the reference says 404",
                   (int)m->outcome);
    }
    buf_free(&joined);
    buf_free(&best_joined);
    router_match_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    request rq;
    parse_request((const char *)data, size, &rq);

    router_match_t fresh;
    router_match_init(&fresh);
    router_result_t a = router_match(router, rq.method, rq.path, &reused);
    router_result_t b = router_match(router, rq.method, rq.path, &fresh);
    FUZZ_CHECK(a == reused.outcome && b == fresh.outcome, "return value is not the outcome");
    FUZZ_CHECK(a == b, "a reused match struct gives %d, a fresh one %d", (int)a, (int)b);
    FUZZ_CHECK(a != ROUTER_NO_MEMORY, "out of memory");
    if (a == ROUTER_FOUND) {
        FUZZ_CHECK(reused.route == fresh.route && reused.capture_count == fresh.capture_count,
                   "reused and fresh structs found different routes");
        for (size_t i = 0; i < fresh.capture_count; i++)
            FUZZ_CHECK(span_eq(reused.captures[i], fresh.captures[i]), "captures differ");
    }
    check_match(&rq, &fresh);

    if (a == ROUTER_FOUND) {
        render_query q = { rq.query, rq.query_len, BUF_INIT, BUF_INIT };
        buf_t scratch = BUF_INIT;
        struct sockaddr_in6 client;
        render_input_t in = {
            .body = rq.body,
            .content_type = header_value(&rq, "content-type"),
            .captures = fresh.captures,
            .capture_count = fresh.capture_count,
            .query = rq.query ? render_query_lookup : NULL,
            .query_context = &q,
            .header = header_lookup,
            .header_context = &rq,
            .query_all = rq.query ? render_query_all : NULL,
            .query_all_context = &q,
            .header_all = (size & 2) ? header_walk : NULL, /* else lookups alone */
            .header_all_context = &rq,
            .claims = claims_of(&rq),
            .client_address = client_of(&rq, &client),
            .method = rq.method,
            .scratch = (size & 1) ? &scratch : NULL,
        };
        fuzz_render_and_check(fresh.route, &in);
        buf_free(&scratch);
        buf_free(&q.value);
        buf_free(&q.name);
    }
    router_match_free(&fresh);
    free(rq.method);
    free(rq.path);
    return 0;
}
