#include "core/json_scan.h"

#include <stdint.h>
#include <stdio.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/utf8.h"

/*
 * The scanner walks a pointer through [base, end): the hot loops keep it in
 * a local (a register), and each step returns the new position, or NULL
 * after recording what went wrong and where in *err.
 */
typedef struct scanner {
    const unsigned char *base;
    const unsigned char *end;
    jscan_error_t *err;
} scanner_t;

static const unsigned char *fail_at(const scanner_t *s, const unsigned char *at, const char *what)
{
    if (s->err) {
        s->err->offset = (size_t)(at - s->base);
        s->err->what = what;
    }
    return NULL;
}

/* Most bytes are not whitespace: one compare rejects them. */
static inline const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && *p <= ' ' && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* p on the byte after a backslash; returns the byte after the escape. */
static const unsigned char *scan_escape(const scanner_t *s, const unsigned char *p)
{
    const unsigned char *end = s->end;
    if (p >= end)
        return fail_at(s, p, "unterminated string");
    switch (*p) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return p + 1;
    case 'u':
        for (int k = 1; k <= 4; k++)
            if (p + k >= end || !is_hex(p[k]))
                return fail_at(s, p + k, "invalid \\u escape");
        return p + 5;
    default:
        return fail_at(s, p, "invalid escape");
    }
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/*
 * Bit 7 of each of the 8 bytes of w that may end a run of plain string
 * bytes: '"', '\\', a control character or a non-ASCII byte. The zero-byte
 * tests can also flag a byte after a real hit, never one before it.
 */
static inline uint64_t string_special(uint64_t w)
{
    uint64_t quote = w ^ (ONES * '"'), backslash = w ^ (ONES * '\\');
    return (((quote - ONES) & ~quote) | ((backslash - ONES) & ~backslash) | (w - ONES * 0x20) | w)
           & HIGHS;
}

/*
 * The first flagged byte of a string_special() mask, on a little-endian
 * machine. Exact: the tests' borrows only run towards later bytes, so the
 * lowest flag is a real one.
 */
static inline size_t first_flagged(uint64_t mask)
{
    return (size_t)__builtin_ctzll(mask) / 8;
}
#endif

/* 1 for the bytes a string holds as they are: printable ASCII but '"', '\\'. */
static const unsigned char plain_in_string[256] = {
    [0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,      /* 0x22 '"' */
    [0x30] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0x40] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0x50] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,      /* 0x5c '\\' */
    [0x60] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0x70] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/*
 * From p inside a string, the first byte that is not plain_in_string (or
 * end). Exact: the caller may act on the byte without looking again.
 */
static inline const unsigned char *next_special(const unsigned char *p, const unsigned char *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t mask = string_special(w);
        if (mask)
            return p + first_flagged(mask);
        p += 8;
    }
#endif
    while (p < end && plain_in_string[*p])
        p++;
    return p;
}

/*
 * p on the opening quote; returns the byte after the closing one. A byte
 * loop would mispredict its exit once per string, which costs more than
 * the bytes of a short string; a 16-byte test plus a count of trailing zeros
 * does not branch on the string's length, and tells the closing quote from
 * other special bytes without reading it again. SSE2 is part of every
 * x86-64; elsewhere 8-byte words do the same.
 */
static inline __attribute__((always_inline)) const unsigned char *
scan_string(const scanner_t *s, const unsigned char *p)
{
    const unsigned char *end = s->end;
    p++;
    for (;;) {
#if defined(__SSE2__)
        if (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
            unsigned quotes = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
            unsigned others = (unsigned)_mm_movemask_epi8(
                _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\')),
                             _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)))); /* signed: >= 0x80 too */
            if (!(quotes | others)) {
                p += 16;
                continue;
            }
            unsigned first = (quotes | others) & (0u - (quotes | others));
            if (first & quotes)
                return p + __builtin_ctz(quotes) + 1;
            p += __builtin_ctz(others);
        } else
#endif
        {
            p = next_special(p, end);
            if (p >= end)
                return fail_at(s, p, "unterminated string");
        }
        unsigned char c = *p;
        if (c == '"')
            return p + 1;
        if (c == '\\') {
            if (!(p = scan_escape(s, p + 1)))
                return NULL;
        } else if (c < 0x20) {
            return fail_at(s, p, "control character in string");
        } else {
            int len = utf8_sequence(p, (size_t)(end - p));
            if (len <= 0)
                return fail_at(s, p, "invalid UTF-8");
            p += len;
        }
    }
}

static inline const unsigned char *scan_digits(const scanner_t *s, const unsigned char *p)
{
    const unsigned char *start = p, *end = s->end;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    return p > start ? p : fail_at(s, p, "invalid number");
}

static const unsigned char *scan_number(const scanner_t *s, const unsigned char *p)
{
    const unsigned char *end = s->end;
    if (*p == '-')
        p++;
    if (p < end && *p == '0')
        p++;
    else if (!(p = scan_digits(s, p)))
        return NULL;
    if (p < end && *p == '.' && !(p = scan_digits(s, p + 1)))
        return NULL;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!(p = scan_digits(s, p)))
            return NULL;
    }
    return p;
}

static const unsigned char *scan_literal(const scanner_t *s, const unsigned char *p,
                                         const char *word, size_t len)
{
    if ((size_t)(s->end - p) < len || memcmp(p, word, len) != 0)
        return fail_at(s, p, "unexpected character");
    return p + len;
}

static inline const unsigned char *scan_scalar(const scanner_t *s, const unsigned char *p)
{
    switch (*p) {
    case '"': return scan_string(s, p);
    case 't': return scan_literal(s, p, "true", 4);
    case 'f': return scan_literal(s, p, "false", 5);
    case 'n': return scan_literal(s, p, "null", 4);
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return scan_number(s, p);
    default:
        return fail_at(s, p, "unexpected character");
    }
}

/* Expects `"key" :` at p (after whitespace); returns the byte after ':'. */
static inline __attribute__((always_inline)) const unsigned char *scan_key_colon(const scanner_t *s, const unsigned char *p)
{
    const unsigned char *end = s->end;
    p = skip_ws(p, end);
    if (p >= end)
        return fail_at(s, p, "unexpected end of input");
    if (*p != '"')
        return fail_at(s, p, "expected a string key");
    if (!(p = scan_string(s, p)))
        return NULL;
    p = skip_ws(p, end);
    if (p >= end)
        return fail_at(s, p, "unexpected end of input");
    if (*p != ':')
        return fail_at(s, p, "expected ':'");
    return p + 1;
}

/*
 * One value starting at p (after whitespace), iteratively: `stack` holds one
 * bit per open container (1 for an object), so hostile nesting costs no C
 * stack. Returns the byte after the value.
 */
static const unsigned char *scan_any(const scanner_t *s, const unsigned char *p)
{
    const unsigned char *end = s->end;
    uint64_t stack[JSCAN_MAX_DEPTH / 64];
    size_t depth = 0;
    int in_object = 0; /* the innermost open container is an object */

    for (;;) {
        p = skip_ws(p, end);
        if (p >= end)
            return fail_at(s, p, "unexpected end of input");
        unsigned char c = *p;
        if (c == '{' || c == '[') {
            if (depth == JSCAN_MAX_DEPTH)
                return fail_at(s, p, "nesting too deep");
            uint64_t bit = (uint64_t)1 << (depth % 64);
            in_object = c == '{';
            if (in_object)
                stack[depth / 64] |= bit;
            else
                stack[depth / 64] &= ~bit;
            depth++;
            p = skip_ws(p + 1, end);
            if (p < end && *p == (in_object ? '}' : ']')) {
                p++;
                depth--;
                in_object = depth && (stack[(depth - 1) / 64] >> ((depth - 1) % 64)) & 1;
            } else {
                if (in_object && !(p = scan_key_colon(s, p)))
                    return NULL;
                continue; /* the first element's value */
            }
        } else if (!(p = scan_scalar(s, p))) {
            return NULL;
        }
        /* A value ended: close containers or move to the next element. */
        while (depth > 0) {
            p = skip_ws(p, end);
            if (p >= end)
                return fail_at(s, p, "unexpected end of input");
            unsigned char d = *p;
            if (d == ',') {
                p++;
                if (in_object && !(p = scan_key_colon(s, p)))
                    return NULL;
                break;
            }
            if (d != (in_object ? '}' : ']'))
                return fail_at(s, p, in_object ? "expected ',' or '}'" : "expected ',' or ']'");
            p++;
            depth--;
            in_object = depth && (stack[(depth - 1) / 64] >> ((depth - 1) % 64)) & 1;
        }
        if (depth == 0)
            return p;
    }
}

static scanner_t scanner_of(const char *text, size_t n, jscan_error_t *err)
{
    /* an empty text may come as NULL, and NULL + 0 is undefined */
    const unsigned char *base = (const unsigned char *)(text ? text : "");
    return (scanner_t){ base, base + n, err };
}

int jscan_value(const char *text, size_t n, size_t *pos, span_t *value, jscan_error_t *err)
{
    scanner_t s = scanner_of(text, n, err);
    const unsigned char *start = skip_ws(s.base + *pos, s.end);
    const unsigned char *stop = scan_any(&s, start);
    if (!stop)
        return -1;
    if (value)
        *value = span_of((const char *)start, (size_t)(stop - start));
    *pos = (size_t)(stop - s.base);
    return 0;
}

int jscan_document(const char *text, size_t n, span_t *value, jscan_error_t *err)
{
    size_t pos = 0;
    if (jscan_value(text, n, &pos, value, err))
        return -1;
    scanner_t s = scanner_of(text, n, err);
    const unsigned char *p = skip_ws(s.base + pos, s.end);
    if (p != s.end) {
        fail_at(&s, p, "unexpected characters after the value");
        return -1;
    }
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
    scanner_t s = scanner_of(it->text, it->n, &it->err);
    if (it->state == 2)
        return 0;
    const unsigned char *p = skip_ws(s.base + it->pos, s.end);
    if (p >= s.end) {
        fail_at(&s, p, "unexpected end of input");
        return -1;
    }
    if (*p == '}') {
        it->pos = (size_t)(p + 1 - s.base);
        it->state = 2;
        return 0;
    }
    if (it->state == 1) {
        if (*p != ',') {
            fail_at(&s, p, "expected ',' or '}'");
            return -1;
        }
        p = skip_ws(p + 1, s.end);
    }
    const unsigned char *key_start = p;
    if (!(p = scan_key_colon(&s, p)))
        return -1;
    const unsigned char *key_end = p - 1; /* on the ':' */
    while (key_end[-1] != '"')
        key_end--; /* back over the whitespace between the key and ':' */
    *key = span_of((const char *)key_start, (size_t)(key_end - key_start));
    size_t pos = (size_t)(p - s.base);
    if (jscan_value(it->text, it->n, &pos, value, &it->err))
        return -1;
    it->pos = pos;
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
