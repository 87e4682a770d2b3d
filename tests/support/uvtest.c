#include "support/uvtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

static void on_deadline(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

int uvtest_run_until(uv_loop_t *loop, int (*cond)(void *), void *arg, int timeout_ms)
{
    uv_timer_t deadline;
    int expired = 0;
    uv_timer_init(loop, &deadline);
    deadline.data = &expired;
    uv_timer_start(&deadline, on_deadline, (uint64_t)timeout_ms, 0);
    while (!cond(arg) && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* let the close finish */
    return cond(arg);
}

int uvtest_close(uv_loop_t *loop, upstream_t *up)
{
    upstream_close(up);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop);
}

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void on_value(void *ctx, span_t value)
{
    uvtest_call_t *c = ctx;
    if (c->nvalues++ == 0)
        c->first_value_at = now_ms();
    buf_append_span(&c->values, value);
    buf_append(&c->values, "\n\0", 2);
    c->values.len--; /* kept NUL-terminated for string asserts */
}

static void on_done(void *ctx, up_outcome_t outcome, span_t err, const char *detail)
{
    uvtest_call_t *c = ctx;
    c->done = 1;
    c->outcome = outcome;
    c->done_at = now_ms();
    c->req = NULL;
    buf_append_span(&c->err, err);
    buf_append(&c->err, "\0", 1);
    c->err.len--;
    snprintf(c->detail, sizeof c->detail, "%s", detail ? detail : "");
}

const up_callbacks_t uvtest_callbacks = { on_value, on_done };

void uvtest_send(up_service_t *svc, uvtest_call_t *call, const char *pattern, const char *data,
                 uint32_t timeout_ms)
{
    memset(call, 0, sizeof *call);
    call->req = up_send(svc, span_cstr(pattern), span_cstr(data), span_of(NULL, 0), timeout_ms,
                        &uvtest_callbacks, call);
    assert_non_null(call->req);
}

void uvtest_emit(up_service_t *svc, uvtest_call_t *call, const char *pattern, const char *data)
{
    memset(call, 0, sizeof *call);
    call->req = up_emit(svc, span_cstr(pattern), span_cstr(data), span_of(NULL, 0), 0,
                        &uvtest_callbacks, call);
    assert_non_null(call->req);
}

int uvtest_is_done(void *call)
{
    return ((uvtest_call_t *)call)->done;
}

typedef struct call_array {
    uvtest_call_t *calls;
    size_t n;
} call_array_t;

static int all_done(void *arg)
{
    call_array_t *a = arg;
    for (size_t i = 0; i < a->n; i++)
        if (!a->calls[i].done)
            return 0;
    return 1;
}

int uvtest_wait_all(uv_loop_t *loop, uvtest_call_t *calls, size_t n, int timeout_ms)
{
    call_array_t a = { calls, n };
    return uvtest_run_until(loop, all_done, &a, timeout_ms);
}

void uvtest_send_wait(uv_loop_t *loop, up_service_t *svc, uvtest_call_t *call,
                      const char *pattern, const char *data, uint32_t timeout_ms)
{
    uvtest_send(svc, call, pattern, data, timeout_ms);
    if (!uvtest_run_until(loop, uvtest_is_done, call, (int)timeout_ms + 10000))
        fail_msg("request %s %s did not complete", pattern, data);
}

void uvtest_call_free(uvtest_call_t *call)
{
    buf_free(&call->values);
    buf_free(&call->err);
}

up_service_t *uvtest_service(upstream_t *up, const char *name, const char *const *endpoints,
                             size_t n, unsigned pool_size, up_connect_mode_t mode)
{
    up_service_opts_t o;
    up_service_opts_defaults(&o);
    o.name = name;
    o.endpoints = endpoints;
    o.n_endpoints = n;
    o.pool_size = pool_size;
    o.connect = mode;
    char err[160];
    up_service_t *svc = up_service_add(up, &o, err, sizeof err);
    if (!svc)
        fail_msg("up_service_add: %s", err);
    return svc;
}
