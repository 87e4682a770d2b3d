#include "gateway/peers.h"

#include <errno.h>
#include <stdlib.h>

typedef struct mailbox {
    uv_mutex_t lock;
    uv_async_t async;        /* on the owner's loop while attached */
    int attached;            /* under lock */
    int closed;              /* detached once (owner's thread) */
    peer_msg_t *head, *tail; /* under lock */
    void (*fn)(void *ctx, peer_msg_t *msg);
    void *ctx;
} mailbox_t;

struct peers {
    size_t count;
    mailbox_t *boxes;
};

peers_t *peers_new(size_t count)
{
    peers_t *p = calloc(1, sizeof *p);
    mailbox_t *boxes = calloc(count ? count : 1, sizeof *boxes);
    if (!p || !boxes) {
        free(p);
        free(boxes);
        return NULL;
    }
    p->count = count;
    p->boxes = boxes;
    for (size_t i = 0; i < count; i++)
        uv_mutex_init(&boxes[i].lock);
    return p;
}

void peers_free(peers_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->count; i++)
        uv_mutex_destroy(&p->boxes[i].lock);
    free(p->boxes);
    free(p);
}

size_t peers_count(const peers_t *p) { return p->count; }

/* Takes the whole queue, under the lock. */
static peer_msg_t *take_all(mailbox_t *b)
{
    uv_mutex_lock(&b->lock);
    peer_msg_t *m = b->head;
    b->head = b->tail = NULL;
    uv_mutex_unlock(&b->lock);
    return m;
}

static void on_async(uv_async_t *a)
{
    mailbox_t *b = a->data;
    peer_msg_t *m = take_all(b);
    while (m) {
        peer_msg_t *next = m->next;
        m->next = NULL;
        b->fn(b->ctx, m);
        m = next;
    }
}

int peers_attach(peers_t *p, unsigned self, uv_loop_t *loop, void (*fn)(void *ctx, peer_msg_t *msg), void *ctx)
{
    if (self >= p->count)
        return -EINVAL;
    mailbox_t *b = &p->boxes[self];
    b->fn = fn;
    b->ctx = ctx;
    int rc = uv_async_init(loop, &b->async, on_async);
    if (rc < 0)
        return rc;
    b->async.data = b;
    uv_mutex_lock(&b->lock);
    b->attached = 1;
    uv_mutex_unlock(&b->lock);
    return 0;
}

void peers_detach(peers_t *p, unsigned self)
{
    if (self >= p->count || p->boxes[self].closed)
        return;
    mailbox_t *b = &p->boxes[self];
    b->closed = 1;
    uv_mutex_lock(&b->lock);
    int was = b->attached;
    b->attached = 0;
    uv_mutex_unlock(&b->lock);
    if (!was)
        return;
    uv_close((uv_handle_t *)&b->async, NULL);
    peer_msg_t *m = take_all(b);
    while (m) {
        peer_msg_t *next = m->next;
        m->next = NULL;
        m->drop(m);
        m = next;
    }
}

int peers_post(peers_t *p, unsigned to, peer_msg_t *msg)
{
    if (to >= p->count)
        return -ESRCH;
    mailbox_t *b = &p->boxes[to];
    msg->next = NULL;
    uv_mutex_lock(&b->lock);
    if (!b->attached) {
        uv_mutex_unlock(&b->lock);
        return -ESRCH;
    }
    if (b->tail)
        b->tail->next = msg;
    else
        b->head = msg;
    b->tail = msg;
    uv_async_send(&b->async);
    uv_mutex_unlock(&b->lock);
    return 0;
}
