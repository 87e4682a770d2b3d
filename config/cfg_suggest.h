/*
 * cfg_suggest: "did you mean ...?" for a name that is not among the valid
 * ones (a misspelt key, an enumerated value in the wrong case).
 *
 * Closeness is the optimal string alignment distance (insertions,
 * deletions, substitutions and swaps of two neighbours, one edit each),
 * compared without regard to ASCII case. A name is suggested when it is
 * within (length of the name + 1) / 3 edits of the word, at least 1 and at
 * most 3: "timout_ms" -> "timeout_ms", "endpoint" -> "endpoints", "get" ->
 * "GET"; "retries" suggests nothing for "retry_attempts". Words or names
 * longer than CFG_SUGGEST_MAX bytes are never close.
 */
#ifndef PG_CONFIG_CFG_SUGGEST_H
#define PG_CONFIG_CFG_SUGGEST_H

#include <stddef.h>

#define CFG_SUGGEST_MAX 64

/*
 * The name among names[0..count) closest to `word` (the first of equally
 * close ones), or NULL when none is close enough or `word` is itself one of
 * them. The list may also end early at a NULL entry, so a NULL-terminated
 * list can be given with count SIZE_MAX. The result is one of the names
 * (borrowed).
 */
const char *cfg_suggest(const char *word, const char *const *names, size_t count);

#endif
