/*
 * conn_log: upstream connection events (connected, connect failed,
 * disconnected) as log lines, rate-limited per endpoint so that a flapping
 * service cannot flood the log: each endpoint may log a burst of
 * CONN_LOG_BURST lines, then one more every CONN_LOG_REFILL_MS; lines held
 * back are counted and the next line written says how many ("suppressed").
 * Ejections (at least 10 s apart per endpoint) are always written.
 *
 * Ownership: the caller owns the conn_log_t and the logger it points to;
 * conn_log_free releases the per-endpoint state. One loop thread.
 */
#ifndef PG_GATEWAY_CONN_LOG_H
#define PG_GATEWAY_CONN_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "core/upstream.h"
#include "gateway/log.h"

#define CONN_LOG_BURST 10
#define CONN_LOG_REFILL_MS 5000

typedef struct conn_log_entry conn_log_entry_t;

typedef struct conn_log {
    const logger_t *log;
    conn_log_entry_t *entries;
    size_t count;
} conn_log_t;

void conn_log_init(conn_log_t *cl, const logger_t *log);
void conn_log_free(conn_log_t *cl);

/* Logs one event at time now_ms (a monotonic clock), or counts it as
 * suppressed. Matches up_event_fn with ctx = the conn_log_t. */
void conn_log_event(conn_log_t *cl, const up_event_t *ev, uint64_t now_ms);

#endif
