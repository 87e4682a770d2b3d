#include "gateway/file_watch.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct file_watch {
    char *path;
    char *dir;                   /* the folder of path */
    char *target_dir;            /* the folder of realpath(path) when it is
                                    another one and watched; else NULL */
    uv_fs_event_t dir_event;
    uv_fs_event_t target_event;
    uv_timer_t settle;
    uint64_t settle_ms;
    uint64_t burst_start;        /* uv_now of the pending burst's first event */
    file_watch_cb *cb;
    void *data;
    int closed;                  /* handles whose close callback ran */
    bool closing;
};

#define HANDLES 3

/* The folder part of path: "." without a slash, "/" for "/x". */
static char *folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static void free_watch(file_watch_t *w)
{
    free(w->path);
    free(w->dir);
    free(w->target_dir);
    free(w);
}

static void on_closed(uv_handle_t *h)
{
    file_watch_t *w = h->data;
    if (++w->closed == HANDLES)
        free_watch(w);
}

static void close_handles(file_watch_t *w)
{
    w->closing = true;
    uv_close((uv_handle_t *)&w->dir_event, on_closed);
    uv_close((uv_handle_t *)&w->target_event, on_closed);
    uv_close((uv_handle_t *)&w->settle, on_closed);
}

static void on_settled(uv_timer_t *t);

static void on_event(uv_fs_event_t *e, const char *filename, int events, int status)
{
    (void)filename;
    (void)events;
    file_watch_t *w = e->data;
    if (w->closing)
        return;
    if (status < 0)
        uv_fs_event_stop(e); /* the folder is gone or unwatchable */
    uint64_t now = uv_now(e->loop);
    if (!uv_is_active((uv_handle_t *)&w->settle))
        w->burst_start = now;
    uv_timer_start(&w->settle, on_settled, file_watch_settle_delay(w->burst_start, now, w->settle_ms), 0);
}

uint64_t file_watch_settle_delay(uint64_t burst_start, uint64_t now, uint64_t settle_ms)
{
    uint64_t last = burst_start + FILE_WATCH_MAX_SETTLES * settle_ms;
    if (now >= last)
        return 0;
    return last - now < settle_ms ? last - now : settle_ms;
}

/* Watches the folder the path links to, when it is not the path's own
 * (again after each change: the link may have moved). */
static void follow_link(file_watch_t *w)
{
    char resolved[PATH_MAX];
    char *target = realpath(w->path, resolved) != NULL ? folder_of(resolved) : NULL;
    if (target != NULL && (strcmp(target, w->dir) == 0 ||
                           (w->target_dir != NULL && strcmp(target, w->target_dir) == 0 &&
                            uv_is_active((uv_handle_t *)&w->target_event)))) {
        free(target);
        return;
    }
    uv_fs_event_stop(&w->target_event);
    free(w->target_dir);
    w->target_dir = NULL;
    if (target != NULL && uv_fs_event_start(&w->target_event, on_event, target, 0) == 0)
        w->target_dir = target;
    else
        free(target);
}

static void on_settled(uv_timer_t *t)
{
    file_watch_t *w = t->data;
    follow_link(w);
    w->cb(w, w->data);
}

int file_watch_start(uv_loop_t *loop, const char *path, uint64_t settle_ms, file_watch_cb *cb,
                     void *data, file_watch_t **out)
{
    *out = NULL;
    file_watch_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return UV_ENOMEM;
    w->path = strdup(path);
    w->dir = folder_of(path);
    if (w->path == NULL || w->dir == NULL) {
        free_watch(w);
        return UV_ENOMEM;
    }
    w->settle_ms = settle_ms;
    w->cb = cb;
    w->data = data;
    uv_fs_event_init(loop, &w->dir_event);
    uv_fs_event_init(loop, &w->target_event);
    uv_timer_init(loop, &w->settle);
    w->dir_event.data = w->target_event.data = w->settle.data = w;
    int rc = uv_fs_event_start(&w->dir_event, on_event, w->dir, 0);
    if (rc < 0) {
        close_handles(w); /* freed once the loop runs the close callbacks */
        return rc;
    }
    follow_link(w);
    *out = w;
    return 0;
}

void file_watch_close(file_watch_t *w)
{
    if (w != NULL && !w->closing)
        close_handles(w);
}

const char *file_watch_path(const file_watch_t *w)
{
    return w->path;
}

bool file_watch_follows_link(const file_watch_t *w)
{
    return w->target_dir != NULL;
}
