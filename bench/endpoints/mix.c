/* mix.c - a fixed mix of reads from several concurrent readers, timed as the program
 * sees them. Run under the shim against an object on several S3 endpoints; each read
 * is one or more requests, so its latency is what the endpoint choice gives.
 *
 *   mix FILE THREADS READS SEED OUT.csv
 *
 * Each thread opens FILE itself and does READS preads at random offsets: 80% of 64 KiB,
 * 20% of 1 MiB (a seeded generator per thread: the same mix in every run). One line per
 * read goes to OUT.csv: start (ms since the first read), latency (us), bytes. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct sample {
    uint64_t start_ns, lat_ns;
    uint32_t bytes;
};

struct job {
    const char *path;
    int reads;
    uint64_t seed, t0, size;
    struct sample *s;
    int err;
    pthread_t thr;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t next(uint64_t *x)
{
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

static void *run(void *arg)
{
    struct job *j = arg;
    int fd = open(j->path, O_RDONLY);
    if (fd < 0) {
        j->err = errno;
        return NULL;
    }
    char *buf = malloc(1 << 20);
    uint64_t x = j->seed;
    for (int i = 0; i < j->reads && buf; i++) {
        uint32_t len = next(&x) % 100 < 80 ? 64 << 10 : 1 << 20;
        uint64_t off = (next(&x) % ((j->size - len) >> 16)) << 16;
        uint64_t t = now_ns();
        ssize_t n = pread(fd, buf, len, (off_t)off);
        uint64_t e = now_ns();
        if (n != (ssize_t)len) {
            j->err = n < 0 ? errno : EIO;
            break;
        }
        j->s[i] = (struct sample){t - j->t0, e - t, len};
    }
    free(buf);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s FILE THREADS READS SEED OUT.csv\n", argv[0]);
        return 2;
    }
    int nt = atoi(argv[2]), reads = atoi(argv[3]);
    uint64_t seed = strtoull(argv[4], NULL, 10);
    struct stat st;
    if (nt < 1 || reads < 1 || stat(argv[1], &st) < 0 || st.st_size < (2 << 20)) {
        fprintf(stderr, "mix: bad arguments or %s missing / smaller than 2 MiB\n", argv[1]);
        return 2;
    }
    struct job *jobs = calloc((size_t)nt, sizeof *jobs);
    uint64_t t0 = now_ns();
    for (int i = 0; i < nt; i++) {
        jobs[i] = (struct job){argv[1], reads, seed * 1000003u + (uint64_t)i * 7919u + 1, t0, (uint64_t)st.st_size,
                               calloc((size_t)reads, sizeof(struct sample)), 0, 0};
        pthread_create(&jobs[i].thr, NULL, run, &jobs[i]);
    }
    int bad = 0;
    for (int i = 0; i < nt; i++) {
        pthread_join(jobs[i].thr, NULL);
        if (jobs[i].err) {
            fprintf(stderr, "mix: thread %d: %s\n", i, strerror(jobs[i].err));
            bad = 1;
        }
    }
    FILE *out = fopen(argv[5], "w");
    if (!out) {
        perror(argv[5]);
        return 1;
    }
    for (int i = 0; i < nt; i++)
        for (int k = 0; k < reads; k++)
            if (jobs[i].s[k].bytes)
                fprintf(out, "%.3f,%.1f,%u\n", (double)jobs[i].s[k].start_ns / 1e6, (double)jobs[i].s[k].lat_ns / 1e3,
                        jobs[i].s[k].bytes);
    fclose(out);
    return bad;
}
