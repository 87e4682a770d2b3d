#include "support/gwfixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "support/gateway.h"
#include "support/gwtest.h"
#include "support/nest.h"
#include "support/net.h"

struct gwfixture gwf;

int gwf_group_setup(void **state)
{
    if (nest_group_setup_v12(state) != 0)
        return -1;
    gwf.nest_addr = ((struct nest_group *)*state)->address;
    return 0;
}

int gwf_group_teardown(void **state)
{
    gwf.nest_addr = NULL;
    return nest_group_teardown(state);
}

int gwf_test_teardown(void **state)
{
    (void)state;
    gwt_discard(gwf.gw);
    gwf.gw = NULL;
    if (gwf.nest)
        nest_stop(gwf.nest);
    free(gwf.nest);
    gwf.nest = NULL;
    return 0;
}

struct gwproc *gwf_start(const char *config, const char *nest_addr, bool on_admin,
                         const char *const *ready_headers)
{
    char nest_env[64], down_env[64];
    snprintf(nest_env, sizeof nest_env, "NEST_ADDR=%s", nest_addr ? nest_addr : gwf.nest_addr);
    int down = testnet_free_port();
    assert_true(down > 0);
    snprintf(down_env, sizeof down_env, "DOWN_ADDR=127.0.0.1:%d", down);
    const char *env[] = { nest_env, down_env, NULL };
    struct gwproc_options o = { .ready_on_admin = on_admin, .ready_headers = ready_headers };
    gwf.gw = gwt_start(config, env, &o);
    return gwf.gw;
}

void gwf_stop(void)
{
    struct gwproc *gw = gwf.gw;
    gwf.gw = NULL;
    gwt_stop(gw);
}
