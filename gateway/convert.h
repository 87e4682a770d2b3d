/*
 * convert: the conversions of a template slot (`:int`, `:number`, `:bool`,
 * `:json`; config/template.h) applied to one text, appending the JSON they
 * write. Pure functions: no allocation but the output's growth.
 *
 *   :int     optional '-' and decimal digits only, within int64; written
 *            normalized ("007" -> 7, "-0" -> 0);
 *   :number  JSON number syntax, finite as a double (1e400 is not: the
 *            limit is the exact midpoint between DBL_MAX and 2^1024, which
 *            rounds to infinity); written as given ("1.50", "1e2");
 *   :bool    exactly "true" or "false";
 *   :json    one JSON text (valid UTF-8, json_scan rules), written as
 *            given minus the whitespace around it.
 */
#ifndef PG_GATEWAY_CONVERT_H
#define PG_GATEWAY_CONVERT_H

#include <stddef.h>

#include "config/template.h"
#include "core/buf.h"

/*
 * Appends the conversion of `text` to *out. Returns 0; -1 when the text
 * does not fit, with what was expected in expected[size] ("a decimal
 * integer", "a decimal integer in the int64 range", "a finite number",
 * "true or false", or for :json "a JSON text: unexpected character at
 * byte 0"), *out unchanged; or -ENOMEM. TEMPLATE_CONVERT_NONE appends
 * nothing and returns 0.
 */
int convert_text(template_conversion conversion, span_t text, buf_t *out, char *expected,
                 size_t size);

#endif
