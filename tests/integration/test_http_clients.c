/* The HTTP API of the built binary, its clients and its lifecycle: keep-
 * alive, slow bodies, clients that go away, 500 concurrent clients, body
 * and in-flight limits, connection limits, idle timeouts, bearer tokens,
 * services that die or come up late, SIGTERM, configs that cannot start.
 * What a request becomes is in test_http.c. */
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
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "integration/http_fixture.h"
#include "support/deadline.h"
#include "support/proc.h"

/* ---- connections ----------------------------------------------------------------- */

static void keep_alive(void **state)
{
    fixture_t *f = *state;
    struct http_conn *c;
    assert_int_equal(http_connect(f->port, GWT_REQ_TIMEOUT_MS, &c), 0);
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
        int rc = http_request(c, &req, &r, GWT_REQ_TIMEOUT_MS);
        if (rc != 0)
            fail_msg("request %zu on one keep-alive connection: %s", i, strerror(-rc));
        gwt_expect_body(&r, seq[i].path, seq[i].status, seq[i].expected);
        if (r.conn_closed)
            gwt_fail_response(&r, seq[i].path, "the connection was closed after a %d", r.status);
        http_response_free(&r);
    }
    http_close(c);
}

static void body_in_slow_pieces(void **state)
{
    fixture_t *f = *state;
    struct http_conn *c;
    assert_int_equal(http_connect(f->port, GWT_REQ_TIMEOUT_MS, &c), 0);
    const char *body = "{\"slow\":[1,2,3,4,5],\"s\":\"pieces\"}";
    char head[128];
    int n = snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
                     strlen(body));
    assert_int_equal(http_send_raw(c, head, (size_t)n, GWT_REQ_TIMEOUT_MS), 0);
    http_expect(c, "POST");
    for (size_t off = 0; off < strlen(body); off += 7) {
        deadline_pause_ms(100); /* the point of the test: the body trickles in */
        size_t len = strlen(body) - off < 7 ? strlen(body) - off : 7;
        assert_int_equal(http_send_raw(c, body + off, len, GWT_REQ_TIMEOUT_MS), 0);
    }
    struct http_response r;
    assert_int_equal(http_read_response(c, &r, GWT_REQ_TIMEOUT_MS), 0);
    gwt_expect_body(&r, "POST /echo in slow pieces", 200, body);
    http_response_free(&r);
    http_close(c);
}

static void client_goes_away(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 10; i++) {
        struct http_conn *c;
        assert_int_equal(http_connect(f->port, GWT_REQ_TIMEOUT_MS, &c), 0);
        /* mid-body */
        const char *partial = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":";
        assert_int_equal(http_send_raw(c, partial, strlen(partial), GWT_REQ_TIMEOUT_MS), 0);
        if (i % 2)
            http_abort(c);
        else
            http_close(c);
        /* while the service works on it */
        assert_int_equal(http_connect(f->port, GWT_REQ_TIMEOUT_MS, &c), 0);
        const char *slow = "{\"ms\":500,\"value\":1}";
        struct http_request req = { .method = "POST", .path = "/slow", .body = slow,
                                    .body_len = strlen(slow) };
        assert_int_equal(http_send(c, &req, GWT_REQ_TIMEOUT_MS), 0);
        if (i % 2)
            http_abort(c);
        else
            http_close(c);
        /* mid-head */
        assert_int_equal(http_connect(f->port, GWT_REQ_TIMEOUT_MS, &c), 0);
        const char *head = "GET /users/me HTTP/1.1\r\nHo";
        assert_int_equal(http_send_raw(c, head, strlen(head), GWT_REQ_TIMEOUT_MS), 0);
        http_abort(c);
    }
    /* a later slow request ends after every abandoned one's reply came */
    gwt_check(f->port, "POST", "/slow", "{\"ms\":600,\"value\":\"still here\"}", 200, "\"still here\"");
    gwt_check(f->port, "POST", "/sum", "[40,2]", 200, "42");
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
        gwt_print_log_tail();
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
    gwt_check(port, "POST", "/echo", exact, 200, exact);
    free(exact);
    /* one byte more, with Content-Length */
    char *over = ascii_body(1025);
    struct http_response r = gwt_req(port, "POST", "/echo", over);
    gwt_expect_error(&r, "POST /echo 1025+ bytes", 413, "payload_too_large");
    http_response_free(&r);
    /* 2 MB with Content-Length: answered without reading it all */
    char *huge = big_body(2 * 1024 * 1024);
    r = gwt_req(port, "POST", "/echo", huge);
    gwt_expect_error(&r, "POST /echo 2 MB", 413, "payload_too_large");
    http_response_free(&r);
    /* chunked uploads have no Content-Length to judge by */
    struct http_request req = { .method = "POST", .path = "/echo", .body = over,
                                .body_len = strlen(over), .chunk_size = 300 };
    assert_int_equal(http_fetch(port, &req, &r, GWT_REQ_TIMEOUT_MS), 0);
    gwt_expect_error(&r, "POST /echo chunked 1025+ bytes", 413, "payload_too_large");
    http_response_free(&r);
    req.body = huge;
    req.body_len = strlen(huge);
    req.chunk_size = 65536;
    assert_int_equal(http_fetch(port, &req, &r, GWT_REQ_TIMEOUT_MS), 0);
    gwt_expect_error(&r, "POST /echo chunked 2 MB", 413, "payload_too_large");
    http_response_free(&r);
    /* a declared length far beyond the limit, and no body at all */
    struct http_conn *c;
    assert_int_equal(http_connect(port, GWT_REQ_TIMEOUT_MS, &c), 0);
    const char *head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n";
    assert_int_equal(http_send_raw(c, head, strlen(head), GWT_REQ_TIMEOUT_MS), 0);
    http_expect(c, "POST");
    assert_int_equal(http_read_response(c, &r, GWT_REQ_TIMEOUT_MS), 0);
    gwt_expect_error(&r, "POST /echo declaring 100 MB", 413, "payload_too_large");
    http_response_free(&r);
    http_close(c);
    free(over);
    free(huge);
    /* still serving */
    gwt_check(port, "POST", "/echo", "[1]", 200, "[1]");
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
        struct http_response r = gwt_request(port, "POST", "/sum", hdr, "[1,2]", 5);
        gwt_expect_error(&r, bad[i][1], 401, "unauthorized");
        const char *www = http_header(&r, "WWW-Authenticate");
        if (!www || strncmp(www, "Bearer", 6) != 0)
            gwt_fail_response(&r, bad[i][1], "no WWW-Authenticate: Bearer");
        http_response_free(&r);
        r = gwt_request(port, "POST", "/v1/send/nest", hdr, GENERIC_SUM1, strlen(GENERIC_SUM1));
        gwt_expect_error(&r, "generic API", 401, "unauthorized");
        http_response_free(&r);
    }
    const char *good[] = { "Authorization: Bearer s3cr3t-t0ken", NULL };
    struct http_response r = gwt_request(port, "POST", "/sum", good, "[1,2]", 5);
    gwt_expect_body(&r, "the right token", 200, "3");
    http_response_free(&r);
    const char *second[] = { "Authorization: Bearer second-token", NULL };
    r = gwt_request(port, "POST", "/v1/send/nest", second, GENERIC_SUM1, strlen(GENERIC_SUM1));
    gwt_expect_body(&r, "the second token, generic API", 200, "1");
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
    gwt_bg_t *a = gwt_bg_start(port, "POST", "/slow", "{\"ms\":6000,\"value\":\"a\"}");
    gwt_bg_wait_in_flight(a, port, "POST", "/sum", "[1,1]", 200, "2");
    gwt_bg_t *b = gwt_bg_start(port, "POST", "/slow", "{\"ms\":6000,\"value\":\"b\"}");
    int64_t deadline = deadline_after(GWT_REQ_TIMEOUT_MS);
    while (!atomic_load(&b->sent) && deadline_remaining_ms(deadline) > 0)
        deadline_pause_ms(10);
    /* poll until a third request is refused (b's bytes came first) */
    deadline = deadline_after(5000);
    struct http_response r;
    for (;;) {
        r = gwt_req(port, "POST", "/sum", "[1]");
        if (r.status != 200 || deadline_remaining_ms(deadline) == 0)
            break;
        http_response_free(&r);
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
    }
    bool slow_done = atomic_load(&a->done) || atomic_load(&b->done);
    gwt_bg_join(a);
    gwt_bg_join(b);
    if (r.status != 503)
        fprintf(stderr, "the slow requests: %d %s after %lld ms, %d %s after %lld ms\n",
                a->resp.status, a->resp.body, (long long)(a->done_at_ms - start),
                b->resp.status, b->resp.body, (long long)(b->done_at_ms - start));
    gwt_expect_error(&r, "a third request while 2 are in flight", 503, "overloaded");
    if (!http_header(&r, "Retry-After"))
        gwt_fail_response(&r, "overloaded", "no Retry-After");
    if (slow_done)
        gwt_fail_response(&r, "overloaded", "(the slow requests had already finished)");
    http_response_free(&r);
    gwt_expect_body(&a->resp, "slow a", 200, "\"a\"");
    gwt_expect_body(&b->resp, "slow b", 200, "\"b\"");
    gwt_bg_free(a);
    gwt_bg_free(b);
    gwt_check(port, "POST", "/sum", "[1,2]", 200, "3");
    stop_gateway();
}

/* One keep-alive request on c; the status, or a negative errno. */
static int request_on(struct http_conn *c, const char *path, const char *body)
{
    struct http_request req = { .method = "POST", .path = path, .body = body, .body_len = strlen(body) };
    struct http_response r;
    int rc = http_request(c, &req, &r, GWT_REQ_TIMEOUT_MS);
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
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    for (;;) {
        struct http_conn *c = NULL;
        if (http_connect(port, GWT_REQ_TIMEOUT_MS, &c) == 0 && request_on(c, "/sum", "[1]") == 200)
            return c;
        http_close(c);
        if (deadline_remaining_ms(deadline) == 0)
            fail_msg("no connection was served within %d ms", GWT_POLL_TIMEOUT_MS);
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
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
    assert_int_equal(http_connect(port, GWT_REQ_TIMEOUT_MS, &c), 0);
    struct http_request req = { .method = "POST", .path = "/sum", .body = "[1,2]", .body_len = 5 };
    assert_int_equal(http_send(c, &req, GWT_REQ_TIMEOUT_MS), 0);
    struct http_response r;
    int early = http_read_response(c, &r, 1500);
    if (early == 0)
        gwt_fail_response(&r, "a third connection", "was served with max_connections 2");
    /* ...the two keep working, and once one closes the third is served */
    assert_int_equal(request_on(a, "/sum", "[2,2]"), 200);
    http_close(b);
    assert_int_equal(http_read_response(c, &r, GWT_REQ_TIMEOUT_MS), 0);
    gwt_expect_body(&r, "the third connection, once a slot was free", 200, "3");
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
    assert_int_equal(http_connect(port, GWT_REQ_TIMEOUT_MS, &waiting), 0);
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
    gwt_bg_t *a = gwt_bg_start(port, "POST", "/slow", "{\"ms\":25000,\"value\":1}");
    gwt_bg_wait_in_flight(a, port, "POST", "/sum", "[1,1]", 200, "2");
    int64_t killed_at = deadline_now_ms();
    nest_kill(svc);
    gwt_bg_join(a);
    int64_t took = a->done_at_ms - killed_at;
    gwt_expect_error(&a->resp, "a request whose service died", 502, "upstream_closed");
    gwt_bg_free(a);
    if (took > 15000)
        fail_msg("the 502 came %lld ms after the kill (timeout 30000)", (long long)took);
    /* the service comes back on the same port: the gateway reconnects */
    assert_int_equal(nest_restart_same_port(svc), 0);
    gwt_poll_body(port, "POST", "/sum", "[2,3]", 200, "5", GWT_POLL_TIMEOUT_MS);
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
    gwt_check_error(port, "POST", "/sum", "[1,2]", 503, "upstream_unavailable");
    int64_t took = deadline_now_ms() - start;
    if (took > 15000)
        fail_msg("503 upstream_unavailable took %lld ms (timeout 30000)", (long long)took);
    start_own_nest(nest_version(state), svc_port);
    gwt_poll_body(port, "POST", "/sum", "[1,2]", 200, "3", GWT_POLL_TIMEOUT_MS);
    stop_gateway();
    own_nest_free();
}

static void sigterm_finishes_in_flight(void **state)
{
    fixture_t *f = *state;
    struct gwproc *gw = start_gateway(SOLO_CONFIG, f->nest->address, NULL);
    int port = gwproc_port(gw);
    gwt_bg_t *a = gwt_bg_start(port, "POST", "/slow", "{\"ms\":1500,\"value\":\"finished\"}");
    gwt_bg_wait_in_flight(a, port, "POST", "/sum", "[1,1]", 200, "2");
    assert_int_equal(gwproc_signal(gw, SIGTERM), 0);
    gwt_bg_join(a);
    gwt_expect_body(&a->resp, "the request in flight at SIGTERM", 200, "\"finished\"");
    gwt_bg_free(a);
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
    gwt_bg_t *a = gwt_bg_start(port, "POST", "/slow", "{\"ms\":5000,\"value\":\"late\"}");
    gwt_bg_wait_in_flight(a, port, "POST", "/sum", "[1,1]", 200, "2");
    assert_int_equal(gwproc_signal(gw, SIGTERM), 0);
    /* poll until a new request is no longer served as usual */
    int64_t deadline = deadline_after(4000);
    struct http_response r;
    int rc;
    for (;;) {
        struct http_request req = { .method = "POST", .path = "/sum", .body = "[1]", .body_len = 3 };
        rc = http_fetch(port, &req, &r, GWT_REQ_TIMEOUT_MS);
        if (rc != 0 || r.status != 200 || deadline_remaining_ms(deadline) == 0)
            break;
        http_response_free(&r);
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
    }
    if (rc != 0)
        fail_msg("a new request during the drain got no response (%s), expected 503 draining",
                 strerror(-rc));
    gwt_expect_error(&r, "a new request during the drain", 503, "draining");
    const char *conn = http_header(&r, "Connection");
    if (!conn || strcasecmp(conn, "close") != 0)
        gwt_fail_response(&r, "draining", "no Connection: close");
    http_response_free(&r);
    gwt_bg_join(a);
    gwt_expect_body(&a->resp, "the request in flight at SIGTERM", 200, "\"late\"");
    gwt_bg_free(a);
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
    assert_int_equal(http_connect(port, GWT_REQ_TIMEOUT_MS, &c), 0);
    const char *partial = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":";
    assert_int_equal(http_send_raw(c, partial, strlen(partial), GWT_REQ_TIMEOUT_MS), 0);
    http_close(c);
    /* the gateway has seen it: a later request on a later connection is served */
    gwt_check(port, "POST", "/echo", "1", 200, "1");
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
        R(unstartable_configs_exit_1),
    };
    int failed = cmocka_run_group_tests_name("http_clients_nest12", nest_tests, group_setup_v12, group_teardown);
    failed += cmocka_run_group_tests_name("http_clients_nest10", nest_tests, group_setup_v10, group_teardown);
    failed += cmocka_run_group_tests_name("http_clients_raw", raw_tests, NULL, NULL);
    return failed;
}
