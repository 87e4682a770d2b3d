/* Unit tests of gateway/uplog: connection events become JSON lines, and
 * repeats are rate-limited per endpoint with a count of what was held
 * back. The logger writes to a temporary file that the tests read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/uplog.h"

typedef struct fixture {
    logger_t log;
    uplog_t cl;
    FILE *file;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->file = tmpfile();
    assert_non_null(f->file);
    logger_init(&f->log, CONFIG_LOG_INFO);
    f->log.fd = fileno(f->file);
    uplog_init(&f->cl, &f->log);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    uplog_free(&f->cl);
    fclose(f->file);
    free(f);
    return 0;
}

/* Everything logged so far; the caller frees it. */
static char *logged(fixture_t *f)
{
    long n = lseek(fileno(f->file), 0, SEEK_END);
    char *text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(pread(fileno(f->file), text, (size_t)n, 0), n);
    return text;
}

static int count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static up_event_t failure(const char *endpoint)
{
    return (up_event_t){ .type = UP_EV_CONNECT_FAILED, .service = "math", .endpoint = endpoint,
                         .detail = "connect failed: connection refused" };
}

static void lines_carry_the_event(void **state)
{
    fixture_t *f = *state;
    up_event_t up = { .type = UP_EV_CONNECTED, .service = "math", .endpoint = "127.0.0.1:3000",
                      .tls_version = "TLSv1.3", .tls_resumed = 1 };
    uplog_event(&f->cl, &up, 0);
    up_event_t down = failure("127.0.0.1:3000");
    down.type = UP_EV_DISCONNECTED;
    uplog_event(&f->cl, &down, 1);
    up_event_t ejected = { .type = UP_EV_EJECTED, .service = "math", .endpoint = "127.0.0.1:3000",
                           .detail = "consecutive connect failures", .ejected_ms = 10000 };
    uplog_event(&f->cl, &ejected, 2);
    char *text = logged(f);
    assert_non_null(strstr(text, "\"level\":\"info\",\"msg\":\"upstream connected\",\"service\":\"math\","
                                 "\"endpoint\":\"127.0.0.1:3000\",\"tls\":\"TLSv1.3\",\"resumed\":true}"));
    assert_non_null(strstr(text, "\"level\":\"warn\",\"msg\":\"upstream disconnected\""));
    assert_non_null(strstr(text, "\"reason\":\"connect failed: connection refused\""));
    assert_non_null(strstr(text, "\"msg\":\"upstream endpoint ejected\""));
    assert_non_null(strstr(text, "\"ejected_ms\":10000"));
    assert_int_equal(count(text, "\n"), 3);
    free(text);
}

static void a_flapping_endpoint_is_rate_limited(void **state)
{
    fixture_t *f = *state;
    up_event_t ev = failure("127.0.0.1:1");
    for (int i = 0; i < 50; i++) /* a burst within one second */
        uplog_event(&f->cl, &ev, 1000 + (uint64_t)i);
    char *text = logged(f);
    assert_int_equal(count(text, "upstream connect failed"), UPLOG_BURST);
    free(text);
    /* one refill later: one more line, saying how many were held back */
    uplog_event(&f->cl, &ev, 1000 + UPLOG_REFILL_MS);
    text = logged(f);
    assert_int_equal(count(text, "upstream connect failed"), UPLOG_BURST + 1);
    char expected[64];
    snprintf(expected, sizeof expected, "\"suppressed\":%d", 50 - UPLOG_BURST);
    assert_non_null(strstr(text, expected));
    free(text);
    /* and not again before the next refill */
    uplog_event(&f->cl, &ev, 1001 + UPLOG_REFILL_MS);
    text = logged(f);
    assert_int_equal(count(text, "upstream connect failed"), UPLOG_BURST + 1);
    free(text);
}

static void ejections_are_never_held_back(void **state)
{
    fixture_t *f = *state;
    up_event_t ev = failure("127.0.0.1:3");
    for (int i = 0; i < 3 * UPLOG_BURST; i++)
        uplog_event(&f->cl, &ev, 0);
    up_event_t ejected = { .type = UP_EV_EJECTED, .service = "math", .endpoint = "127.0.0.1:3",
                           .detail = "consecutive protocol errors", .ejected_ms = 10000 };
    uplog_event(&f->cl, &ejected, 1);
    char *text = logged(f);
    assert_int_equal(count(text, "upstream connect failed"), UPLOG_BURST);
    assert_int_equal(count(text, "upstream endpoint ejected"), 1);
    free(text);
}

static void endpoints_have_their_own_budget(void **state)
{
    fixture_t *f = *state;
    up_event_t a = failure("10.0.0.1:3000"), b = failure("10.0.0.2:3000");
    for (int i = 0; i < 30; i++)
        uplog_event(&f->cl, &a, 0);
    uplog_event(&f->cl, &b, 0);
    char *text = logged(f);
    assert_int_equal(count(text, "10.0.0.1:3000"), UPLOG_BURST);
    assert_int_equal(count(text, "10.0.0.2:3000"), 1);
    free(text);
}

static void a_quiet_endpoint_gets_its_burst_back(void **state)
{
    fixture_t *f = *state;
    up_event_t ev = failure("127.0.0.1:2");
    for (int i = 0; i < UPLOG_BURST; i++)
        uplog_event(&f->cl, &ev, 0);
    /* long after: the whole burst again, capped at UPLOG_BURST */
    for (int i = 0; i < 3 * UPLOG_BURST; i++)
        uplog_event(&f->cl, &ev, 100 * (uint64_t)UPLOG_REFILL_MS);
    char *text = logged(f);
    assert_int_equal(count(text, "upstream connect failed"), 2 * UPLOG_BURST);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(lines_carry_the_event, setup, teardown),
        cmocka_unit_test_setup_teardown(a_flapping_endpoint_is_rate_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(ejections_are_never_held_back, setup, teardown),
        cmocka_unit_test_setup_teardown(endpoints_have_their_own_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(a_quiet_endpoint_gets_its_burst_back, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
