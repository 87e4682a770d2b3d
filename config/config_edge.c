/* The edge-policy part of the config loader (see config_reader.h and
 * SPEC.md "Edge policy for the ingress direction"): auth.jwt, cors (top
 * level and per route), and a route's auth, require_claims and rate_limit. */
#include "config/config_reader.h"

#include "config/cfg_suggest.h"
#include "config/template.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const cfg_route_auth_names[3] = {"none", "bearer", "jwt"};
const char *const cfg_jwt_algorithm_names[4] = {"RS256", "ES256", "EdDSA", "HS256"};
/* The CONFIG_JWT_* bit of each name above. */
static const unsigned jwt_algorithm_bits[4] = {CONFIG_JWT_RS256, CONFIG_JWT_ES256,
                                               CONFIG_JWT_EDDSA, CONFIG_JWT_HS256};

static const char *const jwt_keys[] = {
    "issuer", "audiences", "jwks_file", "algorithms", "hs256_secret", "leeway_s",
    "forward_claims", NULL,
};
static const char *const cors_keys[] = {
    "allow_origins", "allow_methods", "allow_headers", "expose_headers", "allow_credentials",
    "max_age_s", NULL,
};
static const char *const rate_limit_rule_keys[] = {"rps", "burst", "key", NULL};

static const cfg_int_rule leeway_rule = {0, CONFIG_JWT_LEEWAY_MAX, "an integer from 0 to 3600",
                                         false};
static const cfg_int_rule max_age_rule = {0, CONFIG_CORS_MAX_AGE_MAX,
                                          "an integer from 0 to 86400", false};

#define SHOWN_MAX 64 /* bytes of config text quoted in a message */

/* ---- lists of strings ---------------------------------------------------- */

/* Checks one element of a list; returns the string to keep (a new one, to
 * free()) or NULL with reason[size] filled. Out of memory: NULL with reason
 * "" (reported as such by the caller). */
typedef char *item_fn(cfg_loader *l, const char *text, char *reason, size_t size);

typedef struct list_rule {
    bool allow_empty;     /* [] is fine */
    const char *expected; /* "expected <this>" for a non-array or an empty one */
    item_fn *item;
} list_rule;

static bool is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A token of RFC 9110 section 5.6.2: header names and methods. */
static bool is_token(const char *text)
{
    if (*text == '\0')
        return false;
    for (const char *p = text; *p; p++)
        if (!is_token_char(*p))
            return false;
    return true;
}

static char *lowercase_copy(const char *text)
{
    char *copy = strdup(text);
    for (char *p = copy; p != NULL && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return copy;
}

static void free_strings(char **strings, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(strings[i]);
    free(strings);
}

static int read_list_item(cfg_loader *l, const json_t *value, const list_rule *rule, char **out)
{
    if (!json_is_string(value) || json_string_length(value) == 0)
        return cfg_fail(l, "expected a non-empty string");
    char reason[CFG_REASON_SIZE] = "";
    *out = rule->item(l, json_string_value(value), reason, sizeof reason);
    if (*out != NULL)
        return 0;
    return reason[0] ? cfg_fail(l, "%s", reason) : cfg_fail_memory(l);
}

/* Member `key` of `object`: an array of strings, each checked (and maybe
 * rewritten) by rule->item. Absent: *out stays NULL. Every element is
 * checked; on failure the good ones are kept in *out (freed with it). */
static int read_list(cfg_loader *l, const json_t *object, const char *key, const list_rule *rule,
                     char ***out, size_t *count)
{
    const json_t *array = json_object_get(object, key);
    if (array == NULL)
        return 0;
    if (!json_is_array(array) || (json_array_size(array) == 0 && !rule->allow_empty))
        return cfg_fail_at(l, key, "expected %s", rule->expected);
    *out = cfg_calloc(l, json_array_size(array), sizeof **out);
    if (*out == NULL)
        return -1;
    size_t mark = cfg_path_push_key(&l->path, key);
    size_t index;
    json_t *value;
    int rc = 0;
    json_array_foreach (array, index, value) {
        size_t inner = cfg_path_push_index(&l->path, index);
        char *item = NULL;
        rc |= read_list_item(l, value, rule, &item);
        if (item != NULL)
            (*out)[(*count)++] = item;
        cfg_path_pop(&l->path, inner);
    }
    cfg_path_pop(&l->path, mark);
    return rc;
}

/* The first string listed twice in strings[0..count), or NULL. */
static const char *repeated(char *const *strings, size_t count)
{
    for (size_t i = 0; i < count; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(strings[i], strings[j]) == 0)
                return strings[i];
    return NULL;
}

static char *any_string(cfg_loader *l, const char *text, char *reason, size_t size)
{
    (void)l;
    (void)reason;
    (void)size;
    return strdup(text);
}

static bool has_control_character(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

static char *claim_name(cfg_loader *l, const char *text, char *reason, size_t size)
{
    (void)l;
    if (has_control_character(text)) {
        snprintf(reason, size, "a claim name has no control characters");
        return NULL;
    }
    return strdup(text);
}

static char *header_name(cfg_loader *l, const char *text, char *reason, size_t size)
{
    (void)l;
    if (strcmp(text, "*") == 0) {
        snprintf(reason, size, "\"*\" is not a header name: list the names");
        return NULL;
    }
    if (!is_token(text)) {
        snprintf(reason, size, "expected a header name (letters, digits and !#$%%&'*+-.^_`|~)");
        return NULL;
    }
    return strdup(text);
}

static char *request_header_name(cfg_loader *l, const char *text, char *reason, size_t size)
{
    char *name = header_name(l, text, reason, size);
    char *lower = name != NULL ? lowercase_copy(name) : NULL;
    free(name);
    return lower;
}

static char *method_name(cfg_loader *l, const char *text, char *reason, size_t size)
{
    (void)l;
    if (strcmp(text, "*") == 0) {
        snprintf(reason, size, "\"*\" is not a method: list the methods (absent: those of the "
                               "path's routes)");
        return NULL;
    }
    if (!is_token(text)) {
        snprintf(reason, size, "expected an HTTP method (letters, digits and !#$%%&'*+-.^_`|~)");
        return NULL;
    }
    return strdup(text);
}

/* ---- origins ------------------------------------------------------------- */

static bool is_scheme_char(char c, bool first)
{
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    return alpha || (!first && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
}

static bool is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static bool is_ipv6_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
           c == ':' || c == '.';
}

/* Length of the host at p (a name, or an IPv6 literal in brackets); 0 if
 * there is none. */
static size_t host_length(const char *p)
{
    size_t n = 0;
    if (*p == '[') {
        for (n = 1; is_ipv6_char(p[n]); n++)
            ;
        return p[n] == ']' && n > 1 ? n + 1 : 0;
    }
    while (is_host_char(p[n]))
        n++;
    return n;
}

/* ":PORT" at p: 1..65535 without a leading zero. Returns the port, or 0
 * when p holds anything else; *length gets the bytes read. */
static unsigned long parse_port(const char *p, size_t *length)
{
    unsigned long port = 0;
    size_t n = 1;
    if (p[0] != ':' || p[1] < '1' || p[1] > '9')
        return 0;
    for (; p[n] >= '0' && p[n] <= '9' && n <= 6; n++)
        port = port * 10 + (unsigned long)(p[n] - '0');
    *length = n;
    return port <= 65535 ? port : 0;
}

static bool is_default_port(const char *scheme, size_t scheme_length, unsigned long port)
{
    return (scheme_length == 5 && strncasecmp(scheme, "https", 5) == 0 && port == 443) ||
           (scheme_length == 4 && strncasecmp(scheme, "http", 4) == 0 && port == 80);
}

/* Lowercase scheme://host, and :PORT unless it is the scheme's default:
 * the origin as browsers serialize it. */
static char *serialized_origin(const char *scheme, size_t scheme_length, const char *host,
                               size_t host_len, unsigned long port)
{
    char text[600];
    int n = snprintf(text, sizeof text, "%.*s://%.*s", (int)scheme_length, scheme,
                     (int)host_len, host);
    if (port != 0 && !is_default_port(text, scheme_length, port))
        snprintf(text + n, sizeof text - (size_t)n, ":%lu", port);
    return lowercase_copy(text);
}

static char *origin_error(char *reason, size_t size, const char *text, size_t good)
{
    if (strcmp(text, "null") == 0)
        snprintf(reason, size, "\"null\" is the origin of sandboxed pages and local files, "
                               "which any site can make: not allowed");
    else if (good > 0 && text[good] == '/')
        snprintf(reason, size, "an origin has no path: \"%.*s\"", (int)good, text);
    else
        snprintf(reason, size, "expected an origin, \"scheme://host\" or "
                               "\"scheme://host:port\" (e.g. \"https://app.example.com\")");
    return NULL;
}

/* "*" is kept as is here; load_origins() checks it stands alone. */
static char *origin(cfg_loader *l, const char *text, char *reason, size_t size)
{
    (void)l;
    if (strcmp(text, "*") == 0)
        return strdup(text);
    size_t scheme_length = 0;
    while (is_scheme_char(text[scheme_length], scheme_length == 0))
        scheme_length++;
    if (scheme_length == 0 || scheme_length > 32 || strncmp(text + scheme_length, "://", 3) != 0)
        return origin_error(reason, size, text, 0);
    const char *host = text + scheme_length + 3;
    size_t host_len = host_length(host);
    if (host_len == 0 || host_len > 512)
        return origin_error(reason, size, text, 0);
    size_t port_length = 0;
    unsigned long port = 0;
    if (host[host_len] == ':' && (port = parse_port(host + host_len, &port_length)) == 0)
        return origin_error(reason, size, text, 0);
    size_t good = (size_t)(host + host_len + port_length - text);
    if (text[good] != '\0')
        return origin_error(reason, size, text, good);
    return serialized_origin(text, scheme_length, host, host_len, port);
}

/* ---- auth.jwt ------------------------------------------------------------ */

static const list_rule audiences_rule = {false, "a non-empty array of strings", any_string};
static const list_rule claims_rule = {false, "a non-empty array of claim names", claim_name};

static int read_copy(cfg_loader *l, const json_t *object, const char *key, char **out)
{
    const char *text = NULL;
    if (cfg_read_string(l, object, key, &text) != 0)
        return -1;
    if (text != NULL && (*out = cfg_strdup(l, text)) == NULL)
        return -1;
    return 0;
}

static int read_jwks_file(cfg_loader *l, const json_t *object, config_jwt *jwt)
{
    const char *text = NULL;
    if (cfg_read_string(l, object, "jwks_file", &text) != 0)
        return -1;
    if (text == NULL)
        return 0;
    jwt->jwks_file = cfg_resolve_path(l, "jwks_file", text);
    return jwt->jwks_file != NULL ? 0 : -1;
}

static int read_secret(cfg_loader *l, const json_t *object, config_jwt *jwt)
{
    const json_t *value = json_object_get(object, "hs256_secret");
    if (value == NULL)
        return 0;
    if (!json_is_string(value))
        return cfg_fail_at(l, "hs256_secret", "expected a string of at least 32 bytes");
    if (json_string_length(value) < CONFIG_JWT_SECRET_MIN)
        return cfg_fail_at(l, "hs256_secret",
                           "expected at least 32 bytes, as long as the hash (RFC 7518 section "
                           "3.2); it has %zu",
                           json_string_length(value));
    jwt->hs256_secret = cfg_strdup(l, json_string_value(value));
    jwt->hs256_secret_length = json_string_length(value);
    return jwt->hs256_secret != NULL ? 0 : -1;
}

static int read_forward_claims(cfg_loader *l, const json_t *object, config_jwt *jwt)
{
    if (read_list(l, object, "forward_claims", &claims_rule, &jwt->forward_claims,
                  &jwt->forward_claim_count) != 0)
        return -1;
    const char *twice = repeated(jwt->forward_claims, jwt->forward_claim_count);
    if (twice != NULL)
        return cfg_fail_at(l, "forward_claims", "\"%.64s\" is listed twice", twice);
    return 0;
}

static int read_algorithm(cfg_loader *l, const json_t *value, unsigned *bits)
{
    const char *text = json_is_string(value) ? json_string_value(value) : "";
    for (size_t i = 0; i < CFG_COUNT_OF(cfg_jwt_algorithm_names); i++) {
        if (json_is_string(value) && strcmp(text, cfg_jwt_algorithm_names[i]) == 0) {
            if (*bits & jwt_algorithm_bits[i])
                return 1; /* listed twice */
            *bits |= jwt_algorithm_bits[i];
            return 0;
        }
    }
    if (json_is_string(value) && (strcmp(text, "none") == 0 || strcmp(text, "None") == 0 ||
                                  strcmp(text, "NONE") == 0))
        return cfg_fail(l, "\"none\" is never accepted: an unsigned token proves nothing");
    const char *close = cfg_suggest(text, cfg_jwt_algorithm_names,
                                    CFG_COUNT_OF(cfg_jwt_algorithm_names));
    if (close != NULL)
        return cfg_fail(l, "expected one of RS256, ES256, EdDSA, HS256 (did you mean %s?)",
                        close);
    return cfg_fail(l, "expected one of RS256, ES256, EdDSA, HS256");
}

/* *bits: the algorithms listed, 0 when the key is absent. */
static int read_algorithms(cfg_loader *l, const json_t *object, unsigned *bits)
{
    const json_t *array = json_object_get(object, "algorithms");
    if (array == NULL)
        return 0;
    if (!json_is_array(array) || json_array_size(array) == 0)
        return cfg_fail_at(l, "algorithms", "expected a non-empty array of algorithm names");
    size_t mark = cfg_path_push_key(&l->path, "algorithms");
    size_t index;
    json_t *value;
    int rc = 0, twice = 0;
    json_array_foreach (array, index, value) {
        size_t inner = cfg_path_push_index(&l->path, index);
        int one = read_algorithm(l, value, bits);
        if (one > 0 && !twice)
            twice = (int)index + 1;
        rc |= one < 0 ? -1 : 0;
        cfg_path_pop(&l->path, inner);
    }
    if (twice)
        rc = cfg_fail(l, "%s is listed twice",
                      json_string_value(json_array_get(array, (size_t)twice - 1)));
    cfg_path_pop(&l->path, mark);
    if (rc != 0)
        *bits = 0;
    return rc;
}

/* Every algorithm has its key source, and every key source its algorithm.
 * listed: the algorithms as written, 0 when absent (then the default). */
static int check_key_sources(cfg_loader *l, config_jwt *jwt, unsigned listed)
{
    unsigned sources = (jwt->jwks_file ? CONFIG_JWT_JWKS_ALGORITHMS : 0) |
                       (jwt->hs256_secret ? CONFIG_JWT_HS256 : 0);
    if (listed == 0) {
        jwt->algorithms = sources;
        if (sources == 0)
            return cfg_fail(l, "needs a key source: jwks_file (RS256, ES256, EdDSA) or "
                               "hs256_secret (HS256)");
        return 0;
    }
    jwt->algorithms = listed;
    int rc = 0;
    for (size_t i = 0; i < CFG_COUNT_OF(jwt_algorithm_bits); i++) {
        if ((listed & jwt_algorithm_bits[i]) && !(sources & jwt_algorithm_bits[i])) {
            bool hs = jwt_algorithm_bits[i] == CONFIG_JWT_HS256;
            return cfg_fail(l, "algorithms lists %s, which needs %s", cfg_jwt_algorithm_names[i],
                            hs ? "hs256_secret" : "jwks_file");
        }
    }
    if (jwt->jwks_file && !(listed & CONFIG_JWT_JWKS_ALGORITHMS))
        rc = cfg_fail_at(l, "jwks_file", "not used: algorithms lists none of RS256, ES256, EdDSA");
    if (jwt->hs256_secret && !(listed & CONFIG_JWT_HS256))
        rc = cfg_fail_at(l, "hs256_secret", "not used: algorithms does not list HS256");
    return rc;
}

static int load_jwt_fields(cfg_loader *l, const json_t *object, config_jwt *jwt)
{
    unsigned listed = 0;
    int rc = cfg_check_keys(l, object, jwt_keys);
    rc |= read_copy(l, object, "issuer", &jwt->issuer);
    rc |= read_list(l, object, "audiences", &audiences_rule, &jwt->audiences,
                    &jwt->audience_count);
    int source_rc = read_jwks_file(l, object, jwt);
    source_rc |= read_secret(l, object, jwt);
    source_rc |= read_algorithms(l, object, &listed);
    rc |= source_rc;
    rc |= cfg_read_integer(l, object, "leeway_s", &leeway_rule, &jwt->leeway_s);
    rc |= read_forward_claims(l, object, jwt);
    if (source_rc == 0)
        rc |= check_key_sources(l, jwt, listed);
    return rc;
}

int cfg_load_jwt(cfg_loader *l, const json_t *auth)
{
    const json_t *object;
    if (cfg_read_object(l, auth, "jwt", &object) != 0)
        return -1;
    if (object == NULL)
        return 0;
    config_jwt *jwt = cfg_calloc(l, 1, sizeof *jwt);
    if (jwt == NULL)
        return -1;
    l->cfg->jwt = jwt; /* set first: routes see that jwt is configured */
    jwt->leeway_s = 60;
    size_t mark = cfg_path_push_key(&l->path, "jwt");
    int rc = load_jwt_fields(l, object, jwt);
    cfg_path_pop(&l->path, mark);
    return rc;
}

void cfg_free_jwt(config_jwt *jwt)
{
    if (jwt == NULL)
        return;
    free(jwt->issuer);
    free_strings(jwt->audiences, jwt->audience_count);
    free(jwt->jwks_file);
    if (jwt->hs256_secret != NULL)
        memset(jwt->hs256_secret, 0, jwt->hs256_secret_length);
    free(jwt->hs256_secret);
    free_strings(jwt->forward_claims, jwt->forward_claim_count);
    free(jwt);
}

/* ---- cors ---------------------------------------------------------------- */

static const list_rule origins_rule = {false, "a non-empty array of origins, or [\"*\"]", origin};
static const list_rule methods_rule = {false, "a non-empty array of HTTP methods", method_name};
static const list_rule request_headers_rule = {true, "an array of header names",
                                               request_header_name};
static const list_rule response_headers_rule = {true, "an array of header names", header_name};

static int load_origins(cfg_loader *l, const json_t *object, config_cors *cors)
{
    if (json_object_get(object, "allow_origins") == NULL)
        return cfg_fail_at(l, "allow_origins", "required");
    if (read_list(l, object, "allow_origins", &origins_rule, &cors->allow_origins,
                  &cors->allow_origin_count) != 0)
        return -1;
    bool star = false;
    for (size_t i = 0; i < cors->allow_origin_count; i++)
        star |= strcmp(cors->allow_origins[i], "*") == 0;
    if (!star)
        return 0;
    if (cors->allow_origin_count > 1)
        return cfg_fail_at(l, "allow_origins", "\"*\" (any origin) must be alone");
    free_strings(cors->allow_origins, cors->allow_origin_count);
    cors->allow_origins = NULL;
    cors->allow_origin_count = 0;
    cors->any_origin = true;
    return 0;
}

static int load_cors_fields(cfg_loader *l, const json_t *object, config_cors *cors)
{
    int rc = cfg_check_keys(l, object, cors_keys);
    int origins_rc = load_origins(l, object, cors);
    rc |= origins_rc;
    rc |= read_list(l, object, "allow_methods", &methods_rule, &cors->allow_methods,
                    &cors->allow_method_count);
    rc |= read_list(l, object, "allow_headers", &request_headers_rule, &cors->allow_headers,
                    &cors->allow_header_count);
    rc |= read_list(l, object, "expose_headers", &response_headers_rule, &cors->expose_headers,
                    &cors->expose_header_count);
    int credentials_rc = cfg_read_bool(l, object, "allow_credentials", &cors->allow_credentials);
    rc |= credentials_rc;
    rc |= cfg_read_integer(l, object, "max_age_s", &max_age_rule, &cors->max_age_s);
    if (origins_rc == 0 && credentials_rc == 0 && cors->any_origin && cors->allow_credentials)
        rc = cfg_fail_at(l, "allow_credentials",
                         "cannot be true with allow_origins [\"*\"] (browsers refuse "
                         "credentials with any origin): list the origins");
    return rc;
}

int cfg_load_cors(cfg_loader *l, const json_t *object, config_cors **out)
{
    const json_t *value;
    *out = NULL;
    if (cfg_read_object(l, object, "cors", &value) != 0)
        return -1;
    if (value == NULL)
        return 0;
    config_cors *cors = cfg_calloc(l, 1, sizeof *cors);
    if (cors == NULL)
        return -1;
    *out = cors;
    cors->max_age_s = 600;
    size_t mark = cfg_path_push_key(&l->path, "cors");
    int rc = load_cors_fields(l, value, cors);
    cfg_path_pop(&l->path, mark);
    return rc;
}

void cfg_free_cors(config_cors *cors)
{
    if (cors == NULL)
        return;
    free_strings(cors->allow_origins, cors->allow_origin_count);
    free_strings(cors->allow_methods, cors->allow_method_count);
    free_strings(cors->allow_headers, cors->allow_header_count);
    free_strings(cors->expose_headers, cors->expose_header_count);
    free(cors);
}

/* ---- a route's auth and require_claims ----------------------------------- */

static int load_route_auth(cfg_loader *l, const json_t *object, config_route *route)
{
    int which = -1;
    route->auth = l->cfg->auth_mechanisms;
    if (cfg_read_enum(l, object, "auth", cfg_route_auth_names,
                      CFG_COUNT_OF(cfg_route_auth_names), &which) != 0)
        return -1;
    if (which < 0)
        return 0;
    static const unsigned bits[3] = {0, CONFIG_AUTH_BEARER, CONFIG_AUTH_JWT};
    route->auth = bits[which];
    if (route->auth != 0 && !(l->cfg->auth_mechanisms & route->auth)) {
        route->auth = l->cfg->auth_mechanisms;
        return cfg_fail_at(l, "auth", "\"%s\" is not configured: it needs auth.%s",
                           cfg_route_auth_names[which], which == 1 ? "bearer_tokens" : "jwt");
    }
    return 0;
}

static int load_claim_rule(cfg_loader *l, const char *claim, const json_t *value,
                           config_claim_rule *rule)
{
    if (claim[0] == '\0' || has_control_character(claim))
        return cfg_fail(l, "expected a claim name (non-empty, no control characters)");
    if (json_is_string(value)) {
        rule->kind = CONFIG_CLAIM_STRING;
        if ((rule->string = cfg_strdup(l, json_string_value(value))) == NULL)
            return -1;
    } else if (json_is_number(value)) {
        rule->kind = CONFIG_CLAIM_NUMBER;
        rule->number = json_number_value(value);
    } else if (json_is_boolean(value)) {
        rule->kind = CONFIG_CLAIM_BOOL;
        rule->boolean = json_is_true(value);
    } else {
        return cfg_fail(l, "expected a string, a number, true or false");
    }
    if ((rule->claim = cfg_strdup(l, claim)) == NULL)
        return -1;
    if ((rule->value_json = template_encode_json(value)) == NULL)
        return cfg_fail_memory(l);
    return 0;
}

static int load_require_claims(cfg_loader *l, const json_t *object, config_route *route,
                               bool auth_known)
{
    const json_t *claims;
    if (cfg_read_object(l, object, "require_claims", &claims) != 0)
        return -1;
    if (claims == NULL)
        return 0;
    route->require_claims = cfg_calloc(l, json_object_size(claims), sizeof *route->require_claims);
    if (route->require_claims == NULL)
        return -1;
    size_t mark = cfg_path_push_key(&l->path, "require_claims");
    const char *claim;
    json_t *value;
    int rc = 0;
    json_object_foreach ((json_t *)claims, claim, value) {
        size_t inner = cfg_path_push_key(&l->path, claim);
        /* counted first so that a partly loaded rule is freed */
        rc |= load_claim_rule(l, claim, value,
                              &route->require_claims[route->require_claim_count++]);
        cfg_path_pop(&l->path, inner);
    }
    if (auth_known && !(route->auth & CONFIG_AUTH_JWT))
        rc = cfg_fail(l, "needs JWT authentication: auth.jwt, and this route's auth \"jwt\"");
    else if (auth_known && route->auth != CONFIG_AUTH_JWT)
        rc = cfg_fail(l, "needs this route's auth to be \"jwt\" (a bearer token has no claims)");
    cfg_path_pop(&l->path, mark);
    return rc;
}

/* ---- a route's rate_limit ------------------------------------------------ */

static const char key_forms[] = "expected \"$jwt.NAME\", \"$jwt.claims.a.b\", \"$header.NAME\", "
                                "\"$query.NAME\", \"$path.NAME\" or \"$client.ip\"";

/* Dot-separated names, none empty, none holding ':'. */
static bool is_member_path(const char *text)
{
    if (*text == '\0' || *text == '.')
        return false;
    for (const char *p = text; *p; p++)
        if (*p == ':' || (*p == '.' && (p[1] == '.' || p[1] == '\0')))
            return false;
    return true;
}

static bool starts_with(const char *text, const char *prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

/* The reason a $jwt key is bad, or NULL. */
static const char *jwt_key_problem(const char *key, const config_route *route)
{
    const char *name = key + strlen("$jwt.");
    bool good = starts_with(name, "claims.") ? is_member_path(name + strlen("claims."))
                                             : is_member_path(name) && !strchr(name, '.') &&
                                                   strcmp(name, "claims") != 0;
    if (!good)
        return key_forms;
    if (!(route->auth & CONFIG_AUTH_JWT))
        return "a $jwt key needs JWT authentication on this route (auth.jwt, and the "
               "route's auth \"jwt\" or its default)";
    return NULL;
}

/* The reason `key` is not a rate-limit key of `route`, or NULL. The path is
 * known only when path_known. reason[size] may be used for the text. */
static const char *key_problem(const char *key, const config_route *route, bool path_known,
                               char *reason, size_t size)
{
    if (strcmp(key, "$client.ip") == 0)
        return NULL;
    if (strchr(key, ':') != NULL && key[0] == '$')
        return "a key takes no conversion (:int, ...): its value is used as text";
    if (starts_with(key, "$jwt."))
        return jwt_key_problem(key, route);
    if (starts_with(key, "$header."))
        return is_token(key + strlen("$header.")) ? NULL : key_forms;
    if (starts_with(key, "$query."))
        return key[strlen("$query.")] != '\0' ? NULL : key_forms;
    if (!starts_with(key, "$path.") || key[strlen("$path.")] == '\0')
        return key_forms;
    if (path_known && route_path_capture_index(&route->path, key + strlen("$path.")) < 0) {
        snprintf(reason, size, "%.64s is not a capture of %.200s", key, route->path.text);
        return reason;
    }
    return NULL;
}

static int read_rps(cfg_loader *l, const json_t *object, double *out)
{
    const json_t *value = json_object_get(object, "rps");
    if (value == NULL)
        return cfg_fail_at(l, "rps", "required");
    double rps = json_is_number(value) ? json_number_value(value) : 0;
    if (!json_is_number(value) || !(rps >= CONFIG_RATE_RPS_MIN && rps <= CONFIG_RATE_RPS_MAX))
        return cfg_fail_at(l, "rps", "expected a number from 0.000001 to 1000000000000");
    *out = rps;
    return 0;
}

static int read_rate_key(cfg_loader *l, const json_t *object, config_route *route,
                         bool path_known, config_rate_limit *limit)
{
    const char *key = NULL;
    if (cfg_read_string(l, object, "key", &key) != 0)
        return -1;
    if (key == NULL)
        return 0;
    char reason[CFG_REASON_SIZE];
    const char *problem = key_problem(key, route, path_known, reason, sizeof reason);
    if (problem != NULL)
        return cfg_fail_at(l, "key", "%s", problem);
    limit->key = cfg_strdup(l, key);
    return limit->key != NULL ? 0 : -1;
}

static int load_rate_limit_fields(cfg_loader *l, const json_t *object, config_route *route,
                                  bool path_known, config_rate_limit *limit)
{
    uint64_t burst = 1;
    int rc = cfg_check_keys(l, object, rate_limit_rule_keys);
    rc |= read_rps(l, object, &limit->rps);
    if (json_object_get(object, "burst") == NULL)
        rc = cfg_fail_at(l, "burst", "required");
    else
        rc |= cfg_read_integer(l, object, "burst", &cfg_positive_count, &burst);
    limit->burst = (uint32_t)burst;
    rc |= read_rate_key(l, object, route, path_known, limit);
    return rc;
}

static int load_rate_limit(cfg_loader *l, const json_t *object, config_route *route,
                           bool path_known)
{
    const json_t *value;
    if (cfg_read_object(l, object, "rate_limit", &value) != 0)
        return -1;
    if (value == NULL)
        return 0;
    route->rate_limit = cfg_calloc(l, 1, sizeof *route->rate_limit);
    if (route->rate_limit == NULL)
        return -1;
    size_t mark = cfg_path_push_key(&l->path, "rate_limit");
    int rc = load_rate_limit_fields(l, value, route, path_known, route->rate_limit);
    cfg_path_pop(&l->path, mark);
    return rc;
}

/* ---- a route's edge keys ------------------------------------------------- */

int cfg_load_route_edge(cfg_loader *l, const json_t *object, config_route *route, bool path_known)
{
    int auth_rc = load_route_auth(l, object, route);
    int rc = auth_rc;
    rc |= load_require_claims(l, object, route, auth_rc == 0);
    rc |= cfg_load_cors(l, object, &route->cors);
    rc |= load_rate_limit(l, object, route, path_known);
    return rc;
}

void cfg_free_route_edge(config_route *route)
{
    for (size_t i = 0; i < route->require_claim_count; i++) {
        free(route->require_claims[i].claim);
        free(route->require_claims[i].value_json);
        free(route->require_claims[i].string);
    }
    free(route->require_claims);
    cfg_free_cors(route->cors);
    if (route->rate_limit != NULL)
        free(route->rate_limit->key);
    free(route->rate_limit);
}

const config_cors *config_route_cors(const config *cfg, const config_route *route)
{
    return route->cors != NULL ? route->cors : cfg->cors;
}
