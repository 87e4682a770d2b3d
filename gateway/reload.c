#include "gateway/reload.h"

#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/file_watch.h"
#include "gateway/wallclock.h"

#define SETTLE_MS 100

/* What worker 0 tells the others. */
typedef struct reload_msg {
    peer_msg_t base;     /* first */
    int ok;              /* worker 0's outcome */
} reload_msg_t;

static void drop_msg(peer_msg_t *m) { free(m); }

static void set_levels(worker_t *w, config_log_level level)
{
    w->log.level = level;
    w->process_log.level = level;
}

/* Settings bound to listening sockets or threads keep their running
 * values; a change is logged (once: process-wide). */
static void keep_fixed_settings(worker_t *w, config *next)
{
    const config *cur = w->gen->cfg;
    char field[64] = "";
    if (!hostport_equal(&cur->listen, &next->listen))
        snprintf(field, sizeof field, "listen");
    else if (cur->has_admin_listen != next->has_admin_listen ||
             (cur->has_admin_listen && !hostport_equal(&cur->admin_listen, &next->admin_listen)))
        snprintf(field, sizeof field, "admin_listen");
    else if (cur->workers != next->workers)
        snprintf(field, sizeof field, "workers");
    else if (cur->limits.max_connections != next->limits.max_connections)
        snprintf(field, sizeof field, "limits.max_connections");
    else if (cur->limits.idle_timeout_ms != next->limits.idle_timeout_ms)
        snprintf(field, sizeof field, "limits.idle_timeout_ms");
    if (field[0]) {
        log_line_t line;
        if (log_begin(&w->process_log, &line, CONFIG_LOG_WARN,
                      "a reload cannot change listen, admin_listen, workers, limits.max_connections or "
                      "limits.idle_timeout_ms: the running values stay"))
            log_str(&line, "field", field);
        log_end(&w->process_log, &line);
    }
    next->listen = cur->listen;
    next->has_admin_listen = cur->has_admin_listen;
    next->admin_listen = cur->admin_listen;
    next->workers = cur->workers;
    next->limits.max_connections = cur->limits.max_connections;
    next->limits.idle_timeout_ms = cur->limits.idle_timeout_ms;
}

static int same_dns_servers(const config *a, const config *b)
{
    if (a->dns_server_count != b->dns_server_count)
        return 0;
    for (size_t i = 0; i < a->dns_server_count; i++)
        if (strcmp(a->dns_servers[i], b->dns_servers[i]) != 0)
            return 0;
    return 1;
}

/* dns.servers of `cfg` for the worker's upstream. 0, or -1 with why. */
static int use_dns_servers(worker_t *w, const config *cfg, char *why, size_t size)
{
    return upstream_set_dns_servers(w->up, (const char *const *)cfg->dns_servers, cfg->dns_server_count, why,
                                    size);
}

/* ---- auth.jwt.jwks_file ---------------------------------------------------- */

static const char *jwks_file_of(const config *cfg)
{
    return cfg && cfg->jwt ? cfg->jwt->jwks_file : NULL;
}

/* The JWKS file changed while running (jwks.h): new keys, or the old ones
 * stay. Each worker reads the file; worker 0 logs and counts it once. */
static void on_jwks(void *data, jwks_t *j, jwks_event_t event, const char *why)
{
    worker_t *w = data;
    int ok = event == JWKS_RELOADED;
    if (ok) /* tokens verified under a removed key must not stay accepted */
        jwt_cache_clear(w->jwt_cache);
    log_line_t line;
    if (log_begin(&w->process_log, &line, ok ? CONFIG_LOG_INFO : CONFIG_LOG_WARN,
                  ok ? "JWKS file reloaded" : "JWKS file reload failed: the running keys stay")) {
        log_str(&line, "file", jwks_path(j));
        if (ok)
            log_int(&line, "keys", (long long)jwt_keys_count(jwks_keys(j)));
        else
            log_str(&line, "error", why);
    }
    log_end(&w->process_log, &line);
    if (w->index == 0)
        metrics_jwks_reload(w->metrics, ok);
}

/* The keys of cfg's jwks_file, watched, into *out: a new jwks when the
 * file is not the one the worker has (NULL when cfg has none, or it is
 * the same). 0, or -1 with the reason in error. */
static int open_jwks(worker_t *w, const config *cfg, jwks_t **out, char *error, size_t size)
{
    const char *file = jwks_file_of(cfg);
    *out = NULL;
    if (!file || (w->jwks && strcmp(jwks_path(w->jwks), file) == 0))
        return 0;
    char why[JWKS_ERR_SIZE];
    *out = jwks_open(w->loop, file, FILE_WATCH_SETTLE_MS, on_jwks, w, why, sizeof why);
    if (*out)
        return 0;
    snprintf(error, size, "auth.jwt.jwks_file: %s", why);
    return -1;
}

/* After cfg became current: `opened` (from open_jwks) replaces the
 * worker's keys, or cfg has none any more. */
static void switch_jwks(worker_t *w, const config *cfg, jwks_t *opened)
{
    if (!opened && jwks_file_of(cfg))
        return; /* the same file: its watch goes on */
    jwks_close(w->jwks);
    w->jwks = opened;
}

/* The new generation becomes the worker's. */
static void install(worker_t *w, generation_t *gen)
{
    generation_t *old = w->gen;
    w->gen = gen;
    set_levels(w, gen->cfg->log_level);
    uplog_configure(&w->uplog, w->up, gen->cfg);
    w->config_loaded_at_ms = wallclock_ms();
    generation_release(old);
}

static void remember_error(worker_t *w, const char *error)
{
    snprintf(w->last_reload_error, sizeof w->last_reload_error, "%s", error);
    w->last_reload_error_at_ms = wallclock_ms();
}

/* Loads the file and installs it. 0, or -1 with the reason in error. */
static int apply(worker_t *w, const char *file, char *error, size_t size)
{
    config *next = NULL;
    config_error err;
    if (config_load_file(file, NULL, &next, &err) != 0) {
        char first[CONFIG_ERROR_SIZE + CFG_PATH_SIZE + CONFIG_REASON_SIZE];
        config_problem_format(&err, 0, file, first, sizeof first);
        if (err.count > 1)
            snprintf(error, size, "%s (+%zu%s more; patterngate --check lists all)", first, err.count - 1,
                     err.truncated ? "+" : "");
        else
            snprintf(error, size, "%s", first);
        return -1;
    }
    keep_fixed_settings(w, next);
    int new_dns = !same_dns_servers(w->gen->cfg, next);
    if (new_dns && use_dns_servers(w, next, error, size) != 0) { /* before the services: new names use them */
        config_free(next);
        return -1;
    }
    jwks_t *jwks = NULL;
    generation_t *gen = NULL;
    if (open_jwks(w, next, &jwks, error, size) == 0) {
        gen = generation_new(next, w->gen, w->up, w->metrics, &w->process_log);
        if (!gen)
            snprintf(error, size, "the new config could not be applied (see the line before)");
    }
    if (!gen) {
        if (new_dns) /* the running config's servers again */
            (void)use_dns_servers(w, w->gen->cfg, NULL, 0);
        jwks_close(jwks);
        config_free(next);
        return -1;
    }
    install(w, gen);
    switch_jwks(w, gen->cfg, jwks);
    jwt_cache_clear(w->jwt_cache); /* the policy may have changed */
    if (ratelimit_set_max_keys(w->ratelimit, gen->cfg->limits.rate_limit_keys) != 0)
        log_msg(&w->process_log, CONFIG_LOG_WARN, "cannot change limits.rate_limit_keys: the running bound stays",
                "out of memory");
    return 0;
}

static void tell_the_others(worker_t *w, int ok)
{
    for (unsigned i = 0; i < w->count; i++) {
        reload_msg_t *m = i == w->index ? NULL : calloc(1, sizeof *m);
        if (!m)
            continue;
        *m = (reload_msg_t){ { NULL, PEER_RELOAD, w->index, drop_msg }, ok };
        if (peers_post(w->peers, i, &m->base) != 0)
            free(m);
    }
}

static void log_outcome(worker_t *w, const char *trigger, int ok, const char *error)
{
    log_line_t line;
    if (ok) {
        char summary[128];
        config_summary(w->gen->cfg, summary, sizeof summary);
        if (log_begin(&w->process_log, &line, CONFIG_LOG_INFO, "config reloaded")) {
            log_str(&line, "trigger", trigger);
            log_str(&line, "config", w->gen->cfg->file);
            log_str(&line, "summary", summary);
            log_int(&line, "services_kept", (long long)w->gen->kept);
        }
    } else if (log_begin(&w->process_log, &line, CONFIG_LOG_ERROR, "config reload failed")) {
        log_str(&line, "trigger", trigger);
        log_str(&line, "error", error);
    }
    log_end(&w->process_log, &line);
}

void reload_now(reloader_t *r, const char *trigger)
{
    worker_t *w = r->w;
    const char *file = w->gen->cfg->file;
    if (!file) {
        log_msg(&w->process_log, CONFIG_LOG_WARN, "no config file to reload: running on the embedded default", NULL);
        return;
    }
    if (w->draining)
        return;
    file_digest(file, r->last_digest);
    char path[PATH_MAX], error[WORKER_ERROR_SIZE];
    snprintf(path, sizeof path, "%s", file); /* `file` goes with the old config */
    int ok = apply(w, path, error, sizeof error) == 0;
    if (!ok)
        remember_error(w, error);
    log_outcome(w, trigger, ok, error);
    metrics_reload(w->metrics, ok, (double)wallclock_ms() / 1000);
    tell_the_others(w, ok);
}

void reload_on_message(reloader_t *r, peer_msg_t *base)
{
    reload_msg_t *m = (reload_msg_t *)base;
    worker_t *w = r->w;
    const char *file = w->gen->cfg->file;
    char error[WORKER_ERROR_SIZE] = "";
    int ok = file && !w->draining && apply(w, file, error, sizeof error) == 0;
    if (!ok && file && !w->draining)
        remember_error(w, error);
    if (ok != m->ok && !w->draining) { /* the file changed in between, most likely */
        log_line_t line;
        if (log_begin(&w->log, &line, CONFIG_LOG_WARN,
                      ok ? "this worker reloaded a config that worker 0 could not"
                         : "this worker could not reload the config that worker 0 did"))
            log_str(&line, "error", ok ? NULL : error);
        log_end(&w->log, &line);
    }
    free(m);
}

static void on_sighup(uv_signal_t *s, int signum)
{
    (void)signum;
    reload_now(s->data, "SIGHUP");
}

static void on_settled(uv_timer_t *t)
{
    reloader_t *r = t->data;
    char now[FILE_DIGEST_HEX];
    if (file_digest(r->w->gen->cfg->file, now) == 0 && strcmp(now, r->last_digest) != 0)
        reload_now(r, "file change");
}

static void on_fs_event(uv_fs_event_t *w, const char *filename, int events, int status)
{
    (void)filename;
    (void)events;
    reloader_t *r = w->data;
    if (status != 0)
        return;
    /* a folder that is never quiet still gets its reload (file_watch.h) */
    uint64_t now = uv_now(w->loop);
    if (!uv_is_active((uv_handle_t *)&r->settle))
        r->burst_start = now;
    uv_timer_start(&r->settle, on_settled, file_watch_settle_delay(r->burst_start, now, SETTLE_MS), 0);
}

/* Worker 0's triggers. */
static void start_triggers(reloader_t *r)
{
    worker_t *w = r->w;
    uv_signal_init(w->loop, &r->sighup);
    uv_timer_init(w->loop, &r->settle);
    uv_fs_event_init(w->loop, &r->watch);
    r->handles = 1;
    r->sighup.data = r->settle.data = r->watch.data = r;
    uv_signal_start(&r->sighup, on_sighup, SIGHUP);
    const char *file = w->gen->cfg->file;
    if (!file)
        return;
    file_digest(file, r->last_digest);
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", file);
    const char *dir = dirname(copy);
    int rc = uv_fs_event_start(&r->watch, on_fs_event, dir, 0);
    if (rc < 0) {
        log_line_t line;
        if (log_begin(&w->process_log, &line, CONFIG_LOG_WARN,
                      "cannot watch the config file's folder: reload on SIGHUP only")) {
            log_str(&line, "folder", dir);
            log_str(&line, "error", uv_strerror(rc));
        }
        log_end(&w->process_log, &line);
        return;
    }
    r->watching = 1;
}

int reload_start(reloader_t *r, worker_t *w, config *cfg)
{
    memset(r, 0, sizeof *r);
    r->w = w;
    set_levels(w, cfg->log_level);
    char why[200], jwks_error[JWKS_ERR_SIZE + 32];
    if (use_dns_servers(w, cfg, why, sizeof why) != 0)
        log_msg(&w->process_log, CONFIG_LOG_ERROR, "cannot use dns.servers", why);
    if (open_jwks(w, cfg, &w->jwks, jwks_error, sizeof jwks_error) != 0) { /* exits 1, like a TLS file */
        log_msg(&w->log, CONFIG_LOG_ERROR, "cannot load the JWT keys", jwks_error);
        return -1;
    }
    generation_t *gen = generation_new(cfg, NULL, w->up, w->metrics, &w->process_log);
    if (!gen) {
        jwks_close(w->jwks);
        w->jwks = NULL;
        return -1;
    }
    w->gen = gen;
    uplog_configure(&w->uplog, w->up, cfg);
    w->config_loaded_at_ms = wallclock_ms();
    metrics_config_loaded(w->metrics, (double)w->config_loaded_at_ms / 1000);
    if (w->index == 0)
        start_triggers(r);
    return 0;
}

void reload_close(reloader_t *r, const char *why)
{
    worker_t *w = r->w;
    if (r->handles) {
        uv_close((uv_handle_t *)&r->sighup, NULL);
        uv_close((uv_handle_t *)&r->settle, NULL);
        uv_close((uv_handle_t *)&r->watch, NULL);
        r->handles = 0;
    }
    jwks_close(w->jwks);
    w->jwks = NULL;
    generation_t *g = w->gen;
    w->gen = NULL;
    generation_release_why(g, why);
}
