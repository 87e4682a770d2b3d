#include "gateway/access_log.h"

#include <stdio.h>

void access_log_write(const logger_t *log, const access_entry_t *e)
{
    log_line_t line;
    if (!log_begin(log, &line, CONFIG_LOG_INFO, "access"))
        return;
    char ms[32];
    snprintf(ms, sizeof ms, "%.3f", (double)e->duration_ns / 1e6);
    log_str(&line, "method", e->method);
    log_str(&line, "path", e->path);
    log_str(&line, "query", e->query ? e->query : "");
    log_str(&line, "route", e->route);
    log_int(&line, "status", e->status);
    log_str(&line, "error", e->error);
    log_raw(&line, "duration_ms", ms);
    log_str(&line, "request_id", e->request_id);
    log_str(&line, "service", e->service);
    log_str(&line, "upstream", e->upstream);
    log_str(&line, "client", e->client);
    log_str(&line, "user_agent", e->user_agent);
    log_int(&line, "bytes", (long long)e->bytes);
    log_str(&line, "auth", e->auth);
    log_raw(&line, "rate_limited", e->rate_limited ? "true" : "false");
    log_end(log, &line);
}
