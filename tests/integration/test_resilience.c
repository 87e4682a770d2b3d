/* Resilience of the built binary (docs/OPERATIONS.md, "Resilience"):
 * outlier ejection of endpoints that refuse connections or break the
 * protocol, the bounds on unwritten bytes per connection and on requests
 * waiting for a connection, the HTTP limits (16 KiB heads, slow-header and
 * slow-body deadlines), a service flooding replies for unknown ids, a
 * service that stalls, 5000 mostly idle client connections, and garbage on
 * the HTTP port. Real Nest 12 services play the healthy side, scripted raw
 * upstreams (tests/support/net.h) the misbehaving one.
 *
 * Every wait polls a condition with a generous deadline (a loaded 2-core CI
 * machine); durations are asserted only with wide margins. The slow-body
 * case lasts about 60 s by design (the gateway's body deadline). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support/deadline.h"
#include "support/gateway.h"
#include "support/gwtest.h"
#include "support/http.h"
#include "support/nest.h"
#include "support/net.h"
#include "support/probe.h"
#include "support/proc.h"

#define REQ_TIMEOUT_MS 30000  /* one HTTP exchange, on a loaded machine */
#define POLL_TIMEOUT_MS 30000 /* waiting for a condition */
#define POLL_PAUSE_MS 50      /* between two polls of a condition */

/* The gateway's peak RSS while misbehaving services push it. ASan keeps
 * freed memory in quarantine and shadow memory, so it gets more room. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_LIMIT_KB (600u * 1024)
#else
#define RSS_LIMIT_KB (100u * 1024)
#endif

/* ---- what the running test owns (freed by the teardown after a failure) --- */

#define MAX_UPSTREAMS 4

static struct gwproc *g_gw;
static struct nest_service *g_nest;
static struct testnet_upstream *g_ups[MAX_UPSTREAMS];
static int g_nups;

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        gwt_print_log_tail();                                                                      \
        fail_msg(__VA_ARGS__);                                                                     \
    } while (0)

static int teardown(void **state)
{
    (void)state;
    gwt_discard(g_gw); /* kills it if the test failed before stopping it */
    g_gw = NULL;
    for (int i = 0; i < g_nups; i++)
        testnet_upstream_stop(g_ups[i]);
    g_nups = 0;
    if (g_nest)
        nest_stop(g_nest);
    free(g_nest);
    g_nest = NULL;
    return 0;
}

static const char *start_nest(void)
{
    static char address[32];
    g_nest = calloc(1, sizeof *g_nest);
    assert_non_null(g_nest);
    struct nest_options no = { .quiet = true };
    if (nest_start("v12", &no, g_nest) != 0) {
        free(g_nest);
        g_nest = NULL;
        fail_msg("the Nest 12 service did not start");
    }
    snprintf(address, sizeof address, "127.0.0.1:%d", g_nest->port);
    return address;
}

static struct testnet_upstream *start_raw(testnet_script_fn script, void *arg, char *address,
                                          size_t cap)
{
    assert_true(g_nups < MAX_UPSTREAMS);
    struct testnet_upstream *up = NULL;
    assert_int_equal(testnet_upstream_start(script, arg, &up), 0);
    g_ups[g_nups++] = up;
    snprintf(address, cap, "127.0.0.1:%d", testnet_upstream_port(up));
    return up;
}

/* Starts the gateway on config (which has "admin_listen") with the given
 * "NAME=value" strings in its environment, NULL-terminated. */
static struct gwproc *start_gateway(const char *config, const char *const *env)
{
    struct gwproc_options o = { .ready_on_admin = true };
    g_gw = gwt_start(config, env, &o);
    return g_gw;
}

/* SIGTERM; the gateway must exit 0 (an ASan build exits non-zero on a leak). */
static void stop_gateway(void)
{
    struct gwproc *gw = g_gw;
    g_gw = NULL;
    gwt_stop(gw);
}

/* ---- requests ------------------------------------------------------------ */

static struct http_response post(int port, const char *path, const char *body, int timeout_ms)
{
    struct http_request req = { .method = "POST", .path = path, .body = body,
                                .body_len = strlen(body) };
    struct http_response r;
    int rc = http_fetch(port, &req, &r, timeout_ms);
    if (rc != 0)
        FAIL("POST %s: no response: %s", path, strerror(-rc));
    return r;
}


/* POST path with body: must answer status with exactly `expected`. */
static void expect_post(int port, const char *path, const char *body, int status,
                        const char *expected)
{
    struct http_response r = post(port, path, body, REQ_TIMEOUT_MS);
    if (r.status != status || strcmp(r.body, expected) != 0) {
        char what[128];
        snprintf(what, sizeof what, "POST %s %s (expected %d %s)", path, body, status, expected);
        gwt_fail_response(&r, what, "unexpected response %d", r.status);
    }
    http_response_free(&r);
}

/* Whether a gateway error body names `code` as its "error". */
static bool error_is(const char *body, const char *code)
{
    char needle[64];
    snprintf(needle, sizeof needle, "\"error\":\"%s\"", code);
    return strstr(body, needle) != NULL;
}

static void expect_error(int port, const char *path, const char *body, int status,
                         const char *code)
{
    gwt_check_error(port, "POST", path, body, status, code);
}

/* Polls GET path on the admin port until it answers 200. */
static void wait_admin_200(struct gwproc *gw, const char *path)
{
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    for (;;) {
        int status = 0;
        free(probe_get(gw->admin_port, path, &status, REQ_TIMEOUT_MS));
        if (status == 200)
            return;
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("GET %s on the admin listener never answered 200 (last %d)", path, status);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
}

/* Starts the Nest service and the gateway on config with NEST_ADDR (and
 * extra_env, "NAME=value" or NULL) in its environment; returns once
 * /readyz says 200. *nest (when not NULL) gets the service's address. */
static struct gwproc *start_nest_gateway(const char *config, const char *extra_env, const char **nest)
{
    const char *address = start_nest();
    static char nest_env[64];
    snprintf(nest_env, sizeof nest_env, "NEST_ADDR=%s", address);
    const char *env[] = { nest_env, extra_env, NULL };
    struct gwproc *gw = start_gateway(config, env);
    wait_admin_200(gw, "/readyz");
    if (nest)
        *nest = address;
    return gw;
}

/* The same with a scripted raw service too, at RAW_ADDR (also written to
 * raw_addr, RAW_ADDR_MAX bytes). */
#define RAW_ADDR_MAX 32
static struct gwproc *start_raw_gateway(const char *config, testnet_script_fn script, void *arg,
                                        char *raw_addr, const char **nest)
{
    static char raw_env[64];
    start_raw(script, arg, raw_addr, RAW_ADDR_MAX);
    snprintf(raw_env, sizeof raw_env, "RAW_ADDR=%s", raw_addr);
    return start_nest_gateway(config, raw_env, nest);
}

static json_t *get_status(struct gwproc *gw)
{
    return gwt_status(gw->admin_port, NULL);
}

/* The /status entry of one endpoint of one service (borrowed from st). */
static json_t *status_endpoint(json_t *st, const char *service, const char *address)
{
    json_t *eps = json_object_get(json_object_get(json_object_get(st, "services"), service),
                                  "endpoints");
    size_t i;
    json_t *ep;
    json_array_foreach(eps, i, ep) {
        if (strcmp(json_string_value(json_object_get(ep, "address")) ? json_string_value(json_object_get(ep, "address")) : "", address) == 0)
            return ep;
    }
    char *dump = json_dumps(st, JSON_INDENT(1));
    fprintf(stderr, "/status: %s\n", dump ? dump : "");
    free(dump);
    FAIL("/status has no endpoint %s in service %s", address, service);
    return NULL;
}

/* 1 when /status shows the endpoint ejected, 0 when ejected_until is null;
 * fails the test on anything else. */
static int endpoint_ejected(struct gwproc *gw, const char *service, const char *address)
{
    json_t *st = get_status(gw);
    json_t *until = json_object_get(status_endpoint(st, service, address), "ejected_until");
    int ejected = json_is_string(until) ? 1 : json_is_null(until) ? 0 : -1;
    json_decref(st);
    if (ejected < 0)
        FAIL("/status: %s %s: ejected_until is neither null nor a time", service, address);
    return ejected;
}

static double metric(struct gwproc *gw, const char *name, const char *const *labels)
{
    double v = 0;
    int rc = probe_metric_at(gw->admin_port, name, labels, &v, REQ_TIMEOUT_MS);
    if (rc != 0)
        FAIL("/metrics: no sample %s%s%s: %s", name, labels && labels[0] ? " " : "",
             labels && labels[0] ? labels[0] : "", strerror(-rc));
    return v;
}

/* How many log lines hold every one of the NULL-terminated needles. */
static int log_lines_with(struct gwproc *gw, const char *const *needles)
{
    char *log = gwproc_log(gw);
    int count = 0;
    for (char *line = log; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        bool all = true;
        for (size_t i = 0; needles[i] && all; i++)
            all = strstr(line, needles[i]) != NULL;
        count += all;
        line = nl ? nl + 1 : NULL;
    }
    free(log);
    return count;
}

static uint64_t peak_rss_kb(struct gwproc *gw)
{
    struct gwproc_usage u;
    if (gwproc_usage(gw, &u) != 0)
        FAIL("cannot read the gateway's memory use");
    return u.hwm_kb;
}

static int gw_fds(struct gwproc *gw)
{
    int n = probe_fd_count(gwproc_pid(gw));
    if (n < 0)
        FAIL("cannot count the gateway's descriptors: %s", strerror(-n));
    return n;
}

/* Polls until the gateway has at most `limit` descriptors open. */
static void wait_fds_at_most(struct gwproc *gw, int limit, const char *what)
{
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    int n;
    while ((n = gw_fds(gw)) > limit) {
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("%s: the gateway still has %d descriptors open, expected at most %d", what, n,
                 limit);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
}

/* ---- many raw HTTP requests at once --------------------------------------- */

/* One request on its own connection, sent at once and answered whenever;
 * driven by poll() from the test's thread, so that a thousand can wait. */
typedef struct mux_req {
    int fd;
    int64_t sent_at, done_at; /* deadline_now_ms() */
    int status;               /* 0 until the status line arrived; -1: no answer */
    char buf[2048];           /* the start of the response */
    size_t len;
    bool done;
} mux_req_t;

static char *raw_post(const char *path, const char *body)
{
    size_t cap = strlen(path) + strlen(body) + 256;
    char *req = malloc(cap);
    assert_non_null(req);
    snprintf(req, cap,
             "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             path, strlen(body), body);
    return req;
}

static void mux_send(int port, mux_req_t *reqs, int n, const char *raw)
{
    for (int i = 0; i < n; i++) {
        mux_req_t *m = &reqs[i];
        *m = (mux_req_t){ .fd = testnet_connect(port, REQ_TIMEOUT_MS) };
        if (m->fd < 0)
            FAIL("connection %d of %d: %s", i, n, strerror(-m->fd));
        int rc = testnet_write_all(m->fd, raw, strlen(raw), REQ_TIMEOUT_MS);
        if (rc != 0)
            FAIL("request %d of %d: %s", i, n, strerror(-rc));
        m->sent_at = deadline_now_ms();
    }
}

/* Whether the response in m->buf is complete (head and Content-Length). */
static bool mux_complete(mux_req_t *m)
{
    m->buf[m->len] = '\0';
    if (m->status == 0 && sscanf(m->buf, "HTTP/1.%*d %d", &m->status) != 1)
        m->status = 0;
    char *head_end = strstr(m->buf, "\r\n\r\n");
    if (!head_end)
        return false;
    const char *cl = strcasestr(m->buf, "\r\nContent-Length:");
    if (!cl || cl > head_end)
        return false; /* read to the close */
    size_t want = strtoul(cl + 17, NULL, 10);
    return m->len - (size_t)(head_end + 4 - m->buf) >= want || m->len >= sizeof m->buf - 1;
}

/* Reads answers until every request is done or timeout_ms passed. Returns
 * how many are done. */
static int mux_collect(mux_req_t *reqs, int n, int timeout_ms)
{
    struct pollfd *pfds = calloc((size_t)n, sizeof *pfds);
    int *index = calloc((size_t)n, sizeof *index);
    assert_non_null(pfds);
    assert_non_null(index);
    int64_t deadline = deadline_after(timeout_ms);
    int done = 0;
    for (;;) {
        int np = 0;
        done = 0;
        for (int i = 0; i < n; i++) {
            if (reqs[i].done) {
                done++;
                continue;
            }
            pfds[np] = (struct pollfd){ .fd = reqs[i].fd, .events = POLLIN };
            index[np++] = i;
        }
        if (np == 0 || deadline_remaining_ms(deadline) == 0)
            break;
        int rc = poll(pfds, (nfds_t)np, deadline_remaining_ms(deadline));
        if (rc < 0 && errno != EINTR)
            FAIL("poll: %s", strerror(errno));
        for (int k = 0; k < np && rc > 0; k++) {
            if (!pfds[k].revents)
                continue;
            mux_req_t *m = &reqs[index[k]];
            ssize_t got = read(m->fd, m->buf + m->len, sizeof m->buf - 1 - m->len);
            if (got > 0)
                m->len += (size_t)got;
            if (got <= 0 || mux_complete(m)) {
                mux_complete(m);
                m->done = true;
                m->done_at = deadline_now_ms();
                if (m->status == 0)
                    m->status = -1;
                close(m->fd);
                m->fd = -1;
            }
        }
    }
    free(pfds);
    free(index);
    return done;
}

static void mux_free(mux_req_t *reqs, int n)
{
    for (int i = 0; i < n; i++)
        if (reqs[i].fd >= 0)
            close(reqs[i].fd);
    free(reqs);
}

/* ---- 1. outlier ejection --------------------------------------------------- */

static const char EJECT_CONNECT_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": {\n"
    "    \"mixed\": { \"endpoints\": [\"${NEST_ADDR}\", \"${DEAD_ADDR}\"] },\n"
    "    \"solo\": { \"endpoints\": [\"${DEAD2_ADDR}\"], \"connect\": \"lazy\" } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"mixed\", \"pattern\": { \"cmd\": \"sum\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/solo\", \"service\": \"solo\", \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

/* Sends POST /sum (which must answer 200 "3", or also a 502
 * bad_upstream_message when `bad_ok`) until /status shows `address` of
 * service "mixed" ejected. Returns the number of 502s. */
static int sum_until_ejected(struct gwproc *gw, const char *address, bool bad_ok, int *oks)
{
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    int bad = 0;
    for (;;) {
        struct http_response r = post(gw->port, "/sum", "[1,2]", REQ_TIMEOUT_MS);
        if (r.status == 200 && strcmp(r.body, "3") == 0)
            (*oks)++;
        else if (bad_ok && r.status == 502 && error_is(r.body, "bad_upstream_message"))
            bad++;
        else
            gwt_fail_response(&r, "POST /sum while an endpoint fails", "unexpected response %d", r.status);
        http_response_free(&r);
        if (endpoint_ejected(gw, "mixed", address))
            return bad;
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("%s was not ejected within %d ms (%d requests answered 200, %d 502)", address,
                 POLL_TIMEOUT_MS, *oks, bad);
    }
}

/* The metric, the log line and the healthy endpoint once `address` of
 * "mixed" is ejected. */
static void expect_ejected(struct gwproc *gw, const char *address, const char *healthy,
                           const char *reason)
{
    char ep_label[64], ep_field[64];
    snprintf(ep_label, sizeof ep_label, "endpoint=\"%s\"", address);
    snprintf(ep_field, sizeof ep_field, "\"endpoint\":\"%s\"", address);
    const char *labels[] = { "service=\"mixed\"", ep_label, NULL };
    double v = metric(gw, "patterngate_upstream_endpoint_ejected", labels);
    if (v != 1)
        FAIL("patterngate_upstream_endpoint_ejected{%s} is %g, expected 1", ep_label, v);
    const char *needles[] = { "upstream endpoint ejected", "\"service\":\"mixed\"", ep_field,
                              reason, "\"ejected_ms\":", NULL };
    if (gwproc_wait_log(gw, "upstream endpoint ejected", 1, POLL_TIMEOUT_MS) != 0 ||
        log_lines_with(gw, needles) < 1)
        FAIL("no log line \"upstream endpoint ejected\" for %s with reason \"%s\"", address, reason);
    if (endpoint_ejected(gw, "mixed", healthy))
        FAIL("the healthy endpoint %s was ejected too", healthy);
    char healthy_label[64];
    snprintf(healthy_label, sizeof healthy_label, "endpoint=\"%s\"", healthy);
    const char *hl[] = { "service=\"mixed\"", healthy_label, NULL };
    if (metric(gw, "patterngate_upstream_endpoint_ejected", hl) != 0)
        FAIL("patterngate_upstream_endpoint_ejected{%s} is not 0", healthy_label);
}

static void eject_refusing_endpoint(void **state)
{
    (void)state;
    const char *nest = start_nest();
    int dead = testnet_free_port(), dead2;
    do
        dead2 = testnet_free_port();
    while (dead2 == dead);
    char nest_env[64], dead_env[64], dead2_env[64], dead_addr[32], dead2_addr[32];
    snprintf(dead_addr, sizeof dead_addr, "127.0.0.1:%d", dead);
    snprintf(dead2_addr, sizeof dead2_addr, "127.0.0.1:%d", dead2);
    snprintf(nest_env, sizeof nest_env, "NEST_ADDR=%s", nest);
    snprintf(dead_env, sizeof dead_env, "DEAD_ADDR=%s", dead_addr);
    snprintf(dead2_env, sizeof dead2_env, "DEAD2_ADDR=%s", dead2_addr);
    const char *env[] = { nest_env, dead_env, dead2_env, NULL };
    struct gwproc *gw = start_gateway(EJECT_CONNECT_CONFIG, env);
    wait_admin_200(gw, "/readyz"); /* "mixed" has its Nest connection */
    expect_error(gw->port, "/solo", "[1]", 503, "upstream_unavailable"); /* solo starts connecting */

    int oks = 0;
    int64_t t0 = deadline_now_ms();
    sum_until_ejected(gw, dead_addr, false, &oks);
    fprintf(stderr, "refusing endpoint ejected after %lld ms, %d requests answered 200 meanwhile\n",
            (long long)(deadline_now_ms() - t0), oks);
    expect_ejected(gw, dead_addr, nest, "consecutive connect failures");
    for (int i = 0; i < 20; i++)
        expect_post(gw->port, "/sum", "[1,2]", 200, "3");

    /* the only endpoint of "solo" fails again and again but stays */
    const char *failed[] = { "service=\"solo\"", "result=\"failed\"", NULL };
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    double fails;
    while ((fails = metric(gw, "patterngate_upstream_connects_total", failed)) < 7) {
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("solo: only %g failed connects within %d ms", fails, POLL_TIMEOUT_MS);
        deadline_pause_ms(200);
    }
    if (endpoint_ejected(gw, "solo", dead2_addr))
        FAIL("the only endpoint of solo was ejected after %g failed connects", fails);
    char dead2_label[64];
    snprintf(dead2_label, sizeof dead2_label, "endpoint=\"%s\"", dead2_addr);
    const char *sl[] = { "service=\"solo\"", dead2_label, NULL };
    if (metric(gw, "patterngate_upstream_endpoint_ejected", sl) != 0)
        FAIL("patterngate_upstream_endpoint_ejected{service=\"solo\"} is not 0");
    const char *solo_lines[] = { "upstream endpoint ejected", "\"service\":\"solo\"", NULL };
    if (log_lines_with(gw, solo_lines) != 0)
        FAIL("the log says solo's only endpoint was ejected");
    expect_error(gw->port, "/solo", "[1]", 503, "upstream_unavailable");
    stop_gateway();
}

/* Answers every request with bytes that are no frame. */
static void garbage_script(struct testnet_peer *peer, void *arg)
{
    (void)arg;
    while (!testnet_peer_stopping(peer)) {
        char *json;
        ssize_t n = testnet_read_frame(&peer->reader, &json, 500);
        if (n == -ETIMEDOUT)
            continue;
        if (n < 0)
            return;
        bool request = strstr(json, "\"id\":") != NULL;
        free(json);
        if (request) {
            testnet_peer_write(peer, "garbage, not a frame\n", 21);
            testnet_peer_wait_closed(peer, 30000);
            return;
        }
    }
}

static const char EJECT_PROTOCOL_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": { \"mixed\": { \"endpoints\": [\"${NEST_ADDR}\", \"${RAW_ADDR}\"] } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"mixed\", \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

static void eject_protocol_breaking_endpoint(void **state)
{
    (void)state;
    const char *nest;
    char raw_addr[RAW_ADDR_MAX];
    struct gwproc *gw = start_raw_gateway(EJECT_PROTOCOL_CONFIG, garbage_script, NULL, raw_addr, &nest);
    int oks = 0;
    int bad = sum_until_ejected(gw, raw_addr, true, &oks);
    fprintf(stderr, "garbage endpoint ejected: %d requests answered 502, %d answered 200\n", bad, oks);
    if (bad < 5)
        FAIL("ejected after %d protocol errors, expected 5 in a row", bad);
    expect_ejected(gw, raw_addr, nest, "consecutive protocol errors");
    for (int i = 0; i < 20; i++) /* the ejection lasts 10 s: every request goes to Nest */
        expect_post(gw->port, "/sum", "[1,2]", 200, "3");
    stop_gateway();
}

/* ---- 2. bounds --------------------------------------------------------------- */

/* Accepts and never reads: the kernel buffers fill, then the gateway's. */
static void never_read_script(struct testnet_peer *peer, void *arg)
{
    (void)arg;
    while (testnet_peer_sleep(peer, 1000) == 0)
        ;
}

static const char SINK_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"limits\": { \"max_body_bytes\": 1048576 },\n"
    "  \"services\": {\n"
    "    \"sink\": { \"endpoints\": [\"${RAW_ADDR}\"], \"timeout_ms\": 10000 },\n"
    "    \"good\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/sink\", \"service\": \"sink\", \"pattern\": { \"cmd\": \"sink\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"good\", \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

#define SINK_THREADS 64
#define SINK_MAX_REQUESTS 600
#define SINK_BODY_BYTES (256 * 1024)

typedef struct sink_load {
    int port;
    const char *body;
    atomic_int sent, overloaded, timed_out, other;
    atomic_bool stop;
    atomic_llong max_overloaded_ms, max_timeout_ms, min_timeout_ms;
    pthread_mutex_t mu;
    char detail[256];
} sink_load_t;

static void atomic_max(atomic_llong *a, long long v)
{
    long long cur = atomic_load(a);
    while (v > cur && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

static void atomic_min(atomic_llong *a, long long v)
{
    long long cur = atomic_load(a);
    while (v < cur && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

static void *sink_client(void *arg)
{
    sink_load_t *l = arg;
    while (!atomic_load(&l->stop) && atomic_fetch_add(&l->sent, 1) < SINK_MAX_REQUESTS) {
        struct http_request req = { .method = "POST", .path = "/sink", .body = l->body,
                                    .body_len = strlen(l->body) };
        struct http_response r;
        int64_t t0 = deadline_now_ms();
        int rc = http_fetch(l->port, &req, &r, 10000 + 20000);
        long long ms = deadline_now_ms() - t0;
        if (rc == 0 && r.status == 503 && error_is(r.body, "overloaded")) {
            atomic_max(&l->max_overloaded_ms, ms);
            if (atomic_fetch_add(&l->overloaded, 1) + 1 >= SINK_THREADS * 2)
                atomic_store(&l->stop, true);
        } else if (rc == 0 && r.status == 504 && error_is(r.body, "upstream_timeout")) {
            atomic_fetch_add(&l->timed_out, 1);
            atomic_max(&l->max_timeout_ms, ms);
            atomic_min(&l->min_timeout_ms, ms);
        } else {
            pthread_mutex_lock(&l->mu);
            if (atomic_fetch_add(&l->other, 1) == 0)
                snprintf(l->detail, sizeof l->detail, "after %lld ms: %s %d %.150s", ms,
                         rc ? strerror(-rc) : "status", rc ? 0 : r.status, rc ? "" : r.body);
            pthread_mutex_unlock(&l->mu);
        }
        if (rc == 0)
            http_response_free(&r);
    }
    return NULL;
}

static void bounded_unwritten_bytes(void **state)
{
    (void)state;
    char raw_addr[RAW_ADDR_MAX];
    struct gwproc *gw = start_raw_gateway(SINK_CONFIG, never_read_script, NULL, raw_addr, NULL);

    char *body = malloc(SINK_BODY_BYTES + 3);
    assert_non_null(body);
    body[0] = '"';
    memset(body + 1, 'x', SINK_BODY_BYTES);
    memcpy(body + 1 + SINK_BODY_BYTES, "\"", 2);
    sink_load_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    l->port = gw->port;
    l->body = body;
    atomic_store(&l->min_timeout_ms, 1LL << 40);
    pthread_mutex_init(&l->mu, NULL);
    pthread_t threads[SINK_THREADS];
    int64_t t0 = deadline_now_ms();
    for (int i = 0; i < SINK_THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, sink_client, l), 0);
    for (int i = 0; i < SINK_THREADS; i++)
        pthread_join(threads[i], NULL);
    uint64_t peak = peak_rss_kb(gw);
    fprintf(stderr,
            "sink: %d requests of %d KiB in %lld ms: %d 503 overloaded (slowest %lld ms), "
            "%d 504 (%lld..%lld ms), %d other; gateway peak RSS %llu KiB\n",
            atomic_load(&l->overloaded) + atomic_load(&l->timed_out) + atomic_load(&l->other),
            SINK_BODY_BYTES / 1024, (long long)(deadline_now_ms() - t0), atomic_load(&l->overloaded),
            atomic_load(&l->max_overloaded_ms), atomic_load(&l->timed_out),
            atomic_load(&l->timed_out) ? atomic_load(&l->min_timeout_ms) : 0,
            atomic_load(&l->max_timeout_ms), atomic_load(&l->other), (unsigned long long)peak);
    if (atomic_load(&l->other))
        FAIL("%d requests were answered otherwise than 503 overloaded or 504; first: %s",
             atomic_load(&l->other), l->detail);
    if (atomic_load(&l->overloaded) == 0)
        FAIL("no request failed with 503 overloaded although the service never reads");
    if (atomic_load(&l->max_overloaded_ms) > 5000)
        FAIL("a 503 overloaded took %lld ms, expected at once", atomic_load(&l->max_overloaded_ms));
    if (atomic_load(&l->timed_out) &&
        (atomic_load(&l->min_timeout_ms) < 9000 || atomic_load(&l->max_timeout_ms) > 10000 + 10000))
        FAIL("504s came after %lld..%lld ms, expected at the 10 s timeout",
             atomic_load(&l->min_timeout_ms), atomic_load(&l->max_timeout_ms));
    if (peak > RSS_LIMIT_KB)
        FAIL("the gateway's peak RSS was %llu KiB, expected below %u KiB", (unsigned long long)peak,
             RSS_LIMIT_KB);
    const char *ov[] = { "service=\"sink\"", "outcome=\"overloaded\"", NULL };
    if (metric(gw, "patterngate_upstream_requests_total", ov) < atomic_load(&l->overloaded))
        FAIL("patterngate_upstream_requests_total{service=\"sink\",outcome=\"overloaded\"} is "
             "below the %d overloaded answers", atomic_load(&l->overloaded));
    expect_post(gw->port, "/sum", "[1,2]", 200, "3");
    pthread_mutex_destroy(&l->mu);
    free(l);
    free(body);
    stop_gateway();
}

static const char WAITING_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"limits\": { \"max_connections\": 4096 },\n"
    "  \"services\": {\n"
    "    \"hang\": { \"endpoints\": [\"${RAW_ADDR}\"], \"connect\": \"lazy\", \"tls\": { \"verify\": false },\n"
    "              \"connect_timeout_ms\": 20000, \"timeout_ms\": 20000 },\n"
    "    \"good\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/hang\", \"service\": \"hang\", \"pattern\": { \"cmd\": \"sum\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"good\", \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

#define WAITING_MAX 1024
#define WAITING_SENT 1100

static void bounded_waiting_requests(void **state)
{
    (void)state;
    char raw_addr[RAW_ADDR_MAX];
    /* a TLS service whose handshake is never answered: its requests wait */
    struct gwproc *gw = start_raw_gateway(WAITING_CONFIG, never_read_script, NULL, raw_addr, NULL);

    mux_req_t *reqs = calloc(WAITING_SENT, sizeof *reqs);
    assert_non_null(reqs);
    char *raw = raw_post("/hang", "[1]");
    int64_t t0 = deadline_now_ms();
    mux_send(gw->port, reqs, WAITING_SENT, raw);
    int64_t t_sent = deadline_now_ms();
    /* the ones beyond the bound are answered at once */
    mux_collect(reqs, WAITING_SENT, 5000);
    expect_post(gw->port, "/sum", "[1,2]", 200, "3"); /* other services are not held up */
    int early = 0;
    for (int i = 0; i < WAITING_SENT; i++)
        early += reqs[i].done;
    mux_collect(reqs, WAITING_SENT, 20000 + 20000);
    int overloaded = 0, unavailable = 0, other = 0, late_overloaded = 0, early_unavailable = 0;
    long long first_unavailable = -1;
    for (int i = 0; i < WAITING_SENT; i++) {
        mux_req_t *m = &reqs[i];
        char *body = strstr(m->buf, "\r\n\r\n");
        long long ms = m->done ? m->done_at - m->sent_at : -1;
        if (m->status == 503 && body && error_is(body, "overloaded")) {
            overloaded++;
            late_overloaded += ms > 5000;
        } else if (m->status == 503 && body && error_is(body, "upstream_unavailable")) {
            unavailable++;
            if (first_unavailable < 0 || m->done_at - t0 < first_unavailable)
                first_unavailable = m->done_at - t0;
            early_unavailable += m->done_at - t0 < 15000;
        } else {
            if (other++ == 0)
                fprintf(stderr, "request %d (after %lld ms): %s\n", i, ms,
                        m->done ? m->buf : "no answer");
        }
    }
    fprintf(stderr,
            "waiting: %d requests sent in %lld ms, %d answered within 5 s; %d 503 overloaded, "
            "%d 503 upstream_unavailable (the first after %lld ms), %d other\n",
            WAITING_SENT, (long long)(t_sent - t0), early, overloaded, unavailable,
            first_unavailable, other);
    free(raw);
    mux_free(reqs, WAITING_SENT);
    if (other)
        FAIL("%d requests got neither 503 overloaded nor 503 upstream_unavailable", other);
    if (overloaded != WAITING_SENT - WAITING_MAX || unavailable != WAITING_MAX)
        FAIL("%d overloaded and %d waited, expected %d and %d", overloaded, unavailable,
             WAITING_SENT - WAITING_MAX, WAITING_MAX);
    if (late_overloaded)
        FAIL("%d overloaded answers took more than 5 s", late_overloaded);
    if (early_unavailable)
        FAIL("%d waiting requests gave up before 15 s (connect_timeout_ms is 20 s)",
             early_unavailable);
    expect_post(gw->port, "/sum", "[1,2]", 200, "3");
    stop_gateway();
}

/* ---- 3. HTTP limits ----------------------------------------------------------- */

static const char NEST_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": { \"good\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"good\", \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

/* Sends raw bytes on a new connection; the status of the answer. */
static int raw_status(int port, const char *bytes, size_t len)
{
    struct http_conn *c = NULL;
    assert_int_equal(http_connect(port, REQ_TIMEOUT_MS, &c), 0);
    int rc = http_send_raw(c, bytes, len, REQ_TIMEOUT_MS);
    struct http_response r;
    if (rc == 0 || rc == -EPIPE || rc == -ECONNRESET)
        rc = http_read_response(c, &r, REQ_TIMEOUT_MS);
    http_close(c);
    if (rc != 0)
        return rc;
    int status = r.status;
    http_response_free(&r);
    return status;
}

#define HUGE_BYTES 70000

static void oversized_heads(void **state)
{
    (void)state;
    struct gwproc *gw = start_nest_gateway(NEST_CONFIG, NULL, NULL);
    char *buf = malloc(HUGE_BYTES + 256);
    assert_non_null(buf);
    /* one huge header */
    int n = sprintf(buf, "GET /sum HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(buf + n, 'a', HUGE_BYTES);
    n += HUGE_BYTES;
    n += sprintf(buf + n, "\r\n\r\n");
    int status = raw_status(gw->port, buf, (size_t)n);
    if (status != 431)
        FAIL("a 70 KB header: %d, expected 431", status);
    /* many headers, 70 KB together */
    n = sprintf(buf, "GET /sum HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; n < HUGE_BYTES; i++)
        n += sprintf(buf + n, "X-H%d: %0200d\r\n", i, i);
    n += sprintf(buf + n, "\r\n");
    status = raw_status(gw->port, buf, (size_t)n);
    if (status != 431)
        FAIL("70 KB of headers: %d, expected 431", status);
    /* a huge request line */
    n = sprintf(buf, "GET /");
    memset(buf + n, 'a', HUGE_BYTES);
    n += HUGE_BYTES;
    n += sprintf(buf + n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    status = raw_status(gw->port, buf, (size_t)n);
    if (status != 414)
        FAIL("a 70 KB request line: %d, expected 414", status);
    free(buf);
    /* just below the limit still works */
    char big[10000];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char header[sizeof big + 16];
    snprintf(header, sizeof header, "X-Big: %s", big);
    const char *headers[] = { header, NULL };
    struct http_request req = { .method = "POST", .path = "/sum", .headers = headers,
                                .body = "[1,2]", .body_len = 5 };
    struct http_response r;
    assert_int_equal(http_fetch(gw->port, &req, &r, REQ_TIMEOUT_MS), 0);
    if (r.status != 200 || strcmp(r.body, "3") != 0)
        gwt_fail_response(&r, "a 10 KB header", "unexpected response %d", r.status);
    http_response_free(&r);
    expect_post(gw->port, "/sum", "[1,2]", 200, "3");
    stop_gateway();
}

typedef struct slow_client {
    const char *what;
    int fd;
    int64_t started_at, closed_at;
    size_t received;
} slow_client_t;

/* Polls the slow client's socket without blocking; records its end. */
static void slow_check(slow_client_t *s)
{
    if (s->closed_at)
        return;
    char buf[4096];
    for (;;) {
        struct pollfd p = { .fd = s->fd, .events = POLLIN };
        if (poll(&p, 1, 0) <= 0)
            return;
        ssize_t n = read(s->fd, buf, sizeof buf);
        if (n > 0) {
            if (s->received == 0)
                fprintf(stderr, "%s received: %.*s\n", s->what, (int)(n > 300 ? 300 : n), buf);
            s->received += (size_t)n;
            continue;
        }
        s->closed_at = deadline_now_ms();
        return;
    }
}

static void slow_clients_are_cut_off(void **state)
{
    (void)state;
    struct gwproc *gw = start_nest_gateway(NEST_CONFIG, NULL, NULL);
    static const char partial_head[] = "POST /sum HTTP/1.1\r\nHost: x\r\nContent-Type: appl";
    static const char partial_body[] =
        "POST /sum HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n[1,2,3,4,";
    slow_client_t head = { .what = "slow headers" }, body = { .what = "slow body" };
    head.fd = testnet_connect(gw->port, REQ_TIMEOUT_MS);
    body.fd = testnet_connect(gw->port, REQ_TIMEOUT_MS);
    assert_true(head.fd >= 0 && body.fd >= 0);
    assert_int_equal(testnet_write_all(head.fd, partial_head, strlen(partial_head), REQ_TIMEOUT_MS), 0);
    head.started_at = deadline_now_ms();
    assert_int_equal(testnet_write_all(body.fd, partial_body, strlen(partial_body), REQ_TIMEOUT_MS), 0);
    body.started_at = deadline_now_ms();
    int64_t deadline = deadline_after(150000);
    long long max_latency = 0;
    int served = 0;
    while ((!head.closed_at || !body.closed_at) && deadline_remaining_ms(deadline) > 0) {
        int64_t t = deadline_now_ms();
        expect_post(gw->port, "/sum", "[1,2]", 200, "3");
        served++;
        if (deadline_now_ms() - t > max_latency)
            max_latency = deadline_now_ms() - t;
        slow_check(&head);
        slow_check(&body);
        struct pollfd p[2] = { { .fd = head.closed_at ? -1 : head.fd, .events = POLLIN },
                               { .fd = body.closed_at ? -1 : body.fd, .events = POLLIN } };
        poll(p, 2, 500);
        slow_check(&head);
        slow_check(&body);
    }
    long long head_ms = head.closed_at ? head.closed_at - head.started_at : -1;
    long long body_ms = body.closed_at ? body.closed_at - body.started_at : -1;
    fprintf(stderr,
            "slow headers closed after %lld ms (%zu bytes answered), slow body after %lld ms "
            "(%zu bytes answered); %d requests served meanwhile, the slowest in %lld ms\n",
            head_ms, head.received, body_ms, body.received, served, max_latency);
    close(head.fd);
    close(body.fd);
    if (head_ms < 8000 || head_ms > 30000)
        FAIL("a client with unfinished headers was closed after %lld ms, expected about 10 s", head_ms);
    if (body_ms < 50000 || body_ms > 120000)
        FAIL("a client with an unfinished body was closed after %lld ms, expected about 60 s", body_ms);
    if (head.received || body.received)
        FAIL("the slow clients got an answer (%zu and %zu bytes); docs/OPERATIONS.md says they are shut "
             "down without one", head.received, body.received);
    stop_gateway();
}

/* ---- 4. a flood of replies for unknown ids ------------------------------------ */

static void flood_script(struct testnet_peer *peer, void *arg)
{
    atomic_llong *frames = arg;
    enum { BATCH = 256 };
    char *batch = malloc(BATCH * 96);
    if (!batch)
        return;
    unsigned seed = (unsigned)peer->index * 7919u + 1;
    while (!testnet_peer_stopping(peer)) {
        size_t len = 0;
        for (int i = 0; i < BATCH; i++) {
            char json[80];
            seed = seed * 1103515245u + 12345u;
            /* small decimal ids, like the gateway's own (which are global
             * across services), and ids that cannot be the gateway's */
            if (i % 2)
                snprintf(json, sizeof json, "{\"id\":\"%u\",\"response\":\"FLOOD\",\"isDisposed\":true}",
                         (seed >> 8) % 2000 + 1);
            else
                snprintf(json, sizeof json, "{\"id\":\"x%08x\",\"response\":\"FLOOD\",\"isDisposed\":true}",
                         seed);
            len += (size_t)sprintf(batch + len, "%zu#%s", strlen(json), json);
        }
        if (testnet_peer_write(peer, batch, len) != 0)
            break;
        atomic_fetch_add(frames, BATCH);
    }
    free(batch);
}

static const char FLOOD_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": {\n"
    "    \"flood\": { \"endpoints\": [\"${RAW_ADDR}\"] },\n"
    "    \"good\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"good\", \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

static void unknown_reply_flood(void **state)
{
    (void)state;
    static atomic_llong frames;
    atomic_store(&frames, 0);
    char raw_addr[RAW_ADDR_MAX];
    struct gwproc *gw = start_raw_gateway(FLOOD_CONFIG, flood_script, &frames, raw_addr, NULL);
    const char *late[] = { "service=\"flood\"", NULL };
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    while (metric(gw, "patterngate_upstream_late_replies_total", late) < 1000) {
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("the flood is not counted as late replies");
        deadline_pause_ms(POLL_PAUSE_MS);
    }
    double before = metric(gw, "patterngate_upstream_late_replies_total", late);
    long long max_latency = 0;
    int64_t t0 = deadline_now_ms();
    int n = 0;
    for (; n < 200 || deadline_now_ms() - t0 < 10000; n++) {
        char body[64], expected[32];
        snprintf(body, sizeof body, "[%d,%d]", n, 1000);
        snprintf(expected, sizeof expected, "%d", n + 1000);
        int64_t t = deadline_now_ms();
        expect_post(gw->port, "/sum", body, 200, expected);
        if (deadline_now_ms() - t > max_latency)
            max_latency = deadline_now_ms() - t;
    }
    double after = metric(gw, "patterngate_upstream_late_replies_total", late);
    uint64_t peak = peak_rss_kb(gw);
    fprintf(stderr,
            "flood: %lld frames written, %.0f counted as late replies; %d requests to another "
            "service meanwhile, the slowest in %lld ms; gateway peak RSS %llu KiB\n",
            atomic_load(&frames), after, n, max_latency, (unsigned long long)peak);
    if (after <= before)
        FAIL("patterngate_upstream_late_replies_total did not grow (%g, then %g)", before, after);
    if (peak > RSS_LIMIT_KB)
        FAIL("the gateway's peak RSS was %llu KiB, expected below %u KiB", (unsigned long long)peak,
             RSS_LIMIT_KB);
    wait_admin_200(gw, "/healthz");
    stop_gateway();
}

/* ---- 5. a stalled service ------------------------------------------------------- */

/* Reads every request, answers none. */
static void stall_script(struct testnet_peer *peer, void *arg)
{
    atomic_int *received = arg;
    while (!testnet_peer_stopping(peer)) {
        char *json;
        ssize_t n = testnet_read_frame(&peer->reader, &json, 500);
        if (n == -ETIMEDOUT)
            continue;
        if (n < 0)
            return;
        free(json);
        atomic_fetch_add(received, 1);
    }
}

static const char STALL_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": {\n"
    "    \"stall\": { \"endpoints\": [\"${RAW_ADDR}\"], \"timeout_ms\": 2000 },\n"
    "    \"good\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/stall\", \"service\": \"stall\", \"pattern\": { \"cmd\": \"sum\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"good\", \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

static void stalled_service_times_out(void **state)
{
    (void)state;
    static atomic_int received;
    atomic_store(&received, 0);
    char raw_addr[RAW_ADDR_MAX];
    struct gwproc *gw = start_raw_gateway(STALL_CONFIG, stall_script, &received, raw_addr, NULL);
    enum { N = 50 };
    mux_req_t *reqs = calloc(N, sizeof *reqs);
    assert_non_null(reqs);
    char *raw = raw_post("/stall", "[1,2]");
    mux_send(gw->port, reqs, N, raw);
    expect_post(gw->port, "/sum", "[1,2]", 200, "3"); /* meanwhile */
    mux_collect(reqs, N, 2000 + 20000);
    long long min_ms = -1, max_ms = -1;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        mux_req_t *m = &reqs[i];
        char *body = strstr(m->buf, "\r\n\r\n");
        long long ms = m->done ? m->done_at - m->sent_at : -1;
        if (!m->done || m->status != 504 || !body || !error_is(body, "upstream_timeout")) {
            if (bad++ == 0)
                fprintf(stderr, "request %d after %lld ms: %s\n", i, ms, m->done ? m->buf : "no answer");
            continue;
        }
        if (min_ms < 0 || ms < min_ms)
            min_ms = ms;
        if (ms > max_ms)
            max_ms = ms;
    }
    fprintf(stderr, "stall: %d requests, %d packets reached the service, 504 after %lld..%lld ms\n",
            N, atomic_load(&received), min_ms, max_ms);
    free(raw);
    mux_free(reqs, N);
    if (bad)
        FAIL("%d of %d requests to a stalled service were not a 504 upstream_timeout", bad, N);
    if (min_ms < 1900 || max_ms > 2000 + 8000)
        FAIL("the 504s came after %lld..%lld ms, expected at the 2 s timeout", min_ms, max_ms);
    const char *to[] = { "service=\"stall\"", "outcome=\"timeout\"", NULL };
    if (metric(gw, "patterngate_upstream_requests_total", to) != N)
        FAIL("patterngate_upstream_requests_total{service=\"stall\",outcome=\"timeout\"} is not %d", N);
    expect_post(gw->port, "/sum", "[1,2]", 200, "3");
    stop_gateway();
}

/* ---- 6. 5000 mostly idle connections ------------------------------------------ */

static const char MANY_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"limits\": { \"max_connections\": 6000 },\n"
    "  \"services\": { \"good\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"good\", \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

#define MANY_CONNS 5000
#define MANY_PARTIAL 1000 /* of which send part of a request head */

static void many_idle_connections(void **state)
{
    (void)state;
    long nofile = probe_raise_nofile();
    if (nofile < 12000) {
        fprintf(stderr, "skipped: the open-files hard limit is %ld, below 12000\n", nofile);
        skip();
    }
    struct gwproc *gw = start_nest_gateway(MANY_CONFIG, NULL, NULL);
    expect_post(gw->port, "/sum", "[1,2]", 200, "3");
    int base_fds = gw_fds(gw);
    int *fds = malloc(MANY_CONNS * sizeof *fds);
    assert_non_null(fds);
    static const char partial[] = "POST /sum HTTP/1.1\r\nHost: x\r\nContent-Le";
    int64_t t0 = deadline_now_ms();
    for (int i = 0; i < MANY_CONNS; i++) {
        fds[i] = testnet_connect(gw->port, REQ_TIMEOUT_MS);
        if (fds[i] < 0)
            FAIL("connection %d: %s", i, strerror(-fds[i]));
        if (i % (MANY_CONNS / MANY_PARTIAL) == 0)
            assert_int_equal(testnet_write_all(fds[i], partial, strlen(partial), REQ_TIMEOUT_MS), 0);
    }
    int64_t t_open = deadline_now_ms();
    long long max_latency = 0, total = 0;
    for (int i = 0; i < 50; i++) {
        char body[32], expected[16];
        snprintf(body, sizeof body, "[%d,1]", i);
        snprintf(expected, sizeof expected, "%d", i + 1);
        int64_t t = deadline_now_ms();
        expect_post(gw->port, "/sum", body, 200, expected);
        long long ms = deadline_now_ms() - t;
        total += ms;
        if (ms > max_latency)
            max_latency = ms;
    }
    int64_t t_measured = deadline_now_ms();
    double open_conns = metric(gw, "patterngate_http_connections", NULL);
    int peak_fds = gw_fds(gw);
    fprintf(stderr,
            "many: %d connections opened in %lld ms; 50 requests meanwhile in %lld ms, the slowest "
            "%lld ms; the gateway counted %.0f connections and %d descriptors (%d before)\n",
            MANY_CONNS, (long long)(t_open - t0), total, max_latency, open_conns, peak_fds, base_fds);
    if (max_latency >= 1000)
        FAIL("a request took %lld ms while %d connections were open", max_latency, MANY_CONNS);
    if (t_measured - t0 < 9000 && open_conns < MANY_CONNS)
        FAIL("the gateway counts %.0f client connections, %d are open", open_conns, MANY_CONNS);
    /* nobody finishes a request: the 10 s header deadline closes them all */
    int closed = 0;
    int64_t deadline = deadline_after(60000);
    for (int i = 0; i < MANY_CONNS; i++) {
        if (testnet_wait_closed(fds[i], deadline_remaining_ms(deadline)) == 0)
            closed++;
        close(fds[i]);
    }
    long long close_ms = deadline_now_ms() - t0;
    free(fds);
    fprintf(stderr, "many: the gateway closed %d of %d after %lld ms\n", closed, MANY_CONNS, close_ms);
    if (closed != MANY_CONNS)
        FAIL("only %d of %d silent connections were closed by the header deadline", closed,
             MANY_CONNS);
    wait_fds_at_most(gw, base_fds + 2, "after 5000 connections");
    expect_post(gw->port, "/sum", "[1,2]", 200, "3");
    stop_gateway();
}

/* ---- 7. garbage on the HTTP port ---------------------------------------------- */

static void garbage_and_truncated_requests(void **state)
{
    (void)state;
    struct gwproc *gw = start_nest_gateway(NEST_CONFIG, NULL, NULL);
    expect_post(gw->port, "/sum", "[1,2]", 200, "3");
    int base_fds = gw_fds(gw);
    static const char full[] =
        "POST /sum?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nX-Request-Id: abc\r\n\r\n5\r\n[1,2]\r\n0\r\n\r\n";
    unsigned seed = 12345;
    enum { N = 200, BATCH = 20 };
    int answered = 0;
    for (int b = 0; b < N / BATCH; b++) {
        int fds[BATCH];
        for (int i = 0; i < BATCH; i++) {
            fds[i] = testnet_connect(gw->port, REQ_TIMEOUT_MS);
            if (fds[i] < 0)
                FAIL("connection %d: %s", b * BATCH + i, strerror(-fds[i]));
            char buf[4096];
            size_t len;
            seed = seed * 1103515245u + 12345u;
            if (i % 2 == 0) { /* random bytes */
                len = 1 + (seed >> 4) % sizeof buf;
                for (size_t k = 0; k < len; k++) {
                    seed = seed * 1103515245u + 12345u;
                    buf[k] = (char)(seed >> 16);
                }
                if (i % 4 == 0) /* behind a plausible start */
                    memcpy(buf, "GET / HTTP/1.1\r\n", len < 16 ? len : 16);
            } else { /* a valid request cut at a random point */
                len = (seed >> 4) % (sizeof full - 1);
                memcpy(buf, full, len);
            }
            testnet_write_all(fds[i], buf, len, REQ_TIMEOUT_MS); /* may fail: the gateway may close */
        }
        for (int i = 0; i < BATCH; i++) {
            if (i % 3 == 0) { /* wait for the gateway's answer to the random bytes, if any */
                char buf[512];
                answered += testnet_read_some(fds[i], buf, sizeof buf, 200) > 0;
            }
            if (i % 5 == 0) { /* reset rather than close */
                struct linger lg = { .l_onoff = 1, .l_linger = 0 };
                setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            } else if (i % 5 == 1) { /* half-close first */
                shutdown(fds[i], SHUT_WR);
            }
            close(fds[i]);
        }
        if (!gwproc_running(gw))
            FAIL("the gateway died after %d garbage connections", (b + 1) * BATCH);
    }
    fprintf(stderr, "garbage: %d connections, %d got some answer before closing\n", N, answered);
    wait_admin_200(gw, "/healthz");
    expect_post(gw->port, "/sum", "[1,2]", 200, "3");
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    double open_conns;
    while ((open_conns = metric(gw, "patterngate_http_connections", NULL)) > 0) {
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("the gateway still counts %.0f client connections", open_conns);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
    wait_fds_at_most(gw, base_fds + 2, "after the garbage connections");
    for (int i = 0; i < 20; i++)
        expect_post(gw->port, "/sum", "[1,2]", 200, "3");
    stop_gateway();
}

/* ---- 8. slowloris on keep-alive connections ------------------------------------ */

static const char KEEPALIVE_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"limits\": { \"max_connections\": 50, \"idle_timeout_ms\": 120000 },\n"
    "  \"services\": { \"good\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"good\", \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

#define TRICKLERS 50

typedef struct trickler {
    struct http_conn *conn;
    int64_t first_byte_at, closed_at;
    size_t sent;
} trickler_t;

typedef struct late_client {
    int port;
    int64_t started_at, answered_at;
    int status;
    char body[64];
} late_client_t;

static void *late_client_main(void *arg)
{
    late_client_t *lc = arg;
    struct http_request req = { .method = "POST", .path = "/sum", .body = "[1,2]", .body_len = 5 };
    struct http_response r;
    lc->started_at = deadline_now_ms();
    if (http_fetch(lc->port, &req, &r, 60000) == 0) {
        lc->status = r.status;
        snprintf(lc->body, sizeof lc->body, "%s", r.body);
        http_response_free(&r);
    }
    lc->answered_at = deadline_now_ms();
    return NULL;
}

/* Whether the gateway closed the trickler's connection (read EOF or reset). */
static bool trickler_closed(trickler_t *t)
{
    if (t->closed_at)
        return true;
    struct pollfd p = { .fd = http_fd(t->conn), .events = POLLIN };
    if (poll(&p, 1, 0) <= 0)
        return false;
    char buf[256];
    if (read(http_fd(t->conn), buf, sizeof buf) > 0)
        return false; /* an answer would be wrong, but not a close */
    t->closed_at = deadline_now_ms();
    return true;
}

/* Every request on a keep-alive connection gets the first request's header
 * deadline: 50 clients that each make one ordinary request and then trickle
 * the next request's head one byte a second are cut off about 10 s after
 * their first byte, and a 51st client gets in (max_connections is 50). */
static void keepalive_slowloris(void **state)
{
    (void)state;
    struct gwproc *gw = start_nest_gateway(KEEPALIVE_CONFIG, NULL, NULL);
    static const char head[] = "POST /sum HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               "Content-Length: 5\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    trickler_t *t = calloc(TRICKLERS, sizeof *t);
    assert_non_null(t);
    struct http_request req = { .method = "POST", .path = "/sum", .body = "[1,2]", .body_len = 5 };
    for (int i = 0; i < TRICKLERS; i++) {
        struct http_response r;
        assert_int_equal(http_connect(gw->port, REQ_TIMEOUT_MS, &t[i].conn), 0);
        assert_int_equal(http_request(t[i].conn, &req, &r, REQ_TIMEOUT_MS), 0);
        if (r.status != 200 || r.conn_closed)
            gwt_fail_response(&r, "the ordinary first request of a keep-alive client", "unexpected response %d", r.status);
        http_response_free(&r);
    }
    late_client_t late = { .port = gw->port };
    pthread_t thread;
    bool late_started = false;
    int64_t end = deadline_after(45000);
    int open = TRICKLERS;
    while (open > 0 && deadline_remaining_ms(end) > 0) {
        open = 0;
        for (int i = 0; i < TRICKLERS; i++) {
            if (trickler_closed(&t[i]))
                continue;
            open++;
            if (t[i].sent < sizeof head - 1 &&
                testnet_write_all(http_fd(t[i].conn), head + t[i].sent, 1, REQ_TIMEOUT_MS) == 0) {
                if (t[i].sent++ == 0)
                    t[i].first_byte_at = deadline_now_ms();
            }
        }
        if (!late_started) { /* every slot is taken: now the 51st client */
            assert_int_equal(pthread_create(&thread, NULL, late_client_main, &late), 0);
            late_started = true;
        }
        deadline_pause_ms(1000);
    }
    pthread_join(thread, NULL);
    long long min_ms = -1, max_ms = -1;
    for (int i = 0; i < TRICKLERS; i++) {
        long long ms = t[i].closed_at ? t[i].closed_at - t[i].first_byte_at : -1;
        if (ms >= 0 && (min_ms < 0 || ms < min_ms))
            min_ms = ms;
        if (ms < 0 || ms > max_ms)
            max_ms = ms < 0 ? 999999 : ms;
        http_close(t[i].conn);
    }
    free(t);
    long long late_ms = late.answered_at - late.started_at;
    fprintf(stderr, "keep-alive slowloris: %d clients cut off %lld..%lld ms after their first byte; "
            "the 51st client answered %d after %lld ms\n", TRICKLERS, min_ms, max_ms, late.status, late_ms);
    if (open > 0)
        FAIL("%d of %d trickling keep-alive clients were still connected after 45 s", open, TRICKLERS);
    if (min_ms < 8000 || max_ms > 30000)
        FAIL("trickling clients were cut off %lld..%lld ms after their first byte, expected about 10 s",
             min_ms, max_ms);
    if (late.status != 200 || strcmp(late.body, "3") != 0 || late_ms > 35000)
        FAIL("the 51st client got %d \"%s\" after %lld ms, expected 200 \"3\" once the tricklers were cut off",
             late.status, late.body, late_ms);
    expect_post(gw->port, "/sum", "[1,2]", 200, "3");
    stop_gateway();
}

/* ---- 9. replies that pile up: limits.max_reply_bytes ----------------------- */

/* For {"cmd":"flood"}: values of 1 KB for the request's id, without end
 * (never isDisposed), interleaved for every such request; for
 * {"cmd":"big"}: one 20 MB value. Counts the flood values written in *arg,
 * and stops flooding at FLOOD_MAX of them (a gateway without a bound would
 * otherwise grow until the machine runs out of memory). */
#define FLOOD_MAX 300000
#define FLOOD_IDS 8

static void send_big_value(struct testnet_peer *peer, const char *id)
{
    size_t len = 20u << 20;
    char *value = malloc(len + 64);
    if (!value)
        return;
    int k = snprintf(value, 64, "{\"id\":\"%s\",\"response\":\"", id);
    memset(value + k, 'b', len);
    strcpy(value + k + len, "\",\"isDisposed\":true}");
    testnet_peer_send_frame(peer, value);
    free(value);
}

static void value_flood_script(struct testnet_peer *peer, void *arg)
{
    atomic_llong *written = arg;
    char filler[1025], ids[FLOOD_IDS][32];
    int nids = 0;
    memset(filler, 'v', 1024);
    filler[1024] = '\0';
    while (!testnet_peer_stopping(peer)) {
        char *json;
        ssize_t n = testnet_read_frame(&peer->reader, &json, nids ? 0 : 500);
        if (n >= 0) {
            char id[32] = "";
            const char *p = strstr(json, "\"id\":\"");
            if (p)
                sscanf(p + 6, "%31[^\"]", id);
            if (strstr(json, "\"big\""))
                send_big_value(peer, id);
            else if (nids < FLOOD_IDS)
                snprintf(ids[nids++], sizeof ids[0], "%s", id);
            free(json);
            continue;
        }
        if (n != -ETIMEDOUT)
            return;
        for (int i = 0; i < nids && atomic_load(written) < FLOOD_MAX; i++) {
            char frame[1400];
            snprintf(frame, sizeof frame, "{\"id\":\"%s\",\"response\":\"%s\"}", ids[i], filler);
            if (testnet_peer_send_frame(peer, frame) != 0)
                return;
            atomic_fetch_add(written, 1);
        }
        if (nids && atomic_load(written) >= FLOOD_MAX)
            testnet_peer_sleep(peer, 100);
    }
}

static const char REPLY_LIMIT_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"limits\": { \"max_reply_bytes\": 16777216 },\n"
    "  \"services\": {\n"
    "    \"flood\": { \"endpoints\": [\"${RAW_ADDR}\"], \"timeout_ms\": 30000 },\n"
    "    \"good\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/flood\", \"service\": \"flood\", \"pattern\": { \"cmd\": \"flood\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/flood-array\", \"service\": \"flood\", \"pattern\": { \"cmd\": \"flood\" }, \"reply\": \"array\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/big\", \"service\": \"flood\", \"pattern\": { \"cmd\": \"big\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/big-stream\", \"service\": \"flood\", \"pattern\": { \"cmd\": \"big\" }, \"reply\": \"ndjson\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"good\", \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

static uint64_t rss_kb(struct gwproc *gw)
{
    struct gwproc_usage u;
    if (gwproc_usage(gw, &u) != 0)
        FAIL("cannot read the gateway's memory use");
    return u.rss_kb;
}

static void expect_reply_limit(struct gwproc *gw, const char *path)
{
    struct http_response r = post(gw->port, path, "{}", REQ_TIMEOUT_MS);
    if (r.status != 502 || !error_is(r.body, "bad_upstream_message") || !strstr(r.body, "max_reply_bytes"))
        gwt_fail_response(&r, path, "expected 502 bad_upstream_message naming max_reply_bytes");
    http_response_free(&r);
}

/* A service that streams values without end into an `auto` or `array`
 * route, or one value larger than the limit: the request is answered 502
 * once limits.max_reply_bytes (16 MiB here) would be passed, the service's
 * later values are dropped, and the gateway's memory comes back. */
static void replies_are_bounded(void **state)
{
    (void)state;
    static atomic_llong written;
    atomic_store(&written, 0);
    char raw_addr[RAW_ADDR_MAX];
    struct gwproc *gw = start_raw_gateway(REPLY_LIMIT_CONFIG, value_flood_script, &written, raw_addr, NULL);
    expect_post(gw->port, "/sum", "[1,2]", 200, "3");
    uint64_t before = rss_kb(gw);
    expect_reply_limit(gw, "/flood");
    expect_reply_limit(gw, "/flood-array");
    expect_reply_limit(gw, "/big");
    /* a stream forwards its values, but not one larger than the limit: the
     * stream is open (its request was written), so the error is in-band */
    struct http_response r = post(gw->port, "/big-stream", "{}", REQ_TIMEOUT_MS);
    if (r.status != 200 || strncmp(r.body, "{\"error\":", 9) != 0 || !error_is(r.body, "bad_upstream_message") ||
        !strstr(r.body, "max_reply_bytes"))
        gwt_fail_response(&r, "a 20 MB value on an ndjson route",
                          "expected 200 and the line {\"error\":{... bad_upstream_message, max_reply_bytes}}");
    http_response_free(&r);
    uint64_t peak = peak_rss_kb(gw);
    /* the flood goes on: its values are late replies now, and dropped */
    long long at = atomic_load(&written);
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    while (atomic_load(&written) < at + 1000 && deadline_remaining_ms(deadline) > 0)
        deadline_pause_ms(POLL_PAUSE_MS);
    const char *late[] = { "service=\"flood\"", NULL };
    double dropped = metric(gw, "patterngate_upstream_late_replies_total", late);
    expect_post(gw->port, "/sum", "[1,2]", 200, "3");
    uint64_t after = rss_kb(gw);
#if !defined(__SANITIZE_ADDRESS__) /* ASan keeps freed memory in quarantine */
    deadline = deadline_after(POLL_TIMEOUT_MS);
    while ((after = rss_kb(gw)) > before + 16 * 1024 && deadline_remaining_ms(deadline) > 0)
        deadline_pause_ms(200);
#endif
    fprintf(stderr, "reply limit: RSS %llu kB before, peak %llu kB, %llu kB after; %lld flood values "
            "written, %.0f late replies dropped\n", (unsigned long long)before, (unsigned long long)peak,
            (unsigned long long)after, (long long)atomic_load(&written), dropped);
    if (peak > before + 80 * 1024 + (RSS_LIMIT_KB - 100u * 1024))
        FAIL("the gateway's RSS peaked at %llu kB from %llu kB: replies are not bounded by 16 MiB",
             (unsigned long long)peak, (unsigned long long)before);
    if (dropped < 1000)
        FAIL("the flood's values after the 502 were not dropped as late replies (%.0f counted)", dropped);
#if !defined(__SANITIZE_ADDRESS__)
    if (after > before + 16 * 1024)
        FAIL("the gateway's RSS stayed at %llu kB after the limit (from %llu kB)", (unsigned long long)after,
             (unsigned long long)before);
#endif
    stop_gateway();
}

/* ---- 10. a frame that never completes --------------------------------------- */

/* The first connection answers its first request with the start of a
 * 100 MB frame and then nothing; later connections answer sums. */
static void truncating_script(struct testnet_peer *peer, void *arg)
{
    (void)arg;
    bool truncated = false;
    while (!testnet_peer_stopping(peer)) {
        char *json;
        ssize_t n = testnet_read_frame(&peer->reader, &json, 500);
        if (n == -ETIMEDOUT)
            continue;
        if (n < 0)
            return;
        char id[32] = "", reply[96];
        const char *p = strstr(json, "\"id\":\"");
        if (p)
            sscanf(p + 6, "%31[^\"]", id);
        free(json);
        if (peer->index == 0 && !truncated) {
            snprintf(reply, sizeof reply, "100000000#{\"id\":\"%s\",\"response\":\"", id);
            testnet_peer_write(peer, reply, strlen(reply));
            truncated = true;
            continue;
        }
        if (truncated) /* stuck inside that frame: nothing more makes sense */
            continue;
        snprintf(reply, sizeof reply, "{\"id\":\"%s\",\"response\":3,\"isDisposed\":true}", id);
        if (testnet_peer_send_frame(peer, reply) != 0)
            return;
    }
}

static const char TRUNCATED_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": {\n"
    "    \"cut\": { \"endpoints\": [\"${RAW_ADDR}\"], \"timeout_ms\": 1000,\n"
    "             \"incomplete_frame_timeout_ms\": 3000 },\n"
    "    \"good\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/cut\", \"service\": \"cut\", \"pattern\": { \"cmd\": \"sum\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"good\", \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

/* A service writes the start of a frame and stops: after
 * incomplete_frame_timeout_ms the connection is dropped (in the log and in
 * /status) and the pool reconnects, instead of every later request on it
 * timing out for good. */
static void truncated_frame_drops_connection(void **state)
{
    (void)state;
    char raw_addr[RAW_ADDR_MAX];
    struct gwproc *gw = start_raw_gateway(TRUNCATED_CONFIG, truncating_script, NULL, raw_addr, NULL);
    expect_error(gw->port, "/cut", "[1,2]", 504, "upstream_timeout");
    int64_t started = deadline_now_ms(), deadline = deadline_after(POLL_TIMEOUT_MS);
    int timeouts = 0;
    for (;;) {
        struct http_response r = post(gw->port, "/cut", "[1,2]", REQ_TIMEOUT_MS);
        bool ok = r.status == 200 && strcmp(r.body, "3") == 0;
        if (!ok && !(r.status == 504 || r.status == 502 || r.status == 503))
            gwt_fail_response(&r, "POST /cut while the frame is incomplete", "unexpected response %d", r.status);
        timeouts += !ok;
        http_response_free(&r);
        if (ok)
            break;
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("requests to a service stuck inside a frame never succeeded again");
    }
    long long ms = deadline_now_ms() - started;
    fprintf(stderr, "truncated frame: %d requests failed, answered again after %lld ms\n", timeouts, ms);
    const char *line[] = { "incomplete", "\"service\":\"cut\"", NULL };
    if (log_lines_with(gw, line) < 1)
        FAIL("no log line says the connection was dropped for an incomplete frame");
    json_t *st = get_status(gw);
    json_t *ep = status_endpoint(st, "cut", raw_addr);
    json_t *conn = json_array_get(json_object_get(ep, "connections"), 0);
    const char *err = json_string_value(json_object_get(conn, "last_error"));
    if (!err || !strstr(err, "incomplete"))
        FAIL("/status does not show the incomplete frame as the connection's last error (%s)",
             err ? err : "null");
    if (json_integer_value(json_object_get(conn, "reconnects")) < 1)
        FAIL("/status shows no reconnect after the incomplete frame");
    json_decref(st);
    expect_post(gw->port, "/cut", "[1,2]", 200, "3");
    stop_gateway();
}

/* ---- main ---------------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_teardown(fn, teardown)

int main(void)
{
    const char *filter = getenv("PG_TEST_FILTER"); /* e.g. "eject_*", for debugging */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    long nofile = probe_raise_nofile(); /* 1100 clients at once, and 5000 */
    if (nofile < 2048)
        fprintf(stderr, "warning: the open-files limit is %ld\n", nofile);
    nest_require("v12");
    const struct CMUnitTest tests[] = {
        T(eject_refusing_endpoint),
        T(eject_protocol_breaking_endpoint),
        T(bounded_unwritten_bytes),
        T(bounded_waiting_requests),
        T(oversized_heads),
        T(slow_clients_are_cut_off),
        T(unknown_reply_flood),
        T(stalled_service_times_out),
        T(many_idle_connections),
        T(garbage_and_truncated_requests),
        T(keepalive_slowloris),
        T(replies_are_bounded),
        T(truncated_frame_drops_connection),
    };
    return cmocka_run_group_tests_name("resilience", tests, NULL, NULL);
}
