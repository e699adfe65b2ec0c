/* stdstream.c - threads on a shim file redirected onto fd 0 or fd 1, for ThreadSanitizer.
 *
 * Linked against the TSan build of libs3shim.so, like stress.c. A shim file that lands on
 * fd 0-2 is served partly through a pipe and a pump thread (shim/pump.h): the program's
 * own read() and write() go straight to the file while the pump fills or drains the pipe
 * for what bypasses the shim. Here many threads do that at once:
 *
 *   tsan_stdstream in FILE   FILE (written here: 8-byte words, word i = i ^ K) goes on
 *                            fd 0; every thread read()s or readv()s 4 KiB chunks until
 *                            EOF; every chunk must be an aligned piece of the file and
 *                            each read exactly once. Between phases thread 0 rewinds with
 *                            lseek, and every other phase the threads wait 30 ms first,
 *                            so that the pump (quiet while the program reads itself)
 *                            fills the pipe and the reads take its bytes.
 *   tsan_stdstream out FILE  FILE goes on fd 1; every thread writes 64-byte lines, by
 *                            turns with write() and with printf() (stdout line-buffered:
 *                            glibc writes the line through the pipe), and thread 0 forks
 *                            a child that writes too. Then the file must hold each line
 *                            exactly once, every thread's lines in the order it wrote
 *                            them.
 *
 * Environment: STRESS_THREADS (8), STRESS_PHASES (6 for in, lines per thread / 50 for
 * out). Prints one line; exit status 0 when every check passed. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SIZE (2 * 1024 * 1024)
#define CHUNK 4096
#define NCHUNKS (SIZE / CHUNK)
#define K 0x9E3779B97F4A7C15ull
#define MAX_THREADS 32
#define LINE 64

static int nthreads = 8, phases = 6;
static atomic_int failures;
static atomic_int seen[NCHUNKS];
static atomic_long bytes;
static pthread_barrier_t line_up;

static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failf(const char *fmt, ...)
{
    if (atomic_fetch_add(&failures, 1) >= 10) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int env_int(const char *name, int def, int lo, int hi)
{
    const char *v = getenv(name);
    int n = v && *v ? atoi(v) : def;
    return n < lo ? lo : n > hi ? hi : n;
}

static void *reader(void *arg)
{
    int tid = (int)(intptr_t)arg;
    uint64_t buf[CHUNK / 8];
    for (int ph = 0; ph < phases; ph++) {
        pthread_barrier_wait(&line_up); /* thread 0 has rewound */
        for (unsigned i = 0;; i++) {
            ssize_t r;
            if ((i + (unsigned)tid) % 2) {
                r = read(0, buf, CHUNK);
            } else {
                struct iovec iov[2] = {{buf, 1000}, {(char *)buf + 1000, CHUNK - 1000}};
                r = readv(0, iov, 2);
            }
            if (r == 0) break;
            if (r != CHUNK) {
                failf("phase %d: read returned %zd (%s)", ph, r, r < 0 ? strerror(errno) : "short");
                break;
            }
            uint64_t w0 = buf[0] ^ K;
            int good = w0 % (CHUNK / 8) == 0 && w0 < SIZE / 8;
            for (int k = 1; good && k < CHUNK / 8; k++) good = (buf[k] ^ K) == w0 + (uint64_t)k;
            if (!good) {
                failf("phase %d: a chunk that is not an aligned piece of the file (first word %#llx)", ph,
                      (unsigned long long)w0);
                break;
            }
            atomic_fetch_add(&seen[w0 / (CHUNK / 8)], 1);
            atomic_fetch_add(&bytes, r);
        }
        pthread_barrier_wait(&line_up); /* everyone is at EOF */
        if (tid == 0) {
            if (atomic_exchange(&bytes, 0) != SIZE) failf("phase %d: not %d bytes read in all", ph, SIZE);
            for (int c = 0; c < NCHUNKS; c++) {
                int s = atomic_exchange(&seen[c], 0);
                if (s != 1) {
                    failf("phase %d: chunk %d read %d times", ph, c, s);
                    break;
                }
            }
            if (lseek(0, 0, SEEK_SET) != 0) failf("rewind: %s", strerror(errno));
            if (ph % 2 == 0) nanosleep(&(struct timespec){0, 30 * 1000000}, NULL); /* the pump fills the pipe */
        }
    }
    return NULL;
}

static int mode_in(const char *path)
{
    uint64_t *data = malloc(SIZE);
    if (!data) return 1;
    for (uint64_t i = 0; i < SIZE / 8; i++) data[i] = i ^ K;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, data, SIZE) != SIZE || close(fd) != 0) {
        perror(path);
        return 1;
    }
    free(data);
    fd = open(path, O_RDONLY);
    if (fd < 0 || dup2(fd, 0) != 0 || close(fd) != 0) {
        perror("onto fd 0");
        return 1;
    }
    pthread_t th[MAX_THREADS];
    pthread_barrier_init(&line_up, NULL, (unsigned)nthreads);
    for (int t = 0; t < nthreads; t++) pthread_create(&th[t], NULL, reader, (void *)(intptr_t)t);
    for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
    close(0);
    int nf = atomic_load(&failures);
    fprintf(stderr, "in: %d threads, %d phases, %d failures\n", nthreads, phases, nf);
    return nf != 0;
}

static int lines;

static void line(char *buf, int who, int seq)
{
    int n = snprintf(buf, LINE, "thread %02d line %06d ", who, seq);
    memset(buf + n, '.', LINE - 1 - (size_t)n);
    buf[LINE - 1] = '\n';
}

static void *writer(void *arg)
{
    int tid = (int)(intptr_t)arg;
    char buf[LINE + 1];
    for (int i = 0; i < lines; i++) {
        line(buf, tid, i);
        if (i % 2) {
            if (write(1, buf, LINE) != LINE) failf("thread %d: write: %s", tid, strerror(errno));
        } else {
            buf[LINE] = '\0';
            if (printf("%s", buf) != LINE) failf("thread %d: printf: %s", tid, strerror(errno));
        }
        if (tid == 0 && i == lines / 2) { /* a forked child writes through the pipe */
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                for (int k = 0; k < 50; k++) {
                    line(buf, 99, k);
                    if (write(1, buf, LINE) != LINE) _exit(1);
                }
                _exit(0);
            }
            int st;
            if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
                failf("the forked child failed");
        }
    }
    return NULL;
}

static int mode_out(const char *path)
{
    lines = 50 * phases;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || dup2(fd, 1) != 1 || close(fd) != 0) {
        perror("onto fd 1");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_t th[MAX_THREADS];
    for (int t = 0; t < nthreads; t++) pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t);
    for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
    fflush(stdout);
    if (close(1) != 0) failf("close(1): %s", strerror(errno));
    /* Read it back: each line once, each thread's in order. */
    FILE *f = fopen(path, "r");
    char got[256];
    int next[100] = {0}, n = 0;
    while (f && fgets(got, sizeof got, f)) {
        int who, seq;
        n++;
        if (strlen(got) != LINE || sscanf(got, "thread %d line %d ", &who, &seq) != 2 || who < 0 || who > 99) {
            failf("line %d is not one that was written: %.70s", n, got);
            break;
        }
        if (seq != next[who]) failf("thread %d: line %d where %d was due", who, seq, next[who]);
        next[who] = seq + 1;
    }
    if (f) fclose(f);
    for (int t = 0; t < nthreads; t++)
        if (next[t] != lines) failf("thread %d: %d of its %d lines", t, next[t], lines);
    if (next[99] != 50) failf("the child: %d of its 50 lines", next[99]);
    int nf = atomic_load(&failures);
    fprintf(stderr, "out: %d threads x %d lines and a child's 50, %d failures\n", nthreads, lines, nf);
    return nf != 0;
}

int main(int argc, char **argv)
{
    nthreads = env_int("STRESS_THREADS", 8, 1, MAX_THREADS);
    phases = env_int("STRESS_PHASES", 6, 1, 1000);
    if (argc == 3 && strcmp(argv[1], "in") == 0) return mode_in(argv[2]);
    if (argc == 3 && strcmp(argv[1], "out") == 0) return mode_out(argv[2]);
    fprintf(stderr, "usage: tsan_stdstream in|out FILE\n");
    return 2;
}
