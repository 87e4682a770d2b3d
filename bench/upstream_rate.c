/*
 * upstream_rate: round trips per second through the upstream client (one
 * connection, a fixed number of requests in flight), with latency
 * percentiles. It measures the C client plus the service, no HTTP.
 *
 *   upstream_rate HOST:PORT TOTAL INFLIGHT [PATTERN [DATA]]
 *
 * Defaults: PATTERN {"cmd":"sum"}, DATA [1,2,3].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/upstream.h"

typedef struct bench {
    uv_loop_t loop;
    upstream_t *up;
    up_service_t *svc;
    span_t pattern, data;
    long total, sent, done, failed;
    uint64_t *latency_ns;
} bench_t;

typedef struct slot {
    bench_t *b;
    uint64_t started;
} slot_t;

static void send_one(slot_t *s);

static void on_value(void *ctx, span_t value)
{
    (void)ctx;
    (void)value;
}

static void on_done(void *ctx, up_outcome_t outcome, span_t err, const char *detail)
{
    (void)err;
    slot_t *s = ctx;
    bench_t *b = s->b;
    if (outcome != UP_OK && b->failed++ == 0)
        fprintf(stderr, "request failed: %s (%s)\n", up_outcome_name(outcome), detail ? detail : "");
    b->latency_ns[b->done++] = uv_hrtime() - s->started;
    if (b->sent < b->total)
        send_one(s);
    else if (b->done == b->total)
        upstream_close(b->up);
}

static void send_one(slot_t *s)
{
    static const up_callbacks_t cb = { on_value, on_done };
    s->started = uv_hrtime();
    s->b->sent++;
    up_send(s->b->svc, s->b->pattern, s->b->data, span_of(NULL, 0), 30000, &cb, s);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: upstream_rate HOST:PORT TOTAL INFLIGHT [PATTERN [DATA]]\n");
        return 2;
    }
    bench_t b = { .total = atol(argv[2]) };
    long inflight = atol(argv[3]);
    b.pattern = span_cstr(argc > 4 ? argv[4] : "{\"cmd\":\"sum\"}");
    b.data = span_cstr(argc > 5 ? argv[5] : "[1,2,3]");
    b.latency_ns = calloc((size_t)b.total, sizeof *b.latency_ns);
    uv_loop_init(&b.loop);
    b.up = upstream_new(&b.loop);
    up_service_opts_t o;
    up_service_opts_defaults(&o);
    const char *eps[] = { argv[1] };
    o.name = "bench";
    o.endpoints = eps;
    o.n_endpoints = 1;
    o.connect = UP_CONNECT_LAZY;
    char err[160];
    b.svc = up_service_add(b.up, &o, err, sizeof err);
    if (!b.svc) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    slot_t *slots = calloc((size_t)inflight, sizeof *slots);
    uint64_t t0 = uv_hrtime();
    for (long i = 0; i < inflight && b.sent < b.total; i++) {
        slots[i].b = &b;
        send_one(&slots[i]);
    }
    uv_run(&b.loop, UV_RUN_DEFAULT);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    qsort(b.latency_ns, (size_t)b.done, sizeof *b.latency_ns, cmp_u64);
    printf("inflight=%ld requests=%ld failed=%ld seconds=%.3f rate=%.0f/s p50=%.3fms p99=%.3fms\n",
           inflight, b.done, b.failed, secs, (double)b.done / secs,
           (double)b.latency_ns[b.done / 2] / 1e6, (double)b.latency_ns[b.done * 99 / 100] / 1e6);
    uv_loop_close(&b.loop);
    free(slots);
    free(b.latency_ns);
    return b.failed ? 1 : 0;
}
