/* gwtest: what the integration tests of the built binary share, on top of
 * gateway.h (the gateway as a child process) and http.h (the HTTP client):
 *
 *   - the running test's gateway (gwt_start, gwt_stop), whose log tail every
 *     failure below prints;
 *   - requests that fail the running cmocka test when no response comes,
 *     and expectations on answers: exact bodies, JSON bodies, the error
 *     body {"statusCode","error","message"[,"details"]};
 *   - polling for a condition with a generous deadline (never a sleep as
 *     synchronization);
 *   - a request on a thread of its own (gwt_bg_*);
 *   - /status as JSON, /metrics parsed into samples (with our own strict
 *     reader, histogram invariants, `promtool check metrics`), and the JSON
 *     log lines.
 *
 * Everything here calls cmocka's fail_msg on failure: call it from the
 * test's main thread only (gwt_bg_* threads only do HTTP). Strings passed
 * in are borrowed for the call. Responses returned are the caller's
 * (http_response_free); JSON values returned are the caller's
 * (json_decref).
 */
#ifndef PG_TESTS_SUPPORT_GWTEST_H
#define PG_TESTS_SUPPORT_GWTEST_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "support/gateway.h"
#include "support/http.h"

#define GWT_REQ_TIMEOUT_MS 30000   /* one HTTP exchange, on a loaded machine */
#define GWT_POLL_TIMEOUT_MS 30000  /* waiting for a condition */
#define GWT_POLL_PAUSE_MS 50       /* between two polls of a condition */

/* ---- the test's gateway ------------------------------------------------------ */

/* The gateway whose log a failure prints (NULL: none). */
void gwt_set_current(struct gwproc *g);
struct gwproc *gwt_current(void);
/* Prints the current gateway's last log lines (for failure messages). */
void gwt_print_log_tail(void);

/* Starts a gateway on `config` with the extra environment (NULL-terminated
 * "NAME=value", may be NULL) on top of `base` (may be NULL); fails the test
 * when it does not come up. It becomes the current gateway. */
struct gwproc *gwt_start(const char *config, const char *const *env, const struct gwproc_options *base);
/* SIGTERM: it must exit 0 (an ASan build exits non-zero on a leak); then
 * frees it (no longer current). NULL is ignored. */
void gwt_stop(struct gwproc *g);
/* The same, but the process is kept (its log stays readable) until
 * gwt_discard. */
void gwt_stop_keep(struct gwproc *g);
/* Frees it without checking how it ends (a teardown after a failure). */
void gwt_discard(struct gwproc *g);

/* ---- failing with context ------------------------------------------------------ */

void gwt_fail_response(const struct http_response *r, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
void gwt_fail_json(const json_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* ---- requests and expectations --------------------------------------------------- */

/* One request on a new connection; fails the test if no response came. */
struct http_response gwt_request(int port, const char *method, const char *path, const char *const *headers,
                                 const void *body, size_t len);
/* The same with a text body (NULL: none), and no extra headers. */
struct http_response gwt_req(int port, const char *method, const char *path, const char *body);
struct http_response gwt_req_with(int port, const char *method, const char *path, const char *const *headers,
                                  const char *body);

/* The body as JSON (any value); fails the test when it is not. */
json_t *gwt_parse(const struct http_response *r, const char *what);
/* The response has a non-empty X-Request-Id. */
void gwt_expect_request_id(const struct http_response *r, const char *what);
/* Status and body exactly; every response has an X-Request-Id; a body
 * means application/json. */
void gwt_expect_body(const struct http_response *r, const char *what, int status, const char *body);
/* Status, application/json, and a body equal as JSON to `expected`. */
void gwt_expect_json(const struct http_response *r, const char *what, int status, const char *expected);
/* A gateway error: status, application/json, X-Request-Id, and exactly
 * {"statusCode": status, "error": code, "message": non-empty} plus
 * "details" for upstream errors only. _json returns the parsed body. */
void gwt_expect_error(const struct http_response *r, const char *what, int status, const char *code);
json_t *gwt_expect_error_json(const struct http_response *r, const char *what, int status, const char *code);

/* Shorthands: one request, its check, freed. */
void gwt_check(int port, const char *method, const char *path, const char *body, int status, const char *expected);
void gwt_check_json(int port, const char *method, const char *path, const char *body, int status,
                    const char *expected);
void gwt_check_error(int port, const char *method, const char *path, const char *body, int status, const char *code);

/* Polls until the request answers `status` with exactly `expected` (or, for
 * _json, a body equal as JSON; for _error, that error); fails after
 * timeout_ms showing the last response. */
void gwt_poll_body(int port, const char *method, const char *path, const char *body, int status,
                   const char *expected, int timeout_ms);
void gwt_poll_json(int port, const char *method, const char *path, const char *body, int status,
                   const char *expected, int timeout_ms);
void gwt_poll_error(int port, const char *method, const char *path, const char *body, int status,
                    const char *code, int timeout_ms);

/* ---- a request on a thread of its own ----------------------------------------------- */

typedef struct gwt_bg {
    int port;
    const char *method;
    const char *path;
    char body[256];
    pthread_t thread;
    atomic_int sent;          /* the request was written (or failed) */
    atomic_int done;
    int rc;                   /* 0, or a negative errno */
    struct http_response resp;
    int64_t sent_at_ms;       /* before the request was written */
    int64_t done_at_ms;
} gwt_bg_t;

/* Starts the request (on the heap: a test failing while the thread runs
 * leaks it rather than let the thread write into a dead stack frame). */
gwt_bg_t *gwt_bg_start(int port, const char *method, const char *path, const char *body);
/* Joins the thread; fails the test if the request got no response. */
void gwt_bg_join(gwt_bg_t *b);
void gwt_bg_free(gwt_bg_t *b);
/* Waits until b was written, then proves it reached the gateway's loop: a
 * later request (on a later connection) `method path body` must answer
 * `status` `expected`, which the loop handles after b's bytes. Fails if b
 * already finished. */
void gwt_bg_wait_in_flight(gwt_bg_t *b, int port, const char *method, const char *path, const char *body,
                           int status, const char *expected);

/* ---- /status, /metrics, the log ---------------------------------------------------- */

/* GET /status on `port` with the header lines (NULL: none): 200 and a JSON
 * object. */
json_t *gwt_status(int port, const char *const *headers);
/* The first connection of the first endpoint of `service` in a /status
 * (a borrowed reference); fails the test when there is none. */
json_t *gwt_status_conn(json_t *status, const char *service);
/* A string member, or NULL. */
const char *gwt_str(const json_t *obj, const char *key);
void gwt_expect_int(const json_t *obj, const char *key, long long want, const char *where);

typedef struct gwt_sample {
    char *name;
    json_t *labels;   /* object: label -> string */
    double value;
} gwt_sample_t;

typedef struct gwt_scrape {
    char *text;
    gwt_sample_t *v;
    size_t n, cap;
    json_t *types;    /* family -> "counter", "gauge", "histogram"... */
} gwt_scrape_t;

/* GET /metrics: 200, the 0.0.4 text Content-Type, every line parsed. */
gwt_scrape_t gwt_scrape(int port, const char *const *headers);
void gwt_scrape_free(gwt_scrape_t *s);
/* The sample `name` whose label set is exactly `labels` (a JSON object
 * text, "{}" for none): its value, or `absent`. */
double gwt_metric_or(const gwt_scrape_t *s, const char *name, const char *labels, double absent);
/* The same, failing when absent. */
double gwt_metric(const gwt_scrape_t *s, const char *name, const char *labels);
void gwt_expect_metric(const gwt_scrape_t *s, const char *name, const char *labels, double want);
void gwt_fail_scrape(const gwt_scrape_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* Every histogram series: buckets non-decreasing in le order, +Inf equal
 * to _count, a _sum. */
void gwt_check_histograms(const gwt_scrape_t *s);
/* Every `route` label is one of `allowed` (NULL-terminated). */
void gwt_check_route_labels(const gwt_scrape_t *s, const char *const *allowed);
/* `promtool check metrics` accepts the text; false (after saying so) when
 * promtool is not installed. */
bool gwt_promtool_check(const gwt_scrape_t *s);

/* Every log line of g (a JSON array of objects). With `strict`, a line
 * that is not a JSON object with ts, level and msg fails the test. */
json_t *gwt_log_lines(struct gwproc *g, bool strict);
/* The lines with this msg (and level, unless NULL): a new array. */
json_t *gwt_log_find(const json_t *lines, const char *msg, const char *level);

#endif
