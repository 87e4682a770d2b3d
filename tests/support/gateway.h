/* gwproc: the built patterngate binary as a child process of a test.
 *
 * gwproc_start() writes a config text to a temporary file, runs
 * `PG_BINARY -c FILE` through proc.h (stderr captured: the JSON log lines,
 * kept for failure messages), and waits until it serves by polling
 * `GET /healthz` until it answers 200 (never a sleep as synchronization).
 *
 * Ports: the config names its ports through SPEC.md's environment
 * substitution. gwproc_start() picks free ports of 127.0.0.1 and passes
 * them to the gateway as GW_PORT (for "listen") and GW_ADMIN_PORT (for
 * "admin_listen", when wanted), e.g.
 *
 *     "listen": "127.0.0.1:${GW_PORT}"
 *
 * If the gateway exits during startup while a port was taken meanwhile by
 * someone else (its log says "in use"), it is started again with new ports.
 *
 * Ownership: the test owns the struct gwproc from gwproc_start() until
 * gwproc_free(), which kills the process if it still runs and removes the
 * config file. The running process is listed in proc.h's registry, so a
 * failed test leaves no gateway behind (proc_kill_all, atexit). Strings in
 * the options are borrowed for the duration of gwproc_start() only.
 *
 * Threads: like proc.h, start, signal, wait and free from the test's main
 * thread. gwproc_port() and gwproc_usage() may be called from any thread.
 *
 * Errors: 0 (or a status, as documented) or a negative errno. Every failure
 * of gwproc_start() also prints why to stderr, with the gateway's log.
 * Timeouts are in milliseconds.
 */
#ifndef PG_TESTS_SUPPORT_GATEWAY_H
#define PG_TESTS_SUPPORT_GATEWAY_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "support/proc.h"

/* How long gwproc_start() waits for /healthz: CI machines are slow. */
#define GWPROC_READY_TIMEOUT_MS 30000
/* How long gwproc_stop() waits for the exit after SIGTERM. */
#define GWPROC_STOP_TIMEOUT_MS 30000

/* Debugging and valgrind runs (scripts/valgrind-smoke), off by default:
 *   PG_GATEWAY_WRAPPER  words (split at spaces) run in front of the binary,
 *                       e.g. "valgrind --error-exitcode=99"; the process
 *                       (gwproc_pid) is then the wrapper's.
 *   PG_TIMEOUT_SCALE    an integer 1..1000 (default 1) that multiplies the
 *                       readiness wait and probe timeout; tests may scale
 *                       their own timeouts by gwproc_timeout_scale(). */
int gwproc_timeout_scale(void);

struct gwproc_options {
  /* "NAME=value" strings added to the gateway's environment (on top of
   * GW_PORT and GW_ADMIN_PORT), NULL-terminated; NULL for none. */
  const char *const *env;
  /* Poll /healthz on GW_ADMIN_PORT instead of GW_PORT (for configs with
   * "admin_listen": "127.0.0.1:${GW_ADMIN_PORT}"). */
  bool ready_on_admin;
  /* Extra header lines ("Name: value") sent with the readiness probe,
   * NULL-terminated; NULL for none. */
  const char *const *ready_headers;
  /* Do not wait for readiness (a test of startup failures): gwproc_start
   * returns as soon as the process runs. */
  bool no_wait;
  /* Extra command-line arguments after `-c FILE`, NULL-terminated. */
  const char *const *args;
};

struct gwproc {
  struct proc *proc;          /* the running gateway; NULL once reaped by gwproc_free */
  int port;                   /* GW_PORT: where "listen" should be */
  int admin_port;             /* GW_ADMIN_PORT */
  char config_path[PATH_MAX]; /* the temporary config file */
  int64_t started_at_ms;      /* deadline_now_ms() at spawn */
  int64_t ready_at_ms;        /* ... when /healthz first answered 200 */
};

/* Writes `config` to a temporary file and starts the gateway on it, then
 * waits up to GWPROC_READY_TIMEOUT_MS for GET /healthz to answer 200.
 * opts may be NULL. On success *out is the running gateway and 0 is
 * returned; on failure the process is killed and reaped, the cause and its
 * log are printed, and a negative errno is returned: -ECHILD if it exited
 * (its status printed), -ETIMEDOUT if it never answered. */
int gwproc_start(const char *config, const struct gwproc_options *opts, struct gwproc **out);

int gwproc_port(const struct gwproc *g);
pid_t gwproc_pid(const struct gwproc *g);

/* Everything the gateway wrote to stderr so far (its JSON log lines): a heap
 * string the caller frees. */
char *gwproc_log(struct gwproc *g);

/* Prints the gateway's log to the test's stderr, each line prefixed, the
 * last max_lines only (0: all); for failure messages. */
void gwproc_print_log(struct gwproc *g, const char *why, unsigned max_lines);

/* Sends `sig` to the gateway. 0 or -ESRCH once it was reaped. */
int gwproc_signal(struct gwproc *g, int sig);

/* Waits up to timeout_ms for the gateway to exit. Its exit status (see
 * PROC_SIGNALED) or -ETIMEDOUT (it still runs). */
int gwproc_wait(struct gwproc *g, int timeout_ms);

/* SIGTERM, then waits up to timeout_ms for the exit. Returns the exit
 * status; -ETIMEDOUT if it did not exit (it then still runs: kill it). */
int gwproc_stop(struct gwproc *g, int timeout_ms);

/* SIGKILLs the gateway and reaps it. Returns its exit status. */
int gwproc_kill(struct gwproc *g);

/* Whether the process still runs (not exited, or exited but not yet
 * noticed: a zombie counts as exited). */
bool gwproc_running(struct gwproc *g);

/* Kills the gateway if it still runs, removes the config file and frees g.
 * NULL is ignored. */
void gwproc_free(struct gwproc *g);

/* CPU time and memory of a running gateway, from /proc/PID/stat and
 * /proc/PID/status. */
struct gwproc_usage {
  uint64_t user_ms;     /* utime */
  uint64_t system_ms;   /* stime */
  uint64_t rss_kb;      /* VmRSS */
  uint64_t hwm_kb;      /* VmHWM: the peak RSS */
  unsigned threads;     /* Threads */
};

/* Fills *u. 0, -ESRCH if the process is gone, -EPROTO if /proc's format
 * was not understood. */
int gwproc_usage(const struct gwproc *g, struct gwproc_usage *u);

/* ---- reload and log helpers ---------------------------------------------- */

/* Replaces the gateway's config file with `config` the way a deploy tool
 * does: writes a new file next to it and rename(2)s it over config_path
 * (so the path now names a new inode). Sends no signal. 0 or a negative
 * errno. */
int gwproc_rewrite_config(struct gwproc *g, const char *config);

/* How many times `needle` occurs in the gateway's log so far (0 when out of
 * memory). */
int gwproc_log_count(struct gwproc *g, const char *needle);

/* Polls the log until `needle` occurs at least min_count times: 0, or
 * -ETIMEDOUT after timeout_ms, or -ECHILD if the gateway exited without
 * having written it. Never a sleep as synchronization: it polls. */
int gwproc_wait_log(struct gwproc *g, const char *needle, int min_count, int timeout_ms);

/* ---- the command line ------------------------------------------------------- */

/* What `patterngate <args...>` did: its exit status (see proc.h), or a
 * negative errno when it could not be run; its whole stdout and stderr
 * (heap strings, never NULL when status >= 0). */
struct gwcli_result {
  int status;
  char *out;
  char *err;
};

/* Runs the built binary with the arguments (NULL-terminated, at most 31)
 * to completion, waiting up to timeout_ms. */
struct gwcli_result gwcli_run(int timeout_ms, const char *first, ...);
void gwcli_result_free(struct gwcli_result *r);

#endif
