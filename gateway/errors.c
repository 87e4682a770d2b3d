#include "gateway/errors.h"

#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"
#include "core/json_write.h"

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

gw_error_t gw_error_for_outcome(up_outcome_t outcome, span_t err)
{
    switch (outcome) {
    case UP_ERROR: {
        int status = status_from_err(err);
        return (gw_error_t){ status ? status : 500, "upstream_error" };
    }
    case UP_TIMEOUT: return (gw_error_t){ 504, "upstream_timeout" };
    case UP_UNAVAILABLE: return (gw_error_t){ 503, "upstream_unavailable" };
    case UP_CLOSED: return (gw_error_t){ 502, "upstream_closed" };
    case UP_BAD_MESSAGE: return (gw_error_t){ 502, "bad_upstream_message" };
    case UP_NO_HANDLER: return (gw_error_t){ 501, "no_handler" };
    case UP_OVERLOADED: return (gw_error_t){ 503, "overloaded" };
    case UP_CANCELLED: return (gw_error_t){ 503, "draining" };
    default: return (gw_error_t){ 500, "internal_error" };
    }
}

int gw_error_body(buf_t *out, gw_error_t e, const char *message, span_t details)
{
    int rc = buf_append_cstr(out, "{\"statusCode\":");
    if (!rc) rc = buf_append_u64(out, (unsigned long long)e.status);
    if (!rc) rc = buf_append_cstr(out, ",\"error\":");
    if (!rc) rc = json_append_string(out, e.code, strlen(e.code));
    if (!rc) rc = buf_append_cstr(out, ",\"message\":");
    if (!rc) rc = json_append_string(out, message ? message : "", message ? strlen(message) : 0);
    if (!rc && details.n) {
        rc = buf_append_cstr(out, ",\"details\":");
        if (!rc) rc = buf_append_span(out, details);
    }
    return rc ? rc : buf_append_cstr(out, "}");
}
