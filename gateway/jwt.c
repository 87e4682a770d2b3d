#include "gateway/jwt.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json_scan.h"

/* ---- algorithms and results ---------------------------------------------- */

static const struct {
    jwt_alg_t alg;
    const char *name;
} alg_names[] = {
    { JWT_ALG_RS256, "RS256" },
    { JWT_ALG_ES256, "ES256" },
    { JWT_ALG_EDDSA, "EdDSA" },
    { JWT_ALG_HS256, "HS256" },
};

#define ALG_COUNT (sizeof alg_names / sizeof alg_names[0])

int jwt_alg_parse(const char *name, size_t n, jwt_alg_t *out)
{
    for (size_t i = 0; i < ALG_COUNT; i++) {
        if (strlen(alg_names[i].name) == n && memcmp(alg_names[i].name, name, n) == 0) {
            *out = alg_names[i].alg;
            return 0;
        }
    }
    return -1;
}

const char *jwt_alg_name(jwt_alg_t alg)
{
    for (size_t i = 0; i < ALG_COUNT; i++)
        if (alg_names[i].alg == alg)
            return alg_names[i].name;
    return "?";
}

const char *jwt_result_label(jwt_result_t r)
{
    switch (r) {
    case JWT_OK: return "ok";
    case JWT_MALFORMED: return "malformed";
    case JWT_ALG_NOT_ALLOWED: return "algorithm";
    case JWT_UNKNOWN_KEY: return "unknown_key";
    case JWT_BAD_SIGNATURE: return "signature";
    case JWT_EXPIRED: return "expired";
    case JWT_NOT_YET_VALID: return "not_yet_valid";
    case JWT_NO_EXP: return "no_exp";
    case JWT_WRONG_ISSUER: return "issuer";
    case JWT_WRONG_AUDIENCE: return "audience";
    case JWT_NOMEM: return "no_memory";
    }
    return "unknown";
}

/* ---- base64url (RFC 4648 §5), strict ----------------------------------------- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Bytes that n characters of base64url decode to (at most). */
static size_t b64url_decoded_max(size_t n)
{
    return n / 4 * 3 + 2;
}

/*
 * Decodes in[0..n) into out (room for b64url_decoded_max(n) bytes) and
 * returns the decoded length, or -1 unless the text is canonical unpadded
 * base64url: only the 64 characters, a length that is not 1 mod 4, and the
 * unused bits of the last character zero (so each byte string has exactly
 * one encoding).
 */
static long b64url_decode(const char *in, size_t n, unsigned char *out)
{
    if (n % 4 == 1)
        return -1;
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return acc == 0 ? (long)o : -1;
}

/* ---- JWKS ------------------------------------------------------------------- */

typedef struct jwt_key {
    jwt_alg_t alg;       /* the only algorithm it verifies */
    char *kid;           /* NULL when the key has none */
    size_t kid_len;
    EVP_PKEY *pkey;
    size_t sig_len;      /* the JWS signature size it takes */
} jwt_key_t;

struct jwt_keys {
    jwt_key_t *keys;
    size_t count;
    size_t skipped;
};

#define STR_(x) #x
#define STR(x) STR_(x)
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192
#define JWK_MAX_MEMBER 2048 /* decoded bytes of n; more than any accepted key */

/* Where a key's error goes: "keys[i].member: what". */
typedef struct jwk_err {
    char *out;
    size_t outlen;
    size_t index;
} jwk_err_t;

static void jwk_fail(const jwk_err_t *e, const char *member, const char *what)
{
    if (e->out && e->outlen)
        snprintf(e->out, e->outlen, "keys[%zu]%s%s: %s", e->index, member ? "." : "",
                 member ? member : "", what);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* An optional string member: 1 present (with *s, *len), 0 absent, -1 not
 * a string (error written). */
static int jwk_string(json_t *key, const char *member, const jwk_err_t *e, const char **s,
                      size_t *len)
{
    json_t *v = json_object_get(key, member);
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        jwk_fail(e, member, "not a string");
        return -1;
    }
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 1;
}

static int string_is(const char *s, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* A required base64url member decoded into out (cap bytes): its length, or
 * -1 with the error written. */
static long jwk_bytes(json_t *key, const char *member, const jwk_err_t *e, unsigned char *out,
                      size_t cap)
{
    const char *s;
    size_t len;
    int rc = jwk_string(key, member, e, &s, &len);
    if (rc == 0)
        jwk_fail(e, member, "missing");
    if (rc <= 0)
        return -1;
    if (b64url_decoded_max(len) > cap) {
        jwk_fail(e, member, "too long");
        return -1;
    }
    long got = b64url_decode(s, len, out);
    if (got < 0)
        jwk_fail(e, member, "not valid base64url");
    return got;
}

/* An EVP_PKEY of type `type` made from params (public key only). */
static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

static EVP_PKEY *rsa_pkey(const BIGNUM *n, const BIGNUM *e)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1
        && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1
        && (params = OSSL_PARAM_BLD_to_param(bld)) != NULL)
        pkey = pkey_from_params("RSA", params);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

/* The RSA key's modulus and exponent checked; 0 or -1 with the error written. */
static int rsa_check(const BIGNUM *n, const BIGNUM *e, const jwk_err_t *err)
{
    int bits = BN_num_bits(n);
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS || !BN_is_odd(n)) {
        jwk_fail(err, "n", "not an RSA modulus of 2048 to 8192 bits");
        return -1;
    }
    if (BN_num_bits(e) > 64 || BN_num_bits(e) < 2 || !BN_is_odd(e)) {
        jwk_fail(err, "e", "not an RSA exponent (odd, 3 to 2^64-1)");
        return -1;
    }
    return 0;
}

static int jwk_rsa(json_t *key, const jwk_err_t *err, jwt_key_t *out)
{
    unsigned char nb[JWK_MAX_MEMBER], eb[16];
    long nlen = jwk_bytes(key, "n", err, nb, sizeof nb);
    long elen = nlen < 0 ? -1 : jwk_bytes(key, "e", err, eb, sizeof eb);
    if (elen < 0)
        return -1;
    BIGNUM *n = BN_bin2bn(nb, (int)nlen, NULL), *e = BN_bin2bn(eb, (int)elen, NULL);
    int rc = -1;
    if (!n || !e)
        jwk_fail(err, NULL, "out of memory");
    else if (rsa_check(n, e, err) == 0) {
        out->pkey = rsa_pkey(n, e);
        if (out->pkey) {
            out->sig_len = (size_t)EVP_PKEY_get_size(out->pkey);
            rc = 0;
        } else {
            jwk_fail(err, NULL, "OpenSSL refused the RSA key");
        }
    }
    BN_free(n);
    BN_free(e);
    return rc;
}

static EVP_PKEY *p256_pkey(const unsigned char point[65])
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) == 1
        && OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 65) == 1
        && (params = OSSL_PARAM_BLD_to_param(bld)) != NULL)
        pkey = pkey_from_params("EC", params);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

/* 1 when OpenSSL's full public-key check passes (point on the curve, not
 * the point at infinity, right order). */
static int pkey_public_ok(EVP_PKEY *pkey)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = ctx && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/* A 32-byte base64url member: 0, or -1 with the error written. */
static int jwk_bytes32(json_t *key, const char *member, const jwk_err_t *err, unsigned char out[32])
{
    unsigned char tmp[64];
    long len = jwk_bytes(key, member, err, tmp, sizeof tmp);
    if (len >= 0 && len != 32)
        jwk_fail(err, member, "not 32 bytes");
    if (len != 32)
        return -1;
    memcpy(out, tmp, 32);
    return 0;
}

static int jwk_ec(json_t *key, const jwk_err_t *err, jwt_key_t *out)
{
    unsigned char point[65];
    point[0] = 0x04; /* uncompressed: 04 || x || y */
    if (jwk_bytes32(key, "x", err, point + 1) < 0 || jwk_bytes32(key, "y", err, point + 33) < 0)
        return -1;
    out->pkey = p256_pkey(point);
    if (!out->pkey || !pkey_public_ok(out->pkey)) {
        jwk_fail(err, NULL, "x, y: not a point of the curve P-256");
        return -1;
    }
    out->sig_len = 64;
    return 0;
}

static int jwk_ed25519(json_t *key, const jwk_err_t *err, jwt_key_t *out)
{
    unsigned char x[32];
    if (jwk_bytes32(key, "x", err, x) < 0)
        return -1;
    out->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, 32);
    if (!out->pkey) {
        jwk_fail(err, NULL, "OpenSSL refused the Ed25519 key");
        return -1;
    }
    out->sig_len = 64;
    return 0;
}

/* The algorithm a key's kty (and crv) gives, 0 for a kind we skip, -1 on
 * error. */
static int jwk_kind(json_t *key, const jwk_err_t *err, jwt_alg_t *alg)
{
    const char *kty, *crv = NULL;
    size_t kty_len, crv_len = 0;
    int rc = jwk_string(key, "kty", err, &kty, &kty_len);
    if (rc == 0)
        jwk_fail(err, "kty", "missing");
    if (rc <= 0)
        return -1;
    int is_ec = string_is(kty, kty_len, "EC"), is_okp = string_is(kty, kty_len, "OKP");
    if (string_is(kty, kty_len, "RSA")) {
        *alg = JWT_ALG_RS256;
        return 1;
    }
    if (!is_ec && !is_okp)
        return 0;
    rc = jwk_string(key, "crv", err, &crv, &crv_len);
    if (rc == 0)
        jwk_fail(err, "crv", "missing");
    if (rc <= 0)
        return -1;
    if (is_ec && string_is(crv, crv_len, "P-256"))
        *alg = JWT_ALG_ES256;
    else if (is_okp && string_is(crv, crv_len, "Ed25519"))
        *alg = JWT_ALG_EDDSA;
    else
        return 0;
    return 1;
}

/* 1 when the key's use and alg let it sign alg, 0 to skip, -1 on error. */
static int jwk_usable(json_t *key, const jwk_err_t *err, jwt_alg_t alg)
{
    const char *s;
    size_t len;
    int rc = jwk_string(key, "use", err, &s, &len);
    if (rc < 0)
        return -1;
    if (rc > 0 && !string_is(s, len, "sig"))
        return 0;
    rc = jwk_string(key, "alg", err, &s, &len);
    if (rc < 0)
        return -1;
    return rc == 0 || string_is(s, len, jwt_alg_name(alg));
}

static int jwk_kid(json_t *key, const jwk_err_t *err, jwt_key_t *out)
{
    const char *s;
    size_t len;
    int rc = jwk_string(key, "kid", err, &s, &len);
    if (rc <= 0)
        return rc;
    out->kid = malloc(len ? len : 1);
    if (!out->kid) {
        jwk_fail(err, NULL, "out of memory");
        return -1;
    }
    memcpy(out->kid, s, len);
    out->kid_len = len;
    return 0;
}

/* Reads keys[i] into *out: 1 a key, 0 skipped, -1 error (written). */
static int jwk_parse(json_t *key, const jwk_err_t *err, jwt_key_t *out)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(key)) {
        jwk_fail(err, NULL, "not an object");
        return -1;
    }
    int rc = jwk_kind(key, err, &out->alg);
    if (rc == 1)
        rc = jwk_usable(key, err, out->alg);
    if (rc <= 0)
        return rc;
    if (jwk_kid(key, err, out) < 0)
        return -1;
    switch (out->alg) {
    case JWT_ALG_RS256: rc = jwk_rsa(key, err, out); break;
    case JWT_ALG_ES256: rc = jwk_ec(key, err, out); break;
    default: rc = jwk_ed25519(key, err, out); break;
    }
    if (rc < 0) {
        free(out->kid);
        EVP_PKEY_free(out->pkey);
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 1;
}

static json_t *jwks_array(const char *json, size_t n, char *err, size_t errlen)
{
    if (n > JWT_MAX_JWKS) {
        set_err(err, errlen, "JWKS larger than %d bytes", JWT_MAX_JWKS);
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(n ? json : "", n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        set_err(err, errlen, "not valid JSON: %s at line %d", jerr.text, jerr.line);
        return NULL;
    }
    json_t *keys = json_object_get(root, "keys");
    const char *problem = !json_is_object(root) ? "not a JSON object"
                          : !keys               ? "keys: missing"
                          : !json_is_array(keys) ? "keys: not an array"
                          : json_array_size(keys) > JWT_MAX_KEYS ? "keys: more than " STR(JWT_MAX_KEYS) " keys"
                                                               : NULL;
    if (problem) {
        set_err(err, errlen, "%s", problem);
        keys = NULL;
    } else {
        json_incref(keys); /* outlives root */
    }
    json_decref(root);
    return keys;
}

jwt_keys_t *jwt_keys_parse(const char *json, size_t n, char *err, size_t errlen)
{
    set_err(err, errlen, "%s", "");
    json_t *array = jwks_array(json, n, err, errlen);
    if (!array)
        return NULL;
    jwt_keys_t *keys = calloc(1, sizeof *keys);
    size_t total = json_array_size(array);
    if (keys && total)
        keys->keys = calloc(total, sizeof *keys->keys);
    if (!keys || (total && !keys->keys)) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < total; i++) {
        jwk_err_t e = { err, errlen, i };
        int rc = jwk_parse(json_array_get(array, i), &e, &keys->keys[keys->count]);
        if (rc < 0)
            goto fail;
        if (rc == 0)
            keys->skipped++;
        else
            keys->count++;
    }
    json_decref(array);
    ERR_clear_error();
    return keys;
fail:
    json_decref(array);
    jwt_keys_free(keys);
    ERR_clear_error();
    return NULL;
}

void jwt_keys_free(jwt_keys_t *keys)
{
    if (!keys)
        return;
    for (size_t i = 0; i < keys->count; i++) {
        EVP_PKEY_free(keys->keys[i].pkey);
        free(keys->keys[i].kid);
    }
    free(keys->keys);
    free(keys);
}

size_t jwt_keys_count(const jwt_keys_t *keys)
{
    return keys ? keys->count : 0;
}

size_t jwt_keys_skipped(const jwt_keys_t *keys)
{
    return keys ? keys->skipped : 0;
}

/* ---- signatures ---------------------------------------------------------------- */

/* Appends the DER INTEGER of the unsigned big-endian v[0..32). */
static size_t der_integer(const unsigned char *v, unsigned char *out)
{
    size_t n = 32;
    while (n > 1 && v[0] == 0) {
        v++;
        n--;
    }
    size_t pad = v[0] & 0x80 ? 1 : 0;
    out[0] = 0x02;
    out[1] = (unsigned char)(n + pad);
    out[2] = 0;
    memcpy(out + 2 + pad, v, n);
    return 2 + pad + n;
}

/* The JWS ES256 signature r||s as the DER ECDSA-Sig-Value OpenSSL takes
 * (SEQUENCE of two INTEGERs, at most 72 bytes); returns its length. */
static size_t ecdsa_raw_to_der(const unsigned char raw[64], unsigned char der[72])
{
    size_t len = der_integer(raw, der + 2);
    len += der_integer(raw + 32, der + 2 + len);
    der[0] = 0x30;
    der[1] = (unsigned char)len;
    return len + 2;
}

/* 1 verified, 0 not, -1 out of memory. */
static int key_verify(const jwt_key_t *k, const unsigned char *msg, size_t msglen,
                      const unsigned char *sig, size_t siglen)
{
    unsigned char der[72];
    if (siglen != k->sig_len)
        return 0;
    if (k->alg == JWT_ALG_ES256) {
        siglen = ecdsa_raw_to_der(sig, der);
        sig = der;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return -1;
    EVP_PKEY_CTX *pctx = NULL;
    const EVP_MD *digest = k->alg == JWT_ALG_EDDSA ? NULL : EVP_sha256();
    int ok = EVP_DigestVerifyInit(md, &pctx, digest, NULL, k->pkey) == 1
             && (k->alg != JWT_ALG_RS256 || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1)
             && EVP_DigestVerify(md, sig, siglen, msg, msglen) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static int hs256_verify(const jwt_policy_t *p, const unsigned char *msg, size_t msglen,
                        const unsigned char *sig, size_t siglen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    if (!HMAC(EVP_sha256(), p->hs256_secret, (int)p->hs256_secret_len, msg, msglen, mac, &maclen))
        return -1;
    int ok = siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    return ok;
}

/* ---- verification ------------------------------------------------------------ */

typedef struct verify {
    const jwt_policy_t *policy;
    const char *token;
    size_t n;
    size_t dot1, dot2;      /* the two '.' */
    unsigned char *scratch; /* decoded header, then signature */
    json_t *header;
    jwt_alg_t alg;
    const char *kid;        /* in header; NULL when absent */
    size_t kid_len;
    const char *why;        /* static reason of the failure */
} verify_t;

static jwt_result_t fail(verify_t *v, jwt_result_t r, const char *why)
{
    v->why = why;
    return r;
}

/* 1 when p[0..n) is what b64url_decode() accepts, without decoding. */
static int b64url_valid(const char *p, size_t n)
{
    static const int unused_mask[4] = { 0, 0, 0x0F, 0x03 }; /* by n % 4 */
    if (n % 4 == 1)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (b64url_value((unsigned char)p[i]) < 0)
            return 0;
    return n == 0 || (b64url_value((unsigned char)p[n - 1]) & unused_mask[n % 4]) == 0;
}

/* Finds the three parts; each must be canonical base64url. */
static jwt_result_t split(verify_t *v)
{
    if (v->n > JWT_MAX_TOKEN)
        return fail(v, JWT_MALFORMED, "token too long");
    if (v->n == 0)
        return fail(v, JWT_MALFORMED, "not three base64url parts");
    const char *d1 = memchr(v->token, '.', v->n);
    const char *d2 = d1 ? memchr(d1 + 1, '.', v->n - (size_t)(d1 + 1 - v->token)) : NULL;
    if (!d2)
        return fail(v, JWT_MALFORMED, "not three base64url parts");
    v->dot1 = (size_t)(d1 - v->token);
    v->dot2 = (size_t)(d2 - v->token);
    if (!b64url_valid(v->token, v->dot1) || !b64url_valid(d1 + 1, v->dot2 - v->dot1 - 1)
        || !b64url_valid(d2 + 1, v->n - v->dot2 - 1))
        return fail(v, JWT_MALFORMED, "not three base64url parts");
    v->scratch = malloc(b64url_decoded_max(v->n));
    if (!v->scratch)
        return fail(v, JWT_NOMEM, "out of memory");
    return JWT_OK;
}

/* The header's alg: known, not none, allowed. */
static jwt_result_t header_alg(verify_t *v, json_t *alg)
{
    const char *name = json_string_value(alg);
    size_t len = json_string_length(alg);
    if (string_is(name, len, "none"))
        return fail(v, JWT_ALG_NOT_ALLOWED, "algorithm none is never accepted");
    if (jwt_alg_parse(name, len, &v->alg) < 0)
        return fail(v, JWT_ALG_NOT_ALLOWED, "unsupported algorithm");
    if (!(v->policy->algorithms & (unsigned)v->alg))
        return fail(v, JWT_ALG_NOT_ALLOWED, "algorithm not allowed");
    return JWT_OK;
}

static jwt_result_t read_header(verify_t *v)
{
    long len = b64url_decode(v->token, v->dot1, v->scratch);
    if (len < 0)
        return fail(v, JWT_MALFORMED, "header is not base64url");
    v->header = json_loadb((const char *)v->scratch, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(v->header))
        return fail(v, JWT_MALFORMED, "header is not a JSON object");
    json_t *alg = json_object_get(v->header, "alg");
    json_t *kid = json_object_get(v->header, "kid");
    if (!json_is_string(alg))
        return fail(v, JWT_MALFORMED, "header has no alg string");
    if (json_object_get(v->header, "crit"))
        return fail(v, JWT_MALFORMED, "crit header parameter not supported");
    if (kid && !json_is_string(kid))
        return fail(v, JWT_MALFORMED, "kid is not a string");
    if (kid) {
        v->kid = json_string_value(kid);
        v->kid_len = json_string_length(kid);
    }
    return header_alg(v, alg);
}

static int kid_matches(const verify_t *v, const jwt_key_t *k)
{
    return k->kid && k->kid_len == v->kid_len && memcmp(k->kid, v->kid, v->kid_len) == 0;
}

/* Tries the JWKS keys fit for v->alg (and v->kid) on the signature. */
static jwt_result_t jwks_verify(verify_t *v, const unsigned char *sig, size_t siglen)
{
    const jwt_keys_t *keys = v->policy->keys;
    size_t with_kid = 0, tried = 0;
    for (size_t i = 0; keys && i < keys->count && tried < JWT_MAX_KEYS_TRIED; i++) {
        const jwt_key_t *k = &keys->keys[i];
        if (v->kid && !kid_matches(v, k))
            continue;
        with_kid++;
        if (k->alg != v->alg)
            continue;
        tried++;
        int ok = key_verify(k, (const unsigned char *)v->token, v->dot2, sig, siglen);
        if (ok < 0)
            return fail(v, JWT_NOMEM, "out of memory");
        if (ok)
            return JWT_OK;
    }
    if (tried)
        return fail(v, JWT_BAD_SIGNATURE, "invalid signature");
    if (v->kid && !with_kid)
        return fail(v, JWT_UNKNOWN_KEY, "unknown kid");
    if (v->kid)
        return fail(v, JWT_UNKNOWN_KEY, "the key of this kid is not for this algorithm");
    return fail(v, JWT_UNKNOWN_KEY, "no key for this algorithm");
}

static jwt_result_t check_signature(verify_t *v)
{
    long siglen = b64url_decode(v->token + v->dot2 + 1, v->n - v->dot2 - 1, v->scratch);
    if (siglen < 0)
        return fail(v, JWT_MALFORMED, "signature is not base64url");
    if (v->alg != JWT_ALG_HS256)
        return jwks_verify(v, v->scratch, (size_t)siglen);
    if (!v->policy->hs256_secret || !v->policy->hs256_secret_len
        || v->policy->hs256_secret_len > INT_MAX)
        return fail(v, JWT_UNKNOWN_KEY, "no HS256 secret configured");
    int ok = hs256_verify(v->policy, (const unsigned char *)v->token, v->dot2, v->scratch,
                          (size_t)siglen);
    if (ok < 0)
        return fail(v, JWT_NOMEM, "out of memory");
    return ok ? JWT_OK : fail(v, JWT_BAD_SIGNATURE, "invalid signature");
}

/* ---- claims --------------------------------------------------------------------- */

#define TIME_LIMIT INT64_C(1000000000000000000) /* 1e18 s: saturation of times */

static int64_t clamp_time(int64_t t)
{
    return t > TIME_LIMIT ? TIME_LIMIT : t < -TIME_LIMIT ? -TIME_LIMIT : t;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/*
 * The exact ceiling of a valid JSON number, saturated at +-1e18: the digits
 * are read as 0.d1d2d3... * 10^point (d1 the first non-zero digit), so no
 * floating point and no locale is involved.
 */
static int64_t number_ceil(span_t v)
{
    const char *p = v.p, *end = v.p + v.n;
    char digits[24];
    size_t nd = 0;
    int neg = 0, nonzero = 0, rest_nonzero = 0;
    long point = 0, exp = 0, exp_sign = 1;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    for (int frac = 0; p < end && (is_digit(*p) || (*p == '.' && !frac)); p++) {
        if (*p == '.') {
            frac = 1;
            continue;
        }
        if (!nonzero && *p == '0') {
            point -= frac; /* a leading zero of the fraction moves the point */
            continue;
        }
        nonzero = 1;
        if (nd < sizeof digits)
            digits[nd++] = *p;
        else if (*p != '0')
            rest_nonzero = 1;
        point += !frac;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            exp_sign = *p++ == '-' ? -1 : 1;
        for (; p < end && is_digit(*p); p++)
            if (exp < 100000)
                exp = exp * 10 + (*p - '0');
    }
    if (!nonzero)
        return 0;
    point += exp_sign * exp;
    if (point > 18)
        return neg ? -TIME_LIMIT : TIME_LIMIT;
    int64_t whole = 0;
    for (long i = 0; i < point; i++)
        whole = whole * 10 + ((size_t)i < nd ? digits[i] - '0' : 0);
    for (size_t i = point > 0 ? (size_t)point : 0; i < nd; i++)
        rest_nonzero |= digits[i] != '0';
    return neg ? -whole : clamp_time(whole + rest_nonzero);
}

/* The ceiling of the number member `name`: 1 present, 0 absent, -1 not a
 * number. */
static int time_claim(span_t claims, const char *name, int64_t *out)
{
    span_t v;
    if (!jscan_member(claims, name, &v))
        return 0;
    if (jscan_type_of(v) != JSCAN_NUMBER)
        return -1;
    *out = number_ceil(v);
    return 1;
}

static jwt_result_t check_times(verify_t *v, span_t claims, int64_t now, jwt_claims_t *out)
{
    int64_t leeway = v->policy->leeway_s < 0 ? 0 : clamp_time(v->policy->leeway_s);
    int64_t exp = 0, nbf = 0;
    now = clamp_time(now);
    int rc = time_claim(claims, "exp", &exp);
    if (rc == 0)
        return fail(v, JWT_NO_EXP, "token has no exp");
    if (rc < 0)
        return fail(v, JWT_MALFORMED, "exp is not a number");
    out->exp = exp;
    out->valid_until = exp + leeway;
    if (now >= out->valid_until)
        return fail(v, JWT_EXPIRED, "token expired");
    rc = time_claim(claims, "nbf", &nbf);
    if (rc < 0)
        return fail(v, JWT_MALFORMED, "nbf is not a number");
    if (rc > 0 && now + leeway < nbf)
        return fail(v, JWT_NOT_YET_VALID, "token not valid yet");
    return JWT_OK;
}

static jwt_result_t check_issuer(verify_t *v, span_t claims)
{
    const char *issuer = v->policy->issuer;
    span_t iss;
    if (!issuer)
        return JWT_OK;
    if (!jscan_member(claims, "iss", &iss))
        return fail(v, JWT_WRONG_ISSUER, "token has no iss");
    if (jscan_type_of(iss) != JSCAN_STRING)
        return fail(v, JWT_MALFORMED, "iss is not a string");
    if (!jscan_string_eq(iss, issuer, strlen(issuer)))
        return fail(v, JWT_WRONG_ISSUER, "wrong issuer");
    return JWT_OK;
}

static int audience_known(const jwt_policy_t *p, span_t token)
{
    for (size_t i = 0; i < p->audience_count; i++)
        if (p->audiences[i] && jscan_string_eq(token, p->audiences[i], strlen(p->audiences[i])))
            return 1;
    return 0;
}

/* Walks the valid array `aud`: 1 one of its strings is known, 0 none is,
 * -1 it holds something else than strings. */
static int audience_array_known(const jwt_policy_t *p, span_t aud)
{
    size_t pos = 1;
    int known = 0;
    span_t item;
    while (jscan_value(aud.p, aud.n, &pos, &item, NULL) == 0) {
        if (jscan_type_of(item) != JSCAN_STRING)
            return -1;
        known |= audience_known(p, item);
        while (pos < aud.n && aud.p[pos] != ',' && aud.p[pos] != ']')
            pos++;
        pos++; /* the ',' (or the ']', after which the next scan fails) */
    }
    return known;
}

static jwt_result_t check_audience(verify_t *v, span_t claims)
{
    const jwt_policy_t *p = v->policy;
    span_t aud;
    if (!p->audience_count)
        return JWT_OK;
    if (!jscan_member(claims, "aud", &aud))
        return fail(v, JWT_WRONG_AUDIENCE, "token has no aud");
    int known;
    if (jscan_type_of(aud) == JSCAN_STRING)
        known = audience_known(p, aud);
    else if (jscan_type_of(aud) == JSCAN_ARRAY)
        known = audience_array_known(p, aud);
    else
        known = -1;
    if (known < 0)
        return fail(v, JWT_MALFORMED, "aud is not a string or an array of strings");
    return known ? JWT_OK : fail(v, JWT_WRONG_AUDIENCE, "wrong audience");
}

/* Decodes and checks the payload; on success hands it to *out. */
static jwt_result_t read_claims(verify_t *v, int64_t now, jwt_claims_t *out)
{
    size_t b64len = v->dot2 - v->dot1 - 1;
    char *json = malloc(b64url_decoded_max(b64len) + 1);
    if (!json)
        return fail(v, JWT_NOMEM, "out of memory");
    long len = b64url_decode(v->token + v->dot1 + 1, b64len, (unsigned char *)json);
    span_t claims;
    jwt_result_t r = JWT_OK;
    if (len < 0)
        r = fail(v, JWT_MALFORMED, "payload is not base64url");
    else if (jscan_document(json, (size_t)len, &claims, NULL) < 0
             || jscan_type_of(claims) != JSCAN_OBJECT)
        r = fail(v, JWT_MALFORMED, "claims are not a JSON object");
    if (r == JWT_OK)
        r = check_times(v, claims, now, out);
    if (r == JWT_OK)
        r = check_issuer(v, claims);
    if (r == JWT_OK)
        r = check_audience(v, claims);
    if (r != JWT_OK) {
        free(json);
        return r;
    }
    json[len] = '\0';
    out->json = json;
    out->len = (size_t)len;
    return JWT_OK;
}

static void write_why(char *why, size_t whylen, const char *text)
{
    if (why && whylen)
        snprintf(why, whylen, "%s", text);
}

jwt_result_t jwt_verify(const jwt_policy_t *policy, const char *token, size_t n, int64_t now_s,
                        jwt_claims_t *out, char *why, size_t whylen)
{
    verify_t v = { .policy = policy, .token = token, .n = n };
    jwt_claims_t claims = { NULL, 0, 0, 0 };
    jwt_result_t r = split(&v);
    if (r == JWT_OK)
        r = read_header(&v);
    if (r == JWT_OK)
        r = check_signature(&v);
    if (r == JWT_OK)
        r = read_claims(&v, now_s, &claims);
    json_decref(v.header);
    free(v.scratch);
    ERR_clear_error();
    if (r != JWT_OK)
        claims = (jwt_claims_t){ NULL, 0, 0, 0 };
    *out = claims;
    write_why(why, whylen, r == JWT_OK ? "valid" : v.why);
    return r;
}

void jwt_claims_free(jwt_claims_t *claims)
{
    if (!claims)
        return;
    free(claims->json);
    *claims = (jwt_claims_t){ NULL, 0, 0, 0 };
}

/* ---- cache ----------------------------------------------------------------------- */

#define DIGEST_LEN 32
#define CACHE_MAX_BUCKETS (1u << 16)

typedef struct cache_entry cache_entry_t;
struct cache_entry {
    unsigned char digest[DIGEST_LEN]; /* SHA-256 of the token text */
    jwt_claims_t claims;
    size_t bytes;                     /* what it counts against max_bytes */
    cache_entry_t *newer, *older;     /* recency list */
    cache_entry_t *next;              /* hash chain */
};

struct jwt_cache {
    cache_entry_t **buckets;
    size_t mask;                      /* bucket count - 1 (a power of two) */
    cache_entry_t *newest, *oldest;
    size_t count, max_entries;
    size_t bytes, max_bytes;
};

jwt_cache_t *jwt_cache_new(size_t max_entries, size_t max_bytes)
{
    if (max_entries == 0)
        return NULL;
    jwt_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    size_t nb = 16;
    while (nb < max_entries && nb < CACHE_MAX_BUCKETS)
        nb *= 2;
    c->buckets = calloc(nb, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    c->mask = nb - 1;
    c->max_entries = max_entries;
    c->max_bytes = max_bytes;
    return c;
}

static int token_digest(const char *token, size_t n, unsigned char digest[DIGEST_LEN])
{
    unsigned len = 0;
    int ok = EVP_Digest(token, n, digest, &len, EVP_sha256(), NULL) == 1 && len == DIGEST_LEN;
    ERR_clear_error();
    return ok ? 0 : -1;
}

static cache_entry_t **bucket_of(const jwt_cache_t *c, const unsigned char *digest)
{
    size_t h;
    memcpy(&h, digest, sizeof h);
    return &c->buckets[h & c->mask];
}

/* The link (in its bucket) that points at the entry of digest, or at NULL. */
static cache_entry_t **find_link(const jwt_cache_t *c, const unsigned char *digest)
{
    cache_entry_t **link = bucket_of(c, digest);
    while (*link && memcmp((*link)->digest, digest, DIGEST_LEN) != 0)
        link = &(*link)->next;
    return link;
}

static void recency_unlink(jwt_cache_t *c, cache_entry_t *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void recency_push(jwt_cache_t *c, cache_entry_t *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest)
        c->newest->newer = e;
    else
        c->oldest = e;
    c->newest = e;
}

static void drop(jwt_cache_t *c, cache_entry_t *e)
{
    cache_entry_t **link = find_link(c, e->digest);
    *link = e->next;
    recency_unlink(c, e);
    c->count--;
    c->bytes -= e->bytes;
    jwt_claims_free(&e->claims);
    free(e);
}

const jwt_claims_t *jwt_cache_get(jwt_cache_t *c, const char *token, size_t n, int64_t now_s)
{
    unsigned char digest[DIGEST_LEN];
    if (token_digest(token, n, digest) < 0)
        return NULL;
    cache_entry_t *e = *find_link(c, digest);
    if (!e)
        return NULL;
    if (now_s >= e->claims.valid_until) {
        drop(c, e);
        return NULL;
    }
    recency_unlink(c, e);
    recency_push(c, e);
    return &e->claims;
}

const jwt_claims_t *jwt_cache_put(jwt_cache_t *c, const char *token, size_t n,
                                  jwt_claims_t *claims)
{
    size_t bytes = sizeof(cache_entry_t) + claims->len + 1;
    if (bytes > c->max_bytes)
        return NULL;
    cache_entry_t *e = calloc(1, sizeof *e);
    if (!e || token_digest(token, n, e->digest) < 0) {
        free(e);
        return NULL;
    }
    cache_entry_t *old = *find_link(c, e->digest);
    if (old)
        drop(c, old);
    while (c->oldest && (c->count >= c->max_entries || bytes > c->max_bytes - c->bytes))
        drop(c, c->oldest);
    e->claims = *claims;
    *claims = (jwt_claims_t){ NULL, 0, 0, 0 };
    e->bytes = bytes;
    cache_entry_t **bucket = bucket_of(c, e->digest);
    e->next = *bucket;
    *bucket = e;
    recency_push(c, e);
    c->count++;
    c->bytes += bytes;
    return &e->claims;
}

void jwt_cache_clear(jwt_cache_t *c)
{
    while (c->oldest)
        drop(c, c->oldest);
}

void jwt_cache_free(jwt_cache_t *c)
{
    if (!c)
        return;
    jwt_cache_clear(c);
    free(c->buckets);
    free(c);
}

size_t jwt_cache_count(const jwt_cache_t *c)
{
    return c->count;
}
