#include "gateway/generation.h"

#include "gateway/file_digest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct generation_service {
    up_service_t *svc;
    char *fingerprint;
    unsigned refs;   /* generations using it */
};

static void append_field(buf_t *b, const char *key, const char *value)
{
    buf_append_cstr(b, key);
    buf_append_cstr(b, "=");
    buf_append_cstr(b, value ? value : "-");
    buf_append(b, "\n", 1);
}

static void append_number(buf_t *b, const char *key, unsigned long long v)
{
    char text[32];
    snprintf(text, sizeof text, "%llu", v);
    append_field(b, key, text);
}

/* Everything that makes a service what it is, as text: two services with
 * the same fingerprint can share connections. `generic_api` is left out: it
 * only decides what the HTTP side exposes. */
static char *fingerprint(const config_service *s)
{
    buf_t b = BUF_INIT;
    append_field(&b, "name", s->name);
    for (size_t i = 0; i < s->endpoint_count; i++) {
        char text[HOSTPORT_TEXT_SIZE];
        hostport_format(&s->endpoints[i], text, sizeof text);
        append_field(&b, "endpoint", text);
    }
    append_number(&b, "pool_size", s->pool_size);
    append_number(&b, "connect", (unsigned long long)s->connect);
    append_number(&b, "connect_timeout_ms", s->connect_timeout_ms);
    append_number(&b, "timeout_ms", s->timeout_ms);
    append_number(&b, "retry_attempts", s->retry_attempts);
    append_number(&b, "retry_delay_ms", s->retry_delay_ms);
    append_number(&b, "max_message_bytes", s->max_message_bytes);
    append_number(&b, "incomplete_frame_timeout_ms", s->incomplete_frame_timeout_ms);
    append_number(&b, "metadata", s->metadata);
    if (s->tls) {
        const char *files[] = { s->tls->ca, s->tls->cert, s->tls->key };
        const char *names[] = { "ca", "cert", "key" };
        for (int i = 0; i < 3; i++) {
            append_field(&b, names[i], files[i]);
            char hex[FILE_DIGEST_HEX];
            if (files[i])
                append_field(&b, "sha256", file_digest(files[i], hex) == 0 ? hex : "unreadable");
        }
        append_field(&b, "servername", s->tls->servername);
        append_number(&b, "verify", s->tls->verify);
    }
    return buf_take_cstr(&b);
}

/* The upstream client's options for one configured service; *tls is filled
 * in and used when the service has a tls section. */
static void service_options(const config_service *s, up_service_opts_t *o, const char **endpoints,
                            tls_client_opts_t *tls)
{
    up_service_opts_defaults(o);
    o->name = s->name;
    o->endpoints = endpoints;
    o->n_endpoints = s->endpoint_count;
    o->pool_size = s->pool_size;
    o->connect = s->connect == CONFIG_CONNECT_LAZY ? UP_CONNECT_LAZY : UP_CONNECT_EAGER;
    o->connect_timeout_ms = (uint32_t)s->connect_timeout_ms;
    o->timeout_ms = (uint32_t)s->timeout_ms;
    o->retry_attempts = s->retry_attempts;
    o->retry_delay_ms = (uint32_t)s->retry_delay_ms;
    o->max_message_bytes = (size_t)s->max_message_bytes;
    o->incomplete_frame_timeout_ms = (uint32_t)s->incomplete_frame_timeout_ms;
    o->metadata = s->metadata;
    if (s->tls) {
        *tls = (tls_client_opts_t){ s->tls->ca, s->tls->cert, s->tls->key, s->tls->verify };
        o->tls = tls;
        o->servername = s->tls->servername;
    }
}

static up_service_t *add_service(const config_service *s, upstream_t *up, up_service_stats_t *stats,
                                 const logger_t *log)
{
    char (*texts)[HOSTPORT_TEXT_SIZE] = calloc(s->endpoint_count, sizeof *texts);
    const char **endpoints = calloc(s->endpoint_count, sizeof *endpoints);
    if (!texts || !endpoints) {
        free(texts);
        free(endpoints);
        log_msg(log, CONFIG_LOG_ERROR, "cannot add service", "out of memory");
        return NULL;
    }
    for (size_t k = 0; k < s->endpoint_count; k++) {
        hostport_format(&s->endpoints[k], texts[k], sizeof texts[k]);
        endpoints[k] = texts[k];
    }
    up_service_opts_t o;
    tls_client_opts_t tls;
    service_options(s, &o, endpoints, &tls);
    o.stats = stats;
    if (s->tls && !s->tls->verify) {
        char field[160];
        snprintf(field, sizeof field, "services.%s.tls.verify", s->name);
        log_line_t line;
        if (log_begin(log, &line, CONFIG_LOG_WARN,
                      "TLS certificate verification is off: any server certificate is accepted"))
            log_str(&line, "field", field);
        log_end(log, &line);
    }
    char err[300], why[400];
    up_service_t *svc = up_service_add(up, &o, err, sizeof err);
    free(texts);
    free(endpoints);
    if (!svc) {
        /* "tls.FIELD: reason" becomes "services.NAME.tls.FIELD: reason" */
        snprintf(why, sizeof why, "services.%s%s%s", s->name, strncmp(err, "tls", 3) == 0 ? "." : ": ", err);
        log_msg(log, CONFIG_LOG_ERROR, "cannot add service", why);
    }
    return svc;
}

static void shared_release(generation_service_t *gs, const char *why)
{
    if (!gs || --gs->refs > 0)
        return;
    up_service_remove(gs->svc, why);
    free(gs->fingerprint);
    free(gs);
}

static generation_service_t *find_shared(generation_t *prev, const char *name, const char *fp)
{
    for (size_t i = 0; prev && i < prev->cfg->service_count; i++)
        if (strcmp(prev->cfg->services[i].name, name) == 0 && strcmp(prev->shared[i]->fingerprint, fp) == 0)
            return prev->shared[i];
    return NULL;
}

static int build(generation_t *g, generation_t *prev, upstream_t *up, metrics_t *metrics, const logger_t *log)
{
    const config *cfg = g->cfg;
    size_t ns = cfg->service_count, nr = cfg->route_count;
    g->router = router_new(cfg);
    g->services = calloc(ns + 1, sizeof *g->services);
    g->shared = calloc(ns + 1, sizeof *g->shared);
    g->route_metric = calloc(nr + 1, sizeof *g->route_metric);
    g->service_metric = calloc(ns + 1, sizeof *g->service_metric);
    if (!g->router || !g->services || !g->shared || !g->route_metric || !g->service_metric) {
        log_msg(log, CONFIG_LOG_ERROR, "cannot build the config", "out of memory");
        return -1;
    }
    for (size_t i = 0; i < nr; i++)
        if ((g->route_metric[i] = metrics_route_index(metrics, cfg->routes[i].path.text)) < 0)
            return -1;
    for (size_t i = 0; i < ns; i++) {
        const config_service *s = &cfg->services[i];
        if ((g->service_metric[i] = metrics_service_index(metrics, s->name)) < 0)
            return -1;
        char *fp = fingerprint(s);
        if (!fp)
            return -1;
        generation_service_t *gs = find_shared(prev, s->name, fp);
        if (gs) {
            free(fp);
            gs->refs++;
            g->kept++;
        } else {
            gs = calloc(1, sizeof *gs);
            up_service_t *svc = gs ? add_service(s, up, metrics_service_counters(metrics, g->service_metric[i]), log)
                                   : NULL;
            if (!svc) {
                free(gs);
                free(fp);
                return -1;
            }
            *gs = (generation_service_t){ svc, fp, 1 };
        }
        g->shared[i] = gs;
        g->services[i] = gs->svc;
    }
    return 0;
}

#define RELOAD_REASON "the service was removed or changed by a config reload"

static void generation_free(generation_t *g, const char *why, int free_cfg)
{
    for (size_t i = 0; g->shared && i < g->cfg->service_count; i++)
        shared_release(g->shared[i], why);
    router_free(g->router);
    free(g->services);
    free(g->shared);
    free(g->route_metric);
    free(g->service_metric);
    if (free_cfg)
        config_free(g->cfg);
    free(g);
}

generation_t *generation_new(config *cfg, generation_t *prev, upstream_t *up, metrics_t *metrics, const logger_t *log)
{
    generation_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->refs = 1;
    g->cfg = cfg;
    if (build(g, prev, up, metrics, log)) {
        generation_free(g, "the config could not be applied", 0);
        return NULL;
    }
    return g;
}

void generation_release_why(generation_t *g, const char *why)
{
    if (g && --g->refs == 0)
        generation_free(g, why, 1);
}

void generation_release(generation_t *g)
{
    generation_release_why(g, RELOAD_REASON);
}
