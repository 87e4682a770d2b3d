/* The edge policy's authentication in the built binary, with real
 * components: tokens minted by npm `jose` with openssl-made keys
 * (tests/support/jose.h) and a Nest 12 service that reads the packet
 * metadata (TcpContext#getMetadata):
 *
 *   - every token of jose's suite gets its status, WWW-Authenticate
 *     challenge, access-log reason and auth_failures_total count;
 *   - the claims reach the service, in the packet metadata (forward_claims
 *     as "jwt.<claim>") and in the data ($jwt templates);
 *   - per-route auth none / bearer / jwt / default, and require_claims
 *     (array contains, scope word, equality), 403 with insufficient_scope;
 *   - the JWKS file rotated on disk while the gateway runs: the new key is
 *     accepted once the watch reloaded it, the removed key's tokens (cached
 *     before) are refused, a broken file keeps the keys; a config reload
 *     that names another JWKS file, or one that cannot be loaded; and a
 *     start with an unreadable JWKS file (exit 1, naming the field).
 *
 * Waiting is always a poll of a condition with a generous deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/deadline.h"
#include "support/gateway.h"
#include "support/gwfixture.h"
#include "support/gwtest.h"
#include "support/http.h"
#include "support/jose.h"
#include "support/nest.h"

/* ---- fixtures ------------------------------------------------------------------ */

static struct jose_suite suite;
static char g_live_jwks[PATH_MAX + 32]; /* a copy of the suite's JWKS the tests rewrite */

static int group_setup(void **state)
{
    if (gwf_group_setup(state) != 0 || jose_suite_make(&suite) != 0)
        return -1;
    snprintf(g_live_jwks, sizeof g_live_jwks, "%s/live-jwks.json", suite.dir);
    return 0;
}

static int group_teardown(void **state)
{
    jose_suite_free(&suite);
    return gwf_group_teardown(state);
}

/* Copies `from` over `to` as a deploy tool does: a new file renamed over. */
static void replace_file(const char *from, const char *to)
{
    char tmp[PATH_MAX + 48];
    snprintf(tmp, sizeof tmp, "%s.new", to);
    FILE *in = fopen(from, "rb"), *out = fopen(tmp, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(rename(tmp, to), 0);
}

static void write_file(const char *path, const char *text)
{
    char tmp[PATH_MAX + 48];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *out = fopen(tmp, "wb");
    assert_non_null(out);
    fputs(text, out);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(rename(tmp, path), 0);
}

/* ---- the config -------------------------------------------------------------------- */

#define ROUTE(method, path, extra)                                                                             \
    "    { \"method\": \"" method "\", \"path\": \"" path "\", \"service\": \"nest\", \"pattern\": { \"cmd\": "    \
    "\"echo\" }, \"data\": \"" path "\"" extra " },\n"

/* The config, with `jwks_file` as the JWKS (a path). */
static char *edge_config(const char *jwks_file)
{
    static const char fmt[] =
        "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
        "  \"log\": { \"level\": \"info\", \"access\": true }, \"generic_api\": false,\n"
        "  \"auth\": { \"bearer_tokens\": [\"static-token\"],\n"
        "    \"jwt\": { \"issuer\": \"%s\", \"audiences\": [\"%s\"], \"jwks_file\": \"%s\",\n"
        "             \"hs256_secret\": \"%s\", \"forward_claims\": [\"sub\", \"tenant\", \"roles\"] } },\n"
        "  \"services\": { \"nest\": { \"endpoints\": [\"%s\"], \"timeout_ms\": 20000 } },\n"
        "  \"routes\": [\n"
        "    { \"method\": \"POST\", \"path\": \"/echo\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
        "      \"data\": { \"sub\": \"$jwt.sub\", \"tenant\": \"$jwt.claims.tenant\", \"claims\": \"$jwt\",\n"
        "                \"body\": \"$body\" } },\n"
        "    { \"method\": \"POST\", \"path\": \"/meta\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"metadata\" } },\n"
        "    { \"method\": \"POST\", \"path\": \"/caller\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"caller\" },\n"
        "      \"data\": { \"sub\": \"$jwt.sub\", \"roles\": \"$jwt.claims.roles\", \"order\": \"$body.order\" } },\n"
        ROUTE("GET", "/open", ", \"auth\": \"none\"")
        ROUTE("GET", "/bearer", ", \"auth\": \"bearer\"")
        ROUTE("GET", "/jwt", ", \"auth\": \"jwt\"")
        ROUTE("GET", "/any", "")
        ROUTE("GET", "/scope", ", \"auth\": \"jwt\", \"require_claims\": { \"scope\": \"orders:write\" }")
        ROUTE("GET", "/admin", ", \"auth\": \"jwt\", \"require_claims\": { \"scope\": \"admin\" }")
        ROUTE("GET", "/editor", ", \"auth\": \"jwt\", \"require_claims\": { \"roles\": \"editor\" }")
        ROUTE("GET", "/owner", ", \"auth\": \"jwt\", \"require_claims\": { \"roles\": \"owner\" }")
        ROUTE("GET", "/acme", ", \"auth\": \"jwt\", \"require_claims\": { \"tenant\": \"acme\", \"sub\": \"u42\" }")
        ROUTE("GET", "/other", ", \"auth\": \"jwt\", \"require_claims\": { \"tenant\": \"other\" }")
        "    { \"method\": \"GET\", \"path\": \"/level\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
        "      \"data\": \"/level\", \"auth\": \"jwt\", \"require_claims\": { \"level\": 3 } }\n"
        "  ] }\n";
    char *text = NULL;
    assert_true(asprintf(&text, fmt, suite.issuer, suite.audience, jwks_file, suite.hs256_secret, gwf.nest_addr) > 0);
    return text;
}

static struct gwproc *start_gw(const char *jwks_file)
{
    char *config = edge_config(jwks_file);
    struct gwproc_options o = { .ready_on_admin = true };
    gwf.gw = gwt_start(config, NULL, &o);
    free(config);
    return gwf.gw;
}

/* ---- requests ------------------------------------------------------------------------ */

/* A request with `token` as the bearer token (NULL: no Authorization). */
static struct http_response req_token(int port, const char *method, const char *path, const char *token,
                                      const char *body)
{
    char auth[20000];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token ? token : "");
    const char *headers[] = { token ? auth : NULL, NULL };
    return gwt_req_with(port, method, path, headers, body);
}

/* The request's access line (by its X-Request-Id): a new reference. */
static json_t *access_line(const struct http_response *r)
{
    const char *id = http_header(r, "X-Request-Id");
    assert_non_null(id);
    /* the line is written once MHD completed the request: poll for it */
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    for (;;) {
        json_t *lines = gwt_log_lines(gwf.gw, true), *access = gwt_log_find(lines, "access", NULL), *l, *found = NULL;
        size_t i;
        json_array_foreach(access, i, l) {
            const char *rid = gwt_str(l, "request_id");
            if (rid && strcmp(rid, id) == 0)
                found = json_incref(l);
        }
        json_decref(access);
        json_decref(lines);
        if (found)
            return found;
        if (deadline_remaining_ms(deadline) == 0)
            fail_msg("no access line for request %s", id);
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
    }
}

/* The access line's `auth` is `want` (NULL: null). */
static void expect_logged_auth(const struct http_response *r, const char *want, const char *what)
{
    json_t *line = access_line(r);
    json_t *v = json_object_get(line, "auth");
    bool ok = want ? json_is_string(v) && strcmp(json_string_value(v), want) == 0 : json_is_null(v);
    if (!ok || !json_is_false(json_object_get(line, "rate_limited")))
        gwt_fail_json(line, "%s: access line auth should be %s (and rate_limited false)", what, want ? want : "null");
    json_decref(line);
}

/* 401 with exactly this challenge; challenge_prefix: it starts so. */
static void expect_401(const struct http_response *r, const char *what, const char *challenge, bool prefix)
{
    gwt_expect_error(r, what, 401, "unauthorized");
    const char *www = http_header(r, "WWW-Authenticate");
    if (!www || (prefix ? strncmp(www, challenge, strlen(challenge)) != 0 : strcmp(www, challenge) != 0))
        gwt_fail_response(r, what, "WWW-Authenticate should %s %s", prefix ? "start with" : "be", challenge);
}

static void expect_403(const struct http_response *r, const char *what)
{
    gwt_expect_error(r, what, 403, "forbidden");
    const char *www = http_header(r, "WWW-Authenticate");
    if (!www || strcmp(www, "Bearer error=\"insufficient_scope\"") != 0)
        gwt_fail_response(r, what, "WWW-Authenticate should be Bearer error=\"insufficient_scope\"");
}

/* Polls until `token` on GET `path` answers `status`. */
static void poll_token_status(int port, const char *path, const char *token, int status, const char *what)
{
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    for (;;) {
        struct http_response r = req_token(port, "GET", path, token, NULL);
        if (r.status == status) {
            http_response_free(&r);
            return;
        }
        if (deadline_remaining_ms(deadline) == 0)
            gwt_fail_response(&r, what, "still not %d", status);
        http_response_free(&r);
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
    }
}

static char *sign(const char *alg, const char *claims_json)
{
    char *tok = NULL;
    assert_int_equal(jose_sign(&suite, alg, NULL, claims_json, 3600, &tok), 0);
    return tok;
}

/* Nothing secret in the gateway's log (access lines included): no token of
 * the suite, whole or its signature, no bearer token, no HS256 secret. */
static void expect_no_secret_logged(struct gwproc *gw)
{
    char *log = gwproc_log(gw);
    assert_non_null(log);
    assert_non_null(strstr(log, "\"access\"")); /* access lines were written */
    json_t *tokens = json_object_get(suite.doc, "tokens"), *tok;
    const char *name;
    json_object_foreach(tokens, name, tok) {
        const char *t = json_string_value(tok), *sig = strrchr(t, '.');
        if (strstr(log, t) || (sig && strlen(sig) > 8 && strstr(log, sig + 1)))
            fail_msg("token %s appears in the gateway's log", name);
    }
    if (strstr(log, "static-token") || strstr(log, suite.hs256_secret))
        fail_msg("a bearer token or the HS256 secret appears in the gateway's log");
    free(log);
}

/* ---- 1. every token of the suite ---------------------------------------------------- */

static void every_token_of_the_suite(void **state)
{
    (void)state;
    replace_file(suite.jwks_file, g_live_jwks);
    struct gwproc *gw = start_gw(g_live_jwks);
    int port = gwproc_port(gw);
    json_t *expect = json_object_get(suite.doc, "expect"), *label, *counts = json_object();
    const char *name;
    json_object_foreach(expect, name, label) {
        const char *want = json_string_value(label), *token = jose_token(&suite, name);
        assert_non_null(token);
        struct http_response r = req_token(port, "POST", "/echo", token, "{\"n\":1}");
        if (strcmp(want, "ok") == 0) {
            json_t *body = gwt_parse(&r, name);
            if (r.status != 200 || !json_is_string(json_object_get(body, "sub")) ||
                strcmp(gwt_str(body, "sub"), suite.sub) != 0)
                gwt_fail_response(&r, name, "a valid token: 200 with the claims in the data expected");
            json_decref(body);
            expect_logged_auth(&r, NULL, name);
        } else {
            expect_401(&r, name, "Bearer error=\"invalid_token\", error_description=\"", true);
            const char *www = http_header(&r, "WWW-Authenticate");
            if (www[strlen(www) - 1] != '"' || strlen(www) <= strlen("Bearer error=\"invalid_token\", error_description=\"\""))
                gwt_fail_response(&r, name, "the error_description should say why");
            expect_logged_auth(&r, want, name);
            json_object_set_new(counts, want, json_integer(json_integer_value(json_object_get(counts, want)) + 1));
        }
        http_response_free(&r);
    }
    /* no token at all: the challenge alone (RFC 6750 §3.1) */
    struct http_response r = req_token(port, "POST", "/echo", NULL, "{}");
    expect_401(&r, "no token", "Bearer", false);
    expect_logged_auth(&r, "missing", "no token");
    http_response_free(&r);
    r = gwt_req_with(port, "POST", "/echo", (const char *[]){ "Authorization: Basic dTpw", NULL }, "{}");
    expect_401(&r, "Basic credentials", "Bearer", false);
    http_response_free(&r);
    json_object_set_new(counts, "missing", json_integer(2));
    /* each refusal counted once, by reason */
    gwt_scrape_t s = gwt_scrape(gw->admin_port, NULL);
    json_t *count;
    json_object_foreach(counts, name, count) {
        char labels[96];
        snprintf(labels, sizeof labels, "{\"reason\":\"%s\"}", name);
        gwt_expect_metric(&s, "patterngate_http_auth_failures_total", labels, (double)json_integer_value(count));
    }
    gwt_expect_metric(&s, "patterngate_http_auth_failures_total", "{\"reason\":\"claims\"}", 0);
    gwt_promtool_check(&s);
    gwt_scrape_free(&s);
    json_decref(counts);
    expect_no_secret_logged(gw);
    gwt_stop(gw);
    gwf.gw = NULL;
}

/* ---- 2. the claims reach the service ------------------------------------------------- */

static void claims_reach_the_service(void **state)
{
    (void)state;
    struct gwproc *gw = start_gw(suite.jwks_file);
    int port = gwproc_port(gw);
    const char *algs[] = { "rs256", "es256", "eddsa", "hs256" };
    for (size_t i = 0; i < 4; i++) {
        const char *hdr[] = { NULL, "X-Request-Id: meta-1", NULL };
        char auth[4096];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", jose_token(&suite, algs[i]));
        hdr[0] = auth;
        struct http_response r = gwt_req_with(port, "POST", "/meta", hdr, "{}");
        gwt_expect_json(&r, algs[i], 200,
                        "{\"requestId\":\"meta-1\",\"jwt.sub\":\"u42\",\"jwt.tenant\":\"acme\","
                        "\"jwt.roles\":\"[\\\"viewer\\\",\\\"editor\\\"]\"}");
        http_response_free(&r);
    }
    /* the service checks both itself: the identity in the metadata and in the
     * data agree, and it answers with what it received */
    char auth[4096];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", jose_token(&suite, "rs256"));
    struct http_response c =
        gwt_req_with(port, "POST", "/caller", (const char *[]){ auth, "X-Request-Id: caller-1", NULL }, "{\"order\":7}");
    gwt_expect_json(&c, "POST /caller", 200,
                    "{\"agree\":true,\"data\":{\"sub\":\"u42\",\"roles\":[\"viewer\",\"editor\"],\"order\":7},"
                    "\"metadata\":{\"requestId\":\"caller-1\",\"jwt.sub\":\"u42\",\"jwt.tenant\":\"acme\","
                    "\"jwt.roles\":\"[\\\"viewer\\\",\\\"editor\\\"]\"}}");
    http_response_free(&c);
    /* $jwt templates: a top-level claim, a path into the claims, all of them */
    struct http_response r = req_token(port, "POST", "/echo", jose_token(&suite, "es256"), "{\"x\":[1,2]}");
    json_t *body = gwt_parse(&r, "POST /echo");
    json_t *claims = json_object_get(body, "claims"), *sent = json_pack("{s:[i,i]}", "x", 1, 2);
    const char *sub = gwt_str(body, "sub"), *tenant = gwt_str(body, "tenant");
    if (r.status != 200 || !sub || strcmp(sub, "u42") != 0 || !tenant || strcmp(tenant, "acme") != 0 ||
        !json_equal(claims, json_object_get(suite.doc, "claims")) || !json_equal(json_object_get(body, "body"), sent))
        gwt_fail_response(&r, "POST /echo", "the data should carry $jwt.sub, $jwt.claims.tenant, $jwt and the body");
    json_decref(sent);
    json_decref(body);
    http_response_free(&r);
    /* a bearer token has no claims: $jwt values are null, nothing forwarded */
    r = req_token(port, "POST", "/meta", "static-token", "{}");
    body = gwt_parse(&r, "POST /meta with a bearer token");
    if (r.status != 200 || json_object_get(body, "jwt.sub") || !json_is_string(json_object_get(body, "requestId")))
        gwt_fail_response(&r, "POST /meta with a bearer token", "no jwt.* metadata expected");
    json_decref(body);
    http_response_free(&r);
    r = req_token(port, "POST", "/echo", "static-token", "1");
    gwt_expect_json(&r, "POST /echo with a bearer token", 200, "{\"sub\":null,\"tenant\":null,\"claims\":null,\"body\":1}");
    http_response_free(&r);
    gwt_stop(gw);
    gwf.gw = NULL;
}

/* ---- 3. per-route auth and require_claims -------------------------------------------------- */

static void expect_ok(int port, const char *path, const char *token)
{
    struct http_response r = req_token(port, "GET", path, token, NULL);
    char what[128], body[64];
    snprintf(what, sizeof what, "GET %s with %s", path, token ? "a token" : "no token");
    snprintf(body, sizeof body, "\"%s\"", path);
    gwt_expect_body(&r, what, 200, body);
    http_response_free(&r);
}

static void per_route_auth(void **state)
{
    (void)state;
    struct gwproc *gw = start_gw(suite.jwks_file);
    int port = gwproc_port(gw);
    const char *jwt = jose_token(&suite, "rs256"), *bearer = "static-token";
    /* none: anything goes */
    expect_ok(port, "/open", NULL);
    expect_ok(port, "/open", bearer);
    expect_ok(port, "/open", "not-even-a-token");
    /* bearer only */
    struct http_response r = req_token(port, "GET", "/bearer", NULL, NULL);
    expect_401(&r, "/bearer without a token", "Bearer", false);
    http_response_free(&r);
    expect_ok(port, "/bearer", bearer);
    r = req_token(port, "GET", "/bearer", jwt, NULL);
    expect_401(&r, "/bearer with a JWT", "Bearer error=\"invalid_token\"", false);
    expect_logged_auth(&r, "bearer", "/bearer with a JWT");
    http_response_free(&r);
    /* jwt only */
    r = req_token(port, "GET", "/jwt", bearer, NULL);
    expect_401(&r, "/jwt with a bearer token", "Bearer error=\"invalid_token\", error_description=", true);
    expect_logged_auth(&r, "malformed", "/jwt with a bearer token");
    http_response_free(&r);
    expect_ok(port, "/jwt", jwt);
    /* the default: any mechanism configured */
    expect_ok(port, "/any", bearer);
    expect_ok(port, "/any", jwt);
    r = req_token(port, "GET", "/any", NULL, NULL);
    expect_401(&r, "/any without a token", "Bearer", false);
    http_response_free(&r);
    /* require_claims: scope word, array contains, equality (strings, numbers) */
    expect_ok(port, "/scope", jwt); /* "orders:read orders:write" holds orders:write */
    expect_ok(port, "/editor", jwt);
    expect_ok(port, "/acme", jwt);
    const char *refused[] = { "/admin", "/owner", "/other" };
    for (size_t i = 0; i < 3; i++) {
        r = req_token(port, "GET", refused[i], jwt, NULL);
        expect_403(&r, refused[i]);
        expect_logged_auth(&r, "claims", refused[i]);
        http_response_free(&r);
    }
    char claims[256];
    snprintf(claims, sizeof claims, "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"u7\",\"level\":3}", suite.issuer,
             suite.audience);
    char *level3 = sign("ES256", claims);
    snprintf(claims, sizeof claims, "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"u7\",\"level\":\"3\"}", suite.issuer,
             suite.audience);
    char *level_text = sign("EdDSA", claims);
    expect_ok(port, "/level", level3);
    r = req_token(port, "GET", "/level", level_text, NULL);
    expect_403(&r, "/level with \"3\" (a string)");
    http_response_free(&r);
    r = req_token(port, "GET", "/acme", level3, NULL); /* sub u7, no tenant */
    expect_403(&r, "/acme as u7");
    http_response_free(&r);
    free(level3);
    free(level_text);
    gwt_scrape_t s = gwt_scrape(gw->admin_port, NULL);
    gwt_expect_metric(&s, "patterngate_http_auth_failures_total", "{\"reason\":\"claims\"}", 5);
    gwt_scrape_free(&s);
    gwt_stop(gw);
    gwf.gw = NULL;
}

/* ---- 4. the JWKS file rotated on disk ----------------------------------------------------- */

static void jwks_rotated_on_disk(void **state)
{
    (void)state;
    replace_file(suite.jwks_file, g_live_jwks);
    struct gwproc *gw = start_gw(g_live_jwks);
    int port = gwproc_port(gw);
    const char *old_key = jose_token(&suite, "rs256"), *new_key = jose_token(&suite, "rotated");
    expect_ok(port, "/jwt", old_key); /* verified, and cached */
    expect_ok(port, "/jwt", old_key);
    struct http_response r = req_token(port, "GET", "/jwt", new_key, NULL);
    expect_401(&r, "a token of the rotated key, before", "Bearer error=\"invalid_token\"", true);
    expect_logged_auth(&r, "unknown_key", "a token of the rotated key, before");
    http_response_free(&r);
    /* the rotation: rs-1 out, rs-2 in */
    replace_file(suite.jwks_rotated_file, g_live_jwks);
    poll_token_status(port, "/jwt", new_key, 200, "a token of the rotated key, after");
    r = req_token(port, "GET", "/jwt", old_key, NULL); /* cached before: the cache was emptied */
    expect_401(&r, "a token of the removed key", "Bearer error=\"invalid_token\", error_description=\"unknown kid\"",
               false);
    http_response_free(&r);
    expect_ok(port, "/jwt", jose_token(&suite, "es256")); /* kept keys stay */
    assert_int_equal(gwproc_wait_log(gw, "\"msg\":\"JWKS file reloaded\"", 1, GWT_POLL_TIMEOUT_MS), 0);
    /* a broken file: logged, counted, the keys stay */
    write_file(g_live_jwks, "{\"keys\": 5}");
    assert_int_equal(gwproc_wait_log(gw, "JWKS file reload failed", 1, GWT_POLL_TIMEOUT_MS), 0);
    expect_ok(port, "/jwt", new_key);
    gwt_scrape_t s = gwt_scrape(gw->admin_port, NULL);
    gwt_expect_metric(&s, "patterngate_jwks_reloads_total", "{\"result\":\"ok\"}", 1);
    gwt_expect_metric(&s, "patterngate_jwks_reloads_total", "{\"result\":\"failed\"}", 1);
    gwt_promtool_check(&s);
    gwt_scrape_free(&s);
    gwt_stop(gw);
    gwf.gw = NULL;
}

/* ---- 5. config reloads and the start --------------------------------------------------------- */

/* /status's config.last_reload_error, polled until it holds `needle`. */
static void poll_reload_error(int admin_port, const char *needle)
{
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    for (;;) {
        json_t *st = gwt_status(admin_port, NULL);
        const char *err = gwt_str(json_object_get(st, "config"), "last_reload_error");
        if (err && strstr(err, needle)) {
            json_decref(st);
            return;
        }
        if (deadline_remaining_ms(deadline) == 0)
            gwt_fail_json(st, "config.last_reload_error should name %s", needle);
        json_decref(st);
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
    }
}

static void config_reload_changes_the_jwks_file(void **state)
{
    (void)state;
    struct gwproc *gw = start_gw(suite.jwks_file);
    int port = gwproc_port(gw);
    const char *old_key = jose_token(&suite, "rs256"), *new_key = jose_token(&suite, "rotated");
    expect_ok(port, "/jwt", old_key);
    /* a JWKS file that cannot be loaded fails the reload: the old keys stay */
    char missing[PATH_MAX + 32];
    snprintf(missing, sizeof missing, "%s/no-such-jwks.json", suite.dir);
    char *config = edge_config(missing);
    assert_int_equal(gwproc_rewrite_config(gw, config), 0);
    free(config);
    poll_reload_error(gw->admin_port, "auth.jwt.jwks_file");
    expect_ok(port, "/jwt", old_key);
    /* another JWKS file: loaded, and the cache emptied */
    config = edge_config(suite.jwks_rotated_file);
    assert_int_equal(gwproc_rewrite_config(gw, config), 0);
    free(config);
    poll_token_status(port, "/jwt", new_key, 200, "the rotated key after the reload");
    struct http_response r = req_token(port, "GET", "/jwt", old_key, NULL);
    expect_401(&r, "the old key after the reload", "Bearer error=\"invalid_token\"", true);
    http_response_free(&r);
    gwt_stop(gw);
    gwf.gw = NULL;
}

static void start_with_an_unreadable_jwks_file(void **state)
{
    (void)state;
    char missing[PATH_MAX + 32];
    snprintf(missing, sizeof missing, "%s/no-such-jwks.json", suite.dir);
    char *config = edge_config(missing);
    struct gwproc_options o = { .no_wait = true };
    struct gwproc *gw = NULL;
    assert_int_equal(gwproc_start(config, &o, &gw), 0);
    free(config);
    gwf.gw = gw;
    int status = gwproc_wait(gw, GWPROC_STOP_TIMEOUT_MS);
    char *log = gwproc_log(gw);
    if (status != 1 || !strstr(log, "auth.jwt.jwks_file") || !strstr(log, "no-such-jwks.json"))
        fail_msg("expected exit 1 naming auth.jwt.jwks_file, got %d; log:\n%s", status, log);
    free(log);
    gwproc_free(gw);
    gwf.gw = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(every_token_of_the_suite, gwf_test_teardown),
        cmocka_unit_test_teardown(claims_reach_the_service, gwf_test_teardown),
        cmocka_unit_test_teardown(per_route_auth, gwf_test_teardown),
        cmocka_unit_test_teardown(jwks_rotated_on_disk, gwf_test_teardown),
        cmocka_unit_test_teardown(config_reload_changes_the_jwks_file, gwf_test_teardown),
        cmocka_unit_test_teardown(start_with_an_unreadable_jwks_file, gwf_test_teardown),
    };
    return cmocka_run_group_tests_name("edge_auth", tests, group_setup, group_teardown);
}
