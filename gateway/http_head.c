#include "gateway/http_head.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 §5.6.2 tchar: ALPHA, DIGIT and !#$%&'*+-.^_`|~, as one bit per
 * ASCII character (every request's header names go through it). */
static bool is_tchar(unsigned char c)
{
    static const uint64_t tchar_bits[2] = { 0x03ff6cfa00000000u, 0x57ffffffc7fffffeu };
    return c < 128 && (tchar_bits[c >> 6] >> (c & 63)) & 1;
}

static bool is_token(span_t s)
{
    if (s.n == 0)
        return false;
    for (size_t i = 0; i < s.n; i++)
        if (!is_tchar((unsigned char)s.p[i]))
            return false;
    return true;
}

static http_head_verdict_t refuse(http_head_verdict_t v, char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return v;
}

/* Whether p[0..n) lies inside the block. */
static bool inside(span_t block, const char *p, size_t n)
{
    return p >= block.p && p <= block.p + block.n && n <= (size_t)(block.p + block.n - p);
}

/* [from, to) must be what `crlfs` line ends leave: two NULs each. A bare
 * LF leaves one; a folded line or a NUL leaves more, or other bytes (and
 * a line that starts with ':' leaves one NUL more: MHD zeroes the ':' and
 * then takes the line for the empty one that ends the head). */
static http_head_verdict_t check_line_ends(const char *from, const char *to, size_t crlfs, char *why,
                                           size_t whylen)
{
    size_t n = to >= from ? (size_t)(to - from) : 0;
    for (const char *p = from; p < to; p++)
        if (*p != '\0')
            return refuse(HTTP_HEAD_BAD, why, whylen, "a folded header line (obs-fold) or a NUL byte in the "
                                                      "request head");
    if (to < from || n > 2 * crlfs)
        return refuse(HTTP_HEAD_BAD, why, whylen, "a NUL byte, or a line that starts with ':', in the request head");
    if (n < 2 * crlfs)
        return refuse(HTTP_HEAD_BAD, why, whylen, "a line of the request head ends with a bare LF, not CRLF");
    return HTTP_HEAD_OK;
}

/* Field names are not quoted whole (a name can be long): the first 40
 * bytes, with anything but visible ASCII as '?'. */
static void quote_name(span_t name, char out[48])
{
    size_t n = name.n < 40 ? name.n : 40;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name.p[i];
        out[i] = c > 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
    }
    out[n] = '\0';
}

/* The query's arguments as MHD split them in place ("?" and every "&" and
 * "=" became NULs; '+' became ' '): each starts where the last ended, so a
 * raw NUL, which would have cut MHD's reading short, leaves bytes over.
 * One NUL may end the query (a trailing "&"). Returns the end of what the
 * arguments cover, or NULL when they do not tile the query. */
static const char *cover_query(const char *pos, const char *end, const http_head_field_t *args, size_t nargs)
{
    if (pos == end)
        return pos;
    if (*pos++ != '\0') /* the '?' */
        return NULL;
    for (size_t i = 0; i < nargs; i++) {
        if (i > 0 && (pos >= end || *pos++ != '\0')) /* the '&' */
            return NULL;
        if (args[i].name.p != pos)
            return NULL;
        pos += args[i].name.n;
        if (args[i].value.p) {
            if (pos >= end || *pos != '\0' || args[i].value.p != pos + 1) /* the '=' */
                return NULL;
            pos = args[i].value.p + args[i].value.n;
        }
    }
    if (pos + 1 == end && *pos == '\0')
        pos++;
    return pos;
}

/* METHOD SP TARGET SP VERSION, one space each (MHD skips extra spaces and
 * takes spaces inside the target: both are ways to read a line twice).
 * *line_end gets where the version ends. */
static http_head_verdict_t check_request_line(span_t block, const http_head_line_t *rl, const char **line_end,
                                              char *why, size_t whylen)
{
    size_t method_len = strnlen(block.p, block.n);
    const char *url = rl->url, *version = rl->version;
    if (!url || !version || url != block.p + method_len + 1 || !inside(block, version, strlen(version)) ||
        version <= url || version[-1] != '\0')
        return refuse(HTTP_HEAD_BAD, why, whylen, "a malformed request line (one space between its parts)");
    size_t url_len = strlen(url);
    if (memchr(url, ' ', url_len))
        return refuse(HTTP_HEAD_BAD, why, whylen, "a space in the request target");
    if (cover_query(url + url_len, version - 1, rl->args, rl->nargs) != version - 1)
        return refuse(HTTP_HEAD_BAD, why, whylen, "a NUL byte in the request line");
    *line_end = version + strlen(version);
    return HTTP_HEAD_OK;
}

/* The layout MHD leaves (see the header): names and values in order,
 * nothing between them but NULs, the ':' NUL and optional whitespace. */
static http_head_verdict_t check_layout(span_t block, const http_head_line_t *rl, const http_head_field_t *f,
                                        size_t n, char *why, size_t whylen)
{
    if (memchr(block.p, '\r', block.n))
        return refuse(HTTP_HEAD_BAD, why, whylen, "a bare CR in the request head");
    const char *pos = block.p, *end = block.p + block.n;
    http_head_verdict_t v = check_request_line(block, rl, &pos, why, whylen);
    if (v != HTTP_HEAD_OK)
        return v;
    for (size_t i = 0; i < n; i++) {
        const char *name = f[i].name.p, *value = f[i].value.p;
        if (!inside(block, name, f[i].name.n) || name < pos || !value || !inside(block, value, f[i].value.n) ||
            value <= name + f[i].name.n)
            return refuse(HTTP_HEAD_BAD, why, whylen, "a folded header line (obs-fold) in the request head");
        if ((v = check_line_ends(pos, name, 1, why, whylen)) != HTTP_HEAD_OK)
            return v;
        const char *colon = name + f[i].name.n;
        if (*colon != '\0')
            return refuse(HTTP_HEAD_BAD, why, whylen, "a malformed header line in the request head");
        for (const char *p = colon + 1; p < value; p++)
            if (*p != ' ' && *p != '\t')
                return refuse(HTTP_HEAD_BAD, why, whylen, "a malformed header line in the request head");
        pos = value + f[i].value.n;
    }
    return check_line_ends(pos, end, 2, why, whylen); /* the last line's end and the empty line */
}

static http_head_verdict_t check_fields(const http_head_field_t *f, size_t n, char *why, size_t whylen)
{
    for (size_t i = 0; i < n; i++) {
        char quoted[48];
        if (!is_token(f[i].name)) {
            quote_name(f[i].name, quoted);
            return refuse(HTTP_HEAD_BAD, why, whylen, "header name \"%s\" is not a token (whitespace before ':'?)",
                          quoted);
        }
        for (size_t k = 0; k < f[i].value.n; k++) {
            unsigned char c = (unsigned char)f[i].value.p[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                quote_name(f[i].name, quoted);
                return refuse(HTTP_HEAD_BAD, why, whylen, "header \"%s\" holds a control character", quoted);
            }
        }
    }
    return HTTP_HEAD_OK;
}

static bool name_is(span_t name, const char *wanted)
{
    return name.n == strlen(wanted) && strncasecmp(name.p, wanted, name.n) == 0;
}

static span_t trim_ows(span_t s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.n--;
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
        s.n--;
    return s;
}

/* A Transfer-Encoding value: exactly "chunked" (any case), else a list of
 * tokens (an unsupported coding: 501), else malformed (400). */
static http_head_verdict_t check_coding(span_t value, char *why, size_t whylen)
{
    span_t v = trim_ows(value);
    if (v.n == 7 && strncasecmp(v.p, "chunked", 7) == 0)
        return HTTP_HEAD_OK;
    size_t start = 0;
    for (size_t i = 0; i <= v.n; i++) {
        if (i < v.n && v.p[i] != ',')
            continue;
        if (!is_token(trim_ows(span_of(v.p + start, i - start))))
            return refuse(HTTP_HEAD_BAD, why, whylen, "a malformed Transfer-Encoding header");
        start = i + 1;
    }
    return refuse(HTTP_HEAD_CODING, why, whylen,
                  "Transfer-Encoding other than chunked is not supported");
}

static http_head_verdict_t check_framing(const http_head_field_t *f, size_t n, char *why, size_t whylen)
{
    size_t lengths = 0, codings = 0;
    const http_head_field_t *coding = NULL;
    for (size_t i = 0; i < n; i++) {
        if (name_is(f[i].name, "Content-Length"))
            lengths++;
        else if (name_is(f[i].name, "Transfer-Encoding")) {
            codings++;
            coding = &f[i];
        }
    }
    if (lengths > 1)
        return refuse(HTTP_HEAD_BAD, why, whylen, "more than one Content-Length header");
    if (codings > 1)
        return refuse(HTTP_HEAD_BAD, why, whylen, "more than one Transfer-Encoding header");
    if (lengths && codings)
        return refuse(HTTP_HEAD_BAD, why, whylen, "both Content-Length and Transfer-Encoding");
    return coding ? check_coding(coding->value, why, whylen) : HTTP_HEAD_OK;
}

http_head_verdict_t http_head_check(span_t block, const http_head_line_t *line, const http_head_field_t *fields,
                                    size_t n, char *why, size_t whylen)
{
    http_head_verdict_t v = check_layout(block, line, fields, n, why, whylen);
    if (v == HTTP_HEAD_OK)
        v = check_fields(fields, n, why, whylen);
    if (v == HTTP_HEAD_OK)
        v = check_framing(fields, n, why, whylen);
    return v;
}

typedef struct collect {
    http_head_field_t *fields;
    size_t n;
    bool overflow;
} collect_t;

static enum MHD_Result collect_field(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                     const char *value, size_t value_size)
{
    (void)kind;
    collect_t *c = cls;
    if (c->n == HTTP_HEAD_MAX_FIELDS) {
        c->overflow = true;
        return MHD_NO;
    }
    /* a query argument without '=' has no value: a NULL span */
    c->fields[c->n++] = (http_head_field_t){ span_of(key, key_size), span_of(value, value ? value_size : 0) };
    return MHD_YES;
}

http_head_verdict_t http_head_inspect(struct MHD_Connection *connection, const char *method, const char *url,
                                      const char *version, char *why, size_t whylen)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (!info || !method)
        return refuse(HTTP_HEAD_BAD, why, whylen, "the request head cannot be examined");
    http_head_field_t fields[HTTP_HEAD_MAX_FIELDS], args[HTTP_HEAD_MAX_FIELDS];
    collect_t c = { fields, 0, false }, a = { args, 0, false };
    MHD_get_connection_values_n(connection, MHD_HEADER_KIND, collect_field, &c);
    MHD_get_connection_values_n(connection, MHD_GET_ARGUMENT_KIND, collect_field, &a);
    if (c.overflow || a.overflow)
        return refuse(HTTP_HEAD_BAD, why, whylen, "more than %d header fields or query arguments",
                      HTTP_HEAD_MAX_FIELDS);
    http_head_line_t line = { url, version, args, a.n };
    return http_head_check(span_of(method, info->header_size), &line, fields, c.n, why, whylen);
}
