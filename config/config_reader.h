/*
 * config_reader: internal to the config loader (not for other layers). The
 * loader's context, its error reporting with JSON paths, typed readers for
 * members of a JSON object, and the parts of the loader that live in other
 * files (config_routes.c).
 *
 * Every reader looks member `key` up in `object`: when it is absent the
 * reader leaves *out (holding the default) untouched and returns 0; when it
 * is present with a bad value the reader records an error naming the
 * member's JSON path (e.g. "limits.max_body_bytes: expected a positive
 * integer") and returns -1, leaving *out untouched.
 *
 * Errors are collected, not fatal: a loader function that meets a bad value
 * records it and goes on with the next value, returning -1 at the end so
 * that its caller can skip what depends on the bad part. cfg_failed() says
 * whether anything was recorded. Recording keeps at most one problem per
 * JSON path and CONFIG_ERRORS_MAX in all, and nothing after an
 * out-of-memory error.
 */
#ifndef PG_CONFIG_CONFIG_READER_H
#define PG_CONFIG_CONFIG_READER_H

#include "config/cfg_path.h"
#include "config/config.h"
#include "core/hostport.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct cfg_loader {
    config *cfg;                         /* being built; owned by the caller */
    config_error *error;                 /* the caller's */
    const config_load_options *options;  /* never NULL */
    const char *file;                    /* the config file, NULL for a string */
    char *base_dir;                      /* absolute, made on demand; owned */
    cfg_path path;                       /* where we are, for error messages */
    /* paths whose problem is already told: a key suggested for a misspelt
     * one ("endpoint: unknown key (did you mean endpoints?)") is not also
     * reported "required" */
    char told[CONFIG_ERRORS_MAX][CFG_PATH_SIZE];
    size_t told_count;
} cfg_loader;

/* Bounds and wording of an integer member: "expected <expected>". */
typedef struct cfg_int_rule {
    int64_t min;
    int64_t max;
    const char *expected;
    bool mention_max; /* above max, say "(at most N)" */
} cfg_int_rule;

#define CFG_COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))
#define CFG_REASON_SIZE 400 /* a reason without its JSON path */

/* Names of the enumerated values, indexed by the enums of config.h
 * (defined in config.c). */
extern const char *const cfg_method_names[6];
extern const char *const cfg_route_kind_names[2];
extern const char *const cfg_reply_names[5];
extern const char *const cfg_log_level_names[4];
extern const char *const cfg_connect_names[2];
extern const char *const cfg_balance_names[2];
extern const char *const cfg_fanout_names[2];
/* Defined in config_edge.c: a route's auth ("none", "bearer", "jwt") and
 * the algorithms of auth.jwt.algorithms, in CONFIG_JWT_* bit order. */
extern const char *const cfg_route_auth_names[3];
extern const char *const cfg_jwt_algorithm_names[4];

/* Integer rules shared by several keys (defined in config_reader.c). */
extern const cfg_int_rule cfg_positive_ms;    /* 1..CONFIG_MS_MAX */
extern const cfg_int_rule cfg_non_negative_ms; /* 0..CONFIG_MS_MAX */
extern const cfg_int_rule cfg_positive_count; /* 1..CONFIG_COUNT_MAX */
extern const cfg_int_rule cfg_non_negative_count;
extern const cfg_int_rule cfg_positive_bytes; /* 1..INT64_MAX */

/* Adds a problem to *error (see above for what is kept): `path` for SCHEMA
 * only, `reason` copied with control characters escaped (cfg_copy_line).
 * The position is found later, by the loader, from the path. */
void cfg_add_problem(config_error *error, config_error_kind kind, const char *path,
                     const char *reason);

/* Copies src into dst[size] as one line: newline and tab become \n and \t,
 * other control characters \xNN; cut short (whole escapes) to fit. */
void cfg_copy_line(char *dst, size_t size, const char *src);

/* Records a problem at the current path, kind SCHEMA. Returns -1. */
__attribute__((format(printf, 2, 3)))
int cfg_fail(cfg_loader *l, const char *format, ...);

/* cfg_fail() at the path of member `key` of the current value. -1. */
__attribute__((format(printf, 3, 4)))
int cfg_fail_at(cfg_loader *l, const char *key, const char *format, ...);

/* Records "out of memory", kind MEMORY. Returns -1. */
int cfg_fail_memory(cfg_loader *l);

/* strdup()/calloc() that record an out-of-memory error; NULL on failure.
 * cfg_calloc() of 0 items still returns a (1-item) block. */
char *cfg_strdup(cfg_loader *l, const char *text);
void *cfg_calloc(cfg_loader *l, size_t count, size_t size);

/* Records every member of `object` not in `allowed` (NULL-terminated):
 * "PATH.key: unknown key", with "(did you mean K?)" for a close allowed
 * key K that the object lacks (cfg_suggest.h). -1 if there was any. */
int cfg_check_keys(cfg_loader *l, const json_t *object, const char *const *allowed);

int cfg_read_bool(cfg_loader *l, const json_t *object, const char *key, bool *out);
int cfg_read_integer(cfg_loader *l, const json_t *object, const char *key,
                     const cfg_int_rule *rule, uint64_t *out);
/* For unsigned fields; the rule's max must fit an unsigned. */
int cfg_read_unsigned(cfg_loader *l, const json_t *object, const char *key,
                      const cfg_int_rule *rule, unsigned *out);
/* A non-empty string; *out is borrowed from the JSON document. */
int cfg_read_string(cfg_loader *l, const json_t *object, const char *key, const char **out);
/* One of names[0..count), exactly; *out is its index. Error: "expected one
 * of a, b, c", with "(did you mean b?)" for a close string. */
int cfg_read_enum(cfg_loader *l, const json_t *object, const char *key,
                  const char *const *names, size_t count, int *out);
/* A "host:port" string; sets *present (when not NULL) if the key is there. */
int cfg_read_hostport(cfg_loader *l, const json_t *object, const char *key, hostport *out,
                      bool *present);
/* An object member: *out is set to it, or to NULL when absent. */
int cfg_read_object(cfg_loader *l, const json_t *object, const char *key, const json_t **out);

/* Records 'unknown service "NAME"; known: a, b' (or "no services are
 * defined") at member `key` of the current value, or at the current value
 * when key is NULL. Returns -1. */
int cfg_fail_unknown_service(cfg_loader *l, const char *key, const char *name);

/* True once an error has been recorded. */
bool cfg_failed(const cfg_loader *l);

/* Substitutes ${...} in every string value under `value`, in place
 * (keys untouched). Errors name the string's path; a string that fails
 * keeps its text, and the others are still substituted. */
int cfg_substitute_all(cfg_loader *l, json_t *value);

/* Resolves a file path as written in the config: absolute paths are kept,
 * relative ones are joined to the config file's folder (or options->base_dir
 * or the working directory for a string load), made absolute. Returns a new
 * string, or NULL with an error recorded at member `key`. */
char *cfg_resolve_path(cfg_loader *l, const char *key, const char *text);

/* Loads the `routes` array of `root` into l->cfg (services and generic_api
 * must be loaded already): each route's fields, path and data template,
 * then the cross-route checks (conflicts, generic API and admin paths). */
int cfg_load_routes(cfg_loader *l, const json_t *root);

/* Frees a route's summary, description, tags and schemas. */
void cfg_free_route_description(config_route *route);

/* ---- the edge policy (config_edge.c) ---- */

/* Loads member `jwt` of the auth object `auth` (the current path is
 * "auth") into l->cfg->jwt, which is set as soon as the member is an
 * object, even when its fields are bad. */
int cfg_load_jwt(cfg_loader *l, const json_t *auth);

/* Loads member `cors` of `object` into *out (a new config_cors; NULL when
 * absent). On failure *out may hold a partly loaded policy: free it. */
int cfg_load_cors(cfg_loader *l, const json_t *object, config_cors **out);

/* Loads a route's auth, require_claims, cors and rate_limit (the top-level
 * auth must be loaded: its mechanisms are the default). path_known: the
 * route's path parsed, so that a $path.NAME key can be checked. */
int cfg_load_route_edge(cfg_loader *l, const json_t *object, config_route *route,
                        bool path_known);

/* Free what those loaders made; NULL is fine. */
void cfg_free_jwt(config_jwt *jwt);
void cfg_free_cors(config_cors *cors);
void cfg_free_route_edge(config_route *route);

#endif
