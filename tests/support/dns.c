/* dns: dnsmasq as a real DNS server for tests. See dns.h. */
#include "support/dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/deadline.h"

#define DNS_PORT_ATTEMPTS 5      /* free ports tried when one is taken meanwhile */
#define DNS_PROBE_MS 250         /* one readiness query's wait */
#define DNS_RETRY_PAUSE_MS 10    /* between two readiness queries */
#define DNS_STOP_GRACE_MS 5000
#define DNS_SENTINEL "generation-%u.pg-dns-support"

/* ---- a minimal DNS client ---------------------------------------------- */

/* Encodes name as DNS labels at out (cap bytes); returns the length or -1. */
static int encode_name(const char *name, unsigned char *out, size_t cap) {
  size_t n = 0;
  const char *label = name;
  while (*label) {
    const char *dot = strchr(label, '.');
    size_t len = dot ? (size_t)(dot - label) : strlen(label);
    if (len == 0 || len > 63 || n + 1 + len + 1 > cap)
      return -1;
    out[n++] = (unsigned char)len;
    memcpy(out + n, label, len);
    n += len;
    label += len + (dot ? 1 : 0);
  }
  if (n + 1 > cap)
    return -1;
  out[n++] = 0;
  return (int)n;
}

static int build_query(const char *name, int qtype, uint16_t id, unsigned char *q, size_t cap) {
  static const unsigned char header[10] = { 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0 }; /* RD, 1 question */
  if (cap < 12)
    return -1;
  q[0] = (unsigned char)(id >> 8);
  q[1] = (unsigned char)id;
  memcpy(q + 2, header, sizeof header);
  int n = encode_name(name, q + 12, cap - 12 - 4);
  if (n < 0)
    return -1;
  unsigned char *tail = q + 12 + n;
  tail[0] = (unsigned char)(qtype >> 8);
  tail[1] = (unsigned char)qtype;
  tail[2] = 0;
  tail[3] = 1; /* class IN */
  return 12 + n + 4;
}

static int udp_connected(int port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  return fd;
}

/* Waits for the response with our id; its rcode/ancount as documented. */
static int read_response(int fd, uint16_t id, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  unsigned char r[1500];
  for (;;) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int ready = poll(&p, 1, deadline_remaining_ms(deadline));
    if (ready < 0 && errno == EINTR)
      continue;
    if (ready <= 0)
      return -ETIMEDOUT;
    ssize_t n = recv(fd, r, sizeof r, 0);
    if (n < 0)
      return -errno;
    if (n < 12 || ((r[0] << 8) | r[1]) != id)
      continue; /* not ours */
    int rcode = r[3] & 0x0f;
    if (rcode == 3)
      return -ENXIO;
    return rcode == 0 ? (r[6] << 8) | r[7] : -EPROTO;
  }
}

int dns_query_count(int port, const char *name, int qtype, int timeout_ms) {
  static unsigned counter; /* ids only need to differ between tries */
  unsigned char q[300];
  uint16_t id = (uint16_t)(getpid() ^ ++counter);
  int len = build_query(name, qtype, id, q, sizeof q);
  if (len < 0)
    return -EINVAL;
  int fd = udp_connected(port);
  if (fd < 0)
    return fd;
  int rc = send(fd, q, (size_t)len, 0) == len ? read_response(fd, id, timeout_ms) : -errno;
  close(fd);
  return rc;
}

/* ---- files ------------------------------------------------------------- */

/* Directories not yet removed by dns_free, removed at exit: a test that
 * fails halfway (cmocka jumps out of it) leaves nothing in /tmp. Like
 * proc.h's registry, for the test's main thread only. */
#define DNS_LIVE_MAX 32
static char live_dirs[DNS_LIVE_MAX][PATH_MAX];
static bool cleanup_registered;

static void remove_dir(const char *dir) {
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/hosts", dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/hosts.new", dir);
  unlink(path);
  rmdir(dir);
}

static void remove_live_dirs(void) {
  for (int i = 0; i < DNS_LIVE_MAX; i++)
    if (live_dirs[i][0])
      remove_dir(live_dirs[i]);
}

static void track_dir(const char *dir, bool live) {
  if (!cleanup_registered && atexit(remove_live_dirs) == 0)
    cleanup_registered = true;
  for (int i = 0; i < DNS_LIVE_MAX; i++) {
    if (live && !live_dirs[i][0]) {
      snprintf(live_dirs[i], sizeof live_dirs[i], "%s", dir);
      return;
    }
    if (!live && strcmp(live_dirs[i], dir) == 0) {
      live_dirs[i][0] = '\0';
      return;
    }
  }
}

static int make_dir(struct dns_server *dns) {
  const char *tmp = getenv("TMPDIR");
  snprintf(dns->dir, sizeof dns->dir, "%s/pg-dns-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dns->dir)) {
    int rc = -errno;
    fprintf(stderr, "dns: mkdtemp %s: %s\n", dns->dir, strerror(errno));
    dns->dir[0] = '\0';
    return rc;
  }
  snprintf(dns->hosts_path, sizeof dns->hosts_path, "%s/hosts", dns->dir);
  track_dir(dns->dir, true);
  return 0;
}

/* Writes hosts plus the sentinel of `generation`, atomically (rename). */
static int write_hosts(struct dns_server *dns, const char *hosts, unsigned generation) {
  char tmp[PATH_MAX + 8];
  snprintf(tmp, sizeof tmp, "%s.new", dns->hosts_path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    fprintf(stderr, "dns: %s: %s\n", tmp, strerror(errno));
    return -errno;
  }
  fprintf(f, "%s\n127.0.0.1 " DNS_SENTINEL "\n", hosts ? hosts : "", generation);
  if (fclose(f) != 0 || rename(tmp, dns->hosts_path) != 0) {
    int rc = -errno;
    fprintf(stderr, "dns: writing %s: %s\n", dns->hosts_path, strerror(errno));
    return rc;
  }
  return 0;
}

/* ---- ports ------------------------------------------------------------- */

static int bind_probe(int family, int type, int port) {
  int fd = socket(family, type | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  if (family == AF_INET6) {
    struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons((uint16_t)port);
    sa->sin6_addr = in6addr_loopback;
    len = sizeof *sa;
  } else {
    struct sockaddr_in *sa = (struct sockaddr_in *)&ss;
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *sa;
  }
  int rc = bind(fd, (struct sockaddr *)&ss, len) == 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0
               ? ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port)
               : -errno;
  close(fd);
  return rc;
}

/* A port free a moment ago for UDP and TCP on 127.0.0.1 (and ::1). */
static int free_port(bool ipv6) {
  for (int attempt = 0; attempt < 20; attempt++) {
    int port = bind_probe(AF_INET, SOCK_DGRAM, 0);
    if (port < 0)
      return port;
    if (bind_probe(AF_INET, SOCK_STREAM, port) < 0)
      continue;
    if (ipv6 && (bind_probe(AF_INET6, SOCK_DGRAM, port) < 0 || bind_probe(AF_INET6, SOCK_STREAM, port) < 0))
      continue;
    return port;
  }
  return -EADDRINUSE;
}

/* ---- the process ------------------------------------------------------- */

static const char *program(void) {
  const char *env = getenv("PG_DNSMASQ");
  if (env && *env)
    return env;
  return access("/usr/sbin/dnsmasq", X_OK) == 0 ? "/usr/sbin/dnsmasq" : "dnsmasq";
}

enum { ARGS_FIXED = 16, ARG_TEXT = PATH_MAX + 32 };

struct argv_buf {
  const char *argv[ARGS_FIXED + DNS_MAX_ARGS + 1];
  char text[8][ARG_TEXT];
};

static void build_argv(const struct dns_server *dns, struct argv_buf *a) {
  struct passwd *pw = getpwuid(getuid());
  struct group *gr = getgrgid(getgid());
  size_t n = 0;
  int t = 0;
  a->argv[n++] = program();
  a->argv[n++] = "--keep-in-foreground";
  a->argv[n++] = "--conf-file=/dev/null";
  a->argv[n++] = "--no-resolv";
  a->argv[n++] = "--no-hosts";
  a->argv[n++] = "--pid-file";
  a->argv[n++] = "--log-facility=-";
  a->argv[n++] = "--bind-interfaces";
  a->argv[n++] = "--local=/#/";
  a->argv[n++] = "--listen-address=127.0.0.1";
  if (dns->opts.ipv6)
    a->argv[n++] = "--listen-address=::1";
  snprintf(a->text[t], ARG_TEXT, "--port=%d", dns->port);
  a->argv[n++] = a->text[t++];
  snprintf(a->text[t], ARG_TEXT, "--addn-hosts=%s", dns->hosts_path);
  a->argv[n++] = a->text[t++];
  snprintf(a->text[t], ARG_TEXT, "--local-ttl=%u", dns->opts.local_ttl ? dns->opts.local_ttl : 1);
  a->argv[n++] = a->text[t++];
  if (pw) {
    snprintf(a->text[t], ARG_TEXT, "--user=%s", pw->pw_name);
    a->argv[n++] = a->text[t++];
  }
  if (gr) {
    snprintf(a->text[t], ARG_TEXT, "--group=%s", gr->gr_name);
    a->argv[n++] = a->text[t++];
  }
  for (size_t i = 0; dns->opts.args && dns->opts.args[i]; i++)
    a->argv[n++] = dns->opts.args[i];
  a->argv[n] = NULL;
}

static void report(struct dns_server *dns, const char *what) {
  char *err = dns->proc ? proc_stderr_text(dns->proc) : NULL;
  fprintf(stderr, "dns: dnsmasq on port %d: %s\n%s", dns->port, what, err ? err : "");
  free(err);
}

/* Queries the sentinel of dns->generation until answered. 0, -ECHILD when
 * dnsmasq exited (dns->proc still set, for its stderr), -ETIMEDOUT. */
static int wait_serving(struct dns_server *dns, int timeout_ms) {
  char sentinel[64];
  snprintf(sentinel, sizeof sentinel, DNS_SENTINEL, dns->generation);
  int64_t deadline = deadline_after(timeout_ms);
  for (;;) {
    if (proc_wait(dns->proc, 0) >= 0)
      return -ECHILD;
    int left = deadline_remaining_ms(deadline);
    int rc = dns_query_count(dns->port, sentinel, 1, left < DNS_PROBE_MS ? left : DNS_PROBE_MS);
    if (rc > 0)
      return 0;
    if (deadline_remaining_ms(deadline) == 0)
      return -ETIMEDOUT;
    if (rc != -ETIMEDOUT)
      deadline_pause_ms(DNS_RETRY_PAUSE_MS); /* not listening yet, or the old file */
  }
}

/* Spawns dnsmasq on dns->port and waits for it. -EADDRINUSE when the port
 * was taken, other negative errnos otherwise; nothing left running on error. */
static int spawn_and_wait(struct dns_server *dns) {
  struct argv_buf a;
  build_argv(dns, &a);
  struct proc_options po = { .stdout_mode = PROC_STDIO_NULL, .stderr_mode = PROC_STDIO_CAPTURE };
  int rc = proc_spawn(a.argv, &po, &dns->proc);
  if (rc != 0) {
    fprintf(stderr, "dns: cannot run %s: %s (run scripts/setup: it installs dnsmasq-base)\n",
            a.argv[0], strerror(-rc));
    dns->proc = NULL;
    return rc;
  }
  rc = wait_serving(dns, DNS_START_TIMEOUT_MS);
  if (rc == 0)
    return 0;
  char *err = proc_stderr_text(dns->proc);
  bool in_use = err && strstr(err, "in use");
  free(err);
  if (!in_use)
    report(dns, rc == -ECHILD ? "exited at start" : "did not answer in time");
  proc_free(dns->proc);
  dns->proc = NULL;
  return in_use ? -EADDRINUSE : rc;
}

static void copy_options(struct dns_server *dns, const struct dns_options *opts) {
  if (opts)
    dns->opts = *opts;
  size_t n = 0;
  for (; opts && opts->args && opts->args[n] && n < DNS_MAX_ARGS; n++) {
    dns->arg_copy[n] = strdup(opts->args[n]);
    dns->arg_ptrs[n] = dns->arg_copy[n];
  }
  dns->arg_ptrs[n] = NULL;
  dns->opts.args = dns->arg_ptrs;
}

int dns_start(struct dns_server *dns, const char *hosts, const struct dns_options *opts) {
  memset(dns, 0, sizeof *dns);
  copy_options(dns, opts);
  int rc = make_dir(dns);
  if (rc == 0)
    rc = write_hosts(dns, hosts, 0);
  for (int attempt = 0; rc == 0 && attempt < DNS_PORT_ATTEMPTS; attempt++) {
    if ((dns->port = free_port(dns->opts.ipv6)) < 0) {
      rc = dns->port;
      break;
    }
    rc = spawn_and_wait(dns);
    if (rc != -EADDRINUSE)
      break;
    rc = 0; /* taken between the probe and dnsmasq's bind: another port */
  }
  if (rc == 0 && !dns->proc)
    rc = -EADDRINUSE;
  if (rc != 0)
    return rc;
  snprintf(dns->address, sizeof dns->address, "127.0.0.1:%d", dns->port);
  snprintf(dns->address6, sizeof dns->address6, "[::1]:%d", dns->port);
  return 0;
}

int dns_set_hosts(struct dns_server *dns, const char *hosts) {
  unsigned next = dns->generation + 1;
  int rc = write_hosts(dns, hosts, next);
  if (rc != 0)
    return rc;
  dns->generation = next;
  if (!dns->proc)
    return 0;
  if ((rc = proc_signal(dns->proc, SIGHUP)) != 0)
    return rc;
  rc = wait_serving(dns, DNS_START_TIMEOUT_MS);
  if (rc != 0)
    report(dns, "did not serve the new hosts file");
  return rc;
}

int dns_stop(struct dns_server *dns) {
  if (!dns->proc)
    return 0;
  proc_signal(dns->proc, SIGCONT); /* a paused one would not see SIGTERM */
  int status = proc_stop(dns->proc, SIGTERM, DNS_STOP_GRACE_MS);
  proc_free(dns->proc);
  dns->proc = NULL;
  return status < 0 ? status : 0;
}

int dns_restart(struct dns_server *dns) {
  int rc = dns_stop(dns);
  return rc != 0 ? rc : spawn_and_wait(dns);
}

int dns_pause(struct dns_server *dns) {
  return dns->proc ? proc_signal(dns->proc, SIGSTOP) : -ESRCH;
}

int dns_resume(struct dns_server *dns) {
  return dns->proc ? proc_signal(dns->proc, SIGCONT) : -ESRCH;
}

void dns_free(struct dns_server *dns) {
  if (dns->proc) {
    proc_free(dns->proc); /* SIGKILL works on a paused one too */
    dns->proc = NULL;
  }
  if (dns->dir[0]) {
    remove_dir(dns->dir);
    track_dir(dns->dir, false);
    dns->dir[0] = '\0';
  }
  for (size_t i = 0; i < DNS_MAX_ARGS; i++) {
    free(dns->arg_copy[i]);
    dns->arg_copy[i] = NULL;
  }
}
