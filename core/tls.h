/*
 * tls: the client side of TLS over memory buffers, for connections whose
 * bytes move through libuv. Nothing here touches a socket or a loop: the
 * caller feeds the ciphertext it read (tls_conn_feed), pulls plaintext out
 * (tls_conn_read), pushes plaintext in (tls_conn_write) and, after EVERY call
 * that can produce output (handshake, read, write, shutdown), moves the
 * ciphertext to the wire (tls_conn_output): TLS 1.3 writes while reading.
 *
 * tls_ctx_t: one per service configuration (an SSL_CTX: trust store, client
 * certificate, verification mode, TLS 1.2 minimum). Building one reads files
 * and may take tens of milliseconds (the system trust store); do it at start.
 *
 * tls_conn_t: one per connection attempt, created from a ctx that must
 * outlive it. The verified name is the configured servername or the endpoint
 * host: DNS names are sent as SNI and matched against the certificate's DNS
 * names; IP literals are not sent as SNI and are matched as IP addresses.
 *
 * Sessions: a tls_conn_t keeps the last session the server gave it
 * (tls_conn_take_session) so that the next connection to the same endpoint
 * resumes it (tls_conn_new's `resume`). tls_session_t values are reference
 * counted by OpenSSL: each one taken is released with tls_session_free.
 *
 * Threads: a ctx may be shared by connections of one thread; OpenSSL's error
 * queue is per thread, so nothing here is shared across threads.
 */
#ifndef PG_CORE_TLS_H
#define PG_CORE_TLS_H

#include <stddef.h>

#include "core/buf.h"

typedef struct tls_ctx tls_ctx_t;
typedef struct tls_conn tls_conn_t;
typedef struct ssl_session_st tls_session_t;

typedef struct tls_client_opts {
    const char *ca_file;   /* PEM bundle; NULL: the system trust store */
    const char *cert_file; /* client certificate chain (PEM), with key_file */
    const char *key_file;
    int verify;            /* 0: accept any certificate (logged by callers) */
} tls_client_opts_t;

/* Which option a tls_ctx_new failure is about. */
typedef enum tls_field { TLS_FIELD_NONE, TLS_FIELD_CA, TLS_FIELD_CERT, TLS_FIELD_KEY } tls_field_t;
const char *tls_field_name(tls_field_t field); /* "ca", "cert", "key", "" */

/* NULL on failure, with *field set and a reason in err (e.g. "cannot read
 * /etc/ca.pem: No such file or directory"). */
tls_ctx_t *tls_ctx_new(const tls_client_opts_t *opts, tls_field_t *field, char *err, size_t errlen);
void tls_ctx_free(tls_ctx_t *ctx);

/* A new client connection verifying `name` (see above). `resume` (may be
 * NULL) is offered to the server; it is not taken over. NULL when out of
 * memory. */
tls_conn_t *tls_conn_new(tls_ctx_t *ctx, const char *name, tls_session_t *resume);
void tls_conn_free(tls_conn_t *tc);

typedef enum tls_status {
    TLS_OK,      /* done (handshake) or some plaintext was read */
    TLS_AGAIN,   /* needs more input from the peer */
    TLS_CLOSED,  /* the peer closed cleanly (close_notify) */
    TLS_FAILED,  /* fatal; tls_conn_error says why */
} tls_status_t;

/* Ciphertext from the peer. 0, or -ENOMEM. */
int tls_conn_feed(tls_conn_t *tc, const char *p, size_t n);
/* The peer's side of the stream ended (TCP EOF): a later read reports a
 * truncation unless close_notify came first. */
void tls_conn_feed_eof(tls_conn_t *tc);

/* Advances the handshake: TLS_OK once it is complete, TLS_AGAIN, or
 * TLS_FAILED. */
tls_status_t tls_conn_handshake(tls_conn_t *tc);

/* Decrypts into dst (cap > 0): TLS_OK with *got > 0, or TLS_AGAIN, TLS_CLOSED,
 * TLS_FAILED with *got == 0. Processes post-handshake messages (session
 * tickets, key updates) on the way. */
tls_status_t tls_conn_read(tls_conn_t *tc, char *dst, size_t cap, size_t *got);

/* Encrypts all of p[0..n) (the handshake must be complete). TLS_OK or
 * TLS_FAILED. */
tls_status_t tls_conn_write(tls_conn_t *tc, const char *p, size_t n);

/* Queues close_notify (harmless after a failure). */
void tls_conn_shutdown(tls_conn_t *tc);

/* Moves the ciphertext waiting to be sent to the end of out. The number of
 * bytes moved, or -ENOMEM (nothing moved). */
long tls_conn_output(tls_conn_t *tc, buf_t *out);

/* Why the last TLS_FAILED happened, in OpenSSL's words plus the certificate
 * verification result when there is one, e.g. "certificate verify failed:
 * unable to get local issuer certificate". Valid until the next call. */
const char *tls_conn_error(const tls_conn_t *tc);

/* After the handshake: whether the server has since sent a record (a session
 * ticket or data). In TLS 1.3 that is when a client certificate is known to
 * have been accepted. */
int tls_conn_server_spoke(const tls_conn_t *tc);
/* 1 for TLS 1.3 (the server's verdict on the client comes after the
 * handshake), 0 for TLS 1.2. */
int tls_conn_is_tls13(const tls_conn_t *tc);
const char *tls_conn_version(const tls_conn_t *tc); /* "TLSv1.3" */
int tls_conn_resumed(const tls_conn_t *tc);

/* The newest session the server issued on this connection, handed over to
 * the caller (release with tls_session_free), or NULL when none is new. */
tls_session_t *tls_conn_take_session(tls_conn_t *tc);
void tls_session_free(tls_session_t *s);

#endif
