#include "config/cfg_path.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void cfg_path_init(cfg_path *path)
{
    path->length = 0;
    path->text[0] = '\0';
}

/* Appends bytes, cutting them short at the end of the buffer. */
static void cfg_path_append(cfg_path *path, const char *bytes, size_t count)
{
    for (size_t i = 0; i < count && path->length < CFG_PATH_SIZE - 1; i++)
        path->text[path->length++] = bytes[i];
    path->text[path->length] = '\0';
}

static void cfg_path_appendf(cfg_path *path, const char *format, ...)
{
    char piece[32];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(piece, sizeof piece, format, args);
    va_end(args);
    if (n > 0)
        cfg_path_append(path, piece, (size_t)n < sizeof piece ? (size_t)n : sizeof piece - 1);
}

static bool cfg_path_is_plain_key(const char *key)
{
    if (*key == '\0')
        return false;
    for (const char *p = key; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* Appends `key` as the body of a JSON string literal. */
static void cfg_path_append_quoted(cfg_path *path, const char *key)
{
    cfg_path_append(path, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char escaped[2] = {'\\', (char)*p};
            cfg_path_append(path, escaped, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            cfg_path_appendf(path, "\\u%04x", *p);
        } else {
            cfg_path_append(path, (const char *)p, 1);
        }
    }
    cfg_path_append(path, "\"", 1);
}

size_t cfg_path_push_key(cfg_path *path, const char *key)
{
    size_t mark = path->length;
    if (cfg_path_is_plain_key(key)) {
        if (path->length > 0)
            cfg_path_append(path, ".", 1);
        cfg_path_append(path, key, strlen(key));
    } else {
        cfg_path_append(path, "[", 1);
        cfg_path_append_quoted(path, key);
        cfg_path_append(path, "]", 1);
    }
    return mark;
}

size_t cfg_path_push_index(cfg_path *path, size_t index)
{
    size_t mark = path->length;
    cfg_path_appendf(path, "[%zu]", index);
    return mark;
}

void cfg_path_pop(cfg_path *path, size_t mark)
{
    if (mark < path->length) {
        path->length = mark;
        path->text[mark] = '\0';
    }
}

const char *cfg_path_text(const cfg_path *path)
{
    return path->text;
}
