/* dio_cmp - reads of a file under test compared byte for byte with a reference copy,
 * shaped to hit every case of an O_DIRECT reader: 1-byte reads, reads across block and
 * chunk boundaries, aligned reads into aligned buffers (the zero-copy path), odd sizes,
 * reads that cross or start past end of file, and sequential read() runs of odd sizes.
 *
 * usage: dio_cmp FILE REFERENCE THREADS ITERATIONS
 *
 * Every thread shares one descriptor for pread() and opens its own for its read() run.
 * Each pread must return exactly min(len, size - off) bytes (0 past the end) equal to
 * the reference. Prints one line; exits 0 if all matched, 1 on a mismatch, 2 on set-up
 * errors. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *path;
static unsigned char *ref;
static long long size;
static int shared_fd, iterations;
static atomic_int failures;
static atomic_llong calls, bytes;

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void check(const char *what, long long off, size_t len, ssize_t got, const unsigned char *buf)
{
    long long want = off >= size ? 0 : (long long)len < size - off ? (long long)len : size - off;
    atomic_fetch_add(&calls, 1);
    if (got != want) {
        if (atomic_fetch_add(&failures, 1) < 10)
            fprintf(stderr, "dio_cmp: %s at %lld len %zu: got %zd want %lld (%s)\n", what, off, len, got, want,
                    got < 0 ? strerror(errno) : "");
        return;
    }
    if (want > 0 && memcmp(buf, ref + off, (size_t)want) != 0) {
        long long i = 0;
        while (buf[i] == ref[off + i]) i++;
        if (atomic_fetch_add(&failures, 1) < 10)
            fprintf(stderr, "dio_cmp: %s at %lld len %zu: byte %lld differs\n", what, off, len, off + i);
        return;
    }
    atomic_fetch_add(&bytes, want);
}

static void *worker(void *arg)
{
    uint64_t s = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
    size_t cap = (4u << 20) + 8192;
    unsigned char *mem;
    if (posix_memalign((void **)&mem, 4096, cap)) return NULL;
    for (int i = 0; i < iterations; i++) {
        long long span = size + 8192;
        long long off = (long long)(rnd(&s) % (uint64_t)span);
        size_t len;
        unsigned char *buf = mem + 1 + rnd(&s) % 511; /* unaligned buffer */
        switch (rnd(&s) % 8) {
        case 0: len = 1; break;
        case 1: /* across a block boundary */
            off = (off & ~4095LL) + 4096 - 1 - (long long)(rnd(&s) % 3);
            len = 2 + rnd(&s) % 1024;
            break;
        case 2: /* aligned offset, length and buffer: straight into it */
            off &= ~4095LL;
            len = 4096 * (1 + rnd(&s) % 256);
            buf = mem;
            break;
        case 3: /* across a 1 MiB chunk boundary */
            off = (off & ~((1LL << 20) - 1)) + (1LL << 20) - (long long)(rnd(&s) % 5000);
            len = 1 + rnd(&s) % 10000;
            break;
        case 4: /* near or past the end */
            off = size - (long long)(rnd(&s) % 5000) + (long long)(rnd(&s) % 3000);
            if (off < 0) off = 0;
            len = 1 + rnd(&s) % 9000;
            break;
        case 5: len = 1 + rnd(&s) % (3u << 20); break; /* big and odd */
        default: len = 1 + rnd(&s) % 70000; break;
        }
        ssize_t got = pread(shared_fd, buf, len, off);
        check("pread", off, len, got, buf);
    }
    /* a sequential read() run with odd sizes on a descriptor of our own */
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        atomic_fetch_add(&failures, 1);
        fprintf(stderr, "dio_cmp: open %s: %s\n", path, strerror(errno));
    } else {
        long long pos = 0;
        for (int k = 0; pos <= size && k < 100000; k++) {
            size_t len = k % 3 == 0 ? 1 + rnd(&s) % 300000 : 1 + rnd(&s) % 5000;
            ssize_t got = read(fd, mem, len);
            check("read", pos, len, got, mem);
            if (got <= 0) break;
            pos += got;
        }
        close(fd);
    }
    free(mem);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: dio_cmp FILE REFERENCE THREADS ITERATIONS\n");
        return 2;
    }
    path = argv[1];
    int nthreads = atoi(argv[3]);
    iterations = atoi(argv[4]);
    if (nthreads < 1 || nthreads > 256) return 2;
    FILE *r = fopen(argv[2], "rb");
    if (!r || fseek(r, 0, SEEK_END) < 0 || (size = ftell(r)) < 0 || fseek(r, 0, SEEK_SET) < 0) {
        fprintf(stderr, "dio_cmp: %s: %s\n", argv[2], strerror(errno));
        return 2;
    }
    ref = malloc((size_t)size + 1);
    if (!ref || fread(ref, 1, (size_t)size, r) != (size_t)size) {
        fprintf(stderr, "dio_cmp: reading %s failed\n", argv[2]);
        return 2;
    }
    fclose(r);
    shared_fd = open(path, O_RDONLY);
    if (shared_fd < 0) {
        fprintf(stderr, "dio_cmp: %s: %s\n", path, strerror(errno));
        return 2;
    }
    pthread_t t[256];
    for (int i = 0; i < nthreads; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
    for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
    close(shared_fd);
    int f = atomic_load(&failures);
    printf("dio_cmp %s: %d threads, %lld reads, %lld bytes, %d mismatches\n", f ? "FAIL" : "ok", nthreads,
           (long long)calls, (long long)bytes, f);
    free(ref);
    return f ? 1 : 0;
}
