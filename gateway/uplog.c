#include "gateway/uplog.h"

#include <stdlib.h>
#include <string.h>

struct uplog_entry {
    char *service;
    char *endpoint;
    uint64_t tokens_at; /* when `tokens` was last brought up to date */
    unsigned tokens;
    unsigned long long suppressed;
};

void uplog_init(uplog_t *cl, const logger_t *log)
{
    memset(cl, 0, sizeof *cl);
    cl->log = log;
}

void uplog_free(uplog_t *cl)
{
    for (size_t i = 0; i < cl->count; i++) {
        free(cl->entries[i].service);
        free(cl->entries[i].endpoint);
    }
    free(cl->entries);
    cl->entries = NULL;
    cl->count = 0;
}

static uplog_entry_t *entry_for(uplog_t *cl, const up_event_t *ev, uint64_t now_ms)
{
    for (size_t i = 0; i < cl->count; i++)
        if (strcmp(cl->entries[i].service, ev->service) == 0 && strcmp(cl->entries[i].endpoint, ev->endpoint) == 0)
            return &cl->entries[i];
    uplog_entry_t *grown = realloc(cl->entries, (cl->count + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    cl->entries = grown;
    uplog_entry_t *e = &grown[cl->count];
    *e = (uplog_entry_t){ strdup(ev->service), strdup(ev->endpoint), now_ms, UPLOG_BURST, 0 };
    if (!e->service || !e->endpoint) {
        free(e->service);
        free(e->endpoint);
        return NULL;
    }
    cl->count++;
    return e;
}

/* Token bucket: 1 when the line may be written. */
static int take_token(uplog_entry_t *e, uint64_t now_ms)
{
    uint64_t refills = (now_ms - e->tokens_at) / UPLOG_REFILL_MS;
    if (refills > 0) {
        uint64_t tokens = e->tokens + refills;
        e->tokens = tokens > UPLOG_BURST ? UPLOG_BURST : (unsigned)tokens;
        e->tokens_at += refills * UPLOG_REFILL_MS;
    }
    if (e->tokens == 0)
        return 0;
    e->tokens--;
    return 1;
}

void uplog_event(uplog_t *cl, const up_event_t *ev, uint64_t now_ms)
{
    static const char *const messages[] = {
        [UP_EV_CONNECTED] = "upstream connected",
        [UP_EV_CONNECT_FAILED] = "upstream connect failed",
        [UP_EV_DISCONNECTED] = "upstream disconnected",
        [UP_EV_EJECTED] = "upstream endpoint ejected",
    };
    config_log_level level = ev->type == UP_EV_CONNECTED ? CONFIG_LOG_INFO : CONFIG_LOG_WARN;
    uplog_entry_t *e = entry_for(cl, ev, now_ms);
    /* ejections are rare by construction (10 s apart at least): never held back */
    if (e && ev->type != UP_EV_EJECTED && !take_token(e, now_ms)) {
        e->suppressed++;
        return;
    }
    log_line_t line;
    if (log_begin(cl->log, &line, level, messages[ev->type])) {
        log_str(&line, "service", ev->service);
        log_str(&line, "endpoint", ev->endpoint);
        if (ev->detail)
            log_str(&line, "reason", ev->detail);
        if (ev->type == UP_EV_EJECTED)
            log_int(&line, "ejected_ms", (long long)ev->ejected_ms);
        if (ev->tls_version) {
            log_str(&line, "tls", ev->tls_version);
            if (ev->type == UP_EV_CONNECTED)
                log_raw(&line, "resumed", ev->tls_resumed ? "true" : "false");
        }
        if (e && e->suppressed) {
            log_int(&line, "suppressed", (long long)e->suppressed);
            e->suppressed = 0;
        }
    }
    log_end(cl->log, &line);
}
