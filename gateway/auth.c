/*
 * auth: see auth.h.
 */
#include "gateway/auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gateway/claims.h"

static const char *const reason_names[AUTH_REASON_COUNT] = {
    [AUTH_REASON_MISSING] = "missing",     [AUTH_REASON_BEARER] = "bearer",
    [AUTH_REASON_MALFORMED] = "malformed", [AUTH_REASON_ALGORITHM] = "algorithm",
    [AUTH_REASON_UNKNOWN_KEY] = "unknown_key", [AUTH_REASON_SIGNATURE] = "signature",
    [AUTH_REASON_EXPIRED] = "expired",     [AUTH_REASON_NOT_YET_VALID] = "not_yet_valid",
    [AUTH_REASON_NO_EXP] = "no_exp",       [AUTH_REASON_ISSUER] = "issuer",
    [AUTH_REASON_AUDIENCE] = "audience",   [AUTH_REASON_CLAIMS] = "claims",
};

const char *auth_reason_name(auth_reason_t reason)
{
    return (unsigned)reason < AUTH_REASON_COUNT ? reason_names[reason] : "unknown";
}

static auth_reason_t reason_of(jwt_result_t r)
{
    switch (r) {
    case JWT_ALG_NOT_ALLOWED: return AUTH_REASON_ALGORITHM;
    case JWT_UNKNOWN_KEY: return AUTH_REASON_UNKNOWN_KEY;
    case JWT_BAD_SIGNATURE: return AUTH_REASON_SIGNATURE;
    case JWT_EXPIRED: return AUTH_REASON_EXPIRED;
    case JWT_NOT_YET_VALID: return AUTH_REASON_NOT_YET_VALID;
    case JWT_NO_EXP: return AUTH_REASON_NO_EXP;
    case JWT_WRONG_ISSUER: return AUTH_REASON_ISSUER;
    case JWT_WRONG_AUDIENCE: return AUTH_REASON_AUDIENCE;
    default: return AUTH_REASON_MALFORMED;
    }
}

jwt_policy_t auth_jwt_policy(const config_jwt *jwt, const jwt_keys_t *keys)
{
    return (jwt_policy_t){
        .algorithms = jwt->algorithms,
        .issuer = jwt->issuer,
        .audiences = (const char *const *)jwt->audiences,
        .audience_count = jwt->audience_count,
        .hs256_secret = (const unsigned char *)jwt->hs256_secret,
        .hs256_secret_len = jwt->hs256_secret_length,
        .leeway_s = (int64_t)jwt->leeway_s,
        .keys = keys,
    };
}

/* ---- the token ------------------------------------------------------------ */

/* The token of "Bearer TOKEN" (RFC 9110 §11.1: the scheme name is
 * case-insensitive, then 1*SP), or NULL. */
static const char *bearer_token(const char *authorization)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    return *token ? token : NULL;
}

/* Compares in time independent of where the strings differ. */
static int same_secret(const char *a, size_t an, const char *b, size_t bn)
{
    unsigned char diff = (unsigned char)(an != bn);
    for (size_t i = 0; i < an; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (bn ? bn : 1)]);
    return diff == 0;
}

static int bearer_ok(const config *cfg, const char *token, size_t n)
{
    int ok = 0;
    for (size_t i = 0; i < cfg->bearer_token_count; i++)
        ok |= same_secret(token, n, cfg->bearer_tokens[i], strlen(cfg->bearer_tokens[i]));
    return ok;
}

/* ---- verdicts ----------------------------------------------------------------- */

static void refuse(auth_result_t *out, auth_reason_t reason, const char *why)
{
    out->verdict = AUTH_UNAUTHORIZED;
    out->reason = reason;
    if (reason == AUTH_REASON_MISSING) {
        snprintf(out->challenge, sizeof out->challenge, "Bearer");
        snprintf(out->message, sizeof out->message, "a valid bearer token is required");
    } else if (why == NULL) {
        snprintf(out->challenge, sizeof out->challenge, "Bearer error=\"invalid_token\"");
        snprintf(out->message, sizeof out->message, "the bearer token is not valid");
    } else { /* jwt_verify's reasons hold no quote or backslash */
        snprintf(out->challenge, sizeof out->challenge, "Bearer error=\"invalid_token\", error_description=\"%s\"",
                 why);
        snprintf(out->message, sizeof out->message, "the bearer token is not valid: %s", why);
    }
}

static void forbid(auth_result_t *out, const config_claim_rule *rule)
{
    out->verdict = AUTH_FORBIDDEN;
    out->reason = AUTH_REASON_CLAIMS;
    snprintf(out->challenge, sizeof out->challenge, "Bearer error=\"insufficient_scope\"");
    snprintf(out->message, sizeof out->message, "the token's claim \"%.80s\" does not hold %.120s", rule->claim,
             rule->value_json);
}

static void admit(auth_result_t *out, unsigned mechanism)
{
    out->verdict = AUTH_OK;
    out->mechanism = mechanism;
}

/* A JWT: from the cache, or verified (and cached). 0 with its claims
 * appended to *claims; else *out says why not. */
static int jwt_accepted(const auth_input_t *in, const char *token, size_t n, buf_t *claims, auth_result_t *out)
{
    const jwt_claims_t *cached = in->cache ? jwt_cache_get(in->cache, token, n, in->now_s) : NULL;
    jwt_claims_t verified = { NULL, 0, 0, 0 };
    char why[96];
    if (cached == NULL) {
        jwt_policy_t policy = auth_jwt_policy(in->cfg->jwt, in->keys);
        jwt_result_t r = jwt_verify(&policy, token, n, in->now_s, &verified, why, sizeof why);
        if (r == JWT_NOMEM) {
            out->verdict = AUTH_NO_MEMORY;
            return -1;
        }
        if (r != JWT_OK) {
            refuse(out, reason_of(r), why);
            return -1;
        }
        cached = in->cache ? jwt_cache_put(in->cache, token, n, &verified) : NULL;
    }
    const jwt_claims_t *c = cached ? cached : &verified;
    int rc = buf_append(claims, c->json, c->len);
    jwt_claims_free(&verified); /* empty when the cache took it */
    if (rc != 0) {
        out->verdict = AUTH_NO_MEMORY;
        return -1;
    }
    return 0;
}

/* require_claims over the claims just appended at claims[from..]. */
static void check_claims(const auth_input_t *in, const buf_t *claims, size_t from, auth_result_t *out)
{
    bool nomem;
    span_t c = span_of(claims->data + from, claims->len - from);
    const config_claim_rule *unmet = claims_unmet(c, in->require, in->require_count, &nomem);
    if (unmet == NULL)
        admit(out, CONFIG_AUTH_JWT);
    else if (nomem)
        out->verdict = AUTH_NO_MEMORY;
    else
        forbid(out, unmet);
}

void auth_check(const auth_input_t *in, buf_t *claims, auth_result_t *out)
{
    memset(out, 0, sizeof *out);
    if (in->mechanisms == 0) {
        admit(out, 0);
        return;
    }
    const char *token = bearer_token(in->authorization);
    if (token == NULL) {
        refuse(out, AUTH_REASON_MISSING, NULL);
        return;
    }
    size_t n = strlen(token);
    if ((in->mechanisms & CONFIG_AUTH_BEARER) && bearer_ok(in->cfg, token, n)) {
        admit(out, CONFIG_AUTH_BEARER);
        return;
    }
    if (!(in->mechanisms & CONFIG_AUTH_JWT) || in->cfg->jwt == NULL) {
        refuse(out, AUTH_REASON_BEARER, NULL);
        return;
    }
    size_t from = claims->len;
    if (jwt_accepted(in, token, n, claims, out) == 0)
        check_claims(in, claims, from, out);
}
