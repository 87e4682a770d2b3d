#include "gateway/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"
#include "gateway/procstat.h"

/* ---- storage ---------------------------------------------------------- */

/* Bucket bounds in seconds: from 100 µs (loopback replies take tens of µs
 * to a few ms) up to the largest timeout, past which nothing is measured. */
static const double ladder[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
                                 86400 };
#define LADDER_MAX (sizeof ladder / sizeof ladder[0])

typedef struct histogram {
    metric_u64 buckets[LADDER_MAX + 1]; /* per bucket, not cumulative; last: +Inf */
    metric_u64 count;
    metric_u64 sum_ns;
} histogram_t;

static const char *const method_names[] = { "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other" };
#define METHODS (sizeof method_names / sizeof method_names[0])

typedef struct http_series {
    unsigned method;
    unsigned status;
    metric_u64 count;
} http_series_t;

typedef struct route_stats {
    char *label;
    http_series_t *series;
    size_t n, cap;
    histogram_t duration;
} route_stats_t;

typedef struct service_stats {
    char *name;
    histogram_t duration;
} service_stats_t;

struct metrics {
    size_t n_bounds;
    uint64_t bound_ns[LADDER_MAX];
    route_stats_t *routes;
    size_t n_routes;
    service_stats_t *services;
    size_t n_services;
    metric_u64 reloads_ok, reloads_failed;
    int last_reload_ok;
    double last_reload_success_s;
};

metrics_t *metrics_new(uint64_t largest_timeout_ms)
{
    metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    while (m->n_bounds < LADDER_MAX) {
        double b = ladder[m->n_bounds];
        m->bound_ns[m->n_bounds++] = (uint64_t)(b * 1e9 + 0.5);
        if (b * 1000 >= (double)largest_timeout_ms)
            break;
    }
    m->last_reload_ok = 1;
    if (metrics_route_index(m, "generic") != METRICS_ROUTE_GENERIC ||
        metrics_route_index(m, "admin") != METRICS_ROUTE_ADMIN ||
        metrics_route_index(m, "unmatched") != METRICS_ROUTE_UNMATCHED) {
        metrics_free(m);
        return NULL;
    }
    return m;
}

void metrics_free(metrics_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_routes; i++) {
        free(m->routes[i].label);
        free(m->routes[i].series);
    }
    for (size_t i = 0; i < m->n_services; i++)
        free(m->services[i].name);
    free(m->routes);
    free(m->services);
    free(m);
}

int metrics_route_index(metrics_t *m, const char *label)
{
    for (size_t i = 0; i < m->n_routes; i++)
        if (strcmp(m->routes[i].label, label) == 0)
            return (int)i;
    route_stats_t *grown = realloc(m->routes, (m->n_routes + 1) * sizeof *grown);
    if (!grown)
        return -1;
    m->routes = grown;
    route_stats_t *r = &grown[m->n_routes];
    memset(r, 0, sizeof *r);
    if (!(r->label = strdup(label)))
        return -1;
    return (int)m->n_routes++;
}

int metrics_service_index(metrics_t *m, const char *name)
{
    for (size_t i = 0; i < m->n_services; i++)
        if (strcmp(m->services[i].name, name) == 0)
            return (int)i;
    service_stats_t *grown = realloc(m->services, (m->n_services + 1) * sizeof *grown);
    if (!grown)
        return -1;
    m->services = grown;
    service_stats_t *s = &grown[m->n_services];
    memset(s, 0, sizeof *s);
    if (!(s->name = strdup(name)))
        return -1;
    return (int)m->n_services++;
}

static void observe(const metrics_t *m, histogram_t *h, uint64_t ns)
{
    size_t b = 0;
    while (b < m->n_bounds && ns > m->bound_ns[b])
        b++;
    metric_add(&h->buckets[b], 1);
    metric_add(&h->count, 1);
    metric_add(&h->sum_ns, ns);
}

static unsigned method_index(const char *method)
{
    for (unsigned i = 0; i + 1 < METHODS; i++)
        if (strcmp(method, method_names[i]) == 0)
            return i;
    return METHODS - 1;
}

void metrics_http(metrics_t *m, int route, const char *method, unsigned status, uint64_t duration_ns)
{
    if (route < 0 || (size_t)route >= m->n_routes)
        route = METRICS_ROUTE_UNMATCHED;
    route_stats_t *r = &m->routes[route];
    unsigned mi = method_index(method);
    observe(m, &r->duration, duration_ns);
    for (size_t i = 0; i < r->n; i++) {
        if (r->series[i].method == mi && r->series[i].status == status) {
            metric_add(&r->series[i].count, 1);
            return;
        }
    }
    if (r->n == r->cap) { /* a new method+status pair: rare */
        size_t cap = r->cap ? r->cap * 2 : 4;
        http_series_t *grown = realloc(r->series, cap * sizeof *grown);
        if (!grown)
            return;
        r->series = grown;
        r->cap = cap;
    }
    http_series_t *s = &r->series[r->n++];
    s->method = mi;
    s->status = status;
    atomic_init(&s->count, 1);
}

void metrics_upstream_duration(metrics_t *m, int service, uint64_t duration_ns)
{
    if (service >= 0 && (size_t)service < m->n_services)
        observe(m, &m->services[service].duration, duration_ns);
}

void metrics_config_loaded(metrics_t *m, double now_s)
{
    m->last_reload_success_s = now_s;
}

void metrics_reload(metrics_t *m, int ok, double now_s)
{
    metric_add(ok ? &m->reloads_ok : &m->reloads_failed, 1);
    m->last_reload_ok = ok;
    if (ok)
        m->last_reload_success_s = now_s;
}

/* ---- rendering --------------------------------------------------------- */

typedef struct render {
    buf_t *out;
    gateway_t *const *workers;
    size_t n;
    int failed;
    procstat_t proc;    /* read once per scrape */
} render_t;

typedef struct metric_def {
    const char *name;
    const char *type;
    const char *help;
    void (*samples)(render_t *r, const struct metric_def *def);
} metric_def_t;

static void put(render_t *r, const char *text)
{
    r->failed |= buf_append_cstr(r->out, text);
}

/* A label value with \, " and newline escaped. */
static void put_label_value(render_t *r, const char *v)
{
    put(r, "\"");
    for (; *v; v++) {
        char c = *v;
        if (c == '\\' || c == '"' || c == '\n') {
            r->failed |= buf_append(r->out, "\\", 1);
            c = c == '\n' ? 'n' : c;
        }
        r->failed |= buf_append(r->out, &c, 1);
    }
    put(r, "\"");
}

/* name{k1="v1",k2="v2"} value: labels come as key, value pairs ending in
 * NULL; integers below 2^53 are written exactly, other values with 9 significant
 * digits (big ones, timestamps, to the millisecond). */
static void sample(render_t *r, const char *name, const char *suffix, double value, ...)
{
    put(r, name);
    put(r, suffix);
    va_list ap;
    va_start(ap, value);
    const char *key = va_arg(ap, const char *);
    if (key) {
        put(r, "{");
        for (int first = 1; key; key = va_arg(ap, const char *), first = 0) {
            if (!first)
                put(r, ",");
            put(r, key);
            put(r, "=");
            put_label_value(r, va_arg(ap, const char *));
        }
        put(r, "}");
    }
    va_end(ap);
    char num[48];
    if (value == (double)(uint64_t)value && value < 9007199254740992.0)
        snprintf(num, sizeof num, " %llu\n", (unsigned long long)value);
    else
        snprintf(num, sizeof num, value >= 1e6 ? " %.3f\n" : " %.9g\n", value);
    put(r, num);
}

static gateway_t *first(render_t *r) { return r->workers[0]; }

/* Sums one histogram over the workers and writes _bucket, _sum, _count
 * with one label. */
static void histogram_samples(render_t *r, const char *name, const char *label, const char *value,
                              const histogram_t *const *hs, size_t n)
{
    const metrics_t *m = first(r)->metrics;
    uint64_t cumulative = 0, count = 0, sum_ns = 0;
    char le[32];
    for (size_t b = 0; b <= m->n_bounds; b++) {
        for (size_t w = 0; w < n; w++)
            cumulative += hs[w] ? metric_get(&hs[w]->buckets[b]) : 0;
        if (b < m->n_bounds)
            snprintf(le, sizeof le, "%g", (double)m->bound_ns[b] / 1e9);
        else
            snprintf(le, sizeof le, "+Inf");
        sample(r, name, "_bucket", (double)cumulative, label, value, "le", le, NULL);
    }
    for (size_t w = 0; w < n; w++) {
        count += hs[w] ? metric_get(&hs[w]->count) : 0;
        sum_ns += hs[w] ? metric_get(&hs[w]->sum_ns) : 0;
    }
    sample(r, name, "_sum", (double)sum_ns / 1e9, label, value, NULL);
    sample(r, name, "_count", (double)count, label, value, NULL);
}

#define MAX_WORKERS 64

static const route_stats_t *route_of(gateway_t *gw, const char *label)
{
    int i = -1;
    for (size_t k = 0; k < gw->metrics->n_routes; k++)
        if (strcmp(gw->metrics->routes[k].label, label) == 0)
            i = (int)k;
    return i < 0 ? NULL : &gw->metrics->routes[i];
}

static void http_requests(render_t *r, const metric_def_t *def)
{
    const metrics_t *m0 = first(r)->metrics;
    for (size_t ri = 0; ri < m0->n_routes; ri++) {
        const route_stats_t *r0 = &m0->routes[ri];
        for (size_t s = 0; s < r0->n; s++) {
            uint64_t total = 0;
            for (size_t w = 0; w < r->n; w++) {
                const route_stats_t *rw = route_of(r->workers[w], r0->label);
                for (size_t k = 0; rw && k < rw->n; k++)
                    if (rw->series[k].method == r0->series[s].method && rw->series[k].status == r0->series[s].status)
                        total += metric_get(&rw->series[k].count);
            }
            char code[8];
            snprintf(code, sizeof code, "%u", r0->series[s].status);
            sample(r, def->name, "", (double)total, "route", r0->label, "method",
                   method_names[r0->series[s].method], "code", code, NULL);
        }
    }
}

static void http_duration(render_t *r, const metric_def_t *def)
{
    const metrics_t *m0 = first(r)->metrics;
    for (size_t ri = 0; ri < m0->n_routes; ri++) {
        const histogram_t *hs[MAX_WORKERS];
        size_t n = r->n < MAX_WORKERS ? r->n : MAX_WORKERS;
        uint64_t any = 0;
        for (size_t w = 0; w < n; w++) {
            const route_stats_t *rw = route_of(r->workers[w], m0->routes[ri].label);
            hs[w] = rw ? &rw->duration : NULL;
            any += hs[w] ? metric_get(&hs[w]->count) : 0;
        }
        if (any)
            histogram_samples(r, def->name, "route", m0->routes[ri].label, hs, n);
    }
}

static void http_connections(render_t *r, const metric_def_t *def)
{
    uint64_t n = 0;
    for (size_t w = 0; w < r->n; w++)
        n += httpd_connection_count(r->workers[w]->httpd);
    sample(r, def->name, "", (double)n, NULL);
}

/* Sums a per-service figure over the workers. */
typedef uint64_t (*service_figure_fn)(const up_service_t *svc, const void *arg);

static uint64_t sum_service(render_t *r, size_t si, service_figure_fn fn, const void *arg)
{
    uint64_t total = 0;
    for (size_t w = 0; w < r->n; w++)
        if (r->workers[w]->gen && r->workers[w]->gen->services[si])
            total += fn(r->workers[w]->gen->services[si], arg);
    return total;
}

typedef struct outcome_arg {
    int kind;
    up_outcome_t outcome;
} outcome_arg_t;

static uint64_t fig_outcome(const up_service_t *svc, const void *arg)
{
    const outcome_arg_t *a = arg;
    return up_service_stats(svc)->outcomes[a->kind][a->outcome];
}

static void upstream_requests(render_t *r, const metric_def_t *def)
{
    const config *cfg = first(r)->cfg;
    static const char *const kinds[] = { "send", "emit" };
    for (size_t si = 0; si < cfg->service_count; si++)
        for (int kind = 0; kind < 2; kind++)
            for (int o = 0; o < UP_OUTCOME_COUNT; o++) {
                outcome_arg_t a = { kind, (up_outcome_t)o };
                sample(r, def->name, "", (double)sum_service(r, si, fig_outcome, &a), "service",
                       cfg->services[si].name, "kind", kinds[kind], "outcome", up_outcome_name((up_outcome_t)o),
                       NULL);
            }
}

static void upstream_duration(render_t *r, const metric_def_t *def)
{
    const config *cfg = first(r)->cfg;
    for (size_t si = 0; si < cfg->service_count; si++) {
        const histogram_t *hs[MAX_WORKERS];
        size_t n = r->n < MAX_WORKERS ? r->n : MAX_WORKERS;
        for (size_t w = 0; w < n; w++) {
            metrics_t *m = r->workers[w]->metrics;
            int idx = -1;
            for (size_t k = 0; k < m->n_services; k++)
                if (strcmp(m->services[k].name, cfg->services[si].name) == 0)
                    idx = (int)k;
            hs[w] = idx < 0 ? NULL : &m->services[idx].duration;
        }
        histogram_samples(r, def->name, "service", cfg->services[si].name, hs, n);
    }
}

static uint64_t fig_inflight(const up_service_t *svc, const void *arg)
{
    (void)arg;
    return up_service_stats(svc)->inflight;
}

static void upstream_inflight_samples(render_t *r, const metric_def_t *def)
{
    const config *cfg = first(r)->cfg;
    for (size_t si = 0; si < cfg->service_count; si++)
        sample(r, def->name, "", (double)sum_service(r, si, fig_inflight, NULL), "service", cfg->services[si].name,
               NULL);
}

static uint64_t fig_conns(const up_service_t *svc, const void *arg)
{
    return up_service_conns_in_state(svc, *(const up_conn_state_t *)arg);
}

static void upstream_connections(render_t *r, const metric_def_t *def)
{
    const config *cfg = first(r)->cfg;
    for (size_t si = 0; si < cfg->service_count; si++)
        for (int st = 0; st < UP_CONN_STATE_COUNT; st++) {
            up_conn_state_t state = (up_conn_state_t)st;
            sample(r, def->name, "", (double)sum_service(r, si, fig_conns, &state), "service",
                   cfg->services[si].name, "state", up_conn_state_name(state), NULL);
        }
}

static uint64_t fig_connects(const up_service_t *svc, const void *arg)
{
    const up_service_stats_t *st = up_service_stats(svc);
    return *(const int *)arg ? st->connects_ok : st->connects_failed;
}

static void upstream_connects(render_t *r, const metric_def_t *def)
{
    const config *cfg = first(r)->cfg;
    for (size_t si = 0; si < cfg->service_count; si++)
        for (int ok = 1; ok >= 0; ok--)
            sample(r, def->name, "", (double)sum_service(r, si, fig_connects, &ok), "service",
                   cfg->services[si].name, "result", ok ? "ok" : "failed", NULL);
}

static uint64_t fig_bytes(const up_service_t *svc, const void *arg)
{
    const up_service_stats_t *st = up_service_stats(svc);
    return *(const int *)arg ? st->bytes_out : st->bytes_in;
}

static void upstream_bytes(render_t *r, const metric_def_t *def)
{
    const config *cfg = first(r)->cfg;
    for (size_t si = 0; si < cfg->service_count; si++)
        for (int sent = 1; sent >= 0; sent--)
            sample(r, def->name, "", (double)sum_service(r, si, fig_bytes, &sent), "service",
                   cfg->services[si].name, "direction", sent ? "sent" : "received", NULL);
}

static uint64_t fig_late(const up_service_t *svc, const void *arg)
{
    (void)arg;
    return up_service_stats(svc)->late_replies;
}

static void upstream_late(render_t *r, const metric_def_t *def)
{
    const config *cfg = first(r)->cfg;
    for (size_t si = 0; si < cfg->service_count; si++)
        sample(r, def->name, "", (double)sum_service(r, si, fig_late, NULL), "service", cfg->services[si].name,
               NULL);
}

static void endpoint_ejected(render_t *r, const metric_def_t *def)
{
    const config *cfg = first(r)->cfg;
    for (size_t si = 0; si < cfg->service_count; si++) {
        const up_service_t *svc0 = first(r)->gen->services[si];
        for (size_t e = 0; e < up_service_endpoint_count(svc0); e++) {
            int ejected = 0; /* in any worker */
            for (size_t w = 0; w < r->n; w++)
                ejected |= up_service_endpoint_ejected_until(r->workers[w]->gen->services[si], e) != 0;
            sample(r, def->name, "", ejected, "service", cfg->services[si].name, "endpoint",
                   up_service_endpoint_address(svc0, e), NULL);
        }
    }
}

static void build_info(render_t *r, const metric_def_t *def)
{
    sample(r, def->name, "", 1, "version", PG_VERSION, NULL);
}

static void reload_ok(render_t *r, const metric_def_t *def)
{
    sample(r, def->name, "", first(r)->metrics->last_reload_ok, NULL);
}

static void reload_time(render_t *r, const metric_def_t *def)
{
    sample(r, def->name, "", first(r)->metrics->last_reload_success_s, NULL);
}

static void reloads(render_t *r, const metric_def_t *def)
{
    const metrics_t *m = first(r)->metrics;
    sample(r, def->name, "", (double)metric_get(&m->reloads_ok), "result", "ok", NULL);
    sample(r, def->name, "", (double)metric_get(&m->reloads_failed), "result", "failed", NULL);
}

#define PROC_SAMPLE(fn, field)                                                                                 \
    static void fn(render_t *r, const metric_def_t *def)                                                       \
    {                                                                                                          \
        if (r->proc.field >= 0)                                                                                \
            sample(r, def->name, "", r->proc.field, NULL);                                                     \
    }
PROC_SAMPLE(proc_cpu, cpu_seconds)
PROC_SAMPLE(proc_rss, resident_bytes)
PROC_SAMPLE(proc_vsize, virtual_bytes)
PROC_SAMPLE(proc_fds, open_fds)
PROC_SAMPLE(proc_max_fds, max_fds)
PROC_SAMPLE(proc_start, start_time_s)

static const metric_def_t families[] = {
    { "patterngate_http_requests_total", "counter",
      "HTTP requests answered, by route template, method and status code.", http_requests },
    { "patterngate_http_request_duration_seconds", "histogram",
      "Time from the request's headers to its response, by route template.", http_duration },
    { "patterngate_http_connections", "gauge", "Open HTTP client connections.", http_connections },
    { "patterngate_upstream_requests_total", "counter",
      "Requests and events sent to services, by service, kind (send, emit) and outcome.", upstream_requests },
    { "patterngate_upstream_request_duration_seconds", "histogram",
      "Time from handing a request to the upstream client to its outcome, by service.", upstream_duration },
    { "patterngate_upstream_inflight", "gauge", "Requests to a service not yet completed.", upstream_inflight_samples },
    { "patterngate_upstream_connections", "gauge", "Upstream connections by service and state.",
      upstream_connections },
    { "patterngate_upstream_connects_total", "counter", "Connection attempts by service and result (ok, failed).",
      upstream_connects },
    { "patterngate_upstream_bytes_total", "counter",
      "Message bytes to and from services (plaintext, framing included), by direction.", upstream_bytes },
    { "patterngate_upstream_late_replies_total", "counter",
      "Replies for unknown ids (after a timeout or cancel), dropped.", upstream_late },
    { "patterngate_upstream_endpoint_ejected", "gauge",
      "1 while an endpoint is ejected by outlier detection, else 0.", endpoint_ejected },
    { "patterngate_build_info", "gauge", "The running version; always 1.", build_info },
    { "patterngate_config_last_reload_successful", "gauge", "1 if the last reload succeeded (or none was tried).",
      reload_ok },
    { "patterngate_config_last_reload_success_timestamp_seconds", "gauge",
      "When the running config was loaded (at start or by a reload), seconds since the epoch.", reload_time },
    { "patterngate_config_reloads_total", "counter", "Reload attempts by result (ok, failed).", reloads },
    { "process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.", proc_cpu },
    { "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", proc_rss },
    { "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", proc_vsize },
    { "process_open_fds", "gauge", "Open file descriptors.", proc_fds },
    { "process_max_fds", "gauge", "The limit of open file descriptors.", proc_max_fds },
    { "process_start_time_seconds", "gauge", "When the process started, seconds since the epoch.", proc_start },
};

int metrics_render(buf_t *out, gateway_t *const *workers, size_t n_workers)
{
    render_t r = { .out = out, .workers = workers, .n = n_workers };
    procstat_read(&r.proc);
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        const metric_def_t *def = &families[i];
        put(&r, "# HELP ");
        put(&r, def->name);
        put(&r, " ");
        put(&r, def->help);
        put(&r, "\n# TYPE ");
        put(&r, def->name);
        put(&r, " ");
        put(&r, def->type);
        put(&r, "\n");
        def->samples(&r, def);
    }
    return r.failed ? -ENOMEM : 0;
}
