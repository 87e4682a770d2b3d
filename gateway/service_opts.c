#include "gateway/service_opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void service_opts_endpoints(const config_service *s, char (*storage)[HOSTPORT_TEXT_SIZE], const char **texts)
{
    for (size_t k = 0; k < s->endpoint_count; k++) {
        hostport_format(&s->endpoints[k], storage[k], sizeof storage[k]);
        texts[k] = storage[k];
    }
}

up_service_t *service_opts_add(upstream_t *up, const config_service *s, up_service_stats_t *stats, char *why,
                               size_t whylen)
{
    char (*storage)[HOSTPORT_TEXT_SIZE] = calloc(s->endpoint_count, sizeof *storage);
    const char **texts = calloc(s->endpoint_count, sizeof *texts);
    if (!storage || !texts) {
        free(storage);
        free(texts);
        snprintf(why, whylen, "services.%s: out of memory", s->name);
        return NULL;
    }
    service_opts_endpoints(s, storage, texts);
    up_service_opts_t o;
    tls_client_opts_t tls;
    up_service_opts_defaults(&o);
    o.name = s->name;
    o.endpoints = texts;
    o.n_endpoints = s->endpoint_count;
    o.settings = s->settings;
    o.stats = stats;
    if (s->tls) {
        tls = (tls_client_opts_t){ s->tls->ca, s->tls->cert, s->tls->key, s->tls->verify };
        o.tls = &tls;
        o.servername = s->tls->servername;
    }
    char err[300];
    up_service_t *svc = up_service_add(up, &o, err, sizeof err);
    free(storage);
    free(texts);
    if (!svc) /* "tls.FIELD: reason" becomes "services.NAME.tls.FIELD: reason" */
        snprintf(why, whylen, "services.%s%s%s", s->name, strncmp(err, "tls", 3) == 0 ? "." : ": ", err);
    return svc;
}
