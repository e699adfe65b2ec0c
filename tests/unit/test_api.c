/* test_api.c - the engine as a C library (include/s3shim.h, core/api.c), over file://. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tmpdir.h"

#include "../../include/s3shim.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fx {
    char dir[512];  /* mounted at /m */
    char map[600];  /* "/m=file://DIR" */
    s3shim *s;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    umask(022);
    if (tmpdir_make(f->dir, sizeof f->dir) < 0) return -1;
    snprintf(f->map, sizeof f->map, "/m=file://%s", f->dir);
    char err[256] = "x";
    f->s = s3shim_new(f->map, err, sizeof err);
    if (!f->s) return -1;
    if (err[0]) {
        print_error("s3shim_new: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    s3shim_free(f->s);
    int r = tmpdir_remove(f->dir);
    free(f);
    return r;
}

static void put(s3shim *s, const char *path, const char *content)
{
    s3shim_file *fl = NULL;
    assert_int_equal(s3shim_open(s, path, O_CREAT | O_WRONLY | O_TRUNC, 0644, &fl), 0);
    assert_int_equal(s3shim_pwrite(fl, content, strlen(content), 0), strlen(content));
    assert_int_equal(s3shim_close(fl), 0);
}

static void test_version(void **state)
{
    assert_string_equal(s3shim_version(), S3SHIM_VERSION);
    s3shim_free(NULL);
}

static void test_write_read_back(void **state)
{
    struct fx *f = *state;
    s3shim_file *fl = NULL;
    assert_int_equal(s3shim_open(f->s, "/m/hello.txt", O_CREAT | O_RDWR | O_EXCL, 0644, &fl), 0);
    assert_non_null(fl);
    assert_int_equal(s3shim_pwrite(fl, "hello, ", 7, 0), 7);
    assert_int_equal(s3shim_pwrite(fl, "world", 5, 7), 5);
    assert_int_equal(s3shim_fsync(fl), 0);
    struct stat st;
    assert_int_equal(s3shim_fstat(fl, &st), 0);
    assert_int_equal(st.st_size, 12);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(s3shim_close(fl), 0);

    assert_int_equal(s3shim_stat(f->s, "/m/hello.txt", &st), 0);
    assert_int_equal(st.st_size, 12);

    char buf[32] = {0};
    assert_int_equal(s3shim_open(f->s, "/m/hello.txt", O_RDONLY, 0, &fl), 0);
    assert_int_equal(s3shim_pread(fl, buf, sizeof buf, 0), 12);
    assert_string_equal(buf, "hello, world");
    assert_int_equal(s3shim_pread(fl, buf, 5, 7), 5);
    assert_memory_equal(buf, "world", 5);
    assert_int_equal(s3shim_pread(fl, buf, sizeof buf, 12), 0);
    assert_int_equal(s3shim_close(fl), 0);

    /* It is an ordinary file in the directory. */
    char real[700];
    snprintf(real, sizeof real, "%s/hello.txt", f->dir);
    struct stat rst;
    assert_int_equal(stat(real, &rst), 0);
    assert_int_equal(rst.st_size, 12);
    assert_int_equal(rst.st_ino, st.st_ino);

    assert_int_equal(s3shim_unlink(f->s, "/m/hello.txt"), 0);
    assert_int_equal(s3shim_stat(f->s, "/m/hello.txt", &st), -ENOENT);
    assert_int_equal(s3shim_unlink(f->s, "/m/hello.txt"), -ENOENT);
}

static void test_excl_enoent_eisdir(void **state)
{
    struct fx *f = *state;
    s3shim_file *fl = NULL;
    put(f->s, "/m/e", "x");
    assert_int_equal(s3shim_open(f->s, "/m/e", O_CREAT | O_EXCL | O_WRONLY, 0644, &fl), -EEXIST);
    assert_int_equal(s3shim_open(f->s, "/m/missing", O_RDONLY, 0, &fl), -ENOENT);
    assert_int_equal(s3shim_open(f->s, "/m/nodir/x", O_CREAT | O_WRONLY, 0644, &fl), -ENOENT);
    char d[700];
    snprintf(d, sizeof d, "%s/sub", f->dir);
    assert_int_equal(mkdir(d, 0755), 0);
    assert_int_equal(s3shim_open(f->s, "/m/sub", O_RDONLY, 0, &fl), -EISDIR);
    assert_int_equal(s3shim_open(f->s, "/m", O_RDONLY, 0, &fl), -EISDIR);
    struct stat st;
    assert_int_equal(s3shim_stat(f->s, "/m/sub", &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(s3shim_stat(f->s, "/m", &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(s3shim_unlink(f->s, "/m/sub"), -EISDIR);
    assert_int_equal(rmdir(d), 0);
    assert_int_equal(s3shim_unlink(f->s, "/m/e"), 0);
}

static void test_paths_are_normalised(void **state)
{
    struct fx *f = *state;
    struct stat st;
    char d[700];
    snprintf(d, sizeof d, "%s/sub", f->dir);
    assert_int_equal(mkdir(d, 0755), 0);
    put(f->s, "/m/sub/n", "12345");
    static const char *const same[] = {"/m/sub/n", "//m//sub//n", "/m/./sub/./n", "/m/sub/../sub/n",
                                       "/m/../m/sub/n", "/../m/sub/n", "/m/x/y/../../sub/n"};
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        int r = s3shim_stat(f->s, same[i], &st);
        if (r != 0) fail_msg("stat('%s') = %d", same[i], r);
        assert_int_equal(st.st_size, 5);
    }
    /* Climbing out of the mount leaves it: "/m/.." is "/", which nothing covers. */
    assert_int_equal(s3shim_stat(f->s, "/m/..", &st), -ENOENT);
    assert_int_equal(s3shim_stat(f->s, "/m/../sub/n", &st), -ENOENT);
    assert_int_equal(s3shim_stat(f->s, "/m/sub/../../m/sub/n", &st), 0);
    assert_int_equal(s3shim_unlink(f->s, "/m/sub/./n"), 0);
    assert_int_equal(rmdir(d), 0);
}

static void test_routing_errors(void **state)
{
    struct fx *f = *state;
    struct stat st;
    s3shim_file *fl = NULL;
    /* Not below any mount. */
    assert_int_equal(s3shim_stat(f->s, "/elsewhere/x", &st), -ENOENT);
    assert_int_equal(s3shim_stat(f->s, "/mm/x", &st), -ENOENT);
    assert_int_equal(s3shim_open(f->s, "/", O_RDONLY, 0, &fl), -ENOENT);
    /* The s3 mounts exist but have no credentials here (see main). */
    assert_int_equal(s3shim_stat(f->s, "/s3/bucket/key", &st), -ENODEV);
    assert_int_equal(s3shim_stat(f->s, "s3://bucket/key", &st), -ENODEV);
    assert_int_equal(s3shim_open(f->s, "s3://bucket/key", O_RDONLY, 0, &fl), -ENODEV);
    assert_int_equal(s3shim_unlink(f->s, "s3://bucket//key"), -ENODEV);
}

static void test_relative_paths_rejected(void **state)
{
    struct fx *f = *state;
    struct stat st;
    s3shim_file *fl = NULL;
    static const char *const rel[] = {"", "m/x", "relative", "./m/x", "../m/x", "data/file", "some/file",
                                      "s3:/bucket/key", "s3bucket/key"};
    char failures[1024] = "";
    for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
        int r1 = s3shim_stat(f->s, rel[i], &st), r2 = s3shim_open(f->s, rel[i], O_RDONLY, 0, &fl),
            r3 = s3shim_unlink(f->s, rel[i]);
        if (r1 != -EINVAL || r2 != -EINVAL || r3 != -EINVAL) {
            size_t l = strlen(failures);
            snprintf(failures + l, sizeof failures - l, "%s'%s' -> %s/%s/%s", l ? ", " : "", rel[i],
                     strerrorname_np(-r1) ? strerrorname_np(-r1) : "?", strerrorname_np(-r2) ? strerrorname_np(-r2) : "?",
                     strerrorname_np(-r3) ? strerrorname_np(-r3) : "?");
        }
    }
    if (failures[0]) fail_msg("relative paths not refused with EINVAL (stat/open/unlink): %s", failures);
}

static void test_overlong_path(void **state)
{
    struct fx *f = *state;
    struct stat st;
    size_t len = PATH_MAX + 10;
    char *p = malloc(len + 1);
    assert_non_null(p);
    memcpy(p, "/m/", 3);
    for (size_t i = 3; i < len; i++) p[i] = (i % 100 == 0) ? '/' : 'a';
    p[len] = '\0';
    assert_int_equal(s3shim_stat(f->s, p, &st), -ENAMETOOLONG);
    memcpy(p, "s3://", 5);
    assert_int_equal(s3shim_stat(f->s, p, &st), -ENAMETOOLONG);
    free(p);
}

static void test_bad_entries(void **state)
{
    struct fx *f = *state;
    char map[800], err[320] = "";
    snprintf(map, sizeof map, "bogus;%s", f->map);
    s3shim *s = s3shim_new(map, err, sizeof err);
    assert_non_null(s);
    assert_non_null(strstr(err, "S3SHIM_MOUNTS"));
    assert_non_null(strstr(err, "bogus"));
    /* The good entry still works. */
    put(s, "/m/b", "b");
    struct stat st;
    assert_int_equal(s3shim_stat(s, "/m/b", &st), 0);
    assert_int_equal(s3shim_unlink(s, "/m/b"), 0);
    s3shim_free(s);

    /* err may be NULL, or of length 0. */
    s = s3shim_new("bogus", NULL, 0);
    assert_non_null(s);
    s3shim_free(s);
    err[0] = 'Z';
    s = s3shim_new("bogus", err, 0);
    assert_non_null(s);
    assert_int_equal(err[0], 'Z');
    s3shim_free(s);

    /* A short err buffer gets a truncated, terminated message. */
    char small[8];
    memset(small, 'Z', sizeof small);
    s = s3shim_new("bogus", small, sizeof small);
    assert_non_null(s);
    assert_int_equal(strlen(small), sizeof small - 1);
    s3shim_free(s);
}

static void test_disabled_mount(void **state)
{
    struct fx *f = *state;
    char map[800], err[320] = "";
    snprintf(map, sizeof map, "/gone=file://%s/does-not-exist", f->dir);
    s3shim *s = s3shim_new(map, err, sizeof err);
    assert_non_null(s);
    struct stat st;
    s3shim_file *fl = NULL;
    assert_int_equal(s3shim_stat(s, "/gone/x", &st), -ENODEV);
    assert_int_equal(s3shim_open(s, "/gone/x", O_CREAT | O_WRONLY, 0644, &fl), -ENODEV);
    assert_int_equal(s3shim_unlink(s, "/gone/x"), -ENODEV);
    s3shim_free(s);
}

static void test_mounts_from_environment(void **state)
{
    struct fx *f = *state;
    const char *old = getenv("S3SHIM_MOUNTS");
    char *saved = old ? strdup(old) : NULL;
    setenv("S3SHIM_MOUNTS", f->map, 1);
    char err[320] = "x";
    s3shim *s = s3shim_new(NULL, err, sizeof err);
    unsetenv("S3SHIM_MOUNTS");
    assert_non_null(s);
    assert_string_equal(err, "");
    put(s, "/m/env", "e");
    struct stat st;
    assert_int_equal(s3shim_stat(s, "/m/env", &st), 0);
    assert_int_equal(s3shim_unlink(s, "/m/env"), 0);
    s3shim_free(s);

    /* Without the variable only the default mounts exist. */
    s = s3shim_new(NULL, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(s3shim_stat(s, "/m", &st), -ENOENT);
    s3shim_free(s);
    if (saved) setenv("S3SHIM_MOUNTS", saved, 1);
    free(saved);
}

static void test_two_engines_are_independent(void **state)
{
    struct fx *f = *state;
    char map[800];
    snprintf(map, sizeof map, "/other=file://%s", f->dir);
    s3shim *s = s3shim_new(map, NULL, 0);
    assert_non_null(s);
    put(f->s, "/m/shared", "s");
    struct stat st;
    assert_int_equal(s3shim_stat(s, "/other/shared", &st), 0);
    assert_int_equal(s3shim_stat(s, "/m/shared", &st), -ENOENT);
    assert_int_equal(s3shim_stat(f->s, "/other/shared", &st), -ENOENT);
    s3shim_free(s);
    assert_int_equal(s3shim_unlink(f->s, "/m/shared"), 0);
}

int main(void)
{
    no_aws_credentials();
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep cmocka's lines whole when stderr is merged */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_write_read_back),
        cmocka_unit_test(test_excl_enoent_eisdir),
        cmocka_unit_test(test_paths_are_normalised),
        cmocka_unit_test(test_routing_errors),
        cmocka_unit_test(test_relative_paths_rejected),
        cmocka_unit_test(test_overlong_path),
        cmocka_unit_test(test_bad_entries),
        cmocka_unit_test(test_disabled_mount),
        cmocka_unit_test(test_mounts_from_environment),
        cmocka_unit_test(test_two_engines_are_independent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
