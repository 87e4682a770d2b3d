/* The admin API's /openapi.json and /docs on the built binary:
 *
 *   - /openapi.json is the document of the config the gateway runs (the
 *     same as `patterngate openapi -c` prints for that file), and follows
 *     reloads, by SIGHUP and by the file watch alone;
 *   - on a shared `listen` with auth, /openapi.json and /docs need the
 *     token (the probes do not); on `admin_listen` they are served without
 *     one, and are no paths of `listen`;
 *   - /docs in a real browser (headless Chromium, tests/browser/docs_page.mjs):
 *     Swagger UI's assets load from docs_assets (served locally from the
 *     pinned npm package swagger-ui-dist), the page reads /openapi.json
 *     relative to itself, and every route of the config appears on the
 *     rendered page. The page's screenshot is kept as a test artifact:
 *     BUILD_DIR/artifacts/docs.png.
 *
 * No service is needed: the services are lazy and point at a closed port.
 * Waiting is always a poll of a condition with a generous deadline. */
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
#include <sys/stat.h>

#include "support/browser.h"
#include "support/deadline.h"
#include "support/gateway.h"
#include "support/http.h"

#define REQ_TIMEOUT_MS 30000  /* one HTTP exchange, on a loaded machine */
#define POLL_TIMEOUT_MS 30000 /* waiting for a condition */
#define POLL_PAUSE_MS 50

static struct gwproc *g_gw;
static struct browser g_browser;

static int teardown(void **state)
{
    (void)state;
    gwproc_free(g_gw);
    g_gw = NULL;
    browser_stop(&g_browser);
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static struct gwproc *start(const char *config, bool on_admin)
{
    struct gwproc_options opts = {.ready_on_admin = on_admin};
    int rc = gwproc_start(config, &opts, &g_gw);
    if (rc != 0)
        fail_msg("the gateway did not start: %s", strerror(-rc));
    return g_gw;
}

/* GET path (with `header`, a "Name: value" line, or NULL) into *resp. */
static void get(int port, const char *path, const char *header, struct http_response *resp)
{
    const char *headers[] = {header, NULL};
    struct http_request req = {.method = "GET", .path = path, .headers = header ? headers : NULL};
    int rc = http_fetch(port, &req, resp, REQ_TIMEOUT_MS);
    if (rc != 0)
        fail_msg("GET %s: %s", path, strerror(-rc));
}

static void expect_status(const struct http_response *resp, int status, const char *what)
{
    if (resp->status != status) {
        gwproc_print_log(g_gw, what, 20);
        fail_msg("%s: status %d, expected %d; body %.300s", what, resp->status, status, resp->body);
    }
}

/* GET /openapi.json: the document (json_decref() it). */
static json_t *document(int port, const char *header)
{
    struct http_response resp = {0};
    get(port, "/openapi.json", header, &resp);
    expect_status(&resp, 200, "GET /openapi.json");
    const char *type = http_header(&resp, "Content-Type");
    if (type == NULL || strcmp(type, "application/json") != 0)
        fail_msg("GET /openapi.json: Content-Type %s", type ? type : "(none)");
    json_error_t error;
    json_t *doc = json_loadb(resp.body, resp.body_len, 0, &error);
    if (doc == NULL)
        fail_msg("GET /openapi.json: not JSON: %s", error.text);
    http_response_free(&resp);
    return doc;
}

static bool has_path(const json_t *doc, const char *path)
{
    return json_object_get(json_object_get(doc, "paths"), path) != NULL;
}

/* Polls /openapi.json until it has path `present` and not `absent`. */
static json_t *poll_document(int port, const char *present, const char *absent)
{
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    for (;;) {
        json_t *doc = document(port, NULL);
        if (has_path(doc, present) && (absent == NULL || !has_path(doc, absent)))
            return doc;
        json_decref(doc);
        if (deadline_remaining_ms(deadline) == 0) {
            gwproc_print_log(g_gw, "the document did not change", 30);
            fail_msg("/openapi.json never had %s%s%s", present, absent ? " without " : "", absent ? absent : "");
        }
        deadline_pause_ms(POLL_PAUSE_MS);
    }
}

/* A config with admin_listen, one lazy service and the routes given. */
#define ADMIN_CONFIG(routes)                                                                       \
    "{\"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\","     \
    " \"generic_api\": false,"                                                                     \
    " \"services\": {\"s\": {\"endpoints\": [\"127.0.0.1:1\"], \"connect\": \"lazy\"}},"           \
    " \"routes\": [" routes "]}"

/* `patterngate openapi -c FILE` for the gateway's own config file. */
static json_t *cli_document(struct gwproc *gw)
{
    char port[16], admin[16];
    snprintf(port, sizeof port, "%d", gw->port);
    snprintf(admin, sizeof admin, "%d", gw->admin_port);
    setenv("GW_PORT", port, 1);
    setenv("GW_ADMIN_PORT", admin, 1);
    struct gwcli_result r = gwcli_run(REQ_TIMEOUT_MS, "openapi", "-c", gw->config_path, NULL);
    if (r.status != 0)
        fail_msg("patterngate openapi -c %s: status %d: %s", gw->config_path, r.status, r.err ? r.err : "");
    json_t *doc = json_loads(r.out, 0, NULL);
    assert_non_null(doc);
    gwcli_result_free(&r);
    return doc;
}

/* ---- the live document ------------------------------------------------------ */

static void the_document_follows_reloads(void **state)
{
    (void)state;
    struct gwproc *gw = start(ADMIN_CONFIG("{\"method\": \"GET\", \"path\": \"/a/:id\", \"service\": \"s\","
                                           " \"pattern\": \"a\", \"data\": \"$path.id:int\"}"),
                              true);
    int admin = gw->admin_port;
    json_t *doc = document(admin, NULL);
    assert_true(has_path(doc, "/a/{id}"));
    json_t *cli = cli_document(gw);
    if (!json_equal(doc, cli))
        fail_msg("/openapi.json differs from `patterngate openapi -c` for the same file");
    json_decref(cli);
    json_decref(doc);

    /* SIGHUP */
    assert_int_equal(gwproc_rewrite_config(gw, ADMIN_CONFIG(
                         "{\"method\": \"POST\", \"path\": \"/b\", \"service\": \"s\", \"pattern\": \"b\","
                         " \"summary\": \"Bee\"}")),
                     0);
    assert_int_equal(gwproc_signal(gw, SIGHUP), 0);
    doc = poll_document(admin, "/b", "/a/{id}");
    json_t *summary = json_object_get(json_object_get(json_object_get(json_object_get(doc, "paths"), "/b"), "post"),
                                      "summary");
    assert_string_equal(json_string_value(summary), "Bee");
    cli = cli_document(gw);
    if (!json_equal(doc, cli))
        fail_msg("after the reload, /openapi.json differs from `patterngate openapi -c`");
    json_decref(cli);
    json_decref(doc);

    /* the file watch alone (no signal) */
    assert_int_equal(gwproc_rewrite_config(gw, ADMIN_CONFIG(
                         "{\"method\": \"*\", \"path\": \"/c/*rest\", \"service\": \"s\", \"pattern\": \"c\"}")),
                     0);
    doc = poll_document(admin, "/c/{rest}", "/b");
    assert_int_equal(json_object_size(json_object_get(json_object_get(doc, "paths"), "/c/{rest}")), 5);
    json_decref(doc);

    /* a broken file keeps the running config, and its document */
    assert_int_equal(gwproc_rewrite_config(gw, "{\"routes\": 1}"), 0);
    assert_int_equal(gwproc_signal(gw, SIGHUP), 0);
    assert_int_equal(gwproc_wait_log(gw, "config reload failed", 1, POLL_TIMEOUT_MS), 0);
    doc = document(admin, NULL);
    assert_true(has_path(doc, "/c/{rest}"));
    json_decref(doc);
}

/* ---- where the admin paths are, and who may read them ----------------------- */

#define SHARED_CONFIG                                                                              \
    "{\"listen\": \"127.0.0.1:${GW_PORT}\", \"auth\": {\"bearer_tokens\": [\"s3cret\"]},"          \
    " \"generic_api\": false,"                                                                     \
    " \"services\": {\"s\": {\"endpoints\": [\"127.0.0.1:1\"], \"connect\": \"lazy\"}},"           \
    " \"routes\": [{\"method\": \"GET\", \"path\": \"/x\", \"service\": \"s\", \"pattern\": \"x\"}]}"

static void a_shared_listen_with_auth_needs_the_token(void **state)
{
    (void)state;
    const char *const ready_headers[] = {"Authorization: Bearer s3cret", NULL};
    struct gwproc_options opts = {.ready_headers = ready_headers};
    int rc = gwproc_start(SHARED_CONFIG, &opts, &g_gw);
    if (rc != 0)
        fail_msg("the gateway did not start: %s", strerror(-rc));
    int port = g_gw->port;
    struct http_response resp = {0};
    static const char *const paths[] = {"/openapi.json", "/docs"};
    for (size_t i = 0; i < 2; i++) {
        get(port, paths[i], NULL, &resp);
        expect_status(&resp, 401, paths[i]);
        assert_non_null(strstr(resp.body, "\"error\":\"unauthorized\""));
        assert_non_null(http_header(&resp, "WWW-Authenticate"));
        http_response_free(&resp);
        get(port, paths[i], "Authorization: Bearer wrong", &resp);
        expect_status(&resp, 401, paths[i]);
        http_response_free(&resp);
    }
    get(port, "/healthz", NULL, &resp); /* the probes stay open */
    expect_status(&resp, 200, "/healthz without a token");
    http_response_free(&resp);

    json_t *doc = document(port, "Authorization: Bearer s3cret");
    assert_true(has_path(doc, "/x"));
    assert_non_null(json_object_get(json_array_get(json_object_get(doc, "security"), 0), "bearerAuth"));
    json_decref(doc);
    get(port, "/docs", "Authorization: bearer s3cret", &resp);
    expect_status(&resp, 200, "GET /docs with the token");
    assert_string_equal(http_header(&resp, "Content-Type"), "text/html; charset=utf-8");
    assert_non_null(strstr(resp.body, "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"));
    http_response_free(&resp);

    struct http_request post = {.method = "POST", .path = "/openapi.json",
                                .headers = (const char *const[]){"Authorization: Bearer s3cret", NULL}};
    assert_int_equal(http_fetch(port, &post, &resp, REQ_TIMEOUT_MS), 0);
    expect_status(&resp, 405, "POST /openapi.json");
    http_response_free(&resp);
}

static void on_admin_listen_they_are_open_and_not_on_listen(void **state)
{
    (void)state;
    struct gwproc *gw = start(
        "{\"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\","
        " \"docs_assets\": \"/assets\", \"generic_api\": true,"
        " \"services\": {\"s\": {\"endpoints\": [\"127.0.0.1:1\"], \"connect\": \"lazy\"}}}",
        true);
    json_t *doc = document(gw->admin_port, NULL);
    assert_true(has_path(doc, "/v1/send/{service}"));
    json_decref(doc);
    struct http_response resp = {0};
    get(gw->admin_port, "/docs", NULL, &resp);
    expect_status(&resp, 200, "GET /docs on admin_listen");
    assert_non_null(strstr(resp.body, "href=\"/assets/swagger-ui.css\""));
    http_response_free(&resp);
    get(gw->port, "/openapi.json", NULL, &resp);
    expect_status(&resp, 404, "GET /openapi.json on listen");
    http_response_free(&resp);
}

/* ---- /docs in a browser ---------------------------------------------------- */

/* "/orders/{id}" and "/orders/:orderId" as "/orders/{}". */
static void shape_of(const char *path, char *out, size_t size)
{
    size_t n = 0;
    bool capture = false;
    for (const char *p = path; *p && n + 3 < size; p++) {
        if (*p == '/') {
            capture = false;
            if (p[1] == '\0' && n > 0)
                break; /* a trailing / */
            out[n++] = '/';
            if (p[1] == ':' || p[1] == '*' || p[1] == '{') {
                out[n++] = '{';
                out[n++] = '}';
                capture = true;
            }
        } else if (!capture) {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

/* Every "METHOD shape" the config's routes (and generic API) serve. */
static json_t *expected_operations(const json_t *config)
{
    static const char *const all[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    json_t *expected = json_object();
    size_t i;
    json_t *route;
    json_array_foreach (json_object_get(config, "routes"), i, route) {
        const char *method = json_string_value(json_object_get(route, "method"));
        char shape[512], key[600];
        shape_of(json_string_value(json_object_get(route, "path")), shape, sizeof shape);
        for (size_t m = 0; m < 5; m++) {
            if (strcmp(method, "*") != 0 && strcmp(method, all[m]) != 0)
                continue;
            snprintf(key, sizeof key, "%s %s", all[m], shape);
            json_object_set_new(expected, key, json_true());
        }
    }
    if (json_array_size(json_object_get(config, "generic_api")) > 0) {
        json_object_set_new(expected, "POST /v1/send/{}", json_true());
        json_object_set_new(expected, "POST /v1/emit/{}", json_true());
    }
    return expected;
}

/* tests/openapi/features.json (every route form), served here. */
static json_t *features_config(const char *assets)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/openapi/features.json", PG_SOURCE_DIR);
    json_t *config = json_load_file(path, 0, NULL);
    assert_non_null(config);
    json_object_set_new(config, "listen", json_string("127.0.0.1:${GW_PORT}"));
    json_object_set_new(config, "admin_listen", json_string("127.0.0.1:${GW_ADMIN_PORT}"));
    json_object_set_new(config, "docs_assets", json_string(assets));
    json_object_del(config, "$schema");
    const char *name;
    json_t *service;
    json_object_foreach (json_object_get(config, "services"), name, service) {
        json_object_set_new(service, "endpoints", json_pack("[s]", "127.0.0.1:1"));
        json_object_set_new(service, "connect", json_string("lazy"));
    }
    return config;
}

static void artifact_path(char *out, size_t size)
{
    snprintf(out, size, "%s", PG_ARTIFACTS_DIR);
    mkdir(out, 0755);
    snprintf(out, size, "%s/docs.png", PG_ARTIFACTS_DIR);
    remove(out);
}

static void check_screenshot(const char *path)
{
    unsigned char head[8] = {0};
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("no screenshot at %s", path);
    size_t n = fread(head, 1, sizeof head, f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    if (n != 8 || memcmp(head, "\x89PNG\r\n\x1a\n", 8) != 0 || size < 10000)
        fail_msg("%s is no PNG of a rendered page (%ld bytes)", path, size);
}

static void the_docs_page_shows_every_route(void **state)
{
    (void)state;
    int rc = browser_start_docs(&g_browser);
    if (rc != 0)
        fail_msg("the browser did not start: %s", strerror(-rc));
    json_t *config = features_config(g_browser.assets);
    char *text = json_dumps(config, 0);
    struct gwproc *gw = start(text, true);
    free(text);

    char url[128], screenshot[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/docs", gw->admin_port);
    artifact_path(screenshot, sizeof screenshot);
    json_t *page = NULL;
    assert_int_equal(browser_docs_page(&g_browser, url, screenshot, &page), 0);
    char *shown = json_dumps(page, JSON_COMPACT);
    if (!json_is_true(json_object_get(page, "ok")) || json_array_size(json_object_get(page, "errors")) > 0)
        fail_msg("the page did not render: %s", shown);
    assert_string_equal(json_string_value(json_object_get(page, "title")), "patterngate API");
    /* the document, read relative to the page */
    char spec_url[128];
    snprintf(spec_url, sizeof spec_url, "http://127.0.0.1:%d/openapi.json", gw->admin_port);
    json_t *spec = json_object_get(page, "spec");
    const char *read_url = json_string_value(json_object_get(spec, "url"));
    if (json_integer_value(json_object_get(spec, "status")) != 200 || read_url == NULL ||
        strcmp(read_url, spec_url) != 0)
        fail_msg("the page did not read %s: %s", spec_url, shown);
    /* Swagger UI's assets, from docs_assets */
    const char *wanted[] = {"/swagger-ui.css", "/swagger-ui-bundle.js"};
    for (size_t i = 0; i < 2; i++) {
        bool found = false;
        size_t k;
        json_t *asset;
        json_array_foreach (json_object_get(page, "assets"), k, asset)
            found |= strcmp(json_string_value(asset), wanted[i]) == 0;
        if (!found)
            fail_msg("the page did not load %s from docs_assets: %s", wanted[i], shown);
    }
    /* every route, and nothing else */
    json_t *expected = expected_operations(config);
    json_t *seen = json_object();
    size_t i;
    json_t *op;
    json_array_foreach (json_object_get(page, "operations"), i, op) {
        char shape[512], key[600];
        shape_of(json_string_value(json_object_get(op, "path")), shape, sizeof shape);
        snprintf(key, sizeof key, "%s %s", json_string_value(json_object_get(op, "method")), shape);
        if (json_object_get(expected, key) == NULL)
            fail_msg("the page shows %s, which is no route: %s", key, shown);
        json_object_set_new(seen, key, json_true());
    }
    const char *key;
    json_t *value;
    json_object_foreach (expected, key, value)
        if (json_object_get(seen, key) == NULL)
            fail_msg("the page does not show %s: %s", key, shown);
    assert_int_equal(json_array_size(json_object_get(page, "operations")), json_object_size(expected));
    assert_true(json_object_size(expected) >= 15);
    check_screenshot(screenshot);
    print_message("docs page: %zu operations rendered; screenshot %s\n", json_object_size(expected), screenshot);
    free(shown);
    json_decref(seen);
    json_decref(expected);
    json_decref(page);
    json_decref(config);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(the_document_follows_reloads, teardown),
        cmocka_unit_test_teardown(a_shared_listen_with_auth_needs_the_token, teardown),
        cmocka_unit_test_teardown(on_admin_listen_they_are_open_and_not_on_listen, teardown),
        cmocka_unit_test_teardown(the_docs_page_shows_every_route, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
