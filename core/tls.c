/*
 * tls: OpenSSL 3 client connections over a pair of memory BIOs. See tls.h
 * for the contract and ../shared/PITFALLS.md for why it is shaped this way.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/tls.h"

struct tls_ctx {
    SSL_CTX *ssl_ctx;
    int verify;
};

struct tls_conn {
    SSL *ssl;
    BIO *rbio;               /* ciphertext from the peer (owned by ssl) */
    BIO *wbio;               /* ciphertext for the peer (owned by ssl) */
    int verify;
    int handshake_done;
    int failed;              /* a fatal error: no more SSL calls but free */
    int server_spoke;        /* a record after the handshake, see tls.h */
    SSL_SESSION *session;    /* issued by the server, not yet taken */
    char error[256];
};

const char *tls_field_name(tls_field_t field)
{
    switch (field) {
    case TLS_FIELD_CA: return "ca";
    case TLS_FIELD_CERT: return "cert";
    case TLS_FIELD_KEY: return "key";
    default: return "";
    }
}

/* OpenSSL's reason for the oldest error in the queue, or `fallback`. Empties
 * the queue: it is per thread and would otherwise leak into the next call. */
static const char *queued_reason(const char *fallback)
{
    unsigned long e = ERR_peek_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return reason ? reason : fallback;
}

/* ---- contexts ------------------------------------------------------------ */

static int on_new_session(SSL *ssl, SSL_SESSION *session)
{
    tls_conn_t *tc = SSL_get_app_data(ssl);
    if (!tc)
        return 0;
    if (tc->session)
        SSL_SESSION_free(tc->session);
    tc->session = session; /* returning 1 hands us the reference */
    tc->server_spoke = tc->handshake_done;
    return 1;
}

/* A readable file, else a reason naming it (OpenSSL's own messages for a
 * missing file are vague). */
static int check_readable(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

static tls_ctx_t *ctx_fail(tls_ctx_t *ctx, tls_field_t *field, tls_field_t which)
{
    *field = which;
    tls_ctx_free(ctx);
    return NULL;
}

tls_ctx_t *tls_ctx_new(const tls_client_opts_t *opts, tls_field_t *field, char *err, size_t errlen)
{
    *field = TLS_FIELD_NONE;
    ERR_clear_error();
    tls_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (ctx)
        ctx->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || !ctx->ssl_ctx) {
        snprintf(err, errlen, "cannot create a TLS context: %s", queued_reason("out of memory"));
        return ctx_fail(ctx, field, TLS_FIELD_NONE);
    }
    SSL_CTX *c = ctx->ssl_ctx;
    ctx->verify = opts->verify;
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_verify(c, opts->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    /* Sessions are kept per endpoint by the caller, not in OpenSSL's cache. */
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, on_new_session);

    if (opts->ca_file) {
        if (check_readable(opts->ca_file, err, errlen))
            return ctx_fail(ctx, field, TLS_FIELD_CA);
        if (SSL_CTX_load_verify_locations(c, opts->ca_file, NULL) != 1) {
            snprintf(err, errlen, "cannot load CA certificates from %s: %s", opts->ca_file,
                     queued_reason("no certificate found"));
            return ctx_fail(ctx, field, TLS_FIELD_CA);
        }
    } else if (SSL_CTX_set_default_verify_paths(c) != 1) {
        snprintf(err, errlen, "cannot load the system trust store: %s", queued_reason("unknown error"));
        return ctx_fail(ctx, field, TLS_FIELD_CA);
    }
    if (opts->cert_file) {
        if (check_readable(opts->cert_file, err, errlen))
            return ctx_fail(ctx, field, TLS_FIELD_CERT);
        if (SSL_CTX_use_certificate_chain_file(c, opts->cert_file) != 1) {
            snprintf(err, errlen, "cannot load a certificate from %s: %s", opts->cert_file,
                     queued_reason("no certificate found"));
            return ctx_fail(ctx, field, TLS_FIELD_CERT);
        }
    }
    if (opts->key_file) {
        if (check_readable(opts->key_file, err, errlen))
            return ctx_fail(ctx, field, TLS_FIELD_KEY);
        if (SSL_CTX_use_PrivateKey_file(c, opts->key_file, SSL_FILETYPE_PEM) != 1) {
            snprintf(err, errlen, "cannot load a private key from %s: %s", opts->key_file,
                     queued_reason("no key found"));
            return ctx_fail(ctx, field, TLS_FIELD_KEY);
        }
        if (SSL_CTX_check_private_key(c) != 1) {
            ERR_clear_error();
            snprintf(err, errlen, "the key in %s does not match the certificate", opts->key_file);
            return ctx_fail(ctx, field, TLS_FIELD_KEY);
        }
    }
    return ctx;
}

void tls_ctx_free(tls_ctx_t *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

/* ---- connections ------------------------------------------------------- */

static int is_ip_literal(const char *name)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

tls_conn_t *tls_conn_new(tls_ctx_t *ctx, const char *name, tls_session_t *resume)
{
    tls_conn_t *tc = calloc(1, sizeof *tc);
    if (!tc)
        return NULL;
    tc->verify = ctx->verify;
    tc->ssl = SSL_new(ctx->ssl_ctx);
    tc->rbio = BIO_new(BIO_s_mem());
    tc->wbio = BIO_new(BIO_s_mem());
    if (!tc->ssl || !tc->rbio || !tc->wbio) {
        BIO_free(tc->rbio);
        BIO_free(tc->wbio);
        SSL_free(tc->ssl);
        free(tc);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_bio(tc->ssl, tc->rbio, tc->wbio);
    SSL_set_connect_state(tc->ssl);
    SSL_set_app_data(tc->ssl, tc);
    int ok = 1;
    if (name && *name) {
        if (is_ip_literal(name)) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tc->ssl), name) == 1;
        } else {
            ok = SSL_set_tlsext_host_name(tc->ssl, name) == 1 && SSL_set1_host(tc->ssl, name) == 1;
        }
    }
    if (ok && resume)
        ok = SSL_set_session(tc->ssl, resume) == 1;
    if (!ok) {
        tls_conn_free(tc);
        ERR_clear_error();
        return NULL;
    }
    return tc;
}

void tls_conn_free(tls_conn_t *tc)
{
    if (!tc)
        return;
    if (tc->session)
        SSL_SESSION_free(tc->session);
    /* SSL_free retires the session of a connection that never sent
     * close_notify; one that ended without a failure (we close sockets
     * without waiting for our close_notify to go out) keeps it resumable. */
    if (tc->handshake_done && !tc->failed)
        SSL_set_shutdown(tc->ssl, SSL_get_shutdown(tc->ssl) | SSL_SENT_SHUTDOWN);
    SSL_free(tc->ssl); /* frees both BIOs */
    free(tc);
}

int tls_conn_feed(tls_conn_t *tc, const char *p, size_t n)
{
    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        int w = BIO_write(tc->rbio, p, chunk);
        if (w <= 0) {
            ERR_clear_error();
            return -ENOMEM;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

void tls_conn_feed_eof(tls_conn_t *tc)
{
    BIO_set_mem_eof_return(tc->rbio, 0);
}

/* Turns the outcome of an SSL call into a status, recording the reason of
 * a failure. */
static tls_status_t settle(tls_conn_t *tc, int rc)
{
    int e = SSL_get_error(tc->ssl, rc);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: /* a memory BIO never fills; kept for safety */
        ERR_clear_error();
        return TLS_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return TLS_CLOSED;
    default:
        break;
    }
    tc->failed = 1;
    const char *reason = queued_reason(e == SSL_ERROR_SYSCALL ? "connection closed" : "TLS error");
    long verdict = SSL_get_verify_result(tc->ssl);
    if (tc->verify && verdict != X509_V_OK)
        snprintf(tc->error, sizeof tc->error, "%s: %s", reason, X509_verify_cert_error_string(verdict));
    else
        snprintf(tc->error, sizeof tc->error, "%s", reason);
    return TLS_FAILED;
}

tls_status_t tls_conn_handshake(tls_conn_t *tc)
{
    if (tc->handshake_done)
        return TLS_OK;
    ERR_clear_error();
    int rc = SSL_do_handshake(tc->ssl);
    if (rc == 1) {
        tc->handshake_done = 1;
        return TLS_OK;
    }
    tls_status_t st = settle(tc, rc);
    return st == TLS_CLOSED ? TLS_FAILED : st;
}

tls_status_t tls_conn_read(tls_conn_t *tc, char *dst, size_t cap, size_t *got)
{
    *got = 0;
    ERR_clear_error();
    if (SSL_read_ex(tc->ssl, dst, cap, got) == 1) {
        tc->server_spoke = 1;
        return TLS_OK;
    }
    *got = 0;
    return settle(tc, 0);
}

tls_status_t tls_conn_write(tls_conn_t *tc, const char *p, size_t n)
{
    ERR_clear_error();
    while (n > 0) {
        size_t written = 0;
        if (SSL_write_ex(tc->ssl, p, n, &written) != 1) {
            if (settle(tc, 0) != TLS_FAILED) /* cannot happen on memory BIOs */
                snprintf(tc->error, sizeof tc->error, "TLS write did not complete");
            return TLS_FAILED;
        }
        p += written;
        n -= written;
    }
    return TLS_OK;
}

void tls_conn_shutdown(tls_conn_t *tc)
{
    if (tc->handshake_done && !tc->failed) /* OpenSSL forbids it after a fatal error */
        SSL_shutdown(tc->ssl);
    ERR_clear_error();
}

long tls_conn_output(tls_conn_t *tc, buf_t *out)
{
    size_t pending = BIO_ctrl_pending(tc->wbio);
    if (pending == 0)
        return 0;
    if (buf_reserve(out, pending))
        return -ENOMEM;
    int n = BIO_read(tc->wbio, out->data + out->len, pending > INT_MAX ? INT_MAX : (int)pending);
    if (n <= 0) {
        ERR_clear_error();
        return 0;
    }
    out->len += (size_t)n;
    return n;
}

const char *tls_conn_error(const tls_conn_t *tc) { return tc->error[0] ? tc->error : "TLS error"; }
int tls_conn_server_spoke(const tls_conn_t *tc) { return tc->server_spoke; }
int tls_conn_is_tls13(const tls_conn_t *tc) { return SSL_version(tc->ssl) >= TLS1_3_VERSION; }
const char *tls_conn_version(const tls_conn_t *tc) { return SSL_get_version(tc->ssl); }
int tls_conn_resumed(const tls_conn_t *tc) { return SSL_session_reused(tc->ssl); }

tls_session_t *tls_conn_take_session(tls_conn_t *tc)
{
    SSL_SESSION *s = tc->session;
    tc->session = NULL;
    return s;
}

void tls_session_free(tls_session_t *s)
{
    if (s)
        SSL_SESSION_free(s);
}
