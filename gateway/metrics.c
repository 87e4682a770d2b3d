#include "gateway/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Storage that a scrape on another worker's thread may read while the owner
 * counts: arrays never move (fixed capacities, entries allocated once and
 * kept until metrics_free), an entry is filled before the count that
 * publishes it is stored (release; readers load it with acquire), and every
 * figure is a relaxed atomic. */
#define ROUTES_MAX 4096   /* route labels, across reloads */
#define SERVICES_MAX 1024 /* service names, across reloads */
#define SERIES_MAX 64     /* method+status pairs per route; more go to code "other" */

typedef struct http_series {
    unsigned method;
    unsigned status;
    metric_u64 count;
} http_series_t;

typedef struct route_stats {
    char *label;
    http_series_t series[SERIES_MAX];
    _Atomic size_t n;
    metric_u64 overflow[METHODS]; /* pairs beyond SERIES_MAX, by method */
    histogram_t duration;
    metric_u64 rate_limited;      /* answered 429 by the route's rate_limit */
} route_stats_t;

typedef struct service_stats {
    char *name;
    histogram_t duration;
    up_service_stats_t upstream; /* counted by the upstream client itself */
} service_stats_t;

struct metrics {
    size_t n_bounds;
    uint64_t bound_ns[LADDER_MAX];
    route_stats_t *routes[ROUTES_MAX];
    _Atomic size_t n_routes;
    service_stats_t *services[SERVICES_MAX];
    _Atomic size_t n_services;
    metric_u64 reloads_ok, reloads_failed;
    _Atomic int last_reload_ok;
    _Atomic double last_reload_success_s;
    metric_u64 http_connections;
    metric_u64 auth_failures[AUTH_REASON_COUNT];
    metric_u64 jwks_reloads_ok, jwks_reloads_failed;
};

static size_t published(_Atomic size_t *n) { return atomic_load_explicit(n, memory_order_acquire); }

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
    atomic_init(&m->last_reload_ok, 1);
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
    for (size_t i = 0; i < published(&m->n_routes); i++) {
        free(m->routes[i]->label);
        free(m->routes[i]);
    }
    for (size_t i = 0; i < published(&m->n_services); i++) {
        free(m->services[i]->name);
        free(m->services[i]);
    }
    free(m);
}

int metrics_route_index(metrics_t *m, const char *label)
{
    size_t n = published(&m->n_routes);
    for (size_t i = 0; i < n; i++)
        if (strcmp(m->routes[i]->label, label) == 0)
            return (int)i;
    if (n == ROUTES_MAX)
        return METRICS_ROUTE_UNMATCHED; /* absurdly many labels: counted as unmatched */
    route_stats_t *r = calloc(1, sizeof *r);
    if (!r || !(r->label = strdup(label))) {
        free(r);
        return -1;
    }
    m->routes[n] = r;
    atomic_store_explicit(&m->n_routes, n + 1, memory_order_release);
    return (int)n;
}

int metrics_service_index(metrics_t *m, const char *name)
{
    size_t n = published(&m->n_services);
    for (size_t i = 0; i < n; i++)
        if (strcmp(m->services[i]->name, name) == 0)
            return (int)i;
    if (n == SERVICES_MAX)
        return -1;
    service_stats_t *sv = calloc(1, sizeof *sv);
    if (!sv || !(sv->name = strdup(name))) {
        free(sv);
        return -1;
    }
    m->services[n] = sv;
    atomic_store_explicit(&m->n_services, n + 1, memory_order_release);
    return (int)n;
}

up_service_stats_t *metrics_service_counters(metrics_t *m, int service)
{
    return service >= 0 && (size_t)service < published(&m->n_services) ? &m->services[service]->upstream : NULL;
}

metric_u64 *metrics_http_connections(metrics_t *m) { return &m->http_connections; }

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
    if (route < 0 || (size_t)route >= published(&m->n_routes))
        route = METRICS_ROUTE_UNMATCHED;
    route_stats_t *r = m->routes[route];
    unsigned mi = method_index(method);
    observe(m, &r->duration, duration_ns);
    size_t n = published(&r->n);
    for (size_t i = 0; i < n; i++) {
        if (r->series[i].method == mi && r->series[i].status == status) {
            metric_add(&r->series[i].count, 1);
            return;
        }
    }
    if (n == SERIES_MAX) {
        metric_add(&r->overflow[mi], 1);
        return;
    }
    http_series_t *s = &r->series[n]; /* a new method+status pair: rare */
    s->method = mi;
    s->status = status;
    atomic_store_explicit(&s->count, 1, memory_order_relaxed);
    atomic_store_explicit(&r->n, n + 1, memory_order_release);
}

void metrics_rate_limited(metrics_t *m, int route)
{
    if (route >= 0 && (size_t)route < published(&m->n_routes))
        metric_add(&m->routes[route]->rate_limited, 1);
}

void metrics_auth_failure(metrics_t *m, auth_reason_t reason)
{
    if ((unsigned)reason < AUTH_REASON_COUNT)
        metric_add(&m->auth_failures[reason], 1);
}

void metrics_jwks_reload(metrics_t *m, int ok)
{
    metric_add(ok ? &m->jwks_reloads_ok : &m->jwks_reloads_failed, 1);
}

void metrics_upstream_duration(metrics_t *m, int service, uint64_t duration_ns)
{
    if (service >= 0 && (size_t)service < published(&m->n_services))
        observe(m, &m->services[service]->duration, duration_ns);
}

void metrics_config_loaded(metrics_t *m, double now_s)
{
    atomic_store_explicit(&m->last_reload_success_s, now_s, memory_order_relaxed);
}

void metrics_reload(metrics_t *m, int ok, double now_s)
{
    metric_add(ok ? &m->reloads_ok : &m->reloads_failed, 1);
    atomic_store_explicit(&m->last_reload_ok, ok, memory_order_relaxed);
    if (ok)
        atomic_store_explicit(&m->last_reload_success_s, now_s, memory_order_relaxed);
}

/* ---- rendering --------------------------------------------------------- */

#define MAX_WORKERS 256

typedef struct render {
    buf_t *out;
    metrics_t *const *ms;   /* every worker's */
    size_t n;
    const config *cfg;      /* the scraping worker's: service names, endpoints */
    int failed;
    procstat_t proc;        /* read once per scrape */
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

/* Sums one histogram over the workers (hs[w] NULL: none there) and writes
 * _bucket, _sum, _count with one label. */
static void histogram_samples(render_t *r, const char *name, const char *label, const char *value,
                              const histogram_t *const *hs)
{
    const metrics_t *m = r->ms[0];
    uint64_t cumulative = 0, count = 0, sum_ns = 0;
    char le[32];
    for (size_t b = 0; b <= m->n_bounds; b++) {
        for (size_t w = 0; w < r->n; w++)
            cumulative += hs[w] ? metric_get(&hs[w]->buckets[b]) : 0;
        if (b < m->n_bounds)
            snprintf(le, sizeof le, "%g", (double)m->bound_ns[b] / 1e9);
        else
            snprintf(le, sizeof le, "+Inf");
        sample(r, name, "_bucket", (double)cumulative, label, value, "le", le, NULL);
    }
    for (size_t w = 0; w < r->n; w++) {
        count += hs[w] ? metric_get(&hs[w]->count) : 0;
        sum_ns += hs[w] ? metric_get(&hs[w]->sum_ns) : 0;
    }
    sample(r, name, "_sum", (double)sum_ns / 1e9, label, value, NULL);
    sample(r, name, "_count", (double)count, label, value, NULL);
}

/* The route of a worker with this label, or NULL. */
static const route_stats_t *route_named(metrics_t *m, const char *label)
{
    size_t n = published(&m->n_routes);
    for (size_t i = 0; i < n; i++)
        if (strcmp(m->routes[i]->label, label) == 0)
            return m->routes[i];
    return NULL;
}

static const service_stats_t *service_named(metrics_t *m, const char *name)
{
    size_t n = published(&m->n_services);
    for (size_t i = 0; i < n; i++)
        if (strcmp(m->services[i]->name, name) == 0)
            return m->services[i];
    return NULL;
}

/* Calls fn for each route label once, in the order workers first met them
 * (labels differ between workers only briefly, around a reload). */
static void each_label(render_t *r, const metric_def_t *def,
                       void (*fn)(render_t *r, const metric_def_t *def, const char *label))
{
    for (size_t w = 0; w < r->n; w++) {
        metrics_t *m = r->ms[w];
        size_t n = published(&m->n_routes);
        for (size_t i = 0; i < n; i++) {
            const char *label = m->routes[i]->label;
            int seen = 0;
            for (size_t v = 0; v < w && !seen; v++)
                seen = route_named(r->ms[v], label) != NULL;
            if (!seen)
                fn(r, def, label);
        }
    }
}

static uint64_t series_total(render_t *r, const char *label, unsigned method, unsigned status)
{
    uint64_t total = 0;
    for (size_t w = 0; w < r->n; w++) {
        const route_stats_t *rs = route_named(r->ms[w], label);
        size_t n = rs ? published((_Atomic size_t *)&rs->n) : 0;
        for (size_t k = 0; k < n; k++)
            if (rs->series[k].method == method && rs->series[k].status == status)
                total += metric_get(&rs->series[k].count);
    }
    return total;
}

static void http_requests_of(render_t *r, const metric_def_t *def, const char *label)
{
    char code[16];
    for (size_t w = 0; w < r->n; w++) { /* every method+status pair once */
        const route_stats_t *rs = route_named(r->ms[w], label);
        size_t n = rs ? published((_Atomic size_t *)&rs->n) : 0;
        for (size_t k = 0; k < n; k++) {
            unsigned method = rs->series[k].method, status = rs->series[k].status;
            int seen = 0;
            for (size_t v = 0; v <= w && !seen; v++) {
                const route_stats_t *prev = route_named(r->ms[v], label);
                size_t pn = v == w ? k : (prev ? published((_Atomic size_t *)&prev->n) : 0);
                for (size_t j = 0; j < pn && !seen; j++)
                    seen = prev->series[j].method == method && prev->series[j].status == status;
            }
            if (seen)
                continue;
            snprintf(code, sizeof code, "%u", status);
            sample(r, def->name, "", (double)series_total(r, label, method, status), "route", label, "method",
                   method_names[method], "code", code, NULL);
        }
    }
    for (unsigned mi = 0; mi < METHODS; mi++) {
        uint64_t over = 0;
        for (size_t w = 0; w < r->n; w++) {
            const route_stats_t *rs = route_named(r->ms[w], label);
            over += rs ? metric_get(&rs->overflow[mi]) : 0;
        }
        if (over)
            sample(r, def->name, "", (double)over, "route", label, "method", method_names[mi], "code", "other",
                   NULL);
    }
}

static void http_requests(render_t *r, const metric_def_t *def)
{
    each_label(r, def, http_requests_of);
}

static void http_duration_of(render_t *r, const metric_def_t *def, const char *label)
{
    const histogram_t *hs[MAX_WORKERS];
    uint64_t any = 0;
    for (size_t w = 0; w < r->n; w++) {
        const route_stats_t *rs = route_named(r->ms[w], label);
        hs[w] = rs ? &rs->duration : NULL;
        any += hs[w] ? metric_get(&hs[w]->count) : 0;
    }
    if (any)
        histogram_samples(r, def->name, "route", label, hs);
}

static void http_duration(render_t *r, const metric_def_t *def)
{
    each_label(r, def, http_duration_of);
}

/* A label of a route of the config that has a rate_limit. */
static int limited_label(const config *cfg, const char *label)
{
    for (size_t i = 0; i < cfg->route_count; i++)
        if (cfg->routes[i].rate_limit && strcmp(cfg->routes[i].path.text, label) == 0)
            return 1;
    return 0;
}

static void rate_limited_of(render_t *r, const metric_def_t *def, const char *label)
{
    uint64_t total = 0;
    for (size_t w = 0; w < r->n; w++) {
        const route_stats_t *rs = route_named(r->ms[w], label);
        total += rs ? metric_get(&rs->rate_limited) : 0;
    }
    if (total || limited_label(r->cfg, label))
        sample(r, def->name, "", (double)total, "route", label, NULL);
}

static void http_rate_limited(render_t *r, const metric_def_t *def)
{
    each_label(r, def, rate_limited_of);
}

/* Every reason once auth is configured (or any was counted). */
static void auth_failures(render_t *r, const metric_def_t *def)
{
    uint64_t totals[AUTH_REASON_COUNT] = { 0 }, any = 0;
    for (unsigned k = 0; k < AUTH_REASON_COUNT; k++) {
        for (size_t w = 0; w < r->n; w++)
            totals[k] += metric_get(&r->ms[w]->auth_failures[k]);
        any += totals[k];
    }
    if (!any && r->cfg->auth_mechanisms == 0)
        return;
    for (unsigned k = 0; k < AUTH_REASON_COUNT; k++)
        sample(r, def->name, "", (double)totals[k], "reason", auth_reason_name((auth_reason_t)k), NULL);
}

/* Counted by worker 0 alone (every worker reads the file). */
static void jwks_reloads(render_t *r, const metric_def_t *def)
{
    uint64_t ok = 0, bad = 0;
    for (size_t w = 0; w < r->n; w++) {
        ok += metric_get(&r->ms[w]->jwks_reloads_ok);
        bad += metric_get(&r->ms[w]->jwks_reloads_failed);
    }
    if (!ok && !bad && !(r->cfg->jwt && r->cfg->jwt->jwks_file))
        return;
    sample(r, def->name, "", (double)ok, "result", "ok", NULL);
    sample(r, def->name, "", (double)bad, "result", "failed", NULL);
}

static void http_connections(render_t *r, const metric_def_t *def)
{
    uint64_t n = 0;
    for (size_t w = 0; w < r->n; w++)
        n += metric_get(&r->ms[w]->http_connections);
    sample(r, def->name, "", (double)n, NULL);
}

/* A per-service upstream counter summed over the workers. */
typedef const up_counter_t *(*counter_fn)(const up_service_stats_t *st, const void *arg);

static uint64_t sum_counter(render_t *r, const char *service, counter_fn fn, const void *arg)
{
    uint64_t total = 0;
    for (size_t w = 0; w < r->n; w++) {
        const service_stats_t *sv = service_named(r->ms[w], service);
        if (sv)
            total += up_read(fn(&sv->upstream, arg));
    }
    return total;
}

static const up_counter_t *c_outcome(const up_service_stats_t *st, const void *arg)
{
    const int *ko = arg; /* kind, outcome */
    return &st->outcomes[ko[0]][ko[1]];
}
static const up_counter_t *c_inflight(const up_service_stats_t *st, const void *arg) { (void)arg; return &st->inflight; }
static const up_counter_t *c_conns(const up_service_stats_t *st, const void *arg) { return &st->conns[*(const int *)arg]; }
static const up_counter_t *c_connects(const up_service_stats_t *st, const void *arg)
{
    return *(const int *)arg ? &st->connects_ok : &st->connects_failed;
}
static const up_counter_t *c_bytes(const up_service_stats_t *st, const void *arg)
{
    return *(const int *)arg ? &st->bytes_out : &st->bytes_in;
}
static const up_counter_t *c_late(const up_service_stats_t *st, const void *arg) { (void)arg; return &st->late_replies; }

static void upstream_requests(render_t *r, const metric_def_t *def)
{
    static const char *const kinds[] = { "send", "emit" };
    for (size_t si = 0; si < r->cfg->service_count; si++)
        for (int kind = 0; kind < 2; kind++)
            for (int o = 0; o < UP_OUTCOME_COUNT; o++) {
                const char *name = r->cfg->services[si].name;
                int ko[2] = { kind, o };
                sample(r, def->name, "", (double)sum_counter(r, name, c_outcome, ko), "service", name, "kind",
                       kinds[kind], "outcome", up_outcome_name((up_outcome_t)o), NULL);
            }
}

static void upstream_duration(render_t *r, const metric_def_t *def)
{
    for (size_t si = 0; si < r->cfg->service_count; si++) {
        const char *name = r->cfg->services[si].name;
        const histogram_t *hs[MAX_WORKERS];
        for (size_t w = 0; w < r->n; w++) {
            const service_stats_t *sv = service_named(r->ms[w], name);
            hs[w] = sv ? &sv->duration : NULL;
        }
        histogram_samples(r, def->name, "service", name, hs);
    }
}

static void upstream_inflight_samples(render_t *r, const metric_def_t *def)
{
    for (size_t si = 0; si < r->cfg->service_count; si++) {
        const char *name = r->cfg->services[si].name;
        sample(r, def->name, "", (double)sum_counter(r, name, c_inflight, NULL), "service", name, NULL);
    }
}

static void upstream_connections(render_t *r, const metric_def_t *def)
{
    for (size_t si = 0; si < r->cfg->service_count; si++)
        for (int st = 0; st < UP_CONN_STATE_COUNT; st++) {
            const char *name = r->cfg->services[si].name;
            sample(r, def->name, "", (double)sum_counter(r, name, c_conns, &st), "service", name, "state",
                   up_conn_state_name((up_conn_state_t)st), NULL);
        }
}

static void upstream_connects(render_t *r, const metric_def_t *def)
{
    for (size_t si = 0; si < r->cfg->service_count; si++)
        for (int ok = 1; ok >= 0; ok--) {
            const char *name = r->cfg->services[si].name;
            sample(r, def->name, "", (double)sum_counter(r, name, c_connects, &ok), "service", name, "result",
                   ok ? "ok" : "failed", NULL);
        }
}

static void upstream_bytes(render_t *r, const metric_def_t *def)
{
    for (size_t si = 0; si < r->cfg->service_count; si++)
        for (int sent = 1; sent >= 0; sent--) {
            const char *name = r->cfg->services[si].name;
            sample(r, def->name, "", (double)sum_counter(r, name, c_bytes, &sent), "service", name, "direction",
                   sent ? "sent" : "received", NULL);
        }
}

static void upstream_late(render_t *r, const metric_def_t *def)
{
    for (size_t si = 0; si < r->cfg->service_count; si++) {
        const char *name = r->cfg->services[si].name;
        sample(r, def->name, "", (double)sum_counter(r, name, c_late, NULL), "service", name, NULL);
    }
}

static const up_counter_t *c_endpoints(const up_service_stats_t *st, const void *arg)
{
    return &st->endpoints[*(const int *)arg];
}
static const up_counter_t *c_dns(const up_service_stats_t *st, const void *arg) { return &st->dns[*(const int *)arg]; }
static const up_counter_t *c_retries(const up_service_stats_t *st, const void *arg)
{
    return &st->retries[*(const int *)arg];
}

static void upstream_endpoints(render_t *r, const metric_def_t *def)
{
    for (size_t si = 0; si < r->cfg->service_count; si++)
        for (int st = 0; st < UP_EP_STATE_COUNT; st++) {
            const char *name = r->cfg->services[si].name;
            sample(r, def->name, "", (double)sum_counter(r, name, c_endpoints, &st), "service", name, "state",
                   up_endpoint_state_name((up_endpoint_state_t)st), NULL);
        }
}

static void dns_resolutions(render_t *r, const metric_def_t *def)
{
    for (size_t si = 0; si < r->cfg->service_count; si++)
        for (int res = 0; res < UP_DNS_RESULT_COUNT; res++) {
            const char *name = r->cfg->services[si].name;
            sample(r, def->name, "", (double)sum_counter(r, name, c_dns, &res), "service", name, "result",
                   up_dns_result_name((up_dns_result_t)res), NULL);
        }
}

static void upstream_retries(render_t *r, const metric_def_t *def)
{
    for (size_t si = 0; si < r->cfg->service_count; si++)
        for (int why = 0; why < UP_RETRY_REASON_COUNT; why++) {
            const char *name = r->cfg->services[si].name;
            sample(r, def->name, "", (double)sum_counter(r, name, c_retries, &why), "service", name, "reason",
                   up_retry_reason_name((up_retry_reason_t)why), NULL);
        }
}

/* Every endpoint address any worker has now, once: 1 when ejected in any
 * worker (addresses come and go with DNS answers: core/upstream.h's slots). */
static void endpoint_ejected(render_t *r, const metric_def_t *def)
{
    enum { MAX_SEEN = UP_EJECT_SLOTS * 4 };
    for (size_t si = 0; si < r->cfg->service_count; si++) {
        const char *name = r->cfg->services[si].name;
        static _Thread_local char seen[MAX_SEEN][UP_EJECT_ADDRESS_SIZE];
        int ejected_any[MAX_SEEN];
        size_t n = 0;
        for (size_t w = 0; w < r->n; w++) {
            const service_stats_t *sv = service_named(r->ms[w], name);
            for (size_t i = 0; sv && i < UP_EJECT_SLOTS; i++) {
                char address[UP_EJECT_ADDRESS_SIZE];
                int ejected;
                if (!up_eject_slot_read(&sv->upstream.eject_slots[i], address, &ejected))
                    continue;
                size_t k = 0;
                while (k < n && strcmp(seen[k], address) != 0)
                    k++;
                if (k == n && n < MAX_SEEN) {
                    memcpy(seen[n], address, sizeof address);
                    ejected_any[n++] = 0;
                }
                if (k < n)
                    ejected_any[k] |= ejected;
            }
        }
        for (size_t k = 0; k < n; k++)
            sample(r, def->name, "", ejected_any[k], "service", name, "endpoint", seen[k], NULL);
    }
}

static void build_info(render_t *r, const metric_def_t *def)
{
    sample(r, def->name, "", 1, "version", PG_VERSION, NULL);
}

static void reload_ok(render_t *r, const metric_def_t *def)
{
    int ok = 1; /* 0 when any worker's last reload failed */
    for (size_t w = 0; w < r->n; w++)
        ok &= atomic_load_explicit(&r->ms[w]->last_reload_ok, memory_order_relaxed);
    sample(r, def->name, "", ok, NULL);
}

static void reload_time(render_t *r, const metric_def_t *def)
{
    double t = 0; /* the latest */
    for (size_t w = 0; w < r->n; w++) {
        double v = atomic_load_explicit(&r->ms[w]->last_reload_success_s, memory_order_relaxed);
        t = v > t ? v : t;
    }
    sample(r, def->name, "", t, NULL);
}

static void reloads(render_t *r, const metric_def_t *def)
{
    uint64_t ok = 0, bad = 0;
    for (size_t w = 0; w < r->n; w++) {
        ok += metric_get(&r->ms[w]->reloads_ok);
        bad += metric_get(&r->ms[w]->reloads_failed);
    }
    sample(r, def->name, "", (double)ok, "result", "ok", NULL);
    sample(r, def->name, "", (double)bad, "result", "failed", NULL);
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
    { "patterngate_http_rate_limited_total", "counter",
      "Requests answered 429 rate_limited by their route's rate_limit, by route template.", http_rate_limited },
    { "patterngate_http_auth_failures_total", "counter",
      "Requests refused by authentication (401) or require_claims (403), by reason.", auth_failures },
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
      "1 while an endpoint is ejected by outlier detection, else 0, by service and endpoint address.",
      endpoint_ejected },
    { "patterngate_upstream_endpoints", "gauge",
      "Endpoints (one per address a service's hosts resolve to) by service and state (active, draining, ejected).",
      upstream_endpoints },
    { "patterngate_upstream_dns_resolutions_total", "counter",
      "Resolutions of a service's host names by result (ok, empty, error); empty and error keep the last good set.",
      dns_resolutions },
    { "patterngate_upstream_retries_total", "counter",
      "Requests sent again (route retries) by service and reason (closed, unavailable).", upstream_retries },
    { "patterngate_build_info", "gauge", "The running version; always 1.", build_info },
    { "patterngate_config_last_reload_successful", "gauge", "1 if the last reload succeeded (or none was tried).",
      reload_ok },
    { "patterngate_config_last_reload_success_timestamp_seconds", "gauge",
      "When the running config was loaded (at start or by a reload), seconds since the epoch.", reload_time },
    { "patterngate_config_reloads_total", "counter", "Reload attempts by result (ok, failed).", reloads },
    { "patterngate_jwks_reloads_total", "counter",
      "Changes of auth.jwt.jwks_file read while running, by result (ok: new keys in use; failed: the old keys stay).",
      jwks_reloads },
    { "process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.", proc_cpu },
    { "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", proc_rss },
    { "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", proc_vsize },
    { "process_open_fds", "gauge", "Open file descriptors.", proc_fds },
    { "process_max_fds", "gauge", "The limit of open file descriptors.", proc_max_fds },
    { "process_start_time_seconds", "gauge", "When the process started, seconds since the epoch.", proc_start },
};

int metrics_render(buf_t *out, metrics_t *const *workers, size_t n_workers, const config *cfg)
{
    if (n_workers > MAX_WORKERS)
        n_workers = MAX_WORKERS;
    render_t r = { .out = out, .ms = workers, .n = n_workers, .cfg = cfg };
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
