#include "gateway/uplog.h"

#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"

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

static void forget(uplog_t *cl, uplog_entry_t *e)
{
    free(e->service);
    free(e->endpoint);
    *e = cl->entries[--cl->count];
}

void uplog_event(uplog_t *cl, const up_event_t *ev, uint64_t now_ms)
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
    uplog_entry_t *e = entry_for(cl, ev, now_ms);
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

/* ---- packets ------------------------------------------------------------- */

/* The first `max` bytes of text, cut back to a UTF-8 boundary. */
static size_t cut(span_t text, size_t max)
{
    if (text.n <= max)
        return text.n;
    size_t n = max;
    while (n > 0 && ((unsigned char)text.p[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static void put_cut(log_line_t *line, const char *key, span_t text, size_t max)
{
    log_strn(line, key, text.p, cut(text, max));
}

static void put_data(log_line_t *line, span_t data, size_t max)
{
    put_cut(line, "data", data, max);
    log_int(line, "data_bytes", (long long)data.n);
}

static void packet_out(log_line_t *line, span_t json, size_t max)
{
    span_t v;
    if (jscan_member(json, "pattern", &v)) {
        if (v.n <= max)
            log_rawn(line, "pattern", v.p, v.n);
        else
            put_cut(line, "pattern", v, max);
    }
    if (jscan_member(json, "id", &v))
        log_rawn(line, "id", v.p, v.n);
    if (jscan_member(json, "data", &v))
        put_data(line, v, max);
}

static void packet_in(log_line_t *line, span_t json, size_t max)
{
    static const char *const carried[] = { "err", "response" };
    span_t v;
    if (jscan_member(json, "id", &v))
        log_rawn(line, "id", v.p, v.n);
    for (int i = 0; i < 2; i++) {
        if (jscan_member(json, carried[i], &v)) {
            log_str(line, "kind", carried[i]);
            put_data(line, v, max);
            break;
        }
    }
    if (jscan_member(json, "isDisposed", &v))
        log_rawn(line, "isDisposed", v.p, v.n);
}

static void on_packet(void *ctx, const up_packet_t *p)
{
    uplog_t *cl = ctx;
    log_line_t line;
    int out = p->direction == UP_PACKET_OUT;
    if (!log_begin(cl->log, &line, CONFIG_LOG_DEBUG, out ? "packet sent" : "packet received"))
        return;
    log_str(&line, "service", p->service);
    log_str(&line, "endpoint", p->endpoint);
    if (jscan_type_of(p->json) != JSCAN_OBJECT)
        put_data(&line, p->json, cl->debug_bytes);
    else if (out)
        packet_out(&line, p->json, cl->debug_bytes);
    else
        packet_in(&line, p->json, cl->debug_bytes);
    log_end(cl->log, &line);
}

void uplog_configure(uplog_t *cl, upstream_t *up, const config *cfg)
{
    cl->debug_bytes = cfg->log_debug_bytes;
    if (cfg->log_level == CONFIG_LOG_DEBUG)
        upstream_set_packet_observer(up, on_packet, cl);
    else
        upstream_set_packet_observer(up, NULL, NULL);
}
