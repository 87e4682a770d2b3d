#include "gateway/cors.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The method bits in the order their names are written. */
static const struct {
    const char *name;
    unsigned bit;
} method_names[] = {
    {"GET", CORS_METHOD_GET},     {"HEAD", CORS_METHOD_HEAD},   {"POST", CORS_METHOD_POST},
    {"PUT", CORS_METHOD_PUT},     {"PATCH", CORS_METHOD_PATCH}, {"DELETE", CORS_METHOD_DELETE},
};

/* The Access-Control-Allow-Methods value of each set of the six method
 * bits (indexed by the bits, CORS_METHOD_GET = 1 ... CORS_METHOD_DELETE =
 * 0x20): constant text, so that a result never points into itself. */
static const char *const method_lists[64] = {
    "",
    "GET",
    "HEAD",
    "GET, HEAD",
    "POST",
    "GET, POST",
    "HEAD, POST",
    "GET, HEAD, POST",
    "PUT",
    "GET, PUT",
    "HEAD, PUT",
    "GET, HEAD, PUT",
    "POST, PUT",
    "GET, POST, PUT",
    "HEAD, POST, PUT",
    "GET, HEAD, POST, PUT",
    "PATCH",
    "GET, PATCH",
    "HEAD, PATCH",
    "GET, HEAD, PATCH",
    "POST, PATCH",
    "GET, POST, PATCH",
    "HEAD, POST, PATCH",
    "GET, HEAD, POST, PATCH",
    "PUT, PATCH",
    "GET, PUT, PATCH",
    "HEAD, PUT, PATCH",
    "GET, HEAD, PUT, PATCH",
    "POST, PUT, PATCH",
    "GET, POST, PUT, PATCH",
    "HEAD, POST, PUT, PATCH",
    "GET, HEAD, POST, PUT, PATCH",
    "DELETE",
    "GET, DELETE",
    "HEAD, DELETE",
    "GET, HEAD, DELETE",
    "POST, DELETE",
    "GET, POST, DELETE",
    "HEAD, POST, DELETE",
    "GET, HEAD, POST, DELETE",
    "PUT, DELETE",
    "GET, PUT, DELETE",
    "HEAD, PUT, DELETE",
    "GET, HEAD, PUT, DELETE",
    "POST, PUT, DELETE",
    "GET, POST, PUT, DELETE",
    "HEAD, POST, PUT, DELETE",
    "GET, HEAD, POST, PUT, DELETE",
    "PATCH, DELETE",
    "GET, PATCH, DELETE",
    "HEAD, PATCH, DELETE",
    "GET, HEAD, PATCH, DELETE",
    "POST, PATCH, DELETE",
    "GET, POST, PATCH, DELETE",
    "HEAD, POST, PATCH, DELETE",
    "GET, HEAD, POST, PATCH, DELETE",
    "PUT, PATCH, DELETE",
    "GET, PUT, PATCH, DELETE",
    "HEAD, PUT, PATCH, DELETE",
    "GET, HEAD, PUT, PATCH, DELETE",
    "POST, PUT, PATCH, DELETE",
    "GET, POST, PUT, PATCH, DELETE",
    "HEAD, POST, PUT, PATCH, DELETE",
    "GET, HEAD, POST, PUT, PATCH, DELETE",
};

unsigned cors_method_bits(config_method method)
{
    switch (method) {
    case CONFIG_METHOD_GET:
        return CORS_METHOD_GET | CORS_METHOD_HEAD;
    case CONFIG_METHOD_POST:
        return CORS_METHOD_POST;
    case CONFIG_METHOD_PUT:
        return CORS_METHOD_PUT;
    case CONFIG_METHOD_PATCH:
        return CORS_METHOD_PATCH;
    case CONFIG_METHOD_DELETE:
        return CORS_METHOD_DELETE;
    case CONFIG_METHOD_ANY:
        return CORS_METHOD_ANY;
    }
    return 0;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static span_t trim_ows(span_t s)
{
    while (s.n > 0 && is_ows(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n > 0 && is_ows(s.p[s.n - 1]))
        s.n--;
    return s;
}

/* Element *at of a comma-separated list (trimmed, maybe empty); advances
 * *at past it and its comma. */
static span_t next_element(span_t list, size_t *at)
{
    size_t start = *at, end = start;
    while (end < list.n && list.p[end] != ',')
        end++;
    *at = end < list.n ? end + 1 : end;
    return trim_ows(span_of(list.p + start, end - start));
}

/* The bit of one method name (not "*"), or 0. */
static unsigned method_bit(span_t name)
{
    for (size_t i = 0; i < sizeof method_names / sizeof method_names[0]; i++)
        if (span_eq_cstr(name, method_names[i].name))
            return method_names[i].bit;
    return 0;
}

unsigned cors_methods_from_list(span_t list)
{
    unsigned bits = 0;
    size_t at = 0;
    while (at < list.n) {
        span_t name = next_element(list, &at);
        unsigned bit = span_eq_cstr(name, "*") ? CORS_METHOD_ANY : method_bit(name);
        bits |= bit == CORS_METHOD_GET ? CORS_METHOD_GET | CORS_METHOD_HEAD : bit;
    }
    return bits;
}

/* ---- the policy ---------------------------------------------------------- */

/* "a, b, c" of strings[0..count), or NULL for none (*failed on ENOMEM). */
static char *joined(char *const *strings, size_t count, bool *failed)
{
    if (count == 0)
        return NULL;
    buf_t b = BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        if (i > 0)
            rc = buf_append(&b, ", ", 2);
        if (rc == 0)
            rc = buf_append_cstr(&b, strings[i]);
    }
    char *text = rc == 0 ? buf_take_cstr(&b) : NULL;
    buf_free(&b);
    if (text == NULL)
        *failed = true;
    return text;
}

int cors_policy_init(cors_policy_t *p, const config_cors *cfg)
{
    bool failed = false;
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    p->allow_methods = joined(cfg->allow_methods, cfg->allow_method_count, &failed);
    p->allow_headers = joined(cfg->allow_headers, cfg->allow_header_count, &failed);
    p->expose_headers = joined(cfg->expose_headers, cfg->expose_header_count, &failed);
    snprintf(p->max_age, sizeof p->max_age, "%llu", (unsigned long long)cfg->max_age_s);
    if (failed) {
        cors_policy_free(p);
        return -ENOMEM;
    }
    return 0;
}

void cors_policy_free(cors_policy_t *p)
{
    free(p->allow_methods);
    free(p->allow_headers);
    free(p->expose_headers);
    memset(p, 0, sizeof *p);
}

/* ---- deciding ------------------------------------------------------------ */

static bool is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_token(span_t s)
{
    if (s.n == 0)
        return false;
    for (size_t i = 0; i < s.n; i++)
        if (!is_token_char(s.p[i]))
            return false;
    return true;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* name (any case) equals lowercase (already lower case). */
static bool equals_lowercase(span_t name, const char *lowercase)
{
    size_t n = strlen(lowercase);
    if (name.n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(name.p[i]) != lowercase[i])
            return false;
    return true;
}

static void add(cors_result_t *out, const char *name, span_t value)
{
    out->headers[out->count].name = name;
    out->headers[out->count].value = value;
    out->count++;
}

static bool origin_allowed(const config_cors *cfg, span_t origin)
{
    if (cfg->any_origin)
        return true;
    for (size_t i = 0; i < cfg->allow_origin_count; i++)
        if (span_eq_cstr(origin, cfg->allow_origins[i]))
            return true;
    return false;
}

/* The value of Access-Control-Allow-Origin for an allowed origin. */
static span_t allow_origin_value(const config_cors *cfg, span_t origin)
{
    return cfg->any_origin ? SPAN_LIT("*") : origin;
}

static bool method_allowed(const cors_policy_t *p, span_t method, unsigned path_methods)
{
    const config_cors *cfg = p->cfg;
    if (cfg->allow_methods != NULL) {
        for (size_t i = 0; i < cfg->allow_method_count; i++)
            if (span_eq_cstr(method, cfg->allow_methods[i]))
                return true;
        return false;
    }
    if (path_methods & CORS_METHOD_ANY)
        return true;
    return (path_methods & method_bit(method)) != 0;
}

static bool header_allowed(const config_cors *cfg, span_t name)
{
    for (size_t i = 0; i < cfg->allow_header_count; i++)
        if (equals_lowercase(name, cfg->allow_headers[i]))
            return true;
    return false;
}

/* The value of Access-Control-Allow-Methods: the configured list, the
 * path's methods as text, or (a `*` route) the method asked for. */
static span_t allow_methods_value(const cors_policy_t *p, const cors_request_t *req)
{
    if (p->allow_methods != NULL)
        return span_cstr(p->allow_methods);
    if (req->path_methods & CORS_METHOD_ANY)
        return req->request_method;
    return span_cstr(method_lists[req->path_methods & 0x3fu]);
}

static void refuse(cors_result_t *out, const char *why)
{
    out->outcome = CORS_PREFLIGHT_REFUSED;
    out->count = 0;
    out->refusal = why;
}

/* Checks every name of Access-Control-Request-Headers; false (refused) at
 * the first that is not a token or not allowed. */
static bool request_headers_allowed(const config_cors *cfg, span_t list, cors_result_t *out)
{
    size_t at = 0;
    while (at < list.n) {
        span_t name = next_element(list, &at);
        if (name.n == 0)
            continue;
        if (!is_token(name)) {
            refuse(out, "bad Access-Control-Request-Headers");
            return false;
        }
        if (!header_allowed(cfg, name)) {
            out->refused_header = name;
            refuse(out, "header not allowed");
            return false;
        }
    }
    return true;
}

static void decide_preflight(const cors_policy_t *p, const cors_request_t *req,
                             cors_result_t *out)
{
    const config_cors *cfg = p->cfg;
    const char *why = NULL;
    if (!origin_allowed(cfg, req->origin))
        why = "origin not allowed";
    else if (!is_token(req->request_method))
        why = "bad Access-Control-Request-Method";
    else if (!method_allowed(p, req->request_method, req->path_methods))
        why = "method not allowed";
    if (why != NULL) {
        refuse(out, why);
        return;
    }
    if (!request_headers_allowed(cfg, req->request_headers, out))
        return;
    out->outcome = CORS_PREFLIGHT_OK;
    add(out, "Access-Control-Allow-Origin", allow_origin_value(cfg, req->origin));
    if (cfg->allow_credentials)
        add(out, "Access-Control-Allow-Credentials", SPAN_LIT("true"));
    add(out, "Access-Control-Allow-Methods", allow_methods_value(p, req));
    if (p->allow_headers != NULL)
        add(out, "Access-Control-Allow-Headers", span_cstr(p->allow_headers));
    add(out, "Access-Control-Max-Age", span_cstr(p->max_age));
}

static void decide_actual(const cors_policy_t *p, const cors_request_t *req, cors_result_t *out)
{
    const config_cors *cfg = p->cfg;
    if (!origin_allowed(cfg, req->origin)) {
        out->outcome = CORS_NOT_ALLOWED;
        if (!cfg->any_origin)
            add(out, "Vary", SPAN_LIT("Origin"));
        return;
    }
    out->outcome = CORS_ALLOWED;
    add(out, "Access-Control-Allow-Origin", allow_origin_value(cfg, req->origin));
    if (!cfg->any_origin)
        add(out, "Vary", SPAN_LIT("Origin"));
    if (cfg->allow_credentials)
        add(out, "Access-Control-Allow-Credentials", SPAN_LIT("true"));
    if (p->expose_headers != NULL)
        add(out, "Access-Control-Expose-Headers", span_cstr(p->expose_headers));
}

void cors_decide(const cors_policy_t *p, const cors_request_t *req, cors_result_t *out)
{
    out->outcome = CORS_NOT_CORS;
    out->count = 0;
    out->refusal = NULL;
    out->refused_header = span_of(NULL, 0);
    if (req->origin.p == NULL) {
        if (!p->cfg->any_origin)
            add(out, "Vary", SPAN_LIT("Origin"));
        return;
    }
    if (span_eq_cstr(req->method, "OPTIONS") && req->request_method.p != NULL)
        decide_preflight(p, req, out);
    else
        decide_actual(p, req, out);
}

const char *cors_outcome_label(cors_outcome_t outcome)
{
    switch (outcome) {
    case CORS_NOT_CORS:
        return "none";
    case CORS_PREFLIGHT_OK:
        return "preflight";
    case CORS_PREFLIGHT_REFUSED:
        return "preflight_refused";
    case CORS_ALLOWED:
        return "allowed";
    case CORS_NOT_ALLOWED:
        return "origin_refused";
    }
    return "?";
}
