/*
 * env_subst: shell-like `${NAME}` / `${NAME:-default}` expansion of one
 * config string value.
 *
 * Grammar (anything else is copied as is; a `$` not followed by `{` is
 * ordinary text):
 *   ${NAME}            the variable's value; an unset variable is an error,
 *                      a set but empty one gives ""
 *   ${NAME:-default}   the value, or `default` when NAME is unset or empty
 *   $${                a literal "${" (the escape for text that must keep it)
 * NAME is [A-Za-z_][A-Za-z0-9_]*. The default is the text up to the next `}`
 * and cannot itself hold `${` (no nesting). Values are not expanded again.
 * Other shell forms (${NAME-x}, ${NAME:=x}, ...) are errors, as is a `${`
 * without its `}`.
 */
#ifndef PG_CONFIG_ENV_SUBST_H
#define PG_CONFIG_ENV_SUBST_H

#include <stdbool.h>
#include <stddef.h>

/* Looks a variable up: returns its value (borrowed; it must stay valid until
 * env_subst_expand() returns) or NULL when it is unset. */
typedef const char *env_subst_lookup_fn(void *context, const char *name);

/* True when `text` holds something env_subst_expand() would change. */
bool env_subst_needed(const char *text);

/*
 * Expands `text`. On success returns 0 and sets *out to a new string that
 * the caller releases with free(). On failure returns -1, sets *out to NULL
 * and writes a one-line reason (no JSON path, no variable values) into
 * error[error_size], e.g. "${TOKEN} is not set" or "unterminated ${".
 * `lookup` NULL means getenv(3).
 */
int env_subst_expand(const char *text, env_subst_lookup_fn *lookup, void *context,
                     char **out, char *error, size_t error_size);

#endif
