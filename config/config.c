#include "config/config.h"
#include "core/defaults.h"
#include "core/resolver.h"

#include "config/cfg_locate.h"
#include "config/cfg_syntax.h"
#include "config/config_reader.h"
#include "core/buf.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char default_config_json[] =
    "{\"listen\": \"127.0.0.1:8080\", \"generic_api\": true,"
    " \"services\": {\"default\": {\"endpoints\": [\"127.0.0.1:3000\"]}}}";

/* ---- names of enumerated values ------------------------------------------ */

const char *const cfg_method_names[6] = {"GET", "POST", "PUT", "PATCH", "DELETE", "*"};
const char *const cfg_route_kind_names[2] = {"send", "emit"};
const char *const cfg_reply_names[5] = {"auto", "array", "ndjson", "sse", "envelope"};
const char *const cfg_log_level_names[4] = {"debug", "info", "warn", "error"};
const char *const cfg_connect_names[2] = {"eager", "lazy"};
const char *const cfg_balance_names[2] = {"least_request", "round_robin"};
const char *const cfg_fanout_names[2] = {"one", "all"};

const char *config_method_name(config_method method)
{
    return cfg_method_names[method];
}

const char *config_route_kind_name(config_route_kind kind)
{
    return cfg_route_kind_names[kind];
}

const char *config_reply_mode_name(config_reply_mode reply)
{
    return cfg_reply_names[reply];
}

const char *config_log_level_name(config_log_level level)
{
    return cfg_log_level_names[level];
}

const char *config_connect_mode_name(up_connect_mode_t connect)
{
    return cfg_connect_names[connect];
}

const char *config_fanout_name(config_fanout fanout)
{
    return cfg_fanout_names[fanout];
}

/* ---- the schema: keys and integer rules ---------------------------------- */

static const char *const top_keys[] = {
    "listen", "admin_listen", "workers", "shutdown_grace_ms", "generic_api", "auth",
    "log", "limits", "dns", "services", "routes", "cors", "docs_assets", NULL,
};
static const char *const dns_keys[] = {"servers", NULL};
static const char *const auth_keys[] = {"bearer_tokens", "jwt", NULL};
static const char *const log_keys[] = {"level", "access", "access_admin", "debug_bytes", NULL};
static const char *const limits_keys[] = {
    "max_body_bytes", "max_connections", "max_inflight", "idle_timeout_ms", "max_reply_bytes",
    "rate_limit_keys", NULL,
};
/* The service's scalar settings come from core/settings.h's table. */
#define SETTING_KEY(type, name, def, kind) #name,
static const char *const service_keys[] = {
    "endpoints", UP_SERVICE_SETTINGS(SETTING_KEY) "tls", NULL,
};
#undef SETTING_KEY
static const char *const tls_keys[] = {"ca", "cert", "key", "servername", "verify", NULL};
static const cfg_int_rule pool_size_rule = {1, CONFIG_POOL_SIZE_MAX,
                                            "an integer from 1 to 1024", false};
static const cfg_int_rule rate_limit_keys_rule = {1, CONFIG_RATE_LIMIT_KEYS_MAX,
                                                  "a positive integer", true};
static const cfg_int_rule workers_rule = {1, CONFIG_WORKERS_MAX,
                                          "a positive integer or \"auto\"", true};

/* ---- defaults ------------------------------------------------------------ */

static void set_defaults(config *cfg)
{
    hostport_parse("127.0.0.1:8080", 0, &cfg->listen);
    cfg->workers = 1;
    cfg->shutdown_grace_ms = 10000;
    cfg->log_level = CONFIG_LOG_INFO;
    cfg->log_access = false;
    cfg->log_access_admin = false;
    cfg->log_debug_bytes = 512;
    cfg->limits.max_body_bytes = 1048576;
    cfg->limits.max_connections = 4096;
    cfg->limits.max_inflight = 10000;
    cfg->limits.idle_timeout_ms = 60000;
    cfg->limits.max_reply_bytes = 67108864;
    cfg->limits.rate_limit_keys = 100000;
}

static void set_service_defaults(config_service *service)
{
    settings_defaults(&service->settings);
    service->generic_api = true;
}

/* ---- top level: listeners, workers, auth, log, limits -------------------- */

/* Loader functions run every reader of their part, so that all problems
 * are recorded, with `rc |= reader(...)`: rc ends -1 (0 | -1) when any
 * reader failed. They leave the path as they found it. */

static int load_listeners(cfg_loader *l, const json_t *root)
{
    config *cfg = l->cfg;
    int rc = cfg_read_hostport(l, root, "listen", &cfg->listen, NULL);
    rc |= cfg_read_hostport(l, root, "admin_listen", &cfg->admin_listen, &cfg->has_admin_listen);
    if (rc != 0)
        return -1;
    if (cfg->has_admin_listen && cfg->admin_listen.port == cfg->listen.port &&
        strcmp(cfg->admin_listen.host, cfg->listen.host) == 0)
        return cfg_fail_at(l, "admin_listen", "must differ from listen");
    return 0;
}

static int load_workers(cfg_loader *l, const json_t *root)
{
    const json_t *value = json_object_get(root, "workers");
    if (value != NULL && json_is_string(value) && strcmp(json_string_value(value), "auto") == 0) {
        l->cfg->workers = 0;
        return 0;
    }
    return cfg_read_unsigned(l, root, "workers", &workers_rule, &l->cfg->workers);
}

/* Bearer tokens are sent in a header: visible ASCII only. */
static bool is_valid_token(const char *token)
{
    if (*token == '\0')
        return false;
    for (const unsigned char *p = (const unsigned char *)token; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return false;
    return true;
}

static int load_bearer_token(cfg_loader *l, const json_t *token)
{
    if (!json_is_string(token) || !is_valid_token(json_string_value(token)))
        return cfg_fail(l, "expected a non-empty string of visible ASCII characters");
    config *cfg = l->cfg;
    cfg->bearer_tokens[cfg->bearer_token_count] = cfg_strdup(l, json_string_value(token));
    if (cfg->bearer_tokens[cfg->bearer_token_count] == NULL)
        return -1;
    cfg->bearer_token_count++;
    return 0;
}

static int load_bearer_tokens(cfg_loader *l, const json_t *tokens)
{
    if (!json_is_array(tokens) || json_array_size(tokens) == 0)
        return cfg_fail(l, "expected a non-empty array of strings");
    config *cfg = l->cfg;
    cfg->bearer_tokens = cfg_calloc(l, json_array_size(tokens), sizeof *cfg->bearer_tokens);
    if (cfg->bearer_tokens == NULL)
        return -1;
    size_t index;
    json_t *token;
    int rc = 0;
    json_array_foreach (tokens, index, token) {
        size_t mark = cfg_path_push_index(&l->path, index);
        rc |= load_bearer_token(l, token);
        cfg_path_pop(&l->path, mark);
    }
    return rc;
}

static int load_auth_fields(cfg_loader *l, const json_t *auth)
{
    int rc = cfg_check_keys(l, auth, auth_keys);
    const json_t *tokens = json_object_get(auth, "bearer_tokens");
    if (tokens == NULL && json_object_get(auth, "jwt") == NULL && rc == 0)
        return cfg_fail(l, "needs bearer_tokens, jwt or both (leave auth out for none)");
    if (tokens != NULL) {
        size_t mark = cfg_path_push_key(&l->path, "bearer_tokens");
        rc |= load_bearer_tokens(l, tokens);
        cfg_path_pop(&l->path, mark);
        l->cfg->auth_mechanisms |= CONFIG_AUTH_BEARER;
    }
    rc |= cfg_load_jwt(l, auth);
    if (l->cfg->jwt != NULL)
        l->cfg->auth_mechanisms |= CONFIG_AUTH_JWT;
    return rc;
}

static int load_auth(cfg_loader *l, const json_t *root)
{
    const json_t *auth;
    if (cfg_read_object(l, root, "auth", &auth) != 0)
        return -1;
    if (auth == NULL)
        return 0;
    size_t mark = cfg_path_push_key(&l->path, "auth");
    int rc = load_auth_fields(l, auth);
    cfg_path_pop(&l->path, mark);
    return rc;
}

static int load_log(cfg_loader *l, const json_t *root)
{
    const json_t *log;
    if (cfg_read_object(l, root, "log", &log) != 0)
        return -1;
    if (log == NULL)
        return 0;
    size_t mark = cfg_path_push_key(&l->path, "log");
    int level = (int)l->cfg->log_level;
    int rc = cfg_check_keys(l, log, log_keys);
    rc |= cfg_read_enum(l, log, "level", cfg_log_level_names, CFG_COUNT_OF(cfg_log_level_names),
                        &level);
    rc |= cfg_read_bool(l, log, "access", &l->cfg->log_access);
    rc |= cfg_read_bool(l, log, "access_admin", &l->cfg->log_access_admin);
    rc |= cfg_read_unsigned(l, log, "debug_bytes", &cfg_non_negative_count, &l->cfg->log_debug_bytes);
    l->cfg->log_level = (config_log_level)level;
    cfg_path_pop(&l->path, mark);
    return rc;
}

static int load_limits(cfg_loader *l, const json_t *root)
{
    const json_t *limits;
    if (cfg_read_object(l, root, "limits", &limits) != 0)
        return -1;
    if (limits == NULL)
        return 0;
    size_t mark = cfg_path_push_key(&l->path, "limits");
    config_limits *out = &l->cfg->limits;
    int rc = cfg_check_keys(l, limits, limits_keys);
    rc |= cfg_read_integer(l, limits, "max_body_bytes", &cfg_positive_bytes, &out->max_body_bytes);
    rc |= cfg_read_unsigned(l, limits, "max_connections", &cfg_positive_count,
                            &out->max_connections);
    rc |= cfg_read_unsigned(l, limits, "max_inflight", &cfg_positive_count, &out->max_inflight);
    rc |= cfg_read_integer(l, limits, "idle_timeout_ms", &cfg_positive_ms, &out->idle_timeout_ms);
    rc |= cfg_read_integer(l, limits, "max_reply_bytes", &cfg_positive_bytes, &out->max_reply_bytes);
    uint64_t keys = out->rate_limit_keys;
    rc |= cfg_read_integer(l, limits, "rate_limit_keys", &rate_limit_keys_rule, &keys);
    out->rate_limit_keys = (size_t)keys;
    cfg_path_pop(&l->path, mark);
    return rc;
}

/* ---- services ------------------------------------------------------------ */

static bool is_valid_service_name(const char *name)
{
    if (*name == '\0')
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static int load_endpoint(cfg_loader *l, const json_t *endpoint, config_service *service)
{
    if (!json_is_string(endpoint))
        return cfg_fail(l, "expected \"host:port\"");
    const char *reason = hostport_parse(json_string_value(endpoint), 0,
                                        &service->endpoints[service->endpoint_count]);
    if (reason != NULL)
        return cfg_fail(l, "expected \"host:port\" (%s)", reason);
    service->endpoint_count++;
    return 0;
}

static int load_endpoints(cfg_loader *l, const json_t *object, config_service *service)
{
    const json_t *endpoints = json_object_get(object, "endpoints");
    if (endpoints == NULL)
        return cfg_fail_at(l, "endpoints", "required");
    if (!json_is_array(endpoints) || json_array_size(endpoints) == 0)
        return cfg_fail_at(l, "endpoints", "expected a non-empty array of \"host:port\"");
    service->endpoints = cfg_calloc(l, json_array_size(endpoints), sizeof *service->endpoints);
    if (service->endpoints == NULL)
        return -1;
    size_t mark = cfg_path_push_key(&l->path, "endpoints");
    size_t index;
    json_t *endpoint;
    int rc = 0;
    json_array_foreach (endpoints, index, endpoint) {
        size_t inner = cfg_path_push_index(&l->path, index);
        rc |= load_endpoint(l, endpoint, service);
        cfg_path_pop(&l->path, inner);
    }
    cfg_path_pop(&l->path, mark);
    return rc;
}

static int read_tls_file(cfg_loader *l, const json_t *object, const char *key, char **out)
{
    const char *text = NULL;
    if (cfg_read_string(l, object, key, &text) != 0)
        return -1;
    if (text == NULL)
        return 0;
    *out = cfg_resolve_path(l, key, text);
    return *out != NULL ? 0 : -1;
}

static int load_tls_fields(cfg_loader *l, const json_t *object, config_tls *tls)
{
    const char *servername = NULL;
    int rc = cfg_check_keys(l, object, tls_keys);
    rc |= read_tls_file(l, object, "ca", &tls->ca);
    int pair_rc = read_tls_file(l, object, "cert", &tls->cert);
    pair_rc |= read_tls_file(l, object, "key", &tls->key);
    rc |= pair_rc;
    rc |= cfg_read_string(l, object, "servername", &servername);
    rc |= cfg_read_bool(l, object, "verify", &tls->verify);
    if (pair_rc == 0 && (tls->cert == NULL) != (tls->key == NULL))
        rc = cfg_fail(l, "cert and key must be given together");
    if (servername != NULL && (tls->servername = cfg_strdup(l, servername)) == NULL)
        rc = -1;
    return rc;
}

static int load_tls(cfg_loader *l, const json_t *object, config_service *service)
{
    const json_t *tls;
    if (cfg_read_object(l, object, "tls", &tls) != 0)
        return -1;
    if (tls == NULL)
        return 0;
    service->tls = cfg_calloc(l, 1, sizeof *service->tls);
    if (service->tls == NULL)
        return -1;
    service->tls->verify = true;
    size_t mark = cfg_path_push_key(&l->path, "tls");
    int rc = load_tls_fields(l, tls, service->tls);
    cfg_path_pop(&l->path, mark);
    return rc;
}

/* One setting of core/settings.h's table, read by its kind. */
typedef enum setting_kind { KIND_MS, KIND_MS0, KIND_COUNT0, KIND_POOL, KIND_BYTES, KIND_FLAG, KIND_CONNECT,
                            KIND_BALANCE } setting_kind;

static int read_setting(cfg_loader *l, const json_t *object, const char *key, setting_kind kind, void *field)
{
    uint64_t number = 0;
    int rc = 0, choice = -1;
    switch (kind) {
    case KIND_MS:
    case KIND_MS0:
    case KIND_COUNT0:
        rc = cfg_read_integer(l, object, key,
                              kind == KIND_MS ? &cfg_positive_ms : kind == KIND_MS0 ? &cfg_non_negative_ms
                                                                                     : &cfg_non_negative_count,
                              &number);
        if (!rc && json_object_get(object, key))
            *(uint32_t *)field = (uint32_t)number;
        return rc;
    case KIND_POOL:
        return cfg_read_unsigned(l, object, key, &pool_size_rule, (unsigned *)field);
    case KIND_BYTES:
        return cfg_read_integer(l, object, key, &cfg_positive_bytes, (uint64_t *)field);
    case KIND_FLAG:
        return cfg_read_bool(l, object, key, (bool *)field);
    case KIND_CONNECT:
    case KIND_BALANCE:
        rc = kind == KIND_CONNECT ? cfg_read_enum(l, object, key, cfg_connect_names, 2, &choice)
                                  : cfg_read_enum(l, object, key, cfg_balance_names, 2, &choice);
        if (!rc && choice >= 0) {
            if (kind == KIND_CONNECT)
                *(up_connect_mode_t *)field = (up_connect_mode_t)choice;
            else
                *(up_balance_t *)field = (up_balance_t)choice;
        }
        return rc;
    }
    return 0;
}

static int load_service_fields(cfg_loader *l, const json_t *object, config_service *service)
{
    int rc = cfg_check_keys(l, object, service_keys);
    rc |= load_endpoints(l, object, service);
#define READ_SETTING(type, name, def, kind) rc |= read_setting(l, object, #name, KIND_##kind, &service->name);
    UP_SERVICE_SETTINGS(READ_SETTING)
#undef READ_SETTING
    rc |= load_tls(l, object, service);
    return rc;
}

/* A service with a bad name keeps it (routes naming it find it, and get no
 * second error) and still has its fields checked. */
static int load_service(cfg_loader *l, const char *name, const json_t *object,
                        config_service *service)
{
    int rc = 0;
    set_service_defaults(service);
    service->name = cfg_strdup(l, name);
    if (service->name == NULL)
        return -1;
    if (!is_valid_service_name(name))
        rc = cfg_fail(l, "bad service name (expected [A-Za-z0-9_.-]+)");
    if (!json_is_object(object))
        return cfg_fail(l, "expected an object");
    return rc | load_service_fields(l, object, service);
}

static int load_services(cfg_loader *l, const json_t *root)
{
    const json_t *services;
    if (cfg_read_object(l, root, "services", &services) != 0)
        return -1;
    if (services == NULL)
        return 0;
    config *cfg = l->cfg;
    cfg->services = cfg_calloc(l, json_object_size(services), sizeof *cfg->services);
    if (cfg->services == NULL)
        return -1;
    size_t mark = cfg_path_push_key(&l->path, "services");
    const char *name;
    json_t *object;
    int rc = 0;
    json_object_foreach ((json_t *)services, name, object) {
        size_t inner = cfg_path_push_key(&l->path, name);
        /* counted first so that config_free() sees a partly loaded one */
        rc |= load_service(l, name, object, &cfg->services[cfg->service_count++]);
        cfg_path_pop(&l->path, inner);
    }
    cfg_path_pop(&l->path, mark);
    return rc;
}

/* ---- generic_api --------------------------------------------------------- */

static void set_generic_api_for_all(config *cfg, bool on)
{
    for (size_t i = 0; i < cfg->service_count; i++)
        cfg->services[i].generic_api = on;
}

/* dns.servers: "ip" or "ip:port" each, as core/resolver.h parses them. */
static int load_dns(cfg_loader *l, const json_t *root)
{
    const json_t *dns;
    if (cfg_read_object(l, root, "dns", &dns) != 0 || dns == NULL)
        return dns == NULL ? 0 : -1;
    size_t mark = cfg_path_push_key(&l->path, "dns");
    int rc = cfg_check_keys(l, dns, dns_keys);
    const json_t *servers = json_object_get(dns, "servers");
    if (servers && (!json_is_array(servers) || json_array_size(servers) == 0 ||
                    json_array_size(servers) > RESOLVER_MAX_SERVERS)) {
        rc |= cfg_fail_at(l, "servers", "expected a list of 1 to 16 DNS servers (\"ip\" or \"ip:port\")");
        servers = NULL;
    }
    if (servers) {
        config *cfg = l->cfg;
        cfg->dns_servers = cfg_calloc(l, json_array_size(servers), sizeof *cfg->dns_servers);
        size_t inner = cfg_path_push_key(&l->path, "servers");
        size_t index;
        json_t *server;
        json_array_foreach (servers, index, server) {
            size_t at = cfg_path_push_index(&l->path, index);
            resolver_server_t parsed;
            const char *why = json_is_string(server) ? resolver_server_parse(json_string_value(server), &parsed)
                                                     : "expected a string";
            if (why)
                rc |= cfg_fail(l, "%s (a DNS server is \"ip\" or \"ip:port\")", why);
            else if (cfg->dns_servers && (cfg->dns_servers[cfg->dns_server_count] =
                                              cfg_strdup(l, json_string_value(server))) != NULL)
                cfg->dns_server_count++;
            cfg_path_pop(&l->path, at);
        }
        cfg_path_pop(&l->path, inner);
    }
    cfg_path_pop(&l->path, mark);
    return rc;
}

static int load_generic_api_name(cfg_loader *l, const json_t *name)
{
    if (!json_is_string(name))
        return cfg_fail(l, "expected a service name");
    config_service *service = (config_service *)config_find_service(
        l->cfg, json_string_value(name), json_string_length(name));
    if (service == NULL)
        return cfg_fail_unknown_service(l, NULL, json_string_value(name));
    service->generic_api = true;
    return 0;
}

static int load_generic_api_list(cfg_loader *l, const json_t *names)
{
    set_generic_api_for_all(l->cfg, false);
    size_t index;
    json_t *name;
    int rc = 0;
    json_array_foreach (names, index, name) {
        size_t mark = cfg_path_push_index(&l->path, index);
        rc |= load_generic_api_name(l, name);
        cfg_path_pop(&l->path, mark);
    }
    return rc;
}

static int load_generic_api(cfg_loader *l, const json_t *root)
{
    const json_t *value = json_object_get(root, "generic_api");
    if (value == NULL)
        return 0;
    if (json_is_boolean(value)) {
        set_generic_api_for_all(l->cfg, json_is_true(value));
        return 0;
    }
    if (!json_is_array(value))
        return cfg_fail_at(l, "generic_api", "expected true, false or a list of service names");
    size_t mark = cfg_path_push_key(&l->path, "generic_api");
    int rc = load_generic_api_list(l, value);
    cfg_path_pop(&l->path, mark);
    return rc;
}


/* ---- docs_assets --------------------------------------------------------- */

/* An http(s) URL or an absolute path, without characters that would need
 * escaping in an HTML attribute or a URL. */
static bool is_assets_base(const char *text)
{
    if (strncmp(text, "https://", 8) != 0 && strncmp(text, "http://", 7) != 0 && text[0] != '/')
        return false;
    if (strcmp(text, "http://") == 0 || strcmp(text, "https://") == 0)
        return false;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || strchr("\"'<>\\`{}|^", *p) != NULL)
            return false;
    return true;
}

/* docs_assets: kept ending in '/', as a base for the asset names. */
static int load_docs_assets(cfg_loader *l, const json_t *root)
{
    const char *text = NULL;
    if (cfg_read_string(l, root, "docs_assets", &text) != 0)
        return -1;
    if (text == NULL)
        return 0;
    if (!is_assets_base(text))
        return cfg_fail_at(l, "docs_assets", "expected an http:// or https:// URL, or a path starting "
                                             "with /, of visible ASCII characters (no quotes, <, >, {, })");
    size_t n = strlen(text);
    bool slash = text[n - 1] == '/';
    char *copy = cfg_calloc(l, n + 2, 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, text, n);
    if (!slash)
        copy[n] = '/';
    l->cfg->docs_assets = copy;
    return 0;
}

const char *config_docs_assets(const config *cfg)
{
    return cfg->docs_assets != NULL ? cfg->docs_assets : CONFIG_DOCS_ASSETS_DEFAULT;
}

/* ---- the document -------------------------------------------------------- */

/* A top-level "$schema" names the file's JSON Schema for editors
 * (config/patterngate.schema.json). It must be a string and is otherwise
 * ignored: dropped before substitution, so never expanded. */
static int drop_schema_reference(cfg_loader *l, json_t *root)
{
    const json_t *value = json_object_get(root, "$schema");
    if (value == NULL)
        return 0;
    int rc = json_is_string(value) ? 0 : cfg_fail_at(l, "$schema", "expected a string (where the config's JSON Schema is)");
    json_object_del(root, "$schema");
    return rc;
}

static int load_document(cfg_loader *l, json_t *root)
{
    if (!json_is_object(root))
        return cfg_fail(l, "expected a JSON object at the top level");
    drop_schema_reference(l, root);
    cfg_substitute_all(l, root);
    cfg_check_keys(l, root, top_keys);
    load_listeners(l, root);
    load_workers(l, root);
    cfg_read_integer(l, root, "shutdown_grace_ms", &cfg_non_negative_ms,
                     &l->cfg->shutdown_grace_ms);
    load_auth(l, root);
    cfg_load_cors(l, root, &l->cfg->cors);
    load_log(l, root);
    load_limits(l, root);
    load_dns(l, root);
    load_docs_assets(l, root);
    /* routes need the services; generic_api names them */
    if (load_services(l, root) == 0 || l->cfg->services != NULL) {
        load_generic_api(l, root);
        cfg_load_routes(l, root);
    }
    return cfg_failed(l) ? -1 : 0;
}

/* ---- problems ------------------------------------------------------------ */

static void error_reset(config_error *error)
{
    error->kind = CONFIG_ERROR_NONE;
    error->message[0] = '\0';
    error->count = 0;
    error->truncated = false;
}

static void add_problem_at(config_error *error, config_error_kind kind, const char *reason,
                           cfg_position at)
{
    size_t before = error->count;
    cfg_add_problem(error, kind, "", reason);
    if (error->count > before) {
        error->problems[before].line = at.line;
        error->problems[before].column = at.column;
    }
}

static void record_syntax_error(config_error *error, const char *text, size_t length,
                                const json_error_t *e)
{
    static const cfg_position nowhere = {0, 0};
    if (json_error_code(e) == json_error_out_of_memory) {
        add_problem_at(error, CONFIG_ERROR_MEMORY, "out of memory", nowhere);
        return;
    }
    cfg_syntax_hint hint;
    if (e->line >= 1 && e->position >= 0 &&
        cfg_syntax_explain(text, length, (size_t)e->position, &hint)) {
        add_problem_at(error, CONFIG_ERROR_SYNTAX, hint.reason,
                       cfg_position_of(text, length, hint.offset));
        return;
    }
    cfg_position at = {e->line >= 1 ? (unsigned)e->line : 0,
                       e->line >= 1 ? (unsigned)(e->column < 1 ? 1 : e->column) : 0};
    add_problem_at(error, CONFIG_ERROR_SYNTAX, e->text, at);
}

static bool comes_before(const config_problem *a, const config_problem *b)
{
    if (a->line == 0 || b->line == 0)
        return a->line != 0 && b->line == 0;
    return a->line < b->line || (a->line == b->line && a->column < b->column);
}

/* Positions of the schema problems from their paths, then the problems in
 * the order of their positions (stable: the loader's order otherwise). */
static void place_problems(config_error *error, const char *text, size_t length)
{
    for (size_t i = 0; i < error->count; i++) {
        config_problem *p = &error->problems[i];
        if (p->kind != CONFIG_ERROR_SCHEMA)
            continue;
        cfg_position at = cfg_position_of(text, length, cfg_locate(text, length, p->path));
        p->line = at.line;
        p->column = at.column;
    }
    for (size_t i = 1; i < error->count; i++) {
        config_problem moving = error->problems[i];
        size_t j = i;
        for (; j > 0 && comes_before(&moving, &error->problems[j - 1]); j--)
            error->problems[j] = error->problems[j - 1];
        error->problems[j] = moving;
    }
}

/* kind and message from problems[0], in the one-message form of config.h. */
static void set_first_message(config_error *error, const char *source)
{
    if (error->count == 0)
        return;
    const config_problem *p = &error->problems[0];
    char line[CONFIG_ERROR_SIZE];
    error->kind = p->kind;
    if (p->kind == CONFIG_ERROR_SCHEMA)
        snprintf(line, sizeof line, "%s%s%s", p->path, p->path[0] ? ": " : "", p->reason);
    else if (p->kind == CONFIG_ERROR_SYNTAX && p->line > 0)
        snprintf(line, sizeof line, "%s:%u:%u: %s", source, p->line, p->column, p->reason);
    else if (p->kind == CONFIG_ERROR_MEMORY)
        snprintf(line, sizeof line, "%s", p->reason);
    else
        snprintf(line, sizeof line, "%s: %s", source, p->reason);
    cfg_copy_line(error->message, sizeof error->message, line);
}

int config_problem_format(const config_error *error, size_t index, const char *source,
                          char *buf, size_t size)
{
    const config_problem *p = &error->problems[index];
    char where[CONFIG_ERROR_SIZE] = "";
    if (p->kind == CONFIG_ERROR_MEMORY)
        source = NULL;
    if (source != NULL && p->line > 0)
        snprintf(where, sizeof where, "%s:%u:%u: ", source, p->line, p->column);
    else if (p->line > 0)
        snprintf(where, sizeof where, "%u:%u: ", p->line, p->column);
    else if (source != NULL)
        snprintf(where, sizeof where, "%s: ", source);
    char line[CONFIG_ERROR_SIZE + CFG_PATH_SIZE + CONFIG_REASON_SIZE];
    snprintf(line, sizeof line, "%s%s%s%s", where, p->path, p->path[0] ? ": " : "", p->reason);
    cfg_copy_line(buf, size, line);
    return (int)strlen(buf);
}

/* ---- loading ------------------------------------------------------------- */

/* Parses and loads; `source` names the text in syntax errors. */
static int load_text(const char *text, size_t length, const char *source, const char *file,
                     const config_load_options *options, config **out, config_error *error)
{
    static const config_load_options no_options;
    json_error_t json_error;
    *out = NULL;
    json_t *root = json_loadb(text, length, JSON_REJECT_DUPLICATES, &json_error);
    if (root == NULL) {
        record_syntax_error(error, text, length, &json_error);
        set_first_message(error, source);
        return -1;
    }
    cfg_loader l = {.error = error, .options = options ? options : &no_options, .file = file};
    cfg_path_init(&l.path);
    l.cfg = cfg_calloc(&l, 1, sizeof *l.cfg);
    if (l.cfg != NULL) {
        set_defaults(l.cfg);
        if (file != NULL)
            l.cfg->file = cfg_strdup(&l, file);
    }
    int rc = cfg_failed(&l) ? -1 : load_document(&l, root);
    json_decref(root);
    free(l.base_dir);
    if (rc != 0) {
        config_free(l.cfg);
        place_problems(error, text, length);
        set_first_message(error, source);
        return -1;
    }
    *out = l.cfg;
    return 0;
}

/* Reads a whole file into *text (free() it). Returns 0 or -1 (IO/MEMORY). */
static int read_file(const char *path, char **text, size_t *length, config_error *error)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        cfg_add_problem(error, CONFIG_ERROR_IO, "", strerror(errno));
        return -1;
    }
    buf_t buf = BUF_INIT;
    char chunk[65536];
    size_t n;
    int rc = 0; /* after a failed append, read on: a read error is reported first */
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && buf.len <= CONFIG_FILE_MAX) {
        if (rc == 0)
            rc = buf_append(&buf, chunk, n);
    }
    int read_errno = ferror(f) ? errno : 0;
    fclose(f);
    if (read_errno != 0)
        cfg_add_problem(error, CONFIG_ERROR_IO, "", strerror(read_errno));
    else if (buf.len > CONFIG_FILE_MAX)
        cfg_add_problem(error, CONFIG_ERROR_IO, "", "larger than 16 MiB");
    else if (rc != 0)
        cfg_add_problem(error, CONFIG_ERROR_MEMORY, "", "out of memory");
    if (error->count > 0) {
        buf_free(&buf);
        return -1;
    }
    *length = buf.len;
    *text = buf_take_cstr(&buf);
    buf_free(&buf);
    if (*text == NULL) {
        cfg_add_problem(error, CONFIG_ERROR_MEMORY, "", "out of memory");
        return -1;
    }
    return 0;
}

/* ---- public API ---------------------------------------------------------- */

int config_load_file(const char *path, const config_load_options *options, config **out,
                     config_error *error)
{
    char *text = NULL;
    size_t length = 0;
    *out = NULL;
    error_reset(error);
    if (read_file(path, &text, &length, error) != 0) {
        set_first_message(error, path);
        return -1;
    }
    int rc = load_text(text, length, path, path, options, out, error);
    free(text);
    return rc;
}

int config_load_string(const char *text, size_t length, const config_load_options *options,
                       config **out, config_error *error)
{
    const char *source = options && options->source_name ? options->source_name : "<string>";
    error_reset(error);
    return load_text(text, length, source, NULL, options, out, error);
}

int config_load_default(config **out, config_error *error)
{
    config_load_options options = {.source_name = "<default>"};
    return config_load_string(default_config_json, sizeof default_config_json - 1, &options,
                              out, error);
}

static void free_tls(config_tls *tls)
{
    if (tls == NULL)
        return;
    free(tls->ca);
    free(tls->cert);
    free(tls->key);
    free(tls->servername);
    free(tls);
}

static void free_services(config *cfg)
{
    for (size_t i = 0; i < cfg->service_count; i++) {
        free(cfg->services[i].name);
        free(cfg->services[i].endpoints);
        free_tls(cfg->services[i].tls);
    }
    free(cfg->services);
}

static void free_routes(config *cfg)
{
    for (size_t i = 0; i < cfg->route_count; i++) {
        route_path_free(&cfg->routes[i].path);
        free(cfg->routes[i].pattern_json);
        template_free(&cfg->routes[i].data);
        cfg_free_route_edge(&cfg->routes[i]);
        cfg_free_route_description(&cfg->routes[i]);
    }
    free(cfg->routes);
}

void config_free(config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->bearer_token_count; i++)
        free(cfg->bearer_tokens[i]);
    free(cfg->bearer_tokens);
    for (size_t i = 0; i < cfg->dns_server_count; i++)
        free(cfg->dns_servers[i]);
    free(cfg->dns_servers);
    free(cfg->docs_assets);
    cfg_free_jwt(cfg->jwt);
    cfg_free_cors(cfg->cors);
    free_services(cfg);
    free_routes(cfg);
    free(cfg->file);
    free(cfg);
}

int config_summary(const config *cfg, char *buf, size_t size)
{
    return snprintf(buf, size, "%zu service%s, %zu route%s", cfg->service_count,
                    cfg->service_count == 1 ? "" : "s", cfg->route_count,
                    cfg->route_count == 1 ? "" : "s");
}

const config_service *config_find_service(const config *cfg, const char *name, size_t length)
{
    for (size_t i = 0; i < cfg->service_count; i++) {
        const char *candidate = cfg->services[i].name;
        if (candidate != NULL && strlen(candidate) == length && memcmp(candidate, name, length) == 0)
            return &cfg->services[i];
    }
    return NULL;
}

bool config_routes_conflict(const config_route *a, const config_route *b)
{
    bool same_method = a->method == b->method || a->method == CONFIG_METHOD_ANY ||
                       b->method == CONFIG_METHOD_ANY;
    return same_method && route_path_same_shape(&a->path, &b->path);
}
