/* A smoke run of the built gateway, short enough to run under valgrind
 * (scripts/valgrind-smoke sets PG_GATEWAY_WRAPPER and PG_TIMEOUT_SCALE; see
 * tests/support/gateway.h): start, routed requests, the generic API, an
 * NDJSON stream, an emit, error replies (upstream error, timeout, 404, 400),
 * a TLS service, the admin API, concurrent clients, a client that leaves
 * mid-request, a reload on SIGHUP, and SIGTERM with exit 0 (valgrind's
 * --error-exitcode makes its findings an exit status). Every timeout is
 * multiplied by gwproc_timeout_scale(). Also an ordinary ctest test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/certs.h"
#include "support/deadline.h"
#include "support/gateway.h"
#include "support/http.h"
#include "support/nest.h"
#include "support/probe.h"
#include "support/proc.h"

static struct gwproc *g_gw;
static int g_scale = 1;

#define REQ_TIMEOUT_MS (20000 * g_scale)

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        if (g_gw)                                                                                  \
            gwproc_print_log(g_gw, "at the failure", 60);                                          \
        fail_msg(__VA_ARGS__);                                                                     \
    } while (0)

static const char CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\",\n"
    "  \"log\": { \"level\": \"info\", \"access\": true },\n"
    "  \"services\": {\n"
    "    \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"], \"pool_size\": 2 },\n"
    "    \"secure\": { \"endpoints\": [\"${TLS_ADDR}\"], \"tls\": { \"ca\": \"${TLS_CA}\" } } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"sum\" } },\n"
    "    { \"method\": \"GET\", \"path\": \"/users/:id\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"id\": \"$path.id:int\", \"full\": \"$query.full:bool\" } },\n"
    "    { \"method\": \"GET\", \"path\": \"/throw\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"throw\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/rpc\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"rpc_object\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/stream\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"reply\": \"ndjson\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/sse\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"reply\": \"sse\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/events\", \"service\": \"nest\", \"pattern\": \"record\", \"kind\": \"emit\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/slow\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"delay\" },\n"
    "      \"timeout_ms\": 300 },\n"
    "    { \"method\": \"POST\", \"path\": \"/wait\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"delay\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/tls/sum\", \"service\": \"secure\", \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

static struct http_response fetch(const char *method, const char *path, const char *body)
{
    struct http_request req = { .method = method, .path = path, .body = body,
                                .body_len = body ? strlen(body) : 0 };
    struct http_response r;
    int rc = http_fetch(g_gw->port, &req, &r, REQ_TIMEOUT_MS);
    if (rc != 0)
        FAIL("%s %s: no response: %s", method, path, strerror(-rc));
    return r;
}

/* status, and the body exactly (expected) or containing `contains`. */
static void expect(const char *method, const char *path, const char *body, int status,
                   const char *expected, const char *contains)
{
    struct http_response r = fetch(method, path, body);
    bool ok = r.status == status && (!expected || strcmp(r.body, expected) == 0) &&
              (!contains || strstr(r.body, contains));
    if (!ok) {
        char *dump = http_response_dump(&r, 1000);
        fprintf(stderr, "---- response ----\n%s\n----\n", dump ? dump : "");
        free(dump);
        FAIL("%s %s: expected %d %s", method, path, status, expected ? expected : contains);
    }
    http_response_free(&r);
}

typedef struct client {
    int port, index, status;
    bool ok;
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    char body[32], want[16];
    snprintf(body, sizeof body, "[%d,%d]", c->index, 100);
    snprintf(want, sizeof want, "%d", c->index + 100);
    struct http_request req = { .method = "POST", .path = "/sum", .body = body,
                                .body_len = strlen(body) };
    struct http_response r;
    if (http_fetch(c->port, &req, &r, REQ_TIMEOUT_MS) == 0) {
        c->status = r.status;
        c->ok = r.status == 200 && strcmp(r.body, want) == 0;
        http_response_free(&r);
    }
    return NULL;
}

static void smoke(void **state)
{
    (void)state;
    g_scale = gwproc_timeout_scale();
    struct certs certs;
    if (certs_make(&certs) != 0)
        fail_msg("cannot make test certificates");
    struct nest_service plain, tls;
    struct nest_options po = { .quiet = true };
    struct nest_options to = { .quiet = true, .tls_key = certs.server_key,
                               .tls_cert = certs.server_crt };
    if (nest_start("v12", &po, &plain) != 0 || nest_start("v12", &to, &tls) != 0)
        fail_msg("the Nest services did not start");
    char nest_env[64], tls_env[64], ca_env[PATH_MAX + 16];
    snprintf(nest_env, sizeof nest_env, "NEST_ADDR=127.0.0.1:%d", plain.port);
    snprintf(tls_env, sizeof tls_env, "TLS_ADDR=127.0.0.1:%d", tls.port);
    snprintf(ca_env, sizeof ca_env, "TLS_CA=%s", certs.ca_crt);
    const char *env[] = { nest_env, tls_env, ca_env, NULL };
    struct gwproc_options o = { .env = env };
    int64_t t0 = deadline_now_ms();
    int rc = gwproc_start(CONFIG, &o, &g_gw);
    if (rc != 0)
        fail_msg("the gateway did not start: %s", strerror(-rc));
    fprintf(stderr, "smoke: the gateway answered /healthz after %lld ms\n",
            (long long)(deadline_now_ms() - t0));

    expect("POST", "/sum", "[1,2,3]", 200, "6", NULL);
    expect("GET", "/users/7?full=true", NULL, 200, "{\"id\":7,\"full\":true}", NULL);
    expect("POST", "/v1/send/nest", "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[4,5]}", 200, "9", NULL);
    expect("POST", "/v1/emit/nest", "{\"pattern\":\"record\",\"data\":1}", 202, "", NULL);
    expect("POST", "/events", "{\"a\":1}", 202, "", NULL);
    expect("POST", "/stream", "{\"count\":3,\"interval_ms\":20}", 200, "1\n2\n3\n", NULL);
    expect("POST", "/sse", "{\"count\":2,\"interval_ms\":20}", 200, NULL, "event: end");
    expect("POST", "/v1/send/nest?reply=ndjson", "{\"pattern\":{\"cmd\":\"stream\"},\"data\":{\"count\":2}}",
           200, "1\n2\n", NULL);
    expect("GET", "/throw", NULL, 500, NULL, "\"upstream_error\"");
    expect("POST", "/rpc", "{\"statusCode\":409,\"message\":\"taken\"}", 409, NULL, "\"taken\"");
    expect("POST", "/slow", "{\"ms\":3000,\"value\":1}", 504, NULL, "\"upstream_timeout\"");
    expect("GET", "/nope", NULL, 404, NULL, "\"not_found\"");
    expect("POST", "/sum", "not json", 400, NULL, "\"bad_request\"");
    expect("POST", "/v1/send/nest", "{\"data\":1}", 400, NULL, "\"bad_request\"");
    expect("POST", "/tls/sum", "[2,2]", 200, "4", NULL);
    expect("GET", "/readyz", NULL, 200, NULL, "ready");
    expect("GET", "/status", NULL, 200, NULL, "\"services\"");
    expect("GET", "/metrics", NULL, 200, NULL, "patterngate_http_requests_total");

    /* 16 clients at once */
    enum { N = 16 };
    client_t clients[N];
    pthread_t threads[N];
    for (int i = 0; i < N; i++) {
        clients[i] = (client_t){ .port = g_gw->port, .index = i };
        assert_int_equal(pthread_create(&threads[i], NULL, client_main, &clients[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
        if (!clients[i].ok)
            FAIL("concurrent client %d: status %d", i, clients[i].status);
    }

    /* a client that leaves while its request waits for the service */
    struct http_conn *c = NULL;
    assert_int_equal(http_connect(g_gw->port, REQ_TIMEOUT_MS, &c), 0);
    struct http_request wait = { .method = "POST", .path = "/wait",
                                 .body = "{\"ms\":1500,\"value\":1}", .body_len = 21 };
    assert_int_equal(http_send(c, &wait, REQ_TIMEOUT_MS), 0);
    const char *svc_nest[] = { "service=\"nest\"", NULL };
    int64_t deadline = deadline_after(REQ_TIMEOUT_MS);
    for (double inflight = 0; inflight < 1;) { /* poll: the request reached the service */
        if (probe_metric_at(g_gw->port, "patterngate_upstream_inflight", svc_nest, &inflight,
                            REQ_TIMEOUT_MS) != 0 || deadline_remaining_ms(deadline) == 0)
            FAIL("the waiting request never showed as in flight");
    }
    http_abort(c);
    if (gwproc_wait_log(g_gw, "\"status\":499", 1, REQ_TIMEOUT_MS) != 0)
        FAIL("the client that left was not logged with status 499");

    /* a reload keeps everything working */
    assert_int_equal(gwproc_signal(g_gw, SIGHUP), 0);
    if (gwproc_wait_log(g_gw, "config reloaded", 1, REQ_TIMEOUT_MS) != 0)
        FAIL("no reload after SIGHUP");
    expect("POST", "/sum", "[1,2]", 200, "3", NULL);
    expect("POST", "/tls/sum", "[3,3]", 200, "6", NULL);

    t0 = deadline_now_ms();
    int status = gwproc_stop(g_gw, GWPROC_STOP_TIMEOUT_MS * g_scale);
    fprintf(stderr, "smoke: SIGTERM to exit in %lld ms, status %d\n",
            (long long)(deadline_now_ms() - t0), status);
    if (status != 0) {
        char buf[64];
        FAIL("the gateway ended with %s after SIGTERM, expected exit 0 (99: valgrind found errors)",
             proc_status_str(status, buf, sizeof buf));
    }
    gwproc_free(g_gw);
    g_gw = NULL;
    nest_stop(&plain);
    nest_stop(&tls);
    certs_free(&certs);
}

int main(void)
{
    nest_require("v12");
    const struct CMUnitTest tests[] = { cmocka_unit_test(smoke) };
    return cmocka_run_group_tests_name("smoke", tests, NULL, NULL);
}
