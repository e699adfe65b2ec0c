/* test_dio_align.c - O_DIRECT alignment arithmetic and probing (core/dio_align.c), the
 * sequential-reader window (core/readahead.c) the direct:// and S3 readers share, its
 * probed ceiling (the S3 reader's), and
 * the direct:// settings (core/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../core/config.h"
#include "../../core/local/dio_align.h"
#include "../../core/readahead.h"

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

static void test_readahead(void **state)
{
    (void)state;
    struct readahead ra;
    ra_init(&ra, 1 << 20, 4 << 20);
    assert_true(ra_sequential(&ra, 0));
    ra_advance(&ra, 0, 4096, 1);
    assert_int_equal(ra.window, 2 << 20);
    assert_int_equal(ra.next, 4096);
    ra_advance(&ra, 4096, 4096, ra_sequential(&ra, 4096));
    ra_advance(&ra, 8192, 4096, ra_sequential(&ra, 8192));
    assert_int_equal(ra.window, 4 << 20); /* capped */
    assert_false(ra_sequential(&ra, 0));
    ra_advance(&ra, 0, 10, 0);
    assert_int_equal(ra.window, 1 << 20); /* a jump resets it */
    ra_advance(&ra, 10, 0, 1);            /* end of file: no growth */
    assert_int_equal(ra.window, 1 << 20);
}

/* Bytes the synthetic reader's GETs have received (the probe's measure). */
static uint64_t rx_total;

/* A reader that consumes `bytes` in 1 MiB reads at `rate` MiB/s while its GETs receive
 * `arrive` MiB/s (a synthetic clock: what the probe does with the rates it sees). */
static void feed_rx(struct readahead *ra, uint64_t *now, size_t bytes, double rate, int waited, double arrive)
{
    for (size_t done = 0; done < bytes; done += 1 << 20) {
        off_t off = ra->next;
        ra_advance(ra, off, 1 << 20, 1);
        *now += (uint64_t)(1e9 / rate);
        rx_total += (uint64_t)(arrive / rate * (1 << 20));
        ra_probe_note(ra, ra->next, *now, waited, rx_total);
    }
}

/* ...receiving as fast as it consumes. */
static void feed(struct readahead *ra, uint64_t *now, size_t bytes, double rate, int waited)
{
    feed_rx(ra, now, bytes, rate, waited, rate);
}

static void test_readahead_probe(void **state)
{
    (void)state;
    const size_t M = 1 << 20;
    struct readahead ra;
    uint64_t now = 1000000000ull;

    /* throughput that doubles with the window (a far server): the ceiling grows to max */
    ra_init(&ra, M, 128 * M);
    ra_probe_start(&ra, 8 * M);
    assert_int_equal(ra.cap, 8 * M);
    assert_true(ra.window <= ra.cap);
    ra_probe_note(&ra, 0, now, 0, rx_total); /* the first read */
    feed(&ra, &now, 16 * M, 100, 1); /* warm-up, two epochs: no decision */
    assert_int_equal(ra.cap, 8 * M);
    for (size_t cap = 8 * M; cap < 128 * M; cap *= 2) {
        feed(&ra, &now, cap, (double)cap / M * 10, 1); /* rate proportional to the window */
        assert_int_equal(ra.cap, cap * 2);
    }
    feed(&ra, &now, 128 * M, 1280, 1);
    assert_int_equal(ra.cap, 128 * M);
    assert_false(ra.probing); /* at max: done */
    assert_int_equal(ra.window, 128 * M);

    /* a server that is as fast with one part as with more: back to the first ceiling */
    ra_init(&ra, M, 128 * M);
    ra_probe_start(&ra, 8 * M);
    ra_probe_note(&ra, 0, now, 0, rx_total);
    feed(&ra, &now, 16 * M, 100, 1); /* warm-up */
    feed(&ra, &now, 8 * M, 200, 1); /* the first measure: the best so far, try 16 */
    assert_int_equal(ra.cap, 16 * M);
    feed(&ra, &now, 16 * M, 240, 1); /* not a quarter better: once more */
    assert_int_equal(ra.cap, 16 * M);
    assert_true(ra.probing);
    feed(&ra, &now, 16 * M, 190, 1); /* twice: settle on 8 */
    assert_int_equal(ra.cap, 8 * M);
    assert_false(ra.probing);
    assert_true(ra.window <= 8 * M);
    feed(&ra, &now, 64 * M, 900, 1); /* settled: no more probing */
    assert_int_equal(ra.cap, 8 * M);

    /* a reader that never waits (slower than the fetches) never grows the ceiling */
    ra_init(&ra, M, 128 * M);
    ra_probe_start(&ra, 8 * M);
    ra_probe_note(&ra, 0, now, 0, rx_total);
    feed(&ra, &now, 16 * M, 100, 0);
    for (int i = 1; i <= 8; i++) feed(&ra, &now, 8 * M, 10.0 * i, 0);
    assert_true(ra.epochs >= 8); /* measured, faster each time, and no reason to grow */
    assert_int_equal(ra.cap, 8 * M);
    assert_true(ra.probing);

    /* a reader draining what was fetched before consumes faster than the GETs receive:
     * the rate that counts is what was received (it used to grow the window to max on
     * a local server whose throughput no window changes) */
    ra_init(&ra, M, 128 * M);
    ra_probe_start(&ra, 8 * M);
    ra_probe_note(&ra, 0, now, 0, rx_total);
    feed(&ra, &now, 16 * M, 100, 1);          /* warm-up */
    feed_rx(&ra, &now, 8 * M, 100, 1, 100);   /* the first measure: try 16 */
    assert_int_equal(ra.cap, 16 * M);
    feed_rx(&ra, &now, 16 * M, 150, 1, 100);  /* consumed 1.5x faster, received no faster */
    feed_rx(&ra, &now, 16 * M, 150, 1, 100);
    assert_int_equal(ra.cap, 8 * M);
    assert_false(ra.probing);

    /* an epoch lasts at least 25 ms: 8 MiB in 4 ms does not end one */
    ra_init(&ra, M, 128 * M);
    ra_probe_start(&ra, 8 * M);
    ra_probe_note(&ra, 0, now, 0, rx_total);
    feed(&ra, &now, 8 * M, 2000, 1); /* 4 ms */
    assert_int_equal(ra.epochs, 0);
    feed(&ra, &now, 48 * M, 2000, 1); /* 24 ms more: the warm-up ends */
    assert_int_equal(ra.epochs, 1);

    /* without ra_probe_start (direct://, block://) the window grows to max at once */
    ra_init(&ra, M, 4 * M);
    assert_int_equal(ra.cap, 4 * M);
    ra_advance(&ra, 0, 4096, 1);
    ra_advance(&ra, 4096, 4096, 1);
    assert_int_equal(ra.window, 4 * M);

    /* a ceiling asked for above max is max, and there is nothing to probe */
    ra_init(&ra, M, 4 * M);
    ra_probe_start(&ra, 8 * M);
    assert_int_equal(ra.cap, 4 * M);
    assert_false(ra.probing);
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
        cmocka_unit_test(test_readahead), cmocka_unit_test(test_readahead_probe), cmocka_unit_test(test_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
