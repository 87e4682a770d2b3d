/*
 * merge: writing JSON object members that come from several places, each
 * key once (gateway/render.h: spreads, and the objects made of query
 * parameters, headers or a form body).
 *
 * Members are added in order, either from JSON objects (key and value
 * written as they are in the object's text: byte-exact) or as strings
 * (name and value bytes, copied, written as JSON strings). Keys are
 * compared by their bytes once unescaped ("\u0069d" equals "id"), so a key
 * is written once whatever its spelling. merge_write() writes each distinct
 * key at the place of its first occurrence, with the value that the rule
 * picks among its occurrences:
 *
 *   MERGE_LAST          the last one (JSON.parse, JavaScript's spread);
 *   MERGE_FIRST         the first one;
 *   MERGE_JOIN_HEADERS  string values joined in order with ", " (RFC 9110
 *                       §5.3), with "; " for `cookie`.
 *
 * Cost: O(n log n) comparisons for n members (a stable merge sort of
 * their keys), memory O(n) plus the copied strings; nothing is quadratic in
 * members an attacker controls.
 *
 * Ownership: a merge_t owns its entries and copies; spans added with
 * merge_add_object() are borrowed and must stay valid until merge_write()
 * returns. Not thread-safe; one per renderer.
 */
#ifndef PG_GATEWAY_MERGE_H
#define PG_GATEWAY_MERGE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

typedef enum merge_rule {
    MERGE_LAST,
    MERGE_FIRST,
    MERGE_JOIN_HEADERS,
} merge_rule;

typedef struct merge {
    buf_t entries; /* merge_entry[] (merge.c) */
    buf_t text;    /* unescaped keys and copied strings */
    buf_t order;   /* size_t[2n]: sorting */
    size_t count;
} merge_t;

#define MERGE_INIT { BUF_INIT, BUF_INIT, BUF_INIT, 0 }

/* Forgets the members, keeping the memory. */
void merge_clear(merge_t *m);

/* Releases the memory; the merge is then empty and reusable. */
void merge_free(merge_t *m);

/*
 * Adds every member of `object`, the text of a valid JSON object (checked
 * by core/json_scan.h before). 0, or -ENOMEM.
 */
int merge_add_object(merge_t *m, span_t object);

/*
 * Adds a member whose name and value are strings (bytes, copied; written as
 * JSON strings, invalid UTF-8 as U+FFFD). With `lowercase`, ASCII letters
 * of the name are lowercased. 0, or -ENOMEM.
 */
int merge_add_string(merge_t *m, span_t name, span_t value, bool lowercase);

/*
 * Decides, for a key about to be written, whether to leave it out (true).
 * `key` is its unescaped bytes.
 */
typedef bool merge_skip_fn(void *context, span_t key);

/*
 * Appends the members (not the braces) to *out as described above, each
 * preceded by ',' unless *first is true (then it is cleared after the first
 * member). Keys for which skip() (may be NULL) says true are left out.
 * 0, or -ENOMEM (*out then holds part of the members).
 */
int merge_write(merge_t *m, merge_rule rule, merge_skip_fn *skip, void *context, bool *first,
                buf_t *out);

#endif
