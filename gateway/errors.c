#include "gateway/errors.h"

#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"
#include "core/json_write.h"

typedef struct error_info {
    int status;
    const char *code;
    const char *message;
} error_info_t;

#define GW_ERROR_INFO(kind, status, code, message) [kind] = { status, code, message },
static const error_info_t table[GW_ERR_COUNT] = { GW_ERRORS(GW_ERROR_INFO) };
#undef GW_ERROR_INFO

static const error_info_t *info(gw_error_t e)
{
    return &table[(unsigned)e < GW_ERR_COUNT ? e : GW_ERR_INTERNAL];
}

int gw_error_status(gw_error_t e) { return info(e)->status; }
const char *gw_error_code(gw_error_t e) { return info(e)->code; }
const char *gw_error_message(gw_error_t e) { return info(e)->message; }

/* A whole number in 400..599 written plainly (e.g. 403, not 4.03e2). */
static int http_status_of(span_t number)
{
    if (jscan_type_of(number) != JSCAN_NUMBER || number.n != 3)
        return 0;
    int v = 0;
    for (size_t i = 0; i < 3; i++) {
        if (number.p[i] < '0' || number.p[i] > '9')
            return 0;
        v = v * 10 + (number.p[i] - '0');
    }
    return v >= 400 && v <= 599 ? v : 0;
}

static int status_from_err(span_t err)
{
    span_t v;
    if (jscan_type_of(err) != JSCAN_OBJECT)
        return 0;
    int status = 0;
    if (jscan_member(err, "statusCode", &v))
        status = http_status_of(v);
    if (!status && jscan_member(err, "status", &v))
        status = http_status_of(v);
    return status;
}

int gw_error_status_for(gw_error_t e, span_t details)
{
    int status = e == GW_ERR_UPSTREAM_ERROR && details.n ? status_from_err(details) : 0;
    return status ? status : gw_error_status(e);
}

gw_error_t gw_error_of_outcome(up_outcome_t outcome)
{
    switch (outcome) {
    case UP_ERROR: return GW_ERR_UPSTREAM_ERROR;
    case UP_TIMEOUT: return GW_ERR_UPSTREAM_TIMEOUT;
    case UP_UNAVAILABLE: return GW_ERR_UPSTREAM_UNAVAILABLE;
    case UP_CLOSED: return GW_ERR_UPSTREAM_CLOSED;
    case UP_BAD_MESSAGE: return GW_ERR_BAD_UPSTREAM_MESSAGE;
    case UP_NO_HANDLER: return GW_ERR_NO_HANDLER;
    case UP_OVERLOADED: return GW_ERR_OVERLOADED;
    case UP_CANCELLED: return GW_ERR_DRAINING;
    default: return GW_ERR_INTERNAL;
    }
}

int gw_error_body(buf_t *out, gw_error_t e, const char *message, span_t details)
{
    if (!message)
        message = gw_error_message(e);
    const char *code = gw_error_code(e);
    int rc = buf_append_cstr(out, "{\"statusCode\":");
    if (!rc) rc = buf_append_u64(out, (unsigned long long)gw_error_status_for(e, details));
    if (!rc) rc = buf_append_cstr(out, ",\"error\":");
    if (!rc) rc = json_append_string(out, code, strlen(code));
    if (!rc) rc = buf_append_cstr(out, ",\"message\":");
    if (!rc) rc = json_append_string(out, message, strlen(message));
    if (!rc && details.n) {
        rc = buf_append_cstr(out, ",\"details\":");
        if (!rc) rc = buf_append_span(out, details);
    }
    return rc ? rc : buf_append_cstr(out, "}");
}
