/*
 * reload: applies a changed config file while running (SPEC.md "Signals
 * and logs"). Triggers: SIGHUP (always reloads), and a change in the config
 * file's folder (watched with inotify through uv_fs_event, so that an edit,
 * a new file renamed over it, or the symlink swap of a Kubernetes ConfigMap
 * update are all seen) after which the file is reloaded if its bytes
 * changed, 100 ms after the last event.
 *
 * A reload parses and validates the file first; on any error (syntax,
 * schema, a TLS file that cannot be loaded) it logs "config reload failed"
 * with the error, counts it, and the running config stays. On success the
 * new generation (generation.h) becomes current: new requests use it,
 * requests in flight finish on theirs, unchanged services keep their
 * connections. listen, admin_listen, workers, limits.max_connections and
 * limits.idle_timeout_ms cannot change live: a change is logged and the
 * running values are kept.
 *
 * Ownership: the reloader lives inside the gateway_t; reload_start arms its
 * handles and reload_close closes them (the loop then runs dry of them).
 */
#ifndef PG_GATEWAY_RELOAD_H
#define PG_GATEWAY_RELOAD_H

#include <stdint.h>
#include <uv.h>

#include "gateway/file_digest.h"

struct gateway;

typedef struct reloader {
    struct gateway *gw;
    uv_signal_t sighup;
    uv_fs_event_t watch;
    uv_timer_t settle;        /* debounces bursts of file events */
    int watching;
    char last_digest[FILE_DIGEST_HEX]; /* of the file last loaded or tried */
} reloader_t;

/* Starts listening for SIGHUP and, when the config came from a file,
 * watching its folder (a failure to watch is logged, SIGHUP still works). */
void reload_start(reloader_t *r, struct gateway *gw);

/* Reloads now; `trigger` ("SIGHUP", "file change") goes into the log. */
void reload_now(reloader_t *r, const char *trigger);

void reload_close(reloader_t *r);

#endif
