#include "gateway/generation.h"

#include "gateway/file_digest.h"
#include "gateway/service_opts.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct generation_service {
    up_service_t *svc;
    char *fingerprint;
    unsigned refs;   /* generations using it */
};

/* "host:port" texts of a service's endpoints (texts[i] point into
 * storage, which has endpoint_count slots). */
/* Everything that makes a service what it is, as text: two services with
 * the same fingerprint can share connections. The settings come from
 * core/settings.h's table (so a new setting is in it by construction), then
 * the endpoints, then the TLS settings with the contents of the TLS files
 * (a certificate renewed in place is a change). `generic_api` is left out:
 * it only decides what the HTTP side exposes. NULL when out of memory. */
static char *fingerprint(const config_service *s)
{
    char (*storage)[HOSTPORT_TEXT_SIZE] = calloc(s->endpoint_count, sizeof *storage);
    const char **texts = calloc(s->endpoint_count, sizeof *texts);
    buf_t b = BUF_INIT;
    char digests[3][FILE_DIGEST_HEX + 16], fields[8][PATH_MAX + 16];
    const char *tls[9] = { NULL };
    if (s->tls) {
        const char *files[] = { s->tls->ca, s->tls->cert, s->tls->key };
        const char *names[] = { "ca", "cert", "key" };
        size_t n = 0;
        for (int i = 0; i < 3; i++) {
            char hex[FILE_DIGEST_HEX];
            snprintf(fields[i], sizeof fields[i], "%s=%s", names[i], files[i] ? files[i] : "-");
            tls[n++] = fields[i];
            snprintf(digests[i], sizeof digests[i], "sha256=%s",
                     !files[i] ? "-" : file_digest(files[i], hex) == 0 ? hex : "unreadable");
            tls[n++] = digests[i];
        }
        snprintf(fields[3], sizeof fields[3], "servername=%s", s->tls->servername ? s->tls->servername : "-");
        snprintf(fields[4], sizeof fields[4], "verify=%d", s->tls->verify);
        tls[n++] = fields[3];
        tls[n++] = fields[4];
    }
    char *fp = NULL;
    if (storage && texts) {
        service_opts_endpoints(s, storage, texts);
        if (buf_append_cstr(&b, "name=") == 0 && buf_append_cstr(&b, s->name) == 0 &&
            settings_fingerprint(&b, &s->settings, texts, s->endpoint_count, s->tls ? tls : NULL) == 0)
            fp = buf_take_cstr(&b);
    }
    buf_free(&b);
    free(storage);
    free(texts);
    return fp;
}

static up_service_t *add_service(const config_service *s, upstream_t *up, up_service_stats_t *stats,
                                 const logger_t *log)
{
    if (s->tls && !s->tls->verify) {
        char field[160];
        snprintf(field, sizeof field, "services.%s.tls.verify", s->name);
        log_line_t line;
        if (log_begin(log, &line, CONFIG_LOG_WARN,
                      "TLS certificate verification is off: any server certificate is accepted"))
            log_str(&line, "field", field);
        log_end(log, &line);
    }
    char why[400];
    up_service_t *svc = service_opts_add(up, s, stats, why, sizeof why);
    if (!svc)
        log_msg(log, CONFIG_LOG_ERROR, "cannot add service", why);
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
    g->edge = edge_new(cfg);
    if (!g->router || !g->services || !g->shared || !g->route_metric || !g->service_metric || !g->edge) {
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
    edge_free(g->edge);
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
