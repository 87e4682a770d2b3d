/*
 * jwks: the public keys of auth.jwt.jwks_file for one worker (SPEC.md
 * "Edge policy for the ingress direction": the JWKS file is reloaded when
 * it changes, like the config), kept current while the gateway runs.
 *
 * jwks_open() reads and parses the file at once (jwt_keys_parse) and
 * watches it (file_watch.h). After each settled change it reads the file
 * again; when its bytes differ from those last tried, it parses them:
 *   - parsed: the new keys replace the old ones, which are freed, and
 *     cb(data, JWKS_RELOADED, NULL) runs: the owner clears its verified-
 *     token cache (jwt_cache_clear), since tokens verified under a removed
 *     key must not stay accepted, and logs it;
 *   - unreadable, too big or not a JWKS: the old keys stay, and
 *     cb(data, JWKS_RELOAD_FAILED, why) runs ("keys[0].n: not valid
 *     base64url", "No such file or directory"); the same failure is not
 *     reported again until something else happened in between.
 * Bytes equal to those last tried change nothing and call nothing (an
 * event for another file of the folder, a touch). A file rewritten with
 * the same keys in another order counts as a change (the cache is cleared
 * for nothing; harmless).
 *
 * Keys and threads: jwks_keys() returns the current keys, which are
 * replaced (and the old ones freed) only from this module's callback on
 * the loop: a pointer taken in a loop callback stays valid until that
 * callback returns. Take it afresh for each verification (jwt_policy_t.keys
 * = jwks_keys(j) right before jwt_verify); never keep it in a long-lived
 * struct. One loop thread; each worker has its own jwks_t (N workers read
 * and parse the file N times per change: it is small and changes rarely).
 *
 * Ownership: the caller owns the jwks_t from jwks_open() until
 * jwks_close(), which frees it and its keys at once; its watch's handles
 * go with their close callbacks, so the loop must run after the close. The
 * path is copied.
 */
#ifndef PG_GATEWAY_JWKS_H
#define PG_GATEWAY_JWKS_H

#include <stddef.h>
#include <uv.h>

#include "gateway/jwt.h"

typedef struct jwks jwks_t;

typedef enum jwks_event {
    JWKS_RELOADED,      /* new keys are current */
    JWKS_RELOAD_FAILED, /* the old keys stay; `why` says what was wrong */
} jwks_event_t;

/* On the loop, never from inside jwks_open() or after jwks_close(). `why`
 * is NULL for JWKS_RELOADED, and valid during the call only. */
typedef void jwks_cb(void *data, jwks_t *j, jwks_event_t event, const char *why);

#define JWKS_ERR_SIZE 256

/*
 * Reads the file at `path` (at most JWT_MAX_JWKS bytes) and parses it.
 * Returns the keys (free them with jwt_keys_free) or NULL with the reason
 * in err[errlen], e.g. "cannot read /k.json: No such file or directory",
 * "/k.json: keys[1].x: not valid base64url", "/k.json: no usable key". A
 * set with no usable key (every key skipped) is an error: such a file
 * would refuse every token.
 */
jwt_keys_t *jwks_load_file(const char *path, char *err, size_t errlen);

/*
 * Loads `path` (as jwks_load_file) and starts watching it on `loop`.
 * Returns the jwks, or NULL with err filled: the file cannot be loaded, or
 * its folder cannot be watched (then nothing is left once the loop runs).
 */
jwks_t *jwks_open(uv_loop_t *loop, const char *path, uint64_t settle_ms, jwks_cb *cb, void *data,
                  char *err, size_t errlen);

/* The current keys (see "Keys and threads" above); never NULL. */
const jwt_keys_t *jwks_keys(const jwks_t *j);

/* The path, as given to jwks_open(). */
const char *jwks_path(const jwks_t *j);

/* Successful reloads since jwks_open() (for tests and metrics). */
unsigned long jwks_reloads(const jwks_t *j);

/* Stops watching and frees the jwks and its keys. NULL is fine. */
void jwks_close(jwks_t *j);

#endif
