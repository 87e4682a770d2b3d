/*
 * json_write: appending JSON text that the gateway makes itself (error
 * bodies, strings taken from HTTP requests or the command line). Values it
 * only forwards are never re-encoded (see json_scan.h).
 */
#ifndef PG_CORE_JSON_WRITE_H
#define PG_CORE_JSON_WRITE_H

#include "core/buf.h"

/*
 * Appends s[0..n) as a JSON string: quotes added; '"', '\\' and control
 * characters escaped; other bytes copied, so valid UTF-8 stays as it is.
 * Invalid UTF-8 sequences become U+FFFD, so the output is always valid JSON
 * in valid UTF-8. 0, or -ENOMEM.
 */
int json_append_string(buf_t *out, const char *s, size_t n);

#endif
