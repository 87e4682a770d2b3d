#include "config/config_reader.h"

#include "config/cfg_suggest.h"
#include "config/env_subst.h"
#include "core/buf.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const cfg_int_rule cfg_positive_ms = {1, CONFIG_MS_MAX, "a positive integer", true};
const cfg_int_rule cfg_non_negative_ms = {0, CONFIG_MS_MAX, "a non-negative integer", true};
const cfg_int_rule cfg_positive_count = {1, CONFIG_COUNT_MAX, "a positive integer", true};
const cfg_int_rule cfg_non_negative_count = {0, CONFIG_COUNT_MAX, "a non-negative integer", true};
const cfg_int_rule cfg_positive_bytes = {1, INT64_MAX, "a positive integer", false};

/* ---- the loader's problems ----------------------------------------------- */

void cfg_copy_line(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
        char piece[5] = {(char)*p, '\0'};
        if (*p == '\n' || *p == '\t')
            snprintf(piece, sizeof piece, "\\%c", *p == '\n' ? 'n' : 't');
        else if (*p < 0x20 || *p == 0x7f)
            snprintf(piece, sizeof piece, "\\x%02x", *p);
        size_t length = strlen(piece);
        if (n + length >= size)
            break;
        memcpy(dst + n, piece, length);
        n += length;
    }
    dst[n] = '\0';
}

static bool has_memory_problem(const config_error *error)
{
    for (size_t i = 0; i < error->count; i++)
        if (error->problems[i].kind == CONFIG_ERROR_MEMORY)
            return true;
    return false;
}

static bool has_problem_at(const config_error *error, const char *path)
{
    for (size_t i = 0; i < error->count; i++)
        if (error->problems[i].kind == CONFIG_ERROR_SCHEMA &&
            strcmp(error->problems[i].path, path) == 0)
            return true;
    return false;
}

void cfg_add_problem(config_error *error, config_error_kind kind, const char *path,
                     const char *reason)
{
    if (has_memory_problem(error))
        return; /* what follows an allocation failure proves nothing */
    if (kind == CONFIG_ERROR_SCHEMA && has_problem_at(error, path))
        return; /* one problem per value: e.g. ${X} unset, then not "host:port" */
    if (error->count == CONFIG_ERRORS_MAX) {
        error->truncated = true;
        return;
    }
    config_problem *problem = &error->problems[error->count++];
    memset(problem, 0, sizeof *problem);
    problem->kind = kind;
    snprintf(problem->path, sizeof problem->path, "%s", kind == CONFIG_ERROR_SCHEMA ? path : "");
    cfg_copy_line(problem->reason, sizeof problem->reason, reason);
    if (error->kind == CONFIG_ERROR_NONE)
        error->kind = kind;
}

static bool is_told(const cfg_loader *l, const char *path)
{
    for (size_t i = 0; i < l->told_count; i++)
        if (strcmp(l->told[i], path) == 0)
            return true;
    return false;
}

/* Marks member `key` of the current value as told about. */
static void tell(cfg_loader *l, const char *key)
{
    if (l->told_count == CONFIG_ERRORS_MAX)
        return;
    size_t mark = cfg_path_push_key(&l->path, key);
    snprintf(l->told[l->told_count++], CFG_PATH_SIZE, "%s", cfg_path_text(&l->path));
    cfg_path_pop(&l->path, mark);
}

static int vfail(cfg_loader *l, const char *key, const char *format, va_list args)
{
    char reason[CFG_REASON_SIZE];
    vsnprintf(reason, sizeof reason, format, args);
    size_t mark = key != NULL ? cfg_path_push_key(&l->path, key) : 0;
    if (!is_told(l, cfg_path_text(&l->path)))
        cfg_add_problem(l->error, CONFIG_ERROR_SCHEMA, cfg_path_text(&l->path), reason);
    if (key != NULL)
        cfg_path_pop(&l->path, mark);
    return -1;
}

int cfg_fail(cfg_loader *l, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vfail(l, NULL, format, args);
    va_end(args);
    return -1;
}

int cfg_fail_at(cfg_loader *l, const char *key, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vfail(l, key, format, args);
    va_end(args);
    return -1;
}

int cfg_fail_memory(cfg_loader *l)
{
    cfg_add_problem(l->error, CONFIG_ERROR_MEMORY, "", "out of memory");
    return -1;
}

char *cfg_strdup(cfg_loader *l, const char *text)
{
    char *copy = strdup(text);
    if (copy == NULL)
        cfg_fail_memory(l);
    return copy;
}

void *cfg_calloc(cfg_loader *l, size_t count, size_t size)
{
    void *memory = calloc(count ? count : 1, size);
    if (memory == NULL)
        cfg_fail_memory(l);
    return memory;
}

/* ---- typed readers (contract in config_reader.h) ------------------------- */

/* "unknown key", with "(did you mean K?)" for a close key K of `allowed`
 * that the object does not already have. */
static int fail_unknown_key(cfg_loader *l, const json_t *object, const char *key,
                            const char *const *allowed)
{
    const char *close = cfg_suggest(key, allowed, SIZE_MAX);
    if (close != NULL && json_object_get(object, close) == NULL) {
        cfg_fail_at(l, key, "unknown key (did you mean %s?)", close);
        tell(l, close);
        return -1;
    }
    return cfg_fail_at(l, key, "unknown key");
}

int cfg_check_keys(cfg_loader *l, const json_t *object, const char *const *allowed)
{
    const char *key;
    json_t *value;
    int rc = 0;
    json_object_foreach ((json_t *)object, key, value) {
        bool known = false;
        for (const char *const *name = allowed; *name != NULL && !known; name++)
            known = strcmp(key, *name) == 0;
        if (!known)
            rc = fail_unknown_key(l, object, key, allowed);
    }
    return rc;
}

int cfg_read_bool(cfg_loader *l, const json_t *object, const char *key, bool *out)
{
    const json_t *value = json_object_get(object, key);
    if (value == NULL)
        return 0;
    if (!json_is_boolean(value))
        return cfg_fail_at(l, key, "expected true or false");
    *out = json_is_true(value);
    return 0;
}

int cfg_read_integer(cfg_loader *l, const json_t *object, const char *key,
                     const cfg_int_rule *rule, uint64_t *out)
{
    const json_t *value = json_object_get(object, key);
    if (value == NULL)
        return 0;
    json_int_t number = json_is_integer(value) ? json_integer_value(value) : 0;
    if (!json_is_integer(value) || number < rule->min)
        return cfg_fail_at(l, key, "expected %s", rule->expected);
    if (number > rule->max && rule->mention_max)
        return cfg_fail_at(l, key, "expected %s (at most %" PRId64 ")", rule->expected, rule->max);
    if (number > rule->max)
        return cfg_fail_at(l, key, "expected %s", rule->expected);
    *out = (uint64_t)number;
    return 0;
}

int cfg_read_unsigned(cfg_loader *l, const json_t *object, const char *key,
                      const cfg_int_rule *rule, unsigned *out)
{
    uint64_t value = *out;
    if (cfg_read_integer(l, object, key, rule, &value) != 0)
        return -1;
    *out = (unsigned)value;
    return 0;
}

int cfg_read_string(cfg_loader *l, const json_t *object, const char *key, const char **out)
{
    const json_t *value = json_object_get(object, key);
    if (value == NULL)
        return 0;
    if (!json_is_string(value) || json_string_length(value) == 0)
        return cfg_fail_at(l, key, "expected a non-empty string");
    *out = json_string_value(value);
    return 0;
}

static int fail_enum(cfg_loader *l, const char *key, const json_t *value,
                     const char *const *names, size_t count)
{
    char expected[CFG_REASON_SIZE / 2] = "";
    for (size_t i = 0; i < count; i++) {
        strncat(expected, i ? ", " : "", sizeof expected - strlen(expected) - 1);
        strncat(expected, names[i], sizeof expected - strlen(expected) - 1);
    }
    const char *close = json_is_string(value) ? cfg_suggest(json_string_value(value), names, count)
                                              : NULL;
    if (close != NULL)
        return cfg_fail_at(l, key, "expected one of %s (did you mean %s?)", expected, close);
    return cfg_fail_at(l, key, "expected one of %s", expected);
}

int cfg_read_enum(cfg_loader *l, const json_t *object, const char *key,
                  const char *const *names, size_t count, int *out)
{
    const json_t *value = json_object_get(object, key);
    if (value == NULL)
        return 0;
    const char *text = json_is_string(value) ? json_string_value(value) : "";
    for (size_t i = 0; i < count; i++) {
        if (json_is_string(value) && strcmp(text, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    return fail_enum(l, key, value, names, count);
}

int cfg_read_hostport(cfg_loader *l, const json_t *object, const char *key, hostport *out,
                      bool *present)
{
    const json_t *value = json_object_get(object, key);
    if (value == NULL)
        return 0;
    if (!json_is_string(value))
        return cfg_fail_at(l, key, "expected \"host:port\"");
    const char *reason = hostport_parse(json_string_value(value), 0, out);
    if (reason != NULL)
        return cfg_fail_at(l, key, "expected \"host:port\" (%s)", reason);
    if (present != NULL)
        *present = true;
    return 0;
}

int cfg_read_object(cfg_loader *l, const json_t *object, const char *key, const json_t **out)
{
    const json_t *value = json_object_get(object, key);
    *out = NULL;
    if (value != NULL && !json_is_object(value))
        return cfg_fail_at(l, key, "expected an object");
    *out = value;
    return 0;
}

/* "a, b, c" of the services' names, cut short with ", ..." to fit. */
static void list_services(const config *cfg, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < cfg->service_count; i++) {
        const char *name = cfg->services[i].name;
        if (name == NULL)
            continue;
        const char *separator = n > 0 ? ", " : "";
        if (n + strlen(separator) + strlen(name) + sizeof ", ..." > size) {
            snprintf(out + n, size - n, "%s...", separator);
            return;
        }
        n += (size_t)snprintf(out + n, size - n, "%s%s", separator, name);
    }
}

int cfg_fail_unknown_service(cfg_loader *l, const char *key, const char *name)
{
    char known[CFG_REASON_SIZE / 2];
    list_services(l->cfg, known, sizeof known);
    if (known[0] == '\0' && key != NULL)
        return cfg_fail_at(l, key, "unknown service \"%.64s\"; no services are defined", name);
    if (known[0] == '\0')
        return cfg_fail(l, "unknown service \"%.64s\"; no services are defined", name);
    if (key != NULL)
        return cfg_fail_at(l, key, "unknown service \"%.64s\"; known: %s", name, known);
    return cfg_fail(l, "unknown service \"%.64s\"; known: %s", name, known);
}

bool cfg_failed(const cfg_loader *l)
{
    return l->error->kind != CONFIG_ERROR_NONE;
}


/* ---- ${...} substitution ------------------------------------------------- */

static int substitute_string(cfg_loader *l, json_t *string)
{
    const char *text = json_string_value(string);
    if (!env_subst_needed(text))
        return 0;
    char *expanded = NULL;
    char reason[CFG_REASON_SIZE];
    if (env_subst_expand(text, l->options->getenv_fn, l->options->getenv_context, &expanded,
                         reason, sizeof reason) != 0)
        return cfg_fail(l, "%s", reason);
    int rc = json_string_set(string, expanded);
    free(expanded);
    if (rc != 0)
        return cfg_fail(l, "the value after ${...} substitution is not valid UTF-8");
    return 0;
}

int cfg_substitute_all(cfg_loader *l, json_t *value)
{
    const char *key;
    size_t index;
    json_t *child;
    int rc = 0;
    switch (json_typeof(value)) {
    case JSON_STRING:
        return substitute_string(l, value);
    case JSON_OBJECT:
        json_object_foreach (value, key, child) {
            size_t mark = cfg_path_push_key(&l->path, key);
            rc |= cfg_substitute_all(l, child);
            cfg_path_pop(&l->path, mark);
        }
        return rc;
    case JSON_ARRAY:
        json_array_foreach (value, index, child) {
            size_t mark = cfg_path_push_index(&l->path, index);
            rc |= cfg_substitute_all(l, child);
            cfg_path_pop(&l->path, mark);
        }
        return rc;
    default:
        return 0;
    }
}

/* ---- relative file paths ------------------------------------------------- */

/* dir joined to rel, without "./" at rel's start and without "//". */
static char *join_path(const char *dir, const char *rel)
{
    while (rel[0] == '.' && rel[1] == '/')
        rel += 2;
    size_t dir_length = strlen(dir);
    while (dir_length > 1 && dir[dir_length - 1] == '/')
        dir_length--;
    if (strcmp(rel, ".") == 0 || rel[0] == '\0')
        return strndup(dir, dir_length);
    buf_t buf = BUF_INIT;
    int rc = buf_append(&buf, dir, dir_length);
    if (rc == 0 && (dir_length == 0 || dir[dir_length - 1] != '/'))
        rc = buf_append(&buf, "/", 1);
    if (rc == 0)
        rc = buf_append_cstr(&buf, rel);
    char *path = rc == 0 ? buf_take_cstr(&buf) : NULL;
    buf_free(&buf);
    return path;
}

/* The folder of the config file as written ("." when it has none). */
static char *file_folder(const char *file)
{
    const char *slash = strrchr(file, '/');
    if (slash == NULL)
        return strdup(".");
    if (slash == file)
        return strdup("/");
    return strndup(file, (size_t)(slash - file));
}

/* Makes l->base_dir; returns it, or NULL with an error recorded at `key`. */
static const char *loader_base_dir(cfg_loader *l, const char *key)
{
    if (l->base_dir != NULL)
        return l->base_dir;
    char *folder = l->file != NULL ? file_folder(l->file)
                                   : strdup(l->options->base_dir ? l->options->base_dir : ".");
    char *cwd = folder != NULL && folder[0] != '/' ? getcwd(NULL, 0) : NULL;
    if (folder != NULL && folder[0] != '/' && cwd == NULL && errno != ENOMEM) {
        cfg_fail_at(l, key, "cannot resolve a relative path: %s", strerror(errno));
    } else if (folder != NULL) {
        l->base_dir = folder[0] == '/' ? strdup(folder) : (cwd ? join_path(cwd, folder) : NULL);
    }
    free(cwd);
    free(folder);
    if (l->base_dir == NULL)
        cfg_fail_memory(l);
    return l->base_dir;
}

char *cfg_resolve_path(cfg_loader *l, const char *key, const char *text)
{
    if (text[0] == '/')
        return cfg_strdup(l, text);
    const char *base = loader_base_dir(l, key);
    if (base == NULL)
        return NULL;
    char *resolved = join_path(base, text);
    if (resolved == NULL)
        cfg_fail_memory(l);
    return resolved;
}
