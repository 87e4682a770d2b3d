/* deadline: monotonic milliseconds and poll() timeouts for the test support
 * code. A negative timeout means "forever" (deadline INT64_MAX). */
#ifndef PG_TESTS_SUPPORT_DEADLINE_H
#define PG_TESTS_SUPPORT_DEADLINE_H

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <time.h>

static inline int64_t deadline_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t deadline_after(int timeout_ms)
{
    return timeout_ms < 0 ? INT64_MAX : deadline_now_ms() + timeout_ms;
}

/* Milliseconds left before the deadline, for poll(): -1 = forever. */
static inline int deadline_remaining_ms(int64_t deadline)
{
    if (deadline == INT64_MAX)
        return -1;
    int64_t left = deadline - deadline_now_ms();
    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

/* Sleeps ms milliseconds, across signals: the pause between two polls of a
 * condition (never a synchronization by itself). */
static inline void deadline_pause_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

#endif
