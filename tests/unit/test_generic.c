/* Unit tests of gateway/generic: generic API paths, bodies and `reply`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/generic.h"

/* ---- paths ----------------------------------------------------------------- */

static void assert_path(const char *path, int kind, const char *service)
{
    router_match_t m;
    router_match_init(&m);
    span_t name = SPAN_LIT("junk");
    assert_int_equal(generic_match_path(path, &m, &name), kind);
    if (kind == GENERIC_PATH_SEND || kind == GENERIC_PATH_EMIT) {
        assert_int_equal(name.n, strlen(service));
        if (name.n)
            assert_memory_equal(name.p, service, name.n);
    } else {
        assert_int_equal(name.n, 0);
    }
    router_match_free(&m);
}

static void generic_paths(void **state)
{
    (void)state;
    assert_path("/v1/send/math", GENERIC_PATH_SEND, "math");
    assert_path("/v1/emit/math", GENERIC_PATH_EMIT, "math");
    assert_path("/v1/send/math/", GENERIC_PATH_SEND, "math"); /* trailing '/' ignored */
    assert_path("/v1/send/ma%74h", GENERIC_PATH_SEND, "math"); /* decoded */
    assert_path("/v1/%73end/math", GENERIC_PATH_SEND, "math");
    assert_path("/%761/emit/x.y-z_1", GENERIC_PATH_EMIT, "x.y-z_1");
    assert_path("/v1/send/a%2Fb", GENERIC_PATH_SEND, "a/b"); /* one segment */
    assert_path("/v1/send//", GENERIC_PATH_SEND, "");        /* names no service */
    assert_path("/v1/send", GENERIC_PATH_NONE, NULL);
    assert_path("/v1/send/", GENERIC_PATH_NONE, NULL);
    assert_path("/v1/send/a/b", GENERIC_PATH_NONE, NULL);
    assert_path("/v1/other/a", GENERIC_PATH_NONE, NULL);
    assert_path("/v2/send/a", GENERIC_PATH_NONE, NULL);
    assert_path("/V1/send/a", GENERIC_PATH_NONE, NULL);
    assert_path("/v1/SEND/a", GENERIC_PATH_NONE, NULL);
    assert_path("/v1%2Fsend/a", GENERIC_PATH_NONE, NULL);
    assert_path("//v1/send/a", GENERIC_PATH_NONE, NULL);
    assert_path("/", GENERIC_PATH_NONE, NULL);
    assert_path("/v1/send/%zz", GENERIC_PATH_BAD, NULL);
    assert_path("/v1/send/%00", GENERIC_PATH_BAD, NULL);
    assert_path("/other/%4", GENERIC_PATH_BAD, NULL);
    assert_path("", GENERIC_PATH_BAD, NULL);

    router_match_t m;
    router_match_init(&m);
    span_t name;
    assert_int_equal(generic_match_path("/v1/emit/%zz", &m, &name), GENERIC_PATH_BAD);
    assert_string_equal(m.error, "invalid percent-encoding in the path at byte 9");
    router_match_free(&m);
}

/* ---- bodies ---------------------------------------------------------------- */

static void assert_body(const char *body, size_t n, const char *pattern, const char *data)
{
    span_t p, d;
    char error[GENERIC_ERROR_SIZE] = "";
    if (generic_parse_body(span_of(body, n), &p, &d, error, sizeof error) != 0)
        fail_msg("unexpected error: %s", error);
    assert_int_equal(p.n, strlen(pattern));
    assert_memory_equal(p.p, pattern, p.n);
    assert_int_equal(d.n, strlen(data));
    assert_memory_equal(d.p, data, d.n);
    if (strstr(body, "ata\""))                                 /* data given: */
        assert_true(d.p >= body && d.p + d.n <= body + n); /* points into the body */
    else
        assert_string_equal(d.p, "null"); /* the static literal (NUL-terminated) */
}

static void assert_body_fails(const char *body, size_t n, const char *message)
{
    span_t p = SPAN_LIT("x"), d = SPAN_LIT("y");
    char error[GENERIC_ERROR_SIZE] = "";
    assert_int_equal(generic_parse_body(span_of(body, n), &p, &d, error, sizeof error), -1);
    assert_string_equal(error, message);
}

#define BODY(body, pattern, data) assert_body(body, sizeof(body) - 1, pattern, data)
#define BODY_FAILS(body, message) assert_body_fails(body, sizeof(body) - 1, message)

static void good_bodies(void **state)
{
    (void)state;
    BODY("{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2,3]}", "{\"cmd\":\"sum\"}", "[1,2,3]");
    BODY("{\"data\":7,\"pattern\":\"p\"}", "\"p\"", "7");
    BODY("{\"pattern\":\"p\"}", "\"p\"", "null"); /* data absent: null */
    BODY("{\"pattern\":\"p\",\"data\":null}", "\"p\"", "null");
    BODY(" \n{ \"pattern\" : 1 , \"data\" : { \"a\" : [ ] } }\n", "1", "{ \"a\" : [ ] }");
    BODY("{\"pattern\":null}", "null", "null");
    /* byte-exact values */
    BODY("{\"pattern\":{\"cmd\":\"x\"},\"data\":{\"n\":123456789012345678901234567890,"
         "\"s\":\"\\u0000\\ud800\"}}",
         "{\"cmd\":\"x\"}", "{\"n\":123456789012345678901234567890,\"s\":\"\\u0000\\ud800\"}");
    /* member names are compared unescaped */
    BODY("{\"p\\u0061ttern\":2,\"\\u0064ata\":3}", "2", "3");
}

static void bad_bodies(void **state)
{
    (void)state;
    const char *empty = "body is empty: expected {\"pattern\": ..., \"data\": ...}";
    const char *not_object = "body: expected a JSON object {\"pattern\": ..., \"data\": ...}";
    assert_body_fails(NULL, 0, empty);
    BODY_FAILS("", empty);
    BODY_FAILS(" \r\n\t", empty);
    BODY_FAILS("[]", not_object);
    BODY_FAILS("\"pattern\"", not_object);
    BODY_FAILS("null", not_object);
    BODY_FAILS("12", not_object);
    BODY_FAILS("{}", "body: \"pattern\" is required");
    BODY_FAILS("{\"data\":1}", "body: \"pattern\" is required");
    BODY_FAILS("{\"pattern\":1,\"foo\":2}",
               "body: unknown member \"foo\" (expected \"pattern\" and \"data\")");
    BODY_FAILS("{\"Pattern\":1}",
               "body: unknown member \"Pattern\" (expected \"pattern\" and \"data\")");
    BODY_FAILS("{\"pattern\":1,\"pattern\":2}", "body: duplicate member \"pattern\"");
    BODY_FAILS("{\"data\":1,\"pattern\":2,\"d\\u0061ta\":3}", "body: duplicate member \"d\\u0061ta\"");
    BODY_FAILS("{\"pattern\":1,}", "body is not valid JSON: expected a string key at byte 13");
    BODY_FAILS("{\"pattern\":1} {}",
               "body is not valid JSON: unexpected characters after the value at byte 14");
    BODY_FAILS("{\"pattern\":\"\xff\"}", "body is not valid UTF-8 JSON: invalid UTF-8 at byte 12");
    BODY_FAILS("pattern=1", "body is not valid JSON: unexpected character at byte 0");
    /* a long unknown key is cut */
    char body[300], message[300];
    char key[101];
    memset(key, 'k', 100);
    key[100] = '\0';
    snprintf(body, sizeof body, "{\"pattern\":1,\"%s\":2}", key);
    snprintf(message, sizeof message,
             "body: unknown member \"%.63s... (expected \"pattern\" and \"data\")", key);
    assert_body_fails(body, strlen(body), message);
}

/* ---- reply ----------------------------------------------------------------- */

static void reply_modes(void **state)
{
    (void)state;
    config_reply_mode mode = CONFIG_REPLY_SSE;
    char error[GENERIC_ERROR_SIZE];
    assert_int_equal(generic_parse_reply(NULL, &mode, error, sizeof error), 0);
    assert_int_equal(mode, CONFIG_REPLY_AUTO);
    static const struct {
        const char *text;
        config_reply_mode mode;
    } good[] = {{"auto", CONFIG_REPLY_AUTO},
                {"array", CONFIG_REPLY_ARRAY},
                {"ndjson", CONFIG_REPLY_NDJSON},
                {"sse", CONFIG_REPLY_SSE},
                {"envelope", CONFIG_REPLY_ENVELOPE}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        mode = good[i].mode == CONFIG_REPLY_AUTO ? CONFIG_REPLY_SSE : CONFIG_REPLY_AUTO; /* something else */
        assert_int_equal(generic_parse_reply(good[i].text, &mode, error, sizeof error), 0);
        assert_int_equal(mode, good[i].mode);
    }
    static const char *const bad[] = {"", "ARRAY", "Sse", "json", "array ", " auto", "arrays", "Envelope", "envelopes"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mode = CONFIG_REPLY_NDJSON;
        error[0] = '\0';
        assert_int_equal(generic_parse_reply(bad[i], &mode, error, sizeof error), -1);
        assert_string_equal(error,
                            "query parameter \"reply\": expected auto, array, ndjson, sse or envelope");
        assert_int_equal(mode, CONFIG_REPLY_NDJSON);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(generic_paths),
        cmocka_unit_test(good_bodies),
        cmocka_unit_test(bad_bodies),
        cmocka_unit_test(reply_modes),
    };
    return cmocka_run_group_tests_name("generic", tests, NULL, NULL);
}
