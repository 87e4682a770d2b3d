/* Messages between worker loops (gateway/peers.h), on real threads and
 * loops: delivery on the receiver's thread, in order, exactly once from
 * several posting threads; replies in the same memory; posts to a mailbox
 * that is not attached fail; a detach drops what is still queued. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/peers.h"

typedef struct msg {
    peer_msg_t base;
    int seq;
    int sender_thread;
    pthread_t handled_on;
} msg_t;

static atomic_int dropped;

static void drop(peer_msg_t *m)
{
    atomic_fetch_add(&dropped, 1);
    free(m);
}

static msg_t *new_msg(unsigned from, int seq, int thread)
{
    msg_t *m = calloc(1, sizeof *m);
    assert_non_null(m);
    *m = (msg_t){ { NULL, PEER_STATUS_ASK, from, drop }, seq, thread, 0 };
    return m;
}

/* Worker 1: a loop on a thread of its own that answers every message by
 * posting it back to its sender, until told to stop (seq -1). */
typedef struct worker {
    peers_t *peers;
    uv_loop_t loop;
    pthread_t thread;
    atomic_int attached;
    int next_seq[4];           /* per sending thread: delivery order */
    atomic_int out_of_order;
} worker_t;

static void on_msg(void *ctx, peer_msg_t *base)
{
    worker_t *w = ctx;
    msg_t *m = (msg_t *)base;
    if (m->seq < 0) {
        free(m);
        peers_detach(w->peers, 1);
        return;
    }
    if (m->seq != w->next_seq[m->sender_thread]++)
        atomic_store(&w->out_of_order, 1);
    m->handled_on = pthread_self();
    base->kind = PEER_STATUS_PART;
    unsigned to = base->from;
    base->from = 1;
    if (peers_post(w->peers, to, base) != 0)
        free(m);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    uv_loop_init(&w->loop);
    assert_int_equal(peers_attach(w->peers, 1, &w->loop, on_msg, w), 0);
    atomic_store(&w->attached, 1);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    return NULL;
}

/* Worker 0 (the test's thread) counts the replies. */
typedef struct home {
    int replies;
    int wrong_thread;
    pthread_t worker_thread;
} home_t;

static void on_reply(void *ctx, peer_msg_t *base)
{
    home_t *h = ctx;
    msg_t *m = (msg_t *)base;
    h->replies++;
    h->wrong_thread += !pthread_equal(m->handled_on, h->worker_thread);
    free(m);
}

typedef struct poster {
    peers_t *peers;
    int thread;
    int n;
} poster_t;

static void *poster_main(void *arg)
{
    poster_t *p = arg;
    for (int i = 0; i < p->n; i++) {
        msg_t *m = new_msg(0, i, p->thread);
        if (peers_post(p->peers, 1, &m->base) != 0)
            free(m);
    }
    return NULL;
}

static void round_trips_from_several_threads(void **state)
{
    (void)state;
    peers_t *peers = peers_new(2);
    assert_non_null(peers);
    assert_int_equal(peers_count(peers), 2);
    uv_loop_t loop;
    uv_loop_init(&loop);
    home_t home = { 0 };
    assert_int_equal(peers_attach(peers, 0, &loop, on_reply, &home), 0);
    msg_t *early = new_msg(0, 0, 0);
    assert_int_equal(peers_post(peers, 1, &early->base), -ESRCH); /* not attached yet */
    free(early);
    worker_t *w = calloc(1, sizeof *w);
    w->peers = peers;
    assert_int_equal(pthread_create(&w->thread, NULL, worker_main, w), 0);
    while (!atomic_load(&w->attached))
        sched_yield();
    home.worker_thread = w->thread;
    enum { THREADS = 3, EACH = 2000 };
    poster_t posters[THREADS];
    pthread_t pt[THREADS];
    for (int i = 0; i < THREADS; i++) {
        posters[i] = (poster_t){ peers, i, EACH };
        assert_int_equal(pthread_create(&pt[i], NULL, poster_main, &posters[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(pt[i], NULL);
    while (home.replies < THREADS * EACH)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(home.replies, THREADS * EACH); /* each exactly once */
    assert_int_equal(home.wrong_thread, 0);
    assert_int_equal(atomic_load(&w->out_of_order), 0);
    msg_t *stop = new_msg(0, -1, 0);
    assert_int_equal(peers_post(peers, 1, &stop->base), 0);
    pthread_join(w->thread, NULL);
    msg_t *late = new_msg(0, 5, 0);
    assert_int_equal(peers_post(peers, 1, &late->base), -ESRCH); /* detached */
    free(late);
    peers_detach(peers, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    peers_free(peers);
    free(w);
}

static void count_msg(void *ctx, peer_msg_t *base)
{
    (*(int *)ctx)++;
    free(base);
}

/* Messages queued when the mailbox closes are dropped, not lost. */
static void detach_drops_what_is_queued(void **state)
{
    (void)state;
    atomic_store(&dropped, 0);
    peers_t *peers = peers_new(1);
    uv_loop_t loop;
    uv_loop_init(&loop);
    int handled = 0;
    assert_int_equal(peers_attach(peers, 0, &loop, count_msg, &handled), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(peers_post(peers, 0, &new_msg(0, i, 0)->base), 0);
    peers_detach(peers, 0); /* before the loop ran: all five dropped */
    peers_detach(peers, 0); /* twice is harmless */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(handled, 0);
    assert_int_equal(atomic_load(&dropped), 5);
    assert_int_equal(uv_loop_close(&loop), 0);
    msg_t *m = new_msg(0, 0, 0);
    assert_int_equal(peers_post(peers, 3, &m->base), -ESRCH); /* no such worker */
    free(m);
    peers_free(peers);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trips_from_several_threads),
        cmocka_unit_test(detach_drops_what_is_queued),
    };
    return cmocka_run_group_tests_name("peers", tests, NULL, NULL);
}
