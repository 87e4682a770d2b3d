/*
 * admin: the admin API (SPEC.md "Admin API"): /healthz, /readyz, /status,
 * /metrics, and /openapi.json and /docs (SPEC.md "Describing the API",
 * gateway/openapi.h). Nothing here changes state.
 *
 * admin_answer builds one answer; exchange.c uses it for admin paths on
 * `listen` when there is no `admin_listen`, and admin_on_request (the MHD
 * access handler of the admin listener) for everything it is asked.
 * Answers are built on the loop thread from the live state, so /healthz
 * answers only when the event loop runs.
 */
#ifndef PG_GATEWAY_ADMIN_H
#define PG_GATEWAY_ADMIN_H

#include <microhttpd.h>

#include "core/buf.h"

struct gateway;

typedef struct admin_reply {
    unsigned status;
    buf_t body;               /* owned by the reply */
    const char *content_type; /* static */
    const char *allow;        /* for 405, static */
} admin_reply_t;

/* 1 for /healthz, /readyz, /status, /metrics, /openapi.json, /docs. */
int admin_is_path(const char *url);

/* 1 for the probes, /healthz and /readyz: open without a token even on a
 * shared `listen` with auth (SPEC.md, Hardening); the rest of the admin
 * API needs the token there. */
int admin_is_probe(const char *url);

/* Fills r (its body owned by the caller after the call) for any url: 404
 * for a path that is not an admin path, 405 for a method other than GET or
 * HEAD, 503 when out of memory. */
void admin_answer(struct gateway *gw, const char *method, const char *url, admin_reply_t *r);

/* The access handler of the admin listener; cls is the gateway. */
enum MHD_Result admin_on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls);

#endif
