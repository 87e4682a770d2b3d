/* The wire codec against real Nest 12 and Nest 10 servers: a small blocking
 * client built only on core/frame and core/message sends requests and reads
 * replies; multi-byte text and hostile values must round-trip byte-exactly,
 * and two requests in flight on one connection get their own replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/frame.h"
#include "core/message.h"
#include "support/nest.h"
#include "support/net.h"

typedef struct client {
    int fd;
    frame_decoder_t in;
} client_t;

static void client_open(client_t *c, int port)
{
    c->fd = testnet_connect(port, 10000);
    assert_true(c->fd >= 0);
    frame_decoder_init(&c->in, 64 << 20);
}

static void client_close(client_t *c)
{
    close(c->fd);
    frame_decoder_free(&c->in);
}

static void send_request(client_t *c, const char *pattern, const char *data, const char *id)
{
    buf_t out = BUF_INIT;
    assert_int_equal(msg_encode_request(&out, span_cstr(pattern), span_cstr(data), span_cstr(id), span_of(NULL, 0)), 0);
    assert_int_equal(testnet_write_all(c->fd, out.data, out.len, 10000), 0);
    buf_free(&out);
}

/* Reads until the next reply; its value is copied into *value (caller frees). */
static msg_reply_t read_reply(client_t *c, char **value, char **id)
{
    for (;;) {
        span_t m;
        int rc = frame_decoder_next(&c->in, &m);
        assert_int_not_equal(rc, FRAME_ERROR);
        if (rc == FRAME_MESSAGE) {
            msg_reply_t r;
            char why[160];
            if (msg_read_reply(m, &r, why, sizeof why))
                fail_msg("bad reply %.*s: %s", (int)m.n, m.p, why);
            *value = strndup(r.value.p ? r.value.p : "", r.value.n);
            *id = strndup(r.id.p, r.id.n);
            return r;
        }
        size_t avail;
        char *space = frame_decoder_space(&c->in, 65536, &avail);
        ssize_t n = testnet_read_some(c->fd, space, avail, 30000);
        if (n <= 0)
            fail_msg("connection ended or timed out while waiting for a reply (%zd)", n);
        frame_decoder_commit(&c->in, (size_t)n);
    }
}




/* Data that JSON.parse + JSON.stringify reproduce exactly, so the echo must
 * come back byte for byte. */
static const char *exact_samples[] = {
    "\"héllo 한국 😀\"",
    "{\"s\":\"Ünïcödé ✓ 𝄞 日本語 🎉🎉\",\"arr\":[1,-2.5,\"é\",null,true]}",
    "\"\\u0000 and \\ud800 and \\udfff lone\"",
    "{\"nested\":{\"emoji\":\"👩‍👩‍👧‍👦\",\"quote\":\"\\\"q\\\"\",\"nl\":\"a\\nb\"}}",
    "[]",
};

static void echo_round_trips_byte_exact(void **state)
{
    struct nest_group *g = *state;
    client_t c;
    client_open(&c, g->svc.port);
    for (size_t i = 0; i < sizeof exact_samples / sizeof exact_samples[0]; i++) {
        char id[16];
        snprintf(id, sizeof id, "r%zu", i);
        send_request(&c, "{\"cmd\":\"echo\"}", exact_samples[i], id);
        char *value, *rid;
        msg_reply_t r = read_reply(&c, &value, &rid);
        assert_int_equal(r.kind, MSG_REPLY_LAST_VALUE);
        assert_string_equal(rid, id);
        assert_string_equal(value, exact_samples[i]);
        free(value);
        free(rid);
    }
    client_close(&c);
}

static void large_multibyte_payload(void **state)
{
    struct nest_group *g = *state;
    buf_t data = BUF_INIT;
    buf_append_cstr(&data, "\"");
    while (data.len < 1 << 20)
        buf_append_cstr(&data, "abc é 한국어 😀 ");
    buf_append_cstr(&data, "\"");
    buf_append(&data, "", 1); /* NUL for the string API below */
    client_t c;
    client_open(&c, g->svc.port);
    send_request(&c, "\"echo\"", data.data, "big");
    char *value, *rid;
    msg_reply_t r = read_reply(&c, &value, &rid);
    assert_int_equal(r.kind, MSG_REPLY_LAST_VALUE);
    assert_int_equal(strlen(value), data.len - 1);
    assert_true(strcmp(value, data.data) == 0);
    free(value);
    free(rid);
    client_close(&c);
    buf_free(&data);
}

static void two_requests_in_flight_get_their_own_replies(void **state)
{
    struct nest_group *g = *state;
    client_t c;
    client_open(&c, g->svc.port);
    /* both packets in one write: the slow one first */
    buf_t out = BUF_INIT;
    msg_encode_request(&out, SPAN_LIT("{\"cmd\":\"delay\"}"), SPAN_LIT("{\"ms\":400,\"value\":\"slow é\"}"),
                       SPAN_LIT("a"), span_of(NULL, 0));
    msg_encode_request(&out, SPAN_LIT("{\"cmd\":\"echo\"}"), SPAN_LIT("\"fast 😀\""), SPAN_LIT("b"),
                       span_of(NULL, 0));
    assert_int_equal(testnet_write_all(c.fd, out.data, out.len, 10000), 0);
    buf_free(&out);
    char *v1, *id1, *v2, *id2;
    read_reply(&c, &v1, &id1);
    read_reply(&c, &v2, &id2);
    assert_string_equal(id1, "b"); /* the fast one overtakes */
    assert_string_equal(v1, "\"fast 😀\"");
    assert_string_equal(id2, "a");
    assert_string_equal(v2, "\"slow é\"");
    free(v1); free(id1); free(v2); free(id2);
    client_close(&c);
}

static void every_reply_shape(void **state)
{
    struct nest_group *g = *state;
    client_t c;
    client_open(&c, g->svc.port);
    char *v, *id;

    send_request(&c, "{\"cmd\":\"stream\"}", "{\"values\":[\"a\",\"한\"],\"interval_ms\":10}", "s");
    assert_int_equal(read_reply(&c, &v, &id).kind, MSG_REPLY_VALUE);
    assert_string_equal(v, "\"a\"");
    free(v); free(id);
    msg_reply_t r = read_reply(&c, &v, &id);
    /* the last value and the completion may share a packet or not */
    assert_true(r.kind == MSG_REPLY_LAST_VALUE || r.kind == MSG_REPLY_VALUE);
    assert_string_equal(v, "\"한\"");
    if (r.kind == MSG_REPLY_VALUE) {
        free(v); free(id);
        assert_int_equal(read_reply(&c, &v, &id).kind, MSG_REPLY_DONE);
    }
    free(v); free(id);

    send_request(&c, "{\"cmd\":\"nothing\"}", "null", "n");
    assert_int_equal(read_reply(&c, &v, &id).kind, MSG_REPLY_DONE);
    free(v); free(id);

    send_request(&c, "{\"cmd\":\"rpc_object\"}", "{\"statusCode\":403,\"message\":\"nope\"}", "e");
    assert_int_equal(read_reply(&c, &v, &id).kind, MSG_REPLY_ERROR);
    assert_string_equal(v, "{\"statusCode\":403,\"message\":\"nope\"}");
    free(v); free(id);

    send_request(&c, "\"no such pattern\"", "null", "h");
    assert_int_equal(read_reply(&c, &v, &id).kind, MSG_REPLY_NO_HANDLER);
    assert_string_equal(id, "h");
    free(v); free(id);
    client_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(echo_round_trips_byte_exact),
        cmocka_unit_test(large_multibyte_payload),
        cmocka_unit_test(two_requests_in_flight_get_their_own_replies),
        cmocka_unit_test(every_reply_shape),
    };
    int failed = cmocka_run_group_tests_name("codec_nest12", tests, nest_group_setup_v12, nest_group_teardown);
    failed += cmocka_run_group_tests_name("codec_nest10", tests, nest_group_setup_v10, nest_group_teardown);
    return failed;
}
