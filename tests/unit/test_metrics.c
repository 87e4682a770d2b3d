/* The metrics of gateway/metrics.h: registries, counting, the text of a
 * scrape (exact samples, histograms cumulative, label escaping, sums over
 * workers) and a scrape from another thread while the owner counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/metrics.h"

static config *load(const char *text)
{
    config *cfg = NULL;
    config_error err;
    if (config_load_string(text, strlen(text), NULL, &cfg, &err) != 0)
        fail_msg("config: %s", err.message);
    return cfg;
}

static const char CONFIG[] = "{ \"services\": { \"s\": { \"endpoints\": [\"127.0.0.1:1\", \"10.0.0.2:7\"] } },"
                             "  \"routes\": [ { \"method\": \"GET\", \"path\": \"/a/:id\", \"service\": \"s\", \"pattern\": 1 } ] }";

/* The rendered text of the given workers, NUL-terminated (caller frees). */
static char *render(metrics_t *const *ms, size_t n, const config *cfg)
{
    buf_t b = BUF_INIT;
    assert_int_equal(metrics_render(&b, ms, n, cfg), 0);
    buf_append(&b, "", 1);
    return b.data;
}

static void expect_line(const char *text, const char *line)
{
    char want[512];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (!strstr(text, want))
        fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void registries(void **state)
{
    (void)state;
    metrics_t *m = metrics_new(5000);
    assert_non_null(m);
    assert_int_equal(metrics_route_index(m, "generic"), METRICS_ROUTE_GENERIC);
    assert_int_equal(metrics_route_index(m, "admin"), METRICS_ROUTE_ADMIN);
    assert_int_equal(metrics_route_index(m, "unmatched"), METRICS_ROUTE_UNMATCHED);
    int a = metrics_route_index(m, "/a/:id");
    assert_true(a > METRICS_ROUTE_UNMATCHED);
    assert_int_equal(metrics_route_index(m, "/a/:id"), a); /* registered once */
    int s = metrics_service_index(m, "s");
    assert_true(s >= 0);
    assert_int_equal(metrics_service_index(m, "s"), s);
    assert_non_null(metrics_service_counters(m, s));
    assert_null(metrics_service_counters(m, s + 1));
    metrics_free(m);
}

/* What the owning loop writes for an endpoint (core/endpoint.c), at rest. */
static void fill_eject_slot(up_eject_slot_t *slot, const char *address, int ejected)
{
    size_t i = 0;
    for (; address[i] && i + 1 < UP_EJECT_ADDRESS_SIZE; i++)
        atomic_store(&slot->address[i], address[i]);
    atomic_store(&slot->address[i], '\0');
    atomic_store(&slot->ejected, (uint32_t)ejected);
    atomic_store(&slot->live, 1u);
    atomic_store(&slot->seq, 2u);
}

static void counts_and_text(void **state)
{
    (void)state;
    config *cfg = load(CONFIG);
    metrics_t *m = metrics_new(5000);
    int a = metrics_route_index(m, "/a/:id");
    int s = metrics_service_index(m, "s");
    metrics_http(m, a, "GET", 200, 2000000);     /* 2 ms */
    metrics_http(m, a, "GET", 200, 2000000);
    metrics_http(m, a, "GET", 504, 3000000000u); /* 3 s */
    metrics_http(m, METRICS_ROUTE_UNMATCHED, "BREW", 404, 1000);
    metrics_http(m, 9999, "GET", 404, 1000); /* an unknown index counts as unmatched */
    metrics_upstream_duration(m, s, 1000000);
    up_service_stats_t *st = metrics_service_counters(m, s);
    up_count(&st->outcomes[0][UP_OK], 2);
    up_count(&st->outcomes[1][UP_TIMEOUT], 1);
    up_count(&st->conns[UP_CONN_CONNECTED], 1);
    fill_eject_slot(&st->eject_slots[0], "127.0.0.1:1", 0);
    fill_eject_slot(&st->eject_slots[1], "10.0.0.2:7", 1);
    metrics_config_loaded(m, 1700000000.5);
    metrics_reload(m, 0, 1700000100);
    char *text = render(&m, 1, cfg);
    expect_line(text, "patterngate_http_requests_total{route=\"/a/:id\",method=\"GET\",code=\"200\"} 2");
    expect_line(text, "patterngate_http_requests_total{route=\"/a/:id\",method=\"GET\",code=\"504\"} 1");
    expect_line(text, "patterngate_http_requests_total{route=\"unmatched\",method=\"other\",code=\"404\"} 1");
    expect_line(text, "patterngate_http_requests_total{route=\"unmatched\",method=\"GET\",code=\"404\"} 1");
    expect_line(text, "patterngate_http_request_duration_seconds_bucket{route=\"/a/:id\",le=\"0.001\"} 0");
    expect_line(text, "patterngate_http_request_duration_seconds_bucket{route=\"/a/:id\",le=\"0.0025\"} 2");
    expect_line(text, "patterngate_http_request_duration_seconds_bucket{route=\"/a/:id\",le=\"2.5\"} 2");
    expect_line(text, "patterngate_http_request_duration_seconds_bucket{route=\"/a/:id\",le=\"5\"} 3");
    expect_line(text, "patterngate_http_request_duration_seconds_bucket{route=\"/a/:id\",le=\"+Inf\"} 3");
    expect_line(text, "patterngate_http_request_duration_seconds_count{route=\"/a/:id\"} 3");
    expect_line(text, "patterngate_http_request_duration_seconds_sum{route=\"/a/:id\"} 3.004");
    assert_null(strstr(text, "le=\"10\"")); /* the ladder stops at the largest timeout */
    expect_line(text, "patterngate_upstream_requests_total{service=\"s\",kind=\"send\",outcome=\"ok\"} 2");
    expect_line(text, "patterngate_upstream_requests_total{service=\"s\",kind=\"emit\",outcome=\"timeout\"} 1");
    expect_line(text, "patterngate_upstream_connections{service=\"s\",state=\"connected\"} 1");
    expect_line(text, "patterngate_upstream_endpoint_ejected{service=\"s\",endpoint=\"127.0.0.1:1\"} 0");
    expect_line(text, "patterngate_upstream_endpoint_ejected{service=\"s\",endpoint=\"10.0.0.2:7\"} 1");
    expect_line(text, "patterngate_config_last_reload_successful 0");
    expect_line(text, "patterngate_config_reloads_total{result=\"failed\"} 1");
    expect_line(text, "# TYPE patterngate_http_request_duration_seconds histogram");
    expect_line(text, "patterngate_build_info{version=\"" PG_VERSION "\"} 1");
    free(text);
    metrics_free(m);
    config_free(cfg);
}

/* Several workers: each series summed, each label once. */
static void sums_over_workers(void **state)
{
    (void)state;
    config *cfg = load(CONFIG);
    metrics_t *ms[3] = { metrics_new(5000), metrics_new(5000), metrics_new(5000) };
    for (int w = 0; w < 3; w++) {
        int a = metrics_route_index(ms[w], w == 1 ? "/old" : "/a/:id"); /* a reload in between */
        for (int i = 0; i <= w; i++)
            metrics_http(ms[w], a, "POST", 201, 1000);
        atomic_store(metrics_http_connections(ms[w]), (uint64_t)(w + 1));
    }
    char *text = render(ms, 3, cfg);
    expect_line(text, "patterngate_http_requests_total{route=\"/a/:id\",method=\"POST\",code=\"201\"} 4");
    expect_line(text, "patterngate_http_requests_total{route=\"/old\",method=\"POST\",code=\"201\"} 2");
    expect_line(text, "patterngate_http_connections 6");
    const char *first = strstr(text, "route=\"/a/:id\",method=\"POST\"");
    assert_non_null(first);
    assert_null(strstr(first + 1, "patterngate_http_requests_total{route=\"/a/:id\",method=\"POST\""));
    free(text);
    for (int w = 0; w < 3; w++)
        metrics_free(ms[w]);
    config_free(cfg);
}

/* Route labels are escaped; pairs beyond the series capacity go to code
 * "other". */
static void escaping_and_overflow(void **state)
{
    (void)state;
    config *cfg = load(CONFIG);
    metrics_t *m = metrics_new(5000);
    int odd = metrics_route_index(m, "/q\"\\\n");
    metrics_http(m, odd, "GET", 200, 1);
    int a = metrics_route_index(m, "/a/:id");
    for (unsigned status = 200; status < 300; status++)
        metrics_http(m, a, "DELETE", status, 1);
    char *text = render(&m, 1, cfg);
    expect_line(text, "patterngate_http_requests_total{route=\"/q\\\"\\\\\\n\",method=\"GET\",code=\"200\"} 1");
    expect_line(text, "patterngate_http_requests_total{route=\"/a/:id\",method=\"DELETE\",code=\"other\"} 36");
    free(text);
    metrics_free(m);
    config_free(cfg);
}

/* A scrape on another thread while the owner counts and registers: every
 * figure it reads is one the owner wrote, and the last scrape is exact. */
typedef struct scraper {
    metrics_t *m;
    const config *cfg;
    atomic_int stop;
    atomic_int scrapes;
} scraper_t;

static void *scrape_main(void *arg)
{
    scraper_t *s = arg;
    while (!atomic_load(&s->stop)) {
        buf_t b = BUF_INIT;
        if (metrics_render(&b, &s->m, 1, s->cfg) == 0)
            atomic_fetch_add(&s->scrapes, 1);
        buf_free(&b);
    }
    return NULL;
}

static void scrape_while_counting(void **state)
{
    (void)state;
    config *cfg = load(CONFIG);
    scraper_t s = { .m = metrics_new(5000), .cfg = cfg };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, scrape_main, &s), 0);
    char label[32];
    /* at least 20000 counts, and on until the scraper has read a few times
     * (on a loaded machine its thread may not run at first); whole rounds
     * of 50, so "/r0" is counted once per round */
    int i = 0;
    do {
        for (int k = 0; k < 50; k++, i++) {
            snprintf(label, sizeof label, "/r%d", k);
            metrics_http(s.m, metrics_route_index(s.m, label), "GET", 200 + (unsigned)(i % 7), 1000);
        }
        if (i >= 20000)
            sched_yield();
    } while (i < 20000 || atomic_load(&s.scrapes) < 3);
    atomic_store(&s.stop, 1);
    pthread_join(t, NULL);
    char *text = render(&s.m, 1, cfg);
    char want[128];
    snprintf(want, sizeof want, "patterngate_http_request_duration_seconds_count{route=\"/r0\"} %d", i / 50);
    expect_line(text, want);
    free(text);
    metrics_free(s.m);
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registries),
        cmocka_unit_test(counts_and_text),
        cmocka_unit_test(sums_over_workers),
        cmocka_unit_test(escaping_and_overflow),
        cmocka_unit_test(scrape_while_counting),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
