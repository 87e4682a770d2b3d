#include "config/cfg_suggest.h"

#include <string.h>

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static size_t min3(size_t a, size_t b, size_t c)
{
    size_t m = a < b ? a : b;
    return m < c ? m : c;
}

/* Optimal string alignment distance of a[0..n) and b[0..m), both at most
 * CFG_SUGGEST_MAX bytes, ignoring ASCII case. Three rows of the usual table:
 * two back (for swaps), the previous one and the current one. */
static size_t distance(const char *a, size_t n, const char *b, size_t m)
{
    size_t rows[3][CFG_SUGGEST_MAX + 1];
    size_t *before = rows[0], *previous = rows[1], *current = rows[2];
    for (size_t j = 0; j <= m; j++)
        previous[j] = j;
    for (size_t i = 1; i <= n; i++) {
        current[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
            current[j] = min3(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost);
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
                lower(a[i - 2]) == lower(b[j - 1]) && before[j - 2] + 1 < current[j])
                current[j] = before[j - 2] + 1;
        }
        size_t *spare = before;
        before = previous;
        previous = current;
        current = spare;
    }
    return previous[m];
}

static size_t allowed_edits(size_t name_length)
{
    size_t edits = (name_length + 1) / 3;
    return edits < 1 ? 1 : edits > 3 ? 3 : edits;
}

const char *cfg_suggest(const char *word, const char *const *names, size_t count)
{
    size_t n = strlen(word);
    const char *best = NULL;
    size_t best_distance = 0;
    if (n > CFG_SUGGEST_MAX)
        return NULL;
    for (size_t i = 0; i < count && names[i] != NULL; i++) {
        size_t m = strlen(names[i]);
        if (strcmp(word, names[i]) == 0)
            return NULL;
        if (m > CFG_SUGGEST_MAX)
            continue;
        size_t d = distance(word, n, names[i], m);
        if (d <= allowed_edits(m) && (best == NULL || d < best_distance)) {
            best = names[i];
            best_distance = d;
        }
    }
    return best;
}
