/* Unit tests of gateway/file_watch on a real libuv loop and real files in
 * a temporary folder: the ways a file changes (edit in place, a new file
 * renamed over it, a Kubernetes volume's symlink swap, an edit of the file
 * a symlink points to in another folder), debouncing, closing, errors.
 * Waiting is uvtest_run_until (the loop runs until the condition holds or
 * a generous deadline passes), never a sleep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "gateway/file_watch.h"
#include "support/uvtest.h"

#define SETTLE_MS 30
#define DEADLINE_MS 10000

typedef struct fixture {
    uv_loop_t loop;
    char dir[PATH_MAX];
    char path[PATH_MAX];
    int calls;
    file_watch_t *seen; /* the watch the callback was given */
} fixture;

static void on_change(file_watch_t *w, void *data)
{
    fixture *f = data;
    f->calls++;
    f->seen = w;
}

static void join(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    assert_true(n > 0 && n < PATH_MAX);
}

static void write_text(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    assert_int_equal(fputs(text, file) >= 0, 1);
    assert_int_equal(fclose(file), 0);
}

/* Writes `text` to a new file next to `path`, then renames it over path. */
static void replace_text(const char *path, const char *text)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_true(n > 0 && n < PATH_MAX);
    write_text(tmp, text);
    assert_int_equal(rename(tmp, path), 0);
}

static void remove_tree(const char *dir)
{
    char command[PATH_MAX + 16];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    assert_int_equal(system(command), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof f->dir, "%s/pg-file-watch-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    join(f->path, f->dir, "jwks.json");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    uv_run(&f->loop, UV_RUN_DEFAULT); /* let closes finish */
    int rc = uv_loop_close(&f->loop);
    remove_tree(f->dir);
    free(f);
    return rc == 0 ? 0 : -1; /* a handle left behind fails the test */
}

static int calls_reached(void *arg)
{
    fixture *f = arg;
    return f->calls >= 1;
}

static file_watch_t *start(fixture *f)
{
    file_watch_t *w = NULL;
    assert_int_equal(file_watch_start(&f->loop, f->path, SETTLE_MS, on_change, f, &w), 0);
    assert_non_null(w);
    return w;
}

static void wait_for_call(fixture *f)
{
    if (!uvtest_run_until(&f->loop, calls_reached, f, DEADLINE_MS))
        fail_msg("no callback within %d ms", DEADLINE_MS);
}

/* ---- the ways a file changes --------------------------------------------- */

static void test_edit_in_place(void **state)
{
    fixture *f = *state;
    write_text(f->path, "one");
    file_watch_t *w = start(f);
    assert_int_equal(f->calls, 0); /* never from inside start */
    assert_string_equal(file_watch_path(w), f->path);
    assert_false(file_watch_follows_link(w));
    write_text(f->path, "two");
    wait_for_call(f);
    assert_ptr_equal(f->seen, w);
    file_watch_close(w);
}

static void test_renamed_over(void **state)
{
    fixture *f = *state;
    write_text(f->path, "one");
    file_watch_t *w = start(f);
    replace_text(f->path, "two");
    wait_for_call(f);
    file_watch_close(w);
}

/* The file need not exist when the watch starts. */
static void test_created_later(void **state)
{
    fixture *f = *state;
    file_watch_t *w = start(f);
    write_text(f->path, "{}");
    wait_for_call(f);
    file_watch_close(w);
}

/* A Secret or ConfigMap volume: jwks.json -> ..data/jwks.json, ..data ->
 * ..2024_01 (a folder); an update writes a new folder, points a new link
 * ..data_tmp at it, renames that over ..data and removes the old folder. */
static void test_kubernetes_volume_swap(void **state)
{
    fixture *f = *state;
    char old_dir[PATH_MAX], new_dir[PATH_MAX], file[PATH_MAX], data[PATH_MAX], tmp[PATH_MAX];
    join(old_dir, f->dir, "..2024_01");
    join(new_dir, f->dir, "..2024_02");
    join(data, f->dir, "..data");
    join(tmp, f->dir, "..data_tmp");
    assert_int_equal(mkdir(old_dir, 0700), 0);
    join(file, old_dir, "jwks.json");
    write_text(file, "old");
    assert_int_equal(symlink("..2024_01", data), 0);
    assert_int_equal(symlink("..data/jwks.json", f->path), 0);
    file_watch_t *w = start(f);
    assert_true(file_watch_follows_link(w)); /* into ..2024_01 */
    assert_int_equal(mkdir(new_dir, 0700), 0);
    join(file, new_dir, "jwks.json");
    write_text(file, "new");
    assert_int_equal(symlink("..2024_02", tmp), 0);
    assert_int_equal(rename(tmp, data), 0);
    remove_tree(old_dir);
    wait_for_call(f);
    assert_true(file_watch_follows_link(w)); /* now into ..2024_02 */
    /* the next update is seen as well */
    f->calls = 0;
    assert_int_equal(symlink("..2024_01", tmp), 0);
    assert_int_equal(mkdir(old_dir, 0700), 0);
    join(file, old_dir, "jwks.json");
    write_text(file, "newer");
    assert_int_equal(rename(tmp, data), 0);
    wait_for_call(f);
    file_watch_close(w);
}

/* A link to a file in another folder: an edit there is seen. */
static void test_edit_of_a_linked_file_elsewhere(void **state)
{
    fixture *f = *state;
    char other[PATH_MAX], target[PATH_MAX];
    join(other, f->dir, "keys");
    assert_int_equal(mkdir(other, 0700), 0);
    join(target, other, "real.json");
    write_text(target, "one");
    assert_int_equal(symlink(target, f->path), 0);
    file_watch_t *w = start(f);
    assert_true(file_watch_follows_link(w));
    write_text(target, "two");
    wait_for_call(f);
    file_watch_close(w);
}

/* ---- debouncing, closing, errors ----------------------------------------- */

/* Many events before the loop runs are one settled change: one call. */
static void test_a_burst_is_one_call(void **state)
{
    fixture *f = *state;
    write_text(f->path, "0");
    file_watch_t *w = start(f);
    for (int i = 0; i < 20; i++) {
        char text[16];
        snprintf(text, sizeof text, "%d", i);
        write_text(f->path, text);
    }
    replace_text(f->path, "last");
    wait_for_call(f);
    assert_int_equal(f->calls, 1);
    /* and the watch goes on: a later change is another call */
    write_text(f->path, "after");
    f->calls = 0;
    wait_for_call(f);
    assert_int_equal(f->calls, 1);
    file_watch_close(w);
}

/* A folder that is never quiet (another file written every settle_ms / 3,
 * like a log file next to the watched one) still gets its call: the burst
 * is cut after FILE_WATCH_MAX_SETTLES settle times. */
typedef struct busy {
    fixture *f;
    char other[PATH_MAX];
    int writes;
} busy;

static void on_busy_tick(uv_timer_t *t)
{
    busy *b = t->data;
    char text[16];
    snprintf(text, sizeof text, "%d", b->writes++);
    write_text(b->other, text);
}

static void test_a_busy_folder_still_calls(void **state)
{
    fixture *f = *state;
    write_text(f->path, "0");
    busy b = { .f = f };
    join(b.other, f->dir, "busy.log");
    file_watch_t *w = start(f);
    uv_timer_t tick;
    uv_timer_init(&f->loop, &tick);
    tick.data = &b;
    uv_timer_start(&tick, on_busy_tick, 0, SETTLE_MS / 3);
    write_text(f->path, "changed");
    wait_for_call(f);
    assert_true(b.writes >= 2); /* the folder was still busy when the call came */
    uv_timer_stop(&tick);
    uv_close((uv_handle_t *)&tick, NULL);
    file_watch_close(w);
}

static void test_settle_delay(void **state)
{
    (void)state;
    assert_int_equal(file_watch_settle_delay(1000, 1000, 100), 100);
    assert_int_equal(file_watch_settle_delay(1000, 1850, 100), 100);
    assert_int_equal(file_watch_settle_delay(1000, 1950, 100), 50);
    assert_int_equal(file_watch_settle_delay(1000, 2000, 100), 0);
    assert_int_equal(file_watch_settle_delay(1000, 5000, 100), 0);
}

/* Closed while a change is settling: no call, nothing left on the loop. */
static void test_close_before_settling(void **state)
{
    fixture *f = *state;
    file_watch_t *w = NULL;
    assert_int_equal(file_watch_start(&f->loop, f->path, 60000, on_change, f, &w), 0);
    write_text(f->path, "x");
    /* one iteration: blocks until the event came, which arms the 60 s timer */
    uv_run(&f->loop, UV_RUN_ONCE);
    file_watch_close(w);
    file_watch_close(NULL);
    uint64_t before = uv_hrtime();
    uv_run(&f->loop, UV_RUN_DEFAULT); /* returns at once: nothing is left */
    assert_true(uv_hrtime() - before < 30ull * 1000000000ull);
    assert_int_equal(f->calls, 0);
}

static void test_folder_missing(void **state)
{
    fixture *f = *state;
    char path[PATH_MAX];
    join(path, f->dir, "no/such/folder/jwks.json");
    file_watch_t *w = (file_watch_t *)1;
    int rc = file_watch_start(&f->loop, path, SETTLE_MS, on_change, f, &w);
    assert_int_equal(rc, UV_ENOENT);
    assert_null(w);
    /* teardown checks that the handles it had made are all closed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_edit_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renamed_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_created_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubernetes_volume_swap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edit_of_a_linked_file_elsewhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_burst_is_one_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_busy_folder_still_calls, setup, teardown),
        cmocka_unit_test(test_settle_delay),
        cmocka_unit_test_setup_teardown(test_close_before_settling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_folder_missing, setup, teardown),
    };
    return cmocka_run_group_tests_name("file_watch", tests, NULL, NULL);
}
