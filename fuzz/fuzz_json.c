/*
 * fuzz_json: the JSON scanner (core/json_scan.h) and the reply reader
 * (core/message.h) on arbitrary bytes.
 *
 * Checked, for the scanner:
 *   - every span it returns lies inside the input, and a value it returns is
 *     itself a valid document that scans to the same bytes;
 *   - jscan_document and jscan_value agree (a document is a value followed
 *     by whitespace only);
 *   - walking an object with jscan_members agrees with scanning it whole,
 *     jscan_member finds the last of repeated keys, and every key unescapes
 *     to text that jscan_string_eq matches;
 *   - against jansson (json_loadb with JSON_DECODE_ANY | JSON_ALLOW_NUL):
 *     what jansson accepts, jscan accepts (unless nested deeper than
 *     JSCAN_MAX_DEPTH) with the same structure, strings unescaping to the
 *     same bytes and numbers to the same value; what jscan accepts and
 *     jansson rejects must be one of the documented differences (lone
 *     surrogate escapes, integers or reals beyond jansson's range, "\u0000"
 *     in a key). Texts with a raw NUL byte are not compared: jansson 2.14
 *     wrongly accepts "5\0".
 * For the reply reader: it accepts exactly the JSON objects with a string
 * "id", classifies them as message.h says, and hands out spans inside the
 * message (or the static "null"); a numeric id round-trips through
 * msg_parse_id / msg_format_id.
 */
#include "fuzz/fuzz.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "core/json_scan.h"
#include "core/message.h"

#define MAX_MEMBERS_CHECKED 64

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void check_span(span_t v, const char *text, size_t n, const char *what)
{
    FUZZ_CHECK(fuzz_within(v.p, v.n, text, n), "%s span outside the input", what);
}

/* A value handed out must scan again, alone, to the same bytes. */
static void check_value_alone(span_t v)
{
    span_t again;
    jscan_error_t err;
    FUZZ_CHECK(v.n > 0, "empty value");
    FUZZ_CHECK(!is_ws(v.p[0]) && !is_ws(v.p[v.n - 1]), "value with surrounding whitespace");
    FUZZ_CHECK(jscan_document(v.p, v.n, &again, &err) == 0, "a value is not a document: %s at %zu",
               err.what, err.offset);
    FUZZ_CHECK(again.p == v.p && again.n == v.n, "a value scans to other bytes");
    FUZZ_CHECK(jscan_type_of(v) != JSCAN_INVALID, "valid value of type INVALID");
}

static void check_string_token(span_t token)
{
    FUZZ_CHECK(jscan_type_of(token) == JSCAN_STRING && token.n >= 2 && token.p[token.n - 1] == '"',
               "not a string token");
    buf_t out = BUF_INIT;
    buf_append(&out, "<", 1); /* decoding appends */
    FUZZ_CHECK(jscan_string_decode(token, &out) == 0, "decode failed");
    FUZZ_CHECK(out.data[0] == '<', "decode overwrote the buffer");
    FUZZ_CHECK(out.len - 1 <= token.n - 2, "unescaped text longer than the token");
    FUZZ_CHECK(jscan_string_eq(token, out.data + 1, out.len - 1) == 1,
               "jscan_string_eq disagrees with jscan_string_decode");
    if (out.len > 1)
        FUZZ_CHECK(jscan_string_eq(token, out.data + 1, out.len - 2) == 0, "a prefix compares equal");
    buf_free(&out);
}

/* Walks the object at text[open] with jscan_members; the result must agree
 * with jscan_value from the same place. */
static void check_members(const char *text, size_t n, size_t open)
{
    size_t pos = open;
    span_t whole;
    int whole_ok = jscan_value(text, n, &pos, &whole, NULL) == 0;

    jscan_members_t it;
    span_t keys[MAX_MEMBERS_CHECKED], values[MAX_MEMBERS_CHECKED];
    size_t count = 0;
    span_t key, value;
    int rc;
    jscan_members_init(&it, text, n, open);
    while ((rc = jscan_members_next(&it, &key, &value)) == 1) {
        check_span(key, text, n, "key");
        check_span(value, text, n, "member value");
        check_value_alone(value);
        check_string_token(key);
        (void)jscan_truthy(value);
        if (count < MAX_MEMBERS_CHECKED) {
            keys[count] = key;
            values[count] = value;
        }
        count++;
    }
    if (rc < 0) {
        FUZZ_CHECK(!whole_ok, "jscan_members failed (%s at %zu) on a valid object", it.err.what,
                   it.err.offset);
        FUZZ_CHECK(it.err.what != NULL && it.err.offset <= n, "bad error");
        return;
    }
    FUZZ_CHECK(rc == 0, "jscan_members_next returned %d", rc);
    FUZZ_CHECK(whole_ok, "jscan_members walked an object jscan_value rejects");
    FUZZ_CHECK(it.pos == pos && whole.p == text + open && whole.n == pos - open,
               "members end at %zu, the value at %zu", it.pos, pos);
    FUZZ_CHECK(jscan_members_next(&it, &key, &value) == 0, "next after the end is not 0");

    /* jscan_member: the last of repeated keys (keys without NUL only). */
    if (count > MAX_MEMBERS_CHECKED)
        return;
    for (size_t i = 0; i < count; i++) {
        buf_t k = BUF_INIT;
        FUZZ_CHECK(jscan_string_decode(keys[i], &k) == 0 && buf_append(&k, "", 1) == 0, "oom");
        if (memchr(k.data, '\0', k.len - 1) == NULL) {
            size_t last = i;
            for (size_t j = i + 1; j < count; j++)
                if (jscan_string_eq(keys[j], k.data, k.len - 1))
                    last = j;
            span_t found;
            FUZZ_CHECK(jscan_member(whole, k.data, &found) == 1, "jscan_member misses a key");
            FUZZ_CHECK(found.p == values[last].p && found.n == values[last].n,
                       "jscan_member did not give the last value of a repeated key");
        }
        buf_free(&k);
    }
}

/* ---- against jansson ----------------------------------------------------- */

static int compare_value(span_t v, const json_t *j);

static size_t skip_ws_at(const char *p, size_t n, size_t i)
{
    while (i < n && is_ws(p[i]))
        i++;
    return i;
}

static int compare_array(span_t v, const json_t *j)
{
    size_t pos = skip_ws_at(v.p, v.n, 1), index = 0;
    if (v.p[pos] == ']')
        return json_array_size(j) == 0;
    for (;;) {
        span_t item;
        if (jscan_value(v.p, v.n, &pos, &item, NULL) != 0)
            return 0;
        if (index >= json_array_size(j) || !compare_value(item, json_array_get(j, index)))
            return 0;
        index++;
        pos = skip_ws_at(v.p, v.n, pos);
        if (v.p[pos] == ']')
            return index == json_array_size(j);
        pos++; /* ',' */
    }
}

static int compare_object(span_t v, const json_t *j)
{
    jscan_members_t it;
    span_t key, value;
    size_t distinct = 0;
    jscan_members_init(&it, v.p, v.n, 0);
    while (jscan_members_next(&it, &key, &value) == 1) {
        buf_t k = BUF_INIT;
        FUZZ_CHECK(jscan_string_decode(key, &k) == 0, "oom");
        const json_t *member = json_object_getn(j, k.data ? k.data : "", k.len);
        buf_free(&k);
        if (!member)
            return 0;
        /* Repeated keys: jansson keeps the last, so compare that one. */
        span_t last;
        jscan_members_t later = it;
        span_t k2, v2;
        int repeated = 0;
        while (jscan_members_next(&later, &k2, &v2) == 1) {
            buf_t kk = BUF_INIT;
            FUZZ_CHECK(jscan_string_decode(k2, &kk) == 0, "oom");
            if (jscan_string_eq(key, kk.data ? kk.data : "", kk.len))
                repeated = 1;
            buf_free(&kk);
            if (repeated)
                break;
        }
        if (repeated)
            continue;
        last = value;
        distinct++;
        if (!compare_value(last, member))
            return 0;
    }
    return distinct == json_object_size(j);
}

static int compare_value(span_t v, const json_t *j)
{
    switch (jscan_type_of(v)) {
    case JSCAN_NULL: return json_is_null(j);
    case JSCAN_TRUE: return json_is_true(j);
    case JSCAN_FALSE: return json_is_false(j);
    case JSCAN_STRING: {
        if (!json_is_string(j))
            return 0;
        buf_t s = BUF_INIT;
        FUZZ_CHECK(jscan_string_decode(v, &s) == 0, "oom");
        int same = s.len == json_string_length(j) &&
                   (s.len == 0 || memcmp(s.data, json_string_value(j), s.len) == 0);
        buf_free(&s);
        return same;
    }
    case JSCAN_NUMBER: {
        char text[512];
        if (v.n >= sizeof text)
            return json_is_number(j); /* long numbers: the type only */
        memcpy(text, v.p, v.n);
        text[v.n] = '\0';
        if (json_is_integer(j)) {
            if (strpbrk(text, ".eE"))
                return 0;
            errno = 0;
            long long x = strtoll(text, NULL, 10);
            return errno == 0 && x == json_integer_value(j);
        }
        if (!json_is_real(j))
            return 0;
        return strtod(text, NULL) == json_real_value(j);
    }
    case JSCAN_ARRAY: return json_is_array(j) && compare_array(v, j);
    case JSCAN_OBJECT: return json_is_object(j) && compare_object(v, j);
    default: return 0;
    }
}

/* What jansson rejects and RFC 8259 (so jscan) accepts. */
static int known_jansson_gap(const json_error_t *e)
{
    static const char *const gaps[] = {
        "invalid Unicode",           /* lone surrogate escapes */
        "too big integer",           /* beyond int64 */
        "too big negative integer",
        "real number overflow",      /* beyond a double */
        "NUL byte in object key",    /* "\u0000" in a key */
    };
    for (size_t i = 0; i < sizeof gaps / sizeof gaps[0]; i++)
        if (strstr(e->text, gaps[i]))
            return 1;
    return 0;
}

static void check_against_jansson(const char *text, size_t n, int scan_ok, span_t doc,
                                  const jscan_error_t *scan_err)
{
    /* jansson 2.14 accepts a number or literal followed by one NUL byte
     * ("5\0"); a raw NUL is never JSON, so such texts are left out. */
    if (memchr(text, '\0', n))
        return;
    json_error_t jerr;
    json_t *j = json_loadb(text, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (j) {
        FUZZ_CHECK(scan_ok || strcmp(scan_err->what, "nesting too deep") == 0,
                   "jansson accepts what jscan rejects: %s at byte %zu", scan_err->what,
                   scan_err->offset);
        if (scan_ok)
            FUZZ_CHECK(compare_value(doc, j), "jscan and jansson read different values");
        json_decref(j);
    } else if (scan_ok) {
        FUZZ_CHECK(known_jansson_gap(&jerr),
                   "jscan accepts what jansson rejects for another reason: %s (position %d)",
                   jerr.text, jerr.position);
    }
}

/* ---- the reply reader ---------------------------------------------------- */

/* Members of a reply other than id, response, err, status, isDisposed
 * (every occurrence, as msg_read_reply counts them). */
static size_t count_other_members(span_t doc)
{
    static const char *const known[] = { "id", "response", "err", "status", "isDisposed" };
    jscan_members_t it;
    span_t key, value;
    size_t pos = 0, count = 0;
    while (pos < doc.n && doc.p[pos] != '{')
        pos++;
    jscan_members_init(&it, doc.p, doc.n, pos);
    while (jscan_members_next(&it, &key, &value) == 1) {
        int is_known = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            is_known |= jscan_string_eq(key, known[i], strlen(known[i]));
        count += !is_known;
    }
    return count;
}

static void check_reply(const char *text, size_t n, int scan_ok, span_t doc)
{
    msg_reply_t r;
    char why[128];
    memset(why, 'x', sizeof why);
    int rc = msg_read_reply(span_of(text, n), &r, why, sizeof why);

    span_t id = { NULL, 0 };
    int expect_ok = scan_ok && jscan_type_of(doc) == JSCAN_OBJECT && jscan_member(doc, "id", &id) &&
                    jscan_type_of(id) == JSCAN_STRING;
    if (rc != 0) {
        FUZZ_CHECK(rc == -1, "msg_read_reply returned %d", rc);
        FUZZ_CHECK(memchr(why, '\0', sizeof why) && why[0], "no reason given");
        FUZZ_CHECK(!expect_ok, "a valid reply was refused: %s", why);
        return;
    }
    FUZZ_CHECK(expect_ok, "an invalid reply was accepted");
    FUZZ_CHECK(r.id.p == id.p + 1 && r.id.n == id.n - 2, "id is not the last \"id\" member");

    span_t status = { 0 }, err = { 0 }, response = { 0 }, disposed = { 0 };
    int has_status = jscan_member(doc, "status", &status);
    int has_err = jscan_member(doc, "err", &err);
    int has_response = jscan_member(doc, "response", &response);
    int has_disposed = jscan_member(doc, "isDisposed", &disposed);
    msg_reply_kind_t kind;
    span_t value = { NULL, 0 };
    int undefined = 0;
    if (has_status && jscan_string_eq(status, "error", 5)) {
        kind = MSG_REPLY_NO_HANDLER;
        value = err;
        undefined = !has_err;
    } else if (has_err && jscan_truthy(err)) {
        kind = MSG_REPLY_ERROR;
        value = err;
    } else if (has_response) {
        kind = has_disposed && jscan_truthy(disposed) ? MSG_REPLY_LAST_VALUE : MSG_REPLY_VALUE;
        value = response;
    } else if (has_disposed && jscan_truthy(disposed)) {
        kind = MSG_REPLY_DONE;
    } else if (!has_err && !has_disposed && count_other_members(doc) > 0) {
        kind = MSG_REPLY_FOREIGN; /* not a Nest reply packet */
    } else {
        kind = MSG_REPLY_VALUE;
        undefined = 1;
    }
    FUZZ_CHECK(r.kind == kind, "kind %d, expected %d", (int)r.kind, (int)kind);
    if (kind == MSG_REPLY_FOREIGN) {
        check_span(r.value, text, n, "first unexpected member");
        FUZZ_CHECK(r.unexpected == count_other_members(doc) && jscan_type_of(r.value) == JSCAN_STRING,
                   "FOREIGN does not name its %zu unexpected members", r.unexpected);
    } else if (undefined) {
        FUZZ_CHECK(r.value.n == 4 && memcmp(r.value.p, "null", 4) == 0 &&
                       !fuzz_within(r.value.p, 1, text, n),
                   "undefined value is not the static null");
    } else if (kind == MSG_REPLY_DONE) {
        FUZZ_CHECK(r.value.n == 0, "DONE with a value");
    } else {
        check_span(r.value, text, n, "reply value");
        FUZZ_CHECK(r.value.p == value.p && r.value.n == value.n, "reply value is not the member");
    }

    uint64_t number;
    if (msg_parse_id(r.id, &number)) {
        char again[MSG_ID_MAX];
        span_t formatted = msg_format_id(number, again);
        FUZZ_CHECK(span_eq(formatted, r.id), "id %.*s does not round-trip", (int)r.id.n, r.id.p);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;

    span_t doc = { NULL, 0 };
    jscan_error_t err = { 0, NULL };
    int scan_ok = jscan_document(text, size, &doc, &err) == 0;
    if (scan_ok) {
        check_span(doc, text, size, "document");
        check_value_alone(doc);
        for (const char *p = text; p < doc.p; p++)
            FUZZ_CHECK(is_ws(*p), "non-whitespace before the document");
        for (const char *p = doc.p + doc.n; p < text + size; p++)
            FUZZ_CHECK(is_ws(*p), "non-whitespace after the document");
    } else {
        FUZZ_CHECK(err.what != NULL && err.offset <= size, "bad error (offset %zu of %zu)", err.offset,
                   size);
        char line[128];
        jscan_error_format(&err, line, sizeof line);
    }

    /* jscan_value from the start agrees with jscan_document. */
    size_t pos = 0;
    span_t v;
    int value_ok = jscan_value(text, size, &pos, &v, NULL) == 0;
    if (scan_ok)
        FUZZ_CHECK(value_ok && v.p == doc.p && v.n == doc.n, "jscan_value differs from jscan_document");
    if (value_ok) {
        check_span(v, text, size, "value");
        check_value_alone(v);
        FUZZ_CHECK(pos == (size_t)(v.p + v.n - text), "pos is not just past the value");
        size_t rest = pos;
        while (rest < size && is_ws(text[rest]))
            rest++;
        FUZZ_CHECK(scan_ok == (rest == size), "jscan_document and jscan_value disagree on the end");
    }

    /* From the first '{', '[' and '"', wherever they are. */
    static const char starts[] = "{[\"";
    for (int s = 0; s < 3; s++) {
        const char *at = memchr(text, starts[s], size);
        if (!at)
            continue;
        size_t open = (size_t)(at - text);
        pos = open;
        if (jscan_value(text, size, &pos, &v, NULL) == 0) {
            check_span(v, text, size, "value");
            check_value_alone(v);
            FUZZ_CHECK(v.p == at, "value does not start where asked");
            if (starts[s] == '"')
                check_string_token(v);
        }
        if (starts[s] == '{')
            check_members(text, size, open);
    }

    check_against_jansson(text, size, scan_ok, doc, &err);
    check_reply(text, size, scan_ok, doc);
    return 0;
}
