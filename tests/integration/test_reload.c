/* Config reloads of the built binary: by SIGHUP, by a new file rename(2)d
 * over the config, by a Kubernetes ConfigMap update (a symlink swap);
 * unchanged services keep their connections; broken files leave the old
 * config running, are counted, logged and shown in /status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "support/deadline.h"
#include "support/gateway.h"
#include "support/gwfixture.h"
#include "support/gwtest.h"
#include "support/http.h"
#include "support/nest.h"
#include "support/net.h"
#include "support/proc.h"

/* ---- fixtures ------------------------------------------------------------ */

static void cm_remove(void);

static int test_teardown(void **state)
{
    cm_remove();
    return gwf_test_teardown(state);
}

/* ---- 7-9. reload ------------------------------------------------------------------- */

static const char RELOAD_A[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/a\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"sum\" } } ] }\n";

static const char RELOAD_AB[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/a\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"sum\" } },\n"
    "                { \"method\": \"POST\", \"path\": \"/b\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"echo\" } } ] }\n";

static const char RELOAD_B[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/b\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"echo\" } } ] }\n";

/* Not JSON: the object is never closed (the error is at line 3). */
static const char RELOAD_BAD_JSON[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/b\", \"service\": \"nest\", \"pattern\": \"x\" } \n";

/* Valid JSON, invalid config: an unknown key in routes[1]. */
static const char RELOAD_BAD_SCHEMA[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"services\": { \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"] } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/a\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"sum\" } },\n"
    "                { \"method\": \"POST\", \"path\": \"/b\", \"service\": \"nest\",\n"
    "                  \"pattern\": { \"cmd\": \"echo\" }, \"bogus\": 1 } ] }\n";

#define RELOADS_OK "{\"result\":\"ok\"}"
#define RELOADS_FAILED "{\"result\":\"failed\"}"
#define CONNECTS_OK "{\"service\":\"nest\",\"result\":\"ok\"}"

static void rewrite(struct gwproc *gw, const char *config)
{
    int rc = gwproc_rewrite_config(gw, config);
    if (rc != 0)
        fail_msg("cannot replace the config file %s: %s", gw->config_path, strerror(-rc));
}

/* The nest connection's connected_since and reconnects (a copy of the
 * first, caller frees). */
static char *nest_conn_identity(int admin, long long *reconnects)
{
    json_t *st = gwt_status(admin, NULL);
    json_t *c = gwt_status_conn(st, "nest");
    const char *state_s = gwt_str(c, "state"), *since = gwt_str(c, "connected_since");
    json_t *rec = json_object_get(c, "reconnects");
    if (!state_s || strcmp(state_s, "connected") != 0 || !since || !json_is_integer(rec))
        gwt_fail_json(st, "the nest connection is not connected with connected_since and reconnects");
    char *copy = strdup(since);
    *reconnects = json_integer_value(rec);
    json_decref(st);
    return copy;
}

static void expect_log_msg(const char *msg, const char *level)
{
    json_t *lines = gwt_log_lines(gwf.gw, false);
    json_t *found = gwt_log_find(lines, msg, level);
    size_t n = json_array_size(found);
    json_decref(found);
    json_decref(lines);
    if (n == 0) {
        gwt_print_log_tail();
        fail_msg("no log line {\"level\":\"%s\",\"msg\":\"%s\"}", level, msg);
    }
}

static void reload_by_sighup_adds_a_route(void **state)
{
    (void)state;
    struct gwproc *gw = gwf_start(RELOAD_A, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    gwt_poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", GWT_POLL_TIMEOUT_MS);
    gwt_check_json(port, "POST", "/a", "[1,2]", 200, "3");
    gwt_check_error(port, "POST", "/b", "\"x\"", 404, "not_found");
    long long rec_before;
    char *since_before = nest_conn_identity(admin, &rec_before);
    gwt_scrape_t s = gwt_scrape(admin, NULL);
    double connects_before = gwt_metric(&s, "patterngate_upstream_connects_total", CONNECTS_OK);
    double ok_before = gwt_metric_or(&s, "patterngate_config_reloads_total", RELOADS_OK, 0);
    gwt_scrape_free(&s);

    rewrite(gw, RELOAD_AB);
    assert_int_equal(gwproc_signal(gw, SIGHUP), 0);
    gwt_poll_json(port, "POST", "/b", "\"x\"", 200, "\"x\"", GWT_POLL_TIMEOUT_MS);
    gwt_check_json(port, "POST", "/a", "[1,2]", 200, "3");
    expect_log_msg("config reloaded", "info");
    /* the unchanged service kept its connection */
    long long rec_after;
    char *since_after = nest_conn_identity(admin, &rec_after);
    if (strcmp(since_before, since_after) != 0 || rec_before != rec_after) {
        gwt_print_log_tail();
        fail_msg("the nest connection changed over the reload: connected_since %s -> %s, "
                 "reconnects %lld -> %lld", since_before, since_after, rec_before, rec_after);
    }
    free(since_after);
    s = gwt_scrape(admin, NULL);
    if (gwt_metric(&s, "patterngate_upstream_connects_total", CONNECTS_OK) != connects_before)
        gwt_fail_scrape(&s, "upstream_connects_total{service=\"nest\",result=\"ok\"} grew over the reload "
                        "(was %g): the connection was reopened", connects_before);
    double ok_after = gwt_metric(&s, "patterngate_config_reloads_total", RELOADS_OK);
    if (ok_after < ok_before + 1)
        gwt_fail_scrape(&s, "config_reloads_total{result=\"ok\"} did not grow (%g -> %g)", ok_before, ok_after);
    gwt_expect_metric(&s, "patterngate_config_last_reload_successful", "{}", 1);
    gwt_expect_metric(&s, "patterngate_config_reloads_total", RELOADS_FAILED, 0);
    gwt_scrape_free(&s);

    /* SIGHUP alone, the file unchanged, reloads it again */
    assert_int_equal(gwproc_signal(gw, SIGHUP), 0);
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    for (;;) {
        s = gwt_scrape(admin, NULL);
        double now_ok = gwt_metric_or(&s, "patterngate_config_reloads_total", RELOADS_OK, 0);
        if (now_ok >= ok_after + 1) {
            gwt_scrape_free(&s);
            break;
        }
        if (deadline_remaining_ms(deadline) == 0)
            gwt_fail_scrape(&s, "a SIGHUP with the file unchanged did not reload it: "
                            "config_reloads_total{result=\"ok\"} stayed %g", now_ok);
        gwt_scrape_free(&s);
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
    }
    gwt_check_json(port, "POST", "/b", "\"y\"", 200, "\"y\"");
    since_after = nest_conn_identity(admin, &rec_after);
    if (strcmp(since_before, since_after) != 0 || rec_before != rec_after)
        fail_msg("the nest connection changed over the second reload");
    free(since_after);
    free(since_before);
    gwf_stop();
}

static void reload_by_rename_alone(void **state)
{
    (void)state;
    struct gwproc *gw = gwf_start(RELOAD_A, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    gwt_poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", GWT_POLL_TIMEOUT_MS);
    gwt_check_json(port, "POST", "/a", "[1,2]", 200, "3");
    gwt_check_error(port, "POST", "/b", "\"x\"", 404, "not_found");
    long long rec_before;
    char *since_before = nest_conn_identity(admin, &rec_before);
    /* no signal: the watched file changed */
    rewrite(gw, RELOAD_AB);
    gwt_poll_json(port, "POST", "/b", "\"x\"", 200, "\"x\"", GWT_POLL_TIMEOUT_MS);
    gwt_check_json(port, "POST", "/a", "[1,2]", 200, "3");
    expect_log_msg("config reloaded", "info");
    /* the watch survives the file being replaced: a second new file applies too */
    rewrite(gw, RELOAD_B);
    gwt_poll_error(port, "POST", "/a", "[1,2]", 404, "not_found", GWT_POLL_TIMEOUT_MS);
    gwt_check_json(port, "POST", "/b", "\"z\"", 200, "\"z\"");
    long long rec_after;
    char *since_after = nest_conn_identity(admin, &rec_after);
    if (strcmp(since_before, since_after) != 0 || rec_before != rec_after)
        fail_msg("the nest connection changed over the reloads: connected_since %s -> %s, "
                 "reconnects %lld -> %lld", since_before, since_after, rec_before, rec_after);
    free(since_before);
    free(since_after);
    gwt_scrape_t s = gwt_scrape(admin, NULL);
    if (gwt_metric(&s, "patterngate_config_reloads_total", RELOADS_OK) < 2)
        gwt_fail_scrape(&s, "config_reloads_total{result=\"ok\"} is below 2 after two new files");
    gwt_scrape_free(&s);
    gwf_stop();
}

/* ---- 8b. a Kubernetes ConfigMap update ---------------------------------------------- */

/* The folder of the ConfigMap-like layout of the running test ("" when none). */
static char g_cm_dir[PATH_MAX];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        fail_msg("cannot write %s: %s", path, strerror(errno));
}

static void cm_remove(void)
{
    if (!g_cm_dir[0])
        return;
    static const char *const names[] = { "config.json", "..data", "..data_tmp", NULL };
    char path[PATH_MAX + 64];
    for (size_t i = 0; names[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", g_cm_dir, names[i]);
        unlink(path);
    }
    for (int v = 1; v <= 2; v++) {
        snprintf(path, sizeof path, "%s/..v%d/config.json", g_cm_dir, v);
        unlink(path);
        snprintf(path, sizeof path, "%s/..v%d", g_cm_dir, v);
        rmdir(path);
    }
    rmdir(g_cm_dir);
    g_cm_dir[0] = '\0';
}

/* Writes version v of the ConfigMap: ..vN/config.json, then points ..data
 * at it by renaming a new symlink over it, and removes the previous
 * version, as the kubelet's atomic writer does. config.json itself (a
 * symlink to ..data/config.json) never changes. */
static void cm_publish(int v, const char *config)
{
    char path[PATH_MAX + 64], target[32], tmp[PATH_MAX + 64], data[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/..v%d", g_cm_dir, v);
    if (mkdir(path, 0700) != 0)
        fail_msg("mkdir %s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/..v%d/config.json", g_cm_dir, v);
    write_file(path, config);
    snprintf(target, sizeof target, "..v%d", v);
    snprintf(tmp, sizeof tmp, "%s/..data_tmp", g_cm_dir);
    snprintf(data, sizeof data, "%s/..data", g_cm_dir);
    if (symlink(target, tmp) != 0 || rename(tmp, data) != 0)
        fail_msg("cannot point %s at %s: %s", data, target, strerror(errno));
    if (v > 1) {
        snprintf(path, sizeof path, "%s/..v%d/config.json", g_cm_dir, v - 1);
        unlink(path);
        snprintf(path, sizeof path, "%s/..v%d", g_cm_dir, v - 1);
        rmdir(path);
    }
}

static void reload_by_configmap_update(void **state)
{
    (void)state;
    const char *tmpdir = getenv("TMPDIR");
    snprintf(g_cm_dir, sizeof g_cm_dir, "%s/pg-admin-cm-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(g_cm_dir)) {
        g_cm_dir[0] = '\0';
        fail_msg("mkdtemp: %s", strerror(errno));
    }
    cm_publish(1, RELOAD_A);
    char file[PATH_MAX + 64];
    snprintf(file, sizeof file, "%s/config.json", g_cm_dir);
    if (symlink("..data/config.json", file) != 0)
        fail_msg("symlink %s: %s", file, strerror(errno));
    /* the last -c wins: the gateway runs on the ConfigMap's file */
    const char *args[] = { "-c", file, NULL };
    char nest_env[64];
    snprintf(nest_env, sizeof nest_env, "NEST_ADDR=%s", gwf.nest_addr);
    const char *env[] = { nest_env, NULL };
    struct gwproc_options o = { .env = env, .ready_on_admin = true, .args = args };
    int rc = gwproc_start(RELOAD_B, &o, &gwf.gw);
    if (rc != 0) {
        gwf.gw = NULL;
        fail_msg("the gateway did not start: %s", strerror(-rc));
    }
    int port = gwproc_port(gwf.gw), admin = gwf.gw->admin_port;
    gwt_poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", GWT_POLL_TIMEOUT_MS);
    json_t *st = gwt_status(admin, NULL);
    const char *cfg = gwt_str(json_object_get(st, "config"), "file");
    if (!cfg || strcmp(cfg, file) != 0)
        gwt_fail_json(st, "/status config is not %s (the gateway must run on the ConfigMap's file)", file);
    json_decref(st);
    gwt_check_json(port, "POST", "/a", "[1,2]", 200, "3");
    gwt_check_error(port, "POST", "/b", "\"x\"", 404, "not_found");
    /* the update: config.json is untouched, ..data now names a new folder */
    cm_publish(2, RELOAD_AB);
    gwt_poll_json(port, "POST", "/b", "\"x\"", 200, "\"x\"", GWT_POLL_TIMEOUT_MS);
    gwt_check_json(port, "POST", "/a", "[1,2]", 200, "3");
    gwf_stop();
    cm_remove();
}

/* The last log line whose msg starts with "config reload failed" (a new
 * reference), or NULL. */
static json_t *last_reload_failure(void)
{
    json_t *lines = gwt_log_lines(gwf.gw, false), *line = NULL, *l;
    size_t i;
    json_array_foreach(lines, i, l) {
        const char *m = gwt_str(l, "msg");
        if (m && strncmp(m, "config reload failed", 20) == 0)
            line = l;
    }
    json_incref(line);
    json_decref(lines);
    return line;
}

/* Replaces the file with a broken one and sends SIGHUP, then waits for the
 * failure to be counted and logged with an error containing `error_part`
 * (followed by ":LINE:COLUMN" when with_line_col). */
static void reload_broken(struct gwproc *gw, const char *config, const char *error_part,
                          bool with_line_col)
{
    int admin = gw->admin_port;
    gwt_scrape_t s = gwt_scrape(admin, NULL);
    double failed_before = gwt_metric_or(&s, "patterngate_config_reloads_total", RELOADS_FAILED, 0);
    gwt_scrape_free(&s);
    rewrite(gw, config);
    assert_int_equal(gwproc_signal(gw, SIGHUP), 0);
    /* polled together: a late reload of the previous file may be counted first */
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    json_t *line;
    for (;;) {
        s = gwt_scrape(admin, NULL);
        double failed = gwt_metric_or(&s, "patterngate_config_reloads_total", RELOADS_FAILED, 0);
        line = last_reload_failure();
        const char *err = gwt_str(line, "error");
        if (failed > failed_before && err && strstr(err, error_part))
            break;
        if (deadline_remaining_ms(deadline) == 0) {
            gwt_print_log_tail();
            gwt_fail_scrape(&s, "after a broken file and SIGHUP: config_reloads_total{result=\"failed\"} "
                            "went from %g to %g; the last \"config reload failed\" log line's error: %s "
                            "(expected to name %s)", failed_before, failed, err ? err : "(none)", error_part);
        }
        json_decref(line);
        gwt_scrape_free(&s);
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
    }
    gwt_expect_metric(&s, "patterngate_config_last_reload_successful", "{}", 0);
    gwt_scrape_free(&s);
    if (strcmp(gwt_str(line, "msg"), "config reload failed") != 0 ||
        !gwt_str(line, "level") || strcmp(gwt_str(line, "level"), "error") != 0)
        gwt_fail_json(line, "the log line about the failed reload is not {\"level\":\"error\","
                        "\"msg\":\"config reload failed\",\"error\":...} (msg exactly)");
    if (with_line_col) {
        const char *err = gwt_str(line, "error");
        const char *at = strstr(err, error_part) + strlen(error_part);
        int line_no, col;
        if (sscanf(at, ":%d:%d", &line_no, &col) != 2 || line_no < 1 || col < 1)
            gwt_fail_json(line, "the error does not name FILE:LINE:COLUMN");
    }
    json_decref(line);
}

static void reload_broken_file_keeps_config(void **state)
{
    (void)state;
    struct gwproc *gw = gwf_start(RELOAD_A, NULL, true, NULL);
    int port = gwproc_port(gw), admin = gw->admin_port;
    gwt_poll_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}", GWT_POLL_TIMEOUT_MS);
    gwt_check_json(port, "POST", "/a", "[1,2]", 200, "3");
    long long rec_before;
    char *since_before = nest_conn_identity(admin, &rec_before);

    reload_broken(gw, RELOAD_BAD_JSON, gw->config_path, true);
    gwt_check_json(port, "POST", "/a", "[1,2]", 200, "3");
    gwt_check_error(port, "POST", "/b", "\"x\"", 404, "not_found");
    gwt_check_json(admin, "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}");

    reload_broken(gw, RELOAD_BAD_SCHEMA, "routes[1]", false);
    gwt_check_json(port, "POST", "/a", "[1,2]", 200, "3");
    gwt_check_error(port, "POST", "/b", "\"x\"", 404, "not_found");
    /* /status says what went wrong, and when */
    json_t *st = gwt_status(admin, NULL), *cs = json_object_get(st, "config");
    const char *err = gwt_str(cs, "last_reload_error"), *err_at = gwt_str(cs, "last_reload_error_at");
    const char *loaded_at = gwt_str(cs, "loaded_at");
    if (!err || !strstr(err, "routes[1]") || !strstr(err, "bogus") || !err_at || !loaded_at ||
        strcmp(err_at, loaded_at) < 0)
        gwt_fail_json(st, "/status config: last_reload_error should name routes[1].bogus, at a time after loaded_at");
    json_decref(st);

    /* a good file again */
    double wall_before = (double)time(NULL);
    rewrite(gw, RELOAD_AB);
    assert_int_equal(gwproc_signal(gw, SIGHUP), 0);
    gwt_poll_json(port, "POST", "/b", "\"x\"", 200, "\"x\"", GWT_POLL_TIMEOUT_MS);
    gwt_check_json(port, "POST", "/a", "[1,2]", 200, "3");
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    gwt_scrape_t s;
    for (;;) {
        s = gwt_scrape(admin, NULL);
        if (gwt_metric(&s, "patterngate_config_last_reload_successful", "{}") == 1)
            break;
        if (deadline_remaining_ms(deadline) == 0)
            gwt_fail_scrape(&s, "config_last_reload_successful did not return to 1 after a good file");
        gwt_scrape_free(&s);
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
    }
    if (gwt_metric(&s, "patterngate_config_reloads_total", RELOADS_OK) < 1 ||
        gwt_metric(&s, "patterngate_config_reloads_total", RELOADS_FAILED) < 2)
        gwt_fail_scrape(&s, "expected reloads_total ok >= 1 and failed >= 2");
    double at = gwt_metric(&s, "patterngate_config_last_reload_success_timestamp_seconds", "{}");
    if (at < wall_before - 1 || at > (double)time(NULL) + 1)
        gwt_fail_scrape(&s, "config_last_reload_success_timestamp_seconds %.17g is not the time of the "
                        "good reload (>= %.0f)", at, wall_before);
    gwt_scrape_free(&s);
    long long rec_after;
    char *since_after = nest_conn_identity(admin, &rec_after);
    if (strcmp(since_before, since_after) != 0 || rec_before != rec_after)
        fail_msg("the nest connection changed over the reloads: connected_since %s -> %s, "
                 "reconnects %lld -> %lld", since_before, since_after, rec_before, rec_after);
    free(since_before);
    free(since_after);
    gwf_stop();
}

/* ---- main ---------------------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_teardown(fn, test_teardown)

int main(void)
{
    const char *filter = getenv("PG_TEST_FILTER"); /* e.g. "reload_*", for debugging */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        T(reload_by_sighup_adds_a_route),
        T(reload_by_rename_alone),
        T(reload_by_configmap_update),
        T(reload_broken_file_keeps_config),
    };
    return cmocka_run_group_tests_name("reload_nest12", tests, gwf_group_setup, gwf_group_teardown);
}
