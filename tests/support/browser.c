#include "support/browser.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_BYTES (4 * 1024 * 1024)

static int require_packages(void) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/tests/browser/node_modules/playwright-core/package.json",
           PG_SOURCE_DIR);
  if (access(path, R_OK) == 0)
    return 0;
  fprintf(stderr, "browser: %s is missing: run scripts/setup (it installs tests/browser's npm "
                  "packages and chromium)\n", path);
  return -ENOENT;
}

static void say_failure(struct browser *b, const char *what, int rc) {
  char *err = proc_stderr_text(b->proc);
  fprintf(stderr, "browser: %s: %s\n%s", what, strerror(-rc), err ? err : "");
  free(err);
}

/* Runs tests/browser/SCRIPT and waits for its `READY {"KEY": "..."}` line;
 * the value goes into out[size]. */
static int start_script(struct browser *b, const char *name, const char *key, char *out, size_t size) {
  memset(b, 0, sizeof *b);
  int rc = require_packages();
  if (rc != 0)
    return rc;
  char script[PATH_MAX];
  snprintf(script, sizeof script, "%s/tests/browser/%s", PG_SOURCE_DIR, name);
  const char *node = getenv("PG_NODE");
  const char *argv[] = {node && *node ? node : "node", script, NULL};
  struct proc_options opts = {.stdin_mode = PROC_STDIO_PIPE, .stdout_mode = PROC_STDIO_PIPE,
                              .stderr_mode = PROC_STDIO_CAPTURE};
  rc = proc_spawn(argv, &opts, &b->proc);
  if (rc != 0) {
    fprintf(stderr, "browser: cannot run %s: %s (set PG_NODE)\n", argv[0], strerror(-rc));
    return rc;
  }
  char line[512];
  rc = proc_read_line(b->proc, line, sizeof line, BROWSER_START_TIMEOUT_MS);
  json_t *ready = rc >= 0 && strncmp(line, "READY ", 6) == 0 ? json_loads(line + 6, 0, NULL) : NULL;
  const char *value = json_string_value(json_object_get(ready, key));
  if (value == NULL || strlen(value) >= size) {
    char what[128];
    snprintf(what, sizeof what, "%s did not get ready", name);
    say_failure(b, what, rc < 0 ? rc : -EPROTO);
    json_decref(ready);
    browser_stop(b);
    return rc < 0 ? rc : -EPROTO;
  }
  snprintf(out, size, "%s", value);
  json_decref(ready);
  return 0;
}

int browser_start(struct browser *b) {
  return start_script(b, "cors_probe.mjs", "origin", b->origin, sizeof b->origin);
}

int browser_start_docs(struct browser *b) {
  return start_script(b, "docs_page.mjs", "assets", b->assets, sizeof b->assets);
}

int browser_docs_page(struct browser *b, const char *url, const char *screenshot, json_t **reply) {
  json_t *request = json_pack("{s:s, s:i}", "url", url, "timeout_ms", BROWSER_FETCH_TIMEOUT_MS / 2);
  if (request == NULL)
    return -ENOMEM;
  if (screenshot != NULL && json_object_set_new(request, "screenshot", json_string(screenshot)) != 0) {
    json_decref(request);
    return -ENOMEM;
  }
  int rc = browser_fetch_json(b, request, reply);
  json_decref(request);
  return rc;
}

int browser_fetch(struct browser *b, const char *request_json, json_t **reply) {
  *reply = NULL;
  if (b->proc == NULL || strchr(request_json, '\n') != NULL)
    return -EINVAL;
  int rc = proc_write_stdin(b->proc, request_json, strlen(request_json));
  if (rc == 0)
    rc = proc_write_stdin(b->proc, "\n", 1);
  char *line = malloc(LINE_MAX_BYTES);
  if (rc == 0 && line == NULL)
    rc = -ENOMEM;
  if (rc == 0)
    rc = proc_read_line(b->proc, line, LINE_MAX_BYTES, BROWSER_FETCH_TIMEOUT_MS);
  if (rc >= 0) {
    json_error_t error;
    *reply = json_loads(line, 0, &error);
    rc = *reply ? 0 : -EPROTO;
  }
  if (rc != 0)
    say_failure(b, "fetch through the browser failed", rc);
  free(line);
  return rc;
}

int browser_fetch_json(struct browser *b, const json_t *request, json_t **reply) {
  char *text = json_dumps(request, JSON_COMPACT);
  if (text == NULL)
    return -ENOMEM;
  int rc = browser_fetch(b, text, reply);
  free(text);
  return rc;
}

void browser_stop(struct browser *b) {
  if (b->proc == NULL)
    return;
  proc_close_stdin(b->proc);
  if (proc_wait(b->proc, 10000) < 0)
    proc_kill(b->proc);
  proc_free(b->proc);
  b->proc = NULL;
}
