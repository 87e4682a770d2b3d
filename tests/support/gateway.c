/* gwproc: the built patterngate binary as a child process. See gateway.h. */
#include "support/gateway.h"
#include "support/deadline.h"
#include "support/http.h"
#include "support/net.h"

#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GWPROC_PORT_ATTEMPTS 5      /* starts tried while a port was taken */
#define GWPROC_POLL_INTERVAL_MS 20  /* between two readiness probes */
#define GWPROC_PROBE_TIMEOUT_MS 2000
#define GWPROC_MAX_ARGS 32
#define GWPROC_MAX_ENV 64
#define GWPROC_MAX_WRAPPER_WORDS 32 /* of PG_GATEWAY_WRAPPER */

/* Writes config to a new temporary file; its name goes to path. */
static int write_config(const char *config, char *path) {
  const char *dir = getenv("TMPDIR");
  snprintf(path, PATH_MAX, "%s/pg-gwproc-XXXXXX.json", dir && *dir ? dir : "/tmp");
  int fd = mkstemps(path, 5);
  if (fd < 0)
    return -errno;
  size_t len = strlen(config);
  int rc = 0;
  for (size_t off = 0; off < len && rc == 0;) {
    ssize_t n = write(fd, config + off, len - off);
    if (n > 0)
      off += (size_t)n;
    else if (errno != EINTR)
      rc = -errno;
  }
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc != 0)
    unlink(path);
  return rc;
}

int gwproc_timeout_scale(void) {
  const char *s = getenv("PG_TIMEOUT_SCALE");
  char *end;
  long v = s && *s ? strtol(s, &end, 10) : 1;
  if (!s || !*s || *end != '\0' || v < 1 || v > 1000)
    return 1;
  return (int)v;
}

/* Splits $PG_GATEWAY_WRAPPER at spaces into argv (pointers into buf): at
 * most max words. Their count; 0 when unset or empty. */
static size_t wrapper_words(char *buf, size_t cap, const char **argv, size_t max) {
  const char *w = getenv("PG_GATEWAY_WRAPPER");
  if (!w || !*w || strlen(w) >= cap)
    return 0;
  strcpy(buf, w);
  size_t n = 0;
  for (char *save = NULL, *t = strtok_r(buf, " \t", &save); t && n < max;
       t = strtok_r(NULL, " \t", &save))
    argv[n++] = t;
  return n;
}

static int spawn(struct gwproc *g, const struct gwproc_options *o) {
  char port_env[32], admin_env[32];
  snprintf(port_env, sizeof port_env, "GW_PORT=%d", g->port);
  snprintf(admin_env, sizeof admin_env, "GW_ADMIN_PORT=%d", g->admin_port);
  const char *env[GWPROC_MAX_ENV] = {port_env, admin_env};
  size_t ne = 2;
  for (size_t i = 0; o->env && o->env[i] && ne < GWPROC_MAX_ENV - 1; i++)
    env[ne++] = o->env[i];
  env[ne] = NULL;
  /* PG_GATEWAY_WRAPPER: words run before the binary (e.g. valgrind). */
  char wrapper[1024];
  const char *argv[GWPROC_MAX_ARGS + GWPROC_MAX_WRAPPER_WORDS];
  size_t na = wrapper_words(wrapper, sizeof wrapper, argv, GWPROC_MAX_WRAPPER_WORDS);
  argv[na++] = PG_BINARY;
  argv[na++] = "-c";
  argv[na++] = g->config_path;
  for (size_t i = 0; o->args && o->args[i] && na < GWPROC_MAX_ARGS + GWPROC_MAX_WRAPPER_WORDS - 1; i++)
    argv[na++] = o->args[i];
  argv[na] = NULL;
  struct proc_options po = {.env = env,
                            .stdin_mode = PROC_STDIO_NULL,
                            .stdout_mode = PROC_STDIO_CAPTURE,
                            .stderr_mode = PROC_STDIO_CAPTURE};
  g->started_at_ms = deadline_now_ms();
  return proc_spawn(argv, &po, &g->proc);
}

/* One readiness probe: 1 when /healthz answered 200, else 0. */
static int probe(struct gwproc *g, const struct gwproc_options *o) {
  struct http_request req = {.method = "GET", .path = "/healthz", .headers = o->ready_headers};
  struct http_response resp;
  int port = o->ready_on_admin ? g->admin_port : g->port;
  if (http_fetch(port, &req, &resp, GWPROC_PROBE_TIMEOUT_MS * gwproc_timeout_scale()) != 0)
    return 0;
  int ok = resp.status == 200;
  http_response_free(&resp);
  return ok;
}

/* Polls until ready (0), the process exited (-ECHILD) or the timeout. */
static int wait_ready(struct gwproc *g, const struct gwproc_options *o) {
  int64_t deadline = deadline_after(GWPROC_READY_TIMEOUT_MS * gwproc_timeout_scale());
  for (;;) {
    if (proc_wait(g->proc, 0) >= 0)
      return -ECHILD;
    if (probe(g, o)) {
      g->ready_at_ms = deadline_now_ms();
      return 0;
    }
    if (deadline_remaining_ms(deadline) == 0)
      return -ETIMEDOUT;
    deadline_pause_ms(GWPROC_POLL_INTERVAL_MS);
  }
}

static bool port_was_taken(struct gwproc *g) {
  char *log = proc_stderr_text(g->proc);
  bool taken = log && (strstr(log, "in use") || strstr(log, "EADDRINUSE"));
  free(log);
  return taken;
}

static int pick_ports(struct gwproc *g) {
  g->port = testnet_free_port();
  do
    g->admin_port = testnet_free_port();
  while (g->admin_port == g->port);
  return g->port < 0 ? g->port : g->admin_port < 0 ? g->admin_port : 0;
}

/* Spawns and waits; on failure reports, reaps and returns the cause. */
static int start_once(struct gwproc *g, const struct gwproc_options *o, bool *retry) {
  int rc = spawn(g, o);
  if (rc != 0) {
    fprintf(stderr, "gwproc: cannot run %s: %s\n", PG_BINARY, strerror(-rc));
    return rc;
  }
  if (o->no_wait)
    return 0;
  rc = wait_ready(g, o);
  if (rc == 0)
    return 0;
  int status = rc == -ECHILD ? proc_wait(g->proc, 0) : proc_kill(g->proc);
  *retry = rc == -ECHILD && port_was_taken(g);
  if (!*retry) {
    char buf[64];
    fprintf(stderr, "gwproc: the gateway %s (%s) on port %d\n",
            rc == -ECHILD ? "exited during startup" : "did not answer GET /healthz with 200 in time",
            proc_status_str(status, buf, sizeof buf), o->ready_on_admin ? g->admin_port : g->port);
    gwproc_print_log(g, "startup", 0);
  }
  proc_free(g->proc);
  g->proc = NULL;
  return rc;
}

int gwproc_start(const char *config, const struct gwproc_options *opts, struct gwproc **out) {
  static const struct gwproc_options defaults;
  const struct gwproc_options *o = opts ? opts : &defaults;
  struct gwproc *g = calloc(1, sizeof *g);
  if (!g)
    return -ENOMEM;
  int rc = write_config(config, g->config_path);
  if (rc != 0) {
    fprintf(stderr, "gwproc: cannot write the config file: %s\n", strerror(-rc));
    free(g);
    return rc;
  }
  bool retry = true;
  for (int i = 0; i < GWPROC_PORT_ATTEMPTS && retry; i++) {
    retry = false;
    rc = pick_ports(g);
    if (rc == 0)
      rc = start_once(g, o, &retry);
  }
  if (rc != 0) {
    unlink(g->config_path);
    free(g);
    return rc;
  }
  *out = g;
  return 0;
}

int gwproc_port(const struct gwproc *g) { return g->port; }

pid_t gwproc_pid(const struct gwproc *g) { return g->proc ? proc_pid(g->proc) : -1; }

char *gwproc_log(struct gwproc *g) {
  return g->proc ? proc_stderr_text(g->proc) : strdup("");
}

void gwproc_print_log(struct gwproc *g, const char *why, unsigned max_lines) {
  char *log = gwproc_log(g);
  if (!log)
    return;
  const char *start = log;
  unsigned lines = 0;
  for (const char *p = log + strlen(log); p > log && max_lines > 0; p--) {
    if (p[-1] == '\n' && p[0] != '\0' && ++lines == max_lines) {
      start = p;
      break;
    }
  }
  fprintf(stderr, "---- gateway log (%s%s) ----\n", why ? why : "",
          start != log ? ", last lines" : "");
  for (const char *line = start; *line;) {
    const char *nl = strchr(line, '\n');
    int len = nl ? (int)(nl - line) : (int)strlen(line);
    fprintf(stderr, "  gw| %.*s\n", len, line);
    line += len + (nl != NULL);
  }
  fprintf(stderr, "---- end of gateway log ----\n");
  free(log);
}

int gwproc_signal(struct gwproc *g, int sig) {
  return g->proc ? proc_signal(g->proc, sig) : -ESRCH;
}

int gwproc_wait(struct gwproc *g, int timeout_ms) {
  return g->proc ? proc_wait(g->proc, timeout_ms) : -ECHILD;
}

int gwproc_stop(struct gwproc *g, int timeout_ms) {
  if (!g->proc)
    return -ECHILD;
  int status = proc_wait(g->proc, 0);
  if (status >= 0)
    return status;
  proc_signal(g->proc, SIGTERM);
  return proc_wait(g->proc, timeout_ms);
}

int gwproc_kill(struct gwproc *g) {
  return g->proc ? proc_kill(g->proc) : -ECHILD;
}

bool gwproc_running(struct gwproc *g) {
  return g->proc && proc_wait(g->proc, 0) == -ETIMEDOUT;
}

void gwproc_free(struct gwproc *g) {
  if (!g)
    return;
  proc_free(g->proc);
  unlink(g->config_path);
  free(g);
}

/* ---- /proc ------------------------------------------------------------------ */

static int read_small_file(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "re");
  if (!f)
    return errno == ENOENT ? -ESRCH : -errno;
  size_t n = fread(buf, 1, cap - 1, f);
  fclose(f);
  buf[n] = '\0';
  return 0;
}

/* utime and stime (fields 14 and 15) of /proc/PID/stat, in ms. */
static int read_stat(pid_t pid, struct gwproc_usage *u) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int rc = read_small_file(path, buf, sizeof buf);
  if (rc != 0)
    return rc;
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  unsigned long long utime, stime;
  if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                   &utime, &stime) != 2)
    return -EPROTO;
  long hz = sysconf(_SC_CLK_TCK);
  if (hz <= 0)
    hz = 100;
  u->user_ms = utime * 1000 / (unsigned long long)hz;
  u->system_ms = stime * 1000 / (unsigned long long)hz;
  return 0;
}

static bool status_field(const char *text, const char *name, unsigned long long *value) {
  size_t n = strlen(name);
  for (const char *line = text; line && *line; line = strchr(line, '\n')) {
    if (*line == '\n')
      line++;
    if (strncmp(line, name, n) == 0 && line[n] == ':')
      return sscanf(line + n + 1, "%llu", value) == 1;
  }
  return false;
}

int gwproc_usage(const struct gwproc *g, struct gwproc_usage *u) {
  memset(u, 0, sizeof *u);
  pid_t pid = gwproc_pid(g);
  if (pid <= 0)
    return -ESRCH;
  int rc = read_stat(pid, u);
  if (rc != 0)
    return rc;
  char path[64], buf[8192];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  rc = read_small_file(path, buf, sizeof buf);
  if (rc != 0)
    return rc;
  unsigned long long rss, hwm, threads;
  if (!status_field(buf, "VmRSS", &rss) || !status_field(buf, "VmHWM", &hwm) ||
      !status_field(buf, "Threads", &threads))
    return -EPROTO; /* also a zombie, which has no memory lines */
  u->rss_kb = rss;
  u->hwm_kb = hwm;
  u->threads = (unsigned)threads;
  return 0;
}

/* ---- reload and log helpers ------------------------------------------------ */

int gwproc_rewrite_config(struct gwproc *g, const char *config) {
  char tmp[PATH_MAX + 16];
  int n = snprintf(tmp, sizeof tmp, "%s.new-XXXXXX", g->config_path);
  if (n < 0 || (size_t)n >= sizeof tmp)
    return -ENAMETOOLONG;
  int fd = mkstemp(tmp);
  if (fd < 0)
    return -errno;
  size_t len = strlen(config);
  int rc = 0;
  for (size_t off = 0; off < len && rc == 0;) {
    ssize_t w = write(fd, config + off, len - off);
    if (w > 0)
      off += (size_t)w;
    else if (errno != EINTR)
      rc = -errno;
  }
  if (rc == 0 && fsync(fd) != 0)
    rc = -errno;
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc == 0 && rename(tmp, g->config_path) != 0)
    rc = -errno;
  if (rc != 0)
    unlink(tmp);
  return rc;
}

int gwproc_log_count(struct gwproc *g, const char *needle) {
  char *log = gwproc_log(g);
  if (!log || !*needle) {
    free(log);
    return 0;
  }
  int count = 0;
  size_t step = strlen(needle);
  for (const char *p = strstr(log, needle); p; p = strstr(p + step, needle))
    count++;
  free(log);
  return count;
}

int gwproc_wait_log(struct gwproc *g, const char *needle, int min_count, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  for (;;) {
    bool exited = !gwproc_running(g);
    if (gwproc_log_count(g, needle) >= min_count)
      return 0;
    if (exited)
      return -ECHILD;
    if (deadline_remaining_ms(deadline) == 0)
      return -ETIMEDOUT;
    deadline_pause_ms(GWPROC_POLL_INTERVAL_MS);
  }
}

struct gwcli_result gwcli_run(int timeout_ms, const char *first, ...)
{
  const char *argv[33] = {PG_BINARY};
  int n = 1;
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a && n < 32; a = va_arg(ap, const char *))
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  struct gwcli_result r = {0};
  struct proc *p;
  int rc = proc_spawn(argv, NULL, &p);
  if (rc < 0) {
    r.status = rc;
    return r;
  }
  r.status = proc_read_all(p, timeout_ms, &r.out, &r.err);
  proc_free(p);
  return r;
}

void gwcli_result_free(struct gwcli_result *r)
{
  free(r->out);
  free(r->err);
  r->out = r->err = NULL;
}
