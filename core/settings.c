#include "core/settings.h"

#include <inttypes.h>
#include <stdio.h>

void settings_defaults(up_settings_t *s)
{
#define DEFAULT(type, name, def, kind) s->name = (type)(def);
    UP_SERVICE_SETTINGS(DEFAULT)
#undef DEFAULT
}

const char *settings_connect_name(up_connect_mode_t mode)
{
    return mode == UP_CONNECT_LAZY ? "lazy" : "eager";
}

const char *settings_balance_name(up_balance_t balance)
{
    return balance == UP_BALANCE_ROUND_ROBIN ? "round_robin" : "least_request";
}

static int append_field(buf_t *out, const char *name, uint64_t value)
{
    char text[96];
    snprintf(text, sizeof text, "%s=%" PRIu64 ";", name, value);
    return buf_append_cstr(out, text);
}

int settings_fingerprint(buf_t *out, const up_settings_t *s, const char *const *endpoints, size_t n_endpoints,
                         const char *const *tls_fields)
{
    int rc = 0;
#define FIELD(type, name, def, kind) rc |= append_field(out, #name, (uint64_t)s->name);
    UP_SERVICE_SETTINGS(FIELD)
#undef FIELD
    for (size_t i = 0; i < n_endpoints; i++) {
        rc |= buf_append_cstr(out, "endpoint=");
        rc |= buf_append_cstr(out, endpoints[i]);
        rc |= buf_append_cstr(out, ";");
    }
    rc |= buf_append_cstr(out, tls_fields ? "tls;" : "plain;");
    for (size_t i = 0; tls_fields && tls_fields[i]; i++) {
        rc |= buf_append_cstr(out, tls_fields[i]);
        rc |= buf_append_cstr(out, ";");
    }
    return rc ? -1 : 0;
}
