/*
 * request_walk: a libmicrohttpd request's query parameters and headers as
 * render's walks (render_each_fn, gateway/render.h), for $query, $headers
 * and repeated headers; and the client's address.
 *
 * Query arguments are read as the daemon keeps them, still percent-encoded
 * (httpd.c's unescape callback), and decoded here in query mode ('+' is a
 * space); an argument without '=' has the value "". Headers are handed out
 * as received (names in their own case).
 *
 * Ownership: a request_walk_t borrows the connection (valid while the
 * request is) and owns two buffers for decoded text, released with
 * request_walk_free(). Values handed to pair() are valid during the call.
 */
#ifndef PG_GATEWAY_REQUEST_WALK_H
#define PG_GATEWAY_REQUEST_WALK_H

#include <microhttpd.h>

#include "gateway/render.h"

typedef struct request_walk {
    struct MHD_Connection *conn;
    buf_t name;  /* the last query name decoded */
    buf_t value; /* the last query value decoded */
} request_walk_t;

#define REQUEST_WALK_INIT(conn) { (conn), BUF_INIT, BUF_INIT }

/* render_each_fn over the query (context: a request_walk_t). Returns 0,
 * pair()'s first non-zero result, RENDER_LOOKUP_BAD (an argument that
 * cannot be decoded) or RENDER_LOOKUP_NOMEM. */
int request_walk_query(void *context, render_pair_fn *pair, void *pair_context);

/* render_each_fn over the headers (context: a request_walk_t). */
int request_walk_headers(void *context, render_pair_fn *pair, void *pair_context);

void request_walk_free(request_walk_t *w);

/* The client's address (for render_input_t.client_address), or NULL. */
const struct sockaddr *request_client_address(struct MHD_Connection *conn);

#endif
