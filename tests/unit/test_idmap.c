/* Unit tests of core/idmap, checked against a plain array as the model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "core/idmap.h"

static void put_get_del(void **state)
{
    (void)state;
    idmap_t m;
    int a, b;
    idmap_init(&m);
    assert_null(idmap_get(&m, 1));
    assert_null(idmap_del(&m, 1));
    assert_int_equal(idmap_put(&m, 1, &a), 0);
    assert_int_equal(idmap_put(&m, 2, &b), 0);
    assert_ptr_equal(idmap_get(&m, 1), &a);
    assert_ptr_equal(idmap_get(&m, 2), &b);
    assert_int_equal(idmap_put(&m, 1, &b), 0); /* replace */
    assert_int_equal(idmap_len(&m), 2);
    assert_ptr_equal(idmap_del(&m, 1), &b);
    assert_null(idmap_get(&m, 1));
    assert_int_equal(idmap_len(&m), 1);
    idmap_free(&m);
}

/* Random churn against a model: every present key found, absent ones not. */
static void churn_matches_model(void **state)
{
    (void)state;
    enum { KEYS = 5000 };
    static char present[KEYS];
    static int values[KEYS];
    idmap_t m;
    idmap_init(&m);
    unsigned seed = 42;
    size_t count = 0;
    for (int step = 0; step < 200000; step++) {
        seed = seed * 1103515245u + 12345u;
        uint64_t key = (seed >> 8) % KEYS;
        if (present[key]) {
            assert_ptr_equal(idmap_del(&m, key), &values[key]);
            present[key] = 0;
            count--;
        } else {
            assert_int_equal(idmap_put(&m, key, &values[key]), 0);
            present[key] = 1;
            count++;
        }
        assert_int_equal(idmap_len(&m), count);
    }
    for (uint64_t k = 0; k < KEYS; k++)
        assert_ptr_equal(idmap_get(&m, k), present[k] ? &values[k] : NULL);
    idmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_get_del),
        cmocka_unit_test(churn_matches_model),
    };
    return cmocka_run_group_tests_name("idmap", tests, NULL, NULL);
}
