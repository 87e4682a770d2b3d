/*
 * envelope: see envelope.h. The value is validated whole first
 * (jscan_document), then walked member by member; header names and values
 * are decoded into the envelope's text buffer and checked there, as the
 * bytes that will go on the wire.
 */
#include "gateway/envelope.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/json_scan.h"

/* Headers only the gateway decides: hop-by-hop (RFC 9110 §7.6.1, and the
 * older list of RFC 2616 §13.5.1), the framing, and the request id. */
static const char *const reserved_headers[] = {
    "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
    "TE", "Trailer", "Trailers", "Transfer-Encoding", "Upgrade", "Content-Length", "X-Request-Id",
};

/* One reading in progress. Header names and values are offsets into
 * e->text until the end (the buffer may move while it grows). */
typedef struct reading {
    envelope_t *e;
    char *why;
    size_t whylen;
    size_t count;                           /* headers read, Content-Type included */
    size_t name_at[ENVELOPE_HEADERS_MAX];
    size_t value_at[ENVELOPE_HEADERS_MAX];
    size_t bytes;                           /* of names and values */
} reading_t;

static int fail(reading_t *rd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(reading_t *rd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rd->why, rd->whylen, fmt, ap);
    va_end(ap);
    return ENVELOPE_BAD;
}

static int no_memory(reading_t *rd)
{
    snprintf(rd->why, rd->whylen, "out of memory reading the envelope");
    return -ENOMEM;
}

/* n bytes of s for a message: printable ASCII kept, any other byte '?',
 * cut after 40 bytes with "...". */
static const char *excerpt(char out[48], const char *s, size_t n)
{
    size_t k = 0;
    for (; k < n && k < 40; k++)
        out[k] = s[k] >= 0x20 && s[k] < 0x7f && s[k] != '"' ? s[k] : '?';
    if (k < n) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = 0;
    return out;
}

/* A member name for a message: the token without its quotes. */
static const char *key_excerpt(char out[48], span_t key)
{
    return excerpt(out, key.p + 1, key.n - 2);
}

static const char *type_name(jscan_type_t t)
{
    switch (t) {
    case JSCAN_NULL: return "null";
    case JSCAN_FALSE:
    case JSCAN_TRUE: return "a boolean";
    case JSCAN_NUMBER: return "a number";
    case JSCAN_STRING: return "a string";
    case JSCAN_ARRAY: return "an array";
    case JSCAN_OBJECT: return "an object";
    default: return "not JSON";
    }
}

/* ---- checks of single things ------------------------------------------------ */

/* RFC 9110 §5.6.2 tchar. */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

/* RFC 9110 §5.5: VCHAR, obs-text, SP and HTAB, no whitespace at either
 * end; and not empty, which the RFC allows but libmicrohttpd does not
 * send. Returns NULL when s[0..n) is a field value, else what is wrong. */
static const char *field_value_problem(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return "has a control character in its value (CR, LF and NUL are never allowed)";
    }
    if (n == 0) /* a field value, but libmicrohttpd refuses to send it */
        return "has an empty value";
    if (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t')
        return "has a value that starts or ends with whitespace";
    return NULL;
}

static int is_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof reserved_headers / sizeof reserved_headers[0]; i++)
        if (strcasecmp(name, reserved_headers[i]) == 0)
            return 1;
    return 0;
}

/* The status: digits only, 200..599. */
static int read_status(span_t v, unsigned *out)
{
    if (jscan_type_of(v) != JSCAN_NUMBER || v.n > 3)
        return -1;
    unsigned s = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        s = s * 10 + (unsigned)(v.p[i] - '0');
    }
    if (s < 200 || s > 599)
        return -1;
    *out = s;
    return 0;
}

/* ---- headers ---------------------------------------------------------------------- */

static const char *text_at(const reading_t *rd, size_t at) { return rd->e->text.data + at; }

/* Decodes a string token into the text buffer, NUL-terminated; its
 * offset in *at and length in *n. */
static int decode(reading_t *rd, span_t token, size_t *at, size_t *n)
{
    buf_t *text = &rd->e->text;
    *at = text->len;
    if (jscan_string_decode(token, text) || buf_append(text, "", 1))
        return no_memory(rd);
    *n = text->len - *at - 1;
    return 0;
}

/* The name just decoded (at `at`, n bytes): a token, not reserved, not
 * given before. */
static int check_name(reading_t *rd, size_t at, size_t n)
{
    char shown[48];
    const char *name = text_at(rd, at);
    if (!is_token(name, n))
        return fail(rd, "the envelope's header name \"%s\" is not an HTTP token", excerpt(shown, name, n));
    if (is_reserved(name))
        return fail(rd, "the envelope may not set the header \"%s\" (the gateway sets it, or it is hop-by-hop)",
                    excerpt(shown, name, n));
    for (size_t i = 0; i < rd->count; i++)
        if (strcasecmp(text_at(rd, rd->name_at[i]), name) == 0)
            return fail(rd, "the envelope's header \"%s\" is given twice", excerpt(shown, name, n));
    return 0;
}

static int read_header(reading_t *rd, span_t key, span_t value)
{
    char shown[48];
    size_t name_at, name_n, value_at, value_n;
    if (rd->count == ENVELOPE_HEADERS_MAX)
        return fail(rd, "the envelope has more than %d headers", ENVELOPE_HEADERS_MAX);
    int rc = decode(rd, key, &name_at, &name_n);
    if (rc == 0)
        rc = check_name(rd, name_at, name_n);
    if (rc)
        return rc;
    if (jscan_type_of(value) != JSCAN_STRING)
        return fail(rd, "the envelope's header \"%s\" is %s, not a string",
                    excerpt(shown, text_at(rd, name_at), name_n), type_name(jscan_type_of(value)));
    if ((rc = decode(rd, value, &value_at, &value_n)) != 0)
        return rc;
    const char *problem = field_value_problem(text_at(rd, value_at), value_n);
    if (problem)
        return fail(rd, "the envelope's header \"%s\" %s", excerpt(shown, text_at(rd, name_at), name_n), problem);
    rd->bytes += name_n + value_n;
    if (rd->bytes > ENVELOPE_HEADER_BYTES_MAX)
        return fail(rd, "the envelope's headers are larger than %d bytes", ENVELOPE_HEADER_BYTES_MAX);
    rd->name_at[rd->count] = name_at;
    rd->value_at[rd->count] = value_at;
    rd->count++;
    return 0;
}

static int read_headers(reading_t *rd, span_t object)
{
    if (jscan_type_of(object) != JSCAN_OBJECT)
        return fail(rd, "the envelope's headers is %s, not an object", type_name(jscan_type_of(object)));
    jscan_members_t it;
    jscan_members_init(&it, object.p, object.n, 0);
    span_t key, value;
    int rc;
    while ((rc = jscan_members_next(&it, &key, &value)) == 1)
        if ((rc = read_header(rd, key, value)) != 0)
            return rc;
    return rc == 0 ? 0 : fail(rd, "the envelope's headers are not valid JSON");
}

/* The headers as pointers, once the text buffer no longer moves. */
static void place_headers(reading_t *rd)
{
    envelope_t *e = rd->e;
    for (size_t i = 0; i < rd->count; i++) {
        const char *name = text_at(rd, rd->name_at[i]), *value = text_at(rd, rd->value_at[i]);
        if (strcasecmp(name, "Content-Type") == 0)
            e->content_type = value;
        else
            e->headers[e->header_count++] = (envelope_header_t){ name, value };
    }
}

/* ---- the envelope --------------------------------------------------------------------- */

enum { SEEN_STATUS = 1, SEEN_HEADERS = 2, SEEN_BODY = 4 };

/* Which member a key is (0: none of the three). */
static unsigned member_of(span_t key)
{
    if (jscan_string_eq(key, "status", 6))
        return SEEN_STATUS;
    if (jscan_string_eq(key, "headers", 7))
        return SEEN_HEADERS;
    if (jscan_string_eq(key, "body", 4))
        return SEEN_BODY;
    return 0;
}

/* Every member of the envelope, the unexpected ones named together (up to
 * three) before anything else is read. */
static int check_members(reading_t *rd, span_t object)
{
    char list[160] = "", shown[48];
    size_t unexpected = 0;
    unsigned seen = 0;
    jscan_members_t it;
    jscan_members_init(&it, object.p, object.n, 0);
    span_t key, value;
    while (jscan_members_next(&it, &key, &value) == 1) {
        unsigned m = member_of(key);
        if (m && (seen & m))
            return fail(rd, "the envelope has the member \"%s\" twice", key_excerpt(shown, key));
        seen |= m;
        if (!m && unexpected++ < 3)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"", unexpected > 1 ? ", " : "",
                     key_excerpt(shown, key));
    }
    if (unexpected)
        return fail(rd, "the envelope has the member%s %s%s (expected only status, headers and body)",
                    unexpected > 1 ? "s" : "", list, unexpected > 3 ? " and others" : "");
    return 0;
}

static int read_member(reading_t *rd, span_t key, span_t value)
{
    char shown[48];
    switch (member_of(key)) {
    case SEEN_STATUS:
        if (read_status(value, &rd->e->status))
            return fail(rd, "the envelope's status %s is not an integer from 200 to 599",
                        excerpt(shown, value.p, value.n));
        return 0;
    case SEEN_HEADERS:
        return read_headers(rd, value);
    default:
        rd->e->has_body = 1;
        rd->e->body = value;
        return 0;
    }
}

static int read_object(reading_t *rd, span_t value)
{
    jscan_type_t type = jscan_type_of(value);
    if (type != JSCAN_OBJECT)
        return fail(rd, "the envelope is %s, not an object {\"status\", \"headers\", \"body\"}", type_name(type));
    int rc = check_members(rd, value);
    if (rc)
        return rc;
    jscan_members_t it;
    jscan_members_init(&it, value.p, value.n, 0);
    span_t key, member;
    while (jscan_members_next(&it, &key, &member) == 1)
        if ((rc = read_member(rd, key, member)) != 0)
            return rc;
    place_headers(rd);
    return 0;
}

int envelope_read(span_t values, size_t count, unsigned default_status, envelope_t *e, char *why,
                  size_t whylen)
{
    reading_t rd = { .e = e, .why = why, .whylen = whylen };
    envelope_clear(e, (size_t)-1);
    e->status = default_status;
    if (count != 1)
        return fail(&rd, "reply \"envelope\" expects one reply value, the service sent %zu", count);
    span_t value;
    jscan_error_t err;
    int rc;
    if (jscan_document(values.p, values.n, &value, &err)) {
        char where[96];
        jscan_error_format(&err, where, sizeof where);
        rc = fail(&rd, "the envelope is not valid JSON: %s", where);
    } else {
        rc = read_object(&rd, value);
    }
    if (rc) {
        envelope_clear(e, (size_t)-1);
        e->status = default_status;
    }
    return rc;
}

void envelope_clear(envelope_t *e, size_t keep)
{
    if (e->text.cap > keep)
        buf_free(&e->text);
    buf_clear(&e->text);
    e->has_body = 0;
    e->body = span_of(NULL, 0);
    e->content_type = NULL;
    e->header_count = 0;
}

void envelope_free(envelope_t *e)
{
    envelope_clear(e, 0);
}
