#include "gateway/scaffold.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_path_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '~';
}

static bool is_separator(unsigned char c)
{
    return c == '.' || c == ':' || c == '/' || c == ' ';
}

/* Appends text as path segments (see scaffold.h). */
static int append_words(buf_t *path, const char *text, size_t n)
{
    bool open = false, dash = false;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (is_separator(c)) {
            open = dash = false;
        } else if (!is_path_char(c)) {
            dash = open;
        } else {
            if (!open)
                rc |= buf_append(path, "/", 1);
            else if (dash)
                rc |= buf_append(path, "-", 1);
            rc |= buf_append(path, (const char *)&c, 1);
            open = true;
            dash = false;
        }
    }
    return rc;
}

static int append_value(buf_t *path, const json_t *v)
{
    const char *key;
    json_t *member;
    int rc = 0;
    if (json_is_string(v))
        return append_words(path, json_string_value(v), json_string_length(v));
    if (json_is_object(v)) {
        json_object_foreach ((json_t *)v, key, member)
            rc |= append_words(path, key, strlen(key)) | append_value(path, member);
        return rc;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    rc = text ? append_words(path, text, strlen(text)) : -1;
    free(text);
    return rc;
}

static int pattern_path(const json_t *pattern, buf_t *path)
{
    json_t *object = json_is_string(pattern) ? json_loads(json_string_value(pattern), 0, NULL) : NULL;
    int rc = append_value(path, json_is_object(object) ? object : pattern);
    json_decref(object);
    if (rc == 0 && path->len == 0)
        rc = buf_append_cstr(path, "/handler");
    return rc;
}

static const char *terminated(buf_t *b)
{
    if (buf_reserve(b, 1) != 0)
        return NULL;
    b->data[b->len] = '\0';
    return b->data;
}

static bool is_reserved(const char *path)
{
    static const char *const admin[] = { "/healthz", "/readyz", "/status", "/metrics", "/openapi.json", "/docs" };
    for (size_t i = 0; i < sizeof admin / sizeof admin[0]; i++)
        if (strcmp(path, admin[i]) == 0)
            return true;
    return strncmp(path, "/v1/send/", 9) == 0 || strncmp(path, "/v1/emit/", 9) == 0;
}

int scaffold_path(const json_t *pattern, const char *service, scaffold_taken_fn *taken, const void *ctx,
                  buf_t *out)
{
    buf_t base = BUF_INIT;
    int rc = pattern_path(pattern, &base);
    const char *text = rc == 0 ? terminated(&base) : NULL;
    buf_clear(out);
    if (text && is_reserved(text))
        rc = buf_append_cstr(out, "/") | buf_append_cstr(out, service);
    rc |= buf_append(out, base.data, base.len);
    size_t stem = out->len;
    for (unsigned n = 2; rc == 0; n++) {
        const char *candidate = terminated(out);
        if (!candidate)
            rc = -1;
        else if (!taken(ctx, candidate))
            break;
        char suffix[16];
        snprintf(suffix, sizeof suffix, "-%u", n);
        out->len = stem;
        rc |= buf_append_cstr(out, suffix);
    }
    buf_free(&base);
    return rc ? -1 : 0;
}
