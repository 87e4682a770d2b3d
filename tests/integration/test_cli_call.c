/* `patterngate call` and `patterngate emit` (the built binary) against real
 * Nest 12 and Nest 10 services: values on stdout as they arrive, errors as
 * JSON on stderr, exit codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "support/nest.h"
#include "support/net.h"
#include "support/gateway.h"
#include "support/proc.h"

typedef struct gwcli_result result_t;

/* Runs `patterngate <args...>` (NULL-terminated) to completion. */
#define run(...) checked_run(gwcli_run(60000, __VA_ARGS__))

static result_t checked_run(result_t r)
{
    assert_true(r.status >= 0);
    return r;
}


static void call_prints_values(void **state)
{
    struct nest_group *g = *state;
    result_t r = run("call", g->address, "{\"cmd\":\"sum\"}", "[1,2,3]", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "6\n");
    assert_string_equal(r.err, "");
    gwcli_result_free(&r);

    r = run("call", g->address, "{\"cmd\":\"echo\"}", "{\"s\":\"héllo 한국 😀\",\"z\":\"\\u0000\\ud800\"}", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"s\":\"héllo 한국 😀\",\"z\":\"\\u0000\\ud800\"}\n");
    gwcli_result_free(&r);

    /* PATTERN that is not JSON is a string pattern; DATA defaults to null */
    r = run("call", g->address, "echo", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "null\n");
    gwcli_result_free(&r);

    r = run("call", g->address, "{\"cmd\":\"nothing\"}", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "");
    gwcli_result_free(&r);
}

static void stream_values_arrive_as_they_come(void **state)
{
    struct nest_group *g = *state;
    const char *argv[] = { PG_BINARY, "call", g->address, "{\"cmd\":\"stream\"}",
                           "{\"count\":3,\"interval_ms\":400}", NULL };
    struct proc *p;
    assert_int_equal(proc_spawn(argv, NULL, &p), 0);
    char line[64];
    assert_int_equal(proc_read_line(p, line, sizeof line, 30000), 1);
    assert_string_equal(line, "1");
    uint64_t first = uv_hrtime() / 1000000;
    assert_int_equal(proc_read_line(p, line, sizeof line, 30000), 1);
    assert_int_equal(proc_read_line(p, line, sizeof line, 30000), 1);
    assert_string_equal(line, "3");
    uint64_t last = uv_hrtime() / 1000000;
    assert_int_equal(proc_wait(p, 30000), 0);
    assert_true(last - first >= 600); /* the first value was printed ~800 ms before the last */
    proc_free(p);
}

static void errors_go_to_stderr_as_json(void **state)
{
    struct nest_group *g = *state;
    result_t r = run("call", g->address, "{\"cmd\":\"rpc_object\"}", "{\"statusCode\":403,\"message\":\"nope\"}", NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "{\"statusCode\":403,\"error\":\"upstream_error\",\"message\":\"the service replied "
                               "with an error\",\"details\":{\"statusCode\":403,\"message\":\"nope\"}}\n");
    gwcli_result_free(&r);

    r = run("call", g->address, "{\"cmd\":\"throw\"}", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "{\"statusCode\":500,\"error\":\"upstream_error\""));
    assert_non_null(strstr(r.err, "\"details\":{\"status\":\"error\",\"message\":\"Internal server error\"}"));
    gwcli_result_free(&r);

    r = run("call", g->address, "no_such", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "{\"statusCode\":501,\"error\":\"no_handler\""));
    gwcli_result_free(&r);

    r = run("call", "--timeout", "300", g->address, "{\"cmd\":\"delay\"}", "{\"ms\":5000,\"value\":1}", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "{\"statusCode\":504,\"error\":\"upstream_timeout\""));
    gwcli_result_free(&r);

    char refused[32];
    snprintf(refused, sizeof refused, "127.0.0.1:%d", testnet_free_port());
    r = run("call", refused, "x", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "{\"statusCode\":503,\"error\":\"upstream_unavailable\""));
    assert_non_null(strstr(r.err, "connection refused"));
    gwcli_result_free(&r);
}

static void emit_delivers_an_event(void **state)
{
    struct nest_group *g = *state;
    result_t r = run("call", g->address, "{\"cmd\":\"recorded_clear\"}", NULL);
    assert_int_equal(r.status, 0);
    gwcli_result_free(&r);
    r = run("emit", g->address, "record", "{\"who\":\"Zoë\"}", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "");
    gwcli_result_free(&r);
    r = run("call", g->address, "{\"cmd\":\"recorded\"}", NULL);
    assert_string_equal(r.out, "[{\"who\":\"Zoë\"}]\n");
    gwcli_result_free(&r);
}

static void bad_usage_exits_2(void **state)
{
    struct nest_group *g = *state;
    result_t r = run("call", g->address, "x", "{not json", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "DATA is not valid JSON: expected a string key at byte 1"));
    gwcli_result_free(&r);
    r = run("call", "nohost", "x", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "expected \"host:port\""));
    gwcli_result_free(&r);
    r = run("call", "--bogus", g->address, "x", NULL);
    assert_int_equal(r.status, 2);
    gwcli_result_free(&r);
    r = run("emit", NULL);
    assert_int_equal(r.status, 2);
    gwcli_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(call_prints_values),
        cmocka_unit_test(stream_values_arrive_as_they_come),
        cmocka_unit_test(errors_go_to_stderr_as_json),
        cmocka_unit_test(emit_delivers_an_event),
        cmocka_unit_test(bad_usage_exits_2),
    };
    int failed = cmocka_run_group_tests_name("cli_nest12", tests, nest_group_setup_v12, nest_group_teardown);
    failed += cmocka_run_group_tests_name("cli_nest10", tests, nest_group_setup_v10, nest_group_teardown);
    return failed;
}
