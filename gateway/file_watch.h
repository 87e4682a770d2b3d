/*
 * file_watch: tells its owner, on the event loop, that a file may have
 * changed, so that the owner reads it again and compares (e.g. the JWKS
 * file of auth.jwt, see jwks.h).
 *
 * What is watched (inotify, through uv_fs_event, never polling):
 *   - the folder of the path as given: an edit in place, a new file
 *     renamed over it, its deletion and re-creation, and the symlink swap
 *     of a Kubernetes Secret or ConfigMap volume (the `..data` link of the
 *     mounted folder is replaced: the event is in that folder) are seen;
 *   - and, when the path resolves through symlinks to a file in another
 *     folder (realpath), that folder too, so that an edit of a linked-to
 *     file is seen. The target is resolved again after each change, so the
 *     second watch follows the link when it moves.
 * Any event in a watched folder counts (another file of the folder too):
 * the callback means "may have changed", not "has changed". Events are
 * debounced: the callback runs once `settle_ms` after the last event of a
 * burst (an editor's save, a ConfigMap update, a writer's several writes),
 * but never later than FILE_WATCH_MAX_SETTLES * settle_ms after the
 * burst's first event, so that a folder that is never quiet (/tmp, a log
 * file written next to the watched file) does not hold the callback back
 * for ever.
 *
 * Callbacks: `cb` runs on the loop, never from inside file_watch_start(),
 * and never after file_watch_close(). A watched folder that goes away
 * (or an event error) counts as a change too; the folder's watch is then
 * gone, and the callback's reading of the file will fail until the owner
 * starts a new watch.
 *
 * Ownership: file_watch_start() returns a watch the caller owns until
 * file_watch_close(), which closes its handles; the memory is freed by the
 * last close callback, so the loop must run after the close (a loop run
 * dry has nothing of it left). One loop thread; the path is copied.
 *
 * Errors: negative errno values (uv error codes).
 */
#ifndef PG_GATEWAY_FILE_WATCH_H
#define PG_GATEWAY_FILE_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* The quiet time after the last event before the callback (the config
 * file's watch in reload.c uses the same). */
#define FILE_WATCH_SETTLE_MS 100

/* A burst that does not end is cut after this many settle times (the
 * config file's watch in reload.c uses the same). */
#define FILE_WATCH_MAX_SETTLES 10

/* The delay before the settled callback, given the time of the burst's
 * first event and now (ms, one clock): settle_ms, shortened so that the
 * callback runs at the latest FILE_WATCH_MAX_SETTLES * settle_ms after
 * burst_start. */
uint64_t file_watch_settle_delay(uint64_t burst_start, uint64_t now, uint64_t settle_ms);

typedef struct file_watch file_watch_t;

typedef void file_watch_cb(file_watch_t *w, void *data);

/*
 * Starts watching the folder of `path` (and the folder of the file it
 * links to, if another) on `loop`; after each settled burst of events,
 * calls cb(w, data). Returns 0 with *out set, or a negative errno when the
 * path's folder cannot be watched (it does not exist, no inotify watches
 * left...); *out is then NULL. The file itself need not exist.
 */
int file_watch_start(uv_loop_t *loop, const char *path, uint64_t settle_ms, file_watch_cb *cb,
                     void *data, file_watch_t **out);

/* Stops watching; cb is not called again. NULL is fine. */
void file_watch_close(file_watch_t *w);

/* The path watched (as given). */
const char *file_watch_path(const file_watch_t *w);

/* Whether a second folder is watched (the path links elsewhere), for
 * tests and logs. */
bool file_watch_follows_link(const file_watch_t *w);

#endif
