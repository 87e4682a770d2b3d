/* probe: a running gateway seen from outside. See probe.h. */
#include "support/probe.h"
#include "support/http.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

char *probe_get(int port, const char *path, int *status, int timeout_ms) {
  struct http_request req = {.method = "GET", .path = path};
  struct http_response resp;
  if (http_fetch(port, &req, &resp, timeout_ms) != 0)
    return NULL;
  char *body = strdup(resp.body);
  if (status)
    *status = resp.status;
  http_response_free(&resp);
  return body;
}

/* Whether the label part of a sample line (between { and }) holds
 * every wanted pair. */
static bool labels_match(const char *open, const char *close, const char *const *labels) {
  for (size_t i = 0; labels && labels[i]; i++) {
    size_t n = strlen(labels[i]);
    bool found = false;
    for (const char *p = open + 1; p + n <= close && !found; p++)
      found = (p == open + 1 || p[-1] == ',') && strncmp(p, labels[i], n) == 0 &&
              (p[n] == ',' || p[n] == '}');
    if (!found)
      return false;
  }
  return true;
}

int probe_metric(const char *text, const char *name, const char *const *labels, double *value) {
  size_t n = strlen(name);
  for (const char *line = text; line && *line;) {
    const char *nl = strchr(line, '\n');
    const char *end = nl ? nl : line + strlen(line);
    if (*line != '#' && (size_t)(end - line) > n && strncmp(line, name, n) == 0 &&
        (line[n] == '{' || line[n] == ' ')) {
      const char *v = line + n;
      bool ok = true;
      if (*v == '{') {
        const char *close = memchr(v, '}', (size_t)(end - v));
        ok = close && labels_match(v, close, labels);
        v = close ? close + 1 : end;
      } else {
        ok = !labels || !labels[0];
      }
      if (ok) {
        char *stop;
        *value = strtod(v, &stop);
        if (stop != v)
          return 0;
      }
    }
    line = nl ? nl + 1 : NULL;
  }
  return -ENOENT;
}

int probe_metric_at(int port, const char *name, const char *const *labels, double *value,
                    int timeout_ms) {
  int status = 0;
  char *text = probe_get(port, "/metrics", &status, timeout_ms);
  if (!text || status != 200) {
    free(text);
    return -EIO;
  }
  int rc = probe_metric(text, name, labels, value);
  free(text);
  return rc;
}

int probe_fd_count(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  DIR *d = opendir(path);
  if (!d)
    return -errno;
  int count = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    count += e->d_name[0] != '.';
  closedir(d);
  return count;
}

long probe_raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return -errno;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
    return -errno;
  return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
}
