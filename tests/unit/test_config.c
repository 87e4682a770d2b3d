/* Unit tests of config/config.c (the loader) through its public API.
 * JSON in these tests is written with single quotes, turned into double
 * quotes before loading, to keep it readable. */
#include "config/config.h"
#include "config/config_reader.h" /* the loader's enum name lists */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------- */

/* The environment seen by the loader: NAME, VALUE pairs, NULL-terminated. */
static const char *fake_getenv(void *context, const char *name)
{
    for (const char *const *pair = context; *pair != NULL; pair += 2)
        if (strcmp(pair[0], name) == 0)
            return pair[1];
    return NULL;
}

static const char *const no_env[] = {NULL};

static char *double_quoted(const char *text)
{
    char *copy = strdup(text);
    assert_non_null(copy);
    for (char *p = copy; *p; p++)
        if (*p == '\'')
            *p = '"';
    return copy;
}

static int load_with_env(const char *json, const char *const *env, config **out,
                         config_error *error)
{
    char *text = double_quoted(json);
    config_load_options options = {.getenv_fn = fake_getenv, .getenv_context = (void *)env};
    int rc = config_load_string(text, strlen(text), &options, out, error);
    free(text);
    return rc;
}

static config *must_load_with_env(const char *json, const char *const *env)
{
    config *cfg = NULL;
    config_error error;
    int rc = load_with_env(json, env, &cfg, &error);
    if (rc != 0)
        fail_msg("unexpected error: %s", error.message);
    assert_non_null(cfg);
    assert_int_equal(error.kind, CONFIG_ERROR_NONE);
    return cfg;
}

static config *must_load(const char *json)
{
    return must_load_with_env(json, no_env);
}

static void assert_error_with_env(const char *json, const char *const *env,
                                  config_error_kind kind, const char *expected)
{
    config *cfg = (config *)1;
    config_error error;
    assert_int_equal(load_with_env(json, env, &cfg, &error), -1);
    assert_null(cfg);
    assert_string_equal(error.message, expected);
    assert_int_equal(error.kind, kind);
    if (error.count != 1)
        fail_msg("%zu problems, expected 1 (the second: %s: %s)", error.count,
                 error.problems[1].path, error.problems[1].reason);
}

static void assert_error(const char *json, const char *expected)
{
    assert_error_with_env(json, no_env, CONFIG_ERROR_SCHEMA, expected);
}

/* A config with the services math and users, then `routes` (JSON text). */
#define WITH_ROUTES(routes)                                                              \
    "{'admin_listen': '127.0.0.1:9901',"                                                 \
    " 'services': {'math': {'endpoints': ['127.0.0.1:3001']},"                           \
    "              'users': {'endpoints': ['127.0.0.1:3002'], 'timeout_ms': 1234}},"     \
    " 'routes': [" routes "]}"

/* ---- defaults ------------------------------------------------------------ */

static void test_defaults_of_top_level_keys(void **state)
{
    (void)state;
    config *cfg = must_load("{}");
    assert_string_equal(cfg->listen.host, "127.0.0.1");
    assert_int_equal(cfg->listen.port, 8080);
    assert_int_equal(cfg->listen.kind, HOSTPORT_IPV4);
    assert_false(cfg->has_admin_listen);
    assert_int_equal(cfg->workers, 1);
    assert_int_equal(cfg->shutdown_grace_ms, 10000);
    assert_null(cfg->bearer_tokens);
    assert_int_equal(cfg->bearer_token_count, 0);
    assert_int_equal(cfg->log_level, CONFIG_LOG_INFO);
    assert_false(cfg->log_access);
    assert_false(cfg->log_access_admin);
    assert_int_equal(cfg->log_debug_bytes, 512);
    assert_int_equal(cfg->limits.max_body_bytes, 1048576);
    assert_int_equal(cfg->limits.max_connections, 4096);
    assert_int_equal(cfg->limits.max_inflight, 10000);
    assert_int_equal(cfg->limits.idle_timeout_ms, 60000);
    assert_int_equal(cfg->service_count, 0);
    assert_int_equal(cfg->route_count, 0);
    assert_null(cfg->file);
    config_free(cfg);
}

static void test_defaults_of_service_keys(void **state)
{
    (void)state;
    config *cfg = must_load("{'services': {'math': {'endpoints': ['math.svc:3000']}}}");
    assert_int_equal(cfg->service_count, 1);
    const config_service *s = &cfg->services[0];
    assert_string_equal(s->name, "math");
    assert_int_equal(s->endpoint_count, 1);
    assert_string_equal(s->endpoints[0].host, "math.svc");
    assert_int_equal(s->endpoints[0].port, 3000);
    assert_int_equal(s->endpoints[0].kind, HOSTPORT_NAME);
    assert_int_equal(s->pool_size, 1);
    assert_int_equal(s->connect, UP_CONNECT_EAGER);
    assert_int_equal(s->connect_timeout_ms, 2000);
    assert_int_equal(s->timeout_ms, 5000);
    assert_int_equal(s->retry_attempts, 0);
    assert_int_equal(s->retry_delay_ms, 100);
    assert_int_equal(s->max_message_bytes, 134217728);
    assert_true(s->metadata);
    assert_true(s->generic_api);
    assert_null(s->tls);
    config_free(cfg);
}

static void test_defaults_of_route_keys(void **state)
{
    (void)state;
    config *cfg = must_load(WITH_ROUTES(
        "{'method': 'POST', 'path': '/users', 'service': 'users', 'pattern': 'make'},"
        "{'method': 'POST', 'path': '/events', 'service': 'math', 'pattern': 'ev',"
        " 'kind': 'emit'}"));
    assert_int_equal(cfg->route_count, 2);
    const config_route *send = &cfg->routes[0];
    assert_int_equal(send->method, CONFIG_METHOD_POST);
    assert_string_equal(send->path.text, "/users");
    assert_int_equal(send->service_index, 1);
    assert_string_equal(send->pattern_json, "\"make\"");
    assert_int_equal(send->pattern_length, 6);
    assert_int_equal(send->kind, CONFIG_ROUTE_SEND);
    assert_int_equal(send->reply, CONFIG_REPLY_AUTO);
    assert_int_equal(send->timeout_ms, 1234); /* the service's */
    assert_int_equal(send->status, 200);
    assert_int_equal(send->data.count, 1); /* "$body" */
    assert_int_equal(send->data.items[0].kind, TEMPLATE_ITEM_SLOT);
    assert_int_equal(send->data.items[0].slot.source, TEMPLATE_SOURCE_BODY);
    assert_true(send->data.uses_body);
    assert_true(send->data_default); /* no `data` key */
    const config_route *emit = &cfg->routes[1];
    assert_int_equal(emit->kind, CONFIG_ROUTE_EMIT);
    assert_int_equal(emit->status, 202);
    assert_int_equal(emit->timeout_ms, 5000);
    assert_true(emit->data.uses_body);
    config_free(cfg);
}

static void test_embedded_default(void **state)
{
    (void)state;
    config *cfg = NULL;
    config_error error;
    assert_int_equal(config_load_default(&cfg, &error), 0);
    assert_string_equal(cfg->listen.host, "127.0.0.1");
    assert_int_equal(cfg->listen.port, 8080);
    assert_false(cfg->has_admin_listen);
    assert_int_equal(cfg->service_count, 1);
    assert_string_equal(cfg->services[0].name, "default");
    assert_string_equal(cfg->services[0].endpoints[0].host, "127.0.0.1");
    assert_int_equal(cfg->services[0].endpoints[0].port, 3000);
    assert_true(cfg->services[0].generic_api);
    assert_int_equal(cfg->route_count, 0);
    config_free(cfg);
}

/* ---- the SPEC.md example ------------------------------------------------- */

static const char spec_example[] =
    "{'listen': '127.0.0.1:8080', 'admin_listen': '0.0.0.0:9901', 'workers': 1,"
    " 'shutdown_grace_ms': 10000, 'generic_api': ['math'],"
    " 'auth': {'bearer_tokens': ['${GATEWAY_TOKEN}']},"
    " 'log': {'level': 'info', 'access': true},"
    " 'limits': {'max_body_bytes': 1048576, 'max_connections': 4096,"
    "            'max_inflight': 10000, 'idle_timeout_ms': 60000},"
    " 'services': {"
    "   'math': {'endpoints': ['127.0.0.1:3001'], 'pool_size': 2,"
    "            'tls': {'ca': '/etc/pg/ca.pem', 'cert': '/etc/pg/c.pem',"
    "                    'key': '/etc/pg/k.pem', 'servername': 'math.internal'}},"
    "   'users': {'endpoints': ['users.default.svc:3000', '10.0.0.7:3000']},"
    "   'time': {'endpoints': ['127.0.0.1:3002'], 'connect': 'lazy'}},"
    " 'routes': ["
    "   {'method': 'POST', 'path': '/math/sum', 'service': 'math',"
    "    'pattern': {'cmd': 'sum'}, 'data': '$body'},"
    "   {'method': 'GET', 'path': '/users/:id', 'service': 'users', 'pattern': 'get_user',"
    "    'data': {'id': '$path.id:int', 'full': '$query.full:bool'}},"
    "   {'method': 'POST', 'path': '/users', 'service': 'users',"
    "    'pattern': 'user_created', 'kind': 'emit'},"
    "   {'method': 'GET', 'path': '/ticks', 'service': 'time',"
    "    'pattern': 'ticks', 'reply': 'sse', 'timeout_ms': 60000}]}";

static void test_spec_example(void **state)
{
    (void)state;
    const char *const env[] = {"GATEWAY_TOKEN", "s3cret", NULL};
    config *cfg = must_load_with_env(spec_example, env);
    assert_true(cfg->has_admin_listen);
    assert_string_equal(cfg->admin_listen.host, "0.0.0.0");
    assert_int_equal(cfg->admin_listen.port, 9901);
    assert_int_equal(cfg->bearer_token_count, 1);
    assert_string_equal(cfg->bearer_tokens[0], "s3cret");
    assert_true(cfg->log_access);
    assert_int_equal(cfg->service_count, 3);
    assert_true(cfg->services[0].generic_api);
    assert_false(cfg->services[1].generic_api);
    assert_false(cfg->services[2].generic_api);
    assert_int_equal(cfg->services[0].pool_size, 2);
    assert_non_null(cfg->services[0].tls);
    assert_string_equal(cfg->services[0].tls->ca, "/etc/pg/ca.pem");
    assert_string_equal(cfg->services[0].tls->servername, "math.internal");
    assert_true(cfg->services[0].tls->verify);
    assert_int_equal(cfg->services[1].endpoint_count, 2);
    assert_int_equal(cfg->services[1].endpoints[1].kind, HOSTPORT_IPV4);
    assert_int_equal(cfg->services[2].connect, UP_CONNECT_LAZY);
    assert_int_equal(cfg->route_count, 4);
    assert_string_equal(cfg->routes[0].pattern_json, "{\"cmd\":\"sum\"}");
    assert_false(cfg->routes[1].data.uses_body);
    assert_int_equal(cfg->routes[1].data.count, 5);
    assert_false(cfg->routes[0].data_default); /* "data": "$body" written */
    assert_false(cfg->routes[1].data_default);
    assert_int_equal(cfg->routes[3].reply, CONFIG_REPLY_SSE);
    assert_int_equal(cfg->routes[3].timeout_ms, 60000);
    char summary[64];
    config_summary(cfg, summary, sizeof summary);
    assert_string_equal(summary, "3 services, 4 routes");
    config_free(cfg);
}

static void test_summary_singular(void **state)
{
    (void)state;
    config *cfg = must_load(WITH_ROUTES(
        "{'method': 'GET', 'path': '/a', 'service': 'math', 'pattern': 'a'}"));
    char summary[64];
    config_summary(cfg, summary, sizeof summary);
    assert_string_equal(summary, "2 services, 1 route");
    config_free(cfg);
    cfg = must_load("{'services': {'one': {'endpoints': ['h:1']}}}");
    config_summary(cfg, summary, sizeof summary);
    assert_string_equal(summary, "1 service, 0 routes");
    config_free(cfg);
}

/* ---- values -------------------------------------------------------------- */

static void test_workers(void **state)
{
    (void)state;
    config *cfg = must_load("{'workers': 'auto'}");
    assert_int_equal(cfg->workers, 0);
    config_free(cfg);
    cfg = must_load("{'workers': 4}");
    assert_int_equal(cfg->workers, 4);
    config_free(cfg);
    assert_error("{'workers': 0}", "workers: expected a positive integer or \"auto\"");
    assert_error("{'workers': 'many'}", "workers: expected a positive integer or \"auto\"");
    assert_error("{'workers': 1.5}", "workers: expected a positive integer or \"auto\"");
    assert_error("{'workers': 5000}",
                 "workers: expected a positive integer or \"auto\" (at most 1024)");
}

static void test_listen_forms(void **state)
{
    (void)state;
    config *cfg = must_load("{'listen': '[::1]:8081', 'admin_listen': 'localhost:9901'}");
    assert_string_equal(cfg->listen.host, "::1");
    assert_int_equal(cfg->listen.kind, HOSTPORT_IPV6);
    assert_int_equal(cfg->listen.port, 8081);
    assert_string_equal(cfg->admin_listen.host, "localhost");
    assert_int_equal(cfg->admin_listen.kind, HOSTPORT_NAME);
    config_free(cfg);
    assert_error("{'listen': 8080}", "listen: expected \"host:port\"");
    assert_error("{'listen': '127.0.0.1'}", "listen: expected \"host:port\" (missing port)");
    assert_error("{'listen': '127.0.0.1:0'}",
                 "listen: expected \"host:port\" (port must be 1..65535)");
    assert_error("{'admin_listen': '127.0.0.1:65536'}",
                 "admin_listen: expected \"host:port\" (port must be 1..65535)");
    assert_error("{'listen': '300.1.1.1:80'}", "listen: expected \"host:port\" (bad IPv4 address)");
    assert_error("{'listen': '::1:80'}",
                 "listen: expected \"host:port\" (an IPv6 address needs brackets)");
    assert_error("{'listen': '127.0.0.1:8080', 'admin_listen': '127.0.0.1:8080'}",
                 "admin_listen: must differ from listen");
}

static void test_integer_limits(void **state)
{
    (void)state;
    config *cfg = must_load("{'shutdown_grace_ms': 0, 'limits': {'max_body_bytes': 10,"
                            " 'max_connections': 2, 'max_inflight': 3, 'idle_timeout_ms': 4}}");
    assert_int_equal(cfg->shutdown_grace_ms, 0);
    assert_int_equal(cfg->limits.max_body_bytes, 10);
    assert_int_equal(cfg->limits.max_connections, 2);
    assert_int_equal(cfg->limits.max_inflight, 3);
    assert_int_equal(cfg->limits.idle_timeout_ms, 4);
    config_free(cfg);
    assert_error("{'limits': {'max_body_bytes': 0}}",
                 "limits.max_body_bytes: expected a positive integer");
    assert_error("{'limits': {'max_body_bytes': '1MB'}}",
                 "limits.max_body_bytes: expected a positive integer");
    assert_error("{'limits': {'max_inflight': -1}}",
                 "limits.max_inflight: expected a positive integer");
    assert_error("{'limits': {'idle_timeout_ms': 3000000000}}",
                 "limits.idle_timeout_ms: expected a positive integer (at most 2147483647)");
    assert_error("{'shutdown_grace_ms': -5}",
                 "shutdown_grace_ms: expected a non-negative integer");
    assert_error("{'limits': []}", "limits: expected an object");
}

static void test_wrong_types(void **state)
{
    (void)state;
    assert_error("[]", "expected a JSON object at the top level");
    assert_error("{'log': 'info'}", "log: expected an object");
    assert_error("{'log': {'access': 'yes'}}", "log.access: expected true or false");
    assert_error("{'log': {'access': null}}", "log.access: expected true or false");
    assert_error("{'services': []}", "services: expected an object");
    assert_error("{'services': {'math': ['h:1']}}", "services.math: expected an object");
    assert_error("{'routes': {}}", "routes: expected an array");
    assert_error("{'services': {'m': {'endpoints': ['h:1'], 'metadata': 1}}}",
                 "services.m.metadata: expected true or false");
    assert_error("{'services': {'m': {'endpoints': ['h:1'], 'tls': true}}}",
                 "services.m.tls: expected an object");
    assert_error("{'services': {'m': {'endpoints': ['h:1'], 'tls': {'ca': 7}}}}",
                 "services.m.tls.ca: expected a non-empty string");
    assert_error(WITH_ROUTES("'GET /a'"), "routes[0]: expected an object");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': 5, 'service': 'math', 'pattern': 1}"),
                 "routes[0].path: expected a string starting with '/'");
}

static void test_enum_values(void **state)
{
    (void)state;
    config *cfg = must_load("{'log': {'level': 'debug'}}");
    assert_int_equal(cfg->log_level, CONFIG_LOG_DEBUG);
    config_free(cfg);
    assert_error("{'log': {'level': 'verbose'}}",
                 "log.level: expected one of debug, info, warn, error");
    assert_error("{'services': {'m': {'endpoints': ['h:1'], 'connect': 'sometimes'}}}",
                 "services.m.connect: expected one of eager, lazy");
    assert_error(WITH_ROUTES("{'method': 'get', 'path': '/a', 'service': 'math', 'pattern': 1}"),
                 "routes[0].method: expected one of GET, POST, PUT, PATCH, DELETE, * "
                 "(did you mean GET?)");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/a', 'service': 'math', 'pattern': 1,"
                             " 'kind': 'broadcast'}"),
                 "routes[0].kind: expected one of send, emit");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/a', 'service': 'math', 'pattern': 1,"
                             " 'reply': 'stream'}"),
                 "routes[0].reply: expected one of auto, array, ndjson, sse, envelope");
}

/* ---- unknown keys -------------------------------------------------------- */

static void test_unknown_keys(void **state)
{
    (void)state;
    assert_error("{'listn': '127.0.0.1:8080'}", "listn: unknown key (did you mean listen?)");
    assert_error("{'limits': {'max body': 1}}", "limits[\"max body\"]: unknown key");
    assert_error("{'auth': {'bearer_tokens': ['a'], 'tokens': ['a']}}", "auth.tokens: unknown key");
    assert_error("{'log': {'format': 'json'}}", "log.format: unknown key");
    assert_error("{'services': {'math': {'endpoints': ['h:1'], 'timeout': 5}}}",
                 "services.math.timeout: unknown key (did you mean timeout_ms?)");
    assert_error("{'services': {'math': {'endpoints': ['h:1'], 'tls': {'insecure': true}}}}",
                 "services.math.tls.insecure: unknown key");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/a', 'service': 'math', 'pattern': 1},"
                             "{'metod': 'GET', 'path': '/b', 'service': 'math', 'pattern': 1}"),
                 "routes[1].metod: unknown key (did you mean method?)");
}

/* ---- substitution -------------------------------------------------------- */

static void test_substitution(void **state)
{
    (void)state;
    const char *const env[] = {"HOST", "10.1.2.3", "PORT", "4000", "EMPTY", "", "LEVEL", "warn",
                               NULL};
    config *cfg = must_load_with_env(
        "{'listen': '${HOST}:${PORT}', 'log': {'level': '${LEVEL:-info}'},"
        " 'services': {'s': {'endpoints': ['${MISSING:-127.0.0.1}:${EMPTY:-3000}'],"
        "                    'tls': {'servername': 'x${EMPTY}y'}}}}",
        env);
    assert_string_equal(cfg->listen.host, "10.1.2.3");
    assert_int_equal(cfg->listen.port, 4000);
    assert_int_equal(cfg->log_level, CONFIG_LOG_WARN);
    assert_string_equal(cfg->services[0].endpoints[0].host, "127.0.0.1");
    assert_int_equal(cfg->services[0].endpoints[0].port, 3000);
    assert_string_equal(cfg->services[0].tls->servername, "xy");
    config_free(cfg);
}

static void test_substitution_in_pattern_and_data_not_keys(void **state)
{
    (void)state;
    const char *const env[] = {"CMD", "sum", "TENANT", "acme", NULL};
    config *cfg = must_load_with_env(
        WITH_ROUTES("{'method': 'POST', 'path': '/s', 'service': 'math',"
                    " 'pattern': {'cmd': '${CMD}', '${CMD}': 1},"
                    " 'data': {'tenant': '${TENANT}', 'price': '$$' , 'raw': '$${TENANT}'}}"),
        env);
    assert_string_equal(cfg->routes[0].pattern_json, "{\"cmd\":\"sum\",\"${CMD}\":1}");
    assert_true(template_is_literal(&cfg->routes[0].data));
    /* "$$" is the template of a literal "$"; "$${" the substitution's "${" */
    assert_string_equal(cfg->routes[0].data.items[0].literal,
                        "{\"tenant\":\"acme\",\"price\":\"$\",\"raw\":\"${TENANT}\"}");
    config_free(cfg);
}

static void test_substitution_errors(void **state)
{
    (void)state;
    assert_error("{'auth': {'bearer_tokens': ['${GATEWAY_TOKEN}']}}",
                 "auth.bearer_tokens[0]: ${GATEWAY_TOKEN} is not set");
    assert_error("{'listen': '${HOST:-127.0.0.1:8080'}", "listen: unterminated ${");
    assert_error("{'services': {'m': {'endpoints': ['${1X}:1']}}}",
                 "services.m.endpoints[0]: bad variable name in ${...}");
    assert_error("{'listen': '${HOST:=x}'}",
                 "listen: unsupported ${...} form (use ${NAME} or ${NAME:-default})");
    /* substitution happens before validation: an empty token is caught */
    const char *const env[] = {"TOKEN", "", NULL};
    assert_error_with_env("{'auth': {'bearer_tokens': ['${TOKEN}']}}", env, CONFIG_ERROR_SCHEMA,
                          "auth.bearer_tokens[0]: expected a non-empty string of visible ASCII "
                          "characters");
}

static void test_substitution_uses_getenv_by_default(void **state)
{
    (void)state;
    setenv("PG_TEST_CONFIG_PORT", "8099", 1);
    const char text[] = "{\"listen\": \"127.0.0.1:${PG_TEST_CONFIG_PORT}\"}";
    config *cfg = NULL;
    config_error error;
    assert_int_equal(config_load_string(text, strlen(text), NULL, &cfg, &error), 0);
    assert_int_equal(cfg->listen.port, 8099);
    config_free(cfg);
    unsetenv("PG_TEST_CONFIG_PORT");
}

/* ---- syntax and I/O errors ----------------------------------------------- */

static void test_syntax_error_in_string(void **state)
{
    (void)state;
    assert_error_with_env("{\n  'a': tru }", no_env, CONFIG_ERROR_SYNTAX,
                          "<string>:2:8: tru is not a JSON value (did you mean true?)");
    assert_error_with_env("", no_env, CONFIG_ERROR_SYNTAX,
                          "<string>:1:1: '[' or '{' expected near end of file");
    assert_error_with_env("{'a': 1, 'a': 2}", no_env, CONFIG_ERROR_SYNTAX,
                          "<string>:1:12: duplicate object key near '\"a\"'");
    config *cfg = NULL;
    config_error error;
    config_load_options options = {.source_name = "inline.json"};
    assert_int_equal(config_load_string("{,}", 3, &options, &cfg, &error), -1);
    assert_string_equal(error.message, "inline.json:1:2: string or '}' expected near ','");
}

/* A fresh folder under $TMPDIR; remove it with remove_tree(). */
static char *make_temp_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = NULL;
    assert_true(asprintf(&dir, "%s/pg-config-test-XXXXXX", tmp && *tmp ? tmp : "/tmp") > 0);
    assert_non_null(mkdtemp(dir));
    return dir;
}

static char *write_file(const char *dir, const char *name, const char *json)
{
    char *path = NULL;
    assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
    char *text = double_quoted(json);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(text);
    return path;
}

static void test_syntax_error_in_file(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = write_file(dir, "bad.json", "{\n  'listen': '127.0.0.1:8080',\n  'workers': }\n");
    config *cfg = NULL;
    config_error error;
    assert_int_equal(config_load_file(path, NULL, &cfg, &error), -1);
    assert_int_equal(error.kind, CONFIG_ERROR_SYNTAX);
    char expected[512];
    snprintf(expected, sizeof expected, "%s:3:14: missing value after ':'", path);
    assert_string_equal(error.message, expected);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

static void test_missing_file(void **state)
{
    (void)state;
    config *cfg = NULL;
    config_error error;
    assert_int_equal(config_load_file("/nonexistent/pg.json", NULL, &cfg, &error), -1);
    assert_int_equal(error.kind, CONFIG_ERROR_IO);
    assert_string_equal(error.message, "/nonexistent/pg.json: No such file or directory");
    assert_null(cfg);
}

static void test_file_is_recorded(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = write_file(dir, "ok.json", "{'workers': 2}");
    config *cfg = NULL;
    config_error error;
    assert_int_equal(config_load_file(path, NULL, &cfg, &error), 0);
    assert_string_equal(cfg->file, path);
    assert_int_equal(cfg->workers, 2);
    config_free(cfg);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

/* ---- auth ---------------------------------------------------------------- */

static void test_bearer_tokens(void **state)
{
    (void)state;
    config *cfg = must_load("{'auth': {'bearer_tokens': ['a', 'b.c-d_e~f+g/h=']}}");
    assert_int_equal(cfg->bearer_token_count, 2);
    assert_string_equal(cfg->bearer_tokens[1], "b.c-d_e~f+g/h=");
    config_free(cfg);
    assert_error("{'auth': {}}", "auth: needs bearer_tokens, jwt or both (leave auth out for none)");
    assert_error("{'auth': {'bearer_tokens': []}}",
                 "auth.bearer_tokens: expected a non-empty array of strings");
    assert_error("{'auth': {'bearer_tokens': 'tok'}}",
                 "auth.bearer_tokens: expected a non-empty array of strings");
    assert_error("{'auth': {'bearer_tokens': ['ok', 'has space']}}",
                 "auth.bearer_tokens[1]: expected a non-empty string of visible ASCII characters");
}

/* ---- edge policy: auth.jwt ----------------------------------------------- */

/* Loads json, which must fail with exactly the problems expected[0..count)
 * (as config_problem_format() writes them, without a source). */
static void assert_problems(const char *json, const char *const *expected, size_t count);

#define SECRET "0123456789abcdef0123456789abcdef" /* 32 bytes */

static void test_jwt_values(void **state)
{
    (void)state;
    config *cfg = must_load("{'auth': {'jwt': {'issuer': 'https://auth.example.com/',"
                            " 'audiences': ['a', 'b'], 'jwks_file': '/etc/pg/jwks.json',"
                            " 'algorithms': ['ES256', 'HS256'], 'hs256_secret': '" SECRET "x',"
                            " 'leeway_s': 0, 'forward_claims': ['sub', 'https://x.example/roles']}}}");
    const config_jwt *jwt = cfg->jwt;
    assert_non_null(jwt);
    assert_int_equal(cfg->auth_mechanisms, CONFIG_AUTH_JWT);
    assert_int_equal(cfg->bearer_token_count, 0);
    assert_string_equal(jwt->issuer, "https://auth.example.com/");
    assert_int_equal(jwt->audience_count, 2);
    assert_string_equal(jwt->audiences[1], "b");
    assert_string_equal(jwt->jwks_file, "/etc/pg/jwks.json");
    assert_int_equal(jwt->algorithms, CONFIG_JWT_ES256 | CONFIG_JWT_HS256);
    assert_int_equal(jwt->hs256_secret_length, 33);
    assert_memory_equal(jwt->hs256_secret, SECRET "x", 33);
    assert_int_equal(jwt->leeway_s, 0);
    assert_int_equal(jwt->forward_claim_count, 2);
    assert_string_equal(jwt->forward_claims[1], "https://x.example/roles");
    config_free(cfg);
}

/* Without `algorithms`, those of the key sources given; nothing else is
 * checked unless configured. */
static void test_jwt_defaults(void **state)
{
    (void)state;
    config *cfg = must_load("{'auth': {'jwt': {'jwks_file': '/k.json'}}}");
    assert_int_equal(cfg->jwt->algorithms, CONFIG_JWT_RS256 | CONFIG_JWT_ES256 | CONFIG_JWT_EDDSA);
    assert_null(cfg->jwt->issuer);
    assert_int_equal(cfg->jwt->audience_count, 0);
    assert_null(cfg->jwt->hs256_secret);
    assert_int_equal(cfg->jwt->leeway_s, 60);
    assert_int_equal(cfg->jwt->forward_claim_count, 0);
    config_free(cfg);
    cfg = must_load("{'auth': {'bearer_tokens': ['t'], 'jwt': {'hs256_secret': '" SECRET "'}}}");
    assert_int_equal(cfg->jwt->algorithms, CONFIG_JWT_HS256);
    assert_null(cfg->jwt->jwks_file);
    assert_int_equal(cfg->auth_mechanisms, CONFIG_AUTH_BEARER | CONFIG_AUTH_JWT);
    config_free(cfg);
    cfg = must_load("{'auth': {'jwt': {'jwks_file': '/k.json', 'hs256_secret': '" SECRET "'}}}");
    assert_int_equal(cfg->jwt->algorithms, CONFIG_JWT_JWKS_ALGORITHMS | CONFIG_JWT_HS256);
    config_free(cfg);
    cfg = must_load("{}");
    assert_null(cfg->jwt);
    assert_int_equal(cfg->auth_mechanisms, 0);
    config_free(cfg);
}

static void test_jwt_secret_from_environment(void **state)
{
    (void)state;
    static const char *const env[] = {"JWT_SECRET", SECRET SECRET, NULL};
    config *cfg = must_load_with_env("{'auth': {'jwt': {'hs256_secret': '${JWT_SECRET}'}}}", env);
    assert_int_equal(cfg->jwt->hs256_secret_length, 64);
    config_free(cfg);
    static const char *const short_env[] = {"JWT_SECRET", "too short", NULL};
    assert_error_with_env("{'auth': {'jwt': {'hs256_secret': '${JWT_SECRET}'}}}", short_env,
                          CONFIG_ERROR_SCHEMA,
                          "auth.jwt.hs256_secret: expected at least 32 bytes, as long as the "
                          "hash (RFC 7518 section 3.2); it has 9");
}

static void test_jwks_file_relative_to_config_file(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = write_file(dir, "pg.json", "{'auth': {'jwt': {'jwks_file': './keys/jwks.json'}}}");
    config *cfg = NULL;
    config_error error;
    assert_int_equal(config_load_file(path, NULL, &cfg, &error), 0);
    char expected[512];
    snprintf(expected, sizeof expected, "%s/keys/jwks.json", dir);
    assert_string_equal(cfg->jwt->jwks_file, expected);
    config_free(cfg);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

static void test_jwt_errors(void **state)
{
    (void)state;
    assert_error("{'auth': {'jwt': {}}}",
                 "auth.jwt: needs a key source: jwks_file (RS256, ES256, EdDSA) or hs256_secret "
                 "(HS256)");
    assert_error("{'auth': {'jwt': true}}", "auth.jwt: expected an object");
    assert_error("{'auth': {'jwt': {'jwks_file': '/k', 'algorithms': ['none']}}}",
                 "auth.jwt.algorithms[0]: \"none\" is never accepted: an unsigned token proves "
                 "nothing");
    assert_error("{'auth': {'jwt': {'jwks_file': '/k', 'algorithms': ['RS256', 'NONE']}}}",
                 "auth.jwt.algorithms[1]: \"none\" is never accepted: an unsigned token proves "
                 "nothing");
    assert_error("{'auth': {'jwt': {'jwks_file': '/k', 'algorithms': ['eddsa']}}}",
                 "auth.jwt.algorithms[0]: expected one of RS256, ES256, EdDSA, HS256 (did you "
                 "mean EdDSA?)");
    assert_error("{'auth': {'jwt': {'jwks_file': '/k', 'algorithms': ['XYZ999']}}}",
                 "auth.jwt.algorithms[0]: expected one of RS256, ES256, EdDSA, HS256");
    assert_error("{'auth': {'jwt': {'jwks_file': '/k', 'algorithms': []}}}",
                 "auth.jwt.algorithms: expected a non-empty array of algorithm names");
    assert_error("{'auth': {'jwt': {'jwks_file': '/k', 'algorithms': ['ES256', 'ES256']}}}",
                 "auth.jwt.algorithms: ES256 is listed twice");
    assert_error("{'auth': {'jwt': {'jwks_file': '/k', 'algorithms': ['EdDSA', 'HS256']}}}",
                 "auth.jwt: algorithms lists HS256, which needs hs256_secret");
    assert_error("{'auth': {'jwt': {'hs256_secret': '" SECRET "', 'algorithms': ['EdDSA']}}}",
                 "auth.jwt: algorithms lists EdDSA, which needs jwks_file");
    assert_error("{'auth': {'jwt': {'jwks_file': '/k', 'hs256_secret': '" SECRET "',"
                 " 'algorithms': ['HS256']}}}",
                 "auth.jwt.jwks_file: not used: algorithms lists none of RS256, ES256, EdDSA");
    assert_error("{'auth': {'jwt': {'hs256_secret': '" SECRET "', 'issuer': ''}}}",
                 "auth.jwt.issuer: expected a non-empty string");
    assert_error("{'auth': {'jwt': {'hs256_secret': '" SECRET "', 'audiences': 'a'}}}",
                 "auth.jwt.audiences: expected a non-empty array of strings");
    assert_error("{'auth': {'jwt': {'hs256_secret': '" SECRET "', 'audiences': ['a', '']}}}",
                 "auth.jwt.audiences[1]: expected a non-empty string");
    assert_error("{'auth': {'jwt': {'hs256_secret': 32}}}",
                 "auth.jwt.hs256_secret: expected a string of at least 32 bytes");
    assert_error("{'auth': {'jwt': {'hs256_secret': '" SECRET "', 'leeway_s': -1}}}",
                 "auth.jwt.leeway_s: expected an integer from 0 to 3600");
    assert_error("{'auth': {'jwt': {'hs256_secret': '" SECRET "', 'forward_claims': ['a\\u0001']}}}",
                 "auth.jwt.forward_claims[0]: a claim name has no control characters");
    assert_error("{'auth': {'jwt': {'hs256_secret': '" SECRET "', 'forward_claim': ['sub']}}}",
                 "auth.jwt.forward_claim: unknown key (did you mean forward_claims?)");
    assert_error("{'auth': {'jtw': {}}}", "auth.jtw: unknown key (did you mean jwt?)");
}

/* Every bad value of auth.jwt is listed, not only the first. */
static void test_jwt_problems_accumulate(void **state)
{
    (void)state;
    static const char *const expected[] = {
        "1:19: auth.jwt.issuer: expected a non-empty string",
        "1:47: auth.jwt.algorithms[0]: \"none\" is never accepted: an unsigned token proves "
        "nothing",
        "1:56: auth.jwt.leeway_s: expected an integer from 0 to 3600",
        "1:75: auth.jwt.hs256_secret: expected at least 32 bytes, as long as the hash (RFC 7518 "
        "section 3.2); it has 1",
    };
    assert_problems("{'auth': {'jwt': {'issuer': 7, 'algorithms': ['none'], 'leeway_s': 99999,"
                    " 'hs256_secret': 'x'}}}",
                    expected, 4);
}

/* ---- edge policy: a route's auth and require_claims ---------------------- */

#define SVC "'services': {'s': {'endpoints': ['127.0.0.1:1']}}"
#define ROUTE_AT(path, extra) \
    "{'method': 'GET', 'path': '" path "', 'service': 's', 'pattern': 'p'" extra "}"
#define ROUTE(extra) ROUTE_AT("/r/:id", extra)

static void test_route_auth(void **state)
{
    (void)state;
    config *cfg = must_load("{" SVC ", 'routes': [" ROUTE("") ", " ROUTE_AT("/a", ", 'auth': 'none'") "]}");
    assert_int_equal(cfg->routes[0].auth, 0);
    assert_int_equal(cfg->routes[1].auth, 0);
    config_free(cfg);
    cfg = must_load("{'auth': {'bearer_tokens': ['t'], 'jwt': {'hs256_secret': '" SECRET "'}}, " SVC
                    ", 'routes': [" ROUTE("") ", " ROUTE_AT("/a", ", 'auth': 'none'") ", "
                    ROUTE_AT("/b", ", 'auth': 'bearer'") ", " ROUTE_AT("/c", ", 'auth': 'jwt'") "]}");
    assert_int_equal(cfg->routes[0].auth, CONFIG_AUTH_BEARER | CONFIG_AUTH_JWT);
    assert_int_equal(cfg->routes[1].auth, 0);
    assert_int_equal(cfg->routes[2].auth, CONFIG_AUTH_BEARER);
    assert_int_equal(cfg->routes[3].auth, CONFIG_AUTH_JWT);
    config_free(cfg);
    cfg = must_load("{'auth': {'bearer_tokens': ['t']}, " SVC ", 'routes': [" ROUTE("") "]}");
    assert_int_equal(cfg->routes[0].auth, CONFIG_AUTH_BEARER);
    config_free(cfg);
    assert_error("{" SVC ", 'routes': [" ROUTE(", 'auth': 'jwt'") "]}",
                 "routes[0].auth: \"jwt\" is not configured: it needs auth.jwt");
    assert_error("{'auth': {'jwt': {'hs256_secret': '" SECRET "'}}, " SVC ", 'routes': ["
                 ROUTE(", 'auth': 'bearer'") "]}",
                 "routes[0].auth: \"bearer\" is not configured: it needs auth.bearer_tokens");
    assert_error("{" SVC ", 'routes': [" ROUTE(", 'auth': 'JWT'") "]}",
                 "routes[0].auth: expected one of none, bearer, jwt (did you mean jwt?)");
    assert_error("{" SVC ", 'routes': [" ROUTE(", 'auth': ['jwt']") "]}",
                 "routes[0].auth: expected one of none, bearer, jwt");
}

static void test_require_claims(void **state)
{
    (void)state;
    config *cfg = must_load("{'auth': {'jwt': {'hs256_secret': '" SECRET "'}}, " SVC ", 'routes': ["
                            ROUTE(", 'require_claims': {'scope': 'orders:write', 'level': 2.5,"
                                  " 'admin': true, 'a.b/c': 'x'}") "]}");
    const config_route *r = &cfg->routes[0];
    assert_int_equal(r->require_claim_count, 4);
    assert_string_equal(r->require_claims[0].claim, "scope");
    assert_int_equal(r->require_claims[0].kind, CONFIG_CLAIM_STRING);
    assert_string_equal(r->require_claims[0].string, "orders:write");
    assert_string_equal(r->require_claims[0].value_json, "\"orders:write\"");
    assert_int_equal(r->require_claims[1].kind, CONFIG_CLAIM_NUMBER);
    assert_true(r->require_claims[1].number == 2.5);
    assert_string_equal(r->require_claims[1].value_json, "2.5");
    assert_null(r->require_claims[1].string);
    assert_int_equal(r->require_claims[2].kind, CONFIG_CLAIM_BOOL);
    assert_true(r->require_claims[2].boolean);
    assert_string_equal(r->require_claims[2].value_json, "true");
    assert_string_equal(r->require_claims[3].claim, "a.b/c");
    config_free(cfg);
    assert_error("{" SVC ", 'routes': [" ROUTE(", 'require_claims': {'sub': 'u1'}") "]}",
                 "routes[0].require_claims: needs JWT authentication: auth.jwt, and this route's "
                 "auth \"jwt\"");
    assert_error("{'auth': {'bearer_tokens': ['t'], 'jwt': {'hs256_secret': '" SECRET "'}}, " SVC
                 ", 'routes': [" ROUTE(", 'require_claims': {'sub': 'u1'}") "]}",
                 "routes[0].require_claims: needs this route's auth to be \"jwt\" (a bearer token "
                 "has no claims)");
    assert_error("{'auth': {'jwt': {'hs256_secret': '" SECRET "'}}, " SVC ", 'routes': ["
                 ROUTE(", 'auth': 'none', 'require_claims': {'sub': 'u1'}") "]}",
                 "routes[0].require_claims: needs JWT authentication: auth.jwt, and this route's "
                 "auth \"jwt\"");
    assert_error("{'auth': {'jwt': {'hs256_secret': '" SECRET "'}}, " SVC ", 'routes': ["
                 ROUTE(", 'require_claims': {'roles': ['a']}") "]}",
                 "routes[0].require_claims.roles: expected a string, a number, true or false");
    assert_error("{'auth': {'jwt': {'hs256_secret': '" SECRET "'}}, " SVC ", 'routes': ["
                 ROUTE(", 'require_claims': {'': 'a'}") "]}",
                 "routes[0].require_claims[\"\"]: expected a claim name (non-empty, no control "
                 "characters)");
    assert_error("{'auth': {'jwt': {'hs256_secret': '" SECRET "'}}, " SVC ", 'routes': ["
                 ROUTE(", 'require_claims': ['sub']") "]}",
                 "routes[0].require_claims: expected an object");
}

/* ---- edge policy: cors --------------------------------------------------- */

static void test_cors_values(void **state)
{
    (void)state;
    config *cfg = must_load("{'cors': {'allow_origins': ['HTTPS://App.Example.COM:443',"
                            " 'http://localhost:80', 'http://localhost:5173', 'https://h:80',"
                            " 'http://[::1]:8080', 'capacitor://localhost'],"
                            " 'allow_methods': ['GET', 'patch'], 'allow_headers': ['Content-Type',"
                            " 'X-Api-Key'], 'expose_headers': ['X-Request-Id'],"
                            " 'allow_credentials': true, 'max_age_s': 0}}");
    const config_cors *c = cfg->cors;
    assert_non_null(c);
    assert_false(c->any_origin);
    assert_int_equal(c->allow_origin_count, 6);
    assert_string_equal(c->allow_origins[0], "https://app.example.com");
    assert_string_equal(c->allow_origins[1], "http://localhost");
    assert_string_equal(c->allow_origins[2], "http://localhost:5173");
    assert_string_equal(c->allow_origins[3], "https://h:80");
    assert_string_equal(c->allow_origins[4], "http://[::1]:8080");
    assert_string_equal(c->allow_origins[5], "capacitor://localhost");
    assert_int_equal(c->allow_method_count, 2);
    assert_string_equal(c->allow_methods[1], "patch"); /* methods are case-sensitive */
    assert_int_equal(c->allow_header_count, 2);
    assert_string_equal(c->allow_headers[0], "content-type");
    assert_string_equal(c->allow_headers[1], "x-api-key");
    assert_int_equal(c->expose_header_count, 1);
    assert_string_equal(c->expose_headers[0], "X-Request-Id");
    assert_true(c->allow_credentials);
    assert_int_equal(c->max_age_s, 0);
    config_free(cfg);
}

static void test_cors_defaults_and_any_origin(void **state)
{
    (void)state;
    config *cfg = must_load("{'cors': {'allow_origins': ['*'], 'allow_headers': []}}");
    const config_cors *c = cfg->cors;
    assert_true(c->any_origin);
    assert_null(c->allow_origins);
    assert_int_equal(c->allow_origin_count, 0);
    assert_null(c->allow_methods);
    assert_int_equal(c->allow_header_count, 0);
    assert_null(c->expose_headers);
    assert_false(c->allow_credentials);
    assert_int_equal(c->max_age_s, 600);
    config_free(cfg);
    cfg = must_load("{}");
    assert_null(cfg->cors);
    config_free(cfg);
}

/* A route's cors replaces the top level's as a whole. */
static void test_route_cors(void **state)
{
    (void)state;
    config *cfg = must_load("{'cors': {'allow_origins': ['https://a.example']}, " SVC ", 'routes': ["
                            ROUTE("") ", " ROUTE_AT("/b", ", 'cors': {'allow_origins': ['*'],"
                            " 'max_age_s': 5}") "]}");
    assert_ptr_equal(config_route_cors(cfg, &cfg->routes[0]), cfg->cors);
    const config_cors *own = config_route_cors(cfg, &cfg->routes[1]);
    assert_ptr_equal(own, cfg->routes[1].cors);
    assert_true(own->any_origin);
    assert_int_equal(own->max_age_s, 5);
    config_free(cfg);
    cfg = must_load("{" SVC ", 'routes': [" ROUTE("") "]}");
    assert_null(config_route_cors(cfg, &cfg->routes[0]));
    config_free(cfg);
}

static void test_cors_errors(void **state)
{
    (void)state;
    assert_error("{'cors': {'allow_origins': ['*'], 'allow_credentials': true}}",
                 "cors.allow_credentials: cannot be true with allow_origins [\"*\"] (browsers "
                 "refuse credentials with any origin): list the origins");
    assert_error("{'cors': {'allow_origins': ['*', 'https://a.example']}}",
                 "cors.allow_origins: \"*\" (any origin) must be alone");
    assert_error("{'cors': {'allow_origins': []}}",
                 "cors.allow_origins: expected a non-empty array of origins, or [\"*\"]");
    assert_error("{'cors': {}}", "cors.allow_origins: required");
    assert_error("{'cors': ['*']}", "cors: expected an object");
    assert_error("{'cors': {'allow_origins': ['https://a.example/app']}}",
                 "cors.allow_origins[0]: an origin has no path: \"https://a.example\"");
    static const char bad_origin[] = "expected an origin, \"scheme://host\" or "
                                     "\"scheme://host:port\" (e.g. \"https://app.example.com\")";
    static const char *const bad_origins[] = {
        "a.example", "https://", "https://a.example:0", "https://a.example:65536",
        "https://a.example:080", "https://a.example:", "https://user@a.example",
        "https://a.example?x", "1https://a.example", "https://[::1", "https://a b",
    };
    for (size_t i = 0; i < CFG_COUNT_OF(bad_origins); i++) {
        char json[256], message[256];
        snprintf(json, sizeof json, "{'cors': {'allow_origins': ['%s']}}", bad_origins[i]);
        snprintf(message, sizeof message, "cors.allow_origins[0]: %s", bad_origin);
        assert_error(json, message);
    }
    assert_error("{'cors': {'allow_origins': ['null']}}",
                 "cors.allow_origins[0]: \"null\" is the origin of sandboxed pages and local "
                 "files, which any site can make: not allowed");
    assert_error("{'cors': {'allow_origins': ['*'], 'allow_methods': []}}",
                 "cors.allow_methods: expected a non-empty array of HTTP methods");
    assert_error("{'cors': {'allow_origins': ['*'], 'allow_methods': ['GET POST']}}",
                 "cors.allow_methods[0]: expected an HTTP method (letters, digits and "
                 "!#$%&'*+-.^_`|~)");
    assert_error("{'cors': {'allow_origins': ['*'], 'allow_headers': ['*']}}",
                 "cors.allow_headers[0]: \"*\" is not a header name: list the names");
    assert_error("{'cors': {'allow_origins': ['*'], 'expose_headers': ['x:y']}}",
                 "cors.expose_headers[0]: expected a header name (letters, digits and "
                 "!#$%&'*+-.^_`|~)");
    assert_error("{'cors': {'allow_origins': ['*'], 'max_age_s': 86401}}",
                 "cors.max_age_s: expected an integer from 0 to 86400");
    assert_error("{'cors': {'allow_origins': ['*'], 'allow_credential': false}}",
                 "cors.allow_credential: unknown key (did you mean allow_credentials?)");
    assert_error("{" SVC ", 'routes': [" ROUTE(", 'cors': {'allow_origins': ['*'],"
                 " 'allow_credentials': true}") "]}",
                 "routes[0].cors.allow_credentials: cannot be true with allow_origins [\"*\"] "
                 "(browsers refuse credentials with any origin): list the origins");
}

/* ---- edge policy: rate_limit --------------------------------------------- */

static void test_rate_limit_values(void **state)
{
    (void)state;
    config *cfg = must_load("{'auth': {'jwt': {'hs256_secret': '" SECRET "'}}, " SVC ", 'routes': ["
                            ROUTE(", 'rate_limit': {'rps': 100, 'burst': 20}") ", "
                            ROUTE_AT("/a", ", 'rate_limit': {'rps': 0.5, 'burst': 1, 'key': '$jwt.sub'}") ", "
                            ROUTE_AT("/b/:id", ", 'rate_limit': {'rps': 1, 'burst': 1, 'key': '$path.id'}") ", "
                            ROUTE_AT("/c", ", 'rate_limit': {'rps': 1, 'burst': 1, 'key': '$jwt.claims.org.id'}") ", "
                            ROUTE_AT("/d", ", 'rate_limit': {'rps': 1, 'burst': 1, 'key': '$header.X-Api-Key'}") ", "
                            ROUTE_AT("/e", ", 'rate_limit': {'rps': 1, 'burst': 1, 'key': '$query.k'}") ", "
                            ROUTE_AT("/f", ", 'rate_limit': {'rps': 1, 'burst': 1, 'key': '$client.ip'}") ", "
                            ROUTE_AT("/g", "") "], 'limits': {'rate_limit_keys': 12}}");
    const config_rate_limit *r = cfg->routes[0].rate_limit;
    assert_true(r->rps == 100);
    assert_int_equal(r->burst, 20);
    assert_null(r->key);
    r = cfg->routes[1].rate_limit;
    assert_true(r->rps == 0.5);
    assert_int_equal(r->burst, 1);
    assert_string_equal(r->key, "$jwt.sub");
    assert_string_equal(cfg->routes[2].rate_limit->key, "$path.id");
    assert_string_equal(cfg->routes[3].rate_limit->key, "$jwt.claims.org.id");
    assert_string_equal(cfg->routes[4].rate_limit->key, "$header.X-Api-Key");
    assert_string_equal(cfg->routes[5].rate_limit->key, "$query.k");
    assert_string_equal(cfg->routes[6].rate_limit->key, "$client.ip");
    assert_null(cfg->routes[7].rate_limit);
    assert_int_equal(cfg->limits.rate_limit_keys, 12);
    config_free(cfg);
    cfg = must_load("{}");
    assert_int_equal(cfg->limits.rate_limit_keys, 100000);
    config_free(cfg);
}

static void test_rate_limit_errors(void **state)
{
    (void)state;
    static const char forms[] = "expected \"$jwt.NAME\", \"$jwt.claims.a.b\", \"$header.NAME\", "
                                "\"$query.NAME\", \"$path.NAME\" or \"$client.ip\"";
    static const char *const bad_keys[] = {
        "sub", "$jwt", "$jwt.", "$jwt.claims", "$jwt.claims.", "$jwt.claims.a..b", "$jwt.a.b",
        "$header.", "$header.a b", "$query.", "$path.", "$client", "$client.port", "$body.id",
        "$body", "$headers",
    };
    for (size_t i = 0; i < CFG_COUNT_OF(bad_keys); i++) {
        char json[512], message[512];
        snprintf(json, sizeof json,
                 "{'auth': {'jwt': {'hs256_secret': '" SECRET "'}}, " SVC ", 'routes': ["
                 ROUTE(", 'rate_limit': {'rps': 1, 'burst': 1, 'key': '%s'}") "]}",
                 bad_keys[i]);
        snprintf(message, sizeof message, "routes[0].rate_limit.key: %s", forms);
        assert_error(json, message);
    }
    assert_error("{" SVC ", 'routes': [" ROUTE(", 'rate_limit': {'rps': 1, 'burst': 1, 'key': '$path.uid'}") "]}",
                 "routes[0].rate_limit.key: $path.uid is not a capture of /r/:id");
    assert_error("{" SVC ", 'routes': [" ROUTE(", 'rate_limit': {'rps': 1, 'burst': 1, 'key': '$query.n:int'}") "]}",
                 "routes[0].rate_limit.key: a key takes no conversion (:int, ...): its value is "
                 "used as text");
    assert_error("{" SVC ", 'routes': [" ROUTE(", 'rate_limit': {'rps': 1, 'burst': 1, 'key': '$jwt.sub'}") "]}",
                 "routes[0].rate_limit.key: a $jwt key needs JWT authentication on this route "
                 "(auth.jwt, and the route's auth \"jwt\" or its default)");
    assert_error("{'auth': {'bearer_tokens': ['t'], 'jwt': {'hs256_secret': '" SECRET "'}}, " SVC
                 ", 'routes': [" ROUTE(", 'auth': 'bearer', 'rate_limit': {'rps': 1, 'burst': 1,"
                 " 'key': '$jwt.sub'}") "]}",
                 "routes[0].rate_limit.key: a $jwt key needs JWT authentication on this route "
                 "(auth.jwt, and the route's auth \"jwt\" or its default)");
    assert_error("{" SVC ", 'routes': [" ROUTE(", 'rate_limit': {'rps': 1e13, 'burst': 1}") "]}",
                 "routes[0].rate_limit.rps: expected a number from 0.000001 to 1000000000000");
    assert_error("{" SVC ", 'routes': [" ROUTE(", 'rate_limit': {'rps': '5', 'burst': 1}") "]}",
                 "routes[0].rate_limit.rps: expected a number from 0.000001 to 1000000000000");
    assert_error("{" SVC ", 'routes': [" ROUTE(", 'rate_limit': {'burst': 1}") "]}",
                 "routes[0].rate_limit.rps: required");
    assert_error("{" SVC ", 'routes': [" ROUTE(", 'rate_limit': {'rps': 1, 'burst': 0}") "]}",
                 "routes[0].rate_limit.burst: expected a positive integer");
    assert_error("{" SVC ", 'routes': [" ROUTE(", 'rate_limit': {'rps': 1, 'burst': 2147483648}") "]}",
                 "routes[0].rate_limit.burst: expected a positive integer (at most 2147483647)");
    assert_error("{" SVC ", 'routes': [" ROUTE(", 'rate_limit': {'rps': 1, 'burst': 1, 'key': ''}") "]}",
                 "routes[0].rate_limit.key: expected a non-empty string");
    assert_error("{" SVC ", 'routes': [" ROUTE(", 'rate_limit': 5") "]}",
                 "routes[0].rate_limit: expected an object");
    assert_error("{'limits': {'rate_limit_keys': 67108865}}",
                 "limits.rate_limit_keys: expected a positive integer (at most 67108864)");
}

/* A route with bad edge keys still has its other fields checked, and each
 * bad edge key is its own problem. */
static void test_route_edge_problems_accumulate(void **state)
{
    (void)state;
    static const char *const expected[] = {
        "1:132: routes[0].status: expected an integer from 200 to 299",
        "1:145: routes[0].auth: expected one of none, bearer, jwt",
        "1:162: routes[0].cors.allow_origins: required",
        "1:174: routes[0].rate_limit.burst: required",
    };
    assert_problems("{" SVC ", 'routes': [" ROUTE(", 'status': 1, 'auth': 'basic', 'cors': {},"
                    " 'rate_limit': {'rps': 1}") "]}",
                    expected, 4);
}

/* ---- services ------------------------------------------------------------ */

static void test_service_values(void **state)
{
    (void)state;
    config *cfg = must_load(
        "{'services': {'a.b-c_1': {'endpoints': ['[2001:db8::1]:3000', 'x.example.:1'],"
        " 'pool_size': 1024, 'connect': 'lazy', 'connect_timeout_ms': 1, 'timeout_ms': 2,"
        " 'retry_attempts': 3, 'retry_delay_ms': 0, 'max_message_bytes': 5, 'metadata': false,"
        " 'tls': {'verify': false}}}}");
    const config_service *s = &cfg->services[0];
    assert_string_equal(s->name, "a.b-c_1");
    assert_string_equal(s->endpoints[0].host, "2001:db8::1");
    assert_int_equal(s->endpoints[0].kind, HOSTPORT_IPV6);
    assert_string_equal(s->endpoints[1].host, "x.example.");
    assert_int_equal(s->pool_size, 1024);
    assert_int_equal(s->connect, UP_CONNECT_LAZY);
    assert_int_equal(s->connect_timeout_ms, 1);
    assert_int_equal(s->timeout_ms, 2);
    assert_int_equal(s->retry_attempts, 3);
    assert_int_equal(s->retry_delay_ms, 0);
    assert_int_equal(s->max_message_bytes, 5);
    assert_false(s->metadata);
    assert_non_null(s->tls);
    assert_null(s->tls->ca);
    assert_null(s->tls->cert);
    assert_null(s->tls->servername);
    assert_false(s->tls->verify);
    const config_service *found = config_find_service(cfg, "a.b-c_1xyz", 7);
    assert_ptr_equal(found, s);
    assert_null(config_find_service(cfg, "a.b", 3));
    config_free(cfg);
}

static void test_service_errors(void **state)
{
    (void)state;
    assert_error("{'services': {'math': {'endpoints': ['127.0.0.1']}}}",
                 "services.math.endpoints[0]: expected \"host:port\" (missing port)");
    assert_error("{'services': {'math': {'endpoints': ['h:1', 3001]}}}",
                 "services.math.endpoints[1]: expected \"host:port\"");
    assert_error("{'services': {'math': {'endpoints': ['bad_-host-:1']}}}",
                 "services.math.endpoints[0]: expected \"host:port\" (bad host name)");
    assert_error("{'services': {'math': {}}}", "services.math.endpoints: required");
    assert_error("{'services': {'math': {'endpoints': []}}}",
                 "services.math.endpoints: expected a non-empty array of \"host:port\"");
    assert_error("{'services': {'my svc': {'endpoints': ['h:1']}}}",
                 "services[\"my svc\"]: bad service name (expected [A-Za-z0-9_.-]+)");
    assert_error("{'services': {'': {'endpoints': ['h:1']}}}",
                 "services[\"\"]: bad service name (expected [A-Za-z0-9_.-]+)");
    assert_error("{'services': {'m': {'endpoints': ['h:1'], 'pool_size': 0}}}",
                 "services.m.pool_size: expected an integer from 1 to 1024");
    assert_error("{'services': {'m': {'endpoints': ['h:1'], 'pool_size': 1025}}}",
                 "services.m.pool_size: expected an integer from 1 to 1024");
    assert_error("{'services': {'m': {'endpoints': ['h:1'], 'timeout_ms': 0}}}",
                 "services.m.timeout_ms: expected a positive integer");
    assert_error("{'services': {'m': {'endpoints': ['h:1'], 'retry_attempts': -1}}}",
                 "services.m.retry_attempts: expected a non-negative integer");
    assert_error("{'services': {'m': {'endpoints': ['h:1'], 'max_message_bytes': 0}}}",
                 "services.m.max_message_bytes: expected a positive integer");
}

/* ---- tls ----------------------------------------------------------------- */

static void test_tls_cert_without_key(void **state)
{
    (void)state;
    assert_error("{'services': {'math': {'endpoints': ['h:1'], 'tls': {'cert': '/c.pem'}}}}",
                 "services.math.tls: cert and key must be given together");
    assert_error("{'services': {'math': {'endpoints': ['h:1'], 'tls': {'key': '/k.pem'}}}}",
                 "services.math.tls: cert and key must be given together");
}

static void test_tls_paths_relative_to_config_file(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = write_file(dir, "pg.json",
                            "{'services': {'math': {'endpoints': ['h:1'], 'tls': {"
                            "'ca': 'ca.pem', 'cert': './certs/c.pem', 'key': '/abs/k.pem'}}}}");
    config *cfg = NULL;
    config_error error;
    assert_int_equal(config_load_file(path, NULL, &cfg, &error), 0);
    char expected[512];
    snprintf(expected, sizeof expected, "%s/ca.pem", dir);
    assert_string_equal(cfg->services[0].tls->ca, expected);
    snprintf(expected, sizeof expected, "%s/certs/c.pem", dir);
    assert_string_equal(cfg->services[0].tls->cert, expected);
    assert_string_equal(cfg->services[0].tls->key, "/abs/k.pem");
    config_free(cfg);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

static void test_tls_paths_of_relative_config_file(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *sub = NULL;
    assert_true(asprintf(&sub, "%s/conf", dir) > 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    char *path = write_file(sub, "pg.json",
                            "{'services': {'m': {'endpoints': ['h:1'], 'tls': {'ca': 'ca.pem'}}}}");
    char *cwd = getcwd(NULL, 0);
    assert_int_equal(chdir(dir), 0);
    config *cfg = NULL;
    config_error error;
    int rc = config_load_file("conf/pg.json", NULL, &cfg, &error);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, 0);
    char expected[512];
    char *real_dir = realpath(dir, NULL);
    snprintf(expected, sizeof expected, "%s/conf/ca.pem", real_dir);
    assert_string_equal(cfg->services[0].tls->ca, expected);
    config_free(cfg);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
    free(real_dir);
    free(cwd);
    free(path);
    free(sub);
    free(dir);
}

static void test_tls_paths_of_string_load(void **state)
{
    (void)state;
    const char text[] = "{\"services\": {\"m\": {\"endpoints\": [\"h:1\"],"
                        " \"tls\": {\"ca\": \"ca.pem\"}}}}";
    config *cfg = NULL;
    config_error error;
    assert_int_equal(config_load_string(text, strlen(text), NULL, &cfg, &error), 0);
    char *cwd = getcwd(NULL, 0);
    char expected[512];
    snprintf(expected, sizeof expected, "%s/ca.pem", strcmp(cwd, "/") == 0 ? "" : cwd);
    assert_string_equal(cfg->services[0].tls->ca, expected);
    config_free(cfg);
    free(cwd);
    config_load_options options = {.base_dir = "/etc/pg/"};
    assert_int_equal(config_load_string(text, strlen(text), &options, &cfg, &error), 0);
    assert_string_equal(cfg->services[0].tls->ca, "/etc/pg/ca.pem");
    config_free(cfg);
}

/* ---- generic_api --------------------------------------------------------- */

static void test_generic_api(void **state)
{
    (void)state;
    const char *services = "'services': {'a': {'endpoints': ['h:1']}, 'b': {'endpoints': ['h:2']}}";
    char text[512];
    snprintf(text, sizeof text, "{'generic_api': false, %s}", services);
    config *cfg = must_load(text);
    assert_false(cfg->services[0].generic_api);
    assert_false(cfg->services[1].generic_api);
    config_free(cfg);
    snprintf(text, sizeof text, "{'generic_api': ['b'], %s}", services);
    cfg = must_load(text);
    assert_false(cfg->services[0].generic_api);
    assert_true(cfg->services[1].generic_api);
    config_free(cfg);
    snprintf(text, sizeof text, "{'generic_api': ['b', 'nope'], %s}", services);
    assert_error(text, "generic_api[1]: unknown service \"nope\"; known: a, b");
    snprintf(text, sizeof text, "{'generic_api': 'all', %s}", services);
    assert_error(text, "generic_api: expected true, false or a list of service names");
    snprintf(text, sizeof text, "{'generic_api': [1], %s}", services);
    assert_error(text, "generic_api[0]: expected a service name");
}

/* ---- routes -------------------------------------------------------------- */

static void test_route_values(void **state)
{
    (void)state;
    config *cfg = must_load(WITH_ROUTES(
        "{'method': '*', 'path': '/calc/:op', 'service': 'math',"
        " 'pattern': {'cmd': 'calc', 'n': 0.5, 'list': [1, true, null]},"
        " 'reply': 'ndjson', 'timeout_ms': 77, 'status': 201,"
        " 'data': {'op': '$path.op', 'x': '$body.x:number'}}"));
    const config_route *r = &cfg->routes[0];
    assert_int_equal(r->method, CONFIG_METHOD_ANY);
    assert_int_equal(r->path.count, 2);
    assert_string_equal(r->pattern_json, "{\"cmd\":\"calc\",\"n\":0.5,\"list\":[1,true,null]}");
    assert_int_equal(r->reply, CONFIG_REPLY_NDJSON);
    assert_int_equal(r->timeout_ms, 77);
    assert_int_equal(r->status, 201);
    assert_true(r->data.uses_body);
    assert_int_equal(r->data.count, 5);
    config_free(cfg);
    cfg = must_load(WITH_ROUTES("{'method': 'GET', 'path': '/b/:id', 'service': 'math', 'pattern': 'b',"
                                " 'reply': 'envelope', 'status': 201}"));
    assert_int_equal(cfg->routes[0].reply, CONFIG_REPLY_ENVELOPE);
    assert_int_equal(cfg->routes[0].status, 201);
    config_free(cfg);
}

static void test_route_required_keys(void **state)
{
    (void)state;
    assert_error(WITH_ROUTES("{'path': '/a', 'service': 'math', 'pattern': 1}"),
                 "routes[0].method: required");
    assert_error(WITH_ROUTES("{'method': 'GET', 'service': 'math', 'pattern': 1}"),
                 "routes[0].path: required");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/a', 'pattern': 1}"),
                 "routes[0].service: required");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/a', 'service': 'math'}"),
                 "routes[0].pattern: required");
}

static void test_route_errors(void **state)
{
    (void)state;
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/a', 'service': 'time', 'pattern': 1}"),
                 "routes[0].service: unknown service \"time\"; known: math, users");
    assert_error("{'routes': [{'method': 'GET', 'path': '/a', 'service': 'x', 'pattern': 1}]}",
                 "routes[0].service: unknown service \"x\"; no services are defined");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': 'a', 'service': 'math', 'pattern': 1}"),
                 "routes[0].path: expected a path starting with '/'");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/a//b', 'service': 'math', 'pattern': 1}"),
                 "routes[0].path: empty segment (//)");
    assert_error(WITH_ROUTES("{'method': 'POST', 'path': '/e', 'service': 'math', 'pattern': 1,"
                             " 'kind': 'emit', 'reply': 'auto'}"),
                 "routes[0].reply: not allowed on an emit route (events have no reply)");
    assert_error(WITH_ROUTES("{'method': 'POST', 'path': '/e', 'service': 'math', 'pattern': 1,"
                             " 'kind': 'emit', 'reply': 'envelope'}"),
                 "routes[0].reply: not allowed on an emit route (events have no reply)");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/a', 'service': 'math', 'pattern': 1,"
                             " 'status': 300}"),
                 "routes[0].status: expected an integer from 200 to 299");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/a', 'service': 'math', 'pattern': 1,"
                             " 'timeout_ms': 0}"),
                 "routes[0].timeout_ms: expected a positive integer");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/users/:id', 'service': 'users',"
                             " 'pattern': 1, 'data': {'id': '$path.uid'}}"),
                 "routes[0].data.id: $path.uid is not a capture of /users/:id");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/u', 'service': 'users',"
                             " 'pattern': 1, 'data': [1, {'n': '$query.n:integer'}]}"),
                 "routes[0].data[1].n: unknown conversion ':integer' "
                 "(expected :int, :number, :bool or :json)");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/u/:id', 'service': 'users',"
                             " 'pattern': 1, 'data': {'...': '$path', 'q': ['$qeury.id']}}"),
                 "routes[0].data.q[0]: unknown template \"$qeury.id\" (did you mean "
                 "\"$query.id\"?); a literal string starting with $ is written \"$$...\"");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/u', 'service': 'users',"
                             " 'pattern': 1, 'data': {'...': ['$body', '$query.n:int']}}"),
                 "routes[0].data[\"...\"][1]: \"$query.n:int\" cannot hold an object to "
                 "spread (spread $body..., $jwt..., $path, $query, $headers, or a value "
                 "with :json)");
}

static void test_error_text_stays_on_one_line(void **state)
{
    (void)state;
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/a', 'service': 'm\\n\\u0001',"
                             " 'pattern': 1}"),
                 "routes[0].service: unknown service \"m\\n\\x01\"; known: math, users");
    assert_error("{'services': {'m': {'endpoints': ['h:1']}}, 'generic_api': ['a\\tb']}",
                 "generic_api[0]: unknown service \"a\\tb\"; known: m");
}

static void test_route_conflicts(void **state)
{
    (void)state;
    assert_error(WITH_ROUTES(
                     "{'method': 'GET', 'path': '/users', 'service': 'users', 'pattern': 1},"
                     "{'method': 'GET', 'path': '/users/:id', 'service': 'users', 'pattern': 2},"
                     "{'method': 'POST', 'path': '/users/:id', 'service': 'users', 'pattern': 3},"
                     "{'method': 'GET', 'path': '/users/:uid/', 'service': 'users', 'pattern': 4}"),
                 "routes[3]: conflicts with routes[1] (GET /users/:id)");
    assert_error(WITH_ROUTES(
                     "{'method': 'DELETE', 'path': '/a/*rest', 'service': 'math', 'pattern': 1},"
                     "{'method': '*', 'path': '/a/*all', 'service': 'math', 'pattern': 2}"),
                 "routes[1]: conflicts with routes[0] (DELETE /a/*rest)");
    assert_error(WITH_ROUTES(
                     "{'method': 'GET', 'path': '/a%20b', 'service': 'math', 'pattern': 1},"
                     "{'method': 'GET', 'path': '/a%20b/', 'service': 'math', 'pattern': 2}"),
                 "routes[1]: conflicts with routes[0] (GET /a%20b)");
    /* different shapes, or different methods: no conflict */
    config *cfg = must_load(WITH_ROUTES(
        "{'method': 'GET', 'path': '/users/:id', 'service': 'users', 'pattern': 1},"
        "{'method': 'GET', 'path': '/users/me', 'service': 'users', 'pattern': 2},"
        "{'method': 'GET', 'path': '/users/*rest', 'service': 'users', 'pattern': 3},"
        "{'method': 'PUT', 'path': '/users/:id', 'service': 'users', 'pattern': 4},"
        "{'method': 'GET', 'path': '/', 'service': 'users', 'pattern': 5}"));
    assert_int_equal(cfg->route_count, 5);
    assert_false(config_routes_conflict(&cfg->routes[0], &cfg->routes[1]));
    assert_false(config_routes_conflict(&cfg->routes[0], &cfg->routes[3]));
    config_free(cfg);
}

static void test_generic_api_paths(void **state)
{
    (void)state;
    assert_error(WITH_ROUTES("{'method': 'POST', 'path': '/v1/send/math', 'service': 'math',"
                             " 'pattern': 1}"),
                 "routes[0].path: /v1/send/math clashes with the generic API "
                 "(/v1/send/..., /v1/emit/...)");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/v1/emit', 'service': 'math',"
                             " 'pattern': 1}"),
                 "routes[0].path: /v1/emit clashes with the generic API "
                 "(/v1/send/..., /v1/emit/...)");
    config *cfg = must_load(
        "{'generic_api': false, 'services': {'m': {'endpoints': ['h:1']}},"
        " 'routes': [{'method': 'POST', 'path': '/v1/send/:svc', 'service': 'm', 'pattern': 1},"
        "            {'method': 'POST', 'path': '/v1/other', 'service': 'm', 'pattern': 2}]}");
    config_free(cfg);
    cfg = must_load(WITH_ROUTES(
        "{'method': 'POST', 'path': '/v1/:verb/x', 'service': 'math', 'pattern': 1},"
        "{'method': 'POST', 'path': '/v2/send/x', 'service': 'math', 'pattern': 2}"));
    config_free(cfg);
}

static void test_admin_paths(void **state)
{
    (void)state;
    const char *services = "'services': {'m': {'endpoints': ['h:1']}}";
    char text[512];
    snprintf(text, sizeof text, "{%s, 'routes': [{'method': 'GET', 'path': '/healthz',"
             " 'service': 'm', 'pattern': 1}]}", services);
    assert_error(text, "routes[0].path: /healthz clashes with the admin API "
                       "(set admin_listen to serve it apart)");
    snprintf(text, sizeof text, "{%s, 'routes': [{'method': 'POST', 'path': '/metrics/*rest',"
             " 'service': 'm', 'pattern': 1}]}", services);
    assert_error(text, "routes[0].path: /metrics/*rest clashes with the admin API "
                       "(set admin_listen to serve it apart)");
    snprintf(text, sizeof text, "{%s, 'routes': [{'method': 'GET', 'path': '/openapi.json',"
             " 'service': 'm', 'pattern': 1}]}", services);
    assert_error(text, "routes[0].path: /openapi.json clashes with the admin API "
                       "(set admin_listen to serve it apart)");
    snprintf(text, sizeof text, "{%s, 'routes': [{'method': '*', 'path': '/docs/',"
             " 'service': 'm', 'pattern': 1}]}", services);
    assert_error(text, "routes[0].path: /docs/ clashes with the admin API "
                       "(set admin_listen to serve it apart)");
    snprintf(text, sizeof text, "{%s, 'routes': [{'method': 'GET', 'path': '/status/:id',"
             " 'service': 'm', 'pattern': 1}, {'method': 'GET', 'path': '/:page',"
             " 'service': 'm', 'pattern': 2}]}", services);
    config *cfg = must_load(text);
    config_free(cfg);
    snprintf(text, sizeof text, "{'admin_listen': '127.0.0.1:9901', %s, 'routes': ["
             "{'method': 'GET', 'path': '/healthz', 'service': 'm', 'pattern': 1}]}", services);
    cfg = must_load(text);
    config_free(cfg);
}

/* ---- describing a route (OpenAPI), docs_assets ------------------------- */

static void test_route_description_keys(void **state)
{
    (void)state;
    config *cfg = must_load(WITH_ROUTES(
        "{'method': 'POST', 'path': '/a', 'service': 'math', 'pattern': 1,"
        " 'summary': 'Adds', 'description': 'Adds *all* of them', 'tags': ['m', 'x'],"
        " 'request_schema': {'type': 'object', 'properties': {'n': {'type': 'integer'}}},"
        " 'response_schema': {'type': 'number'}},"
        "{'method': 'GET', 'path': '/b', 'service': 'math', 'pattern': 2, 'tags': []},"
        "{'method': 'GET', 'path': '/c', 'service': 'math', 'pattern': 3}"));
    const config_route *r = &cfg->routes[0];
    assert_string_equal(r->summary, "Adds");
    assert_string_equal(r->description, "Adds *all* of them");
    assert_int_equal(r->tag_count, 2);
    assert_string_equal(r->tags[1], "x");
    assert_string_equal(r->request_schema_json,
                        "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"}}}");
    assert_string_equal(r->response_schema_json, "{\"type\":\"number\"}");
    assert_non_null(cfg->routes[1].tags); /* present, empty: no tag at all */
    assert_int_equal(cfg->routes[1].tag_count, 0);
    r = &cfg->routes[2];
    assert_null(r->summary);
    assert_null(r->description);
    assert_null(r->tags);
    assert_null(r->request_schema_json);
    assert_null(r->response_schema_json);
    config_free(cfg);
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/a', 'service': 'math', 'pattern': 1,"
                             " 'summary': ''}"),
                 "routes[0].summary: expected a non-empty string");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/a', 'service': 'math', 'pattern': 1,"
                             " 'tags': 'math'}"),
                 "routes[0].tags: expected an array of non-empty strings");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/a', 'service': 'math', 'pattern': 1,"
                             " 'response_schema': true}"),
                 "routes[0].response_schema: expected a JSON Schema object");
}

static void test_docs_assets(void **state)
{
    (void)state;
    config *cfg = must_load("{}");
    assert_null(cfg->docs_assets);
    assert_string_equal(config_docs_assets(cfg), CONFIG_DOCS_ASSETS_DEFAULT);
    config_free(cfg);
    cfg = must_load("{'docs_assets': 'http://127.0.0.1:9000/ui'}");
    assert_string_equal(config_docs_assets(cfg), "http://127.0.0.1:9000/ui/");
    config_free(cfg);
    cfg = must_load("{'docs_assets': '/swagger-ui/'}");
    assert_string_equal(config_docs_assets(cfg), "/swagger-ui/");
    config_free(cfg);
    static const char *const bad[] = {
        "{'docs_assets': 'cdn.example.com/ui/'}", "{'docs_assets': 'https://'}",
        "{'docs_assets': 'https://cdn.example.com/a b/'}",
        "{'docs_assets': 'https://cdn.example.com/<b>/'}",
        "{'docs_assets': 'ftp://cdn.example.com/'}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_error(bad[i], "docs_assets: expected an http:// or https:// URL, or a path starting "
                             "with /, of visible ASCII characters (no quotes, <, >, {, })");
    assert_error("{'docs_assets': ''}", "docs_assets: expected a non-empty string");
}

static void test_enum_names(void **state)
{
    (void)state;
    assert_string_equal(config_method_name(CONFIG_METHOD_ANY), "*");
    assert_string_equal(config_method_name(CONFIG_METHOD_PATCH), "PATCH");
    assert_string_equal(config_route_kind_name(CONFIG_ROUTE_EMIT), "emit");
    assert_string_equal(config_reply_mode_name(CONFIG_REPLY_SSE), "sse");
    assert_string_equal(config_reply_mode_name(CONFIG_REPLY_ENVELOPE), "envelope");
    assert_string_equal(config_log_level_name(CONFIG_LOG_WARN), "warn");
    assert_string_equal(config_connect_mode_name(UP_CONNECT_LAZY), "lazy");
}

/* ---- "$schema" ----------------------------------------------------------- */

static void test_schema_key_is_ignored(void **state)
{
    (void)state;
    config *cfg = must_load("{'$schema': '../config/patterngate.schema.json',"
                            " 'listen': '127.0.0.1:1'}");
    assert_int_equal(cfg->listen.port, 1);
    config_free(cfg);
    cfg = must_load("{'$schema': 'not ${substituted', 'services': {}}"); /* never expanded */
    config_free(cfg);
    cfg = must_load("{'$schema': ''}");
    config_free(cfg);
    assert_error("{'$schema': 5}",
                 "[\"$schema\"]: expected a string (where the config's JSON Schema is)");
    assert_error("{'$schema': null}",
                 "[\"$schema\"]: expected a string (where the config's JSON Schema is)");
    assert_error("{'log': {'$schema': 'x'}}", "log[\"$schema\"]: unknown key");
    assert_error("{'services': {'m': {'endpoints': ['h:1'], '$schema': 'x'}}}",
                 "services.m[\"$schema\"]: unknown key");
    assert_error(WITH_ROUTES("{'method': 'GET', 'path': '/a', 'service': 'math', 'pattern': 1,"
                             " '$schema': 'x'}"),
                 "routes[0][\"$schema\"]: unknown key");
}

/* ---- config/patterngate.schema.json against the loader --------------------
 * The schema's `default`s and enumerated names must be the loader's. Keys are
 * named as the walk below names them: "limits.max_body_bytes",
 * "services.*.tls.verify", "routes[].kind". (tests/schema checks the keys
 * themselves both ways, and the schema's verdicts against --check.) */

/* A config where every default shows: one service with a TLS object, JWT
 * auth, CORS, and one route of that service with its own CORS. */
static const char schema_base_config[] =
    "{\"services\": {\"s\": {\"endpoints\": [\"127.0.0.1:1\"], \"tls\": {}}},"
    " \"auth\": {\"jwt\": {\"hs256_secret\": \"" SECRET "\"}},"
    " \"cors\": {\"allow_origins\": [\"https://a.example\"]},"
    " \"routes\": [{\"method\": \"GET\", \"path\": \"/x\", \"service\": \"s\","
    " \"pattern\": \"p\", \"cors\": {\"allow_origins\": [\"*\"]}}]}";

typedef void schema_visit_fn(const char *path, const json_t *node, void *context);

/* Calls visit on every subschema reachable through properties,
 * additionalProperties ("NAME.*") and items ("NAME[]"), with its path. */
static void schema_walk(const json_t *node, const char *path, schema_visit_fn *visit,
                        void *context)
{
    char inner[256];
    visit(path, node, context);
    const json_t *properties = json_object_get(node, "properties");
    const char *key;
    json_t *child;
    json_object_foreach ((json_t *)properties, key, child) {
        snprintf(inner, sizeof inner, "%s%s%s", path, path[0] ? "." : "", key);
        schema_walk(child, inner, visit, context);
    }
    const json_t *additional = json_object_get(node, "additionalProperties");
    if (json_is_object(additional)) {
        snprintf(inner, sizeof inner, "%s.*", path);
        schema_walk(additional, inner, visit, context);
    }
    const json_t *items = json_object_get(node, "items");
    if (json_is_object(items)) {
        snprintf(inner, sizeof inner, "%s[]", path);
        schema_walk(items, inner, visit, context);
    }
}

static json_t *load_schema(void)
{
    json_error_t error;
    json_t *schema = json_load_file(PG_SCHEMA_FILE, JSON_REJECT_DUPLICATES, &error);
    if (schema == NULL)
        fail_msg("%s:%d: %s", PG_SCHEMA_FILE, error.line, error.text);
    return schema;
}

static json_t *hostport_json(const hostport *address)
{
    char text[HOSTPORT_TEXT_SIZE];
    hostport_format(address, text, sizeof text);
    return json_string(text);
}

/* "$body" when the template is exactly that (the whole body, as is). */
static json_t *data_json(const template *t)
{
    bool whole_body = t->count == 1 && t->items[0].kind == TEMPLATE_ITEM_SLOT &&
                      t->items[0].slot.source == TEMPLATE_SOURCE_BODY &&
                      t->items[0].slot.member_count == 0 &&
                      t->items[0].slot.conversion == TEMPLATE_CONVERT_NONE;
    return json_string(whole_body ? "$body" : "(another template)");
}

#define VALUE_OF(name, value)        \
    if (strcmp(path, (name)) == 0)   \
        return (value)
#define NUMBER(value) json_integer((json_int_t)(value))

/* The value of key `path` in cfg (loaded from schema_base_config, perhaps
 * with that key set), as JSON; NULL for a key this table does not know:
 * add a line for each key that has a default. */
static json_t *loaded_value(const config *cfg, const char *path)
{
    const config_limits *limits = &cfg->limits;
    const config_service *s = &cfg->services[0];
    const config_route *r = &cfg->routes[0];
    VALUE_OF("listen", hostport_json(&cfg->listen));
    VALUE_OF("docs_assets", json_string(config_docs_assets(cfg)));
    VALUE_OF("workers", NUMBER(cfg->workers));
    VALUE_OF("shutdown_grace_ms", NUMBER(cfg->shutdown_grace_ms));
    VALUE_OF("generic_api", json_boolean(s->generic_api));
    VALUE_OF("log.level", json_string(config_log_level_name(cfg->log_level)));
    VALUE_OF("log.access", json_boolean(cfg->log_access));
    VALUE_OF("log.access_admin", json_boolean(cfg->log_access_admin));
    VALUE_OF("log.debug_bytes", NUMBER(cfg->log_debug_bytes));
    VALUE_OF("limits.max_body_bytes", NUMBER(limits->max_body_bytes));
    VALUE_OF("limits.max_connections", NUMBER(limits->max_connections));
    VALUE_OF("limits.max_inflight", NUMBER(limits->max_inflight));
    VALUE_OF("limits.idle_timeout_ms", NUMBER(limits->idle_timeout_ms));
    VALUE_OF("limits.max_reply_bytes", NUMBER(limits->max_reply_bytes));
    VALUE_OF("limits.rate_limit_keys", NUMBER(limits->rate_limit_keys));
    VALUE_OF("auth.jwt.leeway_s", NUMBER(cfg->jwt->leeway_s));
    VALUE_OF("cors.allow_credentials", json_boolean(cfg->cors->allow_credentials));
    VALUE_OF("cors.max_age_s", NUMBER(cfg->cors->max_age_s));
    VALUE_OF("routes[].cors.allow_credentials", json_boolean(r->cors->allow_credentials));
    VALUE_OF("routes[].cors.max_age_s", NUMBER(r->cors->max_age_s));
    VALUE_OF("services.*.pool_size", NUMBER(s->pool_size));
    VALUE_OF("services.*.connect", json_string(config_connect_mode_name(s->connect)));
    VALUE_OF("services.*.connect_timeout_ms", NUMBER(s->connect_timeout_ms));
    VALUE_OF("services.*.timeout_ms", NUMBER(s->timeout_ms));
    VALUE_OF("services.*.retry_attempts", NUMBER(s->retry_attempts));
    VALUE_OF("services.*.retry_delay_ms", NUMBER(s->retry_delay_ms));
    VALUE_OF("services.*.max_message_bytes", NUMBER(s->max_message_bytes));
    VALUE_OF("services.*.incomplete_frame_timeout_ms", NUMBER(s->incomplete_frame_timeout_ms));
    VALUE_OF("services.*.metadata", json_boolean(s->metadata));
    VALUE_OF("services.*.balance", json_string(settings_balance_name(s->balance)));
    VALUE_OF("services.*.resolve_interval_ms", NUMBER(s->resolve_interval_ms));
    VALUE_OF("services.*.max_connection_age_ms", NUMBER(s->max_connection_age_ms));
    VALUE_OF("routes[].retries", NUMBER(r->retries));
    VALUE_OF("routes[].fanout", json_string(config_fanout_name(r->fanout)));
    VALUE_OF("services.*.tls.verify", json_boolean(s->tls->verify));
    VALUE_OF("routes[].kind", json_string(config_route_kind_name(r->kind)));
    VALUE_OF("routes[].reply", json_string(config_reply_mode_name(r->reply)));
    VALUE_OF("routes[].data", data_json(&r->data));
    return NULL;
}

/* Sets member `path` of doc to value (stolen): "*" steps into an object's
 * first member, "NAME[]" into array NAME's first element; missing objects
 * on the way are made. */
static void set_at_path(json_t *doc, const char *path, json_t *value)
{
    char copy[256];
    snprintf(copy, sizeof copy, "%s", path);
    json_t *at = doc;
    char *saved = NULL;
    char *token = strtok_r(copy, ".", &saved);
    for (char *next = strtok_r(NULL, ".", &saved); next != NULL;
         token = next, next = strtok_r(NULL, ".", &saved)) {
        size_t length = strlen(token);
        if (strcmp(token, "*") == 0) {
            at = json_object_iter_value(json_object_iter(at));
        } else if (length > 2 && strcmp(token + length - 2, "[]") == 0) {
            token[length - 2] = '\0';
            at = json_array_get(json_object_get(at, token), 0);
        } else {
            if (json_object_get(at, token) == NULL)
                json_object_set_new(at, token, json_object());
            at = json_object_get(at, token);
        }
        assert_non_null(at);
    }
    json_object_set_new(at, token, value);
}

typedef struct default_check {
    const config *base;  /* schema_base_config, loaded */
    size_t checked;      /* defaults compared */
} default_check;

static void check_one_default(const char *path, const json_t *node, void *context)
{
    default_check *check = context;
    const json_t *expected = json_object_get(node, "default");
    if (expected == NULL || strcmp(path, "services") == 0 || strcmp(path, "routes") == 0)
        return; /* "services": {} and "routes": [] hold for a config without them */
    /* The same config with the key set to the schema's default, explicitly. */
    json_error_t json_error;
    json_t *doc = json_loads(schema_base_config, 0, &json_error);
    assert_non_null(doc);
    set_at_path(doc, path, json_deep_copy(expected));
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    config *cfg = NULL;
    config_error error;
    int rc = config_load_string(text, strlen(text), NULL, &cfg, &error);
    free(text);
    json_t *absent = loaded_value(check->base, path);
    if (rc != 0 && absent == NULL && strstr(error.message, "unknown key") != NULL) {
        print_message("schema key %s: not known to the loader yet (skipped)\n", path);
        return;
    }
    if (rc != 0)
        fail_msg("schema default of %s: the loader says %s", path, error.message);
    if (absent == NULL)
        fail_msg("schema key %s has a default: add it to loaded_value()", path);
    json_t *given = loaded_value(cfg, path);
    char *shown = json_dumps(expected, JSON_ENCODE_ANY);
    if (!json_equal(absent, expected))
        fail_msg("schema default of %s is %s, not the loader's", path, shown);
    if (!json_equal(given, expected))
        fail_msg("schema default of %s (%s) loads as another value", path, shown);
    free(shown);
    json_decref(absent);
    json_decref(given);
    config_free(cfg);
    check->checked++;
}

static void test_schema_defaults_are_the_loaders(void **state)
{
    (void)state;
    json_t *schema = load_schema();
    config *base = must_load(schema_base_config);
    default_check check = {.base = base};
    schema_walk(schema, "", check_one_default, &check);
    assert_true(check.checked >= 28);
    config_free(base);
    json_decref(schema);
}

typedef struct enum_check {
    size_t found[16];
} enum_check;

static const struct {
    const char *path;
    const char *const *names;
    size_t count;
} loader_enums[] = {
    {"log.level", cfg_log_level_names, CFG_COUNT_OF(cfg_log_level_names)},
    {"services.*.connect", cfg_connect_names, CFG_COUNT_OF(cfg_connect_names)},
    {"services.*.balance", cfg_balance_names, 2},
    {"routes[].fanout", cfg_fanout_names, 2},
    {"routes[].method", cfg_method_names, CFG_COUNT_OF(cfg_method_names)},
    {"routes[].kind", cfg_route_kind_names, CFG_COUNT_OF(cfg_route_kind_names)},
    {"routes[].reply", cfg_reply_names, CFG_COUNT_OF(cfg_reply_names)},
    {"routes[].auth", cfg_route_auth_names, CFG_COUNT_OF(cfg_route_auth_names)},
    {"auth.jwt.algorithms[]", cfg_jwt_algorithm_names, CFG_COUNT_OF(cfg_jwt_algorithm_names)},
};

/* An enumerated key is {"anyOf": [{"enum": [...]}, {"$ref": ...envRef}]}. */
static void check_one_enum(const char *path, const json_t *node, void *context)
{
    enum_check *check = context;
    size_t index;
    json_t *choice;
    json_array_foreach (json_object_get(node, "anyOf"), index, choice) {
        const json_t *names = json_object_get(choice, "enum");
        if (names == NULL)
            continue;
        size_t which = 0;
        while (which < CFG_COUNT_OF(loader_enums) && strcmp(loader_enums[which].path, path) != 0)
            which++;
        if (which == CFG_COUNT_OF(loader_enums))
            fail_msg("schema enum at %s: add the loader's names to loader_enums", path);
        check->found[which]++;
        if (json_array_size(names) != loader_enums[which].count)
            fail_msg("schema enum at %s: %zu names, the loader has %zu", path,
                     json_array_size(names), loader_enums[which].count);
        for (size_t i = 0; i < loader_enums[which].count; i++)
            if (!json_is_string(json_array_get(names, i)) ||
                strcmp(json_string_value(json_array_get(names, i)),
                       loader_enums[which].names[i]) != 0)
                fail_msg("schema enum at %s: name %zu is not \"%s\"", path, i,
                         loader_enums[which].names[i]);
    }
}

static void test_schema_enums_are_the_loaders(void **state)
{
    (void)state;
    json_t *schema = load_schema();
    enum_check check = {{0}};
    schema_walk(schema, "", check_one_enum, &check);
    for (size_t i = 0; i < CFG_COUNT_OF(loader_enums); i++)
        if (check.found[i] != 1)
            fail_msg("schema: no enum at %s", loader_enums[i].path);
    json_decref(schema);
}

/* ---- every problem, with its position --------------------------------------- */

/* Loads json (single quotes become double) expecting a failure with the
 * problems `expected`: "LINE:COLUMN: path: reason" each, in order. */
static void assert_problems(const char *json, const char *const *expected, size_t count)
{
    config *cfg = (config *)1;
    config_error error;
    assert_int_equal(load_with_env(json, no_env, &cfg, &error), -1);
    assert_null(cfg);
    for (size_t i = 0; i < error.count && i < count; i++) {
        char line[2048];
        config_problem_format(&error, i, NULL, line, sizeof line);
        if (strcmp(line, expected[i]) != 0)
            fail_msg("problem %zu:\n  got      %s\n  expected %s", i, line, expected[i]);
    }
    if (error.count != count)
        fail_msg("%zu problems, expected %zu; the last: %s: %s", error.count, count,
                 error.problems[error.count - 1].path, error.problems[error.count - 1].reason);
    assert_false(error.truncated);
}

/* The config of the command-line test with three problems, one per part. */
static const char three_problems[] =
    "{\n"
    "  'listen': '127.0.0.1:8080',\n"
    "  'services': {\n"
    "    'users': { 'endpoints': ['127.0.0.1:3001'], 'timout_ms': 100 },\n"
    "    'orders': { 'endpoints': ['127.0.0.1:3002'] }\n"
    "  },\n"
    "  'routes': [\n"
    "    { 'method': 'GET', 'path': '/users/:id', 'service': 'users', 'pattern': 'get' },\n"
    "    { 'method': 'GET', 'path': '/orders', 'service': 'orders', 'pattern': 'list' },\n"
    "    { 'method': 'POST', 'path': '/users', 'service': 'user', 'pattern': 'create',\n"
    "      'status': 302 }\n"
    "  ]\n"
    "}\n";

static void test_every_problem_is_listed(void **state)
{
    (void)state;
    config *cfg = NULL;
    config_error error;
    assert_int_equal(load_with_env(three_problems, no_env, &cfg, &error), -1);
    assert_int_equal(error.count, 3);
    assert_false(error.truncated);
    const config_problem *p = error.problems;
    assert_int_equal(p[0].kind, CONFIG_ERROR_SCHEMA);
    assert_string_equal(p[0].path, "services.users.timout_ms");
    assert_string_equal(p[0].reason, "unknown key (did you mean timeout_ms?)");
    assert_int_equal(p[0].line, 4);
    assert_int_equal(p[0].column, 49);
    assert_string_equal(p[1].path, "routes[2].service");
    assert_string_equal(p[1].reason, "unknown service \"user\"; known: users, orders");
    assert_int_equal(p[1].line, 10);
    assert_int_equal(p[1].column, 43);
    assert_string_equal(p[2].path, "routes[2].status");
    assert_string_equal(p[2].reason, "expected an integer from 200 to 299");
    assert_int_equal(p[2].line, 11);
    assert_int_equal(p[2].column, 7);
    /* one message for the callers that show one: the first, as before */
    assert_int_equal(error.kind, CONFIG_ERROR_SCHEMA);
    assert_string_equal(error.message,
                        "services.users.timout_ms: unknown key (did you mean timeout_ms?)");
    char line[2048];
    config_problem_format(&error, 1, "main.json", line, sizeof line);
    assert_string_equal(line, "main.json:10:43: routes[2].service: unknown service \"user\"; "
                              "known: users, orders");
}

/* Listed by position in the file, not in the order the loader checks. */
static void test_problems_in_file_order(void **state)
{
    (void)state;
    static const char *const expected[] = {
        "2:3: routes[0].service: unknown service \"nope\"; no services are defined",
        "3:3: workers: expected a positive integer or \"auto\"",
        "4:3: listen: expected \"host:port\" (missing port)",
    };
    assert_problems("{'routes': [{'method': 'GET', 'path': '/a', 'pattern': 1,\n"
                    "  'service': 'nope'}],\n"
                    "  'workers': 0,\n"
                    "  'listen': 'x'}",
                    expected, 3);
}

static void test_at_most_twenty(void **state)
{
    (void)state;
    char json[1024] = "{";
    for (int i = 0; i < 25; i++)
        snprintf(json + strlen(json), sizeof json - strlen(json), "%s'bogus%d': %d",
                 i ? ",\n" : "", i, i);
    strcat(json, "}");
    config *cfg = NULL;
    config_error error;
    assert_int_equal(load_with_env(json, no_env, &cfg, &error), -1);
    assert_int_equal(error.count, CONFIG_ERRORS_MAX);
    assert_true(error.truncated);
    assert_string_equal(error.problems[0].path, "bogus0");
    assert_string_equal(error.problems[19].path, "bogus19");
    assert_int_equal(error.problems[19].line, 20);
    /* exactly twenty: all of them, nothing more */
    strcpy(json, "{");
    for (int i = 0; i < 20; i++)
        snprintf(json + strlen(json), sizeof json - strlen(json), "%s'bogus%d': %d",
                 i ? ", " : "", i, i);
    strcat(json, "}");
    assert_int_equal(load_with_env(json, no_env, &cfg, &error), -1);
    assert_int_equal(error.count, 20);
    assert_false(error.truncated);
}

/* A value with a problem gets one: an unset variable is not also a bad
 * address; a misspelt required key is not also missing. */
static void test_one_problem_per_value(void **state)
{
    (void)state;
    static const char *const unset[] = {
        "1:35: services.m.endpoints[0]: ${HOST} is not set",
        "1:49: services.m.timeout_ms: expected a positive integer",
    };
    assert_problems("{'services': {'m': {'endpoints': ['${HOST}:1'], 'timeout_ms': 0}}}", unset, 2);
    static const char *const misspelt[] = {
        "1:21: services.m.endpoint: unknown key (did you mean endpoints?)",
    };
    assert_problems("{'services': {'m': {'endpoint': ['h:1']}}}", misspelt, 1);
    /* a bad service name, and the service's fields still checked */
    static const char *const bad_name[] = {
        "1:15: services[\"m x\"]: bad service name (expected [A-Za-z0-9_.-]+)",
        "1:37: services[\"m x\"].endpoints[0]: expected \"host:port\" (missing port)",
    };
    assert_problems("{'services': {'m x': {'endpoints': ['nohost']}}}", bad_name, 2);
}

/* After a bad part the loader goes on; it skips only what needs that part. */
static void test_loading_goes_on(void **state)
{
    (void)state;
    /* an unknown service: the route's other fields are still checked */
    static const char *const unknown_service[] = {
        "1:217: routes[0].service: unknown service \"x\"; known: math, users",
        "1:233: routes[0].status: expected an integer from 200 to 299",
        "1:269: routes[0].data.id: $path.uid is not a capture of /u/:id",
    };
    assert_problems(WITH_ROUTES("{'method': 'GET', 'path': '/u/:id', 'service': 'x', 'status': 1,"
                                " 'pattern': 1, 'data': {'id': '$path.uid'}}"),
                    unknown_service, 3);
    /* a bad path: no check of the template (its captures are unknown), nor
     * of conflicts */
    static const char *const bad_path[] = {
        "1:199: routes[0].path: empty segment (//)",
        "1:297: routes[1].path: empty segment (//)",
    };
    assert_problems(WITH_ROUTES("{'method': 'GET', 'path': '/u//:id', 'service': 'math',"
                                " 'pattern': 1, 'data': {'id': '$path.id'}},"
                                "{'method': 'GET', 'path': '/u//:id', 'service': 'math',"
                                " 'pattern': 1}"),
                    bad_path, 2);
    /* a route with a method and a path still meets the conflict check */
    static const char *const conflict[] = {
        "1:213: routes[0].service: unknown service \"x\"; known: math, users",
        "1:243: routes[1]: conflicts with routes[0] (GET /c)",
    };
    assert_problems(WITH_ROUTES("{'method': 'GET', 'path': '/c', 'service': 'x', 'pattern': 1},"
                                "{'method': 'GET', 'path': '/c', 'service': 'math', 'pattern': 1}"),
                    conflict, 2);
}

/* A syntax error is one problem, at the likely cause. */
static void test_syntax_problem(void **state)
{
    (void)state;
    config *cfg = NULL;
    config_error error;
    config_load_options options = {.source_name = "main.json"};
    const char *text = "{\n  \"listen\": \"127.0.0.1:8080\"\n  \"workers\": 2\n}\n";
    assert_int_equal(config_load_string(text, strlen(text), &options, &cfg, &error), -1);
    assert_int_equal(error.count, 1);
    assert_int_equal(error.kind, CONFIG_ERROR_SYNTAX);
    assert_int_equal(error.problems[0].kind, CONFIG_ERROR_SYNTAX);
    assert_int_equal(error.problems[0].line, 2);
    assert_int_equal(error.problems[0].column, 29);
    assert_string_equal(error.problems[0].path, "");
    assert_string_equal(error.problems[0].reason, "missing comma after the value on line 2?");
    assert_string_equal(error.message, "main.json:2:29: missing comma after the value on line 2?");
    char line[2048];
    config_problem_format(&error, 0, "other.json", line, sizeof line);
    assert_string_equal(line, "other.json:2:29: missing comma after the value on line 2?");
    /* what jansson says is kept when no mistake explains it better */
    text = "{\"a\": \"\\q\"}";
    assert_int_equal(config_load_string(text, strlen(text), &options, &cfg, &error), -1);
    assert_int_equal(error.count, 1);
    assert_string_equal(error.message, "main.json:1:9: invalid escape near '\"\\q'");
}

static void test_problem_format(void **state)
{
    (void)state;
    config *cfg = NULL;
    config_error error;
    char line[2048];
    assert_int_equal(config_load_file("/nonexistent/pg.json", NULL, &cfg, &error), -1);
    assert_int_equal(error.count, 1);
    assert_int_equal(error.problems[0].line, 0);
    assert_string_equal(error.problems[0].reason, "No such file or directory");
    config_problem_format(&error, 0, "/nonexistent/pg.json", line, sizeof line);
    assert_string_equal(line, "/nonexistent/pg.json: No such file or directory");
    /* a schema problem: path and position, with or without a source */
    assert_int_equal(load_with_env("{\n 'workers': 0}", no_env, &cfg, &error), -1);
    config_problem_format(&error, 0, "f.json", line, sizeof line);
    assert_string_equal(line, "f.json:2:2: workers: expected a positive integer or \"auto\"");
    config_problem_format(&error, 0, NULL, line, sizeof line);
    assert_string_equal(line, "2:2: workers: expected a positive integer or \"auto\"");
    /* at the root, no path */
    assert_int_equal(load_with_env("[1]", no_env, &cfg, &error), -1);
    config_problem_format(&error, 0, "f.json", line, sizeof line);
    assert_string_equal(line, "f.json:1:1: expected a JSON object at the top level");
    /* cut short to the buffer, still a string */
    config_problem_format(&error, 0, "f.json", line, 8);
    assert_string_equal(line, "f.json:");
    /* a success leaves no problem from before */
    cfg = must_load("{}");
    config_free(cfg);
    assert_int_equal(load_with_env("{}", no_env, &cfg, &error), 0);
    assert_int_equal(error.count, 0);
    assert_int_equal(error.kind, CONFIG_ERROR_NONE);
    assert_false(error.truncated);
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_of_top_level_keys),
        cmocka_unit_test(test_defaults_of_service_keys),
        cmocka_unit_test(test_defaults_of_route_keys),
        cmocka_unit_test(test_embedded_default),
        cmocka_unit_test(test_spec_example),
        cmocka_unit_test(test_summary_singular),
        cmocka_unit_test(test_workers),
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_integer_limits),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_enum_values),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_substitution),
        cmocka_unit_test(test_substitution_in_pattern_and_data_not_keys),
        cmocka_unit_test(test_substitution_errors),
        cmocka_unit_test(test_substitution_uses_getenv_by_default),
        cmocka_unit_test(test_syntax_error_in_string),
        cmocka_unit_test(test_syntax_error_in_file),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_file_is_recorded),
        cmocka_unit_test(test_bearer_tokens),
        cmocka_unit_test(test_jwt_values),
        cmocka_unit_test(test_jwt_defaults),
        cmocka_unit_test(test_jwt_secret_from_environment),
        cmocka_unit_test(test_jwks_file_relative_to_config_file),
        cmocka_unit_test(test_jwt_errors),
        cmocka_unit_test(test_jwt_problems_accumulate),
        cmocka_unit_test(test_route_auth),
        cmocka_unit_test(test_require_claims),
        cmocka_unit_test(test_cors_values),
        cmocka_unit_test(test_cors_defaults_and_any_origin),
        cmocka_unit_test(test_route_cors),
        cmocka_unit_test(test_cors_errors),
        cmocka_unit_test(test_rate_limit_values),
        cmocka_unit_test(test_rate_limit_errors),
        cmocka_unit_test(test_route_edge_problems_accumulate),
        cmocka_unit_test(test_service_values),
        cmocka_unit_test(test_service_errors),
        cmocka_unit_test(test_tls_cert_without_key),
        cmocka_unit_test(test_tls_paths_relative_to_config_file),
        cmocka_unit_test(test_tls_paths_of_relative_config_file),
        cmocka_unit_test(test_tls_paths_of_string_load),
        cmocka_unit_test(test_generic_api),
        cmocka_unit_test(test_route_values),
        cmocka_unit_test(test_route_required_keys),
        cmocka_unit_test(test_route_errors),
        cmocka_unit_test(test_error_text_stays_on_one_line),
        cmocka_unit_test(test_route_conflicts),
        cmocka_unit_test(test_generic_api_paths),
        cmocka_unit_test(test_admin_paths),
        cmocka_unit_test(test_route_description_keys),
        cmocka_unit_test(test_docs_assets),
        cmocka_unit_test(test_enum_names),
        cmocka_unit_test(test_schema_key_is_ignored),
        cmocka_unit_test(test_schema_defaults_are_the_loaders),
        cmocka_unit_test(test_schema_enums_are_the_loaders),
        cmocka_unit_test(test_every_problem_is_listed),
        cmocka_unit_test(test_problems_in_file_order),
        cmocka_unit_test(test_at_most_twenty),
        cmocka_unit_test(test_one_problem_per_value),
        cmocka_unit_test(test_loading_goes_on),
        cmocka_unit_test(test_syntax_problem),
        cmocka_unit_test(test_problem_format),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
