/* test_balance.c - the endpoint balancer's arithmetic and choices (core/balance.c).
 *
 * Time is passed in explicitly, so every case is exact; the last cases run pick/done
 * from several threads (this file is also built and run under TSan by make test-tsan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../core/s3/balance.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define US 1000ull
#define MS 1000000ull
#define S 1000000000ull
#define T0 (100 * S) /* a "now" far from zero */

/* One request on endpoint i taking lat to the first byte and xfer for the body. */
static void serve(struct balancer *b, int i, uint64_t at, uint64_t lat, uint64_t xfer, uint64_t bytes)
{
    bal_take(b, i, at, NULL);
    bal_done(b, i, BAL_OK, 0, at, at + lat, at + lat + xfer, bytes);
}

static void test_policy_names(void **state)
{
    assert_int_equal(bal_policy_parse("sewt"), BAL_SEWT);
    assert_int_equal(bal_policy_parse("least"), BAL_LEAST);
    assert_int_equal(bal_policy_parse("rr"), BAL_RR);
    assert_int_equal(bal_policy_parse("SEWT "), -1);
    assert_int_equal(bal_policy_parse(""), -1);
    assert_string_equal(bal_policy_name(BAL_RR), "rr");
    assert_string_equal(bal_policy_name(BAL_SEWT), "sewt");
}

/* score = (in flight + 1) x (time to first byte + bytes x time per byte) */
static void test_score_arithmetic(void **state)
{
    struct balancer b;
    assert_int_equal(bal_init(&b, 2, BAL_SEWT), 0);
    serve(&b, 0, T0, 10 * MS, 0, 0);
    assert_int_equal(atomic_load(&b.ep[0].lat_ns), 10 * MS);
    assert_int_equal(bal_score(&b, 0, 0, T0 + 10 * MS), 10 * MS);
    /* 1 MiB in 1 ms: ~953 ps per byte */
    serve(&b, 1, T0, 2 * MS, 1 * MS, 1 << 20);
    uint64_t ps = atomic_load(&b.ep[1].xfer_ps);
    assert_in_range(ps, 950, 956);
    uint64_t s = bal_score(&b, 1, 4 << 20, T0 + 3 * MS); /* 2 ms + 4 x ~1 ms */
    assert_in_range(s, 5990 * US, 6010 * US);
    /* two in flight: three times the wait (the oldest has not waited longer than that) */
    bal_take(&b, 1, T0 + 3 * MS, NULL);
    bal_take(&b, 1, T0 + 3 * MS, NULL);
    assert_in_range(bal_score(&b, 1, 4 << 20, T0 + 3 * MS), 3 * 5990 * US, 3 * 6010 * US);
    bal_free(&b);
}

/* A slower sample is taken at once; faster ones pull down by dt / (tau + dt). */
static void test_peak_ewma(void **state)
{
    struct balancer b;
    bal_init(&b, 1, BAL_SEWT);
    serve(&b, 0, T0, 10 * MS, 0, 0);
    serve(&b, 0, T0 + 1 * MS, 50 * MS, 0, 0); /* a peak */
    assert_int_equal(atomic_load(&b.ep[0].lat_ns), 50 * MS);
    /* a fast answer right after barely moves it ... */
    uint64_t t = T0 + 51 * MS;
    serve(&b, 0, t, 10 * MS, 0, 0);
    uint64_t after = atomic_load(&b.ep[0].lat_ns);
    assert_true(after > 49 * MS && after < 50 * MS);
    /* ... one tau later it is halfway there */
    t += 10 * MS + b.tau_ns;
    serve(&b, 0, t - 10 * MS, 10 * MS, 0, 0);
    after = atomic_load(&b.ep[0].lat_ns);
    assert_in_range(after, 29 * MS, 31 * MS);
    bal_free(&b);
}

/* An idle estimate halves every idle_half; a busy endpoint is scored by how long its
 * oldest request has waited when that is longer than its estimate. */
static void test_idle_fade_and_busy_wait(void **state)
{
    struct balancer b;
    bal_init(&b, 2, BAL_SEWT);
    serve(&b, 0, T0, 80 * MS, 0, 0);
    uint64_t at = T0 + 80 * MS;
    assert_int_equal(bal_score(&b, 0, 0, at), 80 * MS);
    assert_int_equal(bal_score(&b, 0, 0, at + b.idle_half_ns), 40 * MS);
    assert_int_equal(bal_score(&b, 0, 0, at + 3 * b.idle_half_ns), 10 * MS);
    /* busy since `at`, nothing back for 500 ms: looks like 500 ms x 2 */
    serve(&b, 1, T0, 5 * MS, 0, 0);
    bal_take(&b, 1, at, NULL);
    assert_int_equal(bal_score(&b, 1, 0, at + 500 * MS), 2 * 500 * MS);
    bal_free(&b);
}

/* With known estimates, sewt sends each request where it expects to finish first. */
static void test_sewt_prefers_fast(void **state)
{
    struct balancer b;
    bal_init(&b, 4, BAL_SEWT);
    uint64_t lat[4] = {5 * MS, 10 * MS, 50 * MS, 100 * MS};
    for (int i = 0; i < 4; i++) serve(&b, i, T0, lat[i], 0, 0);
    uint64_t now = T0 + 100 * MS;
    int got[4] = {0};
    /* one caller at a time: always the 5 ms endpoint */
    for (int k = 0; k < 1000; k++) {
        int i = bal_pick(&b, 0, -1, now, NULL);
        got[i]++;
        bal_release(&b, i);
    }
    assert_int_equal(got[0], 1000);
    /* four at once: 5 ms (x1, x2), 10 ms (x1), and 5 ms x3 = 15 ms vs 10 ms x2 = 20 ms */
    int q[4];
    for (int k = 0; k < 4; k++) q[k] = bal_pick(&b, 0, -1, now, NULL);
    int on0 = 0, on1 = 0;
    for (int k = 0; k < 4; k++) on0 += q[k] == 0, on1 += q[k] == 1;
    assert_true(on0 >= 2 && on1 >= 1 && on0 + on1 == 4);
    for (int k = 0; k < 4; k++) bal_release(&b, q[k]);
    /* avoid is honoured when there is another endpoint */
    for (int k = 0; k < 100; k++) {
        int i = bal_pick(&b, 0, 0, now, NULL);
        assert_int_equal(i, 1);
        bal_release(&b, i);
    }
    bal_free(&b);
}

/* What a request ahead costs is learnt from answers that had requests ahead: a server
 * that queues (9 ms with two ahead of a 3 ms service: 3 ms each) keeps (q + 1) x t, one
 * that works in parallel (5 ms with three ahead of a 5 ms service) costs ~nothing per
 * request ahead. */
static void test_queue_cost_learnt(void **state)
{
    struct balancer b;
    bal_init(&b, 2, BAL_SEWT);
    serve(&b, 0, T0, 3 * MS, 0, 0);
    serve(&b, 1, T0, 5 * MS, 0, 0);
    uint64_t now = T0 + 10 * MS;
    bal_take(&b, 0, now, NULL);
    bal_take(&b, 0, now, NULL);
    unsigned ahead = 99;
    bal_take(&b, 0, now, &ahead);
    assert_int_equal(ahead, 2);
    bal_done(&b, 0, BAL_OK, 2, now, now + 9 * MS, now + 9 * MS, 0);
    assert_int_equal(atomic_load(&b.ep[0].queue_ns), 3 * MS);
    assert_int_equal(atomic_load(&b.ep[0].lat_ns), 3 * MS); /* not a sample of the service time */
    for (unsigned k = 0; k < 3; k++) bal_take(&b, 1, now, NULL);
    bal_take(&b, 1, now, &ahead);
    assert_int_equal(ahead, 3);
    bal_done(&b, 1, BAL_OK, 3, now, now + 5 * MS, now + 5 * MS, 0);
    assert_int_equal(atomic_load(&b.ep[1].queue_ns), 0);
    /* endpoint 0 has 2 in flight (3 + 2 x 3 ms), endpoint 1 has 3 (5 + 3 x 0) */
    uint64_t t = now + 9 * MS;
    assert_int_equal(bal_score(&b, 0, 0, t), 9 * MS);
    assert_int_equal(bal_score(&b, 1, 0, t), 5 * MS);
    bal_free(&b);
}

/* A backup request goes only where the expected wait is below the limit. */
static void test_pick_below(void **state)
{
    struct balancer b;
    bal_init(&b, 3, BAL_SEWT);
    serve(&b, 0, T0, 5 * MS, 0, 0);
    serve(&b, 1, T0, 50 * MS, 0, 0);
    serve(&b, 2, T0, 100 * MS, 0, 0);
    uint64_t now = T0 + 100 * MS;
    assert_int_equal(bal_pick_below(&b, 0, 0, now, 20 * MS, NULL), -1);
    int i = bal_pick_below(&b, 0, 0, now, 60 * MS, NULL);
    assert_int_equal(i, 1);
    bal_release(&b, i);
    for (int k = 0; k < 3; k++) assert_int_equal(atomic_load(&b.ep[k].inflight), 0);
    bal_free(&b);
}

/* Ties go to a random endpoint: equal endpoints share the work. */
static void test_ties_spread(void **state)
{
    struct balancer b;
    bal_init(&b, 4, BAL_SEWT);
    for (int i = 0; i < 4; i++) serve(&b, i, T0, 5 * MS, 0, 0);
    int got[4] = {0};
    for (int k = 0; k < 4000; k++) {
        int i = bal_pick(&b, 0, -1, T0 + 5 * MS, NULL);
        got[i]++;
        bal_release(&b, i);
    }
    for (int i = 0; i < 4; i++) assert_in_range(got[i], 800, 1200);
    bal_free(&b);
}

/* A cold endpoint is tried, but once its first request has waited longer than the
 * others' whole service it is not piled onto. */
static void test_cold_exploration(void **state)
{
    struct balancer b;
    bal_init(&b, 2, BAL_SEWT);
    serve(&b, 0, T0, 5 * MS, 0, 0);
    uint64_t now = T0 + 5 * MS;
    assert_int_equal(bal_pick(&b, 0, -1, now, NULL), 1); /* never measured: explore */
    int i = bal_pick(&b, 0, -1, now + 20 * MS, NULL);  /* waited 20 ms x 2 > 5 ms */
    assert_int_equal(i, 0);
    bal_release(&b, i);
    bal_free(&b);
}

static void test_least_and_rr(void **state)
{
    struct balancer b;
    bal_init(&b, 3, BAL_LEAST);
    int a = bal_pick(&b, 0, -1, T0, NULL), c = bal_pick(&b, 0, -1, T0, NULL), d = bal_pick(&b, 0, -1, T0, NULL);
    assert_true(a != c && c != d && a != d); /* each takes the emptiest */
    bal_free(&b);
    bal_init(&b, 3, BAL_RR);
    int seq[6];
    for (int k = 0; k < 6; k++) seq[k] = bal_pick(&b, 0, -1, T0, NULL);
    for (int k = 0; k < 3; k++) assert_int_equal(seq[k], seq[k + 3]);
    assert_true(seq[0] != seq[1] && seq[1] != seq[2]);
    bal_free(&b);
}

/* eject_after failures in a row eject; the backoff doubles; the probe decides. */
static void test_ejection_and_probe(void **state)
{
    struct balancer b;
    bal_init(&b, 2, BAL_SEWT);
    serve(&b, 0, T0, 5 * MS, 0, 0);
    serve(&b, 1, T0, 5 * MS, 0, 0);
    uint64_t t = T0 + 10 * MS;
    for (unsigned k = 0; k < b.eject_after; k++) {
        bal_take(&b, 0, t, NULL);
        int ej = bal_done(&b, 0, BAL_FAIL, 0, t, 0, t + 1 * MS, 0);
        assert_int_equal(ej, k + 1 == b.eject_after);
    }
    assert_true(bal_ejected(&b, 0, t + 2 * MS));
    for (int k = 0; k < 50; k++) { /* nothing goes there, not even as the only "avoid" alternative */
        int i = bal_pick(&b, 0, -1, t + 2 * MS, NULL);
        assert_int_equal(i, 1);
        bal_release(&b, i);
    }
    /* after the backoff exactly one probe goes out */
    uint64_t later = t + b.eject_base_ns + 2 * MS;
    assert_false(bal_ejected(&b, 0, later));
    int p = bal_pick(&b, 0, -1, later, NULL);
    assert_int_equal(p, 0);
    int q = bal_pick(&b, 0, -1, later, NULL);
    assert_int_equal(q, 1);
    bal_release(&b, q);
    /* the probe fails: out again for twice as long */
    assert_int_equal(bal_done(&b, 0, BAL_FAIL, 0, later, 0, later + 1 * MS, 0), 1);
    assert_true(bal_ejected(&b, 0, later + 1 * MS + 2 * b.eject_base_ns - 1 * MS));
    assert_false(bal_ejected(&b, 0, later + 1 * MS + 2 * b.eject_base_ns));
    /* the next probe answers: back in service, backoff reset */
    uint64_t again = later + 1 * MS + 2 * b.eject_base_ns;
    p = bal_pick(&b, 0, -1, again, NULL);
    assert_int_equal(p, 0);
    assert_int_equal(bal_done(&b, 0, BAL_OK, 0, again, again + 5 * MS, again + 5 * MS, 0), 0);
    assert_int_equal(atomic_load(&b.ep[0].eject_until_ns), 0);
    assert_int_equal(atomic_load(&b.ep[0].ejections), 0);
    bal_free(&b);
}

/* The last endpoint in service is never ejected; if all are out, requests still go
 * somewhere (the client's retry budget then ends them). */
static void test_never_nowhere(void **state)
{
    struct balancer b;
    bal_init(&b, 2, BAL_SEWT);
    uint64_t t = T0;
    for (int i = 0; i < 2; i++)
        for (unsigned k = 0; k < b.eject_after; k++) {
            bal_take(&b, i, t, NULL);
            bal_done(&b, i, BAL_FAIL, 0, t, 0, t + MS, 0);
        }
    assert_true(bal_ejected(&b, 0, t + 2 * MS));
    assert_false(bal_ejected(&b, 1, t + 2 * MS));
    int i = bal_pick(&b, 0, -1, t + 2 * MS, NULL);
    assert_int_equal(i, 1);
    bal_release(&b, i);
    i = bal_pick(&b, 0, 1, t + 2 * MS, NULL); /* avoiding the only one in service */
    assert_true(i == 0 || i == 1);
    bal_release(&b, i);
    bal_free(&b);
}

/* Failures and timeouts raise the estimate to at least twice what it was. */
static void test_failure_raises_score(void **state)
{
    struct balancer b;
    bal_init(&b, 2, BAL_SEWT);
    serve(&b, 0, T0, 5 * MS, 0, 0);
    bal_take(&b, 0, T0 + 5 * MS, NULL);
    bal_done(&b, 0, BAL_TIMEOUT, 0, T0 + 5 * MS, 0, T0 + 8 * MS, 0);
    assert_int_equal(atomic_load(&b.ep[0].lat_ns), 10 * MS);
    bal_take(&b, 0, T0 + 8 * MS, NULL);
    bal_done(&b, 0, BAL_FAIL, 0, T0 + 8 * MS, 0, T0 + 58 * MS, 0); /* took 50 ms */
    assert_int_equal(atomic_load(&b.ep[0].lat_ns), 50 * MS);
    bal_free(&b);
}

/* Hedging: a cold guess before any sample, 4x the estimate with few; then the p95 plus the
 * transfer; budget ~5%. */
static void test_hedge_delay_and_budget(void **state)
{
    struct balancer b;
    bal_init(&b, 2, BAL_SEWT);
    uint64_t t = T0;
    /* never measured: a generous guess, 0.5 s plus 10 MB/s */
    assert_int_equal(bal_hedge_delay(&b, 0, 0), 500 * MS);
    assert_int_equal(bal_hedge_delay(&b, 0, 10u << 20), 500 * MS + 1048576000ull);
    for (int k = 0; k < 15; k++, t += 20 * MS) serve(&b, 0, t, 5 * MS, 0, 0);
    assert_in_range(bal_hedge_delay(&b, 0, 0), 20 * MS, 21 * MS); /* few answers: 4x the estimate */
    for (int k = 0; k < 49; k++, t += 20 * MS) serve(&b, 0, t, (uint64_t)(k < 3 ? 40 : 5) * MS, 0, 0);
    /* 64 samples: 61 of 5 ms, 3 of 40 ms -> p95 (61st of 64 sorted) = 5 ms */
    assert_int_equal(atomic_load(&b.ep[0].p95_ns), 5 * MS);
    uint64_t d = bal_hedge_delay(&b, 0, 0);
    assert_in_range(d, 5 * MS, 6 * MS);
    /* budget: 5% of reads plus two to start with */
    int granted = 0;
    for (int k = 0; k < 1000; k++) {
        bal_count_read(&b);
        if (bal_hedge_allowed(&b)) {
            bal_hedge_count(&b);
            granted++;
        }
    }
    assert_in_range(granted, 50, 53);
    bal_free(&b);
}

/* Power of two choices above 8 endpoints: never an ejected one, mostly the better. */
static void test_many_endpoints(void **state)
{
    struct balancer b;
    bal_init(&b, 32, BAL_SEWT);
    for (int i = 0; i < 32; i++) serve(&b, i, T0, (uint64_t)(i + 1) * MS, 0, 0);
    for (int i = 0; i < 31; i++)
        for (unsigned k = 0; k < b.eject_after; k++) {
            bal_take(&b, i, T0, NULL);
            bal_done(&b, i, BAL_FAIL, 0, T0, 0, T0 + MS, 0);
        }
    for (int k = 0; k < 200; k++) { /* only 31 is in service */
        int i = bal_pick(&b, 0, -1, T0 + 2 * MS, NULL);
        assert_int_equal(i, 31);
        bal_release(&b, i);
    }
    bal_free(&b);
    bal_init(&b, 32, BAL_SEWT);
    for (int i = 0; i < 32; i++) serve(&b, i, T0, (uint64_t)(i + 1) * MS, 0, 0);
    long sum = 0;
    for (int k = 0; k < 3200; k++) {
        int i = bal_pick(&b, 0, -1, T0 + 40 * MS, NULL);
        sum += i;
        bal_release(&b, i);
    }
    /* the better of two uniform picks has mean ~ n/3 (10.3), uniform would be 15.5 */
    assert_true(sum / 3200 < 12);
    bal_free(&b);
}

/* Threads picking and reporting at once: counts stay consistent. */
struct worker_arg {
    struct balancer *b;
    int iters;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    for (int k = 0; k < a->iters; k++) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * S + (uint64_t)ts.tv_nsec;
        int i = bal_pick(a->b, (uint64_t)(k % 4) << 18, k % 7 == 0 ? 0 : -1, now, NULL);
        enum bal_outcome o = k % 97 == 0 ? BAL_FAIL : k % 89 == 0 ? BAL_TIMEOUT : BAL_OK;
        bal_done(a->b, i, o, 0, now, now + (uint64_t)(i + 1) * US, now + (uint64_t)(i + 2) * US, (uint64_t)(k % 4) << 18);
        if (k % 50 == 0 && bal_hedge_allowed(a->b)) bal_hedge_count(a->b);
        bal_count_read(a->b);
    }
    return NULL;
}

static void run_threads(int nep, enum bal_policy pol)
{
    struct balancer b;
    bal_init(&b, nep, pol);
    enum { NT = 8 };
    pthread_t t[NT];
    struct worker_arg a = {&b, 20000};
    for (int i = 0; i < NT; i++) assert_int_equal(pthread_create(&t[i], NULL, worker, &a), 0);
    for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < nep; i++) assert_int_equal(atomic_load(&b.ep[i].inflight), 0);
    bal_free(&b);
}

static void test_threads_sewt_4(void **state) { run_threads(4, BAL_SEWT); }
static void test_threads_sewt_32(void **state) { run_threads(32, BAL_SEWT); }
static void test_threads_least_rr(void **state)
{
    run_threads(4, BAL_LEAST);
    run_threads(3, BAL_RR);
}

/* The fastest sender's body time (s3_read.c's hold_for starts from it): none before a
 * body of 64 KiB or more was measured, the faster endpoint's once both have one, an
 * ejected endpoint left out. */
static void test_fastest_body(void **state)
{
    struct balancer b;
    assert_int_equal(bal_init(&b, 2, BAL_SEWT), 0);
    assert_int_equal(bal_fastest_body_ns(&b, 4 << 20), 0);
    serve(&b, 0, T0, 1 * MS, 1 * MS, 1000); /* too small to say anything about bandwidth */
    assert_int_equal(bal_fastest_body_ns(&b, 4 << 20), 0);
    serve(&b, 0, T0, 1 * MS, 8 * MS, 4 << 20); /* 4 MiB in 8 ms */
    uint64_t t = bal_fastest_body_ns(&b, 4 << 20);
    assert_true(t > 7990 * US && t <= 8 * MS); /* picoseconds per byte, rounded down */
    serve(&b, 1, T0, 5 * MS, 2 * MS, 4 << 20); /* further away, but sends 4x faster */
    t = bal_fastest_body_ns(&b, 4 << 20);
    assert_true(t > 1990 * US && t <= 2 * MS);
    assert_true(bal_fastest_body_ns(&b, 2 << 20) > 990 * US && bal_fastest_body_ns(&b, 2 << 20) <= 1 * MS);
    for (int k = 0; k < 8; k++) bal_done(&b, 1, BAL_FAIL, 0, T0 + S, 0, T0 + S + MS, 0); /* ejected */
    assert_true(bal_ejected(&b, 1, T0 + S + 2 * MS));
    t = bal_fastest_body_ns(&b, 4 << 20);
    assert_true(t > 7990 * US && t <= 8 * MS);
    bal_free(&b);
}

/* An answer whose body waited 50 ms for its reader (bal_done_held): neither its first
 * byte nor the endpoint's bandwidth takes the wait in, and a failure after it costs
 * what it took without it. */
static void test_done_held(void **state)
{
    struct balancer b;
    assert_int_equal(bal_init(&b, 1, BAL_SEWT), 0);
    serve(&b, 0, T0, 1 * MS, 4 * MS, 4 << 20);
    uint64_t lat = bal_nearest_ns(&b), body = bal_fastest_body_ns(&b, 4 << 20);
    bal_take(&b, 0, T0 + 10 * MS, NULL);
    bal_done_held(&b, 0, BAL_OK, 1, T0 + 10 * MS, T0 + 11 * MS, T0 + 65 * MS, 50 * MS, 0);
    assert_true(bal_nearest_ns(&b) <= lat + lat / 10);
    assert_int_equal(bal_fastest_body_ns(&b, 4 << 20), body);
    bal_take(&b, 0, T0 + 70 * MS, NULL);
    bal_done_held(&b, 0, BAL_FAIL, 0, T0 + 70 * MS, 0, T0 + 130 * MS, 50 * MS, 0);
    assert_true(bal_nearest_ns(&b) <= 10 * MS + 10 * MS / 10); /* 60 ms taken, 50 of them held */
    bal_free(&b);
}

/* The quickest recent first byte (s3_read.c holds a GET per read only below 2 ms): the
 * smallest of the recent answers, not their average; an ejected endpoint left out. */
static void test_quickest_ttfb(void **state)
{
    struct balancer b;
    assert_int_equal(bal_init(&b, 2, BAL_SEWT), 0);
    assert_int_equal(bal_quickest_ttfb_ns(&b), 0);
    serve(&b, 0, T0, 6 * MS, 1 * MS, 1 << 20);
    serve(&b, 0, T0 + MS, 100 * US, 1 * MS, 1 << 20); /* one quick answer among slow ones */
    serve(&b, 0, T0 + 2 * MS, 5 * MS, 1 * MS, 1 << 20);
    uint64_t t = bal_quickest_ttfb_ns(&b);
    assert_true(t >= 100 * US && t <= 101 * US);
    assert_true(bal_nearest_ns(&b) > 1 * MS); /* the average is far above it */
    serve(&b, 1, T0, 50 * US, 1 * MS, 1 << 20);
    t = bal_quickest_ttfb_ns(&b);
    assert_true(t >= 50 * US && t <= 51 * US);
    for (int k = 0; k < 8; k++) bal_done(&b, 1, BAL_FAIL, 0, T0 + S, 0, T0 + S + MS, 0); /* ejected */
    assert_true(bal_ejected(&b, 1, T0 + S + 2 * MS));
    t = bal_quickest_ttfb_ns(&b);
    assert_true(t >= 100 * US && t <= 101 * US);
    bal_free(&b);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_names),
        cmocka_unit_test(test_score_arithmetic),
        cmocka_unit_test(test_peak_ewma),
        cmocka_unit_test(test_idle_fade_and_busy_wait),
        cmocka_unit_test(test_sewt_prefers_fast),
        cmocka_unit_test(test_queue_cost_learnt),
        cmocka_unit_test(test_pick_below),
        cmocka_unit_test(test_ties_spread),
        cmocka_unit_test(test_cold_exploration),
        cmocka_unit_test(test_least_and_rr),
        cmocka_unit_test(test_ejection_and_probe),
        cmocka_unit_test(test_never_nowhere),
        cmocka_unit_test(test_failure_raises_score),
        cmocka_unit_test(test_hedge_delay_and_budget),
        cmocka_unit_test(test_many_endpoints),
        cmocka_unit_test(test_fastest_body),
        cmocka_unit_test(test_quickest_ttfb),
        cmocka_unit_test(test_done_held),
        cmocka_unit_test(test_threads_sewt_4),
        cmocka_unit_test(test_threads_sewt_32),
        cmocka_unit_test(test_threads_least_rr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
