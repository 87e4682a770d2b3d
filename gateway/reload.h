/*
 * reload: a worker's current config, and applying a changed config file
 * while running (SPEC.md "Signals and logs"). It is the one writer of the
 * worker's config fields (worker.h: gen, the loggers' levels, the load
 * time and the last reload error).
 *
 * Triggers, on worker 0 only: SIGHUP (always reloads), and a change in the
 * config file's folder (watched with inotify through uv_fs_event, so that
 * an edit, a new file renamed over it, or the symlink swap of a Kubernetes
 * ConfigMap update are all seen) after which the file is reloaded if its
 * bytes changed, 100 ms after the last event (at the latest 1 s after the
 * first: a busy folder such as /tmp is never quiet). Worker 0 reloads, logs the
 * outcome once ("config reloaded" or "config reload failed", process-wide)
 * and counts it, then posts PEER_RELOAD to every other worker, which loads
 * the same file for itself; a worker whose outcome differs from worker 0's
 * says so in a line of its own.
 *
 * A reload parses and validates the file first; on any error (syntax,
 * schema, a TLS file that cannot be loaded) the running config stays, and
 * the error is kept for /status. On success the new generation
 * (generation.h) becomes current: new requests use it, requests in flight
 * finish on theirs, unchanged services keep their connections. listen,
 * admin_listen, workers, limits.max_connections and limits.idle_timeout_ms
 * cannot change live: a change is logged and the running values are kept.
 *
 * Ownership: the reloader lives in gateway.c's worker; reload_start takes
 * the first config, reload_close drops the current generation and closes
 * the handles (the loop then runs dry of them).
 */
#ifndef PG_GATEWAY_RELOAD_H
#define PG_GATEWAY_RELOAD_H

#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "gateway/file_digest.h"
#include "gateway/peers.h"
#include "gateway/worker.h"

typedef struct reloader {
    worker_t *w;
    uv_signal_t sighup;       /* worker 0 */
    uv_fs_event_t watch;      /* worker 0, with a config file */
    uv_timer_t settle;        /* debounces bursts of file events */
    uint64_t burst_start;     /* uv_now of the pending burst's first event */
    int handles;              /* the three above were initialized */
    int watching;
    char last_digest[FILE_DIGEST_HEX]; /* of the file last loaded or tried */
} reloader_t;

/* Makes cfg the worker's first config (taken on success): builds its
 * generation, sets the loggers' levels; worker 0 starts listening for
 * SIGHUP and watching the file (a failure to watch is logged, SIGHUP still
 * works). 0, or -1 (logged; cfg still the caller's). */
int reload_start(reloader_t *r, worker_t *w, config *cfg);

/* Worker 0: reloads now; `trigger` ("SIGHUP", "file change") goes into the
 * log. Nothing while the worker drains. */
void reload_now(reloader_t *r, const char *trigger);

/* A PEER_RELOAD message for this (other) worker. */
void reload_on_message(reloader_t *r, peer_msg_t *msg);

/* Stops the triggers and drops the worker's current generation (requests
 * still on its services are told `why`). */
void reload_close(reloader_t *r, const char *why);

#endif
