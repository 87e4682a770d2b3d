/* Soak under chaos: steady load through the built gateway to a Nest 12
 * service that is SIGKILLed and restarted on the same port again and again.
 *
 * SOAK_CLIENTS threads POST /sum (each request on a new connection, a 10 s
 * client timeout, SOAK_PACE_MS between two) for about two minutes. The schedule: a warm-up (load, one
 * kill/restart cycle), a checkpoint of the gateway's RSS and open
 * descriptors with the load paused, SOAK_CYCLES cycles of a down-phase of
 * 2-5 s and an up-phase of SOAK_UP_MS (more than twice the 5 s backoff
 * cap), and a last measurement with the load paused.
 *
 * Expected: every request answered, never a client timeout; every answer
 * that is not 200 (with the right sum) is one the kill explains: 502
 * upstream_closed (in flight when the service died) or 503
 * upstream_unavailable (no connection could be had), and it overlaps a
 * down-window (from the kill to the first 200 after the restart, plus
 * SOAK_SLACK_MS); after each restart a 200 within the up-phase, and in
 * every up-phase at least SOAK_FLOOR_PER_S successful requests per second;
 * at the end RSS within +10% (or +2 MiB) and descriptors within ±2 of the
 * checkpoint. One summary line on stderr.
 *
 * Registered in the release build only (label `chaos`): ASan's slowdown
 * would only measure ASan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <time.h>

#include "support/deadline.h"
#include "support/gateway.h"
#include "support/http.h"
#include "support/nest.h"
#include "support/probe.h"
#include "support/proc.h"

#define SOAK_CLIENTS 12
#define SOAK_CYCLES 6
#define SOAK_PACE_MS 5 /* each client's pause between two requests */
#define SOAK_WARMUP_MS 10000
#define SOAK_UP_MS 12000
#define CLIENT_TIMEOUT_MS 10000
#define POLL_TIMEOUT_MS 30000
#define ADMIN_TIMEOUT_MS 10000
#define SOAK_FLOOR_PER_S 20   /* successful requests per second of up-phase, at least */
#define SOAK_SLACK_MS 1000    /* failures this long after the recovery still count as the kill's */
#define SOAK_MAX_FAILURES 200000

static const int DOWN_MS[] = { 2000, 3500, 5000 };

static const char CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"log\": { \"level\": \"info\" },\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

enum { ST_200, ST_502, ST_503, ST_504, ST_BAD, ST_COUNT };
static const char *const ST_NAMES[ST_COUNT] = { "200", "502", "503", "504", "bad" };

/* A failed request: when it was under way, and what it got. */
typedef struct failure {
    long long t0, t1;
    int status;
    char code[32];                   /* the error body's "error" */
} failure_t;

/* One kill: from the kill to the first 200 after the restart. */
typedef struct down_window {
    long long kill_at, recovered_at;
} down_window_t;

typedef struct soak {
    int port;
    atomic_bool stop, pause;
    atomic_int idle;                 /* clients parked by `pause` */
    atomic_llong counts[ST_COUNT];
    atomic_llong last_ok_at;         /* deadline_now_ms() of the newest 200 */
    atomic_llong max_ms;             /* the slowest answer */
    pthread_mutex_t mu;
    char bad[512];                   /* the first unexpected answer */
    failure_t *failures;             /* [SOAK_MAX_FAILURES], under mu */
    size_t n_failures;
    down_window_t windows[SOAK_CYCLES + 1];
    int n_windows;
} soak_t;

static struct gwproc *g_gw;

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        if (g_gw)                                                                                  \
            gwproc_print_log(g_gw, "at the failure", 60);                                          \
        fail_msg(__VA_ARGS__);                                                                     \
    } while (0)

static void record_bad(soak_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void record_bad(soak_t *s, const char *fmt, ...)
{
    pthread_mutex_lock(&s->mu);
    if (atomic_fetch_add(&s->counts[ST_BAD], 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->bad, sizeof s->bad, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Keeps a failed answer for the end, when the down-windows are known. */
static void record_failure(soak_t *s, long long t0, long long t1, const struct http_response *r)
{
    failure_t f = { t0, t1, r->status, "" };
    const char *e = strstr(r->body, "\"error\":\"");
    if (e)
        snprintf(f.code, sizeof f.code, "%.*s", (int)strcspn(e + 9, "\""), e + 9);
    pthread_mutex_lock(&s->mu);
    if (s->n_failures < SOAK_MAX_FAILURES)
        s->failures[s->n_failures++] = f;
    pthread_mutex_unlock(&s->mu);
}

/* Whether a kill explains the failure: the right status and code, and
 * under way during a down-window. */
static bool explained(const soak_t *s, const failure_t *f)
{
    bool kind = (f->status == 502 && strcmp(f->code, "upstream_closed") == 0) ||
                (f->status == 503 && strcmp(f->code, "upstream_unavailable") == 0);
    for (int w = 0; kind && w < s->n_windows; w++)
        if (f->t1 >= s->windows[w].kill_at && f->t0 <= s->windows[w].recovered_at + SOAK_SLACK_MS)
            return true;
    return false;
}

static void *client_main(void *arg)
{
    soak_t *s = arg;
    for (unsigned n = 0; !atomic_load(&s->stop); n++) {
        if (atomic_load(&s->pause)) {
            atomic_fetch_add(&s->idle, 1);
            while (atomic_load(&s->pause) && !atomic_load(&s->stop))
                deadline_pause_ms(10);
            atomic_fetch_sub(&s->idle, 1);
            continue;
        }
        char body[32], expected[16];
        snprintf(body, sizeof body, "[%u,7]", n % 100000);
        snprintf(expected, sizeof expected, "%u", n % 100000 + 7);
        struct http_request req = { .method = "POST", .path = "/sum", .body = body,
                                    .body_len = strlen(body) };
        struct http_response r;
        int64_t t0 = deadline_now_ms();
        int rc = http_fetch(s->port, &req, &r, CLIENT_TIMEOUT_MS);
        long long ms = deadline_now_ms() - t0;
        long long cur = atomic_load(&s->max_ms);
        while (ms > cur && !atomic_compare_exchange_weak(&s->max_ms, &cur, ms))
            ;
        if (rc != 0) {
            record_bad(s, "no answer after %lld ms: %s", ms, strerror(-rc));
            continue;
        }
        if (r.status == 200 && strcmp(r.body, expected) == 0) {
            atomic_fetch_add(&s->counts[ST_200], 1);
            atomic_store(&s->last_ok_at, (long long)deadline_now_ms());
        } else if (r.status == 502 || r.status == 503 || r.status == 504) {
            atomic_fetch_add(&s->counts[r.status == 502 ? ST_502 : r.status == 503 ? ST_503 : ST_504], 1);
            record_failure(s, t0, deadline_now_ms(), &r);
        } else {
            record_bad(s, "%d after %lld ms for %s: %.200s", r.status, ms, body, r.body);
        }
        http_response_free(&r);
        deadline_pause_ms(SOAK_PACE_MS); /* steady load that leaves CPU to tests running beside */
    }
    return NULL;
}

/* Polls until a 200 newer than `since` was seen; its delay, or -1. */
static long long wait_recovered(soak_t *s, int64_t since, int timeout_ms)
{
    int64_t deadline = deadline_after(timeout_ms);
    while (atomic_load(&s->last_ok_at) <= since) {
        if (deadline_remaining_ms(deadline) == 0)
            return -1;
        deadline_pause_ms(20);
    }
    return atomic_load(&s->last_ok_at) - since;
}

typedef struct sample {
    uint64_t rss_kb;
    int fds;
} sample_t;

/* Pauses the load, waits until the gateway is quiet (no client
 * connection, the service connected), measures, resumes. */
static sample_t quiet_sample(soak_t *s, struct gwproc *gw)
{
    atomic_store(&s->pause, true);
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    while (atomic_load(&s->idle) < SOAK_CLIENTS) {
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("the clients did not pause within %d ms", POLL_TIMEOUT_MS);
        deadline_pause_ms(20);
    }
    double conns = -1, connected = 0;
    const char *up[] = { "service=\"nest\"", "state=\"connected\"", NULL };
    for (;;) {
        bool ok = probe_metric_at(gw->admin_port, "patterngate_http_connections", NULL, &conns,
                                  ADMIN_TIMEOUT_MS) == 0 &&
                  probe_metric_at(gw->admin_port, "patterngate_upstream_connections", up, &connected,
                                  ADMIN_TIMEOUT_MS) == 0;
        if (ok && conns == 0 && connected == 1)
            break;
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("the gateway did not settle: %g client connections, %g upstream connected", conns,
                 connected);
        deadline_pause_ms(50);
    }
    struct gwproc_usage u;
    if (gwproc_usage(gw, &u) != 0)
        FAIL("cannot read the gateway's usage");
    sample_t out = { .rss_kb = u.rss_kb, .fds = probe_fd_count(gwproc_pid(gw)) };
    atomic_store(&s->pause, false);
    return out;
}

/* At least SOAK_FLOOR_PER_S successful requests per second since `from`
 * (when the 200s counted `ok_from`). */
static void expect_floor(soak_t *s, long long ok_from, long long from, const char *what)
{
    long long ok = atomic_load(&s->counts[ST_200]) - ok_from, ms = deadline_now_ms() - from;
    if (ms > 0 && ok * 1000 < SOAK_FLOOR_PER_S * ms)
        FAIL("%s: %lld successful requests in %lld ms, below the floor of %d per second", what, ok, ms,
             SOAK_FLOOR_PER_S);
}

/* One cycle: SIGKILL the service, leave it down for down_ms, restart it on
 * its port, require a 200 within the up-phase and keep it up SOAK_UP_MS.
 * Returns the time from the restart to the first 200. */
static long long chaos_cycle(soak_t *s, struct nest_service *svc, int down_ms)
{
    down_window_t *w = &s->windows[s->n_windows];
    w->kill_at = deadline_now_ms();
    w->recovered_at = LLONG_MAX; /* until known: everything after the kill */
    s->n_windows++;
    nest_kill(svc);
    deadline_pause_ms(down_ms); /* the schedule's down-phase, not a synchronization */
    if (nest_restart_same_port(svc) != 0)
        FAIL("the Nest service did not restart on port %d", svc->port);
    int64_t up_at = deadline_now_ms();
    long long recovered = wait_recovered(s, up_at, SOAK_UP_MS);
    if (recovered < 0)
        FAIL("no request succeeded within %d ms of the service's restart", SOAK_UP_MS);
    w->recovered_at = up_at + recovered;
    long long ok_from = atomic_load(&s->counts[ST_200]), from = deadline_now_ms();
    int left = SOAK_UP_MS - (int)(deadline_now_ms() - up_at);
    if (left > 0)
        deadline_pause_ms(left); /* the rest of the up-phase, under load */
    expect_floor(s, ok_from, from, "an up-phase");
    return recovered;
}

static void soak_kill_restart(void **state)
{
    (void)state;
    struct nest_service svc;
    struct nest_options no = { .quiet = true };
    if (nest_start("v12", &no, &svc) != 0)
        fail_msg("the Nest 12 service did not start");
    char nest_env[64];
    snprintf(nest_env, sizeof nest_env, "NEST_ADDR=127.0.0.1:%d", svc.port);
    const char *env[] = { nest_env, NULL };
    struct gwproc_options o = { .env = env, .ready_on_admin = true };
    int rc = gwproc_start(CONFIG, &o, &g_gw);
    if (rc != 0)
        fail_msg("the gateway did not start: %s", strerror(-rc));
    struct gwproc *gw = g_gw;

    soak_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->port = gw->port;
    s->failures = calloc(SOAK_MAX_FAILURES, sizeof *s->failures);
    assert_non_null(s->failures);
    pthread_mutex_init(&s->mu, NULL);
    int64_t t0 = deadline_now_ms();
    pthread_t threads[SOAK_CLIENTS];
    for (int i = 0; i < SOAK_CLIENTS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, client_main, s), 0);
    if (wait_recovered(s, 0, POLL_TIMEOUT_MS) < 0)
        FAIL("no request succeeded at the start");
    long long ok_from = atomic_load(&s->counts[ST_200]), from = deadline_now_ms();
    deadline_pause_ms(SOAK_WARMUP_MS); /* warm-up under load */
    expect_floor(s, ok_from, from, "the warm-up");
    long long recover[SOAK_CYCLES + 1];
    recover[0] = chaos_cycle(s, &svc, DOWN_MS[0]);
    sample_t check = quiet_sample(s, gw);
    for (int c = 1; c <= SOAK_CYCLES; c++)
        recover[c] = chaos_cycle(s, &svc, DOWN_MS[c % 3]);
    sample_t end = quiet_sample(s, gw);
    atomic_store(&s->stop, true);
    for (int i = 0; i < SOAK_CLIENTS; i++)
        pthread_join(threads[i], NULL);
    long long total = 0;
    for (int i = 0; i < ST_COUNT; i++)
        total += atomic_load(&s->counts[i]);
    long long worst = 0;
    for (int c = 0; c <= SOAK_CYCLES; c++)
        worst = recover[c] > worst ? recover[c] : worst;
    fprintf(stderr,
            "soak: %lld s, %d clients, %d kill/restart cycles (first 200 after a restart: worst "
            "%lld ms); %lld requests: %s %lld, %s %lld, %s %lld, %s %lld, %s %lld; slowest answer "
            "%lld ms; RSS %llu KiB -> %llu KiB, fds %d -> %d (checkpoint -> end)\n",
            (long long)(deadline_now_ms() - t0) / 1000, SOAK_CLIENTS, SOAK_CYCLES + 1, worst, total,
            ST_NAMES[0], atomic_load(&s->counts[0]), ST_NAMES[1], atomic_load(&s->counts[1]),
            ST_NAMES[2], atomic_load(&s->counts[2]), ST_NAMES[3], atomic_load(&s->counts[3]),
            ST_NAMES[4], atomic_load(&s->counts[4]), atomic_load(&s->max_ms),
            (unsigned long long)check.rss_kb, (unsigned long long)end.rss_kb, check.fds, end.fds);
    if (atomic_load(&s->counts[ST_BAD]))
        FAIL("%lld requests were answered otherwise than 200, 502, 503 or 504, or not at all; "
             "the first: %s", atomic_load(&s->counts[ST_BAD]), s->bad);
    size_t unexplained = 0;
    const failure_t *first = NULL;
    for (size_t i = 0; i < s->n_failures; i++)
        if (!explained(s, &s->failures[i]) && unexplained++ == 0)
            first = &s->failures[i];
    if (unexplained)
        FAIL("%zu of %zu failed requests are not what a kill explains (502 upstream_closed or 503 "
             "upstream_unavailable during a down-window); the first: %d %s from %lld to %lld ms",
             unexplained, s->n_failures, first->status, first->code, first->t0 - t0, first->t1 - t0);
    uint64_t allowed = check.rss_kb / 10 > 2048 ? check.rss_kb / 10 : 2048;
    if (end.rss_kb > check.rss_kb + allowed)
        FAIL("RSS grew from %llu KiB to %llu KiB", (unsigned long long)check.rss_kb,
             (unsigned long long)end.rss_kb);
    if (check.fds < 0 || end.fds < 0 || abs(end.fds - check.fds) > 2)
        FAIL("open descriptors went from %d to %d", check.fds, end.fds);
    int status = gwproc_stop(gw, GWPROC_STOP_TIMEOUT_MS);
    if (status != 0) {
        char buf[64];
        FAIL("the gateway ended with %s after SIGTERM, expected exit 0",
             proc_status_str(status, buf, sizeof buf));
    }
    gwproc_free(gw);
    g_gw = NULL;
    nest_stop(&svc);
    pthread_mutex_destroy(&s->mu);
    free(s->failures);
    free(s);
}

int main(void)
{
    nest_require("v12");
    const struct CMUnitTest tests[] = { cmocka_unit_test(soak_kill_restart) };
    return cmocka_run_group_tests_name("chaos", tests, NULL, NULL);
}
