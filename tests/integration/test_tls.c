/* TLS to upstream services (SPEC.md, Services: `tls`), driven through the
 * built binary against real Nest 12 and Nest 10 TLS services (one cmocka
 * group per version) with a throw-away PKI (tests/support/certs.h):
 * verification by IP and by name, wrong CA, wrong names, verify:false,
 * client certificates (TLS 1.3 and TLS 1.2), plain/TLS mix-ups, byte-exact
 * values, a restarted service, session resumption, start failures, and
 * `patterngate call`/`emit` with the TLS flags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/certs.h"
#include "support/deadline.h"
#include "support/gateway.h"
#include "support/http.h"
#include "support/nest.h"
#include "support/net.h"
#include "support/proc.h"

#define SERVICE_TIMEOUT_MS 20000 /* the services' timeout_ms */
#define REQ_TIMEOUT_MS 60000     /* one HTTP exchange, on a loaded machine */
#define FAST_MS 10000            /* "answered fast": well under SERVICE_TIMEOUT_MS */
#define POLL_TIMEOUT_MS 30000    /* waiting for a condition */
#define POLL_PAUSE_MS 50         /* between two polls of a condition */
#define CLI_TIMEOUT_MS 60000
#define MAX_NESTS 4

/* ---- fixtures ------------------------------------------------------------ */

static struct certs g_certs;        /* made once for the whole program */
static struct gwproc *g_gw;         /* the running test's gateway */
static struct nest_service g_nests[MAX_NESTS]; /* ... and its services */
static int g_nnests;

typedef struct group {
    const char *version;            /* "v12", "v10" */
} group_t;

static group_t g_v12 = { "v12" };
static group_t g_v10 = { "v10" };

/* The group's Nest version must be installed (else the group fails). */
static int group_setup(void **state, group_t *g)
{
    nest_require(g->version);
    *state = g;
    return 0;
}

static int group_setup_v12(void **state) { return group_setup(state, &g_v12); }
static int group_setup_v10(void **state) { return group_setup(state, &g_v10); }

static void print_log_tail(void)
{
    if (g_gw)
        gwproc_print_log(g_gw, "at the failure", 60);
}

/* After each test: whatever it left running is killed. */
static int teardown(void **state)
{
    (void)state;
    gwproc_free(g_gw);
    g_gw = NULL;
    for (int i = 0; i < g_nnests; i++)
        nest_kill(&g_nests[i]);
    g_nnests = 0;
    return 0;
}

/* ---- Nest services -------------------------------------------------------- */

struct svc_opts {
    const char *key, *cert;  /* NULL: plain TCP */
    const char *ca;          /* client certificates must chain to it */
    bool request_cert;
    bool tls12;              /* --tls-max-version TLSv1.2 */
};

/* nest_start() cannot pass --tls-max-version: starts such a service the
 * same way (READY <port> on stdout), on a free port. */
static int start_tls12(const char *version, const struct svc_opts *o, struct nest_service *svc)
{
    memset(svc, 0, sizeof *svc);
    snprintf(svc->version, sizeof svc->version, "%s", version);
    const char *node = getenv("PG_NODE");
    char script[PATH_MAX];
    snprintf(script, sizeof script, "%s/tests/nest/%s/main.mjs", PG_SOURCE_DIR, version);
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = testnet_free_port();
        if (port < 0)
            return port;
        char port_text[16];
        snprintf(port_text, sizeof port_text, "%d", port);
        const char *argv[20] = { node && *node ? node : "node", script, "--port", port_text,
                                 "--tls-key", o->key, "--tls-cert", o->cert,
                                 "--tls-max-version", "TLSv1.2", "--quiet" };
        int n = 11;
        if (o->ca) {
            argv[n++] = "--tls-ca";
            argv[n++] = o->ca;
        }
        if (o->request_cert)
            argv[n++] = "--request-cert";
        argv[n] = NULL;
        struct proc_options popts = { .stdout_mode = PROC_STDIO_PIPE,
                                      .stderr_mode = PROC_STDIO_CAPTURE };
        struct proc *p = NULL;
        int rc = proc_spawn(argv, &popts, &p);
        if (rc != 0)
            return rc;
        char line[128];
        int reported = -1;
        rc = proc_read_line(p, line, sizeof line, NEST_START_TIMEOUT_MS);
        if (rc > 0 && sscanf(line, "READY %d", &reported) == 1 && reported == port) {
            svc->proc = p;
            svc->port = port;
            return 0;
        }
        proc_wait(p, 5000);
        char *err = proc_stderr_text(p);
        bool busy = err && strstr(err, "EADDRINUSE");
        if (!busy)
            fprintf(stderr, "the TLS 1.2 Nest %s service did not start:\n%s\n", version,
                    err ? err : "");
        free(err);
        proc_free(p);
        if (!busy)
            return -ECHILD;
    }
    return -EADDRINUSE;
}

/* Starts a service of the group's version for the running test. */
static struct nest_service *start_nest(void **state, const struct svc_opts *o)
{
    const group_t *g = *state;
    assert_true(g_nnests < MAX_NESTS);
    struct nest_service *svc = &g_nests[g_nnests];
    int rc;
    if (o && o->tls12) {
        rc = start_tls12(g->version, o, svc);
    } else {
        struct nest_options no = { .quiet = true };
        if (o) {
            no.tls_key = o->key;
            no.tls_cert = o->cert;
            no.tls_ca = o->ca;
            no.request_cert = o->request_cert;
        }
        rc = nest_start(g->version, &no, svc);
    }
    if (rc != 0)
        fail_msg("the Nest %s service did not start: %s", g->version, strerror(-rc));
    g_nnests++;
    return svc;
}

static struct nest_service *start_tls_nest(void **state, const char *key, const char *cert)
{
    return start_nest(state, &(struct svc_opts){ .key = key, .cert = cert });
}

static struct nest_service *start_mtls_nest(void **state, bool tls12)
{
    return start_nest(state, &(struct svc_opts){ .key = g_certs.server_key,
                                                 .cert = g_certs.server_crt,
                                                 .ca = g_certs.ca_crt,
                                                 .request_cert = true, .tls12 = tls12 });
}

/* ---- the gateway ------------------------------------------------------------ */

/* One service of a gateway config. */
struct svc_def {
    const char *name;
    const char *host;        /* NULL: 127.0.0.1 */
    int port;
    bool tls;
    const char *ca, *cert, *key, *servername;
    int verify;              /* 0: absent, 1: true, -1: false */
    const char *extra;       /* more members, e.g. "\"max_message_bytes\": 4096" */
};

/* A config with the generic API on for every service (heap, caller frees). */
static char *gw_config(const struct svc_def *defs, size_t n)
{
    size_t cap = 4096 + n * (6 * PATH_MAX + 512);
    char *c = malloc(cap);
    assert_non_null(c);
    size_t len = (size_t)snprintf(c, cap,
        "{\n"
        "  \"listen\": \"127.0.0.1:${GW_PORT}\",\n"
        "  \"generic_api\": true,\n"
        "  \"log\": { \"level\": \"info\" },\n"
        "  \"limits\": { \"max_body_bytes\": 16777216 },\n"
        "  \"services\": {\n");
    for (size_t i = 0; i < n; i++) {
        const struct svc_def *d = &defs[i];
        len += (size_t)snprintf(c + len, cap - len,
            "    \"%s\": { \"endpoints\": [\"%s:%d\"], \"timeout_ms\": %d",
            d->name, d->host ? d->host : "127.0.0.1", d->port, SERVICE_TIMEOUT_MS);
        if (d->extra)
            len += (size_t)snprintf(c + len, cap - len, ", %s", d->extra);
        if (d->tls) {
            len += (size_t)snprintf(c + len, cap - len, ",\n      \"tls\": {");
            const char *sep = " ";
            const char *keys[] = { "ca", "cert", "key", "servername" };
            const char *vals[] = { d->ca, d->cert, d->key, d->servername };
            for (size_t k = 0; k < 4; k++) {
                if (!vals[k])
                    continue;
                len += (size_t)snprintf(c + len, cap - len, "%s\"%s\": \"%s\"", sep, keys[k], vals[k]);
                sep = ", ";
            }
            if (d->verify)
                len += (size_t)snprintf(c + len, cap - len, "%s\"verify\": %s", sep,
                                        d->verify > 0 ? "true" : "false");
            len += (size_t)snprintf(c + len, cap - len, " }");
        }
        len += (size_t)snprintf(c + len, cap - len, " }%s\n", i + 1 < n ? "," : "");
    }
    snprintf(c + len, cap - len, "  }\n}\n");
    return c;
}

/* Starts the gateway on a config of those services; fails the test if it
 * does not come up. */
static struct gwproc *start_gateway(const struct svc_def *defs, size_t n)
{
    char *config = gw_config(defs, n);
    struct gwproc *gw = NULL;
    int rc = gwproc_start(config, NULL, &gw);
    if (rc != 0) {
        fprintf(stderr, "---- the config ----\n%s---- end of the config ----\n", config);
        free(config);
        fail_msg("the gateway did not start: %s", strerror(-rc));
    }
    free(config);
    g_gw = gw;
    return gw;
}

/* SIGTERM; the gateway must exit 0 (an ASan build exits non-zero on a leak).
 * Its log must not hold key material (SPEC.md: TLS keys are never logged). */
static void stop_gateway(void)
{
    char *log = gwproc_log(g_gw);
    assert_non_null(log);
    bool key_logged = strstr(log, "PRIVATE KEY") != NULL;
    free(log);
    if (key_logged) {
        print_log_tail();
        fail_msg("the gateway's log holds a private key");
    }
    int status = gwproc_stop(g_gw, GWPROC_STOP_TIMEOUT_MS);
    if (status != 0) {
        char buf[64];
        gwproc_print_log(g_gw, "stopping", 60);
        fail_msg("the gateway ended with %s after SIGTERM, expected exit 0",
                 proc_status_str(status, buf, sizeof buf));
    }
    gwproc_free(g_gw);
    g_gw = NULL;
}

/* Whether one line of the gateway's log holds every needle (NULL-ended). */
static bool log_has_line(const char *const *needles)
{
    char *log = gwproc_log(g_gw);
    assert_non_null(log);
    bool found = false;
    for (char *line = log; line && *line && !found;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        found = true;
        for (size_t i = 0; needles[i] && found; i++)
            found = strstr(line, needles[i]) != NULL;
        line = end ? end + 1 : NULL;
    }
    free(log);
    return found;
}

/* Polls the log until a line holds every needle; fails after
 * POLL_TIMEOUT_MS. */
static void wait_log_line(const char *const *needles)
{
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    while (!log_has_line(needles)) {
        if (deadline_remaining_ms(deadline) == 0) {
            char all[512] = "";
            for (size_t i = 0, len = 0; needles[i] && len < sizeof all; i++)
                len += (size_t)snprintf(all + len, sizeof all - len, "%s%s", i ? " and " : "", needles[i]);
            print_log_tail();
            fail_msg("no gateway log line with %s within %d ms", all, POLL_TIMEOUT_MS);
        }
        deadline_pause_ms(POLL_PAUSE_MS);
    }
}

/* ---- requests -------------------------------------------------------------------- */

/* POST /v1/send/<service> with body; *elapsed_ms (if not NULL) receives
 * how long the answer took. Fails the test if no response came. */
static struct http_response send_to(const char *service, const char *body, size_t len,
                                    int64_t *elapsed_ms)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/send/%s", service);
    struct http_request req = { .method = "POST", .path = path, .body = body, .body_len = len };
    struct http_response resp;
    int64_t start = deadline_now_ms();
    int rc = http_fetch(gwproc_port(g_gw), &req, &resp, REQ_TIMEOUT_MS);
    if (rc != 0) {
        print_log_tail();
        fail_msg("POST %s: no response: %s", path, strerror(-rc));
    }
    if (elapsed_ms)
        *elapsed_ms = deadline_now_ms() - start;
    return resp;
}

static void fail_response(const struct http_response *r, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_response(const struct http_response *r, const char *what, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *dump = http_response_dump(r, 2000);
    print_log_tail();
    fprintf(stderr, "---- response ----\n%s\n---- end of response ----\n", dump ? dump : "");
    free(dump);
    fail_msg("%s: %s", what, msg);
}

/* Sends and expects 200 with exactly `expected` as the body. */
static void expect_ok(const char *service, const char *body, const char *expected)
{
    char what[256];
    snprintf(what, sizeof what, "POST /v1/send/%s %.120s", service, body);
    struct http_response r = send_to(service, body, strlen(body), NULL);
    size_t len = strlen(expected);
    if (r.status != 200)
        fail_response(&r, what, "status %d, expected 200", r.status);
    if (r.body_len != len || memcmp(r.body, expected, len) != 0)
        fail_response(&r, what, "the body differs; expected %s", expected);
    http_response_free(&r);
}

static const char SUM[] = "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2,3]}";

static void expect_sum(const char *service)
{
    expect_ok(service, SUM, "6");
}

/* Checks an error answer: status, the error code (code, or code2 when not
 * NULL), and that its message holds every needle (NULL-ended). */
static void check_error(const struct http_response *r, const char *what, int status,
                        const char *code, const char *code2, const char *const *needles)
{
    if (r->status != status)
        fail_response(r, what, "status %d, expected %d %s", r->status, status, code);
    json_error_t jerr;
    json_t *j = json_loadb(r->body, r->body_len, 0, &jerr);
    if (!j || !json_is_object(j))
        fail_response(r, what, "the body is not a JSON object: %s", jerr.text);
    json_t *sc = json_object_get(j, "statusCode");
    if (!json_is_integer(sc) || json_integer_value(sc) != status)
        fail_response(r, what, "statusCode is not %d", status);
    const char *e = json_string_value(json_object_get(j, "error"));
    if (!e || (strcmp(e, code) != 0 && (!code2 || strcmp(e, code2) != 0)))
        fail_response(r, what, "error is \"%s\", expected \"%s\"%s%s", e ? e : "(none)", code,
                      code2 ? " or " : "", code2 ? code2 : "");
    const char *m = json_string_value(json_object_get(j, "message"));
    if (!m || !*m)
        fail_response(r, what, "no message");
    for (size_t i = 0; needles && needles[i]; i++)
        if (!strstr(m, needles[i]))
            fail_response(r, what, "the message does not say \"%s\"", needles[i]);
    json_decref(j);
}

/* Sends SUM to service, expects a 503 upstream_unavailable whose message
 * holds the needles, answered within max_ms. */
static void expect_unavailable(const char *service, int64_t max_ms, const char *const *needles)
{
    char what[128];
    snprintf(what, sizeof what, "POST /v1/send/%s", service);
    int64_t ms;
    struct http_response r = send_to(service, SUM, strlen(SUM), &ms);
    check_error(&r, what, 503, "upstream_unavailable", NULL, needles);
    if (ms >= max_ms)
        fail_response(&r, what, "answered after %lld ms, expected < %lld ms", (long long)ms,
                      (long long)max_ms);
    http_response_free(&r);
}

/* Polls SUM until it answers 200 "6" or POLL_TIMEOUT_MS pass. */
static void poll_sum(const char *service)
{
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    for (;;) {
        struct http_response r = send_to(service, SUM, strlen(SUM), NULL);
        bool ok = r.status == 200 && strcmp(r.body, "6") == 0;
        if (!ok && deadline_remaining_ms(deadline) == 0)
            fail_response(&r, "POST /v1/send (polled)", "no 200 \"6\" within %d ms", POLL_TIMEOUT_MS);
        http_response_free(&r);
        if (ok)
            return;
        deadline_pause_ms(POLL_PAUSE_MS);
    }
}

/* ---- verification ------------------------------------------------------------------ */

/* The right CA: an IP endpoint is verified against the IP SAN, a DNS
 * endpoint against the DNS SAN, and servername overrides the host. */
static void verified_by_ip_and_by_name(void **state)
{
    struct nest_service *n = start_tls_nest(state, g_certs.server_key, g_certs.server_crt);
    const char *ca = g_certs.ca_crt;
    struct svc_def defs[] = {
        { .name = "s", .port = n->port, .tls = true, .ca = ca },
        { .name = "byname", .host = "localhost", .port = n->port, .tls = true, .ca = ca },
        { .name = "sni", .port = n->port, .tls = true, .ca = ca, .servername = "localhost",
          .verify = 1 },
    };
    start_gateway(defs, 3);
    expect_sum("s");
    expect_sum("byname");
    expect_sum("sni");
    expect_ok("s", "{\"pattern\":\"echo\",\"data\":\"tls\"}", "\"tls\"");
    /* one connection line per service, each over TLS */
    wait_log_line((const char *const[]){ "\"msg\":\"upstream connected\"", "\"service\":\"s\"",
                                          "\"tls\":\"TLSv1.3\"", NULL });
    wait_log_line((const char *const[]){ "\"msg\":\"upstream connected\"", "\"service\":\"byname\"",
                                          "\"from\":\"localhost\"", NULL });
    stop_gateway();
}

/* A server certificate from another CA: 503 at once, saying why. */
static void wrong_ca_is_503_fast(void **state)
{
    struct nest_service *n = start_tls_nest(state, g_certs.server_key, g_certs.server_crt);
    struct svc_def defs[] = {
        { .name = "s", .port = n->port, .tls = true, .ca = g_certs.other_ca_crt,
          .servername = "localhost" },
    };
    start_gateway(defs, 1);
    const char *const needles[] = { "certificate verify failed", "unable to get local issuer certificate",
                                    NULL };
    expect_unavailable("s", FAST_MS, needles);
    expect_unavailable("s", FAST_MS, needles); /* again, from the backoff */
    stop_gateway();
}

/* Certificates for other names. */
static void wrong_names_are_503(void **state)
{
    struct nest_service *wrong = start_tls_nest(state, g_certs.wrongname_key, g_certs.wrongname_crt);
    struct nest_service *dns = start_tls_nest(state, g_certs.dnsonly_key, g_certs.dnsonly_crt);
    const char *ca = g_certs.ca_crt;
    struct svc_def defs[] = {
        { .name = "wrongname", .port = wrong->port, .tls = true, .ca = ca, .servername = "localhost" },
        { .name = "wrongip", .port = wrong->port, .tls = true, .ca = ca },
        { .name = "dnsonly", .port = dns->port, .tls = true, .ca = ca },
        { .name = "dnsonly_byname", .port = dns->port, .tls = true, .ca = ca,
          .servername = "localhost" },
    };
    start_gateway(defs, 4);
    expect_unavailable("wrongname", FAST_MS,
                       (const char *const[]){ "certificate verify failed", "mismatch", NULL });
    expect_unavailable("wrongip", FAST_MS,
                       (const char *const[]){ "certificate verify failed", "mismatch", NULL });
    /* the IP is not in the certificate, its name is */
    expect_unavailable("dnsonly", FAST_MS,
                       (const char *const[]){ "certificate verify failed", "IP address mismatch", NULL });
    expect_sum("dnsonly_byname");
    stop_gateway();
}

/* verify:false accepts the certificate of another CA, and says so. */
static void verify_false_is_warned(void **state)
{
    struct nest_service *n = start_tls_nest(state, g_certs.server_key, g_certs.server_crt);
    struct svc_def defs[] = {
        { .name = "s", .port = n->port, .tls = true, .ca = g_certs.other_ca_crt, .verify = -1 },
    };
    start_gateway(defs, 1);
    expect_sum("s");
    wait_log_line((const char *const[]){ "\"level\":\"warn\"", "services.s.tls.verify", NULL });
    stop_gateway();
}

/* ---- client certificates ----------------------------------------------------------------- */

/* Against a service on port that requires a client certificate of ca. */
static void mtls_cases(int port, bool tls12)
{
    const char *ca = g_certs.ca_crt;
    struct svc_def defs[] = {
        { .name = "s", .port = port, .tls = true, .ca = ca, .cert = g_certs.client_crt,
          .key = g_certs.client_key },
        { .name = "nocert", .port = port, .tls = true, .ca = ca },
        { .name = "othercert", .port = port, .tls = true, .ca = ca, .cert = g_certs.other_client_crt,
          .key = g_certs.other_client_key },
    };
    start_gateway(defs, 3);
    expect_sum("s");
    if (tls12)
        wait_log_line((const char *const[]){ "\"msg\":\"upstream connected\"", "\"service\":\"s\"",
                                              "\"tls\":\"TLSv1.2\"", NULL });
    /* In TLS 1.3 the server rejects a missing certificate after the
     * client's handshake is done: still no connection, not a closed one. */
    expect_unavailable("nocert", FAST_MS,
                       tls12 ? NULL : (const char *const[]){ "certificate required", NULL });
    expect_unavailable("othercert", FAST_MS, NULL);
    expect_sum("s");
    stop_gateway();
}

static void client_certificates(void **state)
{
    mtls_cases(start_mtls_nest(state, false)->port, false);
}

static void client_certificates_tls12(void **state)
{
    mtls_cases(start_mtls_nest(state, true)->port, true);
}

/* A server that speaks TLS 1.2 at most. */
static void plain_tls12(void **state)
{
    struct nest_service *n = start_nest(state, &(struct svc_opts){ .key = g_certs.server_key,
                                                                    .cert = g_certs.server_crt,
                                                                    .tls12 = true });
    struct svc_def defs[] = {
        { .name = "s", .port = n->port, .tls = true, .ca = g_certs.ca_crt },
    };
    start_gateway(defs, 1);
    expect_sum("s");
    wait_log_line((const char *const[]){ "\"msg\":\"upstream connected\"", "\"tls\":\"TLSv1.2\"", NULL });
    stop_gateway();
}

/* ---- mix-ups ------------------------------------------------------------------------------- */

/* Plain TCP to a TLS port: the TLS server does not speak Nest: 502 soon,
 * never a timeout. TLS to a plain port: no handshake: 503 within
 * connect_timeout_ms. */
static void plain_and_tls_mixed_up(void **state)
{
    struct nest_service *tls = start_tls_nest(state, g_certs.server_key, g_certs.server_crt);
    struct nest_service *plain = start_nest(state, NULL);
    struct svc_def defs[] = {
        { .name = "plain2tls", .port = tls->port },
        { .name = "tls2plain", .port = plain->port, .tls = true, .ca = g_certs.ca_crt,
          .extra = "\"connect_timeout_ms\": 1000" },
    };
    start_gateway(defs, 2);
    int64_t ms;
    struct http_response r = send_to("plain2tls", SUM, strlen(SUM), &ms);
    check_error(&r, "plain TCP to a TLS port", 502, "upstream_closed", "bad_upstream_message", NULL);
    if (ms >= 5000)
        fail_response(&r, "plain TCP to a TLS port", "answered after %lld ms", (long long)ms);
    http_response_free(&r);

    expect_unavailable("tls2plain", 1000 + 4000, NULL);
    expect_unavailable("tls2plain", 1000 + 4000, NULL);
    stop_gateway();
}

/* ---- values ------------------------------------------------------------------------------------ */

/* "<unit repeated>" of about size bytes, as a JSON string (with quotes). */
static char *unicode_string(size_t size)
{
    static const char unit[] = "h\xc3\xa9llo \xed\x95\x9c\xea\xb5\xad \xf0\x9f\x98\x80 x ";
    size_t ulen = sizeof unit - 1;
    char *s = malloc(size + ulen + 3);
    assert_non_null(s);
    size_t len = 0;
    s[len++] = '"';
    while (len < size) {
        memcpy(s + len, unit, ulen);
        len += ulen;
    }
    s[len++] = '"';
    s[len] = '\0';
    return s;
}

static void unicode_and_large_values(void **state)
{
    struct nest_service *n = start_tls_nest(state, g_certs.server_key, g_certs.server_crt);
    struct svc_def defs[] = {
        { .name = "s", .port = n->port, .tls = true, .ca = g_certs.ca_crt, .servername = "localhost" },
    };
    start_gateway(defs, 1);
    expect_ok("s", "{\"pattern\":{\"cmd\":\"echo\"},\"data\":{\"s\":\"h\xc3\xa9llo \xed\x95\x9c\xea\xb5\xad "
                   "\xf0\x9f\x98\x80\"}}",
              "{\"s\":\"h\xc3\xa9llo \xed\x95\x9c\xea\xb5\xad \xf0\x9f\x98\x80\"}");

    char *value = unicode_string(5 * 1024 * 1024);
    size_t vlen = strlen(value);
    char *body = malloc(vlen + 64);
    assert_non_null(body);
    size_t blen = (size_t)sprintf(body, "{\"pattern\":{\"cmd\":\"echo\"},\"data\":%s}", value);
    struct http_response r = send_to("s", body, blen, NULL);
    if (r.status != 200)
        fail_response(&r, "5 MB echo over TLS", "status %d", r.status);
    if (r.body_len != vlen || memcmp(r.body, value, vlen) != 0)
        fail_response(&r, "5 MB echo over TLS", "the value came back different (%zu bytes, sent %zu)",
                      r.body_len, vlen);
    http_response_free(&r);
    free(body);
    free(value);
    expect_sum("s");
    stop_gateway();
}

/* ---- connections ---------------------------------------------------------------------------- */

static void service_restarted(void **state)
{
    struct nest_service *n = start_tls_nest(state, g_certs.server_key, g_certs.server_crt);
    struct svc_def defs[] = {
        { .name = "s", .port = n->port, .tls = true, .ca = g_certs.ca_crt },
    };
    start_gateway(defs, 1);
    expect_sum("s");
    assert_int_equal(nest_restart_same_port(n), 0);
    poll_sum("s");
    expect_ok("s", "{\"pattern\":\"echo\",\"data\":[\"again\"]}", "[\"again\"]");
    stop_gateway();
}

/* A reply over max_message_bytes drops the connection while the service
 * stays up; the next connection resumes the TLS session. */
static void session_resumed_on_reconnect(void **state)
{
    struct nest_service *n = start_tls_nest(state, g_certs.server_key, g_certs.server_crt);
    struct svc_def defs[] = {
        { .name = "s", .port = n->port, .tls = true, .ca = g_certs.ca_crt,
          .extra = "\"max_message_bytes\": 4096" },
    };
    start_gateway(defs, 1);
    expect_sum("s");
    wait_log_line((const char *const[]){ "\"msg\":\"upstream connected\"", "\"service\":\"s\"",
                                          "\"resumed\":false", NULL });

    char *value = malloc(10000 + 3);
    assert_non_null(value);
    value[0] = '"';
    memset(value + 1, 'r', 10000);
    strcpy(value + 10001, "\"");
    char *body = malloc(10100);
    assert_non_null(body);
    int blen = sprintf(body, "{\"pattern\":{\"cmd\":\"echo\"},\"data\":%s}", value);
    struct http_response r = send_to("s", body, (size_t)blen, NULL);
    check_error(&r, "a reply over max_message_bytes", 502, "bad_upstream_message", NULL, NULL);
    http_response_free(&r);
    free(body);
    free(value);

    poll_sum("s");
    wait_log_line((const char *const[]){ "\"msg\":\"upstream connected\"", "\"service\":\"s\"",
                                          "\"resumed\":true", NULL });
    stop_gateway();
}

/* ---- start failures ---------------------------------------------------------------------------- */

/* The gateway must exit 1 and its log name `field`. */
static void expect_start_failure(const struct svc_def *def, const char *field)
{
    char *config = gw_config(def, 1);
    struct gwproc_options o = { .no_wait = true };
    int rc = gwproc_start(config, &o, &g_gw);
    free(config);
    assert_int_equal(rc, 0);
    int status = gwproc_wait(g_gw, GWPROC_STOP_TIMEOUT_MS);
    char *log = gwproc_log(g_gw);
    bool named = log && strstr(log, field);
    free(log);
    if (status != 1 || !named) {
        char buf[64];
        print_log_tail();
        fail_msg("expected exit 1 naming %s, got %s%s", field, proc_status_str(status, buf, sizeof buf),
                 named ? "" : " and a log without it");
    }
    gwproc_free(g_gw);
    g_gw = NULL;
}

static void bad_tls_files_stop_the_start(void **state)
{
    (void)state;
    int port = testnet_free_port();
    char missing[PATH_MAX + 32];
    snprintf(missing, sizeof missing, "%s/no-such-ca.crt", g_certs.dir);
    struct svc_def def = { .name = "s", .port = port, .tls = true, .ca = missing };
    expect_start_failure(&def, "services.s.tls.ca");
    /* a key that is not the certificate's */
    struct svc_def mismatch = { .name = "s", .port = port, .tls = true, .ca = g_certs.ca_crt,
                                .cert = g_certs.client_crt, .key = g_certs.other_client_key };
    expect_start_failure(&mismatch, "services.s.tls.key");
}

/* ---- patterngate call / emit ------------------------------------------------------------------- */

typedef struct gwcli_result result_t;

/* Runs `patterngate <args...>` (NULL-terminated) to completion. */
#define run(...) checked_run(gwcli_run(CLI_TIMEOUT_MS, __VA_ARGS__))

static result_t checked_run(result_t r)
{
    assert_true(r.status >= 0);
    return r;
}


static void expect_run(const result_t *r, const char *what, int status, const char *out,
                       const char *const *err_needles)
{
    bool ok = r->status == status && (!out || strcmp(r->out, out) == 0);
    for (size_t i = 0; ok && err_needles && err_needles[i]; i++)
        ok = strstr(r->err, err_needles[i]) != NULL;
    if (!ok)
        fail_msg("%s: exit %d (expected %d)\n---- stdout ----\n%s\n---- stderr ----\n%s", what, r->status,
                 status, r->out, r->err);
}

static void cli_call_and_emit(void **state)
{
    struct nest_service *n = start_tls_nest(state, g_certs.server_key, g_certs.server_crt);
    struct nest_service *m = start_mtls_nest(state, false);
    char addr[32], maddr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", n->port);
    snprintf(maddr, sizeof maddr, "127.0.0.1:%d", m->port);
    const char *ca = g_certs.ca_crt;

    result_t r = run("call", "--tls-ca", ca, "--servername", "localhost", addr, "{\"cmd\":\"sum\"}",
                     "[1,2]", NULL);
    expect_run(&r, "call --tls-ca --servername", 0, "3\n", NULL);
    gwcli_result_free(&r);

    r = run("call", "--tls-ca", ca, addr, "{\"cmd\":\"sum\"}", "[1,2]", NULL);
    expect_run(&r, "call --tls-ca (the IP verified)", 0, "3\n", NULL);
    gwcli_result_free(&r);

    r = run("call", "--insecure", addr, "{\"cmd\":\"sum\"}", "[1,2]", NULL);
    expect_run(&r, "call --insecure", 0, "3\n", NULL);
    gwcli_result_free(&r);

    r = run("call", "--tls-ca", g_certs.other_ca_crt, "--servername", "localhost", addr,
            "{\"cmd\":\"sum\"}", "[1,2]", NULL);
    expect_run(&r, "call with the wrong CA", 1, "",
               (const char *const[]){ "\"error\":\"upstream_unavailable\"", "certificate verify failed",
                                      NULL });
    gwcli_result_free(&r);

    r = run("call", "--tls-ca", ca, "--tls-cert", g_certs.client_crt, "--tls-key", g_certs.client_key,
            maddr, "{\"cmd\":\"sum\"}", "[1,2]", NULL);
    expect_run(&r, "call with a client certificate", 0, "3\n", NULL);
    gwcli_result_free(&r);

    r = run("call", "--tls-ca", ca, maddr, "{\"cmd\":\"sum\"}", "[1,2]", NULL);
    expect_run(&r, "call without the client certificate", 1, "",
               (const char *const[]){ "\"error\":\"upstream_unavailable\"", NULL });
    gwcli_result_free(&r);

    /* emit: the event arrives (the service records it) */
    r = run("emit", "--tls-ca", ca, "--tls-cert", g_certs.client_crt, "--tls-key", g_certs.client_key,
            maddr, "record", "{\"who\":\"Zo\xc3\xab\"}", NULL);
    expect_run(&r, "emit over mTLS", 0, "", NULL);
    gwcli_result_free(&r);
    int64_t deadline = deadline_after(POLL_TIMEOUT_MS);
    for (;;) {
        r = run("call", "--tls-ca", ca, "--tls-cert", g_certs.client_crt, "--tls-key", g_certs.client_key,
                maddr, "{\"cmd\":\"recorded\"}", NULL);
        bool done = r.status == 0 && strcmp(r.out, "[{\"who\":\"Zo\xc3\xab\"}]\n") == 0;
        if (!done && deadline_remaining_ms(deadline) == 0)
            expect_run(&r, "the emitted event recorded", 0, "[{\"who\":\"Zo\xc3\xab\"}]\n", NULL);
        gwcli_result_free(&r);
        if (done)
            break;
        deadline_pause_ms(POLL_PAUSE_MS);
    }
}

int main(void)
{
    if (certs_make(&g_certs) != 0) {
        fprintf(stderr, "test_tls: could not make the test certificates\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(verified_by_ip_and_by_name, teardown),
        cmocka_unit_test_teardown(wrong_ca_is_503_fast, teardown),
        cmocka_unit_test_teardown(wrong_names_are_503, teardown),
        cmocka_unit_test_teardown(verify_false_is_warned, teardown),
        cmocka_unit_test_teardown(client_certificates, teardown),
        cmocka_unit_test_teardown(client_certificates_tls12, teardown),
        cmocka_unit_test_teardown(plain_tls12, teardown),
        cmocka_unit_test_teardown(plain_and_tls_mixed_up, teardown),
        cmocka_unit_test_teardown(unicode_and_large_values, teardown),
        cmocka_unit_test_teardown(service_restarted, teardown),
        cmocka_unit_test_teardown(session_resumed_on_reconnect, teardown),
        cmocka_unit_test_teardown(bad_tls_files_stop_the_start, teardown),
        cmocka_unit_test_teardown(cli_call_and_emit, teardown),
    };
    const struct CMUnitTest tests10[] = {
        cmocka_unit_test_teardown(verified_by_ip_and_by_name, teardown),
        cmocka_unit_test_teardown(wrong_ca_is_503_fast, teardown),
        cmocka_unit_test_teardown(client_certificates, teardown),
        cmocka_unit_test_teardown(client_certificates_tls12, teardown),
        cmocka_unit_test_teardown(plain_tls12, teardown),
        cmocka_unit_test_teardown(plain_and_tls_mixed_up, teardown),
        cmocka_unit_test_teardown(unicode_and_large_values, teardown),
        cmocka_unit_test_teardown(session_resumed_on_reconnect, teardown),
        cmocka_unit_test_teardown(cli_call_and_emit, teardown),
    };
    int failed = cmocka_run_group_tests_name("tls_nest12", tests, group_setup_v12, NULL);
    failed += cmocka_run_group_tests_name("tls_nest10", tests10, group_setup_v10, NULL);
    certs_free(&g_certs);
    return failed;
}
