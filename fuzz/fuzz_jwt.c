/*
 * fuzz_jwt: JWKS parsing and token verification (gateway/jwt.h).
 *
 * Input:
 *   byte 0       the policy: bits 0-3 the algorithm allowlist (JWT_ALG_*),
 *                bit 4 issuer FUZZ_ISSUER, bit 5 audiences "api" and
 *                "admin", bit 6 leeway 60 s (else 0), bit 7 no HS256
 *                secret (else FUZZ_SECRET);
 *   then         JWKS text, LF, token text (split at the last LF; without
 *                one, no JWKS and the whole rest is the token).
 * The clock is FUZZ_NOW. The seeds (make_jwt_seeds.py) hold real keys and
 * tokens signed with them, so mutations start from tokens that verify.
 *
 * Checked:
 *   - jwt_keys_parse gives keys (at most JWT_MAX_KEYS, usable or skipped)
 *     or NULL with a one-line error;
 *   - jwt_verify's result is one of the enum's, its reason is a non-empty
 *     printable text without quotes or backslashes, failed calls leave the
 *     claims empty, and the same call twice gives the same result;
 *   - a token that is not three canonical base64url parts (decoded here by
 *     a reference decoder) or is longer than JWT_MAX_TOKEN is MALFORMED, and
 *     a header whose alg is "none" is refused as such (or as malformed);
 *   - an accepted token: its header's alg is in the allowlist; the claims
 *     are the decoded payload byte for byte, a JSON object, valid until
 *     exp + leeway, which is after now; it is refused with an empty
 *     allowlist, at its valid_until, and with any character of its
 *     signature changed; it still verifies when the key source of the other
 *     algorithms is removed (JWKS for HS256, the secret for the others);
 *     the cache hands its claims back until valid_until and not after.
 */
#include "fuzz/fuzz.h"

#include <jansson.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"
#include "gateway/jwt.h"

#define FUZZ_NOW INT64_C(1700000000)
#define FUZZ_ISSUER "https://issuer.example"
#define FUZZ_SECRET "patterngate-fuzz-hs256-secret-0123456789"

static const char *const audiences[] = { "api", "admin" };

/* ---- a reference base64url decoder ------------------------------------------- */

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Decodes canonical unpadded base64url into out (room for n bytes): the
 * length, or -1. Canonical: re-encoding the bytes gives the text back. */
static long ref_decode(const char *in, size_t n, unsigned char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        size_t chunk = n - i < 4 ? n - i : 4;
        if (chunk == 1)
            return -1;
        unsigned long v = 0;
        for (size_t k = 0; k < 4; k++) {
            const char *at = k < chunk && in[i + k] ? memchr(ALPHABET, in[i + k], 64) : NULL;
            if (k < chunk && !at)
                return -1;
            v = v << 6 | (at ? (unsigned long)(at - ALPHABET) : 0);
        }
        size_t bytes = chunk - 1;
        for (size_t k = 0; k < bytes; k++)
            out[o++] = (unsigned char)(v >> (16 - 8 * k));
        unsigned long unused = bytes == 3 ? 0 : v & ((1ul << (8 * (3 - bytes))) - 1);
        if (unused)
            return -1;
    }
    return (long)o;
}

typedef struct parts {
    span_t text[3];
    unsigned char *bytes[3];
    size_t len[3];
} parts_t;

/* 1 when token is three canonical base64url parts, decoded into p. */
static int ref_split(const char *token, size_t n, parts_t *p)
{
    memset(p, 0, sizeof *p);
    size_t start = 0, part = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && token[i] != '.')
            continue;
        if (part == 3)
            return 0;
        p->text[part++] = span_of(token + start, i - start);
        start = i + 1;
    }
    if (part != 3)
        return 0;
    int ok = 1;
    for (size_t k = 0; k < 3; k++) {
        p->bytes[k] = malloc(p->text[k].n + 1);
        FUZZ_CHECK(p->bytes[k] != NULL, "out of memory");
        long len = ref_decode(p->text[k].p, p->text[k].n, p->bytes[k]);
        ok &= len >= 0;
        p->len[k] = len < 0 ? 0 : (size_t)len;
    }
    return ok;
}

static void parts_free(parts_t *p)
{
    for (size_t k = 0; k < 3; k++)
        free(p->bytes[k]);
}

/* The header's alg when it is a JSON object with a string alg, else NULL
 * (to be freed). */
static char *header_alg(const parts_t *p)
{
    json_t *h = json_loadb((const char *)p->bytes[0], p->len[0], JSON_REJECT_DUPLICATES, NULL);
    json_t *alg = json_object_get(h, "alg");
    char *name = json_is_string(alg) ? strndup(json_string_value(alg), json_string_length(alg)) : NULL;
    json_decref(h);
    return name;
}

/* ---- checks ---------------------------------------------------------------- */

static jwt_result_t verify(const jwt_policy_t *policy, const char *token, size_t n, int64_t now,
                           jwt_claims_t *out)
{
    char why[64];
    jwt_claims_t c;
    jwt_result_t r = jwt_verify(policy, token, n, now, &c, why, sizeof why);
    FUZZ_CHECK(r >= JWT_OK && r <= JWT_NOMEM, "result %d", (int)r);
    FUZZ_CHECK(strcmp(jwt_result_label(r), "unknown") != 0, "no label for %d", (int)r);
    FUZZ_CHECK(why[0] != '\0', "empty reason");
    for (const char *w = why; *w; w++)
        FUZZ_CHECK(*w >= ' ' && *w < 0x7f && *w != '"' && *w != '\\', "reason \"%s\"", why);
    FUZZ_CHECK(ERR_peek_error() == 0, "OpenSSL error queue left non-empty");
    if (r != JWT_OK)
        FUZZ_CHECK(c.json == NULL && c.len == 0, "claims left after a failure");
    if (out)
        *out = c;
    else
        jwt_claims_free(&c);
    return r;
}

static void check_keys(const jwt_keys_t *keys, const char *err)
{
    if (!keys) {
        FUZZ_CHECK(err[0] != '\0', "JWKS refused without an error");
        FUZZ_CHECK(strchr(err, '\n') == NULL, "error of several lines");
        return;
    }
    FUZZ_CHECK(err[0] == '\0', "an error with keys: %s", err);
    FUZZ_CHECK(jwt_keys_count(keys) + jwt_keys_skipped(keys) <= JWT_MAX_KEYS, "too many keys");
    FUZZ_CHECK(ERR_peek_error() == 0, "OpenSSL error queue left non-empty");
}

/* Every one-character change of the signature part is refused. */
static void check_signature_changes(const jwt_policy_t *policy, const char *token, size_t n,
                                    const parts_t *p)
{
    char *copy = malloc(n);
    FUZZ_CHECK(copy != NULL, "out of memory");
    memcpy(copy, token, n);
    size_t sig_at = (size_t)(p->text[2].p - token);
    /* at most 16 places, spread over the signature */
    size_t step = p->text[2].n / 16 + 1;
    for (size_t i = sig_at; i < n; i += step) {
        char was = copy[i];
        copy[i] = was == 'A' ? 'B' : 'A';
        FUZZ_CHECK(verify(policy, copy, n, FUZZ_NOW, NULL) != JWT_OK, "changed signature at %zu verifies",
                   i - sig_at);
        copy[i] = was;
    }
    free(copy);
}

static void check_cache(const char *token, size_t n, jwt_claims_t *claims)
{
    jwt_cache_t *cache = jwt_cache_new(4, 1 << 20);
    FUZZ_CHECK(cache != NULL, "out of memory");
    char *copy = malloc(claims->len + 1);
    FUZZ_CHECK(copy != NULL, "out of memory");
    memcpy(copy, claims->json, claims->len + 1);
    size_t len = claims->len;
    int64_t until = claims->valid_until;
    FUZZ_CHECK(jwt_cache_get(cache, token, n, FUZZ_NOW) == NULL, "hit in an empty cache");
    const jwt_claims_t *in = jwt_cache_put(cache, token, n, claims);
    FUZZ_CHECK(in != NULL && claims->json == NULL, "put failed");
    const jwt_claims_t *hit = jwt_cache_get(cache, token, n, until - 1);
    FUZZ_CHECK(hit == in && hit->len == len && memcmp(hit->json, copy, len + 1) == 0, "cache hit differs");
    FUZZ_CHECK(jwt_cache_get(cache, token, n, until) == NULL, "hit after valid_until");
    FUZZ_CHECK(jwt_cache_count(cache) == 0, "expired entry kept");
    free(copy);
    jwt_cache_free(cache);
}

static void check_accepted(const jwt_policy_t *policy, const char *token, size_t n,
                           const parts_t *p, jwt_claims_t *c)
{
    char *alg_name = header_alg(p);
    jwt_alg_t alg;
    FUZZ_CHECK(alg_name && jwt_alg_parse(alg_name, strlen(alg_name), &alg) == 0, "accepted alg %s",
               alg_name ? alg_name : "(none)");
    FUZZ_CHECK(policy->algorithms & (unsigned)alg, "accepted %s outside the allowlist", alg_name);
    free(alg_name);
    FUZZ_CHECK(c->len == p->len[1] && memcmp(c->json, p->bytes[1], c->len) == 0 && c->json[c->len] == '\0',
               "claims are not the decoded payload");
    span_t object;
    FUZZ_CHECK(jscan_document(c->json, c->len, &object, NULL) == 0 && jscan_type_of(object) == JSCAN_OBJECT,
               "claims are not a JSON object");
    int64_t leeway = policy->leeway_s;
    FUZZ_CHECK(c->valid_until == c->exp + leeway && FUZZ_NOW < c->valid_until, "validity");

    jwt_policy_t other = *policy;
    other.algorithms = 0;
    FUZZ_CHECK(verify(&other, token, n, FUZZ_NOW, NULL) == JWT_ALG_NOT_ALLOWED, "empty allowlist");
    FUZZ_CHECK(verify(policy, token, n, c->valid_until, NULL) == JWT_EXPIRED, "not expired at valid_until");
    other = *policy;
    if (alg == JWT_ALG_HS256)
        other.keys = NULL;
    else
        other.hs256_secret = NULL;
    FUZZ_CHECK(verify(&other, token, n, FUZZ_NOW, NULL) == JWT_OK, "depends on another key source");
    check_signature_changes(policy, token, n, p);
    check_cache(token, n, c);
}

static void check_token(const jwt_policy_t *policy, const char *token, size_t n)
{
    jwt_claims_t c;
    jwt_result_t r = verify(policy, token, n, FUZZ_NOW, &c);
    FUZZ_CHECK(verify(policy, token, n, FUZZ_NOW, NULL) == r, "a second verify differs");
    parts_t p;
    int wellformed = ref_split(token, n, &p);
    if (!wellformed || n > JWT_MAX_TOKEN)
        FUZZ_CHECK(r == JWT_MALFORMED, "not three canonical parts but %s", jwt_result_label(r));
    if (wellformed) {
        char *alg = header_alg(&p);
        if (alg && strcmp(alg, "none") == 0)
            FUZZ_CHECK(r == JWT_ALG_NOT_ALLOWED || r == JWT_MALFORMED, "alg none gave %s",
                       jwt_result_label(r));
        free(alg);
    }
    if (r == JWT_OK)
        check_accepted(policy, token, n, &p, &c);
    jwt_claims_free(&c);
    parts_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned flags = data[0];
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    const char *lf = n ? memrchr(text, '\n', n) : NULL;
    const char *token = lf ? lf + 1 : text;
    size_t token_len = n - (size_t)(token - text);

    jwt_keys_t *keys = NULL;
    if (lf) {
        char err[JWT_ERR_SIZE];
        keys = jwt_keys_parse(text, (size_t)(lf - text), err, sizeof err);
        check_keys(keys, err);
    }
    jwt_policy_t policy = {
        .algorithms = flags & JWT_ALG_ALL,
        .issuer = flags & 0x10 ? FUZZ_ISSUER : NULL,
        .audiences = audiences,
        .audience_count = flags & 0x20 ? 2 : 0,
        .hs256_secret = flags & 0x80 ? NULL : (const unsigned char *)FUZZ_SECRET,
        .hs256_secret_len = flags & 0x80 ? 0 : strlen(FUZZ_SECRET),
        .leeway_s = flags & 0x40 ? 60 : 0,
        .keys = keys,
    };
    check_token(&policy, token, token_len);
    jwt_keys_free(keys);
    return 0;
}
