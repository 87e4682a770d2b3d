/* Unit tests of core/resolver on a real libuv loop against a real DNS
 * server, dnsmasq (tests/support/dns.h), serving a hosts file the tests
 * write: several addresses, both families, TTLs, unknown names, a reload
 * after SIGHUP, a stopped and a paused server, cancel and close with
 * lookups pending, /etc/hosts, literals, several threads; plus a scripted
 * UDP server for per-family failures dnsmasq cannot produce, and the pure
 * address helpers. Every test ends with a loop that closes clean. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/resolver.h"
#include "support/dns.h"
#include "support/uvtest.h"

#define LOCAL_TTL 42
#define WAIT_MS 20000 /* generous: the machine is shared and loaded */

/* The hosts file of the shared server (tests that change or stop a server
 * start their own). */
static const char *const shared_hosts =
    "10.0.0.20 three.test\n"
    "10.0.0.3 three.test\n"
    "9.0.0.1 three.test\n"
    "10.0.0.3 three.test\n" /* a duplicate line */
    "fd00::2 mixed.test\n"
    "10.0.0.5 mixed.test\n"
    "fd00::1 mixed.test\n"
    "fd00::9 six.test\n";

static const char *const shared_args[] = {
    "--host-record=long.test,10.0.1.1,300",
    "--cname=short.test,long.test,7",
    "--host-record=dual.test,10.0.2.1,90",
    "--host-record=dual.test,fd00::21,30",
    "--txt-record=txtonly.test,hello",
    NULL,
};

static struct dns_server shared;

/* ---- recording answers --------------------------------------------------- */

typedef struct lookup {
    int calls;
    int during_start;      /* callbacks run inside resolver_resolve: must stay 0 */
    resolver_status_t status;
    resolver_source_t source;
    resolver_addr_t addrs[64];
    size_t naddrs;         /* kept here, at most 64 */
    size_t answer_naddrs;  /* in the answer */
    bool truncated;
    uint32_t ttl;
    unsigned failed;
    char message[400];
    uint64_t started_ms;
    uint64_t done_ms;
    resolver_t *close_me;  /* closed from inside the callback when set */
} lookup_t;

static int starting; /* set around resolver_resolve by start() */

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void on_answer(const resolver_answer_t *a, void *ctx)
{
    lookup_t *l = ctx;
    l->calls++;
    l->during_start += starting;
    l->status = a->status;
    l->source = a->source;
    l->answer_naddrs = a->naddrs;
    l->naddrs = a->naddrs < 64 ? a->naddrs : 64;
    memcpy(l->addrs, a->addrs, l->naddrs * sizeof *l->addrs);
    l->truncated = a->truncated;
    l->ttl = a->ttl;
    l->failed = a->failed_families;
    snprintf(l->message, sizeof l->message, "%s", a->message);
    l->done_ms = now_ms();
    if (l->close_me)
        resolver_close(l->close_me, NULL, NULL);
}

static resolver_query_t *start(resolver_t *r, const char *name, lookup_t *l)
{
    resolver_query_t *q = NULL;
    l->started_ms = now_ms();
    starting = 1;
    int rc = resolver_resolve(r, name, on_answer, l, &q);
    starting = 0;
    assert_int_equal(rc, 0);
    assert_non_null(q);
    assert_int_equal(l->calls, 0);
    return q;
}

static int is_called(void *arg)
{
    return ((lookup_t *)arg)->calls > 0;
}

static void resolve_wait(uv_loop_t *loop, resolver_t *r, const char *name, lookup_t *l)
{
    memset(l, 0, sizeof *l);
    start(r, name, l);
    if (!uvtest_run_until(loop, is_called, l, WAIT_MS))
        fail_msg("no answer for %s within %d ms", name, WAIT_MS);
    assert_int_equal(l->calls, 1);
    assert_int_equal(l->during_start, 0);
}

static resolver_t *open_resolver(uv_loop_t *loop, const char *server, unsigned timeout_ms,
                                 unsigned tries)
{
    const char *servers[] = { server };
    resolver_options_t o = { .servers = servers, .nservers = server ? 1 : 0,
                             .timeout_ms = timeout_ms, .tries = tries };
    resolver_t *r = NULL;
    char err[200] = "";
    int rc = resolver_new(loop, &o, &r, err, sizeof err);
    if (rc != 0)
        fail_msg("resolver_new: %d %s", rc, err);
    return r;
}

static void on_closed(void *ctx)
{
    (*(int *)ctx)++;
}

/* Closes r and checks done runs once, from the loop; other handles may
 * stay open. */
static void close_clean_keep(uv_loop_t *loop, resolver_t *r)
{
    int closed = 0;
    resolver_close(r, on_closed, &closed);
    assert_int_equal(closed, 0);
    while (!closed)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(closed, 1);
}

static void close_clean(uv_loop_t *loop, resolver_t *r)
{
    int closed = 0;
    resolver_close(r, on_closed, &closed);
    assert_int_equal(closed, 0); /* not from inside resolver_close */
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* The answer's addresses, as "a b c". */
static const char *addrs_text(const lookup_t *l, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < l->naddrs && n < size; i++) {
        char one[RESOLVER_ADDR_TEXT_SIZE];
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? " " : "",
                              resolver_addr_format(&l->addrs[i], one, sizeof one));
    }
    return buf;
}

static void expect_ok(const lookup_t *l, const char *addrs)
{
    char buf[1024];
    if (l->status != RESOLVER_OK)
        fail_msg("status %s: %s", resolver_status_name(l->status), l->message);
    assert_string_equal(addrs_text(l, buf, sizeof buf), addrs);
}

/* ---- fixtures -------------------------------------------------------------- */

enum { MANY = 300 }; /* addresses of many.test: more than RESOLVER_MAX_ADDRS */

static int start_shared(void **state)
{
    (void)state;
    struct dns_options o = { .local_ttl = LOCAL_TTL, .ipv6 = true, .args = shared_args };
    size_t cap = strlen(shared_hosts) + MANY * 32, n;
    char *hosts = malloc(cap);
    if (!hosts)
        return -1;
    n = (size_t)snprintf(hosts, cap, "%s", shared_hosts);
    for (int i = MANY - 1; i >= 0; i--) /* in reverse: the order must not matter */
        n += (size_t)snprintf(hosts + n, cap - n, "10.1.%d.%d many.test\n", i / 100, i % 100);
    int rc = dns_start(&shared, hosts, &o);
    free(hosts);
    return rc;
}

static int stop_shared(void **state)
{
    (void)state;
    dns_free(&shared);
    return 0;
}

/* ---- answers from dnsmasq ------------------------------------------------ */

static void several_ipv4_sorted_and_unique(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    resolver_t *r = open_resolver(&loop, shared.address, 0, 0);
    lookup_t l;
    resolve_wait(&loop, r, "three.test", &l);
    expect_ok(&l, "9.0.0.1 10.0.0.3 10.0.0.20"); /* by bytes, not by text */
    assert_int_equal(l.source, RESOLVER_FROM_DNS);
    assert_int_equal(l.ttl, LOCAL_TTL);
    assert_int_equal(l.failed, 0);
    assert_false(l.truncated);
    assert_string_equal(l.message, "");
    assert_int_equal(resolver_pending(r), 0);
    close_clean(&loop, r);
}

static void both_families_ipv4_first(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    resolver_t *r = open_resolver(&loop, shared.address, 0, 0);
    lookup_t l;
    resolve_wait(&loop, r, "mixed.test", &l);
    expect_ok(&l, "10.0.0.5 fd00::1 fd00::2");
    assert_int_equal(l.addrs[0].family, RESOLVER_IPV4);
    assert_int_equal(l.addrs[2].family, RESOLVER_IPV6);
    resolve_wait(&loop, r, "six.test", &l); /* A: no data, AAAA: one */
    expect_ok(&l, "fd00::9");
    assert_int_equal(l.failed, 0);
    close_clean(&loop, r);
}

static void ttl_is_the_smallest_used(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    resolver_t *r = open_resolver(&loop, shared.address, 0, 0);
    lookup_t l;
    resolve_wait(&loop, r, "long.test", &l);
    expect_ok(&l, "10.0.1.1");
    assert_int_equal(l.ttl, 300);
    resolve_wait(&loop, r, "short.test", &l); /* CNAME (7 s) to long.test (300 s) */
    expect_ok(&l, "10.0.1.1");
    assert_int_equal(l.ttl, 7);
    resolve_wait(&loop, r, "dual.test", &l); /* A 90 s, AAAA 30 s */
    expect_ok(&l, "10.0.2.1 fd00::21");
    assert_int_equal(l.ttl, 30);
    close_clean(&loop, r);
}

/* 300 A records do not fit in a UDP response: c-ares retries over TCP (the
 * socket is watched for writing too), then the answer keeps the first
 * RESOLVER_MAX_ADDRS in canonical order. */
static void large_answer_over_tcp_is_truncated_canonically(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    resolver_t *r = open_resolver(&loop, shared.address, 0, 0);
    lookup_t l;
    resolve_wait(&loop, r, "many.test", &l);
    assert_int_equal(l.status, RESOLVER_OK);
    assert_true(l.truncated);
    assert_int_equal(l.answer_naddrs, RESOLVER_MAX_ADDRS);
    assert_int_equal(l.naddrs, 64); /* what lookup_t keeps of them */
    char buf[RESOLVER_ADDR_TEXT_SIZE], want[32];
    for (size_t i = 0; i < l.naddrs; i++) {
        snprintf(want, sizeof want, "10.1.%zu.%zu", i / 100, i % 100);
        assert_string_equal(resolver_addr_format(&l.addrs[i], buf, sizeof buf), want);
    }
    close_clean(&loop, r);
}

static void unknown_name_is_empty(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    resolver_t *r = open_resolver(&loop, shared.address, 0, 0);
    lookup_t l;
    resolve_wait(&loop, r, "nope.test", &l);
    assert_int_equal(l.status, RESOLVER_EMPTY);
    assert_string_equal(l.message, "no such name");
    assert_int_equal(l.naddrs, 0);
    assert_int_equal(l.ttl, 0);
    resolve_wait(&loop, r, "txtonly.test", &l); /* exists, no address */
    assert_int_equal(l.status, RESOLVER_EMPTY);
    assert_string_equal(l.message, "no A or AAAA record");
    close_clean(&loop, r);
}

static void ipv6_server_and_failover(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    resolver_t *r = open_resolver(&loop, shared.address6, 0, 0);
    char want[128];
    snprintf(want, sizeof want, "[::1]:%d", shared.port);
    assert_string_equal(resolver_servers_text(r), want);
    lookup_t l;
    resolve_wait(&loop, r, "mixed.test", &l);
    expect_ok(&l, "10.0.0.5 fd00::1 fd00::2");
    close_clean(&loop, r);

    /* The first server refuses (nothing listens there): the second answers. */
    struct dns_server dead;
    assert_int_equal(dns_start(&dead, "", NULL), 0);
    char dead_address[sizeof dead.address + 8];
    snprintf(dead_address, sizeof dead_address, "%s", dead.address);
    assert_int_equal(dns_stop(&dead), 0);
    const char *servers[] = { dead_address, shared.address };
    resolver_options_t o = { .servers = servers, .nservers = 2 };
    uv_loop_init(&loop);
    assert_int_equal(resolver_new(&loop, &o, &r, NULL, 0), 0);
    snprintf(want, sizeof want, "%s, %s", dead_address, shared.address);
    assert_string_equal(resolver_servers_text(r), want);
    resolve_wait(&loop, r, "three.test", &l);
    expect_ok(&l, "9.0.0.1 10.0.0.3 10.0.0.20");
    close_clean(&loop, r);
    dns_free(&dead);
}

/* ---- a changing, stopping and pausing server ------------------------------ */

static void reload_after_sighup(void **state)
{
    (void)state;
    struct dns_server dns;
    assert_int_equal(dns_start(&dns, "10.0.0.1 svc.test\n10.0.0.2 svc.test\n", NULL), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    resolver_t *r = open_resolver(&loop, dns.address, 0, 0);
    lookup_t before, after;
    resolve_wait(&loop, r, "svc.test", &before);
    expect_ok(&before, "10.0.0.1 10.0.0.2");
    assert_int_equal(dns_set_hosts(&dns, "10.0.0.3 svc.test\n10.0.0.2 svc.test\nfd00::3 svc.test\n"), 0);
    resolve_wait(&loop, r, "svc.test", &after);
    expect_ok(&after, "10.0.0.2 10.0.0.3 fd00::3");

    size_t joined[64], left[64], nj, nl;
    assert_int_equal(resolver_addrs_diff(before.addrs, before.naddrs, after.addrs, after.naddrs,
                                         joined, &nj, left, &nl), 3);
    assert_int_equal(nj, 2);
    assert_int_equal(joined[0], 1); /* 10.0.0.3 */
    assert_int_equal(joined[1], 2); /* fd00::3 */
    assert_int_equal(nl, 1);
    assert_int_equal(left[0], 0);   /* 10.0.0.1 */
    close_clean(&loop, r);
    dns_free(&dns);
}

static void stopped_server_is_an_error_then_recovers(void **state)
{
    (void)state;
    struct dns_server dns;
    assert_int_equal(dns_start(&dns, "10.0.0.7 up.test\n", NULL), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    resolver_t *r = open_resolver(&loop, dns.address, 1000, 2);
    assert_int_equal(dns_stop(&dns), 0);
    lookup_t l;
    resolve_wait(&loop, r, "up.test", &l);
    assert_int_equal(l.status, RESOLVER_ERROR);
    char want[100];
    snprintf(want, sizeof want, "DNS server %s: connection refused", dns.address);
    assert_string_equal(l.message, want);
    /* Refused at once (ICMP port unreachable), well before the 3 s timeout. */
    assert_true(l.done_ms - l.started_ms < 2500);
    assert_int_equal(dns_restart(&dns), 0);
    resolve_wait(&loop, r, "up.test", &l);
    expect_ok(&l, "10.0.0.7");
    close_clean(&loop, r);
    dns_free(&dns);
}

static void silent_server_times_out_in_bounded_time(void **state)
{
    (void)state;
    struct dns_server dns;
    assert_int_equal(dns_start(&dns, "10.0.0.8 slow.test\n", NULL), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* 200 ms, then 400 ms: gives up after 600 ms. */
    resolver_t *r = open_resolver(&loop, dns.address, 200, 2);
    assert_int_equal(dns_pause(&dns), 0);
    lookup_t l;
    resolve_wait(&loop, r, "slow.test", &l);
    uint64_t took = l.done_ms - l.started_ms;
    assert_int_equal(l.status, RESOLVER_ERROR);
    char want[100];
    snprintf(want, sizeof want, "DNS server %s: timeout", dns.address);
    assert_string_equal(l.message, want);
    assert_true(took >= 550);
    assert_true(took < 5000);
    assert_int_equal(dns_resume(&dns), 0); /* it answers the stale queries now */
    resolve_wait(&loop, r, "slow.test", &l);
    expect_ok(&l, "10.0.0.8");
    close_clean(&loop, r);
    dns_free(&dns);
}

static int nothing_pending(void *arg)
{
    return resolver_pending(arg) == 0;
}

static void cancelled_lookups_never_call_back(void **state)
{
    (void)state;
    struct dns_server dns;
    assert_int_equal(dns_start(&dns, "10.0.0.9 c.test\n", NULL), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    resolver_t *r = open_resolver(&loop, dns.address, 5000, 1);
    lookup_t l[4];
    memset(l, 0, sizeof l);

    /* In flight to a paused server; the answer comes after the cancel. */
    assert_int_equal(dns_pause(&dns), 0);
    resolver_query_t *q = start(r, "c.test", &l[0]);
    uv_run(&loop, UV_RUN_NOWAIT); /* the queries leave */
    resolver_cancel(q);
    /* Answered at once but not yet delivered: a literal, the hosts file. */
    resolver_cancel(start(r, "10.1.1.1", &l[1]));
    resolver_cancel(start(r, "localhost", &l[2]));
    start(r, "10.2.2.2", &l[3]); /* this one is not cancelled */
    assert_int_equal(resolver_pending(r), 1);
    assert_int_equal(dns_resume(&dns), 0);
    /* The loop runs dry: dnsmasq's answer arrived and was dropped. */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(l[0].calls + l[1].calls + l[2].calls, 0);
    assert_int_equal(l[3].calls, 1);
    assert_true(nothing_pending(r));
    close_clean(&loop, r);
    dns_free(&dns);
}

static void close_with_lookups_pending(void **state)
{
    (void)state;
    struct dns_server dns;
    assert_int_equal(dns_start(&dns, "10.0.0.10 p.test\n", NULL), 0);
    assert_int_equal(dns_pause(&dns), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    resolver_t *r = open_resolver(&loop, dns.address, 5000, 2);
    lookup_t l[4];
    memset(l, 0, sizeof l);
    start(r, "p.test", &l[0]);
    start(r, "other.test", &l[1]);
    uv_run(&loop, UV_RUN_NOWAIT);
    start(r, "q.test", &l[2]);
    start(r, "10.3.3.3", &l[3]);
    assert_int_equal(resolver_pending(r), 4);
    close_clean(&loop, r);
    for (int i = 0; i < 4; i++)
        assert_int_equal(l[i].calls, 0);
    dns_free(&dns);
}

static void close_from_inside_a_callback(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    resolver_t *r = open_resolver(&loop, shared.address, 0, 0);
    lookup_t first, second, third;
    memset(&first, 0, sizeof first);
    memset(&second, 0, sizeof second);
    memset(&third, 0, sizeof third);
    first.close_me = r;
    start(r, "10.4.4.4", &first);
    start(r, "10.5.5.5", &second);  /* ready at the same time: never delivered */
    start(r, "three.test", &third); /* in flight */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(first.calls, 1);
    assert_int_equal(second.calls, 0);
    assert_int_equal(third.calls, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- without DNS: /etc/hosts, literals, immediate failures ------------------ */

static void localhost_from_the_hosts_file(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    resolver_t *r = open_resolver(&loop, NULL, 0, 0); /* /etc/resolv.conf */
    assert_true(strlen(resolver_servers_text(r)) > 0);
    lookup_t l;
    resolve_wait(&loop, r, "localhost", &l);
    assert_int_equal(l.status, RESOLVER_OK);
    assert_int_equal(l.source, RESOLVER_FROM_HOSTS);
    assert_int_equal(l.ttl, RESOLVER_TTL_NONE);
    char buf[256];
    addrs_text(&l, buf, sizeof buf);
    assert_non_null(strstr(buf, "127.0.0.1"));
    close_clean(&loop, r);
}

static void literals_answer_without_a_query(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* A server nobody answers at: a query would fail, literals do not. */
    resolver_t *r = open_resolver(&loop, "127.0.0.1:9", 100, 1);
    lookup_t l;
    resolve_wait(&loop, r, "10.1.2.3", &l);
    expect_ok(&l, "10.1.2.3");
    assert_int_equal(l.source, RESOLVER_FROM_LITERAL);
    assert_int_equal(l.ttl, RESOLVER_TTL_NONE);
    resolve_wait(&loop, r, "fd00::0:1", &l);
    expect_ok(&l, "fd00::1");
    assert_int_equal(l.addrs[0].family, RESOLVER_IPV6);
    close_clean(&loop, r);
}

static void immediate_failures_are_deferred(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    resolver_t *r = open_resolver(&loop, shared.address, 0, 0);
    lookup_t l;
    resolve_wait(&loop, r, "a..b.test", &l); /* c-ares refuses it before sending */
    assert_int_equal(l.status, RESOLVER_ERROR);
    assert_string_equal(l.message, "bad host name");
    resolve_wait(&loop, r, "hidden.onion", &l); /* RFC 7686: NXDOMAIN, never sent */
    assert_int_equal(l.status, RESOLVER_EMPTY);
    char long_name[300];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(resolver_resolve(r, long_name, on_answer, &l, NULL), -EINVAL);
    assert_int_equal(resolver_resolve(r, "", on_answer, &l, NULL), -EINVAL);
    close_clean(&loop, r);
}

static void bad_server_texts_are_named(void **state)
{
    (void)state;
    static const struct { const char *text, *reason; } bad[] = {
        { "10.0.0.300", "bad IPv4 address" },
        { "dns.example", "must be an IP address" },
        { "dns.example:53", "must be an IP address" },
        { "10.0.0.1:", "port must be 1..65535" },
        { "10.0.0.1:0", "port must be 1..65535" },
        { "10.0.0.1:65536", "port must be 1..65535" },
        { "10.0.0.1:53x", "port must be 1..65535" },
        { "::1", "an IPv6 address needs brackets" },
        { "[::1", "missing ]" },
        { "[::1]x", "unexpected text after ]" },
        { "[10.0.0.1]:53", "bad IPv6 address" },
        { "", "empty" },
    };
    uv_loop_t loop;
    uv_loop_init(&loop);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *servers[] = { "127.0.0.1", bad[i].text };
        resolver_options_t o = { .servers = servers, .nservers = 2 };
        resolver_t *r = NULL;
        char err[200], want[200];
        assert_int_equal(resolver_new(&loop, &o, &r, err, sizeof err), -EINVAL);
        assert_null(r);
        snprintf(want, sizeof want, "DNS server \"%s\": %s", bad[i].text, bad[i].reason);
        assert_string_equal(err, want);
    }
    resolver_server_t s;
    assert_null(resolver_server_parse("192.0.2.53", &s));
    assert_int_equal(s.port, 53);
    assert_null(resolver_server_parse("[2001:db8::53]:5353", &s));
    assert_int_equal(s.port, 5353);
    assert_int_equal(s.addr.family, RESOLVER_IPV6);
    assert_null(resolver_server_parse("[::1]", &s));
    assert_int_equal(s.port, 53);
    const char *many[RESOLVER_MAX_SERVERS + 1];
    for (size_t i = 0; i <= RESOLVER_MAX_SERVERS; i++)
        many[i] = "127.0.0.1";
    resolver_options_t o = { .servers = many, .nservers = RESOLVER_MAX_SERVERS + 1 };
    resolver_t *r = NULL;
    char err[200];
    assert_int_equal(resolver_new(&loop, &o, &r, err, sizeof err), -EINVAL);
    assert_string_equal(err, "more than 16 DNS servers");
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- a scripted server: one family fails ------------------------------------ */

enum fake_mode { FAKE_ANSWER, FAKE_SERVFAIL, FAKE_REFUSED, FAKE_NODATA, FAKE_DROP };

typedef struct fake_dns {
    uv_udp_t udp;
    char address[32];
    enum fake_mode a, aaaa;
    int closed;
    char in[1500];
} fake_dns_t;

static void fake_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    fake_dns_t *f = h->data;
    (void)size;
    *buf = uv_buf_init(f->in, sizeof f->in);
}

/* Replies to one query: the question echoed, then as the mode says. */
static void fake_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
                      unsigned flags)
{
    fake_dns_t *f = u->data;
    unsigned char *q = (unsigned char *)buf->base, out[600];
    (void)flags;
    if (n < 12 || !from)
        return;
    size_t i = 12;
    while (i < (size_t)n && q[i])
        i += q[i] + 1u;
    size_t qend = i + 5;
    if (qend > (size_t)n || qend + 16 + 16 > sizeof out)
        return;
    int qtype = (q[i + 1] << 8) | q[i + 2];
    enum fake_mode mode = qtype == 1 ? f->a : f->aaaa;
    if (mode == FAKE_DROP)
        return;
    memcpy(out, q, qend);
    out[2] = 0x81;                                  /* response, RD */
    out[3] = mode == FAKE_SERVFAIL ? 0x82 : mode == FAKE_REFUSED ? 0x85 : 0x80; /* RA, rcode */
    memset(out + 6, 0, 6);                          /* no answer/authority/additional */
    size_t len = qend;
    if (mode == FAKE_ANSWER) {
        static const unsigned char v4[4] = { 10, 9, 9, 9 };
        static const unsigned char v6[16] = { 0xfd, 0, [15] = 0x99 };
        size_t rdlen = qtype == 1 ? 4 : 16;
        unsigned char rr[12] = { 0xc0, 12, 0, (unsigned char)qtype, 0, 1, 0, 0, 0, 30, 0,
                                 (unsigned char)rdlen };
        memcpy(out + len, rr, sizeof rr);
        memcpy(out + len + sizeof rr, qtype == 1 ? v4 : v6, rdlen);
        len += sizeof rr + rdlen;
        out[7] = 1;
    }
    uv_buf_t reply = uv_buf_init((char *)out, (unsigned)len);
    uv_udp_try_send(u, &reply, 1, from);
}

static void fake_start(uv_loop_t *loop, fake_dns_t *f, enum fake_mode a, enum fake_mode aaaa)
{
    struct sockaddr_in sa;
    struct sockaddr_storage bound;
    int len = sizeof bound;
    memset(f, 0, sizeof *f);
    f->a = a;
    f->aaaa = aaaa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_udp_init(loop, &f->udp), 0);
    f->udp.data = f;
    assert_int_equal(uv_udp_bind(&f->udp, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_udp_getsockname(&f->udp, (struct sockaddr *)&bound, &len), 0);
    snprintf(f->address, sizeof f->address, "127.0.0.1:%d",
             ntohs(((struct sockaddr_in *)&bound)->sin_port));
    assert_int_equal(uv_udp_recv_start(&f->udp, fake_alloc, fake_recv), 0);
}

static void on_fake_closed(uv_handle_t *h)
{
    ((fake_dns_t *)h->data)->closed = 1;
}

/* Closes the socket and runs the loop until it is closed (f can be reused). */
static void fake_stop(uv_loop_t *loop, fake_dns_t *f)
{
    uv_close((uv_handle_t *)&f->udp, on_fake_closed);
    while (!f->closed)
        uv_run(loop, UV_RUN_ONCE);
}

static void one_family_failing(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake_dns_t f;
    lookup_t l;
    char want[120];

    /* A answers, AAAA fails: OK with the IPv4 address, IPv6 unknown. */
    fake_start(&loop, &f, FAKE_ANSWER, FAKE_SERVFAIL);
    resolver_t *r = open_resolver(&loop, f.address, 300, 1);
    resolve_wait(&loop, r, "part.test", &l);
    expect_ok(&l, "10.9.9.9");
    assert_int_equal(l.ttl, 30);
    assert_int_equal(l.failed, RESOLVER_FAILED_IPV6);
    snprintf(want, sizeof want, "DNS server %s: AAAA: server failure", f.address);
    assert_string_equal(l.message, want);
    resolver_close(r, NULL, NULL);
    fake_stop(&loop, &f);

    /* A times out, AAAA has no data: an error, not "empty" (c-ares 1.18's
     * ares_getaddrinfo would say "no data" here). */
    fake_start(&loop, &f, FAKE_DROP, FAKE_NODATA);
    r = open_resolver(&loop, f.address, 300, 1);
    resolve_wait(&loop, r, "part.test", &l);
    assert_int_equal(l.status, RESOLVER_ERROR);
    snprintf(want, sizeof want, "DNS server %s: timeout", f.address);
    assert_string_equal(l.message, want);
    resolver_close(r, NULL, NULL);
    fake_stop(&loop, &f);

    /* Both fail differently: both named. */
    fake_start(&loop, &f, FAKE_SERVFAIL, FAKE_DROP);
    r = open_resolver(&loop, f.address, 300, 1);
    resolve_wait(&loop, r, "part.test", &l);
    assert_int_equal(l.status, RESOLVER_ERROR);
    snprintf(want, sizeof want, "DNS server %s: A: server failure, AAAA: timeout", f.address);
    assert_string_equal(l.message, want);

    /* AAAA answers, A is refused. */
    f.a = FAKE_REFUSED;
    f.aaaa = FAKE_ANSWER;
    resolve_wait(&loop, r, "part.test", &l);
    expect_ok(&l, "fd00::99");
    assert_int_equal(l.failed, RESOLVER_FAILED_IPV4);
    snprintf(want, sizeof want, "DNS server %s: A: query refused", f.address);
    assert_string_equal(l.message, want);
    resolver_close(r, NULL, NULL);
    fake_stop(&loop, &f);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void several_servers_fail_over_on_server_failure(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake_dns_t bad, good;
    lookup_t l;
    char want[200];
    fake_start(&loop, &bad, FAKE_SERVFAIL, FAKE_REFUSED);
    fake_start(&loop, &good, FAKE_ANSWER, FAKE_ANSWER);
    const char *servers[] = { bad.address, good.address };
    resolver_options_t o = { .servers = servers, .nservers = 2, .timeout_ms = 300, .tries = 1 };
    resolver_t *r = NULL;
    assert_int_equal(resolver_new(&loop, &o, &r, NULL, 0), 0);
    resolve_wait(&loop, r, "both.test", &l);
    expect_ok(&l, "10.9.9.9 fd00::99");
    assert_int_equal(l.failed, 0);

    /* Both fail AAAA: c-ares 1.18 says "connection refused" for it all. */
    good.aaaa = FAKE_SERVFAIL;
    resolve_wait(&loop, r, "both.test", &l);
    expect_ok(&l, "10.9.9.9");
    assert_int_equal(l.failed, RESOLVER_FAILED_IPV6);
    snprintf(want, sizeof want, "DNS servers %s, %s: AAAA: connection refused or server failure",
             bad.address, good.address);
    assert_string_equal(l.message, want);
    close_clean_keep(&loop, r);
    fake_stop(&loop, &bad);
    fake_stop(&loop, &good);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- several workers --------------------------------------------------------- */

enum { WORKERS = 4, WORKER_LOOKUPS = 25 };

typedef struct worker {
    pthread_t thread;
    int ok;            /* lookups answered with the expected set */
    int loop_closed;   /* uv_loop_close's result */
    char first_error[200];
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    uv_loop_t loop;
    uv_loop_init(&loop);
    const char *servers[] = { shared.address };
    resolver_options_t o = { .servers = servers, .nservers = 1 };
    resolver_t *r = NULL;
    if (resolver_new(&loop, &o, &r, w->first_error, sizeof w->first_error) != 0)
        return NULL;
    for (int i = 0; i < WORKER_LOOKUPS; i++) {
        lookup_t l;
        memset(&l, 0, sizeof l);
        /* No cmocka here: record, the main thread asserts. */
        if (resolver_resolve(r, i % 2 ? "mixed.test" : "three.test", on_answer, &l, NULL) != 0)
            break;
        while (l.calls == 0)
            uv_run(&loop, UV_RUN_ONCE);
        char buf[256];
        const char *want = i % 2 ? "10.0.0.5 fd00::1 fd00::2" : "9.0.0.1 10.0.0.3 10.0.0.20";
        if (l.status == RESOLVER_OK && strcmp(addrs_text(&l, buf, sizeof buf), want) == 0)
            w->ok++;
        else if (!w->first_error[0])
            snprintf(w->first_error, sizeof w->first_error, "%s: %.150s",
                     resolver_status_name(l.status), l.message);
    }
    resolver_close(r, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    w->loop_closed = uv_loop_close(&loop);
    return NULL;
}

static void one_resolver_per_thread(void **state)
{
    (void)state;
    worker_t w[WORKERS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < WORKERS; i++)
        assert_int_equal(pthread_create(&w[i].thread, NULL, worker_main, &w[i]), 0);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(w[i].thread, NULL);
    for (int i = 0; i < WORKERS; i++) {
        if (w[i].ok != WORKER_LOOKUPS)
            fail_msg("worker %d: %d of %d ok; %s", i, w[i].ok, WORKER_LOOKUPS, w[i].first_error);
        assert_int_equal(w[i].loop_closed, 0);
    }
}

/* ---- how long a lookup takes ---------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void lookup_latency(void **state)
{
    (void)state;
    enum { N = 200 };
    uv_loop_t loop;
    uv_loop_init(&loop);
    resolver_t *r = open_resolver(&loop, shared.address, 0, 0);
    static uint64_t us[N];
    for (int i = 0; i < N; i++) {
        lookup_t l;
        uint64_t t0 = uv_hrtime();
        resolve_wait(&loop, r, "mixed.test", &l);
        us[i] = (uv_hrtime() - t0) / 1000;
        expect_ok(&l, "10.0.0.5 fd00::1 fd00::2");
    }
    qsort(us, N, sizeof us[0], cmp_u64);
    print_message("lookup of A+AAAA against local dnsmasq, %d sequential: median %llu us, "
                  "p90 %llu us, max %llu us\n", N, (unsigned long long)us[N / 2],
                  (unsigned long long)us[N * 9 / 10], (unsigned long long)us[N - 1]);
    close_clean(&loop, r);
}

/* ---- pure helpers --------------------------------------------------------- */

static resolver_addr_t addr(const char *text)
{
    resolver_addr_t a;
    assert_int_equal(resolver_addr_parse(text, &a), 0);
    return a;
}

static void sort_dedupe_and_order(void **state)
{
    (void)state;
    resolver_addr_t a[] = { addr("fd00::1"), addr("10.0.0.20"), addr("::1"), addr("10.0.0.3"),
                            addr("fd00::1"), addr("255.255.255.255"), addr("10.0.0.3") };
    size_t n = resolver_addrs_sort(a, sizeof a / sizeof a[0]);
    assert_int_equal(n, 5);
    static const char *const want[] = { "10.0.0.3", "10.0.0.20", "255.255.255.255", "::1", "fd00::1" };
    for (size_t i = 0; i < n; i++) {
        char buf[RESOLVER_ADDR_TEXT_SIZE];
        assert_string_equal(resolver_addr_format(&a[i], buf, sizeof buf), want[i]);
    }
    resolver_addr_t x = addr("10.0.0.1"), y = addr("10.0.0.1");
    assert_int_equal(resolver_addr_cmp(&x, &y), 0);
    assert_true(resolver_addr_cmp(&a[2], &a[3]) < 0); /* every IPv4 before IPv6 */
    assert_int_equal(resolver_addrs_sort(a, 0), 0);
    assert_int_equal(resolver_addr_parse("10.0.0", &x), -EINVAL);
    assert_int_equal(resolver_addr_parse("[::1]", &x), -EINVAL);
    assert_int_equal(resolver_addr_parse("name.test", &x), -EINVAL);
}

static void diff_of_sorted_lists(void **state)
{
    (void)state;
    resolver_addr_t before[] = { addr("10.0.0.1"), addr("10.0.0.2"), addr("10.0.0.4"), addr("fd00::1") };
    resolver_addr_t now[] = { addr("10.0.0.2"), addr("10.0.0.3"), addr("10.0.0.4"), addr("fd00::2"),
                              addr("fd00::3") };
    size_t joined[8], left[8], nj, nl;
    assert_int_equal(resolver_addrs_diff(before, 4, now, 5, joined, &nj, left, &nl), 5);
    assert_int_equal(nj, 3);
    assert_int_equal(joined[0], 1);
    assert_int_equal(joined[1], 3);
    assert_int_equal(joined[2], 4);
    assert_int_equal(nl, 2);
    assert_int_equal(left[0], 0);
    assert_int_equal(left[1], 3);
    /* Same set, empty sides. */
    assert_int_equal(resolver_addrs_diff(before, 4, before, 4, joined, &nj, left, &nl), 0);
    assert_int_equal(resolver_addrs_diff(NULL, 0, now, 5, joined, &nj, left, &nl), 5);
    assert_int_equal(nj, 5);
    assert_int_equal(nl, 0);
    assert_int_equal(joined[4], 4);
    assert_int_equal(resolver_addrs_diff(before, 4, NULL, 0, joined, &nj, left, &nl), 4);
    assert_int_equal(nl, 4);
    assert_int_equal(resolver_addrs_diff(NULL, 0, NULL, 0, joined, &nj, left, &nl), 0);
}

static void sockaddr_and_status_names(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    resolver_addr_t a = addr("10.1.2.3");
    assert_int_equal(resolver_addr_sockaddr(&a, 3000, &ss), sizeof(struct sockaddr_in));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    assert_int_equal(in->sin_family, AF_INET);
    assert_int_equal(ntohs(in->sin_port), 3000);
    assert_int_equal(ntohl(in->sin_addr.s_addr), 0x0a010203);
    a = addr("fd00::7");
    assert_int_equal(resolver_addr_sockaddr(&a, 53, &ss), sizeof(struct sockaddr_in6));
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    assert_int_equal(in6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(in6->sin6_port), 53);
    assert_int_equal(in6->sin6_addr.s6_addr[15], 7);
    assert_string_equal(resolver_status_name(RESOLVER_OK), "ok");
    assert_string_equal(resolver_status_name(RESOLVER_EMPTY), "empty");
    assert_string_equal(resolver_status_name(RESOLVER_ERROR), "error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(several_ipv4_sorted_and_unique),
        cmocka_unit_test(both_families_ipv4_first),
        cmocka_unit_test(ttl_is_the_smallest_used),
        cmocka_unit_test(large_answer_over_tcp_is_truncated_canonically),
        cmocka_unit_test(unknown_name_is_empty),
        cmocka_unit_test(ipv6_server_and_failover),
        cmocka_unit_test(reload_after_sighup),
        cmocka_unit_test(stopped_server_is_an_error_then_recovers),
        cmocka_unit_test(silent_server_times_out_in_bounded_time),
        cmocka_unit_test(cancelled_lookups_never_call_back),
        cmocka_unit_test(close_with_lookups_pending),
        cmocka_unit_test(close_from_inside_a_callback),
        cmocka_unit_test(localhost_from_the_hosts_file),
        cmocka_unit_test(literals_answer_without_a_query),
        cmocka_unit_test(immediate_failures_are_deferred),
        cmocka_unit_test(bad_server_texts_are_named),
        cmocka_unit_test(one_family_failing),
        cmocka_unit_test(several_servers_fail_over_on_server_failure),
        cmocka_unit_test(one_resolver_per_thread),
        cmocka_unit_test(lookup_latency),
        cmocka_unit_test(sort_dedupe_and_order),
        cmocka_unit_test(diff_of_sorted_lists),
        cmocka_unit_test(sockaddr_and_status_names),
    };
    return cmocka_run_group_tests_name("resolver", tests, start_shared, stop_shared);
}
