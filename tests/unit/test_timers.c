/* Unit tests of core/timers on a real libuv loop: order of firing, removal,
 * re-arming from a callback, and a loop that closes clean. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "core/timers.h"

typedef struct probe {
    timer_entry_t entry;
    int id;
    int *log;
    size_t *nlog;
} probe_t;

static timers_t *g_timers; /* the test's own: callbacks need it to re-arm */

static void record(timer_entry_t *e)
{
    probe_t *p = (probe_t *)e;
    p->log[(*p->nlog)++] = p->id;
}

static void run_loop_and_close(uv_loop_t *loop, timers_t *t)
{
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    timers_close(t, NULL);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void fire_in_deadline_order(void **state)
{
    (void)state;
    uv_loop_t loop;
    timers_t t;
    uv_loop_init(&loop);
    assert_int_equal(timers_init(&t, &loop), 0);
    int log[8];
    size_t nlog = 0;
    static const int delays[] = { 30, 5, 20, 1, 10 };
    probe_t probes[5];
    for (int i = 0; i < 5; i++) {
        probes[i] = (probe_t){ .id = delays[i], .log = log, .nlog = &nlog };
        timer_entry_init(&probes[i].entry);
        assert_int_equal(timers_start(&t, &probes[i].entry, (uint64_t)delays[i], record), 0);
    }
    timers_stop(&t, &probes[2].entry); /* 20 never fires */
    timers_stop(&t, &probes[2].entry); /* twice is harmless */
    assert_int_equal(timers_count(&t), 4);
    run_loop_and_close(&loop, &t);
    assert_int_equal(nlog, 4);
    assert_int_equal(log[0], 1);
    assert_int_equal(log[1], 5);
    assert_int_equal(log[2], 10);
    assert_int_equal(log[3], 30);
}

static int rearm_count;
static void rearm_three_times(timer_entry_t *e)
{
    if (++rearm_count < 3)
        timers_start(g_timers, e, 1, rearm_three_times);
}

static void callback_can_rearm_itself(void **state)
{
    (void)state;
    uv_loop_t loop;
    timers_t t;
    uv_loop_init(&loop);
    timers_init(&t, &loop);
    g_timers = &t;
    timer_entry_t e;
    timer_entry_init(&e);
    timers_start(&t, &e, 1, rearm_three_times);
    run_loop_and_close(&loop, &t);
    assert_int_equal(rearm_count, 3);
    assert_false(timer_armed(&e));
}

static void many_entries_random_removal(void **state)
{
    (void)state;
    enum { N = 2000 };
    uv_loop_t loop;
    timers_t t;
    uv_loop_init(&loop);
    timers_init(&t, &loop);
    probe_t *probes = calloc(N, sizeof *probes);
    int *log = calloc(N, sizeof *log);
    size_t nlog = 0;
    unsigned seed = 9;
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        probes[i] = (probe_t){ .id = (int)((seed >> 8) % 50), .log = log, .nlog = &nlog };
        timer_entry_init(&probes[i].entry);
        timers_start(&t, &probes[i].entry, (uint64_t)probes[i].id, record);
    }
    for (int i = 0; i < N; i += 3)
        timers_stop(&t, &probes[i].entry);
    run_loop_and_close(&loop, &t);
    assert_int_equal(nlog, N - (N + 2) / 3);
    for (size_t i = 1; i < nlog; i++)
        assert_true(log[i - 1] <= log[i]); /* fired in deadline order */
    free(probes);
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fire_in_deadline_order),
        cmocka_unit_test(callback_can_rearm_itself),
        cmocka_unit_test(many_entries_random_removal),
    };
    return cmocka_run_group_tests_name("timers", tests, NULL, NULL);
}
