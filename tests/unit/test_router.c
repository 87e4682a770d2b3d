/* Unit tests of gateway/router: routes come from real configs loaded with
 * config_load_string(), so the paths are compiled as in production. JSON
 * here is written with single quotes, turned into double quotes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gateway/router.h"

/* ---- helpers ------------------------------------------------------------- */

typedef struct fixture {
    config *cfg;
    router_t *router;
    router_match_t m;
} fixture;

/* Loads a config whose routes are "METHOD PATH" strings, in order. */
static fixture *load_routes(const char *const *routes)
{
    buf_t json = BUF_INIT;
    buf_append_cstr(&json, "{'admin_listen':'127.0.0.1:9901','generic_api':false,"
                           "'services':{'s':{'endpoints':['127.0.0.1:3000']}},'routes':[");
    for (size_t i = 0; routes[i] != NULL; i++) {
        const char *space = strchr(routes[i], ' ');
        assert_non_null(space);
        char entry[512];
        snprintf(entry, sizeof entry, "%s{'method':'%.*s','path':'%s','service':'s','pattern':%zu}",
                 i ? "," : "", (int)(space - routes[i]), routes[i], space + 1, i);
        buf_append_cstr(&json, entry);
    }
    buf_append_cstr(&json, "]}");
    for (size_t i = 0; i < json.len; i++)
        if (json.data[i] == '\'')
            json.data[i] = '"';
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    config_error error;
    if (config_load_string(json.data, json.len, NULL, &f->cfg, &error) != 0)
        fail_msg("config: %s", error.message);
    buf_free(&json);
    f->router = router_new(f->cfg);
    assert_non_null(f->router);
    router_match_init(&f->m);
    return f;
}

static void unload(fixture *f)
{
    router_match_free(&f->m);
    router_free(f->router);
    config_free(f->cfg);
    free(f);
}

/* Matches and, when found, describes the result as "#INDEX a|b|c" with the
 * captures joined by '|' (e.g. "#1 7"), checking route/index agree. */
static router_result_t match(fixture *f, const char *method, const char *path, char *desc,
                             size_t size)
{
    router_result_t rc = router_match(f->router, method, path, &f->m);
    assert_int_equal(rc, f->m.outcome);
    desc[0] = '\0';
    if (rc != ROUTER_FOUND)
        return rc;
    assert_ptr_equal(f->m.route, &f->cfg->routes[f->m.route_index]);
    assert_int_equal(f->m.capture_count, f->m.route->path.capture_count);
    size_t used = (size_t)snprintf(desc, size, "#%zu", f->m.route_index);
    for (size_t i = 0; i < f->m.capture_count; i++)
        used += (size_t)snprintf(desc + used, size - used, "%s%.*s", i ? "|" : " ",
                                 (int)f->m.captures[i].n, f->m.captures[i].p);
    return rc;
}

#define ASSERT_FOUND(f, method, path, expected)                                                  \
    do {                                                                                         \
        char desc_[256];                                                                         \
        assert_int_equal(match(f, method, path, desc_, sizeof desc_), ROUTER_FOUND);             \
        assert_string_equal(desc_, expected);                                                    \
    } while (0)

#define ASSERT_OUTCOME(f, method, path, outcome)                                                 \
    do {                                                                                         \
        char desc_[256];                                                                         \
        assert_int_equal(match(f, method, path, desc_, sizeof desc_), outcome);                  \
    } while (0)

#define ASSERT_405(f, method, path, allowed)                                                     \
    do {                                                                                         \
        ASSERT_OUTCOME(f, method, path, ROUTER_METHOD_NOT_ALLOWED);                              \
        assert_string_equal((f)->m.allow, allowed);                                              \
    } while (0)

#define ASSERT_BAD(f, path, message)                                                             \
    do {                                                                                         \
        ASSERT_OUTCOME(f, "GET", path, ROUTER_BAD_PATH);                                         \
        assert_string_equal((f)->m.error, message);                                              \
    } while (0)

/* ---- precedence ------------------------------------------------------------ */

static void literal_beats_param(void **state)
{
    (void)state;
    /* The param route comes first in the file: order does not matter. */
    static const char *const routes[] = {"GET /users/:id", "GET /users/me", NULL};
    fixture *f = load_routes(routes);
    ASSERT_FOUND(f, "GET", "/users/me", "#1");
    ASSERT_FOUND(f, "GET", "/users/7", "#0 7");
    ASSERT_FOUND(f, "GET", "/users/mee", "#0 mee");
    ASSERT_FOUND(f, "GET", "/users/m", "#0 m");
    ASSERT_FOUND(f, "GET", "/users/%6De", "#1"); /* decoded before comparing */
    ASSERT_OUTCOME(f, "GET", "/users", ROUTER_NOT_FOUND);
    ASSERT_OUTCOME(f, "GET", "/users/me/x", ROUTER_NOT_FOUND);
    unload(f);
}

static void earlier_literal_wins_with_backtracking(void **state)
{
    (void)state;
    static const char *const routes[] = {"GET /a/:x/c", "GET /a/b/:y", "GET /p/q/r",
                                         "GET /p/:x/s", NULL};
    fixture *f = load_routes(routes);
    ASSERT_FOUND(f, "GET", "/a/b/c", "#1 c"); /* literal b at position 2 */
    ASSERT_FOUND(f, "GET", "/a/b/d", "#1 d");
    ASSERT_FOUND(f, "GET", "/a/z/c", "#0 z");
    ASSERT_OUTCOME(f, "GET", "/a/z/d", ROUTER_NOT_FOUND);
    /* The literal branch fails deeper down: back up and try the param. */
    ASSERT_FOUND(f, "GET", "/p/q/s", "#3 q");
    ASSERT_FOUND(f, "GET", "/p/q/r", "#2");
    ASSERT_OUTCOME(f, "GET", "/p/q/t", ROUTER_NOT_FOUND);
    unload(f);
}

static void param_beats_rest(void **state)
{
    (void)state;
    static const char *const routes[] = {"GET /files/*path", "GET /files/:name",
                                         "GET /files/:name/meta", "GET /files/readme", NULL};
    fixture *f = load_routes(routes);
    ASSERT_FOUND(f, "GET", "/files/readme", "#3");
    ASSERT_FOUND(f, "GET", "/files/x", "#1 x");
    ASSERT_FOUND(f, "GET", "/files/x/meta", "#2 x");
    ASSERT_FOUND(f, "GET", "/files/x/y", "#0 x/y");
    ASSERT_FOUND(f, "GET", "/files/x/meta/z", "#0 x/meta/z");
    ASSERT_FOUND(f, "GET", "/files/readme/meta", "#2 readme");
    unload(f);
}

static void deep_backtracking_to_a_rest(void **state)
{
    (void)state;
    static const char *const routes[] = {"GET /a/b/c/d", "GET /a/:x/c/:y/e", "GET /a/*rest",
                                         NULL};
    fixture *f = load_routes(routes);
    ASSERT_FOUND(f, "GET", "/a/b/c/d", "#0");
    ASSERT_FOUND(f, "GET", "/a/b/c/z/e", "#1 b|z");
    ASSERT_FOUND(f, "GET", "/a/b/c/d/e", "#1 b|d"); /* literal d leads nowhere */
    ASSERT_FOUND(f, "GET", "/a/b/c/d/f", "#2 b/c/d/f");
    ASSERT_FOUND(f, "GET", "/a/b", "#2 b");
    unload(f);
}

/* ---- paths ----------------------------------------------------------------- */

static void trailing_slash_and_root(void **state)
{
    (void)state;
    static const char *const routes[] = {"GET /", "GET /users/:id", "GET /users/", NULL};
    fixture *f = load_routes(routes);
    ASSERT_FOUND(f, "GET", "/", "#0");
    ASSERT_FOUND(f, "GET", "//", "#0"); /* one trailing '/' dropped: "/" */
    ASSERT_FOUND(f, "GET", "/users/7", "#1 7");
    ASSERT_FOUND(f, "GET", "/users/7/", "#1 7");
    ASSERT_FOUND(f, "GET", "/users", "#2");
    ASSERT_FOUND(f, "GET", "/users/", "#2");
    ASSERT_OUTCOME(f, "GET", "/users/7//", ROUTER_NOT_FOUND); /* only one is dropped */
    ASSERT_OUTCOME(f, "GET", "/users//", ROUTER_NOT_FOUND);   /* ":id" is never empty */
    ASSERT_OUTCOME(f, "GET", "//users", ROUTER_NOT_FOUND);
    unload(f);

    static const char *const none[] = {"GET /x", NULL};
    f = load_routes(none);
    ASSERT_OUTCOME(f, "GET", "/", ROUTER_NOT_FOUND);
    unload(f);
}

static void percent_decoding_after_splitting(void **state)
{
    (void)state;
    static const char *const routes[] = {"GET /users/:id", "GET /caf%C3%A9", "GET /a%2Fb",
                                         "GET /q/:v/end", "GET /sp%20ace", NULL};
    fixture *f = load_routes(routes);
    ASSERT_FOUND(f, "GET", "/users/a%2Fb", "#0 a/b"); /* %2F does not split */
    ASSERT_FOUND(f, "GET", "/users/a%2fb", "#0 a/b");
    ASSERT_OUTCOME(f, "GET", "/users/a/b", ROUTER_NOT_FOUND);
    ASSERT_FOUND(f, "GET", "/users/%E2%82%AC", "#0 \xe2\x82\xac");
    ASSERT_FOUND(f, "GET", "/users/%ff", "#0 \xff"); /* bytes: the renderer checks UTF-8 */
    ASSERT_FOUND(f, "GET", "/users/a+b", "#0 a+b");  /* '+' stays '+' in a path */
    ASSERT_FOUND(f, "GET", "/users/%25", "#0 %");
    ASSERT_FOUND(f, "GET", "/caf%c3%a9", "#1");
    ASSERT_FOUND(f, "GET", "/caf\xc3\xa9", "#1");
    ASSERT_FOUND(f, "GET", "/a%2Fb", "#2");
    ASSERT_FOUND(f, "GET", "/a%2fb", "#2");
    ASSERT_OUTCOME(f, "GET", "/a/b", ROUTER_NOT_FOUND);
    ASSERT_FOUND(f, "GET", "/q/%2F/end", "#3 /");
    ASSERT_FOUND(f, "GET", "/sp%20ace", "#4");
    unload(f);
}

static void bad_escapes(void **state)
{
    (void)state;
    static const char *const routes[] = {"GET /users/:id", "GET /*all", NULL};
    fixture *f = load_routes(routes);
    ASSERT_BAD(f, "/users/%zz", "invalid percent-encoding in the path at byte 7");
    ASSERT_BAD(f, "/users/ab%4", "invalid percent-encoding in the path at byte 9");
    ASSERT_BAD(f, "/users/%", "invalid percent-encoding in the path at byte 7");
    ASSERT_BAD(f, "/users/%/", "invalid percent-encoding in the path at byte 7");
    ASSERT_BAD(f, "/%zz/7", "invalid percent-encoding in the path at byte 1");
    ASSERT_BAD(f, "/users/%00", "the path holds %00 at byte 7 (NUL is not allowed)");
    ASSERT_BAD(f, "/users/a%00", "the path holds %00 at byte 8 (NUL is not allowed)");
    /* Every segment is decoded, even one that no route would look at. */
    ASSERT_BAD(f, "/nothing/here/%zz", "invalid percent-encoding in the path at byte 14");
    ASSERT_BAD(f, "", "the path does not start with '/'");
    ASSERT_BAD(f, "users/7", "the path does not start with '/'");
    ASSERT_BAD(f, "*", "the path does not start with '/'");
    /* After a bad path the struct is reusable. */
    ASSERT_FOUND(f, "GET", "/users/%41", "#0 A");
    assert_string_equal(f->m.error, "");
    unload(f);
}

static void rest_captures(void **state)
{
    (void)state;
    static const char *const routes[] = {"GET /files/*path", "GET /*all", "GET /x/:a/*b", NULL};
    fixture *f = load_routes(routes);
    ASSERT_FOUND(f, "GET", "/files/a", "#0 a");
    ASSERT_FOUND(f, "GET", "/files/a/b/c", "#0 a/b/c");
    ASSERT_FOUND(f, "GET", "/files/a/b/c/", "#0 a/b/c");
    ASSERT_FOUND(f, "GET", "/files/a%2Fb/c", "#0 a/b/c"); /* decoded segments, joined */
    ASSERT_FOUND(f, "GET", "/files/a%20b/%E2%82%AC", "#0 a b/\xe2\x82\xac");
    ASSERT_FOUND(f, "GET", "/files/a//b", "#0 a//b");      /* empty segments kept inside */
    ASSERT_FOUND(f, "GET", "/files//b", "#0 /b");
    /* Zero segments: "/files" is not under "/files/...", so the root rest
     * (which needs one segment, "files") takes it. */
    ASSERT_FOUND(f, "GET", "/files", "#1 files");
    ASSERT_FOUND(f, "GET", "/files/", "#1 files");
    ASSERT_FOUND(f, "GET", "/files//", "#1 files/"); /* "/files/" rest: empty, no */
    ASSERT_OUTCOME(f, "GET", "/", ROUTER_NOT_FOUND);
    ASSERT_FOUND(f, "GET", "/x/1/2/3", "#2 1|2/3");
    ASSERT_FOUND(f, "GET", "/x/1", "#1 x/1");
    unload(f);

    static const char *const only[] = {"GET /files/*path", NULL};
    f = load_routes(only);
    ASSERT_OUTCOME(f, "GET", "/files", ROUTER_NOT_FOUND);
    ASSERT_OUTCOME(f, "GET", "/files/", ROUTER_NOT_FOUND);
    ASSERT_OUTCOME(f, "GET", "/files//", ROUTER_NOT_FOUND);
    ASSERT_FOUND(f, "GET", "/files///", "#0 /");
    unload(f);
}

static void captures_in_capture_order(void **state)
{
    (void)state;
    static const char *const routes[] = {"GET /u/:a/x/:b/*c", "GET /v/:z/:y", NULL};
    fixture *f = load_routes(routes);
    ASSERT_FOUND(f, "GET", "/u/1/x/2/3/4", "#0 1|2|3/4");
    ASSERT_FOUND(f, "GET", "/v/first/second", "#1 first|second");
    assert_int_equal(route_path_capture_index(&f->m.route->path, "z"), 0);
    assert_string_equal(f->m.route->path.text, "/v/:z/:y");
    unload(f);
}

/* ---- methods ----------------------------------------------------------------- */

static void not_found_versus_method_not_allowed(void **state)
{
    (void)state;
    static const char *const routes[] = {"DELETE /users/:id", "GET /users/:id", "POST /users",
                                         "PATCH /users/:id", "PUT /users/:id/name", NULL};
    fixture *f = load_routes(routes);
    ASSERT_FOUND(f, "GET", "/users/7", "#1 7");
    ASSERT_FOUND(f, "DELETE", "/users/7", "#0 7");
    ASSERT_FOUND(f, "PATCH", "/users/7", "#3 7");
    ASSERT_405(f, "PUT", "/users/7", "GET, HEAD, PATCH, DELETE"); /* a stable order */
    ASSERT_405(f, "POST", "/users/7/", "GET, HEAD, PATCH, DELETE");
    ASSERT_405(f, "GET", "/users", "POST");
    ASSERT_405(f, "HEAD", "/users", "POST");
    ASSERT_405(f, "OPTIONS", "/users/7", "GET, HEAD, PATCH, DELETE");
    ASSERT_405(f, "get", "/users/7", "GET, HEAD, PATCH, DELETE"); /* methods are case-sensitive */
    ASSERT_405(f, "GET", "/users/7/name", "PUT");
    ASSERT_OUTCOME(f, "GET", "/users/7/other", ROUTER_NOT_FOUND);
    ASSERT_OUTCOME(f, "GET", "/nothing", ROUTER_NOT_FOUND);
    assert_string_equal(f->m.allow, ""); /* cleared after a 405 */
    unload(f);
}

static void allow_gathers_every_shape(void **state)
{
    (void)state;
    static const char *const routes[] = {"DELETE /a/*r", "GET /a/b", "POST /a/:x",
                                         "GET /a/:x", "PUT /b/*r", "GET /b/c/d", NULL};
    fixture *f = load_routes(routes);
    ASSERT_405(f, "PATCH", "/a/b", "GET, HEAD, POST, DELETE"); /* GET listed once */
    ASSERT_FOUND(f, "POST", "/a/b", "#2 b");
    ASSERT_FOUND(f, "DELETE", "/a/b", "#0 b");
    ASSERT_405(f, "PATCH", "/a/b/c", "DELETE");
    ASSERT_405(f, "POST", "/b/c/d", "GET, HEAD, PUT");
    unload(f);

    static const char *const all[] = {"DELETE /x", "PATCH /x", "PUT /x", "POST /x", "GET /x",
                                      NULL};
    f = load_routes(all);
    ASSERT_405(f, "OPTIONS", "/x", "GET, HEAD, POST, PUT, PATCH, DELETE"); /* the longest Allow */
    assert_true(strlen(f->m.allow) < ROUTER_ALLOW_SIZE);
    unload(f);
}

/* HEAD is GET without the body: every GET route answers it, with the same
 * precedence; where GET is allowed, so is HEAD. */
static void head_is_answered_by_get_routes(void **state)
{
    (void)state;
    static const char *const routes[] = {"GET /books", "POST /books", "GET /books/:id", "DELETE /books/:id",
                                         "GET /files/*rest", "POST /only", "GET /mix/a", "* /mix/:x", NULL};
    fixture *f = load_routes(routes);
    ASSERT_FOUND(f, "HEAD", "/books", "#0");
    ASSERT_FOUND(f, "HEAD", "/books/7", "#2 7");
    ASSERT_FOUND(f, "HEAD", "/books/7/", "#2 7");
    ASSERT_FOUND(f, "HEAD", "/files/a/b", "#4 a/b");
    ASSERT_FOUND(f, "HEAD", "/mix/a", "#6");   /* the GET literal, as for GET */
    ASSERT_FOUND(f, "HEAD", "/mix/b", "#7 b"); /* then "*" */
    ASSERT_405(f, "HEAD", "/only", "POST");   /* no GET, no HEAD */
    ASSERT_405(f, "PUT", "/books", "GET, HEAD, POST");
    ASSERT_405(f, "PATCH", "/books/7", "GET, HEAD, DELETE");
    ASSERT_405(f, "head", "/books", "GET, HEAD, POST"); /* case-sensitive, as every method */
    ASSERT_OUTCOME(f, "HEAD", "/nothing", ROUTER_NOT_FOUND);
    unload(f);
}

static void a_route_that_takes_the_method_beats_a_405(void **state)
{
    (void)state;
    static const char *const routes[] = {"GET /users/me", "DELETE /users/:id", NULL};
    fixture *f = load_routes(routes);
    ASSERT_FOUND(f, "GET", "/users/me", "#0");
    ASSERT_FOUND(f, "DELETE", "/users/me", "#1 me");
    ASSERT_405(f, "PUT", "/users/me", "GET, HEAD, DELETE");
    ASSERT_405(f, "GET", "/users/7", "DELETE");
    unload(f);
}

static void any_method_routes(void **state)
{
    (void)state;
    static const char *const routes[] = {"* /any/:x", "GET /mix/a", "* /mix/:x", "POST /mix/b",
                                         "* /all/*rest", NULL};
    fixture *f = load_routes(routes);
    ASSERT_FOUND(f, "GET", "/any/1", "#0 1");
    ASSERT_FOUND(f, "HEAD", "/any/1", "#0 1");
    ASSERT_FOUND(f, "OPTIONS", "/any/1", "#0 1");
    ASSERT_FOUND(f, "BREW", "/any/1", "#0 1");
    ASSERT_FOUND(f, "GET", "/mix/a", "#1");
    ASSERT_FOUND(f, "POST", "/mix/a", "#2 a"); /* the literal refuses POST: "*" takes it */
    ASSERT_FOUND(f, "POST", "/mix/b", "#3");
    ASSERT_FOUND(f, "GET", "/mix/b", "#2 b");
    ASSERT_FOUND(f, "DELETE", "/all/x/y", "#4 x/y");
    ASSERT_OUTCOME(f, "GET", "/any", ROUTER_NOT_FOUND);
    unload(f);
}

/* ---- scale and reuse --------------------------------------------------------- */

static void many_literal_siblings(void **state)
{
    (void)state;
    enum { N = 120 };
    char *texts[N + 2];
    const char *routes[N + 2];
    for (size_t i = 0; i < N; i++) {
        texts[i] = malloc(64);
        assert_non_null(texts[i]);
        /* Shuffled lengths and bytes, so the sorted order differs from file order. */
        snprintf(texts[i], 64, "%s /r/%c%zu/:id", i % 2 ? "GET" : "POST",
                 (char)('a' + (i * 7) % 26), (i * 37) % N);
        routes[i] = texts[i];
    }
    texts[N] = strdup("GET /r/:other/:id");
    routes[N] = texts[N];
    routes[N + 1] = NULL;
    fixture *f = load_routes(routes);
    for (size_t i = 0; i < N; i++) {
        char path[64], expected[64];
        snprintf(path, sizeof path, "/r/%c%zu/v", (char)('a' + (i * 7) % 26), (i * 37) % N);
        snprintf(expected, sizeof expected, "#%zu v", i);
        ASSERT_FOUND(f, i % 2 ? "GET" : "POST", path, expected);
        if (i % 2 == 0) { /* POST literal; GET falls back to the param route */
            snprintf(expected, sizeof expected, "#%d %c%zu|v", N, (char)('a' + (i * 7) % 26),
                     (i * 37) % N);
            ASSERT_FOUND(f, "GET", path, expected);
        }
    }
    ASSERT_FOUND(f, "GET", "/r/zz/v", "#120 zz|v");
    ASSERT_405(f, "PUT", "/r/a0/v", "GET, HEAD, POST");
    unload(f);
    for (size_t i = 0; i <= N; i++)
        free(texts[i]);
}

static void match_struct_is_reused(void **state)
{
    (void)state;
    static const char *const routes[] = {"GET /f/*p", "GET /g/:a", NULL};
    fixture *f = load_routes(routes);
    /* Growing from a short path to a long one and back. */
    ASSERT_FOUND(f, "GET", "/g/1", "#1 1");
    buf_t path = BUF_INIT;
    buf_append_cstr(&path, "/f");
    for (int i = 0; i < 500; i++)
        buf_append_cstr(&path, "/seg%20x");
    buf_append(&path, "", 1);
    assert_int_equal(router_match(f->router, "GET", path.data, &f->m), ROUTER_FOUND);
    assert_int_equal(f->m.capture_count, 1);
    assert_int_equal(f->m.captures[0].n, 500 * 6 - 1);
    assert_memory_equal(f->m.captures[0].p, "seg x/seg x/", 12);
    buf_free(&path);
    ASSERT_FOUND(f, "GET", "/g/2", "#1 2");
    ASSERT_OUTCOME(f, "GET", "/h", ROUTER_NOT_FOUND);
    assert_null(f->m.route);
    assert_int_equal(f->m.capture_count, 0);
    /* Freed, the struct is empty and reusable. */
    router_match_free(&f->m);
    ASSERT_FOUND(f, "GET", "/g/3", "#1 3");
    unload(f);
}

static void no_routes(void **state)
{
    (void)state;
    config *cfg = NULL;
    config_error error;
    const char *json = "{\"services\":{}}";
    assert_int_equal(config_load_string(json, strlen(json), NULL, &cfg, &error), 0);
    router_t *r = router_new(cfg);
    assert_non_null(r);
    router_match_t m;
    router_match_init(&m);
    assert_int_equal(router_match(r, "GET", "/", &m), ROUTER_NOT_FOUND);
    assert_int_equal(router_match(r, "GET", "/a/b", &m), ROUTER_NOT_FOUND);
    router_match_free(&m);
    router_free(r);
    router_free(NULL);
    config_free(cfg);
}

static void decode_path_alone(void **state)
{
    (void)state;
    router_match_t m;
    router_match_init(&m);
    assert_int_equal(router_decode_path("/", &m), 0);
    assert_int_equal(router_decode_path("/a/b%2Fc/", &m), 2);
    assert_true(span_eq_cstr(router_match_segment(&m, 0), "a"));
    assert_true(span_eq_cstr(router_match_segment(&m, 1), "b/c"));
    assert_int_equal(router_decode_path("/a//b", &m), 3);
    assert_true(span_eq_cstr(router_match_segment(&m, 1), ""));
    assert_int_equal(router_decode_path("/a/%zz", &m), ROUTER_DECODE_BAD);
    assert_string_equal(m.error, "invalid percent-encoding in the path at byte 3");
    router_match_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(literal_beats_param),
        cmocka_unit_test(earlier_literal_wins_with_backtracking),
        cmocka_unit_test(param_beats_rest),
        cmocka_unit_test(deep_backtracking_to_a_rest),
        cmocka_unit_test(trailing_slash_and_root),
        cmocka_unit_test(percent_decoding_after_splitting),
        cmocka_unit_test(bad_escapes),
        cmocka_unit_test(rest_captures),
        cmocka_unit_test(captures_in_capture_order),
        cmocka_unit_test(not_found_versus_method_not_allowed),
        cmocka_unit_test(allow_gathers_every_shape),
        cmocka_unit_test(head_is_answered_by_get_routes),
        cmocka_unit_test(a_route_that_takes_the_method_beats_a_405),
        cmocka_unit_test(any_method_routes),
        cmocka_unit_test(many_literal_siblings),
        cmocka_unit_test(match_struct_is_reused),
        cmocka_unit_test(no_routes),
        cmocka_unit_test(decode_path_alone),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
