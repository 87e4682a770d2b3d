/* `patterngate healthcheck [-c FILE] [URL]`, the container image's
 * HEALTHCHECK, run as the built binary against a real gateway (started by
 * tests/support/gateway.h with admin_listen), against a port where nothing
 * listens, against a listener that never answers, and with bad URLs; and
 * without a URL, with the URL derived from the gateway's config (-c FILE or
 * PATTERNGATE_CONFIG: admin_listen, else listen, a wildcard host made
 * loopback):
 *
 *   exit 0   the URL answered 200 within 2 s
 *   exit 1   anything else, with the reason on stderr
 *   exit 2   a URL that is not http://HOST[:PORT][/PATH] (https included)
 *
 * Plain C without cmocka: each CHECK prints what failed and the run ends
 * with "N passed, N failed". Only loopback addresses are used. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Runs `patterngate healthcheck A1 A2 A3` (NULL ends the arguments) with
 * `env` ("NAME=value", NULL-terminated, or NULL) added to the environment. */
static struct run healthcheck_env(const char *const *env, const char *a1, const char *a2,
                                  const char *a3)
{
    const char *argv[] = { PG_BINARY, "healthcheck", a1, a2, a3, NULL };
    struct proc_options opts = { .env = env };
    struct run r = { .status = -1 };
    struct proc *p = NULL;
    int64_t t0 = deadline_now_ms();
    int rc = proc_spawn(argv, &opts, &p);
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

/* Runs `patterngate healthcheck A1 A2`, PATTERNGATE_CONFIG unset (empty). */
static struct run healthcheck(const char *a1, const char *a2)
{
    const char *env[] = { "PATTERNGATE_CONFIG=", NULL };
    return healthcheck_env(env, a1, a2, NULL);
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

/* The gateway's config file names its ports through ${GW_PORT} and
 * ${GW_ADMIN_PORT}: the health check gets them too, to load it. */
struct gw_env {
    char port[32], admin_port[32], config[PATH_MAX + 32], down[32];
    const char *env[5];
};

static void gw_env_init(struct gw_env *e, const struct gwproc *gw, int down_port)
{
    snprintf(e->port, sizeof e->port, "GW_PORT=%d", gw->port);
    snprintf(e->admin_port, sizeof e->admin_port, "GW_ADMIN_PORT=%d", gw->admin_port);
    snprintf(e->config, sizeof e->config, "PATTERNGATE_CONFIG=%s", gw->config_path);
    snprintf(e->down, sizeof e->down, "DOWN_PORT=%d", down_port);
    e->env[0] = e->port;
    e->env[1] = e->admin_port;
    e->env[2] = e->down;
    e->env[3] = NULL; /* room for PATTERNGATE_CONFIG */
    e->env[4] = NULL;
}

/* No URL: /healthz of the config's admin_listen, which alone serves it here
 * (the /healthz on listen is a 404, see test_against_gateway). */
static void test_url_from_config(void)
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
    struct gw_env e;
    gw_env_init(&e, gw, down_port);
    e.env[3] = "PATTERNGATE_CONFIG=";

    struct run r = healthcheck_env(e.env, "-c", gw->config_path, NULL);
    CHECK(r.status == 0, "-c FILE (admin_listen): exit %d, stderr: %s", r.status, r.err);
    CHECK(r.err[0] == '\0' && r.out[0] == '\0', "a healthy check prints nothing: %s%s", r.out, r.err);
    run_free(&r);

    char config_option[PATH_MAX + 16];
    snprintf(config_option, sizeof config_option, "--config=%s", gw->config_path);
    r = healthcheck_env(e.env, config_option, NULL, NULL);
    CHECK(r.status == 0, "--config=FILE: exit %d, stderr: %s", r.status, r.err);
    run_free(&r);

    e.env[3] = e.config;
    r = healthcheck_env(e.env, NULL, NULL, NULL);
    CHECK(r.status == 0, "PATTERNGATE_CONFIG: exit %d, stderr: %s", r.status, r.err);
    run_free(&r);

    /* once the gateway is gone, the failure names the URL it derived */
    char expected[128];
    snprintf(expected, sizeof expected, "http://127.0.0.1:%d/healthz: cannot connect",
             gw->admin_port);
    rc = gwproc_stop(gw, GWPROC_STOP_TIMEOUT_MS);
    CHECK(rc == 0, "the gateway's exit: %d", rc);
    r = healthcheck_env(e.env, NULL, NULL, NULL);
    CHECK(r.status == 1 && strstr(r.err, expected) != NULL,
          "after the gateway stopped: exit %d, stderr: %s (expected %s)", r.status, r.err, expected);
    run_free(&r);
    gwproc_free(gw);
}

/* No admin_listen: the admin API is on listen, and so is the URL. */
static void test_url_from_listen(void)
{
    struct gwproc *gw = NULL;
    int rc = gwproc_start("{\"listen\":\"127.0.0.1:${GW_PORT}\"}", NULL, &gw);
    CHECK(rc == 0, "the gateway did not start: %s", strerror(-rc));
    if (rc != 0)
        return;
    struct gw_env e;
    gw_env_init(&e, gw, 1);
    e.env[3] = "PATTERNGATE_CONFIG=";
    struct run r = healthcheck_env(e.env, "-c", gw->config_path, NULL);
    CHECK(r.status == 0, "-c FILE (listen): exit %d, stderr: %s", r.status, r.err);
    run_free(&r);
    gwproc_free(gw);
}

/* Writes text to a new temporary file; its path in path[size]. */
static bool write_temp(const char *text, char *path, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(path, size, "%s/pg-healthcheck-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return false;
    size_t n = strlen(text);
    bool ok = write(fd, text, n) == (ssize_t)n;
    close(fd);
    return ok;
}

/* The URL derived from a config, as the failure shows it: nothing listens
 * there (a free port), so no wildcard address is ever bound. */
static void expect_derived(const char *config_text, const char *expected_url)
{
    char path[PATH_MAX];
    CHECK(write_temp(config_text, path, sizeof path), "cannot write a config: %s", strerror(errno));
    struct run r = healthcheck("-c", path);
    char expected[256];
    snprintf(expected, sizeof expected, "patterngate healthcheck: %s: cannot connect", expected_url);
    CHECK(r.status == 1 && strstr(r.err, expected) != NULL, "%s: exit %d, stderr: %s (expected %s)",
          config_text, r.status, r.err, expected);
    run_free(&r);
    unlink(path);
}

static void test_wildcard_hosts(void)
{
    int port = testnet_free_port(), admin = testnet_free_port();
    char config_text[256], expected[128];
    snprintf(config_text, sizeof config_text, "{\"listen\": \"0.0.0.0:%d\"}", port);
    snprintf(expected, sizeof expected, "http://127.0.0.1:%d/healthz", port);
    expect_derived(config_text, expected);
    snprintf(config_text, sizeof config_text, "{\"listen\": \"[::]:%d\"}", port);
    snprintf(expected, sizeof expected, "http://[::1]:%d/healthz", port);
    expect_derived(config_text, expected);
    snprintf(config_text, sizeof config_text,
             "{\"listen\": \"0.0.0.0:%d\", \"admin_listen\": \"[0:0::0]:%d\"}", port, admin);
    snprintf(expected, sizeof expected, "http://[::1]:%d/healthz", admin);
    expect_derived(config_text, expected);
    /* other hosts stay as written */
    snprintf(config_text, sizeof config_text,
             "{\"listen\": \"0.0.0.0:%d\", \"admin_listen\": \"127.0.0.2:%d\"}", port, admin);
    snprintf(expected, sizeof expected, "http://127.0.0.2:%d/healthz", admin);
    expect_derived(config_text, expected);
}

/* No -c, no PATTERNGATE_CONFIG: the embedded default, listen
 * 127.0.0.1:8080 with the admin API on it. Whatever runs on 8080 on this
 * machine, a failure names that URL. */
static void test_url_of_embedded_default(void)
{
    struct run r = healthcheck(NULL, NULL);
    CHECK(r.status == 0 || strstr(r.err, "http://127.0.0.1:8080/healthz: ") != NULL,
          "the embedded default: exit %d, stderr: %s", r.status, r.err);
    run_free(&r);
}

/* A config that does not load: exit 2, its problems listed. */
static void test_bad_config(void)
{
    char path[PATH_MAX];
    CHECK(write_temp("{\n  \"listen\": \"127.0.0.1\",\n  \"workers\": 0\n}\n", path, sizeof path),
          "cannot write a config: %s", strerror(errno));
    struct run r = healthcheck("-c", path);
    char first[PATH_MAX + 128], second[PATH_MAX + 128];
    snprintf(first, sizeof first, "patterngate: %s:2:3: listen: expected \"host:port\"", path);
    snprintf(second, sizeof second, "patterngate: %s:3:3: workers: expected", path);
    CHECK(r.status == 2 && strstr(r.err, first) != NULL && strstr(r.err, second) != NULL,
          "a bad config: exit %d, stderr: %s", r.status, r.err);
    run_free(&r);
    unlink(path);
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
    test_url_from_config();
    test_url_from_listen();
    test_wildcard_hosts();
    test_url_of_embedded_default();
    test_bad_config();
    test_nothing_listening();
    test_no_answer();
    test_bad_urls();
    proc_kill_all();
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
