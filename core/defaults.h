/*
 * defaults: SPEC.md's defaults for a service, in one place, so that the
 * config loader and the upstream client's own option defaults (used by the
 * command line) cannot drift apart.
 */
#ifndef PG_CORE_DEFAULTS_H
#define PG_CORE_DEFAULTS_H

#define PG_DEFAULT_POOL_SIZE 1
#define PG_DEFAULT_CONNECT_TIMEOUT_MS 2000
#define PG_DEFAULT_TIMEOUT_MS 5000
#define PG_DEFAULT_RETRY_ATTEMPTS 0
#define PG_DEFAULT_RETRY_DELAY_MS 100
#define PG_DEFAULT_MAX_MESSAGE_BYTES 134217728
#define PG_DEFAULT_METADATA 1

#endif
