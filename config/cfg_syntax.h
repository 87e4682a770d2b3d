/*
 * cfg_syntax: a better account of a JSON syntax error in a config file than
 * the parser's own. jansson reports where it got stuck ("'}' expected near
 * '"b"'"); the cause is often elsewhere: a comma missing at the end of the
 * line before. This module walks the text with a small tolerant tokenizer
 * and a bracket stack, and recognizes these mistakes:
 *
 *   missing comma       {"a": 1 \n "b": 2}      points at the end of `1`:
 *                       "missing comma after the value on line 1?"
 *   trailing comma      [1, 2,]  {"a": 1,}      points at the comma
 *   two commas          {"a": 1,, "b": 2}       points at the second
 *   unquoted key        {a: 1}                  points at the key
 *   single quotes       {"a": 'x'}              points at the quote
 *   unterminated string {"a": "x \n}            points at the opening quote
 *   missing ':'         {"a" 1}                 points after the key
 *   missing value       {"a": }                 points at the '}'
 *   bare word           {"a": lazy}, {"a": True}
 *   comment             // to the end of the line, a slash-star block, #
 *   bracket mismatch    [1, 2}                  names the line of the '['
 *   not closed          {"a": 1                 names the line of the '{'
 *   text after the end  {"a": 1}}
 *   byte-order mark     EF BB BF before the document
 *
 * It does not validate everything (escapes, numbers, UTF-8, duplicate keys
 * are jansson's to report), so a mistake counts only when the walk met it
 * no later than where jansson stopped; otherwise jansson's message stands.
 */
#ifndef PG_CONFIG_CFG_SYNTAX_H
#define PG_CONFIG_CFG_SYNTAX_H

#include <stdbool.h>
#include <stddef.h>

#define CFG_SYNTAX_REASON_SIZE 160

typedef struct cfg_syntax_hint {
    size_t offset;                       /* the byte the reason is about */
    char reason[CFG_SYNTAX_REASON_SIZE]; /* one line, printable ASCII */
} cfg_syntax_hint;

/*
 * Looks for one of the mistakes above in text[0..length), which the JSON
 * parser rejected at byte `limit` (its error position). Returns true with
 * *hint filled when the first problem the walk meets is one of them and it
 * was met at or before `limit`; false otherwise (*hint unspecified).
 */
bool cfg_syntax_explain(const char *text, size_t length, size_t limit, cfg_syntax_hint *hint);

#endif
