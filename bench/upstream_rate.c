/*
 * upstream_rate: round trips per second through the upstream client (one
 * connection, a fixed number of requests in flight), with latency
 * percentiles. It measures the C client plus the service, no HTTP.
 *
 *   upstream_rate HOST:PORT TOTAL INFLIGHT [PATTERN [DATA]]
 *
 * Defaults: PATTERN {"cmd":"sum"}, DATA [1,2,3]. DATA @FILE takes the data
 * from FILE (for bodies longer than a command-line argument may be). The
 * line printed at the end also gives this process's own CPU time (utime +
 * stime, from getrusage), so bench/run can report it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

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

/* Reads a whole file into a NUL-terminated buffer, or exits 2. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    size_t cap = 0, n = 0;
    if (!f) {
        perror(path);
        exit(2);
    }
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            p = realloc(p, cap + 1);
            if (!p) {
                fprintf(stderr, "out of memory\n");
                exit(2);
            }
        }
        size_t got = fread(p + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    p[n] = 0;
    *len = n;
    return p;
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
    char *file_data = NULL;
    if (argc > 5 && argv[5][0] == '@') {
        size_t n;
        file_data = read_all(argv[5] + 1, &n);
        b.data = span_of(file_data, n);
    } else {
        b.data = span_cstr(argc > 5 ? argv[5] : "[1,2,3]");
    }
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
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_us = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
                    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    printf("inflight=%ld requests=%ld failed=%ld seconds=%.3f rate=%.0f/s p50=%.3fms p99=%.3fms "
           "cpu_us=%.0f\n",
           inflight, b.done, b.failed, secs, (double)b.done / secs,
           (double)b.latency_ns[b.done / 2] / 1e6, (double)b.latency_ns[b.done * 99 / 100] / 1e6,
           cpu_us);
    uv_loop_close(&b.loop);
    free(slots);
    free(b.latency_ns);
    free(file_data);
    return b.failed ? 1 : 0;
}
