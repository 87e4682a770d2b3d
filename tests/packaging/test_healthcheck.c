/* `patterngate healthcheck [URL]`, the container image's HEALTHCHECK, run
 * as the built binary against a real gateway (started by
 * tests/support/gateway.h with admin_listen), against a port where nothing
 * listens, against a listener that never answers, and with bad URLs:
 *
 *   exit 0   the URL answered 200 within 2 s
 *   exit 1   anything else, with the reason on stderr
 *   exit 2   a URL that is not http://HOST[:PORT][/PATH] (https included)
 *
 * Plain C without cmocka: each CHECK prints what failed and the run ends
 * with "N passed, N failed". Only loopback addresses are used. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/deadline.h"
#include "support/gateway.h"
#include "support/net.h"
#include "support/proc.h"

#define RUN_TIMEOUT_MS 15000

static int g_passed, g_failed;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            g_passed++;                                                    \
        } else {                                                           \
            g_failed++;                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

struct run {
    int status;
    char *out;
    char *err;
    int64_t elapsed_ms;
};

/* Runs `patterngate healthcheck ARGS...` (NULL-terminated, at most 4). */
static struct run healthcheck(const char *a1, const char *a2)
{
    const char *argv[] = { PG_BINARY, "healthcheck", a1, a2, NULL };
    struct run r = { .status = -1 };
    struct proc *p = NULL;
    int64_t t0 = deadline_now_ms();
    int rc = proc_spawn(argv, NULL, &p);
    if (rc != 0) {
        fprintf(stderr, "cannot start %s: %s\n", PG_BINARY, strerror(-rc));
        return r;
    }
    r.status = proc_read_all(p, RUN_TIMEOUT_MS, &r.out, &r.err);
    r.elapsed_ms = deadline_now_ms() - t0;
    proc_free(p);
    if (r.out == NULL)
        r.out = strdup("");
    if (r.err == NULL)
        r.err = strdup("");
    return r;
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

static char *url(const char *fmt, ...)
{
    static char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

/* A gateway whose admin API has its own listener, and an eager service on
 * a closed port, so that /readyz answers 503. */
static const char GATEWAY_CONFIG[] =
    "{\"listen\":\"127.0.0.1:${GW_PORT}\",\"admin_listen\":\"127.0.0.1:${GW_ADMIN_PORT}\","
    "\"services\":{\"down\":{\"endpoints\":[\"127.0.0.1:${DOWN_PORT}\"]}}}";

static void test_against_gateway(void)
{
    char down_env[64];
    int down_port = testnet_free_port();
    snprintf(down_env, sizeof down_env, "DOWN_PORT=%d", down_port);
    const char *env[] = { down_env, NULL };
    struct gwproc_options o = { .env = env, .ready_on_admin = true };
    struct gwproc *gw = NULL;
    int rc = gwproc_start(GATEWAY_CONFIG, &o, &gw);
    CHECK(rc == 0, "the gateway did not start: %s", strerror(-rc));
    if (rc != 0)
        return;
    int admin = gw->admin_port;

    struct run r = healthcheck(url("http://127.0.0.1:%d/healthz", admin), NULL);
    CHECK(r.status == 0, "/healthz: exit %d, stderr: %s", r.status, r.err);
    CHECK(r.err[0] == '\0' && r.out[0] == '\0', "a healthy check prints nothing: %s%s", r.out, r.err);
    run_free(&r);

    r = healthcheck(url("http://localhost:%d/healthz", admin), NULL);
    CHECK(r.status == 0, "localhost (resolved, each address tried): exit %d, %s", r.status, r.err);
    run_free(&r);

    r = healthcheck(url("http://127.0.0.1:%d/readyz", admin), NULL);
    CHECK(r.status == 1, "/readyz with a service down: exit %d", r.status);
    CHECK(strstr(r.err, "status 503") != NULL && strstr(r.err, "not_ready") != NULL,
          "the reason names the status and the body: %s", r.err);
    run_free(&r);

    r = healthcheck(url("http://127.0.0.1:%d", admin), NULL);
    CHECK(r.status == 1 && strstr(r.err, "status 404") != NULL,
          "no path means /, a 404 on the admin listener: exit %d, %s", r.status, r.err);
    run_free(&r);

    /* The admin paths are not on `listen` when admin_listen is set. */
    r = healthcheck(url("http://127.0.0.1:%d/healthz", gw->port), NULL);
    CHECK(r.status == 1 && strstr(r.err, "status 404") != NULL,
          "/healthz on listen: exit %d, %s", r.status, r.err);
    run_free(&r);

    gwproc_free(gw);
}

static void test_nothing_listening(void)
{
    int port = testnet_free_port();
    struct run r = healthcheck(url("http://127.0.0.1:%d/healthz", port), NULL);
    CHECK(r.status == 1, "nothing listening: exit %d", r.status);
    CHECK(strstr(r.err, "Connection refused") != NULL, "the reason: %s", r.err);
    CHECK(r.elapsed_ms < 2000, "a refusal is immediate: %lld ms", (long long)r.elapsed_ms);
    run_free(&r);
}

/* Accepts and says nothing until the client goes away. */
static void silent(struct testnet_peer *peer, void *arg)
{
    (void)arg;
    testnet_peer_wait_closed(peer, 20000);
}

static void test_no_answer(void)
{
    struct testnet_upstream *up = NULL;
    int rc = testnet_upstream_start(silent, NULL, &up);
    CHECK(rc == 0, "listener: %s", strerror(-rc));
    if (rc != 0)
        return;
    struct run r = healthcheck(url("http://127.0.0.1:%d/healthz", testnet_upstream_port(up)), NULL);
    CHECK(r.status == 1, "a listener that never answers: exit %d", r.status);
    CHECK(strstr(r.err, "no answer within 2 s") != NULL, "the reason: %s", r.err);
    CHECK(r.elapsed_ms >= 1900 && r.elapsed_ms < 6000, "gives up after 2 s: %lld ms",
          (long long)r.elapsed_ms);
    run_free(&r);
    testnet_upstream_stop(up);
}

static void expect_usage(const char *a1, const char *a2, const char *why)
{
    struct run r = healthcheck(a1, a2);
    CHECK(r.status == 2, "%s (%s): exit %d, stderr: %s", why, a1, r.status, r.err);
    CHECK(strstr(r.err, "usage: patterngate healthcheck") != NULL, "%s: usage printed: %s", why, r.err);
    run_free(&r);
}

static void test_bad_urls(void)
{
    expect_usage("https://127.0.0.1:9901/healthz", NULL, "https");
    expect_usage("ftp://127.0.0.1/", NULL, "another scheme");
    expect_usage("127.0.0.1:9901/healthz", NULL, "no scheme");
    expect_usage("http://", NULL, "no host");
    expect_usage("http://:9901/healthz", NULL, "empty host");
    expect_usage("http://127.0.0.1:0/", NULL, "port 0");
    expect_usage("http://127.0.0.1:65536/", NULL, "port out of range");
    expect_usage("http://127.0.0.1:80x/", NULL, "port not a number");
    expect_usage("http://[::1/", NULL, "unterminated IPv6");
    expect_usage("http://user@127.0.0.1/", NULL, "user info");
    expect_usage("http://127.0.0.1/a b", NULL, "a space");
    expect_usage("http://127.0.0.1/", "http://127.0.0.1/", "two URLs");

    struct run r = healthcheck("--help", NULL);
    CHECK(r.status == 0 && strstr(r.out, "usage: patterngate healthcheck") != NULL,
          "--help: exit %d, %s", r.status, r.out);
    run_free(&r);
}

int main(void)
{
    test_against_gateway();
    test_nothing_listening();
    test_no_answer();
    test_bad_urls();
    proc_kill_all();
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
