#include "gateway/live.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/upstream.h"
#include "gateway/service_opts.h"

/* One question under way. */
typedef struct ask {
    live_report_t *report;
    buf_t value;
    int done;
    size_t *pending;
} ask_t;

static void report_handlers(live_report_t *r, span_t value)
{
    json_error_t error;
    json_t *list = json_loadb(value.p, value.n, JSON_DECODE_ANY, &error);
    size_t i;
    json_t *item;
    if (!json_is_array(list)) {
        r->status = LIVE_UNREACHABLE;
        snprintf(r->detail, sizeof r->detail, "the answer to %s is not a list of handlers", LIVE_PATTERN);
        json_decref(list);
        return;
    }
    r->handlers = calloc(json_array_size(list) + 1, sizeof *r->handlers);
    json_array_foreach (list, i, item) {
        json_t *pattern = json_object_get(item, "pattern");
        const char *kind = json_string_value(json_object_get(item, "kind"));
        if (!r->handlers || !pattern || !kind)
            continue;
        r->handlers[r->n++] = (live_handler_t){ json_incref(pattern), strcmp(kind, "emit") == 0 };
    }
    r->status = LIVE_LISTED;
    json_decref(list);
}

static void on_value(void *ctx, span_t value)
{
    ask_t *a = ctx;
    buf_clear(&a->value);
    buf_append_span(&a->value, value);
}

static void on_done(void *ctx, up_outcome_t outcome, span_t err, const char *detail)
{
    (void)err;
    ask_t *a = ctx;
    a->done = 1;
    (*a->pending)--;
    if (outcome == UP_OK) {
        report_handlers(a->report, span_of(a->value.data ? a->value.data : "", a->value.len));
    } else if (outcome == UP_NO_HANDLER) {
        a->report->status = LIVE_NO_MODULE;
    } else {
        a->report->status = LIVE_UNREACHABLE;
        snprintf(a->report->detail, sizeof a->report->detail, "%s: %s", up_outcome_name(outcome),
                 detail ? detail : "");
    }
}

static const up_callbacks_t ask_callbacks = { on_value, on_done };

static void ask(up_service_t *svc, ask_t *a, uint32_t timeout_ms)
{
    (*a->pending)++;
    up_request_opts_t o = { timeout_ms, 0, false };
    if (!up_submit(svc, UP_KIND_SEND, span_cstr(LIVE_PATTERN), span_cstr("{}"), span_of(NULL, 0), &o,
                   &ask_callbacks, a)) {
        (*a->pending)--;
        a->report->status = LIVE_UNREACHABLE;
        snprintf(a->report->detail, sizeof a->report->detail, "out of memory");
    }
}

/* Runs the loop until every question is answered, then closes it clean. */
static void run(uv_loop_t *loop, upstream_t *up, const size_t *pending)
{
    while (*pending > 0 && uv_run(loop, UV_RUN_ONCE))
        ;
    upstream_close(up);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
}

live_report_t *live_ask_config(const config *cfg, uint32_t timeout_ms)
{
    size_t n = cfg->service_count, pending = 0;
    live_report_t *reports = calloc(n + 1, sizeof *reports);
    ask_t *asks = calloc(n + 1, sizeof *asks);
    uv_loop_t loop;
    uv_loop_init(&loop);
    upstream_t *up = reports && asks ? upstream_new(&loop) : NULL;
    if (!up) {
        free(reports);
        free(asks);
        uv_loop_close(&loop);
        return NULL;
    }
    upstream_set_dns_servers(up, (const char *const *)cfg->dns_servers, cfg->dns_server_count, NULL, 0);
    for (size_t i = 0; i < n; i++) {
        config_service s = cfg->services[i];
        s.connect = UP_CONNECT_EAGER;
        s.retry_attempts = 0;
        asks[i] = (ask_t){ &reports[i], BUF_INIT, 0, &pending };
        up_service_t *svc = service_opts_add(up, &s, NULL, reports[i].detail, sizeof reports[i].detail);
        if (!svc) {
            reports[i].status = LIVE_UNREACHABLE;
            continue;
        }
        ask(svc, &asks[i], timeout_ms);
    }
    run(&loop, up, &pending);
    for (size_t i = 0; i < n; i++)
        buf_free(&asks[i].value);
    free(asks);
    return reports;
}

int live_ask_address(const char *address, const tls_client_opts_t *tls, const char *servername,
                     uint32_t timeout_ms, live_report_t *report)
{
    memset(report, 0, sizeof *report);
    uv_loop_t loop;
    uv_loop_init(&loop);
    upstream_t *up = upstream_new(&loop);
    if (!up) {
        uv_loop_close(&loop);
        snprintf(report->detail, sizeof report->detail, "out of memory");
        return -1;
    }
    up_service_opts_t o;
    up_service_opts_defaults(&o);
    const char *eps[] = { address };
    o.name = "scaffold";
    o.endpoints = eps;
    o.n_endpoints = 1;
    o.tls = tls;
    o.servername = servername;
    o.timeout_ms = timeout_ms;
    size_t pending = 0;
    ask_t a = { report, BUF_INIT, 0, &pending };
    up_service_t *svc = up_service_add(up, &o, report->detail, sizeof report->detail);
    if (svc)
        ask(svc, &a, timeout_ms);
    run(&loop, up, &pending);
    buf_free(&a.value);
    if (!svc) {
        report->status = LIVE_UNREACHABLE;
        return -1;
    }
    return 0;
}

void live_report_free(live_report_t *r)
{
    for (size_t i = 0; r && i < r->n; i++)
        json_decref(r->handlers[i].pattern);
    if (r)
        free(r->handlers);
}

void live_reports_free(live_report_t *reports, size_t n)
{
    for (size_t i = 0; reports && i < n; i++)
        live_report_free(&reports[i]);
    free(reports);
}

/* A pattern as Nest's server sees it: a string that is JSON for an object
 * is that object. A new reference. */
static json_t *as_matched(const json_t *pattern)
{
    if (json_is_string(pattern)) {
        json_t *parsed = json_loads(json_string_value(pattern), 0, NULL);
        if (json_is_object(parsed))
            return parsed;
        json_decref(parsed);
    }
    return json_incref((json_t *)pattern);
}

bool live_pattern_matches(const char *route_pattern_json, const json_t *handler_pattern)
{
    json_t *route = json_loads(route_pattern_json, JSON_DECODE_ANY, NULL);
    if (!route)
        return false;
    json_t *a = as_matched(route), *b = as_matched(handler_pattern);
    bool same = json_equal(a, b);
    json_decref(a);
    json_decref(b);
    json_decref(route);
    return same;
}

const live_handler_t *live_find(const live_report_t *report, const char *route_pattern_json)
{
    for (size_t i = 0; i < report->n; i++)
        if (live_pattern_matches(route_pattern_json, report->handlers[i].pattern))
            return &report->handlers[i];
    return NULL;
}
