#include "core/json_write.h"

#include <stdio.h>

#include "core/utf8.h"

static int append_escape(buf_t *out, unsigned char c)
{
    switch (c) {
    case '"': return buf_append(out, "\\\"", 2);
    case '\\': return buf_append(out, "\\\\", 2);
    case '\n': return buf_append(out, "\\n", 2);
    case '\r': return buf_append(out, "\\r", 2);
    case '\t': return buf_append(out, "\\t", 2);
    default: {
        char esc[8];
        snprintf(esc, sizeof esc, "\\u%04x", c);
        return buf_append(out, esc, 6);
    }
    }
}

int json_append_string(buf_t *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    int rc = buf_reserve(out, n + 2);
    if (rc == 0)
        rc = buf_append(out, "\"", 1);
    size_t i = 0;
    while (rc == 0 && i < n) {
        size_t run = i; /* bytes that need nothing: copy them in one go */
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        rc = buf_append(out, s + i, run - i);
        i = run;
        if (rc || i == n)
            break;
        if (p[i] < 0x80) {
            rc = append_escape(out, p[i]);
            i++;
            continue;
        }
        int len = utf8_sequence(p + i, n - i);
        if (len > 0) {
            rc = buf_append(out, s + i, (size_t)len);
            i += (size_t)len;
        } else {
            rc = buf_append(out, "\xef\xbf\xbd", 3); /* U+FFFD */
            i++;
        }
    }
    return rc ? rc : buf_append(out, "\"", 1);
}
