#include "core/message.h"

#include <stdio.h>

#include "core/frame.h"
#include "core/json_scan.h"
#include "core/utf8.h"

static size_t units_of(span_t s)
{
    return utf8_utf16_units(s.p, s.n);
}

/* Parts of a packet in order; literal parts are ASCII, so bytes == units. */
static int encode(buf_t *out, const span_t *parts, size_t nparts)
{
    size_t units = 0, bytes = 0, old_len = out->len;
    for (size_t i = 0; i < nparts; i++) {
        units += units_of(parts[i]);
        bytes += parts[i].n;
    }
    int rc = buf_reserve(out, bytes + 24);
    if (rc == 0)
        rc = frame_append_prefix(out, units);
    for (size_t i = 0; rc == 0 && i < nparts; i++)
        rc = buf_append_span(out, parts[i]);
    if (rc)
        out->len = old_len;
    return rc;
}

int msg_encode_request(buf_t *out, span_t pattern, span_t data, span_t id, span_t metadata)
{
    span_t parts[] = {
        SPAN_LIT("{\"pattern\":"), pattern, SPAN_LIT(",\"data\":"), data,
        SPAN_LIT(",\"id\":\""), id, SPAN_LIT("\""),
        metadata.n ? SPAN_LIT(",\"metadata\":") : SPAN_LIT(""), metadata,
        SPAN_LIT("}"),
    };
    return encode(out, parts, sizeof parts / sizeof parts[0]);
}

int msg_encode_event(buf_t *out, span_t pattern, span_t data, span_t metadata)
{
    span_t parts[] = {
        SPAN_LIT("{\"pattern\":"), pattern, SPAN_LIT(",\"data\":"), data,
        metadata.n ? SPAN_LIT(",\"metadata\":") : SPAN_LIT(""), metadata,
        SPAN_LIT("}"),
    };
    return encode(out, parts, sizeof parts / sizeof parts[0]);
}

span_t msg_format_id(uint64_t id, char out[MSG_ID_MAX])
{
    size_t n = u64_decimal(id, out);
    out[n] = '\0';
    return span_of(out, n);
}

int msg_parse_id(span_t id, uint64_t *out)
{
    if (id.n == 0 || id.n > 20 || (id.n > 1 && id.p[0] == '0'))
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < id.n; i++) {
        if (id.p[i] < '0' || id.p[i] > '9')
            return 0;
        uint64_t digit = (uint64_t)(id.p[i] - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return 0;
        v = v * 10 + digit;
    }
    *out = v;
    return 1;
}

/* The members Nest puts in a reply; absent ones have n == 0. */
typedef struct reply_members {
    span_t id, response, err, status, is_disposed;
    size_t unexpected;       /* other members */
    span_t first_unexpected; /* the first one's key */
} reply_members_t;

static void pick_member(reply_members_t *m, span_t key, span_t value)
{
    if (jscan_string_eq(key, "id", 2))
        m->id = value;
    else if (jscan_string_eq(key, "response", 8))
        m->response = value;
    else if (jscan_string_eq(key, "err", 3))
        m->err = value;
    else if (jscan_string_eq(key, "status", 6))
        m->status = value;
    else if (jscan_string_eq(key, "isDisposed", 10))
        m->is_disposed = value;
    else if (m->unexpected++ == 0)
        m->first_unexpected = key;
}

static size_t skip_ws(span_t s, size_t pos)
{
    while (pos < s.n && (s.p[pos] == ' ' || s.p[pos] == '\t' || s.p[pos] == '\n' || s.p[pos] == '\r'))
        pos++;
    return pos;
}

static int read_members(span_t message, reply_members_t *m, char *why, size_t whylen)
{
    size_t pos = skip_ws(message, 0);
    if (pos == message.n || message.p[pos] != '{') {
        snprintf(why, whylen, "reply is not a JSON object");
        return -1;
    }
    jscan_members_t it;
    span_t key, value;
    int rc;
    jscan_members_init(&it, message.p, message.n, pos);
    while ((rc = jscan_members_next(&it, &key, &value)) == 1)
        pick_member(m, key, value);
    if (rc < 0) {
        char where[96];
        jscan_error_format(&it.err, where, sizeof where);
        snprintf(why, whylen, "invalid JSON in reply: %s", where);
        return -1;
    }
    pos = skip_ws(message, it.pos);
    if (pos != message.n) {
        snprintf(why, whylen, "invalid JSON in reply: unexpected characters after the object at byte %zu", pos);
        return -1;
    }
    return 0;
}

static const char undefined_as_null[] = "null";

int msg_read_reply(span_t message, msg_reply_t *out, char *why, size_t whylen)
{
    reply_members_t m = { 0 };
    if (read_members(message, &m, why, whylen))
        return -1;
    if (jscan_type_of(m.id) != JSCAN_STRING) {
        snprintf(why, whylen, "reply has no string \"id\"");
        return -1;
    }
    out->id = span_of(m.id.p + 1, m.id.n - 2);
    out->value = span_of(NULL, 0);
    out->unexpected = m.unexpected;
    if (m.status.n && jscan_string_eq(m.status, "error", 5)) {
        out->kind = MSG_REPLY_NO_HANDLER;
        out->value = m.err.n ? m.err : span_of(undefined_as_null, 4);
    } else if (jscan_truthy(m.err)) {
        out->kind = MSG_REPLY_ERROR;
        out->value = m.err;
    } else if (m.response.n) {
        out->kind = jscan_truthy(m.is_disposed) ? MSG_REPLY_LAST_VALUE : MSG_REPLY_VALUE;
        out->value = m.response;
    } else if (jscan_truthy(m.is_disposed)) {
        out->kind = MSG_REPLY_DONE;
    } else if (!m.err.n && !m.is_disposed.n && m.unexpected) {
        out->kind = MSG_REPLY_FOREIGN;
        out->value = m.first_unexpected;
    } else {
        out->kind = MSG_REPLY_VALUE;
        out->value = span_of(undefined_as_null, 4);
    }
    return 0;
}
