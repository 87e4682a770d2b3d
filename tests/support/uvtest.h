/* uvtest: driving the upstream client from tests on a real libuv loop.
 *
 * uvtest_run_until runs the loop until a condition holds or a deadline
 * passes (a timer wakes the loop, so it never spins and never sleeps as
 * synchronization). uvtest_call_t records what a request's callbacks saw.
 * Single-threaded, like the loop it drives.
 */
#ifndef PG_TESTS_SUPPORT_UVTEST_H
#define PG_TESTS_SUPPORT_UVTEST_H

#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/upstream.h"

/* Runs `loop` until cond(arg) is true (returns 1) or timeout_ms pass (0). */
int uvtest_run_until(uv_loop_t *loop, int (*cond)(void *), void *arg, int timeout_ms);

/* Closes the upstream, runs the loop dry and checks that it closes clean:
 * returns uv_loop_close's result (0 when no handle was left behind). */
int uvtest_close(uv_loop_t *loop, upstream_t *up);

typedef struct uvtest_call {
    int done;
    up_outcome_t outcome;
    size_t nvalues;
    buf_t values;       /* every value, each followed by a newline; NUL-terminated */
    buf_t err;          /* the service's err, for UP_ERROR/UP_NO_HANDLER */
    char detail[200];
    uint64_t done_at;   /* uv_hrtime() in ms when on_done ran */
    uint64_t first_value_at;
    up_request_t *req;
} uvtest_call_t;

extern const up_callbacks_t uvtest_callbacks;

/* Sends through svc with uvtest_callbacks; the call records the result. */
void uvtest_send(up_service_t *svc, uvtest_call_t *call, const char *pattern, const char *data,
                 uint32_t timeout_ms);
void uvtest_emit(up_service_t *svc, uvtest_call_t *call, const char *pattern, const char *data);
/* Sends and runs the loop until done (fails the test after timeout_ms). */
void uvtest_send_wait(uv_loop_t *loop, up_service_t *svc, uvtest_call_t *call,
                      const char *pattern, const char *data, uint32_t timeout_ms);
int uvtest_is_done(void *call);
/* Runs the loop until all n calls are done (1) or timeout_ms pass (0). */
int uvtest_wait_all(uv_loop_t *loop, uvtest_call_t *calls, size_t n, int timeout_ms);
void uvtest_call_free(uvtest_call_t *call);

/* Adds a service with SPEC.md defaults and the given endpoints. */
up_service_t *uvtest_service(upstream_t *up, const char *name, const char *const *endpoints,
                             size_t n, unsigned pool_size, up_connect_mode_t mode);

#endif
