/* Unit tests of gateway/stream: NDJSON and SSE framing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gateway/stream.h"

static void expect(buf_t *b, const char *text)
{
    assert_int_equal(b->len, strlen(text));
    assert_memory_equal(b->data, text, b->len);
    buf_clear(b);
}

static void ndjson_lines(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    stream_append_value(&b, CONFIG_REPLY_NDJSON, SPAN_LIT("{\"s\":\"é 😀\",\"n\":12345678901234567890123}"));
    expect(&b, "{\"s\":\"é 😀\",\"n\":12345678901234567890123}\n");
    stream_append_value(&b, CONFIG_REPLY_NDJSON, SPAN_LIT("[1,\n 2]"));
    expect(&b, "[1,  2]\n");
    stream_append_error(&b, CONFIG_REPLY_NDJSON, SPAN_LIT("{\"statusCode\":504}"));
    expect(&b, "{\"error\":{\"statusCode\":504}}\n");
    stream_append_end(&b, CONFIG_REPLY_NDJSON);
    expect(&b, "");
    assert_string_equal(stream_content_type(CONFIG_REPLY_NDJSON), "application/x-ndjson");
    buf_free(&b);
}

static void sse_events(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    stream_append_value(&b, CONFIG_REPLY_SSE, SPAN_LIT("\"\\ud800\""));
    expect(&b, "data: \"\\ud800\"\n\n");
    stream_append_value(&b, CONFIG_REPLY_SSE, SPAN_LIT("{\r\n\"a\":1\n}"));
    expect(&b, "data: {\ndata: \ndata: \"a\":1\ndata: }\n\n");
    stream_append_error(&b, CONFIG_REPLY_SSE, SPAN_LIT("{\"statusCode\":500}"));
    expect(&b, "event: error\ndata: {\"statusCode\":500}\n\n");
    stream_append_end(&b, CONFIG_REPLY_SSE);
    expect(&b, "event: end\ndata: null\n\n");
    stream_append_keepalive(&b);
    expect(&b, ": keepalive\n\n");
    assert_string_equal(stream_content_type(CONFIG_REPLY_SSE), "text/event-stream");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ndjson_lines),
        cmocka_unit_test(sse_events),
    };
    return cmocka_run_group_tests_name("stream", tests, NULL, NULL);
}
