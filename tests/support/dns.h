/* dns: a real DNS server for tests, dnsmasq (Debian's dnsmasq-base: the
 * binary only, no system service), serving names from a hosts file the test
 * writes.
 *
 * dnsmasq runs in the foreground as a child process through proc.h (killed
 * at exit if a test fails halfway), listening on 127.0.0.1 (and [::1] with
 * `ipv6`) at a free port, UDP and TCP, with no system configuration: no
 * /etc/resolv.conf, no /etc/hosts, no upstream, no pid file. Every name it
 * does not know is NXDOMAIN (`--local=/#/`), so the search domains a
 * machine's resolv.conf adds to a name get NXDOMAIN too. It runs as the
 * test's own user (`--user`), so it can re-read its hosts file in the
 * test's private directory.
 *
 * Hosts file: lines "<address> <name>...", IPv4 and IPv6, as /etc/hosts.
 * dns_start() and dns_set_hosts() append one line of their own, a sentinel
 * name "generation-<N>.pg-dns-support" (127.0.0.1), and wait until dnsmasq
 * answers it: dnsmasq is then up, or has re-read the new file (it does on
 * SIGHUP). No sleep is used as synchronization.
 *
 * Ownership: struct dns_server is the test's (on its stack or in a
 * fixture); between dns_start() and dns_free() it owns the child process,
 * a private directory under $TMPDIR (or /tmp) with the hosts file, and
 * copies of the options. The directory is also removed at exit if a
 * failing test never reached dns_free().
 *
 * Program: `dnsmasq` from the environment variable PG_DNSMASQ, else
 * /usr/sbin/dnsmasq, else from PATH. Missing, dns_start() fails (and says
 * to run scripts/setup); tests should fail, not skip.
 *
 * Errors: 0 or a negative errno; failures also print why to stderr, with
 * dnsmasq's own stderr.
 */
#ifndef PG_TESTS_SUPPORT_DNS_H
#define PG_TESTS_SUPPORT_DNS_H

#include <limits.h>
#include <stdbool.h>

#include "support/proc.h"

/* How long start, restart and a hosts reload wait for dnsmasq to answer. */
#define DNS_START_TIMEOUT_MS 30000

#define DNS_MAX_ARGS 16

struct dns_options {
  unsigned local_ttl;       /* TTL of the hosts file's answers (s); 0: 1 */
  bool ipv6;                /* listen on [::1] too */
  /* More dnsmasq arguments, NULL-terminated, copied (at most DNS_MAX_ARGS),
   * e.g. "--host-record=a.test,10.0.0.1,30" or "--cname=b.test,a.test,5". */
  const char *const *args;
};

struct dns_server {
  int port;                 /* UDP and TCP, 127.0.0.1 (and ::1) */
  struct proc *proc;        /* the running dnsmasq; NULL when stopped */
  unsigned generation;      /* of the hosts file dnsmasq last answered from */
  char dir[PATH_MAX - 64];  /* private directory, removed by dns_free */
  char hosts_path[PATH_MAX];
  char address[32];         /* "127.0.0.1:<port>", for resolver options */
  char address6[40];        /* "[::1]:<port>" (with ipv6) */
  struct dns_options opts;  /* args point into arg_copy */
  const char *arg_ptrs[DNS_MAX_ARGS + 1];
  char *arg_copy[DNS_MAX_ARGS];
};

/* Writes `hosts` (may be "" or NULL) as the hosts file and starts dnsmasq
 * on a free port (opts may be NULL), waiting until it answers. 0 or a
 * negative errno; on failure nothing is left running and dns_free() is
 * still safe. */
int dns_start(struct dns_server *dns, const char *hosts, const struct dns_options *opts);

/* Replaces the hosts file with `hosts`, sends SIGHUP and waits until
 * dnsmasq answers from the new file. Stopped: only rewrites the file (the
 * next dns_restart() serves it). */
int dns_set_hosts(struct dns_server *dns, const char *hosts);

/* SIGTERM, then waits for the exit. Queries to the port are then refused
 * (ICMP port unreachable: resolvers see "connection refused" at once). */
int dns_stop(struct dns_server *dns);

/* Starts dnsmasq again on the same port with the current hosts file and
 * options, waiting until it answers. -EADDRINUSE if the port was taken. */
int dns_restart(struct dns_server *dns);

/* SIGSTOP / SIGCONT: a stopped dnsmasq keeps its sockets but answers
 * nothing, so queries time out (the packets wait and are answered after
 * dns_resume). */
int dns_pause(struct dns_server *dns);
int dns_resume(struct dns_server *dns);

/* Stops dnsmasq if it runs, removes the directory, frees the copies. The
 * struct can then be started again. Safe on a zeroed or failed struct. */
void dns_free(struct dns_server *dns);

/* Sends one UDP query (qtype 1 = A, 28 = AAAA) for `name` to
 * 127.0.0.1:port and waits up to timeout_ms for the response. Returns the
 * number of answer records (rcode NOERROR), -ENXIO for NXDOMAIN, -EPROTO
 * for another rcode or a malformed response, -ETIMEDOUT, -ECONNREFUSED. */
int dns_query_count(int port, const char *name, int qtype, int timeout_ms);

#endif
