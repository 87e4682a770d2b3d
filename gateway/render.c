#include "gateway/render.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/json_scan.h"
#include "core/json_write.h"
#include "core/utf8.h"
#include "core/urlcode.h"

#define SHOWN_MAX 64 /* bytes of a value quoted in an error message */

/* ---- error messages -------------------------------------------------------- */

/* A message being written into the caller's fixed buffer (truncated). */
typedef struct msg {
    char *p;
    size_t size;
    size_t len;
} msg_t;

static void msg_add(msg_t *m, const char *s, size_t n)
{
    if (m->size == 0)
        return;
    size_t room = m->size - 1 - m->len;
    if (n > room)
        n = room;
    memcpy(m->p + m->len, s, n);
    m->len += n;
    m->p[m->len] = '\0';
}

static void msg_cstr(msg_t *m, const char *s) { msg_add(m, s, strlen(s)); }

/*
 * Appends up to SHOWN_MAX bytes of s[0..n) (cut at a UTF-8 boundary), with
 * control characters escaped; as a JSON string when `quote` (quotes and
 * backslashes escaped too), else as is (JSON text from the body). "..."
 * follows when cut.
 */
static void msg_shown(msg_t *m, const char *s, size_t n, bool quote)
{
    size_t shown = n;
    if (shown > SHOWN_MAX) {
        shown = SHOWN_MAX;
        while (shown > 0 && ((unsigned char)s[shown] & 0xC0) == 0x80)
            shown--;
    }
    if (quote)
        msg_add(m, "\"", 1);
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            msg_cstr(m, esc);
        } else if (quote && (c == '"' || c == '\\')) {
            esc[0] = '\\';
            esc[1] = (char)c;
            msg_add(m, esc, 2);
        } else {
            msg_add(m, s + i, 1);
        }
    }
    if (quote)
        msg_add(m, "\"", 1);
    if (shown < n)
        msg_cstr(m, "...");
}

/* "query parameter \"q\"", "body member \"a.b\"", "body", ... */
static void msg_who(msg_t *m, const template_slot *slot)
{
    switch (slot->source) {
    case TEMPLATE_SOURCE_BODY:
        if (slot->member_count == 0) {
            msg_cstr(m, "body");
            return;
        }
        msg_cstr(m, "body member \"");
        for (size_t i = 0; i < slot->member_count; i++) {
            if (i)
                msg_cstr(m, ".");
            msg_cstr(m, slot->members[i]);
        }
        msg_cstr(m, "\"");
        return;
    case TEMPLATE_SOURCE_PATH: msg_cstr(m, "path parameter \""); break;
    case TEMPLATE_SOURCE_QUERY: msg_cstr(m, "query parameter \""); break;
    case TEMPLATE_SOURCE_HEADER: msg_cstr(m, "header \""); break;
    }
    msg_cstr(m, slot->name);
    msg_cstr(m, "\"");
}

/* ---- the value of a slot --------------------------------------------------- */

typedef struct renderer {
    const render_input_t *req;
    buf_t *scratch;
    buf_t *out;
    msg_t error;
} renderer_t;

typedef struct slot_value {
    bool absent;
    bool from_body; /* raw is JSON text, else a decoded string */
    span_t raw;     /* body: the JSON value; else: the value's bytes */
    span_t text;    /* what a conversion reads */
} slot_value;

/* Starts "<who><sep>" in the error buffer; returns -1 for the caller. */
static msg_t *fail_start(renderer_t *r, const template_slot *slot, const char *sep)
{
    r->error.len = 0;
    if (r->error.size)
        r->error.p[0] = '\0';
    msg_who(&r->error, slot);
    msg_cstr(&r->error, sep);
    return &r->error;
}

/* "<who>: expected <what>, got <value>" */
static int fail_expected(renderer_t *r, const template_slot *slot, const char *what,
                         const slot_value *v)
{
    msg_t *m = fail_start(r, slot, ": expected ");
    msg_cstr(m, what);
    msg_cstr(m, ", got ");
    msg_shown(m, v->raw.p, v->raw.n, !v->from_body);
    return -1;
}

static int fail_nomem(renderer_t *r)
{
    r->error.len = 0;
    msg_cstr(&r->error, "out of memory");
    return -ENOMEM;
}

static bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* The body's JSON value without the whitespace around it; n == 0: empty. */
static span_t trim_body(span_t body)
{
    if (body.n == 0)
        return span_of("", 0); /* an absent body is {NULL, 0}: no arithmetic on NULL */
    size_t start = 0, end = body.n;
    while (start < end && is_json_space(body.p[start]))
        start++;
    while (end > start && is_json_space(body.p[end - 1]))
        end--;
    return span_of(body.p + start, end - start);
}

/* The body member named by slot->members, or absent. */
static void body_value(const renderer_t *r, const template_slot *slot, slot_value *v)
{
    span_t cur = trim_body(r->req->body);
    v->from_body = true;
    v->absent = cur.n == 0;
    for (size_t i = 0; i < slot->member_count && !v->absent; i++) {
        if (jscan_type_of(cur) != JSCAN_OBJECT || !jscan_member(cur, slot->members[i], &cur))
            v->absent = true;
    }
    if (!v->absent && jscan_type_of(cur) == JSCAN_NULL)
        v->absent = true;
    v->raw = v->text = cur;
}

/* A string value from a lookup callback (query or header). */
static int lookup_value(renderer_t *r, const template_slot *slot, render_lookup_fn *fn,
                        void *context, slot_value *v)
{
    render_lookup_result res =
        fn ? fn(context, slot->name, strlen(slot->name), &v->raw) : RENDER_LOOKUP_ABSENT;
    switch (res) {
    case RENDER_LOOKUP_FOUND: return 0;
    case RENDER_LOOKUP_ABSENT: v->absent = true; return 0;
    case RENDER_LOOKUP_NOMEM: return fail_nomem(r);
    case RENDER_LOOKUP_BAD: break;
    }
    fail_start(r, slot, ": invalid percent-encoding");
    return -1;
}

/* What a conversion reads from a body value: a string's content (decoded
 * into scratch), else the JSON text. */
static int body_text(renderer_t *r, const template_slot *slot, slot_value *v)
{
    if (slot->conversion == TEMPLATE_CONVERT_NONE || jscan_type_of(v->raw) != JSCAN_STRING)
        return 0;
    buf_clear(r->scratch);
    if (jscan_string_decode(v->raw, r->scratch))
        return fail_nomem(r);
    v->text = span_of(r->scratch->data, r->scratch->len);
    return 0;
}

/* Fills *v for the slot; 0, or -1 / -ENOMEM with the error written. */
static int slot_get(renderer_t *r, const template_slot *slot, slot_value *v)
{
    const render_input_t *req = r->req;
    memset(v, 0, sizeof *v);
    int rc = 0;
    switch (slot->source) {
    case TEMPLATE_SOURCE_BODY:
        body_value(r, slot, v);
        break;
    case TEMPLATE_SOURCE_PATH:
        if (slot->capture_index < req->capture_count)
            v->raw = req->captures[slot->capture_index];
        else
            v->absent = true;
        break;
    case TEMPLATE_SOURCE_QUERY:
        rc = lookup_value(r, slot, req->query, req->query_context, v);
        break;
    case TEMPLATE_SOURCE_HEADER:
        rc = lookup_value(r, slot, req->header, req->header_context, v);
        break;
    }
    if (rc || v->absent)
        return rc;
    if (v->from_body)
        return body_text(r, slot, v);
    if (!utf8_valid(v->raw.p, v->raw.n)) {
        fail_start(r, slot, " is not valid UTF-8");
        return -1;
    }
    v->text = v->raw;
    return 0;
}

/* ---- conversions ----------------------------------------------------------- */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool all_digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_digit(p[i]))
            return false;
    return n > 0;
}

static int convert_int(renderer_t *r, const template_slot *slot, const slot_value *v)
{
    const char *p = v->text.p;
    size_t n = v->text.n;
    bool negative = n > 0 && p[0] == '-';
    if (negative) {
        p++;
        n--;
    }
    if (!all_digits(p, n))
        return fail_expected(r, slot, "a decimal integer", v);
    while (n > 1 && p[0] == '0') {
        p++;
        n--;
    }
    const char *limit = negative ? "9223372036854775808" : "9223372036854775807";
    if (n > 19 || (n == 19 && memcmp(p, limit, 19) > 0))
        return fail_expected(r, slot, "a decimal integer in the int64 range", v);
    if (negative && !(n == 1 && p[0] == '0') && buf_append(r->out, "-", 1))
        return fail_nomem(r);
    return buf_append(r->out, p, n) ? fail_nomem(r) : 0;
}

/* JSON number syntax: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
typedef struct number_parts {
    const char *digits_int;
    size_t int_len;
    const char *digits_frac;
    size_t frac_len;
    long long exponent; /* clamped to +-1e9 */
} number_parts;

static size_t count_digits(const char *p, size_t n, size_t i)
{
    size_t start = i;
    while (i < n && is_digit(p[i]))
        i++;
    return i - start;
}

static bool number_split(span_t t, number_parts *np)
{
    const char *p = t.p;
    size_t n = t.n, i = 0;
    memset(np, 0, sizeof *np);
    if (n == 0) /* also keeps a NULL pointer of an empty span out of the arithmetic */
        return false;
    if (i < n && p[i] == '-')
        i++;
    np->digits_int = p + i;
    np->int_len = count_digits(p, n, i);
    if (np->int_len == 0 || (np->int_len > 1 && p[i] == '0'))
        return false;
    i += np->int_len;
    if (i < n && p[i] == '.') {
        np->digits_frac = p + i + 1;
        np->frac_len = count_digits(p, n, i + 1);
        if (np->frac_len == 0)
            return false;
        i += 1 + np->frac_len;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        bool negative = i < n && p[i] == '-';
        if (i < n && (p[i] == '-' || p[i] == '+'))
            i++;
        size_t len = count_digits(p, n, i);
        if (len == 0)
            return false;
        for (size_t k = 0; k < len && np->exponent < 1000000000; k++)
            np->exponent = np->exponent * 10 + (p[i + k] - '0');
        if (negative)
            np->exponent = -np->exponent;
        i += len;
    }
    return i == n;
}

/* The digit at position k of the integer digits followed by the fraction's. */
static char number_digit(const number_parts *np, size_t k)
{
    if (k < np->int_len)
        return np->digits_int[k];
    k -= np->int_len;
    return k < np->frac_len ? np->digits_frac[k] : '0';
}

/*
 * True when the number rounds to a finite double: below 2^1024 - 2^970, the
 * midpoint between DBL_MAX and 2^1024 (which rounds up, to even).
 */
static bool number_finite(const number_parts *np)
{
    static const char mid[] =
        "1797693134862315807937289714053034150799341327100378269361737789804449682927647509466490"
        "1797758720709633028641669288791094655554785194040263065748867150582068190890200070838367"
        "6273854845817711531764475730270069855571366959622842914819860834936475292719074168444365"
        "510704342711559699508093042880177904174497792";
    size_t total = np->int_len + np->frac_len, z = 0;
    while (z < total && number_digit(np, z) == '0')
        z++;
    if (z == total)
        return true; /* zero */
    long long magnitude = (long long)np->int_len - 1 - (long long)z + np->exponent;
    if (magnitude != 308)
        return magnitude < 308;
    size_t sig = total - z, mid_len = sizeof mid - 1;
    for (size_t k = 0; k < (sig > mid_len ? sig : mid_len); k++) {
        char a = k < sig ? number_digit(np, z + k) : '0';
        char b = k < mid_len ? mid[k] : '0';
        if (a != b)
            return a < b;
    }
    return false; /* exactly the midpoint */
}

static int convert_number(renderer_t *r, const template_slot *slot, const slot_value *v)
{
    number_parts np;
    if (!number_split(v->text, &np) || !number_finite(&np))
        return fail_expected(r, slot, "a finite number", v);
    return buf_append_span(r->out, v->text) ? fail_nomem(r) : 0;
}

static int convert_bool(renderer_t *r, const template_slot *slot, const slot_value *v)
{
    if (!span_eq_cstr(v->text, "true") && !span_eq_cstr(v->text, "false"))
        return fail_expected(r, slot, "true or false", v);
    return buf_append_span(r->out, v->text) ? fail_nomem(r) : 0;
}

static int convert_json(renderer_t *r, const template_slot *slot, const slot_value *v)
{
    span_t value;
    jscan_error_t err = {0, NULL};
    if (jscan_document(v->text.p, v->text.n, &value, &err)) {
        char where[96];
        jscan_error_format(&err, where, sizeof where);
        msg_t *m = fail_start(r, slot, ": expected a JSON text: ");
        msg_cstr(m, where);
        return -1;
    }
    return buf_append_span(r->out, value) ? fail_nomem(r) : 0;
}

/* ---- rendering ------------------------------------------------------------- */

static int render_slot(renderer_t *r, const template_slot *slot)
{
    slot_value v;
    int rc = slot_get(r, slot, &v);
    if (rc)
        return rc;
    if (v.absent)
        return buf_append(r->out, "null", 4) ? fail_nomem(r) : 0;
    switch (slot->conversion) {
    case TEMPLATE_CONVERT_NONE:
        if (v.from_body)
            rc = buf_append_span(r->out, v.raw);
        else
            rc = json_append_string(r->out, v.raw.p, v.raw.n);
        return rc ? fail_nomem(r) : 0;
    case TEMPLATE_CONVERT_INT: return convert_int(r, slot, &v);
    case TEMPLATE_CONVERT_NUMBER: return convert_number(r, slot, &v);
    case TEMPLATE_CONVERT_BOOL: return convert_bool(r, slot, &v);
    case TEMPLATE_CONVERT_JSON:
        if (v.from_body && jscan_type_of(v.raw) != JSCAN_STRING)
            return buf_append_span(r->out, v.raw) ? fail_nomem(r) : 0;
        return convert_json(r, slot, &v);
    }
    return 0;
}

int render_template(const template *t, const render_input_t *in, buf_t *out, char *error,
                    size_t error_size)
{
    buf_t local = BUF_INIT;
    renderer_t r = {in, in->scratch ? in->scratch : &local, out, {error, error_size, 0}};
    size_t start = out->len;
    int rc = 0;
    if (error_size)
        error[0] = '\0';
    for (size_t i = 0; i < t->count && rc == 0; i++) {
        const template_item *item = &t->items[i];
        if (item->kind == TEMPLATE_ITEM_LITERAL)
            rc = buf_append(out, item->literal, item->literal_length) ? fail_nomem(&r) : 0;
        else
            rc = render_slot(&r, &item->slot);
    }
    buf_free(&local);
    if (rc)
        out->len = start;
    return rc;
}

bool render_whole_body(const template *t, span_t body, span_t *data)
{
    if (t->count != 1 || t->items[0].kind != TEMPLATE_ITEM_SLOT)
        return false;
    const template_slot *slot = &t->items[0].slot;
    if (slot->source != TEMPLATE_SOURCE_BODY || slot->member_count != 0 ||
        (slot->conversion != TEMPLATE_CONVERT_NONE && slot->conversion != TEMPLATE_CONVERT_JSON))
        return false;
    span_t value = trim_body(body);
    /* JSON conversion of a string re-reads its content as JSON: not a pass-through */
    if (slot->conversion == TEMPLATE_CONVERT_JSON && jscan_type_of(value) == JSCAN_STRING)
        return false;
    *data = value.n ? value : span_of("null", 4);
    return true;
}

/* ---- body and query helpers ------------------------------------------------ */

/* The offset of the first invalid UTF-8 sequence in p[0..n), or n. */
static size_t first_bad_utf8(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if ((unsigned char)p[i] < 0x80) {
            i++;
            continue;
        }
        int len = utf8_sequence((const unsigned char *)p + i, n - i);
        if (len <= 0)
            return i;
        i += (size_t)len;
    }
    return n;
}

int render_check_body(span_t body, char *error, size_t error_size)
{
    if (trim_body(body).n == 0)
        return 0;
    span_t value;
    jscan_error_t err = {0, NULL};
    if (jscan_document(body.p, body.n, &value, &err) == 0)
        return 0;
    /* Say "UTF-8" when bad UTF-8 comes before (or is) what stopped the scan. */
    size_t bad = first_bad_utf8(body.p, body.n);
    if (bad <= err.offset && bad < body.n)
        snprintf(error, error_size, "body is not valid UTF-8 JSON: invalid UTF-8 at byte %zu", bad);
    else
        snprintf(error, error_size, "body is not valid JSON: %s at byte %zu",
                 err.what ? err.what : "invalid JSON", err.offset);
    return -1;
}

render_lookup_result render_query_lookup(void *context, const char *name, size_t name_len,
                                         span_t *value)
{
    render_query *q = context;
    buf_clear(&q->value);
    int rc = urlcode_query_get(q->raw, q->length, name, name_len, &q->value);
    if (rc == 1) {
        *value = span_of(q->value.data, q->value.len);
        return RENDER_LOOKUP_FOUND;
    }
    if (rc == 0)
        return RENDER_LOOKUP_ABSENT;
    return rc == URLCODE_NOMEM ? RENDER_LOOKUP_NOMEM : RENDER_LOOKUP_BAD;
}
