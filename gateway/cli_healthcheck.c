/*
 * `patterngate healthcheck [-c FILE] [URL]` (SPEC.md "Command line",
 * "Operating it"): for container health checks in images with no shell and
 * no curl. GETs URL over plain HTTP/1.1 and exits 0 when it answers 200
 * within 2 s; otherwise it prints why to stderr and exits 1. A URL that is
 * not http://HOST[:PORT][/PATH] (https included: the admin API has no TLS)
 * is a usage error, exit 2.
 *
 * Without a URL it asks the gateway that the config describes:
 * http://ADDRESS/healthz, ADDRESS being admin_listen when set, else listen,
 * with a wildcard host (0.0.0.0, ::) replaced by loopback (127.0.0.1, ::1);
 * the config is -c FILE, else $PATTERNGATE_CONFIG, else the embedded
 * default, as when serving. A config that does not load is exit 2, with its
 * problems listed.
 *
 * One blocking-style exchange on a non-blocking socket: every step (connect,
 * write, read) waits in poll() for what is left of the 2 s. Name resolution
 * (getaddrinfo) cannot be bounded that way; an IP literal, as in a derived
 * URL with a wildcard host, resolves without any lookup.
 */
#include "gateway/cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define HC_USAGE "usage: patterngate healthcheck [-c FILE] [URL]\n"
#define HC_TIMEOUT_MS 2000
#define HC_HOST_MAX 256
#define HC_PATH_MAX 2048
#define HC_RESPONSE_MAX 4096

typedef struct hc_url {
    char host[HC_HOST_MAX]; /* without brackets for IPv6 */
    char port[6];
    char authority[HC_HOST_MAX + 8]; /* the Host header: as written in the URL */
    char path[HC_PATH_MAX];          /* origin form, "/" at least */
} hc_url_t;

static int hc_usage(const char *problem)
{
    fprintf(stderr, "patterngate healthcheck: %s\n", problem);
    fputs(HC_USAGE, stderr);
    return 2;
}

static int hc_fail(const char *url, const char *why)
{
    fprintf(stderr, "patterngate healthcheck: %s: %s\n", url, why);
    return 1;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(long long deadline)
{
    long long left = deadline - now_ms();
    return left > 0 ? (int)left : 0;
}

/* Visible ASCII only: no spaces, controls or bytes >= 0x80 (they would
 * break the request line). */
static int url_chars_ok(const char *s)
{
    for (; *s; s++)
        if (*s <= ' ' || *s >= 0x7f)
            return 0;
    return 1;
}

static int parse_port(const char *s, size_t n, char out[6])
{
    if (n == 0 || n > 5)
        return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    snprintf(out, 6, "%lu", v);
    return 0;
}

/* Splits the authority ("host", "host:port", "[v6]", "[v6]:port"). */
static const char *parse_authority(const char *a, size_t n, hc_url_t *u)
{
    const char *port = NULL;
    size_t host_len;
    const char *host = a;
    if (n > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (close == NULL)
            return "unterminated [IPv6] host";
        host = a + 1;
        host_len = (size_t)(close - host);
        size_t after = (size_t)(close + 1 - a);
        if (after < n) {
            if (a[after] != ':')
                return "unexpected text after ]";
            port = a + after + 1;
        }
    } else {
        const char *colon = memchr(a, ':', n);
        host_len = colon != NULL ? (size_t)(colon - a) : n;
        if (colon != NULL)
            port = colon + 1;
    }
    if (host_len == 0)
        return "no host";
    if (host_len >= sizeof u->host || n >= sizeof u->authority)
        return "host too long";
    if (memchr(a, '@', n) != NULL)
        return "user info is not supported";
    memcpy(u->host, host, host_len);
    u->host[host_len] = '\0';
    memcpy(u->authority, a, n);
    u->authority[n] = '\0';
    if (port == NULL) {
        strcpy(u->port, "80");
        return NULL;
    }
    if (parse_port(port, (size_t)(a + n - port), u->port) != 0)
        return "bad port (1..65535)";
    return NULL;
}

/* NULL, or why the URL cannot be used. */
static const char *parse_url(const char *url, hc_url_t *u)
{
    static const char scheme[] = "http://";
    if (!url_chars_ok(url))
        return "URL has spaces, control or non-ASCII characters";
    if (strncmp(url, "https://", 8) == 0)
        return "https is not supported (the admin API is plain HTTP)";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return "URL must start with http://";
    const char *a = url + sizeof scheme - 1;
    size_t n = strcspn(a, "/?#");
    const char *problem = parse_authority(a, n, u);
    if (problem != NULL)
        return problem;
    const char *rest = a + n;
    size_t path_len = strcspn(rest, "#");
    if (path_len + 2 > sizeof u->path)
        return "path too long";
    size_t at = 0;
    if (rest[0] != '/')
        u->path[at++] = '/';
    memcpy(u->path + at, rest, path_len);
    u->path[at + path_len] = '\0';
    return NULL;
}

/* Waits for `events` on fd until the deadline: 0, or -ETIMEDOUT. */
static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        struct pollfd p = { .fd = fd, .events = events };
        int rc = poll(&p, 1, remaining_ms(deadline));
        if (rc > 0)
            return 0;
        if (rc == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* Connects to one address before the deadline: the socket, or -errno. */
static int connect_one(const struct addrinfo *ai, long long deadline)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        rc = errno == EINPROGRESS ? wait_fd(fd, POLLOUT, deadline) : -errno;
        if (rc == 0) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            rc = -err;
        }
    }
    if (rc != 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* Resolves and connects (each address in turn): the socket, or -1 with
 * why[] filled. */
static int hc_connect(const hc_url_t *u, long long deadline, char *why, size_t cap)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG };
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(u->host, u->port, &hints, &res);
    if (gai != 0) {
        snprintf(why, cap, "cannot resolve %s: %s", u->host, gai_strerror(gai));
        return -1;
    }
    int fd = -ETIMEDOUT;
    for (struct addrinfo *ai = res; ai != NULL && remaining_ms(deadline) > 0; ai = ai->ai_next) {
        fd = connect_one(ai, deadline);
        if (fd >= 0)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(why, cap, "cannot connect: %s", fd == -ETIMEDOUT
                 ? "no connection within 2 s" : strerror(-fd));
    return fd;
}

static int send_all(int fd, const char *p, size_t n, long long deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            return -errno;
        } else {
            int rc = wait_fd(fd, POLLOUT, deadline);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* Reads until the peer closes, the buffer is full or the deadline passes,
 * once at least the status line is in. The byte count, or -errno when not
 * even the status line arrived. */
static ssize_t read_response(int fd, char *buf, size_t cap, long long deadline)
{
    size_t len = 0;
    while (len + 1 < cap) {
        if (wait_fd(fd, POLLIN, deadline) != 0)
            break;
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r == 0)
            break;
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            if (len == 0)
                return -errno;
            break;
        }
        len += (size_t)r;
    }
    buf[len] = '\0';
    if (strstr(buf, "\r\n") == NULL && strchr(buf, '\n') == NULL)
        return len == 0 && remaining_ms(deadline) == 0 ? -ETIMEDOUT : -ENODATA;
    return (ssize_t)len;
}

/* The status code of "HTTP/1.x NNN ...", or -1. */
static int status_code(const char *resp)
{
    if (strncmp(resp, "HTTP/1.", 7) != 0 || resp[7] < '0' || resp[7] > '9' || resp[8] != ' ')
        return -1;
    const char *s = resp + 9;
    if (s[0] < '1' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9')
        return -1;
    return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

/* The first line of the body (at most 200 bytes), for the failure message. */
static void body_excerpt(const char *resp, char *out, size_t cap)
{
    const char *body = strstr(resp, "\r\n\r\n");
    out[0] = '\0';
    if (body == NULL)
        return;
    body += 4;
    size_t n = strcspn(body, "\r\n");
    if (n > 200)
        n = 200;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, body, n);
    out[n] = '\0';
}

static int hc_exchange(const char *url, const hc_url_t *u)
{
    long long deadline = now_ms() + HC_TIMEOUT_MS;
    char why[512];
    int fd = hc_connect(u, deadline, why, sizeof why);
    if (fd < 0)
        return hc_fail(url, why);
    char request[HC_PATH_MAX + HC_HOST_MAX + 160];
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: patterngate-healthcheck\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n", u->path, u->authority);
    char resp[HC_RESPONSE_MAX];
    int rc = send_all(fd, request, (size_t)n, deadline);
    ssize_t got = rc == 0 ? read_response(fd, resp, sizeof resp, deadline) : rc;
    close(fd);
    if (got < 0) {
        snprintf(why, sizeof why, "%s", got == -ETIMEDOUT ? "no answer within 2 s"
                 : got == -ENODATA ? "the connection closed before an HTTP status line"
                 : strerror((int)-got));
        return hc_fail(url, why);
    }
    int status = status_code(resp);
    if (status == 200)
        return 0;
    if (status < 0)
        return hc_fail(url, "the answer is not HTTP/1.x");
    char excerpt[256];
    body_excerpt(resp, excerpt, sizeof excerpt);
    snprintf(why, sizeof why, "status %d%s%s", status, excerpt[0] ? ": " : "", excerpt);
    return hc_fail(url, why);
}

static int hc_help(void)
{
    fputs(HC_USAGE
          "\n"
          "GETs URL and exits 0 when it answers 200 within 2 s, 1 otherwise (the reason\n"
          "on stderr), 2 for a bad URL or config. For container health checks.\n"
          "\n"
          "  URL                http://HOST[:PORT][/PATH]; default: /healthz of the\n"
          "                     gateway the config describes: its admin_listen, else\n"
          "                     its listen, a wildcard host (0.0.0.0, ::) as loopback\n"
          "  -c, --config FILE  that config; default: $PATTERNGATE_CONFIG when set and\n"
          "                     non-empty, else the built-in config (127.0.0.1:8080)\n"
          "  -h, --help         print this help and exit\n",
          stdout);
    return 0;
}

/* A wildcard (any-address) host becomes the loopback address of its family. */
static void loopback_for_wildcard(hostport *at)
{
    unsigned char address[16];
    static const unsigned char any[16];
    if (at->kind == HOSTPORT_IPV4 && inet_pton(AF_INET, at->host, address) == 1 &&
        memcmp(address, any, 4) == 0)
        snprintf(at->host, sizeof at->host, "127.0.0.1");
    else if (at->kind == HOSTPORT_IPV6 && inet_pton(AF_INET6, at->host, address) == 1 &&
             memcmp(address, any, 16) == 0)
        snprintf(at->host, sizeof at->host, "::1");
}

/* The URL of the config's /healthz into url[size]: 0, or 2 (the config's
 * problems printed). */
static int derive_url(const char *config_option, char *url, size_t size)
{
    config *cfg = cli_load_config(cli_config_file(config_option));
    if (cfg == NULL)
        return 2;
    hostport at = cfg->has_admin_listen ? cfg->admin_listen : cfg->listen;
    config_free(cfg);
    loopback_for_wildcard(&at);
    char address[HOSTPORT_TEXT_SIZE];
    hostport_format(&at, address, sizeof address);
    snprintf(url, size, "http://%s/healthz", address);
    return 0;
}

int cli_healthcheck(int argc, char **argv)
{
    const char *config_file = NULL, *url = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int with_config = cli_config_option(argc, argv, &i, &config_file);
        char problem[160];
        if (with_config < 0) {
            snprintf(problem, sizeof problem, "option %s needs a FILE", arg);
            return hc_usage(problem);
        }
        if (with_config > 0)
            continue;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return hc_help();
        if (arg[0] == '-') {
            snprintf(problem, sizeof problem, "unknown option '%.100s'", arg);
            return hc_usage(problem);
        }
        if (url != NULL)
            return hc_usage("expected at most one URL");
        url = arg;
    }
    if (url != NULL && config_file != NULL)
        return hc_usage("give a URL or -c FILE (to derive the URL), not both");
    char derived[HOSTPORT_TEXT_SIZE + 32];
    if (url == NULL) {
        int rc = derive_url(config_file, derived, sizeof derived);
        if (rc != 0)
            return rc;
        url = derived;
    }
    hc_url_t u;
    const char *problem = parse_url(url, &u);
    if (problem != NULL) {
        char msg[HC_PATH_MAX + 128];
        snprintf(msg, sizeof msg, "%s: %.*s", problem, 1024, url);
        return hc_usage(msg);
    }
    return hc_exchange(url, &u);
}
