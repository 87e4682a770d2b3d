/*
 * cfg_path: the JSON path of the value being read, for error messages such
 * as `services.math.endpoints[0]` or `routes[2].data.id`.
 *
 * A member whose name is made only of [A-Za-z0-9_-] is written `.name` (no
 * dot at the start of the path); any other name is written as a quoted JSON
 * string in brackets, `["a b"]`, so that names holding dots stay unambiguous.
 * Array elements are written `[i]`. A path longer than CFG_PATH_SIZE - 1
 * bytes is cut short (never overflowed). The struct owns no heap memory.
 */
#ifndef PG_CONFIG_CFG_PATH_H
#define PG_CONFIG_CFG_PATH_H

#include <stddef.h>

#define CFG_PATH_SIZE 256

typedef struct cfg_path {
    size_t length;             /* bytes in text, without the NUL */
    char text[CFG_PATH_SIZE];  /* always NUL-terminated */
} cfg_path;

/* Makes the empty path (the document's root). */
void cfg_path_init(cfg_path *path);

/* Appends a member name. Returns a mark to give to cfg_path_pop(). */
size_t cfg_path_push_key(cfg_path *path, const char *key);

/* Appends an array index. Returns a mark to give to cfg_path_pop(). */
size_t cfg_path_push_index(cfg_path *path, size_t index);

/* Goes back to the path as it was when `mark` was returned. */
void cfg_path_pop(cfg_path *path, size_t mark);

/* The path as text; "" for the root. Valid until the path next changes. */
const char *cfg_path_text(const cfg_path *path);

#endif
