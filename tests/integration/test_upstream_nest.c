/* The upstream client (C API) against real Nest 12 and Nest 10 services:
 * every handler shape, 500 concurrent requests on 2 connections, a service
 * killed mid-request, a service that comes up late, two endpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/nest.h"
#include "support/net.h"
#include "support/uvtest.h"

typedef struct env {
    uv_loop_t loop;
    upstream_t *up;
    up_service_t *svc;
} env_t;


static void env_open(env_t *e, const char *address, unsigned pool_size)
{
    uv_loop_init(&e->loop);
    e->up = upstream_new(&e->loop);
    const char *eps[] = { address };
    e->svc = uvtest_service(e->up, "nest", eps, 1, pool_size, UP_CONNECT_EAGER);
}

static void env_close(env_t *e)
{
    assert_int_equal(uvtest_close(&e->loop, e->up), 0);
}

static void expect(env_t *e, const char *pattern, const char *data, up_outcome_t outcome,
                   const char *values, const char *err)
{
    uvtest_call_t c;
    uvtest_send_wait(&e->loop, e->svc, &c, pattern, data, 10000);
    if (c.outcome != outcome)
        fail_msg("%s: outcome %s (%s), expected %s", pattern, up_outcome_name(c.outcome), c.detail,
                 up_outcome_name(outcome));
    assert_string_equal(c.values.len ? c.values.data : "", values);
    if (err)
        assert_string_equal(c.err.len ? c.err.data : "", err);
    uvtest_call_free(&c);
}

static void every_handler_shape(void **state)
{
    struct nest_group *g = *state;
    env_t e;
    env_open(&e, g->address, 1);
    expect(&e, "{\"cmd\":\"sum\"}", "[1,2,3,4]", UP_OK, "10\n", NULL);
    expect(&e, "{ \"cmd\" : \"echo\" }", "{\"s\":\"héllo 한국 😀\",\"z\":\"\\u0000\\ud800\"}", UP_OK,
           "{\"s\":\"héllo 한국 😀\",\"z\":\"\\u0000\\ud800\"}\n", NULL);
    expect(&e, "\"echo\"", "\"string pattern\"", UP_OK, "\"string pattern\"\n", NULL);
    expect(&e, "{\"cmd\":\"delay\"}", "{\"ms\":50,\"value\":[1]}", UP_OK, "[1]\n", NULL);
    expect(&e, "{\"cmd\":\"stream\"}", "{\"count\":4,\"interval_ms\":20}", UP_OK, "1\n2\n3\n4\n", NULL);
    expect(&e, "{\"cmd\":\"stream\"}", "{\"count\":0,\"interval_ms\":1}", UP_OK, "", NULL);
    expect(&e, "{\"cmd\":\"nothing\"}", "null", UP_OK, "", NULL);
    expect(&e, "{\"cmd\":\"rpc_object\"}", "{\"statusCode\":403,\"message\":\"nope\"}", UP_ERROR, "",
           "{\"statusCode\":403,\"message\":\"nope\"}");
    expect(&e, "{\"cmd\":\"rpc_string\"}", "\"plain text\"", UP_ERROR, "",
           "{\"status\":\"error\",\"message\":\"plain text\"}");
    expect(&e, "{\"cmd\":\"throw\"}", "null", UP_ERROR, "",
           "{\"status\":\"error\",\"message\":\"Internal server error\"}");
    expect(&e, "{\"cmd\":\"stream_fail\"}", "{\"count\":2,\"interval_ms\":10,\"error\":{\"code\":7}}",
           UP_ERROR, "1\n2\n", "{\"code\":7}");
    expect(&e, "\"no_such_pattern\"", "null", UP_NO_HANDLER, "",
           "\"There is no matching message handler defined in the remote service.\"");
    env_close(&e);
}

static void events_reach_the_service(void **state)
{
    struct nest_group *g = *state;
    env_t e;
    env_open(&e, g->address, 1);
    expect(&e, "{\"cmd\":\"recorded_clear\"}", "null", UP_OK, "true\n", NULL);
    uvtest_call_t ev;
    uvtest_emit(e.svc, &ev, "\"record\"", "{\"who\":\"Zoë\"}");
    assert_true(uvtest_run_until(&e.loop, uvtest_is_done, &ev, 10000));
    assert_int_equal(ev.outcome, UP_OK);
    uvtest_call_free(&ev);
    uvtest_emit(e.svc, &ev, "{\"cmd\":\"record\"}", "2");
    assert_true(uvtest_run_until(&e.loop, uvtest_is_done, &ev, 10000));
    uvtest_call_free(&ev);
    /* events carry no id and get no reply; the service recorded both */
    expect(&e, "{\"cmd\":\"recorded\"}", "null", UP_OK, "[{\"who\":\"Zoë\"},2]\n", NULL);
    env_close(&e);
}

static void five_hundred_concurrent_on_two_connections(void **state)
{
    struct nest_group *g = *state;
    enum { N = 500 };
    env_t e;
    env_open(&e, g->address, 2);
    uvtest_call_t *calls = calloc(N, sizeof *calls);
    char data[N][64];
    for (int i = 0; i < N; i++) {
        snprintf(data[i], sizeof data[i], "{\"i\":%d,\"s\":\"é%d😀\"}", i, i * 7);
        uvtest_send(e.svc, &calls[i], "{\"cmd\":\"echo\"}", data[i], 30000);
    }
    assert_true(uvtest_wait_all(&e.loop, calls, N, 60000));
    for (int i = 0; i < N; i++) {
        assert_int_equal(calls[i].outcome, UP_OK);
        assert_int_equal(calls[i].values.len, strlen(data[i]) + 1);
        assert_memory_equal(calls[i].values.data, data[i], strlen(data[i]));
        uvtest_call_free(&calls[i]);
    }
    assert_int_equal(up_service_conns_in_state(e.svc, UP_CONN_CONNECTED), 2);
    assert_int_equal(up_service_stats(e.svc)->connects_ok, 2);
    free(calls);
    env_close(&e);
}

static int written(void *svc)
{
    return up_service_stats(svc)->bytes_out > 0 && up_service_stats(svc)->inflight == 3;
}

static void service_killed_mid_request(void **state)
{
    struct nest_group *g = *state;
    struct nest_service own;
    struct nest_options opts = { .quiet = true };
    assert_int_equal(nest_start(g->svc.version, &opts, &own), 0);
    char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", own.port);
    env_t e;
    env_open(&e, address, 1);
    uvtest_call_t c[3];
    for (int i = 0; i < 3; i++)
        uvtest_send(e.svc, &c[i], "{\"cmd\":\"delay\"}", "{\"ms\":20000,\"value\":1}", 60000);
    assert_true(uvtest_run_until(&e.loop, written, e.svc, 20000));
    uint64_t killed_at = uv_hrtime() / 1000000;
    nest_kill(&own);
    assert_true(uvtest_wait_all(&e.loop, c, 3, 30000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c[i].outcome, UP_CLOSED);
        assert_true(c[i].done_at - killed_at < 10000); /* at once, not at 60 s */
        uvtest_call_free(&c[i]);
    }
    env_close(&e);
}

static int connect_failed(void *svc)
{
    return up_service_stats(svc)->connects_failed >= 1;
}

static int connected(void *svc)
{
    return up_service_conns_in_state(svc, UP_CONN_CONNECTED) == 1;
}

static void service_down_at_start_comes_up_later(void **state)
{
    struct nest_group *g = *state;
    int port = testnet_free_port();
    char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", port);
    env_t e;
    env_open(&e, address, 1);
    assert_true(uvtest_run_until(&e.loop, connect_failed, e.svc, 20000));
    uvtest_call_t c;
    uvtest_send_wait(&e.loop, e.svc, &c, "{\"cmd\":\"sum\"}", "[1]", 5000);
    assert_int_equal(c.outcome, UP_UNAVAILABLE);
    uvtest_call_free(&c);

    struct nest_service own;
    struct nest_options opts = { .port = port, .quiet = true };
    assert_int_equal(nest_start(g->svc.version, &opts, &own), 0);
    assert_true(uvtest_run_until(&e.loop, connected, e.svc, 30000)); /* by itself */
    expect(&e, "{\"cmd\":\"sum\"}", "[20,22]", UP_OK, "42\n", NULL);
    nest_stop(&own);
    env_close(&e);
}

static void two_endpoints_share_and_survive(void **state)
{
    struct nest_group *g = *state;
    struct nest_service other;
    struct nest_options opts = { .quiet = true };
    assert_int_equal(nest_start(g->svc.version, &opts, &other), 0);
    char other_address[32];
    snprintf(other_address, sizeof other_address, "127.0.0.1:%d", other.port);
    uv_loop_t loop;
    uv_loop_init(&loop);
    upstream_t *up = upstream_new(&loop);
    const char *eps[] = { g->address, other_address };
    up_service_t *svc = uvtest_service(up, "two", eps, 2, 1, UP_CONNECT_EAGER);
    char pids[2][32] = { "", "" };
    int distinct = 0;
    for (int i = 0; i < 20; i++) {
        uvtest_call_t c;
        uvtest_send_wait(&loop, svc, &c, "{\"cmd\":\"pid\"}", "null", 10000);
        assert_int_equal(c.outcome, UP_OK);
        if (strcmp(c.values.data, pids[0]) && strcmp(c.values.data, pids[1]) && distinct < 2)
            snprintf(pids[distinct++], sizeof pids[0], "%s", c.values.data);
        uvtest_call_free(&c);
    }
    assert_int_equal(distinct, 2); /* both endpoints served */
    nest_kill(&other);
    int ok = 0;
    for (int i = 0; i < 20; i++) {
        uvtest_call_t c;
        uvtest_send_wait(&loop, svc, &c, "{\"cmd\":\"sum\"}", "[1,1]", 10000);
        ok += c.outcome == UP_OK;
        uvtest_call_free(&c);
    }
    assert_true(ok >= 19); /* at most the one request racing the kill fails */
    assert_int_equal(uvtest_close(&loop, up), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_handler_shape),
        cmocka_unit_test(events_reach_the_service),
        cmocka_unit_test(five_hundred_concurrent_on_two_connections),
        cmocka_unit_test(service_killed_mid_request),
        cmocka_unit_test(service_down_at_start_comes_up_later),
        cmocka_unit_test(two_endpoints_share_and_survive),
    };
    int failed = cmocka_run_group_tests_name("upstream_nest12", tests, nest_group_setup_v12, nest_group_teardown);
    failed += cmocka_run_group_tests_name("upstream_nest10", tests, nest_group_setup_v10, nest_group_teardown);
    return failed;
}
