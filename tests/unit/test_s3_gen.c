/* test_s3_gen.c - the run's generation counters (core/s3/s3_gen.c): which counters a
 * change bumps, the shared file, and a forked child's bumps seen by its parent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../core/s3/s3_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int setup(void **state)
{
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    setenv("S3SHIM_ROOT_PID", pid, 1); /* this process is the first of a run */
    s3_gen_init();
    return 0;
}

static void test_shared_file(void **state)
{
    assert_int_equal(s3_gen_shared(), 1);
    char want[80];
    snprintf(want, sizeof want, "/dev/shm/s3shim-gen-%u-%ld", (unsigned)geteuid(), (long)getpid());
    assert_string_equal(s3_gen_path(), want);
    struct stat st;
    assert_int_equal(stat(want, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_uid, geteuid());
    assert_int_equal((size_t)st.st_size, sizeof(uint64_t) * (S3GEN_SLOTS + 1));
}

static void test_bump_key_and_directories(void **state)
{
    uint64_t b = s3_gen_get("bk", ""), a = s3_gen_get("bk", "a"), ab = s3_gen_get("bk", "a/b"),
             abc = s3_gen_get("bk", "a/b/c"), sib = s3_gen_get("bk", "a/b/d"), other = s3_gen_get("ob", "a");
    uint64_t before = s3_gen_bump("bk", "a/b/c");
    assert_true(before == abc);
    assert_true(s3_gen_get("bk", "a/b/c") == abc + 1);
    assert_true(s3_gen_get("bk", "a/b/c/") == abc + 1); /* a trailing '/' names the same key */
    assert_true(s3_gen_get("bk", "a/b") != ab);
    assert_true(s3_gen_get("bk", "a") != a);
    assert_true(s3_gen_get("bk", "") != b);
    /* These do not collide with the bumped ones in 4096 slots (checked once: the hash is fixed). */
    assert_true(s3_gen_get("bk", "a/b/d") == sib);
    assert_true(s3_gen_get("ob", "a") == other);
}

static void test_bucket_only(void **state)
{
    uint64_t b = s3_gen_get("bk2", "");
    assert_true(s3_gen_bump("bk2", "") == b);
    assert_true(s3_gen_get("bk2", "") == b + 1);
}

static void test_forked_child(void **state)
{
    uint64_t g = s3_gen_get("bk", "forked/key");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        s3_gen_bump("bk", "forked/key");
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(status, 0);
    assert_true(s3_gen_get("bk", "forked/key") == g + 1);
}

/* Said once per run: the first asker, whichever process of the run it is. */
static void test_once_per_run(void **state)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(s3_gen_once(5) == 1 && s3_gen_once(5) == 0 ? 0 : 1); /* the child asks first */
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(status, 0);
    assert_int_equal(s3_gen_once(5), 0); /* the parent: said already */
    assert_int_equal(s3_gen_once(6), 1); /* another bit */
    assert_int_equal(s3_gen_once(6), 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep cmocka's lines whole when stderr is merged */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_file),
        cmocka_unit_test(test_bump_key_and_directories),
        cmocka_unit_test(test_bucket_only),
        cmocka_unit_test(test_forked_child),
        cmocka_unit_test(test_once_per_run),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
