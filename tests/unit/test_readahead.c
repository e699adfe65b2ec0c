/* test_readahead.c - the read-ahead ceiling's probe (core/readahead.c) against simulated
 * readers: a fast local server where a larger window buys nothing settles at the first
 * ceiling, one far away grows to the largest, one whose gain stops settles there, and a
 * single slow epoch at the start (another process's burst) no longer passes for a gain. */
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
    /* each doubling doubles the rate: one measured epoch (one ceiling's worth of bytes) per
     * ceiling after the baseline's two: 2 x 16 warm-up + 2 x 16 + 32 + 64 + 128 = 288 MiB
     * (two per ceiling would take 512) */
    printf("far server: the ceiling reached %zu MiB after %zu MiB\n", MAX / MIB, at_max / MIB);
    assert_true(at_max > 0 && at_max <= 300 * MIB);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_server_settles_at_first),
        cmocka_unit_test(test_far_server_grows_to_max),
        cmocka_unit_test(test_gain_stops),
        cmocka_unit_test(test_one_slow_epoch_is_no_gain),
        cmocka_unit_test(test_reader_never_waits),
        cmocka_unit_test(test_window_grows_to_cap_and_resets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
