/* The HTTP API of the built binary, driven as a user would, against real
 * Nest 12 and Nest 10 services (one cmocka group per version) and against
 * scripted raw upstreams (tests/support/net.h) that see the exact packet
 * bytes: routes and templates, the generic API, errors, auth, limits,
 * request ids and packet metadata, streams, byte-exact values, 500
 * concurrent clients, services that die or come up late, clients that go
 * away, SIGTERM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support/deadline.h"
#include "support/gateway.h"
#include "support/http.h"
#include "support/nest.h"
#include "support/net.h"
#include "support/proc.h"

#define REQ_TIMEOUT_MS 30000   /* one HTTP exchange, on a loaded machine */
#define POLL_TIMEOUT_MS 30000  /* waiting for a condition (a recorded event, a reconnect) */
#define POLL_PAUSE_MS 50       /* between two polls of a condition */

/* ---- fixtures ------------------------------------------------------------ */

/* The gateway whose log a failure prints. */
static struct gwproc *g_gateway;
/* A gateway and a Nest service that the running test started for itself;
 * the test's teardown kills them if the test failed before it could. */
static struct gwproc *g_own;
static struct nest_service *g_own_nest;

typedef struct fixture {
    struct nest_group *nest;   /* the group's Nest service */
    struct gwproc *gw;         /* the gateway on MAIN_CONFIG */
    int port;
} fixture_t;

static const char MAIN_CONFIG[] =
    "{\n"
    "  \"listen\": \"127.0.0.1:${GW_PORT}\",\n"
    "  \"generic_api\": [\"nest\"],\n"
    "  \"log\": { \"level\": \"info\", \"access\": true },\n"
    "  \"limits\": { \"max_body_bytes\": 8388608 },\n"
    "  \"services\": {\n"
    "    \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"], \"timeout_ms\": 20000 },\n"
    "    \"hidden\": { \"endpoints\": [\"${NEST_ADDR}\"] },\n"
    "    \"nometa\": { \"endpoints\": [\"${NEST_ADDR}\"], \"metadata\": false }\n"
    "  },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"sum\" }, \"data\": \"$body\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/echo\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" } },\n"
    "    { \"method\": \"PUT\", \"path\": \"/echo\", \"service\": \"nest\", \"pattern\": \"echo\" },\n"
    "    { \"method\": \"GET\", \"path\": \"/users/me\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"me\": true } },\n"
    "    { \"method\": \"GET\", \"path\": \"/users/:id\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"id\": \"$path.id:int\", \"full\": \"$query.full:bool\", \"lang\": \"$header.accept-language\",\n"
    "                \"n\": \"$query.n:number\", \"j\": \"$query.j:json\", \"raw\": \"$path.id\" } },\n"
    "    { \"method\": \"GET\", \"path\": \"/names/:name\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"name\": \"$path.name\", \"q\": \"$query.q\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/members\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"a\": \"$body.a\", \"b\": \"$body.a.b\", \"missing\": \"$body.zzz\" } },\n"
    "    { \"method\": \"GET\", \"path\": \"/files/readme\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"readme\": true } },\n"
    "    { \"method\": \"GET\", \"path\": \"/files/*rest\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"rest\": \"$path.rest\" } },\n"
    "    { \"method\": \"GET\", \"path\": \"/literal/:id\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"s\": \"id $path.id\", \"arr\": [\"$path.id\", 1, null, true, \"$query.x:int\"],\n"
    "                \"obj\": { \"deep\": { \"v\": \"$path.id:int\" } }, \"dollar\": \"$$notaref\",\n"
    "                \"h\": \"$header.x-missing\", \"q\": \"$query.missing\" } },\n"
    "    { \"method\": \"*\", \"path\": \"/any\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" }, \"data\": \"any\" },\n"
    "    { \"method\": \"GET\", \"path\": \"/tpl/:id\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"...\": \"$query\", \"id\": \"$path.id:int\", \"t\": \"$header.x-t?\", \"ip\": \"$client.ip\" } },\n"
    "    { \"method\": \"PATCH\", \"path\": \"/tpl/:id\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"...\": \"$body\", \"id\": \"$path.id:int\", \"title\": \"$body.title?\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/tpl-headers\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": \"$headers\" },\n"
    "    { \"method\": \"GET\", \"path\": \"/default\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" } },\n"
    "    { \"method\": \"DELETE\", \"path\": \"/default\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/events\", \"service\": \"nest\", \"pattern\": \"record\", \"kind\": \"emit\" },\n"
    "    { \"method\": \"GET\", \"path\": \"/recorded\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"recorded\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/recorded/clear\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"recorded_clear\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/stream\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/stream-array\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"reply\": \"array\" },\n"
    "    { \"method\": \"GET\", \"path\": \"/nothing\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"nothing\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/created\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" }, \"status\": 201 },\n"
    "    { \"method\": \"POST\", \"path\": \"/rpc_object\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"rpc_object\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/rpc_string\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"rpc_string\" } },\n"
    "    { \"method\": \"GET\", \"path\": \"/throw\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"throw\" } },\n"
    "    { \"method\": \"GET\", \"path\": \"/no_handler\", \"service\": \"nest\", \"pattern\": \"no_such_pattern\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/delay\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"delay\" },\n"
    "      \"timeout_ms\": 1000 },\n"
    "    { \"method\": \"POST\", \"path\": \"/slow\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"delay\" },\n"
    "      \"timeout_ms\": 30000 },\n"
    "    { \"method\": \"GET\", \"path\": \"/metadata\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"metadata\" } },\n"
    "    { \"method\": \"GET\", \"path\": \"/metadata-off\", \"service\": \"nometa\", \"pattern\": { \"cmd\": \"metadata\" } }\n"
    "  ]\n"
    "}\n";

static void print_log_tail(void)
{
    if (g_gateway)
        gwproc_print_log(g_gateway, "at the failure", 40);
}

/* Starts a gateway on `config` with NEST_ADDR set to address (may be NULL)
 * plus the extra env; fails the test if it does not come up. */
static struct gwproc *start_gateway(const char *config, const char *address,
                                    const struct gwproc_options *base)
{
    char nest_env[64];
    snprintf(nest_env, sizeof nest_env, "NEST_ADDR=%s", address ? address : "127.0.0.1:1");
    const char *env[16] = { nest_env };
    size_t n = 1;
    for (size_t i = 0; base && base->env && base->env[i] && n < 15; i++)
        env[n++] = base->env[i];
    env[n] = NULL;
    struct gwproc_options o = base ? *base : (struct gwproc_options){ 0 };
    o.env = env;
    struct gwproc *gw = NULL;
    int rc = gwproc_start(config, &o, &gw);
    if (rc != 0)
        fail_msg("the gateway did not start: %s", strerror(-rc));
    g_own = gw;
    g_gateway = gw;
    return gw;
}

static void own_gateway_free(void)
{
    if (g_gateway == g_own)
        g_gateway = NULL;
    gwproc_free(g_own);
    g_own = NULL;
}

/* SIGTERM; the gateway must exit 0 (an ASan build exits non-zero on a leak). */
static void stop_gateway(void)
{
    int status = gwproc_stop(g_own, GWPROC_STOP_TIMEOUT_MS);
    if (status != 0) {
        char buf[64];
        gwproc_print_log(g_own, "stopping", 40);
        fail_msg("the gateway ended with %s after SIGTERM, expected exit 0",
                 proc_status_str(status, buf, sizeof buf));
    }
    own_gateway_free();
}

/* Starts a Nest service of the group's version for the test alone. */
static struct nest_service *start_own_nest(const char *version, int port)
{
    struct nest_service *svc = calloc(1, sizeof *svc);
    assert_non_null(svc);
    struct nest_options no = { .quiet = true, .port = port };
    if (nest_start(version, &no, svc) != 0) {
        free(svc);
        fail_msg("the Nest %s service did not start", version);
    }
    g_own_nest = svc;
    return svc;
}

static void own_nest_free(void)
{
    if (g_own_nest)
        nest_stop(g_own_nest);
    free(g_own_nest);
    g_own_nest = NULL;
}

/* Per test: kill what a failed test left behind. */
static void own_raw_free(void);

static int own_teardown(void **state)
{
    (void)state;
    own_gateway_free();
    own_nest_free();
    own_raw_free();
    g_gateway = NULL;
    return 0;
}

static int group_setup(void **state, int (*nest_setup)(void **))
{
    fixture_t *f = calloc(1, sizeof *f);
    void *ns = NULL;
    if (!f || nest_setup(&ns) != 0) {
        free(f);
        return -1;
    }
    f->nest = ns;
    char nest_env[64];
    snprintf(nest_env, sizeof nest_env, "NEST_ADDR=%s", f->nest->address);
    const char *env[] = { nest_env, NULL };
    struct gwproc_options o = { .env = env };
    if (gwproc_start(MAIN_CONFIG, &o, &f->gw) != 0) {
        nest_group_teardown(&ns);
        free(f);
        return -1;
    }
    f->port = gwproc_port(f->gw);
    *state = f;
    return 0;
}

static int group_setup_v12(void **state) { return group_setup(state, nest_group_setup_v12); }
static int group_setup_v10(void **state) { return group_setup(state, nest_group_setup_v10); }

static int group_teardown(void **state)
{
    fixture_t *f = *state;
    int status = gwproc_stop(f->gw, GWPROC_STOP_TIMEOUT_MS);
    if (status != 0) {
        char buf[64];
        gwproc_print_log(f->gw, "at the group's end", 40);
        fprintf(stderr, "ERROR: the gateway ended with %s after SIGTERM, expected exit 0\n",
                proc_status_str(status, buf, sizeof buf));
    }
    gwproc_free(f->gw);
    void *ns = f->nest;
    nest_group_teardown(&ns);
    free(f);
    g_gateway = NULL;
    return status == 0 ? 0 : -1;
}

/* Per-test: point failure messages at the group's gateway. */
static int test_setup(void **state)
{
    fixture_t *f = *state;
    g_gateway = f->gw;
    return 0;
}

static const char *nest_version(void **state)
{
    fixture_t *f = *state;
    return f->nest->svc.version;
}

/* ---- requests and expectations -------------------------------------------- */

/* One request on a new connection; fails the test if no response came. */
static struct http_response request(int port, const char *method, const char *path,
                                    const char *const *headers, const void *body, size_t len)
{
    struct http_request req = { .method = method, .path = path, .headers = headers,
                                .body = body, .body_len = len };
    struct http_response resp;
    int rc = http_fetch(port, &req, &resp, REQ_TIMEOUT_MS);
    if (rc != 0) {
        print_log_tail();
        fail_msg("%s %s: no response: %s", method, path, strerror(-rc));
    }
    return resp;
}

static struct http_response req_text(int port, const char *method, const char *path,
                                     const char *body)
{
    return request(port, method, path, NULL, body, body ? strlen(body) : 0);
}

static void fail_response(const struct http_response *r, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_response(const struct http_response *r, const char *what, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *dump = http_response_dump(r, 2000);
    print_log_tail();
    fprintf(stderr, "---- response ----\n%s\n---- end of response ----\n", dump ? dump : "");
    free(dump);
    fail_msg("%s: %s", what, msg);
}

/* Every response carries a non-empty X-Request-Id. */
static void expect_request_id(const struct http_response *r, const char *what)
{
    const char *id = http_header(r, "X-Request-Id");
    if (!id || !*id)
        fail_response(r, what, "no X-Request-Id");
}

static void expect_json_type(const struct http_response *r, const char *what)
{
    const char *ct = http_header(r, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0)
        fail_response(r, what, "Content-Type is %s, expected application/json", ct ? ct : "absent");
}

/* Status and body exactly; a body means application/json. */
static void expect_body(const struct http_response *r, const char *what, int status,
                        const char *body)
{
    if (r->status != status)
        fail_response(r, what, "status %d, expected %d", r->status, status);
    size_t len = strlen(body);
    if (r->body_len != len || memcmp(r->body, body, len) != 0)
        fail_response(r, what, "body differs; expected (%zu bytes)\n%s", len, body);
    expect_request_id(r, what);
    if (len > 0)
        expect_json_type(r, what);
}

/* A gateway error: status, application/json, and the body
 * {"statusCode": status, "error": code, "message": non-empty text} plus
 * "details" for upstream errors only. Returns the parsed body (caller
 * frees with json_decref). */
static json_t *expect_error(const struct http_response *r, const char *what, int status,
                            const char *code)
{
    if (r->status != status)
        fail_response(r, what, "status %d, expected %d %s", r->status, status, code);
    expect_request_id(r, what);
    expect_json_type(r, what);
    json_error_t err;
    json_t *j = json_loadb(r->body, r->body_len, JSON_ALLOW_NUL, &err);
    if (!j || !json_is_object(j))
        fail_response(r, what, "the body is not a JSON object: %s", err.text);
    json_t *sc = json_object_get(j, "statusCode");
    if (!json_is_integer(sc) || json_integer_value(sc) != status)
        fail_response(r, what, "statusCode is not %d", status);
    json_t *e = json_object_get(j, "error");
    if (!json_is_string(e) || strcmp(json_string_value(e), code) != 0)
        fail_response(r, what, "error is not \"%s\"", code);
    json_t *m = json_object_get(j, "message");
    if (!json_is_string(m) || json_string_length(m) == 0)
        fail_response(r, what, "message is not a non-empty string");
    size_t allowed = 3 + (json_object_get(j, "details") != NULL);
    bool upstream = strcmp(code, "upstream_error") == 0 || strcmp(code, "no_handler") == 0;
    if (json_object_size(j) != allowed || (!upstream && allowed == 4))
        fail_response(r, what, "unexpected members in the error body");
    return j;
}

static void expect_error_free(const struct http_response *r, const char *what, int status,
                              const char *code)
{
    json_decref(expect_error(r, what, status, code));
}

/* The error's message must name `where` (a parameter, a path...). */
static void expect_error_names(struct http_response *r, const char *what, const char *code,
                               const char *where)
{
    json_t *j = expect_error(r, what, 400, code);
    const char *msg = json_string_value(json_object_get(j, "message"));
    if (!strstr(msg, where))
        fail_response(r, what, "the message does not say where (\"%s\")", where);
    json_decref(j);
    http_response_free(r);
}

/* Shorthands: request, check status and exact body, free. */
static void check(int port, const char *method, const char *path, const char *body, int status,
                  const char *expected)
{
    char what[256];
    snprintf(what, sizeof what, "%s %s", method, path);
    struct http_response r = req_text(port, method, path, body);
    expect_body(&r, what, status, expected);
    http_response_free(&r);
}

static void check_error(int port, const char *method, const char *path, const char *body,
                        int status, const char *code)
{
    char what[256];
    snprintf(what, sizeof what, "%s %s", method, path);
    struct http_response r = req_text(port, method, path, body);
    expect_error_free(&r, what, status, code);
    http_response_free(&r);
}

/* Polls `method path` until it answers status with exactly body, or fails
 * after POLL_TIMEOUT_MS showing the last response. */
static void poll_until(int port, const char *method, const char *path, const char *req_body,
                       int status, const char *body)
{
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    for (;;) {
        struct http_request req = { .method = method, .path = path, .body = req_body,
                                    .body_len = req_body ? strlen(req_body) : 0 };
        struct http_response r;
        int rc = http_fetch(port, &req, &r, REQ_TIMEOUT_MS);
        bool done = rc == 0 && r.status == status && strcmp(r.body, body) == 0;
        if (!done && deadline_remaining_ms(deadline) == 0) {
            char what[256];
            snprintf(what, sizeof what, "%s %s, polled for %d ms", method, path, POLL_TIMEOUT_MS);
            if (rc == 0)
                expect_body(&r, what, status, body);
            print_log_tail();
            fail_msg("%s: the last attempt got no response: %s", what, strerror(-rc));
        }
        if (rc == 0)
            http_response_free(&r);
        if (done)
            return;
        deadline_pause_ms(POLL_PAUSE_MS);
    }
}

/* ---- a request running on a thread of its own ---------------------------- */

typedef struct bg_request {
    int port;
    const char *method;
    const char *path;
    char body[256];
    pthread_t thread;
    atomic_int sent;          /* the request was written */
    atomic_int done;
    int rc;
    struct http_response resp;
    int64_t done_at_ms;
} bg_request_t;

static void *bg_main(void *arg)
{
    bg_request_t *b = arg;
    struct http_conn *c;
    b->rc = http_connect(b->port, REQ_TIMEOUT_MS, &c);
    if (b->rc == 0) {
        struct http_request req = { .method = b->method, .path = b->path, .body = b->body,
                                    .body_len = strlen(b->body) };
        b->rc = http_send(c, &req, REQ_TIMEOUT_MS);
        atomic_store(&b->sent, 1);
        if (b->rc == 0)
            b->rc = http_read_response(c, &b->resp, 60000);
        http_close(c);
    }
    b->done_at_ms = deadline_now_ms();
    atomic_store(&b->sent, 1);
    atomic_store(&b->done, 1);
    return NULL;
}

/* Starts a request on a thread. The record is on the heap: a test that
 * fails while the thread runs leaves it behind (leaked) rather than let the
 * thread write into a dead stack frame. */
static bg_request_t *bg_start(int port, const char *method, const char *path, const char *body)
{
    bg_request_t *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->port = port;
    b->method = method;
    b->path = path;
    snprintf(b->body, sizeof b->body, "%s", body);
    assert_int_equal(pthread_create(&b->thread, NULL, bg_main, b), 0);
    return b;
}

static void bg_free(bg_request_t *b)
{
    http_response_free(&b->resp);
    free(b);
}

/* Joins the thread; fails the test if the request got no response. */
static void bg_join(bg_request_t *b)
{
    pthread_join(b->thread, NULL);
    if (b->rc != 0) {
        print_log_tail();
        fail_msg("%s %s (background): no response: %s", b->method, b->path, strerror(-b->rc));
    }
}

/* Makes sure the background request b reached the service: once it was
 * written, a later request (on a later connection) goes to the service and
 * back, which the gateway's event loop handles after b's bytes, already
 * waiting when that connection opened. Fails if b already finished. */
static void bg_wait_in_flight(bg_request_t *b, int port)
{
    int64_t deadline = deadline_after(REQ_TIMEOUT_MS);
    while (!atomic_load(&b->sent) && deadline_remaining_ms(deadline) > 0)
        deadline_pause_ms(10);
    check(port, "POST", "/sum", "[1,1]", 200, "2");
    if (atomic_load(&b->done)) {
        bg_join(b);
        fail_response(&b->resp, "background request", "finished before it should have");
    }
}

/* ---- routes and templates --------------------------------------------------- */

static void sum_and_echo(void **state)
{
    fixture_t *f = *state;
    check(f->port, "POST", "/sum", "[1,2,3]", 200, "6");
    check(f->port, "POST", "/echo", "{\"a\":[1,\"x\",null,true],\"b\":{\"c\":-2.5}}", 200,
          "{\"a\":[1,\"x\",null,true],\"b\":{\"c\":-2.5}}");
    check(f->port, "PUT", "/echo", "\"string pattern\"", 200, "\"string pattern\"");
    /* $body of an empty body is null */
    check(f->port, "POST", "/echo", NULL, 200, "null");
    check(f->port, "POST", "/echo", "", 200, "null");
}

static void path_query_header_conversions(void **state)
{
    fixture_t *f = *state;
    const char *hdr[] = { "Accept-Language: fr-CH, fr;q=0.9", NULL };
    struct http_response r = request(f->port, "GET",
                                     "/users/42?full=true&n=1.5&j=%7B%22x%22%3A%5B1%2C2%5D%7D",
                                     hdr, NULL, 0);
    expect_body(&r, "GET /users/42 with everything", 200,
                "{\"id\":42,\"full\":true,\"lang\":\"fr-CH, fr;q=0.9\",\"n\":1.5,\"j\":{\"x\":[1,2]},"
                "\"raw\":\"42\"}");
    http_response_free(&r);
    /* absent query parameters and header: null; false; a negative int */
    check(f->port, "GET", "/users/-7?full=false", NULL, 200,
          "{\"id\":-7,\"full\":false,\"lang\":null,\"n\":null,\"j\":null,\"raw\":\"-7\"}");
    /* (Node re-encodes integers beyond 2^53: raw_int_conversions checks those) */
    check(f->port, "GET", "/users/9007199254740991?n=-2", NULL, 200,
          "{\"id\":9007199254740991,\"full\":null,\"lang\":null,\"n\":-2,\"j\":null,"
          "\"raw\":\"9007199254740991\"}");
    /* the first of a repeated query parameter */
    check(f->port, "GET", "/users/1?full=true&full=false&j=%22s%22", NULL, 200,
          "{\"id\":1,\"full\":true,\"lang\":null,\"n\":null,\"j\":\"s\",\"raw\":\"1\"}");
}

static void failed_conversions_are_400(void **state)
{
    fixture_t *f = *state;
    struct http_response r = req_text(f->port, "GET", "/users/abc", NULL);
    expect_error_names(&r, "GET /users/abc (:int)", "bad_request", "id");
    r = req_text(f->port, "GET", "/users/1.5", NULL);
    expect_error_names(&r, "GET /users/1.5 (:int)", "bad_request", "id");
    r = req_text(f->port, "GET", "/users/99999999999999999999", NULL);
    expect_error_names(&r, "GET /users/<beyond int64> (:int)", "bad_request", "id");
    r = req_text(f->port, "GET", "/users/1?full=yes", NULL);
    expect_error_names(&r, "GET /users/1?full=yes (:bool)", "bad_request", "full");
    r = req_text(f->port, "GET", "/users/1?full=1", NULL);
    expect_error_names(&r, "GET /users/1?full=1 (:bool)", "bad_request", "full");
    r = req_text(f->port, "GET", "/users/1?n=abc", NULL);
    expect_error_names(&r, "GET /users/1?n=abc (:number)", "bad_request", "n");
    r = req_text(f->port, "GET", "/users/1?n=1e999", NULL);
    expect_error_names(&r, "GET /users/1?n=1e999 (:number, not finite)", "bad_request", "n");
    r = req_text(f->port, "GET", "/users/1?j=%7B", NULL);
    expect_error_names(&r, "GET /users/1?j={ (:json)", "bad_request", "j");
}

static void literal_beats_param_beats_rest(void **state)
{
    fixture_t *f = *state;
    check(f->port, "GET", "/users/me", NULL, 200, "{\"me\":true}");
    check(f->port, "GET", "/files/readme", NULL, 200, "{\"readme\":true}");
    check(f->port, "GET", "/files/readme/x", NULL, 200, "{\"rest\":\"readme/x\"}");
    check(f->port, "GET", "/files/a/b/c.txt", NULL, 200, "{\"rest\":\"a/b/c.txt\"}");
    check(f->port, "GET", "/files/x", NULL, 200, "{\"rest\":\"x\"}");
}

static void trailing_slash_and_query_ignored_for_matching(void **state)
{
    fixture_t *f = *state;
    check(f->port, "GET", "/users/me/", NULL, 200, "{\"me\":true}");
    check(f->port, "GET", "/users/me?id=5", NULL, 200, "{\"me\":true}");
    check(f->port, "POST", "/sum/", "[2,3]", 200, "5");
    check(f->port, "GET", "/users/42/?full=true", NULL, 200,
          "{\"id\":42,\"full\":true,\"lang\":null,\"n\":null,\"j\":null,\"raw\":\"42\"}");
}

static void percent_decoded_params(void **state)
{
    fixture_t *f = *state;
    check(f->port, "GET", "/names/caf%C3%A9", NULL, 200, "{\"name\":\"café\",\"q\":null}");
    check(f->port, "GET", "/names/a%2Fb", NULL, 200, "{\"name\":\"a/b\",\"q\":null}");
    check(f->port, "GET", "/names/%ED%95%9C%EA%B5%AD%20x?q=a%20b%26c%3D", NULL, 200,
          "{\"name\":\"한국 x\",\"q\":\"a b&c=\"}");
    check(f->port, "GET", "/files/caf%C3%A9/x%20y", NULL, 200, "{\"rest\":\"café/x y\"}");
    check(f->port, "GET", "/users/%34%32", NULL, 200,
          "{\"id\":42,\"full\":null,\"lang\":null,\"n\":null,\"j\":null,\"raw\":\"42\"}");
}

static void body_members(void **state)
{
    fixture_t *f = *state;
    check(f->port, "POST", "/members", "{\"a\":{\"b\":[1,\"x\"],\"c\":2},\"d\":3}", 200,
          "{\"a\":{\"b\":[1,\"x\"],\"c\":2},\"b\":[1,\"x\"],\"missing\":null}");
    check(f->port, "POST", "/members", "{\"a\":5}", 200, "{\"a\":5,\"b\":null,\"missing\":null}");
    check(f->port, "POST", "/members", "{}", 200, "{\"a\":null,\"b\":null,\"missing\":null}");
}

static void literal_template_parts(void **state)
{
    fixture_t *f = *state;
    check(f->port, "GET", "/literal/5?x=3", NULL, 200,
          "{\"s\":\"id $path.id\",\"arr\":[\"5\",1,null,true,3],\"obj\":{\"deep\":{\"v\":5}},"
          "\"dollar\":\"$notaref\",\"h\":null,\"q\":null}");
}

/* The gateway's render input: the whole query, a header, the client's
 * address, spreads, optional members, forms, every header, the bodyless
 * default (docs/CONFIG.md "Templates"). */
static void template_sources(void **state)
{
    fixture_t *f = *state;
    const char *tee[] = { "X-T: tee", NULL };
    struct http_response r = request(f->port, "GET", "/tpl/5?a=1&b=x+y&a=2&id=9", tee, NULL, 0);
    expect_body(&r, "GET /tpl/5 with X-T", 200,
                "{\"id\":5,\"t\":\"tee\",\"ip\":\"127.0.0.1\",\"a\":\"1\",\"b\":\"x y\"}");
    http_response_free(&r);
    check(f->port, "GET", "/tpl/5", NULL, 200, "{\"id\":5,\"ip\":\"127.0.0.1\"}");
    check(f->port, "PATCH", "/tpl/2", "{\"rating\":5,\"id\":\"x\"}", 200,
          "{\"id\":2,\"rating\":5}");
    r = req_text(f->port, "PATCH", "/tpl/2", "[1]");
    expect_error_names(&r, "PATCH /tpl/2 [1]", "bad_request", "expected an object to spread");
    const char *form[] = { "Content-Type: application/x-www-form-urlencoded", NULL };
    const char *fields = "title=A+b&rating=5&title=C";
    r = request(f->port, "PATCH", "/tpl/2", form, fields, strlen(fields));
    expect_body(&r, "PATCH /tpl/2 as a form", 200,
                "{\"id\":2,\"title\":\"C\",\"rating\":\"5\"}");
    http_response_free(&r);
    /* JSON with the form type, as curl -d sends it: read as JSON */
    r = request(f->port, "PATCH", "/tpl/2", form, "{\"rating\":5}", 12);
    expect_body(&r, "PATCH /tpl/2 JSON typed as a form", 200, "{\"id\":2,\"rating\":5}");
    http_response_free(&r);
    const char *text[] = { "Content-Type: text/plain", NULL };
    r = request(f->port, "PATCH", "/tpl/2", text, "title=x", 7);
    expect_error_names(&r, "PATCH /tpl/2 text/plain", "bad_request", "(Content-Type: text/plain)");
    const char *twice[] = { "X-A: 1", "x-a: 2", NULL };
    r = request(f->port, "POST", "/tpl-headers", twice, "", 0);
    if (r.status != 200 || !memmem(r.body, r.body_len, "\"x-a\":\"1, 2\"", 12) ||
        !memmem(r.body, r.body_len, "\"host\":\"127.0.0.1:", 18))
        fail_response(&r, "POST /tpl-headers", "expected every header, x-a joined");
    http_response_free(&r);
    /* a route without data: {} for a bodyless GET or DELETE, the body otherwise */
    check(f->port, "GET", "/default", NULL, 200, "{}");
    check(f->port, "DELETE", "/default", NULL, 200, "{}");
    check(f->port, "DELETE", "/default", "[7]", 200, "[7]");
}

static void any_method_route(void **state)
{
    fixture_t *f = *state;
    check(f->port, "GET", "/any", NULL, 200, "\"any\"");
    check(f->port, "DELETE", "/any", NULL, 200, "\"any\"");
    check(f->port, "PATCH", "/any", "{}", 200, "\"any\"");
    /* the template does not use the body: it is not parsed */
    check(f->port, "POST", "/any", "{not json", 200, "\"any\"");
}

static void created_and_nothing(void **state)
{
    fixture_t *f = *state;
    check(f->port, "POST", "/created", "{\"x\":1}", 201, "{\"x\":1}");
    check(f->port, "GET", "/nothing", NULL, 204, "");
}

/* ---- HTTP errors ------------------------------------------------------------- */

static void not_found(void **state)
{
    fixture_t *f = *state;
    check_error(f->port, "GET", "/nope", NULL, 404, "not_found");
    check_error(f->port, "GET", "/users", NULL, 404, "not_found");
    check_error(f->port, "GET", "/users/1/2", NULL, 404, "not_found");
    check_error(f->port, "POST", "/", "{}", 404, "not_found");
    check_error(f->port, "GET", "/sumx", NULL, 404, "not_found");
}

static void expect_allow(int port, const char *method, const char *path, const char *const *allow)
{
    char what[128];
    snprintf(what, sizeof what, "%s %s", method, path);
    struct http_response r = req_text(port, method, path, NULL);
    expect_error_free(&r, what, 405, "method_not_allowed");
    const char *value = http_header(&r, "Allow");
    if (!value)
        fail_response(&r, what, "no Allow header");
    for (size_t i = 0; allow[i]; i++) {
        const char *p = strstr(value, allow[i]);
        size_t n = strlen(allow[i]);
        if (!p || (p > value && p[-1] != ' ' && p[-1] != ',') || (p[n] && p[n] != ',' && p[n] != ' '))
            fail_response(&r, what, "Allow does not list %s", allow[i]);
    }
    http_response_free(&r);
}

static void method_not_allowed(void **state)
{
    fixture_t *f = *state;
    expect_allow(f->port, "GET", "/sum", (const char *[]){ "POST", NULL });
    expect_allow(f->port, "GET", "/echo", (const char *[]){ "POST", "PUT", NULL });
    expect_allow(f->port, "DELETE", "/users/5", (const char *[]){ "GET", NULL });
    expect_allow(f->port, "POST", "/users/me", (const char *[]){ "GET", NULL });
    expect_allow(f->port, "GET", "/v1/send/nest", (const char *[]){ "POST", NULL });
}

static void invalid_bodies_are_400(void **state)
{
    fixture_t *f = *state;
    check_error(f->port, "POST", "/sum", "{", 400, "bad_request");
    check_error(f->port, "POST", "/sum", "[1,2", 400, "bad_request");
    check_error(f->port, "POST", "/echo", "1 2", 400, "bad_request");
    check_error(f->port, "POST", "/echo", "{'a':1}", 400, "bad_request");
    check_error(f->port, "POST", "/members", "[1", 400, "bad_request");
    /* invalid UTF-8: a stray byte, an overlong '/', an encoded surrogate */
    static const char *bad_utf8[] = { "[\"\xff\"]", "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]",
                                      "[\"\xe2\x82\"]" };
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
        struct http_response r = req_text(f->port, "POST", "/echo", bad_utf8[i]);
        char what[64];
        snprintf(what, sizeof what, "POST /echo with invalid UTF-8 #%zu", i);
        expect_error_free(&r, what, 400, "bad_request");
        http_response_free(&r);
    }
}

static void request_ids(void **state)
{
    fixture_t *f = *state;
    const char *hdr[] = { "X-Request-Id: my-id-123", NULL };
    struct {
        const char *method, *path, *body;
        int status;
    } cases[] = {
        { "POST", "/sum", "[1]", 200 },       { "GET", "/nope", NULL, 404 },
        { "GET", "/sum", NULL, 405 },         { "POST", "/sum", "{", 400 },
        { "GET", "/nothing", NULL, 204 },     { "POST", "/events", "{}", 202 },
        { "GET", "/throw", NULL, 500 },       { "GET", "/no_handler", NULL, 501 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char what[128];
        snprintf(what, sizeof what, "%s %s", cases[i].method, cases[i].path);
        const char *b = cases[i].body;
        struct http_response r = request(f->port, cases[i].method, cases[i].path, hdr, b,
                                         b ? strlen(b) : 0);
        if (r.status != cases[i].status)
            fail_response(&r, what, "status %d, expected %d", r.status, cases[i].status);
        const char *id = http_header(&r, "X-Request-Id");
        if (!id || strcmp(id, "my-id-123") != 0)
            fail_response(&r, what, "X-Request-Id is not echoed");
        http_response_free(&r);
        /* without one, a new non-empty id, different each time */
        struct http_response a = request(f->port, cases[i].method, cases[i].path, NULL, b,
                                         b ? strlen(b) : 0);
        struct http_response c = request(f->port, cases[i].method, cases[i].path, NULL, b,
                                         b ? strlen(b) : 0);
        expect_request_id(&a, what);
        expect_request_id(&c, what);
        if (strcmp(http_header(&a, "X-Request-Id"), http_header(&c, "X-Request-Id")) == 0)
            fail_response(&c, what, "two requests got the same generated X-Request-Id");
        http_response_free(&a);
        http_response_free(&c);
    }
}

/* ---- packet metadata --------------------------------------------------------- */

static void expect_json_equal(const struct http_response *r, const char *what, const char *json)
{
    json_error_t err;
    json_t *got = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, &err);
    json_t *want = json_loads(json, JSON_DECODE_ANY, &err);
    assert_non_null(want);
    if (!got || !json_equal(got, want))
        fail_response(r, what, "expected a body equal to %s", json);
    json_decref(got);
    json_decref(want);
}

static void packet_metadata(void **state)
{
    fixture_t *f = *state;
    bool v12 = strcmp(nest_version(state), "v12") == 0;
    const char *hdr[] = { "X-Request-Id: req-meta-1",
                          "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                          "tracestate: congo=t61rcWkgMzE", NULL };
    struct http_response r = request(f->port, "GET", "/metadata", hdr, NULL, 0);
    if (r.status != 200)
        fail_response(&r, "GET /metadata", "status %d", r.status);
    expect_json_equal(&r, "GET /metadata with trace headers",
                      v12 ? "{\"requestId\":\"req-meta-1\",\"traceparent\":\"00-4bf92f3577b34da6a3ce92"
                            "9d0e0e4736-00f067aa0ba902b7-01\",\"tracestate\":\"congo=t61rcWkgMzE\"}"
                          : "null");
    http_response_free(&r);

    /* no headers: the generated request id travels */
    r = request(f->port, "GET", "/metadata", NULL, NULL, 0);
    expect_request_id(&r, "GET /metadata");
    char want[256];
    snprintf(want, sizeof want, "{\"requestId\":\"%s\"}", http_header(&r, "X-Request-Id"));
    expect_json_equal(&r, "GET /metadata without trace headers", v12 ? want : "null");
    http_response_free(&r);

    /* "metadata": false sends none */
    r = request(f->port, "GET", "/metadata-off", hdr, NULL, 0);
    expect_body(&r, "GET /metadata-off", 200, "null");
    http_response_free(&r);
}

/* ---- upstream errors ----------------------------------------------------------- */

/* An upstream error whose "details" must be exactly `details` (bytes). */
static void check_upstream_error(int port, const char *method, const char *path, const char *body,
                                 int status, const char *details)
{
    char what[256];
    snprintf(what, sizeof what, "%s %s %s", method, path, body ? body : "");
    struct http_response r = req_text(port, method, path, body);
    json_t *j = expect_error(&r, what, status, "upstream_error");
    char needle[512];
    snprintf(needle, sizeof needle, "\"details\":%s", details);
    if (!strstr(r.body, needle))
        fail_response(&r, what, "details are not exactly %s", details);
    json_decref(j);
    http_response_free(&r);
}

static void upstream_errors(void **state)
{
    fixture_t *f = *state;
    check_upstream_error(f->port, "POST", "/rpc_object", "{\"statusCode\":403,\"message\":\"nope\"}", 403,
                         "{\"statusCode\":403,\"message\":\"nope\"}");
    check_upstream_error(f->port, "POST", "/rpc_object", "{\"status\":418,\"message\":\"teapot\"}", 418,
                         "{\"status\":418,\"message\":\"teapot\"}");
    check_upstream_error(f->port, "POST", "/rpc_object", "{\"statusCode\":599}", 599,
                         "{\"statusCode\":599}");
    check_upstream_error(f->port, "POST", "/rpc_object", "{\"statusCode\":200,\"message\":\"ok?\"}", 500,
                         "{\"statusCode\":200,\"message\":\"ok?\"}");
    check_upstream_error(f->port, "POST", "/rpc_object", "{\"statusCode\":600}", 500,
                         "{\"statusCode\":600}");
    check_upstream_error(f->port, "POST", "/rpc_object", "{\"statusCode\":\"404\"}", 500,
                         "{\"statusCode\":\"404\"}");
    check_upstream_error(f->port, "POST", "/rpc_string", "\"bad thing\"", 500,
                         "{\"status\":\"error\",\"message\":\"bad thing\"}");
    check_upstream_error(f->port, "GET", "/throw", NULL, 500,
                         "{\"status\":\"error\",\"message\":\"Internal server error\"}");
    check_error(f->port, "GET", "/no_handler", NULL, 501, "no_handler");
}

static void route_timeout_is_504(void **state)
{
    fixture_t *f = *state;
    int64_t start = deadline_now_ms();
    check_error(f->port, "POST", "/delay", "{\"ms\":5000,\"value\":1}", 504, "upstream_timeout");
    int64_t took = deadline_now_ms() - start;
    if (took < 900)
        fail_msg("the 1000 ms route timeout fired after %lld ms", (long long)took);
    if (took > 4500)
        fail_msg("the 1000 ms route timeout fired after %lld ms, as late as the reply", (long long)took);
    /* the late reply is dropped; the gateway goes on (on a route whose
     * timeout a loaded machine cannot hit) */
    check(f->port, "POST", "/slow", "{\"ms\":0,\"value\":\"quick\"}", 200, "\"quick\"");
}

/* ---- emit and streams ------------------------------------------------------------- */

static void emit_is_202_and_recorded(void **state)
{
    fixture_t *f = *state;
    check(f->port, "POST", "/recorded/clear", NULL, 200, "true");
    struct http_response r = req_text(f->port, "POST", "/events", "{\"who\":\"Zoë\",\"n\":1}");
    expect_body(&r, "POST /events", 202, "");
    http_response_free(&r);
    poll_until(f->port, "GET", "/recorded", NULL, 200, "[{\"who\":\"Zoë\",\"n\":1}]");
}

static void stream_replies(void **state)
{
    fixture_t *f = *state;
    check(f->port, "POST", "/stream", "{\"count\":3,\"interval_ms\":20}", 200, "[1,2,3]");
    check(f->port, "POST", "/stream", "{\"count\":1,\"interval_ms\":20}", 200, "1");
    check(f->port, "POST", "/stream", "{\"count\":0}", 204, "");
    check(f->port, "POST", "/stream", "{\"values\":[\"a\",{\"b\":null},[]],\"interval_ms\":5}", 200,
          "[\"a\",{\"b\":null},[]]");
    check(f->port, "POST", "/stream", "{\"count\":2,\"interval_ms\":5,\"complete_after_ms\":100}", 200,
          "[1,2]");
    check(f->port, "POST", "/stream", "{\"count\":1,\"complete_after_ms\":50}", 200, "1");
    check(f->port, "POST", "/stream-array", "{\"count\":0}", 200, "[]");
    check(f->port, "POST", "/stream-array", "{\"count\":1}", 200, "[1]");
    check(f->port, "POST", "/stream-array", "{\"count\":3,\"interval_ms\":10}", 200, "[1,2,3]");
    check(f->port, "POST", "/stream-array", "{\"count\":0,\"complete_after_ms\":50}", 200, "[]");
}

/* ---- generic API ------------------------------------------------------------------ */

static void generic_api(void **state)
{
    fixture_t *f = *state;
    int p = f->port;
    check(p, "POST", "/v1/send/nest", "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2]}", 200, "3");
    check(p, "POST", "/v1/send/nest?reply=array", "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2]}", 200,
          "[3]");
    check(p, "POST", "/v1/send/nest", "{\"pattern\":\"echo\",\"data\":\"s\"}", 200, "\"s\"");
    check(p, "POST", "/v1/send/nest", "{\"data\":[1],\"pattern\":{\"cmd\":\"sum\"}}", 200, "1");
    check(p, "POST", "/v1/send/nest", "{\"pattern\":{\"cmd\":\"echo\"}}", 200, "null");
    check(p, "POST", "/v1/send/nest",
          "{\"pattern\":{\"cmd\":\"stream\"},\"data\":{\"count\":3,\"interval_ms\":10}}", 200, "[1,2,3]");
    check(p, "POST", "/v1/send/nest", "{\"pattern\":{\"cmd\":\"stream\"},\"data\":{\"count\":0}}", 204,
          "");
    check(p, "POST", "/v1/send/nest?reply=array",
          "{\"pattern\":{\"cmd\":\"stream\"},\"data\":{\"count\":0}}", 200, "[]");
    check_upstream_error(p, "POST", "/v1/send/nest",
                         "{\"pattern\":{\"cmd\":\"rpc_object\"},\"data\":{\"statusCode\":409}}", 409,
                         "{\"statusCode\":409}");
    check_error(p, "POST", "/v1/send/nest", "{\"pattern\":\"no_such\"}", 501, "no_handler");

    /* emit */
    check(p, "POST", "/recorded/clear", NULL, 200, "true");
    check(p, "POST", "/v1/emit/nest", "{\"pattern\":\"record\",\"data\":{\"via\":\"generic\"}}", 202, "");
    poll_until(p, "GET", "/recorded", NULL, 200, "[{\"via\":\"generic\"}]");

    /* unknown and not-allowed services */
    check_error(p, "POST", "/v1/send/nosuch", "{\"pattern\":\"x\"}", 404, "not_found");
    check_error(p, "POST", "/v1/emit/nosuch", "{\"pattern\":\"x\"}", 404, "not_found");
    check_error(p, "POST", "/v1/send/hidden", "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1]}", 404,
                "not_found");
    check_error(p, "POST", "/v1/emit/hidden", "{\"pattern\":\"record\"}", 404, "not_found");

    /* malformed envelopes */
    check_error(p, "POST", "/v1/send/nest", "{\"pattern\":\"x\",\"data\":1,\"extra\":2}", 400,
                "bad_request");
    check_error(p, "POST", "/v1/send/nest", "{\"data\":[1,2]}", 400, "bad_request");
    check_error(p, "POST", "/v1/send/nest", "[1,2]", 400, "bad_request");
    check_error(p, "POST", "/v1/send/nest", "{\"pattern\":", 400, "bad_request");
    check_error(p, "POST", "/v1/send/nest", NULL, 400, "bad_request");
    check_error(p, "POST", "/v1/emit/nest", "{\"data\":1}", 400, "bad_request");
}

/* ---- values: unicode, size, byte-exactness ---------------------------------------- */

static void unicode_both_ways(void **state)
{
    fixture_t *f = *state;
    const char *body = "{\"s\":\"héllo Zoë — 한국어 😀🇫🇷\",\"k\":{\"ключ\":\"値\"}}";
    check(f->port, "POST", "/echo", body, 200, body);
    check(f->port, "GET", "/names/%F0%9F%98%80", NULL, 200, "{\"name\":\"😀\",\"q\":null}");
}

/* A body of about `size` bytes: {"s":"<unicode text>","n":size}. */
static char *big_body(size_t size)
{
    static const char unit[] = "héllo 한국 😀 Zoë ";
    size_t ulen = sizeof unit - 1;
    char *b = malloc(size + 64);
    assert_non_null(b);
    size_t len = (size_t)sprintf(b, "{\"s\":\"");
    while (len + ulen < size)
        len += (size_t)sprintf(b + len, "%s", unit);
    sprintf(b + len, "\",\"n\":%zu}", size);
    return b;
}

/* {"s":"xxx..."}: exactly size bytes (size >= 8). */
static char *ascii_body(size_t size)
{
    char *b = malloc(size + 1);
    assert_non_null(b);
    memcpy(b, "{\"s\":\"", 6);
    memset(b + 6, 'x', size - 8);
    memcpy(b + size - 2, "\"}", 3);
    return b;
}

static void large_payload_both_ways(void **state)
{
    fixture_t *f = *state;
    char *body = big_body(3 * 1024 * 1024);
    struct http_response r = req_text(f->port, "POST", "/echo", body);
    if (r.status != 200)
        fail_response(&r, "POST /echo 3 MB", "status %d", r.status);
    if (r.body_len != strlen(body) || memcmp(r.body, body, r.body_len) != 0)
        fail_response(&r, "POST /echo 3 MB", "the body came back different (%zu bytes, sent %zu)",
                      r.body_len, strlen(body));
    http_response_free(&r);

    /* the same as a chunked upload */
    struct http_request req = { .method = "POST", .path = "/echo", .body = body,
                                .body_len = strlen(body), .chunk_size = 100000 };
    assert_int_equal(http_fetch(f->port, &req, &r, REQ_TIMEOUT_MS), 0);
    if (r.status != 200 || r.body_len != strlen(body) || memcmp(r.body, body, r.body_len) != 0)
        fail_response(&r, "POST /echo 3 MB chunked", "status %d, %zu bytes", r.status, r.body_len);
    http_response_free(&r);
    free(body);
}

static void hostile_values_through_nest(void **state)
{
    fixture_t *f = *state;
    /* what JSON.parse + JSON.stringify give back unchanged */
    const char *body = "{\"z\":\"\\u0000\",\"s\":\"\\ud800\",\"t\":\"a\\udc00b\",\"c\":\"\\u001f\\\"\\\\\","
                       "\"big\":\"12345678901234567890123\",\"neg\":-0.5,\"e\":1e+21}";
    check(f->port, "POST", "/echo", body, 200, body);
    check(f->port, "POST", "/members", "{\"a\":{\"b\":\"\\u0000\\ud800\"}}", 200,
          "{\"a\":{\"b\":\"\\u0000\\ud800\"},\"b\":\"\\u0000\\ud800\",\"missing\":null}");
}

/* ---- connections ----------------------------------------------------------------- */

static void keep_alive(void **state)
{
    fixture_t *f = *state;
    struct http_conn *c;
    assert_int_equal(http_connect(f->port, REQ_TIMEOUT_MS, &c), 0);
    struct {
        const char *method, *path, *body;
        int status;
        const char *expected;
    } seq[] = {
        { "POST", "/sum", "[1,2]", 200, "3" },
        { "GET", "/users/me", NULL, 200, "{\"me\":true}" },
        { "GET", "/nothing", NULL, 204, "" },
        { "POST", "/events", "{\"k\":1}", 202, "" },
        { "POST", "/echo", "\"again\"", 200, "\"again\"" },
        { "POST", "/sum", "[5]", 200, "5" },
    };
    for (size_t i = 0; i < sizeof seq / sizeof *seq; i++) {
        struct http_request req = { .method = seq[i].method, .path = seq[i].path,
                                    .body = seq[i].body,
                                    .body_len = seq[i].body ? strlen(seq[i].body) : 0 };
        struct http_response r;
        int rc = http_request(c, &req, &r, REQ_TIMEOUT_MS);
        if (rc != 0)
            fail_msg("request %zu on one keep-alive connection: %s", i, strerror(-rc));
        expect_body(&r, seq[i].path, seq[i].status, seq[i].expected);
        if (r.conn_closed)
            fail_response(&r, seq[i].path, "the connection was closed after a %d", r.status);
        http_response_free(&r);
    }
    http_close(c);
}

static void body_in_slow_pieces(void **state)
{
    fixture_t *f = *state;
    struct http_conn *c;
    assert_int_equal(http_connect(f->port, REQ_TIMEOUT_MS, &c), 0);
    const char *body = "{\"slow\":[1,2,3,4,5],\"s\":\"pieces\"}";
    char head[128];
    int n = snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
                     strlen(body));
    assert_int_equal(http_send_raw(c, head, (size_t)n, REQ_TIMEOUT_MS), 0);
    http_expect(c, "POST");
    for (size_t off = 0; off < strlen(body); off += 7) {
        deadline_pause_ms(100); /* the point of the test: the body trickles in */
        size_t len = strlen(body) - off < 7 ? strlen(body) - off : 7;
        assert_int_equal(http_send_raw(c, body + off, len, REQ_TIMEOUT_MS), 0);
    }
    struct http_response r;
    assert_int_equal(http_read_response(c, &r, REQ_TIMEOUT_MS), 0);
    expect_body(&r, "POST /echo in slow pieces", 200, body);
    http_response_free(&r);
    http_close(c);
}

static void client_goes_away(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 10; i++) {
        struct http_conn *c;
        assert_int_equal(http_connect(f->port, REQ_TIMEOUT_MS, &c), 0);
        /* mid-body */
        const char *partial = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":";
        assert_int_equal(http_send_raw(c, partial, strlen(partial), REQ_TIMEOUT_MS), 0);
        if (i % 2)
            http_abort(c);
        else
            http_close(c);
        /* while the service works on it */
        assert_int_equal(http_connect(f->port, REQ_TIMEOUT_MS, &c), 0);
        const char *slow = "{\"ms\":500,\"value\":1}";
        struct http_request req = { .method = "POST", .path = "/slow", .body = slow,
                                    .body_len = strlen(slow) };
        assert_int_equal(http_send(c, &req, REQ_TIMEOUT_MS), 0);
        if (i % 2)
            http_abort(c);
        else
            http_close(c);
        /* mid-head */
        assert_int_equal(http_connect(f->port, REQ_TIMEOUT_MS, &c), 0);
        const char *head = "GET /users/me HTTP/1.1\r\nHo";
        assert_int_equal(http_send_raw(c, head, strlen(head), REQ_TIMEOUT_MS), 0);
        http_abort(c);
    }
    /* a later slow request ends after every abandoned one's reply came */
    check(f->port, "POST", "/slow", "{\"ms\":600,\"value\":\"still here\"}", 200, "\"still here\"");
    check(f->port, "POST", "/sum", "[40,2]", 200, "42");
    if (!gwproc_running(f->gw))
        fail_msg("the gateway died");
}

/* 500 clients at once, each on its own connection with its own payload. */
typedef struct client {
    int port;
    int index;
    pthread_barrier_t *start;
    int rc;
    int status;
    bool ok;
    char detail[160];
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    char body[128], expected[128];
    snprintf(body, sizeof body, "{\"client\":%d,\"s\":\"payload-%d-é\"}", c->index, c->index * 7919);
    snprintf(expected, sizeof expected, "%s", body);
    pthread_barrier_wait(c->start);
    struct http_request req = { .method = "POST", .path = "/echo", .body = body,
                                .body_len = strlen(body) };
    struct http_response r;
    c->rc = http_fetch(c->port, &req, &r, 60000);
    if (c->rc != 0) {
        snprintf(c->detail, sizeof c->detail, "no response: %s", strerror(-c->rc));
        return NULL;
    }
    c->status = r.status;
    c->ok = r.status == 200 && strcmp(r.body, expected) == 0;
    if (!c->ok)
        snprintf(c->detail, sizeof c->detail, "%d %.120s", r.status, r.body);
    http_response_free(&r);
    return NULL;
}

static void concurrent_clients(void **state)
{
    fixture_t *f = *state;
    enum { N = 500 };
    client_t *clients = calloc(N, sizeof *clients);
    pthread_t *threads = calloc(N, sizeof *threads);
    assert_non_null(clients);
    assert_non_null(threads);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < N; i++) {
        clients[i] = (client_t){ .port = f->port, .index = i, .start = &start };
        assert_int_equal(pthread_create(&threads[i], &attr, client_main, &clients[i]), 0);
    }
    int failed = 0, first = -1;
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
        if (!clients[i].ok && failed++ == 0)
            first = i;
    }
    pthread_attr_destroy(&attr);
    pthread_barrier_destroy(&start);
    if (failed) {
        print_log_tail();
        fail_msg("%d of %d concurrent requests failed; client %d: %s", failed, N, first,
                 clients[first].detail);
    }
    free(clients);
    free(threads);
}

/* ---- gateways of their own ---------------------------------------------------------- */

static void limits_413(void **state)
{
    fixture_t *f = *state;
    static const char config[] =
        "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"limits\": { \"max_body_bytes\": 1024 },\n"
        "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
        "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/echo\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"echo\" } } ] }\n";
    struct gwproc *gw = start_gateway(config, f->nest->address, NULL);
    int port = gwproc_port(gw);
    /* exactly the limit passes */
    char *exact = ascii_body(1024);
    check(port, "POST", "/echo", exact, 200, exact);
    free(exact);
    /* one byte more, with Content-Length */
    char *over = ascii_body(1025);
    struct http_response r = req_text(port, "POST", "/echo", over);
    expect_error_free(&r, "POST /echo 1025+ bytes", 413, "payload_too_large");
    http_response_free(&r);
    /* 2 MB with Content-Length: answered without reading it all */
    char *huge = big_body(2 * 1024 * 1024);
    r = req_text(port, "POST", "/echo", huge);
    expect_error_free(&r, "POST /echo 2 MB", 413, "payload_too_large");
    http_response_free(&r);
    /* chunked uploads have no Content-Length to judge by */
    struct http_request req = { .method = "POST", .path = "/echo", .body = over,
                                .body_len = strlen(over), .chunk_size = 300 };
    assert_int_equal(http_fetch(port, &req, &r, REQ_TIMEOUT_MS), 0);
    expect_error_free(&r, "POST /echo chunked 1025+ bytes", 413, "payload_too_large");
    http_response_free(&r);
    req.body = huge;
    req.body_len = strlen(huge);
    req.chunk_size = 65536;
    assert_int_equal(http_fetch(port, &req, &r, REQ_TIMEOUT_MS), 0);
    expect_error_free(&r, "POST /echo chunked 2 MB", 413, "payload_too_large");
    http_response_free(&r);
    /* a declared length far beyond the limit, and no body at all */
    struct http_conn *c;
    assert_int_equal(http_connect(port, REQ_TIMEOUT_MS, &c), 0);
    const char *head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n";
    assert_int_equal(http_send_raw(c, head, strlen(head), REQ_TIMEOUT_MS), 0);
    http_expect(c, "POST");
    assert_int_equal(http_read_response(c, &r, REQ_TIMEOUT_MS), 0);
    expect_error_free(&r, "POST /echo declaring 100 MB", 413, "payload_too_large");
    http_response_free(&r);
    http_close(c);
    free(over);
    free(huge);
    /* still serving */
    check(port, "POST", "/echo", "[1]", 200, "[1]");
    stop_gateway();
}

#define GENERIC_SUM1 "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1]}"

static void auth_bearer(void **state)
{
    fixture_t *f = *state;
    static const char config[] =
        "{ \"listen\": \"127.0.0.1:${GW_PORT}\",\n"
        "  \"auth\": { \"bearer_tokens\": [\"${GW_TOKEN}\", \"second-token\"] },\n"
        "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
        "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"sum\" } } ] }\n";
    const char *env[] = { "GW_TOKEN=s3cr3t-t0ken", NULL };
    const char *ready[] = { "Authorization: Bearer s3cr3t-t0ken", NULL };
    struct gwproc_options o = { .env = env, .ready_headers = ready };
    struct gwproc *gw = start_gateway(config, f->nest->address, &o);
    int port = gwproc_port(gw);
    const char *const bad[][2] = {
        { NULL, "no Authorization" },
        { "Authorization: Bearer wrong", "a wrong token" },
        { "Authorization: Bearer s3cr3t-t0ke", "a prefix of the token" },
        { "Authorization: Bearer s3cr3t-t0kenX", "the token plus a byte" },
        { "Authorization: Basic czNjcjN0LXQwa2Vu", "Basic" },
        { "Authorization: Bearer ", "an empty token" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *hdr[] = { bad[i][0], NULL };
        struct http_response r = request(port, "POST", "/sum", hdr, "[1,2]", 5);
        expect_error_free(&r, bad[i][1], 401, "unauthorized");
        const char *www = http_header(&r, "WWW-Authenticate");
        if (!www || strncmp(www, "Bearer", 6) != 0)
            fail_response(&r, bad[i][1], "no WWW-Authenticate: Bearer");
        http_response_free(&r);
        r = request(port, "POST", "/v1/send/nest", hdr, GENERIC_SUM1, strlen(GENERIC_SUM1));
        expect_error_free(&r, "generic API", 401, "unauthorized");
        http_response_free(&r);
    }
    const char *good[] = { "Authorization: Bearer s3cr3t-t0ken", NULL };
    struct http_response r = request(port, "POST", "/sum", good, "[1,2]", 5);
    expect_body(&r, "the right token", 200, "3");
    http_response_free(&r);
    const char *second[] = { "Authorization: Bearer second-token", NULL };
    r = request(port, "POST", "/v1/send/nest", second, GENERIC_SUM1, strlen(GENERIC_SUM1));
    expect_body(&r, "the second token, generic API", 200, "1");
    http_response_free(&r);
    /* the token never reaches the log */
    char *log = gwproc_log(gw);
    if (strstr(log, "s3cr3t-t0ken") || strstr(log, "second-token"))
        fail_msg("a bearer token appears in the log:\n%s", log);
    free(log);
    stop_gateway();
}

static void max_inflight_overloaded(void **state)
{
    fixture_t *f = *state;
    static const char config[] =
        "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"limits\": { \"max_inflight\": 2 },\n"
        "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"], \"timeout_ms\": 30000 } },\n"
        "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/slow\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"delay\" } },\n"
        "                { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"sum\" } } ] }\n";
    struct gwproc *gw = start_gateway(config, f->nest->address, NULL);
    int port = gwproc_port(gw);
    int64_t start = deadline_now_ms();
    /* one after the other, so that the third is the poll below */
    bg_request_t *a = bg_start(port, "POST", "/slow", "{\"ms\":6000,\"value\":\"a\"}");
    bg_wait_in_flight(a, port);
    bg_request_t *b = bg_start(port, "POST", "/slow", "{\"ms\":6000,\"value\":\"b\"}");
    int64_t deadline = deadline_after(REQ_TIMEOUT_MS);
    while (!atomic_load(&b->sent) && deadline_remaining_ms(deadline) > 0)
        deadline_pause_ms(10);
    /* poll until a third request is refused (b's bytes came first) */
    deadline = deadline_after(5000);
    struct http_response r;
    for (;;) {
        r = req_text(port, "POST", "/sum", "[1]");
        if (r.status != 200 || deadline_remaining_ms(deadline) == 0)
            break;
        http_response_free(&r);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
    bool slow_done = atomic_load(&a->done) || atomic_load(&b->done);
    bg_join(a);
    bg_join(b);
    if (r.status != 503)
        fprintf(stderr, "the slow requests: %d %s after %lld ms, %d %s after %lld ms\n",
                a->resp.status, a->resp.body, (long long)(a->done_at_ms - start),
                b->resp.status, b->resp.body, (long long)(b->done_at_ms - start));
    expect_error_free(&r, "a third request while 2 are in flight", 503, "overloaded");
    if (!http_header(&r, "Retry-After"))
        fail_response(&r, "overloaded", "no Retry-After");
    if (slow_done)
        fail_response(&r, "overloaded", "(the slow requests had already finished)");
    http_response_free(&r);
    expect_body(&a->resp, "slow a", 200, "\"a\"");
    expect_body(&b->resp, "slow b", 200, "\"b\"");
    bg_free(a);
    bg_free(b);
    check(port, "POST", "/sum", "[1,2]", 200, "3");
    stop_gateway();
}

/* One keep-alive request on c; the status, or a negative errno. */
static int request_on(struct http_conn *c, const char *path, const char *body)
{
    struct http_request req = { .method = "POST", .path = path, .body = body, .body_len = strlen(body) };
    struct http_response r;
    int rc = http_request(c, &req, &r, REQ_TIMEOUT_MS);
    if (rc < 0)
        return rc;
    rc = r.status;
    http_response_free(&r);
    return rc;
}

/* Opens a connection and makes one request on it, retrying while the
 * gateway still counts connections that just closed (readiness probes). */
static struct http_conn *open_served(int port)
{
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    for (;;) {
        struct http_conn *c = NULL;
        if (http_connect(port, REQ_TIMEOUT_MS, &c) == 0 && request_on(c, "/sum", "[1]") == 200)
            return c;
        http_close(c);
        if (deadline_remaining_ms(deadline) == 0)
            fail_msg("no connection was served within %d ms", POLL_TIMEOUT_MS);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
}

static void max_connections_limit(void **state)
{
    fixture_t *f = *state;
    static const char config[] =
        "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"limits\": { \"max_connections\": 2 },\n"
        "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
        "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"sum\" } } ] }\n";
    struct gwproc *gw = start_gateway(config, f->nest->address, NULL);
    int port = gwproc_port(gw);
    struct http_conn *a = open_served(port), *b = open_served(port), *c = NULL;
    /* a third connection waits unserved while two are open... */
    assert_int_equal(http_connect(port, REQ_TIMEOUT_MS, &c), 0);
    struct http_request req = { .method = "POST", .path = "/sum", .body = "[1,2]", .body_len = 5 };
    assert_int_equal(http_send(c, &req, REQ_TIMEOUT_MS), 0);
    struct http_response r;
    int early = http_read_response(c, &r, 1500);
    if (early == 0)
        fail_response(&r, "a third connection", "was served with max_connections 2");
    /* ...the two keep working, and once one closes the third is served */
    assert_int_equal(request_on(a, "/sum", "[2,2]"), 200);
    http_close(b);
    assert_int_equal(http_read_response(c, &r, REQ_TIMEOUT_MS), 0);
    expect_body(&r, "the third connection, once a slot was free", 200, "3");
    http_response_free(&r);
    http_close(a);
    http_close(c);
    stop_gateway();
}

static void idle_timeout_closes_idle_connections(void **state)
{
    fixture_t *f = *state;
    static const char config[] =
        "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"limits\": { \"idle_timeout_ms\": 1000 },\n"
        "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"], \"timeout_ms\": 30000 } },\n"
        "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"sum\" } },\n"
        "                { \"method\": \"POST\", \"path\": \"/slow\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"delay\" } } ] }\n";
    struct gwproc *gw = start_gateway(config, f->nest->address, NULL);
    int port = gwproc_port(gw);
    struct http_conn *idle = open_served(port);
    /* the gateway closes it after about a second of silence */
    assert_int_equal(testnet_wait_closed(http_fd(idle), 20000), 0);
    http_close(idle);
    /* a request waiting for its reply is bounded by its own timeout, not
     * by the idle timeout */
    struct http_conn *waiting = NULL;
    assert_int_equal(http_connect(port, REQ_TIMEOUT_MS, &waiting), 0);
    assert_int_equal(request_on(waiting, "/slow", "{\"ms\":3000,\"value\":1}"), 200);
    http_close(waiting);
    stop_gateway();
}

static const char SOLO_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"shutdown_grace_ms\": 20000,\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"], \"timeout_ms\": 30000 } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/slow\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"delay\" } },\n"
    "                { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

static void service_killed_mid_request(void **state)
{
    struct nest_service *svc = start_own_nest(nest_version(state), 0);
    char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", svc->port);
    struct gwproc *gw = start_gateway(SOLO_CONFIG, address, NULL);
    int port = gwproc_port(gw);
    bg_request_t *a = bg_start(port, "POST", "/slow", "{\"ms\":25000,\"value\":1}");
    bg_wait_in_flight(a, port);
    int64_t killed_at = deadline_now_ms();
    nest_kill(svc);
    bg_join(a);
    int64_t took = a->done_at_ms - killed_at;
    expect_error_free(&a->resp, "a request whose service died", 502, "upstream_closed");
    bg_free(a);
    if (took > 15000)
        fail_msg("the 502 came %lld ms after the kill (timeout 30000)", (long long)took);
    /* the service comes back on the same port: the gateway reconnects */
    assert_int_equal(nest_restart_same_port(svc), 0);
    poll_until(port, "POST", "/sum", "[2,3]", 200, "5");
    stop_gateway();
    own_nest_free();
}

static void service_down_at_start(void **state)
{
    int svc_port = testnet_free_port();
    assert_true(svc_port > 0);
    char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", svc_port);
    struct gwproc *gw = start_gateway(SOLO_CONFIG, address, NULL);
    int port = gwproc_port(gw);
    int64_t start = deadline_now_ms();
    check_error(port, "POST", "/sum", "[1,2]", 503, "upstream_unavailable");
    int64_t took = deadline_now_ms() - start;
    if (took > 15000)
        fail_msg("503 upstream_unavailable took %lld ms (timeout 30000)", (long long)took);
    start_own_nest(nest_version(state), svc_port);
    poll_until(port, "POST", "/sum", "[1,2]", 200, "3");
    stop_gateway();
    own_nest_free();
}

static void sigterm_finishes_in_flight(void **state)
{
    fixture_t *f = *state;
    struct gwproc *gw = start_gateway(SOLO_CONFIG, f->nest->address, NULL);
    int port = gwproc_port(gw);
    bg_request_t *a = bg_start(port, "POST", "/slow", "{\"ms\":1500,\"value\":\"finished\"}");
    bg_wait_in_flight(a, port);
    assert_int_equal(gwproc_signal(gw, SIGTERM), 0);
    bg_join(a);
    expect_body(&a->resp, "the request in flight at SIGTERM", 200, "\"finished\"");
    bg_free(a);
    int status = gwproc_wait(gw, GWPROC_STOP_TIMEOUT_MS);
    if (status != 0) {
        char buf[64];
        gwproc_print_log(gw, "after SIGTERM", 40);
        fail_msg("the gateway ended with %s after SIGTERM, expected exit 0",
                 proc_status_str(status, buf, sizeof buf));
    }
    own_gateway_free();
}

static void sigterm_new_requests_draining(void **state)
{
    fixture_t *f = *state;
    struct gwproc *gw = start_gateway(SOLO_CONFIG, f->nest->address, NULL);
    int port = gwproc_port(gw);
    bg_request_t *a = bg_start(port, "POST", "/slow", "{\"ms\":5000,\"value\":\"late\"}");
    bg_wait_in_flight(a, port);
    assert_int_equal(gwproc_signal(gw, SIGTERM), 0);
    /* poll until a new request is no longer served as usual */
    int64_t deadline = deadline_after(4000);
    struct http_response r;
    int rc;
    for (;;) {
        struct http_request req = { .method = "POST", .path = "/sum", .body = "[1]", .body_len = 3 };
        rc = http_fetch(port, &req, &r, REQ_TIMEOUT_MS);
        if (rc != 0 || r.status != 200 || deadline_remaining_ms(deadline) == 0)
            break;
        http_response_free(&r);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
    if (rc != 0)
        fail_msg("a new request during the drain got no response (%s), expected 503 draining",
                 strerror(-rc));
    expect_error_free(&r, "a new request during the drain", 503, "draining");
    const char *conn = http_header(&r, "Connection");
    if (!conn || strcasecmp(conn, "close") != 0)
        fail_response(&r, "draining", "no Connection: close");
    http_response_free(&r);
    bg_join(a);
    expect_body(&a->resp, "the request in flight at SIGTERM", 200, "\"late\"");
    bg_free(a);
    assert_int_equal(gwproc_wait(gw, GWPROC_STOP_TIMEOUT_MS), 0);
    own_gateway_free();
}

/* A client that sent half a body and closed its side (FIN) can never finish
 * its request: SIGTERM must still end the gateway within the grace. */
static void sigterm_after_client_left_mid_body(void **state)
{
    fixture_t *f = *state;
    static const char config[] =
        "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"shutdown_grace_ms\": 2000,\n"
        "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
        "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/echo\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"echo\" } } ] }\n";
    struct gwproc *gw = start_gateway(config, f->nest->address, NULL);
    int port = gwproc_port(gw);
    struct http_conn *c;
    assert_int_equal(http_connect(port, REQ_TIMEOUT_MS, &c), 0);
    const char *partial = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":";
    assert_int_equal(http_send_raw(c, partial, strlen(partial), REQ_TIMEOUT_MS), 0);
    http_close(c);
    /* the gateway has seen it: a later request on a later connection is served */
    check(port, "POST", "/echo", "1", 200, "1");
    int64_t start = deadline_now_ms();
    assert_int_equal(gwproc_signal(gw, SIGTERM), 0);
    int status = gwproc_wait(gw, 15000);
    if (status != 0) {
        char buf[64];
        gwproc_print_log(gw, "after SIGTERM", 20);
        fail_msg("with shutdown_grace_ms 2000 the gateway ended with %s %lld ms after SIGTERM, "
                 "expected exit 0", proc_status_str(status, buf, sizeof buf),
                 (long long)(deadline_now_ms() - start));
    }
    own_gateway_free();
}

/* ---- scripted raw upstreams ---------------------------------------------------------- */

enum raw_mode {
    RAW_REPLY,    /* answers every request with `reply` as its only value */
    RAW_GARBAGE,  /* answers with bytes that are not a frame */
    RAW_BAD_JSON, /* answers with a frame that is not JSON */
    RAW_SILENT,   /* never answers */
    RAW_CLOSE,    /* closes the connection on the first request */
};

#define RAW_MAX_FRAMES 32

typedef struct raw_script {
    enum raw_mode mode;
    const char *reply;
    pthread_mutex_t mu;
    char *frames[RAW_MAX_FRAMES];  /* every frame received, in order */
    int nframes;
} raw_script_t;

/* The request id of a packet, or false for an event (no "id"). */
static bool packet_id(const char *json, char *id, size_t cap)
{
    const char *p = strstr(json, "\"id\":\"");
    if (!p)
        return false;
    p += 6;
    const char *end = strchr(p, '"');
    if (!end || (size_t)(end - p) >= cap)
        return false;
    memcpy(id, p, (size_t)(end - p));
    id[end - p] = '\0';
    return true;
}

static void raw_answer(struct testnet_peer *peer, raw_script_t *s, const char *id)
{
    switch (s->mode) {
    case RAW_REPLY: {
        size_t cap = strlen(s->reply) + strlen(id) + 64;
        char *frame = malloc(cap);
        if (!frame)
            return;
        snprintf(frame, cap, "{\"id\":\"%s\",\"response\":%s,\"isDisposed\":true}", id, s->reply);
        testnet_peer_send_frame(peer, frame);
        free(frame);
        break;
    }
    case RAW_GARBAGE:
        testnet_peer_write(peer, "garbage, not a frame\n", 21);
        break;
    case RAW_BAD_JSON:
        testnet_peer_write(peer, "9#not json!", 11);
        break;
    case RAW_SILENT:
    case RAW_CLOSE:
        break;
    }
}

static void raw_script(struct testnet_peer *peer, void *arg)
{
    raw_script_t *s = arg;
    while (!testnet_peer_stopping(peer)) {
        char *json;
        ssize_t n = testnet_read_frame(&peer->reader, &json, 500);
        if (n == -ETIMEDOUT)
            continue;
        if (n < 0)
            return;
        char id[128];
        bool request = packet_id(json, id, sizeof id);
        pthread_mutex_lock(&s->mu);
        if (s->nframes < RAW_MAX_FRAMES)
            s->frames[s->nframes++] = json;
        else
            free(json);
        pthread_mutex_unlock(&s->mu);
        if (!request)
            continue;
        if (s->mode == RAW_CLOSE) {
            testnet_peer_close(peer, false);
            return;
        }
        raw_answer(peer, s, id);
        if (s->mode == RAW_SILENT || s->mode == RAW_GARBAGE || s->mode == RAW_BAD_JSON) {
            testnet_peer_wait_closed(peer, -1);
            return;
        }
    }
}

/* The last frame received that contains needle (copy, caller frees), or
 * NULL. */
static char *raw_frame_with(raw_script_t *s, const char *needle)
{
    char *found = NULL;
    pthread_mutex_lock(&s->mu);
    for (int i = s->nframes - 1; i >= 0 && !found; i--)
        if (strstr(s->frames[i], needle))
            found = strdup(s->frames[i]);
    pthread_mutex_unlock(&s->mu);
    return found;
}

static const char RAW_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\",\n"
    "  \"services\": { \"raw\": { \"endpoints\": [\"${NEST_ADDR}\"], \"timeout_ms\": 20000 } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/raw\", \"service\": \"raw\", \"pattern\": { \"cmd\": \"raw\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/raw-member\", \"service\": \"raw\", \"pattern\": \"member\",\n"
    "      \"data\": { \"v\": \"$body.v\", \"k\": \"kept\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/raw-fast\", \"service\": \"raw\", \"pattern\": { \"cmd\": \"raw\" },\n"
    "      \"timeout_ms\": 500 },\n"
    "    { \"method\": \"POST\", \"path\": \"/raw-emit\", \"service\": \"raw\", \"pattern\": \"ev\",\n"
    "      \"kind\": \"emit\" },\n"
    "    { \"method\": \"GET\", \"path\": \"/raw-int/:id\", \"service\": \"raw\", \"pattern\": \"conv\",\n"
    "      \"data\": { \"id\": \"$path.id:int\", \"j\": \"$query.j:json\", \"s\": \"$query.s\" } } ] }\n";

typedef struct raw_env {
    raw_script_t script;
    struct testnet_upstream *up;
    struct gwproc *gw;
    int port;
} raw_env_t;

/* The raw environment of the running test, for own_teardown. */
static raw_env_t *g_own_raw;

/* A scripted upstream and a gateway in front of it. The environment is on
 * the heap: script threads use it until the upstream is stopped, even
 * when the test failed halfway. */
static raw_env_t *raw_open(enum raw_mode mode, const char *reply)
{
    raw_env_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    e->script.mode = mode;
    e->script.reply = reply;
    pthread_mutex_init(&e->script.mu, NULL);
    g_own_raw = e;
    assert_int_equal(testnet_upstream_start(raw_script, &e->script, &e->up), 0);
    char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", testnet_upstream_port(e->up));
    e->gw = start_gateway(RAW_CONFIG, address, NULL);
    e->port = gwproc_port(e->gw);
    return e;
}

/* Stops the upstream (the gateway must be gone already) and frees e. */
static void raw_free(raw_env_t *e)
{
    testnet_upstream_stop(e->up);
    for (int i = 0; i < e->script.nframes; i++)
        free(e->script.frames[i]);
    pthread_mutex_destroy(&e->script.mu);
    free(e);
    if (g_own_raw == e)
        g_own_raw = NULL;
}

static void own_raw_free(void)
{
    if (g_own_raw)
        raw_free(g_own_raw);
}

static void raw_close(raw_env_t *e)
{
    stop_gateway();
    raw_free(e);
}

/* Sends body to path; the packet must carry exactly `data` and the reply
 * must be exactly the upstream's reply. */
static void raw_round_trip(raw_env_t *e, const char *path, const char *body, const char *data,
                           const char *const *headers)
{
    const char *method = body ? "POST" : "GET";
    struct http_response r = request(e->port, method, path, headers, body, body ? strlen(body) : 0);
    expect_body(&r, path, 200, e->script.reply);
    char needle[1024];
    snprintf(needle, sizeof needle, "\"data\":%s", data);
    char *frame = raw_frame_with(&e->script, needle);
    if (!frame) {
        pthread_mutex_lock(&e->script.mu);
        for (int i = 0; i < e->script.nframes; i++)
            fprintf(stderr, "packet %d: %s\n", i, e->script.frames[i]);
        pthread_mutex_unlock(&e->script.mu);
        fail_response(&r, path, "no packet carried exactly %s", needle);
    }
    free(frame);
    http_response_free(&r);
}

static const char HOSTILE[] =
    "{\"big\":12345678901234567890123,\"neg\":-1.50e-400,\"huge\":1e400,\"z\":\"\\u0000\","
    "\"s\":\"\\ud800\",\"t\":\"\\uDC00\\u00e9\\/\",\"f\":1.0E+2,\"u\":\"é😀\",\"arr\":[0.10,-0]}";

static void raw_values_byte_exact(void **state)
{
    (void)state;
    raw_env_t *e = raw_open(RAW_REPLY, HOSTILE);
    raw_round_trip(e, "/raw", HOSTILE, HOSTILE, NULL);
    raw_round_trip(e, "/raw-member", "{\"v\":12345678901234567890123}",
                   "{\"v\":12345678901234567890123,\"k\":\"kept\"}", NULL);
    raw_round_trip(e, "/raw-member", "{\"v\":\"\\u0000\\ud800\"}",
                   "{\"v\":\"\\u0000\\ud800\",\"k\":\"kept\"}", NULL);
    /* whitespace inside the body is part of what is "forwarded as written" */
    raw_round_trip(e, "/raw", "{\"a\": [1, 2],\n \"b\": 3e0}", "{\"a\": [1, 2],\n \"b\": 3e0}", NULL);
    /* the packet's pattern, and the request id in its metadata */
    const char *hdr[] = { "X-Request-Id: rid-raw-1", NULL };
    raw_round_trip(e, "/raw", "[1]", "[1]", hdr);
    char *frame = raw_frame_with(&e->script, "rid-raw-1");
    if (!frame || !strstr(frame, "\"pattern\":{\"cmd\":\"raw\"}") ||
        !strstr(frame, "\"requestId\":\"rid-raw-1\""))
        fail_msg("the packet lacks the pattern or the requestId metadata: %s", frame ? frame : "(none)");
    free(frame);
    /* an event's packet has no id */
    struct http_response r = req_text(e->port, "POST", "/raw-emit", HOSTILE);
    expect_body(&r, "POST /raw-emit", 202, "");
    http_response_free(&r);
    char needle[512];
    snprintf(needle, sizeof needle, "\"data\":%s", HOSTILE);
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    while (!(frame = raw_frame_with(&e->script, "\"pattern\":\"ev\"")) && deadline_remaining_ms(deadline) > 0)
        deadline_pause_ms(POLL_PAUSE_MS);
    if (!frame || !strstr(frame, needle) || strstr(frame, "\"id\":"))
        fail_msg("the event packet is wrong: %s", frame ? frame : "(none arrived)");
    free(frame);
    raw_close(e);
}

/* Conversions that Node could not show: int64 extremes, :json kept as
 * written, strings escaped as JSON. */
static void raw_template_conversions(void **state)
{
    (void)state;
    raw_env_t *e = raw_open(RAW_REPLY, "true");
    raw_round_trip(e, "/raw-int/9223372036854775807", NULL,
                   "{\"id\":9223372036854775807,\"j\":null,\"s\":null}", NULL);
    raw_round_trip(e, "/raw-int/-9223372036854775808", NULL,
                   "{\"id\":-9223372036854775808,\"j\":null,\"s\":null}", NULL);
    raw_round_trip(e, "/raw-int/1?j=%7B%22big%22%3A12345678901234567890123%7D", NULL,
                   "{\"id\":1,\"j\":{\"big\":12345678901234567890123},\"s\":null}", NULL);
    raw_round_trip(e, "/raw-int/2?s=%22q%22%5C%01%C3%A9", NULL,
                   "{\"id\":2,\"j\":null,\"s\":\"\\\"q\\\"\\\\\\u0001é\"}", NULL);
    check_error(e->port, "GET", "/raw-int/9223372036854775808", NULL, 400, "bad_request");
    check_error(e->port, "GET", "/raw-int/-9223372036854775809", NULL, 400, "bad_request");
    raw_close(e);
}

static void raw_big_reply_values(void **state)
{
    (void)state;
    raw_env_t *e = raw_open(RAW_REPLY, "12345678901234567890123");
    struct http_response r = req_text(e->port, "POST", "/raw", "null");
    expect_body(&r, "a 23-digit reply", 200, "12345678901234567890123");
    http_response_free(&r);
    raw_close(e);
    e = raw_open(RAW_REPLY, "\"\\u0000\\ud800\\uDFFF\"");
    r = req_text(e->port, "POST", "/raw", "null");
    expect_body(&r, "a reply of escapes", 200, "\"\\u0000\\ud800\\uDFFF\"");
    http_response_free(&r);
    raw_close(e);
}

static void raw_garbage_is_502(void **state)
{
    (void)state;
    raw_env_t *e = raw_open(RAW_GARBAGE, NULL);
    check_error(e->port, "POST", "/raw", "1", 502, "bad_upstream_message");
    raw_close(e);
    e = raw_open(RAW_BAD_JSON, NULL);
    check_error(e->port, "POST", "/raw", "1", 502, "bad_upstream_message");
    raw_close(e);
}

static void raw_silence_is_504(void **state)
{
    (void)state;
    raw_env_t *e = raw_open(RAW_SILENT, NULL);
    int64_t start = deadline_now_ms();
    check_error(e->port, "POST", "/raw-fast", "1", 504, "upstream_timeout");
    int64_t took = deadline_now_ms() - start;
    if (took < 400)
        fail_msg("the 500 ms timeout fired after %lld ms", (long long)took);
    raw_close(e);
}

static void raw_close_is_502(void **state)
{
    (void)state;
    raw_env_t *e = raw_open(RAW_CLOSE, NULL);
    int64_t start = deadline_now_ms();
    check_error(e->port, "POST", "/raw", "1", 502, "upstream_closed");
    int64_t took = deadline_now_ms() - start;
    if (took > 10000)
        fail_msg("502 upstream_closed took %lld ms (timeout 20000)", (long long)took);
    raw_close(e);
}

/* Runs the gateway on a config that cannot start: it must exit 1 promptly
 * (not hang) and say why on stderr. */
static void expect_start_refused(const char *config_text, const char *why)
{
    char path[] = "/tmp/pg-refused-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, config_text, strlen(config_text)), (ssize_t)strlen(config_text));
    close(fd);
    const char *argv[] = { PG_BINARY, "-c", path, NULL };
    struct proc *p;
    assert_int_equal(proc_spawn(argv, NULL, &p), 0);
    char *out = NULL, *err = NULL;
    int status = proc_read_all(p, 20000, &out, &err);
    unlink(path);
    if (status != 1 || !err || !strstr(err, why))
        fail_msg("expected exit 1 naming \"%s\", got status %d, stderr: %s", why, status, err ? err : "");
    free(out);
    free(err);
    proc_free(p);
}

static void hold_port_script(struct testnet_peer *peer, void *arg)
{
    (void)peer;
    (void)arg;
}

static void unstartable_configs_exit_1(void **state)
{
    (void)state;
    char config[512];
    int port = testnet_free_port();
    snprintf(config, sizeof config,
             "{ \"listen\": \"127.0.0.1:%d\", \"services\": { \"tls_svc\": { \"endpoints\": "
             "[\"127.0.0.1:1\"], \"tls\": { \"ca\": \"/nonexistent/ca.pem\" } } } }", port);
    expect_start_refused(config, "services.tls_svc.tls.ca: cannot read /nonexistent/ca.pem");
    /* a port that is taken */
    struct testnet_upstream *holder;
    assert_int_equal(testnet_upstream_start(hold_port_script, NULL, &holder), 0);
    snprintf(config, sizeof config, "{ \"listen\": \"127.0.0.1:%d\", \"services\": {} }",
             testnet_upstream_port(holder));
    expect_start_refused(config, "Address already in use");
    testnet_upstream_stop(holder);
}

/* ---- main ---------------------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_setup, own_teardown)
#define R(fn) cmocka_unit_test_teardown(fn, own_teardown)

int main(void)
{
    const char *filter = getenv("PG_TEST_FILTER"); /* e.g. "raw_*", for debugging */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    const struct CMUnitTest nest_tests[] = {
        T(sum_and_echo),
        T(path_query_header_conversions),
        T(failed_conversions_are_400),
        T(literal_beats_param_beats_rest),
        T(trailing_slash_and_query_ignored_for_matching),
        T(percent_decoded_params),
        T(body_members),
        T(literal_template_parts),
        T(template_sources),
        T(any_method_route),
        T(created_and_nothing),
        T(not_found),
        T(method_not_allowed),
        T(invalid_bodies_are_400),
        T(request_ids),
        T(packet_metadata),
        T(upstream_errors),
        T(route_timeout_is_504),
        T(emit_is_202_and_recorded),
        T(stream_replies),
        T(generic_api),
        T(unicode_both_ways),
        T(large_payload_both_ways),
        T(hostile_values_through_nest),
        T(keep_alive),
        T(body_in_slow_pieces),
        T(client_goes_away),
        T(concurrent_clients),
        T(limits_413),
        T(auth_bearer),
        T(max_inflight_overloaded),
        T(max_connections_limit),
        T(idle_timeout_closes_idle_connections),
        T(service_killed_mid_request),
        T(service_down_at_start),
        T(sigterm_finishes_in_flight),
        T(sigterm_new_requests_draining),
        T(sigterm_after_client_left_mid_body),
    };
    const struct CMUnitTest raw_tests[] = {
        R(raw_values_byte_exact),
        R(raw_template_conversions),
        R(raw_big_reply_values),
        R(raw_garbage_is_502),
        R(raw_silence_is_504),
        R(raw_close_is_502),
        R(unstartable_configs_exit_1),
    };
    int failed = cmocka_run_group_tests_name("http_nest12", nest_tests, group_setup_v12, group_teardown);
    failed += cmocka_run_group_tests_name("http_nest10", nest_tests, group_setup_v10, group_teardown);
    failed += cmocka_run_group_tests_name("http_raw", raw_tests, NULL, NULL);
    return failed;
}
