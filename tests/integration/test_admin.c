/* The admin API, the access log, the drain and the config reload of the
 * built binary, driven as a user would, against a real Nest 12 service:
 *
 *   - /healthz, /readyz, /status and /metrics on `admin_listen` (and not on
 *     `listen` then), or on `listen` without a bearer token when there is
 *     no `admin_listen`;
 *   - /readyz following an eager service that dies and comes back, and
 *     ignoring a lazy one;
 *   - /status figures after known traffic; a service on a closed port;
 *   - /metrics counters growing by exactly the traffic sent, histogram
 *     invariants, no raw path as a label, `promtool check metrics`;
 *   - SIGTERM with a slow request in flight;
 *   - one JSON access line per request;
 *   - reload by SIGHUP and by a new file rename(2)d over the config,
 *     connections kept, and broken files that leave the old config running.
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
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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
#include "support/http.h"
#include "support/nest.h"
#include "support/net.h"
#include "support/proc.h"

#define REQ_TIMEOUT_MS 30000   /* one HTTP exchange, on a loaded machine */
#define POLL_TIMEOUT_MS 30000  /* waiting for a condition */
#define POLL_PAUSE_MS 50       /* between two polls of a condition */
#define PROMTOOL "/usr/bin/promtool"

/* ---- fixtures ------------------------------------------------------------ */

/* The running test's gateway and own Nest service (killed by the teardown
 * when the test failed before it could stop them). */
static struct gwproc *g_gw;
static struct nest_service *g_nest;
/* The group's Nest service, "127.0.0.1:<port>". */
static const char *g_nest_addr;

static int group_setup(void **state)
{
    if (nest_group_setup_v12(state) != 0)
        return -1;
    struct nest_group *ng = *state;
    g_nest_addr = ng->address;
    return 0;
}

static int group_teardown(void **state)
{
    g_nest_addr = NULL;
    return nest_group_teardown(state);
}

static void cm_remove(void);

static int test_teardown(void **state)
{
    (void)state;
    gwproc_free(g_gw);
    g_gw = NULL;
    if (g_nest)
        nest_stop(g_nest);
    free(g_nest);
    g_nest = NULL;
    cm_remove();
    return 0;
}

static void print_log_tail(void)
{
    if (g_gw)
        gwproc_print_log(g_gw, "at the failure", 60);
}

/* Starts the test's gateway on `config`, NEST_ADDR set to `nest_addr` (the
 * group's service when NULL) and DOWN_ADDR to a closed port of 127.0.0.1,
 * readiness probed on the admin port when `on_admin`. */
static struct gwproc *start_gw(const char *config, const char *nest_addr, bool on_admin,
                               const char *const *ready_headers)
{
    char nest_env[64], down_env[64];
    snprintf(nest_env, sizeof nest_env, "NEST_ADDR=%s", nest_addr ? nest_addr : g_nest_addr);
    int down = testnet_free_port();
    assert_true(down > 0);
    snprintf(down_env, sizeof down_env, "DOWN_ADDR=127.0.0.1:%d", down);
    const char *env[] = { nest_env, down_env, NULL };
    struct gwproc_options o = { .env = env, .ready_on_admin = on_admin,
                                .ready_headers = ready_headers };
    int rc = gwproc_start(config, &o, &g_gw);
    if (rc != 0) {
        g_gw = NULL;
        fail_msg("the gateway did not start: %s", strerror(-rc));
    }
    return g_gw;
}

/* SIGTERM; the gateway must exit 0 (an ASan build exits non-zero on a leak). */
static void stop_gw(void)
{
    int status = gwproc_stop(g_gw, GWPROC_STOP_TIMEOUT_MS);
    if (status != 0) {
        char buf[64];
        gwproc_print_log(g_gw, "stopping", 60);
        fail_msg("the gateway ended with %s after SIGTERM, expected exit 0",
                 proc_status_str(status, buf, sizeof buf));
    }
    gwproc_free(g_gw);
    g_gw = NULL;
}

/* ---- requests and expectations -------------------------------------------- */

static void fail_response(const struct http_response *r, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

static void fail_response(const struct http_response *r, const char *what, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *dump = http_response_dump(r, 3000);
    print_log_tail();
    fprintf(stderr, "---- response ----\n%s\n---- end of response ----\n", dump ? dump : "");
    free(dump);
    fail_msg("%s: %s", what, msg);
    abort(); /* not reached */
}

/* One request on a new connection; fails the test if no response came. */
static struct http_response request(int port, const char *method, const char *path,
                                    const char *const *headers, const char *body)
{
    struct http_request req = { .method = method, .path = path, .headers = headers, .body = body,
                                .body_len = body ? strlen(body) : 0 };
    struct http_response resp;
    int rc = http_fetch(port, &req, &resp, REQ_TIMEOUT_MS);
    if (rc != 0) {
        print_log_tail();
        fail_msg("%s %s on port %d: no response: %s", method, path, port, strerror(-rc));
    }
    return resp;
}

static json_t *parse_or_fail(const struct http_response *r, const char *what)
{
    json_error_t err;
    json_t *j = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, &err);
    if (!j)
        fail_response(r, what, "the body is not JSON: %s", err.text);
    return j;
}

/* Status, a JSON Content-Type, and a body equal (as JSON) to `expected`. */
static void expect_json(const struct http_response *r, const char *what, int status,
                        const char *expected)
{
    if (r->status != status)
        fail_response(r, what, "status %d, expected %d with %s", r->status, status, expected);
    const char *ct = http_header(r, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0)
        fail_response(r, what, "Content-Type is %s, expected application/json", ct ? ct : "absent");
    json_t *want = json_loads(expected, JSON_DECODE_ANY, NULL);
    assert_non_null(want);
    json_t *got = parse_or_fail(r, what);
    bool same = json_equal(got, want);
    json_decref(got);
    json_decref(want);
    if (!same)
        fail_response(r, what, "the body is not %s", expected);
}

/* A gateway error body {"statusCode": status, "error": code, "message": "..."}. */
static void expect_error(const struct http_response *r, const char *what, int status,
                         const char *code)
{
    if (r->status != status)
        fail_response(r, what, "status %d, expected %d %s", r->status, status, code);
    json_t *j = parse_or_fail(r, what);
    json_t *sc = json_object_get(j, "statusCode");
    json_t *e = json_object_get(j, "error");
    json_t *m = json_object_get(j, "message");
    bool ok = json_is_integer(sc) && json_integer_value(sc) == status && json_is_string(e) &&
              strcmp(json_string_value(e), code) == 0 && json_is_string(m) &&
              json_string_length(m) > 0;
    json_decref(j);
    if (!ok)
        fail_response(r, what, "expected the error body {\"statusCode\":%d,\"error\":\"%s\",\"message\":...}",
                      status, code);
}

static void check_json(int port, const char *method, const char *path, const char *body,
                       int status, const char *expected)
{
    char what[256];
    snprintf(what, sizeof what, "%s %s (port %d)", method, path, port);
    struct http_response r = request(port, method, path, NULL, body);
    expect_json(&r, what, status, expected);
    http_response_free(&r);
}

static void check_error(int port, const char *method, const char *path, const char *body,
                        int status, const char *code)
{
    char what[256];
    snprintf(what, sizeof what, "%s %s (port %d)", method, path, port);
    struct http_response r = request(port, method, path, NULL, body);
    expect_error(&r, what, status, code);
    http_response_free(&r);
}

/* Polls until `method path` answers `status` with a body equal (as JSON) to
 * `expected`; fails after timeout_ms showing the last response. */
static void poll_json(int port, const char *method, const char *path, const char *body,
                      int status, const char *expected, int timeout_ms)
{
    json_t *want = json_loads(expected, JSON_DECODE_ANY, NULL);
    assert_non_null(want);
    int64_t deadline = deadline_after(timeout_ms);
    for (;;) {
        struct http_request req = { .method = method, .path = path, .body = body,
                                    .body_len = body ? strlen(body) : 0 };
        struct http_response r;
        int rc = http_fetch(port, &req, &r, REQ_TIMEOUT_MS);
        bool done = false;
        if (rc == 0 && r.status == status) {
            json_t *got = json_loadb(r.body, r.body_len, JSON_DECODE_ANY, NULL);
            done = got && json_equal(got, want);
            json_decref(got);
        }
        if (done) {
            http_response_free(&r);
            json_decref(want);
            return;
        }
        if (deadline_remaining_ms(deadline) == 0) {
            char what[256];
            snprintf(what, sizeof what, "%s %s (port %d), polled for %d ms", method, path, port,
                     timeout_ms);
            if (rc == 0)
                expect_json(&r, what, status, expected);
            print_log_tail();
            fail_msg("%s: the last attempt got no response: %s", what, strerror(-rc));
        }
        if (rc == 0)
            http_response_free(&r);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
}

/* Polls until `method path` answers `status`, then checks the error body. */
static void poll_error(int port, const char *method, const char *path, const char *body,
                       int status, const char *code, int timeout_ms)
{
    int64_t deadline = deadline_after(timeout_ms);
    for (;;) {
        struct http_request req = { .method = method, .path = path, .body = body,
                                    .body_len = body ? strlen(body) : 0 };
        struct http_response r;
        int rc = http_fetch(port, &req, &r, REQ_TIMEOUT_MS);
        if (rc == 0 && (r.status == status || deadline_remaining_ms(deadline) == 0)) {
            char what[256];
            snprintf(what, sizeof what, "%s %s (port %d), polled for %d ms", method, path, port,
                     timeout_ms);
            expect_error(&r, what, status, code);
            http_response_free(&r);
            return;
        }
        if (rc != 0 && deadline_remaining_ms(deadline) == 0) {
            print_log_tail();
            fail_msg("%s %s: the last attempt got no response: %s", method, path, strerror(-rc));
        }
        if (rc == 0)
            http_response_free(&r);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
}

/* GET /status on `port` with the header lines (NULL: none): 200 and a
 * JSON object (caller json_decref's). */
static json_t *get_status_with(int port, const char *const *headers)
{
    struct http_response r = request(port, "GET", "/status", headers, NULL);
    if (r.status != 200)
        fail_response(&r, "GET /status", "status %d, expected 200", r.status);
    json_t *j = parse_or_fail(&r, "GET /status");
    if (!json_is_object(j))
        fail_response(&r, "GET /status", "not a JSON object");
    http_response_free(&r);
    return j;
}

static json_t *get_status(int port) { return get_status_with(port, NULL); }

static void fail_json(const json_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void fail_json(const json_t *j, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *text = json_dumps(j, JSON_INDENT(1) | JSON_ENCODE_ANY);
    print_log_tail();
    fprintf(stderr, "---- JSON ----\n%s\n---- end of JSON ----\n", text ? text : "(null)");
    free(text);
    fail_msg("%s", msg);
    abort();
}

/* The first connection of the first endpoint of `service` in a /status. */
static json_t *status_conn(json_t *status, const char *service)
{
    json_t *eps = json_object_get(json_object_get(json_object_get(status, "services"), service),
                                  "endpoints");
    json_t *conns = json_object_get(json_array_get(eps, 0), "connections");
    json_t *c = json_array_get(conns, 0);
    if (!json_is_object(c))
        fail_json(status, "/status: no services.%s.endpoints[0].connections[0] object", service);
    return c;
}

static const char *str_member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void expect_int_member(json_t *obj, const char *key, long long want, const char *where)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) != want)
        fail_json(obj, "%s: \"%s\" is not %lld", where, key, want);
}

/* ---- a request running on a thread of its own ---------------------------- */

typedef struct bg_request {
    int port;
    const char *path;
    char body[256];
    pthread_t thread;
    atomic_int sent;
    atomic_int done;
    int rc;
    struct http_response resp;
    int64_t sent_at_ms;       /* before the request was written */
    int64_t done_at_ms;
} bg_request_t;

static void *bg_main(void *arg)
{
    bg_request_t *b = arg;
    struct http_conn *c;
    b->sent_at_ms = deadline_now_ms();
    b->rc = http_connect(b->port, REQ_TIMEOUT_MS, &c);
    if (b->rc == 0) {
        struct http_request req = { .method = "POST", .path = b->path, .body = b->body,
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

/* On the heap: a test failing while the thread runs leaks it rather than
 * let the thread write into a dead stack frame. */
static bg_request_t *bg_start(int port, const char *path, const char *body)
{
    bg_request_t *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->port = port;
    b->path = path;
    snprintf(b->body, sizeof b->body, "%s", body);
    assert_int_equal(pthread_create(&b->thread, NULL, bg_main, b), 0);
    return b;
}

static void bg_join(bg_request_t *b)
{
    pthread_join(b->thread, NULL);
    if (b->rc != 0) {
        print_log_tail();
        fail_msg("POST %s (background): no response: %s", b->path, strerror(-b->rc));
    }
}

static void bg_free(bg_request_t *b)
{
    http_response_free(&b->resp);
    free(b);
}

/* ---- Prometheus text ------------------------------------------------------- */

typedef struct sample {
    char *name;
    json_t *labels;   /* object: label -> string */
    double value;
} sample_t;

typedef struct scrape {
    char *text;
    sample_t *v;
    size_t n, cap;
    json_t *types;    /* family -> "counter", "gauge", "histogram"... */
} scrape_t;

static void scrape_free(scrape_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].name);
        json_decref(s->v[i].labels);
    }
    free(s->v);
    free(s->text);
    json_decref(s->types);
    memset(s, 0, sizeof *s);
}

static void bad_line(const scrape_t *s, const char *line, size_t len, const char *why)
{
    fprintf(stderr, "---- scrape ----\n%s\n---- end of scrape ----\n", s->text);
    fail_msg("/metrics: %s in the line: %.*s", why, (int)len, line);
}

static bool name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Parses one sample line of the text format (our own strict reader). */
static void parse_sample(scrape_t *s, const char *line, size_t len)
{
    const char *p = line, *end = line + len;
    while (p < end && name_char(*p, p == line))
        p++;
    if (p == line)
        bad_line(s, line, len, "no metric name");
    sample_t smp = { .name = strndup(line, (size_t)(p - line)), .labels = json_object() };
    if (p < end && *p == '{') {
        p++;
        while (p < end && *p != '}') {
            const char *k = p;
            while (p < end && name_char(*p, p == k))
                p++;
            if (p == k || p + 1 >= end || p[0] != '=' || p[1] != '"')
                bad_line(s, line, len, "a malformed label");
            char *key = strndup(k, (size_t)(p - k));
            p += 2;
            char val[1024];
            size_t vn = 0;
            while (p < end && *p != '"') {
                char c = *p++;
                if (c == '\\') {
                    if (p >= end)
                        bad_line(s, line, len, "a dangling escape");
                    c = *p++;
                    if (c == 'n')
                        c = '\n';
                    else if (c != '\\' && c != '"')
                        bad_line(s, line, len, "an invalid escape in a label value");
                }
                if (vn + 1 < sizeof val)
                    val[vn++] = c;
            }
            if (p >= end)
                bad_line(s, line, len, "an unterminated label value");
            p++;
            val[vn] = '\0';
            if (json_object_get(smp.labels, key))
                bad_line(s, line, len, "a repeated label");
            json_object_set_new(smp.labels, key, json_string(val));
            free(key);
            if (p < end && *p == ',')
                p++;
        }
        if (p >= end)
            bad_line(s, line, len, "an unterminated label set");
        p++;
    }
    if (p >= end || *p != ' ')
        bad_line(s, line, len, "no space before the value");
    p++;
    char num[64];
    size_t nn = 0;
    while (p < end && *p != ' ' && nn + 1 < sizeof num)
        num[nn++] = *p++;
    num[nn] = '\0';
    char *e;
    smp.value = strtod(num, &e);
    if (nn == 0 || *e != '\0')
        bad_line(s, line, len, "a value that is not a number");
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        assert_non_null(s->v);
    }
    s->v[s->n++] = smp;
}

static void parse_scrape(scrape_t *s)
{
    s->types = json_object();
    for (const char *line = s->text; *line;) {
        const char *nl = strchr(line, '\n');
        if (!nl)
            bad_line(s, line, strlen(line), "the last line has no newline");
        size_t len = (size_t)(nl - line);
        if (len == 0) {
            /* empty lines are allowed */
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[256], type[32];
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%.*s", (int)len, line);
            if (sscanf(tmp, "# TYPE %255s %31s", name, type) != 2)
                bad_line(s, line, len, "a malformed TYPE line");
            json_object_set_new(s->types, name, json_string(type));
        } else if (line[0] != '#') {
            parse_sample(s, line, len);
        }
        line = nl + 1;
    }
}

/* GET /metrics: 200, the 0.0.4 text Content-Type, parsed. */
static scrape_t scrape_with(int port, const char *const *headers)
{
    struct http_response r = request(port, "GET", "/metrics", headers, NULL);
    if (r.status != 200)
        fail_response(&r, "GET /metrics", "status %d, expected 200", r.status);
    const char *ct = http_header(&r, "Content-Type");
    if (!ct || strncmp(ct, "text/plain", 10) != 0 || !strstr(ct, "version=0.0.4"))
        fail_response(&r, "GET /metrics", "Content-Type is %s, expected text/plain; version=0.0.4",
                      ct ? ct : "absent");
    scrape_t s = { .text = strndup(r.body, r.body_len) };
    http_response_free(&r);
    parse_scrape(&s);
    return s;
}

static scrape_t scrape(int port) { return scrape_with(port, NULL); }

/* The value of the sample `name` whose label set is exactly `labels` (a
 * JSON object text, "{}" for none); `absent` when there is none. */
static double metric_or(const scrape_t *s, const char *name, const char *labels, double absent)
{
    json_t *want = json_loads(labels, 0, NULL);
    assert_non_null(want);
    double v = absent;
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i].name, name) == 0 && json_equal(s->v[i].labels, want)) {
            v = s->v[i].value;
            break;
        }
    }
    json_decref(want);
    return v;
}

/* The same, failing the test when the sample is absent. */
static double metric(const scrape_t *s, const char *name, const char *labels)
{
    double v = metric_or(s, name, labels, NAN);
    if (isnan(v)) {
        fprintf(stderr, "---- scrape ----\n%s\n---- end of scrape ----\n", s->text);
        fail_msg("/metrics has no sample %s%s", name, labels);
    }
    return v;
}

static void expect_metric(const scrape_t *s, const char *name, const char *labels, double want)
{
    double v = metric(s, name, labels);
    if (v != want) {
        fprintf(stderr, "---- scrape ----\n%s\n---- end of scrape ----\n", s->text);
        fail_msg("/metrics: %s%s is %.17g, expected %.17g", name, labels, v, want);
    }
}

static void fail_scrape(const scrape_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void fail_scrape(const scrape_t *s, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "---- scrape ----\n%s\n---- end of scrape ----\n", s->text);
    fail_msg("/metrics: %s", msg);
    abort();
}

/* The label set without `le`, as canonical text (caller frees). */
static char *series_key(const json_t *labels)
{
    json_t *copy = json_deep_copy(labels);
    json_object_del(copy, "le");
    char *key = json_dumps(copy, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(copy);
    return key;
}

/* Every histogram series: buckets non-decreasing in `le` order, a +Inf
 * bucket equal to _count, and a _sum. */
static void check_histograms(const scrape_t *s)
{
    const char *family;
    json_t *type;
    size_t checked = 0;
    json_object_foreach(s->types, family, type) {
        if (strcmp(json_string_value(type), "histogram") != 0)
            continue;
        char bucket[300], count[300], sum[300];
        snprintf(bucket, sizeof bucket, "%s_bucket", family);
        snprintf(count, sizeof count, "%s_count", family);
        snprintf(sum, sizeof sum, "%s_sum", family);
        for (size_t i = 0; i < s->n; i++) {
            if (strcmp(s->v[i].name, count) != 0)
                continue;
            checked++;
            char *key = series_key(s->v[i].labels);
            double count_v = s->v[i].value, inf = NAN, prev_le = -INFINITY, prev_v = -1;
            size_t buckets = 0;
            bool has_sum = false;
            for (size_t k = 0; k < s->n; k++) {
                char *kk = series_key(s->v[k].labels);
                bool same = strcmp(kk, key) == 0;
                free(kk);
                if (!same)
                    continue;
                if (strcmp(s->v[k].name, sum) == 0)
                    has_sum = true;
                if (strcmp(s->v[k].name, bucket) != 0)
                    continue;
                const char *le_text = str_member(s->v[k].labels, "le");
                if (!le_text)
                    fail_scrape(s, "%s%s has a bucket without le", family, key);
                char *e;
                double le = strtod(le_text, &e);
                if (*e != '\0')
                    fail_scrape(s, "%s%s has le=\"%s\"", family, key, le_text);
                /* the text lists buckets in increasing le order */
                if (le <= prev_le)
                    fail_scrape(s, "%s%s: le=\"%s\" does not increase", family, key, le_text);
                if (s->v[k].value < prev_v)
                    fail_scrape(s, "%s%s: the bucket le=\"%s\" (%g) is below the previous one (%g)",
                                family, key, le_text, s->v[k].value, prev_v);
                prev_le = le;
                prev_v = s->v[k].value;
                buckets++;
                if (isinf(le) && le > 0)
                    inf = s->v[k].value;
            }
            if (buckets < 2 || isnan(inf))
                fail_scrape(s, "%s%s has no le=\"+Inf\" bucket (or only one bucket)", family, key);
            if (inf != count_v)
                fail_scrape(s, "%s%s: _bucket{le=\"+Inf\"} is %g but _count is %g", family, key, inf,
                            count_v);
            if (!has_sum)
                fail_scrape(s, "%s%s has no _sum", family, key);
            free(key);
        }
    }
    if (checked == 0)
        fail_scrape(s, "no histogram series at all");
}

/* Every `route` label is one of `allowed` (NULL-terminated). */
static void check_route_labels(const scrape_t *s, const char *const *allowed)
{
    for (size_t i = 0; i < s->n; i++) {
        const char *route = str_member(s->v[i].labels, "route");
        if (!route)
            continue;
        bool ok = false;
        for (size_t k = 0; allowed[k] && !ok; k++)
            ok = strcmp(route, allowed[k]) == 0;
        if (!ok)
            fail_scrape(s, "%s has route=\"%s\", which is not a route template, \"generic\", "
                           "\"admin\" or \"unmatched\"", s->v[i].name, route);
    }
}

/* `promtool check metrics` on the text: exit 0, nothing on stderr. Returns
 * false (after saying why) when promtool is not installed. */
static bool promtool_check(const scrape_t *s)
{
    if (access(PROMTOOL, X_OK) != 0) {
        fprintf(stderr, "SKIP: %s is not installed (scripts/setup installs it): "
                        "`promtool check metrics` was not run\n", PROMTOOL);
        return false;
    }
    const char *argv[] = { PROMTOOL, "check", "metrics", NULL };
    struct proc_options po = { .stdin_mode = PROC_STDIO_PIPE, .stdout_mode = PROC_STDIO_CAPTURE,
                               .stderr_mode = PROC_STDIO_CAPTURE };
    struct proc *p;
    assert_int_equal(proc_spawn(argv, &po, &p), 0);
    assert_int_equal(proc_write_stdin(p, s->text, strlen(s->text)), 0);
    proc_close_stdin(p);
    char *out = NULL, *err = NULL;
    int status = proc_read_all(p, 60000, &out, &err);
    proc_free(p);
    bool ok = status == 0 && err && err[strspn(err, " \t\r\n")] == '\0';
    if (!ok) {
        char buf[64];
        fprintf(stderr, "---- scrape ----\n%s\n---- end of scrape ----\n", s->text);
        fail_msg("promtool check metrics: %s\nstdout: %s\nstderr: %s",
                 proc_status_str(status, buf, sizeof buf), out ? out : "", err ? err : "");
    }
    free(out);
    free(err);
    return true;
}

/* ---- the log ---------------------------------------------------------------- */

/* Every log line parsed (a JSON array of objects). With `strict`, a line
 * that is not a JSON object with ts, level and msg fails the test. */
static json_t *log_lines(bool strict)
{
    char *log = gwproc_log(g_gw);
    assert_non_null(log);
    json_t *lines = json_array();
    for (char *line = log; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        json_error_t err;
        json_t *j = len ? json_loadb(line, len, 0, &err) : NULL;
        bool good = j && json_is_string(json_object_get(j, "ts")) &&
                    json_is_string(json_object_get(j, "level")) &&
                    json_is_string(json_object_get(j, "msg"));
        if (good)
            json_array_append_new(lines, j);
        else {
            json_decref(j);
            if (strict && len) {
                print_log_tail();
                fail_msg("a log line is not a JSON object with ts, level and msg: %.*s", (int)len,
                         line);
            }
        }
        line += len + (nl != NULL);
    }
    free(log);
    return lines;
}

/* The lines with this msg (and level, unless NULL): a new array. */
static json_t *log_find(json_t *lines, const char *msg, const char *level)
{
    json_t *found = json_array();
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l) {
        const char *m = str_member(l, "msg"), *lv = str_member(l, "level");
        if (m && strcmp(m, msg) == 0 && (!level || (lv && strcmp(lv, level) == 0)))
            json_array_append(found, l);
    }
    return found;
}

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
    struct gwproc *gw = start_gw(ADMIN_CONFIG, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    check_json(admin, "GET", "/healthz", NULL, 200, "{\"status\":\"ok\"}");
    poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", POLL_TIMEOUT_MS);
    json_decref(get_status(admin));
    scrape_t s = scrape(admin);
    expect_metric(&s, "patterngate_upstream_connections", "{\"service\":\"nest\",\"state\":\"connected\"}", 1);
    scrape_free(&s);
    /* HEAD answers like GET, without a body */
    struct http_response r = request(admin, "HEAD", "/healthz", NULL, NULL);
    if (r.status != 200 || r.body_len != 0)
        fail_response(&r, "HEAD /healthz (admin)", "expected 200 without a body");
    http_response_free(&r);
    /* the admin listener serves nothing else */
    check_error(admin, "GET", "/nope", NULL, 404, "not_found");
    check_error(admin, "GET", "/sum/1", NULL, 404, "not_found");
    r = request(admin, "POST", "/status", NULL, "{}");
    expect_error(&r, "POST /status (admin)", 405, "method_not_allowed");
    const char *allow = http_header(&r, "Allow");
    if (!allow || !strstr(allow, "GET"))
        fail_response(&r, "POST /status (admin)", "no Allow header naming GET");
    http_response_free(&r);
    check_error(admin, "DELETE", "/healthz", NULL, 405, "method_not_allowed");
    /* and the main listener has no admin paths then: normal routing */
    static const char *const paths[] = { "/healthz", "/readyz", "/status", "/metrics" };
    for (size_t i = 0; i < 4; i++) {
        char what[64];
        snprintf(what, sizeof what, "GET %s on listen", paths[i]);
        r = request(port, "GET", paths[i], NULL, NULL);
        expect_error(&r, what, 404, "not_found");
        if (!http_header(&r, "X-Request-Id"))
            fail_response(&r, what, "no X-Request-Id: not answered by the normal routing");
        http_response_free(&r);
    }
    check_json(port, "POST", "/sum/1", "[1,2]", 200, "3");
    stop_gw();
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
    struct gwproc *gw = start_gw(config, NULL, false, token);
    int port = gwproc_port(gw);
    /* no token needed for the probes; /status and /metrics need it here */
    check_json(port, "GET", "/healthz", NULL, 200, "{\"status\":\"ok\"}");
    poll_json(port, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", POLL_TIMEOUT_MS);
    const char *const closed[] = { "/status", "/metrics" };
    for (int i = 0; i < 2; i++) {
        struct http_response r = request(port, "GET", closed[i], NULL, NULL);
        expect_error(&r, closed[i], 401, "unauthorized");
        http_response_free(&r);
    }
    json_t *st = get_status_with(port, token);
    if (!json_is_null(json_object_get(st, "admin_listen")))
        fail_json(st, "/status: admin_listen should be null without admin_listen");
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *l = str_member(st, "listen");
    if (!l || strcmp(l, listen) != 0)
        fail_json(st, "/status: listen is not \"%s\"", listen);
    json_decref(st);
    scrape_t s = scrape_with(port, token);
    if (!json_object_get(s.types, "patterngate_build_info"))
        fail_scrape(&s, "no patterngate_build_info on listen without admin_listen");
    scrape_free(&s);
    /* but a route does */
    struct http_response r = request(port, "POST", "/sum/1", NULL, "[1,2]");
    expect_error(&r, "POST /sum/1 without a token", 401, "unauthorized");
    const char *www = http_header(&r, "WWW-Authenticate");
    if (!www || strncasecmp(www, "Bearer", 6) != 0)
        fail_response(&r, "POST /sum/1 without a token", "no WWW-Authenticate: Bearer");
    http_response_free(&r);
    r = request(port, "POST", "/sum/1", token, "[1,2]");
    expect_json(&r, "POST /sum/1 with the token", 200, "3");
    http_response_free(&r);
    /* the admin paths count as "admin" in the metrics, whatever listener */
    s = scrape_with(port, token);
    if (metric_or(&s, "patterngate_http_requests_total",
                  "{\"route\":\"admin\",\"method\":\"GET\",\"code\":\"200\"}", 0) < 1)
        fail_scrape(&s, "no admin request counted");
    scrape_free(&s);
    stop_gw();
}

/* ---- 2. /readyz follows the eager services ---------------------------------------- */

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
    g_nest = calloc(1, sizeof *g_nest);
    assert_non_null(g_nest);
    struct nest_options no = { .quiet = true };
    assert_int_equal(nest_start("v12", &no, g_nest), 0);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", g_nest->port);
    struct gwproc *gw = start_gw(config, addr, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    /* the lazy service on a closed port does not count */
    poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", POLL_TIMEOUT_MS);
    check_error(port, "POST", "/later", "[1]", 503, "upstream_unavailable");
    check_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}");
    /* the eager one dies */
    nest_kill(g_nest);
    poll_json(admin, "GET", "/readyz", NULL, 503, "{\"status\":\"not_ready\",\"services\":[\"nest\"]}",
              POLL_TIMEOUT_MS);
    check_json(admin, "GET", "/healthz", NULL, 200, "{\"status\":\"ok\"}");
    /* and comes back on its port */
    assert_int_equal(nest_restart_same_port(g_nest), 0);
    poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", POLL_TIMEOUT_MS);
    check_json(port, "POST", "/sum", "[2,3]", 200, "5");
    stop_gw();
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
    struct gwproc *gw = start_gw(config, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    /* wait for the connection before counting requests on it */
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    for (;;) {
        json_t *st = get_status(admin);
        const char *state_s = str_member(status_conn(st, "nest"), "state");
        bool up = state_s && strcmp(state_s, "connected") == 0;
        if (!up && deadline_remaining_ms(deadline) == 0)
            fail_json(st, "the nest connection never became connected");
        json_decref(st);
        if (up)
            break;
        deadline_pause_ms(POLL_PAUSE_MS);
    }
    enum { N = 5 };
    for (int i = 0; i < N; i++)
        check_json(port, "POST", "/sum/1", "[1,2]", 200, "3");

    json_t *st = get_status(admin);
    char *version = version_output();
    const char *v = str_member(st, "version");
    char with_name[128];
    snprintf(with_name, sizeof with_name, "patterngate %s", v ? v : "");
    if (!v || !*v || (strcmp(version, v) != 0 && strcmp(version, with_name) != 0))
        fail_json(st, "/status version is not what `patterngate --version` prints (%s)", version);
    free(version);
    json_t *up = json_object_get(st, "uptime_seconds");
    if (!json_is_number(up) || json_number_value(up) < 0 || json_number_value(up) > 3600)
        fail_json(st, "/status uptime_seconds is not a number of seconds");
    expect_int_member(st, "inflight", 0, "/status");
    if (!json_is_false(json_object_get(st, "draining")))
        fail_json(st, "/status draining is not false");
    const char *cfg = str_member(st, "config");
    if (!cfg || strcmp(cfg, gw->config_path) != 0)
        fail_json(st, "/status config is not the file path %s", gw->config_path);
    if (!is_utc_time(json_object_get(st, "config_loaded_at")))
        fail_json(st, "/status config_loaded_at is not a UTC time");
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    if (!str_member(st, "listen") || strcmp(str_member(st, "listen"), addr) != 0)
        fail_json(st, "/status listen is not %s", addr);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", admin);
    if (!str_member(st, "admin_listen") || strcmp(str_member(st, "admin_listen"), addr) != 0)
        fail_json(st, "/status admin_listen is not %s", addr);
    expect_int_member(st, "workers", 1, "/status");
    expect_int_member(st, "routes", 2, "/status");
    if (!json_is_integer(json_object_get(st, "http_connections")))
        fail_json(st, "/status http_connections is not an integer");

    json_t *svc = json_object_get(json_object_get(st, "services"), "nest");
    if (!svc || json_object_size(json_object_get(st, "services")) != 2)
        fail_json(st, "/status services is not {nest, down}");
    if (!str_member(svc, "connect") || strcmp(str_member(svc, "connect"), "eager") != 0)
        fail_json(st, "/status services.nest.connect is not \"eager\"");
    expect_int_member(svc, "inflight", 0, "services.nest");
    expect_int_member(svc, "late_replies", 0, "services.nest");
    json_t *eps = json_object_get(svc, "endpoints");
    json_t *ep = json_array_get(eps, 0);
    if (json_array_size(eps) != 1 || !str_member(ep, "address") ||
        strcmp(str_member(ep, "address"), g_nest_addr) != 0 ||
        !json_is_false(json_object_get(ep, "tls")) || !json_is_null(json_object_get(ep, "ejected_until")))
        fail_json(st, "/status services.nest.endpoints is not [{address %s, tls false, ejected_until null}]",
                  g_nest_addr);
    if (json_array_size(json_object_get(ep, "connections")) != 1)
        fail_json(st, "/status: the nest endpoint has not exactly one connection (pool_size 1)");
    json_t *c = status_conn(st, "nest");
    if (!str_member(c, "state") || strcmp(str_member(c, "state"), "connected") != 0)
        fail_json(st, "the nest connection is not connected");
    expect_int_member(c, "requests", N, "services.nest connection");
    expect_int_member(c, "inflight", 0, "services.nest connection");
    expect_int_member(c, "errors", 0, "services.nest connection");
    expect_int_member(c, "reconnects", 0, "services.nest connection");
    if (!json_is_null(json_object_get(c, "last_error")) || !json_is_null(json_object_get(c, "last_error_at")))
        fail_json(st, "the nest connection has a last_error");
    if (!is_utc_time(json_object_get(c, "connected_since")))
        fail_json(st, "the nest connection's connected_since is not a UTC time");
    json_decref(st);

    /* the service on a closed port: disconnected (between attempts), refused */
    deadline = deadline_after(POLL_TIMEOUT_MS);
    for (;;) {
        st = get_status(admin);
        c = status_conn(st, "down");
        const char *state_s = str_member(c, "state"), *err = str_member(c, "last_error");
        bool done = state_s && strcmp(state_s, "disconnected") == 0 && err &&
                    strcasestr(err, "connection refused") && is_utc_time(json_object_get(c, "last_error_at"));
        if (done) {
            if (!json_is_null(json_object_get(c, "connected_since")))
                fail_json(st, "the down connection has a connected_since");
            expect_int_member(c, "requests", 0, "services.down connection");
            json_decref(st);
            break;
        }
        if (deadline_remaining_ms(deadline) == 0)
            fail_json(st, "services.down never showed a disconnected connection with last_error "
                          "\"...connection refused...\" and a last_error_at");
        json_decref(st);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
    stop_gw();
}

/* ---- 4. /metrics ------------------------------------------------------------------ */

#define SUM_OK "{\"route\":\"/sum/:x\",\"method\":\"POST\",\"code\":\"200\"}"
#define UNMATCHED "{\"route\":\"unmatched\",\"method\":\"GET\",\"code\":\"404\"}"
#define UP_OK "{\"service\":\"nest\",\"kind\":\"send\",\"outcome\":\"ok\"}"

static void metrics_count_exactly(void **state)
{
    (void)state;
    struct gwproc *gw = start_gw(ADMIN_CONFIG, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", POLL_TIMEOUT_MS);
    scrape_t before = scrape(admin);
    enum { N = 7, MISSES = 3 };
    for (int i = 1; i <= N; i++) {
        char path[32];
        snprintf(path, sizeof path, "/sum/%d", i);
        check_json(port, "POST", path, "[1,2]", 200, "3");
    }
    for (int i = 1; i <= MISSES; i++) {
        char path[32];
        snprintf(path, sizeof path, "/nope/%d", i);
        check_error(port, "GET", path, NULL, 404, "not_found");
    }
    /* the counters may be written just after the response: poll until they
     * have reached the traffic, then they must equal it exactly */
    scrape_t after;
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    for (;;) {
        after = scrape(admin);
        bool reached =
            metric_or(&after, "patterngate_http_requests_total", SUM_OK, 0) -
                    metric_or(&before, "patterngate_http_requests_total", SUM_OK, 0) >= N &&
            metric_or(&after, "patterngate_http_requests_total", UNMATCHED, 0) -
                    metric_or(&before, "patterngate_http_requests_total", UNMATCHED, 0) >= MISSES &&
            metric_or(&after, "patterngate_upstream_requests_total", UP_OK, 0) -
                    metric_or(&before, "patterngate_upstream_requests_total", UP_OK, 0) >= N;
        if (reached || deadline_remaining_ms(deadline) == 0)
            break;
        scrape_free(&after);
        deadline_pause_ms(POLL_PAUSE_MS);
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
        double d = metric(&after, deltas[i].name, deltas[i].labels) -
                   metric_or(&before, deltas[i].name, deltas[i].labels, 0);
        if (d != deltas[i].delta)
            fail_scrape(&after, "%s%s grew by %g, expected exactly %g", deltas[i].name,
                        deltas[i].labels, d, deltas[i].delta);
    }
    /* no raw path as a label; histograms consistent */
    static const char *const routes[] = { "/sum/:x", "/echo", "generic", "admin", "unmatched", NULL };
    check_route_labels(&after, routes);
    check_histograms(&after);
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
            fail_scrape(&after, "no # TYPE line for %s", families[i]);
    /* gauges and process figures */
    expect_metric(&after, "patterngate_upstream_connections", "{\"service\":\"nest\",\"state\":\"connected\"}", 1);
    expect_metric(&after, "patterngate_upstream_inflight", "{\"service\":\"nest\"}", 0);
    expect_metric(&after, "patterngate_upstream_late_replies_total", "{\"service\":\"nest\"}", 0);
    expect_metric(&after, "patterngate_config_last_reload_successful", "{}", 1);
    if (metric(&after, "patterngate_upstream_bytes_total", "{\"service\":\"nest\",\"direction\":\"sent\"}") <= 0 ||
        metric(&after, "patterngate_upstream_bytes_total", "{\"service\":\"nest\",\"direction\":\"received\"}") <= 0)
        fail_scrape(&after, "no upstream bytes counted after %d requests", N);
    char *version = version_output();
    char build[160];
    snprintf(build, sizeof build, "{\"version\":\"%s\"}",
             strncmp(version, "patterngate ", 12) == 0 ? version + 12 : version);
    free(version);
    expect_metric(&after, "patterngate_build_info", build, 1);
    if (metric(&after, "process_open_fds", "{}") <= 0)
        fail_scrape(&after, "process_open_fds is not > 0");
    if (metric(&after, "process_max_fds", "{}") < metric(&after, "process_open_fds", "{}"))
        fail_scrape(&after, "process_max_fds is below process_open_fds");
    if (metric(&after, "process_resident_memory_bytes", "{}") <= 1e6)
        fail_scrape(&after, "process_resident_memory_bytes is not > 1e6");
    if (metric(&after, "process_virtual_memory_bytes", "{}") < metric(&after, "process_resident_memory_bytes", "{}"))
        fail_scrape(&after, "process_virtual_memory_bytes is below the resident size");
    double now = (double)time(NULL);
    double started = metric(&after, "process_start_time_seconds", "{}");
    if (started < now - 3600 || started > now + 5)
        fail_scrape(&after, "process_start_time_seconds %.17g is not a recent epoch time (now %.0f)", started, now);
    bool promtool = promtool_check(&after);
    /* the config was loaded successfully at start: its time is known (as
     * Prometheus's own prometheus_config_last_reload_success_timestamp_seconds) */
    double loaded = metric(&after, "patterngate_config_last_reload_success_timestamp_seconds", "{}");
    if (loaded < started - 5 || loaded > now + 5)
        fail_scrape(&after, "patterngate_config_last_reload_success_timestamp_seconds is %.17g, expected "
                            "the time the config was loaded at start (about %.0f)", loaded, started);
    scrape_free(&before);
    scrape_free(&after);
    stop_gw();
    if (!promtool)
        skip();
}

/* ---- 5. SIGTERM with a request in flight ----------------------------------------- */

static void sigterm_drains(void **state)
{
    (void)state;
    static const char config[] =
        "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
        "  \"shutdown_grace_ms\": 10000,\n"
        "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"], \"timeout_ms\": 30000 } },\n"
        "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/slow\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"delay\" } },\n"
        "                { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"nest\",\n"
        "                  \"pattern\": { \"cmd\": \"sum\" } } ] }\n";
    struct gwproc *gw = start_gw(config, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", POLL_TIMEOUT_MS);
    /* 3 s rather than 1.5: room for the drain checks below on a slow machine
     * before the reply ends the drain and the gateway exits */
    bg_request_t *b = bg_start(port, "/slow", "{\"ms\":3000,\"value\":\"finished\"}");
    int64_t deadline = deadline_after(REQ_TIMEOUT_MS);
    while (!atomic_load(&b->sent) && deadline_remaining_ms(deadline) > 0)
        deadline_pause_ms(10);
    /* a later request on a later connection went to the service and back:
     * the slow one, already written, was read before it */
    check_json(port, "POST", "/sum", "[1,1]", 200, "2");
    if (atomic_load(&b->done)) {
        bg_join(b);
        fail_response(&b->resp, "the slow request", "finished before SIGTERM was sent");
    }
    assert_int_equal(gwproc_signal(gw, SIGTERM), 0);
    poll_json(admin, "GET", "/readyz", NULL, 503, "{\"status\":\"draining\"}", 10000);
    if (atomic_load(&b->done)) {
        bg_join(b);
        fail_response(&b->resp, "the slow request", "finished before the drain was checked");
    }
    json_t *st = get_status(admin);
    if (!json_is_true(json_object_get(st, "draining")))
        fail_json(st, "/status draining is not true after SIGTERM");
    /* the service cannot have replied before 3 s after the request left */
    if (deadline_now_ms() - b->sent_at_ms < 2500)
        expect_int_member(st, "inflight", 1, "/status during the drain (the slow request)");
    json_decref(st);
    struct http_response r = request(port, "POST", "/sum", NULL, "[1,2]");
    expect_error(&r, "a new request during the drain", 503, "draining");
    const char *conn = http_header(&r, "Connection");
    if (!conn || strcasecmp(conn, "close") != 0)
        fail_response(&r, "a new request during the drain", "no Connection: close");
    http_response_free(&r);
    bg_join(b);
    expect_json(&b->resp, "the request in flight at SIGTERM", 200, "\"finished\"");
    bg_free(b);
    int status = gwproc_wait(gw, GWPROC_STOP_TIMEOUT_MS);
    if (status != 0) {
        char buf[64];
        gwproc_print_log(gw, "after SIGTERM", 60);
        fail_msg("the gateway ended with %s after SIGTERM, expected exit 0",
                 proc_status_str(status, buf, sizeof buf));
    }
    gwproc_free(g_gw);
    g_gw = NULL;
}

/* ---- 6. the access log --------------------------------------------------------------- */

typedef struct sent {
    const char *method, *path, *body, *route, *service, *header;
    int status;
    const char *reply;        /* the expected JSON body; NULL: a not_found error */
    char request_id[128];
    size_t bytes;
} sent_t;

static void access_log_lines(void **state)
{
    (void)state;
    struct gwproc *gw = start_gw(ADMIN_CONFIG, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", POLL_TIMEOUT_MS);
    sent_t reqs[] = {
        { "POST", "/sum/5", "[1,2]", "/sum/:x", "nest", "X-Request-Id: adm-access-1", 200, "3", "", 0 },
        { "GET", "/nope/x", NULL, "unmatched", NULL, NULL, 404, NULL, "", 0 },
        { "POST", "/v1/send/nest", "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[2,3]}", "generic", "nest", NULL,
          200, "5", "", 0 },
        { "POST", "/echo", "{\"a\":[1,2,3]}", "/echo", "nest", NULL, 200, "{\"a\":[1,2,3]}", "", 0 },
        { "POST", "/sum/6", "[4,5]", "/sum/:x", "nest", NULL, 200, "9", "", 0 },
    };
    enum { K = sizeof reqs / sizeof reqs[0] };
    for (size_t i = 0; i < K; i++) {
        const char *headers[] = { reqs[i].header, NULL };
        char what[128];
        snprintf(what, sizeof what, "%s %s", reqs[i].method, reqs[i].path);
        struct http_response r = request(port, reqs[i].method, reqs[i].path, headers, reqs[i].body);
        if (reqs[i].reply)
            expect_json(&r, what, reqs[i].status, reqs[i].reply);
        else
            expect_error(&r, what, reqs[i].status, "not_found");
        const char *id = http_header(&r, "X-Request-Id");
        if (!id || !*id)
            fail_response(&r, what, "no X-Request-Id");
        if (reqs[i].header && strcmp(id, "adm-access-1") != 0)
            fail_response(&r, what, "the X-Request-Id sent was not kept");
        snprintf(reqs[i].request_id, sizeof reqs[i].request_id, "%s", id);
        reqs[i].bytes = r.body_len;
        http_response_free(&r);
    }
    /* the lines may come just after the responses */
    for (size_t i = 0; i < K; i++) {
        char needle[200];
        snprintf(needle, sizeof needle, "\"request_id\":\"%s\"", reqs[i].request_id);
        if (gwproc_wait_log(gw, needle, 1, POLL_TIMEOUT_MS) != 0) {
            print_log_tail();
            fail_msg("no log line with %s (%s %s)", needle, reqs[i].method, reqs[i].path);
        }
    }
    json_t *lines = log_lines(true);
    json_t *access = log_find(lines, "access", NULL);
    for (size_t i = 0; i < K; i++) {
        json_t *line = NULL, *l;
        size_t n = 0, k;
        json_array_foreach(access, k, l) {
            const char *id = str_member(l, "request_id");
            if (id && strcmp(id, reqs[i].request_id) == 0) {
                line = l;
                n++;
            }
        }
        if (n != 1)
            fail_json(access, "%zu access lines with request_id %s (%s %s), expected 1", n,
                      reqs[i].request_id, reqs[i].method, reqs[i].path);
        const char *ts = str_member(line, "ts");
        size_t tl = ts ? strlen(ts) : 0;
        bool ok = ts && tl >= 20 && ts[tl - 1] == 'Z' && ts[10] == 'T' &&
                  str_member(line, "level") && strcmp(str_member(line, "level"), "info") == 0 &&
                  str_member(line, "method") && strcmp(str_member(line, "method"), reqs[i].method) == 0 &&
                  str_member(line, "path") && strcmp(str_member(line, "path"), reqs[i].path) == 0 &&
                  str_member(line, "route") && strcmp(str_member(line, "route"), reqs[i].route) == 0 &&
                  json_is_integer(json_object_get(line, "status")) &&
                  json_integer_value(json_object_get(line, "status")) == reqs[i].status &&
                  json_is_number(json_object_get(line, "duration_ms")) &&
                  json_number_value(json_object_get(line, "duration_ms")) >= 0 &&
                  json_number_value(json_object_get(line, "duration_ms")) < 60000 &&
                  json_is_integer(json_object_get(line, "bytes")) &&
                  json_integer_value(json_object_get(line, "bytes")) == (json_int_t)reqs[i].bytes &&
                  json_is_integer(json_object_get(line, "request_bytes")) &&
                  json_integer_value(json_object_get(line, "request_bytes")) ==
                      (json_int_t)(reqs[i].body ? strlen(reqs[i].body) : 0);
        if (!ok)
            fail_json(line, "the access line of %s %s is not {ts ...Z, level info, method %s, path %s, "
                            "route %s, status %d, duration_ms, request_id, bytes %zu, request_bytes %zu}",
                      reqs[i].method, reqs[i].path, reqs[i].method, reqs[i].path, reqs[i].route,
                      reqs[i].status, reqs[i].bytes, reqs[i].body ? strlen(reqs[i].body) : 0);
        const char *svc = str_member(line, "service");
        if (reqs[i].service ? !svc || strcmp(svc, reqs[i].service) != 0 : json_object_get(line, "service") != NULL)
            fail_json(line, "the access line of %s %s: service should be %s", reqs[i].method,
                      reqs[i].path, reqs[i].service ? reqs[i].service : "absent");
    }
    json_decref(access);
    json_decref(lines);
    stop_gw();
}

/* ---- 7-9. reload ------------------------------------------------------------------- */

static const char RELOAD_A[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/a\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

static const char RELOAD_AB[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/a\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"sum\" } },\n"
    "                { \"method\": \"POST\", \"path\": \"/b\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"echo\" } } ] }\n";

static const char RELOAD_B[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/b\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"echo\" } } ] }\n";

/* Not JSON: the object is never closed (the error is at line 3). */
static const char RELOAD_BAD_JSON[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/b\", \"service\": \"nest\", \"pattern\": \"x\" } \n";

/* Valid JSON, invalid config: an unknown key in routes[1]. */
static const char RELOAD_BAD_SCHEMA[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/a\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"sum\" } },\n"
    "                { \"method\": \"POST\", \"path\": \"/b\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"echo\" }, \"bogus\": 1 } ] }\n";

#define RELOADS_OK "{\"result\":\"ok\"}"
#define RELOADS_FAILED "{\"result\":\"failed\"}"
#define CONNECTS_OK "{\"service\":\"nest\",\"result\":\"ok\"}"

static void rewrite(struct gwproc *gw, const char *config)
{
    int rc = gwproc_rewrite_config(gw, config);
    if (rc != 0)
        fail_msg("cannot replace the config file %s: %s", gw->config_path, strerror(-rc));
}

/* The nest connection's connected_since and reconnects (a copy of the
 * first, caller frees). */
static char *nest_conn_identity(int admin, long long *reconnects)
{
    json_t *st = get_status(admin);
    json_t *c = status_conn(st, "nest");
    const char *state_s = str_member(c, "state"), *since = str_member(c, "connected_since");
    json_t *rec = json_object_get(c, "reconnects");
    if (!state_s || strcmp(state_s, "connected") != 0 || !since || !json_is_integer(rec))
        fail_json(st, "the nest connection is not connected with connected_since and reconnects");
    char *copy = strdup(since);
    *reconnects = json_integer_value(rec);
    json_decref(st);
    return copy;
}

static void expect_log_msg(const char *msg, const char *level)
{
    json_t *lines = log_lines(false);
    json_t *found = log_find(lines, msg, level);
    size_t n = json_array_size(found);
    json_decref(found);
    json_decref(lines);
    if (n == 0) {
        print_log_tail();
        fail_msg("no log line {\"level\":\"%s\",\"msg\":\"%s\"}", level, msg);
    }
}

static void reload_by_sighup_adds_a_route(void **state)
{
    (void)state;
    struct gwproc *gw = start_gw(RELOAD_A, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", POLL_TIMEOUT_MS);
    check_json(port, "POST", "/a", "[1,2]", 200, "3");
    check_error(port, "POST", "/b", "\"x\"", 404, "not_found");
    long long rec_before;
    char *since_before = nest_conn_identity(admin, &rec_before);
    scrape_t s = scrape(admin);
    double connects_before = metric(&s, "patterngate_upstream_connects_total", CONNECTS_OK);
    double ok_before = metric_or(&s, "patterngate_config_reloads_total", RELOADS_OK, 0);
    scrape_free(&s);

    rewrite(gw, RELOAD_AB);
    assert_int_equal(gwproc_signal(gw, SIGHUP), 0);
    poll_json(port, "POST", "/b", "\"x\"", 200, "\"x\"", POLL_TIMEOUT_MS);
    check_json(port, "POST", "/a", "[1,2]", 200, "3");
    expect_log_msg("config reloaded", "info");
    /* the unchanged service kept its connection */
    long long rec_after;
    char *since_after = nest_conn_identity(admin, &rec_after);
    if (strcmp(since_before, since_after) != 0 || rec_before != rec_after) {
        print_log_tail();
        fail_msg("the nest connection changed over the reload: connected_since %s -> %s, "
                 "reconnects %lld -> %lld", since_before, since_after, rec_before, rec_after);
    }
    free(since_after);
    s = scrape(admin);
    if (metric(&s, "patterngate_upstream_connects_total", CONNECTS_OK) != connects_before)
        fail_scrape(&s, "upstream_connects_total{service=\"nest\",result=\"ok\"} grew over the reload "
                        "(was %g): the connection was reopened", connects_before);
    double ok_after = metric(&s, "patterngate_config_reloads_total", RELOADS_OK);
    if (ok_after < ok_before + 1)
        fail_scrape(&s, "config_reloads_total{result=\"ok\"} did not grow (%g -> %g)", ok_before, ok_after);
    expect_metric(&s, "patterngate_config_last_reload_successful", "{}", 1);
    expect_metric(&s, "patterngate_config_reloads_total", RELOADS_FAILED, 0);
    scrape_free(&s);

    /* SIGHUP alone, the file unchanged, reloads it again */
    assert_int_equal(gwproc_signal(gw, SIGHUP), 0);
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    for (;;) {
        s = scrape(admin);
        double now_ok = metric_or(&s, "patterngate_config_reloads_total", RELOADS_OK, 0);
        if (now_ok >= ok_after + 1) {
            scrape_free(&s);
            break;
        }
        if (deadline_remaining_ms(deadline) == 0)
            fail_scrape(&s, "a SIGHUP with the file unchanged did not reload it: "
                            "config_reloads_total{result=\"ok\"} stayed %g", now_ok);
        scrape_free(&s);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
    check_json(port, "POST", "/b", "\"y\"", 200, "\"y\"");
    since_after = nest_conn_identity(admin, &rec_after);
    if (strcmp(since_before, since_after) != 0 || rec_before != rec_after)
        fail_msg("the nest connection changed over the second reload");
    free(since_after);
    free(since_before);
    stop_gw();
}

static void reload_by_rename_alone(void **state)
{
    (void)state;
    struct gwproc *gw = start_gw(RELOAD_A, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", POLL_TIMEOUT_MS);
    check_json(port, "POST", "/a", "[1,2]", 200, "3");
    check_error(port, "POST", "/b", "\"x\"", 404, "not_found");
    long long rec_before;
    char *since_before = nest_conn_identity(admin, &rec_before);
    /* no signal: the watched file changed */
    rewrite(gw, RELOAD_AB);
    poll_json(port, "POST", "/b", "\"x\"", 200, "\"x\"", POLL_TIMEOUT_MS);
    check_json(port, "POST", "/a", "[1,2]", 200, "3");
    expect_log_msg("config reloaded", "info");
    /* the watch survives the file being replaced: a second new file applies too */
    rewrite(gw, RELOAD_B);
    poll_error(port, "POST", "/a", "[1,2]", 404, "not_found", POLL_TIMEOUT_MS);
    check_json(port, "POST", "/b", "\"z\"", 200, "\"z\"");
    long long rec_after;
    char *since_after = nest_conn_identity(admin, &rec_after);
    if (strcmp(since_before, since_after) != 0 || rec_before != rec_after)
        fail_msg("the nest connection changed over the reloads: connected_since %s -> %s, "
                 "reconnects %lld -> %lld", since_before, since_after, rec_before, rec_after);
    free(since_before);
    free(since_after);
    scrape_t s = scrape(admin);
    if (metric(&s, "patterngate_config_reloads_total", RELOADS_OK) < 2)
        fail_scrape(&s, "config_reloads_total{result=\"ok\"} is below 2 after two new files");
    scrape_free(&s);
    stop_gw();
}

/* ---- 8b. a Kubernetes ConfigMap update ---------------------------------------------- */

/* The folder of the ConfigMap-like layout of the running test ("" when none). */
static char g_cm_dir[PATH_MAX];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        fail_msg("cannot write %s: %s", path, strerror(errno));
}

static void cm_remove(void)
{
    if (!g_cm_dir[0])
        return;
    static const char *const names[] = { "config.json", "..data", "..data_tmp", NULL };
    char path[PATH_MAX + 64];
    for (size_t i = 0; names[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", g_cm_dir, names[i]);
        unlink(path);
    }
    for (int v = 1; v <= 2; v++) {
        snprintf(path, sizeof path, "%s/..v%d/config.json", g_cm_dir, v);
        unlink(path);
        snprintf(path, sizeof path, "%s/..v%d", g_cm_dir, v);
        rmdir(path);
    }
    rmdir(g_cm_dir);
    g_cm_dir[0] = '\0';
}

/* Writes version v of the ConfigMap: ..vN/config.json, then points ..data
 * at it by renaming a new symlink over it, and removes the previous
 * version, as the kubelet's atomic writer does. config.json itself (a
 * symlink to ..data/config.json) never changes. */
static void cm_publish(int v, const char *config)
{
    char path[PATH_MAX + 64], target[32], tmp[PATH_MAX + 64], data[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/..v%d", g_cm_dir, v);
    if (mkdir(path, 0700) != 0)
        fail_msg("mkdir %s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/..v%d/config.json", g_cm_dir, v);
    write_file(path, config);
    snprintf(target, sizeof target, "..v%d", v);
    snprintf(tmp, sizeof tmp, "%s/..data_tmp", g_cm_dir);
    snprintf(data, sizeof data, "%s/..data", g_cm_dir);
    if (symlink(target, tmp) != 0 || rename(tmp, data) != 0)
        fail_msg("cannot point %s at %s: %s", data, target, strerror(errno));
    if (v > 1) {
        snprintf(path, sizeof path, "%s/..v%d/config.json", g_cm_dir, v - 1);
        unlink(path);
        snprintf(path, sizeof path, "%s/..v%d", g_cm_dir, v - 1);
        rmdir(path);
    }
}

static void reload_by_configmap_update(void **state)
{
    (void)state;
    const char *tmpdir = getenv("TMPDIR");
    snprintf(g_cm_dir, sizeof g_cm_dir, "%s/pg-admin-cm-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(g_cm_dir)) {
        g_cm_dir[0] = '\0';
        fail_msg("mkdtemp: %s", strerror(errno));
    }
    cm_publish(1, RELOAD_A);
    char file[PATH_MAX + 64];
    snprintf(file, sizeof file, "%s/config.json", g_cm_dir);
    if (symlink("..data/config.json", file) != 0)
        fail_msg("symlink %s: %s", file, strerror(errno));
    /* the last -c wins: the gateway runs on the ConfigMap's file */
    const char *args[] = { "-c", file, NULL };
    char nest_env[64];
    snprintf(nest_env, sizeof nest_env, "NEST_ADDR=%s", g_nest_addr);
    const char *env[] = { nest_env, NULL };
    struct gwproc_options o = { .env = env, .ready_on_admin = true, .args = args };
    int rc = gwproc_start(RELOAD_B, &o, &g_gw);
    if (rc != 0) {
        g_gw = NULL;
        fail_msg("the gateway did not start: %s", strerror(-rc));
    }
    int port = gwproc_port(g_gw), admin = g_gw->admin_port;
    poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", POLL_TIMEOUT_MS);
    json_t *st = get_status(admin);
    const char *cfg = str_member(st, "config");
    if (!cfg || strcmp(cfg, file) != 0)
        fail_json(st, "/status config is not %s (the gateway must run on the ConfigMap's file)", file);
    json_decref(st);
    check_json(port, "POST", "/a", "[1,2]", 200, "3");
    check_error(port, "POST", "/b", "\"x\"", 404, "not_found");
    /* the update: config.json is untouched, ..data now names a new folder */
    cm_publish(2, RELOAD_AB);
    poll_json(port, "POST", "/b", "\"x\"", 200, "\"x\"", POLL_TIMEOUT_MS);
    check_json(port, "POST", "/a", "[1,2]", 200, "3");
    stop_gw();
    cm_remove();
}

/* The last log line whose msg starts with "config reload failed" (a new
 * reference), or NULL. */
static json_t *last_reload_failure(void)
{
    json_t *lines = log_lines(false), *line = NULL, *l;
    size_t i;
    json_array_foreach(lines, i, l) {
        const char *m = str_member(l, "msg");
        if (m && strncmp(m, "config reload failed", 20) == 0)
            line = l;
    }
    json_incref(line);
    json_decref(lines);
    return line;
}

/* Replaces the file with a broken one and sends SIGHUP, then waits for the
 * failure to be counted and logged with an error containing `error_part`
 * (followed by ":LINE:COLUMN" when with_line_col). */
static void reload_broken(struct gwproc *gw, const char *config, const char *error_part,
                          bool with_line_col)
{
    int admin = gw->admin_port;
    scrape_t s = scrape(admin);
    double failed_before = metric_or(&s, "patterngate_config_reloads_total", RELOADS_FAILED, 0);
    scrape_free(&s);
    rewrite(gw, config);
    assert_int_equal(gwproc_signal(gw, SIGHUP), 0);
    /* polled together: a late reload of the previous file may be counted first */
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    json_t *line;
    for (;;) {
        s = scrape(admin);
        double failed = metric_or(&s, "patterngate_config_reloads_total", RELOADS_FAILED, 0);
        line = last_reload_failure();
        const char *err = str_member(line, "error");
        if (failed > failed_before && err && strstr(err, error_part))
            break;
        if (deadline_remaining_ms(deadline) == 0) {
            print_log_tail();
            fail_scrape(&s, "after a broken file and SIGHUP: config_reloads_total{result=\"failed\"} "
                            "went from %g to %g; the last \"config reload failed\" log line's error: %s "
                            "(expected to name %s)", failed_before, failed, err ? err : "(none)", error_part);
        }
        json_decref(line);
        scrape_free(&s);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
    expect_metric(&s, "patterngate_config_last_reload_successful", "{}", 0);
    scrape_free(&s);
    if (strcmp(str_member(line, "msg"), "config reload failed") != 0 ||
        !str_member(line, "level") || strcmp(str_member(line, "level"), "error") != 0)
        fail_json(line, "the log line about the failed reload is not {\"level\":\"error\","
                        "\"msg\":\"config reload failed\",\"error\":...} (msg exactly)");
    if (with_line_col) {
        const char *err = str_member(line, "error");
        const char *at = strstr(err, error_part) + strlen(error_part);
        int line_no, col;
        if (sscanf(at, ":%d:%d", &line_no, &col) != 2 || line_no < 1 || col < 1)
            fail_json(line, "the error does not name FILE:LINE:COLUMN");
    }
    json_decref(line);
}

static void reload_broken_file_keeps_config(void **state)
{
    (void)state;
    struct gwproc *gw = start_gw(RELOAD_A, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", POLL_TIMEOUT_MS);
    check_json(port, "POST", "/a", "[1,2]", 200, "3");
    long long rec_before;
    char *since_before = nest_conn_identity(admin, &rec_before);

    reload_broken(gw, RELOAD_BAD_JSON, gw->config_path, true);
    check_json(port, "POST", "/a", "[1,2]", 200, "3");
    check_error(port, "POST", "/b", "\"x\"", 404, "not_found");
    check_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}");

    reload_broken(gw, RELOAD_BAD_SCHEMA, "routes[1]", false);
    check_json(port, "POST", "/a", "[1,2]", 200, "3");
    check_error(port, "POST", "/b", "\"x\"", 404, "not_found");

    /* a good file again */
    double wall_before = (double)time(NULL);
    rewrite(gw, RELOAD_AB);
    assert_int_equal(gwproc_signal(gw, SIGHUP), 0);
    poll_json(port, "POST", "/b", "\"x\"", 200, "\"x\"", POLL_TIMEOUT_MS);
    check_json(port, "POST", "/a", "[1,2]", 200, "3");
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    scrape_t s;
    for (;;) {
        s = scrape(admin);
        if (metric(&s, "patterngate_config_last_reload_successful", "{}") == 1)
            break;
        if (deadline_remaining_ms(deadline) == 0)
            fail_scrape(&s, "config_last_reload_successful did not return to 1 after a good file");
        scrape_free(&s);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
    if (metric(&s, "patterngate_config_reloads_total", RELOADS_OK) < 1 ||
        metric(&s, "patterngate_config_reloads_total", RELOADS_FAILED) < 2)
        fail_scrape(&s, "expected reloads_total ok >= 1 and failed >= 2");
    double at = metric(&s, "patterngate_config_last_reload_success_timestamp_seconds", "{}");
    if (at < wall_before - 1 || at > (double)time(NULL) + 1)
        fail_scrape(&s, "config_last_reload_success_timestamp_seconds %.17g is not the time of the "
                        "good reload (>= %.0f)", at, wall_before);
    scrape_free(&s);
    long long rec_after;
    char *since_after = nest_conn_identity(admin, &rec_after);
    if (strcmp(since_before, since_after) != 0 || rec_before != rec_after)
        fail_msg("the nest connection changed over the reloads: connected_since %s -> %s, "
                 "reconnects %lld -> %lld", since_before, since_after, rec_before, rec_after);
    free(since_before);
    free(since_after);
    stop_gw();
}

/* ---- workers ------------------------------------------------------------------------ */

static const char WORKERS_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"workers\": 2,\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/a\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

/* Two workers share `listen` (SO_REUSEPORT), each with its own pool: the
 * service sees two connections, /metrics sums both workers exactly, a
 * reload reaches both, and SIGTERM stops both with exit 0. */
static void two_workers(void **state)
{
    (void)state;
    struct gwproc *gw = start_gw(WORKERS_CONFIG, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    /* both pools connect: two connected connections in the sum */
    int64_t deadline = deadline_after(30000);
    for (;;) {
        scrape_t sc = scrape(admin);
        double up = metric_or(&sc, "patterngate_upstream_connections", "{\"service\":\"nest\",\"state\":\"connected\"}", 0);
        scrape_free(&sc);
        if (up == 2)
            break;
        if (deadline_remaining_ms(deadline) <= 0)
            fail_msg("expected 2 connected connections (one per worker), saw %.0f", up);
        deadline_pause_ms(50);
    }
    /* every request on a new connection: the kernel spreads them */
    const int n = 40;
    for (int i = 0; i < n; i++) {
        struct http_response r = request(port, "POST", "/a", NULL, "[1,2]");
        if (r.status != 200 || r.body_len != 1 || r.body[0] != '3')
            fail_response(&r, "POST /a", "expected 200 3");
        http_response_free(&r);
    }
    scrape_t sc = scrape(admin);
    expect_metric(&sc, "patterngate_http_requests_total", "{\"route\":\"/a\",\"method\":\"POST\",\"code\":\"200\"}", n);
    expect_metric(&sc, "patterngate_upstream_requests_total", "{\"service\":\"nest\",\"kind\":\"send\",\"outcome\":\"ok\"}", n);
    if (!promtool_check(&sc))
        fail_msg("promtool rejected the two workers' /metrics");
    scrape_free(&sc);
    json_t *st = get_status(admin);
    expect_int_member(st, "workers", 2, "/status");
    json_decref(st);
    /* a reload applies to both workers: every new connection finds /b */
    rewrite(gw, RELOAD_AB);
    assert_int_equal(gwproc_signal(gw, SIGHUP), 0);
    assert_int_equal(gwproc_wait_log(gw, "\"msg\":\"config reloaded\"", 2, 30000), 0);
    for (int i = 0; i < 20; i++) {
        struct http_response r = request(port, "POST", "/b", NULL, "[4]");
        if (r.status != 200)
            fail_response(&r, "POST /b after the reload", "expected 200 from every worker");
        http_response_free(&r);
    }
    stop_gw();
}

/* ---- main ---------------------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_teardown(fn, test_teardown)

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
        T(sigterm_drains),
        T(access_log_lines),
        T(reload_by_sighup_adds_a_route),
        T(reload_by_rename_alone),
        T(reload_by_configmap_update),
        T(reload_broken_file_keeps_config),
        T(two_workers),
    };
    return cmocka_run_group_tests_name("admin_nest12", tests, group_setup, group_teardown);
}
