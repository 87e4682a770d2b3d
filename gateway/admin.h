/*
 * admin: the admin API (SPEC.md "Admin API"): /healthz, /readyz, /status,
 * /metrics, and /openapi.json and /docs (SPEC.md "Describing the API",
 * gateway/openapi.h). Nothing here changes state. proxy.c calls it for
 * admin paths (on the admin listener, or on `listen` when there is no
 * admin_listen).
 *
 * /status and /readyz cover every worker. Each worker renders its own part
 * (its connections, in-flight counts...) on its own loop; with several workers
 * the worker that was asked posts PEER_STATUS_ASK to every worker, itself
 * included, through peers.h, collects their PEER_STATUS_PART answers and
 * then renders the whole: connections listed with their "worker", totals
 * summed. No worker reads another's structures.
 *
 *   worker k (asked)             worker j
 *   admin_gather       ---ASK--> admin_on_message: render part j
 *        ^                                   |
 *        '-------------PART (same memory) ---'
 *   admin_on_message: part j in; all in -> done(ctx, reply)
 *
 * A gather and its messages share a reference count (atomic): the asking
 * exchange holds one until it is answered or abandoned, each message one
 * until it is handled or dropped, so whichever comes last frees it, on any
 * thread; only the asking worker's thread touches anything else of it. A
 * worker that has stopped answers nothing: its mailbox bounces the ASK
 * back, and the status lists the workers that answered.
 */
#ifndef PG_GATEWAY_ADMIN_H
#define PG_GATEWAY_ADMIN_H

#include "core/buf.h"
#include "gateway/errors.h"
#include "gateway/peers.h"
#include "gateway/worker.h"

typedef struct admin_reply {
    unsigned status;
    buf_t body;               /* owned by the reply */
    const char *content_type; /* static */
    const char *allow;        /* for 405, static */
    int error;                /* >= 0: answer this gw_error_t instead (with
                                 `message`, static); status and body unset */
    const char *message;
} admin_reply_t;

/* 1 for /healthz, /readyz, /status, /metrics, /openapi.json, /docs. */
int admin_is_path(const char *url);

/* 1 for the probes, /healthz and /readyz: open without a token even on a
 * shared `listen` with auth (SPEC.md, Hardening); the rest of the admin
 * API needs the token there. */
int admin_is_probe(const char *url);

/*
 * Fills r (its body the caller's after the call) for any url: 404 for a
 * path that is not an admin path, 405 for a method other than GET or HEAD,
 * 503 when out of memory. Returns 0; or 1 for /status, and /readyz while
 * not draining, with several workers: nothing is filled, ask them with
 * admin_gather.
 */
int admin_answer(const worker_t *w, const char *method, const char *url, admin_reply_t *r);

typedef struct admin_gather admin_gather_t;
typedef void (*admin_gathered_fn)(void *ctx, admin_reply_t *r);

/* Asks every worker for its part of url's answer, "/status" or "/readyz"
 * (ready when every worker that answers has a connected connection to each
 * eager service); done(ctx, reply) runs on this worker's loop once they all
 * answered (never from inside this call), the reply's body the callee's to
 * take. NULL when out of memory or when this worker's own mailbox is
 * closed. */
admin_gather_t *admin_gather(worker_t *w, const char *url, admin_gathered_fn done, void *ctx);

/* The asker went away (client gone, drain): done will not be called. */
void admin_gather_abandon(admin_gather_t *g);

/* A PEER_STATUS_ASK or PEER_STATUS_PART message for worker w (its loop). */
void admin_on_message(worker_t *w, peer_msg_t *msg);

#endif
