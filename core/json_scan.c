#include "core/json_scan.h"

#include <stdint.h>
#include <stdio.h>

#include "core/utf8.h"

typedef struct scanner {
    const unsigned char *p;
    size_t n;
    size_t i;
    jscan_error_t *err;
} scanner_t;

static int fail(scanner_t *s, const char *what)
{
    if (s->err) {
        s->err->offset = s->i;
        s->err->what = what;
    }
    return -1;
}

static void skip_ws(scanner_t *s)
{
    while (s->i < s->n) {
        unsigned char c = s->p[s->i];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
            return;
        s->i++;
    }
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int scan_escape(scanner_t *s)
{
    /* s->i is on the byte after the backslash */
    if (s->i >= s->n)
        return fail(s, "unterminated string");
    switch (s->p[s->i]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        s->i++;
        return 0;
    case 'u':
        for (int k = 1; k <= 4; k++) {
            if (s->i + k >= s->n || !is_hex(s->p[s->i + k])) {
                s->i += k;
                return fail(s, "invalid \\u escape");
            }
        }
        s->i += 5;
        return 0;
    default:
        return fail(s, "invalid escape");
    }
}

static int scan_string(scanner_t *s)
{
    s->i++; /* opening quote */
    for (;;) {
        if (s->i >= s->n)
            return fail(s, "unterminated string");
        unsigned char c = s->p[s->i];
        if (c == '"') {
            s->i++;
            return 0;
        }
        if (c == '\\') {
            s->i++;
            if (scan_escape(s))
                return -1;
        } else if (c < 0x20) {
            return fail(s, "control character in string");
        } else if (c < 0x80) {
            s->i++;
        } else {
            int len = utf8_sequence(s->p + s->i, s->n - s->i);
            if (len <= 0)
                return fail(s, "invalid UTF-8");
            s->i += (size_t)len;
        }
    }
}

static int scan_digits(scanner_t *s)
{
    size_t start = s->i;
    while (s->i < s->n && s->p[s->i] >= '0' && s->p[s->i] <= '9')
        s->i++;
    return s->i > start ? 0 : fail(s, "invalid number");
}

static int scan_number(scanner_t *s)
{
    if (s->p[s->i] == '-')
        s->i++;
    if (s->i < s->n && s->p[s->i] == '0')
        s->i++;
    else if (scan_digits(s))
        return -1;
    if (s->i < s->n && s->p[s->i] == '.') {
        s->i++;
        if (scan_digits(s))
            return -1;
    }
    if (s->i < s->n && (s->p[s->i] == 'e' || s->p[s->i] == 'E')) {
        s->i++;
        if (s->i < s->n && (s->p[s->i] == '+' || s->p[s->i] == '-'))
            s->i++;
        if (scan_digits(s))
            return -1;
    }
    return 0;
}

static int scan_literal(scanner_t *s, const char *word, size_t len)
{
    if (s->n - s->i < len || memcmp(s->p + s->i, word, len) != 0)
        return fail(s, "unexpected character");
    s->i += len;
    return 0;
}

static int scan_scalar(scanner_t *s)
{
    switch (s->p[s->i]) {
    case '"': return scan_string(s);
    case 't': return scan_literal(s, "true", 4);
    case 'f': return scan_literal(s, "false", 5);
    case 'n': return scan_literal(s, "null", 4);
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return scan_number(s);
    default:
        return fail(s, "unexpected character");
    }
}

/* Expects `"key" :` at the cursor (after whitespace). */
static int scan_key_colon(scanner_t *s)
{
    skip_ws(s);
    if (s->i >= s->n)
        return fail(s, "unexpected end of input");
    if (s->p[s->i] != '"')
        return fail(s, "expected a string key");
    if (scan_string(s))
        return -1;
    skip_ws(s);
    if (s->i >= s->n)
        return fail(s, "unexpected end of input");
    if (s->p[s->i] != ':')
        return fail(s, "expected ':'");
    s->i++;
    return 0;
}

/*
 * One value, iteratively: `stack` holds one bit per open container (1 for an
 * object), so hostile nesting costs no C stack.
 */
static int scan_any(scanner_t *s)
{
    uint64_t stack[JSCAN_MAX_DEPTH / 64];
    size_t depth = 0;

    for (;;) {
        skip_ws(s);
        if (s->i >= s->n)
            return fail(s, "unexpected end of input");
        unsigned char c = s->p[s->i];
        if (c == '{' || c == '[') {
            if (depth == JSCAN_MAX_DEPTH)
                return fail(s, "nesting too deep");
            uint64_t bit = (uint64_t)1 << (depth % 64);
            if (c == '{')
                stack[depth / 64] |= bit;
            else
                stack[depth / 64] &= ~bit;
            depth++;
            s->i++;
            skip_ws(s);
            if (s->i < s->n && s->p[s->i] == (c == '{' ? '}' : ']')) {
                s->i++;
                depth--;
            } else {
                if (c == '{' && scan_key_colon(s))
                    return -1;
                continue; /* the first element's value */
            }
        } else if (scan_scalar(s)) {
            return -1;
        }
        /* A value ended: close containers or move to the next element. */
        while (depth > 0) {
            int in_object = (stack[(depth - 1) / 64] >> ((depth - 1) % 64)) & 1;
            skip_ws(s);
            if (s->i >= s->n)
                return fail(s, "unexpected end of input");
            unsigned char d = s->p[s->i];
            if (d == ',') {
                s->i++;
                if (in_object && scan_key_colon(s))
                    return -1;
                break;
            }
            if (d != (in_object ? '}' : ']'))
                return fail(s, in_object ? "expected ',' or '}'" : "expected ',' or ']'");
            s->i++;
            depth--;
        }
        if (depth == 0)
            return 0;
    }
}

int jscan_value(const char *text, size_t n, size_t *pos, span_t *value, jscan_error_t *err)
{
    scanner_t s = { (const unsigned char *)text, n, *pos, err };
    skip_ws(&s);
    size_t start = s.i;
    if (scan_any(&s))
        return -1;
    if (value)
        *value = span_of(text + start, s.i - start);
    *pos = s.i;
    return 0;
}

int jscan_document(const char *text, size_t n, span_t *value, jscan_error_t *err)
{
    size_t pos = 0;
    if (jscan_value(text, n, &pos, value, err))
        return -1;
    scanner_t s = { (const unsigned char *)text, n, pos, err };
    skip_ws(&s);
    if (s.i != n)
        return fail(&s, "unexpected characters after the value");
    return 0;
}

jscan_type_t jscan_type_of(span_t v)
{
    if (v.n == 0)
        return JSCAN_INVALID;
    switch (v.p[0]) {
    case 'n': return JSCAN_NULL;
    case 'f': return JSCAN_FALSE;
    case 't': return JSCAN_TRUE;
    case '"': return JSCAN_STRING;
    case '[': return JSCAN_ARRAY;
    case '{': return JSCAN_OBJECT;
    default: return JSCAN_NUMBER;
    }
}

void jscan_members_init(jscan_members_t *it, const char *text, size_t n, size_t open_pos)
{
    it->text = text;
    it->n = n;
    it->pos = open_pos + 1;
    it->state = 0;
    it->err.offset = 0;
    it->err.what = NULL;
}

int jscan_members_next(jscan_members_t *it, span_t *key, span_t *value)
{
    scanner_t s = { (const unsigned char *)it->text, it->n, it->pos, &it->err };
    if (it->state == 2)
        return 0;
    skip_ws(&s);
    if (s.i >= s.n)
        return fail(&s, "unexpected end of input");
    if (s.p[s.i] == '}') {
        it->pos = s.i + 1;
        it->state = 2;
        return 0;
    }
    if (it->state == 1) {
        if (s.p[s.i] != ',')
            return fail(&s, "expected ',' or '}'");
        s.i++;
        skip_ws(&s);
    }
    if (s.i >= s.n)
        return fail(&s, "unexpected end of input");
    if (s.p[s.i] != '"')
        return fail(&s, "expected a string key");
    size_t key_start = s.i;
    if (scan_string(&s))
        return -1;
    *key = span_of(it->text + key_start, s.i - key_start);
    skip_ws(&s);
    if (s.i >= s.n)
        return fail(&s, "unexpected end of input");
    if (s.p[s.i] != ':')
        return fail(&s, "expected ':'");
    s.i++;
    if (jscan_value(it->text, it->n, &s.i, value, &it->err))
        return -1;
    it->pos = s.i;
    it->state = 1;
    return 1;
}

int jscan_member(span_t object, const char *key, span_t *value)
{
    jscan_members_t it;
    span_t k, v;
    int found = 0;
    size_t keylen = strlen(key);
    jscan_members_init(&it, object.p, object.n, 0);
    while (jscan_members_next(&it, &k, &v) == 1) {
        if (jscan_string_eq(k, key, keylen)) {
            *value = v;
            found = 1;
        }
    }
    return found;
}

static unsigned hex_value(unsigned char c)
{
    if (c <= '9')
        return (unsigned)(c - '0');
    return (unsigned)((c | 0x20) - 'a' + 10);
}

static unsigned read_hex4(const unsigned char *p)
{
    return hex_value(p[0]) << 12 | hex_value(p[1]) << 8 | hex_value(p[2]) << 4 | hex_value(p[3]);
}

/* Encodes cp as UTF-8 (lone surrogates as their 3-byte form). */
static size_t put_utf8(uint32_t cp, unsigned char out[4])
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the escape at p[*i] (a backslash) of a valid string token. */
static size_t unescape_one(const unsigned char *p, size_t end, size_t *i, unsigned char out[4])
{
    unsigned char c = p[*i + 1];
    *i += 2;
    switch (c) {
    case 'b': out[0] = '\b'; return 1;
    case 'f': out[0] = '\f'; return 1;
    case 'n': out[0] = '\n'; return 1;
    case 'r': out[0] = '\r'; return 1;
    case 't': out[0] = '\t'; return 1;
    case 'u': break;
    default: out[0] = c; return 1;
    }
    uint32_t cp = read_hex4(p + *i);
    *i += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF && *i + 6 <= end && p[*i] == '\\' && p[*i + 1] == 'u') {
        uint32_t lo = read_hex4(p + *i + 2);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            *i += 6;
        }
    }
    return put_utf8(cp, out);
}

int jscan_string_eq(span_t token, const char *s, size_t n)
{
    if (token.n < 2 || token.p[0] != '"')
        return 0;
    const unsigned char *p = (const unsigned char *)token.p;
    size_t end = token.n - 1, i = 1, j = 0;
    while (i < end) {
        unsigned char tmp[4];
        size_t len;
        if (p[i] == '\\') {
            len = unescape_one(p, end, &i, tmp);
        } else {
            tmp[0] = p[i++];
            len = 1;
        }
        if (j + len > n || memcmp(s + j, tmp, len) != 0)
            return 0;
        j += len;
    }
    return j == n;
}

int jscan_string_decode(span_t token, buf_t *out)
{
    if (token.n < 2 || token.p[0] != '"')
        return 0;
    const unsigned char *p = (const unsigned char *)token.p;
    size_t end = token.n - 1, i = 1;
    if (end == i)
        return 0; /* "" */
    /* Unescaping never makes text longer: reserve once, then write. */
    int rc = buf_reserve(out, end - 1);
    if (rc)
        return rc;
    while (i < end) {
        size_t run = i;
        while (run < end && p[run] != '\\')
            run++;
        memcpy(out->data + out->len, p + i, run - i);
        out->len += run - i;
        i = run;
        if (i < end) {
            unsigned char tmp[4];
            size_t len = unescape_one(p, end, &i, tmp);
            memcpy(out->data + out->len, tmp, len);
            out->len += len;
        }
    }
    return 0;
}

int jscan_truthy(span_t v)
{
    switch (jscan_type_of(v)) {
    case JSCAN_NULL:
    case JSCAN_FALSE:
    case JSCAN_INVALID:
        return 0;
    case JSCAN_STRING:
        return v.n > 2;
    case JSCAN_NUMBER:
        for (size_t i = 0; i < v.n && v.p[i] != 'e' && v.p[i] != 'E'; i++)
            if (v.p[i] >= '1' && v.p[i] <= '9')
                return 1;
        return 0;
    default:
        return 1;
    }
}

void jscan_error_format(const jscan_error_t *err, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s at byte %zu", err->what ? err->what : "invalid JSON", err->offset);
}
