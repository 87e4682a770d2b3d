/*
 * fuzz_envelope: the reader of `reply: "envelope"` values
 * (gateway/envelope.h) on arbitrary reply bytes.
 *
 * Input: byte 0 picks the number of reply values claimed (its low two bits:
 * 0..3) and the route's default status (200 + the next bits); the rest is
 * the values' text. Checked:
 *   - the result is 0, ENVELOPE_BAD or -ENOMEM; a count other than 1 is
 *     always refused; reading again with the same envelope_t (its buffer
 *     kept) gives the same answer;
 *   - a refusal leaves no header, no body, no Content-Type, the default
 *     status, and a one-line message of printable ASCII;
 *   - an acceptance, against independent checks written here: status in
 *     200..599; every header name a token (RFC 9110 tchar), not reserved,
 *     not Content-Type, not repeated (case-insensitively, Content-Type
 *     included); every value non-empty, free of control bytes other than
 *     HTAB and of whitespace at either end; at most ENVELOPE_HEADERS_MAX
 *     headers and ENVELOPE_HEADER_BYTES_MAX bytes; the body a span of the
 *     input that is one JSON document;
 *   - and against jansson (when it reads the text, with no NUL anywhere):
 *     an accepted envelope is an object of only status, headers and body,
 *     with that status, that many headers with those decoded names and
 *     values, in order.
 */
#include "fuzz/fuzz.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "core/json_scan.h"
#include "gateway/envelope.h"

static const char *const reserved[] = {
    "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "TE",
    "Trailer", "Trailers", "Transfer-Encoding", "Upgrade", "Content-Length", "X-Request-Id",
};

static int tchar(unsigned char c)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    for (size_t i = 0; i < sizeof extra - 1; i++)
        if (c == (unsigned char)extra[i])
            return 1;
    return 0;
}

static void check_name(const char *name)
{
    FUZZ_CHECK(name[0] != 0, "empty header name");
    for (const char *p = name; *p; p++)
        FUZZ_CHECK(tchar((unsigned char)*p), "header name \"%s\" is not a token", name);
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        FUZZ_CHECK(strcasecmp(name, reserved[i]) != 0, "reserved header %s accepted", name);
}

static void check_value(const char *name, const char *value)
{
    size_t n = strlen(value);
    FUZZ_CHECK(n > 0, "empty value of %s", name);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        FUZZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f), "control byte 0x%02x in %s", c, name);
    }
    FUZZ_CHECK(value[0] != ' ' && value[0] != '\t' && value[n - 1] != ' ' && value[n - 1] != '\t',
               "whitespace at an end of %s", name);
}

static void check_message(const char *why)
{
    FUZZ_CHECK(why[0] != 0, "a refusal without a message");
    FUZZ_CHECK(strlen(why) < ENVELOPE_WHY_SIZE, "message not terminated");
    for (const char *p = why; *p; p++)
        FUZZ_CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f, "byte 0x%02x in the message",
                   (unsigned char)*p);
}

static void check_refused(const envelope_t *e, unsigned default_status, const char *why)
{
    FUZZ_CHECK(e->header_count == 0 && !e->has_body && e->content_type == NULL, "a refusal left content");
    FUZZ_CHECK(e->status == default_status, "a refusal changed the status");
    check_message(why);
}

static void check_headers(const envelope_t *e)
{
    FUZZ_CHECK(e->header_count + (e->content_type != NULL) <= ENVELOPE_HEADERS_MAX, "too many headers");
    size_t bytes = 0;
    for (size_t i = 0; i < e->header_count; i++) {
        const char *name = e->headers[i].name, *value = e->headers[i].value;
        check_name(name);
        FUZZ_CHECK(strcasecmp(name, "Content-Type") != 0, "Content-Type among the headers");
        check_value(name, value);
        bytes += strlen(name) + strlen(value);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcasecmp(name, e->headers[j].name) != 0, "header %s twice", name);
    }
    if (e->content_type) {
        check_value("Content-Type", e->content_type);
        bytes += strlen("Content-Type") + strlen(e->content_type); /* at least as long as its spelling */
    }
    FUZZ_CHECK(bytes <= ENVELOPE_HEADER_BYTES_MAX, "%zu header bytes", bytes);
}

static void check_accepted(const envelope_t *e, const char *text, size_t n)
{
    FUZZ_CHECK(e->status >= 200 && e->status <= 599, "status %u", e->status);
    check_headers(e);
    if (e->has_body) {
        span_t again;
        FUZZ_CHECK(fuzz_within(e->body.p, e->body.n, text, n), "body outside the input");
        FUZZ_CHECK(jscan_document(e->body.p, e->body.n, &again, NULL) == 0 && again.n == e->body.n,
                   "the body is not one JSON value");
    }
}

/* Against jansson's reading of the same text (no NUL anywhere, so that
 * decoded strings compare as C strings). */
static void compare_with_jansson(const envelope_t *e, const char *text, size_t n)
{
    if (memchr(text, 0, n))
        return;
    json_t *j = json_loadb(text, n, JSON_DECODE_ANY, NULL);
    if (!j)
        return; /* jscan accepts what jansson does not (lone surrogates, big numbers) */
    FUZZ_CHECK(json_is_object(j), "accepted a non-object");
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) FUZZ_CHECK(strcmp(key, "status") == 0 || strcmp(key, "headers") == 0 ||
                                                  strcmp(key, "body") == 0,
                                              "accepted the member %s", key);
    json_t *status = json_object_get(j, "status");
    if (status)
        FUZZ_CHECK(json_is_integer(status) && json_integer_value(status) == (json_int_t)e->status,
                   "status %u, jansson reads another", e->status);
    FUZZ_CHECK((json_object_get(j, "body") != NULL) == (e->has_body != 0), "body presence differs");
    json_t *headers = json_object_get(j, "headers");
    size_t expected = headers ? json_object_size(headers) : 0;
    FUZZ_CHECK(expected == e->header_count + (e->content_type != NULL), "%zu headers, jansson reads %zu",
               e->header_count + (e->content_type != NULL), expected);
    for (size_t i = 0; i < e->header_count; i++) {
        json_t *value = json_object_get(headers, e->headers[i].name);
        FUZZ_CHECK(json_is_string(value) && strcmp(json_string_value(value), e->headers[i].value) == 0,
                   "header %s differs from jansson's", e->headers[i].name);
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t count = data[0] & 3;
    unsigned default_status = 200 + (unsigned)(data[0] >> 2);
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    char why[ENVELOPE_WHY_SIZE], why2[ENVELOPE_WHY_SIZE];
    envelope_t e = ENVELOPE_INIT;
    int rc = envelope_read(span_of(text, n), count, default_status, &e, why, sizeof why);
    FUZZ_CHECK(rc == 0 || rc == ENVELOPE_BAD || rc == -ENOMEM, "result %d", rc);
    if (count != 1)
        FUZZ_CHECK(rc != 0, "accepted %zu values", count);
    if (rc == ENVELOPE_BAD)
        check_refused(&e, default_status, why);
    if (rc == 0) {
        check_accepted(&e, text, n);
        compare_with_jansson(&e, text, n);
    }
    /* again, the buffer kept: the same answer */
    unsigned status = e.status;
    size_t headers = e.header_count;
    int rc2 = envelope_read(span_of(text, n), count, default_status, &e, why2, sizeof why2);
    FUZZ_CHECK(rc2 == rc && e.status == status && e.header_count == headers, "a second reading differs");
    if (rc == ENVELOPE_BAD)
        FUZZ_CHECK(strcmp(why, why2) == 0, "the message differs the second time");
    envelope_free(&e);
    return 0;
}
