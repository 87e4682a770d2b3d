#include "config/cfg_syntax.h"

#include "config/cfg_locate.h"
#include "config/cfg_suggest.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DEPTH_MAX 512 /* deeper texts get no hint */
#define SHOWN_MAX 40  /* bytes of a word or key quoted in a reason */

typedef enum token_kind {
    TOKEN_END,
    TOKEN_OPEN_OBJECT,
    TOKEN_CLOSE_OBJECT,
    TOKEN_OPEN_ARRAY,
    TOKEN_CLOSE_ARRAY,
    TOKEN_COMMA,
    TOKEN_COLON,
    TOKEN_STRING,
    TOKEN_NUMBER,
    TOKEN_WORD,         /* letters, digits, '_', '$', '-', starting with a letter, '_' or '$' */
    TOKEN_SINGLE_QUOTE, /* a ' where a token starts */
    TOKEN_COMMENT,      /* //, slash-star or # */
    TOKEN_UNTERMINATED, /* a '"' whose string meets a line end or the end of the text */
    TOKEN_OTHER,        /* anything else, including a control character in a string */
} token_kind;

typedef struct token {
    token_kind kind;
    size_t start;
    size_t end; /* past the token; for UNTERMINATED, where the string broke off */
} token;

/* What the walk expects next. */
typedef enum expect {
    EXPECT_VALUE,         /* the document's value, or a member's after ':' */
    EXPECT_FIRST_ELEMENT, /* after '[' */
    EXPECT_ELEMENT,       /* after ',' in an array */
    EXPECT_FIRST_KEY,     /* after '{' */
    EXPECT_KEY,           /* after ',' in an object */
    EXPECT_COLON,         /* after a key */
    EXPECT_SEPARATOR,     /* after a value in an array or object: ',' or its closer */
    EXPECT_END,           /* after the document's value */
} expect;

typedef struct walker {
    const char *text;
    size_t length;
    size_t limit;
    cfg_syntax_hint *hint;
    size_t open[DEPTH_MAX]; /* offsets of the unclosed '{' and '[' */
    size_t depth;
    expect state;
    size_t value_end;  /* past the last complete value */
    size_t comma;      /* offset of the last ',' */
    token key;         /* the last key */
} walker;

/* ---- tokens -------------------------------------------------------------- */

static bool is_word_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}

static bool is_word_char(char c)
{
    return is_word_start(c) || (c >= '0' && c <= '9') || c == '-';
}

static bool is_number_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

static size_t skip_space(const walker *w, size_t at)
{
    while (at < w->length && (w->text[at] == ' ' || w->text[at] == '\t' ||
                              w->text[at] == '\n' || w->text[at] == '\r'))
        at++;
    return at;
}

static token scan_string(const walker *w, size_t start)
{
    token t = {TOKEN_UNTERMINATED, start, w->length};
    for (size_t at = start + 1; at < w->length; at++) {
        unsigned char c = (unsigned char)w->text[at];
        if (c == '"') {
            t.kind = TOKEN_STRING;
            t.end = at + 1;
            return t;
        }
        if (c == '\n' || c == '\r') {
            t.end = at;
            return t;
        }
        if (c < 0x20) {
            t.kind = TOKEN_OTHER;
            return t;
        }
        if (c == '\\' && at + 1 < w->length && w->text[at + 1] != '\n' && w->text[at + 1] != '\r')
            at++;
    }
    return t;
}

static token scan_run(const walker *w, size_t start, token_kind kind, bool (*member)(char))
{
    size_t at = start + 1;
    while (at < w->length && member(w->text[at]))
        at++;
    return (token){kind, start, at};
}

static token next_token(const walker *w, size_t at)
{
    at = skip_space(w, at);
    if (at >= w->length)
        return (token){TOKEN_END, w->length, w->length};
    char c = w->text[at];
    char after = at + 1 < w->length ? w->text[at + 1] : '\0';
    static const char singles[] = "{}[],:";
    static const token_kind single_kinds[] = {TOKEN_OPEN_OBJECT, TOKEN_CLOSE_OBJECT,
                                              TOKEN_OPEN_ARRAY, TOKEN_CLOSE_ARRAY,
                                              TOKEN_COMMA, TOKEN_COLON};
    const char *single = strchr(singles, c);
    if (c != '\0' && single != NULL)
        return (token){single_kinds[single - singles], at, at + 1};
    if (c == '"')
        return scan_string(w, at);
    if (c == '\'')
        return (token){TOKEN_SINGLE_QUOTE, at, at + 1};
    if (c == '#' || (c == '/' && (after == '/' || after == '*')))
        return (token){TOKEN_COMMENT, at, at + 1};
    if (c == '-' || (c >= '0' && c <= '9'))
        return scan_run(w, at, TOKEN_NUMBER, is_number_char);
    if (is_word_start(c))
        return scan_run(w, at, TOKEN_WORD, is_word_char);
    return (token){TOKEN_OTHER, at, at + 1};
}

/* ---- hints --------------------------------------------------------------- */

static unsigned line_of(const walker *w, size_t offset)
{
    return cfg_position_of(w->text, w->length, offset).line;
}

/* Records a hint about `offset`, found while reading the token at
 * `found_at`: true when that is no later than where the parser stopped. */
__attribute__((format(printf, 4, 5)))
static bool hint(walker *w, size_t offset, size_t found_at, const char *format, ...)
{
    if (found_at > w->limit)
        return false;
    va_list args;
    va_start(args, format);
    vsnprintf(w->hint->reason, sizeof w->hint->reason, format, args);
    va_end(args);
    w->hint->offset = offset;
    return true;
}

static int shown_length(const token *t)
{
    size_t n = t->end - t->start;
    return (int)(n < SHOWN_MAX ? n : SHOWN_MAX);
}

static bool hint_not_closed(walker *w, const token *t)
{
    size_t open = w->open[w->depth - 1];
    char closer = w->text[open] == '{' ? '}' : ']';
    return hint(w, t->start, t->start, "end of file: the '%c' on line %u is never closed (no '%c')",
                w->text[open], line_of(w, open), closer);
}

static bool hint_word(walker *w, const token *t)
{
    static const char *const literals[] = {"true", "false", "null"};
    const char *word = w->text + t->start;
    size_t n = t->end - t->start;
    for (size_t i = 0; i < 3; i++)
        if (n == strlen(literals[i]) && strncasecmp(word, literals[i], n) == 0)
            return hint(w, t->start, t->start, "JSON's literals are lowercase: %s", literals[i]);
    if (n == 4 && strncmp(word, "None", 4) == 0)
        return hint(w, t->start, t->start, "JSON has no None: null");
    char copy[CFG_SUGGEST_MAX + 1];
    const char *close = NULL;
    if (n <= CFG_SUGGEST_MAX) {
        memcpy(copy, word, n);
        copy[n] = '\0';
        close = cfg_suggest(copy, literals, 3);
    }
    if (close != NULL)
        return hint(w, t->start, t->start, "%.*s is not a JSON value (did you mean %s?)",
                    shown_length(t), word, close);
    return hint(w, t->start, t->start, "bare word %.*s: strings take double quotes (\"%.*s\")",
                shown_length(t), word, shown_length(t), word);
}

/* Mistakes that are the same wherever they are met; false for others. */
static bool hint_anywhere(walker *w, const token *t)
{
    switch (t->kind) {
    case TOKEN_SINGLE_QUOTE:
        return hint(w, t->start, t->start, "single-quoted string: JSON strings take double quotes");
    case TOKEN_COMMENT:
        return hint(w, t->start, t->start, "comments are not allowed in JSON");
    case TOKEN_UNTERMINATED:
        return hint(w, t->start, t->end, "unterminated string: no closing '\"' before the end of "
                    "the %s", t->end < w->length ? "line" : "file");
    default:
        return false;
    }
}

/* ---- the walk ------------------------------------------------------------ */

static bool is_value_start(token_kind kind)
{
    return kind == TOKEN_STRING || kind == TOKEN_NUMBER || kind == TOKEN_WORD ||
           kind == TOKEN_OPEN_OBJECT || kind == TOKEN_OPEN_ARRAY;
}

static bool is_literal(const walker *w, const token *t)
{
    const char *word = w->text + t->start;
    size_t n = t->end - t->start;
    return (n == 4 && memcmp(word, "true", 4) == 0) || (n == 5 && memcmp(word, "false", 5) == 0) ||
           (n == 4 && memcmp(word, "null", 4) == 0);
}

static void value_done(walker *w, size_t end)
{
    w->value_end = end;
    w->state = w->depth > 0 ? EXPECT_SEPARATOR : EXPECT_END;
}

/* Returns false when the text is too deep to follow. */
static bool open_container(walker *w, const token *t)
{
    if (w->depth == DEPTH_MAX)
        return false;
    w->open[w->depth++] = t->start;
    w->state = t->kind == TOKEN_OPEN_OBJECT ? EXPECT_FIRST_KEY : EXPECT_FIRST_ELEMENT;
    return true;
}

static void close_container(walker *w, const token *t)
{
    w->depth--;
    value_done(w, t->end);
}

/* A value where one is expected. *done: the walk ends (hint or not). */
static bool on_value(walker *w, const token *t, bool *done)
{
    *done = true;
    switch (t->kind) {
    case TOKEN_OPEN_OBJECT:
    case TOKEN_OPEN_ARRAY:
        *done = !open_container(w, t);
        return false;
    case TOKEN_STRING:
    case TOKEN_NUMBER:
        *done = false;
        value_done(w, t->end);
        return false;
    case TOKEN_WORD:
        if (!is_literal(w, t))
            return hint_word(w, t);
        *done = false;
        value_done(w, t->end);
        return false;
    case TOKEN_CLOSE_ARRAY:
        if (w->state == EXPECT_FIRST_ELEMENT) {
            *done = false;
            close_container(w, t);
            return false;
        }
        if (w->state == EXPECT_ELEMENT)
            return hint(w, w->comma, t->start, "trailing comma before ']'");
        return false;
    case TOKEN_CLOSE_OBJECT:
        if (w->state == EXPECT_VALUE && w->depth > 0)
            return hint(w, t->start, t->start, "missing value after ':'");
        return false;
    case TOKEN_COMMA:
        if (w->state == EXPECT_ELEMENT)
            return hint(w, t->start, t->start, "two commas in a row");
        return false;
    case TOKEN_END:
        return w->depth > 0 && hint_not_closed(w, t);
    default:
        return false;
    }
}

/* A key where one is expected. */
static bool on_key(walker *w, const token *t, bool *done)
{
    *done = true;
    switch (t->kind) {
    case TOKEN_STRING:
        *done = false;
        w->key = *t;
        w->state = EXPECT_COLON;
        return false;
    case TOKEN_CLOSE_OBJECT:
        if (w->state == EXPECT_KEY)
            return hint(w, w->comma, t->start, "trailing comma before '}'");
        *done = false;
        close_container(w, t);
        return false;
    case TOKEN_WORD:
    case TOKEN_NUMBER:
        return hint(w, t->start, t->start,
                    "unquoted key %.*s: keys are double-quoted strings (\"%.*s\")",
                    shown_length(t), w->text + t->start, shown_length(t), w->text + t->start);
    case TOKEN_COMMA:
        return w->state == EXPECT_KEY && hint(w, t->start, t->start, "two commas in a row");
    case TOKEN_END:
        return hint_not_closed(w, t);
    default:
        return false;
    }
}

static bool on_colon(walker *w, const token *t, bool *done)
{
    *done = t->kind != TOKEN_COLON;
    if (t->kind == TOKEN_COLON) {
        w->state = EXPECT_VALUE;
        return false;
    }
    if (t->kind == TOKEN_END)
        return hint_not_closed(w, t);
    return hint(w, w->key.end, t->start, "missing ':' after the key %.*s", shown_length(&w->key),
                w->text + w->key.start);
}

static bool on_separator(walker *w, const token *t, bool *done)
{
    *done = true;
    char open = w->text[w->open[w->depth - 1]];
    if (t->kind == TOKEN_COMMA) {
        *done = false;
        w->comma = t->start;
        w->state = open == '{' ? EXPECT_KEY : EXPECT_ELEMENT;
        return false;
    }
    if (t->kind == TOKEN_CLOSE_OBJECT || t->kind == TOKEN_CLOSE_ARRAY) {
        char expected = open == '{' ? '}' : ']';
        if (w->text[t->start] == expected) {
            *done = false;
            close_container(w, t);
            return false;
        }
        return hint(w, t->start, t->start, "'%c' does not close the '%c' on line %u (expected '%c')",
                    w->text[t->start], open, line_of(w, w->open[w->depth - 1]), expected);
    }
    if (is_value_start(t->kind))
        return hint(w, w->value_end, t->start, "missing comma after the value on line %u?",
                    line_of(w, w->value_end));
    if (t->kind == TOKEN_END)
        return hint_not_closed(w, t);
    return false;
}

static bool on_token(walker *w, const token *t, bool *done)
{
    switch (w->state) {
    case EXPECT_VALUE:
    case EXPECT_FIRST_ELEMENT:
    case EXPECT_ELEMENT:
        return on_value(w, t, done);
    case EXPECT_FIRST_KEY:
    case EXPECT_KEY:
        return on_key(w, t, done);
    case EXPECT_COLON:
        return on_colon(w, t, done);
    case EXPECT_SEPARATOR:
        return on_separator(w, t, done);
    case EXPECT_END:
        *done = true;
        return t->kind != TOKEN_END &&
               hint(w, t->start, t->start,
                    "unexpected text after the end of the document (its value ended on line %u)",
                    line_of(w, w->value_end));
    }
    *done = true;
    return false;
}

bool cfg_syntax_explain(const char *text, size_t length, size_t limit, cfg_syntax_hint *out)
{
    walker w = {.text = text, .length = length, .limit = limit, .hint = out,
                .state = EXPECT_VALUE};
    if (length >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        return hint(&w, 0, 0, "the file starts with a byte-order mark (save it as UTF-8 "
                    "without BOM)");
    size_t at = 0;
    for (;;) {
        token t = next_token(&w, at);
        if (t.start > limit)
            return false;
        if (hint_anywhere(&w, &t))
            return true;
        if (t.kind == TOKEN_SINGLE_QUOTE || t.kind == TOKEN_COMMENT || t.kind == TOKEN_UNTERMINATED ||
            t.kind == TOKEN_OTHER)
            return false;
        bool done = false;
        if (on_token(&w, &t, &done))
            return true;
        if (done)
            return false;
        at = t.end;
    }
}
