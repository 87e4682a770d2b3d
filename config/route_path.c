#include "config/route_path.h"
#include "core/urlcode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHOWN_MAX 64 /* bytes of a segment quoted in an error message */

typedef struct path_parser {
    route_path *path;
    char *error;
    size_t error_size;
} path_parser;

static int parser_fail_plain(path_parser *p, const char *message)
{
    snprintf(p->error, p->error_size, "%s", message);
    return -1;
}

/* Writes `format` with one %s: the first bytes of text[0..length). */
static int parser_fail(path_parser *p, const char *format, const char *text, size_t length)
{
    char shown[SHOWN_MAX + 1];
    size_t n = length < SHOWN_MAX ? length : SHOWN_MAX;
    memcpy(shown, text, n);
    shown[n] = '\0';
    snprintf(p->error, p->error_size, format, shown);
    return -1;
}

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

static bool is_valid_name(const char *name, size_t length)
{
    if (length == 0 || !is_name_start(name[0]))
        return false;
    for (size_t i = 1; i < length; i++)
        if (!is_name_char(name[i]))
            return false;
    return true;
}

static bool is_forbidden_raw(unsigned char c)
{
    return c < 0x20 || c == 0x7f || (c != '\0' && strchr(" ?#\"<>\\^`{|}", c) != NULL);
}

static int fail_forbidden(path_parser *p, unsigned char c)
{
    char shown[8];
    if (c < 0x20 || c == 0x7f)
        snprintf(shown, sizeof shown, "\\x%02x", c);
    else
        snprintf(shown, sizeof shown, "%c", c);
    return parser_fail(p, "character '%s' must be percent-encoded", shown, strlen(shown));
}

/* Decodes raw[0..length) into a new string in *out. Returns 0 or -1. */
static int decode_literal(path_parser *p, const char *raw, size_t length, route_segment *out)
{
    for (size_t i = 0; i < length; i++)
        if (is_forbidden_raw((unsigned char)raw[i]))
            return fail_forbidden(p, (unsigned char)raw[i]);
    size_t at = 0;
    urlcode_status bad = urlcode_check(raw, length, &at);
    if (bad == URLCODE_NUL)
        return parser_fail_plain(p, "%00 is not allowed in a path");
    if (bad != URLCODE_OK)
        return parser_fail(p, "bad percent-escape '%s'", raw + at, length - at < 3 ? length - at : 3);
    char *text = malloc(length + 1);
    size_t n = 0;
    if (text == NULL || urlcode_decode(raw, length, URLCODE_PATH, text, &n) != URLCODE_OK) {
        free(text);
        return parser_fail_plain(p, "out of memory");
    }
    text[n] = '\0';
    out->kind = ROUTE_SEGMENT_LITERAL;
    out->text = text;
    out->length = n;
    return 0;
}

static bool has_capture_named(const route_path *path, const char *name, size_t length)
{
    for (size_t i = 0; i < path->count; i++) {
        const route_segment *s = &path->segments[i];
        if (s->kind != ROUTE_SEGMENT_LITERAL && s->length == length &&
            memcmp(s->text, name, length) == 0)
            return true;
    }
    return false;
}

/* raw[0..length) starts with ':' or '*'. */
static int parse_capture(path_parser *p, const char *raw, size_t length, bool is_last,
                         route_segment *out)
{
    const char *name = raw + 1;
    size_t name_length = length - 1;
    if (!is_valid_name(name, name_length))
        return parser_fail(p, "bad parameter name '%s' (expected [A-Za-z_][A-Za-z0-9_]*)",
                           raw, length);
    if (raw[0] == '*' && !is_last)
        return parser_fail(p, "'%s' must be the last segment", raw, length);
    if (has_capture_named(p->path, name, name_length))
        return parser_fail(p, "duplicate parameter name '%s'", name, name_length);
    out->text = strndup(name, name_length);
    if (out->text == NULL)
        return parser_fail_plain(p, "out of memory");
    out->kind = raw[0] == '*' ? ROUTE_SEGMENT_REST : ROUTE_SEGMENT_PARAM;
    out->length = name_length;
    p->path->capture_count++;
    return 0;
}

static int parse_segment(path_parser *p, const char *raw, size_t length, bool is_last)
{
    route_segment *out = &p->path->segments[p->path->count];
    if (length == 0)
        return parser_fail_plain(p, "empty segment (//)");
    int rc = (raw[0] == ':' || raw[0] == '*') ? parse_capture(p, raw, length, is_last, out)
                                              : decode_literal(p, raw, length, out);
    if (rc == 0)
        p->path->count++;
    return rc;
}

/* body is the path without its leading '/' and without a trailing '/'. */
static int parse_segments(path_parser *p, const char *body, size_t length)
{
    if (length == 0)
        return 0;
    size_t count = 1;
    for (size_t i = 0; i < length; i++)
        count += body[i] == '/';
    p->path->segments = calloc(count, sizeof *p->path->segments);
    if (p->path->segments == NULL)
        return parser_fail_plain(p, "out of memory");
    size_t start = 0;
    for (size_t i = 0; i <= length; i++) {
        if (i < length && body[i] != '/')
            continue;
        if (parse_segment(p, body + start, i - start, i == length) != 0)
            return -1;
        start = i + 1;
    }
    return 0;
}

int route_path_parse(const char *text, route_path *out, char *error, size_t error_size)
{
    path_parser p = {.path = out, .error = error, .error_size = error_size};
    memset(out, 0, sizeof *out);
    if (text[0] != '/')
        return parser_fail_plain(&p, "expected a path starting with '/'");
    out->text = strdup(text);
    if (out->text == NULL)
        return parser_fail_plain(&p, "out of memory");
    size_t length = strlen(text + 1);
    if (length > 1 && text[length] == '/')
        length--; /* the trailing '/' is ignored ("//" stays an empty segment) */
    if (parse_segments(&p, text + 1, length) != 0) {
        route_path_free(out);
        return -1;
    }
    return 0;
}

void route_path_free(route_path *path)
{
    for (size_t i = 0; i < path->count; i++)
        free(path->segments[i].text);
    free(path->segments);
    free(path->text);
    memset(path, 0, sizeof *path);
}

bool route_path_same_shape(const route_path *a, const route_path *b)
{
    if (a->count != b->count)
        return false;
    for (size_t i = 0; i < a->count; i++) {
        const route_segment *x = &a->segments[i];
        const route_segment *y = &b->segments[i];
        if (x->kind != y->kind)
            return false;
        if (x->kind == ROUTE_SEGMENT_LITERAL &&
            (x->length != y->length || memcmp(x->text, y->text, x->length) != 0))
            return false;
    }
    return true;
}

const route_segment *route_path_capture(const route_path *path, size_t index)
{
    for (size_t i = 0; i < path->count; i++) {
        if (path->segments[i].kind == ROUTE_SEGMENT_LITERAL)
            continue;
        if (index == 0)
            return &path->segments[i];
        index--;
    }
    return NULL;
}

long route_path_capture_index(const route_path *path, const char *name)
{
    long index = 0;
    for (size_t i = 0; i < path->count; i++) {
        const route_segment *s = &path->segments[i];
        if (s->kind == ROUTE_SEGMENT_LITERAL)
            continue;
        if (strcmp(s->text, name) == 0)
            return index;
        index++;
    }
    return -1;
}
