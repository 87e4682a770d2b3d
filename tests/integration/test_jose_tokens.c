/* The JWT test tool (tests/jose/mint.mjs through tests/support/jose.h)
 * against gateway/jwt.c: every token that npm's jose makes with
 * openssl-made keys gets the verdict the tool says it must, under the
 * JWKS the tool wrote, under its rotated JWKS, and with HS256 not allowed;
 * tokens signed on demand carry their claims; and gateway/jwks.c picks up
 * the rotated JWKS file when it is renamed over the current one. This
 * checks the tool (for the gateway's integration tests) and the verifier
 * against an independent JOSE implementation at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "gateway/jwks.h"
#include "gateway/jwt.h"
#include "support/jose.h"
#include "support/uvtest.h"

static struct jose_suite suite;

static int setup(void **state) {
  (void)state;
  return jose_suite_make(&suite) == 0 ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  jose_suite_free(&suite);
  return 0;
}

static jwt_keys_t *load(const char *path) {
  char err[JWKS_ERR_SIZE];
  jwt_keys_t *keys = jwks_load_file(path, err, sizeof err);
  if (!keys)
    fail_msg("%s", err);
  return keys;
}

/* The verifier as the gateway would configure it for the suite. */
static jwt_policy_t policy(const jwt_keys_t *keys, unsigned algorithms) {
  static const char *audiences[1];
  audiences[0] = suite.audience;
  jwt_policy_t p = {
      .algorithms = algorithms,
      .issuer = suite.issuer,
      .audiences = audiences,
      .audience_count = 1,
      .hs256_secret = (const unsigned char *)suite.hs256_secret,
      .hs256_secret_len = strlen(suite.hs256_secret),
      .leeway_s = 60,
      .keys = keys,
  };
  return p;
}

static const char *verdict(const jwt_policy_t *p, const char *token, jwt_claims_t *claims) {
  jwt_claims_t unused;
  jwt_claims_t *out = claims ? claims : &unused;
  char why[128];
  jwt_result_t r = jwt_verify(p, token, strlen(token), (int64_t)time(NULL), out, why, sizeof why);
  if (!claims)
    jwt_claims_free(&unused);
  return jwt_result_label(r);
}

static void test_every_token_gets_its_verdict(void **state) {
  (void)state;
  jwt_keys_t *keys = load(suite.jwks_file);
  assert_int_equal(jwt_keys_count(keys), 3);
  jwt_policy_t p = policy(keys, JWT_ALG_ALL);
  json_t *tokens = json_object_get(suite.doc, "tokens");
  assert_true(json_object_size(tokens) >= 15);
  const char *name;
  json_t *token;
  json_object_foreach(tokens, name, token) {
    const char *got = verdict(&p, json_string_value(token), NULL);
    if (strcmp(got, jose_expect(&suite, name)) != 0)
      fail_msg("token %s: jwt_verify says %s, expected %s", name, got, jose_expect(&suite, name));
  }
  jwt_keys_free(keys);
}

static void test_rotated_jwks(void **state) {
  (void)state;
  jwt_keys_t *keys = load(suite.jwks_rotated_file);
  jwt_policy_t p = policy(keys, JWT_ALG_ALL);
  json_t *expect = json_object_get(suite.doc, "expect_rotated");
  assert_true(json_object_size(expect) >= 2);
  const char *name;
  json_t *outcome;
  json_object_foreach(expect, name, outcome) {
    const char *got = verdict(&p, jose_token(&suite, name), NULL);
    if (strcmp(got, json_string_value(outcome)) != 0)
      fail_msg("token %s under the rotated JWKS: %s, expected %s", name, got,
               json_string_value(outcome));
  }
  jwt_keys_free(keys);
}

/* The algorithm allowlist decides before any key is tried. */
static void test_hs256_not_allowed(void **state) {
  (void)state;
  jwt_keys_t *keys = load(suite.jwks_file);
  jwt_policy_t p = policy(keys, JWT_ALG_RS256 | JWT_ALG_ES256 | JWT_ALG_EDDSA);
  assert_string_equal(verdict(&p, jose_token(&suite, "rs256_public_key_as_hs256_secret"), NULL),
                      "algorithm");
  assert_string_equal(verdict(&p, jose_token(&suite, "hs256"), NULL), "algorithm");
  assert_string_equal(verdict(&p, jose_token(&suite, "rs256"), NULL), "ok");
  p.algorithms = JWT_ALG_ES256;
  assert_string_equal(verdict(&p, jose_token(&suite, "rs256"), NULL), "algorithm");
  assert_string_equal(verdict(&p, jose_token(&suite, "es256"), NULL), "ok");
  jwt_keys_free(keys);
}

/* A good token's claims are the payload the tool signed. */
static void test_claims_of_a_good_token(void **state) {
  (void)state;
  jwt_keys_t *keys = load(suite.jwks_file);
  jwt_policy_t p = policy(keys, JWT_ALG_ALL);
  static const char *const good[] = {"rs256", "es256", "eddsa", "hs256"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    jwt_claims_t claims;
    assert_string_equal(verdict(&p, jose_token(&suite, good[i]), &claims), "ok");
    json_error_t error;
    json_t *payload = json_loadb(claims.json, claims.len, 0, &error);
    assert_non_null(payload);
    assert_true(json_equal(payload, json_object_get(suite.doc, "claims")));
    assert_string_equal(json_string_value(json_object_get(payload, "sub")), "u42");
    assert_int_equal(claims.exp, json_integer_value(json_object_get(payload, "exp")));
    json_decref(payload);
    jwt_claims_free(&claims);
  }
  jwt_keys_free(keys);
}

static void test_tokens_signed_on_demand(void **state) {
  (void)state;
  jwt_keys_t *keys = load(suite.jwks_file);
  jwt_policy_t p = policy(keys, JWT_ALG_ALL);
  p.issuer = NULL;
  p.audience_count = 0;
  static const char *const algs[] = {"RS256", "ES256", "EdDSA", "HS256"};
  for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
    char *token = NULL;
    assert_int_equal(jose_sign(&suite, algs[i], NULL, "{\"sub\":\"u7\",\"scope\":\"a b\"}", 600, &token), 0);
    jwt_claims_t claims;
    assert_string_equal(verdict(&p, token, &claims), "ok");
    assert_non_null(strstr(claims.json, "\"sub\":\"u7\""));
    assert_true(claims.exp > (int64_t)time(NULL) + 500 && claims.exp <= (int64_t)time(NULL) + 600);
    jwt_claims_free(&claims);
    free(token);
  }
  char *token = NULL;
  assert_int_equal(jose_sign(&suite, "ES256", NULL, "{\"sub\":\"u7\"}", -1, &token), 0);
  assert_string_equal(verdict(&p, token, NULL), "no_exp");
  free(token);
  assert_int_equal(jose_sign(&suite, "EdDSA", "nobody", NULL, 600, &token), 0);
  assert_string_equal(verdict(&p, token, NULL), "unknown_key");
  free(token);
  assert_int_equal(jose_sign(&suite, "RS256-rotated", NULL, "{\"exp\": 1}", 600, &token), 0);
  assert_string_equal(verdict(&p, token, NULL), "unknown_key");
  free(token);
  assert_int_not_equal(jose_sign(&suite, "PS256", NULL, NULL, 600, &token), 0);
  assert_null(token);
  jwt_keys_free(keys);
}

/* gateway/jwks.c with the tool's files: the rotated JWKS renamed over the
 * current one while watched makes the rotated key current. */
typedef struct reload_state {
  int reloaded;
} reload_state_t;

static void on_jwks(void *data, jwks_t *j, jwks_event_t event, const char *why) {
  (void)j;
  if (event != JWKS_RELOADED)
    fail_msg("jwks reload failed: %s", why);
  ((reload_state_t *)data)->reloaded++;
}

static int reloaded(void *arg) {
  return ((reload_state_t *)arg)->reloaded > 0;
}

static void copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  assert_non_null(in);
  assert_non_null(out);
  char buf[8192];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    assert_int_equal(fwrite(buf, 1, n, out), n);
  fclose(in);
  assert_int_equal(fclose(out), 0);
}

static void test_jwks_rotated_while_watched(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  char live[PATH_MAX], next[PATH_MAX];
  assert_true(snprintf(live, sizeof live, "%s/live-jwks.json", suite.dir) < (int)sizeof live);
  assert_true(snprintf(next, sizeof next, "%s/live-jwks.json.new", suite.dir) < (int)sizeof next);
  copy_file(suite.jwks_file, live);
  reload_state_t rs = {0};
  char err[JWKS_ERR_SIZE];
  jwks_t *j = jwks_open(&loop, live, 50, on_jwks, &rs, err, sizeof err);
  if (!j)
    fail_msg("%s", err);
  jwt_policy_t p = policy(jwks_keys(j), JWT_ALG_ALL);
  assert_string_equal(verdict(&p, jose_token(&suite, "rotated"), NULL), "unknown_key");
  copy_file(suite.jwks_rotated_file, next);
  assert_int_equal(rename(next, live), 0);
  assert_true(uvtest_run_until(&loop, reloaded, &rs, 10000));
  p.keys = jwks_keys(j);
  assert_string_equal(verdict(&p, jose_token(&suite, "rotated"), NULL), "ok");
  assert_string_equal(verdict(&p, jose_token(&suite, "rs256"), NULL), "unknown_key");
  jwks_close(j);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_token_gets_its_verdict),
      cmocka_unit_test(test_rotated_jwks),
      cmocka_unit_test(test_hs256_not_allowed),
      cmocka_unit_test(test_claims_of_a_good_token),
      cmocka_unit_test(test_tokens_signed_on_demand),
      cmocka_unit_test(test_jwks_rotated_while_watched),
  };
  return cmocka_run_group_tests_name("jose_tokens", tests, setup, teardown);
}
