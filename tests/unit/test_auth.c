/* Unit tests of gateway/auth: the mechanisms a request may use, the
 * Authorization header's forms, bearer tokens, JWTs (HS256 tokens signed
 * here with OpenSSL's HMAC) through the verified-token cache, require_claims,
 * and the WWW-Authenticate challenge and reason of every refusal. Configs
 * come from the real loader. RS256/ES256/EdDSA tokens from an independent
 * JOSE library are the integration tests' (tests/integration/test_edge.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gateway/auth.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define NOW 1700000000LL

/* ---- tokens ------------------------------------------------------------------ */

static void b64url(buf_t *out, const unsigned char *p, size_t n)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        size_t chars = n - i >= 3 ? 4 : n - i + 1;
        for (size_t k = 0; k < chars; k++)
            buf_append(out, &alphabet[(v >> (18 - 6 * k)) & 63], 1);
    }
}

/* An HS256 token of `payload` under `secret`; free() it. */
static char *hs256(const char *payload, const char *secret)
{
    buf_t t = BUF_INIT;
    const char *header = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    b64url(&t, (const unsigned char *)header, strlen(header));
    buf_append(&t, ".", 1);
    b64url(&t, (const unsigned char *)payload, strlen(payload));
    unsigned char mac[32];
    unsigned len = 0;
    assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)t.data, t.len, mac, &len));
    buf_append(&t, ".", 1);
    b64url(&t, mac, len);
    return buf_take_cstr(&t);
}

/* "Bearer " + an HS256 token of the claims (exp from NOW). */
static char *bearer(const char *extra_claims, long long exp_from_now, const char *secret)
{
    char payload[512], *header = malloc(1024);
    snprintf(payload, sizeof payload, "{\"iss\":\"https://issuer.test/\",\"aud\":\"api\",\"sub\":\"u42\",\"exp\":%lld%s}",
             NOW + exp_from_now, extra_claims);
    char *tok = hs256(payload, secret);
    snprintf(header, 1024, "Bearer %s", tok);
    free(tok);
    return header;
}

/* ---- configs --------------------------------------------------------------------- */

static config *load(const char *auth, const char *route_keys)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{'auth': %s, 'services': {'s': {'endpoints': ['127.0.0.1:1']}},"
             " 'routes': [{'method': 'GET', 'path': '/x', 'service': 's', 'pattern': 'x' %s}]}",
             auth, route_keys);
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    config *cfg = NULL;
    config_error error;
    if (config_load_string(text, strlen(text), NULL, &cfg, &error) != 0)
        fail_msg("config: %s", error.message);
    return cfg;
}

#define BOTH "{'bearer_tokens': ['tok-1', 'tok-2'], 'jwt': {'hs256_secret': '" SECRET "'," \
             " 'issuer': 'https://issuer.test/', 'audiences': ['api'], 'leeway_s': 0}}"

static auth_result_t check(const config *cfg, unsigned mechanisms, const char *authorization, jwt_cache_t *cache,
                           buf_t *claims)
{
    const config_route *route = &cfg->routes[0];
    auth_input_t in = { .cfg = cfg, .mechanisms = mechanisms, .require = route->require_claims,
                        .require_count = route->require_claim_count, .authorization = authorization,
                        .cache = cache, .now_s = NOW };
    auth_result_t out;
    auth_check(&in, claims, &out);
    return out;
}

static void expect_refused(const auth_result_t *a, auth_reason_t reason, const char *challenge)
{
    assert_int_equal(a->verdict, AUTH_UNAUTHORIZED);
    assert_string_equal(auth_reason_name(a->reason), auth_reason_name(reason));
    assert_string_equal(a->challenge, challenge);
    assert_true(strlen(a->message) > 0);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void no_mechanism_needs_nothing(void **state)
{
    (void)state;
    config *cfg = load(BOTH, ", 'auth': 'none'");
    assert_int_equal(cfg->routes[0].auth, 0u);
    buf_t claims = BUF_INIT;
    auth_result_t a = check(cfg, 0, NULL, NULL, &claims);
    assert_int_equal(a.verdict, AUTH_OK);
    assert_int_equal(a.mechanism, 0u);
    a = check(cfg, 0, "Bearer garbage", NULL, &claims);
    assert_int_equal(a.verdict, AUTH_OK);
    assert_int_equal(claims.len, 0);
    config_free(cfg);
}

static void header_forms(void **state)
{
    (void)state;
    config *cfg = load(BOTH, "");
    buf_t claims = BUF_INIT;
    const char *missing[] = { NULL, "", "Bearer", "Bearer ", "Bearer    ", "Basic dG9rLTE6", "Bearertok-1", "tok-1" };
    for (size_t i = 0; i < sizeof missing / sizeof *missing; i++) {
        auth_result_t a = check(cfg, cfg->auth_mechanisms, missing[i], NULL, &claims);
        expect_refused(&a, AUTH_REASON_MISSING, "Bearer"); /* RFC 6750 §3.1: no error code */
        assert_string_equal(a.message, "a valid bearer token is required");
    }
    const char *good[] = { "Bearer tok-1", "bearer tok-2", "BEARER   tok-1" };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        auth_result_t a = check(cfg, cfg->auth_mechanisms, good[i], NULL, &claims);
        assert_int_equal(a.verdict, AUTH_OK);
        assert_int_equal(a.mechanism, CONFIG_AUTH_BEARER);
    }
    assert_int_equal(claims.len, 0);
    config_free(cfg);
}

static void bearer_tokens_only(void **state)
{
    (void)state;
    config *cfg = load("{'bearer_tokens': ['tok-1']}", "");
    buf_t claims = BUF_INIT;
    const char *bad[] = { "Bearer tok-2", "Bearer tok-", "Bearer tok-11", "Bearer x.y.z" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        auth_result_t a = check(cfg, CONFIG_AUTH_BEARER, bad[i], NULL, &claims);
        expect_refused(&a, AUTH_REASON_BEARER, "Bearer error=\"invalid_token\"");
    }
    /* a JWT is no bearer token, even a valid one, when the route takes bearer only */
    config *both = load(BOTH, ", 'auth': 'bearer'");
    char *jwt = bearer("", 60, SECRET);
    auth_result_t a = check(both, both->routes[0].auth, jwt, NULL, &claims);
    expect_refused(&a, AUTH_REASON_BEARER, "Bearer error=\"invalid_token\"");
    free(jwt);
    config_free(both);
    config_free(cfg);
}

static void jwt_accepted_with_claims(void **state)
{
    (void)state;
    config *cfg = load(BOTH, ", 'auth': 'jwt'");
    buf_t claims = BUF_INIT;
    char *h = bearer(",\"tenant\":\"acme\"", 60, SECRET);
    auth_result_t a = check(cfg, cfg->routes[0].auth, h, NULL, &claims);
    assert_int_equal(a.verdict, AUTH_OK);
    assert_int_equal(a.mechanism, CONFIG_AUTH_JWT);
    char want[256];
    snprintf(want, sizeof want,
             "{\"iss\":\"https://issuer.test/\",\"aud\":\"api\",\"sub\":\"u42\",\"exp\":%lld,\"tenant\":\"acme\"}",
             NOW + 60);
    assert_int_equal(claims.len, strlen(want));
    assert_memory_equal(claims.data, want, claims.len);
    /* a bearer token is no JWT on a jwt route */
    buf_clear(&claims);
    a = check(cfg, cfg->routes[0].auth, "Bearer tok-1", NULL, &claims);
    expect_refused(&a, AUTH_REASON_MALFORMED,
                   "Bearer error=\"invalid_token\", error_description=\"not three base64url parts\"");
    assert_int_equal(claims.len, 0);
    free(h);
    buf_free(&claims);
    config_free(cfg);
}

static void jwt_refusals(void **state)
{
    (void)state;
    config *cfg = load(BOTH, "");
    buf_t claims = BUF_INIT;
    struct {
        char *header;
        auth_reason_t reason;
        const char *why;
    } cases[] = {
        { bearer("", -1, SECRET), AUTH_REASON_EXPIRED, "token expired" },
        { bearer("", 60, "another secret of at least 32 bytes"), AUTH_REASON_SIGNATURE, "invalid signature" },
        { bearer(",\"nbf\":1800000000", 60, SECRET), AUTH_REASON_NOT_YET_VALID, "token not valid yet" },
        { bearer(",\"iss\":\"https://elsewhere/\"", 60, SECRET), AUTH_REASON_ISSUER, "wrong issuer" },
        { bearer(",\"aud\":\"other\"", 60, SECRET), AUTH_REASON_AUDIENCE, "wrong audience" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        auth_result_t a = check(cfg, cfg->auth_mechanisms, cases[i].header, NULL, &claims);
        char challenge[AUTH_CHALLENGE_SIZE], message[AUTH_MESSAGE_SIZE];
        snprintf(challenge, sizeof challenge, "Bearer error=\"invalid_token\", error_description=\"%s\"", cases[i].why);
        snprintf(message, sizeof message, "the bearer token is not valid: %s", cases[i].why);
        expect_refused(&a, cases[i].reason, challenge);
        assert_string_equal(a.message, message);
        assert_int_equal(claims.len, 0);
        free(cases[i].header);
    }
    /* no exp at all */
    char *tok = hs256("{\"iss\":\"https://issuer.test/\",\"aud\":\"api\"}", SECRET), header[512];
    snprintf(header, sizeof header, "Bearer %s", tok);
    auth_result_t a = check(cfg, cfg->auth_mechanisms, header, NULL, &claims);
    expect_refused(&a, AUTH_REASON_NO_EXP, "Bearer error=\"invalid_token\", error_description=\"token has no exp\"");
    free(tok);
    config_free(cfg);
}

static void require_claims(void **state)
{
    (void)state;
    config *cfg = load(BOTH, ", 'auth': 'jwt', 'require_claims': {'scope': 'orders:write', 'tier': 2}");
    buf_t claims = BUF_INIT;
    char *ok = bearer(",\"scope\":\"orders:read orders:write\",\"tier\":2.0", 60, SECRET);
    char *no_scope = bearer(",\"scope\":\"orders:read\",\"tier\":2", 60, SECRET);
    char *no_tier = bearer(",\"scope\":\"orders:write\"", 60, SECRET);
    auth_result_t a = check(cfg, cfg->routes[0].auth, ok, NULL, &claims);
    assert_int_equal(a.verdict, AUTH_OK);
    buf_clear(&claims);
    a = check(cfg, cfg->routes[0].auth, no_scope, NULL, &claims);
    assert_int_equal(a.verdict, AUTH_FORBIDDEN);
    assert_int_equal(a.reason, AUTH_REASON_CLAIMS);
    assert_string_equal(a.challenge, "Bearer error=\"insufficient_scope\"");
    assert_string_equal(a.message, "the token's claim \"scope\" does not hold \"orders:write\"");
    buf_clear(&claims);
    a = check(cfg, cfg->routes[0].auth, no_tier, NULL, &claims);
    assert_int_equal(a.verdict, AUTH_FORBIDDEN);
    assert_string_equal(a.message, "the token's claim \"tier\" does not hold 2");
    free(ok);
    free(no_scope);
    free(no_tier);
    buf_free(&claims);
    config_free(cfg);
}

/* A repeated token is taken from the cache: a config whose secret would
 * refuse it still accepts it (which is why a reload empties the cache). */
static void cache_skips_verification(void **state)
{
    (void)state;
    config *cfg = load(BOTH, "");
    config *other = load("{'jwt': {'hs256_secret': 'a wholly different secret, 32+ bytes', 'issuer': "
                         "'https://issuer.test/', 'audiences': ['api'], 'leeway_s': 0}}",
                         "");
    jwt_cache_t *cache = jwt_cache_new(16, 1 << 20);
    buf_t claims = BUF_INIT;
    char *h = bearer("", 60, SECRET);
    auth_result_t a = check(other, other->auth_mechanisms, h, cache, &claims);
    assert_int_equal(a.verdict, AUTH_UNAUTHORIZED); /* refusals are not cached */
    assert_int_equal(jwt_cache_count(cache), 0);
    a = check(cfg, cfg->auth_mechanisms, h, cache, &claims);
    assert_int_equal(a.verdict, AUTH_OK);
    assert_int_equal(jwt_cache_count(cache), 1);
    size_t first = claims.len;
    a = check(other, other->auth_mechanisms, h, cache, &claims);
    assert_int_equal(a.verdict, AUTH_OK);
    assert_int_equal(claims.len, 2 * first); /* appended again, from the cache */
    assert_memory_equal(claims.data, claims.data + first, first);
    jwt_cache_clear(cache);
    buf_clear(&claims);
    a = check(other, other->auth_mechanisms, h, cache, &claims);
    assert_int_equal(a.verdict, AUTH_UNAUTHORIZED);
    free(h);
    buf_free(&claims);
    jwt_cache_free(cache);
    config_free(other);
    config_free(cfg);
}

static void reason_names(void **state)
{
    (void)state;
    const char *want[] = { "missing", "bearer", "malformed", "algorithm", "unknown_key", "signature",
                           "expired", "not_yet_valid", "no_exp", "issuer", "audience", "claims" };
    assert_int_equal(sizeof want / sizeof *want, AUTH_REASON_COUNT);
    for (unsigned i = 0; i < AUTH_REASON_COUNT; i++)
        assert_string_equal(auth_reason_name((auth_reason_t)i), want[i]);
    /* the JWT reasons are jwt.h's labels */
    assert_string_equal(auth_reason_name(AUTH_REASON_UNKNOWN_KEY), jwt_result_label(JWT_UNKNOWN_KEY));
    assert_string_equal(auth_reason_name(AUTH_REASON_ALGORITHM), jwt_result_label(JWT_ALG_NOT_ALLOWED));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_mechanism_needs_nothing),
        cmocka_unit_test(header_forms),
        cmocka_unit_test(bearer_tokens_only),
        cmocka_unit_test(jwt_accepted_with_claims),
        cmocka_unit_test(jwt_refusals),
        cmocka_unit_test(require_claims),
        cmocka_unit_test(cache_skips_verification),
        cmocka_unit_test(reason_names),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
