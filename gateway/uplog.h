/*
 * uplog: the worker's log of what happens upstream.
 *
 * Connection events (connected, connect failed, disconnected, ejected) as
 * log lines, rate-limited per endpoint so that a flapping service cannot
 * flood the log: each endpoint may log a burst of UPLOG_BURST lines, then
 * one more every UPLOG_REFILL_MS; lines held back are counted and the next
 * line written says how many ("suppressed"). Ejections (at least 10 s apart
 * per endpoint) are always written.
 *
 * Packets, with log.level "debug" (SPEC.md "Operating it"): one debug line
 * per packet written ("packet sent": service, endpoint, pattern, id, data)
 * and read ("packet received": service, endpoint, id, what it carries
 * (response, err, isDisposed), data). `data` is the JSON text of the data
 * or of the reply's value as a string, cut to log.debug_bytes (on a UTF-8
 * boundary), and data_bytes its whole length; `pattern` is the pattern's
 * JSON when it fits in debug_bytes, else its text cut the same way. At any
 * other level no observer is installed and packets cost nothing.
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
    unsigned debug_bytes;   /* packet data shown, at level debug */
} uplog_t;

void uplog_init(uplog_t *cl, const logger_t *log);

/* Follows a config: with log.level debug the packets of `up` are logged
 * (up to log.debug_bytes of data), otherwise not. */
void uplog_configure(uplog_t *cl, upstream_t *up, const config *cfg);
void uplog_free(uplog_t *cl);

/* Logs one event at time now_ms (a monotonic clock), or counts it as
 * suppressed. Matches up_event_fn with ctx = the uplog_t. */
void uplog_event(uplog_t *cl, const up_event_t *ev, uint64_t now_ms);

#endif
