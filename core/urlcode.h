/*
 * urlcode: percent-decoding of request paths and query strings (RFC 3986
 * percent-encoding; application/x-www-form-urlencoded for queries), and the
 * lookup of one query parameter in a raw query string.
 *
 * Two modes:
 *   URLCODE_PATH   one path segment: `%XX` is decoded, everything else
 *                  (including '+') is copied as is;
 *   URLCODE_QUERY  a query parameter name or value: `%XX` is decoded and '+'
 *                  means a space.
 * `%` must be followed by two hex digits (either case), else the text is
 * invalid (URLCODE_BAD_ESCAPE: "%zz", "%4", "%" at the end). `%00` is
 * invalid too (URLCODE_NUL): nothing downstream can carry a NUL byte.
 *
 * The result is bytes, not necessarily UTF-8 ("%ff" decodes to one byte
 * 0xff): callers that need text check it themselves. Decoding never makes
 * text longer, so n bytes of output room always suffice.
 *
 * Nothing here allocates except the buf_t variants, which grow the caller's
 * buffer. All functions are pure and thread-safe.
 */
#ifndef PG_CORE_URLCODE_H
#define PG_CORE_URLCODE_H

#include <stddef.h>

#include "core/buf.h"

typedef enum urlcode_status {
    URLCODE_OK = 0,
    URLCODE_BAD_ESCAPE = -1, /* '%' not followed by two hex digits */
    URLCODE_NUL = -2,        /* "%00" */
    URLCODE_NOMEM = -3,      /* a buf_t could not grow */
} urlcode_status;

typedef enum urlcode_mode {
    URLCODE_PATH,  /* %XX only; '+' stays '+' */
    URLCODE_QUERY, /* %XX, and '+' is a space */
} urlcode_mode;

/*
 * Decodes s[0..n) into out, which has room for n bytes; out may be s itself
 * (decoding in place). Returns URLCODE_OK with *out_len set, or
 * URLCODE_BAD_ESCAPE / URLCODE_NUL; out then holds garbage and *out_len is
 * untouched (urlcode_check() tells where the fault is).
 */
urlcode_status urlcode_decode(const char *s, size_t n, urlcode_mode mode, char *out,
                              size_t *out_len);

/*
 * Same, appending the decoded bytes to *out. On any failure *out is left as
 * it was (same len; its capacity may have grown).
 */
urlcode_status urlcode_decode_buf(const char *s, size_t n, urlcode_mode mode, buf_t *out);

/*
 * Checks the escapes of s[0..n) (the same in both modes). Returns URLCODE_OK,
 * or the fault with *offset (may be NULL) set to the position of its '%'.
 */
urlcode_status urlcode_check(const char *s, size_t n, size_t *offset);

/*
 * Looks parameter `name[0..name_len)` (decoded text) up in a raw query string
 * query[0..n), the text after '?' still encoded, e.g. "a=1&b=x%20y&a=2&flag".
 * Parameters are separated by '&' (empty ones are skipped); a parameter is
 * NAME=VALUE, or NAME alone, which has the value "". Names and values are
 * decoded in URLCODE_QUERY mode.
 *
 * Finds the first parameter whose decoded name equals `name` (a parameter
 * whose name cannot be decoded equals nothing and is skipped) and appends its
 * decoded value to *value. Returns 1 when found, 0 when absent (*value
 * untouched), or a negative urlcode_status when the value found cannot be
 * decoded or *value cannot grow (*value unchanged). Does not allocate except
 * to grow *value.
 */
int urlcode_query_get(const char *query, size_t n, const char *name, size_t name_len,
                      buf_t *value);

/*
 * Iterates the parameters of a raw query string or form body, s[0..n):
 * parameters are separated by '&' (empty ones are skipped); a parameter is
 * NAME=VALUE, or NAME alone (value ""). Names and values are handed out
 * still encoded (decode them in URLCODE_QUERY mode), as spans into s.
 */
typedef struct urlcode_pairs {
    const char *s;
    size_t n;
    size_t pos;
} urlcode_pairs;

void urlcode_pairs_init(urlcode_pairs *it, const char *s, size_t n);

/* The next parameter: 1 with *name, *value and *offset (where the parameter
 * starts in s), or 0 after the last. */
int urlcode_pairs_next(urlcode_pairs *it, span_t *name, span_t *value, size_t *offset);

/* A short static description: "invalid percent-encoding", "%00 (NUL) is not
 * allowed", "out of memory", "ok". */
const char *urlcode_status_text(urlcode_status status);

#endif
