#include "config/cfg_locate.h"

#include "core/buf.h"
#include "core/json_scan.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* One step of a path: a member name (decoded) or an array index. */
typedef struct step {
    bool is_index;
    size_t index;
    buf_t key;
} step;

static bool is_plain_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

/* The end of the JSON string token starting at p[0] == '"', or NULL when
 * it is not closed (a path cut short). */
static const char *string_token_end(const char *p)
{
    for (p++; *p != '\0'; p++) {
        if (*p == '\\' && p[1] != '\0')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* Reads the step at *p into *out and advances *p; false at the end of the
 * path or at something it cannot read (a path cut short). */
static bool next_step(const char **p, step *out)
{
    const char *s = *p;
    out->key.len = 0;
    if (s[0] == '[' && s[1] == '"') {
        const char *end = string_token_end(s + 1);
        if (end == NULL || *end != ']')
            return false;
        out->is_index = false;
        if (jscan_string_decode(span_of(s + 1, (size_t)(end - s - 1)), &out->key) != 0)
            return false;
        *p = end + 1;
        return true;
    }
    if (s[0] == '[') {
        char *end;
        unsigned long long index = strtoull(s + 1, &end, 10);
        if (end == s + 1 || *end != ']')
            return false;
        out->is_index = true;
        out->index = (size_t)index;
        *p = end + 1;
        return true;
    }
    if (s[0] == '.')
        s++;
    size_t n = 0;
    while (is_plain_key_char(s[n]))
        n++;
    if (n == 0 || buf_append(&out->key, s, n) != 0)
        return false;
    out->is_index = false;
    *p = s + n;
    return true;
}

static size_t skip_ws(const char *text, size_t length, size_t pos)
{
    while (pos < length && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' ||
                            text[pos] == '\r'))
        pos++;
    return pos;
}

/* Member `key` of the object at text[*pos]: true with *key_at and *pos set
 * to its key and its value. */
static bool find_member(const char *text, size_t length, const buf_t *key, size_t *pos,
                        size_t *key_at)
{
    if (*pos >= length || text[*pos] != '{')
        return false;
    jscan_members_t it;
    span_t k, v;
    jscan_members_init(&it, text, length, *pos);
    while (jscan_members_next(&it, &k, &v) == 1) {
        if (jscan_string_eq(k, key->data ? key->data : "", key->len)) {
            *key_at = (size_t)(k.p - text);
            *pos = (size_t)(v.p - text);
            return true;
        }
    }
    return false;
}

/* Element `index` of the array at text[*pos]: true with *pos set to it. */
static bool find_element(const char *text, size_t length, size_t index, size_t *pos)
{
    if (*pos >= length || text[*pos] != '[')
        return false;
    size_t at = skip_ws(text, length, *pos + 1);
    if (at < length && text[at] == ']')
        return false;
    for (size_t i = 0;; i++) {
        span_t v;
        if (jscan_value(text, length, &at, &v, NULL) != 0)
            return false;
        if (i == index) {
            *pos = (size_t)(v.p - text);
            return true;
        }
        at = skip_ws(text, length, at);
        if (at >= length || text[at] != ',')
            return false;
        at++;
    }
}

size_t cfg_locate(const char *text, size_t length, const char *path)
{
    size_t pos = skip_ws(text, length, 0);
    size_t found = pos;
    step s = {.key = BUF_INIT};
    const char *p = path;
    while (*p != '\0' && next_step(&p, &s)) {
        size_t key_at = 0;
        if (s.is_index ? !find_element(text, length, s.index, &pos)
                       : !find_member(text, length, &s.key, &pos, &key_at))
            break;
        found = s.is_index ? pos : key_at;
    }
    buf_free(&s.key);
    return found;
}

cfg_position cfg_position_of(const char *text, size_t length, size_t offset)
{
    cfg_position at = {1, 1};
    if (offset > length)
        offset = length;
    for (size_t i = 0; i < offset; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') {
            at.line++;
            at.column = 1;
        } else if ((c & 0xC0) != 0x80) {
            at.column++;
        }
    }
    return at;
}
