#include "gateway/jwks.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "gateway/file_watch.h"

struct jwks {
    char *path;
    jwt_keys_t *keys;            /* current; never NULL */
    buf_t tried;                 /* the bytes last read (loaded or not) */
    char last_error[JWKS_ERR_SIZE]; /* the last failure reported; "" */
    file_watch_t *watch;
    jwks_cb *cb;
    void *data;
    unsigned long reloads;
};

/* Reads the whole file into *out (replacing its contents). 0, or -1 with
 * err filled. */
static int read_file(const char *path, buf_t *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    out->len = 0;
    char chunk[16384];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (out->len + n > JWT_MAX_JWKS) {
            snprintf(err, errlen, "%s: larger than %d bytes", path, JWT_MAX_JWKS);
            rc = -1;
        } else if (buf_append(out, chunk, n) != 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = -1;
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    return rc;
}

static jwt_keys_t *parse(const char *path, const buf_t *text, char *err, size_t errlen)
{
    char why[JWT_ERR_SIZE];
    jwt_keys_t *keys = jwt_keys_parse(text->data ? text->data : "", text->len, why, sizeof why);
    if (keys == NULL) {
        snprintf(err, errlen, "%s: %s", path, why);
        return NULL;
    }
    if (jwt_keys_count(keys) == 0) {
        snprintf(err, errlen, "%s: no usable key (%zu skipped: only RSA, EC P-256 and Ed25519 "
                              "signature keys are used)", path, jwt_keys_skipped(keys));
        jwt_keys_free(keys);
        return NULL;
    }
    return keys;
}

jwt_keys_t *jwks_load_file(const char *path, char *err, size_t errlen)
{
    buf_t text = BUF_INIT;
    jwt_keys_t *keys = read_file(path, &text, err, errlen) == 0 ? parse(path, &text, err, errlen)
                                                                : NULL;
    buf_free(&text);
    return keys;
}

static void report_failure(jwks_t *j, const char *why)
{
    if (strcmp(j->last_error, why) == 0)
        return;
    snprintf(j->last_error, sizeof j->last_error, "%s", why);
    j->cb(j->data, j, JWKS_RELOAD_FAILED, why);
}

static void on_change(file_watch_t *w, void *data)
{
    (void)w;
    jwks_t *j = data;
    char err[JWKS_ERR_SIZE];
    buf_t text = BUF_INIT;
    if (read_file(j->path, &text, err, sizeof err) != 0) {
        buf_free(&text);
        j->tried.len = 0; /* whatever comes back next is tried */
        report_failure(j, err);
        return;
    }
    bool same = text.len == j->tried.len &&
                (text.len == 0 || memcmp(text.data, j->tried.data, text.len) == 0);
    if (same) {
        buf_free(&text);
        return;
    }
    buf_free(&j->tried);
    j->tried = text;
    jwt_keys_t *keys = parse(j->path, &j->tried, err, sizeof err);
    if (keys == NULL) {
        report_failure(j, err);
        return;
    }
    jwt_keys_free(j->keys);
    j->keys = keys;
    j->reloads++;
    j->last_error[0] = '\0';
    j->cb(j->data, j, JWKS_RELOADED, NULL);
}

static void jwks_free(jwks_t *j)
{
    jwt_keys_free(j->keys);
    buf_free(&j->tried);
    free(j->path);
    free(j);
}

jwks_t *jwks_open(uv_loop_t *loop, const char *path, uint64_t settle_ms, jwks_cb *cb, void *data,
                  char *err, size_t errlen)
{
    jwks_t *j = calloc(1, sizeof *j);
    if (j == NULL || (j->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "out of memory");
        free(j);
        return NULL;
    }
    j->cb = cb;
    j->data = data;
    if (read_file(path, &j->tried, err, errlen) != 0 ||
        (j->keys = parse(path, &j->tried, err, errlen)) == NULL) {
        jwks_free(j);
        return NULL;
    }
    int rc = file_watch_start(loop, path, settle_ms, on_change, j, &j->watch);
    if (rc < 0) {
        snprintf(err, errlen, "cannot watch the folder of %s: %s", path, uv_strerror(rc));
        jwks_free(j);
        return NULL;
    }
    return j;
}

const jwt_keys_t *jwks_keys(const jwks_t *j)
{
    return j->keys;
}

const char *jwks_path(const jwks_t *j)
{
    return j->path;
}

unsigned long jwks_reloads(const jwks_t *j)
{
    return j->reloads;
}

void jwks_close(jwks_t *j)
{
    if (j == NULL)
        return;
    file_watch_close(j->watch);
    jwks_free(j);
}
