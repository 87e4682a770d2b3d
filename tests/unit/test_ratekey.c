/* Unit tests of gateway/ratekey: every key form the loader accepts, parsed
 * and read from a request's render input (headers and query parameters
 * through lookup callbacks over a fixed table, path captures, the client's
 * address, the claims), and the empty key for every missing value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/route_path.h"
#include "gateway/ratekey.h"

/* name -> value pairs, looked up by exact name (header names lower case,
 * as render asks for them); "bad" answers RENDER_LOOKUP_BAD. */
static const char *const pairs[][2] = {
    { "x-api-key", "k-123" }, { "tenant", "acme" }, { "bad", "" }, { NULL, NULL },
};

static render_lookup_result lookup(void *ctx, const char *name, size_t n, span_t *value)
{
    int *calls = ctx;
    (*calls)++;
    for (size_t i = 0; pairs[i][0]; i++) {
        if (strlen(pairs[i][0]) != n || memcmp(pairs[i][0], name, n) != 0)
            continue;
        if (strcmp(name, "bad") == 0)
            return RENDER_LOOKUP_BAD;
        *value = span_cstr(pairs[i][1]);
        return RENDER_LOOKUP_FOUND;
    }
    return RENDER_LOOKUP_ABSENT;
}

typedef struct fixture {
    route_path path;
    span_t captures[2];
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    int calls;
    render_input_t in;
    buf_t scratch;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char error[256];
    assert_int_equal(route_path_parse("/orgs/:org/users/:id", &f->path, error, sizeof error), 0);
    f->captures[0] = span_cstr("o-1");
    f->captures[1] = span_cstr("u 7");
    f->v4.sin_family = AF_INET;
    inet_pton(AF_INET, "10.0.0.7", &f->v4.sin_addr);
    f->v6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::1", &f->v6.sin6_addr);
    f->in = (render_input_t){ .captures = f->captures, .capture_count = 2, .query = lookup,
                              .query_context = &f->calls, .header = lookup, .header_context = &f->calls,
                              .claims = span_cstr("{\"sub\":\"u\\u0034\\u0032\",\"org\":{\"id\":7,\"n\":\"x\"}}"),
                              .client_address = (const struct sockaddr *)&f->v4 };
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    route_path_free(&f->path);
    buf_free(&f->scratch);
    free(f);
    return 0;
}

/* The value of key `text` for f's input. */
static void key_is(fixture *f, const char *text, const char *want)
{
    ratekey_t k;
    assert_int_equal(ratekey_parse(text, &f->path, &k), 0);
    span_t v = { "junk", 4 };
    assert_int_equal(ratekey_value(&k, &f->in, &f->scratch, &v), 0);
    if (v.n != strlen(want) || (v.n && memcmp(v.p, want, v.n) != 0))
        fail_msg("key %s: got \"%.*s\", want \"%s\"", text ? text : "(none)", (int)v.n, v.p, want);
    ratekey_free(&k);
}

static void values(void **state)
{
    fixture *f = *state;
    key_is(f, NULL, "");
    key_is(f, "$header.X-Api-Key", "k-123"); /* asked for in lower case */
    key_is(f, "$header.x-none", "");
    key_is(f, "$header.bad", "");
    key_is(f, "$query.tenant", "acme");
    key_is(f, "$query.Tenant", ""); /* query names are exact */
    key_is(f, "$path.id", "u 7");
    key_is(f, "$path.org", "o-1");
    key_is(f, "$client.ip", "10.0.0.7");
    key_is(f, "$jwt.sub", "u42"); /* a string's content, unescaped */
    key_is(f, "$jwt.claims.org.id", "7");
    key_is(f, "$jwt.claims.org.n", "x");
    key_is(f, "$jwt.claims.org", "{\"id\":7,\"n\":\"x\"}");
    key_is(f, "$jwt.tenant", "");
    key_is(f, "$jwt.claims.org.none", "");
}

static void missing_sources(void **state)
{
    fixture *f = *state;
    f->in.client_address = (const struct sockaddr *)&f->v6;
    key_is(f, "$client.ip", "2001:db8::1");
    struct sockaddr_in6 mapped = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET6, "::ffff:192.0.2.9", &mapped.sin6_addr);
    f->in.client_address = (const struct sockaddr *)&mapped;
    key_is(f, "$client.ip", "192.0.2.9");
    f->in.client_address = NULL;
    key_is(f, "$client.ip", "");
    f->in.claims = span_of(NULL, 0); /* no token, or a bearer token */
    key_is(f, "$jwt.sub", "");
    f->in.header = NULL;
    f->in.query = NULL;
    key_is(f, "$header.x-api-key", "");
    key_is(f, "$query.tenant", "");
    f->in.capture_count = 0;
    key_is(f, "$path.id", "");
}

static void parsing(void **state)
{
    fixture *f = *state;
    ratekey_t k;
    assert_int_equal(ratekey_parse("$jwt.claims.a.b", &f->path, &k), 0);
    assert_int_equal(k.source, RATEKEY_CLAIM);
    assert_string_equal(k.name, "a.b");
    ratekey_free(&k);
    assert_int_equal(ratekey_parse("$path.id", &f->path, &k), 0);
    assert_int_equal(k.source, RATEKEY_PATH);
    assert_int_equal(k.capture_index, 1);
    ratekey_free(&k);
    const char *bad[] = { "$path.nope", "$path.", "$header.", "$body", "x", "$jwt.", "$client.port" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(ratekey_parse(bad[i], &f->path, &k), -EINVAL);
        assert_int_equal(k.source, RATEKEY_NONE);
        assert_null(k.name);
    }
    assert_int_equal(ratekey_parse(NULL, &f->path, &k), 0);
    assert_int_equal(k.source, RATEKEY_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(values, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(parsing, setup, teardown),
    };
    return cmocka_run_group_tests_name("ratekey", tests, NULL, NULL);
}
