/* s3io - the small-I/O side of the S3 benchmark (bench/s3/run.sh).
 *
 * An ordinary program: run it under LD_PRELOAD=libs3shim.so and give it a /s3/... path.
 *
 *   s3io ranges SIZE N BLOCK SEED
 *       print N "FIRST-LAST" byte ranges of BLOCK bytes at random BLOCK-aligned offsets
 *       of an object of SIZE bytes (the same ranges `pread` reads with the same SEED), so
 *       that a peer (curl) can fetch exactly the same ones.
 *
 *   s3io pread FILE N BLOCK SEED
 *       open FILE, fstat it, then N x pread(BLOCK) at those offsets, and check that every
 *       pread returned BLOCK bytes. Prints one line:
 *         open_us=O n=N block=B secs=S reqs_per_s=R p50_us=P p99_us=Q
 *       secs covers the preads only (not the open).
 *
 *   s3io ttfb FILE REPS
 *       REPS x { open(FILE); read(fd, buf, 64 KiB); close }, timing open -> the first
 *       read's return (time to first byte as a program sees it). Prints one line per rep:
 *         ttfb_us=T bytes=N
 *
 * Exit status 0 when every call succeeded, 1 otherwise, 2 on a usage error. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* splitmix64: the same sequence everywhere for one seed */
static uint64_t rng_state;
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int64_t *offsets(int64_t size, long n, long block, uint64_t seed)
{
    int64_t nblocks = size / block;
    if (nblocks < 1) return NULL;
    int64_t *o = malloc((size_t)n * sizeof *o);
    if (!o) return NULL;
    rng_state = seed;
    for (long i = 0; i < n; i++) o[i] = (int64_t)(rng() % (uint64_t)nblocks) * block;
    return o;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int do_ranges(int64_t size, long n, long block, uint64_t seed)
{
    int64_t *o = offsets(size, n, block, seed);
    if (!o) return 2;
    for (long i = 0; i < n; i++) printf("%" PRId64 "-%" PRId64 "\n", o[i], o[i] + block - 1);
    free(o);
    return 0;
}

static int do_pread(const char *path, long n, long block, uint64_t seed)
{
    double t0 = now();
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "s3io: open %s: %s\n", path, strerror(errno));
        return 1;
    }
    double t_open = now() - t0;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        fprintf(stderr, "s3io: fstat %s: %s\n", path, strerror(errno));
        return 1;
    }
    int64_t *o = offsets(st.st_size, n, block, seed);
    char *buf = malloc((size_t)block);
    double *lat = malloc((size_t)n * sizeof *lat);
    if (!o || !buf || !lat) {
        fprintf(stderr, "s3io: object too small or out of memory\n");
        return 2;
    }
    int bad = 0;
    double start = now();
    for (long i = 0; i < n; i++) {
        double a = now();
        ssize_t r = pread(fd, buf, (size_t)block, (off_t)o[i]);
        lat[i] = now() - a;
        if (r != block) {
            fprintf(stderr, "s3io: pread at %" PRId64 " returned %zd (%s)\n", o[i], r, r < 0 ? strerror(errno) : "short");
            bad = 1;
            break;
        }
    }
    double secs = now() - start;
    close(fd);
    if (bad) return 1;
    qsort(lat, (size_t)n, sizeof *lat, cmp_d);
    printf("open_us=%.0f n=%ld block=%ld secs=%.4f reqs_per_s=%.1f p50_us=%.0f p99_us=%.0f\n", t_open * 1e6, n, block,
           secs, (double)n / secs, lat[n / 2] * 1e6, lat[(n * 99) / 100] * 1e6);
    free(o);
    free(buf);
    free(lat);
    return 0;
}

static int do_ttfb(const char *path, long reps)
{
    static char buf[65536];
    int rc = 0;
    for (long i = 0; i < reps; i++) {
        double t0 = now();
        int fd = open(path, O_RDONLY);
        if (fd < 0) {
            fprintf(stderr, "s3io: open %s: %s\n", path, strerror(errno));
            return 1;
        }
        ssize_t r = read(fd, buf, sizeof buf);
        double t = now() - t0;
        if (r <= 0) {
            fprintf(stderr, "s3io: read %s: %s\n", path, r < 0 ? strerror(errno) : "empty");
            rc = 1;
        }
        close(fd);
        printf("ttfb_us=%.1f bytes=%zd\n", t * 1e6, r);
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 6 && !strcmp(argv[1], "ranges"))
        return do_ranges(strtoll(argv[2], NULL, 0), strtol(argv[3], NULL, 0), strtol(argv[4], NULL, 0),
                         strtoull(argv[5], NULL, 0));
    if (argc == 6 && !strcmp(argv[1], "pread"))
        return do_pread(argv[2], strtol(argv[3], NULL, 0), strtol(argv[4], NULL, 0), strtoull(argv[5], NULL, 0));
    if (argc == 4 && !strcmp(argv[1], "ttfb")) return do_ttfb(argv[2], strtol(argv[3], NULL, 0));
    fprintf(stderr, "usage: s3io ranges SIZE N BLOCK SEED | pread FILE N BLOCK SEED | ttfb FILE REPS\n");
    return 2;
}
