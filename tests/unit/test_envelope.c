/* Unit tests of gateway/envelope: every rule of a `reply: "envelope"`
 * value (SPEC.md "Route mapping for real REST APIs"), header injection
 * attempts, odd and big statuses, values that are not envelopes,
 * duplicate headers, and the envelope's own buffer reused between
 * replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/envelope.h"

static char why[ENVELOPE_WHY_SIZE];

/* Reads `text` as the one reply value of a route whose status is 200. */
static int read1(envelope_t *e, const char *text)
{
    why[0] = 0;
    return envelope_read(span_cstr(text), 1, 200, e, why, sizeof why);
}

static void expect_ok(envelope_t *e, const char *text)
{
    int rc = read1(e, text);
    if (rc != 0)
        fail_msg("%s: refused: %s", text, why);
}

/* Refused, with a message holding `part`; nothing left in *e. */
static void expect_bad(const char *text, const char *part)
{
    envelope_t e = ENVELOPE_INIT;
    int rc = read1(&e, text);
    if (rc != ENVELOPE_BAD)
        fail_msg("%s: accepted (rc %d)", text, rc);
    if (!strstr(why, part))
        fail_msg("%s: message \"%s\" lacks \"%s\"", text, why, part);
    assert_int_equal(e.header_count, 0);
    assert_false(e.has_body);
    assert_null(e.content_type);
    assert_int_equal(e.status, 200);
    envelope_free(&e);
}

static void expect_body(const envelope_t *e, const char *body)
{
    assert_true(e->has_body);
    assert_int_equal(e->body.n, strlen(body));
    assert_memory_equal(e->body.p, body, e->body.n);
}

/* ---- what is accepted ------------------------------------------------------ */

static void every_member(void **state)
{
    (void)state;
    envelope_t e = ENVELOPE_INIT;
    expect_ok(&e, "{\"status\":201,\"headers\":{\"Location\":\"/books/3\",\"Cache-Control\":\"no-store\"},"
                  "\"body\":{\"id\":3,\"big\":12345678901234567890123,\"s\":\"\\ud800\"}}");
    assert_int_equal(e.status, 201);
    assert_int_equal(e.header_count, 2);
    assert_string_equal(e.headers[0].name, "Location");
    assert_string_equal(e.headers[0].value, "/books/3");
    assert_string_equal(e.headers[1].name, "Cache-Control");
    assert_string_equal(e.headers[1].value, "no-store");
    assert_null(e.content_type);
    /* byte-exact: the body is the service's bytes, not re-encoded */
    expect_body(&e, "{\"id\":3,\"big\":12345678901234567890123,\"s\":\"\\ud800\"}");
    envelope_free(&e);
}

static void each_member_optional(void **state)
{
    (void)state;
    envelope_t e = ENVELOPE_INIT;
    expect_ok(&e, "{}");
    assert_int_equal(e.status, 200); /* the route's */
    assert_false(e.has_body);
    assert_int_equal(e.header_count, 0);
    assert_int_equal(envelope_read(SPAN_LIT(" {\"status\": 404} "), 1, 201, &e, why, sizeof why), 0);
    assert_int_equal(e.status, 404);
    assert_false(e.has_body);
    assert_int_equal(envelope_read(SPAN_LIT("{\"body\":\"text\"}"), 1, 202, &e, why, sizeof why), 0);
    assert_int_equal(e.status, 202);
    expect_body(&e, "\"text\""); /* a string body stays a JSON string */
    expect_ok(&e, "{\"body\":null}");
    expect_body(&e, "null"); /* present, null: the body is null */
    expect_ok(&e, "{\"headers\":{}}");
    assert_int_equal(e.header_count, 0);
    envelope_free(&e);
}

static void statuses(void **state)
{
    (void)state;
    envelope_t e = ENVELOPE_INIT;
    const unsigned good[] = { 200, 204, 299, 301, 304, 400, 404, 418, 500, 599 };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"status\":%u}", good[i]);
        expect_ok(&e, text);
        assert_int_equal(e.status, good[i]);
    }
    envelope_free(&e);
    const char *const bad[] = {
        "199", "600", "0", "-200", "100", "999", "1000", "2e2", "200.0", "2E2", "20", "99999999999999999999",
        "200000000000000000000000000000000000201", "\"200\"", "null", "true", "[200]", "{\"code\":200}", "-0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[96];
        snprintf(text, sizeof text, "{\"status\":%s}", bad[i]);
        expect_bad(text, "is not an integer from 200 to 599");
    }
    expect_bad("{\"status\":99999999999999999999999999999999999999999999999999999999}", "...");
}

static void content_type(void **state)
{
    (void)state;
    envelope_t e = ENVELOPE_INIT;
    expect_ok(&e, "{\"headers\":{\"content-type\":\"text/plain; charset=utf-8\",\"X-A\":\"1\"},\"body\":\"hi\"}");
    assert_string_equal(e.content_type, "text/plain; charset=utf-8");
    assert_int_equal(e.header_count, 1); /* kept apart from the others */
    assert_string_equal(e.headers[0].name, "X-A");
    envelope_free(&e);
}

static void header_values(void **state)
{
    (void)state;
    envelope_t e = ENVELOPE_INIT;
    /* escapes decode; tabs inside and obs-text are field values */
    expect_ok(&e, "{\"headers\":{\"X-Esc\":\"a\\u0041\\/b\",\"X-Tab\":\"a\\tb\",\"X-Utf8\":\"caf\xc3\xa9\","
                  "\"X-\\u0042\":\"named by an escape\"}}");
    assert_int_equal(e.header_count, 4);
    assert_string_equal(e.headers[0].value, "aA/b");
    assert_string_equal(e.headers[1].value, "a\tb");
    assert_string_equal(e.headers[2].value, "caf\xc3\xa9");
    assert_string_equal(e.headers[3].name, "X-B");
    /* every tchar */
    expect_ok(&e, "{\"headers\":{\"!#$%&'*+-.^_`|~09azAZ\":\"v\"}}");
    assert_string_equal(e.headers[0].name, "!#$%&'*+-.^_`|~09azAZ");
    envelope_free(&e);
}

/* ---- what is refused --------------------------------------------------------- */

static void value_counts(void **state)
{
    (void)state;
    envelope_t e = ENVELOPE_INIT;
    assert_int_equal(envelope_read(span_of(NULL, 0), 0, 200, &e, why, sizeof why), ENVELOPE_BAD);
    assert_non_null(strstr(why, "expects one reply value, the service sent 0"));
    assert_int_equal(envelope_read(SPAN_LIT("{},{}"), 2, 200, &e, why, sizeof why), ENVELOPE_BAD);
    assert_non_null(strstr(why, "the service sent 2"));
    assert_int_equal(envelope_read(SPAN_LIT("{},{}"), 1, 200, &e, why, sizeof why), ENVELOPE_BAD);
    assert_non_null(strstr(why, "not valid JSON"));
    envelope_free(&e);
}

static void not_objects(void **state)
{
    (void)state;
    expect_bad("[]", "the envelope is an array, not an object");
    expect_bad("[{\"status\":201}]", "an array");
    expect_bad("\"text\"", "the envelope is a string");
    expect_bad("42", "a number");
    expect_bad("null", "the envelope is null");
    expect_bad("true", "a boolean");
    expect_bad("", "not valid JSON");
    expect_bad("{\"status\":201", "not valid JSON");
    expect_bad("{\"status\":201}x", "not valid JSON");
    expect_bad("{\"body\":\"\xff\"}", "not valid JSON"); /* not UTF-8 */
}

static void other_members(void **state)
{
    (void)state;
    /* what a custom serializer sends */
    expect_bad("{\"id\":\"1\",\"result\":{\"a\":1},\"failure\":null}",
               "the members \"id\", \"result\", \"failure\" (expected only status, headers and body)");
    expect_bad("{\"status\":200,\"statusCode\":201}", "the member \"statusCode\" (expected only");
    expect_bad("{\"a\":1,\"b\":2,\"c\":3,\"d\":4}", "\"a\", \"b\", \"c\" and others");
    expect_bad("{\"Status\":201}", "the member \"Status\"");
    expect_bad("{\"status\":201,\"status\":202}", "the member \"status\" twice");
    expect_bad("{\"body\":1,\"b\\u006fdy\":2}", "the member \"b\\u006fdy\" twice");
    expect_bad("{\"headers\":{},\"headers\":{}}", "\"headers\" twice");
    /* a name that is not printable is shown safely */
    expect_bad("{\"\\u0000\\n\":1}", "the member \"\\u0000\\n\"");
}

static void header_shapes(void **state)
{
    (void)state;
    expect_bad("{\"headers\":[\"Location\",\"/x\"]}", "the envelope's headers is an array, not an object");
    expect_bad("{\"headers\":\"Location: /x\"}", "headers is a string");
    expect_bad("{\"headers\":null}", "headers is null");
    expect_bad("{\"headers\":{\"X-N\":1}}", "the envelope's header \"X-N\" is a number, not a string");
    expect_bad("{\"headers\":{\"X-N\":null}}", "\"X-N\" is null, not a string");
    expect_bad("{\"headers\":{\"X-N\":[\"a\",\"b\"]}}", "is an array, not a string");
    expect_bad("{\"headers\":{\"X-N\":{\"a\":1}}}", "is an object, not a string");
}

static void header_names(void **state)
{
    (void)state;
    const char *const bad[] = {
        "", "X A", "X:A", "X-A:", "(X)", "X\\tA", "X\\r\\nSet-Cookie", "X\\u0000", "X/Y", "X@Y", "X=Y",
        "X\\\"Y", "caf\xc3\xa9", "X,Y", "X;Y", "{X}", "[X]", "X?",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"headers\":{\"%s\":\"v\"}}", bad[i]);
        expect_bad(text, "is not an HTTP token");
    }
}

/* CR/LF/NUL and other controls in a value would let a service write its
 * own header lines, or a second response. */
static void header_injection(void **state)
{
    (void)state;
    const char *const bad[] = {
        "a\\r\\nSet-Cookie: admin=1",
        "a\\nX: y",
        "a\\rb",
        "\\r\\n\\r\\n<html>",
        "a\\u0000b",
        "a\\u000bb",
        "a\\u001fb",
        "a\\u007fb",
        "a\\u000d\\u000ab",
        "a\\fb",
        "a\\bb",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"headers\":{\"Location\":\"%s\"}}", bad[i]);
        expect_bad(text, "the envelope's header \"Location\" has a control character in its value");
    }
    expect_bad("{\"headers\":{\"X\":\" a\"}}", "starts or ends with whitespace");
    expect_bad("{\"headers\":{\"X\":\"a\\t\"}}", "starts or ends with whitespace");
    expect_bad("{\"headers\":{\"X\":\" \"}}", "starts or ends with whitespace");
    /* empty: a field value, but libmicrohttpd would drop the header silently */
    expect_bad("{\"headers\":{\"X-Empty\":\"\"}}", "the envelope's header \"X-Empty\" has an empty value");
}

static void reserved_headers(void **state)
{
    (void)state;
    const char *const names[] = {
        "Connection", "connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
        "TE", "te", "Trailer", "Transfer-Encoding", "TRANSFER-ENCODING", "Upgrade", "Content-Length",
        "content-length", "X-Request-Id", "x-request-id",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char text[128], part[96];
        snprintf(text, sizeof text, "{\"headers\":{\"%s\":\"1\"}}", names[i]);
        snprintf(part, sizeof part, "may not set the header \"%s\"", names[i]);
        expect_bad(text, part);
    }
}

static void duplicate_headers(void **state)
{
    (void)state;
    expect_bad("{\"headers\":{\"Location\":\"/a\",\"location\":\"/b\"}}", "the envelope's header \"location\" is given twice");
    expect_bad("{\"headers\":{\"X-A\":\"1\",\"X-A\":\"1\"}}", "\"X-A\" is given twice");
    expect_bad("{\"headers\":{\"Content-Type\":\"a/b\",\"CONTENT-TYPE\":\"c/d\"}}", "\"CONTENT-TYPE\" is given twice");
    expect_bad("{\"headers\":{\"X-\\u0041\":\"1\",\"x-a\":\"1\"}}", "given twice");
}

static void header_limits(void **state)
{
    (void)state;
    char text[8192];
    envelope_t e = ENVELOPE_INIT;
    /* ENVELOPE_HEADERS_MAX headers: fine; one more: refused */
    size_t n = (size_t)snprintf(text, sizeof text, "{\"headers\":{");
    for (int i = 0; i < ENVELOPE_HEADERS_MAX; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s\"X-%d\":\"%d\"", i ? "," : "", i, i);
    snprintf(text + n, sizeof text - n, "}}");
    expect_ok(&e, text);
    assert_int_equal(e.header_count, ENVELOPE_HEADERS_MAX);
    assert_string_equal(e.headers[ENVELOPE_HEADERS_MAX - 1].name, "X-15");
    assert_string_equal(e.headers[ENVELOPE_HEADERS_MAX - 1].value, "15");
    snprintf(text + n, sizeof text - n, ",\"X-more\":\"1\"}}");
    expect_bad(text, "more than 16 headers");
    /* ENVELOPE_HEADER_BYTES_MAX bytes: fine; one more: refused */
    char value[ENVELOPE_HEADER_BYTES_MAX + 2];
    memset(value, 'v', sizeof value);
    value[ENVELOPE_HEADER_BYTES_MAX - 1] = 0; /* "X" + 4095 bytes */
    snprintf(text, sizeof text, "{\"headers\":{\"X\":\"%s\"}}", value);
    expect_ok(&e, text);
    value[ENVELOPE_HEADER_BYTES_MAX - 1] = 'v';
    value[ENVELOPE_HEADER_BYTES_MAX] = 0;
    snprintf(text, sizeof text, "{\"headers\":{\"X\":\"%s\"}}", value);
    expect_bad(text, "larger than 4096 bytes");
    envelope_free(&e);
}

/* One envelope_t read again and again: nothing of one reply leaks into the
 * next, and a refused reply leaves it empty. */
static void reused(void **state)
{
    (void)state;
    envelope_t e = ENVELOPE_INIT;
    expect_ok(&e, "{\"status\":201,\"headers\":{\"Location\":\"/a\",\"Content-Type\":\"x/y\"},\"body\":1}");
    assert_int_equal(read1(&e, "{\"headers\":{\"Connection\":\"close\"}}"), ENVELOPE_BAD);
    assert_int_equal(e.header_count, 0);
    assert_null(e.content_type);
    assert_false(e.has_body);
    assert_int_equal(e.status, 200);
    expect_ok(&e, "{\"headers\":{\"ETag\":\"\\\"v1\\\"\"}}");
    assert_int_equal(e.status, 200);
    assert_int_equal(e.header_count, 1);
    assert_string_equal(e.headers[0].value, "\"v1\"");
    assert_null(e.content_type);
    assert_false(e.has_body);
    envelope_clear(&e, 0);
    assert_int_equal(e.text.cap, 0);
    envelope_free(&e);
}

/* A message never holds raw control bytes or quotes from the service. */
static void messages_are_clean(void **state)
{
    (void)state;
    const char *const texts[] = {
        "{\"headers\":{\"X\\r\\n\\\"\":\"v\"}}",
        "{\"\\u001b[31m\":1}",
        "{\"status\":\"\\r\\n\"}",
        "{\"headers\":{\"Location\":\"\\r\\n\"}}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        envelope_t e = ENVELOPE_INIT;
        assert_int_equal(read1(&e, texts[i]), ENVELOPE_BAD);
        for (const char *p = why; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                fail_msg("%s: message has byte 0x%02x: %s", texts[i], (unsigned char)*p, why);
        envelope_free(&e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_member),
        cmocka_unit_test(each_member_optional),
        cmocka_unit_test(statuses),
        cmocka_unit_test(content_type),
        cmocka_unit_test(header_values),
        cmocka_unit_test(value_counts),
        cmocka_unit_test(not_objects),
        cmocka_unit_test(other_members),
        cmocka_unit_test(header_shapes),
        cmocka_unit_test(header_names),
        cmocka_unit_test(header_injection),
        cmocka_unit_test(reserved_headers),
        cmocka_unit_test(duplicate_headers),
        cmocka_unit_test(header_limits),
        cmocka_unit_test(reused),
        cmocka_unit_test(messages_are_clean),
    };
    return cmocka_run_group_tests_name("envelope", tests, NULL, NULL);
}
