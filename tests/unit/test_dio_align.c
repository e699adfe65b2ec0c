/* test_dio_align.c - O_DIRECT alignment arithmetic and probing (core/dio_align.c) and the
 * direct:// settings (core/config.c). The read-ahead window: test_readahead.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../core/config.h"
#include "../../core/local/dio_align.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

static void test_round(void **state)
{
    (void)state;
    assert_int_equal(dio_down(0, 512), 0);
    assert_int_equal(dio_down(511, 512), 0);
    assert_int_equal(dio_down(512, 512), 512);
    assert_int_equal(dio_down(4097, 4096), 4096);
    assert_int_equal(dio_up(0, 4096), 0);
    assert_int_equal(dio_up(1, 4096), 4096);
    assert_int_equal(dio_up(4096, 4096), 4096);
    assert_int_equal(dio_up(4097, 512), 4608);
    assert_true(dio_is(8192, 4096));
    assert_false(dio_is(8193, 512));
    assert_int_equal(dio_up((1ull << 40) + 1, 4096), (1ull << 40) + 4096);
}

static void test_pow2(void **state)
{
    (void)state;
    assert_int_equal(dio_pow2(1), 1);
    assert_int_equal(dio_pow2(3), 4);
    assert_int_equal(dio_pow2(512), 512);
    assert_int_equal(dio_pow2(513), 1024);
}

static void test_cover(void **state)
{
    (void)state;
    struct dio_align a = {512, 4096, DIO_SRC_STATX};
    off_t s;
    size_t n;
    dio_cover(&a, 0, 1, &s, &n); /* one byte: one block */
    assert_int_equal(s, 0);
    assert_int_equal(n, 4096);
    dio_cover(&a, 4095, 2, &s, &n); /* across a boundary: two blocks */
    assert_int_equal(s, 0);
    assert_int_equal(n, 8192);
    dio_cover(&a, 4096, 4096, &s, &n); /* aligned: itself */
    assert_int_equal(s, 4096);
    assert_int_equal(n, 4096);
    dio_cover(&a, 10000, 0, &s, &n); /* empty: nothing beyond its block start */
    assert_int_equal(s, 8192);
    assert_int_equal(n, 4096 - 4096 * (10000 % 4096 == 0));
    /* every cover contains the range and is aligned, for many ranges */
    srand(7);
    for (int i = 0; i < 100000; i++) {
        off_t off = rand() % 10000000;
        size_t len = 1 + (size_t)(rand() % 3000000);
        dio_cover(&a, off, len, &s, &n);
        assert_true(s <= off && (uint64_t)s + n >= (uint64_t)off + len);
        assert_true(dio_is((uint64_t)s, 4096) && dio_is(n, 4096));
        assert_true(n < len + 2 * 4096);
    }
}

static void test_io_aligned(void **state)
{
    (void)state;
    struct dio_align a = {512, 4096, DIO_SRC_STATX};
    char *p = aligned_alloc(4096, 8192);
    assert_true(dio_io_aligned(&a, p, 4096, 0));
    assert_true(dio_io_aligned(&a, p + 512, 4096, 8192)); /* memory needs 512 only */
    assert_false(dio_io_aligned(&a, p + 1, 4096, 0));
    assert_false(dio_io_aligned(&a, p, 512, 0)); /* 512 bytes on a 4096 device */
    assert_false(dio_io_aligned(&a, p, 4096, 512));
    free(p);
}

static void test_sanitize(void **state)
{
    (void)state;
    struct dio_align a = {0, 512, 0};
    assert_int_equal(dio_sanitize(&a), -1); /* zero: no direct I/O */
    a = (struct dio_align){4, 200, 0};
    assert_int_equal(dio_sanitize(&a), 0);
    assert_int_equal(a.mem, 4);
    assert_int_equal(a.off, 512); /* at least a sector, a power of two */
    a = (struct dio_align){512, 1u << 20, 0};
    assert_int_equal(dio_sanitize(&a), -1); /* absurd */
}

/* A real file on the filesystem of the working directory's /var/tmp, and tmpfs. */
static void test_probe(void **state)
{
    (void)state;
    char path[] = "/var/tmp/s3shim-dio-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    struct statfs sf;
    assert_int_equal(fstatfs(fd, &sf), 0);
    struct dio_align a;
    char why[200] = "";
    int r = dio_probe(fd, &st, &a, why, sizeof why);
    if (sf.f_type == 0x01021994) { /* tmpfs */
        assert_int_equal(r, 1);
    } else {
        assert_int_equal(r, 0);
        assert_true(a.mem >= 1 && a.off >= 512 && dio_is(a.off, a.off));
    }
    close(fd);
    fd = open("/dev/shm", O_RDONLY | O_DIRECTORY);
    if (fd >= 0 && fstatfs(fd, &sf) == 0 && sf.f_type == 0x01021994) {
        char p2[] = "/dev/shm/s3shim-dio-XXXXXX";
        int f2 = mkstemp(p2);
        assert_true(f2 >= 0);
        unlink(p2);
        assert_int_equal(fstat(f2, &st), 0);
        assert_int_equal(dio_probe(f2, &st, &a, why, sizeof why), 1);
        assert_non_null(strstr(why, "tmpfs"));
        close(f2);
    }
    if (fd >= 0) close(fd);
}

static const char *env_of(const char *name, void *ctx)
{
    for (const char *const *e = ctx; *e; e += 2)
        if (strcmp(e[0], name) == 0) return e[1];
    return NULL;
}

static void test_settings(void **state)
{
    (void)state;
    struct cfg c;
    const char *none[] = {NULL};
    cfg_load(&c, env_of, none);
    assert_int_equal(c.direct_chunk, 1 << 20);
    assert_int_equal(c.direct_depth, 4);
    assert_int_equal(c.direct_fallback, 0);
    assert_int_equal(c.direct_gather, 0);
    assert_int_equal(c.nerrors, 0);
    cfg_free(&c);
    const char *some[] = {"S3SHIM_DIRECT_CHUNK", "4M", "S3SHIM_DIRECT_DEPTH", "8", "S3SHIM_DIRECT_FALLBACK", "error",
                          "S3SHIM_DIRECT_GATHER", "1", "S3SHIM_DIRECT_SQPOLL", "yes", NULL};
    cfg_load(&c, env_of, some);
    assert_int_equal(c.direct_chunk, 4 << 20);
    assert_int_equal(c.direct_depth, 8);
    assert_int_equal(c.direct_fallback, 1);
    assert_int_equal(c.direct_gather, 1);
    assert_int_equal(c.direct_sqpoll, 1);
    assert_int_equal(c.nerrors, 0);
    cfg_free(&c);
    const char *bad[] = {"S3SHIM_DIRECT_CHUNK", "1000", "S3SHIM_DIRECT_DEPTH", "99", "S3SHIM_DIRECT_FALLBACK", "maybe",
                         NULL};
    cfg_load(&c, env_of, bad);
    assert_int_equal(c.nerrors, 3);
    assert_int_equal(c.direct_chunk, 1 << 20);
    assert_int_equal(c.direct_depth, 4);
    assert_int_equal(c.direct_fallback, 0);
    assert_true(cfg_is_known("S3SHIM_DIRECT_FALLBACK"));
    cfg_free(&c);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round),     cmocka_unit_test(test_pow2),    cmocka_unit_test(test_cover),
        cmocka_unit_test(test_io_aligned), cmocka_unit_test(test_sanitize), cmocka_unit_test(test_probe),
        cmocka_unit_test(test_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
