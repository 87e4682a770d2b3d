/* Tests of the upstream client's balancing over several endpoints, against
 * scripted in-process upstreams (real sockets, a thread per connection):
 * least_request spreads equal load and starves a slow endpoint, round_robin
 * takes turns, an ejected endpoint gets nothing, retries go to another
 * endpoint, a fanout event reaches every endpoint once, connections past
 * max_connection_age_ms are replaced without a failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"
#include "support/net.h"
#include "support/uvtest.h"

#define MAX_UPS 4

enum { ANSWER, ANSWER_LATE, GARBAGE, CLOSE };

/* One scripted upstream: how it answers, and what it saw (written by its
 * threads, read by the test after the loop ran). */
typedef struct replica {
    int mode;
    int delay_ms;
    atomic_int requests;
    atomic_int events;
    struct testnet_upstream *server;
    char address[32];
} replica_t;

static void replica_script(struct testnet_peer *peer, void *arg)
{
    replica_t *r = arg;
    for (;;) {
        char *json = NULL;
        if (testnet_read_frame(&peer->reader, &json, -1) < 0)
            return;
        span_t id;
        if (!jscan_member(span_cstr(json), "id", &id)) {
            atomic_fetch_add(&r->events, 1);
            free(json);
            continue;
        }
        atomic_fetch_add(&r->requests, 1);
        char out[128];
        snprintf(out, sizeof out, "{\"id\":%.*s,\"response\":\"%s\",\"isDisposed\":true}", (int)id.n, id.p,
                 r->address);
        free(json);
        switch (r->mode) {
        case GARBAGE:
            testnet_peer_write(peer, "12x#{}", 6);
            return;
        case CLOSE:
            testnet_peer_close(peer, false);
            return;
        case ANSWER_LATE:
            testnet_peer_sleep(peer, r->delay_ms);
            /* fall through */
        default:
            testnet_peer_send_frame(peer, out);
        }
    }
}

typedef struct fleet {
    uv_loop_t loop;
    upstream_t *up;
    replica_t replicas[MAX_UPS];
    size_t n;
    up_service_t *svc;
} fleet_t;

/* n replicas answering in `modes`, and one service over all of them. */
static fleet_t *fleet_start(size_t n, const int *modes, up_balance_t balance, uint32_t max_age_ms)
{
    fleet_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    const char *eps[MAX_UPS];
    f->n = n;
    for (size_t i = 0; i < n; i++) {
        replica_t *r = &f->replicas[i];
        r->mode = modes[i];
        r->delay_ms = 20;
        assert_int_equal(testnet_upstream_start(replica_script, r, &r->server), 0);
        snprintf(r->address, sizeof r->address, "127.0.0.1:%d", testnet_upstream_port(r->server));
        eps[i] = r->address;
    }
    uv_loop_init(&f->loop);
    f->up = upstream_new(&f->loop);
    assert_non_null(f->up);
    up_service_opts_t o;
    up_service_opts_defaults(&o);
    o.name = "fleet";
    o.endpoints = eps;
    o.n_endpoints = n;
    o.balance = balance;
    o.max_connection_age_ms = max_age_ms;
    o.timeout_ms = 10000;
    char err[200];
    f->svc = up_service_add(f->up, &o, err, sizeof err);
    if (!f->svc)
        fail_msg("up_service_add: %s", err);
    return f;
}

static void fleet_finish(fleet_t *f)
{
    assert_int_equal(uvtest_close(&f->loop, f->up), 0);
    for (size_t i = 0; i < f->n; i++)
        testnet_upstream_stop(f->replicas[i].server);
    free(f);
}

static int all_connected(void *arg)
{
    fleet_t *f = arg;
    return up_service_conns_in_state(f->svc, UP_CONN_CONNECTED) == f->n;
}

static void wait_connected(fleet_t *f)
{
    if (!uvtest_run_until(&f->loop, all_connected, f, 20000))
        fail_msg("the service's %zu endpoints did not all connect", f->n);
}

/* Sends `total` requests, at most `window` at a time; each must succeed
 * (unless `failures` counts them). Returns how many failed. */
static int send_many(fleet_t *f, int total, int window, const up_request_opts_t *opts)
{
    uvtest_call_t *calls = calloc((size_t)window, sizeof *calls);
    assert_non_null(calls);
    int sent = 0, failed = 0;
    while (sent < total) {
        int batch = total - sent < window ? total - sent : window;
        for (int i = 0; i < batch; i++) {
            memset(&calls[i], 0, sizeof calls[i]);
            calls[i].req = up_submit(f->svc, UP_KIND_SEND, span_cstr("\"whoami\""), span_cstr("null"),
                                     span_of(NULL, 0), opts, &uvtest_callbacks, &calls[i]);
            assert_non_null(calls[i].req);
        }
        if (!uvtest_wait_all(&f->loop, calls, (size_t)batch, 30000))
            fail_msg("requests did not complete");
        for (int i = 0; i < batch; i++) {
            failed += calls[i].outcome != UP_OK;
            uvtest_call_free(&calls[i]);
        }
        sent += batch;
    }
    free(calls);
    return failed;
}

/* Closed-loop load: `window` requests always in flight, a new one as soon
 * as one completes (what many clients do), `total` in all. */
typedef struct load {
    fleet_t *f;
    int window, total, sent, done, failed;
} load_t;

static void load_next(load_t *l);

static void load_value(void *ctx, span_t value)
{
    (void)ctx;
    (void)value;
}

static void load_done(void *ctx, up_outcome_t outcome, span_t err, const char *detail)
{
    (void)err;
    (void)detail;
    load_t *l = ctx;
    l->done++;
    l->failed += outcome != UP_OK;
    load_next(l);
}

static const up_callbacks_t load_callbacks = { load_value, load_done };

static void load_next(load_t *l)
{
    if (l->sent < l->total && l->sent - l->done < l->window) {
        l->sent++;
        assert_non_null(up_submit(l->f->svc, UP_KIND_SEND, span_cstr("\"whoami\""), span_cstr("null"),
                                  span_of(NULL, 0), NULL, &load_callbacks, l));
    }
}

static int load_over(void *arg)
{
    load_t *l = arg;
    return l->done == l->total;
}

static int closed_loop(fleet_t *f, int total, int window)
{
    load_t l = { f, window, total, 0, 0, 0 };
    for (int i = 0; i < window; i++)
        load_next(&l);
    if (!uvtest_run_until(&f->loop, load_over, &l, 60000))
        fail_msg("closed-loop load: %d of %d done", l.done, total);
    return l.failed;
}

static double share(const fleet_t *f, size_t i)
{
    int total = 0;
    for (size_t k = 0; k < f->n; k++)
        total += atomic_load(&f->replicas[k].requests);
    return total ? (double)atomic_load(&f->replicas[i].requests) / total : 0;
}

/* ---- tests ---------------------------------------------------------------- */

static void least_request_spreads_equal_load(void **state)
{
    (void)state;
    const int modes[] = { ANSWER, ANSWER, ANSWER };
    fleet_t *f = fleet_start(3, modes, UP_BALANCE_LEAST_REQUEST, 0);
    wait_connected(f);
    assert_int_equal(send_many(f, 3000, 30, NULL), 0);
    for (size_t i = 0; i < 3; i++) {
        print_message("endpoint %zu: %.1f%%\n", i, share(f, i) * 100);
        if (share(f, i) < 0.25 || share(f, i) > 0.42)
            fail_msg("endpoint %zu got %.1f%% of 3000 requests, expected 25..42%%", i, share(f, i) * 100);
    }
    fleet_finish(f);
}

static void round_robin_takes_turns(void **state)
{
    (void)state;
    const int modes[] = { ANSWER, ANSWER, ANSWER };
    fleet_t *f = fleet_start(3, modes, UP_BALANCE_ROUND_ROBIN, 0);
    wait_connected(f);
    assert_int_equal(send_many(f, 300, 1, NULL), 0);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&f->replicas[i].requests), 100);
    fleet_finish(f);
}

static void least_request_starves_a_slow_endpoint(void **state)
{
    (void)state;
    const int modes[] = { ANSWER, ANSWER_LATE, ANSWER };
    fleet_t *f = fleet_start(3, modes, UP_BALANCE_LEAST_REQUEST, 0);
    wait_connected(f);
    assert_int_equal(closed_loop(f, 1500, 30), 0);
    print_message("slow endpoint: %.1f%%\n", share(f, 1) * 100);
    if (share(f, 1) > 0.15)
        fail_msg("the slow endpoint got %.1f%% of the requests, expected under 15%%", share(f, 1) * 100);
    fleet_finish(f);
}

static int ejected(void *arg)
{
    fleet_t *f = arg;
    for (size_t i = 0; i < up_service_endpoint_count(f->svc); i++) {
        up_endpoint_info_t info;
        up_service_endpoint_info(f->svc, i, &info);
        if (info.state == UP_EP_EJECTED)
            return 1;
    }
    return 0;
}

static void an_ejected_endpoint_gets_nothing(void **state)
{
    (void)state;
    const int modes[] = { ANSWER, GARBAGE };
    fleet_t *f = fleet_start(2, modes, UP_BALANCE_ROUND_ROBIN, 0);
    wait_connected(f);
    /* every request it gets breaks the protocol (and it reconnects with a
     * backoff between): 5 in a row eject it */
    uint64_t start = uv_now(&f->loop);
    while (!ejected(f) && uv_now(&f->loop) - start < 30000) {
        send_many(f, 1, 1, NULL);
        uv_update_time(&f->loop);
    }
    assert_true(ejected(f));
    int before = atomic_load(&f->replicas[1].requests);
    assert_int_equal(send_many(f, 100, 10, NULL), 0);
    assert_int_equal(atomic_load(&f->replicas[1].requests), before);
    const up_service_stats_t *st = up_service_stats(f->svc);
    assert_int_equal(up_read(&st->endpoints[UP_EP_EJECTED]), 1);
    assert_int_equal(up_read(&st->endpoints[UP_EP_ACTIVE]), 1);
    fleet_finish(f);
}

static void retries_go_elsewhere(void **state)
{
    (void)state;
    const int modes[] = { CLOSE, ANSWER };
    fleet_t *f = fleet_start(2, modes, UP_BALANCE_ROUND_ROBIN, 0);
    wait_connected(f);
    up_request_opts_t retry = { 0, 2, false };
    assert_int_equal(send_many(f, 40, 1, &retry), 0);
    const up_service_stats_t *st = up_service_stats(f->svc);
    print_message("retries: %llu\n", (unsigned long long)up_read(&st->retries[UP_RETRY_CLOSED]));
    assert_true(up_read(&st->retries[UP_RETRY_CLOSED]) >= 1);
    assert_true(atomic_load(&f->replicas[0].requests) >= 1); /* it was tried */
    fleet_finish(f);
}

static void without_retries_a_close_fails(void **state)
{
    (void)state;
    const int modes[] = { CLOSE, ANSWER };
    fleet_t *f = fleet_start(2, modes, UP_BALANCE_ROUND_ROBIN, 0);
    wait_connected(f);
    int failed = send_many(f, 2, 1, NULL); /* one goes to each */
    assert_int_equal(failed, 1);
    const up_service_stats_t *st = up_service_stats(f->svc);
    assert_int_equal(up_read(&st->outcomes[0][UP_CLOSED]), 1);
    assert_int_equal(up_read(&st->retries[UP_RETRY_CLOSED]), 0);
    fleet_finish(f);
}

static int events_seen(void *arg)
{
    fleet_t *f = arg;
    for (size_t i = 0; i < f->n; i++)
        if (atomic_load(&f->replicas[i].events) < 1)
            return 0;
    return 1;
}

static void fanout_reaches_every_endpoint_once(void **state)
{
    (void)state;
    const int modes[] = { ANSWER, ANSWER, ANSWER };
    fleet_t *f = fleet_start(3, modes, UP_BALANCE_LEAST_REQUEST, 0);
    wait_connected(f);
    uvtest_call_t call = { 0 };
    up_request_opts_t all = { 0, 0, true };
    call.req = up_submit(f->svc, UP_KIND_EMIT, span_cstr("\"invalidate\""), span_cstr("{}"), span_of(NULL, 0),
                         &all, &uvtest_callbacks, &call);
    assert_non_null(call.req);
    assert_true(uvtest_run_until(&f->loop, uvtest_is_done, &call, 20000));
    assert_int_equal(call.outcome, UP_OK);
    assert_true(uvtest_run_until(&f->loop, events_seen, f, 20000));
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&f->replicas[i].events), 1);
    const up_service_stats_t *st = up_service_stats(f->svc);
    assert_int_equal(up_read(&st->outcomes[1][UP_OK]), 1); /* one event, counted once */
    assert_int_equal(up_read(&st->inflight), 0);
    uvtest_call_free(&call);
    fleet_finish(f);
}

static void old_connections_retire_without_failures(void **state)
{
    (void)state;
    const int modes[] = { ANSWER };
    fleet_t *f = fleet_start(1, modes, UP_BALANCE_LEAST_REQUEST, 200);
    wait_connected(f);
    uint64_t start = uv_now(&f->loop);
    int failed = 0;
    while (uv_now(&f->loop) - start < 1500) {
        failed += send_many(f, 20, 10, NULL);
        uv_update_time(&f->loop);
    }
    assert_int_equal(failed, 0);
    int accepted = testnet_upstream_accepted(f->replicas[0].server);
    print_message("connections accepted in 1.5 s with a 200 ms age: %d\n", accepted);
    assert_true(accepted >= 4);
    fleet_finish(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(least_request_spreads_equal_load),
        cmocka_unit_test(round_robin_takes_turns),
        cmocka_unit_test(least_request_starves_a_slow_endpoint),
        cmocka_unit_test(an_ejected_endpoint_gets_nothing),
        cmocka_unit_test(retries_go_elsewhere),
        cmocka_unit_test(without_retries_a_close_fails),
        cmocka_unit_test(fanout_reaches_every_endpoint_once),
        cmocka_unit_test(old_connections_retire_without_failures),
    };
    return cmocka_run_group_tests_name("balance", tests, NULL, NULL);
}
