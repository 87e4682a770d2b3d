/* The browser harness (tests/browser/cors_probe.mjs through
 * tests/support/browser.h) against a tiny CORS-answering Node server
 * (tests/browser/cors_server.mjs) standing where the gateway will stand:
 * headless Chromium loads a page from one origin and fetch()es the server
 * on another, and what the page's script observed is what the CORS rules
 * say: an allowed origin reads the answer (exposed headers only), a custom
 * header costs a preflight (seen by the server), a header the preflight
 * does not allow, a wildcard answer to a request with credentials and an
 * origin the server does not allow are all blocked by the browser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/browser.h"
#include "support/http.h"
#include "support/proc.h"

/* A cors_server.mjs and its port. */
struct server {
  struct proc *proc;
  int port;
};

static struct browser browser;
static struct server exact;    /* the page's origin, credentials, x-custom, exposes x-exposed */
static struct server wildcard; /* "*", no credentials */
static struct server other;    /* allows another origin only */

static int start_server(struct server *s, const char *const *policy) {
  char script[PATH_MAX];
  snprintf(script, sizeof script, "%s/tests/browser/cors_server.mjs", PG_SOURCE_DIR);
  const char *node = getenv("PG_NODE");
  const char *argv[16] = {node && *node ? node : "node", script};
  size_t n = 2;
  for (; *policy && n + 1 < sizeof argv / sizeof argv[0]; policy++)
    argv[n++] = *policy;
  argv[n] = NULL;
  struct proc_options opts = {.stdin_mode = PROC_STDIO_PIPE, .stdout_mode = PROC_STDIO_PIPE};
  if (proc_spawn(argv, &opts, &s->proc) != 0)
    return -1;
  char line[64];
  if (proc_read_line(s->proc, line, sizeof line, 60000) < 0 || sscanf(line, "READY %d", &s->port) != 1) {
    char *err = proc_stderr_text(s->proc);
    fprintf(stderr, "cors_server.mjs did not start: %s\n", err ? err : "");
    free(err);
    return -1;
  }
  return 0;
}

static void stop_server(struct server *s) {
  if (s->proc == NULL)
    return;
  proc_close_stdin(s->proc);
  if (proc_wait(s->proc, 10000) < 0)
    proc_kill(s->proc);
  proc_free(s->proc);
  s->proc = NULL;
}

static int setup(void **state) {
  (void)state;
  if (browser_start(&browser) != 0)
    return -1;
  const char *const exact_policy[] = {"--allow-origin", browser.origin, "--allow-credentials",
                                      "--allow-headers", "x-custom,content-type",
                                      "--expose-headers", "x-exposed", NULL};
  const char *const wildcard_policy[] = {"--allow-origin", "*", "--expose-headers", "x-exposed", NULL};
  const char *const other_policy[] = {"--allow-origin", "https://elsewhere.example", NULL};
  if (start_server(&exact, exact_policy) != 0 || start_server(&wildcard, wildcard_policy) != 0 ||
      start_server(&other, other_policy) != 0)
    return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  browser_stop(&browser);
  stop_server(&exact);
  stop_server(&wildcard);
  stop_server(&other);
  return 0;
}

/* Fetches http://127.0.0.1:PORT/PATH from the page; extra: more members
 * of the request as JSON text ("" for none). */
static json_t *fetch(const struct server *s, const char *path, const char *extra) {
  char request[1024];
  snprintf(request, sizeof request, "{\"url\": \"http://127.0.0.1:%d%s\"%s%s}", s->port, path,
           extra[0] ? ", " : "", extra);
  json_t *reply = NULL;
  assert_int_equal(browser_fetch(&browser, request, &reply), 0);
  return reply;
}

static void assert_read(const json_t *reply, int status) {
  if (!json_is_true(json_object_get(reply, "ok"))) {
    char *text = json_dumps(reply, 0);
    fail_msg("the page could not read the answer: %s", text);
  }
  assert_int_equal(json_integer_value(json_object_get(reply, "status")), status);
}

/* Blocked by the browser: the script gets a TypeError and the console says
 * why, with `reason` in it. */
static void assert_blocked(const json_t *reply, const char *reason) {
  if (json_is_true(json_object_get(reply, "ok"))) {
    char *text = json_dumps(reply, 0);
    fail_msg("the page read an answer it should not: %s", text);
  }
  assert_string_equal(json_string_value(json_object_get(reply, "error")), "TypeError: Failed to fetch");
  const json_t *lines = json_object_get(reply, "console");
  size_t i;
  const json_t *line;
  json_array_foreach(lines, i, line) {
    const char *text = json_string_value(line);
    if (strstr(text, "blocked by CORS policy") && strstr(text, reason))
      return;
  }
  char *text = json_dumps(lines, 0);
  fail_msg("no console line says \"%s\": %s", reason, text);
}

static const char *readable_header(const json_t *reply, const char *name) {
  return json_string_value(json_object_get(json_object_get(reply, "headers"), name));
}

/* The requests the server saw, as "METHOD path acrh" lines. */
static char *seen(const struct server *s) {
  struct http_request req = {.method = "GET", .path = "/__seen"};
  struct http_response resp;
  assert_int_equal(http_fetch(s->port, &req, &resp, 10000), 0);
  json_t *list = json_loads(resp.body, 0, NULL);
  assert_non_null(list);
  char *text = malloc(8192);
  size_t n = 0;
  size_t i;
  json_t *r;
  text[0] = '\0';
  json_array_foreach(list, i, r) {
    const char *acrh = json_string_value(json_object_get(r, "acrh"));
    n += (size_t)snprintf(text + n, 8192 - n, "%s %s%s%s\n",
                          json_string_value(json_object_get(r, "method")),
                          json_string_value(json_object_get(r, "path")), acrh ? " " : "",
                          acrh ? acrh : "");
  }
  json_decref(list);
  http_response_free(&resp);
  return text;
}

/* ---- the tests ----------------------------------------------------------- */

static void test_allowed_origin_reads_exposed_headers_only(void **state) {
  (void)state;
  json_t *reply = fetch(&exact, "/simple", "");
  assert_read(reply, 200);
  json_t *body = json_loads(json_string_value(json_object_get(reply, "body")), 0, NULL);
  assert_non_null(body);
  assert_string_equal(json_string_value(json_object_get(json_object_get(body, "headers"), "origin")),
                      browser.origin);
  assert_string_equal(readable_header(reply, "x-exposed"), "e1");
  assert_null(readable_header(reply, "x-secret")); /* sent, but not exposed */
  assert_string_equal(readable_header(reply, "content-type"), "application/json");
  json_decref(body);
  json_decref(reply);
}

static void test_custom_header_costs_a_preflight(void **state) {
  (void)state;
  json_t *reply = fetch(&exact, "/custom",
                        "\"method\": \"POST\", \"headers\": {\"X-Custom\": \"1\", \"Content-Type\": "
                        "\"application/json\"}, \"body\": \"{}\"");
  assert_read(reply, 200);
  json_decref(reply);
  char *log = seen(&exact);
  if (!strstr(log, "OPTIONS /custom content-type,x-custom\nPOST /custom\n"))
    fail_msg("no preflight before the POST:\n%s", log);
  free(log);
}

static void test_header_not_allowed_is_blocked(void **state) {
  (void)state;
  json_t *reply = fetch(&exact, "/other-header", "\"headers\": {\"X-Other\": \"1\"}");
  assert_blocked(reply, "Response to preflight request doesn't pass access control check");
  json_decref(reply);
  char *log = seen(&exact);
  if (!strstr(log, "OPTIONS /other-header x-other\n") || strstr(log, "GET /other-header"))
    fail_msg("expected the preflight alone:\n%s", log);
  free(log);
}

static void test_credentials_with_the_origin_echoed(void **state) {
  (void)state;
  json_t *reply = fetch(&exact, "/credentials", "\"credentials\": \"include\"");
  assert_read(reply, 200);
  json_decref(reply);
}

static void test_wildcard_refuses_credentials(void **state) {
  (void)state;
  json_t *reply = fetch(&wildcard, "/any", "\"credentials\": \"omit\"");
  assert_read(reply, 200);
  assert_string_equal(readable_header(reply, "x-exposed"), "e1");
  json_decref(reply);
  reply = fetch(&wildcard, "/any-with-credentials", "\"credentials\": \"include\"");
  assert_blocked(reply, "wildcard '*'");
  json_decref(reply);
}

static void test_other_origin_is_blocked(void **state) {
  (void)state;
  json_t *reply = fetch(&other, "/elsewhere", "");
  assert_blocked(reply, "No 'Access-Control-Allow-Origin' header");
  json_decref(reply);
  /* the request itself reached the server: CORS protects the answer */
  char *log = seen(&other);
  assert_non_null(strstr(log, "GET /elsewhere\n"));
  free(log);
  reply = fetch(&other, "/elsewhere-preflight", "\"method\": \"PUT\"");
  assert_blocked(reply, "preflight");
  json_decref(reply);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_allowed_origin_reads_exposed_headers_only),
      cmocka_unit_test(test_custom_header_costs_a_preflight),
      cmocka_unit_test(test_header_not_allowed_is_blocked),
      cmocka_unit_test(test_credentials_with_the_origin_echoed),
      cmocka_unit_test(test_wildcard_refuses_credentials),
      cmocka_unit_test(test_other_origin_is_blocked),
  };
  return cmocka_run_group_tests_name("browser_harness", tests, setup, teardown);
}
