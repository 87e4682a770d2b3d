/*
 * settings: the one description of a service's scalar settings, as an
 * X-macro table. The config loader's struct (config_service), the upstream
 * client's options (up_service_opts_t) and the reload fingerprint are all
 * generated from it, so a setting added here is loaded, copied, defaulted
 * and fingerprinted everywhere at once, and one that is not here cannot be
 * in those structs (tests/unit/test_settings.c changes each field in turn
 * and checks that the fingerprint sees it).
 *
 * Columns: X(type, name, default, kind)
 *   name     the C field and the config key
 *   kind     how the config reads it (the loader maps each kind to its
 *            rule and message):
 *              MS        milliseconds, 1..2147483647
 *              MS0       milliseconds, 0..2147483647
 *              COUNT0    a count, 0..2147483647
 *              POOL      1..1024
 *              BYTES     1..2^63-1
 *              FLAG      true/false
 *              CONNECT   "eager" / "lazy"
 *              BALANCE   "least_request" / "round_robin"
 *
 * Strings and lists (the name, the endpoints, the TLS files) are not here:
 * each owner keeps them its own way, and settings_fingerprint() takes them
 * as arguments.
 */
#ifndef PG_CORE_SETTINGS_H
#define PG_CORE_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/defaults.h"

typedef enum up_connect_mode { UP_CONNECT_EAGER, UP_CONNECT_LAZY } up_connect_mode_t;

typedef enum up_balance { UP_BALANCE_LEAST_REQUEST, UP_BALANCE_ROUND_ROBIN } up_balance_t;

#define UP_SERVICE_SETTINGS(X)                                                                     \
    X(unsigned, pool_size, PG_DEFAULT_POOL_SIZE, POOL)                                             \
    X(up_connect_mode_t, connect, UP_CONNECT_EAGER, CONNECT)                                       \
    X(up_balance_t, balance, UP_BALANCE_LEAST_REQUEST, BALANCE)                                    \
    X(uint32_t, connect_timeout_ms, PG_DEFAULT_CONNECT_TIMEOUT_MS, MS)                             \
    X(uint32_t, timeout_ms, PG_DEFAULT_TIMEOUT_MS, MS)                                             \
    X(uint32_t, retry_attempts, PG_DEFAULT_RETRY_ATTEMPTS, COUNT0)                                 \
    X(uint32_t, retry_delay_ms, PG_DEFAULT_RETRY_DELAY_MS, MS0)                                    \
    X(uint64_t, max_message_bytes, PG_DEFAULT_MAX_MESSAGE_BYTES, BYTES)                            \
    X(uint32_t, incomplete_frame_timeout_ms, PG_DEFAULT_INCOMPLETE_FRAME_TIMEOUT_MS, MS)           \
    X(uint32_t, resolve_interval_ms, PG_DEFAULT_RESOLVE_INTERVAL_MS, MS0)                          \
    X(uint32_t, max_connection_age_ms, 0, MS0)                                                     \
    X(bool, metadata, PG_DEFAULT_METADATA, FLAG)

/* Declares the fields of the table inside a struct. */
#define UP_SETTINGS_FIELD(type, name, def, kind) type name;

/* The scalar settings alone. */
typedef struct up_settings {
    UP_SERVICE_SETTINGS(UP_SETTINGS_FIELD)
} up_settings_t;

/* The defaults of every field. */
void settings_defaults(up_settings_t *s);

/* Names as the config writes them: "eager"/"lazy", "least_request"/
 * "round_robin". */
const char *settings_connect_name(up_connect_mode_t mode);
const char *settings_balance_name(up_balance_t balance);

/*
 * Appends a text that differs whenever two services would need different
 * connections: every field of the table, then the endpoints and the TLS
 * settings given (tls_fields: NULL-terminated "name=value" strings, e.g.
 * the files' paths and their contents' digests; NULL for plain TCP).
 * 0, or -ENOMEM.
 */
int settings_fingerprint(buf_t *out, const up_settings_t *s, const char *const *endpoints, size_t n_endpoints,
                         const char *const *tls_fields);

#endif
