#include "gateway/http_head.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
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

static bool all_nul(const char *from, const char *to)
{
    for (; from < to; from++)
        if (*from != '\0')
            return false;
    return true;
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

/* The layout MHD leaves (see the header): names and values in order,
 * nothing between them but NULs, the ':' NUL and optional whitespace. */
static http_head_verdict_t check_layout(span_t block, const http_head_field_t *f, size_t n, char *why,
                                        size_t whylen)
{
    if (memchr(block.p, '\r', block.n))
        return refuse(HTTP_HEAD_BAD, why, whylen, "a bare CR in the request head");
    const char *pos = block.p, *end = block.p + block.n;
    for (size_t i = 0; i < n; i++) {
        const char *name = f[i].name.p, *value = f[i].value.p;
        if (!inside(block, name, f[i].name.n) || name < pos || !inside(block, value, f[i].value.n) ||
            value <= name + f[i].name.n)
            return refuse(HTTP_HEAD_BAD, why, whylen, "a folded header line (obs-fold) in the request head");
        if (i > 0 && !all_nul(pos, name))
            return refuse(HTTP_HEAD_BAD, why, whylen, "a folded header line (obs-fold) in the request head");
        const char *colon = name + f[i].name.n;
        if (*colon != '\0')
            return refuse(HTTP_HEAD_BAD, why, whylen, "a malformed header line in the request head");
        for (const char *p = colon + 1; p < value; p++)
            if (*p != ' ' && *p != '\t')
                return refuse(HTTP_HEAD_BAD, why, whylen, "a malformed header line in the request head");
        pos = value + f[i].value.n;
    }
    if (n > 0 && !all_nul(pos, end))
        return refuse(HTTP_HEAD_BAD, why, whylen, "a folded header line (obs-fold) in the request head");
    return HTTP_HEAD_OK;
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

http_head_verdict_t http_head_check(span_t block, const http_head_field_t *fields, size_t n, char *why,
                                    size_t whylen)
{
    http_head_verdict_t v = check_layout(block, fields, n, why, whylen);
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
    c->fields[c->n++] = (http_head_field_t){ span_of(key, key_size), span_of(value ? value : "", value_size) };
    return MHD_YES;
}

http_head_verdict_t http_head_inspect(struct MHD_Connection *connection, const char *method, char *why,
                                      size_t whylen)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (!info || !method)
        return refuse(HTTP_HEAD_BAD, why, whylen, "the request head cannot be examined");
    http_head_field_t fields[HTTP_HEAD_MAX_FIELDS];
    collect_t c = { fields, 0, false };
    MHD_get_connection_values_n(connection, MHD_HEADER_KIND, collect_field, &c);
    if (c.overflow)
        return refuse(HTTP_HEAD_BAD, why, whylen, "more than %d header fields", HTTP_HEAD_MAX_FIELDS);
    return http_head_check(span_of(method, info->header_size), fields, c.n, why, whylen);
}
