/* proc: child processes for tests.
 *
 * Spawns a program with its own stdin/stdout/stderr plumbing, reads its
 * output with timeouts (poll-based, never a sleep), waits for it, signals it
 * and kills it.
 *
 * Ownership:
 *
 *   test ──owns──▶ struct proc ──owns──▶ pipe ends, capture file, buffers
 *                     ▲
 *   registry (this module) ──lists── every struct proc not yet freed
 *
 * proc_spawn() returns a struct proc that the caller owns until proc_free().
 * Until then the process is also listed in a registry of this module: at
 * exit, an atexit handler SIGKILLs and reaps every child still listed, so a
 * test that fails (cmocka longjmps out of it) leaves neither zombies nor
 * orphans. Each child also runs with PR_SET_PDEATHSIG(SIGKILL) (it dies
 * with the thread that spawned it, even if the test process crashes) and in
 * a process group of its own, which proc_kill() kills whole.
 *
 * Threads: not thread-safe. Spawn and manage children from one thread, the
 * test's main thread: PR_SET_PDEATHSIG fires when the spawning *thread*
 * exits. Spawning is safe while other threads run (nothing but async-signal-
 * safe calls happen between fork and exec).
 *
 * Side effect: the first proc_spawn() sets SIGPIPE to SIG_IGN in the test
 * process (writing to a dead child's stdin must fail with EPIPE, not kill
 * the test). Children start with default signal dispositions and an empty
 * signal mask, and inherit no descriptor but 0, 1 and 2.
 *
 * Errors: functions returning int give 0 (or a count/status, as documented)
 * on success and a negative errno on failure; -ETIMEDOUT when a timeout
 * expired. Timeouts are in milliseconds; a negative timeout waits forever.
 */
#ifndef PG_TESTS_SUPPORT_PROC_H
#define PG_TESTS_SUPPORT_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* Exit statuses as returned by proc_wait() and friends: 0..255 for a normal
 * exit with that code, PROC_SIGNALED(sig) for death by signal `sig`. */
#define PROC_SIGNALED(sig) (256 + (sig))

/* How one of the child's standard streams is connected. */
enum proc_stdio {
  PROC_STDIO_DEFAULT = 0, /* stdin: NULL, stdout: PIPE, stderr: CAPTURE */
  PROC_STDIO_NULL,        /* /dev/null */
  PROC_STDIO_PIPE,        /* a pipe to the test (see proc_read_line etc.) */
  PROC_STDIO_CAPTURE,     /* stdout/stderr only: an unlinked temporary file.
                             Never fills up, so the child never blocks on it
                             however much it writes and however long the
                             test leaves it unread. */
  PROC_STDIO_INHERIT,     /* the test process's own descriptor */
};

struct proc_options {
  /* "NAME=value" strings added to (or replacing in) the test's environment,
   * terminated by NULL. NULL: the environment unchanged. Borrowed for the
   * duration of proc_spawn() only. */
  const char *const *env;
  const char *cwd;              /* working directory; NULL: the test's */
  enum proc_stdio stdin_mode;   /* NULL (default) or PIPE */
  enum proc_stdio stdout_mode;  /* PIPE (default), CAPTURE, NULL or INHERIT */
  enum proc_stdio stderr_mode;  /* CAPTURE (default), PIPE, NULL or INHERIT */
};

struct proc;

/* Starts argv[0] with arguments argv (NULL-terminated). argv[0] without a
 * slash is searched in PATH (the PATH given in opts->env if any). opts may
 * be NULL for all defaults. On success stores the new process in *out and
 * returns 0. Fails with -ENOENT/-EACCES/... when the program cannot be
 * executed (the exec error of the child is reported here, not as an exit
 * status), -EINVAL for an unsupported stdio mode. */
int proc_spawn(const char *const argv[], const struct proc_options *opts,
               struct proc **out);

/* The child's pid (still valid, as a number, after it was reaped). */
pid_t proc_pid(const struct proc *p);

/* Reads one line from the child's stdout (PIPE mode), waiting up to
 * timeout_ms for it. Stores it without its '\n', NUL-terminated, in buf
 * (cap bytes) and returns its length. A last line without '\n' at
 * end-of-file counts as a line. Returns -ENODATA at end-of-file, -EMSGSIZE
 * if the line does not fit in cap-1 bytes (the line is consumed),
 * -ETIMEDOUT, -EBADF if stdout is not a pipe. */
int proc_read_line(struct proc *p, char *buf, size_t cap, int timeout_ms);

/* Writes all of buf to the child's stdin (PIPE mode). 0, -EPIPE if the
 * child closed its stdin, -EBADF if stdin is not a pipe (or was closed).
 * May block while the child does not read. */
int proc_write_stdin(struct proc *p, const void *buf, size_t len);

/* Closes the write end of the child's stdin pipe (the child sees EOF). */
void proc_close_stdin(struct proc *p);

/* Waits up to timeout_ms for the child to exit and reaps it. Returns its
 * exit status (see PROC_SIGNALED) or -ETIMEDOUT. Output arriving on PIPE
 * streams meanwhile is buffered, so a chatty child cannot block on a full
 * pipe while the test waits. Once reaped, returns the same status again. */
int proc_wait(struct proc *p, int timeout_ms);

/* Reads everything the child writes until it exits (at most timeout_ms)
 * and returns its exit status, or -ETIMEDOUT (the child keeps running).
 * If out is not NULL, *out receives the stdout text not yet consumed by
 * proc_read_line (PIPE or CAPTURE; "" otherwise); if err is not NULL, *err
 * receives all stderr text (PIPE or CAPTURE). Both are NUL-terminated,
 * heap-allocated, and the caller frees them; they are set only on success.
 * Output written after the exit by grandchildren that kept the pipes open
 * is not waited for. */
int proc_read_all(struct proc *p, int timeout_ms, char **out, char **err);

/* Everything the child wrote to stderr so far (CAPTURE, or PIPE: whatever
 * has arrived, read without waiting), NUL-terminated and heap-allocated:
 * the caller frees it. Meant for failure messages; returns NULL only when
 * out of memory. For NULL/INHERIT modes returns "". */
char *proc_stderr_text(struct proc *p);

/* Sends `sig` to the child process itself (not its group). 0, or -ESRCH
 * once the child has been reaped. */
int proc_signal(struct proc *p, int sig);

/* Sends `sig`, waits up to grace_ms for the exit, then SIGKILLs the
 * child's process group. Returns the exit status. */
int proc_stop(struct proc *p, int sig, int grace_ms);

/* SIGKILLs the child's whole process group at once and reaps the child.
 * Returns its exit status (PROC_SIGNALED(SIGKILL) unless it had already
 * exited). */
int proc_kill(struct proc *p);

/* Kills (as proc_kill) the child if it still runs, closes everything and
 * frees p. NULL is ignored. */
void proc_free(struct proc *p);

/* SIGKILLs and reaps every child not yet freed (what the atexit handler
 * does), without freeing them: their struct proc stay valid, with their
 * status, until proc_free(). For a cmocka teardown, so that a test that
 * failed halfway leaves no service running into the next test. */
void proc_kill_all(void);

/* Writes a readable form of an exit status ("exit 3", "signal 9 (Killed)",
 * "timed out", ...) to buf and returns buf. */
const char *proc_status_str(int status, char *buf, size_t cap);

#endif
