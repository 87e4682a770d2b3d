/* Unit tests of gateway/jwks on a real libuv loop and real files: loading,
 * the errors of a bad file, and reloads while running (a rotated key set
 * renamed over the file, a Kubernetes volume swap, a bad file that keeps
 * the old keys, bytes that did not change). Keys are Ed25519 keys made with
 * OpenSSL here; a token signed with one shows which keys are current,
 * through jwt_verify. Also checks that the constants config/config.h
 * repeats from gateway/ (jwt.h, ratelimit.h) agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "config/config.h"
#include "gateway/jwks.h"
#include "gateway/jwt.h"
#include "gateway/ratelimit.h"
#include "support/uvtest.h"

/* config/ cannot include gateway/: its copies of these must agree. */
_Static_assert(CONFIG_JWT_RS256 == JWT_ALG_RS256, "RS256 bit");
_Static_assert(CONFIG_JWT_ES256 == JWT_ALG_ES256, "ES256 bit");
_Static_assert(CONFIG_JWT_EDDSA == JWT_ALG_EDDSA, "EdDSA bit");
_Static_assert(CONFIG_JWT_HS256 == JWT_ALG_HS256, "HS256 bit");
_Static_assert(CONFIG_RATE_LIMIT_KEYS_MAX == RATELIMIT_KEYS_MAX, "rate_limit_keys bound");

#define SETTLE_MS 30
#define DEADLINE_MS 10000

/* ---- keys and tokens ----------------------------------------------------- */

typedef struct key {
    EVP_PKEY *pkey;
    char kid[16];
} key_t_;

static void base64url(const unsigned char *in, size_t n, char *out, size_t size)
{
    unsigned char b64[1024];
    assert_true(4 * ((n + 2) / 3) < sizeof b64);
    int len = EVP_EncodeBlock(b64, in, (int)n);
    size_t j = 0;
    for (int i = 0; i < len && b64[i] != '='; i++) {
        assert_true(j + 1 < size);
        out[j++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    }
    out[j] = '\0';
}

static key_t_ make_key(const char *kid)
{
    key_t_ k;
    k.pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(k.pkey);
    snprintf(k.kid, sizeof k.kid, "%s", kid);
    return k;
}

/* {"keys": [the public JWK of each key]} */
static void jwks_text(const key_t_ *keys, size_t n, char *out, size_t size)
{
    size_t used = (size_t)snprintf(out, size, "{\"keys\": [");
    for (size_t i = 0; i < n; i++) {
        unsigned char raw[32];
        size_t raw_len = sizeof raw;
        assert_int_equal(EVP_PKEY_get_raw_public_key(keys[i].pkey, raw, &raw_len), 1);
        char x[64];
        base64url(raw, raw_len, x, sizeof x);
        used += (size_t)snprintf(out + used, size - used,
                                 "%s{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"%s\",\"x\":\"%s\"}",
                                 i ? "," : "", keys[i].kid, x);
    }
    snprintf(out + used, size - used, "]}");
}

/* An EdDSA token signed by k, valid for an hour. */
static void token(const key_t_ *k, char *out, size_t size)
{
    char header[128], payload[128], h64[256], p64[256], sig64[128];
    snprintf(header, sizeof header, "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", k->kid);
    snprintf(payload, sizeof payload, "{\"sub\":\"u1\",\"exp\":%lld}", (long long)time(NULL) + 3600);
    base64url((const unsigned char *)header, strlen(header), h64, sizeof h64);
    base64url((const unsigned char *)payload, strlen(payload), p64, sizeof p64);
    char input[600];
    snprintf(input, sizeof input, "%s.%s", h64, p64);
    unsigned char sig[64];
    size_t sig_len = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_non_null(md);
    assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(md);
    base64url(sig, sig_len, sig64, sizeof sig64);
    snprintf(out, size, "%s.%s", input, sig64);
}

static jwt_result_t verify(const jwt_keys_t *keys, const key_t_ *signer)
{
    char text[1024];
    token(signer, text, sizeof text);
    jwt_policy_t policy = {.algorithms = JWT_ALG_EDDSA, .keys = keys};
    jwt_claims_t claims;
    jwt_result_t r = jwt_verify(&policy, text, strlen(text), (int64_t)time(NULL), &claims, NULL, 0);
    jwt_claims_free(&claims);
    return r;
}

/* ---- fixture ------------------------------------------------------------- */

typedef struct fixture {
    uv_loop_t loop;
    char dir[PATH_MAX];
    char path[PATH_MAX];
    key_t_ a, b;                 /* two key sets of one key each */
    char jwks_a[512], jwks_b[512];
    int reloaded, failed;
    char why[JWKS_ERR_SIZE];
} fixture;

static void on_jwks(void *data, jwks_t *j, jwks_event_t event, const char *why)
{
    fixture *f = data;
    (void)j;
    if (event == JWKS_RELOADED) {
        assert_null(why);
        f->reloaded++;
    } else {
        f->failed++;
        snprintf(f->why, sizeof f->why, "%s", why);
    }
}

/* out[PATH_MAX] = dir + "/" + name (fails the test when it does not fit). */
static void join(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    assert_true(n > 0 && n < PATH_MAX);
}

static void write_text(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    assert_true(fputs(text, file) >= 0);
    assert_int_equal(fclose(file), 0);
}

static void replace_text(const char *path, const char *text)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_true(n > 0 && n < PATH_MAX);
    write_text(tmp, text);
    assert_int_equal(rename(tmp, path), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof f->dir, "%s/pg-jwks-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    join(f->path, f->dir, "jwks.json");
    f->a = make_key("key-a");
    f->b = make_key("key-b");
    jwks_text(&f->a, 1, f->jwks_a, sizeof f->jwks_a);
    jwks_text(&f->b, 1, f->jwks_b, sizeof f->jwks_b);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    char command[PATH_MAX + 16];
    snprintf(command, sizeof command, "rm -rf '%s'", f->dir);
    assert_int_equal(system(command), 0);
    EVP_PKEY_free(f->a.pkey);
    EVP_PKEY_free(f->b.pkey);
    free(f);
    return rc == 0 ? 0 : -1;
}

static jwks_t *open_jwks(fixture *f)
{
    char err[JWKS_ERR_SIZE];
    jwks_t *j = jwks_open(&f->loop, f->path, SETTLE_MS, on_jwks, f, err, sizeof err);
    if (j == NULL)
        fail_msg("jwks_open: %s", err);
    return j;
}

typedef struct waiting {
    fixture *f;
    int reloaded, failed; /* at least these counts */
} waiting_t;

static int counts_reached(void *arg)
{
    waiting_t *w = arg;
    return w->f->reloaded >= w->reloaded && w->f->failed >= w->failed;
}

static void wait_counts(fixture *f, int reloaded, int failed)
{
    waiting_t w = {f, reloaded, failed};
    if (!uvtest_run_until(&f->loop, counts_reached, &w, DEADLINE_MS))
        fail_msg("waited for %d reloads and %d failures, saw %d and %d", reloaded, failed,
                 f->reloaded, f->failed);
}

/* ---- loading ------------------------------------------------------------- */

static void test_constants_agree(void **state)
{
    (void)state;
    assert_true(CONFIG_RATE_RPS_MIN == RATELIMIT_RPS_MIN);
    assert_true(CONFIG_RATE_RPS_MAX == RATELIMIT_RPS_MAX);
}

static void test_load_file(void **state)
{
    fixture *f = *state;
    char err[JWKS_ERR_SIZE];
    write_text(f->path, f->jwks_a);
    jwt_keys_t *keys = jwks_load_file(f->path, err, sizeof err);
    assert_non_null(keys);
    assert_int_equal(jwt_keys_count(keys), 1);
    assert_int_equal(verify(keys, &f->a), JWT_OK);
    assert_int_equal(verify(keys, &f->b), JWT_UNKNOWN_KEY);
    jwt_keys_free(keys);
}

static void expect_load_error(const char *path, const char *expected)
{
    char err[JWKS_ERR_SIZE];
    jwt_keys_t *keys = jwks_load_file(path, err, sizeof err);
    assert_null(keys);
    assert_string_equal(err, expected);
}

static void test_load_errors(void **state)
{
    fixture *f = *state;
    char expected[JWKS_ERR_SIZE + PATH_MAX];
    snprintf(expected, sizeof expected, "cannot read %s: No such file or directory", f->path);
    expect_load_error(f->path, expected);
    write_text(f->path, "{\"keys\": [");
    snprintf(expected, sizeof expected, "%s: not valid JSON", f->path);
    char err[JWKS_ERR_SIZE];
    assert_null(jwks_load_file(f->path, err, sizeof err));
    assert_non_null(strstr(err, f->path)); /* the reason is jwt_keys_parse's */
    write_text(f->path, "{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}");
    snprintf(expected, sizeof expected,
             "%s: no usable key (1 skipped: only RSA, EC P-256 and Ed25519 signature keys are used)",
             f->path);
    expect_load_error(f->path, expected);
    /* larger than JWT_MAX_JWKS */
    FILE *file = fopen(f->path, "w");
    assert_non_null(file);
    for (int i = 0; i < JWT_MAX_JWKS / 64 + 1; i++)
        fputs("                                                               \n", file);
    fclose(file);
    snprintf(expected, sizeof expected, "%s: larger than %d bytes", f->path, JWT_MAX_JWKS);
    expect_load_error(f->path, expected);
    /* jwks_open fails the same way, and leaves nothing on the loop */
    assert_null(jwks_open(&f->loop, f->path, SETTLE_MS, on_jwks, f, err, sizeof err));
    assert_string_equal(err, expected);
}

/* ---- reloading ----------------------------------------------------------- */

static void test_rotated_keys_replace_the_old(void **state)
{
    fixture *f = *state;
    write_text(f->path, f->jwks_a);
    jwks_t *j = open_jwks(f);
    assert_string_equal(jwks_path(j), f->path);
    assert_int_equal(verify(jwks_keys(j), &f->a), JWT_OK);
    assert_int_equal(verify(jwks_keys(j), &f->b), JWT_UNKNOWN_KEY);
    replace_text(f->path, f->jwks_b);
    wait_counts(f, 1, 0);
    assert_int_equal(jwks_reloads(j), 1);
    assert_int_equal(verify(jwks_keys(j), &f->b), JWT_OK);
    assert_int_equal(verify(jwks_keys(j), &f->a), JWT_UNKNOWN_KEY); /* the old key is gone */
    /* an edit in place is seen too */
    write_text(f->path, f->jwks_a);
    wait_counts(f, 2, 0);
    assert_int_equal(verify(jwks_keys(j), &f->a), JWT_OK);
    jwks_close(j);
}

/* A bad file keeps the old keys; the failure is reported once however
 * often the same bytes are written; fixing the file reloads. */
static void test_bad_file_keeps_the_old_keys(void **state)
{
    fixture *f = *state;
    write_text(f->path, f->jwks_a);
    jwks_t *j = open_jwks(f);
    replace_text(f->path, "{\"keys\": [{\"kty\": \"OKP\", \"crv\": \"Ed25519\", \"x\": \"!!\"}]}");
    wait_counts(f, 0, 1);
    char expected[JWKS_ERR_SIZE + PATH_MAX];
    snprintf(expected, sizeof expected, "%s: keys[0].x: not valid base64url", f->path);
    assert_string_equal(f->why, expected);
    assert_int_equal(verify(jwks_keys(j), &f->a), JWT_OK);
    replace_text(f->path, "{\"keys\": [{\"kty\": \"OKP\", \"crv\": \"Ed25519\", \"x\": \"!!\"}]}");
    replace_text(f->path, f->jwks_b);
    wait_counts(f, 1, 1);
    assert_int_equal(f->failed, 1);
    assert_int_equal(verify(jwks_keys(j), &f->b), JWT_OK);
    /* a file that is gone keeps the keys too */
    assert_int_equal(unlink(f->path), 0);
    wait_counts(f, 1, 2);
    snprintf(expected, sizeof expected, "cannot read %s: No such file or directory", f->path);
    assert_string_equal(f->why, expected);
    assert_int_equal(verify(jwks_keys(j), &f->b), JWT_OK);
    write_text(f->path, f->jwks_a);
    wait_counts(f, 2, 2);
    assert_int_equal(verify(jwks_keys(j), &f->a), JWT_OK);
    jwks_close(j);
}

/* Rewriting the same bytes reloads nothing. */
static void test_same_bytes_reload_nothing(void **state)
{
    fixture *f = *state;
    write_text(f->path, f->jwks_a);
    jwks_t *j = open_jwks(f);
    replace_text(f->path, f->jwks_a);
    char other[PATH_MAX];
    join(other, f->dir, "unrelated.txt");
    write_text(other, "another file of the folder");
    replace_text(f->path, f->jwks_b); /* then a real change */
    wait_counts(f, 1, 0);
    assert_int_equal(f->reloaded, 1);
    assert_int_equal(jwks_reloads(j), 1);
    jwks_close(j);
}

/* A Secret volume's update: a new folder, the ..data link swapped. */
static void test_kubernetes_secret_update(void **state)
{
    fixture *f = *state;
    char dir[PATH_MAX], file[PATH_MAX], data[PATH_MAX], tmp[PATH_MAX];
    join(dir, f->dir, "..2024_01");
    assert_int_equal(mkdir(dir, 0700), 0);
    join(file, dir, "jwks.json");
    write_text(file, f->jwks_a);
    join(data, f->dir, "..data");
    assert_int_equal(symlink("..2024_01", data), 0);
    assert_int_equal(symlink("..data/jwks.json", f->path), 0);
    jwks_t *j = open_jwks(f);
    assert_int_equal(verify(jwks_keys(j), &f->a), JWT_OK);
    join(dir, f->dir, "..2024_02");
    assert_int_equal(mkdir(dir, 0700), 0);
    join(file, dir, "jwks.json");
    write_text(file, f->jwks_b);
    join(tmp, f->dir, "..data_tmp");
    assert_int_equal(symlink("..2024_02", tmp), 0);
    assert_int_equal(rename(tmp, data), 0);
    wait_counts(f, 1, 0);
    assert_int_equal(verify(jwks_keys(j), &f->b), JWT_OK);
    assert_int_equal(verify(jwks_keys(j), &f->a), JWT_UNKNOWN_KEY);
    jwks_close(j);
    jwks_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constants_agree),
        cmocka_unit_test_setup_teardown(test_load_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotated_keys_replace_the_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_file_keeps_the_old_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_bytes_reload_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubernetes_secret_update, setup, teardown),
    };
    return cmocka_run_group_tests_name("jwks", tests, NULL, NULL);
}
