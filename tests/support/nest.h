/* nest: real NestJS TCP services for integration tests.
 *
 * Runs `node tests/nest/<version>/main.mjs` (the shared service in
 * tests/nest/service.mjs, on that version's own Nest packages) as a child
 * process through proc.h, and waits for its `READY <port>` line.
 *
 * The service's patterns (see tests/nest/service.mjs): {cmd:'sum'},
 * {cmd:'echo'}, 'echo', {cmd:'delay'}, {cmd:'stream'}, {cmd:'stream_fail'},
 * {cmd:'rpc_object'}, {cmd:'rpc_string'}, {cmd:'throw'}, {cmd:'nothing'},
 * {cmd:'metadata'}, {cmd:'recorded'}, {cmd:'recorded_clear'}, {cmd:'pid'},
 * {cmd:'whoami'} and {cmd:'whoami_count'} (a replica's name and count),
 * and the events 'record' and {cmd:'record'}.
 *
 * Replicas: several services may listen on the same port at different
 * loopback addresses (options.host "127.0.0.2", "127.0.0.3"...; Linux
 * routes all of 127.0.0.0/8 to the loopback), started together by
 * nest_start_all().
 *
 * Ownership: a struct nest_service is owned by the test (usually on its
 * stack or in a fixture); it owns the running child (svc->proc) between a
 * successful nest_start() and nest_stop()/nest_kill(). Option strings are
 * copied into it. A service a failing test leaves behind is killed at exit
 * by proc.h's registry.
 *
 * Node: `node` from PATH, or the program named by the environment variable
 * PG_NODE. The npm packages must have been installed by scripts/setup:
 * nest_require() (and nest_start()) fail the test, never skip it, when a
 * version's node_modules is missing.
 *
 * Errors: 0 or a negative errno; every failure also prints to stderr why,
 * with the service's own stderr.
 */
#ifndef PG_TESTS_SUPPORT_NEST_H
#define PG_TESTS_SUPPORT_NEST_H

#include <limits.h>
#include <stdbool.h>

#include "support/proc.h"

/* How long nest_start() waits for READY: CI machines are slow and loaded. */
#define NEST_START_TIMEOUT_MS 60000
/* How long nest_stop() waits after SIGTERM before it SIGKILLs. */
#define NEST_STOP_GRACE_MS 10000

struct nest_options {
  int port;             /* 0: a free port of 127.0.0.1 chosen by nest_start */
  const char *host;     /* IPv4 address to listen on; NULL: 127.0.0.1 */
  const char *name;     /* whoami's identity; NULL: "HOST:PORT" */
  unsigned delay_ms;    /* whoami answers this much later (0: at once) */
  const char *tls_key;  /* PEM files; NULL for plain TCP. key and cert go */
  const char *tls_cert; /* together */
  const char *tls_ca;   /* CA for client certificates (mTLS), or NULL */
  bool request_cert;    /* require a client certificate; needs tls_ca */
  bool quiet;           /* no Nest logs on the service's stderr */
  const char *flag;     /* one more argument for the service (e.g. the rest
                           service's "--custom-serializer"); NULL: none */
};

struct nest_service {
  char version[16];     /* "v12", "v10" */
  int port;             /* the port it listens on */
  char host[64];        /* ... and the address ("127.0.0.1" by default) */
  struct proc *proc;    /* the running node process; NULL when stopped */
  struct {              /* copy of the options, for restarts */
    char name[128];     /* "" for the default */
    unsigned delay_ms;
    bool tls;
    char tls_key[PATH_MAX];
    char tls_cert[PATH_MAX];
    char tls_ca[PATH_MAX];
    bool request_cert;
    bool quiet;
    char flag[64];      /* "" for none */
  } opts;
};

/* Fails the running cmocka test (or exits the process outside a test)
 * with a message telling to run scripts/setup when the npm packages of
 * `version` are not installed. */
void nest_require(const char *version);

/* Starts the service of `version` ("v12", "v10", or "rest": the books
 * service of tests/nest/rest, which reads --port, --host, --quiet and the
 * flag --custom-serializer only) with opts (NULL for
 * defaults) and waits up to NEST_START_TIMEOUT_MS for it to listen. With
 * port 0 it picks a port free on 127.0.0.1 (whatever the host), and picks
 * another if that one was taken meanwhile. On success fills *svc and returns 0; on failure prints the
 * cause and the service's stderr, leaves svc->proc NULL and returns a
 * negative errno (-ENOENT for missing npm packages, -ETIMEDOUT,
 * -ECHILD if the service exited, -EPROTO if it printed something else
 * than READY). */
int nest_start(const char *version, const struct nest_options *opts,
               struct nest_service *svc);

/* Starts n services at once (opts[i] for svcs[i]; each opts[i].port must
 * be given, not 0) and waits for every one: n Node processes start in the
 * time of about one. 0 when all run; otherwise every one that started is
 * stopped again, each failure was printed, and the first error is
 * returned (-EADDRINUSE when a port was taken: pick another and retry). */
int nest_start_all(const char *version, const struct nest_options *opts,
                   struct nest_service *svcs, size_t n);

/* Stops the service: SIGTERM, up to NEST_STOP_GRACE_MS for it to close and
 * exit, then SIGKILL. Returns its exit status (0 for a clean stop; see
 * PROC_SIGNALED) and frees svc->proc. svc keeps version, port and options.
 * A stopped service (svc->proc NULL) returns 0. */
int nest_stop(struct nest_service *svc);

/* SIGKILLs the service at once ("service died mid-request") and reaps it.
 * Returns its exit status and frees svc->proc, like nest_stop(). */
int nest_kill(struct nest_service *svc);

/* Stops the service if it runs and starts it again with the same version,
 * options and port (retrying for a while if the port is still busy).
 * 0 or a negative errno, as nest_start(). */
int nest_restart_same_port(struct nest_service *svc);

/* The service's stderr so far (heap string, caller frees; see
 * proc_stderr_text). "" when stopped. */
char *nest_stderr(struct nest_service *svc);

/* cmocka group fixtures: one quiet service per group, started by the setup
 * (a failed start fails the group) and stopped by the teardown. *state is
 * a struct nest_group. */
struct nest_group {
  struct nest_service svc;
  char address[32];     /* "127.0.0.1:<port>" */
};
int nest_group_setup_v12(void **state);
int nest_group_setup_v10(void **state);
int nest_group_teardown(void **state);

#endif
