/* jose: JSON Web Tokens for the JWT tests, made at test time by a real JOSE
 * library (npm `jose`, pinned in tests/jose/package-lock.json) with keys
 * made by the `openssl` command.
 *
 * jose_suite_make() creates a fresh directory (mkdtemp under $TMPDIR, else
 * /tmp) and runs `node tests/jose/mint.mjs suite --dir DIR` (through
 * proc.h), which writes there:
 *
 *   rs256.pem, es256.pem, eddsa.pem   private keys (PKCS#8) of the JWKS
 *                                     keys rs-1, es-1, ed-1
 *   rs256-rotated.pem                 the RSA key rs-2 of the rotated set
 *   *.pub.pem                         their public keys (SPKI)
 *   hs256.secret                      the HS256 secret: 64 hex characters
 *   jwks.json                         {"keys": [rs-1, es-1, ed-1]} (public
 *                                     JWKs with kid, alg, use "sig")
 *   jwks-rotated.json                 {"keys": [rs-2, es-1, ed-1]}
 *
 * and prints one JSON object, kept in s->doc: the paths, the secret, the
 * issuer ("https://issuer.test/"), audience ("patterngate-test") and sub
 * ("u42") of the good tokens, `now`, `claims` (the good tokens' payload:
 * iss, aud, sub, iat, nbf, exp = now + 3600, tenant "acme", scope
 * "orders:read orders:write", roles ["viewer", "editor"]), `tokens` (name
 * -> token) and `expect` (name -> what a verifier configured with
 * jwks.json, the secret, the issuer, the audience and all four algorithms
 * must say, as gateway/jwt.h's jwt_result_label()):
 *
 *   rs256, es256, eddsa, hs256      "ok"
 *   expired (exp an hour ago)       "expired"
 *   not_yet_valid (nbf in an hour)  "not_yet_valid"
 *   wrong_issuer, wrong_audience    "issuer", "audience"
 *   no_exp                          "no_exp"
 *   bad_signature (one bit flipped) "signature"
 *   hs256_wrong_secret              "signature"
 *   alg_none ("alg": "none")        "algorithm"
 *   rs256_public_key_as_hs256_secret  HS256 keyed with rs-1's public key
 *                                   PEM (algorithm confusion): "signature"
 *                                   ("algorithm" when HS256 is not allowed)
 *   unknown_kid (kid not in the JWKS) "unknown_key"
 *   rotated (signed by rs-2)        "unknown_key"; with jwks-rotated.json
 *                                   "ok" (expect_rotated lists those that
 *                                   change: rs256 is then "unknown_key")
 *
 * jose_sign() signs one more token with the suite's keys (claims of the
 * test's choosing), through `mint.mjs sign`.
 *
 * Node: `node` from PATH, or the program named by PG_NODE. The npm packages
 * must have been installed by scripts/setup: a missing tests/jose/
 * node_modules is an error (-ENOENT, said on stderr), never a skip.
 *
 * Ownership: the caller owns the struct (on its stack or in a fixture) and,
 * from a successful jose_suite_make() until jose_suite_free(), the
 * directory and s->doc; the strings returned point into s->doc. Call from
 * the test's main thread (proc.h's rule).
 *
 * Errors: 0 or a negative errno; every failure also prints why, with the
 * tool's stderr.
 */
#ifndef PG_TESTS_SUPPORT_JOSE_H
#define PG_TESTS_SUPPORT_JOSE_H

#include <jansson.h>
#include <limits.h>

/* How long one run of mint.mjs may take (RSA key generation included). */
#define JOSE_TIMEOUT_MS 60000

struct jose_suite {
  char dir[PATH_MAX];               /* "" when none */
  const char *jwks_file;            /* DIR/jwks.json */
  const char *jwks_rotated_file;    /* DIR/jwks-rotated.json */
  const char *hs256_secret;
  const char *issuer;
  const char *audience;
  const char *sub;
  long long now;                    /* seconds, when the tokens were made */
  json_t *doc;                      /* the whole output of mint.mjs suite */
};

/* Makes the directory, the keys and the tokens, and fills *s. On failure *s
 * is zeroed (jose_suite_free on it does nothing). */
int jose_suite_make(struct jose_suite *s);

/* The token named `name` (see above), or NULL. */
const char *jose_token(const struct jose_suite *s, const char *name);

/* What a verifier must say of token `name`, or NULL. */
const char *jose_expect(const struct jose_suite *s, const char *name);

/* Signs a token with the suite's key for `alg` ("RS256", "ES256", "EdDSA",
 * "HS256", or "RS256-rotated" for rs-2), with header kid `kid` (NULL: the
 * key's own; ignored for HS256 unless given), payload `claims_json` (a JSON
 * object; NULL: {}) plus iat = now and exp = now + ttl_s unless the claims
 * set them (ttl_s < 0: no exp at all). *token is a new string: free() it. */
int jose_sign(const struct jose_suite *s, const char *alg, const char *kid,
              const char *claims_json, int ttl_s, char **token);

/* Removes the directory, releases doc and zeroes *s. Safe on a zeroed or
 * already freed struct. */
void jose_suite_free(struct jose_suite *s);

#endif
