/* Several workers in one process: each with its own pool, /metrics and
 * /status summing and listing every worker, /readyz over every worker, reloads reaching every worker
 * and logged once, process-wide lines once and a worker on the others. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "support/deadline.h"
#include "support/gateway.h"
#include "support/gwfixture.h"
#include "support/gwtest.h"
#include "support/http.h"
#include "support/nest.h"
#include "support/net.h"
#include "support/proc.h"

/* ---- fixtures ------------------------------------------------------------ */

static const char RELOAD_AB[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/a\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"sum\" } },\n"
    "                { \"method\": \"POST\", \"path\": \"/b\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"echo\" } } ] }\n";

static void rewrite(struct gwproc *gw, const char *config)
{
    int rc = gwproc_rewrite_config(gw, config);
    if (rc != 0)
        fail_msg("cannot replace the config file %s: %s", gw->config_path, strerror(-rc));
}

/* ---- workers ------------------------------------------------------------------------ */

static const char WORKERS_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"workers\": 2,\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/a\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

static void expect_streak(int port, const char *path, int status, int n);

/* Two workers share `listen` (SO_REUSEPORT), each with its own pool: the
 * service sees two connections, /metrics sums both workers exactly, a
 * reload reaches both, and SIGTERM stops both with exit 0. */
static void two_workers(void **state)
{
    (void)state;
    struct gwproc *gw = gwf_start(WORKERS_CONFIG, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    /* both pools connect: two connected connections in the sum */
    int64_t deadline = deadline_after(30000);
    for (;;) {
        gwt_scrape_t sc = gwt_scrape(admin, NULL);
        double up = gwt_metric_or(&sc, "patterngate_upstream_connections", "{\"service\":\"nest\",\"state\":\"connected\"}", 0);
        gwt_scrape_free(&sc);
        if (up == 2)
            break;
        if (deadline_remaining_ms(deadline) <= 0)
            fail_msg("expected 2 connected connections (one per worker), saw %.0f", up);
        deadline_pause_ms(50);
    }
    /* every request on a new connection: the kernel spreads them */
    const int n = 40;
    for (int i = 0; i < n; i++) {
        struct http_response r = gwt_req_with(port, "POST", "/a", NULL, "[1,2]");
        if (r.status != 200 || r.body_len != 1 || r.body[0] != '3')
            gwt_fail_response(&r, "POST /a", "expected 200 3");
        http_response_free(&r);
    }
    gwt_scrape_t sc = gwt_scrape(admin, NULL);
    gwt_expect_metric(&sc, "patterngate_http_requests_total", "{\"route\":\"/a\",\"method\":\"POST\",\"code\":\"200\"}", n);
    gwt_expect_metric(&sc, "patterngate_upstream_requests_total", "{\"service\":\"nest\",\"kind\":\"send\",\"outcome\":\"ok\"}", n);
    if (!gwt_promtool_check(&sc))
        fail_msg("promtool rejected the two workers' /metrics");
    gwt_scrape_free(&sc);
    json_t *st = gwt_status(admin, NULL);
    gwt_expect_int(st, "workers", 2, "/status");
    json_decref(st);
    /* a reload applies to both workers: soon every new connection finds /b */
    rewrite(gw, RELOAD_AB);
    assert_int_equal(gwproc_signal(gw, SIGHUP), 0);
    assert_int_equal(gwproc_wait_log(gw, "\"msg\":\"config reloaded\"", 1, 30000), 0);
    expect_streak(port, "/b", 200, 20);
    /* ... and was logged once, by the process */
    assert_int_equal(gwproc_log_count(gw, "\"msg\":\"config reloaded\""), 1);
    gwf_stop();
}

/* Polls until `n` requests in a row, each on a new connection (so spread
 * over the workers), answer `status`. */
static void expect_streak(int port, const char *path, int status, int n)
{
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    for (int streak = 0; streak < n;) {
        struct http_response r = gwt_req_with(port, "POST", path, NULL, "[4]");
        streak = r.status == status ? streak + 1 : 0;
        if (streak == 0 && deadline_remaining_ms(deadline) == 0)
            gwt_fail_response(&r, path, "not yet %d answers %d in a row from every worker", n, status);
        http_response_free(&r);
    }
}

/* Waits until /metrics (on `port`) counts `n` connected connections. */
static void wait_connected(int port, const char *const *headers, int n)
{
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    for (;;) {
        gwt_scrape_t sc = gwt_scrape(port, headers);
        double up = gwt_metric_or(&sc, "patterngate_upstream_connections", "{\"service\":\"nest\",\"state\":\"connected\"}", 0);
        gwt_scrape_free(&sc);
        if (up == n)
            return;
        if (deadline_remaining_ms(deadline) <= 0)
            fail_msg("expected %d connected connections (one per worker), saw %.0f", n, up);
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
    }
}

static const char THREE_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"workers\": 3,\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/a\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

/* /status covers every worker, whichever worker is asked (the admin API
 * on the shared listen): each connection with its worker, the totals
 * summed and equal to what /metrics counts. */
static void status_covers_every_worker(void **state)
{
    (void)state;
    struct gwproc *gw = gwf_start(THREE_CONFIG, NULL, false, NULL);
    int port = gwproc_port(gw);
    wait_connected(port, NULL, 3);
    enum { N = 30 };
    for (int i = 0; i < N; i++)
        gwt_check_json(port, "POST", "/a", "[1,2]", 200, "3");
    for (int k = 0; k < 8; k++) { /* new connections: different workers answer */
        json_t *st = gwt_status(port, NULL);
        gwt_expect_int(st, "workers", 3, "/status");
        gwt_expect_int(st, "workers_answered", 3, "/status");
        json_t *eps = json_object_get(json_object_get(json_object_get(st, "services"), "nest"), "endpoints");
        json_t *conns = json_object_get(json_array_get(eps, 0), "connections");
        if (json_array_size(eps) != 1 || json_array_size(conns) != 3)
            gwt_fail_json(st, "/status: expected one endpoint with 3 connections (one per worker)");
        int seen[3] = { 0, 0, 0 };
        long long requests = 0;
        size_t i;
        json_t *c;
        json_array_foreach(conns, i, c) {
            json_t *w = json_object_get(c, "worker");
            if (!json_is_integer(w) || json_integer_value(w) < 0 || json_integer_value(w) > 2 ||
                seen[json_integer_value(w)]++)
                gwt_fail_json(st, "/status: connections do not carry workers 0, 1 and 2 once each");
            if (!gwt_str(c, "state") || strcmp(gwt_str(c, "state"), "connected") != 0)
                gwt_fail_json(st, "/status: a connection is not connected");
            requests += json_integer_value(json_object_get(c, "requests"));
        }
        if (requests != N)
            gwt_fail_json(st, "/status: the connections' requests sum to %lld, expected %d", requests, N);
        gwt_expect_int(st, "inflight", 0, "/status");
        json_t *http = json_object_get(st, "http_connections");
        if (!json_is_integer(http) || json_integer_value(http) < 1)
            gwt_fail_json(st, "/status: http_connections does not count this very request's connection");
        json_decref(st);
    }
    gwt_scrape_t sc = gwt_scrape(port, NULL);
    gwt_expect_metric(&sc, "patterngate_upstream_requests_total", "{\"service\":\"nest\",\"kind\":\"send\",\"outcome\":\"ok\"}", N);
    gwt_scrape_free(&sc);
    gwf_stop();
}

static const char BROKEN[] = "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"workers\": 3, \"bogus\": 1 }\n";

/* Process-wide lines (listening, a failed reload, shutting down, exit)
 * once; per-worker lines with their worker; the failed reload shown in
 * /status by every worker. */
static void process_lines_once(void **state)
{
    (void)state;
    struct gwproc *gw = gwf_start(THREE_CONFIG, NULL, false, NULL);
    int port = gwproc_port(gw);
    wait_connected(port, NULL, 3);
    rewrite(gw, BROKEN);
    assert_int_equal(gwproc_signal(gw, SIGHUP), 0);
    assert_int_equal(gwproc_wait_log(gw, "\"msg\":\"config reload failed\"", 1, GWT_POLL_TIMEOUT_MS), 0);
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    for (int streak = 0; streak < 12;) { /* every worker knows, whichever answers */
        json_t *st = gwt_status(port, NULL), *cs = json_object_get(st, "config");
        const char *err = gwt_str(cs, "last_reload_error");
        bool ok = err && strstr(err, "bogus") && gwt_str(cs, "last_reload_error_at");
        streak = ok ? streak + 1 : 0;
        if (!ok && deadline_remaining_ms(deadline) == 0)
            gwt_fail_json(st, "/status config.last_reload_error does not name the bad key on every worker");
        json_decref(st);
    }
    gwt_check_json(port, "POST", "/a", "[1,2]", 200, "3"); /* the running config stays */
    struct gwproc *kept = gwf.gw;
    gwf.gw = NULL;
    gwt_stop_keep(kept);
    json_t *lines = gwt_log_lines(kept, true), *l;
    static const char *const once[] = { "listening", "config reload failed", "shutting down", "exit" };
    for (size_t k = 0; k < 4; k++) {
        json_t *found = gwt_log_find(lines, once[k], NULL);
        if (json_array_size(found) != 1 || json_object_get(json_array_get(found, 0), "worker"))
            gwt_fail_json(found, "\"%s\": expected once, without a worker", once[k]);
        json_decref(found);
    }
    json_t *connected = gwt_log_find(lines, "upstream connected", NULL);
    int seen[3] = { 0, 0, 0 };
    size_t i;
    json_array_foreach(connected, i, l) {
        json_t *w = json_object_get(l, "worker");
        if (!json_is_integer(w) || json_integer_value(w) < 0 || json_integer_value(w) > 2)
            gwt_fail_json(l, "a per-worker line without its worker");
        seen[json_integer_value(w)]++;
    }
    if (!seen[0] || !seen[1] || !seen[2])
        gwt_fail_json(connected, "expected an upstream connected line from each of the 3 workers");
    json_decref(connected);
    json_decref(lines);
    gwt_discard(kept);
}

/* ---- /readyz over every worker --------------------------------------------------------- */

/* A service that takes one connection and then stops listening (what is
 * left in its backlog is reset): of two workers, one holds a connection,
 * the other cannot get one. */
typedef struct one_accept {
    int listen_fd;
    int conn_fd;
    pthread_t thread;
} one_accept_t;

static void *accept_one(void *arg)
{
    one_accept_t *o = arg;
    o->conn_fd = accept(o->listen_fd, NULL, NULL);
    close(o->listen_fd);
    return NULL;
}

/* A listening TCP socket on 127.0.0.1:port (0: any); its port in *port. */
static int listen_on(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)*port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        fail_msg("cannot listen on 127.0.0.1:%d: %s", *port, strerror(errno));
    *port = ntohs(a.sin_port);
    return fd;
}

static const char READY_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"workers\": 2,\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"], \"pool_size\": 1 } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/a\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

/* /readyz covers every worker: while one of two workers has no connection
 * to the eager service, every probe is 503 naming it, whichever worker
 * takes it (each probe on a new connection: SO_REUSEPORT spreads them);
 * once both have one, every probe is 200. */
static void readyz_covers_every_worker(void **state)
{
    (void)state;
    int port = 0;
    one_accept_t o = { .listen_fd = listen_on(&port), .conn_fd = -1 };
    assert_int_equal(pthread_create(&o.thread, NULL, accept_one, &o), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    struct gwproc *gw = gwf_start(READY_CONFIG, addr, false, NULL);
    int gw_port = gwproc_port(gw);
    pthread_join(o.thread, NULL);
    assert_true(o.conn_fd >= 0);
    wait_connected(gw_port, NULL, 1);
    enum { PROBES = 16 };
    for (int i = 0; i < PROBES; i++) {
        struct http_response r = gwt_req(gw_port, "GET", "/readyz", NULL);
        if (r.status != 503 || !r.body || strcmp(r.body, "{\"status\":\"not_ready\",\"services\":[\"nest\"]}") != 0)
            gwt_fail_response(&r, "/readyz", "probe %d: expected 503 not_ready naming nest (one worker has no connection)", i);
        http_response_free(&r);
    }
    /* the service listens again: the other worker connects, all are ready */
    int again = listen_on(&port);
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    for (int streak = 0; streak < PROBES;) {
        struct http_response r = gwt_req(gw_port, "GET", "/readyz", NULL);
        streak = r.status == 200 ? streak + 1 : 0;
        if (streak == 0 && deadline_remaining_ms(deadline) == 0)
            gwt_fail_response(&r, "/readyz", "not yet ready from both workers once the service listens again");
        http_response_free(&r);
        if (streak == 0)
            deadline_pause_ms(GWT_POLL_PAUSE_MS);
    }
    gwf_stop();
    close(again);
    close(o.conn_fd);
}

/* ---- main ---------------------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_teardown(fn, gwf_test_teardown)

int main(void)
{
    const char *filter = getenv("PG_TEST_FILTER"); /* e.g. "reload_*", for debugging */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        T(two_workers),
        T(status_covers_every_worker),
        T(readyz_covers_every_worker),
        T(process_lines_once),
    };
    return cmocka_run_group_tests_name("workers_nest12", tests, gwf_group_setup, gwf_group_teardown);
}
