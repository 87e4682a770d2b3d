/*
 * template: a route's `data` template, compiled once at config load into a
 * flat list of items that the gateway renders without jansson:
 *
 *     for each item:
 *         LITERAL -> append literal[0..literal_length) (compact JSON text)
 *         SLOT    -> append the slot's value, converted (see SPEC.md)
 *
 * e.g. {"id":"$path.id:int","full":"$query.full:bool"} compiles to
 *     LITERAL `{"id":`, SLOT(path id, int), LITERAL `,"full":`,
 *     SLOT(query full, bool), LITERAL `}`
 * Adjacent literal text is merged, so items alternate at best; a template
 * with no slot is a single LITERAL item.
 *
 * Which strings are slots: a JSON string value (never an object key) that is
 * exactly a reference, optionally followed by one conversion:
 *     $body | $body.M1.M2... | $path.NAME | $query.NAME | $header.NAME
 *     then optionally :int | :number | :bool | :json
 * Body member names are non-empty and hold no '.' or ':'; the NAME of the
 * others is non-empty and holds no ':'. A string that does not have this
 * shape is literal, even when it starts with '$' ("$foo", "$body.",
 * "$path.", "$bodyx"). Errors (config errors, not literals) are:
 *   - a reference followed by an unknown conversion ("$path.id:integer"),
 *   - $path.NAME where NAME is not a capture of the route's path,
 *   - $header.NAME where NAME is not an HTTP token (RFC 9110).
 *
 * Literal JSON text is jansson's compact encoding of the value (object
 * members in file order, reals with 17 significant digits).
 *
 * Ownership: a template owns its items, their literal text and slot names;
 * release it with template_free(). Nothing in it refers to jansson.
 */
#ifndef PG_CONFIG_TEMPLATE_H
#define PG_CONFIG_TEMPLATE_H

#include "config/cfg_path.h"
#include "config/route_path.h"

#include <stdbool.h>
#include <stddef.h>

struct json_t;

typedef enum template_source {
    TEMPLATE_SOURCE_BODY,   /* the request body as JSON, or a member of it */
    TEMPLATE_SOURCE_PATH,   /* a path capture, a string */
    TEMPLATE_SOURCE_QUERY,  /* a query parameter (the first), a string */
    TEMPLATE_SOURCE_HEADER, /* a request header, a string */
} template_source;

typedef enum template_conversion {
    TEMPLATE_CONVERT_NONE,   /* body: the JSON as is; others: a JSON string */
    TEMPLATE_CONVERT_INT,    /* a decimal int64 */
    TEMPLATE_CONVERT_NUMBER, /* a finite number */
    TEMPLATE_CONVERT_BOOL,   /* true or false only */
    TEMPLATE_CONVERT_JSON,   /* any JSON text */
} template_conversion;

typedef struct template_slot {
    template_source source;
    template_conversion conversion;
    /* PATH: the capture name; QUERY: the parameter name as written;
     * HEADER: the header name, lowercased; BODY: NULL. */
    char *name;
    /* PATH: the capture's position (route_path_capture_index()). */
    size_t capture_index;
    /* BODY: the member path, outermost first ("$body.a.b" -> "a", "b");
     * member_count 0 means the whole body. */
    char **members;
    size_t member_count;
} template_slot;

typedef enum template_item_kind {
    TEMPLATE_ITEM_LITERAL,
    TEMPLATE_ITEM_SLOT,
} template_item_kind;

typedef struct template_item {
    template_item_kind kind;
    char *literal;         /* LITERAL: NUL-terminated JSON text; else NULL */
    size_t literal_length; /* LITERAL: strlen(literal) */
    template_slot slot;    /* SLOT only */
} template_item;

typedef struct template {
    template_item *items; /* `count` items, count >= 1 after a compile */
    size_t count;
    bool uses_body;       /* some slot reads $body: parse the body as JSON */
} template;

/*
 * Compiles `value` (any JSON) for a route whose path is `path`. `where` is
 * the JSON path of `value` (e.g. "routes[1].data"); it is extended while
 * compiling and, on failure, left naming the offending value.
 * Returns 0 with *out filled (release with template_free()), or -1 with
 * *out zeroed and a one-line reason without the path in error[error_size]
 * (e.g. "$path.uid is not a capture of /users/:id", "out of memory").
 * `value` is only read.
 */
int template_compile(const struct json_t *value, const route_path *path, cfg_path *where,
                     template *out, char *error, size_t error_size);

/* Releases what *t owns and zeroes it; a zeroed template is fine. */
void template_free(template *t);

/* True when the template is one literal (no slot): render it as is. */
bool template_is_literal(const template *t);

/* Encodes `value` (any JSON) as literals are encoded: compact, reals with 17
 * significant digits. Returns a new string to free(), or NULL when out of
 * memory. */
char *template_encode_json(const struct json_t *value);

/* "int", "number", "bool", "json", or "" for TEMPLATE_CONVERT_NONE. */
const char *template_conversion_name(template_conversion conversion);

#endif
