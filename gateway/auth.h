/*
 * auth: who may make a request (SPEC.md "Edge policy for the ingress
 * direction": auth.bearer_tokens, auth.jwt, a route's auth and
 * require_claims), decided from its Authorization header alone. A pure
 * module: no I/O, no clock (the caller passes `now_s`), no global state;
 * the gateway (proxy.c) and `patterngate explain` decide alike through it.
 *
 * The mechanisms a request may use are CONFIG_AUTH_* bits (a route's
 * `auth`, or config.auth_mechanisms for the generic API, admin paths and
 * paths with no route); 0 needs no token. Otherwise the header must be
 * `Bearer TOKEN` (the scheme in any case, then spaces, then a non-empty
 * token), and then, in this order:
 *   1. with CONFIG_AUTH_BEARER: TOKEN equal to one of bearer_tokens
 *      (compared in constant time, every token looked at): accepted;
 *   2. with CONFIG_AUTH_JWT: TOKEN found in the cache of verified tokens
 *      (jwt.h: keyed by its hash, good until exp + leeway), else verified
 *      with jwt_verify() under auth.jwt and the current keys and, when
 *      valid, cached: accepted, with its claims;
 *   3. the route's require_claims (claims.h), all of which must hold.
 *
 * Verdicts, and what the gateway answers:
 *   AUTH_OK            go on; a JWT's claims were appended to *claims;
 *   AUTH_UNAUTHORIZED  401 `unauthorized` with WWW-Authenticate:
 *                        no bearer token:   `Bearer` alone (RFC 6750 §3.1)
 *                        a refused token:   `Bearer error="invalid_token"`,
 *                          with error_description="<why>" when a JWT was
 *                          tried (jwt_verify's reason: "token expired")
 *   AUTH_FORBIDDEN     403 `forbidden` (require_claims not met), with
 *                        `Bearer error="insufficient_scope"`
 *   AUTH_NO_MEMORY     503 `overloaded`: not the client's fault.
 * `reason` names each refusal for metrics and the access log
 * (auth_reason_name: "missing", "bearer", jwt_result_label()'s labels,
 * "claims"). No text written here ever holds token bytes or secrets.
 */
#ifndef PG_GATEWAY_AUTH_H
#define PG_GATEWAY_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"
#include "gateway/jwt.h"

typedef enum auth_reason {
    AUTH_REASON_MISSING,       /* no bearer token */
    AUTH_REASON_BEARER,        /* a token that no bearer token equals (and no JWT was tried) */
    AUTH_REASON_MALFORMED,     /* from here to AUDIENCE: jwt_verify's results */
    AUTH_REASON_ALGORITHM,
    AUTH_REASON_UNKNOWN_KEY,
    AUTH_REASON_SIGNATURE,
    AUTH_REASON_EXPIRED,
    AUTH_REASON_NOT_YET_VALID,
    AUTH_REASON_NO_EXP,
    AUTH_REASON_ISSUER,
    AUTH_REASON_AUDIENCE,
    AUTH_REASON_CLAIMS,        /* require_claims not met (403) */
    AUTH_REASON_COUNT
} auth_reason_t;

/* "missing", "bearer", "malformed", "algorithm", "unknown_key",
 * "signature", "expired", "not_yet_valid", "no_exp", "issuer",
 * "audience", "claims". */
const char *auth_reason_name(auth_reason_t reason);

typedef enum auth_verdict {
    AUTH_OK,
    AUTH_UNAUTHORIZED,
    AUTH_FORBIDDEN,
    AUTH_NO_MEMORY,
} auth_verdict_t;

/* What is checked; every pointer is borrowed for the call. */
typedef struct auth_input {
    const config *cfg;                    /* bearer_tokens, jwt */
    unsigned mechanisms;                  /* CONFIG_AUTH_* accepted; 0: none needed */
    const config_claim_rule *require;     /* require_claims (with a JWT only) */
    size_t require_count;
    const char *authorization;            /* the header's value; NULL: none */
    const jwt_keys_t *keys;               /* the JWKS's current keys; NULL: none */
    jwt_cache_t *cache;                   /* verified tokens; NULL: no caching */
    int64_t now_s;                        /* seconds since the epoch */
} auth_input_t;

#define AUTH_CHALLENGE_SIZE 160
#define AUTH_MESSAGE_SIZE 256

typedef struct auth_result {
    auth_verdict_t verdict;
    unsigned mechanism;                   /* OK: CONFIG_AUTH_BEARER or _JWT; 0 when
                                             none was needed */
    auth_reason_t reason;                 /* UNAUTHORIZED, FORBIDDEN */
    char challenge[AUTH_CHALLENGE_SIZE];  /* UNAUTHORIZED, FORBIDDEN: the
                                             WWW-Authenticate value */
    char message[AUTH_MESSAGE_SIZE];      /* the error body's message */
} auth_result_t;

/*
 * Decides for `in` (see above) and fills *out. With a JWT accepted, its
 * claims (a JSON object text) are appended to *claims, which is left
 * alone otherwise.
 */
void auth_check(const auth_input_t *in, buf_t *claims, auth_result_t *out);

/* The jwt_policy_t of auth.jwt with `keys` (all borrowed from jwt and
 * keys: use it while they live). */
jwt_policy_t auth_jwt_policy(const config_jwt *jwt, const jwt_keys_t *keys);

#endif
