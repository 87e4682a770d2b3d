/* The log of the built binary, read as JSON lines: the access log's fields
 * (SPEC.md "Operating it"), admin requests left out unless
 * log.access_admin, streams' bytes and in-band errors, the debug packet
 * lines, and the worker field. */
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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "support/deadline.h"
#include "support/gateway.h"
#include "support/gwfixture.h"
#include "support/gwtest.h"
#include "support/http.h"
#include "support/nest.h"
#include "support/net.h"
#include "support/proc.h"

/* ---- fixtures ------------------------------------------------------------ */

/* A stopped gateway kept for its log (freed by the test or its teardown). */
static struct gwproc *g_kept;

static int test_teardown(void **state)
{
    gwt_discard(g_kept);
    g_kept = NULL;
    return gwf_test_teardown(state);
}

/* SIGTERM; exit 0; the process is kept (g_kept) for its whole log. */
static void stop_gw_keep_log(void)
{
    g_kept = gwf.gw;
    gwf.gw = NULL;
    gwt_stop_keep(g_kept);
}

static const char LOG_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"generic_api\": [\"nest\"],\n"
    "  \"log\": { \"level\": \"info\", \"access\": true },\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"], \"timeout_ms\": 20000 } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/sum/:x\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"sum\" },\n"
    "      \"data\": \"$body\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/echo\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/nd\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"reply\": \"ndjson\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/sse-fail\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream_fail\" },\n"
    "      \"reply\": \"sse\" }\n"
    "  ] }\n";

/* Exactly the fields of SPEC.md's access line, plus the log line's own. */
static const char *const ACCESS_FIELDS[] = { "ts", "level", "msg", "worker", "method", "path", "query", "route",
                                             "status", "error", "duration_ms", "request_id", "service",
                                             "upstream", "client", "user_agent", "bytes", "auth",
                                             "rate_limited", NULL };

/* The one access line with this request id. */
static json_t *access_line(json_t *lines, const char *request_id)
{
    json_t *found = NULL, *l, *access = gwt_log_find(lines, "access", NULL);
    size_t i, n = 0;
    json_array_foreach(access, i, l) {
        const char *id = gwt_str(l, "request_id");
        if (id && strcmp(id, request_id) == 0) {
            found = l;
            n++;
        }
    }
    json_incref(found);
    json_decref(access);
    if (n != 1)
        gwt_fail_json(lines, "%zu access lines with request_id %s, expected 1", n, request_id);
    return found;
}

/* The line's string member `key` is `want` (NULL: JSON null). */
static void expect_str_or_null(json_t *line, const char *key, const char *want)
{
    json_t *v = json_object_get(line, key);
    bool ok = want ? json_is_string(v) && strcmp(json_string_value(v), want) == 0 : json_is_null(v);
    if (!ok)
        gwt_fail_json(line, "access line: \"%s\" is not %s%s%s", key, want ? "\"" : "", want ? want : "null",
                      want ? "\"" : "");
}

static void expect_fields(json_t *line)
{
    size_t n = 0;
    for (; ACCESS_FIELDS[n]; n++)
        if (!json_object_get(line, ACCESS_FIELDS[n]))
            gwt_fail_json(line, "access line: no \"%s\"", ACCESS_FIELDS[n]);
    if (json_object_size(line) != n)
        gwt_fail_json(line, "access line: fields other than SPEC.md's");
    const char *ts = gwt_str(line, "ts");
    size_t tl = ts ? strlen(ts) : 0;
    json_t *ms = json_object_get(line, "duration_ms");
    if (!ts || tl < 20 || ts[tl - 1] != 'Z' || ts[10] != 'T' || strcmp(gwt_str(line, "level"), "info") != 0 ||
        !json_is_number(ms) || json_number_value(ms) < 0 || json_number_value(ms) > 60000)
        gwt_fail_json(line, "access line: ts, level or duration_ms");
    gwt_expect_int(line, "worker", 0, "access line");
    /* this config has no auth and no rate limit (test_edge_* checks them set) */
    if (!json_is_null(json_object_get(line, "auth")) || !json_is_false(json_object_get(line, "rate_limited")))
        gwt_fail_json(line, "access line: auth is not null or rate_limited is not false");
}

typedef struct sent {
    const char *method, *path, *body;
    const char *route, *query, *service, *error;
    int status;
    bool upstream;            /* written to the service */
    char request_id[128];
    size_t bytes;
    char client[64];
} sent_t;

/* Sends on a connection of its own (so that its address is known) with a
 * User-Agent; keeps the request id, the bytes and the client address. */
static void send_one(int port, sent_t *q)
{
    struct http_conn *c;
    assert_int_equal(http_connect(port, GWT_REQ_TIMEOUT_MS, &c), 0);
    struct sockaddr_in local;
    socklen_t len = sizeof local;
    assert_int_equal(getsockname(http_fd(c), (struct sockaddr *)&local, &len), 0);
    snprintf(q->client, sizeof q->client, "127.0.0.1:%u", (unsigned)ntohs(local.sin_port));
    const char *headers[] = { "User-Agent: pg-test/1.0 (\"quoted\")", NULL };
    struct http_request req = { .method = q->method, .path = q->path, .headers = headers, .body = q->body,
                                .body_len = q->body ? strlen(q->body) : 0 };
    struct http_response r;
    assert_int_equal(http_request(c, &req, &r, GWT_REQ_TIMEOUT_MS), 0);
    http_close(c);
    if (r.status != q->status)
        gwt_fail_response(&r, q->path, "status %d, expected %d", r.status, q->status);
    snprintf(q->request_id, sizeof q->request_id, "%s", http_header(&r, "X-Request-Id"));
    q->bytes = r.body_len;
    http_response_free(&r);
}

static void wait_logged(struct gwproc *gw, const sent_t *q)
{
    char needle[200];
    snprintf(needle, sizeof needle, "\"request_id\":\"%s\"", q->request_id);
    if (gwproc_wait_log(gw, needle, 1, GWT_POLL_TIMEOUT_MS) != 0) {
        gwt_print_log_tail();
        fail_msg("no log line with %s (%s %s)", needle, q->method, q->path);
    }
}

/* One access line per request with every field of SPEC.md: the raw
 * query, the error code, the endpoint written to, the client's address,
 * the User-Agent, the body bytes (a stream's included, and its in-band
 * error); admin requests are not logged without log.access_admin. */
static void access_log_lines(void **state)
{
    (void)state;
    struct gwproc *gw = gwf_start(LOG_CONFIG, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    gwt_poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", GWT_POLL_TIMEOUT_MS);
    sent_t reqs[] = {
        { "POST", "/sum/5?a=1&b=x%20y&flag", "[1,2]", "/sum/:x", "a=1&b=x%20y&flag", "nest", NULL, 200, true, "", 0, "" },
        { "GET", "/nope/x", NULL, "unmatched", "", NULL, "not_found", 404, false, "", 0, "" },
        { "POST", "/v1/send/nest", "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[2,3]}", "generic", "", "nest", NULL, 200,
          true, "", 0, "" },
        { "POST", "/echo", "{\"a\":", "/echo", "", "nest", "bad_request", 400, false, "", 0, "" },
        { "POST", "/nd", "{\"count\":3}", "/nd", "", "nest", NULL, 200, true, "", 0, "" },
        { "POST", "/sse-fail", "{\"count\":1,\"error\":{\"statusCode\":409,\"message\":\"no\"}}", "/sse-fail", "",
          "nest", "upstream_error", 200, true, "", 0, "" },
    };
    enum { K = sizeof reqs / sizeof reqs[0] };
    for (size_t i = 0; i < K; i++)
        send_one(port, &reqs[i]);
    gwt_check_json(admin, "GET", "/healthz", NULL, 200, "{\"status\":\"ok\"}");
    for (size_t i = 0; i < K; i++)
        wait_logged(gw, &reqs[i]);
    char nest_addr[64];
    snprintf(nest_addr, sizeof nest_addr, "%s", gwf.nest_addr);
    json_t *lines = gwt_log_lines(gw, true);
    for (size_t i = 0; i < K; i++) {
        json_t *line = access_line(lines, reqs[i].request_id);
        expect_fields(line);
        const char *path_only = reqs[i].path;
        char path[128];
        snprintf(path, sizeof path, "%.*s", (int)strcspn(path_only, "?"), path_only);
        expect_str_or_null(line, "method", reqs[i].method);
        expect_str_or_null(line, "path", path);
        expect_str_or_null(line, "query", reqs[i].query);
        expect_str_or_null(line, "route", reqs[i].route);
        gwt_expect_int(line, "status", reqs[i].status, "access line");
        expect_str_or_null(line, "error", reqs[i].error);
        expect_str_or_null(line, "service", reqs[i].service);
        expect_str_or_null(line, "upstream", reqs[i].upstream ? nest_addr : NULL);
        expect_str_or_null(line, "client", reqs[i].client);
        expect_str_or_null(line, "user_agent", "pg-test/1.0 (\"quoted\")");
        gwt_expect_int(line, "bytes", (long long)reqs[i].bytes, "access line (body bytes, streams included)");
        json_decref(line);
    }
    /* the probe on the admin listener is not logged */
    json_t *access = gwt_log_find(lines, "access", NULL), *l;
    size_t i;
    json_array_foreach(access, i, l) {
        if (strcmp(gwt_str(l, "route"), "admin") == 0)
            gwt_fail_json(l, "an admin request was access-logged without log.access_admin");
    }
    json_decref(access);
    json_decref(lines);
    gwf_stop();
}

/* With log.access_admin, admin requests are logged, under route admin. */
static void access_admin_logged_when_asked(void **state)
{
    (void)state;
    static const char config[] =
        "{ \"listen\": \"127.0.0.1:${GW_PORT}\",\n"
        "  \"log\": { \"access\": true, \"access_admin\": true },\n"
        "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } } }\n";
    struct gwproc *gw = gwf_start(config, NULL, false, NULL);
    int port = gwproc_port(gw);
    sent_t probe = { "GET", "/healthz", NULL, "admin", "", NULL, NULL, 200, false, "", 0, "" };
    send_one(port, &probe);
    sent_t wrong = { "POST", "/status", NULL, "admin", "", NULL, "method_not_allowed", 405, false, "", 0, "" };
    send_one(port, &wrong);
    wait_logged(gw, &probe);
    wait_logged(gw, &wrong);
    json_t *lines = gwt_log_lines(gw, true);
    sent_t *both[] = { &probe, &wrong };
    for (int k = 0; k < 2; k++) {
        json_t *line = access_line(lines, both[k]->request_id);
        expect_fields(line);
        expect_str_or_null(line, "route", "admin");
        expect_str_or_null(line, "error", both[k]->error);
        expect_str_or_null(line, "service", NULL);
        gwt_expect_int(line, "status", both[k]->status, "admin access line");
        json_decref(line);
    }
    json_decref(lines);
    gwf_stop();
}

/* Per-worker lines carry "worker", process-wide lines do not. */
static void worker_on_per_worker_lines(void **state)
{
    (void)state;
    struct gwproc *gw = gwf_start(LOG_CONFIG, NULL, true, NULL);
    gwt_poll_json(gw->admin_port, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", GWT_POLL_TIMEOUT_MS);
    stop_gw_keep_log();
    json_t *lines = gwt_log_lines(g_kept, true), *l;
    size_t i;
    int per_worker = 0, process = 0;
    json_array_foreach(lines, i, l) {
        const char *msg = gwt_str(l, "msg");
        bool is_process = strcmp(msg, "listening") == 0 || strcmp(msg, "shutting down") == 0 ||
                          strcmp(msg, "exit") == 0;
        bool has_worker = json_object_get(l, "worker") != NULL;
        if (is_process && has_worker)
            gwt_fail_json(l, "a process-wide line with a worker");
        if (strcmp(msg, "upstream connected") == 0 && !has_worker)
            gwt_fail_json(l, "a per-worker line without a worker");
        process += is_process;
        per_worker += strcmp(msg, "upstream connected") == 0;
    }
    if (process != 3 || per_worker < 1)
        gwt_fail_json(lines, "expected listening, shutting down and exit once each, and an upstream connected line");
    json_decref(lines);
    gwt_discard(g_kept);
    g_kept = NULL;
}

/* log.level debug: each packet written and read, its data cut to
 * log.debug_bytes (on a character boundary) with its whole length. */
static void debug_packet_lines(void **state)
{
    (void)state;
    static const char config[] =
        "{ \"listen\": \"127.0.0.1:${GW_PORT}\",\n"
        "  \"log\": { \"level\": \"debug\", \"debug_bytes\": 10 },\n"
        "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
        "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/echo\", \"service\": \"nest\",\n"
        "                  \"pattern\": \"echo\" } ] }\n";
    struct gwproc *gw = gwf_start(config, NULL, false, NULL);
    int port = gwproc_port(gw);
    const char *body = "\"abcdefghé-0123456789\""; /* the cut at 10 bytes falls inside é */
    gwt_check_json(port, "POST", "/echo", body, 200, body);
    assert_int_equal(gwproc_wait_log(gw, "\"msg\":\"packet received\"", 1, GWT_POLL_TIMEOUT_MS), 0);
    json_t *lines = gwt_log_lines(gw, true);
    json_t *sent = gwt_log_find(lines, "packet sent", "debug"), *got = gwt_log_find(lines, "packet received", "debug");
    json_t *out = json_array_get(sent, json_array_size(sent) - 1), *in = json_array_get(got, json_array_size(got) - 1);
    if (!out || !in)
        gwt_fail_json(lines, "no packet sent / packet received debug lines");
    expect_str_or_null(out, "service", "nest");
    expect_str_or_null(out, "endpoint", gwf.nest_addr);
    expect_str_or_null(out, "pattern", "echo"); /* its JSON, as it fits in debug_bytes */
    if (!json_is_string(json_object_get(out, "id")))
        gwt_fail_json(out, "the packet line has no id");
    expect_str_or_null(out, "data", "\"abcdefgh"); /* 9 bytes: é does not fit */
    gwt_expect_int(out, "data_bytes", (long long)strlen(body), "packet sent");
    expect_str_or_null(in, "kind", "response");
    expect_str_or_null(in, "data", "\"abcdefgh");
    gwt_expect_int(in, "data_bytes", (long long)strlen(body), "packet received");
    gwt_expect_int(in, "worker", 0, "packet received");
    json_decref(sent);
    json_decref(got);
    json_decref(lines);
    gwf_stop();
}

/* ---- main ---------------------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_teardown(fn, test_teardown)

int main(void)
{
    const char *filter = getenv("PG_TEST_FILTER"); /* e.g. "reload_*", for debugging */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        T(access_log_lines),
        T(access_admin_logged_when_asked),
        T(worker_on_per_worker_lines),
        T(debug_packet_lines),
    };
    return cmocka_run_group_tests_name("logs_nest12", tests, gwf_group_setup, gwf_group_teardown);
}
