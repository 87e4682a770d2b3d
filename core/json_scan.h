/*
 * json_scan: validates JSON text (RFC 8259) and locates values in it by byte
 * span, without building a tree or converting anything.
 *
 * Why not jansson: what the gateway only forwards (request bodies, reply
 * values) must travel byte-exact, and jansson rejects or rewrites legal JSON
 * that Node writes: integers beyond 64 bits, "\u0000", lone-surrogate escapes
 * such as "\ud800", and doubles it prints back with 17 digits. This scanner
 * accepts all of those (they are legal JSON text) and only reports where
 * values are. Strings must be valid UTF-8; control characters must be
 * escaped; nesting is bounded by JSCAN_MAX_DEPTH.
 *
 * Spans returned point into the caller's text and live as long as it does.
 */
#ifndef PG_CORE_JSON_SCAN_H
#define PG_CORE_JSON_SCAN_H

#include <stddef.h>

#include "core/buf.h"

#define JSCAN_MAX_DEPTH 512

typedef enum jscan_type {
    JSCAN_INVALID = 0,
    JSCAN_NULL,
    JSCAN_FALSE,
    JSCAN_TRUE,
    JSCAN_NUMBER,
    JSCAN_STRING,
    JSCAN_ARRAY,
    JSCAN_OBJECT,
} jscan_type_t;

/* Where and why a text is not JSON. `what` is a static string. */
typedef struct jscan_error {
    size_t offset;
    const char *what;
} jscan_error_t;

/*
 * Scans one value starting at text[*pos] (leading whitespace skipped) and
 * validates it entirely. On success sets *value to its bytes (no surrounding
 * whitespace), advances *pos just past it and returns 0. On failure returns
 * -1 and fills *err (err may be NULL).
 */
int jscan_value(const char *text, size_t n, size_t *pos, span_t *value, jscan_error_t *err);

/* Like jscan_value, but the whole text must be one value plus whitespace. */
int jscan_document(const char *text, size_t n, span_t *value, jscan_error_t *err);

/* Type of a valid value, from its first byte. */
jscan_type_t jscan_type_of(span_t value);

/*
 * Iterates over the members of an object, validating as it goes, so that a
 * single pass both checks and reads it. Init with the text and the offset of
 * the '{' (which must be there); each next() returns 1 with the member's key
 * (the string token, quotes included) and value, 0 after the closing '}'
 * (then it->pos is just past it), or -1 with it->err filled.
 */
typedef struct jscan_members {
    const char *text;
    size_t n;
    size_t pos;
    int state; /* 0: before the first member, 1: after a member, 2: done */
    jscan_error_t err;
} jscan_members_t;

void jscan_members_init(jscan_members_t *it, const char *text, size_t n, size_t open_pos);
int jscan_members_next(jscan_members_t *it, span_t *key, span_t *value);

/*
 * Finds the member `key` of a valid object (the last one when repeated, as
 * JSON.parse does). Keys are compared after unescaping. Returns 1 and sets
 * *value, or 0 when absent.
 */
int jscan_member(span_t object, const char *key, span_t *value);

/* 1 when a string token (quotes included) unescapes to exactly s[0..n). */
int jscan_string_eq(span_t token, const char *s, size_t n);

/*
 * Unescapes a valid string token (quotes included, as jscan_value() or
 * jscan_member() hand it out) and appends its content to *out. Escapes
 * become UTF-8; a surrogate pair becomes one 4-byte sequence. The result is
 * what JSON.parse() would hold, in bytes, so it need not be valid UTF-8 or
 * free of NULs: "\u0000" gives a NUL byte, and a lone surrogate escape
 * ("\ud800") gives its 3-byte form (ED A0 80), which utf8_valid() rejects.
 * Returns 0, or -ENOMEM with *out unchanged; a token that does not start
 * with '"' appends nothing and returns 0 (the span must be a valid token).
 */
int jscan_string_decode(span_t token, buf_t *out);

/*
 * JavaScript truthiness of a valid value: false for null, false, "", and
 * numbers whose digits are all zero; true for everything else. (A literal
 * that only underflows to zero, like 1e-400, counts as true.)
 */
int jscan_truthy(span_t value);

/* Writes "what at byte N" into out. */
void jscan_error_format(const jscan_error_t *err, char *out, size_t outlen);

#endif
