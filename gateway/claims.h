/*
 * claims: reading the claims of a verified token (the JSON object text
 * that jwt_verify() hands out) for the edge policy (SPEC.md "Edge policy
 * for the ingress direction"): a route's require_claims, the claims
 * forwarded in the packet metadata (auth.jwt.forward_claims), and a claim
 * as text (a rate limit's $jwt key). A pure module over core/json_scan.h:
 * no I/O, no global state, no allocation but in the buffers it is given.
 *
 * The claims must be a valid JSON object (jwt.h guarantees it); a repeated
 * member counts as its last occurrence, as with JSON.parse. Spans handed
 * out point into the claims text.
 */
#ifndef PG_GATEWAY_CLAIMS_H
#define PG_GATEWAY_CLAIMS_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "core/buf.h"

/* The longest member name looked up along a dotted path; a longer one is
 * never found. */
#define CLAIMS_NAME_MAX 256

/*
 * The value at `path` in the claims: member names separated by '.',
 * outermost first ("org.id" is the member "id" of the claim "org"); every
 * step but the last must be an object. 1 with *value set, or 0 when some
 * member is missing (or is not an object on the way, or a name is empty or
 * longer than CLAIMS_NAME_MAX).
 */
int claims_path(span_t claims, span_t path, span_t *value);

/*
 * Appends a claim value as text to *out: a JSON string's content,
 * unescaped (jscan_string_decode); any other value's JSON text as it is.
 * 0, or -ENOMEM with *out unchanged.
 */
int claims_value_text(span_t value, buf_t *out);

/*
 * Whether one require_claims rule holds (SPEC.md): the top-level claim
 * `rule->claim` must be present and
 *   - an array: hold an element equal to the value;
 *   - a string, for a string value: equal it, or hold it as one of its
 *     space-separated words (a `scope`);
 *   - anything else: equal the value.
 * Equal means of the same JSON type and: strings byte for byte after
 * unescaping, numbers by value (1, 1.0 and 1e0 are equal), booleans alike.
 * Returns 1 (holds), 0 (does not) or -ENOMEM.
 */
int claims_rule_holds(span_t claims, const config_claim_rule *rule);

/*
 * The first of rules[0..n) that does not hold, or NULL when all do. *nomem
 * is set when memory ran out (the rule it was checking is returned).
 */
const config_claim_rule *claims_unmet(span_t claims, const config_claim_rule *rules, size_t n, bool *nomem);

/*
 * Appends the claims `names[0..n)` that the token has as members of a
 * JSON object being written in *m (a comma first unless *m ends with
 * '{'): key "jwt.<name>", value a JSON string: a string claim as its
 * token (byte for byte), any other claim as its JSON text. Claims the
 * token lacks are left out. 0, or -ENOMEM (*m may then hold a part).
 */
int claims_forward(buf_t *m, span_t claims, char *const *names, size_t n);

#endif
