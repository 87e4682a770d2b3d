/*
 * replay_main: runs a fuzz target's LLVMFuzzerTestOneInput over files, as an
 * ordinary program, so that the committed seed corpora (and the crashers
 * found so far) are regression tests in every build, gcc included.
 *
 *   fuzz_replay_NAME [--optional] PATH...
 *
 * A PATH is a file or a directory (its regular files, in name order, not
 * recursive). A missing PATH is an error unless the argument before it is
 * --optional (the crashers folder usually does not exist). A broken
 * invariant aborts (see fuzz.h); otherwise prints how many inputs ran.
 */
#include "fuzz/fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *data = malloc(cap);
    size_t got;
    while (data && (got = fread(data + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            uint8_t *bigger = realloc(data, cap *= 2);
            if (!bigger)
                free(data);
            data = bigger;
        }
    }
    int failed = !data || ferror(f);
    fclose(f);
    if (failed) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(data);
        return -1;
    }
    /* An exact-size copy, so that ASan catches a read past the end. */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        free(data);
        return -1;
    }
    memcpy(exact, data, len);
    free(data);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Runs every regular file in dir; returns the count, or -1. */
static long run_dir(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: cannot list %s: %s\n", dir, strerror(errno));
        return -1;
    }
    long count = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        int w = snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (w > 0 && (size_t)w < sizeof path && names[i]->d_name[0] != '.' && is_regular(path)) {
            if (run_file(path) < 0)
                count = -1;
            else if (count >= 0)
                count++;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    long total = 0;
    int optional = 0, status = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--optional") == 0) {
            optional = 1;
            continue;
        }
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            if (!optional) {
                fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
                status = 1;
            }
        } else if (S_ISDIR(st.st_mode)) {
            long n = run_dir(argv[i]);
            if (n < 0)
                status = 1;
            else
                total += n;
        } else if (run_file(argv[i]) < 0) {
            status = 1;
        } else {
            total++;
        }
        optional = 0;
    }
    if (total == 0 && status == 0) {
        fprintf(stderr, "replay: no input found\n");
        status = 1;
    }
    printf("replay: %ld input(s) ran, %s\n", total, status ? "with errors" : "all fine");
    return status;
}
