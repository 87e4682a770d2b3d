/* Smoke test of the integration-test harness (tests/support): child
 * processes (proc), the scripted raw upstream and frame helpers (testnet),
 * and the real NestJS services of both versions (nest). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/certs.h"
#include "support/nest.h"
#include "support/net.h"
#include "support/proc.h"

#define WAIT_MS 10000

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Every child of this process has been reaped: nothing left behind. */
static void assert_no_children(void) {
  errno = 0;
  assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
}

/* After each test: whatever a failed test left running is killed, so that
 * it cannot fail the next one. */
static int kill_leftovers(void **state) {
  (void)state;
  proc_kill_all();
  return 0;
}

static struct proc *spawn_sh(const char *script, const struct proc_options *opts) {
  const char *argv[] = {"/bin/sh", "-c", script, NULL};
  struct proc *p = NULL;
  assert_int_equal(proc_spawn(argv, opts, &p), 0);
  assert_non_null(p);
  return p;
}

/* ---- proc ------------------------------------------------------------- */

static void test_proc_exit_codes(void **state) {
  (void)state;
  struct proc *p = spawn_sh("exit 0", NULL);
  assert_int_equal(proc_wait(p, WAIT_MS), 0);
  assert_int_equal(proc_wait(p, WAIT_MS), 0); /* same status again */
  proc_free(p);
  p = spawn_sh("exit 3", NULL);
  assert_int_equal(proc_wait(p, WAIT_MS), 3);
  proc_free(p);
  p = spawn_sh("kill -TERM $$", NULL);
  assert_int_equal(proc_wait(p, WAIT_MS), PROC_SIGNALED(SIGTERM));
  assert_int_equal(proc_signal(p, SIGTERM), -ESRCH);
  proc_free(p);
  assert_no_children();
}

static void test_proc_output(void **state) {
  (void)state;
  struct proc *p = spawn_sh("echo out1; echo err1 >&2; printf tail; exit 7", NULL);
  char *out = NULL, *err = NULL;
  assert_int_equal(proc_read_all(p, WAIT_MS, &out, &err), 7);
  assert_string_equal(out, "out1\ntail");
  assert_string_equal(err, "err1\n");
  free(out);
  free(err);
  proc_free(p);

  struct proc_options piped = {.stderr_mode = PROC_STDIO_PIPE};
  p = spawn_sh("echo to-err >&2; exit 0", &piped);
  assert_int_equal(proc_read_all(p, WAIT_MS, NULL, &err), 0);
  assert_string_equal(err, "to-err\n");
  free(err);
  proc_free(p);
  assert_no_children();
}

static void test_proc_read_line(void **state) {
  (void)state;
  char line[64];
  struct proc *p = spawn_sh("echo first; sleep 0.2; printf 'second\\nlast'", NULL);
  assert_int_equal(proc_read_line(p, line, sizeof line, WAIT_MS), 5);
  assert_string_equal(line, "first");
  assert_int_equal(proc_read_line(p, line, sizeof line, WAIT_MS), 6);
  assert_string_equal(line, "second");
  assert_int_equal(proc_read_line(p, line, sizeof line, WAIT_MS), 4);
  assert_string_equal(line, "last");
  assert_int_equal(proc_read_line(p, line, sizeof line, WAIT_MS), -ENODATA);
  assert_int_equal(proc_wait(p, WAIT_MS), 0);
  proc_free(p);

  p = spawn_sh("echo 0123456789abcdef; echo ok", NULL);
  char small[8];
  assert_int_equal(proc_read_line(p, small, sizeof small, WAIT_MS), -EMSGSIZE);
  assert_int_equal(proc_read_line(p, small, sizeof small, WAIT_MS), 2);
  assert_string_equal(small, "ok");
  proc_free(p);
  assert_no_children();
}

static void test_proc_timeouts(void **state) {
  (void)state;
  char line[64];
  struct proc *p = spawn_sh("sleep 30 & echo $!; wait", NULL);
  assert_true(proc_read_line(p, line, sizeof line, WAIT_MS) > 0);
  pid_t grandchild = (pid_t)atoi(line);
  int64_t start = now_ms();
  assert_int_equal(proc_wait(p, 200), -ETIMEDOUT);
  assert_int_equal(proc_read_line(p, line, sizeof line, 200), -ETIMEDOUT);
  int64_t elapsed = now_ms() - start;
  assert_true(elapsed >= 390 && elapsed < 3000);
  /* proc_kill kills the whole group: the shell and its sleep. */
  assert_int_equal(proc_kill(p), PROC_SIGNALED(SIGKILL));
  proc_free(p);
  char stat_path[64], stat_text[256] = "";
  snprintf(stat_path, sizeof stat_path, "/proc/%d/stat", (int)grandchild);
  bool gone = false;
  for (int i = 0; i < 100 && !gone; i++) {
    FILE *f = fopen(stat_path, "r");
    gone = !f || !fgets(stat_text, sizeof stat_text, f) || strstr(stat_text, ") Z ");
    if (f)
      fclose(f);
    if (!gone)
      usleep(20000);
  }
  assert_true(gone);
  assert_no_children();
}

static void test_proc_stop_escalates(void **state) {
  (void)state;
  struct proc *p = spawn_sh("trap '' TERM; echo ready; while :; do sleep 1; done", NULL);
  char line[16];
  assert_int_equal(proc_read_line(p, line, sizeof line, WAIT_MS), 5);
  assert_int_equal(proc_stop(p, SIGTERM, 300), PROC_SIGNALED(SIGKILL));
  proc_free(p);
  assert_no_children();
}

static void test_proc_env_stdin(void **state) {
  (void)state;
  const char *env[] = {"PG_SMOKE_VAR=hello", NULL};
  struct proc_options opts = {.env = env, .stdin_mode = PROC_STDIO_PIPE, .cwd = "/"};
  struct proc *p = spawn_sh("read x; echo \"$PG_SMOKE_VAR $x $(pwd)\"", &opts);
  assert_int_equal(proc_write_stdin(p, "world\n", 6), 0);
  proc_close_stdin(p);
  char line[64];
  assert_true(proc_read_line(p, line, sizeof line, WAIT_MS) > 0);
  assert_string_equal(line, "hello world /");
  assert_int_equal(proc_wait(p, WAIT_MS), 0);
  proc_free(p);
  assert_no_children();
}

static void test_proc_exec_failure(void **state) {
  (void)state;
  struct proc *p = NULL;
  const char *missing[] = {"/nonexistent/pg-no-such-program", NULL};
  assert_int_equal(proc_spawn(missing, NULL, &p), -ENOENT);
  const char *unknown[] = {"pg-no-such-program-in-path", NULL};
  assert_int_equal(proc_spawn(unknown, NULL, &p), -ENOENT);
  assert_null(p);
  assert_no_children();
}

/* A child writing far more than a pipe holds must not block while the test
 * only waits for it. */
static void test_proc_chatty_child(void **state) {
  (void)state;
  struct proc *p = spawn_sh("head -c 1000000 /dev/zero | tr '\\0' x; "
                            "head -c 1000000 /dev/zero | tr '\\0' y >&2", NULL);
  assert_int_equal(proc_wait(p, WAIT_MS), 0);
  char *out = NULL, *err = NULL;
  assert_int_equal(proc_read_all(p, WAIT_MS, &out, &err), 0);
  assert_int_equal(strlen(out), 1000000);
  assert_int_equal(strlen(err), 1000000);
  assert_int_equal(out[999999], 'x');
  assert_int_equal(err[0], 'y');
  free(out);
  free(err);
  proc_free(p);
  assert_no_children();
}

/* ---- testnet ------------------------------------------------------------ */

static void test_testnet_frames(void **state) {
  (void)state;
  const char *text = "{\"response\":\"h\xc3\xa9llo \xed\x95\x9c\xea\xb5\xad \xf0\x9f\x98\x80\","
                     "\"isDisposed\":true,\"id\":\"u1\"}";
  assert_int_equal(strlen(text), 61);
  assert_int_equal(testnet_utf16_len(text, strlen(text)), 54);
  char *frame = testnet_frame(text);
  assert_non_null(frame);
  assert_memory_equal(frame, "54#{", 4);
  free(frame);
}

struct script_log {
  int requests;            /* frames read by the replying script */
  char last_id[32];
  int silent_result;       /* what testnet_peer_wait_closed returned */
  atomic_bool silent_done; /* silent_result is set */
};

/* Connection 0: answers each request in two pieces split inside a
 * multi-byte character. Connection 1: stays silent until closed. */
static void script(struct testnet_peer *peer, void *arg) {
  struct script_log *log = arg;
  if (peer->index == 1) {
    log->silent_result = testnet_peer_wait_closed(peer, WAIT_MS);
    atomic_store(&log->silent_done, true);
    return;
  }
  char *json = NULL;
  while (testnet_read_frame(&peer->reader, &json, WAIT_MS) > 0) {
    const char *id = strstr(json, "\"id\":\"");
    if (id)
      sscanf(id + 6, "%31[^\"]", log->last_id);
    log->requests++;
    free(json);
    char reply[128];
    snprintf(reply, sizeof reply, "{\"response\":\"\xc3\xa9t\xc3\xa9\",\"isDisposed\":true,\"id\":\"%s\"}",
             log->last_id);
    char *frame = testnet_frame(reply);
    size_t split = (size_t)(strstr(frame, "\xa9t") - frame); /* inside é */
    testnet_peer_write(peer, frame, split);
    testnet_peer_sleep(peer, 50);
    testnet_peer_write(peer, frame + split, strlen(frame) - split);
    free(frame);
  }
}

static void test_testnet_upstream(void **state) {
  (void)state;
  struct script_log log = {0};
  struct testnet_upstream *up = NULL;
  assert_int_equal(testnet_upstream_start(script, &log, &up), 0);
  int port = testnet_upstream_port(up);

  int fd = testnet_connect(port, WAIT_MS);
  assert_true(fd >= 0);
  struct testnet_reader reader;
  testnet_reader_init(&reader, fd);
  for (int i = 1; i <= 2; i++) {
    char request[96], *reply = NULL;
    snprintf(request, sizeof request, "{\"pattern\":\"p\",\"data\":%d,\"id\":\"r%d\"}", i, i);
    assert_int_equal(testnet_send_frame(fd, request, WAIT_MS), 0);
    assert_true(testnet_read_frame(&reader, &reply, WAIT_MS) > 0);
    snprintf(request, sizeof request, "\"id\":\"r%d\"", i);
    assert_non_null(strstr(reply, request));
    assert_non_null(strstr(reply, "\"response\":\"\xc3\xa9t\xc3\xa9\""));
    free(reply);
  }

  int silent = testnet_connect(port, WAIT_MS);
  assert_true(silent >= 0);
  assert_int_equal(testnet_upstream_wait_accepted(up, 2, WAIT_MS), 0);
  char byte;
  assert_int_equal(testnet_read_some(silent, &byte, 1, 200), -ETIMEDOUT);
  close(silent);
  for (int i = 0; i < 500 && !atomic_load(&log.silent_done); i++)
    usleep(10000); /* the script sees the close, not the stop */

  close(fd);
  testnet_reader_free(&reader);
  testnet_upstream_stop(up);
  assert_int_equal(log.requests, 2);
  assert_string_equal(log.last_id, "r2");
  assert_int_equal(log.silent_result, 0);
  assert_int_equal(testnet_connect(port, WAIT_MS), -ECONNREFUSED);
}

/* ---- nest --------------------------------------------------------------- */

/* Sends one raw request frame and returns the reply frame's JSON. */
static char *request(int port, const char *json) {
  int fd = testnet_connect(port, WAIT_MS);
  assert_true(fd >= 0);
  assert_int_equal(testnet_send_frame(fd, json, WAIT_MS), 0);
  struct testnet_reader reader;
  testnet_reader_init(&reader, fd);
  char *reply = NULL;
  ssize_t n = testnet_read_frame(&reader, &reply, WAIT_MS);
  testnet_reader_free(&reader);
  close(fd);
  assert_true(n > 0);
  return reply;
}

static void smoke(const char *version) {
  nest_require(version);
  struct nest_service svc;
  assert_int_equal(nest_start(version, NULL, &svc), 0);
  assert_true(svc.port > 0);

  /* A raw frame, length prefix and all. */
  int fd = testnet_connect(svc.port, WAIT_MS);
  assert_true(fd >= 0);
  const char *raw = "49#{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2,3],\"id\":\"1\"}";
  assert_int_equal(testnet_write_all(fd, raw, strlen(raw), WAIT_MS), 0);
  struct testnet_reader reader;
  testnet_reader_init(&reader, fd);
  char *reply = NULL;
  assert_true(testnet_read_frame(&reader, &reply, WAIT_MS) > 0);
  assert_non_null(strstr(reply, "\"response\":6"));
  assert_non_null(strstr(reply, "\"id\":\"1\""));
  free(reply);
  testnet_reader_free(&reader);
  close(fd);

  /* Non-ASCII text comes back byte for byte, its length in UTF-16 units. */
  reply = request(svc.port, "{\"pattern\":{\"cmd\":\"echo\"},\"data\":\"h\xc3\xa9llo \xed\x95\x9c\xea\xb5\xad "
                            "\xf0\x9f\x98\x80\",\"id\":\"u1\"}");
  assert_non_null(strstr(reply, "\"response\":\"h\xc3\xa9llo \xed\x95\x9c\xea\xb5\xad \xf0\x9f\x98\x80\""));
  free(reply);

  reply = request(svc.port, "{\"pattern\":{\"cmd\":\"nope\"},\"data\":1,\"id\":\"x\"}");
  assert_non_null(strstr(reply, "There is no matching message handler"));
  free(reply);

  assert_int_equal(nest_stop(&svc), 0);
  assert_null(svc.proc);
  assert_no_children();
}

static void test_nest_v12_smoke(void **state) {
  (void)state;
  smoke("v12");
}

static void test_nest_v10_smoke(void **state) {
  (void)state;
  smoke("v10");
}

static long service_pid(int port) {
  char *reply = request(port, "{\"pattern\":{\"cmd\":\"pid\"},\"data\":0,\"id\":\"p\"}");
  const char *at = strstr(reply, "\"response\":");
  assert_non_null(at);
  long pid = strtol(at + 11, NULL, 10);
  free(reply);
  return pid;
}

static void test_nest_kill_restart(void **state) {
  (void)state;
  nest_require("v12");
  struct nest_service svc;
  assert_int_equal(nest_start("v12", &(struct nest_options){.quiet = true}, &svc), 0);
  int port = svc.port;
  long first = service_pid(port);
  assert_int_equal(first, (long)proc_pid(svc.proc));
  assert_int_equal(nest_kill(&svc), PROC_SIGNALED(SIGKILL));
  assert_int_equal(testnet_connect(port, WAIT_MS), -ECONNREFUSED);
  assert_int_equal(nest_restart_same_port(&svc), 0);
  assert_int_equal(svc.port, port);
  long second = service_pid(port);
  assert_true(second != first);
  assert_int_equal(nest_restart_same_port(&svc), 0); /* from running */
  assert_true(service_pid(port) != second);
  assert_int_equal(nest_stop(&svc), 0);
  assert_no_children();
}

static void test_nest_start_failure(void **state) {
  (void)state;
  nest_require("v12");
  struct nest_service busy, svc;
  assert_int_equal(nest_start("v12", &(struct nest_options){.quiet = true}, &busy), 0);
  fprintf(stderr, "(test_nest_start_failure: the failure reports below are expected)\n");
  /* The port is taken: the start fails, with the service's stderr shown. */
  struct nest_options same = {.port = busy.port, .quiet = true};
  assert_int_equal(nest_start("v12", &same, &svc), -EADDRINUSE);
  assert_null(svc.proc);
  /* Bad arguments: the service exits at once. */
  struct nest_options bad = {.tls_ca = "/nonexistent/ca.pem"};
  assert_int_equal(nest_start("v12", &bad, &svc), -ECHILD);
  assert_int_equal(nest_start("v99", NULL, &svc), -ENOENT);
  assert_int_equal(nest_stop(&busy), 0);
  assert_no_children();
}

static void test_nest_tls_start(void **state) {
  (void)state;
  struct certs certs;
  assert_int_equal(certs_make(&certs), 0);
  const char *key = certs.server_key, *cert = certs.server_crt, *ca = certs.ca_crt;
  const char *versions[] = {"v12", "v10"};
  for (size_t i = 0; i < 2; i++) {
    nest_require(versions[i]);
    struct nest_options mtls = {.tls_key = key, .tls_cert = cert, .tls_ca = ca,
                                .request_cert = true, .quiet = true};
    struct nest_service svc;
    assert_int_equal(nest_start(versions[i], &mtls, &svc), 0);
    /* Plain TCP gets no Nest reply from a TLS service: only a TLS alert or
     * nothing, then the connection closes. */
    int fd = testnet_connect(svc.port, WAIT_MS);
    assert_true(fd >= 0);
    assert_int_equal(testnet_send_frame(fd, "{\"pattern\":\"echo\",\"data\":1,\"id\":\"t\"}", WAIT_MS), 0);
    struct testnet_reader reader;
    testnet_reader_init(&reader, fd);
    char *all = NULL;
    assert_true(testnet_read_to_eof(&reader, &all, WAIT_MS) >= 0);
    assert_null(strstr(all, "isDisposed"));
    free(all);
    testnet_reader_free(&reader);
    close(fd);
    assert_int_equal(nest_restart_same_port(&svc), 0); /* options survive */
    assert_int_equal(nest_stop(&svc), 0);
  }
  certs_free(&certs);
  assert_no_children();
}

int main(void) {
  const struct CMUnitTest support[] = {
      cmocka_unit_test_teardown(test_proc_exit_codes, kill_leftovers),
      cmocka_unit_test_teardown(test_proc_output, kill_leftovers),
      cmocka_unit_test_teardown(test_proc_read_line, kill_leftovers),
      cmocka_unit_test_teardown(test_proc_timeouts, kill_leftovers),
      cmocka_unit_test_teardown(test_proc_stop_escalates, kill_leftovers),
      cmocka_unit_test_teardown(test_proc_env_stdin, kill_leftovers),
      cmocka_unit_test_teardown(test_proc_exec_failure, kill_leftovers),
      cmocka_unit_test_teardown(test_proc_chatty_child, kill_leftovers),
      cmocka_unit_test_teardown(test_testnet_frames, kill_leftovers),
      cmocka_unit_test_teardown(test_testnet_upstream, kill_leftovers),
  };
  const struct CMUnitTest nest[] = {
      cmocka_unit_test_teardown(test_nest_v12_smoke, kill_leftovers),
      cmocka_unit_test_teardown(test_nest_v10_smoke, kill_leftovers),
      cmocka_unit_test_teardown(test_nest_kill_restart, kill_leftovers),
      cmocka_unit_test_teardown(test_nest_start_failure, kill_leftovers),
      cmocka_unit_test_teardown(test_nest_tls_start, kill_leftovers),
  };
  int failures = cmocka_run_group_tests_name("harness", support, NULL, NULL);
  failures += cmocka_run_group_tests_name("nest", nest, NULL, NULL);
  return failures;
}
