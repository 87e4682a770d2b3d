/*
 * config: the patterngate config file (SPEC.md "Config file"), loaded once
 * into a fully owned, validated struct. Runtime code reads this struct and
 * never looks at JSON again.
 *
 * Loading: JSON parsing (jansson, duplicate keys rejected), then `${NAME}` /
 * `${NAME:-default}` substitution in every string value (see env_subst.h;
 * keys are never substituted), then validation of the whole schema. Unknown
 * keys anywhere are errors, except a top-level "$schema": a string naming the
 * file's JSON Schema for editors (config/patterngate.schema.json), ignored
 * and never substituted. An explicit JSON `null` is a type error, not
 * "absent", except inside `pattern` and `data`, which take any JSON.
 *
 * Ownership tree (everything is freed by config_free()):
 *
 *   config
 *    +- bearer_tokens[]            strings
 *    +- jwt                        config_jwt, NULL without auth.jwt
 *    |    +- issuer, audiences[], jwks_file, hs256_secret, forward_claims[]
 *    +- cors                       config_cors, NULL without cors
 *    |    +- allow_origins[], allow_methods[], allow_headers[], expose_headers[]
 *    +- services[]                 config_service (file order)
 *    |    +- name, endpoints[]     (hostport: inline, no heap)
 *    |    +- tls                   config_tls, NULL for plain TCP
 *    +- routes[]                   config_route (file order)
 *         +- path                  route_path (segments)
 *         +- pattern_json          compact JSON text
 *         +- data                  template (literal chunks, slots, objects)
 *         +- require_claims[]      config_claim_rule (claim, value texts)
 *         +- cors                  config_cors, NULL: the top level's
 *         +- rate_limit            config_rate_limit (+ key), NULL: none
 *         +- summary, description, tags[], request_schema_json,
 *            response_schema_json  the route's description (OpenAPI)
 *    +- docs_assets                string, NULL: the default
 *
 * Nothing in a config changes after loading, so one config may be read by
 * several threads at once; a reload builds a new one.
 */
#ifndef PG_CONFIG_CONFIG_H
#define PG_CONFIG_CONFIG_H

#include "core/hostport.h"
#include "core/settings.h"
#include "config/cfg_path.h"
#include "config/route_path.h"
#include "config/template.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- values -------------------------------------------------------------- */

typedef enum config_log_level {
    CONFIG_LOG_DEBUG,
    CONFIG_LOG_INFO,
    CONFIG_LOG_WARN,
    CONFIG_LOG_ERROR,
} config_log_level;


typedef enum config_method {
    CONFIG_METHOD_GET,
    CONFIG_METHOD_POST,
    CONFIG_METHOD_PUT,
    CONFIG_METHOD_PATCH,
    CONFIG_METHOD_DELETE,
    CONFIG_METHOD_ANY, /* "*" */
} config_method;

typedef enum config_route_kind {
    CONFIG_ROUTE_SEND, /* request/reply */
    CONFIG_ROUTE_EMIT, /* event, no reply */
} config_route_kind;

typedef enum config_reply_mode {
    CONFIG_REPLY_AUTO,
    CONFIG_REPLY_ARRAY,
    CONFIG_REPLY_NDJSON,
    CONFIG_REPLY_SSE,
    CONFIG_REPLY_ENVELOPE, /* one value {status, headers, body} sets the answer */
} config_reply_mode;

typedef struct config_limits {
    uint64_t max_body_bytes;  /* >= 1, default 1048576 */
    unsigned max_connections; /* >= 1, default 4096 */
    unsigned max_inflight;    /* >= 1, default 10000 */
    uint64_t idle_timeout_ms; /* >= 1, default 60000 */
    uint64_t max_reply_bytes; /* >= 1, default 67108864: reply bytes held
                                 for one request */
    size_t rate_limit_keys;   /* 1..CONFIG_RATE_LIMIT_KEYS_MAX, default
                                 100000: token buckets kept in all */
} config_limits;

/* A service's TLS settings. File paths are absolute: a relative path in the
 * config is resolved against the config file's folder (for a string load:
 * options->base_dir, else the working directory), made absolute with the
 * working directory at load time if need be. The loader does not open the
 * files; whoever builds the TLS context reports unreadable ones. */
typedef struct config_tls {
    char *ca;         /* NULL: the system trust store */
    char *cert;       /* client certificate; set together with key, or NULL */
    char *key;        /* its private key, or NULL */
    char *servername; /* SNI and the verified name; NULL: the endpoint host */
    bool verify;      /* default true */
} config_tls;

/* Service names match [A-Za-z0-9_.-]+ (they go into URLs and metric
 * labels). The scalar settings (pool_size, connect, balance, timeouts,
 * retry_attempts, max_message_bytes, resolve_interval_ms,
 * max_connection_age_ms, metadata...) are core/settings.h's table, loaded
 * from the keys of the same names with the table's defaults: reachable as
 * fields (service->timeout_ms) and as one struct (service->settings). */
typedef struct config_service {
    char *name;
    hostport *endpoints;          /* >= 1: IP literals or DNS names */
    size_t endpoint_count;
    union {
        up_settings_t settings;
        struct { UP_SERVICE_SETTINGS(UP_SETTINGS_FIELD) };
    };
    bool generic_api;             /* reachable through /v1/send|emit/NAME */
    config_tls *tls;              /* NULL: plain TCP */
} config_service;

typedef enum config_fanout {
    CONFIG_FANOUT_ONE, /* one endpoint, balanced */
    CONFIG_FANOUT_ALL, /* every usable endpoint */
} config_fanout;
/* ---- edge policy (SPEC.md "Edge policy for the ingress direction") ------ */

/* Authentication mechanisms, as bits: config.auth_mechanisms (those
 * configured at the top level) and config_route.auth (those a route
 * accepts, any one sufficing; 0: none, the route needs no token). */
#define CONFIG_AUTH_BEARER 1u /* one of auth.bearer_tokens */
#define CONFIG_AUTH_JWT 2u    /* a JWT valid under auth.jwt */

/* JWS algorithms of auth.jwt.algorithms, as bits. The values are those of
 * gateway/jwt.h's JWT_ALG_* (the layers are apart, so they are repeated
 * here; test_jwks checks they agree). */
#define CONFIG_JWT_RS256 1u
#define CONFIG_JWT_ES256 2u
#define CONFIG_JWT_EDDSA 4u
#define CONFIG_JWT_HS256 8u
/* The algorithms whose keys come from the JWKS file. */
#define CONFIG_JWT_JWKS_ALGORITHMS (CONFIG_JWT_RS256 | CONFIG_JWT_ES256 | CONFIG_JWT_EDDSA)
/* The shortest HS256 secret: as long as the hash (RFC 7518 section 3.2). */
#define CONFIG_JWT_SECRET_MIN 32u
#define CONFIG_JWT_LEEWAY_MAX 3600u

/*
 * auth.jwt: how bearer tokens that are JWTs are verified. Loading checks
 * that every algorithm listed has its key source (RS256/ES256/EdDSA: a
 * jwks_file; HS256: hs256_secret) and that every key source is used by an
 * algorithm. The JWKS file is not opened by the loader (like TLS files):
 * whoever builds the keys (gateway/jwks.h) reads and parses it, at start and
 * whenever it changes.
 */
typedef struct config_jwt {
    char *issuer;              /* NULL: `iss` is not checked */
    char **audiences;          /* audience_count strings; 0: `aud` not checked */
    size_t audience_count;
    char *jwks_file;           /* absolute (resolved like TLS paths); NULL: none */
    unsigned algorithms;       /* CONFIG_JWT_* bits, never 0. Default: every
                                  algorithm of the key sources given */
    char *hs256_secret;        /* the secret's bytes (the string as written,
                                  UTF-8), >= CONFIG_JWT_SECRET_MIN; NULL: none */
    size_t hs256_secret_length;
    uint64_t leeway_s;         /* 0..CONFIG_JWT_LEEWAY_MAX, default 60: clock
                                  skew allowed on exp and nbf */
    char **forward_claims;     /* claim names, distinct, non-empty; sent in the
                                  packet metadata as "jwt.<claim>" */
    size_t forward_claim_count;
} config_jwt;

/* The JSON type of a required claim value. */
typedef enum config_claim_kind {
    CONFIG_CLAIM_STRING,
    CONFIG_CLAIM_NUMBER,
    CONFIG_CLAIM_BOOL,
} config_claim_kind;

/* One member of a route's require_claims: the token's claim `claim` must
 * hold `value` (SPEC.md: a claim that is an array must contain it, a
 * space-separated string such as `scope` must hold it as a word, anything
 * else must equal it; numbers compare by value). */
typedef struct config_claim_rule {
    char *claim;            /* a top-level claim name, as written (may hold
                               '.' or '/', e.g. "https://example.com/roles") */
    config_claim_kind kind;
    char *value_json;       /* the value as compact JSON text: "\"admin\"",
                               "42", "true" */
    char *string;           /* STRING: the value itself (no NUL); else NULL */
    double number;          /* NUMBER: the value */
    bool boolean;           /* BOOL: the value */
} config_claim_rule;

#define CONFIG_CORS_MAX_AGE_MAX 86400u

/*
 * cors (top level, or a route's own, which replaces the top level's for
 * that route). Origins are kept as browsers serialize them: scheme and host
 * in lower case, no default port (":443" for https, ":80" for http), no
 * path; an Origin header is compared with them byte for byte.
 */
typedef struct config_cors {
    bool any_origin;             /* allow_origins ["*"]; then no list, and
                                    never allow_credentials */
    char **allow_origins;        /* normalized origins; NULL when any_origin */
    size_t allow_origin_count;
    char **allow_methods;        /* method tokens as written (methods are
                                    case-sensitive); NULL: the methods of the
                                    path's routes (GET brings HEAD) */
    size_t allow_method_count;   /* >= 1 when allow_methods is set */
    char **allow_headers;        /* request header names, lower case, beyond
                                    the CORS-safelisted ones; may be empty */
    size_t allow_header_count;
    char **expose_headers;       /* response header names as written */
    size_t expose_header_count;
    bool allow_credentials;      /* default false */
    uint64_t max_age_s;          /* 0..CONFIG_CORS_MAX_AGE_MAX, default 600 */
} config_cors;

/* Bounds of a rate_limit (gateway/ratelimit.h's RATELIMIT_RPS_MIN/MAX and
 * RATELIMIT_KEYS_MAX, repeated here; test_jwks checks they agree). */
#define CONFIG_RATE_RPS_MIN 1e-6
#define CONFIG_RATE_RPS_MAX 1e12
#define CONFIG_RATE_LIMIT_KEYS_MAX (1u << 26)

/*
 * A route's rate_limit: a token bucket per value of `key`. The key is kept
 * as written and its form checked at load ($jwt.NAME, $jwt.claims.a.b,
 * $header.NAME, $query.NAME, $path.NAME of a capture, $client.ip); a $jwt
 * key needs jwt among the route's auth mechanisms. A request for which the
 * key has no value (no such header, a bearer token instead of a JWT) is
 * counted in the bucket of the empty key, shared by all such requests.
 */
typedef struct config_rate_limit {
    double rps;                  /* CONFIG_RATE_RPS_MIN..MAX tokens per second */
    uint32_t burst;              /* 1..CONFIG_COUNT_MAX: the bucket's capacity */
    char *key;                   /* the key template as written; NULL: one
                                    bucket for the route as a whole */
} config_rate_limit;

typedef struct config_route {
    config_method method;
    route_path path;              /* path.text is the template as written */
    size_t service_index;         /* into config.services */
    char *pattern_json;           /* compact JSON text of `pattern` */
    size_t pattern_length;        /* strlen(pattern_json) */
    config_route_kind kind;       /* default send */
    template data;                /* default "$body" */
    bool data_default;            /* no `data` key: data is "$body", but a
                                     bodyless GET, HEAD or DELETE sends {}
                                     (gateway/render.h, render_route_data()) */
    config_reply_mode reply;      /* default auto; always auto for emit */
    uint64_t timeout_ms;          /* default: the service's timeout_ms */
    unsigned status;              /* 200..299, default 200 send, 202 emit */
    unsigned retries;             /* 0..PG_MAX_RETRIES, default 0 */
    config_fanout fanout;         /* emit only; default one */
    unsigned auth;                /* CONFIG_AUTH_* bits accepted, any one
                                     sufficing; 0: none. Default: every
                                     mechanism configured at the top level */
    config_claim_rule *require_claims; /* all must hold; only with auth
                                     exactly CONFIG_AUTH_JWT */
    size_t require_claim_count;
    config_cors *cors;            /* the route's own; NULL: the top level's
                                     (see config_route_cors()) */
    config_rate_limit *rate_limit; /* NULL: not limited */
    /* How the route is described (SPEC.md "Describing the API",
     * gateway/openapi.h); none of it changes what the route does. */
    char *summary;                /* NULL: none */
    char *description;            /* NULL: none */
    char **tags;                  /* tag_count non-empty strings (maybe 0);
                                     NULL when the key is absent (the
                                     OpenAPI document then tags the route
                                     with its service's name) */
    size_t tag_count;
    char *request_schema_json;    /* a JSON Schema object, compact JSON
                                     text (as pattern_json); NULL: none */
    char *response_schema_json;   /* the same, of one reply value */
} config_route;

/* Millisecond values (timeouts, delays, grace) are at most
 * CONFIG_MS_MAX, about 24.8 days, so that adding them to a clock never
 * overflows; counts are at most CONFIG_COUNT_MAX. */
#define CONFIG_MS_MAX 2147483647u
#define CONFIG_COUNT_MAX 2147483647u
#define CONFIG_WORKERS_MAX 1024u
#define CONFIG_POOL_SIZE_MAX 1024u

typedef struct config {
    char *file;                   /* the file loaded, as given; NULL for a string */
    hostport listen;              /* default 127.0.0.1:8080 */
    bool has_admin_listen;        /* false: the admin API is served on listen */
    hostport admin_listen;        /* valid when has_admin_listen */
    unsigned workers;             /* 1..1024, or 0 for "auto" (one per CPU) */
    uint64_t shutdown_grace_ms;   /* >= 0, default 10000 */
    char **bearer_tokens;         /* visible ASCII, non-empty; NULL if none */
    size_t bearer_token_count;    /* 0: no bearer tokens */
    config_jwt *jwt;              /* auth.jwt; NULL: no JWT authentication */
    unsigned auth_mechanisms;     /* CONFIG_AUTH_* bits configured under auth
                                     (0: no authentication); the default of a
                                     route's auth, and what the generic API
                                     and admin paths accept */
    config_cors *cors;            /* top-level cors; NULL: no CORS */
    config_log_level log_level;   /* default info */
    bool log_access;              /* default false */
    bool log_access_admin;        /* admin API requests logged too; default false */
    unsigned log_debug_bytes;     /* packet data shown at debug level; default 512 */
    config_limits limits;
    config_service *services;     /* may be empty when there are no routes */
    size_t service_count;
    config_route *routes;
    size_t route_count;
    char **dns_servers;           /* dns.servers ("ip" / "ip:port"); NULL:
                                     /etc/resolv.conf's */
    size_t dns_server_count;
    char *docs_assets;            /* docs_assets: the base URL of Swagger
                                     UI's assets for the admin API's /docs,
                                     ending in '/'; NULL: the default (see
                                     config_docs_assets()) */
} config;

/* ---- loading ------------------------------------------------------------- */

/* Looks an environment variable up: its value (borrowed, valid until the
 * load returns) or NULL when unset. */
typedef const char *config_getenv_fn(void *context, const char *name);

typedef struct config_load_options {
    config_getenv_fn *getenv_fn;  /* NULL: getenv(3) */
    void *getenv_context;         /* passed to getenv_fn */
    const char *source_name;      /* string loads: name in syntax errors;
                                     NULL: "<string>" */
    const char *base_dir;         /* string loads: folder for relative TLS
                                     paths; NULL: the working directory */
} config_load_options;

typedef enum config_error_kind {
    CONFIG_ERROR_NONE,
    CONFIG_ERROR_IO,     /* the file cannot be opened or read, or is too big */
    CONFIG_ERROR_SYNTAX, /* not JSON */
    CONFIG_ERROR_SCHEMA, /* JSON, but not a valid config */
    CONFIG_ERROR_MEMORY, /* out of memory */
} config_error_kind;

#define CONFIG_ERROR_SIZE 1024
#define CONFIG_REASON_SIZE 512
/* At most this many problems are listed (config_error.truncated says when
 * there were more). */
#define CONFIG_ERRORS_MAX 20

/*
 * One problem in a config. A syntax error stops the loader, so it is the
 * only problem; schema errors are all listed (up to CONFIG_ERRORS_MAX), one
 * per value: after a bad value the loader goes on with the next one,
 * skipping only the checks that need the bad one (a route whose path is
 * bad gets no check of its `data` template, but one naming an unknown
 * service still has its other fields checked).
 */
typedef struct config_problem {
    config_error_kind kind;
    /* Where in the text, 1-based, column in characters (UTF-8 sequences);
     * 0 and 0 when unknown (IO, MEMORY). SCHEMA: the member's key, or the
     * array element, that the path names (the deepest part of it that is
     * in the text: for a missing member, the object). SYNTAX: the likely
     * cause ("missing comma" points at the end of the value before). */
    unsigned line;
    unsigned column;
    /* SCHEMA: the JSON path, e.g. "services.math.endpoints[0]", "" at the
     * root; "" for the other kinds. */
    char path[CFG_PATH_SIZE];
    /* One line without the path, the position or the file name, e.g.
     * "unknown key (did you mean timeout_ms?)", "missing comma after the
     * value on line 4?", "No such file or directory". Control characters
     * of quoted config text are escaped. */
    char reason[CONFIG_REASON_SIZE];
} config_problem;

/*
 * What a failed load found: problems[0..count), in the order of their
 * positions in the text (problems without one last).
 *
 * kind and message repeat the first problem, for callers that show one:
 *   SCHEMA  "json.path: reason" (just "reason" at the root), without the
 *           file name (prefix it yourself) or position
 *   SYNTAX  "SOURCE:LINE:COLUMN: reason"
 *   IO      "FILE: reason"
 *   MEMORY  "out of memory"
 * config_problem_format() writes any problem with its file and position.
 * Holds no heap memory; about 16 KiB.
 */
typedef struct config_error {
    config_error_kind kind;             /* of problems[0]; NONE after a success */
    char message[CONFIG_ERROR_SIZE];    /* problems[0] as one line, see above */
    size_t count;                       /* 0 after a success */
    bool truncated;                     /* more than CONFIG_ERRORS_MAX were found */
    config_problem problems[CONFIG_ERRORS_MAX];
} config_error;

/* The largest config file read (bigger ones are an IO error). */
#define CONFIG_FILE_MAX (16u * 1024 * 1024)

/*
 * Loads and validates the config file at `path`. options may be NULL (all
 * defaults). Returns 0 with *out set to a new config (release it with
 * config_free()) and error->kind NONE, or -1 with *out set to NULL and
 * *error listing the problems (at least one). Never exits and never prints.
 */
int config_load_file(const char *path, const config_load_options *options, config **out,
                     config_error *error);

/*
 * Same as config_load_file() for the JSON text[0..length) (need not be
 * NUL-terminated). config.file is NULL in the result.
 */
int config_load_string(const char *text, size_t length, const config_load_options *options,
                       config **out, config_error *error);

/*
 * The embedded default used when no file is named: listen 127.0.0.1:8080,
 * one service "default" at 127.0.0.1:3000, the generic API on, no routes.
 * Same contract as config_load_file(); fails only when out of memory.
 */
int config_load_default(config **out, config_error *error);

/*
 * Writes problem number `index` (< error->count) of a failed load as one
 * line into buf[size], naming the file as `source` (the name the caller
 * loaded, e.g. the path given to config_load_file(); NULL: none):
 *   SCHEMA  "SOURCE:LINE:COLUMN: json.path: reason"
 *   SYNTAX  "SOURCE:LINE:COLUMN: reason"
 *   IO      "SOURCE: reason"
 *   MEMORY  "out of memory"
 * Without a position, ":LINE:COLUMN" is left out; without a source, so is
 * "SOURCE:" (then "LINE:COLUMN: ..."). Control characters (of the source)
 * are escaped; a line longer than size - 1 bytes is cut short. Returns the
 * length written.
 */
int config_problem_format(const config_error *error, size_t index, const char *source,
                          char *buf, size_t size);

/* Releases a config and everything it owns; NULL is fine. */
void config_free(config *cfg);

/* ---- helpers ------------------------------------------------------------- */

/* Writes "N service(s), M route(s)" (e.g. "1 service, 0 routes") into
 * buf[size]; returns what snprintf returns. */
int config_summary(const config *cfg, char *buf, size_t size);

/* The service named name[0..length), or NULL. */
const config_service *config_find_service(const config *cfg, const char *name, size_t length);

/* True when the two routes could not be told apart: the same method (or
 * either is "*") and paths of the same shape (route_path_same_shape()).
 * The loader rejects such pairs. */
bool config_routes_conflict(const config_route *a, const config_route *b);

/* Where /docs loads swagger-ui.css and swagger-ui-bundle.js from when
 * the config has no docs_assets: swagger-ui-dist, major version 5, on the
 * jsDelivr CDN. */
#define CONFIG_DOCS_ASSETS_DEFAULT "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/"

/* The config's docs_assets (ending in '/'), or CONFIG_DOCS_ASSETS_DEFAULT. */
const char *config_docs_assets(const config *cfg);

/* The CORS policy of a route: its own, else the top level's; NULL: none. */
const config_cors *config_route_cors(const config *cfg, const config_route *route);

/* Names as written in the config: "GET".."DELETE", "*"; "send"/"emit";
 * "auto"/"array"/"ndjson"/"sse"; "debug".."error"; "eager"/"lazy". */
const char *config_method_name(config_method method);
const char *config_route_kind_name(config_route_kind kind);
const char *config_reply_mode_name(config_reply_mode reply);
const char *config_log_level_name(config_log_level level);
const char *config_connect_mode_name(up_connect_mode_t connect);
const char *config_fanout_name(config_fanout fanout);

#endif
