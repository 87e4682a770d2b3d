/*
 * timers: every deadline of a worker (request timeouts, connect timeouts,
 * reconnect backoff) in one binary min-heap driven by a single uv_timer_t,
 * so a request costs no timer handle and no syscall of its own.
 *
 * Entries are intrusive: the owner embeds a timer_entry_t and keeps it alive
 * while it is armed. Adding and removing is O(log n); the uv timer is only
 * re-armed when the earliest deadline moves earlier (a removed head just
 * lets the timer fire early and find nothing due).
 *
 * Callbacks run from the uv timer callback, with the entry already disarmed;
 * they may arm or disarm any entry, including their own.
 */
#ifndef PG_CORE_TIMERS_H
#define PG_CORE_TIMERS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct timer_entry timer_entry_t;
typedef void (*timer_fire_cb)(timer_entry_t *entry);

struct timer_entry {
    uint64_t due;       /* loop time (ms) */
    size_t index;       /* position in the heap; TIMER_IDLE when not armed */
    timer_fire_cb fire;
};

#define TIMER_IDLE ((size_t)-1)

typedef struct timers {
    uv_timer_t handle;
    timer_entry_t **heap;
    size_t len;
    size_t cap;
    uint64_t armed_for; /* due time the uv timer is set for; UINT64_MAX: none */
} timers_t;

/* 0, or a negative libuv error. An armed deadline keeps the loop alive. */
int timers_init(timers_t *t, uv_loop_t *loop);

/* Closes the uv handle (entries still armed are dropped, never fired);
 * close_cb gets the timer handle when done; the heap memory is freed now. */
void timers_close(timers_t *t, uv_close_cb close_cb);

static inline void timer_entry_init(timer_entry_t *e) { e->index = TIMER_IDLE; }
static inline int timer_armed(const timer_entry_t *e) { return e->index != TIMER_IDLE; }

/* Arms (or re-arms) e to fire `delay_ms` from the loop's now. 0 or -ENOMEM. */
int timers_start(timers_t *t, timer_entry_t *e, uint64_t delay_ms, timer_fire_cb fire);

/* Disarms e; harmless when it is not armed. */
void timers_stop(timers_t *t, timer_entry_t *e);

/* Armed entries (for tests and stats). */
static inline size_t timers_count(const timers_t *t) { return t->len; }

#endif
