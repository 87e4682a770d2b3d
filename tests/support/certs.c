/* certs: a throw-away PKI for TLS tests. See certs.h for the contract. */
#include "support/certs.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/proc.h"

/* Runs with $1 = the directory. Every certificate goes through a CSR and
 * `openssl x509 -req -extfile`, so its extensions are exactly the ones
 * written here whatever the system's openssl.cnf says. */
static const char SCRIPT[] =
    "set -e\n"
    "cd \"$1\"\n"
    "csr() { # NAME CN: a new P-256 key NAME.key and its request NAME.csr\n"
    "  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \\\n"
    "    -keyout \"$1.key\" -out \"$1.csr\" -subj \"/CN=$2\"\n"
    "}\n"
    "ca() { # NAME CN: a self-signed CA\n"
    "  csr \"$1\" \"$2\"\n"
    "  printf '%s\\n' 'basicConstraints=critical,CA:TRUE' \\\n"
    "    'keyUsage=critical,keyCertSign,cRLSign' 'subjectKeyIdentifier=hash' > \"$1.ext\"\n"
    "  openssl x509 -req -in \"$1.csr\" -signkey \"$1.key\" -days 2 -sha256 \\\n"
    "    -extfile \"$1.ext\" -out \"$1.crt\"\n"
    "}\n"
    "leaf() { # NAME CN CA EKU [SAN]: a certificate signed by CA\n"
    "  csr \"$1\" \"$2\"\n"
    "  printf '%s\\n' 'basicConstraints=CA:FALSE' 'keyUsage=critical,digitalSignature' \\\n"
    "    \"extendedKeyUsage=$4\" 'subjectKeyIdentifier=hash' 'authorityKeyIdentifier=keyid' > \"$1.ext\"\n"
    "  if [ -n \"$5\" ]; then printf 'subjectAltName=%s\\n' \"$5\" >> \"$1.ext\"; fi\n"
    "  openssl x509 -req -in \"$1.csr\" -CA \"$3.crt\" -CAkey \"$3.key\" -CAcreateserial \\\n"
    "    -days 2 -sha256 -extfile \"$1.ext\" -out \"$1.crt\"\n"
    "}\n"
    "ca ca pg-test-ca\n"
    "ca other-ca pg-test-other-ca\n"
    "leaf server localhost ca serverAuth DNS:localhost,IP:127.0.0.1\n"
    "leaf wrongname wrong.example ca serverAuth DNS:wrong.example\n"
    "leaf dnsonly localhost ca serverAuth DNS:localhost\n"
    "leaf client pg-client ca clientAuth\n"
    "leaf other-client pg-other-client other-ca clientAuth\n";

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

static void remove_dir(const char *dir) {
  if (dir[0])
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* dst = dir/name; certs_make() made sure that every name fits. */
static void set_path(char *dst, const char *dir, const char *name) {
  size_t dlen = strlen(dir), nlen = strlen(name);
  memcpy(dst, dir, dlen);
  dst[dlen] = '/';
  memcpy(dst + dlen + 1, name, nlen + 1);
}

static void fill_paths(struct certs *c) {
  const char *d = c->dir;
  set_path(c->ca_crt, d, "ca.crt");
  set_path(c->ca_key, d, "ca.key");
  set_path(c->other_ca_crt, d, "other-ca.crt");
  set_path(c->other_ca_key, d, "other-ca.key");
  set_path(c->server_crt, d, "server.crt");
  set_path(c->server_key, d, "server.key");
  set_path(c->wrongname_crt, d, "wrongname.crt");
  set_path(c->wrongname_key, d, "wrongname.key");
  set_path(c->dnsonly_crt, d, "dnsonly.crt");
  set_path(c->dnsonly_key, d, "dnsonly.key");
  set_path(c->client_crt, d, "client.crt");
  set_path(c->client_key, d, "client.key");
  set_path(c->other_client_crt, d, "other-client.crt");
  set_path(c->other_client_key, d, "other-client.key");
}

int certs_make(struct certs *c) {
  memset(c, 0, sizeof *c);
  const char *tmp = getenv("TMPDIR");
  char dir[PATH_MAX];
  int len = snprintf(dir, sizeof dir, "%s/pg-certs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (len < 0 || (size_t)len + sizeof "/other-client.key" > sizeof dir) {
    fprintf(stderr, "certs: TMPDIR is too long\n");
    return -ENAMETOOLONG;
  }
  if (!mkdtemp(dir)) {
    int rc = -errno;
    fprintf(stderr, "certs: mkdtemp %s: %s\n", dir, strerror(errno));
    return rc;
  }
  const char *argv[] = {"/bin/sh", "-c", SCRIPT, "certs.sh", dir, NULL};
  struct proc_options opts = {.stdout_mode = PROC_STDIO_CAPTURE,
                              .stderr_mode = PROC_STDIO_CAPTURE};
  struct proc *p = NULL;
  int rc = proc_spawn(argv, &opts, &p);
  if (rc != 0) {
    fprintf(stderr, "certs: cannot run /bin/sh: %s\n", strerror(-rc));
    remove_dir(dir);
    return rc;
  }
  char *out = NULL, *err = NULL;
  int status = proc_read_all(p, CERTS_TIMEOUT_MS, &out, &err);
  proc_free(p);
  if (status != 0) {
    char text[64];
    fprintf(stderr, "certs: openssl failed (%s) making the test certificates in %s:\n%s%s",
            proc_status_str(status, text, sizeof text), dir, out ? out : "", err ? err : "");
    free(out);
    free(err);
    remove_dir(dir);
    /* 127: the shell did not find openssl */
    return status == 127 ? -ENOENT : -EPROTO;
  }
  free(out);
  free(err);
  snprintf(c->dir, sizeof c->dir, "%s", dir);
  fill_paths(c);
  return 0;
}

void certs_free(struct certs *c) {
  remove_dir(c->dir);
  memset(c, 0, sizeof *c);
}
