/* The admin API of the built binary, driven as a user would, against a real
 * Nest 12 service:
 *
 *   - /healthz, /readyz, /status and /metrics on `admin_listen` (and not on
 *     `listen` then), or on `listen` without a bearer token when there is
 *     no `admin_listen`;
 *   - /readyz following an eager service that dies and comes back, and
 *     ignoring a lazy one;
 *   - /status figures after known traffic; a service on a closed port;
 *   - /metrics counters growing by exactly the traffic sent, histogram
 *     invariants, no raw path as a label, `promtool check metrics`.
 *
 * Every test starts its own gateway (and, when it kills it, its own Nest
 * service); the group shares one quiet Nest 12 service. Waiting is always a
 * poll of a condition with a generous deadline, never a sleep. */
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

#include "support/deadline.h"
#include "support/gateway.h"
#include "support/gwfixture.h"
#include "support/gwtest.h"
#include "support/http.h"
#include "support/nest.h"
#include "support/net.h"
#include "support/proc.h"

/* ---- configs ------------------------------------------------------------------- */

static const char ADMIN_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"generic_api\": [\"nest\"],\n"
    "  \"log\": { \"level\": \"info\", \"access\": true },\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"], \"timeout_ms\": 20000 } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/sum/:x\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"sum\" },\n"
    "      \"data\": \"$body\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/echo\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" } }\n"
    "  ] }\n";

/* ---- 1. where the admin API is served --------------------------------------------- */

static void admin_on_its_own_listener(void **state)
{
    (void)state;
    struct gwproc *gw = gwf_start(ADMIN_CONFIG, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    gwt_check_json(admin, "GET", "/healthz", NULL, 200, "{\"status\":\"ok\"}");
    gwt_poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", GWT_POLL_TIMEOUT_MS);
    json_decref(gwt_status(admin, NULL));
    gwt_scrape_t s = gwt_scrape(admin, NULL);
    gwt_expect_metric(&s, "patterngate_upstream_connections", "{\"service\":\"nest\",\"state\":\"connected\"}", 1);
    gwt_scrape_free(&s);
    /* HEAD answers like GET, without a body */
    struct http_response r = gwt_req_with(admin, "HEAD", "/healthz", NULL, NULL);
    if (r.status != 200 || r.body_len != 0)
        gwt_fail_response(&r, "HEAD /healthz (admin)", "expected 200 without a body");
    http_response_free(&r);
    /* the admin listener serves nothing else */
    gwt_check_error(admin, "GET", "/nope", NULL, 404, "not_found");
    gwt_check_error(admin, "GET", "/sum/1", NULL, 404, "not_found");
    r = gwt_req_with(admin, "POST", "/status", NULL, "{}");
    gwt_expect_error(&r, "POST /status (admin)", 405, "method_not_allowed");
    const char *allow = http_header(&r, "Allow");
    if (!allow || !strstr(allow, "GET"))
        gwt_fail_response(&r, "POST /status (admin)", "no Allow header naming GET");
    http_response_free(&r);
    gwt_check_error(admin, "DELETE", "/healthz", NULL, 405, "method_not_allowed");
    /* and the main listener has no admin paths then: normal routing */
    static const char *const paths[] = { "/healthz", "/readyz", "/status", "/metrics" };
    for (size_t i = 0; i < 4; i++) {
        char what[64];
        snprintf(what, sizeof what, "GET %s on listen", paths[i]);
        r = gwt_req_with(port, "GET", paths[i], NULL, NULL);
        gwt_expect_error(&r, what, 404, "not_found");
        if (!http_header(&r, "X-Request-Id"))
            gwt_fail_response(&r, what, "no X-Request-Id: not answered by the normal routing");
        http_response_free(&r);
    }
    gwt_check_json(port, "POST", "/sum/1", "[1,2]", 200, "3");
    gwf_stop();
}

static void admin_on_main_listener_with_auth(void **state)
{
    (void)state;
    static const char config[] =
        "{ \"listen\": \"127.0.0.1:${GW_PORT}\",\n"
        "  \"auth\": { \"bearer_tokens\": [\"t\"] },\n"
        "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
        "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/sum/:x\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"sum\" } } ] }\n";
    static const char *const token[] = { "Authorization: Bearer t", NULL };
    struct gwproc *gw = gwf_start(config, NULL, false, token);
    int port = gwproc_port(gw);
    /* no token needed for the probes; /status and /metrics need it here */
    gwt_check_json(port, "GET", "/healthz", NULL, 200, "{\"status\":\"ok\"}");
    gwt_poll_json(port, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", GWT_POLL_TIMEOUT_MS);
    const char *const closed[] = { "/status", "/metrics" };
    for (int i = 0; i < 2; i++) {
        struct http_response r = gwt_req_with(port, "GET", closed[i], NULL, NULL);
        gwt_expect_error(&r, closed[i], 401, "unauthorized");
        http_response_free(&r);
    }
    json_t *st = gwt_status(port, token);
    if (!json_is_null(json_object_get(st, "admin_listen")))
        gwt_fail_json(st, "/status: admin_listen should be null without admin_listen");
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *l = gwt_str(st, "listen");
    if (!l || strcmp(l, listen) != 0)
        gwt_fail_json(st, "/status: listen is not \"%s\"", listen);
    json_decref(st);
    gwt_scrape_t s = gwt_scrape(port, token);
    if (!json_object_get(s.types, "patterngate_build_info"))
        gwt_fail_scrape(&s, "no patterngate_build_info on listen without admin_listen");
    gwt_scrape_free(&s);
    /* but a route does */
    struct http_response r = gwt_req_with(port, "POST", "/sum/1", NULL, "[1,2]");
    gwt_expect_error(&r, "POST /sum/1 without a token", 401, "unauthorized");
    const char *www = http_header(&r, "WWW-Authenticate");
    if (!www || strncasecmp(www, "Bearer", 6) != 0)
        gwt_fail_response(&r, "POST /sum/1 without a token", "no WWW-Authenticate: Bearer");
    http_response_free(&r);
    r = gwt_req_with(port, "POST", "/sum/1", token, "[1,2]");
    gwt_expect_json(&r, "POST /sum/1 with the token", 200, "3");
    http_response_free(&r);
    /* the admin paths count as "admin" in the metrics, whatever listener */
    s = gwt_scrape(port, token);
    if (gwt_metric_or(&s, "patterngate_http_requests_total",
                  "{\"route\":\"admin\",\"method\":\"GET\",\"code\":\"200\"}", 0) < 1)
        gwt_fail_scrape(&s, "no admin request counted");
    gwt_scrape_free(&s);
    gwf_stop();
}

/* ---- 2. /readyz follows the eager services ---------------------------------------- */

static bool is_utc_time(json_t *v);

/* /status's first endpoint of service `name`; a new reference. */
static json_t *first_endpoint(int admin, const char *name, json_t **status)
{
    *status = gwt_status(admin, NULL);
    json_t *svc = json_object_get(json_object_get(*status, "services"), name);
    return json_array_get(json_object_get(svc, "endpoints"), 0);
}

/* Polls /status until the endpoint of `name` is down (disconnected_since
 * and next_attempt_at are times) or up (both null). */
static void poll_endpoint_down(int admin, const char *name, bool down)
{
    int64_t d = deadline_after(GWT_POLL_TIMEOUT_MS);
    for (;;) {
        json_t *status;
        json_t *ep = first_endpoint(admin, name, &status);
        json_t *since = json_object_get(ep, "disconnected_since"), *next = json_object_get(ep, "next_attempt_at");
        bool is_down = is_utc_time(since) && is_utc_time(next);
        bool is_up = json_is_null(since) && json_is_null(next);
        if (down ? is_down : is_up) {
            json_decref(status);
            return;
        }
        if (deadline_remaining_ms(d) <= 0)
            gwt_fail_json(status, "/status: endpoint of %s not %s in time", name, down ? "down" : "up");
        json_decref(status);
        deadline_pause_ms(50);
    }
}

static void readyz_flips_with_the_service(void **state)
{
    (void)state;
    static const char config[] =
        "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
        "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] },\n"
        "                \"later\": { \"endpoints\": [\"${DOWN_ADDR}\"], \"connect\": \"lazy\" } },\n"
        "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"sum\" } },\n"
        "                { \"method\": \"POST\", \"path\": \"/later\", \"service\": \"later\",\n"
        "                  \"pattern\": { \"cmd\": \"sum\" } } ] }\n";
    gwf.nest = calloc(1, sizeof *gwf.nest);
    assert_non_null(gwf.nest);
    struct nest_options no = { .quiet = true };
    assert_int_equal(nest_start("v12", &no, gwf.nest), 0);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", gwf.nest->port);
    struct gwproc *gw = gwf_start(config, addr, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    /* the lazy service on a closed port does not count */
    gwt_poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", GWT_POLL_TIMEOUT_MS);
    gwt_check_error(port, "POST", "/later", "[1]", 503, "upstream_unavailable");
    gwt_check_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}");
    /* the eager one dies */
    nest_kill(gwf.nest);
    gwt_poll_json(admin, "GET", "/readyz", NULL, 503, "{\"status\":\"not_ready\",\"services\":[\"nest\"]}",
              GWT_POLL_TIMEOUT_MS);
    gwt_check_json(admin, "GET", "/healthz", NULL, 200, "{\"status\":\"ok\"}");
    /* /status says since when it is down and when the next attempt is */
    poll_endpoint_down(admin, "nest", true);
    /* and comes back on its port */
    assert_int_equal(nest_restart_same_port(gwf.nest), 0);
    gwt_poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", GWT_POLL_TIMEOUT_MS);
    poll_endpoint_down(admin, "nest", false);
    gwt_check_json(port, "POST", "/sum", "[2,3]", 200, "5");
    gwf_stop();
}

/* ---- 3. /status ------------------------------------------------------------------ */

/* What `patterngate --version` prints, without the trailing newline. */
static char *version_output(void)
{
    const char *argv[] = { PG_BINARY, "--version", NULL };
    struct proc_options po = { .stdout_mode = PROC_STDIO_CAPTURE, .stderr_mode = PROC_STDIO_CAPTURE };
    struct proc *p;
    assert_int_equal(proc_spawn(argv, &po, &p), 0);
    char *out = NULL, *err = NULL;
    int status = proc_read_all(p, 30000, &out, &err);
    proc_free(p);
    if (status != 0)
        fail_msg("patterngate --version exited %d: %s", status, err ? err : "");
    free(err);
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        out[--n] = '\0';
    return out;
}

static bool is_utc_time(json_t *v)
{
    const char *t = json_string_value(v);
    int y, mo, d, h, mi;
    double sec;
    return t && strlen(t) >= 20 && t[strlen(t) - 1] == 'Z' &&
           sscanf(t, "%4d-%2d-%2dT%2d:%2d:%lf", &y, &mo, &d, &h, &mi, &sec) == 6 && y >= 2020;
}

static void status_after_requests(void **state)
{
    (void)state;
    static const char config[] =
        "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
        "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] },\n"
        "                \"down\": { \"endpoints\": [\"${DOWN_ADDR}\"] } },\n"
        "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/sum/:x\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"sum\" } },\n"
        "                { \"method\": \"POST\", \"path\": \"/down\", \"service\": \"down\",\n"
        "                  \"pattern\": { \"cmd\": \"sum\" } } ] }\n";
    struct gwproc *gw = gwf_start(config, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    /* wait for the connection before counting requests on it */
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    for (;;) {
        json_t *st = gwt_status(admin, NULL);
        const char *state_s = gwt_str(gwt_status_conn(st, "nest"), "state");
        bool up = state_s && strcmp(state_s, "connected") == 0;
        if (!up && deadline_remaining_ms(deadline) == 0)
            gwt_fail_json(st, "the nest connection never became connected");
        json_decref(st);
        if (up)
            break;
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
    }
    enum { N = 5 };
    for (int i = 0; i < N; i++)
        gwt_check_json(port, "POST", "/sum/1", "[1,2]", 200, "3");

    json_t *st = gwt_status(admin, NULL);
    char *version = version_output();
    const char *v = gwt_str(st, "version");
    char with_name[128];
    snprintf(with_name, sizeof with_name, "patterngate %s", v ? v : "");
    if (!v || !*v || (strcmp(version, v) != 0 && strcmp(version, with_name) != 0))
        gwt_fail_json(st, "/status version is not what `patterngate --version` prints (%s)", version);
    free(version);
    json_t *up = json_object_get(st, "uptime_seconds");
    if (!json_is_number(up) || json_number_value(up) < 0 || json_number_value(up) > 3600)
        gwt_fail_json(st, "/status uptime_seconds is not a number of seconds");
    gwt_expect_int(st, "inflight", 0, "/status");
    if (!json_is_false(json_object_get(st, "draining")))
        gwt_fail_json(st, "/status draining is not false");
    json_t *config_st = json_object_get(st, "config");
    const char *cfg = gwt_str(config_st, "file");
    if (!cfg || strcmp(cfg, gw->config_path) != 0)
        gwt_fail_json(st, "/status config.file is not the file path %s", gw->config_path);
    if (!is_utc_time(json_object_get(config_st, "loaded_at")))
        gwt_fail_json(st, "/status config.loaded_at is not a UTC time");
    if (!json_is_null(json_object_get(config_st, "last_reload_error")) ||
        !json_is_null(json_object_get(config_st, "last_reload_error_at")))
        gwt_fail_json(st, "/status config.last_reload_error(_at) are not null without a failed reload");
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    if (!gwt_str(st, "listen") || strcmp(gwt_str(st, "listen"), addr) != 0)
        gwt_fail_json(st, "/status listen is not %s", addr);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", admin);
    if (!gwt_str(st, "admin_listen") || strcmp(gwt_str(st, "admin_listen"), addr) != 0)
        gwt_fail_json(st, "/status admin_listen is not %s", addr);
    gwt_expect_int(st, "workers", 1, "/status");
    gwt_expect_int(st, "workers_answered", 1, "/status");
    gwt_expect_int(st, "routes", 2, "/status");
    if (!json_is_integer(json_object_get(st, "http_connections")))
        gwt_fail_json(st, "/status http_connections is not an integer");

    json_t *svc = json_object_get(json_object_get(st, "services"), "nest");
    if (!svc || json_object_size(json_object_get(st, "services")) != 2)
        gwt_fail_json(st, "/status services is not {nest, down}");
    if (!gwt_str(svc, "connect") || strcmp(gwt_str(svc, "connect"), "eager") != 0)
        gwt_fail_json(st, "/status services.nest.connect is not \"eager\"");
    gwt_expect_int(svc, "inflight", 0, "services.nest");
    gwt_expect_int(svc, "late_replies", 0, "services.nest");
    json_t *eps = json_object_get(svc, "endpoints");
    json_t *ep = json_array_get(eps, 0);
    if (json_array_size(eps) != 1 || !gwt_str(ep, "address") ||
        strcmp(gwt_str(ep, "address"), gwf.nest_addr) != 0 ||
        !json_is_false(json_object_get(ep, "tls")) || !json_is_null(json_object_get(ep, "ejected_until")))
        gwt_fail_json(st, "/status services.nest.endpoints is not [{address %s, tls false, ejected_until null}]",
                  gwf.nest_addr);
    if (json_array_size(json_object_get(ep, "connections")) != 1)
        gwt_fail_json(st, "/status: the nest endpoint has not exactly one connection (pool_size 1)");
    json_t *c = gwt_status_conn(st, "nest");
    if (!gwt_str(c, "state") || strcmp(gwt_str(c, "state"), "connected") != 0)
        gwt_fail_json(st, "the nest connection is not connected");
    gwt_expect_int(c, "requests", N, "services.nest connection");
    gwt_expect_int(c, "inflight", 0, "services.nest connection");
    gwt_expect_int(c, "errors", 0, "services.nest connection");
    gwt_expect_int(c, "reconnects", 0, "services.nest connection");
    gwt_expect_int(c, "worker", 0, "services.nest connection");
    if (!json_is_null(json_object_get(c, "last_error")) || !json_is_null(json_object_get(c, "last_error_at")))
        gwt_fail_json(st, "the nest connection has a last_error");
    if (!is_utc_time(json_object_get(c, "connected_since")))
        gwt_fail_json(st, "the nest connection's connected_since is not a UTC time");
    json_decref(st);

    /* the service on a closed port: disconnected (between attempts), refused */
    deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    for (;;) {
        st = gwt_status(admin, NULL);
        c = gwt_status_conn(st, "down");
        const char *state_s = gwt_str(c, "state"), *err = gwt_str(c, "last_error");
        bool done = state_s && strcmp(state_s, "disconnected") == 0 && err &&
                    strcasestr(err, "connection refused") && is_utc_time(json_object_get(c, "last_error_at"));
        if (done) {
            if (!json_is_null(json_object_get(c, "connected_since")))
                gwt_fail_json(st, "the down connection has a connected_since");
            gwt_expect_int(c, "requests", 0, "services.down connection");
            json_decref(st);
            break;
        }
        if (deadline_remaining_ms(deadline) == 0)
            gwt_fail_json(st, "services.down never showed a disconnected connection with last_error "
                          "\"...connection refused...\" and a last_error_at");
        json_decref(st);
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
    }
    gwf_stop();
}

/* ---- 4. /metrics ------------------------------------------------------------------ */

#define SUM_OK "{\"route\":\"/sum/:x\",\"method\":\"POST\",\"code\":\"200\"}"
#define UNMATCHED "{\"route\":\"unmatched\",\"method\":\"GET\",\"code\":\"404\"}"
#define UP_OK "{\"service\":\"nest\",\"kind\":\"send\",\"outcome\":\"ok\"}"

static void metrics_count_exactly(void **state)
{
    (void)state;
    struct gwproc *gw = gwf_start(ADMIN_CONFIG, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    gwt_poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", GWT_POLL_TIMEOUT_MS);
    gwt_scrape_t before = gwt_scrape(admin, NULL);
    enum { N = 7, MISSES = 3 };
    for (int i = 1; i <= N; i++) {
        char path[32];
        snprintf(path, sizeof path, "/sum/%d", i);
        gwt_check_json(port, "POST", path, "[1,2]", 200, "3");
    }
    for (int i = 1; i <= MISSES; i++) {
        char path[32];
        snprintf(path, sizeof path, "/nope/%d", i);
        gwt_check_error(port, "GET", path, NULL, 404, "not_found");
    }
    /* the counters may be written just after the response: poll until they
     * have reached the traffic, then they must equal it exactly */
    gwt_scrape_t after;
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    for (;;) {
        after = gwt_scrape(admin, NULL);
        bool reached =
            gwt_metric_or(&after, "patterngate_http_requests_total", SUM_OK, 0) -
                    gwt_metric_or(&before, "patterngate_http_requests_total", SUM_OK, 0) >= N &&
            gwt_metric_or(&after, "patterngate_http_requests_total", UNMATCHED, 0) -
                    gwt_metric_or(&before, "patterngate_http_requests_total", UNMATCHED, 0) >= MISSES &&
            gwt_metric_or(&after, "patterngate_upstream_requests_total", UP_OK, 0) -
                    gwt_metric_or(&before, "patterngate_upstream_requests_total", UP_OK, 0) >= N;
        if (reached || deadline_remaining_ms(deadline) == 0)
            break;
        gwt_scrape_free(&after);
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
    }
    struct {
        const char *name, *labels;
        double delta;
    } const deltas[] = {
        { "patterngate_http_requests_total", SUM_OK, N },
        { "patterngate_http_requests_total", UNMATCHED, MISSES },
        { "patterngate_upstream_requests_total", UP_OK, N },
        { "patterngate_http_request_duration_seconds_count", "{\"route\":\"/sum/:x\"}", N },
        { "patterngate_http_request_duration_seconds_count", "{\"route\":\"unmatched\"}", MISSES },
        { "patterngate_upstream_request_duration_seconds_count", "{\"service\":\"nest\"}", N },
    };
    for (size_t i = 0; i < sizeof deltas / sizeof deltas[0]; i++) {
        double d = gwt_metric(&after, deltas[i].name, deltas[i].labels) -
                   gwt_metric_or(&before, deltas[i].name, deltas[i].labels, 0);
        if (d != deltas[i].delta)
            gwt_fail_scrape(&after, "%s%s grew by %g, expected exactly %g", deltas[i].name,
                        deltas[i].labels, d, deltas[i].delta);
    }
    /* no raw path as a label; histograms consistent */
    static const char *const routes[] = { "/sum/:x", "/echo", "generic", "admin", "unmatched", NULL };
    gwt_check_route_labels(&after, routes);
    gwt_check_histograms(&after);
    /* every family the SPEC names */
    static const char *const families[] = {
        "patterngate_http_requests_total", "patterngate_http_request_duration_seconds",
        "patterngate_http_connections", "patterngate_upstream_requests_total",
        "patterngate_upstream_request_duration_seconds", "patterngate_upstream_inflight",
        "patterngate_upstream_connections", "patterngate_upstream_connects_total",
        "patterngate_upstream_bytes_total", "patterngate_upstream_late_replies_total",
        "patterngate_upstream_endpoint_ejected", "patterngate_build_info",
        "patterngate_config_last_reload_successful",
        "patterngate_config_last_reload_success_timestamp_seconds",
        "patterngate_config_reloads_total", "process_cpu_seconds_total",
        "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds",
        "process_max_fds", "process_start_time_seconds", NULL,
    };
    for (size_t i = 0; families[i]; i++)
        if (!json_object_get(after.types, families[i]))
            gwt_fail_scrape(&after, "no # TYPE line for %s", families[i]);
    /* gauges and process figures */
    gwt_expect_metric(&after, "patterngate_upstream_connections", "{\"service\":\"nest\",\"state\":\"connected\"}", 1);
    gwt_expect_metric(&after, "patterngate_upstream_inflight", "{\"service\":\"nest\"}", 0);
    gwt_expect_metric(&after, "patterngate_upstream_late_replies_total", "{\"service\":\"nest\"}", 0);
    gwt_expect_metric(&after, "patterngate_config_last_reload_successful", "{}", 1);
    if (gwt_metric(&after, "patterngate_upstream_bytes_total", "{\"service\":\"nest\",\"direction\":\"sent\"}") <= 0 ||
        gwt_metric(&after, "patterngate_upstream_bytes_total", "{\"service\":\"nest\",\"direction\":\"received\"}") <= 0)
        gwt_fail_scrape(&after, "no upstream bytes counted after %d requests", N);
    char *version = version_output();
    char build[160];
    snprintf(build, sizeof build, "{\"version\":\"%s\"}",
             strncmp(version, "patterngate ", 12) == 0 ? version + 12 : version);
    free(version);
    gwt_expect_metric(&after, "patterngate_build_info", build, 1);
    if (gwt_metric(&after, "process_open_fds", "{}") <= 0)
        gwt_fail_scrape(&after, "process_open_fds is not > 0");
    if (gwt_metric(&after, "process_max_fds", "{}") < gwt_metric(&after, "process_open_fds", "{}"))
        gwt_fail_scrape(&after, "process_max_fds is below process_open_fds");
    if (gwt_metric(&after, "process_resident_memory_bytes", "{}") <= 1e6)
        gwt_fail_scrape(&after, "process_resident_memory_bytes is not > 1e6");
    if (gwt_metric(&after, "process_virtual_memory_bytes", "{}") < gwt_metric(&after, "process_resident_memory_bytes", "{}"))
        gwt_fail_scrape(&after, "process_virtual_memory_bytes is below the resident size");
    double now = (double)time(NULL);
    double started = gwt_metric(&after, "process_start_time_seconds", "{}");
    if (started < now - 3600 || started > now + 5)
        gwt_fail_scrape(&after, "process_start_time_seconds %.17g is not a recent epoch time (now %.0f)", started, now);
    bool promtool = gwt_promtool_check(&after);
    /* the config was loaded successfully at start: its time is known (as
     * Prometheus's own prometheus_config_last_reload_success_timestamp_seconds) */
    double loaded = gwt_metric(&after, "patterngate_config_last_reload_success_timestamp_seconds", "{}");
    if (loaded < started - 5 || loaded > now + 5)
        gwt_fail_scrape(&after, "patterngate_config_last_reload_success_timestamp_seconds is %.17g, expected "
                            "the time the config was loaded at start (about %.0f)", loaded, started);
    gwt_scrape_free(&before);
    gwt_scrape_free(&after);
    gwf_stop();
    if (!promtool)
        skip();
}

/* ---- main ---------------------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_teardown(fn, gwf_test_teardown)

int main(void)
{
    const char *filter = getenv("PG_TEST_FILTER"); /* e.g. "reload_*", for debugging */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        T(admin_on_its_own_listener),
        T(admin_on_main_listener_with_auth),
        T(readyz_flips_with_the_service),
        T(status_after_requests),
        T(metrics_count_exactly),
    };
    return cmocka_run_group_tests_name("admin_nest12", tests, gwf_group_setup, gwf_group_teardown);
}
