#include "core/timers.h"

#include <errno.h>
#include <stdlib.h>

static timers_t *timers_of(uv_timer_t *h)
{
    return (timers_t *)((char *)h - offsetof(timers_t, handle));
}

static void place(timers_t *t, size_t i, timer_entry_t *e)
{
    t->heap[i] = e;
    e->index = i;
}

static void sift_up(timers_t *t, size_t i)
{
    timer_entry_t *e = t->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (t->heap[parent]->due <= e->due)
            break;
        place(t, i, t->heap[parent]);
        i = parent;
    }
    place(t, i, e);
}

static void sift_down(timers_t *t, size_t i)
{
    timer_entry_t *e = t->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= t->len)
            break;
        if (child + 1 < t->len && t->heap[child + 1]->due < t->heap[child]->due)
            child++;
        if (e->due <= t->heap[child]->due)
            break;
        place(t, i, t->heap[child]);
        i = child;
    }
    place(t, i, e);
}

static void remove_at(timers_t *t, size_t i)
{
    timer_entry_t *gone = t->heap[i];
    gone->index = TIMER_IDLE;
    t->len--;
    if (i == t->len)
        return;
    timer_entry_t *moved = t->heap[t->len];
    place(t, i, moved);
    sift_down(t, i);
    sift_up(t, moved->index);
}

static void on_uv_timer(uv_timer_t *h);

/* Sets the uv timer for the earliest deadline when that is earlier than
 * what it is set for now. */
static void rearm(timers_t *t)
{
    if (t->len == 0)
        return;
    uint64_t due = t->heap[0]->due;
    if (due >= t->armed_for)
        return;
    uint64_t now = uv_now(t->handle.loop);
    t->armed_for = due;
    uv_timer_start(&t->handle, on_uv_timer, due > now ? due - now : 0, 0);
}

static void on_uv_timer(uv_timer_t *h)
{
    timers_t *t = timers_of(h);
    uint64_t now = uv_now(h->loop);
    t->armed_for = UINT64_MAX;
    while (t->len > 0 && t->heap[0]->due <= now) {
        timer_entry_t *e = t->heap[0];
        remove_at(t, 0);
        e->fire(e);
    }
    rearm(t);
}

int timers_init(timers_t *t, uv_loop_t *loop)
{
    t->heap = NULL;
    t->len = t->cap = 0;
    t->armed_for = UINT64_MAX;
    return uv_timer_init(loop, &t->handle);
}

void timers_close(timers_t *t, uv_close_cb close_cb)
{
    for (size_t i = 0; i < t->len; i++)
        t->heap[i]->index = TIMER_IDLE;
    free(t->heap);
    t->heap = NULL;
    t->len = t->cap = 0;
    uv_close((uv_handle_t *)&t->handle, close_cb);
}

int timers_start(timers_t *t, timer_entry_t *e, uint64_t delay_ms, timer_fire_cb fire)
{
    timers_stop(t, e);
    if (t->len == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        timer_entry_t **heap = realloc(t->heap, cap * sizeof *heap);
        if (!heap)
            return -ENOMEM;
        t->heap = heap;
        t->cap = cap;
    }
    e->due = uv_now(t->handle.loop) + delay_ms;
    e->fire = fire;
    place(t, t->len++, e);
    sift_up(t, e->index);
    rearm(t);
    return 0;
}

void timers_stop(timers_t *t, timer_entry_t *e)
{
    if (e->index != TIMER_IDLE)
        remove_at(t, e->index);
}
