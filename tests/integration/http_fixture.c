/* The fixture of the HTTP API tests (test_http.c, test_http_clients.c):
 * see http_fixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "integration/http_fixture.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/deadline.h"
#include "support/proc.h"

/* ---- fixtures ------------------------------------------------------------ */

/* A gateway and a Nest service that the running test started for itself;
 * the test's teardown kills them if the test failed before it could. */
static struct gwproc *g_own;
static struct nest_service *g_own_nest;

const char MAIN_CONFIG[] =
    "{\n"
    "  \"listen\": \"127.0.0.1:${GW_PORT}\",\n"
    "  \"generic_api\": [\"nest\"],\n"
    "  \"log\": { \"level\": \"info\", \"access\": true },\n"
    "  \"limits\": { \"max_body_bytes\": 8388608 },\n"
    "  \"services\": {\n"
    "    \"nest\": { \"endpoints\": [\"${NEST_ADDR}\"], \"timeout_ms\": 20000 },\n"
    "    \"hidden\": { \"endpoints\": [\"${NEST_ADDR}\"] },\n"
    "    \"nometa\": { \"endpoints\": [\"${NEST_ADDR}\"], \"metadata\": false }\n"
    "  },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/sum\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"sum\" }, \"data\": \"$body\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/echo\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" } },\n"
    "    { \"method\": \"PUT\", \"path\": \"/echo\", \"service\": \"nest\", \"pattern\": \"echo\" },\n"
    "    { \"method\": \"GET\", \"path\": \"/users/me\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"me\": true } },\n"
    "    { \"method\": \"GET\", \"path\": \"/users/:id\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"id\": \"$path.id:int\", \"full\": \"$query.full:bool\", \"lang\": \"$header.accept-language\",\n"
    "                \"n\": \"$query.n:number\", \"j\": \"$query.j:json\", \"raw\": \"$path.id\" } },\n"
    "    { \"method\": \"GET\", \"path\": \"/names/:name\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"name\": \"$path.name\", \"q\": \"$query.q\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/members\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"a\": \"$body.a\", \"b\": \"$body.a.b\", \"missing\": \"$body.zzz\" } },\n"
    "    { \"method\": \"GET\", \"path\": \"/files/readme\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"readme\": true } },\n"
    "    { \"method\": \"GET\", \"path\": \"/files/*rest\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"rest\": \"$path.rest\" } },\n"
    "    { \"method\": \"GET\", \"path\": \"/literal/:id\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"s\": \"id $path.id\", \"arr\": [\"$path.id\", 1, null, true, \"$query.x:int\"],\n"
    "                \"obj\": { \"deep\": { \"v\": \"$path.id:int\" } }, \"dollar\": \"$$notaref\",\n"
    "                \"h\": \"$header.x-missing\", \"q\": \"$query.missing\" } },\n"
    "    { \"method\": \"*\", \"path\": \"/any\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" }, \"data\": \"any\" },\n"
    "    { \"method\": \"GET\", \"path\": \"/tpl/:id\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"...\": \"$query\", \"id\": \"$path.id:int\", \"t\": \"$header.x-t?\", \"ip\": \"$client.ip\" } },\n"
    "    { \"method\": \"PATCH\", \"path\": \"/tpl/:id\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": { \"...\": \"$body\", \"id\": \"$path.id:int\", \"title\": \"$body.title?\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/tpl-headers\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" },\n"
    "      \"data\": \"$headers\" },\n"
    "    { \"method\": \"GET\", \"path\": \"/default\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" } },\n"
    "    { \"method\": \"DELETE\", \"path\": \"/default\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/events\", \"service\": \"nest\", \"pattern\": \"record\", \"kind\": \"emit\" },\n"
    "    { \"method\": \"GET\", \"path\": \"/recorded\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"recorded\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/recorded/clear\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"recorded_clear\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/stream\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/stream-array\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"stream\" },\n"
    "      \"reply\": \"array\" },\n"
    "    { \"method\": \"GET\", \"path\": \"/nothing\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"nothing\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/created\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"echo\" }, \"status\": 201 },\n"
    "    { \"method\": \"POST\", \"path\": \"/rpc_object\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"rpc_object\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/rpc_string\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"rpc_string\" } },\n"
    "    { \"method\": \"GET\", \"path\": \"/throw\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"throw\" } },\n"
    "    { \"method\": \"GET\", \"path\": \"/no_handler\", \"service\": \"nest\", \"pattern\": \"no_such_pattern\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/delay\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"delay\" },\n"
    "      \"timeout_ms\": 1000 },\n"
    "    { \"method\": \"POST\", \"path\": \"/slow\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"delay\" },\n"
    "      \"timeout_ms\": 30000 },\n"
    "    { \"method\": \"GET\", \"path\": \"/metadata\", \"service\": \"nest\", \"pattern\": { \"cmd\": \"metadata\" } },\n"
    "    { \"method\": \"GET\", \"path\": \"/metadata-off\", \"service\": \"nometa\", \"pattern\": { \"cmd\": \"metadata\" } }\n"
    "  ]\n"
    "}\n";

/* Starts a gateway on `config` with NEST_ADDR set to address (may be NULL)
 * plus the extra env; fails the test if it does not come up. */
struct gwproc *start_gateway(const char *config, const char *address,
                                    const struct gwproc_options *base)
{
    char nest_env[64];
    snprintf(nest_env, sizeof nest_env, "NEST_ADDR=%s", address ? address : "127.0.0.1:1");
    const char *env[16] = { nest_env };
    size_t n = 1;
    for (size_t i = 0; base && base->env && base->env[i] && n < 15; i++)
        env[n++] = base->env[i];
    env[n] = NULL;
    struct gwproc_options o = base ? *base : (struct gwproc_options){ 0 };
    o.env = env;
    struct gwproc *gw = NULL;
    int rc = gwproc_start(config, &o, &gw);
    if (rc != 0)
        fail_msg("the gateway did not start: %s", strerror(-rc));
    g_own = gw;
    gwt_set_current(gw);
    return gw;
}

void own_gateway_free(void)
{
    if (gwt_current() == g_own)
        gwt_set_current(NULL);
    gwproc_free(g_own);
    g_own = NULL;
}

/* SIGTERM; the gateway must exit 0 (an ASan build exits non-zero on a leak). */
void stop_gateway(void)
{
    int status = gwproc_stop(g_own, GWPROC_STOP_TIMEOUT_MS);
    if (status != 0) {
        char buf[64];
        gwproc_print_log(g_own, "stopping", 40);
        fail_msg("the gateway ended with %s after SIGTERM, expected exit 0",
                 proc_status_str(status, buf, sizeof buf));
    }
    own_gateway_free();
}

/* Starts a Nest service of the group's version for the test alone. */
struct nest_service *start_own_nest(const char *version, int port)
{
    struct nest_service *svc = calloc(1, sizeof *svc);
    assert_non_null(svc);
    struct nest_options no = { .quiet = true, .port = port };
    if (nest_start(version, &no, svc) != 0) {
        free(svc);
        fail_msg("the Nest %s service did not start", version);
    }
    g_own_nest = svc;
    return svc;
}

void own_nest_free(void)
{
    if (g_own_nest)
        nest_stop(g_own_nest);
    free(g_own_nest);
    g_own_nest = NULL;
}

/* Per test: kill what a failed test left behind. */

int own_teardown(void **state)
{
    (void)state;
    own_gateway_free();
    own_nest_free();
    own_raw_free();
    gwt_set_current(NULL);
    return 0;
}

static int group_setup(void **state, int (*nest_setup)(void **))
{
    fixture_t *f = calloc(1, sizeof *f);
    void *ns = NULL;
    if (!f || nest_setup(&ns) != 0) {
        free(f);
        return -1;
    }
    f->nest = ns;
    char nest_env[64];
    snprintf(nest_env, sizeof nest_env, "NEST_ADDR=%s", f->nest->address);
    const char *env[] = { nest_env, NULL };
    struct gwproc_options o = { .env = env };
    if (gwproc_start(MAIN_CONFIG, &o, &f->gw) != 0) {
        nest_group_teardown(&ns);
        free(f);
        return -1;
    }
    f->port = gwproc_port(f->gw);
    *state = f;
    return 0;
}

int group_setup_v12(void **state) { return group_setup(state, nest_group_setup_v12); }
int group_setup_v10(void **state) { return group_setup(state, nest_group_setup_v10); }

int group_teardown(void **state)
{
    fixture_t *f = *state;
    int status = gwproc_stop(f->gw, GWPROC_STOP_TIMEOUT_MS);
    if (status != 0) {
        char buf[64];
        gwproc_print_log(f->gw, "at the group's end", 40);
        fprintf(stderr, "ERROR: the gateway ended with %s after SIGTERM, expected exit 0\n",
                proc_status_str(status, buf, sizeof buf));
    }
    gwproc_free(f->gw);
    void *ns = f->nest;
    nest_group_teardown(&ns);
    free(f);
    gwt_set_current(NULL);
    return status == 0 ? 0 : -1;
}

/* Per-test: point failure messages at the group's gateway. */
int test_setup(void **state)
{
    fixture_t *f = *state;
    gwt_set_current(f->gw);
    return 0;
}

const char *nest_version(void **state)
{
    fixture_t *f = *state;
    return f->nest->svc.version;
}

/* ---- bodies ---- */

char *big_body(size_t size)
{
    static const char unit[] = "héllo 한국 😀 Zoë ";
    size_t ulen = sizeof unit - 1;
    char *b = malloc(size + 64);
    assert_non_null(b);
    size_t len = (size_t)sprintf(b, "{\"s\":\"");
    while (len + ulen < size)
        len += (size_t)sprintf(b + len, "%s", unit);
    sprintf(b + len, "\",\"n\":%zu}", size);
    return b;
}

/* {"s":"xxx..."}: exactly size bytes (size >= 8). */
char *ascii_body(size_t size)
{
    char *b = malloc(size + 1);
    assert_non_null(b);
    memcpy(b, "{\"s\":\"", 6);
    memset(b + 6, 'x', size - 8);
    memcpy(b + size - 2, "\"}", 3);
    return b;
}

/* The error's message must name `where` (a parameter, a path...). */
void expect_error_names(struct http_response *r, const char *what, const char *code,
                               const char *where)
{
    json_t *j = gwt_expect_error_json(r, what, 400, code);
    const char *msg = json_string_value(json_object_get(j, "message"));
    if (!strstr(msg, where))
        gwt_fail_response(r, what, "the message does not say where (\"%s\")", where);
    json_decref(j);
    http_response_free(r);
}

/* ---- scripted raw upstreams ---------------------------------------------------------- */

/* The request id of a packet, or false for an event (no "id"). */
static bool packet_id(const char *json, char *id, size_t cap)
{
    const char *p = strstr(json, "\"id\":\"");
    if (!p)
        return false;
    p += 6;
    const char *end = strchr(p, '"');
    if (!end || (size_t)(end - p) >= cap)
        return false;
    memcpy(id, p, (size_t)(end - p));
    id[end - p] = '\0';
    return true;
}

static void raw_answer(struct testnet_peer *peer, raw_script_t *s, const char *id)
{
    switch (s->mode) {
    case RAW_REPLY: {
        size_t cap = strlen(s->reply) + strlen(id) + 64;
        char *frame = malloc(cap);
        if (!frame)
            return;
        snprintf(frame, cap, "{\"id\":\"%s\",\"response\":%s,\"isDisposed\":true}", id, s->reply);
        testnet_peer_send_frame(peer, frame);
        free(frame);
        break;
    }
    case RAW_GARBAGE:
        testnet_peer_write(peer, "garbage, not a frame\n", 21);
        break;
    case RAW_BAD_JSON:
        testnet_peer_write(peer, "9#not json!", 11);
        break;
    case RAW_SILENT:
    case RAW_CLOSE:
        break;
    }
}

static void raw_script(struct testnet_peer *peer, void *arg)
{
    raw_script_t *s = arg;
    while (!testnet_peer_stopping(peer)) {
        char *json;
        ssize_t n = testnet_read_frame(&peer->reader, &json, 500);
        if (n == -ETIMEDOUT)
            continue;
        if (n < 0)
            return;
        char id[128];
        bool request = packet_id(json, id, sizeof id);
        pthread_mutex_lock(&s->mu);
        if (s->nframes < RAW_MAX_FRAMES)
            s->frames[s->nframes++] = json;
        else
            free(json);
        pthread_mutex_unlock(&s->mu);
        if (!request)
            continue;
        if (s->mode == RAW_CLOSE) {
            testnet_peer_close(peer, false);
            return;
        }
        raw_answer(peer, s, id);
        if (s->mode == RAW_SILENT || s->mode == RAW_GARBAGE || s->mode == RAW_BAD_JSON) {
            testnet_peer_wait_closed(peer, -1);
            return;
        }
    }
}

/* The last frame received that contains needle (copy, caller frees), or
 * NULL. */
char *raw_frame_with(raw_script_t *s, const char *needle)
{
    char *found = NULL;
    pthread_mutex_lock(&s->mu);
    for (int i = s->nframes - 1; i >= 0 && !found; i--)
        if (strstr(s->frames[i], needle))
            found = strdup(s->frames[i]);
    pthread_mutex_unlock(&s->mu);
    return found;
}

const char RAW_CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\",\n"
    "  \"services\": { \"raw\": { \"endpoints\": [\"${NEST_ADDR}\"], \"timeout_ms\": 20000 } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/raw\", \"service\": \"raw\", \"pattern\": { \"cmd\": \"raw\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/raw-member\", \"service\": \"raw\", \"pattern\": \"member\",\n"
    "      \"data\": { \"v\": \"$body.v\", \"k\": \"kept\" } },\n"
    "    { \"method\": \"POST\", \"path\": \"/raw-fast\", \"service\": \"raw\", \"pattern\": { \"cmd\": \"raw\" },\n"
    "      \"timeout_ms\": 500 },\n"
    "    { \"method\": \"POST\", \"path\": \"/raw-emit\", \"service\": \"raw\", \"pattern\": \"ev\",\n"
    "      \"kind\": \"emit\" },\n"
    "    { \"method\": \"GET\", \"path\": \"/raw-int/:id\", \"service\": \"raw\", \"pattern\": \"conv\",\n"
    "      \"data\": { \"id\": \"$path.id:int\", \"j\": \"$query.j:json\", \"s\": \"$query.s\" } } ] }\n";

/* The raw environment of the running test, for own_teardown. */
static raw_env_t *g_own_raw;

/* A scripted upstream and a gateway in front of it. The environment is on
 * the heap: script threads use it until the upstream is stopped, even
 * when the test failed halfway. */
raw_env_t *raw_open(enum raw_mode mode, const char *reply)
{
    raw_env_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    e->script.mode = mode;
    e->script.reply = reply;
    pthread_mutex_init(&e->script.mu, NULL);
    g_own_raw = e;
    assert_int_equal(testnet_upstream_start(raw_script, &e->script, &e->up), 0);
    char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", testnet_upstream_port(e->up));
    e->gw = start_gateway(RAW_CONFIG, address, NULL);
    e->port = gwproc_port(e->gw);
    return e;
}

/* Stops the upstream (the gateway must be gone already) and frees e. */
void raw_free(raw_env_t *e)
{
    testnet_upstream_stop(e->up);
    for (int i = 0; i < e->script.nframes; i++)
        free(e->script.frames[i]);
    pthread_mutex_destroy(&e->script.mu);
    free(e);
    if (g_own_raw == e)
        g_own_raw = NULL;
}

void own_raw_free(void)
{
    if (g_own_raw)
        raw_free(g_own_raw);
}

void raw_close(raw_env_t *e)
{
    stop_gateway();
    raw_free(e);
}

/* Sends body to path; the packet must carry exactly `data` and the reply
 * must be exactly the upstream's reply. */
void raw_round_trip(raw_env_t *e, const char *path, const char *body, const char *data,
                           const char *const *headers)
{
    const char *method = body ? "POST" : "GET";
    struct http_response r = gwt_request(e->port, method, path, headers, body, body ? strlen(body) : 0);
    gwt_expect_body(&r, path, 200, e->script.reply);
    char needle[1024];
    snprintf(needle, sizeof needle, "\"data\":%s", data);
    char *frame = raw_frame_with(&e->script, needle);
    if (!frame) {
        pthread_mutex_lock(&e->script.mu);
        for (int i = 0; i < e->script.nframes; i++)
            fprintf(stderr, "packet %d: %s\n", i, e->script.frames[i]);
        pthread_mutex_unlock(&e->script.mu);
        gwt_fail_response(&r, path, "no packet carried exactly %s", needle);
    }
    free(frame);
    http_response_free(&r);
}

