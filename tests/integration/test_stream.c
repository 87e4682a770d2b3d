/* Streaming replies of the built binary (SPEC.md's `reply` table: ndjson
 * and sse), driven as a user would, against real Nest 12 and Nest 10
 * services (one cmocka group per version) and against scripted raw
 * upstreams (tests/support/net.h) that send exactly the bytes a test wants:
 *
 *   - values reach the client as they arrive (arrival times of each line);
 *   - byte-exact lines and events, unicode and hostile values included;
 *   - failures mid-stream (the error line / `event: error`), failures and
 *     timeouts before the first value (an ordinary error response);
 *   - timeout_ms as a per-value bound for ndjson/sse and a whole-reply bound
 *     for auto/array; a gap in the middle of a stream;
 *   - the generic API's ?reply=ndjson|sse|array|auto;
 *   - the SSE keepalive comment after 15 s of silence;
 *   - 50 concurrent streams; 50 clients that leave mid-stream (the
 *     gateway's open descriptors come back, its RSS stays bounded);
 *   - a client that stops reading while the service floods: the gateway
 *     buffers a bounded amount, gives up with 503 `overloaded`, and keeps
 *     serving.
 *
 * Timing bounds are generous (loaded 2-core machines); conditions are
 * polled, never waited for with a sleep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support/deadline.h"
#include "support/gateway.h"
#include "support/http.h"
#include "support/nest.h"
#include "support/net.h"

#define REQ_TIMEOUT_MS 30000   /* one HTTP exchange (or one read of a stream) */
#define POLL_TIMEOUT_MS 30000  /* waiting for a condition */
#define POLL_PAUSE_MS 50       /* between two polls of a condition */

#define SSE_END "event: end\ndata: null\n\n"
/* What an SSE stream starts with, as soon as its request is written. */
#define SSE_OK ": ok\n\n"

/* ---- gateways ------------------------------------------------------------ */

/* The gateway whose log a failure prints. */
static struct gwproc *g_gateway;
/* A gateway the running test started for itself (killed by the teardown
 * when the test failed before it could stop it). */
static struct gwproc *g_own;

static void print_log_tail(void)
{
    if (g_gateway)
        gwproc_print_log(g_gateway, "at the failure", 40);
}

/* Starts the gateway on `config` with NEST_ADDR=address. ASan keeps up to
 * 256 MB of freed memory in quarantine by default, which would look like
 * unbounded growth of RSS to the memory checks below: the gateway gets a
 * small quarantine (a build without ASan ignores the variable). NULL on
 * failure (printed by gwproc_start). */
static struct gwproc *gateway_start(const char *config, const char *address)
{
    char nest_env[64], asan_env[512];
    snprintf(nest_env, sizeof nest_env, "NEST_ADDR=%s", address);
    const char *inherited = getenv("ASAN_OPTIONS");
    snprintf(asan_env, sizeof asan_env, "ASAN_OPTIONS=%s%squarantine_size_mb=16",
             inherited ? inherited : "", inherited && *inherited ? ":" : "");
    const char *env[] = { nest_env, asan_env, NULL };
    struct gwproc_options o = { .env = env };
    struct gwproc *gw = NULL;
    return gwproc_start(config, &o, &gw) == 0 ? gw : NULL;
}

/* SIGTERM; the gateway must exit 0 (an ASan build exits non-zero on a
 * leak). Returns whether it did, after printing why not. */
static bool gateway_stop(struct gwproc *gw)
{
    int status = gwproc_stop(gw, GWPROC_STOP_TIMEOUT_MS);
    if (status == 0)
        return true;
    char buf[64];
    gwproc_print_log(gw, "stopping", 40);
    fprintf(stderr, "ERROR: the gateway ended with %s after SIGTERM, expected exit 0\n",
            proc_status_str(status, buf, sizeof buf));
    return false;
}

/* Entries of /proc/PID/fd: the gateway's open descriptors, or -1. */
static int open_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Prints what each of the gateway's descriptors is, for a failure. */
static void print_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char link[PATH_MAX], target[PATH_MAX];
        snprintf(link, sizeof link, "%s/%s", path, e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        fprintf(stderr, "  fd %s -> %s\n", e->d_name, target);
    }
    closedir(d);
}

static struct gwproc_usage usage_of(struct gwproc *gw)
{
    struct gwproc_usage u;
    int rc = gwproc_usage(gw, &u);
    if (rc != 0) {
        print_log_tail();
        fail_msg("cannot read the gateway's /proc usage: %s", strerror(-rc));
    }
    return u;
}

/* ---- a response read as it arrives ------------------------------------- */

/* One request on its own connection; the body is kept byte for byte with
 * the time each piece arrived, so a test can tell when line k came. */
typedef struct stream {
    struct http_conn *conn;
    struct http_response head;   /* status and headers (body empty) */
    char *body;                  /* the de-chunked body so far, NUL-terminated */
    size_t len, cap;
    struct piece { size_t end; int64_t at; } *pieces;  /* body[..end) arrived at `at` */
    size_t npieces, pieces_cap;
    int end_rc;                  /* 0: the body ended properly; else a negative errno */
    int64_t sent_at_ms;          /* the request was written */
    int64_t ended_at_ms;
    char what[200];              /* "POST /nd {...}" for messages */
} stream_t;

static void fail_stream(const stream_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fail_stream(const stream_t *s, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    print_log_tail();
    char *dump = http_response_dump(&s->head, 0);
    fprintf(stderr, "---- response head ----\n%s", dump ? dump : "");
    free(dump);
    fprintf(stderr, "---- body: %zu bytes, %s, pieces at (ms after the request):", s->len,
            s->end_rc == 0 ? "ended" : strerror(-s->end_rc));
    for (size_t i = 0; i < s->npieces && i < 40; i++)
        fprintf(stderr, " %zu@%lld", s->pieces[i].end, (long long)(s->pieces[i].at - s->sent_at_ms));
    fprintf(stderr, "\n");
    fwrite(s->body, 1, s->len > 3000 ? 3000 : s->len, stderr);
    fprintf(stderr, "%s\n---- end of body ----\n", s->len > 3000 ? "..." : "");
    fail_msg("%s: %s", s->what, msg);
}

/* The streams of the running test not freed yet: a failing test leaves
 * them to streams_free_all (its teardown), so that ASan reports no leak. */
#define MAX_LIVE_STREAMS 16
static stream_t *g_live[MAX_LIVE_STREAMS];

static void stream_free(stream_t *s);

static void streams_free_all(void)
{
    for (size_t i = 0; i < MAX_LIVE_STREAMS; i++)
        if (g_live[i])
            stream_free(g_live[i]);
}

/* Connects; the request is sent by stream_request. */
static stream_t *stream_connect(int port)
{
    stream_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    size_t slot = 0;
    while (slot < MAX_LIVE_STREAMS && g_live[slot])
        slot++;
    assert_true(slot < MAX_LIVE_STREAMS);
    g_live[slot] = s;
    s->body = calloc(1, 1);
    s->cap = 1;
    assert_non_null(s->body);
    int rc = http_connect(port, REQ_TIMEOUT_MS, &s->conn);
    if (rc != 0) {
        print_log_tail();
        fail_msg("cannot connect to the gateway: %s", strerror(-rc));
    }
    return s;
}

static void stream_request(stream_t *s, const char *method, const char *path, const char *body)
{
    snprintf(s->what, sizeof s->what, "%s %s %.120s", method, path, body ? body : "");
    struct http_request req = { .method = method, .path = path, .body = body,
                                .body_len = body ? strlen(body) : 0 };
    s->sent_at_ms = deadline_now_ms();
    int rc = http_send(s->conn, &req, REQ_TIMEOUT_MS);
    if (rc != 0) {
        print_log_tail();
        fail_msg("%s: cannot send: %s", s->what, strerror(-rc));
    }
}

/* Connects and sends the request; the head is not read yet. */
static stream_t *stream_send(int port, const char *method, const char *path, const char *body)
{
    stream_t *s = stream_connect(port);
    stream_request(s, method, path, body);
    return s;
}

static void stream_head(stream_t *s)
{
    int rc = http_read_head(s->conn, &s->head, REQ_TIMEOUT_MS);
    if (rc != 0) {
        print_log_tail();
        fail_msg("%s: no response head: %s", s->what, strerror(-rc));
    }
}

/* Reads the next piece of the body: its length, 0 at the end, or a
 * negative errno (also kept in end_rc). */
static ssize_t stream_more(stream_t *s, int timeout_ms)
{
    char buf[65536];
    int64_t at = 0;
    ssize_t n = http_body_next(s->conn, buf, sizeof buf, &at, timeout_ms);
    if (n <= 0) {
        s->end_rc = (int)n;
        s->ended_at_ms = deadline_now_ms();
        return n;
    }
    if (s->len + (size_t)n + 1 > s->cap) {
        size_t cap = s->cap * 2 > s->len + (size_t)n + 1 ? s->cap * 2 : s->len + (size_t)n + 1;
        char *b = realloc(s->body, cap);
        assert_non_null(b);
        s->body = b;
        s->cap = cap;
    }
    memcpy(s->body + s->len, buf, (size_t)n);
    s->len += (size_t)n;
    s->body[s->len] = '\0';
    if (s->npieces == s->pieces_cap) {
        size_t cap = s->pieces_cap ? s->pieces_cap * 2 : 64;
        struct piece *p = realloc(s->pieces, cap * sizeof *p);
        assert_non_null(p);
        s->pieces = p;
        s->pieces_cap = cap;
    }
    s->pieces[s->npieces++] = (struct piece){ .end = s->len, .at = at };
    return n;
}

/* Reads the body to its end (or an error, kept in end_rc). */
static void stream_finish(stream_t *s)
{
    while (stream_more(s, REQ_TIMEOUT_MS) > 0)
        ;
}

/* Reads until the body holds `needle` (true) or ends (false). */
static bool stream_until(stream_t *s, const char *needle)
{
    while (!strstr(s->body, needle))
        if (stream_more(s, REQ_TIMEOUT_MS) <= 0)
            return false;
    return true;
}

static stream_t *stream_fetch(int port, const char *method, const char *path, const char *body)
{
    stream_t *s = stream_send(port, method, path, body);
    stream_head(s);
    stream_finish(s);
    return s;
}

static void stream_free(stream_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < MAX_LIVE_STREAMS; i++)
        if (g_live[i] == s)
            g_live[i] = NULL;
    http_close(s->conn);
    http_response_free(&s->head);
    free(s->body);
    free(s->pieces);
    free(s);
}

/* When the body byte at offset `off` arrived. */
static int64_t stream_at(const stream_t *s, size_t off)
{
    for (size_t i = 0; i < s->npieces; i++)
        if (off < s->pieces[i].end)
            return s->pieces[i].at;
    return -1;
}

/* When the first n records (each ending with `sep`: "\n" for ndjson lines,
 * "\n\n" for SSE events) were complete, into at[]; false if fewer. */
static bool record_times(const stream_t *s, const char *sep, size_t n, int64_t *at)
{
    size_t off = 0, seplen = strlen(sep);
    if (strcmp(sep, "\n\n") == 0 && s->len >= strlen(SSE_OK) && memcmp(s->body, SSE_OK, strlen(SSE_OK)) == 0)
        off = strlen(SSE_OK); /* the stream's opening comment is no record */
    for (size_t i = 0; i < n; i++) {
        const char *p = memmem(s->body + off, s->len - off, sep, seplen);
        if (!p)
            return false;
        off = (size_t)(p - s->body) + seplen;
        at[i] = stream_at(s, off - 1);
    }
    return true;
}

/* ---- expectations ----------------------------------------------------------- */

/* The media type of Content-Type is `type` (parameters allowed after it). */
static void expect_type(const stream_t *s, const char *type)
{
    const char *ct = http_header(&s->head, "Content-Type");
    size_t n = strlen(type);
    if (!ct || strncasecmp(ct, type, n) != 0 || (ct[n] && ct[n] != ';' && ct[n] != ' '))
        fail_stream(s, "Content-Type is %s, expected %s", ct ? ct : "absent", type);
}

static void expect_head(const stream_t *s, int status, const char *type)
{
    if (s->head.status != status)
        fail_stream(s, "status %d, expected %d", s->head.status, status);
    const char *id = http_header(&s->head, "X-Request-Id");
    if (!id || !*id)
        fail_stream(s, "no X-Request-Id");
    expect_type(s, type);
}

static void expect_ended(const stream_t *s)
{
    if (s->end_rc != 0)
        fail_stream(s, "the body did not end properly: %s", strerror(-s->end_rc));
}

static void expect_ndjson_head(const stream_t *s, int status)
{
    expect_head(s, status, "application/x-ndjson");
    if (!s->head.chunked)
        fail_stream(s, "the NDJSON body is not chunked");
}

static void expect_sse_head(const stream_t *s)
{
    expect_head(s, 200, "text/event-stream");
    const char *cc = http_header(&s->head, "Cache-Control");
    if (!cc || strcasecmp(cc, "no-cache") != 0)
        fail_stream(s, "Cache-Control is %s, expected no-cache", cc ? cc : "absent");
    const char *xab = http_header(&s->head, "X-Accel-Buffering");
    if (!xab || strcasecmp(xab, "no") != 0)
        fail_stream(s, "X-Accel-Buffering is %s, expected no", xab ? xab : "absent");
}

static void expect_exact_body(const stream_t *s, const char *body)
{
    size_t n = strlen(body);
    if (s->len != n || memcmp(s->body, body, n) != 0)
        fail_stream(s, "the body differs; expected (%zu bytes):\n%s", n, body);
}

/* A complete NDJSON stream, byte for byte. */
static void expect_ndjson(const stream_t *s, int status, const char *body)
{
    expect_ndjson_head(s, status);
    expect_ended(s);
    expect_exact_body(s, body);
}

/* A complete SSE stream, byte for byte: ": ok", then `body` (the end
 * event included). */
static void expect_sse(const stream_t *s, const char *body)
{
    expect_sse_head(s);
    expect_ended(s);
    char *all = malloc(strlen(SSE_OK) + strlen(body) + 1);
    assert_non_null(all);
    strcpy(all, SSE_OK);
    strcat(all, body);
    size_t n = strlen(all);
    bool same = s->len == n && memcmp(s->body, all, n) == 0;
    free(all);
    if (!same)
        fail_stream(s, "the body differs; expected (%zu bytes):\n" SSE_OK "%s", n, body);
}

/* An error body {"statusCode": status, "error": code, "message": text}
 * plus "details": exactly the bytes `details` when given, none when NULL,
 * any when "*". Empty `why` when right, else what is wrong. */
static void check_error_body(const char *text, size_t len, int status, const char *code,
                             const char *details, char *why, size_t cap)
{
    why[0] = '\0';
    json_error_t err;
    json_t *j = json_loadb(text, len, JSON_ALLOW_NUL, &err);
    json_t *sc = json_object_get(j, "statusCode");
    json_t *e = json_object_get(j, "error");
    json_t *m = json_object_get(j, "message");
    json_t *d = json_object_get(j, "details");
    char needle[512];
    snprintf(needle, sizeof needle, "\"details\":%s", details ? details : "");
    if (!j || !json_is_object(j))
        snprintf(why, cap, "the error body is not a JSON object (%s)", j ? "another value" : err.text);
    else if (!json_is_integer(sc) || json_integer_value(sc) != status)
        snprintf(why, cap, "statusCode is not %d", status);
    else if (!json_is_string(e) || strcmp(json_string_value(e), code) != 0)
        snprintf(why, cap, "error is not \"%s\"", code);
    else if (!json_is_string(m) || json_string_length(m) == 0)
        snprintf(why, cap, "message is not a non-empty string");
    else if (json_object_size(j) != 3u + (d != NULL))
        snprintf(why, cap, "unexpected members in the error body");
    else if (!details && d)
        snprintf(why, cap, "a gateway error has \"details\"");
    else if (details && strcmp(details, "*") != 0 && (!d || !memmem(text, len, needle, strlen(needle))))
        snprintf(why, cap, "\"details\" is not exactly %s", details);
    json_decref(j);
}

/* An ordinary error response (not a stream). */
static void expect_error_response(const stream_t *s, int status, const char *code,
                                  const char *details)
{
    expect_head(s, status, "application/json");
    expect_ended(s);
    char why[256];
    check_error_body(s->body, s->len, status, code, details, why, sizeof why);
    if (why[0])
        fail_stream(s, "%s", why);
}

/* From body offset `off` on: exactly one line {"error": <error body>}. */
static void expect_error_line_at(const stream_t *s, size_t off, int status, const char *code,
                                 const char *details)
{
    const char *line = s->body + off;
    size_t len = s->len - off;
    if (len == 0 || line[len - 1] != '\n' || memchr(line, '\n', len - 1))
        fail_stream(s, "after the values, not exactly one more line");
    json_error_t err;
    json_t *j = json_loadb(line, len - 1, JSON_ALLOW_NUL, &err);
    bool shape = json_is_object(j) && json_object_size(j) == 1 &&
                 json_is_object(json_object_get(j, "error"));
    json_decref(j);
    if (!shape)
        fail_stream(s, "the last line is not {\"error\": <error body>}");
    /* the error body's own bytes: after "error": up to the outer '}' */
    const char *p = memmem(line, len, "\"error\"", 7) + 7;
    while (*p == ' ' || *p == '\t' || *p == ':')
        p++;
    const char *end = line + len - 2; /* the outer '}', after optional whitespace */
    while (end > p && *end != '}')
        end--;
    end--;
    while (end > p && (*end == ' ' || *end == '\t'))
        end--;
    char why[256];
    check_error_body(p, (size_t)(end - p + 1), status, code, details, why, sizeof why);
    if (why[0])
        fail_stream(s, "the error line: %s", why);
}

/* An NDJSON stream: exactly `values` (lines), then the last line
 * {"error": <error body>}, then the end. */
static void expect_ndjson_error_end(const stream_t *s, int http_status, const char *values,
                                    int status, const char *code, const char *details)
{
    expect_ndjson_head(s, http_status);
    expect_ended(s);
    size_t n = strlen(values);
    if (s->len < n || memcmp(s->body, values, n) != 0)
        fail_stream(s, "the body does not start with the values; expected them to be:\n%s", values);
    expect_error_line_at(s, n, status, code, details);
}

/* An SSE stream: ": ok", exactly `events`, then `event: error` with the
 * error body as its data, and nothing after it (no end event). */
static void expect_sse_error_end(const stream_t *s, const char *events, int status,
                                 const char *code, const char *details)
{
    expect_sse_head(s);
    expect_ended(s);
    size_t ok = strlen(SSE_OK), n = ok + strlen(events);
    if (s->len < n || memcmp(s->body, SSE_OK, ok) != 0 || memcmp(s->body + ok, events, n - ok) != 0)
        fail_stream(s, "the body does not start with \": ok\" and the value events; expected them to be:\n%s",
                    events);
    static const char prefix[] = "event: error\ndata: ";
    const char *ev = s->body + n;
    size_t len = s->len - n;
    if (len < sizeof prefix + 2 || memcmp(ev, prefix, sizeof prefix - 1) != 0 ||
        memcmp(ev + len - 2, "\n\n", 2) != 0)
        fail_stream(s, "after the values, not exactly one event \"event: error\\ndata: ...\\n\\n\"");
    const char *data = ev + sizeof prefix - 1;
    size_t dlen = len - (sizeof prefix - 1) - 2;
    if (memchr(data, '\n', dlen))
        fail_stream(s, "the error event has more than one data line, or more follows it");
    char why[256];
    check_error_body(data, dlen, status, code, details, why, sizeof why);
    if (why[0])
        fail_stream(s, "the error event: %s", why);
}

/* The first n records (lines or events) arrived spread out: the last at
 * least min_ms after the first. */
static void expect_spread(const stream_t *s, const char *sep, size_t n, int64_t min_ms)
{
    int64_t at[16];
    assert_true(n <= 16 && n >= 2);
    if (!record_times(s, sep, n, at))
        fail_stream(s, "fewer than %zu records", n);
    if (at[n - 1] - at[0] < min_ms)
        fail_stream(s, "the last of %zu values arrived %lld ms after the first, expected >= %lld "
                    "(values are not written as they arrive)",
                    n, (long long)(at[n - 1] - at[0]), (long long)min_ms);
}

/* ---- the Nest groups ----------------------------------------------------------- */

typedef struct fixture {
    struct nest_group *nest;
    struct gwproc *gw;
    int port;
} fixture_t;

static const char NEST_CONFIG[] =
    "{\n"
    "  \"listen\": \"127.0.0.1:${GW_PORT}\",\n"
    "  \"generic_api\": [\"nest\"],\n"
    "  \"log\": { \"level\": \"info\", \"access\": true },\n"
    "  \"services\": {\n"
    "    \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"], \"timeout_ms\": 20000 },\n"
    "    \"down\": { \"endpoints\": [\"127.0.0.1:1\"] }\n"
    "  },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/nd\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"reply\": \"ndjson\", \"timeout_ms\": 1000 },\n"
    "    { \"method\": \"POST\", \"path\": \"/sse\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"reply\": \"sse\", \"timeout_ms\": 1000 },\n"
    "    { \"method\": \"POST\", \"path\": \"/auto\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"timeout_ms\": 1000 },\n"
    "    { \"method\": \"POST\", \"path\": \"/array\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"reply\": \"array\", \"timeout_ms\": 1000 },\n"
    "    { \"method\": \"POST\", \"path\": \"/nd-created\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"reply\": \"ndjson\", \"status\": 201 },\n"
    "    { \"method\": \"POST\", \"path\": \"/nd-long\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"reply\": \"ndjson\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/sse-long\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"reply\": \"sse\", \"timeout_ms\": 30000 },\n"
    "    { \"method\": \"POST\", \"path\": \"/nd-fail\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream_fail\" },\n"
    "      \"reply\": \"ndjson\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/sse-fail\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream_fail\" },\n"
    "      \"reply\": \"sse\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/auto-fail\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream_fail\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/array-fail\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream_fail\" },\n"
    "      \"reply\": \"array\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/nd-rpc\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"rpc_object\" },\n"
    "      \"reply\": \"ndjson\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/sse-rpc\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"rpc_object\" },\n"
    "      \"reply\": \"sse\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/nd-nohandler\", \"service\": \"nest\", \"pattern\": \"no_such_pattern\",\n"
    "      \"reply\": \"ndjson\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/nd-echo\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"reply\": \"ndjson\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/sse-echo\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"reply\": \"sse\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/nd-down\", \"service\": \"down\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"reply\": \"ndjson\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/sse-down\", \"service\": \"down\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"reply\": \"sse\" }\n"
    "  ]\n"
    "}\n";

static int group_setup(void **state, int (*nest_setup)(void **))
{
    fixture_t *f = calloc(1, sizeof *f);
    void *ns = NULL;
    if (!f || nest_setup(&ns) != 0) {
        free(f);
        return -1;
    }
    f->nest = ns;
    f->gw = gateway_start(NEST_CONFIG, f->nest->address);
    if (!f->gw) {
        nest_group_teardown(&ns);
        free(f);
        return -1;
    }
    f->port = gwproc_port(f->gw);
    *state = f;
    return 0;
}

static int group_setup_v12(void **state) { return group_setup(state, nest_group_setup_v12); }
static int group_setup_v10(void **state) { return group_setup(state, nest_group_setup_v10); }

static int group_teardown(void **state)
{
    fixture_t *f = *state;
    bool ok = gateway_stop(f->gw);
    gwproc_free(f->gw);
    void *ns = f->nest;
    nest_group_teardown(&ns);
    free(f);
    g_gateway = NULL;
    return ok ? 0 : -1;
}

static int test_setup(void **state)
{
    fixture_t *f = *state;
    g_gateway = f->gw;
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    streams_free_all();
    gwproc_free(g_own);
    g_own = NULL;
    g_gateway = NULL;
    return 0;
}

/* ---- values as they arrive --------------------------------------------------------- */

static void values_arrive_as_they_come(void **state)
{
    fixture_t *f = *state;
    /* 4 values 400 ms apart: ~1200 ms between the first and the last */
    const char *data = "{\"count\":4,\"interval_ms\":400}";
    stream_t *s = stream_fetch(f->port, "POST", "/nd", data);
    expect_ndjson(s, 200, "1\n2\n3\n4\n");
    expect_spread(s, "\n", 4, 800);
    stream_free(s);

    s = stream_fetch(f->port, "POST", "/sse", data);
    expect_sse(s, "data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n" SSE_END);
    expect_spread(s, "\n\n", 4, 800);
    stream_free(s);

    /* completion as its own packet, later than the last value */
    s = stream_fetch(f->port, "POST", "/nd", "{\"count\":3,\"interval_ms\":400,\"complete_after_ms\":100}");
    expect_ndjson(s, 200, "1\n2\n3\n");
    expect_spread(s, "\n", 3, 400);
    stream_free(s);

    /* the generic API likewise */
    const char *generic = "{\"pattern\":{\"cmd\":\"stream\"},\"data\":{\"count\":4,\"interval_ms\":400}}";
    s = stream_fetch(f->port, "POST", "/v1/send/nest?reply=ndjson", generic);
    expect_ndjson(s, 200, "1\n2\n3\n4\n");
    expect_spread(s, "\n", 4, 800);
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/v1/send/nest?reply=sse", generic);
    expect_sse(s, "data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n" SSE_END);
    expect_spread(s, "\n\n", 4, 800);
    stream_free(s);
}

static void single_zero_and_status(void **state)
{
    fixture_t *f = *state;
    /* zero values: an empty NDJSON body, an SSE end event alone */
    stream_t *s = stream_fetch(f->port, "POST", "/nd", "{\"count\":0}");
    expect_ndjson(s, 200, "");
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/nd", "{\"count\":0,\"complete_after_ms\":50}");
    expect_ndjson(s, 200, "");
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/sse", "{\"count\":0}");
    expect_sse(s, SSE_END);
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/sse", "{\"count\":0,\"complete_after_ms\":50}");
    expect_sse(s, SSE_END);
    stream_free(s);
    /* a plain (non-Observable) reply is a stream of one value */
    s = stream_fetch(f->port, "POST", "/nd-echo", "{\"a\":[1,null]}");
    expect_ndjson(s, 200, "{\"a\":[1,null]}\n");
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/nd-echo", "null");
    expect_ndjson(s, 200, "null\n");
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/sse-echo", "\"x\"");
    expect_sse(s, "data: \"x\"\n\n" SSE_END);
    stream_free(s);
    /* the route's status */
    s = stream_fetch(f->port, "POST", "/nd-created", "{\"count\":2,\"interval_ms\":10}");
    expect_ndjson(s, 201, "1\n2\n");
    stream_free(s);
}

static void unicode_values_byte_exact(void **state)
{
    fixture_t *f = *state;
    /* what JSON.parse + JSON.stringify give back unchanged */
    const char *data = "{\"values\":[\"héllo Zoë — 한국어 😀🇫🇷\",{\"ключ\":\"値\",\"n\":-0.5},"
                       "\"\\u0000 \\ud800 a\\udc00b \\u001f\\\"\\\\\",[],\"\"],\"interval_ms\":5}";
    stream_t *s = stream_fetch(f->port, "POST", "/nd", data);
    expect_ndjson(s, 200,
                  "\"héllo Zoë — 한국어 😀🇫🇷\"\n{\"ключ\":\"値\",\"n\":-0.5}\n"
                  "\"\\u0000 \\ud800 a\\udc00b \\u001f\\\"\\\\\"\n[]\n\"\"\n");
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/sse", data);
    expect_sse(s, "data: \"héllo Zoë — 한국어 😀🇫🇷\"\n\ndata: {\"ключ\":\"値\",\"n\":-0.5}\n\n"
                  "data: \"\\u0000 \\ud800 a\\udc00b \\u001f\\\"\\\\\"\n\ndata: []\n\ndata: \"\"\n\n"
                  SSE_END);
    stream_free(s);
}

/* ---- failures ------------------------------------------------------------------------ */

#define NOPE "{\"statusCode\":403,\"message\":\"nope\"}"

static void failure_mid_stream(void **state)
{
    fixture_t *f = *state;
    const char *obj = "{\"count\":2,\"interval_ms\":50,\"error\":" NOPE "}";
    const char *text = "{\"count\":1,\"interval_ms\":50,\"error\":\"bad thing\"}";
    stream_t *s = stream_fetch(f->port, "POST", "/nd-fail", obj);
    expect_ndjson_error_end(s, 200, "1\n2\n", 403, "upstream_error", NOPE);
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/nd-fail", text);
    expect_ndjson_error_end(s, 200, "1\n", 500, "upstream_error",
                            "{\"status\":\"error\",\"message\":\"bad thing\"}");
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/sse-fail", obj);
    expect_sse_error_end(s, "data: 1\n\ndata: 2\n\n", 403, "upstream_error", NOPE);
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/sse-fail", text);
    expect_sse_error_end(s, "data: 1\n\n", 500, "upstream_error",
                         "{\"status\":\"error\",\"message\":\"bad thing\"}");
    stream_free(s);
    /* the generic API */
    s = stream_fetch(f->port, "POST", "/v1/send/nest?reply=ndjson",
                     "{\"pattern\":{\"cmd\":\"stream_fail\"},\"data\":{\"count\":2,\"interval_ms\":20,"
                     "\"error\":" NOPE "}}");
    expect_ndjson_error_end(s, 200, "1\n2\n", 403, "upstream_error", NOPE);
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/v1/send/nest?reply=sse",
                     "{\"pattern\":{\"cmd\":\"stream_fail\"},\"data\":{\"count\":2,\"interval_ms\":20,"
                     "\"error\":" NOPE "}}");
    expect_sse_error_end(s, "data: 1\n\ndata: 2\n\n", 403, "upstream_error", NOPE);
    stream_free(s);
}

/* Once the request is written the stream's head is out, so an error
 * before the first value is in-band too (SPEC.md "Operating it"). */
static void failure_before_first_value_in_band(void **state)
{
    fixture_t *f = *state;
    const char *fail0 = "{\"count\":0,\"error\":" NOPE "}";
    stream_t *s = stream_fetch(f->port, "POST", "/nd-fail", fail0);
    expect_ndjson_error_end(s, 200, "", 403, "upstream_error", NOPE);
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/sse-fail", fail0);
    expect_sse_error_end(s, "", 403, "upstream_error", NOPE);
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/nd-rpc", "{\"statusCode\":409,\"message\":\"taken\"}");
    expect_ndjson_error_end(s, 200, "", 409, "upstream_error", "{\"statusCode\":409,\"message\":\"taken\"}");
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/sse-rpc", "\"bare\"");
    expect_sse_error_end(s, "", 500, "upstream_error", "{\"status\":\"error\",\"message\":\"bare\"}");
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/nd-nohandler", NULL);
    expect_ndjson_error_end(s, 200, "", 501, "no_handler", "*");
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/v1/send/nest?reply=sse",
                     "{\"pattern\":{\"cmd\":\"stream_fail\"},\"data\":{\"count\":0,\"error\":" NOPE "}}");
    expect_sse_error_end(s, "", 403, "upstream_error", NOPE);
    stream_free(s);
    /* what fails before the request is written is an ordinary answer */
    s = stream_fetch(f->port, "POST", "/nd-down", "{\"count\":1}");
    expect_error_response(s, 503, "upstream_unavailable", NULL);
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/sse-down", "{\"count\":1}");
    expect_error_response(s, 503, "upstream_unavailable", NULL);
    stream_free(s);
}

/* The head goes out as soon as the request is written, long before the
 * first value: a subscribe-and-wait stream is not headerless behind a
 * proxy. */
static void head_before_first_value(void **state)
{
    fixture_t *f = *state;
    const char *paths[] = { "/nd-long", "/sse-long" };
    for (size_t i = 0; i < 2; i++) {
        stream_t *s = stream_send(f->port, "POST", paths[i], "{\"count\":1,\"interval_ms\":3000}");
        stream_head(s);
        int64_t head_ms = s->head.head_at_ms - s->sent_at_ms;
        if (i == 1) { /* ": ok" comes with the head */
            if (!stream_until(s, SSE_OK) || s->len != strlen(SSE_OK))
                fail_stream(s, "no \": ok\" before the first value");
        }
        stream_finish(s);
        int64_t at[1];
        assert_true(record_times(s, i ? "\n\n" : "\n", 1, at));
        if (head_ms > 1500 || at[0] - s->sent_at_ms < 2500)
            fail_stream(s, "the head came after %lld ms and the first value after %lld ms: expected the head at "
                        "once and the value ~3000 ms later",
                        (long long)head_ms, (long long)(at[0] - s->sent_at_ms));
        if (i == 0)
            expect_ndjson(s, 200, "1\n");
        else
            expect_sse(s, "data: 1\n\n" SSE_END);
        stream_free(s);
    }
}

/* auto and array never answer a partial array of a stream that fails */
static void auto_and_array_fail_whole(void **state)
{
    fixture_t *f = *state;
    const char *obj = "{\"count\":2,\"interval_ms\":20,\"error\":" NOPE "}";
    stream_t *s = stream_fetch(f->port, "POST", "/auto-fail", obj);
    expect_error_response(s, 403, "upstream_error", NOPE);
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/array-fail", obj);
    expect_error_response(s, 403, "upstream_error", NOPE);
    stream_free(s);
    const char *generic = "{\"pattern\":{\"cmd\":\"stream_fail\"},\"data\":{\"count\":2,\"interval_ms\":20,"
                          "\"error\":" NOPE "}}";
    const char *paths[] = { "/v1/send/nest", "/v1/send/nest?reply=auto", "/v1/send/nest?reply=array" };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        s = stream_fetch(f->port, "POST", paths[i], generic);
        expect_error_response(s, 403, "upstream_error", NOPE);
        stream_free(s);
    }
    /* and the empty array of an empty stream */
    s = stream_fetch(f->port, "POST", "/v1/send/nest?reply=array",
                     "{\"pattern\":{\"cmd\":\"stream\"},\"data\":{\"count\":0}}");
    expect_head(s, 200, "application/json");
    expect_ended(s);
    expect_exact_body(s, "[]");
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/v1/send/nest?reply=ndjson",
                     "{\"pattern\":{\"cmd\":\"stream\"},\"data\":{\"count\":0}}");
    expect_ndjson(s, 200, "");
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/v1/send/nest?reply=sse",
                     "{\"pattern\":{\"cmd\":\"stream\"},\"data\":{\"count\":0}}");
    expect_sse(s, SSE_END);
    stream_free(s);
}

/* ---- timeouts ------------------------------------------------------------------------- */

/* 10 values 300 ms apart (~3 s) under timeout_ms 1000 */
#define LONG_STREAM "{\"count\":10,\"interval_ms\":300}"

static void timeout_bounds_each_value(void **state)
{
    fixture_t *f = *state;
    stream_t *s = stream_fetch(f->port, "POST", "/nd", LONG_STREAM);
    expect_ndjson(s, 200, "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n");
    if (s->ended_at_ms - s->sent_at_ms < 2500)
        fail_stream(s, "the stream lasted only %lld ms (expected ~3000)",
                    (long long)(s->ended_at_ms - s->sent_at_ms));
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/sse", LONG_STREAM);
    expect_sse(s, "data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\ndata: 5\n\ndata: 6\n\ndata: 7\n\n"
                  "data: 8\n\ndata: 9\n\ndata: 10\n\n" SSE_END);
    stream_free(s);
}

static void timeout_bounds_whole_auto_array(void **state)
{
    fixture_t *f = *state;
    const char *paths[] = { "/auto", "/array" };
    for (size_t i = 0; i < 2; i++) {
        stream_t *s = stream_fetch(f->port, "POST", paths[i], LONG_STREAM);
        expect_error_response(s, 504, "upstream_timeout", NULL);
        int64_t took = s->ended_at_ms - s->sent_at_ms;
        if (took < 900)
            fail_stream(s, "the 1000 ms timeout fired after %lld ms", (long long)took);
        stream_free(s);
    }
}

static void timeout_before_first_value(void **state)
{
    fixture_t *f = *state;
    const char *paths[] = { "/nd", "/sse" };
    for (size_t i = 0; i < 2; i++) {
        stream_t *s = stream_fetch(f->port, "POST", paths[i], "{\"count\":1,\"interval_ms\":2500}");
        if (i == 0)
            expect_ndjson_error_end(s, 200, "", 504, "upstream_timeout", NULL);
        else
            expect_sse_error_end(s, "", 504, "upstream_timeout", NULL);
        if (!strstr(s->body, "no complete reply from service nest within 1000 ms"))
            fail_stream(s, "the message does not name the service and the timeout");
        int64_t took = s->ended_at_ms - s->sent_at_ms;
        if (took < 900)
            fail_stream(s, "the 1000 ms timeout fired after %lld ms", (long long)took);
        stream_free(s);
    }
}

/* Two values, then 3 s of silence before completion: the 1000 ms timeout
 * ends the stream with an error after the second value. */
static void gap_mid_stream_times_out(void **state)
{
    fixture_t *f = *state;
    const char *data = "{\"count\":2,\"interval_ms\":50,\"complete_after_ms\":3000}";
    stream_t *s = stream_fetch(f->port, "POST", "/nd", data);
    expect_ndjson_error_end(s, 200, "1\n2\n", 504, "upstream_timeout", NULL);
    int64_t at[3];
    assert_true(record_times(s, "\n", 3, at));
    if (at[2] - at[1] < 900)
        fail_stream(s, "the error line came %lld ms after the last value, before the 1000 ms timeout",
                    (long long)(at[2] - at[1]));
    stream_free(s);
    s = stream_fetch(f->port, "POST", "/sse", data);
    expect_sse_error_end(s, "data: 1\n\ndata: 2\n\n", 504, "upstream_timeout", NULL);
    assert_true(record_times(s, "\n\n", 3, at));
    if (at[2] - at[1] < 900)
        fail_stream(s, "the error event came %lld ms after the last value, before the 1000 ms "
                    "timeout", (long long)(at[2] - at[1]));
    stream_free(s);
}

/* ---- SSE keepalive ----------------------------------------------------------------------- */

/* One value at ~2 s, completion ~16.5 s later: a keepalive comment 15 s
 * after the value (not 15 s after the request), then the end event. */
static void sse_keepalive_after_15s_silence(void **state)
{
    fixture_t *f = *state;
    stream_t *s = stream_fetch(f->port, "POST", "/sse-long",
                               "{\"count\":1,\"interval_ms\":2000,\"complete_after_ms\":16500}");
    expect_sse(s, "data: 1\n\n: keepalive\n\n" SSE_END);
    int64_t at[3];
    assert_true(record_times(s, "\n\n", 3, at));
    if (at[1] - at[0] < 14000)
        fail_stream(s, "the keepalive came %lld ms after the last event, expected after 15 s of "
                    "silence", (long long)(at[1] - at[0]));
    stream_free(s);
}

/* ---- many streams, clients that leave -------------------------------------------------- */

typedef struct client {
    int port;
    int index;
    pthread_barrier_t *start;
    bool ok;
    char detail[200];
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    bool sse = c->index % 2;
    char body[160], expected[256];
    snprintf(body, sizeof body,
             "{\"values\":[\"c%d-é\",%d,{\"c\":%d}],\"interval_ms\":150}", c->index, c->index, c->index);
    if (sse)
        snprintf(expected, sizeof expected, SSE_OK "data: \"c%d-é\"\n\ndata: %d\n\ndata: {\"c\":%d}\n\n" SSE_END,
                 c->index, c->index, c->index);
    else
        snprintf(expected, sizeof expected, "\"c%d-é\"\n%d\n{\"c\":%d}\n", c->index, c->index,
                 c->index);
    pthread_barrier_wait(c->start);
    struct http_request req = { .method = "POST", .path = sse ? "/sse-long" : "/nd-long",
                                .body = body, .body_len = strlen(body) };
    struct http_response r;
    int rc = http_fetch(c->port, &req, &r, 60000);
    if (rc != 0) {
        snprintf(c->detail, sizeof c->detail, "no response: %s", strerror(-rc));
        return NULL;
    }
    const char *ct = http_header(&r, "Content-Type");
    const char *want = sse ? "text/event-stream" : "application/x-ndjson";
    c->ok = r.status == 200 && ct && strncasecmp(ct, want, strlen(want)) == 0 &&
            strcmp(r.body, expected) == 0;
    if (!c->ok)
        snprintf(c->detail, sizeof c->detail, "%d %s %.120s", r.status, ct ? ct : "(no type)", r.body);
    http_response_free(&r);
    return NULL;
}

static void concurrent_streams(void **state)
{
    fixture_t *f = *state;
    enum { N = 50 };
    client_t clients[N];
    pthread_t threads[N];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N);
    for (int i = 0; i < N; i++) {
        clients[i] = (client_t){ .port = f->port, .index = i, .start = &start };
        assert_int_equal(pthread_create(&threads[i], NULL, client_main, &clients[i]), 0);
    }
    int failed = 0, first = -1;
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
        if (!clients[i].ok && failed++ == 0)
            first = i;
    }
    pthread_barrier_destroy(&start);
    if (failed) {
        print_log_tail();
        fail_msg("%d of %d concurrent streams failed; stream %d (%s): %s", failed, N, first,
                 first % 2 ? "sse" : "ndjson", clients[first].detail);
    }
}

/* A gateway of its own for clients_leave_mid_stream: at most 8 requests
 * may wait for the service, so a stream whose client left must release
 * its upstream request for the next ones to be served. */
static const char LEAVE_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"limits\": { \"max_inflight\": 8 },\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"], \"timeout_ms\": 20000 } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/nd-long\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"reply\": \"ndjson\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/sse-long\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"reply\": \"sse\" } ] }\n";

/* 50 clients leave mid-stream (half with FIN, half with RST; ndjson and
 * sse), each while its stream has ~30 s to go: the upstream requests are
 * cancelled (max_inflight 8 is never reached), the gateway keeps serving,
 * and its descriptors and memory come back. */
static void clients_leave_mid_stream(void **state)
{
    fixture_t *f = *state;
    struct gwproc *gw = gateway_start(LEAVE_CONFIG, f->nest->address);
    if (!gw)
        fail_msg("the gateway did not start");
    g_own = gw;
    g_gateway = gw;
    int port = gwproc_port(gw);
    pid_t pid = gwproc_pid(gw);
    /* warm up: a stream to its end, so that lazily made things exist */
    stream_t *s = stream_fetch(port, "POST", "/nd-long", "{\"count\":2,\"interval_ms\":10}");
    expect_ndjson(s, 200, "1\n2\n");
    stream_free(s);
    int fds0 = open_fds(pid);
    assert_true(fds0 > 0);
    struct gwproc_usage u0 = usage_of(gw);

    for (int i = 0; i < 50; i++) {
        bool sse = i % 2;
        s = stream_send(port, "POST", sse ? "/sse-long" : "/nd-long",
                        "{\"count\":300,\"interval_ms\":100}");
        stream_head(s);
        if (s->head.status != 200)
            fail_stream(s, "stream #%d after %d clients left mid-stream: status %d (with "
                        "max_inflight 8: were their upstream requests not cancelled?)",
                        i, i, s->head.status);
        if (sse)
            expect_sse_head(s);
        else
            expect_ndjson_head(s, 200);
        if (!stream_until(s, sse ? "data: 1\n\n" : "1\n"))
            fail_stream(s, "stream #%d: the first value never came", i);
        if ((i / 2) % 2)
            http_abort(s->conn);
        else
            http_close(s->conn);
        s->conn = NULL;
        stream_free(s);
    }

    /* still serving, streams and all */
    s = stream_fetch(port, "POST", "/nd-long", "{\"count\":3,\"interval_ms\":10}");
    expect_ndjson(s, 200, "1\n2\n3\n");
    stream_free(s);
    s = stream_fetch(port, "POST", "/sse-long", "{\"count\":1}");
    expect_sse(s, "data: 1\n\n" SSE_END);
    stream_free(s);
    if (!gwproc_running(gw))
        fail_msg("the gateway died");

    /* the descriptors of the 50 connections are released */
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    int fds;
    while ((fds = open_fds(pid)) > fds0 && deadline_remaining_ms(deadline) > 0)
        deadline_pause_ms(POLL_PAUSE_MS);
    if (fds > fds0) {
        print_log_tail();
        fprintf(stderr, "the gateway's descriptors now:\n");
        print_fds(pid);
        fail_msg("the gateway has %d open descriptors %d ms after 50 clients left mid-stream, "
                 "%d before", fds, POLL_TIMEOUT_MS, fds0);
    }
    struct gwproc_usage u1 = usage_of(gw);
    if (u1.rss_kb > u0.rss_kb + 20 * 1024) {
        print_log_tail();
        fail_msg("the gateway's RSS grew from %llu kB to %llu kB over 50 clients that left "
                 "mid-stream", (unsigned long long)u0.rss_kb, (unsigned long long)u1.rss_kb);
    }
    bool ok = gateway_stop(gw);
    g_gateway = f->gw;
    g_own = NULL;
    gwproc_free(gw);
    if (!ok)
        fail_msg("the gateway did not exit 0 after SIGTERM");
}

/* ---- scripted raw upstreams --------------------------------------------------------------- */

/* What the raw service answers, by the request's pattern (a string):
 *   "values"  HOSTILE_VALUES one per packet; the last carries isDisposed,
 *             or with data {"sep":true} the completion comes on its own
 *   "pong"    the single value "pong"
 *   "close"   two values, then closes the connection
 *   "garbage" two values, then bytes that are not a frame
 *   "flood"   FLOOD_VALUES values of FLOOD_VALUE_BYTES each, as fast as the
 *             connection takes them, then the completion */
static const char *const HOSTILE_VALUES[] = {
    "12345678901234567890123",
    "\"\\ud800\"",
    "\"é😀 한국 \\u0000\"",
    "{\"big\":-1.50e-400,\"t\":\"\\uDC00\\/\",\"f\":1.0E+2,\"arr\":[0.10,-0]}",
    "null",
    "[]",
};
#define NHOSTILE (sizeof HOSTILE_VALUES / sizeof *HOSTILE_VALUES)

#define FLOOD_VALUES 1024
#define FLOOD_VALUE_BYTES 65536   /* the JSON string, quotes included */

typedef struct raw_state {
    atomic_int flood_sent;  /* flood values written */
    atomic_int flood_done;  /* 1: all written and completed; -1: a write failed */
} raw_state_t;

/* Value i of the flood: "<6 digits>xxx...x" (FLOOD_VALUE_BYTES bytes). */
static void flood_value(char *v, int i)
{
    v[0] = '"';
    snprintf(v + 1, 8, "%06u", (unsigned)i % 1000000u);
    memset(v + 7, 'x', FLOOD_VALUE_BYTES - 8);
    v[FLOOD_VALUE_BYTES - 1] = '"';
    v[FLOOD_VALUE_BYTES] = '\0';
}

static int send_value(struct testnet_peer *peer, const char *id, const char *value, bool last)
{
    size_t cap = strlen(value) + strlen(id) + 64;
    char *frame = malloc(cap);
    if (!frame)
        return -ENOMEM;
    snprintf(frame, cap, "{\"id\":\"%s\",\"response\":%s%s}", id, value,
             last ? ",\"isDisposed\":true" : "");
    int rc = testnet_peer_send_frame(peer, frame);
    free(frame);
    return rc;
}

static int send_done(struct testnet_peer *peer, const char *id)
{
    char frame[200];
    snprintf(frame, sizeof frame, "{\"id\":\"%s\",\"isDisposed\":true}", id);
    return testnet_peer_send_frame(peer, frame);
}

static void flood(struct testnet_peer *peer, raw_state_t *st, const char *id)
{
    char *frame = malloc(FLOOD_VALUE_BYTES + 256);
    char *value = malloc(FLOOD_VALUE_BYTES + 1);
    int rc = frame && value ? 0 : -ENOMEM;
    for (int i = 0; i < FLOOD_VALUES && rc == 0 && !testnet_peer_stopping(peer); i++) {
        flood_value(value, i);
        snprintf(frame, FLOOD_VALUE_BYTES + 256, "{\"id\":\"%s\",\"response\":%s}", id, value);
        rc = testnet_peer_send_frame(peer, frame);
        if (rc == 0)
            atomic_fetch_add(&st->flood_sent, 1);
    }
    if (rc == 0)
        rc = send_done(peer, id);
    atomic_store(&st->flood_done, rc == 0 ? 1 : -1);
    free(frame);
    free(value);
}

/* Answers one request; false when the connection is done for. */
static bool raw_answer(struct testnet_peer *peer, raw_state_t *st, const char *id,
                       const char *pattern, bool sep)
{
    if (strcmp(pattern, "values") == 0) {
        for (size_t i = 0; i < NHOSTILE; i++)
            send_value(peer, id, HOSTILE_VALUES[i], !sep && i == NHOSTILE - 1);
        if (sep)
            send_done(peer, id);
    } else if (strcmp(pattern, "pong") == 0) {
        send_value(peer, id, "\"pong\"", true);
    } else if (strcmp(pattern, "close") == 0) {
        send_value(peer, id, "\"a\"", false);
        send_value(peer, id, "\"b\"", false);
        testnet_peer_close(peer, false);
        return false;
    } else if (strcmp(pattern, "garbage") == 0) {
        send_value(peer, id, "\"a\"", false);
        send_value(peer, id, "\"b\"", false);
        testnet_peer_write(peer, "garbage, not a frame\n", 21);
        testnet_peer_wait_closed(peer, -1);
        return false;
    } else if (strcmp(pattern, "flood") == 0) {
        flood(peer, st, id);
    }
    return true;
}

static void raw_script(struct testnet_peer *peer, void *arg)
{
    raw_state_t *st = arg;
    while (!testnet_peer_stopping(peer)) {
        char *json;
        ssize_t n = testnet_read_frame(&peer->reader, &json, 500);
        if (n == -ETIMEDOUT)
            continue;
        if (n < 0)
            return;
        json_t *packet = json_loadb(json, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        free(json);
        const char *id = json_string_value(json_object_get(packet, "id"));
        const char *pattern = json_string_value(json_object_get(packet, "pattern"));
        char idc[128] = "", patc[32] = "";
        if (id && pattern) {
            snprintf(idc, sizeof idc, "%s", id);
            snprintf(patc, sizeof patc, "%s", pattern);
        }
        bool sep = json_is_true(json_object_get(json_object_get(packet, "data"), "sep"));
        json_decref(packet);
        if (idc[0] && !raw_answer(peer, st, idc, patc, sep))
            return;
    }
}

static const char RAW_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\",\n"
    "  \"log\": { \"level\": \"info\", \"access\": true },\n"
    "  \"services\": { \"raw\": { \"endpoints\": [\"${NEST_ADDR}\"], \"pool_size\": 2,\n"
    "                           \"timeout_ms\": 20000 } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/values-nd\", \"service\": \"raw\", \"pattern\": \"values\",\n"
    "      \"reply\": \"ndjson\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/values-sse\", \"service\": \"raw\", \"pattern\": \"values\",\n"
    "      \"reply\": \"sse\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/pong\", \"service\": \"raw\", \"pattern\": \"pong\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/close-nd\", \"service\": \"raw\", \"pattern\": \"close\",\n"
    "      \"reply\": \"ndjson\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/garbage-sse\", \"service\": \"raw\", \"pattern\": \"garbage\",\n"
    "      \"reply\": \"sse\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/flood\", \"service\": \"raw\", \"pattern\": \"flood\",\n"
    "      \"reply\": \"ndjson\" } ] }\n";

typedef struct raw_env {
    raw_state_t state;
    struct testnet_upstream *up;
    struct gwproc *gw;
    int port;
} raw_env_t;

/* The raw environment of the running test, for the teardown. */
static raw_env_t *g_raw;

/* A scripted upstream (both pool connections accepted) and a gateway in
 * front of it. On the heap: script threads use it until the upstream is
 * stopped, even when the test failed halfway. */
static raw_env_t *raw_open(void)
{
    raw_env_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    g_raw = e;
    assert_int_equal(testnet_upstream_start(raw_script, &e->state, &e->up), 0);
    char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", testnet_upstream_port(e->up));
    e->gw = gateway_start(RAW_CONFIG, address);
    if (!e->gw)
        fail_msg("the gateway did not start");
    g_own = e->gw;
    g_gateway = e->gw;
    e->port = gwproc_port(e->gw);
    assert_int_equal(testnet_upstream_wait_accepted(e->up, 2, POLL_TIMEOUT_MS), 0);
    return e;
}

static void raw_free(raw_env_t *e)
{
    if (g_own == e->gw)
        g_own = NULL;
    if (g_gateway == e->gw)
        g_gateway = NULL;
    gwproc_free(e->gw);
    testnet_upstream_stop(e->up);
    free(e);
    if (g_raw == e)
        g_raw = NULL;
}

/* Stops the gateway (it must exit 0), then the upstream. */
static void raw_close(raw_env_t *e)
{
    bool ok = gateway_stop(e->gw);
    raw_free(e);
    if (!ok)
        fail_msg("the gateway did not exit 0 after SIGTERM");
}

static int raw_teardown(void **state)
{
    (void)state;
    streams_free_all();
    if (g_raw)
        raw_free(g_raw);
    gwproc_free(g_own);
    g_own = NULL;
    g_gateway = NULL;
    return 0;
}

static void raw_values_byte_exact(void **state)
{
    (void)state;
    raw_env_t *e = raw_open();
    char nd[1024] = "", sse[1024] = "";
    for (size_t i = 0; i < NHOSTILE; i++) {
        snprintf(nd + strlen(nd), sizeof nd - strlen(nd), "%s\n", HOSTILE_VALUES[i]);
        snprintf(sse + strlen(sse), sizeof sse - strlen(sse), "data: %s\n\n", HOSTILE_VALUES[i]);
    }
    snprintf(sse + strlen(sse), sizeof sse - strlen(sse), "%s", SSE_END);
    const char *variants[] = { "{\"sep\":false}", "{\"sep\":true}" };
    for (size_t v = 0; v < 2; v++) {
        stream_t *s = stream_fetch(e->port, "POST", "/values-nd", variants[v]);
        expect_ndjson(s, 200, nd);
        stream_free(s);
        s = stream_fetch(e->port, "POST", "/values-sse", variants[v]);
        expect_sse(s, sse);
        stream_free(s);
    }
    raw_close(e);
}

/* The connection to the service breaks mid-stream: the error line / event
 * after the values that came. */
static void raw_upstream_breaks_mid_stream(void **state)
{
    (void)state;
    raw_env_t *e = raw_open();
    stream_t *s = stream_fetch(e->port, "POST", "/close-nd", NULL);
    expect_ndjson_error_end(s, 200, "\"a\"\n\"b\"\n", 502, "upstream_closed", NULL);
    stream_free(s);
    s = stream_fetch(e->port, "POST", "/garbage-sse", NULL);
    expect_sse_error_end(s, "data: \"a\"\n\ndata: \"b\"\n\n", 502, "bad_upstream_message", NULL);
    stream_free(s);
    raw_close(e);
}

/* The third number of /proc/sys/net/ipv4/<name> (the autotuning maximum of
 * a socket buffer), or 0 if unknown. */
static long sysctl_max(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "/proc/sys/net/ipv4/%s", name);
    FILE *fp = fopen(path, "r");
    long a = 0, b = 0, c = 0;
    if (fp) {
        if (fscanf(fp, "%ld %ld %ld", &a, &b, &c) != 3)
            c = 0;
        fclose(fp);
    }
    return c;
}

/* A client that stops reading while the service floods its stream: the
 * gateway buffers ~4 MiB at most, then gives up (503 overloaded after what
 * it buffered) and keeps serving; its memory stays bounded. */
static void raw_slow_reader_overloaded(void **state)
{
    (void)state;
    raw_env_t *e = raw_open();
    struct gwproc_usage u0 = usage_of(e->gw);
    uint64_t base_kb = u0.hwm_kb > u0.rss_kb ? u0.hwm_kb : u0.rss_kb;

    /* a small receive buffer, so that the kernel holds little of the stream */
    stream_t *s = stream_connect(e->port);
    int rcvbuf = 128 * 1024;
    assert_int_equal(setsockopt(http_fd(s->conn), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    stream_request(s, "POST", "/flood", NULL);

    /* the client reads nothing until the service has written every value */
    int64_t deadline = deadline_after(60000);
    uint64_t max_rss = u0.rss_kb;
    while (atomic_load(&e->state.flood_done) == 0 && deadline_remaining_ms(deadline) > 0) {
        struct gwproc_usage u = usage_of(e->gw);
        if (u.rss_kb > max_rss)
            max_rss = u.rss_kb;
        deadline_pause_ms(POLL_PAUSE_MS);
    }
    int done = atomic_load(&e->state.flood_done);
    if (done != 1) {
        print_log_tail();
        fail_msg("the service could write only %d of %d values of 64 KiB (%s): the gateway stopped "
                 "reading its connection instead of giving up on the stalled stream",
                 atomic_load(&e->state.flood_sent), FLOOD_VALUES,
                 done == 0 ? "60 s passed" : "a write failed");
    }

    /* meanwhile the gateway serves others */
    stream_t *other = stream_fetch(e->port, "POST", "/pong", NULL);
    expect_head(other, 200, "application/json");
    expect_ended(other);
    expect_exact_body(other, "\"pong\"");
    stream_free(other);
    other = stream_fetch(e->port, "POST", "/values-nd", "{\"sep\":true}");
    expect_ndjson_head(other, 200);
    expect_ended(other);
    stream_free(other);

    struct gwproc_usage u1 = usage_of(e->gw);
    uint64_t peak = u1.hwm_kb > max_rss ? u1.hwm_kb : max_rss;
    if (peak > base_kb + 64 * 1024) {
        print_log_tail();
        fail_msg("the gateway's peak RSS reached %llu kB while a client did not read a 64 MiB "
                 "stream; %llu kB at the start (bound: +64 MB)",
                 (unsigned long long)peak, (unsigned long long)base_kb);
    }

    /* now the client reads: values 0, 1, ... in order, then the error line */
    stream_head(s);
    stream_finish(s);
    expect_ndjson_head(s, 200);
    expect_ended(s);
    size_t off = 0;
    int k = 0;
    char *want = malloc(FLOOD_VALUE_BYTES + 1);
    assert_non_null(want);
    for (;;) {
        const char *nl = memchr(s->body + off, '\n', s->len - off);
        if (!nl)
            break;
        size_t len = (size_t)(nl - (s->body + off));
        if (len != FLOOD_VALUE_BYTES || s->body[off] != '"')
            break;
        flood_value(want, k);
        if (memcmp(s->body + off, want, FLOOD_VALUE_BYTES) != 0) {
            free(want);
            fail_msg("line %d of the stalled stream is not value %d (%.12s...)", k, k, s->body + off);
        }
        off += len + 1;
        k++;
    }
    free(want);
    if (k == 0 || k >= FLOOD_VALUES)
        fail_msg("the stalled client got %d values of %d, expected some and not all", k, FLOOD_VALUES);
    /* the gateway's own buffer (~4 MiB) plus what the kernel holds for the
     * two sockets, plus slack */
    long wmem = sysctl_max("tcp_wmem");
    if (wmem > 0) {
        long bound = 4L * 1024 * 1024 + wmem + 2L * rcvbuf + 2L * 1024 * 1024;
        if ((long)off > bound)
            fail_msg("the stalled client got %zu bytes of values; the gateway buffered more than "
                     "~4 MiB (bound with the kernel's buffers: %ld)", off, bound);
    }
    /* what follows the values: exactly the error line */
    expect_error_line_at(s, off, 503, "overloaded", NULL);
    stream_free(s);

    /* still serving */
    stream_t *after = stream_fetch(e->port, "POST", "/pong", NULL);
    expect_exact_body(after, "\"pong\"");
    stream_free(after);
    raw_close(e);
}

/* ---- main --------------------------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_setup, test_teardown)
#define R(fn) cmocka_unit_test_teardown(fn, raw_teardown)

int main(void)
{
    const char *filter = getenv("PG_TEST_FILTER"); /* e.g. "raw_*", for debugging */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    const struct CMUnitTest nest_tests[] = {
        T(values_arrive_as_they_come),
        T(single_zero_and_status),
        T(unicode_values_byte_exact),
        T(failure_mid_stream),
        T(failure_before_first_value_in_band),
        T(head_before_first_value),
        T(auto_and_array_fail_whole),
        T(timeout_bounds_each_value),
        T(timeout_bounds_whole_auto_array),
        T(timeout_before_first_value),
        T(gap_mid_stream_times_out),
        T(concurrent_streams),
        T(clients_leave_mid_stream),
        T(sse_keepalive_after_15s_silence),
    };
    const struct CMUnitTest raw_tests[] = {
        R(raw_values_byte_exact),
        R(raw_upstream_breaks_mid_stream),
        R(raw_slow_reader_overloaded),
    };
    int failed = cmocka_run_group_tests_name("stream_nest12", nest_tests, group_setup_v12, group_teardown);
    failed += cmocka_run_group_tests_name("stream_nest10", nest_tests, group_setup_v10, group_teardown);
    failed += cmocka_run_group_tests_name("stream_raw", raw_tests, NULL, NULL);
    return failed;
}
