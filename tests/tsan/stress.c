/* stress.c - many threads hammering shim descriptors and paths, for ThreadSanitizer.
 *
 * Linked directly against the TSan build of libs3shim.so (not preloaded), so its calls to
 * open, read, dup2, opendir, fopen, ... reach the shim's wrappers. tests/tsan/run.sh
 * exports S3SHIM_MOUNTS="/tsanmnt=file://DIR" before starting it.
 *
 *   tsan_stress --setup DIR     create the data files in the real directory DIR
 *   tsan_stress fstat           fstat()/fstat64() on a shim descriptor, single-threaded
 *   tsan_stress setfl           one thread flips F_SETFL on a shared shim descriptor while
 *                               the others F_GETFL and pread it
 *   tsan_stress fork            the main thread forks repeatedly while 3 threads do I/O on
 *                               shim descriptors; each child uses an inherited one and opens
 *                               another
 *   tsan_stress mixed           every thread loops over all operations (see worker())
 *   tsan_stress seqread         threads share one descriptor's offset with read()/readv()
 *                               and must split the file between them exactly
 *   tsan_stress final           check the files "mixed" left (run after it)
 *   tsan_stress coherent        threads rewrite their own 4 KiB of one O_RDWR file with no
 *                               fsync while a forked child reads it all through an O_RDWR
 *                               descriptor of its own (on block:// each read asks this
 *                               process's answering thread to commit, under the writers)
 *
 * Every read is checked against the expected bytes; any mismatch or unexpected error is
 * printed and makes the exit status 1. Environment: STRESS_THREADS (default 8, 1-32),
 * STRESS_ITERS (mixed, default 120), STRESS_PHASES (seqread, default 12), STRESS_MNT
 * (default /tsanmnt), STRESS_FSTAT (1: "mixed" uses fstat(), see fd_stat()). */
#include <dirent.h>
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
#include <sys/wait.h>
#include <unistd.h>

#define SHARED_SIZE (1024 * 1024) /* shared.bin */
#define CHUNK 4096                /* seqread transfer size; divides SHARED_SIZE */
#define NCHUNKS (SHARED_SIZE / CHUNK)
#define NLINES 400 /* lines.txt */
#define NRO 24     /* ro/f00 .. ro/f23 */
#define MAX_THREADS 32
#define MAX_WRITE (48 * 1024)

static const char *mnt = "/tsanmnt";
static int nthreads = 8;
static int iters = 120;
static int phases = 12;

static atomic_int failures;
static atomic_long ops;

static void fail(int tid, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(int tid, const char *fmt, ...)
{
    int n = atomic_fetch_add(&failures, 1);
    if (n >= 20) return; /* enough to see what is wrong */
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "FAIL [thread %d] %s\n", tid, msg);
}

/* --- expected contents ------------------------------------------------------------ */

/* shared.bin: the little-endian 64-bit word at each 8-aligned offset o is o ^ K, so any
 * aligned chunk tells where it came from. */
#define PAT_K 0xC3A5C85C97CB3127ull
static uint8_t pat(uint64_t off)
{
    uint64_t w = (off & ~(uint64_t)7) ^ PAT_K;
    return (uint8_t)(w >> ((off & 7) * 8));
}

static void pat_fill(uint8_t *buf, uint64_t off, size_t n)
{
    for (size_t i = 0; i < n; i++) buf[i] = pat(off + i);
}

/* Compare n bytes read at off with shared.bin; returns the first bad index or -1. */
static long pat_check(const uint8_t *buf, uint64_t off, size_t n)
{
    uint8_t want[CHUNK];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < CHUNK ? n - done : CHUNK;
        pat_fill(want, off + done, k);
        if (memcmp(buf + done, want, k) != 0) {
            for (size_t i = 0; i < k; i++)
                if (buf[done + i] != want[i]) return (long)(done + i);
        }
        done += k;
    }
    return -1;
}

static int line_text(char *buf, size_t size, int i)
{
    return snprintf(buf, size, "line %05d of lines.txt: %08x\n", i, (unsigned)i * 2654435761u);
}

static int ro_text(char *buf, size_t size, int i) { return snprintf(buf, size, "read-only file %02d\n", i); }

/* Per-thread written files: byte i of (thread, iteration) content. */
static uint8_t wpat(int tid, int it, size_t i) { return (uint8_t)(i * 31 + (size_t)tid * 7 + (size_t)it * 13 + (i >> 9)); }

/* --- helpers ------------------------------------------------------------------------ */

static void mpath(char *buf, size_t size, const char *rel) { snprintf(buf, size, "%s/%s", mnt, rel); }

/* read() until n bytes or EOF/error; returns the count or -1. */
static ssize_t read_full(int fd, void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, (char *)buf + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

static int write_full(int fd, const void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = write(fd, (const char *)buf + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        done += (size_t)r;
    }
    return 0;
}

/* fstat() of a descriptor. With TSan's runtime ahead of the shim in the lookup order,
 * fstat() on a shim descriptor currently recurses without end (TSan's fstat calls
 * __fxstat, the shim's __fxstat calls fstat through the PLT, which is TSan's again), so
 * "mixed" uses fstatat(fd, "", AT_EMPTY_PATH) instead unless STRESS_FSTAT=1; the "fstat"
 * mode checks that case on its own (run.sh sets STRESS_FSTAT=1 once it passes). */
static int use_fstat;
static int fd_stat(int fd, struct stat *st) { return use_fstat ? fstat(fd, st) : fstatat(fd, "", st, AT_EMPTY_PATH); }

struct thread_arg {
    int tid;
    pthread_t th;
    unsigned seed;
    int reserved[2]; /* fd numbers this thread owns (/dev/null when not in use) */
    int devnull;
};

static int shared_fd = -1; /* shared.bin, opened before the threads start; pread only */
static pthread_barrier_t start_line;

/* --- the mixed workload --------------------------------------------------------------- */

/* A. pread on the descriptor every thread shares. */
static void op_shared_pread(struct thread_arg *a, uint8_t *buf)
{
    size_t n = 1 + rand_r(&a->seed) % 8192;
    uint64_t off = (uint64_t)rand_r(&a->seed) % (SHARED_SIZE + 100);
    ssize_t want = off >= SHARED_SIZE ? 0 : (ssize_t)(SHARED_SIZE - off < n ? SHARED_SIZE - off : n);
    ssize_t r = pread(shared_fd, buf, n, (off_t)off);
    if (r != want) {
        fail(a->tid, "pread(shared, %zu, %llu) = %zd (%s), want %zd", n, (unsigned long long)off, r,
             r < 0 ? strerror(errno) : "short", want);
        return;
    }
    long bad = pat_check(buf, off, (size_t)r);
    if (bad >= 0) fail(a->tid, "pread(shared) at %llu: byte %ld differs", (unsigned long long)off, bad);
}

/* B and C. A private descriptor: seek/read/fstat, then dup, dup2 and F_DUPFD on it. */
static void op_private_and_dup(struct thread_arg *a, uint8_t *buf)
{
    char p[256];
    mpath(p, sizeof p, "shared.bin");
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fail(a->tid, "open(%s): %s", p, strerror(errno));
        return;
    }
    uint64_t off = (uint64_t)rand_r(&a->seed) % (SHARED_SIZE - 9000);
    size_t n = 1 + rand_r(&a->seed) % 8192;
    if (lseek(fd, (off_t)off, SEEK_SET) != (off_t)off) fail(a->tid, "lseek(SET %llu): %s", (unsigned long long)off, strerror(errno));
    ssize_t r = read(fd, buf, n);
    if (r != (ssize_t)n)
        fail(a->tid, "read(private, %zu) = %zd", n, r);
    else if (pat_check(buf, off, n) >= 0)
        fail(a->tid, "read(private) at %llu: wrong bytes", (unsigned long long)off);
    off_t cur = lseek(fd, 0, SEEK_CUR);
    if (cur != (off_t)(off + n)) fail(a->tid, "lseek(CUR) = %lld, want %llu", (long long)cur, (unsigned long long)(off + n));
    struct stat st;
    if (fd_stat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != SHARED_SIZE)
        fail(a->tid, "fstat(private): %s size %lld", strerror(errno), (long long)st.st_size);
    if (lseek(fd, 0, SEEK_END) != SHARED_SIZE) fail(a->tid, "lseek(END) != size");
    if (read(fd, buf, 16) != 0) fail(a->tid, "read at EOF did not return 0");

    /* dup shares the offset. */
    int d = dup(fd);
    if (d < 0) {
        fail(a->tid, "dup: %s", strerror(errno));
    } else {
        uint64_t off2 = (uint64_t)rand_r(&a->seed) % (SHARED_SIZE - 4096);
        lseek(fd, (off_t)off2, SEEK_SET);
        r = read(d, buf, 512);
        if (r != 512 || pat_check(buf, off2, 512) >= 0) fail(a->tid, "read(dup) after lseek(orig): offset not shared (r=%zd)", r);
        if (lseek(fd, 0, SEEK_CUR) != (off_t)(off2 + 512)) fail(a->tid, "offset not advanced through the dup");
    }

    /* dup2 onto a descriptor this thread owns (now /dev/null), use it, put /dev/null back. */
    int slot = a->reserved[rand_r(&a->seed) % 2];
    int src = rand_r(&a->seed) % 3 == 0 ? shared_fd : fd;
    if (dup2(src, slot) != slot) {
        fail(a->tid, "dup2(%d, %d): %s", src, slot, strerror(errno));
    } else {
        uint64_t off3 = (uint64_t)rand_r(&a->seed) % (SHARED_SIZE - 300);
        r = pread(slot, buf, 300, (off_t)off3);
        if (r != 300 || pat_check(buf, off3, 300) >= 0) fail(a->tid, "pread on dup2 target: r=%zd", r);
        if (fd_stat(slot, &st) != 0 || st.st_size != SHARED_SIZE) fail(a->tid, "fstat on dup2 target");
        if (dup2(a->devnull, slot) != slot) fail(a->tid, "dup2(devnull, %d): %s", slot, strerror(errno));
        if (fd_stat(slot, &st) != 0 || !S_ISCHR(st.st_mode)) fail(a->tid, "fd %d is not /dev/null again after dup2", slot);
        if (read(slot, buf, 10) != 0) fail(a->tid, "read(/dev/null via %d) != 0", slot);
    }

    /* F_DUPFD_CLOEXEC, then close in a random order. */
    int e = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (e < 0) {
        fail(a->tid, "F_DUPFD_CLOEXEC: %s", strerror(errno));
    } else {
        r = pread(e, buf, 64, 4096);
        if (r != 64 || pat_check(buf, 4096, 64) >= 0) fail(a->tid, "pread on F_DUPFD copy");
        if (close(e) != 0) fail(a->tid, "close(F_DUPFD copy): %s", strerror(errno));
    }
    if (rand_r(&a->seed) % 2) {
        if (close(fd) != 0) fail(a->tid, "close(fd): %s", strerror(errno));
        if (d >= 0) {
            r = pread(d, buf, 100, 1000); /* the description lives on through the dup */
            if (r != 100 || pat_check(buf, 1000, 100) >= 0) fail(a->tid, "pread(dup) after closing the original");
            if (close(d) != 0) fail(a->tid, "close(dup): %s", strerror(errno));
        }
    } else {
        if (d >= 0 && close(d) != 0) fail(a->tid, "close(dup): %s", strerror(errno));
        if (close(fd) != 0) fail(a->tid, "close(fd): %s", strerror(errno));
    }
}

/* D. List ro/, open an entry relative to the directory stream's descriptor. */
static void op_dir(struct thread_arg *a)
{
    char p[256];
    mpath(p, sizeof p, "ro");
    DIR *dir = opendir(p);
    if (!dir) {
        fail(a->tid, "opendir(%s): %s", p, strerror(errno));
        return;
    }
    int seen[NRO] = {0}, other = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        int i;
        char tail;
        if (sscanf(de->d_name, "f%2d%c", &i, &tail) == 1 && i >= 0 && i < NRO)
            seen[i]++;
        else
            other++;
    }
    if (errno) fail(a->tid, "readdir: %s", strerror(errno));
    for (int i = 0; i < NRO; i++)
        if (seen[i] != 1) fail(a->tid, "readdir(ro): f%02d seen %d times", i, seen[i]);
    if (other) fail(a->tid, "readdir(ro): %d unexpected entries", other);

    int i = rand_r(&a->seed) % NRO;
    char name[16], want[64], got[64];
    snprintf(name, sizeof name, "f%02d", i);
    int dfd = dirfd(dir);
    int fd = dfd < 0 ? -1 : openat(dfd, name, O_RDONLY);
    if (fd < 0) {
        fail(a->tid, "openat(dirfd(ro), %s): %s", name, strerror(errno));
    } else {
        int wn = ro_text(want, sizeof want, i);
        ssize_t r = read_full(fd, got, sizeof got);
        if (r != wn || memcmp(got, want, (size_t)wn) != 0) fail(a->tid, "content of ro/%s (r=%zd)", name, r);
        close(fd);
    }
    if (closedir(dir) != 0) fail(a->tid, "closedir: %s", strerror(errno));
}

/* E. stdio reading of lines.txt. */
static void op_stdio_read(struct thread_arg *a)
{
    char p[256];
    mpath(p, sizeof p, "lines.txt");
    FILE *f = fopen(p, "r");
    if (!f) {
        fail(a->tid, "fopen(%s): %s", p, strerror(errno));
        return;
    }
    int upto = 20 + rand_r(&a->seed) % (NLINES - 20);
    if (rand_r(&a->seed) % 4 == 0) upto = NLINES + 1; /* to EOF */
    char line[128], want[128];
    int i = 0;
    for (; i < upto && fgets(line, sizeof line, f); i++) {
        line_text(want, sizeof want, i);
        if (strcmp(line, want) != 0) {
            fail(a->tid, "lines.txt line %d: got '%.40s'", i, line);
            break;
        }
    }
    if (upto > NLINES && (i != NLINES || !feof(f))) fail(a->tid, "lines.txt: %d lines before EOF, want %d", i, NLINES);
    if (fclose(f) != 0) fail(a->tid, "fclose(lines.txt): %s", strerror(errno));
}

/* F. Write a private file (write + pwrite + stdio), read it back, sometimes unlink. */
static void op_write(struct thread_arg *a, int it, uint8_t *buf, uint8_t *chk)
{
    char p[256], rel[64];
    snprintf(rel, sizeof rel, "w/t%02d_%d.bin", a->tid, it % 3);
    mpath(p, sizeof p, rel);
    size_t n = 1 + rand_r(&a->seed) % MAX_WRITE;
    for (size_t i = 0; i < n; i++) buf[i] = wpat(a->tid, it, i);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fail(a->tid, "open(%s, O_CREAT): %s", p, strerror(errno));
        return;
    }
    /* The tail first with pwrite, then the head with write(): both must land. */
    size_t head = n / 2;
    if (pwrite(fd, buf + head, n - head, (off_t)head) != (ssize_t)(n - head)) fail(a->tid, "pwrite: %s", strerror(errno));
    if (write_full(fd, buf, head) != 0) fail(a->tid, "write: %s", strerror(errno));
    if (lseek(fd, 0, SEEK_CUR) != (off_t)head) fail(a->tid, "offset after write != %zu", head);
    if (close(fd) != 0) fail(a->tid, "close(written): %s", strerror(errno));

    struct stat st;
    if (stat(p, &st) != 0 || (size_t)st.st_size != n) fail(a->tid, "stat(%s): size %lld want %zu", rel, (long long)st.st_size, n);
    fd = open(p, O_RDONLY);
    if (fd < 0) {
        fail(a->tid, "reopen(%s): %s", rel, strerror(errno));
        return;
    }
    ssize_t r = read_full(fd, chk, MAX_WRITE + 1);
    if (r != (ssize_t)n || memcmp(chk, buf, n) != 0) fail(a->tid, "%s read back: %zd bytes, want %zu, content %s", rel, r, n,
                                                          r == (ssize_t)n ? "differs" : "-");
    close(fd);

    /* Through stdio. */
    FILE *f = fopen(p, "w");
    if (!f) {
        fail(a->tid, "fopen(%s, w): %s", rel, strerror(errno));
        return;
    }
    int lines = 1 + rand_r(&a->seed) % 50;
    for (int i = 0; i < lines; i++) fprintf(f, "thread %d iteration %d line %d\n", a->tid, it, i);
    if (fclose(f) != 0) fail(a->tid, "fclose(%s): %s", rel, strerror(errno));
    size_t len = 0;
    for (int i = 0; i < lines; i++) len += (size_t)snprintf((char *)buf + len, MAX_WRITE - len, "thread %d iteration %d line %d\n", a->tid, it, i);
    fd = open(p, O_RDONLY);
    r = fd < 0 ? -1 : read_full(fd, chk, MAX_WRITE + 1);
    if (r != (ssize_t)len || memcmp(chk, buf, len) != 0) fail(a->tid, "%s after fprintf: %zd bytes, want %zu", rel, r, len);
    if (fd >= 0) close(fd);

    if (it % 2) {
        if (unlink(p) != 0) fail(a->tid, "unlink(%s): %s", rel, strerror(errno));
        if (access(p, F_OK) == 0 || errno != ENOENT) fail(a->tid, "%s still there after unlink", rel);
    }
}

static void *worker(void *arg)
{
    struct thread_arg *a = arg;
    uint8_t *buf = malloc(MAX_WRITE + CHUNK * 4), *chk = malloc(MAX_WRITE + CHUNK * 4);
    if (!buf || !chk) {
        fail(a->tid, "out of memory");
        return NULL;
    }
    pthread_barrier_wait(&start_line);
    for (int it = 0; it < iters; it++) {
        op_shared_pread(a, buf);
        op_private_and_dup(a, buf);
        switch ((it + a->tid) % 3) {
        case 0: op_dir(a); break;
        case 1: op_stdio_read(a); break;
        default: op_write(a, it, buf, chk); break;
        }
        struct stat st;
        char p[256];
        mpath(p, sizeof p, "shared.bin");
        if (stat(p, &st) != 0 || st.st_size != SHARED_SIZE) fail(a->tid, "stat(shared.bin)");
        atomic_fetch_add(&ops, 1);
    }
    /* Leave a file for "final" to check, and remove the others. */
    for (int k = 0; k < 3; k++) {
        char p[256], rel[64];
        snprintf(rel, sizeof rel, "w/t%02d_%d.bin", a->tid, k);
        mpath(p, sizeof p, rel);
        if (unlink(p) != 0 && errno != ENOENT) fail(a->tid, "unlink(%s): %s", rel, strerror(errno));
    }
    char p[256], rel[64];
    snprintf(rel, sizeof rel, "w/done_%02d.txt", a->tid);
    mpath(p, sizeof p, rel);
    FILE *f = fopen(p, "w");
    if (!f || fprintf(f, "thread %d did %d iterations\n", a->tid, iters) < 0 || fclose(f) != 0)
        fail(a->tid, "writing %s: %s", rel, strerror(errno));
    free(buf);
    free(chk);
    return NULL;
}

/* --- seqread: one offset, many readers ------------------------------------------------- */

static int seq_fd = -1;
static atomic_int chunk_seen[NCHUNKS];
static atomic_long seq_bytes;
static pthread_barrier_t phase_line;

static void *seq_worker(void *arg)
{
    struct thread_arg *a = arg;
    uint8_t *buf = malloc(CHUNK);
    if (!buf) return NULL;
    for (int ph = 0; ph < phases; ph++) {
        pthread_barrier_wait(&phase_line); /* thread 0 has rewound */
        for (;;) {
            ssize_t r;
            if (rand_r(&a->seed) % 2) {
                r = read(seq_fd, buf, CHUNK);
            } else {
                struct iovec iov[2] = {{buf, 1000}, {buf + 1000, CHUNK - 1000}};
                r = readv(seq_fd, iov, 2);
            }
            if (r == 0) break;
            if (r != CHUNK) {
                fail(a->tid, "seqread phase %d: read returned %zd (%s)", ph, r, r < 0 ? strerror(errno) : "short");
                break;
            }
            uint64_t w = 0;
            for (int i = 7; i >= 0; i--) w = w << 8 | buf[i];
            uint64_t off = w ^ PAT_K;
            if (off % CHUNK || off >= SHARED_SIZE || pat_check(buf, off, CHUNK) >= 0) {
                fail(a->tid, "seqread phase %d: chunk is not an aligned piece of the file (off %#llx)", ph,
                     (unsigned long long)off);
                break;
            }
            atomic_fetch_add(&chunk_seen[off / CHUNK], 1);
            atomic_fetch_add(&seq_bytes, r);
        }
        pthread_barrier_wait(&phase_line); /* everyone hit EOF */
        if (a->tid == 0) {
            long total = atomic_exchange(&seq_bytes, 0);
            if (total != SHARED_SIZE) fail(0, "seqread phase %d: %ld bytes read in all, want %d", ph, total, SHARED_SIZE);
            for (int c = 0; c < NCHUNKS; c++) {
                int s = atomic_exchange(&chunk_seen[c], 0);
                if (s != 1) {
                    fail(0, "seqread phase %d: chunk %d read %d times", ph, c, s);
                    break;
                }
            }
            if (lseek(seq_fd, 0, SEEK_SET) != 0) fail(0, "rewind: %s", strerror(errno));
            atomic_fetch_add(&ops, 1);
        }
    }
    free(buf);
    return NULL;
}

/* --- fstat: fstat/fstat64 on a shim descriptor, alone ------------------------------------ */

static int fstat_check(void)
{
    char p[256];
    mpath(p, sizeof p, "shared.bin");
    int fd = open(p, O_RDONLY);
    if (fd < 0) {
        fail(-1, "open(%s): %s", p, strerror(errno));
        return 1;
    }
    struct stat st;
    struct stat64 st64;
    if (fstat(fd, &st) != 0 || st.st_size != SHARED_SIZE || !S_ISREG(st.st_mode)) fail(-1, "fstat(shim fd)");
    if (fstat64(fd, &st64) != 0 || st64.st_size != SHARED_SIZE) fail(-1, "fstat64(shim fd)");
    close(fd);
    int nf = atomic_load(&failures);
    printf("fstat: %d failures\n", nf);
    return nf != 0;
}

/* --- setfl: F_SETFL/F_GETFL on the shared descriptor while others pread it ------------- */

static void *setfl_worker(void *arg)
{
    struct thread_arg *a = arg;
    uint8_t buf[512];
    pthread_barrier_wait(&start_line);
    for (int i = 0; i < iters * 20; i++) {
        if (a->tid == 0) {
            if (fcntl(shared_fd, F_SETFL, (i & 1) ? O_NONBLOCK : 0) != 0) fail(0, "F_SETFL: %s", strerror(errno));
        } else {
            int fl = fcntl(shared_fd, F_GETFL);
            if (fl < 0 || (fl & O_ACCMODE) != O_RDONLY) fail(a->tid, "F_GETFL = %#x", fl);
            uint64_t off = (uint64_t)rand_r(&a->seed) % (SHARED_SIZE - sizeof buf);
            if (pread(shared_fd, buf, sizeof buf, (off_t)off) != (ssize_t)sizeof buf || pat_check(buf, off, sizeof buf) >= 0)
                fail(a->tid, "pread(shared) at %llu during F_SETFL", (unsigned long long)off);
        }
    }
    atomic_fetch_add(&ops, 1);
    return NULL;
}

/* --- fork: fork while other threads use shim descriptors; the child uses them too ------- */

static atomic_int fork_done;

static void *fork_io_worker(void *arg)
{
    struct thread_arg *a = arg;
    uint8_t *buf = malloc(8192);
    if (!buf) return NULL;
    pthread_barrier_wait(&start_line);
    while (!atomic_load(&fork_done)) {
        op_shared_pread(a, buf);
        char p[256];
        mpath(p, sizeof p, "shared.bin");
        int fd = open(p, O_RDONLY);
        if (fd < 0 || pread(fd, buf, 100, 8) != 100 || pat_check(buf, 8, 100) >= 0) fail(a->tid, "open+pread during forks");
        if (fd >= 0) close(fd);
        atomic_fetch_add(&ops, 1);
    }
    free(buf);
    return NULL;
}

/* In the child: the inherited shared descriptor and a fresh open must both work. */
static int fork_child_check(void)
{
    uint8_t buf[256];
    if (pread(shared_fd, buf, sizeof buf, 1000) != (ssize_t)sizeof buf || pat_check(buf, 1000, sizeof buf) >= 0) return 1;
    char p[256];
    mpath(p, sizeof p, "lines.txt");
    int fd = open(p, O_RDONLY);
    char want[128];
    int n = line_text(want, sizeof want, 0);
    ssize_t r = fd < 0 ? -1 : read(fd, buf, (size_t)n);
    if (fd >= 0) close(fd);
    return r != n || memcmp(buf, want, (size_t)n) != 0 ? 2 : 0;
}

static void fork_loop(void)
{
    for (int i = 0; i < iters / 4 + 1; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            fail(-1, "fork: %s", strerror(errno));
            break;
        }
        if (pid == 0) _exit(fork_child_check());
        int st = 0;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail(-1, "fork %d: child failed (status %#x)", i, st);
        /* The parent's shared descriptor still works after the fork handlers ran. */
        uint8_t buf[64];
        if (pread(shared_fd, buf, sizeof buf, 64) != (ssize_t)sizeof buf || pat_check(buf, 64, sizeof buf) >= 0)
            fail(-1, "pread(shared) in the parent after fork %d", i);
    }
    atomic_store(&fork_done, 1);
}

/* --- setup, final check, main ------------------------------------------------------------ */

static int write_file(const char *dir, const char *rel, const void *data, size_t n)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write_full(fd, data, n) != 0 || close(fd) != 0) {
        fprintf(stderr, "setup: %s: %s\n", p, strerror(errno));
        return -1;
    }
    return 0;
}

static int setup(const char *dir)
{
    char p[4096];
    for (const char *sub = "ro"; sub; sub = strcmp(sub, "ro") == 0 ? "w" : NULL) {
        snprintf(p, sizeof p, "%s/%s", dir, sub);
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "setup: mkdir %s: %s\n", p, strerror(errno));
            return -1;
        }
    }
    uint8_t *b = malloc(SHARED_SIZE);
    if (!b) return -1;
    pat_fill(b, 0, SHARED_SIZE);
    int r = write_file(dir, "shared.bin", b, SHARED_SIZE);
    size_t len = 0;
    for (int i = 0; i < NLINES; i++) len += (size_t)line_text((char *)b + len, SHARED_SIZE - len, i);
    r |= write_file(dir, "lines.txt", b, len);
    for (int i = 0; i < NRO && r == 0; i++) {
        char rel[32], txt[64];
        snprintf(rel, sizeof rel, "ro/f%02d", i);
        r |= write_file(dir, rel, txt, (size_t)ro_text(txt, sizeof txt, i));
    }
    free(b);
    return r;
}

/* After "mixed": exactly the done files are left in w/, with the right contents. */
static int final_check(void)
{
    char p[256];
    mpath(p, sizeof p, "w");
    DIR *d = opendir(p);
    if (!d) {
        fail(-1, "opendir(%s): %s", p, strerror(errno));
        return 1;
    }
    int seen[MAX_THREADS] = {0}, other = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int t;
        char tail;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        if (sscanf(de->d_name, "done_%2d.tx%c", &t, &tail) == 2 && tail == 't' && t >= 0 && t < nthreads)
            seen[t]++;
        else {
            fail(-1, "w/ holds unexpected '%s'", de->d_name);
            other++;
        }
    }
    closedir(d);
    for (int t = 0; t < nthreads; t++) {
        char rel[64], want[96], got[128] = "";
        snprintf(rel, sizeof rel, "w/done_%02d.txt", t);
        mpath(p, sizeof p, rel);
        snprintf(want, sizeof want, "thread %d did %d iterations\n", t, iters);
        FILE *f = fopen(p, "r");
        if (!f || !fgets(got, sizeof got, f) || strcmp(got, want) != 0) fail(-1, "%s: got '%s'", rel, got);
        if (f) fclose(f);
        if (seen[t] != 1) fail(-1, "%s listed %d times", rel, seen[t]);
        if (unlink(p) != 0) fail(-1, "unlink(%s): %s", rel, strerror(errno));
    }
    printf("final: %d files checked, %d failures\n", nthreads, atomic_load(&failures));
    return atomic_load(&failures) != 0 || other;
}

/* The process's descriptors, as "fd:target" words (readlink of /proc/self/fd/N). */
/* STRESS_KEPT: a file (block://'s device or image) of which the shim keeps up to
 * STRESS_KEPT_MAX descriptors of its own open between files by design (block_pool.c: idle
 * device descriptors and the kept reservation); those are counted apart. */
static int kept_fds;

static int list_fds(char *out, size_t size)
{
    const char *kept = getenv("STRESS_KEPT");
    kept_fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0, dfd = dirfd(d);
    size_t len = 0;
    out[0] = '\0';
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || atoi(de->d_name) == dfd) continue;
        char link[320], target[256];
        snprintf(link, sizeof link, "/proc/self/fd/%s", de->d_name);
        ssize_t k = readlink(link, target, sizeof target - 1);
        target[k > 0 ? k : 0] = '\0';
        if (kept && *kept && strcmp(target, kept) == 0 && atoi(de->d_name) >= 10000) {
            kept_fds++;
            continue;
        }
        if (len < size) len += (size_t)snprintf(out + len, size - len, " %s:%s", de->d_name, target);
        n++;
    }
    closedir(d);
    return n;
}

/* --- coherent: writers in this process, a reader in another --------------------------- */

static int coh_fd = -1;

static void coh_fill(uint8_t *b, int tid, int round)
{
    for (int i = 0; i < CHUNK; i += 8) {
        uint32_t v[2] = {(uint32_t)tid, (uint32_t)round};
        memcpy(b + i, v, 8);
    }
}

static void *coh_worker(void *arg)
{
    struct thread_arg *a = arg;
    uint8_t b[CHUNK], c[CHUNK];
    for (int round = 1; round <= iters; round++) {
        coh_fill(b, a->tid, round);
        if (pwrite(coh_fd, b, CHUNK, (off_t)a->tid * CHUNK) != CHUNK) fail(a->tid, "pwrite: %s", strerror(errno));
        if (pread(coh_fd, c, CHUNK, (off_t)a->tid * CHUNK) != CHUNK || memcmp(b, c, CHUNK) != 0)
            fail(a->tid, "own bytes read back wrong in round %d", round);
        atomic_fetch_add(&ops, 1);
    }
    return NULL;
}

/* The child: reads the whole file again and again; each thread's 4 KiB must be one round
 * of one thread's, whole, and the rounds it sees may only grow. 0 if all was right and it
 * saw writes made after it started. */
static int coh_reader(const char *p, int n, int stop_fd)
{
    int fd = open(p, O_RDWR);
    if (fd < 0) return 1;
    uint8_t *buf = malloc((size_t)n * CHUNK);
    uint32_t last[MAX_THREADS] = {0};
    int bad = 0, moved = 0;
    for (int loops = 0; buf && !bad; loops++) {
        char x;
        int stop = read(stop_fd, &x, 1) != -1 || errno != EAGAIN;
        if (pread(fd, buf, (size_t)n * CHUNK, 0) != (ssize_t)n * CHUNK) bad = 1;
        for (int t = 0; t < n && !bad; t++) {
            uint8_t *r = buf + (size_t)t * CHUNK;
            uint32_t v[2];
            memcpy(v, r, 8);
            for (int i = 8; i < CHUNK && !bad; i += 8) bad = memcmp(r + i, r, 8) != 0;
            if (v[0] != (uint32_t)t || v[1] < last[t]) bad = 1;
            if (v[1] > last[t] && loops) moved = 1;
            last[t] = v[1];
        }
        if (bad) fprintf(stderr, "coherent reader: torn or wrong bytes, or a round gone back, in loop %d\n", loops);
        if (stop) break;
    }
    free(buf);
    close(fd);
    if (!moved) fprintf(stderr, "coherent reader: never saw the writers' bytes move\n");
    return bad || !moved;
}

static int coherent_run(void)
{
    char p[256];
    mpath(p, sizeof p, "coh.bin");
    coh_fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (coh_fd < 0) {
        perror(p);
        return 1;
    }
    uint8_t b[CHUNK];
    for (int t = 0; t < nthreads; t++) {
        coh_fill(b, t, 0);
        if (pwrite(coh_fd, b, CHUNK, (off_t)t * CHUNK) != CHUNK) return 1;
    }
    if (fsync(coh_fd) != 0) return 1;
    int stop[2];
    if (pipe(stop) != 0) return 1;
    pid_t child = fork(); /* and exec: a process of its own (TSan starts no thread after a fork) */
    if (child == 0) {
        close(stop[1]);
        char n[16], sfd[16];
        snprintf(n, sizeof n, "%d", nthreads);
        snprintf(sfd, sizeof sfd, "%d", stop[0]);
        execl("/proc/self/exe", "tsan_stress", "coherent-reader", p, n, sfd, (char *)NULL);
        _exit(127);
    }
    close(stop[0]);
    struct thread_arg args[MAX_THREADS];
    for (int t = 0; t < nthreads; t++) {
        args[t].tid = t;
        if (pthread_create(&args[t].th, NULL, coh_worker, &args[t]) != 0) return 1;
    }
    for (int t = 0; t < nthreads; t++) pthread_join(args[t].th, NULL);
    close(stop[1]); /* the child reads once more, then ends */
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail(-1, "the reading child failed (status %d)", status);
    if (close(coh_fd) != 0) fail(-1, "close(coh.bin): %s", strerror(errno));
    unlink(p);
    int nf = atomic_load(&failures);
    printf("coherent: %d threads, %ld writes, %d failures\n", nthreads, atomic_load(&ops), nf);
    return nf ? 1 : 0;
}

static int env_int(const char *name, int dflt, int lo, int hi)
{
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    int x = atoi(v);
    return x < lo ? lo : x > hi ? hi : x;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--setup") == 0) return setup(argv[2]) ? 1 : 0;
    if (argc == 5 && strcmp(argv[1], "coherent-reader") == 0) { /* coherent's child */
        int sfd = atoi(argv[4]);
        fcntl(sfd, F_SETFL, O_NONBLOCK);
        return coh_reader(argv[2], atoi(argv[3]), sfd);
    }
    if (argc != 2) {
        fprintf(stderr, "usage: tsan_stress --setup DIR | fstat | setfl | fork | mixed | seqread | final | coherent\n");
        return 2;
    }
    const char *mode = argv[1];
    if (getenv("STRESS_MNT")) mnt = getenv("STRESS_MNT");
    nthreads = env_int("STRESS_THREADS", 8, 1, MAX_THREADS);
    iters = env_int("STRESS_ITERS", 120, 1, 1000000);
    phases = env_int("STRESS_PHASES", 12, 1, 1000000);
    setvbuf(stdout, NULL, _IOLBF, 0);

    use_fstat = env_int("STRESS_FSTAT", 0, 0, 1);
    if (strcmp(mode, "final") == 0) return final_check();
    if (strcmp(mode, "fstat") == 0) return fstat_check();
    if (strcmp(mode, "coherent") == 0) return coherent_run();

    char p[256];
    mpath(p, sizeof p, "shared.bin");
    struct stat st;
    if (stat(p, &st) != 0 || st.st_size != SHARED_SIZE) {
        fprintf(stderr, "%s is not served by the shim (is S3SHIM_MOUNTS set, and --setup done?): %s\n", p,
                strerror(errno));
        return 2;
    }
    /* One open and close first: the shim keeps a few descriptors of its own for the life of
     * the process (created on first use), which are not a leak. */
    int warm = open(p, O_RDONLY);
    if (warm >= 0) close(warm);
    static char fds_before_list[8192], fds_after_list[8192];
    int fds_before = list_fds(fds_before_list, sizeof fds_before_list);

    struct thread_arg args[MAX_THREADS];
    void *(*fn)(void *);
    int seq = 0, forking = 0;
    if (strcmp(mode, "mixed") == 0)
        fn = worker;
    else if (strcmp(mode, "seqread") == 0)
        fn = seq_worker, seq = 1;
    else if (strcmp(mode, "setfl") == 0)
        fn = setfl_worker;
    else if (strcmp(mode, "fork") == 0)
        fn = fork_io_worker, forking = 1;
    else {
        fprintf(stderr, "unknown mode '%s'\n", mode);
        return 2;
    }
    int nworkers = forking ? (nthreads > 3 ? 3 : nthreads) : nthreads;
    if (seq) {
        seq_fd = open(p, O_RDONLY);
        if (seq_fd < 0) {
            perror(p);
            return 1;
        }
        pthread_barrier_init(&phase_line, NULL, (unsigned)nworkers);
    } else {
        shared_fd = open(p, O_RDONLY);
        if (shared_fd < 0) {
            perror(p);
            return 1;
        }
        pthread_barrier_init(&start_line, NULL, (unsigned)nworkers);
    }
    for (int t = 0; t < nworkers; t++) {
        args[t].tid = t;
        args[t].seed = 0x9e3779b9u * (unsigned)(t + 1);
        args[t].devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        args[t].reserved[0] = dup(args[t].devnull);
        args[t].reserved[1] = dup(args[t].devnull);
        if (args[t].devnull < 0 || args[t].reserved[0] < 0 || args[t].reserved[1] < 0) {
            perror("/dev/null");
            return 1;
        }
    }
    for (int t = 0; t < nworkers; t++) {
        int e = pthread_create(&args[t].th, NULL, fn, &args[t]);
        if (e) {
            fprintf(stderr, "pthread_create: %s\n", strerror(e));
            return 1;
        }
    }
    if (forking) fork_loop();
    for (int t = 0; t < nworkers; t++) pthread_join(args[t].th, NULL);
    for (int t = 0; t < nworkers; t++) {
        close(args[t].devnull);
        close(args[t].reserved[0]);
        close(args[t].reserved[1]);
    }
    if (close(seq ? seq_fd : shared_fd) != 0) fail(-1, "close(shared): %s", strerror(errno));
    int fds_after = list_fds(fds_after_list, sizeof fds_after_list);
    if (fds_after != fds_before) {
        fail(-1, "descriptor leak: %d open before, %d after", fds_before, fds_after);
        fprintf(stderr, "  before:%s\n  after: %s\n", fds_before_list, fds_after_list);
    }
    if (kept_fds > env_int("STRESS_KEPT_MAX", 0, 0, 1000))
        fail(-1, "descriptor leak: the shim keeps %d descriptors of %s, more than STRESS_KEPT_MAX", kept_fds,
             getenv("STRESS_KEPT"));

    int nf = atomic_load(&failures);
    printf("%s: %d threads, %ld rounds, %d failures\n", mode, nworkers, atomic_load(&ops), nf);
    return nf ? 1 : 0;
}
