/*
 * log: JSON lines on stderr (SPEC.md "Signals and logs"):
 *   {"ts":"2026-11-22T01:02:03.456Z","level":"info","msg":"...", ...fields}
 * Strings are escaped by json_append_string (control characters included),
 * so a line is always one line of valid JSON. Each line is written with one
 * write(2), so lines of several workers never interleave. No global state:
 * the caller owns the logger_t.
 *
 * Use: log_begin, then log_str/log_int/log_raw for fields, then log_end.
 * A line below the logger's level is built by nothing (log_begin returns 0
 * and the other calls do nothing).
 *
 * Workers: a worker's logger puts "worker":N after "msg" on every line; the
 * lines about the process as a whole (listening, reloads, shutdown) go
 * through a logger without a worker, which only worker 0 has unmuted, so
 * that they are written once however many workers run.
 */
#ifndef PG_GATEWAY_LOG_H
#define PG_GATEWAY_LOG_H

#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"

typedef struct logger {
    config_log_level level;
    int fd;                 /* 2 unless a test says otherwise */
    int worker;             /* >= 0: every line carries "worker"; -1: none */
    int muted;              /* writes nothing at any level */
} logger_t;

typedef struct log_line {
    buf_t text;
    int active;
} log_line_t;

/* Level `level`, fd 2, no worker, not muted. */
void logger_init(logger_t *lg, config_log_level level);

/* Starts a line; 1 when it will be written, 0 when its level is filtered. */
int log_begin(const logger_t *lg, log_line_t *line, config_log_level level, const char *msg);
void log_str(log_line_t *line, const char *key, const char *value);
void log_strn(log_line_t *line, const char *key, const char *value, size_t n);
void log_int(log_line_t *line, const char *key, long long value);
/* A value that is already JSON text (e.g. a number with decimals). */
void log_raw(log_line_t *line, const char *key, const char *json);
void log_rawn(log_line_t *line, const char *key, const char *json, size_t n);
/* Writes the line and releases it. */
void log_end(const logger_t *lg, log_line_t *line);

/* One-call form for a message with an optional "error" field. */
void log_msg(const logger_t *lg, config_log_level level, const char *msg, const char *error);

#endif
