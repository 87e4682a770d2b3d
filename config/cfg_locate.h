/*
 * cfg_locate: where in the config text a value is, for error messages of
 * the form FILE:LINE:COLUMN. jansson's values carry no positions, so the
 * loader names a problem by its JSON path (cfg_path.h) and this module
 * finds that path again in the text with the JSON scanner
 * (core/json_scan.h), which knows byte offsets.
 */
#ifndef PG_CONFIG_CFG_LOCATE_H
#define PG_CONFIG_CFG_LOCATE_H

#include <stddef.h>

/* A 1-based line and column; column counts characters (UTF-8 sequences),
 * as jansson's syntax errors do, a tab being one. */
typedef struct cfg_position {
    unsigned line;
    unsigned column;
} cfg_position;

/*
 * The byte offset in text[0..length) of what `path` names, a path written
 * as cfg_path_text() writes it ("services.math.endpoints[0]",
 * `routes[1]["a b"]`, "" for the root). A member is located at its key (so
 * that "unknown key" points at the key), an array element at its first
 * byte, the root at its first byte. When the path goes on past what the
 * text holds (a member that is absent, a path cut short), the offset is
 * that of the deepest part that is there. The text should be valid JSON;
 * if it is not, the offset is that of the deepest part found before the
 * scanner stopped (0 at worst). Never fails.
 */
size_t cfg_locate(const char *text, size_t length, const char *path);

/* The line and column of byte `offset` (at most length) of text. */
cfg_position cfg_position_of(const char *text, size_t length, size_t offset);

#endif
