/* Tests of the upstream client's connection and pool state machines against
 * a scripted in-process upstream (real sockets, a thread per connection):
 * multiplexing, split frames, garbage, unknown ids, oversized replies,
 * silence, closes, cancels, lazy and eager pools, spreading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"
#include "support/dns.h"
#include "support/net.h"
#include "support/uvtest.h"

/* ---- scripts (run on the upstream's threads: no cmocka asserts) --------- */

typedef struct script_cfg {
    int reply_mode;          /* see the REPLY_* values */
    int delay_ms;
    atomic_int requests;     /* frames read */
    atomic_int events;       /* frames without an id */
    char last_frame[512];
} script_cfg_t;

enum { REPLY_ECHO, REPLY_SPLIT, REPLY_GARBAGE, REPLY_UNKNOWN_FIRST, REPLY_OVERSIZED,
       REPLY_LATE, REPLY_CLOSE, REPLY_REVERSE, REPLY_CLOSE_FIRST_CONN, REPLY_SLOW_STREAM };

/* Copies the "id" string token of a request into id (with quotes). */
static int request_id(const char *json, char *id, size_t cap)
{
    span_t v;
    if (!jscan_member(span_cstr(json), "id", &v) || v.n + 1 > cap)
        return 0;
    memcpy(id, v.p, v.n);
    id[v.n] = 0;
    return 1;
}

static void reply_echo(struct testnet_peer *peer, const char *json, const char *id)
{
    span_t data;
    if (!jscan_member(span_cstr(json), "data", &data))
        data = SPAN_LIT("null");
    char *out = malloc(data.n + 128);
    sprintf(out, "{\"id\":%s,\"response\":%.*s,\"isDisposed\":true}", id, (int)data.n, data.p);
    testnet_peer_send_frame(peer, out);
    free(out);
}

static void write_bytewise(struct testnet_peer *peer, const char *text)
{
    for (size_t i = 0; text[i]; i++)
        testnet_peer_write(peer, text + i, 1);
}

static void script(struct testnet_peer *peer, void *arg)
{
    script_cfg_t *cfg = arg;
    if (cfg->reply_mode == REPLY_CLOSE_FIRST_CONN && peer->index == 0) {
        testnet_peer_close(peer, false);
        return;
    }
    char *held[64];
    int nheld = 0;
    for (;;) {
        char *json = NULL, id[64];
        if (testnet_read_frame(&peer->reader, &json, -1) < 0)
            break;
        snprintf(cfg->last_frame, sizeof cfg->last_frame, "%s", json);
        if (!request_id(json, id, sizeof id)) {
            atomic_fetch_add(&cfg->events, 1);
            free(json);
            continue;
        }
        atomic_fetch_add(&cfg->requests, 1);
        switch (cfg->reply_mode) {
        case REPLY_SPLIT: {
            char *frame_json = malloc(strlen(json) + 256);
            sprintf(frame_json, "{\"id\":%s,\"response\":\"héllo 한국 😀\",\"isDisposed\":true}", id);
            char *frame = testnet_frame(frame_json);
            write_bytewise(peer, frame);
            free(frame);
            free(frame_json);
            break;
        }
        case REPLY_GARBAGE:
            testnet_peer_write(peer, "12x#{}", 6);
            break;
        case REPLY_UNKNOWN_FIRST:
            testnet_peer_send_frame(peer, "{\"id\":\"999999\",\"response\":0,\"isDisposed\":true}");
            reply_echo(peer, json, id);
            break;
        case REPLY_OVERSIZED: {
            char big[3000];
            memset(big, 'x', sizeof big);
            sprintf(big + 2000, "\"}");
            char *frame_json = malloc(4000);
            sprintf(frame_json, "{\"id\":%s,\"response\":\"%.2000s\"}", id, big);
            testnet_peer_send_frame(peer, frame_json);
            free(frame_json);
            break;
        }
        case REPLY_LATE:
            testnet_peer_sleep(peer, cfg->delay_ms);
            reply_echo(peer, json, id);
            break;
        case REPLY_SLOW_STREAM: /* 4 values, delay_ms apart */
            for (int v = 1; v <= 4; v++) {
                char frame_json[128];
                testnet_peer_sleep(peer, cfg->delay_ms);
                snprintf(frame_json, sizeof frame_json, "{\"id\":%s,\"response\":%d%s}", id, v,
                         v == 4 ? ",\"isDisposed\":true" : "");
                testnet_peer_send_frame(peer, frame_json);
            }
            break;
        case REPLY_CLOSE:
            free(json);
            testnet_peer_close(peer, false);
            goto out;
        case REPLY_REVERSE:
            held[nheld++] = json;
            json = NULL;
            if (nheld == cfg->delay_ms) { /* delay_ms doubles as the batch size here */
                for (int i = nheld - 1; i >= 0; i--) {
                    request_id(held[i], id, sizeof id);
                    reply_echo(peer, held[i], id);
                    free(held[i]);
                }
                nheld = 0;
            }
            break;
        default:
            reply_echo(peer, json, id);
        }
        free(json);
    }
out:
    for (int i = 0; i < nheld; i++)
        free(held[i]);
}

/* ---- fixture ------------------------------------------------------------ */

typedef struct fixture {
    uv_loop_t loop;
    upstream_t *up;
    struct testnet_upstream *server;
    script_cfg_t cfg;
    char address[32];
} fixture_t;

static fixture_t *start(int reply_mode)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->cfg.reply_mode = reply_mode;
    assert_int_equal(testnet_upstream_start(script, &f->cfg, &f->server), 0);
    snprintf(f->address, sizeof f->address, "127.0.0.1:%d", testnet_upstream_port(f->server));
    uv_loop_init(&f->loop);
    f->up = upstream_new(&f->loop);
    assert_non_null(f->up);
    return f;
}

static up_service_t *service(fixture_t *f, up_connect_mode_t mode)
{
    const char *eps[] = { f->address };
    return uvtest_service(f->up, "svc", eps, 1, 1, mode);
}

static void finish(fixture_t *f)
{
    assert_int_equal(uvtest_close(&f->loop, f->up), 0); /* the loop closes clean */
    testnet_upstream_stop(f->server);
    free(f);
}

/* ---- tests -------------------------------------------------------------- */

static void round_trip_byte_exact(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_ECHO);
    up_service_t *svc = service(f, UP_CONNECT_EAGER);
    uvtest_call_t c;
    const char *data = "{\"s\":\"héllo 한국 😀\",\"big\":12345678901234567890123,\"z\":\"\\u0000\\ud800\",\"r\":0.1}";
    uvtest_send_wait(&f->loop, svc, &c, "{\"cmd\":\"echo\"}", data, 5000);
    assert_int_equal(c.outcome, UP_OK);
    assert_int_equal(c.nvalues, 1);
    assert_int_equal(c.values.len, strlen(data) + 1);
    assert_memory_equal(c.values.data, data, strlen(data));
    /* the packet carried the pattern and data exactly as given */
    assert_non_null(strstr(f->cfg.last_frame, "\"pattern\":{\"cmd\":\"echo\"},\"data\":{\"s\":\"héllo"));
    uvtest_call_free(&c);
    finish(f);
}

static void split_reply_is_reassembled(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_SPLIT);
    up_service_t *svc = service(f, UP_CONNECT_EAGER);
    uvtest_call_t c;
    uvtest_send_wait(&f->loop, svc, &c, "\"x\"", "1", 5000);
    assert_int_equal(c.outcome, UP_OK);
    assert_string_equal(c.values.data, "\"héllo 한국 😀\"\n");
    uvtest_call_free(&c);
    finish(f);
}

static void garbage_fails_pending_and_drops_connection(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_GARBAGE);
    up_service_t *svc = service(f, UP_CONNECT_EAGER);
    uvtest_call_t c;
    uvtest_send_wait(&f->loop, svc, &c, "\"x\"", "1", 5000);
    assert_int_equal(c.outcome, UP_BAD_MESSAGE);
    assert_non_null(strstr(c.detail, "bad length prefix"));
    assert_int_equal(up_service_conns_in_state(svc, UP_CONN_CONNECTED), 0);
    uvtest_call_free(&c);
    finish(f);
}

static void unknown_id_is_dropped_and_counted(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_UNKNOWN_FIRST);
    up_service_t *svc = service(f, UP_CONNECT_EAGER);
    uvtest_call_t c;
    uvtest_send_wait(&f->loop, svc, &c, "\"x\"", "[7]", 5000);
    assert_int_equal(c.outcome, UP_OK);
    assert_string_equal(c.values.data, "[7]\n");
    assert_int_equal(up_service_stats(svc)->late_replies, 1);
    uvtest_call_free(&c);
    finish(f);
}

static void oversized_reply_is_bad_message(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_OVERSIZED);
    const char *eps[] = { f->address };
    up_service_opts_t o;
    up_service_opts_defaults(&o);
    o.name = "svc";
    o.endpoints = eps;
    o.n_endpoints = 1;
    o.max_message_bytes = 1000;
    char err[128];
    up_service_t *svc = up_service_add(f->up, &o, err, sizeof err);
    uvtest_call_t c;
    uvtest_send_wait(&f->loop, svc, &c, "\"x\"", "1", 5000);
    assert_int_equal(c.outcome, UP_BAD_MESSAGE);
    assert_non_null(strstr(c.detail, "exceeds the limit of 1000 bytes"));
    uvtest_call_free(&c);
    finish(f);
}

static int one_late_reply(void *svc)
{
    return up_service_stats(svc)->late_replies == 1;
}

static void silence_times_out_and_late_reply_is_counted(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_LATE);
    f->cfg.delay_ms = 700;
    up_service_t *svc = service(f, UP_CONNECT_EAGER);
    uvtest_call_t c;
    uvtest_send_wait(&f->loop, svc, &c, "\"x\"", "1", 200);
    assert_int_equal(c.outcome, UP_TIMEOUT);
    assert_int_equal(c.nvalues, 0);
    assert_true(uvtest_run_until(&f->loop, one_late_reply, svc, 10000));
    /* the connection stays up: a timeout is not the connection's fault */
    assert_int_equal(up_service_conns_in_state(svc, UP_CONN_CONNECTED), 1);
    uvtest_call_free(&c);
    finish(f);
}

static void close_fails_every_pending_request_at_once(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_CLOSE);
    up_service_t *svc = service(f, UP_CONNECT_EAGER);
    uvtest_call_t c[3];
    uint64_t t0 = uv_hrtime() / 1000000;
    for (int i = 0; i < 3; i++)
        uvtest_send(svc, &c[i], "\"x\"", "1", 30000);
    assert_true(uvtest_wait_all(&f->loop, c, 3, 20000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c[i].outcome, UP_CLOSED);
        assert_true(c[i].done_at - t0 < 15000); /* not at their 30 s timeout */
        uvtest_call_free(&c[i]);
    }
    finish(f);
}

static void replies_out_of_order_reach_their_requests(void **state)
{
    (void)state;
    enum { N = 40 };
    fixture_t *f = start(REPLY_REVERSE);
    /* the script answers each batch of N + 1 in reverse order */
    f->cfg.delay_ms = N + 1;
    up_service_t *svc = service(f, UP_CONNECT_EAGER);
    uvtest_call_t c0;
    /* all sent before the connection is up: they go out together */
    uvtest_send(svc, &c0, "\"warmup\"", "0", 5000);
    uvtest_call_t calls[N];
    for (int i = 0; i < N; i++) {
        char data[32];
        snprintf(data, sizeof data, "{\"n\":%d}", i);
        uvtest_send(svc, &calls[i], "\"x\"", data, 10000);
    }
    assert_true(uvtest_wait_all(&f->loop, calls, N, 20000));
    assert_true(uvtest_run_until(&f->loop, uvtest_is_done, &c0, 20000));
    assert_int_equal(c0.outcome, UP_OK);
    for (int i = 0; i < N; i++) {
        char expected[32];
        snprintf(expected, sizeof expected, "{\"n\":%d}\n", i);
        assert_int_equal(calls[i].outcome, UP_OK);
        assert_string_equal(calls[i].values.data, expected);
        uvtest_call_free(&calls[i]);
    }
    uvtest_call_free(&c0);
    finish(f);
}

static void emit_completes_once_written_and_has_no_id(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_ECHO);
    up_service_t *svc = service(f, UP_CONNECT_EAGER);
    uvtest_call_t e;
    uvtest_emit(svc, &e, "\"user_created\"", "{\"n\":\"한\"}");
    assert_true(uvtest_run_until(&f->loop, uvtest_is_done, &e, 5000));
    assert_int_equal(e.outcome, UP_OK);
    /* a request after it proves the event reached the script first */
    uvtest_call_t c;
    uvtest_send_wait(&f->loop, svc, &c, "\"x\"", "1", 5000);
    assert_int_equal(atomic_load(&f->cfg.events), 1);
    assert_int_equal(up_service_stats(svc)->outcomes[1][UP_OK], 1);
    uvtest_call_free(&e);
    uvtest_call_free(&c);
    finish(f);
}

/* What the packet observer saw. */
typedef struct observed {
    int out, in;
    char out_json[256], in_json[256], service[32], endpoint[64];
} observed_t;

static void observe(void *ctx, const up_packet_t *p)
{
    observed_t *o = ctx;
    char *dst = p->direction == UP_PACKET_OUT ? o->out_json : o->in_json;
    snprintf(dst, sizeof o->out_json, "%.*s", (int)p->json.n, p->json.p);
    *(p->direction == UP_PACKET_OUT ? &o->out : &o->in) += 1;
    snprintf(o->service, sizeof o->service, "%s", p->service);
    snprintf(o->endpoint, sizeof o->endpoint, "%s", p->endpoint);
}

static int is_connected(void *svc);

/* up_request_address: NULL until written, then the endpoint; the packet
 * observer sees the request and the reply as JSON text, without framing. */
static void address_and_packet_observer(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_ECHO);
    observed_t o = { 0 };
    upstream_set_packet_observer(f->up, observe, &o);
    up_service_t *svc = service(f, UP_CONNECT_LAZY);
    uvtest_call_t c;
    uvtest_send(svc, &c, "{\"cmd\":\"echo\"}", "[1,2]", 5000);
    assert_null(up_request_address(c.req)); /* lazy: waits for its connection */
    assert_int_equal(o.out, 0);
    assert_true(uvtest_run_until(&f->loop, uvtest_is_done, &c, 5000));
    assert_int_equal(c.outcome, UP_OK);
    assert_int_equal(o.out, 1);
    assert_int_equal(o.in, 1);
    assert_string_equal(o.service, "svc");
    assert_string_equal(o.endpoint, f->address);
    assert_non_null(strstr(o.out_json, "\"pattern\":{\"cmd\":\"echo\"},\"data\":[1,2]"));
    assert_int_equal(o.out_json[0], '{');
    assert_non_null(strstr(o.in_json, "\"response\":[1,2]"));
    uvtest_call_free(&c);
    /* connected now: written at once, and observed from inside up_send */
    uvtest_send(svc, &c, "\"x\"", "3", 5000);
    assert_non_null(up_request_address(c.req));
    assert_string_equal(up_request_address(c.req), f->address);
    assert_int_equal(o.out, 2);
    upstream_set_packet_observer(f->up, NULL, NULL);
    assert_true(uvtest_run_until(&f->loop, uvtest_is_done, &c, 5000));
    assert_int_equal(o.in, 1); /* no observer: not seen */
    uvtest_call_free(&c);
    finish(f);
}

static int is_connected(void *svc)
{
    return up_service_conns_in_state(svc, UP_CONN_CONNECTED) == 1;
}

static up_service_t *the_service(fixture_t *f)
{
    return up_service_find(f->up, "svc");
}

/* The first connection was closed by the script and a second one is up. */
static int reconnected(void *arg)
{
    fixture_t *f = arg;
    return testnet_upstream_accepted(f->server) >= 2 && is_connected(the_service(f));
}

static void cancelled_request_gets_no_callback(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_LATE);
    f->cfg.delay_ms = 300;
    up_service_t *svc = service(f, UP_CONNECT_EAGER);
    assert_true(uvtest_run_until(&f->loop, is_connected, svc, 10000));
    uvtest_call_t c;
    uvtest_send(svc, &c, "\"x\"", "1", 10000); /* written: its reply will come */
    up_cancel(c.req);
    assert_true(uvtest_run_until(&f->loop, one_late_reply, svc, 10000));
    assert_false(c.done);
    assert_int_equal(up_service_stats(svc)->outcomes[0][UP_CANCELLED], 1);
    assert_int_equal(upstream_inflight(f->up), 0);
    uvtest_call_free(&c);
    finish(f);
}

static void lazy_pool_connects_on_first_use(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_ECHO);
    up_service_t *svc = service(f, UP_CONNECT_LAZY);
    assert_int_equal(up_service_conns_in_state(svc, UP_CONN_DISCONNECTED), 1);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(testnet_upstream_accepted(f->server), 0);
    uvtest_call_t c;
    uvtest_send_wait(&f->loop, svc, &c, "\"x\"", "\"first\"", 5000);
    assert_int_equal(c.outcome, UP_OK); /* waited for the attempt it started */
    assert_int_equal(testnet_upstream_accepted(f->server), 1);
    uvtest_call_free(&c);
    finish(f);
}

static void eager_pool_reconnects_by_itself(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_CLOSE_FIRST_CONN);
    up_service_t *svc = service(f, UP_CONNECT_EAGER);
    assert_true(uvtest_run_until(&f->loop, reconnected, f, 20000));
    uvtest_call_t c;
    uvtest_send_wait(&f->loop, svc, &c, "\"x\"", "2", 5000);
    assert_int_equal(c.outcome, UP_OK);
    assert_int_equal(up_service_stats(svc)->connects_ok, 2);
    uvtest_call_free(&c);
    finish(f);
}

static void refused_fails_at_once_without_retries(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    upstream_t *up = upstream_new(&loop);
    char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", testnet_free_port());
    const char *eps[] = { address };
    up_service_t *svc = uvtest_service(up, "down", eps, 1, 1, UP_CONNECT_LAZY);
    uvtest_call_t c;
    uvtest_send(svc, &c, "\"x\"", "1", 30000);
    assert_false(c.done); /* never from inside up_send */
    assert_true(uvtest_run_until(&loop, uvtest_is_done, &c, 10000));
    assert_int_equal(c.outcome, UP_UNAVAILABLE);
    assert_non_null(strstr(c.detail, "connection refused"));
    uvtest_call_free(&c);
    assert_int_equal(uvtest_close(&loop, up), 0);
}

static void dns_name_tries_every_address(void **state)
{
    (void)state;
    /* "localhost" may resolve to ::1 first while the upstream listens on
     * 127.0.0.1 only: the attempt must move on to the next address */
    fixture_t *f = start(REPLY_ECHO);
    char address[32];
    snprintf(address, sizeof address, "localhost:%d", testnet_upstream_port(f->server));
    const char *eps[] = { address };
    up_service_t *svc = uvtest_service(f->up, "byname", eps, 1, 1, UP_CONNECT_LAZY);
    uvtest_call_t c;
    uvtest_send_wait(&f->loop, svc, &c, "\"x\"", "\"by name\"", 5000);
    assert_int_equal(c.outcome, UP_OK);
    assert_string_equal(c.values.data, "\"by name\"\n");
    uvtest_call_free(&c);
    finish(f);
}

static void unresolvable_name_is_unavailable(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    upstream_t *up = upstream_new(&loop);
    const char *eps[] = { "no-such-host.invalid:3000" };
    up_service_t *svc = uvtest_service(up, "nowhere", eps, 1, 1, UP_CONNECT_LAZY);
    uvtest_call_t c;
    uvtest_send_wait(&loop, svc, &c, "\"x\"", "1", 5000);
    assert_int_equal(c.outcome, UP_UNAVAILABLE);
    /* a resolver that answers slowly hits the connect timeout instead */
    assert_true(strstr(c.detail, "cannot resolve host") || strstr(c.detail, "connect timed out"));
    uvtest_call_free(&c);
    assert_int_equal(uvtest_close(&loop, up), 0);
}

static void stream_timeout_bounds_each_value(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_SLOW_STREAM);
    f->cfg.delay_ms = 250; /* the whole reply takes ~1 s, each gap 250 ms */
    up_service_t *svc = service(f, UP_CONNECT_EAGER);
    assert_true(uvtest_run_until(&f->loop, is_connected, svc, 10000));
    uvtest_call_t stream;
    memset(&stream, 0, sizeof stream);
    stream.req = up_stream(svc, SPAN_LIT("\"s\""), SPAN_LIT("1"), span_of(NULL, 0), 700, &uvtest_callbacks, &stream);
    assert_true(uvtest_run_until(&f->loop, uvtest_is_done, &stream, 20000));
    assert_int_equal(stream.outcome, UP_OK);
    assert_string_equal(stream.values.data, "1\n2\n3\n4\n");
    /* the same reply through up_send: 700 ms bound the whole of it */
    uvtest_call_t whole;
    uvtest_send_wait(&f->loop, svc, &whole, "\"s\"", "1", 700);
    assert_int_equal(whole.outcome, UP_TIMEOUT);
    assert_true(whole.nvalues < 4);
    uvtest_call_free(&stream);
    uvtest_call_free(&whole);
    finish(f);
}

static void bad_endpoint_is_rejected(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    upstream_t *up = upstream_new(&loop);
    static const char *bad[] = { "nohost", "host:", ":80", "h:0", "h:65536", "h:12x", "[::1:80" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        up_service_opts_t o;
        up_service_opts_defaults(&o);
        o.name = "x";
        o.endpoints = &bad[i];
        o.n_endpoints = 1;
        char err[128];
        assert_null(up_service_add(up, &o, err, sizeof err));
        assert_non_null(strstr(err, "expected \"host:port\""));
    }
    assert_int_equal(uvtest_close(&loop, up), 0);
}

static void requests_spread_over_endpoints(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_ECHO);
    script_cfg_t bcfg = { .reply_mode = REPLY_ECHO };
    struct testnet_upstream *b;
    assert_int_equal(testnet_upstream_start(script, &bcfg, &b), 0);
    char baddr[32];
    snprintf(baddr, sizeof baddr, "127.0.0.1:%d", testnet_upstream_port(b));
    const char *eps[] = { f->address, baddr };
    up_service_t *svc = uvtest_service(f->up, "two", eps, 2, 1, UP_CONNECT_EAGER);
    for (int i = 0; i < 20; i++) {
        uvtest_call_t c;
        uvtest_send_wait(&f->loop, svc, &c, "\"x\"", "1", 5000);
        assert_int_equal(c.outcome, UP_OK);
        uvtest_call_free(&c);
    }
    assert_true(atomic_load(&f->cfg.requests) >= 5);
    assert_true(atomic_load(&bcfg.requests) >= 5);
    /* one endpoint dies: the other keeps serving */
    testnet_upstream_stop(b);
    for (int i = 0; i < 10; i++) {
        uvtest_call_t c;
        uvtest_send_wait(&f->loop, svc, &c, "\"x\"", "1", 5000);
        if (i >= 2) /* requests already on the dying connection may fail closed */
            assert_int_equal(c.outcome, UP_OK);
        uvtest_call_free(&c);
    }
    finish(f);
}

static int both_connected(void *svc)
{
    return up_service_conns_in_state(svc, UP_CONN_CONNECTED) == 2;
}

/* A fanout event whose caller goes away before its copies are written:
 * the copies still go out (and complete) without a caller to tell. */
static void fanout_cancelled_before_written(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_ECHO);
    script_cfg_t bcfg = { .reply_mode = REPLY_ECHO };
    struct testnet_upstream *b;
    assert_int_equal(testnet_upstream_start(script, &bcfg, &b), 0);
    char baddr[32];
    snprintf(baddr, sizeof baddr, "127.0.0.1:%d", testnet_upstream_port(b));
    const char *eps[] = { f->address, baddr };
    up_service_t *svc = uvtest_service(f->up, "two", eps, 2, 1, UP_CONNECT_EAGER);
    assert_true(uvtest_run_until(&f->loop, both_connected, svc, 10000));
    uvtest_call_t e;
    memset(&e, 0, sizeof e);
    up_request_opts_t o = { 0, 0, true };
    e.req = up_submit(svc, UP_KIND_EMIT, span_cstr("\"ev\""), span_cstr("1"), span_of(NULL, 0), &o,
                      &uvtest_callbacks, &e);
    assert_non_null(e.req);
    up_cancel(e.req); /* its copies are queued, not yet written */
    uvtest_call_t c; /* a request after it: the events were written first */
    uvtest_send_wait(&f->loop, svc, &c, "\"x\"", "1", 5000);
    assert_false(e.done);
    uvtest_call_free(&c);
    uvtest_call_free(&e);
    finish(f);
    testnet_upstream_stop(b);
}

/* A service taken away (a reload) while a request with retries is in
 * flight: the request fails closed, nothing is sent again. */
static void removed_service_does_not_retry(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_LATE);
    f->cfg.delay_ms = 300;
    up_service_t *svc = service(f, UP_CONNECT_EAGER);
    assert_true(uvtest_run_until(&f->loop, is_connected, svc, 10000));
    uvtest_call_t c;
    memset(&c, 0, sizeof c);
    up_request_opts_t o = { 10000, 2, false };
    c.req = up_submit(svc, UP_KIND_SEND, span_cstr("\"x\""), span_cstr("1"), span_of(NULL, 0), &o,
                      &uvtest_callbacks, &c);
    assert_non_null(c.req);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* written */
    up_service_remove(svc, "the service was removed");
    assert_true(uvtest_run_until(&f->loop, uvtest_is_done, &c, 5000));
    assert_int_equal(c.outcome, UP_CLOSED);
    uvtest_call_free(&c);
    finish(f);
}

static int all_70_connected(void *svc)
{
    return up_service_conns_in_state(svc, UP_CONN_CONNECTED) == 70;
}

/* More endpoints than a fixed candidate array once held (64): round robin
 * reaches every one, twice in two rounds. */
static void every_endpoint_of_many_is_picked(void **state)
{
    (void)state;
    fixture_t *f = start(REPLY_ECHO);
    const char *eps[70];
    for (int i = 0; i < 70; i++)
        eps[i] = f->address; /* 70 targets: 70 endpoints, one server */
    up_service_opts_t o;
    up_service_opts_defaults(&o);
    o.name = "many";
    o.endpoints = eps;
    o.n_endpoints = 70;
    o.balance = UP_BALANCE_ROUND_ROBIN;
    char err[160];
    up_service_t *svc = up_service_add(f->up, &o, err, sizeof err);
    assert_non_null(svc);
    assert_int_equal(up_service_endpoint_count(svc), 70);
    assert_true(uvtest_run_until(&f->loop, all_70_connected, svc, 20000));
    for (int i = 0; i < 140; i++) {
        uvtest_call_t c;
        uvtest_send_wait(&f->loop, svc, &c, "\"x\"", "1", 5000);
        assert_int_equal(c.outcome, UP_OK);
        uvtest_call_free(&c);
    }
    for (size_t e = 0; e < 70; e++) {
        up_endpoint_info_t info;
        up_service_endpoint_info(svc, e, &info);
        assert_int_equal(info.requests, 2);
    }
    finish(f);
}

/* ---- a name whose lookups start failing ---------------------------------- */

typedef struct dns_count {
    up_service_stats_t *stats;
    unsigned result;
    uint64_t at_least;
} dns_count_t;

static int dns_count_reached(void *arg)
{
    const dns_count_t *d = arg;
    return atomic_load_explicit(&d->stats->dns[d->result], memory_order_relaxed) >= d->at_least;
}

static void failed_lookup_waits_for_the_interval(void **state)
{
    (void)state;
    /* the name resolves (TTL 1 s), then vanishes: the failures that follow
     * come every resolve_interval_ms (2 s), not every second, and the
     * endpoint keeps serving */
    fixture_t *f = start(REPLY_ECHO);
    struct dns_server dns;
    char hosts[64];
    snprintf(hosts, sizeof hosts, "127.0.0.1 svc.pg-test\n");
    assert_int_equal(dns_start(&dns, hosts, NULL), 0);
    const char *servers[] = { dns.address };
    assert_int_equal(upstream_set_dns_servers(f->up, servers, 1, NULL, 0), 0);
    char address[64];
    snprintf(address, sizeof address, "svc.pg-test:%d", testnet_upstream_port(f->server));
    up_service_opts_t o;
    up_service_opts_defaults(&o);
    const char *eps[] = { address };
    o.name = "named";
    o.endpoints = eps;
    o.n_endpoints = 1;
    o.resolve_interval_ms = 2000;
    up_service_stats_t stats;
    memset(&stats, 0, sizeof stats);
    o.stats = &stats;
    up_service_t *svc = up_service_add(f->up, &o, NULL, 0);
    assert_non_null(svc);
    dns_count_t ok = { &stats, UP_DNS_OK, 1 };
    assert_true(uvtest_run_until(&f->loop, dns_count_reached, &ok, 10000));

    assert_int_equal(dns_set_hosts(&dns, ""), 0);
    dns_count_t empty = { &stats, UP_DNS_EMPTY, 1 };
    assert_true(uvtest_run_until(&f->loop, dns_count_reached, &empty, 10000));
    uint64_t first = uv_now(&f->loop);
    empty.at_least = 2;
    assert_true(uvtest_run_until(&f->loop, dns_count_reached, &empty, 10000));
    uv_update_time(&f->loop);
    uint64_t gap = uv_now(&f->loop) - first;
    assert_true(gap >= 1900); /* a lower bound: a loaded machine only adds */

    uvtest_call_t c;
    uvtest_send_wait(&f->loop, svc, &c, "\"x\"", "\"still here\"", 5000);
    assert_int_equal(c.outcome, UP_OK);
    const char *why;
    uint64_t resolved_at;
    up_service_resolve_info(svc, &resolved_at, &why);
    assert_non_null(strstr(why, "svc.pg-test"));
    uvtest_call_free(&c);
    finish(f);
    dns_free(&dns);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_byte_exact),
        cmocka_unit_test(split_reply_is_reassembled),
        cmocka_unit_test(garbage_fails_pending_and_drops_connection),
        cmocka_unit_test(unknown_id_is_dropped_and_counted),
        cmocka_unit_test(oversized_reply_is_bad_message),
        cmocka_unit_test(silence_times_out_and_late_reply_is_counted),
        cmocka_unit_test(close_fails_every_pending_request_at_once),
        cmocka_unit_test(replies_out_of_order_reach_their_requests),
        cmocka_unit_test(emit_completes_once_written_and_has_no_id),
        cmocka_unit_test(cancelled_request_gets_no_callback),
        cmocka_unit_test(lazy_pool_connects_on_first_use),
        cmocka_unit_test(eager_pool_reconnects_by_itself),
        cmocka_unit_test(refused_fails_at_once_without_retries),
        cmocka_unit_test(dns_name_tries_every_address),
        cmocka_unit_test(failed_lookup_waits_for_the_interval),
        cmocka_unit_test(unresolvable_name_is_unavailable),
        cmocka_unit_test(stream_timeout_bounds_each_value),
        cmocka_unit_test(bad_endpoint_is_rejected),
        cmocka_unit_test(requests_spread_over_endpoints),
        cmocka_unit_test(fanout_cancelled_before_written),
        cmocka_unit_test(removed_service_does_not_retry),
        cmocka_unit_test(every_endpoint_of_many_is_picked),
        cmocka_unit_test(address_and_packet_observer),
    };
    return cmocka_run_group_tests_name("upstream", tests, NULL, NULL);
}
