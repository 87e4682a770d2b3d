#include "config/template.h"

#include "core/buf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENCODE_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))
#define SHOWN_MAX 64 /* bytes of a name quoted in an error message */

typedef struct compiler {
    const route_path *path;
    cfg_path *where;
    template *out;
    size_t capacity;  /* items allocated in out->items */
    buf_t pending;    /* literal text not yet made an item */
    char *error;
    size_t error_size;
} compiler;

typedef enum string_kind {
    STRING_LITERAL, /* not a reference: literal JSON text */
    STRING_SLOT,    /* a valid reference: *slot is filled */
    STRING_ERROR,   /* a reference with an error: c->error is set */
} string_kind;

static const char *const conversion_names[] = {
    [TEMPLATE_CONVERT_NONE] = "",
    [TEMPLATE_CONVERT_INT] = "int",
    [TEMPLATE_CONVERT_NUMBER] = "number",
    [TEMPLATE_CONVERT_BOOL] = "bool",
    [TEMPLATE_CONVERT_JSON] = "json",
};

const char *template_conversion_name(template_conversion conversion)
{
    return conversion_names[conversion];
}

char *template_encode_json(const json_t *value)
{
    return json_dumps(value, ENCODE_FLAGS);
}

static int compiler_fail(compiler *c, const char *message)
{
    snprintf(c->error, c->error_size, "%s", message);
    return -1;
}

static string_kind compiler_fail_string(compiler *c, const char *message)
{
    compiler_fail(c, message);
    return STRING_ERROR;
}

/* Copies at most SHOWN_MAX bytes of text[0..length) into shown. */
static const char *shown_text(char shown[SHOWN_MAX + 1], const char *text, size_t length)
{
    size_t n = length < SHOWN_MAX ? length : SHOWN_MAX;
    memcpy(shown, text, n);
    shown[n] = '\0';
    return shown;
}

/* ---- items --------------------------------------------------------------- */

static template_item *compiler_new_item(compiler *c)
{
    template *t = c->out;
    if (t->count == c->capacity) {
        size_t capacity = c->capacity ? c->capacity * 2 : 4;
        template_item *items = realloc(t->items, capacity * sizeof *items);
        if (items == NULL)
            return NULL;
        t->items = items;
        c->capacity = capacity;
    }
    template_item *item = &t->items[t->count++];
    memset(item, 0, sizeof *item);
    return item;
}

/* Turns the pending literal text, if any, into an item. */
static int compiler_flush(compiler *c)
{
    if (c->pending.len == 0)
        return 0;
    size_t length = c->pending.len;
    char *text = buf_take_cstr(&c->pending);
    template_item *item = text != NULL ? compiler_new_item(c) : NULL;
    if (item == NULL) {
        free(text);
        return compiler_fail(c, "out of memory");
    }
    item->kind = TEMPLATE_ITEM_LITERAL;
    item->literal = text;
    item->literal_length = length;
    return 0;
}

static int compiler_append(compiler *c, const char *text)
{
    if (buf_append_cstr(&c->pending, text) != 0)
        return compiler_fail(c, "out of memory");
    return 0;
}

static int compiler_append_encoded(compiler *c, const json_t *value)
{
    char *text = template_encode_json(value);
    if (text == NULL)
        return compiler_fail(c, "out of memory");
    int rc = compiler_append(c, text);
    free(text);
    return rc;
}

static int compiler_append_key(compiler *c, const char *key)
{
    json_t *string = json_string(key);
    if (string == NULL)
        return compiler_fail(c, "out of memory");
    int rc = compiler_append_encoded(c, string);
    json_decref(string);
    return rc == 0 ? compiler_append(c, ":") : rc;
}

static void slot_free(template_slot *slot)
{
    free(slot->name);
    for (size_t i = 0; i < slot->member_count; i++)
        free(slot->members[i]);
    free(slot->members);
    memset(slot, 0, sizeof *slot);
}

static int compiler_add_slot(compiler *c, template_slot *slot)
{
    if (compiler_flush(c) != 0)
        return -1;
    template_item *item = compiler_new_item(c);
    if (item == NULL)
        return compiler_fail(c, "out of memory");
    item->kind = TEMPLATE_ITEM_SLOT;
    item->slot = *slot;
    if (slot->source == TEMPLATE_SOURCE_BODY)
        c->out->uses_body = true;
    memset(slot, 0, sizeof *slot);
    return 0;
}

/* ---- references ---------------------------------------------------------- */

static bool parse_conversion(const char *text, template_conversion *out)
{
    for (size_t i = TEMPLATE_CONVERT_INT; i <= TEMPLATE_CONVERT_JSON; i++) {
        if (strcmp(text, conversion_names[i]) == 0) {
            *out = (template_conversion)i;
            return true;
        }
    }
    return false;
}

/* The reference's source and where its name part starts, or false. */
static bool match_source(const char *text, template_source *source, const char **rest)
{
    static const struct {
        const char *prefix;
        template_source source;
    } prefixes[] = {
        {"$path.", TEMPLATE_SOURCE_PATH},
        {"$query.", TEMPLATE_SOURCE_QUERY},
        {"$header.", TEMPLATE_SOURCE_HEADER},
        {"$body", TEMPLATE_SOURCE_BODY},
    };
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t length = strlen(prefixes[i].prefix);
        if (strncmp(text, prefixes[i].prefix, length) == 0) {
            *source = prefixes[i].source;
            *rest = text + length;
            return prefixes[i].source != TEMPLATE_SOURCE_BODY || **rest == '\0' ||
                   **rest == '.' || **rest == ':';
        }
    }
    return false;
}

/* ref[0..length) must be "" or ".a.b" with no empty member; a string that
 * is not is a literal. */
static bool is_valid_member_path(const char *ref, size_t length)
{
    if (length == 0)
        return true;
    if (ref[0] != '.')
        return false;
    for (size_t i = 0; i < length; i++)
        if (ref[i] == '.' && (i + 1 == length || ref[i + 1] == '.'))
            return false;
    return true;
}

static int split_members(compiler *c, const char *ref, size_t length, template_slot *slot)
{
    size_t count = 0;
    for (size_t i = 0; i < length; i++)
        count += ref[i] == '.';
    if (count == 0)
        return 0;
    slot->members = calloc(count, sizeof *slot->members);
    if (slot->members == NULL)
        return compiler_fail(c, "out of memory");
    const char *member = ref + 1;
    const char *end = ref + length;
    while (member < end) {
        const char *dot = memchr(member, '.', (size_t)(end - member));
        const char *stop = dot != NULL ? dot : end;
        slot->members[slot->member_count] = strndup(member, (size_t)(stop - member));
        if (slot->members[slot->member_count] == NULL)
            return compiler_fail(c, "out of memory");
        slot->member_count++;
        member = stop + 1;
    }
    return 0;
}

static bool is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static string_kind resolve_header(compiler *c, template_slot *slot)
{
    for (const char *p = slot->name; *p; p++) {
        if (!is_token_char(*p)) {
            char message[160], shown[SHOWN_MAX + 1];
            snprintf(message, sizeof message, "$header.%s is not a valid header name",
                     shown_text(shown, slot->name, strlen(slot->name)));
            return compiler_fail_string(c, message);
        }
    }
    for (char *p = slot->name; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return STRING_SLOT;
}

static string_kind resolve_capture(compiler *c, template_slot *slot)
{
    long index = route_path_capture_index(c->path, slot->name);
    if (index < 0) {
        char message[400], shown[SHOWN_MAX + 1];
        snprintf(message, sizeof message, "$path.%s is not a capture of %s",
                 shown_text(shown, slot->name, strlen(slot->name)), c->path->text);
        return compiler_fail_string(c, message);
    }
    slot->capture_index = (size_t)index;
    return STRING_SLOT;
}

/* rest[0..length) is the reference after its source prefix. */
static string_kind parse_reference_name(compiler *c, const char *rest, size_t length,
                                        template_slot *slot)
{
    if (slot->source == TEMPLATE_SOURCE_BODY) {
        if (!is_valid_member_path(rest, length))
            return STRING_LITERAL;
        return split_members(c, rest, length, slot) == 0 ? STRING_SLOT : STRING_ERROR;
    }
    if (length == 0)
        return STRING_LITERAL;
    slot->name = strndup(rest, length);
    if (slot->name == NULL)
        return compiler_fail_string(c, "out of memory");
    if (slot->source == TEMPLATE_SOURCE_HEADER)
        return resolve_header(c, slot);
    if (slot->source == TEMPLATE_SOURCE_PATH)
        return resolve_capture(c, slot);
    return STRING_SLOT;
}

static string_kind parse_string(compiler *c, const char *text, template_slot *slot)
{
    const char *rest;
    if (!match_source(text, &slot->source, &rest))
        return STRING_LITERAL;
    const char *colon = strchr(rest, ':');
    size_t length = colon != NULL ? (size_t)(colon - rest) : strlen(rest);
    string_kind kind = parse_reference_name(c, rest, length, slot);
    if (kind != STRING_SLOT || colon == NULL)
        return kind;
    if (!parse_conversion(colon + 1, &slot->conversion)) {
        char message[160], shown[SHOWN_MAX + 1];
        snprintf(message, sizeof message,
                 "unknown conversion ':%s' (expected :int, :number, :bool or :json)",
                 shown_text(shown, colon + 1, strlen(colon + 1)));
        return compiler_fail_string(c, message);
    }
    return STRING_SLOT;
}

/* ---- the walk ------------------------------------------------------------ */

static int compile_value(compiler *c, const json_t *value);

static int compile_string(compiler *c, const json_t *value)
{
    template_slot slot = {0};
    string_kind kind = parse_string(c, json_string_value(value), &slot);
    int rc = -1;
    if (kind == STRING_LITERAL)
        rc = compiler_append_encoded(c, value);
    else if (kind == STRING_SLOT)
        rc = compiler_add_slot(c, &slot);
    slot_free(&slot);
    return rc;
}

static int compile_object(compiler *c, const json_t *object)
{
    const char *key;
    json_t *member;
    bool first = true;
    if (compiler_append(c, "{") != 0)
        return -1;
    json_object_foreach ((json_t *)object, key, member) {
        if (!first && compiler_append(c, ",") != 0)
            return -1;
        first = false;
        if (compiler_append_key(c, key) != 0)
            return -1;
        size_t mark = cfg_path_push_key(c->where, key);
        if (compile_value(c, member) != 0)
            return -1;
        cfg_path_pop(c->where, mark);
    }
    return compiler_append(c, "}");
}

static int compile_array(compiler *c, const json_t *array)
{
    size_t index;
    json_t *element;
    if (compiler_append(c, "[") != 0)
        return -1;
    json_array_foreach (array, index, element) {
        if (index > 0 && compiler_append(c, ",") != 0)
            return -1;
        size_t mark = cfg_path_push_index(c->where, index);
        if (compile_value(c, element) != 0)
            return -1;
        cfg_path_pop(c->where, mark);
    }
    return compiler_append(c, "]");
}

static int compile_value(compiler *c, const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT:
        return compile_object(c, value);
    case JSON_ARRAY:
        return compile_array(c, value);
    case JSON_STRING:
        return compile_string(c, value);
    default:
        return compiler_append_encoded(c, value);
    }
}

int template_compile(const json_t *value, const route_path *path, cfg_path *where,
                     template *out, char *error, size_t error_size)
{
    compiler c = {
        .path = path, .where = where, .out = out, .pending = BUF_INIT,
        .error = error, .error_size = error_size,
    };
    memset(out, 0, sizeof *out);
    int rc = compile_value(&c, value);
    if (rc == 0)
        rc = compiler_flush(&c);
    buf_free(&c.pending);
    if (rc != 0)
        template_free(out);
    return rc;
}

void template_free(template *t)
{
    for (size_t i = 0; i < t->count; i++) {
        free(t->items[i].literal);
        slot_free(&t->items[i].slot);
    }
    free(t->items);
    memset(t, 0, sizeof *t);
}

bool template_is_literal(const template *t)
{
    return t->count == 1 && t->items[0].kind == TEMPLATE_ITEM_LITERAL;
}
