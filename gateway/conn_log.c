#include "gateway/conn_log.h"

#include <stdlib.h>
#include <string.h>

struct conn_log_entry {
    char *service;
    char *endpoint;
    uint64_t tokens_at; /* when `tokens` was last brought up to date */
    unsigned tokens;
    unsigned long long suppressed;
};

void conn_log_init(conn_log_t *cl, const logger_t *log)
{
    memset(cl, 0, sizeof *cl);
    cl->log = log;
}

void conn_log_free(conn_log_t *cl)
{
    for (size_t i = 0; i < cl->count; i++) {
        free(cl->entries[i].service);
        free(cl->entries[i].endpoint);
    }
    free(cl->entries);
    cl->entries = NULL;
    cl->count = 0;
}

static conn_log_entry_t *entry_for(conn_log_t *cl, const up_event_t *ev, uint64_t now_ms)
{
    for (size_t i = 0; i < cl->count; i++)
        if (strcmp(cl->entries[i].service, ev->service) == 0 && strcmp(cl->entries[i].endpoint, ev->endpoint) == 0)
            return &cl->entries[i];
    conn_log_entry_t *grown = realloc(cl->entries, (cl->count + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    cl->entries = grown;
    conn_log_entry_t *e = &grown[cl->count];
    *e = (conn_log_entry_t){ strdup(ev->service), strdup(ev->endpoint), now_ms, CONN_LOG_BURST, 0 };
    if (!e->service || !e->endpoint) {
        free(e->service);
        free(e->endpoint);
        return NULL;
    }
    cl->count++;
    return e;
}

/* Token bucket: 1 when the line may be written. */
static int take_token(conn_log_entry_t *e, uint64_t now_ms)
{
    uint64_t refills = (now_ms - e->tokens_at) / CONN_LOG_REFILL_MS;
    if (refills > 0) {
        uint64_t tokens = e->tokens + refills;
        e->tokens = tokens > CONN_LOG_BURST ? CONN_LOG_BURST : (unsigned)tokens;
        e->tokens_at += refills * CONN_LOG_REFILL_MS;
    }
    if (e->tokens == 0)
        return 0;
    e->tokens--;
    return 1;
}

static void forget(conn_log_t *cl, conn_log_entry_t *e)
{
    free(e->service);
    free(e->endpoint);
    *e = cl->entries[--cl->count];
}

void conn_log_event(conn_log_t *cl, const up_event_t *ev, uint64_t now_ms)
{
    static const char *const messages[] = {
        [UP_EV_CONNECTED] = "upstream connected",
        [UP_EV_CONNECT_FAILED] = "upstream connect failed",
        [UP_EV_DISCONNECTED] = "upstream disconnected",
        [UP_EV_EJECTED] = "upstream endpoint ejected",
        [UP_EV_RESOLVED] = "upstream name resolved",
        [UP_EV_RESOLVE_FAILED] = "upstream name resolution failed: the last addresses stay",
        [UP_EV_DRAINED] = "upstream endpoint drained and closed",
        [UP_EV_FOREIGN_REPLY] = "upstream reply is not a Nest reply packet",
    };
    int quiet = ev->type == UP_EV_CONNECTED || ev->type == UP_EV_RESOLVED || ev->type == UP_EV_DRAINED;
    config_log_level level = quiet ? CONFIG_LOG_INFO : CONFIG_LOG_WARN;
    conn_log_entry_t *e = entry_for(cl, ev, now_ms);
    /* ejections are rare by construction (10 s apart at least), and a
     * name's changes are what an operator looks for: never held back */
    int always = ev->type == UP_EV_EJECTED || ev->type == UP_EV_RESOLVED || ev->type == UP_EV_DRAINED;
    if (e && !always && !take_token(e, now_ms)) {
        e->suppressed++;
        return;
    }
    log_line_t line;
    if (log_begin(cl->log, &line, level, messages[ev->type])) {
        log_str(&line, "service", ev->service);
        log_str(&line, ev->type == UP_EV_RESOLVED || ev->type == UP_EV_RESOLVE_FAILED ? "name" : "endpoint",
                ev->endpoint);
        if (ev->from)
            log_str(&line, "from", ev->from);
        if (ev->detail)
            log_str(&line, ev->type == UP_EV_FOREIGN_REPLY ? "reply" : "reason", ev->detail);
        if (ev->type == UP_EV_EJECTED)
            log_int(&line, "ejected_ms", (long long)ev->ejected_ms);
        if (ev->type == UP_EV_RESOLVED) {
            log_int(&line, "joined", (long long)ev->joined);
            log_int(&line, "left", (long long)ev->left);
        }
        if (ev->type == UP_EV_RESOLVED || ev->type == UP_EV_RESOLVE_FAILED)
            log_int(&line, "addresses", (long long)ev->total);
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
    if (ev->type == UP_EV_DRAINED && e) /* the address is gone: so is its entry */
        forget(cl, e);
}
