/* Unit tests of core/tls: the memory-BIO client against an in-process
 * OpenSSL server (its own SSL and pair of memory BIOs), bytes shuttled by
 * hand. The PKI is made at test time with the OpenSSL API and written as PEM
 * files to a mkdtemp directory (tls_ctx_new takes paths), removed at the end.
 * No sockets, no sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/tls.h"

/* ---- the test PKI -------------------------------------------------------- */

/* Every key, certificate and file the tests use; made once for the group. */
static struct pki {
    char dir[64];
    EVP_PKEY *ca_key, *other_ca_key, *server_key, *dnsonly_key, *client_key, *stray_key, *ed_key;
    X509 *ca, *other_ca;  /* two unrelated self-signed CAs */
    X509 *server;         /* by ca: DNS:localhost, IP:127.0.0.1 */
    X509 *other_server;   /* by other_ca: the same names */
    X509 *dnsonly;        /* by ca: DNS:localhost only */
    X509 *client;         /* by ca: a client certificate */
    char ca_pem[PATH_MAX], other_ca_pem[PATH_MAX];
    char client_pem[PATH_MAX], client_key_pem[PATH_MAX], stray_key_pem[PATH_MAX], ed_key_pem[PATH_MAX];
    char garbage_pem[PATH_MAX], missing_pem[PATH_MAX];
} pki;

static EVP_PKEY *make_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

/* Adds the X509v3 extension `name` = `value` (openssl.cnf syntax) to x. */
static void add_ext(X509 *x, X509V3_CTX *v3, const char *name, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_nconf(NULL, v3, name, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for `key` named CN=cn, valid for a day. issuer NULL: a
 * self-signed CA (basicConstraints CA:TRUE). Otherwise a leaf signed by
 * issuer/issuer_key with subjectAltName `san`. */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *san)
{
    static long serial = 1;
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    X509_NAME *name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0), 1);
    assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name), 1);

    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    add_ext(x, &v3, "subjectKeyIdentifier", "hash");
    add_ext(x, &v3, "authorityKeyIdentifier", "keyid:always");
    if (!issuer) {
        add_ext(x, &v3, "basicConstraints", "critical,CA:TRUE");
        add_ext(x, &v3, "keyUsage", "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, &v3, "basicConstraints", "critical,CA:FALSE");
        add_ext(x, &v3, "keyUsage", "critical,digitalSignature");
        add_ext(x, &v3, "extendedKeyUsage", "serverAuth,clientAuth");
        add_ext(x, &v3, "subjectAltName", san);
    }
    assert_true(X509_sign(x, issuer ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

/* Writes cert and/or key as PEM to pki.dir/file, its path into `path`. */
static void write_pem(char *path, const char *file, X509 *cert, EVP_PKEY *key)
{
    snprintf(path, PATH_MAX, "%s/%s", pki.dir, file);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    if (cert)
        assert_int_equal(PEM_write_X509(f, cert), 1);
    if (key)
        assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(f), 0);
}

static int pki_setup(void **state)
{
    (void)state;
    snprintf(pki.dir, sizeof pki.dir, "/tmp/pg-test-tls-XXXXXX");
    assert_non_null(mkdtemp(pki.dir));
    pki.ca_key = make_key();
    pki.other_ca_key = make_key();
    pki.server_key = make_key();
    pki.dnsonly_key = make_key();
    pki.client_key = make_key();
    pki.stray_key = make_key();
    pki.ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(pki.ed_key);
    pki.ca = make_cert("pg unit test CA", pki.ca_key, NULL, NULL, NULL);
    pki.other_ca = make_cert("pg unit test other CA", pki.other_ca_key, NULL, NULL, NULL);
    pki.server = make_cert("localhost", pki.server_key, pki.ca, pki.ca_key, "DNS:localhost,IP:127.0.0.1");
    pki.other_server =
        make_cert("localhost", pki.server_key, pki.other_ca, pki.other_ca_key, "DNS:localhost,IP:127.0.0.1");
    pki.dnsonly = make_cert("localhost", pki.dnsonly_key, pki.ca, pki.ca_key, "DNS:localhost");
    pki.client = make_cert("pg client", pki.client_key, pki.ca, pki.ca_key, "DNS:client.example");

    write_pem(pki.ca_pem, "ca.pem", pki.ca, NULL);
    write_pem(pki.other_ca_pem, "other-ca.pem", pki.other_ca, NULL);
    write_pem(pki.client_pem, "client.pem", pki.client, NULL);
    write_pem(pki.client_key_pem, "client.key", NULL, pki.client_key);
    write_pem(pki.stray_key_pem, "stray.key", NULL, pki.stray_key);
    write_pem(pki.ed_key_pem, "ed25519.key", NULL, pki.ed_key);
    snprintf(pki.garbage_pem, PATH_MAX, "%s/garbage.pem", pki.dir);
    FILE *f = fopen(pki.garbage_pem, "w");
    assert_non_null(f);
    fputs("-----BEGIN CERTIFICATE-----\nthis is not base64 at all!\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    snprintf(pki.missing_pem, PATH_MAX, "%s/missing.pem", pki.dir);
    return 0;
}

static int pki_teardown(void **state)
{
    (void)state;
    const char *files[] = { pki.ca_pem,        pki.other_ca_pem,  pki.client_pem,
                            pki.client_key_pem, pki.stray_key_pem, pki.ed_key_pem,
                            pki.garbage_pem };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    rmdir(pki.dir);
    X509 *certs[] = { pki.ca, pki.other_ca, pki.server, pki.other_server, pki.dnsonly, pki.client };
    for (size_t i = 0; i < sizeof certs / sizeof certs[0]; i++)
        X509_free(certs[i]);
    EVP_PKEY *keys[] = { pki.ca_key,      pki.other_ca_key, pki.server_key,
                         pki.dnsonly_key, pki.client_key,   pki.stray_key, pki.ed_key };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        EVP_PKEY_free(keys[i]);
    return 0;
}

/* ---- client contexts and the in-process server --------------------------- */

/* A client ctx that must build. */
static tls_ctx_t *client_ctx(const char *ca_file, const char *cert_file, const char *key_file, int verify)
{
    tls_client_opts_t opts = { ca_file, cert_file, key_file, verify };
    tls_field_t field = TLS_FIELD_CA;
    char err[512] = "";
    tls_ctx_t *ctx = tls_ctx_new(&opts, &field, err, sizeof err);
    if (!ctx)
        fail_msg("tls_ctx_new: %s (%s)", err, tls_field_name(field));
    assert_int_equal(field, TLS_FIELD_NONE);
    return ctx;
}

/* A server SSL_CTX presenting cert/key (TLS 1.3 allowed unless max_version
 * says otherwise; 0: no limit). */
static SSL_CTX *server_ctx(X509 *cert, EVP_PKEY *key, int max_version)
{
    SSL_CTX *s = SSL_CTX_new(TLS_server_method());
    assert_non_null(s);
    assert_int_equal(SSL_CTX_use_certificate(s, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(s, key), 1);
    if (max_version)
        assert_int_equal(SSL_CTX_set_max_proto_version(s, max_version), 1);
    return s;
}

/* Makes a server SSL_CTX demand a client certificate issued by pki.ca. */
static void server_require_client_cert(SSL_CTX *s)
{
    assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(s), pki.ca), 1);
    SSL_CTX_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
}

/* One client connection and the server's end of it. */
typedef struct pair {
    tls_conn_t *c;
    SSL *s;
    BIO *s_in, *s_out;  /* the server's ciphertext in (from the client) and out */
    buf_t wire;         /* scratch for tls_conn_output */
    size_t chunk;       /* at most this many bytes per tls_conn_feed call */
    size_t feeds, fed;  /* tls_conn_feed calls and bytes */
    int server_hs;      /* 0: in progress, 1: complete, -1: failed */
    char server_err[256];
} pair_t;

static void pair_open(pair_t *p, tls_ctx_t *ctx, const char *name, tls_session_t *resume, SSL_CTX *sctx)
{
    memset(p, 0, sizeof *p);
    p->chunk = SIZE_MAX;
    p->c = tls_conn_new(ctx, name, resume);
    assert_non_null(p->c);
    p->s = SSL_new(sctx);
    p->s_in = BIO_new(BIO_s_mem());
    p->s_out = BIO_new(BIO_s_mem());
    assert_non_null(p->s);
    assert_non_null(p->s_in);
    assert_non_null(p->s_out);
    SSL_set_bio(p->s, p->s_in, p->s_out);
    SSL_set_accept_state(p->s);
}

static void pair_close(pair_t *p)
{
    tls_conn_free(p->c);
    SSL_free(p->s);
    buf_free(&p->wire);
}

/* Client -> server: everything tls_conn_output has. Returns the byte count. */
static size_t to_server(pair_t *p)
{
    assert_int_equal(p->wire.len, 0);
    long n = tls_conn_output(p->c, &p->wire);
    assert_true(n >= 0);
    assert_int_equal((size_t)n, p->wire.len);
    if (n > 0)
        assert_int_equal(BIO_write(p->s_in, p->wire.data, (int)n), (int)n);
    buf_clear(&p->wire);
    return (size_t)n;
}

/* Server -> client: at most p->chunk of the bytes the server has written, in
 * one tls_conn_feed call. Returns the byte count. */
static size_t to_client(pair_t *p)
{
    size_t n = BIO_ctrl_pending(p->s_out);
    if (n > p->chunk)
        n = p->chunk;
    if (n == 0)
        return 0;
    char *tmp = malloc(n);
    assert_non_null(tmp);
    assert_int_equal(BIO_read(p->s_out, tmp, (int)n), (int)n);
    assert_int_equal(tls_conn_feed(p->c, tmp, n), 0);
    free(tmp);
    p->feeds++;
    p->fed += n;
    return n;
}

/* One step of the server's handshake, recording its outcome. */
static void server_step(pair_t *p)
{
    if (p->server_hs != 0)
        return;
    int rc = SSL_do_handshake(p->s);
    if (rc == 1) {
        p->server_hs = 1;
        return;
    }
    if (SSL_get_error(p->s, rc) == SSL_ERROR_WANT_READ)
        return;
    p->server_hs = -1;
    ERR_error_string_n(ERR_peek_error(), p->server_err, sizeof p->server_err);
    ERR_clear_error();
}

/* The shuttle loop for the handshake: steps both sides and moves bytes until
 * the client's handshake is done and the server's is over (complete or
 * failed), or the client failed. Server bytes go to the client only while its
 * handshake runs: what the server sends afterwards (TLS 1.3 tickets, alerts)
 * waits in its BIO for the test. Returns the client's status; TLS_AGAIN when
 * nothing moved any more (a stall). */
static tls_status_t handshake(pair_t *p)
{
    tls_status_t st = TLS_AGAIN;
    for (;;) {
        int progress = 0;
        if (st == TLS_AGAIN) {
            st = tls_conn_handshake(p->c);
            progress |= st != TLS_AGAIN;
        }
        progress |= to_server(p) > 0; /* also delivers a failing client's alert */
        if (st == TLS_FAILED)
            return st;
        int before = p->server_hs;
        server_step(p);
        progress |= p->server_hs != before;
        if (st == TLS_AGAIN)
            progress |= to_client(p) > 0;
        if (st == TLS_OK && p->server_hs != 0)
            return TLS_OK;
        if (!progress)
            return TLS_AGAIN;
    }
}

/* A handshake that must succeed on both ends. */
static void handshake_ok(pair_t *p)
{
    tls_status_t st = handshake(p);
    if (st != TLS_OK)
        fail_msg("client handshake: status %d, %s", st, st == TLS_FAILED ? tls_conn_error(p->c) : "stalled");
    if (p->server_hs != 1)
        fail_msg("server handshake: %s", p->server_err);
}

/* Reads exactly n bytes of plaintext on the client with a cap-byte dst,
 * feeding p->chunk bytes whenever it wants more and sending what it writes
 * back. Returns them (malloc'd). */
static char *client_read(pair_t *p, size_t n, size_t cap)
{
    char *got = malloc(n ? n : 1), *dst = malloc(cap);
    assert_non_null(got);
    assert_non_null(dst);
    size_t have = 0;
    while (have < n) {
        size_t k = 12345;
        tls_status_t st = tls_conn_read(p->c, dst, cap, &k);
        to_server(p);
        if (st == TLS_OK) {
            assert_true(k > 0 && k <= cap && k <= n - have);
            memcpy(got + have, dst, k);
            have += k;
            continue;
        }
        if (st == TLS_FAILED)
            fail_msg("tls_conn_read: %s", tls_conn_error(p->c));
        assert_int_equal(st, TLS_AGAIN);
        assert_int_equal(k, 0);
        if (to_client(p) == 0)
            fail_msg("client read stalled after %zu of %zu bytes", have, n);
    }
    free(dst);
    return got;
}

/* Feeds the client all the server has written and reads until TLS_AGAIN
 * (processing tickets and the like), asserting there was no plaintext. */
static void client_drain(pair_t *p)
{
    while (to_client(p) > 0) {
        char dst[64];
        size_t k = 1;
        tls_status_t st = tls_conn_read(p->c, dst, sizeof dst, &k);
        to_server(p);
        if (st == TLS_FAILED)
            fail_msg("tls_conn_read: %s", tls_conn_error(p->c));
        assert_int_equal(st, TLS_AGAIN);
        assert_int_equal(k, 0);
    }
}

/* Writes n bytes from the client and sends them. */
static void client_write(pair_t *p, const char *data, size_t n)
{
    tls_status_t st = tls_conn_write(p->c, data, n);
    if (st != TLS_OK)
        fail_msg("tls_conn_write: %s", tls_conn_error(p->c));
    to_server(p);
}

/* Reads exactly n bytes on the server (everything the client sent must
 * already be in its BIO). Returns them (malloc'd). */
static char *server_read(pair_t *p, size_t n)
{
    char *got = malloc(n ? n : 1);
    assert_non_null(got);
    size_t have = 0;
    while (have < n) {
        size_t k = 0;
        int rc = SSL_read_ex(p->s, got + have, n - have, &k);
        if (rc != 1)
            fail_msg("server SSL_read_ex after %zu of %zu bytes: error %d", have, n, SSL_get_error(p->s, 0));
        have += k;
    }
    return got;
}

static void server_write(pair_t *p, const char *data, size_t n)
{
    size_t w = 0;
    assert_int_equal(SSL_write_ex(p->s, data, n, &w), 1);
    assert_int_equal(w, n);
}

/* n pseudo-random bytes (malloc'd), different for each seed. */
static char *pattern(size_t n, uint32_t seed)
{
    char *b = malloc(n);
    assert_non_null(b);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (char)(x >> 24);
    }
    return b;
}

/* One request/response over a connected pair, both byte-exact. */
static void exchange(pair_t *p, size_t n, uint32_t seed)
{
    char *req = pattern(n, seed), *resp = pattern(n, seed + 1);
    client_write(p, req, n);
    char *at_server = server_read(p, n);
    assert_memory_equal(at_server, req, n);
    server_write(p, resp, n);
    char *at_client = client_read(p, n, 4096);
    assert_memory_equal(at_client, resp, n);
    free(req);
    free(resp);
    free(at_server);
    free(at_client);
}

/* The client's error after a failed handshake to a server presenting
 * cert/key, verifying `name` against ca_file. */
static void expect_handshake_error(const char *ca_file, X509 *cert, EVP_PKEY *key, const char *name,
                                   const char *expected)
{
    tls_ctx_t *ctx = client_ctx(ca_file, NULL, NULL, 1);
    SSL_CTX *sctx = server_ctx(cert, key, 0);
    pair_t p;
    pair_open(&p, ctx, name, NULL, sctx);
    assert_int_equal(handshake(&p), TLS_FAILED);
    assert_string_equal(tls_conn_error(p.c), expected);
    pair_close(&p);
    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
}

/* A handshake that must succeed against a server presenting cert/key. */
static void expect_handshake_ok(const char *ca_file, int verify, X509 *cert, EVP_PKEY *key, const char *name)
{
    tls_ctx_t *ctx = client_ctx(ca_file, NULL, NULL, verify);
    SSL_CTX *sctx = server_ctx(cert, key, 0);
    pair_t p;
    pair_open(&p, ctx, name, NULL, sctx);
    handshake_ok(&p);
    exchange(&p, 100, 7);
    pair_close(&p);
    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
}

/* ---- 1. handshake and echo ----------------------------------------------- */

static void handshake_and_echo(void **state)
{
    (void)state;
    tls_ctx_t *ctx = client_ctx(pki.ca_pem, NULL, NULL, 1);
    SSL_CTX *sctx = server_ctx(pki.server, pki.server_key, 0);
    pair_t p;
    pair_open(&p, ctx, "localhost", NULL, sctx);
    handshake_ok(&p);
    /* DNS names go out as SNI */
    assert_string_equal(SSL_get_servername(p.s, TLSEXT_NAMETYPE_host_name), "localhost");
    assert_string_equal(tls_conn_version(p.c), "TLSv1.3");
    assert_int_equal(tls_conn_is_tls13(p.c), 1);
    assert_int_equal(tls_conn_resumed(p.c), 0);

    static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n\0binary\xff\x80";
    client_write(&p, req, sizeof req);
    char *got = server_read(&p, sizeof req);
    assert_memory_equal(got, req, sizeof req);
    free(got);
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\0\xfe";
    server_write(&p, resp, sizeof resp);
    got = client_read(&p, sizeof resp, 4096);
    assert_memory_equal(got, resp, sizeof resp);
    free(got);
    /* nothing more: the next read wants input */
    char dst[16];
    size_t k = 99;
    assert_int_equal(tls_conn_read(p.c, dst, sizeof dst, &k), TLS_AGAIN);
    assert_int_equal(k, 0);

    pair_close(&p);
    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
}

/* ---- 2. name and chain verification --------------------------------------- */

static void verification(void **state)
{
    (void)state;
    char expected[256];

    /* an IP literal matches the IP SAN and is not sent as SNI */
    {
        tls_ctx_t *ctx = client_ctx(pki.ca_pem, NULL, NULL, 1);
        SSL_CTX *sctx = server_ctx(pki.server, pki.server_key, 0);
        pair_t p;
        pair_open(&p, ctx, "127.0.0.1", NULL, sctx);
        handshake_ok(&p);
        assert_null(SSL_get_servername(p.s, TLSEXT_NAMETYPE_host_name));
        exchange(&p, 1000, 3);
        pair_close(&p);
        SSL_CTX_free(sctx);
        tls_ctx_free(ctx);
    }

    /* ... and not a DNS SAN of the same spelling */
    snprintf(expected, sizeof expected, "certificate verify failed: %s",
             X509_verify_cert_error_string(X509_V_ERR_IP_ADDRESS_MISMATCH));
    assert_non_null(strstr(expected, "IP address mismatch"));
    expect_handshake_error(pki.ca_pem, pki.dnsonly, pki.dnsonly_key, "127.0.0.1", expected);

    snprintf(expected, sizeof expected, "certificate verify failed: %s",
             X509_verify_cert_error_string(X509_V_ERR_HOSTNAME_MISMATCH));
    assert_non_null(strstr(expected, "hostname mismatch"));
    expect_handshake_error(pki.ca_pem, pki.server, pki.server_key, "wrong.example", expected);

    /* a CA that did not sign the server's certificate */
    snprintf(expected, sizeof expected, "certificate verify failed: %s",
             X509_verify_cert_error_string(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY));
    assert_non_null(strstr(expected, "unable to get local issuer certificate"));
    expect_handshake_error(pki.ca_pem, pki.other_server, pki.server_key, "localhost", expected);
    expect_handshake_error(pki.other_ca_pem, pki.server, pki.server_key, "localhost", expected);

    /* verify=0 accepts the unrelated CA's certificate, and a wrong name */
    expect_handshake_ok(pki.ca_pem, 0, pki.other_server, pki.server_key, "localhost");
    expect_handshake_ok(pki.ca_pem, 0, pki.dnsonly, pki.dnsonly_key, "wrong.example");
    /* the controls: the right CA verifies each */
    expect_handshake_ok(pki.other_ca_pem, 1, pki.other_server, pki.server_key, "localhost");
    expect_handshake_ok(pki.ca_pem, 1, pki.dnsonly, pki.dnsonly_key, "localhost");
}

/* ---- 3. one byte per feed -------------------------------------------------- */

static void byte_at_a_time(void **state)
{
    (void)state;
    tls_ctx_t *ctx = client_ctx(pki.ca_pem, NULL, NULL, 1);
    SSL_CTX *sctx = server_ctx(pki.server, pki.server_key, 0);
    pair_t p;
    pair_open(&p, ctx, "localhost", NULL, sctx);
    p.chunk = 1;
    handshake_ok(&p);
    assert_true(p.fed > 500); /* the server's whole flight went byte by byte */
    assert_int_equal(p.feeds, p.fed);

    size_t n = 100 * 1024;
    char *req = pattern(n, 11), *resp = pattern(n, 12);
    client_write(&p, req, n);
    char *got = server_read(&p, n);
    assert_memory_equal(got, req, n);
    free(got);
    server_write(&p, resp, n);
    size_t fed_before = p.fed;
    got = client_read(&p, n, 4096); /* a tls_conn_read after every byte */
    assert_memory_equal(got, resp, n);
    assert_true(p.fed - fed_before > n);
    assert_int_equal(p.feeds, p.fed);
    assert_int_equal(tls_conn_server_spoke(p.c), 1);
    free(got);
    free(req);
    free(resp);

    pair_close(&p);
    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
}

/* ---- 4. multi-megabyte transfers ------------------------------------------ */

static void multi_megabyte(void **state)
{
    (void)state;
    tls_ctx_t *ctx = client_ctx(pki.ca_pem, NULL, NULL, 1);
    SSL_CTX *sctx = server_ctx(pki.server, pki.server_key, 0);
    pair_t p;
    pair_open(&p, ctx, "localhost", NULL, sctx);
    handshake_ok(&p);

    size_t n = 8u << 20;
    char *up = pattern(n, 21), *down = pattern(n, 22);
    assert_int_equal(tls_conn_write(p.c, up, n), TLS_OK);
    assert_true(to_server(&p) > n); /* all of it, in one go */
    char *got = server_read(&p, n);
    assert_memory_equal(got, up, n);
    free(got);

    server_write(&p, down, n);
    got = client_read(&p, n, 1000);
    assert_memory_equal(got, down, n);
    free(got);
    free(up);
    free(down);

    pair_close(&p);
    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
}

/* ---- 5. post-handshake messages: tickets and key updates ------------------ */

/* Counts the KeyUpdate messages the server receives. */
static void count_key_updates(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl,
                              void *arg)
{
    (void)version;
    (void)ssl;
    if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
        ((const unsigned char *)buf)[0] == SSL3_MT_KEY_UPDATE)
        ++*(int *)arg;
}

static void post_handshake(void **state)
{
    (void)state;
    tls_ctx_t *ctx = client_ctx(pki.ca_pem, NULL, NULL, 1);
    SSL_CTX *sctx = server_ctx(pki.server, pki.server_key, 0);
    pair_t p;
    pair_open(&p, ctx, "localhost", NULL, sctx);
    int key_updates = 0;
    SSL_set_msg_callback(p.s, count_key_updates);
    SSL_set_msg_callback_arg(p.s, &key_updates);
    handshake_ok(&p);

    /* the tickets wait at the server: the client has not heard it yet */
    assert_true(BIO_ctrl_pending(p.s_out) > 0);
    assert_int_equal(tls_conn_server_spoke(p.c), 0);
    client_drain(&p);
    assert_int_equal(tls_conn_server_spoke(p.c), 1);

    /* a key update the server asks the client to answer */
    assert_int_equal(SSL_key_update(p.s, SSL_KEY_UPDATE_REQUESTED), 1);
    static const char msg[] = "after the server's key update";
    server_write(&p, msg, sizeof msg);
    char *got = client_read(&p, sizeof msg, 4096);
    assert_memory_equal(got, msg, sizeof msg);
    free(got);
    /* the client's KeyUpdate reaches the server (with the next write at the
     * latest) and is accepted: data still flows both ways */
    static const char req[] = "after the client's key update";
    client_write(&p, req, sizeof req);
    got = server_read(&p, sizeof req);
    assert_memory_equal(got, req, sizeof req);
    free(got);
    assert_int_equal(key_updates, 1);
    exchange(&p, 20000, 31);
    assert_int_equal(key_updates, 1);

    pair_close(&p);
    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
}

/* ---- 6. session resumption ------------------------------------------------ */

/* Closes the client's side cleanly (close_notify to the server), then frees
 * the pair. */
static void pair_close_clean(pair_t *p)
{
    tls_conn_shutdown(p->c);
    assert_true(to_server(p) > 0);
    pair_close(p);
}

static void resumption(void **state)
{
    (void)state;
    tls_ctx_t *ctx = client_ctx(pki.ca_pem, NULL, NULL, 1);
    SSL_CTX *sctx = server_ctx(pki.server, pki.server_key, 0);
    pair_t p;
    pair_open(&p, ctx, "localhost", NULL, sctx);
    handshake_ok(&p);
    assert_null(tls_conn_take_session(p.c)); /* no ticket read yet */
    client_drain(&p);
    tls_session_t *s = tls_conn_take_session(p.c);
    assert_non_null(s);
    assert_null(tls_conn_take_session(p.c)); /* handed over */
    assert_int_equal(tls_conn_resumed(p.c), 0);
    pair_close_clean(&p);

    /* offered to the same server: resumed; the session is not taken over */
    pair_open(&p, ctx, "localhost", s, sctx);
    tls_session_free(s);
    handshake_ok(&p);
    assert_int_equal(tls_conn_resumed(p.c), 1);
    assert_int_equal(SSL_session_reused(p.s), 1);
    exchange(&p, 5000, 41);
    /* the resumed connection gets fresh tickets: one is kept, one released */
    s = tls_conn_take_session(p.c);
    assert_non_null(s);
    pair_close_clean(&p);

    /* each resumed connection's newest session resumes the next (TLS 1.3
     * tickets are single-use: OpenSSL retires the offered one when a new one
     * arrives) */
    for (int i = 0; i < 3; i++) {
        pair_open(&p, ctx, "localhost", s, sctx);
        handshake_ok(&p);
        assert_int_equal(tls_conn_resumed(p.c), 1);
        client_drain(&p);
        tls_session_free(s);
        s = tls_conn_take_session(p.c);
        assert_non_null(s);
        client_drain(&p);
        pair_close_clean(&p);
    }
    tls_session_free(s);
    tls_session_free(NULL);

    /* a session left in the connection is released by tls_conn_free */
    pair_open(&p, ctx, "localhost", NULL, sctx);
    handshake_ok(&p);
    client_drain(&p);
    pair_close(&p);

    /* without a session: a full handshake */
    pair_open(&p, ctx, "localhost", NULL, sctx);
    handshake_ok(&p);
    assert_int_equal(tls_conn_resumed(p.c), 0);
    assert_int_equal(SSL_session_reused(p.s), 0);
    pair_close(&p);

    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
}

/* The session taken from a connection the SERVER closed cleanly still resumes
 * after tls_conn_free, though the client never sent close_notify itself (as
 * when the socket is already going away). tls.h promises the next connection
 * resumes it; nothing there asks for tls_conn_shutdown first. */
static void resumption_after_server_close(void **state)
{
    (void)state;
    tls_ctx_t *ctx = client_ctx(pki.ca_pem, NULL, NULL, 1);
    SSL_CTX *sctx = server_ctx(pki.server, pki.server_key, 0);
    pair_t p;
    pair_open(&p, ctx, "localhost", NULL, sctx);
    handshake_ok(&p);
    client_drain(&p);
    tls_session_t *s = tls_conn_take_session(p.c);
    assert_non_null(s);
    assert_int_equal(SSL_shutdown(p.s), 0);
    assert_true(to_client(&p) > 0);
    char dst[16];
    size_t k;
    assert_int_equal(tls_conn_read(p.c, dst, sizeof dst, &k), TLS_CLOSED);
    pair_close(&p);

    pair_open(&p, ctx, "localhost", s, sctx);
    tls_session_free(s);
    handshake_ok(&p);
    assert_int_equal(tls_conn_resumed(p.c), 1);
    pair_close(&p);

    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
}

/* ---- 7. closing ------------------------------------------------------------ */

static void closing(void **state)
{
    (void)state;
    tls_ctx_t *ctx = client_ctx(pki.ca_pem, NULL, NULL, 1);
    SSL_CTX *sctx = server_ctx(pki.server, pki.server_key, 0);
    char dst[64];
    size_t k;
    pair_t p;

    /* the server closes: the client reads TLS_CLOSED, then closes too */
    pair_open(&p, ctx, "localhost", NULL, sctx);
    handshake_ok(&p);
    exchange(&p, 10, 51);
    assert_int_equal(SSL_shutdown(p.s), 0);
    assert_true(to_client(&p) > 0);
    k = 99;
    assert_int_equal(tls_conn_read(p.c, dst, sizeof dst, &k), TLS_CLOSED);
    assert_int_equal(k, 0);
    tls_conn_shutdown(p.c);
    assert_true(to_server(&p) > 0);
    assert_int_equal(SSL_shutdown(p.s), 1); /* both close_notify seen */
    pair_close(&p);

    /* the client closes: the server reads close_notify */
    pair_open(&p, ctx, "localhost", NULL, sctx);
    handshake_ok(&p);
    client_drain(&p);
    tls_conn_shutdown(p.c);
    assert_true(to_server(&p) > 0);
    assert_int_equal(SSL_read(p.s, dst, sizeof dst), 0);
    assert_int_equal(SSL_get_error(p.s, 0), SSL_ERROR_ZERO_RETURN);
    pair_close(&p);

    /* EOF without close_notify is a truncation */
    pair_open(&p, ctx, "localhost", NULL, sctx);
    handshake_ok(&p);
    exchange(&p, 10, 52);
    tls_conn_feed_eof(p.c);
    k = 99;
    assert_int_equal(tls_conn_read(p.c, dst, sizeof dst, &k), TLS_FAILED);
    assert_int_equal(k, 0);
    assert_non_null(strstr(tls_conn_error(p.c), "unexpected eof"));
    assert_true(to_server(&p) > 0); /* OpenSSL's fatal alert */
    tls_conn_shutdown(p.c);         /* harmless after a failure: nothing more */
    assert_int_equal(to_server(&p), 0);
    pair_close(&p);

    /* ... also in the middle of a record */
    pair_open(&p, ctx, "localhost", NULL, sctx);
    handshake_ok(&p);
    client_drain(&p);
    server_write(&p, "a record cut short", 18);
    size_t pending = BIO_ctrl_pending(p.s_out);
    p.chunk = pending - 5;
    assert_int_equal(to_client(&p), pending - 5);
    k = 99;
    assert_int_equal(tls_conn_read(p.c, dst, sizeof dst, &k), TLS_AGAIN);
    tls_conn_feed_eof(p.c);
    assert_int_equal(tls_conn_read(p.c, dst, sizeof dst, &k), TLS_FAILED);
    assert_int_equal(k, 0);
    assert_non_null(strstr(tls_conn_error(p.c), "unexpected eof"));
    pair_close(&p);

    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
}

/* ---- 8. client certificates ----------------------------------------------- */

static void client_certificates(void **state)
{
    (void)state;
    tls_ctx_t *with = client_ctx(pki.ca_pem, pki.client_pem, pki.client_key_pem, 1);
    tls_ctx_t *without = client_ctx(pki.ca_pem, NULL, NULL, 1);
    SSL_CTX *s13 = server_ctx(pki.server, pki.server_key, 0);
    SSL_CTX *s12 = server_ctx(pki.server, pki.server_key, TLS1_2_VERSION);
    server_require_client_cert(s13);
    server_require_client_cert(s12);
    pair_t p;

    /* TLS 1.3 with a certificate: the server sees and verifies it */
    pair_open(&p, with, "localhost", NULL, s13);
    handshake_ok(&p);
    assert_int_equal(tls_conn_is_tls13(p.c), 1);
    assert_non_null(SSL_get0_peer_certificate(p.s));
    assert_int_equal(X509_cmp(SSL_get0_peer_certificate(p.s), pki.client), 0);
    assert_int_equal(SSL_get_verify_result(p.s), X509_V_OK);
    client_drain(&p);
    assert_int_equal(tls_conn_server_spoke(p.c), 1); /* accepted */
    exchange(&p, 300, 61);
    pair_close(&p);

    /* TLS 1.3 without: the handshake completes, the next read fails */
    pair_open(&p, without, "localhost", NULL, s13);
    assert_int_equal(handshake(&p), TLS_OK);
    assert_int_equal(p.server_hs, -1);
    assert_int_equal(tls_conn_server_spoke(p.c), 0);
    assert_true(to_client(&p) > 0); /* the server's alert */
    char dst[64];
    size_t k = 99;
    assert_int_equal(tls_conn_read(p.c, dst, sizeof dst, &k), TLS_FAILED);
    assert_int_equal(k, 0);
    assert_non_null(strstr(tls_conn_error(p.c), "certificate required"));
    assert_int_equal(tls_conn_server_spoke(p.c), 0);
    pair_close(&p);

    /* TLS 1.2 with a certificate; its ticket comes inside the handshake,
     * so the server has not spoken since until it sends data */
    pair_open(&p, with, "localhost", NULL, s12);
    handshake_ok(&p);
    assert_int_equal(tls_conn_is_tls13(p.c), 0);
    assert_string_equal(tls_conn_version(p.c), "TLSv1.2");
    assert_int_equal(X509_cmp(SSL_get0_peer_certificate(p.s), pki.client), 0);
    assert_int_equal(tls_conn_server_spoke(p.c), 0);
    tls_session_t *s = tls_conn_take_session(p.c);
    assert_non_null(s);
    tls_session_free(s);
    exchange(&p, 300, 62);
    assert_int_equal(tls_conn_server_spoke(p.c), 1);
    pair_close(&p);

    /* TLS 1.2 without: the handshake itself fails */
    pair_open(&p, without, "localhost", NULL, s12);
    assert_int_equal(handshake(&p), TLS_FAILED);
    assert_int_equal(p.server_hs, -1);
    assert_int_equal(tls_conn_is_tls13(p.c), 0);
    assert_true(strlen(tls_conn_error(p.c)) > 0);
    pair_close(&p);

    SSL_CTX_free(s13);
    SSL_CTX_free(s12);
    tls_ctx_free(with);
    tls_ctx_free(without);
}

/* ---- 9. tls_ctx_new errors ------------------------------------------------ */

/* tls_ctx_new must fail about `field` with an error containing want1 and
 * want2 (NULL: no second check). */
static void expect_ctx_error(const char *ca, const char *cert, const char *key, tls_field_t field,
                             const char *want1, const char *want2)
{
    tls_client_opts_t opts = { ca, cert, key, 1 };
    tls_field_t got_field = TLS_FIELD_NONE;
    char err[1024] = "";
    assert_null(tls_ctx_new(&opts, &got_field, err, sizeof err));
    assert_int_equal(got_field, field);
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("error \"%s\" lacks \"%s\" / \"%s\"", err, want1, want2 ? want2 : "");
    assert_int_equal(ERR_peek_error(), 0); /* the queue is left empty */
}

static void ctx_errors(void **state)
{
    (void)state;
    expect_ctx_error(pki.missing_pem, NULL, NULL, TLS_FIELD_CA, "cannot read", pki.missing_pem);
    expect_ctx_error(pki.garbage_pem, NULL, NULL, TLS_FIELD_CA, pki.garbage_pem, NULL);
    /* a key not matching the certificate: another P-256 key is refused by
     * OpenSSL while loading ("key values mismatch"), a key of another type
     * by the explicit check ("does not match") */
    expect_ctx_error(pki.ca_pem, pki.client_pem, pki.stray_key_pem, TLS_FIELD_KEY, pki.stray_key_pem, NULL);
    expect_ctx_error(pki.ca_pem, pki.client_pem, pki.ed_key_pem, TLS_FIELD_KEY, "does not match", pki.ed_key_pem);
    expect_ctx_error(pki.ca_pem, pki.missing_pem, pki.client_key_pem, TLS_FIELD_CERT, "cannot read",
                     pki.missing_pem);
    expect_ctx_error(pki.ca_pem, pki.client_pem, pki.missing_pem, TLS_FIELD_KEY, "cannot read", pki.missing_pem);
    expect_ctx_error(pki.ca_pem, pki.garbage_pem, pki.client_key_pem, TLS_FIELD_CERT, pki.garbage_pem, NULL);
    assert_string_equal(tls_field_name(TLS_FIELD_CA), "ca");
    assert_string_equal(tls_field_name(TLS_FIELD_CERT), "cert");
    assert_string_equal(tls_field_name(TLS_FIELD_KEY), "key");
    assert_string_equal(tls_field_name(TLS_FIELD_NONE), "");
    /* the control: the matching key loads */
    tls_ctx_free(client_ctx(pki.ca_pem, pki.client_pem, pki.client_key_pem, 1));
}

/* ---- 10. TLS 1.2 minimum -------------------------------------------------- */

static void tls12_minimum(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(pki.server, pki.server_key, 0);
    SSL_CTX_set_security_level(sctx, 0); /* TLS 1.1 needs SHA-1 signatures */
    assert_int_equal(SSL_CTX_set_min_proto_version(sctx, TLS1_VERSION), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(sctx, TLS1_1_VERSION), 1);

    /* the control: a plain OpenSSL client with no minimum gets TLS 1.1 */
    {
        SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
        assert_non_null(cctx);
        SSL_CTX_set_security_level(cctx, 0);
        assert_int_equal(SSL_CTX_set_min_proto_version(cctx, TLS1_VERSION), 1);
        SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
        BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
        BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
        SSL_set_bio(c, c_in, c_out);
        SSL_set_bio(s, s_in, s_out);
        SSL_set_connect_state(c);
        SSL_set_accept_state(s);
        char tmp[16384];
        int c_done = 0, s_done = 0;
        for (int round = 0; round < 20 && !(c_done && s_done); round++) {
            if (!c_done)
                c_done = SSL_do_handshake(c) == 1;
            int n;
            while ((n = BIO_read(c_out, tmp, sizeof tmp)) > 0)
                BIO_write(s_in, tmp, n);
            if (!s_done)
                s_done = SSL_do_handshake(s) == 1;
            while ((n = BIO_read(s_out, tmp, sizeof tmp)) > 0)
                BIO_write(c_in, tmp, n);
        }
        ERR_clear_error();
        assert_true(c_done && s_done);
        assert_string_equal(SSL_get_version(c), "TLSv1.1");
        SSL_free(c);
        SSL_free(s);
        SSL_CTX_free(cctx);
    }

    tls_ctx_t *ctx = client_ctx(pki.ca_pem, NULL, NULL, 1);
    pair_t p;
    pair_open(&p, ctx, "localhost", NULL, sctx);
    assert_int_equal(handshake(&p), TLS_FAILED);
    assert_int_equal(p.server_hs, -1);
    assert_non_null(strstr(tls_conn_error(p.c), "protocol version"));
    pair_close(&p);

    /* ... and so does verify=0 */
    tls_ctx_t *noverify = client_ctx(pki.ca_pem, NULL, NULL, 0);
    pair_open(&p, noverify, "localhost", NULL, sctx);
    assert_int_equal(handshake(&p), TLS_FAILED);
    pair_close(&p);

    tls_ctx_free(noverify);
    tls_ctx_free(ctx);
    SSL_CTX_free(sctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handshake_and_echo),
        cmocka_unit_test(verification),
        cmocka_unit_test(byte_at_a_time),
        cmocka_unit_test(multi_megabyte),
        cmocka_unit_test(post_handshake),
        cmocka_unit_test(resumption),
        cmocka_unit_test(resumption_after_server_close),
        cmocka_unit_test(closing),
        cmocka_unit_test(client_certificates),
        cmocka_unit_test(ctx_errors),
        cmocka_unit_test(tls12_minimum),
    };
    return cmocka_run_group_tests_name("tls", tests, pki_setup, pki_teardown);
}
