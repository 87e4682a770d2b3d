/*
 * jwt: verification of JSON Web Tokens (RFC 7519) in JWS compact form
 * (RFC 7515), for `Authorization: Bearer` tokens (SPEC.md "Edge policy for
 * the ingress direction", auth.jwt). A pure module: no I/O, no logging, no
 * clock (the caller passes `now`), no global state. Crypto is OpenSSL 3's
 * EVP API.
 *
 * Algorithms: RS256 (RSA PKCS#1 v1.5 with SHA-256), ES256 (ECDSA P-256 with
 * SHA-256; the JWS signature is r||s, 64 bytes), EdDSA (Ed25519) and HS256
 * (HMAC-SHA-256). `none` is never accepted, whatever the allowlist.
 * Each algorithm has exactly one source of keys, so that no key can be
 * used by another algorithm (no "algorithm confusion"):
 *   RS256  JWKS keys with kty "RSA" (modulus 2048 to 8192 bits);
 *   ES256  JWKS keys with kty "EC", crv "P-256";
 *   EdDSA  JWKS keys with kty "OKP", crv "Ed25519";
 *   HS256  the policy's configured secret only (JWKS "oct" keys are skipped).
 *
 * A token is accepted when all of these hold, checked in this order (the
 * first failure is the result):
 *   1. it is at most JWT_MAX_TOKEN bytes of exactly three base64url parts
 *      (RFC 4648 §5 alphabet, no padding, no whitespace, unused bits zero);
 *   2. the header is a JSON object without repeated members, with a string
 *      `alg`, an optional string `kid`, and no `crit` (`typ` and any other
 *      member are ignored; keys embedded in the header, such as jwk, jku,
 *      x5c, are never used);
 *   3. `alg` is one of the four above and in the policy's allowlist;
 *   4. the signature verifies with a key of the algorithm's source: with a
 *      `kid` (RS256/ES256/EdDSA), the JWKS keys carrying that kid and fit
 *      for the algorithm; without one, the keys fit for the algorithm, the
 *      first JWT_MAX_KEYS_TRIED of them in JWKS order; HS256 ignores `kid`;
 *   5. the payload is a JSON object (validated by core/json_scan.h, which
 *      accepts everything JSON.parse does: big integers, "\u0000", ...);
 *      a repeated claim counts as its last occurrence, as with JSON.parse;
 *   6. `exp` is present and a number, and now < exp + leeway;
 *   7. `nbf`, when present, is a number and now >= nbf - leeway;
 *   8. with a configured issuer, `iss` is a string equal to it;
 *   9. with configured audiences, `aud` is a string equal to one of them or
 *      an array holding at least one string equal to one of them.
 * exp and nbf may be integers or decimals of any size; they are compared
 * exactly (as their ceiling, saturated at +-1e18 s). Without configured
 * audiences `aud` is not looked at, nor `iss` without an issuer.
 *
 * Errors: jwt_verify() returns a jwt_result_t and writes a short English
 * reason into `why`. The reason is a fixed text chosen by this module: it
 * never holds token bytes, key material or secrets, nor quotes, backslashes
 * or control characters, so it can go into a WWW-Authenticate
 * error_description or a log line as is. Nothing here logs. OpenSSL's error
 * queue is left empty after every call.
 *
 * Ownership and threads:
 *   jwt_keys_t    made by jwt_keys_parse(), owned by the caller, released
 *                 with jwt_keys_free(); it never changes after parsing, so
 *                 several threads may verify with it at once.
 *   jwt_policy_t  the caller's; every pointer in it is borrowed for the
 *                 duration of a jwt_verify() call only.
 *   jwt_claims_t  filled by jwt_verify(): owns `json`, released with
 *                 jwt_claims_free() or handed to a cache (jwt_cache_put).
 *   jwt_cache_t   one per worker thread, no locks: owns its entries and
 *                 their claims.
 */
#ifndef PG_GATEWAY_JWT_H
#define PG_GATEWAY_JWT_H

#include <stddef.h>
#include <stdint.h>

/* Bounds on input. */
#define JWT_MAX_TOKEN 16384           /* bytes of token text */
#define JWT_MAX_JWKS (1024 * 1024)    /* bytes of JWKS text */
#define JWT_MAX_KEYS 256              /* entries of a JWKS "keys" array */
#define JWT_MAX_KEYS_TRIED 8          /* keys tried for one token */

/* An algorithm, and a bit of an allowlist (an `unsigned` of these or'ed). */
typedef enum jwt_alg {
    JWT_ALG_RS256 = 1,
    JWT_ALG_ES256 = 2,
    JWT_ALG_EDDSA = 4,
    JWT_ALG_HS256 = 8,
} jwt_alg_t;

#define JWT_ALG_ALL (JWT_ALG_RS256 | JWT_ALG_ES256 | JWT_ALG_EDDSA | JWT_ALG_HS256)

/* Parses an algorithm name as JWS spells it ("RS256", "ES256", "EdDSA",
 * "HS256"; case-sensitive) of n bytes: 0 with *out set, or -1 for any other
 * name, "none" included. */
int jwt_alg_parse(const char *name, size_t n, jwt_alg_t *out);

/* The JWS name of an algorithm, or "?" for anything else. */
const char *jwt_alg_name(jwt_alg_t alg);

/* A parsed JSON Web Key Set (RFC 7517), public keys only. */
typedef struct jwt_keys jwt_keys_t;

#define JWT_ERR_SIZE 128 /* enough for every jwt_keys_parse() error */

/*
 * Parses a JWKS text `{"keys": [...]}` of n bytes (at most JWT_MAX_JWKS)
 * and builds each key's OpenSSL object once. Per key:
 *   RSA  "n", "e" (base64url, unpadded, big-endian; modulus 2048-8192 bits,
 *        odd exponent from 3 to 2^64-1);
 *   EC   crv "P-256", "x", "y" (32 bytes each; the point must be on the curve);
 *   OKP  crv "Ed25519", "x" (32 bytes);
 *   optional "kid" (string), "alg" (string), "use" (string); private members
 *   ("d", ...) are ignored.
 * Skipped, and counted by jwt_keys_skipped(): other kty values ("oct"
 * included), other curves, "use" other than "sig", and an "alg" that is not
 * the key's own algorithm (a key is only used for the alg it names).
 * A key that is skipped is not otherwise checked.
 * Returns the keys (possibly none), or NULL with a one-line error in err
 * (err may be NULL) that names the place: "keys[2].n: not valid base64url".
 */
jwt_keys_t *jwt_keys_parse(const char *json, size_t n, char *err, size_t errlen);

/* Releases the keys; NULL is fine. */
void jwt_keys_free(jwt_keys_t *keys);

/* Number of usable keys, and of keys skipped at parsing. */
size_t jwt_keys_count(const jwt_keys_t *keys);
size_t jwt_keys_skipped(const jwt_keys_t *keys);

/* What a token is checked against. All pointers are borrowed. */
typedef struct jwt_policy {
    unsigned algorithms;               /* allowlist: JWT_ALG_* bits */
    const char *issuer;                /* NULL: iss not checked */
    const char *const *audiences;      /* audience_count strings; 0: aud not checked */
    size_t audience_count;
    const unsigned char *hs256_secret; /* HS256's only key; NULL/0: HS256 fails */
    size_t hs256_secret_len;
    int64_t leeway_s;                  /* clock skew allowed on exp and nbf (< 0 is 0) */
    const jwt_keys_t *keys;            /* NULL: no RS256/ES256/EdDSA key */
} jwt_policy_t;

typedef enum jwt_result {
    JWT_OK,
    JWT_MALFORMED,       /* not a well-formed token (format, header, claim types) */
    JWT_ALG_NOT_ALLOWED, /* none, unsupported, or not in the allowlist */
    JWT_UNKNOWN_KEY,     /* no key to try (kid unknown or unfit, no secret) */
    JWT_BAD_SIGNATURE,   /* no key verified the signature */
    JWT_EXPIRED,
    JWT_NOT_YET_VALID,
    JWT_NO_EXP,
    JWT_WRONG_ISSUER,
    JWT_WRONG_AUDIENCE,
    JWT_NOMEM,           /* out of memory: not the token's fault */
} jwt_result_t;

/* A short stable label, for metrics: "ok", "malformed", "algorithm",
 * "unknown_key", "signature", "expired", "not_yet_valid", "no_exp",
 * "issuer", "audience", "no_memory". */
const char *jwt_result_label(jwt_result_t r);

/* The claims of a verified token. */
typedef struct jwt_claims {
    char *json;          /* the payload exactly as decoded: a JSON object text
                            of len bytes (no raw NUL: JSON has none), then a NUL */
    size_t len;
    int64_t exp;         /* ceil(exp), saturated at +-1e18 */
    int64_t valid_until; /* exp + leeway: the token is good while now < this */
} jwt_claims_t;

/*
 * Verifies token[0..n) (the text after "Bearer ") against policy at time
 * now_s (seconds since the epoch). JWT_OK fills *out, which the caller then
 * owns; any other result leaves *out empty ({NULL, 0, 0, 0}). `why` (whylen
 * bytes, may be NULL/0) receives the reason, "valid" on success; it is
 * truncated to fit. Costs one signature check per key tried (see above).
 */
jwt_result_t jwt_verify(const jwt_policy_t *policy, const char *token, size_t n, int64_t now_s,
                        jwt_claims_t *out, char *why, size_t whylen);

/* Releases claims->json and empties *claims; NULL or empty is fine. */
void jwt_claims_free(jwt_claims_t *claims);

/*
 * A per-worker cache of verified tokens, so that a client repeating its
 * token pays no signature check. Keyed by the SHA-256 of the token text (no
 * token text is kept); an entry lives until its valid_until passes, or
 * until it is the least recently used one when room is needed (at most
 * max_entries entries, and max_bytes bytes of claims plus bookkeeping).
 * The cache trusts what it was given: its entries are only as good as the
 * policy they were verified under, so clear it whenever keys or policy
 * change (a reload). Not thread-safe: one cache per thread.
 */
typedef struct jwt_cache jwt_cache_t;

/* A new empty cache (max_entries >= 1), or NULL when out of memory. */
jwt_cache_t *jwt_cache_new(size_t max_entries, size_t max_bytes);

/* Releases the cache and every entry; NULL is fine. */
void jwt_cache_free(jwt_cache_t *cache);

/*
 * The claims cached for token[0..n) if they are still good at now_s
 * (now_s < valid_until), else NULL (an entry found expired is dropped).
 * A hit makes the entry the most recently used. The pointer stays valid
 * until the next call on this cache.
 */
const jwt_claims_t *jwt_cache_get(jwt_cache_t *cache, const char *token, size_t n, int64_t now_s);

/*
 * Caches the claims jwt_verify() returned for token[0..n), replacing any
 * entry of the same token and evicting the least recently used entries
 * until it fits. On success the cache takes *claims (which is emptied) and
 * returns its copy, valid until the next call on this cache. Returns NULL,
 * with *claims untouched and still the caller's, when out of memory or when
 * the entry alone exceeds max_bytes.
 */
const jwt_claims_t *jwt_cache_put(jwt_cache_t *cache, const char *token, size_t n,
                                  jwt_claims_t *claims);

/* Drops every entry (keys or policy changed). */
void jwt_cache_clear(jwt_cache_t *cache);

/* Number of entries held (expired ones not yet dropped included). */
size_t jwt_cache_count(const jwt_cache_t *cache);

#endif
