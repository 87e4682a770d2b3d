/* Generations (gateway/generation.h) on a real upstream and loop: what a
 * reload keeps (unchanged services, TLS files with the same contents, the
 * metrics indices), what it replaces and when the replaced services go
 * (when the last generation using them is released, not before), and a
 * TLS file that cannot be loaded naming its field. Services are lazy and
 * point at a closed port: nothing connects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/generation.h"
#include "support/certs.h"

typedef struct fixture {
    uv_loop_t loop;
    upstream_t *up;
    metrics_t *metrics;
    logger_t log;
    char log_path[64];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    f->up = upstream_new(&f->loop);
    f->metrics = metrics_new(5000);
    logger_init(&f->log, CONFIG_LOG_INFO);
    snprintf(f->log_path, sizeof f->log_path, "/tmp/pg-gen-log-XXXXXX");
    f->log.fd = mkstemp(f->log_path);
    assert_true(f->up && f->metrics && f->log.fd >= 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    upstream_close(f->up);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    metrics_free(f->metrics);
    close(f->log.fd);
    unlink(f->log_path);
    free(f);
    return 0;
}

static config *load(const char *text)
{
    config *cfg = NULL;
    config_error err;
    if (config_load_string(text, strlen(text), NULL, &cfg, &err) != 0)
        fail_msg("config: %s", err.message);
    return cfg;
}

static generation_t *gen(fixture_t *f, const char *text, generation_t *prev)
{
    generation_t *g = generation_new(load(text), prev, f->up, f->metrics, &f->log);
    assert_non_null(g);
    return g;
}

static char *log_text(fixture_t *f)
{
    static char text[8192];
    ssize_t n = pread(f->log.fd, text, sizeof text - 1, 0);
    text[n > 0 ? n : 0] = 0;
    return text;
}

#define SVC(name, extra) "\"" name "\": { \"endpoints\": [\"127.0.0.1:1\"], \"connect\": \"lazy\"" extra " }"

static const char A_B[] = "{ \"services\": { " SVC("a", "") ", " SVC("b", "") " },"
                          " \"routes\": [ { \"method\": \"GET\", \"path\": \"/a\", \"service\": \"a\", \"pattern\": 1 },"
                          "               { \"method\": \"GET\", \"path\": \"/b/:x\", \"service\": \"b\", \"pattern\": 2 } ] }";

static void builds_router_services_and_indices(void **state)
{
    fixture_t *f = *state;
    generation_t *g = gen(f, A_B, NULL);
    assert_int_equal(g->refs, 1);
    assert_int_equal(g->kept, 0);
    assert_non_null(g->router);
    assert_ptr_equal(g->services[0], up_service_find(f->up, "a"));
    assert_ptr_equal(g->services[1], up_service_find(f->up, "b"));
    assert_int_equal(g->route_metric[0], metrics_route_index(f->metrics, "/a"));
    assert_int_equal(g->route_metric[1], metrics_route_index(f->metrics, "/b/:x"));
    assert_int_equal(g->service_metric[1], metrics_service_index(f->metrics, "b"));
    router_match_t m;
    router_match_init(&m);
    assert_int_equal(router_match(g->router, "GET", "/b/7", &m), ROUTER_FOUND);
    assert_int_equal(m.route_index, 1);
    router_match_free(&m);
    generation_release(g);
    assert_null(up_service_find(f->up, "a")); /* the last reference took its services */
    assert_null(up_service_find(f->up, "b"));
}

/* A reload keeps the unchanged service (same connections), replaces the
 * changed one, and the replaced one lives as long as the old generation. */
static void reload_keeps_unchanged_services(void **state)
{
    fixture_t *f = *state;
    generation_t *g1 = gen(f, A_B, NULL);
    up_service_t *a1 = g1->services[0], *b1 = g1->services[1];
    int route_b = g1->route_metric[1];
    generation_t *g2 = gen(f, "{ \"services\": { " SVC("a", "") ", " SVC("b", ", \"timeout_ms\": 777") " },"
                              " \"routes\": [ { \"method\": \"GET\", \"path\": \"/b/:x\", \"service\": \"b\", \"pattern\": 2 } ] }",
                           g1);
    assert_int_equal(g2->kept, 1);
    assert_ptr_equal(g2->services[0], a1);
    assert_ptr_not_equal(g2->services[1], b1);
    assert_int_equal(up_service_options(g2->services[1])->timeout_ms, 777);
    assert_int_equal(g2->route_metric[0], route_b); /* counters follow the template */
    /* a request still on g1 keeps b1 (the gateway holds g1 while it lasts) */
    generation_ref(g1);
    generation_release(g1);
    assert_int_equal(up_service_options(b1)->timeout_ms, 5000);
    generation_release(g1); /* the last reference: b1 goes, a1 stays with g2 */
    assert_ptr_equal(up_service_find(f->up, "a"), a1);
    assert_ptr_equal(up_service_find(f->up, "b"), g2->services[1]);
    generation_release(g2);
    assert_null(up_service_find(f->up, "a"));
}

/* A removed service goes with the last generation that had it; generic_api
 * alone does not make a service different. */
static void removed_service_goes_with_its_last_generation(void **state)
{
    fixture_t *f = *state;
    generation_t *g1 = gen(f, A_B, NULL);
    generation_t *g2 = gen(f, "{ \"generic_api\": [\"a\"], \"services\": { " SVC("a", "") " } }", g1);
    assert_int_equal(g2->kept, 1);
    assert_non_null(up_service_find(f->up, "b"));
    generation_release(g1);
    assert_null(up_service_find(f->up, "b"));
    assert_non_null(up_service_find(f->up, "a"));
    generation_release(g2);
}

/* TLS files are compared by their contents: the same path with new bytes
 * makes a new service; a file that cannot be read fails the generation and
 * names the field. */
static void tls_files_by_contents(void **state)
{
    fixture_t *f = *state;
    struct certs c;
    assert_int_equal(certs_make(&c), 0);
    char ca[PATH_MAX + 16], text[2 * PATH_MAX];
    snprintf(ca, sizeof ca, "%s/my-ca.pem", c.dir);
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", c.ca_crt, ca);
    assert_int_equal(system(cmd), 0);
    snprintf(text, sizeof text, "{ \"services\": { " SVC("t", ", \"tls\": { \"ca\": \"%s\" }") " } }", ca);
    generation_t *g1 = gen(f, text, NULL);
    generation_t *g2 = gen(f, text, g1);
    assert_int_equal(g2->kept, 1); /* same bytes */
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", c.other_ca_crt, ca);
    assert_int_equal(system(cmd), 0);
    generation_t *g3 = gen(f, text, g2);
    assert_int_equal(g3->kept, 0); /* same path, other bytes */
    assert_ptr_not_equal(g3->services[0], g2->services[0]);
    generation_release(g1);
    generation_release(g2);
    unlink(ca);
    config *bad = load(text);
    assert_null(generation_new(bad, g3, f->up, f->metrics, &f->log));
    config_free(bad); /* not taken on failure */
    assert_non_null(strstr(log_text(f), "services.t.tls.ca"));
    assert_ptr_equal(up_service_find(f->up, "t"), g3->services[0]); /* the running one stays */
    generation_release(g3);
    certs_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(builds_router_services_and_indices, setup, teardown),
        cmocka_unit_test_setup_teardown(reload_keeps_unchanged_services, setup, teardown),
        cmocka_unit_test_setup_teardown(removed_service_goes_with_its_last_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_files_by_contents, setup, teardown),
    };
    return cmocka_run_group_tests_name("generation", tests, NULL, NULL);
}
