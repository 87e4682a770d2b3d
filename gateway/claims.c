/*
 * claims: see claims.h.
 */
#include "gateway/claims.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"
#include "core/json_write.h"

/* The member named name[0..n) of a valid object. */
static int member(span_t object, const char *name, size_t n, span_t *value)
{
    char key[CLAIMS_NAME_MAX + 1];
    if (n == 0 || n > CLAIMS_NAME_MAX || jscan_type_of(object) != JSCAN_OBJECT)
        return 0;
    memcpy(key, name, n);
    key[n] = '\0';
    return jscan_member(object, key, value);
}

int claims_path(span_t claims, span_t path, span_t *value)
{
    span_t at = claims;
    size_t start = 0;
    for (size_t i = 0; i <= path.n; i++) {
        if (i < path.n && path.p[i] != '.')
            continue;
        if (!member(at, path.p + start, i - start, &at))
            return 0;
        start = i + 1;
    }
    *value = at;
    return 1;
}

int claims_value_text(span_t value, buf_t *out)
{
    if (jscan_type_of(value) == JSCAN_STRING)
        return jscan_string_decode(value, out);
    return buf_append_span(out, value);
}

/* ---- require_claims ------------------------------------------------------ */

/* A valid JSON number token as a double; 0 when it is absurdly long. */
static int number_of(span_t token, double *out)
{
    char text[400];
    if (token.n >= sizeof text)
        return 0;
    memcpy(text, token.p, token.n);
    text[token.n] = '\0';
    *out = strtod(text, NULL);
    return 1;
}

/* value is of the rule's type and equal to its value. */
static int equals_rule(span_t value, const config_claim_rule *rule)
{
    jscan_type_t type = jscan_type_of(value);
    double d;
    switch (rule->kind) {
    case CONFIG_CLAIM_STRING:
        return type == JSCAN_STRING && jscan_string_eq(value, rule->string, strlen(rule->string));
    case CONFIG_CLAIM_NUMBER:
        return type == JSCAN_NUMBER && number_of(value, &d) && d == rule->number;
    case CONFIG_CLAIM_BOOL:
        return (type == JSCAN_TRUE && rule->boolean) || (type == JSCAN_FALSE && !rule->boolean);
    }
    return 0;
}

static size_t skip_space(span_t s, size_t pos)
{
    while (pos < s.n && (s.p[pos] == ' ' || s.p[pos] == '\t' || s.p[pos] == '\n' || s.p[pos] == '\r'))
        pos++;
    return pos;
}

/* A valid array holds an element equal to the rule's value. */
static int array_holds(span_t array, const config_claim_rule *rule)
{
    size_t pos = skip_space(array, 1);
    while (pos < array.n && array.p[pos] != ']') {
        span_t element;
        if (jscan_value(array.p, array.n, &pos, &element, NULL) != 0)
            return 0;
        if (equals_rule(element, rule))
            return 1;
        pos = skip_space(array, pos);
        if (pos < array.n && array.p[pos] == ',')
            pos++;
    }
    return 0;
}

/* A string token holds `word` as one of its space-separated words. */
static int holds_word(span_t token, const char *word)
{
    buf_t text = BUF_INIT;
    if (jscan_string_decode(token, &text) != 0)
        return -ENOMEM;
    size_t n = strlen(word), start = 0;
    int found = 0;
    for (size_t i = 0; i <= text.len && !found; i++) {
        if (i < text.len && text.data[i] != ' ')
            continue;
        found = i - start == n && n > 0 && memcmp(text.data + start, word, n) == 0;
        start = i + 1;
    }
    buf_free(&text);
    return found;
}

int claims_rule_holds(span_t claims, const config_claim_rule *rule)
{
    span_t value;
    if (!jscan_member(claims, rule->claim, &value))
        return 0;
    jscan_type_t type = jscan_type_of(value);
    if (type == JSCAN_ARRAY)
        return array_holds(value, rule);
    if (equals_rule(value, rule))
        return 1;
    if (type == JSCAN_STRING && rule->kind == CONFIG_CLAIM_STRING)
        return holds_word(value, rule->string);
    return 0;
}

const config_claim_rule *claims_unmet(span_t claims, const config_claim_rule *rules, size_t n, bool *nomem)
{
    *nomem = false;
    for (size_t i = 0; i < n; i++) {
        int rc = claims_rule_holds(claims, &rules[i]);
        if (rc == 1)
            continue;
        *nomem = rc < 0;
        return &rules[i];
    }
    return NULL;
}

/* ---- forward_claims -------------------------------------------------------- */

static int forward_one(buf_t *m, const char *name, span_t value)
{
    buf_t key = BUF_INIT;
    int rc = buf_append_cstr(&key, "jwt.");
    rc = rc ? rc : buf_append_cstr(&key, name);
    if (rc == 0 && m->len > 0 && m->data[m->len - 1] != '{')
        rc = buf_append(m, ",", 1);
    rc = rc ? rc : json_append_string(m, key.data, key.len);
    rc = rc ? rc : buf_append(m, ":", 1);
    if (rc == 0)
        rc = jscan_type_of(value) == JSCAN_STRING ? buf_append_span(m, value)
                                                  : json_append_string(m, value.p, value.n);
    buf_free(&key);
    return rc;
}

int claims_forward(buf_t *m, span_t claims, char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        span_t value;
        if (jscan_member(claims, names[i], &value) && forward_one(m, names[i], value) != 0)
            return -ENOMEM;
    }
    return 0;
}
