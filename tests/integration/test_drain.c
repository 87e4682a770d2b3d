/* Shutdown, driven as a user would: SIGTERM with requests in flight (they
 * finish, new ones get 503 draining with Connection: close, /readyz turns
 * 503), and the end of shutdown_grace_ms with streams open (each gets its
 * draining error and its terminating chunk, read as raw bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "support/deadline.h"
#include "support/gateway.h"
#include "support/gwfixture.h"
#include "support/gwtest.h"
#include "support/http.h"
#include "support/nest.h"
#include "support/net.h"
#include "support/proc.h"

/* ---- fixtures ------------------------------------------------------------ */

/* The gateway, already signalled, must exit 0. */
static void expect_exit_0(struct gwproc *gw)
{
    int status = gwproc_wait(gw, GWPROC_STOP_TIMEOUT_MS);
    if (status != 0) {
        char buf[64];
        gwproc_print_log(gw, "after SIGTERM", 60);
        fail_msg("the gateway ended with %s after SIGTERM, expected exit 0", proc_status_str(status, buf, sizeof buf));
    }
}

/* ---- 5. SIGTERM with a request in flight ----------------------------------------- */

static void sigterm_drains(void **state)
{
    (void)state;
    static const char config[] =
        "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
        "  \"shutdown_grace_ms\": 10000, \"log\": { \"access\": true },\n"
        "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"], \"timeout_ms\": 30000 } },\n"
        "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/slow\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"delay\" } },\n"
        "                { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"sum\" } } ] }\n";
    struct gwproc *gw = gwf_start(config, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    gwt_poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", GWT_POLL_TIMEOUT_MS);
    /* 3 s rather than 1.5: room for the drain checks below on a slow machine
     * before the reply ends the drain and the gateway exits */
    gwt_bg_t *b = gwt_bg_start(port, "POST", "/slow", "{\"ms\":3000,\"value\":\"finished\"}");
    int64_t deadline = deadline_after(GWT_REQ_TIMEOUT_MS);
    while (!atomic_load(&b->sent) && deadline_remaining_ms(deadline) > 0)
        deadline_pause_ms(10);
    /* a later request on a later connection went to the service and back:
     * the slow one, already written, was read before it */
    gwt_check_json(port, "POST", "/sum", "[1,1]", 200, "2");
    if (atomic_load(&b->done)) {
        gwt_bg_join(b);
        gwt_fail_response(&b->resp, "the slow request", "finished before SIGTERM was sent");
    }
    assert_int_equal(gwproc_signal(gw, SIGTERM), 0);
    gwt_poll_json(admin, "GET", "/readyz", NULL, 503, "{\"status\":\"draining\"}", 10000);
    if (atomic_load(&b->done)) {
        gwt_bg_join(b);
        gwt_fail_response(&b->resp, "the slow request", "finished before the drain was checked");
    }
    json_t *st = gwt_status(admin, NULL);
    if (!json_is_true(json_object_get(st, "draining")))
        gwt_fail_json(st, "/status draining is not true after SIGTERM");
    /* the service cannot have replied before 3 s after the request left */
    if (deadline_now_ms() - b->sent_at_ms < 2500)
        gwt_expect_int(st, "inflight", 1, "/status during the drain (the slow request)");
    json_decref(st);
    struct http_response r = gwt_req_with(port, "POST", "/sum", NULL, "[1,2]");
    gwt_expect_error(&r, "a new request during the drain", 503, "draining");
    const char *conn = http_header(&r, "Connection");
    if (!conn || strcasecmp(conn, "close") != 0)
        gwt_fail_response(&r, "a new request during the drain", "no Connection: close");
    http_response_free(&r);
    gwt_bg_join(b);
    gwt_expect_json(&b->resp, "the request in flight at SIGTERM", 200, "\"finished\"");
    gwt_bg_free(b);
    expect_exit_0(gw);
    /* the refused request is logged under the route it asked for */
    json_t *lines = gwt_log_lines(gw, true), *access = gwt_log_find(lines, "access", NULL), *refused = NULL, *l;
    size_t i;
    json_array_foreach(access, i, l) {
        const char *path = gwt_str(l, "path");
        json_t *code = json_object_get(l, "status");
        if (path && strcmp(path, "/sum") == 0 && json_integer_value(code) == 503)
            refused = l;
    }
    if (!refused || !gwt_str(refused, "route") || strcmp(gwt_str(refused, "route"), "/sum") != 0 ||
        !gwt_str(refused, "error") || strcmp(gwt_str(refused, "error"), "draining") != 0)
        gwt_fail_json(lines, "no access line {path /sum, route /sum, status 503, error draining}");
    json_decref(access);
    json_decref(lines);
    gwt_discard(gwf.gw);
    gwf.gw = NULL;
}

/* ---- the end of the grace with streams open ----------------------------------------- */

/* One stream read as raw bytes from its own socket. */
typedef struct raw_stream {
    const char *path;
    const char *body;
    const char *first;         /* body bytes to wait for before the signal */
    int fd;
    struct testnet_reader rd;
    buf_t all;                 /* everything read, head included */
    char *bytes;
    size_t len;
} raw_stream_t;

static void raw_open(raw_stream_t *s, int port)
{
    s->fd = testnet_connect(port, GWT_REQ_TIMEOUT_MS);
    assert_true(s->fd >= 0);
    testnet_reader_init(&s->rd, s->fd);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s", s->path, strlen(s->body), s->body);
    assert_int_equal(testnet_write_all(s->fd, req, (size_t)n, GWT_REQ_TIMEOUT_MS), 0);
}

/* Waits until the head and `first` are in (the stream is open). */
static void raw_wait_open(raw_stream_t *s)
{
    char *head = NULL, *first = NULL;
    ssize_t n = testnet_read_until(&s->rd, "\r\n\r\n", &head, GWT_REQ_TIMEOUT_MS), m = 0;
    if (n >= 0 && s->first)
        m = testnet_read_until(&s->rd, s->first, &first, GWT_REQ_TIMEOUT_MS);
    if (n < 0 || m < 0) {
        gwt_print_log_tail();
        fail_msg("POST %s: the stream did not open (head and %s)", s->path, s->first ? s->first : "");
    }
    buf_append(&s->all, head, (size_t)n);
    buf_append(&s->all, first ? first : "", (size_t)m);
    free(head);
    free(first);
}

/* The body of a chunked response: de-chunked into *body; 1 when the
 * terminating chunk ends the bytes exactly, 0 when it is missing or
 * something follows it. */
static int dechunk(const char *p, size_t n, buf_t *body)
{
    const char *end = p + n;
    for (;;) {
        const char *crlf = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!crlf)
            return 0;
        unsigned long size = strtoul(p, NULL, 16);
        p = crlf + 2;
        if (size == 0)
            return end - p == 2 && memcmp(p, "\r\n", 2) == 0;
        if ((size_t)(end - p) < size + 2 || memcmp(p + size, "\r\n", 2) != 0)
            return 0;
        buf_append(body, p, size);
        p += size + 2;
    }
}

static void expect_drained(raw_stream_t *s, const char *values, bool sse)
{
    const char *head_end = memmem(s->bytes, s->len, "\r\n\r\n", 4);
    if (!head_end || strncmp(s->bytes, "HTTP/1.1 200", 12) != 0 || !strcasestr(s->bytes, "transfer-encoding: chunked"))
        fail_msg("POST %s: not a chunked 200 response:\n%.*s", s->path, (int)s->len, s->bytes);
    buf_t body = BUF_INIT;
    size_t off = (size_t)(head_end + 4 - s->bytes);
    int ended = dechunk(head_end + 4, s->len - off, &body);
    buf_append(&body, "", 1);
    char want[512];
    if (sse)
        snprintf(want, sizeof want, ": ok\n\n%sevent: error\ndata: {\"statusCode\":503,\"error\":\"draining\","
                 "\"message\":\"the gateway shut down before the stream ended\"}\n\n", values);
    else
        snprintf(want, sizeof want, "%s{\"error\":{\"statusCode\":503,\"error\":\"draining\","
                 "\"message\":\"the gateway shut down before the stream ended\"}}\n", values);
    if (!ended || strcmp(body.data, want) != 0)
        fail_msg("POST %s: expected the body\n%s\nthen the terminating chunk and the end; got (%s):\n%.*s", s->path,
                 want, ended ? "terminated" : "no clean terminating chunk", (int)s->len, s->bytes);
    buf_free(&body);
}

/* Several SSE and NDJSON streams open at once, some with a value out, some
 * still waiting for their first: at the end of shutdown_grace_ms each gets
 * its draining error, then its terminating chunk (no stream is cut), and
 * the gateway exits 0. */
static void grace_ends_every_stream_cleanly(void **state)
{
    (void)state;
    static const char config[] =
        "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
        "  \"shutdown_grace_ms\": 1500,\n"
        "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"], \"timeout_ms\": 120000 } },\n"
        "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/nd\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"stream\" }, \"reply\": \"ndjson\" },\n"
        "                { \"method\": \"POST\", \"path\": \"/sse\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"stream\" }, \"reply\": \"sse\" } ] }\n";
    struct gwproc *gw = gwf_start(config, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    gwt_poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", GWT_POLL_TIMEOUT_MS);
    static const char one_then_silence[] = "{\"values\":[1],\"interval_ms\":50,\"complete_after_ms\":120000}";
    static const char silence[] = "{\"count\":1,\"interval_ms\":120000}";
    raw_stream_t s[] = {
        { "/nd", one_then_silence, "1\n", -1, { 0 }, BUF_INIT, NULL, 0 },
        { "/nd", one_then_silence, "1\n", -1, { 0 }, BUF_INIT, NULL, 0 },
        { "/nd", silence, NULL, -1, { 0 }, BUF_INIT, NULL, 0 },
        { "/sse", one_then_silence, "data: 1\n\n", -1, { 0 }, BUF_INIT, NULL, 0 },
        { "/sse", one_then_silence, "data: 1\n\n", -1, { 0 }, BUF_INIT, NULL, 0 },
        { "/sse", silence, ": ok\n\n", -1, { 0 }, BUF_INIT, NULL, 0 },
    };
    enum { N = sizeof s / sizeof s[0] };
    for (int i = 0; i < N; i++)
        raw_open(&s[i], port);
    for (int i = 0; i < N; i++)
        raw_wait_open(&s[i]);
    assert_int_equal(gwproc_signal(gw, SIGTERM), 0);
    for (int i = 0; i < N; i++) {
        char *rest = NULL;
        ssize_t n = testnet_read_to_eof(&s[i].rd, &rest, 30000);
        if (n < 0) {
            gwt_print_log_tail();
            fail_msg("POST %s: the gateway did not end the stream: %s", s[i].path, strerror((int)-n));
        }
        buf_append(&s[i].all, rest, (size_t)n);
        free(rest);
        s[i].bytes = s[i].all.data;
        s[i].len = s[i].all.len;
    }
    for (int i = 0; i < N; i++) {
        bool sse = strcmp(s[i].path, "/sse") == 0, value = s[i].body == one_then_silence;
        expect_drained(&s[i], value ? (sse ? "data: 1\n\n" : "1\n") : "", sse);
    }
    expect_exit_0(gw);
    for (int i = 0; i < N; i++) {
        testnet_reader_free(&s[i].rd);
        close(s[i].fd);
        buf_free(&s[i].all);
    }
    gwt_discard(gwf.gw);
    gwf.gw = NULL;
}

/* ---- main ---------------------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_teardown(fn, gwf_test_teardown)

int main(void)
{
    const char *filter = getenv("PG_TEST_FILTER"); /* e.g. "reload_*", for debugging */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        T(sigterm_drains),
        T(grace_ends_every_stream_cleanly),
    };
    return cmocka_run_group_tests_name("drain_nest12", tests, gwf_group_setup, gwf_group_teardown);
}
