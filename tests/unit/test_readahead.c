/* test_readahead.c - the sequential-reader window (core/readahead.c) the direct:// and S3
 * readers share, and the S3 reader's probed ceiling against simulated readers: a fast
 * local server where a larger window buys nothing settles at the first ceiling, one far
 * away grows to the largest, one whose gain stops settles there, a single slow epoch at
 * the start (another process's burst) no longer passes for a gain, a reader that never
 * waits or drains what was fetched before does not grow it, epochs last 25 ms to a tenth
 * of a second (unless a ceiling's worth of bytes came sooner); and how a
 * window is split into GETs so that its memory stays within S3SHIM_READAHEAD_MEMORY. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../core/readahead.h"

#include <stdio.h>

#define MIB ((size_t)1 << 20)
#define CAP0 (16 * MIB)
#define MAX (256 * MIB)

/* MB/s (bytes per microsecond) the server delivers with a ceiling of `cap`, `done` bytes
 * into the read. */
typedef double (*rate_fn)(size_t cap, size_t done);

/* Read `total` bytes 1 MiB at a time at rate(cap); every read waited for data when
 * `waited`. Returns the probe's state at the end; *at_max (if given): the bytes read when
 * the ceiling first reached MAX (0: never). */
static struct readahead simulate_ex(rate_fn rate, size_t total, int waited, size_t *at_max)
{
    struct readahead ra;
    ra_init(&ra, MIB, MAX);
    ra_probe_start(&ra, CAP0);
    uint64_t now = 1000000000ull, rx = 0;
    size_t done = 0;
    while (done < total) {
        double per_us = rate(ra.cap, done); /* bytes per microsecond */
        now += (uint64_t)((double)MIB / per_us * 1000.0);
        rx += MIB;
        done += MIB;
        ra_advance(&ra, (off_t)(done - MIB), MIB, 1);
        ra_probe_note(&ra, (off_t)done, now, waited, rx);
        if (at_max && !*at_max && ra.cap == MAX) *at_max = done;
    }
    return ra;
}

static struct readahead simulate(rate_fn rate, size_t total, int waited)
{
    return simulate_ex(rate, total, waited, NULL);
}

static double flat_rate(size_t cap, size_t done) { return 1500.0; }
static double far_rate(size_t cap, size_t done) { return 40.0 * (double)(cap / CAP0); }
static double gain_to_64(size_t cap, size_t done) { return cap >= 64 * MIB ? 1200.0 : 1200.0 * (double)cap / (64.0 * MIB); }
/* Loopback, where the server's rate does not depend on the ceiling, but the first measured
 * epoch was slowed to half by another process's burst. Epochs last at least 25 ms, here
 * 33 MiB: two of warm-up from the first read's end, [1, 35) and [35, 69) MiB, then the
 * first measure from 69 MiB, 17 MiB of it slow. */
static double one_slow_epoch(size_t cap, size_t done) { return done >= 69 * MIB && done < 86 * MIB ? 700.0 : 1400.0; }

static void test_fast_server_settles_at_first(void **state)
{
    (void)state;
    struct readahead ra = simulate(flat_rate, 1024 * MIB, 1);
    assert_int_equal(ra.probing, 0);
    assert_int_equal(ra.cap, CAP0);
}

static void test_far_server_grows_to_max(void **state)
{
    (void)state;
    size_t at_max = 0;
    struct readahead ra = simulate_ex(far_rate, 4096 * MIB, 1, &at_max);
    assert_int_equal(ra.cap, MAX);
    assert_int_equal(ra.probing, 0);
    /* each doubling doubles the rate: one measured epoch per ceiling after the baseline's
     * two, and an epoch is a tenth of a second of bytes here (40 MB/s at the first ceiling:
     * 4 MiB; 8 at the next), not a ceiling's worth: 2 x 4 warm-up + 2 x 4 + 8 + 16 + 32 =
     * 72 MiB (with epochs of a ceiling's worth, 288; with two epochs per ceiling, 512) */
    printf("far server: the ceiling reached %zu MiB after %zu MiB\n", MAX / MIB, at_max / MIB);
    assert_true(at_max > 0 && at_max <= 80 * MIB);
}

/* A store far away: the ceiling goes up during the warm-up to what covers its time to
 * first byte (3.2 bytes per ns, whole parts), and from there the probe goes on; a nearby
 * one (under 10 ms) keeps its first ceiling; after the warm-up nothing is raised. */
static void test_far_store_starts_high(void **state)
{
    (void)state;
    assert_int_equal(ra_far_ceiling(500000, 8 * MIB), 0);    /* 0.5 ms: loopback */
    assert_int_equal(ra_far_ceiling(9999999, 8 * MIB), 0);   /* just under 10 ms */
    assert_int_equal(ra_far_ceiling(20000000, 8 * MIB), 64 * MIB); /* 64 MB: 8 parts */
    assert_int_equal(ra_far_ceiling(30000000, 8 * MIB), 96 * MIB); /* 96 MB: 12 parts (11.4) */
    struct readahead ra;
    ra_init(&ra, MIB, MAX);
    ra_probe_start(&ra, CAP0);
    assert_true(ra_probe_warming(&ra));
    ra_probe_raise(&ra, 8 * MIB); /* lower: nothing */
    assert_int_equal(ra.cap, CAP0);
    ra_probe_raise(&ra, 96 * MIB);
    assert_int_equal(ra.cap, 96 * MIB);
    ra_probe_raise(&ra, 4 * MAX); /* never above max */
    assert_int_equal(ra.cap, MAX);
    /* after the warm-up (two epochs, the first read starts them) it is not raised */
    ra_init(&ra, MIB, MAX);
    ra_probe_start(&ra, CAP0);
    uint64_t now = 1000000000ull, rx = 0;
    for (size_t done = MIB; ra_probe_warming(&ra) && done < 1024 * MIB; done += MIB) {
        now += 10000000ull; /* 10 ms per MiB: 100 MB/s */
        rx += MIB;
        ra_advance(&ra, (off_t)(done - MIB), MIB, 1);
        ra_probe_note(&ra, (off_t)done, now, 1, rx);
    }
    assert_false(ra_probe_warming(&ra));
    size_t cap = ra.cap;
    ra_probe_raise(&ra, 128 * MIB);
    assert_int_equal(ra.cap, cap);
}

/* A reader taking a part at a time has at least two parts fetched ahead after its first
 * read (the window doubles, and covers twice the read). */
static void test_window_covers_big_reads(void **state)
{
    (void)state;
    struct readahead ra;
    ra_init(&ra, MIB, 128 * MIB);
    ra_advance(&ra, 0, 8 * MIB, 1);
    assert_int_equal(ra.window, 16 * MIB);
    ra_advance(&ra, 8 * MIB, 4096, 1);
    assert_int_equal(ra.window, 32 * MIB); /* (doubling goes on) */
}

static void test_gain_stops(void **state)
{
    (void)state;
    struct readahead ra = simulate(gain_to_64, 4096 * MIB, 1);
    assert_int_equal(ra.probing, 0);
    assert_int_equal(ra.cap, 64 * MIB);
}

static void test_one_slow_epoch_is_no_gain(void **state)
{
    (void)state;
    struct readahead ra = simulate(one_slow_epoch, 1024 * MIB, 1);
    assert_int_equal(ra.probing, 0);
    assert_int_equal(ra.cap, CAP0);
}

static void test_reader_never_waits(void **state)
{
    (void)state;
    /* the data was always there first: no measure, the ceiling stays where it started */
    struct readahead ra = simulate(far_rate, 1024 * MIB, 0);
    assert_int_equal(ra.cap, CAP0);
    assert_true(ra.window <= CAP0);
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
    feed(&ra, &now, 8 * M, 80, 1); /* the baseline is measured twice */
    assert_int_equal(ra.cap, 8 * M);
    for (size_t cap = 8 * M; cap < 128 * M; cap *= 2) { /* then one epoch per doubling (2x: clear) */
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
    feed(&ra, &now, 8 * M, 200, 1); /* the first measure of the baseline */
    assert_int_equal(ra.cap, 8 * M);
    feed(&ra, &now, 8 * M, 180, 1); /* the second: the best so far (200), try 16 */
    assert_int_equal(ra.cap, 16 * M);
    feed(&ra, &now, 16 * M, 240, 1); /* not half better: measured once more */
    assert_int_equal(ra.cap, 16 * M);
    assert_true(ra.probing);
    feed(&ra, &now, 16 * M, 190, 1); /* its best (240) is not a quarter better: settle on 8 */
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
    feed_rx(&ra, &now, 8 * M, 100, 1, 100);   /* the baseline, twice: try 16 */
    feed_rx(&ra, &now, 8 * M, 100, 1, 100);
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

static void test_window_grows_to_cap_and_resets(void **state)
{
    (void)state;
    struct readahead ra;
    ra_init(&ra, MIB, MAX);
    ra_probe_start(&ra, CAP0);
    for (int i = 0; i < 10; i++) ra_advance(&ra, (off_t)i * (off_t)MIB, MIB, 1);
    assert_int_equal(ra.window, CAP0); /* doubled each sequential read, up to the ceiling */
    ra_advance(&ra, 0, MIB, 0);
    assert_int_equal(ra.window, MIB); /* a jump: back to the first window */
    assert_true(ra_sequential(&ra, (off_t)MIB));
    assert_false(ra_sequential(&ra, 0));
}

static void test_split_keeps_memory(void **state)
{
    (void)state;
    size_t ahead = 0, part = 8 * MIB, mem = 32 * MIB;
    /* within the memory: whole parts, or the whole window when it is smaller than one */
    assert_int_equal(ra_split(MIB, part, mem, &ahead), MIB);
    assert_int_equal(ahead, MIB);
    assert_int_equal(ra_split(16 * MIB, part, mem, &ahead), part);
    assert_int_equal(ahead, 16 * MIB);
    assert_int_equal(ra_split(32 * MIB, part, mem, &ahead), part);
    assert_int_equal(ahead, 32 * MIB);
    /* past it: as many GETs as the window has parts, the memory shared among them */
    assert_int_equal(ra_split(64 * MIB, part, mem, &ahead), 4 * MIB); /* 8 GETs */
    assert_int_equal(ahead, 32 * MIB);
    assert_int_equal(ra_split(128 * MIB, part, mem, &ahead), 2 * MIB); /* 16 GETs */
    assert_int_equal(ahead, 32 * MIB);
    /* a share is a multiple of 64 KiB: 7 MiB over the 3 GETs of a 20 MiB window */
    assert_int_equal(ra_split(20 * MIB, part, 7 * MIB, &ahead), 2 * MIB + 5 * 64 * 1024);
    assert_int_equal(ahead, 3 * (2 * MIB + 5 * 64 * 1024));
    /* never below 1 MiB a GET: the memory is then exceeded rather than GETs made tiny */
    assert_int_equal(ra_split(256 * MIB, part, 2 * MIB, &ahead), RA_SPLIT_MIN);
    assert_int_equal(ahead, 32 * RA_SPLIT_MIN);
    /* a memory smaller than one part: one GET of that size */
    assert_int_equal(ra_split(8 * MIB, part, 4 * MIB, &ahead), 4 * MIB);
    assert_int_equal(ahead, 4 * MIB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_server_settles_at_first),
        cmocka_unit_test(test_far_server_grows_to_max),
        cmocka_unit_test(test_far_store_starts_high), cmocka_unit_test(test_window_covers_big_reads),
        cmocka_unit_test(test_gain_stops),
        cmocka_unit_test(test_one_slow_epoch_is_no_gain),
        cmocka_unit_test(test_reader_never_waits),
        cmocka_unit_test(test_window_grows_to_cap_and_resets),
        cmocka_unit_test(test_split_keeps_memory),
        cmocka_unit_test(test_readahead),
        cmocka_unit_test(test_readahead_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
