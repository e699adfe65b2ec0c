/* select.c - what choosing an endpoint costs: bal_pick() plus giving the request back,
 * in CPU ns per selection, with 4 and 32 warm endpoints, from 1 and 8 threads.
 *
 *   select [SECONDS_PER_CASE]
 *
 * Linked against the engine's own balance.c (not a copy): the figure is the code the
 * shim runs. Each thread picks and releases in a tight loop; a pick reads the clock
 * first, as the client does. */
#include "../../core/s3/balance.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct arg {
    struct balancer *b;
    double secs;
    uint64_t picks, ns;
};

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The cost is the thread's CPU time per selection: with more threads than cores the
 * wall clock would count time spent descheduled. */
static void *loop(void *p)
{
    struct arg *a = p;
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(a->secs * 1e9), n = 0, t = t0, c0 = cpu_ns();
    while (t < end) {
        for (int k = 0; k < 1024; k++) {
            int i = bal_pick(a->b, 65536, -1, now_ns(), NULL);
            bal_release(a->b, i);
        }
        n += 1024;
        t = now_ns();
    }
    a->picks = n;
    a->ns = cpu_ns() - c0;
    return NULL;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    int neps[] = {4, 32}, nthr[] = {1, 8};
    printf("%-10s %-8s %14s %16s\n", "endpoints", "threads", "selections/s", "cpu ns/select");
    for (int e = 0; e < 2; e++)
        for (int t = 0; t < 2; t++) {
            struct balancer b;
            bal_init(&b, neps[e], BAL_SEWT);
            uint64_t now = now_ns();
            for (int i = 0; i < neps[e]; i++) { /* warm: every endpoint measured */
                bal_take(&b, i, now, NULL);
                bal_done(&b, i, BAL_OK, 0, now, now + (uint64_t)(i + 1) * 1000000, now + (uint64_t)(i + 2) * 1000000,
                         1 << 20);
            }
            pthread_t th[8];
            struct arg a[8];
            for (int k = 0; k < nthr[t]; k++) {
                a[k] = (struct arg){&b, secs, 0, 0};
                pthread_create(&th[k], NULL, loop, &a[k]);
            }
            uint64_t picks = 0;
            double per = 0;
            for (int k = 0; k < nthr[t]; k++) {
                pthread_join(th[k], NULL);
                picks += a[k].picks;
                per += (double)a[k].ns / (double)a[k].picks;
            }
            per /= nthr[t];
            printf("%-10d %-8d %14.0f %16.1f\n", neps[e], nthr[t], (double)picks / secs, per);
            bal_free(&b);
        }
    return 0;
}
