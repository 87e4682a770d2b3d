/* Unit tests of gateway/ratelimit: the bucket arithmetic and the answers'
 * rounding, exactness over simulated time from one thread and from several
 * real threads sharing a bucket, names, the LRU bound, reloads (a new
 * maximum, a new rule) and long names. Time is simulated: every take is
 * given its nanosecond stamp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "gateway/ratelimit.h"

#define MS 1000000ull
#define SEC 1000000000ull
#define T0 (1000 * SEC) /* an arbitrary start on the monotonic clock */

static ratelimit_result_t take(ratelimit_t *rl, const char *scope, const char *key, double rps, uint32_t burst,
                               uint64_t now)
{
    ratelimit_rule_t rule = { rps, burst };
    ratelimit_result_t r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(ratelimit_take(rl, span_cstr(scope), span_cstr(key), &rule, now, &r), 0);
    return r;
}

static void expect(ratelimit_result_t r, bool allowed, uint32_t limit, uint32_t remaining, uint32_t reset_s,
                   uint32_t retry_after_s)
{
    assert_int_equal(r.allowed, allowed);
    assert_int_equal(r.limit, limit);
    assert_int_equal(r.remaining, remaining);
    assert_int_equal(r.reset_s, reset_s);
    assert_int_equal(r.retry_after_s, retry_after_s);
}

/* ---- one bucket's arithmetic ---- */

static void starts_full_then_refuses(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(10);
    assert_non_null(rl);
    expect(take(rl, "GET /a", "", 1, 3, T0), true, 3, 2, 1, 0);
    expect(take(rl, "GET /a", "", 1, 3, T0), true, 3, 1, 2, 0);
    expect(take(rl, "GET /a", "", 1, 3, T0), true, 3, 0, 3, 0);
    expect(take(rl, "GET /a", "", 1, 3, T0), false, 3, 0, 3, 1);
    expect(take(rl, "GET /a", "", 1, 3, T0), false, 3, 0, 3, 1);
    assert_int_equal(ratelimit_key_count(rl), 1);
    ratelimit_free(rl);
}

static void refills_continuously_up_to_burst(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(10);
    for (int i = 0; i < 5; i++)
        assert_true(take(rl, "s", "k", 10, 5, T0).allowed);
    /* 0.99 of a token: refused, one coming within the second */
    expect(take(rl, "s", "k", 10, 5, T0 + 99 * MS), false, 5, 0, 1, 1);
    expect(take(rl, "s", "k", 10, 5, T0 + 100 * MS), true, 5, 0, 1, 0);
    /* 2.5 tokens 250 ms later: take one, 1.5 left, 3.5 to go at 10/s */
    expect(take(rl, "s", "k", 10, 5, T0 + 350 * MS), true, 5, 1, 1, 0);
    /* a long pause fills the bucket, and no more than that */
    expect(take(rl, "s", "k", 10, 5, T0 + 3600 * SEC), true, 5, 4, 1, 0);
    for (int i = 0; i < 4; i++)
        assert_true(take(rl, "s", "k", 10, 5, T0 + 3600 * SEC).allowed);
    assert_false(take(rl, "s", "k", 10, 5, T0 + 3600 * SEC).allowed);
    ratelimit_free(rl);
}

static void fractional_rates_and_rounding(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(10);
    /* 0.5/s, burst 2: a token takes 2 s */
    expect(take(rl, "half", "", 0.5, 2, T0), true, 2, 1, 2, 0);
    expect(take(rl, "half", "", 0.5, 2, T0), true, 2, 0, 4, 0);
    expect(take(rl, "half", "", 0.5, 2, T0), false, 2, 0, 4, 2);
    expect(take(rl, "half", "", 0.5, 2, T0 + 1 * SEC), false, 2, 0, 3, 1);          /* 0.5 held */
    expect(take(rl, "half", "", 0.5, 2, T0 + 1500 * MS), false, 2, 0, 3, 1);        /* 0.75: 0.5 s, up to 1 */
    expect(take(rl, "half", "", 0.5, 2, T0 + 2 * SEC), true, 2, 0, 4, 0);           /* exactly 1 */
    expect(take(rl, "half", "", 0.5, 2, T0 + 2 * SEC + 1), false, 2, 0, 4, 2);      /* 2 s minus 1 ns: up to 2 */
    /* whole tokens only: 2.5 tokens after 1 s at 0.5/s with burst 3 */
    expect(take(rl, "third", "", 0.5, 3, T0), true, 3, 2, 2, 0);
    expect(take(rl, "third", "", 0.5, 3, T0 + 1 * SEC), true, 3, 1, 3, 0);          /* 1.5 left, 1.5 to go */
    /* 0.3/s: 3.33 s a token, rounded up to 4; 0.01 token short waits 1 s */
    expect(take(rl, "slow", "", 0.3, 1, T0), true, 1, 0, 4, 0);
    expect(take(rl, "slow", "", 0.3, 1, T0), false, 1, 0, 4, 4);
    expect(take(rl, "slow", "", 0.3, 1, T0 + 3300 * MS), false, 1, 0, 1, 1);
    expect(take(rl, "slow", "", 0.3, 1, T0 + 3340 * MS), true, 1, 0, 4, 0);         /* 1.002, 0.002 left */
    /* a fast rate: the next token is 1 ms away, still a whole second */
    expect(take(rl, "fast", "", 1000, 1, T0), true, 1, 0, 1, 0);
    expect(take(rl, "fast", "", 1000, 1, T0 + 999999), false, 1, 0, 1, 1);
    ratelimit_free(rl);
}

/* A take stamped before the bucket's last one counts at the bucket's time. */
static void time_never_runs_back(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(10);
    expect(take(rl, "s", "", 1, 1, T0 + 10 * SEC), true, 1, 0, 1, 0);
    expect(take(rl, "s", "", 1, 1, T0), false, 1, 0, 1, 1);
    expect(take(rl, "s", "", 1, 1, T0 + 11 * SEC), true, 1, 0, 1, 0); /* one token, not eleven */
    assert_false(take(rl, "s", "", 1, 1, T0 + 11 * SEC).allowed);
    ratelimit_free(rl);
}

static void rules_out_of_range_are_refused(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(10);
    const ratelimit_rule_t bad[] = {
        { 0, 1 }, { -1, 1 }, { NAN, 1 }, { INFINITY, 1 }, { 1e13, 1 }, { 1e-7, 1 }, { 1, 0 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ratelimit_result_t r;
        assert_int_equal(ratelimit_take(rl, SPAN_LIT("s"), SPAN_LIT(""), &bad[i], T0, &r), -EINVAL);
        expect(r, true, 0, 0, 0, 0);
    }
    assert_int_equal(ratelimit_key_count(rl), 0);
    /* the ends of the range work; the slowest rate needs 11.6 days a token */
    expect(take(rl, "min", "", RATELIMIT_RPS_MIN, 1, T0), true, 1, 0, 1000000, 0);
    expect(take(rl, "max", "", RATELIMIT_RPS_MAX, UINT32_MAX, T0), true, UINT32_MAX, UINT32_MAX - 1, 1, 0);
    /* a reset beyond 136 years is capped */
    expect(take(rl, "cap", "", RATELIMIT_RPS_MIN, 10000, T0), true, 10000, 9999, 1000000, 0);
    for (int i = 0; i < 9999; i++)
        take(rl, "cap", "", RATELIMIT_RPS_MIN, 10000, T0);
    expect(take(rl, "cap", "", RATELIMIT_RPS_MIN, 10000, T0), false, 10000, 0, UINT32_MAX, 1000000);
    ratelimit_free(rl);
}

/* ---- exactness over simulated time ---- */

/* Takes `per_step` requests every `step` ns from T0 to T0 + span
 * inclusive; returns how many were admitted. */
static unsigned run_schedule(ratelimit_t *rl, double rps, uint32_t burst, uint64_t step, uint64_t span,
                             unsigned per_step)
{
    unsigned admitted = 0;
    for (uint64_t t = 0; t <= span; t += step)
        for (unsigned i = 0; i < per_step; i++)
            admitted += take(rl, "GET /x", "k", rps, burst, T0 + t).allowed;
    return admitted;
}

static void exact_from_one_thread(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(10);
    /* 100/s, burst 20, a request every ms for 2 s: 20 + 200 */
    assert_int_equal(run_schedule(rl, 100, 20, 1 * MS, 2 * SEC, 1), 220);
    ratelimit_free(rl);
    /* the same one nanosecond short of 2 s misses the last token */
    rl = ratelimit_new(10);
    assert_int_equal(run_schedule(rl, 100, 20, 1 * MS, 2 * SEC - 1, 1), 219);
    ratelimit_free(rl);
    /* many requests at each instant change nothing */
    rl = ratelimit_new(10);
    assert_int_equal(run_schedule(rl, 100, 20, 250000, 2 * SEC, 7), 220);
    ratelimit_free(rl);
    /* no drift over 100000 takes at a rate that is not a binary fraction */
    rl = ratelimit_new(10);
    assert_int_equal(run_schedule(rl, 7.3, 5, 1 * MS, 100 * SEC, 1), 5 + 730);
    ratelimit_free(rl);
}

typedef struct hammer {
    ratelimit_t *rl;
    uv_barrier_t *barrier;
    _Atomic uint64_t *clock;
    unsigned index;
    unsigned steps;
    unsigned per_step;
    uint64_t step_ns;
    unsigned admitted;
    int failures;
} hammer_t;

/* Lock-step: thread 0 sets the shared clock, all wait, all take at that
 * time at once (contending for the bucket), all wait again. */
static void hammer_lock_step(void *arg)
{
    hammer_t *h = arg;
    ratelimit_rule_t rule = { 100, 20 };
    for (unsigned k = 0; k < h->steps; k++) {
        if (h->index == 0)
            atomic_store(h->clock, T0 + k * h->step_ns);
        uv_barrier_wait(h->barrier);
        uint64_t now = atomic_load(h->clock);
        for (unsigned i = 0; i < h->per_step; i++) {
            ratelimit_result_t r;
            if (ratelimit_take(h->rl, SPAN_LIT("GET /x"), SPAN_LIT("k"), &rule, now, &r) != 0)
                h->failures++;
            h->admitted += r.allowed;
        }
        uv_barrier_wait(h->barrier);
    }
}

static unsigned run_threads(unsigned n, void (*fn)(void *), hammer_t *h, ratelimit_t *rl, unsigned steps,
                            unsigned per_step, uint64_t step_ns)
{
    uv_barrier_t barrier;
    _Atomic uint64_t clock = T0;
    uv_thread_t threads[8];
    assert_int_equal(uv_barrier_init(&barrier, n), 0);
    for (unsigned i = 0; i < n; i++) {
        h[i] = (hammer_t){ .rl = rl, .barrier = &barrier, .clock = &clock, .index = i, .steps = steps,
                           .per_step = per_step, .step_ns = step_ns };
        assert_int_equal(uv_thread_create(&threads[i], fn, &h[i]), 0);
    }
    unsigned total = 0;
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(uv_thread_join(&threads[i]), 0);
        assert_int_equal(h[i].failures, 0);
        total += h[i].admitted;
    }
    uv_barrier_destroy(&barrier);
    return total;
}

/* 2 s at 100/s, burst 20, a step every ms with 3 takes per thread per step:
 * exactly the single-thread figure, 220, however the threads interleave. */
static void exact_across_threads(void **state)
{
    (void)state;
    hammer_t h[4];
    for (unsigned n = 1; n <= 4; n *= 2) {
        ratelimit_t *rl = ratelimit_new(10);
        assert_int_equal(run_threads(n, hammer_lock_step, h, rl, 2001, 3, 1 * MS), 220);
        assert_int_equal(ratelimit_key_count(rl), 1);
        ratelimit_free(rl);
    }
}

/* No lock-step at all: four threads race on one bucket at a frozen time,
 * 20000 takes in all for a burst of 1000. */
static void hammer_frozen(void *arg)
{
    hammer_t *h = arg;
    ratelimit_rule_t rule = { 1, 1000 };
    uv_barrier_wait(h->barrier);
    for (unsigned i = 0; i < h->per_step; i++) {
        ratelimit_result_t r;
        if (ratelimit_take(h->rl, SPAN_LIT("POST /y"), SPAN_LIT("10.0.0.1"), &rule, T0, &r) != 0)
            h->failures++;
        h->admitted += r.allowed;
    }
}

static void racing_threads_share_one_burst(void **state)
{
    (void)state;
    hammer_t h[4];
    ratelimit_t *rl = ratelimit_new(10);
    assert_int_equal(run_threads(4, hammer_frozen, h, rl, 1, 5000, 0), 1000);
    ratelimit_free(rl);
}

/* Four threads walk the same 20000 new names at once: often two of them
 * both miss a name and both allocate a bucket for it; only one may be
 * kept, so each name admits once (burst 1, no refill to speak of). */
static void hammer_new_names(void *arg)
{
    hammer_t *h = arg;
    ratelimit_rule_t rule = { 1e-6, 1 };
    char key[16];
    uv_barrier_wait(h->barrier);
    for (unsigned i = 0; i < h->per_step; i++) {
        int n = snprintf(key, sizeof key, "n%u", i);
        ratelimit_result_t r;
        if (ratelimit_take(h->rl, SPAN_LIT("GET /n"), span_of(key, (size_t)n), &rule, T0, &r) != 0)
            h->failures++;
        h->admitted += r.allowed;
    }
}

static void racing_threads_share_new_names(void **state)
{
    (void)state;
    hammer_t h[4];
    ratelimit_t *rl = ratelimit_new(20000);
    assert_int_equal(run_threads(4, hammer_new_names, h, rl, 1, 20000, 0), 20000);
    assert_int_equal(ratelimit_key_count(rl), 20000);
    assert_int_equal(ratelimit_evictions(rl), 0);
    ratelimit_free(rl);
}

/* ---- names ---- */

static void keys_and_scopes_are_independent(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(100);
    expect(take(rl, "GET /a", "u1", 1e-6, 2, T0), true, 2, 1, 1000000, 0);
    expect(take(rl, "GET /a", "u1", 1e-6, 2, T0), true, 2, 0, 2000000, 0);
    assert_false(take(rl, "GET /a", "u1", 1e-6, 2, T0).allowed);
    assert_int_equal(take(rl, "GET /a", "u2", 1e-6, 2, T0).remaining, 1);
    assert_int_equal(take(rl, "GET /b", "u1", 1e-6, 2, T0).remaining, 1);
    assert_int_equal(take(rl, "GET /a", "", 1e-6, 2, T0).remaining, 1);
    /* the same bytes split differently are different names */
    assert_int_equal(take(rl, "ab", "c", 1e-6, 2, T0).remaining, 1);
    assert_int_equal(take(rl, "a", "bc", 1e-6, 2, T0).remaining, 1);
    assert_int_equal(take(rl, "abc", "", 1e-6, 2, T0).remaining, 1);
    assert_int_equal(take(rl, "", "abc", 1e-6, 2, T0).remaining, 1);
    assert_int_equal(ratelimit_key_count(rl), 8);
    /* and each kept its own count */
    assert_int_equal(take(rl, "a", "bc", 1e-6, 2, T0).remaining, 0);
    assert_int_equal(take(rl, "GET /a", "u2", 1e-6, 2, T0).remaining, 0);
    assert_false(take(rl, "GET /a", "u1", 1e-6, 2, T0).allowed);
    /* a span whose pointer is NULL is the empty key */
    ratelimit_rule_t rule = { 1e-6, 2 };
    ratelimit_result_t r;
    assert_int_equal(ratelimit_take(rl, SPAN_LIT("GET /a"), span_of(NULL, 0), &rule, T0, &r), 0);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(ratelimit_key_count(rl), 8);
    ratelimit_free(rl);
}

static void long_names_are_digested(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(100);
    enum { LONG = 5000 };
    char *a = malloc(LONG + 1), *b = malloc(LONG + 1);
    memset(a, 'x', LONG);
    a[LONG] = '\0';
    memcpy(b, a, LONG + 1);
    b[LONG - 1] = 'y'; /* differs in the last byte only */
    assert_int_equal(take(rl, "s", a, 1e-6, 3, T0).remaining, 2);
    assert_int_equal(take(rl, "s", a, 1e-6, 3, T0).remaining, 1);
    assert_int_equal(take(rl, "s", b, 1e-6, 3, T0).remaining, 2);
    /* the scope still counts: the same bytes split elsewhere differ */
    assert_int_equal(take(rl, "sx", a + 1, 1e-6, 3, T0).remaining, 2);
    assert_int_equal(take(rl, a, "", 1e-6, 3, T0).remaining, 2);
    assert_int_equal(take(rl, "", a, 1e-6, 3, T0).remaining, 2);
    assert_int_equal(ratelimit_key_count(rl), 5);
    assert_int_equal(take(rl, "s", a, 1e-6, 3, T0).remaining, 0);
    /* either side of RATELIMIT_ID_MAX: 128 bytes verbatim, 129 digested */
    a[RATELIMIT_ID_MAX - 1] = '\0';
    b[RATELIMIT_ID_MAX] = '\0';
    b[RATELIMIT_ID_MAX - 1] = 'x';
    assert_int_equal(take(rl, "z", a, 1e-6, 3, T0).remaining, 2);
    assert_int_equal(take(rl, "z", a, 1e-6, 3, T0).remaining, 1);
    assert_int_equal(take(rl, "z", b, 1e-6, 3, T0).remaining, 2);
    assert_int_equal(take(rl, "z", b, 1e-6, 3, T0).remaining, 1);
    assert_int_equal(ratelimit_key_count(rl), 7);
    free(a);
    free(b);
    ratelimit_free(rl);
}

/* ---- the bound ---- */

static void lru_evicts_least_recently_taken(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(3);
    /* burst 2 and no refill: remaining 1 means first take, 0 a second */
#define TAKE(k) take(rl, "GET /u", (k), 1e-6, 2, T0).remaining
    assert_int_equal(TAKE("a"), 1);
    assert_int_equal(TAKE("b"), 1);
    assert_int_equal(TAKE("c"), 1);
    assert_int_equal(TAKE("a"), 0); /* order b c a */
    assert_int_equal(TAKE("d"), 1); /* b goes: c a d */
    assert_int_equal(ratelimit_key_count(rl), 3);
    assert_int_equal(ratelimit_evictions(rl), 1);
    assert_int_equal(TAKE("c"), 0); /* c kept: a d c */
    assert_int_equal(TAKE("b"), 1); /* b starts full again, a goes: d c b */
    assert_int_equal(TAKE("d"), 0); /* d kept: c b d */
    assert_int_equal(TAKE("a"), 1); /* a had none left; full again, c goes: b d a */
    assert_int_equal(ratelimit_evictions(rl), 3);
    assert_int_equal(TAKE("b"), 0);
    assert_false(take(rl, "GET /u", "d", 1e-6, 2, T0).allowed); /* d kept its empty bucket */
    assert_int_equal(ratelimit_key_count(rl), 3);
    assert_int_equal(ratelimit_evictions(rl), 3);
#undef TAKE
    ratelimit_free(rl);
}

static void many_keys_stay_within_the_bound(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(100);
    char key[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        assert_int_equal(take(rl, "GET /x", key, 1e-6, 5, T0).remaining, 4);
        assert_true(ratelimit_key_count(rl) <= 100);
    }
    assert_int_equal(ratelimit_key_count(rl), 100);
    assert_int_equal(ratelimit_evictions(rl), 9900);
    /* the last 100 are the ones kept, newest first so none is evicted */
    for (int i = 9999; i >= 9900; i--) {
        snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        assert_int_equal(take(rl, "GET /x", key, 1e-6, 5, T0).remaining, 3);
    }
    assert_int_equal(ratelimit_evictions(rl), 9900);
    ratelimit_free(rl);
}

static void max_keys_changes_at_runtime(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(10);
    char key[8];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(take(rl, "s", key, 1e-6, 3, T0).remaining, 2);
    }
    /* shrinking evicts the least recently taken: k0..k5 */
    assert_int_equal(ratelimit_set_max_keys(rl, 4), 0);
    assert_int_equal(ratelimit_key_count(rl), 4);
    assert_int_equal(ratelimit_evictions(rl), 6);
    for (int i = 6; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(take(rl, "s", key, 1e-6, 3, T0).remaining, 1);
    }
    assert_int_equal(take(rl, "s", "k0", 1e-6, 3, T0).remaining, 2); /* back, full; k6 goes */
    assert_int_equal(ratelimit_evictions(rl), 7);
    /* growing (a larger index, rehashed) keeps every bucket */
    assert_int_equal(ratelimit_set_max_keys(rl, 5000), 0);
    assert_int_equal(ratelimit_key_count(rl), 4);
    for (int i = 7; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(take(rl, "s", key, 1e-6, 3, T0).remaining, 0);
    }
    assert_int_equal(take(rl, "s", "k0", 1e-6, 3, T0).remaining, 1);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "n%d", i);
        take(rl, "s", key, 1e-6, 3, T0);
    }
    assert_int_equal(ratelimit_key_count(rl), 1004);
    assert_int_equal(ratelimit_evictions(rl), 7);
    /* out of range changes nothing; 0 is 1 */
    assert_int_equal(ratelimit_set_max_keys(rl, RATELIMIT_KEYS_MAX + 1), -EINVAL);
    assert_int_equal(ratelimit_key_count(rl), 1004);
    assert_int_equal(ratelimit_set_max_keys(rl, 0), 0);
    assert_int_equal(ratelimit_key_count(rl), 1);
    assert_int_equal(take(rl, "s", "n999", 1e-6, 3, T0).remaining, 1); /* the newest stayed */
    assert_null(ratelimit_new(RATELIMIT_KEYS_MAX + 1));
    ratelimit_free(rl);
}

/* ---- reloads: a bucket's rule changes ---- */

static void a_new_rule_clamps_the_tokens(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(10);
    expect(take(rl, "s", "", 1e-6, 10, T0), true, 10, 9, 1000000, 0);
    expect(take(rl, "s", "", 1e-6, 10, T0), true, 10, 8, 2000000, 0);
    /* burst 10 -> 5: 8 clamped to 5, one taken */
    expect(take(rl, "s", "", 1e-6, 5, T0), true, 5, 4, 1000000, 0);
    /* burst 5 -> 20: 4 stay 4, not filled */
    expect(take(rl, "s", "", 1e-6, 20, T0), true, 20, 3, 17000000, 0);
    /* rate 1/s -> 10/s: what accrued before counts at the old rate */
    for (int i = 0; i < 10; i++)
        assert_true(take(rl, "r", "", 1, 10, T0).allowed);
    expect(take(rl, "r", "", 10, 10, T0 + 2 * SEC), true, 10, 1, 1, 0);       /* 2 tokens, not 20 */
    expect(take(rl, "r", "", 10, 10, T0 + 2500 * MS), true, 10, 5, 1, 0);     /* 1 + 5 at the new rate */
    ratelimit_free(rl);
}

/* ---- concurrency beyond one bucket: new names, evictions and resizes
 * racing (meant for ThreadSanitizer as much as for the figures) ---- */

static void hammer_churn(void *arg)
{
    hammer_t *h = arg;
    ratelimit_rule_t rule = { 1000, 5 };
    unsigned seed = 7 + h->index;
    char key[16];
    uv_barrier_wait(h->barrier);
    for (unsigned i = 0; i < h->per_step; i++) {
        seed = seed * 1103515245u + 12345u;
        int n = snprintf(key, sizeof key, "u%u", (seed >> 8) % 500);
        ratelimit_result_t r;
        if (ratelimit_take(h->rl, SPAN_LIT("GET /c"), span_of(key, (size_t)n), &rule, T0 + i * 1000, &r) != 0)
            h->failures++;
        if (r.limit != 5 || r.remaining > 4)
            h->failures++;
        h->admitted += r.allowed;
    }
}

static void resize(void *arg)
{
    hammer_t *h = arg;
    uv_barrier_wait(h->barrier);
    for (unsigned i = 0; i < h->per_step; i++)
        if (ratelimit_set_max_keys(h->rl, i % 2 ? 16 : 300) != 0)
            h->failures++;
}

static void churn_across_threads(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(64);
    uv_barrier_t barrier;
    uv_thread_t threads[4];
    hammer_t h[4];
    assert_int_equal(uv_barrier_init(&barrier, 4), 0);
    for (unsigned i = 0; i < 4; i++) {
        h[i] = (hammer_t){ .rl = rl, .barrier = &barrier, .index = i, .per_step = i == 3 ? 200 : 20000 };
        assert_int_equal(uv_thread_create(&threads[i], i == 3 ? resize : hammer_churn, &h[i]), 0);
    }
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(uv_thread_join(&threads[i]), 0);
        assert_int_equal(h[i].failures, 0);
    }
    uv_barrier_destroy(&barrier);
    assert_true(ratelimit_key_count(rl) <= 16); /* the last resize was to 16 */
    assert_true(ratelimit_evictions(rl) > 0);
    for (unsigned i = 0; i < 3; i++)
        assert_true(h[i].admitted > 0);
    ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(starts_full_then_refuses),
        cmocka_unit_test(refills_continuously_up_to_burst),
        cmocka_unit_test(fractional_rates_and_rounding),
        cmocka_unit_test(time_never_runs_back),
        cmocka_unit_test(rules_out_of_range_are_refused),
        cmocka_unit_test(exact_from_one_thread),
        cmocka_unit_test(exact_across_threads),
        cmocka_unit_test(racing_threads_share_one_burst),
        cmocka_unit_test(racing_threads_share_new_names),
        cmocka_unit_test(keys_and_scopes_are_independent),
        cmocka_unit_test(long_names_are_digested),
        cmocka_unit_test(lru_evicts_least_recently_taken),
        cmocka_unit_test(many_keys_stay_within_the_bound),
        cmocka_unit_test(max_keys_changes_at_runtime),
        cmocka_unit_test(a_new_rule_clamps_the_tokens),
        cmocka_unit_test(churn_across_threads),
    };
    return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
