/* preads - concurrent reads of one file, checked against a reference copy.
 *
 * usage: preads FILE REFERENCE [ITERATIONS]
 *
 * FILE is the file under test (under the shim: a path in a mount); REFERENCE is a copy
 * with the same bytes, read whole into memory first (outside any mount, so it passes
 * through the shim). Four phases, each run by 16 threads, with a fixed seed per thread
 * so that the output is the same in every run:
 *
 *   1. pread() at random offsets and lengths (crossing EOF too) on ONE shared fd; the
 *      shared offset must stay 0 afterwards.
 *   2. read() of fixed-size chunks on ONE shared fd: the reads must split the file into
 *      distinct chunks that tile it exactly (the offset update is atomic).
 *   3. every thread opens its own fd, then lseek()+read() at random places, and closes.
 *   4. every thread dup()s the shared fd, preadv()s through the dup, closes the dup.
 *
 * Prints one line per phase (deterministic), diagnostics on stderr; exits 0 if every
 * byte matched, 1 on a mismatch, 2 on a usage or set-up error. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define NTHREADS 16
#define CHUNK 4096
#define MAXLEN 20000

static const char *path;
static unsigned char *ref;
static size_t ref_size;
static int shared_fd;
static int iterations = 400;
static atomic_int failures;
static atomic_ullong total_bytes, total_calls;

/* Chunk bookkeeping for phase 2. */
static atomic_int *chunk_seen;
static size_t nchunks;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    if (atomic_fetch_add(&failures, 1) >= 20) return; /* enough to diagnose */
    va_list ap;
    va_start(ap, fmt);
    fputs("preads: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static uint64_t next_rand(uint64_t *s)
{
    /* xorshift64*: deterministic per thread. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Expected byte count of a read of len bytes at off. */
static size_t expect_len(size_t off, size_t len)
{
    if (off >= ref_size) return 0;
    return len < ref_size - off ? len : ref_size - off;
}

static void check(const char *what, int tid, size_t off, size_t len, ssize_t got, const unsigned char *buf)
{
    size_t want = expect_len(off, len);
    atomic_fetch_add(&total_calls, 1);
    if (got < 0) {
        fail("%s thread %d: off %zu len %zu: %s", what, tid, off, len, strerror(errno));
        return;
    }
    if ((size_t)got != want) {
        fail("%s thread %d: off %zu len %zu: got %zd bytes, want %zu", what, tid, off, len, got, want);
        return;
    }
    if (want && memcmp(buf, ref + off, want) != 0) {
        size_t i = 0;
        while (buf[i] == ref[off + i]) i++;
        fail("%s thread %d: off %zu len %zu: first difference at byte %zu", what, tid, off, len, off + i);
        return;
    }
    atomic_fetch_add(&total_bytes, want);
}

static size_t rand_off(uint64_t *s)
{
    /* Mostly inside the file, sometimes right at the end or past it. */
    uint64_t r = next_rand(s);
    switch (r % 8) {
    case 0: return ref_size;
    case 1: return ref_size + (r >> 8) % 100;
    case 2: return ref_size > 10 ? ref_size - (r >> 8) % 10 : 0;
    default: return ref_size ? (size_t)((r >> 8) % ref_size) : 0;
    }
}

static void *phase1(void *arg)
{
    int tid = (int)(intptr_t)arg;
    uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(tid + 1);
    unsigned char *buf = malloc(MAXLEN);
    for (int i = 0; i < iterations && buf; i++) {
        size_t off = rand_off(&s), len = next_rand(&s) % MAXLEN;
        if (i % 50 == 0) len = 0;
        ssize_t n = pread(shared_fd, buf, len, (off_t)off);
        check("pread", tid, off, len, n, buf);
    }
    free(buf);
    return NULL;
}

static void *phase2(void *arg)
{
    int tid = (int)(intptr_t)arg;
    unsigned char *buf = malloc(CHUNK);
    off_t prev = -1;
    for (;;) {
        ssize_t n = read(shared_fd, buf, CHUNK);
        if (n < 0) {
            fail("read thread %d: %s", tid, strerror(errno));
            break;
        }
        if (n == 0) break;
        /* Which chunk did we get? Random data: find it by content. The offsets one
         * thread sees must increase, and the chunk must be whole unless it is the last. */
        size_t found = nchunks;
        for (size_t c = 0; c < nchunks; c++) {
            size_t off = c * CHUNK, want = expect_len(off, CHUNK);
            if ((size_t)n == want && memcmp(buf, ref + off, want) == 0) {
                found = c;
                break;
            }
        }
        atomic_fetch_add(&total_calls, 1);
        if (found == nchunks) {
            fail("read thread %d: a %zd-byte read matches no chunk of the file", tid, n);
            continue;
        }
        if ((off_t)found <= prev) fail("read thread %d: chunk %zu after chunk %lld", tid, found, (long long)prev);
        prev = (off_t)found;
        if (atomic_fetch_add(&chunk_seen[found], 1) != 0) fail("read thread %d: chunk %zu read twice", tid, found);
        atomic_fetch_add(&total_bytes, (unsigned long long)n);
    }
    free(buf);
    return NULL;
}

static void *phase3(void *arg)
{
    int tid = (int)(intptr_t)arg;
    uint64_t s = 0xd1b54a32d192ed03ull * (uint64_t)(tid + 7);
    unsigned char *buf = malloc(MAXLEN);
    for (int i = 0; i < iterations / 8 && buf; i++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fail("open thread %d: %s", tid, strerror(errno));
            break;
        }
        for (int j = 0; j < 8; j++) {
            size_t off = rand_off(&s), len = next_rand(&s) % MAXLEN;
            off_t r = lseek(fd, (off_t)off, SEEK_SET);
            if (r != (off_t)off) {
                fail("lseek thread %d: to %zu gave %lld (%s)", tid, off, (long long)r, strerror(errno));
                continue;
            }
            size_t got = 0;
            ssize_t n;
            while (got < len && (n = read(fd, buf + got, len - got)) > 0) got += (size_t)n;
            check("open+read", tid, off, len, (ssize_t)got, buf);
            off_t cur = lseek(fd, 0, SEEK_CUR);
            if (cur != (off_t)(off + got)) fail("lseek thread %d: offset %lld after read, want %zu", tid, (long long)cur, off + got);
        }
        if (close(fd) != 0) fail("close thread %d: %s", tid, strerror(errno));
    }
    free(buf);
    return NULL;
}

static void *phase4(void *arg)
{
    int tid = (int)(intptr_t)arg;
    uint64_t s = 0x2545f4914f6cdd1dull * (uint64_t)(tid + 3);
    unsigned char *buf = malloc(2 * MAXLEN);
    for (int i = 0; i < iterations / 8 && buf; i++) {
        int fd = dup(shared_fd);
        if (fd < 0) {
            fail("dup thread %d: %s", tid, strerror(errno));
            break;
        }
        for (int j = 0; j < 4; j++) {
            size_t off = rand_off(&s), l1 = next_rand(&s) % MAXLEN, l2 = next_rand(&s) % MAXLEN;
            struct iovec iov[2] = {{buf, l1}, {buf + l1, l2}};
            ssize_t n = preadv(fd, iov, 2, (off_t)off);
            check("preadv", tid, off, l1 + l2, n, buf);
        }
        if (close(fd) != 0) fail("close dup thread %d: %s", tid, strerror(errno));
    }
    free(buf);
    return NULL;
}

static void run(const char *name, void *(*fn)(void *))
{
    pthread_t th[NTHREADS];
    atomic_store(&total_bytes, 0);
    atomic_store(&total_calls, 0);
    int before = atomic_load(&failures);
    for (int i = 0; i < NTHREADS; i++)
        if (pthread_create(&th[i], NULL, fn, (void *)(intptr_t)i) != 0) {
            fprintf(stderr, "preads: pthread_create failed\n");
            exit(2);
        }
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    printf("%-10s %d threads: %llu calls, %llu bytes, %s\n", name, NTHREADS,
           (unsigned long long)atomic_load(&total_calls), (unsigned long long)atomic_load(&total_bytes),
           atomic_load(&failures) == before ? "all match" : "MISMATCH");
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: preads FILE REFERENCE [ITERATIONS]\n");
        return 2;
    }
    path = argv[1];
    if (argc == 4) iterations = atoi(argv[3]);
    if (iterations < 8) iterations = 8;

    int rfd = open(argv[2], O_RDONLY | O_CLOEXEC);
    struct stat rst;
    if (rfd < 0 || fstat(rfd, &rst) != 0) {
        fprintf(stderr, "preads: %s: %s\n", argv[2], strerror(errno));
        return 2;
    }
    ref_size = (size_t)rst.st_size;
    ref = malloc(ref_size + 1);
    for (size_t got = 0; got < ref_size;) {
        ssize_t n = read(rfd, ref + got, ref_size - got);
        if (n <= 0) {
            fprintf(stderr, "preads: reading %s: %s\n", argv[2], n ? strerror(errno) : "short file");
            return 2;
        }
        got += (size_t)n;
    }
    close(rfd);

    shared_fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (shared_fd < 0 || fstat(shared_fd, &st) != 0) {
        fprintf(stderr, "preads: %s: %s\n", path, strerror(errno));
        return 2;
    }
    if ((size_t)st.st_size != ref_size || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "preads: %s: size %lld mode %o, reference has size %zu\n", path, (long long)st.st_size,
                (unsigned)st.st_mode, ref_size);
        return 1;
    }
    printf("file       %zu bytes\n", ref_size);

    run("pread", phase1);
    off_t cur = lseek(shared_fd, 0, SEEK_CUR);
    if (cur != 0) fail("offset is %lld after preads, want 0", (long long)cur);

    nchunks = (ref_size + CHUNK - 1) / CHUNK;
    chunk_seen = calloc(nchunks + 1, sizeof *chunk_seen);
    run("read", phase2);
    for (size_t c = 0; c < nchunks; c++)
        if (atomic_load(&chunk_seen[c]) != 1) {
            fail("chunk %zu of %zu read %d times by the shared-offset readers", c, nchunks,
                 atomic_load(&chunk_seen[c]));
            break;
        }
    cur = lseek(shared_fd, 0, SEEK_CUR);
    if (cur != (off_t)ref_size) fail("offset is %lld after reading to EOF, want %zu", (long long)cur, ref_size);

    run("open+read", phase3);
    if (lseek(shared_fd, 0, SEEK_SET) != 0) fail("rewind: %s", strerror(errno));
    run("dup+preadv", phase4);
    cur = lseek(shared_fd, 0, SEEK_CUR);
    if (cur != 0) fail("offset is %lld after preadv through dups, want 0", (long long)cur);
    if (close(shared_fd) != 0) fail("close: %s", strerror(errno));

    int f = atomic_load(&failures);
    printf("%s\n", f ? "FAILED" : "ok");
    free(chunk_seen);
    free(ref);
    return f ? 1 : 0;
}
