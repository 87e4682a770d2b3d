/*
 * wallclock: the wall clock in ms since the epoch, for what users read as
 * dates (/status times, reload times); durations use the loop's monotonic
 * clock instead.
 */
#ifndef PG_GATEWAY_WALLCLOCK_H
#define PG_GATEWAY_WALLCLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t wallclock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
