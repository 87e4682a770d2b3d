/*
 * exchange: one HTTP request's life in the gateway, as libmicrohttpd's
 * access handler (called again after every resume, so it is a state
 * machine) and completion callback.
 *
 *   HEADERS --route, auth, limits--> BODY --body complete--> WAITING
 *      |                               |                      (connection
 *      |                               |                       suspended)
 *      '--- early answer (404, 401, 413...) ---> READY <--reply/timeout--'
 *                                                   |
 *                                         response queued, MHD sends it
 *
 *   WAITING --client hung up--> GONE: the upstream request is cancelled and
 *                                      the connection closed
 *
 * An exchange is allocated on the first call of the access handler and
 * freed when MHD reports the request completed: into a short free list of
 * the gateway's (its buffers, up to a few KiB, kept with it), so that a
 * keep-alive client's requests reuse memory instead of allocating it.
 */
#ifndef PG_GATEWAY_EXCHANGE_H
#define PG_GATEWAY_EXCHANGE_H

#include <microhttpd.h>

enum MHD_Result exchange_on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                    const char *method, const char *version, const char *upload_data,
                                    size_t *upload_data_size, void **con_cls);

/* Shutdown: every exchange still waiting for its reply gets 503 draining
 * and its connection is resumed, so that none is left suspended. */
struct gateway;
void exchange_abort_waiting(struct gateway *gw);

/* httpd's on_hangup: the client of a waiting exchange went away. */
void exchange_on_hangup(void *ctx, void *waiter);

void exchange_on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                           enum MHD_RequestTerminationCode toe);

/* httpd's on_refused: libmicrohttpd refused a request head itself (see
 * httpd.h); the gateway's own error answer, counted and logged. */
#include "core/buf.h"
#include "gateway/errors.h"
void exchange_on_refused(void *ctx, gw_error_t kind, const char *message, buf_t *wire);

/* Frees the exchanges kept for reuse (once the HTTP daemon is closed). */
void exchange_free_spares(struct gateway *gw);

#endif
