#include "support/jose.h"

#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/proc.h"

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void remove_dir(const char *dir) {
  if (dir[0])
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *node_program(void) {
  const char *node = getenv("PG_NODE");
  return node && *node ? node : "node";
}

/* 0 when tests/jose's npm packages are installed, else -ENOENT (said). */
static int require_packages(void) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/tests/jose/node_modules/jose/package.json", PG_SOURCE_DIR);
  if (access(path, R_OK) == 0)
    return 0;
  fprintf(stderr, "jose: %s is missing: run scripts/setup (it installs tests/jose's npm packages)\n",
          path);
  return -ENOENT;
}

/* Runs mint.mjs with args (NULL-terminated, after the script) and returns
 * its exit status (0: *out is its stdout, to free()), or a negative errno. */
static int run_mint(const char *const *args, char **out) {
  const char *argv[24];
  const char *command = args[0];
  char script[PATH_MAX];
  snprintf(script, sizeof script, "%s/tests/jose/mint.mjs", PG_SOURCE_DIR);
  size_t n = 0;
  argv[n++] = node_program();
  argv[n++] = script;
  for (; *args && n + 1 < sizeof argv / sizeof argv[0]; args++)
    argv[n++] = *args;
  argv[n] = NULL;
  struct proc_options opts = {.stdout_mode = PROC_STDIO_CAPTURE, .stderr_mode = PROC_STDIO_CAPTURE};
  struct proc *p = NULL;
  int rc = proc_spawn(argv, &opts, &p);
  if (rc != 0) {
    fprintf(stderr, "jose: cannot run %s: %s (set PG_NODE to the node binary)\n", argv[0],
            strerror(-rc));
    return rc;
  }
  char *err = NULL;
  int status = proc_read_all(p, JOSE_TIMEOUT_MS, out, &err);
  proc_free(p);
  if (status != 0) {
    char text[64];
    fprintf(stderr, "jose: mint.mjs %s failed (%s):\n%s", command,
            proc_status_str(status, text, sizeof text), err ? err : "");
    free(*out);
    *out = NULL;
  }
  free(err);
  return status < 0 ? status : status == 0 ? 0 : -EPROTO;
}

static const char *member(json_t *doc, const char *key) {
  return json_string_value(json_object_get(doc, key));
}

/* Fills the string fields from s->doc; -EPROTO if one is missing. */
static int fill(struct jose_suite *s) {
  s->jwks_file = member(s->doc, "jwks_file");
  s->jwks_rotated_file = member(s->doc, "jwks_rotated_file");
  s->hs256_secret = member(s->doc, "hs256_secret");
  s->issuer = member(s->doc, "issuer");
  s->audience = member(s->doc, "audience");
  s->sub = member(s->doc, "sub");
  s->now = (long long)json_integer_value(json_object_get(s->doc, "now"));
  bool complete = s->jwks_file && s->jwks_rotated_file && s->hs256_secret && s->issuer &&
                  s->audience && s->sub && json_is_object(json_object_get(s->doc, "tokens")) &&
                  json_is_object(json_object_get(s->doc, "expect"));
  if (!complete)
    fprintf(stderr, "jose: mint.mjs printed an incomplete suite\n");
  return complete ? 0 : -EPROTO;
}

int jose_suite_make(struct jose_suite *s) {
  memset(s, 0, sizeof *s);
  int rc = require_packages();
  if (rc != 0)
    return rc;
  const char *tmp = getenv("TMPDIR");
  snprintf(s->dir, sizeof s->dir, "%s/pg-jose-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(s->dir)) {
    rc = -errno;
    fprintf(stderr, "jose: mkdtemp %s: %s\n", s->dir, strerror(errno));
    memset(s, 0, sizeof *s);
    return rc;
  }
  const char *args[] = {"suite", "--dir", s->dir, NULL};
  char *out = NULL;
  rc = run_mint(args, &out);
  if (rc == 0) {
    json_error_t error;
    s->doc = json_loads(out, 0, &error);
    if (s->doc == NULL)
      fprintf(stderr, "jose: mint.mjs printed no JSON: %s\n", error.text);
    rc = s->doc ? fill(s) : -EPROTO;
  }
  free(out);
  if (rc != 0)
    jose_suite_free(s);
  return rc;
}

static const char *lookup(const struct jose_suite *s, const char *table, const char *name) {
  return s->doc ? json_string_value(json_object_get(json_object_get(s->doc, table), name)) : NULL;
}

const char *jose_token(const struct jose_suite *s, const char *name) {
  return lookup(s, "tokens", name);
}

const char *jose_expect(const struct jose_suite *s, const char *name) {
  return lookup(s, "expect", name);
}

int jose_sign(const struct jose_suite *s, const char *alg, const char *kid,
              const char *claims_json, int ttl_s, char **token) {
  *token = NULL;
  char ttl[16];
  snprintf(ttl, sizeof ttl, "%d", ttl_s < 0 ? 0 : ttl_s);
  const char *args[16] = {"sign", "--dir", s->dir, "--alg", alg};
  size_t n = 5;
  if (kid) {
    args[n++] = "--kid";
    args[n++] = kid;
  }
  if (claims_json) {
    args[n++] = "--claims";
    args[n++] = claims_json;
  }
  if (ttl_s < 0) {
    args[n++] = "--no-exp";
  } else {
    args[n++] = "--ttl";
    args[n++] = ttl;
  }
  args[n] = NULL;
  char *out = NULL;
  int rc = run_mint(args, &out);
  if (rc != 0)
    return rc;
  out[strcspn(out, "\n")] = '\0';
  if (out[0] == '\0') {
    free(out);
    fprintf(stderr, "jose: mint.mjs sign printed no token\n");
    return -EPROTO;
  }
  *token = out;
  return 0;
}

void jose_suite_free(struct jose_suite *s) {
  remove_dir(s->dir);
  json_decref(s->doc);
  memset(s, 0, sizeof *s);
}
