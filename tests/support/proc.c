/* proc: child processes for tests. See proc.h for the contract. */
#include "support/proc.h"
#include "support/deadline.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PROC_RUNNING (-1)
#define PROC_KILL_WAIT_MS 30000
#define PROC_CLOSE_RANGE_CLOEXEC 4u /* linux/close_range.h */

/* Bytes read from a pipe and not yet handed to the test. */
struct proc_buf {
  char *data;
  size_t len;
  size_t cap;
};

struct proc {
  pid_t pid;
  int pidfd;           /* becomes readable when the child exits; -1 if none */
  int status;          /* PROC_RUNNING until reaped */
  int in_fd;           /* write end of the stdin pipe, or -1 */
  int out_fd;          /* read end of the stdout pipe, -1 if none or at EOF */
  bool out_pipe;       /* stdout is (or was, before EOF) a pipe */
  int err_fd;          /* read end of the stderr pipe, -1 if none or at EOF */
  int out_file;        /* stdout capture file, or -1 */
  int err_file;        /* stderr capture file, or -1 */
  struct proc_buf out; /* stdout read from the pipe, not yet consumed */
  struct proc_buf err; /* stderr read from the pipe */
  struct proc *next;   /* registry link */
};

/* Every child spawned and not yet freed, killed at exit (see proc.h). */
static struct proc *proc_registry;
static bool proc_atexit_installed;

/* ---- small helpers ---------------------------------------------------- */

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static int buf_append(struct proc_buf *b, const char *data, size_t len) {
  if (b->len + len + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + len + 1)
      cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown)
      return -ENOMEM;
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 0;
}

static void buf_consume(struct proc_buf *b, size_t n) {
  if (n == 0)
    return;
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  if (b->data)
    b->data[b->len] = '\0';
}

/* Heap copy of the buffer's text, "" when empty. */
static char *buf_strdup(const struct proc_buf *b) {
  char *s = malloc(b->len + 1);
  if (s) {
    if (b->len)
      memcpy(s, b->data, b->len);
    s[b->len] = '\0';
  }
  return s;
}

/* Whole content of a capture file, read without moving its offset (the
 * child shares that offset). */
static char *file_text(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return strdup("");
  size_t size = (size_t)st.st_size;
  char *s = malloc(size + 1);
  if (!s)
    return NULL;
  size_t got = 0;
  while (got < size) {
    ssize_t n = pread(fd, s + got, size - got, (off_t)got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  s[got] = '\0';
  return s;
}

static int decode_status(int wstatus) {
  if (WIFEXITED(wstatus))
    return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus))
    return PROC_SIGNALED(WTERMSIG(wstatus));
  return PROC_SIGNALED(0);
}

/* ---- registry --------------------------------------------------------- */

static void registry_remove(struct proc *p) {
  for (struct proc **link = &proc_registry; *link; link = &(*link)->next) {
    if (*link == p) {
      *link = p->next;
      return;
    }
  }
}

static void reap_blocking(struct proc *p) {
  int wstatus;
  while (waitpid(p->pid, &wstatus, 0) < 0) {
    if (errno != EINTR) {
      p->status = PROC_SIGNALED(0);
      return;
    }
  }
  p->status = decode_status(wstatus);
}

void proc_kill_all(void) {
  for (struct proc *p = proc_registry; p; p = p->next) {
    if (p->status != PROC_RUNNING)
      continue;
    kill(-p->pid, SIGKILL);
    kill(p->pid, SIGKILL);
    reap_blocking(p);
  }
}

/* ---- spawning --------------------------------------------------------- */

/* The environment for the child: environ with `extra` added or replacing
 * variables of the same name. The strings are borrowed. */
static char **build_env(const char *const *extra) {
  size_t n_env = 0, n_extra = 0;
  while (environ && environ[n_env])
    n_env++;
  while (extra && extra[n_extra])
    n_extra++;
  char **env = calloc(n_env + n_extra + 1, sizeof *env);
  if (!env)
    return NULL;
  size_t n = 0;
  for (size_t i = 0; i < n_env; i++) {
    size_t name_len = strcspn(environ[i], "=");
    bool replaced = false;
    for (size_t j = 0; j < n_extra && !replaced; j++)
      replaced = strncmp(extra[j], environ[i], name_len) == 0 && extra[j][name_len] == '=';
    if (!replaced)
      env[n++] = environ[i];
  }
  for (size_t j = 0; j < n_extra; j++)
    env[n++] = (char *)extra[j];
  return env;
}

/* Finds `file` in the PATH of `env` (or a default PATH). Writes the path
 * into out (PATH_MAX bytes). 0 or -ENOENT/-EACCES. */
static int resolve_program(const char *file, char *const *env, char *out) {
  if (strchr(file, '/')) {
    snprintf(out, PATH_MAX, "%s", file);
    return 0;
  }
  const char *path = "/usr/local/bin:/usr/bin:/bin";
  for (size_t i = 0; env[i]; i++)
    if (strncmp(env[i], "PATH=", 5) == 0)
      path = env[i] + 5;
  int err = -ENOENT;
  while (*path) {
    size_t len = strcspn(path, ":");
    int n = snprintf(out, PATH_MAX, "%.*s/%s", (int)len, len ? path : ".", file);
    struct stat st;
    if (n > 0 && n < PATH_MAX && stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
      if (access(out, X_OK) == 0)
        return 0;
      err = -EACCES;
    }
    path += len + (path[len] == ':');
  }
  return err;
}

/* Descriptors the child gets as 0, 1 and 2 (-1: inherit), and the parent's
 * ends, set up before fork. */
struct proc_plumbing {
  int child[3];
  int parent_in, parent_out, parent_err; /* pipe ends kept by the parent */
  int out_file, err_file;                /* capture files */
};

static int open_capture_file(void) {
  int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0)
    return fd;
  char name[] = "/tmp/pg-proc-XXXXXX";
  fd = mkostemp(name, O_CLOEXEC);
  if (fd < 0)
    return -errno;
  unlink(name);
  return fd;
}

/* Sets up one stream. `is_input` for stdin. The child's end goes to
 * pl->child[slot], the parent's to *parent_end or *file. */
static int plumb(enum proc_stdio mode, bool is_input, int slot,
                 struct proc_plumbing *pl, int *parent_end, int *file) {
  int fds[2];
  switch (mode) {
  case PROC_STDIO_INHERIT:
    return 0;
  case PROC_STDIO_NULL:
    pl->child[slot] = open("/dev/null", (is_input ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
    return pl->child[slot] < 0 ? -errno : 0;
  case PROC_STDIO_PIPE:
    if (pipe2(fds, O_CLOEXEC) != 0)
      return -errno;
    pl->child[slot] = is_input ? fds[0] : fds[1];
    *parent_end = is_input ? fds[1] : fds[0];
    return 0;
  case PROC_STDIO_CAPTURE:
    if (is_input)
      return -EINVAL;
    *file = open_capture_file();
    if (*file < 0)
      return *file;
    pl->child[slot] = fcntl(*file, F_DUPFD_CLOEXEC, 0);
    return pl->child[slot] < 0 ? -errno : 0;
  default:
    return -EINVAL;
  }
}

static void plumbing_close_child_ends(struct proc_plumbing *pl) {
  for (int i = 0; i < 3; i++)
    close_fd(&pl->child[i]);
}

static void plumbing_close_all(struct proc_plumbing *pl) {
  plumbing_close_child_ends(pl);
  close_fd(&pl->parent_in);
  close_fd(&pl->parent_out);
  close_fd(&pl->parent_err);
  close_fd(&pl->out_file);
  close_fd(&pl->err_file);
}

static int plumbing_setup(const struct proc_options *o, struct proc_plumbing *pl) {
  *pl = (struct proc_plumbing){{-1, -1, -1}, -1, -1, -1, -1, -1};
  enum proc_stdio in = o->stdin_mode ? o->stdin_mode : PROC_STDIO_NULL;
  enum proc_stdio out = o->stdout_mode ? o->stdout_mode : PROC_STDIO_PIPE;
  enum proc_stdio err = o->stderr_mode ? o->stderr_mode : PROC_STDIO_CAPTURE;
  int dummy = -1;
  int rc = plumb(in, true, 0, pl, &pl->parent_in, &dummy);
  if (rc == 0)
    rc = plumb(out, false, 1, pl, &pl->parent_out, &pl->out_file);
  if (rc == 0)
    rc = plumb(err, false, 2, pl, &pl->parent_err, &pl->err_file);
  if (rc != 0)
    plumbing_close_all(pl);
  return rc;
}

/* Marks every descriptor from 3 up close-on-exec (the exec-error pipe must
 * stay usable until exec). Async-signal-safe. */
static void child_cloexec_from_3(void) {
  if (syscall(SYS_close_range, 3u, ~0u, PROC_CLOSE_RANGE_CLOEXEC) == 0)
    return;
  struct rlimit rl;
  long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (long)rl.rlim_cur : 65536;
  for (long fd = 3; fd < max; fd++)
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
}

/* Runs in the child between fork and exec: async-signal-safe calls only. */
static void child_exec(const char *path, char *const argv[], char *const env[],
                       const char *cwd, const int child_fds[3], pid_t parent,
                       int err_pipe) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      sigaction(sig, &dfl, NULL);
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(127);
  for (int i = 0; i < 3; i++)
    if (child_fds[i] >= 0 && dup2(child_fds[i], i) < 0)
      goto fail;
  child_cloexec_from_3();
  if (cwd && chdir(cwd) != 0)
    goto fail;
  execve(path, argv, env);
fail:;
  int err = errno;
  ssize_t ignored = write(err_pipe, &err, sizeof err);
  (void)ignored;
  _exit(127);
}

/* Reads the exec error reported by the child, if any: 0 when exec worked. */
static int read_exec_error(int fd) {
  int err = 0;
  ssize_t n;
  do
    n = read(fd, &err, sizeof err);
  while (n < 0 && errno == EINTR);
  return n == (ssize_t)sizeof err ? -err : 0;
}

static void install_process_handlers(void) {
  if (proc_atexit_installed)
    return;
  proc_atexit_installed = true;
  signal(SIGPIPE, SIG_IGN);
  atexit(proc_kill_all);
}

static struct proc *proc_new(pid_t pid, struct proc_plumbing *pl) {
  struct proc *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  p->pid = pid;
  p->status = PROC_RUNNING;
  p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (p->pidfd >= 0)
    fcntl(p->pidfd, F_SETFD, FD_CLOEXEC);
  p->in_fd = pl->parent_in;
  p->out_fd = pl->parent_out;
  p->out_pipe = pl->parent_out >= 0;
  p->err_fd = pl->parent_err;
  p->out_file = pl->out_file;
  p->err_file = pl->err_file;
  return p;
}

static int fork_exec(const char *path, char *const argv[], char **env,
                     const struct proc_options *o, struct proc_plumbing *pl,
                     pid_t *out_pid) {
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0)
    return -errno;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0)
    child_exec(path, argv, env, o->cwd, pl->child, parent, err_pipe[1]);
  int rc = pid < 0 ? -errno : 0;
  close(err_pipe[1]);
  if (rc == 0) {
    setpgid(pid, pid); /* also done by the child; whichever runs first */
    rc = read_exec_error(err_pipe[0]);
    if (rc != 0)
      waitpid(pid, NULL, 0);
  }
  close(err_pipe[0]);
  *out_pid = pid;
  return rc;
}

int proc_spawn(const char *const argv[], const struct proc_options *opts,
               struct proc **out) {
  static const struct proc_options defaults;
  const struct proc_options *o = opts ? opts : &defaults;
  if (!argv || !argv[0])
    return -EINVAL;
  install_process_handlers();
  char **env = build_env(o->env);
  if (!env)
    return -ENOMEM;
  char path[PATH_MAX];
  int rc = resolve_program(argv[0], env, path);
  struct proc_plumbing pl;
  if (rc == 0)
    rc = plumbing_setup(o, &pl);
  if (rc != 0) {
    free(env);
    return rc;
  }
  pid_t pid = -1;
  rc = fork_exec(path, (char *const *)argv, env, o, &pl, &pid);
  free(env);
  plumbing_close_child_ends(&pl);
  struct proc *p = rc == 0 ? proc_new(pid, &pl) : NULL;
  if (!p) {
    if (rc == 0) {
      kill(-pid, SIGKILL);
      waitpid(pid, NULL, 0);
      rc = -ENOMEM;
    }
    plumbing_close_all(&pl);
    return rc;
  }
  p->next = proc_registry;
  proc_registry = p;
  *out = p;
  return 0;
}

pid_t proc_pid(const struct proc *p) {
  return p->pid;
}

/* ---- the pump: reading pipes and noticing the exit ---------------------- */

/* Reads once from a pipe into b; closes the pipe at EOF or error. */
static void pipe_read_once(int *fd, struct proc_buf *b) {
  char chunk[16384];
  ssize_t n = read(*fd, chunk, sizeof chunk);
  if (n > 0) {
    if (buf_append(b, chunk, (size_t)n) != 0)
      close_fd(fd);
    return;
  }
  if (n == 0 || (errno != EINTR && errno != EAGAIN))
    close_fd(fd);
}

/* Reads whatever the pipe holds right now, without waiting. */
static void pipe_drain_now(int *fd, struct proc_buf *b) {
  while (*fd >= 0) {
    struct pollfd pfd = {.fd = *fd, .events = POLLIN};
    if (poll(&pfd, 1, 0) <= 0)
      return;
    pipe_read_once(fd, b);
  }
}

static void try_reap(struct proc *p) {
  int wstatus;
  pid_t r;
  do
    r = waitpid(p->pid, &wstatus, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == p->pid)
    p->status = decode_status(wstatus);
  else if (r < 0)
    p->status = PROC_SIGNALED(0); /* reaped by someone else */
  if (p->status != PROC_RUNNING)
    close_fd(&p->pidfd);
}

enum pump_goal { PUMP_LINE, PUMP_EXIT };

static bool pump_done(const struct proc *p, enum pump_goal goal) {
  if (goal == PUMP_LINE)
    return p->out_fd < 0 || (p->out.len && memchr(p->out.data, '\n', p->out.len));
  return p->status != PROC_RUNNING;
}

/* Reads the pipes and watches for the exit until `goal` is reached or the
 * deadline passes (-ETIMEDOUT). */
static int pump(struct proc *p, enum pump_goal goal, int64_t deadline) {
  while (!pump_done(p, goal)) {
    struct pollfd pfds[3];
    int n = 0, i_out = -1, i_err = -1, i_pid = -1;
    if (p->out_fd >= 0)
      i_out = n, pfds[n++] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
    if (p->err_fd >= 0)
      i_err = n, pfds[n++] = (struct pollfd){.fd = p->err_fd, .events = POLLIN};
    if (p->status == PROC_RUNNING && p->pidfd >= 0)
      i_pid = n, pfds[n++] = (struct pollfd){.fd = p->pidfd, .events = POLLIN};
    int timeout = deadline_remaining_ms(deadline);
    if (p->status == PROC_RUNNING && p->pidfd < 0 && (timeout < 0 || timeout > 10))
      timeout = 10; /* no pidfd: look at waitpid now and then */
    int ready = poll(pfds, (nfds_t)n, timeout);
    if (ready < 0 && errno != EINTR)
      return -errno;
    if (ready > 0 && i_out >= 0 && pfds[i_out].revents)
      pipe_read_once(&p->out_fd, &p->out);
    if (ready > 0 && i_err >= 0 && pfds[i_err].revents)
      pipe_read_once(&p->err_fd, &p->err);
    if (p->status == PROC_RUNNING && (p->pidfd < 0 || (i_pid >= 0 && pfds[i_pid].revents)))
      try_reap(p);
    if (!pump_done(p, goal) && deadline_remaining_ms(deadline) == 0)
      return -ETIMEDOUT;
  }
  return 0;
}

/* ---- public operations ------------------------------------------------- */

int proc_read_line(struct proc *p, char *buf, size_t cap, int timeout_ms) {
  if (!p->out_pipe)
    return -EBADF;
  if (p->out_fd < 0 && p->out.len == 0)
    return -ENODATA;
  int rc = pump(p, PUMP_LINE, deadline_after(timeout_ms));
  if (rc != 0)
    return rc;
  if (p->out.len == 0)
    return -ENODATA;
  char *nl = memchr(p->out.data, '\n', p->out.len);
  size_t len = nl ? (size_t)(nl - p->out.data) : p->out.len;
  size_t consumed = nl ? len + 1 : len;
  if (len + 1 > cap) {
    buf_consume(&p->out, consumed);
    return -EMSGSIZE;
  }
  memcpy(buf, p->out.data, len);
  buf[len] = '\0';
  buf_consume(&p->out, consumed);
  return len > INT_MAX ? INT_MAX : (int)len;
}

int proc_write_stdin(struct proc *p, const void *buf, size_t len) {
  const char *at = buf;
  if (p->in_fd < 0)
    return -EBADF;
  while (len > 0) {
    ssize_t n = write(p->in_fd, at, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    at += n;
    len -= (size_t)n;
  }
  return 0;
}

void proc_close_stdin(struct proc *p) {
  close_fd(&p->in_fd);
}

int proc_wait(struct proc *p, int timeout_ms) {
  int rc = pump(p, PUMP_EXIT, deadline_after(timeout_ms));
  return rc != 0 ? rc : p->status;
}

int proc_read_all(struct proc *p, int timeout_ms, char **out, char **err) {
  int rc = proc_wait(p, timeout_ms);
  if (rc < 0)
    return rc;
  pipe_drain_now(&p->out_fd, &p->out);
  char *out_text = p->out_file >= 0 ? file_text(p->out_file) : buf_strdup(&p->out);
  char *err_text = proc_stderr_text(p);
  if (!out_text || !err_text) {
    free(out_text);
    free(err_text);
    return -ENOMEM;
  }
  if (p->out_file < 0)
    buf_consume(&p->out, p->out.len);
  if (out)
    *out = out_text;
  else
    free(out_text);
  if (err)
    *err = err_text;
  else
    free(err_text);
  return rc;
}

char *proc_stderr_text(struct proc *p) {
  if (p->err_file >= 0)
    return file_text(p->err_file);
  pipe_drain_now(&p->err_fd, &p->err);
  return buf_strdup(&p->err);
}

int proc_signal(struct proc *p, int sig) {
  if (p->status != PROC_RUNNING)
    return -ESRCH;
  return kill(p->pid, sig) == 0 ? 0 : -errno;
}

int proc_stop(struct proc *p, int sig, int grace_ms) {
  if (p->status != PROC_RUNNING)
    return p->status;
  proc_signal(p, sig);
  int rc = proc_wait(p, grace_ms);
  return rc == -ETIMEDOUT ? proc_kill(p) : rc;
}

int proc_kill(struct proc *p) {
  if (p->status != PROC_RUNNING)
    return p->status;
  kill(-p->pid, SIGKILL);
  kill(p->pid, SIGKILL);
  int rc = proc_wait(p, PROC_KILL_WAIT_MS);
  if (rc < 0) {
    reap_blocking(p);
    rc = p->status;
  }
  return rc;
}

void proc_free(struct proc *p) {
  if (!p)
    return;
  proc_kill(p);
  registry_remove(p);
  close_fd(&p->pidfd);
  close_fd(&p->in_fd);
  close_fd(&p->out_fd);
  close_fd(&p->err_fd);
  close_fd(&p->out_file);
  close_fd(&p->err_file);
  free(p->out.data);
  free(p->err.data);
  free(p);
}

const char *proc_status_str(int status, char *buf, size_t cap) {
  if (status == -ETIMEDOUT)
    snprintf(buf, cap, "timed out");
  else if (status < 0)
    snprintf(buf, cap, "error: %s", strerror(-status));
  else if (status >= PROC_SIGNALED(0))
    snprintf(buf, cap, "signal %d (%s)", status - 256, strsignal(status - 256));
  else
    snprintf(buf, cap, "exit %d", status);
  return buf;
}
