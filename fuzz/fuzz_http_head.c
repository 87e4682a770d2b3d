/*
 * fuzz_http_head: request heads through the real libmicrohttpd parser, and
 * the gateway's smuggling check (gateway/http_head.h) on what MHD hands the
 * access handler, against an independent reading of the raw bytes written
 * here.
 *
 * Input: the bytes a client sends (at most 8 KiB), on a fresh connection
 * of an in-process MHD daemon (no listening socket, no thread: a
 * socketpair added with MHD_add_connection, driven by MHD_run). Checked,
 * for the first request whenever MHD calls the access handler for it,
 * against a reference reading (below): a head with one of the smuggling
 * shapes of http_head.h (two Content-Length or Transfer-Encoding headers,
 * both, whitespace before ':', obs-fold, a bare CR, a control character in
 * a value, a Transfer-Encoding other than "chunked") is always refused; a
 * head with none of those and with no NUL, bare LF, ':' line or odd
 * request line is always accepted; 501 exactly for an unknown coding when
 * nothing else is wrong; the reason is one printable line.
 * Heads that MHD refuses itself (no handler call) are not judged.
 */
#include "fuzz/fuzz.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/http_head.h"

#define MAX_INPUT 8192

typedef struct judged {
    bool called;
    http_head_verdict_t verdict;
    char why[HTTP_HEAD_WHY_SIZE];
} judged_t;

static judged_t g_judged;

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_size,
                                 void **con_cls)
{
    (void)cls, (void)upload_data;
    if (*con_cls == NULL) {
        *con_cls = &g_judged;
        if (!g_judged.called) {
            g_judged.called = true;
            g_judged.verdict = http_head_inspect(c, method, url, version, g_judged.why, sizeof g_judged.why);
        }
    }
    *upload_size = 0;
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc = MHD_queue_response(c, 204, r);
    MHD_destroy_response(r);
    return rc;
}

static void quiet(void *cls, const char *fmt, va_list ap)
{
    (void)cls, (void)fmt, (void)ap;
}

/* As the gateway's httpd: percent escapes are left for the router. */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *text)
{
    (void)cls, (void)c;
    return strlen(text);
}

static struct MHD_Daemon *daemon_once(void)
{
    static struct MHD_Daemon *d;
    if (!d)
        d = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_access, NULL,
                             MHD_OPTION_EXTERNAL_LOGGER, quiet, NULL,
                             MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
                             MHD_OPTION_CONNECTION_TIMEOUT, 0u,
                             MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL, MHD_OPTION_END);
    return d;
}

/* ---- the reference reading of the raw head ------------------------------------ */

/*
 * Two levels: `must` are the shapes the gateway refuses whatever else the
 * head holds (the smuggling shapes of http_head.h), within what MHD reads
 * as the head; `may` are bytes the gateway refuses where it can see them
 * in what MHD leaves (a NUL, a bare LF, a line that starts with ':', extra
 * spaces in the request line) but which can hide each other there (a bare
 * LF leaves one NUL less than a CRLF, a ':' line one more). A head with
 * neither must be accepted.
 */
typedef struct reading {
    bool complete; /* MHD's head ends within the input */
    bool must;     /* a shape the gateway must refuse */
    bool may;      /* a shape the gateway may refuse */
    bool coding;   /* the one `must` shape is a transfer coding other than
                      chunked (501) */
} reading_t;

static bool tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool token(const char *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!tchar((unsigned char)p[i]))
            return false;
    return true;
}

/* Transfer-Encoding value: 0 chunked, 1 another list of tokens, 2 malformed. */
static int coding_kind(const char *v, size_t n)
{
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 7 && strncasecmp(v, "chunked", 7) == 0)
        return 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && v[i] != ',')
            continue;
        const char *e = v + start;
        size_t len = i - start;
        while (len && (*e == ' ' || *e == '\t'))
            e++, len--;
        while (len && (e[len - 1] == ' ' || e[len - 1] == '\t'))
            len--;
        if (!token(e, len))
            return 2;
        start = i + 1;
    }
    return 1;
}

typedef struct framing {
    int lengths, codings, kind;
    bool other; /* a `must` shape other than the coding */
} framing_t;

static void read_header(const char *line, size_t n, reading_t *r, framing_t *fr)
{
    if (line[0] == ' ' || line[0] == '\t') {
        fr->other = true; /* obs-fold */
        return;
    }
    if (memchr(line, '\0', n)) {
        r->may = true; /* cuts MHD's reading of the line short: read it so */
        n = strnlen(line, n);
    }
    const char *colon = memchr(line, ':', n);
    if (!colon)
        return; /* MHD refuses it */
    size_t name_len = (size_t)(colon - line);
    if (!token(line, name_len))
        fr->other = true;
    const char *v = colon + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    for (const char *p = v; p < end; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
            fr->other = true;
    if (name_len == 14 && strncasecmp(line, "Content-Length", 14) == 0)
        fr->lengths++;
    if (name_len == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
        fr->codings++;
        fr->kind = coding_kind(v, (size_t)(end - v));
    }
}

/* METHOD SP TARGET SP VERSION: one space after the method, the version
 * after the last space, no space in the target's path, no NUL anywhere but
 * as the target's last byte (which the gateway cannot tell from a trailing
 * '?' or '&'). Spaces in the query are let through: MHD turns '+' into
 * spaces before anyone can look. */
static bool request_line_ok(const char *line, size_t n)
{
    const char *sp1 = memchr(line, ' ', n), *sp2 = line + n;
    while (sp2 > line && sp2[-1] != ' ')
        sp2--;
    if (!sp1 || sp2 - 1 <= sp1 + 1 || sp1[1] == ' ')
        return false;
    const char *target = sp1 + 1, *target_end = sp2 - 1;
    const char *query = memchr(target, '?', (size_t)(target_end - target));
    const char *path_end = query ? query : target_end;
    if (memchr(target, ' ', (size_t)(path_end - target)))
        return false;
    for (const char *p = line; p < line + n; p++)
        if (*p == '\0' && p != target_end - 1)
            return false;
    return true;
}

static reading_t read_head(const char *p, size_t n)
{
    reading_t r = { false, false, false, false };
    framing_t fr = { 0, 0, 0, false };
    int lines = 0;
    size_t i = 0;
    while (i < n) {
        const char *lf = memchr(p + i, '\n', n - i);
        if (!lf)
            return r; /* incomplete */
        size_t len = (size_t)(lf - (p + i));
        bool crlf = len && p[i + len - 1] == '\r';
        if (crlf)
            len--;
        const char *line = p + i;
        i = (size_t)(lf - p) + 1;
        if (lines == 0 && (len == 0 || line[0] == '\0'))
            continue; /* MHD skips empty lines (to it, a line that starts
                         with a NUL is empty) before the request line */
        if (!crlf)
            r.may = true; /* a bare LF */
        if (memchr(line, '\r', len))
            fr.other = true; /* a bare CR */
        if (len == 0 || line[0] == '\0' || (lines > 0 && line[0] == ':')) {
            /* MHD's head ends here: at an empty line, at one it takes for
             * empty (a NUL first, or a ':' first, which it zeroes) */
            r.complete = true;
            r.may = r.may || len > 0;
            break;
        }
        if (lines++ > 0)
            read_header(line, len, &r, &fr);
        else if (!request_line_ok(line, len))
            r.may = true;
    }
    if (fr.lengths > 1 || fr.codings > 1 || (fr.lengths && fr.codings) || (fr.codings == 1 && fr.kind == 2))
        fr.other = true;
    r.coding = !fr.other && fr.codings == 1 && fr.kind == 1;
    r.must = fr.other || r.coding;
    return r;
}

/* ---- one input ------------------------------------------------------------------ */

static void drive(struct MHD_Daemon *d, int peer)
{
    char sink[4096];
    for (int round = 0; round < 64; round++) {
        MHD_run(d);
        ssize_t got = recv(peer, sink, sizeof sink, MSG_DONTWAIT);
        if (got == 0)
            break; /* MHD closed the connection */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    struct MHD_Daemon *d = daemon_once();
    FUZZ_CHECK(d != NULL, "the MHD daemon did not start");
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 0;
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    memset(&g_judged, 0, sizeof g_judged);
    if (MHD_add_connection(d, sv[0], (struct sockaddr *)&addr, sizeof addr) != MHD_YES) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    if (size)
        (void)!write(sv[1], data, size);
    shutdown(sv[1], SHUT_WR);
    drive(d, sv[1]);
    close(sv[1]);
    drive(d, -1);
    if (!g_judged.called)
        return 0;
    reading_t r = read_head((const char *)data, size);
    FUZZ_CHECK(r.complete, "MHD judged a head that has no end");
    bool refused = g_judged.verdict != HTTP_HEAD_OK;
    FUZZ_CHECK(!r.must || refused, "accepted a head the reference must refuse");
    FUZZ_CHECK(!refused || r.must || r.may, "refused (%s) a head the reference accepts", g_judged.why);
    if (g_judged.verdict == HTTP_HEAD_CODING)
        FUZZ_CHECK(r.coding, "501 (%s) for a head whose problem is not a transfer coding", g_judged.why);
    if (r.coding && !r.may)
        FUZZ_CHECK(g_judged.verdict == HTTP_HEAD_CODING, "%s, for an unknown transfer coding", g_judged.why);
    if (g_judged.verdict != HTTP_HEAD_OK) {
        FUZZ_CHECK(g_judged.why[0] != '\0', "no reason");
        for (const char *p = g_judged.why; *p; p++)
            FUZZ_CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f, "reason not printable: %s",
                       g_judged.why);
    }
    return 0;
}
