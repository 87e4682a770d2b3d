#include "core/urlcode.h"

#include <stdbool.h>
#include <string.h>

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes the escape at s[i] (a '%'): the byte, or a negative status. */
static int escape_at(const char *s, size_t n, size_t i)
{
    if (n - i < 3)
        return URLCODE_BAD_ESCAPE;
    int hi = hex_digit((unsigned char)s[i + 1]);
    int lo = hex_digit((unsigned char)s[i + 2]);
    if (hi < 0 || lo < 0)
        return URLCODE_BAD_ESCAPE;
    int byte = hi << 4 | lo;
    return byte == 0 ? URLCODE_NUL : byte;
}

urlcode_status urlcode_decode(const char *s, size_t n, urlcode_mode mode, char *out,
                              size_t *out_len)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int byte = escape_at(s, n, i);
            if (byte < 0)
                return (urlcode_status)byte;
            c = (char)byte;
            i += 2;
        } else if (c == '+' && mode == URLCODE_QUERY) {
            c = ' ';
        }
        out[j++] = c;
    }
    *out_len = j;
    return URLCODE_OK;
}

urlcode_status urlcode_decode_buf(const char *s, size_t n, urlcode_mode mode, buf_t *out)
{
    if (n == 0)
        return URLCODE_OK;
    if (buf_reserve(out, n))
        return URLCODE_NOMEM;
    size_t len;
    urlcode_status st = urlcode_decode(s, n, mode, out->data + out->len, &len);
    if (st == URLCODE_OK)
        out->len += len;
    return st;
}

urlcode_status urlcode_check(const char *s, size_t n, size_t *offset)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%')
            continue;
        int byte = escape_at(s, n, i);
        if (byte < 0) {
            if (offset)
                *offset = i;
            return (urlcode_status)byte;
        }
        i += 2;
    }
    return URLCODE_OK;
}

/* True when raw[0..n), decoded in query mode, is exactly name[0..name_len);
 * false when it differs or cannot be decoded. */
static bool name_equals(const char *raw, size_t n, const char *name, size_t name_len)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++, j++) {
        int c = (unsigned char)raw[i];
        if (c == '%') {
            c = escape_at(raw, n, i);
            if (c < 0)
                return false;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (j >= name_len || (unsigned char)name[j] != c)
            return false;
    }
    return j == name_len;
}

void urlcode_pairs_init(urlcode_pairs *it, const char *s, size_t n)
{
    it->s = n ? s : "";
    it->n = n;
    it->pos = 0;
}

int urlcode_pairs_next(urlcode_pairs *it, span_t *name, span_t *value, size_t *offset)
{
    while (it->pos < it->n) {
        const char *param = it->s + it->pos;
        const char *amp = memchr(param, '&', it->n - it->pos);
        size_t len = amp ? (size_t)(amp - param) : it->n - it->pos;
        *offset = it->pos;
        it->pos += len + (amp != NULL);
        if (len == 0)
            continue;
        const char *eq = memchr(param, '=', len);
        size_t name_n = eq ? (size_t)(eq - param) : len;
        *name = span_of(param, name_n);
        *value = eq ? span_of(eq + 1, len - name_n - 1) : span_of(param + len, 0);
        return 1;
    }
    return 0;
}

/* (A loop of its own rather than urlcode_pairs_next(): it runs for every
 * $query.NAME of every request.) */
int urlcode_query_get(const char *query, size_t n, const char *name, size_t name_len,
                      buf_t *value)
{
    size_t start = 0;
    while (start < n) {
        const char *param = query + start;
        const char *amp = memchr(param, '&', n - start);
        size_t len = amp ? (size_t)(amp - param) : n - start;
        start += len + 1;
        if (len == 0)
            continue;
        const char *eq = memchr(param, '=', len);
        size_t name_n = eq ? (size_t)(eq - param) : len;
        if (!name_equals(param, name_n, name, name_len))
            continue;
        if (!eq)
            return 1;
        urlcode_status st = urlcode_decode_buf(eq + 1, len - name_n - 1, URLCODE_QUERY, value);
        return st == URLCODE_OK ? 1 : st;
    }
    return 0;
}

const char *urlcode_status_text(urlcode_status status)
{
    switch (status) {
    case URLCODE_OK: return "ok";
    case URLCODE_BAD_ESCAPE: return "invalid percent-encoding";
    case URLCODE_NUL: return "%00 (NUL) is not allowed";
    case URLCODE_NOMEM: return "out of memory";
    }
    return "invalid percent-encoding";
}
