#include "gateway/stream.h"

#include <errno.h>

/* Appends value with its line breaks turned into `sep` (ndjson: " ",
 * sse: "\ndata: "). */
static int append_lines(buf_t *out, span_t value, const char *sep)
{
    size_t start = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < value.n; i++) {
        if (value.p[i] != '\n' && value.p[i] != '\r')
            continue;
        rc = buf_append(out, value.p + start, i - start);
        if (rc == 0)
            rc = buf_append_cstr(out, sep);
        start = i + 1;
    }
    return rc ? rc : buf_append(out, value.p + start, value.n - start);
}

static int framed(buf_t *out, const char *before, span_t value, const char *sep, const char *after)
{
    size_t old = out->len;
    int rc = buf_append_cstr(out, before);
    if (rc == 0)
        rc = append_lines(out, value, sep);
    if (rc == 0)
        rc = buf_append_cstr(out, after);
    if (rc)
        out->len = old;
    return rc;
}

int stream_append_value(buf_t *out, config_reply_mode mode, span_t value)
{
    if (mode == CONFIG_REPLY_SSE)
        return framed(out, "data: ", value, "\ndata: ", "\n\n");
    return framed(out, "", value, " ", "\n");
}

int stream_append_error(buf_t *out, config_reply_mode mode, span_t error_body)
{
    if (mode == CONFIG_REPLY_SSE)
        return framed(out, "event: error\ndata: ", error_body, "\ndata: ", "\n\n");
    return framed(out, "{\"error\":", error_body, " ", "}\n");
}

int stream_append_end(buf_t *out, config_reply_mode mode)
{
    return mode == CONFIG_REPLY_SSE ? buf_append_cstr(out, "event: end\ndata: null\n\n") : 0;
}

int stream_append_keepalive(buf_t *out)
{
    return buf_append_cstr(out, ": keepalive\n\n");
}

const char *stream_content_type(config_reply_mode mode)
{
    return mode == CONFIG_REPLY_SSE ? "text/event-stream" : "application/x-ndjson";
}
