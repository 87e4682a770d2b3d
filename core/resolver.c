#include "core/resolver.h"

#include <ares.h>
#include <ares_nameser.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/list.h"

/*
 * How c-ares runs on the loop: c-ares tells us which of its sockets to watch
 * through the socket-state callback (one uv_poll_t each, closed when it says
 * so, before it closes the socket); ares_timeout() says when the earliest
 * query times out (one uv_timer_t); ares_process_fd() does the reading,
 * writing, retrying and timing out. c-ares calls our query callbacks from
 * inside those calls (or from inside ares_search itself, for immediate
 * failures); the callbacks only record results, and answers are handed to
 * the caller from a uv_idle_t once c-ares is off the stack.
 */

#define SERVERS_TEXT_MAX 200
#define MESSAGE_MAX 400

/* Where a query is in its life. Running: c-ares still holds it (pending > 0)
 * or it is between steps. Ready: answered, waiting for the idle callback.
 * Delivering: its callback runs. Orphan: cancelled (or closed) while c-ares
 * still holds it; freed when c-ares lets go (pending == 0). */
typedef enum query_state {
    Q_RUNNING,
    Q_READY,
    Q_DELIVERING,
    Q_ORPHAN,
} query_state_t;

enum { FAM_V4, FAM_V6, FAM_COUNT };

typedef struct found {
    resolver_addr_t addr;
    uint32_t ttl;
} found_t;

struct resolver_query {
    list_node_t link;          /* r->running (RUNNING, ORPHAN) or r->ready */
    resolver_t *r;
    resolver_cb cb;
    void *ctx;
    query_state_t state;
    int pending;               /* c-ares callbacks still to come */
    int status[FAM_COUNT];     /* c-ares status of the A and AAAA queries */
    found_t *found;            /* every address collected, unsorted */
    size_t nfound;
    size_t capfound;
    resolver_addr_t *addrs;    /* the answer's addresses */
    resolver_answer_t answer;
    char message[MESSAGE_MAX];
    char name[];
};

typedef struct sock_watch {
    uv_poll_t poll;
    list_node_t link;          /* r->watches */
    resolver_t *r;
    ares_socket_t fd;
} sock_watch_t;

struct resolver {
    uv_loop_t *loop;
    ares_channel channel;      /* NULL once destroyed */
    uv_timer_t timer;          /* c-ares' next timeout */
    uv_idle_t idle;            /* delivers r->ready; active while non-empty */
    list_node_t running;
    list_node_t ready;
    list_node_t watches;
    size_t npending;           /* RUNNING + READY */
    int open_handles;          /* uv handles not yet closed */
    int closing;
    void (*done)(void *ctx);
    void *done_ctx;
    unsigned nservers;
    char servers_text[SERVERS_TEXT_MAX];
};

/* ---- c-ares library initialisation: once per process ------------------ */

static uv_once_t library_once = UV_ONCE_INIT;
static int library_status; /* written once, inside library_once */

static void library_init(void)
{
    library_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* ---- addresses --------------------------------------------------------- */

int resolver_addr_cmp(const resolver_addr_t *a, const resolver_addr_t *b)
{
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    return memcmp(a->bytes, b->bytes, sizeof a->bytes);
}

static int addr_qsort_cmp(const void *a, const void *b)
{
    return resolver_addr_cmp(a, b);
}

size_t resolver_addrs_sort(resolver_addr_t *addrs, size_t n)
{
    if (n < 2)
        return n;
    qsort(addrs, n, sizeof *addrs, addr_qsort_cmp);
    size_t kept = 1;
    for (size_t i = 1; i < n; i++)
        if (resolver_addr_cmp(&addrs[kept - 1], &addrs[i]) != 0)
            addrs[kept++] = addrs[i];
    return kept;
}

size_t resolver_addrs_diff(const resolver_addr_t *before, size_t n_before,
                           const resolver_addr_t *now, size_t n_now,
                           size_t *joined, size_t *n_joined,
                           size_t *left, size_t *n_left)
{
    size_t i = 0, j = 0;
    *n_joined = *n_left = 0;
    while (i < n_before || j < n_now) {
        int c = i == n_before ? 1 : j == n_now ? -1 : resolver_addr_cmp(&before[i], &now[j]);
        if (c < 0)
            left[(*n_left)++] = i++;
        else if (c > 0)
            joined[(*n_joined)++] = j++;
        else
            i++, j++;
    }
    return *n_joined + *n_left;
}

const char *resolver_addr_format(const resolver_addr_t *addr, char *buf, size_t size)
{
    int af = addr->family == RESOLVER_IPV6 ? AF_INET6 : AF_INET;
    if (size == 0 || !inet_ntop(af, addr->bytes, buf, (socklen_t)size)) {
        if (size > 0)
            buf[0] = '\0';
    }
    return buf;
}

int resolver_addr_parse(const char *text, resolver_addr_t *out)
{
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, text, out->bytes) == 1) {
        out->family = RESOLVER_IPV4;
        return 0;
    }
    if (inet_pton(AF_INET6, text, out->bytes) == 1) {
        out->family = RESOLVER_IPV6;
        return 0;
    }
    memset(out, 0, sizeof *out);
    return -EINVAL;
}

socklen_t resolver_addr_sockaddr(const resolver_addr_t *addr, uint16_t port,
                                 struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    if (addr->family == RESOLVER_IPV6) {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)out;
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons(port);
        memcpy(&sa->sin6_addr, addr->bytes, 16);
        return sizeof *sa;
    }
    struct sockaddr_in *sa = (struct sockaddr_in *)out;
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    memcpy(&sa->sin_addr, addr->bytes, 4);
    return sizeof *sa;
}

/* ---- DNS server texts -------------------------------------------------- */

/* text[0..len) as a port 1..65535. */
static int parse_port(const char *text, uint16_t *port)
{
    size_t len = strlen(text);
    unsigned value = 0;
    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        value = value * 10 + (unsigned)(text[i] - '0');
    }
    if (value == 0 || value > 65535)
        return -1;
    *port = (uint16_t)value;
    return 0;
}

static const char *parse_bracketed(const char *text, resolver_server_t *out, const char **port)
{
    const char *end = strchr(text, ']');
    char host[INET6_ADDRSTRLEN];
    if (!end)
        return "missing ]";
    size_t n = (size_t)(end - text - 1);
    if (n == 0 || n >= sizeof host)
        return "bad IPv6 address";
    memcpy(host, text + 1, n);
    host[n] = '\0';
    if (inet_pton(AF_INET6, host, out->addr.bytes) != 1)
        return "bad IPv6 address";
    out->addr.family = RESOLVER_IPV6;
    if (end[1] != '\0' && end[1] != ':')
        return "unexpected text after ]";
    *port = end[1] == ':' ? end + 2 : NULL;
    return NULL;
}

static const char *parse_plain(const char *text, resolver_server_t *out, const char **port)
{
    const char *colon = strchr(text, ':');
    char host[INET_ADDRSTRLEN];
    if (colon && strchr(colon + 1, ':'))
        return "an IPv6 address needs brackets";
    size_t n = colon ? (size_t)(colon - text) : strlen(text);
    if (n == 0)
        return "bad IPv4 address";
    if (n >= sizeof host)
        return strspn(text, "0123456789.") >= n ? "bad IPv4 address" : "must be an IP address";
    memcpy(host, text, n);
    host[n] = '\0';
    if (strspn(host, "0123456789.") != n)
        return "must be an IP address";
    if (inet_pton(AF_INET, host, out->addr.bytes) != 1)
        return "bad IPv4 address";
    out->addr.family = RESOLVER_IPV4;
    *port = colon ? colon + 1 : NULL;
    return NULL;
}

const char *resolver_server_parse(const char *text, resolver_server_t *out)
{
    const char *port = NULL;
    const char *reason;
    memset(out, 0, sizeof *out);
    if (!text || !*text)
        return "empty";
    reason = text[0] == '[' ? parse_bracketed(text, out, &port) : parse_plain(text, out, &port);
    if (reason)
        return reason;
    out->port = 53;
    if (port && parse_port(port, &out->port) != 0)
        return "port must be 1..65535";
    return NULL;
}

static void format_server(const resolver_server_t *s, char *buf, size_t size)
{
    char host[RESOLVER_ADDR_TEXT_SIZE];
    resolver_addr_format(&s->addr, host, sizeof host);
    snprintf(buf, size, s->addr.family == RESOLVER_IPV6 ? "[%s]:%u" : "%s:%u", host, s->port);
}

/* Appends one server to r->servers_text, ending in ", ..." when full. */
static void describe_server(resolver_t *r, const resolver_server_t *s)
{
    char one[RESOLVER_ADDR_TEXT_SIZE + 8];
    size_t len = strlen(r->servers_text);
    format_server(s, one, sizeof one);
    if (len + strlen(one) + 2 + 5 >= sizeof r->servers_text) {
        if (!strstr(r->servers_text, "..."))
            snprintf(r->servers_text + len, sizeof r->servers_text - len, ", ...");
        return;
    }
    snprintf(r->servers_text + len, sizeof r->servers_text - len, "%s%s", len ? ", " : "", one);
}

/* ---- the loop side: sockets and the timer ------------------------------ */

static void handle_closed(resolver_t *r)
{
    if (--r->open_handles > 0 || !r->closing)
        return;
    void (*done)(void *) = r->done;
    void *ctx = r->done_ctx;
    free(r);
    if (done)
        done(ctx);
}

static void on_handle_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void on_watch_closed(uv_handle_t *h)
{
    sock_watch_t *w = h->data;
    resolver_t *r = w->r;
    free(w);
    handle_closed(r);
}

static void watch_close(sock_watch_t *w)
{
    list_remove(&w->link);
    uv_close((uv_handle_t *)&w->poll, on_watch_closed);
}

static sock_watch_t *watch_find(resolver_t *r, ares_socket_t fd)
{
    for (list_node_t *n = r->watches.next; n != &r->watches; n = n->next) {
        sock_watch_t *w = LIST_OWNER(n, sock_watch_t, link);
        if (w->fd == fd)
            return w;
    }
    return NULL;
}

static void rearm_timer(resolver_t *r);

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_watch_t *w = h->data;
    resolver_t *r = w->r;
    /* On a poll error, let c-ares try both ways: it finds and handles the
     * socket's error itself. */
    ares_socket_t rfd = status < 0 || (events & UV_READABLE) ? w->fd : ARES_SOCKET_BAD;
    ares_socket_t wfd = status < 0 || (events & UV_WRITABLE) ? w->fd : ARES_SOCKET_BAD;
    if (!r->channel)
        return;
    ares_process_fd(r->channel, rfd, wfd);
    rearm_timer(r);
}

static sock_watch_t *watch_open(resolver_t *r, ares_socket_t fd)
{
    sock_watch_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    if (uv_poll_init_socket(r->loop, &w->poll, fd) != 0) {
        free(w);
        return NULL;
    }
    w->poll.data = w;
    w->r = r;
    w->fd = fd;
    list_push_back(&r->watches, &w->link);
    r->open_handles++;
    return w;
}

/* c-ares' socket-state callback: watch fd for what it asks, or stop (it
 * closes the socket right after that call). Out of memory here cannot be
 * reported to c-ares: the query then times out. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    resolver_t *r = data;
    sock_watch_t *w = watch_find(r, fd);
    if (!readable && !writable) {
        if (w)
            watch_close(w);
        return;
    }
    if (!w && !(w = watch_open(r, fd)))
        return;
    uv_poll_start(&w->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
}

static void on_timer(uv_timer_t *t)
{
    resolver_t *r = t->data;
    if (!r->channel)
        return;
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm_timer(r);
}

/* Sets the timer for c-ares' earliest timeout, or stops it when no query
 * is in flight. Rounded up and at least 1 ms: a 0 ms timer re-armed from
 * its own callback starves the loop in libuv 1.44. */
static void rearm_timer(resolver_t *r)
{
    struct timeval tv;
    if (!r->channel || !ares_timeout(r->channel, NULL, &tv)) {
        uv_timer_stop(&r->timer);
        return;
    }
    uint64_t ms = (uint64_t)tv.tv_sec * 1000 + ((uint64_t)tv.tv_usec + 999) / 1000;
    uv_timer_start(&r->timer, on_timer, ms ? ms : 1, 0);
}

/* ---- queries ------------------------------------------------------------ */

static void query_free(resolver_query_t *q)
{
    free(q->found);
    free(q->addrs);
    free(q);
}

static int found_add(resolver_query_t *q, resolver_family_t family, const void *bytes, int ttl)
{
    if (q->nfound == q->capfound) {
        size_t cap = q->capfound ? q->capfound * 2 : 8;
        found_t *grown = realloc(q->found, cap * sizeof *grown);
        if (!grown)
            return -ENOMEM;
        q->found = grown;
        q->capfound = cap;
    }
    found_t *f = &q->found[q->nfound++];
    memset(f, 0, sizeof *f);
    f->addr.family = (uint8_t)family;
    memcpy(f->addr.bytes, bytes, family == RESOLVER_IPV6 ? 16 : 4);
    /* RFC 2181 section 8: a TTL with the top bit set counts as 0; c-ares
     * hands the 32-bit field over as an int, where such a value is < 0. */
    f->ttl = ttl < 0 ? 0 : (uint32_t)ttl;
    return 0;
}

static int found_cmp(const void *a, const void *b)
{
    return resolver_addr_cmp(&((const found_t *)a)->addr, &((const found_t *)b)->addr);
}

/* The addresses of an answer without any: never NULL, so a caller may
 * memcpy(dst, addrs, 0). */
static const resolver_addr_t no_addrs[1];

/* Sorts q->found, merges duplicates (keeping the smaller TTL) and copies
 * at most RESOLVER_MAX_ADDRS into q->addrs. 0 or -ENOMEM. */
static int collect_addrs(resolver_query_t *q)
{
    size_t kept = 0;
    if (q->nfound > 1)
        qsort(q->found, q->nfound, sizeof *q->found, found_cmp);
    for (size_t i = 0; i < q->nfound; i++) {
        if (kept > 0 && resolver_addr_cmp(&q->found[kept - 1].addr, &q->found[i].addr) == 0) {
            if (q->found[i].ttl < q->found[kept - 1].ttl)
                q->found[kept - 1].ttl = q->found[i].ttl;
            continue;
        }
        q->found[kept++] = q->found[i];
    }
    q->answer.truncated = kept > RESOLVER_MAX_ADDRS;
    q->answer.naddrs = kept > RESOLVER_MAX_ADDRS ? RESOLVER_MAX_ADDRS : kept;
    q->answer.ttl = UINT32_MAX;
    q->answer.addrs = no_addrs;
    if (q->answer.naddrs == 0)
        return 0;
    q->addrs = malloc(q->answer.naddrs * sizeof *q->addrs);
    if (!q->addrs)
        return -ENOMEM;
    for (size_t i = 0; i < q->answer.naddrs; i++) {
        q->addrs[i] = q->found[i].addr;
        if (q->found[i].ttl < q->answer.ttl)
            q->answer.ttl = q->found[i].ttl;
    }
    q->answer.addrs = q->addrs;
    return 0;
}

/* Short text for a c-ares status that ended a query. With several servers
 * c-ares says ECONNREFUSED for SERVFAIL/REFUSED answers too (see
 * open_configured_channel). */
static const char *status_text(const resolver_t *r, int status)
{
    switch (status) {
    case ARES_ETIMEOUT: return "timeout";
    case ARES_ECONNREFUSED:
        return r->nservers > 1 ? "connection refused or server failure" : "connection refused";
    case ARES_ESERVFAIL: return "server failure";
    case ARES_EREFUSED: return "query refused";
    case ARES_ENOTIMP: return "query not implemented by the server";
    case ARES_EFORMERR: return "server says format error";
    case ARES_EBADRESP: return "bad response";
    case ARES_EBADNAME: return "bad host name";
    case ARES_ENOMEM: return "out of memory";
    default: return ares_strerror(status);
    }
}

/* The server said so, or did not answer: name the servers. */
static int is_server_error(int status)
{
    switch (status) {
    case ARES_ETIMEOUT: case ARES_ECONNREFUSED: case ARES_ESERVFAIL: case ARES_EREFUSED:
    case ARES_ENOTIMP: case ARES_EFORMERR: case ARES_EBADRESP:
        return 1;
    default:
        return 0;
    }
}

static int is_empty_status(int status)
{
    return status == ARES_ENOTFOUND || status == ARES_ENODATA;
}

static int is_failure(int status)
{
    return status != ARES_SUCCESS && !is_empty_status(status);
}

/* What failed, for the message: "timeout", "AAAA: timeout" (the other
 * family gave addresses), "A: server failure, AAAA: timeout". */
static void describe_what(const resolver_query_t *q, int f4, int f6, char *buf, size_t size)
{
    const resolver_t *r = q->r;
    int s4 = q->status[FAM_V4], s6 = q->status[FAM_V6];
    if (f4 && f6 && s4 != s6)
        snprintf(buf, size, "A: %s, AAAA: %s", status_text(r, s4), status_text(r, s6));
    else if (q->answer.naddrs > 0)
        snprintf(buf, size, "%s: %s", f4 ? "A" : "AAAA", status_text(r, f4 ? s4 : s6));
    else
        snprintf(buf, size, "%s", status_text(r, f4 ? s4 : s6));
}

/* "DNS server 127.0.0.1:5353: timeout"; without the servers when they
 * had no part in it ("bad host name", "out of memory"). */
static void describe_failure(resolver_query_t *q, int f4, int f6)
{
    char what[160];
    const resolver_t *r = q->r;
    describe_what(q, f4, f6, what, sizeof what);
    if ((f4 && is_server_error(q->status[FAM_V4])) || (f6 && is_server_error(q->status[FAM_V6])))
        snprintf(q->message, sizeof q->message, "DNS server%s %s: %s", r->nservers > 1 ? "s" : "",
                 r->servers_text, what);
    else
        snprintf(q->message, sizeof q->message, "%s", what);
}

static void settle_dns(resolver_query_t *q)
{
    resolver_answer_t *a = &q->answer;
    int f4 = is_failure(q->status[FAM_V4]), f6 = is_failure(q->status[FAM_V6]);
    if (a->naddrs > 0) {
        a->status = RESOLVER_OK;
        a->failed_families = (f4 ? RESOLVER_FAILED_IPV4 : 0) | (f6 ? RESOLVER_FAILED_IPV6 : 0);
        if (f4 || f6)
            describe_failure(q, f4, f6);
        return;
    }
    a->ttl = 0;
    if (f4 || f6) {
        a->status = RESOLVER_ERROR;
        describe_failure(q, f4, f6);
        return;
    }
    a->status = RESOLVER_EMPTY;
    snprintf(q->message, sizeof q->message, "%s",
             q->status[FAM_V4] == ARES_ENOTFOUND && q->status[FAM_V6] == ARES_ENOTFOUND
                 ? "no such name" : "no A or AAAA record");
}

static void on_idle(uv_idle_t *h);

/* Builds the answer from what was collected and queues it for delivery. */
static void settle(resolver_query_t *q)
{
    resolver_t *r = q->r;
    resolver_answer_t *a = &q->answer;
    a->message = q->message;
    if (collect_addrs(q) != 0) {
        a->status = RESOLVER_ERROR;
        a->addrs = no_addrs;
        a->naddrs = 0;
        a->ttl = 0;
        snprintf(q->message, sizeof q->message, "out of memory");
    } else if (a->source == RESOLVER_FROM_DNS) {
        settle_dns(q);
    } else if (a->naddrs == 0) { /* found_add ran out of memory */
        a->status = RESOLVER_ERROR;
        a->ttl = 0;
        snprintf(q->message, sizeof q->message, "out of memory");
    } else {
        a->status = RESOLVER_OK;
        a->ttl = RESOLVER_TTL_NONE;
    }
    list_remove(&q->link);
    q->state = Q_READY;
    list_push_back(&r->ready, &q->link);
    uv_idle_start(&r->idle, on_idle);
}

/* One c-ares callback of q is over. */
static void query_step_done(resolver_query_t *q)
{
    if (--q->pending > 0)
        return;
    if (q->state == Q_ORPHAN) {
        list_remove(&q->link);
        query_free(q);
        return;
    }
    settle(q);
}

/* Each A record takes at least 16 bytes of a message, each AAAA 28: room
 * for every record the answer can hold. A CNAME without an address record
 * parses as success with nothing: ENODATA. */
static int add_a_records(resolver_query_t *q, const unsigned char *abuf, int alen)
{
    int n = alen / 16 + 1;
    struct ares_addrttl *rec = calloc((size_t)n, sizeof *rec);
    int status = rec ? ares_parse_a_reply(abuf, alen, NULL, rec, &n) : ARES_ENOMEM;
    for (int i = 0; status == ARES_SUCCESS && i < n; i++)
        if (found_add(q, RESOLVER_IPV4, &rec[i].ipaddr, rec[i].ttl) != 0)
            status = ARES_ENOMEM;
    free(rec);
    return status == ARES_SUCCESS && n == 0 ? ARES_ENODATA : status;
}

static int add_aaaa_records(resolver_query_t *q, const unsigned char *abuf, int alen)
{
    int n = alen / 28 + 1;
    struct ares_addr6ttl *rec = calloc((size_t)n, sizeof *rec);
    int status = rec ? ares_parse_aaaa_reply(abuf, alen, NULL, rec, &n) : ARES_ENOMEM;
    for (int i = 0; status == ARES_SUCCESS && i < n; i++)
        if (found_add(q, RESOLVER_IPV6, &rec[i].ip6addr, rec[i].ttl) != 0)
            status = ARES_ENOMEM;
    free(rec);
    return status == ARES_SUCCESS && n == 0 ? ARES_ENODATA : status;
}

static void on_family_answer(resolver_query_t *q, int fam, int status,
                             const unsigned char *abuf, int alen)
{
    if (q->state == Q_RUNNING) {
        if (status == ARES_SUCCESS)
            status = fam == FAM_V4 ? add_a_records(q, abuf, alen) : add_aaaa_records(q, abuf, alen);
        q->status[fam] = status;
    }
    query_step_done(q);
}

static void on_a(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    on_family_answer(arg, FAM_V4, status, abuf, alen);
}

static void on_aaaa(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    on_family_answer(arg, FAM_V6, status, abuf, alen);
}

static void start_dns(resolver_query_t *q)
{
    q->answer.source = RESOLVER_FROM_DNS;
    q->pending += 2;
    ares_search(q->r->channel, q->name, C_IN, T_A, on_a, q);
    ares_search(q->r->channel, q->name, C_IN, T_AAAA, on_aaaa, q);
}

/* The hosts-file step (the channel's lookups are "f": ares_getaddrinfo
 * reads only the hosts file, and answers before it returns in 1.18; this
 * works either way). c-ares 1.18 reports a name missing from the file as
 * ECONNREFUSED, not ENOTFOUND: anything but addresses means "go to DNS". */
static void on_hosts(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    resolver_query_t *q = arg;
    (void)timeouts;
    int found = 0;
    for (struct ares_addrinfo_node *n = ai && status == ARES_SUCCESS ? ai->nodes : NULL;
         n && q->state == Q_RUNNING; n = n->ai_next) {
        if (n->ai_family == AF_INET)
            found_add(q, RESOLVER_IPV4, &((struct sockaddr_in *)n->ai_addr)->sin_addr, 0);
        else if (n->ai_family == AF_INET6)
            found_add(q, RESOLVER_IPV6, &((struct sockaddr_in6 *)n->ai_addr)->sin6_addr, 0);
        found = 1;
    }
    if (ai)
        ares_freeaddrinfo(ai);
    if (!found && q->state == Q_RUNNING && q->r->channel)
        start_dns(q);
    query_step_done(q);
}

static int name_ok(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len > 0 && name[len - 1] == '.')
        len--;
    return len > 0 && len <= RESOLVER_NAME_MAX;
}

int resolver_resolve(resolver_t *r, const char *name, resolver_cb cb, void *ctx,
                     resolver_query_t **out)
{
    if (r->closing)
        return -ESHUTDOWN;
    if (!name_ok(name) || !cb)
        return -EINVAL;
    size_t len = strlen(name);
    resolver_query_t *q = calloc(1, sizeof *q + len + 1);
    if (!q)
        return -ENOMEM;
    memcpy(q->name, name, len + 1);
    q->r = r;
    q->cb = cb;
    q->ctx = ctx;
    q->state = Q_RUNNING;
    list_push_back(&r->running, &q->link);
    r->npending++;
    if (out)
        *out = q;
    resolver_addr_t literal;
    if (resolver_addr_parse(name, &literal) == 0) {
        q->answer.source = RESOLVER_FROM_LITERAL;
        found_add(q, literal.family, literal.bytes, 0);
        settle(q);
        return 0;
    }
    struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC };
    q->answer.source = RESOLVER_FROM_HOSTS;
    q->pending = 1;
    ares_getaddrinfo(r->channel, name, NULL, &hints, on_hosts, q);
    rearm_timer(r);
    return 0;
}

void resolver_cancel(resolver_query_t *q)
{
    if (!q)
        return;
    resolver_t *r = q->r;
    switch (q->state) {
    case Q_RUNNING:
        q->state = Q_ORPHAN; /* freed when c-ares lets go of it */
        r->npending--;
        break;
    case Q_READY:
        list_remove(&q->link);
        r->npending--;
        query_free(q);
        break;
    case Q_DELIVERING:
    case Q_ORPHAN:
        break;
    }
}

static void on_idle(uv_idle_t *h)
{
    resolver_t *r = h->data;
    list_node_t *n;
    while (!r->closing && (n = list_first(&r->ready)) != NULL) {
        resolver_query_t *q = LIST_OWNER(n, resolver_query_t, link);
        list_remove(&q->link);
        r->npending--;
        q->state = Q_DELIVERING;
        q->cb(&q->answer, q->ctx);
        query_free(q);
    }
    if (!r->closing)
        uv_idle_stop(h);
}

/* ---- creation and shutdown ---------------------------------------------- */

__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int parse_servers(const resolver_options_t *o, resolver_server_t *servers,
                         char *err, size_t errlen)
{
    if (o->nservers > RESOLVER_MAX_SERVERS)
        return fail(err, errlen, -EINVAL, "more than %d DNS servers", RESOLVER_MAX_SERVERS);
    for (size_t i = 0; i < o->nservers; i++) {
        const char *reason = resolver_server_parse(o->servers[i], &servers[i]);
        if (reason)
            return fail(err, errlen, -EINVAL, "DNS server \"%s\": %s",
                             o->servers[i] ? o->servers[i] : "(null)", reason);
    }
    return 0;
}

/* Points the channel at the configured servers, in order. */
static int use_servers(resolver_t *r, const resolver_server_t *servers, size_t n)
{
    struct ares_addr_port_node nodes[RESOLVER_MAX_SERVERS];
    memset(nodes, 0, sizeof nodes);
    for (size_t i = 0; i < n; i++) {
        nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
        nodes[i].family = servers[i].addr.family == RESOLVER_IPV6 ? AF_INET6 : AF_INET;
        memcpy(&nodes[i].addr, servers[i].addr.bytes,
               servers[i].addr.family == RESOLVER_IPV6 ? 16 : 4);
        nodes[i].udp_port = nodes[i].tcp_port = servers[i].port;
    }
    return ares_set_servers_ports(r->channel, nodes);
}

/* Fills r->servers_text and r->nservers from what the channel uses. */
static void describe_servers(resolver_t *r)
{
    struct ares_addr_port_node *list = NULL;
    if (ares_get_servers_ports(r->channel, &list) != ARES_SUCCESS)
        return;
    for (struct ares_addr_port_node *n = list; n; n = n->next) {
        resolver_server_t s;
        memset(&s, 0, sizeof s);
        s.addr.family = n->family == AF_INET6 ? RESOLVER_IPV6 : RESOLVER_IPV4;
        memcpy(s.addr.bytes, &n->addr, n->family == AF_INET6 ? 16 : 4);
        s.port = (uint16_t)(n->udp_port ? n->udp_port : 53);
        describe_server(r, &s);
        r->nservers++;
    }
    ares_free_data(list);
}

static int open_channel(resolver_t *r, const resolver_options_t *o, int flags,
                        char *err, size_t errlen)
{
    char lookups[] = "f";
    struct ares_options ao;
    memset(&ao, 0, sizeof ao);
    ao.flags = flags;
    ao.sock_state_cb = on_sock_state;
    ao.sock_state_cb_data = r;
    ao.timeout = (int)(o->timeout_ms ? o->timeout_ms : RESOLVER_DEFAULT_TIMEOUT_MS);
    ao.tries = (int)(o->tries ? o->tries : RESOLVER_DEFAULT_TRIES);
    ao.lookups = lookups;
    int mask = ARES_OPT_FLAGS | ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
               ARES_OPT_LOOKUPS;
    int rc = ares_init_options(&r->channel, &ao, mask);
    if (rc != ARES_SUCCESS) {
        r->channel = NULL;
        return fail(err, errlen, rc == ARES_ENOMEM ? -ENOMEM : -EIO, "c-ares: %s",
                    ares_strerror(rc));
    }
    return 0;
}

static int count_servers(resolver_t *r)
{
    struct ares_addr_port_node *list = NULL;
    int n = 0;
    if (ares_get_servers_ports(r->channel, &list) != ARES_SUCCESS)
        return -1;
    for (struct ares_addr_port_node *s = list; s; s = s->next)
        n++;
    ares_free_data(list);
    return n;
}

/*
 * c-ares 1.18 takes a SERVFAIL, REFUSED or NOTIMP response as a failure of
 * that server and tries the next one; when none is left it reports
 * ARES_ECONNREFUSED, whatever the servers said. With one server there is
 * no next one, so ARES_FLAG_NOCHECKRESP costs nothing and gets the real
 * status (ESERVFAIL, EREFUSED...) for the message. With several, failing
 * over is worth the vaguer message.
 */
static int open_configured_channel(resolver_t *r, const resolver_options_t *o,
                                   const resolver_server_t *servers, char *err, size_t errlen)
{
    int rc;
    if (o->nservers > 0) {
        rc = open_channel(r, o, o->nservers == 1 ? ARES_FLAG_NOCHECKRESP : 0, err, errlen);
        if (rc == 0 && (rc = use_servers(r, servers, o->nservers)) != ARES_SUCCESS) {
            ares_destroy(r->channel);
            r->channel = NULL;
            rc = fail(err, errlen, rc == ARES_ENOMEM ? -ENOMEM : -EIO, "c-ares: %s",
                      ares_strerror(rc));
        }
        return rc;
    }
    /* /etc/resolv.conf's servers: known only once the channel is open. */
    if ((rc = open_channel(r, o, 0, err, errlen)) != 0 || count_servers(r) != 1)
        return rc;
    ares_destroy(r->channel);
    r->channel = NULL;
    return open_channel(r, o, ARES_FLAG_NOCHECKRESP, err, errlen);
}

int resolver_new(uv_loop_t *loop, const resolver_options_t *options, resolver_t **out,
                 char *err, size_t errlen)
{
    static const resolver_options_t defaults;
    const resolver_options_t *o = options ? options : &defaults;
    resolver_server_t servers[RESOLVER_MAX_SERVERS];
    int rc;
    uv_once(&library_once, library_init);
    if (library_status != ARES_SUCCESS)
        return fail(err, errlen, -EIO, "c-ares: %s", ares_strerror(library_status));
    if ((rc = parse_servers(o, servers, err, errlen)) != 0)
        return rc;
    resolver_t *r = calloc(1, sizeof *r);
    if (!r)
        return fail(err, errlen, -ENOMEM, "out of memory");
    r->loop = loop;
    list_init(&r->running);
    list_init(&r->ready);
    list_init(&r->watches);
    if ((rc = open_configured_channel(r, o, servers, err, errlen)) != 0) {
        free(r);
        return rc;
    }
    describe_servers(r);
    uv_timer_init(loop, &r->timer);
    uv_idle_init(loop, &r->idle);
    r->timer.data = r->idle.data = r;
    r->open_handles = 2;
    *out = r;
    return 0;
}

void resolver_close(resolver_t *r, void (*done)(void *ctx), void *ctx)
{
    if (r->closing)
        return;
    r->closing = 1;
    r->done = done;
    r->done_ctx = ctx;
    list_node_t *n;
    while ((n = list_first(&r->ready)) != NULL) {
        list_remove(n);
        query_free(LIST_OWNER(n, resolver_query_t, link));
    }
    for (n = r->running.next; n != &r->running; n = n->next)
        LIST_OWNER(n, resolver_query_t, link)->state = Q_ORPHAN;
    r->npending = 0;
    /* Ends every query (ARES_EDESTRUCTION: the orphans free themselves) and
     * reports every socket closed (their watches close). */
    ares_channel channel = r->channel;
    r->channel = NULL;
    ares_destroy(channel);
    while ((n = list_first(&r->watches)) != NULL)
        watch_close(LIST_OWNER(n, sock_watch_t, link));
    uv_close((uv_handle_t *)&r->timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->idle, on_handle_closed);
}

const char *resolver_servers_text(const resolver_t *r)
{
    return r->servers_text;
}

size_t resolver_pending(const resolver_t *r)
{
    return r->npending;
}

const char *resolver_status_name(resolver_status_t status)
{
    switch (status) {
    case RESOLVER_OK: return "ok";
    case RESOLVER_EMPTY: return "empty";
    case RESOLVER_ERROR: return "error";
    }
    return "?";
}
