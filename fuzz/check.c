#include "fuzz/check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "core/json_scan.h"
#include "core/utf8.h"
#include "fuzz/fuzz.h"
#include "gateway/cors.h"
#include "gateway/router.h"

static const char *const environment[][2] = {
    { "PG_PORT", "8080" },
    { "PG_LISTEN", "127.0.0.1:9000" },
    { "PG_ADMIN_LISTEN", "[::1]:9901" },
    { "PG_LOG_LEVEL", "debug" },
    { "HOST", "10.0.0.1" },
    { "PORT", "3000" },
    { "EMPTY", "" },
    { "TOKEN", "s3cret" },
    { "API_TOKEN", "t0ken" },
    { "GATEWAY_TOKEN", "gw-token" },
    { "DOLLAR", "${PG_PORT}" },   /* values are not expanded again */
    { "BRACE", "}" },
    { "JSON", "{\"a\":1}" },
    { "SPACE", " x " },
    { "BIG", "99999999999999999999" },
    { "NEG", "-1" },
    { "UTF", "h\xc3\xa9llo" },
    { "CTRL", "a\nb" },
    { "PATH", "/users/:id" },
    { "TPL", "$path.id:int" },
};

const char *fuzz_getenv(void *context, const char *name)
{
    (void)context;
    for (size_t i = 0; i < sizeof environment / sizeof environment[0]; i++)
        if (strcmp(environment[i][0], name) == 0)
            return environment[i][1];
    return NULL;
}

config_load_options fuzz_load_options(void)
{
    config_load_options o = {
        .getenv_fn = fuzz_getenv,
        .getenv_context = NULL,
        .source_name = "fuzz.json",
        .base_dir = "/fuzz/conf",
    };
    return o;
}

static int is_one_line(const char *s, size_t size)
{
    const char *end = memchr(s, '\0', size);
    if (!end || end == s)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; p < (const unsigned char *)end; p++)
        if (*p < 0x20)
            return 0;
    return 1;
}

/* The list of a failed load: 1..CONFIG_ERRORS_MAX problems of one line
 * each, the first one's kind repeated, schema problems placed in the text
 * (a string load always has it) and sorted by position. */
static void check_problems(const config_error *error)
{
    FUZZ_CHECK(error->count >= 1 && error->count <= CONFIG_ERRORS_MAX, "%zu problems",
               error->count);
    FUZZ_CHECK(error->kind == error->problems[0].kind, "kind %d, the first problem's %d",
               error->kind, error->problems[0].kind);
    for (size_t i = 0; i < error->count; i++) {
        const config_problem *p = &error->problems[i];
        FUZZ_CHECK(is_one_line(p->reason, sizeof p->reason), "problem %zu's reason", i);
        FUZZ_CHECK(p->path[0] == '\0' || is_one_line(p->path, sizeof p->path), "problem %zu's path", i);
        FUZZ_CHECK((p->line == 0) == (p->column == 0), "problem %zu at %u:%u", i, p->line, p->column);
        FUZZ_CHECK(p->kind != CONFIG_ERROR_SCHEMA || p->line > 0, "schema problem %zu unplaced: %s",
                   i, p->path);
        FUZZ_CHECK(p->kind == CONFIG_ERROR_SCHEMA || error->count == 1,
                   "a %d problem among %zu", p->kind, error->count);
        if (i > 0) {
            const config_problem *q = &error->problems[i - 1];
            FUZZ_CHECK(p->line == 0 || q->line < p->line ||
                       (q->line == p->line && q->column <= p->column),
                       "problem %zu at %u:%u after %u:%u", i, p->line, p->column, q->line,
                       q->column);
        }
        char line[CONFIG_ERROR_SIZE + CFG_PATH_SIZE + CONFIG_REASON_SIZE];
        config_problem_format(error, i, "f.json", line, sizeof line);
        FUZZ_CHECK(is_one_line(line, sizeof line), "problem %zu formatted", i);
    }
}

static int is_member_name(const char *m)
{
    return m && m[0] && !strpbrk(m, ".:");
}

static void check_slot(const config_route *r, const template_slot *s, int in_spread)
{
    FUZZ_CHECK(s->text && s->text[0] == '$' && s->text[1] != '$', "slot text %s",
               s->text ? s->text : "?");
    FUZZ_CHECK(s->at && strncmp(s->at, "data", 4) == 0, "slot at %s", s->at ? s->at : "?");
    FUZZ_CHECK(s->spread == in_spread, "slot %s: spread flag", s->text);
    FUZZ_CHECK(s->optional == (s->text[strlen(s->text) - 1] == '?'), "slot %s: optional flag",
               s->text);
    FUZZ_CHECK((unsigned)s->conversion <= TEMPLATE_CONVERT_JSON, "slot %s: conversion", s->text);
    switch (s->source) {
    case TEMPLATE_SOURCE_BODY:
    case TEMPLATE_SOURCE_JWT:
        FUZZ_CHECK(s->name == NULL && s->whole == (s->member_count == 0), "slot %s: whole",
                   s->text);
        for (size_t m = 0; m < s->member_count; m++)
            FUZZ_CHECK(is_member_name(s->members[m]), "slot %s: member name", s->text);
        break;
    case TEMPLATE_SOURCE_PATH:
        if (s->whole) {
            FUZZ_CHECK(s->name == NULL && s->member_count == r->path.capture_count,
                       "$path: capture names");
            for (size_t m = 0; m < s->member_count; m++)
                FUZZ_CHECK(strcmp(route_path_capture(&r->path, m)->text, s->members[m]) == 0,
                           "$path: capture %zu", m);
            break;
        }
        FUZZ_CHECK(s->name && s->capture_index < r->path.capture_count,
                   "path slot %s beyond the captures", s->name ? s->name : "?");
        FUZZ_CHECK(strcmp(route_path_capture(&r->path, s->capture_index)->text, s->name) == 0,
                   "path slot %s names another capture", s->name);
        break;
    case TEMPLATE_SOURCE_QUERY:
        FUZZ_CHECK(s->whole ? s->name == NULL
                            : (s->name && s->name[0] && !strchr(s->name, ':')),
                   "bad query slot %s", s->text);
        break;
    case TEMPLATE_SOURCE_HEADER:
        FUZZ_CHECK(s->whole ? s->name == NULL : (s->name && s->name[0]), "bad header slot %s",
                   s->text);
        for (const char *p = s->name; p && *p; p++)
            FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'), "header name %s is not lowercase", s->name);
        break;
    case TEMPLATE_SOURCE_CLIENT_IP:
        FUZZ_CHECK(!s->whole && s->name == NULL && s->member_count == 0, "bad $client.ip slot");
        break;
    default:
        FUZZ_CHECK(0, "slot source %d", (int)s->source);
    }
    if (s->whole && s->source != TEMPLATE_SOURCE_BODY && s->source != TEMPLATE_SOURCE_JWT)
        FUZZ_CHECK(s->conversion == TEMPLATE_CONVERT_NONE, "%s with a conversion", s->text);
    if (in_spread)
        FUZZ_CHECK(s->conversion == TEMPLATE_CONVERT_JSON ||
                       (s->conversion == TEMPLATE_CONVERT_NONE &&
                        (s->whole || s->source == TEMPLATE_SOURCE_BODY ||
                         s->source == TEMPLATE_SOURCE_JWT)),
                   "spread of %s, which cannot hold an object", s->text);
}

typedef struct slot_census {
    size_t slots;
    int uses_body, whole_body;
} slot_census;

static void check_sequence(const config_route *r, const template *t, slot_census *census);

static void check_object(const config_route *r, const template_object *o, slot_census *census)
{
    int dynamic = o->spread_count > 0;
    for (size_t i = 0; i < o->member_count; i++) {
        const template_member *m = &o->members[i];
        FUZZ_CHECK(m->key && strlen(m->key) == m->key_length && strcmp(m->key, "...") != 0,
                   "member key");
        FUZZ_CHECK(m->key_json && strlen(m->key_json) == m->key_json_length &&
                       m->key_json[m->key_json_length - 1] == ':' &&
                       jscan_document(m->key_json, m->key_json_length - 1, NULL, NULL) == 0,
                   "member key_json %s", m->key_json ? m->key_json : "?");
        FUZZ_CHECK(m->optional == (m->value.count == 1 &&
                                   m->value.items[0].kind == TEMPLATE_ITEM_SLOT &&
                                   m->value.items[0].slot.optional),
                   "member %s: optional flag", m->key);
        dynamic |= m->optional;
        check_sequence(r, &m->value, census);
        if (i > 0) {
            const template_member *a = &o->members[o->by_key[i - 1]];
            const template_member *b = &o->members[o->by_key[i]];
            size_t n = a->key_length < b->key_length ? a->key_length : b->key_length;
            int order = memcmp(a->key, b->key, n);
            FUZZ_CHECK(order < 0 || (order == 0 && a->key_length < b->key_length),
                       "by_key not sorted at %zu", i);
        }
        FUZZ_CHECK(o->by_key[i] < o->member_count, "by_key out of range");
    }
    for (size_t i = 0; i < o->spread_count; i++) {
        check_slot(r, &o->spreads[i], 1);
        census->slots++;
        if (o->spreads[i].source == TEMPLATE_SOURCE_BODY) {
            census->uses_body = 1;
            census->whole_body |= o->spreads[i].whole;
        }
    }
    FUZZ_CHECK(dynamic, "an OBJECT item with neither spread nor optional member");
}

static void check_sequence(const config_route *r, const template *t, slot_census *census)
{
    FUZZ_CHECK(t->count >= 1 && t->items, "route %s: empty template", r->path.text);
    for (size_t i = 0; i < t->count; i++) {
        const template_item *it = &t->items[i];
        switch (it->kind) {
        case TEMPLATE_ITEM_LITERAL:
            FUZZ_CHECK(it->literal && it->literal_length && strlen(it->literal) == it->literal_length,
                       "literal length is not strlen");
            FUZZ_CHECK(i == 0 || t->items[i - 1].kind != TEMPLATE_ITEM_LITERAL,
                       "adjacent literals were not merged");
            break;
        case TEMPLATE_ITEM_SLOT:
            check_slot(r, &it->slot, 0);
            census->slots++;
            if (it->slot.source == TEMPLATE_SOURCE_BODY) {
                census->uses_body = 1;
                census->whole_body |= it->slot.whole;
            }
            break;
        case TEMPLATE_ITEM_OBJECT:
            FUZZ_CHECK(it->object != NULL, "OBJECT item without its object");
            check_object(r, it->object, census);
            break;
        default:
            FUZZ_CHECK(0, "item kind %d", (int)it->kind);
        }
    }
}

static int count_slot(void *context, const template_slot *slot)
{
    (void)slot;
    ++*(size_t *)context;
    return 0;
}

static void check_template(const config_route *r)
{
    const template *t = &r->data;
    slot_census census = {0, 0, 0};
    check_sequence(r, t, &census);
    FUZZ_CHECK(t->uses_body == (census.uses_body != 0), "uses_body is wrong");
    template_body_use use = !census.uses_body   ? TEMPLATE_BODY_UNUSED
                            : census.whole_body ? TEMPLATE_BODY_WHOLE
                                                : TEMPLATE_BODY_MEMBERS;
    FUZZ_CHECK(t->body_use == use, "body_use %d, counted %d", (int)t->body_use, (int)use);
    size_t visited = 0;
    FUZZ_CHECK(template_each_slot(t, count_slot, &visited) == 0 && visited == census.slots,
               "template_each_slot visited %zu of %zu slots", visited, census.slots);
    FUZZ_CHECK(template_is_literal(t) == (t->count == 1 && t->items[0].kind == TEMPLATE_ITEM_LITERAL),
               "template_is_literal is wrong");
    if (template_is_literal(t))
        FUZZ_CHECK(jscan_document(t->items[0].literal, t->items[0].literal_length, NULL, NULL) == 0,
                   "literal template %s is not JSON", t->items[0].literal);
    if (r->data_default)
        FUZZ_CHECK(t->count == 1 && t->items[0].kind == TEMPLATE_ITEM_SLOT &&
                       t->items[0].slot.source == TEMPLATE_SOURCE_BODY && t->items[0].slot.whole &&
                       t->items[0].slot.conversion == TEMPLATE_CONVERT_NONE,
                   "a route without data whose template is not $body");
}

static void check_path(const route_path *p)
{
    FUZZ_CHECK(p->text && p->text[0] == '/', "route path does not start with '/'");
    size_t captures = 0;
    for (size_t i = 0; i < p->count; i++) {
        const route_segment *s = &p->segments[i];
        FUZZ_CHECK(s->text && strlen(s->text) == s->length, "segment length is not strlen");
        if (s->kind == ROUTE_SEGMENT_LITERAL)
            continue;
        FUZZ_CHECK(s->length > 0, "capture without a name");
        FUZZ_CHECK(s->kind != ROUTE_SEGMENT_REST || i + 1 == p->count, "rest capture not last");
        FUZZ_CHECK(route_path_capture_index(p, s->text) == (long)captures, "capture index of %s",
                   s->text);
        captures++;
    }
    FUZZ_CHECK(captures == p->capture_count, "capture_count %zu, counted %zu", p->capture_count,
               captures);
}

static int is_service_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return 0;
    return 1;
}

static void check_service(const config *cfg, const config_service *s)
{
    FUZZ_CHECK(is_service_name(s->name), "bad service name %s", s->name);
    FUZZ_CHECK(config_find_service(cfg, s->name, strlen(s->name)) == s, "config_find_service(%s)",
               s->name);
    FUZZ_CHECK(s->endpoint_count >= 1 && s->endpoints, "service %s without endpoints", s->name);
    FUZZ_CHECK(s->pool_size >= 1 && s->pool_size <= CONFIG_POOL_SIZE_MAX, "pool_size %u", s->pool_size);
    FUZZ_CHECK(s->connect_timeout_ms >= 1 && s->connect_timeout_ms <= CONFIG_MS_MAX, "connect_timeout_ms");
    FUZZ_CHECK(s->timeout_ms >= 1 && s->timeout_ms <= CONFIG_MS_MAX, "timeout_ms");
    FUZZ_CHECK(s->retry_delay_ms <= CONFIG_MS_MAX && s->retry_attempts <= CONFIG_COUNT_MAX, "retry");
    FUZZ_CHECK(s->max_message_bytes >= 1, "max_message_bytes");
    if (s->tls) {
        const char *files[] = { s->tls->ca, s->tls->cert, s->tls->key };
        for (int i = 0; i < 3; i++)
            FUZZ_CHECK(!files[i] || files[i][0] == '/', "TLS path %s is not absolute", files[i]);
        FUZZ_CHECK(!s->tls->cert == !s->tls->key, "cert without key or key without cert");
    }
}

static void check_strings(char *const *strings, size_t count, const char *what)
{
    FUZZ_CHECK(count == 0 || strings != NULL, "%s: %zu without an array", what, count);
    for (size_t i = 0; i < count; i++)
        FUZZ_CHECK(strings[i] && strings[i][0], "%s[%zu] empty", what, i);
}

static void check_jwt(const config *cfg)
{
    const config_jwt *j = cfg->jwt;
    FUZZ_CHECK(!!j == !!(cfg->auth_mechanisms & CONFIG_AUTH_JWT), "jwt and auth_mechanisms");
    FUZZ_CHECK(!!cfg->bearer_token_count == !!(cfg->auth_mechanisms & CONFIG_AUTH_BEARER),
               "bearer tokens and auth_mechanisms");
    if (!j)
        return;
    FUZZ_CHECK(j->algorithms != 0 && (j->algorithms & ~0xfu) == 0, "algorithms %x", j->algorithms);
    FUZZ_CHECK(!(j->algorithms & CONFIG_JWT_JWKS_ALGORITHMS) == !j->jwks_file,
               "JWKS algorithms %x without jwks_file, or the reverse", j->algorithms);
    FUZZ_CHECK(!(j->algorithms & CONFIG_JWT_HS256) == !j->hs256_secret,
               "HS256 without hs256_secret, or the reverse");
    FUZZ_CHECK(!j->jwks_file || j->jwks_file[0] == '/', "jwks_file %s is not absolute", j->jwks_file);
    FUZZ_CHECK(!j->hs256_secret || (j->hs256_secret_length >= CONFIG_JWT_SECRET_MIN &&
                                    strlen(j->hs256_secret) == j->hs256_secret_length),
               "hs256_secret of %zu bytes", j->hs256_secret_length);
    FUZZ_CHECK(j->leeway_s <= CONFIG_JWT_LEEWAY_MAX, "leeway_s");
    FUZZ_CHECK(!j->issuer || j->issuer[0], "empty issuer");
    check_strings(j->audiences, j->audience_count, "audiences");
    check_strings(j->forward_claims, j->forward_claim_count, "forward_claims");
    for (size_t a = 0; a < j->forward_claim_count; a++)
        for (size_t b = 0; b < a; b++)
            FUZZ_CHECK(strcmp(j->forward_claims[a], j->forward_claims[b]) != 0, "claim twice");
}

/* Decides a few requests under the policy: the answers keep the rules
 * of cors.h whatever the config. */
static void exercise_cors(const config_cors *c, unsigned path_methods)
{
    cors_policy_t p;
    if (cors_policy_init(&p, c) != 0)
        return;
    const char *origin = c->allow_origin_count ? c->allow_origins[0] : "https://x.example";
    const char *method = c->allow_method_count ? c->allow_methods[0] : "GET";
    const char *headers = c->allow_header_count ? c->allow_headers[0] : "";
    const cors_request_t requests[] = {
        { SPAN_LIT("OPTIONS"), span_cstr(origin), span_cstr(method), span_cstr(headers), path_methods },
        { SPAN_LIT("OPTIONS"), SPAN_LIT("null"), SPAN_LIT("PUT"), SPAN_LIT("a, b"), path_methods },
        { SPAN_LIT("POST"), span_cstr(origin), span_of(NULL, 0), span_of(NULL, 0), path_methods },
        { SPAN_LIT("GET"), span_of(NULL, 0), span_of(NULL, 0), span_of(NULL, 0), path_methods },
    };
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        cors_result_t r;
        cors_decide(&p, &requests[i], &r);
        FUZZ_CHECK(r.count <= CORS_HEADERS_MAX, "cors: %zu headers", r.count);
        FUZZ_CHECK((r.outcome == CORS_PREFLIGHT_REFUSED) == (r.refusal != NULL), "cors: refusal");
        FUZZ_CHECK(r.outcome != CORS_PREFLIGHT_REFUSED || r.count == 0, "cors: headers on a refusal");
        for (size_t h = 0; h < r.count; h++) {
            const cors_header_t *hd = &r.headers[h];
            FUZZ_CHECK(hd->name && hd->value.p && hd->value.n > 0, "cors: empty header");
            for (size_t k = 0; k < hd->value.n; k++)
                FUZZ_CHECK((unsigned char)hd->value.p[k] >= 0x20 && hd->value.p[k] != 0x7f,
                           "cors: control byte in %s", hd->name);
            if (strcmp(hd->name, "Access-Control-Allow-Origin") == 0)
                FUZZ_CHECK(!c->allow_credentials || !span_eq_cstr(hd->value, "*"),
                           "cors: * with credentials");
        }
    }
    FUZZ_CHECK(cors_outcome_label(CORS_ALLOWED)[0], "cors label");
    cors_policy_free(&p);
}

static void check_cors(const config_cors *c, unsigned path_methods)
{
    if (!c)
        return;
    FUZZ_CHECK(c->any_origin == (c->allow_origins == NULL), "any_origin and the origin list");
    FUZZ_CHECK(c->any_origin || c->allow_origin_count >= 1, "no origin");
    FUZZ_CHECK(!(c->any_origin && c->allow_credentials), "* with credentials");
    FUZZ_CHECK(c->max_age_s <= CONFIG_CORS_MAX_AGE_MAX, "max_age_s");
    check_strings(c->allow_origins, c->allow_origin_count, "allow_origins");
    for (size_t i = 0; i < c->allow_origin_count; i++) {
        const char *o = c->allow_origins[i];
        FUZZ_CHECK(strstr(o, "://") && strcmp(o, "null") != 0, "origin %s", o);
        for (const char *q = o; *q; q++)
            FUZZ_CHECK(!(*q >= 'A' && *q <= 'Z'), "origin %s not in lower case", o);
    }
    FUZZ_CHECK(!c->allow_methods || c->allow_method_count >= 1, "empty allow_methods");
    check_strings(c->allow_methods, c->allow_method_count, "allow_methods");
    check_strings(c->allow_headers, c->allow_header_count, "allow_headers");
    check_strings(c->expose_headers, c->expose_header_count, "expose_headers");
    exercise_cors(c, path_methods);
}

static void check_route_edge(const config *cfg, const config_route *r)
{
    FUZZ_CHECK((r->auth & ~(CONFIG_AUTH_BEARER | CONFIG_AUTH_JWT)) == 0 &&
                   (r->auth & ~cfg->auth_mechanisms) == 0,
               "route %s: auth %x, configured %x", r->path.text, r->auth, cfg->auth_mechanisms);
    FUZZ_CHECK(r->require_claim_count == 0 || r->auth == CONFIG_AUTH_JWT,
               "route %s: require_claims without jwt auth alone", r->path.text);
    for (size_t i = 0; i < r->require_claim_count; i++) {
        const config_claim_rule *c = &r->require_claims[i];
        FUZZ_CHECK(c->claim && c->claim[0] && c->value_json, "claim rule");
        FUZZ_CHECK(jscan_document(c->value_json, strlen(c->value_json), NULL, NULL) == 0,
                   "claim value %s is not JSON", c->value_json);
        FUZZ_CHECK((c->kind == CONFIG_CLAIM_STRING) == (c->string != NULL), "claim string");
    }
    check_cors(r->cors, cors_method_bits(r->method));
    FUZZ_CHECK(config_route_cors(cfg, r) == (r->cors ? r->cors : cfg->cors), "config_route_cors");
    const config_rate_limit *l = r->rate_limit;
    if (!l)
        return;
    FUZZ_CHECK(l->rps >= CONFIG_RATE_RPS_MIN && l->rps <= CONFIG_RATE_RPS_MAX, "rps %g", l->rps);
    FUZZ_CHECK(l->burst >= 1 && l->burst <= CONFIG_COUNT_MAX, "burst %u", l->burst);
    FUZZ_CHECK(!l->key || (l->key[0] == '$' && !strchr(l->key, ':')), "rate-limit key %s", l->key);
    FUZZ_CHECK(!l->key || strncmp(l->key, "$jwt.", 5) != 0 || (r->auth & CONFIG_AUTH_JWT),
               "a $jwt key without jwt auth");
}

static void check_config(const config *cfg)
{
    FUZZ_CHECK(cfg->workers <= CONFIG_WORKERS_MAX, "workers %u", cfg->workers);
    FUZZ_CHECK(cfg->shutdown_grace_ms <= CONFIG_MS_MAX, "shutdown_grace_ms");
    FUZZ_CHECK(cfg->limits.max_body_bytes >= 1 && cfg->limits.max_connections >= 1 &&
                   cfg->limits.max_inflight >= 1 && cfg->limits.idle_timeout_ms >= 1,
               "limits below 1");
    for (size_t i = 0; i < cfg->bearer_token_count; i++) {
        const char *t = cfg->bearer_tokens[i];
        FUZZ_CHECK(t && t[0], "empty bearer token");
        for (; *t; t++)
            FUZZ_CHECK(*t > 0x20 && *t < 0x7f, "bearer token with byte 0x%02x", (unsigned char)*t);
    }
    FUZZ_CHECK(cfg->limits.rate_limit_keys >= 1 &&
                   cfg->limits.rate_limit_keys <= CONFIG_RATE_LIMIT_KEYS_MAX,
               "rate_limit_keys %zu", cfg->limits.rate_limit_keys);
    check_jwt(cfg);
    check_cors(cfg->cors, CORS_METHOD_GET | CORS_METHOD_HEAD | CORS_METHOD_POST);
    for (size_t i = 0; i < cfg->service_count; i++)
        check_service(cfg, &cfg->services[i]);
    for (size_t i = 0; i < cfg->route_count; i++) {
        const config_route *r = &cfg->routes[i];
        FUZZ_CHECK(r->service_index < cfg->service_count, "route %zu: service index", i);
        FUZZ_CHECK(r->pattern_json && strlen(r->pattern_json) == r->pattern_length,
                   "route %zu: pattern length", i);
        FUZZ_CHECK(jscan_document(r->pattern_json, r->pattern_length, NULL, NULL) == 0,
                   "route %zu: pattern %s is not JSON", i, r->pattern_json);
        FUZZ_CHECK(r->status >= 200 && r->status <= 299, "route %zu: status %u", i, r->status);
        FUZZ_CHECK(r->reply <= CONFIG_REPLY_ENVELOPE, "route %zu: reply %d", i, (int)r->reply);
        FUZZ_CHECK(r->kind == CONFIG_ROUTE_SEND || r->reply == CONFIG_REPLY_AUTO,
                   "route %zu: emit with reply %s", i, config_reply_mode_name(r->reply));
        FUZZ_CHECK(r->timeout_ms >= 1 && r->timeout_ms <= CONFIG_MS_MAX, "route %zu: timeout", i);
        FUZZ_CHECK(config_method_name(r->method) && config_route_kind_name(r->kind),
                   "route %zu: names", i);
        check_path(&r->path);
        check_template(r);
        check_route_edge(cfg, r);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(!config_routes_conflict(&cfg->routes[j], r), "routes %zu and %zu conflict", j, i);
    }
    char summary[64];
    FUZZ_CHECK(config_summary(cfg, summary, sizeof summary) > 0, "config_summary");
}

static const char *const fuzz_headers[] = {
    "X-A", "1", "x-a", "2", "Cookie", "a=1", "x-h", "{\"k\":[1]}", "x-bad", "\xff",
    "Content-Type", "application/json", NULL,
};

int fuzz_header_walk(void *context, render_pair_fn *pair, void *pair_context)
{
    for (const char *const *p = context ? context : fuzz_headers; p[0]; p += 2) {
        int rc = pair(pair_context, span_cstr(p[0]), span_cstr(p[1]));
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Renders every route's template with plausible inputs: JSON and form
 * bodies, with and without claims, as GET and POST. */
static void render_routes(const config *cfg)
{
    static const span_t capture_values[] = {
        { "7", 1 }, { "-12", 3 }, { "true", 4 }, { "1.5e3", 5 }, { "a/b", 3 }, { "{\"x\":[1]}", 9 },
    };
    static const struct {
        const char *body, *content_type, *claims, *method;
    } inputs[] = {
        { "{\"a\":{\"b\":\"42\"},\"n\":1,\"meta\":\"{\\\"m\\\":1}\",\"o\":{\"d\":null}}", NULL,
          "{\"sub\":\"u1\",\"org\":{\"id\":\"9\"},\"roles\":[\"r\"]}", "POST" },
        { "", NULL, NULL, "GET" },
        { "a=1&b=x+y&a=2&f=7&meta=%7B%7D", "application/x-www-form-urlencoded", "{}", "DELETE" },
        { "[1,2]", "text/plain", NULL, "PUT" },
    };
    span_t captures[16];
    render_query q = { "full=true&page=2&filter=%7B%22a%22%3A1%7D&q=x&q=y&f=%7B%22z%22%3A0%7D", 0,
                       BUF_INIT, BUF_INIT };
    q.length = strlen(q.raw);
    struct sockaddr_in client = { .sin_family = AF_INET };
    client.sin_addr.s_addr = htonl(0x0a000001);
    for (size_t i = 0; i < cfg->route_count; i++) {
        const config_route *r = &cfg->routes[i];
        size_t nc = r->path.capture_count;
        if (nc > 16)
            continue;
        for (size_t k = 0; k < nc; k++)
            captures[k] = capture_values[(i + k) % (sizeof capture_values / sizeof capture_values[0])];
        for (size_t j = 0; j < sizeof inputs / sizeof inputs[0]; j++) {
            render_input_t in = {
                .body = span_cstr(inputs[j].body),
                .content_type = span_cstr(inputs[j].content_type),
                .captures = captures,
                .capture_count = nc,
                .query = render_query_lookup,
                .query_context = &q,
                .query_all = render_query_all,
                .query_all_context = &q,
                .header_all = fuzz_header_walk,
                .claims = span_cstr(inputs[j].claims),
                .client_address = j & 1 ? NULL : (const struct sockaddr *)&client,
                .method = inputs[j].method,
            };
            fuzz_render_and_check(r, &in);
        }
    }
    buf_free(&q.value);
    buf_free(&q.name);
}

config *fuzz_load_and_check(const char *text, size_t length)
{
    config_load_options options = fuzz_load_options();
    config *cfg = (config *)&options; /* not NULL: a failed load must reset it */
    config_error error;
    memset(&error, 'x', sizeof error);
    int rc = config_load_string(text, length, &options, &cfg, &error);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1, "config_load_string returned %d", rc);
        FUZZ_CHECK(cfg == NULL, "a failed load left *out set");
        FUZZ_CHECK(error.kind != CONFIG_ERROR_NONE, "a failed load without an error kind");
        FUZZ_CHECK(is_one_line(error.message, sizeof error.message),
                   "error message is not one line of text: %.*s", (int)sizeof error.message,
                   error.message);
        check_problems(&error);
        return NULL;
    }
    FUZZ_CHECK(rc == 0 && cfg != NULL, "config_load_string returned %d without a config", rc);
    FUZZ_CHECK(cfg->file == NULL, "a string load has a file name");
    check_config(cfg);
    router_t *router = router_new(cfg);
    FUZZ_CHECK(router != NULL, "router_new failed");
    router_free(router);
    render_routes(cfg);
    return cfg;
}

int fuzz_render_and_check(const config_route *r, const render_input_t *in)
{
    const template *t = &r->data;
    char error[RENDER_ERROR_SIZE];
    buf_t out = BUF_INIT, routed = BUF_INIT;
    span_t data = { NULL, 0 };
    /* render_route_data: the {} default, the body check, the shortcut */
    memset(error, 'x', sizeof error);
    int route_rc = render_route_data(t, r->data_default, in, &routed, &data, error, sizeof error);
    if (r->data_default && render_sends_empty_object(in->method, in->body)) {
        FUZZ_CHECK(route_rc == 0 && span_eq(data, SPAN_LIT("{}")) && routed.len == 0,
                   "a bodyless %s without data is not {}", in->method);
        buf_free(&routed);
        return 0;
    }
    if (t->uses_body && render_check_body_as(in->body, in->content_type, error, sizeof error) != 0) {
        FUZZ_CHECK(is_one_line(error, sizeof error), "render_check_body_as message");
        FUZZ_CHECK(route_rc == -1 && routed.len == 0, "render_route_data passed a bad body");
        buf_free(&routed);
        return -1;
    }
    buf_append(&out, "<", 1); /* rendering appends */
    memset(error, 'x', sizeof error);
    int rc = render_template(t, in, &out, error, sizeof error);
    if (rc == 0) {
        FUZZ_CHECK(out.len > 1 && out.data[0] == '<', "rendering wrote before its output");
        jscan_error_t err;
        FUZZ_CHECK(jscan_document(out.data + 1, out.len - 1, NULL, &err) == 0,
                   "rendered output is not JSON (%s at byte %zu): %.*s", err.what, err.offset,
                   (int)(out.len - 1), out.data + 1);
        FUZZ_CHECK(utf8_valid(out.data + 1, out.len - 1), "rendered output is not UTF-8");
        FUZZ_CHECK(route_rc == 0 && span_eq(data, span_of(out.data + 1, out.len - 1)),
                   "render_route_data gave %.*s, render_template %.*s", (int)data.n, data.p,
                   (int)(out.len - 1), out.data + 1);
    } else {
        FUZZ_CHECK(rc == -1, "render_template returned %d", rc);
        FUZZ_CHECK(out.len == 1, "a failed render left %zu bytes", out.len - 1);
        FUZZ_CHECK(is_one_line(error, sizeof error), "render error is not one line of text");
        FUZZ_CHECK(route_rc == -1 && routed.len == 0, "render_route_data did not fail alike");
    }
    buf_free(&out);
    buf_free(&routed);
    return rc;
}
