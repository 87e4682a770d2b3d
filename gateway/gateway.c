#include "gateway/gateway.h"

#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "gateway/admin.h"
#include "gateway/exchange.h"
#include "gateway/proxy.h"
#include "gateway/reload.h"
#include "gateway/worker.h"

/* Each worker's cache of verified JWTs (jwt.h): distinct tokens kept, and
 * the bytes of their claims, at most. */
#define GATEWAY_JWT_CACHE_ENTRIES 4096
#define GATEWAY_JWT_CACHE_BYTES ((size_t)4 << 20)

/* One worker, as gateway.c alone sees it; every field is written here. */
typedef struct gateway {
    worker_t w;
    reloader_t reload;
    proxy_t *proxy;
    ex_listener_t listener;       /* the contexts of the HTTP servers */
    ex_listener_t admin_listener;
    uv_signal_t sigterm, sigint;
    uv_timer_t grace;             /* shutdown_grace_ms, then GATEWAY_FLUSH_MS */
    uv_check_t drained;           /* closes everything once nothing is left */
    int grace_over;               /* shutdown_grace_ms passed, or a 2nd signal */
    int flush_over;               /* the last answers had their time too */
    int upstream_closed;
} gateway_t;

static void on_upstream_event(void *ctx, const up_event_t *ev)
{
    gateway_t *gw = ctx;
    uplog_event(&gw->w.uplog, ev, uv_now(gw->w.loop));
    if (gw->proxy)
        proxy_on_upstream_event(gw->proxy, ev);
}

static void on_peer_message(void *ctx, peer_msg_t *msg)
{
    gateway_t *gw = ctx;
    if (msg->kind == PEER_RELOAD)
        reload_on_message(&gw->reload, msg);
    else
        admin_on_message(&gw->w, msg);
}

static void on_mhd_error(void *ctx, const char *text)
{
    ex_listener_t *l = ctx;
    gateway_t *gw = l->admin ? LIST_OWNER(l, gateway_t, admin_listener) : LIST_OWNER(l, gateway_t, listener);
    log_msg(&gw->w.log, CONFIG_LOG_WARN, "http server", text);
}

static void on_admin_closed(void *ctx)
{
    gateway_t *gw = ctx;
    gw->w.admin_httpd = NULL;
}

/* The last step of a stop: the services go, then the upstream. */
static void close_upstream(gateway_t *gw)
{
    if (gw->upstream_closed)
        return;
    gw->upstream_closed = 1;
    if (gw->w.up) /* connections closing now are not events worth a log line */
        upstream_set_event_handler(gw->w.up, NULL, NULL);
    reload_close(&gw->reload, "the gateway is shutting down");
    if (gw->w.up)
        upstream_close(gw->w.up);
}

static void on_httpd_closed(void *ctx)
{
    gateway_t *gw = ctx;
    gw->w.httpd = NULL;
    if (gw->proxy) /* MHD has completed every exchange */
        proxy_close(gw->proxy);
    gw->proxy = NULL;
    close_upstream(gw);
}

/* Nothing left that MHD must not be stopped under: closes the listeners
 * (then the upstream) and every handle, and the loop runs dry. */
static void shut(gateway_t *gw)
{
    uv_close((uv_handle_t *)&gw->drained, NULL);
    uv_close((uv_handle_t *)&gw->grace, NULL);
    uv_close((uv_handle_t *)&gw->sigterm, NULL);
    uv_close((uv_handle_t *)&gw->sigint, NULL);
    if (gw->w.peers)
        peers_detach(gw->w.peers, gw->w.index);
    if (gw->w.admin_httpd)
        httpd_close(gw->w.admin_httpd, on_admin_closed, gw);
    if (gw->w.httpd) {
        httpd_close(gw->w.httpd, on_httpd_closed, gw);
        return;
    }
    if (gw->proxy)
        proxy_close(gw->proxy);
    gw->proxy = NULL;
    close_upstream(gw);
}

/* Runs once per loop iteration while stopping. Before the grace is over
 * it waits for every exchange to finish; after it, for none to be held
 * (MHD aborts if stopped under a suspended connection) and the last
 * answers and stream ends to be written, or GATEWAY_FLUSH_MS. */
static void on_drained_check(uv_check_t *c)
{
    gateway_t *gw = c->data;
    ex_pool_t *pool = gw->proxy ? proxy_pool(gw->proxy) : NULL;
    if (pool && !gw->grace_over && ex_pool_alive(pool) > 0)
        return;
    if (pool && (ex_pool_held(pool) > 0 || (ex_pool_sending(pool) > 0 && !gw->flush_over)))
        return;
    shut(gw);
}

static void on_flush_over(uv_timer_t *t)
{
    gateway_t *gw = t->data;
    gw->flush_over = 1;
}

static void end_in_flight(gateway_t *gw)
{
    gw->grace_over = 1;
    if (gw->proxy)
        ex_pool_drain(proxy_pool(gw->proxy));
}

static void on_grace_over(uv_timer_t *t)
{
    gateway_t *gw = t->data;
    size_t open = gw->proxy ? ex_pool_alive(proxy_pool(gw->proxy)) : 0;
    if (open) {
        log_line_t line;
        if (log_begin(&gw->w.log, &line, CONFIG_LOG_WARN, "shutdown grace is over: ending the requests still in flight"))
            log_int(&line, "requests", (long long)open);
        log_end(&gw->w.log, &line);
    }
    end_in_flight(gw);
    uv_timer_start(&gw->grace, on_flush_over, GATEWAY_FLUSH_MS, 0);
}

/* First signal: drain. Second: end what is left at once. */
static void stop(gateway_t *gw)
{
    if (gw->w.draining) {
        gw->flush_over = 1;
        end_in_flight(gw);
        return;
    }
    gw->w.draining = 1;
    uv_check_start(&gw->drained, on_drained_check);
    if (gw->w.httpd && gw->w.gen)
        uv_timer_start(&gw->grace, on_grace_over, gw->w.gen->cfg->shutdown_grace_ms, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    gateway_t *gw = s->data;
    log_line_t line;
    if (log_begin(&gw->w.process_log, &line, CONFIG_LOG_INFO,
                  gw->w.draining ? "second signal: exiting now" : "shutting down"))
        log_str(&line, "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    log_end(&gw->w.process_log, &line);
    stop(gw);
}

static httpd_t *listen_on(gateway_t *gw, const hostport *address, unsigned max_connections, ex_listener_t *l,
                          int reuse_port)
{
    const config *cfg = gw->w.gen->cfg;
    httpd_options_t o = {
        .listen = address,
        .max_connections = max_connections,
        .idle_timeout_s = (unsigned)((cfg->limits.idle_timeout_ms + 999) / 1000),
        .on_request = exchange_on_request,
        .on_completed = exchange_on_completed,
        .handler_ctx = l,
        .on_mhd_error = on_mhd_error,
        .on_hangup = exchange_on_hangup,
        .on_refused = l->admin ? NULL : proxy_on_refused,
        .connections = l->admin ? NULL : metrics_http_connections(gw->w.metrics),
        .reuse_port = reuse_port,
    };
    char err[256];
    httpd_t *h = httpd_start(gw->w.loop, &o, err, sizeof err);
    if (!h)
        log_msg(&gw->w.log, CONFIG_LOG_ERROR, l->admin ? "cannot listen on admin_listen" : "cannot listen", err);
    l->server = h;
    return h;
}

static int start_http(gateway_t *gw)
{
    const config *cfg = gw->w.gen->cfg;
    gw->listener = (ex_listener_t){ proxy_pool(gw->proxy), NULL, 0 };
    gw->admin_listener = (ex_listener_t){ proxy_pool(gw->proxy), NULL, 1 };
    gw->w.httpd = listen_on(gw, &cfg->listen, cfg->limits.max_connections, &gw->listener, gw->w.count > 1);
    if (!gw->w.httpd)
        return -1;
    if (!cfg->has_admin_listen || gw->w.index != 0) /* one admin listener, on worker 0 */
        return 0;
    gw->w.admin_httpd = listen_on(gw, &cfg->admin_listen, 64, &gw->admin_listener, 0);
    return gw->w.admin_httpd ? 0 : -1;
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
    const config *cfg = gw->w.gen->cfg;
    char listen[HOSTPORT_TEXT_SIZE], summary[128];
    hostport_format(&cfg->listen, listen, sizeof listen);
    config_summary(cfg, summary, sizeof summary);
    log_line_t line;
    if (log_begin(&gw->w.process_log, &line, CONFIG_LOG_INFO, "listening")) {
        log_str(&line, "listen", listen);
        log_str(&line, "config", cfg->file ? cfg->file : "(embedded default)");
        log_str(&line, "summary", summary);
        log_str(&line, "version", PG_VERSION);
        log_int(&line, "workers", (long long)gw->w.count);
    }
    log_end(&gw->w.process_log, &line);
}

/* What every worker gets from gateway_run. */
typedef struct shared {
    metrics_t **metrics;
    size_t count;
    peers_t *peers;
    ratelimit_t *ratelimit;
} shared_t;

static void init_worker(worker_t *w, uv_loop_t *loop, unsigned index, const shared_t *sh, config_log_level level)
{
    w->loop = loop;
    w->index = index;
    w->count = sh->count;
    w->all_metrics = (metrics_t *const *)sh->metrics;
    w->metrics = sh->metrics[index];
    w->peers = sh->peers;
    w->ratelimit = sh->ratelimit;
    w->started_ns = uv_hrtime();
    logger_init(&w->log, level);
    w->log.worker = (int)index;
    logger_init(&w->process_log, level);
    w->process_log.muted = index != 0; /* worker 0 speaks for the process */
    uplog_init(&w->uplog, &w->log);
}

static void init_handles(gateway_t *gw)
{
    uv_loop_t *loop = gw->w.loop;
    uv_signal_init(loop, &gw->sigterm);
    uv_signal_init(loop, &gw->sigint);
    uv_timer_init(loop, &gw->grace);
    uv_check_init(loop, &gw->drained);
    gw->sigterm.data = gw->sigint.data = gw->grace.data = gw->drained.data = gw;
}

/* One worker: its loop, HTTP daemon(s), upstream pools, generation and
 * exchanges. Returns 0, or 1 when it could not start. */
static int worker_run(config *cfg, unsigned index, const shared_t *sh)
{
    uv_loop_t loop;
    gateway_t gw;
    memset(&gw, 0, sizeof gw);
    uv_loop_init(&loop);
    init_worker(&gw.w, &loop, index, sh, cfg->log_level);
    init_handles(&gw);
    gw.w.up = upstream_new(&loop);
    gw.w.jwt_cache = jwt_cache_new(GATEWAY_JWT_CACHE_ENTRIES, GATEWAY_JWT_CACHE_BYTES);
    if (gw.w.up)
        upstream_set_event_handler(gw.w.up, on_upstream_event, &gw);
    int cfg_taken = gw.w.up && gw.w.jwt_cache && reload_start(&gw.reload, &gw.w, cfg) == 0; /* else still ours */
    int ok = cfg_taken && (gw.proxy = proxy_new(&gw.w, &ex_http_mhd)) != NULL &&
             peers_attach(sh->peers, index, &loop, on_peer_message, &gw) == 0 && start_http(&gw) == 0;
    if (ok) {
        uv_signal_start(&gw.sigterm, on_signal, SIGTERM);
        uv_signal_start(&gw.sigint, on_signal, SIGINT);
        if (index == 0)
            log_started(&gw);
    } else { /* nothing in flight yet: close everything now */
        if (sh->count > 1) /* the other workers must not serve on alone */
            kill(getpid(), SIGTERM);
        gw.w.draining = 1;
        if (!cfg_taken)
            gw.reload.w = &gw.w; /* nothing to drop */
        shut(&gw);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        log_msg(&gw.w.log, CONFIG_LOG_WARN, "the event loop did not close clean", NULL);
    uplog_free(&gw.w.uplog);
    jwt_cache_free(gw.w.jwt_cache);
    if (!cfg_taken)
        config_free(cfg);
    return ok ? 0 : 1;
}

typedef struct worker_thread {
    uv_thread_t thread;
    config *cfg;
    unsigned index;
    const shared_t *shared;
    int result;
} worker_thread_t;

static void worker_main(void *arg)
{
    worker_thread_t *t = arg;
    t->result = worker_run(t->cfg, t->index, t->shared);
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

/* Starts workers 1..n-1 on threads and runs worker 0 here. */
static int run_workers(config *cfg, worker_thread_t *threads, shared_t *sh, const logger_t *log)
{
    size_t total = sh->count, started = 1;
    for (; started < total; started++)
        if (uv_thread_create(&threads[started].thread, worker_main, &threads[started]) != 0)
            break;
    if (started < total) {
        log_msg(log, CONFIG_LOG_ERROR, "cannot start a worker thread", NULL);
        for (size_t i = started; i < total; i++)
            config_free(threads[i].cfg);
        kill(getpid(), SIGTERM); /* the started ones stop */
    }
    int result = worker_run(cfg, 0, sh);
    for (size_t i = 1; i < started; i++) {
        uv_thread_join(&threads[i].thread);
        result |= threads[i].result;
    }
    return started < total ? 1 : result;
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
    const size_t n = worker_count(cfg);
    raise_fd_limit(cfg, n, &log);
    shared_t sh = { calloc(n, sizeof *sh.metrics), n, peers_new(n), ratelimit_new(cfg->limits.rate_limit_keys) };
    worker_thread_t *threads = calloc(n, sizeof *threads);
    int ok = sh.metrics && sh.peers && sh.ratelimit && threads;
    for (size_t i = 0; ok && i < n; i++) {
        sh.metrics[i] = metrics_new(largest_timeout_ms(cfg));
        threads[i] = (worker_thread_t){ .cfg = i == 0 ? cfg : load_copy(cfg, &log), .index = (unsigned)i,
                                        .shared = &sh };
        ok = sh.metrics[i] && threads[i].cfg;
    }
    int result = 1;
    if (ok) {
        result = run_workers(cfg, threads, &sh, &log);
    } else {
        log_msg(&log, CONFIG_LOG_ERROR, "cannot start the workers", "out of memory");
        for (size_t i = 0; threads && i < n; i++)
            if (threads[i].cfg && threads[i].cfg != cfg)
                config_free(threads[i].cfg);
        config_free(cfg);
    }
    for (size_t i = 0; sh.metrics && i < n; i++)
        metrics_free(sh.metrics[i]);
    free(sh.metrics);
    peers_free(sh.peers);
    ratelimit_free(sh.ratelimit);
    free(threads);
    log_line_t line;
    if (log_begin(&log, &line, result ? CONFIG_LOG_ERROR : CONFIG_LOG_INFO, "exit"))
        log_int(&line, "code", result ? 1 : 0);
    log_end(&log, &line);
    return result;
}
