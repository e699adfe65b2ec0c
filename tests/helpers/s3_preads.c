/* s3_preads - many threads of random pread() on ONE descriptor of a large object,
 * every byte checked against a local reference copy.
 *
 * usage: s3_preads FILE REFERENCE [PREADS_PER_THREAD [THREADS]]
 *
 * FILE is the object under test (under the shim: a path in an s3:// mount); REFERENCE
 * is a local file with the bytes FILE must have (mapped, outside any mount). The
 * threads (16 by default) start together and each issues PREADS_PER_THREAD (default
 * 30) pread() calls from its own fixed seed: mostly small reads anywhere (up to 64 KiB),
 * some medium ones (up to 1 MiB), some large ones (1-4 MiB, which an S3 engine serves
 * as parallel ranged GETs), some crossing or starting past the end of the object. A
 * pread() on a regular file returns the whole request up to EOF, so a short count is a
 * failure too. Afterwards the descriptor's offset must still be 0.
 *
 * Prints one summary line; diagnostics on stderr; exit 0 if every byte matched, 1 on a
 * mismatch or error, 2 on a usage or set-up error. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_THREADS 64
#define LARGE_MAX ((size_t)4 << 20)

static int fd;
static const unsigned char *ref;
static size_t ref_size;
static int per_thread = 30;
static atomic_int failures;
static atomic_ullong total_bytes, total_calls;
static pthread_barrier_t start;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    if (atomic_fetch_add(&failures, 1) >= 20) return; /* enough to diagnose */
    va_list ap;
    va_start(ap, fmt);
    fputs("s3_preads: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static uint64_t next_rand(uint64_t *s)
{
    /* xorshift64*: deterministic per thread */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static void *worker(void *arg)
{
    int tid = (int)(intptr_t)arg;
    uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(tid + 1);
    unsigned char *buf = malloc(LARGE_MAX);
    if (!buf) {
        fail("thread %d: out of memory", tid);
        return NULL;
    }
    pthread_barrier_wait(&start);
    for (int i = 0; i < per_thread; i++) {
        uint64_t r = next_rand(&s), r2 = next_rand(&s);
        size_t off, len;
        switch (r % 20) {
        case 0: /* across the end */
            len = 1 + r2 % 100000;
            off = ref_size > len / 2 ? ref_size - len / 2 : 0;
            break;
        case 1: /* at or past the end */
            off = ref_size + r2 % 3;
            len = 1 + r2 % 5000;
            break;
        case 2: case 3: /* large: parallel ranged GETs */
            len = ((size_t)1 << 20) + r2 % (LARGE_MAX - ((size_t)1 << 20));
            off = (size_t)((r >> 8) % ref_size);
            break;
        case 4: case 5: case 6: /* medium */
            len = 65536 + r2 % ((1 << 20) - 65536);
            off = (size_t)((r >> 8) % ref_size);
            break;
        default: /* small */
            len = 1 + r2 % 65536;
            off = (size_t)((r >> 8) % ref_size);
            break;
        }
        size_t want = off >= ref_size ? 0 : (len < ref_size - off ? len : ref_size - off);
        ssize_t got = pread(fd, buf, len, (off_t)off);
        atomic_fetch_add(&total_calls, 1);
        if (got < 0) {
            fail("thread %d: pread(off %zu, len %zu): %s", tid, off, len, strerror(errno));
            continue;
        }
        if ((size_t)got != want) {
            fail("thread %d: pread(off %zu, len %zu) returned %zd, want %zu", tid, off, len, got, want);
            if ((size_t)got > want) continue;
        }
        if (got > 0 && memcmp(buf, ref + off, (size_t)got) != 0) {
            size_t k = 0;
            while (buf[k] == ref[off + k]) k++;
            fail("thread %d: pread(off %zu, len %zu): first wrong byte at offset %zu", tid, off, len, off + k);
            continue;
        }
        atomic_fetch_add(&total_bytes, (unsigned long long)got);
    }
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: s3_preads FILE REFERENCE [PREADS_PER_THREAD [THREADS]]\n");
        return 2;
    }
    int nthreads = 16;
    if (argc >= 4) per_thread = atoi(argv[3]);
    if (argc >= 5) nthreads = atoi(argv[4]);
    if (per_thread < 1 || nthreads < 1 || nthreads > MAX_THREADS) {
        fprintf(stderr, "s3_preads: bad counts\n");
        return 2;
    }
    int rfd = open(argv[2], O_RDONLY | O_CLOEXEC);
    struct stat rst;
    if (rfd < 0 || fstat(rfd, &rst) != 0 || rst.st_size == 0) {
        fprintf(stderr, "s3_preads: %s: %s\n", argv[2], rfd < 0 ? strerror(errno) : "empty or unreadable");
        return 2;
    }
    ref_size = (size_t)rst.st_size;
    ref = mmap(NULL, ref_size, PROT_READ, MAP_PRIVATE, rfd, 0);
    if (ref == MAP_FAILED) {
        fprintf(stderr, "s3_preads: mmap %s: %s\n", argv[2], strerror(errno));
        return 2;
    }
    close(rfd);

    fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "s3_preads: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    if ((size_t)st.st_size != ref_size || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "s3_preads: %s: size %lld mode %o, the reference has %zu bytes\n", argv[1],
                (long long)st.st_size, (unsigned)st.st_mode, ref_size);
        return 1;
    }
    pthread_t th[MAX_THREADS];
    pthread_barrier_init(&start, NULL, (unsigned)nthreads);
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) != 0) {
            fprintf(stderr, "s3_preads: pthread_create failed\n");
            return 2;
        }
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    off_t cur = lseek(fd, 0, SEEK_CUR);
    if (cur != 0) fail("the offset is %lld after the preads, want 0", (long long)cur);
    if (close(fd) != 0) fail("close: %s", strerror(errno));
    int f = atomic_load(&failures);
    printf("s3_preads: %d threads, %llu preads, %llu bytes of %zu-byte object: %s\n", nthreads,
           (unsigned long long)atomic_load(&total_calls), (unsigned long long)atomic_load(&total_bytes), ref_size,
           f ? "MISMATCH" : "all match");
    return f ? 1 : 0;
}
