#include "gateway/reload.h"

#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"

#define SETTLE_MS 100

static double wall_seconds(void)
{
    return (double)gateway_wall_ms() / 1000;
}

static void failed(reloader_t *r, const char *trigger, const char *error)
{
    gateway_t *gw = r->gw;
    log_line_t line;
    if (log_begin(&gw->log, &line, CONFIG_LOG_ERROR, "config reload failed")) {
        log_str(&line, "trigger", trigger);
        log_str(&line, "error", error);
    }
    log_end(&gw->log, &line);
    metrics_reload(gw->metrics, 0, wall_seconds());
}

/* Settings bound to listening sockets or threads keep their running
 * values; a change is logged. */
static void keep_fixed_settings(gateway_t *gw, config *next)
{
    const config *cur = gw->cfg;
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
        if (log_begin(&gw->log, &line, CONFIG_LOG_WARN,
                      "a reload cannot change listen, admin_listen, workers, limits.max_connections or "
                      "limits.idle_timeout_ms: the running values stay"))
            log_str(&line, "field", field);
        log_end(&gw->log, &line);
    }
    next->listen = cur->listen;
    next->has_admin_listen = cur->has_admin_listen;
    next->admin_listen = cur->admin_listen;
    next->workers = cur->workers;
    next->limits.max_connections = cur->limits.max_connections;
    next->limits.idle_timeout_ms = cur->limits.idle_timeout_ms;
}

void reload_now(reloader_t *r, const char *trigger)
{
    gateway_t *gw = r->gw;
    const char *file = gw->cfg->file;
    if (!file) {
        log_msg(&gw->log, CONFIG_LOG_WARN, "no config file to reload: running on the embedded default", NULL);
        return;
    }
    if (gw->stopping)
        return;
    file_digest(file, r->last_digest);
    config *next = NULL;
    config_error error;
    if (config_load_file(file, NULL, &next, &error) != 0) {
        char first[CONFIG_ERROR_SIZE + CFG_PATH_SIZE + CONFIG_REASON_SIZE];
        char problem[sizeof first + 80];
        config_problem_format(&error, 0, file, first, sizeof first);
        if (error.count > 1)
            snprintf(problem, sizeof problem, "%s (+%zu%s more; patterngate --check lists all)",
                     first, error.count - 1, error.truncated ? "+" : "");
        else
            snprintf(problem, sizeof problem, "%s", first);
        failed(r, trigger, problem);
        return;
    }
    keep_fixed_settings(gw, next);
    generation_t *gen = generation_new(next, gw->gen, gw->up, gw->metrics, &gw->log);
    if (!gen) {
        config_free(next);
        failed(r, trigger, "the new config could not be applied (see the line before)");
        return;
    }
    generation_t *old = gw->gen;
    gw->gen = gen;
    gw->cfg = gen->cfg;
    gw->log.level = gen->cfg->log_level;
    gw->config_loaded_at_ms = gateway_wall_ms();
    size_t kept = gen->kept;
    generation_release(old);
    metrics_reload(gw->metrics, 1, wall_seconds());
    char summary[128];
    config_summary(gen->cfg, summary, sizeof summary);
    log_line_t line;
    if (log_begin(&gw->log, &line, CONFIG_LOG_INFO, "config reloaded")) {
        log_str(&line, "trigger", trigger);
        log_str(&line, "config", gen->cfg->file); /* `file` went with the old config */
        log_str(&line, "summary", summary);
        log_int(&line, "services_kept", (long long)kept);
    }
    log_end(&gw->log, &line);
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
    if (file_digest(r->gw->cfg->file, now) == 0 && strcmp(now, r->last_digest) != 0)
        reload_now(r, "file change");
}

static void on_fs_event(uv_fs_event_t *w, const char *filename, int events, int status)
{
    (void)filename;
    (void)events;
    reloader_t *r = w->data;
    if (status == 0)
        uv_timer_start(&r->settle, on_settled, SETTLE_MS, 0);
}

void reload_start(reloader_t *r, gateway_t *gw)
{
    memset(r, 0, sizeof *r);
    r->gw = gw;
    uv_signal_init(gw->loop, &r->sighup);
    uv_timer_init(gw->loop, &r->settle);
    uv_fs_event_init(gw->loop, &r->watch);
    r->sighup.data = r->settle.data = r->watch.data = r;
    uv_signal_start(&r->sighup, on_sighup, SIGHUP);
    const char *file = gw->cfg->file;
    if (!file)
        return;
    file_digest(file, r->last_digest);
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", file);
    const char *dir = dirname(copy);
    int rc = uv_fs_event_start(&r->watch, on_fs_event, dir, 0);
    if (rc < 0) {
        log_line_t line;
        if (log_begin(&gw->log, &line, CONFIG_LOG_WARN, "cannot watch the config file's folder: reload on SIGHUP only")) {
            log_str(&line, "folder", dir);
            log_str(&line, "error", uv_strerror(rc));
        }
        log_end(&gw->log, &line);
        return;
    }
    r->watching = 1;
}

void reload_close(reloader_t *r)
{
    uv_close((uv_handle_t *)&r->sighup, NULL);
    uv_close((uv_handle_t *)&r->settle, NULL);
    uv_close((uv_handle_t *)&r->watch, NULL);
}
