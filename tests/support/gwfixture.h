/* gwfixture: the fixture that most integration tests share: the group's
 * Nest 12 service (started once per test program), the running test's
 * gateway and, for tests that need one, a Nest service of their own. The
 * test teardown kills what a failed test could not stop.
 *
 * The gateway is started with NEST_ADDR (the group's service, or the one
 * given) and DOWN_ADDR (a closed port of 127.0.0.1) in its environment, so
 * configs can name both. Everything fails the running cmocka test on error
 * (gwtest.h); call from the test's main thread.
 *
 * A test program that needs more (a JOSE suite, a kept gateway...) writes
 * its own setup or teardown and calls these from it. */
#ifndef PG_TESTS_SUPPORT_GWFIXTURE_H
#define PG_TESTS_SUPPORT_GWFIXTURE_H

#include <stdbool.h>

struct gwproc;
struct nest_service;

struct gwfixture {
    struct gwproc *gw;          /* the running test's gateway, or NULL */
    struct nest_service *nest;  /* a test's own Nest service (heap), or NULL */
    const char *nest_addr;      /* the group's service, "127.0.0.1:<port>" */
};

/* The one fixture of the test program. */
extern struct gwfixture gwf;

/* cmocka group setup and teardown: the group's Nest 12 service. */
int gwf_group_setup(void **state);
int gwf_group_teardown(void **state);

/* cmocka test teardown: discards gwf.gw and stops gwf.nest. */
int gwf_test_teardown(void **state);

/* Starts the test's gateway (gwf.gw) on `config`, NEST_ADDR set to
 * `nest_addr` (the group's service when NULL), readiness probed on the
 * admin port when `on_admin`, with `ready_headers` (NULL-terminated, or
 * NULL) on the probe. */
struct gwproc *gwf_start(const char *config, const char *nest_addr, bool on_admin,
                         const char *const *ready_headers);

/* SIGTERM to gwf.gw; it must exit 0 (an ASan build exits non-zero on a
 * leak). */
void gwf_stop(void);

#endif
