/* A fleet of replicas behind one DNS name (SPEC.md, "Replicas: discovery,
 * balancing, retries"), with real components only: Nest 12 replicas of
 * tests/nest/service.mjs on 127.0.0.2, 127.0.0.3, ... (the same port each),
 * a real DNS server (dnsmasq, tests/support/dns.h) answering the name
 * fleet.test with the replicas the test lists in its hosts file, and the
 * built gateway with `dns.servers` pointing at it and resolve_interval_ms
 * 500. Every replica answers {cmd:'whoami'} with its address and how many
 * whoami requests it received, so the test knows, for every request, which
 * replica served it, and can ask each replica directly (Nest TCP, not
 * through the gateway) for its own count and its list of events.
 *
 * Cases: the spread over 3 replicas; scaling 3 -> 5 -> 2 under load; a
 * replica killed under load with and without route retries; a slow replica
 * under least_request; the DNS server gone (the last good set stays);
 * emit fanout "all" (route and ?fanout=all); max_connection_age_ms.
 *
 * Load comes from client threads that POST in a loop on keep-alive
 * connections and record every answer; they never call cmocka (the main
 * thread checks what they recorded). Every wait polls a condition with a
 * generous deadline (a loaded 2-core machine, ASan builds); the only time
 * bounds asserted are how soon after the DNS answer changed new replicas
 * take traffic and removed ones are gone (two resolve intervals plus wide
 * slack; PG_TIMEOUT_SCALE multiplies every bound). PG_TEST_FILTER picks
 * cases (e.g. "kill_*"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/deadline.h"
#include "support/dns.h"
#include "support/gateway.h"
#include "support/http.h"
#include "support/nest.h"
#include "support/net.h"
#include "support/probe.h"
#include "support/proc.h"

#define REQ_TIMEOUT_MS 30000   /* one HTTP exchange, on a loaded machine */
#define POLL_TIMEOUT_MS 60000  /* waiting for a condition */
#define POLL_PAUSE_MS 20       /* between two polls of a condition */
#define RESOLVE_INTERVAL_MS 500
/* How soon after the DNS answer changed new replicas must take traffic:
 * two resolve intervals, plus slack for connecting on a loaded machine.
 * Still well under the default interval (5 s), so a gateway that ignored
 * resolve_interval_ms would fail. */
#define JOIN_SLACK_MS 2500
#define NAME "fleet.test"

#define MAX_REPLICAS 5
#define MAX_THREADS 8

/* ---- what the running test owns (freed by the teardown after a failure) --- */

struct load;

static struct {
    int port;                                  /* every replica's port */
    struct nest_service reps[MAX_REPLICAS];
    int n_reps;                                /* started by fleet_start */
    struct dns_server dns;
    struct gwproc *gw;
    struct load *load;                         /* client threads running */
} g;

static void load_stop(struct load *l);

static void print_log_tail(void)
{
    if (g.gw)
        gwproc_print_log(g.gw, "at the failure", 80);
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        print_log_tail();                                                                          \
        fail_msg(__VA_ARGS__);                                                                     \
    } while (0)

static int teardown(void **state)
{
    (void)state;
    if (g.load)
        load_stop(g.load); /* the threads first: they use the gateway */
    free(g.load);
    g.load = NULL;
    gwproc_free(g.gw);
    g.gw = NULL;
    for (int i = 0; i < g.n_reps; i++)
        nest_stop(&g.reps[i]);
    g.n_reps = 0;
    dns_free(&g.dns);
    return 0;
}

static int scaled(int ms)
{
    return ms * gwproc_timeout_scale();
}

/* ---- the replicas ---------------------------------------------------------- */

/* Replica i listens on 127.0.0.(i+2). */
static void replica_host(int i, char *buf, size_t cap)
{
    snprintf(buf, cap, "127.0.0.%d", (i + 2) & 0xff);
}

/* Whether the TCP port is free on every replica address. */
static bool port_free_everywhere(int port)
{
    for (int i = 0; i < MAX_REPLICAS; i++) {
        char host[16];
        replica_host(i, host, sizeof host);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        inet_pton(AF_INET, host, &a.sin_addr);
        bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0)
            close(fd);
        if (!ok)
            return false;
    }
    return true;
}

/* Starts n replicas at once, replica i answering whoami delays_ms[i] late
 * (delays_ms NULL: at once), all on one port free on every address. */
static void fleet_start(int n, const unsigned *delays_ms)
{
    nest_require("v12");
    assert_true(n <= MAX_REPLICAS);
    char hosts[MAX_REPLICAS][20];
    struct nest_options opts[MAX_REPLICAS];
    int rc = -EADDRINUSE;
    for (int attempt = 0; attempt < 5 && rc == -EADDRINUSE; attempt++) {
        do
            g.port = testnet_free_port();
        while (g.port > 0 && !port_free_everywhere(g.port));
        assert_true(g.port > 0);
        for (int i = 0; i < n; i++) {
            replica_host(i, hosts[i], sizeof hosts[i]);
            opts[i] = (struct nest_options){ .port = g.port, .host = hosts[i], .quiet = true,
                                             .delay_ms = delays_ms ? delays_ms[i] : 0 };
        }
        rc = nest_start_all("v12", opts, g.reps, (size_t)n);
    }
    if (rc != 0)
        fail_msg("the %d Nest 12 replicas did not start: %s", n, strerror(-rc));
    g.n_reps = n;
}

/* The replica index a whoami answer names ({"name":"127.0.0.3:PORT",...}),
 * or -1. */
static int replica_of(const char *body)
{
    const char *p = strstr(body, "\"name\":\"127.0.0.");
    if (!p)
        return -1;
    int last = atoi(p + strlen("\"name\":\"127.0.0."));
    return last >= 2 && last < 2 + MAX_REPLICAS ? last - 2 : -1;
}

/* Sends one request to replica i directly (Nest TCP, not through the
 * gateway) and returns its reply's "response" (a new reference). */
static json_t *replica_ask(int i, const char *pattern)
{
    char host[16], *reply = NULL, frame[256];
    replica_host(i, host, sizeof host);
    int fd = testnet_connect_ip(host, g.port, REQ_TIMEOUT_MS);
    if (fd < 0)
        FAIL("replica %s:%d: cannot connect: %s", host, g.port, strerror(-fd));
    snprintf(frame, sizeof frame, "{\"pattern\":%s,\"data\":null,\"id\":\"1\"}", pattern);
    struct testnet_reader rd;
    testnet_reader_init(&rd, fd);
    int rc = testnet_send_frame(fd, frame, REQ_TIMEOUT_MS);
    ssize_t n = rc == 0 ? testnet_read_frame(&rd, &reply, REQ_TIMEOUT_MS) : rc;
    testnet_reader_free(&rd);
    close(fd);
    if (n < 0)
        FAIL("replica %s:%d: no reply to %s: %s", host, g.port, pattern, strerror((int)-n));
    json_t *j = json_loads(reply, 0, NULL), *response = json_incref(json_object_get(j, "response"));
    json_decref(j);
    if (!response)
        FAIL("replica %s:%d: unexpected reply to %s: %s", host, g.port, pattern, reply);
    free(reply);
    return response;
}

/* How many whoami requests replica i received, by its own count. */
static long replica_served(int i)
{
    json_t *r = replica_ask(i, "{\"cmd\":\"whoami_count\"}");
    long served = (long)json_integer_value(json_object_get(r, "served"));
    json_decref(r);
    return served;
}

/* How many events of replica i's record list equal {"n": n}. */
static int replica_recorded(int i, int n)
{
    json_t *list = replica_ask(i, "{\"cmd\":\"recorded\"}");
    size_t k;
    json_t *ev;
    int count = 0;
    json_array_foreach(list, k, ev) count += json_integer_value(json_object_get(ev, "n")) == n;
    json_decref(list);
    return count;
}

/* ---- DNS and the gateway ------------------------------------------------------ */

/* A hosts file naming fleet.test for the replicas in `mask` (bit i:
 * replica i). */
static void hosts_text(unsigned mask, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < MAX_REPLICAS; i++)
        if (mask & (1u << i))
            len += (size_t)snprintf(buf + len, cap - len, "127.0.0.%d " NAME "\n", i + 2);
}

static void dns_answer(unsigned mask)
{
    char hosts[256];
    hosts_text(mask, hosts, sizeof hosts);
    int rc = g.dns.proc ? dns_set_hosts(&g.dns, hosts) : dns_start(&g.dns, hosts, NULL);
    if (rc != 0)
        FAIL("dnsmasq: %s", strerror(-rc));
}

/* The gateway: service "fleet" at fleet.test (settings: more members of its
 * object, or ""), routes POST /whoami (with `retries`), POST /notify (an
 * event to every replica) and POST /notify_one (an event to one), and the
 * generic API. */
static const char CONFIG[] =
    "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
    "  \"generic_api\": [\"fleet\"],\n"
    "  \"dns\": { \"servers\": [\"${DNS_ADDR}\"] },\n"
    "  \"services\": { \"fleet\": { \"endpoints\": [\"" NAME ":${FLEET_PORT}\"],\n"
    "      \"resolve_interval_ms\": %d %s } },\n"
    "  \"routes\": [\n"
    "    { \"method\": \"POST\", \"path\": \"/whoami\", \"service\": \"fleet\",\n"
    "      \"pattern\": { \"cmd\": \"whoami\" }, \"retries\": %d },\n"
    "    { \"method\": \"POST\", \"path\": \"/notify\", \"service\": \"fleet\",\n"
    "      \"pattern\": { \"cmd\": \"record\" }, \"kind\": \"emit\", \"fanout\": \"all\" },\n"
    "    { \"method\": \"POST\", \"path\": \"/notify_one\", \"service\": \"fleet\",\n"
    "      \"pattern\": { \"cmd\": \"record\" }, \"kind\": \"emit\" } ] }\n";

static void gateway_start(int retries, const char *settings)
{
    char config[sizeof CONFIG + 256], dns_env[64], port_env[32];
    snprintf(config, sizeof config, CONFIG, RESOLVE_INTERVAL_MS, settings, retries);
    snprintf(dns_env, sizeof dns_env, "DNS_ADDR=%s", g.dns.address);
    snprintf(port_env, sizeof port_env, "FLEET_PORT=%d", g.port);
    const char *env[] = { dns_env, port_env, NULL };
    struct gwproc_options o = { .env = env, .ready_on_admin = true };
    int rc = gwproc_start(config, &o, &g.gw);
    if (rc != 0)
        fail_msg("the gateway did not start: %s", strerror(-rc));
}

/* SIGTERM; the gateway must exit 0 (an ASan build exits non-zero on a leak). */
static void gateway_stop(void)
{
    int status = gwproc_stop(g.gw, GWPROC_STOP_TIMEOUT_MS);
    if (status != 0) {
        char buf[64];
        FAIL("the gateway ended with %s after SIGTERM, expected exit 0",
             proc_status_str(status, buf, sizeof buf));
    }
    gwproc_free(g.gw);
    g.gw = NULL;
}

static json_t *get_status(void)
{
    int status = 0;
    char *body = probe_get(g.gw->admin_port, "/status", &status, REQ_TIMEOUT_MS);
    if (!body || status != 200)
        FAIL("GET /status: %d", status);
    json_error_t err;
    json_t *j = json_loads(body, 0, &err);
    if (!j)
        FAIL("GET /status is not JSON: %s\n%s", err.text, body);
    free(body);
    return j;
}

static void dump_status(json_t *st)
{
    char *dump = json_dumps(json_object_get(json_object_get(st, "services"), "fleet"), JSON_INDENT(1));
    fprintf(stderr, "/status of fleet: %s\n", dump ? dump : "");
    free(dump);
}

/* The endpoints of service fleet in /status (borrowed from st). */
static json_t *status_endpoints(json_t *st)
{
    return json_object_get(json_object_get(json_object_get(st, "services"), "fleet"), "endpoints");
}

/* The replica index of an endpoint of /status ("127.0.0.3:PORT"), or -1. */
static int endpoint_replica(json_t *ep)
{
    const char *a = json_string_value(json_object_get(ep, "address"));
    int last = 0, port = 0;
    if (!a || sscanf(a, "127.0.0.%d:%d", &last, &port) != 2 || port != g.port)
        return -1;
    return last >= 2 && last < 2 + MAX_REPLICAS ? last - 2 : -1;
}

static const char *string_of(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "";
}

static bool endpoint_connected(json_t *ep)
{
    size_t k;
    json_t *c;
    json_array_foreach(json_object_get(ep, "connections"), k, c) {
        if (strcmp(string_of(c, "state"), "connected") == 0)
            return true;
    }
    return false;
}

/* The replicas /status lists for fleet (bit i: replica i), and among them
 * those active with a connected connection. */
static void status_sets(json_t *st, unsigned *listed, unsigned *ready)
{
    size_t k;
    json_t *ep;
    *listed = *ready = 0;
    json_array_foreach(status_endpoints(st), k, ep) {
        int i = endpoint_replica(ep);
        if (i < 0)
            continue;
        *listed |= 1u << i;
        if (strcmp(string_of(ep, "state"), "active") == 0 &&
            endpoint_connected(ep))
            *ready |= 1u << i;
    }
}

/* Polls /status until service fleet lists exactly the replicas of `mask`,
 * each active and connected. Returns how long it took. */
static int64_t wait_endpoints(unsigned mask)
{
    int64_t t0 = deadline_now_ms(), deadline = deadline_after(scaled(POLL_TIMEOUT_MS));
    for (;;) {
        json_t *st = get_status();
        unsigned listed, ready;
        status_sets(st, &listed, &ready);
        if (listed == mask && ready == mask) {
            json_decref(st);
            return deadline_now_ms() - t0;
        }
        if (deadline_remaining_ms(deadline) == 0) {
            dump_status(st);
            FAIL("/status never listed exactly the replicas 0x%x, active and connected "
                 "(listed 0x%x, ready 0x%x)", mask, listed, ready);
        }
        json_decref(st);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
}

static double metric(const char *name, const char *const *labels)
{
    double v = 0;
    int rc = probe_metric_at(g.gw->admin_port, name, labels, &v, REQ_TIMEOUT_MS);
    if (rc != 0)
        FAIL("/metrics: no sample %s%s%s: %s", name, labels && labels[0] ? " " : "",
             labels && labels[0] ? labels[0] : "", strerror(-rc));
    return v;
}

/* ---- load: client threads recording every answer --------------------------------- */

enum rec_error { REC_OK, REC_CLOSED, REC_OTHER };

struct rec {
    int64_t sent, done; /* deadline_now_ms() */
    int16_t status;     /* HTTP status; -1: no response (connection error) */
    int8_t replica;     /* who answered a 200; -1: nobody */
    int8_t error;       /* enum rec_error */
};

struct client {
    pthread_t thread;
    bool running;
    struct load *load;
    struct rec *recs; /* owned; read by the main thread after the join */
    size_t n, cap;
    char first_bad[512]; /* the first unexpected answer, for messages */
};

struct load {
    int port;
    const char *path;
    int quota;                   /* requests per thread; 0: until stopped */
    int n_clients;
    atomic_bool stop;
    atomic_long ok[MAX_REPLICAS]; /* 200s per replica so far */
    atomic_long failed;
    struct client clients[MAX_THREADS];
};

static void record(struct client *c, struct rec r)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        struct rec *grown = realloc(c->recs, cap * sizeof *grown);
        if (!grown)
            abort();
        c->recs = grown;
        c->cap = cap;
    }
    c->recs[c->n++] = r;
}

/* One answer: who served it, or how it failed. */
static struct rec classify(struct client *c, int rc, const struct http_response *resp, int64_t sent)
{
    struct rec r = { .sent = sent, .done = deadline_now_ms(), .status = -1, .replica = -1 };
    if (rc == 0) {
        r.status = (int16_t)resp->status;
        r.replica = (int8_t)(resp->status == 200 ? replica_of(resp->body) : -1);
        r.error = resp->status == 502 && strstr(resp->body, "\"error\":\"upstream_closed\"") ? REC_CLOSED
                                                                                               : REC_OTHER;
        if (r.replica >= 0)
            r.error = REC_OK;
    }
    if (r.error != REC_OK && !c->first_bad[0]) {
        char *dump = rc == 0 ? http_response_dump(resp, 400) : NULL;
        snprintf(c->first_bad, sizeof c->first_bad, "%s", dump ? dump : strerror(-rc));
        free(dump);
    }
    return r;
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    struct load *l = c->load;
    struct http_conn *conn = NULL;
    struct http_request req = { .method = "POST", .path = l->path, .body = "{}", .body_len = 2 };
    for (int i = 0; (l->quota == 0 || i < l->quota) && !atomic_load(&l->stop); i++) {
        struct http_response resp;
        int64_t sent = deadline_now_ms();
        int rc = conn ? 0 : http_connect(l->port, REQ_TIMEOUT_MS, &conn);
        if (rc == 0)
            rc = http_request(conn, &req, &resp, REQ_TIMEOUT_MS);
        struct rec r = classify(c, rc, &resp, sent);
        record(c, r);
        if (r.replica >= 0)
            atomic_fetch_add(&l->ok[r.replica], 1);
        else
            atomic_fetch_add(&l->failed, 1);
        if (rc == 0 && resp.conn_closed) {
            http_close(conn);
            conn = NULL;
        }
        if (rc == 0)
            http_response_free(&resp);
        else {
            http_close(conn);
            conn = NULL;
        }
    }
    http_close(conn);
    return NULL;
}

/* Starts n client threads POSTing to path (each `quota` times, or until
 * load_stop with 0). */
static struct load *load_start(const char *path, int n, int quota)
{
    assert_true(n <= MAX_THREADS);
    struct load *l = calloc(1, sizeof *l);
    assert_non_null(l);
    l->port = g.gw->port;
    l->path = path;
    l->quota = quota;
    l->n_clients = n;
    g.load = l;
    for (int i = 0; i < n; i++) {
        l->clients[i].load = l;
        if (pthread_create(&l->clients[i].thread, NULL, client_main, &l->clients[i]) != 0)
            FAIL("cannot start client thread %d", i);
        l->clients[i].running = true;
    }
    return l;
}

/* Stops (or, with a quota, waits for) the threads. The records stay. */
static void load_stop(struct load *l)
{
    if (l->quota == 0)
        atomic_store(&l->stop, true);
    for (int i = 0; i < l->n_clients; i++) {
        if (l->clients[i].running)
            pthread_join(l->clients[i].thread, NULL);
        l->clients[i].running = false;
    }
}

static void load_free(struct load *l)
{
    for (int i = 0; i < l->n_clients; i++)
        free(l->clients[i].recs);
    free(l);
    if (g.load == l)
        g.load = NULL;
}

static long load_ok(struct load *l, int replica)
{
    return atomic_load(&l->ok[replica]);
}

static long load_total_ok(struct load *l)
{
    long n = 0;
    for (int i = 0; i < MAX_REPLICAS; i++)
        n += load_ok(l, i);
    return n;
}

/* The first unexpected answer any client saw ("" for none). */
static const char *load_first_bad(struct load *l)
{
    for (int i = 0; i < l->n_clients; i++)
        if (l->clients[i].first_bad[0])
            return l->clients[i].first_bad;
    return "";
}

/* Fails the test when any request failed. */
static void expect_no_failure(struct load *l, const char *what)
{
    long failed = atomic_load(&l->failed);
    if (failed)
        FAIL("%s: %ld of %ld requests failed; the first:\n%s", what, failed,
             failed + load_total_ok(l), load_first_bad(l));
}

/* Polls until every replica of `mask` has answered at least `more` requests
 * beyond base[i] (base NULL: beyond 0), while the load runs. */
static void wait_served(struct load *l, unsigned mask, const long *base, long more, const char *what)
{
    int64_t deadline = deadline_after(scaled(POLL_TIMEOUT_MS));
    for (;;) {
        unsigned missing = 0;
        for (int i = 0; i < MAX_REPLICAS; i++)
            if ((mask & (1u << i)) && load_ok(l, i) < (base ? base[i] : 0) + more)
                missing |= 1u << i;
        if (!missing)
            return;
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("%s: the replicas 0x%x did not answer %ld more requests within %d ms", what, missing,
                 more, scaled(POLL_TIMEOUT_MS));
        deadline_pause_ms(POLL_PAUSE_MS);
    }
}

/* Each replica's own whoami count must equal the answers the clients got
 * from it: no request lost, none served twice (retries 0 and no failure). */
static void expect_counts_agree(struct load *l, unsigned mask)
{
    for (int i = 0; i < MAX_REPLICAS; i++) {
        if (!(mask & (1u << i)))
            continue;
        long own = replica_served(i);
        if (own != load_ok(l, i))
            FAIL("replica %d received %ld whoami requests, the clients got %ld answers from it", i, own,
                 load_ok(l, i));
    }
}

static void print_shares(struct load *l, const char *what)
{
    long total = load_total_ok(l);
    fprintf(stderr, "%s: %ld answers:", what, total);
    for (int i = 0; i < MAX_REPLICAS; i++)
        if (load_ok(l, i))
            fprintf(stderr, " replica %d %ld (%.1f%%)", i, load_ok(l, i), 100.0 * (double)load_ok(l, i) / (double)total);
    fprintf(stderr, "\n");
}

/* ---- 1. the spread over three replicas ---------------------------------------- */

static void spread_over_three(void **state)
{
    (void)state;
    fleet_start(3, NULL);
    dns_answer(0x7);
    gateway_start(0, "");
    wait_endpoints(0x7);

    struct load *l = load_start("/whoami", 4, 750);
    load_stop(l);
    expect_no_failure(l, "3000 requests over 3 replicas");
    long total = load_total_ok(l);
    assert_int_equal(total, 3000);
    print_shares(l, "3 replicas");
    for (int i = 0; i < 3; i++) {
        double share = (double)load_ok(l, i) / (double)total;
        if (share < 0.25 || share > 0.42)
            FAIL("replica %d got %.1f%% of the requests, expected 25%%..42%%", i, 100 * share);
    }
    expect_counts_agree(l, 0x7);

    /* /status: every endpoint came from the name, active, with its count */
    json_t *st = get_status();
    size_t k;
    json_t *ep;
    json_array_foreach(status_endpoints(st), k, ep) {
        int i = endpoint_replica(ep);
        const char *from = json_string_value(json_object_get(ep, "from"));
        if (i < 0 || !from || strcmp(from, NAME) != 0 ||
            json_integer_value(json_object_get(ep, "requests")) != load_ok(l, i) ||
            json_integer_value(json_object_get(ep, "inflight")) != 0) {
            dump_status(st);
            FAIL("/status endpoint %zu: expected a replica from " NAME " with its request count", k);
        }
    }
    if (!json_is_string(json_object_get(json_object_get(json_object_get(st, "services"), "fleet"), "resolved_at"))) {
        dump_status(st);
        FAIL("/status: fleet has no resolved_at");
    }
    json_decref(st);
    load_free(l);
    gateway_stop();
}

/* ---- 2. scaling 3 -> 5 -> 2 under load ------------------------------------------- */

/* The replicas /status lists for fleet. */
static unsigned status_listed(void)
{
    json_t *st = get_status();
    unsigned listed, ready;
    status_sets(st, &listed, &ready);
    json_decref(st);
    return listed;
}

static void scale_under_load(void **state)
{
    (void)state;
    const int budget = scaled(2 * RESOLVE_INTERVAL_MS + JOIN_SLACK_MS);
    fleet_start(5, NULL);
    dns_answer(0x7);
    gateway_start(0, "");
    wait_endpoints(0x7);
    struct load *l = load_start("/whoami", 4, 0);
    wait_served(l, 0x7, NULL, 20, "3 replicas");

    /* 3 -> 5: replicas 3 and 4 take traffic within two resolve intervals */
    int64_t t0 = deadline_now_ms();
    dns_answer(0x1f);
    int64_t changed = deadline_now_ms();
    int64_t deadline = deadline_after(scaled(POLL_TIMEOUT_MS));
    while (load_ok(l, 3) == 0 || load_ok(l, 4) == 0) {
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("the new replicas never took traffic (%ld, %ld answers)", load_ok(l, 3), load_ok(l, 4));
        deadline_pause_ms(5);
    }
    int64_t joined = deadline_now_ms() - changed;
    fprintf(stderr, "3 -> 5: dnsmasq answered the new hosts after %lld ms; both new replicas "
            "answered %lld ms later\n", (long long)(changed - t0), (long long)joined);
    if (joined > budget)
        FAIL("the new replicas took traffic %lld ms after the DNS answer changed, expected at most %d",
             (long long)joined, budget);
    wait_served(l, 0x1f, NULL, 20, "5 replicas");

    /* 5 -> 2: replicas 1, 2 and 4 leave, are drained and closed */
    dns_answer(0x9);
    changed = deadline_now_ms();
    deadline = deadline_after(scaled(POLL_TIMEOUT_MS));
    unsigned listed;
    while ((listed = status_listed()) != 0x9) {
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("/status still lists the replicas 0x%x, expected 0x9 only", listed);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
    int64_t gone_at = deadline_now_ms();
    fprintf(stderr, "5 -> 2: the 3 removed replicas were drained and gone %lld ms after the DNS "
            "answer changed\n", (long long)(gone_at - changed));
    if (gone_at - changed > budget)
        FAIL("the removed replicas were gone %lld ms after the DNS answer changed, expected at most %d",
             (long long)(gone_at - changed), budget);
    long removed_own[MAX_REPLICAS] = { 0 };
    const int removed[] = { 1, 2, 4 };
    for (int k = 0; k < 3; k++)
        removed_own[removed[k]] = replica_served(removed[k]);
    /* the load goes on: the two left serve a good number more */
    long base[MAX_REPLICAS];
    for (int i = 0; i < MAX_REPLICAS; i++)
        base[i] = load_ok(l, i);
    wait_served(l, 0x9, base, 100, "2 replicas");
    load_stop(l);
    expect_no_failure(l, "scaling 3 -> 5 -> 2");
    print_shares(l, "3 -> 5 -> 2");
    for (int k = 0; k < 3; k++) {
        int i = removed[k];
        long now = replica_served(i);
        if (now != removed_own[i])
            FAIL("removed replica %d received %ld more requests after it was drained", i, now - removed_own[i]);
    }
    /* by the clients' records too: nothing sent after the drain ended
     * was answered by a removed replica */
    for (int c = 0; c < l->n_clients; c++)
        for (size_t r = 0; r < l->clients[c].n; r++) {
            const struct rec *rec = &l->clients[c].recs[r];
            if (rec->sent > gone_at && rec->replica >= 0 && !((1u << rec->replica) & 0x9))
                FAIL("a request sent %lld ms after the drain was answered by removed replica %d",
                     (long long)(rec->sent - gone_at), rec->replica);
        }
    expect_counts_agree(l, 0x1f);

    const char *active[] = { "service=\"fleet\"", "state=\"active\"", NULL };
    const char *draining[] = { "service=\"fleet\"", "state=\"draining\"", NULL };
    if (metric("patterngate_upstream_endpoints", active) != 2 ||
        metric("patterngate_upstream_endpoints", draining) != 0)
        FAIL("patterngate_upstream_endpoints: expected 2 active, 0 draining");
    if (gwproc_wait_log(g.gw, "upstream endpoint drained and closed", 3, scaled(POLL_TIMEOUT_MS)) != 0 ||
        gwproc_log_count(g.gw, "upstream name resolved") < 2)
        FAIL("the log lacks the name's changes (\"upstream name resolved\") or the 3 drained endpoints");
    load_free(l);
    gateway_stop();
}

/* ---- 3. a replica killed under load ---------------------------------------------- */

/* The /status entry of replica i's endpoint (borrowed from st), or NULL. */
static json_t *status_endpoint(json_t *st, int i)
{
    size_t k;
    json_t *ep;
    json_array_foreach(status_endpoints(st), k, ep) {
        if (endpoint_replica(ep) == i)
            return ep;
    }
    return NULL;
}

/* A counter of replica i's endpoint in /status. */
static long endpoint_counter(int i, const char *key)
{
    json_t *st = get_status();
    json_t *ep = status_endpoint(st, i);
    if (!ep) {
        dump_status(st);
        FAIL("/status lists no endpoint for replica %d", i);
    }
    long v = (long)json_integer_value(json_object_get(ep, key));
    json_decref(st);
    return v;
}

/* Polls /status until replica i has a request in flight, then SIGKILLs it.
 * Its whoami answers 1 s late, so what /status saw in flight still is. */
static void kill_busy_replica(int i)
{
    int64_t deadline = deadline_after(scaled(POLL_TIMEOUT_MS));
    while (endpoint_counter(i, "inflight") == 0) {
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("replica %d never had a request in flight", i);
    }
    nest_kill(&g.reps[i]);
}

/* Polls /status until replica i's endpoint has no connected connection
 * (the gateway saw it go). Returns when it saw it. */
static int64_t wait_disconnected(int i)
{
    int64_t deadline = deadline_after(scaled(POLL_TIMEOUT_MS));
    for (;;) {
        json_t *st = get_status();
        json_t *ep = status_endpoint(st, i);
        bool connected = ep && endpoint_connected(ep);
        json_decref(st);
        if (!connected)
            return deadline_now_ms();
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("the gateway never saw replica %d go", i);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
}

/* Replicas 0 and 2 answer whoami 100 ms late, replica 1 1 s late, so that
 * six clients keep requests in flight on each, long enough on replica 1
 * for a kill to surely cut some off. Kills replica 1 under load, lets the
 * two others serve a good number more, and stops the load. Returns how
 * many requests the gateway wrote to replica 1 that it never answered,
 * and (*seen) when the gateway was seen to notice. */
static long kill_under_load(int retries, struct load **out, int64_t *seen)
{
    static const unsigned delays[] = { 100, 1000, 100 };
    fleet_start(3, delays);
    dns_answer(0x7);
    gateway_start(retries, "");
    wait_endpoints(0x7);
    struct load *l = load_start("/whoami", 6, 0);
    wait_served(l, 0x7, NULL, 3, "3 slow replicas");
    kill_busy_replica(1);
    *seen = wait_disconnected(1);
    long base[MAX_REPLICAS];
    for (int i = 0; i < MAX_REPLICAS; i++)
        base[i] = load_ok(l, i);
    wait_served(l, 0x5, base, 30, "after the kill");
    load_stop(l);
    print_shares(l, retries ? "kill, retries 2" : "kill, retries 0");
    long lost = endpoint_counter(1, "requests") - load_ok(l, 1);
    fprintf(stderr, "requests in flight on the killed replica: %ld\n", lost);
    if (lost < 1)
        FAIL("the kill cut no request off (%ld written to replica 1, %ld answered)",
             endpoint_counter(1, "requests"), load_ok(l, 1));
    *out = l;
    return lost;
}

static void kill_with_retries(void **state)
{
    (void)state;
    struct load *l;
    int64_t seen;
    long lost = kill_under_load(2, &l, &seen);
    expect_no_failure(l, "a replica killed, retries 2");
    const char *closed[] = { "service=\"fleet\"", "reason=\"closed\"", NULL };
    double retried = metric("patterngate_upstream_retries_total", closed);
    if (retried != (double)lost)
        FAIL("patterngate_upstream_retries_total{reason=\"closed\"} is %g, expected %ld (the requests "
             "cut off, each sent again once)", retried, lost);
    expect_counts_agree(l, 0x5);
    load_free(l);
    gateway_stop();
}

static void kill_without_retries(void **state)
{
    (void)state;
    struct load *l;
    int64_t seen;
    long lost = kill_under_load(0, &l, &seen);
    long failed = atomic_load(&l->failed);
    if (failed != lost)
        FAIL("%ld requests failed, expected the %ld in flight on the killed replica; the first:\n%s",
             failed, lost, load_first_bad(l));
    for (int c = 0; c < l->n_clients; c++)
        for (size_t r = 0; r < l->clients[c].n; r++) {
            const struct rec *rec = &l->clients[c].recs[r];
            if (rec->error == REC_OK)
                continue;
            if (rec->status != 502 || rec->error != REC_CLOSED)
                FAIL("a request failed with %d, not 502 upstream_closed:\n%s", rec->status,
                     l->clients[c].first_bad);
            if (rec->sent > seen)
                FAIL("a request sent %lld ms after the gateway saw the replica go failed",
                     (long long)(rec->sent - seen));
        }
    const char *closed[] = { "service=\"fleet\"", "reason=\"closed\"", NULL };
    if (metric("patterngate_upstream_retries_total", closed) != 0)
        FAIL("requests were sent again without retries");
    expect_counts_agree(l, 0x5);
    load_free(l);
    gateway_stop();
}

/* ---- 4. a slow replica ------------------------------------------------------------ */

static void slow_replica(void **state)
{
    (void)state;
    static const unsigned delays[] = { 50, 1, 1 };
    fleet_start(3, delays);
    dns_answer(0x7);
    gateway_start(0, ", \"balance\": \"least_request\"");
    wait_endpoints(0x7);
    struct load *l = load_start("/whoami", 8, 150);
    load_stop(l);
    expect_no_failure(l, "a slow replica");
    print_shares(l, "slow replica 0 (50 ms), 1 and 2 (1 ms)");
    double share = (double)load_ok(l, 0) / (double)load_total_ok(l);
    if (share >= 0.15)
        FAIL("the slow replica got %.1f%% of the requests, expected under 15%%", 100 * share);
    expect_counts_agree(l, 0x7);
    gateway_stop();
    load_free(l);
}

/* ---- 5. the DNS server gone ---------------------------------------------------------- */

static void dns_down_keeps_last_set(void **state)
{
    (void)state;
    fleet_start(3, NULL);
    dns_answer(0x7);
    gateway_start(0, "");
    wait_endpoints(0x7);
    const char *errors[] = { "service=\"fleet\"", "result=\"error\"", NULL };
    const char *oks[] = { "service=\"fleet\"", "result=\"ok\"", NULL };
    double errors0 = metric("patterngate_upstream_dns_resolutions_total", errors);
    if (metric("patterngate_upstream_dns_resolutions_total", oks) < 1)
        FAIL("no successful resolution counted");
    struct load *l = load_start("/whoami", 3, 0);
    wait_served(l, 0x7, NULL, 20, "3 replicas");

    assert_int_equal(dns_stop(&g.dns), 0);
    int64_t deadline = deadline_after(scaled(POLL_TIMEOUT_MS));
    const char *why = NULL;
    double errors1;
    for (;;) {
        json_t *st = get_status();
        why = json_string_value(json_object_get(json_object_get(json_object_get(st, "services"), "fleet"),
                                                "last_resolve_error"));
        bool seen = why && *why;
        if (seen)
            fprintf(stderr, "last_resolve_error: %s\n", why);
        json_decref(st);
        errors1 = metric("patterngate_upstream_dns_resolutions_total", errors);
        if (seen && errors1 > errors0)
            break;
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("the stopped DNS server never showed in /status and the metrics (errors %g -> %g)", errors0,
                 errors1);
        deadline_pause_ms(POLL_PAUSE_MS);
    }
    /* a few failed resolutions later, the three still serve */
    deadline = deadline_after(scaled(POLL_TIMEOUT_MS));
    while (metric("patterngate_upstream_dns_resolutions_total", errors) < errors1 + 2) {
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("the name was not resolved again while the DNS server was down");
        deadline_pause_ms(POLL_PAUSE_MS);
    }
    long base[MAX_REPLICAS];
    for (int i = 0; i < MAX_REPLICAS; i++)
        base[i] = load_ok(l, i);
    wait_served(l, 0x7, base, 20, "with the DNS server down");
    load_stop(l);
    expect_no_failure(l, "the DNS server down");
    json_t *st = get_status();
    unsigned listed, ready;
    status_sets(st, &listed, &ready);
    if (listed != 0x7 || ready != 0x7) {
        dump_status(st);
        FAIL("with the DNS server down, /status lists 0x%x (ready 0x%x), expected the 3", listed, ready);
    }
    json_decref(st);
    if (gwproc_log_count(g.gw, "upstream name resolution failed") < 1)
        FAIL("no log line \"upstream name resolution failed\"");
    expect_counts_agree(l, 0x7);
    load_free(l);
    gateway_stop();
}

/* ---- 6. emit to every replica ------------------------------------------------------- */

/* POSTs an event; expects 202 with X-Delivered: delivered. */
static void emit(const char *path, const char *body, int delivered)
{
    struct http_request req = { .method = "POST", .path = path, .body = body, .body_len = strlen(body) };
    struct http_response r;
    int rc = http_fetch(g.gw->port, &req, &r, REQ_TIMEOUT_MS);
    if (rc != 0)
        FAIL("POST %s: no response: %s", path, strerror(-rc));
    const char *header = http_header(&r, "X-Delivered");
    if (r.status != 202 || !header || atoi(header) != delivered) {
        char *dump = http_response_dump(&r, 400);
        print_log_tail();
        fprintf(stderr, "---- response ----\n%s\n", dump ? dump : "");
        free(dump);
        fail_msg("POST %s: expected 202 with X-Delivered: %d", path, delivered);
    }
    http_response_free(&r);
}

/* Polls until every replica of `mask` recorded {"n": n}; each must hold it
 * exactly once. */
static void wait_recorded_once(unsigned mask, int n)
{
    for (int i = 0; i < MAX_REPLICAS; i++) {
        if (!(mask & (1u << i)))
            continue;
        int64_t deadline = deadline_after(scaled(POLL_TIMEOUT_MS));
        int count;
        while ((count = replica_recorded(i, n)) == 0) {
            if (deadline_remaining_ms(deadline) == 0)
                FAIL("replica %d never recorded the event {\"n\":%d}", i, n);
            deadline_pause_ms(POLL_PAUSE_MS);
        }
        if (count != 1)
            FAIL("replica %d recorded the event {\"n\":%d} %d times", i, n, count);
    }
}

static void fanout_all(void **state)
{
    (void)state;
    fleet_start(3, NULL);
    dns_answer(0x7);
    gateway_start(0, "");
    wait_endpoints(0x7);
    emit("/notify", "{\"n\":1}", 3); /* the route's fanout: "all" */
    wait_recorded_once(0x7, 1);
    emit("/v1/emit/fleet?fanout=all", "{\"pattern\":{\"cmd\":\"record\"},\"data\":{\"n\":2}}", 3);
    wait_recorded_once(0x7, 2);

    /* without fanout an event goes to one replica: once the next event to
     * all arrived everywhere (same connections, in order), n:3 is in
     * exactly one list */
    emit("/notify_one", "{\"n\":3}", 1);
    emit("/v1/emit/fleet", "{\"pattern\":{\"cmd\":\"record\"},\"data\":{\"n\":4}}", 1);
    emit("/notify", "{\"n\":5}", 3);
    wait_recorded_once(0x7, 5);
    int threes = 0, fours = 0;
    for (int i = 0; i < 3; i++) {
        threes += replica_recorded(i, 3);
        fours += replica_recorded(i, 4);
    }
    if (threes != 1 || fours != 1)
        FAIL("events without fanout reached %d and %d replicas, expected 1 each", threes, fours);
    gateway_stop();
}

/* ---- 7. max_connection_age_ms ------------------------------------------------------- */

static void connection_age(void **state)
{
    (void)state;
    fleet_start(3, NULL);
    dns_answer(0x7);
    gateway_start(0, ", \"pool_size\": 2, \"max_connection_age_ms\": 2000");
    wait_endpoints(0x7);
    const char *connects[] = { "service=\"fleet\"", "result=\"ok\"", NULL };
    double first = metric("patterngate_upstream_connects_total", connects);
    struct load *l = load_start("/whoami", 4, 0);
    /* every connection replaced at least once: 6 first, 6 replacements */
    int64_t deadline = deadline_after(scaled(POLL_TIMEOUT_MS));
    double made;
    while ((made = metric("patterngate_upstream_connects_total", connects)) < 12) {
        if (deadline_remaining_ms(deadline) == 0)
            FAIL("only %g connections made in %d ms with max_connection_age_ms 2000", made,
                 scaled(POLL_TIMEOUT_MS));
        deadline_pause_ms(100);
    }
    long base[MAX_REPLICAS];
    for (int i = 0; i < MAX_REPLICAS; i++)
        base[i] = load_ok(l, i);
    wait_served(l, 0x7, base, 20, "after the connections were replaced");
    load_stop(l);
    fprintf(stderr, "connections made: %g at the start, %g after the load\n", first, made);
    expect_no_failure(l, "connections replaced under load");
    print_shares(l, "max_connection_age_ms 2000");
    expect_counts_agree(l, 0x7);
    const char *failed[] = { "service=\"fleet\"", "result=\"failed\"", NULL };
    if (metric("patterngate_upstream_connects_total", failed) != 0)
        FAIL("connections failed while they were replaced");
    load_free(l);
    gateway_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(spread_over_three, teardown),
        cmocka_unit_test_teardown(scale_under_load, teardown),
        cmocka_unit_test_teardown(kill_with_retries, teardown),
        cmocka_unit_test_teardown(kill_without_retries, teardown),
        cmocka_unit_test_teardown(slow_replica, teardown),
        cmocka_unit_test_teardown(dns_down_keeps_last_set, teardown),
        cmocka_unit_test_teardown(fanout_all, teardown),
        cmocka_unit_test_teardown(connection_age, teardown),
    };
    const char *filter = getenv("PG_TEST_FILTER"); /* e.g. "kill_*", for debugging */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
