#include "gateway/gateway.h"

#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "gateway/admin.h"
#include "gateway/exchange.h"

static void on_upstream_event(void *ctx, const up_event_t *ev)
{
    gateway_t *gw = ctx;
    uplog_event(&gw->uplog, ev, uv_now(gw->loop));
}

static void on_mhd_error(void *ctx, const char *text)
{
    gateway_t *gw = ctx;
    log_msg(&gw->log, CONFIG_LOG_WARN, "http server", text);
}

static void on_admin_closed(void *ctx)
{
    gateway_t *gw = ctx;
    gw->admin_httpd = NULL;
}

/* The last step of a stop: the services go, then the upstream. */
static void close_upstream(gateway_t *gw)
{
    generation_t *g = gw->gen;
    gw->gen = NULL;
    if (gw->up) /* connections closing now are not events worth a log line */
        upstream_set_event_handler(gw->up, NULL, NULL);
    generation_release_why(g, "the gateway is shutting down");
    if (gw->up)
        upstream_close(gw->up);
}

static void on_httpd_closed(void *ctx)
{
    gateway_t *gw = ctx;
    gw->httpd = NULL;
    exchange_free_spares(gw); /* MHD has completed every exchange */
    close_upstream(gw);
}

uint64_t gateway_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void gateway_access_log(gateway_t *gw, const access_entry_t *e)
{
    log_line_t line;
    if (!gw->cfg->log_access || !log_begin(&gw->log, &line, CONFIG_LOG_INFO, "access"))
        return;
    log_str(&line, "method", e->method);
    log_str(&line, "path", e->path);
    log_str(&line, "route", e->route);
    log_int(&line, "status", e->status);
    char ms[32];
    snprintf(ms, sizeof ms, "%.3f", (double)e->duration_ns / 1e6);
    log_raw(&line, "duration_ms", ms);
    if (e->request_id)
        log_str(&line, "request_id", e->request_id);
    if (e->service)
        log_str(&line, "service", e->service);
    log_int(&line, "bytes", (long long)e->bytes);
    log_int(&line, "request_bytes", (long long)e->request_bytes);
    log_end(&gw->log, &line);
}

/* Runs once per loop iteration while stopping: once no request is left
 * (none waiting, none being answered; after the grace, none suspended), the
 * listener and the upstream close and the loop runs dry. */
static void on_drained_check(uv_check_t *c)
{
    gateway_t *gw = c->data;
    if (gw->suspended > 0 || (gw->exchanges > 0 && !gw->grace_over))
        return;
    uv_close((uv_handle_t *)&gw->drained, NULL);
    uv_close((uv_handle_t *)&gw->grace, NULL);
    timers_close(&gw->timers, NULL);
    uv_close((uv_handle_t *)&gw->sigterm, NULL);
    uv_close((uv_handle_t *)&gw->sigint, NULL);
    reload_close(&gw->reload);
    if (gw->admin_httpd)
        httpd_close(gw->admin_httpd, on_admin_closed, gw);
    if (gw->httpd)
        httpd_close(gw->httpd, on_httpd_closed, gw);
    else
        close_upstream(gw);
}

static void on_grace_over(uv_timer_t *t)
{
    gateway_t *gw = t->data;
    log_msg(&gw->log, CONFIG_LOG_WARN, "shutdown grace is over: ending the requests still in flight", NULL);
    gw->grace_over = 1;
    exchange_abort_waiting(gw);
}

/* First signal: drain. Second: end what is left at once. */
static void stop(gateway_t *gw)
{
    if (gw->stopping) {
        gw->grace_over = 1;
        exchange_abort_waiting(gw);
        return;
    }
    gw->stopping = 1;
    uv_check_start(&gw->drained, on_drained_check);
    if (gw->httpd)
        uv_timer_start(&gw->grace, on_grace_over, gw->cfg->shutdown_grace_ms, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    gateway_t *gw = s->data;
    log_line_t line;
    if (log_begin(&gw->log, &line, CONFIG_LOG_INFO, gw->stopping ? "second signal: exiting now" : "shutting down"))
        log_str(&line, "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    log_end(&gw->log, &line);
    stop(gw);
}

static int start_http(gateway_t *gw)
{
    const config *cfg = gw->cfg;
    httpd_options_t o = {
        .listen = &cfg->listen,
        .max_connections = cfg->limits.max_connections,
        .idle_timeout_s = (unsigned)((cfg->limits.idle_timeout_ms + 999) / 1000),
        .on_request = exchange_on_request,
        .on_completed = exchange_on_completed,
        .handler_ctx = gw,
        .on_mhd_error = on_mhd_error,
        .on_hangup = exchange_on_hangup,
        .on_refused = exchange_on_refused,
        .connections = metrics_http_connections(gw->metrics),
        .reuse_port = gw->n_workers > 1,
    };
    char err[256];
    gw->httpd = httpd_start(gw->loop, &o, err, sizeof err);
    if (!gw->httpd) {
        log_msg(&gw->log, CONFIG_LOG_ERROR, "cannot listen", err);
        return -1;
    }
    if (!cfg->has_admin_listen || gw->worker != 0) /* one admin listener, on worker 0 */
        return 0;
    httpd_options_t a = {
        .listen = &cfg->admin_listen,
        .max_connections = 64,
        .idle_timeout_s = o.idle_timeout_s,
        .on_request = admin_on_request,
        .handler_ctx = gw,
        .on_mhd_error = on_mhd_error,
    };
    gw->admin_httpd = httpd_start(gw->loop, &a, err, sizeof err);
    if (!gw->admin_httpd) {
        log_msg(&gw->log, CONFIG_LOG_ERROR, "cannot listen on admin_listen", err);
        return -1;
    }
    return 0;
}

/* The largest timeout a request can have, for the histogram buckets. */
static uint64_t largest_timeout_ms(const config *cfg)
{
    uint64_t t = 1000;
    for (size_t i = 0; i < cfg->service_count; i++)
        if (cfg->services[i].timeout_ms > t)
            t = cfg->services[i].timeout_ms;
    for (size_t i = 0; i < cfg->route_count; i++)
        if (cfg->routes[i].timeout_ms > t)
            t = cfg->routes[i].timeout_ms;
    return t;
}

/* Each HTTP connection and each upstream connection is a descriptor: raise
 * the soft limit (1024 by default) as far as the hard limit allows, and say
 * so when even that is below what the config may need. */
static void raise_fd_limit(const config *cfg, size_t workers, const logger_t *log)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t wanted = (rlim_t)cfg->limits.max_connections + 64;
    for (size_t i = 0; i < cfg->service_count; i++)
        wanted += (rlim_t)cfg->services[i].pool_size * cfg->services[i].endpoint_count * workers;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < wanted) {
        log_line_t line;
        if (log_begin(log, &line, CONFIG_LOG_WARN, "the open-files limit is below what the config may need")) {
            log_int(&line, "limit", (long long)rl.rlim_cur);
            log_int(&line, "wanted", (long long)wanted);
        }
        log_end(log, &line);
    }
}

static void log_started(gateway_t *gw)
{
    char listen[HOSTPORT_TEXT_SIZE], summary[128];
    hostport_format(&gw->cfg->listen, listen, sizeof listen);
    config_summary(gw->cfg, summary, sizeof summary);
    log_line_t line;
    if (log_begin(&gw->log, &line, CONFIG_LOG_INFO, "listening")) {
        log_str(&line, "listen", listen);
        log_str(&line, "config", gw->cfg->file ? gw->cfg->file : "(embedded default)");
        log_str(&line, "summary", summary);
        log_str(&line, "version", PG_VERSION);
        log_int(&line, "workers", (long long)gw->n_workers);
    }
    log_end(&gw->log, &line);
}

/* One worker: its loop, HTTP daemon(s), upstream pools, generation and
 * reloader; `metrics` is its own (owned by gateway_run, readable by every
 * worker's scrape). Returns 0, or 1 when it could not start. */
static int worker_run(config *cfg, unsigned index, metrics_t *const *all_metrics, size_t n_workers)
{
    uv_loop_t loop;
    gateway_t gw;
    memset(&gw, 0, sizeof gw);
    uv_loop_init(&loop);
    gw.loop = &loop;
    gw.cfg = cfg;
    gw.worker = index;
    gw.n_workers = n_workers;
    gw.all_metrics = all_metrics;
    gw.metrics = all_metrics[index];
    logger_init(&gw.log, cfg->log_level);
    if (getrandom(&gw.rng, sizeof gw.rng, 0) != sizeof gw.rng || gw.rng == 0)
        gw.rng = uv_hrtime() | 1;
    list_init(&gw.waiting_list);
    timers_init(&gw.timers, &loop);
    uplog_init(&gw.uplog, &gw.log);
    gw.started_ns = uv_hrtime();
    gw.config_loaded_at_ms = gateway_wall_ms();
    metrics_config_loaded(gw.metrics, (double)gw.config_loaded_at_ms / 1000);
    gw.up = upstream_new(&loop);
    if (gw.up)
        upstream_set_event_handler(gw.up, on_upstream_event, &gw);
    reload_start(&gw.reload, &gw);
    if (gw.up)
        gw.gen = generation_new(cfg, NULL, gw.up, gw.metrics, &gw.log);
    int cfg_taken = gw.gen != NULL; /* else still ours to free */
    int ok = gw.gen && start_http(&gw) == 0;
    uv_signal_init(&loop, &gw.sigterm);
    uv_signal_init(&loop, &gw.sigint);
    uv_timer_init(&loop, &gw.grace);
    uv_check_init(&loop, &gw.drained);
    gw.sigterm.data = gw.sigint.data = gw.grace.data = gw.drained.data = &gw;
    if (ok) {
        uv_signal_start(&gw.sigterm, on_signal, SIGTERM);
        uv_signal_start(&gw.sigint, on_signal, SIGINT);
        if (index == 0)
            log_started(&gw);
    }
    if (!ok) { /* nothing in flight yet: close everything now */
        if (n_workers > 1) /* the other workers must not serve on alone */
            kill(getpid(), SIGTERM);
        stop(&gw);
        on_drained_check(&gw.drained);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        log_msg(&gw.log, CONFIG_LOG_WARN, "the event loop did not close clean", NULL);
    uplog_free(&gw.uplog);
    if (!cfg_taken)
        config_free(cfg);
    return ok ? 0 : 1;
}

typedef struct worker_thread {
    uv_thread_t thread;
    config *cfg;
    unsigned index;
    metrics_t *const *all_metrics;
    size_t n;
    int result;
} worker_thread_t;

static void worker_main(void *arg)
{
    worker_thread_t *t = arg;
    t->result = worker_run(t->cfg, t->index, t->all_metrics, t->n);
}

/* The number of workers: the config's, or one per CPU for "auto". */
static size_t worker_count(const config *cfg)
{
    if (cfg->workers > 0)
        return cfg->workers;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 0 ? (size_t)cpus : 1;
}

/* Each worker has its own copy of the config (a reload replaces it per
 * worker), loaded the same way as the first. */
static config *load_copy(const config *cfg, const logger_t *log)
{
    config *copy = NULL;
    config_error error;
    int rc = cfg->file ? config_load_file(cfg->file, NULL, &copy, &error) : config_load_default(&copy, &error);
    if (rc != 0)
        log_msg(log, CONFIG_LOG_ERROR, "cannot load the config for another worker", error.message);
    return copy;
}

int gateway_run(config *cfg)
{
    logger_t log;
    logger_init(&log, cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    /* glibc raises its mmap threshold to the size of the largest block
     * freed (up to 32 MiB), after which big reply buffers come from the
     * heap and are not given back: a fixed threshold keeps every block of
     * 256 KiB or more in its own mapping, returned when freed, so the
     * memory a large reply took comes back (SECURITY.md, limits). */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    const size_t total = worker_count(cfg);
    size_t n = total;
    raise_fd_limit(cfg, n, &log);
    metrics_t **metrics = calloc(n, sizeof *metrics);
    worker_thread_t *threads = calloc(n, sizeof *threads);
    int ok = metrics && threads;
    for (size_t i = 0; ok && i < n; i++) {
        metrics[i] = metrics_new(largest_timeout_ms(cfg));
        threads[i] = (worker_thread_t){ .cfg = i == 0 ? cfg : load_copy(cfg, &log), .index = (unsigned)i,
                                        .all_metrics = metrics, .n = n };
        ok = metrics[i] && threads[i].cfg;
    }
    int result = 1;
    if (ok) {
        size_t started = 1;
        for (; started < n; started++)
            if (uv_thread_create(&threads[started].thread, worker_main, &threads[started]) != 0)
                break;
        if (started < n) {
            log_msg(&log, CONFIG_LOG_ERROR, "cannot start a worker thread", NULL);
            for (size_t i = started; i < n; i++)
                config_free(threads[i].cfg);
            n = started;
            kill(getpid(), SIGTERM); /* the started ones stop */
        }
        result = worker_run(cfg, 0, metrics, n);
        for (size_t i = 1; i < n; i++) {
            uv_thread_join(&threads[i].thread);
            result |= threads[i].result;
        }
        if (started < total)
            result = 1;
    } else {
        log_msg(&log, CONFIG_LOG_ERROR, "cannot start the workers", "out of memory");
        for (size_t i = 0; threads && i < n; i++)
            if (threads[i].cfg && threads[i].cfg != cfg)
                config_free(threads[i].cfg);
        config_free(cfg);
    }
    for (size_t i = 0; metrics && i < total; i++)
        metrics_free(metrics[i]);
    free(metrics);
    free(threads);
    return result;
}
