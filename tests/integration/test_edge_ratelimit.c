/* Rate limits of the built binary with `workers: 2`, in front of a Nest 12
 * service:
 *
 *   - 1000 requests paced evenly over about 2 s, on 16 keep-alive
 *     connections spread over both workers, at a limit of 100 rps with
 *     burst 20: the buckets are process-wide, so what is admitted is what
 *     one bucket allows: between 200 and 240 when the sending took 2 s. On
 *     a loaded machine the sending may take longer, so the upper bound is
 *     computed from the measured time: admitted <= burst + rps * elapsed
 *     (elapsed from before the first request went out to after the last
 *     answer came, which holds the gateway's own interval); the lower
 *     bound is 200, lowered by whatever rps * (gap - burst / rps) the
 *     client's own pauses longer than a full refill may have let go to
 *     waste. Every answer is a 200 or a 429; the 429s are counted by
 *     http_rate_limited_total{route} and flagged in the access log;
 *   - limits.rate_limit_keys 2 with a key per X-Api-Key: a third key evicts
 *     the least recently used one, which is observable because an evicted
 *     key gets a full bucket again while a kept one stays empty;
 *   - the headers: RateLimit-Limit (the burst), RateLimit-Remaining (whole
 *     tokens left) and RateLimit-Reset (seconds until full) on every answer
 *     of a limited route, Retry-After on the 429 (seconds until one token),
 *     all checked against the bucket's arithmetic with bounds from the
 *     measured time; none of them on a route without a limit.
 *
 * No sleep synchronizes anything: the sender paces itself against the
 * clock, and everything else is a request and its answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/deadline.h"
#include "support/gateway.h"
#include "support/gwfixture.h"
#include "support/gwtest.h"
#include "support/http.h"
#include "support/nest.h"

/* A gateway with 2 workers, limits.rate_limit_keys `keys` (0: default). */
static struct gwproc *start_gw(unsigned keys)
{
    char limits[64] = "";
    if (keys)
        snprintf(limits, sizeof limits, "\"limits\": { \"rate_limit_keys\": %u },", keys);
    char *config = NULL;
    assert_true(asprintf(&config,
                         "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
                         "  \"workers\": 2, %s \"log\": { \"level\": \"info\", \"access\": true }, \"generic_api\": false,\n"
                         "  \"services\": { \"nest\": { \"endpoints\": [\"%s\"], \"timeout_ms\": 20000 } },\n"
                         "  \"routes\": [\n"
                         "    { \"method\": \"GET\", \"path\": \"/burst\", \"service\": \"nest\", \"pattern\": { \"cmd\": "
                         "\"echo\" }, \"data\": 1, \"rate_limit\": { \"rps\": 100, \"burst\": 20 } },\n"
                         "    { \"method\": \"GET\", \"path\": \"/keyed\", \"service\": \"nest\", \"pattern\": { \"cmd\": "
                         "\"echo\" }, \"data\": 2,\n"
                         "      \"rate_limit\": { \"rps\": 0.001, \"burst\": 1, \"key\": \"$header.x-api-key\" } },\n"
                         "    { \"method\": \"GET\", \"path\": \"/slow\", \"service\": \"nest\", \"pattern\": { \"cmd\": "
                         "\"echo\" }, \"data\": 3, \"rate_limit\": { \"rps\": 0.1, \"burst\": 3 } },\n"
                         "    { \"method\": \"GET\", \"path\": \"/free\", \"service\": \"nest\", \"pattern\": { \"cmd\": "
                         "\"echo\" }, \"data\": 4 }\n"
                         "  ] }\n",
                         limits, gwf.nest_addr) > 0);
    struct gwproc_options o = { .ready_on_admin = true };
    gwf.gw = gwt_start(config, NULL, &o);
    free(config);
    return gwf.gw;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- 1. 1000 requests at 100 rps, burst 20, over 2 s -------------------------------------- */

#define TOTAL 1000
#define SENDERS 16
#define SPAN_S 2.0
#define RPS 100.0
#define BURST 20.0

typedef struct sender_shared {
    int port;
    double start;               /* when request 0 is due */
    atomic_int next;            /* the next request to send */
    double sent_at[TOTAL];      /* when each went out (relative to start) */
    int status[TOTAL];
    char error[256];            /* a failure, or "" */
    pthread_mutex_t lock;
} sender_shared;

static void *sender(void *arg)
{
    sender_shared *s = arg;
    struct http_conn *c = NULL;
    for (int i; (i = atomic_fetch_add(&s->next, 1)) < TOTAL;) {
        /* pacing against the clock (not a synchronization): request i is
         * due at start + i * SPAN_S / TOTAL */
        double due = s->start + i * (SPAN_S / TOTAL);
        for (double now = now_s(); now < due; now = now_s()) {
            struct timespec pause = { 0, (long)((due - now) * 1e9) };
            nanosleep(&pause, NULL);
        }
        struct http_request req = { .method = "GET", .path = "/burst" };
        struct http_response resp;
        int rc = c ? 0 : http_connect(s->port, GWT_REQ_TIMEOUT_MS, &c);
        s->sent_at[i] = now_s() - s->start;
        if (rc == 0)
            rc = http_request(c, &req, &resp, GWT_REQ_TIMEOUT_MS);
        if (rc != 0) {
            pthread_mutex_lock(&s->lock);
            snprintf(s->error, sizeof s->error, "request %d: %s", i, strerror(-rc));
            pthread_mutex_unlock(&s->lock);
            break;
        }
        s->status[i] = resp.status;
        if (resp.conn_closed) {
            http_close(c);
            c = NULL;
        }
        http_response_free(&resp);
    }
    http_close(c);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void thousand_requests_over_two_seconds(void **state)
{
    (void)state;
    struct gwproc *gw = start_gw(0);
    sender_shared *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->port = gwproc_port(gw);
    pthread_mutex_init(&s->lock, NULL);
    pthread_t threads[SENDERS];
    s->start = now_s() + 0.05;
    for (int t = 0; t < SENDERS; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, sender, s), 0);
    for (int t = 0; t < SENDERS; t++)
        pthread_join(threads[t], NULL);
    double elapsed = now_s() - (s->start - 0.05); /* from before the first request could go out */
    if (s->error[0])
        fail_msg("%s", s->error);
    int admitted = 0, limited = 0;
    for (int i = 0; i < TOTAL; i++) {
        admitted += s->status[i] == 200;
        limited += s->status[i] == 429;
    }
    /* the client's pauses longer than a full refill (burst / rps) may have
     * let tokens go to waste: the lower bound gives them back */
    double *at = malloc(sizeof(double) * TOTAL), wasted = 0;
    assert_non_null(at);
    memcpy(at, s->sent_at, sizeof(double) * TOTAL);
    qsort(at, TOTAL, sizeof at[0], cmp_double);
    for (int i = 1; i < TOTAL; i++)
        if (at[i] - at[i - 1] > BURST / RPS)
            wasted += (at[i] - at[i - 1] - BURST / RPS) * RPS;
    double upper = BURST + RPS * elapsed;
    double lower = 200 - ceil(wasted);
    print_message("sent %d requests in %.3f s: %d admitted, %d limited (bounds %.0f..%.1f; tokens wasted by "
                  "pauses %.1f)\n", TOTAL, elapsed, admitted, limited, lower, upper, wasted);
    if (admitted + limited != TOTAL)
        fail_msg("every answer should be 200 or 429: %d + %d of %d", admitted, limited, TOTAL);
    if (elapsed <= SPAN_S + 0.2 && upper < 240)
        upper = 240; /* the bound, when the sending kept to its 2 s */
    if (admitted < lower || admitted > upper)
        fail_msg("admitted %d, expected %.0f..%.1f (burst %g + %g rps * %.3f s)", admitted, lower, upper, BURST,
                 RPS, elapsed);
    /* both workers served: the bucket is the process's, not a worker's */
    json_t *lines = gwt_log_lines(gw, true), *access = gwt_log_find(lines, "access", NULL), *l;
    int by_worker[2] = { 0, 0 }, flagged = 0;
    size_t i;
    json_array_foreach(access, i, l) {
        const char *path = gwt_str(l, "path");
        if (!path || strcmp(path, "/burst") != 0)
            continue;
        json_int_t w = json_integer_value(json_object_get(l, "worker"));
        if (w == 0 || w == 1)
            by_worker[w]++;
        bool is_429 = json_integer_value(json_object_get(l, "status")) == 429;
        if (is_429 != json_is_true(json_object_get(l, "rate_limited")))
            gwt_fail_json(l, "rate_limited should be true exactly on a 429");
        flagged += is_429;
    }
    json_decref(access);
    json_decref(lines);
    if (by_worker[0] == 0 || by_worker[1] == 0)
        fail_msg("both workers should have served /burst: %d and %d", by_worker[0], by_worker[1]);
    if (by_worker[0] + by_worker[1] != TOTAL || flagged != limited)
        fail_msg("the access log has %d lines for /burst (%d rate_limited), the client saw %d (%d limited)",
                 by_worker[0] + by_worker[1], flagged, TOTAL, limited);
    gwt_scrape_t sc = gwt_scrape(gw->admin_port, NULL);
    gwt_expect_metric(&sc, "patterngate_http_rate_limited_total", "{\"route\":\"/burst\"}", limited);
    gwt_expect_metric(&sc, "patterngate_http_rate_limited_total", "{\"route\":\"/slow\"}", 0);
    if (gwt_metric_or(&sc, "patterngate_http_rate_limited_total", "{\"route\":\"/free\"}", -1) != -1)
        gwt_fail_scrape(&sc, "a route without a rate_limit has no http_rate_limited_total sample");
    gwt_expect_metric(&sc, "patterngate_http_requests_total", "{\"route\":\"/burst\",\"method\":\"GET\",\"code\":\"429\"}",
                      limited);
    gwt_promtool_check(&sc);
    gwt_scrape_free(&sc);
    free(at);
    pthread_mutex_destroy(&s->lock);
    free(s);
    gwt_stop(gw);
    gwf.gw = NULL;
}

/* ---- 2. keys beyond rate_limit_keys: the least recently used goes ------------------------ */

/* GET /keyed with X-Api-Key: key; its status. */
static int keyed(int port, const char *key)
{
    char header[64];
    snprintf(header, sizeof header, "X-Api-Key: %s", key);
    struct http_response r = gwt_req_with(port, "GET", "/keyed", (const char *[]){ header, NULL }, NULL);
    int status = r.status;
    if (status != 200 && status != 429)
        gwt_fail_response(&r, key, "200 or 429 expected");
    http_response_free(&r);
    return status;
}

static void least_recently_used_keys_go(void **state)
{
    (void)state;
    struct gwproc *gw = start_gw(2);
    int port = gwproc_port(gw);
    /* burst 1, a token every 1000 s: a key's second request is a 429 as
     * long as its bucket is kept */
    const struct {
        const char *key;
        int status;
        const char *why;
    } steps[] = {
        { "a", 200, "a: a new key" },
        { "a", 429, "a: its bucket is empty" },
        { "b", 200, "b: a new key (2 kept: a, b)" },
        { "c", 200, "c: a new key, evicts a, the least recently used (kept: b, c)" },
        { "b", 429, "b: kept, still empty" },
        { "a", 200, "a: evicted, so a full bucket again; evicts c (kept: b, a)" },
        { "a", 429, "a: empty again" },
        { "c", 200, "c: evicted by a, a full bucket; evicts b (kept: a, c)" },
        { "b", 200, "b: evicted by c, a full bucket" },
        { "b", 429, "b: empty" },
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        int status = keyed(port, steps[i].key);
        if (status != steps[i].status)
            fail_msg("step %zu, %s: got %d", i + 1, steps[i].why, status);
    }
    gwt_scrape_t sc = gwt_scrape(gw->admin_port, NULL);
    gwt_expect_metric(&sc, "patterngate_http_rate_limited_total", "{\"route\":\"/keyed\"}", 4);
    gwt_scrape_free(&sc);
    gwt_stop(gw);
    gwf.gw = NULL;
}

/* ---- 3. the headers ----------------------------------------------------------------------- */

static long header_long(const struct http_response *r, const char *name, const char *what)
{
    const char *v = http_header(r, name);
    char *end = NULL;
    long n = v ? strtol(v, &end, 10) : -1;
    if (!v || *v == '\0' || *end != '\0' || n < 0 || http_header_count(r, name) != 1)
        gwt_fail_response(r, what, "one %s header with a whole number expected", name);
    return n;
}

/* `name` is within lo..hi. */
static void expect_between(const struct http_response *r, const char *what, const char *name, long lo, long hi)
{
    long n = header_long(r, name, what);
    if (n < lo || n > hi)
        gwt_fail_response(r, what, "%s %ld, expected %ld..%ld", name, n, lo, hi);
}

static void the_headers(void **state)
{
    (void)state;
    struct gwproc *gw = start_gw(0);
    int port = gwproc_port(gw);
    /* /slow: 0.1 rps (a token every 10 s), burst 3. After k requests the
     * bucket holds 3 - k tokens plus what `t` seconds since the first gave
     * back, 0.1 * t. Remaining = floor(tokens), Reset = ceil((3 - tokens) /
     * 0.1), Retry-After = ceil((1 - tokens) / 0.1), at least 1. */
    double t0 = now_s();
    for (int k = 1; k <= 3; k++) {
        struct http_response r = gwt_req(port, "GET", "/slow", NULL);
        double t = now_s() - t0, gained = 0.1 * t;
        char what[32];
        snprintf(what, sizeof what, "request %d", k);
        gwt_expect_body(&r, what, 200, "3");
        assert_int_equal(header_long(&r, "RateLimit-Limit", what), 3);
        expect_between(&r, what, "RateLimit-Remaining", 3 - k, (long)floor(3 - k + gained));
        expect_between(&r, what, "RateLimit-Reset", (long)floor(10 * (k - gained)), 10 * k);
        if (http_header(&r, "Retry-After"))
            gwt_fail_response(&r, what, "no Retry-After on an admitted request");
        http_response_free(&r);
    }
    struct http_response r = gwt_req(port, "GET", "/slow", NULL);
    double gained = 0.1 * (now_s() - t0);
    if (gained >= 1)
        fail_msg("the machine took %.1f s for 4 requests: the bucket refilled a token", gained * 10);
    gwt_expect_error(&r, "request 4", 429, "rate_limited");
    assert_int_equal(header_long(&r, "RateLimit-Limit", "request 4"), 3);
    assert_int_equal(header_long(&r, "RateLimit-Remaining", "request 4"), 0);
    expect_between(&r, "request 4", "Retry-After", (long)fmax(1, floor(10 * (1 - gained))), 10);
    expect_between(&r, "request 4", "RateLimit-Reset", (long)floor(10 * (3 - gained)), 30);
    http_response_free(&r);
    /* a route without a limit: none of them */
    r = gwt_req(port, "GET", "/free", NULL);
    gwt_expect_body(&r, "/free", 200, "4");
    if (http_header(&r, "RateLimit-Limit") || http_header(&r, "RateLimit-Remaining") ||
        http_header(&r, "RateLimit-Reset") || http_header(&r, "Retry-After"))
        gwt_fail_response(&r, "/free", "no rate limit headers on a route without a limit");
    http_response_free(&r);
    gwt_stop(gw);
    gwf.gw = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(thousand_requests_over_two_seconds, gwf_test_teardown),
        cmocka_unit_test_teardown(least_recently_used_keys_go, gwf_test_teardown),
        cmocka_unit_test_teardown(the_headers, gwf_test_teardown),
    };
    return cmocka_run_group_tests_name("edge_ratelimit", tests, gwf_group_setup, gwf_group_teardown);
}
