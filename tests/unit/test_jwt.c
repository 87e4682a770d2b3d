/* Unit tests of gateway/jwt: keys generated here with OpenSSL (RSA 2048,
 * EC P-256, Ed25519), a JWKS built from them, and tokens signed by a small
 * signer of the test's own, then verified by the module. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "gateway/jwt.h"

#define NOW INT64_C(1700000000)
#define ISSUER "https://issuer.example"
#define SECRET "a-32-byte-long-hs256-secret-0123"

static EVP_PKEY *rsa1, *rsa2, *ec1, *ed1;
static char *jwks_text;   /* rsa1, rsa2, ec1, ed1 with kids of those names */
static jwt_keys_t *keys;
static const char *const audiences[] = { "api", "admin" };

/* ---- the test's own JOSE encoder and signer ---------------------------------------- */

static void b64url(buf_t *out, const void *data, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        size_t chars = i + 2 < n ? 4 : i + 1 < n ? 3 : 2;
        for (size_t k = 0; k < chars; k++)
            assert_int_equal(buf_append(out, &abc[v >> (18 - 6 * k) & 63], 1), 0);
    }
}

static char *b64url_str(const void *data, size_t n)
{
    buf_t b = BUF_INIT;
    b64url(&b, data, n);
    char *s = buf_take_cstr(&b);
    assert_non_null(s);
    return s;
}

static char *bn_b64url(const BIGNUM *bn)
{
    unsigned char bytes[1024];
    int n = BN_bn2bin(bn, bytes);
    return b64url_str(bytes, (size_t)n);
}

typedef enum sig_form { SIG_JWS, SIG_DER } sig_form_t;

/* Signs msg as alg with key (or SECRET for HS256); returns the length. */
static size_t sign(const char *alg, EVP_PKEY *key, const char *secret, const char *msg,
                   sig_form_t form, unsigned char sig[1024])
{
    size_t len = 1024;
    if (strcmp(alg, "HS256") == 0) {
        unsigned mlen = 0;
        assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg,
                             strlen(msg), sig, &mlen));
        return mlen;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_non_null(md);
    const EVP_MD *digest = strcmp(alg, "EdDSA") == 0 ? NULL : EVP_sha256();
    assert_int_equal(EVP_DigestSignInit(md, NULL, digest, NULL, key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &len, (const unsigned char *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(md);
    if (strcmp(alg, "ES256") != 0 || form == SIG_DER)
        return len;
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
    assert_non_null(es);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32), 32);
    ECDSA_SIG_free(es);
    return 64;
}

/* header.payload.signature, signed as `alg` says (whatever the header says). */
static char *token_signed(const char *alg, EVP_PKEY *key, const char *secret, const char *header,
                          const char *payload, sig_form_t form)
{
    buf_t t = BUF_INIT;
    b64url(&t, header, strlen(header));
    assert_int_equal(buf_append(&t, ".", 1), 0);
    b64url(&t, payload, strlen(payload));
    char *msg = strndup(t.data, t.len);
    assert_non_null(msg);
    unsigned char sig[1024];
    size_t siglen = sign(alg, key, secret, msg, form, sig);
    free(msg);
    assert_int_equal(buf_append(&t, ".", 1), 0);
    b64url(&t, sig, siglen);
    char *s = buf_take_cstr(&t);
    assert_non_null(s);
    return s;
}

static EVP_PKEY *default_key(const char *alg)
{
    return strcmp(alg, "RS256") == 0 ? rsa1 : strcmp(alg, "ES256") == 0 ? ec1 : ed1;
}

/* A token of alg, with the default key of that alg and header
 * {"alg":ALG,"kid":KID} (no kid when NULL). */
static char *token(const char *alg, const char *kid, const char *payload)
{
    char header[256];
    if (kid)
        snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg, kid);
    else
        snprintf(header, sizeof header, "{\"alg\":\"%s\"}", alg);
    return token_signed(alg, default_key(alg), SECRET, header, payload, SIG_JWS);
}

/* Claims that pass the default policy, expiring at NOW + exp_in. */
static const char *claims(int64_t exp_in)
{
    static char text[256];
    snprintf(text, sizeof text,
             "{\"sub\":\"u42\",\"iss\":\"" ISSUER "\",\"aud\":\"api\",\"exp\":%lld}",
             (long long)(NOW + exp_in));
    return text;
}

static jwt_policy_t policy(void)
{
    return (jwt_policy_t){
        .algorithms = JWT_ALG_ALL,
        .issuer = ISSUER,
        .audiences = audiences,
        .audience_count = 2,
        .hs256_secret = (const unsigned char *)SECRET,
        .hs256_secret_len = strlen(SECRET),
        .leeway_s = 0,
        .keys = keys,
    };
}

/* jwt_verify, plus what must hold of every call: a safe reason, empty
 * claims on failure, OpenSSL's error queue empty. out may be NULL. */
static jwt_result_t verify_at(const jwt_policy_t *p, const char *tok, size_t n, int64_t now,
                              jwt_claims_t *out)
{
    char why[128];
    jwt_claims_t c = { (char *)"x", 1, 1, 1 };
    jwt_result_t r = jwt_verify(p, tok, n, now, &c, why, sizeof why);
    assert_true(why[0] != '\0');
    for (const char *w = why; *w; w++)
        assert_true(*w >= ' ' && *w < 0x7f && *w != '"' && *w != '\\');
    assert_int_equal(ERR_peek_error(), 0);
    if (r != JWT_OK) {
        assert_null(c.json);
        assert_int_equal(c.len, 0);
    } else {
        assert_non_null(c.json);
        assert_int_equal(c.json[c.len], '\0');
        assert_string_equal(why, "valid");
    }
    if (out)
        *out = c;
    else
        jwt_claims_free(&c);
    return r;
}

static jwt_result_t verify(const jwt_policy_t *p, const char *tok)
{
    return verify_at(p, tok, strlen(tok), NOW, NULL);
}

/* Verifies and frees tok with the default policy. */
static jwt_result_t verify_default(char *tok)
{
    jwt_policy_t p = policy();
    jwt_result_t r = verify(&p, tok);
    free(tok);
    return r;
}

/* ---- JWKS building -------------------------------------------------------------- */

static void rsa_jwk(buf_t *out, EVP_PKEY *k, const char *kid)
{
    BIGNUM *n = NULL, *e = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e), 1);
    char *ns = bn_b64url(n), *es = bn_b64url(e), text[1024];
    snprintf(text, sizeof text, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"}",
             kid, ns, es);
    assert_int_equal(buf_append_cstr(out, text), 0);
    free(ns);
    free(es);
    BN_free(n);
    BN_free(e);
}

static void ec_jwk(buf_t *out, EVP_PKEY *k, const char *kid)
{
    unsigned char pub[65];
    size_t len = 0;
    assert_int_equal(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &len), 1);
    assert_int_equal(len, 65);
    char *x = b64url_str(pub + 1, 32), *y = b64url_str(pub + 33, 32), text[512];
    snprintf(text, sizeof text, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}",
             kid, x, y);
    assert_int_equal(buf_append_cstr(out, text), 0);
    free(x);
    free(y);
}

static void ed_jwk(buf_t *out, EVP_PKEY *k, const char *kid)
{
    unsigned char pub[32];
    size_t len = sizeof pub;
    assert_int_equal(EVP_PKEY_get_raw_public_key(k, pub, &len), 1);
    char *x = b64url_str(pub, 32), text[256];
    snprintf(text, sizeof text, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"alg\":\"EdDSA\",\"kid\":\"%s\",\"x\":\"%s\"}",
             kid, x);
    assert_int_equal(buf_append_cstr(out, text), 0);
    free(x);
}

static int setup(void **state)
{
    (void)state;
    rsa1 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ed1 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!rsa1 || !rsa2 || !ec1 || !ed1)
        return -1;
    buf_t j = BUF_INIT;
    buf_append_cstr(&j, "{\"keys\":[");
    rsa_jwk(&j, rsa1, "rsa1");
    buf_append_cstr(&j, ",");
    rsa_jwk(&j, rsa2, "rsa2");
    buf_append_cstr(&j, ",");
    ec_jwk(&j, ec1, "ec1");
    buf_append_cstr(&j, ",");
    ed_jwk(&j, ed1, "ed1");
    buf_append_cstr(&j, "]}");
    jwks_text = buf_take_cstr(&j);
    char err[JWT_ERR_SIZE];
    keys = jwt_keys_parse(jwks_text, strlen(jwks_text), err, sizeof err);
    if (!keys)
        fprintf(stderr, "JWKS: %s\n", err);
    return keys ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    jwt_keys_free(keys);
    free(jwks_text);
    EVP_PKEY_free(rsa1);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(ec1);
    EVP_PKEY_free(ed1);
    return 0;
}

/* ---- algorithms ------------------------------------------------------------------ */

static void algorithm_names(void **state)
{
    (void)state;
    const char *names[] = { "RS256", "ES256", "EdDSA", "HS256" };
    for (size_t i = 0; i < 4; i++) {
        jwt_alg_t a;
        assert_int_equal(jwt_alg_parse(names[i], strlen(names[i]), &a), 0);
        assert_int_equal(a, 1 << i);
        assert_string_equal(jwt_alg_name(a), names[i]);
    }
    jwt_alg_t a;
    assert_int_equal(jwt_alg_parse("none", 4, &a), -1);
    assert_int_equal(jwt_alg_parse("rs256", 5, &a), -1);
    assert_int_equal(jwt_alg_parse("RS2560", 6, &a), -1);
    assert_int_equal(jwt_alg_parse("RS25", 4, &a), -1);
    assert_int_equal(jwt_alg_parse("RS384", 5, &a), -1);
    assert_string_equal(jwt_alg_name((jwt_alg_t)3), "?");
    assert_string_equal(jwt_result_label(JWT_OK), "ok");
    assert_string_equal(jwt_result_label(JWT_BAD_SIGNATURE), "signature");
    assert_string_equal(jwt_result_label(JWT_NOT_YET_VALID), "not_yet_valid");
}

static void jwks_parsed(void **state)
{
    (void)state;
    assert_int_equal(jwt_keys_count(keys), 4);
    assert_int_equal(jwt_keys_skipped(keys), 0);
}

static void valid_token_of_each_algorithm(void **state)
{
    (void)state;
    const char *algs[] = { "RS256", "ES256", "EdDSA", "HS256" };
    const char *kids[] = { "rsa1", "ec1", "ed1", "anything" };
    jwt_policy_t p = policy();
    for (size_t i = 0; i < 4; i++) {
        for (int with_kid = 0; with_kid < 2; with_kid++) {
            const char *payload = claims(3600);
            char *tok = token(algs[i], with_kid ? kids[i] : NULL, payload);
            jwt_claims_t c;
            assert_int_equal(verify_at(&p, tok, strlen(tok), NOW, &c), JWT_OK);
            assert_int_equal(c.len, strlen(payload));
            assert_memory_equal(c.json, payload, c.len);
            assert_int_equal(c.exp, NOW + 3600);
            assert_int_equal(c.valid_until, NOW + 3600);
            jwt_claims_free(&c);
            assert_null(c.json);
            free(tok);
        }
    }
}

/* Without a kid every key of the type is tried, in order, up to a bound. */
static void keys_tried_without_kid(void **state)
{
    (void)state;
    char *tok = token_signed("RS256", rsa2, NULL, "{\"alg\":\"RS256\"}", claims(60), SIG_JWS);
    jwt_policy_t p = policy();
    assert_int_equal(verify(&p, tok), JWT_OK); /* rsa1 fails, rsa2 verifies */

    /* 8 copies of rsa1, then rsa2: rsa2 is past the bound. */
    buf_t j = BUF_INIT;
    buf_append_cstr(&j, "{\"keys\":[");
    for (int i = 0; i < JWT_MAX_KEYS_TRIED; i++) {
        rsa_jwk(&j, rsa1, "decoy");
        buf_append_cstr(&j, ",");
    }
    rsa_jwk(&j, rsa2, "rsa2");
    buf_append_cstr(&j, "]}");
    jwt_keys_t *many = jwt_keys_parse(j.data, j.len, NULL, 0);
    assert_non_null(many);
    assert_int_equal(jwt_keys_count(many), JWT_MAX_KEYS_TRIED + 1);
    p.keys = many;
    assert_int_equal(verify(&p, tok), JWT_BAD_SIGNATURE);
    free(tok);
    tok = token_signed("RS256", rsa2, NULL, "{\"alg\":\"RS256\",\"kid\":\"rsa2\"}", claims(60), SIG_JWS);
    assert_int_equal(verify(&p, tok), JWT_OK); /* with its kid it is found */
    free(tok);
    jwt_keys_free(many);
    buf_free(&j);
}

/* ---- time claims ---------------------------------------------------------------------- */

static jwt_result_t with_claims(const char *payload, int64_t leeway, int64_t now)
{
    char *tok = token("ES256", "ec1", payload);
    jwt_policy_t p = policy();
    p.issuer = NULL;
    p.audience_count = 0;
    p.leeway_s = leeway;
    jwt_result_t r = verify_at(&p, tok, strlen(tok), now, NULL);
    free(tok);
    return r;
}

static void expiry(void **state)
{
    (void)state;
    assert_int_equal(verify_default(token("RS256", "rsa1", claims(-1))), JWT_EXPIRED);
    assert_int_equal(verify_default(token("RS256", "rsa1", claims(0))), JWT_EXPIRED);
    assert_int_equal(verify_default(token("RS256", "rsa1", claims(1))), JWT_OK);
    /* with leeway: valid while now < exp + leeway */
    assert_int_equal(with_claims("{\"exp\":1699999941}", 60, NOW), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":1699999940}", 60, NOW), JWT_EXPIRED);
    assert_int_equal(with_claims("{\"exp\":1699999940}", 61, NOW), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":1699999940}", -5, NOW), JWT_EXPIRED);
    /* decimals and other spellings, compared exactly */
    assert_int_equal(with_claims("{\"exp\":1700000000.5}", 0, NOW), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":1700000000.5}", 0, NOW + 1), JWT_EXPIRED);
    assert_int_equal(with_claims("{\"exp\":1700000000.000000000000000000001}", 0, NOW), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":1700000000.0}", 0, NOW), JWT_EXPIRED);
    assert_int_equal(with_claims("{\"exp\":17000000005e-1}", 0, NOW), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":1.7e9}", 0, NOW), JWT_EXPIRED);
    assert_int_equal(with_claims("{\"exp\":1.7E+9}", 0, NOW - 1), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":0.0017000000001e12}", 0, NOW), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":0.0017e12}", 0, NOW), JWT_EXPIRED);
    assert_int_equal(with_claims("{\"exp\":0.0017e12}", 0, NOW - 1), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":-0.0017e12}", 0, -1700000001), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":-0.0017e12}", 0, -1700000000), JWT_EXPIRED);
    assert_int_equal(with_claims("{\"exp\":1e300}", 0, NOW), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":123456789012345678901234567890}", 0, NOW), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":-1e300}", 0, NOW), JWT_EXPIRED);
    assert_int_equal(with_claims("{\"exp\":-0.5}", 0, -1), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":1e-400}", 0, 0), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":0}", 0, 0), JWT_EXPIRED);
    /* the last of repeated claims counts, as with JSON.parse */
    assert_int_equal(with_claims("{\"exp\":2000000000,\"exp\":1}", 0, NOW), JWT_EXPIRED);
    assert_int_equal(with_claims("{\"exp\":1,\"\\u0065xp\":2000000000}", 0, NOW), JWT_OK);
}

static void expiry_is_required_and_numeric(void **state)
{
    (void)state;
    assert_int_equal(with_claims("{\"sub\":\"u42\"}", 0, NOW), JWT_NO_EXP);
    assert_int_equal(with_claims("{}", 0, NOW), JWT_NO_EXP);
    assert_int_equal(with_claims("{\"nested\":{\"exp\":2000000000}}", 0, NOW), JWT_NO_EXP);
    assert_int_equal(with_claims("{\"exp\":\"2000000000\"}", 0, NOW), JWT_MALFORMED);
    assert_int_equal(with_claims("{\"exp\":null}", 0, NOW), JWT_MALFORMED);
    assert_int_equal(verify_default(token("HS256", NULL, "{\"iss\":\"" ISSUER "\",\"aud\":\"api\"}")),
                     JWT_NO_EXP);
}

static void not_before(void **state)
{
    (void)state;
    assert_int_equal(with_claims("{\"exp\":2000000000,\"nbf\":1700000010}", 0, NOW), JWT_NOT_YET_VALID);
    assert_int_equal(with_claims("{\"exp\":2000000000,\"nbf\":1700000010}", 9, NOW), JWT_NOT_YET_VALID);
    assert_int_equal(with_claims("{\"exp\":2000000000,\"nbf\":1700000010}", 10, NOW), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":2000000000,\"nbf\":1700000000}", 0, NOW), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":2000000000,\"nbf\":1700000000.1}", 0, NOW), JWT_NOT_YET_VALID);
    assert_int_equal(with_claims("{\"exp\":2000000000,\"nbf\":1e300}", 0, NOW), JWT_NOT_YET_VALID);
    assert_int_equal(with_claims("{\"exp\":2000000000,\"nbf\":-1e300}", 0, NOW), JWT_OK);
    assert_int_equal(with_claims("{\"exp\":2000000000,\"nbf\":\"x\"}", 0, NOW), JWT_MALFORMED);
    /* an expired token is expired, whatever its nbf */
    assert_int_equal(with_claims("{\"exp\":1,\"nbf\":1700000010}", 0, NOW), JWT_EXPIRED);
}

/* ---- issuer and audience ---------------------------------------------------------------- */

static jwt_result_t with_payload(const char *payload)
{
    return verify_default(token("EdDSA", "ed1", payload));
}

static void issuer(void **state)
{
    (void)state;
    assert_int_equal(with_payload("{\"iss\":\"" ISSUER "\",\"aud\":\"api\",\"exp\":2000000000}"), JWT_OK);
    assert_int_equal(with_payload("{\"iss\":\"https:\\/\\/issuer.example\",\"aud\":\"api\",\"exp\":2000000000}"),
                     JWT_OK);
    assert_int_equal(with_payload("{\"iss\":\"https://issuer.example/\",\"aud\":\"api\",\"exp\":2000000000}"),
                     JWT_WRONG_ISSUER);
    assert_int_equal(with_payload("{\"iss\":\"https://issuer.exampl\",\"aud\":\"api\",\"exp\":2000000000}"),
                     JWT_WRONG_ISSUER);
    assert_int_equal(with_payload("{\"aud\":\"api\",\"exp\":2000000000}"), JWT_WRONG_ISSUER);
    assert_int_equal(with_payload("{\"iss\":[\"" ISSUER "\"],\"aud\":\"api\",\"exp\":2000000000}"),
                     JWT_MALFORMED);
    /* without a configured issuer, iss is not looked at */
    assert_int_equal(with_claims("{\"iss\":\"someone\",\"exp\":2000000000}", 0, NOW), JWT_OK);
    assert_int_equal(with_claims("{\"iss\":7,\"exp\":2000000000}", 0, NOW), JWT_OK);
}

static void audience(void **state)
{
    (void)state;
#define AUD_CLAIMS(aud) "{\"iss\":\"" ISSUER "\",\"aud\":" aud ",\"exp\":2000000000}"
    assert_int_equal(with_payload(AUD_CLAIMS("\"admin\"")), JWT_OK);
    assert_int_equal(with_payload(AUD_CLAIMS("\"other\"")), JWT_WRONG_AUDIENCE);
    assert_int_equal(with_payload(AUD_CLAIMS("\"ap\"")), JWT_WRONG_AUDIENCE);
    assert_int_equal(with_payload(AUD_CLAIMS("[\"other\",\"api\"]")), JWT_OK);
    assert_int_equal(with_payload(AUD_CLAIMS("[\"api\",\"other\"]")), JWT_OK);
    assert_int_equal(with_payload(AUD_CLAIMS("[ \"other\" , \"x\" , \"admin\" ]")), JWT_OK);
    assert_int_equal(with_payload(AUD_CLAIMS("[\"other\",\"x\"]")), JWT_WRONG_AUDIENCE);
    assert_int_equal(with_payload(AUD_CLAIMS("[]")), JWT_WRONG_AUDIENCE);
    assert_int_equal(with_payload(AUD_CLAIMS("[\"api\",7]")), JWT_MALFORMED);
    assert_int_equal(with_payload(AUD_CLAIMS("[[\"api\"]]")), JWT_MALFORMED);
    assert_int_equal(with_payload(AUD_CLAIMS("{\"api\":1}")), JWT_MALFORMED);
    assert_int_equal(with_payload(AUD_CLAIMS("\"\\u0061pi\"")), JWT_OK);
    assert_int_equal(with_payload("{\"iss\":\"" ISSUER "\",\"exp\":2000000000}"), JWT_WRONG_AUDIENCE);
    /* without configured audiences, aud is not looked at */
    assert_int_equal(with_claims("{\"aud\":\"other\",\"exp\":2000000000}", 0, NOW), JWT_OK);
    assert_int_equal(with_claims("{\"aud\":5,\"exp\":2000000000}", 0, NOW), JWT_OK);
#undef AUD_CLAIMS
}

/* ---- signatures and algorithms --------------------------------------------------------------- */

/* Flips one bit of the decoded signature of tok (re-encoded canonically). */
static char *flip_signature_bit(const char *tok, size_t bit)
{
    const char *dot = strrchr(tok, '.');
    unsigned char sig[1024];
    size_t n = 0;
    /* decode the test's way: 6 bits per character */
    unsigned acc = 0, bits = 0;
    for (const char *c = dot + 1; *c; c++) {
        const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        acc = acc << 6 | (unsigned)(strchr(abc, *c) - abc);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            sig[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    sig[bit / 8 % n] ^= (unsigned char)(1u << bit % 8);
    buf_t t = BUF_INIT;
    buf_append(&t, tok, (size_t)(dot + 1 - tok));
    b64url(&t, sig, n);
    char *s = buf_take_cstr(&t);
    assert_non_null(s);
    return s;
}

static void bad_signature(void **state)
{
    (void)state;
    const char *algs[] = { "RS256", "ES256", "EdDSA", "HS256" };
    const char *kids[] = { "rsa1", "ec1", "ed1", NULL };
    jwt_policy_t p = policy();
    for (size_t i = 0; i < 4; i++) {
        char *tok = token(algs[i], kids[i], claims(60));
        size_t bits[] = { 0, 7, 100, 255 };
        for (size_t b = 0; b < 4; b++) {
            char *bad = flip_signature_bit(tok, bits[b]);
            assert_int_equal(verify(&p, bad), JWT_BAD_SIGNATURE);
            free(bad);
        }
        /* the payload changed after signing */
        char *other = token(algs[i], kids[i], claims(61));
        char *dot1 = strchr(tok, '.'), *dot2 = strrchr(tok, '.');
        char *odot1 = strchr(other, '.'), *odot2 = strrchr(other, '.');
        buf_t m = BUF_INIT;
        buf_append(&m, tok, (size_t)(dot1 - tok));
        buf_append(&m, odot1, (size_t)(odot2 - odot1));
        buf_append_cstr(&m, dot2);
        char *mixed = buf_take_cstr(&m);
        assert_int_equal(verify(&p, mixed), JWT_BAD_SIGNATURE);
        /* an empty signature */
        dot2[1] = '\0';
        assert_int_equal(verify(&p, tok), JWT_BAD_SIGNATURE);
        free(mixed);
        free(other);
        free(tok);
    }
    /* signed by another key of the right type */
    char *tok = token_signed("RS256", rsa2, NULL, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", claims(60), SIG_JWS);
    assert_int_equal(verify(&p, tok), JWT_BAD_SIGNATURE);
    free(tok);
    tok = token_signed("HS256", NULL, "another secret", "{\"alg\":\"HS256\"}", claims(60), SIG_JWS);
    assert_int_equal(verify(&p, tok), JWT_BAD_SIGNATURE);
    free(tok);
}

static void es256_der_signature_refused(void **state)
{
    (void)state;
    char *tok = token_signed("ES256", ec1, NULL, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", claims(60), SIG_DER);
    jwt_policy_t p = policy();
    assert_int_equal(verify(&p, tok), JWT_BAD_SIGNATURE);
    free(tok);
}

static char *unsigned_token(const char *header, const char *payload, const char *sig_part)
{
    buf_t t = BUF_INIT;
    b64url(&t, header, strlen(header));
    buf_append_cstr(&t, ".");
    b64url(&t, payload, strlen(payload));
    if (sig_part) {
        buf_append_cstr(&t, ".");
        buf_append_cstr(&t, sig_part);
    }
    char *s = buf_take_cstr(&t);
    assert_non_null(s);
    return s;
}

static void alg_none_never_accepted(void **state)
{
    (void)state;
    jwt_policy_t p = policy();
    p.algorithms = ~0u;
    const char *headers[] = { "{\"alg\":\"none\"}", "{\"alg\":\"none\",\"typ\":\"JWT\"}",
                              "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}", "{\"alg\":\"\"}" };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *tok = unsigned_token(headers[i], claims(60), "");
        assert_int_equal(verify(&p, tok), JWT_ALG_NOT_ALLOWED);
        free(tok);
        tok = unsigned_token(headers[i], claims(60), "c2lnbmF0dXJl");
        assert_int_equal(verify(&p, tok), JWT_ALG_NOT_ALLOWED);
        free(tok);
        tok = unsigned_token(headers[i], claims(60), NULL); /* two parts */
        assert_int_equal(verify(&p, tok), JWT_MALFORMED);
        free(tok);
    }
    /* a real signature under alg none changes nothing */
    char *tok = token_signed("HS256", NULL, SECRET, "{\"alg\":\"none\"}", claims(60), SIG_JWS);
    assert_int_equal(verify(&p, tok), JWT_ALG_NOT_ALLOWED);
    free(tok);
}

static void alg_not_allowed(void **state)
{
    (void)state;
    jwt_policy_t p = policy();
    p.algorithms = JWT_ALG_RS256;
    char *tok = token("ES256", "ec1", claims(60));
    assert_int_equal(verify(&p, tok), JWT_ALG_NOT_ALLOWED);
    free(tok);
    tok = token("HS256", NULL, claims(60));
    assert_int_equal(verify(&p, tok), JWT_ALG_NOT_ALLOWED);
    free(tok);
    tok = token("RS256", "rsa1", claims(60));
    assert_int_equal(verify(&p, tok), JWT_OK);
    p.algorithms = 0;
    assert_int_equal(verify(&p, tok), JWT_ALG_NOT_ALLOWED);
    free(tok);
    /* algorithms the module does not do */
    p.algorithms = JWT_ALG_ALL;
    tok = token_signed("RS256", rsa1, NULL, "{\"alg\":\"RS512\",\"kid\":\"rsa1\"}", claims(60), SIG_JWS);
    assert_int_equal(verify(&p, tok), JWT_ALG_NOT_ALLOWED);
    free(tok);
    tok = token_signed("RS256", rsa1, NULL, "{\"alg\":\"PS256\",\"kid\":\"rsa1\"}", claims(60), SIG_JWS);
    assert_int_equal(verify(&p, tok), JWT_ALG_NOT_ALLOWED);
    free(tok);
}

/* The classic confusion: an HS256 token whose HMAC key is the RSA public
 * key's PEM, which an attacker can read. */
static void hs256_with_public_key_as_secret(void **state)
{
    (void)state;
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, rsa1), 1);
    char *pem_data;
    long pem_len = BIO_get_mem_data(bio, &pem_data);
    char *pem = strndup(pem_data, (size_t)pem_len);
    BIO_free(bio);
    char *tok = token_signed("HS256", NULL, pem, "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", claims(60), SIG_JWS);
    jwt_policy_t p = policy();
    assert_int_equal(verify(&p, tok), JWT_BAD_SIGNATURE);
    p.hs256_secret = NULL;
    p.hs256_secret_len = 0;
    assert_int_equal(verify(&p, tok), JWT_UNKNOWN_KEY);
    /* only when the configured secret literally is that text */
    p.hs256_secret = (const unsigned char *)pem;
    p.hs256_secret_len = strlen(pem);
    assert_int_equal(verify(&p, tok), JWT_OK);
    free(tok);
    /* and RS256 never uses the secret */
    tok = token_signed("HS256", NULL, pem, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", claims(60), SIG_JWS);
    assert_int_equal(verify(&p, tok), JWT_BAD_SIGNATURE);
    free(tok);
    free(pem);
}

static void key_selection(void **state)
{
    (void)state;
    jwt_policy_t p = policy();
    char *tok = token("RS256", "nope", claims(60));
    assert_int_equal(verify(&p, tok), JWT_UNKNOWN_KEY);
    free(tok);
    /* kid of a key of another type */
    tok = token("ES256", "rsa1", claims(60));
    assert_int_equal(verify(&p, tok), JWT_UNKNOWN_KEY);
    free(tok);
    tok = token("EdDSA", "ec1", claims(60));
    assert_int_equal(verify(&p, tok), JWT_UNKNOWN_KEY);
    free(tok);
    /* an ES256 signature made with ec1 but the header names ed1 */
    tok = token_signed("ES256", ec1, NULL, "{\"alg\":\"EdDSA\",\"kid\":\"ed1\"}", claims(60), SIG_JWS);
    assert_int_equal(verify(&p, tok), JWT_BAD_SIGNATURE);
    free(tok);
    /* no key at all */
    p.keys = NULL;
    tok = token("RS256", NULL, claims(60));
    assert_int_equal(verify(&p, tok), JWT_UNKNOWN_KEY);
    free(tok);
    /* only keys of other types */
    const char *only_rsa_end = strstr(jwks_text, ",{\"kty\":\"EC\"");
    assert_non_null(only_rsa_end);
    buf_t j = BUF_INIT;
    buf_append(&j, jwks_text, (size_t)(only_rsa_end - jwks_text));
    buf_append_cstr(&j, "]}");
    jwt_keys_t *rsa_only = jwt_keys_parse(j.data, j.len, NULL, 0);
    assert_non_null(rsa_only);
    assert_int_equal(jwt_keys_count(rsa_only), 2);
    p.keys = rsa_only;
    tok = token("EdDSA", NULL, claims(60));
    assert_int_equal(verify(&p, tok), JWT_UNKNOWN_KEY);
    free(tok);
    jwt_keys_free(rsa_only);
    buf_free(&j);
}

/* ---- format -------------------------------------------------------------------------------- */

static void malformed_tokens(void **state)
{
    (void)state;
    jwt_policy_t p = policy();
    char *good = token("HS256", NULL, claims(60));
    assert_int_equal(verify(&p, good), JWT_OK);
    size_t n = strlen(good);
    char *dot1 = strchr(good, '.');
    size_t h = (size_t)(dot1 - good);

    const char *bad_chars[] = { "+", "/", "=", " ", "\n", "\t", "\0", "%", "*", "\x80" };
    size_t places[] = { 0, h - 1, h + 1, n - 1, n };
    for (size_t i = 0; i < sizeof bad_chars / sizeof bad_chars[0]; i++) {
        for (size_t k = 0; k < sizeof places / sizeof places[0]; k++) {
            char *t = malloc(n + 2);
            memcpy(t, good, places[k]);
            t[places[k]] = bad_chars[i][0];
            memcpy(t + places[k] + 1, good + places[k], n - places[k] + 1);
            assert_int_equal(verify_at(&p, t, n + 1, NOW, NULL), JWT_MALFORMED);
            free(t);
        }
    }
    /* padding added to a part */
    const char *suffixes[] = { "=", "==", ".", ".x" };
    for (size_t i = 0; i < 4; i++) {
        char *t = malloc(n + 3);
        snprintf(t, n + 3, "%s%s", good, suffixes[i]);
        assert_int_equal(verify(&p, t), JWT_MALFORMED);
        free(t);
    }
    /* a part whose length is 1 mod 4, and non-canonical trailing bits */
    char *t = strdup(good);
    t[n - 2] = '\0'; /* the HS256 signature has 43 characters: 41 is no base64 length */
    assert_int_equal(verify(&p, t), JWT_MALFORMED);
    strcpy(t, good);
    char *sig = strrchr(t, '.') + 1;
    assert_int_equal(strlen(sig), 43); /* 32 bytes: the last character carries 2 unused bits */
    const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t v = (size_t)(strchr(abc, sig[42]) - abc);
    sig[42] = abc[v ^ 1];
    assert_int_equal(verify(&p, t), JWT_MALFORMED);
    free(t);
    /* a payload part that is not canonical, yet signed: refused all the same */
    const char *payload = "{\"exp\":2000000000,\"iss\":\"" ISSUER "\",\"aud\":\"api\"}";
    buf_t msg = BUF_INIT;
    b64url(&msg, "{\"alg\":\"HS256\"}", 15);
    buf_append_cstr(&msg, ".");
    b64url(&msg, payload, strlen(payload));
    assert_int_equal(strlen(payload) % 3, 1); /* the part ends in a character with 4 unused bits */
    for (int variant = 0; variant < 3; variant++) {
        buf_t text = BUF_INIT;
        buf_append(&text, msg.data, msg.len);
        if (variant == 1)
            text.data[text.len - 1] = abc[(size_t)(strchr(abc, text.data[text.len - 1]) - abc) | 1];
        if (variant == 2)
            buf_append_cstr(&text, "A"); /* a length of 1 mod 4 */
        buf_append(&text, "", 1);
        unsigned char mac[1024];
        size_t maclen = sign("HS256", NULL, SECRET, text.data, SIG_JWS, mac);
        text.len--;
        buf_append_cstr(&text, ".");
        b64url(&text, mac, maclen);
        buf_append(&text, "", 1);
        assert_int_equal(verify(&p, text.data), variant == 0 ? JWT_OK : JWT_MALFORMED);
        buf_free(&text);
    }
    buf_free(&msg);
    assert_int_equal(verify_at(&p, "", 0, NOW, NULL), JWT_MALFORMED);
    assert_int_equal(verify_at(&p, NULL, 0, NOW, NULL), JWT_MALFORMED);
    assert_int_equal(verify(&p, ".."), JWT_MALFORMED);
    assert_int_equal(verify(&p, "a.b.c"), JWT_MALFORMED);
    free(good);
}

static void malformed_header_and_payload(void **state)
{
    (void)state;
    struct {
        const char *header, *payload;
    } cases[] = {
        { "not json", "{\"exp\":2000000000}" },
        { "[\"HS256\"]", "{\"exp\":2000000000}" },
        { "{}", "{\"exp\":2000000000}" },
        { "{\"alg\":256}", "{\"exp\":2000000000}" },
        { "{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "{\"exp\":2000000000}" },
        { "{\"alg\":\"HS256\",\"kid\":7}", "{\"exp\":2000000000}" },
        { "{\"alg\":\"HS256\"} x", "{\"exp\":2000000000}" },
        { "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", "{\"exp\":2000000000}" },
        { "{\"alg\":\"HS256\",\"crit\":[]}", "{\"exp\":2000000000}" },
        { "{\"alg\":\"HS256\",\"b64\":false,\"crit\":[\"b64\"]}", "{\"exp\":2000000000}" },
        { "{\"alg\":\"HS256\"}", "" },
        { "{\"alg\":\"HS256\"}", "not json" },
        { "{\"alg\":\"HS256\"}", "[{\"exp\":2000000000}]" },
        { "{\"alg\":\"HS256\"}", "\"exp\"" },
        { "{\"alg\":\"HS256\"}", "{\"exp\":2000000000} {}" },
        { "{\"alg\":\"HS256\"}", "{\"exp\":2000000000,}" },
        { "{\"alg\":\"HS256\"}", "{\"exp\":2000000000,\"s\":\"\xff\"}" },
        { "{\"alg\":\"HS256\"}", "{\"exp\":01}" },
    };
    jwt_policy_t p = policy();
    p.issuer = NULL;
    p.audience_count = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *tok = token_signed("HS256", NULL, SECRET, cases[i].header, cases[i].payload, SIG_JWS);
        if (verify(&p, tok) != JWT_MALFORMED)
            fail_msg("case %zu: %s . %s", i, cases[i].header, cases[i].payload);
        free(tok);
    }
    /* the control: these pass */
    char *tok = token_signed("HS256", NULL, SECRET, " {\"typ\":\"at+jwt\", \"alg\":\"HS256\",\"x5u\":\"http://x\"} ",
                             " {\"exp\":2000000000} ", SIG_JWS);
    assert_int_equal(verify(&p, tok), JWT_OK);
    free(tok);
}

static void size_bound(void **state)
{
    (void)state;
    jwt_policy_t p = policy();
    p.issuer = NULL;
    p.audience_count = 0;
    /* pad the payload so that the token is exactly at the bound, then one over */
    char *base = token("HS256", NULL, "{\"exp\":2000000000,\"p\":\"\"}");
    size_t extra_chars = JWT_MAX_TOKEN - strlen(base);
    free(base);
    size_t pad = extra_chars / 4 * 3;
    char *payload = malloc(pad + 64);
    snprintf(payload, pad + 64, "{\"exp\":2000000000,\"p\":\"%*s\"}", (int)pad, "");
    char *tok = token("HS256", NULL, payload);
    size_t len = strlen(tok);
    assert_true(len <= JWT_MAX_TOKEN && len > JWT_MAX_TOKEN - 4);
    assert_int_equal(verify(&p, tok), JWT_OK);
    free(tok);
    snprintf(payload, pad + 64, "{\"exp\":2000000000,\"p\":\"%*s\"}", (int)pad + 3, "");
    tok = token("HS256", NULL, payload);
    assert_true(strlen(tok) > JWT_MAX_TOKEN);
    assert_int_equal(verify(&p, tok), JWT_MALFORMED);
    free(tok);
    free(payload);
}

static void payload_kept_byte_exact(void **state)
{
    (void)state;
    const char payload[] = "{ \"exp\" : 2000000000.250,\"big\":123456789012345678901234567890123,"
                           "\"nul\":\"a\\u0000b\",\"lone\":\"\\ud800\",\"f\":1.10,\"e\":-0.0e-0,"
                           "\"utf8\":\"h\xc3\xa9llo \xf0\x9f\x98\x80\",\"arr\":[ 1 ,{} ] }\n";
    jwt_policy_t p = policy();
    p.issuer = NULL;
    p.audience_count = 0;
    const char *algs[] = { "RS256", "ES256", "EdDSA", "HS256" };
    for (size_t i = 0; i < 4; i++) {
        char *tok = token(algs[i], NULL, payload);
        jwt_claims_t c;
        assert_int_equal(verify_at(&p, tok, strlen(tok), NOW, &c), JWT_OK);
        assert_int_equal(c.len, sizeof payload - 1);
        assert_memory_equal(c.json, payload, sizeof payload - 1);
        assert_int_equal(c.exp, 2000000001);
        jwt_claims_free(&c);
        free(tok);
    }
}

/* ---- JWKS ------------------------------------------------------------------------------------ */

static void jwks_error(const char *text, const char *expected)
{
    char err[JWT_ERR_SIZE];
    jwt_keys_t *k = jwt_keys_parse(text, strlen(text), err, sizeof err);
    if (k)
        fail_msg("parsed: %s", text);
    if (strncmp(err, expected, strlen(expected)) != 0)
        fail_msg("error \"%s\", expected \"%s...\" for %s", err, expected, text);
    assert_int_equal(ERR_peek_error(), 0);
}

/* The JWK of `kid` in jwks_text, with `member` replaced by replacement
 * (a JSON text; NULL removes the member). */
static char *jwk_edited(const char *kid, const char *member, const char *replacement)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"kid\":\"%s\"", kid);
    const char *at = strstr(jwks_text, pattern);
    assert_non_null(at);
    const char *start = at, *end = strchr(at, '}');
    while (*start != '{')
        start--;
    buf_t b = BUF_INIT;
    buf_append(&b, start, (size_t)(end + 1 - start));
    char *jwk = buf_take_cstr(&b);
    char mpat[32];
    snprintf(mpat, sizeof mpat, "\"%s\":", member);
    char *m = strstr(jwk, mpat);
    buf_t out = BUF_INIT;
    if (!m) {
        buf_append(&out, jwk, strlen(jwk) - 1);
        if (replacement) {
            buf_append_cstr(&out, ",");
            buf_append_cstr(&out, mpat);
            buf_append_cstr(&out, replacement);
        }
        buf_append_cstr(&out, "}");
    } else {
        char *vend = m + strlen(mpat);
        if (*vend == '"')
            vend = strchr(vend + 1, '"') + 1;
        else
            while (*vend != ',' && *vend != '}')
                vend++;
        if (replacement) {
            buf_append(&out, jwk, (size_t)(m - jwk) + strlen(mpat));
            buf_append_cstr(&out, replacement);
            buf_append_cstr(&out, vend);
        } else {
            if (m[-1] == ',')
                m--;
            else if (*vend == ',')
                vend++;
            buf_append(&out, jwk, (size_t)(m - jwk));
            buf_append_cstr(&out, vend);
        }
    }
    free(jwk);
    char *s = buf_take_cstr(&out);
    assert_non_null(s);
    return s;
}

/* "{"keys":[first,second]}" checked to fail with expected. */
static void jwks_pair_error(const char *first, char *second, const char *expected)
{
    char text[8192];
    snprintf(text, sizeof text, "{\"keys\":[%s,%s]}", first, second);
    free(second);
    jwks_error(text, expected);
}

static void jwks_errors_name_the_key(void **state)
{
    (void)state;
    const char *ok = "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}";
    jwks_pair_error(ok, jwk_edited("rsa1", "n", "\"AQ=AB\""), "keys[1].n: not valid base64url");
    jwks_pair_error(ok, jwk_edited("rsa1", "n", "\"AQAB \""), "keys[1].n: not valid base64url");
    jwks_pair_error(ok, jwk_edited("rsa1", "n", NULL), "keys[1].n: missing");
    jwks_pair_error(ok, jwk_edited("rsa1", "n", "17"), "keys[1].n: not a string");
    jwks_pair_error(ok, jwk_edited("rsa1", "e", "\"AQAC\""), "keys[1].e: not an RSA exponent");
    jwks_pair_error(ok, jwk_edited("rsa1", "e", "\"AQ\""), "keys[1].e: not an RSA exponent");
    jwks_pair_error(ok, jwk_edited("rsa1", "kid", "[]"), "keys[1].kid: not a string");
    jwks_pair_error(ok, jwk_edited("rsa1", "use", "1"), "keys[1].use: not a string");
    jwks_pair_error(ok, jwk_edited("rsa1", "kty", NULL), "keys[1].kty: missing");
    jwks_pair_error(ok, jwk_edited("ec1", "x", "\"AAAA\""), "keys[1].x: not 32 bytes");
    jwks_pair_error(ok, jwk_edited("ec1", "y", NULL), "keys[1].y: missing");
    jwks_pair_error(ok, jwk_edited("ec1", "crv", NULL), "keys[1].crv: missing");
    jwks_pair_error(ok, jwk_edited("ed1", "x", "\"AAAA\""), "keys[1].x: not 32 bytes");
    /* a point off the curve: y + 1 */
    {
        unsigned char pub[65];
        size_t len = 0;
        assert_int_equal(EVP_PKEY_get_octet_string_param(ec1, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &len), 1);
        pub[64] ^= 1;
        char *y = b64url_str(pub + 33, 32), quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", y);
        free(y);
        jwks_pair_error(ok, jwk_edited("ec1", "y", quoted), "keys[1]: x, y: not a point of the curve P-256");
    }
    /* an RSA key too small */
    {
        EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
        assert_non_null(small);
        buf_t b = BUF_INIT;
        rsa_jwk(&b, small, "small");
        char *jwk = buf_take_cstr(&b);
        jwks_pair_error(ok, jwk, "keys[1].n: not an RSA modulus of 2048 to 8192 bits");
        EVP_PKEY_free(small);
    }
    jwks_error("{\"keys\":[1]}", "keys[0]: not an object");
    jwks_error("{\"keys\":{}}", "keys: not an array");
    jwks_error("{\"key\":[]}", "keys: missing");
    jwks_error("[]", "not a JSON object");
    jwks_error("", "not valid JSON");
    jwks_error("{\"keys\":[],\"keys\":[]}", "not valid JSON");
    jwks_error("{\"keys\":[", "not valid JSON");
    buf_t many = BUF_INIT;
    buf_append_cstr(&many, "{\"keys\":[{}");
    for (int i = 0; i < JWT_MAX_KEYS; i++)
        buf_append_cstr(&many, ",{}");
    buf_append_cstr(&many, "]}");
    char *m = buf_take_cstr(&many);
    jwks_error(m, "keys: more than 256 keys");
    free(m);
    /* no error text wanted */
    assert_null(jwt_keys_parse("[]", 2, NULL, 0));
}

static void jwks_skips_other_keys(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_append_cstr(&b, "{\"keys\":[");
    buf_append_cstr(&b, "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\",\"alg\":\"HS256\"},");
    buf_append_cstr(&b, "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"bad\",\"y\":\"bad\"},");
    buf_append_cstr(&b, "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"bad\"},");
    buf_append_cstr(&b, "{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"x\":\"bad\"},");
    buf_append_cstr(&b, "{\"kty\":\"whatever\"},");
    char *enc = jwk_edited("rsa1", "use", "\"enc\"");
    buf_append_cstr(&b, enc);
    free(enc);
    buf_append_cstr(&b, ",");
    char *ps = jwk_edited("rsa1", "alg", "\"PS256\"");
    buf_append_cstr(&b, ps);
    free(ps);
    buf_append_cstr(&b, ",");
    char *wrong = jwk_edited("rsa1", "alg", "\"ES256\"");
    buf_append_cstr(&b, wrong);
    free(wrong);
    buf_append_cstr(&b, ",");
    char *right = jwk_edited("ec1", "alg", "\"ES256\"");
    buf_append_cstr(&b, right);
    free(right);
    buf_append_cstr(&b, ",");
    char *priv = jwk_edited("ed1", "d", "\"not looked at\"");
    buf_append_cstr(&b, priv);
    free(priv);
    buf_append_cstr(&b, "]}");
    char err[JWT_ERR_SIZE];
    jwt_keys_t *k = jwt_keys_parse(b.data, b.len, err, sizeof err);
    if (!k)
        fail_msg("%s", err);
    assert_int_equal(jwt_keys_count(k), 2);
    assert_int_equal(jwt_keys_skipped(k), 8);
    jwt_policy_t p = policy();
    p.keys = k;
    char *tok = token("RS256", "rsa1", claims(60));
    assert_int_equal(verify(&p, tok), JWT_UNKNOWN_KEY); /* its JWKs were skipped */
    free(tok);
    tok = token("ES256", "ec1", claims(60));
    assert_int_equal(verify(&p, tok), JWT_OK);
    free(tok);
    tok = token("EdDSA", "ed1", claims(60));
    assert_int_equal(verify(&p, tok), JWT_OK);
    free(tok);
    jwt_keys_free(k);
    buf_free(&b);
    /* an empty set is fine */
    k = jwt_keys_parse("{\"keys\":[]}", 11, err, sizeof err);
    assert_non_null(k);
    assert_int_equal(jwt_keys_count(k), 0);
    jwt_keys_free(k);
}

/* ---- cache ------------------------------------------------------------------------------------- */

static char *cache_tokens[3];

static jwt_claims_t verified(int which, int64_t exp_in)
{
    char payload[1200];
    snprintf(payload, sizeof payload,
             "{\"n\":%d,\"iss\":\"" ISSUER "\",\"aud\":\"api\",\"exp\":%lld,\"pad\":\"%01000d\"}", which,
             (long long)(NOW + exp_in), 0);
    free(cache_tokens[which]);
    cache_tokens[which] = token("HS256", NULL, payload);
    jwt_policy_t p = policy();
    p.leeway_s = 5;
    jwt_claims_t c;
    assert_int_equal(verify_at(&p, cache_tokens[which], strlen(cache_tokens[which]), NOW, &c), JWT_OK);
    return c;
}

static const jwt_claims_t *cached(jwt_cache_t *cache, int which, int64_t now)
{
    return jwt_cache_get(cache, cache_tokens[which], strlen(cache_tokens[which]), now);
}

static const jwt_claims_t *put(jwt_cache_t *cache, int which, jwt_claims_t *c)
{
    return jwt_cache_put(cache, cache_tokens[which], strlen(cache_tokens[which]), c);
}

static void cache_hit_miss_expiry(void **state)
{
    (void)state;
    jwt_cache_t *cache = jwt_cache_new(10, 1 << 20);
    assert_non_null(cache);
    jwt_claims_t c = verified(0, 100);
    char *expected = strndup(c.json, c.len);
    assert_null(cached(cache, 0, NOW));
    const jwt_claims_t *in = put(cache, 0, &c);
    assert_non_null(in);
    assert_null(c.json); /* taken */
    assert_string_equal(in->json, expected);
    assert_int_equal(in->valid_until, NOW + 105);
    const jwt_claims_t *hit = cached(cache, 0, NOW + 104);
    assert_ptr_equal(hit, in);
    assert_string_equal(hit->json, expected);
    assert_int_equal(jwt_cache_count(cache), 1);
    /* another token (even one differing by a byte) misses */
    char *other = strdup(cache_tokens[0]);
    other[strlen(other) - 1] ^= 1;
    assert_null(jwt_cache_get(cache, other, strlen(other), NOW));
    assert_null(jwt_cache_get(cache, cache_tokens[0], strlen(cache_tokens[0]) - 1, NOW));
    free(other);
    /* expiry: exp + leeway passed */
    assert_null(cached(cache, 0, NOW + 105));
    assert_int_equal(jwt_cache_count(cache), 0);
    assert_null(cached(cache, 0, NOW));
    /* a second put of the same token replaces the entry */
    c = verified(0, 100);
    assert_non_null(put(cache, 0, &c));
    c = verified(0, 100);
    assert_non_null(put(cache, 0, &c));
    assert_int_equal(jwt_cache_count(cache), 1);
    /* clear */
    jwt_cache_clear(cache);
    assert_int_equal(jwt_cache_count(cache), 0);
    assert_null(cached(cache, 0, NOW));
    c = verified(1, 100);
    assert_non_null(put(cache, 1, &c));
    jwt_cache_free(cache); /* frees the entry left */
    free(expected);
    assert_null(jwt_cache_new(0, 100));
    jwt_cache_free(NULL);
}

static void cache_eviction(void **state)
{
    (void)state;
    jwt_cache_t *cache = jwt_cache_new(2, 1 << 20);
    jwt_claims_t c0 = verified(0, 100), c1 = verified(1, 100), c2 = verified(2, 100);
    assert_non_null(put(cache, 0, &c0));
    assert_non_null(put(cache, 1, &c1));
    assert_non_null(cached(cache, 0, NOW)); /* 0 is now the most recently used */
    assert_non_null(put(cache, 2, &c2));    /* evicts 1 */
    assert_int_equal(jwt_cache_count(cache), 2);
    assert_null(cached(cache, 1, NOW));
    assert_non_null(cached(cache, 0, NOW));
    assert_non_null(cached(cache, 2, NOW));
    jwt_cache_free(cache);

    /* the byte budget: room for two entries of these claims (over 1000
     * bytes each) and their bookkeeping (less than 300 bytes), not three */
    jwt_claims_t probe = verified(0, 100);
    size_t budget = 2 * (probe.len + 300);
    assert_true(budget < 3 * probe.len);
    jwt_claims_free(&probe);
    cache = jwt_cache_new(100, budget);
    c0 = verified(0, 100);
    c1 = verified(1, 100);
    c2 = verified(2, 100);
    assert_non_null(put(cache, 0, &c0));
    assert_non_null(put(cache, 1, &c1));
    assert_non_null(put(cache, 2, &c2));
    assert_int_equal(jwt_cache_count(cache), 2);
    assert_null(cached(cache, 0, NOW));
    jwt_cache_free(cache);

    /* an entry larger than the budget is not taken */
    cache = jwt_cache_new(100, 16);
    c0 = verified(0, 100);
    assert_null(put(cache, 0, &c0));
    assert_non_null(c0.json); /* still ours */
    assert_int_equal(jwt_cache_count(cache), 0);
    jwt_claims_free(&c0);
    jwt_cache_free(cache);
    for (int i = 0; i < 3; i++) {
        free(cache_tokens[i]);
        cache_tokens[i] = NULL;
    }
}

/* Many tokens through a small cache: the bound holds and every hit is the
 * right token's claims. */
static void cache_churn(void **state)
{
    (void)state;
    jwt_cache_t *cache = jwt_cache_new(7, 1 << 20);
    char tok[64];
    for (int i = 0; i < 200; i++) {
        snprintf(tok, sizeof tok, "token-%d", i % 23);
        const jwt_claims_t *hit = jwt_cache_get(cache, tok, strlen(tok), NOW);
        if (hit) {
            assert_string_equal(hit->json, tok);
            continue;
        }
        jwt_claims_t c = { strdup(tok), strlen(tok), NOW + 10, NOW + 10 };
        assert_non_null(jwt_cache_put(cache, tok, strlen(tok), &c));
        assert_true(jwt_cache_count(cache) <= 7);
    }
    jwt_cache_free(cache);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(algorithm_names),
        cmocka_unit_test(jwks_parsed),
        cmocka_unit_test(valid_token_of_each_algorithm),
        cmocka_unit_test(keys_tried_without_kid),
        cmocka_unit_test(expiry),
        cmocka_unit_test(expiry_is_required_and_numeric),
        cmocka_unit_test(not_before),
        cmocka_unit_test(issuer),
        cmocka_unit_test(audience),
        cmocka_unit_test(bad_signature),
        cmocka_unit_test(es256_der_signature_refused),
        cmocka_unit_test(alg_none_never_accepted),
        cmocka_unit_test(alg_not_allowed),
        cmocka_unit_test(hs256_with_public_key_as_secret),
        cmocka_unit_test(key_selection),
        cmocka_unit_test(malformed_tokens),
        cmocka_unit_test(malformed_header_and_payload),
        cmocka_unit_test(size_bound),
        cmocka_unit_test(payload_kept_byte_exact),
        cmocka_unit_test(jwks_errors_name_the_key),
        cmocka_unit_test(jwks_skips_other_keys),
        cmocka_unit_test(cache_hit_miss_expiry),
        cmocka_unit_test(cache_eviction),
        cmocka_unit_test(cache_churn),
    };
    return cmocka_run_group_tests_name("jwt", tests, setup, teardown);
}
