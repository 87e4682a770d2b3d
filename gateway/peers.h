/*
 * peers: messages between the workers of one process. Each worker runs its
 * own libuv loop in its own thread and alone touches what it built; another
 * worker never reads it directly, it asks with a message. A worker attaches
 * a mailbox (a uv_async_t on its own loop); any thread posts a message to
 * an attached mailbox; the receiver's loop hands it to the worker's handler,
 * in the receiver's thread.
 *
 *   worker A                        worker B
 *   peers_post(B, msg) --mutex--> B's queue --uv_async--> handler(msg)
 *
 * Ownership: gateway_run creates the peers_t before the workers start and
 * frees it after they all stopped (the mailboxes' handles are closed by
 * then). A message is the poster's until peers_post succeeds, then the
 * mailbox's, then the handler's, which releases it or posts it on (a reply
 * travels in the request's own memory). A message whose mailbox is
 * detached before the handler got it is given to its `drop` function, in
 * the detaching thread: drop must touch neither loop's structures (it may
 * post the message elsewhere, or free it).
 *
 * Threads: peers_post from any thread; peers_attach and peers_detach from
 * the mailbox's own loop thread. Each mailbox has a mutex around its queue
 * and its attached flag, and uv_async_send happens under it, so no send can
 * follow the handle's close. The handler runs without the mutex.
 */
#ifndef PG_GATEWAY_PEERS_H
#define PG_GATEWAY_PEERS_H

#include <stddef.h>
#include <uv.h>

/* Every kind of message between workers (the users' payloads extend
 * peer_msg_t as their first member). */
typedef enum peer_msg_kind {
    PEER_STATUS_ASK,   /* admin.c: render your part of /status */
    PEER_STATUS_PART,  /* admin.c: the answer to it */
    PEER_RELOAD,       /* reload.c: worker 0 reloaded; do it too */
} peer_msg_kind_t;

typedef struct peer_msg peer_msg_t;
struct peer_msg {
    peer_msg_t *next;              /* the mailbox's queue: peers' own */
    peer_msg_kind_t kind;
    unsigned from;                 /* the worker that posted it */
    void (*drop)(peer_msg_t *msg); /* undeliverable: release it (see above) */
};

typedef struct peers peers_t;

/* Messages for `count` mailboxes (workers 0..count-1). NULL when out of
 * memory. */
peers_t *peers_new(size_t count);
/* After every mailbox was detached and its loop ran dry. NULL is fine. */
void peers_free(peers_t *p);
size_t peers_count(const peers_t *p);

/* Opens mailbox `self` on `loop`: from now on fn(ctx, msg) runs on that
 * loop for each message posted to it, in posting order. 0, or a negative
 * errno. */
int peers_attach(peers_t *p, unsigned self, uv_loop_t *loop, void (*fn)(void *ctx, peer_msg_t *msg), void *ctx);

/* Closes mailbox `self` (its handle closes with the loop's next turn):
 * messages still queued are dropped, later posts fail. Once is enough. */
void peers_detach(peers_t *p, unsigned self);

/* Queues msg for worker `to` and wakes its loop. 0; or -ESRCH when that
 * mailbox is not attached (never was, or detached): msg stays the
 * caller's. */
int peers_post(peers_t *p, unsigned to, peer_msg_t *msg);

#endif
