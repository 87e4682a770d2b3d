/*
 * template: a route's `data` template (SPEC.md "Templates" and "Route
 * mapping for real REST APIs"), compiled once at config load into a
 * structure that the gateway renders without jansson (gateway/render.h).
 *
 * The compiled structure is a sequence of items:
 *
 *     LITERAL   compact JSON text, appended as is
 *     SLOT      one reference, replaced by its value per request
 *     OBJECT    an object whose members are only known per request: it has
 *               a spread ("...") or an optional member ("$x?"); holds its
 *               written members (each value a nested sequence) and its
 *               spread sources
 *
 * Everything that is the same for every request stays flat text: an object
 * with neither spread nor optional member, and every array, compiles into
 * the enclosing sequence, e.g. {"id":"$path.id:int","tags":["a","$query.t"]}:
 *
 *     LITERAL `{"id":`, SLOT(path id, int), LITERAL `,"tags":["a",`,
 *     SLOT(query t), LITERAL `]}`
 *
 * and {"...":"$body","id":"$path.id:int","note":{"x":"$query.x?"}}:
 *
 *     OBJECT  members: "id"   -> [SLOT(path id, int)]
 *                      "note" -> [OBJECT members: "x" -> [SLOT(query x, ?)]]
 *             spreads: SLOT(body, whole, spread)
 *
 * Adjacent literal text is merged, so a sequence never holds two literals
 * in a row, and a template without any slot is a single LITERAL item.
 *
 * Which strings are references (object keys never are). A string that
 * starts with `$` followed by an ASCII letter must be one of:
 *
 *     $body  $body.M1.M2...          the body, or a member path into it
 *     $path  $path.NAME              all captures (an object), or one
 *     $query $query.NAME             all parameters (an object), or one
 *     $headers $header.NAME          all headers (an object), or one
 *     $jwt  $jwt.NAME  $jwt.claims.M1.M2...
 *                                    all claims, a top-level claim, a
 *                                    member path into the claims
 *     $client.ip                     the client's address
 *
 * then optionally a conversion (:int, :number, :bool, :json), then
 * optionally `?` (optional). Member names are non-empty and hold no '.' or
 * ':'; the NAME of path, query and header holds no ':'; a jwt NAME no '.'
 * or ':' and is not `claims`. Anything else starting with `$` + letter is a
 * config error ("$qeury.id", "$Body", "$header"), naming the string's JSON
 * path. "$$..." is the literal string with one '$' less; any other string
 * (not starting with '$', or '$' then no letter: "$", "$1") is literal.
 * Also config errors: an unknown conversion, $path.NAME that is not a
 * capture of the route, $header.NAME that is not an HTTP token, a
 * conversion on $path, $query or $headers, and a NAME or member that ends
 * in '?' before the conversion ("$query.n?:int").
 *
 * Spread: a member with the key "..." in an object template; its value is
 * one reference, or an array of them, merged in order (a later spread wins
 * over an earlier one; written members win over every spread, except an
 * optional member that is absent). The reference must be able to hold an
 * object: $body..., $jwt..., $path, $query, $headers, or any reference
 * with :json; otherwise (e.g. "$path.id", "$query.n:int") a config error.
 *
 * Optional: a slot ending in `?`. A member of an object whose value is an
 * optional slot is left out when the value is absent; elsewhere (array
 * element, the whole template, a spread) `?` changes nothing.
 *
 * Literal JSON text is jansson's compact encoding of the value (object
 * members in file order, reals with 17 significant digits).
 *
 * Ownership: a template owns its items, their literal text, slots, objects
 * and everything in them; release it with template_free(). Nothing in it
 * refers to jansson. A compiled template never changes, so several threads
 * may read it at once.
 */
#ifndef PG_CONFIG_TEMPLATE_H
#define PG_CONFIG_TEMPLATE_H

#include "config/cfg_path.h"
#include "config/route_path.h"

#include <stdbool.h>
#include <stddef.h>

struct json_t;

typedef enum template_source {
    TEMPLATE_SOURCE_BODY,      /* the request body ($body, $body.a.b) */
    TEMPLATE_SOURCE_PATH,      /* path captures, strings ($path.NAME, $path) */
    TEMPLATE_SOURCE_QUERY,     /* query parameters, strings ($query.NAME, $query) */
    TEMPLATE_SOURCE_HEADER,    /* request headers, strings ($header.NAME, $headers) */
    TEMPLATE_SOURCE_JWT,       /* the token's claims ($jwt, $jwt.NAME, $jwt.claims.a.b) */
    TEMPLATE_SOURCE_CLIENT_IP, /* the client's address, a string ($client.ip) */
} template_source;

typedef enum template_conversion {
    TEMPLATE_CONVERT_NONE,   /* body, jwt: the JSON as is; others: a JSON string */
    TEMPLATE_CONVERT_INT,    /* a decimal int64 */
    TEMPLATE_CONVERT_NUMBER, /* a finite number */
    TEMPLATE_CONVERT_BOOL,   /* true or false only */
    TEMPLATE_CONVERT_JSON,   /* any JSON text */
} template_conversion;

typedef struct template_slot {
    template_source source;
    template_conversion conversion;
    bool optional;  /* written with a final '?' */
    bool whole;     /* the whole source: $body, $path, $query, $headers, $jwt
                       (path, query and headers then give an object of
                       strings; CLIENT_IP is never whole) */
    bool spread;    /* the value of a "..." member */
    /* PATH, QUERY, HEADER and not whole: the capture, parameter (as
     * written) or header (lowercased) name; else NULL. */
    char *name;
    /* PATH and not whole: the capture's position (route_path_capture_index()). */
    size_t capture_index;
    /* BODY, JWT: the member path, outermost first ("$body.a.b" -> "a", "b";
     * "$jwt.sub" -> "sub"; "$jwt.claims.a.b" -> "a", "b"); none when whole.
     * PATH whole: the route's capture names, in capture order. */
    char **members;
    size_t member_count;
    /* The reference as written, e.g. "$query.limit:int?". */
    char *text;
    /* Where the value goes, as a JSON path from the template's root (named
     * after the last key of the `where` given to template_compile, e.g.
     * "data", "data.user.id", "data.tags[1]"); for a spread, the object it
     * merges into. */
    char *at;
} template_slot;

typedef enum template_item_kind {
    TEMPLATE_ITEM_LITERAL,
    TEMPLATE_ITEM_SLOT,
    TEMPLATE_ITEM_OBJECT,
} template_item_kind;

/* How a template reads the body (for the body check and for describing the
 * route: a request body in OpenAPI). */
typedef enum template_body_use {
    TEMPLATE_BODY_UNUSED,  /* no slot reads the body */
    TEMPLATE_BODY_MEMBERS, /* only members of it ($body.a, "...": "$body.a") */
    TEMPLATE_BODY_WHOLE,   /* the whole body ($body, "...": "$body") */
} template_body_use;

typedef struct template_object template_object;

typedef struct template_item {
    template_item_kind kind;
    char *literal;           /* LITERAL: NUL-terminated JSON text; else NULL */
    size_t literal_length;   /* LITERAL: strlen(literal) */
    template_slot slot;      /* SLOT only */
    template_object *object; /* OBJECT only; else NULL */
} template_item;

typedef struct template {
    template_item *items; /* `count` items, count >= 1 after a compile */
    size_t count;
    /* Set on the template given to template_compile (not on the nested
     * sequences of object members): */
    bool uses_body;       /* some slot reads the body: check it first */
    template_body_use body_use;
} template;

typedef struct template_member {
    char *key;            /* the member's name (NUL-terminated, UTF-8) */
    size_t key_length;    /* strlen(key) */
    char *key_json;       /* the name as compact JSON text, then ':' */
    size_t key_json_length;
    bool optional;        /* the value is one optional slot: the member is
                             left out when that value is absent */
    template value;       /* the value, a sequence of its own */
} template_member;

struct template_object {
    template_member *members; /* the written members, in file order */
    size_t member_count;
    /* members' indices sorted by key (bytes, then length): spreads look
     * written keys up in it */
    size_t *by_key;
    template_slot *spreads;   /* the "..." sources, in order (spread set) */
    size_t spread_count;
};

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

/*
 * Visits every slot of the template, depth first in file order (within an
 * object: its written members, then its spreads), for tools that describe
 * a route from the structure the gateway runs (OpenAPI parameters: source,
 * name, conversion, optional; slot->at says where the value goes). Stops
 * at the first non-zero return of `visit` and returns it; 0 when every
 * slot was visited.
 */
typedef int template_visit_fn(void *context, const template_slot *slot);
int template_each_slot(const template *t, template_visit_fn *visit, void *context);

/* Encodes `value` (any JSON) as literals are encoded: compact, reals with 17
 * significant digits. Returns a new string to free(), or NULL when out of
 * memory. */
char *template_encode_json(const struct json_t *value);

/* "int", "number", "bool", "json", or "" for TEMPLATE_CONVERT_NONE. */
const char *template_conversion_name(template_conversion conversion);

#endif
