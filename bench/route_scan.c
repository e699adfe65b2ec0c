/* route_scan.c - the pass-through path test alone (shim/route_scan.h), timed per CPU form.
 *
 * Why: bench/passthrough.sh counts instructions, but the forms differ in what an
 * instruction costs (pcmpistrm, the SSE4.2 form's, takes several cycles). This program
 * runs ROUTE_SCAN_FIRST on one path in a loop, for the AVX2, SSE4.2 and SSE2 forms in
 * turn (the same tables the shim builds, without a mount), ROUNDS times, and prints the
 * best ns per call of each (the loop and a call included, the same for every form).
 *
 *   route_scan [PATH [CALLS [ROUNDS]]]     (default: a 42-byte path, 2000000, 15) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUTE_HIDDEN __attribute__((visibility("hidden")))
#include "../shim/route_scan.h"

#ifndef ROUTE_VECTOR_SCAN
int main(void)
{
    printf("# route_scan: the path test's assembly is for x86-64 only\n");
    return 0;
}
#else
unsigned char route_avx2, route_sse42;
struct route_tab route_tab;
const char route_dot = '.';
const unsigned char route_dots16[16] __attribute__((aligned(16))) = {'.', '.', '.', '.', '.', '.', '.', '.',
                                                                     '.', '.', '.', '.', '.', '.', '.', '.'};
const unsigned char route_dotdot16[16] __attribute__((aligned(16))) = {'.', '.'};

/* 1 foreign, 0 the routed path would decide, 2 relative */
static __attribute__((noinline)) int scan(const char *p)
{
    ROUTE_SCAN_FIRST(p);
    return 2;
route_maybe:
    return 0;
route_clean:
    return 1;
}

static void form(int avx2, int sse42)
{
    route_avx2 = (unsigned char)avx2;
    route_sse42 = (unsigned char)sse42;
    for (int c = 0; c < 256; c++)
        route_tab.cls[c] = c == 0 || c == '/' || c == '.' ? ROUTE_CLS_ROUTED : avx2 ? ROUTE_CLS_AVX2 : ROUTE_CLS_SSE;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
    static char path[4096] __attribute__((aligned(4096)));
    snprintf(path, sizeof path, "%s", argc > 1 ? argv[1] : "/tmp/s3shim_bench_Ab12Cd/real/no-such-file");
    long calls = argc > 2 ? atol(argv[2]) : 2000000;
    int rounds = argc > 3 ? atoi(argv[3]) : 15;
    static const struct {
        const char *name;
        int avx2, sse42;
    } forms[] = {{"avx2", 1, 1}, {"sse42", 0, 1}, {"sse2", 0, 0}};
    int have_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
    int have_sse42 = __builtin_cpu_supports("sse4.2");
    double best[3] = {1e18, 1e18, 1e18};
    int answer[3] = {-1, -1, -1};
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < 3; k++) {
            int f = (r % 2) ? 2 - k : k; /* the order turns every round */
            if ((forms[f].avx2 && !have_avx2) || (forms[f].sse42 && !have_sse42)) continue;
            form(forms[f].avx2, forms[f].sse42);
            long sum = 0;
            double t0 = now();
            for (long i = 0; i < calls; i++) sum += scan(path);
            double ns = (now() - t0) / (double)calls;
            if (ns < best[f]) best[f] = ns;
            answer[f] = (int)(sum / calls);
        }
    printf("# path \"%s\" (%zu bytes), %ld calls x %d rounds, best ns per call\n", path, strlen(path), calls, rounds);
    for (int f = 0; f < 3; f++)
        if (answer[f] >= 0) printf("%-6s %8.2f ns  (answer %d)\n", forms[f].name, best[f], answer[f]);
    return 0;
}
#endif
