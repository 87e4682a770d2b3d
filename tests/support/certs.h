/* certs: a throw-away PKI for TLS tests, made at test run time.
 *
 * certs_make() creates a fresh directory (mkdtemp under $TMPDIR, else /tmp)
 * and runs the `openssl` command-line tool from PATH (through proc.h, one
 * /bin/sh script) to fill it with PEM files, every key an EC P-256 key
 * (unencrypted PKCS#8), every certificate valid from now for 2 days:
 *
 *   ca.crt / ca.key             a CA: CN=pg-test-ca, basicConstraints
 *                               critical CA:TRUE, keyUsage keyCertSign
 *   other-ca.crt / .key         a second CA that has nothing to do with the
 *                               first (CN=pg-test-other-ca)
 *   server.crt / .key           signed by ca: CN=localhost, subjectAltName
 *                               DNS:localhost, IP:127.0.0.1; EKU serverAuth
 *   wrongname.crt / .key        signed by ca: CN=wrong.example, SAN
 *                               DNS:wrong.example only; EKU serverAuth
 *   dnsonly.crt / .key          signed by ca: CN=localhost, SAN
 *                               DNS:localhost only (no IP); EKU serverAuth
 *   client.crt / .key           signed by ca: CN=pg-client, EKU clientAuth
 *   other-client.crt / .key     signed by other-ca: CN=pg-other-client,
 *                               EKU clientAuth
 *
 * Leaf certificates are not CAs (basicConstraints CA:FALSE) and hold no
 * chain: ca.crt (or other-ca.crt) is the whole trust anchor. The directory
 * also holds the openssl by-products (.csr, .ext, .srl files).
 *
 * Ownership: the caller owns the struct (on its stack or in a fixture) and
 * the directory from a successful certs_make() until certs_free(), which
 * removes the directory and everything in it. The paths are absolute.
 *
 * Threads: call from the test's main thread (proc.h's rule).
 *
 * Errors: certs_make() returns 0, or a negative errno (-ENOENT when openssl
 * cannot be run, -EPROTO when it failed: its stderr is printed, and the
 * directory is already removed). Nothing here calls cmocka.
 */
#ifndef PG_TESTS_SUPPORT_CERTS_H
#define PG_TESTS_SUPPORT_CERTS_H

#include <limits.h>

/* How long certs_make() lets openssl run, all files together. */
#define CERTS_TIMEOUT_MS 60000

struct certs {
  char dir[PATH_MAX]; /* the directory; "" when none */
  char ca_crt[PATH_MAX], ca_key[PATH_MAX];
  char other_ca_crt[PATH_MAX], other_ca_key[PATH_MAX];
  char server_crt[PATH_MAX], server_key[PATH_MAX];
  char wrongname_crt[PATH_MAX], wrongname_key[PATH_MAX];
  char dnsonly_crt[PATH_MAX], dnsonly_key[PATH_MAX];
  char client_crt[PATH_MAX], client_key[PATH_MAX];
  char other_client_crt[PATH_MAX], other_client_key[PATH_MAX];
};

/* Makes the directory and every file above and fills *c. On failure *c is
 * zeroed (certs_free on it does nothing). */
int certs_make(struct certs *c);

/* Removes the directory and its files and zeroes *c. Safe on a zeroed or
 * already freed struct. */
void certs_free(struct certs *c);

#endif
