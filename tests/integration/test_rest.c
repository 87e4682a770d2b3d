/* Route mapping for real REST APIs (SPEC.md), through the built binary
 * against the real Nest 12 books service of tests/nest/rest (DTOs checked
 * by a global ValidationPipe, {id, ...changes} updates, envelope replies),
 * and scripted raw upstreams for what no Nest service sends:
 *
 *   - a query DTO spread, a PATCH that changes only the members given,
 *     envelope replies (201 + Location, 404 with the service's own body,
 *     204, Cache-Control), the service's validation errors;
 *   - envelopes that are refused (header injection, reserved headers, a
 *     bad status) as 502 bad_upstream_message;
 *   - HEAD on GET routes: the GET's status and headers, no body, one
 *     packet; HEAD on a stream route: its head alone, no packet;
 *   - keep-alive after the gateway's own 404, 405, 401 and 400, on one TCP
 *     connection; what still closes (an unread body, 413);
 *   - a service with a custom serializer: 502 at once, naming the member,
 *     logged once per connection;
 *   - a reply packet without an id: the connection is dropped, its
 *     requests fail with 502.
 *
 * Every wait polls with a generous deadline; durations are asserted with
 * wide margins only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "support/deadline.h"
#include "support/gateway.h"
#include "support/gwtest.h"
#include "support/http.h"
#include "support/nest.h"
#include "support/net.h"

#define TOKEN "rest-test-token"

/* ---- what the running test owns (freed by the teardown after a failure) --- */

static struct gwproc *g_gw;
static struct nest_service *g_nest;
static struct testnet_upstream *g_raw;

static int teardown(void **state)
{
    (void)state;
    gwt_discard(g_gw);
    g_gw = NULL;
    testnet_upstream_stop(g_raw);
    g_raw = NULL;
    if (g_nest)
        nest_stop(g_nest);
    free(g_nest);
    g_nest = NULL;
    return 0;
}

/* Starts the books service (flag: NULL or "--custom-serializer"); its
 * address in BOOKS_ADDR=... form. */
static const char *start_books(const char *flag)
{
    static char env[64];
    nest_require("rest");
    g_nest = calloc(1, sizeof *g_nest);
    assert_non_null(g_nest);
    struct nest_options o = { .quiet = true, .flag = flag };
    if (nest_start("rest", &o, g_nest) != 0) {
        free(g_nest);
        g_nest = NULL;
        fail_msg("the books service did not start");
    }
    snprintf(env, sizeof env, "BOOKS_ADDR=127.0.0.1:%d", g_nest->port);
    return env;
}

/* The routes of a REST API over the books service. */
#define BOOKS_ROUTES                                                                                           \
    "    { \"method\": \"GET\", \"path\": \"/books\", \"service\": \"books\", \"pattern\": \"books.list\",\n"     \
    "      \"data\": { \"...\": \"$query\", \"limit\": \"$query.limit:int?\" } },\n"                               \
    "    { \"method\": \"GET\", \"path\": \"/books.ndjson\", \"service\": \"books\", \"pattern\": \"books.list\",\n" \
    "      \"reply\": \"ndjson\" },\n"                                                                             \
    "    { \"method\": \"GET\", \"path\": \"/books/:id\", \"service\": \"books\", \"pattern\": \"books.get\",\n"   \
    "      \"data\": { \"id\": \"$path.id:int\" }, \"reply\": \"envelope\" },\n"                                   \
    "    { \"method\": \"POST\", \"path\": \"/books\", \"service\": \"books\", \"pattern\": \"books.create\",\n"  \
    "      \"reply\": \"envelope\" },\n"                                                                           \
    "    { \"method\": \"PATCH\", \"path\": \"/books/:id\", \"service\": \"books\", \"pattern\": \"books.update\",\n" \
    "      \"data\": { \"...\": \"$body\", \"id\": \"$path.id:int\" } },\n"                                        \
    "    { \"method\": \"DELETE\", \"path\": \"/books/:id\", \"service\": \"books\", \"pattern\": \"books.delete\",\n" \
    "      \"data\": { \"id\": \"$path.id:int\" }, \"reply\": \"envelope\" },\n"                                   \
    "    { \"method\": \"POST\", \"path\": \"/reset\", \"service\": \"books\", \"pattern\": \"books.reset\" },\n"  \
    "    { \"method\": \"POST\", \"path\": \"/envelope\", \"service\": \"books\", \"pattern\": \"books.echo\",\n"  \
    "      \"reply\": \"envelope\", \"status\": 202 }\n"

static const char CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"log\": { \"level\": \"info\", \"access\": true },\n"
    "  \"limits\": { \"max_body_bytes\": 4096 },\n"
    "  \"generic_api\": [\"books\"],\n"
    "  \"services\": { \"books\": { \"endpoints\": [\"${BOOKS_ADDR}\"], \"timeout_ms\": 5000, \"pool_size\": 1 } },\n"
    "  \"routes\": [\n" BOOKS_ROUTES "  ] }\n";

/* The same behind a bearer token (for 401s on a keep-alive connection). */
static const char CONFIG_AUTH[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"log\": { \"level\": \"info\", \"access\": true },\n"
    "  \"limits\": { \"max_body_bytes\": 4096 },\n"
    "  \"auth\": { \"bearer_tokens\": [\"" TOKEN "\"] },\n"
    "  \"services\": { \"books\": { \"endpoints\": [\"${BOOKS_ADDR}\"], \"timeout_ms\": 5000 } },\n"
    "  \"routes\": [\n" BOOKS_ROUTES "  ] }\n";

static int start_gateway(const char *config, const char *books_env)
{
    const char *env[] = { books_env, NULL };
    struct gwproc_options o = { .ready_on_admin = true };
    g_gw = gwt_start(config, env, &o);
    return g_gw->port;
}

static void stop_gateway(void)
{
    gwt_stop(g_gw);
    g_gw = NULL;
}

/* The books service and a gateway in front of it, the books as seeded. */
static int books_gateway(const char *config)
{
    int port = start_gateway(config, start_books(NULL));
    if (config == CONFIG)
        gwt_check_json(port, "POST", "/reset", NULL, 200,
                       "[{\"id\":1,\"title\":\"Dune\",\"author\":\"Frank Herbert\",\"rating\":5},"
                       "{\"id\":2,\"title\":\"Emma\",\"author\":\"Jane Austen\",\"rating\":4}]");
    return port;
}

static const char DUNE[] = "{\"id\":1,\"title\":\"Dune\",\"author\":\"Frank Herbert\",\"rating\":5}";
static const char EMMA[] = "{\"id\":2,\"title\":\"Emma\",\"author\":\"Jane Austen\",\"rating\":4}";

/* The service's own 400 from its ValidationPipe: upstream_error with the
 * RpcException's object as details, whose message names `part`. */
static void expect_validation_error(struct http_response *r, const char *what, const char *part)
{
    json_t *j = gwt_expect_error_json(r, what, 400, "upstream_error");
    json_t *details = json_object_get(j, "details");
    char *text = json_dumps(details, JSON_COMPACT);
    if (!json_is_object(details) || json_integer_value(json_object_get(details, "statusCode")) != 400 ||
        !text || !strstr(text, part))
        gwt_fail_response(r, what, "details are not the service's validation error naming %s", part);
    free(text);
    json_decref(j);
    http_response_free(r);
}

/* ---- a REST API over a real Nest service -------------------------------------- */

/* GET /books with a query DTO: every parameter spread, limit as a number
 * and left out when absent; the service's ValidationPipe sees the DTO. */
static void query_dto_spread(void **state)
{
    (void)state;
    int port = books_gateway(CONFIG);
    char both[256];
    snprintf(both, sizeof both, "[%s,%s]", DUNE, EMMA);
    gwt_check_json(port, "GET", "/books", NULL, 200, both);
    gwt_check_json(port, "GET", "/books?limit=1", NULL, 200, (snprintf(both, sizeof both, "[%s]", DUNE), both));
    gwt_check_json(port, "GET", "/books?author=Jane+Austen", NULL, 200,
                   (snprintf(both, sizeof both, "[%s]", EMMA), both));
    gwt_check_json(port, "GET", "/books?author=Jane%20Austen&limit=5", NULL, 200, both);
    /* the gateway's conversion: 400 before the service */
    struct http_response r = gwt_req(port, "GET", "/books?limit=many", NULL);
    json_t *j = gwt_expect_error_json(&r, "GET /books?limit=many", 400, "bad_request");
    if (!strstr(json_string_value(json_object_get(j, "message")), "limit"))
        gwt_fail_response(&r, "GET /books?limit=many", "the message does not name limit");
    json_decref(j);
    http_response_free(&r);
    /* the service's DTO rules, through the spread */
    r = gwt_req(port, "GET", "/books?limit=0", NULL);
    expect_validation_error(&r, "GET /books?limit=0 (Min(1))", "limit must not be less than 1");
    r = gwt_req(port, "GET", "/books?color=red", NULL);
    expect_validation_error(&r, "GET /books?color=red (forbidNonWhitelisted)", "property color should not exist");
    stop_gateway();
}

/* POST /books: the handler's envelope answers 201 with a Location; a DTO
 * that fails validation is the service's 400. */
static void create_answers_201_and_location(void **state)
{
    (void)state;
    int port = books_gateway(CONFIG);
    struct http_response r = gwt_req(port, "POST", "/books", "{\"title\":\"Persuasion\",\"author\":\"Jane Austen\"}");
    gwt_expect_body(&r, "POST /books", 201,
                    "{\"id\":3,\"title\":\"Persuasion\",\"author\":\"Jane Austen\",\"rating\":null}");
    const char *location = http_header(&r, "Location");
    if (!location || strcmp(location, "/books/3") != 0)
        gwt_fail_response(&r, "POST /books", "Location is not /books/3");
    if (http_header_count(&r, "Content-Type") != 1)
        gwt_fail_response(&r, "POST /books", "not exactly one Content-Type");
    http_response_free(&r);
    gwt_check_json(port, "GET", "/books/3", NULL, 200,
                   "{\"id\":3,\"title\":\"Persuasion\",\"author\":\"Jane Austen\",\"rating\":null}");
    r = gwt_req(port, "POST", "/books", "{\"title\":\"\",\"author\":\"Anon\",\"rating\":9}");
    expect_validation_error(&r, "POST /books with a bad DTO", "title should not be empty");
    r = gwt_req(port, "POST", "/books", "{\"title\":\"\",\"author\":\"Anon\",\"rating\":9}");
    expect_validation_error(&r, "POST /books with a bad DTO", "rating must not be greater than 5");
    stop_gateway();
}

/* PATCH /books/:id with {"...": "$body", "id": "$path.id:int"}: only the
 * members sent change; the path's id wins over a body's. */
static void patch_changes_only_what_was_sent(void **state)
{
    (void)state;
    int port = books_gateway(CONFIG);
    gwt_check_json(port, "PATCH", "/books/2", "{\"rating\":5}", 200,
                   "{\"id\":2,\"title\":\"Emma\",\"author\":\"Jane Austen\",\"rating\":5}");
    struct http_response r = gwt_req(port, "GET", "/books/2", NULL);
    gwt_expect_json(&r, "GET /books/2 after the PATCH", 200,
                    "{\"id\":2,\"title\":\"Emma\",\"author\":\"Jane Austen\",\"rating\":5}");
    const char *cache = http_header(&r, "Cache-Control");
    if (!cache || strcmp(cache, "max-age=60") != 0)
        gwt_fail_response(&r, "GET /books/2", "Cache-Control is not the envelope's max-age=60");
    http_response_free(&r);
    gwt_check_json(port, "PATCH", "/books/2", "{\"id\":1,\"title\":\"Emma (2nd ed.)\"}", 200,
                   "{\"id\":2,\"title\":\"Emma (2nd ed.)\",\"author\":\"Jane Austen\",\"rating\":5}");
    gwt_check_json(port, "GET", "/books/1", NULL, 200, DUNE); /* untouched */
    /* a member the DTO does not have, a bad value: the service's 400 */
    r = gwt_req(port, "PATCH", "/books/2", "{\"pages\":300}");
    expect_validation_error(&r, "PATCH with an unknown member", "property pages should not exist");
    r = gwt_req(port, "PATCH", "/books/2", "{\"rating\":\"five\"}");
    expect_validation_error(&r, "PATCH with a bad rating", "rating must be an integer number");
    /* a spread of a non-object: the gateway's 400 */
    gwt_check_error(port, "PATCH", "/books/2", "[1]", 400, "bad_request");
    /* the handler's RpcException 404 */
    r = gwt_req(port, "PATCH", "/books/99", "{\"rating\":1}");
    json_t *j = gwt_expect_error_json(&r, "PATCH /books/99", 404, "upstream_error");
    json_decref(j);
    http_response_free(&r);
    stop_gateway();
}

/* Envelopes of a missing book (404 without an exception: the service's own
 * body, not the gateway's error) and of a delete (204, no body). */
static void envelope_404_and_204(void **state)
{
    (void)state;
    int port = books_gateway(CONFIG);
    struct http_response r = gwt_req(port, "GET", "/books/42", NULL);
    gwt_expect_body(&r, "GET /books/42", 404, "{\"statusCode\":404,\"message\":\"no book 42\"}");
    if (http_header(&r, "Cache-Control"))
        gwt_fail_response(&r, "GET /books/42", "a Cache-Control the envelope did not set");
    http_response_free(&r);
    r = gwt_req(port, "DELETE", "/books/1", NULL);
    gwt_expect_body(&r, "DELETE /books/1", 204, "");
    if (http_header(&r, "Content-Type") || r.body_len)
        gwt_fail_response(&r, "DELETE /books/1", "a 204 with content");
    http_response_free(&r);
    r = gwt_req(port, "GET", "/books/1", NULL);
    gwt_expect_body(&r, "GET /books/1 after the DELETE", 404, "{\"statusCode\":404,\"message\":\"no book 1\"}");
    http_response_free(&r);
    stop_gateway();
}

/* Envelopes the gateway refuses: 502 bad_upstream_message saying why; and
 * what it accepts (a string body, a Content-Type of its own, the route's
 * status by default), through the real service echoing its input. */
static void envelope_rules_end_to_end(void **state)
{
    (void)state;
    int port = books_gateway(CONFIG);
    static const struct {
        const char *envelope, *part;
    } bad[] = {
        { "{\"headers\":{\"Location\":\"/x\\r\\nSet-Cookie: admin=1\"}}", "control character" },
        { "{\"headers\":{\"X-A\\r\\nX-B\":\"1\"}}", "is not an HTTP token" },
        { "{\"headers\":{\"Transfer-Encoding\":\"chunked\"}}", "may not set the header \"Transfer-Encoding\"" },
        { "{\"headers\":{\"content-length\":\"0\"}}", "may not set the header \"content-length\"" },
        { "{\"headers\":{\"Connection\":\"close\"}}", "may not set the header \"Connection\"" },
        { "{\"headers\":{\"X-Request-Id\":\"forged\"}}", "may not set the header \"X-Request-Id\"" },
        { "{\"status\":700}", "status 700 is not an integer from 200 to 599" },
        { "{\"status\":199}", "status 199" },
        { "{\"status\":\"201\"}", "is not an integer from 200 to 599" },
        { "{\"status\":201,\"data\":1}", "the member \"data\"" },
        { "[1,2]", "the envelope is an array" },
        { "\"text\"", "the envelope is a string" },
        { "{\"headers\":{\"X-A\":\"1\",\"x-a\":\"2\"}}", "given twice" },
        { "{\"headers\":{\"X-Empty\":\"\"}}", "has an empty value" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct http_response r = gwt_req(port, "POST", "/envelope", bad[i].envelope);
        json_t *j = gwt_expect_error_json(&r, bad[i].envelope, 502, "bad_upstream_message");
        const char *message = json_string_value(json_object_get(j, "message"));
        if (!strstr(message, bad[i].part) || !strstr(message, "service books"))
            gwt_fail_response(&r, bad[i].envelope, "the message does not say \"%s\"", bad[i].part);
        if (http_header(&r, "Set-Cookie") || http_header(&r, "X-B"))
            gwt_fail_response(&r, bad[i].envelope, "an injected header went out");
        json_decref(j);
        http_response_free(&r);
    }
    /* the echo of `undefined`: no reply value at all, refused as well */
    gwt_check_error(port, "POST", "/envelope", NULL, 502, "bad_upstream_message");
    /* accepted ones */
    struct http_response r = gwt_req(port, "POST", "/envelope", "{\"body\":\"a \\\"string\\\"\"}");
    gwt_expect_body(&r, "a string body", 202, "\"a \\\"string\\\"\""); /* the route's status, a JSON string */
    http_response_free(&r);
    r = gwt_req(port, "POST", "/envelope",
                "{\"status\":200,\"headers\":{\"Content-Type\":\"text/plain; charset=utf-8\",\"ETag\":\"\\\"v1\\\"\"},"
                "\"body\":\"hi\"}");
    if (r.status != 200 || strcmp(r.body, "\"hi\"") != 0 || !http_header(&r, "Content-Type") ||
        strcmp(http_header(&r, "Content-Type"), "text/plain; charset=utf-8") != 0 ||
        http_header_count(&r, "Content-Type") != 1 || !http_header(&r, "ETag") ||
        strcmp(http_header(&r, "ETag"), "\"v1\"") != 0)
        gwt_fail_response(&r, "an envelope with its own Content-Type", "not as the envelope said");
    http_response_free(&r);
    r = gwt_req(port, "POST", "/envelope", "{\"status\":304,\"body\":{\"dropped\":true}}");
    if (r.status != 304 || r.body_len != 0)
        gwt_fail_response(&r, "a 304 envelope with a body", "a body went out");
    http_response_free(&r);
    r = gwt_req(port, "POST", "/envelope", "{\"headers\":{\"X-Total\":\"0\"}}");
    if (r.status != 202 || r.body_len != 0 || !http_header(&r, "X-Total") || http_header(&r, "Content-Type"))
        gwt_fail_response(&r, "an envelope without a body", "not an empty 202 with X-Total");
    http_response_free(&r);
    /* the generic API takes ?reply=envelope too */
    r = gwt_req(port, "POST", "/v1/send/books?reply=envelope",
                "{\"pattern\":\"books.get\",\"data\":{\"id\":1}}");
    gwt_expect_json(&r, "the generic API with ?reply=envelope", 200, DUNE);
    if (!http_header(&r, "Cache-Control"))
        gwt_fail_response(&r, "the generic API with ?reply=envelope", "no Cache-Control");
    http_response_free(&r);
    gwt_check_json(port, "POST", "/v1/send/books?reply=envelope", "{\"pattern\":\"books.get\",\"data\":{\"id\":9}}",
                   404, "{\"statusCode\":404,\"message\":\"no book 9\"}");
    stop_gateway();
}

/* ---- HEAD ----------------------------------------------------------------------- */

/* The upstream sends of service books that succeeded. */
static double sends_ok(int admin_port)
{
    gwt_scrape_t s = gwt_scrape(admin_port, NULL);
    double v = gwt_metric_or(&s, "patterngate_upstream_requests_total",
                             "{\"service\":\"books\",\"kind\":\"send\",\"outcome\":\"ok\"}", 0);
    gwt_scrape_free(&s);
    return v;
}

/* The headers of a and b are the same, but for Date and X-Request-Id. */
static void expect_same_headers(const struct http_response *get, const struct http_response *head, const char *what)
{
    if (get->nheaders != head->nheaders)
        gwt_fail_response(head, what, "%zu headers, the GET had %zu", head->nheaders, get->nheaders);
    for (size_t i = 0; i < get->nheaders; i++) {
        const char *name = get->headers[i].name;
        if (strcasecmp(name, "Date") == 0 || strcasecmp(name, "X-Request-Id") == 0)
            continue;
        const char *v = http_header(head, name);
        if (!v || strcmp(v, get->headers[i].value) != 0)
            gwt_fail_response(head, what, "header %s is %s, the GET's is %s", name, v ? v : "absent",
                              get->headers[i].value);
    }
}

/* One request on c; fails the test when no response comes. */
static struct http_response on_conn(struct http_conn *c, const char *method, const char *path,
                                    const char *const *headers, const char *body)
{
    struct http_request req = { .method = method, .path = path, .headers = headers, .body = body,
                                .body_len = body ? strlen(body) : 0 };
    struct http_response r;
    int rc = http_request(c, &req, &r, GWT_REQ_TIMEOUT_MS);
    if (rc != 0) {
        gwt_print_log_tail();
        fail_msg("%s %s on the kept connection: %s", method, path, strerror(-rc));
    }
    return r;
}

/* The access line of a request id, once it is written. */
static json_t *access_line(const char *request_id)
{
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    for (;;) {
        json_t *lines = gwt_log_lines(g_gw, false), *access = gwt_log_find(lines, "access", NULL), *l, *found = NULL;
        size_t i;
        json_array_foreach(access, i, l) {
            const char *id = gwt_str(l, "request_id");
            if (id && strcmp(id, request_id) == 0)
                found = json_incref(l);
        }
        json_decref(access);
        json_decref(lines);
        if (found)
            return found;
        if (deadline_now_ms() > deadline)
            fail_msg("no access line for request %s", request_id);
        usleep(GWT_POLL_PAUSE_MS * 1000);
    }
}

/* HEAD on every GET route: the GET's status and headers (Content-Length
 * of the GET's body), no body, one packet to the service, logged as HEAD;
 * on one keep-alive connection, so a stray body byte would break the next
 * response. */
static void head_is_get_without_the_body(void **state)
{
    (void)state;
    int port = books_gateway(CONFIG);
    static const char *const paths[] = { "/books/1", "/books/42", "/books?limit=1" };
    struct http_conn *c = NULL;
    assert_int_equal(http_connect(port, GWT_REQ_TIMEOUT_MS, &c), 0);
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct http_response get = on_conn(c, "GET", paths[i], NULL, NULL);
        double before = sends_ok(g_gw->admin_port);
        struct http_response head = on_conn(c, "HEAD", paths[i], NULL, NULL);
        if (head.status != get.status || head.body_len != 0 || head.conn_closed)
            gwt_fail_response(&head, paths[i], "HEAD: status %d (GET: %d), %zu body bytes", head.status,
                              get.status, head.body_len);
        char length[32];
        snprintf(length, sizeof length, "%zu", get.body_len);
        const char *cl = http_header(&head, "Content-Length");
        if (!cl || strcmp(cl, length) != 0)
            gwt_fail_response(&head, paths[i], "Content-Length is not the GET body's %s", length);
        expect_same_headers(&get, &head, paths[i]);
        if (sends_ok(g_gw->admin_port) - before != 1)
            fail_msg("HEAD %s: %.0f packets to the service, expected 1", paths[i], sends_ok(g_gw->admin_port) - before);
        json_t *line = access_line(http_header(&head, "X-Request-Id"));
        if (strcmp(gwt_str(line, "method"), "HEAD") != 0 || json_integer_value(json_object_get(line, "bytes")) != 0 ||
            json_integer_value(json_object_get(line, "status")) != head.status)
            gwt_fail_json(line, "the access line of HEAD %s", paths[i]);
        json_decref(line);
        http_response_free(&get);
        http_response_free(&head);
    }
    /* still the same connection: the next GET is whole */
    struct http_response r = on_conn(c, "GET", "/books/2", NULL, NULL);
    gwt_expect_json(&r, "GET after the HEADs on the same connection", 200, EMMA);
    http_response_free(&r);
    http_close(c);
    /* counted under its method */
    gwt_scrape_t s = gwt_scrape(g_gw->admin_port, NULL);
    gwt_expect_metric(&s, "patterngate_http_requests_total",
                      "{\"route\":\"/books/:id\",\"method\":\"HEAD\",\"code\":\"200\"}", 1);
    gwt_expect_metric(&s, "patterngate_http_requests_total",
                      "{\"route\":\"/books/:id\",\"method\":\"HEAD\",\"code\":\"404\"}", 1);
    gwt_scrape_free(&s);
    /* HEAD where only POST is: 405 naming POST; Allow lists HEAD with GET */
    r = gwt_req(port, "HEAD", "/reset", NULL);
    if (r.status != 405 || !http_header(&r, "Allow") || strcmp(http_header(&r, "Allow"), "POST") != 0)
        gwt_fail_response(&r, "HEAD /reset", "not 405 with Allow: POST");
    http_response_free(&r);
    r = gwt_req(port, "PUT", "/books", NULL);
    if (r.status != 405 || strcmp(http_header(&r, "Allow") ? http_header(&r, "Allow") : "", "GET, HEAD, POST") != 0)
        gwt_fail_response(&r, "PUT /books", "not 405 with Allow: GET, HEAD, POST");
    http_response_free(&r);
    stop_gateway();
}

/* HEAD on a stream route: the stream's status and headers, no packet, no
 * length (the connection closes after it); GET streams as before. */
static void head_on_a_stream_route(void **state)
{
    (void)state;
    int port = books_gateway(CONFIG);
    double before = sends_ok(g_gw->admin_port);
    struct http_response r = gwt_req(port, "HEAD", "/books.ndjson", NULL);
    const char *type = http_header(&r, "Content-Type");
    if (r.status != 200 || !type || strcmp(type, "application/x-ndjson") != 0 || r.body_len != 0 ||
        http_header(&r, "Content-Length") || http_header(&r, "Transfer-Encoding") || !r.conn_closed ||
        !http_header(&r, "X-Request-Id"))
        gwt_fail_response(&r, "HEAD /books.ndjson", "not the stream's head alone");
    http_response_free(&r);
    if (sends_ok(g_gw->admin_port) != before)
        fail_msg("HEAD on a stream route sent a packet");
    r = gwt_req(port, "GET", "/books.ndjson", NULL);
    char lines[256];
    snprintf(lines, sizeof lines, "[%s,%s]\n", DUNE, EMMA); /* one value, the array: one line */
    if (r.status != 200 || strcmp(r.body, lines) != 0 || !r.chunked)
        gwt_fail_response(&r, "GET /books.ndjson", "not the stream");
    http_response_free(&r);
    stop_gateway();
}

/* ---- keep-alive after the gateway's own answers -------------------------------------- */

/* One connection carries 404, 405, 401, 400 and HEAD 404 answered by the
 * gateway itself, between ordinary requests: the client sees no close,
 * and the gateway counts one client connection. */
static void keep_alive_survives_gateway_errors(void **state)
{
    (void)state;
    int port = books_gateway(CONFIG_AUTH);
    const char *const token[] = { "Authorization: Bearer " TOKEN, NULL };
    struct http_conn *c = NULL;
    assert_int_equal(http_connect(port, GWT_REQ_TIMEOUT_MS, &c), 0);
    static const struct {
        const char *method, *path;
        bool with_token;
        int status;
    } seq[] = {
        { "GET", "/books/1", true, 200 },    { "GET", "/nowhere", true, 404 },  { "PUT", "/books", true, 405 },
        { "GET", "/books", false, 401 },     { "HEAD", "/nowhere", true, 404 }, { "GET", "/books/x", true, 400 },
        { "DELETE", "/books", true, 405 },   { "GET", "/books/42", true, 404 }, { "GET", "/v1/send/x", true, 404 },
        { "GET", "/books/2", true, 200 },
    };
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        struct http_response r = on_conn(c, seq[i].method, seq[i].path, seq[i].with_token ? token : NULL, NULL);
        if (r.status != seq[i].status || r.conn_closed || http_header(&r, "Connection"))
            gwt_fail_response(&r, seq[i].path, "request %zu on the kept connection: expected %d and no close", i,
                              seq[i].status);
        http_response_free(&r);
    }
    json_t *st = gwt_status(g_gw->admin_port, NULL);
    gwt_expect_int(st, "http_connections", 1, "/status with one client connection"); /* the admin's not counted */
    json_decref(st);
    /* a body the gateway does not read: the connection closes after the answer */
    struct http_response r = on_conn(c, "POST", "/nowhere", token, "{\"unread\":true}");
    if (r.status != 404 || !r.conn_closed)
        gwt_fail_response(&r, "POST /nowhere with a body", "expected 404 and a close");
    http_response_free(&r);
    http_close(c);
    /* 413 for a declared length: closes, the body is never read */
    const char *const big[] = { "Authorization: Bearer " TOKEN, "Content-Length: 100000", NULL };
    assert_int_equal(http_connect(port, GWT_REQ_TIMEOUT_MS, &c), 0);
    r = on_conn(c, "POST", "/books", big, NULL); /* the head alone: the body is never sent */
    if (r.status != 413 || !r.conn_closed)
        gwt_fail_response(&r, "POST with Content-Length 100000", "expected 413 and a close");
    http_response_free(&r);
    http_close(c);
    /* a chunked body past the limit is read and dropped: 413, and the connection closes */
    assert_int_equal(http_connect(port, GWT_REQ_TIMEOUT_MS, &c), 0);
    char *body = malloc(8192);
    assert_non_null(body);
    memset(body, ' ', 8192);
    body[0] = '[';
    body[8191] = ']';
    struct http_request req = { .method = "POST", .path = "/books", .headers = token, .body = body,
                                .body_len = 8192, .chunk_size = 1000 };
    assert_int_equal(http_request(c, &req, &r, GWT_REQ_TIMEOUT_MS), 0);
    if (r.status != 413 || !r.conn_closed)
        gwt_fail_response(&r, "a chunked body past max_body_bytes", "expected 413 and a close");
    http_response_free(&r);
    free(body);
    http_close(c);
    stop_gateway();
}

/* ---- services that do not send Nest reply packets ----------------------------------- */

/* A custom serializer ({id, result, failure} packets): each request fails
 * at once (far within timeout_ms) with 502 naming "result"; the packet is
 * logged once per connection, which stays up. */
static void custom_serializer_fails_fast(void **state)
{
    (void)state;
    int port = start_gateway(CONFIG, start_books("--custom-serializer"));
    for (int i = 0; i < 3; i++) {
        int64_t started = deadline_now_ms();
        struct http_response r = gwt_req(port, "GET", "/books/1", NULL);
        int64_t took = deadline_now_ms() - started;
        json_t *j = gwt_expect_error_json(&r, "GET /books/1 from a custom serializer", 502, "bad_upstream_message");
        const char *message = json_string_value(json_object_get(j, "message"));
        if (!strstr(message, "result") || !strstr(message, "books"))
            gwt_fail_response(&r, "GET /books/1", "the message does not name the member \"result\"");
        if (took > 2000) /* timeout_ms is 5000 */
            gwt_fail_response(&r, "GET /books/1", "took %lld ms: not at once", (long long)took);
        json_decref(j);
        http_response_free(&r);
    }
    json_t *lines = gwt_log_lines(g_gw, true);
    json_t *warned = gwt_log_find(lines, "upstream reply is not a Nest reply packet", "warn");
    if (json_array_size(warned) != 1)
        gwt_fail_json(lines, "%zu warn lines about the reply, expected 1 (one connection)", json_array_size(warned));
    const char *reply = gwt_str(json_array_get(warned, 0), "reply");
    if (!reply || !strstr(reply, "\"result\""))
        gwt_fail_json(warned, "the line does not show the packet");
    json_t *dropped = gwt_log_find(lines, "upstream disconnected", NULL);
    if (json_array_size(dropped) != 0)
        gwt_fail_json(dropped, "the connection was dropped");
    json_decref(dropped);
    json_decref(warned);
    json_decref(lines);
    stop_gateway();
}

/* A raw service: the first connection reads two requests, then answers
 * with a packet that has no id, and waits for the gateway to close it. */
typedef struct no_id_script {
    atomic_int frames;       /* requests read on the first connection */
    atomic_int closed;       /* the gateway closed it */
} no_id_script_t;

static void no_id_peer(struct testnet_peer *peer, void *arg)
{
    no_id_script_t *s = arg;
    if (peer->index != 0) {
        testnet_peer_wait_closed(peer, -1);
        return;
    }
    for (int i = 0; i < 2; i++) {
        char *json = NULL;
        if (testnet_read_frame(&peer->reader, &json, 30000) < 0)
            return;
        free(json);
        atomic_fetch_add(&s->frames, 1);
    }
    testnet_peer_send_frame(peer, "{\"response\":{\"ok\":true},\"isDisposed\":true}");
    if (testnet_peer_wait_closed(peer, 30000) == 0)
        atomic_store(&s->closed, 1);
}

static const char RAW_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"log\": { \"level\": \"info\" },\n"
    "  \"services\": { \"raw\": { \"endpoints\": [\"${RAW_ADDR}\"], \"timeout_ms\": 20000, \"pool_size\": 1 } },\n"
    "  \"routes\": [ { \"method\": \"POST\", \"path\": \"/raw\", \"service\": \"raw\", \"pattern\": \"raw\" } ] }\n";

/* A reply packet without an id breaks the protocol: the connection is
 * dropped and both requests on it fail with 502 at once. */
static void packet_without_id_drops_the_connection(void **state)
{
    (void)state;
    static no_id_script_t script;
    atomic_store(&script.frames, 0);
    atomic_store(&script.closed, 0);
    assert_int_equal(testnet_upstream_start(no_id_peer, &script, &g_raw), 0);
    char env[64];
    snprintf(env, sizeof env, "RAW_ADDR=127.0.0.1:%d", testnet_upstream_port(g_raw));
    int port = start_gateway(RAW_CONFIG, env);
    int64_t started = deadline_now_ms();
    gwt_bg_t *first = gwt_bg_start(port, "POST", "/raw", "{\"n\":1}");
    struct http_response r = gwt_req(port, "POST", "/raw", "{\"n\":2}");
    gwt_bg_join(first);
    int64_t took = deadline_now_ms() - started;
    struct http_response *both[] = { &first->resp, &r };
    for (int i = 0; i < 2; i++) {
        json_t *j = gwt_expect_error_json(both[i], "a request on the connection", 502, "bad_upstream_message");
        if (!strstr(json_string_value(json_object_get(j, "message")), "id"))
            gwt_fail_response(both[i], "a request on the connection", "the message does not say the id is missing");
        json_decref(j);
    }
    if (took > 10000) /* timeout_ms is 20000 */
        fail_msg("the requests failed after %lld ms: not when the packet came", (long long)took);
    assert_int_equal(atomic_load(&script.frames), 2);
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    while (!atomic_load(&script.closed) && deadline_now_ms() < deadline)
        usleep(GWT_POLL_PAUSE_MS * 1000);
    if (!atomic_load(&script.closed))
        fail_msg("the gateway kept the connection that sent a packet without an id");
    json_t *lines = gwt_log_lines(g_gw, true);
    json_t *dropped = gwt_log_find(lines, "upstream disconnected", NULL);
    if (json_array_size(dropped) < 1)
        gwt_fail_json(lines, "no line says the connection was dropped");
    json_decref(dropped);
    json_decref(lines);
    http_response_free(&r);
    gwt_bg_free(first);
    stop_gateway();
    testnet_upstream_stop(g_raw);
    g_raw = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(query_dto_spread, teardown),
        cmocka_unit_test_teardown(create_answers_201_and_location, teardown),
        cmocka_unit_test_teardown(patch_changes_only_what_was_sent, teardown),
        cmocka_unit_test_teardown(envelope_404_and_204, teardown),
        cmocka_unit_test_teardown(envelope_rules_end_to_end, teardown),
        cmocka_unit_test_teardown(head_is_get_without_the_body, teardown),
        cmocka_unit_test_teardown(head_on_a_stream_route, teardown),
        cmocka_unit_test_teardown(keep_alive_survives_gateway_errors, teardown),
        cmocka_unit_test_teardown(custom_serializer_fails_fast, teardown),
        cmocka_unit_test_teardown(packet_without_id_drops_the_connection, teardown),
    };
    return cmocka_run_group_tests_name("rest", tests, NULL, NULL);
}
