#include "config/env_subst.h"

#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENV_SUBST_NAME_MAX 256

typedef struct expansion {
    env_subst_lookup_fn *lookup;
    void *context;
    buf_t out;
    char *error;
    size_t error_size;
} expansion;

static const char *lookup_getenv(void *context, const char *name)
{
    (void)context;
    return getenv(name);
}

bool env_subst_needed(const char *text)
{
    return strstr(text, "${") != NULL;
}

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

static int expansion_fail(expansion *x, const char *message)
{
    snprintf(x->error, x->error_size, "%s", message);
    return -1;
}

static int expansion_append(expansion *x, const char *text, size_t length)
{
    if (buf_append(&x->out, text, length) != 0)
        return expansion_fail(x, "out of memory");
    return 0;
}

/* The variable reference body between "${" and "}" is text[0..length). */
static int expand_reference(expansion *x, const char *text, size_t length)
{
    size_t name_length = 0;
    while (name_length < length && is_name_char(text[name_length]))
        name_length++;
    if (name_length == 0 || !is_name_start(text[0]))
        return expansion_fail(x, "bad variable name in ${...}");
    if (name_length >= ENV_SUBST_NAME_MAX)
        return expansion_fail(x, "variable name too long in ${...}");
    bool has_default = name_length < length;
    if (has_default && (length - name_length < 2 || text[name_length] != ':' ||
                        text[name_length + 1] != '-'))
        return expansion_fail(x, "unsupported ${...} form (use ${NAME} or ${NAME:-default})");

    char name[ENV_SUBST_NAME_MAX];
    memcpy(name, text, name_length);
    name[name_length] = '\0';
    const char *value = x->lookup(x->context, name);
    if (has_default && (value == NULL || value[0] == '\0')) {
        const char *fallback = text + name_length + 2;
        return expansion_append(x, fallback, (size_t)(text + length - fallback));
    }
    if (value == NULL) {
        snprintf(x->error, x->error_size, "${%s} is not set", name);
        return -1;
    }
    return expansion_append(x, value, strlen(value));
}

/* text points at "${"; on success returns the bytes consumed, else -1. */
static long expand_one(expansion *x, const char *text)
{
    const char *body = text + 2;
    const char *close = strchr(body, '}');
    if (close == NULL)
        return expansion_fail(x, "unterminated ${");
    const char *nested = strstr(body, "${");
    if (nested != NULL && nested < close)
        return expansion_fail(x, "nested ${...} is not supported");
    if (expand_reference(x, body, (size_t)(close - body)) != 0)
        return -1;
    return (long)(close + 1 - text);
}

static int expand_all(expansion *x, const char *text)
{
    const char *p = text;
    while (*p != '\0') {
        const char *dollar = strchr(p, '$');
        if (dollar == NULL)
            return expansion_append(x, p, strlen(p));
        if (expansion_append(x, p, (size_t)(dollar - p)) != 0)
            return -1;
        if (strncmp(dollar, "$${", 3) == 0) {
            if (expansion_append(x, "${", 2) != 0)
                return -1;
            p = dollar + 3;
        } else if (dollar[1] == '{') {
            long used = expand_one(x, dollar);
            if (used < 0)
                return -1;
            p = dollar + used;
        } else {
            if (expansion_append(x, "$", 1) != 0)
                return -1;
            p = dollar + 1;
        }
    }
    return 0;
}

int env_subst_expand(const char *text, env_subst_lookup_fn *lookup, void *context,
                     char **out, char *error, size_t error_size)
{
    expansion x = {
        .lookup = lookup != NULL ? lookup : lookup_getenv,
        .context = context,
        .out = BUF_INIT,
        .error = error,
        .error_size = error_size,
    };
    *out = NULL;
    if (error_size > 0)
        error[0] = '\0';
    if (expand_all(&x, text) != 0) {
        buf_free(&x.out);
        return -1;
    }
    *out = buf_take_cstr(&x.out);
    buf_free(&x.out);
    if (*out == NULL) {
        snprintf(error, error_size, "out of memory");
        return -1;
    }
    return 0;
}
