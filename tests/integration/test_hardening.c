/* Hardening of the HTTP side against what an adversarial review found
 * (docs/SECURITY.md): request heads that two HTTP parsers could read two
 * ways (request smuggling) are refused and their connection closed before
 * anything reaches a service; a Content-Length libmicrohttpd refuses itself
 * gets one answer; the admin API on a shared `listen` with auth opens only
 * the probes; the Bearer scheme is case-insensitive; a 405 is counted under
 * its route; a client that leaves before its answer is logged and counted
 * as 499. A real Nest 12 service records what reaches it.
 *
 * Every wait polls with a generous deadline (a loaded 2-core CI machine). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/deadline.h"
#include "support/gateway.h"
#include "support/gwtest.h"
#include "support/http.h"
#include "support/nest.h"
#include "support/net.h"
#include "support/probe.h"

#define REQ_TIMEOUT_MS GWT_REQ_TIMEOUT_MS

static struct gwproc *g_gw;
static struct nest_service g_nest;

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        gwt_print_log_tail();                                                                      \
        fail_msg(__VA_ARGS__);                                                                     \
    } while (0)

static int teardown(void **state)
{
    (void)state;
    gwt_discard(g_gw);
    g_gw = NULL;
    nest_stop(&g_nest);
    return 0;
}

/* Starts the Nest service and the gateway on config (NEST_ADDR in its
 * environment); ready_headers go with the readiness probe. */
static struct gwproc *start(const char *config, const char *const *ready_headers)
{
    struct nest_options no = { .quiet = true };
    if (nest_start("v12", &no, &g_nest) != 0)
        fail_msg("the Nest 12 service did not start");
    char env[64];
    snprintf(env, sizeof env, "NEST_ADDR=127.0.0.1:%d", g_nest.port);
    const char *envs[] = { env, NULL };
    struct gwproc_options o = { .ready_headers = ready_headers };
    g_gw = gwt_start(config, envs, &o);
    return g_gw;
}

static void stop(void)
{
    struct gwproc *gw = g_gw;
    g_gw = NULL;
    gwt_stop(gw);
}

static struct http_response request(int port, const char *method, const char *path, const char *body,
                                    const char *const *headers)
{
    return gwt_req_with(port, method, path, headers, body);
}

/* The status, and a body holding `contains` (NULL: any). */
static void expect(int port, const char *method, const char *path, const char *body,
                   const char *const *headers, int status, const char *contains)
{
    struct http_response r = gwt_req_with(port, method, path, headers, body);
    if (r.status != status || (contains && !strstr(r.body, contains)))
        gwt_fail_response(&r, path, "%s %s: %d, expected %d with %s", method, path, r.status, status,
                          contains ? contains : "any body");
    http_response_free(&r);
}

/* ---- request smuggling ------------------------------------------------------ */

static const char RECORD_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"log\": { \"access\": true },\n"
    "  \"services\": { \"svc\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"generic_api\": false,\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/rec\", \"service\": \"svc\", \"pattern\": \"record\", \"kind\": \"emit\" },\n"
    "    { \"method\": \"GET\", \"path\": \"/recorded\", \"service\": \"svc\", \"pattern\": { \"cmd\": \"recorded\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"svc\", \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

typedef struct shape {
    const char *name;
    const char *bytes;
    int status;
    const char *error;
} shape_t;

/* Each is an emit of a value to 'record' (which would show in /recorded),
 * some with a second request smuggled behind it. */
static const shape_t SHAPES[] = {
    { "two Content-Length headers",
      "POST /rec HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 41\r\n\r\n[1]"
      "POST /rec HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n[2]",
      400, "bad_request" },
    { "two equal Content-Length headers",
      "POST /rec HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n[1]", 400, "bad_request" },
    { "Content-Length with Transfer-Encoding",
      "POST /rec HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1]\r\n0\r\n\r\n",
      400, "bad_request" },
    { "whitespace before the colon",
      "POST /rec HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n[1]", 400,
      "bad_request" },
    { "a tab before the colon",
      "POST /rec HTTP/1.1\r\nHost: x\r\nContent-Length\t: 3\r\n\r\n[1]", 400, "bad_request" },
    { "obs-fold with a space",
      "POST /rec HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\nContent-Length: 3\r\n\r\n[1]", 400, "bad_request" },
    { "obs-fold with a tab",
      "POST /rec HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-A: a\r\n\tTransfer-Encoding: chunked\r\n\r\n[1]",
      400, "bad_request" },
    { "a bare CR in a header value",
      "POST /rec HTTP/1.1\r\nHost: x\r\nX-A: a\rContent-Length: 40\r\nContent-Length: 3\r\n\r\n[1]", 400,
      "bad_request" },
    { "a bare CR in the request line",
      "POST /rec\rX HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n[1]", 400, "bad_request" },
    { "a header line that starts with ':'",
      "POST /rec HTTP/1.1\r\nHost: x\r\n:x\r\nContent-Length: 3\r\n\r\n[1]", 400, "bad_request" },
    { "two spaces after the method", "GET  /recorded HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request" },
    { "a space in the path", "GET /recorded x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request" },
    { "a bare LF", "POST /rec HTTP/1.1\r\nHost: x\nContent-Length: 3\r\n\r\n[1]", 400, "bad_request" },
    { "Transfer-Encoding gzip", "POST /rec HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n[1]", 501,
      "not_implemented" },
    { "Transfer-Encoding gzip, chunked",
      "POST /rec HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\n[1]\r\n0\r\n\r\n", 501,
      "not_implemented" },
    { "a malformed Transfer-Encoding",
      "POST /rec HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;\r\n\r\n3\r\n[1]\r\n0\r\n\r\n", 400,
      "bad_request" },
    { "two Transfer-Encoding headers",
      "POST /rec HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\n[1]\r\n0\r\n\r\n",
      400, "bad_request" },
    { "a Content-Length that is not a number",
      "POST /rec HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\n[1]", 400, "bad_request" },
    { "a negative Content-Length", "POST /rec HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\n[1]", 400,
      "bad_request" },
    { "an empty Content-Length", "POST /rec HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n[1]", 400,
      "bad_request" },
    { "a Content-Length beyond 64 bits",
      "POST /rec HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n[1]", 413,
      "payload_too_large" },
};

static int count(const char *haystack, const char *needle)
{
    int n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Sends `bytes` (after `before`, a whole request answered first, or NULL)
 * on one connection and reads until the gateway closes it: one answer,
 * with the status and error expected, then the close. */
static void expect_refused(int port, const char *name, const char *before, const char *bytes, int status,
                           const char *error)
{
    int fd = testnet_connect(port, REQ_TIMEOUT_MS);
    assert_true(fd >= 0);
    struct testnet_reader rd;
    testnet_reader_init(&rd, fd);
    if (before) {
        assert_int_equal(testnet_write_all(fd, before, strlen(before), REQ_TIMEOUT_MS), 0);
        char *first = NULL;
        if (testnet_read_until(&rd, "\r\n\r\n", &first, REQ_TIMEOUT_MS) < 0 || !strstr(first, " 200 "))
            FAIL("%s: the request before it was not answered 200: %s", name, first ? first : "nothing");
        free(first);
        char *body = NULL; /* the answer's body: "3" */
        if (testnet_read_until(&rd, "3", &body, REQ_TIMEOUT_MS) != 1)
            FAIL("%s: the request before it got the body \"%s\"", name, body ? body : "");
        free(body);
    }
    assert_int_equal(testnet_write_all(fd, bytes, strlen(bytes), REQ_TIMEOUT_MS), 0);
    char *all = NULL;
    ssize_t n = testnet_read_to_eof(&rd, &all, REQ_TIMEOUT_MS);
    testnet_reader_free(&rd);
    close(fd);
    if (n < 0)
        FAIL("%s: the connection was not closed after the answer", name);
    char want_status[32], want_error[64];
    snprintf(want_status, sizeof want_status, "HTTP/1.1 %d ", status);
    snprintf(want_error, sizeof want_error, "\"error\":\"%s\"", error);
    if (count(all, "HTTP/1.") != 1 || strncmp(all, want_status, strlen(want_status)) != 0 ||
        !strstr(all, want_error) || !strcasestr(all, "\r\nConnection: close\r\n")) {
        fprintf(stderr, "---- %s: received ----\n%s\n----\n", name, all);
        FAIL("%s: expected exactly one %d %s answer with Connection: close", name, status, error);
    }
    free(all);
}

static void smuggling_shapes_are_refused(void **state)
{
    (void)state;
    struct gwproc *gw = start(RECORD_CONFIG, NULL);
    expect(gw->port, "GET", "/recorded", NULL, NULL, 200, "[]");
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
        expect_refused(gw->port, SHAPES[i].name, NULL, SHAPES[i].bytes, SHAPES[i].status, SHAPES[i].error);
    /* the same on a keep-alive connection, after an ordinary request */
    static const char ordinary[] = "POST /sum HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n[1,2]";
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s, after a keep-alive request", SHAPES[i].name);
        expect_refused(gw->port, name, ordinary, SHAPES[i].bytes, SHAPES[i].status, SHAPES[i].error);
    }
    /* nothing reached the service; an ordinary emit does */
    expect(gw->port, "GET", "/recorded", NULL, NULL, 200, "[]");
    expect(gw->port, "POST", "/rec", "[7]", NULL, 202, NULL);
    int64_t deadline = deadline_after(REQ_TIMEOUT_MS);
    for (;;) {
        struct http_response r = request(gw->port, "GET", "/recorded", NULL, NULL);
        bool seen = r.status == 200 && strcmp(r.body, "[[7]]") == 0;
        http_response_free(&r);
        if (seen)
            break;
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("an ordinary emit never reached the service");
        deadline_pause_ms(50);
    }
    /* the gateway cannot tell a bare LF from a NUL in what libmicrohttpd
     * leaves of a head (gateway/http_head.h): only CRLF is accepted */
    static const char bare_lf[] = "POST /rec HTTP/1.1\nHost: x\nContent-Length: 3\n\n[1]";
    expect_refused(gw->port, "bare LF line ends", NULL, bare_lf, 400, "bad_request");
    /* the refused ones are counted and logged like any answer */
    const char *labels[] = { "route=\"unmatched\"", "code=\"400\"", NULL };
    double refused = 0;
    if (probe_metric_at(gw->port, "patterngate_http_requests_total", labels, &refused, REQ_TIMEOUT_MS) != 0 ||
        refused < 20)
        FAIL("patterngate_http_requests_total{route=\"unmatched\",code=\"400\"} is %.0f", refused);
    stop();
}

/* ---- the admin API on a shared listener ------------------------------------- */

static const char AUTH_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"auth\": { \"bearer_tokens\": [\"s3cret\"] },\n"
    "  \"services\": { \"svc\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"svc\", \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

static void admin_needs_token_on_shared_listener(void **state)
{
    (void)state;
    struct gwproc *gw = start(AUTH_CONFIG, NULL);
    const char *good[] = { "Authorization: Bearer s3cret", NULL };
    const char *lower[] = { "Authorization: bearer s3cret", NULL };
    const char *shout[] = { "Authorization: BEARER  s3cret", NULL };
    const char *wrong[] = { "Authorization: Bearer nope", NULL };
    expect(gw->port, "GET", "/healthz", NULL, NULL, 200, "ok");
    expect(gw->port, "GET", "/readyz", NULL, NULL, 200, "ready");
    const char *closed[] = { "/status", "/metrics" };
    for (int i = 0; i < 2; i++) {
        struct http_response r = request(gw->port, "GET", closed[i], NULL, NULL);
        if (r.status != 401 || !strstr(r.body, "unauthorized") || !http_header(&r, "WWW-Authenticate") ||
            strstr(r.body, "svc"))
            FAIL("GET %s without a token: %d %s", closed[i], r.status, r.body);
        http_response_free(&r);
        expect(gw->port, "GET", closed[i], NULL, wrong, 401, "unauthorized");
        expect(gw->port, "GET", closed[i], NULL, good, 200, NULL);
    }
    expect(gw->port, "GET", "/status", NULL, good, 200, "\"svc\"");
    expect(gw->port, "POST", "/sum", "[1,2]", NULL, 401, "unauthorized");
    expect(gw->port, "POST", "/sum", "[1,2]", good, 200, "3");
    expect(gw->port, "POST", "/sum", "[1,2]", lower, 200, "3");
    expect(gw->port, "POST", "/sum", "[1,2]", shout, 200, "3");
    stop();
}

/* ---- accounting: 405 and 499 ------------------------------------------------- */

static const char ACCOUNT_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"log\": { \"access\": true },\n"
    "  \"services\": { \"svc\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/sum/:x\", \"service\": \"svc\", \"pattern\": { \"cmd\": \"sum\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/delay\", \"service\": \"svc\", \"pattern\": { \"cmd\": \"delay\" } } ] }\n";

static double metric(int port, const char *const *labels)
{
    double v = 0;
    int rc = probe_metric_at(port, "patterngate_http_requests_total", labels, &v, REQ_TIMEOUT_MS);
    return rc == 0 ? v : -1;
}

/* Polls until the metric reaches `want`. */
static void wait_metric(int port, const char *const *labels, double want, const char *what)
{
    int64_t deadline = deadline_after(REQ_TIMEOUT_MS);
    double v;
    while ((v = metric(port, labels)) < want) {
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("%s: patterngate_http_requests_total{%s,%s} is %.0f, expected %.0f", what, labels[0],
                 labels[1], v, want);
        deadline_pause_ms(50);
    }
}

static void method_not_allowed_and_client_gone_are_counted(void **state)
{
    (void)state;
    struct gwproc *gw = start(ACCOUNT_CONFIG, NULL);
    expect(gw->port, "GET", "/sum/1", NULL, NULL, 405, "method_not_allowed");
    const char *l405[] = { "route=\"/sum/:x\"", "code=\"405\"", NULL };
    wait_metric(gw->port, l405, 1, "a 405");
    /* a client that leaves while its request waits for the service */
    static const char slow[] = "POST /delay HTTP/1.1\r\nHost: x\r\nContent-Length: 27\r\n\r\n{\"ms\":3000,\"value\":\"late\"}";
    struct http_conn *c = NULL;
    assert_int_equal(http_connect(gw->port, REQ_TIMEOUT_MS, &c), 0);
    assert_int_equal(http_send_raw(c, slow, strlen(slow), REQ_TIMEOUT_MS), 0);
    deadline_pause_ms(300); /* not synchronization: the request may be anywhere when the client leaves */
    http_abort(c);
    /* and one that leaves in the middle of its body */
    static const char half[] = "POST /delay HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"ms\":";
    assert_int_equal(http_connect(gw->port, REQ_TIMEOUT_MS, &c), 0);
    assert_int_equal(http_send_raw(c, half, strlen(half), REQ_TIMEOUT_MS), 0);
    deadline_pause_ms(300);
    http_abort(c);
    const char *l499[] = { "route=\"/delay\"", "code=\"499\"", NULL };
    wait_metric(gw->port, l499, 2, "clients that left");
    if (gwproc_wait_log(gw, "\"status\":499", 2, REQ_TIMEOUT_MS) != 0)
        FAIL("the access log does not show two requests with status 499");
    if (gwproc_log_count(gw, "\"status\":0,") != 0)
        FAIL("the access log shows a request with status 0");
    stop();
}

#define T(fn) cmocka_unit_test_teardown(fn, teardown)

int main(void)
{
    const char *filter = getenv("PG_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    nest_require("v12");
    const struct CMUnitTest tests[] = {
        T(smuggling_shapes_are_refused),
        T(admin_needs_token_on_shared_listener),
        T(method_not_allowed_and_client_gone_are_counted),
    };
    return cmocka_run_group_tests_name("hardening", tests, NULL, NULL);
}
