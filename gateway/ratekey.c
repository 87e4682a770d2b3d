/*
 * ratekey: see ratekey.h.
 */
#include "gateway/ratekey.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/claims.h"

static const struct {
    const char *prefix;
    ratekey_source_t source;
} forms[] = {
    { "$jwt.claims.", RATEKEY_CLAIM },
    { "$jwt.", RATEKEY_CLAIM },
    { "$header.", RATEKEY_HEADER },
    { "$query.", RATEKEY_QUERY },
    { "$path.", RATEKEY_PATH },
};

static char *lowered(const char *s)
{
    char *copy = strdup(s);
    for (char *p = copy; p && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return copy;
}

int ratekey_parse(const char *text, const route_path *path, ratekey_t *out)
{
    memset(out, 0, sizeof *out);
    if (text == NULL)
        return 0;
    if (strcmp(text, "$client.ip") == 0) {
        out->source = RATEKEY_CLIENT_IP;
        return 0;
    }
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        size_t n = strlen(forms[i].prefix);
        const char *name = text + n;
        if (strncmp(text, forms[i].prefix, n) != 0 || *name == '\0')
            continue;
        long capture = forms[i].source == RATEKEY_PATH ? route_path_capture_index(path, name) : 0;
        if (capture < 0)
            return -EINVAL;
        out->source = forms[i].source;
        out->capture_index = (size_t)capture;
        out->name = forms[i].source == RATEKEY_HEADER ? lowered(name) : strdup(name);
        if (out->name != NULL)
            return 0;
        memset(out, 0, sizeof *out);
        return -ENOMEM;
    }
    return -EINVAL;
}

void ratekey_free(ratekey_t *k)
{
    free(k->name);
    memset(k, 0, sizeof *k);
}

/* A lookup's value, or the empty key when absent or bad. */
static span_t looked_up(render_lookup_fn *fn, void *context, const char *name)
{
    span_t value = { NULL, 0 };
    if (fn == NULL || fn(context, name, strlen(name), &value) != RENDER_LOOKUP_FOUND)
        return span_of("", 0);
    return value;
}

/* A claim's text in *scratch, or the empty key. */
static int claim_text(const ratekey_t *k, span_t claims, buf_t *scratch, span_t *value)
{
    span_t claim;
    int found = claims.n > 0 && claims_path(claims, span_cstr(k->name), &claim);
    buf_clear(scratch);
    if (found && claims_value_text(claim, scratch) != 0)
        return -ENOMEM;
    *value = found ? span_of(scratch->data ? scratch->data : "", scratch->len) : span_of("", 0);
    return 0;
}

int ratekey_value(const ratekey_t *k, const render_input_t *in, buf_t *scratch, span_t *value)
{
    switch (k->source) {
    case RATEKEY_CLAIM:
        return claim_text(k, in->claims, scratch, value);
    case RATEKEY_HEADER:
        *value = looked_up(in->header, in->header_context, k->name);
        return 0;
    case RATEKEY_QUERY:
        *value = looked_up(in->query, in->query_context, k->name);
        return 0;
    case RATEKEY_PATH:
        *value = k->capture_index < in->capture_count ? in->captures[k->capture_index] : span_of("", 0);
        return 0;
    case RATEKEY_CLIENT_IP:
        buf_clear(scratch);
        if (buf_reserve(scratch, RENDER_IP_TEXT_SIZE) != 0)
            return -ENOMEM;
        *value = span_cstr(render_client_ip_text(in->client_address, scratch->data));
        return 0;
    case RATEKEY_NONE:
        break;
    }
    *value = span_of("", 0);
    return 0;
}
