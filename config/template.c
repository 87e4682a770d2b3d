#include "config/template.h"

#include "config/cfg_suggest.h"
#include "core/buf.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENCODE_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))
#define SHOWN_MAX 64 /* bytes of a template quoted in an error message */
#define SPREAD_KEY "..."

/* A sequence being built: its items, and literal text not yet an item. */
typedef struct seq {
    template *t;
    size_t capacity; /* items allocated in t->items */
    buf_t pending;
} seq;

typedef struct compiler {
    const route_path *path;
    cfg_path *where;
    template *root;
    size_t root_length; /* where->length when compiling started */
    char label[CFG_PATH_SIZE]; /* the root's name in slot->at ("data") */
    char *error;
    size_t error_size;
} compiler;

typedef enum string_kind {
    STRING_LITERAL, /* not a reference: literal JSON text */
    STRING_ESCAPED, /* "$$...": the literal string without its first '$' */
    STRING_SLOT,    /* a valid reference: *slot is filled */
    STRING_ERROR,   /* c->error is set */
} string_kind;

/* What follows the source word, e.g. "query" in "$query.x". */
typedef enum source_form {
    FORM_BODY,    /* "" or ".m1.m2" */
    FORM_PATH,    /* "" or ".NAME" */
    FORM_QUERY,   /* "" or ".NAME" */
    FORM_HEADER,  /* ".NAME" */
    FORM_HEADERS, /* "" */
    FORM_JWT,     /* "", ".NAME" or ".claims.m1.m2" */
    FORM_CLIENT,  /* ".ip" */
} source_form;

static const char *const source_words[] = {
    [FORM_BODY] = "body",       [FORM_PATH] = "path",     [FORM_QUERY] = "query",
    [FORM_HEADER] = "header",   [FORM_HEADERS] = "headers", [FORM_JWT] = "jwt",
    [FORM_CLIENT] = "client",
};
#define SOURCE_WORD_COUNT (sizeof source_words / sizeof source_words[0])

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

/* ---- errors ---------------------------------------------------------------- */

static int compiler_fail(compiler *c, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static int compiler_fail(compiler *c, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(c->error, c->error_size, format, args);
    va_end(args);
    return -1;
}

static int compiler_nomem(compiler *c)
{
    return compiler_fail(c, "out of memory");
}

/* At most SHOWN_MAX bytes of text[0..length), NUL-terminated, with "..."
 * when cut (the loader escapes control characters in messages). */
static const char *shown_text(char shown[SHOWN_MAX + 4], const char *text, size_t length)
{
    size_t n = length < SHOWN_MAX ? length : SHOWN_MAX;
    memcpy(shown, text, n);
    strcpy(shown + n, n < length ? "..." : "");
    return shown;
}

/* ---- sequences ------------------------------------------------------------- */

static template_item *seq_new_item(compiler *c, seq *s)
{
    template *t = s->t;
    if (t->count == s->capacity) {
        size_t capacity = s->capacity ? s->capacity * 2 : 4;
        template_item *items = realloc(t->items, capacity * sizeof *items);
        if (items == NULL) {
            compiler_nomem(c);
            return NULL;
        }
        t->items = items;
        s->capacity = capacity;
    }
    template_item *item = &t->items[t->count++];
    memset(item, 0, sizeof *item);
    return item;
}

/* Turns the pending literal text, if any, into an item. */
static int seq_flush(compiler *c, seq *s)
{
    if (s->pending.len == 0)
        return 0;
    size_t length = s->pending.len;
    char *text = buf_take_cstr(&s->pending);
    if (text == NULL)
        return compiler_nomem(c);
    template_item *item = seq_new_item(c, s);
    if (item == NULL) {
        free(text);
        return -1;
    }
    item->kind = TEMPLATE_ITEM_LITERAL;
    item->literal = text;
    item->literal_length = length;
    return 0;
}

static int seq_append(compiler *c, seq *s, const char *text)
{
    return buf_append_cstr(&s->pending, text) != 0 ? compiler_nomem(c) : 0;
}

static int seq_append_encoded(compiler *c, seq *s, const json_t *value)
{
    char *text = template_encode_json(value);
    if (text == NULL)
        return compiler_nomem(c);
    int rc = seq_append(c, s, text);
    free(text);
    return rc;
}

/* `key` as compact JSON text followed by ':', to free(); NULL: no memory. */
static char *encode_key(const char *key)
{
    json_t *string = json_string(key);
    char *text = string != NULL ? template_encode_json(string) : NULL;
    json_decref(string);
    if (text == NULL)
        return NULL;
    size_t n = strlen(text);
    char *with_colon = realloc(text, n + 2);
    if (with_colon == NULL) {
        free(text);
        return NULL;
    }
    memcpy(with_colon + n, ":", 2);
    return with_colon;
}

static void slot_free(template_slot *slot)
{
    free(slot->name);
    for (size_t i = 0; i < slot->member_count; i++)
        free(slot->members[i]);
    free(slot->members);
    free(slot->text);
    free(slot->at);
    memset(slot, 0, sizeof *slot);
}

/* Records what the slot reads in the root's flags. */
static void note_slot(compiler *c, const template_slot *slot)
{
    if (slot->source != TEMPLATE_SOURCE_BODY)
        return;
    c->root->uses_body = true;
    if (slot->whole)
        c->root->body_use = TEMPLATE_BODY_WHOLE;
    else if (c->root->body_use == TEMPLATE_BODY_UNUSED)
        c->root->body_use = TEMPLATE_BODY_MEMBERS;
}

/* Moves *slot into a new item (the slot is zeroed). */
static int seq_add_slot(compiler *c, seq *s, template_slot *slot)
{
    if (seq_flush(c, s) != 0)
        return -1;
    template_item *item = seq_new_item(c, s);
    if (item == NULL)
        return -1;
    item->kind = TEMPLATE_ITEM_SLOT;
    item->slot = *slot;
    note_slot(c, slot);
    memset(slot, 0, sizeof *slot);
    return 0;
}

/* The current JSON path, from the root's label: "data", "data.user.id". */
static char *current_at(compiler *c)
{
    const char *text = cfg_path_text(c->where);
    size_t rest = c->where->length > c->root_length ? c->where->length - c->root_length : 0;
    size_t label = strlen(c->label);
    char *at = malloc(label + rest + 1);
    if (at == NULL)
        return NULL;
    memcpy(at, c->label, label);
    memcpy(at + label, text + c->where->length - rest, rest);
    at[label + rest] = '\0';
    return at;
}

/* The root's label: the last key of the path (`routes[1].data` -> data),
 * the whole path when it does not end in a plain key, "data" for none. */
static void set_label(compiler *c)
{
    const char *text = cfg_path_text(c->where);
    const char *dot = strrchr(text, '.');
    const char *last = dot != NULL ? dot + 1 : text;
    if (text[0] == '\0')
        last = "data";
    else if (strpbrk(last, "[]\"") != NULL)
        last = text;
    snprintf(c->label, sizeof c->label, "%s", last);
}

/* ---- references ------------------------------------------------------------ */

static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_token_char(char ch)
{
    return is_alpha(ch) || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* A reference being parsed: text[0..ref_end) is "$word.rest", then
 * ":conversion" up to end, then maybe '?'. */
typedef struct reference {
    const char *text;  /* the whole string */
    size_t length;     /* strlen(text) */
    size_t end;        /* without the final '?' */
    size_t ref_end;    /* before the ':' (or end) */
    size_t word_end;   /* after the source word */
} reference;

static string_kind nomem_string(compiler *c)
{
    compiler_nomem(c);
    return STRING_ERROR;
}

static string_kind fail_ref(compiler *c, const reference *r, const char *what)
{
    char shown[SHOWN_MAX + 4];
    compiler_fail(c, "\"%s\"%s", shown_text(shown, r->text, r->length), what);
    return STRING_ERROR;
}

static string_kind fail_unknown(compiler *c, const reference *r)
{
    char shown[SHOWN_MAX + 4], word[CFG_SUGGEST_MAX + 1], better[SHOWN_MAX + 4];
    shown_text(shown, r->text, r->length);
    size_t n = r->word_end - 1;
    const char *suggestion = NULL;
    if (n <= CFG_SUGGEST_MAX) {
        memcpy(word, r->text + 1, n);
        word[n] = '\0';
        suggestion = cfg_suggest(word, source_words, SOURCE_WORD_COUNT);
    }
    if (suggestion == NULL) {
        compiler_fail(c, "unknown template \"%s\"; a literal string starting with $ is "
                         "written \"$$...\"", shown);
        return STRING_ERROR;
    }
    snprintf(better, sizeof better, "$%s%.*s", suggestion,
             (int)(r->length - r->word_end > SHOWN_MAX ? SHOWN_MAX : r->length - r->word_end),
             r->text + r->word_end);
    compiler_fail(c, "unknown template \"%s\" (did you mean \"%s\"?); a literal string "
                     "starting with $ is written \"$$...\"", shown, better);
    return STRING_ERROR;
}

static bool parse_conversion(const char *text, size_t length, template_conversion *out)
{
    for (size_t i = TEMPLATE_CONVERT_INT; i <= TEMPLATE_CONVERT_JSON; i++) {
        if (strlen(conversion_names[i]) == length && memcmp(text, conversion_names[i], length) == 0) {
            *out = (template_conversion)i;
            return true;
        }
    }
    return false;
}

/* Splits p[0..n) (".a.b") into slot->members; every member non-empty. */
static string_kind split_members(compiler *c, const reference *r, const char *p, size_t n,
                                 template_slot *slot)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '.')
            continue;
        if (i + 1 == n || p[i + 1] == '.')
            return fail_ref(c, r, ": empty member name");
        count++;
    }
    slot->members = calloc(count, sizeof *slot->members);
    if (slot->members == NULL)
        return nomem_string(c);
    const char *member = p + 1, *end = p + n;
    while (member < end) {
        const char *dot = memchr(member, '.', (size_t)(end - member));
        const char *stop = dot != NULL ? dot : end;
        slot->members[slot->member_count] = strndup(member, (size_t)(stop - member));
        if (slot->members[slot->member_count] == NULL)
            return nomem_string(c);
        slot->member_count++;
        member = stop + 1;
    }
    return STRING_SLOT;
}

/* slot->name = p[0..n), which must be non-empty. */
static string_kind take_name(compiler *c, const reference *r, const char *p, size_t n,
                             template_slot *slot)
{
    if (n == 0)
        return fail_ref(c, r, " needs a name after the dot");
    slot->name = strndup(p, n);
    if (slot->name == NULL)
        return nomem_string(c);
    return STRING_SLOT;
}

static string_kind resolve_header(compiler *c, template_slot *slot)
{
    for (const char *p = slot->name; *p; p++) {
        if (!is_token_char(*p)) {
            char shown[SHOWN_MAX + 4];
            compiler_fail(c, "$header.%s is not a valid header name",
                          shown_text(shown, slot->name, strlen(slot->name)));
            return STRING_ERROR;
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
        char shown[SHOWN_MAX + 4];
        compiler_fail(c, "$path.%s is not a capture of %s",
                      shown_text(shown, slot->name, strlen(slot->name)), c->path->text);
        return STRING_ERROR;
    }
    slot->capture_index = (size_t)index;
    return STRING_SLOT;
}

/* $path alone: the capture names become the members. */
static string_kind whole_path(compiler *c, template_slot *slot)
{
    size_t count = c->path->capture_count;
    slot->whole = true;
    slot->members = calloc(count ? count : 1, sizeof *slot->members);
    if (slot->members == NULL)
        return nomem_string(c);
    for (size_t i = 0; i < count; i++) {
        slot->members[i] = strdup(route_path_capture(c->path, i)->text);
        if (slot->members[i] == NULL)
            return nomem_string(c);
        slot->member_count++;
    }
    return STRING_SLOT;
}

static string_kind parse_jwt(compiler *c, const reference *r, const char *rest, size_t n,
                             template_slot *slot)
{
    static const char claims[] = ".claims";
    size_t k = sizeof claims - 1;
    if (n == 0) {
        slot->whole = true;
        return STRING_SLOT;
    }
    if (n >= k && memcmp(rest, claims, k) == 0 && (n == k || rest[k] == '.')) {
        if (n == k || n == k + 1)
            return fail_ref(c, r, " needs a member path: $jwt.claims.a.b (all claims: $jwt)");
        return split_members(c, r, rest + k, n - k, slot);
    }
    if (memchr(rest + 1, '.', n - 1) != NULL)
        return fail_ref(c, r, ": a path into the claims is written $jwt.claims.a.b");
    if (n == 1)
        return fail_ref(c, r, " needs a name after the dot");
    return split_members(c, r, rest, n, slot);
}

/* The part after the source word: r->text[word_end..ref_end). */
static string_kind parse_rest(compiler *c, const reference *r, source_form form,
                              template_slot *slot)
{
    const char *rest = r->text + r->word_end;
    size_t n = r->ref_end - r->word_end;
    static const template_source sources[] = {
        [FORM_BODY] = TEMPLATE_SOURCE_BODY,     [FORM_PATH] = TEMPLATE_SOURCE_PATH,
        [FORM_QUERY] = TEMPLATE_SOURCE_QUERY,   [FORM_HEADER] = TEMPLATE_SOURCE_HEADER,
        [FORM_HEADERS] = TEMPLATE_SOURCE_HEADER, [FORM_JWT] = TEMPLATE_SOURCE_JWT,
        [FORM_CLIENT] = TEMPLATE_SOURCE_CLIENT_IP,
    };
    slot->source = sources[form];
    switch (form) {
    case FORM_BODY:
        slot->whole = n == 0;
        return n == 0 ? STRING_SLOT : split_members(c, r, rest, n, slot);
    case FORM_PATH:
        if (n == 0)
            return whole_path(c, slot);
        return take_name(c, r, rest + 1, n - 1, slot) == STRING_SLOT ? resolve_capture(c, slot)
                                                                     : STRING_ERROR;
    case FORM_QUERY:
        slot->whole = n == 0;
        return n == 0 ? STRING_SLOT : take_name(c, r, rest + 1, n - 1, slot);
    case FORM_HEADER:
        if (n == 0)
            return fail_ref(c, r, " needs a name: $header.NAME (every header: $headers)");
        return take_name(c, r, rest + 1, n - 1, slot) == STRING_SLOT ? resolve_header(c, slot)
                                                                     : STRING_ERROR;
    case FORM_HEADERS:
        if (n != 0)
            return fail_ref(c, r, ": $headers takes no name ($header.NAME is one header)");
        slot->whole = true;
        return STRING_SLOT;
    case FORM_JWT:
        return parse_jwt(c, r, rest, n, slot);
    case FORM_CLIENT:
        if (n != 3 || memcmp(rest, ".ip", 3) != 0)
            return fail_ref(c, r, " is not a template: the client's address is $client.ip");
        return STRING_SLOT;
    }
    return STRING_ERROR;
}

static string_kind parse_conversion_part(compiler *c, const reference *r, template_slot *slot)
{
    if (r->ref_end == r->end)
        return STRING_SLOT;
    const char *conversion = r->text + r->ref_end + 1;
    size_t n = r->end - r->ref_end - 1;
    if (!parse_conversion(conversion, n, &slot->conversion)) {
        char shown[SHOWN_MAX + 4];
        compiler_fail(c, "unknown conversion ':%s' (expected :int, :number, :bool or :json)",
                      shown_text(shown, conversion, n));
        return STRING_ERROR;
    }
    bool object_only = slot->whole && (slot->source == TEMPLATE_SOURCE_PATH ||
                                       slot->source == TEMPLATE_SOURCE_QUERY ||
                                       slot->source == TEMPLATE_SOURCE_HEADER);
    if (object_only)
        return fail_ref(c, r, ": an object of strings takes no conversion");
    return STRING_SLOT;
}

/* Parses a string that starts with '$' and a letter. */
static string_kind parse_reference(compiler *c, const char *text, template_slot *slot)
{
    reference r = {.text = text, .length = strlen(text)};
    r.end = r.length;
    slot->optional = text[r.end - 1] == '?';
    if (slot->optional)
        r.end--;
    const char *colon = memchr(text, ':', r.end);
    r.ref_end = colon != NULL ? (size_t)(colon - text) : r.end;
    if (r.ref_end > 0 && text[r.ref_end - 1] == '?')
        return fail_ref(c, &r, ": '?' goes last, after any conversion (\"$query.n:int?\")");
    r.word_end = 1;
    while (r.word_end < r.ref_end && text[r.word_end] != '.')
        r.word_end++;
    size_t word_length = r.word_end - 1;
    for (size_t form = 0; form < SOURCE_WORD_COUNT; form++) {
        if (strlen(source_words[form]) != word_length ||
            memcmp(source_words[form], text + 1, word_length) != 0)
            continue;
        string_kind kind = parse_rest(c, &r, (source_form)form, slot);
        return kind == STRING_SLOT ? parse_conversion_part(c, &r, slot) : kind;
    }
    return fail_unknown(c, &r);
}

static string_kind parse_string(compiler *c, const char *text, template_slot *slot)
{
    if (text[0] != '$')
        return STRING_LITERAL;
    if (text[1] == '$')
        return STRING_ESCAPED;
    if (!is_alpha(text[1]))
        return STRING_LITERAL;
    string_kind kind = parse_reference(c, text, slot);
    if (kind != STRING_SLOT)
        return kind;
    slot->text = strdup(text);
    slot->at = current_at(c);
    if (slot->text == NULL || slot->at == NULL)
        return nomem_string(c);
    return STRING_SLOT;
}

/* Only the first character of an optional reference is looked at here: the
 * rest is checked when it is compiled. */
static bool is_optional_reference(const json_t *value)
{
    if (!json_is_string(value))
        return false;
    const char *s = json_string_value(value);
    size_t n = strlen(s);
    return n >= 3 && s[0] == '$' && is_alpha(s[1]) && s[n - 1] == '?';
}

/* ---- the walk -------------------------------------------------------------- */

static int compile_value(compiler *c, seq *s, const json_t *value);

static int compile_string(compiler *c, seq *s, const json_t *value)
{
    template_slot slot = {0};
    const char *text = json_string_value(value);
    string_kind kind = parse_string(c, text, &slot);
    int rc = -1;
    if (kind == STRING_LITERAL) {
        rc = seq_append_encoded(c, s, value);
    } else if (kind == STRING_ESCAPED) {
        json_t *unescaped = json_string(text + 1);
        rc = unescaped != NULL ? seq_append_encoded(c, s, unescaped) : compiler_nomem(c);
        json_decref(unescaped);
    } else if (kind == STRING_SLOT) {
        rc = seq_add_slot(c, s, &slot);
    }
    slot_free(&slot);
    return rc;
}

/* Compiles `value` into a sequence of its own (an object member's value). */
static int compile_sequence(compiler *c, template *t, const json_t *value)
{
    seq s = {.t = t, .pending = BUF_INIT};
    int rc = compile_value(c, &s, value);
    if (rc == 0)
        rc = seq_flush(c, &s);
    buf_free(&s.pending);
    return rc;
}

static void object_free(template_object *o)
{
    if (o == NULL)
        return;
    for (size_t i = 0; i < o->member_count; i++) {
        free(o->members[i].key);
        free(o->members[i].key_json);
        template_free(&o->members[i].value);
    }
    free(o->members);
    free(o->by_key);
    for (size_t i = 0; i < o->spread_count; i++)
        slot_free(&o->spreads[i]);
    free(o->spreads);
    free(o);
}

/* True when a spread of this slot could find an object. */
static bool can_hold_object(const template_slot *slot)
{
    if (slot->conversion == TEMPLATE_CONVERT_JSON)
        return true;
    if (slot->conversion != TEMPLATE_CONVERT_NONE)
        return false;
    return slot->source == TEMPLATE_SOURCE_BODY || slot->source == TEMPLATE_SOURCE_JWT ||
           slot->whole;
}

/* One source of a spread: a reference string; `at` is the object's path. */
static int compile_spread_source(compiler *c, template_object *o, const json_t *value,
                                 const char *at)
{
    if (!json_is_string(value))
        return compiler_fail(c, "expected a template reference such as \"$body\" (\"...\" "
                                "merges the members of an object)");
    template_slot *slot = &o->spreads[o->spread_count];
    memset(slot, 0, sizeof *slot);
    const char *text = json_string_value(value);
    char shown[SHOWN_MAX + 4];
    string_kind kind = parse_string(c, text, slot);
    if (kind == STRING_ERROR) {
        slot_free(slot);
        return -1;
    }
    if (kind != STRING_SLOT)
        return compiler_fail(c, "\"%s\" is not a template reference (\"...\" merges the members "
                                "of an object such as \"$body\")",
                             shown_text(shown, text, strlen(text)));
    o->spread_count++;
    free(slot->at);
    slot->at = strdup(at);
    slot->spread = true;
    if (slot->at == NULL)
        return compiler_nomem(c);
    if (!can_hold_object(slot))
        return compiler_fail(c, "\"%s\" cannot hold an object to spread (spread $body..., "
                                "$jwt..., $path, $query, $headers, or a value with :json)",
                             shown_text(shown, text, strlen(text)));
    note_slot(c, slot);
    return 0;
}

/* The value of a "..." member: one reference or an array of them. */
static int compile_spreads(compiler *c, template_object *o, const json_t *value, const char *at)
{
    size_t count = json_is_array(value) ? json_array_size(value) : 1;
    if (json_is_array(value) && count == 0)
        return compiler_fail(c, "expected at least one template reference to spread");
    o->spreads = calloc(count, sizeof *o->spreads);
    if (o->spreads == NULL)
        return compiler_nomem(c);
    if (!json_is_array(value))
        return compile_spread_source(c, o, value, at);
    for (size_t i = 0; i < count; i++) {
        size_t mark = cfg_path_push_index(c->where, i);
        if (compile_spread_source(c, o, json_array_get(value, i), at) != 0)
            return -1;
        cfg_path_pop(c->where, mark);
    }
    return 0;
}

static int compile_member(compiler *c, template_member *m, const char *key, const json_t *value)
{
    m->key = strdup(key);
    m->key_json = encode_key(key);
    if (m->key == NULL || m->key_json == NULL)
        return compiler_nomem(c);
    m->key_length = strlen(key);
    m->key_json_length = strlen(m->key_json);
    if (compile_sequence(c, &m->value, value) != 0)
        return -1;
    m->optional = m->value.count == 1 && m->value.items[0].kind == TEMPLATE_ITEM_SLOT &&
                  m->value.items[0].slot.optional;
    return 0;
}

static int compare_members(const void *a, const void *b)
{
    const template_member *x = *(const template_member *const *)a;
    const template_member *y = *(const template_member *const *)b;
    size_t n = x->key_length < y->key_length ? x->key_length : y->key_length;
    int order = memcmp(x->key, y->key, n);
    if (order != 0)
        return order;
    return (x->key_length > y->key_length) - (x->key_length < y->key_length);
}

static int sort_members(compiler *c, template_object *o)
{
    size_t n = o->member_count;
    const template_member **sorted = malloc((n ? n : 1) * sizeof *sorted);
    o->by_key = malloc((n ? n : 1) * sizeof *o->by_key);
    if (sorted == NULL || o->by_key == NULL) {
        free(sorted);
        return compiler_nomem(c);
    }
    for (size_t i = 0; i < n; i++)
        sorted[i] = &o->members[i];
    qsort(sorted, n, sizeof *sorted, compare_members);
    for (size_t i = 0; i < n; i++)
        o->by_key[i] = (size_t)(sorted[i] - o->members);
    free(sorted);
    return 0;
}

static int fill_object(compiler *c, template_object *o, const json_t *object, const char *at)
{
    const char *key;
    json_t *member;
    o->members = calloc(json_object_size(object), sizeof *o->members);
    if (o->members == NULL)
        return compiler_nomem(c);
    json_object_foreach ((json_t *)object, key, member) {
        size_t mark = cfg_path_push_key(c->where, key);
        int rc = strcmp(key, SPREAD_KEY) == 0
                     ? compile_spreads(c, o, member, at)
                     : compile_member(c, &o->members[o->member_count++], key, member);
        if (rc != 0)
            return -1;
        cfg_path_pop(c->where, mark);
    }
    return sort_members(c, o);
}

/* An object with a spread or an optional member: an OBJECT item. */
static int compile_dynamic_object(compiler *c, seq *s, const json_t *object)
{
    template_object *o = calloc(1, sizeof *o);
    char *at = current_at(c);
    int rc = o != NULL && at != NULL ? fill_object(c, o, object, at) : compiler_nomem(c);
    free(at);
    template_item *item = rc == 0 && seq_flush(c, s) == 0 ? seq_new_item(c, s) : NULL;
    if (item == NULL) {
        object_free(o);
        return -1;
    }
    item->kind = TEMPLATE_ITEM_OBJECT;
    item->object = o;
    return 0;
}

static bool is_dynamic_object(const json_t *object)
{
    const char *key;
    json_t *member;
    json_object_foreach ((json_t *)object, key, member) {
        if (strcmp(key, SPREAD_KEY) == 0 || is_optional_reference(member))
            return true;
    }
    return false;
}

static int compile_object(compiler *c, seq *s, const json_t *object)
{
    if (is_dynamic_object(object))
        return compile_dynamic_object(c, s, object);
    const char *key;
    json_t *member;
    bool first = true;
    if (seq_append(c, s, "{") != 0)
        return -1;
    json_object_foreach ((json_t *)object, key, member) {
        char *key_json = encode_key(key);
        if (key_json == NULL)
            return compiler_nomem(c);
        int rc = seq_append(c, s, first ? "" : ",");
        if (rc == 0)
            rc = seq_append(c, s, key_json);
        free(key_json);
        if (rc != 0)
            return -1;
        first = false;
        size_t mark = cfg_path_push_key(c->where, key);
        if (compile_value(c, s, member) != 0)
            return -1;
        cfg_path_pop(c->where, mark);
    }
    return seq_append(c, s, "}");
}

static int compile_array(compiler *c, seq *s, const json_t *array)
{
    size_t index;
    json_t *element;
    if (seq_append(c, s, "[") != 0)
        return -1;
    json_array_foreach (array, index, element) {
        if (index > 0 && seq_append(c, s, ",") != 0)
            return -1;
        size_t mark = cfg_path_push_index(c->where, index);
        if (compile_value(c, s, element) != 0)
            return -1;
        cfg_path_pop(c->where, mark);
    }
    return seq_append(c, s, "]");
}

static int compile_value(compiler *c, seq *s, const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT:
        return compile_object(c, s, value);
    case JSON_ARRAY:
        return compile_array(c, s, value);
    case JSON_STRING:
        return compile_string(c, s, value);
    default:
        return seq_append_encoded(c, s, value);
    }
}

int template_compile(const json_t *value, const route_path *path, cfg_path *where,
                     template *out, char *error, size_t error_size)
{
    compiler c = {
        .path = path, .where = where, .root = out, .root_length = where->length,
        .error = error, .error_size = error_size,
    };
    set_label(&c);
    memset(out, 0, sizeof *out);
    int rc = compile_sequence(&c, out, value);
    if (rc != 0)
        template_free(out);
    return rc;
}

void template_free(template *t)
{
    for (size_t i = 0; i < t->count; i++) {
        free(t->items[i].literal);
        slot_free(&t->items[i].slot);
        object_free(t->items[i].object);
    }
    free(t->items);
    memset(t, 0, sizeof *t);
}

bool template_is_literal(const template *t)
{
    return t->count == 1 && t->items[0].kind == TEMPLATE_ITEM_LITERAL;
}

/* ---- introspection --------------------------------------------------------- */

static int each_in_object(const template_object *o, template_visit_fn *visit, void *context)
{
    for (size_t i = 0; i < o->member_count; i++) {
        int rc = template_each_slot(&o->members[i].value, visit, context);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < o->spread_count; i++) {
        int rc = visit(context, &o->spreads[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int template_each_slot(const template *t, template_visit_fn *visit, void *context)
{
    for (size_t i = 0; i < t->count; i++) {
        const template_item *item = &t->items[i];
        int rc = 0;
        if (item->kind == TEMPLATE_ITEM_SLOT)
            rc = visit(context, &item->slot);
        else if (item->kind == TEMPLATE_ITEM_OBJECT)
            rc = each_in_object(item->object, visit, context);
        if (rc != 0)
            return rc;
    }
    return 0;
}
