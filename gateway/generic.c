#include "gateway/generic.h"

#include "core/defaults.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/json_scan.h"
#include "gateway/render.h"

#define SHOWN_MAX 64 /* bytes of a member name quoted in a message */

int generic_match_path(const char *raw_path, router_match_t *m, span_t *service)
{
    *service = span_of(NULL, 0);
    long count = router_decode_path(raw_path, m);
    if (count == -ENOMEM)
        return -ENOMEM;
    if (count < 0)
        return GENERIC_PATH_BAD;
    if (count != 3 || !span_eq_cstr(router_match_segment(m, 0), "v1"))
        return GENERIC_PATH_NONE;
    span_t verb = router_match_segment(m, 1);
    generic_path_kind kind = span_eq_cstr(verb, "send")   ? GENERIC_PATH_SEND
                             : span_eq_cstr(verb, "emit") ? GENERIC_PATH_EMIT
                                                          : GENERIC_PATH_NONE;
    if (kind != GENERIC_PATH_NONE)
        *service = router_match_segment(m, 2);
    return kind;
}

/* ---- the body -------------------------------------------------------------- */

/* "body: unknown member "KEY" (...)" with the key token as written, cut. */
static int fail_member(const char *format, span_t key, char *error, size_t error_size)
{
    size_t n = key.n;
    const char *cut = "";
    if (n > SHOWN_MAX) {
        n = SHOWN_MAX;
        while (n > 0 && ((unsigned char)key.p[n] & 0xC0) == 0x80)
            n--;
        cut = "...";
    }
    snprintf(error, error_size, format, (int)n, key.p, cut);
    return -1;
}

/* Stores one member; -1 with the message for unknown or repeated ones. */
static int take_member(span_t key, span_t value, span_t *pattern, span_t *data, char *error,
                       size_t error_size)
{
    span_t *slot = NULL;
    if (jscan_string_eq(key, "pattern", 7))
        slot = pattern;
    else if (jscan_string_eq(key, "data", 4))
        slot = data;
    else
        return fail_member("body: unknown member %.*s%s (expected \"pattern\" and \"data\")", key,
                           error, error_size);
    if (slot->p != NULL)
        return fail_member("body: duplicate member %.*s%s", key, error, error_size);
    *slot = value;
    return 0;
}

int generic_parse_body(span_t body, span_t *pattern, span_t *data, char *error,
                       size_t error_size)
{
    span_t value;
    *pattern = *data = span_of(NULL, 0);
    if (jscan_document(body.p, body.n, &value, NULL)) {
        /* Not JSON: render_check_body() says why, unless it is empty. */
        if (render_check_body(body, error, error_size) == 0)
            snprintf(error, error_size,
                     "body is empty: expected {\"pattern\": ..., \"data\": ...}");
        return -1;
    }
    if (jscan_type_of(value) != JSCAN_OBJECT) {
        snprintf(error, error_size,
                 "body: expected a JSON object {\"pattern\": ..., \"data\": ...}");
        return -1;
    }
    jscan_members_t it;
    span_t key, member;
    jscan_members_init(&it, value.p, value.n, 0);
    while (jscan_members_next(&it, &key, &member) == 1)
        if (take_member(key, member, pattern, data, error, error_size))
            return -1;
    if (pattern->p == NULL) {
        snprintf(error, error_size, "body: \"pattern\" is required");
        return -1;
    }
    if (data->p == NULL)
        *data = SPAN_LIT("null");
    return 0;
}

/* ---- reply ----------------------------------------------------------------- */

int generic_parse_reply(const char *value, config_reply_mode *out, char *error,
                        size_t error_size)
{
    static const config_reply_mode modes[] = {
        CONFIG_REPLY_AUTO, CONFIG_REPLY_ARRAY, CONFIG_REPLY_NDJSON, CONFIG_REPLY_SSE, CONFIG_REPLY_ENVELOPE,
    };
    if (value == NULL) {
        *out = CONFIG_REPLY_AUTO;
        return 0;
    }
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(value, config_reply_mode_name(modes[i])) == 0) {
            *out = modes[i];
            return 0;
        }
    }
    snprintf(error, error_size,
             "query parameter \"reply\": expected auto, array, ndjson, sse or envelope");
    return -1;
}

int generic_parse_retries(const char *value, unsigned *out, char *error, size_t error_size)
{
    *out = 0;
    if (value == NULL)
        return 0;
    if (value[0] >= '0' && value[0] <= '0' + PG_MAX_RETRIES && value[1] == '\0') {
        *out = (unsigned)(value[0] - '0');
        return 0;
    }
    snprintf(error, error_size, "query parameter \"retries\": expected an integer from 0 to %d", PG_MAX_RETRIES);
    return -1;
}

int generic_parse_fanout(const char *value, config_fanout *out, char *error, size_t error_size)
{
    *out = CONFIG_FANOUT_ONE;
    if (value == NULL || strcmp(value, "one") == 0)
        return 0;
    if (strcmp(value, "all") == 0) {
        *out = CONFIG_FANOUT_ALL;
        return 0;
    }
    snprintf(error, error_size, "query parameter \"fanout\": expected one or all");
    return -1;
}
