#include "gateway/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/json_write.h"

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void logger_init(logger_t *lg, config_log_level level)
{
    lg->level = level;
    lg->fd = 2;
    lg->worker = -1;
    lg->muted = 0;
}

static void append_timestamp(buf_t *b)
{
    struct timespec now;
    struct tm utc;
    char ts[40];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &utc);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);
    buf_append_cstr(b, ts);
}

int log_begin(const logger_t *lg, log_line_t *line, config_log_level level, const char *msg)
{
    line->text = (buf_t)BUF_INIT;
    line->active = level >= lg->level && !lg->muted;
    if (!line->active)
        return 0;
    buf_append_cstr(&line->text, "{\"ts\":\"");
    append_timestamp(&line->text);
    buf_append_cstr(&line->text, "\",\"level\":\"");
    buf_append_cstr(&line->text, level_names[level]);
    buf_append_cstr(&line->text, "\",\"msg\":");
    json_append_string(&line->text, msg, strlen(msg));
    if (lg->worker >= 0) {
        buf_append_cstr(&line->text, ",\"worker\":");
        buf_append_u64(&line->text, (unsigned long long)lg->worker);
    }
    return 1;
}

static void key(log_line_t *line, const char *k)
{
    buf_append(&line->text, ",", 1);
    json_append_string(&line->text, k, strlen(k));
    buf_append(&line->text, ":", 1);
}

void log_strn(log_line_t *line, const char *k, const char *value, size_t n)
{
    if (!line->active)
        return;
    key(line, k);
    if (value)
        json_append_string(&line->text, value, n);
    else
        buf_append_cstr(&line->text, "null");
}

void log_str(log_line_t *line, const char *k, const char *value)
{
    log_strn(line, k, value, value ? strlen(value) : 0);
}

void log_int(log_line_t *line, const char *k, long long value)
{
    if (!line->active)
        return;
    char digits[24];
    snprintf(digits, sizeof digits, "%lld", value);
    key(line, k);
    buf_append_cstr(&line->text, digits);
}

void log_raw(log_line_t *line, const char *k, const char *json)
{
    log_rawn(line, k, json, strlen(json));
}

void log_rawn(log_line_t *line, const char *k, const char *json, size_t n)
{
    if (!line->active)
        return;
    key(line, k);
    buf_append(&line->text, json, n);
}

void log_end(const logger_t *lg, log_line_t *line)
{
    if (line->active && buf_append(&line->text, "}\n", 2) == 0) {
        ssize_t rc = write(lg->fd, line->text.data, line->text.len);
        (void)rc; /* nowhere left to report a failed log write */
    }
    buf_free(&line->text);
    line->active = 0;
}

void log_msg(const logger_t *lg, config_log_level level, const char *msg, const char *error)
{
    log_line_t line;
    if (log_begin(lg, &line, level, msg) && error)
        log_str(&line, "error", error);
    log_end(lg, &line);
}
