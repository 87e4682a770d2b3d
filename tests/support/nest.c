/* nest: real NestJS TCP services for integration tests. See nest.h. */
#include "support/nest.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/net.h"

#define NEST_PORT_ATTEMPTS 5        /* port 0: free ports tried */
#define NEST_RESTART_ATTEMPTS 25    /* same port: tries while it is busy */
#define NEST_RESTART_BACKOFF_MS 200
#define NEST_EXIT_REPORT_MS 5000    /* waiting for the status of a failed start */

static bool version_valid(const char *version) {
  size_t len = version ? strlen(version) : 0;
  if (len == 0 || len >= sizeof(((struct nest_service *)0)->version))
    return false;
  return strspn(version, "abcdefghijklmnopqrstuvwxyz0123456789") == len;
}

static bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* Missing piece of `version`'s installation, or NULL if complete. Writes
 * the path it looked for into path (PATH_MAX bytes). */
static const char *missing_part(const char *version, char *path) {
  snprintf(path, PATH_MAX, "%s/tests/nest/%s/main.mjs", PG_SOURCE_DIR, version);
  if (!file_exists(path))
    return "service entry point";
  snprintf(path, PATH_MAX, "%s/tests/nest/%s/node_modules/@nestjs/microservices/package.json",
           PG_SOURCE_DIR, version);
  if (!file_exists(path))
    return "npm packages";
  return NULL;
}

/* 0 when installed; otherwise prints why and returns -ENOENT. */
static int check_installed(const char *version) {
  char path[PATH_MAX];
  if (!version_valid(version)) {
    fprintf(stderr, "nest: invalid version \"%s\"\n", version ? version : "(null)");
    return -EINVAL;
  }
  const char *missing = missing_part(version, path);
  if (!missing)
    return 0;
  fprintf(stderr,
          "nest: the %s of the Nest %s test service are missing (%s not found).\n"
          "nest: run scripts/setup (it runs npm ci in tests/nest/%s) and try again.\n",
          missing, version, path, version);
  return -ENOENT;
}

void nest_require(const char *version) {
  if (check_installed(version) != 0)
    fail_msg("Nest %s test service not installed: run scripts/setup", version ? version : "");
}

static void copy_path(char *dst, const char *src) {
  snprintf(dst, PATH_MAX, "%s", src ? src : "");
}

static void save_options(struct nest_service *svc, const char *version,
                         const struct nest_options *o) {
  memset(svc, 0, sizeof *svc);
  snprintf(svc->version, sizeof svc->version, "%s", version);
  svc->port = o->port;
  snprintf(svc->host, sizeof svc->host, "%s", o->host ? o->host : "127.0.0.1");
  snprintf(svc->opts.name, sizeof svc->opts.name, "%s", o->name ? o->name : "");
  svc->opts.delay_ms = o->delay_ms;
  svc->opts.tls = o->tls_key != NULL;
  copy_path(svc->opts.tls_key, o->tls_key);
  copy_path(svc->opts.tls_cert, o->tls_cert);
  copy_path(svc->opts.tls_ca, o->tls_ca);
  svc->opts.request_cert = o->request_cert;
  svc->opts.quiet = o->quiet;
  snprintf(svc->opts.flag, sizeof svc->opts.flag, "%s", o->flag ? o->flag : "");
}

#define NEST_MAX_ARGS 24

/* The texts an argv points into. */
struct nest_argv_text {
  char script[PATH_MAX];
  char port[16];
  char delay[16];
};

/* Fills argv (room for NEST_MAX_ARGS) for `node main.mjs --port N ...`. */
static void build_argv(const struct nest_service *svc, int port, struct nest_argv_text *t,
                       const char *argv[]) {
  const char *node = getenv("PG_NODE");
  snprintf(t->script, sizeof t->script, "%s/tests/nest/%s/main.mjs", PG_SOURCE_DIR,
           svc->version);
  snprintf(t->port, sizeof t->port, "%d", port);
  int n = 0;
  argv[n++] = node && *node ? node : "node";
  argv[n++] = t->script;
  argv[n++] = "--port";
  argv[n++] = t->port;
  argv[n++] = "--host";
  argv[n++] = svc->host;
  if (svc->opts.name[0]) {
    argv[n++] = "--name";
    argv[n++] = svc->opts.name;
  }
  if (svc->opts.delay_ms) {
    snprintf(t->delay, sizeof t->delay, "%u", svc->opts.delay_ms);
    argv[n++] = "--delay-ms";
    argv[n++] = t->delay;
  }
  if (svc->opts.tls) {
    argv[n++] = "--tls-key";
    argv[n++] = svc->opts.tls_key;
    argv[n++] = "--tls-cert";
    argv[n++] = svc->opts.tls_cert;
  }
  if (svc->opts.tls_ca[0]) {
    argv[n++] = "--tls-ca";
    argv[n++] = svc->opts.tls_ca;
  }
  if (svc->opts.request_cert)
    argv[n++] = "--request-cert";
  if (svc->opts.quiet)
    argv[n++] = "--quiet";
  if (svc->opts.flag[0])
    argv[n++] = svc->opts.flag;
  argv[n] = NULL;
}

/* Prints why the start failed, with the service's stderr, and returns
 * `rc`, or -EADDRINUSE if the service said the port was taken. */
static int report_start_failure(struct proc *p, const char *version, const char *host, int port,
                                const char *why, int rc) {
  char status_text[64];
  int status = proc_wait(p, rc == -ETIMEDOUT ? 0 : NEST_EXIT_REPORT_MS);
  char *err = proc_stderr_text(p);
  if (err && strstr(err, "EADDRINUSE") && status >= 0)
    rc = -EADDRINUSE;
  fprintf(stderr,
          "nest: Nest %s service on %s:%d did not start: %s (%s)\n"
          "nest: ---- its stderr ----\n%s%s"
          "nest: ---- end of its stderr ----\n",
          version, host, port, why, proc_status_str(status, status_text, sizeof status_text),
          err ? err : "(unavailable)\n",
          err && *err && err[strlen(err) - 1] != '\n' ? "\n" : "");
  free(err);
  return rc;
}

/* Interprets the first stdout line: 0 when it is READY <port>. */
static int check_ready_line(const char *line, int port, const char **why) {
  int reported = -1;
  char extra;
  if (sscanf(line, "READY %d%c", &reported, &extra) != 1) {
    *why = "it printed something else than READY <port> on stdout";
    return -EPROTO;
  }
  if (reported != port) {
    *why = "it reported another port than asked";
    return -EPROTO;
  }
  return 0;
}

/* Runs the service's process for `port`: 0 and *out, or a negative errno
 * (printed). */
static int spawn_service(const struct nest_service *svc, int port, struct proc **out) {
  struct nest_argv_text text;
  const char *argv[NEST_MAX_ARGS];
  build_argv(svc, port, &text, argv);
  struct proc_options popts = {.stdout_mode = PROC_STDIO_PIPE,
                               .stderr_mode = PROC_STDIO_CAPTURE};
  int rc = proc_spawn(argv, &popts, out);
  if (rc != 0)
    fprintf(stderr, "nest: cannot run %s: %s (set PG_NODE to the node binary)\n",
            argv[0], strerror(-rc));
  return rc;
}

/* Waits for the READY line of p, started for `port`: 0 and svc owns p, or
 * a negative errno (printed, p freed). */
static int await_ready(struct nest_service *svc, struct proc *p, int port) {
  char line[256];
  int rc;
  const char *why = NULL;
  rc = proc_read_line(p, line, sizeof line, NEST_START_TIMEOUT_MS);
  if (rc == -ETIMEDOUT)
    why = "no READY line in time";
  else if (rc < 0) {
    why = rc == -ENODATA ? "it exited" : "its stdout could not be read";
    rc = rc == -ENODATA ? -ECHILD : rc;
  } else
    rc = check_ready_line(line, port, &why);
  if (rc != 0) {
    if (rc == -EPROTO)
      fprintf(stderr, "nest: unexpected stdout line: %s\n", line);
    rc = report_start_failure(p, svc->version, svc->host, port, why, rc);
    proc_free(p);
    return rc;
  }
  svc->proc = p;
  svc->port = port;
  return 0;
}

/* One attempt to start the service on `port`. */
static int start_once(struct nest_service *svc, int port) {
  struct proc *p = NULL;
  int rc = spawn_service(svc, port, &p);
  return rc != 0 ? rc : await_ready(svc, p, port);
}

int nest_start(const char *version, const struct nest_options *opts,
               struct nest_service *svc) {
  static const struct nest_options defaults;
  const struct nest_options *o = opts ? opts : &defaults;
  int rc = check_installed(version);
  if (rc != 0) {
    memset(svc, 0, sizeof *svc);
    return rc;
  }
  save_options(svc, version, o);
  int attempts = o->port == 0 ? NEST_PORT_ATTEMPTS : 1;
  rc = -EADDRINUSE;
  for (int i = 0; i < attempts && rc == -EADDRINUSE; i++) {
    int port = o->port;
    if (port == 0 && (port = testnet_free_port()) < 0)
      return port;
    rc = start_once(svc, port);
  }
  return rc;
}

int nest_start_all(const char *version, const struct nest_options *opts,
                   struct nest_service *svcs, size_t n) {
  int rc = check_installed(version);
  struct proc **procs = calloc(n ? n : 1, sizeof *procs);
  if (procs == NULL)
    rc = -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    save_options(&svcs[i], version, &opts[i]);
    if (rc == 0 && opts[i].port <= 0)
      rc = -EINVAL;
    if (rc == 0)
      rc = spawn_service(&svcs[i], opts[i].port, &procs[i]);
  }
  for (size_t i = 0; i < n && procs; i++) {
    if (procs[i] == NULL)
      continue;
    if (rc != 0) {  /* something failed: the rest only need stopping */
      proc_free(procs[i]);
      continue;
    }
    rc = await_ready(&svcs[i], procs[i], opts[i].port);
  }
  free(procs);
  if (rc != 0)
    for (size_t i = 0; i < n; i++)
      nest_stop(&svcs[i]);
  return rc;
}

int nest_stop(struct nest_service *svc) {
  if (!svc->proc)
    return 0;
  int status = proc_stop(svc->proc, SIGTERM, NEST_STOP_GRACE_MS);
  proc_free(svc->proc);
  svc->proc = NULL;
  return status;
}

int nest_kill(struct nest_service *svc) {
  if (!svc->proc)
    return 0;
  int status = proc_kill(svc->proc);
  proc_free(svc->proc);
  svc->proc = NULL;
  return status;
}

static void sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

int nest_restart_same_port(struct nest_service *svc) {
  nest_stop(svc);
  int rc = check_installed(svc->version);
  if (rc != 0)
    return rc;
  for (int i = 0; i < NEST_RESTART_ATTEMPTS; i++) {
    rc = start_once(svc, svc->port);
    if (rc != -EADDRINUSE)
      return rc;
    sleep_ms(NEST_RESTART_BACKOFF_MS); /* the port is still held: retry */
  }
  return rc;
}

char *nest_stderr(struct nest_service *svc) {
  return svc->proc ? proc_stderr_text(svc->proc) : strdup("");
}

static int group_setup(void **state, const char *version)
{
  struct nest_group *g = calloc(1, sizeof *g);
  if (g == NULL)
    return -1;
  nest_require(version);
  struct nest_options opts = {.quiet = true};
  if (nest_start(version, &opts, &g->svc) != 0) {
    free(g);
    return -1;
  }
  snprintf(g->address, sizeof g->address, "127.0.0.1:%d", g->svc.port);
  *state = g;
  return 0;
}

int nest_group_setup_v12(void **state) { return group_setup(state, "v12"); }
int nest_group_setup_v10(void **state) { return group_setup(state, "v10"); }

int nest_group_teardown(void **state)
{
  struct nest_group *g = *state;
  nest_stop(&g->svc);
  free(g);
  return 0;
}
