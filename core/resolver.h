/*
 * resolver: non-blocking DNS name resolution for the upstream layer, with
 * c-ares driven by the worker's libuv loop. No thread pool, no blocking
 * network call, no getaddrinfo().
 *
 * One lookup of a host name answers with ALL its addresses, IPv4 (A) and
 * IPv6 (AAAA), deduplicated and sorted in a canonical order (IPv4 before
 * IPv6, then by address bytes), so two answers can be compared with
 * resolver_addrs_diff(), and with the TTL of the records used.
 *
 * Lookup order, fixed:
 *   1. an IP literal ("10.0.0.7", "fd00::7") is answered as is: one address,
 *      no query (source RESOLVER_FROM_LITERAL);
 *   2. the hosts file /etc/hosts: every line naming the host, both families
 *      (source RESOLVER_FROM_HOSTS). "localhost" missing from it answers the
 *      loopback addresses (RFC 6761). A hosts file that cannot be read counts
 *      as one without the name;
 *   3. DNS: an A and an AAAA query sent together, each with the search
 *      domains and ndots of /etc/resolv.conf, to the configured servers
 *      (source RESOLVER_FROM_DNS).
 *
 * Why two queries and not c-ares' ares_getaddrinfo(AF_UNSPEC): in c-ares
 * 1.18 that call reports only the status of whichever of its two queries
 * ended last. An A answer plus an AAAA timeout is "success" with the IPv4
 * addresses only, and an A timeout plus an AAAA "no data" is "no data": a
 * caller that drains the endpoints missing from an answer would drop live
 * replicas on a transient failure. With one query per family each failure is
 * known and reported (resolver_answer_t.failed_families).
 *
 * Threading: a resolver_t belongs to the thread of its loop. Several workers
 * each create their own on their own loop; the only process-wide state is
 * c-ares' library initialisation, done once (uv_once) by the first
 * resolver_new() and never undone.
 *
 * Ownership:
 *
 *   caller ──owns──▶ resolver_t ──owns──▶ c-ares channel
 *                       │                  uv_timer_t   c-ares' timeouts
 *                       │                  uv_idle_t    delivers answers
 *                       │                  uv_poll_t    one per c-ares socket
 *                       └──owns──▶ resolver_query_t (one per lookup)
 *
 * A resolver_query_t handle is the caller's to use (for resolver_cancel) from
 * resolver_resolve() until its callback starts or until it is cancelled;
 * after that it is gone. Everything an answer points to is borrowed for the
 * duration of the callback only: copy what you keep.
 *
 * Callbacks: never called from inside the function that started the lookup
 * (answers c-ares gives at once, from the hosts file, for literals or for
 * an invalid name, are delivered from the loop), and never while c-ares is
 * on the stack, so a callback may call any function here, resolver_close()
 * included. Exactly one callback per lookup that is neither cancelled nor
 * closed; none after resolver_cancel() or resolver_close().
 *
 * Errors: functions return 0 or a negative errno; how a lookup ended is a
 * resolver_status_t with a short human message.
 */
#ifndef PG_CORE_RESOLVER_H
#define PG_CORE_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* ---- addresses (pure, no resolver needed) ------------------------------ */

typedef enum resolver_family {
    RESOLVER_IPV4 = 4,
    RESOLVER_IPV6 = 6,
} resolver_family_t;

/* One IP address, no port. bytes are in network order; an IPv4 address uses
 * bytes[0..3] and leaves the other 12 zero (so memcmp orders them). A plain
 * value: copy it freely. */
typedef struct resolver_addr {
    uint8_t family; /* resolver_family_t */
    uint8_t bytes[16];
} resolver_addr_t;

/* Longest text of resolver_addr_format, NUL included (INET6_ADDRSTRLEN). */
#define RESOLVER_ADDR_TEXT_SIZE 46

/* Canonical order: IPv4 before IPv6, then bytes. <0, 0, >0 like memcmp. */
int resolver_addr_cmp(const resolver_addr_t *a, const resolver_addr_t *b);

/* Sorts addrs[n] in canonical order and removes duplicates in place;
 * returns the new count. */
size_t resolver_addrs_sort(resolver_addr_t *addrs, size_t n);

/* Compares two lists sorted by resolver_addrs_sort (before, now). Stores in
 * joined[] the indexes into now[] of the addresses not in before[], and in
 * left[] the indexes into before[] of the addresses not in now[], both in
 * canonical order; joined needs room for n_now entries and left for
 * n_before. Returns *n_joined + *n_left (0: same set). O(n_before + n_now). */
size_t resolver_addrs_diff(const resolver_addr_t *before, size_t n_before,
                           const resolver_addr_t *now, size_t n_now,
                           size_t *joined, size_t *n_joined,
                           size_t *left, size_t *n_left);

/* Writes "10.0.0.7" or "fd00::7" to buf[size] (RESOLVER_ADDR_TEXT_SIZE is
 * always enough); returns buf. */
const char *resolver_addr_format(const resolver_addr_t *addr, char *buf, size_t size);

/* Parses an IPv4 or IPv6 literal (no brackets, no port). 0 or -EINVAL. */
int resolver_addr_parse(const char *text, resolver_addr_t *out);

/* Fills *out with addr and port (host order) for connect(); returns the
 * length to pass with it. */
socklen_t resolver_addr_sockaddr(const resolver_addr_t *addr, uint16_t port,
                                 struct sockaddr_storage *out);

/* ---- DNS servers ------------------------------------------------------- */

/* A DNS server as written in config: "192.0.2.53", "192.0.2.53:5353",
 * "[2001:db8::53]", "[2001:db8::53]:5353" (port 1..65535, default 53). */
typedef struct resolver_server {
    resolver_addr_t addr;
    uint16_t port;
} resolver_server_t;

/* Parses one server text. Returns NULL and fills *out, or a short static
 * reason ("must be an IP address", "bad IPv4 address", "bad IPv6 address",
 * "an IPv6 address needs brackets", "missing ]", "unexpected text after ]",
 * "port must be 1..65535", "empty"). For config validation too. */
const char *resolver_server_parse(const char *text, resolver_server_t *out);

/* ---- the resolver ------------------------------------------------------ */

#define RESOLVER_DEFAULT_TIMEOUT_MS 1000
#define RESOLVER_DEFAULT_TRIES 2
#define RESOLVER_MAX_SERVERS 16
/* An answer keeps at most this many addresses: the first ones in canonical
 * order (so the kept set does not depend on the order the server sent);
 * resolver_answer_t.truncated says when some were dropped. */
#define RESOLVER_MAX_ADDRS 256
/* Longest host name accepted (a final '.' aside). */
#define RESOLVER_NAME_MAX 253
/* The TTL of answers that carry none (hosts file, literals): "no TTL,
 * refresh on your own schedule". Equal to UINT32_MAX, so a caller taking
 * min(interval, ttl) gets its interval. */
#define RESOLVER_TTL_NONE UINT32_MAX

typedef struct resolver_options {
    /* DNS servers, nservers texts as resolver_server_parse() takes them,
     * tried in this order. nservers == 0: those of /etc/resolv.conf (with
     * c-ares' fallback to 127.0.0.1:53 when it names none). Borrowed during
     * resolver_new() only. */
    const char *const *servers;
    size_t nservers;
    /* Time to wait for the first answer of one server, in ms; 0: the
     * default. c-ares doubles it at each round over the servers, so one
     * query gives up after timeout_ms * nservers * (2^tries - 1) at most
     * (1000 ms, 2 tries, one server: 3 s). */
    unsigned timeout_ms;
    /* Rounds over the servers for one query; 0: the default. */
    unsigned tries;
} resolver_options_t;

/* Failing servers (c-ares 1.18): a server that does not answer is retried
 * as above; one whose port is closed (ICMP port unreachable) or that answers
 * SERVFAIL, REFUSED or NOTIMP is skipped at once for the rest of the query.
 * With one server the message says which ("connection refused", "server
 * failure", "query refused"); with several, the next server is tried and,
 * when all failed, c-ares cannot tell those apart ("connection refused or
 * server failure"). */

typedef struct resolver resolver_t;
typedef struct resolver_query resolver_query_t;

/* How a lookup ended (SPEC.md's metric labels ok, empty, error). */
typedef enum resolver_status {
    RESOLVER_OK,    /* at least one address */
    RESOLVER_EMPTY, /* the name does not exist, or has no A/AAAA record */
    RESOLVER_ERROR, /* the question got no answer: timeout, refused,
                       server failure, bad response, out of memory... */
} resolver_status_t;

typedef enum resolver_source {
    RESOLVER_FROM_LITERAL,
    RESOLVER_FROM_HOSTS,
    RESOLVER_FROM_DNS,
} resolver_source_t;

/* Bits of resolver_answer_t.failed_families. */
#define RESOLVER_FAILED_IPV4 1u
#define RESOLVER_FAILED_IPV6 2u

typedef struct resolver_answer {
    resolver_status_t status;
    resolver_source_t source;
    /* OK: the addresses, sorted and unique (resolver_addrs_sort's order);
     * EMPTY and ERROR: none (naddrs 0; addrs is never NULL). Borrowed until
     * the callback returns. */
    const resolver_addr_t *addrs;
    size_t naddrs;
    bool truncated; /* more than RESOLVER_MAX_ADDRS were found */
    /* OK from DNS: the smallest TTL (seconds) of the records used, CNAMEs
     * included; RESOLVER_TTL_NONE from hosts or a literal; 0 otherwise. */
    uint32_t ttl;
    /* OK from DNS: the families whose query failed (ERROR) while the other
     * gave addresses. Their addresses are unknown, not absent: a caller that
     * diffs answers should keep its previous addresses of those families. */
    unsigned failed_families;
    /* "" for a full OK; otherwise a short text, e.g. "no such name",
     * "no A or AAAA record", "DNS server 127.0.0.1:5353: timeout",
     * "DNS server 10.0.0.2:53: AAAA: server failure" (OK, IPv6 unknown),
     * "DNS servers 10.0.0.2:53, 10.0.0.3:53: connection refused or server
     * failure" (with several servers c-ares 1.18 cannot tell those apart).
     * Borrowed until the callback returns. */
    const char *message;
} resolver_answer_t;

typedef void (*resolver_cb)(const resolver_answer_t *answer, void *ctx);

/*
 * Creates a resolver on `loop` (options may be NULL for all defaults).
 * Reads /etc/resolv.conf and friends once, here (c-ares init: a local file
 * read). Returns 0 and *out, or: -EINVAL for a bad option (a server text
 * that does not parse, more than RESOLVER_MAX_SERVERS), with err naming it
 * (e.g. `DNS server "10.0.0.300": bad IPv4 address`); -ENOMEM; -EIO when
 * c-ares cannot start (err says why). err[errlen] may be NULL/0.
 * The caller owns the resolver until resolver_close().
 */
int resolver_new(uv_loop_t *loop, const resolver_options_t *options, resolver_t **out,
                 char *err, size_t errlen);

/*
 * Starts a lookup of `name` (copied). cb(answer, ctx) runs once, later, from
 * the loop. If out is not NULL it receives the handle for resolver_cancel.
 * Returns 0; -EINVAL for an empty name or one longer than RESOLVER_NAME_MAX;
 * -ENOMEM; -ESHUTDOWN once resolver_close() was called. On error nothing
 * was started and cb never runs.
 * Lookups do not keep the loop alive once answered: an idle resolver has no
 * active handle.
 */
int resolver_resolve(resolver_t *r, const char *name, resolver_cb cb, void *ctx,
                     resolver_query_t **out);

/* No callback for q, ever, from now on. q is invalid afterwards. Must not be
 * called once q's callback has started (from inside it, it is ignored). The
 * question may still travel (c-ares cannot withdraw one query); its answer
 * is dropped. */
void resolver_cancel(resolver_query_t *q);

/*
 * Cancels every pending lookup (no callback), shuts c-ares down and closes
 * every uv handle; when the last one is closed, frees r and calls done(ctx)
 * (done may be NULL). r is invalid as soon as this returns, except that it
 * may be called from inside a lookup's callback. Then the loop can run dry
 * and uv_loop_close() succeed.
 */
void resolver_close(resolver_t *r, void (*done)(void *ctx), void *ctx);

/* The servers in use, as text: "127.0.0.1:5353" or "10.0.0.1:53,
 * [fd00::1]:53" (what error messages name). Valid while r lives. */
const char *resolver_servers_text(const resolver_t *r);

/* Lookups started and not yet delivered or cancelled (for tests, stats). */
size_t resolver_pending(const resolver_t *r);

const char *resolver_status_name(resolver_status_t status); /* "ok", "empty", "error" */

#endif
