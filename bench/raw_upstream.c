/*
 * raw_upstream: a minimal NestJS TCP-transport service in C, for benchmarks.
 * It answers at once and spends as little CPU as it can, so that a
 * benchmark in front of it measures the gateway, not the service.
 *
 *   raw_upstream [--port N] [--host H] [--quiet]
 *
 * --port 0 (the default) lets the kernel pick the port. Once listening it
 * prints exactly one line on stdout, `READY <port>`, like the Nest test
 * services (tests/nest/service.mjs). SIGTERM or SIGINT exits 0; bad
 * arguments exit 2; a failed start exits 1.
 *
 * Wire format (../shared/PROTOCOL.md): `<len>#<json>`, len in UTF-16 code
 * units. A request `{"pattern":P,"data":D,"id":"..."}` (keys in any order,
 * other keys such as "metadata" ignored) is answered by pattern:
 *
 *   {"cmd":"sum"}           D an array of numbers -> their sum
 *   {"cmd":"echo"}, "echo"  D back, byte for byte
 *   {"cmd":"stream"}        D {"count":N} -> N packets {"id","response":i}
 *                           (i = 1..N) without isDisposed, then
 *                           {"id","isDisposed":true}
 *   anything else           Nest's "no matching message handler" packet
 *
 * A message without "id" is an event and gets no answer. Patterns are
 * compared after dropping whitespace, without Nest's key sorting.
 *
 * Design: one thread, epoll (level-triggered), non-blocking sockets. Each
 * connection owns an input buffer (bytes not yet part of a whole message)
 * and an output buffer (replies not yet written). Input is parsed after each
 * batch of reads, so pipelined requests are answered in one write; a partial
 * write keeps the rest and waits for EPOLLOUT. While more than OUT_HIGH bytes
 * wait to be written the connection stops reading and parsing (backpressure).
 * The scan of a message body resumes where the last read ended, so a large
 * message arriving in many reads is scanned once. A protocol error (bad
 * length, a message that is not an object) closes the connection.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    READ_CHUNK = 256 * 1024,       /* most bytes read per read() call */
    READ_BATCH = 1024 * 1024,      /* most bytes read per readiness event */
    OUT_HIGH = 8 * 1024 * 1024,    /* stop reading above this much unwritten */
    MAX_HEADER = 20,               /* digits of a length, '#' excluded */
};

typedef struct rbuf {
    char *p;
    size_t len, cap;
} rbuf_t;

typedef struct rconn {
    int fd, epfd;
    uint32_t events;               /* what epoll watches now */
    rbuf_t in;                     /* unparsed bytes, from offset 0 */
    rbuf_t out;                    /* unwritten replies, from out_off */
    size_t out_off;
    long want_units;               /* length of the message being scanned, -1: header */
    long seen_units;               /* units of it scanned so far */
    size_t body_start, scan_pos;   /* offsets in `in` */
} rconn_t;

typedef struct span {
    const char *p;
    size_t n;
} span_t;

static volatile sig_atomic_t raw_stop;

static void on_signal(int sig)
{
    (void)sig;
    raw_stop = 1;
}

/* ---- buffers ------------------------------------------------------------ */

static void buf_reserve(rbuf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        fprintf(stderr, "raw_upstream: out of memory\n");
        exit(1);
    }
    b->p = p;
    b->cap = cap;
}

static void buf_add(rbuf_t *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* ---- UTF-16 length ------------------------------------------------------ */

/* Bytes of the UTF-8 sequence that starts with b (a stray continuation byte
 * counts as one, as a decoder would make it one replacement character). */
static size_t utf8_seq_len(unsigned char b)
{
    if (b < 0xC0)
        return 1;
    if (b < 0xE0)
        return 2;
    if (b < 0xF0)
        return 3;
    return 4;
}

/* Advances *pos over whole characters of p[0..n) until *units reaches want
 * or the bytes run out (a character cut by the end waits for more). */
static void utf16_scan(const char *p, size_t n, size_t *pos, long *units, long want)
{
    size_t i = *pos;
    long u = *units;
    while (u < want) {
        if (want - u >= 8 && n - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                u += 8;
                continue;
            }
        }
        if (i >= n)
            break;
        size_t k = utf8_seq_len((unsigned char)p[i]);
        if (k > n - i)
            break;
        i += k;
        u += k == 4 ? 2 : 1;
    }
    *pos = i;
    *units = u;
}

/* UTF-16 length of a whole span. */
static long utf16_len(span_t s)
{
    size_t pos = 0;
    long units = 0;
    utf16_scan(s.p, s.n, &pos, &units, (long)s.n * 2 + 2);
    return units;
}

/* ---- a JSON skimmer: enough to find top-level values -------------------- */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at an opening quote: returns the byte after the closing one, or NULL. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '"')
            return p + 1;
        if (*p == '\\')
            p++;
    }
    return NULL;
}

/* Returns the end of the JSON value at p, or NULL when it is cut short.
 * Containers are matched by counting brackets outside strings; the value is
 * not validated (the gateway in front has done that). */
static const char *skip_value(const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p != '{' && *p != '[') {
        while (p < end && !strchr(",]} \t\r\n", *p))
            p++;
        return p;
    }
    long depth = 0;
    while (p < end) {
        char c = *p;
        if (c == '"') {
            p = skip_string(p, end);
            if (!p)
                return NULL;
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']') {
            if (--depth == 0)
                return p + 1;
        }
        p++;
    }
    return NULL;
}

typedef struct request {
    span_t pattern, data, id;
} request_t;

static int key_is(span_t key, const char *name)
{
    size_t n = strlen(name);
    return key.n == n + 2 && memcmp(key.p + 1, name, n) == 0;
}

/* Splits a message object into the values of "pattern", "data" and "id"
 * (absent: p NULL). Returns 0, or -1 when it is not an object. */
static int request_parse(span_t msg, request_t *r)
{
    const char *p = msg.p, *end = msg.p + msg.n;
    memset(r, 0, sizeof *r);
    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return -1;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return 0;
    while (p < end) {
        if (*p != '"')
            return -1;
        const char *k = p;
        p = skip_string(p, end);
        if (!p)
            return -1;
        span_t key = { k, (size_t)(p - k) };
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return -1;
        p = skip_ws(p + 1, end);
        const char *v = p;
        p = skip_value(p, end);
        if (!p)
            return -1;
        span_t val = { v, (size_t)(p - v) };
        if (key_is(key, "pattern"))
            r->pattern = val;
        else if (key_is(key, "data"))
            r->data = val;
        else if (key_is(key, "id"))
            r->id = val;
        p = skip_ws(p, end);
        if (p < end && *p == '}')
            return 0;
        if (p >= end || *p != ',')
            return -1;
        p = skip_ws(p + 1, end);
    }
    return -1;
}

/* ---- handlers ----------------------------------------------------------- */

typedef enum { H_NONE, H_SUM, H_ECHO, H_STREAM } handler_t;

static handler_t handler_for(span_t pattern)
{
    char c[64];
    size_t n = 0;
    int in_str = 0;
    for (size_t i = 0; i < pattern.n; i++) {
        char ch = pattern.p[i];
        if (!in_str && (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'))
            continue;
        if (n == sizeof c - 1)
            return H_NONE;
        c[n++] = ch;
        if (ch == '"' && (i == 0 || pattern.p[i - 1] != '\\'))
            in_str = !in_str;
    }
    c[n] = 0;
    if (!strcmp(c, "{\"cmd\":\"sum\"}"))
        return H_SUM;
    if (!strcmp(c, "{\"cmd\":\"echo\"}") || !strcmp(c, "\"echo\""))
        return H_ECHO;
    if (!strcmp(c, "{\"cmd\":\"stream\"}"))
        return H_STREAM;
    return H_NONE;
}

/* The sum of a JSON array of numbers, printed as JavaScript would for the
 * usual cases (integers below 2^53 exactly; others with 17 digits). A
 * non-number makes it NaN, which JSON.stringify writes as null. */
static void sum_text(span_t data, char *out, size_t size)
{
    const char *p = data.p, *end = data.p + data.n;
    double sum = 0;
    p = skip_ws(p, end);
    if (p < end && *p == '[') {
        p = skip_ws(p + 1, end);
        while (p < end && *p != ']') {
            char *stop;
            double v = strtod(p, &stop);   /* the buffer holds a ']' after it */
            if (stop == p) {
                sum = NAN;
                stop = (char *)skip_value(p, end);
                if (!stop)
                    break;
            }
            sum += v;
            p = skip_ws(stop, end);
            if (p < end && *p == ',')
                p = skip_ws(p + 1, end);
        }
    }
    if (sum != sum || sum - sum != 0)
        snprintf(out, size, "null");
    else if (sum < 1e18 && sum > -1e18 && sum == (double)(long long)sum)
        snprintf(out, size, "%lld", (long long)sum);
    else
        snprintf(out, size, "%.17g", sum);
}

/* Appends one packet: the header, then the parts in order. */
static void put_packet(rbuf_t *out, const span_t *parts, size_t n)
{
    long units = 0;
    for (size_t i = 0; i < n; i++)
        units += utf16_len(parts[i]);
    char head[32];
    int h = snprintf(head, sizeof head, "%ld#", units);
    buf_add(out, head, (size_t)h);
    for (size_t i = 0; i < n; i++)
        buf_add(out, parts[i].p, parts[i].n);
}

#define LIT(s) ((span_t){ s, sizeof s - 1 })

static void reply_value(rbuf_t *out, span_t id, span_t value)
{
    span_t parts[] = { LIT("{\"id\":"), id, LIT(",\"response\":"), value,
                       LIT(",\"isDisposed\":true}") };
    put_packet(out, parts, 5);
}

static void reply_done(rbuf_t *out, span_t id)
{
    span_t parts[] = { LIT("{\"id\":"), id, LIT(",\"isDisposed\":true}") };
    put_packet(out, parts, 3);
}

static long stream_count(span_t data)
{
    static const char key[] = "\"count\"";
    const char *end = data.p + data.n;
    const char *k = data.n >= sizeof key ? memmem(data.p, data.n, key, sizeof key - 1) : NULL;
    if (!k)
        return 0;
    const char *p = skip_ws(k + sizeof key - 1, end);
    if (p >= end || *p != ':')
        return 0;
    p = skip_ws(p + 1, end);
    long n = strtol(p, NULL, 10);   /* data ends with '}' within the buffer */
    return n > 0 ? n : 0;
}

static void reply_stream(rbuf_t *out, span_t id, long count)
{
    for (long i = 1; i <= count; i++) {
        char num[24];
        int n = snprintf(num, sizeof num, "%ld", i);
        span_t parts[] = { LIT("{\"id\":"), id, LIT(",\"response\":"), { num, (size_t)n },
                           LIT("}") };
        put_packet(out, parts, 5);
    }
    reply_done(out, id);
}

static void answer(rbuf_t *out, const request_t *r)
{
    if (!r->id.p)
        return;   /* an event */
    switch (handler_for(r->pattern)) {
    case H_SUM: {
        char num[40];
        sum_text(r->data, num, sizeof num);
        reply_value(out, r->id, (span_t){ num, strlen(num) });
        break;
    }
    case H_ECHO:
        if (r->data.p)
            reply_value(out, r->id, r->data);
        else
            reply_done(out, r->id);
        break;
    case H_STREAM:
        reply_stream(out, r->id, r->data.p ? stream_count(r->data) : 0);
        break;
    case H_NONE: {
        span_t parts[] = { LIT("{\"id\":"), r->id,
                           LIT(",\"status\":\"error\",\"err\":\"There is no matching message "
                               "handler defined in the remote service.\"}") };
        put_packet(out, parts, 3);
        break;
    }
    }
}

/* ---- connections -------------------------------------------------------- */

static void conn_watch(rconn_t *c, uint32_t events)
{
    if (c->events == events)
        return;
    struct epoll_event ev = { .events = events, .data.ptr = c };
    epoll_ctl(c->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

static void conn_close(rconn_t *c)
{
    epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in.p);
    free(c->out.p);
    free(c);
}

/* Parses the header at `in` offset `at`: 1 done, 0 needs more, -1 bad. */
static int parse_header(rconn_t *c, size_t at)
{
    long n = 0;
    for (size_t i = at; i < c->in.len; i++) {
        char ch = c->in.p[i];
        if (ch == '#' && i > at) {
            c->want_units = n;
            c->seen_units = 0;
            c->body_start = c->scan_pos = i + 1;
            return 1;
        }
        if (ch < '0' || ch > '9' || i - at >= MAX_HEADER)
            return -1;
        n = n * 10 + (ch - '0');
    }
    return 0;
}

/* Answers every whole message in `in` (until the output is over OUT_HIGH)
 * and drops their bytes. Returns 0, or -1 on a protocol error. */
static int conn_parse(rconn_t *c)
{
    size_t done = 0;
    while (c->out.len - c->out_off < OUT_HIGH) {
        if (c->want_units < 0) {
            int h = parse_header(c, done);
            if (h <= 0) {
                if (h < 0)
                    return -1;
                break;
            }
        }
        utf16_scan(c->in.p, c->in.len, &c->scan_pos, &c->seen_units, c->want_units);
        if (c->seen_units > c->want_units)
            return -1;   /* a surrogate pair across the declared end */
        if (c->seen_units < c->want_units)
            break;
        request_t r;
        span_t msg = { c->in.p + c->body_start, c->scan_pos - c->body_start };
        if (request_parse(msg, &r) < 0)
            return -1;
        answer(&c->out, &r);
        done = c->scan_pos;
        c->want_units = -1;
    }
    if (done) {
        memmove(c->in.p, c->in.p + done, c->in.len - done);
        c->in.len -= done;
        if (c->want_units >= 0) {
            c->body_start -= done;
            c->scan_pos -= done;
        }
    }
    return 0;
}

/* Writes what it can. Returns 0, or -1 when the connection failed. */
static int conn_flush(rconn_t *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out.len)
        c->out_off = c->out.len = 0;
    else if (c->out_off > c->out.cap / 2) {
        memmove(c->out.p, c->out.p + c->out_off, c->out.len - c->out_off);
        c->out.len -= c->out_off;
        c->out_off = 0;
    }
    return 0;
}

/* Reads up to READ_BATCH bytes. Returns 1 more may come, 0 the peer closed,
 * -1 an error. */
static int conn_read(rconn_t *c)
{
    size_t total = 0;
    while (total < READ_BATCH) {
        buf_reserve(&c->in, READ_CHUNK);
        size_t room = c->in.cap - c->in.len;
        ssize_t n = read(c->fd, c->in.p + c->in.len, room);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
        }
        if (n == 0)
            return 0;
        c->in.len += (size_t)n;
        total += (size_t)n;
        if ((size_t)n < room)
            break;   /* a short read: the socket is drained for now */
    }
    return 1;
}

/* Parses, writes, and picks what to wait for. Returns -1 to close. */
static int conn_progress(rconn_t *c)
{
    if (conn_parse(c) < 0 || conn_flush(c) < 0)
        return -1;
    /* Parsing stopped at OUT_HIGH may leave whole messages in `in`. */
    while (c->out_off == c->out.len && c->want_units < 0 && c->in.len > 0) {
        size_t before = c->in.len;
        if (conn_parse(c) < 0 || conn_flush(c) < 0)
            return -1;
        if (c->in.len == before)
            break;
    }
    uint32_t ev = c->out.len - c->out_off >= OUT_HIGH ? 0 : EPOLLIN;
    if (c->out_off < c->out.len)
        ev |= EPOLLOUT;
    conn_watch(c, ev);
    return 0;
}

static void conn_event(rconn_t *c, uint32_t events)
{
    int alive = 1;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        alive = conn_read(c);   /* a hang-up or error shows as 0 or -1 */
    if (alive < 0 || conn_progress(c) < 0 || (alive == 0 && c->out_off == c->out.len)) {
        conn_close(c);
        return;
    }
    if (alive == 0)
        conn_watch(c, EPOLLOUT);   /* write what is left, then close */
}

static void accept_all(int lfd, int epfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                perror("raw_upstream: accept");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        rconn_t *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->epfd = epfd;
        c->want_units = -1;
        c->events = EPOLLIN;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
        }
    }
}

/* ---- main --------------------------------------------------------------- */

static int listen_on(const char *host, int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "raw_upstream: --host takes an IPv4 address, not '%s'\n", host);
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0) {
        perror("raw_upstream: listen");
        exit(1);
    }
    return fd;
}

static void usage(void)
{
    fprintf(stderr, "usage: raw_upstream [--port N] [--host H] [--quiet]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 0 || v > 65535)
                usage();
            port = (int)v;
        } else if (!strcmp(argv[i], "--host") && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--quiet") != 0) {
            usage();
        }
    }
    struct sigaction sa = { .sa_handler = on_signal };   /* no SA_RESTART */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = listen_on(host, port);
    struct sockaddr_in bound;
    socklen_t blen = sizeof bound;
    getsockname(lfd, (struct sockaddr *)&bound, &blen);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    printf("READY %d\n", ntohs(bound.sin_port));
    fflush(stdout);

    struct epoll_event evs[256];
    while (!raw_stop) {
        int n = epoll_wait(epfd, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            if (!evs[i].data.ptr)
                accept_all(lfd, epfd);
            else
                conn_event(evs[i].data.ptr, evs[i].events);
        }
    }
    return 0;
}
