#include "gateway/convert.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/json_scan.h"

static int expect(char *expected, size_t size, const char *what)
{
    snprintf(expected, size, "%s", what);
    return -1;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool all_digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_digit(p[i]))
            return false;
    return n > 0;
}

static int convert_int(span_t text, buf_t *out, char *expected, size_t size)
{
    const char *p = text.p;
    size_t n = text.n;
    bool negative = n > 0 && p[0] == '-';
    if (negative) {
        p++;
        n--;
    }
    if (!all_digits(p, n))
        return expect(expected, size, "a decimal integer");
    while (n > 1 && p[0] == '0') {
        p++;
        n--;
    }
    const char *limit = negative ? "9223372036854775808" : "9223372036854775807";
    if (n > 19 || (n == 19 && memcmp(p, limit, 19) > 0))
        return expect(expected, size, "a decimal integer in the int64 range");
    if (negative && !(n == 1 && p[0] == '0') && buf_append(out, "-", 1))
        return -ENOMEM;
    return buf_append(out, p, n) ? -ENOMEM : 0;
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

static int convert_number(span_t text, buf_t *out, char *expected, size_t size)
{
    number_parts np;
    if (!number_split(text, &np) || !number_finite(&np))
        return expect(expected, size, "a finite number");
    return buf_append_span(out, text) ? -ENOMEM : 0;
}

static int convert_bool(span_t text, buf_t *out, char *expected, size_t size)
{
    if (!span_eq_cstr(text, "true") && !span_eq_cstr(text, "false"))
        return expect(expected, size, "true or false");
    return buf_append_span(out, text) ? -ENOMEM : 0;
}

static int convert_json(span_t text, buf_t *out, char *expected, size_t size)
{
    span_t value;
    jscan_error_t err = {0, NULL};
    if (jscan_document(text.p, text.n, &value, &err)) {
        char where[96];
        jscan_error_format(&err, where, sizeof where);
        snprintf(expected, size, "a JSON text: %s", where);
        return -1;
    }
    return buf_append_span(out, value) ? -ENOMEM : 0;
}

int convert_text(template_conversion conversion, span_t text, buf_t *out, char *expected,
                 size_t size)
{
    switch (conversion) {
    case TEMPLATE_CONVERT_NONE: return 0;
    case TEMPLATE_CONVERT_INT: return convert_int(text, out, expected, size);
    case TEMPLATE_CONVERT_NUMBER: return convert_number(text, out, expected, size);
    case TEMPLATE_CONVERT_BOOL: return convert_bool(text, out, expected, size);
    case TEMPLATE_CONVERT_JSON: return convert_json(text, out, expected, size);
    }
    return 0;
}
