/*
 * ratelimit: token buckets for a route's `rate_limit` (SPEC.md "Edge policy
 * for the ingress direction"), one per (scope, key), shared by every worker
 * thread of the process so that a limit holds for the process as a whole.
 *
 * A bucket:
 *   - is named by a scope (the caller's name for what is limited, e.g. the
 *     route "GET /users/:id") and a key within it (a user id, a header
 *     value, a client IP; empty for the route as a whole). Scope and key
 *     are compared as bytes, and ("ab", "c") is not ("a", "bc");
 *   - starts full, with `burst` tokens, the first time its name is taken;
 *   - refills continuously at `rps` tokens per second up to `burst`;
 *   - admits a request when it holds at least one token, and takes it.
 * A take that names an existing bucket with a different rule (a reload
 * changed the route's rps or burst) first refills at the old rate up to
 * now, then clamps the tokens to the new burst; from then on the new rate
 * applies. A larger burst is not filled at once: it fills at the rate.
 *
 * Exactness: tokens are integers in units of 1e-15 token and the rate is
 * taken to the nearest 1e-6 token/s (rps 0.5 and 100 are exact, 1/3 is
 * 0.333333), so the arithmetic is exact: a bucket full at t0 that sees
 * requests often enough to never fill up again, one of them at t, admits
 * exactly burst + floor(rate * (t - t0)) of those in [t0, t], however they
 * are spread over the threads. Time is the caller's: monotonic nanoseconds,
 * passed in; nothing here reads a clock. A take stamped earlier than the
 * bucket's last one (two threads read the clock, the later one locked
 * first) counts as taken at the bucket's time: time never runs back.
 *
 * Memory: at most max_keys buckets in all scopes together; taking a new
 * name when the table is full evicts the least recently taken bucket (its
 * name starts full again if it comes back). Scope and key together up to
 * RATELIMIT_ID_MAX bytes are kept as they are; a longer pair is kept as
 * its 128-bit keyed SipHash (the key is random per ratelimit_t, so nobody
 * can make two names share a bucket on purpose; by chance, never in
 * practice). A bucket is one allocation of 71 bytes plus its name (112
 * bytes of heap for "GET /users/:id" with an IPv4 address), so the default
 * 100000 keys take about 11 MB when all used. The index is a table of
 * max_keys pointers (rounded up to a power of two; 1 MB for 100000),
 * allocated at once but made resident only as it fills.
 *
 * Threads: every function but ratelimit_new and ratelimit_free may be
 * called from any thread at any time, concurrently. One mutex guards the
 * table; a take holds it for a hash lookup, the bucket arithmetic and an
 * LRU relink, never for an allocation, a free or a hash computation (the
 * first take of a name allocates its bucket between two lock holds and
 * looks it up again). The table index is keyed with SipHash so that
 * client-chosen keys cannot pile into one chain. ratelimit_set_max_keys
 * holds the lock for the evictions it makes and, when the index changes
 * size, for a rehash of every bucket (a reload-time pause, O(keys)).
 * ratelimit_free must come after every other call has returned.
 *
 * Errors: negative errno values, as noted per function.
 *
 * Build: the token arithmetic uses unsigned __int128 (GCC or Clang on a
 * 64-bit target; the .c file says so with #error elsewhere).
 */
#ifndef PG_GATEWAY_RATELIMIT_H
#define PG_GATEWAY_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Scope and key bytes kept verbatim; longer pairs are kept as a digest. */
#define RATELIMIT_ID_MAX 128
/* The rates a rule may have (tokens per second), and the largest max_keys;
 * the config loader checks its values against these. */
#define RATELIMIT_RPS_MIN 1e-6
#define RATELIMIT_RPS_MAX 1e12
#define RATELIMIT_KEYS_MAX ((size_t)1 << 26)

typedef struct ratelimit ratelimit_t;

typedef struct ratelimit_rule {
    double rps;     /* RATELIMIT_RPS_MIN..RATELIMIT_RPS_MAX */
    uint32_t burst; /* >= 1: the bucket's capacity in tokens */
} ratelimit_rule_t;

/* The answer to one take, for the response headers. Times are whole
 * seconds rounded up, as of the take, capped at UINT32_MAX. */
typedef struct ratelimit_result {
    bool allowed;
    uint32_t limit;         /* RateLimit-Limit: the burst */
    uint32_t remaining;     /* RateLimit-Remaining: whole tokens left */
    uint32_t reset_s;       /* RateLimit-Reset: until the bucket is full */
    uint32_t retry_after_s; /* Retry-After when refused (>= 1); 0 when allowed */
} ratelimit_result_t;

/*
 * A limiter for at most max_keys buckets (1..RATELIMIT_KEYS_MAX; 0 is
 * taken as 1). NULL when out of memory, when max_keys is too large, or
 * when the system has no randomness for the hash key (getrandom).
 */
ratelimit_t *ratelimit_new(size_t max_keys);
/* Frees every bucket and the limiter. NULL is ignored. */
void ratelimit_free(ratelimit_t *rl);

/*
 * Changes the bound (a reload): shrinking evicts least recently taken
 * buckets until key_count <= max_keys; growing keeps every bucket. 0 is
 * taken as 1. Returns 0; -EINVAL for max_keys > RATELIMIT_KEYS_MAX, or
 * -ENOMEM when the index cannot be resized; then nothing changed.
 */
int ratelimit_set_max_keys(ratelimit_t *rl, size_t max_keys);

/*
 * Takes one token from the bucket (scope, key) at time now_ns under rule,
 * creating the bucket (full) if it has none, and describes the outcome in
 * *out. The spans are only read during the call.
 * Returns 0; -EINVAL for a rule out of range (*out then admits with every
 * figure 0); -ENOMEM when a new bucket cannot be allocated: nothing is
 * kept, and *out is what a new, full bucket would answer (admitted), since
 * the gateway admits on a memory failure.
 */
int ratelimit_take(ratelimit_t *rl, span_t scope, span_t key, const ratelimit_rule_t *rule, uint64_t now_ns,
                   ratelimit_result_t *out);

/* For metrics, lock-free (relaxed atomic reads): the buckets kept now, and
 * the buckets evicted since ratelimit_new (by new names or by shrinking). */
size_t ratelimit_key_count(const ratelimit_t *rl);
uint64_t ratelimit_evictions(const ratelimit_t *rl);

#endif
