/* gwtest: see gwtest.h. The helpers the integration tests used to write
 * each for themselves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/gwtest.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "support/deadline.h"
#include "support/proc.h"

#define PROMTOOL "/usr/bin/promtool"

/* ---- the test's gateway ------------------------------------------------------ */

static struct gwproc *g_current;

void gwt_set_current(struct gwproc *g) { g_current = g; }
struct gwproc *gwt_current(void) { return g_current; }

void gwt_print_log_tail(void)
{
    if (g_current)
        gwproc_print_log(g_current, "at the failure", 60);
}

struct gwproc *gwt_start(const char *config, const char *const *env, const struct gwproc_options *base)
{
    struct gwproc_options o = base ? *base : (struct gwproc_options){ 0 };
    const char *all[32];
    size_t n = 0;
    for (size_t i = 0; base && base->env && base->env[i] && n < 31; i++)
        all[n++] = base->env[i];
    for (size_t i = 0; env && env[i] && n < 31; i++)
        all[n++] = env[i];
    all[n] = NULL;
    o.env = all;
    struct gwproc *g = NULL;
    int rc = gwproc_start(config, &o, &g);
    if (rc != 0)
        fail_msg("the gateway did not start: %s", strerror(-rc));
    g_current = g;
    return g;
}

void gwt_stop_keep(struct gwproc *g)
{
    if (!g)
        return;
    int status = gwproc_stop(g, GWPROC_STOP_TIMEOUT_MS);
    if (status != 0) {
        char buf[64];
        gwproc_print_log(g, "stopping", 60);
        fail_msg("the gateway ended with %s after SIGTERM, expected exit 0", proc_status_str(status, buf, sizeof buf));
    }
}

void gwt_stop(struct gwproc *g)
{
    if (!g)
        return;
    int status = gwproc_stop(g, GWPROC_STOP_TIMEOUT_MS);
    if (status != 0) {
        char buf[64];
        gwproc_print_log(g, "stopping", 60);
        gwt_discard(g);
        fail_msg("the gateway ended with %s after SIGTERM, expected exit 0", proc_status_str(status, buf, sizeof buf));
    }
    gwt_discard(g);
}

void gwt_discard(struct gwproc *g)
{
    if (g_current == g)
        g_current = NULL;
    gwproc_free(g);
}

/* ---- failing with context ------------------------------------------------------ */

void gwt_fail_response(const struct http_response *r, const char *what, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *dump = http_response_dump(r, 3000);
    gwt_print_log_tail();
    fprintf(stderr, "---- response ----\n%s\n---- end of response ----\n", dump ? dump : "");
    free(dump);
    fail_msg("%s: %s", what, msg);
    abort(); /* not reached */
}

void gwt_fail_json(const json_t *j, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *text = json_dumps(j, JSON_INDENT(1) | JSON_ENCODE_ANY);
    gwt_print_log_tail();
    fprintf(stderr, "---- JSON ----\n%s\n---- end of JSON ----\n", text ? text : "(null)");
    free(text);
    fail_msg("%s", msg);
    abort();
}

/* ---- requests and expectations --------------------------------------------------- */

struct http_response gwt_request(int port, const char *method, const char *path, const char *const *headers,
                                 const void *body, size_t len)
{
    struct http_request req = { .method = method, .path = path, .headers = headers, .body = body, .body_len = len };
    struct http_response resp;
    int rc = http_fetch(port, &req, &resp, GWT_REQ_TIMEOUT_MS);
    if (rc != 0) {
        gwt_print_log_tail();
        fail_msg("%s %s on port %d: no response: %s", method ? method : "GET", path, port, strerror(-rc));
    }
    return resp;
}

struct http_response gwt_req(int port, const char *method, const char *path, const char *body)
{
    return gwt_request(port, method, path, NULL, body, body ? strlen(body) : 0);
}

struct http_response gwt_req_with(int port, const char *method, const char *path, const char *const *headers,
                                  const char *body)
{
    return gwt_request(port, method, path, headers, body, body ? strlen(body) : 0);
}

json_t *gwt_parse(const struct http_response *r, const char *what)
{
    json_error_t err;
    json_t *j = json_loadb(r->body, r->body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!j)
        gwt_fail_response(r, what, "the body is not JSON: %s", err.text);
    return j;
}

void gwt_expect_request_id(const struct http_response *r, const char *what)
{
    const char *id = http_header(r, "X-Request-Id");
    if (!id || !*id)
        gwt_fail_response(r, what, "no X-Request-Id");
}

static void expect_json_type(const struct http_response *r, const char *what)
{
    const char *ct = http_header(r, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0)
        gwt_fail_response(r, what, "Content-Type is %s, expected application/json", ct ? ct : "absent");
}

void gwt_expect_body(const struct http_response *r, const char *what, int status, const char *body)
{
    if (r->status != status)
        gwt_fail_response(r, what, "status %d, expected %d", r->status, status);
    size_t len = strlen(body);
    if (r->body_len != len || memcmp(r->body, body, len) != 0)
        gwt_fail_response(r, what, "body differs; expected (%zu bytes)\n%s", len, body);
    gwt_expect_request_id(r, what);
    if (len > 0)
        expect_json_type(r, what);
}

void gwt_expect_json(const struct http_response *r, const char *what, int status, const char *expected)
{
    if (r->status != status)
        gwt_fail_response(r, what, "status %d, expected %d with %s", r->status, status, expected);
    expect_json_type(r, what);
    json_t *want = json_loads(expected, JSON_DECODE_ANY, NULL);
    assert_non_null(want);
    json_t *got = gwt_parse(r, what);
    bool same = json_equal(got, want);
    json_decref(got);
    json_decref(want);
    if (!same)
        gwt_fail_response(r, what, "the body is not %s", expected);
}

void gwt_expect_error(const struct http_response *r, const char *what, int status, const char *code)
{
    json_decref(gwt_expect_error_json(r, what, status, code));
}

json_t *gwt_expect_error_json(const struct http_response *r, const char *what, int status, const char *code)
{
    if (r->status != status)
        gwt_fail_response(r, what, "status %d, expected %d %s", r->status, status, code);
    gwt_expect_request_id(r, what);
    expect_json_type(r, what);
    json_t *j = gwt_parse(r, what);
    if (!json_is_object(j))
        gwt_fail_response(r, what, "the body is not a JSON object");
    json_t *sc = json_object_get(j, "statusCode"), *e = json_object_get(j, "error"), *m = json_object_get(j, "message");
    if (!json_is_integer(sc) || json_integer_value(sc) != status)
        gwt_fail_response(r, what, "statusCode is not %d", status);
    if (!json_is_string(e) || strcmp(json_string_value(e), code) != 0)
        gwt_fail_response(r, what, "error is not \"%s\"", code);
    if (!json_is_string(m) || json_string_length(m) == 0)
        gwt_fail_response(r, what, "message is not a non-empty string");
    size_t allowed = 3 + (json_object_get(j, "details") != NULL);
    bool upstream = strcmp(code, "upstream_error") == 0 || strcmp(code, "no_handler") == 0;
    if (json_object_size(j) != allowed || (!upstream && allowed == 4))
        gwt_fail_response(r, what, "unexpected members in the error body");
    return j;
}

static void what_of(char *what, size_t size, int port, const char *method, const char *path)
{
    snprintf(what, size, "%s %s (port %d)", method ? method : "GET", path, port);
}

void gwt_check(int port, const char *method, const char *path, const char *body, int status, const char *expected)
{
    char what[300];
    what_of(what, sizeof what, port, method, path);
    struct http_response r = gwt_req(port, method, path, body);
    gwt_expect_body(&r, what, status, expected);
    http_response_free(&r);
}

void gwt_check_json(int port, const char *method, const char *path, const char *body, int status,
                    const char *expected)
{
    char what[300];
    what_of(what, sizeof what, port, method, path);
    struct http_response r = gwt_req(port, method, path, body);
    gwt_expect_json(&r, what, status, expected);
    http_response_free(&r);
}

void gwt_check_error(int port, const char *method, const char *path, const char *body, int status, const char *code)
{
    char what[300];
    what_of(what, sizeof what, port, method, path);
    struct http_response r = gwt_req(port, method, path, body);
    gwt_expect_error(&r, what, status, code);
    http_response_free(&r);
}

/* What a poll wants of an answer. */
typedef enum poll_kind { POLL_BODY, POLL_JSON, POLL_ERROR } poll_kind_t;

static bool poll_matches(const struct http_response *r, poll_kind_t kind, int status, const char *expected)
{
    if (r->status != status)
        return false;
    if (kind == POLL_BODY)
        return strlen(expected) == r->body_len && memcmp(r->body, expected, r->body_len) == 0;
    if (kind == POLL_ERROR)
        return true;
    json_t *want = json_loads(expected, JSON_DECODE_ANY, NULL);
    json_t *got = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL);
    bool same = got && want && json_equal(got, want);
    json_decref(got);
    json_decref(want);
    return same;
}

static void poll(poll_kind_t kind, int port, const char *method, const char *path, const char *body, int status,
                 const char *expected, int timeout_ms)
{
    int64_t deadline = deadline_after(timeout_ms);
    for (;;) {
        struct http_request req = { .method = method, .path = path, .body = body, .body_len = body ? strlen(body) : 0 };
        struct http_response r;
        int rc = http_fetch(port, &req, &r, GWT_REQ_TIMEOUT_MS);
        bool done = rc == 0 && poll_matches(&r, kind, status, expected);
        if (done || deadline_remaining_ms(deadline) == 0) {
            char what[300];
            snprintf(what, sizeof what, "%s %s (port %d), polled for %d ms", method ? method : "GET", path, port,
                     timeout_ms);
            if (rc != 0) {
                gwt_print_log_tail();
                fail_msg("%s: the last attempt got no response: %s", what, strerror(-rc));
            }
            if (kind == POLL_BODY)
                gwt_expect_body(&r, what, status, expected);
            else if (kind == POLL_JSON)
                gwt_expect_json(&r, what, status, expected);
            else
                gwt_expect_error(&r, what, status, expected);
            http_response_free(&r);
            return;
        }
        if (rc == 0)
            http_response_free(&r);
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
    }
}

void gwt_poll_body(int port, const char *method, const char *path, const char *body, int status,
                   const char *expected, int timeout_ms)
{
    poll(POLL_BODY, port, method, path, body, status, expected, timeout_ms);
}

void gwt_poll_json(int port, const char *method, const char *path, const char *body, int status,
                   const char *expected, int timeout_ms)
{
    poll(POLL_JSON, port, method, path, body, status, expected, timeout_ms);
}

void gwt_poll_error(int port, const char *method, const char *path, const char *body, int status,
                    const char *code, int timeout_ms)
{
    poll(POLL_ERROR, port, method, path, body, status, code, timeout_ms);
}

/* ---- a request on a thread of its own ----------------------------------------------- */

static void *bg_main(void *arg)
{
    gwt_bg_t *b = arg;
    struct http_conn *c;
    b->sent_at_ms = deadline_now_ms();
    b->rc = http_connect(b->port, GWT_REQ_TIMEOUT_MS, &c);
    if (b->rc == 0) {
        struct http_request req = { .method = b->method, .path = b->path, .body = b->body,
                                    .body_len = strlen(b->body) };
        b->rc = http_send(c, &req, GWT_REQ_TIMEOUT_MS);
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

gwt_bg_t *gwt_bg_start(int port, const char *method, const char *path, const char *body)
{
    gwt_bg_t *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->port = port;
    b->method = method;
    b->path = path;
    snprintf(b->body, sizeof b->body, "%s", body ? body : "");
    assert_int_equal(pthread_create(&b->thread, NULL, bg_main, b), 0);
    return b;
}

void gwt_bg_join(gwt_bg_t *b)
{
    pthread_join(b->thread, NULL);
    if (b->rc != 0) {
        gwt_print_log_tail();
        fail_msg("%s %s (background): no response: %s", b->method, b->path, strerror(-b->rc));
    }
}

void gwt_bg_free(gwt_bg_t *b)
{
    http_response_free(&b->resp);
    free(b);
}

void gwt_bg_wait_in_flight(gwt_bg_t *b, int port, const char *method, const char *path, const char *body,
                           int status, const char *expected)
{
    int64_t deadline = deadline_after(GWT_REQ_TIMEOUT_MS);
    while (!atomic_load(&b->sent) && deadline_remaining_ms(deadline) > 0)
        deadline_pause_ms(10);
    gwt_check(port, method, path, body, status, expected);
    if (atomic_load(&b->done)) {
        gwt_bg_join(b);
        gwt_fail_response(&b->resp, "background request", "finished before it should have");
    }
}

/* ---- /status ---------------------------------------------------------------------- */

json_t *gwt_status(int port, const char *const *headers)
{
    struct http_response r = gwt_request(port, "GET", "/status", headers, NULL, 0);
    if (r.status != 200)
        gwt_fail_response(&r, "GET /status", "status %d, expected 200", r.status);
    json_t *j = gwt_parse(&r, "GET /status");
    if (!json_is_object(j))
        gwt_fail_response(&r, "GET /status", "not a JSON object");
    http_response_free(&r);
    return j;
}

json_t *gwt_status_conn(json_t *status, const char *service)
{
    json_t *eps = json_object_get(json_object_get(json_object_get(status, "services"), service), "endpoints");
    json_t *c = json_array_get(json_object_get(json_array_get(eps, 0), "connections"), 0);
    if (!json_is_object(c))
        gwt_fail_json(status, "/status: no services.%s.endpoints[0].connections[0] object", service);
    return c;
}

const char *gwt_str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

void gwt_expect_int(const json_t *obj, const char *key, long long want, const char *where)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) != want)
        gwt_fail_json(obj, "%s: \"%s\" is not %lld", where, key, want);
}

/* ---- /metrics ------------------------------------------------------------------------ */

void gwt_scrape_free(gwt_scrape_t *s)
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

static void bad_line(const gwt_scrape_t *s, const char *line, size_t len, const char *why)
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
static void parse_sample(gwt_scrape_t *s, const char *line, size_t len)
{
    const char *p = line, *end = line + len;
    while (p < end && name_char(*p, p == line))
        p++;
    if (p == line)
        bad_line(s, line, len, "no metric name");
    gwt_sample_t smp = { .name = strndup(line, (size_t)(p - line)), .labels = json_object() };
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

static void parse_scrape(gwt_scrape_t *s)
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
gwt_scrape_t gwt_scrape(int port, const char *const *headers)
{
    struct http_response r = gwt_request(port, "GET", "/metrics", headers, NULL, 0);
    if (r.status != 200)
        gwt_fail_response(&r, "GET /metrics", "status %d, expected 200", r.status);
    const char *ct = http_header(&r, "Content-Type");
    if (!ct || strncmp(ct, "text/plain", 10) != 0 || !strstr(ct, "version=0.0.4"))
        gwt_fail_response(&r, "GET /metrics", "Content-Type is %s, expected text/plain; version=0.0.4",
                      ct ? ct : "absent");
    gwt_scrape_t s = { .text = strndup(r.body, r.body_len) };
    http_response_free(&r);
    parse_scrape(&s);
    return s;
}


/* The value of the sample `name` whose label set is exactly `labels` (a
 * JSON object text, "{}" for none); `absent` when there is none. */
double gwt_metric_or(const gwt_scrape_t *s, const char *name, const char *labels, double absent)
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
double gwt_metric(const gwt_scrape_t *s, const char *name, const char *labels)
{
    double v = gwt_metric_or(s, name, labels, NAN);
    if (isnan(v)) {
        fprintf(stderr, "---- scrape ----\n%s\n---- end of scrape ----\n", s->text);
        fail_msg("/metrics has no sample %s%s", name, labels);
    }
    return v;
}

void gwt_expect_metric(const gwt_scrape_t *s, const char *name, const char *labels, double want)
{
    double v = gwt_metric(s, name, labels);
    if (v != want) {
        fprintf(stderr, "---- scrape ----\n%s\n---- end of scrape ----\n", s->text);
        fail_msg("/metrics: %s%s is %.17g, expected %.17g", name, labels, v, want);
    }
}


void gwt_fail_scrape(const gwt_scrape_t *s, const char *fmt, ...)
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
void gwt_check_histograms(const gwt_scrape_t *s)
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
                const char *le_text = gwt_str(s->v[k].labels, "le");
                if (!le_text)
                    gwt_fail_scrape(s, "%s%s has a bucket without le", family, key);
                char *e;
                double le = strtod(le_text, &e);
                if (*e != '\0')
                    gwt_fail_scrape(s, "%s%s has le=\"%s\"", family, key, le_text);
                /* the text lists buckets in increasing le order */
                if (le <= prev_le)
                    gwt_fail_scrape(s, "%s%s: le=\"%s\" does not increase", family, key, le_text);
                if (s->v[k].value < prev_v)
                    gwt_fail_scrape(s, "%s%s: the bucket le=\"%s\" (%g) is below the previous one (%g)",
                                family, key, le_text, s->v[k].value, prev_v);
                prev_le = le;
                prev_v = s->v[k].value;
                buckets++;
                if (isinf(le) && le > 0)
                    inf = s->v[k].value;
            }
            if (buckets < 2 || isnan(inf))
                gwt_fail_scrape(s, "%s%s has no le=\"+Inf\" bucket (or only one bucket)", family, key);
            if (inf != count_v)
                gwt_fail_scrape(s, "%s%s: _bucket{le=\"+Inf\"} is %g but _count is %g", family, key, inf,
                            count_v);
            if (!has_sum)
                gwt_fail_scrape(s, "%s%s has no _sum", family, key);
            free(key);
        }
    }
    if (checked == 0)
        gwt_fail_scrape(s, "no histogram series at all");
}

/* Every `route` label is one of `allowed` (NULL-terminated). */
void gwt_check_route_labels(const gwt_scrape_t *s, const char *const *allowed)
{
    for (size_t i = 0; i < s->n; i++) {
        const char *route = gwt_str(s->v[i].labels, "route");
        if (!route)
            continue;
        bool ok = false;
        for (size_t k = 0; allowed[k] && !ok; k++)
            ok = strcmp(route, allowed[k]) == 0;
        if (!ok)
            gwt_fail_scrape(s, "%s has route=\"%s\", which is not a route template, \"generic\", "
                           "\"admin\" or \"unmatched\"", s->v[i].name, route);
    }
}

/* `promtool check metrics` on the text: exit 0, nothing on stderr. Returns
 * false (after saying why) when promtool is not installed. */
bool gwt_promtool_check(const gwt_scrape_t *s)
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
json_t *gwt_log_lines(struct gwproc *g, bool strict)
{
    char *log = gwproc_log(g);
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
                gwt_print_log_tail();
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
json_t *gwt_log_find(const json_t *lines, const char *msg, const char *level)
{
    json_t *found = json_array();
    size_t i;
    json_t *l;
    json_array_foreach((json_t *)lines, i, l) {
        const char *m = gwt_str(l, "msg"), *lv = gwt_str(l, "level");
        if (m && strcmp(m, msg) == 0 && (!level || (lv && strcmp(lv, level) == 0)))
            json_array_append(found, l);
    }
    return found;
}

