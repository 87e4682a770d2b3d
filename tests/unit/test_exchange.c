/* The exchange state machine (gateway/exchange.h) driven through every
 * transition with a fake HTTP layer: the test plays libmicrohttpd (its
 * calls of the access handler, the content reader and the completion
 * callback, and the hang-up watch), and a fake handler answers as the
 * test says. The fake HTTP layer checks MHD's own rules as it goes:
 * suspend only a running connection, resume only a suspended one, queue
 * once and only inside an access handler call, watch for hang-ups only
 * while suspended. Drain and hang-ups are tried in every state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gateway/exchange.h"

/* ---- the fake HTTP layer ----------------------------------------------------- */

/* One client connection, as MHD would hold it. */
typedef struct fake_conn {
    int no_body;              /* the request head announces no body */
    int suspended;            /* MHD_suspend_connection was called */
    int resume_pending;       /* resumed; MHD has not run it yet */
    exchange_t *watched;      /* the hang-up watch's owner */
    int in_handler;           /* inside a call of the access handler */
    int queued;               /* responses queued */
    unsigned status;
    char headers[1024];       /* "Name: value\n"... */
    buf_t body;               /* a whole response's body */
    MHD_ContentReaderCallback reader;
    void *reader_ctx;
    void *con_cls;            /* MHD's per-request pointer */
    buf_t received;           /* what the reader handed out */
    int stream_end;           /* 1 end of stream, 2 end with error */
    int no_length;            /* queued without a length (a stream's head) */
} fake_conn_t;

static struct MHD_Connection *mhd(fake_conn_t *c) { return (struct MHD_Connection *)c; }
static fake_conn_t *fake(struct MHD_Connection *c) { return (fake_conn_t *)c; }

static void fake_suspend(void *server, struct MHD_Connection *c)
{
    (void)server;
    assert_false(fake(c)->suspended);
    fake(c)->suspended = 1;
}

static void fake_resume(void *server, struct MHD_Connection *c)
{
    (void)server;
    assert_true(fake(c)->suspended); /* resuming a running connection is UB in MHD */
    fake(c)->suspended = 0;
    fake(c)->resume_pending = 1;
}

static void fake_watch(void *server, struct MHD_Connection *c, exchange_t *ex)
{
    (void)server;
    if (ex)
        assert_true(fake(c)->suspended);
    fake(c)->watched = ex;
}

static enum MHD_Result fake_queue(void *server, struct MHD_Connection *c, const ex_response_t *r)
{
    (void)server;
    fake_conn_t *fc = fake(c);
    assert_true(fc->in_handler);
    assert_int_equal(fc->queued, 0);
    fc->queued++;
    fc->status = r->status;
    fc->no_length = r->no_length;
    fc->headers[0] = 0;
    for (size_t i = 0; i < r->n_headers; i++)
        snprintf(fc->headers + strlen(fc->headers), sizeof fc->headers - strlen(fc->headers), "%s: %s\n",
                 r->headers[i].name, r->headers[i].value);
    if (r->stream) {
        fc->reader = r->stream;
        fc->reader_ctx = r->stream_ctx;
    } else {
        buf_append(&fc->body, r->body ? r->body : "", r->body_len);
    }
    return MHD_YES;
}

static int fake_has_body(void *server, struct MHD_Connection *c)
{
    (void)server;
    return !fake(c)->no_body;
}

static const ex_http_t fake_http = { fake_suspend, fake_resume, fake_watch, fake_queue, fake_has_body };

/* ---- the fake handler ----------------------------------------------------------- */

typedef enum action {
    DO_READ_BODY,       /* on_head */
    DO_ANSWER_404,      /* on_head or on_body_end */
    DO_ANSWER_CLOSE,    /* on_head: 400 with Connection: close */
    DO_STREAM_HEAD,     /* on_body_end: a HEAD request on a stream route */
    DO_GATHER,          /* on_head */
    DO_WAIT,            /* on_body_end: the request goes upstream */
    DO_STREAM_NDJSON,   /* on_body_end: written at once */
    DO_STREAM_SSE,
    DO_NOTHING,         /* a handler bug */
} action_t;

typedef struct fixture {
    uv_loop_t loop;
    ex_pool_t *pool;
    ex_listener_t listener;
    action_t at_head, at_body_end;
    size_t max_buffered;
    const char *vary[3];      /* Vary headers on_head adds */
    int cancels, completes, recycles, bodies;
    unsigned last_status;
    char last_error[64];
    uint64_t last_bytes;
} fixture_t;

static fixture_t *F;

typedef struct test_request {
    exchange_t ex;            /* first, as the pool wants */
    char id[8];
} test_request_t;

static void h_head(void *ctx, exchange_t *ex)
{
    fixture_t *f = ctx;
    ex_header(ex, "X-Request-Id", "r1");
    for (size_t i = 0; i < sizeof f->vary / sizeof f->vary[0] && f->vary[i]; i++)
        ex_header(ex, "Vary", f->vary[i]);
    switch (f->at_head) {
    case DO_READ_BODY: ex_read_body(ex); break;
    case DO_ANSWER_404: ex_fail(ex, GW_ERR_NOT_FOUND, NULL, span_of(NULL, 0)); break;
    case DO_ANSWER_CLOSE:
        ex_header(ex, "Connection", "close");
        ex_fail(ex, GW_ERR_BAD_REQUEST, NULL, span_of(NULL, 0));
        break;
    case DO_GATHER: ex_wait_workers(ex); break;
    default: break;
    }
}

static void h_body(void *ctx, exchange_t *ex, const char *data, size_t n)
{
    (void)ex;
    (void)data;
    fixture_t *f = ctx;
    f->bodies += (int)n;
}

static void h_body_end(void *ctx, exchange_t *ex)
{
    fixture_t *f = ctx;
    switch (f->at_body_end) {
    case DO_ANSWER_404: ex_fail(ex, GW_ERR_NOT_FOUND, NULL, span_of(NULL, 0)); break;
    case DO_WAIT: ex_wait_upstream(ex); break;
    case DO_STREAM_NDJSON: ex_stream_open(ex, 200, CONFIG_REPLY_NDJSON, f->max_buffered); break;
    case DO_STREAM_SSE: ex_stream_open(ex, 200, CONFIG_REPLY_SSE, f->max_buffered); break;
    case DO_STREAM_HEAD: ex_stream_head(ex, 200, CONFIG_REPLY_SSE); break;
    default: break;
    }
}

static void h_cancel(void *ctx, exchange_t *ex)
{
    (void)ex;
    ((fixture_t *)ctx)->cancels++;
}

static void h_complete(void *ctx, exchange_t *ex)
{
    fixture_t *f = ctx;
    f->completes++;
    f->last_status = ex_sent_status(ex);
    snprintf(f->last_error, sizeof f->last_error, "%s", ex_error_code(ex) ? ex_error_code(ex) : "");
    f->last_bytes = ex_bytes(ex);
}

static void h_recycle(void *ctx, exchange_t *ex, size_t keep)
{
    (void)ex;
    (void)keep;
    ((fixture_t *)ctx)->recycles++;
}

static const ex_handler_t fake_handler = { h_head, h_body, h_body_end, h_cancel, h_complete, h_recycle };

/* ---- playing MHD ---------------------------------------------------------------------- */

/* MHD runs a connection it was told to resume. */
static void mhd_runs(fake_conn_t *c)
{
    c->resume_pending = 0;
}

/* A call of the access handler. */
static enum MHD_Result handler_call(fake_conn_t *c, const char *method, const char *data, size_t n)
{
    assert_false(c->suspended); /* MHD calls nothing on a suspended connection */
    mhd_runs(c);
    c->in_handler = 1;
    size_t size = n;
    enum MHD_Result rc = exchange_on_request(&F->listener, mhd(c), "/p", method, "HTTP/1.1", data, &size, &c->con_cls);
    c->in_handler = 0;
    return rc;
}

/* The first call: the head is in. */
static exchange_t *head(fake_conn_t *c)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(handler_call(c, "POST", NULL, 0), MHD_YES);
    assert_non_null(c->con_cls);
    return c->con_cls;
}

/* A request with a body, up to the handler's on_body_end. */
static exchange_t *body(fake_conn_t *c, action_t at_body_end)
{
    F->at_head = DO_READ_BODY;
    F->at_body_end = at_body_end;
    exchange_t *ex = head(c);
    assert_int_equal(ex->state, EX_BODY);
    assert_int_equal(handler_call(c, "POST", "abc", 3), MHD_YES);
    assert_int_equal(handler_call(c, "POST", NULL, 0), MHD_YES);
    return ex;
}

/* A call of the content reader; returns what it returned, the bytes it
 * gave appended to c->received. */
static ssize_t reader_call(fake_conn_t *c)
{
    assert_false(c->suspended);
    assert_non_null(c->reader);
    mhd_runs(c);
    char buf[256];
    ssize_t n = c->reader(c->reader_ctx, 0, buf, sizeof buf);
    if (n > 0)
        buf_append(&c->received, buf, (size_t)n);
    else if (n == MHD_CONTENT_READER_END_OF_STREAM)
        c->stream_end = 1;
    else if (n == MHD_CONTENT_READER_END_WITH_ERROR)
        c->stream_end = 2;
    return n;
}

/* The reader until it suspends or ends. */
static void read_all(fake_conn_t *c)
{
    while (reader_call(c) > 0)
        ;
}

static void completed(fake_conn_t *c, enum MHD_RequestTerminationCode toe)
{
    assert_false(c->suspended);
    exchange_on_completed(&F->listener, mhd(c), &c->con_cls, toe);
    assert_null(c->con_cls);
}

static void conn_free(fake_conn_t *c)
{
    buf_free(&c->body);
    buf_free(&c->received);
}

static const char *received(fake_conn_t *c)
{
    buf_append(&c->received, "", 1);
    c->received.len--;
    return c->received.data;
}

static void expect_held(size_t n) { assert_int_equal(ex_pool_held(F->pool), n); }

/* ---- fixture ------------------------------------------------------------------------- */

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    f->pool = ex_pool_new(&f->loop, &fake_http, &fake_handler, f, sizeof(test_request_t));
    assert_non_null(f->pool);
    f->listener = (ex_listener_t){ f->pool, NULL, 0 };
    f->max_buffered = 1 << 20;
    F = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(ex_pool_alive(f->pool), 0);
    assert_int_equal(ex_pool_held(f->pool), 0);
    ex_pool_close(f->pool);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* nothing left behind */
    free(f);
    F = NULL;
    return 0;
}

/* ---- tests ---------------------------------------------------------------------------- */

/* HEAD -> SENDING -> DONE: answered before the body; a body that still
 * comes is dropped. */
static void early_answer(void **state)
{
    fixture_t *f = *state;
    fake_conn_t c;
    f->at_head = DO_ANSWER_404;
    exchange_t *ex = head(&c);
    assert_int_equal(ex->state, EX_SENDING);
    assert_int_equal(c.queued, 1);
    assert_int_equal(c.status, 404);
    assert_non_null(strstr(c.headers, "X-Request-Id: r1\n"));
    assert_non_null(strstr(c.headers, "Content-Type: application/json\n"));
    assert_int_equal(handler_call(&c, "POST", "late", 4), MHD_YES); /* dropped */
    assert_int_equal(f->bodies, 0);
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    assert_int_equal(f->completes, 1);
    assert_int_equal(f->last_status, 404);
    assert_string_equal(f->last_error, "not_found");
    assert_int_equal(f->last_bytes, c.body.len);
    assert_int_equal(f->recycles, 1);
    conn_free(&c);
}

/* HEAD -> EARLY -> SENDING -> DONE: an answer to a request without a
 * body waits for MHD's final call (libmicrohttpd keeps the connection open
 * after a response queued then, not after one queued at its first call). */
static void early_answer_without_body_waits(void **state)
{
    fixture_t *f = *state;
    fake_conn_t c;
    f->at_head = DO_ANSWER_404;
    memset(&c, 0, sizeof c);
    c.no_body = 1;
    assert_int_equal(handler_call(&c, "GET", NULL, 0), MHD_YES);
    exchange_t *ex = c.con_cls;
    assert_int_equal(ex->state, EX_EARLY);
    assert_int_equal(c.queued, 0);
    expect_held(0); /* nothing suspended: MHD calls again at once */
    assert_int_equal(ex_pool_alive(f->pool), 1);
    assert_int_equal(handler_call(&c, "GET", NULL, 0), MHD_YES); /* the final call */
    assert_int_equal(ex->state, EX_SENDING);
    assert_int_equal(c.queued, 1);
    assert_int_equal(c.status, 404);
    assert_null(strstr(c.headers, "Connection"));
    assert_non_null(strstr(c.body.data, "\"error\":\"not_found\""));
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    assert_int_equal(f->last_status, 404);
    assert_string_equal(f->last_error, "not_found");
    conn_free(&c);
    /* MHD saw a body after all: it is read and dropped, then the answer */
    memset(&c, 0, sizeof c);
    c.no_body = 1;
    handler_call(&c, "GET", NULL, 0);
    ex = c.con_cls;
    assert_int_equal(handler_call(&c, "GET", "xy", 2), MHD_YES);
    assert_int_equal(ex->state, EX_EARLY);
    assert_int_equal(f->bodies, 0);
    handler_call(&c, "GET", NULL, 0);
    assert_int_equal(c.status, 404);
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&c);
    /* the client left before the final call */
    memset(&c, 0, sizeof c);
    c.no_body = 1;
    handler_call(&c, "GET", NULL, 0);
    completed(&c, MHD_REQUEST_TERMINATED_WITH_ERROR);
    assert_int_equal(f->last_status, 0);
    conn_free(&c);
}

/* An early answer that asks for Connection: close (a refused ambiguous
 * head) is queued at once even without a body: MHD closes after it. */
static void early_answer_that_closes_goes_at_once(void **state)
{
    fixture_t *f = *state;
    fake_conn_t c;
    f->at_head = DO_ANSWER_CLOSE;
    memset(&c, 0, sizeof c);
    c.no_body = 1;
    assert_int_equal(handler_call(&c, "GET", NULL, 0), MHD_YES);
    exchange_t *ex = c.con_cls;
    assert_int_equal(ex->state, EX_SENDING);
    assert_int_equal(c.status, 400);
    assert_non_null(strstr(c.headers, "Connection: close\n"));
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&c);
}

/* HEAD on a stream route: BODY -> SENDING with the stream's headers and no
 * length; nothing is streamed. */
static void stream_head_alone(void **state)
{
    fixture_t *f = *state;
    fake_conn_t c;
    exchange_t *ex = body(&c, DO_STREAM_HEAD);
    assert_int_equal(ex->state, EX_SENDING);
    assert_int_equal(c.queued, 1);
    assert_int_equal(c.status, 200);
    assert_true(c.no_length);
    assert_null(c.reader);
    assert_non_null(strstr(c.headers, "Content-Type: text/event-stream\n"));
    assert_non_null(strstr(c.headers, "Cache-Control: no-cache\n"));
    assert_non_null(strstr(c.headers, "X-Request-Id: r1\n"));
    assert_int_equal(c.body.len, 0);
    assert_int_equal(ex_pool_upstream(f->pool), 0);
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    assert_int_equal(f->last_status, 200);
    assert_int_equal(f->last_bytes, 0);
    conn_free(&c);
    /* an ordinary answer after it has a length again */
    body(&c, DO_ANSWER_404);
    assert_false(c.no_length);
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&c);
}

/* HEAD -> BODY -> SENDING -> DONE. */
static void answer_after_body(void **state)
{
    fixture_t *f = *state;
    fake_conn_t c;
    exchange_t *ex = body(&c, DO_ANSWER_404);
    assert_int_equal(f->bodies, 3);
    assert_int_equal(ex->state, EX_SENDING);
    expect_held(0);
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&c);
}

/* BODY -> UPSTREAM (suspended, watched) -> ANSWER (resumed, held until
 * MHD calls) -> SENDING -> DONE. */
static void reply_from_upstream(void **state)
{
    fixture_t *f = *state;
    fake_conn_t c;
    exchange_t *ex = body(&c, DO_WAIT);
    assert_int_equal(ex->state, EX_UPSTREAM);
    assert_true(c.suspended);
    assert_ptr_equal(c.watched, ex);
    expect_held(1);
    assert_int_equal(ex_pool_upstream(f->pool), 1);
    buf_t b = BUF_INIT;
    buf_append_cstr(&b, "[1]");
    ex_answer(ex, 200, NULL, &b);
    buf_free(&b);
    assert_int_equal(ex->state, EX_ANSWER);
    assert_false(c.suspended);
    assert_true(c.resume_pending);
    assert_null(c.watched);
    expect_held(1); /* until MHD has seen the resume */
    assert_int_equal(ex_pool_upstream(f->pool), 0);
    assert_int_equal(handler_call(&c, "POST", NULL, 0), MHD_YES);
    assert_int_equal(ex->state, EX_SENDING);
    assert_memory_equal(c.body.data, "[1]", 3);
    expect_held(0);
    assert_int_equal(ex_pool_sending(f->pool), 1);
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    assert_int_equal(f->last_status, 200);
    assert_string_equal(f->last_error, "");
    conn_free(&c);
}

/* HEAD -> GATHER -> ANSWER -> SENDING -> DONE. */
static void gather_then_answer(void **state)
{
    fixture_t *f = *state;
    fake_conn_t c;
    f->at_head = DO_GATHER;
    exchange_t *ex = head(&c);
    assert_int_equal(ex->state, EX_GATHER);
    assert_true(c.suspended);
    assert_int_equal(ex_pool_upstream(f->pool), 0); /* no service involved */
    ex_answer(ex, 200, "text/plain", NULL);
    assert_int_equal(ex->state, EX_ANSWER);
    handler_call(&c, "GET", NULL, 0);
    assert_int_equal(ex->state, EX_SENDING);
    assert_non_null(strstr(c.headers, "Content-Type: text/plain\n"));
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&c);
}

/* Vary headers added by several parts of the handler go out as one line,
 * on whole answers and on streams alike. */
static void vary_headers_merge(void **state)
{
    fixture_t *f = *state;
    fake_conn_t c;
    f->vary[0] = "Accept";
    f->vary[1] = "Origin";
    f->at_head = DO_ANSWER_404;
    head(&c);
    assert_non_null(strstr(c.headers, "Vary: Accept, Origin\n"));
    assert_null(strstr(strstr(c.headers, "Vary:") + 1, "Vary:"));
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&c);
    f->vary[2] = "Accept-Encoding";
    exchange_t *ex = body(&c, DO_STREAM_NDJSON);
    assert_non_null(strstr(c.headers, "Vary: Accept, Origin, Accept-Encoding\n"));
    assert_non_null(strstr(c.headers, "X-Request-Id: r1\n"));
    ex_stream_end(ex);
    read_all(&c);
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&c);
    f->vary[1] = NULL; /* one alone is left as it is */
    f->at_head = DO_ANSWER_404;
    head(&c);
    assert_non_null(strstr(c.headers, "Vary: Accept\n"));
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&c);
}

/* A stream written at once: BODY -> FLOW (queued in the same call) -> IDLE
 * -> WAKE -> FLOW -> ... -> LAST -> DONE, with the exact SSE bytes. */
static void sse_stream_written_at_once(void **state)
{
    fixture_t *f = *state;
    fake_conn_t c;
    exchange_t *ex = body(&c, DO_STREAM_SSE);
    assert_int_equal(ex->state, EX_STREAM_FLOW);
    assert_int_equal(c.queued, 1);
    assert_int_equal(c.status, 200);
    assert_non_null(strstr(c.headers, "Content-Type: text/event-stream\n"));
    assert_non_null(strstr(c.headers, "Cache-Control: no-cache\n"));
    read_all(&c); /* ": ok" at once, then nothing: it suspends */
    assert_string_equal(received(&c), ": ok\n\n");
    assert_int_equal(ex->state, EX_STREAM_IDLE);
    assert_true(c.suspended);
    assert_ptr_equal(c.watched, ex);
    assert_int_equal(ex_stream_value(ex, SPAN_LIT("1")), 0);
    assert_int_equal(ex->state, EX_STREAM_WAKE);
    assert_true(c.resume_pending);
    assert_int_equal(ex_stream_value(ex, SPAN_LIT("{\"a\":2}")), 0); /* still WAKE */
    assert_int_equal(ex->state, EX_STREAM_WAKE);
    read_all(&c);
    assert_int_equal(ex->state, EX_STREAM_IDLE);
    ex_stream_end(ex);
    assert_int_equal(ex->state, EX_STREAM_CLOSE);
    expect_held(1);
    read_all(&c);
    assert_int_equal(ex->state, EX_STREAM_LAST);
    assert_int_equal(c.stream_end, 1);
    assert_string_equal(received(&c), ": ok\n\ndata: 1\n\ndata: {\"a\":2}\n\nevent: end\ndata: null\n\n");
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    assert_int_equal(f->last_status, 200);
    assert_int_equal(f->last_bytes, c.received.len);
    conn_free(&c);
}

/* A stream written later: UPSTREAM -> WAKE (resumed) -> the handler call
 * queues the head -> FLOW; a failure ends it in-band: FLOW -> LAST. */
static void ndjson_stream_written_later_fails_in_band(void **state)
{
    fixture_t *f = *state;
    fake_conn_t c;
    exchange_t *ex = body(&c, DO_WAIT);
    assert_int_equal(ex->state, EX_UPSTREAM);
    ex_stream_open(ex, 200, CONFIG_REPLY_NDJSON, f->max_buffered);
    assert_int_equal(ex->state, EX_STREAM_WAKE);
    assert_int_equal(c.queued, 0);
    handler_call(&c, "POST", NULL, 0);
    assert_int_equal(ex->state, EX_STREAM_FLOW);
    assert_non_null(strstr(c.headers, "Content-Type: application/x-ndjson\n"));
    ex_stream_value(ex, SPAN_LIT("7"));
    ex_stream_fail(ex, GW_ERR_UPSTREAM_TIMEOUT, "no next value", span_of(NULL, 0));
    assert_int_equal(ex->state, EX_STREAM_LAST); /* the reader was running */
    read_all(&c);
    assert_int_equal(c.stream_end, 1);
    assert_string_equal(received(&c), "7\n{\"error\":{\"statusCode\":504,\"error\":\"upstream_timeout\","
                                      "\"message\":\"no next value\"}}\n");
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    assert_string_equal(f->last_error, "upstream_timeout");
    assert_int_equal(f->last_status, 200);
    conn_free(&c);
}

/* UPSTREAM -> WAKE -> CLOSE (over before MHD called) -> the handler call
 * queues head and end -> LAST. */
static void stream_over_before_mhd_called(void **state)
{
    fixture_t *f = *state;
    fake_conn_t c;
    exchange_t *ex = body(&c, DO_WAIT);
    ex_stream_open(ex, 200, CONFIG_REPLY_SSE, f->max_buffered);
    ex_stream_end(ex);
    assert_int_equal(ex->state, EX_STREAM_CLOSE);
    handler_call(&c, "POST", NULL, 0);
    assert_int_equal(ex->state, EX_STREAM_LAST);
    read_all(&c);
    assert_string_equal(received(&c), ": ok\n\nevent: end\ndata: null\n\n");
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&c);
}

/* IDLE -> WAKE by the keep-alive comment after the (shortened) silence. */
static int idle_woken(void *arg) { return ((exchange_t *)arg)->state == EX_STREAM_WAKE; }

static void run_until(uv_loop_t *loop, int (*cond)(void *), void *arg)
{
    for (int i = 0; i < 1000 && !cond(arg); i++)
        uv_run(loop, UV_RUN_ONCE);
    assert_true(cond(arg));
}

static void sse_keepalive_wakes_an_idle_stream(void **state)
{
    fixture_t *f = *state;
    ex_pool_set_keepalive_ms(f->pool, 20);
    fake_conn_t c;
    exchange_t *ex = body(&c, DO_STREAM_SSE);
    read_all(&c);
    assert_int_equal(ex->state, EX_STREAM_IDLE);
    run_until(&f->loop, idle_woken, ex);
    read_all(&c);
    assert_string_equal(received(&c), ": ok\n\n: keepalive\n\n");
    ex_stream_end(ex);
    read_all(&c);
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* the timer is stopped: nothing fires */
    conn_free(&c);
}

/* A client that reads too slowly: the stream ends with overloaded. */
static void slow_client_ends_the_stream(void **state)
{
    fixture_t *f = *state;
    f->max_buffered = 4;
    fake_conn_t c;
    exchange_t *ex = body(&c, DO_STREAM_NDJSON);
    assert_int_equal(ex_stream_value(ex, SPAN_LIT("\"12345\"")), 0);
    assert_int_equal(ex_stream_value(ex, SPAN_LIT("2")), -1);
    assert_int_equal(ex->state, EX_STREAM_LAST);
    assert_int_equal(ex_stream_value(ex, SPAN_LIT("3")), 0); /* after the end: dropped */
    read_all(&c);
    assert_non_null(strstr(received(&c), "\"error\":\"overloaded\""));
    assert_null(strstr(received(&c), "\n2\n"));
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&c);
}

/* Hang-ups: in each suspended state the request is cancelled and the
 * connection resumed (GONE); MHD then ends it. Elsewhere the watch is off
 * and a hang-up changes nothing. */
static void hangups_in_every_state(void **state)
{
    fixture_t *f = *state;
    fake_conn_t c;
    /* UPSTREAM */
    exchange_t *ex = body(&c, DO_WAIT);
    exchange_on_hangup(&f->listener, ex);
    assert_int_equal(ex->state, EX_GONE);
    assert_int_equal(f->cancels, 1);
    assert_false(c.suspended);
    assert_null(c.watched);
    expect_held(1);
    assert_int_equal(handler_call(&c, "POST", NULL, 0), MHD_NO);
    completed(&c, MHD_REQUEST_TERMINATED_WITH_ERROR);
    assert_int_equal(f->last_status, 0); /* nothing was sent: the client left first */
    conn_free(&c);
    /* GATHER */
    f->at_head = DO_GATHER;
    ex = head(&c);
    exchange_on_hangup(&f->listener, ex);
    assert_int_equal(ex->state, EX_GONE);
    assert_int_equal(f->cancels, 2);
    completed(&c, MHD_REQUEST_TERMINATED_WITH_ERROR);
    conn_free(&c);
    /* STREAM_IDLE */
    ex = body(&c, DO_STREAM_NDJSON);
    read_all(&c);
    assert_int_equal(ex->state, EX_STREAM_IDLE);
    exchange_on_hangup(&f->listener, ex);
    assert_int_equal(ex->state, EX_GONE);
    assert_int_equal(f->cancels, 3);
    assert_int_equal(reader_call(&c), MHD_CONTENT_READER_END_WITH_ERROR);
    completed(&c, MHD_REQUEST_TERMINATED_WITH_ERROR);
    assert_int_equal(f->last_status, 200); /* the head had gone out */
    conn_free(&c);
    /* states that are not suspended: a stale hang-up changes nothing */
    ex = body(&c, DO_STREAM_NDJSON); /* FLOW */
    exchange_on_hangup(&f->listener, ex);
    assert_int_equal(ex->state, EX_STREAM_FLOW);
    ex_stream_end(ex);
    exchange_on_hangup(&f->listener, ex); /* LAST */
    assert_int_equal(ex->state, EX_STREAM_LAST);
    assert_int_equal(f->cancels, 3);
    read_all(&c);
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&c);
    ex = body(&c, DO_WAIT);
    ex_answer(ex, 204, NULL, NULL); /* ANSWER */
    exchange_on_hangup(&f->listener, ex);
    assert_int_equal(ex->state, EX_ANSWER);
    handler_call(&c, "POST", NULL, 0); /* SENDING */
    exchange_on_hangup(&f->listener, ex);
    assert_int_equal(ex->state, EX_SENDING);
    assert_int_equal(f->cancels, 3);
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&c);
}

/* A client that leaves while MHD has it (reading the body, a resumed
 * answer not yet queued, a stream being written): MHD completes it. */
static void completion_from_every_running_state(void **state)
{
    fixture_t *f = *state;
    fake_conn_t c;
    f->at_head = DO_READ_BODY;
    exchange_t *ex = head(&c); /* BODY */
    completed(&c, MHD_REQUEST_TERMINATED_WITH_ERROR);
    assert_int_equal(f->last_status, 0);
    conn_free(&c);
    ex = body(&c, DO_WAIT);
    ex_answer(ex, 200, NULL, NULL); /* ANSWER */
    completed(&c, MHD_REQUEST_TERMINATED_WITH_ERROR);
    assert_int_equal(f->last_status, 0);
    conn_free(&c);
    ex = body(&c, DO_WAIT);
    ex_stream_open(ex, 200, CONFIG_REPLY_NDJSON, 1 << 20); /* WAKE */
    completed(&c, MHD_REQUEST_TERMINATED_WITH_ERROR);
    assert_int_equal(f->last_status, 0);
    conn_free(&c);
    ex = body(&c, DO_WAIT);
    ex_stream_open(ex, 200, CONFIG_REPLY_NDJSON, 1 << 20);
    ex_stream_end(ex); /* CLOSE */
    completed(&c, MHD_REQUEST_TERMINATED_WITH_ERROR);
    conn_free(&c);
    ex = body(&c, DO_STREAM_NDJSON); /* FLOW */
    completed(&c, MHD_REQUEST_TERMINATED_WITH_ERROR);
    assert_int_equal(f->last_status, 200);
    conn_free(&c);
    assert_int_equal(f->completes, 5);
    expect_held(0);
}

/* The grace is over with exchanges in every state at once: the waiting
 * ones get 503 draining with Connection: close, the open streams their
 * draining error and their end; the rest is left to finish. */
static void drain_in_every_state(void **state)
{
    fixture_t *f = *state;
    enum { BODY_, UPSTREAM_, GATHER_, ANSWER_, SENDING_, WAKE_, FLOW_, IDLE_, CLOSE_, LAST_, GONE_, N_ };
    fake_conn_t c[N_];
    exchange_t *ex[N_];
    f->at_head = DO_READ_BODY;
    ex[BODY_] = head(&c[BODY_]);
    ex[UPSTREAM_] = body(&c[UPSTREAM_], DO_WAIT);
    f->at_head = DO_GATHER;
    ex[GATHER_] = head(&c[GATHER_]);
    ex[ANSWER_] = body(&c[ANSWER_], DO_WAIT);
    ex_answer(ex[ANSWER_], 200, NULL, NULL);
    ex[SENDING_] = body(&c[SENDING_], DO_ANSWER_404);
    ex[WAKE_] = body(&c[WAKE_], DO_WAIT);
    ex_stream_open(ex[WAKE_], 200, CONFIG_REPLY_SSE, 1 << 20);
    ex[FLOW_] = body(&c[FLOW_], DO_STREAM_NDJSON);
    ex_stream_value(ex[FLOW_], SPAN_LIT("1"));
    ex[IDLE_] = body(&c[IDLE_], DO_STREAM_NDJSON);
    read_all(&c[IDLE_]);
    ex[CLOSE_] = body(&c[CLOSE_], DO_WAIT);
    ex_stream_open(ex[CLOSE_], 200, CONFIG_REPLY_SSE, 1 << 20);
    ex_stream_end(ex[CLOSE_]);
    ex[LAST_] = body(&c[LAST_], DO_STREAM_NDJSON);
    ex_stream_end(ex[LAST_]);
    ex[GONE_] = body(&c[GONE_], DO_WAIT);
    exchange_on_hangup(&f->listener, ex[GONE_]);
    static const ex_state_t before[N_] = { EX_BODY, EX_UPSTREAM, EX_GATHER, EX_ANSWER, EX_SENDING,
                                           EX_STREAM_WAKE, EX_STREAM_FLOW, EX_STREAM_IDLE, EX_STREAM_CLOSE,
                                           EX_STREAM_LAST, EX_GONE };
    for (int i = 0; i < N_; i++)
        assert_int_equal(ex[i]->state, before[i]);
    int cancels = f->cancels;
    ex_pool_drain(f->pool);
    static const ex_state_t after[N_] = { EX_BODY, EX_ANSWER, EX_ANSWER, EX_ANSWER, EX_SENDING,
                                          EX_STREAM_CLOSE, EX_STREAM_LAST, EX_STREAM_CLOSE, EX_STREAM_CLOSE,
                                          EX_STREAM_LAST, EX_GONE };
    for (int i = 0; i < N_; i++)
        assert_int_equal(ex[i]->state, after[i]);
    assert_int_equal(f->cancels - cancels, 5); /* UPSTREAM, GATHER, WAKE, FLOW, IDLE */
    assert_int_equal(ex_pool_upstream(f->pool), 0);
    ex_pool_drain(f->pool); /* again: nothing left in flight */
    assert_int_equal(f->cancels - cancels, 5);
    /* MHD runs them to their end */
    for (int i = UPSTREAM_; i <= GATHER_; i++) {
        handler_call(&c[i], "POST", NULL, 0);
        assert_int_equal(c[i].status, 503);
        assert_non_null(strstr(c[i].headers, "Connection: close\n"));
        assert_non_null(strstr(c[i].body.data, "\"error\":\"draining\""));
    }
    handler_call(&c[ANSWER_], "POST", NULL, 0);
    handler_call(&c[WAKE_], "POST", NULL, 0); /* queues head and end */
    handler_call(&c[CLOSE_], "POST", NULL, 0);
    for (int i = WAKE_; i <= LAST_; i++)
        read_all(&c[i]);
    assert_string_equal(received(&c[WAKE_]), ": ok\n\nevent: error\ndata: {\"statusCode\":503,\"error\":\"draining\","
                                              "\"message\":\"the gateway shut down before the stream ended\"}\n\n");
    assert_string_equal(received(&c[FLOW_]), "1\n{\"error\":{\"statusCode\":503,\"error\":\"draining\","
                                              "\"message\":\"the gateway shut down before the stream ended\"}}\n");
    assert_non_null(strstr(received(&c[IDLE_]), "\"error\":\"draining\""));
    assert_string_equal(received(&c[CLOSE_]), ": ok\n\nevent: end\ndata: null\n\n"); /* it had ended */
    for (int i = WAKE_; i <= LAST_; i++)
        assert_int_equal(c[i].stream_end, 1); /* each with its terminating chunk */
    handler_call(&c[GONE_], "POST", NULL, 0);
    expect_held(1); /* GONE, until MHD completes it */
    for (int i = 0; i < N_; i++) {
        completed(&c[i], i == BODY_ ? MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN : MHD_REQUEST_TERMINATED_COMPLETED_OK);
        conn_free(&c[i]);
    }
    assert_int_equal(ex_pool_alive(f->pool), 0);
}

/* The pool's counts follow the states, and finished exchanges are reused. */
static void pool_counts_and_reuse(void **state)
{
    fixture_t *f = *state;
    fake_conn_t a, b;
    exchange_t *x = body(&a, DO_WAIT);
    exchange_t *y = body(&b, DO_STREAM_NDJSON);
    assert_int_equal(ex_pool_alive(f->pool), 2);
    assert_int_equal(ex_pool_in_state(f->pool, EX_UPSTREAM), 1);
    assert_int_equal(ex_pool_in_state(f->pool, EX_STREAM_FLOW), 1);
    assert_int_equal(ex_pool_upstream(f->pool), 2);
    ex_answer(x, 200, NULL, NULL);
    handler_call(&a, "POST", NULL, 0);
    completed(&a, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    ex_stream_end(y);
    read_all(&b);
    completed(&b, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&a);
    conn_free(&b);
    exchange_t *z = body(&a, DO_ANSWER_404);
#if PG_RECYCLE
    assert_true(z == x || z == y); /* from the pool */
#endif
    completed(&a, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&a);
    (void)z;
}

/* A handler that decides nothing is a bug: answered 500, never left hanging. */
static void undecided_head_is_an_internal_error(void **state)
{
    fixture_t *f = *state;
    fake_conn_t c;
    f->at_head = DO_NOTHING;
    exchange_t *ex = head(&c);
    assert_int_equal(ex->state, EX_SENDING);
    assert_int_equal(c.status, 500);
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&c);
}

/* An impossible transition aborts the process (in a child here). */
static void impossible_transition_aborts(void **state)
{
    (void)state;
    fake_conn_t c;
    exchange_t *ex = body(&c, DO_ANSWER_404); /* SENDING */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(2); /* the abort's own line is expected */
        ex_wait_upstream(ex); /* SENDING -> UPSTREAM */
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    completed(&c, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    conn_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(early_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(early_answer_without_body_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(early_answer_that_closes_goes_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(stream_head_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(vary_headers_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(answer_after_body, setup, teardown),
        cmocka_unit_test_setup_teardown(reply_from_upstream, setup, teardown),
        cmocka_unit_test_setup_teardown(gather_then_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(sse_stream_written_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(ndjson_stream_written_later_fails_in_band, setup, teardown),
        cmocka_unit_test_setup_teardown(stream_over_before_mhd_called, setup, teardown),
        cmocka_unit_test_setup_teardown(sse_keepalive_wakes_an_idle_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(slow_client_ends_the_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(hangups_in_every_state, setup, teardown),
        cmocka_unit_test_setup_teardown(completion_from_every_running_state, setup, teardown),
        cmocka_unit_test_setup_teardown(drain_in_every_state, setup, teardown),
        cmocka_unit_test_setup_teardown(pool_counts_and_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(undecided_head_is_an_internal_error, setup, teardown),
        cmocka_unit_test_setup_teardown(impossible_transition_aborts, setup, teardown),
    };
    return cmocka_run_group_tests_name("exchange", tests, NULL, NULL);
}
