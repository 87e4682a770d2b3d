/*
 * uplog: upstream connection events (connected, connect failed,
 * disconnected) as log lines, rate-limited per endpoint so that a flapping
 * service cannot flood the log: each endpoint may log a burst of
 * UPLOG_BURST lines, then one more every UPLOG_REFILL_MS; lines held
 * back are counted and the next line written says how many ("suppressed").
 * Ejections (at least 10 s apart per endpoint) are always written.
 *
 * Ownership: the caller owns the uplog_t and the logger it points to;
 * uplog_free releases the per-endpoint state. One loop thread.
 */
#ifndef PG_GATEWAY_UPLOG_H
#define PG_GATEWAY_UPLOG_H

#include <stddef.h>
#include <stdint.h>

#include "core/upstream.h"
#include "gateway/log.h"

#define UPLOG_BURST 10
#define UPLOG_REFILL_MS 5000

typedef struct uplog_entry uplog_entry_t;

typedef struct uplog {
    const logger_t *log;
    uplog_entry_t *entries;
    size_t count;
} uplog_t;

void uplog_init(uplog_t *cl, const logger_t *log);
void uplog_free(uplog_t *cl);

/* Logs one event at time now_ms (a monotonic clock), or counts it as
 * suppressed. Matches up_event_fn with ctx = the uplog_t. */
void uplog_event(uplog_t *cl, const up_event_t *ev, uint64_t now_ms);

#endif
